/*
 * test_demux.c — the demultiplexer of Docker's framed log stream.
 *
 * The fixture ($SP_FIXTURES/docker/logs-framed.bin) is a real
 * GET /containers/{id}/logs?stdout=1&stderr=1 body from dockerd 20.10; its
 * streams, as `docker logs` split them, are logs-stdout.txt and
 * logs-stderr.txt.  It is fed whole, byte by byte and in random chunks, and
 * must give the same output every time.  Then made-up streams: a 100 MB
 * frame (no buffering: the callback sees it in the caller's chunks), zero-
 * length frames, stdin frames, engine messages, malformed headers, streams
 * cut inside a header or a payload, and a callback that stops the stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "runners/docker/demux.h"
#include "tests/unit/support/testutil.h"

struct out {
	struct sp_buf out, err, sys;
	struct sp_buf order;  /* one letter per run of a stream: o, e, s */
	size_t calls;
	size_t max_piece;
	int stop_after;       /* >0: fail on that call */
	uint64_t counted;     /* bytes seen when not storing */
	int store;
};

static void out_init(struct out *o)
{
	memset(o, 0, sizeof(*o));
	sp_buf_init(&o->out, 0);
	sp_buf_init(&o->err, 0);
	sp_buf_init(&o->sys, 0);
	sp_buf_init(&o->order, 0);
	o->store = 1;
}

static void out_release(struct out *o)
{
	sp_buf_release(&o->out);
	sp_buf_release(&o->err);
	sp_buf_release(&o->sys);
	sp_buf_release(&o->order);
}

static int on_piece(void *ud, enum sp_demux_stream stream, const char *data, size_t len,
		    struct sp_error *err)
{
	struct out *o = ud;

	assert_true(len > 0);
	o->calls++;
	if (len > o->max_piece)
		o->max_piece = len;
	if (o->stop_after && (int)o->calls == o->stop_after)
		return sp_error_set(err, SP_ECANCELLED, "sink is gone");
	o->counted += len;
	if (!o->store)
		return 0;
	switch (stream) {
	case SP_DEMUX_STDOUT:
		sp_buf_add(&o->out, data, len);
		if (!o->order.len || o->order.data[o->order.len - 1] != 'o')
			sp_buf_addch(&o->order, 'o');
		break;
	case SP_DEMUX_STDERR:
		sp_buf_add(&o->err, data, len);
		if (!o->order.len || o->order.data[o->order.len - 1] != 'e')
			sp_buf_addch(&o->order, 'e');
		break;
	case SP_DEMUX_SYSERR:
		sp_buf_add(&o->sys, data, len);
		if (!o->order.len || o->order.data[o->order.len - 1] != 's')
			sp_buf_addch(&o->order, 's');
		break;
	default:
		fail_msg("unknown stream %d", (int)stream);
	}
	return 0;
}

/* Feeds data whole (max 0), or in chunks of 1..max bytes (random when seed). */
static int feed(struct sp_demux *d, const char *data, size_t len, size_t max, uint32_t seed,
		struct sp_error *err)
{
	size_t off = 0;
	int rc;

	while (off < len) {
		size_t n = max == 0 ? len : seed ? 1 + sp_test_rand(&seed) % max : max;

		if (n > len - off)
			n = len - off;
		if ((rc = sp_demux_feed(d, data + off, n, err)) < 0)
			return rc;
		off += n;
	}
	return 0;
}

static void put_header(char *h, int type, uint32_t size)
{
	h[0] = (char)type;
	h[1] = h[2] = h[3] = 0;
	h[4] = (char)(size >> 24);
	h[5] = (char)(size >> 16);
	h[6] = (char)(size >> 8);
	h[7] = (char)size;
}

static void add_frame(struct sp_buf *b, int type, const char *payload, uint32_t size)
{
	char h[8];

	put_header(h, type, size);
	sp_buf_add(b, h, 8);
	sp_buf_add(b, payload, size);
}

