/*
 * sqlite.c — the SQLite backend of the job store (see store.h).
 *
 * Design note.
 *
 * One database file in WAL mode with synchronous=FULL: a commit returns
 * after its fsync.  To make that affordable under load, every write goes
 * through ONE writer thread that owns the only read-write connection.  A
 * caller puts a request (its arguments borrowed, since it waits) on a
 * queue and sleeps on the request's own condition variable.  The writer
 * takes everything pending (up to batch_max) and runs it in one
 * BEGIN IMMEDIATE ... COMMIT, each request inside its own SAVEPOINT so
 * that a failing request is rolled back alone; after the COMMIT it wakes
 * each caller with its own result (group commit: one fsync a batch).  A
 * failed COMMIT fails every request of the batch with SP_EENGINE.  Results
 * that own memory (a lease's strings, outbox rows) are built in the
 * request and handed to the caller only when the batch committed.
 *
 * Reads (job_get, job_list, delivery_count, counts) use a small pool of
 * read-only connections, each used by one thread at a time; WAL lets them
 * read a committed snapshot while the writer writes.  outbox_next marks
 * rows (superseded, claimed), so it is a write and goes through the writer.
 *
 * Schema: numbered migrations (one SQL string each, run in its own
 * transaction), the version kept in PRAGMA user_version.  A file with a
 * newer version than this binary knows is refused.  Times are
 * milliseconds since the epoch (INTEGER); the JSON renders RFC 3339 UTC.
 *
 * A full disk (or an I/O error) fails the batch it happens in: every
 * request of it gets SP_EENGINE and nothing of it is kept, the writer
 * remembers that its last transaction failed (sp_store_last_write, for
 * /readyz), and the next batch simply tries again: once there is room,
 * writes commit as before, with no restart and nothing to repair.
 * "Full" starts at SP_STORE_MIN_FREE bytes left on the database's file
 * system, checked before each batch: on a truly full disk SQLite's
 * answer depends on whether the write fits in the WAL file's old frames
 * (a small one may commit, a larger one fail), and a server that said
 * 503 to a delivery must not call itself ready a moment later.
 *
 * Locking: one mutex (st->mu) guards the queue, the reader pool and the
 * counters; the writer holds it only to take a batch and to wake callers.
 * sp_store_close stops accepting requests, lets the writer drain the
 * queue, waits for every caller still inside the store to leave, then
 * frees everything.
 */
#include "core/store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"

#define BUSY_TIMEOUT_MS 5000     /* another process holding the file */
#define DEFAULT_BATCH_MAX 512
#define READERS_MAX 8
#define DEFAULT_TTL_MS 30000
#define DEFAULT_MAX_ATTEMPTS 3
#define OUTBOX_CLAIM_MS 60000    /* a returned outbox row is not returned again meanwhile */
#define CONTEXT_BASE "stagepipe"

/* ------------------------------------------------------------------ */
/* Schema                                                              */

/*
 * Migration i (0-based) brings the schema from version i to i + 1.  Never
 * edit one that has shipped: add a new one.
 */
static const char *const migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  repo TEXT NOT NULL,"
	"  event TEXT NOT NULL,"
	"  ref TEXT NOT NULL,"
	"  branch TEXT,"
	"  tag TEXT,"
	"  sha TEXT NOT NULL,"
	"  pr INTEGER NOT NULL DEFAULT 0,"
	"  title TEXT,"
	"  author TEXT,"
	"  sender TEXT,"
	"  labels TEXT,"
	"  supersede_key TEXT,"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running',"
	"    'passed', 'failed', 'error', 'cancelled', 'skipped')),"
	"  reason TEXT,"
	"  pipeline TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  epoch INTEGER NOT NULL DEFAULT 0,"
	"  attempt INTEGER NOT NULL DEFAULT 0,"
	"  agent TEXT,"
	"  lease_expires_at INTEGER,"
	"  cancel_requested INTEGER NOT NULL DEFAULT 0,"
	"  promote_epoch INTEGER,"
	"  promote_attempt INTEGER,"
	"  exit_code INTEGER,"
	"  retry_of INTEGER,"
	"  summary TEXT,"
	"  statuses INTEGER NOT NULL DEFAULT 1"
	");"
	"CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';"
	"CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';"
	"CREATE INDEX jobs_repo_state ON jobs (repo, state, id);"
	"CREATE INDEX jobs_state ON jobs (state, id);"
	"CREATE INDEX jobs_ref ON jobs (ref, id);"
	"CREATE INDEX jobs_branch ON jobs (branch, id);"
	"CREATE INDEX jobs_supersede ON jobs (repo, supersede_key)"
	"  WHERE state IN ('queued', 'running');"
	"CREATE TABLE deliveries ("
	"  repo TEXT NOT NULL,"
	"  id TEXT NOT NULL,"
	"  forge TEXT,"
	"  event TEXT,"
	"  outcome TEXT,"
	"  job_id INTEGER REFERENCES jobs (id),"
	"  received_at INTEGER NOT NULL,"
	"  UNIQUE (repo, id)"
	");"
	"CREATE TABLE stages ("
	"  job_id INTEGER NOT NULL REFERENCES jobs (id),"
	"  name TEXT NOT NULL,"
	"  pos INTEGER NOT NULL,"
	"  state TEXT NOT NULL,"
	"  seconds REAL NOT NULL DEFAULT 0,"
	"  report TEXT,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (job_id, name)"
	") WITHOUT ROWID;"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES jobs (id),"
	"  repo TEXT NOT NULL,"
	"  sha TEXT NOT NULL,"
	"  context TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  description TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  due_at INTEGER,"              /* NULL: given up */
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT,"
	"  sent_at INTEGER,"
	"  superseded INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX outbox_due ON outbox (due_at) WHERE sent_at IS NULL AND superseded = 0;"
	"CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND superseded = 0;"
	"CREATE INDEX outbox_key ON outbox (repo, sha, context, id);"
	"CREATE INDEX outbox_job ON outbox (job_id);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;",

	/*
	 * 2: for the web UI.  jobs.rev: a store-wide change counter, set by
	 * triggers to max(rev) + 1 whenever a job is created, changes state,
	 * starts, finishes, is asked to cancel, or one of its stages changes
	 * state — so a reader finds what changed since rev N with one indexed
	 * query (job_changes), from any process.  Stage rows keep their test
	 * counts and coverage as columns (from the report, at sp_store_stage
	 * time), so a job row can carry its totals without parsing reports.
	 * jobs_branch_last serves "the last job of each branch" (branches).
	 */
	"ALTER TABLE jobs ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;"
	"UPDATE jobs SET rev = id;"
	"CREATE INDEX jobs_rev ON jobs (rev);"
	"CREATE INDEX jobs_branch_last ON jobs (repo, branch, id)"
	"  WHERE event IN ('push', 'manual') AND branch IS NOT NULL;"
	"CREATE TRIGGER jobs_rev_insert AFTER INSERT ON jobs BEGIN"
	"  UPDATE jobs SET rev = (SELECT max(rev) FROM jobs) + 1 WHERE id = NEW.id;"
	" END;"
	"CREATE TRIGGER jobs_rev_update AFTER UPDATE OF state, started_at, finished_at,"
	"  cancel_requested, attempt, agent ON jobs BEGIN"
	"  UPDATE jobs SET rev = (SELECT max(rev) FROM jobs) + 1 WHERE id = NEW.id;"
	" END;"
	"ALTER TABLE stages ADD COLUMN tests_total INTEGER;"
	"ALTER TABLE stages ADD COLUMN tests_passed INTEGER;"
	"ALTER TABLE stages ADD COLUMN tests_failed INTEGER;"  /* failed + errors */
	"ALTER TABLE stages ADD COLUMN coverage REAL;"
	"ALTER TABLE stages ADD COLUMN coverage_min REAL;"
	"UPDATE stages SET"
	"  tests_total = json_extract(report, '$.tests.total'),"
	"  tests_passed = json_extract(report, '$.tests.passed'),"
	"  tests_failed = coalesce(json_extract(report, '$.tests.failed'), 0)"
	"    + coalesce(json_extract(report, '$.tests.errors'), 0),"
	"  coverage = json_extract(report, '$.coverage'),"
	"  coverage_min = json_extract(report, '$.coverage_min')"
	"  WHERE report IS NOT NULL AND json_valid(report);"
	"UPDATE stages SET tests_failed = NULL WHERE tests_total IS NULL;"
	"CREATE TRIGGER stages_rev_insert AFTER INSERT ON stages BEGIN"
	"  UPDATE jobs SET rev = (SELECT max(rev) FROM jobs) + 1 WHERE id = NEW.job_id;"
	" END;"
	"CREATE TRIGGER stages_rev_update AFTER UPDATE OF state ON stages BEGIN"
	"  UPDATE jobs SET rev = (SELECT max(rev) FROM jobs) + 1 WHERE id = NEW.job_id;"
	" END;",
	/* 3: nothing here: PostgreSQL's job_log (logs in the store); with
	 * SQLite a job's logs stay files (core/server/logs.c).  Kept so that
	 * both backends count the same versions. */
	"SELECT 1;",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int sp_store_schema_version(void)
{
	return NMIGRATIONS;
}

/* ------------------------------------------------------------------ */
/* Statements of the writer connection, prepared once at open          */

enum wsql {
	W_BEGIN,
	W_COMMIT,
	W_ROLLBACK,
	W_SAVEPOINT,
	W_RELEASE,
	W_ROLLBACK_TO,
	W_DELIVERY_FIND,
	W_DELIVERY_ADD,
	W_JOB_ADD,
	W_SUPERSEDE_FIND,
	W_JOB_END,
	W_JOB_MARK_CANCEL,
	W_JOB_BACK,
	W_JOB_RELABEL,
	W_JOB_FENCE,
	W_JOB_PEEK,
	W_OUTBOX_ADD,
	W_LEASE_SCAN,
	W_LEASE_TAKE,
	W_RENEW,
	W_STAGE_PUT,
	W_PROMOTE,
	W_FINISH,
	W_STAGES_CLOSE,
	W_EXPIRE_SCAN,
	W_OUTBOX_SUPERSEDE,
	W_OUTBOX_DUE,
	W_OUTBOX_CLAIM,
	W_OUTBOX_SENT,
	W_OUTBOX_FAILED,
	W_PING,
	W_COUNT
};

