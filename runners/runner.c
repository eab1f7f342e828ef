/*
 * runner.c — helpers shared by every runner; see runner.h.
 *
 * sp_runner_lines puts the secret masker (core/base/mask.c) in front of
 * the line cutter: masking before cutting is what catches a secret that
 * straddles two reads, or the cut of an over-long line.
 */
#include "runners/runner.h"

#include <stdlib.h>
#include <string.h>

static void lines_out(void *ud, const char *line, size_t len)
{
	struct sp_runner_lines *l = ud;

	l->log(l->log_ud, l->stream, line, len);
}

static void masked_out(void *ud, const char *data, size_t len)
{
	struct sp_runner_lines *l = ud;

	sp_lines_feed(&l->lines, data, len);
}

void sp_runner_lines_init(struct sp_runner_lines *l, const struct sp_mask *mask, size_t max,
			  enum sp_log_stream stream, sp_runner_log_fn log, void *log_ud)
{
	l->stream = stream;
	l->log = log;
	l->log_ud = log_ud;
	sp_mask_stream_init(&l->mask, mask, masked_out, l);
	sp_lines_init(&l->lines, max, lines_out, l);
}

void sp_runner_lines_feed(struct sp_runner_lines *l, const char *data, size_t len)
{
	sp_mask_stream_feed(&l->mask, data, len);
}

void sp_runner_lines_flush(struct sp_runner_lines *l)
{
	sp_mask_stream_flush(&l->mask);
	sp_lines_flush(&l->lines);
}

void sp_runner_lines_release(struct sp_runner_lines *l)
{
	sp_mask_stream_release(&l->mask);
	sp_lines_release(&l->lines);
}

void sp_build_result_release(struct sp_build_result *res)
{
	if (!res)
		return;
	free(res->image_id);
	memset(res, 0, sizeof(*res));
}

void sp_push_result_release(struct sp_push_result *res)
{
	if (!res)
		return;
	free(res->digest);
	memset(res, 0, sizeof(*res));
}

const char *sp_service_state_name(enum sp_service_state s)
{
	switch (s) {
	case SP_SERVICE_STARTING: return "starting";
	case SP_SERVICE_READY: return "ready";
	case SP_SERVICE_FAILED: return "failed";
	case SP_SERVICE_REMOVED: return "removed";
	}
	return "?";
}
