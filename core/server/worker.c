/*
 * worker.c — the server's own job slots and the lease keeper; see
 * server.h and /work/shared/docs/SERVER.md ("Jobs, leases and fencing").
 *
 * cfg->workers slot threads each loop: lease a job from the store (as
 * agent "local-N"), run it as a child `stagepipe run` (jobrun.c), apply
 * its event lines (jobevents.c), end it.  With nothing queued a slot
 * sleeps on a condition variable that sp_workers_wake signals (a hook or
 * the API queued a job), at most 2 s, so a job queued by another process
 * or put back by the keeper is seen soon anyway.
 *
 * While a job runs, its slot renews the lease at least every ttl/3 (from
 * jobrun's cancel poll, every 100 ms); the renew answer carries the API's
 * cancel.  Any write the store refuses as stale (SP_ECONFLICT: the lease
 * expired and the job went to someone else) stops the child at once and
 * the slot writes nothing more for that job.
 *
 * The end of a job (/tmp/api.md, "Job state from the child"): exit 0 →
 * passed (skipped when pipeline_finished says so), 1 → failed, 2 → failed
 * with the pipeline file's FILE:LINE:COL line, 3 → error, 130 or killed
 * after an API cancel → cancelled, killed by job_timeout → failed; killed
 * by this server's drain → back to the queue (sp_store_requeue).
 *
 * The lease keeper, one more thread, takes back expired leases every
 * second (sp_store_expire): jobs of a worker or agent that died (another
 * server process, a crashed one, a lost agent) return to the queue, and
 * the agents' long-polls are woken for them.
 *
 * Labels: a slot leases with cfg->worker_labels, so without them it takes
 * only the jobs that require no label (a repo's `labels:` are for agents).
 * A repo's git: credentials reach its job's child as STAGEPIPE_GIT_USER /
 * STAGEPIPE_GIT_TOKEN in its environment, never in argv or a log; its
 * secrets: likewise, as NAME=value (the child masks them in its output).
 *
 * Locking: one mutex guards the counters and flags below; no store call
 * and no child is ever run with it held.
 */
#include "core/server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"

#define IDLE_WAIT_MS 2000
#define KEEPER_EVERY_MS 1000
/* Tries of the final store write, a second apart. */
#define FINISH_TRIES 10
/* Event-write failures logged per job (the rest are counted). */
#define EVENT_WARN_MAX 5

struct slot {
	struct sp_workers *w;
	int n;                  /* 1-based: agent "local-N" */
	pthread_t th;
	bool started;
	_Atomic int64_t job_id;  /* the job it runs, 0 when idle */
	atomic_bool poke;        /* renew now: a cancel was asked (sp_workers_poke) */
};

struct sp_workers {
	struct sp_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t work;    /* idle slots wait here */
	pthread_cond_t idle;    /* drain waits here for busy to drop */
	pthread_cond_t tick;    /* the keeper sleeps here */
	uint64_t gen;           /* bumped by every wake: no wake is lost */
	bool stopping;          /* no new leases; threads leave when idle */
	atomic_bool kill;       /* running jobs stop now and are requeued */
	int busy;
	struct slot *slots;
	int nslots;
	pthread_t keeper;
	bool keeper_started;
	bool joined;
	char **child_env;       /* cfg->env plus the secrets blanked (secret_env) */
};

/* One running job. */
struct job {
	struct slot *s;
	const struct sp_lease *lease;
	struct sp_jobevents *je;
	struct sp_joblog *log;
	int64_t next_renew;     /* monotonic ms */
	int ttl_ms;
	bool api_cancel;        /* the renew said cancel */
	bool conflict;          /* the store said the lease is not ours */
	bool drained;           /* this server's drain stopped it */
	int event_errors;
};

static bool draining(const struct sp_workers *w)
{
	return atomic_load(&w->srv->draining);
}

