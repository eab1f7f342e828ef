/*
 * log.h — structured log lines for the daemons (serve, agent).
 *
 * One line per event on stderr, logfmt (as Heroku, Grafana Loki and
 * `journalctl -o cat` read it):
 *
 *   ts=2026-12-04T05:01:02.123Z level=info event=job.finished job=42 state=passed seconds=14.2
 *
 * `event` is a dotted name fixed in the code; the rest are key=value pairs
 * given as a format.  Values with spaces, quotes or '=' must be quoted by
 * the caller with sp_log_quote.  Never pass a secret (tokens, webhook
 * secrets, URLs with passwords) to these functions.
 *
 * Thread-safe: each line is built in a local buffer and written with one
 * write(2), so lines from threads never interleave.  SP_LOG_LEVEL
 * (debug|info|warn|error, default info) is read by sp_log_init.
 */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stddef.h>

enum sp_log_level { SP_LOG_DEBUG, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };

/* Sets the minimum level from SP_LOG_LEVEL and the fd (2 unless changed). */
void sp_log_init(int fd);
void sp_log(enum sp_log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define sp_log_debug(ev, ...) sp_log(SP_LOG_DEBUG, ev, __VA_ARGS__)
#define sp_log_info(ev, ...) sp_log(SP_LOG_INFO, ev, __VA_ARGS__)
#define sp_log_warn(ev, ...) sp_log(SP_LOG_WARN, ev, __VA_ARGS__)
#define sp_log_error(ev, ...) sp_log(SP_LOG_ERROR, ev, __VA_ARGS__)

/*
 * s as a logfmt value: as it is when it has no space, quote, '=' or
 * control character, else in double quotes with \" \\ \n \t escaped and
 * other control bytes as \xNN; cut at 300 bytes with "...".  Writes into
 * buf (always NUL-terminated) and returns buf.
 */
const char *sp_log_quote(const char *s, char *buf, size_t len);

#endif
