/*
 * test_checkout.c — sp_checkout against real repositories, no network.
 *
 * The group setup makes repositories with the git CLI in a temporary
 * folder (HOME pointed there, so no user configuration leaks in):
 *
 *   src/, bare.git   main (3 commits: tags v1, annotated v1.1), feature,
 *                    and a commit reachable only from refs/pull/12/head
 *   inner.git        one file
 *   lib.git          one file + submodule deps/inner -> ../inner.git
 *   super.git        one file + submodule vendor/lib -> ../lib.git
 *
 * Tests that change a repository work on a copy of bare.git.  Trees are
 * compared with `git archive` of the expected commit (diff -r, so an extra
 * or missing file fails too).  Each test has its own cache folder.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <git2.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/git/checkout.h"
#include "core/base/error.h"
#include "core/git/gitinfo.h"
#include "core/git/giturl.h"
#include "tests/unit/support/testutil.h"

static char *base;
static int daemon_port;  /* a git daemon serving base on loopback; 0 when none */
static pid_t daemon_pid;

/* ---- helpers ------------------------------------------------------------- */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
}

/* stdout of a command, trailing newline removed; static buffer */
static const char *out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *out(const char *fmt, ...)
{
	static char buf[4][512];
	static int which;
	char cmd[4096], *b = buf[which++ % 4];
	va_list ap;
	FILE *p;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(b, 1, 511, p);
	b[n] = '\0';
	pclose(p);
	while (n && (b[n - 1] == '\n' || b[n - 1] == ' '))
		b[--n] = '\0';
	return b;
}

