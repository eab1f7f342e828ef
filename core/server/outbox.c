/*
 * outbox.c — the commit-status sender: one thread that empties the
 * store's status outbox towards the forges (core/forge/status.c).
 *
 * Jobs never wait for it: the store writes an outbox row in the same
 * transaction as the job change, and this thread sends it later.  The
 * store returns only the newest row per (repo, sha, context), so a burst
 * of changes costs one request.  A failed send is retried with
 * exponential backoff (1 s × 2^attempts, at most 10 min); an answer that
 * will not change (400, 401, 403, 404, 422) gives up on the row.
 *
 * Rows of a repository without `status:` in the config are marked done
 * (nothing to send); rows of a repository no longer configured are given
 * up.  The contexts the store writes start with "stagepipe"; that word is
 * replaced by the repository's status.context.  The token is never logged
 * (status.c never puts it in an error message).
 */
#include "core/server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/forge/status.h"

#define BATCH 32
#define IDLE_WAIT_MS 1000
#define BACKOFF_BASE_MS 1000L
#define BACKOFF_MAX_MS (10L * 60 * 1000)
#define CONTEXT_BASE "stagepipe"

struct sp_outbox {
	struct sp_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t gen;            /* bumped by every wake */
	bool stopping;
	int64_t stop_deadline;   /* monotonic ms: stop sending after it */
	pthread_t th;
	bool started, joined;
};

