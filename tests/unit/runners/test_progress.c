/*
 * test_progress.c — the POST /build stream decoder and its plain printer.
 *
 * Two kinds of input: real streams recorded from dockerd 20.10
 * ($SP_FIXTURES/buildkit/NAME.jsonl), each fed whole and in random-sized
 * chunks (the events must not depend on where the body was split), and
 * synthetic streams built here with the generated protobuf-c code, for
 * the cases the recordings do not show (partial log lines, statuses,
 * warnings, reruns, cancellation) and for hostile input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buildkit.pb-c.h"
#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "runners/docker/progress.h"
#include "tests/unit/support/testutil.h"

#define IMAGE_OK "sha256:f96422b98f291df1b21f80117ce4c04febf5e33fef69defc8cd48b01a2c4bb5a"

/* ------------------------------------------------------------------ */
/* Running the decoder with a recording handler and the plain printer. */

struct run {
	struct sp_buf events; /* one line per event, see rec_* */
	struct sp_buf plain;  /* what the plain printer printed */
	struct sp_progress_plain *printer;
	struct sp_progress_handler plain_h;
	struct sp_error err;
	int rc;
	int feed_rc;
	int finished_calls;
	char *image_id;
	char *failed_step;
};

static void rec_started(void *ud, int step, const char *name)
{
	struct run *r = ud;

	sp_buf_addf(&r->events, "S %d %s\n", step, name);
	r->plain_h.vertex_started(r->plain_h.ud, step, name);
}

static void rec_log(void *ud, int step, const struct sp_progress_log *log)
{
	struct run *r = ud;

	assert_int_equal(log->line[log->len], '\0');
	sp_buf_addf(&r->events, "L %d %d %.3f ", step, log->stream, log->secs);
	sp_buf_add(&r->events, log->line, log->len);
	sp_buf_addch(&r->events, '\n');
	r->plain_h.vertex_log(r->plain_h.ud, step, log);
}

static void rec_status(void *ud, int step, const struct sp_progress_status *st)
{
	struct run *r = ud;

	sp_buf_addf(&r->events, "T %d %s %lld/%lld first=%d completed=%d\n", step, st->id,
		    (long long)st->current, (long long)st->total, st->first, st->completed);
	r->plain_h.vertex_status(r->plain_h.ud, step, st);
}

static void rec_done(void *ud, int step, const struct sp_progress_done *d)
{
	struct run *r = ud;

	sp_buf_addf(&r->events, "D %d %d %s|%s\n", step, (int)d->outcome, d->name, d->error);
	r->plain_h.vertex_done(r->plain_h.ud, step, d);
}

static void rec_warning(void *ud, int step, const struct sp_progress_warning *w)
{
	struct run *r = ud;

	sp_buf_addf(&r->events, "W %d %s|%s|%s\n", step, w->text, w->detail, w->url);
	r->plain_h.warning(r->plain_h.ud, step, w);
}

static void rec_message(void *ud, enum sp_progress_msg kind, const char *text)
{
	struct run *r = ud;

	sp_buf_addf(&r->events, "M %d %s\n", (int)kind, text);
	r->plain_h.message(r->plain_h.ud, kind, text);
}

static void rec_finished(void *ud, int code, const char *message)
{
	struct run *r = ud;

	r->finished_calls++;
	sp_buf_addf(&r->events, "F %d %s\n", code, message);
	r->plain_h.finished(r->plain_h.ud, code, message);
}

static void plain_line(void *ud, const char *line, size_t len)
{
	struct run *r = ud;

	assert_int_equal(line[len], '\0');
	sp_buf_add(&r->plain, line, len);
	sp_buf_addch(&r->plain, '\n');
}

/* A small deterministic generator for chunk sizes. */
/*
 * Feeds data (whole when seed is 0, else in chunks of 1..max bytes) and
 * finishes.  The caller releases r with run_release.
 */
static void run_stream(struct run *r, const char *data, size_t len, uint32_t seed,
		       size_t max)
{
	struct sp_progress_handler h = {
		rec_started, rec_log, rec_status, rec_done, rec_warning,
		rec_message, rec_finished, NULL,
	};
	struct sp_progress *p;
	size_t pos = 0;

	memset(r, 0, sizeof(*r));
	sp_buf_init(&r->events, 0);
	sp_buf_init(&r->plain, 0);
	sp_error_clear(&r->err);
	r->printer = sp_progress_plain_new_cb(plain_line, r);
	sp_progress_plain_handler(r->printer, &r->plain_h);
	h.ud = r;
	p = sp_progress_new(&h);
	while (pos < len) {
		size_t n = seed ? 1 + sp_test_rand(&seed) % max : len;

		if (n > len - pos)
			n = len - pos;
		r->feed_rc = sp_progress_feed(p, data + pos, n, &r->err);
		if (r->feed_rc < 0)
			break;
		pos += n;
	}
	r->rc = sp_progress_finish(p, &r->err);
	if (sp_progress_image_id(p))
		r->image_id = sp_xstrdup(sp_progress_image_id(p));
	if (sp_progress_failed_step(p))
		r->failed_step = sp_xstrdup(sp_progress_failed_step(p));
	/* finish is idempotent and silent the second time */
	assert_int_equal(sp_progress_finish(p, NULL), r->rc);
	assert_int_equal(r->finished_calls, 1);
	sp_progress_free(p);
}

static void run_release(struct run *r)
{
	sp_buf_release(&r->events);
	sp_buf_release(&r->plain);
	sp_progress_plain_free(r->printer);
	free(r->image_id);
	free(r->failed_step);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	const char *s = hay;

	while ((s = strstr(s, needle))) {
		n++;
		s += strlen(needle);
	}
	return n;
}

#define assert_contains(hay, needle)                                            \
	do {                                                                    \
		if (!strstr((hay), (needle)))                                   \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay));  \
	} while (0)

