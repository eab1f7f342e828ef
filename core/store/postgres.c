/*
 * postgres.c — the PostgreSQL backend of the job store (see store.h), for
 * several `stagepipe serve` processes sharing one queue.
 *
 * Design note.
 *
 * The same shape as sqlite.c, so both behave alike: every write goes
 * through ONE writer thread per server, which owns one connection and runs
 * everything pending (up to batch_max requests) in one transaction, each
 * request in its own SAVEPOINT (a failing request is rolled back alone),
 * then wakes each caller with its own result after the COMMIT returned:
 * group commit, one WAL flush a batch, and 2xx only after commit.  Reads
 * use a small pool of other connections.
 *
 * Ingests, the bulk of the writes, take a shorter way: each is one
 * statement (W_INGEST: delivery, job and first status in CTEs), and a
 * batch's ingests go in one libpq pipeline without savepoints — one round
 * trip for them all.  One failing there aborts the transaction, so the
 * batch runs again the savepoint way, where it fails alone (run_pipeline).
 *
 * What several servers need, and where it is:
 * - Delivery dedupe by the unique key (repo, id).  A batch first takes a
 *   transaction-level advisory lock on each of its deliveries' keys, all
 *   in one statement and in one order every server uses (lock_deliveries):
 *   a server storing a delivery another one is storing waits for that
 *   one's COMMIT, then sees the row (a duplicate, the same job).  Two
 *   servers' batches cannot wait on each other's keys in a cycle — without
 *   this, batches holding the same new keys in other orders deadlocked,
 *   again and again when deliveries kept coming, until a batch gave up and
 *   its hooks answered 503.  INSERT ... ON CONFLICT DO NOTHING (the safe
 *   way) and the unique key stay the last word.
 * - Leases: SELECT ... FOR UPDATE SKIP LOCKED picks the oldest queued job
 *   whose labels the agent has; servers leasing at once take different
 *   jobs.  Every fenced write locks the job row first (FOR UPDATE) and
 *   checks (epoch, state) on the locked row; the promote permit is one
 *   UPDATE ... WHERE promote_epoch IS NULL (at most once, whoever asks).
 * - Lease expiry: each server's keeper calls expire; the scan locks the
 *   expired rows with SKIP LOCKED and rechecks them, so a job is taken
 *   back exactly once, by whichever server gets there first.
 * - Outbox: rows due are claimed with SKIP LOCKED, so two servers' senders
 *   do not send the same row at the same time.
 * - Migrations: one transaction each, under a transaction-level advisory
 *   lock, the version read inside it: servers starting together migrate
 *   once.  The version lives in the table stagepipe_schema.
 * - Two servers' batches may lock the same job rows in other orders: a
 *   deadlock (40P01) or serialization failure (40001) rolls the batch back
 *   and the writer runs it again (a few times) before failing it.
 * - A lost connection fails the batch it happens in (SP_EENGINE: 503, the
 *   forge retries and dedupe keeps that safe); the next batch reconnects.
 *
 * Schema: the same tables, columns and migrations as sqlite.c in
 * PostgreSQL's dialect (BIGINT milliseconds, DOUBLE PRECISION, BIGSERIAL;
 * the rev counter is a sequence set by triggers).  A database newer than
 * this binary is refused.  jobs.rev: with several servers a reader may see
 * a higher rev commit before a lower one (sequence values are taken before
 * commit), so job_changes can miss a change made on another server at the
 * same moment; the web UI's next full reload shows it.
 *
 * Connection URLs carry passwords: sp_store_pg_mask_url hides them, and
 * no message of this file prints a URL unmasked.
 *
 * Wakes: a batch that queued a job (new, or put back) sends NOTIFY
 * stagepipe_queued right after its COMMIT, in a transaction of its own
 * (send_notify says why not in the batch's); sp_store_listen runs a
 * thread with a connection of its own that LISTENs and calls the server
 * back, so idle long-polls on every server wake at once.
 *
 * Logs: a job's log lines are chunks in job_log (job, stage, byte offset,
 * bytes), appended through the writer like any write (logs.c buffers the
 * lines and appends a chunk every 64 KiB or 250 ms), read from the pool in
 * windows (api.c never holds a whole log).  The append takes its offset
 * from the stage's last chunk in its own transaction, so a retried job
 * goes on after the earlier attempt's lines whichever server ran it.
 *
 * Locking: st->mu guards the queue, the reader pool and the counters; the
 * writer holds it only to take a batch and to wake callers.  The
 * listener's callback runs under st->listen_mu only.
 */
#include "core/store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"

#define DEFAULT_BATCH_MAX 512
#define READERS_MAX 8
#define DEFAULT_TTL_MS 30000
#define DEFAULT_MAX_ATTEMPTS 3
#define OUTBOX_CLAIM_MS 60000
#define CONTEXT_BASE "stagepipe"
#define BATCH_RETRIES 5
/* pg_advisory_xact_lock key of migrations ("stgp" in ASCII, then 1) */
#define MIGRATE_LOCK "7310579520001"
/* pg_advisory_xact_lock(int, int) class of delivery keys ("stpd" in ASCII;
 * the two-key space, apart from MIGRATE_LOCK's) */
#define DELIVERY_LOCK_CLASS "1937010788"
#define NPARAMS 24
/* ingests sent in one pipeline at most (bounds what the server answers
 * before we read: a blocking send cannot wait on a full reply buffer) */
#define PIPELINE_MAX 64

/* ------------------------------------------------------------------ */
/* Schema                                                              */

