/*
 * fuzz_demux.c — libFuzzer target: Docker's multiplexed stdout/stderr stream.
 *
 * The first input byte chooses how the rest is cut into reads (as HTTP
 * would cut it) and whether the callback stops the stream at the first
 * engine message (type 3); the rest is the framed body.  The callback
 * checks what the header promises: pieces are never empty and never
 * longer than the read they came from.
 */
#include <stdlib.h>

#include "core/base/error.h"
#include "runners/docker/demux.h"
#include "tests/fuzz/fuzz.h"

struct sink {
	size_t bytes;
	int stop_on_syserr;
};

static int on_piece(void *ud, enum sp_demux_stream stream, const char *data, size_t len,
		    struct sp_error *err)
{
	struct sink *s = ud;
	volatile char touch;

	if (len == 0 || !data)
		abort();
	if (stream != SP_DEMUX_STDOUT && stream != SP_DEMUX_STDERR && stream != SP_DEMUX_SYSERR)
		abort();
	touch = data[0];
	touch = data[len - 1];
	(void)touch;
	s->bytes += len;
	if (stream == SP_DEMUX_SYSERR && s->stop_on_syserr)
		return sp_error_set(err, SP_EENGINE, "engine said something");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sink s = { 0, 0 };
	struct sp_demux d;
	unsigned seed;
	size_t off = 0, i = 0;
	int rc = 0;

	if (size < 1)
		return 0;
	seed = data[0];
	s.stop_on_syserr = seed & 0x80;
	data++;
	size--;
	sp_demux_init(&d, on_piece, &s);
	while (off < size) {
		size_t n = fuzz_chunk(seed, i++);
		if (n > size - off)
			n = size - off;
		rc = sp_demux_feed(&d, data + off, n, &err);
		if (rc < 0)
			break;
		off += n;
	}
	if (rc == 0 && s.bytes > size)
		abort(); /* more payload than bytes fed */
	(void)sp_demux_mid_frame(&d);
	(void)sp_demux_finish(&d, &err);
	/* a failed demultiplexer keeps failing */
	if (rc < 0 && sp_demux_feed(&d, data, size ? 1 : 0, &err) != rc)
		abort();
	return 0;
}
