/*
 * toml.h — a small TOML reader for `stagepipe init` (pyproject.toml, uv.lock).
 *
 * Debian has no C TOML library (only C++ ones: toml11, tomlplusplus,
 * cpptoml), so this is a reader limited to what init needs: it flattens a
 * document into a list of dotted keys ("project.requires-python") with
 * their string, string-array or raw scalar values.  It understands the
 * whole TOML syntax (tables, arrays of tables, dotted and quoted keys, the
 * four string forms with escapes, nested and multi-line arrays, inline
 * tables) so that a valid file parses, but keeps only:
 *
 *   - strings, decoded (escapes, \u and \U as UTF-8);
 *   - arrays: their string elements (nested arrays and inline tables in an
 *     array are parsed and dropped);
 *   - anything else (numbers, booleans, dates) as its raw text.
 *
 * Inline tables become dotted keys (`a = {b = "x"}` gives "a.b").  The
 * entries of every element of an array of tables share the array's key.
 * A quoted key holding a dot is not told apart from two keys (harmless for
 * the lookups init makes).  Duplicate keys are kept; lookups find the first.
 *
 * Hostile input is refused, never trusted: a NUL byte or a control
 * character in a string, nesting deeper than SP_TOML_MAX_DEPTH, more than
 * SP_TOML_MAX_ENTRIES entries or a value over SP_TOML_MAX_VALUE bytes is
 * an error ("LINE:COL: message").  The caller caps the input's size.
 */
#ifndef SP_TOML_H
#define SP_TOML_H

#include <stddef.h>

struct sp_error;

#define SP_TOML_MAX_DEPTH 32
#define SP_TOML_MAX_ENTRIES 20000
#define SP_TOML_MAX_VALUE (256 * 1024)
#define SP_TOML_MAX_ITEMS 10000

enum sp_toml_type {
	SP_TOML_STRING,
	SP_TOML_ARRAY,
	SP_TOML_OTHER, /* number, boolean, date: value is the raw token */
};

struct sp_toml_entry {
	char *key;         /* dotted path, e.g. "tool.pytest.ini_options.testpaths" */
	enum sp_toml_type type;
	char *value;       /* STRING, OTHER: the value; ARRAY: NULL */
	char **items;      /* ARRAY: its string elements, decoded */
	size_t nitems;
	unsigned line;     /* 1-based line of the key */
};

struct sp_toml {
	struct sp_toml_entry *entries;
	size_t n, alloc;
};

#define SP_TOML_INIT { NULL, 0, 0 }

/*
 * Parses len bytes of text into *out (which must be SP_TOML_INIT or
 * released).  0, or SP_ECONFIG with "LINE:COL: message" in err (out is
 * then released).  The caller releases out with sp_toml_release.
 */
int sp_toml_parse(struct sp_toml *out, const char *text, size_t len, struct sp_error *err);

/* Frees the entries; out is as SP_TOML_INIT afterwards. */
void sp_toml_release(struct sp_toml *t);

/* The first entry with exactly this key, or NULL.  Borrowed. */
const struct sp_toml_entry *sp_toml_get(const struct sp_toml *t, const char *key);

/* The value of a string entry with this key, or NULL.  Borrowed. */
const char *sp_toml_get_string(const struct sp_toml *t, const char *key);

#endif
