/*
 * sink_term.c — the terminal view of a run; see sinks.h.
 *
 * Output lines are printed as they come, indented under their stage's
 * header; stagepipe's own notes are marked with "::".  Nothing is kept
 * per line, so a stage printing 200 MB costs no memory here.  A failed
 * write (stdout sent to a full disk) is noted as it happens and reported
 * by finish, so the run does not exit 0 with its output cut.
 *
 * Every line is flushed as it comes except build output, which can be
 * thousands of lines a second: that is flushed at least every
 * BUILD_FLUSH_MS, so a pipe (CI's log, `| tee`) still shows a long build
 * as it goes and a kill -9 loses at most that much of it.
 *
 * Stages in flight together (run --jobs): from the moment a second stage
 * starts while one runs, every output line and service line is prefixed
 * with its stage's name ("[test]    ...", "[promote] :: ..."), padded to
 * the longest name in flight so far, up to the end of the run; a stage's
 * header and its result block stay whole (events come one at a time,
 * under the executor's lock).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/clock.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/exec/sinks.h"
#include "core/base/xalloc.h"

struct term {
	struct sp_sink base;
	struct sp_sink_out out;
	bool color;
	int64_t flushed_ms;	/* sp_clock_ms of the last flush */
	const struct sp_stage **inflight;  /* started, not finished (borrowed) */
	size_t ninflight, inflight_alloc;
	bool prefix;		/* two stages were in flight: lines say whose they are */
	int width;		/* of the prefix's names */
};

#define BUILD_FLUSH_MS 200

#define C(t, code) ((t)->color ? "\033[" code "m" : "")
#define RESET(t) C(t, "0")

static const char *result_color(const struct term *t, enum sp_stage_result r)
{
	switch (r) {
	case SP_RESULT_PASSED: return C(t, "32");
	case SP_RESULT_SKIPPED: return C(t, "33");
	case SP_RESULT_PENDING: return "";
	default: return C(t, "31");
	}
}

/* Text from reports may hold terminal escapes: show control bytes as '?'. */
static void put_clean(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 && *s != '\t' ? '?' : *s, out);
}

static void tests_line(struct term *t, const struct sp_stage_report *rep)
{
	const struct sp_stage *st = rep->stage;

	if (rep->has_tests) {
		fprintf(t->out.f, "   %lu passed, %lu failed", rep->passed, rep->failed);
		if (rep->errors)
			fprintf(t->out.f, ", %lu errors", rep->errors);
		fprintf(t->out.f, ", %lu skipped", rep->skipped);
	}
	if (rep->has_coverage) {
		fprintf(t->out.f, "%s coverage %.1f%%", rep->has_tests ? " —" : "   ", rep->coverage);
		if (st->has_coverage_min)
			fprintf(t->out.f, " (min %g%%)", st->coverage_min);
	}
	if (rep->has_tests || rep->has_coverage)
		fputc('\n', t->out.f);
}

static void stage_finished(struct term *t, const struct sp_stage_report *rep)
{
	size_t i;

	if (rep->result == SP_RESULT_SKIPPED) {
		fprintf(t->out.f, "%s-- %s skipped%s: %s\n", result_color(t, rep->result),
			rep->stage->name, RESET(t), rep->message ? rep->message : "");
		return;
	}
	fprintf(t->out.f, "%s== %s %s%s in %.1fs", result_color(t, rep->result), rep->stage->name,
		sp_stage_result_name(rep->result), RESET(t), rep->seconds);
	if (rep->message) {
		fputs(": ", t->out.f);
		put_clean(t->out.f, rep->message);
	}
	fputc('\n', t->out.f);
	tests_line(t, rep);
	for (i = 0; i < rep->nfailures; i++) {
		fprintf(t->out.f, "   %sFAILED%s ", C(t, "31"), RESET(t));
		put_clean(t->out.f, rep->failures[i].id);
		if (*rep->failures[i].message) {
			fputs(" — ", t->out.f);
			put_clean(t->out.f, rep->failures[i].message);
		}
		fputc('\n', t->out.f);
	}
	if (rep->failures_omitted)
		fprintf(t->out.f, "   ... and %lu more\n", rep->failures_omitted);
	for (i = 0; i < rep->npushed; i++)
		fprintf(t->out.f, "   pushed %s\n", rep->pushed[i]);
}

/* "ref@sha256:<64 hex>" or "sha256:<64 hex>" with the digest cut to 12 hex */
static void short_image(FILE *out, const char *image)
{
	const char *d = strstr(image, "sha256:");

	if (d && strlen(d) > 7 + 12)
		fprintf(out, "%.*s\n", (int)(d - image) + 7 + 12, image);
	else
		fprintf(out, "%s\n", image);
}