static long backoff_ms(int attempts)
{
	long ms = BACKOFF_BASE_MS;

	while (attempts-- > 0 && ms < BACKOFF_MAX_MS)
		ms *= 2;
	return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* Whether the thread should stop sending now (called with mu held). */
static bool past_stop(const struct sp_outbox *o)
{
	return o->stopping && sp_clock_ms() >= o->stop_deadline;
}

static bool should_stop(struct sp_outbox *o)
{
	bool stop;

	pthread_mutex_lock(&o->mu);
	stop = past_stop(o);
	pthread_mutex_unlock(&o->mu);
	return stop;
}

static void done(struct sp_outbox *o, const struct sp_status_row *row, bool ok,
		 const char *error, long retry_in_ms)
{
	struct sp_error err = SP_ERROR_INIT;
	char q[600];

	if (sp_store_outbox_done(o->srv->store, row->id, ok, error,
				 retry_in_ms > INT32_MAX ? INT32_MAX : (int)retry_in_ms, &err) < 0)
		sp_log_warn("status.failed", "job=%" PRId64 " error=%s", row->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
}

static void send_row(struct sp_outbox *o, const struct sp_status_row *row)
{
	const struct sp_server_config *cfg = o->srv->cfg;
	const struct sp_repo_config *repo = sp_server_config_repo(cfg, row->repo);
	struct sp_status_target t;
	struct sp_status_msg m;
	struct sp_error err = SP_ERROR_INIT;
	char *context = NULL, *url = NULL, q[600], qc[300];
	bool retry = true;
	long retry_in;
	int rc;

	if (!repo) {
		done(o, row, false, "repository no longer configured", -1);
		return;
	}
	if (!repo->status.enabled) {
		done(o, row, true, NULL, 0);
		return;
	}
	memset(&t, 0, sizeof(t));
	t.forge = repo->forge;
	t.api = repo->status.api;
	t.project = repo->status.project;
	t.token = repo->status.token;

	if (row->context && !strncmp(row->context, CONTEXT_BASE, strlen(CONTEXT_BASE)) &&
	    repo->status.context)
		context = sp_xasprintf("%s%s", repo->status.context,
				       row->context + strlen(CONTEXT_BASE));
	else
		context = sp_xstrdup(row->context ? row->context : CONTEXT_BASE);
	url = sp_xasprintf("%s/jobs/%" PRId64, cfg->public_url ? cfg->public_url : "",
			   row->job_id);
	memset(&m, 0, sizeof(m));
	m.sha = row->sha;
	m.state = row->state;
	m.context = context;
	m.description = row->description;
	m.target_url = url;

	rc = sp_status_send(&t, &m, &retry, &err);
	if (o->srv->metrics)
		sp_metrics_status_sent(o->srv->metrics, sp_forge_name(repo->forge), rc == 0);
	if (rc == 0) {
		done(o, row, true, NULL, 0);
		sp_log_info("status.sent", "job=%" PRId64 " repo=%s context=%s state=%s",
			    row->job_id, sp_log_quote(row->repo, qc, sizeof(qc)),
			    sp_log_quote(context, q, sizeof(q)), sp_status_state_name(row->state));
	} else {
		retry_in = retry ? backoff_ms(row->attempts) : -1;
		done(o, row, false, err.msg, retry_in);
		sp_log_warn("status.failed", "job=%" PRId64 " repo=%s attempt=%d retry_in_ms=%ld "
			    "error=%s", row->job_id, sp_log_quote(row->repo, qc, sizeof(qc)),
			    row->attempts + 1, retry_in, sp_log_quote(err.msg, q, sizeof(q)));
	}
	free(context);
	free(url);
}

static void *outbox_main(void *arg)
{
	struct sp_outbox *o = arg;
	int64_t last_warn = 0;
	char q[600];

	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_status_row *rows = NULL;
		struct timespec until;
		size_t n = 0, i;
		uint64_t gen;
		int rc;

		pthread_mutex_lock(&o->mu);
		if (past_stop(o)) {
			pthread_mutex_unlock(&o->mu);
			break;
		}
		gen = o->gen;
		pthread_mutex_unlock(&o->mu);

		rc = sp_store_outbox_next(o->srv->store, BATCH, &rows, &n, &err);
		if (rc < 0 && sp_clock_ms() - last_warn > 60000) {
			last_warn = sp_clock_ms();
			sp_log_warn("status.failed", "error=%s", sp_log_quote(err.msg, q, sizeof(q)));
		}
		for (i = 0; rc == 0 && i < n; i++) {
			if (should_stop(o))
				break;  /* claimed rows come back in 60 s */
			send_row(o, &rows[i]);
		}
		sp_status_rows_release(rows, n);
		if (rc == 0 && n > 0)
			continue;  /* more may be due */

		pthread_mutex_lock(&o->mu);
		if (o->stopping) {
			/* nothing due (or the store failed): the stop is done */
			pthread_mutex_unlock(&o->mu);
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += IDLE_WAIT_MS / 1000;
		while (!o->stopping && o->gen == gen)
			if (pthread_cond_timedwait(&o->cv, &o->mu, &until) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&o->mu);
	}
	return NULL;
}

int sp_outbox_start(struct sp_outbox **out, struct sp_server *srv, struct sp_error *err)
{
	struct sp_outbox *o = sp_xcalloc(1, sizeof(*o));
	pthread_condattr_t a;
	int e;

	*out = NULL;
	o->srv = srv;
	pthread_mutex_init(&o->mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cv, &a);
	pthread_condattr_destroy(&a);
	if ((e = pthread_create(&o->th, NULL, outbox_main, o)) != 0) {
		sp_outbox_free(o);
		return sp_error_set(err, SP_ERROR, "cannot start the status sender: %s",
				    strerror(e));
	}
	o->started = true;
	*out = o;
	return 0;
}

void sp_outbox_wake(struct sp_outbox *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	o->gen++;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

/*
 * A send in flight is not interrupted (status.c gives it at most 30 s),
 * so stop may take that long past timeout_ms.
 */
void sp_outbox_stop(struct sp_outbox *o, long timeout_ms)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	if (!o->stopping) {
		o->stopping = true;
		o->stop_deadline = sp_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	}
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	if (o->started && !o->joined) {
		pthread_join(o->th, NULL);
		o->joined = true;
	}
}

void sp_outbox_free(struct sp_outbox *o)
{
	if (!o)
		return;
	sp_outbox_stop(o, 0);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
}
