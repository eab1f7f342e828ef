/*
 * toml.c — the small TOML reader of `stagepipe init` (see toml.h).
 *
 * A recursive-descent parser over a cursor that always knows how many
 * bytes are left, so it never reads past the input whatever the input is
 * (it is a libFuzzer target too: tests/fuzz/fuzz_toml.c).  Values that
 * init does not need (numbers, dates) are checked only for the characters
 * they may hold; strings are decoded exactly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/init/toml.h"

struct cur {
	const char *s;
	size_t len, pos;
	unsigned line;
	size_t line_start;
	struct sp_toml *out;
	struct sp_error *err;
};

static int peek(const struct cur *c, size_t ahead)
{
	return c->pos + ahead < c->len ? (unsigned char)c->s[c->pos + ahead] : -1;
}

static int fail(struct cur *c, const char *what)
{
	return sp_error_set(c->err, SP_ECONFIG, "%u:%zu: %s", c->line,
			    c->pos - c->line_start + 1, what);
}

static void newline(struct cur *c)
{
	c->line++;
	c->line_start = c->pos;
}

/* Spaces and tabs. */
static void skip_ws(struct cur *c)
{
	while (peek(c, 0) == ' ' || peek(c, 0) == '\t')
		c->pos++;
}

/* A comment up to (not including) the end of the line. */
static int skip_comment(struct cur *c)
{
	int ch;

	if (peek(c, 0) != '#')
		return 0;
	while ((ch = peek(c, 0)) != -1 && ch != '\n') {
		if (ch == '\r' && peek(c, 1) == '\n')
			break;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(c, "control character in a comment");
		c->pos++;
	}
	return 0;
}

/* One line end (\n or \r\n): 1 when one was eaten. */
static int eat_newline(struct cur *c)
{
	if (peek(c, 0) == '\n') {
		c->pos++;
		newline(c);
		return 1;
	}
	if (peek(c, 0) == '\r' && peek(c, 1) == '\n') {
		c->pos += 2;
		newline(c);
		return 1;
	}
	return 0;
}

/* Whitespace, comments and line ends (inside arrays and inline tables). */
static int skip_ws_nl(struct cur *c)
{
	for (;;) {
		skip_ws(c);
		if (skip_comment(c) < 0)
			return SP_ECONFIG;
		if (!eat_newline(c))
			return 0;
	}
}

static int add_byte(struct cur *c, struct sp_buf *b, int ch)
{
	if (sp_buf_addch(b, (char)ch) < 0)
		return fail(c, "value too long");
	return 0;
}

