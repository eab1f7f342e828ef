/*
 * ignore.c — .dockerignore rules with moby/patternmatcher v0.6.1 semantics.
 *
 * docker/cli and BuildKit decide what goes into a build context with
 * patternmatcher; a file we send that they would have left out (or the
 * reverse) changes cache keys and, worse, what COPY sees.  So this file
 * reproduces that library step by step rather than approximating it:
 *
 *  - reading (read_lines/add_line): ignorefile.ReadAll, then New() — BOM,
 *    '#' comments before trimming, Go's TrimSpace (Unicode spaces), '!',
 *    filepath.Clean twice (once without, once with the '!'), one leading '/'
 *    stripped, the syntax check done by filepath.Match(pattern, ".");
 *  - compiling (pattern_compile): the same classification as upstream's
 *    compile() — exact string, prefix (a trailing "**" after plain text), suffix ("**" first) or
 *    regular expression — including its quirks ("**file" is a plain suffix
 *    test, so it also matches "xfile");
 *  - for the regular-expression kind upstream builds the text of a Go regexp
 *    ("*" → "[^/]*", "**" → "(.*\/)?", ".+()|{}$" escaped, everything else
 *    copied) and hands it to Go's regexp package.  We build the very same
 *    text and run it through the small engine below, which implements the
 *    part of Go's RE2 syntax that such text can contain: literals, escapes,
 *    ".", classes with ranges, negation, POSIX "[:name:]" and Perl \d\s\w
 *    groups, "^", "$", \A \z \b \B, groups and the * + ? repetitions.  So
 *    odd patterns behave as they do in docker ("[*]" really is the class
 *    "[[^/]" followed by "*" and "]", "\d" is a digit).  \p{..}, \P and
 *    \Q..\E are refused with a clear error (docker would accept them).
 *    The engine is a Pike VM — all threads advance one character at a time
 *    — so matching is linear in the path length whatever the pattern.
 *  - matching (sp_ignore_match): MatchesOrParentMatches.
 *
 * One deliberate difference: Go compiles a pattern's regexp lazily and only
 * fails (at match time, failing the whole build) when the pattern is first
 * evaluated; we compile everything while reading, so a pattern such as
 * "[z-a]" is reported with its line number before anything is sent.
 */
#include "runners/docker/ignore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/xalloc.h"

#define IGNORE_LINE_MAX 65536u        /* bufio.Scanner's token limit */
#define IGNORE_FILE_MAX (16u << 20)
#define RUNE_ERROR 0xFFFDu
#define RUNE_MAX 0x10FFFFu

/* ------------------------------------------------------------------ */
/* UTF-8 and Go's TrimSpace                                            */
/* ------------------------------------------------------------------ */

/*
 * Decodes the rune at s[0..n), n > 0, like Go's utf8.DecodeRune: anything
 * invalid (bad byte, overlong, surrogate, truncated) is U+FFFD of width 1.
 */
static uint32_t utf8_decode(const unsigned char *s, size_t n, size_t *width)
{
	uint32_t c = s[0], r = 0;
	size_t need = 0, i;
	int ok = 1;

	*width = 1;
	if (c < 0x80)
		return c;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
		r = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		r = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		r = c & 0x07;
	} else {
		return RUNE_ERROR;
	}
	if (n < need + 1)
		return RUNE_ERROR;
	for (i = 1; i <= need && ok; i++) {
		if ((s[i] & 0xC0) != 0x80)
			ok = 0;
		r = (r << 6) | (s[i] & 0x3F);
	}
	if (!ok || (need == 2 && r < 0x800) || (need == 3 && (r < 0x10000 || r > RUNE_MAX)) ||
	    (r >= 0xD800 && r <= 0xDFFF))
		return RUNE_ERROR;
	*width = need + 1;
	return r;
}

/* Appends the UTF-8 encoding of r (a valid rune or U+FFFD). */
static void utf8_append(struct sp_buf *b, uint32_t r)
{
	char e[4];

	if (r < 0x80) {
		e[0] = (char)r;
		sp_buf_add(b, e, 1);
	} else if (r < 0x800) {
		e[0] = (char)(0xC0 | (r >> 6));
		e[1] = (char)(0x80 | (r & 0x3F));
		sp_buf_add(b, e, 2);
	} else if (r < 0x10000) {
		e[0] = (char)(0xE0 | (r >> 12));
		e[1] = (char)(0x80 | ((r >> 6) & 0x3F));
		e[2] = (char)(0x80 | (r & 0x3F));
		sp_buf_add(b, e, 3);
	} else {
		e[0] = (char)(0xF0 | (r >> 18));
		e[1] = (char)(0x80 | ((r >> 12) & 0x3F));
		e[2] = (char)(0x80 | ((r >> 6) & 0x3F));
		e[3] = (char)(0x80 | (r & 0x3F));
		sp_buf_add(b, e, 4);
	}
}

