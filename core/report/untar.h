/*
 * untar.h — safe extraction of an untrusted tar stream into a folder.
 *
 * The test stage copies its report folder out of the container with
 * GET /containers/{id}/archive?path=/dir (docker-api.md §4), whose body is
 * a plain tar with every entry under the folder's basename ("r/junit.xml").
 * What is inside was written by the tested code, so the archive is treated
 * as hostile.  Entries are refused — the whole extraction fails with
 * SP_ERROR, and nothing is ever written outside dest — when they have
 *   - an absolute path, or a ".." component anywhere;
 *   - a symlink target that is absolute or climbs out of dest (a target may
 *     only start with "..": "../x" from "a/l" is fine, "a/../../x" is not,
 *     nor is any ".." after a normal component, since that ".." would be
 *     resolved from wherever an earlier symlink led);
 *   - a hardlink target outside dest or through a symlink;
 *   - a type other than file, folder, symlink or hardlink (devices, fifos,
 *     sockets);
 *   - a path that goes through a symlink already on disk;
 * and the extraction stops with SP_ETOOBIG past max_entries entries or
 * max_bytes of file data (checked from each header before anything of that
 * entry is written).  Owners, set-id bits, ACLs, xattrs and file flags are
 * never restored; files are at least u+rw and folders u+rwx, so that the
 * caller can always read and remove what was extracted.
 *
 * libarchive does the writing (archive_write_disk with
 * ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS) on
 * top of our own checks; see untar.c for why SECURE_NOABSOLUTEPATHS cannot
 * be among them.  Only tar is read (ustar, pax, GNU), without decompression.
 *
 * The archive is pulled through a callback, so it can come straight from an
 * HTTP response (libcurl's pause/resume, a pipe, ...) without being stored.
 *
 * Note for threaded callers: libarchive's disk writer reads the process
 * umask (umask() twice) when it is created.
 */
#ifndef SP_UNTAR_H
#define SP_UNTAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/error.h"

/*
 * Supplies the next piece of the archive: sets *buf and *len (the bytes
 * must stay valid until the next call) and returns 0; *len == 0 means the
 * end.  Returns a negative SP_E* code, filling err, to abort: the
 * extraction then returns that code with err kept (context added in front).
 */
typedef int (*sp_untar_read_fn)(void *ud, const void **buf, size_t *len, struct sp_error *err);

/*
 * Whether to extract an entry: rel is its cleaned path (after strip_first),
 * "a/b" without a leading or trailing '/'; an absolute path or one with
 * ".." is refused before the filter sees it.  Return true to extract it,
 * false to skip it: its data is read past and nothing else is checked
 * (it is never written), it counts toward max_entries but not toward
 * max_bytes.  A kept hardlink to a skipped file is refused.
 */
typedef bool (*sp_untar_filter_fn)(void *ud, const char *rel);

struct sp_untar_opts {
	int strip_first;      /* drop each entry's first path component (Docker's basename) */
	uint64_t max_bytes;   /* total size of file data allowed */
	size_t max_entries;   /* entries allowed, folders and links included */
	sp_untar_filter_fn filter;  /* NULL: every entry */
	void *filter_ud;
};

#define SP_UNTAR_DEFAULT_MAX_BYTES (256u * 1024 * 1024)
#define SP_UNTAR_DEFAULT_MAX_ENTRIES 10000
#define SP_UNTAR_OPTS_INIT { 0, SP_UNTAR_DEFAULT_MAX_BYTES, SP_UNTAR_DEFAULT_MAX_ENTRIES, NULL, NULL }

/* What an extraction wrote. */
struct sp_untar_stats {
	size_t entries; /* entries extracted (skipped ones not counted) */
	uint64_t bytes; /* file data written */
};

/*
 * Extracts the tar stream read(ud, ...) supplies into dest, an existing
 * folder (it may hold files already; entries replace files of the same
 * name).  opts may be NULL for SP_UNTAR_OPTS_INIT; stats may be NULL.
 * With strip_first, an entry that is only the first component (Docker's
 * "r/" folder entry) is skipped, and a file that would be left without a
 * name is an error.
 *
 * Returns 0; SP_ENOTFOUND when dest does not exist; SP_ETOOBIG past a cap;
 * the callback's code when it failed; SP_ERROR for a refused entry, a
 * stream that is not a tar or is cut short, or a write error.  After a
 * failure dest may hold what was extracted before it (all of it inside
 * dest): the caller removes the folder.
 */
int sp_untar_extract(const char *dest, sp_untar_read_fn read, void *ud,
		     const struct sp_untar_opts *opts, struct sp_untar_stats *stats,
		     struct sp_error *err);

#endif
