/*
 * checkout.h — a clean tree of one commit of a repository, made with libgit2.
 *
 * sp_checkout is what `stagepipe run --repo`, the build server and agents
 * use: given a repository URL (https, http, ssh, git, file:// or a local
 * path) and a ref (branch, tag, full or short SHA, or a full ref name such
 * as refs/pull/12/head), it produces a tree of exactly that commit and says
 * which commit it was.
 *
 * How (see mirror.h for the cache):
 *   - the repository is fetched into a bare mirror kept in the cache folder
 *     ($XDG_CACHE_HOME/stagepipe, default ~/.cache/stagepipe): the first
 *     checkout of a URL clones it, later ones fetch only what is new (no
 *     fetch at all when a full SHA is asked for and already there);
 *   - the tree is written from the mirror's objects with a separate index,
 *     so it holds the commit's files and nothing else: no .git folder;
 *   - submodules (when asked) are mirrors of their own, checked out at the
 *     commits the tree records, recursively.
 *
 * Where the tree goes:
 *   - opts.dest set: that folder (created; it must not exist or be empty);
 *     every file is written.  The caller owns and removes the folder.
 *   - opts.dest NULL: a workspace of the cache, kept between jobs
 *     (CACHE/work/<key>-<n>/tree).  A workspace free for this repository is
 *     taken (locked with flock; two jobs never share one, a new one is made
 *     when all are busy) and brought to the commit incrementally: only
 *     files that differ are written, files the commit does not have
 *     (build leftovers included) are removed, files changed since are
 *     restored.  This is the fast path for repeated jobs: when the
 *     workspace's seal (wsseal.h) proves nothing changed it since the
 *     last job, only the paths that differ between the two commits are
 *     looked at and written (res.quick).  The workspace
 *     stays locked until sp_checkout_result_release; its tree must not be
 *     used after that.
 *
 * Errors (one line, URLs without secrets):
 *   SP_ECONFIG    malformed URL or ref, bad credentials settings (exit 2)
 *   SP_ENOTFOUND  unknown ref, local repository missing or not a repository
 *   SP_EENGINE    the remote cannot be reached or refuses (authentication
 *                 failed: the URL and the methods tried are named)
 *   SP_ECANCELLED the cancel callback asked to stop
 *   SP_ERROR      anything else (disk full, a broken cache folder)
 *
 * The caller has called git_libgit2_init.  Several threads or processes
 * may check out at once, the same repository included.
 */
#ifndef SP_CHECKOUT_H
#define SP_CHECKOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/base/cancel.h"
#include "core/pipeline/vars.h"

struct sp_error;
struct sp_gitinfo;

enum sp_checkout_phase {
	SP_CHECKOUT_WAITING,  /* for another job's lock on the mirror */
	SP_CHECKOUT_FETCHING, /* objects from the remote */
	SP_CHECKOUT_WRITING,  /* files of the tree */
};

struct sp_checkout_progress {
	enum sp_checkout_phase phase;
	const char *url;               /* display form (no secrets) of the repository */
	const char *path;              /* "" for the repository, the submodule's path otherwise */
	unsigned int total_objects;    /* FETCHING: 0 until the server says */
	unsigned int received_objects;
	unsigned int indexed_objects;
	size_t received_bytes;
	size_t files_done;             /* WRITING */
	size_t files_total;
};

/*
 * Called on the calling thread, at most ~5 times a second per phase, and
 * once when a fetch has received everything.  p and its strings are valid
 * during the call only.
 */
typedef void (*sp_checkout_progress_fn)(const struct sp_checkout_progress *p, void *ud);

struct sp_checkout_opts {
	const char *url;          /* required */
	const char *ref;          /* NULL: the remote's default branch (its HEAD) */
	/*
	 * NULL, or the exact commit to check out (40 hex), as a webhook names
	 * it: ref then only says what to fetch to get it (needed for commits
	 * on no branch, e.g. ref "refs/pull/12/head") and which branch or tag
	 * to report, even if it has moved on since.  Not fetched at all when
	 * the mirror already has it.
	 */
	const char *sha;
	const char *dest;         /* NULL: a cache workspace (see above) */
	const char *cache_dir;    /* NULL: sp_checkout_cache_dir() */
	bool submodules;          /* also check out submodules, recursively */
	/*
	 * The environment: credentials (gitcred.h), XDG_CACHE_HOME, HOME,
	 * XDG_CONFIG_HOME, SSH_AUTH_SOCK.  NULL: no environment at all.
	 */
	sp_vars_getenv_fn getenv;
	void *getenv_ud;
	sp_checkout_progress_fn progress;  /* may be NULL */
	void *progress_ud;
	sp_cancel_fn cancel;      /* polled while waiting for a lock, while fetching, and
				   * before the tree is written; may be NULL */
	void *cancel_ud;
	/*
	 * A tree going into an empty folder is written on up to 4 threads
	 * (one per CPU) when it has at least this many files (its
	 * .gitattributes first, alone); 0: 2048.  (Tests set it low.)
	 */
	size_t parallel_min_files;
};

