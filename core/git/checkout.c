/*
 * checkout.c — clean trees of one commit with libgit2; see checkout.h.
 *
 * A tree is written straight from a mirror's objects: the mirror's
 * repository handle is given, in memory only, a work folder (the job's
 * folder or a cache workspace) and an index of our own, and libgit2's
 * checkout does the rest.  Nothing is written into the mirror itself, so
 * any number of jobs can do this at once under the mirror's shared lock.
 *
 * With a workspace a seal (wsseal.h) is kept next to the tree
 * (CACHE/work/<key>-<n>/seal).  The next job's checkout compares the tree
 * on disk with it, one lstat per file and folder: when nothing changed,
 * only the paths that differ between the two commits are written; when
 * something did, the entries that differ are removed and libgit2 checks
 * every file against the seal's entries (by stat data, as git does),
 * writing only what differs.  Either way anything the commit does not have
 * is removed.  A workspace records the commit it holds in
 * its "state" file only once its tree is complete: the file is removed
 * before the tree is touched, so a job killed half-way leaves a workspace
 * that the next job wipes and writes from scratch.  Submodule trees inside
 * a workspace are listed in its "submodules" file and removed before the
 * next checkout (they are small next to their superproject and this keeps
 * their handling simple: they are always written whole).
 *
 * Damaged mirrors: open (mirror.c) rejects most damage; what it cannot see
 * (a corrupt object deep in a pack) shows up as a read error here, and the
 * mirror is then rebuilt and the checkout tried once more.
 */
#define _XOPEN_SOURCE 700
#include "core/git/checkout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/repository.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/git/gitinfo.h"
#include "core/git/giturl.h"
#include "core/git/mirror.h"
#include "core/git/wsseal.h"
#include "core/base/xalloc.h"

#define MAX_WORKSPACES 64
#define MAX_SUBMODULE_DEPTH 8
/* per job: a .gitmodules fan-out (8 deep) must not make a job fetch without end */
#define MAX_SUBMODULES 256
#define WRITE_PROGRESS_EVERY_MS 200
/* internal: libgit2 failed and its error is still pending (damage is checked on it) */
#define E_GIT (-1000)

/* One sp_checkout / sp_checkout_submodules call. */
struct job {
	const struct sp_checkout_opts *o;
	char *cache;
	char *env_host;  /* STAGEPIPE_GIT_* go only here (gitcred.h) */
	enum sp_giturl_kind top_kind;  /* of the repository asked for */
	struct sp_checkout_result *res;
	size_t n_subs;   /* submodules checked out so far, against MAX_SUBMODULES */
};

/* What checking out one repository found (top level or submodule). */
struct found {
	git_oid oid;
	char *ref;
	char *branch;
	char *tag;
	char *subject;
};

/* A submodule to check out: path relative to the repository holding it. */
struct sub {
	char *path;
	char *url;  /* resolved against the superproject's URL */
	git_oid oid;
};

struct sublist {
	struct sub *items;
	size_t n, alloc;
};

static void found_release(struct found *f)
{
	free(f->ref);
	free(f->branch);
	free(f->tag);
	free(f->subject);
	memset(f, 0, sizeof(*f));
}

static void sublist_release(struct sublist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->items[i].path);
		free(l->items[i].url);
	}
	free(l->items);
	memset(l, 0, sizeof(*l));
}

