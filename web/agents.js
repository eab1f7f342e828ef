// agents.js — the agents page: who is online, their labels, what runs
// where.  /api/agents lists the configured agents; the local slots of
// `serve` are no agents, so the running jobs (/api/jobs?state=running) are
// listed by runner too.  Refreshed every 5 s and on job events.

import { h, badge, when, refName, errorBox, title } from './ui.js';
import { getJSON, onJobs } from './api.js';

export default function agentsPage(main) {
	const body = h('div'), runs = h('div'), msg = h('div');
	let timer = 0, gone = false;
	main.replaceChildren(h('h1', { tabindex: '-1' }, 'Agents'), msg, body, h('h2', null, 'Running jobs'), runs);
	title('Agents');

	const jobLink = (id) => h('a', { href: '/jobs/' + id }, '#' + id);

	async function load() {
		clearTimeout(timer);
		try {
			const [a, r] = await Promise.all([getJSON('/api/agents'), getJSON('/api/jobs?state=running&limit=200')]);
			if (gone)
				return;
			msg.replaceChildren();
			const agents = a.agents || [];
			body.replaceChildren(agents.length ? h('div', { class: 'tablewrap' }, h('table', { class: 'agents' },
				h('thead', null, h('tr', null, ['Agent', 'State', 'Labels', 'Last seen', 'Address', 'Free slots', 'Running']
					.map((t) => h('th', { scope: 'col' }, t)))),
				h('tbody', null, agents.map((g) => h('tr', { 'data-testid': 'agent-row', 'data-agent': g.name },
					h('th', { scope: 'row', 'data-label': 'Agent' }, g.name),
					h('td', { 'data-label': 'State' }, badge(g.online ? 'online' : 'offline')),
					h('td', { 'data-label': 'Labels' }, (g.labels || []).length ? g.labels.flatMap((l) => [h('span', { class: 'tag' }, l), ' ']) : '—'),
					h('td', { 'data-label': 'Last seen' }, when(g.last_seen)),
					h('td', { 'data-label': 'Address' }, g.address || '—'),
					h('td', { 'data-label': 'Free slots' }, g.free ?? '—'),
					h('td', { 'data-label': 'Running' }, (g.running || []).length ?
						(g.running || []).flatMap((id, i) => [i ? ', ' : '', jobLink(id)]) : 'nothing'))))))
				: h('p', { class: 'muted' }, 'No agents are configured: jobs run on the server\'s own slots.'));
			const jobs = r.jobs || [];
			runs.replaceChildren(jobs.length ? h('ul', { class: 'plain' }, jobs.map((j) => h('li', null,
				jobLink(j.id), ' ', badge(j.state), ' ', j.repo, ' · ', refName(j), ' on ',
				h('strong', null, j.agent || '?'), ' since ', when(j.started))))
				: h('p', { class: 'muted' }, 'Nothing is running.'));
		} catch (e) {
			if (!gone)
				msg.replaceChildren(errorBox(e));
		}
		if (!gone)
			timer = setTimeout(load, 5000);
	}

	const unJobs = onJobs(() => load());
	load();
	return () => {
		gone = true;
		clearTimeout(timer);
		unJobs();
	};
}