/* Go's unicode.IsSpace. */
static int is_space_rune(uint32_t r)
{
	switch (r) {
	case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
	case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202F: case 0x205F: case 0x3000:
		return 1;
	default:
		return r >= 0x2000 && r <= 0x200A;
	}
}

/* strings.TrimSpace on s[0..*n): returns the new start, updates *n. */
static const char *trim_space(const char *s, size_t *n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t start = 0, end = *n, w;

	while (start < end && is_space_rune(utf8_decode(u + start, end - start, &w)))
		start += w;
	while (end > start) {
		/* the last rune: back up over continuation bytes (at most 3) */
		size_t b = end - 1, lim = end - start > 4 ? end - 4 : start;
		uint32_t r;

		while (b > lim && (u[b] & 0xC0) == 0x80)
			b--;
		r = utf8_decode(u + b, end - b, &w);
		if (b + w != end)
			r = RUNE_ERROR; /* the last byte alone is invalid */
		if (!is_space_rune(r))
			break;
		end = b;
	}
	*n = end - start;
	return s + start;
}

/* ------------------------------------------------------------------ */
/* filepath.Clean and filepath.Dir (Unix)                              */
/* ------------------------------------------------------------------ */

/* Go's path/filepath.Clean; returns a new string (its length in *outlen). */
static char *path_clean(const char *p, size_t n, size_t *outlen)
{
	char *out = sp_xmalloc(n + 2);
	size_t r = 0, w = 0, dotdot = 0;
	int rooted = n > 0 && p[0] == '/';

	if (rooted) {
		out[w++] = '/';
		r = dotdot = 1;
	}
	while (r < n) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			while (r < n && p[r] != '/')
				out[w++] = p[r++];
		}
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = '\0';
	*outlen = w;
	return out;
}

/* ------------------------------------------------------------------ */
/* A small regular-expression engine for Go RE2 syntax (see top)       */
/* ------------------------------------------------------------------ */

enum re_op {
	RE_CHAR, RE_ANY, RE_CLASS, RE_SPLIT, RE_JMP,
	RE_BOT, RE_EOT, RE_WORDB, RE_NWORDB, RE_MATCH,
};

struct re_inst {
	enum re_op op;
	uint32_t c;   /* RE_CHAR: the rune */
	size_t x, y;  /* RE_SPLIT: both targets; RE_JMP: x; RE_CLASS: x = class index */
};

struct re_class {
	uint32_t *r;  /* lo, hi pairs */
	size_t n, alloc;
	int negate;
};

struct re_prog {
	struct re_inst *inst;
	size_t n, alloc;
	struct re_class *cls;
	size_t ncls, alloc_cls;
};

struct re_parser {
	const unsigned char *s;
	size_t n, pos;
	struct re_prog *prog; /* NULL during a dry run (measuring an atom) */
	const char *err;      /* static message on failure */
};

/* POSIX groups, as in Go's regexp/syntax (perl_groups.go). */
static const uint32_t g_alnum[] = { '0', '9', 'A', 'Z', 'a', 'z' };
static const uint32_t g_alpha[] = { 'A', 'Z', 'a', 'z' };
static const uint32_t g_ascii[] = { 0x00, 0x7F };
static const uint32_t g_blank[] = { '\t', '\t', ' ', ' ' };
static const uint32_t g_cntrl[] = { 0x00, 0x1F, 0x7F, 0x7F };
static const uint32_t g_digit[] = { '0', '9' };
static const uint32_t g_graph[] = { '!', '~' };
static const uint32_t g_lower[] = { 'a', 'z' };
static const uint32_t g_print[] = { ' ', '~' };
static const uint32_t g_punct[] = { '!', '/', ':', '@', '[', '`', '{', '~' };
static const uint32_t g_space[] = { '\t', '\r', ' ', ' ' };
static const uint32_t g_upper[] = { 'A', 'Z' };
static const uint32_t g_word[] = { '0', '9', 'A', 'Z', '_', '_', 'a', 'z' };
static const uint32_t g_xdigit[] = { '0', '9', 'A', 'F', 'a', 'f' };
/* Perl \s is narrower than [:space:] (no \v). */
static const uint32_t g_perl_space[] = { '\t', '\n', '\f', '\r', ' ', ' ' };

struct re_group {
	const char *name;
	const uint32_t *r;
	size_t n; /* number of uint32_t values */
};

#define GROUP(name, arr) { name, arr, sizeof(arr) / sizeof(arr[0]) }
static const struct re_group posix_groups[] = {
	GROUP("alnum", g_alnum), GROUP("alpha", g_alpha), GROUP("ascii", g_ascii),
	GROUP("blank", g_blank), GROUP("cntrl", g_cntrl), GROUP("digit", g_digit),
	GROUP("graph", g_graph), GROUP("lower", g_lower), GROUP("print", g_print),
	GROUP("punct", g_punct), GROUP("space", g_space), GROUP("upper", g_upper),
	GROUP("word", g_word), GROUP("xdigit", g_xdigit),
};

