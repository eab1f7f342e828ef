/*
 * mask.c — secret values replaced by "***"; see mask.h.
 *
 * Each secret becomes a few byte patterns (the value, its lines, its
 * base64 at three alignments); escaped forms are not listed but matched:
 * a pattern byte may appear in the text as itself or as one of a handful
 * of escapes (alt_form), so "a b&c" is found as "a+b%26c", "a b&amp;c" or
 * any mix.  Because a literal '%', '&' or '\' and an escape of the same
 * byte start alike, a match is a small depth-first search over those
 * choices, with a step budget so that no contrived secret makes it slow.
 *
 * Masking marks every byte covered by some occurrence (the longest one
 * found at each position, of any pattern) and writes one "***" per run of
 * covered bytes, which is how overlapping secrets are hidden whole.  A
 * stream decides a position only once no occurrence starting there could
 * still be completed by bytes not yet seen; what is undecided is held.
 */
#include "core/base/mask.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"

/* Ways of writing one byte: the literal, then NALT - 1 escapes. */
#define NALT 8
/* Longest escape of one byte ("&quot;", "\u0022", "&#x27;"). */
#define ALT_MAX 6

struct pat {
	unsigned char *s;
	size_t len;
	bool first[256];  /* bytes that can start an occurrence of it */
};

struct sp_mask {
	struct pat *pats;
	size_t n, alloc;
	bool first[256];  /* bytes that can start an occurrence of some pattern */
};

struct frame {
	size_t i;  /* pattern bytes matched */
	size_t t;  /* text bytes used */
	int k;     /* next way to try for pattern byte i */
};

struct scratch {
	struct frame *v;
	size_t alloc;
};

/* ---- building ---- */

struct sp_mask *sp_mask_new(void)
{
	return sp_xcalloc(1, sizeof(struct sp_mask));
}

void sp_mask_free(struct sp_mask *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n; i++) {
		OPENSSL_cleanse(m->pats[i].s, m->pats[i].len);
		free(m->pats[i].s);
	}
	free(m->pats);
	free(m);
}

bool sp_mask_active(const struct sp_mask *m)
{
	return m && m->n > 0;
}

/*
 * The k-th escape (1 <= k < NALT) of byte b into out; its length, or 0
 * when b has no such escape.  Hex digits are written lowercase; they are
 * compared without case.
 */
