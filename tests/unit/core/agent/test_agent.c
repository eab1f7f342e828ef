/*
 * test_agent.c — the checks of core/agent/agent.c that need no server:
 * agent names and labels, and sp_agent_start refusing bad options.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/agent/agent.h"
#include "core/pipeline/pipeline.h"
#include "core/base/error.h"

static void test_names(void **state)
{
	char long_name[70];

	(void)state;
	assert_true(sp_agent_name_valid("build-1"));
	assert_true(sp_agent_name_valid("a"));
	assert_true(sp_agent_name_valid("0.node_b-c"));
	assert_false(sp_agent_name_valid(""));
	assert_false(sp_agent_name_valid("Build-1"));
	assert_false(sp_agent_name_valid("-x"));
	assert_false(sp_agent_name_valid(".x"));
	assert_false(sp_agent_name_valid("_x"));
	assert_false(sp_agent_name_valid("a b"));
	assert_false(sp_agent_name_valid("a/b"));
	assert_false(sp_agent_name_valid("a=b"));
	memset(long_name, 'a', sizeof(long_name));
	long_name[63] = '\0';
	assert_true(sp_agent_name_valid(long_name));
	long_name[63] = 'a';
	long_name[64] = '\0';
	assert_false(sp_agent_name_valid(long_name));
}

static void test_labels(void **state)
{
	(void)state;
	assert_true(sp_label_valid("linux"));
	assert_true(sp_label_valid("gpu.big_1-x"));
	/* the runs_on rule: lower case, at most 63 */
	assert_false(sp_label_valid("GPU"));
	assert_true(sp_label_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(sp_label_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(sp_label_valid(""));
	assert_false(sp_label_valid("a,b"));
	assert_false(sp_label_valid("a b"));
	assert_false(sp_label_valid("\"x\""));
}

static void start_fails(const struct sp_agent_opts *o, const char *msg)
{
	struct sp_agent *a = (struct sp_agent *)1;
	struct sp_error err = SP_ERROR_INIT;

	assert_int_equal(sp_agent_start(&a, o, &err), SP_ECONFIG);
	assert_null(a);
	if (!strstr(err.msg, msg))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, msg);
}

static void test_start_checks(void **state)
{
	const char *bad_labels[] = { "ok", "not ok", NULL };
	struct sp_agent_opts o;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.server = "ftp://x";
	o.token = "t";
	o.name = "n";
	o.capacity = 1;
	o.exe = "/bin/true";
	start_fails(&o, "http:// or https://");
	o.server = "https://x";
	o.token = "";
	start_fails(&o, "token");
	o.token = "t";
	o.name = "N";
	start_fails(&o, "agent name");
	o.name = "n";
	o.capacity = 0;
	start_fails(&o, "capacity");
	o.capacity = 1;
	o.labels = bad_labels;
	start_fails(&o, "invalid label \"not ok\"");
	/* free of NULL is fine */
	sp_agent_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_start_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
