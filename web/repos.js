// repos.js — the repositories page: the last job of each branch (GET
// /api/repos) and the markdown of each branch's status badge.

import { h, badge, when, dur, shortSha, testsText, pct, errorBox, title } from './ui.js';
import { getJSON, onJobs } from './api.js';

export default function reposPage(main) {
	const body = h('div'), msg = h('div');
	let gone = false, key = '';
	main.replaceChildren(h('h1', { tabindex: '-1' }, 'Repositories'), msg, body);
	title('Repositories');

	function badgeBox(repo, branch) {
		const path = `/badge/${encodeURIComponent(repo)}/${branch.split('/').map(encodeURIComponent).join('/')}.svg`;
		const page = `${location.origin}/?repo=${encodeURIComponent(repo)}&ref=${encodeURIComponent(branch)}`;
		const md = `[![${repo} ${branch}](${location.origin}${path})](${page})`;
		const d = h('details', { class: 'badge' }, h('summary', null, 'Badge'));
		d.addEventListener('toggle', () => {
			if (d.open && d.children.length === 1)
				d.append(h('img', { src: path, alt: `status of ${repo} ${branch}` }),
					h('code', { class: 'md' }, md));
		});
		return d;
	}

	async function load() {
		try {
			const d = await getJSON('/api/repos');
			if (gone || JSON.stringify(d) === key)
				return;
			key = JSON.stringify(d);
			msg.replaceChildren();
			const repos = d.repos || [];
			if (!repos.length)
				return body.replaceChildren(h('p', { class: 'muted' }, 'No repositories are configured.'));
			const open = new Set([...body.querySelectorAll('details[open]')].map((x) => x.dataset.k));
			body.replaceChildren(...repos.map((r) => h('section', { class: 'repo' },
				h('h2', null, h('a', { href: '/?repo=' + encodeURIComponent(r.name) }, r.name), ' ',
					h('span', { class: 'muted' }, [r.forge, r.url_display].filter(Boolean).join(' · '))),
				(r.branches || []).length ? h('div', { class: 'tablewrap' }, h('table', { class: 'branches' },
					h('thead', null, h('tr', null, ['Branch', 'Last result', 'Job', 'Commit', 'Tests', 'Finished', 'Duration', '']
						.map((t) => h('th', { scope: 'col' }, t)))),
					h('tbody', null, r.branches.map((b) => {
						const bx = badgeBox(r.name, b.branch);
						bx.dataset.k = r.name + '\n' + b.branch;
						if (open.has(bx.dataset.k))
							bx.open = true;
						return h('tr', { 'data-testid': 'branch-row', 'data-branch': b.branch, 'data-state': b.state },
							h('th', { scope: 'row', 'data-label': 'Branch' },
								h('a', { href: `/?repo=${encodeURIComponent(r.name)}&ref=${encodeURIComponent(b.branch)}` }, b.branch)),
							h('td', { 'data-label': 'Last result' }, badge(b.state)),
							h('td', { 'data-label': 'Job' }, b.job ? h('a', { href: '/jobs/' + b.job }, '#' + b.job) : '—'),
							h('td', { 'data-label': 'Commit' }, h('code', { title: b.sha || '' }, shortSha(b.sha)), ' ', b.title || '',
								b.author ? h('span', { class: 'muted' }, ' — ' + b.author) : null),
							h('td', { 'data-label': 'Tests' }, b.tests ? testsText(b.tests) : '—',
								b.coverage != null ? h('span', { class: 'muted' }, ` · ${pct(b.coverage)} cov.`) : null),
							h('td', { 'data-label': 'Finished' }, when(b.finished)),
							h('td', { 'data-label': 'Duration' }, dur(b.seconds)),
							h('td', { 'data-label': 'Badge' }, bx));
					})))) : h('p', { class: 'muted' }, 'No pushes yet.'))));
		} catch (e) {
			if (!gone)
				msg.replaceChildren(errorBox(e));
		}
	}

	const unJobs = onJobs(() => load());
	load();
	return () => {
		gone = true;
		unJobs();
	};
}