static int add_utf8(struct cur *c, struct sp_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return fail(c, "escape is not a Unicode scalar value");
	if (cp == 0)
		return fail(c, "NUL in a string");
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (sp_buf_add(b, u, n) < 0)
		return fail(c, "value too long");
	return 0;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* After a backslash in a basic string. */
static int escape(struct cur *c, struct sp_buf *b, int multiline)
{
	int ch = peek(c, 0), digits, i, h;
	uint32_t cp = 0;

	if (ch == -1)
		return fail(c, "unterminated string");
	c->pos++;
	switch (ch) {
	case 'b': return add_byte(c, b, '\b');
	case 't': return add_byte(c, b, '\t');
	case 'n': return add_byte(c, b, '\n');
	case 'f': return add_byte(c, b, '\f');
	case 'r': return add_byte(c, b, '\r');
	case 'e': return add_byte(c, b, 0x1b);
	case '"': return add_byte(c, b, '"');
	case '\\': return add_byte(c, b, '\\');
	case 'x': digits = 2; break;
	case 'u': digits = 4; break;
	case 'U': digits = 8; break;
	default:
		if (multiline && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) {
			/* line-ending backslash: drop whitespace up to the next
			 * non-whitespace, line ends included */
			c->pos--;
			skip_ws(c);
			if (!eat_newline(c))
				return fail(c, "a backslash that ends a line must be the last on it");
			for (;;) {
				skip_ws(c);
				if (!eat_newline(c))
					return 0;
			}
		}
		c->pos--;
		return fail(c, "unknown escape in a string");
	}
	for (i = 0; i < digits; i++) {
		if ((h = hexval(peek(c, 0))) < 0)
			return fail(c, "bad hexadecimal digits in an escape");
		cp = cp << 4 | (uint32_t)h;
		c->pos++;
	}
	return add_utf8(c, b, cp);
}

/*
 * A string at the cursor (any of the four forms) into *out (new string,
 * caller frees).
 */
static int parse_string(struct cur *c, char **out)
{
	struct sp_buf b;
	int q = peek(c, 0), multiline, ch, rc;

	sp_buf_init(&b, SP_TOML_MAX_VALUE);
	multiline = peek(c, 1) == q && peek(c, 2) == q;
	c->pos += multiline ? 3 : 1;
	if (multiline)
		eat_newline(c); /* a line end right after the opening is dropped */
	for (;;) {
		ch = peek(c, 0);
		if (ch == -1) {
			rc = fail(c, "unterminated string");
			goto out;
		}
		if (ch == q) {
			if (!multiline) {
				c->pos++;
				break;
			}
			if (peek(c, 1) == q && peek(c, 2) == q) {
				/* up to two quotes may come just before the closing three */
				if (peek(c, 3) == q && peek(c, 4) == q) {
					if ((rc = add_byte(c, &b, q)) < 0 || (rc = add_byte(c, &b, q)) < 0)
						goto out;
					c->pos += 2;
				} else if (peek(c, 3) == q) {
					if ((rc = add_byte(c, &b, q)) < 0)
						goto out;
					c->pos++;
				}
				c->pos += 3;
				break;
			}
			c->pos++;
			if ((rc = add_byte(c, &b, ch)) < 0)
				goto out;
			continue;
		}
		if (ch == '\\' && q == '"') {
			c->pos++;
			if ((rc = escape(c, &b, multiline)) < 0)
				goto out;
			continue;
		}
		if (ch == '\n' || (ch == '\r' && peek(c, 1) == '\n')) {
			if (!multiline) {
				rc = fail(c, "unterminated string (a line end in a one-line string)");
				goto out;
			}
			if ((rc = add_byte(c, &b, '\n')) < 0)
				goto out;
			eat_newline(c);
			continue;
		}
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			rc = fail(c, "control character in a string");
			goto out;
		}
		if ((rc = add_byte(c, &b, ch)) < 0)
			goto out;
		c->pos++;
	}
	*out = sp_buf_detach(&b, NULL);
	rc = 0;
out:
	sp_buf_release(&b);
	return rc;
}