struct sp_checkout_submodule {
	char *path;  /* relative to the tree, nested ones as "a/b" */
	char *url;   /* display form */
	char *sha;   /* 40 hex */
};

struct sp_checkout_result {
	char *url;          /* the repository's URL, safe to print (no password) */
	char *dir;          /* the tree: opts.dest made absolute, or the workspace's tree */
	char *sha;          /* 40 hex */
	char *short_sha;    /* 7 hex */
	char *ref;          /* the full ref the name resolved to ("refs/heads/main");
			     * NULL when only a SHA was asked for */
	char *branch;       /* "main": the branch asked for (or the default branch
			     * when no ref was given); for a SHA, a branch whose tip it
			     * is (the default branch first); NULL otherwise */
	char *tag;          /* the tag asked for, else a tag pointing at the commit
			     * (first by name); NULL if none */
	char *subject;      /* first line of the commit message */
	char *mirror;       /* the mirror folder used */
	bool mirror_created;  /* this call cloned (or rebuilt) the mirror */
	bool fetched;         /* this call fetched from the remote */
	bool quick;           /* a workspace its seal proved untouched: only the
			       * paths that differ from its last commit were written */
	unsigned int objects_received;  /* by the fetch(es) of this call */
	size_t bytes_received;
	struct sp_checkout_submodule *submodules;  /* all levels, in checkout order */
	size_t n_submodules;
	/* private: the workspace's folder and lock (held while workspace is set) */
	char *workspace;
	int lock_fd;
};

/*
 * Sets libgit2's process-wide options for checkouts; call once, after
 * git_libgit2_init() and before any thread uses libgit2.  Returns 0, or
 * -1 when libgit2 refuses an option (checkouts still work, only slower).
 * Libgit2 1.5 (Debian 12) has all four:
 *   GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION   off: every object read is
 *       no longer re-hashed (SHA-1 of each blob written to a tree);
 *       damage is still caught by zlib's checksum of each object, the
 *       pack trailer checks on open and the indexer's hashing of what
 *       a fetch receives, and a damaged mirror is rebuilt (mirror.h)
 *   GIT_OPT_ENABLE_STRICT_OBJECT_CREATION     off: objects are never
 *       created by a checkout; a fetch's objects are hashed by the indexer
 *   GIT_OPT_DISABLE_PACK_KEEP_FILE_CHECKS     on: no .keep lookup per pack
 *   GIT_OPT_ENABLE_FSYNC_GITDIR               off (libgit2's default, set
 *       explicitly): a mirror is made in a temporary folder, marked
 *       complete with an fsync'ed marker, and rebuilt when damaged
 * Libgit2 1.5 has no parallel checkout and no option to overlap indexing
 * with checkout.
 */
int sp_checkout_global_init(void);

/*
 * Checks out opts->ref of opts->url (see above).  On success fills *out,
 * which the caller releases with sp_checkout_result_release; on error
 * returns a negative SP_E* code with one line in err, and *out is empty
 * (nothing to release, though releasing is harmless).
 */
int sp_checkout(struct sp_checkout_result *out, const struct sp_checkout_opts *opts,
		struct sp_error *err);

/*
 * Checks out the submodules of a tree made by sp_checkout (for callers
 * that learn only from the checked-out pipeline file that they are
 * wanted).  opts must be the options the checkout was made with (its
 * submodules flag is ignored).  Adds to res->submodules.  Same errors as
 * sp_checkout.
 */
int sp_checkout_submodules(struct sp_checkout_result *res, const struct sp_checkout_opts *opts,
			   struct sp_error *err);

/*
 * Frees the result's strings and unlocks its workspace (whose tree may
 * then be reused by another job at any time).  res is then empty.  A
 * zeroed struct (memset 0) is empty too: releasing it does nothing.
 */
void sp_checkout_result_release(struct sp_checkout_result *res);

/*
 * Fills info (as sp_gitinfo_discover would for a work tree at that commit)
 * with copies of res's fields: is_repo true, root = res->dir.  Release info
 * with sp_gitinfo_release.
 */
void sp_checkout_result_gitinfo(struct sp_gitinfo *info, const struct sp_checkout_result *res);

/*
 * The default cache folder: $XDG_CACHE_HOME/stagepipe, else
 * $HOME/.cache/stagepipe (through getenv, which may be NULL).  *out is a
 * new string.  SP_ECONFIG when neither variable is set.
 */
int sp_checkout_cache_dir(char **out, sp_vars_getenv_fn getenv, void *getenv_ud,
			  struct sp_error *err);

/*
 * `run --clean`: clones the repository at repo_path (a work tree or a bare
 * repository on this machine) into dest (which must not exist or be
 * empty) and checks out commit sha (40 hex) detached; dest/.git is a
 * repository whose objects are hard-linked where the file system allows.
 * Returns 0, SP_ENOTFOUND for an unknown commit, or SP_ERROR with
 * libgit2's message.
 */
int sp_checkout_local(const char *repo_path, const char *sha, const char *dest,
		      struct sp_error *err);

#endif
