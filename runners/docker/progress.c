/*
 * progress.c — the POST /build response decoder and its plain printer; see
 * progress.h.
 *
 * The decoder is a line splitter (one capped sp_buf holding the bytes of
 * the line being received) in front of a dispatcher on the JSON fields of
 * each line.  BuildKit trace lines are base64 StatusResponse messages that
 * only say what changed, so the decoder keeps one record per vertex,
 * found by digest through a small open-addressing table: its name, start
 * and completion times, error, its #N step number once it became active,
 * the statuses already reported (to report only changes), and the bytes
 * of a log line whose '\n' has not come yet.  Within one message the
 * events go out in the order buildx prints them — new steps, statuses,
 * logs, warnings, then the steps that completed (by completion time) — so
 * that a step's last log lines always precede its DONE or ERROR.
 *
 * The printer keeps, per step, its name and a ring of its last
 * SP_PROGRESS_TAIL_LINES printed lines, dropped as soon as the step
 * succeeds: only failed steps need them, for the "------" block at the end.
 * Format references: moby/buildkit util/progress/progressui/printer.go
 * (textMux.printVtx) and display.go (log line prefixes, printErrorLogs).
 */
#include "runners/docker/progress.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "buildkit.pb-c.h"
#include "core/base/buf.h"
#include "core/base/xalloc.h"
#include "runners/docker/jsonmsg.h"

/* More vertices than any real build has; beyond is a hostile stream. */
#define VTX_MAX 100000
/* Statuses remembered per vertex; later new ids are not reported. */
#define STATUS_MAX 512
/* Longest line the printer keeps in a step's tail. */
#define TAIL_LINE_MAX 4096
/* How much of a step name and of the daemon's error go into a message. */
#define MSG_NAME_MAX 200
#define MSG_ERROR_MAX 1200

#define BRIDGE_MISSING "network bridge not found"
#define BRIDGE_HINT \
	" (hint: this engine has no \"bridge\" network; set `build.network: host`" \
	" or `build.network: none` in the pipeline)"

/* ------------------------------------------------------------------ */
/* Decoder state.                                                      */

struct ts {
	int64_t sec;
	int32_t nsec;
	int set;
};

struct pstatus {
	char *id;
	int64_t current;
	int64_t total;
	int completed;
};

struct vtx {
	char *digest;
	char *name;         /* "" until known */
	char *error;        /* NULL unless the vertex completed with one */
	struct ts started;
	struct ts completed;
	int cached;
	int step;           /* #N; 0 until the vertex became active */
	int done;           /* vertex_done emitted for the current run */
	/* Per message (valid while seq == the decoder's seq): */
	unsigned long seq;
	int pending;        /* completes in this message: vertex_done to emit */
	int restarted;      /* ran again: vertex_started to emit again */
	int flushed;        /* its events for this message went out */
	size_t item_head, item_tail; /* its statuses/logs/warnings, index+1 */
	int enospc;         /* a log line said "No space left on device" */
	struct sp_buf partial; /* log bytes after the last '\n' */
	double partial_secs;
	int partial_stream;
	struct pstatus *st;
	size_t nst, st_alloc;
};

struct sp_progress {
	struct sp_progress_handler h;
	struct sp_buf in;      /* the line being received */
	size_t lineno;         /* lines taken from the stream so far */

	struct vtx **v;        /* in order of first appearance */
	size_t nv, v_alloc;
	size_t *tab;           /* index+1 into v; 0 = empty slot */
	size_t tab_size;       /* power of two */
	int nsteps;
	/* The message being applied: */
	unsigned long seq;
	struct vtx **pending;  /* vertices it completes */
	size_t npending, pending_alloc;
	struct vtx **touched;  /* vertices it mentions, in order */
	size_t ntouched, touched_alloc;
	size_t *item_next;     /* per-vertex item lists (see vtx_link) */
	size_t item_alloc;
	struct vtx *failed;    /* first vertex that ended in ERROR */

	struct sp_buf classic; /* classic "stream" text after the last '\n' */
	char *classic_step;    /* last "Step N/M : ..." line */
	char *image_id;
	char *daemon_error;

	int broken;            /* a feed error; saved holds it */
	int finished;          /* sp_progress_finish ran; saved holds its result */
	struct sp_error saved;
};

static int fail(struct sp_progress *p, struct sp_error *err, int code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Records the decoder's (first) error and copies it to err. */
static int fail(struct sp_progress *p, struct sp_error *err, int code,
		const char *fmt, ...)
{
	struct sp_buf msg = SP_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	sp_buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	p->broken = 1;
	sp_error_set(&p->saved, code, "%s", msg.data);
	sp_buf_release(&msg);
	return sp_error_set(err, code, "%s", p->saved.msg);
}

static int replay(const struct sp_progress *p, struct sp_error *err)
{
	if (p->saved.code == 0)
		return 0;
	return sp_error_set(err, p->saved.code, "%s", p->saved.msg);
}

static struct ts ts_of(const Spbk__Timestamp *t)
{
	struct ts r = { 0, 0, 0 };

	if (t) {
		r.sec = t->seconds;
		r.nsec = t->nanos;
		r.set = 1;
	}
	return r;
}

/* b - a in seconds, computed in double so hostile values cannot overflow. */
static double ts_diff(struct ts b, struct ts a)
{
	return ((double)b.sec - (double)a.sec) + ((double)b.nsec - (double)a.nsec) / 1e9;
}

static int ts_before(struct ts a, struct ts b)
{
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec);
}

static int ts_eq(struct ts a, struct ts b)
{
	return a.set == b.set && a.sec == b.sec && a.nsec == b.nsec;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ------------------------------------------------------------------ */
/* Vertex table.                                                       */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
	}
	return h;
}