static int is_bare(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

/* A dotted key, appended to *key (with a '.' before each part when not empty). */
static int parse_key(struct cur *c, struct sp_buf *key)
{
	char *part = NULL;
	size_t start;
	int rc;

	for (;;) {
		skip_ws(c);
		if (key->len && sp_buf_addch(key, '.') < 0)
			return fail(c, "key too long");
		if (peek(c, 0) == '"' || peek(c, 0) == '\'') {
			if (peek(c, 1) == peek(c, 0) && peek(c, 2) == peek(c, 0))
				return fail(c, "a key cannot be a multi-line string");
			if ((rc = parse_string(c, &part)) < 0)
				return rc;
			rc = sp_buf_addstr(key, part);
			free(part);
			if (rc < 0)
				return fail(c, "key too long");
		} else {
			start = c->pos;
			while (is_bare(peek(c, 0)))
				c->pos++;
			if (c->pos == start)
				return fail(c, "expected a key");
			if (sp_buf_add(key, c->s + start, c->pos - start) < 0)
				return fail(c, "key too long");
		}
		skip_ws(c);
		if (peek(c, 0) != '.')
			return 0;
		c->pos++;
	}
}

static struct sp_toml_entry *new_entry(struct cur *c, const char *key, unsigned line)
{
	struct sp_toml *t = c->out;
	struct sp_toml_entry *e;

	if (t->n >= SP_TOML_MAX_ENTRIES) {
		fail(c, "too many keys");
		return NULL;
	}
	SP_GROW(t->entries, t->alloc, t->n + 1);
	e = &t->entries[t->n++];
	memset(e, 0, sizeof(*e));
	e->key = sp_xstrdup(key);
	e->line = line;
	return e;
}

static int parse_value(struct cur *c, const char *key, unsigned line, int depth);

/* An array at '['; string items go to e (NULL: drop them). */
static int parse_array(struct cur *c, struct sp_toml_entry *e, int depth)
{
	char *s;
	int rc;

	c->pos++;
	for (;;) {
		if ((rc = skip_ws_nl(c)) < 0)
			return rc;
		if (peek(c, 0) == ']') {
			c->pos++;
			return 0;
		}
		if (peek(c, 0) == '"' || peek(c, 0) == '\'') {
			if ((rc = parse_string(c, &s)) < 0)
				return rc;
			if (e && e->nitems < SP_TOML_MAX_ITEMS) {
				e->items = sp_xrealloc(e->items, (e->nitems + 1) * sizeof(*e->items));
				e->items[e->nitems++] = s;
			} else if (e) {
				free(s);
				return fail(c, "too many items in an array");
			} else {
				free(s);
			}
		} else if ((rc = parse_value(c, NULL, c->line, depth + 1)) < 0) {
			return rc;
		}
		if ((rc = skip_ws_nl(c)) < 0)
			return rc;
		if (peek(c, 0) == ',') {
			c->pos++;
			continue;
		}
		if (peek(c, 0) == ']') {
			c->pos++;
			return 0;
		}
		return fail(c, "expected ',' or ']' in an array");
	}
}

/* An inline table at '{'; its keys go under prefix (NULL: dropped). */
static int parse_inline_table(struct cur *c, const char *prefix, int depth)
{
	struct sp_buf key;
	unsigned line;
	int rc;

	sp_buf_init(&key, 4096);
	c->pos++;
	if ((rc = skip_ws_nl(c)) < 0)
		goto out;
	if (peek(c, 0) == '}') {
		c->pos++;
		rc = 0;
		goto out;
	}
	for (;;) {
		sp_buf_reset(&key);
		if (prefix && sp_buf_addstr(&key, prefix) < 0) {
			rc = fail(c, "key too long");
			goto out;
		}
		line = c->line;
		if ((rc = parse_key(c, &key)) < 0)
			goto out;
		if (peek(c, 0) != '=') {
			rc = fail(c, "expected '=' after a key");
			goto out;
		}
		c->pos++;
		skip_ws(c);
		if ((rc = parse_value(c, prefix ? key.data : NULL, line, depth + 1)) < 0)
			goto out;
		if ((rc = skip_ws_nl(c)) < 0)
			goto out;
		if (peek(c, 0) == ',') {
			c->pos++;
			if ((rc = skip_ws_nl(c)) < 0)
				goto out;
			if (peek(c, 0) == '}') { /* TOML 1.1 allows a trailing comma */
				c->pos++;
				break;
			}
			continue;
		}
		if (peek(c, 0) == '}') {
			c->pos++;
			break;
		}
		rc = fail(c, "expected ',' or '}' in an inline table");
		goto out;
	}
	rc = 0;
out:
	sp_buf_release(&key);
	return rc;
}

static int is_scalar_char(int ch)
{
	return is_bare(ch) || ch == '+' || ch == '.' || ch == ':';
}

/* A value at the cursor; stored under key unless key is NULL. */
static int parse_value(struct cur *c, const char *key, unsigned line, int depth)
{
	struct sp_toml_entry *e = NULL;
	char *s = NULL;
	size_t start;
	int ch = peek(c, 0), rc;

	if (depth > SP_TOML_MAX_DEPTH)
		return fail(c, "nested too deep");
	if (ch == '"' || ch == '\'') {
		if ((rc = parse_string(c, &s)) < 0)
			return rc;
		if (!key) {
			free(s);
			return 0;
		}
		if (!(e = new_entry(c, key, line))) {
			free(s);
			return SP_ECONFIG;
		}
		e->type = SP_TOML_STRING;
		e->value = s;
		return 0;
	}
	if (ch == '[') {
		if (key && !(e = new_entry(c, key, line)))
			return SP_ECONFIG;
		if (e)
			e->type = SP_TOML_ARRAY;
		return parse_array(c, e, depth);
	}
	if (ch == '{')
		return parse_inline_table(c, key, depth);
	start = c->pos;
	while (is_scalar_char(peek(c, 0)))
		c->pos++;
	/* a date and a time may be separated by one space */
	if (c->pos - start == 10 && c->s[start + 4] == '-' && peek(c, 0) == ' ' &&
	    peek(c, 1) >= '0' && peek(c, 1) <= '9') {
		c->pos++;
		while (is_scalar_char(peek(c, 0)))
			c->pos++;
	}
	if (c->pos == start)
		return fail(c, "expected a value");
	if (!key)
		return 0;
	if (c->pos - start > SP_TOML_MAX_VALUE)
		return fail(c, "value too long");
	if (!(e = new_entry(c, key, line)))
		return SP_ECONFIG;
	e->type = SP_TOML_OTHER;
	e->value = sp_xstrndup(c->s + start, c->pos - start);
	return 0;
}

/* The rest of a line after a statement: whitespace, a comment, the end. */
static int end_of_line(struct cur *c)
{
	skip_ws(c);
	if (skip_comment(c) < 0)
		return SP_ECONFIG;
	if (peek(c, 0) == -1 || eat_newline(c))
		return 0;
	return fail(c, "expected the end of the line");
}

int sp_toml_parse(struct sp_toml *out, const char *text, size_t len, struct sp_error *err)
{
	struct cur c;
	struct sp_buf table, key;
	unsigned line;
	int rc = 0, arr;

	memset(&c, 0, sizeof(c));
	c.s = text;
	c.len = len;
	c.line = 1;
	c.out = out;
	c.err = err;
	sp_buf_init(&table, 4096);
	sp_buf_init(&key, 8192);
	if (memchr(text, '\0', len)) {
		c.pos = (size_t)((const char *)memchr(text, '\0', len) - text);
		rc = fail(&c, "NUL byte in the file");
		goto out;
	}
	/* a UTF-8 byte order mark is allowed */
	if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
		c.pos = 3;
	while (c.pos < c.len) {
		skip_ws(&c);
		if ((rc = skip_comment(&c)) < 0)
			goto out;
		if (eat_newline(&c) || peek(&c, 0) == -1)
			continue;
		if (peek(&c, 0) == '[') {
			arr = peek(&c, 1) == '[';
			c.pos += arr ? 2 : 1;
			sp_buf_reset(&table);
			if ((rc = parse_key(&c, &table)) < 0)
				goto out;
			if (peek(&c, 0) != ']' || (arr && peek(&c, 1) != ']')) {
				rc = fail(&c, arr ? "expected ']]'" : "expected ']'");
				goto out;
			}
			c.pos += arr ? 2 : 1;
		} else {
			sp_buf_reset(&key);
			if (table.len && sp_buf_addstr(&key, table.data) < 0) {
				rc = fail(&c, "key too long");
				goto out;
			}
			line = c.line;
			if ((rc = parse_key(&c, &key)) < 0)
				goto out;
			if (peek(&c, 0) != '=') {
				rc = fail(&c, "expected '=' after a key");
				goto out;
			}
			c.pos++;
			skip_ws(&c);
			if ((rc = parse_value(&c, key.data, line, 0)) < 0)
				goto out;
		}
		if ((rc = end_of_line(&c)) < 0)
			goto out;
	}
	rc = 0;
out:
	sp_buf_release(&table);
	sp_buf_release(&key);
	if (rc < 0)
		sp_toml_release(out);
	return rc;
}

void sp_toml_release(struct sp_toml *t)
{
	size_t i, j;

	if (!t)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->entries[i].key);
		free(t->entries[i].value);
		for (j = 0; j < t->entries[i].nitems; j++)
			free(t->entries[i].items[j]);
		free(t->entries[i].items);
	}
	free(t->entries);
	t->entries = NULL;
	t->n = t->alloc = 0;
}

const struct sp_toml_entry *sp_toml_get(const struct sp_toml *t, const char *key)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->entries[i].key, key))
			return &t->entries[i];
	return NULL;
}

const char *sp_toml_get_string(const struct sp_toml *t, const char *key)
{
	const struct sp_toml_entry *e = sp_toml_get(t, key);

	return e && e->type == SP_TOML_STRING ? e->value : NULL;
}
