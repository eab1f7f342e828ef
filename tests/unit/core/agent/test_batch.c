/*
 * test_batch.c — a job's event lines on their way to the server
 * (core/agent/batch.c): when a batch is due, whole lines per batch, seq
 * numbers (a retried batch keeps its bytes and its seq, a heartbeat takes
 * one of its own), the memory cap (log lines dropped, other events kept)
 * and the line that tells how many were lost.  The clock is passed in: no
 * timing here.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent/batch.h"

static void add(struct sp_agent_batch *b, const char *line, int64_t now)
{
	assert_true(sp_agent_batch_add(b, line, strlen(line), now));
}

static void test_due_after_hold(void **state)
{
	struct sp_agent_batch b;

	(void)state;
	sp_agent_batch_init(&b);
	assert_false(sp_agent_batch_busy(&b));
	assert_int_equal(sp_agent_batch_due_at(&b), 0);
	add(&b, "{\"event\":\"log\",\"line\":\"a\"}", 1000);
	add(&b, "{\"event\":\"log\",\"line\":\"b\"}", 1150);
	assert_true(sp_agent_batch_busy(&b));
	/* held since the first line */
	assert_int_equal(sp_agent_batch_due_at(&b), 1000 + SP_AGENT_BATCH_HOLD_MS);
	assert_false(sp_agent_batch_due(&b, 1199));
	assert_true(sp_agent_batch_due(&b, 1200));
	sp_agent_batch_release(&b);
}

static void test_due_at_flush_bytes(void **state)
{
	struct sp_agent_batch b;
	char line[1000];

	(void)state;
	sp_agent_batch_init(&b);
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	while (b.pending.len + sizeof(line) < b.flush_bytes) {
		add(&b, line, 5);
		assert_false(sp_agent_batch_due(&b, 5));
	}
	add(&b, line, 5);
	assert_true(sp_agent_batch_due(&b, 5));  /* at once, no 200 ms wait */
	sp_agent_batch_release(&b);
}

static void test_seq_and_retry(void **state)
{
	struct sp_agent_batch b;
	const char *data;
	size_t len;
	uint64_t seq;

	(void)state;
	sp_agent_batch_init(&b);
	add(&b, "one", 10);
	add(&b, "two", 10);
	sp_agent_batch_take(&b, &data, &len, &seq, 300);
	assert_int_equal(seq, 1);
	assert_int_equal(len, 8);
	assert_memory_equal(data, "one\ntwo\n", 8);
	assert_false(b.pending.len);
	/* the send failed; a line comes meanwhile; the retry is the same batch */
	add(&b, "three", 400);
	sp_agent_batch_take(&b, &data, &len, &seq, 1300);
	assert_int_equal(seq, 1);
	assert_int_equal(len, 8);
	assert_memory_equal(data, "one\ntwo\n", 8);
	sp_agent_batch_sent(&b, 1300);
	assert_true(sp_agent_batch_busy(&b));
	/* the next one has the line that waited */
	sp_agent_batch_take(&b, &data, &len, &seq, 1310);
	assert_int_equal(seq, 2);
	assert_int_equal(len, 6);
	assert_memory_equal(data, "three\n", 6);
	sp_agent_batch_sent(&b, 1320);
	assert_false(sp_agent_batch_busy(&b));
	/* a heartbeat: empty, a seq of its own */
	sp_agent_batch_take(&b, &data, &len, &seq, 3000);
	assert_int_equal(seq, 3);
	assert_int_equal(len, 0);
	/* lines after an open empty batch do not join it on retry */
	add(&b, "four", 3001);
	sp_agent_batch_take(&b, &data, &len, &seq, 4000);
	assert_int_equal(seq, 3);
	assert_int_equal(len, 0);
	sp_agent_batch_sent(&b, 4000);
	sp_agent_batch_take(&b, &data, &len, &seq, 4001);
	assert_int_equal(seq, 4);
	assert_memory_equal(data, "four\n", 5);
	sp_agent_batch_sent(&b, 4002);
	/* sent twice (a stray call) changes nothing */
	sp_agent_batch_sent(&b, 4003);
	assert_int_equal(b.seq, 4);
	sp_agent_batch_release(&b);
}

