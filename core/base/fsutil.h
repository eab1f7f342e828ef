/*
 * fsutil.h — small file-system helpers.
 */
#ifndef SP_FSUTIL_H
#define SP_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

struct sp_error;

/*
 * Makes a new private folder "$TMPDIR/<prefix>XXXXXX" (TMPDIR default
 * /tmp).  *out is a new string the caller frees.
 */
int sp_fs_tempdir(char **out, const char *prefix, struct sp_error *err);

/* Removes path and everything below it, never following symlinks. */
int sp_fs_rmtree(const char *path, struct sp_error *err);

/*
 * The contents of a small text file (a state or list file, git's
 * info/alternates), at most its first MiB: longer is not expected, and
 * is cut rather than read whole.  NULL when it cannot be opened.  A new
 * string the caller frees.
 */
char *sp_fs_read_small(const char *path);

/*
 * Makes path hold exactly len bytes of data, all or nothing: written to a
 * new temporary file beside it ("<path>.XXXXXX", removed on failure),
 * given mode, fsync'ed when durable, then renamed over path.  Without
 * durable, for caches: a crash may lose the new contents (or, on a file
 * system that does not order data before the rename, leave path short;
 * a reader must check what it reads).  "cannot write PATH: reason" on
 * failure.
 */
int sp_fs_write_atomic(const char *path, const void *data, size_t len, unsigned int mode,
		       bool durable, struct sp_error *err);

#endif
