/*
 * agent.c — `stagepipe agent`'s loop; see agent.h and
 * docs/agent-protocol.md.
 *
 * Threads:
 *
 *   leaser   while not draining: waits until fewer than capacity jobs run,
 *            long-polls POST /api/agent/lease, starts a job thread for
 *            each lease.  Network trouble and 5xx: backoff 1 s doubling
 *            to 30 s with jitter (client.c), one log line per change of
 *            state.  With several servers all the agent's clients (the
 *            leaser's, each job's two) use one server at a time and go on
 *            together with the next one after such a failure (a shared
 *            cursor, a.server_cur).  401/403: the agent stops
 *            (sp_agent_wait returns SP_ECONFIG).  A drain interrupts its
 *            long-poll at once (sp_agent_client_interrupt).
 *   job      runs the child `stagepipe run` (sp_jobrun, core/server/
 *            jobrun.c) with the lease's git credentials in its
 *            environment; its stdout lines go into the job's batch
 *            (batch.c); a promote_request is asked of the server; at the
 *            end the state is decided by the server's own rule
 *            (sp_jobrun_decide) and sent with POST .../finish.
 *   sender   one per job: POSTs the batches (a line is held at most
 *            200 ms, or until 64 KiB wait) and an empty one as the
 *            heartbeat at least every min(ttl/3, 2 s); a network error
 *            keeps the batch and tries again every second.  Its own
 *            thread, so that a slow or unreachable server never stops the
 *            job thread from reading the child's output (the batch's cap
 *            bounds the memory instead) nor from stopping it.
 *
 * Fencing: a 409 (or another 4xx) on events, a stale promote answer: the
 * job is fenced — jobrun's cancel poll (every 100 ms) says stop, the
 * child is SIGTERMed and removes its containers, nothing more is sent for
 * the job (no finish: it is someone else's now).
 *
 * Locking: a->mu guards the job list, running, draining and the fatal
 * error; each job's mu guards its batch and child_done.  No call to the
 * server is made with a lock held.  Secrets (the token, the lease's
 * credentials) are never logged and are wiped when freed.
 */
#define _GNU_SOURCE
#include "core/agent/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/agent/batch.h"
#include "core/agent/client.h"
#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"
#include "core/pipeline/pipeline.h"
#include "core/server/server.h"

#define DEFAULT_LEASE_WAIT_S 30
#define HEARTBEAT_MAX_MS 2000
#define RETRY_MS 1000
#define PROMOTE_RETRY_MS 10000

struct sp_agent;

struct job {
	struct sp_agent *a;
	struct job *next;
	pthread_t th;
	bool done;                        /* a->mu: its thread is over, join it */
	struct sp_agent_lease lease;
	struct sp_agent_client *client;   /* promote and finish (the job thread's) */
	struct sp_agent_client *events;   /* the sender thread's */
	long heartbeat_ms;
	pthread_mutex_t mu;
	pthread_cond_t cond;              /* the sender sleeps here */
	struct sp_agent_batch batch;      /* mu */
	bool child_done;                  /* mu */
	atomic_bool fenced;               /* send nothing more, stop the child */
	atomic_bool cancel_asked;         /* the server said cancel */
	cJSON *summary;                   /* pipeline_finished (the job thread's) */
	char *runs_on;                    /* runner_mismatch's labels (the job thread's) */
};

struct sp_agent {
	char *server, *token, *name, *docker_host, *ca_file, *exe;
	char **labels;
	char *labels_csv;                 /* "a,b" ("" none): the children's --runner-labels */
	size_t nlabels;
	int capacity, lease_wait_s;
	pthread_mutex_t mu;
	pthread_cond_t cond;              /* any change below */
	bool draining, leaser_done;
	atomic_bool forced;
	atomic_size_t server_cur;   /* the server every client calls (client.h: cursor) */
	int running;
	struct job *jobs;                 /* running and done-but-not-joined */
	pthread_t leaser;
	bool leaser_started, leaser_joined;
	struct sp_agent_client *lease_client;
	int fatal_rc;
	char fatal_msg[600];
	unsigned rnd;
};

/* ---- small things ---- */

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Wipes every string of j (a lease answer: its credentials). */
static void wipe_json(cJSON *j)
{
	for (; j; j = j->next) {
		if (j->valuestring)
			explicit_bzero(j->valuestring, strlen(j->valuestring));
		wipe_json(j->child);
	}
}

bool sp_agent_name_valid(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789._-");

	return n >= 1 && n <= 63 && !name[n] && name[0] != '.' && name[0] != '_' &&
	       name[0] != '-';
}

/* 4xx answers that trying again will not change. */
static bool refused(long status)
{
	return status >= 400 && status < 500 && status != 408 && status != 429;
}

/* Waits on a->cond until at_ms, a force, or (when draining_too) a drain.
 * a->mu held. */
