// ansi.js — ANSI SGR colours of a log line, as spans with classes.
//
// Understood: reset (0), bold/dim/italic/underline/inverse (1 2 3 4 7) and
// their resets (22 23 24 27), colours 30-37 / 90-97 / 40-47 / 100-107 and
// their resets (39 49), 256 colours (38;5;n, 48;5;n: 0-15 as the classes,
// the rest as an rgb approximation) and true colour (38;2;r;g;b).  Other
// escape sequences (cursor moves, erase line, OSC titles and links) are
// dropped.  A carriage return inside a line keeps what a terminal would
// show: the text after the last one (progress bars).  The text itself only
// ever goes into text nodes.

const ESC = /\x1b(?:\[([0-9;:?<=>]*)([ -/]*[@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\x5c-\x5f])?/g;
const CUBE = [0, 95, 135, 175, 215, 255];
const FLAG = { 1: 'bold', 2: 'dim', 3: 'it', 4: 'ul', 7: 'inv' };
const UNFLAG = { 23: 'it', 24: 'ul', 27: 'inv' };

function c256(n) {
	if (!(n >= 0 && n <= 255))
		return null;
	if (n < 16)
		return n;
	if (n >= 232) {
		const g = 8 + (n - 232) * 10;
		return `rgb(${g},${g},${g})`;
	}
	n -= 16;
	return `rgb(${CUBE[Math.floor(n / 36)]},${CUBE[Math.floor(n / 6) % 6]},${CUBE[n % 6]})`;
}

export function plain(text) {
	return text.replace(ESC, '');
}

export class Ansi {
	constructor() {
		this.reset();
	}

	reset() {
		this.fg = this.bg = null;
		this.bold = this.dim = this.it = this.ul = this.inv = false;
	}

	sgr(params) {
		const p = params === '' ? [0] : params.split(/[;:]/).map((x) => parseInt(x, 10) || 0);
		for (let i = 0; i < p.length; i++) {
			const c = p[i];
			if (c === 0)
				this.reset();
			else if (FLAG[c])
				this[FLAG[c]] = true;
			else if (c === 22)
				this.bold = this.dim = false;
			else if (UNFLAG[c])
				this[UNFLAG[c]] = false;
			else if (c >= 30 && c <= 37 || c >= 90 && c <= 97)
				this.fg = c < 90 ? c - 30 : c - 82;
			else if (c >= 40 && c <= 47 || c >= 100 && c <= 107)
				this.bg = c < 100 ? c - 40 : c - 92;
			else if (c === 39 || c === 49)
				this[c === 39 ? 'fg' : 'bg'] = null;
			else if (c === 38 || c === 48) {
				const col = p[i + 1] === 5 ? c256(p[i + 2]) : p[i + 1] === 2 ?
					`rgb(${p[i + 2] & 255},${p[i + 3] & 255},${p[i + 4] & 255})` : null;
				i += p[i + 1] === 5 ? 2 : p[i + 1] === 2 ? 4 : 0;
				this[c === 38 ? 'fg' : 'bg'] = col;
			}
		}
	}

	// Appends the rendered text of one line to el.
	line(el, text) {
		text = text.replace(/\r+$/, '');
		const cut = text.lastIndexOf('\r') + 1;
		let pos = 0, m;
		ESC.lastIndex = 0;
		while ((m = ESC.exec(text))) {
			if (m.index > pos)
				this.emit(el, text.slice(Math.max(pos, cut), m.index), m.index > cut);
			if (m[2] === 'm')
				this.sgr(m[1] || '');
			pos = ESC.lastIndex;
		}
		if (pos < text.length)
			this.emit(el, text.slice(Math.max(pos, cut)), text.length > cut);
	}

	emit(el, s, shown) {
		if (!shown || !s)
			return;
		let fg = this.fg, bg = this.bg;
		if (this.inv)
			[fg, bg] = [bg ?? 'inv-f', fg ?? 'inv-b'];
		const cls = [this.bold && 'ab', this.dim && 'ad', this.it && 'ai', this.ul && 'au',
			typeof fg === 'number' && 'f' + fg, typeof bg === 'number' && 'b' + bg,
			fg === 'inv-f' && fg, bg === 'inv-b' && bg].filter(Boolean);
		if (!cls.length && fg == null && bg == null) {
			el.append(s);
			return;
		}
		const span = document.createElement('span');
		span.className = cls.join(' ');
		if (typeof fg === 'string' && fg.startsWith('rgb'))
			span.style.color = fg;
		if (typeof bg === 'string' && bg.startsWith('rgb'))
			span.style.backgroundColor = bg;
		span.textContent = s;
		el.append(span);
	}
}
