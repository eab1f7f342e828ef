/*
 * test_ignore.c — .dockerignore parsing and matching against the behaviour
 * of moby/patternmatcher v0.6.1: its TestMatches, TestMatch and ReadAll
 * tables (ported), the cleaning and reading rules, Go-regexp quirks of the
 * compiled patterns, and the exception-aware pruning used by the walker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "runners/docker/ignore.h"
#include "tests/unit/support/testutil.h"

struct row {
	const char *patterns; /* .dockerignore text, one pattern a line */
	const char *path;
	int excluded;
};

/* A table row with a path holding a NUL-free but otherwise arbitrary byte string. */
static struct sp_ignore *parse_ok(const char *text)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ignore *ig = NULL;
	int rc = sp_ignore_parse(&ig, text, strlen(text), &err);

	if (rc != 0)
		fprintf(stderr, "unexpected parse error for %s: %s\n", text, err.msg);
	assert_int_equal(rc, 0);
	assert_non_null(ig);
	return ig;
}

static int run_rows(const struct row *rows, size_t n, const char *table)
{
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		struct sp_ignore *ig = parse_ok(rows[i].patterns);
		int got = sp_ignore_match(ig, rows[i].path);

		if (got != rows[i].excluded) {
			fprintf(stderr, "%s row %zu: patterns \"%s\" path \"%s\": want %d, got %d\n",
				table, i, rows[i].patterns, rows[i].path, rows[i].excluded, got);
			bad++;
		}
		sp_ignore_free(ig);
	}
	return (int)bad;
}

#define RUN_ROWS(rows) assert_int_equal(run_rows(rows, sizeof(rows) / sizeof(rows[0]), #rows), 0)

/* ---- patternmatcher_test.go TestMatches (MatchesOrParentMatches) ---- */

static const struct row upstream_matches[] = {
	{ "**", "file", 1 },
	{ "**", "file/", 1 },
	{ "**/", "file", 1 },
	{ "**/", "file/", 1 },
	{ "**", "/", 1 },
	{ "**/", "/", 1 },
	{ "**", "dir/file", 1 },
	{ "**/", "dir/file", 1 },
	{ "**", "dir/file/", 1 },
	{ "**/", "dir/file/", 1 },
	{ "**/**", "dir/file", 1 },
	{ "**/**", "dir/file/", 1 },
	{ "dir/**", "dir/file", 1 },
	{ "dir/**", "dir/file/", 1 },
	{ "dir/**", "dir/dir2/file", 1 },
	{ "dir/**", "dir/dir2/file/", 1 },
	{ "**/dir", "dir", 1 },
	{ "**/dir", "dir/file", 1 },
	{ "**/dir2/*", "dir/dir2/file", 1 },
	{ "**/dir2/*", "dir/dir2/file/", 1 },
	{ "**/dir2/**", "dir/dir2/dir3/file", 1 },
	{ "**/dir2/**", "dir/dir2/dir3/file/", 1 },
	{ "**file", "file", 1 },
	{ "**file", "dir/file", 1 },
	{ "**/file", "dir/file", 1 },
	{ "**file", "dir/dir/file", 1 },
	{ "**/file", "dir/dir/file", 1 },
	{ "**/file*", "dir/dir/file", 1 },
	{ "**/file*", "dir/dir/file.txt", 1 },
	{ "**/file*txt", "dir/dir/file.txt", 1 },
	{ "**/file*.txt", "dir/dir/file.txt", 1 },
	{ "**/file*.txt*", "dir/dir/file.txt", 1 },
	{ "**/**/*.txt", "dir/dir/file.txt", 1 },
	{ "**/**/*.txt2", "dir/dir/file.txt", 0 },
	{ "**/*.txt", "file.txt", 1 },
	{ "**/**/*.txt", "file.txt", 1 },
	{ "a**/*.txt", "a/file.txt", 1 },
	{ "a**/*.txt", "a/dir/file.txt", 1 },
	{ "a**/*.txt", "a/dir/dir/file.txt", 1 },
	{ "a/*.txt", "a/dir/file.txt", 0 },
	{ "a/*.txt", "a/file.txt", 1 },
	{ "a/*.txt**", "a/file.txt", 1 },
	{ "a[b-d]e", "ae", 0 },
	{ "a[b-d]e", "ace", 1 },
	{ "a[b-d]e", "aae", 0 },
	{ "a[^b-d]e", "aze", 1 },
	{ ".*", ".foo", 1 },
	{ ".*", "foo", 0 },
	{ "abc.def", "abcdef", 0 },
	{ "abc.def", "abc.def", 1 },
	{ "abc.def", "abcZdef", 0 },
	{ "abc?def", "abcZdef", 1 },
	{ "abc?def", "abcdef", 0 },
	{ "**/foo/bar", "foo/bar", 1 },
	{ "**/foo/bar", "dir/foo/bar", 1 },
	{ "**/foo/bar", "dir/dir2/foo/bar", 1 },
	{ "abc/**", "abc", 0 },
	{ "abc/**", "abc/def", 1 },
	{ "abc/**", "abc/def/ghi", 1 },
	{ "**/.foo", ".foo", 1 },
	{ "**/.foo", "bar.foo", 0 },
	{ "a(b)c/def", "a(b)c/def", 1 },
	{ "a(b)c/def", "a(b)c/xyz", 0 },
	{ "a.|)$(}+{bc", "a.|)$(}+{bc", 1 },
	{ "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
	  "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", 1 },
	{ "dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", 1 },
	/* the non-Windows rows */
	{ "a\\\\", "a\\", 1 },
	{ "a\\*b", "a*b", 1 },
};