static void agent_sleep_locked(struct sp_agent *a, int64_t at_ms, bool draining_too)
{
	struct timespec ts;

	sp_clock_abs(&ts, at_ms);
	while (sp_clock_ms() < at_ms && !atomic_load(&a->forced) && !(draining_too && a->draining))
		if (pthread_cond_timedwait(&a->cond, &a->mu, &ts) == ETIMEDOUT)
			break;
}

static void agent_sleep(struct sp_agent *a, long ms)
{
	pthread_mutex_lock(&a->mu);
	agent_sleep_locked(a, sp_clock_ms() + ms, false);
	pthread_mutex_unlock(&a->mu);
}

/* ---- the sender thread: batches and heartbeats ---- */

static void fence(struct job *j, const char *call, long status, const char *reason)
{
	char q[600];

	if (atomic_exchange(&j->fenced, true))
		return;
	if (status == 409)
		sp_log_warn("agent.fenced", "job=%" PRId64 " epoch=%" PRId64 " call=%s reason=%s",
			    j->lease.job, j->lease.epoch, call, sp_log_quote(reason, q, sizeof(q)));
	else
		sp_log_error("agent.refused", "job=%" PRId64 " epoch=%" PRId64 " call=%s "
			     "status=%ld reason=%s", j->lease.job, j->lease.epoch, call, status,
			     sp_log_quote(reason, q, sizeof(q)));
}

static void *sender_main(void *arg)
{
	struct job *j = arg;
	struct sp_agent *a = j->a;
	int64_t next_hb = sp_clock_ms() + j->heartbeat_ms, retry_at = 0, done_at = 0;
	bool failing = false;
	char path[128], q[600];

	pthread_mutex_lock(&j->mu);
	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_agent_answer ans = SP_AGENT_ANSWER_INIT;
		const char *data;
		size_t len;
		uint64_t seq;
		int64_t now = sp_clock_ms(), due;
		int rc;

		if (atomic_load(&j->fenced))
			break;
		if (j->child_done && !done_at)
			done_at = now;
		if (j->child_done && !sp_agent_batch_busy(&j->batch))
			break;
		if (j->child_done && failing &&
		    (atomic_load(&a->forced) || now - done_at >= j->lease.ttl_ms)) {
			sp_log_error("agent.events_lost", "job=%" PRId64 " bytes=%zu",
				     j->lease.job, j->batch.pending.len + j->batch.inflight.len);
			break;
		}
		if (failing)
			due = retry_at;
		else if (j->child_done || j->batch.open || sp_agent_batch_due(&j->batch, now))
			due = now;
		else {
			due = next_hb;
			if (j->batch.pending.len && sp_agent_batch_due_at(&j->batch) < due)
				due = sp_agent_batch_due_at(&j->batch);
		}
		if (now < due) {
			struct timespec ts;

			sp_clock_abs(&ts, due);
			(void)pthread_cond_timedwait(&j->cond, &j->mu, &ts);
			continue;
		}
		/* the open batch is only touched by this thread: the job thread
		 * adds to pending meanwhile */
		sp_agent_batch_take(&j->batch, &data, &len, &seq, now);
		pthread_mutex_unlock(&j->mu);

		snprintf(path, sizeof(path), "/api/agent/jobs/%" PRId64 "/events?epoch=%" PRId64
			 "&seq=%" PRIu64, j->lease.job, j->lease.epoch, seq);
		rc = sp_agent_client_post(j->events, path, "application/x-ndjson", data, len,
					  SP_AGENT_CALL_TIMEOUT_S, &ans, &err);

		pthread_mutex_lock(&j->mu);
		now = sp_clock_ms();
		if (rc == 0 && ans.status == 200) {
			sp_agent_batch_sent(&j->batch, now);
			if (failing)
				sp_log_info("agent.events_back", "job=%" PRId64 " lost_lines=%lu",
					    j->lease.job, j->batch.dropped_total);
			failing = false;
			next_hb = now + j->heartbeat_ms;
			if (sp_agent_answer_bool(&ans, "cancel") &&
			    !atomic_exchange(&j->cancel_asked, true))
				sp_log_info("agent.cancel", "job=%" PRId64, j->lease.job);
		} else if (rc == 0 && refused(ans.status)) {
			fence(j, "events", ans.status, sp_agent_answer_reason(&ans));
		} else {
			/* once per outage; the batch is kept and tried again */
			if (!failing && rc < 0)
				sp_log_warn("agent.events_failing", "job=%" PRId64 " error=%s",
					    j->lease.job, sp_log_quote(err.msg, q, sizeof(q)));
			else if (!failing)
				sp_log_warn("agent.events_failing", "job=%" PRId64 " status=%ld "
					    "reason=%s", j->lease.job, ans.status,
					    sp_log_quote(sp_agent_answer_reason(&ans), q, sizeof(q)));
			failing = true;
			retry_at = now + RETRY_MS;
		}
		sp_agent_answer_release(&ans);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* ---- the job thread's callbacks (jobrun.c) ---- */

static int job_cancel(void *ud)
{
	struct job *j = ud;

	return atomic_load(&j->fenced) || atomic_load(&j->cancel_asked) ||
	       atomic_load(&j->a->forced);
}

static void job_line(void *ud, const char *line, size_t len)
{
	struct job *j = ud;
	bool signal;

	if (atomic_load(&j->fenced))
		return;
	/* the summary for sp_jobrun_decide and the finish, the labels of a
	 * runs_on this agent lacks: a cheap test first */
	if (memmem(line, len, "pipeline_finished", 17) || memmem(line, len, "runner_mismatch", 15)) {
		cJSON *ev = cJSON_ParseWithLength(line, len);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ev, "event");
		const cJSON *ro = cJSON_GetObjectItemCaseSensitive(ev, "runs_on");

		if (cJSON_IsString(e) && !strcmp(e->valuestring, "pipeline_finished")) {
			cJSON_Delete(j->summary);
			j->summary = ev;
			ev = NULL;
		} else if (cJSON_IsString(e) && !strcmp(e->valuestring, "runner_mismatch") &&
			   cJSON_IsString(ro)) {
			free(j->runs_on);
			j->runs_on = sp_xstrdup(ro->valuestring);
		}
		cJSON_Delete(ev);
	}
	pthread_mutex_lock(&j->mu);
	signal = !j->batch.pending.len;
	(void)sp_agent_batch_add(&j->batch, line, len, sp_clock_ms());
	if (signal || j->batch.pending.len >= j->batch.flush_bytes)
		pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
}