static size_t alt_form(unsigned char b, int k, char out[ALT_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	const char *s = NULL;
	bool special = b == '&' || b == '<' || b == '>' || b == '"' || b == '\'';

	switch (k) {
	case 1:  /* URL: %XX */
		out[0] = '%';
		out[1] = hex[b >> 4];
		out[2] = hex[b & 15];
		return 3;
	case 2:  /* URL form encoding: '+' for a space */
		if (b != ' ')
			return 0;
		out[0] = '+';
		return 1;
	case 3:  /* XML/HTML named entities */
		s = b == '&' ? "&amp;" : b == '<' ? "&lt;" : b == '>' ? "&gt;" :
		    b == '"' ? "&quot;" : b == '\'' ? "&apos;" : NULL;
		break;
	case 4:  /* decimal character reference */
		if (!special)
			return 0;
		return (size_t)snprintf(out, ALT_MAX + 1, "&#%d;", b);
	case 5:  /* hexadecimal character reference */
		if (!special)
			return 0;
		return (size_t)snprintf(out, ALT_MAX + 1, "&#x%x;", b);
	case 6:  /* JSON short escapes */
		s = b == '"' ? "\\\"" : b == '\\' ? "\\\\" : b == '/' ? "\\/" : b == '\n' ? "\\n" :
		    b == '\r' ? "\\r" : b == '\t' ? "\\t" : NULL;
		break;
	case 7:  /* JSON \u00XX */
		if (b >= 0x80)
			return 0;
		memcpy(out, "\\u00", 4);
		out[4] = hex[b >> 4];
		out[5] = hex[b & 15];
		return 6;
	default:
		return 0;
	}
	if (!s)
		return 0;
	memcpy(out, s, strlen(s) + 1);
	return strlen(s);
}

static void mark_first(bool first[256], unsigned char b)
{
	char form[ALT_MAX + 1];
	int k;

	first[b] = true;
	for (k = 1; k < NALT; k++)
		if (alt_form(b, k, form)) {
			first[(unsigned char)form[0]] = true;
			first[(unsigned char)toupper((unsigned char)form[0])] = true;
		}
}

static void add_pat(struct sp_mask *m, const void *s, size_t len)
{
	size_t i;

	if (len < SP_MASK_MIN)
		return;
	for (i = 0; i < m->n; i++)
		if (m->pats[i].len == len && !memcmp(m->pats[i].s, s, len))
			return;
	SP_GROW(m->pats, m->alloc, m->n + 1);
	m->pats[m->n].s = sp_xmalloc(len);
	memcpy(m->pats[m->n].s, s, len);
	m->pats[m->n].len = len;
	memset(m->pats[m->n].first, 0, sizeof(m->pats[m->n].first));
	mark_first(m->pats[m->n].first, *(const unsigned char *)s);
	mark_first(m->first, *(const unsigned char *)s);
	m->n++;
}

/* base64 pattern plus its URL-safe twin when that differs. */
static void add_b64(struct sp_mask *m, char *s, size_t len)
{
	size_t i;
	bool differs = false;

	add_pat(m, s, len);
	for (i = 0; i < len; i++)
		if (s[i] == '+' || s[i] == '/') {
			s[i] = s[i] == '+' ? '-' : '_';
			differs = true;
		}
	if (differs)
		add_pat(m, s, len);
}

/*
 * The base64 forms of value: the whole encoding with its padding, and for
 * each alignment a (the value starting a bytes into a 3-byte group of a
 * longer text) the characters made of the value's bits alone: character i
 * holds bits [6i, 6i + 6) of the stream, the value bits [8a, 8a + 8n).
 */
static void add_base64(struct sp_mask *m, const char *value, size_t n)
{
	unsigned char *in = sp_xmalloc(n + 2);
	char *enc = sp_xmalloc(4 * ((n + 2) / 3 + 1) + 1);
	size_t a;
	int len;

	len = EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)value, (int)n);
	add_b64(m, enc, (size_t)len);
	for (a = 0; a < 3; a++) {
		size_t from = (8 * a + 5) / 6, to = (8 * a + 8 * n) / 6;

		memset(in, 0, a);
		memcpy(in + a, value, n);
		len = EVP_EncodeBlock((unsigned char *)enc, in, (int)(n + a));
		if (to > from && to <= (size_t)len)
			add_b64(m, enc + from, to - from);
		OPENSSL_cleanse(enc, (size_t)len);
	}
	OPENSSL_cleanse(in, n + 2);
	free(in);
	free(enc);
}

int sp_mask_add(struct sp_mask *m, const char *value, size_t len, struct sp_error *err)
{
	const char *p, *end = value + len;

	if (len < SP_MASK_MIN)
		return sp_error_set(err, SP_ECONFIG, "%s (%zu byte%s): a secret must be at least %d "
				    "bytes long to be masked", len ? "too short" : "empty", len,
				    len == 1 ? "" : "s", SP_MASK_MIN);
	add_pat(m, value, len);
	if (memchr(value, '\n', len))
		for (p = value; p < end;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *e = nl ? nl : end;
			size_t l = (size_t)(e - p);

			if (l && p[l - 1] == '\r')
				l--;
			add_pat(m, p, l);
			p = nl ? nl + 1 : end;
		}
	add_base64(m, value, len);
	return 0;
}

/* ---- matching ---- */

/* What an occurrence becomes; sp_mask_found knows it by its address. */
static const char mask_text[] = SP_MASK_TEXT;

static bool same(const char *form, const unsigned char *t, size_t n, bool nocase)
{
	size_t i;

	if (!nocase)
		return !memcmp(form, t, n);
	for (i = 0; i < n; i++)
		if (tolower((unsigned char)form[i]) != tolower(t[i]))
			return false;
	return true;
}

/*
 * Occurrences of p at the start of s[0..n): *best gets the length of the
 * longest complete one (0: none).  Returns whether some way of matching
 * ran out of text, i.e. more bytes could still complete one.
 */