static void test_whole_lines_up_to_max(void **state)
{
	struct sp_agent_batch b;
	const char *data;
	size_t len, total = 0;
	uint64_t seq;
	int i, batches = 0;

	(void)state;
	sp_agent_batch_init(&b);
	b.max_bytes = 100;
	for (i = 0; i < 10; i++)
		add(&b, "0123456789012345678901234567890123456789", 1);  /* 41 bytes each */
	/* a line longer than max_bytes still goes, alone */
	{
		char big[300];

		memset(big, 'y', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		add(&b, big, 1);
	}
	while (sp_agent_batch_busy(&b)) {
		sp_agent_batch_take(&b, &data, &len, &seq, 2);
		assert_int_equal(seq, (uint64_t)batches + 1);
		assert_true(len > 0);
		assert_int_equal(data[len - 1], '\n');
		assert_true(len <= 100 || memchr(data, '\n', len) == data + len - 1);
		total += len;
		sp_agent_batch_sent(&b, 3);
		batches++;
	}
	assert_int_equal(total, 10 * 41 + 300);
	assert_int_equal(batches, 6);  /* 2+2+2+2+2 lines, then the long one */
	sp_agent_batch_release(&b);
}

static void test_cap_drops_log_lines(void **state)
{
	struct sp_agent_batch b;
	const char *logl = "{\"event\":\"log\",\"stage\":\"test\",\"line\":\"xxxxxxxxxxxxxxxxxxxx\"}";
	const char *stage = "{\"event\":\"stage_finished\",\"stage\":\"test\",\"result\":\"passed\"}";
	const char *data;
	size_t len;
	uint64_t seq;
	int i, kept = 0;

	(void)state;
	sp_agent_batch_init(&b);
	b.cap = 1000;
	for (i = 0; i < 100; i++)
		kept += sp_agent_batch_add(&b, logl, strlen(logl), 1);
	assert_true(kept > 0 && kept < 100);
	assert_true(b.pending.len <= b.cap);
	assert_int_equal(b.dropped, (unsigned long)(100 - kept));
	/* over the cap: other events are still kept, not JSON is not */
	assert_true(sp_agent_batch_add(&b, stage, strlen(stage), 1));
	assert_false(sp_agent_batch_add(&b, "not json", 8, 1));
	assert_int_equal(b.dropped, (unsigned long)(100 - kept + 1));
	/* ... up to twice the cap */
	while (sp_agent_batch_add(&b, stage, strlen(stage), 1))
		;
	assert_true(b.pending.len <= 2 * b.cap);

	/* the first batch applied queues the note, with the count */
	sp_agent_batch_take(&b, &data, &len, &seq, 2);
	sp_agent_batch_sent(&b, 3);
	assert_int_equal(b.dropped, 0);
	assert_true(b.dropped_total > 0);
	while (sp_agent_batch_busy(&b)) {
		sp_agent_batch_take(&b, &data, &len, &seq, 4);
		if (!sp_agent_batch_busy(&b) || memmem(data, len, "lost", 4)) {
			char want[64];

			snprintf(want, sizeof(want), "%lu lines of output lost", b.dropped_total);
			assert_non_null(memmem(data, len, want, strlen(want)));
			assert_non_null(memmem(data, len, "\"event\":\"log\"", 13));
		}
		sp_agent_batch_sent(&b, 5);
	}
	/* no second note */
	assert_false(sp_agent_batch_busy(&b));
	sp_agent_batch_release(&b);
}

static void test_inflight_counts_for_cap(void **state)
{
	struct sp_agent_batch b;
	const char *data;
	size_t len;
	uint64_t seq;
	char line[400];

	(void)state;
	sp_agent_batch_init(&b);
	b.cap = 1000;
	memset(line, 'z', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	add(&b, line, 1);
	add(&b, line, 1);
	sp_agent_batch_take(&b, &data, &len, &seq, 2);  /* 800 bytes in flight */
	assert_false(sp_agent_batch_add(&b, line, strlen(line), 3));
	assert_int_equal(b.dropped, 1);
	sp_agent_batch_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due_after_hold),
		cmocka_unit_test(test_due_at_flush_bytes),
		cmocka_unit_test(test_seq_and_retry),
		cmocka_unit_test(test_whole_lines_up_to_max),
		cmocka_unit_test(test_cap_drops_log_lines),
		cmocka_unit_test(test_inflight_counts_for_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
