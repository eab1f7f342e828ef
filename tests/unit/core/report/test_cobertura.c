/*
 * test_cobertura.c — reading coverage.py's Cobertura XML.
 *
 * The fixtures ($SP_FIXTURES/pytest/NAME-coverage.xml) are real reports of
 * the example app (coverage.py 6.5 through pytest-cov 4.0, branch coverage
 * on, see tests/fixtures/pytest/README.md).  For each, total_percent must be
 * the "Total coverage: NN.NN%" pytest-cov printed (NAME-output.txt) and the
 * per-file counts must add up to the totals.  Then made-up reports: other
 * writers' shapes (line-rate only), bounds, and hostile XML.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/report/cobertura.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "tests/unit/support/testutil.h"

/* Formats like pytest-cov's "Total coverage: 59.26%". */
static void assert_percent(double got, const char *want)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.2f", got);
	assert_string_equal(buf, want);
}

/*
 * Parses NAME-coverage.xml and checks it against pytest-cov's output in
 * NAME-output.txt; leaves the result in *c.
 */
static void check_fixture(const char *name, struct sp_cobertura *c)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_cobertura m;
	char *xml_name = sp_xasprintf("%s-coverage.xml", name);
	char *out_name = sp_xasprintf("%s-output.txt", name);
	char *path = sp_test_fixture_path("pytest", xml_name);
	size_t len, olen, i;
	char *xml = sp_test_read_fixture("pytest", xml_name, &len);
	char *output = sp_test_read_fixture("pytest", out_name, &olen);
	unsigned long lv = 0, lc = 0;
	const char *total;
	char want[32];
	size_t n;

	if (sp_cobertura_parse_file(c, path, &err) < 0)
		fail_msg("%s: %s", name, err.msg);
	assert_int_equal(sp_cobertura_parse_mem(&m, xml, len, xml_name, &err), 0);
	assert_true(m.total_percent == c->total_percent);
	assert_int_equal(m.nfiles, c->nfiles);
	sp_cobertura_release(&m);

	/* pytest-cov prints the total only when a fail_under gate is set. */
	total = strstr(output, "Total coverage: ");
	if (total) {
		total += 16;
		n = strcspn(total, "%");
		assert_true(n < sizeof(want));
		memcpy(want, total, n);
		want[n] = '\0';
		assert_percent(c->total_percent, want);
	}

	assert_true(c->has_line_counts);
	assert_true(c->has_branches);
	for (i = 0; i < c->nfiles; i++) {
		lv += c->files[i].lines_valid;
		lc += c->files[i].lines_covered;
	}
	assert_int_equal(lv, c->lines_valid);
	assert_int_equal(lc, c->lines_covered);
	assert_int_equal(c->files_omitted, 0);
	free(xml_name);
	free(out_name);
	free(path);
	free(xml);
	free(output);
}

static void test_fixture_pass(void **state)
{
	struct sp_cobertura c;

	(void)state;
	check_fixture("pass", &c);
	assert_int_equal(c.lines_valid, 118);
	assert_int_equal(c.lines_covered, 118);
	assert_int_equal(c.branches_valid, 44);
	assert_int_equal(c.branches_covered, 44);
	assert_percent(c.line_percent, "100.00");
	assert_percent(c.branch_percent, "100.00");
	assert_int_equal(c.nfiles, 4);
	assert_string_equal(c.files[0].filename, "__init__.py");
	assert_string_equal(c.files[3].filename, "store.py");
	sp_cobertura_release(&c);
	check_fixture("fail", &c);
	assert_percent(c.total_percent, "100.00");
	sp_cobertura_release(&c);
	check_fixture("skip", &c);
	assert_percent(c.total_percent, "100.00");
	sp_cobertura_release(&c);
}

static void test_fixture_lowcov(void **state)
{
	struct sp_cobertura c;

	(void)state;
	check_fixture("lowcov", &c);
	assert_int_equal(c.lines_valid, 118);
	assert_int_equal(c.lines_covered, 78);
	assert_int_equal(c.branches_valid, 44);
	assert_int_equal(c.branches_covered, 18);
	/* Lines alone: 66.10%; coverage.py's total with branches: 59.26%. */
	assert_percent(c.line_percent, "66.10");
	assert_percent(c.branch_percent, "40.91");
	assert_percent(c.total_percent, "59.26");
	assert_string_equal(c.files[1].filename, "main.py");
	assert_int_equal(c.files[1].lines_valid, 50);
	assert_int_equal(c.files[1].lines_covered, 33);
	assert_percent(c.files[1].line_percent, "66.00");
	assert_string_equal(c.files[3].filename, "store.py");
	assert_percent(c.files[3].line_percent, "47.73");
	sp_cobertura_release(&c);
}

