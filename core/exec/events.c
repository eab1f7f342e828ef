/*
 * events.c — fan events out to sinks; see events.h.
 */
#include "core/exec/events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void sp_events_emit(struct sp_events *ev, const struct sp_event *e)
{
	size_t i;

	for (i = 0; i < ev->n; i++)
		ev->sinks[i]->event(ev->sinks[i], e);
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
