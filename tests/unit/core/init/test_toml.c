/*
 * test_toml.c — the small TOML reader of `stagepipe init`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/init/toml.h"
#include "tests/unit/support/testutil.h"

static void parse_ok(struct sp_toml *t, const char *text)
{
	struct sp_error err = SP_ERROR_INIT;

	if (sp_toml_parse(t, text, strlen(text), &err) < 0)
		fail_msg("parse failed: %s\n--- input\n%s", err.msg, text);
}

/* Parsing fails with a message starting "LINE:COL: " and holding what. */
static void parse_bad(const char *text, size_t len, const char *where, const char *what)
{
	struct sp_toml t = SP_TOML_INIT;
	struct sp_error err = SP_ERROR_INIT;

	if (sp_toml_parse(&t, text, len, &err) == 0)
		fail_msg("parsed, should not have: %s", text);
	assert_int_equal(err.code, SP_ECONFIG);
	if (strncmp(err.msg, where, strlen(where)) || !strstr(err.msg, what))
		fail_msg("message \"%s\", wanted %s... %s", err.msg, where, what);
	assert_null(t.entries);
	assert_int_equal(t.n, 0);
}

static void test_pyproject(void **state)
{
	struct sp_toml t = SP_TOML_INIT;
	const struct sp_toml_entry *e;

	(void)state;
	parse_ok(&t,
		 "# a comment\n"
		 "[build-system]\n"
		 "requires = [\"setuptools>=61\", \"wheel\"]  # trailing\n"
		 "\n"
		 "[project]\n"
		 "name = \"demo-app\"\n"
		 "version = '1.0'\n"
		 "requires-python = \">=3.11\"\n"
		 "license = { text = \"MIT\" }\n"
		 "dependencies = [\n"
		 "    \"fastapi>=0.92,<1\",   # comment in an array\n"
		 "    'uvicorn[standard]',\n"
		 "]\n"
		 "\n"
		 "[project.optional-dependencies]\n"
		 "dev = [\"pytest>=7.2\", \"pytest-cov\"]\n"
		 "\n"
		 "[tool.coverage.report]\n"
		 "fail_under = 90\n"
		 "show_missing = true\n"
		 "[[tool.mypy.overrides]]\n"
		 "module = \"a.*\"\n"
		 "[[tool.mypy.overrides]]\n"
		 "module = \"b.*\"\n");
	assert_string_equal(sp_toml_get_string(&t, "project.name"), "demo-app");
	assert_string_equal(sp_toml_get_string(&t, "project.version"), "1.0");
	assert_string_equal(sp_toml_get_string(&t, "project.license.text"), "MIT");
	e = sp_toml_get(&t, "project.dependencies");
	assert_non_null(e);
	assert_int_equal(e->type, SP_TOML_ARRAY);
	assert_int_equal(e->nitems, 2);
	assert_string_equal(e->items[0], "fastapi>=0.92,<1");
	assert_string_equal(e->items[1], "uvicorn[standard]");
	assert_int_equal(e->line, 10);
	e = sp_toml_get(&t, "project.optional-dependencies.dev");
	assert_non_null(e);
	assert_int_equal(e->nitems, 2);
	e = sp_toml_get(&t, "tool.coverage.report.fail_under");
	assert_non_null(e);
	assert_int_equal(e->type, SP_TOML_OTHER);
	assert_string_equal(e->value, "90");
	assert_null(sp_toml_get_string(&t, "tool.coverage.report.fail_under"));
	assert_string_equal(sp_toml_get_string(&t, "tool.mypy.overrides.module"), "a.*");
	assert_null(sp_toml_get(&t, "project.nothing"));
	sp_toml_release(&t);
	assert_null(t.entries);
	sp_toml_release(&t);
}

