/*
 * lines.c — bounded line splitting; see lines.h.
 */
#include "core/base/lines.h"

#include <string.h>

void sp_lines_init(struct sp_lines *l, size_t max, sp_lines_fn fn, void *ud)
{
	sp_buf_init(&l->partial, 0);
	l->max = max ? max : 65536;
	l->fn = fn;
	l->ud = ud;
}

static void emit(struct sp_lines *l, const char *s, size_t len)
{
	if (len && s[len - 1] == '\r')
		len--;
	l->fn(l->ud, s, len);
}

void sp_lines_feed(struct sp_lines *l, const char *data, size_t len)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;

		if (l->partial.len + take > l->max) {
			/* too long: hand over a full piece, keep going */
			size_t room = l->max - l->partial.len;
			(void)sp_buf_add(&l->partial, data, room);
			emit(l, l->partial.data, l->partial.len);
			sp_buf_reset(&l->partial);
			data += room;
			len -= room;
			continue;
		}
		if (!nl) {
			(void)sp_buf_add(&l->partial, data, len);
			return;
		}
		if (l->partial.len) {
			(void)sp_buf_add(&l->partial, data, take);
			emit(l, l->partial.data, l->partial.len);
			sp_buf_reset(&l->partial);
		} else {
			emit(l, data, take);
		}
		data += take + 1;
		len -= take + 1;
	}
}

void sp_lines_flush(struct sp_lines *l)
{
	if (l->partial.len) {
		emit(l, l->partial.data, l->partial.len);
		sp_buf_reset(&l->partial);
	}
}

void sp_lines_release(struct sp_lines *l)
{
	sp_buf_release(&l->partial);
}
