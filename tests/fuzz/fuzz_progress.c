/*
 * fuzz_progress.c — libFuzzer target: the POST /build response decoder
 * (BuildKit trace lines with base64 protobuf, classic builder lines).
 *
 * The first input byte chooses how the body is cut into reads (bits 0-5),
 * whether the stream ends with sp_progress_finish or sp_progress_abandon
 * (bit 7), and what the rest is (bit 6):
 *   0  the body as the engine sends it;
 *   1  records of a 2-byte big-endian length and that many bytes: a record
 *      that starts with '{' is a JSON line as is, any other is a raw
 *      StatusResponse protobuf that the harness wraps in a
 *      {"id":"moby.buildkit.trace","aux":"<base64>"} line, so that the
 *      fuzzer mutates the protobuf itself rather than its base64.  Events go through the plain printer (as
 * `stagepipe run` prints them) into a callback that only touches the
 * lines.
 */
#include <stdlib.h>

#include <string.h>

#include <openssl/evp.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "runners/docker/progress.h"
#include "tests/fuzz/fuzz.h"

static void on_line(void *ud, const char *line, size_t len)
{
	size_t *total = ud;
	volatile char touch;

	if (line[len] != '\0')
		abort(); /* promised: line[len] == '\0' */
	if (len) {
		touch = line[0];
		touch = line[len - 1];
		(void)touch;
	}
	*total += len;
}

/* Turns length-prefixed records into a body (see above) in *out. */
static void wrap_records(struct sp_buf *out, const uint8_t *data, size_t size)
{
	static const char head[] = "{\"id\":\"moby.buildkit.trace\",\"aux\":\"";
	size_t off = 0;

	while (size - off >= 2) {
		size_t len = (size_t)data[off] << 8 | data[off + 1];
		const uint8_t *rec = data + off + 2;
		char *b64;

		off += 2;
		if (len > size - off)
			len = size - off;
		off += len;
		if (len && rec[0] == '{') {
			(void)sp_buf_add(out, rec, len);
			(void)sp_buf_addch(out, '\n');
			continue;
		}
		b64 = sp_xmalloc(4 * ((len + 2) / 3) + 1);
		EVP_EncodeBlock((unsigned char *)b64, rec, (int)len);
		(void)sp_buf_addstr(out, head);
		(void)sp_buf_addstr(out, b64);
		(void)sp_buf_addstr(out, "\"}\n");
		free(b64);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_buf body = SP_BUF_INIT;
	struct sp_progress_handler h;
	struct sp_progress_plain *plain;
	struct sp_progress *p;
	size_t total = 0, off = 0, i = 0;
	unsigned seed;
	int rc = 0;

	if (size < 1)
		return 0;
	seed = data[0];
	data++;
	size--;
	if (seed & 0x40) {
		wrap_records(&body, data, size);
		data = (const uint8_t *)body.data;
		size = body.len;
		seed &= ~0x40u;
	}
	plain = sp_progress_plain_new_cb(on_line, &total);
	sp_progress_plain_handler(plain, &h);
	p = sp_progress_new(&h);
	while (off < size) {
		size_t n = fuzz_chunk(seed, i++);
		if (n > size - off)
			n = size - off;
		rc = sp_progress_feed(p, data + off, n, &err);
		if (rc < 0)
			break;
		off += n;
	}
	if (seed & 0x80 && rc == 0) {
		sp_progress_abandon(p);
		if (sp_progress_finish(p, &err) != SP_EENGINE)
			abort(); /* promised after abandon */
	} else {
		int fin = sp_progress_finish(p, &err);
		if (rc < 0 && fin != rc)
			abort(); /* a feed error is the result */
		if (sp_progress_finish(p, &err) != fin)
			abort(); /* the same result again */
	}
	(void)sp_progress_image_id(p);
	(void)sp_progress_failed_step(p);
	sp_progress_free(p);
	sp_progress_plain_free(plain);
	sp_buf_release(&body);
	return 0;
}