static char *path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *path(const char *fmt, ...)
{
	static char buf[8][1024];
	static int which;
	char rel[900], *b = buf[which++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(b, 1024, "%s/%s", base, rel);
	return b;
}

static void opts_for(struct sp_checkout_opts *o, const char *cache, const char *url,
		     const char *ref)
{
	memset(o, 0, sizeof(*o));
	o->url = url;
	o->ref = ref;
	o->cache_dir = cache;
}

static void co_ok(struct sp_checkout_result *r, const struct sp_checkout_opts *o)
{
	struct sp_error err = SP_ERROR_INIT;

	if (sp_checkout(r, o, &err) != 0)
		fail_msg("sp_checkout %s %s: %s", o->url, o->ref ? o->ref : "(default)", err.msg);
}

static int co_fail(const struct sp_checkout_opts *o, struct sp_error *err)
{
	struct sp_checkout_result r;
	int rc = sp_checkout(&r, o, err);

	assert_true(rc < 0);
	assert_null(r.sha);
	assert_int_equal(r.lock_fd, -1);
	sp_checkout_result_release(&r);
	return rc;
}

/* dir holds exactly the tree of sha in repo (without submodule contents) */
static void tree_is(const char *dir, const char *repo, const char *sha)
{
	sh("rm -rf '%s/expect' && mkdir '%s/expect' && git -C '%s' archive '%s' | tar -x -C '%s/expect'"
	   " && diff -r '%s/expect' '%s'", base, base, repo, sha, base, base, dir);
}

static const char *rev(const char *repo, const char *what)
{
	return out("git -C '%s' rev-parse '%s'", repo, what);
}

static ino_t inode(const char *p)
{
	struct stat st;

	if (stat(p, &st) < 0)
		fail_msg("stat %s failed", p);
	return st.st_ino;
}

static char *mirror_key(const char *url)
{
	struct sp_giturl u;
	char *key;

	assert_int_equal(sp_giturl_parse(&u, url, NULL), 0);
	sp_giturl_key(&key, &u);
	sp_giturl_release(&u);
	return key;
}

/*
 * A copy of bare.git (own mirror key) without the pull-request ref, and a
 * work tree pushing to it.  (libgit2's local transport sends the objects of
 * every advertised ref the mirror does not hold under the same name, so
 * with refs/pull/12/head there, a fetch would also bring that commit.)
 */
static void copy_repo(const char *name)
{
	sh("cp -a '%s/bare.git' '%s/%s.git' && git -C '%s/%s.git' update-ref -d refs/pull/12/head"
	   " && git clone -q '%s/%s.git' '%s/%s-wt'", base, base, name, base, name, base, name, base,
	   name);
}

static void commit_in(const char *name, const char *script)
{
	sh("cd '%s/%s-wt' && %s && git add -A && git commit -qm 'change in %s' && git push -q origin HEAD",
	   base, name, script, name);
}

/* ---- fixtures ------------------------------------------------------------ */

/*
 * git daemon on a free loopback port, serving the fixtures over git://:
 * the smart protocol, where the server packs and libgit2 receives and
 * indexes, as over https or ssh (a local path never goes over a wire).
 */
static void start_daemon(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char cmd[2048], port[32], bp[1100];
	pid_t pid;
	int fd, i;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	snprintf(port, sizeof(port), "--port=%d", ntohs(sa.sin_port));
	snprintf(bp, sizeof(bp), "--base-path=%s", base);
	pid = fork();
	if (pid == 0) {
		/* dies with the test, however the test ends (an abort skips teardown) */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(1);
		execlp("git", "git", "daemon", "--reuseaddr", "--listen=127.0.0.1", port, bp,
		       "--export-all", base, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return;
	daemon_pid = pid;
	for (i = 0; i < 100; i++) {
		snprintf(cmd, sizeof(cmd), "git ls-remote git://127.0.0.1:%d/bare.git >/dev/null 2>&1",
			 ntohs(sa.sin_port));
		if (system(cmd) == 0) {
			daemon_port = ntohs(sa.sin_port);
			break;
		}
		usleep(50 * 1000);
	}
}

/* "git://127.0.0.1:PORT/name"; skips the test without a daemon */
static const char *daemon_url(const char *name)
{
	static char url[256];

	if (!daemon_port)
		skip();
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/%s", daemon_port, name);
	return url;
}

static int setup(void **state)
{
	(void)state;
	base = sp_test_tempdir("sp-checkout-");
	setenv("HOME", base, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "Test", 1);
	setenv("GIT_AUTHOR_EMAIL", "test@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "Test", 1);
	setenv("GIT_COMMITTER_EMAIL", "test@example.com", 1);
	unsetenv("XDG_CONFIG_HOME");
	if (chdir(base) < 0)
		return -1;
	if (system("set -e\n"
		   "git config --global protocol.file.allow always\n"
		   "git config --global advice.detachedHead false\n"
		   "git init -q -b main src && cd src\n"
		   "mkdir -p app docs data\n"
		   "printf 'hello\\n' > README.md\n"
		   "printf 'print(1)\\n' > app/main.py\n"
		   "printf 'guide\\n' > docs/guide.md\n"
		   "head -c 65536 /dev/urandom > data/big.bin\n"
		   "printf '__pycache__/\\n*.log\\n' > .gitignore\n"
		   "ln -s README.md link.md\n"
		   "git add -A && git commit -qm 'first commit'\n"
		   "git tag v1\n"
		   "printf 'hello again\\n' >> README.md && git commit -qam 'second commit'\n"
		   "git tag -a v1.1 -m 'release 1.1'\n"
		   "printf 'third\\n' >> docs/guide.md && git commit -qam 'third commit: guide'\n"
		   "git checkout -qb feature HEAD~1\n"
		   "printf 'f\\n' > feature.txt && git add feature.txt && git commit -qm 'feature work'\n"
		   "git checkout -qb pr main\n"
		   "printf 'pr\\n' > pr.txt && git add pr.txt && git commit -qm 'pull request 12'\n"
		   "git update-ref refs/pull/12/head pr\n"
		   "git checkout -q main && git branch -qD pr\n"
		   "cd .. && git clone -q --bare src bare.git && git -C bare.git repack -adq\n"
		   "git -C src push -q ../bare.git refs/pull/12/head:refs/pull/12/head\n"
		   "git init -q -b main inner && printf 'inner\\n' > inner/inner.txt\n"
		   "git -C inner add -A && git -C inner commit -qm inner\n"
		   "git clone -q --bare inner inner.git\n"
		   "git init -q -b main lib && printf 'lib\\n' > lib/lib.c\n"
		   "git -C lib add -A && git -C lib commit -qm lib\n"
		   "git -C lib submodule add -q ../inner.git deps/inner\n"
		   "git -C lib commit -qm 'inner submodule'\n"
		   "git clone -q --bare lib lib.git\n"
		   "git init -q -b main super && printf 'super\\n' > super/s.txt\n"
		   "git -C super add -A && git -C super commit -qm super\n"
		   "git -C super submodule add -q ../lib.git vendor/lib\n"
		   "git -C super commit -qm 'lib submodule'\n"
		   "git clone -q --bare super super.git\n"
		   "mkdir not-a-repo\n") != 0)
		return -1;
	start_daemon();
	git_libgit2_init();
	assert_int_equal(sp_checkout_global_init(), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		(void)waitpid(daemon_pid, NULL, 0);
	}
	git_libgit2_shutdown();
	if (chdir("/") < 0)
		return -1;
	sp_test_rmtree(base);
	free(base);
	return 0;
}

/* ---- refs ---------------------------------------------------------------- */

static void test_refs(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	const char *bare = path("bare.git"), *cache = path("cache-refs");
	char url[1100], shortsha[16];

	(void)state;
	snprintf(url, sizeof(url), "file://%s", bare);

	/* default branch */
	opts_for(&o, cache, url, NULL);
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "main"));
	assert_string_equal(r.short_sha, out("git -C '%s' rev-parse --short=7 main", bare));
	assert_string_equal(r.ref, "refs/heads/main");
	assert_string_equal(r.branch, "main");
	assert_null(r.tag);
	assert_string_equal(r.subject, "third commit: guide");
	assert_string_equal(r.url, bare);
	assert_true(r.mirror_created);
	assert_true(r.fetched);
	tree_is(r.dir, bare, "main");
	assert_int_equal(access(path("cache-refs/work"), F_OK), 0);
	assert_int_not_equal(access(out("echo '%s/.git'", r.dir), F_OK), 0);  /* no .git */
	sp_checkout_result_release(&r);

	/* a branch */
	opts_for(&o, cache, url, "feature");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "feature"));
	assert_string_equal(r.branch, "feature");
	assert_false(r.mirror_created);
	tree_is(r.dir, bare, "feature");
	sp_checkout_result_release(&r);

	/* a lightweight tag, an annotated tag */
	opts_for(&o, cache, url, "v1");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "v1^{commit}"));
	assert_string_equal(r.tag, "v1");
	assert_string_equal(r.ref, "refs/tags/v1");
	assert_null(r.branch);
	assert_string_equal(r.subject, "first commit");
	tree_is(r.dir, bare, "v1");
	sp_checkout_result_release(&r);
	opts_for(&o, cache, url, "v1.1");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "v1.1^{commit}"));
	assert_string_equal(r.tag, "v1.1");
	sp_checkout_result_release(&r);

	/* a full SHA: already in the mirror, nothing fetched; its branch and tag found */
	opts_for(&o, cache, url, rev(bare, "v1.1^{commit}"));
	co_ok(&r, &o);
	assert_false(r.fetched);
	assert_null(r.ref);
	assert_null(r.branch);
	assert_string_equal(r.tag, "v1.1");
	tree_is(r.dir, bare, "v1.1");
	sp_checkout_result_release(&r);
	opts_for(&o, cache, url, rev(bare, "feature"));
	co_ok(&r, &o);
	assert_string_equal(r.branch, "feature");
	sp_checkout_result_release(&r);

	/* a short SHA */
	snprintf(shortsha, sizeof(shortsha), "%s", out("git -C '%s' rev-parse --short=9 v1", bare));
	opts_for(&o, cache, url, shortsha);
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "v1"));
	assert_string_equal(r.tag, "v1");
	tree_is(r.dir, bare, "v1");
	sp_checkout_result_release(&r);

	/* a forge ref, not on any branch */
	opts_for(&o, cache, url, "refs/pull/12/head");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "refs/pull/12/head"));
	assert_string_equal(r.subject, "pull request 12");
	assert_string_equal(r.ref, "refs/pull/12/head");
	tree_is(r.dir, bare, "refs/pull/12/head");
	sp_checkout_result_release(&r);

	/* an exact commit, with the ref that holds it (a webhook's pull request) */
	opts_for(&o, path("cache-refs-sha"), url, "refs/pull/12/head");
	o.sha = rev(bare, "refs/pull/12/head");
	co_ok(&r, &o);
	assert_string_equal(r.sha, o.sha);
	assert_string_equal(r.ref, "refs/pull/12/head");
	assert_true(r.fetched);
	tree_is(r.dir, bare, "refs/pull/12/head");
	sp_checkout_result_release(&r);
	/* a branch that has moved on since: the commit wins, the branch is named */
	opts_for(&o, cache, url, "main");
	o.sha = rev(bare, "main~1");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "main~1"));
	assert_string_equal(r.branch, "main");
	assert_string_equal(r.tag, "v1.1");
	assert_false(r.fetched);  /* already in the mirror */
	tree_is(r.dir, bare, "main~1");
	sp_checkout_result_release(&r);
	{
		struct sp_error err = SP_ERROR_INIT;

		opts_for(&o, cache, url, "feature");
		o.sha = "0123456789abcdef0123456789abcdef01234567";
		assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
		assert_non_null(strstr(err.msg, "(feature does not hold it)"));
		o.sha = "0123abc";
		assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
		assert_string_equal(err.msg, "malformed commit \"0123abc\": not 40 hex digits");
	}

	/* "HEAD" is the default branch; a plain path works as the URL */
	opts_for(&o, cache, bare, "HEAD");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(bare, "main"));
	assert_false(r.mirror_created);  /* the same mirror as file:// */
	sp_checkout_result_release(&r);
}

