/*
 * mirror.h — one bare mirror per repository URL, kept in the cache folder.
 *
 *   CACHE/mirrors/<key>.git     the mirror (a bare repository)
 *   CACHE/mirrors/<key>.lock    flock(2) file: exclusive to create,
 *                               rebuild or fetch, shared to read objects
 *   CACHE/mirrors/<key>.tmp-*   a mirror being made (a crash leaves one
 *                               behind; removed by the next open)
 *
 * <key> comes from the URL's canonical form (giturl.h).  A new mirror is
 * initialised and given its first fetch in a temporary folder, a marker
 * file (stagepipe-mirror, holding the canonical URL) is written, and only
 * then is it renamed into place: a mirror at the final path is complete.
 * Opening one checks the marker, that every pack's index matches its pack
 * (size and checksum trailer) and that every ref's target can be read; a
 * mirror failing any of that (a crash, a full disk, someone deleting
 * files) is removed and made again, never used.  Later fetches add a pack
 * and move refs, which git's object store makes safe for readers holding
 * the shared lock; stale ref lock files left by a killed fetch are
 * removed while the exclusive lock is held.
 *
 * Only branches and tags (refs/heads/..., refs/tags/...) are mirrored,
 * pruned like the remote; other refs (refs/pull/12/head,
 * refs/merge-requests/3/head) are fetched when asked for.  Credentials:
 * gitcred.h.  Only checkout.c uses this.
 */
#ifndef SP_MIRROR_H
#define SP_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/git/checkout.h"

struct sp_error;
struct sp_giturl;
struct git_repository;

struct sp_mirror {
	const struct sp_giturl *url;          /* borrowed */
	const struct sp_checkout_opts *opts;  /* borrowed: getenv, progress, cancel */
	const char *env_host;   /* borrowed: where STAGEPIPE_GIT_* may go (gitcred.h) */
	const char *sub_path;   /* borrowed: "" or the submodule's path, for progress */
	char *path;             /* CACHE/mirrors/<key>.git, where it is (or will be) */
	char *tmp;              /* the folder being made, when not yet renamed into place */
	struct git_repository *repo;  /* open on path or tmp */
	int lock_fd;
	int lock_mode;          /* 0, LOCK_SH or LOCK_EX */
	ino_t ino;              /* of path when opened (a rebuild changes it, mostly) */
	bool created;           /* this handle made (or remade) the mirror */
	bool fetched;
	unsigned int objects_received;
	size_t bytes_received;
	char *head;             /* the remote's default branch ("refs/heads/main"), or NULL */
};

/*
 * Opens the mirror of url under cache_dir with the exclusive lock held
 * (waiting for other jobs, reporting SP_CHECKOUT_WAITING, polling the
 * cancel callback).  A missing or broken mirror is made anew in a
 * temporary folder (m->created; nothing is fetched yet: call
 * sp_mirror_fetch, which puts it in place).  Close with sp_mirror_close
 * whatever this returns.
 */
int sp_mirror_open(struct sp_mirror *m, const struct sp_giturl *url, const char *cache_dir,
		   const struct sp_checkout_opts *opts, const char *env_host, const char *sub_path,
		   struct sp_error *err);

/*
 * Fetches heads and tags (and the extra refspecs, e.g.
 * "+refs/pull/12/head:refs/pull/12/head"), prunes branches and tags the
 * remote no longer has, and records the remote's default branch as HEAD.
 * Needs the exclusive lock.  A new mirror is put in place afterwards.
 */
int sp_mirror_fetch(struct sp_mirror *m, const char *const *extra, size_t n_extra,
		    struct sp_error *err);

/* Changes the lock: exclusive (waiting as open does) or shared. */
int sp_mirror_lock(struct sp_mirror *m, bool exclusive, struct sp_error *err);

/*
 * With the exclusive lock: throws the mirror away and starts a new one
 * (as open does for a broken one); the caller then fetches.
 */
int sp_mirror_rebuild(struct sp_mirror *m, struct sp_error *err);

/* Closes the repository, unlocks, removes an unfinished temporary mirror. */
void sp_mirror_close(struct sp_mirror *m);

/*
 * Sets err from libgit2's last error as "WHAT URL: message", with
 * secrets removed, and returns code.
 */
int sp_mirror_git_error(const struct sp_mirror *m, int code, const char *what,
			struct sp_error *err);

/* mkdir -p, mode for each folder it makes; an existing folder is fine. */
int sp_mirror_mkdirs(const char *path, mode_t mode, struct sp_error *err);

/* Does libgit2's last error look like damaged objects (not a missing name)? */
bool sp_mirror_error_is_damage(void);

#endif
