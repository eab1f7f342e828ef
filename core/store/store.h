/*
 * store.h — the build server's durable job store, behind an ops table.
 *
 * One interface, one file per backend: sqlite.c today (the embedded
 * default), postgres.c later.  Everything the server and its workers
 * remember goes through here: deliveries (for dedupe), jobs and their
 * leases, stage rows, and the commit-status outbox.  Logs: with SQLite
 * they are files under DATA/logs/<job>/<stage>.log (core/server/logs.c);
 * with PostgreSQL they are chunks in the store (sp_store_log_append), so
 * that every server sharing it reads them.
 *
 * Durability: a call that writes returns only after its transaction is
 * committed to disk (SQLite: WAL, synchronous=FULL).  Writes from many
 * threads are handed to one writer thread, which commits everything
 * pending in one transaction (group commit: one fsync for a batch) and
 * then wakes each caller with its own result.  Each request runs in its
 * own savepoint, so one failing request never undoes another's.
 * Reads use their own connections and never wait for the writer.
 *
 * Threads: every function may be called from any thread once
 * sp_store_open has returned, until sp_store_close.
 *
 * Ownership: strings in the argument structs are borrowed for the call;
 * results (structs with char *, cJSON trees) are owned by the caller and
 * released with the matching *_release function or cJSON_Delete.
 *
 * Errors: 0 or a negative SP_E* with err filled.  SP_ECONFLICT (error.h)
 * is "your epoch is not the job's current one" (the HTTP layer makes it
 * 409); SP_ENOTFOUND an unknown job; SP_EENGINE the database itself
 * failed (disk full, I/O error, corrupt file): the HTTP layer makes it 503.
 */
#ifndef SP_STORE_H
#define SP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct sp_error;

/*
 * A store whose file system has less than this left refuses every write
 * as if the disk were full (SP_EENGINE, sp_store_last_write says full):
 * 1 MiB, a few group commits' worth of WAL.
 */
#define SP_STORE_MIN_FREE (1024 * 1024)

enum sp_job_state {
	SP_JOB_QUEUED,
	SP_JOB_RUNNING,
	SP_JOB_PASSED,
	SP_JOB_FAILED,     /* a stage failed (tests, gates, build) */
	SP_JOB_ERROR,      /* infrastructure: engine, checkout, worker lost too often */
	SP_JOB_CANCELLED,
	SP_JOB_SKIPPED,    /* the pipeline's on: rules do not build this event */
};
#define SP_JOB_NSTATES 7

/* "queued", "running", ... ; never NULL. */
const char *sp_job_state_name(enum sp_job_state s);
/* -1 when name is not a state. */
int sp_job_state_parse(const char *name);
bool sp_job_state_final(enum sp_job_state s);

/* What a trigger (webhook, API, retry) asks to build.  All borrowed. */
struct sp_job_spec {
	const char *repo;      /* repository name from the server config (required) */
	const char *event;     /* "push", "tag", "pull_request", "manual" (required) */
	const char *ref;       /* full ref to fetch: refs/heads/main, refs/tags/v1,
				* refs/pull/12/head, refs/merge-requests/3/head (required) */
	const char *branch;    /* push: the branch; pull_request: the target branch; else NULL */
	const char *tag;       /* tag: the tag name; else NULL */
	const char *sha;       /* 40 hex (required) */
	int pr;                /* pull/merge request number, else 0 */
	const char *title;     /* first line of the commit message (may be NULL) */
	const char *author;    /* commit author (may be NULL) */
	const char *sender;    /* who triggered it (may be NULL) */
	const char *labels;    /* required agent labels, "a,b" (may be NULL) */
	int64_t retry_of;      /* the job this one retries, else 0 */
	/*
	 * Cancel the queued and running jobs of older commits of the same
	 * repository and supersede key (branch for a push, "pr:N" for a pull
	 * request; nothing for tags and manual jobs), in the same transaction.
	 */
	bool supersede;
	/*
	 * Write commit-status outbox rows for this job (ingest: "stagepipe"
	 * pending; lease: running; each finished stage: "stagepipe/<stage>";
	 * finish: the final state).  False: no outbox row is ever written
	 * for it (the repository sends no statuses).  Stored with the job.
	 */
	bool statuses;
};

