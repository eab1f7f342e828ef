// api.js — the JSON API, the session and the live job events.
//
// Reads go with the browser's cookies (sp_token, set by POST /api/login)
// so they work when the server wants a read token.  Mutating calls send
// `X-Stagepipe: 1`, the server's CSRF guard for cookie-authenticated
// requests.  Job changes arrive on one shared EventSource (/api/events);
// if the server refuses it, the pages poll every 5 s instead.

export class HttpError extends Error {
	constructor(status, msg) {
		super(msg);
		this.status = status;
	}
}

async function check(r) {
	if (r.ok)
		return r;
	let msg = `HTTP ${r.status}`;
	try {
		const j = await r.json();
		if (j && j.error)
			msg += ': ' + j.error;
	} catch { /* not JSON */ }
	if (r.status === 401)
		needLogin();
	throw new HttpError(r.status, msg);
}

export async function getJSON(path, signal) {
	const r = await fetch(path, { headers: { Accept: 'application/json' }, signal });
	return (await check(r)).json();
}

export async function post(path, body) {
	const headers = { 'X-Stagepipe': '1', Accept: 'application/json' };
	if (body !== undefined)
		headers['Content-Type'] = 'application/json';
	const r = await check(await fetch(path, {
		method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body),
	}));
	return r.status === 204 ? null : r.json().catch(() => null);
}

// ---- the session: what this browser may see and do ----------------------
// {read, admin, read_public}; a server without /api/session is public.
export const session = { read: true, admin: false, read_public: true };
const sessionSubs = new Set();

export async function loadSession() {
	try {
		const r = await fetch('/api/session', { headers: { Accept: 'application/json' } });
		if (r.ok)
			Object.assign(session, await r.json());
	} catch { /* offline: keep what we had */ }
	for (const fn of sessionSubs)
		fn(session);
}

export function onSession(fn) {
	sessionSubs.add(fn);
	return () => sessionSubs.delete(fn);
}

function needLogin() {
	if (session.read) {
		session.read = false;
		for (const fn of sessionSubs)
			fn(session);
	}
}

// ---- live job changes ----------------------------------------------------
// Subscribers get an array of changed job ids, or null for "anything may
// have changed" (after a reconnect, or on each poll).
const jobSubs = new Set();
let es = null, poller = null, broken = false;

function emit(ids) {
	for (const fn of jobSubs)
		fn(ids);
}

function start() {
	if (es || poller)
		return;
	if (!window.EventSource || broken) {
		poller = setInterval(() => emit(null), 5000);
		return;
	}
	es = new EventSource('/api/events');
	es.addEventListener('jobs', (e) => {
		let d = null;
		try {
			d = JSON.parse(e.data);
		} catch { /* ignore a bad event */ }
		emit(d && Array.isArray(d.changed) ? d.changed : null);
	});
	/* whatever changed before the stream was open (or while it was down) */
	es.onopen = () => emit(null);
	es.onerror = () => {
		if (es && es.readyState === EventSource.CLOSED) {
			es = null;
			broken = true;
			start();
		}
	};
}

function stop() {
	if (es)
		es.close();
	clearInterval(poller);
	es = poller = null;
}

export function onJobs(fn) {
	jobSubs.add(fn);
	start();
	return () => {
		jobSubs.delete(fn);
		/* a page change unsubscribes and subscribes again: keep the stream */
		setTimeout(() => jobSubs.size || stop(), 1000);
	};
}
