/*
 * duration.c — parse and print "1h30m"-style durations; see duration.h.
 */
#include "core/base/duration.h"

#include <stdio.h>
#include <string.h>

#include "core/base/error.h"

static int fail(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return SP_ECONFIG;
}

int sp_duration_parse(int64_t *out_ms, const char *s, char *why, size_t whylen)
{
	static const struct { const char *name; int64_t ms; } units[] = {
		{ "h", 3600000 }, { "ms", 1 }, { "m", 60000 }, { "s", 1000 },
	};
	int64_t total = 0, last_unit = INT64_MAX;
	const char *p = s;

	if (!*p)
		return fail(why, whylen, "empty duration");
	while (*p) {
		int64_t n = 0, unit = 0;
		size_t i, ulen = 0;

		if (*p < '0' || *p > '9')
			return fail(why, whylen, "expected a number (like 90s, 15m or 1h30m)");
		for (; *p >= '0' && *p <= '9'; p++) {
			n = n * 10 + (*p - '0');
			if (n > SP_DURATION_MAX_MS)
				return fail(why, whylen, "too long (at most 7 days)");
		}
		if (*p == '.')
			return fail(why, whylen, "fractions are not allowed; use a smaller unit (90s, not 1.5m)");
		if (!*p)
			return fail(why, whylen, "missing unit (h, m, s or ms), as in 90s");
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].name);
			if (!strncmp(p, units[i].name, l)) {
				unit = units[i].ms;
				ulen = l;
				break;
			}
		}
		if (!unit)
			return fail(why, whylen, "unknown unit; use h, m, s or ms");
		if (unit >= last_unit)
			return fail(why, whylen, "units must go from largest to smallest, each once (1h30m)");
		last_unit = unit;
		p += ulen;
		if (n > SP_DURATION_MAX_MS / unit)
			return fail(why, whylen, "too long (at most 7 days)");
		total += n * unit;
		if (total > SP_DURATION_MAX_MS)
			return fail(why, whylen, "too long (at most 7 days)");
	}
	if (total == 0)
		return fail(why, whylen, "must be longer than zero");
	*out_ms = total;
	return 0;
}

void sp_duration_format(char *buf, size_t len, int64_t ms)
{
	int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
	int64_t rest = ms % 1000;
	size_t off = 0;

	buf[0] = '\0';
#define PUT(fmt, v) do { \
		int k = snprintf(buf + off, len - off, fmt, (long long)(v)); \
		if (k > 0 && (size_t)k < len - off) off += (size_t)k; \
	} while (0)
	if (h)
		PUT("%lldh", h);
	if (m)
		PUT("%lldm", m);
	if (s || (!h && !m && !rest))
		PUT("%llds", s);
	if (rest)
		PUT("%lldms", rest);
#undef PUT
}