/* One webhook delivery, for dedupe.  All borrowed. */
struct sp_delivery {
	const char *repo;      /* required */
	const char *id;        /* the forge's delivery id (required; unique per repo) */
	const char *forge;     /* "github", "gitea", "gitlab" */
	const char *event;     /* the forge's event name as sent ("push", "Push Hook", ...) */
	const char *outcome;   /* "job", "ignored: ping", "ignored: branch deleted", ... */
};

struct sp_ingest_result {
	int64_t job_id;        /* the new (or, for a duplicate, the first) job; 0 if none */
	bool duplicate;        /* this delivery id was seen before; nothing was written */
	int64_t superseded[16];/* jobs this one cancelled (at most 16 listed) */
	size_t nsuperseded;
};

/* A claimed job: what a worker or agent needs to run it. */
struct sp_lease {
	int64_t job_id;
	int64_t epoch;         /* this lease's epoch: every later write carries it */
	int attempt;           /* 1 for the first lease of the job */
	char *repo, *event, *ref, *branch, *tag, *sha;   /* branch/tag may be NULL */
	int pr;
};

struct sp_lease_req {
	const char *agent;     /* "local-1" for the server's own workers, else the agent's name */
	const char *labels;    /* the agent's labels "a,b" (a job's labels must all be here) */
	int ttl_ms;            /* lease lifetime; renewed by every event batch */
};

/* A stage row, as the job's events tell it.  All borrowed. */
struct sp_stage_update {
	const char *name;
	int pos;               /* index in the pipeline's run order */
	const char *state;     /* "pending", "running", "passed", "failed", "skipped",
				* "cancelled", "error" */
	double seconds;        /* 0 until finished */
	const cJSON *report;   /* the stage_finished event as sent (may be NULL); stored
				* as JSON text, returned in job detail */
};

struct sp_finish {
	enum sp_job_state state;   /* a final state */
	const char *reason;        /* one line, may be NULL */
	int exit_code;             /* the child's exit status, -1 unknown */
	const cJSON *summary;      /* pipeline_finished event (may be NULL) */
	const char *pipeline;      /* the pipeline's name (may be NULL) */
};

/* Filters for listing jobs; NULL/0 fields do not filter. */
struct sp_job_filter {
	const char *repo;
	const char *state;     /* a state name */
	const char *ref;       /* a full ref, or a branch name (matches branch too) */
	int64_t before;        /* cursor: only jobs with id < before */
	int limit;             /* 1..200; 0 means 50 */
};

/* Generic commit-status states; forge/status.c maps them per forge. */
enum sp_status_state {
	SP_STATUS_PENDING,     /* queued */
	SP_STATUS_RUNNING,
	SP_STATUS_SUCCESS,
	SP_STATUS_FAILURE,
	SP_STATUS_ERROR,
	SP_STATUS_CANCELLED,
};
const char *sp_status_state_name(enum sp_status_state s);

/* One outbox row, returned by outbox_next; owned by the caller. */
struct sp_status_row {
	int64_t id;
	int64_t job_id;
	char *repo, *sha, *context, *description;
	enum sp_status_state state;
	int attempts;
};

struct sp_store_counts {
	int64_t jobs[SP_JOB_NSTATES];  /* by state */
	int64_t outbox_pending;        /* rows not yet sent */
	int64_t outbox_failing;        /* rows with at least one failed attempt */
	int64_t deliveries;
};

struct sp_store;

/*
 * The backend's table.  sp_store_* below call through it; a backend
 * fills every entry.
 */
struct sp_store_ops {
	const char *name;  /* "sqlite" */
	void (*close)(struct sp_store *st);

