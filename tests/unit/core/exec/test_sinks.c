/*
 * test_sinks.c — the built-in sinks (core/exec/sink_reports.c, sink_json.c,
 * sink_term.c), fed events built by hand as the executor would emit them.
 *
 * The reports sink gets a PIPELINE_FINISHED whose test stage points at a
 * real pytest report ($SP_FIXTURES/pytest/fail-junit.xml): the --junit file
 * must hold the stage test cases and pytest's own, failure messages and
 * tracebacks intact, and parse back as well-formed XML; --coverage is a byte
 * copy.  A generated 20 MB report checks that the copy streams (peak RSS
 * stays small).  The JSON sink must keep a log line whole across a NUL byte,
 * and both printing sinks must report a failed write from finish().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlreader.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/exec/events.h"
#include "core/exec/sinks.h"
#include "core/base/xalloc.h"
#include "tests/unit/support/testutil.h"

/* A temporary file name in $TMPDIR (the file is made, empty). */
static char *temp_path(const char *tag)
{
	const char *dir = getenv("TMPDIR");
	char *path = sp_xasprintf("%s/sp-test-sinks-%s-XXXXXX", dir && *dir ? dir : "/tmp", tag);
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	return path;
}

/* The structures hold char * they own; these point at literals, never freed. */
#define W(literal) ((char *)(literal))

/* A two-stage pipeline: "test" (pytest, failed) and "release" (skipped). */
struct run {
	struct sp_pipeline pl;
	struct sp_stage stages[2];
	size_t order[2];
	struct sp_stage_report reports[2];
};

static void run_init(struct run *r, const char *junit, const char *coverage)
{
	memset(r, 0, sizeof(*r));
	r->stages[0].name = W("test");
	r->stages[0].target = W("testing");
	r->stages[0].kind = SP_STAGE_PYTEST;
	r->stages[1].name = W("release");
	r->stages[1].target = W("runtime");
	r->pl.name = W("demo");
	r->pl.version = 1;
	r->pl.stages = r->stages;
	r->pl.nstages = 2;
	r->order[0] = 0;
	r->order[1] = 1;
	r->pl.order = r->order;
	r->reports[0].stage = &r->stages[0];
	r->reports[0].result = SP_RESULT_FAILED;
	r->reports[0].message = W("1 failed, 1 error");
	r->reports[0].seconds = 4.5;
	r->reports[0].junit_path = (char *)junit;
	r->reports[0].coverage_path = (char *)coverage;
	r->reports[1].stage = &r->stages[1];
	r->reports[1].result = SP_RESULT_SKIPPED;
	r->reports[1].message = W("needs test, which failed");
}

static struct sp_event finished_event(struct run *r)
{
	struct sp_event ev = { 0 };

	ev.kind = SP_EVENT_PIPELINE_FINISHED;
	ev.pipeline = &r->pl;
	ev.job_id = "job1";
	ev.result = SP_RESULT_FAILED;
	ev.seconds = 5.25;
	ev.reports = r->reports;
	ev.nreports = 2;
	ev.message = "stage test failed";
	return ev;
}

/* Feeds one event to a new reports sink; returns what finish returned. */
static int run_reports(const char *junit_out, const char *coverage_out, struct run *r,
		       struct sp_error *err)
{
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_event ev = finished_event(r);
	int rc;

	sp_events_add(&events, sp_sink_reports_new(junit_out, coverage_out));
	sp_events_emit(&events, &ev);
	rc = sp_events_finish(&events, err);
	sp_events_release(&events);
	return rc;
}

static int xpath_count(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	int n;

	assert_non_null(o);
	n = o->nodesetval ? o->nodesetval->nodeNr : 0;
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return n;
}

static char *xpath_string(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	xmlChar *s;
	char *copy;

	assert_non_null(o);
	s = xmlXPathCastToString(o);
	copy = sp_xstrdup((const char *)s);
	xmlFree(s);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return copy;
}

