/*
 * mask.h — hide secret values in everything stagepipe writes.
 *
 * A mask is a set of secret values (a pipeline's secrets:).  Text passed
 * through it comes out with every occurrence of a secret replaced by
 * "***" (SP_MASK_TEXT), where an occurrence is any of:
 *
 *   - the value itself, and, for a value of several lines, each of its
 *     lines of at least SP_MASK_MIN bytes (a '\r' before the '\n' is not
 *     part of a line), so that a secret printed across two lines, or cut
 *     into lines by a log reader, is still caught;
 *   - the value with any of its bytes written as an escape: URL encoding
 *     ("%2F" or "%2f", '+' for a space), an XML/HTML entity ("&amp;",
 *     "&quot;", "&#39;" ...) or a JSON string escape ("\\\"", "\\/",
 *     "\\n", "\\u00XX"), in any mix;
 *   - its base64 (standard and URL-safe alphabets), also where it sits
 *     inside a longer base64 text at any of the three byte alignments: the
 *     characters that depend on the secret's bits alone are masked, so at
 *     most the 2 bits of a boundary character stay visible.
 *
 * Overlapping occurrences (of one or several secrets) become one "***".
 *
 * A value shorter than SP_MASK_MIN bytes is refused (sp_mask_add): masking
 * it would blank common words, and not masking it would print it.  The
 * pipeline loader's callers turn that into a configuration error.
 *
 * Cost: nothing when the mask is NULL or empty (sp_mask_active false);
 * callers test that and pass text through untouched.  Otherwise about one
 * table lookup per byte plus a short match attempt where a byte can start
 * a secret.
 *
 * A mask is read-only once built: several streams (and threads) may use
 * one mask at the same time.
 */
#ifndef SP_MASK_H
#define SP_MASK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/base/buf.h"

struct sp_error;

/* Shortest secret value accepted, and shortest line of one masked alone. */
#define SP_MASK_MIN 4
/* What an occurrence is replaced with. */
#define SP_MASK_TEXT "***"

struct sp_mask;

/* A new empty mask; free with sp_mask_free. */
struct sp_mask *sp_mask_new(void);
/* Frees the mask and wipes the values it held; NULL is fine. */
void sp_mask_free(struct sp_mask *m);

/*
 * Adds a secret value of len bytes (copied).  Returns 0, or SP_ECONFIG
 * (nothing added, the message never shows the value) when it is shorter
 * than SP_MASK_MIN.  Adding a value twice is harmless.
 */
int sp_mask_add(struct sp_mask *m, const char *value, size_t len, struct sp_error *err);

/* Whether m (may be NULL) holds any secret. */
bool sp_mask_active(const struct sp_mask *m);

/* Appends data[0..len) to out with every occurrence masked (all of it:
 * nothing held back). */
void sp_mask_text(const struct sp_mask *m, const char *data, size_t len, struct sp_buf *out);

/* s masked, as a new string the caller frees; NULL for NULL. */
char *sp_mask_dup(const struct sp_mask *m, const char *s);

/* Whether data[0..len) holds an occurrence. */
bool sp_mask_found(const struct sp_mask *m, const char *data, size_t len);

/*
 * Masks the file at path in place (through a temporary file in the same
 * folder, renamed over it), e.g. a report written inside a container.
 * Returns 0 (also when nothing changed: the file is then left alone), or
 * SP_ERROR with the reason.
 */
int sp_mask_file(const struct sp_mask *m, const char *path, struct sp_error *err);

/* ---- streams ---- */

/* Receives masked bytes; data is borrowed for the call. */
typedef void (*sp_mask_out_fn)(void *ud, const char *data, size_t len);

/*
 * A masker for one output stream, fed as bytes arrive (in any cut).  A
 * secret split across two feeds is still masked: the bytes at the end of
 * a feed that could begin an occurrence (at most the longest form of a
 * secret less one byte) are held back until the next feed shows whether
 * they do; sp_mask_stream_flush hands over the rest at the end.  With an
 * inactive mask every feed goes straight to fn.
 */
struct sp_mask_stream {
	const struct sp_mask *m;  /* borrowed; must outlive the stream */
	sp_mask_out_fn fn;
	void *ud;
	struct sp_buf held;       /* bytes not yet decided */
	size_t covered;           /* held bytes already inside an occurrence */
	bool in_run;              /* the last output was SP_MASK_TEXT for a run
				   * that may go on */
	void *scratch;            /* match state, owned */
	size_t scratch_alloc;
};

void sp_mask_stream_init(struct sp_mask_stream *s, const struct sp_mask *m,
			 sp_mask_out_fn fn, void *ud);
void sp_mask_stream_feed(struct sp_mask_stream *s, const char *data, size_t len);
/* Decides and hands over whatever is held (end of the stream). */
void sp_mask_stream_flush(struct sp_mask_stream *s);
/* Frees the stream's memory (wiping held bytes); does not flush. */
void sp_mask_stream_release(struct sp_mask_stream *s);

#endif
