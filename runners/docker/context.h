/*
 * context.h — a build context as a tar stream, produced while it is read.
 *
 * The body of POST /build is the context folder as a tar.  sp_context_read
 * is shaped for libcurl's CURLOPT_READFUNCTION: each call produces just
 * enough of the tar to fill the caller's buffer, so a context of any size is
 * sent with a small, fixed amount of memory (see the note atop context.c).
 *
 * What is sent matches what `docker build` sends: the folder walked in
 * bytewise-sorted order, a folder before its contents, .dockerignore applied
 * with patternmatcher semantics (ignore.h), the Dockerfile and .dockerignore
 * always included, modes, symlinks (as links), empty folders and mtimes (to
 * the second) kept, uid/gid 0 and no user/group names; sockets, devices and
 * fifos skipped.
 */
#ifndef SP_CONTEXT_H
#define SP_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/error.h"

/* A context being streamed; opaque. */
struct sp_context;

enum sp_context_type {
	SP_CONTEXT_FILE,
	SP_CONTEXT_DIR,
	SP_CONTEXT_SYMLINK,
};

struct sp_context_counts {
	uint64_t files;     /* regular files sent (or listed) */
	uint64_t dirs;      /* folders sent */
	uint64_t symlinks;  /* symlinks sent */
	uint64_t bytes;     /* bytes of file content sent: no headers or padding */
	uint64_t excluded;  /* paths left out by .dockerignore; a pruned folder counts once */
	uint64_t skipped;   /* sockets, devices and fifos left out */
	uint64_t tar_bytes; /* bytes handed out by sp_context_read so far */
};

/*
 * Prepares to stream the folder dir (NULL or "" = ".") as a build context.
 * dockerfile is the Dockerfile's path relative to dir (NULL or "" =
 * "Dockerfile"); it must lie inside dir and exist.  dir/.dockerignore is read
 * and compiled now, so pattern errors are reported here.  Nothing else is
 * read until sp_context_read asks for it.
 *
 * Errors: SP_ENOTFOUND (dir or the Dockerfile does not exist), SP_ECONFIG
 * (a .dockerignore error with its line, or a Dockerfile path outside dir),
 * SP_ERROR (dir cannot be read).  On success *out belongs to the caller
 * (sp_context_free); on failure *out is NULL.
 */
int sp_context_open(struct sp_context **out, const char *dir, const char *dockerfile,
		    struct sp_error *err);

/*
 * Fills buf with up to size (> 0) further bytes of the tar stream and sets
 * *nread.  *nread is 0 only at the end of the stream (the call then returns
 * 0); before the end it is at least 1 and usually size.  Errors (a file that
 * cannot be read, or changed size while being read — both named in the
 * message) return SP_ERROR; every later call returns the same error.
 * Memory held stays below size + 64 KiB + one header, plus the walk state.
 */
int sp_context_read(struct sp_context *ctx, char *buf, size_t size, size_t *nread,
		    struct sp_error *err);

/* Copies the counters so far (complete once sp_context_read reported the end). */
void sp_context_get_counts(const struct sp_context *ctx, struct sp_context_counts *out);

/*
 * The two counters most callers want: regular files sent so far and bytes
 * of their content (no tar overhead).  Either pointer may be NULL.
 */
void sp_context_stats(const struct sp_context *ctx, unsigned long long *files,
		      unsigned long long *bytes);

/*
 * The Dockerfile's path inside the context, cleaned ("./a//Dockerfile" →
 * "a/Dockerfile") — the value for /build's dockerfile= parameter.
 * Borrowed: valid until sp_context_free.
 */
const char *sp_context_dockerfile(const struct sp_context *ctx);

/* Closes files and frees everything; NULL is accepted. */
void sp_context_free(struct sp_context *ctx);

/*
 * Called for each entry that would be sent, in stream order.  path is
 * borrowed for the call; size is the file size (0 for folders and links).
 * Return 0 to go on; a negative value stops the walk and is returned by
 * sp_context_list as it is.
 */
typedef int (*sp_context_list_fn)(const char *path, uint64_t size, enum sp_context_type type,
				  void *ud);

/*
 * Walks dir exactly as sp_context_open/sp_context_read would, without
 * producing a tar, calling fn for each entry.  When stats is not NULL it
 * receives the counters (also after an error: what was walked so far).
 * Returns 0, the same errors as sp_context_open and sp_context_read, or
 * the callback's negative value.
 */
int sp_context_list(const char *dir, const char *dockerfile, sp_context_list_fn fn, void *ud,
		    struct sp_context_counts *stats, struct sp_error *err);

#endif
