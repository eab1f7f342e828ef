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
#include <time.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/pipeline/vars.h"
#include "core/base/xalloc.h"

/* "L" and 299 more characters: longer than any buffer a name went through. */
#define LONG_NAME_LEN 300

static const char *env(const char *name, void *ud)
{
	(void)ud;
	if (!strcmp(name, "REGISTRY"))
		return "127.0.0.1:5000";
	if (!strcmp(name, "EMPTY"))
		return "";
	if (strlen(name) == LONG_NAME_LEN && name[0] == 'L' &&
	    strspn(name + 1, "X") == LONG_NAME_LEN - 1)
		return "long-value";
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

/* "L" + "XXX...": a valid environment variable name of len characters. */
static char *long_name(size_t len, char last)
{
	char *name = sp_xmalloc(len + 1);

	name[0] = 'L';
	memset(name + 1, 'X', len - 1);
	name[len - 1] = last;
	name[len] = '\0';
	return name;
}

static void test_long_env_name(void **state)
{
	struct sp_vars v = full();
	struct sp_error err = SP_ERROR_INIT;
	char *name = long_name(LONG_NAME_LEN, 'X'), *other = long_name(LONG_NAME_LEN, 'Y');
	char *in, *out = NULL;

	(void)state;
	/* looked up whole, not cut at a buffer's size */
	in = sp_xasprintf("a-${env.%s}-b", name);
	assert_int_equal(sp_vars_check(in, NULL, &err), 0);
	assert_int_equal(sp_vars_expand(&out, in, &v, NULL, &err), 0);
	assert_string_equal(out, "a-long-value-b");
	free(out);
	free(in);

	/* a name that differs only in its last character: unset */
	in = sp_xasprintf("${env.%s:-dflt}", other);
	assert_int_equal(sp_vars_expand(&out, in, &v, NULL, &err), 0);
	assert_string_equal(out, "dflt");
	free(out);
	free(in);
	in = sp_xasprintf("x${env.%s}", other);
	expect_fail(&v, in, 1, "environment variable LXXXX");
	free(in);

	/* an unknown long name: the message clips it */
	in = sp_xasprintf("${%s}", name);
	assert_int_equal(sp_vars_check(in, NULL, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "unknown variable ${LXXX"));
	assert_null(strstr(err.msg, name));
	free(in);
	free(name);
	free(other);
}

/* Many references in one value: linear, where ":-" was searched to the end
 * of the string for each (a 3.8 MB file took 1.2 s). */
static void test_many_refs_linear(void **state)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_vars v = full();
	struct sp_error err = SP_ERROR_INIT;
	char *in, *out = NULL;
	size_t i, n = 100000;
	clock_t start;
	double secs;

	(void)state;
	for (i = 0; i < n; i++)
		sp_buf_addstr(&b, "${GIT_SHORT_SHA} ");
	sp_buf_addstr(&b, "${env.NOPE:-end}");
	in = sp_buf_detach(&b, NULL);
	start = clock();
	assert_int_equal(sp_vars_check(in, NULL, &err), 0);
	assert_int_equal(sp_vars_expand(&out, in, &v, NULL, &err), 0);
	secs = (double)(clock() - start) / CLOCKS_PER_SEC;
	assert_int_equal(strlen(out), n * 8 + 3);
	assert_string_equal(out + n * 8, "end");
	if (secs > 1.0)
		fail_msg("checking and expanding %zu references took %.2f s", n, secs);
	free(out);
	free(in);
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

static void test_matrix(void **state)
{
	static const char *const names[] = { "PY", "DB" };
	static const char *const values[] = { "3.11", "postgres" };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_vars v = full();
	char *out = NULL;
	size_t off = 0;

	(void)state;
	v.matrix_names = names;
	v.matrix_values = values;
	v.nmatrix = 2;
	assert_int_equal(sp_vars_expand(&out, "py${matrix.PY}-${matrix.DB} ${STAGE}", &v, NULL,
					NULL), 0);
	assert_string_equal(out, "py3.11-postgres test");
	free(out);
	/* a key the stage does not have is an error, also when sampling */
	assert_int_equal(sp_vars_expand(&out, "x ${matrix.P}", &v, &off, &err), SP_ECONFIG);
	assert_null(out);
	assert_int_equal(off, 2);
	assert_non_null(strstr(err.msg, "no matrix key P"));
	v.sample = 1;
	v.nmatrix = 0;
	assert_int_equal(sp_vars_expand(&out, "${matrix.PY}", &v, NULL, &err), SP_ECONFIG);
	/* checks: the key's syntax, no default */
	assert_int_equal(sp_vars_check("${matrix.PY}", &off, &err), 0);
	assert_int_equal(sp_vars_check("${matrix.3X}", &off, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "invalid matrix key"));
	assert_int_equal(sp_vars_check("${matrix.PY:-3}", &off, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "only allowed for ${env"));
	assert_int_equal(sp_vars_check("${matrix.}", &off, &err), SP_ECONFIG);
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

static void test_uses_env(void **state)
{
	size_t off = 99;

	(void)state;
	assert_true(sp_vars_uses_env("${env.TOKEN}", "TOKEN", &off));
	assert_int_equal(off, 0);
	assert_true(sp_vars_uses_env("a-${GIT_SHA}-${env.TOKEN:-x}", "TOKEN", &off));
	assert_int_equal(off, 13);
	assert_false(sp_vars_uses_env("${env.TOKEN2}", "TOKEN", NULL));
	assert_false(sp_vars_uses_env("${env.TOK}", "TOKEN", NULL));
	assert_false(sp_vars_uses_env("$${env.TOKEN}", "TOKEN", NULL));
	assert_false(sp_vars_uses_env("TOKEN $TOKEN", "TOKEN", NULL));
	assert_false(sp_vars_uses_env("${env.A:-${env.TOKEN}", "TOKEN", NULL));
	/* a prefix: any ${matrix.KEY}, never an escaped one */
	assert_true(sp_vars_uses("x-${matrix.PY}", "matrix.", false, &off));
	assert_int_equal(off, 2);
	assert_false(sp_vars_uses("$${matrix.PY}", "matrix.", false, NULL));
	assert_false(sp_vars_uses("${env.matrix.PY}", "matrix.", false, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_errors),
		cmocka_unit_test(test_long_env_name),
		cmocka_unit_test(test_many_refs_linear),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_uses_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
