// app.js — the web UI's entry: the router (location.pathname, history
// API; no framework), the header's login / logout, and the login form.
//
// Pages are modules whose default export draws into <main> and returns a
// cleanup function (closes its streams and timers).  Links inside the app
// are plain <a href> (keyboard, middle click and "open in new tab" work);
// a plain click is turned into pushState + route.

import { h, fill } from './ui.js';
import { session, loadSession, onSession, post } from './api.js';
import jobsPage from './jobs.js';
import jobPage from './job.js';
import agentsPage from './agents.js';
import reposPage from './repos.js';

const main = document.getElementById('main');
const auth = document.getElementById('auth');
const loginbox = document.getElementById('loginbox');
const APP = /^\/(?:jobs\/\d+\/?|agents\/?|repos\/?)?$/;
let cleanup = null, page = '';

function route(focus) {
	if (cleanup)
		cleanup();
	cleanup = null;
	const p = location.pathname;
	let m;
	for (const a of document.querySelectorAll('nav a'))
		a.toggleAttribute('aria-current', a.getAttribute('href') === (p.startsWith('/jobs/') ? '/' : p.replace(/\/$/, '') || '/'));
	if (!session.read) {
		page = 'login';
		loginbox.hidden = true;
		loginbox.replaceChildren();
		main.replaceChildren(h('h1', { tabindex: '-1' }, 'Log in'), loginForm(true));
		main.querySelector('input').focus();
		return;
	}
	if (p === '/')
		cleanup = jobsPage(main);
	else if ((m = /^\/jobs\/(\d+)\/?$/.exec(p)))
		cleanup = jobPage(main, +m[1]);
	else if (/^\/agents\/?$/.test(p))
		cleanup = agentsPage(main);
	else if (/^\/repos\/?$/.test(p))
		cleanup = reposPage(main);
	else
		main.replaceChildren(h('h1', { tabindex: '-1' }, 'Not found'), h('p', null, h('a', { href: '/' }, 'Back to the jobs')));
	page = p;
	if (focus) {
		const t = main.querySelector('h1');
		if (t && t.tabIndex >= 0)
			t.focus({ preventScroll: true });
		window.scrollTo(0, 0);
	}
}

document.addEventListener('click', (e) => {
	if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey)
		return;
	const a = e.target.closest('a[href]');
	if (!a || a.target || a.hasAttribute('download'))
		return;
	const u = new URL(a.href, location.href);
	if (u.origin !== location.origin || !APP.test(u.pathname))
		return;
	if (u.pathname === location.pathname && u.search === location.search && u.hash)
		return;  /* a fragment of this page */
	e.preventDefault();
	history.pushState(null, '', u.pathname + u.search + u.hash);
	route(true);
});
addEventListener('popstate', () => route(false));

// ---- login --------------------------------------------------------------
function loginForm(required) {
	const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true,
		'aria-describedby': 'login-help' });
	const err = h('p', { class: 'err', role: 'alert' });
	const form = h('form', { class: 'login', 'data-testid': 'login', onsubmit: async (e) => {
		e.preventDefault();
		err.textContent = '';
		try {
			await post('/api/login', { token: input.value });
		} catch (x) {
			err.textContent = x.status === 401 ? 'That token is not valid here.' : String(x.message);
			input.select();
			return;
		}
		input.value = '';
		loginbox.hidden = true;
		loginbox.replaceChildren();
		await loadSession();
		if (required || page === 'login')
			route(true);
	} },
	h('p', { id: 'login-help' }, required ? 'This server shows its jobs only to those with a token.'
		: 'Log in with the admin token to cancel and retry jobs.'),
	h('label', null, 'Token ', input), ' ', h('button', { type: 'submit' }, 'Log in'), err);
	return form;
}

function drawAuth() {
	const out = session.admin || (session.read && session.read_public === false);
	fill(auth,session.admin ? h('span', { class: 'muted' }, 'admin ') : null,
		out ? h('button', { type: 'button', class: 'link', onclick: async () => {
			try {
				await post('/api/logout');
			} catch { /* the cookie is gone either way */ }
			await loadSession();
			route(false);
		} }, 'Log out') : null,
		!session.admin && session.read && session.admin_configured !== false ? h('button', { type: 'button', class: 'link', 'data-testid': 'login-open',
			'aria-expanded': String(!loginbox.hidden), onclick: () => {
				loginbox.hidden = !loginbox.hidden;
				loginbox.replaceChildren();
				if (!loginbox.hidden) {
					loginbox.replaceChildren(loginForm(false));
					loginbox.querySelector('input').focus();
				}
				drawAuth();
			} }, 'Log in') : null);
}

onSession(() => {
	drawAuth();
	if (!session.read && page !== 'login')
		route(false);
});
await loadSession();
route(false);
