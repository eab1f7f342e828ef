/*
 * test_sched.c — which stage starts next (core/exec/sched.h): concurrent
 * stages up to jobs, builds ahead of needs, the gate, skips, stop, the
 * old one-at-a-time order with jobs 1, and no deadlock on random
 * pipelines whatever the jobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/exec/sched.h"

#define MAXN 12

struct sim {
	struct sp_sched s;
	struct sp_sched_stage st[MAXN];
	size_t needs[MAXN][MAXN];
	size_t order[MAXN];
};

/* n stages in order 0..n-1; needs given as pairs (stage, need) */
static void sim_init(struct sim *m, size_t n, unsigned jobs, const size_t *pairs, size_t npairs)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++) {
		m->order[i] = i;
		m->st[i].needs = m->needs[i];
		m->st[i].selected = true;
	}
	for (i = 0; i < npairs; i++) {
		struct sp_sched_stage *s = &m->st[pairs[2 * i]];
		m->needs[pairs[2 * i]][s->nneeds++] = pairs[2 * i + 1];
	}
	m->s.stages = m->st;
	m->s.n = n;
	m->s.order = m->order;
	m->s.jobs = jobs;
	m->s.ahead = true;
}

/* next(), applying a start (RUN or GO_AHEAD) or a skip; returns the action */
static enum sp_sched_action step(struct sim *m, size_t *idx)
{
	enum sp_sched_skip why;
	size_t need;
	enum sp_sched_action a = sp_sched_next(&m->s, idx, &why, &need);

	if (a == SP_SCHED_RUN)
		m->st[*idx].state = SP_SCHED_RUNNING;
	else if (a == SP_SCHED_GO_AHEAD)
		m->st[*idx].state = SP_SCHED_AHEAD;
	else if (a == SP_SCHED_SKIP) {
		m->st[*idx].state = SP_SCHED_DONE;
		m->st[*idx].result = SP_RESULT_SKIPPED;
	}
	return a;
}

static void done(struct sim *m, size_t i, enum sp_stage_result r)
{
	m->st[i].state = SP_SCHED_DONE;
	m->st[i].result = r;
}

static void test_example_overlaps(void **state)
{
	static const size_t needs[] = { 1, 0 };  /* promote needs test */
	struct sim m;
	size_t idx, need;

	(void)state;
	sim_init(&m, 2, 2, needs, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 0);
	assert_int_equal(step(&m, &idx), SP_SCHED_GO_AHEAD);
	assert_int_equal(idx, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_WAIT);
	assert_int_equal(sp_sched_in_flight(&m.s), 2);
	assert_int_equal(sp_sched_gate(&m.s, 1, &need), SP_SCHED_GATE_WAIT);
	done(&m, 0, SP_RESULT_PASSED);
	assert_int_equal(sp_sched_gate(&m.s, 1, &need), SP_SCHED_GATE_GO);
	m.st[1].state = SP_SCHED_RUNNING;
	assert_int_equal(step(&m, &idx), SP_SCHED_WAIT);
	done(&m, 1, SP_RESULT_PASSED);
	assert_int_equal(step(&m, &idx), SP_SCHED_END);
}

static void test_failed_need_fails_the_gate(void **state)
{
	static const size_t needs[] = { 1, 0, 2, 1 };  /* test <- promote <- deploy */
	struct sim m;
	size_t idx, need = 99;
	enum sp_sched_skip why;

	(void)state;
	sim_init(&m, 3, 4, needs, 2);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(step(&m, &idx), SP_SCHED_GO_AHEAD);
	assert_int_equal(idx, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_GO_AHEAD);
	assert_int_equal(idx, 2);
	done(&m, 0, SP_RESULT_FAILED);
	assert_int_equal(sp_sched_gate(&m.s, 1, &need), SP_SCHED_GATE_FAIL);
	assert_int_equal(need, 0);
	/* deploy waits for promote, which has not ended yet */
	assert_int_equal(sp_sched_gate(&m.s, 2, &need), SP_SCHED_GATE_WAIT);
	done(&m, 1, SP_RESULT_SKIPPED);
	assert_int_equal(sp_sched_gate(&m.s, 2, &need), SP_SCHED_GATE_FAIL);
	assert_int_equal(need, 1);
	done(&m, 2, SP_RESULT_SKIPPED);
	assert_int_equal(sp_sched_next(&m.s, &idx, &why, &need), SP_SCHED_END);
}

