/*
 * lines.h — cut a byte stream into lines, with a bound on memory.
 *
 * Bytes are fed as they arrive; each complete line (without '\n', and
 * without a '\r' before it) goes to the callback.  A line longer than max
 * is handed over in max-sized pieces, so a program that prints megabytes
 * without a newline costs max bytes, not megabytes.
 */
#ifndef SP_LINES_H
#define SP_LINES_H

#include <stddef.h>

#include "core/base/buf.h"

/* line is NOT NUL-terminated: use len. */
typedef void (*sp_lines_fn)(void *ud, const char *line, size_t len);

struct sp_lines {
	struct sp_buf partial;
	size_t max;
	sp_lines_fn fn;
	void *ud;
};

void sp_lines_init(struct sp_lines *l, size_t max, sp_lines_fn fn, void *ud);
void sp_lines_feed(struct sp_lines *l, const char *data, size_t len);
/* Hands over a last line without '\n', if any. */
void sp_lines_flush(struct sp_lines *l);
void sp_lines_release(struct sp_lines *l);

#endif