static bool is_hex(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

static char *oid_hex(const git_oid *oid)
{
	char hex[GIT_OID_HEXSZ + 1];

	git_oid_tostr(hex, sizeof(hex), oid);
	return sp_xstrdup(hex);
}

/* ---- refs ---------------------------------------------------------------- */

/* A ref the user typed: SP_ECONFIG when it cannot be a ref at all. */
static int check_ref(const char *ref, struct sp_error *err)
{
	char *name;
	int valid = 0;

	if (!*ref)
		return sp_error_set(err, SP_ECONFIG, "malformed ref: it is empty");
	if (is_hex(ref, 4, GIT_OID_HEXSZ))
		return 0;
	name = strncmp(ref, "refs/", 5) ? sp_xasprintf("refs/heads/%s", ref) : sp_xstrdup(ref);
	if (git_reference_name_is_valid(&valid, name) < 0)
		valid = 0;
	free(name);
	if (!valid)
		return sp_error_set(err, SP_ECONFIG, "malformed ref \"%s\"", ref);
	return 0;
}

/* Refs outside heads and tags are not mirrored: fetch the one asked for. */
static bool needs_own_refspec(const char *ref)
{
	return ref && !strncmp(ref, "refs/", 5) && strncmp(ref, "refs/heads/", 11) &&
	       strncmp(ref, "refs/tags/", 10);
}

/* A branch whose tip is oid: the default branch first, else the first by name. */
static char *branch_at(git_repository *repo, const git_oid *oid, const char *head)
{
	git_branch_iterator *it = NULL;
	git_reference *ref = NULL;
	git_branch_t type;
	char *best = NULL;

	if (head && !strncmp(head, "refs/heads/", 11) &&
	    git_reference_lookup(&ref, repo, head) == 0) {
		const git_oid *t = git_reference_target(ref);

		if (t && git_oid_equal(t, oid))
			best = sp_xstrdup(head + 11);
		git_reference_free(ref);
		ref = NULL;
		if (best)
			return best;
	}
	if (git_branch_iterator_new(&it, repo, GIT_BRANCH_LOCAL) < 0)
		return NULL;
	while (git_branch_next(&ref, &type, it) == 0) {
		const git_oid *t = git_reference_target(ref);
		const char *name = git_reference_shorthand(ref);

		if (t && git_oid_equal(t, oid) && (!best || strcmp(name, best) < 0)) {
			free(best);
			best = sp_xstrdup(name);
		}
		git_reference_free(ref);
	}
	git_branch_iterator_free(it);
	return best;
}

/*
 * Resolves ref in the mirror to a commit.  SP_ENOTFOUND (message ready)
 * when there is no such ref or commit; other libgit2 failures E_GIT.
 */
static int resolve(struct found *f, git_commit **out, struct sp_mirror *m, const char *ref,
		   struct sp_error *err)
{
	git_repository *repo = m->repo;
	git_object *obj = NULL, *peeled = NULL;
	git_reference *r = NULL;
	char *full = NULL;
	const char *head = m->head;
	git_reference *h = NULL;
	int rc = 0, grc = GIT_ENOTFOUND;

	*out = NULL;
	if (!head && git_reference_lookup(&h, repo, "HEAD") == 0 &&
	    git_reference_type(h) == GIT_REFERENCE_SYMBOLIC)
		head = git_reference_symbolic_target(h);
	if (!ref) {
		if (!head) {
			rc = sp_error_set(err, SP_ENOTFOUND, "%s has no default branch; give a ref",
					  m->url->display);
			goto out;
		}
		full = sp_xstrdup(head);
		grc = git_reference_lookup(&r, repo, full);
	} else if (is_hex(ref, GIT_OID_HEXSZ, GIT_OID_HEXSZ)) {
		git_oid oid;

		if (git_oid_fromstr(&oid, ref) == 0)
			grc = git_object_lookup(&obj, repo, &oid, GIT_OBJECT_ANY);
	} else if (!strncmp(ref, "refs/", 5)) {
		full = sp_xstrdup(ref);
		grc = git_reference_lookup(&r, repo, full);
	} else {
		full = sp_xasprintf("refs/tags/%s", ref);
		grc = git_reference_lookup(&r, repo, full);
		if (grc == GIT_ENOTFOUND) {
			free(full);
			full = sp_xasprintf("refs/heads/%s", ref);
			grc = git_reference_lookup(&r, repo, full);
		}
		if (grc == GIT_ENOTFOUND && is_hex(ref, 4, GIT_OID_HEXSZ - 1)) {
			git_oid oid;

			free(full);
			full = NULL;
			if (git_oid_fromstrn(&oid, ref, strlen(ref)) == 0)
				grc = git_object_lookup_prefix(&obj, repo, &oid, strlen(ref),
							       GIT_OBJECT_ANY);
			if (grc == GIT_EAMBIGUOUS) {
				rc = sp_error_set(err, SP_ECONFIG, "short SHA %s is ambiguous in %s; "
						  "give more digits", ref, m->url->display);
				goto out;
			}
		}
	}
	if (grc == GIT_ENOTFOUND) {
		if (!ref)
			rc = sp_error_set(err, SP_ENOTFOUND, "%s has no commits", m->url->display);
		else if (is_hex(ref, GIT_OID_HEXSZ, GIT_OID_HEXSZ))
			rc = sp_error_set(err, SP_ENOTFOUND, "no commit %s in %s (it is on no branch "
					  "or tag; give the ref that holds it)", ref,
					  m->url->display);
		else
			rc = sp_error_set(err, SP_ENOTFOUND, "no branch, tag or commit \"%s\" in %s",
					  ref, m->url->display);
		goto out;
	}
	if (grc < 0) {
		rc = E_GIT;
		goto out;
	}
	if (r && git_reference_peel(&obj, r, GIT_OBJECT_ANY) < 0) {
		rc = E_GIT;
		goto out;
	}
	if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0) {
		if (sp_mirror_error_is_damage() && git_error_last()->klass != GIT_ERROR_OBJECT) {
			rc = E_GIT;
			goto out;
		}
		rc = sp_error_set(err, SP_ENOTFOUND, "\"%s\" in %s is not a commit",
				  ref ? ref : full, m->url->display);
		goto out;
	}
	git_oid_cpy(&f->oid, git_object_id(peeled));
	if (full) {
		f->ref = full;
		full = NULL;  /* owned by f now */
		if (!strncmp(f->ref, "refs/heads/", 11))
			f->branch = sp_xstrdup(f->ref + 11);
		else if (!strncmp(f->ref, "refs/tags/", 10))
			f->tag = sp_xstrdup(f->ref + 10);
	} else {
		f->branch = branch_at(repo, &f->oid, head);
	}
	if (!f->tag)
		f->tag = sp_gitinfo_tag_at(repo, &f->oid);
	f->subject = sp_xstrdup(git_commit_summary((git_commit *)peeled)
				? git_commit_summary((git_commit *)peeled) : "");
	*out = (git_commit *)peeled;
	peeled = NULL;  /* the caller's now */
out:
	git_object_free(peeled);
	git_object_free(obj);
	git_reference_free(r);
	git_reference_free(h);
	free(full);
	return rc;
}

/*
 * With an exact commit asked for, the ref that was fetched to get it
 * names the branch or tag (it may have moved on since: the commit wins).
 */
static void name_from_ref(struct found *f, const struct sp_mirror *m, const char *ref)
{
	git_reference *r = NULL;
	char *full;

	if (is_hex(ref, 4, GIT_OID_HEXSZ))
		return;
	if (!strncmp(ref, "refs/", 5)) {
		full = sp_xstrdup(ref);
	} else {
		full = sp_xasprintf("refs/tags/%s", ref);
		if (git_reference_lookup(&r, m->repo, full) < 0) {
			free(full);
			full = sp_xasprintf("refs/heads/%s", ref);
		}
		git_reference_free(r);
	}
	free(f->ref);
	f->ref = full;
	if (!strncmp(full, "refs/heads/", 11)) {
		free(f->branch);
		f->branch = sp_xstrdup(full + 11);
	} else if (!strncmp(full, "refs/tags/", 10)) {
		free(f->tag);
		f->tag = sp_xstrdup(full + 10);
	}
}

/* ---- writing a tree ------------------------------------------------------ */

struct write_ctx {
	const struct sp_mirror *m;
	int64_t last_ms;
};

static void on_write(const char *path, size_t done, size_t total, void *payload)
{
	struct write_ctx *w = payload;
	struct sp_checkout_progress p;
	int64_t now = sp_cancel_now_ms();

	(void)path;
	if (done != total && now - w->last_ms < WRITE_PROGRESS_EVERY_MS)
		return;
	w->last_ms = now;
	memset(&p, 0, sizeof(p));
	p.phase = SP_CHECKOUT_WRITING;
	p.url = w->m->url->display;
	p.path = w->m->sub_path ? w->m->sub_path : "";
	p.files_done = done;
	p.files_total = total;
	w->m->opts->progress(&p, w->m->opts->progress_ud);
}

/* ---- an empty folder: the tree written on several threads --------------- */

