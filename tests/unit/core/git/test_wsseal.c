/*
 * test_wsseal.c — a workspace's seal as a file: what parses and what does
 * not.  (What a seal proves about a tree, and the checkouts built on it,
 * are test_checkout.c's test_workspace_seal, on real trees.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
	};
	int rc;

	git_libgit2_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return rc;
}