static void test_idle_stage_after_failed_need_skipped(void **state)
{
	static const size_t needs[] = { 1, 0 };
	struct sim m;
	size_t idx, need = 99;
	enum sp_sched_skip why;

	(void)state;
	sim_init(&m, 2, 1, needs, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(step(&m, &idx), SP_SCHED_WAIT);  /* jobs 1: never ahead */
	done(&m, 0, SP_RESULT_FAILED);
	assert_int_equal(sp_sched_next(&m.s, &idx, &why, &need), SP_SCHED_SKIP);
	assert_int_equal(idx, 1);
	assert_int_equal(why, SP_SCHED_SKIP_NEED);
	assert_int_equal(need, 0);
}

static void test_jobs1_keeps_the_old_order(void **state)
{
	/* b unselected, c independent: each only after the one before ended */
	struct sim m;
	size_t idx, need;
	enum sp_sched_skip why;

	(void)state;
	sim_init(&m, 3, 1, NULL, 0);
	m.st[1].selected = false;
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 0);
	assert_int_equal(step(&m, &idx), SP_SCHED_WAIT);
	done(&m, 0, SP_RESULT_PASSED);
	assert_int_equal(sp_sched_next(&m.s, &idx, &why, &need), SP_SCHED_SKIP);
	assert_int_equal(idx, 1);
	assert_int_equal(why, SP_SCHED_SKIP_UNSELECTED);
	done(&m, 1, SP_RESULT_SKIPPED);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 2);
}

static void test_independent_stages_run_together(void **state)
{
	struct sim m;
	size_t idx;

	(void)state;
	sim_init(&m, 3, 2, NULL, 0);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 0);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_WAIT);  /* two slots taken */
	done(&m, 1, SP_RESULT_PASSED);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 2);
}

static void test_ahead_leaves_a_slot(void **state)
{
	/* a <- b <- c with 3 jobs: a runs, b and c may build ahead (a runs);
	 * with waiting stages only, the last slot is kept for one that can run */
	static const size_t needs[] = { 1, 0, 2, 1, 4, 3 };  /* a<-b<-c, d<-e */
	struct sim m;
	size_t idx, need;

	(void)state;
	sim_init(&m, 5, 3, needs, 3);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);   /* a */
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);   /* d */
	assert_int_equal(idx, 3);
	assert_int_equal(step(&m, &idx), SP_SCHED_GO_AHEAD);  /* b */
	assert_int_equal(idx, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_WAIT);
	done(&m, 0, SP_RESULT_PASSED);
	done(&m, 3, SP_RESULT_PASSED);
	/* b is still waiting (not let through yet); d done: e can run */
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);
	assert_int_equal(idx, 4);
	assert_int_equal(sp_sched_gate(&m.s, 1, &need), SP_SCHED_GATE_GO);
}

static void test_stop_skips_and_fails_gates(void **state)
{
	static const size_t needs[] = { 1, 0 };
	struct sim m;
	size_t idx, need;
	enum sp_sched_skip why;

	(void)state;
	sim_init(&m, 3, 3, needs, 1);
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);      /* 0 */
	assert_int_equal(step(&m, &idx), SP_SCHED_RUN);      /* 2 */
	assert_int_equal(step(&m, &idx), SP_SCHED_GO_AHEAD); /* 1 */
	done(&m, 2, SP_RESULT_ERROR);
	m.s.stop = true;
	need = 99;
	assert_int_equal(sp_sched_gate(&m.s, 1, &need), SP_SCHED_GATE_FAIL);
	assert_int_equal(need, 99);  /* stopped, not a need */
	done(&m, 0, SP_RESULT_PASSED);
	done(&m, 1, SP_RESULT_SKIPPED);
	assert_int_equal(sp_sched_next(&m.s, &idx, &why, &need), SP_SCHED_END);

	sim_init(&m, 2, 2, NULL, 0);
	m.s.stop = true;
	assert_int_equal(sp_sched_next(&m.s, &idx, &why, &need), SP_SCHED_SKIP);
	assert_int_equal(why, SP_SCHED_SKIP_STOPPED);
}

