// job.js — the job page: header, failing tests, stages (table and needs
// graph), the log of one stage, cancel and retry.
//
// The job is fetched again when /api/events says it changed, and every
// 2 s while it is not final (stage changes inside a running job are not
// job events).  Parts are redrawn only when the JSON changed, and the log
// view lives on across redraws.

import { h, fill, badge, stateText, dur, when, elapsed, shortSha, refName, pct, testsText, FINAL, errorBox, title, fmtBytes } from './ui.js';
import { getJSON, post, session, onSession, onJobs } from './api.js';
import { LogView } from './log.js';

const SVG = 'http://www.w3.org/2000/svg';

function go(url) {
	history.pushState(null, '', url);
	dispatchEvent(new PopStateEvent('popstate'));
}

function s(tag, attrs, text) {
	const el = document.createElementNS(SVG, tag);
	for (const k in attrs)
		el.setAttribute(k, attrs[k]);
	if (text != null)
		el.textContent = text;
	return el;
}

const needsOf = (st) => (Array.isArray(st.needs) ? st.needs : st.report && Array.isArray(st.report.needs) ? st.report.needs : null);

// The stages as a graph: columns by `needs` depth when the stages carry
// needs, else the run order as a chain.
function graph(stages, pick) {
	if (stages.length < 2)
		return null;
	const byName = new Map(stages.map((st) => [st.name, st]));
	const known = stages.some((st) => needsOf(st));
	const lvl = new Map();
	const level = (st, depth = 0) => {
		if (lvl.has(st.name))
			return lvl.get(st.name);
		let l = 0;
		for (const n of needsOf(st) || [])
			if (byName.has(n) && depth < 50)
				l = Math.max(l, level(byName.get(n), depth + 1) + 1);
		lvl.set(st.name, l);
		return l;
	};
	stages.forEach((st, i) => (known ? level(st) : lvl.set(st.name, i)));
	const W = 140, H = 44, GX = 36, GY = 12, P = 4, cols = [];
	const pos = new Map();
	for (const st of stages) {
		const c = lvl.get(st.name);
		(cols[c] = cols[c] || []).push(st);
		pos.set(st.name, [P + c * (W + GX), P + (cols[c].length - 1) * (H + GY)]);
	}
	const rows = Math.max(...cols.map((c) => (c ? c.length : 0)));
	const width = P * 2 + cols.length * (W + GX) - GX, height = P * 2 + rows * (H + GY) - GY;
	const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
		'aria-label': 'Stages: ' + stages.map((st) => `${st.name} ${st.state}`).join(', ') });
	stages.forEach((st, i) => {
		const deps = known ? (needsOf(st) || []).filter((n) => byName.has(n)) : i ? [stages[i - 1].name] : [];
		const [x2, y2] = pos.get(st.name);
		for (const d of deps) {
			const [x1, y1] = pos.get(d);
			const ax = x1 + W, ay = y1 + H / 2, by = y2 + H / 2, m = (ax + x2) / 2;
			svg.append(s('path', { class: 'edge', d: `M${ax},${ay} C${m},${ay} ${m},${by} ${x2},${by}` }));
		}
	});
	for (const st of stages) {
		const [x, y] = pos.get(st.name);
		const g = s('g', { class: 'node st-' + st.state, transform: `translate(${x},${y})` });
		g.append(s('title', {}, `${st.name}: ${st.state}`),
			s('rect', { width: W, height: H, rx: 6 }),
			s('text', { x: 10, y: 18, class: 'nm' }, st.name.length > 17 ? st.name.slice(0, 16) + '…' : st.name),
			s('text', { x: 10, y: 35, class: 'sw' }, stateText(st.state)));
		g.addEventListener('click', () => pick(st.name));
		svg.append(g);
	}
	return h('div', { class: 'graph' }, svg);
}