/* Migration i brings the schema from version i to i + 1 (as sqlite.c). */
static const char *const migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE jobs ("
	"  id BIGSERIAL PRIMARY KEY,"
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
	"  created_at BIGINT NOT NULL,"
	"  started_at BIGINT,"
	"  finished_at BIGINT,"
	"  epoch BIGINT NOT NULL DEFAULT 0,"
	"  attempt INTEGER NOT NULL DEFAULT 0,"
	"  agent TEXT,"
	"  lease_expires_at BIGINT,"
	"  cancel_requested INTEGER NOT NULL DEFAULT 0,"
	"  promote_epoch BIGINT,"
	"  promote_attempt INTEGER,"
	"  exit_code INTEGER,"
	"  retry_of BIGINT,"
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
	"  job_id BIGINT REFERENCES jobs (id),"
	"  received_at BIGINT NOT NULL,"
	"  UNIQUE (repo, id)"
	");"
	"CREATE TABLE stages ("
	"  job_id BIGINT NOT NULL REFERENCES jobs (id),"
	"  name TEXT NOT NULL,"
	"  pos INTEGER NOT NULL,"
	"  state TEXT NOT NULL,"
	"  seconds DOUBLE PRECISION NOT NULL DEFAULT 0,"
	"  report TEXT,"
	"  updated_at BIGINT NOT NULL,"
	"  PRIMARY KEY (job_id, name)"
	");"
	"CREATE TABLE outbox ("
	"  id BIGSERIAL PRIMARY KEY,"
	"  job_id BIGINT NOT NULL REFERENCES jobs (id),"
	"  repo TEXT NOT NULL,"
	"  sha TEXT NOT NULL,"
	"  context TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  description TEXT,"
	"  created_at BIGINT NOT NULL,"
	"  due_at BIGINT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT,"
	"  sent_at BIGINT,"
	"  superseded INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX outbox_due ON outbox (due_at) WHERE sent_at IS NULL AND superseded = 0;"
	"CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND superseded = 0;"
	"CREATE INDEX outbox_key ON outbox (repo, sha, context, id);"
	"CREATE INDEX outbox_job ON outbox (job_id);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);",

	/* 2: for the web UI (see sqlite.c): jobs.rev from a sequence, set by
	 * triggers; the stages' test counts and coverage as columns */
	"CREATE SEQUENCE jobs_rev_seq;"
	"ALTER TABLE jobs ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;"
	"UPDATE jobs SET rev = id;"
	"SELECT setval('jobs_rev_seq', coalesce((SELECT max(rev) FROM jobs), 0) + 1, false);"
	"CREATE INDEX jobs_rev ON jobs (rev);"
	"CREATE INDEX jobs_branch_last ON jobs (repo, branch, id)"
	"  WHERE event IN ('push', 'manual') AND branch IS NOT NULL;"
	"CREATE FUNCTION jobs_rev_bump() RETURNS trigger LANGUAGE plpgsql AS"
	"  $$ BEGIN NEW.rev := nextval('jobs_rev_seq'); RETURN NEW; END $$;"
	"CREATE TRIGGER jobs_rev_insert BEFORE INSERT ON jobs"
	"  FOR EACH ROW EXECUTE FUNCTION jobs_rev_bump();"
	"CREATE TRIGGER jobs_rev_update BEFORE UPDATE OF state, started_at, finished_at,"
	"  cancel_requested, attempt, agent ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_rev_bump();"
	"ALTER TABLE stages ADD COLUMN tests_total BIGINT, ADD COLUMN tests_passed BIGINT,"
	"  ADD COLUMN tests_failed BIGINT, ADD COLUMN coverage DOUBLE PRECISION,"
	"  ADD COLUMN coverage_min DOUBLE PRECISION;"
	"UPDATE stages SET"
	"  tests_total = (report::jsonb #>> '{tests,total}')::double precision::bigint,"
	"  tests_passed = (report::jsonb #>> '{tests,passed}')::double precision::bigint,"
	"  tests_failed = coalesce((report::jsonb #>> '{tests,failed}')::double precision, 0)"
	"    + coalesce((report::jsonb #>> '{tests,errors}')::double precision, 0),"
	"  coverage = (report::jsonb ->> 'coverage')::double precision,"
	"  coverage_min = (report::jsonb ->> 'coverage_min')::double precision"
	"  WHERE report IS NOT NULL;"
	"UPDATE stages SET tests_failed = NULL WHERE tests_total IS NULL;"
	"CREATE FUNCTION stages_rev_bump() RETURNS trigger LANGUAGE plpgsql AS"
	"  $$ BEGIN UPDATE jobs SET rev = nextval('jobs_rev_seq') WHERE id = NEW.job_id;"
	"  RETURN NULL; END $$;"
	"CREATE TRIGGER stages_rev_insert AFTER INSERT ON stages"
	"  FOR EACH ROW EXECUTE FUNCTION stages_rev_bump();"
	"CREATE TRIGGER stages_rev_update AFTER UPDATE OF state ON stages"
	"  FOR EACH ROW EXECUTE FUNCTION stages_rev_bump();",

	/* 3: a job's logs, so that every server reads them (sqlite.c: nothing,
	 * its logs are files): chunks of whole lines at their byte offset in
	 * the stage's log; the primary key is the index of every read */
	"CREATE TABLE job_log ("
	"  job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
	"  stage TEXT NOT NULL,"
	"  off BIGINT NOT NULL,"
	"  data BYTEA NOT NULL,"
	"  PRIMARY KEY (job_id, stage, off)"
	");",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ------------------------------------------------------------------ */
/* Statements of the writer connection, prepared once per connection   */

enum wsql {
	W_DELIVERY_LOCK,
	W_DELIVERY_CLAIM,
	W_DELIVERY_FIND,
	W_DELIVERY_JOB,
	W_INGEST,
	W_JOB_ADD,
	W_SUPERSEDE_FIND,
	W_JOB_END,
	W_JOB_MARK_CANCEL,
	W_JOB_BACK,
	W_JOB_RELABEL,
	W_JOB_FENCE,
	W_JOB_PEEK,
	W_OUTBOX_ADD,
	W_LEASE_PICK,
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
	W_LOG_APPEND,
	W_COUNT
};

/* A job's labels "a, b" as a text array without blanks (labels_cover in SQL). */
#define LABELS(x) "array_remove(regexp_split_to_array(btrim(coalesce(" x ", ''), E' \\t')," \
	" E'[ \\t]*,[ \\t]*'), '')"

static const char *const wsql_text[W_COUNT] = {
	/* at the stage's end as this transaction sees it: another server
	 * appending at the same moment makes one of the two fail (the key) */
	[W_LOG_APPEND] =
		"INSERT INTO job_log (job_id, stage, off, data) SELECT $1::bigint, $2,"
		" coalesce((SELECT l.off + length(l.data) FROM job_log l WHERE l.job_id = $1::bigint"
		" AND l.stage = $2 ORDER BY l.off DESC LIMIT 1), 0), $3::bytea RETURNING off",
	/* the keys in the array's order: unnest's rows are locked one by one */
	[W_DELIVERY_LOCK] =
		"SELECT pg_advisory_xact_lock(" DELIVERY_LOCK_CLASS ", k) FROM unnest($1::integer[])"
		" AS k",
	[W_DELIVERY_CLAIM] =
		"INSERT INTO deliveries (repo, id, forge, event, outcome, received_at)"
		" VALUES ($1, $2, $3, $4, $5, $6::bigint) ON CONFLICT (repo, id) DO NOTHING"
		" RETURNING 1",
	[W_DELIVERY_FIND] = "SELECT job_id FROM deliveries WHERE repo = $1 AND id = $2",
	[W_DELIVERY_JOB] = "UPDATE deliveries SET job_id = $3::bigint WHERE repo = $1 AND id = $2",
	/* a delivery and its job (and its first status) in one statement, for
	 * the pipeline: a delivery seen before is a duplicate (another server
	 * storing it right now holds its lock: lock_deliveries waited until it
	 * committed); should one still fail the unique key (23505), the batch
	 * runs again the safe way */
	[W_INGEST] =
		"WITH old AS (SELECT job_id FROM deliveries WHERE repo = $1::text"
		" AND id = $2::text),"
		" j AS (INSERT INTO jobs (repo, event, ref, branch, tag, sha, pr, title, author,"
		" sender, labels, supersede_key, state, created_at, retry_of, statuses)"
		" SELECT $8::text, $9::text, $10::text, $11::text, $12::text, $13::text,"
		" $14::integer, $15::text, $16::text, $17::text, $18::text, $19::text,"
		" 'queued', $6::bigint, $20::bigint, $21::integer"
		" WHERE $7::boolean AND NOT EXISTS (SELECT 1 FROM old)"
		" RETURNING id, repo, sha, statuses),"
		" d AS (INSERT INTO deliveries (repo, id, forge, event, outcome, received_at, job_id)"
		" SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint,"
		" (SELECT id FROM j)"
		" WHERE NOT EXISTS (SELECT 1 FROM old)),"
		" o AS (INSERT INTO outbox (job_id, repo, sha, context, state, description,"
		" created_at, due_at) SELECT id, repo, sha, $22::text, $23::text, $24::text, $6::bigint, $6::bigint"
		" FROM j WHERE statuses <> 0)"
		" SELECT EXISTS (SELECT 1 FROM old), (SELECT job_id FROM old), (SELECT id FROM j)",
	[W_JOB_ADD] =
		"INSERT INTO jobs (repo, event, ref, branch, tag, sha, pr, title, author,"
		" sender, labels, supersede_key, state, created_at, retry_of, statuses)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7::integer, $8, $9, $10, $11, $12, 'queued',"
		" $13::bigint, $14::bigint, $15::integer) RETURNING id",
	[W_SUPERSEDE_FIND] =
		"SELECT id, state FROM jobs WHERE repo = $1 AND supersede_key = $2"
		" AND state IN ('queued', 'running') AND id < $3::bigint AND sha <> $4"
		" AND cancel_requested = 0 ORDER BY id FOR UPDATE",
	[W_JOB_END] =
		"UPDATE jobs SET state = $2, reason = coalesce($3::text, reason),"
		" finished_at = $4::bigint, lease_expires_at = NULL WHERE id = $1::bigint"
		" RETURNING repo, sha, statuses",
	[W_JOB_MARK_CANCEL] =
		"UPDATE jobs SET cancel_requested = 1, reason = coalesce($2::text, reason)"
		" WHERE id = $1::bigint",
	[W_JOB_BACK] =
		"UPDATE jobs SET state = 'queued', reason = $2, agent = NULL,"
		" lease_expires_at = NULL WHERE id = $1::bigint RETURNING repo, sha, statuses",
	[W_JOB_RELABEL] =
		"UPDATE jobs SET labels = $2, attempt = greatest(attempt - 1, 0)"
		" WHERE id = $1::bigint",
	[W_JOB_FENCE] =
		"SELECT repo, sha, statuses, attempt, cancel_requested FROM jobs"
		" WHERE id = $1::bigint AND epoch = $2::bigint AND state = 'running' FOR UPDATE",
	[W_JOB_PEEK] =
		"SELECT state, epoch, promote_epoch, promote_attempt, repo, sha, statuses,"
		" cancel_requested FROM jobs WHERE id = $1::bigint FOR UPDATE",
	[W_OUTBOX_ADD] =
		"INSERT INTO outbox (job_id, repo, sha, context, state, description,"
		" created_at, due_at) VALUES ($1::bigint, $2, $3, $4, $5, $6, $7::bigint,"
		" $7::bigint)",
	[W_LEASE_PICK] =
		"SELECT id FROM jobs WHERE state = 'queued' AND (labels IS NULL OR "
		LABELS("labels") " <@ " LABELS("$1::text") ") ORDER BY id LIMIT 1"
		" FOR UPDATE SKIP LOCKED",
	[W_LEASE_TAKE] =
		"UPDATE jobs SET state = 'running', epoch = epoch + 1, attempt = attempt + 1,"
		" agent = $2, lease_expires_at = $3::bigint, started_at = $4::bigint"
		" WHERE id = $1::bigint AND state = 'queued'"
		" RETURNING epoch, attempt, repo, event, ref, branch, tag, sha, pr, statuses",
	[W_RENEW] =
		"UPDATE jobs SET lease_expires_at = $3::bigint WHERE id = $1::bigint"
		" AND epoch = $2::bigint AND state = 'running' RETURNING cancel_requested",
	[W_STAGE_PUT] =
		"INSERT INTO stages AS s (job_id, name, pos, state, seconds, report, updated_at,"
		" tests_total, tests_passed, tests_failed, coverage, coverage_min)"
		" VALUES ($1::bigint, $2, $3::integer, $4, $5::double precision, $6, $7::bigint,"
		" $8::bigint, $9::bigint, $10::bigint, $11::double precision,"
		" $12::double precision)"
		" ON CONFLICT (job_id, name) DO UPDATE SET pos = excluded.pos,"
		" state = excluded.state, seconds = excluded.seconds,"
		" report = coalesce(excluded.report, s.report),"
		" updated_at = excluded.updated_at,"
		" tests_total = CASE WHEN excluded.report IS NULL THEN s.tests_total"
		"  ELSE excluded.tests_total END,"
		" tests_passed = CASE WHEN excluded.report IS NULL THEN s.tests_passed"
		"  ELSE excluded.tests_passed END,"
		" tests_failed = CASE WHEN excluded.report IS NULL THEN s.tests_failed"
		"  ELSE excluded.tests_failed END,"
		" coverage = CASE WHEN excluded.report IS NULL THEN s.coverage"
		"  ELSE excluded.coverage END,"
		" coverage_min = CASE WHEN excluded.report IS NULL THEN s.coverage_min"
		"  ELSE excluded.coverage_min END",
	[W_PROMOTE] =
		"UPDATE jobs SET promote_epoch = $2::bigint, promote_attempt = attempt"
		" WHERE id = $1::bigint AND epoch = $2::bigint AND state = 'running'"
		" AND promote_epoch IS NULL AND cancel_requested = 0",
	[W_FINISH] =
		"UPDATE jobs SET state = $3::text,"
		" reason = CASE WHEN $4::text IS NOT NULL THEN $4::text"
		"  WHEN $3::text = 'cancelled' THEN reason END,"
		" exit_code = $5::integer, summary = $6, pipeline = coalesce($7::text, pipeline),"
		" finished_at = $8::bigint, lease_expires_at = NULL"
		" WHERE id = $1::bigint AND epoch = $2::bigint AND state = 'running'"
		" RETURNING repo, sha, statuses",
	[W_STAGES_CLOSE] =
		"UPDATE stages SET state = CASE WHEN state = 'running' THEN $2::text"
		" ELSE 'skipped' END, updated_at = $3::bigint"
		" WHERE job_id = $1::bigint AND state IN ('running', 'pending')",
	[W_EXPIRE_SCAN] =
		"SELECT id, attempt, cancel_requested FROM jobs"
		" WHERE state = 'running' AND lease_expires_at < $1::bigint ORDER BY id"
		" FOR UPDATE SKIP LOCKED",
	[W_OUTBOX_SUPERSEDE] =
		"UPDATE outbox AS o SET superseded = 1 WHERE o.sent_at IS NULL AND o.superseded = 0"
		" AND EXISTS (SELECT 1 FROM outbox n WHERE n.repo = o.repo"
		" AND n.sha = o.sha AND n.context = o.context AND n.id > o.id)",
	[W_OUTBOX_DUE] =
		"SELECT id, job_id, repo, sha, context, state, description, attempts FROM outbox"
		" WHERE sent_at IS NULL AND superseded = 0 AND due_at <= $1::bigint"
		" ORDER BY due_at, id LIMIT $2::integer FOR UPDATE SKIP LOCKED",
	[W_OUTBOX_CLAIM] = "UPDATE outbox SET due_at = $2::bigint WHERE id = $1::bigint",
	[W_OUTBOX_SENT] =
		"UPDATE outbox SET sent_at = $2::bigint, attempts = attempts + 1"
		" WHERE id = $1::bigint",
	[W_OUTBOX_FAILED] =
		"UPDATE outbox SET attempts = attempts + 1, last_error = $2, due_at = $3::bigint"
		" WHERE id = $1::bigint",
	[W_PING] =
		"INSERT INTO meta (key, value) VALUES ('ping', $1)"
		" ON CONFLICT (key) DO UPDATE SET value = excluded.value",
};

/* ------------------------------------------------------------------ */
/* Reads                                                               */

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

#define R_JOB_GET "SELECT " JOB_COLS " FROM jobs j WHERE j.id = $1::bigint"
#define R_STAGES \
	"SELECT name, pos, state, seconds, report FROM stages WHERE job_id = $1::bigint" \
	" ORDER BY pos, name"
#define R_DELIVERIES_ALL "SELECT count(*) FROM deliveries"
#define R_DELIVERIES_REPO "SELECT count(*) FROM deliveries WHERE repo = $1"
#define R_JOB_COUNTS "SELECT state, count(*) FROM jobs GROUP BY state"
#define R_OUTBOX_COUNTS \
	"SELECT count(*) FILTER (WHERE due_at IS NOT NULL), count(*) FILTER (WHERE attempts > 0)" \
	" FROM outbox WHERE sent_at IS NULL AND superseded = 0"
#define R_BRANCHES \
	"SELECT " JOB_COLS " FROM jobs j WHERE j.id IN (SELECT max(b.id) FROM jobs b" \
	"  WHERE b.repo = $1 AND b.event IN ('push', 'manual') AND b.branch IS NOT NULL" \
	"  GROUP BY b.branch) ORDER BY j.id DESC LIMIT $2::integer"
#define R_BRANCH_LAST \
	"SELECT " JOB_COLS " FROM jobs j WHERE j.repo = $1 AND j.branch = $2" \
	" AND j.event IN ('push', 'manual') ORDER BY j.id DESC LIMIT 1"
#define R_REV_MAX "SELECT coalesce(max(rev), 0) FROM jobs"
#define R_CHANGES \
	"SELECT id, rev FROM jobs WHERE rev > $1::bigint ORDER BY rev LIMIT $2::bigint"

/* ------------------------------------------------------------------ */
/* Write requests (as sqlite.c)                                        */

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
	OP_LOG_APPEND,
};

/* One write, on the caller's stack while the caller waits. */
struct wreq {
	enum wop op;
	/* arguments, borrowed from the caller */
	const struct sp_delivery *delivery;
	const struct sp_job_spec *job;
	const struct sp_lease_req *lease_req;
	const struct sp_stage_update *stage;
	const struct sp_finish *finish;
	const char *text;
	const char *labels;
	int64_t id, epoch;
	int num;
	int64_t asked_ms;             /* expire: when it was asked (see op_expire) */
	bool ok;
	const void *data;
	size_t len;
	/* results */
	int64_t off;
	int rc;
	struct sp_error e;
	struct sp_ingest_result ingest;
	struct sp_lease lease;
	bool flag;
	char reason[160];
	int requeued, failed;
	enum sp_job_state state_after;
	struct sp_status_row *rows;
	size_t nrows;
	bool piped;                   /* sent in the batch's pipeline */
	/* the queue */
	bool done;
	pthread_cond_t cv;
	struct wreq *next;
};

struct rconn {
	PGconn *db;
	struct rconn *next;
};

struct pg_store {
	struct sp_store base;
	char *url;                    /* as configured: may hold a password, never printed */
	char *shown;                  /* url with the password masked */
	int batch_max;

	PGconn *db;                   /* the writer's; only the writer thread uses it */
	bool prepared;                /* the writer's statements exist on db */
	bool notify;                  /* the batch queued a job: NOTIFY after it */
	bool notify_owed;             /* a NOTIFY that did not go out yet */
	char sqlstate[6];             /* of the writer's last failed statement */
	pthread_t writer;
	bool writer_started;

	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_cond_t pool_cv;
	pthread_cond_t idle_cv;
	struct wreq *head, *tail;
	bool stopping;
	int inflight;
	struct rconn *free_readers;
	int nreaders;
	uint64_t commits, requests, retries;
	bool write_failed, write_full;
	char write_error[SP_ERROR_MSG_MAX];

	/* the listener (sp_store_listen): fn and arg under listen_mu, which
	 * fn is called under (never st->mu: fn takes the server's locks, whose
	 * holders may be waiting to hand the writer a request) */
	pthread_mutex_t listen_mu;
	pthread_t listener;
	bool listener_started, listener_stop;
	int stop_pipe[2];
	void (*listen_fn)(void *arg);
	void *listen_arg;
};