/*
 * libgit2's checkout is one thread; writing 20,000 files is CPU-bound
 * (inflating, open/write/close), so a tree going into an empty folder is
 * cut into shares of its paths, each written by libgit2's own checkout
 * limited to them, on a repository handle of its own (libgit2 objects are
 * not shared between threads).  The .gitattributes files go first, alone,
 * so that every share's filters see them, as git writes them first.
 */
#define PAR_MAX_THREADS 4
#define PAR_MIN_FILES_DEFAULT 2048

struct par_list {
	char **v;
	size_t n, cap;
};

struct par_paths {
	struct par_list files;  /* every other entry that is not a folder */
	struct par_list attrs;  /* the .gitattributes files */
};

static void par_add(struct par_list *l, char *path)
{
	SP_GROW(l->v, l->cap, l->n + 1);
	l->v[l->n++] = path;
}

static void par_list_release(struct par_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int on_path(const char *root, const git_tree_entry *e, void *payload)
{
	struct par_paths *p = payload;
	const char *name = git_tree_entry_name(e);

	if (git_tree_entry_type(e) != GIT_OBJECT_TREE)
		par_add(!strcmp(name, ".gitattributes") ? &p->attrs : &p->files,
			sp_xasprintf("%s%s", root, name));
	return 0;
}

struct par_share {
	const char *repo_path;
	const git_oid *tree_id;
	const char *dir;
	char **paths;
	size_t n, last;           /* last: files of this share done, as reported */
	atomic_size_t *done;      /* of all shares */
	struct write_ctx *w;      /* the calling thread's share only: reports progress */
	size_t total;
	int rc;                   /* 0, or E_GIT with klass and msg: libgit2's error */
	int klass;
	char *msg;
};

static void on_share_write(const char *path, size_t done, size_t total, void *payload)
{
	struct par_share *s = payload;
	size_t all;

	(void)total;
	all = atomic_fetch_add(s->done, done - s->last) + (done - s->last);
	s->last = done;
	if (s->w && all < s->total)
		on_write(path, all, s->total, s->w);
}

static void *write_share(void *arg)
{
	struct par_share *s = arg;
	git_repository *repo = NULL;
	git_index *idx = NULL;
	git_tree *tree = NULL;
	git_checkout_options co;

	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_WRITE_INDEX |
			       GIT_CHECKOUT_NO_REFRESH | GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH;
	co.paths.strings = s->paths;
	co.paths.count = s->n;
	co.progress_cb = on_share_write;
	co.progress_payload = s;
	if (git_repository_open_bare(&repo, s->repo_path) < 0 || git_index_new(&idx) < 0 ||
	    git_tree_lookup(&tree, repo, s->tree_id) < 0 ||
	    git_repository_set_workdir(repo, s->dir, 0) < 0 ||
	    git_repository_set_index(repo, idx) < 0 ||
	    git_checkout_tree(repo, (git_object *)tree, &co) < 0) {
		const git_error *e = git_error_last();

		s->rc = E_GIT;
		s->klass = e ? e->klass : GIT_ERROR_NONE;
		s->msg = sp_xstrdup(e && e->message ? e->message : "unknown error");
	}
	git_tree_free(tree);
	git_index_free(idx);
	git_repository_free(repo);
	return NULL;
}

/*
 * Writes tree into dir (empty) on several threads when it pays (at least
 * min_files files, more than one CPU): 0, or E_GIT with libgit2's error
 * set on this thread.  1: not done, write it the usual way.
 */
static int write_fresh(struct sp_mirror *m, git_tree *tree, const char *dir, size_t min_files)
{
	struct par_paths p;
	struct par_share shares[PAR_MAX_THREADS], first;
	pthread_t tids[PAR_MAX_THREADS];
	bool started[PAR_MAX_THREADS];
	struct write_ctx w = { m, 0 };
	atomic_size_t done = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	const char *repo_path = git_repository_path(m->repo);
	size_t nt, t, at = 0, total;
	int rc = 1;

	memset(&p, 0, sizeof(p));
	if (cpus < 2 || !(git_libgit2_features() & GIT_FEATURE_THREADS))
		return 1;
	if (git_tree_walk(tree, GIT_TREEWALK_PRE, on_path, &p) < 0) {
		rc = E_GIT;
		goto out;
	}
	total = p.files.n + p.attrs.n;
	if (total < min_files || p.files.n < 2)
		goto out;
	first = (struct par_share){ repo_path, git_tree_id(tree), dir, p.attrs.v, p.attrs.n, 0, &done,
				    m->opts->progress ? &w : NULL, total, 0, 0, NULL };
	if (p.attrs.n) {
		write_share(&first);
		if (first.rc) {
			git_error_set_str(first.klass, first.msg);
			free(first.msg);
			rc = E_GIT;
			goto out;
		}
	}
	nt = (size_t)cpus < PAR_MAX_THREADS ? (size_t)cpus : PAR_MAX_THREADS;
	for (t = 0; t < nt; t++) {
		size_t len = p.files.n / nt + (t < p.files.n % nt);

		shares[t] = (struct par_share){ repo_path, git_tree_id(tree), dir, p.files.v + at, len,
						0, &done, t == 0 ? first.w : NULL, total, 0, 0, NULL };
		at += len;
		started[t] = t > 0 && pthread_create(&tids[t], NULL, write_share, &shares[t]) == 0;
	}
	for (t = 0; t < nt; t++)
		if (!started[t])
			write_share(&shares[t]);
	rc = 0;
	for (t = 0; t < nt; t++) {
		if (started[t])
			pthread_join(tids[t], NULL);
		if (shares[t].rc && !rc) {
			git_error_set_str(shares[t].klass, shares[t].msg);
			rc = E_GIT;
		}
		free(shares[t].msg);
	}
	if (!rc && m->opts->progress)
		on_write(NULL, total, total, &w);
out:
	par_list_release(&p.files);
	par_list_release(&p.attrs);
	return rc;
}

/* Whether dir has no entries (a missing one counts as not empty: unknown). */
static bool dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool empty = d != NULL;

	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = false;
			break;
		}
	}
	if (d)
		closedir(d);
	return empty;
}

/*
 * A workspace's seal checked on a thread of its own while the mirror is
 * opened and fetched (the two take about as long): only when the last
 * job left the tree complete and without submodule trees, so that
 * nothing touches it before write_tree takes the answer.
 */