function coverage(r) {
	if (typeof r.coverage !== 'number')
		return '—';
	const min = typeof r.coverage_min === 'number' ? r.coverage_min : null;
	const low = min != null && r.coverage < min;
	return h('span', { class: low ? 'bad' : null }, pct(r.coverage),
		min != null ? h('span', { class: 'muted' }, ` (min ${pct(min)})`) : null,
		low ? h('strong', null, ' below the minimum') : null);
}

function digest(id) {
	if (!id)
		return '—';
	const m = /^(sha256:)?([0-9a-f]{12})/.exec(id);
	return h('code', { title: id }, m ? m[2] : id);
}

function pushed(r) {
	const list = r.pushed && r.pushed.length ? r.pushed : null;
	const tags = !list && r.tags && r.tags.length ? r.tags : null;
	if (!list && !tags)
		return '—';
	return h('ul', { class: 'refs' }, (list || tags).map((p) => {
		const at = p.indexOf('@sha256:');
		return h('li', { title: p }, h('code', null, at > 0 ? p.slice(0, at) : p),
			at > 0 ? h('span', { class: 'muted' }, ' @' + p.slice(at + 8, at + 20)) : null,
			tags ? h('span', { class: 'muted' }, ' (not pushed)') : null);
	}));
}

export default function jobPage(main, id) {
	let explicit = new URLSearchParams(location.search).get('stage');
	let job = null, key = '', view = null, timer = 0, gone = false;
	const head = h('div'), msg = h('div'), fails = h('div'), stages = h('div'), logArea = h('div', { class: 'logarea' });
	const arts = h('div');
	let artsFor = '';
	main.replaceChildren(h('h1', { class: 'sr' }, `Job #${id}`), head, msg, fails, stages, arts, logArea);
	title(`Job #${id}`);

	async function load() {
		clearTimeout(timer);
		try {
			const j = await getJSON(`/api/jobs/${id}`);
			if (gone)
				return;
			update(j);
		} catch (e) {
			if (gone)
				return;
			msg.replaceChildren(errorBox(e));
			if (e.status === 404 || e.status === 401)
				return;
		}
		if (!gone && (!job || !FINAL.has(job.state)))
			timer = setTimeout(load, 2000);
	}

	function update(j) {
		const k = JSON.stringify(j);
		msg.replaceChildren();
		if (k === key)
			return;
		key = k;
		job = j;
		title(`#${j.id} ${j.state}${j.title ? ' · ' + j.title : ''}`);
		renderHead();
		renderFails();
		renderStages();
		renderArtifacts();
		pickLog();
	}

	// The files the job kept (stages' artifacts:), once it is final; each
	// a download (the server sends them as attachments, never as pages).
	async function renderArtifacts() {
		const k = `${job.state}:${job.attempt}`;
		if (!FINAL.has(job.state) || artsFor === k)
			return;
		artsFor = k;
		let list = [];
		try {
			const a = await getJSON(`/api/jobs/${id}/artifacts`);
			list = (a && Array.isArray(a.artifacts)) ? a.artifacts : [];
		} catch (e) {
			list = [];
		}
		if (gone)
			return;
		fill(arts, list.length ? h('section', { class: 'artifacts', 'data-testid': 'artifacts' },
			h('h2', null, `Artifacts (${list.length})`),
			h('ul', null, list.slice(0, 500).map((f) => h('li', null,
				h('a', { href: `/api/jobs/${id}/artifacts/` + f.path.split('/').map(encodeURIComponent).join('/'),
					download: '' }, f.path),
				h('span', { class: 'muted' }, ' ' + fmtBytes(f.size))))),
			list.length > 500 ? h('p', { class: 'muted' }, `and ${list.length - 500} more (GET /api/jobs/${id}/artifacts)`) : null) : '');
	}

	function actions() {
		if (!session.admin || !job)
			return null;
		if (!FINAL.has(job.state))
			return h('button', { type: 'button', class: 'danger', 'data-testid': 'cancel', disabled: job.cancel_requested,
				onclick: cancel }, job.cancel_requested ? 'Cancelling…' : 'Cancel');
		return h('button', { type: 'button', 'data-testid': 'retry', onclick: retry }, 'Retry');
	}

	async function cancel(e) {
		if (!confirm(`Cancel job #${id}?`))
			return;
		e.target.disabled = true;
		try {
			await post(`/api/jobs/${id}/cancel`);
		} catch (err) {
			msg.replaceChildren(errorBox(err));
			e.target.disabled = false;
		}
		load();
	}

	async function retry(e) {
		e.target.disabled = true;
		try {
			const r = await post(`/api/jobs/${id}/retry`);
			if (r && r.job)
				go('/jobs/' + r.job);
		} catch (err) {
			msg.replaceChildren(errorBox(err));
			e.target.disabled = false;
		}
	}

	function renderHead() {
		const j = job;
		if (!j)
			return;
		const repoQ = '/?repo=' + encodeURIComponent(j.repo || '');
		const ref = refName(j);
		const meta = [
			['Repository', h('a', { href: repoQ }, j.repo)],
			['Ref', j.branch ? h('a', { href: repoQ + '&ref=' + encodeURIComponent(j.branch) }, ref) : ref],
			['Commit', h('code', { title: j.sha || '' }, shortSha(j.sha))],
			['Author', j.author || '—'],
			['Event', (j.event || '—') + (j.sender ? ` by ${j.sender}` : '')],
			['Created', when(j.created)],
			['Started', when(j.started)],
			['Duration', elapsed(j)],
			['Attempt', j.attempt ?? '—'],
			['Runner', j.agent || '—'],
		];
		if (j.pipeline)
			meta.push(['Pipeline', j.pipeline]);
		if (j.retry_of)
			meta.push(['Retry of', h('a', { href: '/jobs/' + j.retry_of }, '#' + j.retry_of)]);
		if (j.promoted)
			meta.push(['Promoted', 'yes']);
		if (j.status && (j.status.failing || j.status.last_error))
			meta.push(['Commit status', `${j.status.failing || 0} failing` + (j.status.last_error ? ': ' + j.status.last_error : '')]);
		const reason = j.reason || (j.summary && j.summary.message);
		fill(head,
			h('div', { class: 'jobhead' },
				h('p', { class: 'jobtitle' }, badge(j.state, 'job-state'), ' ', h('span', { class: 'num' }, '#' + j.id), ' ',
					h('span', { class: 'ctitle' }, j.title || '(no commit message)')),
				h('div', { class: 'actions' }, actions())),
			reason ? h('p', { class: 'reason st-' + j.state }, reason) : null,
			h('dl', { class: 'meta' }, meta.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))));
	}

	function renderFails() {
		const list = [];
		for (const st of job.stages || [])
			for (const f of (st.report && st.report.failures) || [])
				list.push([st.name, f]);
		fill(fails,list.length ? h('section', { class: 'fails' },
			h('h2', null, `Failing tests (${list.length})`),
			h('ul', null, list.map(([stage, f]) => h('li', { 'data-testid': 'failure' },
				h('p', { class: 'fid' }, h('span', { class: 'x', 'aria-hidden': 'true' }, '✗ '),
					h('strong', null, f.id || f.name || '(unnamed test)'),
					h('span', { class: 'muted' }, ` in stage ${stage}`)),
				h('pre', { class: 'fmsg' }, f.message || f.text || '(no assertion text)'))))) : '');
	}

	function pick(name) {
		explicit = name;
		const u = new URL(location.href);
		u.searchParams.set('stage', name);
		u.hash = '';
		history.replaceState(null, '', u);
		renderStages();
		pickLog();
	}

	function renderStages() {
		const list = job.stages || [];
		const sel = current();
		const focused = document.activeElement && document.activeElement.dataset.fk;
		const rows = list.map((st) => {
			const r = st.report || {};
			return h('tr', { 'data-testid': 'stage-row', 'data-stage': st.name, class: st.name === sel ? 'sel' : null },
				h('th', { scope: 'row', 'data-label': 'Stage' },
					h('button', { type: 'button', class: 'link', 'data-fk': 's:' + st.name, 'aria-pressed': String(st.name === sel),
						onclick: () => pick(st.name) }, st.name)),
				h('td', { 'data-label': 'Result' }, badge(st.state),
					r.message ? h('div', { class: 'smsg' }, r.message) : null),
				h('td', { 'data-label': 'Duration' }, st.state === 'running' ? 'running' :
					st.state === 'pending' ? '—' : dur(st.seconds ?? r.seconds)),
				h('td', { 'data-label': 'Tests', 'data-testid': 'stage-tests' }, testsText(r.tests)),
				h('td', { 'data-label': 'Coverage', 'data-testid': 'stage-coverage' }, coverage(r)),
				h('td', { 'data-label': 'Image' }, digest(r.image)),
				h('td', { 'data-label': 'Pushed' }, pushed(r)));
		});
		fill(stages,
			list.length ? h('section', { class: 'stages' }, h('h2', null, 'Stages'),
				h('div', { class: 'tablewrap' }, h('table', { class: 'stagetable' },
					h('thead', null, h('tr', null, ['Stage', 'Result', 'Duration', 'Tests', 'Coverage', 'Image', 'Pushed']
						.map((t) => h('th', { scope: 'col' }, t)))),
					h('tbody', null, rows))),
				graph(list, pick)) : null,
			h('p', { class: 'joblog' }, h('button', { type: 'button', class: 'link', 'data-fk': 'j', 'aria-pressed': String(sel === '_job'),
				onclick: () => pick('_job') }, 'Job log'), h('span', { class: 'muted' }, ' (checkout and runner messages)')));
		for (const td of stages.querySelectorAll('td'))
			td.classList.toggle('na', td.textContent === '—');
		if (focused) {
			const el = stages.querySelector(`[data-fk="${CSS.escape(focused)}"]`);
			if (el)
				el.focus();
		}
	}

	// The stage whose log is shown: the one picked, else the running one,
	// else the first that failed, else the last with tests, else the last that ran.
	function current() {
		const list = (job && job.stages) || [];
		if (explicit && (explicit === '_job' || list.some((st) => st.name === explicit)))
			return explicit;
		const ran = list.filter((st) => st.state !== 'pending' && st.state !== 'skipped');
		const f = (p) => ran.find(p);
		const t = ran.filter((st) => st.report && st.report.tests);
		return (f((st) => st.state === 'running') || f((st) => st.state === 'failed' || st.state === 'error') ||
			t[t.length - 1] || ran[ran.length - 1] || {}).name || null;
	}

	function pickLog() {
		const name = current();
		const list = job.stages || [];
		if (!name) {
			if (view)
				view.destroy();
			view = null;
			logArea.replaceChildren(h('p', { class: 'muted' }, job.state === 'queued' ? 'Waiting for a runner…' :
				FINAL.has(job.state) ? 'No stage ran.' : 'Starting…'));
			return;
		}
		const st = list.find((x) => x.name === name) || { state: FINAL.has(job.state) ? 'passed' : 'running' };
		const live = st.state === 'running' && !FINAL.has(job.state);
		if (view && view.stage === name && (view.live || !live))
			return;
		if (view)
			view.destroy();
		view = null;
		if (st.state === 'pending' || st.state === 'skipped') {
			logArea.replaceChildren(h('p', { class: 'muted' },
				st.state === 'pending' ? `Stage ${name} has not started yet.` : `Stage ${name} was skipped: it has no log.`));
			return;
		}
		view = new LogView(id, name, { live, bytes: st.log_bytes ?? (st.log && st.log.bytes) });
		logArea.replaceChildren(view.el);
		view.init();
	}

	const unJobs = onJobs((ids) => {
		if (!ids || ids.includes(id))
			load();
	});
	const unSession = onSession(renderHead);
	const onHash = () => view && view.jump().catch(() => {});
	addEventListener('hashchange', onHash);
	load();
	return () => {
		gone = true;
		clearTimeout(timer);
		unJobs();
		unSession();
		removeEventListener('hashchange', onHash);
		if (view)
			view.destroy();
	};
}