static const struct sp_store_ops pg_ops;

static struct pg_store *to_pg(struct sp_store *st)
{
	return (struct pg_store *)st;
}

/* ------------------------------------------------------------------ */
/* Parameters and results                                              */

/* Text parameters of one statement; NULL for SQL NULL. */
struct params {
	const char *v[NPARAMS];
	char num[NPARAMS][32];
	int n;
};

static void p_str(struct params *p, const char *s)
{
	p->v[p->n++] = s;
}

static void p_int(struct params *p, int64_t x)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, x);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

/* x, or NULL when x is 0. */
static void p_id(struct params *p, int64_t x)
{
	if (x)
		p_int(p, x);
	else
		p_str(p, NULL);
}

static void p_dbl(struct params *p, double x)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%.17g", x);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

static bool r_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) != 0;
}

static const char *r_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static char *r_dup(const PGresult *r, int row, int col)
{
	const char *s = r_str(r, row, col);

	return s ? sp_xstrdup(s) : NULL;
}

static int64_t r_int(const PGresult *r, int row, int col)
{
	const char *s = r_str(r, row, col);

	return s ? strtoll(s, NULL, 10) : 0;
}

static double r_dbl(const PGresult *r, int row, int col)
{
	const char *s = r_str(r, row, col);

	return s ? strtod(s, NULL) : 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The server's message, one line (libpq's end in a newline). */
static void pg_message(const char *msg, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", msg && *msg ? msg : "unknown error");
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/*
 * Checks a result: 0 with *out the result (the caller clears it) for
 * commands and rows, else SP_EENGINE with the server's message in err
 * and its SQLSTATE in sqlstate (may be NULL).  r may be NULL (no memory,
 * no connection).
 */
static int check(PGconn *db, PGresult *r, PGresult **out, char *sqlstate, const char *what,
		 struct sp_error *err)
{
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	char msg[512];
	const char *code;

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
		if (out)
			*out = r;
		else
			PQclear(r);
		return 0;
	}
	code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (sqlstate)
		snprintf(sqlstate, 6, "%s", code ? code : "");
	pg_message(r ? PQresultErrorMessage(r) : PQerrorMessage(db), msg, sizeof(msg));
	PQclear(r);
	if (out)
		*out = NULL;
	return sp_error_set(err, SP_EENGINE, "store: %s: %s", what, msg);
}

/* Runs the writer's statement q; *out as check (NULL: not wanted). */
static int wq(struct pg_store *st, enum wsql q, const struct params *p, PGresult **out,
	      struct sp_error *err)
{
	char name[16];

	snprintf(name, sizeof(name), "w%d", (int)q);
	return check(st->db, PQexecPrepared(st->db, name, p ? p->n : 0, p ? p->v : NULL, NULL,
					    NULL, 0), out, st->sqlstate, wsql_text[q], err);
}

/* Runs sql (no parameters) on db. */
static int exec_sql(PGconn *db, const char *sql, char *sqlstate, struct sp_error *err)
{
	return check(db, PQexec(db, sql), NULL, sqlstate, sql, err);
}

/* Runs sql with parameters on a reader. */
static int rq(PGconn *db, const char *sql, const struct params *p, PGresult **out,
	      struct sp_error *err)
{
	return check(db, PQexecParams(db, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL,
				      0), out, NULL, sql, err);
}