struct early_check {
	pthread_t tid;
	bool started;
	const char *seal_path, *dir;  /* borrowed */
	struct sp_wsseal *seal;       /* the answer: the seal (or NULL) ... */
	bool holds;                   /* ... and whether the tree is as sealed */
};

static void *early_run(void *arg)
{
	struct early_check *e = arg;

	e->seal = sp_wsseal_load(e->seal_path);
	e->holds = e->seal && sp_wsseal_holds(e->seal, e->dir);
	return NULL;
}

/* ws: the workspace; state, seal_path: its files (see prepare_workspace) */
static void early_start(struct early_check *e, const char *ws, const char *state,
			const char *seal_path, const char *dir)
{
	char *subs = sp_xasprintf("%s/submodules", ws);

	memset(e, 0, sizeof(*e));
	e->seal_path = seal_path;
	e->dir = dir;
	if (access(state, F_OK) == 0 && access(subs, F_OK) < 0 && errno == ENOENT)
		e->started = pthread_create(&e->tid, NULL, early_run, e) == 0;
	free(subs);
}

/* Waits for the answer; true when there is one (then the caller owns e->seal). */
static bool early_take(struct early_check *e)
{
	if (!e || !e->started)
		return false;
	pthread_join(e->tid, NULL);
	e->started = false;
	return true;
}

static void early_release(struct early_check *e)
{
	if (early_take(e))
		sp_wsseal_free(e->seal);
}

/*
 * Makes dir hold exactly commit's tree.  With seal_path (a workspace's
 * seal, wsseal.h), dir is what the last checkout left: when the seal
 * proves it untouched, only the paths that differ between the two trees
 * are written (*quick set); otherwise the entries that differ from the
 * seal are removed and every file is checked, the seal's entries being
 * the baseline (files as sealed are not written again).  The new seal is
 * written after.  Without seal_path, dir is taken as
 * empty.  E_GIT when libgit2 fails.
 */
static int write_tree(struct sp_mirror *m, git_commit *commit, const char *dir,
		      const char *seal_path, struct early_check *early, bool *quick,
		      struct sp_error *err)
{
	git_checkout_options co;
	git_index *idx = NULL;
	git_tree *tree = NULL;
	struct sp_wsseal *seal = NULL;
	struct sp_wsseal_diff diff;
	struct write_ctx w = { m, 0 };
	bool held = false;
	int rc = 0;

	*quick = false;
	memset(&diff, 0, sizeof(diff));
	if ((rc = sp_mirror_mkdirs(dir, 0777, err)) < 0)
		return rc;
	if (git_commit_tree(&tree, commit) < 0) {
		rc = E_GIT;
		goto out;
	}
	if (early_take(early)) {
		seal = early->seal;
		held = early->holds;
	} else if (seal_path && (seal = sp_wsseal_load(seal_path)) != NULL) {
		held = sp_wsseal_holds(seal, dir);
	}
	if (seal) {
		if (!held) {
			if ((rc = sp_wsseal_clear_changed(seal, dir, err)) < 0)
				goto out;
			rc = 0;
		} else if (sp_wsseal_diff(&diff, seal, m->repo, tree) == 0) {
			*quick = true;
		}
	}
	if (!seal && dir_empty(dir)) {
		rc = write_fresh(m, tree, dir, m->opts->parallel_min_files ?
				 m->opts->parallel_min_files : PAR_MIN_FILES_DEFAULT);
		if (rc == 0)
			goto sealing;
		if (rc < 0)
			goto out;
		rc = 0;
	}
	if (*quick)
		idx = diff.baseline;  /* diff owns it */
	else if (sp_wsseal_index(&idx, seal) < 0) {
		rc = E_GIT;
		goto out;
	}
	if (git_repository_set_workdir(m->repo, dir, 0) < 0 ||
	    git_repository_set_index(m->repo, idx) < 0) {
		rc = E_GIT;
		goto out;
	}
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	/* NO_REFRESH: an in-memory index cannot be re-read */
	co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED |
			       GIT_CHECKOUT_REMOVE_IGNORED | GIT_CHECKOUT_DONT_WRITE_INDEX |
			       GIT_CHECKOUT_NO_REFRESH;
	co.baseline_index = idx;
	if (*quick) {
		/* exactly these paths (an empty list would mean every path) */
		co.checkout_strategy |= GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH;
		co.paths.strings = diff.paths;
		co.paths.count = diff.n_paths;
	}
	if (m->opts->progress) {
		co.progress_cb = on_write;
		co.progress_payload = &w;
	}
	if ((!*quick || diff.n_paths) && git_checkout_tree(m->repo, (git_object *)tree, &co) < 0) {
		rc = E_GIT;
		goto out;
	}
sealing:
	if (seal_path) {
		struct sp_error ignored = SP_ERROR_INIT;

		/* without a seal, the next checkout checks every file: slower, still exact */
		(void)sp_wsseal_write(seal_path, tree, dir, *quick ? seal : NULL,
				      *quick ? &diff : NULL, &ignored);
	}
out:
	(void)git_repository_set_index(m->repo, NULL);
	git_tree_free(tree);
	if (!*quick)
		git_index_free(idx);
	sp_wsseal_diff_release(&diff);
	sp_wsseal_free(seal);
	return rc;
}

/* ---- submodules: what a tree asks for ------------------------------------ */

/* A submodule path from .gitmodules: relative, no "..", no ".git", no empty parts. */
static bool sub_path_ok(const char *p)
{
	const char *s = p;

	if (!*p || *p == '/')
		return false;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && !strncmp(s, "..", 2)) ||
		    (n == 4 && !strncasecmp(s, ".git", 4)))
			return false;
		s += n;
		if (*s == '/')
			s++;
	}
	return true;
}

struct gm_ctx {
	git_config *cfg;
	git_tree *tree;
	const char *base_url;
	struct sublist *out;
};