static struct vtx *vtx_find(const struct sp_progress *p, const char *digest)
{
	size_t mask, i;

	if (!p->tab_size)
		return NULL;
	mask = p->tab_size - 1;
	for (i = hash_str(digest) & mask; p->tab[i]; i = (i + 1) & mask) {
		struct vtx *v = p->v[p->tab[i] - 1];

		if (strcmp(v->digest, digest) == 0)
			return v;
	}
	return NULL;
}

static void tab_insert(size_t *tab, size_t size, const char *digest, size_t idx1)
{
	size_t mask = size - 1, i;

	for (i = hash_str(digest) & mask; tab[i]; i = (i + 1) & mask)
		;
	tab[i] = idx1;
}

/* Finds or adds the vertex with this digest; NULL when there are too many. */
static struct vtx *vtx_get(struct sp_progress *p, const char *digest)
{
	struct vtx *v = vtx_find(p, digest);
	size_t i;

	if (v)
		return v;
	if (p->nv >= VTX_MAX)
		return NULL;
	if ((p->nv + 1) * 2 > p->tab_size) {
		size_t size = p->tab_size ? p->tab_size * 2 : 64;
		size_t *tab = sp_xcalloc(size, sizeof(*tab));

		for (i = 0; i < p->nv; i++)
			tab_insert(tab, size, p->v[i]->digest, i + 1);
		free(p->tab);
		p->tab = tab;
		p->tab_size = size;
	}
	v = sp_xcalloc(1, sizeof(*v));
	v->digest = sp_xstrdup(digest);
	v->name = sp_xstrdup("");
	sp_buf_init(&v->partial, 0);
	SP_GROW(p->v, p->v_alloc, p->nv + 1);
	p->v[p->nv++] = v;
	tab_insert(p->tab, p->tab_size, v->digest, p->nv);
	return v;
}

static void vtx_free(struct vtx *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->nst; i++)
		free(v->st[i].id);
	free(v->st);
	sp_buf_release(&v->partial);
	free(v->digest);
	free(v->name);
	free(v->error);
	free(v);
}

/* ------------------------------------------------------------------ */
/* Events.                                                             */

/* Gives v its #N and announces it, the first time it shows activity. */
static void vtx_activate(struct sp_progress *p, struct vtx *v)
{
	if (v->step)
		return;
	v->step = ++p->nsteps;
	if (p->h.vertex_started)
		p->h.vertex_started(p->h.ud, v->step, v->name);
}

/* ENOSPC's text (strerror, Go's syscall.ENOSPC) anywhere in s[0..len), any case */
static int says_enospc(const char *s, size_t len)
{
	static const char needle[] = "no space left on device";
	size_t i, n = sizeof(needle) - 1;

	for (i = 0; i + n <= len; i++)
		if (!strncasecmp(s + i, needle, n))
			return 1;
	return 0;
}

/* line is v->partial's (writable) data: a trailing '\r' is cut off. */
static void emit_log(struct sp_progress *p, struct vtx *v, char *line,
		     size_t len, double secs, int stream)
{
	struct sp_progress_log ev;

	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	if (!v->enospc && says_enospc(line, len))
		v->enospc = 1;
	if (!p->h.vertex_log)
		return;
	ev.line = line;
	ev.len = len;
	ev.secs = secs;
	ev.stream = stream;
	p->h.vertex_log(p->h.ud, v->step, &ev);
}

/* Emits the held-back partial line of v, if any, as a line of its own. */
static void flush_partial(struct sp_progress *p, struct vtx *v)
{
	if (!v->partial.len)
		return;
	emit_log(p, v, v->partial.data, v->partial.len, v->partial_secs,
		 v->partial_stream);
	/* A long line's memory is not worth keeping for the next one. */
	if (v->partial.alloc > 4096)
		sp_buf_release(&v->partial);
	else
		sp_buf_reset(&v->partial);
}

/*
 * Splits a log chunk into lines; bytes after the last '\n' wait in
 * v->partial for the next chunk (they keep the time of their first chunk,
 * as buildx does), and are broken off at SP_PROGRESS_PARTIAL_MAX.
 */
static void vtx_log(struct sp_progress *p, struct vtx *v, const unsigned char *data,
		    size_t len, double secs, int stream)
{
	const char *s = (const char *)data;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t seg = nl ? (size_t)(nl - (s + pos)) : len - pos;

		if (!v->partial.len) {
			v->partial_secs = secs;
			v->partial_stream = stream;
		}
		while (v->partial.len + seg > SP_PROGRESS_PARTIAL_MAX) {
			size_t room = SP_PROGRESS_PARTIAL_MAX - v->partial.len;

			sp_buf_add(&v->partial, s + pos, room);
			pos += room;
			seg -= room;
			flush_partial(p, v);
			v->partial_secs = secs;
			v->partial_stream = stream;
		}
		sp_buf_add(&v->partial, s + pos, seg);
		pos += seg;
		if (nl) {
			pos++;
			emit_log(p, v, v->partial.data, v->partial.len,
				 v->partial_secs, v->partial_stream);
			sp_buf_reset(&v->partial);
		}
	}
	if (!v->partial.len && v->partial.alloc > 4096)
		sp_buf_release(&v->partial);
}