/* Rows changed by a command. */
static int64_t affected(PGresult *r)
{
	const char *n = PQcmdTuples(r);

	return n && *n ? strtoll(n, NULL, 10) : 0;
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


/* ------------------------------------------------------------------ */
/* URLs, connections and migrations                                    */

void sp_store_pg_mask_url(const char *url, char *out, size_t len)
{
	struct sp_buf b = SP_BUF_INIT;
	const char *p = url ? url : "", *scheme, *at, *colon, *q;
	char *s;

	scheme = strstr(p, "://");
	if (scheme) {
		const char *auth = scheme + 3;
		size_t hostlen = strcspn(auth, "/?");
		at = memchr(auth, '@', hostlen);
		/* the last @ of the authority: a password may hold one */
		for (const char *a = at; a && a < auth + hostlen; a = memchr(a + 1, '@',
								  (size_t)(auth + hostlen - a - 1)))
			at = a;
		colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			sp_buf_add(&b, p, (size_t)(colon - p));
			sp_buf_addstr(&b, ":***");
			p = at;
		}
	}
	sp_buf_addstr(&b, p);
	s = sp_buf_detach(&b, NULL);
	/* a password=... parameter (URL query or key=value form) */
	for (q = strstr(s, "password="); q; q = strstr(q + 1, "password=")) {
		char *v = (char *)q + strlen("password=");
		size_t n = strcspn(v, "& ");
		if (n) {
			memmove(v + 3, v + n, strlen(v + n) + 1);
			memcpy(v, "***", 3);
		}
	}
	snprintf(out, len, "%s", s);
	free(s);
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Opens a connection to st->url: UTC, and a name for pg_stat_activity. */
static int connect_db(struct pg_store *st, PGconn **out, struct sp_error *err)
{
	/* the URL last: what it says wins over these defaults */
	const char *keys[] = { "application_name", "connect_timeout", "dbname", NULL };
	const char *vals[] = { "stagepipe", "10", st->url, NULL };
	PGconn *db = PQconnectdbParams(keys, vals, 1);
	char msg[512];

	*out = NULL;
	if (!db || PQstatus(db) != CONNECTION_OK) {
		pg_message(db ? PQerrorMessage(db) : "out of memory", msg, sizeof(msg));
		PQfinish(db);
		return sp_error_set(err, SP_EENGINE, "store: cannot connect to %s: %s", st->shown,
				    msg);
	}
	/* the server's notices ("already exists, skipping") are not ours to print */
	PQsetNoticeProcessor(db, quiet, NULL);
	if (exec_sql(db, "SET TIME ZONE 'UTC'", NULL, err)) {
		PQfinish(db);
		return SP_EENGINE;
	}
	*out = db;
	return 0;
}

static int prepare_writer(struct pg_store *st, struct sp_error *err)
{
	char name[16];

	for (int i = 0; i < W_COUNT; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		if (check(st->db, PQprepare(st->db, name, wsql_text[i], 0, NULL), NULL, NULL,
			  wsql_text[i], err))
			return SP_EENGINE;
	}
	st->prepared = true;
	return 0;
}

/*
 * Brings the schema to NMIGRATIONS: each migration in its own transaction
 * under the advisory lock, the version read inside it, so servers starting
 * together run each migration once.
 */
static int migrate(struct pg_store *st, struct sp_error *err)
{
	PGconn *db = st->db;
	PGresult *r = NULL;
	int64_t version = 0;
	char sql[96];
	int rc;

	for (;;) {
		rc = exec_sql(db, "BEGIN", NULL, err);
		if (!rc)
			rc = exec_sql(db, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", NULL, err);
		if (!rc)
			rc = exec_sql(db, "CREATE TABLE IF NOT EXISTS stagepipe_schema"
				      " (version INTEGER NOT NULL)", NULL, err);
		if (!rc)
			rc = check(db, PQexec(db, "SELECT version FROM stagepipe_schema"), &r, NULL,
				   "reading the schema version", err);
		if (rc)
			goto fail;
		version = PQntuples(r) ? r_int(r, 0, 0) : 0;
		if (!PQntuples(r))
			rc = exec_sql(db, "INSERT INTO stagepipe_schema (version) VALUES (0)", NULL,
				      err);
		PQclear(r);
		r = NULL;
		if (rc)
			goto fail;
		if (version > NMIGRATIONS) {
			rc = sp_error_set(err, SP_ECONFIG,
					  "store: %s has schema version %" PRId64 ", newer than the"
					  " %d this stagepipe knows: it was written by a newer"
					  " stagepipe; upgrade, or use another database",
					  st->shown, version, NMIGRATIONS);
			goto fail;
		}
		if (version == NMIGRATIONS)
			return exec_sql(db, "COMMIT", NULL, err);
		rc = exec_sql(db, migrations[version], NULL, err);
		if (rc)
			goto fail;
		snprintf(sql, sizeof(sql), "UPDATE stagepipe_schema SET version = %d",
			 (int)version + 1);
		rc = exec_sql(db, sql, NULL, err);
		if (!rc)
			rc = exec_sql(db, "COMMIT", NULL, err);
		if (rc)
			goto fail;
	}
fail:
	exec_sql(db, "ROLLBACK", NULL, NULL);
	if (rc != SP_ECONFIG)
		sp_error_prefix(err, "%s: migrating to schema version %d", st->shown,
				(int)version + 1);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The writer's operations (writer thread, inside a savepoint)          */

static int outbox_add(struct pg_store *st, int64_t job, const char *repo, const char *sha,
		      const char *context, enum sp_status_state state, const char *desc,
		      int64_t now, struct sp_error *err)
{
	struct params p = { .n = 0 };

	p_int(&p, job);
	p_str(&p, repo);
	p_str(&p, sha);
	p_str(&p, context);
	p_str(&p, sp_status_state_name(state));
	p_str(&p, desc);
	p_int(&p, now);
	return wq(st, W_OUTBOX_ADD, &p, NULL, err);
}

/*
 * Runs a statement that changes one job and returns (repo, sha, statuses),
 * and adds the outbox row "stagepipe" (state, desc) when statuses is on.
 * SP_ENOTFOUND when it changed no row.
 */
static int job_changed(struct pg_store *st, enum wsql q, const struct params *p, int64_t job,
		       enum sp_status_state state, const char *desc, int64_t now,
		       struct sp_error *err)
{
	PGresult *r = NULL;
	int rc = wq(st, q, p, &r, err);

	if (rc)
		return rc;
	if (!PQntuples(r))
		rc = sp_error_set(err, SP_ENOTFOUND, "job %" PRId64 " not found", job);
	else if (r_int(r, 0, 2))
		rc = outbox_add(st, job, r_str(r, 0, 0), r_str(r, 0, 1), CONTEXT_BASE, state, desc,
				now, err);
	PQclear(r);
	return rc;
}

/*
 * A job ended: stages it left running end with it (cancelled, or error:
 * whoever ran them is gone), stages that never started are skipped.
 */
static int close_stages(struct pg_store *st, int64_t job, enum sp_job_state s, int64_t now,
			struct sp_error *err)
{
	struct params p = { .n = 0 };

	p_int(&p, job);
	p_str(&p, s == SP_JOB_CANCELLED ? "cancelled" : "error");
	p_int(&p, now);
	return wq(st, W_STAGES_CLOSE, &p, NULL, err);
}

/* Ends job in final state s; reason NULL keeps the one it has. */
static int end_job(struct pg_store *st, int64_t job, enum sp_job_state s, const char *reason,
		   int64_t now, struct sp_error *err)
{
	struct params p = { .n = 0 };
	char *desc = final_description(s, reason, NULL);
	int rc;

	p_int(&p, job);
	p_str(&p, sp_job_state_name(s));
	p_str(&p, reason);
	p_int(&p, now);
	rc = job_changed(st, W_JOB_END, &p, job, status_of(s), desc, now, err);
	free(desc);
	if (rc == 0)
		rc = close_stages(st, job, s, now, err);
	return rc;
}

/* A running job back to the queue (its epoch moves on at the next lease). */
static int job_back(struct pg_store *st, int64_t job, const char *reason, int64_t now,
		    struct sp_error *err)
{
	struct params p = { .n = 0 };
	char *desc = sp_xasprintf("queued again: %s", reason ? reason : "requeued");
	int rc;

	p_int(&p, job);
	p_str(&p, reason);
	rc = job_changed(st, W_JOB_BACK, &p, job, SP_STATUS_PENDING, desc, now, err);
	free(desc);
	if (!rc)
		st->notify = true;
	return rc;
}

/* The job's row, locked: *out has PEEK's columns, or SP_ENOTFOUND. */
static int peek(struct pg_store *st, int64_t job, PGresult **out, struct sp_error *err)
{
	struct params p = { .n = 0 };
	int rc;

	p_int(&p, job);
	rc = wq(st, W_JOB_PEEK, &p, out, err);
	if (!rc && !PQntuples(*out)) {
		PQclear(*out);
		*out = NULL;
		rc = sp_error_set(err, SP_ENOTFOUND, "job %" PRId64 " not found", job);
	}
	return rc;
}

/* Why a fenced write changed nothing: SP_ENOTFOUND or SP_ECONFLICT. */
static int fence_error(struct pg_store *st, int64_t job, int64_t epoch, struct sp_error *err)
{
	PGresult *r = NULL;
	int rc = peek(st, job, &r, err);

	if (rc)
		return rc;
	rc = sp_error_set(err, SP_ECONFLICT,
			  "job %" PRId64 ": epoch %" PRId64 " is not current (the job"
			  " is %s at epoch %" PRId64 ")", job, epoch, r_str(r, 0, 0), r_int(r, 0, 1));
	PQclear(r);
	return rc;
}

/* Cancels the older queued and running jobs of job's supersede key. */
static int supersede(struct pg_store *st, int64_t job, const struct sp_job_spec *j,
		     const char *key, int64_t now, struct sp_ingest_result *res,
		     struct sp_error *err)
{
	struct params p = { .n = 0 };
	PGresult *r = NULL;
	char *reason = sp_xasprintf("superseded by job %" PRId64, job);
	int rc;

	p_str(&p, j->repo);
	p_str(&p, key);
	p_int(&p, job);
	p_str(&p, j->sha);
	rc = wq(st, W_SUPERSEDE_FIND, &p, &r, err);
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		int64_t id = r_int(r, i, 0);
		if (!strcmp(r_str(r, i, 1), "running")) {
			struct params m = { .n = 0 };
			p_int(&m, id);
			p_str(&m, reason);
			rc = wq(st, W_JOB_MARK_CANCEL, &m, NULL, err);
		} else {
			rc = end_job(st, id, SP_JOB_CANCELLED, reason, now, err);
		}
		if (!rc && res->nsuperseded < sizeof(res->superseded) / sizeof(res->superseded[0]))
			res->superseded[res->nsuperseded++] = id;
	}
	PQclear(r);
	free(reason);
	return rc;
}

/* Whether a job has a supersede key (its branch's push, its PR's). */
static bool has_supersede_key(const struct sp_job_spec *j)
{
	return (!strcmp(j->event, "push") && j->branch) ||
	       (!strcmp(j->event, "pull_request") && j->pr > 0);
}

/* A job's supersede key (the caller frees it), or NULL: it has none. */
static char *supersede_key(const struct sp_job_spec *j)
{
	if (!has_supersede_key(j))
		return NULL;
	if (!strcmp(j->event, "push"))
		return sp_xasprintf("branch:%s", j->branch);
	return sp_xasprintf("pr:%d", j->pr);
}

/* The jobs columns repo .. supersede_key, in W_JOB_ADD's and W_INGEST's
 * order (key: supersede_key's, borrowed). */
static void job_params(struct params *p, const struct sp_job_spec *j, const char *key)
{
	p_str(p, j->repo);
	p_str(p, j->event);
	p_str(p, j->ref);
	p_str(p, j->branch);
	p_str(p, j->tag);
	p_str(p, j->sha);
	p_int(p, j->pr);
	p_str(p, j->title);
	p_str(p, j->author);
	p_str(p, j->sender);
	p_str(p, j->labels && *j->labels ? j->labels : NULL);
	p_str(p, key);
}

static bool job_valid(const struct sp_job_spec *j, struct sp_error *err)
{
	if (j && j->repo && j->event && j->ref && j->sha)
		return true;
	sp_error_set(err, SP_ERROR, "store: a job needs a repo, event, ref and sha");
	return false;
}

static int insert_job(struct pg_store *st, const struct sp_job_spec *j, int64_t now,
		      struct sp_ingest_result *res, struct sp_error *err)
{
	struct params p = { .n = 0 };
	PGresult *r = NULL;
	char *key = NULL;
	int64_t id;
	int rc;

	if (!job_valid(j, err))
		return SP_ERROR;
	key = supersede_key(j);
	job_params(&p, j, key);
	p_int(&p, now);
	p_id(&p, j->retry_of);
	p_int(&p, j->statuses);
	rc = wq(st, W_JOB_ADD, &p, &r, err);
	if (rc)
		goto cleanup;
	id = r_int(r, 0, 0);
	res->job_id = id;
	st->notify = true;
	if (j->statuses) {
		rc = outbox_add(st, id, j->repo, j->sha, CONTEXT_BASE, SP_STATUS_PENDING,
				"queued", now, err);
		if (rc)
			goto cleanup;
	}
	if (j->supersede && key)
		rc = supersede(st, id, j, key, now, res, err);
cleanup:
	PQclear(r);
	free(key);
	return rc;
}

static int do_ingest(struct pg_store *st, struct wreq *r)
{
	const struct sp_delivery *d = r->delivery;
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int64_t now = now_ms();
	int rc;

	if (!d || !d->repo || !d->id)
		return sp_error_set(&r->e, SP_ERROR, "store: a delivery needs a repo and an id");
	/* the unique key decides, whichever server sees the delivery first */
	p_str(&p, d->repo);
	p_str(&p, d->id);
	p_str(&p, d->forge);
	p_str(&p, d->event);
	p_str(&p, d->outcome);
	p_int(&p, now);
	rc = wq(st, W_DELIVERY_CLAIM, &p, &res, &r->e);
	if (rc)
		return rc;
	if (!PQntuples(res)) {
		PQclear(res);
		p.n = 2;
		rc = wq(st, W_DELIVERY_FIND, &p, &res, &r->e);
		if (rc)
			return rc;
		r->ingest.duplicate = true;
		r->ingest.job_id = PQntuples(res) ? r_int(res, 0, 0) : 0;
		PQclear(res);
		return 0;
	}
	PQclear(res);
	if (!r->job)
		return 0;
	rc = insert_job(st, r->job, now, &r->ingest, &r->e);
	if (rc)
		return rc;
	p.n = 2;
	p_int(&p, r->ingest.job_id);
	return wq(st, W_DELIVERY_JOB, &p, NULL, &r->e);
}

static int do_lease(struct pg_store *st, struct wreq *r)
{
	const struct sp_lease_req *q = r->lease_req;
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int64_t now = now_ms(), id;
	int ttl = q->ttl_ms > 0 ? q->ttl_ms : DEFAULT_TTL_MS;
	bool statuses;
	int rc;

	p_str(&p, q->labels);
	rc = wq(st, W_LEASE_PICK, &p, &res, &r->e);
	if (rc)
		return rc;
	id = PQntuples(res) ? r_int(res, 0, 0) : 0;
	PQclear(res);
	if (!id)
		return sp_error_set(&r->e, SP_ENOTFOUND, "no queued job for these labels");

	p.n = 0;
	p_int(&p, id);
	p_str(&p, q->agent);
	p_int(&p, now + ttl);
	p_int(&p, now);
	rc = wq(st, W_LEASE_TAKE, &p, &res, &r->e);
	if (rc)
		return rc;
	if (!PQntuples(res)) {
		PQclear(res);
		return sp_error_set(&r->e, SP_ERROR, "job %" PRId64 " was not queued", id);
	}
	r->lease.job_id = id;
	r->lease.epoch = r_int(res, 0, 0);
	r->lease.attempt = (int)r_int(res, 0, 1);
	r->lease.repo = r_dup(res, 0, 2);
	r->lease.event = r_dup(res, 0, 3);
	r->lease.ref = r_dup(res, 0, 4);
	r->lease.branch = r_dup(res, 0, 5);
	r->lease.tag = r_dup(res, 0, 6);
	r->lease.sha = r_dup(res, 0, 7);
	r->lease.pr = (int)r_int(res, 0, 8);
	statuses = r_int(res, 0, 9) != 0;
	PQclear(res);
	if (!statuses)
		return 0;
	return outbox_add(st, id, r->lease.repo, r->lease.sha, CONTEXT_BASE, SP_STATUS_RUNNING,
			  "running", now, &r->e);
}

static int do_renew(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int rc;

	p_int(&p, r->id);
	p_int(&p, r->epoch);
	p_int(&p, now_ms() + (r->num > 0 ? r->num : DEFAULT_TTL_MS));
	rc = wq(st, W_RENEW, &p, &res, &r->e);
	if (rc)
		return rc;
	if (PQntuples(res))
		r->flag = r_int(res, 0, 0) != 0;
	else
		rc = fence_error(st, r->id, r->epoch, &r->e);
	PQclear(res);
	return rc;
}

/* The fenced job's repo, sha, statuses, attempt and cancel flag. */
struct fenced {
	char *repo, *sha;
	bool statuses, cancel_requested;
	int attempt;
};

/* Locks the job's row if (epoch, running) is current; else fence_error. */
static int fence(struct pg_store *st, int64_t job, int64_t epoch, struct fenced *f,
		 struct sp_error *err)
{
	struct params p = { .n = 0 };
	PGresult *r = NULL;
	int rc;

	memset(f, 0, sizeof(*f));
	p_int(&p, job);
	p_int(&p, epoch);
	rc = wq(st, W_JOB_FENCE, &p, &r, err);
	if (rc)
		return rc;
	if (PQntuples(r)) {
		f->repo = r_dup(r, 0, 0);
		f->sha = r_dup(r, 0, 1);
		f->statuses = r_int(r, 0, 2) != 0;
		f->attempt = (int)r_int(r, 0, 3);
		f->cancel_requested = r_int(r, 0, 4) != 0;
	} else {
		rc = fence_error(st, job, epoch, err);
	}
	PQclear(r);
	return rc;
}

static void fenced_release(struct fenced *f)
{
	free(f->repo);
	free(f->sha);
}

/* A test count from a report as an integer: 0 unless in [0, 2^53]. */
static int64_t count_of(double d)
{
	return d >= 0 && d <= 9007199254740992.0 ? (int64_t)d : 0;
}

/* A report's test counts and coverage as 5 parameters (see sqlite.c). */
static void report_numbers(struct params *p, const cJSON *report)
{
	const cJSON *tests = report ? cJSON_GetObjectItemCaseSensitive(report, "tests") : NULL;
	bool has_total, has_cov, has_min;
	double total = json_num(tests, "total", &has_total);
	double cov = json_num(report, "coverage", &has_cov);
	double min = json_num(report, "coverage_min", &has_min);

	if (cJSON_IsObject(tests) && has_total) {
		p_int(p, count_of(total));
		p_int(p, count_of(json_num(tests, "passed", NULL)));
		p_int(p, count_of(json_num(tests, "failed", NULL) + json_num(tests, "errors", NULL)));
	} else {
		p_str(p, NULL);
		p_str(p, NULL);
		p_str(p, NULL);
	}
	/* NaN and infinities have no SQL number: none */
	if (has_cov && cov == cov && cov - cov == 0)
		p_dbl(p, cov);
	else
		p_str(p, NULL);
	if (has_cov && has_min && min == min && min - min == 0)
		p_dbl(p, min);
	else
		p_str(p, NULL);
}

static int do_stage(struct pg_store *st, struct wreq *r)
{
	const struct sp_stage_update *u = r->stage;
	struct params p = { .n = 0 };
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
	p_int(&p, r->id);
	p_str(&p, u->name);
	p_int(&p, u->pos);
	p_str(&p, u->state);
	p_dbl(&p, u->seconds == u->seconds && u->seconds - u->seconds == 0 ? u->seconds : 0);
	p_str(&p, report);
	p_int(&p, now);
	report_numbers(&p, u->report);
	rc = wq(st, W_STAGE_PUT, &p, NULL, &r->e);
	if (rc)
		goto cleanup;
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

static int do_promote(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int64_t epoch;
	int rc;

	p_int(&p, r->id);
	p_int(&p, r->epoch);
	rc = wq(st, W_PROMOTE, &p, &res, &r->e);
	if (rc)
		return rc;
	if (affected(res) == 1) {
		PQclear(res);
		r->flag = true;
		return 0;
	}
	PQclear(res);
	rc = peek(st, r->id, &res, &r->e);
	if (rc)
		return rc;
	epoch = r_int(res, 0, 1);
	if (strcmp(r_str(res, 0, 0), "running") || epoch != r->epoch) {
		rc = sp_error_set(&r->e, SP_ECONFLICT,
				  "job %" PRId64 ": epoch %" PRId64 " is not current (the"
				  " job is %s at epoch %" PRId64 ")", r->id, r->epoch,
				  r_str(res, 0, 0), epoch);
	} else {
		/* a current epoch that does not hold the permit: someone has it */
		r->flag = !r_null(res, 0, 2) && r_int(res, 0, 2) == r->epoch;
		if (!r->flag && r_null(res, 0, 2) && r_int(res, 0, 7))
			snprintf(r->reason, sizeof(r->reason), "the job was cancelled");
		else if (!r->flag)
			snprintf(r->reason, sizeof(r->reason), "already promoted by attempt %d",
				 (int)r_int(res, 0, 3));
	}
	PQclear(res);
	return rc;
}

static int do_finish(struct pg_store *st, struct wreq *r)
{
	const struct sp_finish *f = r->finish;
	struct params p = { .n = 0 };
	char *summary = NULL, *desc = NULL;
	int64_t now = now_ms();
	int rc;

	if (!f || !sp_job_state_final(f->state))
		return sp_error_set(&r->e, SP_ERROR, "store: finish needs a final state");
	if (f->summary)
		summary = sp_xjson_print(f->summary);
	p_int(&p, r->id);
	p_int(&p, r->epoch);
	p_str(&p, sp_job_state_name(f->state));
	p_str(&p, f->reason);
	if (f->exit_code >= 0)
		p_int(&p, f->exit_code);
	else
		p_str(&p, NULL);
	p_str(&p, summary);
	p_str(&p, f->pipeline);
	p_int(&p, now);
	desc = final_description(f->state, f->reason, f->summary);
	rc = job_changed(st, W_FINISH, &p, r->id, status_of(f->state), desc, now, &r->e);
	if (rc == SP_ENOTFOUND)
		rc = fence_error(st, r->id, r->epoch, &r->e);
	else if (rc == 0)
		rc = close_stages(st, r->id, f->state, now, &r->e);
	cJSON_free(summary);
	free(desc);
	return rc;
}

/* The end of a job whose worker is gone: cancelled if asked, error after
 * max attempts, else queued again.  Counts into *requeued or *failed. */
static int worker_gone(struct pg_store *st, int64_t job, int attempt, bool cancel,
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

/* Rows locked by another server's transaction are skipped: that server
 * is taking them back, or renewing them. */
static int do_expire(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int max = r->num > 0 ? r->num : DEFAULT_MAX_ATTEMPTS;
	int rc;

	p_int(&p, r->asked_ms);
	rc = wq(st, W_EXPIRE_SCAN, &p, &res, &r->e);
	for (int i = 0; !rc && i < PQntuples(res); i++)
		rc = worker_gone(st, r_int(res, i, 0), (int)r_int(res, i, 1), r_int(res, i, 2) != 0,
				 "lost its worker", max, &r->requeued, &r->failed, &r->e);
	PQclear(res);
	return rc;
}

static int do_requeue(struct pg_store *st, struct wreq *r)
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
static int do_relabel(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
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
	p_int(&p, r->id);
	p_str(&p, r->labels);
	rc = wq(st, W_JOB_RELABEL, &p, NULL, &r->e);
	if (!rc) {
		why = sp_xasprintf("waiting for a runner with labels %s%s%s", r->labels,
				   r->text ? ": " : "", r->text ? r->text : "");
		rc = job_back(st, r->id, why, now_ms(), &r->e);
		free(why);
	}
	fenced_release(&f);
	return rc;
}

static int do_cancel(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int state, rc;

	rc = peek(st, r->id, &res, &r->e);
	if (rc)
		return rc;
	state = sp_job_state_parse(r_str(res, 0, 0));
	PQclear(res);
	if (state == SP_JOB_QUEUED) {
		r->state_after = SP_JOB_CANCELLED;
		return end_job(st, r->id, SP_JOB_CANCELLED, r->text ? r->text : "cancelled",
			       now_ms(), &r->e);
	}
	r->state_after = state < 0 ? SP_JOB_ERROR : (enum sp_job_state)state;
	if (state != SP_JOB_RUNNING)
		return 0;
	p_int(&p, r->id);
	p_str(&p, r->text);
	return wq(st, W_JOB_MARK_CANCEL, &p, NULL, &r->e);
}

static int do_outbox_next(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int64_t now = now_ms();
	int rc;

	if (r->num <= 0)
		return 0;
	rc = wq(st, W_OUTBOX_SUPERSEDE, NULL, NULL, &r->e);
	if (rc)
		return rc;
	p_int(&p, now);
	p_int(&p, r->num);
	rc = wq(st, W_OUTBOX_DUE, &p, &res, &r->e);
	if (rc)
		return rc;
	if (PQntuples(res))
		r->rows = sp_xcalloc((size_t)PQntuples(res), sizeof(*r->rows));
	for (int i = 0; i < PQntuples(res); i++) {
		struct sp_status_row *row = &r->rows[r->nrows++];
		row->id = r_int(res, i, 0);
		row->job_id = r_int(res, i, 1);
		row->repo = r_dup(res, i, 2);
		row->sha = r_dup(res, i, 3);
		row->context = r_dup(res, i, 4);
		row->state = status_parse(r_str(res, i, 5));
		row->description = r_dup(res, i, 6);
		row->attempts = (int)r_int(res, i, 7);
	}
	PQclear(res);
	for (size_t i = 0; !rc && i < r->nrows; i++) {
		p.n = 0;
		p_int(&p, r->rows[i].id);
		p_int(&p, now + OUTBOX_CLAIM_MS);
		rc = wq(st, W_OUTBOX_CLAIM, &p, NULL, &r->e);
	}
	return rc;
}

static int do_outbox_done(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };
	PGresult *res = NULL;
	int64_t now = now_ms();
	int rc;

	p_int(&p, r->id);
	if (r->ok) {
		p_int(&p, now);
	} else {
		p_str(&p, r->text ? r->text : "failed");
		if (r->num >= 0)
			p_int(&p, now + r->num);
		else
			p_str(&p, NULL);
	}
	rc = wq(st, r->ok ? W_OUTBOX_SENT : W_OUTBOX_FAILED, &p, &res, &r->e);
	if (!rc && affected(res) == 0)
		rc = sp_error_set(&r->e, SP_ENOTFOUND, "outbox row %" PRId64 " not found", r->id);
	PQclear(res);
	return rc;
}

static int do_ping(struct pg_store *st, struct wreq *r)
{
	struct params p = { .n = 0 };

	p_int(&p, now_ms());
	return wq(st, W_PING, &p, NULL, &r->e);
}

static int do_log_append(struct pg_store *st, struct wreq *r)
{
	const char *vals[3];
	int lens[3] = { 0, 0, (int)r->len }, fmts[3] = { 0, 0, 1 };
	char job[32], name[16];
	PGresult *res = NULL;
	int rc;

	snprintf(job, sizeof(job), "%" PRId64, r->id);
	snprintf(name, sizeof(name), "w%d", (int)W_LOG_APPEND);
	vals[0] = job;
	vals[1] = r->text;
	vals[2] = r->data;
	rc = check(st->db, PQexecPrepared(st->db, name, 3, vals, lens, fmts, 0), &res,
		   st->sqlstate, "appending to a job's log", &r->e);
	if (!rc && PQntuples(res) == 1)
		r->off = r_int(res, 0, 0);
	PQclear(res);
	return rc;
}

static int run_one(struct pg_store *st, struct wreq *r)
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
	case OP_LOG_APPEND:
		return do_log_append(st, r);
	}
	return sp_error_set(&r->e, SP_ERROR, "store: unknown request");
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */

/* Frees what a request built for a caller that will not get it. */
static void discard(struct wreq *r)
{
	sp_lease_release(&r->lease);
	sp_status_rows_release(r->rows, r->nrows);
	r->rows = NULL;
	r->nrows = 0;
}

/* Forgets a request's results before its batch runs again. */
static void reset_result(struct wreq *r)
{
	discard(r);
	r->rc = 0;
	sp_error_clear(&r->e);
	memset(&r->ingest, 0, sizeof(r->ingest));
	r->flag = false;
	r->reason[0] = '\0';
	r->requeued = r->failed = 0;
	r->state_after = SP_JOB_QUEUED;
	r->off = 0;
}

/* A deadlock with another server's batch, or a serialization failure:
 * the batch is rolled back and runs again. */
static bool retryable(const char *sqlstate)
{
	return !strcmp(sqlstate, "40P01") || !strcmp(sqlstate, "40001");
}

/* What became of a batch (for sp_store_last_write). */
struct batch_outcome {
	bool committed;
	bool failed;
	bool full;
	bool retry;
	bool safe;           /* run it again with a savepoint per request */
	bool notify;         /* it queued a job */
	char why[SP_ERROR_MSG_MAX];
};

/* Whether the writer's last failure is the database's (its disk, its
 * connection, the server itself) rather than one request's own mistake. */
static bool db_failed(struct pg_store *st)
{
	const char *c = st->sqlstate;

	return PQstatus(st->db) != CONNECTION_OK || !*c || !strncmp(c, "53", 2) ||
	       !strncmp(c, "58", 2) || !strncmp(c, "08", 2) || !strncmp(c, "57", 2) ||
	       !strncmp(c, "XX", 2) || !strcmp(c, "25006");
}

/*
 * Whether the writer's last failure is the database failing (its disk,
 * its connection, the server itself) rather than one request's own
 * mistake; noted in o.
 */
static void note_failure(struct pg_store *st, struct batch_outcome *o, const char *msg)
{
	if (!db_failed(st) || o->failed)
		return;
	o->failed = true;
	o->full = !strcmp(st->sqlstate, "53100");
	snprintf(o->why, sizeof(o->why), "%s", msg);
}

/* A writer connection that works, with its statements: reconnects. */
static int writer_ready(struct pg_store *st, struct sp_error *err)
{
	if (st->db && PQstatus(st->db) == CONNECTION_OK && st->prepared)
		return 0;
	PQfinish(st->db);
	st->db = NULL;
	st->prepared = false;
	if (connect_db(st, &st->db, err))
		return SP_EENGINE;
	return prepare_writer(st, err);
}

/*
 * The pipeline.  A batch's ingests (the common write by far) go to the
 * server without waiting for each other: each is the one statement
 * W_INGEST, PIPELINE_MAX of them are sent, then one sync, then their
 * answers are read in order — one round trip for them all instead of five
 * each (savepoint, three statements, release).  They have no savepoint:
 * one failing aborts the transaction (the rest of the pipeline is skipped),
 * so the batch is rolled back and runs again the safe way, a savepoint per
 * request, where the failing one fails alone (out->safe).  A deadlock
 * reruns it as before; a lost connection fails it.
 */

/* Whether r can go in the pipeline: an ingest that needs no statement
 * after W_INGEST (a job cancelling older ones of its key does). */
static bool pipelinable(const struct wreq *r)
{
	const struct sp_job_spec *j = r->job;

	if (r->op != OP_INGEST)
		return false;
	if (!j || !j->supersede || !j->event)
		return true;
	return !has_supersede_key(j);  /* a job without a key cancels nothing */
}

/* Sends r's W_INGEST; SP_ERROR for a request that is not valid (sent
 * nothing), SP_EENGINE when the connection would not take it. */
static int ingest_send(struct pg_store *st, struct wreq *r, int64_t now)
{
	const struct sp_delivery *d = r->delivery;
	const struct sp_job_spec *j = r->job;
	struct params p = { .n = 0 };
	char name[16], msg[512];
	char *key = NULL;
	int ok;

	if (!d || !d->repo || !d->id)
		return sp_error_set(&r->e, SP_ERROR, "store: a delivery needs a repo and an id");
	if (j && !job_valid(j, &r->e))
		return SP_ERROR;
	p_str(&p, d->repo);
	p_str(&p, d->id);
	p_str(&p, d->forge);
	p_str(&p, d->event);
	p_str(&p, d->outcome);
	p_int(&p, now);
	p_str(&p, j ? "true" : "false");
	if (j) {
		key = supersede_key(j);
		job_params(&p, j, key);
		p_id(&p, j->retry_of);
		p_int(&p, j->statuses);
	} else {
		while (p.n < 21)
			p_str(&p, NULL);
	}
	p_str(&p, CONTEXT_BASE);
	p_str(&p, sp_status_state_name(SP_STATUS_PENDING));
	p_str(&p, "queued");
	snprintf(name, sizeof(name), "w%d", (int)W_INGEST);
	ok = PQsendQueryPrepared(st->db, name, p.n, p.v, NULL, NULL, 0);
	free(key);
	if (ok)
		return 0;
	pg_message(PQerrorMessage(st->db), msg, sizeof(msg));
	return sp_error_set(&r->e, SP_EENGINE, "store: sending a delivery: %s", msg);
}

/* Takes W_INGEST's answer row into r. */
static void ingest_result(struct pg_store *st, struct wreq *r, PGresult *res)
{
	if (!strcmp(r_str(res, 0, 0), "t")) {
		r->ingest.duplicate = true;
		r->ingest.job_id = r_int(res, 0, 1);
		return;
	}
	r->ingest.job_id = r_int(res, 0, 2);
	if (r->ingest.job_id)
		st->notify = true;
}

/* The connection is in no state to go on (lost, or libpq out of step):
 * closed, so that the next batch connects anew. */
static int pipeline_broken(struct pg_store *st, struct sp_error *berr, const char *what)
{
	char msg[512];

	pg_message(st->db ? PQerrorMessage(st->db) : NULL, msg, sizeof(msg));
	st->sqlstate[0] = '\0';
	PQfinish(st->db);
	st->db = NULL;
	st->prepared = false;
	return sp_error_set(berr, SP_EENGINE, "store: %s: %s", what, msg);
}

/*
 * Runs *first and the pipelinable requests after it (PIPELINE_MAX at most)
 * in a pipeline, inside the batch's transaction; *first is left on the
 * last of them.  Nonzero when one failed and with it the transaction:
 * out->retry (deadlock), out->safe (its own fault: the batch runs again
 * with savepoints) or neither (the database failed: so does the batch).
 */
static int run_pipeline(struct pg_store *st, struct wreq **first, struct batch_outcome *out,
			struct sp_error *berr)
{
	struct wreq *r, *last = *first;
	int64_t now = now_ms();
	PGresult *res;
	int rc = 0, n = 1;

	while (last->next && n < PIPELINE_MAX && pipelinable(last->next)) {
		last = last->next;
		n++;
	}
	if (!PQenterPipelineMode(st->db))
		return pipeline_broken(st, berr, "entering pipeline mode");
	for (r = *first;; r = r->next) {
		r->rc = ingest_send(st, r, now);
		r->piped = r->rc == 0;
		if (r->rc == SP_EENGINE)
			return pipeline_broken(st, berr, "sending a batch");
		if (r == last)
			break;
	}
	if (!PQpipelineSync(st->db))
		return pipeline_broken(st, berr, "sending a batch");
	for (r = *first;; r = r->next) {
		if (r->piped) {
			res = PQgetResult(st->db);
			if (!res)
				return pipeline_broken(st, berr, "reading a batch's answers");
			if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
				PQclear(res);
				r->rc = sp_error_set(&r->e, SP_EENGINE, "store: a request before it"
						     " failed");
			} else if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
				ingest_result(st, r, res);
				PQclear(res);
			} else {
				r->rc = check(st->db, res, NULL, st->sqlstate, "storing a delivery",
					      &r->e);
				if (!r->rc)
					r->rc = sp_error_set(&r->e, SP_EENGINE, "store: storing a"
							     " delivery: no answer row");
				if (!rc)
					rc = sp_error_set(berr, SP_EENGINE, "%s", r->e.msg);
			}
			/* the end of this statement's answers */
			res = PQgetResult(st->db);
			if (res) {
				PQclear(res);
				return pipeline_broken(st, berr, "a batch's answers out of step");
			}
		}
		if (r == last)
			break;
	}
	res = PQgetResult(st->db);
	if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		PQclear(res);
		return pipeline_broken(st, berr, "a batch's answers out of step");
	}
	PQclear(res);
	if (!PQexitPipelineMode(st->db))
		return pipeline_broken(st, berr, "leaving pipeline mode");
	*first = last;
	if (!rc)
		return 0;
	if (retryable(st->sqlstate))
		out->retry = true;
	else if (!db_failed(st))
		out->safe = true;
	return rc;
}