static void test_dest(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	struct sp_error err = SP_ERROR_INIT;
	const char *bare = path("bare.git");
	char dest[1100];

	(void)state;
	snprintf(dest, sizeof(dest), "%s", path("dest/a/b"));
	opts_for(&o, path("cache-dest"), bare, "feature");
	o.dest = dest;
	co_ok(&r, &o);
	assert_string_equal(r.dir, dest);
	assert_int_equal(r.lock_fd, -1);
	assert_null(r.workspace);
	tree_is(dest, bare, "feature");
	assert_string_equal(out("readlink '%s/link.md'", dest), "README.md");
	sp_checkout_result_release(&r);
	/* still there after release: the caller owns it */
	tree_is(dest, bare, "feature");

	/* a folder with something in it is refused */
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "is not empty"));

	/* an empty one is fine */
	sh("mkdir '%s'", path("dest/empty"));
	o.dest = path("dest/empty");
	co_ok(&r, &o);
	tree_is(r.dir, bare, "feature");
	sp_checkout_result_release(&r);
}

/* ---- the mirror cache ---------------------------------------------------- */

static int count_objects(const char *mirror)
{
	return (int)strtol(out("find '%s/objects' -type f | wc -l", mirror), NULL, 10);
}

/* The mirror is kept, the new commit found, only what is new brought in. */
static void second_checkout(const char *name, const char *url, bool over_wire)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	const char *repo = path("%s.git", name);
	char cache[1100], mirror[1100];
	int objects;

	snprintf(cache, sizeof(cache), "%s", path("cache-%s", name));
	opts_for(&o, cache, url, "main");
	co_ok(&r, &o);
	assert_true(r.mirror_created);
	snprintf(mirror, sizeof(mirror), "%s", r.mirror);
	sp_checkout_result_release(&r);
	sh("touch '%s/sentinel'", mirror);
	objects = count_objects(mirror);

	commit_in(name, "printf 'new\\n' > new.txt");
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(repo, "main"));
	assert_string_equal(r.subject, out("echo 'change in %s'", name));
	assert_string_equal(r.mirror, mirror);
	assert_false(r.mirror_created);
	assert_true(r.fetched);
	assert_int_equal(access(out("echo '%s/sentinel'", mirror), F_OK), 0);
	tree_is(r.dir, repo, "main");
	/* only what is new: the commit, its tree and the new blob */
	if (over_wire) {
		if (r.objects_received != 3)
			fail_msg("received %u objects", r.objects_received);
	} else {
		/* linked from the source (pushed loose there), not fetched through libgit2 */
		assert_int_equal(r.objects_received, 0);
		assert_int_equal(count_objects(mirror), objects + 3);
	}
	sp_checkout_result_release(&r);

	/* a branch the remote deleted is gone from the mirror too */
	sh("git -C '%s' branch -qD feature", repo);
	opts_for(&o, cache, url, "feature");
	{
		struct sp_error err = SP_ERROR_INIT;

		assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	}
}

static void test_second_checkout_fetches_new(void **state)
{
	(void)state;
	copy_repo("second");
	second_checkout("second", path("second.git"), false);
}

static void test_second_checkout_over_git_protocol(void **state)
{
	const char *url = daemon_url("wire.git");

	(void)state;
	copy_repo("wire");
	second_checkout("wire", url, true);
}

/* A local source that repacks (git gc): the mirror follows, keeps no dropped pack. */
static void test_local_source_repacked(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	const char *repo = path("gc.git"), *cache = path("cache-gc");

	(void)state;
	copy_repo("gc");
	opts_for(&o, cache, repo, NULL);
	co_ok(&r, &o);
	sp_checkout_result_release(&r);
	commit_in("gc", "echo y > y.txt");
	sh("git -C '%s' gc -q --prune=now", repo);
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(repo, "main"));
	tree_is(r.dir, repo, "main");
	/* the mirror's packs are exactly the source's now */
	assert_string_equal(out("ls '%s/objects/pack' | grep -c '\\.pack$'", r.mirror),
			    out("ls '%s/objects/pack' | grep -c '\\.pack$'", repo));
	sp_checkout_result_release(&r);
}

static void test_workspace_incremental(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	const char *repo = path("inc.git"), *cache = path("cache-inc");
	char dir[1100];
	ino_t guide;

	(void)state;
	copy_repo("inc");
	opts_for(&o, cache, repo, NULL);
	co_ok(&r, &o);
	snprintf(dir, sizeof(dir), "%s", r.dir);
	guide = inode(out("echo '%s/docs/guide.md'", dir));
	sp_checkout_result_release(&r);

	/* a job leaves things behind and changes things */
	sh("cd '%s' && echo junk > junk.txt && mkdir -p __pycache__ build/x && echo c > __pycache__/m.pyc"
	   " && echo l > build/x/out.log && echo edited >> README.md && rm app/main.py", dir);
	/* and the repository moves on: a file deleted, one added, one changed */
	commit_in("inc", "git rm -q data/big.bin && echo n > added.txt && echo more >> README.md");

	opts_for(&o, cache, repo, NULL);
	co_ok(&r, &o);
	assert_string_equal(r.dir, dir);  /* the same workspace */
	tree_is(r.dir, repo, "main");
	/* an unchanged file was not written again */
	assert_int_equal(inode(out("echo '%s/docs/guide.md'", dir)), guide);
	sp_checkout_result_release(&r);

	/* back to an older commit, and forward again */
	opts_for(&o, cache, repo, "v1");
	co_ok(&r, &o);
	tree_is(r.dir, repo, "v1");
	sp_checkout_result_release(&r);
	opts_for(&o, cache, repo, "main");
	co_ok(&r, &o);
	tree_is(r.dir, repo, "main");
	sp_checkout_result_release(&r);

	/* a workspace a killed job left half-written (no state file) is wiped */
	sh("rm '%s/../state' && echo stray > '%s/stray.txt' && echo x > '%s/docs/guide.md'", dir, dir,
	   dir);
	opts_for(&o, cache, repo, "main");
	co_ok(&r, &o);
	tree_is(r.dir, repo, "main");
	sp_checkout_result_release(&r);

	/* an unknown ref leaves the workspace as it was (no full rewrite next time) */
	guide = inode(out("echo '%s/docs/guide.md'", dir));
	opts_for(&o, cache, repo, "no-such-branch");
	{
		struct sp_error err = SP_ERROR_INIT;

		assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	}
	assert_int_equal(access(out("echo '%s/../state'", dir), F_OK), 0);
	opts_for(&o, cache, repo, "main");
	co_ok(&r, &o);
	assert_int_equal(inode(out("echo '%s/docs/guide.md'", dir)), guide);
	sp_checkout_result_release(&r);
}

