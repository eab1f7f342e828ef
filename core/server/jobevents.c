/*
 * jobevents.c — a job's event lines (docs/events.md) into the store and
 * its log files; see server.h.
 *
 *   pipeline_started   remembers the stages in run order (their pos) and
 *                      writes a "pending" row for each, so a job's detail
 *                      shows its whole plan from the start (a stage's
 *                      report is then {"needs": [...]}, for the graph)
 *   stage_started      the stage row: running
 *   log                the line into DATA/logs/<job>/<stage>.log; a line
 *                      without a stage (checkout, the pipeline as a whole)
 *                      into the job log "_job" (logs.c)
 *   stage_finished     the stage row: its result, seconds, and the event
 *                      itself as the report; the stage metric
 *   pipeline_finished  kept (a copy) for the job's finish
 *   runner_mismatch    its runs_on labels kept (the job goes back to the
 *                      queue with them; sp_jobevents_runs_on)
 *   promote_request    nothing: jobrun.c answers it
 *
 * Every store write carries the lease's epoch: SP_ECONFLICT (the job is no
 * longer ours) goes back to the caller, which stops the child.  Other
 * errors also go back, with the message; the caller decides (the worker
 * logs them and carries on: a lost log line must not kill a build).
 * Lines that are not JSON objects, and unknown events, are ignored
 * (debug log).
 */
#include "core/server/server.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"

/* The log of lines that belong to no stage. */
#define JOB_LOG "_job"
/* Stages remembered from pipeline_started (more get pos = their order of
 * appearance after these). */
#define MAX_STAGES 256
#define MAX_STAGE_NAME 100
#define MAX_SECONDS (10.0 * 365 * 24 * 3600)

struct sp_jobevents {
	struct sp_server *srv;
	int64_t job, epoch;
	struct sp_joblog *log;
	cJSON *summary;            /* pipeline_finished, owned */
	char *runs_on;             /* runner_mismatch's labels "a,b", owned */
	char **stages;             /* run order from pipeline_started */
	size_t nstages, alloc;
};

struct sp_jobevents *sp_jobevents_new(struct sp_server *srv, int64_t job, int64_t epoch,
				      struct sp_joblog *log)
{
	struct sp_jobevents *je = sp_xcalloc(1, sizeof(*je));

	je->srv = srv;
	je->job = job;
	je->epoch = epoch;
	je->log = log;
	return je;
}

static const char *str_of(const cJSON *ev, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A duration in seconds: 0 unless a finite number in [0, 10 years]. */
static double seconds_of(const cJSON *ev, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, key);
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0.0;

	return d >= 0 && d <= MAX_SECONDS ? d : 0.0;  /* NaN fails both */
}

/*
 * A stage name as a pipeline can write it (pipeline.c: lower case letters,
 * digits, '-' and '_', at most 100 bytes, not starting with '-' or '_'),
 * or a matrix variant's, "test[3.11,postgres]".  The
 * child runs a pipeline that comes from the repository, so what it says is
 * checked before it becomes a row or a file name.
 */
static bool stage_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_"), m;

	if (n == 0 || s[0] == '-' || s[0] == '_' || strlen(s) > MAX_STAGE_NAME)
		return false;
	if (s[n] == '\0')
		return true;
	/* a matrix variant: NAME[v1,v2] (values: letters, digits and ._+-) */
	if (s[n] != '[')
		return false;
	m = strspn(s + n + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789._+-,");
	return m > 0 && s[n + 1 + m] == ']' && s[n + 2 + m] == '\0';
}

/* A stage result of docs/events.md; anything else is "error". */
static const char *result_of(const char *r)
{
	static const char *const known[] = { "passed", "failed", "skipped", "cancelled",
					     "error" };

	for (size_t i = 0; r && i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(r, known[i]))
			return known[i];
	return "error";
}

/* The stage's index in the run order; a stage not announced gets the next
 * free one (and is remembered). */
static int stage_pos(struct sp_jobevents *je, const char *name)
{
	size_t i;

	for (i = 0; i < je->nstages; i++)
		if (!strcmp(je->stages[i], name))
			return (int)i;
	if (je->nstages >= MAX_STAGES)
		return (int)je->nstages;
	SP_GROW(je->stages, je->alloc, je->nstages + 1);
	je->stages[je->nstages] = sp_xstrdup(name);
	return (int)je->nstages++;
}

static int put_stage(struct sp_jobevents *je, const char *name, const char *state,
		     double seconds, const cJSON *report, struct sp_error *err)
{
	struct sp_stage_update u;
	int pos;

	if (!stage_ok(name)) {
		sp_log_debug("job.line", "job=%" PRId64 " ignored=bad_stage_name", je->job);
		return 0;
	}
	pos = stage_pos(je, name);
	if (pos >= MAX_STAGES)
		return sp_error_set(err, SP_ETOOBIG, "job %" PRId64 ": more than %d stages",
				    je->job, MAX_STAGES);
	memset(&u, 0, sizeof(u));
	u.name = name;
	u.pos = pos;
	u.state = state;
	u.seconds = seconds;
	u.report = report;
	return sp_store_stage(je->srv->store, je->job, je->epoch, &u, err);
}

