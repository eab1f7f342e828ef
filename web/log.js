// log.js — one stage's log: paged from the server, followed live.
//
// Never the whole file.  The first fetch is the last 256 KiB (`Range:
// bytes=-262144`); "Load earlier" / "Load later" fetch the neighbouring
// 256 KiB windows (`bytes=A-B`).  The view is always one run of whole
// lines [start, end): a window's partial first line is dropped (the window
// before it has it), and so is a partial last one.  A running stage is
// followed with an EventSource on the same URL from the view's end
// (`&from=END`; after a drop the browser resumes with Last-Event-ID).
//
// Line numbers.  When the number of the view's first line is known (the
// view starts at byte 0, or a #L link made us count the lines before it)
// lines show their real numbers, with ids and links #L<n>.  Otherwise (the
// tail of a log bigger than one window) lines are numbered from the
// window's start, a "…" row above says that earlier lines are not loaded,
// and each line links to its byte offset, #B<offset>: exact whatever is
// loaded, and opening it fetches just the window from there.  Opening #L<n>
// on such a log counts newlines from byte 0 in 1 MiB windows that are not
// kept, then shows the window that starts at line n.
//
// Search: within the loaded lines (highlighted, ↑/↓ or Enter/Shift+Enter);
// "Search earlier" pages backwards through the server window by window
// (nothing kept but the hit) and shows the window of the nearest match.

import { h, fmtBytes } from './ui.js';
import { Ansi, plain } from './ansi.js';

const WIN = 262144, COUNT_WIN = 1048576, MAX_LINES = 50000;
const dec = new TextDecoder();

async function range(url, spec, signal) {
	const r = await fetch(url, { headers: { Range: 'bytes=' + spec }, signal });
	if (r.status === 404)
		return null;
	const cr = r.headers.get('Content-Range') || '';
	if (r.status === 416) {
		const t = +((/\/(\d+)/.exec(cr) || [])[1] || 0);
		return { start: t, total: t, buf: new Uint8Array(0) };
	}
	if (!r.ok)
		throw new Error(`log: HTTP ${r.status}`);
	const buf = new Uint8Array(await r.arrayBuffer());
	const m = /bytes (\d+)-\d+\/(\d+)/.exec(cr);
	if (r.status === 206 && m)
		return { start: +m[1], total: +m[2], buf };
	return { start: 0, total: buf.length, buf };  /* 200: the whole file */
}

// The whole lines of buf (file bytes from offset at) as {s, e, text}: the
// first is dropped unless `at` is a line start (head), a last one without
// its newline kept only when `tail`.  A window without any newline (a line
// longer than a window) comes back as one cut piece.
function split(buf, at, head, tail) {
	const out = [];
	let p = 0, i;
	if (!head) {
		i = buf.indexOf(10);
		p = i < 0 ? buf.length : i + 1;
	}
	while ((i = buf.indexOf(10, p)) >= 0) {
		out.push({ s: at + p, e: at + i + 1, text: dec.decode(buf.subarray(p, i)) });
		p = i + 1;
	}
	if (p < buf.length && (tail || !out.length && head))
		out.push({ s: at + p, e: at + buf.length, text: dec.decode(buf.subarray(p)) });
	if (!out.length && buf.length)
		out.push({ s: at, e: at + buf.length, text: '… ' + dec.decode(buf), cut: true });
	return out;
}

export class LogView {
	// opts: {live: the stage runs now, bytes: the log's size if known}
	constructor(job, stage, opts = {}) {
		this.url = `/api/jobs/${job}/log?stage=${encodeURIComponent(stage)}`;
		this.stage = stage;
		this.live = !!opts.live;
		this.bytes = opts.bytes;
		this.start = this.end = this.total = 0;
		this.first = null;
		this.ansi = new Ansi();
		this.es = null;
		this.ac = new AbortController();
		this.queue = [];
		this.hits = [];
		this.cur = -1;

		this.follow = h('input', { type: 'checkbox', 'data-testid': 'follow',
			onchange: () => this.setFollow(this.follow.checked) });
		this.q = h('input', { type: 'search', placeholder: 'Search this log', 'aria-label': 'Search this log',
			oninput: () => { clearTimeout(this.qt); this.qt = setTimeout(() => this.search(), 200); },
			onkeydown: (e) => { if (e.key === 'Enter') { e.preventDefault(); this.step(e.shiftKey ? -1 : 1); } } });
		this.count = h('span', { class: 'muted', 'aria-live': 'polite' });
		this.deep = h('button', { type: 'button', hidden: true, onclick: () => this.searchEarlier() }, 'Search earlier');
		this.status = h('p', { class: 'muted logstatus', role: 'status' });
		this.topText = h('span');
		this.top = h('div', { class: 'more', hidden: true }, this.topText, ' ',
			h('button', { type: 'button', onclick: () => this.loadEarlier() }, 'Load earlier'));
		this.botText = h('span');
		this.bot = h('div', { class: 'more', hidden: true }, this.botText, ' ',
			h('button', { type: 'button', onclick: () => this.loadLater() }, 'Load later'));
		this.body = h('div', { class: 'lines', onclick: (e) => this.lineClick(e) });
		this.box = h('div', { class: 'log', 'data-testid': 'log', tabindex: '0',
			'aria-label': `Log of stage ${stage}` }, this.top, this.body, this.bot);
		this.el = h('section', { class: 'logview', 'aria-label': 'Log' },
			h('div', { class: 'logbar' },
				h('h3', null, stage === '_job' ? 'Job log' : 'Log: ' + stage),
				h('label', { class: 'follow' }, this.follow, ' Follow'),
				h('span', { class: 'search' }, this.q,
					h('button', { type: 'button', 'aria-label': 'Previous match', onclick: () => this.step(-1) }, '↑'),
					h('button', { type: 'button', 'aria-label': 'Next match', onclick: () => this.step(1) }, '↓'),
					this.count, this.deep),
				h('a', { href: this.url, download: `${job}-${stage}.log` }, 'Download')),
			this.status, this.box);
		this.follow.checked = this.live;
		this.follow.disabled = !this.live;
	}

