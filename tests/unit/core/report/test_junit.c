/*
 * test_junit.c — reading pytest's JUnit XML.
 *
 * The fixtures ($SP_FIXTURES/pytest/NAME-junit.xml) are real reports of
 * the example app's tests run by pytest 7.2 in example:testing (see
 * tests/fixtures/pytest/README.md); next to each is pytest's terminal output
 * (NAME-output.txt).  For every fixture the counts must equal pytest's own
 * summary line ("1 failed, 17 passed, 1 error in 0.82s") and every test in
 * its "short test summary info" FAILED/ERROR lines must be listed with the
 * same id.  Then made-up reports: the test-id mapping, bounded lists and
 * messages, and hostile XML (entity bombs, external entities, malformed
 * or truncated documents, huge attributes and texts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/report/junit.h"
#include "core/base/xalloc.h"
#include "tests/unit/support/testutil.h"

/* pytest's summary line, e.g. "== 1 failed, 17 passed, 1 error in 0.82s ==". */
struct summary {
	unsigned long passed, failed, errors, skipped, xfailed, xpassed;
	double seconds;
	int no_tests;
};

static unsigned long read_count(const char *s, const char **end)
{
	unsigned long v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (unsigned long)(*s++ - '0');
	*end = s;
	return v;
}

static void parse_summary(const char *output, struct summary *sm)
{
	const char *line = NULL, *p = output, *q;
	char *in;

	memset(sm, 0, sizeof(*sm));
	/* The last line that starts with '=' is the summary. */
	while (*p) {
		if (*p == '=')
			line = p;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	if (!line)
		fail_msg("no summary line in pytest's output");
	sm->no_tests = strstr(line, "= no tests ran in ") != NULL;
	p = line;
	while (*p && *p != '\n') {
		if (*p >= '0' && *p <= '9' && p[-1] == ' ') {
			unsigned long n = read_count(p, &q);

			if (*q == ' ') {
				q++;
				if (strncmp(q, "passed", 6) == 0)
					sm->passed = n;
				else if (strncmp(q, "failed", 6) == 0)
					sm->failed = n;
				else if (strncmp(q, "error", 5) == 0)
					sm->errors = n;
				else if (strncmp(q, "skipped", 7) == 0)
					sm->skipped = n;
				else if (strncmp(q, "xfailed", 7) == 0)
					sm->xfailed = n;
				else if (strncmp(q, "xpassed", 7) == 0)
					sm->xpassed = n;
			}
			p = q;
			continue;
		}
		p++;
	}
	in = strstr(line, " in ");
	assert_non_null(in);
	sm->seconds = strtod(in + 4, NULL);
}

static int has_case(const struct sp_junit *r, enum sp_junit_kind kind, const char *id)
{
	size_t i;

	for (i = 0; i < r->ncases; i++)
		if (r->cases[i].kind == kind && strcmp(r->cases[i].id, id) == 0)
			return 1;
	return 0;
}

/*
 * Parses NAME-junit.xml (from the file and from memory) and checks it
 * against NAME-output.txt; leaves the file result in *r.
 */
static void check_fixture(const char *name, struct sp_junit *r)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit m;
	struct summary sm;
	char *xml_name = sp_xasprintf("%s-junit.xml", name);
	char *out_name = sp_xasprintf("%s-output.txt", name);
	char *path = sp_test_fixture_path("pytest", xml_name);
	size_t len, olen;
	char *xml = sp_test_read_fixture("pytest", xml_name, &len);
	char *output = sp_test_read_fixture("pytest", out_name, &olen);
	const char *p;

	if (sp_junit_parse_file(r, path, &err) < 0)
		fail_msg("%s: %s", name, err.msg);
	assert_int_equal(sp_junit_parse_mem(&m, xml, len, xml_name, &err), 0);
	assert_int_equal(m.tests, r->tests);
	assert_int_equal(m.failed, r->failed);
	assert_int_equal(m.ncases, r->ncases);
	sp_junit_release(&m);

	parse_summary(output, &sm);
	assert_int_equal(r->passed, sm.passed + sm.xpassed);
	assert_int_equal(r->failed, sm.failed);
	assert_int_equal(r->errors, sm.errors);
	assert_int_equal(r->skipped, sm.skipped);
	assert_int_equal(r->xfailed, sm.xfailed);
	assert_int_equal(r->tests, r->passed + r->failed + r->errors + r->skipped + r->xfailed);
	assert_int_equal(sm.no_tests, r->tests == 0);
	assert_true(r->time >= 0 && r->time <= sm.seconds + 0.1);
	assert_int_equal(r->ncases, r->failed + r->errors);

	/* "FAILED id - msg" / "ERROR id - msg" / "ERROR id" lines name our cases. */
	for (p = output; (p = strchr(p, '\n')) != NULL;) {
		char id[512];
		size_t n;
		int failed;

		p++;
		failed = strncmp(p, "FAILED ", 7) == 0;
		if (!failed && strncmp(p, "ERROR ", 6) != 0)
			continue;
		p += failed ? 7 : 6;
		n = strcspn(p, " \n");
		assert_true(n < sizeof(id));
		memcpy(id, p, n);
		id[n] = '\0';
		if (!has_case(r, failed ? SP_JUNIT_FAILURE : SP_JUNIT_ERROR, id))
			fail_msg("%s: pytest's summary lists %s, not found", name, id);
	}
	free(xml_name);
	free(out_name);
	free(path);
	free(xml);
	free(output);
}