/*
 * Wakes the LISTENers of every server: a transaction of its own after the
 * batch's COMMIT, which does not wait for its WAL flush (a NOTIFY lost in
 * a crash only delays a wake; the jobs themselves are durable).  Not in
 * the batch's transaction: PostgreSQL holds one cluster-wide lock from a
 * NOTIFY's commit until its WAL flush is done, so that would put every
 * server's commits in single file, none sharing a flush with another.
 * One that fails is owed and goes out after the next batch.
 */
static void send_notify(struct pg_store *st)
{
	st->notify_owed = true;
	if (!st->db || PQstatus(st->db) != CONNECTION_OK)
		return;
	if (!exec_sql(st->db, "BEGIN; SET LOCAL synchronous_commit TO off;"
		      " NOTIFY stagepipe_queued; COMMIT", NULL, NULL))
		st->notify_owed = false;
	else if (PQstatus(st->db) == CONNECTION_OK &&
		 PQtransactionStatus(st->db) != PQTRANS_IDLE)
		exec_sql(st->db, "ROLLBACK", NULL, NULL);
}

/*
 * The advisory lock key of delivery (repo, id): FNV-1a of "repo\0id", as
 * a PostgreSQL integer.  Servers sharing a database must all compute the
 * same key for a delivery (a key two deliveries share only makes one wait
 * for the other): never change it.
 */