static void test_fixture_no_tests(void **state)
{
	struct sp_cobertura c;

	(void)state;
	/* Only the import-time lines ran. */
	check_fixture("empty", &c);
	assert_int_equal(c.lines_covered, 66);
	assert_percent(c.line_percent, "55.93");
	assert_percent(c.total_percent, "50.62");
	sp_cobertura_release(&c);
	check_fixture("empty-gated", &c);
	assert_percent(c.total_percent, "50.62");
	sp_cobertura_release(&c);
	check_fixture("collect", &c);
	assert_percent(c.total_percent, "50.62");
	sp_cobertura_release(&c);
}

static int parse(const char *doc, struct sp_cobertura *c, struct sp_error *err)
{
	return sp_cobertura_parse_mem(c, doc, strlen(doc), "c.xml", err);
}

static void test_shapes(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_cobertura c;

	(void)state;
	/* No branch coverage: total is the line figure. */
	assert_int_equal(parse("<coverage lines-valid=\"8\" lines-covered=\"6\" line-rate=\"0.75\" "
			       "branches-valid=\"0\" branches-covered=\"0\" branch-rate=\"0\"/>", &c, &err), 0);
	assert_false(c.has_branches);
	assert_percent(c.line_percent, "75.00");
	assert_percent(c.total_percent, "75.00");
	assert_percent(c.branch_percent, "0.00");
	sp_cobertura_release(&c);

	/* Another writer: only rates (the rate is used, exponent form too). */
	assert_int_equal(parse("<coverage line-rate=\"8.125e-1\" branch-rate=\"0.5\"><packages/></coverage>",
			       &c, &err), 0);
	assert_false(c.has_line_counts);
	assert_false(c.has_branches);
	assert_percent(c.line_percent, "81.25");
	assert_percent(c.total_percent, "81.25");
	sp_cobertura_release(&c);

	/* Nothing measured: 100% as coverage.py says, but lines_valid tells. */
	assert_int_equal(parse("<coverage lines-valid=\"0\" lines-covered=\"0\" line-rate=\"1\"/>", &c, &err), 0);
	assert_int_equal(c.lines_valid, 0);
	assert_percent(c.line_percent, "100.00");
	sp_cobertura_release(&c);

	/* Per-file lines: only a class's own <lines>, not those under <methods>. */
	assert_int_equal(parse("<coverage lines-valid=\"3\" lines-covered=\"2\">\n"
			       " <packages><package name=\"p\"><classes>\n"
			       "  <class name=\"a\" filename=\"p/a.py\">\n"
			       "   <methods><method name=\"f\"><lines><line number=\"1\" hits=\"0\"/></lines></method></methods>\n"
			       "   <lines><line number=\"1\" hits=\"0\"/><line number=\"2\" hits=\"3\"/></lines>\n"
			       "  </class>\n"
			       "  <class name=\"b\"><lines><line number=\"1\" hits=\"1\"/></lines></class>\n"
			       "  <class filename=\"p/empty.py\"/>\n"
			       " </classes></package></packages>\n"
			       "</coverage>", &c, &err), 0);
	assert_int_equal(c.nfiles, 3);
	assert_string_equal(c.files[0].filename, "p/a.py");
	assert_int_equal(c.files[0].lines_valid, 2);
	assert_int_equal(c.files[0].lines_covered, 1);
	assert_string_equal(c.files[1].filename, "b");
	assert_percent(c.files[1].line_percent, "100.00");
	assert_string_equal(c.files[2].filename, "p/empty.py");
	assert_int_equal(c.files[2].lines_valid, 0);
	assert_percent(c.files[2].line_percent, "100.00");
	sp_cobertura_release(&c);
}

static void test_many_files(void **state)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_cobertura c;
	int i;

	(void)state;
	sp_buf_addstr(&b, "<coverage lines-valid=\"3000\" lines-covered=\"1500\"><packages><package><classes>");
	for (i = 0; i < 1500; i++)
		sp_buf_addf(&b, "<class filename=\"m%d.py\"><lines><line number=\"1\" hits=\"%d\"/>"
			    "<line number=\"2\" hits=\"0\"/></lines></class>", i, i);
	sp_buf_addstr(&b, "</classes></package></packages></coverage>");
	assert_int_equal(sp_cobertura_parse_mem(&c, b.data, b.len, "many.xml", &err), 0);
	assert_int_equal(c.nfiles, SP_COBERTURA_MAX_FILES);
	assert_int_equal(c.files_omitted, 500);
	assert_percent(c.files[0].line_percent, "0.00");
	assert_percent(c.files[1].line_percent, "50.00");
	assert_percent(c.line_percent, "50.00");
	sp_cobertura_release(&c);
	sp_buf_release(&b);
}