static void job_promote(void *ud, const char *stage, bool *granted, char *reason,
			size_t reason_len)
{
	struct job *j = ud;
	int64_t give_up = sp_clock_ms() + PROMOTE_RETRY_MS;
	cJSON *b = cJSON_CreateObject();
	char path[128], q[600], qs[200], *body;

	*granted = false;
	cJSON_AddStringToObject(b, "stage", stage);
	body = sp_xjson_print(b);
	cJSON_Delete(b);
	snprintf(path, sizeof(path), "/api/agent/jobs/%" PRId64 "/promote?epoch=%" PRId64,
		 j->lease.job, j->lease.epoch);
	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_agent_answer ans = SP_AGENT_ANSWER_INIT;
		int rc;

		if (atomic_load(&j->fenced)) {
			snprintf(reason, reason_len, "this attempt's lease is no longer current");
			break;
		}
		rc = sp_agent_client_post(j->client, path, "application/json", body, strlen(body),
					  SP_AGENT_CALL_TIMEOUT_S, &ans, &err);
		if (rc == 0 && ans.status == 200) {
			*granted = sp_agent_answer_bool(&ans, "granted");
			if (!*granted)
				snprintf(reason, reason_len, "%s", *sp_agent_answer_reason(&ans) ?
					 sp_agent_answer_reason(&ans) : "refused by the server");
		} else if (rc == 0 && ans.status == 409) {
			snprintf(reason, reason_len, "%s", *sp_agent_answer_reason(&ans) ?
				 sp_agent_answer_reason(&ans) : "refused by the server");
			if (sp_agent_answer_bool(&ans, "stale"))
				fence(j, "promote", 409, reason);
		} else if (rc == 0 && refused(ans.status)) {
			snprintf(reason, reason_len, "the server refused the permit (HTTP %ld)",
				 ans.status);
		} else if (sp_clock_ms() >= give_up || atomic_load(&j->a->forced)) {
			snprintf(reason, reason_len, "the server could not be reached");
		} else {
			sp_agent_answer_release(&ans);
			agent_sleep(j->a, RETRY_MS);
			continue;
		}
		sp_agent_answer_release(&ans);
		break;
	}
	free(body);
	sp_log_info("agent.promote", "job=%" PRId64 " epoch=%" PRId64 " stage=%s granted=%s%s%s",
		    j->lease.job, j->lease.epoch, sp_log_quote(stage, qs, sizeof(qs)),
		    *granted ? "true" : "false", *granted ? "" : " reason=",
		    *granted ? "" : sp_log_quote(reason, q, sizeof(q)));
}

/* ---- the end of a job ---- */

/*
 * POST .../finish, tried again every second for up to the lease's TTL
 * while the server cannot be reached (once when forced).  client may be
 * the leaser's (a lease that could not be run is given back from there).
 */
