/*
 * batch.c — the event lines of one job on their way to the server; see
 * batch.h for the rules (seq, retries, the memory cap).
 */
#include "core/agent/batch.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/base/xalloc.h"
#include "core/base/xjson.h"

void sp_agent_batch_init(struct sp_agent_batch *b)
{
	memset(b, 0, sizeof(*b));
	sp_buf_init(&b->pending, 0);
	sp_buf_init(&b->inflight, 0);
	b->cap = SP_AGENT_BATCH_CAP;
	b->flush_bytes = SP_AGENT_BATCH_FLUSH_BYTES;
	b->max_bytes = SP_AGENT_BATCH_MAX_BYTES;
}

void sp_agent_batch_release(struct sp_agent_batch *b)
{
	sp_buf_release(&b->pending);
	sp_buf_release(&b->inflight);
	b->open = false;
}

/* Over the cap: is this line one of the few worth keeping (a JSON event
 * other than log)?  Parsed only then, which is rare. */
static bool worth_keeping(const char *line, size_t len)
{
	cJSON *ev = cJSON_ParseWithLength(line, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(ev, "event");
	bool keep = cJSON_IsString(e) && strcmp(e->valuestring, "log") != 0;

	cJSON_Delete(ev);
	return keep;
}

static void queue(struct sp_agent_batch *b, const char *line, size_t len, int64_t now_ms)
{
	if (!b->pending.len)
		b->held_since = now_ms ? now_ms : 1;
	(void)sp_buf_add(&b->pending, line, len);
	(void)sp_buf_addch(&b->pending, '\n');
}

bool sp_agent_batch_add(struct sp_agent_batch *b, const char *line, size_t len, int64_t now_ms)
{
	size_t held = b->pending.len + b->inflight.len;

	if (held + len + 1 > b->cap &&
	    (held + len + 1 > 2 * b->cap || !worth_keeping(line, len))) {
		b->dropped++;
		b->dropped_total++;
		return false;
	}
	queue(b, line, len, now_ms);
	return true;
}

bool sp_agent_batch_due(const struct sp_agent_batch *b, int64_t now_ms)
{
	if (!b->pending.len)
		return false;
	return b->pending.len >= b->flush_bytes ||
	       now_ms - b->held_since >= SP_AGENT_BATCH_HOLD_MS;
}

int64_t sp_agent_batch_due_at(const struct sp_agent_batch *b)
{
	return b->pending.len ? b->held_since + SP_AGENT_BATCH_HOLD_MS : 0;
}

bool sp_agent_batch_busy(const struct sp_agent_batch *b)
{
	return b->open || b->pending.len > 0;
}

void sp_agent_batch_take(struct sp_agent_batch *b, const char **data, size_t *len,
			 uint64_t *seq, int64_t now_ms)
{
	if (!b->open) {
		size_t n = 0;

		/* whole lines, up to max_bytes, at least one */
		while (n < b->pending.len) {
			const char *nl = memchr(b->pending.data + n, '\n', b->pending.len - n);
			size_t end = (size_t)(nl - b->pending.data) + 1;

			if (n && end > b->max_bytes)
				break;
			n = end;
		}
		sp_buf_reset(&b->inflight);
		(void)sp_buf_add(&b->inflight, b->pending.data, n);
		sp_buf_consume(&b->pending, n);
		/* what is left waited since before now; what comes next, from then */
		if (!b->pending.len)
			b->held_since = 0;
		else if (!b->held_since)
			b->held_since = now_ms ? now_ms : 1;
		b->seq++;
		b->open = true;
	}
	*data = b->inflight.data;
	*len = b->inflight.len;
	*seq = b->seq;
}

void sp_agent_batch_sent(struct sp_agent_batch *b, int64_t now_ms)
{
	if (!b->open)
		return;
	b->open = false;
	/* a big backlog's buffer is not kept for the steady trickle after it */
	if (b->inflight.alloc > 2 * b->max_bytes)
		sp_buf_release(&b->inflight);
	else
		sp_buf_reset(&b->inflight);
	if (b->dropped) {
		char msg[256];
		cJSON *ev = cJSON_CreateObject();
		char *line;

		snprintf(msg, sizeof(msg), "stagepipe agent: %lu line%s of output lost: the "
			 "server could not be reached and more than %zu MiB were waiting",
			 b->dropped, b->dropped == 1 ? "" : "s", b->cap / (1024 * 1024));
		cJSON_AddStringToObject(ev, "event", "log");
		cJSON_AddStringToObject(ev, "stream", "info");
		cJSON_AddStringToObject(ev, "line", msg);
		line = sp_xjson_print(ev);
		queue(b, line, strlen(line), now_ms);
		cJSON_free(line);
		cJSON_Delete(ev);
		b->dropped = 0;
	}
}