static void summary(struct term *t, const struct sp_event *ev)
{
	size_t i, w = 5;

	for (i = 0; i < ev->nreports; i++)
		if (strlen(ev->reports[i].stage->name) > w)
			w = strlen(ev->reports[i].stage->name);
	fprintf(t->out.f, "\n%-*s  %-9s  %8s  %-22s  %-9s  %s\n", (int)w, "stage", "result",
		"duration", "tests", "coverage", "image");
	for (i = 0; i < ev->nreports; i++) {
		const struct sp_stage_report *rep = &ev->reports[i];
		char tests[64] = "-", cov[32] = "-", dur[32] = "-";
		const char *image = rep->npushed ? rep->pushed[0] :
				    rep->nrefs ? rep->refs[0] :
				    rep->image_id ? rep->image_id : "-";
		if (rep->has_tests)
			snprintf(tests, sizeof(tests), "%lu/%lu passed", rep->passed, rep->tests);
		if (rep->has_coverage)
			snprintf(cov, sizeof(cov), "%.1f%%", rep->coverage);
		if (rep->result != SP_RESULT_SKIPPED)
			snprintf(dur, sizeof(dur), "%.1fs", rep->seconds);
		fprintf(t->out.f, "%-*s  %s%-9s%s  %8s  %-22s  %-9s  ", (int)w, rep->stage->name,
			result_color(t, rep->result), sp_stage_result_name(rep->result), RESET(t),
			dur, tests, cov);
		short_image(t->out.f, image);
		for (size_t j = 1; j < rep->npushed; j++) {
			fprintf(t->out.f, "%-*s  %-9s  %8s  %-22s  %-9s  ", (int)w, "", "", "", "", "");
			short_image(t->out.f, rep->pushed[j]);
		}
	}
	fprintf(t->out.f, "\n%spipeline %s %s%s in %.1fs\n", result_color(t, ev->result),
		ev->pipeline->name, sp_stage_result_name(ev->result), RESET(t), ev->seconds);
	if (ev->message && ev->result != SP_RESULT_PASSED)
		fprintf(t->out.f, "%s\n", ev->message);
}

static void started(struct term *t, const struct sp_stage *st)
{
	size_t i;

	SP_GROW(t->inflight, t->inflight_alloc, t->ninflight + 1);
	t->inflight[t->ninflight++] = st;
	if (t->ninflight > 1)
		t->prefix = true;
	if (t->prefix)
		for (i = 0; i < t->ninflight; i++)
			if ((int)strlen(t->inflight[i]->name) > t->width)
				t->width = (int)strlen(t->inflight[i]->name);
}

static void finished(struct term *t, const struct sp_stage *st)
{
	size_t i;

	for (i = 0; i < t->ninflight; i++)
		if (t->inflight[i] == st) {
			t->inflight[i] = t->inflight[--t->ninflight];
			return;
		}
}

/* "[name]  " before a stage's line once stages run together. */
static void line_prefix(struct term *t, const struct sp_stage *st)
{
	if (!t->prefix || !st)
		return;
	fprintf(t->out.f, "%s[%s]%s%*s ", C(t, "36"), st->name, RESET(t),
		t->width - (int)strlen(st->name), "");
}

static void term_event(struct sp_sink *self, const struct sp_event *ev)
{
	struct term *t = (struct term *)self;

	switch (ev->kind) {
	case SP_EVENT_PIPELINE_STARTED:
		fprintf(t->out.f, "%spipeline %s%s (job %s)\n", C(t, "1"), ev->pipeline->name,
			RESET(t), ev->job_id);
		break;
	case SP_EVENT_STAGE_STARTED:
		started(t, ev->stage);
		fprintf(t->out.f, "\n%s== %s%s (target %s)\n", C(t, "1"), ev->stage->name, RESET(t),
			ev->stage->target);
		break;
	case SP_EVENT_LOG:
		line_prefix(t, ev->stage);
		fputs(ev->stream == SP_STREAM_INFO ? ":: " : "   ", t->out.f);
		fwrite(ev->line, 1, ev->len, t->out.f);
		fputc('\n', t->out.f);
		break;
	case SP_EVENT_STAGE_FINISHED:
		finished(t, ev->stage);
		stage_finished(t, ev->report);
		break;
	case SP_EVENT_PIPELINE_FINISHED:
		summary(t, ev);
		break;
	case SP_EVENT_SERVICE:
		line_prefix(t, ev->stage);
		fprintf(t->out.f, ":: service %s %s%s", ev->service,
			sp_service_state_name(ev->service_state), ev->message ? ": " : "");
		if (ev->message)
			put_clean(t->out.f, ev->message);
		fputc('\n', t->out.f);
		break;
	}
	if (ev->kind != SP_EVENT_LOG || ev->stream != SP_STREAM_BUILD ||
	    sp_clock_ms() - t->flushed_ms >= BUILD_FLUSH_MS) {
		fflush(t->out.f);
		t->flushed_ms = sp_clock_ms();
	}
	sp_sink_out_check(&t->out);
}

static int term_finish(struct sp_sink *self, struct sp_error *err)
{
	return sp_sink_out_finish(&((struct term *)self)->out, err);
}

static void term_free(struct sp_sink *self)
{
	free(((struct term *)self)->inflight);
	free(self);
}

struct sp_sink *sp_sink_term_new(FILE *out, bool color)
{
	struct term *t = sp_xcalloc(1, sizeof(*t));

	t->base.event = term_event;
	t->base.finish = term_finish;
	t->base.free = term_free;
	t->out.f = out;
	t->color = color;
	return &t->base;
}