static int64_t delivery_key(const char *repo, const char *id)
{
	const unsigned char *s;
	uint32_t h = 2166136261u;

	for (s = (const unsigned char *)repo; *s; s++)
		h = (h ^ *s) * 16777619u;
	h *= 16777619u;  /* the '\0' between the two */
	for (s = (const unsigned char *)id; *s; s++)
		h = (h ^ *s) * 16777619u;
	return (int64_t)h - 2147483648;
}

static int key_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Takes the advisory locks of the batch's deliveries, each once and in
 * ascending order, as the first statement of its transaction (see the top
 * of this file): it holds no other lock while it waits, and every other
 * batch takes its keys in the same order, so the waits on keys form no
 * cycle.  Nothing to do for a batch without ingests.
 */
static int lock_deliveries(struct pg_store *st, const struct wreq *batch, struct sp_error *berr)
{
	struct sp_buf arr = SP_BUF_INIT;
	struct params p = { .n = 0 };
	const struct wreq *r;
	int64_t *keys = NULL;
	size_t n = 0, cap = 0;
	int rc;

	for (r = batch; r; r = r->next) {
		if (r->op != OP_INGEST || !r->delivery || !r->delivery->repo || !r->delivery->id)
			continue;
		SP_GROW(keys, cap, n + 1);
		keys[n++] = delivery_key(r->delivery->repo, r->delivery->id);
	}
	if (!n)
		return 0;
	qsort(keys, n, sizeof(*keys), key_cmp);
	sp_buf_addch(&arr, '{');
	for (size_t i = 0; i < n; i++)
		if (!i || keys[i] != keys[i - 1])
			sp_buf_addf(&arr, "%s%" PRId64, i ? "," : "", keys[i]);
	sp_buf_addch(&arr, '}');
	p_str(&p, arr.data);
	rc = wq(st, W_DELIVERY_LOCK, &p, NULL, berr);
	sp_buf_release(&arr);
	free(keys);
	return rc;
}

/* One try of a batch (safe: a savepoint for every request); out->retry or
 * out->safe ask for another. */
static int try_batch(struct pg_store *st, struct wreq *batch, bool safe,
		     struct batch_outcome *out, struct sp_error *berr)
{
	struct wreq *r;
	PGresult *res;
	int rc;

	st->sqlstate[0] = '\0';
	st->notify = false;
	rc = writer_ready(st, berr);
	if (rc) {
		note_failure(st, out, berr->msg);
		return rc;
	}
	rc = exec_sql(st->db, "BEGIN", st->sqlstate, berr);
	if (!rc) {
		rc = lock_deliveries(st, batch, berr);
		if (rc && retryable(st->sqlstate))
			out->retry = true;
	}
	for (r = batch; !rc && r; r = r->next) {
		if (!safe && pipelinable(r)) {
			rc = run_pipeline(st, &r, out, berr);
			continue;
		}
		rc = exec_sql(st->db, "SAVEPOINT req", st->sqlstate, berr);
		if (rc)
			break;
		r->rc = run_one(st, r);
		if (r->rc == SP_EENGINE) {
			if (retryable(st->sqlstate)) {
				out->retry = true;
				rc = sp_error_set(berr, SP_EENGINE, "%s", r->e.msg);
				break;
			}
			note_failure(st, out, r->e.msg);
		}
		if (r->rc)
			rc = exec_sql(st->db, "ROLLBACK TO SAVEPOINT req", st->sqlstate, berr);
		if (!rc)
			rc = exec_sql(st->db, "RELEASE SAVEPOINT req", st->sqlstate, berr);
	}
	if (!rc && PQtransactionStatus(st->db) != PQTRANS_INTRANS)
		rc = sp_error_set(berr, SP_EENGINE, "store: the transaction was aborted");
	if (!rc) {
		/* a COMMIT of a failed transaction answers ROLLBACK, not an error */
		rc = check(st->db, PQexec(st->db, "COMMIT"), &res, st->sqlstate, "COMMIT", berr);
		if (!rc && strcmp(PQcmdStatus(res), "COMMIT"))
			rc = sp_error_set(berr, SP_EENGINE, "store: COMMIT was rolled back");
		PQclear(res);
		if (rc && retryable(st->sqlstate))
			out->retry = true;
		else if (rc)
			note_failure(st, out, berr->msg);
		out->notify = !rc && st->notify;
	} else if (!out->retry && !out->safe) {
		note_failure(st, out, berr->msg);
	}
	if (rc && PQstatus(st->db) == CONNECTION_OK &&
	    PQtransactionStatus(st->db) != PQTRANS_IDLE)
		exec_sql(st->db, "ROLLBACK", NULL, NULL);
	return rc;
}

/* Runs a batch in one transaction (again after a deadlock). */
static void run_batch(struct pg_store *st, struct wreq *batch, struct batch_outcome *out)
{
	struct sp_error berr = SP_ERROR_INIT;
	struct wreq *r;
	bool safe = false;
	int rc;

	for (int attempt = 0;; attempt++) {
		memset(out, 0, sizeof(*out));
		sp_error_clear(&berr);
		rc = try_batch(st, batch, safe, out, &berr);
		/* the one safe rerun goes even after the last deadlock retry */
		if (!rc || !(out->retry || out->safe) ||
		    (attempt >= BATCH_RETRIES && !(out->safe && !safe)))
			break;
		safe = safe || out->safe;
		pthread_mutex_lock(&st->mu);
		st->retries++;
		pthread_mutex_unlock(&st->mu);
		for (r = batch; r; r = r->next)
			reset_result(r);
	}
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
	struct pg_store *st = arg;

	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct wreq *batch, *last, *r, *next;
		struct batch_outcome o;
		int n = 1;

		while (!st->head && !st->stopping)
			pthread_cond_wait(&st->wake, &st->mu);
		if (!st->head)
			break;
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
			next = r->next;
			r->done = true;
			pthread_cond_signal(&r->cv);
		}
		if (o.notify || st->notify_owed) {
			pthread_mutex_unlock(&st->mu);
			send_notify(st);
			pthread_mutex_lock(&st->mu);
		}
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

static void leave(struct pg_store *st)
{
	if (--st->inflight == 0 && st->stopping)
		pthread_cond_broadcast(&st->idle_cv);
}

/* Hands r to the writer and waits for its result (r->rc, r->e). */
static int submit(struct pg_store *st, struct wreq *r, struct sp_error *err)
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

/* ------------------------------------------------------------------ */
/* The ops: writes                                                     */

static int op_ingest(struct sp_store *s, const struct sp_delivery *d,
		     const struct sp_job_spec *job, struct sp_ingest_result *out,
		     struct sp_error *err)
{
	struct wreq r = { .op = OP_INGEST, .delivery = d, .job = job };
	int rc = submit(to_pg(s), &r, err);

	if (!rc)
		*out = r.ingest;
	return rc;
}

static int op_job_create(struct sp_store *s, const struct sp_job_spec *job,
			 struct sp_ingest_result *out, struct sp_error *err)
{
	struct wreq r = { .op = OP_JOB_CREATE, .job = job };
	int rc = submit(to_pg(s), &r, err);

	if (!rc)
		*out = r.ingest;
	return rc;
}

static int op_lease(struct sp_store *s, const struct sp_lease_req *req, struct sp_lease *out,
		    struct sp_error *err)
{
	struct wreq r = { .op = OP_LEASE, .lease_req = req };
	int rc = submit(to_pg(s), &r, err);

	if (!rc)
		*out = r.lease;  /* the strings are the caller's now */
	return rc;
}

static int op_renew(struct sp_store *s, int64_t job, int64_t epoch, int ttl_ms, bool *cancel,
		    struct sp_error *err)
{
	struct wreq r = { .op = OP_RENEW, .id = job, .epoch = epoch, .num = ttl_ms };
	int rc = submit(to_pg(s), &r, err);

	if (!rc && cancel)
		*cancel = r.flag;
	return rc;
}

static int op_stage(struct sp_store *s, int64_t job, int64_t epoch,
		    const struct sp_stage_update *u, struct sp_error *err)
{
	struct wreq r = { .op = OP_STAGE, .id = job, .epoch = epoch, .stage = u };

	return submit(to_pg(s), &r, err);
}

static int op_promote(struct sp_store *s, int64_t job, int64_t epoch, bool *granted,
		      char *reason, size_t reason_len, struct sp_error *err)
{
	struct wreq r = { .op = OP_PROMOTE, .id = job, .epoch = epoch };
	int rc = submit(to_pg(s), &r, err);

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

	return submit(to_pg(s), &r, err);
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
	int rc = submit(to_pg(s), &r, err);

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
	int rc = submit(to_pg(s), &r, err);

	if (!rc && state_after)
		*state_after = r.state_after;
	return rc;
}

static int op_requeue(struct sp_store *s, int64_t job, int64_t epoch, const char *reason,
		      int max_attempts, struct sp_error *err)
{
	struct wreq r = { .op = OP_REQUEUE, .id = job, .epoch = epoch, .text = reason,
			  .num = max_attempts };

	return submit(to_pg(s), &r, err);
}

static int op_relabel(struct sp_store *s, int64_t job, int64_t epoch, const char *labels,
		      const char *reason, struct sp_error *err)
{
	struct wreq r = { .op = OP_RELABEL, .id = job, .epoch = epoch, .labels = labels,
			  .text = reason };

	return submit(to_pg(s), &r, err);
}