	int (*ingest)(struct sp_store *st, const struct sp_delivery *d,
		      const struct sp_job_spec *job, struct sp_ingest_result *out,
		      struct sp_error *err);
	int (*job_create)(struct sp_store *st, const struct sp_job_spec *job,
			  struct sp_ingest_result *out, struct sp_error *err);
	int (*lease)(struct sp_store *st, const struct sp_lease_req *req,
		     struct sp_lease *out, struct sp_error *err);
	int (*renew)(struct sp_store *st, int64_t job, int64_t epoch, int ttl_ms,
		     bool *cancel, struct sp_error *err);
	int (*stage)(struct sp_store *st, int64_t job, int64_t epoch,
		     const struct sp_stage_update *u, struct sp_error *err);
	int (*promote)(struct sp_store *st, int64_t job, int64_t epoch, bool *granted,
		       char *reason, size_t reason_len, struct sp_error *err);
	int (*finish)(struct sp_store *st, int64_t job, int64_t epoch,
		      const struct sp_finish *f, struct sp_error *err);
	int (*expire)(struct sp_store *st, int max_attempts, int *requeued, int *failed,
		      struct sp_error *err);
	int (*cancel)(struct sp_store *st, int64_t job, const char *reason,
		      enum sp_job_state *state_after, struct sp_error *err);
	int (*requeue)(struct sp_store *st, int64_t job, int64_t epoch, const char *reason,
		       int max_attempts, struct sp_error *err);
	int (*relabel)(struct sp_store *st, int64_t job, int64_t epoch, const char *labels,
		       const char *reason, struct sp_error *err);

	int (*job_get)(struct sp_store *st, int64_t job, cJSON **out, struct sp_error *err);
	int (*job_list)(struct sp_store *st, const struct sp_job_filter *f, cJSON **out,
			struct sp_error *err);
	int (*delivery_count)(struct sp_store *st, const char *repo, int64_t *n,
			      struct sp_error *err);
	int (*branches)(struct sp_store *st, const char *repo, const char *branch, int limit,
			cJSON **out, struct sp_error *err);
	int (*job_changes)(struct sp_store *st, int64_t since, int64_t *ids, size_t max,
			   size_t *n, int64_t *last, struct sp_error *err);

	int (*outbox_next)(struct sp_store *st, int max, struct sp_status_row **rows,
			   size_t *n, struct sp_error *err);
	int (*outbox_done)(struct sp_store *st, int64_t id, bool ok, const char *error,
			   int retry_in_ms, struct sp_error *err);

	int (*counts)(struct sp_store *st, struct sp_store_counts *out, struct sp_error *err);
	int (*ping)(struct sp_store *st, struct sp_error *err);
	int (*last_write)(struct sp_store *st, bool *disk_full, struct sp_error *err);
	/* optional (NULL: one process, nothing to hear): see sp_store_listen */
	int (*listen)(struct sp_store *st, void (*fn)(void *arg), void *arg,
		      struct sp_error *err);
	/* optional, all three or none (NULL: logs are files): see sp_store_log_append */
	int (*log_append)(struct sp_store *st, int64_t job, const char *stage, const void *data,
			  size_t len, int64_t *off, struct sp_error *err);
	int (*log_size)(struct sp_store *st, int64_t job, const char *stage, int64_t *size,
			struct sp_error *err);
	int (*log_read)(struct sp_store *st, int64_t job, const char *stage, int64_t from,
			void *buf, size_t max, size_t *n, struct sp_error *err);
};

struct sp_store {
	const struct sp_store_ops *ops;
	/* the backend's state follows (each backend embeds this first) */
};

struct sp_store_opts {
	const char *path;        /* SQLite: the database file (created with its folder) */
	const char *url;         /* PostgreSQL: a libpq URL (postgres://user:pw@host/db)
				  * or key=value string; may hold a password (never
				  * printed: see sp_store_pg_mask_url) */
	int batch_max;           /* group commit: at most this many requests a transaction
				  * (0: 512) */
};

/*
 * Opens (creating and migrating) the SQLite store.  *out is the new store;
 * close it with sp_store_close.  Migrations are numbered and run in one
 * transaction each; a database newer than this binary is refused.
 */
int sp_store_open_sqlite(struct sp_store **out, const struct sp_store_opts *o,
			 struct sp_error *err);
/*
 * Opens (creating and migrating) the PostgreSQL store at o->url
 * (postgres.c): the same schema, migrations and behaviour, for several
 * servers sharing one database.  Migrations run under an advisory lock, so
 * servers starting together migrate once.  SP_EENGINE when the server
 * cannot be reached; SP_ECONFIG for a database newer than this binary.
 */