static void test_junit_copies_pytest_report(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *report = sp_test_fixture_path("pytest", "fail-junit.xml");
	char *out = temp_path("junit");
	char *text, *s;
	size_t len;
	struct run r;
	xmlDocPtr doc;

	(void)state;
	run_init(&r, report, NULL);
	assert_int_equal(run_reports(out, NULL, &r, &err), 0);

	text = sp_test_read_file(out, &len);
	doc = xmlReadMemory(text, (int)len, out, NULL, XML_PARSE_NONET);
	assert_non_null(doc);  /* well-formed */

	/* the stages suite: one test case per stage */
	assert_int_equal(xpath_count(doc, "/testsuites[@name='demo']/testsuite[@name='stages']"
				     "/testcase"), 2);
	assert_int_equal(xpath_count(doc, "//testsuite[@name='stages']/testcase[@name='test']"
				     "/failure[@message='1 failed, 1 error']"), 1);
	assert_int_equal(xpath_count(doc, "//testsuite[@name='stages']/testcase[@name='release']"
				     "/skipped"), 1);

	/* pytest's suite, copied whole: 19 test cases, its attributes kept */
	assert_int_equal(xpath_count(doc, "/testsuites/testsuite[@name='pytest']"), 1);
	assert_int_equal(xpath_count(doc, "/testsuites/testsuite[@name='pytest'][@tests='19']"
				     "[@failures='1'][@errors='1'][@hostname='659021011cb8']"), 1);
	assert_int_equal(xpath_count(doc, "//testsuite[@name='pytest']/testcase"), 19);
	assert_int_equal(xpath_count(doc, "//testcase[@classname='tests.test_ops']"
				     "[@name='test_health'][@time='0.031']"), 1);

	/* failure and error: attribute (with its newline) and traceback text */
	s = xpath_string(doc, "//testcase[@name='test_price_is_doubled']/failure/@message");
	assert_string_equal(s, "AssertionError: price should be doubled\nassert 2.5 == 5.0");
	free(s);
	s = xpath_string(doc, "//testcase[@name='test_price_is_doubled']/failure");
	assert_non_null(strstr(s, "self = <tests.test_zz_fail.TestPricing object"));
	assert_non_null(strstr(s, ">       assert widget[\"price\"] == 5.0, "));
	assert_non_null(strstr(s, "\ntests/test_zz_fail.py:6: AssertionError"));
	free(s);
	s = xpath_string(doc, "//testcase[@name='test_uses_database']/error/@message");
	assert_string_equal(s, "failed on setup with \"RuntimeError: database is not reachable\"");
	free(s);

	/* the note naming the stage the tests came from */
	assert_non_null(strstr(text, "<!-- tests of stage test -->"));

	xmlFreeDoc(doc);
	free(text);
	unlink(out);
	free(out);
	free(report);
}

/* Everything a copier must carry: CDATA, comments, namespaces, empty
 * elements, entities in attributes and text, and significant white space. */