static bool match_at(const struct pat *p, const unsigned char *s, size_t n,
		     struct scratch *sc, size_t *best)
{
	size_t top, steps = 0, budget = 16 * p->len + 256;
	bool partial = false;

	*best = 0;
	if (sc->alloc < p->len + 1) {
		free(sc->v);
		sc->alloc = p->len + 1;
		sc->v = sp_xmalloc(sc->alloc * sizeof(*sc->v));
	}
	sc->v[0].i = 0;
	sc->v[0].t = 0;
	sc->v[0].k = 0;
	top = 1;
	while (top) {
		struct frame *f = &sc->v[top - 1];
		char form[ALT_MAX + 1];
		size_t flen, avail, cmp;
		unsigned char b;
		int k;

		if (f->i == p->len) {
			if (f->t > *best)
				*best = f->t;
			top--;
			continue;
		}
		if (++steps > budget)
			break;  /* a contrived secret: give up on this position */
		if (f->k >= NALT) {
			top--;
			continue;
		}
		k = f->k++;
		b = p->s[f->i];
		if (k == 1 && f->t < n && !strchr("%+&\\", s[f->t])) {
			/* every escape starts with one of these: only the literal
			 * (tried already) could match here */
			f->k = NALT;
			continue;
		}
		if (k == 0) {
			form[0] = (char)b;
			flen = 1;
		} else if (!(flen = alt_form(b, k, form))) {
			continue;
		}
		avail = n - f->t;
		cmp = flen < avail ? flen : avail;
		if (!same(form, s + f->t, cmp, k > 0))
			continue;
		if (cmp < flen) {
			partial = true;
			continue;
		}
		/* f->i < p->len here, so the stack never passes p->len + 1 */
		sc->v[top].i = f->i + 1;
		sc->v[top].t = f->t + flen;
		sc->v[top].k = 0;
		top++;
	}
	return partial;
}

static void emit(struct sp_mask_stream *s, const unsigned char *d, size_t len)
{
	if (len)
		s->fn(s->ud, (const char *)d, len);
}

/*
 * Decides d[0..n) from the start: literal runs and one SP_MASK_TEXT per
 * covered run go to s->fn.  Unless final, stops at the first position
 * where an occurrence may still be completed by later bytes.  Returns the
 * bytes decided; s->covered then counts the undecided bytes that are
 * already inside an occurrence.
 */
static size_t process(struct sp_mask_stream *s, const unsigned char *d, size_t n, bool final)
{
	const struct sp_mask *m = s->m;
	struct scratch sc = { s->scratch, s->scratch_alloc };
	size_t i, lit = 0, cover = s->covered, j;

	for (i = 0; i < n; i++) {
		size_t best = 0, l;
		bool partial = false;

		if (m->first[d[i]])
			for (j = 0; j < m->n; j++) {
				if (!m->pats[j].first[d[i]])
					continue;
				partial |= match_at(&m->pats[j], d + i, n - i, &sc, &l);
				if (l > best)
					best = l;
			}
		if (partial && !final)
			break;
		if (i + best > cover)
			cover = i + best;
		if (i < cover) {
			if (i > lit) {
				emit(s, d + lit, i - lit);
				s->in_run = false;
			}
			if (!s->in_run) {
				s->fn(s->ud, mask_text, sizeof(mask_text) - 1);
				s->in_run = true;
			}
			lit = i + 1;
		}
	}
	if (i > lit) {
		emit(s, d + lit, i - lit);
		s->in_run = false;
	}
	s->covered = cover > i ? cover - i : 0;
	s->scratch = sc.v;
	s->scratch_alloc = sc.alloc;
	return i;
}

/* ---- streams ---- */

void sp_mask_stream_init(struct sp_mask_stream *s, const struct sp_mask *m,
			 sp_mask_out_fn fn, void *ud)
{
	memset(s, 0, sizeof(*s));
	s->m = m;
	s->fn = fn;
	s->ud = ud;
	sp_buf_init(&s->held, 0);
}