/* tree_is, plus each entry's type, each link's target, and which files are executable */
static void tree_exact(const char *dir, const char *repo, const char *sha)
{
	const char *list = "find . ! -type d -printf '%P %y %l\\n' | sort && "
			   "find . -type f -perm -u+x -printf 'x %P\\n' | sort && "
			   "find . -type d -printf '%P\\n' | sort";

	tree_is(dir, repo, sha);
	sh("cd '%s/expect' && { %s; } > ../expect.list && cd '%s' && { %s; } > '%s/got.list' && "
	   "diff '%s/expect.list' '%s/got.list'", base, list, dir, list, base, base, base);
}

/* a checkout of repo's main in cache's workspace: whether it was quick */
static bool co_quick(const char *cache, const char *repo, const char *dir)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	bool quick;

	opts_for(&o, cache, repo, "main");
	co_ok(&r, &o);
	assert_string_equal(r.dir, dir);
	tree_exact(r.dir, repo, "main");
	quick = r.quick;
	sp_checkout_result_release(&r);
	return quick;
}

/*
 * The workspace's seal: with nothing touched, a checkout writes only what
 * the commits changed; any change to the tree (a rewrite that keeps size
 * and mtime included) or a damaged seal makes it check every file, and
 * the tree is exact either way.
 */
static void test_workspace_seal(void **state)
{
	const char *repo = path("seal.git"), *cache = path("cache-seal");
	const char *tamper[] = {
		/* same size, mtime put back to the nanosecond: only ctime tells */
		"t=$(stat -c %y README.md) && printf HELLO | dd of=README.md conv=notrunc status=none && "
		"touch -d \"$t\" README.md",
		"t=$(stat -c %y docs/guide.md) && sed -i s/guide/GUIDE/ docs/guide.md && "
		"touch -d \"$t\" docs/guide.md",
		"echo junk > docs/new.txt",
		"mkdir -p deep/er",
		"chmod +x docs/guide.md",
		"rm app/main.py",
		"rm docs/guide.md && ln -s ../README.md docs/guide.md",
		"rm link.md && ln -s docs/guide.md link.md",
		"mv docs/guide.md docs/g && mv docs/g docs/guide.md",
		"rm -r docs && mkdir docs && echo x > docs/other",
		/* a folder made a link out of the tree: nothing may be written there */
		"mkdir -p ../outside && rm -r app && ln -s ../outside app",
	};
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	char dir[1100], seal[1200];
	ino_t kept;
	size_t i;

	(void)state;
	copy_repo("seal");
	opts_for(&o, cache, repo, "main");
	co_ok(&r, &o);
	assert_false(r.quick);  /* a new workspace */
	snprintf(dir, sizeof(dir), "%s", r.dir);
	snprintf(seal, sizeof(seal), "%s/../seal", r.dir);
	sp_checkout_result_release(&r);
	assert_true(co_quick(cache, repo, dir));  /* the same commit: nothing to write */

	/* what commits do: change, add, remove, make executable, file to folder and back,
	 * a folder's last file removed, a link retargeted */
	kept = inode(out("echo '%s/docs/guide.md'", dir));
	commit_in("seal", "echo more >> README.md && mkdir -p new/sub && echo n > new/sub/n.txt");
	assert_true(co_quick(cache, repo, dir));
	commit_in("seal", "git rm -q data/big.bin && chmod +x app/main.py && rm link.md && "
		  "mkdir link.md && echo in > link.md/inside");
	assert_true(co_quick(cache, repo, dir));
	assert_int_equal(access(out("echo '%s/data'", dir), F_OK), -1);  /* as git leaves it */
	commit_in("seal", "rm -r link.md new && ln -s app/main.py link.md && echo d > data.txt");
	assert_true(co_quick(cache, repo, dir));
	/* files changed only: the seal is updated in place, and still tells */
	commit_in("seal", "echo again >> README.md && echo x > data.txt && chmod -x app/main.py");
	assert_true(co_quick(cache, repo, dir));
	assert_true(co_quick(cache, repo, dir));
	sh("cd '%s' && t=$(stat -c %%y data.txt) && printf y | dd of=data.txt conv=notrunc status=none"
	   " && touch -d \"$t\" data.txt", dir);
	assert_false(co_quick(cache, repo, dir));
	assert_int_equal(inode(out("echo '%s/docs/guide.md'", dir)), kept);
	/* back to an older commit, quick too */
	opts_for(&o, cache, repo, "v1");
	co_ok(&r, &o);
	assert_true(r.quick);
	tree_exact(r.dir, repo, "v1");
	sp_checkout_result_release(&r);
	assert_true(co_quick(cache, repo, dir));

	/* any change to the tree: a full check, exact again, and quick after */
	for (i = 0; i < sizeof(tamper) / sizeof(*tamper); i++) {
		sh("cd '%s' && %s", dir, tamper[i]);
		if (co_quick(cache, repo, dir))
			fail_msg("not noticed: %s", tamper[i]);
		assert_true(co_quick(cache, repo, dir));
	}
	sh("test -z \"$(ls -A '%s/../outside')\"", dir);

	/* a damaged, cut or missing seal: a full check (unchanged files kept) */
	kept = inode(out("echo '%s/docs/guide.md'", dir));
	sh("printf '\\001' | dd of='%s' bs=1 seek=100 conv=notrunc status=none", seal);
	assert_false(co_quick(cache, repo, dir));
	sh("truncate -s -9 '%s'", seal);
	assert_false(co_quick(cache, repo, dir));
	sh("rm '%s'", seal);
	assert_false(co_quick(cache, repo, dir));
	assert_true(co_quick(cache, repo, dir));
	assert_int_equal(inode(out("echo '%s/docs/guide.md'", dir)), kept);
}

/*
 * A tree going into an empty folder is written by several threads (here
 * from one file on): the same tree, links, modes, submodule folders, in a
 * new folder and in a workspace; a tree's .gitattributes are written first
 * (their filters apply to every share).
 */