#define assert_not_contains(hay, needle)                                        \
	do {                                                                    \
		if (strstr((hay), (needle)))                                    \
			fail_msg("unexpected \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

/*
 * Runs a fixture whole, then in random chunks with several seeds, and
 * checks that events, result and printed output never change.  Leaves the
 * whole run in *whole.
 */
static void run_fixture(struct run *whole, const char *name)
{
	static const size_t maxes[] = { 1, 3, 17, 64, 700, 5000 };
	size_t len, i;
	char *data = sp_test_read_fixture("buildkit", name, &len);

	run_stream(whole, data, len, 0, 0);
	for (i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		struct run part;

		run_stream(&part, data, len, 0x9e3779b9u + (uint32_t)i, maxes[i]);
		assert_int_equal(part.rc, whole->rc);
		assert_string_equal(part.err.msg, whole->err.msg);
		assert_string_equal(part.events.data, whole->events.data);
		assert_string_equal(part.plain.data, whole->plain.data);
		run_release(&part);
	}
	free(data);
}

/* ------------------------------------------------------------------ */
/* Recorded streams.                                                   */

static void test_fixture_ok(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "ok.jsonl");
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.err.code, 0);
	assert_non_null(r.image_id);
	assert_string_equal(r.image_id, IMAGE_OK);
	assert_null(r.failed_step);
	/* 13 steps, numbered in order, each finished once */
	assert_contains(r.events.data, "S 1 [internal] load remote build context\n");
	assert_contains(r.events.data, "S 13 exporting to image\n");
	assert_not_contains(r.events.data, "S 14 ");
	assert_int_equal(count(r.events.data, "\nD "), 13);
	assert_contains(r.plain.data, "#1 [internal] load remote build context\n#1 DONE 0.0s\n\n#2 ");
	assert_contains(r.plain.data, "#9 [builder 6/6] RUN --mount=type=cache");
	assert_contains(r.plain.data, "\n#9 0.223 3 requirement(s), all met by the installed packages\n");
	assert_contains(r.plain.data, "\n#13 exporting layers 0.1s done\n");
	assert_contains(r.plain.data, "\n#13 DONE 0.1s\n");
	assert_contains(r.plain.data, "\nSuccessfully tagged example:testing\n");
	assert_not_contains(r.plain.data, "ERROR");
	run_release(&r);
}

static void test_fixture_cached(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "cached.jsonl");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.image_id, IMAGE_OK);
	/* copy /context and the eight build steps after FROM */
	assert_int_equal(count(r.plain.data, " CACHED\n"), 9);
	assert_contains(r.plain.data, "#5 [builder 2/6] WORKDIR /app\n#5 CACHED\n");
	assert_contains(r.plain.data, "#12 [testing 3/3] COPY --chown=app:app . .\n#12 CACHED\n");
	/* all of a step's lines together: no "#N ..." interruptions */
	assert_not_contains(r.plain.data, "...\n");
	assert_int_equal(count(r.events.data, "\nD "), 13);
	run_release(&r);
}

static void test_fixture_fail_run(void **state)
{
	static const char step[] = "[2/2] RUN echo hello; echo oops >&2; exit 3";
	struct run r;

	(void)state;
	run_fixture(&r, "fail-run.jsonl");
	assert_int_equal(r.rc, SP_EFAILED);
	assert_int_equal(r.err.code, SP_EFAILED);
	assert_null(r.image_id);
	assert_string_equal(r.failed_step, step);
	assert_string_equal(r.err.msg,
			    "build step [2/2] RUN echo hello; echo oops >&2; exit 3 failed: "
			    "executor failed running [/bin/sh -c echo hello; echo oops >&2; "
			    "exit 3]: exit code: 3");
	assert_not_contains(r.err.msg, "hint");
	/* stderr lines keep their stream */
	assert_contains(r.events.data, "L 5 1 0.092 hello\n");
	assert_contains(r.events.data, "L 5 2 0.093 oops\n");
	assert_contains(r.plain.data,
			"#5 [2/2] RUN echo hello; echo oops >&2; exit 3\n"
			"#5 0.092 hello\n"
			"#5 0.093 oops\n"
			"#5 ERROR: executor failed running [/bin/sh -c echo hello; echo oops >&2; exit 3]: exit code: 3\n"
			"------\n"
			" > [2/2] RUN echo hello; echo oops >&2; exit 3:\n"
			"#5 0.092 hello\n"
			"#5 0.093 oops\n"
			"------\n"
			"ERROR: build step [2/2] RUN");
	assert_contains(r.plain.data, "#4 [1/2] FROM docker.io/stagepipe-test/python:bookworm\n#4 CACHED\n");
	run_release(&r);
}

/* A multi-stage build failing in [builder 4/5] after 16 lines of output. */
static void test_fixture_fail_builder(void **state)
{
	struct run r;
	const char *block;
	int i;

	(void)state;
	run_fixture(&r, "fail-builder.jsonl");
	assert_int_equal(r.rc, SP_EFAILED);
	assert_non_null(r.failed_step);
	assert_true(strncmp(r.failed_step, "[builder 4/5] RUN for i in", 26) == 0);
	assert_true(strncmp(r.err.msg, "build step [builder 4/5] RUN for i in $(seq 1 14)", 49) == 0);
	assert_contains(r.err.msg, "]: exit code: 2");
	/* all lines while running ... */
	for (i = 1; i <= 14; i++) {
		char line[64];

		snprintf(line, sizeof(line), "\n#7 0.34%d line %d of the build output\n",
			 i <= 6 ? 4 : 5, i);
		assert_contains(r.plain.data, line);
	}
	assert_contains(r.plain.data, "\n#7 ERROR: executor failed running");
	/* ... and exactly the last 10 in the block after the failure */
	block = strstr(r.plain.data, "------\n > [builder 4/5] RUN for i in");
	assert_non_null(block);
	assert_contains(block,
			"; exit 2:\n"
			"#7 0.345 Traceback: boom\n"
			"#7 0.345 line 7 of the build output\n"
			"#7 0.345 line 8 of the build output\n"
			"#7 0.345 line 9 of the build output\n"
			"#7 0.345 line 10 of the build output\n"
			"#7 0.345 line 11 of the build output\n"
			"#7 0.345 line 12 of the build output\n"
			"#7 0.345 line 13 of the build output\n"
			"#7 0.345 line 14 of the build output\n"
			"#7 0.345 no newline at the end\n"
			"------\n"
			"ERROR: build step [builder 4/5]");
	assert_not_contains(block, "line 6 of");
	run_release(&r);
}

