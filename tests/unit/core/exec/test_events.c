/*
 * test_events.c — the event fan-out masks secrets before any sink sees
 * an event (log lines, messages, failures, refs), and costs nothing
 * without secrets (the sink gets the very same event).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/mask.h"
#include "core/base/xalloc.h"
#include "core/exec/events.h"

struct rec {
	struct sp_sink base;
	struct sp_buf text;          /* everything seen, one item per line */
	const struct sp_event *last;
};

static void rec_report(struct sp_buf *b, const struct sp_stage_report *r)
{
	size_t i;

	sp_buf_addf(b, "message=%s\n", r->message ? r->message : "");
	for (i = 0; i < r->nfailures; i++)
		sp_buf_addf(b, "failure=%s|%s|%s\n", r->failures[i].id, r->failures[i].message,
			    r->failures[i].detail);
	for (i = 0; i < r->nrefs; i++)
		sp_buf_addf(b, "ref=%s\n", r->refs[i]);
	for (i = 0; i < r->npushed; i++)
		sp_buf_addf(b, "pushed=%s\n", r->pushed[i]);
}

static void rec_event(struct sp_sink *self, const struct sp_event *ev)
{
	struct rec *r = (struct rec *)self;
	size_t i;

	r->last = ev;
	switch (ev->kind) {
	case SP_EVENT_LOG:
		sp_buf_addf(&r->text, "log=%.*s\n", (int)ev->len, ev->line);
		break;
	case SP_EVENT_STAGE_FINISHED:
		rec_report(&r->text, ev->report);
		break;
	case SP_EVENT_PIPELINE_FINISHED:
		sp_buf_addf(&r->text, "pipeline=%s\n", ev->message ? ev->message : "");
		for (i = 0; i < ev->nreports; i++)
			rec_report(&r->text, &ev->reports[i]);
		break;
	default:
		break;
	}
}

static void rec_free(struct sp_sink *self)
{
	struct rec *r = (struct rec *)self;

	sp_buf_release(&r->text);
	free(r);
}

static struct rec *rec_new(void)
{
	struct rec *r = sp_xcalloc(1, sizeof(*r));

	r->base.event = rec_event;
	r->base.free = rec_free;
	sp_buf_init(&r->text, 0);
	return r;
}

static void fill_report(struct sp_stage_report *rep, char **refs, struct sp_test_failure *f)
{
	memset(rep, 0, sizeof(*rep));
	rep->result = SP_RESULT_FAILED;
	rep->message = (char *)"1 test failed: token was s3cr3t-T0KEN";
	f->id = (char *)"tests/test_x.py::test_s3cr3t-T0KEN";
	f->message = (char *)"assert 's3cr3t-T0KEN' == 'x'";
	f->detail = (char *)"E  czNjcjN0LVQwS0VO";  /* base64 of the secret */
	rep->failures = f;
	rep->nfailures = 1;
	refs[0] = (char *)"reg/app:s3cr3t-T0KEN";
	rep->refs = refs;
	rep->nrefs = 1;
}

static void test_masked(void **state)
{
	struct sp_events ev = SP_EVENTS_INIT;
	struct sp_mask *m = sp_mask_new();
	struct sp_error err = SP_ERROR_INIT;
	struct rec *r = rec_new();
	struct sp_stage_report rep;
	struct sp_test_failure f;
	char *refs[1];
	struct sp_event e;
	const char line[] = "export TOKEN=s3cr3t-T0KEN; url=a?t=s3cr3t%2DT0KEN";

	(void)state;
	assert_int_equal(sp_mask_add(m, "s3cr3t-T0KEN", 12, &err), 0);
	ev.mask = m;
	sp_events_add(&ev, &r->base);
	fill_report(&rep, refs, &f);

	memset(&e, 0, sizeof(e));
	e.kind = SP_EVENT_LOG;
	e.line = line;
	e.len = sizeof(line) - 1;
	sp_events_emit(&ev, &e);
	e.kind = SP_EVENT_STAGE_FINISHED;
	e.report = &rep;
	sp_events_emit(&ev, &e);
	memset(&e, 0, sizeof(e));
	e.kind = SP_EVENT_PIPELINE_FINISHED;
	e.message = "failed: s3cr3t-T0KEN";
	e.reports = &rep;
	e.nreports = 1;
	sp_events_emit(&ev, &e);

	assert_null(strstr(r->text.data, "s3cr3t"));
	assert_null(strstr(r->text.data, "czNjcjN0LVQwS0VO"));
	assert_non_null(strstr(r->text.data, "log=export TOKEN=***; url=a?t=***\n"));
	assert_non_null(strstr(r->text.data, "failure=tests/test_x.py::test_***|assert '***' == 'x'|E  ***\n"));
	assert_non_null(strstr(r->text.data, "ref=reg/app:***\n"));
	assert_non_null(strstr(r->text.data, "pipeline=failed: ***\n"));
	/* the caller's report is untouched */
	assert_string_equal(rep.message, "1 test failed: token was s3cr3t-T0KEN");
	sp_events_release(&ev);
	sp_mask_free(m);
}

static void test_no_secrets_same_event(void **state)
{
	struct sp_events ev = SP_EVENTS_INIT;
	struct sp_mask *empty = sp_mask_new();
	struct rec *r = rec_new();
	struct sp_event e;

	(void)state;
	ev.mask = empty;
	sp_events_add(&ev, &r->base);
	memset(&e, 0, sizeof(e));
	e.kind = SP_EVENT_LOG;
	e.line = "plain";
	e.len = 5;
	sp_events_emit(&ev, &e);
	assert_ptr_equal(r->last, &e);
	sp_events_release(&ev);
	sp_mask_free(empty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_masked),
		cmocka_unit_test(test_no_secrets_same_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