static int on_pipeline_started(struct sp_jobevents *je, const cJSON *ev, struct sp_error *err)
{
	const cJSON *stages = cJSON_GetObjectItemCaseSensitive(ev, "stages"), *s;
	const cJSON *needs = cJSON_GetObjectItemCaseSensitive(ev, "needs");
	int rc = 0;

	cJSON_ArrayForEach(s, stages) {
		const cJSON *n;
		cJSON *report = NULL;

		if (!cJSON_IsString(s))
			continue;
		/* until the stage ends, its report is only what it needs (the
		 * job detail's graph); stage_finished's report replaces it */
		n = cJSON_GetObjectItemCaseSensitive(needs, s->valuestring);
		if (cJSON_IsArray(n)) {
			report = cJSON_CreateObject();
			cJSON_AddItemToObject(report, "needs", cJSON_Duplicate(n, true));
		}
		rc = put_stage(je, s->valuestring, "pending", 0, report, err);
		cJSON_Delete(report);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int on_log(struct sp_jobevents *je, const cJSON *ev, struct sp_error *err)
{
	const char *stage = str_of(ev, "stage"), *line = str_of(ev, "line");
	struct sp_error e2 = SP_ERROR_INIT;
	uint64_t lost;
	int rc;

	if (!line || !je->log)
		return 0;
	if (!stage || !*stage)
		return sp_joblog_write(je->log, JOB_LOG, line, strlen(line), err);
	lost = sp_joblog_lost(je->log);
	rc = sp_joblog_write(je->log, stage, line, strlen(line), &e2);
	if (rc < 0 && sp_joblog_lost(je->log) != lost) {
		/* the file is there but the disk refused the line: lost (and
		 * counted once), not moved to the job log */
		sp_error_set(err, rc, "%s", e2.msg);
	} else if (rc < 0) {
		/* a stage name no file can have (or its file cannot be
		 * opened): keep the line in the job log */
		char *l = sp_xasprintf("[%.100s] %s", stage, line);
		rc = sp_joblog_write(je->log, JOB_LOG, l, strlen(l), err);
		free(l);
		if (rc < 0)
			sp_error_prefix(err, "%s; then", e2.msg);
	}
	return rc;
}

static int on_stage_finished(struct sp_jobevents *je, const cJSON *ev, struct sp_error *err)
{
	const char *stage = str_of(ev, "stage"), *result = result_of(str_of(ev, "result"));
	double seconds = seconds_of(ev, "seconds");
	int rc;

	if (!stage || !stage_ok(stage))
		return 0;
	if ((rc = put_stage(je, stage, result, seconds, ev, err)) < 0)
		return rc;
	if (je->srv->metrics)
		sp_metrics_stage_finished(je->srv->metrics, result, seconds);
	return 0;
}

int sp_jobevents_line(struct sp_jobevents *je, const char *line, size_t len,
		      struct sp_error *err)
{
	cJSON *ev = cJSON_ParseWithLength(line, len);
	const char *kind = str_of(ev, "event"), *stage;
	int rc = 0;

	if (!cJSON_IsObject(ev) || !kind) {
		sp_log_debug("job.line", "job=%" PRId64 " ignored=%s bytes=%zu", je->job,
			      ev ? "no_event" : "not_json", len);
		goto cleanup;
	}
	if (!strcmp(kind, "log")) {
		rc = on_log(je, ev, err);
	} else if (!strcmp(kind, "stage_started")) {
		if ((stage = str_of(ev, "stage")))
			rc = put_stage(je, stage, "running", 0, NULL, err);
	} else if (!strcmp(kind, "stage_finished")) {
		rc = on_stage_finished(je, ev, err);
	} else if (!strcmp(kind, "pipeline_started")) {
		rc = on_pipeline_started(je, ev, err);
	} else if (!strcmp(kind, "pipeline_finished")) {
		cJSON_Delete(je->summary);
		/* the parsed line itself: no copy needed */
		je->summary = ev;
		ev = NULL;
	} else if (!strcmp(kind, "runner_mismatch")) {
		const char *labels = str_of(ev, "runs_on");

		free(je->runs_on);
		je->runs_on = labels ? sp_xstrdup(labels) : NULL;
	} else if (strcmp(kind, "promote_request") != 0) {
		sp_log_debug("job.line", "job=%" PRId64 " ignored=unknown_event", je->job);
	}
cleanup:
	cJSON_Delete(ev);
	return rc;
}

const cJSON *sp_jobevents_summary(const struct sp_jobevents *je)
{
	return je ? je->summary : NULL;
}

const char *sp_jobevents_runs_on(const struct sp_jobevents *je)
{
	return je ? je->runs_on : NULL;
}

void sp_jobevents_free(struct sp_jobevents *je)
{
	size_t i;

	if (!je)
		return;
	for (i = 0; i < je->nstages; i++)
		free(je->stages[i]);
	free(je->stages);
	cJSON_Delete(je->summary);
	free(je->runs_on);
	free(je);
}