static const struct row upstream_multi[] = {
	{ "**\n!util/docker/web", "util/docker/web/foo", 0 },
	{ "**\n!util/docker/web\nutil/docker/web/foo", "util/docker/web/foo", 1 },
	{ "**\n!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
	  "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", 0 },
	{ "**\n!dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", 0 },
	/* the small Test* functions above TestMatches */
	{ "*", "fileutils.go", 1 },
	{ "*.go", "fileutils.go", 1 },
	{ "!fileutils.go\n*.go", "fileutils.go", 1 },
	{ "docs\n!docs/README.md", "docs/README.md", 0 },
	{ "docs/\n!docs/README.md", "docs/README.md", 0 },
	{ "docs/*\n!docs/README.md", "docs/README.md", 0 },
	{ "*.go\n!fileutils.go", "fileutils.go", 0 },
	{ "", "/any/path/there", 0 },
};

/* ---- TestMatch: Go's filepath.Match table, through Matches() ---- */

static const struct row upstream_filepath[] = {
	{ "abc", "abc", 1 },
	{ "*", "abc", 1 },
	{ "*c", "abc", 1 },
	{ "a*", "a", 1 },
	{ "a*", "abc", 1 },
	{ "a*", "ab/c", 1 },
	{ "a*/b", "abc/b", 1 },
	{ "a*/b", "a/c/b", 0 },
	{ "a*b*c*d*e*/f", "axbxcxdxe/f", 1 },
	{ "a*b*c*d*e*/f", "axbxcxdxexxx/f", 1 },
	{ "a*b*c*d*e*/f", "axbxcxdxe/xxx/f", 0 },
	{ "a*b*c*d*e*/f", "axbxcxdxexxx/fff", 0 },
	{ "a*b?c*x", "abxbbxdbxebxczzx", 1 },
	{ "a*b?c*x", "abxbbxdbxebxczzy", 0 },
	{ "ab[c]", "abc", 1 },
	{ "ab[b-d]", "abc", 1 },
	{ "ab[e-g]", "abc", 0 },
	{ "ab[^c]", "abc", 0 },
	{ "ab[^b-d]", "abc", 0 },
	{ "ab[^e-g]", "abc", 1 },
	{ "a\\*b", "a*b", 1 },
	{ "a\\*b", "ab", 0 },
	{ "a?b", "a\xE2\x98\xBA" "b", 1 },
	{ "a[^a]b", "a\xE2\x98\xBA" "b", 1 },
	{ "a???b", "a\xE2\x98\xBA" "b", 0 },
	{ "a[^a][^a][^a]b", "a\xE2\x98\xBA" "b", 0 },
	{ "[a-\xCE\xB6]*", "\xCE\xB1", 1 },
	{ "*[a-\xCE\xB6]", "A", 0 },
	{ "a?b", "a/b", 0 },
	{ "a*b", "a/b", 0 },
	{ "[\\]a]", "]", 1 },
	{ "[\\-]", "-", 1 },
	{ "[x\\-]", "x", 1 },
	{ "[x\\-]", "-", 1 },
	{ "[x\\-]", "z", 0 },
	{ "[\\-x]", "x", 1 },
	{ "[\\-x]", "-", 1 },
	{ "[\\-x]", "a", 0 },
	{ "*x", "xxx", 1 },
};

