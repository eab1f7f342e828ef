/*
 * sink_reports.c — --junit and --coverage files for an outer CI; see sinks.h.
 *
 * Written when the pipeline finishes (the stage reports are only valid
 * during that event).  The JUnit file holds one <testsuite name="stages">
 * with a test case per stage (failed, skipped or passed, with the reason),
 * followed by the <testsuite> elements of each pytest stage's own report,
 * copied node by node from libxml2's streaming reader to its writer, so
 * that memory stays flat whatever the report's size (a 60 MB report once
 * took over 1 GB when each suite was read whole).  The coverage file is a
 * byte copy of the first test stage's Cobertura XML.
 */
#include <errno.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlwriter.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/exec/sinks.h"
#include "core/report/xmlread.h"
#include "core/base/buf.h"
#include "core/base/xalloc.h"

struct reports {
	struct sp_sink base;
	char *junit_path;
	char *coverage_path;
	struct sp_error err;
	int rc;
};

static void attr_num(xmlTextWriterPtr w, const char *name, double v)
{
	xmlTextWriterWriteFormatAttribute(w, BAD_CAST name, "%g", v);
}

/* The JUnit element under a stage's <testcase> for its result; NULL: none (passed). */
static const char *outcome_element(enum sp_stage_result r)
{
	switch (r) {
	case SP_RESULT_FAILED:
		return "failure";
	case SP_RESULT_ERROR:
	case SP_RESULT_CANCELLED:
		return "error";
	case SP_RESULT_SKIPPED:
		return "skipped";
	default:
		return NULL;
	}
}

/*
 * Declares on the element just started the namespaces that node (the
 * <testsuite> being copied) inherits from its ancestors, so that the copy
 * stands alone outside them.  The ancestors are still in the reader's tree:
 * it frees only what it has left behind.  Returns < 0 when writing failed.
 */
static int declare_inherited_ns(xmlTextWriterPtr w, xmlNodePtr node)
{
	xmlNsPtr *inherited, *ns, own;
	int rc = 0;

	if (!node || !node->parent || node->parent->type != XML_ELEMENT_NODE)
		return 0;
	inherited = xmlGetNsList(node->doc, node->parent);
	for (ns = inherited; ns && *ns && rc >= 0; ns++) {
		for (own = node->nsDef; own; own = own->next)
			if (xmlStrEqual(own->prefix, (*ns)->prefix))
				break;
		if (own)
			continue;  /* declared again on the suite, copied with its attributes */
		if ((*ns)->prefix)
			rc = xmlTextWriterWriteAttributeNS(w, BAD_CAST "xmlns", (*ns)->prefix, NULL,
							   (*ns)->href);
		else
			rc = xmlTextWriterWriteAttribute(w, BAD_CAST "xmlns", (*ns)->href);
	}
	xmlFree(inherited);
	return rc;
}

/*
 * Writes the element the reader is on with its attributes (namespace
 * declarations among them: the reader gives "xmlns:x" as an attribute), and
 * ends it at once when it is empty.  top: the <testsuite> a copy starts
 * from.  Returns < 0 when writing failed.
 */
static int copy_element(xmlTextWriterPtr w, xmlTextReaderPtr r, bool top)
{
	bool empty = xmlTextReaderIsEmptyElement(r) == 1;
	int rc;

	rc = xmlTextWriterStartElement(w, xmlTextReaderConstName(r));
	if (rc >= 0 && top)
		rc = declare_inherited_ns(w, xmlTextReaderCurrentNode(r));
	while (rc >= 0 && xmlTextReaderMoveToNextAttribute(r) == 1)
		rc = xmlTextWriterWriteAttribute(w, xmlTextReaderConstName(r),
						 xmlTextReaderConstValue(r));
	xmlTextReaderMoveToElement(r);
	if (rc >= 0 && empty)
		rc = xmlTextWriterEndElement(w);
	return rc;
}

/*
 * Copies the <testsuite> elements of a pytest report (path) into w, the
 * JUnit file being written to `to`.  Node by node: the reader frees each
 * node once passed and the writer flushes as it goes, so a suite of any
 * size costs a few pages (xmlTextReaderReadOuterXml would hold the whole
 * suite as a tree and then as a string).  Elements, attributes, text, CDATA,
 * comments and processing instructions are copied, white space as it was.
 * A DOCTYPE or entity is refused, as the report readers do (the report was
 * read through them already; this keeps the copy safe on its own).
 */
static int copy_suites(xmlTextWriterPtr w, const char *path, const char *stage, const char *to,
		       struct sp_error *err)
{
	struct sp_xmlread_errors cap;
	xmlTextReaderPtr r = NULL;
	int ret, rc, fd = -1, top = -1;  /* top: depth of the suite being copied; -1: none */

