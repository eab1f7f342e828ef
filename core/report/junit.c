/*
 * junit.c — pytest's JUnit XML report, read with libxml2's streaming
 * xmlTextReader into counts and a short list of failures; see junit.h.
 *
 * The reader walks the document node by node and frees what it has passed,
 * so only the current node (and the tail of the current traceback, bounded
 * by SP_JUNIT_DETAIL_MAX) is ever in memory.  The walk is a small state
 * machine: inside a <testcase> we remember its id; a <failure>/<error> child
 * counts and, while the list has room, opens a record whose text is
 * collected until the element ends; the testcase's end decides "passed".
 * Elements we do not know (<properties>, <system-out>, …) are skipped over.
 *
 * Hostile input is handled by xmlread.c, which opens the file, makes the
 * reader and walks it: no network, no DTD loading or entity substitution,
 * any DOCTYPE refused as soon as the reader reports it, libxml2's
 * amplification checks and 10 MB text limit left on, and parse errors
 * collected through a handler set on this reader only.
 */
#include "core/report/junit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/xmlreader.h>

#include "core/base/buf.h"
#include "core/base/xalloc.h"
#include "core/report/xmlread.h"

struct state {
	struct sp_junit *r;
	const char *name;      /* file name for messages */
	struct sp_error *err;

	int seen_root;
	int suite_depth;       /* depth of the outermost <testsuite>, -1 outside */
	double suite_time;
	int have_suite_time;
	double case_time_sum;

	int case_depth;        /* depth of the open <testcase>, -1 outside */
	char *case_id;         /* its test id */
	int case_outcome;      /* a failure/error/skipped child was seen */

	int rec_depth;         /* depth of the open <failure>/<error>, -1 outside */
	long rec_index;        /* its record in r->cases, -1 when not kept */
	struct sp_buf text;    /* tail of its text */
};

void sp_junit_init(struct sp_junit *r)
{
	memset(r, 0, sizeof(*r));
}

void sp_junit_release(struct sp_junit *r)
{
	size_t i;

	for (i = 0; i < r->ncases; i++) {
		free(r->cases[i].id);
		free(r->cases[i].message);
		free(r->cases[i].detail);
	}
	free(r->cases);
	sp_junit_init(r);
}

/* ---- small string helpers ---------------------------------------------- */

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
		len--;
	return len;
}

/* First line of s, trailing blanks dropped, at most SP_JUNIT_MESSAGE_MAX bytes. */
static char *first_line(const char *s)
{
	size_t n = strcspn(s, "\r\n");
	size_t cut;

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n <= SP_JUNIT_MESSAGE_MAX)
		return sp_xstrndup(s, n);
	cut = utf8_cut(s, n, SP_JUNIT_MESSAGE_MAX - 3);
	return sp_xasprintf("%.*s...", (int)cut, s);
}

/* The last SP_JUNIT_DETAIL_LINES lines of text (≤ SP_JUNIT_DETAIL_MAX bytes). */
static char *tail_lines(const char *s, size_t len)
{
	size_t start, lines = 0;

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' ||
			   s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	start = len;
	while (start > 0) {
		if (s[start - 1] == '\n' && ++lines == SP_JUNIT_DETAIL_LINES)
			break;
		start--;
	}
	if (len - start > SP_JUNIT_DETAIL_MAX) {
		start = len - SP_JUNIT_DETAIL_MAX;
		while (start < len && ((unsigned char)s[start] & 0xC0) == 0x80)
			start++;
	}
	return sp_xstrndup(s + start, len - start);
}

/*
 * pytest's collection errors say only "collection failure"; the exception
 * is in the traceback's first "E   " line.  Returns it (new string) or NULL.
 */