void sp_mask_stream_feed(struct sp_mask_stream *s, const char *data, size_t len)
{
	size_t done;

	if (!sp_mask_active(s->m)) {
		emit(s, (const unsigned char *)data, len);
		return;
	}
	if (!s->held.len) {
		done = process(s, (const unsigned char *)data, len, false);
		(void)sp_buf_add(&s->held, data + done, len - done);
		return;
	}
	(void)sp_buf_add(&s->held, data, len);
	done = process(s, (const unsigned char *)s->held.data, s->held.len, false);
	OPENSSL_cleanse(s->held.data, done);
	sp_buf_consume(&s->held, done);
}

void sp_mask_stream_flush(struct sp_mask_stream *s)
{
	if (!s->held.len)
		return;
	(void)process(s, (const unsigned char *)s->held.data, s->held.len, true);
	OPENSSL_cleanse(s->held.data, s->held.len);
	sp_buf_reset(&s->held);
	s->covered = 0;
	s->in_run = false;
}

void sp_mask_stream_release(struct sp_mask_stream *s)
{
	if (s->held.len)
		OPENSSL_cleanse(s->held.data, s->held.len);
	sp_buf_release(&s->held);
	free(s->scratch);
	s->scratch = NULL;
	s->scratch_alloc = 0;
}

/* ---- whole texts ---- */

static void to_buf(void *ud, const char *data, size_t len)
{
	(void)sp_buf_add(ud, data, len);
}

void sp_mask_text(const struct sp_mask *m, const char *data, size_t len, struct sp_buf *out)
{
	struct sp_mask_stream s;

	if (!sp_mask_active(m)) {
		(void)sp_buf_add(out, data, len);
		return;
	}
	sp_mask_stream_init(&s, m, to_buf, out);
	(void)process(&s, (const unsigned char *)data, len, true);
	sp_mask_stream_release(&s);
}

char *sp_mask_dup(const struct sp_mask *m, const char *s)
{
	struct sp_buf b = SP_BUF_INIT;

	if (!s)
		return NULL;
	if (!sp_mask_active(m))
		return sp_xstrdup(s);
	sp_mask_text(m, s, strlen(s), &b);
	return sp_buf_detach(&b, NULL);
}

static void count_out(void *ud, const char *data, size_t len)
{
	if (data == mask_text && len == sizeof(mask_text) - 1)
		*(bool *)ud = true;
}

bool sp_mask_found(const struct sp_mask *m, const char *data, size_t len)
{
	struct sp_mask_stream s;
	bool hit = false;

	if (!sp_mask_active(m))
		return false;
	sp_mask_stream_init(&s, m, count_out, &hit);
	(void)process(&s, (const unsigned char *)data, len, true);
	sp_mask_stream_release(&s);
	return hit;
}

struct file_out {
	FILE *f;
	bool failed;
};

static void to_file(void *ud, const char *data, size_t len)
{
	struct file_out *o = ud;

	if (!o->failed && fwrite(data, 1, len, o->f) != len)
		o->failed = true;
}

int sp_mask_file(const struct sp_mask *m, const char *path, struct sp_error *err)
{
	struct sp_mask_stream s;
	struct file_out o = { NULL, false };
	char *tmp = NULL, chunk[65536];
	FILE *in = NULL;
	size_t n;
	int rc = 0;

	if (!sp_mask_active(m))
		return 0;
	sp_mask_stream_init(&s, m, to_file, &o);
	if (!(in = fopen(path, "rb"))) {
		rc = sp_error_set(err, SP_ERROR, "masking %s: %s", path, strerror(errno));
		goto out;
	}
	tmp = sp_xasprintf("%s.masking", path);
	if (!(o.f = fopen(tmp, "wb"))) {
		rc = sp_error_set(err, SP_ERROR, "masking %s: %s", tmp, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
		sp_mask_stream_feed(&s, chunk, n);
	sp_mask_stream_flush(&s);
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (ferror(in) || o.failed || fclose(o.f) != 0) {
		o.f = NULL;
		rc = sp_error_set(err, SP_ERROR, "masking %s failed", path);
		goto out;
	}
	o.f = NULL;
	if (rename(tmp, path) != 0) {
		rc = sp_error_set(err, SP_ERROR, "masking %s: %s", path, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
out:
	if (o.f)
		fclose(o.f);
	if (tmp) {
		(void)unlink(tmp);
		free(tmp);
	}
	if (in)
		fclose(in);
	sp_mask_stream_release(&s);
	return rc;
}
