/*
 * sched.c — the next stage to start; see sched.h.
 */
#include "core/exec/sched.h"

unsigned sp_sched_in_flight(const struct sp_sched *s)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		n += s->stages[i].state == SP_SCHED_AHEAD || s->stages[i].state == SP_SCHED_RUNNING;
	return n;
}

/* The first need of idx that finished without passing, or -1 when none;
 * *pending: whether a need has not finished. */
static int failed_need(const struct sp_sched *s, size_t idx, size_t *need, bool *pending)
{
	const struct sp_sched_stage *st = &s->stages[idx];
	size_t j;

	*pending = false;
	for (j = 0; j < st->nneeds; j++) {
		const struct sp_sched_stage *d = &s->stages[st->needs[j]];
		if (d->state != SP_SCHED_DONE) {
			*pending = true;
		} else if (d->result != SP_RESULT_PASSED) {
			*need = st->needs[j];
			return 1;
		}
	}
	return 0;
}

enum sp_sched_gate sp_sched_gate(const struct sp_sched *s, size_t idx, size_t *need)
{
	bool pending;

	if (failed_need(s, idx, need, &pending))
		return SP_SCHED_GATE_FAIL;
	if (s->stop)
		return SP_SCHED_GATE_FAIL;
	return pending ? SP_SCHED_GATE_WAIT : SP_SCHED_GATE_GO;
}

enum sp_sched_action sp_sched_next(const struct sp_sched *s, size_t *idx,
				   enum sp_sched_skip *why, size_t *need)
{
	unsigned inflight = 0, running = 0;
	bool strict = s->jobs <= 1, idle = false, pending;
	size_t k, i, ahead = s->n;

	for (i = 0; i < s->n; i++) {
		inflight += s->stages[i].state == SP_SCHED_AHEAD ||
			    s->stages[i].state == SP_SCHED_RUNNING;
		running += s->stages[i].state == SP_SCHED_RUNNING;
	}
	if (strict && inflight)
		return SP_SCHED_WAIT;  /* one at a time: the next once it ended */
	for (k = 0; k < s->n; k++) {
		const struct sp_sched_stage *st;

		i = s->order[k];
		st = &s->stages[i];
		if (st->state != SP_SCHED_IDLE)
			continue;
		idle = true;
		*idx = i;
		if (!st->selected) {
			*why = SP_SCHED_SKIP_UNSELECTED;
			return SP_SCHED_SKIP;
		}
		if (s->stop) {
			*why = SP_SCHED_SKIP_STOPPED;
			return SP_SCHED_SKIP;
		}
		if (failed_need(s, i, need, &pending)) {
			*why = SP_SCHED_SKIP_NEED;
			return SP_SCHED_SKIP;
		}
		if (!pending && inflight < s->jobs)
			return SP_SCHED_RUN;
		if (strict)
			return SP_SCHED_WAIT;  /* one at a time, in order */
		/* ahead: while a stage is running (it will free its slot) or a
		 * slot stays free for a stage that can run */
		if (pending && s->ahead && ahead == s->n && inflight < s->jobs &&
		    (running > 0 || inflight + 1 < s->jobs))
			ahead = i;
	}
	if (ahead < s->n) {
		*idx = ahead;
		return SP_SCHED_GO_AHEAD;
	}
	if (!idle && inflight == 0)
		return SP_SCHED_END;
	return SP_SCHED_WAIT;
}
