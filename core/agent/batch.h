/*
 * batch.h — the event lines of one job on their way to the server
 * (docs/agent-protocol.md, "POST /api/agent/jobs/{id}/events").
 *
 * Internal to core/agent.  No locking, no clock, no I/O: agent.c holds the
 * job's mutex around every call and passes the time in, so that this part
 * can be tested alone.
 *
 * Lines come in (sp_agent_batch_add) and wait in `pending`.  A send takes
 * whole lines from the front of pending into `inflight` (at most max_bytes,
 * at least one line) under the next seq (sp_agent_batch_take); the batch
 * is then fixed: until the server has applied it (sp_agent_batch_sent) it
 * is sent again as it is, bytes and seq unchanged, so that a batch retried
 * after a lost answer is recognised by the server and not applied twice.
 * A send with nothing pending is an empty batch: the heartbeat.  It also
 * takes a seq of its own (the server renews the lease for every batch).
 *
 * Memory is bounded: when pending + inflight would pass cap (the server is
 * unreachable for a long time), `log` lines — and lines that are not JSON
 * events, which the server ignores anyway — are dropped and counted; the
 * other events (stage_started, stage_finished, pipeline_finished, ...)
 * are few and are kept up to twice the cap.  Once a batch is applied
 * again, a log line saying how many lines were lost is queued.
 */
#ifndef SP_AGENT_BATCH_H
#define SP_AGENT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/buf.h"

#define SP_AGENT_BATCH_HOLD_MS 200               /* a line waits at most this */
#define SP_AGENT_BATCH_FLUSH_BYTES (64 * 1024)   /* or until this much waits */
#define SP_AGENT_BATCH_MAX_BYTES (1024 * 1024)   /* one POST at most (bar one long line) */
#define SP_AGENT_BATCH_CAP (8 * 1024 * 1024)     /* pending + inflight before dropping */

struct sp_agent_batch {
	struct sp_buf pending;    /* lines not yet taken, each ending in '\n' */
	struct sp_buf inflight;   /* the batch being sent (while open) */
	bool open;                /* inflight is fixed, under seq */
	uint64_t seq;             /* the open batch's seq, else the last one applied (0: none) */
	int64_t held_since;       /* ms: when the oldest pending line came; 0: none pending */
	unsigned long dropped;    /* lines dropped and not yet told */
	unsigned long dropped_total;
	size_t cap, flush_bytes, max_bytes;
};

/* No allocation; cap, flush_bytes and max_bytes get the defaults above
 * (a test may change them afterwards). */
void sp_agent_batch_init(struct sp_agent_batch *b);
void sp_agent_batch_release(struct sp_agent_batch *b);

/*
 * Queues one line (without its '\n'; now_ms is the caller's clock).
 * Returns false when it was dropped (over the cap, see above).
 */
bool sp_agent_batch_add(struct sp_agent_batch *b, const char *line, size_t len, int64_t now_ms);

/* Whether lines are pending that should go now: one held for HOLD_MS, or
 * flush_bytes of them.  (An open batch, a heartbeat or the final flush
 * are the caller's timing.) */
bool sp_agent_batch_due(const struct sp_agent_batch *b, int64_t now_ms);

/* When the oldest pending line is due (ms, the caller's clock); 0 when
 * nothing is pending. */
int64_t sp_agent_batch_due_at(const struct sp_agent_batch *b);

/* Whether anything is left to send: pending lines or an open batch. */
bool sp_agent_batch_busy(const struct sp_agent_batch *b);

/*
 * The batch to send now: the open one again, or a new one (whole lines
 * from pending, maybe none) under seq + 1.  *data (borrowed, valid until
 * the next call that changes b) and *len may be an empty batch.
 */
void sp_agent_batch_take(struct sp_agent_batch *b, const char **data, size_t *len,
			 uint64_t *seq, int64_t now_ms);

/* The open batch was applied (200): it is closed; when lines were dropped
 * before, a log line telling how many is queued. */
void sp_agent_batch_sent(struct sp_agent_batch *b, int64_t now_ms);

#endif
