/*
 * server.h — the parts of `stagepipe serve`, and the one struct that ties
 * them together.
 *
 *   http.c      libmicrohttpd daemon and router; hooks.c (ingest), api.c
 *               (REST, logs, SSE), metrics.c (/metrics)
 *   worker.c    local job slots: lease from the store, run each job as a
 *               child `stagepipe run` (jobrun.c), apply its events
 *               (jobevents.c); the lease keeper (expiry)
 *   agents.c    remote agents: /api/agent/... (docs/agent-protocol.md) and
 *               GET /api/agents
 *   outbox.c    the commit-status sender thread (forge/status.c)
 *   logs.c      log files DATA/logs/<job>/<stage>.log
 *
 * The struct is made by cmd/serve.c; each part gets a pointer to it and
 * keeps no other globals.  Fields are set before any thread starts and
 * not changed afterwards, except `draining` (atomic).
 */
#ifndef SP_SERVER_H
#define SP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/server/config.h"
#include "core/store/store.h"

struct sp_error;
struct sp_buf;
struct sp_metrics;
struct sp_workers;
struct sp_outbox;
struct sp_http;
struct sp_agents;

struct sp_server {
	const struct sp_server_config *cfg;
	struct sp_store *store;
	struct sp_metrics *metrics;
	struct sp_workers *workers;   /* cfg->workers slots (maybe 0) and the lease keeper */
	struct sp_outbox *outbox;
	struct sp_http *http;
	struct sp_agents *agents;     /* remote agents: tokens, long-polls, who is online */
	const char *self_exe;         /* the stagepipe binary jobs run */
	atomic_bool draining;         /* SIGTERM: hooks answer 503, no new leases */
};

/* ---- metrics.c: Prometheus counters and histograms ---------------------- */

struct sp_metrics *sp_metrics_new(void);
void sp_metrics_free(struct sp_metrics *m);
/* outcome: "accepted", "duplicate", "ignored", "unauthorized", "too_large",
 * "bad_request", "unsupported_media_type", "unavailable", "not_found" */
void sp_metrics_delivery(struct sp_metrics *m, const char *forge, const char *outcome);
/* route: a fixed name ("hooks", "api_jobs", "api_job", "log", "metrics", ...) */
void sp_metrics_http(struct sp_metrics *m, const char *route, int status, double seconds);
void sp_metrics_job_finished(struct sp_metrics *m, const char *state, double seconds);
void sp_metrics_stage_finished(struct sp_metrics *m, const char *result, double seconds);
void sp_metrics_status_sent(struct sp_metrics *m, const char *forge, bool ok);
void sp_metrics_leases_expired(struct sp_metrics *m, int n);
/* Prometheus text format 0.0.4 into out: the above plus the store's counts
 * (jobs by state, queue depth, outbox) and process RSS. */
int sp_metrics_render(struct sp_metrics *m, struct sp_store *st, struct sp_buf *out,
		      struct sp_error *err);

/* ---- artifacts.c: DATA/artifacts/<job>/<stage>/<path> -------------------- */

/* DATA/artifacts/<job> into buf; -1 when it does not fit. */
int sp_artifacts_dir(char *buf, size_t len, const char *data, int64_t job);
/* Makes DATA/artifacts/<job> an empty folder (before each attempt), its
 * path into buf.  0, or SP_ERROR. */
int sp_artifacts_reset(const char *data, int64_t job, char *buf, size_t len,
		       struct sp_error *err);
/*
 * Every regular file under dir (symlinks and other types left out, never
 * followed) as a new JSON array of {"path": "stage/a/b", "size": N},
 * sorted by path, and their total size.  A missing dir is an empty list.
 * *out is always set (caller deletes).  SP_ETOOBIG past 100000 files.
 */
int sp_artifacts_list(const char *dir, cJSON **out, uint64_t *total, struct sp_error *err);
/*
 * Opens the regular file rel ("stage/a/b") under dir for reading without
 * following any symlink; *fd (caller closes) and *size.  SP_ECONFIG for
 * a path with an empty, "." or ".." component; SP_ENOTFOUND otherwise.
 */
int sp_artifacts_open(const char *dir, const char *rel, int *fd, uint64_t *size,
		      struct sp_error *err);

/* Whether rel ("stage/a/b") is a path an upload may write: 1 to 1024
 * bytes, components of 1 to 255 bytes, none "." or "..", no control
 * byte or backslash, no leading or trailing '/'. */
bool sp_artifacts_rel_ok(const char *rel);
/* A new temporary file DATA/artifacts/.tmp/upload-XXXXXX for an upload
 * (its path into path, *fd open for writing; the caller closes it and
 * unlinks it when it is not placed).  0 or SP_ERROR. */
int sp_artifacts_tmpfile(const char *data, char *path, size_t len, int *fd, struct sp_error *err);
/*
 * Moves the finished upload tmp to dir/rel, creating the folders on the
 * way (never through a symlink: each is opened with O_NOFOLLOW; the final
 * rename replaces whatever had the name).  SP_ECONFIG for a bad rel or a
 * non-folder on the way; SP_ERROR for a system error.
 */