static void send_finish(struct sp_agent *a, struct sp_agent_client *client,
			const struct sp_agent_lease *l, const char *state, const char *reason,
			int exit_code, double seconds, const cJSON *summary, const char *labels)
{
	int64_t give_up = sp_clock_ms() + l->ttl_ms;
	cJSON *b = cJSON_CreateObject();
	char path[128], q[600], *body;

	cJSON_AddStringToObject(b, "state", state);
	if (reason && *reason)
		cJSON_AddStringToObject(b, "reason", reason);
	cJSON_AddNumberToObject(b, "exit_code", exit_code);
	cJSON_AddNumberToObject(b, "seconds", seconds);
	if (summary)
		cJSON_AddItemToObject(b, "summary", cJSON_Duplicate(summary, true));
	if (labels)
		cJSON_AddStringToObject(b, "labels", labels);
	body = sp_xjson_print(b);
	cJSON_Delete(b);
	snprintf(path, sizeof(path), "/api/agent/jobs/%" PRId64 "/finish?epoch=%" PRId64, l->job,
		 l->epoch);
	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_agent_answer ans = SP_AGENT_ANSWER_INIT;
		int rc = sp_agent_client_post(client, path, "application/json", body, strlen(body),
					      SP_AGENT_CALL_TIMEOUT_S, &ans, &err);

		if (rc == 0 && ans.status == 200) {
			sp_log_info("agent.job_finished", "job=%" PRId64 " state=%s seconds=%.1f%s%s",
				    l->job, state, seconds, reason && *reason ? " reason=" : "",
				    reason && *reason ? sp_log_quote(reason, q, sizeof(q)) : "");
		} else if (rc == 0 && ans.status == 409) {
			sp_log_warn("agent.fenced", "job=%" PRId64 " epoch=%" PRId64 " call=finish "
				    "reason=%s", l->job, l->epoch,
				    sp_log_quote(sp_agent_answer_reason(&ans), q, sizeof(q)));
		} else if (rc == 0 && refused(ans.status)) {
			sp_log_error("agent.refused", "job=%" PRId64 " epoch=%" PRId64 " call=finish "
				     "status=%ld reason=%s", l->job, l->epoch, ans.status,
				     sp_log_quote(sp_agent_answer_reason(&ans), q, sizeof(q)));
		} else if (sp_clock_ms() >= give_up || atomic_load(&a->forced) || rc == SP_ECANCELLED) {
			if (rc < 0)
				sp_log_error("agent.finish_failed", "job=%" PRId64 " state=%s error=%s",
					     l->job, state, sp_log_quote(err.msg, q, sizeof(q)));
			else
				sp_log_error("agent.finish_failed", "job=%" PRId64 " state=%s status=%ld",
					     l->job, state, ans.status);
		} else {
			sp_agent_answer_release(&ans);
			agent_sleep(a, RETRY_MS);
			continue;
		}
		sp_agent_answer_release(&ans);
		break;
	}
	free(body);
}

/* ---- artifacts: uploaded file by file before the finish ---- */

/* Percent-encodes s for a query value into b. */
static void query_escape(struct sp_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '/') {
			sp_buf_addch(b, (char)ch);
		} else {
			sp_buf_addch(b, '%');
			sp_buf_addch(b, hex[ch >> 4]);
			sp_buf_addch(b, hex[ch & 15]);
		}
	}
}

/*
 * Sends every file the job child left in dir (DIR/<stage>/<path>) to the
 * server (POST .../artifacts?epoch=N&path=P, the file as the body, read
 * as it is sent).  A file that fails is logged and skipped (one retry for
 * a network error); 413 (the server's artifacts_max) stops the rest; 409
 * (the lease is gone) stops everything and marks the job fenced.
 */
