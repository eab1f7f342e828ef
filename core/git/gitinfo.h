/*
 * gitinfo.h — what a source folder's git repository says about HEAD.
 *
 * Used for the ${GIT_*} variables and for the source root that pipeline
 * paths are relative to.  Reads the repository with libgit2 (the caller
 * has called git_libgit2_init); a folder that is not in a repository is
 * not an error, it just has no commit.  The tag lookup and libgit2's last
 * error message serve checkout.c and mirror.c as well.
 */
#ifndef SP_GITINFO_H
#define SP_GITINFO_H

#include <stdbool.h>

struct sp_error;

struct sp_gitinfo {
	bool is_repo;
	char *root;        /* work tree top, or the folder itself outside a repo */
	char *sha;         /* 40 hex; NULL without a commit */
	char *short_sha;   /* 7 hex; NULL without a commit */
	char *branch;      /* "main"; NULL when detached or outside a repo */
	char *tag;         /* a tag pointing at HEAD (first by name); NULL if none */
	char *subject;     /* first line of the commit message; NULL without a commit */
};

/*
 * Fills info for the repository containing dir (searching upwards).
 * Returns 0 (also outside a repository: is_repo false, root = dir made
 * absolute), or SP_ENOTFOUND when dir does not exist, SP_ERROR when the
 * repository cannot be read.  Release with sp_gitinfo_release.
 */
int sp_gitinfo_discover(struct sp_gitinfo *info, const char *dir, struct sp_error *err);
void sp_gitinfo_release(struct sp_gitinfo *info);

struct sp_vars;
/* Points the GIT_* fields of vars at info's strings (borrowed). */
void sp_gitinfo_vars(const struct sp_gitinfo *info, struct sp_vars *vars);

/* ---- shared with the other libgit2 users (checkout.c, mirror.c) ---- */

struct git_repository;
struct git_oid;

/*
 * The short name ("v1.1") of a tag of repo that points at commit,
 * annotated tags peeled; the first by name when several do, NULL when
 * none does.  A new string the caller frees.
 */
char *sp_gitinfo_tag_at(struct git_repository *repo, const struct git_oid *commit);

/*
 * The message of the last libgit2 error on this thread, or "unknown libgit2
 * error" when there is none.  Borrowed: valid until the next libgit2 call.
 */
const char *sp_gitinfo_last_error(void);

#endif
