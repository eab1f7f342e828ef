/*
 * sink_json.c — one JSON object per event per line; see sinks.h.
 *
 * The format, for tools reading `stagepipe run --json`:
 *   {"event":"pipeline_started","pipeline":P,"job":J,"stages":[names in run order]}
 *   {"event":"stage_started","stage":S,"target":T}
 *   {"event":"log","stage":S,"stream":"build|stdout|stderr|info","line":L}
 *   {"event":"stage_finished","stage":S,"result":R,"seconds":N,"message":M?,
 *    "exit_code":N?,"image":ID?,"tags":[...]?,"pushed":[...]?,
 *    "tests":{"total","passed","failed","errors","skipped"}?,
 *    "failures":[{"id","message"}]?,"coverage":N?,"coverage_min":N?,
 *    "artifacts":{"entries","bytes","warnings"}?}
 *   {"event":"pipeline_finished","result":R,"seconds":N,"message":M?}
 * R is passed, failed, skipped, cancelled or error (a pipeline is skipped
 * when `run --event` names an event its on: rules do not build).  Each
 * line is flushed as it is written.  `run --permit-stdin` adds its own
 * {"event":"promote_request","stage":S} lines to the same stream (cmd/run.c),
 * between whole lines of this sink.  A NUL byte in a log
 * line becomes U+FFFD (a C string would end there); other invalid UTF-8
 * is cJSON's to pass on as it is.
 *
 * A failed write (a full disk behind `--json > FILE`) is noted as it
 * happens and reported by finish, so the run does not exit 0 with its
 * output cut.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/exec/sinks.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"

struct json_sink {
	struct sp_sink base;
	struct sp_sink_out out;
};

/* A log line as a C string, each NUL byte replaced by U+FFFD; free() it. */
static char *line_text(const char *line, size_t len)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	size_t nuls = 0, i, o = 0;
	char *text;

	for (i = 0; i < len; i++)
		nuls += line[i] == '\0';
	text = sp_xmalloc(len + nuls * (sizeof(replacement) - 2) + 1);
	for (i = 0; i < len; i++) {
		if (line[i] == '\0') {
			memcpy(text + o, replacement, sizeof(replacement) - 1);
			o += sizeof(replacement) - 1;
		} else {
			text[o++] = line[i];
		}
	}
	text[o] = '\0';
	return text;
}

static const char *stream_name(enum sp_log_stream s)
{
	switch (s) {
	case SP_STREAM_BUILD: return "build";
	case SP_STREAM_STDOUT: return "stdout";
	case SP_STREAM_STDERR: return "stderr";
	case SP_STREAM_INFO: return "info";
	}
	return "info";
}

static void add_strings(cJSON *o, const char *name, char *const *v, size_t n)
{
	cJSON *arr;
	size_t i;

	if (!n)
		return;
	arr = cJSON_AddArrayToObject(o, name);
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(v[i]));
}

/* The names a stage needs, as a JSON array. */
static cJSON *needs_of(const struct sp_stage *st)
{
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	for (i = 0; i < st->needs.n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(st->needs.items[i].s));
	return arr;
}

/* "needs": {"stage": ["dep", ...]} for the stages that need others (the
 * graph of the run; a stage not in it needs nothing). */
static void needs_map(cJSON *o, const struct sp_pipeline *p)
{
	cJSON *map = NULL;
	size_t i;

	for (i = 0; i < p->nstages; i++) {
		const struct sp_stage *st = &p->stages[i];

		if (!st->needs.n)
			continue;
		if (!map)
			map = cJSON_AddObjectToObject(o, "needs");
		cJSON_AddItemToObject(map, st->name, needs_of(st));
	}
}

static void stage_finished(cJSON *o, const struct sp_stage_report *rep)
{
	const struct sp_stage *st = rep->stage;
	size_t i;

	cJSON_AddStringToObject(o, "result", sp_stage_result_name(rep->result));
	cJSON_AddNumberToObject(o, "seconds", rep->seconds);
	if (rep->message)
		cJSON_AddStringToObject(o, "message", rep->message);
	if (rep->has_exit_code)
		cJSON_AddNumberToObject(o, "exit_code", rep->exit_code);
	if (rep->image_id)
		cJSON_AddStringToObject(o, "image", rep->image_id);
	add_strings(o, "tags", rep->refs, rep->nrefs);
	add_strings(o, "pushed", rep->pushed, rep->npushed);
	if (rep->has_artifacts) {
		cJSON *a = cJSON_AddObjectToObject(o, "artifacts");
		cJSON_AddNumberToObject(a, "entries", (double)rep->artifacts_entries);
		cJSON_AddNumberToObject(a, "bytes", (double)rep->artifacts_bytes);
		cJSON_AddNumberToObject(a, "warnings", (double)rep->artifacts_warnings);
	}
	if (rep->has_tests) {
		cJSON *t = cJSON_AddObjectToObject(o, "tests");
		cJSON_AddNumberToObject(t, "total", (double)rep->tests);
		cJSON_AddNumberToObject(t, "passed", (double)rep->passed);
		cJSON_AddNumberToObject(t, "failed", (double)rep->failed);
		cJSON_AddNumberToObject(t, "errors", (double)rep->errors);
		cJSON_AddNumberToObject(t, "skipped", (double)rep->skipped);
	}
	if (rep->nfailures) {
		cJSON *arr = cJSON_AddArrayToObject(o, "failures");
		for (i = 0; i < rep->nfailures; i++) {
			cJSON *f = cJSON_CreateObject();
			cJSON_AddStringToObject(f, "id", rep->failures[i].id);
			cJSON_AddStringToObject(f, "message", rep->failures[i].message);
			cJSON_AddItemToArray(arr, f);
		}
	}
	if (rep->has_coverage)
		cJSON_AddNumberToObject(o, "coverage", rep->coverage);
	if (st->has_coverage_min)
		cJSON_AddNumberToObject(o, "coverage_min", st->coverage_min);
}

