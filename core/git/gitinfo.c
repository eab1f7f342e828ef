/*
 * gitinfo.c — HEAD's commit, branch and tag through libgit2; see gitinfo.h.
 */
#include "core/git/gitinfo.h"

#include <git2.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/pipeline/vars.h"
#include "core/base/xalloc.h"

struct tag_search {
	git_repository *repo;
	const git_oid *commit;
	char *best;  /* smallest matching name */
};

static int on_tag(const char *name, git_oid *oid, void *payload)
{
	struct tag_search *ts = payload;
	git_object *obj = NULL, *peeled = NULL;
	const char *shortname = name;

	if (!strncmp(shortname, "refs/tags/", 10))
		shortname += 10;
	if (git_object_lookup(&obj, ts->repo, oid, GIT_OBJECT_ANY) == 0 &&
	    git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0 &&
	    git_oid_equal(git_object_id(peeled), ts->commit) &&
	    (!ts->best || strcmp(shortname, ts->best) < 0)) {
		free(ts->best);
		ts->best = sp_xstrdup(shortname);
	}
	git_object_free(peeled);
	git_object_free(obj);
	return 0;
}

char *sp_gitinfo_tag_at(git_repository *repo, const git_oid *commit)
{
	struct tag_search ts = { repo, commit, NULL };

	(void)git_tag_foreach(repo, on_tag, &ts);
	return ts.best;
}

const char *sp_gitinfo_last_error(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown libgit2 error";
}

int sp_gitinfo_discover(struct sp_gitinfo *info, const char *dir, struct sp_error *err)
{
	git_repository *repo = NULL;
	git_reference *head = NULL;
	git_commit *commit = NULL;
	char abs[PATH_MAX], hex[GIT_OID_HEXSZ + 1];
	const char *workdir;
	int rc = 0, grc;

	memset(info, 0, sizeof(*info));
	if (!realpath(dir, abs))
		return sp_error_set(err, SP_ENOTFOUND, "source folder %s does not exist", dir);
	grc = git_repository_open_ext(&repo, abs, 0, NULL);
	if (grc == GIT_ENOTFOUND) {
		info->root = sp_xstrdup(abs);
		return 0;
	}
	if (grc < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot open the git repository at %s: %s", abs,
				  sp_gitinfo_last_error());
		goto out;
	}
	info->is_repo = true;
	workdir = git_repository_workdir(repo);
	if (workdir) {
		size_t n = strlen(workdir);
		info->root = sp_xstrndup(workdir, n > 1 && workdir[n - 1] == '/' ? n - 1 : n);
	} else {
		info->root = sp_xstrdup(abs);
	}
	grc = git_repository_head(&head, repo);
	if (grc == GIT_EUNBORNBRANCH || grc == GIT_ENOTFOUND)
		goto out;  /* no commit yet */
	if (grc < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot read HEAD of %s: %s", info->root,
				  sp_gitinfo_last_error());
		goto out;
	}
	if (git_reference_is_branch(head))
		info->branch = sp_xstrdup(git_reference_shorthand(head));
	if (git_reference_target(head) &&
	    git_commit_lookup(&commit, repo, git_reference_target(head)) == 0) {
		const char *summary = git_commit_summary(commit);

		git_oid_tostr(hex, sizeof(hex), git_commit_id(commit));
		info->sha = sp_xstrdup(hex);
		info->short_sha = sp_xstrndup(hex, 7);
		info->subject = sp_xstrdup(summary ? summary : "");
		info->tag = sp_gitinfo_tag_at(repo, git_commit_id(commit));
	}
out:
	git_commit_free(commit);
	git_reference_free(head);
	git_repository_free(repo);
	if (rc < 0)
		sp_gitinfo_release(info);
	return rc;
}

void sp_gitinfo_release(struct sp_gitinfo *info)
{
	if (!info)
		return;
	free(info->root);
	free(info->sha);
	free(info->short_sha);
	free(info->branch);
	free(info->tag);
	free(info->subject);
	memset(info, 0, sizeof(*info));
}

void sp_gitinfo_vars(const struct sp_gitinfo *info, struct sp_vars *vars)
{
	vars->git_sha = info->sha;
	vars->git_short_sha = info->short_sha;
	vars->git_branch = info->branch;
	vars->git_tag = info->tag;
}