static size_t re_emit(struct re_parser *p, enum re_op op, uint32_t c, size_t x, size_t y)
{
	struct re_prog *pr = p->prog;

	if (!pr)
		return 0;
	SP_GROW(pr->inst, pr->alloc, pr->n + 1);
	pr->inst[pr->n].op = op;
	pr->inst[pr->n].c = c;
	pr->inst[pr->n].x = x;
	pr->inst[pr->n].y = y;
	return pr->n++;
}

static size_t re_here(const struct re_parser *p)
{
	return p->prog ? p->prog->n : 0;
}

static void re_patch(struct re_parser *p, size_t at, size_t x, size_t y)
{
	if (!p->prog)
		return;
	p->prog->inst[at].x = x;
	p->prog->inst[at].y = y;
}

static void class_add(struct re_class *c, uint32_t lo, uint32_t hi)
{
	if (!c)
		return;
	SP_GROW(c->r, c->alloc, c->n * 2 + 2);
	c->r[c->n * 2] = lo;
	c->r[c->n * 2 + 1] = hi;
	c->n++;
}

/* Adds a group's ranges (sorted, disjoint) or, when negated, their complement. */
static void class_add_group(struct re_class *c, const uint32_t *r, size_t n, int negate)
{
	uint32_t next = 0;
	size_t i;

	if (!negate) {
		for (i = 0; i + 1 < n; i += 2)
			class_add(c, r[i], r[i + 1]);
		return;
	}
	for (i = 0; i + 1 < n; i += 2) {
		if (r[i] > next)
			class_add(c, next, r[i] - 1);
		next = r[i + 1] + 1;
	}
	if (next <= RUNE_MAX)
		class_add(c, next, RUNE_MAX);
}

static int class_has(const struct re_class *c, uint32_t r)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (r >= c->r[i * 2] && r <= c->r[i * 2 + 1])
			return !c->negate;
	return c->negate;
}

/* \d \D \s \S \w \W: adds the group and returns 1, or returns 0. */
static int perl_group(struct re_class *c, unsigned char letter)
{
	switch (letter) {
	case 'd': case 'D':
		class_add_group(c, g_digit, 2, letter == 'D');
		return 1;
	case 's': case 'S':
		class_add_group(c, g_perl_space, 6, letter == 'S');
		return 1;
	case 'w': case 'W':
		class_add_group(c, g_word, 8, letter == 'W');
		return 1;
	default:
		return 0;
	}
}