int sp_artifacts_place(const char *dir, const char *rel, const char *tmp, struct sp_error *err);

/* ---- logs.c: one file per job and stage -------------------------------- */

/*
 * DATA/logs/<job>/<stage>.log into buf (always NUL-terminated).  Returns
 * -1 when stage is not a safe file name ([A-Za-z0-9_.\-[\]] only, not
 * starting with '.', at most 100 bytes).
 */
int sp_logs_path(char *buf, size_t len, const char *data, int64_t job, const char *stage);

/* Appends lines to a job's stage logs, keeping one open fd per stage.  Not
 * thread-safe: one per running job. */
struct sp_joblog;
int sp_joblog_open(struct sp_joblog **out, const char *data, int64_t job,
		   struct sp_error *err);
/*
 * Appends line + '\n' (a line without its newline), whole or not at all.
 * A line that cannot be written (disk full, I/O error) is lost, counted,
 * and noted before the next line of that file that can be written
 * ("[stagepipe: N log lines lost here: REASON]"); the error says so.
 */
int sp_joblog_write(struct sp_joblog *l, const char *stage, const char *line, size_t len,
		    struct sp_error *err);
/* Lines lost so far (0 for NULL). */
uint64_t sp_joblog_lost(const struct sp_joblog *l);
/* fsyncs and closes every file; logs job.log_lost when lines were lost.
 * Store mode: appends what is buffered first. */
void sp_joblog_close(struct sp_joblog *l);
/*
 * A job's log in st when the store keeps logs (sp_store_has_logs:
 * PostgreSQL), else its files under data (sp_joblog_open).  st is
 * borrowed and must outlive the joblog.  In the store, lines are buffered
 * and appended in chunks (64 KiB, 250 ms after the first line, or
 * sp_joblog_flush); a chunk the store refuses loses its lines, counted and
 * noted as for files.  Thread-safe in store mode (it runs a thread of its
 * own that appends on time).
 */
int sp_joblog_open_store(struct sp_joblog **out, struct sp_store *st, const char *data,
			 int64_t job, struct sp_error *err);
/* Appends what is buffered now (store mode; files: nothing to do).  Call it
 * before the job's final state is written.  SP_ERROR when lines were lost. */
int sp_joblog_flush(struct sp_joblog *l, struct sp_error *err);

/*
 * Reading a stage's log (the API), from whichever place it is in: the
 * store when it keeps logs, else the file.  Never loads the log whole.
 * One reader per request; not thread-safe.
 */
struct sp_logread;
/* SP_ECONFIG for a stage name no log can have. */
int sp_logread_open(struct sp_logread **out, struct sp_store *st, const char *data,
		    int64_t job, const char *stage, struct sp_error *err);
/* Its size now; SP_ENOTFOUND when the stage has no log (yet). */
int sp_logread_size(struct sp_logread *r, uint64_t *size, struct sp_error *err);
/* Up to max bytes from off into buf; *n = 0 when nothing is past off (yet). */
int sp_logread_read(struct sp_logread *r, uint64_t off, char *buf, size_t max, size_t *n,
		    struct sp_error *err);
void sp_logread_close(struct sp_logread *r);

/* ---- jobrun.c: a job is a child `stagepipe run` (shared with the agent) -- */

struct sp_jobrun_opts {
	const char *exe;            /* the stagepipe binary */
	const char *repo_url;       /* what to clone (from the server config) */
	const char *ref;            /* full ref to fetch */
	const char *sha;            /* the exact commit */
	const char *pipeline;       /* pipeline file in the repository */
	const char *event;          /* push | tag | pull_request | manual */
	const char *event_ref;      /* the ref the on: rules see (branch/tag/PR target) */
	const char *job_label;      /* io.stagepipe.job of its containers ("srv-42") */
	const char *agent;          /* io.stagepipe.agent of its containers (may be NULL) */
	const char *docker_host;    /* the child's --docker-host (NULL: its environment's) */
	const char *runner_labels;  /* the child's --runner-labels "a,b" ("" none; NULL: not
				     * checked): a pipeline whose runs_on needs others exits 4 */
	const char *const *env;     /* extra "NAME=value" for the child (may be NULL) */
	const char *artifacts_dir;  /* the child's --artifacts (NULL: none) */
	unsigned long long artifacts_max_bytes;  /* its --artifacts-max-bytes (0: default) */
	long timeout_ms;            /* SIGTERM, then SIGKILL 10 s later; 0: none */
	/* Polled about every 100 ms; non-zero: SIGTERM to the child (it removes its
	 * containers and exits 130), SIGKILL after 30 s. */
	int (*cancel)(void *ud);
	/* Every stdout line (a JSON event), without its newline. */
	void (*on_line)(void *ud, const char *line, size_t len);
	/* A promote_request: answer *granted (and a reason when refused). */
	void (*on_promote)(void *ud, const char *stage, bool *granted, char *reason,
			   size_t reason_len);
	void *ud;
};