static void test_fixture(void **state)
{
	size_t len, outlen, errlen;
	char *stream = sp_test_read_fixture("docker", "logs-framed.bin", &len);
	char *want_out = sp_test_read_fixture("docker", "logs-stdout.txt", &outlen);
	char *want_err = sp_test_read_fixture("docker", "logs-stderr.txt", &errlen);
	static const size_t sizes[] = { 0, 1, 7, 8, 9, 4096, 16391 };
	size_t i;
	uint32_t seed;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]) + 5; i++) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_demux d;
		struct out o;

		out_init(&o);
		sp_demux_init(&d, on_piece, &o);
		if (i < sizeof(sizes) / sizeof(sizes[0])) {
			assert_int_equal(feed(&d, stream, len, sizes[i], 0, &err), 0);
		} else {
			seed = (uint32_t)(i * 2654435761u) | 1;
			assert_int_equal(feed(&d, stream, len, 50, seed, &err), 0);
		}
		assert_int_equal(sp_demux_finish(&d, &err), 0);
		assert_false(sp_demux_mid_frame(&d));
		assert_int_equal(o.out.len, outlen);
		assert_int_equal(o.err.len, errlen);
		assert_memory_equal(o.out.data, want_out, outlen);
		assert_memory_equal(o.err.data, want_err, errlen);
		assert_int_equal(o.sys.len, 0);
		/* This capture's interleaving (it varies between recordings). */
		assert_string_equal(o.order.data, "oeoeoeoe");
		assert_int_equal(d.frames, 11);
		assert_int_equal(d.offset, len);
		out_release(&o);
	}
	assert_true(strstr(want_out, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93\n") != NULL);
	assert_true(strstr(want_out, "no newline yet... now done\n") != NULL);
	free(stream);
	free(want_out);
	free(want_err);
}

/* A 100 MB frame passes through in the caller's chunks, never collected. */
static void test_big_frame(void **state)
{
	const uint32_t size = 100u * 1024 * 1024;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_demux d;
	struct out o;
	char chunk[65536];
	char h[8];
	uint64_t left = size;

	(void)state;
	out_init(&o);
	o.store = 0;
	sp_demux_init(&d, on_piece, &o);
	put_header(h, 2, size);
	/* Header split 3 + 5 across reads, the first chunk carries payload too. */
	assert_int_equal(sp_demux_feed(&d, h, 3, &err), 0);
	assert_true(sp_demux_mid_frame(&d));
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, h + 3, 5);
	assert_int_equal(sp_demux_feed(&d, chunk, sizeof(chunk), &err), 0);
	left -= sizeof(chunk) - 5;
	assert_int_equal(o.counted, sizeof(chunk) - 5);
	while (left > 0) {
		size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);

		assert_int_equal(sp_demux_feed(&d, chunk, n, &err), 0);
		left -= n;
		assert_int_equal(o.counted, (uint64_t)size - left);
	}
	assert_false(sp_demux_mid_frame(&d));
	assert_int_equal(sp_demux_finish(&d, &err), 0);
	assert_int_equal(o.counted, size);
	assert_true(o.max_piece <= sizeof(chunk));
	/* One call per chunk: the first, then ceil(rest / chunk). */
	assert_int_equal(o.calls, 1 + (size - (sizeof(chunk) - 5) + sizeof(chunk) - 1) / sizeof(chunk));
	out_release(&o);
}

/* Zero-length frames, stdin (type 0) as stdout, engine messages (type 3). */
static void test_odd_frames(void **state)
{
	struct sp_buf s = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_demux d;
	struct out o;
	size_t max;

	(void)state;
	add_frame(&s, 1, "", 0);
	add_frame(&s, 0, "in", 2);
	add_frame(&s, 1, "out\n", 4);
	add_frame(&s, 2, "", 0);
	add_frame(&s, 2, "err\n", 4);
	add_frame(&s, 3, "engine says no", 14);
	add_frame(&s, 1, "", 0);
	for (max = 0; max <= 9; max++) {
		out_init(&o);
		sp_demux_init(&d, on_piece, &o);
		assert_int_equal(feed(&d, s.data, s.len, max, 0, &err), 0);
		assert_int_equal(sp_demux_finish(&d, &err), 0);
		assert_string_equal(o.out.data, "inout\n");
		assert_string_equal(o.err.data, "err\n");
		assert_string_equal(o.sys.data, "engine says no");
		assert_string_equal(o.order.data, "oes");
		assert_int_equal(d.frames, 7);
		out_release(&o);
	}
	/* Nothing at all is a clean (empty) stream. */
	out_init(&o);
	sp_demux_init(&d, on_piece, &o);
	assert_int_equal(sp_demux_feed(&d, "", 0, &err), 0);
	assert_int_equal(sp_demux_finish(&d, &err), 0);
	assert_int_equal(o.calls, 0);
	out_release(&o);
	sp_buf_release(&s);
}