static void test_fixture_bridge(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "no-network.jsonl");
	assert_int_equal(r.rc, SP_EFAILED);
	assert_string_equal(r.failed_step, "[2/2] RUN echo hello");
	assert_contains(r.err.msg, "build step [2/2] RUN echo hello failed: ");
	assert_contains(r.err.msg, "network bridge not found");
	assert_contains(r.err.msg, "`build.network: host`");
	assert_contains(r.err.msg, "`build.network: none`");
	assert_contains(r.plain.data, "#5 ERROR: executor failed running [/bin/sh -c echo hello]: network bridge not found\n");
	assert_contains(r.plain.data, "ERROR: build step [2/2] RUN echo hello failed:");
	run_release(&r);
}

static void test_fixture_syntax(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "syntax.jsonl");
	assert_int_equal(r.rc, SP_EFAILED);
	assert_null(r.failed_step);
	assert_string_equal(r.err.msg,
			    "build failed: failed to solve with frontend dockerfile.v0: failed to "
			    "create LLB definition: dockerfile parse error line 2: unknown "
			    "instruction: RUNN");
	assert_contains(r.events.data, "\nM 3 failed to solve with frontend dockerfile.v0");
	assert_contains(r.plain.data, "\nERROR: build failed: failed to solve");
	assert_not_contains(r.plain.data, "------");
	run_release(&r);
}

static void test_fixture_classic(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "classic.jsonl");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.image_id,
			    "sha256:f0990c8f44580d2afbe5cd16b443e2b2f2110e6a7603a2af90889a00750d0aed");
	/* "Step 1/4 : FROM ..." and its "\n" arrive as two lines */
	assert_contains(r.events.data, "M 0 Step 1/4 : FROM stagepipe-test/python:bookworm\nM 0  ---> 7d6f90176720\n");
	assert_contains(r.plain.data, "Step 4/4 : RUN python3 -c 'print(\"classic build says hello\")'\n");
	assert_contains(r.plain.data, "\nclassic build says hello\n");
	assert_contains(r.plain.data, "\nSuccessfully tagged stagepipe-fixture:classic\n");
	assert_not_contains(r.events.data, "\nS ");
	run_release(&r);
}

static void test_fixture_classic_fail(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "classic-fail.jsonl");
	assert_int_equal(r.rc, SP_EFAILED);
	assert_string_equal(r.failed_step, "Step 3/3 : RUN echo \"about to fail\"; exit 7");
	assert_string_equal(r.err.msg,
			    "build failed at Step 3/3 : RUN echo \"about to fail\"; exit 7: "
			    "The command '/bin/sh -c echo \"about to fail\"; exit 7' returned "
			    "a non-zero code: 7");
	assert_contains(r.plain.data, "\nabout to fail\nERROR: build failed at Step 3/3");
	run_release(&r);
}

/* The FILE * printer prints the same as the line callback. */
static void test_plain_file(void **state)
{
	struct sp_progress_plain *plain;
	struct sp_progress_handler h;
	struct sp_progress *p;
	struct run r;
	size_t len, n;
	char *data = sp_test_read_fixture("buildkit", "fail-run.jsonl", &len), *out;
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	plain = sp_progress_plain_new(f);
	sp_progress_plain_handler(plain, &h);
	p = sp_progress_new(&h);
	assert_int_equal(sp_progress_feed(p, data, len, NULL), 0);
	assert_int_equal(sp_progress_finish(p, NULL), SP_EFAILED);
	sp_progress_free(p);
	sp_progress_plain_free(plain);

	run_stream(&r, data, len, 0, 0);
	out = sp_xmalloc(r.plain.len + 1);
	rewind(f);
	n = fread(out, 1, r.plain.len + 1, f);
	assert_int_equal(n, r.plain.len);
	assert_memory_equal(out, r.plain.data, n);
	fclose(f);
	free(out);
	free(data);
	run_release(&r);
}

/* ------------------------------------------------------------------ */
/* Synthetic BuildKit streams.                                         */

#define T0 1700000000

struct msg {
	Spbk__StatusResponse sr;
	Spbk__Vertex vx[8];
	Spbk__Vertex *vxp[8];
	Spbk__VertexStatus st[8];
	Spbk__VertexStatus *stp[8];
	Spbk__VertexLog lg[8];
	Spbk__VertexLog *lgp[8];
	Spbk__VertexWarning wn[4];
	Spbk__VertexWarning *wnp[4];
	ProtobufCBinaryData detail[4];
	Spbk__Timestamp ts[64];
	size_t nts;
};

static void msg_init(struct msg *m)
{
	Spbk__StatusResponse sr = SPBK__STATUS_RESPONSE__INIT;

	memset(m, 0, sizeof(*m));
	m->sr = sr;
	m->sr.vertexes = m->vxp;
	m->sr.statuses = m->stp;
	m->sr.logs = m->lgp;
	m->sr.warnings = m->wnp;
}

/* A timestamp t seconds after T0 (t < 0: none). */
static Spbk__Timestamp *msg_ts(struct msg *m, double t)
{
	Spbk__Timestamp init = SPBK__TIMESTAMP__INIT;
	Spbk__Timestamp *ts;

	if (t < 0)
		return NULL;
	assert_true(m->nts < 64);
	ts = &m->ts[m->nts++];
	*ts = init;
	ts->seconds = T0 + (int64_t)t;
	ts->nanos = (int32_t)((t - (double)(int64_t)t) * 1e9 + 0.5);
	return ts;
}

static void msg_vertex(struct msg *m, const char *digest, const char *name, double started,
		       double completed, int cached, const char *error)
{
	Spbk__Vertex init = SPBK__VERTEX__INIT;
	Spbk__Vertex *v = &m->vx[m->sr.n_vertexes];

	*v = init;
	v->digest = (char *)digest;
	v->name = (char *)(name ? name : "");
	v->started = msg_ts(m, started);
	v->completed = msg_ts(m, completed);
	v->cached = cached;
	v->error = (char *)(error ? error : "");
	m->vxp[m->sr.n_vertexes++] = v;
}

static void msg_log(struct msg *m, const char *digest, double t, int stream, const char *text,
		    size_t len)
{
	Spbk__VertexLog init = SPBK__VERTEX_LOG__INIT;
	Spbk__VertexLog *l = &m->lg[m->sr.n_logs];

	*l = init;
	l->vertex = (char *)digest;
	l->timestamp = msg_ts(m, t);
	l->stream = stream;
	l->msg.data = (uint8_t *)text;
	l->msg.len = len;
	m->lgp[m->sr.n_logs++] = l;
}