static char *message_from_detail(const char *detail)
{
	const char *p = detail;

	while (*p) {
		if (p[0] == 'E' && p[1] == ' ') {
			p++;
			while (*p == ' ')
				p++;
			return first_line(p);
		}
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return NULL;
}

static int is_test_module(const char *s, size_t n)
{
	return (n > 5 && memcmp(s, "test_", 5) == 0) ||
	       (n > 5 && memcmp(s + n - 5, "_test", 5) == 0);
}

char *sp_junit_test_id(const char *classname, const char *name)
{
	struct sp_buf b = SP_BUF_INIT;
	const char *parts[256];
	size_t lens[256];
	size_t nparts = 0, modend = 0, i;
	const char *p = classname ? classname : "";

	if (!name)
		name = "";
	if (!*p) {
		/* A collector's report: name is the module's dotted path. */
		p = name;
		name = NULL;
	}
	while (*p && nparts < 256) {
		size_t n = strcspn(p, ".");
		parts[nparts] = p;
		lens[nparts++] = n;
		p += n;
		if (*p)
			p++;
	}
	if (*p) {
		/* Absurdly deep: keep the rest as one piece. */
		lens[nparts - 1] = strlen(parts[nparts - 1]);
	}
	if (name) {
		for (i = nparts; i > 0; i--)
			if (is_test_module(parts[i - 1], lens[i - 1]))
				break;
		modend = i;
		if (modend == 0) {
			modend = nparts;
			while (modend > 1 && parts[modend - 1][0] >= 'A' && parts[modend - 1][0] <= 'Z')
				modend--;
		}
	} else {
		modend = nparts;
	}
	for (i = 0; i < modend; i++) {
		if (i)
			sp_buf_addch(&b, '/');
		sp_buf_add(&b, parts[i], lens[i]);
	}
	if (modend)
		sp_buf_addstr(&b, ".py");
	for (; i < nparts; i++) {
		sp_buf_addstr(&b, "::");
		sp_buf_add(&b, parts[i], lens[i]);
	}
	if (name) {
		if (b.len)
			sp_buf_addstr(&b, "::");
		sp_buf_addstr(&b, name);
	}
	return sp_buf_detach(&b, NULL);
}

/* ---- the reader ---------------------------------------------------------- */

/* The attribute's value as a new string, or NULL when absent. */
static char *get_attr(xmlTextReaderPtr rd, const char *attr)
{
	xmlChar *v = xmlTextReaderGetAttribute(rd, (const xmlChar *)attr);
	char *s;

	if (!v)
		return NULL;
	s = sp_xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

static void get_time_attr(xmlTextReaderPtr rd, double *out, int *have)
{
	char *v = get_attr(rd, "time");
	double t;

	if (v && sp_xmlread_parse_decimal(v, &t) == 0 && t >= 0) {
		*out += t;
		if (have)
			*have = 1;
	}
	free(v);
}

static void open_record(struct state *st, xmlTextReaderPtr rd, enum sp_junit_kind kind, int depth)
{
	struct sp_junit *r = st->r;
	struct sp_junit_case *c;
	char *msg;

	if (kind == SP_JUNIT_FAILURE)
		r->failed++;
	else
		r->errors++;
	st->case_outcome = 1;
	if (r->ncases >= SP_JUNIT_MAX_CASES) {
		r->cases_omitted++;
		st->rec_index = -1;
	} else {
		SP_GROW(r->cases, r->cases_alloc, r->ncases + 1);
		c = &r->cases[r->ncases];
		c->kind = kind;
		c->id = sp_xstrdup(st->case_id ? st->case_id : "");
		msg = get_attr(rd, "message");
		c->message = first_line(msg ? msg : "");
		free(msg);
		c->detail = sp_xstrdup("");
		st->rec_index = (long)r->ncases++;
	}
	sp_buf_reset(&st->text);
	st->rec_depth = depth;
}

static void close_record(struct state *st)
{
	struct sp_junit_case *c;
	char *m;

	if (st->rec_index >= 0) {
		c = &st->r->cases[st->rec_index];
		free(c->detail);
		c->detail = tail_lines(st->text.data, st->text.len);
		if (!c->message[0] || strcmp(c->message, "collection failure") == 0) {
			if ((m = message_from_detail(c->detail)) != NULL) {
				free(c->message);
				c->message = m;
			}
		}
	}
	st->rec_depth = -1;
	st->rec_index = -1;
	sp_buf_reset(&st->text);
}

/* Appends text of the open record, keeping only its tail. */
static void add_text(struct state *st, const char *s)
{
	size_t n;

	if (st->rec_index < 0 || !s)
		return;
	n = strlen(s);
	if (n > 2 * SP_JUNIT_DETAIL_MAX) {
		s += n - 2 * SP_JUNIT_DETAIL_MAX;
		n = 2 * SP_JUNIT_DETAIL_MAX;
	}
	sp_buf_add(&st->text, s, n); /* the buffer has no cap */
	if (st->text.len > 2 * SP_JUNIT_DETAIL_MAX)
		sp_buf_consume(&st->text, st->text.len - 2 * SP_JUNIT_DETAIL_MAX);
}

static void end_case(struct state *st)
{
	if (!st->case_outcome)
		st->r->passed++;
	free(st->case_id);
	st->case_id = NULL;
	st->case_depth = -1;
	st->case_outcome = 0;
}

static int on_element(void *ctx, xmlTextReaderPtr rd, const char *el, int depth)
{
	struct state *st = ctx;
	struct sp_junit *r = st->r;
	char *a, *b;

	if (!st->seen_root) {
		st->seen_root = 1;
		if (strcmp(el, "testsuites") != 0 && strcmp(el, "testsuite") != 0)
			return sp_error_set(st->err, SP_ERROR,
					    "%s: not a JUnit report (root element <%s>, expected <testsuites> or <testsuite>)",
					    st->name, el);
	}
	if (strcmp(el, "testsuite") == 0) {
		if (st->suite_depth < 0) {
			get_time_attr(rd, &st->suite_time, &st->have_suite_time);
			if (!xmlTextReaderIsEmptyElement(rd))
				st->suite_depth = depth;
		}
	} else if (strcmp(el, "testcase") == 0 && st->case_depth < 0) {
		r->tests++;
		a = get_attr(rd, "classname");
		b = get_attr(rd, "name");
		st->case_id = sp_junit_test_id(a, b);
		free(a);
		free(b);
		get_time_attr(rd, &st->case_time_sum, NULL);
		st->case_depth = depth;
		st->case_outcome = 0;
		if (xmlTextReaderIsEmptyElement(rd))
			end_case(st);
	} else if (st->case_depth >= 0 && depth == st->case_depth + 1) {
		if (strcmp(el, "failure") == 0 || strcmp(el, "error") == 0) {
			open_record(st, rd, el[0] == 'f' ? SP_JUNIT_FAILURE : SP_JUNIT_ERROR, depth);
			/* <failure message="…"/> has no end element to wait for. */
			if (xmlTextReaderIsEmptyElement(rd))
				close_record(st);
		} else if (strcmp(el, "skipped") == 0) {
			a = get_attr(rd, "type");
			if (a && strcmp(a, "pytest.xfail") == 0)
				r->xfailed++;
			else
				r->skipped++;
			free(a);
			st->case_outcome = 1;
		}
	}
	return 0;
}

static void on_end(void *ctx, const char *el, int depth)
{
	struct state *st = ctx;

	if (st->rec_depth >= 0 && depth == st->rec_depth)
		close_record(st);
	else if (st->case_depth >= 0 && depth == st->case_depth && strcmp(el, "testcase") == 0)
		end_case(st);
	else if (st->suite_depth >= 0 && depth == st->suite_depth)
		st->suite_depth = -1;
}

/* Text of the open <failure>/<error>; the rest (<system-out>, …) is not kept. */
static void on_text(void *ctx, const char *text)
{
	struct state *st = ctx;

	if (st->rec_depth >= 0)
		add_text(st, text);
}

static const struct sp_xmlread_handlers handlers = {
	.writer = "pytest",
	.element = on_element,
	.end = on_end,
	.text = on_text,
};

/* Walks the document into out (initialised by the caller); takes ownership of rd. */
static int run_reader(struct sp_junit *out, xmlTextReaderPtr rd, const char *name,
		      struct sp_error *err)
{
	struct state st;
	int rc;

	memset(&st, 0, sizeof(st));
	st.r = out;
	st.name = name;
	st.err = err;
	st.suite_depth = st.case_depth = st.rec_depth = -1;
	st.rec_index = -1;
	sp_buf_init(&st.text, 0);
	if ((rc = sp_xmlread_walk(rd, &handlers, &st, name, err)) < 0)
		goto cleanup;
	if (!st.seen_root) {
		rc = sp_error_set(err, SP_ERROR, "%s: empty document, not a JUnit report", name);
		goto cleanup;
	}
	out->time = st.have_suite_time ? st.suite_time : st.case_time_sum;
cleanup:
	free(st.case_id);
	sp_buf_release(&st.text);
	if (rc < 0)
		sp_junit_release(out);
	return rc;
}

int sp_junit_parse_mem(struct sp_junit *out, const char *data, size_t len,
		       const char *name, struct sp_error *err)
{
	xmlTextReaderPtr rd;
	int rc;

	sp_junit_init(out);
	if ((rc = sp_xmlread_for_mem(&rd, data, len, name, "JUnit report", err)) < 0)
		return rc;
	return run_reader(out, rd, name, err);
}

int sp_junit_parse_file(struct sp_junit *out, const char *path, struct sp_error *err)
{
	xmlTextReaderPtr rd;
	int fd, rc;

	sp_junit_init(out);
	if ((rc = sp_xmlread_open_file(&rd, &fd, path, "JUnit report", err)) < 0)
		return rc;
	rc = run_reader(out, rd, path, err);
	close(fd); /* after run_reader has freed the reader reading from it */
	return rc;
}