	async init() {
		const m = /^#[LB]\d+$/.test(location.hash);
		try {
			if (this.live && this.bytes == null && !m) {
				/* a running stage may have no file yet (a 404): the stream
				 * from byte 0 instead, until it has sent a window's worth */
				this.first = 1;
				this.probe = true;
				this.status.textContent = 'Waiting for output…';
				this.edges();
			} else if (!m || location.hash[1] === 'L')
				await this.tail();
			if (m)
				await this.jump();
			else if (this.live)
				this.setFollow(true);
		} catch (e) {
			if (e.name !== 'AbortError')
				this.status.textContent = String(e.message || e);
		}
	}

	// Shows the line of location.hash: #L<n> (a line number) or #B<offset>.
	async jump() {
		const m = /^#([LB])(\d+)$/.exec(location.hash);
		if (!m)
			return;
		const d = m[1] === 'L' ? this.line(+m[2]) : this.body.querySelector('#' + m[1] + m[2]);
		if (d)
			this.mark(d);
		else if (m[1] === 'B')
			await this.showAt(+m[2], null);
		else if (this.total)
			await this.gotoLine(+m[2]);
		this.setFollow(false);
	}

	destroy() {
		this.closeES();
		this.ac.abort();
		this.scanning = false;
	}

	// The last window of the log.
	async tail() {
		this.closeES();
		if (this.bytes === 0 && !this.total) {
			this.reset([], 0, 0, 1);
			this.status.textContent = this.live ? 'No output yet.' : 'This stage wrote no log.';
			return;
		}
		const r = await range(this.url, '-' + WIN, this.ac.signal);
		if (!r) {
			this.reset([], 0, 0, 1);
			this.status.textContent = this.live ? 'No output yet.' : 'This stage has no log.';
			return;
		}
		const list = split(r.buf, r.start, r.start === 0, !this.live);
		this.total = r.total;
		this.reset(list, r.start, r.start + r.buf.length, r.start === 0 ? 1 : null);
		this.status.textContent = list.length ? '' : this.live ? 'No output yet.' : 'The log is empty.';
		this.box.scrollTop = this.box.scrollHeight;
	}

	// The window that starts at byte off (a line start); first: its number.
	async showAt(off, first) {
		this.setFollow(false);
		const r = await range(this.url, `${off}-${off + WIN - 1}`, this.ac.signal);
		if (!r)
			return this.tail();
		this.total = r.total;
		const at = Math.min(off, r.total);
		const list = split(r.buf, at, true, at + r.buf.length >= r.total && !this.live);
		this.reset(list, at, at + r.buf.length, first ?? (at === 0 ? 1 : null));
		const d = this.body.firstChild;
		if (d)
			this.mark(d);
	}

	// Counts lines from byte 0 to find line n (only its window is kept).
	async gotoLine(n) {
		let pos = 0, line = 1;
		if (n <= 1)
			return this.showAt(0, 1);
		this.scanning = true;
		while (this.scanning) {
			this.status.textContent = `Finding line ${n}… (${fmtBytes(pos)} read)`;
			const r = await range(this.url, `${pos}-${pos + COUNT_WIN - 1}`, this.ac.signal);
			if (!r || !r.buf.length)
				break;
			let i = -1;
			while ((i = r.buf.indexOf(10, i + 1)) >= 0)
				if (++line === n) {
					this.status.textContent = '';
					return this.showAt(r.start + i + 1, n);
				}
			pos = r.start + r.buf.length;
			if (pos >= r.total)
				break;
		}
		this.status.textContent = this.scanning ? `The log has no line ${n}.` : '';
		this.scanning = false;
	}