static void msg_status(struct msg *m, const char *digest, const char *id, int64_t cur,
		       int64_t total, double started, double at, double completed)
{
	Spbk__VertexStatus init = SPBK__VERTEX_STATUS__INIT;
	Spbk__VertexStatus *s = &m->st[m->sr.n_statuses];

	*s = init;
	s->vertex = (char *)digest;
	s->id = (char *)id;
	s->current = cur;
	s->total = total;
	s->started = msg_ts(m, started);
	s->timestamp = msg_ts(m, at);
	s->completed = msg_ts(m, completed);
	m->stp[m->sr.n_statuses++] = s;
}

static void msg_warning(struct msg *m, const char *digest, const char *text,
			const char *detail, const char *url)
{
	Spbk__VertexWarning init = SPBK__VERTEX_WARNING__INIT;
	size_t i = m->sr.n_warnings;
	Spbk__VertexWarning *w = &m->wn[i];

	*w = init;
	w->vertex = (char *)(digest ? digest : "");
	w->level = 1;
	w->short_.data = (uint8_t *)text;
	w->short_.len = strlen(text);
	if (detail) {
		m->detail[i].data = (uint8_t *)detail;
		m->detail[i].len = strlen(detail);
		w->detail = &m->detail[i];
		w->n_detail = 1;
	}
	w->url = (char *)(url ? url : "");
	m->wnp[m->sr.n_warnings++] = w;
}

static void add_b64_line(struct sp_buf *out, const uint8_t *raw, size_t len)
{
	char *b64 = sp_xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)b64, raw, (int)len);
	sp_buf_addf(out, "{\"id\":\"moby.buildkit.trace\",\"aux\":\"%s\"}\r\n", b64);
	free(b64);
}

/* Appends m as a trace line (with "\r\n", as the engine sends them). */
static void msg_add(struct sp_buf *out, struct msg *m)
{
	size_t len = spbk__status_response__get_packed_size(&m->sr);
	uint8_t *raw = sp_xmalloc(len + 1);

	spbk__status_response__pack(&m->sr, raw);
	add_b64_line(out, raw, len);
	free(raw);
	msg_init(m);
}

static void add_image_id(struct sp_buf *out)
{
	sp_buf_addstr(out, "{\"id\":\"moby.image.id\",\"aux\":{\"ID\":\"" IMAGE_OK "\"}}\r\n");
}

static void check_chunked(const struct sp_buf *stream, struct run *whole)
{
	struct run part;

	run_stream(whole, stream->data, stream->len, 0, 0);
	run_stream(&part, stream->data, stream->len, 12345, 9);
	assert_int_equal(part.rc, whole->rc);
	assert_string_equal(part.events.data, whole->events.data);
	assert_string_equal(part.plain.data, whole->plain.data);
	run_release(&part);
}

/* Log chunks split lines anywhere; a line keeps its first chunk's time. */
static void test_partial_logs(void **state)
{
	struct sp_buf s = SP_BUF_INIT;
	struct msg m;
	struct run r;
	char *big = sp_xmalloc(SP_PROGRESS_PARTIAL_MAX + 11);

	(void)state;
	msg_init(&m);
	msg_vertex(&m, "sha256:a", "[1/2] RUN make", 0, -1, 0, NULL);
	msg_add(&s, &m);
	msg_log(&m, "sha256:a", 0.5, 1, "hel", 3);
	msg_add(&s, &m);
	msg_log(&m, "sha256:a", 1.25, 1, "lo\r\nwor", 7);
	msg_log(&m, "sha256:a", 1.5, 1, "ld\n\nend without newline", 23);
	msg_add(&s, &m);
	msg_log(&m, "sha256:b", 1.5, 1, "unknown vertex\n", 15);
	msg_vertex(&m, "sha256:a", "[1/2] RUN make", 0, 2, 0, NULL);
	msg_add(&s, &m);
	/* a log line longer than SP_PROGRESS_PARTIAL_MAX is broken up */
	memset(big, 'x', SP_PROGRESS_PARTIAL_MAX + 10);
	big[SP_PROGRESS_PARTIAL_MAX + 10] = '\n';
	msg_vertex(&m, "sha256:c", "[2/2] RUN cat big", 3, -1, 0, NULL);
	msg_log(&m, "sha256:c", 3, 1, big, SP_PROGRESS_PARTIAL_MAX + 11);
	msg_add(&s, &m);
	msg_log(&m, "sha256:c", 13, 2, "tail at end of stream", 21);
	msg_add(&s, &m);
	add_image_id(&s);

	check_chunked(&s, &r);
	assert_int_equal(r.rc, 0);
	assert_contains(r.events.data,
			"S 1 [1/2] RUN make\n"
			"L 1 1 0.500 hello\n"
			"L 1 1 1.250 world\n"
			"L 1 1 1.500 \n"
			"L 1 1 1.500 end without newline\n"
			"D 1 0 [1/2] RUN make|\n"
			"S 2 [2/2] RUN cat big\n");
	assert_not_contains(r.events.data, "unknown vertex");
	assert_int_equal(count(r.events.data, "\nL 2 1 0.000 xxx"), 2);
	assert_contains(r.events.data, "xxxxxxxxxx\nL 2 2 10.000 tail at end of stream\nF 0 \n");
	assert_contains(r.plain.data,
			"#1 [1/2] RUN make\n"
			"#1 0.500 hello\n"
			"#1 1.250 world\n"
			"#1 1.500 \n"
			"#1 1.500 end without newline\n"
			"#1 DONE 2.0s\n\n"
			"#2 [2/2] RUN cat big\n");
	assert_contains(r.plain.data, "\n#2 10.00 tail at end of stream\n");
	free(big);
	sp_buf_release(&s);
	run_release(&r);
}