static void test_fixture_pass(void **state)
{
	struct sp_junit r;

	(void)state;
	check_fixture("pass", &r);
	assert_int_equal(r.tests, 17);
	assert_int_equal(r.passed, 17);
	assert_int_equal(r.failed + r.errors + r.skipped + r.xfailed, 0);
	assert_int_equal(r.ncases, 0);
	assert_true(r.time > 0.1);
	sp_junit_release(&r);
}

static void test_fixture_fail(void **state)
{
	struct sp_junit r;
	const struct sp_junit_case *c;

	(void)state;
	check_fixture("fail", &r);
	assert_int_equal(r.tests, 19);
	assert_int_equal(r.passed, 17);
	assert_int_equal(r.failed, 1);
	assert_int_equal(r.errors, 1);
	assert_int_equal(r.ncases, 2);
	assert_int_equal(r.cases_omitted, 0);

	c = &r.cases[0];
	assert_int_equal(c->kind, SP_JUNIT_FAILURE);
	assert_string_equal(c->id, "tests/test_zz_fail.py::TestPricing::test_price_is_doubled");
	assert_string_equal(c->message, "AssertionError: price should be doubled");
	assert_non_null(strstr(c->detail, "E       assert 2.5 == 5.0\n"));
	assert_non_null(strstr(c->detail, "tests/test_zz_fail.py:6: AssertionError"));
	assert_non_null(strstr(c->detail, ">       assert widget[\"price\"] == 5.0"));

	c = &r.cases[1];
	assert_int_equal(c->kind, SP_JUNIT_ERROR);
	assert_string_equal(c->id, "tests/test_zz_fail.py::test_uses_database");
	assert_string_equal(c->message,
			    "failed on setup with \"RuntimeError: database is not reachable\"");
	assert_non_null(strstr(c->detail, "E       RuntimeError: database is not reachable"));
	sp_junit_release(&r);
}

static void test_fixture_skip(void **state)
{
	struct sp_junit r;

	(void)state;
	check_fixture("skip", &r);
	assert_int_equal(r.tests, 20);
	assert_int_equal(r.passed, 17);
	assert_int_equal(r.skipped, 2);
	assert_int_equal(r.xfailed, 1);
	assert_int_equal(r.ncases, 0);
	sp_junit_release(&r);
}