static void upload_artifacts(struct job *j, const char *dir)
{
	const struct sp_agent_lease *l = &j->lease;
	struct sp_error err = SP_ERROR_INIT;
	cJSON *list = NULL, *it;
	uint64_t total = 0;
	unsigned sent = 0, failed = 0;
	char q[600];

	if (sp_artifacts_list(dir, &list, &total, &err) < 0)
		sp_log_warn("agent.artifacts", "job=%" PRId64 " error=%s", l->job,
			    sp_log_quote(err.msg, q, sizeof(q)));
	cJSON_ArrayForEach(it, list) {
		const char *rel = cJSON_GetObjectItemCaseSensitive(it, "path")->valuestring;
		struct sp_buf path = SP_BUF_INIT;
		uint64_t size = 0;
		int fd = -1, tries, rc = 0;
		long status = 0;

		sp_error_clear(&err);
		if (!sp_artifacts_rel_ok(rel) || sp_artifacts_open(dir, rel, &fd, &size, &err) < 0) {
			failed++;
			continue;
		}
		sp_buf_addf(&path, "/api/agent/jobs/%" PRId64 "/artifacts?epoch=%" PRId64 "&path=",
			    l->job, l->epoch);
		query_escape(&path, rel);
		for (tries = 0; tries < 2; tries++) {
			struct sp_agent_answer ans = SP_AGENT_ANSWER_INIT;

			if (tries && lseek(fd, 0, SEEK_SET) < 0)
				break;
			/* at least 256 KiB/s, and a minute for the rest */
			rc = sp_agent_client_upload(j->client, path.data, fd, size,
						    60 + (long)(size / (256 * 1024)), &ans, &err);
			status = ans.status;
			if (rc == 0 && status != 200)
				sp_error_set(&err, SP_ERROR, "HTTP %ld: %s", status,
					     sp_agent_answer_reason(&ans));
			sp_agent_answer_release(&ans);
			if (rc == 0 || rc == SP_ECANCELLED)
				break;
		}
		close(fd);
		sp_buf_release(&path);
		if (rc == 0 && status == 200) {
			sent++;
			continue;
		}
		failed++;
		sp_log_warn("agent.artifact_failed", "job=%" PRId64 " path=%s error=%s", l->job,
			    sp_log_quote(rel, q, sizeof(q) / 2), sp_log_quote(err.msg, q + sizeof(q) / 2,
									  sizeof(q) / 2));
		if (rc == SP_ECANCELLED || status == 413)
			break;
		if (status == 409) {
			atomic_store(&j->fenced, true);
			break;
		}
	}
	if (sent || failed)
		sp_log_info("agent.artifacts", "job=%" PRId64 " sent=%u failed=%u bytes=%" PRIu64,
			    l->job, sent, failed, total);
	cJSON_Delete(list);
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct sp_agent *a = j->a;
	const struct sp_agent_lease *l = &j->lease;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	const char **env = sp_xcalloc(4 + l->nsecrets, sizeof(*env));
	char *user_env = NULL, *token_env = NULL, *names_env = NULL, reason[600], q[600], qr[300];
	char *artifacts = NULL;
	size_t nenv = 0, i;
	enum sp_job_state decided;
	pthread_t sender;
	bool sender_started;
	int rc, e;

	sp_log_info("agent.job_started", "job=%" PRId64 " epoch=%" PRId64 " attempt=%d repo=%s "
		    "sha=%.12s ttl_ms=%ld", l->job, l->epoch, l->attempt,
		    sp_log_quote(l->repo, qr, sizeof(qr)), l->sha ? l->sha : "", l->ttl_ms);
	memset(&res, 0, sizeof(res));
	res.exit_code = -1;
	if (l->git_token) {
		user_env = sp_xasprintf("STAGEPIPE_GIT_USER=%s",
					l->git_user ? l->git_user : "x-access-token");
		token_env = sp_xasprintf("STAGEPIPE_GIT_TOKEN=%s", l->git_token);
		env[nenv++] = user_env;
		env[nenv++] = token_env;
	}
	/* the repository's secrets:, read by `stagepipe run` from its environment */
	for (i = 0; i < l->nsecrets; i++)
		env[nenv++] = l->secret_env[i];
	/* their names: the child masks all of them (see worker.c) */
	if (l->nsecrets) {
		struct sp_buf names = SP_BUF_INIT;

		for (i = 0; i < l->nsecrets; i++)
			sp_buf_addf(&names, "%s%.*s", i ? "," : "",
				    (int)strcspn(l->secret_env[i], "="), l->secret_env[i]);
		names_env = sp_xasprintf("STAGEPIPE_SECRETS=%s", names.data);
		env[nenv++] = names_env;
		sp_buf_release(&names);
	}
	e = pthread_create(&sender, NULL, sender_main, j);
	sender_started = e == 0;
	if (!sender_started) {
		rc = sp_error_set(&err, SP_ERROR, "cannot start a thread: %s", strerror(e));
		goto decided;
	}

	memset(&o, 0, sizeof(o));
	o.exe = a->exe;
	o.repo_url = l->repo_url;
	o.ref = l->ref;
	o.sha = l->sha;
	o.pipeline = l->pipeline;
	o.event = l->event;
	o.event_ref = l->event_ref;
	o.job_label = l->job_label;
	o.agent = a->name;
	o.docker_host = a->docker_host;
	o.runner_labels = a->labels_csv;
	o.env = env;
	o.timeout_ms = l->timeout_ms;
	o.cancel = job_cancel;
	o.on_line = job_line;
	o.on_promote = job_promote;
	o.ud = j;
	/* the child's artifacts land here, then go to the server */
	if (sp_fs_tempdir(&artifacts, "stagepipe-artifacts-", &err) == 0)
		o.artifacts_dir = artifacts;
	else
		sp_error_clear(&err);
	rc = sp_jobrun(&o, &res, &err);

decided:
	wipe_free(user_env);
	wipe_free(token_env);
	free(names_env);
	free(env);
	/* every line goes before the finish: the sender flushes and ends */
	pthread_mutex_lock(&j->mu);
	j->child_done = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->mu);
	if (sender_started)
		pthread_join(sender, NULL);

	if (atomic_load(&j->fenced)) {
		/* someone else holds the job now: not ours to end */
		sp_log_warn("agent.job_abandoned", "job=%" PRId64 " epoch=%" PRId64 " seconds=%.1f",
			    l->job, l->epoch, res.seconds);
		goto out;
	}
	if (rc < 0) {
		sp_log_error("agent.job_start_failed", "job=%" PRId64 " error=%s", l->job,
			     sp_log_quote(err.msg, q, sizeof(q)));
		snprintf(reason, sizeof(reason), "the agent could not run the job: %.500s", err.msg);
		send_finish(a, j->client, l, "requeue", reason, -1, 0, NULL, NULL);
		goto out;
	}
	/* stopped by a forced shutdown, unless it ended on its own meanwhile
	 * (a result stands) or the server had cancelled it */
	if (atomic_load(&a->forced) && !atomic_load(&j->cancel_asked) &&
	    (res.exit_code == 130 || res.exit_code < 0)) {
		send_finish(a, j->client, l, "requeue", "the agent was stopped", res.exit_code,
			    res.seconds, NULL, NULL);
		goto out;
	}
	if (artifacts) {
		upload_artifacts(j, artifacts);
		if (atomic_load(&j->fenced))
			goto out;
	}
	decided = sp_jobrun_decide(&res, j->summary, l->timeout_ms, atomic_load(&j->cancel_asked),
				   reason, sizeof(reason));
	if (decided == SP_JOB_QUEUED && j->runs_on) {
		/* its runs_on needs labels this agent lacks: back to the queue
		 * for a runner that has them */
		send_finish(a, j->client, l, "relabel", reason, res.exit_code, res.seconds, NULL,
			    j->runs_on);
		goto out;
	}
	if (decided == SP_JOB_QUEUED) {
		decided = SP_JOB_ERROR;
		snprintf(reason, sizeof(reason), "the job process exited with status 4 without "
			 "saying which labels it needs");
	}
	send_finish(a, j->client, l, sp_job_state_name(decided), reason, res.exit_code,
		    res.seconds, j->summary, NULL);
