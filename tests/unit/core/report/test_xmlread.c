/*
 * test_xmlread.c — the libxml2 plumbing under the report readers.
 *
 * junit.c and cobertura.c are tested through their own reports
 * (test_junit.c, test_cobertura.c); these tests hold the shared pieces to
 * their contracts directly: what a failed open leaves behind (no reader, no
 * descriptor), the walk's callbacks and refusals, the error capture, and the
 * locale-independent decimal parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/report/xmlread.h"
#include "tests/unit/support/testutil.h"

static void expect_msg(const struct sp_error *err, const char *want)
{
	if (strcmp(err->msg, want) != 0)
		fail_msg("expected \"%s\", got \"%s\"", want, err->msg);
}

static void expect_near(double got, double want)
{
	double d = got > want ? got - want : want - got;

	if (d > 1e-12)
		fail_msg("expected %.17g, got %.17g", want, got);
}

/* The lowest free descriptor: unchanged across a call means nothing leaked. */
static int lowest_fd(void)
{
	int fd = dup(0);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

static void test_parse_decimal(void **state)
{
	static const struct {
		const char *s;
		double want;
	} good[] = {
		{ "0.714", 0.714 }, { "1", 1 },     { "-2", -2 },   { "+.5", 0.5 },
		{ "5.", 5 },        { "1e-3", 1e-3 }, { "2E+2", 200 }, { " \t0.25\r\n", 0.25 },
		{ "0", 0 },         { "100.0", 100 },
	};
	static const char *const bad[] = {
		"", " ", ".", "-", "e3", "1e", "1e+", "0,5", "nan", "inf", "0x10", "1 2", "1.2.3", "--1",
	};
	double v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = -99;
		if (sp_xmlread_parse_decimal(good[i].s, &v) != 0)
			fail_msg("\"%s\" refused", good[i].s);
		expect_near(v, good[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = -99;
		if (sp_xmlread_parse_decimal(bad[i], &v) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		expect_near(v, -99); /* untouched */
	}
	/* A locale with a decimal comma changes nothing (when one is installed). */
	if (setlocale(LC_NUMERIC, "de_DE.UTF-8") || setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
		assert_int_equal(sp_xmlread_parse_decimal("0.5", &v), 0);
		expect_near(v, 0.5);
		assert_int_equal(sp_xmlread_parse_decimal("0,5", &v), -1);
		setlocale(LC_NUMERIC, "C");
	}
}

static void test_for_mem(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	xmlTextReaderPtr rd, ok;
	const char doc[] = "<a/>";

	(void)state;
	assert_int_equal(sp_xmlread_for_mem(&rd, doc, sizeof(doc) - 1, "m.xml", "thing", &err), 0);
	assert_non_null(rd);
	ok = rd; /* kept: the failures below must set rd to NULL */
	assert_int_equal(sp_xmlread_for_mem(&rd, doc, 0, "m.xml", "thing", &err), SP_ERROR);
	assert_null(rd);
	expect_msg(&err, "m.xml: empty, not a thing");
	/* Refused on its length alone: the bytes are never read. */
	rd = ok;
	assert_int_equal(sp_xmlread_for_mem(&rd, doc, (size_t)INT_MAX + 1, "m.xml", "thing", &err),
			 SP_ETOOBIG);
	assert_null(rd);
	expect_msg(&err, "m.xml: 2147483648 bytes is too big to parse from memory");
	assert_int_equal(xmlTextReaderRead(ok), 1);
	assert_string_equal((const char *)xmlTextReaderConstLocalName(ok), "a");
	xmlFreeTextReader(ok);
}

/* Opening path fails with code and "PATH: why", leaving nothing open. */
static void expect_open_fails(const char *path, int code, const char *why)
{
	struct sp_error err = SP_ERROR_INIT;
	xmlTextReaderPtr rd;
	int fd, low = lowest_fd();
	char *want = sp_xasprintf("%s: %s", path, why);

	assert_int_equal(sp_xmlread_open_file(&rd, &fd, path, "thing", &err), code);
	assert_null(rd);
	assert_int_equal(fd, -1);
	assert_int_equal(lowest_fd(), low);
	expect_msg(&err, want);
	free(want);
}

static void test_open_file(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	xmlTextReaderPtr rd;
	char *dir, *file, *link, *empty;
	int fd, low = lowest_fd();

	(void)state;
	dir = sp_test_tempdir("sp-xmlread-");
	file = sp_xasprintf("%s/r.xml", dir);
	link = sp_xasprintf("%s/link.xml", dir);
	empty = sp_xasprintf("%s/empty.xml", dir);
	sp_test_write_file(empty, "");

	expect_open_fails(file, SP_ENOTFOUND, "No such file or directory");
	expect_open_fails(dir, SP_ERROR, "not a regular file");
	expect_open_fails(empty, SP_ERROR, "empty, not a thing");
	/* Never through a symlink, even to a good file. */
	sp_test_write_file(file, "<r>x</r>");
	assert_int_equal(symlink(file, link), 0);
	expect_open_fails(link, SP_ERROR, "Too many levels of symbolic links");

	assert_int_equal(sp_xmlread_open_file(&rd, &fd, file, "thing", &err), 0);
	assert_non_null(rd);
	assert_true(fd >= 0);
	assert_int_equal(xmlTextReaderRead(rd), 1);
	assert_string_equal((const char *)xmlTextReaderConstLocalName(rd), "r");
	xmlFreeTextReader(rd);
	/* The reader did not close it: still ours. */
	assert_int_equal(close(fd), 0);
	assert_int_equal(lowest_fd(), low);

	sp_test_rmtree(dir);
	free(dir);
	free(file);
	free(link);
	free(empty);
}

/* Records the walk as "<el@depth" ">el@depth" "'text'" items. */
struct trace {
	struct sp_buf b;
	const char *stop_at; /* element that fails with SP_ECONFIG */
	struct sp_error *err;
};

static int trace_element(void *ctx, xmlTextReaderPtr rd, const char *el, int depth)
{
	struct trace *t = ctx;

	sp_buf_addf(&t->b, "<%s@%d%s ", el, depth, xmlTextReaderIsEmptyElement(rd) ? "/" : "");
	if (t->stop_at && strcmp(el, t->stop_at) == 0)
		return sp_error_set(t->err, SP_ECONFIG, "stopped at <%s>", el);
	return 0;
}

static void trace_end(void *ctx, const char *el, int depth)
{
	struct trace *t = ctx;

	sp_buf_addf(&t->b, ">%s@%d ", el, depth);
}

static void trace_text(void *ctx, const char *text)
{
	struct trace *t = ctx;

	sp_buf_addf(&t->b, "'%s' ", text);
}

static const struct sp_xmlread_handlers trace_handlers = {
	.writer = "the tests",
	.element = trace_element,
	.end = trace_end,
	.text = trace_text,
};

/* Walks doc from memory; returns the walk's code, the trace in *out (caller frees). */
static int walk(const char *doc, const struct sp_xmlread_handlers *h, const char *stop_at,
		char **out, struct sp_error *err)
{
	struct trace t;
	xmlTextReaderPtr rd;
	int rc;

	sp_buf_init(&t.b, 0);
	t.stop_at = stop_at;
	t.err = err;
	assert_int_equal(sp_xmlread_for_mem(&rd, doc, strlen(doc), "w.xml", "thing", err), 0);
	rc = sp_xmlread_walk(rd, h, &t, "w.xml", err);
	*out = sp_buf_detach(&t.b, NULL);
	return rc;
}

static void test_walk(void **state)
{
	static const struct sp_xmlread_handlers no_text = {
		.writer = "the tests",
		.element = trace_element,
		.end = trace_end,
		.text = NULL,
	};
	struct sp_error err = SP_ERROR_INIT;
	char *tr;

	(void)state;
	assert_int_equal(walk("<a><b x=\"1\"/>t<![CDATA[c]]><c> </c></a>", &trace_handlers, NULL,
			      &tr, &err), 0);
	assert_string_equal(tr, "<a@0 <b@1/ 't' 'c' <c@1 ' ' >c@1 >a@0 ");
	free(tr);
	assert_int_equal(walk("<a>t<b/></a>", &no_text, NULL, &tr, &err), 0);
	assert_string_equal(tr, "<a@0 <b@1/ >a@0 ");
	free(tr);

	/* A callback's error stops the walk, code and message kept. */
	assert_int_equal(walk("<a><b/><c/></a>", &trace_handlers, "b", &tr, &err), SP_ECONFIG);
	assert_string_equal(tr, "<a@0 <b@1/ ");
	expect_msg(&err, "stopped at <b>");
	free(tr);

	/* A DOCTYPE is refused before the root is seen. */
	assert_int_equal(walk("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", &trace_handlers, NULL,
			      &tr, &err), SP_ERROR);
	assert_string_equal(tr, "");
	expect_msg(&err, "w.xml: refusing a report with a DOCTYPE or entities (the tests writes neither)");
	free(tr);

	/* The first error wins, with its line. */
	assert_int_equal(walk("<a>\n<b>\n</a></c>", &trace_handlers, NULL, &tr, &err), SP_ERROR);
	expect_msg(&err, "w.xml:3: Opening and ending tag mismatch: b line 2 and a");
	free(tr);
	assert_int_equal(walk("junk", &trace_handlers, NULL, &tr, &err), SP_ERROR);
	expect_msg(&err, "w.xml:1: Document is empty");
	free(tr);
}

static void test_errors_check(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_xmlread_errors cap;

	(void)state;
	memset(&cap, 0, sizeof(cap));
	assert_int_equal(sp_xmlread_errors_check(&cap, 0, "e.xml", &err), 0);
	assert_string_equal(err.msg, "");
	assert_int_equal(sp_xmlread_errors_check(&cap, -1, "e.xml", &err), SP_ERROR);
	expect_msg(&err, "e.xml: XML error");
	snprintf(cap.first, sizeof(cap.first), "boom");
	cap.line = 7;
	assert_int_equal(sp_xmlread_errors_check(&cap, 0, "e.xml", &err), SP_ERROR);
	expect_msg(&err, "e.xml:7: boom");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_decimal),
		cmocka_unit_test(test_for_mem),
		cmocka_unit_test(test_open_file),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_errors_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