/* Numbers follow activity, not the first listing; statuses report changes. */
static void test_steps_and_statuses(void **state)
{
	struct sp_buf s = SP_BUF_INIT;
	struct msg m;
	struct run r;

	(void)state;
	msg_init(&m);
	/* the whole graph is listed first, nothing started */
	msg_vertex(&m, "sha256:from", "[1/3] FROM docker.io/library/python:3.12", -1, -1, 0, NULL);
	msg_vertex(&m, "sha256:run", "[2/3] RUN pip install", -1, -1, 0, NULL);
	msg_vertex(&m, "sha256:copy", "[3/3] COPY . .", -1, -1, 0, NULL);
	msg_vertex(&m, "sha256:ctx", "[internal] load build context", -1, -1, 0, NULL);
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:ctx", NULL, 0, -1, 0, NULL);
	msg_vertex(&m, "sha256:from", NULL, 0.1, -1, 0, NULL);
	msg_status(&m, "sha256:ctx", "transferring context", 0, 0, 0, 0, -1);
	msg_status(&m, "sha256:from", "sha256:layer1", 0, 2100000, 0.1, 0.1, -1);
	msg_add(&s, &m);
	/* progress: reported as events, not printed */
	msg_status(&m, "sha256:from", "sha256:layer1", 1000000, 2100000, 0.1, 0.3, -1);
	msg_status(&m, "sha256:from", "sha256:layer1", 1000000, 2100000, 0.1, 0.4, -1);
	msg_status(&m, "sha256:ctx", "transferring context", 1536, 0, 0, 0.2, 0.25);
	msg_vertex(&m, "sha256:ctx", NULL, 0, 0.25, 0, NULL);
	msg_add(&s, &m);
	msg_status(&m, "sha256:from", "sha256:layer1", 2100000, 2100000, 0.1, 0.6, 0.6);
	msg_vertex(&m, "sha256:from", NULL, 0.1, 0.7, 0, NULL);
	msg_vertex(&m, "sha256:run", NULL, 0.7, 0.7, 1, NULL);
	msg_add(&s, &m);
	/* a vertex the engine runs again after it finished */
	msg_vertex(&m, "sha256:ctx", NULL, 1, -1, 0, NULL);
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:ctx", NULL, 1, 1.5, 0, NULL);
	msg_vertex(&m, "sha256:copy", NULL, 1.5, -1, 0, NULL);
	msg_warning(&m, "sha256:copy", "COPY of the whole context", "consider .dockerignore", "https://docs.example/copy");
	msg_warning(&m, NULL, "FROM without a digest", NULL, NULL);
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:copy", NULL, 1.5, 1.75, 0, NULL);
	msg_add(&s, &m);
	add_image_id(&s);

	check_chunked(&s, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.events.data,
			    "S 1 [internal] load build context\n"
			    "T 1 transferring context 0/0 first=1 completed=0\n"
			    "S 2 [1/3] FROM docker.io/library/python:3.12\n"
			    "T 2 sha256:layer1 0/2100000 first=1 completed=0\n"
			    "T 1 transferring context 1536/0 first=0 completed=1\n"
			    "D 1 0 [internal] load build context|\n"
			    "T 2 sha256:layer1 1000000/2100000 first=0 completed=0\n"
			    "T 2 sha256:layer1 2100000/2100000 first=0 completed=1\n"
			    "D 2 0 [1/3] FROM docker.io/library/python:3.12|\n"
			    "S 3 [2/3] RUN pip install\n"
			    "D 3 1 [2/3] RUN pip install|\n"
			    "S 1 [internal] load build context\n"
			    "D 1 0 [internal] load build context|\n"
			    "S 4 [3/3] COPY . .\n"
			    "W 4 COPY of the whole context|consider .dockerignore|https://docs.example/copy\n"
			    "W 0 FROM without a digest||\n"
			    "D 4 0 [3/3] COPY . .|\n"
			    "F 0 \n");
	assert_string_equal(r.plain.data,
			    "#1 [internal] load build context\n"
			    "#1 transferring context\n"
			    "#1 ...\n"
			    "\n"
			    "#2 [1/3] FROM docker.io/library/python:3.12\n"
			    "#2 sha256:layer1 0B / 2.10MB\n"
			    "#2 ...\n"
			    "\n"
			    "#1 [internal] load build context\n"
			    "#1 transferring context 1.54kB 0.2s done\n"
			    "#1 DONE 0.2s\n"
			    "\n"
			    "#2 [1/3] FROM docker.io/library/python:3.12\n"
			    "#2 sha256:layer1 2.10MB / 2.10MB 0.5s done\n"
			    "#2 DONE 0.6s\n"
			    "\n"
			    "#3 [2/3] RUN pip install\n"
			    "#3 CACHED\n"
			    "\n"
			    "#1 [internal] load build context\n"
			    "#1 DONE 0.5s\n"
			    "\n"
			    "#4 [3/3] COPY . .\n"
			    "#4 WARN: COPY of the whole context\n"
			    "WARN: FROM without a digest\n"
			    "#4 DONE 0.2s\n");
	sp_buf_release(&s);
	run_release(&r);
}