/* ---- the way the compiled patterns behave (upstream compile() + Go regexp) ---- */

static const struct row quirks[] = {
	/* "**" first: a plain suffix test, not a folder boundary */
	{ "**file", "xfile", 1 },
	{ "**/file", "xfile", 0 },
	{ "**/file", "a/xfile", 0 },
	{ "**.txt", "a/b.txt", 1 },
	{ "**/foo", "foo/bar", 1 },         /* parent "foo" is the suffix without its '/' */
	/* trailing "**" after plain text: a prefix test */
	{ "abc**", "abcdef/x", 1 },
	{ "abc**", "ab", 0 },
	{ "dir/**", "dir", 0 },
	{ "dir/**", "dirx", 0 },
	/* "**" in the middle, and '.' of Go regexp not matching a newline */
	{ "a/**/b", "a/b", 1 },
	{ "a/**/b", "a/x/y/b", 1 },
	{ "a/**/b", "a/x\ny/b", 0 },
	{ "a/**/b", "a/xb", 0 },
	{ "a**", "a\nb", 1 },               /* prefix test: no regexp involved */
	/* patterns are anchored at the context root */
	{ "b", "a/b", 0 },
	{ "a", "a/b/c", 1 },
	{ "a/b", "a/bc", 0 },
	{ "*", "a/b", 1 },
	{ "*/b", "a/b/c", 1 },
	{ "*/*/*", "a/b", 0 },
	/* regexp metacharacters are literal */
	{ "a.b*", "axbc", 0 },
	{ "a.b*", "a.bc", 1 },
	{ "a+b?", "a+bc", 1 },
	{ "a+b?", "aab?", 0 },
	{ "{a,b}*", "a", 0 },
	{ "{a,b}*", "{a,b}x", 1 },
	{ "(x|y)*", "(x|y)z", 1 },
	{ "$*", "$HOME", 1 },
	/* '*' and '?' inside a class are replaced by text, as upstream does:
	 * "[*]" becomes the Go regexp "^[[^/]*]$" */
	{ "[*]", "]", 1 },
	{ "[*]", "[^]", 1 },
	{ "[*]", "*", 0 },
	{ "[?]", "^]", 1 },
	{ "[?]", "?", 0 },
	/* '^' outside a class is a Go regexp anchor once the pattern is a regexp */
	{ "a^b", "a^b", 1 },
	{ "a^b*", "a^bc", 0 },
	/* escapes go to Go's regexp parser as they are */
	{ "\\d*", "1abc", 1 },
	{ "\\d*", "dabc", 0 },
	{ "x\\n", "x\n", 1 },
	{ "x\\n", "xn", 0 },
	{ "\\x41*", "Abc", 1 },
	{ "\\.\\_", "._", 1 },
	{ "[[:digit:]]x", "1x", 1 },
	{ "[[:digit:]]x", ":x", 0 },
	{ "[[:^alpha:]]", "1", 1 },
	{ "[[:^alpha:]]", "z", 0 },
	{ "[\\w]?", "_x", 1 },
	/* classes, ranges and negation on runes, not bytes */
	{ "[^a]", "\xC3\xA9", 1 },
	{ "[\xC3\xA0-\xC3\xBF]", "\xC3\xA9", 1 },
	{ "?", "\xC3\xA9", 1 },
	{ "??", "\xC3\xA9", 0 },
	{ "[^b]", "/", 1 },                 /* a class is not slash-aware */
	/* trailing-slash texts keep their parents */
	{ "dir", "dir/", 1 },
};

