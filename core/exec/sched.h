/*
 * sched.h — which stage starts next when stages run concurrently.
 *
 * Pure bookkeeping, no threads and no I/O: the executor holds its lock
 * around every call.  A stage is started in one of two ways:
 *
 *   run    its needs all passed: build, command, promote, one after the
 *          other (as before concurrency);
 *   ahead  its needs are still running: its image builds now (BuildKit
 *          shares the stages it has in common with theirs), then it waits
 *          at its gate (sp_sched_gate) before its command, tags or pushes;
 *          if a need does not pass, it ends skipped and its image is
 *          discarded.
 *
 * At most `jobs` stages are in flight (started, not finished), waiting
 * ones included.  A stage goes ahead only while a stage is running or a
 * slot stays free for one that can run, so that waiting stages can never
 * hold every slot (no deadlock).  jobs == 1 is the old order exactly: one
 * stage at a time, in the pipeline's order, never ahead.
 */
#ifndef SP_SCHED_H
#define SP_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "core/exec/events.h"

enum sp_sched_state {
	SP_SCHED_IDLE,     /* not started */
	SP_SCHED_AHEAD,    /* started before its needs passed; waits at its gate */
	SP_SCHED_RUNNING,  /* started (or let through its gate) with its needs passed */
	SP_SCHED_DONE,
};

struct sp_sched_stage {
	const size_t *needs;         /* indexes of the stages it needs (borrowed) */
	size_t nneeds;
	bool selected;               /* false: skipped, "not selected" */
	enum sp_sched_state state;
	enum sp_stage_result result; /* once DONE */
};

struct sp_sched {
	struct sp_sched_stage *stages;  /* borrowed, n of them */
	size_t n;
	const size_t *order;            /* dependency order (borrowed) */
	unsigned jobs;                  /* at least 1 */
	bool ahead;                     /* allow starting ahead of needs */
	bool stop;                      /* no new stage starts (error or cancel) */
};

enum sp_sched_action {
	SP_SCHED_WAIT,       /* nothing to start now: wait for a stage to finish */
	SP_SCHED_SKIP,       /* *idx ends skipped without starting (*why says why) */
	SP_SCHED_RUN,        /* start *idx, needs passed */
	SP_SCHED_GO_AHEAD,   /* start *idx ahead of its needs */
	SP_SCHED_END,        /* every stage is DONE */
};

enum sp_sched_skip {
	SP_SCHED_SKIP_UNSELECTED,
	SP_SCHED_SKIP_STOPPED,
	SP_SCHED_SKIP_NEED,   /* *need: the first need that did not pass */
};

/*
 * The next step.  For SKIP, *why and *need (for SP_SCHED_SKIP_NEED) say
 * why.  The caller then sets the stage's state (DONE with its result,
 * RUNNING or AHEAD) before asking again.
 */
enum sp_sched_action sp_sched_next(const struct sp_sched *s, size_t *idx,
				   enum sp_sched_skip *why, size_t *need);

enum sp_sched_gate {
	SP_SCHED_GATE_WAIT,   /* a need is not finished */
	SP_SCHED_GATE_GO,     /* every need passed */
	SP_SCHED_GATE_FAIL,   /* a need did not pass (*need), or the pipeline stopped */
};

/* For an AHEAD stage: may it go on?  *need as for SKIP (unset on stop). */
enum sp_sched_gate sp_sched_gate(const struct sp_sched *s, size_t idx, size_t *need);

/* Stages started and not DONE. */
unsigned sp_sched_in_flight(const struct sp_sched *s);

#endif
