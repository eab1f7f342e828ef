/*
 * test_imageref.c — image reference grammar (distribution/reference).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/base/error.h"
#include "core/registry/imageref.h"

static void test_valid(void **state)
{
	static const struct { const char *s, *domain, *path, *tag; } rows[] = {
		{ "app", "", "app", "" },
		{ "app:latest", "", "app", "latest" },
		{ "team/app:1.0", "", "team/app", "1.0" },
		{ "127.0.0.1:5000/fastapi-app:0123456", "127.0.0.1:5000", "fastapi-app", "0123456" },
		{ "localhost/app", "localhost", "app", "" },
		{ "registry.example.com/team/app:v1_2-3", "registry.example.com", "team/app", "v1_2-3" },
		{ "ghcr.io/a__b/c.d/e--f:X", "ghcr.io", "a__b/c.d/e--f", "X" },
		{ "[::1]:5000/app:t", "[::1]:5000", "app", "t" },
		{ "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		  "", "app", "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sp_imageref r;
		struct sp_error err = SP_ERROR_INIT;
		assert_int_equal(sp_imageref_parse(&r, rows[i].s, &err), 0);
		assert_string_equal(r.domain, rows[i].domain);
		assert_string_equal(r.path, rows[i].path);
		assert_string_equal(r.tag, rows[i].tag);
		sp_imageref_release(&r);
	}
}

static void test_invalid(void **state)
{
	static const struct { const char *s, *why; } rows[] = {
		{ "", "empty" },
		{ "App", "lowercase" },
		{ "team/App:1", "lowercase" },
		{ "app:", "empty tag" },
		{ "app:-x", "invalid character '-'" },
		{ "app:v!", "invalid character '!'" },
		{ "app_:1", "separator" },
		{ "a..b", "separator" },
		{ "-app", "invalid character '-'" },
		{ "host:port/app", "port must be a number" },
		{ "reg.io/", "missing repository name" },
		{ "a//b", "empty path component" },
		{ "app@sha256:abc", "too short" },
		{ "app@nodigest", "algorithm:hex" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sp_imageref r;
		struct sp_error err = SP_ERROR_INIT;
		assert_int_equal(sp_imageref_parse(&r, rows[i].s, &err), SP_ECONFIG);
		if (!strstr(err.msg, rows[i].why))
			fail_msg("%s: got \"%s\"", rows[i].s, err.msg);
	}
}

static void test_long_tag(void **state)
{
	char s[200] = "app:";
	struct sp_imageref r;

	(void)state;
	memset(s + 4, 'a', 129);
	s[133] = '\0';
	assert_int_equal(sp_imageref_parse(&r, s, NULL), SP_ECONFIG);
	s[4 + 128] = '\0';
	assert_int_equal(sp_imageref_parse(&r, s, NULL), 0);
	assert_string_equal(sp_imageref_registry(&r), "docker.io");
	sp_imageref_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_long_tag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
