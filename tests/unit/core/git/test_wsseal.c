/*
 * test_wsseal.c — a workspace's seal: what parses and what does not, and
 * its racy entries (changed in the clock step it was written in), whose
 * contents are compared.  (Checkouts built on seals are test_checkout.c's
 * test_workspace_seal and test_parallel_write, on real trees.)
 */
#define _GNU_SOURCE  /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/git/wsseal.h"

struct bytes {
	char b[4096];
	size_t n;
};

static void add(struct bytes *s, const void *p, size_t n)
{
	assert_true(s->n + n <= sizeof(s->b));
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void add32(struct bytes *s, uint32_t v)
{
	add(s, &v, 4);
}

static void add_stat(struct bytes *s, uint32_t mode)
{
	uint64_t q = 7;
	int64_t t = 1700000000;
	uint32_t ns = 5;

	add(s, &q, 8);
	add(s, &q, 8);
	add(s, &t, 8);
	add(s, &t, 8);
	add32(s, ns);
	add32(s, ns);
	add32(s, mode);
}

static void add_path(struct bytes *s, const char *p)
{
	add32(s, (uint32_t)strlen(p) + 1);
	add(s, p, strlen(p) + 1);
}

/* A seal of files (NULL-ended) and the folders "." and dir, checksum last. */
static struct sp_wsseal *parse(const char *const *files, const char *dir, bool bad_sum)
{
	static const char oid[20] = { 1 };
	struct bytes s = { .n = 0 };
	uint32_t nf = 0;
	uint64_t sum;
	char *buf;
	size_t i;

	while (files[nf])
		nf++;
	add(&s, "SPWSEAL1", 8);
	add32(&s, nf);
	add32(&s, dir ? 2 : 1);
	add(&s, oid, 20);
	for (i = 0; i < nf; i++) {
		add_path(&s, files[i]);
		add32(&s, 0100644);
		add(&s, oid, 20);
		add_stat(&s, 0100644);
	}
	add_path(&s, ".");
	add_stat(&s, 040755);
	if (dir) {
		add_path(&s, dir);
		add_stat(&s, 040755);
	}
	sum = sp_wsseal_checksum(s.b, s.n) + (bad_sum ? 1 : 0);
	add(&s, &sum, 8);
	buf = malloc(s.n);
	assert_non_null(buf);
	memcpy(buf, s.b, s.n);
	return sp_wsseal_parse(buf, s.n);
}

static void test_parse(void **state)
{
	const char *good[] = { "README.md", "app/main.py", "app/x y.txt", NULL };
	const char *bad[][3] = {
		{ "../etc/passwd", NULL, NULL }, { "/etc/passwd", NULL, NULL },
		{ "app//main.py", NULL, NULL },  { "app/./main.py", NULL, NULL },
		{ "app/../x", NULL, NULL },      { "app/", NULL, NULL },
		{ "", NULL, NULL },              { ".", NULL, NULL },
		{ "b", "a", NULL },              /* not sorted */
		{ "a", "a", NULL },              /* twice */
	};
	struct sp_wsseal *s;
	git_index *idx;
	size_t i;

	(void)state;
	s = parse(good, "app", false);
	assert_non_null(s);
	assert_int_equal(sp_wsseal_index(&idx, s), 0);
	assert_int_equal(git_index_entrycount(idx), 3);
	git_index_free(idx);
	sp_wsseal_free(s);

	assert_null(parse(good, "app", true));  /* checksum */
	assert_null(parse(good, "..", false));   /* a folder out of the tree */
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (parse(bad[i], NULL, false))
			fail_msg("parsed: %s %s", bad[i][0], bad[i][1] ? bad[i][1] : "");

	/* no seal at all */
	assert_null(sp_wsseal_load("/nonexistent/seal"));
	assert_null(sp_wsseal_index(&idx, NULL) == 0 ? NULL : (void *)1);
	assert_int_equal(git_index_entrycount(idx), 0);
	git_index_free(idx);
}

static char tmp[] = "/tmp/sp-wsseal-XXXXXX";

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static bool holds(const char *seal, const char *dir)
{
	struct sp_wsseal *s = sp_wsseal_load(seal);
	bool ok;

	assert_non_null(s);
	ok = sp_wsseal_holds(s, dir);
	sp_wsseal_free(s);
	return ok;
}

/* Every entry made racy: the seal's mtime put back to 1970. */
static void all_racy(const char *seal)
{
	sh("touch -d @0 '%s'", seal);
}

/* Flips a byte of the object id sealed for the file named name, checksum fixed. */
static void wrong_oid(const char *seal, const char *name)
{
	FILE *f = fopen(seal, "r+b");
	char buf[8192];
	size_t n;
	uint64_t sum;
	char *at;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	assert_true(n > 8 && n < sizeof(buf));
	at = memmem(buf, n - 8, name, strlen(name) + 1);
	assert_non_null(at);
	at[strlen(name) + 1 + 4] ^= 1;  /* path NUL, git mode (4), oid */
	sum = sp_wsseal_checksum(buf, n - 8);
	memcpy(buf + n - 8, &sum, 8);
	rewind(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	fclose(f);
}

static void test_racy(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	git_repository *repo;
	git_object *obj;
	git_tree *tree;
	char work[64], seal[64], repo_path[64];

	(void)state;
	assert_non_null(mkdtemp(tmp));
	snprintf(work, sizeof(work), "%s/work", tmp);
	snprintf(seal, sizeof(seal), "%s/seal", tmp);
	snprintf(repo_path, sizeof(repo_path), "%s/repo", tmp);
	sh("set -e; cd '%s' && git init -q -b main repo && cd repo && mkdir -p d/e && "
	   "echo a > a.txt && echo b > d/b.txt && echo c > d/e/c.txt && ln -s a.txt link && "
	   "git add -A && git -c user.name=t -c user.email=t@x commit -qm one && "
	   "mkdir ../work && git archive HEAD | tar -x -C ../work", tmp);
	assert_int_equal(git_repository_open(&repo, repo_path), 0);
	assert_int_equal(git_revparse_single(&obj, repo, "HEAD^{tree}"), 0);
	tree = (git_tree *)obj;

	assert_int_equal(sp_wsseal_write(seal, tree, work, NULL, NULL, &err), 0);
	assert_true(holds(seal, work));
	all_racy(seal);
	assert_true(holds(seal, work));  /* contents as sealed: still holds */

	/* a content the stat cannot show (here: the seal's id made wrong) */
	wrong_oid(seal, "d/b.txt");
	all_racy(seal);
	assert_false(holds(seal, work));  /* racy: the hash tells */
	{
		/* and the full check that follows gets it written anew */
		struct sp_wsseal *sl = sp_wsseal_load(seal);
		char p[96];

		assert_non_null(sl);
		assert_int_equal(sp_wsseal_clear_changed(sl, work, &err), 1);
		sp_wsseal_free(sl);
		snprintf(p, sizeof(p), "%s/d/b.txt", work);
		assert_int_equal(access(p, F_OK), -1);
		snprintf(p, sizeof(p), "%s/d/e/c.txt", work);
		assert_int_equal(access(p, F_OK), 0);
		sh("cd '%s/repo' && git archive HEAD d/b.txt | tar -x -C ../work", tmp);
	}
	assert_int_equal(sp_wsseal_write(seal, tree, work, NULL, NULL, &err), 0);
	wrong_oid(seal, "link");
	all_racy(seal);
	assert_false(holds(seal, work));  /* a link's target, hashed */

	/* a name a folder had when sealed but the tree has not */
	sh("echo x > '%s/work/d/e/extra'", tmp);
	usleep(50 * 1000);  /* a clock step (4 ms at HZ=250) or more: not racy */
	assert_int_equal(sp_wsseal_write(seal, tree, work, NULL, NULL, &err), 0);
	assert_true(holds(seal, work));  /* the stat is as sealed */
	all_racy(seal);
	assert_false(holds(seal, work));  /* racy: the folder's names tell */
	sh("rm '%s/work/d/e/extra'", tmp);

	git_object_free(obj);
	git_repository_free(repo);
	sh("rm -rf '%s'", tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_racy),
	};
	int rc;

	git_libgit2_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return rc;
}