/* Random DAGs, random results and finishing order, jobs 1..4: never
 * more than jobs in flight, never stuck, every stage ends, and with
 * jobs 1 stages start in order and never ahead. */
static void test_random_no_deadlock(void **state)
{
	unsigned seed = 12345, round;

	(void)state;
	for (round = 0; round < 3000; round++) {
		struct sim m;
		size_t pairs[2 * MAXN * MAXN], npairs = 0, n, i, j, idx, need;
		unsigned jobs, steps = 0;
		size_t started[MAXN], nstarted = 0;

		n = 1 + (size_t)(rand_r(&seed) % MAXN);
		jobs = 1 + (unsigned)(rand_r(&seed) % 4);
		for (i = 1; i < n; i++)
			for (j = 0; j < i; j++)
				if (rand_r(&seed) % 3 == 0) {
					pairs[2 * npairs] = i;
					pairs[2 * npairs + 1] = j;
					npairs++;
				}
		sim_init(&m, n, jobs, pairs, npairs);
		for (i = 0; i < n; i++)
			m.st[i].selected = rand_r(&seed) % 8 != 0;
		for (;;) {
			enum sp_sched_action a = step(&m, &idx);

			assert_true(++steps < 10000);
			assert_true(sp_sched_in_flight(&m.s) <= jobs);
			if (a == SP_SCHED_END)
				break;
			if (a == SP_SCHED_RUN || a == SP_SCHED_GO_AHEAD) {
				if (jobs == 1)
					assert_int_equal(a, SP_SCHED_RUN);
				started[nstarted++] = idx;
				continue;
			}
			if (a == SP_SCHED_SKIP)
				continue;
			/* WAIT: let waiting stages through their gates; otherwise
			 * finish a random running one (there must be one) */
			{
				size_t cand[MAXN], nc = 0;
				bool moved = false;

				for (i = 0; i < n; i++) {
					if (m.st[i].state != SP_SCHED_AHEAD)
						continue;
					switch (sp_sched_gate(&m.s, i, &need)) {
					case SP_SCHED_GATE_GO:
						m.st[i].state = SP_SCHED_RUNNING;
						moved = true;
						break;
					case SP_SCHED_GATE_FAIL:
						done(&m, i, SP_RESULT_SKIPPED);
						moved = true;
						break;
					default:
						break;
					}
				}
				if (moved)
					continue;
				for (i = 0; i < n; i++)
					if (m.st[i].state == SP_SCHED_RUNNING)
						cand[nc++] = i;
				assert_true(nc > 0);  /* else: stuck */
				i = cand[rand_r(&seed) % nc];
				switch (rand_r(&seed) % 6) {
				case 0: done(&m, i, SP_RESULT_FAILED); break;
				case 1:
					done(&m, i, SP_RESULT_ERROR);
					m.s.stop = true;
					break;
				default: done(&m, i, SP_RESULT_PASSED); break;
				}
			}
		}
		for (i = 0; i < n; i++)
			assert_int_equal(m.st[i].state, SP_SCHED_DONE);
		if (jobs == 1)
			for (i = 1; i < nstarted; i++)
				assert_true(started[i - 1] < started[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_overlaps),
		cmocka_unit_test(test_failed_need_fails_the_gate),
		cmocka_unit_test(test_idle_stage_after_failed_need_skipped),
		cmocka_unit_test(test_jobs1_keeps_the_old_order),
		cmocka_unit_test(test_independent_stages_run_together),
		cmocka_unit_test(test_ahead_leaves_a_slot),
		cmocka_unit_test(test_stop_skips_and_fails_gates),
		cmocka_unit_test(test_random_no_deadlock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