static void test_junit_copies_node_kinds(void **state)
{
	static const char report_xml[] =
		"<?xml version=\"1.0\"?>\n"
		"<!-- outside: not copied -->\n"
		"<testsuites xmlns:x=\"urn:x\">\n"
		"  <testsuite name=\"a\" tests=\"2\">\n"
		"    <!-- inside -->\n"
		"    <properties><property name=\"k\" value=\"v &amp; w\"/></properties>\n"
		"    <testcase name=\"t1\" x:extra=\"1\"><system-out><![CDATA[raw <b> & ]]>"
		"</system-out></testcase>\n"
		"    <testcase name=\"t2\"><system-err xml:space=\"preserve\">  </system-err>"
		"<failure message=\"&lt;m&gt;\">a &lt; b</failure></testcase>\n"
		"  </testsuite>\n"
		"  <testsuite name=\"b\"/>\n"
		"</testsuites>\n";
	struct sp_error err = SP_ERROR_INIT;
	char *report = temp_path("kinds"), *out = temp_path("kinds-out");
	char *text, *s;
	size_t len;
	struct run r;
	xmlDocPtr doc;

	(void)state;
	sp_test_write_file(report, report_xml);
	run_init(&r, report, NULL);
	assert_int_equal(run_reports(out, NULL, &r, &err), 0);

	text = sp_test_read_file(out, &len);
	doc = xmlReadMemory(text, (int)len, out, NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	assert_int_equal(xpath_count(doc, "/testsuites/testsuite[@name='a'][@tests='2']"), 1);
	assert_int_equal(xpath_count(doc, "/testsuites/testsuite[@name='b']"), 1);
	assert_int_equal(xpath_count(doc, "//testsuite[@name='a']/comment()"), 1);
	assert_null(strstr(text, "outside"));
	s = xpath_string(doc, "//property[@name='k']/@value");
	assert_string_equal(s, "v & w");
	free(s);
	s = xpath_string(doc, "//testcase[@name='t1']/system-out");
	assert_string_equal(s, "raw <b> & ");
	free(s);
	assert_non_null(strstr(text, "<![CDATA[raw <b> & ]]>"));
	s = xpath_string(doc, "//testcase[@name='t1']/@*[local-name()='extra']");
	assert_string_equal(s, "1");
	free(s);
	s = xpath_string(doc, "//testcase[@name='t2']/system-err");
	assert_string_equal(s, "  ");
	free(s);
	s = xpath_string(doc, "//testcase[@name='t2']/failure");
	assert_string_equal(s, "a < b");
	free(s);
	s = xpath_string(doc, "//testcase[@name='t2']/failure/@message");
	assert_string_equal(s, "<m>");
	free(s);

	xmlFreeDoc(doc);
	free(text);
	unlink(out);
	unlink(report);
	free(out);
	free(report);
}

static void test_junit_bad_report(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *report = temp_path("bad"), *out = temp_path("bad-out");
	struct run r;

	(void)state;
	sp_test_write_file(report,
			   "<testsuites><testsuite name=\"a\"><testcase name=\"t\"></testsuite>");
	run_init(&r, report, NULL);
	assert_int_equal(run_reports(out, NULL, &r, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, report));
	unlink(out);
	unlink(report);
	free(out);
	free(report);
}

static void test_coverage_is_copied(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *cov = sp_test_fixture_path("pytest", "fail-coverage.xml");
	char *out = temp_path("cov");
	char *want, *got;
	size_t want_len, got_len;
	struct run r;

	(void)state;
	run_init(&r, NULL, cov);
	assert_int_equal(run_reports(NULL, out, &r, &err), 0);
	want = sp_test_read_file(cov, &want_len);
	got = sp_test_read_file(out, &got_len);
	assert_true(want_len > 0);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	free(want);
	free(got);

	/* no stage made one: an error naming the file asked for */
	run_init(&r, NULL, NULL);
	assert_int_equal(run_reports(NULL, out, &r, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "no stage produced a coverage report"));
	unlink(out);
	free(out);
	free(cov);
}

static char *file_text(FILE *f, size_t *len);

static void test_variant_path(void **state)
{
	char *p;

	(void)state;
	p = sp_reports_variant_path("out/coverage.xml", "test[3.11,pg]");
	assert_string_equal(p, "out/coverage.test-3.11-pg.xml");
	free(p);
	p = sp_reports_variant_path("a.b/cov", "test[3.12]");
	assert_string_equal(p, "a.b/cov.test-3.12");
	free(p);
	p = sp_reports_variant_path(".coverage", "t[1]");
	assert_string_equal(p, ".coverage.t-1");
	free(p);
}

/* Two variants of a matrix stage with coverage: PATH holds the first's,
 * and each has its own file beside it. */
static void test_coverage_per_variant(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *cov1 = sp_test_fixture_path("pytest", "fail-coverage.xml");
	char *cov2 = sp_test_fixture_path("pytest", "pass-coverage.xml");
	char *dir = temp_path("covdir"), *out, *v1, *v2, *a, *b, *want;
	struct sp_pvar m1 = { W("PY"), W("3.11"), { 0, 0 } }, m2 = { W("PY"), W("3.12"), { 0, 0 } };
	size_t alen, blen, wlen;
	struct run r;

	(void)state;
	unlink(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	out = sp_xasprintf("%s/coverage.xml", dir);
	v1 = sp_xasprintf("%s/coverage.test-3.11.xml", dir);
	v2 = sp_xasprintf("%s/coverage.test-3.12.xml", dir);
	run_init(&r, NULL, cov1);
	r.stages[0].name = W("test[3.11]");
	r.stages[0].group = W("test");
	r.stages[0].matrix.items = &m1;
	r.stages[0].matrix.n = 1;
	r.stages[1].name = W("test[3.12]");
	r.stages[1].group = W("test");
	r.stages[1].matrix.items = &m2;
	r.stages[1].matrix.n = 1;
	r.stages[1].kind = SP_STAGE_PYTEST;
	r.reports[1].coverage_path = cov2;
	assert_int_equal(run_reports(NULL, out, &r, &err), 0);
	a = sp_test_read_file(v1, &alen);
	b = sp_test_read_file(v2, &blen);
	want = sp_test_read_file(cov2, &wlen);
	assert_int_equal(blen, wlen);
	assert_memory_equal(b, want, wlen);
	free(want);
	want = sp_test_read_file(cov1, &wlen);
	assert_int_equal(alen, wlen);
	assert_memory_equal(a, want, wlen);
	free(a);
	a = sp_test_read_file(out, &alen);
	assert_int_equal(alen, wlen);
	free(a);
	free(b);
	free(want);
	unlink(out);
	unlink(v1);
	unlink(v2);
	rmdir(dir);
	free(out);
	free(v1);
	free(v2);
	free(dir);
	free(cov1);
	free(cov2);
}

/* A variant's stage events carry its group and matrix values. */
static void test_json_matrix(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_event ev = { 0 };
	struct sp_pvar m[2] = { { W("PY"), W("3.11"), { 0, 0 } }, { W("DB"), W("pg"), { 0, 0 } } };
	struct run r;
	FILE *f = tmpfile();
	cJSON *o, *mx;
	char *text;
	size_t len;

	(void)state;
	assert_non_null(f);
	run_init(&r, NULL, NULL);
	r.stages[0].name = W("test[3.11,pg]");
	r.stages[0].group = W("test");
	r.stages[0].matrix.items = m;
	r.stages[0].matrix.n = 2;
	sp_events_add(&events, sp_sink_json_new(f));
	ev.kind = SP_EVENT_STAGE_STARTED;
	ev.pipeline = &r.pl;
	ev.stage = &r.stages[0];
	sp_events_emit(&events, &ev);
	assert_int_equal(sp_events_finish(&events, &err), 0);
	sp_events_release(&events);
	text = file_text(f, &len);
	o = cJSON_Parse(text);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "stage")->valuestring, "test[3.11,pg]");
	assert_string_equal(cJSON_GetObjectItem(o, "group")->valuestring, "test");
	mx = cJSON_GetObjectItem(o, "matrix");
	assert_non_null(mx);
	assert_string_equal(cJSON_GetObjectItem(mx, "PY")->valuestring, "3.11");
	assert_string_equal(cJSON_GetObjectItem(mx, "DB")->valuestring, "pg");
	/* in the order written */
	assert_string_equal(mx->child->string, "PY");
	cJSON_Delete(o);
	free(text);
	fclose(f);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static long peak_rss_kb(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

/* A 20 MB report with one big suite is copied without holding it. */
static void test_junit_big_report_streams(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *report = temp_path("big"), *out = temp_path("big-out");
	size_t written = 0, cases = 0;
	long before, after;
	struct run r;
	xmlTextReaderPtr rd;
	int ret, seen = 0;
	FILE *f;

	(void)state;
	f = fopen(report, "wb");
	assert_non_null(f);
	fputs("<?xml version=\"1.0\"?><testsuites><testsuite name=\"pytest\">\n", f);
	while (written < 20u * 1024 * 1024) {
		written += (size_t)fprintf(f, "<testcase classname=\"tests.test_big\" name=\"test_%zu\" "
					   "time=\"0.001\"><failure message=\"boom %zu\">Traceback "
					   "line one\nline two &amp; three</failure></testcase>\n",
					   cases, cases);
		cases++;
	}
	fputs("</testsuite></testsuites>\n", f);
	fclose(f);

	before = peak_rss_kb();
	run_init(&r, report, NULL);
	assert_int_equal(run_reports(out, NULL, &r, &err), 0);
	after = peak_rss_kb();

	/* the copy is complete: every test case, in a well-formed file */
	rd = xmlReaderForFile(out, NULL, XML_PARSE_NONET);
	assert_non_null(rd);
	while ((ret = xmlTextReaderRead(rd)) == 1)
		if (xmlTextReaderNodeType(rd) == XML_READER_TYPE_ELEMENT &&
		    xmlStrEqual(xmlTextReaderConstLocalName(rd), BAD_CAST "testcase"))
			seen++;
	xmlFreeTextReader(rd);
	assert_int_equal(ret, 0);
	assert_int_equal((size_t)seen, cases + 2);  /* and the two stages */
	unlink(out);
	unlink(report);
	free(out);
	free(report);

	/* The whole suite in memory would be well over 20 MB more (it was
	 * 430 MB).  Under AddressSanitizer and valgrind freed memory sits in
	 * their quarantine, so RSS says nothing there. */
	if (!UNDER_ASAN && !sp_test_under_valgrind() && after - before > 15 * 1024)
		fail_msg("peak RSS grew by %ld kB copying a 20 MB report", after - before);
}

/* Everything a FILE received, from the start. */
static char *file_text(FILE *f, size_t *len)
{
	fflush(f);
	rewind(f);
	return sp_test_read_stream(f, len);
}

static void test_json_log_line_with_nul(void **state)
{
	static const char line[] = "before\0after\0";  /* 13 bytes, two NULs */
	struct sp_error err = SP_ERROR_INIT;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_event ev = { 0 };
	struct run r;
	FILE *f = tmpfile();
	cJSON *o;
	char *text;
	size_t len;

	(void)state;
	assert_non_null(f);
	run_init(&r, NULL, NULL);
	sp_events_add(&events, sp_sink_json_new(f));
	ev.kind = SP_EVENT_LOG;
	ev.pipeline = &r.pl;
	ev.stage = &r.stages[0];
	ev.stream = SP_STREAM_STDOUT;
	ev.line = line;
	ev.len = sizeof(line) - 1;
	sp_events_emit(&events, &ev);
	assert_int_equal(sp_events_finish(&events, &err), 0);
	sp_events_release(&events);

	text = file_text(f, &len);
	assert_true(len > 0 && text[len - 1] == '\n');
	o = cJSON_Parse(text);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "log");
	assert_string_equal(cJSON_GetObjectItem(o, "stage")->valuestring, "test");
	assert_string_equal(cJSON_GetObjectItem(o, "stream")->valuestring, "stdout");
	assert_string_equal(cJSON_GetObjectItem(o, "line")->valuestring,
			    "before\xEF\xBF\xBD" "after\xEF\xBF\xBD");
	cJSON_Delete(o);
	free(text);
	fclose(f);
}

/* A service event: stage, service, state and its detail, masked. */
static void test_json_service_event(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_event ev = { 0 };
	struct run r;
	FILE *f = tmpfile();
	cJSON *o;
	char *text;
	size_t len;

	struct sp_mask *mask = sp_mask_new();

	(void)state;
	assert_non_null(f);
	assert_int_equal(sp_mask_add(mask, "listens", 7, &err), 0);
	run_init(&r, NULL, NULL);
	sp_events_add(&events, sp_sink_json_new(f));
	events.mask = mask;
	ev.kind = SP_EVENT_SERVICE;
	ev.pipeline = &r.pl;
	ev.stage = &r.stages[0];
	ev.service = "db";
	ev.service_state = SP_SERVICE_FAILED;
	ev.message = "service db not ready after 5s: nothing listens on port 5432";
	sp_events_emit(&events, &ev);
	ev.service_state = SP_SERVICE_REMOVED;
	ev.message = NULL;
	sp_events_emit(&events, &ev);
	assert_int_equal(sp_events_finish(&events, &err), 0);
	sp_events_release(&events);

	text = file_text(f, &len);
	o = cJSON_Parse(text);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "service");
	assert_string_equal(cJSON_GetObjectItem(o, "stage")->valuestring, "test");
	assert_string_equal(cJSON_GetObjectItem(o, "service")->valuestring, "db");
	assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, "failed");
	assert_string_equal(cJSON_GetObjectItem(o, "message")->valuestring,
			    "service db not ready after 5s: nothing *** on port 5432");
	cJSON_Delete(o);
	sp_mask_free(mask);
	assert_non_null(strstr(text, "\n{\"event\":\"service\",\"stage\":\"test\",\"service\":\"db\","
			       "\"state\":\"removed\"}\n"));
	free(text);
	fclose(f);
}