static const char *const wsql_text[W_COUNT] = {
	[W_BEGIN] = "BEGIN IMMEDIATE",
	[W_COMMIT] = "COMMIT",
	[W_ROLLBACK] = "ROLLBACK",
	[W_SAVEPOINT] = "SAVEPOINT req",
	[W_RELEASE] = "RELEASE req",
	[W_ROLLBACK_TO] = "ROLLBACK TO req",
	[W_DELIVERY_FIND] = "SELECT job_id FROM deliveries WHERE repo = ?1 AND id = ?2",
	[W_DELIVERY_ADD] =
		"INSERT INTO deliveries (repo, id, forge, event, outcome, job_id, received_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[W_JOB_ADD] =
		"INSERT INTO jobs (repo, event, ref, branch, tag, sha, pr, title, author,"
		" sender, labels, supersede_key, state, created_at, retry_of, statuses)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'queued', ?13,"
		" ?14, ?15)",
	[W_SUPERSEDE_FIND] =
		"SELECT id, state FROM jobs WHERE repo = ?1 AND supersede_key = ?2"
		" AND state IN ('queued', 'running') AND id < ?3 AND sha <> ?4"
		" AND cancel_requested = 0 ORDER BY id",
	[W_JOB_END] =
		"UPDATE jobs SET state = ?2, reason = coalesce(?3, reason), finished_at = ?4,"
		" lease_expires_at = NULL WHERE id = ?1 RETURNING repo, sha, statuses",
	[W_JOB_MARK_CANCEL] =
		"UPDATE jobs SET cancel_requested = 1, reason = coalesce(?2, reason) WHERE id = ?1",
	[W_JOB_BACK] =
		"UPDATE jobs SET state = 'queued', reason = ?2, agent = NULL,"
		" lease_expires_at = NULL WHERE id = ?1 RETURNING repo, sha, statuses",
	[W_JOB_RELABEL] =
		"UPDATE jobs SET labels = ?2, attempt = max(attempt - 1, 0) WHERE id = ?1",
	[W_JOB_FENCE] =
		"SELECT repo, sha, statuses, attempt, cancel_requested FROM jobs"
		" WHERE id = ?1 AND epoch = ?2 AND state = 'running'",
	[W_JOB_PEEK] =
		"SELECT state, epoch, promote_epoch, promote_attempt, repo, sha, statuses,"
		" cancel_requested FROM jobs WHERE id = ?1",
	[W_OUTBOX_ADD] =
		"INSERT INTO outbox (job_id, repo, sha, context, state, description,"
		" created_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
	[W_LEASE_SCAN] = "SELECT id, labels FROM jobs WHERE state = 'queued' ORDER BY id",
	[W_LEASE_TAKE] =
		"UPDATE jobs SET state = 'running', epoch = epoch + 1, attempt = attempt + 1,"
		" agent = ?2, lease_expires_at = ?3, started_at = ?4"
		" WHERE id = ?1 AND state = 'queued'"
		" RETURNING epoch, attempt, repo, event, ref, branch, tag, sha, pr, statuses",
	[W_RENEW] =
		"UPDATE jobs SET lease_expires_at = ?3 WHERE id = ?1 AND epoch = ?2"
		" AND state = 'running' RETURNING cancel_requested",
	[W_STAGE_PUT] =
		"INSERT INTO stages (job_id, name, pos, state, seconds, report, updated_at,"
		" tests_total, tests_passed, tests_failed, coverage, coverage_min)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
		" ON CONFLICT (job_id, name) DO UPDATE SET pos = excluded.pos,"
		" state = excluded.state, seconds = excluded.seconds,"
		" report = coalesce(excluded.report, stages.report),"
		" updated_at = excluded.updated_at,"
		/* a new report replaces the numbers of the old one; none keeps them */
		" tests_total = CASE WHEN excluded.report IS NULL THEN stages.tests_total"
		"  ELSE excluded.tests_total END,"
		" tests_passed = CASE WHEN excluded.report IS NULL THEN stages.tests_passed"
		"  ELSE excluded.tests_passed END,"
		" tests_failed = CASE WHEN excluded.report IS NULL THEN stages.tests_failed"
		"  ELSE excluded.tests_failed END,"
		" coverage = CASE WHEN excluded.report IS NULL THEN stages.coverage"
		"  ELSE excluded.coverage END,"
		" coverage_min = CASE WHEN excluded.report IS NULL THEN stages.coverage_min"
		"  ELSE excluded.coverage_min END",
	[W_PROMOTE] =
		"UPDATE jobs SET promote_epoch = ?2, promote_attempt = attempt"
		" WHERE id = ?1 AND epoch = ?2 AND state = 'running' AND promote_epoch IS NULL"
		" AND cancel_requested = 0",
	[W_FINISH] =
		"UPDATE jobs SET state = ?3,"
		" reason = CASE WHEN ?4 IS NOT NULL THEN ?4 WHEN ?3 = 'cancelled' THEN reason END,"
		" exit_code = ?5, summary = ?6, pipeline = coalesce(?7, pipeline),"
		" finished_at = ?8, lease_expires_at = NULL"
		" WHERE id = ?1 AND epoch = ?2 AND state = 'running'"
		" RETURNING repo, sha, statuses",
	[W_STAGES_CLOSE] =
		"UPDATE stages SET state = CASE WHEN state = 'running' THEN ?2 ELSE 'skipped' END,"
		" updated_at = ?3 WHERE job_id = ?1 AND state IN ('running', 'pending')",
	[W_EXPIRE_SCAN] =
		"SELECT id, attempt, cancel_requested FROM jobs"
		" WHERE state = 'running' AND lease_expires_at < ?1 ORDER BY id",
	[W_OUTBOX_SUPERSEDE] =
		"UPDATE outbox SET superseded = 1 WHERE sent_at IS NULL AND superseded = 0"
		" AND EXISTS (SELECT 1 FROM outbox n WHERE n.repo = outbox.repo"
		" AND n.sha = outbox.sha AND n.context = outbox.context AND n.id > outbox.id)",
	[W_OUTBOX_DUE] =
		"SELECT id, job_id, repo, sha, context, state, description, attempts FROM outbox"
		" WHERE sent_at IS NULL AND superseded = 0 AND due_at <= ?1"
		" ORDER BY due_at, id LIMIT ?2",
	[W_OUTBOX_CLAIM] = "UPDATE outbox SET due_at = ?2 WHERE id = ?1",
	[W_OUTBOX_SENT] =
		"UPDATE outbox SET sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
	[W_OUTBOX_FAILED] =
		"UPDATE outbox SET attempts = attempts + 1, last_error = ?2, due_at = ?3"
		" WHERE id = ?1",
	[W_PING] =
		"INSERT INTO meta (key, value) VALUES ('ping', ?1)"
		" ON CONFLICT (key) DO UPDATE SET value = excluded.value",
};

/* ------------------------------------------------------------------ */
/* Statements of the reader connections, prepared on first use          */

/* The job columns every job_get/job_list row has, in this order. */
#define JOB_COLS \
	"j.id, j.repo, j.event, j.ref, j.branch, j.tag, j.sha, j.pr, j.title, j.author," \
	" j.sender, j.labels, j.state, j.reason, j.pipeline, j.created_at, j.started_at," \
	" j.finished_at, j.attempt, j.epoch, j.agent, j.promote_epoch, j.exit_code," \
	" j.retry_of, j.summary, j.cancel_requested, j.statuses," \
	" (SELECT count(*) FROM outbox o WHERE o.job_id = j.id AND o.sent_at IS NULL" \
	"  AND o.superseded = 0 AND o.due_at IS NOT NULL)," \
	" (SELECT count(*) FROM outbox o WHERE o.job_id = j.id AND o.sent_at IS NULL" \
	"  AND o.superseded = 0 AND o.attempts > 0)," \
	" (SELECT o.last_error FROM outbox o WHERE o.job_id = j.id AND o.sent_at IS NULL" \
	"  AND o.superseded = 0 AND o.last_error IS NOT NULL ORDER BY o.id DESC LIMIT 1)," \
	" (SELECT sum(s.tests_total) FROM stages s WHERE s.job_id = j.id)," \
	" (SELECT sum(s.tests_passed) FROM stages s WHERE s.job_id = j.id)," \
	" (SELECT sum(s.tests_failed) FROM stages s WHERE s.job_id = j.id)," \
	" (SELECT s.coverage FROM stages s WHERE s.job_id = j.id AND s.coverage IS NOT NULL" \
	"  ORDER BY s.coverage, s.pos LIMIT 1)," \
	" (SELECT s.coverage_min FROM stages s WHERE s.job_id = j.id" \
	"  AND s.coverage IS NOT NULL ORDER BY s.coverage, s.pos LIMIT 1)," \
	" j.rev"

enum jcol {
	JC_ID, JC_REPO, JC_EVENT, JC_REF, JC_BRANCH, JC_TAG, JC_SHA, JC_PR, JC_TITLE,
	JC_AUTHOR, JC_SENDER, JC_LABELS, JC_STATE, JC_REASON, JC_PIPELINE, JC_CREATED,
	JC_STARTED, JC_FINISHED, JC_ATTEMPT, JC_EPOCH, JC_AGENT, JC_PROMOTE_EPOCH,
	JC_EXIT_CODE, JC_RETRY_OF, JC_SUMMARY, JC_CANCEL, JC_STATUSES, JC_ST_PENDING,
	JC_ST_FAILING, JC_ST_LAST_ERROR, JC_TESTS_TOTAL, JC_TESTS_PASSED, JC_TESTS_FAILED,
	JC_COVERAGE, JC_COVERAGE_MIN, JC_REV
};

enum rsql {
	R_JOB_GET,
	R_STAGES,
	R_DELIVERIES_ALL,
	R_DELIVERIES_REPO,
	R_JOB_COUNTS,
	R_OUTBOX_COUNTS,
	R_BRANCHES,
	R_BRANCH_LAST,
	R_REV_MAX,
	R_CHANGES,
	R_COUNT
};

static const char *const rsql_text[R_COUNT] = {
	[R_JOB_GET] = "SELECT " JOB_COLS " FROM jobs j WHERE j.id = ?1",
	[R_STAGES] =
		"SELECT name, pos, state, seconds, report FROM stages WHERE job_id = ?1"
		" ORDER BY pos, name",
	[R_DELIVERIES_ALL] = "SELECT count(*) FROM deliveries",
	[R_DELIVERIES_REPO] = "SELECT count(*) FROM deliveries WHERE repo = ?1",
	[R_JOB_COUNTS] = "SELECT state, count(*) FROM jobs GROUP BY state",
	[R_OUTBOX_COUNTS] =
		"SELECT coalesce(sum(due_at IS NOT NULL), 0), coalesce(sum(attempts > 0), 0)"
		" FROM outbox WHERE sent_at IS NULL AND superseded = 0",
	/* the newest job of each branch (push and manual), newest first */
	[R_BRANCHES] =
		"SELECT " JOB_COLS " FROM jobs j WHERE j.id IN (SELECT max(b.id) FROM jobs b"
		"  WHERE b.repo = ?1 AND b.event IN ('push', 'manual') AND b.branch IS NOT NULL"
		"  GROUP BY b.branch) ORDER BY j.id DESC LIMIT ?2",
	[R_BRANCH_LAST] =
		"SELECT " JOB_COLS " FROM jobs j WHERE j.repo = ?1 AND j.branch = ?2"
		" AND j.event IN ('push', 'manual') ORDER BY j.id DESC LIMIT 1",
	[R_REV_MAX] = "SELECT coalesce(max(rev), 0) FROM jobs",
	[R_CHANGES] = "SELECT id, rev FROM jobs WHERE rev > ?1 ORDER BY rev LIMIT ?2",
};

/* job_list's filters: one cached statement per combination. */
enum { LF_REPO = 1, LF_STATE = 2, LF_REF = 4, LF_BEFORE = 8, LF_COMBOS = 16 };

struct rconn {
	sqlite3 *db;
	sqlite3_stmt *stmts[R_COUNT];
	sqlite3_stmt *list[LF_COMBOS];
	struct rconn *next;           /* in the free list */
};

/* ------------------------------------------------------------------ */
/* Write requests                                                      */

enum wop {
	OP_INGEST,
	OP_JOB_CREATE,
	OP_LEASE,
	OP_RENEW,
	OP_STAGE,
	OP_PROMOTE,
	OP_FINISH,
	OP_EXPIRE,
	OP_CANCEL,
	OP_REQUEUE,
	OP_RELABEL,
	OP_OUTBOX_NEXT,
	OP_OUTBOX_DONE,
	OP_PING,
};

/*
 * One write, on the caller's stack while the caller waits.  The writer
 * reads the arguments, fills the results and e, and sets done under
 * st->mu; the caller copies the results out only when rc is 0.
 */