static void vtx_emit_done(struct sp_progress *p, struct vtx *v)
{
	struct sp_progress_done ev;

	flush_partial(p, v);
	v->done = 1;
	ev.name = v->name;
	ev.error = v->error ? v->error : "";
	ev.secs = v->started.set && v->completed.set ?
		ts_diff(v->completed, v->started) : -1.0;
	if (v->error && has_suffix(v->error, "context canceled")) {
		ev.outcome = SP_PROGRESS_CANCELED;
	} else if (v->error) {
		ev.outcome = SP_PROGRESS_ERROR;
		if (!p->failed)
			p->failed = v;
	} else if (v->cached) {
		ev.outcome = SP_PROGRESS_CACHED;
	} else {
		ev.outcome = SP_PROGRESS_DONE;
	}
	if (p->h.vertex_done)
		p->h.vertex_done(p->h.ud, v->step, &ev);
}

/* ------------------------------------------------------------------ */
/* Applying one StatusResponse.                                        */

/* Marks v as part of the message being applied (once per message). */
static void vtx_touch(struct sp_progress *p, struct vtx *v)
{
	if (v->seq == p->seq)
		return;
	v->seq = p->seq;
	v->item_head = v->item_tail = 0;
	v->restarted = 0;
	v->flushed = 0;
	SP_GROW(p->touched, p->touched_alloc, p->ntouched + 1);
	p->touched[p->ntouched++] = v;
}

/* Appends item idx (statuses, then logs, then warnings) to v's list. */
static void vtx_link(struct sp_progress *p, struct vtx *v, size_t idx)
{
	vtx_touch(p, v);
	p->item_next[idx] = 0;
	if (v->item_tail)
		p->item_next[v->item_tail - 1] = idx + 1;
	else
		v->item_head = idx + 1;
	v->item_tail = idx + 1;
}

/*
 * Merges one vertex update into its record (state only; events go out in
 * vtx_flush).  Updates are incremental: a name first, then a start, then
 * a completion with cached or error; a re-sent start is not a restart.
 */
static int merge_vertex(struct sp_progress *p, const Spbk__Vertex *pv)
{
	struct vtx *v;

	if (!pv->digest || !pv->digest[0])
		return 0;
	if (!(v = vtx_get(p, pv->digest)))
		return SP_ETOOBIG;
	vtx_touch(p, v);
	if (!v->name[0] && pv->name && pv->name[0]) {
		free(v->name);
		v->name = sp_xstrdup(pv->name);
	}
	/* The engine may run a finished vertex again: a new start, no end. */
	if (pv->started && v->done && !pv->completed &&
	    !ts_eq(v->started, ts_of(pv->started))) {
		v->restarted = v->step != 0;
		v->done = 0;
		v->cached = 0;
		v->completed.set = 0;
		v->started.set = 0;
		free(v->error);
		v->error = NULL;
		if (p->failed == v)
			p->failed = NULL; /* judged again by its new run */
	}
	if (pv->started && !v->started.set)
		v->started = ts_of(pv->started);
	if (pv->completed && !v->done && !v->pending) {
		v->completed = ts_of(pv->completed);
		v->cached = pv->cached;
		free(v->error);
		v->error = pv->error && pv->error[0] ? sp_xstrdup(pv->error) : NULL;
		v->pending = 1;
		SP_GROW(p->pending, p->pending_alloc, p->npending + 1);
		p->pending[p->npending++] = v;
	}
	return 0;
}

static void emit_status(struct sp_progress *p, struct vtx *v, const Spbk__VertexStatus *ps)
{
	struct sp_progress_status ev;
	struct pstatus *s = NULL;
	const char *id = ps->id ? ps->id : "";
	int completed = ps->completed != NULL, changed;
	size_t i;

	for (i = 0; i < v->nst; i++) {
		if (strcmp(v->st[i].id, id) == 0) {
			s = &v->st[i];
			break;
		}
	}
	ev.first = s == NULL;
	if (!s) {
		if (v->nst >= STATUS_MAX)
			return;
		SP_GROW(v->st, v->st_alloc, v->nst + 1);
		s = &v->st[v->nst++];
		s->id = sp_xstrdup(id);
		s->completed = 0;
	}
	changed = ev.first || s->current != ps->current || s->total != ps->total ||
		  (completed && !s->completed);
	s->current = ps->current;
	s->total = ps->total;
	s->completed |= completed;
	if (!changed || !p->h.vertex_status)
		return;
	ev.id = s->id;
	ev.name = ps->name ? ps->name : "";
	ev.current = ps->current;
	ev.total = ps->total;
	ev.completed = completed;
	ev.secs = -1.0;
	if (ps->started) {
		if (ps->completed)
			ev.secs = ts_diff(ts_of(ps->completed), ts_of(ps->started));
		else if (ps->timestamp)
			ev.secs = ts_diff(ts_of(ps->timestamp), ts_of(ps->started));
	}
	p->h.vertex_status(p->h.ud, v->step, &ev);
}

static void emit_vertex_log(struct sp_progress *p, struct vtx *v, const Spbk__VertexLog *pl)
{
	double secs = 0;

	if (pl->timestamp && v->started.set) {
		secs = ts_diff(ts_of(pl->timestamp), v->started);
		if (!(secs > 0))
			secs = 0;
	}
	vtx_log(p, v, pl->msg.data, pl->msg.len, secs, pl->stream == 2 ? 2 : 1);
}

static void emit_warning(struct sp_progress *p, int step, const Spbk__VertexWarning *pw)
{
	struct sp_progress_warning ev;
	struct sp_buf detail = SP_BUF_INIT;
	char *text;
	size_t i;

	if (!p->h.warning)
		return;
	text = sp_xstrndup(pw->short_.len ? (const char *)pw->short_.data : "",
			   pw->short_.len);
	for (i = 0; i < pw->n_detail; i++) {
		if (i)
			sp_buf_addch(&detail, '\n');
		sp_buf_add(&detail, pw->detail[i].data, pw->detail[i].len);
	}
	ev.level = pw->level;
	ev.text = text;
	ev.detail = detail.data;
	ev.url = pw->url ? pw->url : "";
	p->h.warning(p->h.ud, step, &ev);
	free(text);
	sp_buf_release(&detail);
}

