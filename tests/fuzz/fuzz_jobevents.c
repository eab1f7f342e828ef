/*
 * fuzz_jobevents.c — libFuzzer target: the job event lines a job's child
 * (or an agent, on its behalf) sends the server (core/server/jobevents.c,
 * docs/events.md) into a real SQLite store and the job's log files.
 *
 * The store is opened once per process in a private temporary folder
 * (fuzz_store.h) with one running job.  Input: NDJSON, one event per line
 * ("\r\n" too, as agents.c cuts a batch).  Each input gets a new applier
 * (sp_jobevents_new: a new run order) over the same job and log, lines
 * applied one by one; then the summary and runs_on it kept are looked at.
 * Every 256 inputs the job is replaced by a new one and the old one's log
 * files are removed, so that stage rows and log files stay few.
 *
 * What must hold: the current epoch is never refused (SP_ECONFLICT), a
 * summary kept is a JSON object whose "event" is pipeline_finished.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/server/server.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_store.h"

#define ROTATE_EVERY 256

static struct fuzz_store fs;     /* set up once by LLVMFuzzerInitialize */
static struct sp_server srv;
static struct sp_joblog *joblog;
static int64_t job, epoch;
static unsigned runs;

static void new_job(void)
{
	struct sp_error err = SP_ERROR_INIT;

	fuzz_store_new_job(&fs, "local-1", &job, &epoch);
	if (sp_joblog_open(&joblog, fs.dir, job, &err) < 0)
		fuzz_die("joblog", &err);
}

static void drop_job(void)
{
	sp_joblog_close(joblog);
	joblog = NULL;
	fuzz_store_drop_logs(&fs, job);
}

static void cleanup(void)
{
	drop_job();
	sp_metrics_free(srv.metrics);
	fuzz_store_close(&fs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	fuzz_store_open(&fs, "sp-fuzz-jobevents-");
	srv.store = fs.st;
	srv.metrics = sp_metrics_new();
	atomic_init(&srv.draining, false);
	new_job();
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct sp_jobevents *je;
	const cJSON *summary, *ev;
	const char *runs_on;

	if (++runs % ROTATE_EVERY == 0) {
		drop_job();
		new_job();
	}
	je = sp_jobevents_new(&srv, job, epoch, joblog);
	while (p < end) {
		struct sp_error err = SP_ERROR_INIT;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int rc;

		if (n && p[n - 1] == '\r')
			n--;
		rc = sp_jobevents_line(je, p, n, &err);
		if (rc == SP_ECONFLICT) {
			fprintf(stderr, "the current epoch was refused: %s\n", err.msg);
			abort();
		}
		p = nl ? nl + 1 : end;
	}
	summary = sp_jobevents_summary(je);
	if (summary) {
		ev = cJSON_GetObjectItemCaseSensitive(summary, "event");
		if (!cJSON_IsObject(summary) || !cJSON_IsString(ev) ||
		    strcmp(ev->valuestring, "pipeline_finished"))
			abort();
	}
	runs_on = sp_jobevents_runs_on(je);
	if (runs_on)
		(void)strlen(runs_on);
	sp_jobevents_free(je);
	return 0;
}