struct wreq {
	enum wop op;
	/* arguments, borrowed from the caller */
	const struct sp_delivery *delivery;
	const struct sp_job_spec *job;
	const struct sp_lease_req *lease_req;
	const struct sp_stage_update *stage;
	const struct sp_finish *finish;
	const char *text;             /* cancel/requeue reason, outbox_done error */
	const char *labels;           /* relabel */
	int64_t id, epoch;
	int num;                      /* ttl_ms, max_attempts, max rows, retry_in_ms */
	int64_t asked_ms;             /* expire: when it was asked (see op_expire) */
	bool ok;
	/* results */
	int rc;
	struct sp_error e;
	struct sp_ingest_result ingest;
	struct sp_lease lease;
	bool flag;                    /* renew: cancel; promote: granted */
	char reason[160];             /* promote refused */
	int requeued, failed;
	enum sp_job_state state_after;
	struct sp_status_row *rows;
	size_t nrows;
	/* the queue */
	bool done;
	pthread_cond_t cv;
	struct wreq *next;
};

struct sqlite_store {
	struct sp_store base;
	char *path;
	int batch_max;

	sqlite3 *db;                  /* the writer's; only the writer thread uses it */
	sqlite3_stmt *w[W_COUNT];
	pthread_t writer;
	bool writer_started;

	pthread_mutex_t mu;
	pthread_cond_t wake;          /* the writer: work or stop */
	pthread_cond_t pool_cv;       /* a reader connection came back */
	pthread_cond_t idle_cv;       /* inflight dropped to 0 while stopping */
	struct wreq *head, *tail;
	bool stopping;
	int inflight;                 /* callers inside the store */
	struct rconn *free_readers;
	int nreaders;                 /* opened, free or in use */
	uint64_t commits, requests;
	/* the last batch: it failed (not committed, or the database itself
	 * failed in it), the disk was full, and why */
	bool write_failed, write_full;
	char write_error[SP_ERROR_MSG_MAX];
};

static const struct sp_store_ops sqlite_ops;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int db_error(sqlite3 *db, struct sp_error *err, const char *what)
{
	return sp_error_set(err, SP_EENGINE, "store: %s: %s", what, sqlite3_errmsg(db));
}