	if ((rc = sp_xmlread_open_file(&r, &fd, path, "JUnit report", err)) < 0)
		return rc;
	sp_xmlread_errors_capture(&cap, r);
	if (xmlTextWriterWriteFormatComment(w, " tests of stage %s ", stage) < 0)
		goto write_failed;
	/* No indenting inside a copy: it would add to the text of elements such
	 * as <system-out>.  The report's own white space is copied instead. */
	xmlTextWriterSetIndent(w, 0);
	while ((ret = xmlTextReaderRead(r)) == 1) {
		int type = xmlTextReaderNodeType(r), wr = 0;
		const xmlChar *value;

		if (type == XML_READER_TYPE_DOCUMENT_TYPE || type == XML_READER_TYPE_ENTITY ||
		    type == XML_READER_TYPE_ENTITY_REFERENCE) {
			rc = sp_error_set(err, SP_ERROR, "%s: refusing a report with a DOCTYPE or "
					  "entities (pytest writes neither)", path);
			goto cleanup;
		}
		if (top < 0) {
			if (type != XML_READER_TYPE_ELEMENT ||
			    !xmlStrEqual(xmlTextReaderConstLocalName(r), BAD_CAST "testsuite"))
				continue;
			if (!xmlTextReaderIsEmptyElement(r))
				top = xmlTextReaderDepth(r);
			if (copy_element(w, r, true) < 0)
				goto write_failed;
			continue;
		}
		value = xmlTextReaderConstValue(r);
		switch (type) {
		case XML_READER_TYPE_ELEMENT:
			wr = copy_element(w, r, false);
			break;
		case XML_READER_TYPE_END_ELEMENT:
			wr = xmlTextWriterEndElement(w);
			if (xmlTextReaderDepth(r) == top)
				top = -1;
			break;
		case XML_READER_TYPE_TEXT:
		case XML_READER_TYPE_WHITESPACE:
		case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
			if (value)
				wr = xmlTextWriterWriteString(w, value);
			break;
		case XML_READER_TYPE_CDATA:
			if (value)
				wr = xmlTextWriterWriteCDATA(w, value);
			break;
		case XML_READER_TYPE_COMMENT:
			if (value)
				wr = xmlTextWriterWriteComment(w, value);
			break;
		case XML_READER_TYPE_PROCESSING_INSTRUCTION:
			wr = xmlTextWriterWritePI(w, xmlTextReaderConstName(r),
						  value ? value : BAD_CAST "");
			break;
		default:
			break;
		}
		if (wr < 0)
			goto write_failed;
	}
	rc = sp_xmlread_errors_check(&cap, ret, path, err);
	goto cleanup;
write_failed:
	rc = sp_error_set(err, SP_ERROR, "writing %s failed", to);
cleanup:
	xmlTextWriterSetIndent(w, 1);
	/* freed while cap, its error handler's context, is still alive */
	xmlFreeTextReader(r);
	close(fd);
	return rc;
}

static int write_junit(struct reports *s, const struct sp_event *ev, struct sp_error *err)
{
	xmlTextWriterPtr w = xmlNewTextWriterFilename(s->junit_path, 0);
	unsigned long failed = 0, skipped = 0, errors = 0;
	size_t i;
	int rc = 0;

	if (!w)
		return sp_error_set(err, SP_ERROR, "cannot write %s: %s", s->junit_path,
				    strerror(errno));
	for (i = 0; i < ev->nreports; i++) {
		enum sp_stage_result r = ev->reports[i].result;
		failed += r == SP_RESULT_FAILED;
		skipped += r == SP_RESULT_SKIPPED;
		errors += r == SP_RESULT_ERROR || r == SP_RESULT_CANCELLED;
	}
	xmlTextWriterSetIndent(w, 1);
	xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL);
	xmlTextWriterStartElement(w, BAD_CAST "testsuites");
	xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST ev->pipeline->name);
	attr_num(w, "time", ev->seconds);
	xmlTextWriterStartElement(w, BAD_CAST "testsuite");
	xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST "stages");
	attr_num(w, "tests", (double)ev->nreports);
	attr_num(w, "failures", (double)failed);
	attr_num(w, "errors", (double)errors);
	attr_num(w, "skipped", (double)skipped);
	attr_num(w, "time", ev->seconds);
	for (i = 0; i < ev->nreports; i++) {
		const struct sp_stage_report *rep = &ev->reports[i];
		const char *msg = rep->message ? rep->message : "", *outcome;
		xmlTextWriterStartElement(w, BAD_CAST "testcase");
		xmlTextWriterWriteFormatAttribute(w, BAD_CAST "classname", "stagepipe.%s",
						  ev->pipeline->name);
		xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST rep->stage->name);
		attr_num(w, "time", rep->seconds);
		if ((outcome = outcome_element(rep->result)) != NULL) {
			xmlTextWriterStartElement(w, BAD_CAST outcome);
			xmlTextWriterWriteAttribute(w, BAD_CAST "message", BAD_CAST msg);
			xmlTextWriterEndElement(w);
		}
		xmlTextWriterEndElement(w);
	}
	xmlTextWriterEndElement(w);  /* testsuite */
	for (i = 0; i < ev->nreports && rc == 0; i++)
		if (ev->reports[i].junit_path)
			rc = copy_suites(w, ev->reports[i].junit_path, ev->reports[i].stage->name,
					 s->junit_path, err);
	xmlTextWriterEndElement(w);  /* testsuites */
	if (xmlTextWriterEndDocument(w) < 0 && rc == 0)
		rc = sp_error_set(err, SP_ERROR, "writing %s failed", s->junit_path);
	xmlFreeTextWriter(w);
	return rc;
}

