/*
 * checkout.c — clean checkouts with libgit2; see checkout.h.
 */
#include "core/checkout.h"

#include <git2.h>
#include <string.h>

#include "core/error.h"

static int git_fail(struct sp_error *err, int code, const char *what)
{
	const git_error *e = git_error_last();

	return sp_error_set(err, code, "%s: %s", what, e && e->message ? e->message : "libgit2 error");
}

int sp_checkout_local(const char *repo_path, const char *sha, const char *dest,
		      struct sp_error *err)
{
	git_clone_options opts;
	git_checkout_options co;
	git_repository *repo = NULL;
	git_object *commit = NULL;
	git_oid oid;
	int rc = 0;

	/* the _init functions, not the macros: the macros trip -Wmissing-field-initializers */
	git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	opts.local = GIT_CLONE_LOCAL;  /* hard links for objects */
	opts.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
	if (git_clone(&repo, repo_path, dest, &opts) < 0) {
		rc = git_fail(err, SP_ERROR, "cloning the repository for a clean checkout");
		goto out;
	}
	if (git_oid_fromstr(&oid, sha) < 0 ||
	    git_object_lookup(&commit, repo, &oid, GIT_OBJECT_COMMIT) < 0) {
		rc = git_fail(err, SP_ENOTFOUND, "looking up the commit to check out");
		goto out;
	}
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	if (git_checkout_tree(repo, commit, &co) < 0 ||
	    git_repository_set_head_detached(repo, &oid) < 0) {
		rc = git_fail(err, SP_ERROR, "checking out the commit");
		goto out;
	}
out:
	git_object_free(commit);
	git_repository_free(repo);
	return rc;
}
