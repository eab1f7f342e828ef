/*
 * test_buf.c — the capped byte buffer and the error object.
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
#include "core/base/suggest.h"

static void test_buf_basic(void **state)
{
	struct sp_buf b = SP_BUF_INIT;
	char *s;
	size_t len;

	(void)state;
	assert_string_equal(b.data, "");
	assert_int_equal(sp_buf_addstr(&b, "hello"), 0);
	assert_int_equal(sp_buf_addf(&b, " %d", 42), 0);
	assert_string_equal(b.data, "hello 42");
	sp_buf_consume(&b, 6);
	assert_string_equal(b.data, "42");
	s = sp_buf_detach(&b, &len);
	assert_string_equal(s, "42");
	assert_int_equal(len, 2);
	assert_string_equal(b.data, "");
	free(s);
	s = sp_buf_detach(&b, NULL);
	assert_string_equal(s, "");
	free(s);
	sp_buf_release(&b);
}

static void test_buf_cap(void **state)
{
	struct sp_buf b;

	(void)state;
	sp_buf_init(&b, 8);
	assert_int_equal(sp_buf_add(&b, "12345678", 8), 0);
	assert_int_equal(sp_buf_addch(&b, '9'), SP_ETOOBIG);
	assert_int_equal(b.len, 8);
	assert_int_equal(sp_buf_addf(&b, "%s", "x"), SP_ETOOBIG);
	sp_buf_reset(&b);
	assert_int_equal(sp_buf_addstr(&b, "ok"), 0);
	sp_buf_release(&b);
}

static void test_error(void **state)
{
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	assert_int_equal(sp_error_set(&err, SP_EENGINE, "daemon said %s", "no"), SP_EENGINE);
	assert_int_equal(sp_error_prefix(&err, "building %s", "testing"), SP_EENGINE);
	assert_string_equal(err.msg, "building testing: daemon said no");
	assert_int_equal(sp_error_exit_status(SP_EENGINE), 3);
	assert_int_equal(sp_error_exit_status(SP_ECONFIG), 2);
	assert_int_equal(sp_error_exit_status(SP_EFAILED), 1);
	assert_int_equal(sp_error_exit_status(SP_ECANCELLED), 130);
	assert_int_equal(sp_error_set(NULL, SP_ETIMEOUT, "x"), SP_ETIMEOUT);
	sp_error_clear(&err);
	assert_string_equal(err.msg, "");
}

static void test_suggest(void **state)
{
	static const char *const keys[] = { "name", "target", "timeout", "needs", "tags", NULL };

	(void)state;
	assert_string_equal(sp_suggest("timout", keys), "timeout");
	assert_string_equal(sp_suggest("taget", keys), "target");
	assert_string_equal(sp_suggest("NAME", keys), "name");
	assert_string_equal(sp_suggest("nedes", keys), "needs");
	assert_null(sp_suggest("zzz", keys));
	assert_null(sp_suggest("x", keys));
	assert_int_equal(sp_suggest_distance("abc", "acb"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_basic),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_suggest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