static void test_parallel_write(void **state)
{
	const char *repos[] = { "bare.git", "super.git" };
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	char dest[1100];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(repos) / sizeof(*repos); i++) {
		snprintf(dest, sizeof(dest), "%s/par-%zu", base, i);
		opts_for(&o, path("cache-par"), path("%s", repos[i]), "main");
		o.parallel_min_files = 1;
		o.dest = dest;
		co_ok(&r, &o);
		tree_exact(r.dir, path("%s", repos[i]), "main");
		sp_checkout_result_release(&r);

		opts_for(&o, path("cache-par"), path("%s", repos[i]), "main");
		o.parallel_min_files = 1;
		co_ok(&r, &o);
		assert_false(r.quick);
		tree_exact(r.dir, path("%s", repos[i]), "main");
		sp_checkout_result_release(&r);
		co_ok(&r, &o);
		assert_true(r.quick);  /* sealed after the parallel write */
		sp_checkout_result_release(&r);
	}

	sh("set -e; cd '%s' && git init -q -b main attrs && cd attrs && "
	   "printf '*.txt eol=crlf\\n' > .gitattributes && mkdir -p a b && "
	   "printf 'x\\n' > a/1.txt && printf 'y\\n' > b/2.txt && printf 'z\\n' > c.bin && "
	   "git add -A && git commit -qm attrs", base);
	opts_for(&o, path("cache-par"), path("attrs"), "main");
	o.parallel_min_files = 1;
	co_ok(&r, &o);
	assert_string_equal(out("od -An -c '%s/b/2.txt' | tr -d ' '", r.dir), "y\\r\\n");
	assert_string_equal(out("od -An -c '%s/a/1.txt' | tr -d ' '", r.dir), "x\\r\\n");
	assert_string_equal(out("od -An -c '%s/c.bin' | tr -d ' '", r.dir), "z\\n");
	sp_checkout_result_release(&r);
}

static void test_workspace_pool(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result a, b, c;
	const char *bare = path("bare.git"), *cache = path("cache-pool");

	(void)state;
	opts_for(&o, cache, bare, "main");
	co_ok(&a, &o);
	co_ok(&b, &o);  /* a is still held: another workspace */
	assert_string_not_equal(a.dir, b.dir);
	assert_non_null(strstr(a.dir, "-0/tree"));
	assert_non_null(strstr(b.dir, "-1/tree"));
	tree_is(a.dir, bare, "main");
	tree_is(b.dir, bare, "main");
	sp_checkout_result_release(&a);
	co_ok(&c, &o);  /* the first one is free again */
	assert_non_null(strstr(c.dir, "-0/tree"));
	sp_checkout_result_release(&b);
	sp_checkout_result_release(&c);
}

static void test_concurrent(void **state)
{
	const char *bare = path("bare.git"), *cache = path("cache-conc");
	char want[64], *key;
	pid_t pids[6];
	int i, status;

	(void)state;
	snprintf(want, sizeof(want), "%s", rev(bare, "main"));
	for (i = 0; i < 6; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct sp_checkout_opts o;
			struct sp_checkout_result r;
			struct sp_error err = SP_ERROR_INIT;
			char dest[1100];
			int ok;

			opts_for(&o, cache, bare, i % 3 == 2 ? "feature" : "main");
			if (i % 2) {
				snprintf(dest, sizeof(dest), "%s/conc-dest-%d", base, i);
				o.dest = dest;
			}
			if (sp_checkout(&r, &o, &err) < 0) {
				fprintf(stderr, "child %d: %s\n", i, err.msg);
				_exit(1);
			}
			ok = !strcmp(r.sha, i % 3 == 2 ? rev(bare, "feature") : want);
			usleep(200 * 1000);  /* hold the workspace a while */
			sp_checkout_result_release(&r);
			_exit(ok ? 0 : 2);
		}
	}
	for (i = 0; i < 6; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("concurrent checkout %d failed (status %d)", i, status);
	}
	/* one mirror, no temporary folder left */
	key = mirror_key(bare);
	assert_string_equal(out("ls '%s/mirrors' | grep -v '\\.lock$'", cache),
			    out("echo %s.git", key));
	free(key);
	for (i = 1; i < 6; i += 2)
		tree_is(path("conc-dest-%d", i), bare, i % 3 == 2 ? "feature" : "main");
}

/* ---- damaged mirrors ----------------------------------------------------- */

/* Checks out url into a new cache, then damages its mirror with script (run in it). */
static void damaged(const char *cache, const char *url, const char *script, bool expect_rebuild)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	char mirror[1100];

	opts_for(&o, cache, url, "main");
	co_ok(&r, &o);
	snprintf(mirror, sizeof(mirror), "%s", r.mirror);
	sp_checkout_result_release(&r);
	/*
	 * A file of our own tells a rebuilt mirror from a reused one (inode
	 * numbers are reused at once).  Damage replaces files rather than
	 * writing through them: the mirror's packs are hard links of url's.
	 */
	sh("cd '%s' && touch sentinel && %s", mirror, script);
	co_ok(&r, &o);
	assert_string_equal(r.sha, rev(url, "main"));
	tree_is(r.dir, url, "main");
	assert_int_equal(r.mirror_created, expect_rebuild);
	assert_int_equal(access(out("echo '%s/sentinel'", mirror), F_OK) == 0, !expect_rebuild);
	sp_checkout_result_release(&r);
	/* and the source repository is intact */
	sh("git -C '%s' fsck --no-dangling --no-progress 2>/dev/null", url);
}

static void test_damaged_mirror(void **state)
{
	const char *bare = path("bare.git");

	(void)state;
	/* a truncated pack */
	damaged(path("cache-dmg1"), bare,
		"for p in objects/pack/*.pack; do head -c 2000 $p > t && rm -f $p && mv t $p; done", true);
	/* packs deleted */
	damaged(path("cache-dmg2"), bare, "rm -f objects/pack/*", true);
	/* the index of a pack deleted */
	damaged(path("cache-dmg3"), bare, "rm -f objects/pack/*.idx", true);
	/* no marker: the mirror was never finished */
	damaged(path("cache-dmg4"), bare, "rm stagepipe-mirror", true);
	/* a marker for another URL */
	damaged(path("cache-dmg5"), bare,
		"printf 'stagepipe mirror 1\\nurl file:///elsewhere\\n' > stagepipe-mirror", true);
	/* refs gone (HEAD unreadable) */
	damaged(path("cache-dmg6"), bare, "rm -rf refs packed-refs HEAD", true);
	/* a stale ref lock from a killed fetch: removed, the mirror kept */
	damaged(path("cache-dmg7"), bare, "touch refs/heads/main.lock packed-refs.lock", false);
}