static void test_strings(void **state)
{
	struct sp_toml t = SP_TOML_INIT;

	(void)state;
	parse_ok(&t,
		 "a = \"tab\\there \\\"q\\\" \\\\ \\u00e9 \\U0001F600\"\n"
		 "b = 'C:\\path\\no\\escape'\n"
		 "c = \"\"\"\n"
		 "first\n"
		 "second \\\n"
		 "     joined\"\"\"\n"
		 "d = '''\n"
		 "raw \\n ''ok''\n"
		 "'''\n"
		 "e = \"\"\"ends with quotes\"\"\"\"\"\n"
		 "\"quoted.key\" = 1\n"
		 "site.\"sub key\" . x = \"dotted\"\n"
		 "f = \"\"\n"
		 "g = ''\n"
		 "crlf = \"x\"\r\n"
		 "h = \"\\e\"\n");
	assert_string_equal(sp_toml_get_string(&t, "a"), "tab\there \"q\" \\ \xc3\xa9 \xf0\x9f\x98\x80");
	assert_string_equal(sp_toml_get_string(&t, "b"), "C:\\path\\no\\escape");
	assert_string_equal(sp_toml_get_string(&t, "c"), "first\nsecond joined");
	assert_string_equal(sp_toml_get_string(&t, "d"), "raw \\n ''ok''\n");
	assert_string_equal(sp_toml_get_string(&t, "e"), "ends with quotes\"\"");
	assert_non_null(sp_toml_get(&t, "quoted.key"));
	assert_string_equal(sp_toml_get_string(&t, "site.sub key.x"), "dotted");
	assert_string_equal(sp_toml_get_string(&t, "f"), "");
	assert_string_equal(sp_toml_get_string(&t, "g"), "");
	assert_string_equal(sp_toml_get_string(&t, "crlf"), "x");
	assert_string_equal(sp_toml_get_string(&t, "h"), "\x1b");
	sp_toml_release(&t);
}

static void test_values(void **state)
{
	struct sp_toml t = SP_TOML_INIT;
	const struct sp_toml_entry *e;

	(void)state;
	parse_ok(&t,
		 "\xEF\xBB\xBFint = -12_000\n"
		 "hex = 0xff\n"
		 "flt = 6.02e+23\n"
		 "inf1 = -inf\n"
		 "yes = true\n"
		 "date = 1979-05-27 07:32:00Z\n"
		 "local = 07:32:00\n"
		 "nested = [[1, 2], [\"x\", {a = \"b\"}], \"kept\"]\n"
		 "empty = []\n"
		 "inline = { a = 1, b = { c = \"deep\" }, \"d.e\" = [\"f\"] }\n"
		 "multi = {\n  x = \"1\",\n  y = \"2\",\n}\n");
	assert_string_equal(sp_toml_get(&t, "int")->value, "-12_000");
	assert_string_equal(sp_toml_get(&t, "hex")->value, "0xff");
	assert_string_equal(sp_toml_get(&t, "flt")->value, "6.02e+23");
	assert_string_equal(sp_toml_get(&t, "inf1")->value, "-inf");
	assert_string_equal(sp_toml_get(&t, "yes")->value, "true");
	assert_string_equal(sp_toml_get(&t, "date")->value, "1979-05-27 07:32:00Z");
	assert_string_equal(sp_toml_get(&t, "local")->value, "07:32:00");
	e = sp_toml_get(&t, "nested");
	assert_int_equal(e->nitems, 1);
	assert_string_equal(e->items[0], "kept");
	assert_int_equal(sp_toml_get(&t, "empty")->nitems, 0);
	assert_string_equal(sp_toml_get(&t, "inline.a")->value, "1");
	assert_string_equal(sp_toml_get_string(&t, "inline.b.c"), "deep");
	assert_string_equal(sp_toml_get(&t, "inline.d.e")->items[0], "f");
	assert_string_equal(sp_toml_get_string(&t, "multi.y"), "2");
	sp_toml_release(&t);
}