static int op_outbox_next(struct sp_store *s, int max, struct sp_status_row **rows,
			  size_t *n, struct sp_error *err)
{
	struct wreq r = { .op = OP_OUTBOX_NEXT, .num = max };
	int rc = submit(to_pg(s), &r, err);

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

	return submit(to_pg(s), &r, err);
}

/* Chunks bigger than this are a caller's bug (logs.c cuts at 64 KiB). */
#define LOG_CHUNK_MAX (64 * 1024 * 1024)

static int op_log_append(struct sp_store *s, int64_t job, const char *stage, const void *data,
			 size_t len, int64_t *off, struct sp_error *err)
{
	struct wreq r = { .op = OP_LOG_APPEND, .id = job, .text = stage, .data = data,
			  .len = len };
	int rc;

	*off = 0;
	if (!len || len > LOG_CHUNK_MAX || !stage || !*stage)
		return sp_error_set(err, SP_ERROR, "store: a log chunk of %zu bytes", len);
	rc = submit(to_pg(s), &r, err);
	if (!rc)
		*off = r.off;
	return rc;
}

static int op_ping(struct sp_store *s, struct sp_error *err)
{
	struct wreq r = { .op = OP_PING };

	return submit(to_pg(s), &r, err);
}

static int op_last_write(struct sp_store *s, bool *disk_full, struct sp_error *err)
{
	struct pg_store *st = to_pg(s);
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

static int reader_get(struct pg_store *st, struct rconn **out, struct sp_error *err)
{
	struct rconn *c = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&st->mu);
	if (st->stopping) {
		pthread_mutex_unlock(&st->mu);
		return sp_error_set(err, SP_ERROR, "store: closed");
	}
	st->inflight++;
	while (!st->free_readers && st->nreaders >= READERS_MAX)
		pthread_cond_wait(&st->pool_cv, &st->mu);
	if (st->free_readers) {
		c = st->free_readers;
		st->free_readers = c->next;
		pthread_mutex_unlock(&st->mu);
		if (PQstatus(c->db) != CONNECTION_OK) {
			/* the server went away meanwhile: a new connection */
			PQfinish(c->db);
			c->db = NULL;
			rc = connect_db(st, &c->db, err);
			if (rc)
				goto fail;
		}
		*out = c;
		return 0;
	}
	st->nreaders++;
	pthread_mutex_unlock(&st->mu);

	c = sp_xcalloc(1, sizeof(*c));
	rc = connect_db(st, &c->db, err);
	if (!rc) {
		*out = c;
		return 0;
	}
fail:
	PQfinish(c->db);
	free(c);
	pthread_mutex_lock(&st->mu);
	st->nreaders--;
	pthread_cond_signal(&st->pool_cv);
	leave(st);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static void reader_put(struct pg_store *st, struct rconn *c)
{
	/* end a read transaction, whatever happened in it */
	if (PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE)
		exec_sql(c->db, "ROLLBACK", NULL, NULL);
	pthread_mutex_lock(&st->mu);
	c->next = st->free_readers;
	st->free_readers = c;
	pthread_cond_signal(&st->pool_cv);
	leave(st);
	pthread_mutex_unlock(&st->mu);
}

static void json_str_or_null(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
	const char *v = r_str(r, row, col);

	if (v)
		cJSON_AddStringToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

static void json_int_or_null(cJSON *o, const char *name, const PGresult *r, int row, int col,
			     bool zero_null)
{
	if (r_null(r, row, col) || (zero_null && r_int(r, row, col) == 0))
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddNumberToObject(o, name, (double)r_int(r, row, col));
}

/* RFC 3339 UTC with milliseconds: 2026-12-04T05:01:02.123Z */
static void json_time(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
	int64_t ms;
	time_t t;
	struct tm tm;
	char buf[40];
	size_t n;

	if (r_null(r, row, col)) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	ms = r_int(r, row, col);
	t = (time_t)(ms / 1000);
	if (!gmtime_r(&t, &tm) || !(n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm))) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	cJSON_AddStringToObject(o, name, buf);
}

/* A JSON value stored as text: parsed, or null when absent or unreadable. */
static void json_stored(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
	const char *v = r_str(r, row, col);
	cJSON *j = v ? cJSON_Parse(v) : NULL;

	cJSON_AddItemToObject(o, name, j ? j : cJSON_CreateNull());
}

static cJSON *job_json(const PGresult *s, int i, int64_t now)
{
	cJSON *o = cJSON_CreateObject(), *status;
	bool has_start = !r_null(s, i, JC_STARTED);
	bool has_end = !r_null(s, i, JC_FINISHED);
	const char *state = r_str(s, i, JC_STATE);

	cJSON_AddNumberToObject(o, "id", (double)r_int(s, i, JC_ID));
	json_str_or_null(o, "repo", s, i, JC_REPO);
	json_str_or_null(o, "event", s, i, JC_EVENT);
	json_str_or_null(o, "ref", s, i, JC_REF);
	json_str_or_null(o, "branch", s, i, JC_BRANCH);
	json_str_or_null(o, "tag", s, i, JC_TAG);
	json_str_or_null(o, "sha", s, i, JC_SHA);
	json_int_or_null(o, "pr", s, i, JC_PR, true);
	json_str_or_null(o, "title", s, i, JC_TITLE);
	json_str_or_null(o, "author", s, i, JC_AUTHOR);
	json_str_or_null(o, "sender", s, i, JC_SENDER);
	json_str_or_null(o, "labels", s, i, JC_LABELS);
	json_str_or_null(o, "state", s, i, JC_STATE);
	json_str_or_null(o, "reason", s, i, JC_REASON);
	json_str_or_null(o, "pipeline", s, i, JC_PIPELINE);
	json_time(o, "created", s, i, JC_CREATED);
	json_time(o, "started", s, i, JC_STARTED);
	json_time(o, "finished", s, i, JC_FINISHED);
	if (has_start && (has_end || (state && !strcmp(state, "running")))) {
		int64_t end = has_end ? r_int(s, i, JC_FINISHED) : now;
		int64_t ms = end - r_int(s, i, JC_STARTED);
		cJSON_AddNumberToObject(o, "seconds", (double)(ms > 0 ? ms : 0) / 1000.0);
	} else {
		cJSON_AddNullToObject(o, "seconds");
	}
	cJSON_AddNumberToObject(o, "attempt", (double)r_int(s, i, JC_ATTEMPT));
	cJSON_AddNumberToObject(o, "epoch", (double)r_int(s, i, JC_EPOCH));
	json_str_or_null(o, "agent", s, i, JC_AGENT);
	cJSON_AddBoolToObject(o, "promoted", !r_null(s, i, JC_PROMOTE_EPOCH));
	cJSON_AddBoolToObject(o, "cancel_requested", r_int(s, i, JC_CANCEL) != 0);
	json_int_or_null(o, "exit_code", s, i, JC_EXIT_CODE, false);
	json_int_or_null(o, "retry_of", s, i, JC_RETRY_OF, true);
	json_stored(o, "summary", s, i, JC_SUMMARY);
	cJSON_AddBoolToObject(o, "statuses", r_int(s, i, JC_STATUSES) != 0);
	status = cJSON_AddObjectToObject(o, "status");
	cJSON_AddNumberToObject(status, "pending", (double)r_int(s, i, JC_ST_PENDING));
	cJSON_AddNumberToObject(status, "failing", (double)r_int(s, i, JC_ST_FAILING));
	json_str_or_null(status, "last_error", s, i, JC_ST_LAST_ERROR);
	if (!r_null(s, i, JC_TESTS_TOTAL)) {
		cJSON *t = cJSON_AddObjectToObject(o, "tests");
		cJSON_AddNumberToObject(t, "total", (double)r_int(s, i, JC_TESTS_TOTAL));
		cJSON_AddNumberToObject(t, "passed", (double)r_int(s, i, JC_TESTS_PASSED));
		cJSON_AddNumberToObject(t, "failed", (double)r_int(s, i, JC_TESTS_FAILED));
	} else {
		cJSON_AddNullToObject(o, "tests");
	}
	if (!r_null(s, i, JC_COVERAGE))
		cJSON_AddNumberToObject(o, "coverage", r_dbl(s, i, JC_COVERAGE));
	else
		cJSON_AddNullToObject(o, "coverage");
	if (!r_null(s, i, JC_COVERAGE_MIN))
		cJSON_AddNumberToObject(o, "coverage_min", r_dbl(s, i, JC_COVERAGE_MIN));
	else
		cJSON_AddNullToObject(o, "coverage_min");
	cJSON_AddNumberToObject(o, "rev", (double)r_int(s, i, JC_REV));
	return o;
}

static int op_job_get(struct sp_store *base, int64_t job, cJSON **out, struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct params p = { .n = 0 };
	struct rconn *c = NULL;
	PGresult *s = NULL, *q = NULL;
	cJSON *o = NULL, *stages;
	int rc;

	*out = NULL;
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	/* one snapshot for the job and its stages */
	rc = exec_sql(c->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, err);
	p_int(&p, job);
	if (!rc)
		rc = rq(c->db, R_JOB_GET, &p, &s, err);
	if (!rc)
		rc = rq(c->db, R_STAGES, &p, &q, err);
	if (rc)
		goto cleanup;
	if (!PQntuples(s)) {
		rc = sp_error_set(err, SP_ENOTFOUND, "job %" PRId64 " not found", job);
		goto cleanup;
	}
	o = job_json(s, 0, now_ms());
	stages = cJSON_AddArrayToObject(o, "stages");
	for (int i = 0; i < PQntuples(q); i++) {
		cJSON *g = cJSON_CreateObject();
		json_str_or_null(g, "name", q, i, 0);
		cJSON_AddNumberToObject(g, "pos", (double)r_int(q, i, 1));
		json_str_or_null(g, "state", q, i, 2);
		cJSON_AddNumberToObject(g, "seconds", r_dbl(q, i, 3));
		json_stored(g, "report", q, i, 4);
		cJSON_AddItemToArray(stages, g);
	}
	*out = o;
	o = NULL;  /* the caller's */
cleanup:
	PQclear(s);
	PQclear(q);
	cJSON_Delete(o);
	reader_put(st, c);
	return rc;
}

static int op_job_list(struct sp_store *base, const struct sp_job_filter *f, cJSON **out,
		       struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct params p = { .n = 0 };
	struct rconn *c = NULL;
	PGresult *s = NULL;
	struct sp_buf sql = SP_BUF_INIT;
	cJSON *o = NULL, *jobs;
	int limit = f && f->limit > 0 ? f->limit : 50, n, rc;
	int64_t last = 0, now = now_ms();

	*out = NULL;
	if (limit > 200)
		limit = 200;
	if (f && f->state && sp_job_state_parse(f->state) < 0)
		return sp_error_set(err, SP_ECONFIG, "unknown job state \"%s\"", f->state);
	sp_buf_addstr(&sql, "SELECT " JOB_COLS " FROM jobs j WHERE true");
	if (f && f->repo) {
		p_str(&p, f->repo);
		sp_buf_addf(&sql, " AND j.repo = $%d", p.n);
	}
	if (f && f->state) {
		p_str(&p, f->state);
		sp_buf_addf(&sql, " AND j.state = $%d", p.n);
	}
	if (f && f->ref) {
		p_str(&p, f->ref);
		sp_buf_addf(&sql, " AND (j.ref = $%d OR j.branch = $%d)", p.n, p.n);
	}
	if (f && f->before > 0) {
		p_int(&p, f->before);
		sp_buf_addf(&sql, " AND j.id < $%d::bigint", p.n);
	}
	p_int(&p, limit + 1);  /* one more says whether there are more */
	sp_buf_addf(&sql, " ORDER BY j.id DESC LIMIT $%d::integer", p.n);
	rc = reader_get(st, &c, err);
	if (rc)
		goto cleanup_buf;
	rc = rq(c->db, sql.data, &p, &s, err);
	if (rc)
		goto cleanup;
	o = cJSON_CreateObject();
	jobs = cJSON_AddArrayToObject(o, "jobs");
	n = PQntuples(s) > limit ? limit : PQntuples(s);
	for (int i = 0; i < n; i++) {
		cJSON_AddItemToArray(jobs, job_json(s, i, now));
		last = r_int(s, i, JC_ID);
	}
	if (PQntuples(s) > limit)
		cJSON_AddNumberToObject(o, "next", (double)last);
	else
		cJSON_AddNullToObject(o, "next");
	*out = o;
	o = NULL;  /* the caller's */
cleanup:
	PQclear(s);
	cJSON_Delete(o);
	reader_put(st, c);
cleanup_buf:
	sp_buf_release(&sql);
	return rc;
}

/* The first column of the first row of sql as a number. */
static int read_int(struct pg_store *st, const char *sql, const struct params *p, int64_t *n,
		    struct sp_error *err)
{
	struct rconn *c = NULL;
	PGresult *s = NULL;
	int rc = reader_get(st, &c, err);

	*n = 0;
	if (rc)
		return rc;
	rc = rq(c->db, sql, p, &s, err);
	if (!rc && PQntuples(s))
		*n = r_int(s, 0, 0);
	PQclear(s);
	reader_put(st, c);
	return rc;
}

#define R_LOG_SIZE \
	"SELECT off + length(data) FROM job_log WHERE job_id = $1::bigint AND stage = $2" \
	" ORDER BY off DESC LIMIT 1"
/* the chunk holding byte $3 (or the last one before it), and those after
 * it that start before $3 + $4, each cut to the window */
#define R_LOG_READ \
	"SELECT off, substring(data FROM (greatest($3::bigint - off, 0) + 1)::integer" \
	" FOR ($4::bigint)::integer) FROM job_log WHERE job_id = $1::bigint AND stage = $2" \
	" AND off < $3::bigint + $4::bigint AND off >= coalesce((SELECT b.off FROM job_log b" \
	" WHERE b.job_id = $1::bigint AND b.stage = $2 AND b.off <= $3::bigint" \
	" ORDER BY b.off DESC LIMIT 1), 0) ORDER BY off"

static int op_log_size(struct sp_store *base, int64_t job, const char *stage, int64_t *size,
		       struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct params p = { .n = 0 };
	struct rconn *c = NULL;
	PGresult *s = NULL;
	int rc;

	*size = 0;
	p_int(&p, job);
	p_str(&p, stage);
	if ((rc = reader_get(st, &c, err)) != 0)
		return rc;
	rc = rq(c->db, R_LOG_SIZE, &p, &s, err);
	if (!rc && PQntuples(s) == 0)
		rc = sp_error_set(err, SP_ENOTFOUND, "no log for job %" PRId64 " stage %s", job,
				  stage);
	else if (!rc)
		*size = r_int(s, 0, 0);
	PQclear(s);
	reader_put(st, c);
	return rc;
}

/* An int8 of a binary result (network byte order). */
static int64_t r_int8_bin(const PGresult *r, int row, int col)
{
	const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
	uint64_t v = 0;

	if (PQgetlength(r, row, col) != 8)
		return -1;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return (int64_t)v;
}

static int op_log_read(struct sp_store *base, int64_t job, const char *stage, int64_t from,
		       void *buf, size_t max, size_t *n, struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct params p = { .n = 0 };
	struct rconn *c = NULL;
	PGresult *s = NULL;
	int64_t pos = from;
	int rc;

	*n = 0;
	if (from < 0 || !max)
		return 0;
	if (max > LOG_CHUNK_MAX)
		max = LOG_CHUNK_MAX;
	p_int(&p, job);
	p_str(&p, stage);
	p_int(&p, from);
	p_int(&p, (int64_t)max);
	if ((rc = reader_get(st, &c, err)) != 0)
		return rc;
	/* binary: the bytes as they are, no hex to undo */
	rc = check(c->db, PQexecParams(c->db, R_LOG_READ, p.n, NULL, p.v, NULL, NULL, 1), &s,
		   NULL, "reading a job's log", err);
	for (int i = 0; !rc && i < PQntuples(s); i++) {
		int64_t off = r_int8_bin(s, i, 0);
		size_t len = (size_t)PQgetlength(s, i, 1);

		if (off < 0)
			break;
		if (off < from)
			off = from;  /* the chunk holding from, cut to start there */
		if (off != pos || !len)
			break;   /* no gap is ever written; stop at one all the same */
		if (len > max - *n)
			len = max - *n;
		memcpy((char *)buf + *n, PQgetvalue(s, i, 1), len);
		*n += len;
		pos += (int64_t)len;
		if (*n == max)
			break;
	}
	PQclear(s);
	reader_put(st, c);
	return rc;
}

static int op_delivery_count(struct sp_store *base, const char *repo, int64_t *n,
			     struct sp_error *err)
{
	struct params p = { .n = 0 };

	if (!repo)
		return read_int(to_pg(base), R_DELIVERIES_ALL, NULL, n, err);
	p_str(&p, repo);
	return read_int(to_pg(base), R_DELIVERIES_REPO, &p, n, err);
}

static int op_branches(struct sp_store *base, const char *repo, const char *branch, int limit,
		       cJSON **out, struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct params p = { .n = 0 };
	struct rconn *c = NULL;
	PGresult *s = NULL;
	cJSON *o = NULL, *arr;
	int64_t now = now_ms();
	int rc;

	*out = NULL;
	if (!repo)
		return sp_error_set(err, SP_ERROR, "store: branches needs a repository");
	if (limit <= 0 || limit > 200)
		limit = 50;
	p_str(&p, repo);
	if (branch)
		p_str(&p, branch);
	else
		p_int(&p, limit);
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	rc = rq(c->db, branch ? R_BRANCH_LAST : R_BRANCHES, &p, &s, err);
	if (rc)
		goto cleanup;
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "branches");
	for (int i = 0; i < PQntuples(s); i++)
		cJSON_AddItemToArray(arr, job_json(s, i, now));
	*out = o;
	o = NULL;  /* the caller's */
cleanup:
	PQclear(s);
	cJSON_Delete(o);
	reader_put(st, c);
	return rc;
}

