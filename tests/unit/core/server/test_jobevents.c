/*
 * test_jobevents.c — a job's event lines into a real SQLite store and its
 * log files (core/server/jobevents.c): stage rows with their run order and
 * reports, log lines per stage and for the job, the summary kept, junk
 * ignored, a stale epoch refused, and a stage log the disk refuses.
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

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/server.h"
#include "core/store/store.h"
#include "tests/unit/support/testutil.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"

struct fix {
	char *dir;
	struct sp_store *st;
	struct sp_server srv;
};

static int setup(void **state)
{
	struct fix *f = sp_xcalloc(1, sizeof(*f));

	f->dir = sp_test_tempdir("sp-jobevents-");
	f->st = sp_test_store_open(f->dir);
	f->srv.store = f->st;
	f->srv.metrics = sp_metrics_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	sp_store_close(f->st);
	sp_metrics_free(f->srv.metrics);
	sp_test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static struct sp_lease new_leased_job(struct sp_store *st)
{
	struct sp_job_spec j = { .repo = "app", .event = "push", .ref = "refs/heads/main",
				 .branch = "main", .sha = SHA };
	struct sp_lease_req q = { .agent = "local-1", .ttl_ms = 30000 };
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;

	if (sp_store_job_create(st, &j, &res, &err))
		fail_msg("job_create: %s", err.msg);
	memset(&l, 0, sizeof(l));
	if (sp_store_lease(st, &q, &l, &err))
		fail_msg("lease: %s", err.msg);
	assert_int_equal(l.job_id, res.job_id);
	return l;
}

static int feed(struct sp_jobevents *je, const char *line)
{
	struct sp_error err = SP_ERROR_INIT;

	return sp_jobevents_line(je, line, strlen(line), &err);
}

static const cJSON *stage_of(const cJSON *job, const char *name)
{
	const cJSON *s;

	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(job, "stages")) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");
		if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
			return s;
	}
	return NULL;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static char *log_text(const char *dir, int64_t job, const char *stage)
{
	char path[512];

	assert_int_equal(sp_logs_path(path, sizeof(path), dir, job, stage), 0);
	return sp_test_read_file(path, NULL);
}

static void test_a_job(void **state)
{
	struct fix *f = *state;
	struct sp_lease l = new_leased_job(f->st);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *log = NULL;
	struct sp_jobevents *je;
	const cJSON *s, *report;
	cJSON *job = NULL;
	char *text;

	(void)state;
	assert_int_equal(sp_joblog_open(&log, f->dir, l.job_id, &err), 0);
	je = sp_jobevents_new(&f->srv, l.job_id, l.epoch, log);
	assert_null(sp_jobevents_summary(je));

	assert_int_equal(feed(je, "{\"event\":\"log\",\"stream\":\"info\",\"line\":\"cloning\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"pipeline_started\",\"pipeline\":\"app\","
			      "\"job\":\"srv-1\",\"stages\":[\"build\",\"test\",\"release\"],"
			      "\"needs\":{\"test\":[\"build\"],\"release\":[\"test\"]}}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"build\","
			      "\"target\":\"build\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"log\",\"stage\":\"build\",\"stream\":\"build\","
			      "\"line\":\"#1 FROM python\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"build\","
			      "\"result\":\"passed\",\"seconds\":2.5,\"image\":\"sha256:ab\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"test\","
			      "\"target\":\"testing\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"log\",\"stage\":\"test\",\"stream\":\"stdout\","
			      "\"line\":\"17 passed\"}"), 0);
	/* junk, unknown events and the permit request are ignored */
	assert_int_equal(feed(je, "not json at all"), 0);
	assert_int_equal(feed(je, "[1,2]"), 0);
	assert_int_equal(feed(je, "{\"no\":\"event\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"future_event\",\"stage\":\"test\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"promote_request\",\"stage\":\"release\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"test\","
			      "\"result\":\"failed\",\"seconds\":3.25,\"tests\":{\"total\":17,"
			      "\"passed\":16,\"failed\":1}}"), 0);
	/* a stage not announced gets the next place */
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"extra\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"pipeline_finished\",\"pipeline\":\"app\","
			      "\"result\":\"failed\",\"seconds\":6,\"message\":\"test failed\"}"), 0);
	assert_non_null(sp_jobevents_summary(je));
	assert_string_equal(jstr(sp_jobevents_summary(je), "message"), "test failed");

	assert_int_equal(sp_store_job_get(f->st, l.job_id, &job, &err), 0);
	s = stage_of(job, "build");
	assert_non_null(s);
	assert_string_equal(jstr(s, "state"), "passed");
	assert_true(jnum(s, "seconds") == 2.5);
	assert_true(jnum(s, "pos") == 0);
	report = cJSON_GetObjectItemCaseSensitive(s, "report");
	assert_non_null(report);
	assert_string_equal(jstr(report, "image"), "sha256:ab");
	s = stage_of(job, "test");
	assert_string_equal(jstr(s, "state"), "failed");
	assert_true(jnum(s, "pos") == 1);
	s = stage_of(job, "release");
	assert_string_equal(jstr(s, "state"), "pending");
	assert_true(jnum(s, "pos") == 2);
	/* a pending stage's report is what it needs (for the graph) */
	report = cJSON_GetObjectItemCaseSensitive(s, "report");
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(report, "needs"),
					       0)->valuestring, "test");
	s = stage_of(job, "extra");
	assert_string_equal(jstr(s, "state"), "running");
	assert_true(jnum(s, "pos") == 3);
	cJSON_Delete(job);

	sp_jobevents_free(je);
	sp_joblog_close(log);
	text = log_text(f->dir, l.job_id, "build");
	assert_string_equal(text, "#1 FROM python\n");
	free(text);
	text = log_text(f->dir, l.job_id, "test");
	assert_string_equal(text, "17 passed\n");
	free(text);
	text = log_text(f->dir, l.job_id, "_job");
	assert_string_equal(text, "cloning\n");
	free(text);
	sp_lease_release(&l);
}

