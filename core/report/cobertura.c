/*
 * cobertura.c — coverage.py's Cobertura XML report, read with libxml2's
 * streaming xmlTextReader into the totals and per-file line figures; see
 * cobertura.h.
 *
 * The totals are the root element's attributes; the per-file figures are
 * counted while walking (a <line> directly in a <class>'s <lines>, so that
 * writers which repeat lines under <methods> are not counted twice).  Only
 * the current node is ever held, so memory does not grow with the report.
 *
 * Hostile input is handled by xmlread.c, as for junit.c: no network, no DTD
 * loading or entity substitution, any DOCTYPE refused, libxml2's limits left
 * on, and errors collected through a handler set on this reader only.
 */
#include "core/report/cobertura.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/xmlreader.h>

#include "core/base/xalloc.h"
#include "core/report/xmlread.h"

struct state {
	struct sp_cobertura *c;
	const char *name;
	struct sp_error *err;

	int seen_root;
	int class_depth;  /* depth of the open <class>, -1 outside */
	int lines_depth;  /* depth of that class's own <lines>, -1 outside */
	long file_index;  /* its record in c->files, -1 when not kept */
};

void sp_cobertura_init(struct sp_cobertura *c)
{
	memset(c, 0, sizeof(*c));
}

void sp_cobertura_release(struct sp_cobertura *c)
{
	size_t i;

	for (i = 0; i < c->nfiles; i++)
		free(c->files[i].filename);
	free(c->files);
	sp_cobertura_init(c);
}