/* ---- reading: BOM, comments, trimming, cleaning, leading '/' ---- */

static const struct row reading[] = {
	{ "./a", "a", 1 },
	{ "a/", "a", 1 },
	{ "a/../b", "b", 1 },
	{ "a/../b", "a", 0 },
	{ "a//b/./c", "a/b/c", 1 },
	{ "/a", "a", 1 },
	{ "//a/b", "a/b", 1 },
	{ "/", "x", 0 },
	{ "../a", "a", 0 },
	{ "#a", "#a", 0 },
	{ " #a", "#a", 1 },
	{ "\\#a", "#a", 1 },
	{ "\xEF\xBB\xBF#c\nx", "#c", 0 },
	{ "\xEF\xBB\xBF#c\nx", "x", 1 },
	{ "\xEF\xBB\xBFy", "y", 1 },
	{ "a\n\xEF\xBB\xBF" "b", "b", 0 },  /* a BOM only counts on the first line */
	{ "a\r\nb\r\n", "b", 1 },
	{ "a\r\nb\r\n", "b\r", 0 },
	{ "\t a \t", "a", 1 },
	{ "\xC2\xA0" "a\xE3\x80\x80", "a", 1 },   /* NBSP, ideographic space */
	{ "\xEF\xBB\xBF", "x", 0 },
	{ "*\n! /keep", "keep", 0 },
	{ "*\n! /keep", "other", 1 },
	{ "*\n!./keep/", "keep", 0 },
	{ "\n\n\n*.log\n\n", "x.log", 1 },
	{ "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path",
	  "a/file/here", 1 },
	{ "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path",
	  "test2", 1 },
};

/* ---- exceptions: the evaluation rule and the last pattern that applies ---- */

static const struct row exceptions[] = {
	{ "docs\n!docs/README.md", "docs", 1 },
	{ "docs\n!docs/README.md", "docs/other", 1 },
	{ "docs\n!docs/README.md", "docs/README.md/x", 0 },
	{ "*\n!a\na/x", "a/x", 1 },
	{ "*\n!a\na/x", "a/y", 0 },
	{ "*\n!a\na/x", "b", 1 },
	/* a parent match counts for exceptions too: "!a" re-includes a/b */
	{ "a/b\n!a", "a/b", 0 },
	/* an exception before anything matched is never looked at */
	{ "!a\na", "a", 1 },
	/* an exclusion is not looked at while the path is already excluded */
	{ "a\n!a/b\na\n!a/b", "a/b", 0 },
	{ "*.md\n!README.md\nREADME.md", "README.md", 1 },
	{ "*.md\n!README*.md\n!CHANGES.md", "CHANGES.md", 0 },
	{ "*.md\n!README*.md\n!CHANGES.md", "NOTES.md", 1 },
	{ "**/*.pyc\n!keep/**", "keep/x/y.pyc", 0 },
	{ "**/*.pyc\n!keep/**", "other/x/y.pyc", 1 },
};

static void test_upstream_matches(void **state)
{
	(void)state;
	RUN_ROWS(upstream_matches);
}

static void test_upstream_multi(void **state)
{
	(void)state;
	RUN_ROWS(upstream_multi);
}

static void test_upstream_filepath(void **state)
{
	(void)state;
	RUN_ROWS(upstream_filepath);
}

static void test_quirks(void **state)
{
	(void)state;
	RUN_ROWS(quirks);
}

static void test_reading(void **state)
{
	(void)state;
	RUN_ROWS(reading);
}

static void test_exceptions(void **state)
{
	(void)state;
	RUN_ROWS(exceptions);
}

/* ---- errors, with the line they are on ---- */

struct bad_row {
	const char *text;
	int code;
	const char *msg; /* must appear in the message, e.g. ":3:" */
};