/* One "submodule.NAME.path" entry of .gitmodules. */
static void on_gitmodule(struct gm_ctx *g, const char *name, size_t nlen, const char *value)
{
	git_config_entry *url = NULL, *update = NULL;
	git_tree_entry *te = NULL;
	char *key, *path = sp_xstrdup(value);
	size_t n = strlen(path);

	while (n > 0 && path[n - 1] == '/')
		path[--n] = '\0';
	key = sp_xasprintf("submodule.%.*s.url", (int)nlen, name);
	(void)git_config_get_entry(&url, g->cfg, key);
	free(key);
	key = sp_xasprintf("submodule.%.*s.update", (int)nlen, name);
	(void)git_config_get_entry(&update, g->cfg, key);
	free(key);
	/* git skips entries without a URL or a gitlink, and those marked update = none */
	if (url && url->value && *url->value && sub_path_ok(path) &&
	    !(update && update->value && !strcmp(update->value, "none")) &&
	    git_tree_entry_bypath(&te, g->tree, path) == 0 &&
	    git_tree_entry_filemode(te) == GIT_FILEMODE_COMMIT) {
		struct sub *s;

		SP_GROW(g->out->items, g->out->alloc, g->out->n + 1);
		s = &g->out->items[g->out->n++];
		s->path = path;
		path = NULL;  /* owned by the list now */
		sp_giturl_resolve(&s->url, g->base_url, url->value);
		git_oid_cpy(&s->oid, git_tree_entry_id(te));
	}
	git_tree_entry_free(te);
	git_config_entry_free(url);
	git_config_entry_free(update);
	free(path);
}

