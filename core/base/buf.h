/*
 * buf.h — a growable byte buffer with an optional hard cap.
 *
 * Modelled on git's strbuf and curl's dynbuf: data is never NULL (an empty
 * buffer points at a shared "" so it can always be printed), data[len] is
 * always '\0', and a buffer that holds untrusted input is given a cap so
 * that a hostile peer cannot make it grow without bound: going past the
 * cap is an SP_ETOOBIG error, not a crash.  Out-of-memory aborts (xalloc).
 *
 * Lifecycle: sp_buf_init (no allocation) → add... → sp_buf_release (frees
 * contents, back to init state) or sp_buf_detach (hands the bytes over).
 */
#ifndef SP_BUF_H
#define SP_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct sp_buf {
	char *data;   /* never NULL; NUL-terminated at len */
	size_t len;
	size_t alloc; /* 0 while data points at the shared empty string */
	size_t cap;   /* maximum len; 0 = no limit */
};

extern char sp_buf_empty[1];
#define SP_BUF_INIT { sp_buf_empty, 0, 0, 0 }

/* Initialises without allocating; cap 0 means unlimited. */
void sp_buf_init(struct sp_buf *b, size_t cap);
/* Frees the contents; the buffer is then as after sp_buf_init (cap kept). */
void sp_buf_release(struct sp_buf *b);
/* Empties the buffer but keeps its memory. */
void sp_buf_reset(struct sp_buf *b);
/* Ensures room for extra more bytes; SP_ETOOBIG if that passes the cap. */
int sp_buf_grow(struct sp_buf *b, size_t extra);

/* Appends; 0 or SP_ETOOBIG (nothing appended then). */
int sp_buf_add(struct sp_buf *b, const void *data, size_t len);
int sp_buf_addstr(struct sp_buf *b, const char *s);
int sp_buf_addch(struct sp_buf *b, char c);
int sp_buf_addf(struct sp_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int sp_buf_vaddf(struct sp_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Removes the first n bytes (n <= len). */
void sp_buf_consume(struct sp_buf *b, size_t n);

/*
 * Hands the bytes to the caller, who frees them; the buffer is left empty.
 * Always returns an allocated string (even when empty). len may be NULL.
 */
char *sp_buf_detach(struct sp_buf *b, size_t *len);

#endif