static void bind_str(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

/* Binds v, or NULL when v is 0. */
static void bind_id(sqlite3_stmt *s, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

/* Steps s once: 1 for a row, 0 when done, SP_EENGINE (err set) otherwise. */
static int step(sqlite3_stmt *s, struct sp_error *err)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_error(sqlite3_db_handle(s), err, sqlite3_sql(s));
}

/* Makes s ready for its next use. */
static void finish_stmt(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows and resets it. */
static int run(sqlite3_stmt *s, struct sp_error *err)
{
	int rc = step(s, err);

	finish_stmt(s);
	return rc < 0 ? rc : 0;
}

static char *col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? sp_xstrdup((const char *)t) : NULL;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static enum sp_status_state status_parse(const char *name)
{
	for (int i = SP_STATUS_PENDING; i <= SP_STATUS_CANCELLED; i++)
		if (name && !strcmp(sp_status_state_name((enum sp_status_state)i), name))
			return (enum sp_status_state)i;
	return SP_STATUS_ERROR;
}

/* The commit status a final job or stage state is shown as. */
static enum sp_status_state status_of(enum sp_job_state s)
{
	switch (s) {
	case SP_JOB_QUEUED:
		return SP_STATUS_PENDING;
	case SP_JOB_RUNNING:
		return SP_STATUS_RUNNING;
	case SP_JOB_PASSED:
	case SP_JOB_SKIPPED:
		return SP_STATUS_SUCCESS;
	case SP_JOB_FAILED:
		return SP_STATUS_FAILURE;
	case SP_JOB_CANCELLED:
		return SP_STATUS_CANCELLED;
	case SP_JOB_ERROR:
		break;
	}
	return SP_STATUS_ERROR;
}

/* A number for a description: "100", "87.5". */
static void fmt_num(char *buf, size_t len, double v)
{
	snprintf(buf, len, "%.1f", v);
	size_t n = strlen(buf);
	if (n > 2 && !strcmp(buf + n - 2, ".0"))
		buf[n - 2] = '\0';
}

static double json_num(const cJSON *o, const char *name, bool *has)
{
	const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;

	bool is = v && cJSON_IsNumber(v);

	if (has)
		*has = is;
	return is && v ? v->valuedouble : 0;
}

static const char *json_str(const cJSON *o, const char *name)
{
	const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;

	return v && cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * A finished stage's status description: its message when it did not
 * pass, else "17 passed, 2 failed, coverage 87.5%", else the message,
 * else "passed in 3.1 s".  A new string.
 */
static char *stage_description(const struct sp_stage_update *u)
{
	struct sp_buf b = SP_BUF_INIT;
	const cJSON *tests = u->report ?
		cJSON_GetObjectItemCaseSensitive(u->report, "tests") : NULL;
	const char *msg = json_str(u->report, "message");
	bool has_cov;
	double cov = json_num(u->report, "coverage", &has_cov);
	char num[32];

	if (msg && strcmp(u->state, "passed") && strcmp(u->state, "skipped")) {
		sp_buf_addstr(&b, msg);
		return sp_buf_detach(&b, NULL);
	}
	if (cJSON_IsObject(tests)) {
		static const char *const kinds[] = { "passed", "failed", "errors", "skipped" };
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
			double n = json_num(tests, kinds[i], NULL);
			if (i && n <= 0)
				continue;
			fmt_num(num, sizeof(num), n);
			sp_buf_addf(&b, "%s%s %s", b.len ? ", " : "", num, kinds[i]);
		}
	}
	if (has_cov) {
		fmt_num(num, sizeof(num), cov);
		sp_buf_addf(&b, "%scoverage %s%%", b.len ? ", " : "", num);
	}
	if (!b.len && msg)
		sp_buf_addstr(&b, msg);
	if (!b.len) {
		fmt_num(num, sizeof(num), u->seconds);
		if (u->seconds > 0)
			sp_buf_addf(&b, "%s in %s s", u->state, num);
		else
			sp_buf_addstr(&b, u->state);
	}
	return sp_buf_detach(&b, NULL);
}

/* The final status description: the reason, else the summary's message,
 * else "passed in 14.2 s".  A new string. */
static char *final_description(enum sp_job_state s, const char *reason, const cJSON *summary)
{
	const char *msg = json_str(summary, "message");
	bool has_secs;
	double secs = json_num(summary, "seconds", &has_secs);
	char num[32];

	if (reason && *reason)
		return sp_xstrdup(reason);
	if (msg && *msg)
		return sp_xstrdup(msg);
	if (has_secs) {
		fmt_num(num, sizeof(num), secs);
		return sp_xasprintf("%s in %s s", sp_job_state_name(s), num);
	}
	return sp_xstrdup(sp_job_state_name(s));
}

/* Whether every label of need ("a,b", NULL or "" for none) is in have. */
static bool labels_cover(const char *have, const char *need)
{
	const char *p = need;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *t = p;
		size_t tl = len;
		bool found = false;

		while (tl && (*t == ' ' || *t == '\t'))
			t++, tl--;
		while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
			tl--;
		if (tl) {
			const char *q = have;
			while (q && *q && !found) {
				const char *qe = strchr(q, ',');
				size_t ql = qe ? (size_t)(qe - q) : strlen(q);
				const char *h = q;
				size_t hl = ql;
				while (hl && (*h == ' ' || *h == '\t'))
					h++, hl--;
				while (hl && (h[hl - 1] == ' ' || h[hl - 1] == '\t'))
					hl--;
				found = hl == tl && !memcmp(h, t, tl);
				q = qe ? qe + 1 : NULL;
			}
			if (!found)
				return false;
		}
		p = end ? end + 1 : NULL;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Connections and migrations                                          */

/* Makes the folders of path's parent (0700 for those it makes). */
static int make_parent(const char *path, struct sp_error *err)
{
	char *dir = sp_xstrdup(path);
	char *slash = strrchr(dir, '/');
	int rc = 0;

	if (!slash || slash == dir)
		goto cleanup;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			rc = sp_error_set(err, SP_ERROR, "store: cannot create the folder %s: %s",
					  dir, strerror(errno));
			goto cleanup;
		}
		*p = c;
		if (!c)
			break;
	}
cleanup:
	free(dir);
	return rc;
}

static int exec_sql(sqlite3 *db, const char *sql, struct sp_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	sp_error_set(err, SP_EENGINE, "store: %s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return SP_EENGINE;
}

/* The first column of the first row of sql, as an integer (or a string into txt). */
static int query_one(sqlite3 *db, const char *sql, int64_t *num, char *txt, size_t txtlen,
		     struct sp_error *err)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return db_error(db, err, sql);
	rc = step(s, err);
	if (rc == 1) {
		if (num)
			*num = sqlite3_column_int64(s, 0);
		if (txt)
			snprintf(txt, txtlen, "%s", col_text(s, 0) ? col_text(s, 0) : "");
		rc = 0;
	} else if (rc == 0) {
		rc = sp_error_set(err, SP_EENGINE, "store: %s: no answer", sql);
	}
	sqlite3_finalize(s);
	return rc;
}

static int open_conn(const char *path, bool readonly, sqlite3 **out, struct sp_error *err)
{
	int flags = SQLITE_OPEN_NOMUTEX |
		    (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
	sqlite3 *db = NULL;
	char mode[16];
	int rc;

	*out = NULL;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		rc = sp_error_set(err, SP_EENGINE, "store: cannot open %s: %s", path,
				  db ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	if (!readonly) {
		rc = query_one(db, "PRAGMA journal_mode = WAL", NULL, mode, sizeof(mode), err);
		if (rc)
			goto fail;
		if (strcmp(mode, "wal")) {
			rc = sp_error_set(err, SP_EENGINE,
					  "store: %s: cannot use WAL mode (journal mode is %s)",
					  path, mode);
			goto fail;
		}
		rc = exec_sql(db, "PRAGMA synchronous = FULL", err);
		if (rc)
			goto fail;
	}
	rc = exec_sql(db, "PRAGMA foreign_keys = ON", err);
	if (rc)
		goto fail;
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return rc;
}

static int migrate(sqlite3 *db, const char *path, struct sp_error *err)
{
	int64_t version = 0;
	char sql[64];
	int rc;

	for (;;) {
		rc = exec_sql(db, "BEGIN IMMEDIATE", err);
		if (rc)
			return sp_error_prefix(err, "%s", path);
		/* read inside the write lock: another process may be migrating too */
		rc = query_one(db, "PRAGMA user_version", &version, NULL, 0, err);
		if (rc)
			goto fail;
		if (version > NMIGRATIONS) {
			rc = sp_error_set(err, SP_ECONFIG,
					  "store: %s has schema version %" PRId64 ", newer than the"
					  " %d this stagepipe knows: it was written by a newer"
					  " stagepipe; upgrade, or use another data folder",
					  path, version, NMIGRATIONS);
			goto fail;
		}
		if (version == NMIGRATIONS)
			return exec_sql(db, "COMMIT", err);
		rc = exec_sql(db, migrations[version], err);
		if (rc)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", (int)version + 1);
		rc = exec_sql(db, sql, err);
		if (!rc)
			rc = exec_sql(db, "COMMIT", err);
		if (rc)
			goto fail;
	}
fail:
	exec_sql(db, "ROLLBACK", NULL);
	if (rc != SP_ECONFIG)
		sp_error_prefix(err, "%s: migrating to schema version %d", path,
				(int)version + 1);
	return rc;
}

static void rconn_close(struct rconn *c)
{
	for (int i = 0; i < R_COUNT; i++)
		sqlite3_finalize(c->stmts[i]);
	for (int i = 0; i < LF_COMBOS; i++)
		sqlite3_finalize(c->list[i]);
	sqlite3_close(c->db);
	free(c);
}

/* ------------------------------------------------------------------ */
/* The writer's operations (writer thread, inside a savepoint)          */

static int outbox_add(struct sqlite_store *st, int64_t job, const char *repo, const char *sha,
		      const char *context, enum sp_status_state state, const char *desc,
		      int64_t now, struct sp_error *err)
{
	sqlite3_stmt *s = st->w[W_OUTBOX_ADD];

	sqlite3_bind_int64(s, 1, job);
	bind_str(s, 2, repo);
	bind_str(s, 3, sha);
	bind_str(s, 4, context);
	bind_str(s, 5, sp_status_state_name(state));
	bind_str(s, 6, desc);
	sqlite3_bind_int64(s, 7, now);
	return run(s, err);
}

/*
 * Runs a statement that changes one job and returns (repo, sha, statuses),
 * and adds the outbox row "stagepipe" (state, desc) when statuses is on.
 * SP_ENOTFOUND when it changed no row.
 */
static int job_changed(struct sqlite_store *st, sqlite3_stmt *s, int64_t job,
		       enum sp_status_state state, const char *desc, int64_t now,
		       struct sp_error *err)
{
	char *repo = NULL, *sha = NULL;
	bool statuses = false;
	int rc = step(s, err);

	if (rc == 1) {
		repo = col_dup(s, 0);
		sha = col_dup(s, 1);
		statuses = sqlite3_column_int(s, 2) != 0;
		rc = 0;
	} else if (rc == 0) {
		rc = sp_error_set(err, SP_ENOTFOUND, "job %" PRId64 " not found", job);
	}
	finish_stmt(s);
	if (!rc && statuses)
		rc = outbox_add(st, job, repo, sha, CONTEXT_BASE, state, desc, now, err);
	free(repo);
	free(sha);
	return rc;
}

/* Ends job in final state s; reason NULL keeps the one it has. */
/*
 * A job ended: stages it left running end with it (cancelled, or error:
 * whoever ran them is gone), stages that never started are skipped.
 */
static int close_stages(struct sqlite_store *st, int64_t job, enum sp_job_state s,
			int64_t now, struct sp_error *err)
{
	sqlite3_stmt *q = st->w[W_STAGES_CLOSE];

	sqlite3_bind_int64(q, 1, job);
	bind_str(q, 2, s == SP_JOB_CANCELLED ? "cancelled" : "error");
	sqlite3_bind_int64(q, 3, now);
	return run(q, err);
}

static int end_job(struct sqlite_store *st, int64_t job, enum sp_job_state s,
		   const char *reason, int64_t now, struct sp_error *err)
{
	sqlite3_stmt *q = st->w[W_JOB_END];
	char *desc = final_description(s, reason, NULL);
	int rc;

	sqlite3_bind_int64(q, 1, job);
	bind_str(q, 2, sp_job_state_name(s));
	bind_str(q, 3, reason);
	sqlite3_bind_int64(q, 4, now);
	rc = job_changed(st, q, job, status_of(s), desc, now, err);
	free(desc);
	if (rc == 0)
		rc = close_stages(st, job, s, now, err);
	return rc;
}

/* A running job back to the queue (its epoch moves on at the next lease). */
static int job_back(struct sqlite_store *st, int64_t job, const char *reason, int64_t now,
		    struct sp_error *err)
{
	sqlite3_stmt *q = st->w[W_JOB_BACK];
	char *desc = sp_xasprintf("queued again: %s", reason ? reason : "requeued");
	int rc;

	sqlite3_bind_int64(q, 1, job);
	bind_str(q, 2, reason);
	rc = job_changed(st, q, job, SP_STATUS_PENDING, desc, now, err);
	free(desc);
	return rc;
}

/* Why a fenced write changed nothing: SP_ENOTFOUND or SP_ECONFLICT. */
static int fence_error(struct sqlite_store *st, int64_t job, int64_t epoch,
		       struct sp_error *err)
{
	sqlite3_stmt *s = st->w[W_JOB_PEEK];
	int rc;

	sqlite3_bind_int64(s, 1, job);
	rc = step(s, err);
	if (rc == 0)
		rc = sp_error_set(err, SP_ENOTFOUND, "job %" PRId64 " not found", job);
	else if (rc == 1)
		rc = sp_error_set(err, SP_ECONFLICT,
				  "job %" PRId64 ": epoch %" PRId64 " is not current (the job"
				  " is %s at epoch %" PRId64 ")", job, epoch, col_text(s, 0),
				  (int64_t)sqlite3_column_int64(s, 1));
	finish_stmt(s);
	return rc;
}

/* Cancels the older queued and running jobs of job's supersede key. */
static int supersede(struct sqlite_store *st, int64_t job, const struct sp_job_spec *j,
		     const char *key, int64_t now, struct sp_ingest_result *res,
		     struct sp_error *err)
{
	sqlite3_stmt *s = st->w[W_SUPERSEDE_FIND];
	struct victim { int64_t id; bool running; } *v = NULL;
	size_t n = 0, alloc = 0;
	char *reason = sp_xasprintf("superseded by job %" PRId64, job);
	int rc;

	sqlite3_bind_text(s, 1, j->repo, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, job);
	sqlite3_bind_text(s, 4, j->sha, -1, SQLITE_TRANSIENT);
	while ((rc = step(s, err)) == 1) {
		SP_GROW(v, alloc, n + 1);
		v[n].id = sqlite3_column_int64(s, 0);
		v[n].running = !strcmp(col_text(s, 1), "running");
		n++;
	}
	finish_stmt(s);
	for (size_t i = 0; !rc && i < n; i++) {
		if (v[i].running) {
			sqlite3_stmt *m = st->w[W_JOB_MARK_CANCEL];
			sqlite3_bind_int64(m, 1, v[i].id);
			bind_str(m, 2, reason);
			rc = run(m, err);
		} else {
			rc = end_job(st, v[i].id, SP_JOB_CANCELLED, reason, now, err);
		}
		if (!rc && res->nsuperseded < sizeof(res->superseded) / sizeof(res->superseded[0]))
			res->superseded[res->nsuperseded++] = v[i].id;
	}
	free(v);
	free(reason);
	return rc;
}

static int insert_job(struct sqlite_store *st, const struct sp_job_spec *j, int64_t now,
		      struct sp_ingest_result *res, struct sp_error *err)
{
	sqlite3_stmt *s = st->w[W_JOB_ADD];
	char *key = NULL;
	int64_t id;
	int rc;

	if (!j || !j->repo || !j->event || !j->ref || !j->sha)
		return sp_error_set(err, SP_ERROR, "store: a job needs a repo, event, ref and sha");
	if (!strcmp(j->event, "push") && j->branch)
		key = sp_xasprintf("branch:%s", j->branch);
	else if (!strcmp(j->event, "pull_request") && j->pr > 0)
		key = sp_xasprintf("pr:%d", j->pr);

	bind_str(s, 1, j->repo);
	bind_str(s, 2, j->event);
	bind_str(s, 3, j->ref);
	bind_str(s, 4, j->branch);
	bind_str(s, 5, j->tag);
	bind_str(s, 6, j->sha);
	sqlite3_bind_int(s, 7, j->pr);
	bind_str(s, 8, j->title);
	bind_str(s, 9, j->author);
	bind_str(s, 10, j->sender);
	bind_str(s, 11, j->labels && *j->labels ? j->labels : NULL);
	bind_str(s, 12, key);
	sqlite3_bind_int64(s, 13, now);
	bind_id(s, 14, j->retry_of);
	sqlite3_bind_int(s, 15, j->statuses);
	rc = run(s, err);
	if (rc)
		goto cleanup;
	id = sqlite3_last_insert_rowid(st->db);
	res->job_id = id;
	if (j->statuses) {
		rc = outbox_add(st, id, j->repo, j->sha, CONTEXT_BASE, SP_STATUS_PENDING,
				"queued", now, err);
		if (rc)
			goto cleanup;
	}
	if (j->supersede && key)
		rc = supersede(st, id, j, key, now, res, err);
cleanup:
	free(key);
	return rc;
}

static int do_ingest(struct sqlite_store *st, struct wreq *r)
{
	const struct sp_delivery *d = r->delivery;
	sqlite3_stmt *s = st->w[W_DELIVERY_FIND];
	int64_t now = now_ms();
	int rc;

	if (!d || !d->repo || !d->id)
		return sp_error_set(&r->e, SP_ERROR, "store: a delivery needs a repo and an id");
	bind_str(s, 1, d->repo);
	bind_str(s, 2, d->id);
	rc = step(s, &r->e);
	if (rc == 1) {
		r->ingest.duplicate = true;
		r->ingest.job_id = sqlite3_column_int64(s, 0);
	}
	finish_stmt(s);
	if (rc)
		return rc < 0 ? rc : 0;
	if (r->job) {
		rc = insert_job(st, r->job, now, &r->ingest, &r->e);
		if (rc)
			return rc;
	}
	s = st->w[W_DELIVERY_ADD];
	bind_str(s, 1, d->repo);
	bind_str(s, 2, d->id);
	bind_str(s, 3, d->forge);
	bind_str(s, 4, d->event);
	bind_str(s, 5, d->outcome);
	bind_id(s, 6, r->ingest.job_id);
	sqlite3_bind_int64(s, 7, now);
	return run(s, &r->e);
}

static int do_lease(struct sqlite_store *st, struct wreq *r)
{
	const struct sp_lease_req *q = r->lease_req;
	sqlite3_stmt *s = st->w[W_LEASE_SCAN];
	int64_t now = now_ms(), id = 0;
	int ttl = q->ttl_ms > 0 ? q->ttl_ms : DEFAULT_TTL_MS;
	bool statuses;
	int rc;

	while ((rc = step(s, &r->e)) == 1) {
		if (labels_cover(q->labels, col_text(s, 1))) {
			id = sqlite3_column_int64(s, 0);
			break;
		}
	}
	finish_stmt(s);
	if (rc < 0)
		return rc;
	if (!id)
		return sp_error_set(&r->e, SP_ENOTFOUND, "no queued job for these labels");

	s = st->w[W_LEASE_TAKE];
	sqlite3_bind_int64(s, 1, id);
	bind_str(s, 2, q->agent);
	sqlite3_bind_int64(s, 3, now + ttl);
	sqlite3_bind_int64(s, 4, now);
	rc = step(s, &r->e);
	if (rc == 0)
		rc = sp_error_set(&r->e, SP_ERROR, "job %" PRId64 " was not queued", id);
	if (rc < 0) {
		finish_stmt(s);
		return rc;
	}
	r->lease.job_id = id;
	r->lease.epoch = sqlite3_column_int64(s, 0);
	r->lease.attempt = sqlite3_column_int(s, 1);
	r->lease.repo = col_dup(s, 2);
	r->lease.event = col_dup(s, 3);
	r->lease.ref = col_dup(s, 4);
	r->lease.branch = col_dup(s, 5);
	r->lease.tag = col_dup(s, 6);
	r->lease.sha = col_dup(s, 7);
	r->lease.pr = sqlite3_column_int(s, 8);
	statuses = sqlite3_column_int(s, 9) != 0;
	finish_stmt(s);
	if (!statuses)
		return 0;
	return outbox_add(st, id, r->lease.repo, r->lease.sha, CONTEXT_BASE, SP_STATUS_RUNNING,
			  "running", now, &r->e);
}

static int do_renew(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s = st->w[W_RENEW];
	int rc;

	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int64(s, 2, r->epoch);
	sqlite3_bind_int64(s, 3, now_ms() + (r->num > 0 ? r->num : DEFAULT_TTL_MS));
	rc = step(s, &r->e);
	if (rc == 1)
		r->flag = sqlite3_column_int(s, 0) != 0;
	finish_stmt(s);
	if (rc == 0)
		return fence_error(st, r->id, r->epoch, &r->e);
	return rc < 0 ? rc : 0;
}

/* The fenced job's repo, sha, statuses, attempt and cancel flag. */
struct fenced {
	char *repo, *sha;
	bool statuses, cancel_requested;
	int attempt;
};

static int fence(struct sqlite_store *st, int64_t job, int64_t epoch, struct fenced *f,
		 struct sp_error *err)
{
	sqlite3_stmt *s = st->w[W_JOB_FENCE];
	int rc;

	memset(f, 0, sizeof(*f));
	sqlite3_bind_int64(s, 1, job);
	sqlite3_bind_int64(s, 2, epoch);
	rc = step(s, err);
	if (rc == 1) {
		f->repo = col_dup(s, 0);
		f->sha = col_dup(s, 1);
		f->statuses = sqlite3_column_int(s, 2) != 0;
		f->attempt = sqlite3_column_int(s, 3);
		f->cancel_requested = sqlite3_column_int(s, 4) != 0;
	}
	finish_stmt(s);
	if (rc == 0)
		return fence_error(st, job, epoch, err);
	return rc < 0 ? rc : 0;
}

static void fenced_release(struct fenced *f)
{
	free(f->repo);
	free(f->sha);
}

/* A test count from a report (the child's JSON: any number, 1e999 too)
 * as an integer: 0 unless in [0, 2^53] (NaN fails both). */
static sqlite3_int64 count_of(double d)
{
	return d >= 0 && d <= 9007199254740992.0 ? (sqlite3_int64)d : 0;
}

/*
 * A report's test counts and coverage into parameters i.. i+4 (total,
 * passed, failed + errors, coverage, coverage_min); NULL where the report
 * has none.
 */
static void bind_report_numbers(sqlite3_stmt *s, int i, const cJSON *report)
{
	const cJSON *tests = report ? cJSON_GetObjectItemCaseSensitive(report, "tests") : NULL;
	bool has_total, has_cov, has_min;
	double total = json_num(tests, "total", &has_total);
	double cov = json_num(report, "coverage", &has_cov);
	double min = json_num(report, "coverage_min", &has_min);

	if (cJSON_IsObject(tests) && has_total) {
		sqlite3_bind_int64(s, i, count_of(total));
		sqlite3_bind_int64(s, i + 1, count_of(json_num(tests, "passed", NULL)));
		sqlite3_bind_int64(s, i + 2, count_of(json_num(tests, "failed", NULL) +
						      json_num(tests, "errors", NULL)));
	} else {
		sqlite3_bind_null(s, i);
		sqlite3_bind_null(s, i + 1);
		sqlite3_bind_null(s, i + 2);
	}
	if (has_cov)
		sqlite3_bind_double(s, i + 3, cov);
	else
		sqlite3_bind_null(s, i + 3);
	if (has_cov && has_min)
		sqlite3_bind_double(s, i + 4, min);
	else
		sqlite3_bind_null(s, i + 4);
}

static int do_stage(struct sqlite_store *st, struct wreq *r)
{
	const struct sp_stage_update *u = r->stage;
	sqlite3_stmt *s = st->w[W_STAGE_PUT];
	struct fenced f = { 0 };
	char *report = NULL, *desc = NULL, *context = NULL;
	int64_t now = now_ms();
	int state, rc;

	if (!u || !u->name || !u->state)
		return sp_error_set(&r->e, SP_ERROR, "store: a stage needs a name and a state");
	rc = fence(st, r->id, r->epoch, &f, &r->e);
	if (rc)
		return rc;
	if (u->report)
		report = sp_xjson_print(u->report);
	sqlite3_bind_int64(s, 1, r->id);
	bind_str(s, 2, u->name);
	sqlite3_bind_int(s, 3, u->pos);
	bind_str(s, 4, u->state);
	sqlite3_bind_double(s, 5, u->seconds);
	bind_str(s, 6, report);
	sqlite3_bind_int64(s, 7, now);
	bind_report_numbers(s, 8, u->report);
	rc = run(s, &r->e);
	if (rc)
		goto cleanup;
	/* stage states share their names with the final job states */
	state = sp_job_state_parse(u->state);
	if (f.statuses && state >= 0 && sp_job_state_final((enum sp_job_state)state)) {
		desc = stage_description(u);
		context = sp_xasprintf(CONTEXT_BASE "/%s", u->name);
		rc = outbox_add(st, r->id, f.repo, f.sha, context,
				status_of((enum sp_job_state)state), desc, now, &r->e);
	}
cleanup:
	cJSON_free(report);
	free(desc);
	free(context);
	fenced_release(&f);
	return rc;
}

static int do_promote(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s = st->w[W_PROMOTE];
	int rc;

	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int64(s, 2, r->epoch);
	rc = run(s, &r->e);
	if (rc)
		return rc;
	if (sqlite3_changes(st->db) == 1) {
		r->flag = true;
		return 0;
	}
	s = st->w[W_JOB_PEEK];
	sqlite3_bind_int64(s, 1, r->id);
	rc = step(s, &r->e);
	if (rc == 0) {
		rc = sp_error_set(&r->e, SP_ENOTFOUND, "job %" PRId64 " not found", r->id);
	} else if (rc == 1) {
		int64_t epoch = sqlite3_column_int64(s, 1);
		if (strcmp(col_text(s, 0), "running") || epoch != r->epoch) {
			rc = sp_error_set(&r->e, SP_ECONFLICT,
					  "job %" PRId64 ": epoch %" PRId64 " is not current (the"
					  " job is %s at epoch %" PRId64 ")", r->id, r->epoch,
					  col_text(s, 0), epoch);
		} else {
			/* a current epoch that does not hold the permit: someone has it */
			r->flag = sqlite3_column_int64(s, 2) == r->epoch;
			if (!r->flag && sqlite3_column_type(s, 2) == SQLITE_NULL &&
			    sqlite3_column_int(s, 7))
				snprintf(r->reason, sizeof(r->reason), "the job was cancelled");
			else if (!r->flag)
				snprintf(r->reason, sizeof(r->reason),
					 "already promoted by attempt %d", sqlite3_column_int(s, 3));
			rc = 0;
		}
	}
	finish_stmt(s);
	return rc;
}

static int do_finish(struct sqlite_store *st, struct wreq *r)
{
	const struct sp_finish *f = r->finish;
	sqlite3_stmt *s = st->w[W_FINISH];
	char *summary = NULL, *desc = NULL;
	int rc;

	if (!f || !sp_job_state_final(f->state))
		return sp_error_set(&r->e, SP_ERROR, "store: finish needs a final state");
	if (f->summary)
		summary = sp_xjson_print(f->summary);
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int64(s, 2, r->epoch);
	bind_str(s, 3, sp_job_state_name(f->state));
	bind_str(s, 4, f->reason);
	if (f->exit_code >= 0)
		sqlite3_bind_int(s, 5, f->exit_code);
	bind_str(s, 6, summary);
	bind_str(s, 7, f->pipeline);
	sqlite3_bind_int64(s, 8, now_ms());
	desc = final_description(f->state, f->reason, f->summary);
	rc = job_changed(st, s, r->id, status_of(f->state), desc, now_ms(), &r->e);
	if (rc == SP_ENOTFOUND)
		rc = fence_error(st, r->id, r->epoch, &r->e);
	else if (rc == 0)
		rc = close_stages(st, r->id, f->state, now_ms(), &r->e);
	cJSON_free(summary);
	free(desc);
	return rc;
}

/* The end of a job whose worker is gone: cancelled if asked, error after
 * max attempts, else queued again.  Counts into *requeued or *failed. */
static int worker_gone(struct sqlite_store *st, int64_t job, int attempt, bool cancel,
		       const char *why, int max_attempts, int *requeued, int *failed,
		       struct sp_error *err)
{
	int64_t now = now_ms();
	char *reason;
	int rc;

	if (cancel) {
		rc = end_job(st, job, SP_JOB_CANCELLED, NULL, now, err);
		*failed += !rc;
		return rc;
	}
	if (attempt >= max_attempts) {
		reason = sp_xasprintf("%s (%d attempts)", why, attempt);
		rc = end_job(st, job, SP_JOB_ERROR, reason, now, err);
		*failed += !rc;
	} else {
		reason = sp_xasprintf("%s (attempt %d)", why, attempt);
		rc = job_back(st, job, reason, now, err);
		*requeued += !rc;
	}
	free(reason);
	return rc;
}

static int do_expire(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s = st->w[W_EXPIRE_SCAN];
	struct gone { int64_t id; int attempt; bool cancel; } *g = NULL;
	size_t n = 0, alloc = 0;
	int max = r->num > 0 ? r->num : DEFAULT_MAX_ATTEMPTS;
	int rc;

	sqlite3_bind_int64(s, 1, r->asked_ms);
	while ((rc = step(s, &r->e)) == 1) {
		SP_GROW(g, alloc, n + 1);
		g[n].id = sqlite3_column_int64(s, 0);
		g[n].attempt = sqlite3_column_int(s, 1);
		g[n].cancel = sqlite3_column_int(s, 2) != 0;
		n++;
	}
	finish_stmt(s);
	for (size_t i = 0; rc >= 0 && i < n; i++)
		rc = worker_gone(st, g[i].id, g[i].attempt, g[i].cancel, "lost its worker", max,
				 &r->requeued, &r->failed, &r->e);
	free(g);
	return rc < 0 ? rc : 0;
}

static int do_requeue(struct sqlite_store *st, struct wreq *r)
{
	struct fenced f;
	int rc = fence(st, r->id, r->epoch, &f, &r->e);

	if (rc)
		return rc;
	rc = worker_gone(st, r->id, f.attempt, f.cancel_requested,
			 r->text ? r->text : "requeued", r->num > 0 ? r->num : DEFAULT_MAX_ATTEMPTS,
			 &r->requeued, &r->failed, &r->e);
	fenced_release(&f);
	return rc;
}

/* Back to the queue for a runner with other labels: no attempt used. */
static int do_relabel(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *q = st->w[W_JOB_RELABEL];
	struct fenced f;
	char *why;
	int rc = fence(st, r->id, r->epoch, &f, &r->e);

	if (rc)
		return rc;
	if (f.cancel_requested) {
		rc = end_job(st, r->id, SP_JOB_CANCELLED, NULL, now_ms(), &r->e);
		fenced_release(&f);
		return rc;
	}
	sqlite3_bind_int64(q, 1, r->id);
	bind_str(q, 2, r->labels);
	rc = run(q, &r->e);
	if (rc >= 0) {
		why = sp_xasprintf("waiting for a runner with labels %s%s%s", r->labels,
				   r->text ? ": " : "", r->text ? r->text : "");
		rc = job_back(st, r->id, why, now_ms(), &r->e);
		free(why);
	}
	fenced_release(&f);
	return rc < 0 ? rc : 0;
}

static int do_cancel(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s = st->w[W_JOB_PEEK];
	int state = -1, rc;

	sqlite3_bind_int64(s, 1, r->id);
	rc = step(s, &r->e);
	if (rc == 1)
		state = sp_job_state_parse(col_text(s, 0));
	finish_stmt(s);
	if (rc == 0)
		return sp_error_set(&r->e, SP_ENOTFOUND, "job %" PRId64 " not found", r->id);
	if (rc < 0)
		return rc;
	if (state == SP_JOB_QUEUED) {
		r->state_after = SP_JOB_CANCELLED;
		return end_job(st, r->id, SP_JOB_CANCELLED, r->text ? r->text : "cancelled",
			       now_ms(), &r->e);
	}
	r->state_after = state < 0 ? SP_JOB_ERROR : (enum sp_job_state)state;
	if (state != SP_JOB_RUNNING)
		return 0;
	s = st->w[W_JOB_MARK_CANCEL];
	sqlite3_bind_int64(s, 1, r->id);
	bind_str(s, 2, r->text);
	return run(s, &r->e);
}

static int do_outbox_next(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s;
	int64_t now = now_ms();
	size_t alloc = 0;
	int rc;

	if (r->num <= 0)
		return 0;
	rc = run(st->w[W_OUTBOX_SUPERSEDE], &r->e);
	if (rc)
		return rc;
	s = st->w[W_OUTBOX_DUE];
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int(s, 2, r->num);
	while ((rc = step(s, &r->e)) == 1) {
		struct sp_status_row *row;
		SP_GROW(r->rows, alloc, r->nrows + 1);
		row = &r->rows[r->nrows++];
		row->id = sqlite3_column_int64(s, 0);
		row->job_id = sqlite3_column_int64(s, 1);
		row->repo = col_dup(s, 2);
		row->sha = col_dup(s, 3);
		row->context = col_dup(s, 4);
		row->state = status_parse(col_text(s, 5));
		row->description = col_dup(s, 6);
		row->attempts = sqlite3_column_int(s, 7);
	}
	finish_stmt(s);
	for (size_t i = 0; rc >= 0 && i < r->nrows; i++) {
		s = st->w[W_OUTBOX_CLAIM];
		sqlite3_bind_int64(s, 1, r->rows[i].id);
		sqlite3_bind_int64(s, 2, now + OUTBOX_CLAIM_MS);
		rc = run(s, &r->e);
	}
	return rc < 0 ? rc : 0;
}

static int do_outbox_done(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s = st->w[r->ok ? W_OUTBOX_SENT : W_OUTBOX_FAILED];
	int64_t now = now_ms();
	int rc;

	sqlite3_bind_int64(s, 1, r->id);
	if (r->ok) {
		sqlite3_bind_int64(s, 2, now);
	} else {
		bind_str(s, 2, r->text ? r->text : "failed");
		if (r->num >= 0)
			sqlite3_bind_int64(s, 3, now + r->num);
	}
	rc = run(s, &r->e);
	if (!rc && sqlite3_changes(st->db) == 0)
		rc = sp_error_set(&r->e, SP_ENOTFOUND, "outbox row %" PRId64 " not found", r->id);
	return rc;
}

static int do_ping(struct sqlite_store *st, struct wreq *r)
{
	sqlite3_stmt *s = st->w[W_PING];

	sqlite3_bind_int64(s, 1, now_ms());
	return run(s, &r->e);
}

static int run_one(struct sqlite_store *st, struct wreq *r)
{
	switch (r->op) {
	case OP_INGEST:
		return do_ingest(st, r);
	case OP_JOB_CREATE:
		return insert_job(st, r->job, now_ms(), &r->ingest, &r->e);
	case OP_LEASE:
		return do_lease(st, r);
	case OP_RENEW:
		return do_renew(st, r);
	case OP_STAGE:
		return do_stage(st, r);
	case OP_PROMOTE:
		return do_promote(st, r);
	case OP_FINISH:
		return do_finish(st, r);
	case OP_EXPIRE:
		return do_expire(st, r);
	case OP_CANCEL:
		return do_cancel(st, r);
	case OP_REQUEUE:
		return do_requeue(st, r);
	case OP_RELABEL:
		return do_relabel(st, r);
	case OP_OUTBOX_NEXT:
		return do_outbox_next(st, r);
	case OP_OUTBOX_DONE:
		return do_outbox_done(st, r);
	case OP_PING:
		return do_ping(st, r);
	}
	return sp_error_set(&r->e, SP_ERROR, "store: unknown request");
}

/* Frees what a request built for a caller that will not get it. */
static void discard(struct wreq *r)
{
	sp_lease_release(&r->lease);
	sp_status_rows_release(r->rows, r->nrows);
	r->rows = NULL;
	r->nrows = 0;
}

/* What became of a batch (for sp_store_last_write). */
struct batch_outcome {
	bool committed;
	bool failed;   /* not committed, or the database failed in it */
	bool full;     /* ... because the disk (or the file) is full */
	char why[SP_ERROR_MSG_MAX];
};

/*
 * Whether the writer connection's last error is the database or its disk
 * failing (rather than one request's own mistake, such as a constraint),
 * noted in o.  Called right after the failure, before anything else runs
 * on the connection.
 */
static void note_failure(struct sqlite_store *st, struct batch_outcome *o, const char *msg)
{
	int code = sqlite3_extended_errcode(st->db) & 0xff;

	switch (code) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_NOMEM:
		break;
	default:
		return;
	}
	if (!o->failed) {
		o->failed = true;
		o->full = code == SQLITE_FULL;
		snprintf(o->why, sizeof(o->why), "%s", msg);
	}
}

/*
 * Whether the database's file system has less than SP_STORE_MIN_FREE
 * bytes left for it; says how much in why.  A file system that cannot
 * say (statvfs fails) is taken to have room: SQLite will tell.
 */
static bool disk_low(const struct sqlite_store *st, char *why, size_t whysz)
{
	struct statvfs vfs;
	unsigned long long avail;

	if (statvfs(st->path, &vfs) != 0)
		return false;
	avail = (unsigned long long)vfs.f_bavail * (vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize);
	if (avail >= SP_STORE_MIN_FREE)
		return false;
	snprintf(why, whysz, "store: database or disk is full: %llu KiB left on %s's file system "
		 "(%d KiB needed)", avail / 1024, st->path, SP_STORE_MIN_FREE / 1024);
	return true;
}

/*
 * Runs a batch in one transaction, each request in its own savepoint.
 * Fills out (committed: the batch is on disk).
 */
static void run_batch(struct sqlite_store *st, struct wreq *batch, struct batch_outcome *out)
{
	struct sp_error berr = SP_ERROR_INIT;
	struct wreq *r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (disk_low(st, out->why, sizeof(out->why))) {
		out->failed = out->full = true;
		for (r = batch; r; r = r->next) {
			r->rc = sp_error_set(&r->e, SP_EENGINE, "%s", out->why);
			discard(r);
		}
		return;
	}
	rc = run(st->w[W_BEGIN], &berr);
	for (r = batch; !rc && r; r = r->next) {
		rc = run(st->w[W_SAVEPOINT], &berr);
		if (rc)
			break;
		r->rc = run_one(st, r);
		if (r->rc == SP_EENGINE)
			note_failure(st, out, r->e.msg);
		if (r->rc && sqlite3_get_autocommit(st->db)) {
			/* SQLite rolled the whole transaction back (disk full, I/O) */
			rc = sp_error_set(&berr, SP_EENGINE, "%s", r->e.msg);
			break;
		}
		if (r->rc)
			rc = run(st->w[W_ROLLBACK_TO], &berr);
		if (!rc)
			rc = run(st->w[W_RELEASE], &berr);
	}
	if (!rc) {
		rc = run(st->w[W_COMMIT], &berr);
		if (rc)
			note_failure(st, out, berr.msg);
	} else {
		note_failure(st, out, berr.msg);
	}
	if (rc && !sqlite3_get_autocommit(st->db))
		run(st->w[W_ROLLBACK], NULL);
	out->committed = !rc;
	if (rc && !out->failed) {
		out->failed = true;
		snprintf(out->why, sizeof(out->why), "%s", berr.msg);
	}
	for (r = batch; r; r = r->next) {
		if (rc) {
			r->rc = SP_EENGINE;
			sp_error_set(&r->e, SP_EENGINE, "store: transaction failed: %s", berr.msg);
		}
		if (r->rc)
			discard(r);
	}
}

static void *writer_main(void *arg)
{
	struct sqlite_store *st = arg;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct wreq *batch, *last, *r, *next;
		struct batch_outcome o;
		int n = 1;

		while (!st->head && !st->stopping)
			pthread_cond_wait(&st->wake, &st->mu);
		if (!st->head)
			break;  /* stopping, and the queue is drained */
		batch = last = st->head;
		while (last->next && n < st->batch_max) {
			last = last->next;
			n++;
		}
		st->head = last->next;
		if (!st->head)
			st->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&st->mu);

		run_batch(st, batch, &o);

		pthread_mutex_lock(&st->mu);
		st->commits += o.committed;
		st->write_failed = o.failed;
		st->write_full = o.failed && o.full;
		snprintf(st->write_error, sizeof(st->write_error), "%s", o.failed ? o.why : "");
		for (r = batch; r; r = next) {
			next = r->next;  /* r is the caller's again once done is set */
			r->done = true;
			pthread_cond_signal(&r->cv);
		}
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* Leaves the store: the last caller out wakes a waiting sp_store_close. */
static void leave(struct sqlite_store *st)
{
	if (--st->inflight == 0 && st->stopping)
		pthread_cond_broadcast(&st->idle_cv);
}

/* Hands r to the writer and waits for its result (r->rc, r->e). */
static int submit(struct sqlite_store *st, struct wreq *r, struct sp_error *err)
{
	r->done = false;
	r->next = NULL;
	r->rc = 0;
	sp_error_clear(&r->e);
	pthread_cond_init(&r->cv, NULL);

	pthread_mutex_lock(&st->mu);
	if (st->stopping) {
		pthread_mutex_unlock(&st->mu);
		pthread_cond_destroy(&r->cv);
		return sp_error_set(err, SP_ERROR, "store: closed");
	}
	if (st->tail)
		st->tail->next = r;
	else
		st->head = r;
	st->tail = r;
	st->requests++;
	st->inflight++;
	pthread_cond_signal(&st->wake);
	while (!r->done)
		pthread_cond_wait(&r->cv, &st->mu);
	leave(st);
	pthread_mutex_unlock(&st->mu);
	pthread_cond_destroy(&r->cv);
	if (r->rc && err) {
		err->code = r->rc;
		memcpy(err->msg, r->e.msg, sizeof(err->msg));
	}
	return r->rc;
}

static struct sqlite_store *to_sqlite(struct sp_store *st)
{
	return (struct sqlite_store *)st;
}

/* ------------------------------------------------------------------ */
/* The ops: writes                                                     */

static int op_ingest(struct sp_store *s, const struct sp_delivery *d,
		     const struct sp_job_spec *job, struct sp_ingest_result *out,
		     struct sp_error *err)
{
	struct wreq r = { .op = OP_INGEST, .delivery = d, .job = job };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc)
		*out = r.ingest;
	return rc;
}

static int op_job_create(struct sp_store *s, const struct sp_job_spec *job,
			 struct sp_ingest_result *out, struct sp_error *err)
{
	struct wreq r = { .op = OP_JOB_CREATE, .job = job };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc)
		*out = r.ingest;
	return rc;
}