/* Canceled steps, a failure without the final error line, a cancelled build. */
static void test_cancel_and_early_end(void **state)
{
	struct sp_buf s = SP_BUF_INIT;
	struct msg m;
	struct run r;

	(void)state;
	msg_init(&m);
	msg_vertex(&m, "sha256:a", "[test 2/4] RUN pytest", 0, -1, 0, NULL);
	msg_vertex(&m, "sha256:b", "[runtime 2/2] COPY app /app", 0, -1, 0, NULL);
	msg_add(&s, &m);
	msg_log(&m, "sha256:a", 0.75, 1, "1 failed\n", 9);
	msg_vertex(&m, "sha256:a", NULL, 0, 1, 0, "process \"/bin/sh -c pytest\" did not complete successfully: exit code: 1");
	msg_vertex(&m, "sha256:b", NULL, 0, 1.1, 0, "context canceled");
	msg_add(&s, &m);

	/* the stream stops before the errorDetail line */
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EFAILED);
	assert_string_equal(r.failed_step, "[test 2/4] RUN pytest");
	assert_string_equal(r.err.msg,
			    "build step [test 2/4] RUN pytest failed: process \"/bin/sh -c pytest\" "
			    "did not complete successfully: exit code: 1 (the build stream ended early)");
	assert_contains(r.plain.data, "#1 ERROR: process \"/bin/sh -c pytest\" did not complete successfully: exit code: 1\n");
	assert_contains(r.plain.data, "#2 CANCELED\n");
	assert_contains(r.plain.data, "------\n > [test 2/4] RUN pytest:\n#1 0.750 1 failed\n------\nERROR: build step");
	assert_int_equal(count(r.plain.data, "------\n > "), 1);
	run_release(&r);

	/* with the daemon's line it is the daemon's text */
	sp_buf_addstr(&s, "{\"errorDetail\":{\"message\":\"failed to solve: exit code: 1\"},\"error\":\"failed to solve: exit code: 1\"}\r\n");
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EFAILED);
	assert_string_equal(r.err.msg, "build step [test 2/4] RUN pytest failed: failed to solve: exit code: 1");
	run_release(&r);
	sp_buf_release(&s);

	/* a build stopped by a cancel: every step canceled */
	msg_vertex(&m, "sha256:a", "[test 2/4] RUN pytest", 0, -1, 0, NULL);
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:a", NULL, 0, 3, 0, "context canceled");
	msg_add(&s, &m);
	sp_buf_addstr(&s, "{\"errorDetail\":{\"message\":\"context canceled\"},\"error\":\"context canceled\"}\n");
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_ECANCELLED);
	assert_null(r.failed_step);
	assert_string_equal(r.err.msg, "build failed: context canceled");
	assert_contains(r.plain.data, "#1 CANCELED\nERROR: build failed: context canceled\n");
	run_release(&r);
	sp_buf_release(&s);

	/* a step that failed, ran again and passed: the image id decides */
	msg_vertex(&m, "sha256:a", "[1/1] RUN flaky", 0, 1, 0, "exit code: 1");
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:a", NULL, 2, -1, 0, NULL);
	msg_add(&s, &m);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EENGINE); /* no result yet, and no failure */
	assert_null(r.failed_step);
	run_release(&r);
	msg_vertex(&m, "sha256:a", NULL, 2, 3, 0, NULL);
	msg_add(&s, &m);
	add_image_id(&s);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, 0);
	assert_contains(r.events.data, "S 1 [1/1] RUN flaky\nD 1 2 [1/1] RUN flaky|exit code: 1\n"
			"S 1 [1/1] RUN flaky\nD 1 0 [1/1] RUN flaky|\n");
	run_release(&r);
	sp_buf_release(&s);

	/* a step error with an image id and no error line is not a failure */
	msg_vertex(&m, "sha256:x", "importing cache manifest", 0, 1, 0, "not found");
	msg_add(&s, &m);
	add_image_id(&s);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.failed_step, "importing cache manifest");
	assert_string_equal(r.plain.data, "#1 importing cache manifest\n#1 ERROR: not found\n");
	run_release(&r);
	sp_buf_release(&s);
}

/* Long names and errors are clipped so that the bridge hint always fits. */
static void test_long_error_keeps_hint(void **state)
{
	struct sp_buf s = SP_BUF_INIT, name = SP_BUF_INIT, error = SP_BUF_INIT;
	struct msg m;
	struct run r;
	int i;

	(void)state;
	sp_buf_addstr(&name, "[builder 3/5] RUN ");
	for (i = 0; i < 500; i++)
		sp_buf_addstr(&name, "é");
	for (i = 0; i < 3000; i++)
		sp_buf_addch(&error, 'e');
	sp_buf_addstr(&error, ": network bridge not found");
	msg_init(&m);
	msg_vertex(&m, "sha256:a", name.data, 0, 1, 0, error.data);
	msg_add(&s, &m);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EFAILED);
	assert_true(strncmp(r.err.msg, "build step [builder 3/5] RUN é", 31) == 0);
	assert_contains(r.err.msg, "é... failed: eeee");
	assert_contains(r.err.msg, "build.network: none");
	assert_true(strlen(r.err.msg) < SP_ERROR_MSG_MAX - 1);
	run_release(&r);
	sp_buf_release(&s);
	sp_buf_release(&name);
	sp_buf_release(&error);
}

/* A step that ran out of disk on the engine: an engine error, not the
 * Dockerfile's (its log said so, or the daemon's error did); a step that
 * fails for itself stays a failure. */
static void test_enospc_is_engine_error(void **state)
{
	static const char full[] = "dd: error writing '/tmp/fill': No space left on device\n";
	static const char other[] = "disk quota? no, just exit 1\n";
	struct sp_buf s = SP_BUF_INIT;
	struct msg m;
	struct run r;

	(void)state;
	msg_init(&m);
	msg_vertex(&m, "sha256:a", "[fill 1/1] RUN dd if=/dev/zero of=/tmp/fill", 0, -1, 0, NULL);
	msg_log(&m, "sha256:a", 0.5, 2, full, sizeof(full) - 1);
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:a", "[fill 1/1] RUN dd if=/dev/zero of=/tmp/fill", 0, 1, 0,
		   "executor failed running [/bin/sh -c dd]: exit code: 1");
	msg_add(&s, &m);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EENGINE);
	assert_contains(r.err.msg, "the Docker engine ran out of disk space (no space left on "
			"device) in build step [fill 1/1] RUN dd");
	assert_null(strchr(r.err.msg, '\n'));
	run_release(&r);

	/* the daemon's own error (committing a layer) says it */
	sp_buf_reset(&s);
	msg_vertex(&m, "sha256:b", "[2/2] COPY big /big", 0, 1, 0,
		   "failed to copy files: write /var/lib/docker/x: no space left on device");
	msg_add(&s, &m);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EENGINE);
	assert_contains(r.err.msg, "ran out of disk space");
	run_release(&r);

	sp_buf_reset(&s);
	msg_vertex(&m, "sha256:c", "[2/2] RUN false", 0, -1, 0, NULL);
	msg_log(&m, "sha256:c", 0.5, 1, other, sizeof(other) - 1);
	msg_add(&s, &m);
	msg_vertex(&m, "sha256:c", "[2/2] RUN false", 0, 1, 0,
		   "executor failed running [/bin/sh -c false]: exit code: 1");
	msg_add(&s, &m);
	check_chunked(&s, &r);
	assert_int_equal(r.rc, SP_EFAILED);
	run_release(&r);
	sp_buf_release(&s);
}

/* ------------------------------------------------------------------ */
/* Hostile and broken input.                                           */

/* Runs s whole and chunked; expects the error code and text in both. */
static void expect_error(const char *s, size_t len, int code, const char *text)
{
	struct run r;
	uint32_t seed;

	for (seed = 0; seed < 3; seed++) {
		run_stream(&r, s, len, seed, 5);
		assert_int_equal(r.rc, code);
		assert_int_equal(r.err.code, code);
		assert_contains(r.err.msg, text);
		if (code != SP_EENGINE || !strstr(text, "without a result"))
			assert_int_equal(r.feed_rc ? r.feed_rc : r.rc, code);
		/* the printer got the error too */
		assert_contains(r.plain.data, "ERROR: ");
		run_release(&r);
	}
}

