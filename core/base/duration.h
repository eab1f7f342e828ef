/*
 * duration.h — durations as people write them in pipeline files.
 *
 * A duration is one or more <integer><unit> groups, largest unit first,
 * each unit at most once: "90s", "15m", "1h30m", "2h", "1h5m30s",
 * "500ms".  Units: h, m, s, ms.  No spaces, no signs, no fractions.
 */
#ifndef SP_DURATION_H
#define SP_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Longest duration accepted: 7 days, in milliseconds. */
#define SP_DURATION_MAX_MS ((int64_t)7 * 24 * 3600 * 1000)

/*
 * Parses s into milliseconds.  Returns 0, or SP_ECONFIG with a short
 * reason ("unknown unit \"x\"") in why (a caller buffer of whylen bytes).
 */
int sp_duration_parse(int64_t *out_ms, const char *s, char *why, size_t whylen);

/* Formats ms the way it is written ("1h30m", "90s" → "1m30s", "0s"). */
void sp_duration_format(char *buf, size_t len, int64_t ms);

#endif