/* Both printing sinks report a failed write from finish. */
static void check_write_failure(struct sp_sink *sink, FILE *f)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_event ev;
	struct run r;

	run_init(&r, NULL, NULL);
	sp_events_add(&events, sink);
	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_PIPELINE_STARTED;
	ev.pipeline = &r.pl;
	ev.job_id = "job1";
	sp_events_emit(&events, &ev);
	ev = finished_event(&r);
	sp_events_emit(&events, &ev);
	assert_int_equal(sp_events_finish(&events, &err), SP_ERROR);
	assert_string_equal(err.msg, "writing the output failed: No space left on device");
	sp_events_release(&events);
	fclose(f);
}

static void test_write_failure_is_reported(void **state)
{
	FILE *f;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	f = fopen("/dev/full", "w");
	assert_non_null(f);
	check_write_failure(sp_sink_json_new(f), f);
	f = fopen("/dev/full", "w");
	assert_non_null(f);
	check_write_failure(sp_sink_term_new(f, false), f);
	/* a line of build output is not flushed at once: finish flushes it */
	f = fopen("/dev/full", "w");
	assert_non_null(f);
	{
		struct sp_error err = SP_ERROR_INIT;
		struct sp_events events = SP_EVENTS_INIT;
		struct sp_event ev = { 0 };

		sp_events_add(&events, sp_sink_term_new(f, false));
		ev.kind = SP_EVENT_LOG;
		ev.stream = SP_STREAM_BUILD;
		ev.line = "#1 [internal] load build definition";
		ev.len = strlen(ev.line);
		sp_events_emit(&events, &ev);
		assert_int_equal(sp_events_finish(&events, &err), SP_ERROR);
		assert_non_null(strstr(err.msg, "writing the output failed"));
		sp_events_release(&events);
	}
	fclose(f);
}