static int copy_file(const char *from, const char *to, struct sp_error *err)
{
	FILE *in = fopen(from, "rb"), *out = NULL;
	char buf[65536];
	bool failed;
	size_t n;
	int rc = 0;

	if (!in)
		return sp_error_set(err, SP_ERROR, "cannot read %s: %s", from, strerror(errno));
	out = fopen(to, "wb");
	if (!out) {
		rc = sp_error_set(err, SP_ERROR, "cannot write %s: %s", to, strerror(errno));
		goto out;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			break;
	failed = ferror(in) || ferror(out);
	/* closed whatever happened (|| would skip it after a read error) */
	if (fclose(out) != 0)
		failed = true;
	out = NULL;
	if (failed)
		rc = sp_error_set(err, SP_ERROR, "copying the coverage report to %s failed", to);
out:
	if (out)
		fclose(out);
	fclose(in);
	return rc;
}

static void reports_event(struct sp_sink *self, const struct sp_event *ev)
{
	struct reports *s = (struct reports *)self;
	size_t i;

	if (ev->kind != SP_EVENT_PIPELINE_FINISHED)
		return;
	if (s->junit_path && (s->rc = write_junit(s, ev, &s->err)) < 0)
		return;
	if (!s->coverage_path)
		return;
	for (i = 0; i < ev->nreports; i++)
		if (ev->reports[i].coverage_path)
			break;
	if (i == ev->nreports) {
		s->rc = sp_error_set(&s->err, SP_ERROR, "no stage produced a coverage report for %s",
				     s->coverage_path);
		return;
	}
	s->rc = copy_file(ev->reports[i].coverage_path, s->coverage_path, &s->err);
	/* matrix variants each also get a file of their own */
	for (i = 0; i < ev->nreports && s->rc == 0; i++) {
		const struct sp_stage_report *rep = &ev->reports[i];
		char *to;

		if (!rep->coverage_path || !rep->stage->matrix.n)
			continue;
		to = sp_reports_variant_path(s->coverage_path, rep->stage->name);
		s->rc = copy_file(rep->coverage_path, to, &s->err);
		free(to);
	}
}

char *sp_reports_variant_path(const char *path, const char *stage)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	struct sp_buf b = SP_BUF_INIT;
	const char *c;

	if (!dot || dot == base)
		dot = base + strlen(base);
	sp_buf_add(&b, path, (size_t)(dot - path));
	sp_buf_addstr(&b, ".");
	/* test[3.11,pg] -> test-3.11-pg: no brackets or commas in file names */
	for (c = stage; *c; c++)
		if (*c == '[' || *c == ',')
			sp_buf_addstr(&b, "-");
		else if (*c != ']')
			sp_buf_add(&b, c, 1);
	sp_buf_addstr(&b, dot);
	return sp_buf_detach(&b, NULL);
}

static int reports_finish(struct sp_sink *self, struct sp_error *err)
{
	struct reports *s = (struct reports *)self;

	if (s->rc < 0 && err)
		*err = s->err;
	return s->rc;
}

static void reports_free(struct sp_sink *self)
{
	struct reports *s = (struct reports *)self;

	free(s->junit_path);
	free(s->coverage_path);
	free(s);
}

struct sp_sink *sp_sink_reports_new(const char *junit_path, const char *coverage_path)
{
	struct reports *s = sp_xcalloc(1, sizeof(*s));

	s->base.event = reports_event;
	s->base.finish = reports_finish;
	s->base.free = reports_free;
	s->junit_path = junit_path ? sp_xstrdup(junit_path) : NULL;
	s->coverage_path = coverage_path ? sp_xstrdup(coverage_path) : NULL;
	return &s->base;
}