/* The submodules commit's tree (written in dir) declares, gitlinks that exist only. */
static int list_submodules(struct sublist *out, git_commit *commit, const char *dir,
			   const char *base_url, struct sp_error *err)
{
	char *gm = sp_xasprintf("%s/.gitmodules", dir);
	struct gm_ctx g = { NULL, NULL, base_url, out };
	git_config_iterator *it = NULL;
	git_config_entry *e;
	struct stat st;
	int rc = 0, grc;

	if (lstat(gm, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;  /* none (a symlink is never followed) */
	if (git_commit_tree(&g.tree, commit) < 0 || git_config_open_ondisk(&g.cfg, gm) < 0 ||
	    git_config_iterator_new(&it, g.cfg) < 0)
		goto fail;
	/* names compared by hand: libgit2 1.5's regex matching leaks */
	while ((grc = git_config_next(&e, it)) == 0) {
		size_t n = strlen(e->name);

		if (n > 15 && !strncmp(e->name, "submodule.", 10) &&
		    !strcmp(e->name + n - 5, ".path") && e->value)
			on_gitmodule(&g, e->name + 10, n - 15, e->value);
	}
	if (grc != GIT_ITEROVER)
		goto fail;
	goto out;
fail:
	rc = sp_error_set(err, SP_ERROR, "reading .gitmodules: %s", sp_gitinfo_last_error());
out:
	git_config_iterator_free(it);
	git_config_free(g.cfg);
	git_tree_free(g.tree);
	free(gm);
	return rc;
}

/* ---- workspaces ---------------------------------------------------------- */

static int write_file(const char *path, const char *text, bool append, struct sp_error *err)
{
	FILE *f = fopen(path, append ? "a" : "w");
	bool ok;

	if (!f)
		return sp_error_set(err, SP_ERROR, "cannot write %s: %s", path, strerror(errno));
	ok = fputs(text, f) != EOF;
	if (fclose(f) != 0)
		ok = false;
	if (!ok)
		return sp_error_set(err, SP_ERROR, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/*
 * Gets the workspace's tree ready for an incremental checkout: a tree
 * left unfinished is wiped with its seal; the submodule trees of the
 * last job are removed.  The state file goes until the new tree is done.
 */
static int prepare_workspace(const char *ws, const char *tree, const char *seal,
			     struct sp_error *err)
{
	char *state = sp_xasprintf("%s/state", ws), *subs = sp_xasprintf("%s/submodules", ws);
	char *legacy = sp_xasprintf("%s/index", ws);
	char *list = NULL, *line, *next;
	int rc = 0;

	(void)unlink(legacy);  /* the libgit2 index the seal replaced */
	if (access(state, F_OK) < 0) {
		(void)unlink(seal);
		if ((rc = sp_fs_rmtree(tree, err)) < 0)
			goto out;
	} else if ((list = sp_fs_read_small(subs)) != NULL) {
		for (line = list; *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			else
				next = line + strlen(line);
			if (sub_path_ok(line)) {
				char *p = sp_xasprintf("%s/%s", tree, line);

				rc = sp_fs_rmtree(p, err);
				free(p);
				if (rc < 0)
					goto out;
			}
		}
	}
	if (unlink(state) < 0 && errno != ENOENT) {
		rc = sp_error_set(err, SP_ERROR, "cannot remove %s: %s", state, strerror(errno));
		goto out;
	}
	(void)unlink(subs);
out:
	free(list);
	free(state);
	free(subs);
	free(legacy);
	return rc;
}

/* ---- one repository: mirror, fetch, resolve, write ----------------------- */

/*
 * Checks out ref of u into dir (see write_tree for seal_path), through
 * the mirror, rebuilding it once if its objects turn out damaged; with
 * sha, that commit, ref then only naming what to fetch to get it (and
 * the branch or tag to report).  With ws (a workspace holding dir), the
 * workspace is prepared just before the tree is written: an unknown ref
 * leaves it as it was.  With subs, also lists the submodules the tree
 * declares.  Fills f.
 */
static int checkout_repo(struct job *j, const struct sp_giturl *u, const char *ref,
			 const char *sha, const char *dir, const char *ws, const char *seal_path,
			 const char *sub_path, struct early_check *early, struct found *f,
			 struct sublist *subs, struct sp_error *err)
{
	const char *want = sha ? sha : ref;
	struct sp_checkout_result *res = j->res;
	struct sp_mirror m;
	git_commit *commit = NULL;
	const char *extra[1];
	size_t n_extra = 0;
	ino_t damaged = 0;
	bool quick = false;
	int attempt, rc = 0;

	memset(&m, 0, sizeof(m));
	m.lock_fd = -1;
	if (needs_own_refspec(ref)) {
		char *spec = sp_xasprintf("+%s:%s", ref, ref);

		extra[n_extra++] = spec;
	}
	for (attempt = 0; attempt < 2; attempt++) {
		bool have = false;

		found_release(f);
		if ((rc = sp_mirror_open(&m, u, j->cache, j->o, j->env_host, sub_path, err)) < 0)
			goto out;
		/* rebuilt unless another job did that since (or open found it damaged too) */
		if (attempt > 0 && !m.tmp && m.ino == damaged &&
		    (rc = sp_mirror_rebuild(&m, err)) < 0)
			goto out;
		if (!m.tmp && want && is_hex(want, GIT_OID_HEXSZ, GIT_OID_HEXSZ)) {
			git_oid oid;
			git_odb *odb = NULL;

			/* an exact commit already here: nothing to fetch */
			have = git_oid_fromstr(&oid, want) == 0 &&
			       git_repository_odb(&odb, m.repo) == 0 && git_odb_exists(odb, &oid);
			git_odb_free(odb);
		}
		if (j->o->cancel && j->o->cancel(j->o->cancel_ud)) {
			rc = sp_error_set(err, SP_ECANCELLED, "cancelled before fetching %s",
					  u->display);
			goto out;
		}
		if (!have && (rc = sp_mirror_fetch(&m, extra, n_extra, err)) < 0)
			goto out;
		if (m.created)
			res->mirror_created = true;
		if (m.fetched)
			res->fetched = true;
		res->objects_received += m.objects_received;
		res->bytes_received += m.bytes_received;
		if (!sub_path || !*sub_path) {
			free(res->mirror);
			res->mirror = sp_xstrdup(m.path);
		}
		if ((rc = sp_mirror_lock(&m, false, err)) < 0)
			goto out;
		rc = resolve(f, &commit, &m, want, err);
		if (rc == SP_ENOTFOUND && sha && ref)
			sp_error_set(err, SP_ENOTFOUND, "no commit %s in %s (%s does not hold it)", sha,
				     u->display, ref);
		if (rc == 0 && sha && ref)
			name_from_ref(f, &m, ref);
		if (rc == E_GIT) {
			if (attempt == 0 && sp_mirror_error_is_damage())
				goto retry;
			rc = sp_mirror_git_error(&m, SP_ERROR, "cannot read", err);
			goto out;
		}
		if (rc < 0)
			goto out;
		if (j->o->cancel && j->o->cancel(j->o->cancel_ud)) {
			rc = sp_error_set(err, SP_ECANCELLED,
					  "cancelled before writing the tree of %s", u->display);
			goto out;
		}
		if (ws && (rc = prepare_workspace(ws, dir, seal_path, err)) < 0)
			goto out;
		rc = write_tree(&m, commit, dir, seal_path, attempt == 0 ? early : NULL, &quick,
				err);
		if (rc == E_GIT) {
			if (attempt == 0 && sp_mirror_error_is_damage())
				goto retry;
			rc = sp_mirror_git_error(&m, SP_ERROR, "cannot write the tree of", err);
			goto out;
		}
		if (rc < 0)
			goto out;
		if (!sub_path || !*sub_path)
			res->quick = quick;
		if (subs)
			rc = list_submodules(subs, commit, dir, u->fetch, err);
		goto out;
retry:
		sp_error_clear(err);
		damaged = m.ino;
		git_commit_free(commit);
		commit = NULL;
		sp_mirror_close(&m);
	}
out:
	git_commit_free(commit);
	sp_mirror_close(&m);
	if (n_extra)
		free((char *)extra[0]);
	return rc;
}

/* ---- the workspace pool ------------------------------------------------- */

/* Takes a free workspace for key: res->lock_fd, res->workspace. */
static int take_workspace(struct job *j, const char *key, struct sp_error *err)
{
	char *work = sp_xasprintf("%s/work", j->cache);
	int n, rc;

	if ((rc = sp_mirror_mkdirs(work, 0700, err)) < 0)
		goto out;
	for (n = 0; n < MAX_WORKSPACES; n++) {
		char *lock = sp_xasprintf("%s/%s-%d.lock", work, key, n);
		int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0) {
			rc = sp_error_set(err, SP_ERROR, "cannot open %s: %s", lock, strerror(errno));
			free(lock);
			goto out;
		}
		free(lock);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			j->res->lock_fd = fd;
			j->res->workspace = sp_xasprintf("%s/%s-%d", work, key, n);
			rc = sp_mirror_mkdirs(j->res->workspace, 0700, err);
			goto out;
		}
		close(fd);
	}
	rc = sp_error_set(err, SP_ERROR, "all %d workspaces in %s for %s are in use",
			  MAX_WORKSPACES, work, key);
out:
	free(work);
	return rc;
}

/* ---- the API ------------------------------------------------------------- */

int sp_checkout_cache_dir(char **out, sp_vars_getenv_fn getenv, void *ud, struct sp_error *err)
{
	const char *xdg = getenv ? getenv("XDG_CACHE_HOME", ud) : NULL;
	const char *home = getenv ? getenv("HOME", ud) : NULL;

	*out = NULL;
	/* the XDG spec: a relative XDG_CACHE_HOME is invalid and ignored */
	if (xdg && xdg[0] == '/')
		*out = sp_xasprintf("%s/stagepipe", xdg);
	else if (home && *home)
		*out = sp_xasprintf("%s/.cache/stagepipe", home);
	else
		return sp_error_set(err, SP_ECONFIG, "no cache folder: neither XDG_CACHE_HOME nor "
				    "HOME is set");
	return 0;
}

static int job_init(struct job *j, struct sp_giturl *u, struct sp_checkout_result *res,
		    const struct sp_checkout_opts *o, struct sp_error *err)
{
	int rc;

	memset(j, 0, sizeof(*j));
	j->o = o;
	j->res = res;
	if (!o->url)
		return sp_error_set(err, SP_ECONFIG, "no repository URL");
	if ((rc = sp_giturl_parse(u, o->url, err)) < 0)
		return rc;
	if (o->cache_dir && o->cache_dir[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return sp_error_set(err, SP_ERROR, "cannot find the current folder: %s",
					    strerror(errno));
		j->cache = sp_xasprintf("%s/%s", cwd, o->cache_dir);
	} else if (o->cache_dir) {
		j->cache = sp_xstrdup(o->cache_dir);
	} else if ((rc = sp_checkout_cache_dir(&j->cache, o->getenv, o->getenv_ud, err)) < 0) {
		return rc;
	}
	/* with the scheme: no token over http unless the repository is http (gitcred.h) */
	sp_giturl_origin(&j->env_host, u);
	j->top_kind = u->kind;
	return 0;
}

static void job_release(struct job *j)
{
	free(j->cache);
	free(j->env_host);
}

/* dest: created, or an empty folder; *abs its absolute path. */
static int prepare_dest(char **abs, const char *dest, struct sp_error *err)
{
	char real[PATH_MAX];
	DIR *d;
	struct dirent *de;
	int rc;

	*abs = NULL;
	d = opendir(dest);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				closedir(d);
				return sp_error_set(err, SP_ECONFIG, "the checkout folder %s is not "
						    "empty", dest);
			}
		}
		closedir(d);
	} else if (errno != ENOENT) {
		return sp_error_set(err, SP_ERROR, "cannot use %s as the checkout folder: %s",
				    dest, strerror(errno));
	}
	if ((rc = sp_mirror_mkdirs(dest, 0777, err)) < 0)
		return rc;
	if (!realpath(dest, real))
		return sp_error_set(err, SP_ERROR, "%s: %s", dest, strerror(errno));
	*abs = sp_xstrdup(real);
	return 0;
}