static int op_lease(struct sp_store *s, const struct sp_lease_req *req, struct sp_lease *out,
		    struct sp_error *err)
{
	struct wreq r = { .op = OP_LEASE, .lease_req = req };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc)
		*out = r.lease;  /* the strings are the caller's now */
	return rc;
}

static int op_renew(struct sp_store *s, int64_t job, int64_t epoch, int ttl_ms, bool *cancel,
		    struct sp_error *err)
{
	struct wreq r = { .op = OP_RENEW, .id = job, .epoch = epoch, .num = ttl_ms };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc && cancel)
		*cancel = r.flag;
	return rc;
}

static int op_stage(struct sp_store *s, int64_t job, int64_t epoch,
		    const struct sp_stage_update *u, struct sp_error *err)
{
	struct wreq r = { .op = OP_STAGE, .id = job, .epoch = epoch, .stage = u };

	return submit(to_sqlite(s), &r, err);
}

static int op_promote(struct sp_store *s, int64_t job, int64_t epoch, bool *granted,
		      char *reason, size_t reason_len, struct sp_error *err)
{
	struct wreq r = { .op = OP_PROMOTE, .id = job, .epoch = epoch };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc) {
		*granted = r.flag;
		if (reason && reason_len)
			snprintf(reason, reason_len, "%s", r.reason);
	}
	return rc;
}

