/*
 * xmlread.h — the libxml2 plumbing shared by the report readers (junit.c,
 * cobertura.c): opening a report safely, capturing libxml2's errors, and
 * walking a document with a streaming xmlTextReader.
 *
 * Reports come out of a container the pipeline ran, so they are untrusted
 * input.  Every reader made here uses SP_XMLREAD_OPTIONS (no network, no DTD
 * loading, no entity substitution, no output on stderr) and keeps libxml2's
 * own limits (amplification checks, 10 MB per text node or attribute: no
 * XML_PARSE_HUGE); sp_xmlread_walk() refuses any DOCTYPE or entity as soon
 * as the reader reports it.  Errors are captured through a handler set on
 * one reader only; nothing global in libxml2 is touched.
 *
 * Typical use, for a file:
 *
 *	static const struct sp_xmlread_handlers h = { "pytest", on_element, on_end, NULL };
 *	xmlTextReaderPtr rd;
 *	int fd;
 *
 *	if (sp_xmlread_open_file(&rd, &fd, path, "JUnit report", err) < 0)
 *		return ...;
 *	rc = sp_xmlread_walk(rd, &h, &state, path, err);  (rd is freed)
 *	close(fd);
 */
#ifndef SP_XMLREAD_H
#define SP_XMLREAD_H

#include <stddef.h>

#include <libxml/xmlreader.h>

#include "core/base/error.h"

/* Options for every report reader: no network, nothing from a DTD, quiet. */
#define SP_XMLREAD_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

/*
 * Opens the report at path for reading: never through a symlink (O_NOFOLLOW),
 * only a regular file, and not an empty one.  The bytes are read as they are
 * (no gzip sniffing).  what names the expected content in messages
 * ("JUnit report" gives "PATH: empty, not a JUnit report").
 *
 * On success *out is a new reader with SP_XMLREAD_OPTIONS, owned by the
 * caller (xmlFreeTextReader, or hand it to sp_xmlread_walk), and *fd the
 * descriptor it reads from, also the caller's: the reader never closes it,
 * so close it once the reader is freed.  On failure *out is NULL, *fd is -1,
 * nothing is left open, and err says "PATH: why".  Returns 0, SP_ENOTFOUND
 * when path does not exist, or SP_ERROR.
 */
int sp_xmlread_open_file(xmlTextReaderPtr *out, int *fd, const char *path, const char *what,
			 struct sp_error *err);

/*
 * The same for a document in memory: data (len bytes) must stay valid and
 * unchanged until the reader is freed; name is used in messages.  On success
 * *out is a new reader the caller owns; on failure it is NULL.  Returns 0,
 * SP_ERROR when len is 0 ("NAME: empty, not a WHAT") or the reader cannot be
 * made, or SP_ETOOBIG when len exceeds what libxml2 takes in one buffer
 * (INT_MAX).
 */
int sp_xmlread_for_mem(xmlTextReaderPtr *out, const char *data, size_t len, const char *name,
		       const char *what, struct sp_error *err);

/*
 * libxml2's first error on a reader, kept by the handler that
 * sp_xmlread_errors_capture() installs.  Warnings are ignored.
 */
struct sp_xmlread_errors {
	char first[512]; /* its message, without the trailing newline; "" while none */
	int line;        /* the line libxml2 gave for it */
};

/*
 * Clears *cap and installs on rd the handler that fills it.  cap is
 * borrowed: it must outlive rd (or the next handler set on rd).
 */
void sp_xmlread_errors_capture(struct sp_xmlread_errors *cap, xmlTextReaderPtr rd);

/*
 * Turns the end of a read loop into a result: ret is the last value
 * xmlTextReaderRead() returned.  Returns 0 when ret is not negative and
 * nothing was captured; otherwise SP_ERROR with err set to
 * "NAME:LINE: MESSAGE" (the first captured error) or "NAME: XML error".
 */
int sp_xmlread_errors_check(const struct sp_xmlread_errors *cap, int ret, const char *name,
			    struct sp_error *err);

/*
 * What a walk calls back, with the ctx given to sp_xmlread_walk().  el is the
 * local name ("" when the reader has none) and depth the reader's depth.
 * element may stop the walk by returning a negative code (err set); the
 * reader is positioned on the element, so its attributes can be read and
 * xmlTextReaderIsEmptyElement() says whether an end will follow.  text
 * (NULL when not wanted) gets text, CDATA and whitespace nodes, never NULL.
 * All but text must be set.
 */
struct sp_xmlread_handlers {
	const char *writer; /* who writes such reports: "(pytest writes neither)" */
	int (*element)(void *ctx, xmlTextReaderPtr rd, const char *el, int depth);
	void (*end)(void *ctx, const char *el, int depth);
	void (*text)(void *ctx, const char *text);
};

/*
 * Reads the whole document, calling h's functions in document order, and
 * frees rd whatever happens (rd must not be NULL).  Errors are captured as
 * with sp_xmlread_errors_capture().  Returns 0 at the end of a well-formed
 * document; the negative code an element callback returned (its err kept);
 * or SP_ERROR with err set when the document has a DOCTYPE or an entity
 * ("NAME: refusing a report with a DOCTYPE or entities (WRITER writes
 * neither)") or is not well-formed ("NAME:LINE: MESSAGE").  Which elements
 * came, and whether any did, is for the caller to check.
 */
int sp_xmlread_walk(xmlTextReaderPtr rd, const struct sp_xmlread_handlers *h, void *ctx,
		    const char *name, struct sp_error *err);

/*
 * Parses a decimal as XML writes it ("0.714", "-2", "1e-3"), surrounded by
 * optional white space, whatever the C locale says the decimal point is
 * (strtod would read "0.5" as 0 under a "0,5" locale).  No hex, inf or nan.
 * Returns 0 and sets *out, or -1 (and *out is untouched).
 */
int sp_xmlread_parse_decimal(const char *s, double *out);

#endif