static const struct bad_row bad_rows[] = {
	{ "!", SP_ECONFIG, ".dockerignore:1: illegal exclusion pattern" },
	{ "a\n! \n", SP_ECONFIG, ".dockerignore:2: illegal exclusion pattern" },
	{ "!/", SP_ECONFIG, ":1: illegal exclusion pattern" }, /* Clean("!/") is "!" */
	{ "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ",
	  SP_ECONFIG, ":8: illegal exclusion" },
	{ "ok\n\n[\n", SP_ECONFIG, ":3: syntax error in pattern" },
	{ "[]a]", SP_ECONFIG, ":1: syntax error" },
	{ "[-]", SP_ECONFIG, ":1: syntax error" },
	{ "[x-]", SP_ECONFIG, ":1: syntax error" },
	{ "[-x]", SP_ECONFIG, ":1: syntax error" },
	{ "\\", SP_ECONFIG, ":1: syntax error" },
	{ "a\\", SP_ECONFIG, ":1: syntax error" },
	{ "[a-b-c]", SP_ECONFIG, ":1: syntax error" },
	{ "[", SP_ECONFIG, ":1: syntax error" },
	{ "[^", SP_ECONFIG, ":1: syntax error" },
	{ "[^bc", SP_ECONFIG, ":1: syntax error" },
	{ "a[", SP_ECONFIG, ":1: syntax error" },
	{ "x\n!a[\n", SP_ECONFIG, ":2: syntax error" },
	{ "[\xff]", SP_ECONFIG, ":1: syntax error" },
	/* accepted by filepath.Match but not by Go's regexp (upstream fails at match time) */
	{ "[z-a]", SP_ECONFIG, ":1: bad pattern \"[z-a]\": invalid character class range" },
	{ "[Local-Only]/", SP_ECONFIG, ":1: bad pattern" },
	{ "\\q", SP_ECONFIG, ":1: bad pattern \"\\q\": invalid escape sequence" },
	{ "\\1", SP_ECONFIG, "invalid escape sequence" },
	{ "[[:nope:]]", SP_ECONFIG, "invalid character class range" },
	{ "\\\xC3\xA9", SP_ECONFIG, "invalid escape sequence" },
	/* not implemented here */
	{ "\\pL", SP_ECONFIG, "not supported" },
};

static void test_errors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_ignore *ig = (struct sp_ignore *)&err; /* must be reset to NULL */
		int rc = sp_ignore_parse(&ig, bad_rows[i].text, strlen(bad_rows[i].text), &err);

		if (rc != bad_rows[i].code || !strstr(err.msg, bad_rows[i].msg))
			fprintf(stderr, "bad row %zu \"%s\": rc %d, msg \"%s\"\n", i, bad_rows[i].text,
				rc, err.msg);
		assert_int_equal(rc, bad_rows[i].code);
		assert_non_null(strstr(err.msg, bad_rows[i].msg));
		assert_null(ig);
	}
}

static void test_line_too_long(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ignore *ig = NULL;
	size_t n = 65536 + 10;
	char *text = malloc(n + 3);

	(void)state;
	memcpy(text, "a\n", 2);
	memset(text + 2, 'x', n);
	text[n + 2] = '\0';
	assert_int_equal(sp_ignore_parse(&ig, text, n + 2, &err), SP_ETOOBIG);
	assert_non_null(strstr(err.msg, ":2: line too long"));
	assert_null(ig);
	/* 65535 bytes is still fine */
	assert_int_equal(sp_ignore_parse(&ig, text, 2 + 65535, &err), 0);
	assert_int_equal(sp_ignore_count(ig), 2);
	sp_ignore_free(ig);
	free(text);
}