static void test_truncated(void **state)
{
	size_t len, cut, i, lines = 0;
	char *data = sp_test_read_fixture("buildkit", "ok.jsonl", &len);
	const char *id = strstr(data, "{\"id\":\"moby.image.id\"");
	char text[64];

	(void)state;
	assert_non_null(id);
	/* at a line boundary, before the image id: no result */
	cut = (size_t)(id - data);
	expect_error(data, cut, SP_EENGINE, "build stream ended without a result");
	/* in the middle of a line: that last line is malformed */
	for (i = 0; i < cut - 40; i++)
		lines += data[i] == '\n';
	snprintf(text, sizeof(text), "build stream line %zu: not a JSON object", lines + 1);
	expect_error(data, cut - 40, SP_EENGINE, text);
	/* an empty body */
	expect_error("", 0, SP_EENGINE, "build stream ended without a result");
	expect_error("\r\n\n  \n", 5, SP_EENGINE, "build stream ended without a result");
	free(data);
}

static void test_malformed_json(void **state)
{
	static const char bad[] = "{\"stream\":\"Step 1/2 : FROM x\\n\"}\r\n{\"stream\": oops}\r\n{\"aux\":{\"ID\":\"sha256:1\"}}\n";
	static const char arr[] = "{\"stream\":\"a\\n\"}\n\n[1,2,3]\n";
	static const char trailing[] = "{\"stream\":\"a\\n\"} {\"stream\":\"b\"}\n";
	static const char nul[] = "{\"stream\":\"a\\n\"}\n{\"stream\":1}\0\n";
	static const char deep[] = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[";

	(void)state;
	expect_error(bad, sizeof(bad) - 1, SP_EENGINE, "build stream line 2: not a JSON object");
	expect_error(arr, sizeof(arr) - 1, SP_EENGINE, "build stream line 3: not a JSON object");
	expect_error(trailing, sizeof(trailing) - 1, SP_EENGINE, "line 1: not a JSON object");
	expect_error(nul, sizeof(nul) - 1, SP_EENGINE, "line 2: not a JSON object");
	expect_error(deep, sizeof(deep) - 1, SP_EENGINE, "line 1: not a JSON object");
}

static void test_bad_base64(void **state)
{
	static const char *const cases[] = {
		"{\"id\":\"moby.buildkit.trace\",\"aux\":\"!!!!\"}\n",
		"{\"id\":\"moby.buildkit.trace\",\"aux\":\"Cm8KR3NoYTI\"}\n",   /* length */
		"{\"id\":\"moby.buildkit.trace\",\"aux\":\"QQ=A\"}\n",          /* padding */
		"{\"id\":\"moby.buildkit.trace\",\"aux\":\"QQ==QUJD\"}\n",      /* early padding */
		"{\"id\":\"moby.buildkit.trace\",\"aux\":\"QU JD\"}\n",         /* space */
		"{\"id\":\"moby.buildkit.trace\",\"aux\":\"QUJ\\nD\"}\n",       /* newline */
	};
	struct sp_buf s = SP_BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sp_buf_reset(&s);
		sp_buf_addstr(&s, "{\"stream\":\"x\\n\"}\n");
		sp_buf_addstr(&s, cases[i]);
		add_image_id(&s);
		expect_error(s.data, s.len, SP_EENGINE, "build stream line 2: BuildKit trace is not valid base64");
	}
	sp_buf_reset(&s);
	sp_buf_addstr(&s, "{\"id\":\"moby.buildkit.trace\",\"aux\":{\"ID\":\"x\"}}\n");
	expect_error(s.data, s.len, SP_EENGINE, "line 1: BuildKit trace without a string \"aux\"");
	sp_buf_release(&s);
}

static void test_bad_protobuf(void **state)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01 };
	/* field 1 (vertexes), length 100, but 2 bytes follow */
	static const uint8_t truncated[] = { 0x0a, 0x64, 0x0a, 0x00 };
	/* field 3 (logs) holding a Vertex-shaped message with a bad wire type */
	static const uint8_t wire[] = { 0x1a, 0x02, 0x0b, 0x00 };
	struct sp_buf s = SP_BUF_INIT;
	struct msg m;
	size_t len;
	uint8_t *raw;

	(void)state;
	add_b64_line(&s, garbage, sizeof(garbage));
	expect_error(s.data, s.len, SP_EENGINE, "line 1: BuildKit trace is not a valid StatusResponse");
	sp_buf_reset(&s);
	sp_buf_addstr(&s, "{\"stream\":\"x\\n\"}\n");
	add_b64_line(&s, truncated, sizeof(truncated));
	expect_error(s.data, s.len, SP_EENGINE, "line 2: BuildKit trace is not a valid StatusResponse");
	sp_buf_reset(&s);
	add_b64_line(&s, wire, sizeof(wire));
	expect_error(s.data, s.len, SP_EENGINE, "line 1: BuildKit trace is not a valid StatusResponse");

	/* a real message cut short */
	sp_buf_reset(&s);
	msg_init(&m);
	msg_vertex(&m, "sha256:a", "[1/1] RUN true", 0, 1, 0, NULL);
	len = spbk__status_response__get_packed_size(&m.sr);
	raw = sp_xmalloc(len);
	spbk__status_response__pack(&m.sr, raw);
	add_b64_line(&s, raw, len - 3);
	expect_error(s.data, s.len, SP_EENGINE, "line 1: BuildKit trace is not a valid StatusResponse");
	free(raw);

	/* unknown fields are skipped: an empty message and a field-99 varint */
	sp_buf_reset(&s);
	add_b64_line(&s, (const uint8_t *)"", 0);
	add_b64_line(&s, (const uint8_t[]){ 0x98, 0x06, 0x01 }, 3);
	add_image_id(&s);
	{
		struct run r;

		run_stream(&r, s.data, s.len, 0, 0);
		assert_int_equal(r.rc, 0);
		run_release(&r);
	}
	sp_buf_release(&s);
}