int sp_store_open_postgres(struct sp_store **out, const struct sp_store_opts *o,
			   struct sp_error *err);
/* o->url set: PostgreSQL; else SQLite at o->path. */
int sp_store_open(struct sp_store **out, const struct sp_store_opts *o, struct sp_error *err);
/*
 * url with its password hidden ("postgres://ci:***@db/ci", "password=***"),
 * into out (always terminated): what logs and errors show.
 */
void sp_store_pg_mask_url(const char *url, char *out, size_t len);
/* What sp_store_copy copied. */
struct sp_store_copy_stats {
	int64_t jobs, deliveries, stages, outbox;
	int64_t logs, log_bytes;   /* log files of the data folder, and their bytes */
};
/*
 * The upgrade from SQLite (copy.c): every job, delivery, stage and outbox
 * row of the SQLite store at sqlite_path into the PostgreSQL store at
 * pg_url, ids and revs kept, in one transaction; both are migrated to
 * this binary's schema first.  The target must hold no job and no
 * delivery (SP_ECONFIG).  The log files of the copied jobs (the data
 * folder is the one of sqlite_path: DATA/logs/<job>/<stage>.log) go into
 * job_log in the same transaction, in chunks of about 64 KiB cut at line
 * ends.  Artifacts stay files in the data folder.
 */
int sp_store_copy(const char *sqlite_path, const char *pg_url, struct sp_store_copy_stats *out,
		  struct sp_error *err);
/* The schema version this binary writes. */
int sp_store_schema_version(void);

/*
 * For tests and debugging: what the SQLite store's writer has done since
 * open — transactions committed, and write requests handed to it (so
 * requests / commits is the group-commit batch size).  Zeros for a store
 * of another backend.
 */
struct sp_store_sqlite_stats {
	uint64_t commits;
	uint64_t requests;
};
void sp_store_sqlite_stats(struct sp_store *st, struct sp_store_sqlite_stats *out);
/* The same for a PostgreSQL store, and how many batches ran again after a
 * deadlock with another server or a request failing in the ingest pipeline
 * (retries may be NULL); zeros otherwise. */
void sp_store_pg_stats(struct sp_store *st, struct sp_store_sqlite_stats *out,
		       uint64_t *retries);

void sp_store_close(struct sp_store *st);

/*
 * Records a delivery and, when job is not NULL, its job — in one
 * transaction, returning after commit.  A delivery id already recorded for
 * the repo writes nothing: out->duplicate is set and out->job_id is the
 * first delivery's job (0 if it made none).  New jobs start `queued`, with
 * an outbox row (context "stagepipe", pending "queued").
 */
int sp_store_ingest(struct sp_store *st, const struct sp_delivery *d,
		    const struct sp_job_spec *job, struct sp_ingest_result *out,
		    struct sp_error *err);
/* A job without a delivery (API trigger, retry); as ingest otherwise. */
int sp_store_job_create(struct sp_store *st, const struct sp_job_spec *job,
			struct sp_ingest_result *out, struct sp_error *err);

/*
 * Claims the oldest queued job whose labels req->labels has: state
 * running, epoch + 1, attempt + 1, lease (agent, expires = now + ttl).
 * Returns 0 with out filled, or SP_ENOTFOUND when none is queued (out
 * untouched).  Release out with sp_lease_release.
 */
int sp_store_lease(struct sp_store *st, const struct sp_lease_req *req,
		   struct sp_lease *out, struct sp_error *err);
void sp_lease_release(struct sp_lease *l);

/*
 * Heartbeat: pushes the lease's expiry to now + ttl.  *cancel is set when
 * the job was asked to stop (API cancel, superseded).  SP_ECONFLICT when
 * epoch is stale or the job is no longer running.
 */
int sp_store_renew(struct sp_store *st, int64_t job, int64_t epoch, int ttl_ms,
		   bool *cancel, struct sp_error *err);
/* Inserts or updates the stage row (fenced by epoch, like every agent write);
 * a finished stage also adds an outbox row (context "stagepipe/<stage>"). */