static int op_finish(struct sp_store *s, int64_t job, int64_t epoch, const struct sp_finish *f,
		     struct sp_error *err)
{
	struct wreq r = { .op = OP_FINISH, .id = job, .epoch = epoch, .finish = f };

	return submit(to_sqlite(s), &r, err);
}

static int op_expire(struct sp_store *s, int max_attempts, int *requeued, int *failed,
		     struct sp_error *err)
{
	/*
	 * Leases past their end at the time of asking, not when the writer
	 * gets to it: a renewal that came while the writer was held up (a
	 * slow commit, a lock) waits in the queue behind this request, and
	 * must not lose its lease to the store's own delay.
	 */
	struct wreq r = { .op = OP_EXPIRE, .num = max_attempts, .asked_ms = now_ms() };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc) {
		if (requeued)
			*requeued = r.requeued;
		if (failed)
			*failed = r.failed;
	}
	return rc;
}

static int op_cancel(struct sp_store *s, int64_t job, const char *reason,
		     enum sp_job_state *state_after, struct sp_error *err)
{
	struct wreq r = { .op = OP_CANCEL, .id = job, .text = reason };
	int rc = submit(to_sqlite(s), &r, err);

	if (!rc && state_after)
		*state_after = r.state_after;
	return rc;
}

static int op_requeue(struct sp_store *s, int64_t job, int64_t epoch, const char *reason,
		      int max_attempts, struct sp_error *err)
{
	struct wreq r = { .op = OP_REQUEUE, .id = job, .epoch = epoch, .text = reason,
			  .num = max_attempts };

	return submit(to_sqlite(s), &r, err);
}