static void test_fixture_empty(void **state)
{
	struct sp_junit r;

	(void)state;
	check_fixture("empty", &r);
	assert_int_equal(r.tests, 0);
	assert_int_equal(r.passed, 0);
	sp_junit_release(&r);
	check_fixture("empty-gated", &r);
	assert_int_equal(r.tests, 0);
	sp_junit_release(&r);
}

static void test_fixture_collect_error(void **state)
{
	struct sp_junit r;

	(void)state;
	check_fixture("collect", &r);
	assert_int_equal(r.tests, 1);
	assert_int_equal(r.errors, 1);
	assert_int_equal(r.passed, 0);
	assert_string_equal(r.cases[0].id, "tests/test_zz_broken.py");
	/* "collection failure" is replaced by the exception from the traceback. */
	assert_string_equal(r.cases[0].message,
			    "ImportError: cannot import name 'no_such_name' from 'app.main' (/app/app/main.py)");
	sp_junit_release(&r);
}

static void test_fixture_lowcov(void **state)
{
	struct sp_junit r;

	(void)state;
	check_fixture("lowcov", &r);
	assert_int_equal(r.tests, 4);
	assert_int_equal(r.passed, 4);
	sp_junit_release(&r);
}

static void expect_id(const char *classname, const char *name, const char *want)
{
	char *id = sp_junit_test_id(classname, name);

	assert_string_equal(id, want);
	free(id);
}

static void test_ids(void **state)
{
	(void)state;
	expect_id("tests.test_items", "test_create", "tests/test_items.py::test_create");
	expect_id("tests.test_items.TestX", "test_create", "tests/test_items.py::TestX::test_create");
	expect_id("tests.test_items.TestX.TestInner", "test_y[1.5-a.b]",
		  "tests/test_items.py::TestX::TestInner::test_y[1.5-a.b]");
	expect_id("test_top", "test_a", "test_top.py::test_a");
	expect_id("pkg.sub.items_test.TestZ", "test_b", "pkg/sub/items_test.py::TestZ::test_b");
	/* A folder named like a test module: the rightmost one is the module. */
	expect_id("test_suite.unit.test_db", "test_c", "test_suite/unit/test_db.py::test_c");
	/* No test_* part (custom python_files): trailing Capitalised parts are classes. */
	expect_id("checks.items.ItemChecks", "test_d", "checks/items.py::ItemChecks::test_d");
	expect_id("checks.items", "test_d", "checks/items.py::test_d");
	/* A collection error: classname empty, name is the module. */
	expect_id("", "tests.test_broken", "tests/test_broken.py");
	expect_id(NULL, "tests.sub.test_x", "tests/sub/test_x.py");
	expect_id("", "", "");
	expect_id(NULL, NULL, "");
}

static int parse(const char *doc, struct sp_junit *r, struct sp_error *err)
{
	return sp_junit_parse_mem(r, doc, strlen(doc), "t.xml", err);
}