/* A non-negative decimal integer; 0 or -1 (also on overflow). */
static int parse_ulong(const char *s, unsigned long *out)
{
	unsigned long v = 0;
	int digits = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (v > (ULONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (!digits || *s)
		return -1;
	*out = v;
	return 0;
}

/*
 * Reads attribute attr as an unsigned integer: 1 when present and valid,
 * 0 when absent, SP_ERROR (err set) when present but not a number.
 */
static int attr_ulong(struct state *st, xmlTextReaderPtr rd, const char *attr, unsigned long *out)
{
	xmlChar *v = xmlTextReaderGetAttribute(rd, (const xmlChar *)attr);
	int rc = 1;

	if (!v)
		return 0;
	if (parse_ulong((const char *)v, out) < 0)
		rc = sp_error_set(st->err, SP_ERROR, "%s: %s=\"%.40s\" is not a count",
				  st->name, attr, (const char *)v);
	xmlFree(v);
	return rc;
}

/* Like attr_ulong for a rate between 0 and 1. */
static int attr_rate(struct state *st, xmlTextReaderPtr rd, const char *attr, double *out)
{
	xmlChar *v = xmlTextReaderGetAttribute(rd, (const xmlChar *)attr);
	int rc = 1;

	if (!v)
		return 0;
	if (sp_xmlread_parse_decimal((const char *)v, out) < 0 || !(*out >= 0 && *out <= 1))
		rc = sp_error_set(st->err, SP_ERROR, "%s: %s=\"%.40s\" is not a rate between 0 and 1",
				  st->name, attr, (const char *)v);
	xmlFree(v);
	return rc;
}

static int on_root(struct state *st, xmlTextReaderPtr rd)
{
	struct sp_cobertura *c = st->c;
	double line_rate = 0, branch_rate = 0;
	int has_lv, has_lc, has_rate, has_bv, has_bc, rc;

	if ((rc = has_lv = attr_ulong(st, rd, "lines-valid", &c->lines_valid)) < 0 ||
	    (rc = has_lc = attr_ulong(st, rd, "lines-covered", &c->lines_covered)) < 0 ||
	    (rc = has_rate = attr_rate(st, rd, "line-rate", &line_rate)) < 0 ||
	    (rc = has_bv = attr_ulong(st, rd, "branches-valid", &c->branches_valid)) < 0 ||
	    (rc = has_bc = attr_ulong(st, rd, "branches-covered", &c->branches_covered)) < 0 ||
	    (rc = attr_rate(st, rd, "branch-rate", &branch_rate)) < 0)
		return rc;

	if (has_lv && has_lc) {
		if (c->lines_covered > c->lines_valid)
			return sp_error_set(st->err, SP_ERROR,
					    "%s: lines-covered (%lu) is more than lines-valid (%lu)",
					    st->name, c->lines_covered, c->lines_valid);
		c->has_line_counts = 1;
		c->line_percent = c->lines_valid ? 100.0 * (double)c->lines_covered / (double)c->lines_valid
						 : 100.0;
	} else if (has_rate) {
		c->lines_valid = c->lines_covered = 0;
		c->line_percent = 100.0 * line_rate;
	} else {
		return sp_error_set(st->err, SP_ERROR,
				    "%s: <coverage> has neither lines-valid/lines-covered nor line-rate",
				    st->name);
	}
	if (has_bv && has_bc && c->branches_valid > 0) {
		if (c->branches_covered > c->branches_valid)
			return sp_error_set(st->err, SP_ERROR,
					    "%s: branches-covered (%lu) is more than branches-valid (%lu)",
					    st->name, c->branches_covered, c->branches_valid);
		c->has_branches = 1;
		c->branch_percent = 100.0 * (double)c->branches_covered / (double)c->branches_valid;
	} else {
		c->branches_valid = c->branches_covered = 0;
	}
	if (c->has_branches && c->has_line_counts)
		c->total_percent = 100.0 * (double)(c->lines_covered + c->branches_covered) /
				   (double)(c->lines_valid + c->branches_valid);
	else
		c->total_percent = c->line_percent;
	return 0;
}

static void open_class(struct state *st, xmlTextReaderPtr rd, int depth)
{
	struct sp_cobertura *c = st->c;
	xmlChar *v;

	st->class_depth = depth;
	st->lines_depth = -1;
	st->file_index = -1;
	if (c->nfiles >= SP_COBERTURA_MAX_FILES) {
		c->files_omitted++;
		return;
	}
	v = xmlTextReaderGetAttribute(rd, (const xmlChar *)"filename");
	if (!v)
		v = xmlTextReaderGetAttribute(rd, (const xmlChar *)"name");
	SP_GROW(c->files, c->files_alloc, c->nfiles + 1);
	memset(&c->files[c->nfiles], 0, sizeof(c->files[0]));
	c->files[c->nfiles].filename = sp_xstrdup(v ? (const char *)v : "");
	c->files[c->nfiles].line_percent = 100.0;
	xmlFree(v);
	st->file_index = (long)c->nfiles++;
}

static void close_class(struct state *st)
{
	struct sp_cobertura_file *f;

	if (st->file_index >= 0) {
		f = &st->c->files[st->file_index];
		if (f->lines_valid)
			f->line_percent = 100.0 * (double)f->lines_covered / (double)f->lines_valid;
	}
	st->class_depth = st->lines_depth = -1;
	st->file_index = -1;
}

static int on_element(void *ctx, xmlTextReaderPtr rd, const char *el, int depth)
{
	struct state *st = ctx;
	unsigned long hits = 0;
	int rc;

	if (!st->seen_root) {
		st->seen_root = 1;
		if (strcmp(el, "coverage") != 0)
			return sp_error_set(st->err, SP_ERROR,
					    "%s: not a Cobertura report (root element <%s>, expected <coverage>)",
					    st->name, el);
		return on_root(st, rd);
	}
	if (strcmp(el, "class") == 0 && st->class_depth < 0) {
		open_class(st, rd, depth);
		if (xmlTextReaderIsEmptyElement(rd))
			close_class(st);
	} else if (st->class_depth >= 0 && depth == st->class_depth + 1 && strcmp(el, "lines") == 0) {
		if (!xmlTextReaderIsEmptyElement(rd))
			st->lines_depth = depth;
	} else if (st->lines_depth >= 0 && depth == st->lines_depth + 1 && strcmp(el, "line") == 0 &&
		   st->file_index >= 0) {
		if ((rc = attr_ulong(st, rd, "hits", &hits)) < 0)
			return rc;
		st->c->files[st->file_index].lines_valid++;
		if (rc > 0 && hits > 0)
			st->c->files[st->file_index].lines_covered++;
	}
	return 0;
}

static void on_end(void *ctx, const char *el, int depth)
{
	struct state *st = ctx;

	(void)el;
	if (st->lines_depth >= 0 && depth == st->lines_depth)
		st->lines_depth = -1;
	else if (st->class_depth >= 0 && depth == st->class_depth)
		close_class(st);
}

static const struct sp_xmlread_handlers handlers = {
	.writer = "coverage.py",
	.element = on_element,
	.end = on_end,
	.text = NULL,
};

/* Walks the document into out (initialised by the caller); takes ownership of rd. */
static int run_reader(struct sp_cobertura *out, xmlTextReaderPtr rd, const char *name,
		      struct sp_error *err)
{
	struct state st;
	int rc;

	memset(&st, 0, sizeof(st));
	st.c = out;
	st.name = name;
	st.err = err;
	st.class_depth = st.lines_depth = -1;
	st.file_index = -1;
	if ((rc = sp_xmlread_walk(rd, &handlers, &st, name, err)) < 0)
		goto cleanup;
	if (!st.seen_root)
		rc = sp_error_set(err, SP_ERROR, "%s: empty document, not a Cobertura report", name);
cleanup:
	if (rc < 0)
		sp_cobertura_release(out);
	return rc;
}

int sp_cobertura_parse_mem(struct sp_cobertura *out, const char *data, size_t len,
			   const char *name, struct sp_error *err)
{
	xmlTextReaderPtr rd;
	int rc;

	sp_cobertura_init(out);
	if ((rc = sp_xmlread_for_mem(&rd, data, len, name, "Cobertura report", err)) < 0)
		return rc;
	return run_reader(out, rd, name, err);
}

int sp_cobertura_parse_file(struct sp_cobertura *out, const char *path, struct sp_error *err)
{
	xmlTextReaderPtr rd;
	int fd, rc;

	sp_cobertura_init(out);
	if ((rc = sp_xmlread_open_file(&rd, &fd, path, "Cobertura report", err)) < 0)
		return rc;
	rc = run_reader(out, rd, path, err);
	close(fd); /* after run_reader has freed the reader reading from it */
	return rc;
}