out:
	if (artifacts) {
		(void)sp_fs_rmtree(artifacts, NULL);
		free(artifacts);
	}
	pthread_mutex_lock(&a->mu);
	a->running--;
	j->done = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	sp_agent_client_free(j->client);
	sp_agent_client_free(j->events);
	sp_agent_lease_release(&j->lease);
	sp_agent_batch_release(&j->batch);
	cJSON_Delete(j->summary);
	free(j->runs_on);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* Joins and frees the job threads that are over. */
static void reap(struct sp_agent *a)
{
	struct job *done = NULL, **p, *j;

	pthread_mutex_lock(&a->mu);
	for (p = &a->jobs; *p;) {
		j = *p;
		if (j->done) {
			*p = j->next;
			j->next = done;
			done = j;
		} else {
			p = &j->next;
		}
	}
	pthread_mutex_unlock(&a->mu);
	while ((j = done)) {
		done = j->next;
		pthread_join(j->th, NULL);
		job_free(j);
	}
}

/* ---- the leaser thread ---- */

enum link { LINK_OK, LINK_UNREACHABLE, LINK_UNAVAILABLE };

static const struct sp_agent_client_opts *client_opts(struct sp_agent *a,
						      struct sp_agent_client_opts *o)
{
	o->server = a->server;
	o->token = a->token;
	o->ca_file = a->ca_file;
	o->cursor = &a->server_cur;
	return o;
}

/* A 200 lease into a job thread; a lease that cannot be run is given back. */
static void start_job(struct sp_agent *a, struct sp_agent_answer *ans)
{
	struct sp_agent_client_opts co;
	struct sp_error err = SP_ERROR_INIT;
	struct job *j = sp_xcalloc(1, sizeof(*j));
	char q[600], why[700];
	int e;

	j->a = a;
	pthread_mutex_init(&j->mu, NULL);
	sp_cond_init_mono(&j->cond);
	sp_agent_batch_init(&j->batch);
	atomic_init(&j->fenced, false);
	atomic_init(&j->cancel_asked, false);
	if (sp_agent_lease_parse(&j->lease, ans->json, &err) < 0)
		goto give_back;
	j->heartbeat_ms = j->lease.ttl_ms / 3 < HEARTBEAT_MAX_MS ? j->lease.ttl_ms / 3
								 : HEARTBEAT_MAX_MS;
	if (sp_agent_client_new(&j->client, client_opts(a, &co), &err) < 0 ||
	    sp_agent_client_new(&j->events, &co, &err) < 0)
		goto give_back;
	pthread_mutex_lock(&a->mu);
	j->next = a->jobs;
	a->jobs = j;
	a->running++;
	e = pthread_create(&j->th, NULL, job_main, j);
	if (e != 0) {
		a->jobs = j->next;
		a->running--;
	}
	pthread_mutex_unlock(&a->mu);
	if (e == 0)
		return;
	sp_error_set(&err, SP_ERROR, "cannot start a thread: %s", strerror(e));
give_back:
	sp_log_error("agent.bad_lease", "job=%" PRId64 " error=%s", j->lease.job,
		     sp_log_quote(err.msg, q, sizeof(q)));
	if (j->lease.job && j->lease.epoch) {
		if (!j->lease.ttl_ms)
			j->lease.ttl_ms = 30000;
		snprintf(why, sizeof(why), "the agent could not take the job: %.600s", err.msg);
		send_finish(a, a->lease_client, &j->lease, "requeue", why, -1, 0, NULL, NULL);
	}
	job_free(j);
}