static void test_shapes(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit r;

	(void)state;
	/* A bare <testsuite> (older pytest), with whitespace, CDATA, and properties. */
	assert_int_equal(parse("<?xml version=\"1.0\"?>\n"
			       "<testsuite name=\"pytest\" tests=\"3\" time=\"1.5\">\n"
			       "  <properties><property name=\"x\" value=\"y\"/></properties>\n"
			       "  <testcase classname=\"t.test_a\" name=\"test_1\" time=\"0.5\">\n"
			       "    <system-out>noise</system-out>\n"
			       "  </testcase>\n"
			       "  <testcase classname=\"t.test_a\" name=\"test_2\">\n"
			       "    <failure message=\"boom\"><![CDATA[line 1\nE   boom <here>\n]]></failure>\n"
			       "    <error message=\"teardown broke\">in teardown</error>\n"
			       "    <system-err>more noise</system-err>\n"
			       "  </testcase>\n"
			       "  <testcase classname=\"t.test_a\" name=\"test_3\"><skipped/></testcase>\n"
			       "</testsuite>\n", &r, &err), 0);
	assert_int_equal(r.tests, 3);
	assert_int_equal(r.passed, 1);
	/* Failed in the test and errored in teardown: pytest says "1 failed, 1 error". */
	assert_int_equal(r.failed, 1);
	assert_int_equal(r.errors, 1);
	assert_int_equal(r.skipped, 1);
	assert_true(r.time > 1.49 && r.time < 1.51);
	assert_int_equal(r.ncases, 2);
	assert_string_equal(r.cases[0].id, "t/test_a.py::test_2");
	assert_string_equal(r.cases[0].message, "boom");
	assert_string_equal(r.cases[0].detail, "line 1\nE   boom <here>");
	assert_int_equal(r.cases[1].kind, SP_JUNIT_ERROR);
	assert_string_equal(r.cases[1].detail, "in teardown");
	sp_junit_release(&r);

	/* Several suites: times add up; an empty <failure/> without message. */
	assert_int_equal(parse("<testsuites>"
			       "<testsuite time=\"1.25\"><testcase classname=\"a.test_x\" name=\"t\"><failure/></testcase></testsuite>"
			       "<testsuite time=\"2e0\"/>"
			       "<testsuite time=\"0.75\"><testcase classname=\"a.test_y\" name=\"u\"/></testsuite>"
			       "</testsuites>", &r, &err), 0);
	assert_int_equal(r.tests, 2);
	assert_int_equal(r.failed, 1);
	assert_int_equal(r.passed, 1);
	assert_true(r.time > 3.99 && r.time < 4.01);
	assert_string_equal(r.cases[0].message, "");
	assert_string_equal(r.cases[0].detail, "");
	sp_junit_release(&r);

	/* No suite time: the tests' times are summed. */
	assert_int_equal(parse("<testsuite><testcase name=\"a\" time=\"0.5\"/>"
			       "<testcase name=\"b\" time=\"0.25\"/><testcase name=\"c\" time=\"junk\"/></testsuite>",
			       &r, &err), 0);
	assert_true(r.time > 0.74 && r.time < 0.76);
	assert_int_equal(r.passed, 3);
	sp_junit_release(&r);
}

/* Only SP_JUNIT_MAX_CASES are kept; counts go on. */
static void test_many_failures(void **state)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit r;
	int i;

	(void)state;
	sp_buf_addstr(&b, "<testsuites><testsuite>");
	for (i = 0; i < 200; i++)
		sp_buf_addf(&b, "<testcase classname=\"tests.test_many\" name=\"test_%d\">"
			    "<%s message=\"bad %d\">trace</%s></testcase>",
			    i, i % 3 ? "failure" : "error", i, i % 3 ? "failure" : "error");
	for (i = 0; i < 100000; i++)
		sp_buf_addf(&b, "<testcase classname=\"tests.test_many\" name=\"test_ok_%d\" time=\"0.001\"/>", i);
	sp_buf_addstr(&b, "</testsuite></testsuites>");
	assert_int_equal(sp_junit_parse_mem(&r, b.data, b.len, "many.xml", &err), 0);
	assert_int_equal(r.tests, 100200);
	assert_int_equal(r.passed, 100000);
	assert_int_equal(r.failed + r.errors, 200);
	assert_int_equal(r.errors, 67);
	assert_int_equal(r.ncases, SP_JUNIT_MAX_CASES);
	assert_int_equal(r.cases_omitted, 200 - SP_JUNIT_MAX_CASES);
	assert_string_equal(r.cases[49].id, "tests/test_many.py::test_49");
	assert_string_equal(r.cases[49].message, "bad 49");
	sp_junit_release(&r);
	sp_buf_release(&b);
}