/* Damage inside a blob, which opening cannot see: found when reading, then rebuilt. */
static void test_damaged_object(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	const char *bare = path("bare.git"), *cache = path("cache-dmg-obj");
	const char *blob = rev(bare, "main:data/big.bin");
	char mirror[1100], line[512], pack[1200], *end;
	long off, size;
	int fd;

	(void)state;
	opts_for(&o, cache, bare, "main");
	o.dest = path("dmg-first");
	co_ok(&r, &o);
	snprintf(mirror, sizeof(mirror), "%s", r.mirror);
	sp_checkout_result_release(&r);

	snprintf(pack, sizeof(pack), "%s", out("ls %s/objects/pack/*.pack | head -1", mirror));
	/* "sha type size size-in-pack offset" */
	snprintf(line, sizeof(line), "%s",
		 out("git verify-pack -v '%s' | awk '$1 == \"%s\" { print $4 \" \" $5 }'", pack, blob));
	size = strtol(line, &end, 10);
	off = strtol(end, NULL, 10);
	assert_true(off > 0 && size > 1000);
	sh("cp '%s' '%s.new' && rm -f '%s' && mv '%s.new' '%s' && chmod u+w '%s'", pack, pack, pack,
	   pack, pack, pack);
	fd = open(pack, O_RDWR);
	assert_true(fd >= 0);
	{
		unsigned char c[64];
		int k;

		assert_int_equal(pread(fd, c, sizeof(c), off + size / 2), (ssize_t)sizeof(c));
		for (k = 0; k < 64; k++)
			c[k] ^= 0x5a;
		assert_int_equal(pwrite(fd, c, sizeof(c), off + size / 2), (ssize_t)sizeof(c));
	}
	close(fd);

	opts_for(&o, cache, bare, "main");
	o.dest = path("dmg-second");
	co_ok(&r, &o);
	assert_true(r.mirror_created);
	tree_is(r.dir, bare, "main");
	sp_checkout_result_release(&r);
}

static void test_leftover_tmp(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	const char *bare = path("bare.git"), *cache = path("cache-tmp");
	char *key = mirror_key(bare);

	(void)state;
	/* a crash while the mirror was being made: its temporary folder, no mirror */
	sh("mkdir -p '%s/mirrors/%s.tmp-AbC123/objects' && echo junk > '%s/mirrors/%s.tmp-AbC123/HEAD'",
	   cache, key, cache, key);
	opts_for(&o, cache, bare, "main");
	co_ok(&r, &o);
	assert_true(r.mirror_created);
	tree_is(r.dir, bare, "main");
	sp_checkout_result_release(&r);
	assert_int_not_equal(access(path("cache-tmp/mirrors/%s.tmp-AbC123", key), F_OK), 0);
	free(key);
}

/* ---- submodules ---------------------------------------------------------- */

static void test_submodules(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	struct sp_error err = SP_ERROR_INIT;
	const char *super = path("super.git"), *cache = path("cache-sub");

	(void)state;
	opts_for(&o, cache, super, NULL);
	o.submodules = true;
	co_ok(&r, &o);
	assert_string_equal(out("cat '%s/s.txt' '%s/vendor/lib/lib.c' '%s/vendor/lib/deps/inner/inner.txt'"
				" | tr '\\n' ' '", r.dir, r.dir, r.dir), "super lib inner");
	assert_int_equal(r.n_submodules, 2);
	assert_string_equal(r.submodules[0].path, "vendor/lib");
	assert_string_equal(r.submodules[0].sha, rev(super, "main:vendor/lib"));
	assert_string_equal(r.submodules[0].url, path("lib.git"));
	assert_string_equal(r.submodules[1].path, "vendor/lib/deps/inner");
	assert_string_equal(r.submodules[1].sha, rev(path("lib.git"), "main:deps/inner"));
	assert_int_not_equal(access(out("echo '%s/vendor/lib/.git'", r.dir), F_OK), 0);
	sp_checkout_result_release(&r);

	/* again in the same workspace: the same tree */
	co_ok(&r, &o);
	assert_string_equal(out("cat '%s/vendor/lib/deps/inner/inner.txt'", r.dir), "inner");
	assert_int_equal(r.n_submodules, 2);
	sp_checkout_result_release(&r);

	/* without: empty submodule folders, as git clone leaves them */
	o.submodules = false;
	co_ok(&r, &o);
	assert_int_equal(r.n_submodules, 0);
	assert_string_equal(out("ls -A '%s/vendor/lib' | wc -l", r.dir), "0");
	tree_is(r.dir, super, "main");

	/* asked for afterwards (the pipeline file said so) */
	assert_int_equal(sp_checkout_submodules(&r, &o, &err), 0);
	assert_int_equal(r.n_submodules, 2);
	assert_string_equal(out("cat '%s/vendor/lib/deps/inner/inner.txt'", r.dir), "inner");
	sp_checkout_result_release(&r);

	/* into a folder of its own */
	o.submodules = true;
	o.dest = path("sub-dest");
	co_ok(&r, &o);
	assert_string_equal(out("cat '%s/vendor/lib/lib.c'", r.dir), "lib");
	sp_checkout_result_release(&r);

	/* a submodule whose repository is gone: named in the error */
	sh("mv '%s' '%s.away'", path("inner.git"), path("inner.git"));
	o.dest = NULL;
	o.cache_dir = path("cache-sub2");
	assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "submodule vendor/lib/deps/inner: no repository at"));
	sh("mv '%s.away' '%s'", path("inner.git"), path("inner.git"));
}

/*
 * A bare repository NAME.git whose one commit has .gitmodules entries
 * "path url sha" (one per line of spec, gitlinks made with update-index).
 */
static void repo_with_gitlinks(const char *name, const char *spec)
{
	sh("set -e; cd '%s' && rm -rf '%s-gl' && git init -q -b main '%s-gl' && cd '%s-gl' && "
	   "printf 'top\\n' > top.txt && git add top.txt && "
	   "printf '%%s\\n' \"%s\" | while read p u h; do "
	   "  printf '[submodule \"%%s\"]\\n\\tpath = %%s\\n\\turl = %%s\\n' \"$p\" \"$p\" \"$u\" "
	   "    >> .gitmodules; "
	   "  git update-index --add --cacheinfo 160000,\"$h\",\"$p\"; "
	   "done && git add .gitmodules && git commit -qm gitlinks && cd .. && "
	   "rm -rf '%s.git' && git clone -q --bare '%s-gl' '%s.git'",
	   base, name, name, name, spec, name, name, name);
}

