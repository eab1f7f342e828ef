/*
 * demux.h — splitting Docker's multiplexed container output into streams.
 *
 * A container created with "Tty": false sends stdout and stderr over one
 * connection (GET /containers/{id}/logs, attach), framed (docker-api.md §4):
 *
 *	+------+---+---+---+----------------------+------------------+
 *	| type | 0 | 0 | 0 | size (u32 big-endian) | size bytes       |
 *	+------+---+---+---+----------------------+------------------+
 *
 * type 0 (stdin, written back by some engines) and 1 are stdout, 2 is
 * stderr, 3 is an error message from the engine itself.  Frames split
 * lines anywhere, and HTTP reads split frames and headers anywhere.
 *
 * struct sp_demux is fed the body as it arrives, in chunks of any size,
 * and hands payload bytes to a callback *as soon as they arrive*: a frame
 * is never collected first, so a 100 MB frame costs no memory.  The state
 * is the 8-byte header being assembled and the bytes left in the current
 * frame; the struct lives wherever the caller puts it (no allocation, no
 * release).
 *
 * A header with nonzero padding or an unknown type means the stream is not
 * framed (a Tty container, or garbage): SP_EENGINE, and the demultiplexer
 * stays failed.  The callback may stop the stream by returning a negative
 * code, which feed passes up unchanged.
 *
 * Typical use (runners/docker, the logs request's write callback):
 *
 *	struct sp_demux d;
 *	sp_demux_init(&d, on_output, sink);
 *	... for each body chunk: if (sp_demux_feed(&d, buf, n, err) < 0) abort the transfer
 *	at the end of the body:  rc = sp_demux_finish(&d, err);
 */
#ifndef SP_DEMUX_H
#define SP_DEMUX_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/error.h"

/* Size of a frame header. */
#define SP_DEMUX_HEADER_SIZE 8

/* Where a piece of output came from (the frame type, stdin folded into stdout). */
enum sp_demux_stream {
	SP_DEMUX_STDOUT = 1,
	SP_DEMUX_STDERR = 2,
	SP_DEMUX_SYSERR = 3, /* a message from the engine, not from the container */
};

/*
 * Receives payload bytes in order.  data points into the caller's chunk and
 * is valid only during the call; len is never 0.  A piece never spans two
 * frames, but a frame may arrive in many pieces.  Return 0 to go on, or a
 * negative SP_E* code (filling err) to stop: sp_demux_feed returns it.
 */
typedef int (*sp_demux_fn)(void *ud, enum sp_demux_stream stream,
			   const char *data, size_t len, struct sp_error *err);

struct sp_demux {
	sp_demux_fn fn;
	void *ud;
	unsigned char hdr[SP_DEMUX_HEADER_SIZE]; /* header being assembled */
	size_t hdr_len;                          /* bytes of it seen so far */
	uint32_t left;                           /* payload bytes left in the frame */
	enum sp_demux_stream stream;             /* stream of the current frame */
	int failed;                              /* a feed failed; further feeds fail */
	uint64_t offset;                         /* bytes consumed, for messages */
	uint64_t frames;                         /* complete headers seen */
};

/* Prepares d to call fn(ud, ...) for every piece of payload.  Allocates nothing. */
void sp_demux_init(struct sp_demux *d, sp_demux_fn fn, void *ud);

/*
 * Consumes len bytes of the framed stream (data is only read during the
 * call).  Returns 0; SP_EENGINE for a malformed header ("log stream: bad
 * frame header 48 54 54 50 … at byte 0"); or the callback's negative code
 * with its message.  After a failure every later call returns the same
 * code again (with a message saying so).
 */
int sp_demux_feed(struct sp_demux *d, const void *data, size_t len, struct sp_error *err);

/*
 * Says whether the stream ended cleanly: 0 at a frame boundary, SP_EENGINE
 * when it stopped inside a header or a payload (the connection broke, or
 * the engine died), with how much was missing.  Returns the earlier error
 * code again when a feed had failed.
 */
int sp_demux_finish(const struct sp_demux *d, struct sp_error *err);

/* True while the stream stands inside a frame (header or payload). */
int sp_demux_mid_frame(const struct sp_demux *d);

#endif