static int op_relabel(struct sp_store *s, int64_t job, int64_t epoch, const char *labels,
		      const char *reason, struct sp_error *err)
{
	struct wreq r = { .op = OP_RELABEL, .id = job, .epoch = epoch, .labels = labels,
			  .text = reason };

	return submit(to_sqlite(s), &r, err);
}

static int op_outbox_next(struct sp_store *s, int max, struct sp_status_row **rows,
			  size_t *n, struct sp_error *err)
{
	struct wreq r = { .op = OP_OUTBOX_NEXT, .num = max };
	int rc = submit(to_sqlite(s), &r, err);

	*rows = NULL;
	*n = 0;
	if (!rc) {
		*rows = r.rows;  /* the caller's now */
		*n = r.nrows;
	}
	return rc;
}

static int op_outbox_done(struct sp_store *s, int64_t id, bool ok, const char *error,
			  int retry_in_ms, struct sp_error *err)
{
	struct wreq r = { .op = OP_OUTBOX_DONE, .id = id, .ok = ok, .text = error,
			  .num = retry_in_ms };

	return submit(to_sqlite(s), &r, err);
}

static int op_ping(struct sp_store *s, struct sp_error *err)
{
	struct wreq r = { .op = OP_PING };

	return submit(to_sqlite(s), &r, err);
}

static int op_last_write(struct sp_store *s, bool *disk_full, struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(s);
	int rc = 0;

	pthread_mutex_lock(&st->mu);
	if (disk_full)
		*disk_full = st->write_failed && st->write_full;
	if (st->write_failed)
		rc = sp_error_set(err, SP_EENGINE, "%s", st->write_error);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The ops: reads, on the pool's connections                           */

static int reader_get(struct sqlite_store *st, struct rconn **out, struct sp_error *err)
{
	struct rconn *c = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&st->mu);
	if (st->stopping) {
		pthread_mutex_unlock(&st->mu);
		sp_error_set(err, SP_ERROR, "store: closed");
		return SP_ERROR;
	}
	st->inflight++;
	while (!st->free_readers && st->nreaders >= READERS_MAX)
		pthread_cond_wait(&st->pool_cv, &st->mu);
	if (st->free_readers) {
		c = st->free_readers;
		st->free_readers = c->next;
		pthread_mutex_unlock(&st->mu);
		*out = c;
		return 0;
	}
	st->nreaders++;
	pthread_mutex_unlock(&st->mu);

	c = sp_xcalloc(1, sizeof(*c));
	rc = open_conn(st->path, true, &c->db, err);
	if (!rc) {
		*out = c;
		return 0;
	}
	free(c);
	pthread_mutex_lock(&st->mu);
	st->nreaders--;
	pthread_cond_signal(&st->pool_cv);
	leave(st);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static void reader_put(struct sqlite_store *st, struct rconn *c)
{
	/* end the read transaction, whatever happened in it */
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&st->mu);
	c->next = st->free_readers;
	st->free_readers = c;
	pthread_cond_signal(&st->pool_cv);
	leave(st);
	pthread_mutex_unlock(&st->mu);
}

static sqlite3_stmt *rstmt_sql(sqlite3 *db, sqlite3_stmt **slot, const char *sql,
			       struct sp_error *err)
{
	if (!*slot && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot,
					 NULL) != SQLITE_OK) {
		db_error(db, err, sql);
		*slot = NULL;
	}
	return *slot;
}

static sqlite3_stmt *rstmt(struct rconn *c, enum rsql k, struct sp_error *err)
{
	return rstmt_sql(c->db, &c->stmts[k], rsql_text[k], err);
}

static void json_str_or_null(cJSON *o, const char *name, sqlite3_stmt *s, int col)
{
	const char *v = col_text(s, col);

	if (v)
		cJSON_AddStringToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

static void json_int_or_null(cJSON *o, const char *name, sqlite3_stmt *s, int col, bool zero_null)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL ||
	    (zero_null && sqlite3_column_int64(s, col) == 0))
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddNumberToObject(o, name, (double)sqlite3_column_int64(s, col));
}

/* RFC 3339 UTC with milliseconds: 2026-12-04T05:01:02.123Z */
static void json_time(cJSON *o, const char *name, sqlite3_stmt *s, int col)
{
	int64_t ms;
	time_t t;
	struct tm tm;
	char buf[40];
	size_t n;

	if (sqlite3_column_type(s, col) == SQLITE_NULL) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	ms = sqlite3_column_int64(s, col);
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm) || !(n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm))) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	cJSON_AddStringToObject(o, name, buf);
}

/* A JSON value stored as text: parsed, or null when absent or unreadable. */
static void json_stored(cJSON *o, const char *name, sqlite3_stmt *s, int col)
{
	const char *v = col_text(s, col);
	cJSON *j = v ? cJSON_Parse(v) : NULL;

	cJSON_AddItemToObject(o, name, j ? j : cJSON_CreateNull());
}

static cJSON *job_json(sqlite3_stmt *s, int64_t now)
{
	cJSON *o = cJSON_CreateObject(), *status;
	bool has_start = sqlite3_column_type(s, JC_STARTED) != SQLITE_NULL;
	bool has_end = sqlite3_column_type(s, JC_FINISHED) != SQLITE_NULL;
	const char *state = col_text(s, JC_STATE);

	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(s, JC_ID));
	json_str_or_null(o, "repo", s, JC_REPO);
	json_str_or_null(o, "event", s, JC_EVENT);
	json_str_or_null(o, "ref", s, JC_REF);
	json_str_or_null(o, "branch", s, JC_BRANCH);
	json_str_or_null(o, "tag", s, JC_TAG);
	json_str_or_null(o, "sha", s, JC_SHA);
	json_int_or_null(o, "pr", s, JC_PR, true);
	json_str_or_null(o, "title", s, JC_TITLE);
	json_str_or_null(o, "author", s, JC_AUTHOR);
	json_str_or_null(o, "sender", s, JC_SENDER);
	json_str_or_null(o, "labels", s, JC_LABELS);
	json_str_or_null(o, "state", s, JC_STATE);
	json_str_or_null(o, "reason", s, JC_REASON);
	json_str_or_null(o, "pipeline", s, JC_PIPELINE);
	json_time(o, "created", s, JC_CREATED);
	json_time(o, "started", s, JC_STARTED);
	json_time(o, "finished", s, JC_FINISHED);
	if (has_start && (has_end || (state && !strcmp(state, "running")))) {
		int64_t end = has_end ? sqlite3_column_int64(s, JC_FINISHED) : now;
		int64_t ms = end - sqlite3_column_int64(s, JC_STARTED);
		cJSON_AddNumberToObject(o, "seconds", (double)(ms > 0 ? ms : 0) / 1000.0);
	} else {
		cJSON_AddNullToObject(o, "seconds");
	}
	cJSON_AddNumberToObject(o, "attempt", sqlite3_column_int(s, JC_ATTEMPT));
	cJSON_AddNumberToObject(o, "epoch", (double)sqlite3_column_int64(s, JC_EPOCH));
	json_str_or_null(o, "agent", s, JC_AGENT);
	cJSON_AddBoolToObject(o, "promoted",
			      sqlite3_column_type(s, JC_PROMOTE_EPOCH) != SQLITE_NULL);
	cJSON_AddBoolToObject(o, "cancel_requested", sqlite3_column_int(s, JC_CANCEL) != 0);
	json_int_or_null(o, "exit_code", s, JC_EXIT_CODE, false);
	json_int_or_null(o, "retry_of", s, JC_RETRY_OF, true);
	json_stored(o, "summary", s, JC_SUMMARY);
	cJSON_AddBoolToObject(o, "statuses", sqlite3_column_int(s, JC_STATUSES) != 0);
	status = cJSON_AddObjectToObject(o, "status");
	cJSON_AddNumberToObject(status, "pending", (double)sqlite3_column_int64(s, JC_ST_PENDING));
	cJSON_AddNumberToObject(status, "failing", (double)sqlite3_column_int64(s, JC_ST_FAILING));
	json_str_or_null(status, "last_error", s, JC_ST_LAST_ERROR);
	if (sqlite3_column_type(s, JC_TESTS_TOTAL) != SQLITE_NULL) {
		cJSON *t = cJSON_AddObjectToObject(o, "tests");
		cJSON_AddNumberToObject(t, "total", (double)sqlite3_column_int64(s, JC_TESTS_TOTAL));
		cJSON_AddNumberToObject(t, "passed",
					(double)sqlite3_column_int64(s, JC_TESTS_PASSED));
		cJSON_AddNumberToObject(t, "failed",
					(double)sqlite3_column_int64(s, JC_TESTS_FAILED));
	} else {
		cJSON_AddNullToObject(o, "tests");
	}
	if (sqlite3_column_type(s, JC_COVERAGE) != SQLITE_NULL)
		cJSON_AddNumberToObject(o, "coverage", sqlite3_column_double(s, JC_COVERAGE));
	else
		cJSON_AddNullToObject(o, "coverage");
	if (sqlite3_column_type(s, JC_COVERAGE_MIN) != SQLITE_NULL)
		cJSON_AddNumberToObject(o, "coverage_min", sqlite3_column_double(s, JC_COVERAGE_MIN));
	else
		cJSON_AddNullToObject(o, "coverage_min");
	cJSON_AddNumberToObject(o, "rev", (double)sqlite3_column_int64(s, JC_REV));
	return o;
}