static void add_submodule_result(struct sp_checkout_result *res, const char *path,
				 const char *url, const git_oid *oid)
{
	struct sp_checkout_submodule *s;

	res->submodules = sp_xrealloc(res->submodules,
				      (res->n_submodules + 1) * sizeof(*res->submodules));
	s = &res->submodules[res->n_submodules++];
	s->path = sp_xstrdup(path);
	s->url = sp_xstrdup(url);
	s->sha = oid_hex(oid);
}

static bool is_remote_secure(enum sp_giturl_kind k)
{
	return k == SP_GITURL_HTTPS || k == SP_GITURL_SSH;
}

/*
 * A submodule URL a superproject may name: a local repository only when
 * the job's repository is local itself (a .gitmodules must not pull the CI
 * host's own repositories into the tree), and no step down from https or
 * ssh to the unauthenticated git:// or http://.
 */
static int check_sub_url(const struct job *j, enum sp_giturl_kind parent,
			 const struct sp_giturl *u, const char *path, struct sp_error *err)
{
	if (u->kind == SP_GITURL_FILE && j->top_kind != SP_GITURL_FILE)
		return sp_error_set(err, SP_ECONFIG, "submodule %s: %s is a local repository, "
				    "refused for a remote repository", path, u->display);
	if ((u->kind == SP_GITURL_GIT || u->kind == SP_GITURL_HTTP) &&
	    (is_remote_secure(parent) || is_remote_secure(j->top_kind)))
		return sp_error_set(err, SP_ECONFIG, "submodule %s: %s is not encrypted, "
				    "refused under an https or ssh repository", path, u->display);
	return 0;
}

/*
 * Checks out subs (of the repository at prefix in the tree, fetched over
 * parent_kind), and theirs, recursively.
 */
static int do_submodules(struct job *j, const struct sublist *subs, const char *prefix,
			 enum sp_giturl_kind parent_kind, int depth, struct sp_error *err)
{
	struct sp_checkout_result *res = j->res;
	size_t i;
	int rc = 0;

	for (i = 0; i < subs->n && rc == 0; i++) {
		const struct sub *s = &subs->items[i];
		char *path = *prefix ? sp_xasprintf("%s/%s", prefix, s->path) : sp_xstrdup(s->path);
		char *dir = sp_xasprintf("%s/%s", res->dir, path);
		char *hex = oid_hex(&s->oid), *line;
		struct sp_giturl u;
		struct sublist nested = { NULL, 0, 0 };
		struct found f;

		memset(&f, 0, sizeof(f));
		memset(&u, 0, sizeof(u));
		if (depth > MAX_SUBMODULE_DEPTH) {
			rc = sp_error_set(err, SP_ECONFIG, "submodule %s: nested more than %d deep",
					  path, MAX_SUBMODULE_DEPTH);
			goto next;
		}
		if ((rc = sp_giturl_parse(&u, s->url, err)) < 0) {
			sp_error_prefix(err, "submodule %s", path);
			goto next;
		}
		if ((rc = check_sub_url(j, parent_kind, &u, path, err)) < 0)
			goto next;
		/* every path is filled, even two of one repository at one commit
		 * (as git does); the total is capped so a .gitmodules pointing back
		 * at itself cannot fan out without end */
		if (++j->n_subs > MAX_SUBMODULES) {
			rc = sp_error_set(err, SP_ECONFIG, "submodule %s: more than %d submodules "
					  "in all", path, MAX_SUBMODULES);
			goto next;
		}
		if (res->workspace) {
			char *list = sp_xasprintf("%s/submodules", res->workspace);

			line = sp_xasprintf("%s\n", path);
			rc = write_file(list, line, true, err);
			free(line);
			free(list);
			if (rc < 0)
				goto next;
		}
		rc = checkout_repo(j, &u, NULL, hex, dir, NULL, NULL, path, NULL, &f, &nested, err);
		if (rc < 0) {
			sp_error_prefix(err, "submodule %s", path);
			goto next;
		}
		add_submodule_result(res, path, u.display, &s->oid);
		rc = do_submodules(j, &nested, path, u.kind, depth + 1, err);
next:
		found_release(&f);
		sublist_release(&nested);
		sp_giturl_release(&u);
		free(hex);
		free(dir);
		free(path);
	}
	return rc;
}

int sp_checkout_global_init(void)
{
	int rc = 0;

	if (git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0) < 0)
		rc = -1;
	if (git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0) < 0)
		rc = -1;
	if (git_libgit2_opts(GIT_OPT_DISABLE_PACK_KEEP_FILE_CHECKS, 1) < 0)
		rc = -1;
	if (git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 0) < 0)
		rc = -1;
	return rc;
}

int sp_checkout(struct sp_checkout_result *out, const struct sp_checkout_opts *o,
		struct sp_error *err)
{
	struct job j;
	struct sp_giturl u;
	struct found f;
	struct sublist subs = { NULL, 0, 0 };
	char *key = NULL, *seal = NULL, *state = NULL, *line = NULL;
	struct early_check early = { .started = false };
	const char *ref = o->ref;
	int rc;