static void test_errors(void **state)
{
	static const char nul[] = "a = \"x\0y\"\n";

	(void)state;
	parse_bad("a = \"open\n", 10, "1:10:", "unterminated string");
	parse_bad("a = 'open", 9, "1:10:", "unterminated string");
	parse_bad("x = 1\nb = \"\"\"never closed\n", 26, "3:1:", "unterminated");
	parse_bad("a = \"\\q\"\n", 9, "1:7:", "unknown escape");
	parse_bad("a = \"\\uD800\"\n", 13, "1:", "Unicode scalar");
	parse_bad("a = \"\\u12\"\n", 11, "1:", "hexadecimal");
	parse_bad("a = \"\\u0000\"\n", 13, "1:", "NUL");
	parse_bad(nul, sizeof(nul) - 1, "1:7:", "NUL byte");
	parse_bad("a = \"x\x01\"\n", 9, "1:7:", "control character");
	parse_bad("[table\nb = 1\n", 13, "1:7:", "expected ']'");
	parse_bad("[[arr]\n", 7, "1:6:", "expected ']]'");
	parse_bad("= 1\n", 4, "1:1:", "expected a key");
	parse_bad("a 1\n", 4, "1:3:", "expected '='");
	parse_bad("a = \n", 5, "1:5:", "expected a value");
	parse_bad("a = 1 2\n", 8, "1:7:", "end of the line");
	parse_bad("a = [1 2]\n", 10, "1:8:", "expected ',' or ']'");
	parse_bad("a = {b = 1 c = 2}\n", 18, "1:12:", "expected ',' or '}'");
	parse_bad("a = [\"x\"", 8, "1:9:", "expected ',' or ']'");
	parse_bad("a = \"\"\"x\"\"\"\n\"\"\"k\"\"\" = 1\n", 22, "2:1:", "multi-line");
	parse_bad("# bad \x01 comment\n", 16, "1:7:", "control character");
}

static void test_limits(void **state)
{
	struct sp_buf_like {
		char *s;
		size_t n;
	} b;
	size_t i, depth = SP_TOML_MAX_DEPTH + 5;

	(void)state;
	/* deep nesting: an error, not a stack overflow */
	b.s = sp_xmalloc(depth * 2 + 16);
	memcpy(b.s, "a = ", 4);
	b.n = 4;
	for (i = 0; i < depth; i++)
		b.s[b.n++] = '[';
	for (i = 0; i < depth; i++)
		b.s[b.n++] = ']';
	b.s[b.n++] = '\n';
	parse_bad(b.s, b.n, "1:", "nested too deep");
	free(b.s);

	/* a value over the cap */
	b.n = SP_TOML_MAX_VALUE + 16;
	b.s = sp_xmalloc(b.n + 1);
	memset(b.s, 'x', b.n);
	memcpy(b.s, "a = \"", 5);
	b.s[b.n - 2] = '"';
	b.s[b.n - 1] = '\n';
	parse_bad(b.s, b.n, "1:", "value too long");
	free(b.s);

	/* too many keys */
	b.s = sp_xmalloc((SP_TOML_MAX_ENTRIES + 10) * 12);
	b.n = 0;
	for (i = 0; i < SP_TOML_MAX_ENTRIES + 5; i++)
		b.n += (size_t)sprintf(b.s + b.n, "k%zu = 1\n", i);
	parse_bad(b.s, b.n, "", "too many keys");
	free(b.s);
}

/* Random bytes and mutated documents: parse or fail, never crash or leak. */
static void test_random(void **state)
{
	static const char *const seed =
		"[project]\nname = \"x\"\ndependencies = [\"a>=1\", 'b']\n"
		"x = { y = [1, {z = \"\"\"m\nl\"\"\"}] }\n[[t]]\nk = '''r'''\n";
	static const char alphabet[] = "[]{}=\"'\\.,#\n\r\t azu0123456789-_+:";
	struct sp_error err = SP_ERROR_INIT;
	uint32_t rnd = 12345;
	char buf[512];
	size_t n, i, len = strlen(seed);
	int round;

	(void)state;
	for (round = 0; round < 20000; round++) {
		struct sp_toml t = SP_TOML_INIT;
		if (round % 2) {
			memcpy(buf, seed, len);
			n = len;
			for (i = 0; i < 1 + sp_test_rand(&rnd) % 4; i++)
				buf[sp_test_rand(&rnd) % n] =
					alphabet[sp_test_rand(&rnd) % (sizeof(alphabet) - 1)];
		} else {
			n = sp_test_rand(&rnd) % 64;
			for (i = 0; i < n; i++)
				buf[i] = alphabet[sp_test_rand(&rnd) % (sizeof(alphabet) - 1)];
		}
		if (sp_toml_parse(&t, buf, n, &err) == 0)
			sp_toml_release(&t);
		else
			assert_null(t.entries);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pyproject),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
