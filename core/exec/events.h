/*
 * events.h — the one event stream of a pipeline run, and its sinks.
 *
 * The executor reports everything that happens as events; sinks decide
 * what to do with them (print for a terminal, JSON lines for a machine,
 * JUnit/Cobertura files for an outer CI, later a log store or a forge
 * status).  The executor never prints and never knows which sinks
 * listen; sinks never touch Docker.
 *
 * Everything an event points to is borrowed for the duration of the
 * call; a sink that keeps something copies it.
 */
#ifndef SP_EVENTS_H
#define SP_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/base/mask.h"
#include "core/pipeline/pipeline.h"
#include "runners/runner.h"

enum sp_stage_result {
	SP_RESULT_PENDING,
	SP_RESULT_PASSED,
	SP_RESULT_FAILED,     /* the stage's own fault: a test, a gate, the build */
	SP_RESULT_SKIPPED,    /* a stage it needs did not pass, or not selected */
	SP_RESULT_CANCELLED,  /* interrupted */
	SP_RESULT_ERROR,      /* infrastructure: engine, registry */
};

const char *sp_stage_result_name(enum sp_stage_result r);

struct sp_test_failure {
	char *id;       /* "tests/test_items.py::test_create" */
	char *message;  /* first line */
	char *detail;   /* last lines of the traceback; may be "" */
};

/* What one stage did; owned by the executor, filled as the stage runs. */
struct sp_stage_report {
	const struct sp_stage *stage;
	enum sp_stage_result result;
	char *message;              /* why it failed/skipped; NULL when passed */
	double seconds;
	char *image_id;             /* the image built for the stage */
	bool has_exit_code;
	int exit_code;              /* of the stage's command */
	bool has_tests;
	unsigned long tests, passed, failed, errors, skipped;
	struct sp_test_failure *failures;
	size_t nfailures;
	unsigned long failures_omitted;
	bool has_coverage;
	double coverage;            /* line coverage, percent */
	char *junit_path;           /* reports copied out of the container */
	char *coverage_path;
	char **refs;                /* tags given to the image, expanded */
	size_t nrefs;
	char **pushed;              /* "ref@sha256:…" per pushed tag */
	size_t npushed;
	/* artifacts: copied out (with --artifacts), see runner.h */
	bool has_artifacts;
	unsigned long artifacts_entries;
	unsigned long long artifacts_bytes;
	unsigned artifacts_warnings;    /* paths that found nothing or failed */
};

enum sp_event_kind {
	SP_EVENT_PIPELINE_STARTED,
	SP_EVENT_STAGE_STARTED,
	SP_EVENT_LOG,
	SP_EVENT_STAGE_FINISHED,   /* also for skipped stages */
	SP_EVENT_PIPELINE_FINISHED,
	SP_EVENT_SERVICE,          /* a stage's service starts, is ready, fails, is removed */
};

struct sp_event {
	enum sp_event_kind kind;
	const struct sp_pipeline *pipeline;
	const char *job_id;
	/* STAGE_* and LOG */
	const struct sp_stage *stage;
	const struct sp_stage_report *report;  /* STAGE_FINISHED */
	/* LOG */
	enum sp_log_stream stream;
	const char *line;                      /* not NUL-terminated */
	size_t len;
	/* PIPELINE_FINISHED */
	enum sp_stage_result result;
	double seconds;
	const struct sp_stage_report *reports; /* every stage, file order */
	size_t nreports;
	const char *message;                   /* why the pipeline did not pass;
						* SERVICE: the detail */
	/* SERVICE (with stage) */
	const char *service;                   /* its name */
	enum sp_service_state service_state;
};

struct sp_sink {
	void (*event)(struct sp_sink *self, const struct sp_event *ev);
	/* Called once at the end; returns < 0 (and fills err) when the sink
	 * could not do its job (e.g. writing a report file failed). */
	int (*finish)(struct sp_sink *self, struct sp_error *err);
	void (*free)(struct sp_sink *self);
};

struct sp_events {
	struct sp_sink **sinks;
	size_t n, alloc;
	/*
	 * The pipeline's secrets (borrowed; NULL or empty: none).  Every
	 * event is masked with it before any sink sees it: log lines, stage
	 * and pipeline messages, test failures, refs.  Sinks need not care.
	 */
	const struct sp_mask *mask;
};

#define SP_EVENTS_INIT { NULL, 0, 0, NULL }

/* Adds a sink; the list owns it from now on. */
void sp_events_add(struct sp_events *ev, struct sp_sink *sink);
void sp_events_emit(struct sp_events *ev, const struct sp_event *e);
/* Calls every sink's finish; returns the first error. */
int sp_events_finish(struct sp_events *ev, struct sp_error *err);
/* Frees the sinks. */
void sp_events_release(struct sp_events *ev);

void sp_stage_report_release(struct sp_stage_report *r);

#endif
