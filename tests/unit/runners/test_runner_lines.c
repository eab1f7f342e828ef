/*
 * test_runner_lines.c — a command's raw output to lines, with secrets
 * masked before the cut: a secret split across reads, or across the cut
 * of an over-long line, never reaches a line whole or in two halves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/mask.h"
#include "runners/runner.h"

static void collect(void *ud, enum sp_log_stream stream, const char *line, size_t len)
{
	struct sp_buf *b = ud;

	assert_int_equal(stream, SP_STREAM_STDOUT);
	sp_buf_add(b, line, len);
	sp_buf_addch(b, '|');
}

static void test_split_reads(void **state)
{
	struct sp_mask *m = sp_mask_new();
	struct sp_error err = SP_ERROR_INIT;
	const char *in = "one\nkey=Sup3rSecret!\nthree Sup3rSecret!";
	size_t len = strlen(in), cut;

	(void)state;
	assert_int_equal(sp_mask_add(m, "Sup3rSecret!", 12, &err), 0);
	for (cut = 0; cut <= len; cut++) {
		struct sp_buf out = SP_BUF_INIT;
		struct sp_runner_lines l;

		sp_runner_lines_init(&l, m, 0, SP_STREAM_STDOUT, collect, &out);
		sp_runner_lines_feed(&l, in, cut);
		sp_runner_lines_feed(&l, in + cut, len - cut);
		sp_runner_lines_flush(&l);
		sp_runner_lines_release(&l);
		assert_string_equal(out.data, "one|key=***|three ***|");
		sp_buf_release(&out);
	}
	sp_mask_free(m);
}

static void test_long_line_cut(void **state)
{
	struct sp_mask *m = sp_mask_new();
	struct sp_error err = SP_ERROR_INIT;
	struct sp_buf out = SP_BUF_INIT;
	struct sp_runner_lines l;

	(void)state;
	assert_int_equal(sp_mask_add(m, "ABCDEFGH", 8, &err), 0);
	/* lines of at most 10 bytes: the secret would straddle the cut */
	sp_runner_lines_init(&l, m, 10, SP_STREAM_STDOUT, collect, &out);
	sp_runner_lines_feed(&l, "0123456ABCDEFGH789\n", 19);
	sp_runner_lines_flush(&l);
	sp_runner_lines_release(&l);
	assert_string_equal(out.data, "0123456***|789|");
	sp_buf_release(&out);
	sp_mask_free(m);
}

static void test_no_mask(void **state)
{
	struct sp_buf out = SP_BUF_INIT;
	struct sp_runner_lines l;

	(void)state;
	sp_runner_lines_init(&l, NULL, 0, SP_STREAM_STDOUT, collect, &out);
	sp_runner_lines_feed(&l, "a\nb", 3);
	sp_runner_lines_flush(&l);
	sp_runner_lines_release(&l);
	assert_string_equal(out.data, "a|b|");
	sp_buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_reads),
		cmocka_unit_test(test_long_line_cut),
		cmocka_unit_test(test_no_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