	reset(list, start, end, first) {
		this.body.replaceChildren();
		this.ansi.reset();
		this.start = list.length ? list[0].s : start;
		this.end = list.length ? list[list.length - 1].e : Math.max(start, end);
		this.first = this.start === 0 ? 1 : first;
		this.append(list);
		this.edges();
	}

	lineEl(l) {
		const d = document.createElement('div');
		d.className = l.cut ? 'ln cut' : 'ln';
		d.setAttribute('data-testid', 'log-line');
		d._s = l.s;
		const a = document.createElement('a');
		a.className = 'n';
		a.tabIndex = -1;
		const t = document.createElement('span');
		t.className = 't';
		this.ansi.line(t, l.text);
		d.append(a, t);
		return d;
	}

	number(d, i) {
		const a = d.firstChild;
		const n = this.first != null ? this.first + i : i + 1;
		const id = this.first != null ? 'L' + n : 'B' + d._s;
		a.textContent = this.first != null ? n : '+' + n;
		a.href = '#' + id;
		d.id = id;
	}

	renumber() {
		let i = 0;
		for (const d of this.body.children)
			this.number(d, i++);
	}

	append(list) {
		const f = document.createDocumentFragment();
		let i = this.body.childElementCount;
		for (const l of list) {
			const d = this.lineEl(l);
			this.number(d, i++);
			f.append(d);
		}
		this.body.append(f);
		if (list.length)
			this.end = list[list.length - 1].e;
		if (this.body.childElementCount > MAX_LINES) {
			/* a long follow: drop the oldest lines from the page */
			let drop = this.body.childElementCount - MAX_LINES + 10000;
			while (drop--)
				this.body.firstChild.remove();
			this.start = this.body.firstChild._s;
			this.first = null;
			this.renumber();
			this.edges();
		}
	}

	edges() {
		this.top.hidden = this.start === 0;
		this.topText.textContent = `… ${fmtBytes(this.start)} earlier not shown`;
		const later = this.total - this.end;
		this.bot.hidden = later <= 0 || !!this.es;
		this.botText.textContent = `${fmtBytes(later)} later not shown`;
		this.deep.hidden = this.start === 0;
	}

	async loadEarlier() {
		if (this.start <= 0)
			return;
		const a = Math.max(0, this.start - WIN);
		const r = await range(this.url, `${a}-${this.start - 1}`, this.ac.signal);
		if (!r)
			return;
		const list = split(r.buf, a, a === 0, false);
		const before = this.box.scrollHeight;
		const f = document.createDocumentFragment();
		this.ansi.reset();
		for (const l of list)
			f.append(this.lineEl(l));
		this.body.prepend(f);
		if (list.length)
			this.start = list[0].s;
		if (this.first != null)
			this.first = Math.max(1, this.first - list.length);
		if (this.start === 0)
			this.first = 1;
		this.renumber();
		this.edges();
		this.box.scrollTop += this.box.scrollHeight - before;
		if (this.q.value)
			this.search(true);
	}

	async loadLater() {
		const r = await range(this.url, `${this.end}-${this.end + WIN - 1}`, this.ac.signal);
		if (!r)
			return;
		this.total = r.total;
		this.append(split(r.buf, this.end, true, this.end + r.buf.length >= r.total && !this.live));
		this.edges();
		if (this.q.value)
			this.search(true);
	}

	// ---- following a running stage ------------------------------------
	setFollow(on) {
		this.follow.checked = on;
		if (!on) {
			this.closeES();
			this.edges();
			return;
		}
		if (!this.live || this.es)
			return;
		if (this.end < this.total) {
			/* the view is not at the end: show the end first */
			this.tail().then(() => this.openES(), (e) => e.name === 'AbortError' || (this.status.textContent = e.message));
			return;
		}
		this.openES();
	}

	openES() {
		if (this.es || !this.live)
			return;
		let at = this.end;
		const es = this.es = new EventSource(`${this.url}&from=${this.end}`);
		es.onmessage = (e) => {
			const id = +e.lastEventId;
			this.queue.push({ s: at, e: id || at, text: e.data });
			at = id || at;
			if (!this.raf)
				this.raf = requestAnimationFrame(() => this.flush());
		};
		es.addEventListener('end', (e) => {
			this.flush();
			this.probe = false;
			this.closeES();
			this.live = false;
			this.follow.checked = false;
			this.follow.disabled = true;
			this.total = this.end;
			this.edges();
			this.status.textContent = `The job ended: ${e.data}.`;
		});
		es.onerror = () => {
			if (es.readyState === EventSource.CLOSED) {
				this.closeES();
				this.follow.checked = false;
				this.status.textContent = 'The live log was refused by the server; Follow tries again.';
			}
		};
		this.edges();
	}