static void expect_refused_len(const char *doc, size_t len, const char *what)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_cobertura c;

	assert_int_equal(sp_cobertura_parse_mem(&c, doc, len, "bad.xml", &err), SP_ERROR);
	if (!strstr(err.msg, what))
		fail_msg("expected \"%s\" in \"%s\"", what, err.msg);
	assert_null(c.files);
	assert_int_equal(c.lines_valid, 0);
}

static void expect_refused(const char *doc, const char *what)
{
	expect_refused_len(doc, strlen(doc), what);
}

static void test_hostile(void **state)
{
	static const char lol[] =
		SP_TEST_LOL_DOCTYPE
		"<coverage line-rate=\"1\"><packages><package name=\"&lol9;\"/></packages></coverage>";
	static const char lol_small[] =
		"<!DOCTYPE c [<!ENTITY a \"1\">]><coverage line-rate=\"&a;\"/>";
	static const char xxe[] =
		"<!DOCTYPE c [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
		"<coverage line-rate=\"1\"><sources><source>&e;</source></sources></coverage>";
	struct sp_buf b = SP_BUF_INIT;
	size_t i;

	(void)state;
	expect_refused(lol, "bad.xml:");
	expect_refused(lol_small, "DOCTYPE");
	expect_refused(xxe, "DOCTYPE");
	expect_refused("<coverage line-rate=\"1\"><packages>", "bad.xml:1:");
	expect_refused("<coverage line-rate=\"1\"></packages></coverage>", "bad.xml:1: Opening and ending tag mismatch");
	expect_refused("", "empty");
	expect_refused("<testsuites/>", "not a Cobertura report (root element <testsuites>");
	expect_refused("<coverage/>", "neither lines-valid/lines-covered nor line-rate");
	expect_refused("<coverage lines-valid=\"10\" lines-covered=\"11\"/>",
		       "lines-covered (11) is more than lines-valid (10)");
	expect_refused("<coverage lines-valid=\"-1\" lines-covered=\"0\"/>", "lines-valid=\"-1\" is not a count");
	expect_refused("<coverage lines-valid=\"99999999999999999999999\" lines-covered=\"0\"/>",
		       "is not a count");
	expect_refused("<coverage line-rate=\"1.5\"/>", "line-rate=\"1.5\" is not a rate");
	expect_refused("<coverage line-rate=\"nan\"/>", "is not a rate");
	expect_refused("<coverage line-rate=\"0,5\"/>", "is not a rate");
	expect_refused("<coverage lines-valid=\"2\" lines-covered=\"1\" branches-valid=\"2\" branches-covered=\"3\"/>",
		       "branches-covered (3) is more than branches-valid (2)");
	expect_refused("<coverage line-rate=\"1\"><packages><package><classes><class><lines>"
		       "<line hits=\"lots\"/></lines></class></classes></package></packages></coverage>",
		       "hits=\"lots\" is not a count");

	/* A 12 MB attribute is past libxml2's limit: an error, not a crash. */
	sp_buf_addstr(&b, "<coverage line-rate=\"1\"><packages><package name=\"");
	for (i = 0; i < 12u * 1024 * 1024 / 64; i++)
		sp_buf_addstr(&b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	sp_buf_addstr(&b, "\"/></packages></coverage>");
	expect_refused_len(b.data, b.len, "bad.xml:1:");
	/* A 5 MB file name is kept as written (it is the caller's to shorten). */
	sp_buf_reset(&b);
	sp_buf_addstr(&b, "<coverage line-rate=\"1\"><packages><package><classes><class filename=\"");
	for (i = 0; i < 5u * 1024 * 1024 / 64; i++)
		sp_buf_addstr(&b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	sp_buf_addstr(&b, "\"/></classes></package></packages></coverage>");
	{
		struct sp_error err = SP_ERROR_INIT;
		struct sp_cobertura c;

		assert_int_equal(sp_cobertura_parse_mem(&c, b.data, b.len, "big.xml", &err), 0);
		assert_int_equal(strlen(c.files[0].filename), 5u * 1024 * 1024);
		sp_cobertura_release(&c);
	}
	sp_buf_release(&b);
}

static void test_files(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_cobertura c;
	char *path = sp_test_fixture_path("pytest", "no-such-coverage.xml");

	(void)state;
	/* pytest-cov writes no XML at all when nothing was measured (--cov=typo). */
	assert_int_equal(sp_cobertura_parse_file(&c, path, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no-such-coverage.xml: No such file"));
	free(path);
	path = sp_test_fixture_path("pytest", "");
	assert_int_equal(sp_cobertura_parse_file(&c, path, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "not a regular file"));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_pass),
		cmocka_unit_test(test_fixture_lowcov),
		cmocka_unit_test(test_fixture_no_tests),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_many_files),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
