/*
 * log.c — structured log lines (see log.h).
 */
#include "core/base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * Process-wide settings, written once by sp_log_init before threads
 * start and only read afterwards.
 */
static int log_fd = 2;
static enum sp_log_level log_min = SP_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void sp_log_init(int fd)
{
	const char *v = getenv("SP_LOG_LEVEL");
	size_t i;

	log_fd = fd;
	if (!v)
		return;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (!strcmp(v, level_names[i]))
			log_min = (enum sp_log_level)i;
}

void sp_log(enum sp_log_level lvl, const char *event, const char *fmt, ...)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;

	if (lvl < log_min)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03dZ level=%s event=%s", (int)(tv.tv_usec / 1000),
		     level_names[lvl], event);
	n += (k > 0) ? (size_t)k : 0;
	if (fmt && *fmt && n < sizeof(line) - 2) {
		line[n++] = ' ';
		va_start(ap, fmt);
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (k > 0)
			n += (size_t)k;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line; a short write to a pipe of this size is not expected,
	 * and there is nowhere to report a failing log. */
	while (write(log_fd, line, n) < 0 && errno == EINTR)
		;
}

const char *sp_log_quote(const char *s, char *buf, size_t len)
{
	const unsigned char *p;
	size_t o = 0, limit;
	int quote = 0;

	if (!len)
		return buf;
	if (!s)
		s = "";
	for (p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			quote = 1;
	if (!*s)
		quote = 1;
	limit = len < 310 ? len : 310;
	if (!quote) {
		snprintf(buf, limit, "%s", s);
		if (strlen(s) >= limit && limit > 4)
			memcpy(buf + limit - 4, "...", 4);
		return buf;
	}
#define PUT(c) do { if (o + 1 < limit) buf[o++] = (char)(c); } while (0)
	PUT('"');
	for (p = (const unsigned char *)s; *p && o + 8 < limit && (size_t)(p - (const unsigned char *)s) < 300; p++) {
		if (*p == '"' || *p == '\\') {
			PUT('\\');
			PUT(*p);
		} else if (*p == '\n') {
			PUT('\\');
			PUT('n');
		} else if (*p == '\t') {
			PUT('\\');
			PUT('t');
		} else if (*p < ' ' || *p == 0x7f) {
			char hex[5];

			snprintf(hex, sizeof(hex), "\\x%02x", *p);
			PUT(hex[0]);
			PUT(hex[1]);
			PUT(hex[2]);
			PUT(hex[3]);
		} else {
			PUT(*p);
		}
	}
	if (*p) {
		PUT('.');
		PUT('.');
		PUT('.');
	}
	PUT('"');
#undef PUT
	buf[o] = '\0';
	return buf;
}