static void test_stale_epoch(void **state)
{
	struct fix *f = *state;
	struct sp_lease l = new_leased_job(f->st), l2;
	struct sp_lease_req q = { .agent = "local-2", .ttl_ms = 30000 };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *log = NULL;
	struct sp_jobevents *je;

	assert_int_equal(sp_joblog_open(&log, f->dir, l.job_id, &err), 0);
	je = sp_jobevents_new(&f->srv, l.job_id, l.epoch, log);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"test\"}"), 0);

	/* the job goes back to the queue and to someone else */
	assert_int_equal(sp_store_requeue(f->st, l.job_id, l.epoch, "test", 3, &err), 0);
	memset(&l2, 0, sizeof(l2));
	assert_int_equal(sp_store_lease(f->st, &q, &l2, &err), 0);
	assert_int_equal(l2.job_id, l.job_id);
	assert_true(l2.epoch > l.epoch);

	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"test\","
			      "\"result\":\"passed\",\"seconds\":1}"), SP_ECONFLICT);
	/* a log line is not fenced (files, not the store) */
	assert_int_equal(feed(je, "{\"event\":\"log\",\"stage\":\"test\",\"line\":\"x\"}"), 0);

	sp_jobevents_free(je);
	sp_joblog_close(log);
	sp_lease_release(&l);
	sp_lease_release(&l2);
}

static void test_odd_stage_name_goes_to_job_log(void **state)
{
	struct fix *f = *state;
	struct sp_lease l = new_leased_job(f->st);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *log = NULL;
	struct sp_jobevents *je;
	char *text;

	assert_int_equal(sp_joblog_open(&log, f->dir, l.job_id, &err), 0);
	je = sp_jobevents_new(&f->srv, l.job_id, l.epoch, log);
	assert_int_equal(feed(je, "{\"event\":\"log\",\"stage\":\"../x\",\"line\":\"odd\"}"), 0);
	sp_jobevents_free(je);
	sp_joblog_close(log);
	text = log_text(f->dir, l.job_id, "_job");
	assert_string_equal(text, "[../x] odd\n");
	free(text);
	sp_lease_release(&l);
}

/* Matrix variants are stages of their own: rows and log files by name. */
static void test_matrix_variant_stages(void **state)
{
	struct fix *f = *state;
	struct sp_lease l = new_leased_job(f->st);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *log = NULL;
	struct sp_jobevents *je;
	cJSON *job = NULL;
	char *text;

	assert_int_equal(sp_joblog_open(&log, f->dir, l.job_id, &err), 0);
	je = sp_jobevents_new(&f->srv, l.job_id, l.epoch, log);
	assert_int_equal(feed(je, "{\"event\":\"pipeline_started\",\"stages\":[\"test[3.11,pg]\","
			      "\"test[3.12,pg]\",\"promote\"],\"needs\":{\"promote\":"
			      "[\"test[3.11,pg]\",\"test[3.12,pg]\"]}}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"test[3.11,pg]\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"log\",\"stage\":\"test[3.11,pg]\",\"line\":\"ok\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"test[3.11,pg]\","
			      "\"result\":\"passed\",\"seconds\":1}"), 0);
	/* not a variant's shape: ignored, as before */
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"test[a/b]\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"test[]\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"test[x]y\"}"), 0);
	sp_jobevents_free(je);
	sp_joblog_close(log);
	text = log_text(f->dir, l.job_id, "test[3.11,pg]");
	assert_string_equal(text, "ok\n");
	free(text);
	assert_int_equal(sp_store_job_get(f->st, l.job_id, &job, &err), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(job, "stages")), 3);
	assert_string_equal(jstr(stage_of(job, "test[3.11,pg]"), "state"), "passed");
	assert_string_equal(jstr(stage_of(job, "test[3.12,pg]"), "state"), "pending");
	cJSON_Delete(job);
	sp_lease_release(&l);
}