/*
 * Emits everything the message holds for v, as buildx prints a vertex:
 * (re)start, statuses, logs, warnings, then its completion.
 */
static void vtx_flush(struct sp_progress *p, struct vtx *v, const Spbk__StatusResponse *sr)
{
	size_t k, ns = sr->n_statuses, nl = sr->n_logs;

	v->flushed = 1;
	if (v->restarted && p->h.vertex_started)
		p->h.vertex_started(p->h.ud, v->step, v->name);
	if (v->started.set || v->completed.set || v->item_head)
		vtx_activate(p, v);
	for (k = v->item_head; k; k = p->item_next[k - 1]) {
		size_t idx = k - 1;

		if (idx < ns)
			emit_status(p, v, sr->statuses[idx]);
		else if (idx < ns + nl)
			emit_vertex_log(p, v, sr->logs[idx - ns]);
		else
			emit_warning(p, v->step, sr->warnings[idx - ns - nl]);
	}
	if (v->pending) {
		v->pending = 0;
		vtx_emit_done(p, v);
	}
}

/*
 * Applies one message.  Like buildx, the vertices it completes come first
 * (oldest completion first), then the others it mentions, in order.
 */
static int apply_status_response(struct sp_progress *p, const Spbk__StatusResponse *sr)
{
	size_t i, j, ns = sr->n_statuses, nl = sr->n_logs, nw = sr->n_warnings;
	struct vtx *v;
	int rc = 0;

	p->seq++;
	p->ntouched = 0;
	p->npending = 0;
	SP_GROW(p->item_next, p->item_alloc, ns + nl + nw + 1);
	for (i = 0; i < sr->n_vertexes; i++) {
		if ((rc = merge_vertex(p, sr->vertexes[i])) < 0)
			goto cleanup;
	}
	/* Statuses and logs of unknown vertices are dropped, as buildx does. */
	for (i = 0; i < ns; i++) {
		if (sr->statuses[i]->vertex && (v = vtx_find(p, sr->statuses[i]->vertex)))
			vtx_link(p, v, i);
	}
	for (i = 0; i < nl; i++) {
		if (sr->logs[i]->vertex && (v = vtx_find(p, sr->logs[i]->vertex)))
			vtx_link(p, v, ns + i);
	}
	for (i = 0; i < nw; i++) {
		if (sr->warnings[i]->vertex && (v = vtx_find(p, sr->warnings[i]->vertex)))
			vtx_link(p, v, ns + nl + i);
	}

	/* Insertion sort: a message completes a handful of vertices. */
	for (i = 1; i < p->npending; i++) {
		v = p->pending[i];
		for (j = i; j > 0 && ts_before(v->completed, p->pending[j - 1]->completed); j--)
			p->pending[j] = p->pending[j - 1];
		p->pending[j] = v;
	}
	for (i = 0; i < p->npending; i++)
		vtx_flush(p, p->pending[i], sr);
	for (i = 0; i < p->ntouched; i++) {
		if (!p->touched[i]->flushed)
			vtx_flush(p, p->touched[i], sr);
	}
	for (i = 0; i < nw; i++) {
		if (!sr->warnings[i]->vertex || !vtx_find(p, sr->warnings[i]->vertex))
			emit_warning(p, 0, sr->warnings[i]);
	}
cleanup:
	/* After an error the queued vertices are dropped: the decoder is broken. */
	for (i = 0; i < p->npending; i++)
		p->pending[i]->pending = 0;
	p->npending = 0;
	p->ntouched = 0;
	return rc;
}

/* ------------------------------------------------------------------ */
/* One JSON line.                                                      */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict standard base64 with padding (what Go's encoding/json makes of a
 * []byte).  out holds at least n / 4 * 3 bytes.  Returns 0 or -1.
 */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	size_t i, o = 0;

	if (n % 4)
		return -1;
	for (i = 0; i < n; i += 4) {
		int last = i + 4 == n;
		int a = b64_value((unsigned char)s[i]);
		int b = b64_value((unsigned char)s[i + 1]);
		int c = b64_value((unsigned char)s[i + 2]);
		int d = b64_value((unsigned char)s[i + 3]);

		if (a < 0 || b < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		if (last && s[i + 2] == '=' && s[i + 3] == '=')
			break;
		if (c < 0)
			return -1;
		out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
		if (last && s[i + 3] == '=')
			break;
		if (d < 0)
			return -1;
		out[o++] = (unsigned char)((c & 0x03) << 6 | d);
	}
	*outlen = o;
	return 0;
}

static int handle_trace(struct sp_progress *p, const char *b64, struct sp_error *err)
{
	Spbk__StatusResponse *sr = NULL;
	unsigned char *raw = NULL;
	size_t n = strlen(b64), rawlen = 0;
	int rc = 0;

	raw = sp_xmalloc(n / 4 * 3 + 1);
	if (b64_decode(b64, n, raw, &rawlen) < 0) {
		rc = fail(p, err, SP_EENGINE,
			  "build stream line %zu: BuildKit trace is not valid base64",
			  p->lineno);
		goto cleanup;
	}
	sr = spbk__status_response__unpack(NULL, rawlen, raw);
	if (!sr) {
		rc = fail(p, err, SP_EENGINE,
			  "build stream line %zu: BuildKit trace is not a valid StatusResponse",
			  p->lineno);
		goto cleanup;
	}
	if ((rc = apply_status_response(p, sr)) < 0) {
		rc = fail(p, err, rc, "build stream line %zu: more than %d build steps",
			  p->lineno, VTX_MAX);
		goto cleanup;
	}
cleanup:
	if (sr)
		spbk__status_response__free_unpacked(sr, NULL);
	free(raw);
	return rc;
}