/* .gitmodules of a remote repository naming a local one: refused. */
static void test_submodule_local_refused(void **state)
{
	struct sp_checkout_opts o;
	struct sp_error err = SP_ERROR_INIT;
	char spec[2048], want[2048];

	(void)state;
	snprintf(spec, sizeof(spec), "vendor/secret %s %s", path("inner.git"),
		 rev(path("inner.git"), "main"));
	repo_with_gitlinks("pulls-local", spec);
	snprintf(spec, sizeof(spec), "vendor/secret file://%s %s", path("inner.git"),
		 rev(path("inner.git"), "main"));
	repo_with_gitlinks("pulls-file", spec);

	/* from a local repository, a local submodule is fine */
	opts_for(&o, path("cache-subpol"), path("pulls-local.git"), NULL);
	o.submodules = true;
	o.dest = path("subpol-ok");
	{
		struct sp_checkout_result r;

		co_ok(&r, &o);
		assert_int_equal(r.n_submodules, 1);
		sp_checkout_result_release(&r);
	}
	/* over git:// (a remote repository): refused, one line naming path and URL */
	opts_for(&o, path("cache-subpol"), daemon_url("pulls-local.git"), NULL);
	o.submodules = true;
	o.dest = path("subpol-1");
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	snprintf(want, sizeof(want), "submodule vendor/secret: %s is a local repository, "
		 "refused for a remote repository", path("inner.git"));
	assert_string_equal(err.msg, want);
	assert_string_equal(out("ls -A '%s/vendor/secret' | wc -l", path("subpol-1")), "0");
	opts_for(&o, path("cache-subpol"), daemon_url("pulls-file.git"), NULL);
	o.submodules = true;
	o.dest = path("subpol-2");
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "submodule vendor/secret: "));
	assert_non_null(strstr(err.msg, "is a local repository"));
	assert_null(strchr(err.msg, '\n'));
}

/* Every submodule path is filled, even two of one commit; at most 256 in all. */
static void test_submodule_fanout(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	struct sp_error err = SP_ERROR_INIT;
	char spec[1024], inner[64];

	(void)state;
	snprintf(inner, sizeof(inner), "%s", rev(path("inner.git"), "main"));
	/* the same URL and commit at two paths: both filled, as git does */
	snprintf(spec, sizeof(spec), "a ../inner.git %s\nb ../inner.git %s", inner, inner);
	repo_with_gitlinks("twice", spec);
	opts_for(&o, path("cache-fan"), path("twice.git"), NULL);
	o.submodules = true;
	o.dest = path("fan-1");
	co_ok(&r, &o);
	assert_int_equal(r.n_submodules, 2);
	assert_string_equal(r.submodules[0].path, "a");
	assert_string_equal(r.submodules[1].path, "b");
	sp_checkout_result_release(&r);

	/* 257 commits of one repository: more than the cap */
	sh("set -e; cd '%s' && rm -rf many-wt && git init -q -b main many-wt && cd many-wt && "
	   "for i in $(seq 1 257); do git commit -q --allow-empty -m c$i; done && cd .. && "
	   "rm -rf many.git && git clone -q --bare many-wt many.git && "
	   "rm -rf fan-gl && git init -q -b main fan-gl && cd fan-gl && i=0 && "
	   "for h in $(git -C ../many.git rev-list main); do "
	   "  printf '[submodule \"s%%d\"]\\n\\tpath = s%%d\\n\\turl = ../many.git\\n' $i $i "
	   "    >> .gitmodules; "
	   "  git update-index --add --cacheinfo 160000,$h,s$i; i=$((i+1)); "
	   "done && git add .gitmodules && git commit -qm fan && cd .. && "
	   "rm -rf fan.git && git clone -q --bare fan-gl fan.git", base);
	opts_for(&o, path("cache-fan"), path("fan.git"), NULL);
	o.submodules = true;
	o.dest = path("fan-2");
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "more than 256 submodules in all"));
}

/* No URL: an error, nothing released that was never set (ASan). */
static void test_no_url(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	opts_for(&o, path("cache-nourl"), NULL, NULL);
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_string_equal(err.msg, "no repository URL");
	memset(&r, 0, sizeof(r));
	r.lock_fd = -1;
	r.sha = strdup("0123456789012345678901234567890123456789");
	r.dir = strdup(base);
	assert_int_equal(sp_checkout_submodules(&r, &o, &err), SP_ECONFIG);
	assert_string_equal(err.msg, "no repository URL");
	sp_checkout_result_release(&r);
}

/* ---- errors -------------------------------------------------------------- */

static void test_errors(void **state)
{
	struct sp_checkout_opts o;
	struct sp_error err = SP_ERROR_INIT;
	const char *bare = path("bare.git"), *cache = path("cache-err");
	char url[1200];

	(void)state;
	opts_for(&o, cache, bare, "no-such-branch");
	assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	snprintf(url, sizeof(url), "no branch, tag or commit \"no-such-branch\" in %s", bare);
	assert_string_equal(err.msg, url);

	opts_for(&o, cache, bare, "0123456789012345678901234567890123456789");
	assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no commit 0123456789012345678901234567890123456789 in"));

	opts_for(&o, cache, bare, "a..b");
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_string_equal(err.msg, "malformed ref \"a..b\"");

	opts_for(&o, cache, path("no-such-repo.git"), NULL);
	assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	snprintf(url, sizeof(url), "no repository at %s: No such file or directory",
		 path("no-such-repo.git"));
	assert_string_equal(err.msg, url);

	opts_for(&o, cache, path("not-a-repo"), NULL);
	assert_int_equal(co_fail(&o, &err), SP_ENOTFOUND);
	snprintf(url, sizeof(url), "%s is not a git repository", path("not-a-repo"));
	assert_string_equal(err.msg, url);

	opts_for(&o, cache, "htps://github.com/a/b", NULL);
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "malformed repository URL"));

	/* nothing listens on port 1 */
	opts_for(&o, cache, "http://user:hunter2pw@127.0.0.1:1/x.git", NULL);
	assert_int_equal(co_fail(&o, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "cannot fetch http://127.0.0.1:1/x.git: "));
	assert_null(strstr(err.msg, "hunter2pw"));
	assert_null(strchr(err.msg, '\n'));
	opts_for(&o, cache, "git://127.0.0.1:1/x.git", NULL);
	assert_int_equal(co_fail(&o, &err), SP_EENGINE);

	/* no cache folder to be found */
	opts_for(&o, NULL, bare, NULL);
	assert_int_equal(co_fail(&o, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "XDG_CACHE_HOME"));
	/* nothing failed was left locked or half-made */
	assert_string_equal(out("ls '%s/mirrors' | grep -c tmp- || true", cache), "0");
}

/* ---- cancel, progress, the cache folder, gitinfo ------------------------- */

struct counter {
	int calls;
	int stop_after;
	int waiting, fetching, writing;
	bool fetch_done;
};

static int cancel_after(void *ud)
{
	struct counter *c = ud;

	return ++c->calls > c->stop_after;
}