static void test_finish_ok(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_event ev;
	struct run r;
	FILE *f = tmpfile();
	char *text;
	size_t len;

	(void)state;
	assert_non_null(f);
	run_init(&r, NULL, NULL);
	sp_events_add(&events, sp_sink_term_new(f, false));
	sp_events_add(&events, sp_sink_json_new(f));
	ev = finished_event(&r);
	sp_events_emit(&events, &ev);
	assert_int_equal(sp_events_finish(&events, &err), 0);
	sp_events_release(&events);
	text = file_text(f, &len);
	assert_non_null(strstr(text, "pipeline demo failed in 5.2s"));
	assert_non_null(strstr(text, "{\"event\":\"pipeline_finished\""));
	free(text);
	fclose(f);
}

/* One event of kind k for stage st (LOG: an info or stdout line). */
static void term_emit(struct sp_events *events, struct run *r, enum sp_event_kind k,
		      size_t st, enum sp_log_stream stream, const char *line)
{
	struct sp_event ev = { 0 };

	ev.kind = k;
	ev.pipeline = &r->pl;
	ev.job_id = "job1";
	ev.stage = &r->stages[st];
	ev.report = &r->reports[st];
	ev.stream = stream;
	ev.line = line;
	ev.len = line ? strlen(line) : 0;
	sp_events_emit(events, &ev);
}

