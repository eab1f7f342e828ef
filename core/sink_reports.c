/*
 * sink_reports.c — --junit and --coverage files for an outer CI; see sinks.h.
 *
 * Written when the pipeline finishes (the stage reports are only valid
 * during that event).  The JUnit file holds one <testsuite name="stages">
 * with a test case per stage (failed, skipped or passed, with the reason),
 * followed by the <testsuite> elements of each pytest stage's own report,
 * copied element by element with libxml2's reader so that a large report
 * is not parsed into a tree.  The coverage file is a byte copy of the
 * first test stage's Cobertura XML.
 */
#include <errno.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/sinks.h"
#include "core/xmlread.h"
#include "core/xalloc.h"

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

/* Copies the <testsuite> elements of a pytest report into w. */
static int copy_suites(xmlTextWriterPtr w, const char *path, const char *stage,
		       struct sp_error *err)
{
	xmlTextReaderPtr r = NULL;
	int ret, fd = -1;

	if ((ret = sp_xmlread_open_file(&r, &fd, path, "JUnit report", err)) < 0)
		return ret;
	xmlTextWriterWriteFormatComment(w, " tests of stage %s ", stage);
	ret = xmlTextReaderRead(r);
	while (ret == 1) {
		if (xmlTextReaderNodeType(r) == XML_READER_TYPE_ELEMENT &&
		    xmlStrEqual(xmlTextReaderConstLocalName(r), BAD_CAST "testsuite")) {
			xmlChar *outer = xmlTextReaderReadOuterXml(r);
			if (outer) {
				xmlTextWriterWriteRaw(w, outer);
				xmlFree(outer);
			}
			ret = xmlTextReaderNext(r);  /* past this suite's subtree */
			continue;
		}
		ret = xmlTextReaderRead(r);
	}
	xmlFreeTextReader(r);
	close(fd);
	if (ret < 0)
		return sp_error_set(err, SP_ERROR, "%s is not well-formed XML", path);
	return 0;
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
		const char *msg = rep->message ? rep->message : "";
		xmlTextWriterStartElement(w, BAD_CAST "testcase");
		xmlTextWriterWriteFormatAttribute(w, BAD_CAST "classname", "stagepipe.%s",
						  ev->pipeline->name);
		xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST rep->stage->name);
		attr_num(w, "time", rep->seconds);
		switch (rep->result) {
		case SP_RESULT_FAILED:
			xmlTextWriterStartElement(w, BAD_CAST "failure");
			xmlTextWriterWriteAttribute(w, BAD_CAST "message", BAD_CAST msg);
			xmlTextWriterEndElement(w);
			break;
		case SP_RESULT_ERROR:
		case SP_RESULT_CANCELLED:
			xmlTextWriterStartElement(w, BAD_CAST "error");
			xmlTextWriterWriteAttribute(w, BAD_CAST "message", BAD_CAST msg);
			xmlTextWriterEndElement(w);
			break;
		case SP_RESULT_SKIPPED:
			xmlTextWriterStartElement(w, BAD_CAST "skipped");
			xmlTextWriterWriteAttribute(w, BAD_CAST "message", BAD_CAST msg);
			xmlTextWriterEndElement(w);
			break;
		default:
			break;
		}
		xmlTextWriterEndElement(w);
	}
	xmlTextWriterEndElement(w);  /* testsuite */
	for (i = 0; i < ev->nreports && rc == 0; i++)
		if (ev->reports[i].junit_path)
			rc = copy_suites(w, ev->reports[i].junit_path, ev->reports[i].stage->name, err);
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
	if (ferror(in) || ferror(out) || fclose(out) != 0)
		rc = sp_error_set(err, SP_ERROR, "copying the coverage report to %s failed", to);
	out = NULL;
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
