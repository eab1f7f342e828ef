/*
 * sinks.h — the built-in event sinks (see events.h).
 *
 *   term     the terminal view: each stage's output as it runs, a result
 *            line per stage, failures, and a summary table at the end
 *   json     one JSON object per event per line (`stagepipe run --json`)
 *   reports  --junit FILE (stages and the tests inside them, JUnit XML)
 *            and --coverage FILE (the Cobertura XML of the test stage)
 *
 * Each returns a new sink that the event list takes over.
 */
#ifndef SP_SINKS_H
#define SP_SINKS_H

#include <stdbool.h>
#include <stdio.h>

#include "core/exec/events.h"

/*
 * For sinks that write to a stream: remember the first failed write
 * (call after each event) and report it at the end, so that a full disk
 * or a closed pipe never passes for success.
 */
struct sp_sink_out {
	FILE *f;          /* borrowed */
	int write_errno;  /* errno of the first failed write; 0 while none */
};

void sp_sink_out_check(struct sp_sink_out *o);
/* Flushes; 0, or SP_ERROR "writing the output failed: <reason>". */
int sp_sink_out_finish(struct sp_sink_out *o, struct sp_error *err);

/* out is borrowed (not closed). */
struct sp_sink *sp_sink_term_new(FILE *out, bool color);
struct sp_sink *sp_sink_json_new(FILE *out);
/*
 * Either path may be NULL.  coverage_path gets the first stage's coverage
 * report; each matrix variant with coverage also gets its own copy at
 * sp_reports_variant_path(coverage_path, its name).  The JUnit file holds
 * every stage, variants included, under their own names.
 */
struct sp_sink *sp_sink_reports_new(const char *junit_path, const char *coverage_path);

/*
 * path with the stage's name before its extension, brackets and commas
 * made dashes: ("out/coverage.xml", "test[3.11,pg]") gives
 * "out/coverage.test-3.11-pg.xml".  A new string the caller frees.
 */
char *sp_reports_variant_path(const char *path, const char *stage);

#endif