static void emit_message(struct sp_progress *p, enum sp_progress_msg kind, const char *text)
{
	if (p->h.message)
		p->h.message(p->h.ud, kind, text);
}

/* One complete line of classic builder text. */
static void classic_line(struct sp_progress *p, char *line, size_t len)
{
	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	if (strncmp(line, "Step ", 5) == 0 && strstr(line, " : ")) {
		free(p->classic_step);
		p->classic_step = sp_xstrdup(line);
	}
	emit_message(p, SP_PROGRESS_MSG_STREAM, line);
}

static void classic_flush(struct sp_progress *p)
{
	if (!p->classic.len)
		return;
	classic_line(p, p->classic.data, p->classic.len);
	sp_buf_reset(&p->classic);
}

static void handle_stream(struct sp_progress *p, const char *text)
{
	const char *nl;

	while (*text) {
		size_t seg, room;

		nl = strchr(text, '\n');
		seg = nl ? (size_t)(nl - text) : strlen(text);
		room = SP_PROGRESS_PARTIAL_MAX - p->classic.len;
		if (seg > room) {
			sp_buf_add(&p->classic, text, room);
			classic_flush(p);
			text += room;
			continue;
		}
		sp_buf_add(&p->classic, text, seg);
		text += seg;
		if (nl) {
			text++;
			classic_line(p, p->classic.data, p->classic.len);
			sp_buf_reset(&p->classic);
		}
	}
}

/* A JSON number as int64, clamped (a cast of an out-of-range double is UB). */
static int64_t json_i64(const cJSON *n)
{
	double d = n->valuedouble;

	if (d != d)
		return 0;
	if (d >= 9.2e18)
		return INT64_MAX;
	if (d <= -9.2e18)
		return INT64_MIN;
	return (int64_t)d;
}

/* Formats a byte count as tonistiigi/units does with %.2f: "512B", "1.50MB". */
static void fmt_bytes(char *out, size_t size, int64_t n)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
	double v = (double)n, a = v < 0 ? -v : v;
	size_t u = 0;

	if (a < 1000) {
		snprintf(out, size, "%" PRId64 "B", n);
		return;
	}
	while (a >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
		a /= 1000;
		v /= 1000;
		u++;
	}
	snprintf(out, size, "%.2f%s", v, units[u]);
}

static void handle_status(struct sp_progress *p, const cJSON *json, const char *status)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(json, "id");
	const cJSON *detail = cJSON_GetObjectItemCaseSensitive(json, "progressDetail");
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(detail, "current");
	const cJSON *tot = cJSON_GetObjectItemCaseSensitive(detail, "total");
	struct sp_buf text = SP_BUF_INIT;
	enum sp_progress_msg kind = SP_PROGRESS_MSG_STATUS;
	char a[32], b[32];

	if (cJSON_IsString(id) && id->valuestring[0])
		sp_buf_addf(&text, "%s: ", id->valuestring);
	sp_buf_addstr(&text, status);
	if (cJSON_IsNumber(cur)) {
		kind = SP_PROGRESS_MSG_PROGRESS;
		fmt_bytes(a, sizeof(a), json_i64(cur));
		if (cJSON_IsNumber(tot) && json_i64(tot) > 0) {
			fmt_bytes(b, sizeof(b), json_i64(tot));
			sp_buf_addf(&text, " %s / %s", a, b);
		} else {
			sp_buf_addf(&text, " %s", a);
		}
	}
	emit_message(p, kind, text.data);
	sp_buf_release(&text);
}

static int handle_line(struct sp_progress *p, const char *s, size_t n, struct sp_error *err)
{
	const cJSON *id, *aux, *stream, *status;
	const char *error;
	cJSON *json = NULL;
	int rc = 0;

	p->lineno++;
	if (n > SP_PROGRESS_LINE_MAX) {
		rc = fail(p, err, SP_ETOOBIG, "build stream line %zu: longer than %u bytes",
			  p->lineno, SP_PROGRESS_LINE_MAX);
		goto cleanup;
	}
	if (sp_jsonmsg_parse(&json, &s, &n) < 0) {
		char excerpt[64];
		size_t k;
		for (k = 0; k < n && k < sizeof(excerpt) - 1; k++)
			excerpt[k] = (unsigned char)s[k] < 0x20 || (unsigned char)s[k] > 0x7e ? '?' : s[k];
		excerpt[k] = '\0';
		rc = fail(p, err, SP_EENGINE, "build stream line %zu: not a JSON object: \"%s%s\"",
			  p->lineno, excerpt, n > k ? "..." : "");
		goto cleanup;
	}
	if (!json)
		goto cleanup;  /* a blank line */

	if ((error = sp_jsonmsg_error(json)) != NULL) {
		if (!p->daemon_error)
			p->daemon_error = sp_xstrdup(error);
		emit_message(p, SP_PROGRESS_MSG_ERROR, error);
	}

	id = cJSON_GetObjectItemCaseSensitive(json, "id");
	aux = cJSON_GetObjectItemCaseSensitive(json, "aux");
	if (cJSON_IsString(id) && strcmp(id->valuestring, "moby.buildkit.trace") == 0) {
		if (!cJSON_IsString(aux)) {
			rc = fail(p, err, SP_EENGINE,
				  "build stream line %zu: BuildKit trace without a string \"aux\"",
				  p->lineno);
			goto cleanup;
		}
		if ((rc = handle_trace(p, aux->valuestring, err)) < 0)
			goto cleanup;
	} else if (cJSON_IsObject(aux) &&
		   (!id || (cJSON_IsString(id) && strcmp(id->valuestring, "moby.image.id") == 0))) {
		/* BuildKit's result, or the classic builder's (last one wins). */
		const cJSON *iid = cJSON_GetObjectItemCaseSensitive(aux, "ID");

		if (cJSON_IsString(iid) && iid->valuestring[0]) {
			free(p->image_id);
			p->image_id = sp_xstrdup(iid->valuestring);
		}
	}

	stream = cJSON_GetObjectItemCaseSensitive(json, "stream");
	if (cJSON_IsString(stream))
		handle_stream(p, stream->valuestring);
	status = cJSON_GetObjectItemCaseSensitive(json, "status");
	if (cJSON_IsString(status))
		handle_status(p, json, status->valuestring);
cleanup:
	cJSON_Delete(json);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Public decoder API.                                                 */

struct sp_progress *sp_progress_new(const struct sp_progress_handler *handler)
{
	struct sp_progress *p = sp_xcalloc(1, sizeof(*p));

	if (handler)
		p->h = *handler;
	sp_buf_init(&p->in, SP_PROGRESS_LINE_MAX);
	sp_buf_init(&p->classic, 0);
	sp_error_clear(&p->saved);
	return p;
}

void sp_progress_free(struct sp_progress *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nv; i++)
		vtx_free(p->v[i]);
	free(p->v);
	free(p->tab);
	free(p->pending);
	free(p->touched);
	free(p->item_next);
	sp_buf_release(&p->in);
	sp_buf_release(&p->classic);
	free(p->classic_step);
	free(p->image_id);
	free(p->daemon_error);
	free(p);
}

