/*
 * test_duration.c — parsing and formatting "1h30m" durations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/base/duration.h"
#include "core/base/error.h"

static void test_valid(void **state)
{
	static const struct { const char *s; int64_t ms; } rows[] = {
		{ "90s", 90000 }, { "15m", 900000 }, { "1h30m", 5400000 }, { "2h", 7200000 },
		{ "1h5m30s", 3930000 }, { "500ms", 500 }, { "1m500ms", 60500 }, { "168h", 604800000 },
	};
	char why[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t ms = 0;
		assert_int_equal(sp_duration_parse(&ms, rows[i].s, why, sizeof(why)), 0);
		assert_int_equal(ms, rows[i].ms);
	}
}

static void test_invalid(void **state)
{
	static const struct { const char *s, *why; } rows[] = {
		{ "", "empty" }, { "90", "missing unit" }, { "15x", "unknown unit" },
		{ "1.5h", "fractions" }, { "30m1h", "largest to smallest" }, { "1m1m", "largest" },
		{ "0s", "longer than zero" }, { "169h", "7 days" }, { "-1s", "expected a number" },
		{ " 1s", "expected a number" }, { "99999999999999999999s", "7 days" },
	};
	char why[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t ms = -1;
		assert_int_equal(sp_duration_parse(&ms, rows[i].s, why, sizeof(why)), SP_ECONFIG);
		assert_non_null(strstr(why, rows[i].why));
		assert_int_equal(ms, -1);
	}
}

static void test_format(void **state)
{
	char b[32];

	(void)state;
	sp_duration_format(b, sizeof(b), 5400000);
	assert_string_equal(b, "1h30m");
	sp_duration_format(b, sizeof(b), 90000);
	assert_string_equal(b, "1m30s");
	sp_duration_format(b, sizeof(b), 0);
	assert_string_equal(b, "0s");
	sp_duration_format(b, sizeof(b), 1500);
	assert_string_equal(b, "1s500ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
