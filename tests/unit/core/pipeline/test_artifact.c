/*
 * test_artifact.c — artifact paths: the loader's checks, the split into
 * the folder asked of the engine and the glob, and the entry filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/pipeline/artifact.h"

static void test_check(void **state)
{
	static const char *const good[] = {
		"htmlcov/", "dist/*.whl", "./coverage.xml", "a//b", "reports/**/*.xml", ".hidden",
		"a..b", "..a", "[ab].txt",
	};
	static const char *const bad[] = {
		"", "/etc", "..", "../x", "a/../b", "a/..", ".", "./", "a\\b", "a\nb", "\x01",
	};
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		why = NULL;
		if (!sp_artifact_check(good[i], &why))
			fail_msg("%s refused: %s", good[i], why);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (sp_artifact_check(bad[i], &why))
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(why);
	}
}

static void expect_split(const char *path, const char *base, const char *rest)
{
	char *b = NULL, *r = NULL;

	sp_artifact_split(path, &b, &r);
	assert_string_equal(b, base);
	if (rest)
		assert_string_equal(r, rest);
	else
		assert_null(r);
	free(b);
	free(r);
}

static void test_split(void **state)
{
	(void)state;
	expect_split("htmlcov/", "htmlcov", NULL);
	expect_split("./reports//junit.xml", "reports/junit.xml", NULL);
	expect_split("dist/*.whl", "dist", "*.whl");
	expect_split("*.whl", "", "*.whl");
	expect_split("a/b/c?/d/*.txt", "a/b", "c?/d/*.txt");
	expect_split("build/[ab]/x", "build", "[ab]/x");
	expect_split("src/**/*.so", "src", "**/*.so");
}

static void test_match(void **state)
{
	(void)state;
	/* no glob: everything in the archive of the path */
	assert_true(sp_artifact_match(NULL, "anything/at/all"));
	/* a star stays in its segment */
	assert_true(sp_artifact_match("*.whl", "app-1.0-py3-none-any.whl"));
	assert_false(sp_artifact_match("*.whl", "app-1.0.tar.gz"));
	assert_false(sp_artifact_match("*.whl", "sub/app.whl"));
	/* a matched folder comes with what is inside */
	assert_true(sp_artifact_match("cov*", "coverage_html/index.html"));
	assert_true(sp_artifact_match("cov*", "coverage_html/d/e.js"));
	assert_true(sp_artifact_match("cov*", "coverage_html"));
	assert_false(sp_artifact_match("cov*", "html/coverage.js"));
	/* two stars cross folders */
	assert_true(sp_artifact_match("**/*.xml", "a/b/junit.xml"));
	assert_true(sp_artifact_match("**/*.xml", "junit.xml"));
	assert_false(sp_artifact_match("**/*.xml", "a/b/junit.txt"));
	/* folders on the way are not kept by themselves */
	assert_false(sp_artifact_match("d/*.txt", "d"));
	assert_true(sp_artifact_match("d/*.txt", "d/x.txt"));
	assert_true(sp_artifact_match("[ab]", "a/x"));
	assert_false(sp_artifact_match("[ab]", "c/x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
