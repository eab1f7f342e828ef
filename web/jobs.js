// jobs.js — the job list: newest first, filters in the URL query (repo,
// ref, state), live through /api/events, "Older jobs" by the `next` cursor.
//
// Rows are keyed by job id and redrawn only when their JSON changed.  Test
// counts and coverage come from the row when the server puts them there
// (`tests`, `coverage`); otherwise from each finished job's detail,
// fetched once (a few at a time) and cached.

import { h, badge, elapsed, when, shortSha, refName, pct, testsText, jobSummary, FINAL, errorBox, title } from './ui.js';
import { getJSON, onJobs } from './api.js';

const STATES = ['queued', 'running', 'passed', 'failed', 'error', 'cancelled', 'skipped'];
const details = new Map();  /* id → {tests, coverage} of a final job */
let repoNames = null;

export default function jobsPage(main) {
	const q = new URLSearchParams(location.search);
	const f = { repo: q.get('repo') || '', ref: q.get('ref') || '', state: q.get('state') || '' };
	const rows = new Map();  /* id → {el, key} */
	let next = null, gone = false, busy = false, again = false, seen = new Set();
	const filtered = f.repo || f.ref || f.state;

	const repoSel = h('select', { name: 'repo', onchange: () => form.requestSubmit() },
		h('option', { value: '' }, 'All'), f.repo ? h('option', { value: f.repo, selected: true }, f.repo) : null);
	const form = h('form', { class: 'filters', role: 'search', onsubmit: submit },
		h('label', null, 'Repository ', repoSel),
		h('label', null, 'Branch ', h('input', { name: 'ref', value: f.ref, size: 14, placeholder: 'any', autocomplete: 'off' })),
		h('label', null, 'State ', h('select', { name: 'state', onchange: () => form.requestSubmit() },
			h('option', { value: '' }, 'Any'), STATES.map((s) => h('option', { value: s, selected: s === f.state }, s)))),
		h('button', { type: 'submit' }, 'Filter'),
		filtered ? h('a', { href: '/' }, 'Clear') : null);
	const list = h('ul', { class: 'jobs', 'aria-label': 'Jobs' });
	const msg = h('div');
	const more = h('button', { type: 'button', hidden: true, onclick: older }, 'Older jobs');
	main.replaceChildren(h('h1', { tabindex: '-1' }, 'Jobs'), form, msg, list, h('p', { class: 'pager' }, more));
	title(filtered ? 'Jobs: ' + [f.repo, f.ref, f.state].filter(Boolean).join(' ') : 'Jobs');

	function submit(e) {
		e.preventDefault();
		const p = new URLSearchParams();
		for (const [k, v] of new FormData(form))
			if (String(v).trim())
				p.set(k, String(v).trim());
		const s = p.toString();
		history.pushState(null, '', '/' + (s ? '?' + s : ''));
		dispatchEvent(new PopStateEvent('popstate'));
	}

	function query(before) {
		const p = new URLSearchParams({ limit: '50' });
		for (const k in f)
			if (f[k])
				p.set(k, f[k]);
		if (before)
			p.set('before', before);
		return '/api/jobs?' + p;
	}

	function row(j) {
		const sum = details.get(j.id) || jobSummary(j);
		const ev = j.event === 'pull_request' ? 'pull request' : j.event || '';
		return h('li', { class: 'job', 'data-testid': 'job-row', 'data-job-id': j.id, 'data-state': j.state },
			h('div', { class: 'c-st' }, badge(j.state)),
			h('div', { class: 'c-main' },
				h('a', { class: 'jl', href: '/jobs/' + j.id }, h('span', { class: 'num' }, '#' + j.id), ' ',
					j.title || '(no commit message)'),
				h('div', { class: 'sub' }, h('span', null, j.repo), ' · ', h('span', { class: 'ref' }, refName(j)), ' · ',
					h('code', { title: j.sha || '' }, shortSha(j.sha)), j.author ? ' · ' + j.author : '')),
			h('div', { class: 'c-ev' }, ev),
			h('div', { class: 'c-tests' }, sum.tests ? testsText(sum.tests) : ''),
			h('div', { class: 'c-cov' }, sum.coverage != null ? pct(sum.coverage) + ' cov.' : ''),
			h('div', { class: 'c-time' }, elapsed(j), ' ', when(j.created)));
	}

	// Adds or redraws the row of j, keeping the list sorted by id, newest first.
	function put(j) {
		const key = JSON.stringify(j) + (details.has(j.id) ? '+' : '');
		const old = rows.get(j.id);
		if (old && old.key === key)
			return;
		const el = row(j);
		if (old) {
			const focused = old.el.contains(document.activeElement);
			old.el.replaceWith(el);
			if (focused)
				el.querySelector('a').focus();
		} else {
			let at = null;
			for (const [id, r] of rows)
				if (id < j.id && (!at || id > +at.dataset.jobId))
					at = r.el;
			list.insertBefore(el, at);
		}
		rows.set(j.id, { el, key, job: j });
		if (FINAL.has(j.state) && !details.has(j.id) && j.tests === undefined && !j.stages)
			want.push(j.id), fetchDetails();
	}

	const want = [];
	let inflight = 0;
	function fetchDetails() {
		while (inflight < 3 && want.length && !gone) {
			const id = want.shift();
			inflight++;
			getJSON('/api/jobs/' + id).then((d) => {
				details.set(id, jobSummary(d));
				const r = rows.get(id);
				if (r && !gone)
					put(r.job);
			}, () => details.set(id, { tests: null, coverage: null })).finally(() => {
				inflight--;
				fetchDetails();
			});
		}
	}

	async function refresh() {
		if (busy) {
			again = true;
			return;
		}
		busy = true;
		try {
			const d = await getJSON(query());
			if (gone)
				return;
			msg.replaceChildren();
			for (const j of d.jobs || [])
				put(j);
			seen = new Set((d.jobs || []).map((j) => j.id));
			if (!rows.size)
				msg.replaceChildren(h('p', { class: 'muted' }, filtered ? 'No jobs match these filters.' : 'No jobs yet.'));
			if (next === null && !more.dataset.paged) {
				next = d.next;
				more.hidden = next == null;
			}
			if (!repoNames)
				await loadRepos(d.jobs || []);
		} catch (e) {
			if (!gone)
				msg.replaceChildren(errorBox(e));
		} finally {
			busy = false;
			if (again && !gone) {
				again = false;
				refresh();
			}
		}
	}

	async function older() {
		if (next == null)
			return;
		more.disabled = true;
		more.dataset.paged = '1';
		try {
			const d = await getJSON(query(next));
			for (const j of d.jobs || [])
				put(j);
			next = d.next;
		} catch (e) {
			msg.replaceChildren(errorBox(e));
		}
		more.disabled = false;
		more.hidden = next == null;
	}

	async function loadRepos(jobs) {
		try {
			repoNames = ((await getJSON('/api/repos')).repos || []).map((r) => r.name);
		} catch {
			repoNames = [...new Set(jobs.map((j) => j.repo))];
		}
		if (!gone)
			fillRepos();
	}

	function fillRepos() {
		for (const n of repoNames)
			if (n !== f.repo)
				repoSel.append(h('option', { value: n }, n));
	}

	// A changed job that is shown but not on the first page (an older page,
	// or one that left the state filter) is fetched alone.
	const unJobs = onJobs(async (ids) => {
		await refresh();
		for (const id of ids || [])
			if (rows.has(id) && !seen.has(id))
				getJSON('/api/jobs/' + id).then((j) => gone || put(j), () => {});
	});
	if (repoNames)
		fillRepos();
	refresh();
	return () => {
		gone = true;
		unJobs();
	};
}
