// ui.js — small DOM helpers shared by the pages.
//
// Everything the server sends (commit messages, author names, test output,
// logs) is hostile input: it only ever enters the page as text nodes or
// textContent (h() turns string children into text nodes), never through
// innerHTML.  Attribute values we build ourselves from numbers and
// encodeURIComponent'd names.

export function h(tag, attrs, ...kids) {
	const el = document.createElement(tag);
	for (const k in attrs || {}) {
		const v = attrs[k];
		if (v == null || v === false)
			continue;
		if (k === 'class')
			el.className = v;
		else if (k.startsWith('on'))
			el.addEventListener(k.slice(2), v);
		else
			el.setAttribute(k, v === true ? '' : v);
	}
	add(el, kids);
	return el;
}

// Replaces el's children (null and false are skipped).
export function fill(el, ...kids) {
	el.replaceChildren();
	add(el, kids);
	return el;
}

function add(el, kids) {
	for (const c of kids) {
		if (c == null || c === false)
			continue;
		if (Array.isArray(c))
			add(el, c);
		else
			el.append(c instanceof Node ? c : String(c));
	}
}

export const FINAL = new Set(['passed', 'failed', 'error', 'cancelled', 'skipped']);
const ICON = {
	queued: '◷', pending: '○', running: '◐', passed: '✓', failed: '✗',
	error: '⚠', cancelled: '⊘', skipped: '»', online: '●', offline: '○',
};

// A state as icon + word + colour (never colour alone).
export function badge(state, testid) {
	const s = String(state || 'unknown');
	return h('span', { class: 'st st-' + (ICON[s] ? s : 'unknown'), 'data-testid': testid },
		h('span', { class: 'ic', 'aria-hidden': 'true' }, ICON[s] || '?'), s);
}

export const stateText = (s) => (ICON[s] || '?') + ' ' + s;

export function dur(sec) {
	if (sec == null || !isFinite(sec) || sec < 0)
		return '—';
	if (sec < 10)
		return sec.toFixed(1) + ' s';
	sec = Math.round(sec);
	if (sec < 60)
		return sec + ' s';
	const m = Math.floor(sec / 60), s = sec % 60;
	if (m < 60)
		return `${m} min ${String(s).padStart(2, '0')} s`;
	return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function ago(iso) {
	const t = Date.parse(iso);
	if (!t)
		return '—';
	const s = (Date.now() - t) / 1000;
	if (s < 45)
		return 'just now';
	if (s < 3600)
		return Math.round(s / 60) + ' min ago';
	if (s < 86400)
		return Math.round(s / 3600) + ' h ago';
	if (s < 86400 * 7)
		return Math.round(s / 86400) + ' d ago';
	return new Date(t).toISOString().slice(0, 10);
}

// A time shown relative ("3 min ago"), exact on hover; kept fresh by tick().
export function when(iso) {
	return iso ? h('time', { datetime: iso, title: iso, 'data-ago': iso }, ago(iso)) : '—';
}

// A duration: fixed when finished, counting up (tick()) while running.
export function elapsed(job) {
	if (job.finished || !job.started)
		return h('span', null, job.started ? dur(job.seconds) : '—');
	return h('span', { 'data-since': job.started }, dur((Date.now() - Date.parse(job.started)) / 1000));
}

setInterval(() => {
	for (const el of document.querySelectorAll('[data-since]'))
		el.textContent = dur((Date.now() - Date.parse(el.dataset.since)) / 1000);
	for (const el of document.querySelectorAll('[data-ago]'))
		el.textContent = ago(el.dataset.ago);
}, 1000);

export const shortSha = (s) => (s ? String(s).slice(0, 8) : '—');

export function refName(j) {
	if (j.pr != null)
		return 'PR #' + j.pr + (j.branch ? ' (' + j.branch + ')' : '');
	return j.branch || j.tag || String(j.ref || '—').replace(/^refs\/(heads|tags)\//, '');
}

export function fmtBytes(n) {
	if (n < 1024)
		return n + ' B';
	if (n < 1048576)
		return (n / 1024).toFixed(1) + ' KiB';
	return (n / 1048576).toFixed(1) + ' MiB';
}

export function pct(v) {
	return typeof v === 'number' && isFinite(v) ? (Math.round(v * 10) / 10) + '%' : '';
}

// "17 passed, 1 failed" from a report's tests object.
export function testsText(t) {
	if (!t || typeof t !== 'object')
		return '—';
	if (!t.total && !t.passed && !t.failed && !t.errors)
		return 'no tests';
	const parts = [(t.passed || 0) + ' passed'];
	if (t.failed)
		parts.push(t.failed + ' failed');
	if (t.errors)
		parts.push(t.errors + ' errors');
	if (t.skipped)
		parts.push(t.skipped + ' skipped');
	return parts.join(', ');
}

// Tests and coverage of a job: the list row's own fields when the server
// sends them, else summed from the stage reports of the job detail.
export function jobSummary(j) {
	if (j.tests !== undefined || j.coverage !== undefined)
		return { tests: j.tests || null, coverage: j.coverage ?? null };
	let tests = null, coverage = null;
	for (const s of j.stages || []) {
		const r = s.report || {};
		if (r.tests) {
			tests = tests || { total: 0, passed: 0, failed: 0, errors: 0, skipped: 0 };
			for (const k in tests)
				tests[k] += r.tests[k] || 0;
		}
		if (typeof r.coverage === 'number')
			coverage = r.coverage;
	}
	return { tests, coverage };
}

export function errorBox(err) {
	return h('p', { class: 'err', role: 'alert' }, String(err && err.message || err));
}

export function title(t) {
	document.title = t ? t + ' · stagepipe' : 'stagepipe';
}