/* Messages: first line, ≤ SP_JUNIT_MESSAGE_MAX bytes, UTF-8 kept whole. */
static void test_message_bounds(void **state)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit r;
	const char *m;
	size_t i, lines;
	int k;

	(void)state;
	sp_buf_addstr(&b, "<testsuite><testcase classname=\"tests.test_u\" name=\"test_é\"><failure message=\"");
	for (i = 0; i < 400; i++)
		sp_buf_addstr(&b, "é"); /* 800 bytes */
	sp_buf_addstr(&b, "&#10;second line\">");
	for (k = 0; k < 5000; k++)
		sp_buf_addf(&b, "traceback line %d ✓\n", k);
	sp_buf_addstr(&b, "</failure></testcase></testsuite>");
	assert_int_equal(sp_junit_parse_mem(&r, b.data, b.len, "u.xml", &err), 0);
	m = r.cases[0].message;
	assert_true(strlen(m) <= SP_JUNIT_MESSAGE_MAX);
	assert_true(strlen(m) > SP_JUNIT_MESSAGE_MAX - 10);
	assert_null(strstr(m, "second"));
	assert_string_equal(m + strlen(m) - 5, "\xc3\xa9...");
	assert_string_equal(r.cases[0].id, "tests/test_u.py::test_é");
	/* Detail: the last lines only. */
	assert_true(strlen(r.cases[0].detail) <= SP_JUNIT_DETAIL_MAX);
	for (lines = 1, m = r.cases[0].detail; (m = strchr(m, '\n')) != NULL; m++)
		lines++;
	assert_int_equal(lines, SP_JUNIT_DETAIL_LINES);
	assert_string_equal(r.cases[0].detail + strlen(r.cases[0].detail) - 23,
			    "traceback line 4999 \xe2\x9c\x93");
	sp_junit_release(&r);
	sp_buf_release(&b);
}

static void expect_refused(const char *doc, size_t len, const char *what)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit r;

	assert_int_equal(sp_junit_parse_mem(&r, doc, len, "bad.xml", &err), SP_ERROR);
	if (!strstr(err.msg, what))
		fail_msg("expected \"%s\" in \"%s\"", what, err.msg);
	/* Left released. */
	assert_int_equal(r.tests, 0);
	assert_null(r.cases);
}