struct sp_jobrun_result {
	int exit_code;              /* -1 when killed */
	int term_signal;
	bool timed_out, cancelled;
	char stderr_tail[2048];     /* the last lines of the child's stderr */
	double seconds;
};

int sp_jobrun(const struct sp_jobrun_opts *o, struct sp_jobrun_result *res,
	      struct sp_error *err);

/*
 * The job's final state from how its child ended (the same rule for the
 * server's workers and for agents): exit 0 → passed (skipped when
 * summary, the pipeline_finished event, says so), 1 → failed, 2 → failed
 * with the pipeline file's FILE:LINE:COL line, 3 → error, 4 → queued (the
 * runner lacks a runs_on label: the caller gives the job back with the
 * labels of the runner_mismatch event, sp_store_relabel), 130 or killed
 * after a cancel (asked_cancel) → cancelled, timed out → failed, killed
 * otherwise or another status → error.  reason gets one line (may stay
 * "": a cancel keeps the store's own reason).  summary may be NULL.
 */
enum sp_job_state sp_jobrun_decide(const struct sp_jobrun_result *res, const cJSON *summary,
				   long timeout_ms, bool asked_cancel, char *reason,
				   size_t len);

/* ---- jobevents.c: a job's event lines into the store and its logs ----- */

/*
 * Applies one event line of job (fenced by epoch): stage_started and
 * stage_finished update stage rows, log lines go to the job's log files,
 * pipeline_finished is remembered for the finish.  Unknown events and
 * lines that are not JSON are ignored (logged at debug).  SP_ECONFLICT when
 * the epoch is stale.
 */
struct sp_jobevents;
struct sp_jobevents *sp_jobevents_new(struct sp_server *srv, int64_t job, int64_t epoch,
				      struct sp_joblog *log);
int sp_jobevents_line(struct sp_jobevents *je, const char *line, size_t len,
		      struct sp_error *err);
/* The pipeline_finished event seen (borrowed), or NULL. */
const cJSON *sp_jobevents_summary(const struct sp_jobevents *je);
/* The labels of a runner_mismatch event seen ("a,b", borrowed), or NULL. */
const char *sp_jobevents_runs_on(const struct sp_jobevents *je);
void sp_jobevents_free(struct sp_jobevents *je);

/* ---- worker.c: local slots and the lease keeper -------------------------- */

int sp_workers_start(struct sp_workers **out, struct sp_server *srv, struct sp_error *err);
/* A job was queued: wake an idle slot. */
void sp_workers_wake(struct sp_workers *w);
/* A cancel was asked for job (API, superseded): the slot running it, if
 * any, renews its lease at once and so learns it within ~100 ms. */
void sp_workers_poke(struct sp_workers *w, int64_t job);
/* Jobs running now. */
int sp_workers_busy(struct sp_workers *w);
/*
 * Stops leasing, waits up to timeout_ms for running jobs to finish, then
 * cancels the rest and gives them back to the queue (requeue).  Returns
 * when every slot has stopped.
 */
void sp_workers_drain(struct sp_workers *w, long timeout_ms);
/* Cancels running jobs at once (second signal). */
void sp_workers_force(struct sp_workers *w);
void sp_workers_free(struct sp_workers *w);

/* ---- agents.c: remote agents (docs/agent-protocol.md) -------------------- */

/* Made before the HTTP daemons start, freed after they stop. */
int sp_agents_new(struct sp_agents **out, struct sp_server *srv, struct sp_error *err);
/* A job was queued or put back: every waiting long-poll looks again. */
void sp_agents_wake(struct sp_agents *a);
/* Configured agents, and those seen within the last 60 s (for /metrics). */
void sp_agents_counts(struct sp_agents *a, int *configured, int *online);
void sp_agents_free(struct sp_agents *a);

/*
 * A job was queued (hook, API trigger, retry) or put back (lease keeper):
 * wakes an idle local slot and every agent long-poll.  Either part may be
 * NULL.  (worker.c)
 */
void sp_server_queued(struct sp_server *srv);

/* ---- outbox.c: commit statuses ------------------------------------------ */

int sp_outbox_start(struct sp_outbox **out, struct sp_server *srv, struct sp_error *err);
void sp_outbox_wake(struct sp_outbox *o);
/* Sends what is due (up to timeout_ms), then stops the thread. */
void sp_outbox_stop(struct sp_outbox *o, long timeout_ms);
void sp_outbox_free(struct sp_outbox *o);

/* ---- http.c -------------------------------------------------------------- */

int sp_http_start(struct sp_http **out, struct sp_server *srv, struct sp_error *err);
/* Stops accepting; open SSE streams end. */
void sp_http_stop(struct sp_http *h);
void sp_http_free(struct sp_http *h);

#endif