static char *lease_body(struct sp_agent *a)
{
	cJSON *b = cJSON_CreateObject(), *arr, *ids;
	const struct job *j;
	char *out;
	size_t i;

	cJSON_AddStringToObject(b, "agent", a->name);
	arr = cJSON_AddArrayToObject(b, "labels");
	for (i = 0; i < a->nlabels; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(a->labels[i]));
	cJSON_AddNumberToObject(b, "free", a->capacity - a->running);
	ids = cJSON_AddArrayToObject(b, "running");
	for (j = a->jobs; j; j = j->next)
		if (!j->done)
			cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)j->lease.job));
	out = sp_xjson_print(b);
	cJSON_Delete(b);
	return out;
}

static void *leaser_main(void *arg)
{
	struct sp_agent *a = arg;
	enum link link = LINK_OK;
	int64_t down_since = 0;
	int failures = 0;
	char path[64], q[600];

	snprintf(path, sizeof(path), "/api/agent/lease?wait=%d", a->lease_wait_s);
	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_agent_answer ans = SP_AGENT_ANSWER_INIT;
		enum link now_link = LINK_OK;
		char *body;
		int rc;

		reap(a);
		pthread_mutex_lock(&a->mu);
		while (!a->draining && a->running >= a->capacity)
			pthread_cond_wait(&a->cond, &a->mu);
		if (a->draining) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		body = lease_body(a);
		pthread_mutex_unlock(&a->mu);

		rc = sp_agent_client_post(a->lease_client, path, "application/json", body,
					  strlen(body), a->lease_wait_s + SP_AGENT_CALL_TIMEOUT_S,
					  &ans, &err);
		free(body);
		if (rc == SP_ECANCELLED)
			continue;  /* a drain: the loop sees it */
		if (rc == 0 && (ans.status == 401 || ans.status == 403)) {
			const char *why = sp_agent_answer_reason(&ans);

			pthread_mutex_lock(&a->mu);
			a->fatal_rc = SP_ECONFIG;
			if (ans.status == 401)
				snprintf(a->fatal_msg, sizeof(a->fatal_msg), "the server refused the "
					 "agent's token (HTTP 401): check --token-file and the "
					 "server's agents: entry for %s", a->name);
			else
				snprintf(a->fatal_msg, sizeof(a->fatal_msg), "the server refused agent "
					 "%s (HTTP 403)%s%.400s", a->name, *why ? ": " : "", why);
			pthread_mutex_unlock(&a->mu);
			sp_log_error("agent.token_refused", "status=%ld reason=%s", ans.status,
				     sp_log_quote(why, q, sizeof(q)));
			sp_agent_answer_release(&ans);
			break;
		}
		if (rc < 0)
			now_link = LINK_UNREACHABLE;
		else if (ans.status != 200 && ans.status != 204)
			now_link = LINK_UNAVAILABLE;
		if (now_link != link) {
			if (now_link == LINK_OK)
				sp_log_info("agent.server_back", "down_s=%.1f",
					    (double)(sp_clock_ms() - down_since) / 1000.0);
			else if (now_link == LINK_UNREACHABLE)
				sp_log_warn("agent.server_unreachable", "error=%s",
					    sp_log_quote(err.msg, q, sizeof(q)));
			else
				sp_log_warn("agent.server_unavailable", "status=%ld reason=%s",
					    ans.status,
					    sp_log_quote(sp_agent_answer_reason(&ans), q, sizeof(q)));
			if (link == LINK_OK)
				down_since = sp_clock_ms();
			link = now_link;
		}
		if (now_link == LINK_OK) {
			failures = 0;
			if (ans.status == 200) {
				start_job(a, &ans);
				wipe_json(ans.json);  /* its credentials */
			}
		} else {
			long wait_ms;

			pthread_mutex_lock(&a->mu);
			wait_ms = sp_agent_backoff_ms(++failures, (uint32_t)rand_r(&a->rnd));
			agent_sleep_locked(a, sp_clock_ms() + wait_ms, true);
			pthread_mutex_unlock(&a->mu);
		}
		sp_agent_answer_release(&ans);
	}
	pthread_mutex_lock(&a->mu);
	a->leaser_done = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- the API ---- */

int sp_agent_start(struct sp_agent **out, const struct sp_agent_opts *opts,
		   struct sp_error *err)
{
	struct sp_agent_client_opts co;
	struct sp_agent *a = NULL;
	size_t i;
	int rc = 0, e;