static int op_job_get(struct sp_store *base, int64_t job, cJSON **out, struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(base);
	struct rconn *c = NULL;
	sqlite3_stmt *s = NULL, *q = NULL;
	cJSON *o = NULL, *stages;
	int rc;

	*out = NULL;
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	rc = exec_sql(c->db, "BEGIN", err);  /* one snapshot for the job and its stages */
	if (rc)
		goto cleanup;
	if (!(s = rstmt(c, R_JOB_GET, err)) || !(q = rstmt(c, R_STAGES, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	sqlite3_bind_int64(s, 1, job);
	rc = step(s, err);
	if (rc == 0)
		rc = sp_error_set(err, SP_ENOTFOUND, "job %" PRId64 " not found", job);
	if (rc < 0)
		goto cleanup;
	o = job_json(s, now_ms());
	stages = cJSON_AddArrayToObject(o, "stages");
	sqlite3_bind_int64(q, 1, job);
	while ((rc = step(q, err)) == 1) {
		cJSON *g = cJSON_CreateObject();
		json_str_or_null(g, "name", q, 0);
		cJSON_AddNumberToObject(g, "pos", sqlite3_column_int(q, 1));
		json_str_or_null(g, "state", q, 2);
		cJSON_AddNumberToObject(g, "seconds", sqlite3_column_double(q, 3));
		json_stored(g, "report", q, 4);
		cJSON_AddItemToArray(stages, g);
	}
	if (rc < 0)
		goto cleanup;
	*out = o;
	o = NULL;  /* the caller's */
	rc = 0;
cleanup:
	if (s)
		finish_stmt(s);
	if (q)
		finish_stmt(q);
	cJSON_Delete(o);
	reader_put(st, c);
	return rc;
}

static int op_job_list(struct sp_store *base, const struct sp_job_filter *f, cJSON **out,
		       struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(base);
	struct rconn *c = NULL;
	sqlite3_stmt *s = NULL;
	struct sp_buf sql = SP_BUF_INIT;
	cJSON *o = NULL, *jobs;
	int limit = f && f->limit > 0 ? f->limit : 50, mask = 0, n = 0, rc;
	int64_t last = 0, now = now_ms();

	*out = NULL;
	if (limit > 200)
		limit = 200;
	if (f && f->state && sp_job_state_parse(f->state) < 0)
		return sp_error_set(err, SP_ECONFIG, "unknown job state \"%s\"", f->state);
	if (f) {
		mask |= f->repo ? LF_REPO : 0;
		mask |= f->state ? LF_STATE : 0;
		mask |= f->ref ? LF_REF : 0;
		mask |= f->before > 0 ? LF_BEFORE : 0;
	}
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	if (!c->list[mask]) {
		sp_buf_addstr(&sql, "SELECT " JOB_COLS " FROM jobs j WHERE 1");
		if (mask & LF_REPO)
			sp_buf_addstr(&sql, " AND j.repo = ?1");
		if (mask & LF_STATE)
			sp_buf_addstr(&sql, " AND j.state = ?2");
		if (mask & LF_REF)
			sp_buf_addstr(&sql, " AND (j.ref = ?3 OR j.branch = ?3)");
		if (mask & LF_BEFORE)
			sp_buf_addstr(&sql, " AND j.id < ?4");
		sp_buf_addstr(&sql, " ORDER BY j.id DESC LIMIT ?5");
	}
	if (!(s = rstmt_sql(c->db, &c->list[mask], sql.data, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	if (mask & LF_REPO)
		bind_str(s, 1, f->repo);
	if (mask & LF_STATE)
		bind_str(s, 2, f->state);
	if (mask & LF_REF)
		bind_str(s, 3, f->ref);
	if (mask & LF_BEFORE)
		sqlite3_bind_int64(s, 4, f->before);
	sqlite3_bind_int(s, 5, limit + 1);  /* one more says whether there are more */
	o = cJSON_CreateObject();
	jobs = cJSON_AddArrayToObject(o, "jobs");
	while ((rc = step(s, err)) == 1) {
		if (n == limit)
			break;
		cJSON_AddItemToArray(jobs, job_json(s, now));
		last = sqlite3_column_int64(s, JC_ID);
		n++;
	}
	if (rc < 0)
		goto cleanup;
	if (rc == 1)
		cJSON_AddNumberToObject(o, "next", (double)last);
	else
		cJSON_AddNullToObject(o, "next");
	*out = o;
	o = NULL;  /* the caller's */
	rc = 0;
cleanup:
	if (s)
		finish_stmt(s);
	cJSON_Delete(o);
	sp_buf_release(&sql);
	reader_put(st, c);
	return rc;
}

static int op_delivery_count(struct sp_store *base, const char *repo, int64_t *n,
			     struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(base);
	struct rconn *c = NULL;
	sqlite3_stmt *s;
	int rc;

	*n = 0;
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	s = rstmt(c, repo ? R_DELIVERIES_REPO : R_DELIVERIES_ALL, err);
	if (!s) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	if (repo)
		bind_str(s, 1, repo);
	rc = step(s, err);
	if (rc == 1) {
		*n = sqlite3_column_int64(s, 0);
		rc = 0;
	}
	finish_stmt(s);
cleanup:
	reader_put(st, c);
	return rc;
}

static int op_branches(struct sp_store *base, const char *repo, const char *branch, int limit,
		       cJSON **out, struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(base);
	struct rconn *c = NULL;
	sqlite3_stmt *s;
	cJSON *o = NULL, *arr;
	int64_t now = now_ms();
	int rc;

	*out = NULL;
	if (!repo)
		return sp_error_set(err, SP_ERROR, "store: branches needs a repository");
	if (limit <= 0 || limit > 200)
		limit = 50;
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	if (!(s = rstmt(c, branch ? R_BRANCH_LAST : R_BRANCHES, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	bind_str(s, 1, repo);
	if (branch)
		bind_str(s, 2, branch);
	else
		sqlite3_bind_int(s, 2, limit);
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "branches");
	while ((rc = step(s, err)) == 1)
		cJSON_AddItemToArray(arr, job_json(s, now));
	finish_stmt(s);
	if (rc < 0)
		goto cleanup;
	*out = o;
	o = NULL;  /* the caller's */
	rc = 0;
cleanup:
	cJSON_Delete(o);
	reader_put(st, c);
	return rc;
}

static int op_job_changes(struct sp_store *base, int64_t since, int64_t *ids, size_t max,
			  size_t *n, int64_t *last, struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(base);
	struct rconn *c = NULL;
	sqlite3_stmt *s;
	int rc;

	*n = 0;
	*last = since;
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	if (since < 0 || !max) {
		if (!(s = rstmt(c, R_REV_MAX, err))) {
			rc = SP_EENGINE;
			goto cleanup;
		}
		rc = step(s, err);
		if (rc == 1) {
			*last = since < 0 || sqlite3_column_int64(s, 0) < since
				? sqlite3_column_int64(s, 0) : since;
			rc = 0;
		}
		finish_stmt(s);
		goto cleanup;
	}
	if (!(s = rstmt(c, R_CHANGES, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	sqlite3_bind_int64(s, 1, since);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
	while ((rc = step(s, err)) == 1) {
		ids[(*n)++] = sqlite3_column_int64(s, 0);
		*last = sqlite3_column_int64(s, 1);
	}
	finish_stmt(s);
	if (rc > 0)
		rc = 0;
cleanup:
	reader_put(st, c);
	return rc;
}

static int op_counts(struct sp_store *base, struct sp_store_counts *out, struct sp_error *err)
{
	struct sqlite_store *st = to_sqlite(base);
	struct rconn *c = NULL;
	sqlite3_stmt *s = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	rc = exec_sql(c->db, "BEGIN", err);
	if (rc)
		goto cleanup;
	if (!(s = rstmt(c, R_JOB_COUNTS, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	while ((rc = step(s, err)) == 1) {
		int k = sp_job_state_parse(col_text(s, 0));
		if (k >= 0)
			out->jobs[k] = sqlite3_column_int64(s, 1);
	}
	finish_stmt(s);
	if (rc < 0)
		goto cleanup;
	if (!(s = rstmt(c, R_OUTBOX_COUNTS, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	rc = step(s, err);
	if (rc == 1) {
		out->outbox_pending = sqlite3_column_int64(s, 0);
		out->outbox_failing = sqlite3_column_int64(s, 1);
	}
	finish_stmt(s);
	if (rc < 0)
		goto cleanup;
	if (!(s = rstmt(c, R_DELIVERIES_ALL, err))) {
		rc = SP_EENGINE;
		goto cleanup;
	}
	rc = step(s, err);
	if (rc == 1)
		out->deliveries = sqlite3_column_int64(s, 0);
	finish_stmt(s);
	rc = rc < 0 ? rc : 0;
cleanup:
	reader_put(st, c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */

static void destroy(struct sqlite_store *st)
{
	struct rconn *c, *next;

	/* readers first, the writer's connection last: the last connection
	 * to close checkpoints and removes the WAL file */
	for (c = st->free_readers; c; c = next) {
		next = c->next;
		rconn_close(c);
	}
	for (int i = 0; i < W_COUNT; i++)
		sqlite3_finalize(st->w[i]);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->pool_cv);
	pthread_cond_destroy(&st->idle_cv);
	free(st->path);
	free(st);
}

static void op_close(struct sp_store *base)
{
	struct sqlite_store *st = to_sqlite(base);

	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->mu);
	if (st->writer_started)
		pthread_join(st->writer, NULL);  /* it drains the queue first */
	pthread_mutex_lock(&st->mu);
	while (st->inflight)
		pthread_cond_wait(&st->idle_cv, &st->mu);
	pthread_mutex_unlock(&st->mu);
	destroy(st);
}

int sp_store_open_sqlite(struct sp_store **out, const struct sp_store_opts *o,
			 struct sp_error *err)
{
	struct sqlite_store *st = NULL;
	int fd, rc;

	*out = NULL;
	if (!o || !o->path || !*o->path)
		return sp_error_set(err, SP_ECONFIG, "store: no database path");
	if (!sqlite3_threadsafe())
		return sp_error_set(err, SP_ERROR, "store: SQLite was built without threads");

	st = sp_xcalloc(1, sizeof(*st));
	st->base.ops = &sqlite_ops;
	st->path = sp_xstrdup(o->path);
	st->batch_max = o->batch_max > 0 ? o->batch_max : DEFAULT_BATCH_MAX;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->wake, NULL);
	pthread_cond_init(&st->pool_cv, NULL);
	pthread_cond_init(&st->idle_cv, NULL);

	rc = make_parent(st->path, err);
	if (rc)
		goto fail;
	/* the file first, so it is private (SQLite gives its -wal and -shm
	 * files the database file's mode) */
	fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = sp_error_set(err, SP_ERROR, "store: cannot create %s: %s", st->path,
				  strerror(errno));
		goto fail;
	}
	close(fd);
	rc = open_conn(st->path, false, &st->db, err);
	if (rc)
		goto fail;
	rc = migrate(st->db, st->path, err);
	if (rc)
		goto fail;
	for (int i = 0; i < W_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, wsql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &st->w[i], NULL) != SQLITE_OK) {
			rc = db_error(st->db, err, wsql_text[i]);
			goto fail;
		}
	}
	if (pthread_create(&st->writer, NULL, writer_main, st)) {
		rc = sp_error_set(err, SP_ERROR, "store: cannot start the writer thread");
		goto fail;
	}
	st->writer_started = true;
	*out = &st->base;
	return 0;
fail:
	destroy(st);
	return rc;
}

void sp_store_sqlite_stats(struct sp_store *base, struct sp_store_sqlite_stats *out)
{
	struct sqlite_store *st;

	memset(out, 0, sizeof(*out));
	if (!base || base->ops != &sqlite_ops)
		return;
	st = to_sqlite(base);
	pthread_mutex_lock(&st->mu);
	out->commits = st->commits;
	out->requests = st->requests;
	pthread_mutex_unlock(&st->mu);
}

static const struct sp_store_ops sqlite_ops = {
	.name = "sqlite",
	.close = op_close,
	.ingest = op_ingest,
	.job_create = op_job_create,
	.lease = op_lease,
	.renew = op_renew,
	.stage = op_stage,
	.promote = op_promote,
	.finish = op_finish,
	.expire = op_expire,
	.cancel = op_cancel,
	.requeue = op_requeue,
	.relabel = op_relabel,
	.job_get = op_job_get,
	.job_list = op_job_list,
	.delivery_count = op_delivery_count,
	.branches = op_branches,
	.job_changes = op_job_changes,
	.outbox_next = op_outbox_next,
	.outbox_done = op_outbox_done,
	.counts = op_counts,
	.ping = op_ping,
	.last_write = op_last_write,
};