	closeES() {
		if (this.es) {
			this.es.close();
			this.es = null;
		}
	}

	flush() {
		cancelAnimationFrame(this.raf);
		this.raf = 0;
		if (!this.queue.length)
			return;
		const b = this.box;
		const stick = b.scrollTop + b.clientHeight >= b.scrollHeight - 40;
		this.status.textContent = '';
		this.append(this.queue);
		this.queue = [];
		if (this.probe && this.end > WIN) {
			/* a big log: its last window instead, then follow from there */
			this.probe = false;
			this.closeES();
			this.tail().then(() => this.openES(), () => {});
			return;
		}
		this.total = Math.max(this.total, this.end);
		if (stick && this.follow.checked)
			b.scrollTop = b.scrollHeight;
		if (this.q.value)
			this.search(true);
	}

	// ---- line links -----------------------------------------------------
	line(n) {
		return this.first != null ? this.body.querySelector('#L' + n) : null;
	}

	mark(d) {
		const old = this.body.querySelector('.hl');
		if (old)
			old.classList.remove('hl');
		d.classList.add('hl');
		d.scrollIntoView({ block: 'center' });
	}

	lineClick(e) {
		const a = e.target.closest('a.n');
		if (!a)
			return;
		e.preventDefault();
		const u = new URL(location.href);
		u.searchParams.set('stage', this.stage);
		u.hash = a.getAttribute('href');
		history.replaceState(null, '', u);
		this.mark(a.parentNode);
	}

	// ---- search -----------------------------------------------------------
	search(keep) {
		const q = this.q.value.toLowerCase();
		const was = this.hits[this.cur];
		for (const d of this.hits)
			d.classList.remove('hit', 'cur');
		this.hits = [];
		if (q)
			for (const d of this.body.children)
				if (d.lastChild.textContent.toLowerCase().includes(q)) {
					d.classList.add('hit');
					this.hits.push(d);
				}
		this.cur = keep && was ? this.hits.indexOf(was) : -1;
		if (this.cur >= 0)
			was.classList.add('cur');
		else if (!keep && this.hits.length)
			this.step(1);
		this.counter();
	}

	step(dir) {
		if (!this.hits.length) {
			this.search();
			if (!this.hits.length && this.q.value && this.start > 0)
				this.count.textContent = 'not in the loaded part';
			return;
		}
		if (this.cur >= 0)
			this.hits[this.cur].classList.remove('cur');
		this.cur = (this.cur + dir + this.hits.length) % this.hits.length;
		const d = this.hits[this.cur];
		d.classList.add('cur');
		d.scrollIntoView({ block: 'center' });
		this.counter();
	}

	counter() {
		this.count.textContent = this.q.value ?
			(this.hits.length ? `${this.cur + 1}/${this.hits.length}` : 'no match') : '';
	}

	// Pages backwards from the view's start for the nearest earlier match.
	async searchEarlier() {
		const q = this.q.value.toLowerCase();
		if (this.scanning) {
			this.scanning = false;
			return;
		}
		if (!q)
			return;
		this.scanning = true;
		this.deep.textContent = 'Stop';
		let pos = this.start, carry = new Uint8Array(0), found = -1;
		try {
			while (this.scanning && pos > 0 && found < 0) {
				this.status.textContent = `Searching… ${fmtBytes(pos)} to go`;
				const a = Math.max(0, pos - WIN);
				const r = await range(this.url, `${a}-${pos - 1}`, this.ac.signal);
				if (!r)
					break;
				const buf = new Uint8Array(r.buf.length + carry.length);
				buf.set(r.buf);
				buf.set(carry, r.buf.length);
				const list = split(buf, a, a === 0, false);
				carry = list.length && !list[0].cut ? buf.subarray(0, list[0].s - a) : buf;
				for (let i = list.length - 1; i >= 0 && found < 0; i--)
					if (!list[i].cut && plain(list[i].text).toLowerCase().includes(q))
						found = list[i].s;
				pos = a;
			}
			this.status.textContent = found < 0 && this.scanning ? `“${this.q.value}” is not in the earlier part of the log.` : '';
			if (found >= 0) {
				await this.showAt(Math.max(0, found), null);
				this.search(true);
				const d = this.body.firstChild;
				this.cur = this.hits.indexOf(d);
				if (d)
					d.classList.add('cur');
				this.counter();
			}
		} catch (e) {
			if (e.name !== 'AbortError')
				this.status.textContent = String(e.message || e);
		}
		this.scanning = false;
		this.deep.textContent = 'Search earlier';
	}
}