	*out = NULL;
	if (!opts->server || (strncmp(opts->server, "http://", 7) &&
			      strncmp(opts->server, "https://", 8)))
		return sp_error_set(err, SP_ECONFIG, "the server URL must start with http:// or "
				    "https://");
	if (!opts->token || !*opts->token)
		return sp_error_set(err, SP_ECONFIG, "no agent token");
	if (!opts->name || !sp_agent_name_valid(opts->name))
		return sp_error_set(err, SP_ECONFIG, "invalid agent name (lower-case letters, "
				    "digits, '.', '_', '-'; at most 63)");
	if (opts->capacity < 1)
		return sp_error_set(err, SP_ECONFIG, "capacity must be at least 1");
	if (!opts->exe)
		return sp_error_set(err, SP_ECONFIG, "no stagepipe program for the jobs");
	for (i = 0; opts->labels && opts->labels[i]; i++)
		if (!sp_label_valid(opts->labels[i]))
			return sp_error_set(err, SP_ECONFIG, "invalid label \"%.64s\" (letters, "
					    "digits, '.', '_', '-')", opts->labels[i]);

	a = sp_xcalloc(1, sizeof(*a));
	a->server = sp_xstrdup(opts->server);
	a->token = sp_xstrdup(opts->token);
	a->name = sp_xstrdup(opts->name);
	a->docker_host = opts->docker_host ? sp_xstrdup(opts->docker_host) : NULL;
	a->ca_file = opts->ca_file ? sp_xstrdup(opts->ca_file) : NULL;
	a->exe = sp_xstrdup(opts->exe);
	a->nlabels = i;
	a->labels = sp_xcalloc(i + 1, sizeof(*a->labels));
	for (i = 0; i < a->nlabels; i++)
		a->labels[i] = sp_xstrdup(opts->labels[i]);
	{
		struct sp_buf csv = SP_BUF_INIT;

		for (i = 0; i < a->nlabels; i++)
			sp_buf_addf(&csv, "%s%s", i ? "," : "", a->labels[i]);
		a->labels_csv = sp_buf_detach(&csv, NULL);
	}
	a->capacity = opts->capacity;
	a->lease_wait_s = opts->lease_wait_s > 0 ? opts->lease_wait_s : DEFAULT_LEASE_WAIT_S;
	if (a->lease_wait_s > 60)
		a->lease_wait_s = 60;
	pthread_mutex_init(&a->mu, NULL);
	sp_cond_init_mono(&a->cond);
	atomic_init(&a->forced, false);
	atomic_init(&a->server_cur, 0);
	a->rnd = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)a;
	if ((rc = sp_agent_client_new(&a->lease_client, client_opts(a, &co), err)) < 0)
		goto fail;
	if ((e = pthread_create(&a->leaser, NULL, leaser_main, a)) != 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot start a thread: %s", strerror(e));
		goto fail;
	}
	a->leaser_started = true;
	*out = a;
	return 0;
fail:
	sp_agent_free(a);
	return rc;
}

int sp_agent_wait(struct sp_agent *a, struct sp_error *err)
{
	int rc;

	pthread_mutex_lock(&a->mu);
	while (!(a->leaser_done || !a->leaser_started) || a->running > 0)
		pthread_cond_wait(&a->cond, &a->mu);
	pthread_mutex_unlock(&a->mu);
	if (a->leaser_started && !a->leaser_joined) {
		pthread_join(a->leaser, NULL);
		a->leaser_joined = true;
	}
	reap(a);
	rc = a->fatal_rc;
	if (rc)
		sp_error_set(err, rc, "%s", a->fatal_msg);
	return rc;
}

void sp_agent_drain(struct sp_agent *a)
{
	pthread_mutex_lock(&a->mu);
	a->draining = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	sp_agent_client_interrupt(a->lease_client);
}

void sp_agent_force(struct sp_agent *a)
{
	atomic_store(&a->forced, true);
	sp_agent_drain(a);
}

int sp_agent_running(struct sp_agent *a)
{
	int n;

	pthread_mutex_lock(&a->mu);
	n = a->running;
	pthread_mutex_unlock(&a->mu);
	return n;
}

void sp_agent_free(struct sp_agent *a)
{
	size_t i;

	if (!a)
		return;
	if (a->leaser_started && !a->leaser_joined) {
		sp_agent_force(a);
		(void)sp_agent_wait(a, NULL);
	}
	sp_agent_client_free(a->lease_client);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cond);
	free(a->server);
	wipe_free(a->token);
	free(a->name);
	free(a->docker_host);
	free(a->ca_file);
	free(a->exe);
	for (i = 0; i < a->nlabels; i++)
		free(a->labels[i]);
	free(a->labels);
	free(a->labels_csv);
	free(a);
}