int sp_progress_feed(struct sp_progress *p, const void *data, size_t len,
		     struct sp_error *err)
{
	const char *d = data;
	size_t start = 0;
	int rc = 0;

	assert(!p->finished);
	if (p->broken)
		return replay(p, err);
	while (start < len) {
		const char *nl = memchr(d + start, '\n', len - start);
		size_t seg = nl ? (size_t)(nl - (d + start)) : len - start;

		if (!nl) {
			if (sp_buf_add(&p->in, d + start, seg) < 0) {
				rc = fail(p, err, SP_ETOOBIG,
					  "build stream line %zu: longer than %u bytes",
					  p->lineno + 1, SP_PROGRESS_LINE_MAX);
				goto cleanup;
			}
			break;
		}
		if (p->in.len) {
			if (sp_buf_add(&p->in, d + start, seg) < 0) {
				rc = fail(p, err, SP_ETOOBIG,
					  "build stream line %zu: longer than %u bytes",
					  p->lineno + 1, SP_PROGRESS_LINE_MAX);
				goto cleanup;
			}
			rc = handle_line(p, p->in.data, p->in.len, err);
			if (p->in.alloc > 1024 * 1024)
				sp_buf_release(&p->in);
			else
				sp_buf_reset(&p->in);
		} else {
			rc = handle_line(p, d + start, seg, err);
		}
		if (rc < 0)
			goto cleanup;
		start += seg + 1;
	}
cleanup:
	return rc;
}

/* Copies at most max bytes of s, not splitting a UTF-8 sequence, "..." if cut. */
static void add_clipped(struct sp_buf *b, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max) {
		sp_buf_add(b, s, n);
		return;
	}
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	sp_buf_add(b, s, n);
	sp_buf_addstr(b, "...");
}

int sp_progress_finish(struct sp_progress *p, struct sp_error *err)
{
	struct sp_buf msg = SP_BUF_INIT;
	const char *step, *text;
	int code = 0, failed;
	size_t i;

	if (p->finished)
		return replay(p, err);
	p->finished = 1;
	if (!p->broken && p->in.len) {
		/* A last line without '\n'; an error here breaks the decoder. */
		handle_line(p, p->in.data, p->in.len, NULL);
	}
	sp_buf_release(&p->in);
	if (p->broken) {
		code = p->saved.code;
		sp_buf_addstr(&msg, p->saved.msg);
		goto cleanup;
	}
	classic_flush(p);
	for (i = 0; i < p->nv; i++) {
		if (p->v[i]->step)
			flush_partial(p, p->v[i]);
	}

	/* The daemon's error line decides; a failed step without it counts
	 * only when the stream was cut before a result. */
	step = sp_progress_failed_step(p);
	failed = p->daemon_error || (p->failed && !p->image_id);
	text = !failed ? NULL : p->daemon_error ? p->daemon_error : p->failed->error;
	if (failed && ((p->failed && p->failed->enospc) || says_enospc(text, strlen(text)))) {
		/* the engine's disk, not the Dockerfile: an infrastructure error */
		code = SP_EENGINE;
		sp_buf_addstr(&msg, "the Docker engine ran out of disk space (no space left on "
			      "device)");
		if (step) {
			sp_buf_addstr(&msg, " in build step ");
			add_clipped(&msg, step, MSG_NAME_MAX);
		}
		sp_buf_addstr(&msg, "; free space where the engine keeps its data (docker "
			      "system df) and run again");
	} else if (failed) {
		if (!p->failed && has_suffix(text, "context canceled"))
			code = SP_ECANCELLED;
		else
			code = SP_EFAILED;
		if (p->failed) {
			sp_buf_addstr(&msg, "build step ");
			add_clipped(&msg, step, MSG_NAME_MAX);
			sp_buf_addstr(&msg, " failed: ");
		} else if (step) {
			sp_buf_addstr(&msg, "build failed at ");
			add_clipped(&msg, step, MSG_NAME_MAX);
			sp_buf_addstr(&msg, ": ");
		} else {
			sp_buf_addstr(&msg, "build failed: ");
		}
		add_clipped(&msg, text, MSG_ERROR_MAX);
		if (!p->daemon_error)
			sp_buf_addstr(&msg, " (the build stream ended early)");
		if (strstr(text, BRIDGE_MISSING) ||
		    (p->failed && strstr(p->failed->error, BRIDGE_MISSING)))
			sp_buf_addstr(&msg, BRIDGE_HINT);
	} else if (!p->image_id) {
		code = SP_EENGINE;
		sp_buf_addstr(&msg, "build stream ended without a result");
	}
	if (code)
		sp_error_set(&p->saved, code, "%s", msg.data);
cleanup:
	if (p->h.finished)
		p->h.finished(p->h.ud, code, msg.data);
	sp_buf_release(&msg);
	return replay(p, err);
}

