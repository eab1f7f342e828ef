/*
 * test_vars.c — ${...} checking and expansion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/vars.h"

static const char *env(const char *name, void *ud)
{
	(void)ud;
	if (!strcmp(name, "REGISTRY"))
		return "127.0.0.1:5000";
	if (!strcmp(name, "EMPTY"))
		return "";
	return NULL;
}

static struct sp_vars full(void)
{
	struct sp_vars v;

	memset(&v, 0, sizeof(v));
	v.git_sha = "0123456789abcdef0123456789abcdef01234567";
	v.git_short_sha = "0123456";
	v.git_branch = "main";
	v.pipeline = "app";
	v.stage = "test";
	v.getenv = env;
	return v;
}

static void expect(const char *in, const char *want)
{
	struct sp_vars v = full();
	char *out = NULL;

	assert_int_equal(sp_vars_expand(&out, in, &v, NULL, NULL), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_expand(void **state)
{
	(void)state;
	expect("plain", "plain");
	expect("", "");
	expect("${env.REGISTRY}/app:${GIT_SHORT_SHA}", "127.0.0.1:5000/app:0123456");
	expect("${env.NOPE:-reg.io}/x", "reg.io/x");
	expect("${env.EMPTY:-dflt}", "dflt");
	expect("${env.NOPE:-}", "");
	expect("$HOME and $$ and $${GIT_SHA}", "$HOME and $$ and ${GIT_SHA}");
	expect("${PIPELINE}-${STAGE}@${GIT_BRANCH}", "app-test@main");
	expect("cost $5", "cost $5");
}

static void expect_fail(const struct sp_vars *v, const char *in, size_t off, const char *why)
{
	struct sp_error err = SP_ERROR_INIT;
	size_t bad = 999;
	char *out = (char *)1;

	assert_int_equal(sp_vars_expand(&out, in, v, &bad, &err), SP_ECONFIG);
	assert_null(out);
	assert_int_equal(bad, off);
	if (!strstr(err.msg, why))
		fail_msg("%s: got \"%s\"", in, err.msg);
}

static void test_expand_errors(void **state)
{
	struct sp_vars v = full(), none;

	(void)state;
	memset(&none, 0, sizeof(none));
	expect_fail(&v, "a:${GIT_TAG}", 2, "HEAD has no tag");
	expect_fail(&none, "x${GIT_SHA}", 1, "not a git repository");
	expect_fail(&v, "${env.NOPE}", 0, "environment variable NOPE is not set");
	expect_fail(&v, "ab${FOO}", 2, "unknown variable ${FOO}");
	expect_fail(&v, "${GIT_SHA", 0, "unterminated");
	expect_fail(&v, "${}", 0, "empty variable name");
	expect_fail(&v, "${env.1X}", 0, "invalid environment variable name");
}

static void test_sample(void **state)
{
	struct sp_vars v;
	char *out;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.sample = 1;
	assert_int_equal(sp_vars_expand(&out, "r/app:${GIT_SHORT_SHA}-${env.X}", &v, NULL, NULL), 0);
	assert_string_equal(out, "r/app:0123456-sample");
	free(out);
}

static void test_check(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	size_t off = 0;

	(void)state;
	assert_int_equal(sp_vars_check("${GIT_SHA} ${env.A:-b} $x $${y}", &off, &err), 0);
	assert_int_equal(sp_vars_check("ok ${GIT_SAH}", &off, &err), SP_ECONFIG);
	assert_int_equal(off, 3);
	assert_non_null(strstr(err.msg, "did you mean ${GIT_SHA}?"));
	assert_int_equal(sp_vars_check("${STAGE:-x}", &off, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "only allowed for ${env"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_errors),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