	memset(out, 0, sizeof(*out));
	out->lock_fd = -1;
	memset(&f, 0, sizeof(f));
	memset(&u, 0, sizeof(u));  /* released even when job_init fails before parsing */
	if ((rc = job_init(&j, &u, out, o, err)) < 0)
		goto out;
	if (ref && !strcmp(ref, "HEAD"))
		ref = NULL;
	if (ref && (rc = check_ref(ref, err)) < 0)
		goto out;
	if (o->sha && !is_hex(o->sha, GIT_OID_HEXSZ, GIT_OID_HEXSZ)) {
		rc = sp_error_set(err, SP_ECONFIG, "malformed commit \"%s\": not 40 hex digits",
				  o->sha);
		goto out;
	}
	sp_giturl_key(&key, &u);
	out->url = sp_xstrdup(u.display);
	if (o->dest) {
		if ((rc = prepare_dest(&out->dir, o->dest, err)) < 0)
			goto out;
	} else {
		if ((rc = take_workspace(&j, key, err)) < 0)
			goto out;
		out->dir = sp_xasprintf("%s/tree", out->workspace);
		seal = sp_xasprintf("%s/seal", out->workspace);
		state = sp_xasprintf("%s/state", out->workspace);
	}
	if (seal)
		early_start(&early, out->workspace, state, seal, out->dir);
	if ((rc = checkout_repo(&j, &u, ref, o->sha, out->dir, out->workspace, seal, "",
				seal ? &early : NULL, &f,
				o->submodules ? &subs : NULL, err)) < 0)
		goto out;
	out->sha = oid_hex(&f.oid);
	out->short_sha = sp_xstrndup(out->sha, 7);
	out->ref = f.ref;
	out->branch = f.branch;
	out->tag = f.tag;
	out->subject = f.subject;
	memset(&f, 0, sizeof(f));  /* the result owns the strings now */
	if (state) {
		line = sp_xasprintf("%s\n", out->sha);
		if ((rc = write_file(state, line, false, err)) < 0)
			goto out;
	}
	if (o->submodules)
		rc = do_submodules(&j, &subs, "", u.kind, 1, err);
out:
	early_release(&early);
	found_release(&f);
	sublist_release(&subs);
	sp_giturl_release(&u);
	job_release(&j);
	free(key);
	free(seal);
	free(state);
	free(line);
	if (rc < 0)
		sp_checkout_result_release(out);
	return rc;
}

int sp_checkout_submodules(struct sp_checkout_result *res, const struct sp_checkout_opts *o,
			   struct sp_error *err)
{
	struct job j;
	struct sp_giturl u;
	struct sublist subs = { NULL, 0, 0 };
	struct sp_mirror m;
	git_commit *commit = NULL;
	git_oid oid;
	int rc;

	memset(&m, 0, sizeof(m));
	m.lock_fd = -1;
	memset(&u, 0, sizeof(u));  /* released even when job_init fails before parsing */
	if ((rc = job_init(&j, &u, res, o, err)) < 0)
		goto out;
	if (!res->sha || !res->dir || git_oid_fromstr(&oid, res->sha) < 0) {
		rc = sp_error_set(err, SP_ECONFIG, "no checkout to add submodules to");
		goto out;
	}
	if ((rc = sp_mirror_open(&m, &u, j.cache, o, j.env_host, "", err)) < 0)
		goto out;
	if (m.tmp && (rc = sp_mirror_fetch(&m, NULL, 0, err)) < 0)
		goto out;
	if ((rc = sp_mirror_lock(&m, false, err)) < 0)
		goto out;
	if (git_commit_lookup(&commit, m.repo, &oid) < 0) {
		rc = sp_mirror_git_error(&m, SP_ERROR, "cannot read the checked-out commit of",
					 err);
		goto out;
	}
	if ((rc = list_submodules(&subs, commit, res->dir, u.fetch, err)) < 0)
		goto out;
	git_commit_free(commit);
	commit = NULL;
	sp_mirror_close(&m);  /* never hold one mirror's lock while taking another's */
	rc = do_submodules(&j, &subs, "", u.kind, 1, err);
out:
	git_commit_free(commit);
	sp_mirror_close(&m);
	sublist_release(&subs);
	sp_giturl_release(&u);
	job_release(&j);
	return rc;
}

void sp_checkout_result_release(struct sp_checkout_result *res)
{
	size_t i;

	if (!res)
		return;
	free(res->dir);
	free(res->sha);
	free(res->short_sha);
	free(res->ref);
	free(res->branch);
	free(res->tag);
	free(res->subject);
	free(res->mirror);
	for (i = 0; i < res->n_submodules; i++) {
		free(res->submodules[i].path);
		free(res->submodules[i].url);
		free(res->submodules[i].sha);
	}
	free(res->submodules);
	if (res->workspace && res->lock_fd >= 0)
		close(res->lock_fd);  /* unlocks the workspace */
	free(res->workspace);
	free(res->url);
	memset(res, 0, sizeof(*res));
	res->lock_fd = -1;
}

static char *dup_or_null(const char *s)
{
	return s ? sp_xstrdup(s) : NULL;
}

void sp_checkout_result_gitinfo(struct sp_gitinfo *info, const struct sp_checkout_result *res)
{
	memset(info, 0, sizeof(*info));
	info->is_repo = true;
	info->root = dup_or_null(res->dir);
	info->sha = dup_or_null(res->sha);
	info->short_sha = dup_or_null(res->short_sha);
	info->branch = dup_or_null(res->branch);
	info->tag = dup_or_null(res->tag);
	info->subject = dup_or_null(res->subject);
}

/* ---- run --clean --------------------------------------------------------- */

/* "origin" without url.*.insteadOf lookups (libgit2 1.5 leaks in their regex matching). */
static int create_origin(git_remote **out, git_repository *repo, const char *name,
			 const char *url, void *payload)
{
	git_remote_create_options ro;

	(void)payload;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.name = name;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
	return git_remote_create_with_opts(out, url, &ro);
}

static int git_fail(struct sp_error *err, int code, const char *what)
{
	return sp_error_set(err, code, "%s: %s", what, sp_gitinfo_last_error());
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
	opts.remote_cb = create_origin;
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