static void test_overlong_line(void **state)
{
	struct sp_progress *p;
	struct sp_error err = SP_ERROR_INIT;
	size_t total = SP_PROGRESS_LINE_MAX + 1, chunk = 1024 * 1024, fed = 0;
	char *big = sp_xmalloc(total + 1);
	int rc = 0;

	(void)state;
	memset(big, ' ', total);
	big[total] = '\n';

	/* in chunks: fails as soon as the line passes the cap */
	p = sp_progress_new(NULL);
	assert_int_equal(sp_progress_feed(p, "{\"stream\":\"a\\n\"}\n", 17, &err), 0);
	while (fed < total && rc == 0) {
		size_t n = total - fed < chunk ? total - fed : chunk;

		rc = sp_progress_feed(p, big + fed, n, &err);
		fed += n;
	}
	assert_int_equal(rc, SP_ETOOBIG);
	assert_string_equal(err.msg, "build stream line 2: longer than 16777216 bytes");
	/* broken for good, with the same error */
	sp_error_clear(&err);
	assert_int_equal(sp_progress_feed(p, "{}\n", 3, &err), SP_ETOOBIG);
	assert_string_equal(err.msg, "build stream line 2: longer than 16777216 bytes");
	assert_int_equal(sp_progress_finish(p, &err), SP_ETOOBIG);
	sp_progress_free(p);

	/* whole, newline included */
	p = sp_progress_new(NULL);
	assert_int_equal(sp_progress_feed(p, big, total + 1, &err), SP_ETOOBIG);
	assert_string_equal(err.msg, "build stream line 1: longer than 16777216 bytes");
	sp_progress_free(p);

	/* exactly at the cap is fine (and blank) */
	p = sp_progress_new(NULL);
	assert_int_equal(sp_progress_feed(p, big + 1, total, &err), 0);
	assert_int_equal(sp_progress_finish(p, &err), SP_EENGINE);
	sp_progress_free(p);
	free(big);
}

static void test_too_many_vertices(void **state)
{
	enum { N = 100001 };
	Spbk__StatusResponse sr = SPBK__STATUS_RESPONSE__INIT;
	Spbk__Vertex *vx = sp_xcalloc(N, sizeof(*vx));
	Spbk__Vertex **vxp = sp_xcalloc(N, sizeof(*vxp));
	char (*dg)[16] = sp_xcalloc(N, sizeof(*dg));
	struct sp_buf s = SP_BUF_INIT;
	size_t i, len;
	uint8_t *raw;

	(void)state;
	for (i = 0; i < N; i++) {
		Spbk__Vertex init = SPBK__VERTEX__INIT;

		snprintf(dg[i], sizeof(dg[i]), "d%zu", i);
		vx[i] = init;
		vx[i].digest = dg[i];
		vxp[i] = &vx[i];
	}
	sr.vertexes = vxp;
	sr.n_vertexes = N;
	len = spbk__status_response__get_packed_size(&sr);
	raw = sp_xmalloc(len);
	spbk__status_response__pack(&sr, raw);
	add_b64_line(&s, raw, len);
	{
		struct sp_progress *p = sp_progress_new(NULL);
		struct sp_error err = SP_ERROR_INIT;

		assert_int_equal(sp_progress_feed(p, s.data, s.len, &err), SP_ETOOBIG);
		assert_string_equal(err.msg, "build stream line 1: more than 100000 build steps");
		sp_progress_free(p);
	}
	free(raw);
	free(vx);
	free(vxp);
	free(dg);
	sp_buf_release(&s);
}

/* Odd but valid: no handler, CRLF, blank lines, classic status lines. */
static void test_odd_but_valid(void **state)
{
	static const char stream[] =
		"\r\n"
		"{\"status\":\"Pulling from library/python\",\"id\":\"3.12\"}\r\n"
		"{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1500,\"total\":1e300},\"id\":\"abc\"}\r\n"
		"{\"status\":\"Downloading\",\"progressDetail\":{\"current\":-1e300},\"id\":\"abc\"}\r\n"
		"{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"abc\"}\r\n"
		"   \r\n"
		"{\"stream\":\"partial \"}\r\n"
		"{\"stream\":\"line\\r\\nnext\"}\r\n"
		"{\"id\":\"something.else\",\"aux\":{\"ID\":\"sha256:notit\"}}\r\n"
		"{\"aux\":{\"ID\":\"sha256:classic\"}}";
	struct sp_progress *p;
	struct run r;

	(void)state;
	p = sp_progress_new(NULL);
	assert_int_equal(sp_progress_feed(p, stream, sizeof(stream) - 1, NULL), 0);
	assert_int_equal(sp_progress_finish(p, NULL), 0);
	assert_string_equal(sp_progress_image_id(p), "sha256:classic");
	sp_progress_free(p);
	sp_progress_free(NULL);
	sp_progress_plain_free(NULL);

	run_stream(&r, stream, sizeof(stream) - 1, 7, 4);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.events.data,
			    "M 1 3.12: Pulling from library/python\n"
			    "M 2 abc: Downloading 1.50kB / 9.22EB\n"
			    "M 2 abc: Downloading -9.22EB\n"
			    "M 1 abc: Pull complete\n"
			    "M 0 partial line\n"
			    "M 0 next\n"
			    "F 0 \n");
	assert_string_equal(r.plain.data,
			    "3.12: Pulling from library/python\n"
			    "abc: Pull complete\n"
			    "partial line\n"
			    "next\n");
	run_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_ok),
		cmocka_unit_test(test_fixture_cached),
		cmocka_unit_test(test_fixture_fail_run),
		cmocka_unit_test(test_fixture_fail_builder),
		cmocka_unit_test(test_fixture_bridge),
		cmocka_unit_test(test_fixture_syntax),
		cmocka_unit_test(test_fixture_classic),
		cmocka_unit_test(test_fixture_classic_fail),
		cmocka_unit_test(test_plain_file),
		cmocka_unit_test(test_partial_logs),
		cmocka_unit_test(test_steps_and_statuses),
		cmocka_unit_test(test_cancel_and_early_end),
		cmocka_unit_test(test_long_error_keeps_hint),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_bad_protobuf),
		cmocka_unit_test(test_overlong_line),
		cmocka_unit_test(test_too_many_vertices),
		cmocka_unit_test(test_odd_but_valid),
		cmocka_unit_test(test_enospc_is_engine_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
