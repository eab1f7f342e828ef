/*
 * checkout.h — a clean tree of one commit, made with libgit2.
 *
 * `stagepipe run --clean` builds exactly what is committed: the commit is
 * checked out into a fresh folder, so uncommitted and untracked files of
 * the working tree never reach the build.
 */
#ifndef SP_CHECKOUT_H
#define SP_CHECKOUT_H

struct sp_error;

/*
 * Clones the repository at repo_path (a work tree or a bare repository on
 * this machine) into dest (which must not exist or be empty) and checks
 * out commit sha (40 hex) detached.  Objects are hard-linked where the
 * file system allows.  Returns 0, SP_ENOTFOUND for an unknown commit, or
 * SP_ERROR with libgit2's message.
 */
int sp_checkout_local(const char *repo_path, const char *sha, const char *dest,
		      struct sp_error *err);

#endif