int sp_store_stage(struct sp_store *st, int64_t job, int64_t epoch,
		   const struct sp_stage_update *u, struct sp_error *err);
/*
 * The promote permit: granted once per job, to the first current epoch
 * that asks (UPDATE ... WHERE epoch = :e AND promote_epoch IS NULL).
 * Later asks get *granted = false and the reason ("already promoted by
 * attempt 1").  SP_ECONFLICT for a stale epoch.  The epoch holding the
 * permit is granted again if it asks again (a retried request, or a
 * pipeline with several promoting stages).
 */
int sp_store_promote(struct sp_store *st, int64_t job, int64_t epoch, bool *granted,
		     char *reason, size_t reason_len, struct sp_error *err);
/* Ends the job (fenced); adds the final outbox row. */
int sp_store_finish(struct sp_store *st, int64_t job, int64_t epoch,
		    const struct sp_finish *f, struct sp_error *err);
/*
 * Takes back leases past their expiry: the job returns to queued (its
 * epoch moves on at the next lease) or, after max_attempts attempts, ends
 * `error` ("lost its worker N times").  Counts what it did.
 */
int sp_store_expire(struct sp_store *st, int max_attempts, int *requeued, int *failed,
		    struct sp_error *err);
/*
 * Cancel: a queued job ends `cancelled` at once; a running one is marked
 * (its next renew says cancel) and ends when its worker reports.  A
 * finished job is left as it is (*state_after tells).
 */
int sp_store_cancel(struct sp_store *st, int64_t job, const char *reason,
		    enum sp_job_state *state_after, struct sp_error *err);
/*
 * Gives a running job back to the queue (infrastructure failure of its
 * worker, a drained server): queued again, or `error` when it has had
 * max_attempts attempts.  Fenced by epoch.
 */
int sp_store_requeue(struct sp_store *st, int64_t job, int64_t epoch, const char *reason,
		     int max_attempts, struct sp_error *err);

/*
 * The job's pipeline wants a runner with labels its runner lacks (runs_on;
 * the child exited 4): the job goes back to the queue requiring labels
 * ("a,b"), and the attempt is not counted — it never started.  A job
 * asked to cancel ends cancelled instead.  Fenced by epoch.
 */
int sp_store_relabel(struct sp_store *st, int64_t job, int64_t epoch, const char *labels,
		     const char *reason, struct sp_error *err);

/*
 * Job detail as JSON: {id, repo, event, ref, branch, tag, sha, pr, title,
 * author, sender, state, reason, pipeline, created, started, finished
 * (RFC 3339 UTC or null), seconds, attempt, epoch, agent, promoted (bool),
 * exit_code, retry_of, summary (pipeline_finished event or null),
 * status: {pending, failing, last_error} (its outbox rows),
 * tests: {total, passed, failed} summed over the stages that reported
 * tests (failed counts errors too) or null, coverage: the lowest coverage
 * a stage reported or null, coverage_min: that stage's minimum or null,
 * rev (see sp_store_job_changes),
 * stages: [{name, pos, state, seconds, report}]}.  SP_ENOTFOUND.
 */
int sp_store_job_get(struct sp_store *st, int64_t job, cJSON **out, struct sp_error *err);
/* {jobs: [ ...as job_get without stages... ], next: cursor or null}, newest first. */
int sp_store_job_list(struct sp_store *st, const struct sp_job_filter *f, cJSON **out,
		      struct sp_error *err);
/* Deliveries recorded for repo (NULL: all). */
int sp_store_delivery_count(struct sp_store *st, const char *repo, int64_t *n,
			    struct sp_error *err);
/*
 * The newest job of each branch of repo (push and manual jobs; pull
 * requests and tags are not a branch's state): {branches: [job rows as
 * job_list's]}, newest first, at most limit (1..200; else 50).  With
 * branch given, only that branch's newest job (an empty array when it
 * has none); limit is then ignored.
 */
int sp_store_branches(struct sp_store *st, const char *repo, const char *branch, int limit,
		      cJSON **out, struct sp_error *err);