void sp_progress_abandon(struct sp_progress *p)
{
	size_t i;

	if (!p || p->finished)
		return;
	p->finished = 1;
	/* a half line left by a dropped connection is not a line: drop it */
	sp_buf_release(&p->in);
	if (!p->broken) {
		classic_flush(p);
		for (i = 0; i < p->nv; i++)
			if (p->v[i]->step)
				flush_partial(p, p->v[i]);
	}
	if (!p->saved.code)
		sp_error_set(&p->saved, SP_EENGINE, "build stream abandoned");
}

const char *sp_progress_image_id(const struct sp_progress *p)
{
	return p->image_id;
}

const char *sp_progress_failed_step(const struct sp_progress *p)
{
	if (p->failed)
		return p->failed->name[0] ? p->failed->name : p->failed->digest;
	if (p->daemon_error && p->classic_step)
		return p->classic_step;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The plain printer.                                                  */

struct plain_step {
	char *name;
	char *tail[SP_PROGRESS_TAIL_LINES]; /* ring of the last lines printed */
	size_t tail_len[SP_PROGRESS_TAIL_LINES];
	size_t tail_next;
	size_t tail_count;
	int failed;       /* ended in ERROR; tail kept for the block */
	int block_shown;  /* its "------" block was printed */
};

struct sp_progress_plain {
	FILE *out;
	sp_progress_line_fn fn;
	void *ud;
	int current;   /* step whose header was printed last and is open; 0 none */
	int not_first; /* something was printed (blank line between blocks) */
	int in_block;  /* the last line printed belongs to a step */
	struct plain_step *steps;
	size_t nsteps, steps_alloc;
	struct sp_buf line;
};

static void tail_clear(struct plain_step *s)
{
	size_t i;

	for (i = 0; i < SP_PROGRESS_TAIL_LINES; i++) {
		free(s->tail[i]);
		s->tail[i] = NULL;
		s->tail_len[i] = 0;
	}
	s->tail_next = 0;
	s->tail_count = 0;
}

static void tail_push(struct plain_step *s, const char *line, size_t len)
{
	if (len > TAIL_LINE_MAX)
		len = TAIL_LINE_MAX;
	free(s->tail[s->tail_next]);
	s->tail[s->tail_next] = sp_xmalloc(len + 1);
	memcpy(s->tail[s->tail_next], line, len);
	s->tail[s->tail_next][len] = '\0';
	s->tail_len[s->tail_next] = len;
	s->tail_next = (s->tail_next + 1) % SP_PROGRESS_TAIL_LINES;
	if (s->tail_count < SP_PROGRESS_TAIL_LINES)
		s->tail_count++;
}

static struct plain_step *plain_step(struct sp_progress_plain *r, int step)
{
	assert(step >= 1);
	if ((size_t)step > r->nsteps) {
		SP_GROW(r->steps, r->steps_alloc, (size_t)step);
		memset(r->steps + r->nsteps, 0, ((size_t)step - r->nsteps) * sizeof(*r->steps));
		r->nsteps = (size_t)step;
	}
	return &r->steps[step - 1];
}

/* Writes r->line out as one line and empties it. */
static void plain_flush_line(struct sp_progress_plain *r)
{
	if (r->fn) {
		r->fn(r->ud, r->line.data, r->line.len);
	} else if (r->out) {
		fwrite(r->line.data, 1, r->line.len, r->out);
		fputc('\n', r->out);
	}
	sp_buf_reset(&r->line);
}

static void plain_printf(struct sp_progress_plain *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void plain_printf(struct sp_progress_plain *r, const char *fmt, ...)
{
	va_list ap;

	sp_buf_reset(&r->line);
	va_start(ap, fmt);
	sp_buf_vaddf(&r->line, fmt, ap);
	va_end(ap);
	plain_flush_line(r);
}

/* Makes step the one being printed: "#old ...", a blank line, "#N name". */
static void plain_switch(struct sp_progress_plain *r, int step)
{
	if (r->current == step)
		return;
	if (r->current)
		plain_printf(r, "#%d ...", r->current);
	if (r->not_first)
		plain_printf(r, "%s", "");
	r->not_first = 1;
	plain_printf(r, "#%d %s", step, plain_step(r, step)->name ?
		     plain_step(r, step)->name : "");
	r->current = step;
	r->in_block = 1;
}

static void plain_started(void *ud, int step, const char *name)
{
	struct sp_progress_plain *r = ud;
	struct plain_step *s = plain_step(r, step);

	free(s->name);
	s->name = sp_xstrdup(name);
	s->failed = 0;
	s->block_shown = 0;
	if (r->current == step)
		r->current = 0; /* a rerun prints its header again */
	plain_switch(r, step);
}

static void plain_log(void *ud, int step, const struct sp_progress_log *log)
{
	struct sp_progress_plain *r = ud;
	/* buildx: 3 decimals under 10 s, 2 under 100 s, then 1. */
	int prec = log->secs < 10 ? 3 : log->secs < 100 ? 2 : 1;

	plain_switch(r, step);
	sp_buf_reset(&r->line);
	sp_buf_addf(&r->line, "#%d %.*f ", step, prec, log->secs);
	sp_buf_add(&r->line, log->line, log->len);
	tail_push(plain_step(r, step), r->line.data, r->line.len);
	plain_flush_line(r);
}

static void plain_status(void *ud, int step, const struct sp_progress_status *st)
{
	struct sp_progress_plain *r = ud;
	char a[32], b[32];

	/* buildx throttles running statuses; the first and the last suffice. */
	if (!st->first && !st->completed)
		return;
	plain_switch(r, step);
	sp_buf_reset(&r->line);
	sp_buf_addf(&r->line, "#%d %s", step, st->id);
	if (st->total != 0) {
		fmt_bytes(a, sizeof(a), st->current);
		fmt_bytes(b, sizeof(b), st->total);
		sp_buf_addf(&r->line, " %s / %s", a, b);
	} else if (st->current != 0) {
		fmt_bytes(a, sizeof(a), st->current);
		sp_buf_addf(&r->line, " %s", a);
	}
	if (st->secs > 0.01)
		sp_buf_addf(&r->line, " %.1fs", st->secs);
	if (st->completed)
		sp_buf_addstr(&r->line, " done");
	plain_flush_line(r);
}

static void plain_done(void *ud, int step, const struct sp_progress_done *d)
{
	struct sp_progress_plain *r = ud;
	struct plain_step *s = plain_step(r, step);

	plain_switch(r, step);
	switch (d->outcome) {
	case SP_PROGRESS_ERROR:
		plain_printf(r, "#%d ERROR: %s", step, d->error);
		s->failed = 1;
		break;
	case SP_PROGRESS_CANCELED:
		plain_printf(r, "#%d CANCELED", step);
		break;
	case SP_PROGRESS_CACHED:
		plain_printf(r, "#%d CACHED", step);
		break;
	case SP_PROGRESS_DONE:
		if (d->secs >= 0)
			plain_printf(r, "#%d DONE %.1fs", step, d->secs);
		else
			plain_printf(r, "#%d DONE", step);
		break;
	}
	if (!s->failed)
		tail_clear(s); /* only a failed step's lines are shown again */
	r->current = 0;
}

static void plain_warning(void *ud, int step, const struct sp_progress_warning *w)
{
	struct sp_progress_plain *r = ud;

	if (step) {
		plain_switch(r, step);
		plain_printf(r, "#%d WARN: %s", step, w->text);
	} else {
		plain_printf(r, "WARN: %s", w->text);
	}
}

static void plain_message(void *ud, enum sp_progress_msg kind, const char *text)
{
	struct sp_progress_plain *r = ud;

	/* Progress bars are for terminals; the error is printed by finished. */
	if (kind == SP_PROGRESS_MSG_PROGRESS || kind == SP_PROGRESS_MSG_ERROR)
		return;
	if (r->in_block) {
		/* Text after the step blocks ("Successfully tagged ..."). */
		if (r->current)
			plain_printf(r, "#%d ...", r->current);
		plain_printf(r, "%s", "");
		r->current = 0;
		r->in_block = 0;
	}
	plain_printf(r, "%s", text);
}

static void plain_finished(void *ud, int code, const char *message)
{
	struct sp_progress_plain *r = ud;
	size_t i, k;

	if (!code)
		return;
	r->current = 0;
	for (i = 0; i < r->nsteps; i++) {
		struct plain_step *s = &r->steps[i];

		if (!s->failed || s->block_shown)
			continue;
		s->block_shown = 1;
		plain_printf(r, "%s", "------");
		plain_printf(r, " > %s:", s->name ? s->name : "");
		for (k = 0; k < s->tail_count; k++) {
			size_t j = (s->tail_next + SP_PROGRESS_TAIL_LINES - s->tail_count + k) %
				   SP_PROGRESS_TAIL_LINES;

			sp_buf_reset(&r->line);
			sp_buf_add(&r->line, s->tail[j], s->tail_len[j]);
			plain_flush_line(r);
		}
		plain_printf(r, "%s", "------");
	}
	plain_printf(r, "ERROR: %s", message);
}

static struct sp_progress_plain *plain_alloc(void)
{
	struct sp_progress_plain *r = sp_xcalloc(1, sizeof(*r));

	sp_buf_init(&r->line, 0);
	return r;
}

struct sp_progress_plain *sp_progress_plain_new(FILE *out)
{
	struct sp_progress_plain *r = plain_alloc();

	r->out = out;
	return r;
}

struct sp_progress_plain *sp_progress_plain_new_cb(sp_progress_line_fn fn, void *ud)
{
	struct sp_progress_plain *r = plain_alloc();

	r->fn = fn;
	r->ud = ud;
	return r;
}

void sp_progress_plain_handler(struct sp_progress_plain *r,
			       struct sp_progress_handler *out)
{
	memset(out, 0, sizeof(*out));
	out->vertex_started = plain_started;
	out->vertex_log = plain_log;
	out->vertex_status = plain_status;
	out->vertex_done = plain_done;
	out->warning = plain_warning;
	out->message = plain_message;
	out->finished = plain_finished;
	out->ud = r;
}

void sp_progress_plain_free(struct sp_progress_plain *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->nsteps; i++) {
		tail_clear(&r->steps[i]);
		free(r->steps[i].name);
	}
	free(r->steps);
	sp_buf_release(&r->line);
	free(r);
}