/*
 * A stage's log file the disk refuses (/dev/full): the line is lost and
 * counted once, with an error — not moved to the job log, which would
 * count it twice and mix the stage's lines into it.
 */
static void test_full_stage_log_loses_the_line(void **state)
{
	struct fix *f = *state;
	struct sp_lease l = new_leased_job(f->st);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *log = NULL;
	struct sp_jobevents *je;
	char path[512], *text;

	assert_int_equal(sp_joblog_open(&log, f->dir, l.job_id, &err), 0);
	assert_int_equal(sp_logs_path(path, sizeof(path), f->dir, l.job_id, "test"), 0);
	assert_int_equal(symlink("/dev/full", path), 0);
	je = sp_jobevents_new(&f->srv, l.job_id, l.epoch, log);
	assert_int_equal(feed(je, "{\"event\":\"log\",\"line\":\"cloning\"}"), 0);
	assert_true(feed(je, "{\"event\":\"log\",\"stage\":\"test\",\"line\":\"t1\"}") < 0);
	assert_int_equal(sp_joblog_lost(log), 1);
	sp_jobevents_free(je);
	sp_joblog_close(log);
	text = log_text(f->dir, l.job_id, "_job");
	assert_string_equal(text, "cloning\n");
	free(text);
	sp_lease_release(&l);
}

/* The child's JSON is checked, not trusted: wrong types, missing fields,
 * huge or negative numbers, unknown results, names no pipeline can have,
 * too many stages. */
static void test_hostile_events(void **state)
{
	struct fix *f = *state;
	struct sp_lease l = new_leased_job(f->st);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *log = NULL;
	struct sp_jobevents *je;
	const cJSON *st;
	cJSON *job = NULL;
	char line[256];
	int i, rc = 0;

	assert_int_equal(sp_joblog_open(&log, f->dir, l.job_id, &err), 0);
	je = sp_jobevents_new(&f->srv, l.job_id, l.epoch, log);
	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"a\","
			      "\"result\":\"pwned\\\"}\",\"seconds\":1e999}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"b\","
			      "\"result\":7,\"seconds\":-5}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_finished\",\"stage\":\"c\","
			      "\"result\":\"passed\",\"seconds\":\"soon\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"../../etc\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":\"_job\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\",\"stage\":12}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"stage_started\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"pipeline_started\",\"stages\":\"abc\"}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"pipeline_started\",\"stages\":[1,null,{}]}"), 0);
	assert_int_equal(feed(je, "{\"event\":\"log\",\"stage\":\"a\",\"line\":5}"), 0);
	assert_int_equal(feed(je, "[\"event\",\"log\"]"), 0);
	assert_int_equal(feed(je, "{\"event\":null}"), 0);

	assert_int_equal(sp_store_job_get(f->st, l.job_id, &job, &err), 0);
	st = cJSON_GetObjectItemCaseSensitive(job, "stages");
	assert_int_equal(cJSON_GetArraySize(st), 3);  /* a, b, c: nothing else */
	assert_string_equal(jstr(stage_of(job, "a"), "state"), "error");
	assert_true(jnum(stage_of(job, "a"), "seconds") == 0);
	assert_string_equal(jstr(stage_of(job, "b"), "state"), "error");
	assert_true(jnum(stage_of(job, "b"), "seconds") == 0);
	assert_string_equal(jstr(stage_of(job, "c"), "state"), "passed");
	cJSON_Delete(job);

	/* a child announcing stage after stage: bounded */
	for (i = 0; i < 300 && rc == 0; i++) {
		snprintf(line, sizeof(line), "{\"event\":\"stage_started\",\"stage\":\"s%d\"}", i);
		rc = feed(je, line);
	}
	assert_int_equal(rc, SP_ETOOBIG);
	assert_true(i <= 256);
	sp_jobevents_free(je);
	sp_joblog_close(log);
	sp_lease_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_stage_name_goes_to_job_log, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_matrix_variant_stages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_stage_log_loses_the_line, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