static void on_progress(const struct sp_checkout_progress *p, void *ud)
{
	struct counter *c = ud;

	assert_non_null(p->url);
	assert_non_null(p->path);
	if (p->phase == SP_CHECKOUT_WAITING)
		c->waiting++;
	if (p->phase == SP_CHECKOUT_FETCHING) {
		c->fetching++;
		if (p->total_objects && p->received_objects == p->total_objects)
			c->fetch_done = true;
	}
	if (p->phase == SP_CHECKOUT_WRITING) {
		c->writing++;
		assert_true(p->files_done <= p->files_total);
	}
}

static void test_cancel(void **state)
{
	struct sp_checkout_opts o;
	struct sp_error err = SP_ERROR_INIT;
	struct counter c;
	const char *bare = path("bare.git"), *cache = path("cache-cancel");
	char *key = mirror_key(bare), lock[1200];
	int fd;

	(void)state;
	memset(&c, 0, sizeof(c));
	opts_for(&o, cache, bare, NULL);
	o.cancel = cancel_after;
	o.cancel_ud = &c;
	assert_int_equal(co_fail(&o, &err), SP_ECANCELLED);

	/* waiting for another job's lock on the mirror */
	sh("mkdir -p '%s/mirrors'", cache);
	snprintf(lock, sizeof(lock), "%s/mirrors/%s.lock", cache, key);
	fd = open(lock, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	o.progress = on_progress;
	o.progress_ud = &c;
	assert_int_equal(co_fail(&o, &err), SP_ECANCELLED);
	assert_non_null(strstr(err.msg, "cancelled while waiting for the mirror of"));
	assert_int_equal(c.waiting, 1);
	close(fd);
	free(key);
}

static void test_progress(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	struct counter c;
	const char *url = daemon_url("prog.git"), *cache = path("cache-prog");

	(void)state;
	copy_repo("prog");
	memset(&c, 0, sizeof(c));
	opts_for(&o, cache, url, NULL);
	o.progress = on_progress;
	o.progress_ud = &c;
	co_ok(&r, &o);
	sp_checkout_result_release(&r);
	assert_true(c.fetching >= 1);
	assert_true(c.fetch_done);
	assert_true(c.writing >= 1);
	commit_in("prog", "head -c 100000 /dev/urandom > blob.bin");
	memset(&c, 0, sizeof(c));
	co_ok(&r, &o);
	assert_true(c.fetch_done);
	assert_true(r.bytes_received > 100000);
	assert_int_equal(r.objects_received, 3);
	sp_checkout_result_release(&r);
}

static void test_cache_dir(void **state)
{
	const char *both[] = { "XDG_CACHE_HOME=/x/cache", "HOME=/home/u", NULL };
	const char *home[] = { "HOME=/home/u", NULL };
	const char *rel[] = { "XDG_CACHE_HOME=rel", "HOME=/home/u", NULL };
	const char *none[] = { NULL };
	struct sp_error err = SP_ERROR_INIT;
	char *dir;

	(void)state;
	assert_int_equal(sp_checkout_cache_dir(&dir, sp_test_env, (void *)both, &err), 0);
	assert_string_equal(dir, "/x/cache/stagepipe");
	free(dir);
	assert_int_equal(sp_checkout_cache_dir(&dir, sp_test_env, (void *)home, &err), 0);
	assert_string_equal(dir, "/home/u/.cache/stagepipe");
	free(dir);
	assert_int_equal(sp_checkout_cache_dir(&dir, sp_test_env, (void *)rel, &err), 0);
	assert_string_equal(dir, "/home/u/.cache/stagepipe");
	free(dir);
	assert_int_equal(sp_checkout_cache_dir(&dir, sp_test_env, (void *)none, &err), SP_ECONFIG);
	assert_null(dir);

	/* through the options' getenv when no cache_dir is given */
	{
		char xdg[1100];
		const char *env[] = { xdg, NULL };
		struct sp_checkout_opts o;
		struct sp_checkout_result r;

		snprintf(xdg, sizeof(xdg), "XDG_CACHE_HOME=%s", path("xdg"));
		opts_for(&o, NULL, path("bare.git"), NULL);
		o.getenv = sp_test_env;
		o.getenv_ud = (void *)env;
		co_ok(&r, &o);
		assert_int_equal(strncmp(r.mirror, path("xdg/stagepipe/mirrors/"),
					 strlen(path("xdg/stagepipe/mirrors/"))), 0);
		sp_checkout_result_release(&r);
	}
}

static void test_gitinfo(void **state)
{
	struct sp_checkout_opts o;
	struct sp_checkout_result r;
	struct sp_gitinfo info;

	(void)state;
	opts_for(&o, path("cache-info"), path("bare.git"), "v1.1");
	co_ok(&r, &o);
	sp_checkout_result_gitinfo(&info, &r);
	assert_true(info.is_repo);
	assert_string_equal(info.root, r.dir);
	assert_string_equal(info.sha, r.sha);
	assert_string_equal(info.short_sha, r.short_sha);
	assert_null(info.branch);
	assert_string_equal(info.tag, "v1.1");
	assert_string_equal(info.subject, "second commit");
	sp_gitinfo_release(&info);
	sp_checkout_result_release(&r);
	sp_checkout_result_release(&r);  /* twice is harmless */

	/* a zeroed result (a struct holding one, memset) releases nothing: fd 0 stays */
	{
		struct sp_checkout_result z;
		int fd = dup(0);

		assert_true(fd > 0);
		memset(&z, 0, sizeof(z));
		sp_checkout_result_release(&z);
		assert_int_not_equal(fcntl(0, F_GETFD), -1);
		close(fd);
	}
}

static void test_local_clean(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	const char *src = path("src");

	(void)state;
	assert_int_equal(sp_checkout_local(src, rev(src, "v1"), path("clean"), &err), 0);
	assert_string_equal(rev(path("clean"), "HEAD"), rev(src, "v1"));
	assert_string_equal(out("cat '%s/README.md'", path("clean")), "hello");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_dest),
		cmocka_unit_test(test_second_checkout_fetches_new),
		cmocka_unit_test(test_second_checkout_over_git_protocol),
		cmocka_unit_test(test_local_source_repacked),
		cmocka_unit_test(test_workspace_incremental),
		cmocka_unit_test(test_workspace_seal),
		cmocka_unit_test(test_parallel_write),
		cmocka_unit_test(test_workspace_pool),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_damaged_mirror),
		cmocka_unit_test(test_damaged_object),
		cmocka_unit_test(test_leftover_tmp),
		cmocka_unit_test(test_submodules),
		cmocka_unit_test(test_submodule_local_refused),
		cmocka_unit_test(test_submodule_fanout),
		cmocka_unit_test(test_no_url),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_cache_dir),
		cmocka_unit_test(test_gitinfo),
		cmocka_unit_test(test_local_clean),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