/* The terminal view: no prefix while one stage is in flight; once two
 * are, every line says its stage, padded; headers and results whole. */
static void test_term_prefixes_concurrent_stages(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_events events = SP_EVENTS_INIT;
	struct run r;
	FILE *f = tmpfile();
	char *text;
	size_t len;

	(void)state;
	assert_non_null(f);
	run_init(&r, NULL, NULL);
	r.reports[0].result = SP_RESULT_PASSED;
	r.reports[0].message = NULL;
	sp_events_add(&events, sp_sink_term_new(f, false));
	term_emit(&events, &r, SP_EVENT_STAGE_STARTED, 0, SP_STREAM_INFO, NULL);
	term_emit(&events, &r, SP_EVENT_LOG, 0, SP_STREAM_INFO, "alone");
	term_emit(&events, &r, SP_EVENT_STAGE_STARTED, 1, SP_STREAM_INFO, NULL);
	term_emit(&events, &r, SP_EVENT_LOG, 1, SP_STREAM_INFO, "built runtime");
	term_emit(&events, &r, SP_EVENT_LOG, 0, SP_STREAM_STDOUT, "17 passed");
	term_emit(&events, &r, SP_EVENT_STAGE_FINISHED, 0, SP_STREAM_INFO, NULL);
	term_emit(&events, &r, SP_EVENT_LOG, 1, SP_STREAM_INFO, "tagged app:1");
	assert_int_equal(sp_events_finish(&events, &err), 0);
	sp_events_release(&events);
	text = file_text(f, &len);
	assert_string_equal(text,
			    "\n== test (target testing)\n"
			    ":: alone\n"
			    "\n== release (target runtime)\n"
			    "[release] :: built runtime\n"
			    "[test]       17 passed\n"
			    "== test passed in 4.5s\n"
			    "[release] :: tagged app:1\n");
	free(text);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_junit_copies_pytest_report),
		cmocka_unit_test(test_junit_copies_node_kinds),
		cmocka_unit_test(test_junit_bad_report),
		cmocka_unit_test(test_coverage_is_copied),
		cmocka_unit_test(test_junit_big_report_streams),
		cmocka_unit_test(test_json_log_line_with_nul),
		cmocka_unit_test(test_json_service_event),
		cmocka_unit_test(test_write_failure_is_reported),
		cmocka_unit_test(test_finish_ok),
		cmocka_unit_test(test_variant_path),
		cmocka_unit_test(test_coverage_per_variant),
		cmocka_unit_test(test_json_matrix),
		cmocka_unit_test(test_term_prefixes_concurrent_stages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