static void test_counts(void **state)
{
	struct sp_ignore *ig;

	(void)state;
	ig = parse_ok("test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
		      "! /inverted/abs/path\n");
	assert_int_equal(sp_ignore_count(ig), 5);
	assert_int_equal(sp_ignore_has_exceptions(ig), 1);
	assert_int_equal(sp_ignore_match(ig, "inverted/abs/path"), 0);
	sp_ignore_free(ig);

	ig = parse_ok("# only a comment\n\n   \n");
	assert_int_equal(sp_ignore_count(ig), 0);
	assert_int_equal(sp_ignore_has_exceptions(ig), 0);
	assert_int_equal(sp_ignore_match(ig, "anything"), 0);
	sp_ignore_free(ig);

	/* a NULL list excludes nothing and keeps nothing open */
	assert_int_equal(sp_ignore_match(NULL, "a"), 0);
	assert_int_equal(sp_ignore_may_descend(NULL, "a"), 0);
	assert_int_equal(sp_ignore_count(NULL), 0);
	sp_ignore_free(NULL);
}

/* ---- pruning: may an excluded folder still be walked? ---- */

struct descend_row {
	const char *patterns;
	const char *dir;
	int descend;
};

static const struct descend_row descend_rows[] = {
	{ "docs\n!docs/README.md", "docs", 1 },
	{ "docs\n!docs/README.md", "doc", 0 },
	{ "docs\n!docs/README.md", "docs/sub", 0 },
	{ "docs", "docs", 0 },
	{ "a\n!a/b/c", "a", 1 },
	{ "a\n!a/b/c", "a/b", 1 },
	{ "a\n!a/b/c", "a/b/c", 1 },
	{ "a\n!a/b/c", "a/bc", 0 },
	{ "a\n!a/b/c", "b", 0 },
	{ "!x", "x", 1 },
	{ "*\n! /keep/me", "keep", 1 },
	/* upstream tests the pattern text, not what it could match */
	{ "*\n!*/keep", "foo", 0 },
	{ "*\n!**/keep", "foo", 0 },
	{ "*\n!*/keep", "*", 1 },
};

static void test_may_descend(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(descend_rows) / sizeof(descend_rows[0]); i++) {
		struct sp_ignore *ig = parse_ok(descend_rows[i].patterns);
		int got = sp_ignore_may_descend(ig, descend_rows[i].dir);

		if (got != descend_rows[i].descend)
			fprintf(stderr, "descend row %zu: \"%s\" dir \"%s\": want %d got %d\n", i,
				descend_rows[i].patterns, descend_rows[i].dir,
				descend_rows[i].descend, got);
		assert_int_equal(got, descend_rows[i].descend);
		sp_ignore_free(ig);
	}
}

/* ---- files ---- */

static void test_load_file(void **state)
{
	char *dir = sp_test_tempdir("sp-ignore-");
	char *path = sp_xasprintf("%s/.dockerignore", dir);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ignore *ig = NULL;

	(void)state;

	/* missing: an empty list */
	assert_int_equal(sp_ignore_load_file(&ig, path, &err), 0);
	assert_non_null(ig);
	assert_int_equal(sp_ignore_count(ig), 0);
	sp_ignore_free(ig);

	sp_test_write_file(path, "\xEF\xBB\xBF# build output\n*.o\n!keep.o\n");
	assert_int_equal(sp_ignore_load_file(&ig, path, &err), 0);
	assert_int_equal(sp_ignore_count(ig), 2);
	assert_int_equal(sp_ignore_match(ig, "x.o"), 1);
	assert_int_equal(sp_ignore_match(ig, "keep.o"), 0);
	sp_ignore_free(ig);

	/* errors name the file and the line */
	sp_test_write_file(path, "ok\n# fine\n[oops\n");
	ig = NULL;
	assert_int_equal(sp_ignore_load_file(&ig, path, &err), SP_ECONFIG);
	assert_null(ig);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, ":3: syntax error"));

	/* a folder is not a file */
	assert_int_equal(sp_ignore_load_file(&ig, dir, &err), SP_ERROR);
	assert_null(ig);

	sp_test_rmtree(dir);
	free(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upstream_matches),
		cmocka_unit_test(test_upstream_multi),
		cmocka_unit_test(test_upstream_filepath),
		cmocka_unit_test(test_quirks),
		cmocka_unit_test(test_reading),
		cmocka_unit_test(test_exceptions),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_may_descend),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests_name("ignore", tests, NULL, NULL);
}