static void expect_bad(const char *data, size_t len, size_t good_bytes, const char *what)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_demux d;
	struct out o;
	size_t max;

	for (max = 0; max <= 9; max++) {
		out_init(&o);
		sp_demux_init(&d, on_piece, &o);
		sp_error_clear(&err);
		assert_int_equal(feed(&d, data, len, max, 0, &err), SP_EENGINE);
		if (!strstr(err.msg, what))
			fail_msg("expected \"%s\" in \"%s\"", what, err.msg);
		assert_int_equal(o.out.len + o.err.len + o.sys.len, good_bytes);
		/* Stays failed. */
		assert_int_equal(sp_demux_feed(&d, "x", 1, &err), SP_EENGINE);
		assert_int_equal(sp_demux_finish(&d, &err), SP_EENGINE);
		out_release(&o);
	}
}

static void test_malformed(void **state)
{
	struct sp_buf s = SP_BUF_INIT;

	(void)state;
	/* A TTY container's raw output is not framed. */
	expect_bad("HTTP/1.1 200 OK\r\n", 17, 0, "bad frame header 48 54 54 50 2f 31 2e 31 at byte 0");
	/* Nonzero padding after a good frame. */
	add_frame(&s, 1, "ok\n", 3);
	sp_buf_add(&s, "\x01\x00\x01\x00\x00\x00\x00\x01z", 9);
	expect_bad(s.data, s.len, 3, "at byte 11");
	/* Unknown type. */
	sp_buf_reset(&s);
	add_frame(&s, 2, "warn\n", 5);
	sp_buf_add(&s, "\x04\x00\x00\x00\x00\x00\x00\x01z", 9);
	expect_bad(s.data, s.len, 5, "bad frame header 04 00 00 00");
	sp_buf_reset(&s);
	sp_buf_add(&s, "\xff\x00\x00\x00\x00\x00\x00\x00", 8);
	expect_bad(s.data, s.len, 0, "TTY");
	sp_buf_release(&s);
}

static void test_truncated(void **state)
{
	struct sp_buf s = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_demux d;
	struct out o;
	size_t cut;

	(void)state;
	add_frame(&s, 1, "hello\n", 6);
	add_frame(&s, 2, "oops\n", 5);
	for (cut = 0; cut <= s.len; cut++) {
		out_init(&o);
		sp_demux_init(&d, on_piece, &o);
		sp_error_clear(&err);
		assert_int_equal(sp_demux_feed(&d, s.data, cut, &err), 0);
		if (cut == 0 || cut == 14 || cut == s.len) {
			assert_false(sp_demux_mid_frame(&d));
			assert_int_equal(sp_demux_finish(&d, &err), 0);
		} else {
			assert_true(sp_demux_mid_frame(&d));
			assert_int_equal(sp_demux_finish(&d, &err), SP_EENGINE);
			if ((cut > 0 && cut < 8) || (cut > 14 && cut < 22))
				assert_non_null(strstr(err.msg, "inside a frame header"));
			else
				assert_non_null(strstr(err.msg, cut < 14 ? "of stdout missing" : "of stderr missing"));
		}
		/* Whatever arrived was passed on, nothing more. */
		assert_int_equal(o.out.len, cut <= 8 ? 0 : cut >= 14 ? 6 : cut - 8);
		assert_int_equal(o.err.len, cut <= 22 ? 0 : cut - 22);
		out_release(&o);
	}
	out_init(&o);
	sp_demux_init(&d, on_piece, &o);
	assert_int_equal(sp_demux_feed(&d, s.data, 10, &err), 0);
	assert_int_equal(sp_demux_finish(&d, &err), SP_EENGINE);
	assert_string_equal(err.msg, "log stream ended inside a frame: 4 bytes of stdout missing at byte 10");
	out_release(&o);
	sp_buf_release(&s);
}

/* The callback's error stops the stream and comes back unchanged. */
static void test_callback_stops(void **state)
{
	struct sp_buf s = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_demux d;
	struct out o;

	(void)state;
	add_frame(&s, 1, "one\n", 4);
	add_frame(&s, 2, "two\n", 4);
	add_frame(&s, 1, "three\n", 6);
	out_init(&o);
	o.stop_after = 2;
	sp_demux_init(&d, on_piece, &o);
	assert_int_equal(sp_demux_feed(&d, s.data, s.len, &err), SP_ECANCELLED);
	assert_string_equal(err.msg, "sink is gone");
	assert_string_equal(o.out.data, "one\n");
	assert_int_equal(o.err.len, 0);
	assert_int_equal(sp_demux_feed(&d, "x", 1, &err), SP_ECANCELLED);
	assert_int_equal(sp_demux_finish(&d, &err), SP_ECANCELLED);
	out_release(&o);
	sp_buf_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture),
		cmocka_unit_test(test_big_frame),
		cmocka_unit_test(test_odd_frames),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_callback_stops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