static int hexval(uint32_t c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

static int is_alnum_ascii(uint32_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static uint32_t re_next_rune(struct re_parser *p)
{
	size_t w;
	uint32_t r = utf8_decode(p->s + p->pos, p->n - p->pos, &w);

	p->pos += w;
	return r;
}

/* Go's parseEscape: p->pos is at the backslash.  0 or -1 (p->err set). */
static int re_escape_char(struct re_parser *p, uint32_t *out)
{
	uint32_t c, r;
	int i, v;

	p->pos++;
	if (p->pos >= p->n) {
		p->err = "trailing backslash at end of expression";
		return -1;
	}
	c = re_next_rune(p);
	if (c < 0x80 && !is_alnum_ascii(c)) {
		*out = c; /* escaped punctuation is itself */
		return 0;
	}
	if ((c >= '1' && c <= '7' && p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '7') ||
	    c == '0') {
		r = c - '0';
		for (i = 1; i < 3 && p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '7'; i++)
			r = r * 8 + (uint32_t)(p->s[p->pos++] - '0');
		*out = r;
		return 0;
	}
	switch (c) {
	case 'a': *out = '\a'; return 0;
	case 'f': *out = '\f'; return 0;
	case 'n': *out = '\n'; return 0;
	case 'r': *out = '\r'; return 0;
	case 't': *out = '\t'; return 0;
	case 'v': *out = '\v'; return 0;
	case 'x':
		if (p->pos >= p->n)
			break;
		c = re_next_rune(p);
		if (c == '{') {
			int nhex = 0;
			r = 0;
			for (;;) {
				if (p->pos >= p->n)
					goto bad;
				c = re_next_rune(p);
				if (c == '}')
					break;
				v = hexval(c);
				if (v < 0)
					goto bad;
				r = r * 16 + (uint32_t)v;
				if (r > RUNE_MAX)
					goto bad;
				nhex++;
			}
			if (nhex == 0)
				break;
			*out = r;
			return 0;
		}
		if (p->pos >= p->n)
			break;
		v = hexval(c);
		c = re_next_rune(p);
		if (v < 0 || hexval(c) < 0)
			break;
		*out = (uint32_t)(v * 16 + hexval(c));
		return 0;
	default:
		break;
	}
bad:
	p->err = "invalid escape sequence";
	return -1;
}

/* A class: p->pos is at '['. */
static int re_class(struct re_parser *p)
{
	struct re_class *c = NULL;
	size_t idx = 0;
	int first = 1;

	if (p->prog) {
		struct re_prog *pr = p->prog;
		SP_GROW(pr->cls, pr->alloc_cls, pr->ncls + 1);
		idx = pr->ncls++;
		c = &pr->cls[idx];
		memset(c, 0, sizeof(*c));
	}
	p->pos++;
	if (p->pos < p->n && p->s[p->pos] == '^') {
		if (c)
			c->negate = 1;
		p->pos++;
	}
	while (p->pos >= p->n || p->s[p->pos] != ']' || first) {
		uint32_t lo, hi;

		if (p->pos >= p->n) {
			p->err = "missing closing ]";
			return -1;
		}
		first = 0;
		/* POSIX [:name:] or [:^name:] */
		if (p->n - p->pos > 2 && p->s[p->pos] == '[' && p->s[p->pos + 1] == ':') {
			const char *rest = (const char *)p->s + p->pos + 2, *end = NULL;
			size_t k, len = p->n - p->pos - 2;

			for (k = 0; k + 1 < len; k++)
				if (rest[k] == ':' && rest[k + 1] == ']') {
					end = rest + k;
					break;
				}
			if (end) {
				const char *name = rest;
				size_t nlen = (size_t)(end - rest), g;
				int neg = nlen > 0 && name[0] == '^';

				if (neg) {
					name++;
					nlen--;
				}
				for (g = 0; g < sizeof(posix_groups) / sizeof(posix_groups[0]); g++)
					if (strlen(posix_groups[g].name) == nlen &&
					    !memcmp(posix_groups[g].name, name, nlen))
						break;
				if (g == sizeof(posix_groups) / sizeof(posix_groups[0])) {
					p->err = "invalid character class range";
					return -1;
				}
				class_add_group(c, posix_groups[g].r, posix_groups[g].n, neg);
				p->pos = (size_t)(end - (const char *)p->s) + 2;
				continue;
			}
		}
		if (p->s[p->pos] == '\\' && p->pos + 1 < p->n) {
			unsigned char e = p->s[p->pos + 1];
			if (e == 'p' || e == 'P') {
				p->err = "Unicode classes (\\p, \\P) are not supported";
				return -1;
			}
			if (perl_group(c, e)) {
				p->pos += 2;
				continue;
			}
		}
		if (p->s[p->pos] == '\\') {
			if (re_escape_char(p, &lo) < 0)
				return -1;
		} else {
			lo = re_next_rune(p);
		}
		hi = lo;
		if (p->n - p->pos >= 2 && p->s[p->pos] == '-' && p->s[p->pos + 1] != ']') {
			p->pos++;
			if (p->s[p->pos] == '\\') {
				if (re_escape_char(p, &hi) < 0)
					return -1;
			} else {
				hi = re_next_rune(p);
			}
			if (hi < lo) {
				p->err = "invalid character class range";
				return -1;
			}
		}
		class_add(c, lo, hi);
	}
	p->pos++; /* the ']' */
	re_emit(p, RE_CLASS, 0, idx, 0);
	return 0;
}

static int re_seq(struct re_parser *p);

/* One atom (without its repetition). */
static int re_atom(struct re_parser *p)
{
	unsigned char c = p->s[p->pos];
	uint32_t r;

	switch (c) {
	case '(':
		p->pos++;
		if (p->pos < p->n && p->s[p->pos] == '?') {
			p->err = "group flags and named groups are not supported";
			return -1;
		}
		if (re_seq(p) < 0)
			return -1;
		if (p->pos >= p->n || p->s[p->pos] != ')') {
			p->err = "missing closing )";
			return -1;
		}
		p->pos++;
		return 0;
	case '.':
		p->pos++;
		re_emit(p, RE_ANY, 0, 0, 0);
		return 0;
	case '^':
		p->pos++;
		re_emit(p, RE_BOT, 0, 0, 0);
		return 0;
	case '$':
		p->pos++;
		re_emit(p, RE_EOT, 0, 0, 0);
		return 0;
	case '[':
		return re_class(p);
	case '\\':
		if (p->pos + 1 < p->n) {
			unsigned char e = p->s[p->pos + 1];
			enum re_op op = RE_MATCH;

			switch (e) {
			case 'A': op = RE_BOT; break;
			case 'z': op = RE_EOT; break;
			case 'b': op = RE_WORDB; break;
			case 'B': op = RE_NWORDB; break;
			case 'p': case 'P': case 'Q':
				p->err = "\\p, \\P and \\Q escapes are not supported";
				return -1;
			default: break;
			}
			if (op != RE_MATCH) {
				p->pos += 2;
				re_emit(p, op, 0, 0, 0);
				return 0;
			}
			if (e == 'd' || e == 'D' || e == 's' || e == 'S' || e == 'w' || e == 'W') {
				struct re_class *cls = NULL;
				size_t idx = 0;

				if (p->prog) {
					struct re_prog *pr = p->prog;
					SP_GROW(pr->cls, pr->alloc_cls, pr->ncls + 1);
					idx = pr->ncls++;
					cls = &pr->cls[idx];
					memset(cls, 0, sizeof(*cls));
				}
				perl_group(cls, e);
				p->pos += 2;
				re_emit(p, RE_CLASS, 0, idx, 0);
				return 0;
			}
		}
		if (re_escape_char(p, &r) < 0)
			return -1;
		re_emit(p, RE_CHAR, r, 0, 0);
		return 0;
	case '|':
		p->err = "alternation is not supported";
		return -1;
	case ')':
		p->err = "unexpected )";
		return -1;
	case '*': case '+': case '?':
		p->err = "missing argument to repetition operator";
		return -1;
	default:
		r = re_next_rune(p);
		re_emit(p, RE_CHAR, r, 0, 0);
		return 0;
	}
}

/* A sequence of atoms, each with an optional repetition, up to ')' or the end. */
static int re_seq(struct re_parser *p)
{
	while (p->pos < p->n && p->s[p->pos] != ')') {
		struct re_prog *prog = p->prog;
		size_t start = p->pos, after, at;
		unsigned char q = 0;
		int rc;

		/* measure the atom first, so that a repetition can wrap it */
		p->prog = NULL;
		rc = re_atom(p);
		p->prog = prog;
		if (rc < 0)
			return -1;
		after = p->pos;
		if (after < p->n && (p->s[after] == '*' || p->s[after] == '+' || p->s[after] == '?')) {
			q = p->s[after++];
			if (after < p->n && p->s[after] == '?')
				after++; /* non-greedy: the same yes/no answer */
			if (after < p->n && (p->s[after] == '*' || p->s[after] == '+' ||
					     p->s[after] == '?')) {
				p->err = "invalid nested repetition operator";
				return -1;
			}
		}
		p->pos = start;
		switch (q) {
		case '*':
			at = re_emit(p, RE_SPLIT, 0, 0, 0);
			if (re_atom(p) < 0)
				return -1;
			re_emit(p, RE_JMP, 0, at, 0);
			re_patch(p, at, at + 1, re_here(p));
			break;
		case '+':
			at = re_here(p);
			if (re_atom(p) < 0)
				return -1;
			re_emit(p, RE_SPLIT, 0, at, re_here(p) + 1);
			break;
		case '?':
			at = re_emit(p, RE_SPLIT, 0, 0, 0);
			if (re_atom(p) < 0)
				return -1;
			re_patch(p, at, at + 1, re_here(p));
			break;
		default:
			if (re_atom(p) < 0)
				return -1;
			break;
		}
		p->pos = after;
	}
	return 0;
}

static void re_free(struct re_prog *pr)
{
	size_t i;

	if (!pr)
		return;
	for (i = 0; i < pr->ncls; i++)
		free(pr->cls[i].r);
	free(pr->cls);
	free(pr->inst);
	free(pr);
}

/* Compiles Go regexp text; NULL with *errmsg set when it cannot. */
static struct re_prog *re_compile(const char *text, size_t len, const char **errmsg)
{
	struct re_parser p;
	struct re_prog *pr = sp_xcalloc(1, sizeof(*pr));

	p.s = (const unsigned char *)text;
	p.n = len;
	p.pos = 0;
	p.prog = pr;
	p.err = NULL;
	if (re_seq(&p) == 0 && p.pos < p.n)
		p.err = "unexpected )"; /* re_seq stopped at an unmatched ')' */
	if (p.err) {
		*errmsg = p.err;
		re_free(pr);
		return NULL;
	}
	re_emit(&p, RE_MATCH, 0, 0, 0);
	return pr;
}

static int is_word_byte(const unsigned char *s, size_t n, size_t i)
{
	return i < n && (is_alnum_ascii(s[i]) || s[i] == '_');
}

struct re_run {
	const struct re_prog *pr;
	const unsigned char *s;
	size_t n;
	unsigned *mark;
	unsigned gen;
};

/* Adds thread pc at position pos, following jumps and zero-width assertions. */
static void re_add(struct re_run *rr, size_t *list, size_t *nlist, size_t pc, size_t pos)
{
	const struct re_inst *in = &rr->pr->inst[pc];
	int wb;

	if (rr->mark[pc] == rr->gen)
		return;
	rr->mark[pc] = rr->gen;
	switch (in->op) {
	case RE_JMP:
		re_add(rr, list, nlist, in->x, pos);
		return;
	case RE_SPLIT:
		re_add(rr, list, nlist, in->x, pos);
		re_add(rr, list, nlist, in->y, pos);
		return;
	case RE_BOT:
		if (pos == 0)
			re_add(rr, list, nlist, pc + 1, pos);
		return;
	case RE_EOT:
		if (pos == rr->n)
			re_add(rr, list, nlist, pc + 1, pos);
		return;
	case RE_WORDB:
	case RE_NWORDB:
		wb = (pos > 0 && is_word_byte(rr->s, rr->n, pos - 1)) != is_word_byte(rr->s, rr->n, pos);
		if (wb == (in->op == RE_WORDB))
			re_add(rr, list, nlist, pc + 1, pos);
		return;
	default:
		list[(*nlist)++] = pc;
		return;
	}
}

/* 1 when the whole of s[0..n) matches (the programs are anchored by ^...$). */
static int re_match(const struct re_prog *pr, const char *str, size_t n)
{
	struct re_run rr;
	size_t *clist = sp_xmalloc(pr->n * sizeof(size_t));
	size_t *nlist = sp_xmalloc(pr->n * sizeof(size_t));
	size_t nc = 0, nn, i, pos = 0, w;
	int matched = 0;

	rr.pr = pr;
	rr.s = (const unsigned char *)str;
	rr.n = n;
	rr.mark = sp_xcalloc(pr->n, sizeof(unsigned));
	rr.gen = 1;
	re_add(&rr, clist, &nc, 0, 0);
	while (nc > 0 && !matched) {
		uint32_t r;
		size_t *tmp;

		for (i = 0; i < nc; i++)
			if (pr->inst[clist[i]].op == RE_MATCH && pos == n)
				matched = 1;
		if (matched || pos >= n)
			break;
		r = utf8_decode(rr.s + pos, n - pos, &w);
		rr.gen++;
		nn = 0;
		for (i = 0; i < nc; i++) {
			const struct re_inst *in = &pr->inst[clist[i]];
			int ok = 0;

			switch (in->op) {
			case RE_CHAR: ok = r == in->c; break;
			case RE_ANY: ok = r != '\n'; break;
			case RE_CLASS: ok = class_has(&pr->cls[in->x], r); break;
			default: break;
			}
			if (ok)
				re_add(&rr, nlist, &nn, clist[i] + 1, pos + w);
		}
		tmp = clist;
		clist = nlist;
		nlist = tmp;
		nc = nn;
		pos += w;
	}
	free(rr.mark);
	free(clist);
	free(nlist);
	return matched;
}

/* ------------------------------------------------------------------ */
/* Patterns                                                            */
/* ------------------------------------------------------------------ */

enum ptype { PT_EXACT, PT_PREFIX, PT_SUFFIX, PT_REGEXP };

struct pattern {
	char *text;       /* cleaned, without the '!'; NUL-terminated */
	size_t len;
	int exclusion;    /* a "!" exception */
	enum ptype type;
	struct re_prog *re;
	unsigned line;
};

struct sp_ignore {
	struct pattern *v;
	size_t n, alloc;
	int exceptions;
};

/*
 * The syntax check of Go's filepath.Match(pattern, "."): an escape needs a
 * character after it; a class needs at least one range, ranges cannot start
 * with '-' or ']', must be valid UTF-8, and the class must be closed.
 */
static int match_syntax_ok(const char *s, size_t n)
{
	size_t i = 0, w;

	while (i < n) {
		if (s[i] == '\\') {
			if (i + 1 >= n)
				return 0;
			i += 2;
		} else if (s[i] == '[') {
			int nrange = 0, k;

			i++;
			if (i < n && s[i] == '^')
				i++;
			for (;;) {
				if (i < n && s[i] == ']' && nrange > 0) {
					i++;
					break;
				}
				for (k = 0; k < 2; k++) { /* lo, then hi after '-' */
					if (i >= n || s[i] == '-' || s[i] == ']')
						return 0;
					if (s[i] == '\\' && ++i >= n)
						return 0;
					if (utf8_decode((const unsigned char *)s + i, n - i, &w) == RUNE_ERROR &&
					    w == 1)
						return 0;
					i += w;
					if (i >= n)
						return 0;
					if (k == 1 || s[i] != '-')
						break;
					i++;
				}
				nrange++;
			}
		} else {
			i++;
		}
	}
	return 1;
}

/* Upstream's Pattern.compile for the "/" separator. */
static int pattern_compile(struct pattern *pt, const char **errmsg)
{
	static const char meta[] = ".+()|{}$";
	struct sp_buf re = SP_BUF_INIT;
	const unsigned char *s = (const unsigned char *)pt->text;
	size_t n = pt->len, pos = 0, i, w;
	enum ptype type = PT_EXACT;
	int rc = 0;

	sp_buf_addch(&re, '^');
	for (i = 0; pos < n; i++) {
		uint32_t ch = utf8_decode(s + pos, n - pos, &w);

		pos += w;
		if (ch == '*') {
			if (pos < n && s[pos] == '*') {
				pos++;
				if (pos < n && s[pos] == '/')
					pos++; /* "**\/" is "**" */
				if (pos == n) {
					if (type == PT_EXACT) {
						type = PT_PREFIX;
					} else {
						sp_buf_addstr(&re, ".*");
						type = PT_REGEXP;
					}
				} else {
					sp_buf_addstr(&re, "(.*/)?");
					type = PT_REGEXP;
				}
				if (i == 0)
					type = PT_SUFFIX;
			} else {
				sp_buf_addstr(&re, "[^/]*");
				type = PT_REGEXP;
			}
		} else if (ch == '?') {
			sp_buf_addstr(&re, "[^/]");
			type = PT_REGEXP;
		} else if (ch != 0 && ch < 0x80 && strchr(meta, (int)ch)) {
			sp_buf_addch(&re, '\\');
			sp_buf_addch(&re, (char)ch);
		} else if (ch == '\\') {
			if (pos < n) {
				uint32_t next = utf8_decode(s + pos, n - pos, &w);

				pos += w;
				sp_buf_addch(&re, '\\');
				utf8_append(&re, next);
				type = PT_REGEXP;
			} else {
				sp_buf_addch(&re, '\\');
			}
		} else if (ch == '[' || ch == ']') {
			sp_buf_addch(&re, (char)ch);
			type = PT_REGEXP;
		} else {
			utf8_append(&re, ch);
		}
	}
	pt->type = type;
	if (type == PT_REGEXP) {
		sp_buf_addch(&re, '$');
		pt->re = re_compile(re.data, re.len, errmsg);
		if (!pt->re)
			rc = -1;
	}
	sp_buf_release(&re);
	return rc;
}

static int pattern_match(const struct pattern *pt, const char *s, size_t n)
{
	size_t k;

	switch (pt->type) {
	case PT_EXACT:
		return n == pt->len && !memcmp(s, pt->text, n);
	case PT_PREFIX:
		k = pt->len - 2;
		return n >= k && !memcmp(s, pt->text, k);
	case PT_SUFFIX:
		k = pt->len - 2; /* the text after the leading "**" */
		if (n >= k && !memcmp(s + n - k, pt->text + 2, k))
			return 1;
		/* "**\/foo" also matches "foo" */
		return k > 0 && pt->text[2] == '/' && n == k - 1 && !memcmp(s, pt->text + 3, k - 1);
	case PT_REGEXP:
	default:
		return re_match(pt->re, s, n);
	}
}

static void pattern_release(struct pattern *pt)
{
	free(pt->text);
	re_free(pt->re);
}

/*
 * patternmatcher.New for one string p: trim, clean, '!', syntax check,
 * compile.  Empty strings add nothing.
 */
static int add_pattern(struct sp_ignore *ig, const char *p, size_t n, const char *name,
		       unsigned line, struct sp_error *err)
{
	struct pattern pt;
	const char *errmsg = NULL;
	char *cleaned;
	size_t clen;
	int rc = 0;

	memset(&pt, 0, sizeof(pt));
	p = trim_space(p, &n);
	if (n == 0)
		return 0;
	cleaned = path_clean(p, n, &clen);
	if (cleaned[0] == '!') {
		if (clen == 1) {
			rc = sp_error_set(err, SP_ECONFIG, "%s:%u: illegal exclusion pattern: \"!\"",
					  name, line);
			goto out;
		}
		pt.exclusion = 1;
		memmove(cleaned, cleaned + 1, clen);
		clen--;
	}
	pt.text = cleaned;
	pt.len = clen;
	pt.line = line;
	cleaned = NULL; /* owned by pt now */
	if (!match_syntax_ok(pt.text, pt.len)) {
		rc = sp_error_set(err, SP_ECONFIG, "%s:%u: syntax error in pattern \"%s\"", name, line,
				  pt.text);
		goto out;
	}
	if (pattern_compile(&pt, &errmsg) < 0) {
		rc = sp_error_set(err, SP_ECONFIG, "%s:%u: bad pattern \"%s\": %s", name, line,
				  pt.text, errmsg);
		goto out;
	}
	SP_GROW(ig->v, ig->alloc, ig->n + 1);
	ig->v[ig->n++] = pt;
	if (pt.exclusion)
		ig->exceptions = 1;
	memset(&pt, 0, sizeof(pt)); /* handed to ig */
out:
	free(cleaned);
	pattern_release(&pt);
	return rc;
}

/*
 * ignorefile.ReadAll for one line (BOM already removed): '#' comments,
 * TrimSpace, '!', Clean, one leading '/' — then New() on the result.
 */
static int add_line(struct sp_ignore *ig, const char *l, size_t n, const char *name,
		    unsigned line, struct sp_error *err)
{
	struct sp_buf pat = SP_BUF_INIT;
	int invert, rc;

	if (n > 0 && l[0] == '#')
		return 0;
	l = trim_space(l, &n);
	if (n == 0)
		return 0;
	invert = l[0] == '!';
	if (invert) {
		l++;
		n--;
		l = trim_space(l, &n);
		sp_buf_addch(&pat, '!');
	}
	if (n > 0) {
		size_t clen;
		char *c = path_clean(l, n, &clen);
		const char *s = c;

		if (clen > 1 && s[0] == '/') {
			s++;
			clen--;
		}
		sp_buf_add(&pat, s, clen);
		free(c);
	}
	rc = add_pattern(ig, pat.data, pat.len, name, line, err);
	sp_buf_release(&pat);
	return rc;
}

static int parse_named(struct sp_ignore **out, const char *text, size_t len, const char *name,
		       struct sp_error *err)
{
	struct sp_ignore *ig = sp_xcalloc(1, sizeof(*ig));
	size_t pos = 0;
	unsigned line = 0;
	int rc = 0;

	*out = NULL;
	while (pos < len) {
		const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;

		pos += n + (nl ? 1 : 0);
		if (n >= IGNORE_LINE_MAX) {
			rc = sp_error_set(err, SP_ETOOBIG, "%s:%u: line too long (64 KiB at most)",
					  name, line + 1);
			goto out;
		}
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (line == 0 && n >= 3 && !memcmp(l, "\xEF\xBB\xBF", 3)) {
			l += 3;
			n -= 3;
		}
		line++;
		rc = add_line(ig, l, n, name, line, err);
		if (rc < 0)
			goto out;
	}
	*out = ig;
	ig = NULL; /* handed to the caller */
out:
	sp_ignore_free(ig);
	return rc;
}

int sp_ignore_parse(struct sp_ignore **out, const char *text, size_t len, struct sp_error *err)
{
	return parse_named(out, text, len, ".dockerignore", err);
}

int sp_ignore_load_file(struct sp_ignore **out, const char *path, struct sp_error *err)
{
	struct sp_buf b = SP_BUF_INIT;
	char chunk[8192];
	int fd, rc = 0;
	ssize_t n;

	*out = NULL;
	sp_buf_init(&b, IGNORE_FILE_MAX);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return parse_named(out, "", 0, path, err);
		return sp_error_set(err, SP_ERROR, "cannot open %s: %s", path, strerror(errno));
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = sp_error_set(err, SP_ERROR, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (sp_buf_add(&b, chunk, (size_t)n) < 0) {
			rc = sp_error_set(err, SP_ETOOBIG, "%s is larger than %u MiB", path,
					  IGNORE_FILE_MAX >> 20);
			goto out;
		}
	}
	rc = parse_named(out, b.data, b.len, path, err);
out:
	close(fd);
	sp_buf_release(&b);
	return rc;
}

int sp_ignore_match(const struct sp_ignore *ig, const char *relpath)
{
	size_t n, plen = 0, i, k;
	char *parent = NULL;
	int matched = 0, have_parent;

	if (!ig || ig->n == 0)
		return 0;
	n = strlen(relpath);
	/* filepath.Dir: Clean of everything up to the last '/' */
	for (k = n; k > 0 && relpath[k - 1] != '/'; k--)
		;
	parent = path_clean(relpath, k, &plen);
	have_parent = !(plen == 1 && parent[0] == '.');
	for (i = 0; i < ig->n; i++) {
		const struct pattern *pt = &ig->v[i];
		int m;

		if (pt->exclusion != matched)
			continue;
		m = pattern_match(pt, relpath, n);
		/* or any parent folder: each prefix of parent ending before a '/', then parent */
		for (k = 0; !m && have_parent && k <= plen; k++)
			if (k == plen || parent[k] == '/')
				m = pattern_match(pt, parent, k);
		if (m)
			matched = !pt->exclusion;
	}
	free(parent);
	return matched;
}

int sp_ignore_may_descend(const struct sp_ignore *ig, const char *reldir)
{
	size_t n, i;

	if (!ig || !ig->exceptions)
		return 0;
	n = strlen(reldir);
	for (i = 0; i < ig->n; i++) {
		const struct pattern *pt = &ig->v[i];

		/* strings.HasPrefix(pattern + "/", reldir + "/") */
		if (pt->exclusion && pt->len >= n && !memcmp(pt->text, reldir, n) &&
		    (pt->len == n || pt->text[n] == '/'))
			return 1;
	}
	return 0;
}

size_t sp_ignore_count(const struct sp_ignore *ig)
{
	return ig ? ig->n : 0;
}

int sp_ignore_has_exceptions(const struct sp_ignore *ig)
{
	return ig ? ig->exceptions : 0;
}

void sp_ignore_free(struct sp_ignore *ig)
{
	size_t i;

	if (!ig)
		return;
	for (i = 0; i < ig->n; i++)
		pattern_release(&ig->v[i]);
	free(ig->v);
	free(ig);
}