static void test_hostile(void **state)
{
	static const char lol[] =
		SP_TEST_LOL_DOCTYPE
		"<testsuite><testcase classname=\"a\" name=\"b\"><failure message=\"&lol9;\">&lol9;"
		"</failure></testcase></testsuite>";
	static const char lol_small[] =
		"<!DOCTYPE t [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]>"
		"<testsuite><testcase classname=\"a\" name=\"b\"><failure message=\"x\">&b;</failure></testcase></testsuite>";
	static const char xxe[] =
		"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
		"<testsuite><testcase classname=\"a\" name=\"b\"><failure message=\"x\">&e;</failure>"
		"</testcase></testsuite>";
	static const char dtd[] =
		"<?xml version=\"1.0\"?><!DOCTYPE testsuite SYSTEM \"http://127.0.0.1:9/junit.dtd\">"
		"<testsuite/>";
	static const char undeclared[] =
		"<testsuite><testcase classname=\"a\" name=\"b\"><failure message=\"&nope;\"/></testcase></testsuite>";
	static const char mismatch[] =
		"<testsuite><testcase classname=\"a\" name=\"b\">\n<failure message=\"x\">oops</testcase></testsuite>";
	static const char truncated[] = "<testsuites><testsuite><testcase classname=\"a\" name=\"b\"/>";
	struct sp_buf b = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit r;
	size_t i;

	(void)state;
	expect_refused(lol, sizeof(lol) - 1, "bad.xml:");
	expect_refused(lol_small, sizeof(lol_small) - 1, "DOCTYPE");
	expect_refused(xxe, sizeof(xxe) - 1, "DOCTYPE");
	expect_refused(dtd, sizeof(dtd) - 1, "DOCTYPE");
	expect_refused(undeclared, sizeof(undeclared) - 1, "Entity 'nope' not defined");
	expect_refused(mismatch, sizeof(mismatch) - 1, "bad.xml:2: Opening and ending tag mismatch");
	expect_refused(truncated, sizeof(truncated) - 1, "bad.xml:1:");
	expect_refused("", 0, "empty");
	expect_refused("junk", 4, "bad.xml:1:");
	expect_refused("<coverage line-rate=\"1\"/>", 25, "not a JUnit report (root element <coverage>");
	expect_refused("<a/>\0<b/>", 9, "bad.xml:1:");

	/* A 5 MB message attribute is read and cut; past libxml2's 10 MB limit it is an error. */
	sp_buf_addstr(&b, "<testsuite><testcase classname=\"a.test_b\" name=\"c\"><failure message=\"");
	for (i = 0; i < 5u * 1024 * 1024 / 64; i++)
		sp_buf_addstr(&b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	sp_buf_addstr(&b, "\">x</failure></testcase></testsuite>");
	assert_int_equal(sp_junit_parse_mem(&r, b.data, b.len, "big.xml", &err), 0);
	assert_int_equal(strlen(r.cases[0].message), SP_JUNIT_MESSAGE_MAX);
	sp_junit_release(&r);
	sp_buf_reset(&b);
	sp_buf_addstr(&b, "<testsuite><testcase classname=\"a.test_b\" name=\"c\"><failure message=\"");
	for (i = 0; i < 12u * 1024 * 1024 / 64; i++)
		sp_buf_addstr(&b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	sp_buf_addstr(&b, "\">x</failure></testcase></testsuite>");
	expect_refused(b.data, b.len, "bad.xml:1: internal error: Huge input lookup");
	/* 8 MB of traceback text is read; the detail keeps its tail. */
	sp_buf_reset(&b);
	sp_buf_addstr(&b, "<testsuite><testcase classname=\"a.test_b\" name=\"c\"><failure message=\"m\">");
	for (i = 0; i < 8u * 1024 * 1024 / 64; i++)
		sp_buf_addstr(&b, "Text Text Text Text Text Text Text Text Text Text Text Text Tex\n");
	sp_buf_addstr(&b, "last line</failure></testcase></testsuite>");
	assert_int_equal(sp_junit_parse_mem(&r, b.data, b.len, "text.xml", &err), 0);
	assert_true(strlen(r.cases[0].detail) <= SP_JUNIT_DETAIL_MAX);
	assert_string_equal(r.cases[0].detail + strlen(r.cases[0].detail) - 9, "last line");
	sp_junit_release(&r);
	sp_buf_release(&b);
}

static void test_files(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit r;
	char *dir = sp_test_tempdir("sp-junit-"), *file, *link, *empty, *target;

	(void)state;
	file = sp_xasprintf("%s/junit.xml", dir);
	link = sp_xasprintf("%s/link.xml", dir);
	empty = sp_xasprintf("%s/empty.xml", dir);
	assert_int_equal(sp_junit_parse_file(&r, file, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "junit.xml: No such file"));
	sp_test_write_file(file, "<testsuite><testcase name=\"x\"/></testsuite>");
	assert_int_equal(sp_junit_parse_file(&r, file, &err), 0);
	assert_int_equal(r.passed, 1);
	sp_junit_release(&r);
	/* Reports are never read through a symlink (it could point at the host). */
	target = sp_test_fixture_path("pytest", "pass-junit.xml");
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(sp_junit_parse_file(&r, link, &err), SP_ERROR);
	assert_int_equal(sp_junit_parse_file(&r, dir, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "not a regular file"));
	sp_test_write_file(empty, "");
	assert_int_equal(sp_junit_parse_file(&r, empty, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "empty"));
	sp_test_rmtree(dir);
	free(dir);
	free(file);
	free(link);
	free(empty);
	free(target);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_pass),
		cmocka_unit_test(test_fixture_fail),
		cmocka_unit_test(test_fixture_skip),
		cmocka_unit_test(test_fixture_empty),
		cmocka_unit_test(test_fixture_collect_error),
		cmocka_unit_test(test_fixture_lowcov),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_many_failures),
		cmocka_unit_test(test_message_bounds),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