/* A matrix variant's "group" ("test" for "test[3.11]") and "matrix" {KEY: value}. */
static void matrix_of(cJSON *o, const struct sp_stage *st)
{
	cJSON *m;
	size_t i;

	if (!st->matrix.n)
		return;
	cJSON_AddStringToObject(o, "group", st->group);
	m = cJSON_AddObjectToObject(o, "matrix");
	for (i = 0; i < st->matrix.n; i++)
		cJSON_AddStringToObject(m, st->matrix.items[i].name, st->matrix.items[i].value);
}

static void json_event(struct sp_sink *self, const struct sp_event *ev)
{
	struct json_sink *j = (struct json_sink *)self;
	cJSON *o = cJSON_CreateObject(), *arr;
	char *line, *text;
	size_t i;

	switch (ev->kind) {
	case SP_EVENT_PIPELINE_STARTED:
		cJSON_AddStringToObject(o, "event", "pipeline_started");
		cJSON_AddStringToObject(o, "pipeline", ev->pipeline->name);
		cJSON_AddStringToObject(o, "job", ev->job_id);
		arr = cJSON_AddArrayToObject(o, "stages");
		for (i = 0; i < ev->pipeline->nstages; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(
				ev->pipeline->stages[ev->pipeline->order[i]].name));
		needs_map(o, ev->pipeline);
		break;
	case SP_EVENT_STAGE_STARTED:
		cJSON_AddStringToObject(o, "event", "stage_started");
		cJSON_AddStringToObject(o, "stage", ev->stage->name);
		cJSON_AddStringToObject(o, "target", ev->stage->target);
		matrix_of(o, ev->stage);
		break;
	case SP_EVENT_LOG:
		cJSON_AddStringToObject(o, "event", "log");
		if (ev->stage)
			cJSON_AddStringToObject(o, "stage", ev->stage->name);
		cJSON_AddStringToObject(o, "stream", stream_name(ev->stream));
		text = line_text(ev->line, ev->len);
		cJSON_AddStringToObject(o, "line", text);
		free(text);
		break;
	case SP_EVENT_STAGE_FINISHED:
		cJSON_AddStringToObject(o, "event", "stage_finished");
		cJSON_AddStringToObject(o, "stage", ev->stage->name);
		stage_finished(o, ev->report);
		matrix_of(o, ev->stage);
		if (ev->stage->needs.n)
			cJSON_AddItemToObject(o, "needs", needs_of(ev->stage));
		break;
	case SP_EVENT_SERVICE:
		cJSON_AddStringToObject(o, "event", "service");
		cJSON_AddStringToObject(o, "stage", ev->stage->name);
		cJSON_AddStringToObject(o, "service", ev->service);
		cJSON_AddStringToObject(o, "state", sp_service_state_name(ev->service_state));
		if (ev->message)
			cJSON_AddStringToObject(o, "message", ev->message);
		break;
	case SP_EVENT_PIPELINE_FINISHED:
		cJSON_AddStringToObject(o, "event", "pipeline_finished");
		cJSON_AddStringToObject(o, "pipeline", ev->pipeline->name);
		cJSON_AddStringToObject(o, "result", sp_stage_result_name(ev->result));
		cJSON_AddNumberToObject(o, "seconds", ev->seconds);
		if (ev->message)
			cJSON_AddStringToObject(o, "message", ev->message);
		break;
	}
	line = sp_xjson_print(o);
	/* whole lines, also against run --permit-stdin's writes from another
	 * stage's thread */
	flockfile(j->out.f);
	fputs(line, j->out.f);
	fputc('\n', j->out.f);
	/* every line, logs included: a parent (serve, agent) reads the
	 * stream live through a pipe, where stdio would hold 4 KiB back */
	fflush(j->out.f);
	funlockfile(j->out.f);
	sp_sink_out_check(&j->out);
	free(line);
	cJSON_Delete(o);
}

static int json_finish(struct sp_sink *self, struct sp_error *err)
{
	return sp_sink_out_finish(&((struct json_sink *)self)->out, err);
}

static void json_free(struct sp_sink *self)
{
	free(self);
}

struct sp_sink *sp_sink_json_new(FILE *out)
{
	struct json_sink *j = sp_xcalloc(1, sizeof(*j));

	j->base.event = json_event;
	j->base.finish = json_finish;
	j->base.free = json_free;
	j->out.f = out;
	return &j->base;
}