static int op_job_changes(struct sp_store *base, int64_t since, int64_t *ids, size_t max,
			  size_t *n, int64_t *last, struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct params p = { .n = 0 };
	struct rconn *c = NULL;
	PGresult *s = NULL;
	int64_t top;
	int rc;

	*n = 0;
	*last = since;
	if (since < 0 || !max) {
		rc = read_int(st, R_REV_MAX, NULL, &top, err);
		if (!rc)
			*last = since < 0 || top < since ? top : since;
		return rc;
	}
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	p_int(&p, since);
	p_int(&p, (int64_t)max);
	rc = rq(c->db, R_CHANGES, &p, &s, err);
	for (int i = 0; !rc && i < PQntuples(s) && (size_t)i < max; i++) {
		ids[(*n)++] = r_int(s, i, 0);
		*last = r_int(s, i, 1);
	}
	PQclear(s);
	reader_put(st, c);
	return rc;
}

static int op_counts(struct sp_store *base, struct sp_store_counts *out, struct sp_error *err)
{
	struct pg_store *st = to_pg(base);
	struct rconn *c = NULL;
	PGresult *s = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = reader_get(st, &c, err);
	if (rc)
		return rc;
	rc = exec_sql(c->db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, err);
	if (!rc)
		rc = rq(c->db, R_JOB_COUNTS, NULL, &s, err);
	for (int i = 0; !rc && i < PQntuples(s); i++) {
		int k = sp_job_state_parse(r_str(s, i, 0));
		if (k >= 0)
			out->jobs[k] = r_int(s, i, 1);
	}
	PQclear(s);
	s = NULL;
	if (!rc)
		rc = rq(c->db, R_OUTBOX_COUNTS, NULL, &s, err);
	if (!rc && PQntuples(s)) {
		out->outbox_pending = r_int(s, 0, 0);
		out->outbox_failing = r_int(s, 0, 1);
	}
	PQclear(s);
	s = NULL;
	if (!rc)
		rc = rq(c->db, R_DELIVERIES_ALL, NULL, &s, err);
	if (!rc && PQntuples(s))
		out->deliveries = r_int(s, 0, 0);
	PQclear(s);
	reader_put(st, c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The listener                                                        */

/* Waits up to ms for the stop pipe or the connection; true to stop. */
static bool listener_wait(struct pg_store *st, PGconn *db, int ms)
{
	struct pollfd p[2] = { { st->stop_pipe[0], POLLIN, 0 }, { -1, POLLIN, 0 } };

	if (db)
		p[1].fd = PQsocket(db);
	(void)poll(p, p[1].fd >= 0 ? 2 : 1, ms);
	return (p[0].revents & POLLIN) != 0;
}

static void *listener_main(void *arg)
{
	struct pg_store *st = arg;
	struct sp_error err = SP_ERROR_INIT;
	PGconn *db = NULL;

	for (;;) {
		PGnotify *n;
		bool heard = false;

		if (!db || PQstatus(db) != CONNECTION_OK) {
			/* (again) a connection that listens; a server away: retry in 1 s */
			PQfinish(db);
			db = NULL;
			if (connect_db(st, &db, &err) ||
			    exec_sql(db, "LISTEN stagepipe_queued", NULL, &err)) {
				PQfinish(db);
				db = NULL;
				if (listener_wait(st, NULL, 1000))
					break;
				continue;
			}
			heard = true;  /* what was queued meanwhile: look */
		}
		if (!heard) {
			if (listener_wait(st, db, 1000))
				break;
			if (!PQconsumeInput(db))
				continue;  /* lost: reconnect above */
		}
		while ((n = PQnotifies(db))) {
			heard = true;
			PQfreemem(n);
		}
		if (heard) {
			pthread_mutex_lock(&st->listen_mu);
			if (st->listen_fn)
				st->listen_fn(st->listen_arg);
			pthread_mutex_unlock(&st->listen_mu);
		}
	}
	PQfinish(db);
	return NULL;
}

static void listener_stop(struct pg_store *st)
{
	if (!st->listener_started)
		return;
	if (write(st->stop_pipe[1], "x", 1) < 0)
		(void)0;  /* the pipe is ours and empty: cannot fail */
	pthread_join(st->listener, NULL);
	st->listener_started = false;
	close(st->stop_pipe[0]);
	close(st->stop_pipe[1]);
}

static int op_listen(struct sp_store *base, void (*fn)(void *arg), void *arg,
		     struct sp_error *err)
{
	struct pg_store *st = to_pg(base);

	if (!fn) {
		listener_stop(st);
		pthread_mutex_lock(&st->listen_mu);
		st->listen_fn = NULL;
		st->listen_arg = NULL;
		pthread_mutex_unlock(&st->listen_mu);
		return 0;
	}
	pthread_mutex_lock(&st->listen_mu);
	st->listen_fn = fn;
	st->listen_arg = arg;
	pthread_mutex_unlock(&st->listen_mu);
	if (st->listener_started)
		return 0;
	if (pipe(st->stop_pipe) < 0)
		return sp_error_set(err, SP_ERROR, "store: pipe: %s", strerror(errno));
	fcntl(st->stop_pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(st->stop_pipe[1], F_SETFD, FD_CLOEXEC);
	if (pthread_create(&st->listener, NULL, listener_main, st)) {
		close(st->stop_pipe[0]);
		close(st->stop_pipe[1]);
		return sp_error_set(err, SP_ERROR, "store: cannot start the listener thread");
	}
	st->listener_started = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */

static void destroy(struct pg_store *st)
{
	struct rconn *c, *next;

	for (c = st->free_readers; c; c = next) {
		next = c->next;
		PQfinish(c->db);
		free(c);
	}
	PQfinish(st->db);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->listen_mu);
	pthread_cond_destroy(&st->wake);
	pthread_cond_destroy(&st->pool_cv);
	pthread_cond_destroy(&st->idle_cv);
	free(st->url);
	free(st->shown);
	free(st);
}

static void op_close(struct sp_store *base)
{
	struct pg_store *st = to_pg(base);

	listener_stop(st);

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

int sp_store_open_postgres(struct sp_store **out, const struct sp_store_opts *o,
			   struct sp_error *err)
{
	struct pg_store *st = NULL;
	char shown[512];
	int rc;

	*out = NULL;
	if (!o || !o->url || !*o->url)
		return sp_error_set(err, SP_ECONFIG, "store: no PostgreSQL URL");
	if (!PQisthreadsafe())
		return sp_error_set(err, SP_ERROR, "store: libpq was built without threads");

	st = sp_xcalloc(1, sizeof(*st));
	st->base.ops = &pg_ops;
	st->url = sp_xstrdup(o->url);
	sp_store_pg_mask_url(o->url, shown, sizeof(shown));
	st->shown = sp_xstrdup(shown);
	st->batch_max = o->batch_max > 0 ? o->batch_max : DEFAULT_BATCH_MAX;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->listen_mu, NULL);
	pthread_cond_init(&st->wake, NULL);
	pthread_cond_init(&st->pool_cv, NULL);
	pthread_cond_init(&st->idle_cv, NULL);

	rc = connect_db(st, &st->db, err);
	if (rc)
		goto fail;
	rc = migrate(st, err);
	if (rc)
		goto fail;
	rc = prepare_writer(st, err);
	if (rc)
		goto fail;
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

void sp_store_pg_stats(struct sp_store *base, struct sp_store_sqlite_stats *out,
		       uint64_t *retries)
{
	struct pg_store *st;

	memset(out, 0, sizeof(*out));
	if (retries)
		*retries = 0;
	if (!base || base->ops != &pg_ops)
		return;
	st = to_pg(base);
	pthread_mutex_lock(&st->mu);
	out->commits = st->commits;
	out->requests = st->requests;
	if (retries)
		*retries = st->retries;
	pthread_mutex_unlock(&st->mu);
}

static const struct sp_store_ops pg_ops = {
	.name = "postgres",
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
	.listen = op_listen,
	.log_append = op_log_append,
	.log_size = op_log_size,
	.log_read = op_log_read,
};
