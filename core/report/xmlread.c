/*
 * xmlread.c — opening, error capture and the node-by-node walk that the
 * report readers share; see xmlread.h.
 *
 * junit.c and cobertura.c each keep only their element logic; what makes a
 * report safe to read lives here once: the file is opened without following
 * a symlink and must be a non-empty regular file, every reader gets the same
 * options, a DOCTYPE or entity stops the walk before anything it declares
 * can be used, and libxml2's first error (with its line) becomes the
 * message.  The reader is libxml2's streaming xmlTextReader, which frees
 * what it has passed, so memory does not grow with the report.
 */
#include "core/report/xmlread.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/xmlerror.h>
#include <libxml/xmlversion.h>

/* libxml2 2.12 made the structured handler's error const. */
#if LIBXML_VERSION >= 21200
typedef const xmlError *error_ptr;
#else
typedef xmlErrorPtr error_ptr;
#endif

int sp_xmlread_open_file(xmlTextReaderPtr *out, int *fd, const char *path, const char *what,
			 struct sp_error *err)
{
	struct stat sb;
	int rc = 0;

	*out = NULL;
	*fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (*fd < 0)
		return sp_error_set(err, errno == ENOENT ? SP_ENOTFOUND : SP_ERROR,
				    "%s: %s", path, strerror(errno));
	if (fstat(*fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		rc = sp_error_set(err, SP_ERROR, "%s: not a regular file", path);
		goto cleanup;
	}
	if (sb.st_size == 0) {
		rc = sp_error_set(err, SP_ERROR, "%s: empty, not a %s", path, what);
		goto cleanup;
	}
	/* xmlReaderForFd reads plain bytes: no gzip sniffing, and fd stays ours. */
	*out = xmlReaderForFd(*fd, path, NULL, SP_XMLREAD_OPTIONS);
	if (!*out)
		rc = sp_error_set(err, SP_ERROR, "%s: cannot start the XML reader", path);
cleanup:
	if (rc < 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

int sp_xmlread_for_mem(xmlTextReaderPtr *out, const char *data, size_t len, const char *name,
		       const char *what, struct sp_error *err)
{
	*out = NULL;
	if (len == 0)
		return sp_error_set(err, SP_ERROR, "%s: empty, not a %s", name, what);
	if (len > INT_MAX)
		return sp_error_set(err, SP_ETOOBIG, "%s: %zu bytes is too big to parse from memory",
				    name, len);
	*out = xmlReaderForMemory(data, (int)len, name, NULL, SP_XMLREAD_OPTIONS);
	if (!*out)
		return sp_error_set(err, SP_ERROR, "%s: cannot start the XML reader", name);
	return 0;
}

/* Keeps the first error (not warning) libxml2 reports on a reader. */
static void on_xml_error(void *ctx, error_ptr e)
{
	struct sp_xmlread_errors *cap = ctx;
	const char *m;
	size_t n;

	if (!e || cap->first[0] || e->level < XML_ERR_ERROR)
		return;
	m = e->message && e->message[0] ? e->message : "XML error";
	n = strlen(m);
	while (n > 0 && m[n - 1] == '\n')
		n--;
	if (n >= sizeof(cap->first))
		n = sizeof(cap->first) - 1;
	memcpy(cap->first, m, n);
	cap->first[n] = '\0';
	cap->line = e->line;
}

void sp_xmlread_errors_capture(struct sp_xmlread_errors *cap, xmlTextReaderPtr rd)
{
	memset(cap, 0, sizeof(*cap));
	xmlTextReaderSetStructuredErrorHandler(rd, on_xml_error, cap);
}

int sp_xmlread_errors_check(const struct sp_xmlread_errors *cap, int ret, const char *name,
			    struct sp_error *err)
{
	if (cap->first[0])
		return sp_error_set(err, SP_ERROR, "%s:%d: %s", name, cap->line, cap->first);
	if (ret < 0)
		return sp_error_set(err, SP_ERROR, "%s: XML error", name);
	return 0;
}

int sp_xmlread_walk(xmlTextReaderPtr rd, const struct sp_xmlread_handlers *h, void *ctx,
		    const char *name, struct sp_error *err)
{
	struct sp_xmlread_errors cap;
	int rc = 0, ret;

	assert(rd && h->writer && h->element && h->end);
	sp_xmlread_errors_capture(&cap, rd);
	while ((ret = xmlTextReaderRead(rd)) == 1) {
		int type = xmlTextReaderNodeType(rd);
		int depth = xmlTextReaderDepth(rd);
		const char *el = (const char *)xmlTextReaderConstLocalName(rd);
		const char *text;

		switch (type) {
		case XML_READER_TYPE_DOCUMENT_TYPE:
		case XML_READER_TYPE_ENTITY_REFERENCE:
		case XML_READER_TYPE_ENTITY:
			rc = sp_error_set(err, SP_ERROR,
					  "%s: refusing a report with a DOCTYPE or entities (%s writes neither)",
					  name, h->writer);
			goto cleanup;
		case XML_READER_TYPE_ELEMENT:
			if ((rc = h->element(ctx, rd, el ? el : "", depth)) < 0)
				goto cleanup;
			break;
		case XML_READER_TYPE_END_ELEMENT:
			h->end(ctx, el ? el : "", depth);
			break;
		case XML_READER_TYPE_TEXT:
		case XML_READER_TYPE_CDATA:
		case XML_READER_TYPE_WHITESPACE:
		case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
			if (h->text && (text = (const char *)xmlTextReaderConstValue(rd)) != NULL)
				h->text(ctx, text);
			break;
		default:
			break;
		}
	}
	rc = sp_xmlread_errors_check(&cap, ret, name, err);
cleanup:
	/* Freed here, while cap (its error handler's context) is still alive. */
	xmlFreeTextReader(rd);
	return rc;
}

int sp_xmlread_parse_decimal(const char *s, double *out)
{
	double v = 0;
	int neg = 0, digits = 0, exp = 0, eneg = 0, e = 0, edigits = 0;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	for (; *s >= '0' && *s <= '9'; s++, digits++)
		v = v * 10 + (*s - '0');
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++, digits++, exp--)
			v = v * 10 + (*s - '0');
	if (!digits)
		return -1;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			eneg = *s++ == '-';
		for (; *s >= '0' && *s <= '9'; s++, edigits++)
			if (e < 10000)
				e = e * 10 + (*s - '0');
		if (!edigits)
			return -1;
		exp += eneg ? -e : e;
	}
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (*s)
		return -1;
	for (; exp > 0; exp--)
		v *= 10;
	for (; exp < 0; exp++)
		v /= 10;
	*out = neg ? -v : v;
	return 0;
}
