/*
 * events.c — fan events out to sinks; see events.h.
 *
 * With secrets (ev->mask), each event is copied with its texts masked
 * before the sinks see it: the one place that covers the terminal, the
 * JSON lines (and so everything serve and agents derive from them) and
 * the JUnit writer.
 */
#include "core/exec/events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/exec/sinks.h"
#include "core/base/xalloc.h"

const char *sp_stage_result_name(enum sp_stage_result r)
{
	switch (r) {
	case SP_RESULT_PENDING: return "pending";
	case SP_RESULT_PASSED: return "passed";
	case SP_RESULT_FAILED: return "failed";
	case SP_RESULT_SKIPPED: return "skipped";
	case SP_RESULT_CANCELLED: return "cancelled";
	case SP_RESULT_ERROR: return "error";
	}
	return "unknown";
}

void sp_events_add(struct sp_events *ev, struct sp_sink *sink)
{
	SP_GROW(ev->sinks, ev->alloc, ev->n + 1);
	ev->sinks[ev->n++] = sink;
}

static void fan_out(struct sp_events *ev, const struct sp_event *e)
{
	size_t i;

	for (i = 0; i < ev->n; i++)
		ev->sinks[i]->event(ev->sinks[i], e);
}

static char **mask_strv(const struct sp_mask *m, char *const *v, size_t n)
{
	char **out = sp_xcalloc(n + 1, sizeof(*out));
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = sp_mask_dup(m, v[i]);
	return out;
}

static void free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* A copy of in whose texts are masked; the rest is borrowed from in. */
static void report_masked(const struct sp_mask *m, const struct sp_stage_report *in,
			  struct sp_stage_report *out)
{
	size_t i;

	*out = *in;
	out->message = sp_mask_dup(m, in->message);
	out->failures = sp_xcalloc(in->nfailures + 1, sizeof(*out->failures));
	for (i = 0; i < in->nfailures; i++) {
		out->failures[i].id = sp_mask_dup(m, in->failures[i].id);
		out->failures[i].message = sp_mask_dup(m, in->failures[i].message);
		out->failures[i].detail = sp_mask_dup(m, in->failures[i].detail);
	}
	out->refs = mask_strv(m, in->refs, in->nrefs);
	out->pushed = mask_strv(m, in->pushed, in->npushed);
}

static void report_masked_free(struct sp_stage_report *r)
{
	size_t i;

	free(r->message);
	for (i = 0; i < r->nfailures; i++) {
		free(r->failures[i].id);
		free(r->failures[i].message);
		free(r->failures[i].detail);
	}
	free(r->failures);
	free_strv(r->refs, r->nrefs);
	free_strv(r->pushed, r->npushed);
}

/* The event with every text masked (log line, messages, reports). */
static void emit_masked(struct sp_events *ev, const struct sp_event *e)
{
	struct sp_event c = *e;
	struct sp_buf line = SP_BUF_INIT;
	struct sp_stage_report one, *many = NULL;
	char *message = NULL;
	size_t i;

	switch (e->kind) {
	case SP_EVENT_LOG:
		sp_mask_text(ev->mask, e->line, e->len, &line);
		c.line = line.data;
		c.len = line.len;
		break;
	case SP_EVENT_STAGE_FINISHED:
		if (e->report) {
			report_masked(ev->mask, e->report, &one);
			c.report = &one;
		}
		break;
	case SP_EVENT_SERVICE:
		message = sp_mask_dup(ev->mask, e->message);
		c.message = message;
		break;
	case SP_EVENT_PIPELINE_FINISHED:
		message = sp_mask_dup(ev->mask, e->message);
		c.message = message;
		many = sp_xcalloc(e->nreports + 1, sizeof(*many));
		for (i = 0; i < e->nreports; i++)
			report_masked(ev->mask, &e->reports[i], &many[i]);
		c.reports = e->nreports ? many : e->reports;
		break;
	default:
		break;
	}
	fan_out(ev, &c);
	if (e->kind == SP_EVENT_STAGE_FINISHED && e->report)
		report_masked_free(&one);
	for (i = 0; many && i < e->nreports; i++)
		report_masked_free(&many[i]);
	free(many);
	free(message);
	sp_buf_release(&line);
}

void sp_events_emit(struct sp_events *ev, const struct sp_event *e)
{
	if (sp_mask_active(ev->mask))
		emit_masked(ev, e);
	else
		fan_out(ev, e);
}

int sp_events_finish(struct sp_events *ev, struct sp_error *err)
{
	size_t i;
	int rc = 0, r;

	for (i = 0; i < ev->n; i++) {
		if (!ev->sinks[i]->finish)
			continue;
		r = ev->sinks[i]->finish(ev->sinks[i], rc < 0 ? NULL : err);
		if (r < 0 && rc == 0)
			rc = r;
	}
	return rc;
}

void sp_events_release(struct sp_events *ev)
{
	size_t i;

	for (i = 0; i < ev->n; i++)
		ev->sinks[i]->free(ev->sinks[i]);
	free(ev->sinks);
	memset(ev, 0, sizeof(*ev));
}

void sp_stage_report_release(struct sp_stage_report *r)
{
	size_t i;

	if (!r)
		return;
	free(r->message);
	free(r->image_id);
	for (i = 0; i < r->nfailures; i++) {
		free(r->failures[i].id);
		free(r->failures[i].message);
		free(r->failures[i].detail);
	}
	free(r->failures);
	free(r->junit_path);
	free(r->coverage_path);
	for (i = 0; i < r->nrefs; i++)
		free(r->refs[i]);
	free(r->refs);
	for (i = 0; i < r->npushed; i++)
		free(r->pushed[i]);
	free(r->pushed);
	memset(r, 0, sizeof(*r));
}

void sp_sink_out_check(struct sp_sink_out *o)
{
	if (ferror(o->f) && !o->write_errno)
		o->write_errno = errno ? errno : EIO;
}

int sp_sink_out_finish(struct sp_sink_out *o, struct sp_error *err)
{
	if (fflush(o->f) != 0 && !o->write_errno)
		o->write_errno = errno ? errno : EIO;
	if (!ferror(o->f))
		return 0;
	return sp_error_set(err, SP_ERROR, "writing the output failed: %s",
			    strerror(o->write_errno ? o->write_errno : EIO));
}