/*
 * What changed since a point: every job carries rev, a store-wide counter
 * moved to a new highest value when the job is created, changes state,
 * starts, finishes, is asked to cancel, or one of its stages changes state.
 * Fills ids (room for max) with the jobs whose rev > since, in rev order,
 * and *last with the rev of the last one listed (since when none; more
 * may follow: ask again from *last).  since < 0: no ids, *last is the
 * current highest rev (a starting point).
 */
int sp_store_job_changes(struct sp_store *st, int64_t since, int64_t *ids, size_t max,
			 size_t *n, int64_t *last, struct sp_error *err);

/*
 * Outbox: up to max rows due now, only the newest row per (repo, sha,
 * context) — older unsent ones for the same key are marked superseded and
 * never returned.  *rows is a new array (sp_status_rows_release).
 * Returned rows are claimed: they are not returned again for 60 s, unless
 * sp_store_outbox_done schedules them sooner.
 */
int sp_store_outbox_next(struct sp_store *st, int max, struct sp_status_row **rows,
			 size_t *n, struct sp_error *err);
void sp_status_rows_release(struct sp_status_row *rows, size_t n);
/* ok: sent.  Else the error is kept and the row is due again in retry_in_ms
 * (retry_in_ms < 0: give up on it). */
int sp_store_outbox_done(struct sp_store *st, int64_t id, bool ok, const char *error,
			 int retry_in_ms, struct sp_error *err);

int sp_store_counts(struct sp_store *st, struct sp_store_counts *out, struct sp_error *err);
/* A write that goes through the writer and commits (for /healthz). */
int sp_store_ping(struct sp_store *st, struct sp_error *err);
/*
 * How the last write transaction went, without touching the database:
 * 0 when it committed (or none was tried yet); SP_EENGINE with err saying
 * why when the database could not commit it (disk full, I/O error), with
 * *disk_full (may be NULL) set when the disk or file was full.  The next
 * write that commits (any call, e.g. sp_store_ping) makes it 0 again.  A
 * request refused for its own reasons (a stale epoch, an unknown job)
 * does not count as a failed write.
 */
int sp_store_last_write(struct sp_store *st, bool *disk_full, struct sp_error *err);

/*
 * Calls fn(arg), from a thread of the store's, whenever another process
 * sharing the store (another `serve` on the same PostgreSQL) queues a job
 * or puts one back: LISTEN/NOTIFY, so idle long-polls wake at once rather
 * than at their next look.  fn NULL stops it (before what fn uses is
 * freed; sp_store_close stops it too).  A backend with one process
 * (SQLite) does nothing and returns 0.
 */
int sp_store_listen(struct sp_store *st, void (*fn)(void *arg), void *arg,
		    struct sp_error *err);

/*
 * A job's logs in the store (PostgreSQL: table job_log; SQLite: none, the
 * logs are files, see core/server/logs.c).  A stage's log is a sequence
 * of chunks, each at its byte offset in the log; offsets run on without a
 * gap across attempts, whichever server appends.
 */
/* Whether this store keeps logs (the three calls below work). */
bool sp_store_has_logs(const struct sp_store *st);
/*
 * Appends data (whole lines; len > 0) to the log of job's stage as one
 * chunk, at the stage's current end (read in the same transaction), through
 * the writer (group commit); *off (may be NULL) is where it starts.  Not
 * fenced: an attempt's lines are kept even when its lease was taken back.
 * SP_EENGINE when it is not stored (e.g. another writer appended to the
 * same stage at the same moment).
 */
int sp_store_log_append(struct sp_store *st, int64_t job, const char *stage, const void *data,
			size_t len, int64_t *off, struct sp_error *err);
/* The stage's log size in bytes; SP_ENOTFOUND when it has none. */
int sp_store_log_size(struct sp_store *st, int64_t job, const char *stage, int64_t *size,
		      struct sp_error *err);
/*
 * Up to max bytes of the stage's log from byte from into buf, *n how many
 * (0: nothing past from yet, or no log).  Reads at most the chunks that
 * window touches.
 */
int sp_store_log_read(struct sp_store *st, int64_t job, const char *stage, int64_t from,
		      void *buf, size_t max, size_t *n, struct sp_error *err);

#endif