/* A note in the job log (DATA/logs/<job>/_job.log); failures are logged. */
static void job_note(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void job_note(struct job *j, const char *fmt, ...)
{
	struct sp_error err = SP_ERROR_INIT;
	char line[1024], q[600];
	va_list ap;
	int n;

	if (!j->log)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (sp_joblog_write(j->log, "_job", line, strlen(line), &err) < 0)
		sp_log_warn("job.log_failed", "job=%" PRId64 " error=%s", j->lease->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
}

/* ---- callbacks of the running child ---- */

static void heartbeat(struct job *j)
{
	struct sp_workers *w = j->s->w;
	struct sp_error err = SP_ERROR_INIT;
	bool cancel = false;
	char q[600];
	int rc;

	rc = sp_store_renew(w->srv->store, j->lease->job_id, j->lease->epoch, j->ttl_ms,
			    &cancel, &err);
	if (rc == 0) {
		j->next_renew = sp_clock_ms() + j->ttl_ms / 3;
		if (cancel && !j->api_cancel) {
			j->api_cancel = true;
			sp_log_info("job.cancelling", "job=%" PRId64, j->lease->job_id);
		}
	} else if (rc == SP_ECONFLICT) {
		j->conflict = true;
		sp_log_warn("job.stale", "job=%" PRId64 " epoch=%" PRId64 " error=%s",
			    j->lease->job_id, j->lease->epoch, sp_log_quote(err.msg, q, sizeof(q)));
	} else {
		/* the store is in trouble: try again soon; if it stays so, the
		 * lease expires and the next renew is a conflict */
		j->next_renew = sp_clock_ms() + 1000;
		sp_log_warn("job.renew_failed", "job=%" PRId64 " error=%s", j->lease->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
	}
}

static int job_cancel(void *ud)
{
	struct job *j = ud;

	/* called every 100 ms until the child is gone, also while it stops
	 * (up to 30 s): the lease must not expire under a cleaning job */
	if (atomic_exchange(&j->s->poke, false))
		j->next_renew = 0;
	if (!j->conflict && sp_clock_ms() >= j->next_renew)
		heartbeat(j);
	if (atomic_load(&j->s->w->kill) && !j->api_cancel && !j->conflict)
		j->drained = true;
	return j->drained || j->api_cancel || j->conflict;
}

static void job_line(void *ud, const char *line, size_t len)
{
	struct job *j = ud;
	struct sp_error err = SP_ERROR_INIT;
	char q[600];
	int rc;

	if (j->conflict)
		return;
	rc = sp_jobevents_line(j->je, line, len, &err);
	if (rc == SP_ECONFLICT) {
		j->conflict = true;
		sp_log_warn("job.stale", "job=%" PRId64 " epoch=%" PRId64 " error=%s",
			    j->lease->job_id, j->lease->epoch, sp_log_quote(err.msg, q, sizeof(q)));
	} else if (rc < 0 && j->event_errors++ < EVENT_WARN_MAX) {
		sp_log_warn("job.event_failed", "job=%" PRId64 " error=%s", j->lease->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
	}
}

static void job_promote(void *ud, const char *stage, bool *granted, char *reason,
			size_t reason_len)
{
	struct job *j = ud;
	struct sp_error err = SP_ERROR_INIT;
	char q[600], qs[200];
	int rc;

	*granted = false;
	if (j->conflict) {
		snprintf(reason, reason_len, "this attempt's lease is no longer current");
		return;
	}
	rc = sp_store_promote(j->s->w->srv->store, j->lease->job_id, j->lease->epoch, granted,
			      reason, reason_len, &err);
	if (rc == SP_ECONFLICT) {
		*granted = false;
		j->conflict = true;
		snprintf(reason, reason_len, "this attempt's lease is no longer current");
	} else if (rc < 0) {
		*granted = false;
		snprintf(reason, reason_len, "the server could not record the permit: %.300s",
			 err.msg);
	}
	sp_log_info("job.promote", "job=%" PRId64 " epoch=%" PRId64 " stage=%s granted=%s%s%s",
		    j->lease->job_id, j->lease->epoch, sp_log_quote(stage, qs, sizeof(qs)),
		    *granted ? "true" : "false", *granted ? "" : " reason=",
		    *granted ? "" : sp_log_quote(reason, q, sizeof(q)));
}

/* ---- the end of a job ---- */

static const char *summary_str(const cJSON *summary, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(summary, key);

	return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/*
 * Ends the job in the store; true when that was applied.  A store in
 * trouble is tried again for a while, the lease renewed in between so that
 * the keeper does not take back a job that is over; when it stays in
 * trouble the lease runs out and the keeper puts the job back in the
 * queue (or ends it `error`): it is never left `running`.  A conflict (the
 * lease was taken back meanwhile) is final: someone else owns the job.
 */
static bool finish(struct sp_workers *w, struct job *j, const struct sp_finish *f)
{
	const struct sp_lease *l = j->lease;
	struct sp_error err = SP_ERROR_INIT;
	char q[600];
	int i, rc = 0;

	/* the log complete before the job is final (a log in the store is
	 * buffered; lines lost are logged there) */
	(void)sp_joblog_flush(j->log, NULL);
	for (i = 0; i < FINISH_TRIES; i++) {
		if (i) {
			sleep(1);
			if (!j->conflict)
				heartbeat(j);
			if (j->conflict) {
				rc = SP_ECONFLICT;
				break;
			}
		}
		sp_error_clear(&err);
		rc = sp_store_finish(w->srv->store, l->job_id, l->epoch, f, &err);
		if (rc == 0 || rc == SP_ECONFLICT)
			break;
		if (atomic_load(&w->kill))
			break;  /* forced: the keeper of the next start takes it back */
	}
	if (rc == SP_ECONFLICT)
		sp_log_warn("job.stale", "job=%" PRId64 " epoch=%" PRId64 " error=%s", l->job_id,
			    l->epoch, sp_log_quote(err.msg, q, sizeof(q)));
	else if (rc < 0)
		sp_log_error("job.finish_failed", "job=%" PRId64 " epoch=%" PRId64 " error=%s",
			     l->job_id, l->epoch, sp_log_quote(err.msg, q, sizeof(q)));
	return rc == 0;
}

static void requeue(struct sp_workers *w, const struct sp_lease *l, const char *why)
{
	struct sp_error err = SP_ERROR_INIT;
	char q[600];

	if (sp_store_requeue(w->srv->store, l->job_id, l->epoch, why, w->srv->cfg->max_attempts,
			     &err) < 0) {
		sp_log_error("job.requeue_failed", "job=%" PRId64 " error=%s", l->job_id,
			     sp_log_quote(err.msg, q, sizeof(q)));
		return;
	}
	sp_log_info("job.requeued", "job=%" PRId64 " attempt=%d reason=%s", l->job_id, l->attempt,
		    sp_log_quote(why, q, sizeof(q)));
	/* back in the queue: an agent may take it (the slots stop leasing
	 * when they drain, so this wakes no slot that should not) */
	sp_agents_wake(w->srv->agents);
}

static void finished(struct sp_workers *w, const struct sp_lease *l, enum sp_job_state state,
		     const char *reason, double seconds)
{
	char q[600];

	if (w->srv->metrics)
		sp_metrics_job_finished(w->srv->metrics, sp_job_state_name(state), seconds);
	sp_log_info("job.finished", "job=%" PRId64 " state=%s seconds=%.1f%s%s", l->job_id,
		    sp_job_state_name(state), seconds, reason && *reason ? " reason=" : "",
		    reason && *reason ? sp_log_quote(reason, q, sizeof(q)) : "");
}

static void relabel(struct sp_workers *w, struct job *j, const char *labels, const char *why)
{
	const struct sp_lease *l = j->lease;
	struct sp_error err = SP_ERROR_INIT;
	char q[600], ql[200];

	if (!labels || !*labels) {
		/* exit 4 without its event: not a result the store can take */
		struct sp_finish f;

		memset(&f, 0, sizeof(f));
		f.state = SP_JOB_ERROR;
		f.reason = "the job process exited with status 4 without a runner_mismatch event";
		f.exit_code = 4;
		if (finish(w, j, &f))
			finished(w, l, f.state, f.reason, 0);
		return;
	}
	job_note(j, "stagepipe serve: %s", why);
	(void)sp_joblog_flush(j->log, NULL);
	if (sp_store_relabel(w->srv->store, l->job_id, l->epoch, labels, why, &err) < 0) {
		sp_log_error("job.relabel_failed", "job=%" PRId64 " error=%s", l->job_id,
			     sp_log_quote(err.msg, q, sizeof(q)));
		return;
	}
	sp_log_info("job.relabeled", "job=%" PRId64 " labels=%s", l->job_id,
		    sp_log_quote(labels, ql, sizeof(ql)));
	sp_server_queued(w->srv);
}

/* push → the branch, tag → the tag, pull_request → the target branch,
 * manual → the branch, if any. */
static const char *event_ref_of(const struct sp_lease *l)
{
	if (!l->event)
		return NULL;
	if (!strcmp(l->event, "tag"))
		return l->tag;
	return l->branch;
}

/* ---- a job's environment ---- */

static bool is_git_env(const char *entry)
{
	return !strncmp(entry, "STAGEPIPE_GIT_USER=", 19) ||
	       !strncmp(entry, "STAGEPIPE_GIT_TOKEN=", 20);
}

/* Whether entry ("NAME=...") sets one of the repository's secrets, or
 * STAGEPIPE_SECRETS (their names) when it has some. */
static bool is_repo_secret_env(const struct sp_repo_config *repo, const char *entry)
{
	size_t n = strcspn(entry, "="), i;

	if (repo->nsecrets && !strncmp(entry, "STAGEPIPE_SECRETS=", 18))
		return true;
	for (i = 0; i < repo->nsecrets; i++)
		if (strlen(repo->secrets[i].name) == n && !strncmp(repo->secrets[i].name, entry, n))
			return true;
	return false;
}

/*
 * The child environment of one job: w->child_env, plus the repository's
 * clone credentials (git:) as STAGEPIPE_GIT_USER / STAGEPIPE_GIT_TOKEN,
 * which `stagepipe run` uses for the checkout (core/git/gitcred.c); those
 * names from elsewhere are left out then, so the repo's own win.  Without
 * git: the shared array itself.  Never logged.
 */
static char **job_env_of(struct sp_workers *w, const struct sp_repo_config *repo)
{
	char **out = NULL, **p;
	size_t n = 0, alloc = 0, i;

	if (!repo->git_token && !repo->nsecrets)
		return w->child_env;
	for (p = w->child_env; p && *p; p++) {
		if ((repo->git_token && is_git_env(*p)) || is_repo_secret_env(repo, *p))
			continue;
		SP_GROW(out, alloc, n + 1);
		out[n++] = *p;  /* borrowed from w->child_env */
	}
	SP_GROW(out, alloc, n + 4 + repo->nsecrets);
	if (repo->git_token) {
		out[n++] = sp_xasprintf("STAGEPIPE_GIT_USER=%s", repo->git_user ? repo->git_user
					: "x-access-token");
		out[n++] = sp_xasprintf("STAGEPIPE_GIT_TOKEN=%s", repo->git_token);
	}
	/* the pipeline's secrets:, read by the child from its environment */
	for (i = 0; i < repo->nsecrets; i++)
		out[n++] = sp_xasprintf("%s=%s", repo->secrets[i].name, repo->secrets[i].value);
	/* and their names: the child masks every one of them, also those its
	 * pipeline does not list (which it could still read as ${env.NAME}) */
	if (repo->nsecrets) {
		struct sp_buf names = SP_BUF_INIT;

		for (i = 0; i < repo->nsecrets; i++)
			sp_buf_addf(&names, "%s%s", i ? "," : "", repo->secrets[i].name);
		out[n++] = sp_xasprintf("STAGEPIPE_SECRETS=%s", names.data);
		sp_buf_release(&names);
	}
	out[n] = NULL;
	return out;
}

static void job_env_free(char **env, char **shared, const struct sp_repo_config *repo)
{
	char **p;

	if (!env || env == shared)
		return;
	/* the entries made by job_env_of: wiped, they hold the token and the
	 * secrets (the borrowed ones never match: job_env_of left them out) */
	for (p = env; *p; p++) {
		if (!(repo->git_token && is_git_env(*p)) && !is_repo_secret_env(repo, *p))
			continue;
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
	}
	free(env);
}

static void run_job(struct slot *s, const struct sp_lease *l)
{
	struct sp_workers *w = s->w;
	const struct sp_server_config *cfg = w->srv->cfg;
	const struct sp_repo_config *repo = sp_server_config_repo(cfg, l->repo);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_finish f;
	struct job j;
	enum sp_job_state state;
	char label[40], reason[600], q[600], **job_env = NULL, artifacts[4096];
	int rc;

	memset(&j, 0, sizeof(j));
	j.s = s;
	j.lease = l;
	j.ttl_ms = cfg->lease_ttl_ms > 0 ? (int)cfg->lease_ttl_ms : 30000;
	j.next_renew = sp_clock_ms() + j.ttl_ms / 3;
	memset(&f, 0, sizeof(f));
	f.exit_code = -1;

	sp_log_info("job.started", "job=%" PRId64 " agent=local-%d epoch=%" PRId64
		    " attempt=%d repo=%s sha=%.12s", l->job_id, s->n, l->epoch, l->attempt,
		    sp_log_quote(l->repo, q, sizeof(q)), l->sha ? l->sha : "");
	if (!repo) {
		f.state = SP_JOB_ERROR;
		f.reason = "repository no longer configured";
		if (finish(w, &j, &f))
			finished(w, l, f.state, f.reason, 0);
		goto cleanup;
	}
	if (sp_joblog_open_store(&j.log, w->srv->store, cfg->data, l->job_id, &err) < 0) {
		sp_log_error("job.log_failed", "job=%" PRId64 " error=%s", l->job_id,
			     sp_log_quote(err.msg, q, sizeof(q)));
		requeue(w, l, err.msg);
		goto cleanup;
	}
	j.je = sp_jobevents_new(w->srv, l->job_id, l->epoch, j.log);
	job_note(&j, "stagepipe serve: attempt %d on local-%d: %s %s at %s", l->attempt, s->n,
		 l->event ? l->event : "build", l->ref, l->sha);

	snprintf(label, sizeof(label), "srv-%" PRId64, l->job_id);
	memset(&o, 0, sizeof(o));
	/* this attempt's artifacts only: what an earlier one left goes */
	if (sp_artifacts_reset(cfg->data, l->job_id, artifacts, sizeof(artifacts), &err) < 0) {
		job_note(&j, "stagepipe serve: artifacts will not be kept: %s", err.msg);
		sp_error_clear(&err);
	} else {
		o.artifacts_dir = artifacts;
		o.artifacts_max_bytes = cfg->artifacts_max;
	}
	o.exe = cfg->stagepipe ? cfg->stagepipe : w->srv->self_exe;
	o.repo_url = repo->url;
	o.ref = l->ref;
	o.sha = l->sha;
	o.pipeline = repo->pipeline;
	o.event = l->event;
	o.event_ref = event_ref_of(l);
	o.job_label = label;
	job_env = job_env_of(w, repo);
	o.env = (const char *const *)job_env;
	o.timeout_ms = cfg->job_timeout_ms;
	o.runner_labels = cfg->worker_labels ? cfg->worker_labels : "";
	o.cancel = job_cancel;
	o.on_line = job_line;
	o.on_promote = job_promote;
	o.ud = &j;

	atomic_store(&s->poke, false);
	atomic_store(&s->job_id, l->job_id);
	rc = sp_jobrun(&o, &res, &err);
	atomic_store(&s->job_id, 0);
	if (rc < 0) {
		sp_log_error("job.start_failed", "job=%" PRId64 " error=%s", l->job_id,
			     sp_log_quote(err.msg, q, sizeof(q)));
		job_note(&j, "stagepipe serve: %s", err.msg);
		(void)sp_joblog_flush(j.log, NULL);
		requeue(w, l, err.msg);
		goto cleanup;
	}
	if (j.event_errors > EVENT_WARN_MAX)
		sp_log_warn("job.event_failed", "job=%" PRId64 " failures=%d", l->job_id,
			    j.event_errors);
	if (j.conflict) {
		/* someone else holds the job now: not ours to end */
		sp_log_warn("job.abandoned", "job=%" PRId64 " epoch=%" PRId64 " seconds=%.1f",
			    l->job_id, l->epoch, res.seconds);
		job_note(&j, "stagepipe serve: attempt %d stopped: its lease was taken back",
			 l->attempt);
		goto cleanup;
	}
	/* stopped by the drain, unless it ended on its own meanwhile (it was
	 * finishing as the SIGTERM came: a result stands, it is not run again) */
	if (j.drained && (res.exit_code == 130 || res.exit_code < 0)) {
		job_note(&j, "stagepipe serve: attempt %d stopped: the server is shutting down",
			 l->attempt);
		(void)sp_joblog_flush(j.log, NULL);
		requeue(w, l, "the server stopped while it ran");
		goto cleanup;
	}
	state = sp_jobrun_decide(&res, sp_jobevents_summary(j.je), cfg->job_timeout_ms,
				  j.api_cancel, reason, sizeof(reason));
	if (state == SP_JOB_QUEUED) {
		/* exit 4: the pipeline's runs_on wants labels this server's slots
		 * lack: back to the queue for a runner (an agent) that has them */
		relabel(w, &j, sp_jobevents_runs_on(j.je), reason);
		goto cleanup;
	}
	f.state = state;
	f.reason = *reason ? reason : NULL;
	f.exit_code = res.exit_code;
	f.summary = sp_jobevents_summary(j.je);
	f.pipeline = summary_str(f.summary, "pipeline");
	job_note(&j, "stagepipe serve: %s%s%s", sp_job_state_name(state), *reason ? ": " : "",
		 reason);
	if (finish(w, &j, &f))
		finished(w, l, state, reason, res.seconds);
cleanup:
	if (w->srv->outbox)
		sp_outbox_wake(w->srv->outbox);
	sp_jobevents_free(j.je);
	sp_joblog_close(j.log);
	job_env_free(job_env, w->child_env, repo);
}

/* ---- the children's environment ---- */

extern char **environ;

static bool is_secret(const struct sp_server_config *cfg, const char *v)
{
	size_t n = strlen(v), i, j;

	if (!n)
		return false;
	if (cfg->admin_token && !strcmp(cfg->admin_token, v))
		return true;
	for (i = 0; i < cfg->nrepos; i++) {
		const struct sp_repo_config *r = &cfg->repos[i];

		if (r->secret && r->secret_len == n && !memcmp(r->secret, v, n))
			return true;
		if (r->status.token && !strcmp(r->status.token, v))
			return true;
		if (r->git_token && !strcmp(r->git_token, v))
			return true;
		for (j = 0; j < r->nsecrets; j++)
			if (r->secrets[j].len == n && !memcmp(r->secrets[j].value, v, n))
				return true;
	}
	if (cfg->nagents) {
		/* agents' tokens are kept as digests only */
		unsigned char d[SHA256_DIGEST_LENGTH];
		bool hit = false;

		SHA256((const unsigned char *)v, n, d);
		for (i = 0; i < cfg->nagents; i++)
			hit |= CRYPTO_memcmp(d, cfg->agents[i].token_sha256, sizeof(d)) == 0;
		OPENSSL_cleanse(d, sizeof(d));
		if (hit)
			return true;
	}
	return false;
}

/*
 * A job child runs the repository's pipeline, which can read any variable
 * of its environment (${env.NAME}): the server's own secrets taken from its
 * environment (admin_token_env, secret_env, token_env, the git: tokens,
 * the agents' tokens) must not be there.
 * They are blanked ("NAME=", which replaces the inherited entry), found by
 * value so that every way of naming them is covered.  cfg->env comes after
 * and wins (the operator asked for it).  Nothing here is ever logged.
 */
static char **child_env(const struct sp_server_config *cfg)
{
	char **out = NULL, **p;
	size_t n = 0, alloc = 0;

	for (p = environ; p && *p; p++) {
		const char *eq = strchr(*p, '=');

		if (!eq || !is_secret(cfg, eq + 1))
			continue;
		SP_GROW(out, alloc, n + 2);
		out[n++] = sp_xasprintf("%.*s=", (int)(eq - *p), *p);
	}
	for (p = cfg->env; p && *p; p++) {
		SP_GROW(out, alloc, n + 2);
		out[n++] = sp_xstrdup(*p);
	}
	if (out)
		out[n] = NULL;
	return out;
}

static void env_free(char **env)
{
	char **p;

	for (p = env; p && *p; p++)
		free(*p);
	free(env);
}

/* ---- threads ---- */

static void *slot_main(void *arg)
{
	struct slot *s = arg;
	struct sp_workers *w = s->w;
	const struct sp_server_config *cfg = w->srv->cfg;
	char agent[32], q[600];
	int64_t last_warn = 0;

	snprintf(agent, sizeof(agent), "local-%d", s->n);
	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_lease_req req;
		struct sp_lease lease;
		struct timespec until;
		uint64_t gen;
		int rc;

		pthread_mutex_lock(&w->mu);
		if (w->stopping || draining(w)) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		gen = w->gen;
		pthread_mutex_unlock(&w->mu);

		memset(&req, 0, sizeof(req));
		req.agent = agent;
		/* no labels: only jobs that require none */
		req.labels = cfg->worker_labels;
		req.ttl_ms = cfg->lease_ttl_ms > 0 ? (int)cfg->lease_ttl_ms : 30000;
		memset(&lease, 0, sizeof(lease));
		rc = sp_store_lease(w->srv->store, &req, &lease, &err);
		if (rc == 0) {
			bool stop;

			pthread_mutex_lock(&w->mu);
			stop = w->stopping;
			if (!stop)
				w->busy++;
			pthread_mutex_unlock(&w->mu);
			if (stop) {
				/* the drain began while we leased: give it back */
				requeue(w, &lease, "the server stopped before it ran");
				sp_lease_release(&lease);
				break;
			}
			run_job(s, &lease);
			sp_lease_release(&lease);
			pthread_mutex_lock(&w->mu);
			w->busy--;
			pthread_cond_broadcast(&w->idle);
			pthread_mutex_unlock(&w->mu);
			continue;
		}
		if (rc != SP_ENOTFOUND && sp_clock_ms() - last_warn > 60000) {
			last_warn = sp_clock_ms();
			sp_log_warn("lease.failed", "agent=%s error=%s", agent,
				    sp_log_quote(err.msg, q, sizeof(q)));
		}
		sp_clock_abs(&until, sp_clock_ms() + IDLE_WAIT_MS);
		pthread_mutex_lock(&w->mu);
		while (!w->stopping && w->gen == gen)
			if (pthread_cond_timedwait(&w->work, &w->mu, &until) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&w->mu);
	}
	return NULL;
}

static void *keeper_main(void *arg)
{
	struct sp_workers *w = arg;
	const struct sp_server_config *cfg = w->srv->cfg;
	int64_t last_warn = 0;
	char q[600];

	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		struct sp_error err = SP_ERROR_INIT;
		struct timespec until;
		int requeued = 0, failed = 0, rc;

		sp_clock_abs(&until, sp_clock_ms() + KEEPER_EVERY_MS);
		while (!w->stopping)
			if (pthread_cond_timedwait(&w->tick, &w->mu, &until) == ETIMEDOUT)
				break;
		if (w->stopping)
			break;
		pthread_mutex_unlock(&w->mu);
		rc = sp_store_expire(w->srv->store, cfg->max_attempts > 0 ? cfg->max_attempts : 3,
				     &requeued, &failed, &err);
		if (rc < 0 && sp_clock_ms() - last_warn > 60000) {
			last_warn = sp_clock_ms();
			sp_log_warn("lease.expire_failed", "error=%s",
				    sp_log_quote(err.msg, q, sizeof(q)));
		}
		if (rc == 0 && requeued > 0)
			sp_agents_wake(w->srv->agents);
		if (rc == 0 && requeued + failed > 0) {
			sp_log_info("lease.expired", "requeued=%d failed=%d", requeued, failed);
			if (w->srv->metrics)
				sp_metrics_leases_expired(w->srv->metrics, requeued + failed);
			if (w->srv->outbox)
				sp_outbox_wake(w->srv->outbox);
		}
		pthread_mutex_lock(&w->mu);
		if (rc == 0 && requeued > 0) {
			w->gen++;
			pthread_cond_broadcast(&w->work);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void join_all(struct sp_workers *w)
{
	int i;

	if (w->joined)
		return;
	for (i = 0; i < w->nslots; i++)
		if (w->slots[i].started)
			pthread_join(w->slots[i].th, NULL);
	if (w->keeper_started)
		pthread_join(w->keeper, NULL);
	w->joined = true;
}

static void stop_all(struct sp_workers *w, bool kill)
{
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	if (kill)
		atomic_store(&w->kill, true);
	pthread_cond_broadcast(&w->work);
	pthread_cond_broadcast(&w->tick);
	pthread_cond_broadcast(&w->idle);
	pthread_mutex_unlock(&w->mu);
}

int sp_workers_start(struct sp_workers **out, struct sp_server *srv, struct sp_error *err)
{
	struct sp_workers *w;
	int i, e, rc = 0;

	*out = NULL;
	w = sp_xcalloc(1, sizeof(*w));
	w->srv = srv;
	pthread_mutex_init(&w->mu, NULL);
	sp_cond_init_mono(&w->work);
	sp_cond_init_mono(&w->idle);
	sp_cond_init_mono(&w->tick);
	atomic_init(&w->kill, false);
	w->nslots = srv->cfg->workers > 0 ? srv->cfg->workers : 0;
	w->child_env = child_env(srv->cfg);
	w->slots = sp_xcalloc((size_t)(w->nslots ? w->nslots : 1), sizeof(*w->slots));
	for (i = 0; i < w->nslots; i++) {
		w->slots[i].w = w;
		w->slots[i].n = i + 1;
		if ((e = pthread_create(&w->slots[i].th, NULL, slot_main, &w->slots[i])) != 0) {
			rc = sp_error_set(err, SP_ERROR, "cannot start worker %d: %s", i + 1,
					  strerror(e));
			goto fail;
		}
		w->slots[i].started = true;
	}
	if ((e = pthread_create(&w->keeper, NULL, keeper_main, w)) != 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot start the lease keeper: %s", strerror(e));
		goto fail;
	}
	w->keeper_started = true;
	*out = w;
	return 0;
fail:
	sp_workers_free(w);
	return rc;
}

void sp_workers_wake(struct sp_workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->gen++;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
}

void sp_server_queued(struct sp_server *srv)
{
	if (!srv)
		return;
	sp_workers_wake(srv->workers);
	sp_agents_wake(srv->agents);
}

void sp_workers_poke(struct sp_workers *w, int64_t job)
{
	int i;

	if (!w || job <= 0)
		return;
	/* slots is fixed once started; job_id and poke are atomics */
	for (i = 0; i < w->nslots; i++)
		if (atomic_load(&w->slots[i].job_id) == job)
			atomic_store(&w->slots[i].poke, true);
}

int sp_workers_busy(struct sp_workers *w)
{
	int n;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	n = w->busy;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void sp_workers_drain(struct sp_workers *w, long timeout_ms)
{
	struct timespec until;

	if (!w)
		return;
	stop_all(w, false);
	sp_clock_abs(&until, sp_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0));
	pthread_mutex_lock(&w->mu);
	while (w->busy > 0 && !atomic_load(&w->kill))
		if (pthread_cond_timedwait(&w->idle, &w->mu, &until) == ETIMEDOUT)
			break;
	if (w->busy > 0 && !atomic_load(&w->kill)) {
		sp_log_info("serve.drain", "cancelling=%d", w->busy);
		atomic_store(&w->kill, true);
	}
	pthread_mutex_unlock(&w->mu);
	join_all(w);
}

void sp_workers_force(struct sp_workers *w)
{
	if (w)
		stop_all(w, true);
}

void sp_workers_free(struct sp_workers *w)
{
	if (!w)
		return;
	stop_all(w, true);
	join_all(w);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->idle);
	pthread_cond_destroy(&w->tick);
	free(w->slots);
	env_free(w->child_env);
	free(w);
}
