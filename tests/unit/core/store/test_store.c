/*
 * test_store.c — the job store's SQLite backend (core/store/sqlite.c,
 * core/store/store.c): migrations, dedupe, group commit under many
 * threads, leases and labels, fencing, the promote permit, expiry,
 * cancel, supersede, the status outbox, the JSON of job detail and lists,
 * close with requests in flight, and a disk that refuses writes (the
 * delivery is not kept, the store says so, and recovers by itself).  Each test has its own database in a
 * temporary folder; rows are counted through a separate SQLite connection.
 *
 * The same tests run again against the PostgreSQL backend (postgres.c)
 * when SP_TEST_PG_URL names a server (make test starts a private one with
 * tests/tools/pg_cluster.sh): each test gets its own schema there
 * (search_path in the URL), rows are counted through a libpq connection
 * of its own.  The SQLite-only ones (file modes, PRAGMAs, a full disk)
 * have PostgreSQL counterparts at the end.  Without the URL the
 * PostgreSQL group says it is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/store/store.h"
#include "tests/unit/support/testutil.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccc"

struct fx {
	char *dir;
	char *path;
	char *url;       /* PostgreSQL: the store's URL (its own schema), else NULL */
	char *schema;
	struct sp_store *st;
};

/* The backend the tests run against: NULL for SQLite, else the server's URL. */
static const char *pg_base;
static int pg_schemas;

static void pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* A libpq connection of the test's own to url (fails the test if none). */
static PGconn *pg_connect(const char *url)
{
	PGconn *db = PQconnectdb(url);

	if (PQstatus(db) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(db));
	PQsetNoticeProcessor(db, pg_quiet, NULL);
	return db;
}

static void pg_exec(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(db));
	PQclear(r);
}

/* Writer stats of either backend. */
static void store_stats(struct sp_store *st, struct sp_store_sqlite_stats *out)
{
	sp_store_sqlite_stats(st, out);
	if (!out->requests)
		sp_store_pg_stats(st, out, NULL);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Opens the fixture's store (SQLite file or PostgreSQL schema). */
static struct sp_store *open_store(const struct fx *f)
{
	struct sp_store_opts o = { .path = f->path, .url = f->url };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;
	int rc = sp_store_open(&st, &o, &err);

	if (rc)
		fail_msg("open %s: %s", f->url ? f->schema : f->path, err.msg);
	assert_non_null(st);
	return st;
}

static int setup(void **state)
{
	struct fx *f = sp_xcalloc(1, sizeof(*f));

	f->dir = sp_test_tempdir("sp-store-");
	f->path = sp_xasprintf("%s/data/db/stagepipe.db", f->dir);
	if (pg_base) {
		PGconn *db = pg_connect(pg_base);
		char *sql;

		f->schema = sp_xasprintf("t_%ld_%d", (long)getpid(), ++pg_schemas);
		sql = sp_xasprintf("CREATE SCHEMA %s", f->schema);
		pg_exec(db, sql);
		free(sql);
		PQfinish(db);
		f->url = sp_xasprintf("%s%soptions=-csearch_path%%3D%s", pg_base,
				      strchr(pg_base, '?') ? "&" : "?", f->schema);
	}
	f->st = open_store(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sp_store_close(f->st);
	if (f->schema) {
		PGconn *db = pg_connect(pg_base);
		char *sql = sp_xasprintf("DROP SCHEMA %s CASCADE", f->schema);

		pg_exec(db, sql);
		free(sql);
		PQfinish(db);
	}
	sp_test_rmtree(f->dir);
	free(f->dir);
	free(f->path);
	free(f->url);
	free(f->schema);
	free(f);
	return 0;
}

/* The first value of sql through libpq into buf; false when no row. */
static bool pg_query(const struct fx *f, const char *sql, char *buf, size_t len)
{
	PGconn *db = pg_connect(f->url);
	PGresult *r = PQexec(db, sql);
	bool row;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(db));
	row = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
	snprintf(buf, len, "%s", row ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(db);
	return row;
}

/* The first column of the first row of sql, through a connection of our own. */
static int64_t query_int(const struct fx *f, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v = -1;
	const char *path = f->path;
	char buf[64];

	if (f->url)
		return pg_query(f, sql, buf, sizeof(buf)) ? strtoll(buf, NULL, 10) : -1;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void query_text(const struct fx *f, const char *sql, char *buf, size_t len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	const char *path = f->path;

	buf[0] = '\0';
	if (f->url) {
		pg_query(f, sql, buf, len);
		return;
	}
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static struct sp_job_spec push_spec(const char *branch, const char *sha)
{
	struct sp_job_spec j = {
		.repo = "app", .event = "push", .ref = "refs/heads/main", .branch = branch,
		.sha = sha, .title = "Fix the thing", .author = "Ann", .sender = "ann",
	};

	return j;
}

static int64_t create(struct sp_store *st, const struct sp_job_spec *j)
{
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;

	if (sp_store_job_create(st, j, &res, &err))
		fail_msg("job_create: %s", err.msg);
	assert_true(res.job_id > 0);
	return res.job_id;
}

static int64_t create_simple(struct sp_store *st, const char *labels)
{
	struct sp_job_spec j = push_spec("main", SHA_A);

	j.labels = labels;
	return create(st, &j);
}

/* Leases one job; returns it (fails the test when none). */
static struct sp_lease lease(struct sp_store *st, const char *labels, int ttl_ms)
{
	struct sp_lease_req q = { .agent = "local-1", .labels = labels, .ttl_ms = ttl_ms };
	struct sp_lease l;
	struct sp_error err = SP_ERROR_INIT;

	memset(&l, 0, sizeof(l));
	if (sp_store_lease(st, &q, &l, &err))
		fail_msg("lease: %s", err.msg);
	return l;
}

static int lease_rc(struct sp_store *st, const char *labels)
{
	struct sp_lease_req q = { .agent = "agent-9", .labels = labels, .ttl_ms = 30000 };
	struct sp_lease l;
	struct sp_error err = SP_ERROR_INIT;
	int rc;

	memset(&l, 0, sizeof(l));
	rc = sp_store_lease(st, &q, &l, &err);
	sp_lease_release(&l);
	return rc;
}

static cJSON *job_get(struct sp_store *st, int64_t id)
{
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = NULL;

	if (sp_store_job_get(st, id, &j, &err))
		fail_msg("job_get %lld: %s", (long long)id, err.msg);
	return j;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v))
		fail_msg("%s is not a number", name);
	return v->valuedouble;
}

static void assert_job_state(struct sp_store *st, int64_t id, const char *state)
{
	cJSON *j = job_get(st, id);

	assert_string_equal(jstr(j, "state"), state);
	cJSON_Delete(j);
}

static void expire_all(struct sp_store *st, int max, int *requeued, int *failed)
{
	struct sp_error err = SP_ERROR_INIT;

	sleep_ms(5);  /* past the 1 ms leases the tests take */
	if (sp_store_expire(st, max, requeued, failed, &err))
		fail_msg("expire: %s", err.msg);
}

/* ---------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	for (int i = 0; i < SP_JOB_NSTATES; i++)
		assert_int_equal(sp_job_state_parse(sp_job_state_name((enum sp_job_state)i)), i);
	assert_int_equal(sp_job_state_parse("nope"), -1);
	assert_int_equal(sp_job_state_parse(NULL), -1);
	assert_false(sp_job_state_final(SP_JOB_QUEUED));
	assert_false(sp_job_state_final(SP_JOB_RUNNING));
	assert_true(sp_job_state_final(SP_JOB_SKIPPED));
	assert_string_equal(sp_status_state_name(SP_STATUS_FAILURE), "failure");
	assert_string_equal(sp_status_state_name(SP_STATUS_CANCELLED), "cancelled");
}

static void test_open_migrates_and_reopens(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct stat sb;
	char *folder = sp_xasprintf("%s/data/db", f->dir);
	char mode[16];

	assert_int_equal(stat(folder, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(query_int(f, "PRAGMA user_version"), sp_store_schema_version());
	query_text(f, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	assert_int_equal(query_int(f, "SELECT count(*) FROM sqlite_master WHERE"
				   " name IN ('jobs', 'deliveries', 'stages', 'outbox')"), 4);

	create_simple(f->st, NULL);
	sp_store_close(f->st);
	f->st = open_store(f);  /* nothing to migrate; the job is there */
	assert_job_state(f->st, 1, "queued");
	assert_int_equal(sp_store_ping(f->st, &err), 0);
	free(folder);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct sp_store_opts o = { .path = f->path };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;
	sqlite3 *db;

	sp_store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sp_store_open_sqlite(&st, &o, &err), SP_ECONFIG);
	assert_null(st);
	assert_non_null(strstr(err.msg, "999"));
	assert_non_null(strstr(err.msg, "newer"));
	f->st = NULL;
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct sp_store_opts o = { .path = NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;
	char *file = sp_xasprintf("%s/plain", f->dir);
	char *under = sp_xasprintf("%s/plain/x.db", f->dir);

	assert_int_equal(sp_store_open_sqlite(&st, &o, &err), SP_ECONFIG);
	assert_null(st);
	sp_test_write_file(file, "not a folder");
	o.path = under;
	assert_int_not_equal(sp_store_open_sqlite(&st, &o, &err), 0);
	assert_null(st);
	assert_non_null(strstr(err.msg, "plain"));
	free(file);
	free(under);
}

static void test_ingest_and_duplicate(void **state)
{
	struct fx *f = *state;
	struct sp_delivery d = { .repo = "app", .id = "d-1", .forge = "github",
				 .event = "push", .outcome = "job" };
	struct sp_job_spec j = push_spec("main", SHA_A);
	struct sp_job_spec other = push_spec("dev", SHA_B);
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;
	int64_t n;

	j.statuses = true;
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), 0);
	assert_false(res.duplicate);
	assert_int_equal(res.job_id, 1);
	assert_int_equal(res.nsuperseded, 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM outbox"), 1);
	assert_int_equal(query_int(f, "SELECT job_id FROM deliveries"), 1);

	/* the same delivery again, even with another job: nothing written */
	assert_int_equal(sp_store_ingest(f->st, &d, &other, &res, &err), 0);
	assert_true(res.duplicate);
	assert_int_equal(res.job_id, 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM outbox"), 1);

	/* the same id for another repo is another delivery */
	d.repo = "lib";
	assert_int_equal(sp_store_ingest(f->st, &d, &other, &res, &err), 0);
	assert_false(res.duplicate);
	assert_int_equal(res.job_id, 2);
	assert_int_equal(sp_store_delivery_count(f->st, "app", &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sp_store_delivery_count(f->st, NULL, &n, &err), 0);
	assert_int_equal(n, 2);

	/* a job without a sha is refused, and writes nothing */
	d.id = "d-2";
	j.sha = NULL;
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), SP_ERROR);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 2);
}

static void test_ingest_without_job(void **state)
{
	struct fx *f = *state;
	struct sp_delivery d = { .repo = "app", .id = "ping-1", .forge = "github",
				 .event = "ping", .outcome = "ignored: ping" };
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;
	char outcome[64];

	assert_int_equal(sp_store_ingest(f->st, &d, NULL, &res, &err), 0);
	assert_false(res.duplicate);
	assert_int_equal(res.job_id, 0);
	assert_int_equal(sp_store_ingest(f->st, &d, NULL, &res, &err), 0);
	assert_true(res.duplicate);
	assert_int_equal(res.job_id, 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 1);
	query_text(f, "SELECT outcome FROM deliveries", outcome, sizeof(outcome));
	assert_string_equal(outcome, "ignored: ping");
}

/* ---- many threads ---------------------------------------------- */

#define THREADS 8
#define PER_THREAD 500

struct ingester {
	struct sp_store *st;
	int index, count;
	int64_t *jobs;
	int failures;
	char msg[256];
};

static void *ingest_thread(void *arg)
{
	struct ingester *in = arg;

	for (int i = 0; i < in->count; i++) {
		char id[64];
		struct sp_delivery d = { .repo = "app", .id = id, .forge = "gitea",
					 .event = "push", .outcome = "job" };
		struct sp_job_spec j = push_spec("main", SHA_A);
		struct sp_ingest_result res;
		struct sp_error err = SP_ERROR_INIT;

		snprintf(id, sizeof(id), "t%d-%d", in->index, i);
		j.statuses = i % 2;
		if (sp_store_ingest(in->st, &d, &j, &res, &err) || res.duplicate) {
			in->failures++;
			snprintf(in->msg, sizeof(in->msg), "%.200s", err.msg);
		}
		in->jobs[i] = res.job_id;
	}
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void test_concurrent_ingest(void **state)
{
	struct fx *f = *state;
	struct ingester in[THREADS];
	pthread_t th[THREADS];
	int64_t *all = sp_xcalloc(THREADS * PER_THREAD, sizeof(*all));
	struct sp_store_sqlite_stats stats;
	struct sp_store_counts counts;
	struct sp_error err = SP_ERROR_INIT;
	int64_t n;

	for (int t = 0; t < THREADS; t++) {
		in[t] = (struct ingester){ .st = f->st, .index = t, .count = PER_THREAD,
					   .jobs = all + t * PER_THREAD };
		assert_int_equal(pthread_create(&th[t], NULL, ingest_thread, &in[t]), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		if (in[t].failures)
			fail_msg("thread %d: %d failures: %s", t, in[t].failures, in[t].msg);
	}
	qsort(all, THREADS * PER_THREAD, sizeof(*all), cmp_id);
	for (int i = 0; i < THREADS * PER_THREAD; i++)
		assert_int_equal(all[i], i + 1);  /* distinct, and none lost */
	store_stats(f->st, &stats);
	assert_int_equal(stats.requests, THREADS * PER_THREAD);
	assert_true(stats.commits >= 1 && stats.commits <= stats.requests);

	sp_store_close(f->st);
	f->st = open_store(f);
	assert_int_equal(sp_store_delivery_count(f->st, "app", &n, &err), 0);
	assert_int_equal(n, THREADS * PER_THREAD);
	assert_int_equal(sp_store_counts(f->st, &counts, &err), 0);
	assert_int_equal(counts.jobs[SP_JOB_QUEUED], THREADS * PER_THREAD);
	assert_int_equal(counts.deliveries, THREADS * PER_THREAD);
	assert_int_equal(counts.outbox_pending, THREADS * PER_THREAD / 2);
	free(all);
}

/* A connection of the test's own that holds the write lock (PostgreSQL:
 * the tables the writes touch, locked against writers). */
struct wlock {
	sqlite3 *db;
	PGconn *pg;
};

static struct wlock hold_write_lock(const struct fx *f)
{
	struct wlock l = { NULL, NULL };

	if (f->url) {
		l.pg = pg_connect(f->url);
		pg_exec(l.pg, "BEGIN");
		pg_exec(l.pg, "LOCK TABLE deliveries, jobs IN EXCLUSIVE MODE");
		return l;
	}
	assert_int_equal(sqlite3_open(f->path, &l.db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(l.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	return l;
}

static void release_write_lock(struct wlock l)
{
	if (l.pg) {
		pg_exec(l.pg, "COMMIT");
		PQfinish(l.pg);
		return;
	}
	assert_int_equal(sqlite3_exec(l.db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(l.db);
}

/* Waits until the writer has been handed `requests` requests in all. */
static void wait_requests(struct sp_store *st, uint64_t requests)
{
	struct sp_store_sqlite_stats stats;

	for (int i = 0; i < 5000; i++) {
		store_stats(st, &stats);
		if (stats.requests >= requests)
			return;
		sleep_ms(1);
	}
	fail_msg("the writer got %llu requests, not %llu", (unsigned long long)stats.requests,
		 (unsigned long long)requests);
}

struct one_write {
	struct sp_store *st;
	int kind;      /* 0: ingest, 1: a renew of an unknown job, 2: a job without sha */
	int index;
	int rc;
	int64_t job;
};

static void *one_write_thread(void *arg)
{
	struct one_write *w = arg;
	struct sp_error err = SP_ERROR_INIT;
	char id[32];
	struct sp_delivery d = { .repo = "app", .id = id };
	struct sp_job_spec j = push_spec("main", SHA_A);
	struct sp_ingest_result res = { 0 };
	bool cancel;

	snprintf(id, sizeof(id), "w-%d", w->index);
	switch (w->kind) {
	case 0:
		w->rc = sp_store_ingest(w->st, &d, &j, &res, &err);
		w->job = res.job_id;
		break;
	case 1:
		w->rc = sp_store_renew(w->st, 999, 1, 1000, &cancel, &err);
		break;
	default:
		j.sha = NULL;
		w->rc = sp_store_ingest(w->st, &d, &j, &res, &err);
		break;
	}
	return NULL;
}

static void start_writes(struct sp_store *st, struct one_write *w, pthread_t *th, int n)
{
	for (int i = 0; i < n; i++) {
		w[i] = (struct one_write){ .st = st, .index = i,
					   .kind = i == 3 ? 1 : i == 5 ? 2 : 0 };
		assert_int_equal(pthread_create(&th[i], NULL, one_write_thread, &w[i]), 0);
	}
}

static void check_writes(struct one_write *w, pthread_t *th, int n)
{
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (w[i].kind == 0) {
			assert_int_equal(w[i].rc, 0);
			assert_true(w[i].job > 0);
		} else {
			assert_int_equal(w[i].rc, w[i].kind == 1 ? SP_ENOTFOUND : SP_ERROR);
		}
	}
}

static void test_group_commit(void **state)
{
	struct fx *f = *state;
	struct sp_store_sqlite_stats before, after;
	struct one_write w[THREADS];
	pthread_t th[THREADS];
	struct wlock lock;

	store_stats(f->st, &before);
	lock = hold_write_lock(f);
	start_writes(f->st, w, th, THREADS);
	wait_requests(f->st, before.requests + THREADS);
	release_write_lock(lock);
	check_writes(w, th, THREADS);
	store_stats(f->st, &after);
	/* the writer took one request before the lock let it go; then the rest at once */
	assert_true(after.commits - before.commits <= 2);
	/* the two failing requests undid only themselves */
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), THREADS - 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), THREADS - 2);
}

struct closer {
	struct sp_store *st;
};

static void *close_thread(void *arg)
{
	sp_store_close(((struct closer *)arg)->st);
	return NULL;
}

static void test_close_with_requests_in_flight(void **state)
{
	struct fx *f = *state;
	struct one_write w[THREADS];
	pthread_t th[THREADS], ct;
	struct closer c = { f->st };
	struct sp_error err = SP_ERROR_INIT;
	int64_t n;
	struct wlock lock;

	lock = hold_write_lock(f);
	start_writes(f->st, w, th, THREADS);
	wait_requests(f->st, THREADS);
	assert_int_equal(pthread_create(&ct, NULL, close_thread, &c), 0);
	sleep_ms(20);  /* let close start waiting for the writer */
	release_write_lock(lock);
	pthread_join(ct, NULL);
	f->st = NULL;
	check_writes(w, th, THREADS);  /* every caller got its own answer */
	f->st = open_store(f);
	assert_int_equal(sp_store_delivery_count(f->st, NULL, &n, &err), 0);
	assert_int_equal(n, THREADS - 2);
}

/* ---- leases ----------------------------------------------------- */

static void test_lease_order_and_labels(void **state)
{
	struct fx *f = *state;
	struct sp_job_spec pr = {
		.repo = "app", .event = "pull_request", .ref = "refs/pull/12/head",
		.branch = "main", .sha = SHA_B, .pr = 12, .labels = " linux , arm ",
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	cJSON *j;
	int64_t gpu, any, arm;

	gpu = create_simple(f->st, "gpu");
	any = create_simple(f->st, NULL);
	arm = create(f->st, &pr);

	l = lease(f->st, "linux", 30000);  /* the gpu job is older but needs gpu */
	assert_int_equal(l.job_id, any);
	assert_int_equal(l.epoch, 1);
	assert_int_equal(l.attempt, 1);
	assert_string_equal(l.repo, "app");
	assert_string_equal(l.event, "push");
	assert_string_equal(l.ref, "refs/heads/main");
	assert_string_equal(l.branch, "main");
	assert_null(l.tag);
	assert_string_equal(l.sha, SHA_A);
	sp_lease_release(&l);
	assert_int_equal(lease_rc(f->st, "linux"), SP_ENOTFOUND);
	assert_int_equal(lease_rc(f->st, NULL), SP_ENOTFOUND);

	l = lease(f->st, "x,arm,linux", 30000);
	assert_int_equal(l.job_id, arm);
	assert_int_equal(l.pr, 12);
	assert_string_equal(l.event, "pull_request");
	sp_lease_release(&l);

	l = lease(f->st, "gpu", 30000);
	assert_int_equal(l.job_id, gpu);
	sp_lease_release(&l);
	assert_int_equal(sp_store_lease(f->st, &(struct sp_lease_req){ .agent = "a" }, &l, &err),
			 SP_ENOTFOUND);

	j = job_get(f->st, any);
	assert_string_equal(jstr(j, "state"), "running");
	assert_string_equal(jstr(j, "agent"), "local-1");
	assert_int_equal((int)jnum(j, "attempt"), 1);
	assert_int_equal((int)jnum(j, "epoch"), 1);
	assert_non_null(jstr(j, "started"));
	cJSON_Delete(j);
}

static void test_fencing(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_stage_update u = { .name = "test", .pos = 0, .state = "running" };
	struct sp_finish fin = { .state = SP_JOB_PASSED, .exit_code = 0 };
	struct sp_lease l;
	char reason[128];
	bool cancel = true, granted;
	int64_t id = create_simple(f->st, NULL);

	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.job_id, id);

	assert_int_equal(sp_store_renew(f->st, id, l.epoch + 1, 1000, &cancel, &err), SP_ECONFLICT);
	assert_non_null(strstr(err.msg, "not current"));
	assert_int_equal(sp_store_renew(f->st, 4242, 1, 1000, &cancel, &err), SP_ENOTFOUND);
	assert_int_equal(sp_store_stage(f->st, id, 0, &u, &err), SP_ECONFLICT);
	assert_int_equal(sp_store_stage(f->st, 4242, 1, &u, &err), SP_ENOTFOUND);
	assert_int_equal(sp_store_promote(f->st, id, 7, &granted, reason, sizeof(reason), &err),
			 SP_ECONFLICT);
	assert_int_equal(sp_store_promote(f->st, 4242, 1, &granted, reason, sizeof(reason), &err),
			 SP_ENOTFOUND);
	assert_int_equal(sp_store_finish(f->st, id, 0, &fin, &err), SP_ECONFLICT);
	assert_int_equal(sp_store_finish(f->st, 4242, 1, &fin, &err), SP_ENOTFOUND);
	assert_int_equal(sp_store_requeue(f->st, id, 2, "x", 3, &err), SP_ECONFLICT);
	assert_job_state(f->st, id, "running");  /* none of those changed it */

	/* the current epoch is heard */
	assert_int_equal(sp_store_renew(f->st, id, l.epoch, 1000, &cancel, &err), 0);
	assert_false(cancel);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &u, &err), 0);
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), 0);
	assert_job_state(f->st, id, "passed");
	/* and a finished job takes no more writes, whatever the epoch */
	assert_int_equal(sp_store_renew(f->st, id, l.epoch, 1000, &cancel, &err), SP_ECONFLICT);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &u, &err), SP_ECONFLICT);
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), SP_ECONFLICT);
	/* a finish must be final */
	sp_lease_release(&l);
	id = create_simple(f->st, NULL);
	l = lease(f->st, NULL, 30000);
	fin.state = SP_JOB_RUNNING;
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), SP_ERROR);
	sp_lease_release(&l);
}

static void test_promote_permit(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l1, l2;
	char reason[128];
	bool granted = false;
	int requeued = 0, failed = 0;
	int64_t id = create_simple(f->st, NULL);
	cJSON *j;

	l1 = lease(f->st, NULL, 1);
	assert_int_equal(sp_store_promote(f->st, id, l1.epoch, &granted, reason, sizeof(reason),
					  &err), 0);
	assert_true(granted);
	/* the same attempt asking again keeps its permit */
	assert_int_equal(sp_store_promote(f->st, id, l1.epoch, &granted, reason, sizeof(reason),
					  &err), 0);
	assert_true(granted);

	expire_all(f->st, 3, &requeued, &failed);
	assert_int_equal(requeued, 1);
	assert_int_equal(failed, 0);
	l2 = lease(f->st, NULL, 30000);
	assert_int_equal(l2.job_id, id);
	assert_int_equal(l2.epoch, 2);
	assert_int_equal(l2.attempt, 2);
	assert_int_equal(sp_store_promote(f->st, id, l2.epoch, &granted, reason, sizeof(reason),
					  &err), 0);
	assert_false(granted);
	assert_string_equal(reason, "already promoted by attempt 1");
	/* the first attempt is stale now */
	assert_int_equal(sp_store_promote(f->st, id, l1.epoch, &granted, reason, sizeof(reason),
					  &err), SP_ECONFLICT);
	j = job_get(f->st, id);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "promoted")));
	cJSON_Delete(j);
	sp_lease_release(&l1);
	sp_lease_release(&l2);
}

/* A cancel asked before the permit: the permit is refused. */
static void test_promote_after_cancel(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	enum sp_job_state after;
	char reason[128];
	bool granted = true;
	int64_t id = create_simple(f->st, NULL);

	l = lease(f->st, NULL, 30000);
	assert_int_equal(sp_store_cancel(f->st, id, "test", &after, &err), 0);
	assert_int_equal(after, SP_JOB_RUNNING);
	assert_int_equal(sp_store_promote(f->st, id, l.epoch, &granted, reason, sizeof(reason),
					  &err), 0);
	assert_false(granted);
	assert_string_equal(reason, "the job was cancelled");
	sp_lease_release(&l);
}

/* A job that ends leaves no stage running or pending. */
static void test_finish_closes_stages(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_stage_update u = { "test", 0, "running", 0, NULL };
	struct sp_stage_update u2 = { "promote", 1, "pending", 0, NULL };
	struct sp_finish fin = { SP_JOB_CANCELLED, "cancelled", 130, NULL, NULL };
	struct sp_lease l;
	const cJSON *st;
	int64_t id = create_simple(f->st, NULL);
	cJSON *j;

	l = lease(f->st, NULL, 30000);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &u, &err), 0);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &u2, &err), 0);
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), 0);
	j = job_get(f->st, id);
	st = cJSON_GetObjectItem(j, "stages");
	assert_int_equal(cJSON_GetArraySize(st), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(st, 0), "state")->valuestring,
			    "cancelled");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(st, 1), "state")->valuestring,
			    "skipped");
	cJSON_Delete(j);
	sp_lease_release(&l);
}

static void test_expire_requeue_then_error(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	int requeued = -1, failed = -1;
	int64_t id = create_simple(f->st, NULL);
	int64_t fresh;
	cJSON *j;

	/* a lease that is not expired is left alone */
	fresh = create_simple(f->st, NULL);
	l = lease(f->st, NULL, 1);
	assert_int_equal(l.job_id, id);
	sp_lease_release(&l);
	l = lease(f->st, NULL, 60000);
	assert_int_equal(l.job_id, fresh);
	sp_lease_release(&l);

	expire_all(f->st, 2, &requeued, &failed);
	assert_int_equal(requeued, 1);
	assert_int_equal(failed, 0);
	j = job_get(f->st, id);
	assert_string_equal(jstr(j, "state"), "queued");
	assert_non_null(strstr(jstr(j, "reason"), "lost its worker"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "agent")));
	cJSON_Delete(j);
	assert_job_state(f->st, fresh, "running");

	l = lease(f->st, NULL, 1);
	assert_int_equal(l.job_id, id);
	assert_int_equal(l.attempt, 2);
	sp_lease_release(&l);
	expire_all(f->st, 2, &requeued, &failed);
	assert_int_equal(requeued, 0);
	assert_int_equal(failed, 1);
	j = job_get(f->st, id);
	assert_string_equal(jstr(j, "state"), "error");
	assert_non_null(strstr(jstr(j, "reason"), "lost its worker"));
	assert_non_null(strstr(jstr(j, "reason"), "2"));
	assert_non_null(jstr(j, "finished"));
	cJSON_Delete(j);

	/* nothing expired: nothing done */
	assert_int_equal(sp_store_expire(f->st, 2, &requeued, &failed, &err), 0);
	assert_int_equal(requeued + failed, 0);
}

static void test_requeue(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	int64_t id = create_simple(f->st, NULL);
	cJSON *j;

	l = lease(f->st, NULL, 30000);
	assert_int_equal(sp_store_requeue(f->st, id, l.epoch, "server draining", 2, &err), 0);
	sp_lease_release(&l);
	j = job_get(f->st, id);
	assert_string_equal(jstr(j, "state"), "queued");
	assert_non_null(strstr(jstr(j, "reason"), "server draining"));
	cJSON_Delete(j);
	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.attempt, 2);
	assert_int_equal(sp_store_requeue(f->st, id, l.epoch - 1, "stale", 2, &err), SP_ECONFLICT);
	assert_int_equal(sp_store_requeue(f->st, id, l.epoch, "engine gone", 2, &err), 0);
	sp_lease_release(&l);
	assert_job_state(f->st, id, "error");
}

/* runs_on: back to the queue requiring labels, the attempt not counted */
static void test_relabel(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	int64_t id = create_simple(f->st, NULL);
	cJSON *j;

	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.attempt, 1);
	assert_int_equal(sp_store_relabel(f->st, id, l.epoch - 1, "gpu", NULL, &err), SP_ECONFLICT);
	assert_int_equal(sp_store_relabel(f->st, id, l.epoch, "gpu,linux", "lacks gpu", &err), 0);
	sp_lease_release(&l);
	j = job_get(f->st, id);
	assert_string_equal(jstr(j, "state"), "queued");
	assert_non_null(strstr(jstr(j, "reason"), "gpu,linux"));
	assert_non_null(strstr(jstr(j, "reason"), "lacks gpu"));
	cJSON_Delete(j);
	/* a runner without the labels gets nothing; one with them does */
	assert_int_equal(lease_rc(f->st, NULL), SP_ENOTFOUND);
	assert_int_equal(lease_rc(f->st, "linux"), SP_ENOTFOUND);
	l = lease(f->st, "linux,gpu,big", 30000);
	assert_int_equal(l.job_id, id);
	assert_int_equal(l.attempt, 1);
	/* asked to cancel meanwhile: it ends cancelled instead */
	assert_int_equal(sp_store_cancel(f->st, id, "by bob", NULL, &err), 0);
	assert_int_equal(sp_store_relabel(f->st, id, l.epoch, "x", NULL, &err), 0);
	sp_lease_release(&l);
	assert_job_state(f->st, id, "cancelled");
}

static void test_cancel(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_finish fin = { .state = SP_JOB_CANCELLED, .exit_code = 130 };
	enum sp_job_state after;
	struct sp_lease l;
	bool cancel = false;
	int64_t running = create_simple(f->st, NULL);
	int64_t queued = create_simple(f->st, NULL);
	int64_t lost = create_simple(f->st, NULL);
	int requeued, failed;
	cJSON *j;

	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.job_id, running);

	assert_int_equal(sp_store_cancel(f->st, queued, "by alice", &after, &err), 0);
	assert_int_equal(after, SP_JOB_CANCELLED);
	j = job_get(f->st, queued);
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_string_equal(jstr(j, "reason"), "by alice");
	assert_non_null(jstr(j, "finished"));
	cJSON_Delete(j);

	assert_int_equal(sp_store_cancel(f->st, running, "by bob", &after, &err), 0);
	assert_int_equal(after, SP_JOB_RUNNING);
	assert_int_equal(sp_store_renew(f->st, running, l.epoch, 30000, &cancel, &err), 0);
	assert_true(cancel);
	assert_int_equal(sp_store_finish(f->st, running, l.epoch, &fin, &err), 0);
	j = job_get(f->st, running);
	assert_string_equal(jstr(j, "state"), "cancelled");
	assert_string_equal(jstr(j, "reason"), "by bob");  /* kept: the finish gave none */
	assert_int_equal((int)jnum(j, "exit_code"), 130);
	cJSON_Delete(j);
	sp_lease_release(&l);

	/* finished: left as it is */
	assert_int_equal(sp_store_cancel(f->st, running, NULL, &after, &err), 0);
	assert_int_equal(after, SP_JOB_CANCELLED);
	assert_int_equal(sp_store_cancel(f->st, 999, NULL, &after, &err), SP_ENOTFOUND);

	/* a running job asked to stop whose worker is lost ends cancelled, not queued */
	l = lease(f->st, NULL, 1);
	assert_int_equal(l.job_id, lost);
	sp_lease_release(&l);
	assert_int_equal(sp_store_cancel(f->st, lost, NULL, &after, &err), 0);
	expire_all(f->st, 3, &requeued, &failed);
	assert_int_equal(requeued, 0);
	assert_int_equal(failed, 1);
	assert_job_state(f->st, lost, "cancelled");
}

static void test_supersede(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_spec a = push_spec("main", SHA_A), b = push_spec("main", SHA_B);
	struct sp_job_spec c = push_spec("main", SHA_C), dev = push_spec("dev", SHA_A);
	struct sp_job_spec tag = { .repo = "app", .event = "tag", .ref = "refs/tags/v1",
				   .tag = "v1", .sha = SHA_A, .supersede = true };
	struct sp_job_spec pr1 = { .repo = "app", .event = "pull_request",
				   .ref = "refs/pull/7/head", .branch = "main", .sha = SHA_A,
				   .pr = 7, .supersede = true };
	struct sp_job_spec pr2 = pr1;
	struct sp_ingest_result res;
	struct sp_lease l;
	bool cancel = false;
	int64_t ja, jb, jdev, jtag, jp1;

	a.supersede = b.supersede = c.supersede = dev.supersede = true;
	ja = create(f->st, &a);
	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.job_id, ja);
	assert_int_equal(sp_store_job_create(f->st, &b, &res, &err), 0);
	jb = res.job_id;          /* supersedes a (running): asked to stop */
	assert_int_equal(res.nsuperseded, 1);
	assert_int_equal(res.superseded[0], ja);
	jdev = create(f->st, &dev);
	jtag = create(f->st, &tag);
	jp1 = create(f->st, &pr1);

	assert_int_equal(sp_store_renew(f->st, ja, l.epoch, 30000, &cancel, &err), 0);
	assert_true(cancel);

	assert_int_equal(sp_store_job_create(f->st, &c, &res, &err), 0);
	assert_int_equal(res.nsuperseded, 1);  /* a was asked already */
	assert_int_equal(res.superseded[0], jb);
	assert_job_state(f->st, jb, "cancelled");
	assert_job_state(f->st, ja, "running");  /* until its worker reports */
	assert_job_state(f->st, jdev, "queued");
	assert_job_state(f->st, jtag, "queued");
	assert_job_state(f->st, jp1, "queued");

	/* the same commit again does not cancel its own build */
	c.supersede = true;
	assert_int_equal(sp_store_job_create(f->st, &c, &res, &err), 0);
	assert_int_equal(res.nsuperseded, 0);

	/* a new push to the pull request cancels the older one; supersede off: nothing */
	pr2.sha = SHA_B;
	pr2.supersede = false;
	assert_int_equal(sp_store_job_create(f->st, &pr2, &res, &err), 0);
	assert_int_equal(res.nsuperseded, 0);
	pr2.supersede = true;
	assert_int_equal(sp_store_job_create(f->st, &pr2, &res, &err), 0);
	assert_int_equal(res.nsuperseded, 1);
	assert_int_equal(res.superseded[0], jp1);
	assert_job_state(f->st, jp1, "cancelled");
	sp_lease_release(&l);
}

/* ---- the outbox ------------------------------------------------- */

static void outbox_next(struct sp_store *st, struct sp_status_row **rows, size_t *n)
{
	struct sp_error err = SP_ERROR_INIT;

	if (sp_store_outbox_next(st, 50, rows, n, &err))
		fail_msg("outbox_next: %s", err.msg);
}

static const struct sp_status_row *find_row(const struct sp_status_row *rows, size_t n,
					    const char *context)
{
	static const struct sp_status_row none = { .context = (char *)"" };

	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].context, context))
			return &rows[i];
	fail_msg("no outbox row for %s", context);
	return &none;
}

static void test_outbox(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_spec spec = push_spec("main", SHA_A);
	struct sp_job_spec quiet = push_spec("dev", SHA_B);
	struct sp_stage_update u = { .name = "test", .pos = 0, .state = "passed",
				     .seconds = 3.1 };
	struct sp_finish fin = { .state = SP_JOB_PASSED, .exit_code = 0, .pipeline = "app" };
	struct sp_status_row *rows;
	const struct sp_status_row *r, *top;
	struct sp_store_counts counts;
	struct sp_lease l;
	size_t n;
	int64_t id, qid, top_id, stage_id;

	spec.statuses = true;
	id = create(f->st, &spec);
	qid = create(f->st, &quiet);  /* statuses off: never a row */

	outbox_next(f->st, &rows, &n);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].job_id, id);
	assert_string_equal(rows[0].context, "stagepipe");
	assert_string_equal(rows[0].repo, "app");
	assert_string_equal(rows[0].sha, SHA_A);
	assert_int_equal(rows[0].state, SP_STATUS_PENDING);
	assert_string_equal(rows[0].description, "queued");
	assert_int_equal(rows[0].attempts, 0);
	sp_status_rows_release(rows, n);
	/* claimed: not returned again until done */
	outbox_next(f->st, &rows, &n);
	assert_int_equal(n, 0);
	sp_status_rows_release(rows, n);

	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.job_id, id);
	u.report = cJSON_Parse("{\"event\":\"stage_finished\",\"stage\":\"test\","
			       "\"result\":\"passed\",\"seconds\":3.1,\"tests\":{\"total\":17,"
			       "\"passed\":17,\"failed\":0,\"errors\":0,\"skipped\":0},"
			       "\"coverage\":100,\"coverage_min\":80}");
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &u, &err), 0);
	cJSON_Delete((cJSON *)u.report);
	fin.summary = cJSON_Parse("{\"event\":\"pipeline_finished\",\"result\":\"passed\","
				  "\"seconds\":14.2}");
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), 0);
	cJSON_Delete((cJSON *)fin.summary);
	fin.summary = NULL;
	sp_lease_release(&l);
	l = lease(f->st, NULL, 30000);  /* the quiet job: no rows for its lease or finish */
	assert_int_equal(l.job_id, qid);
	assert_int_equal(sp_store_finish(f->st, qid, l.epoch, &fin, &err), 0);
	sp_lease_release(&l);
	assert_int_equal(query_int(f, "SELECT count(*) FROM outbox WHERE job_id = 2"), 0);

	/* running was superseded by the final one: only the newest per context */
	outbox_next(f->st, &rows, &n);
	assert_int_equal(n, 2);
	top = find_row(rows, n, "stagepipe");
	r = find_row(rows, n, "stagepipe/test");
	assert_non_null(top);
	assert_non_null(r);
	assert_int_equal(top->state, SP_STATUS_SUCCESS);
	assert_string_equal(top->description, "passed in 14.2 s");
	assert_int_equal(r->state, SP_STATUS_SUCCESS);
	assert_string_equal(r->description, "17 passed, coverage 100%");
	top_id = top->id;
	stage_id = r->id;
	sp_status_rows_release(rows, n);
	assert_int_equal(query_int(f, "SELECT count(*) FROM outbox WHERE superseded = 1"), 2);

	/* the stage row is sent; the final one fails and is due again at once */
	assert_int_equal(sp_store_outbox_done(f->st, stage_id, true, NULL, 0, &err), 0);
	assert_int_equal(sp_store_outbox_done(f->st, top_id, false, "HTTP 502", 0, &err), 0);
	assert_int_equal(sp_store_counts(f->st, &counts, &err), 0);
	assert_int_equal(counts.outbox_pending, 1);
	assert_int_equal(counts.outbox_failing, 1);
	outbox_next(f->st, &rows, &n);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].id, top_id);
	assert_int_equal(rows[0].attempts, 1);
	sp_status_rows_release(rows, n);
	/* given up: never again, but its error shows in the job */
	assert_int_equal(sp_store_outbox_done(f->st, top_id, false, "HTTP 401", -1, &err), 0);
	outbox_next(f->st, &rows, &n);
	assert_int_equal(n, 0);
	sp_status_rows_release(rows, n);
	assert_int_equal(sp_store_counts(f->st, &counts, &err), 0);
	assert_int_equal(counts.outbox_pending, 0);
	{
		cJSON *j = job_get(f->st, id);
		cJSON *st = cJSON_GetObjectItem(j, "status");
		assert_int_equal((int)jnum(st, "pending"), 0);
		assert_int_equal((int)jnum(st, "failing"), 1);
		assert_string_equal(jstr(st, "last_error"), "HTTP 401");
		cJSON_Delete(j);
	}
	assert_int_equal(sp_store_outbox_done(f->st, 999, true, NULL, 0, &err), SP_ENOTFOUND);
	assert_int_equal(sp_store_outbox_next(f->st, 0, &rows, &n, &err), 0);
	assert_int_equal(n, 0);
	sp_status_rows_release(rows, n);
}

static void test_outbox_descriptions(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_spec spec = push_spec("main", SHA_A);
	struct sp_stage_update lint = { .name = "lint", .pos = 0, .state = "failed",
					.seconds = 1 };
	struct sp_stage_update build = { .name = "build", .pos = 1, .state = "running" };
	struct sp_finish fin = { .state = SP_JOB_FAILED, .reason = "stage lint failed",
				 .exit_code = 1 };
	struct sp_status_row *rows;
	const struct sp_status_row *r;
	struct sp_lease l;
	size_t n;
	int64_t id;

	spec.statuses = true;
	id = create(f->st, &spec);
	l = lease(f->st, NULL, 30000);
	lint.report = cJSON_Parse("{\"result\":\"failed\",\"message\":\"3 files need"
				  " formatting\",\"tests\":{\"passed\":2,\"failed\":1}}");
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &lint, &err), 0);
	cJSON_Delete((cJSON *)lint.report);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &build, &err), 0);  /* no row */
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), 0);
	sp_lease_release(&l);
	outbox_next(f->st, &rows, &n);
	assert_int_equal(n, 2);
	r = find_row(rows, n, "stagepipe/lint");
	assert_non_null(r);
	assert_int_equal(r->state, SP_STATUS_FAILURE);
	assert_string_equal(r->description, "3 files need formatting");
	r = find_row(rows, n, "stagepipe");
	assert_non_null(r);
	assert_int_equal(r->state, SP_STATUS_FAILURE);
	assert_string_equal(r->description, "stage lint failed");
	sp_status_rows_release(rows, n);
}

/* ---- JSON ------------------------------------------------------- */

static void assert_rfc3339(const char *t)
{
	assert_non_null(t);
	assert_int_equal(strlen(t), 24);  /* 2026-12-04T05:01:02.123Z */
	assert_int_equal(t[4], '-');
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[23], 'Z');
}

static void test_job_json(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_spec spec = push_spec("main", SHA_A);
	struct sp_stage_update run = { .name = "test", .pos = 1, .state = "running" };
	struct sp_stage_update done = { .name = "test", .pos = 1, .state = "passed",
					.seconds = 2.5 };
	struct sp_stage_update build = { .name = "build", .pos = 0, .state = "passed",
					 .seconds = 1 };
	struct sp_finish fin = { .state = SP_JOB_PASSED, .exit_code = 0, .pipeline = "app" };
	struct sp_lease l;
	cJSON *j, *stages, *s0, *s1, *summary, *status;
	int64_t id;

	spec.labels = "linux";
	spec.retry_of = 0;
	id = create(f->st, &spec);
	j = job_get(f->st, id);
	assert_int_equal((int)jnum(j, "id"), id);
	assert_string_equal(jstr(j, "repo"), "app");
	assert_string_equal(jstr(j, "event"), "push");
	assert_string_equal(jstr(j, "ref"), "refs/heads/main");
	assert_string_equal(jstr(j, "branch"), "main");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "tag")));
	assert_string_equal(jstr(j, "sha"), SHA_A);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "pr")));
	assert_string_equal(jstr(j, "title"), "Fix the thing");
	assert_string_equal(jstr(j, "author"), "Ann");
	assert_string_equal(jstr(j, "sender"), "ann");
	assert_string_equal(jstr(j, "state"), "queued");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "reason")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "pipeline")));
	assert_rfc3339(jstr(j, "created"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "started")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "finished")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "seconds")));
	assert_int_equal((int)jnum(j, "attempt"), 0);
	assert_int_equal((int)jnum(j, "epoch"), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "agent")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "promoted")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "exit_code")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "retry_of")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "summary")));
	status = cJSON_GetObjectItem(j, "status");
	assert_true(cJSON_IsObject(status));
	assert_int_equal((int)jnum(status, "pending"), 0);
	assert_int_equal((int)jnum(status, "failing"), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(status, "last_error")));
	stages = cJSON_GetObjectItem(j, "stages");
	assert_true(cJSON_IsArray(stages));
	assert_int_equal(cJSON_GetArraySize(stages), 0);
	cJSON_Delete(j);

	l = lease(f->st, "linux", 30000);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &run, &err), 0);
	done.report = cJSON_Parse("{\"result\":\"passed\",\"tests\":{\"passed\":3}}");
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &done, &err), 0);
	cJSON_Delete((cJSON *)done.report);
	done.report = NULL;
	/* a later update without a report keeps the one stored */
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &done, &err), 0);
	assert_int_equal(sp_store_stage(f->st, id, l.epoch, &build, &err), 0);
	fin.summary = cJSON_Parse("{\"event\":\"pipeline_finished\",\"result\":\"passed\"}");
	assert_int_equal(sp_store_finish(f->st, id, l.epoch, &fin, &err), 0);
	cJSON_Delete((cJSON *)fin.summary);
	sp_lease_release(&l);

	j = job_get(f->st, id);
	assert_string_equal(jstr(j, "state"), "passed");
	assert_string_equal(jstr(j, "pipeline"), "app");
	assert_rfc3339(jstr(j, "started"));
	assert_rfc3339(jstr(j, "finished"));
	assert_true(jnum(j, "seconds") >= 0);
	assert_int_equal((int)jnum(j, "exit_code"), 0);
	summary = cJSON_GetObjectItem(j, "summary");
	assert_string_equal(jstr(summary, "event"), "pipeline_finished");
	stages = cJSON_GetObjectItem(j, "stages");
	assert_int_equal(cJSON_GetArraySize(stages), 2);
	s0 = cJSON_GetArrayItem(stages, 0);
	s1 = cJSON_GetArrayItem(stages, 1);
	assert_string_equal(jstr(s0, "name"), "build");
	assert_int_equal((int)jnum(s0, "pos"), 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(s0, "report")));
	assert_string_equal(jstr(s1, "name"), "test");
	assert_string_equal(jstr(s1, "state"), "passed");
	assert_true(jnum(s1, "seconds") > 2.4);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(s1, "report")));
	assert_string_equal(jstr(cJSON_GetObjectItem(s1, "report"), "result"), "passed");
	cJSON_Delete(j);

	assert_int_equal(sp_store_job_get(f->st, 999, &j, &err), SP_ENOTFOUND);
	assert_null(j);
}

static int64_t list_ids(struct sp_store *st, const struct sp_job_filter *flt, int64_t *ids,
			int *n)
{
	struct sp_error err = SP_ERROR_INIT;
	cJSON *o = NULL, *jobs, *next, *it;
	int64_t cursor;

	if (sp_store_job_list(st, flt, &o, &err))
		fail_msg("job_list: %s", err.msg);
	jobs = cJSON_GetObjectItem(o, "jobs");
	assert_true(cJSON_IsArray(jobs));
	*n = 0;
	cJSON_ArrayForEach(it, jobs) {
		assert_null(cJSON_GetObjectItem(it, "stages"));
		assert_non_null(cJSON_GetObjectItem(it, "status"));
		ids[(*n)++] = (int64_t)jnum(it, "id");
	}
	next = cJSON_GetObjectItem(o, "next");
	assert_non_null(next);
	cursor = cJSON_IsNull(next) ? 0 : (int64_t)next->valuedouble;
	cJSON_Delete(o);
	return cursor;
}

static void test_job_list(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_spec lib = push_spec("dev", SHA_B);
	struct sp_job_filter flt = { .limit = 2 };
	struct sp_lease l;
	int64_t ids[16], next;
	enum sp_job_state after;
	cJSON *o;
	int n;

	for (int i = 0; i < 5; i++)
		create_simple(f->st, NULL);  /* 1..5, app, main */
	lib.repo = "lib";
	lib.ref = "refs/heads/dev";
	create(f->st, &lib);             /* 6 */
	assert_int_equal(sp_store_cancel(f->st, 2, NULL, &after, &err), 0);

	next = list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 6);
	assert_int_equal(ids[1], 5);
	assert_int_equal(next, 5);
	flt.before = next;
	next = list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 4);
	assert_int_equal(next, 3);
	flt.before = next;
	next = list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ids[1], 1);
	assert_int_equal(next, 0);  /* null: no more */

	memset(&flt, 0, sizeof(flt));
	flt.repo = "lib";
	list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 6);
	flt.repo = NULL;
	flt.state = "cancelled";
	list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 2);
	flt.state = NULL;
	flt.ref = "dev";  /* a branch name matches */
	list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 1);
	flt.ref = "refs/heads/main";
	flt.repo = "app";
	flt.state = "queued";
	list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 4);
	l = lease(f->st, NULL, 30000);
	list_ids(f->st, &flt, ids, &n);
	assert_int_equal(n, 3);
	sp_lease_release(&l);

	flt.state = "bogus";
	assert_int_equal(sp_store_job_list(f->st, &flt, &o, &err), SP_ECONFIG);
	assert_null(o);
	assert_int_equal(sp_store_job_list(f->st, NULL, &o, &err), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobs")), 6);
	cJSON_Delete(o);
}

static void test_counts_and_ping(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store_counts c;
	struct sp_store_sqlite_stats before, after;
	struct sp_lease l;

	create_simple(f->st, NULL);
	create_simple(f->st, NULL);
	l = lease(f->st, NULL, 30000);
	sp_lease_release(&l);
	store_stats(f->st, &before);
	assert_int_equal(sp_store_ping(f->st, &err), 0);
	store_stats(f->st, &after);
	assert_int_equal(after.commits, before.commits + 1);
	assert_int_equal(sp_store_counts(f->st, &c, &err), 0);
	assert_int_equal(c.jobs[SP_JOB_QUEUED], 1);
	assert_int_equal(c.jobs[SP_JOB_RUNNING], 1);
	assert_int_equal(c.jobs[SP_JOB_PASSED], 0);
	assert_int_equal(c.deliveries, 0);
	assert_int_equal(c.outbox_pending, 0);
}


/*
 * The permit and fencing under every interleaving we can provoke: agent
 * threads lease with 1-3 ms leases, ask for the permit, write stages, and
 * finish or requeue, while an expirer thread takes leases back as fast as
 * it can.  Whatever happens: at most one epoch of a job is ever granted
 * the permit (the one the job records), and a job is finished at most once.
 */
#define HAMMER_JOBS 24
#define HAMMER_AGENTS 6
#define HAMMER_ROUNDS 400

struct hammer {
	struct sp_store *st;
	pthread_mutex_t mu;
	int64_t granted_epoch[HAMMER_JOBS + 1];   /* by job id (ids are 1..N) */
	int double_grants;
	int finishes[HAMMER_JOBS + 1];
	atomic_bool stop;
	int errors;
};

static void *hammer_agent(void *arg)
{
	struct hammer *h = arg;
	unsigned seed = (unsigned)(uintptr_t)pthread_self();

	for (int round = 0; round < HAMMER_ROUNDS; round++) {
		struct sp_lease_req q = { .agent = "hammer", .ttl_ms = 1 + (int)(rand_r(&seed) % 3) };
		struct sp_error err = SP_ERROR_INIT;
		struct sp_lease l;
		int rc;

		memset(&l, 0, sizeof(l));
		rc = sp_store_lease(h->st, &q, &l, &err);
		if (rc == SP_ENOTFOUND) {
			sleep_ms(1);
			continue;
		}
		if (rc) {
			pthread_mutex_lock(&h->mu);
			h->errors++;
			pthread_mutex_unlock(&h->mu);
			continue;
		}
		for (int k = 0; k < 3; k++) {
			struct sp_stage_update u = { "build", 0, "running", 0, NULL };
			char reason[128];
			bool granted = false;

			if (sp_store_promote(h->st, l.job_id, l.epoch, &granted, reason, sizeof(reason),
					     &err) == 0 && granted) {
				pthread_mutex_lock(&h->mu);
				if (h->granted_epoch[l.job_id] && h->granted_epoch[l.job_id] != l.epoch)
					h->double_grants++;
				h->granted_epoch[l.job_id] = l.epoch;
				pthread_mutex_unlock(&h->mu);
			}
			(void)sp_store_stage(h->st, l.job_id, l.epoch, &u, &err);
		}
		switch (rand_r(&seed) % 3) {
		case 0: {
			struct sp_finish fin = { SP_JOB_PASSED, NULL, 0, NULL, NULL };

			if (sp_store_finish(h->st, l.job_id, l.epoch, &fin, &err) == 0) {
				pthread_mutex_lock(&h->mu);
				h->finishes[l.job_id]++;
				pthread_mutex_unlock(&h->mu);
			}
			break;
		}
		case 1:
			(void)sp_store_requeue(h->st, l.job_id, l.epoch, "hammer", 1000000, &err);
			break;
		default:
			break;  /* walk away: the expirer takes it back */
		}
		sp_lease_release(&l);
	}
	return NULL;
}

static void *hammer_expirer(void *arg)
{
	struct hammer *h = arg;

	while (!atomic_load(&h->stop)) {
		struct sp_error err = SP_ERROR_INIT;
		int requeued = 0, failed = 0;

		(void)sp_store_expire(h->st, 1000000, &requeued, &failed, &err);
	}
	return NULL;
}

static void test_promote_fencing_hammer(void **state)
{
	struct fx *f = *state;
	struct hammer *h = sp_xcalloc(1, sizeof(*h));
	pthread_t agents[HAMMER_AGENTS], expirer;
	int promoted = 0;

	h->st = f->st;
	pthread_mutex_init(&h->mu, NULL);
	atomic_init(&h->stop, false);
	for (int i = 0; i < HAMMER_JOBS; i++)
		assert_int_equal(create_simple(f->st, NULL), i + 1);
	assert_int_equal(pthread_create(&expirer, NULL, hammer_expirer, h), 0);
	for (int i = 0; i < HAMMER_AGENTS; i++)
		assert_int_equal(pthread_create(&agents[i], NULL, hammer_agent, h), 0);
	for (int i = 0; i < HAMMER_AGENTS; i++)
		pthread_join(agents[i], NULL);
	atomic_store(&h->stop, true);
	pthread_join(expirer, NULL);

	assert_int_equal(h->errors, 0);
	assert_int_equal(h->double_grants, 0);
	for (int64_t id = 1; id <= HAMMER_JOBS; id++) {
		char sql[128];
		int64_t pe;

		assert_in_range(h->finishes[id], 0, 1);
		snprintf(sql, sizeof(sql), "SELECT coalesce(promote_epoch, 0) FROM jobs WHERE id = %lld",
			 (long long)id);
		pe = query_int(f, sql);
		/* the permit the store records is the one the agents were granted */
		assert_int_equal(pe, h->granted_epoch[id]);
		promoted += pe != 0;
		if (h->finishes[id]) {
			cJSON *j = job_get(f->st, id);
			assert_string_equal(jstr(j, "state"), "passed");
			cJSON_Delete(j);
		}
	}
	assert_true(promoted > 0);  /* the test did exercise the permit */
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* ---- for the web UI: test/coverage totals, branches, change revs ------- */

static void stage_with(struct sp_store *st, int64_t id, int64_t epoch, const char *name,
		       int pos, const char *state, const char *report)
{
	struct sp_error err = SP_ERROR_INIT;
	cJSON *rep = report ? cJSON_Parse(report) : NULL;
	struct sp_stage_update u = { name, pos, state, 1.0, rep };

	if (report)
		assert_non_null(rep);
	if (sp_store_stage(st, id, epoch, &u, &err))
		fail_msg("stage %s: %s", name, err.msg);
	cJSON_Delete(rep);
}

static const cJSON *list_row(const cJSON *list, int64_t id)
{
	const cJSON *row;

	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(list, "jobs"))
		if ((int64_t)jnum(row, "id") == id)
			return row;
	fail_msg("job %lld not in the list", (long long)id);
	return NULL;
}

static void test_job_test_totals(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_filter flt = { 0 };
	struct sp_lease l;
	int64_t id = create_simple(f->st, NULL), bare = create_simple(f->st, NULL);
	const cJSON *row, *t;
	cJSON *list = NULL, *j;

	l = lease(f->st, NULL, 30000);
	assert_int_equal(l.job_id, id);
	stage_with(f->st, id, l.epoch, "build", 0, "passed", "{\"result\":\"passed\"}");
	stage_with(f->st, id, l.epoch, "test", 1, "running", NULL);
	stage_with(f->st, id, l.epoch, "test", 1, "passed",
		   "{\"tests\":{\"total\":17,\"passed\":17,\"failed\":0,\"errors\":0,"
		   "\"skipped\":0},\"coverage\":87.5,\"coverage_min\":80}");
	stage_with(f->st, id, l.epoch, "lint", 2, "failed",
		   "{\"tests\":{\"total\":4,\"passed\":2,\"failed\":1,\"errors\":1,"
		   "\"skipped\":0},\"coverage\":95}");
	/* a stage row written again without a report keeps its numbers */
	stage_with(f->st, id, l.epoch, "lint", 2, "failed", NULL);

	assert_int_equal(sp_store_job_list(f->st, &flt, &list, &err), 0);
	row = list_row(list, id);
	t = cJSON_GetObjectItemCaseSensitive(row, "tests");
	assert_true(cJSON_IsObject(t));
	assert_int_equal((int)jnum(t, "total"), 21);
	assert_int_equal((int)jnum(t, "passed"), 19);
	assert_int_equal((int)jnum(t, "failed"), 2);
	/* the lowest coverage, with its stage's minimum */
	assert_true(jnum(row, "coverage") == 87.5);
	assert_true(jnum(row, "coverage_min") == 80);
	assert_true(jnum(row, "rev") > 0);
	row = list_row(list, bare);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row, "tests")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row, "coverage")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row, "coverage_min")));
	cJSON_Delete(list);

	/* the detail has them too; a new report replaces the old numbers */
	stage_with(f->st, id, l.epoch, "lint", 2, "passed",
		   "{\"tests\":{\"total\":4,\"passed\":4,\"failed\":0,\"errors\":0}}");
	j = job_get(f->st, id);
	t = cJSON_GetObjectItemCaseSensitive(j, "tests");
	assert_int_equal((int)jnum(t, "total"), 21);
	assert_int_equal((int)jnum(t, "failed"), 0);
	assert_true(jnum(j, "coverage") == 87.5);
	cJSON_Delete(j);
	sp_lease_release(&l);
}

static void test_branches(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_job_spec main1 = push_spec("main", SHA_A), feat = push_spec("feat/x", SHA_B);
	struct sp_job_spec main2 = push_spec("main", SHA_C), pr = push_spec("main", SHA_B);
	struct sp_job_spec tag = push_spec(NULL, SHA_B), other = push_spec("main", SHA_B);
	struct sp_job_spec manual = push_spec("rel", SHA_A);
	int64_t m1, fx, m2, mn;
	const cJSON *arr, *b;
	cJSON *out = NULL;

	feat.ref = "refs/heads/feat/x";
	pr.event = "pull_request";
	pr.ref = "refs/pull/3/head";
	pr.pr = 3;
	tag.event = "tag";
	tag.ref = "refs/tags/v1";
	tag.tag = "v1";
	other.repo = "web";
	manual.event = "manual";
	manual.ref = "refs/heads/rel";
	m1 = create(f->st, &main1);
	fx = create(f->st, &feat);
	m2 = create(f->st, &main2);
	create(f->st, &pr);      /* a pull request is not the state of main */
	create(f->st, &tag);
	create(f->st, &other);
	mn = create(f->st, &manual);
	assert_true(m1 < m2);

	assert_int_equal(sp_store_branches(f->st, "app", NULL, 0, &out, &err), 0);
	arr = cJSON_GetObjectItemCaseSensitive(out, "branches");
	assert_int_equal(cJSON_GetArraySize(arr), 3);
	b = cJSON_GetArrayItem(arr, 0);  /* newest first */
	assert_int_equal((int64_t)jnum(b, "id"), mn);
	assert_string_equal(jstr(b, "branch"), "rel");
	b = cJSON_GetArrayItem(arr, 1);
	assert_int_equal((int64_t)jnum(b, "id"), m2);
	assert_string_equal(jstr(b, "sha"), SHA_C);
	assert_string_equal(jstr(b, "title"), "Fix the thing");
	b = cJSON_GetArrayItem(arr, 2);
	assert_int_equal((int64_t)jnum(b, "id"), fx);
	assert_string_equal(jstr(b, "branch"), "feat/x");
	cJSON_Delete(out);

	assert_int_equal(sp_store_branches(f->st, "app", NULL, 1, &out, &err), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "branches")), 1);
	cJSON_Delete(out);

	assert_int_equal(sp_store_branches(f->st, "app", "feat/x", 0, &out, &err), 0);
	arr = cJSON_GetObjectItemCaseSensitive(out, "branches");
	assert_int_equal(cJSON_GetArraySize(arr), 1);
	assert_int_equal((int64_t)jnum(cJSON_GetArrayItem(arr, 0), "id"), fx);
	cJSON_Delete(out);

	assert_int_equal(sp_store_branches(f->st, "app", "nope", 0, &out, &err), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "branches")), 0);
	cJSON_Delete(out);
	assert_int_equal(sp_store_branches(f->st, "none", NULL, 0, &out, &err), 0);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "branches")), 0);
	cJSON_Delete(out);
}

/* The ids changed since *rev (moves *rev on); n of them. */
static size_t changes(struct sp_store *st, int64_t *rev, int64_t *ids, size_t max)
{
	struct sp_error err = SP_ERROR_INIT;
	size_t n = 99;
	int64_t last = -5;

	if (sp_store_job_changes(st, *rev, ids, max, &n, &last, &err))
		fail_msg("job_changes: %s", err.msg);
	assert_true(last >= *rev);
	*rev = last;
	return n;
}

static void test_job_changes(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_finish fin = { SP_JOB_PASSED, NULL, 0, NULL, NULL };
	enum sp_job_state after;
	struct sp_lease l;
	int64_t rev = -1, start, ids[8], a, b, c;
	bool cancel;
	size_t n;

	assert_int_equal(changes(f->st, &rev, ids, 8), 0);
	assert_int_equal(rev, 0);  /* an empty store */
	a = create_simple(f->st, NULL);
	b = create_simple(f->st, NULL);
	start = rev;
	n = changes(f->st, &rev, ids, 8);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], a);
	assert_int_equal(ids[1], b);
	assert_int_equal(changes(f->st, &rev, ids, 8), 0);

	/* a starting point from -1 is the newest rev */
	{
		int64_t now = -1;
		assert_int_equal(changes(f->st, &now, ids, 8), 0);
		assert_int_equal(now, rev);
	}

	l = lease(f->st, NULL, 30000);  /* a starts */
	assert_int_equal(changes(f->st, &rev, ids, 8), 1);
	assert_int_equal(ids[0], a);
	/* a heartbeat is no change */
	assert_int_equal(sp_store_renew(f->st, a, l.epoch, 30000, &cancel, &err), 0);
	assert_int_equal(changes(f->st, &rev, ids, 8), 0);
	stage_with(f->st, a, l.epoch, "test", 0, "running", NULL);
	assert_int_equal(changes(f->st, &rev, ids, 8), 1);
	stage_with(f->st, a, l.epoch, "test", 0, "passed", "{\"tests\":{\"total\":1}}");
	assert_int_equal(changes(f->st, &rev, ids, 8), 1);
	assert_int_equal(sp_store_finish(f->st, a, l.epoch, &fin, &err), 0);
	assert_int_equal(changes(f->st, &rev, ids, 8), 1);
	assert_int_equal(ids[0], a);
	assert_int_equal(sp_store_cancel(f->st, b, "stop", &after, &err), 0);
	assert_int_equal(changes(f->st, &rev, ids, 8), 1);
	assert_int_equal(ids[0], b);

	/* a job listed once however often it changed; in batches of max */
	c = create_simple(f->st, NULL);
	assert_int_equal(sp_store_cancel(f->st, c, "stop", &after, &err), 0);
	n = changes(f->st, &start, ids, 1);
	assert_int_equal(n, 1);
	n = changes(f->st, &start, ids, 8);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], b);
	assert_int_equal(ids[1], c);
	assert_int_equal(start, rev + 2);  /* c: created, then cancelled */
	sp_lease_release(&l);
}

/* A database of schema 1 with a finished stage: migration 2 fills the new
 * columns from the reports already there. */
static void test_migration_2_backfills(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = NULL;
	int64_t id = create_simple(f->st, NULL);
	const cJSON *t;
	struct sp_lease l = lease(f->st, NULL, 30000);
	cJSON *j;
	char *e = NULL;

	stage_with(f->st, id, l.epoch, "test", 0, "passed",
		   "{\"tests\":{\"total\":17,\"passed\":16,\"failed\":1,\"errors\":0},"
		   "\"coverage\":81.5,\"coverage_min\":80}");
	sp_lease_release(&l);
	sp_store_close(f->st);
	f->st = NULL;
	/* back to schema 1 */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	if (sqlite3_exec(db,
			 "DROP TRIGGER jobs_rev_insert; DROP TRIGGER jobs_rev_update;"
			 "DROP TRIGGER stages_rev_insert; DROP TRIGGER stages_rev_update;"
			 "DROP INDEX jobs_rev; DROP INDEX jobs_branch_last;"
			 "ALTER TABLE jobs DROP COLUMN rev;"
			 "ALTER TABLE stages DROP COLUMN tests_total;"
			 "ALTER TABLE stages DROP COLUMN tests_passed;"
			 "ALTER TABLE stages DROP COLUMN tests_failed;"
			 "ALTER TABLE stages DROP COLUMN coverage;"
			 "ALTER TABLE stages DROP COLUMN coverage_min;"
			 "PRAGMA user_version = 1;", NULL, NULL, &e) != SQLITE_OK)
		fail_msg("downgrade: %s", e);
	sqlite3_close(db);
	f->st = open_store(f);
	assert_int_equal(query_int(f, "PRAGMA user_version"), sp_store_schema_version());
	j = job_get(f->st, id);
	t = cJSON_GetObjectItemCaseSensitive(j, "tests");
	assert_true(cJSON_IsObject(t));
	assert_int_equal((int)jnum(t, "total"), 17);
	assert_int_equal((int)jnum(t, "passed"), 16);
	assert_int_equal((int)jnum(t, "failed"), 1);
	assert_true(jnum(j, "coverage") == 81.5);
	assert_true(jnum(j, "coverage_min") == 80);
	assert_int_equal((int64_t)jnum(j, "rev"), id);
	cJSON_Delete(j);
	/* and revs go on from there */
	create_simple(f->st, NULL);
	assert_int_equal(query_int(f, "SELECT max(rev) FROM jobs"), id + 1);
}

/*
 * The database cannot grow (RLIMIT_FSIZE at the WAL file's size stands in
 * for a full disk; the writer gets an I/O error): an ingest fails with
 * SP_EENGINE and leaves nothing behind, sp_store_last_write says so, and
 * once writes fit again a ping commits, the store is fine again and the
 * same delivery is taken as new — no restart, nothing to repair.
 */
static void test_write_fails_then_recovers(void **state)
{
	struct fx *f = *state;
	struct sp_delivery d = { .repo = "app", .id = "d-1", .forge = "github",
				 .event = "push", .outcome = "job" };
	struct sp_job_spec j = push_spec("main", SHA_A);
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct rlimit old, lim;
	struct stat wal;
	char *walpath = sp_xasprintf("%s-wal", f->path);
	void (*old_xfsz)(int);
	bool full = true;
	bool cancel;

	assert_int_equal(sp_store_last_write(f->st, &full, &err), 0);  /* none yet */
	assert_false(full);
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), 0);
	assert_int_equal(res.job_id, 1);
	/* requests refused for their own reasons are not a failing disk */
	assert_int_equal(sp_store_renew(f->st, 1, 7, 1000, &cancel, &err), SP_ECONFLICT);
	j.sha = NULL;
	d.id = "d-x";
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), SP_ERROR);
	assert_int_equal(sp_store_last_write(f->st, NULL, &err), 0);

	assert_int_equal(stat(walpath, &wal), 0);
	assert_true(wal.st_size > 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)wal.st_size;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	j = push_spec("main", SHA_B);
	d.id = "d-2";
	sp_error_clear(&err);
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "transaction failed"));
	sp_error_clear(&err);
	assert_int_equal(sp_store_last_write(f->st, &full, &err), SP_EENGINE);
	assert_false(full);  /* an I/O error here; ENOSPC would set it */
	assert_true(err.msg[0] != '\0');
	assert_int_equal(sp_store_ping(f->st, &err), SP_EENGINE);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 1);

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_xfsz);
	/* still failing until a write commits: the store does not guess */
	assert_int_equal(sp_store_last_write(f->st, NULL, &err), SP_EENGINE);
	assert_int_equal(sp_store_ping(f->st, &err), 0);
	assert_int_equal(sp_store_last_write(f->st, &full, &err), 0);
	assert_false(full);

	/* the delivery that failed was not kept: its redelivery is new */
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), 0);
	assert_false(res.duplicate);
	assert_int_equal(res.job_id, 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs WHERE sha = '" SHA_B "'"),
			 1);
	free(walpath);
}

/* ---- PostgreSQL only -------------------------------------------- */

static void test_pg_mask_url(void **state)
{
	char out[256];

	(void)state;
	sp_store_pg_mask_url("postgres://ci:s3cr%40t@db.example:5432/ci?sslmode=require", out,
			     sizeof(out));
	assert_string_equal(out, "postgres://ci:***@db.example:5432/ci?sslmode=require");
	sp_store_pg_mask_url("postgresql://ci:p@ss@db/ci", out, sizeof(out));
	assert_string_equal(out, "postgresql://ci:***@db/ci");
	sp_store_pg_mask_url("postgres://ci@db/ci?password=hunter2&sslmode=disable", out,
			     sizeof(out));
	assert_string_equal(out, "postgres://ci@db/ci?password=***&sslmode=disable");
	sp_store_pg_mask_url("host=db user=ci password=hunter2 dbname=ci", out, sizeof(out));
	assert_string_equal(out, "host=db user=ci password=*** dbname=ci");
	sp_store_pg_mask_url("postgres:///ci?host=/run/pg", out, sizeof(out));
	assert_string_equal(out, "postgres:///ci?host=/run/pg");
}

struct opener {
	const struct fx *f;
	struct sp_store *st;
	char msg[SP_ERROR_MSG_MAX];
};

static void *open_thread(void *arg)
{
	struct opener *o = arg;
	struct sp_store_opts so = { .url = o->f->url };
	struct sp_error err = SP_ERROR_INIT;

	if (sp_store_open(&o->st, &so, &err))
		snprintf(o->msg, sizeof(o->msg), "%s", err.msg);
	return NULL;
}

/* Servers starting together on a new database: each migration runs once
 * (the advisory lock), every one of them opens, the schema is current. */
static void test_pg_open_migrates_concurrently(void **state)
{
	struct fx *f = *state;
	struct opener o[6];
	pthread_t th[6];
	PGconn *db = pg_connect(pg_base);
	char *sql = sp_xasprintf("DROP SCHEMA %s CASCADE; CREATE SCHEMA %s", f->schema, f->schema);

	sp_store_close(f->st);
	f->st = NULL;
	pg_exec(db, sql);
	free(sql);
	PQfinish(db);
	for (int i = 0; i < 6; i++) {
		o[i] = (struct opener){ .f = f };
		assert_int_equal(pthread_create(&th[i], NULL, open_thread, &o[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		if (!o[i].st)
			fail_msg("open %d: %s", i, o[i].msg);
	}
	assert_int_equal(query_int(f, "SELECT version FROM stagepipe_schema"),
			 sp_store_schema_version());
	assert_int_equal(query_int(f, "SELECT count(*) FROM stagepipe_schema"), 1);
	create_simple(o[0].st, NULL);
	assert_job_state(o[5].st, 1, "queued");
	for (int i = 1; i < 6; i++)
		sp_store_close(o[i].st);
	f->st = o[0].st;
	sp_store_close(f->st);
	f->st = open_store(f);  /* nothing to migrate; the job is there */
	assert_job_state(f->st, 1, "queued");
}

static void test_pg_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct sp_store_opts o = { .url = f->url };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;
	PGconn *db = pg_connect(f->url);

	sp_store_close(f->st);
	f->st = NULL;
	pg_exec(db, "UPDATE stagepipe_schema SET version = 999");
	PQfinish(db);
	assert_int_equal(sp_store_open_postgres(&st, &o, &err), SP_ECONFIG);
	assert_null(st);
	assert_non_null(strstr(err.msg, "999"));
	assert_non_null(strstr(err.msg, "newer"));
}

/* No server there: SP_EENGINE, and the message never shows the password. */
static void test_pg_open_errors(void **state)
{
	char *url = sp_xasprintf("postgresql://ci:hunter2@/ci?host=%s/nowhere&connect_timeout=2",
				 ((struct fx *)*state)->dir);
	struct sp_store_opts o = { .url = url };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;

	assert_int_equal(sp_store_open_postgres(&st, &o, &err), SP_EENGINE);
	assert_null(st);
	assert_null(strstr(err.msg, "hunter2"));
	assert_non_null(strstr(err.msg, "ci:***@"));
	o.url = "";
	assert_int_equal(sp_store_open_postgres(&st, &o, &err), SP_ECONFIG);
	free(url);
}

/*
 * Two servers on one database: a delivery sent to both makes one job,
 * each leases a different job, the promote permit is granted once, and an
 * expired lease is taken back by exactly one of them.
 */
static void test_pg_two_servers(void **state)
{
	struct fx *f = *state;
	struct sp_store *b = open_store(f);
	struct sp_delivery d = { .repo = "app", .id = "dup-1", .forge = "github" };
	struct sp_job_spec j = push_spec("main", SHA_A);
	struct sp_ingest_result ra, rb;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease la, lb;
	bool granted = false;
	char reason[128];
	int req_a = 0, fail_a = 0, req_b = 0, fail_b = 0;

	assert_int_equal(sp_store_ingest(f->st, &d, &j, &ra, &err), 0);
	assert_int_equal(sp_store_ingest(b, &d, &j, &rb, &err), 0);
	assert_false(ra.duplicate);
	assert_true(rb.duplicate);
	assert_int_equal(rb.job_id, ra.job_id);
	j.branch = "dev";
	create(b, &j);
	la = lease(f->st, NULL, 30000);
	lb = lease(b, NULL, 1);
	assert_int_not_equal(la.job_id, lb.job_id);
	assert_int_equal(lease_rc(f->st, NULL), SP_ENOTFOUND);
	assert_int_equal(sp_store_promote(b, la.job_id, la.epoch, &granted, reason,
					  sizeof(reason), &err), 0);
	assert_true(granted);
	assert_int_equal(sp_store_promote(f->st, la.job_id, la.epoch, &granted, reason,
					  sizeof(reason), &err), 0);
	assert_true(granted);  /* the same epoch again */
	sleep_ms(5);
	assert_int_equal(sp_store_expire(f->st, 3, &req_a, &fail_a, &err), 0);
	assert_int_equal(sp_store_expire(b, 3, &req_b, &fail_b, &err), 0);
	assert_int_equal(req_a + req_b, 1);
	assert_int_equal(fail_a + fail_b, 0);
	assert_job_state(b, lb.job_id, "queued");
	assert_int_equal(sp_store_finish(b, lb.job_id, lb.epoch,
					 &(struct sp_finish){ .state = SP_JOB_PASSED }, &err),
			 SP_ECONFLICT);
	sp_lease_release(&la);
	sp_lease_release(&lb);
	sp_store_close(b);
}

static char *log_all(struct sp_store *st, int64_t job, const char *stage, size_t w,
		     size_t *total);

/* store copy: a SQLite store with jobs in every state goes across whole;
 * ids and revs go on from there; a second copy is refused. */
static void test_pg_copy_from_sqlite(void **state)
{
	struct fx *f = *state;
	struct fx lite = { .path = sp_xasprintf("%s/lite/stagepipe.db", f->dir) };
	struct sp_store *src = open_store(&lite);
	struct sp_store_copy_stats stats;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_delivery d = { .repo = "app", .id = "d-1", .forge = "github" };
	struct sp_job_spec j = push_spec("main", SHA_A);
	struct sp_ingest_result res;
	struct sp_lease l;
	int64_t last;

	assert_int_equal(sp_store_ingest(src, &d, &j, &res, &err), 0);
	create_simple(src, NULL);
	j.branch = "dev";
	j.sha = SHA_B;
	create(src, &j);
	l = lease(src, NULL, 30000);
	stage_with(src, l.job_id, l.epoch, "test", 0, "passed",
		   "{\"tests\":{\"total\":3,\"passed\":3,\"failed\":0,\"errors\":0},"
		   "\"coverage\":90.5}");
	assert_int_equal(sp_store_finish(src, l.job_id, l.epoch,
					 &(struct sp_finish){ .state = SP_JOB_PASSED, .exit_code = 0 },
					 &err), 0);
	sp_lease_release(&l);
	sp_store_close(src);
	sp_store_close(f->st);
	f->st = NULL;
	/* the data folder's log files: job 3's test (three pieces of lines,
	 * the last one without its newline) and _job; job 77 is unknown */
	{
		char *p;
		FILE *fp;

		p = sp_xasprintf("%s/lite/logs", f->dir);
		mkdir(p, 0750);
		free(p);
		p = sp_xasprintf("%s/lite/logs/3", f->dir);
		mkdir(p, 0750);
		free(p);
		p = sp_xasprintf("%s/lite/logs/77", f->dir);
		mkdir(p, 0750);
		free(p);
		p = sp_xasprintf("%s/lite/logs/3/test.log", f->dir);
		assert_non_null(fp = fopen(p, "w"));
		for (int i = 0; i < 5000; i++)
			fprintf(fp, "line %04d of the test stage's log, long enough\n", i);
		fprintf(fp, "no newline");
		fclose(fp);
		free(p);
		p = sp_xasprintf("%s/lite/logs/3/_job.log", f->dir);
		assert_non_null(fp = fopen(p, "w"));
		fprintf(fp, "cloning\n");
		fclose(fp);
		free(p);
		p = sp_xasprintf("%s/lite/logs/77/test.log", f->dir);
		assert_non_null(fp = fopen(p, "w"));
		fprintf(fp, "orphan\n");
		fclose(fp);
		free(p);
	}

	if (sp_store_copy(lite.path, f->url, &stats, &err))
		fail_msg("copy: %s", err.msg);
	assert_int_equal(stats.jobs, 3);
	assert_int_equal(stats.deliveries, 1);
	assert_int_equal(stats.stages, 1);
	assert_int_equal(stats.logs, 2);
	assert_int_equal(stats.log_bytes, 5000 * 47 + 10 + 8);
	assert_true(query_int(f, "SELECT count(*) FROM job_log WHERE job_id = 3 AND stage = 'test'")
		    >= 3);
	/* whole lines in every chunk but the last */
	assert_int_equal(query_int(f, "SELECT count(*) FROM job_log WHERE job_id = 3 AND"
				   " stage = 'test' AND get_byte(data, length(data) - 1) <> 10"), 1);
	src = open_store(&lite);
	f->st = open_store(f);
	for (int64_t id = 1; id <= 3; id++) {
		cJSON *a = job_get(src, id), *b = job_get(f->st, id);
		char *ta, *tb;
		/* a running job's seconds move on: compare the finished ones whole */
		cJSON_DeleteItemFromObject(a, "seconds");
		cJSON_DeleteItemFromObject(b, "seconds");
		ta = cJSON_PrintUnformatted(a);
		tb = cJSON_PrintUnformatted(b);
		assert_string_equal(ta, tb);
		cJSON_free(ta);
		cJSON_free(tb);
		cJSON_Delete(a);
		cJSON_Delete(b);
	}
	assert_int_equal(sp_store_ingest(f->st, &d, &j, &res, &err), 0);
	assert_true(res.duplicate);  /* the delivery came along */
	assert_int_equal(res.job_id, 1);
	assert_int_equal(sp_store_job_changes(f->st, -1, NULL, 0, &(size_t){ 0 }, &last, &err), 0);
	assert_int_equal(create_simple(f->st, NULL), 4);
	assert_job_state(f->st, 4, "queued");
	assert_true(query_int(f, "SELECT rev FROM jobs WHERE id = 4") > last);
	{
		size_t total;
		char *all = log_all(f->st, 3, "test", 1000, &total);

		assert_int_equal(total, 5000 * 47 + 10);
		assert_memory_equal(all, "line 0000 of", 12);
		assert_string_equal(all + total - 57, "line 4999 of the test stage's log, long enough\n"
				    "no newline");
		free(all);
	}
	assert_int_equal(sp_store_copy(lite.path, f->url, &stats, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "empty"));
	sp_store_close(src);
	free(lite.path);
}

/* SQLite keeps no logs (they are files): the calls say so. */
static void test_sqlite_keeps_no_logs(void **state)
{
	struct fx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	int64_t size;
	size_t n;
	char buf[4];

	assert_false(sp_store_has_logs(f->st));
	assert_int_equal(sp_store_log_append(f->st, 1, "test", "x\n", 2, NULL, &err), SP_ERROR);
	assert_int_equal(sp_store_log_size(f->st, 1, "test", &size, &err), SP_ERROR);
	assert_int_equal(sp_store_log_read(f->st, 1, "test", 0, buf, 4, &n, &err), SP_ERROR);
}

/* A stage's whole log, read back in windows of w bytes. */
static char *log_all(struct sp_store *st, int64_t job, const char *stage, size_t w,
		     size_t *total)
{
	struct sp_error err = SP_ERROR_INIT;
	char *out = NULL;
	size_t len = 0, n;

	for (;;) {
		out = sp_xrealloc(out, len + w + 1);
		if (sp_store_log_read(st, job, stage, (int64_t)len, out + len, w, &n, &err))
			fail_msg("log_read: %s", err.msg);
		if (!n)
			break;
		len += n;
	}
	out[len] = '\0';
	*total = len;
	return out;
}

/* Logs in the store: chunks at their byte offsets, reads in windows that
 * cross chunks, the size, another server's append going on at the end
 * (a retried attempt), a stage without a log. */
static void test_pg_log_chunks(void **state)
{
	struct fx *f = *state;
	struct sp_store *b = open_store(f);
	struct sp_error err = SP_ERROR_INIT;
	int64_t job = create_simple(f->st, NULL), off = -1, size = -1;
	char buf[64];
	size_t n, total;
	char *all;

	assert_true(sp_store_has_logs(f->st));
	assert_int_equal(sp_store_log_size(f->st, job, "test", &size, &err), SP_ENOTFOUND);
	assert_int_equal(sp_store_log_read(f->st, job, "test", 0, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sp_store_log_append(f->st, job, "test", "one\ntwo\n", 8, &off, &err), 0);
	assert_int_equal(off, 0);
	assert_int_equal(sp_store_log_append(f->st, job, "test", "three\n", 6, &off, &err), 0);
	assert_int_equal(off, 8);
	assert_int_equal(sp_store_log_append(f->st, job, "_job", "note\n", 5, &off, &err), 0);
	assert_int_equal(off, 0);  /* each stage its own offsets */
	/* the second server (a retried attempt there) goes on at the end */
	assert_int_equal(sp_store_log_append(b, job, "test", "four\n", 5, &off, &err), 0);
	assert_int_equal(off, 14);
	assert_int_equal(sp_store_log_size(b, job, "test", &size, &err), 0);
	assert_int_equal(size, 19);
	assert_int_equal(sp_store_log_read(f->st, job, "test", 2, buf, 9, &n, &err), 0);
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "e\ntwo\nthr", 9);
	assert_int_equal(sp_store_log_read(f->st, job, "test", 19, buf, 9, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sp_store_log_read(f->st, job, "test", 100, buf, 9, &n, &err), 0);
	assert_int_equal(n, 0);
	for (size_t w = 1; w <= 20; w += 3) {
		all = log_all(b, job, "test", w, &total);
		assert_int_equal(total, 19);
		assert_string_equal(all, "one\ntwo\nthree\nfour\n");
		free(all);
	}
	/* bytes as they are: NUL, high bytes */
	assert_int_equal(sp_store_log_append(f->st, job, "bin", "a\0\xff\n", 4, NULL, &err), 0);
	assert_int_equal(sp_store_log_read(b, job, "bin", 0, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "a\0\xff\n", 4);
	assert_int_equal(query_int(f, "SELECT count(*) FROM job_log"), 5);
	/* refused: nothing, no stage */
	assert_int_equal(sp_store_log_append(f->st, job, "test", "", 0, NULL, &err), SP_ERROR);
	assert_int_not_equal(sp_store_log_append(f->st, 999999, "test", "x\n", 2, NULL, &err), 0);
	sp_store_close(b);
}

/* Many appends from two servers at once to one stage: every one that is
 * stored sits at its own offset, with no gap and no overlap. */
struct appender {
	struct sp_store *st;
	int64_t job;
	int ok;
};

static void *append_many(void *arg)
{
	struct appender *a = arg;
	struct sp_error err = SP_ERROR_INIT;

	for (int i = 0; i < 50; i++)
		if (sp_store_log_append(a->st, a->job, "test", "0123456789\n", 11, NULL, &err) == 0)
			a->ok++;
	return NULL;
}

static void test_pg_log_two_writers(void **state)
{
	struct fx *f = *state;
	struct appender a = { .st = f->st }, b = { .st = open_store(f) };
	struct sp_error err = SP_ERROR_INIT;
	pthread_t ta, tb;
	int64_t size;

	a.job = b.job = create_simple(f->st, NULL);
	pthread_create(&ta, NULL, append_many, &a);
	pthread_create(&tb, NULL, append_many, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_true(a.ok + b.ok >= 50);
	assert_int_equal(sp_store_log_size(f->st, a.job, "test", &size, &err), 0);
	assert_int_equal(size, 11 * (a.ok + b.ok));
	assert_int_equal(query_int(f, "SELECT count(*) FROM job_log l WHERE off <> coalesce("
				   "(SELECT p.off + length(p.data) FROM job_log p WHERE p.off < l.off"
				   " ORDER BY p.off DESC LIMIT 1), 0)"), 0);
	sp_store_close(b.st);
}

static atomic_int heard;

static void on_queued(void *arg)
{
	(void)arg;
	atomic_fetch_add(&heard, 1);
}

/* Waits up to 3 s for the listener to have heard more than n. */
static bool heard_after(int n)
{
	for (int i = 0; i < 300; i++) {
		if (atomic_load(&heard) > n)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* LISTEN/NOTIFY: a job queued (new, or taken back) through one server's
 * store wakes the listener of another's; after listen(NULL) nothing. */
static void test_pg_notify(void **state)
{
	struct fx *f = *state;
	struct sp_store *b = open_store(f);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	int n, requeued = 0, failed = 0;

	atomic_store(&heard, 0);
	assert_int_equal(sp_store_listen(b, on_queued, NULL, &err), 0);
	heard_after(0);  /* the first connection says "look" once */
	sleep_ms(100);
	n = atomic_load(&heard);
	create_simple(f->st, NULL);
	assert_true(heard_after(n));
	l = lease(f->st, NULL, 1);
	sleep_ms(200);
	n = atomic_load(&heard);
	expire_all(f->st, 3, &requeued, &failed);
	assert_int_equal(requeued, 1);
	assert_true(heard_after(n));
	sp_lease_release(&l);
	assert_int_equal(sp_store_listen(b, NULL, NULL, &err), 0);
	n = atomic_load(&heard);
	create_simple(f->st, NULL);
	sleep_ms(300);
	assert_int_equal(atomic_load(&heard), n);
	/* a listener still running when the store closes is stopped by close */
	assert_int_equal(sp_store_listen(b, on_queued, NULL, &err), 0);
	sp_store_close(b);
	/* SQLite: nothing to hear, nothing done */
}


/* ---- PostgreSQL: a batch's ingests in one pipeline ---------------- */

struct piped {
	struct sp_store *st;
	const char *id;
	const char *title;  /* NULL: a plain one */
	int rc;
	struct sp_ingest_result res;
	char msg[SP_ERROR_MSG_MAX];
};

static void *piped_thread(void *arg)
{
	struct piped *w = arg;
	struct sp_delivery d = { .repo = "app", .id = w->id, .forge = "github",
				 .event = "push", .outcome = "job" };
	struct sp_job_spec j = push_spec("main", SHA_A);
	struct sp_error err = SP_ERROR_INIT;

	j.title = w->title;
	j.statuses = true;
	w->rc = sp_store_ingest(w->st, &d, &j, &w->res, &err);
	memcpy(w->msg, err.msg, sizeof(w->msg));
	return NULL;
}

/* Runs the n ingests w at once, held back (the tables locked) until every
 * store's writer has them all, so that each store runs them in as few
 * batches as it can (the first one it took alone, while the lock held). */
static void run_held(const struct fx *f, struct piped *w, int n)
{
	struct sp_store *stores[4];
	uint64_t want[4];
	int nstores = 0;
	pthread_t th[16];
	struct wlock lock;

	assert_true(n <= 16);
	for (int i = 0; i < n; i++) {
		int k = 0;
		while (k < nstores && stores[k] != w[i].st)
			k++;
		if (k == nstores) {
			struct sp_store_sqlite_stats s;
			assert_true(nstores < 4);
			store_stats(w[i].st, &s);
			stores[nstores] = w[i].st;
			want[nstores++] = s.requests;
		}
		want[k]++;
	}
	lock = hold_write_lock(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, piped_thread, &w[i]), 0);
	for (int k = 0; k < nstores; k++)
		wait_requests(stores[k], want[k]);
	release_write_lock(lock);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

/*
 * One ingest of a pipelined batch fails in the database (a title that is
 * not UTF-8): the pipeline's transaction is lost with it, so the batch runs
 * again with a savepoint per request, where it fails alone.  Its
 * batch-mates are stored, a delivery twice in one batch makes one job,
 * and the store is not "failing" (the request's own fault).
 */
static void test_pg_pipeline_failure(void **state)
{
	struct fx *f = *state;
	static const char *const ids[8] = { "p-0", "p-1", "p-2", "p-3", "p-4", "p-5", "p-5",
					    "p-7" };
	struct piped w[8];
	struct sp_store_sqlite_stats before, after;
	struct sp_error err = SP_ERROR_INIT;
	uint64_t retries0, retries1;
	int64_t job5 = 0;
	int dups = 0;

	sp_store_pg_stats(f->st, &before, &retries0);
	for (int i = 0; i < 8; i++)
		w[i] = (struct piped){ .st = f->st, .id = ids[i],
				       .title = i == 3 ? "not UTF-8: \xff\xfe" : NULL };
	run_held(f, w, 8);
	sp_store_pg_stats(f->st, &after, &retries1);
	for (int i = 0; i < 8; i++) {
		if (i == 3) {
			assert_int_equal(w[i].rc, SP_EENGINE);
			if (!strstr(w[i].msg, "UTF8"))
				fail_msg("%s", w[i].msg);
			continue;
		}
		if (w[i].rc)
			fail_msg("ingest %d: %s", i, w[i].msg);
		assert_true(w[i].res.job_id > 0);
		if (!strcmp(w[i].id, "p-5")) {
			dups += w[i].res.duplicate;
			assert_true(!job5 || job5 == w[i].res.job_id);
			job5 = w[i].res.job_id;
		} else {
			assert_false(w[i].res.duplicate);
		}
	}
	assert_int_equal(dups, 1);
	assert_true(retries1 > retries0);  /* ran again, the safe way */
	assert_true(after.commits - before.commits <= 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 6);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 6);
	assert_int_equal(query_int(f, "SELECT count(*) FROM outbox"), 6);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries WHERE id = 'p-3'"), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries d JOIN jobs j"
				   " ON j.id = d.job_id"), 6);
	assert_int_equal(sp_store_last_write(f->st, NULL, &err), 0);
	/* alone in its batch, the same: it fails, the store goes on */
	w[0] = (struct piped){ .st = f->st, .id = "p-3", .title = "\xc3" };
	piped_thread(&w[0]);
	assert_int_equal(w[0].rc, SP_EENGINE);
	w[0] = (struct piped){ .st = f->st, .id = "p-3" };
	piped_thread(&w[0]);
	assert_int_equal(w[0].rc, 0);
	assert_false(w[0].res.duplicate);
	assert_int_equal(sp_store_last_write(f->st, NULL, &err), 0);
}

/*
 * Two servers get the same deliveries at once, in opposite orders, each
 * in one pipelined batch.  They take the deliveries' keys in one order, so
 * one batch waits for the other's COMMIT and then finds its rows: no
 * deadlock, no key failing, no batch run again.  Every delivery makes one
 * job, and both servers answer with it.
 */
static void test_pg_pipeline_two_servers(void **state)
{
	struct fx *f = *state;
	struct sp_store *b = open_store(f);
	static const char *const ids[6] = { "r-0", "r-1", "r-2", "r-3", "r-4", "r-5" };
	struct sp_store_sqlite_stats sa, sb;
	uint64_t ra0, rb0, ra1, rb1;
	struct piped w[12];

	sp_store_pg_stats(f->st, &sa, &ra0);
	sp_store_pg_stats(b, &sb, &rb0);
	for (int i = 0; i < 6; i++) {
		w[i] = (struct piped){ .st = f->st, .id = ids[i] };
		w[6 + i] = (struct piped){ .st = b, .id = ids[5 - i] };
	}
	run_held(f, w, 12);
	sp_store_pg_stats(f->st, &sa, &ra1);
	sp_store_pg_stats(b, &sb, &rb1);
	assert_int_equal(ra1 - ra0, 0);
	assert_int_equal(rb1 - rb0, 0);
	for (int i = 0; i < 6; i++) {
		struct piped *x = &w[i], *y = &w[11 - i];
		if (x->rc || y->rc)
			fail_msg("%s: %s / %s", ids[i], x->msg, y->msg);
		assert_string_equal(x->id, y->id);
		assert_true(x->res.job_id > 0);
		assert_int_equal(x->res.job_id, y->res.job_id);
		assert_int_equal(x->res.duplicate + y->res.duplicate, 1);
	}
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 6);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 6);
	sp_store_close(b);
}

/*
 * The writer's connection is cut while its pipelined batch waits: that
 * batch fails (SP_EENGINE, nothing of it kept), the store says it is
 * failing, and the next write connects again and commits.
 */
static void test_pg_pipeline_connection_lost(void **state)
{
	struct fx *f = *state;
	static const char *const ids[4] = { "c-0", "c-1", "c-2", "c-3" };
	struct piped w[4];
	pthread_t th[4];
	struct sp_store_sqlite_stats before;
	struct sp_error err = SP_ERROR_INIT;
	struct wlock lock;
	PGconn *db = pg_connect(f->url);
	int failed = 0, killed = 0;

	store_stats(f->st, &before);
	lock = hold_write_lock(f);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct piped){ .st = f->st, .id = ids[i] };
		assert_int_equal(pthread_create(&th[i], NULL, piped_thread, &w[i]), 0);
	}
	wait_requests(f->st, before.requests + 4);
	for (int i = 0; i < 500 && !killed; i++) {
		PGresult *r = PQexec(db, "SELECT count(pg_terminate_backend(pid))"
				     " FROM pg_stat_activity WHERE application_name = 'stagepipe'"
				     " AND wait_event_type = 'Lock'");
		assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
		killed = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (!killed)
			sleep_ms(10);
	}
	assert_int_equal(killed, 1);
	release_write_lock(lock);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (w[i].rc) {
			assert_int_equal(w[i].rc, SP_EENGINE);
			assert_non_null(strstr(w[i].msg, "transaction failed"));
			failed++;
		}
	}
	assert_true(failed >= 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM deliveries"), 4 - failed);
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 4 - failed);
	/* what failed is taken as new when the forge sends it again */
	for (int i = 0; i < 4; i++) {
		struct piped again = { .st = f->st, .id = ids[i] };
		piped_thread(&again);
		assert_int_equal(again.rc, 0);
		assert_int_equal(again.res.duplicate, w[i].rc == 0);
	}
	assert_int_equal(query_int(f, "SELECT count(*) FROM jobs"), 4);
	assert_int_equal(sp_store_last_write(f->st, NULL, &err), 0);
	PQfinish(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_pg_mask_url),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_open_migrates_and_reopens),
		T(test_newer_schema_refused),
		T(test_open_errors),
		T(test_ingest_and_duplicate),
		T(test_ingest_without_job),
		T(test_concurrent_ingest),
		T(test_group_commit),
		T(test_close_with_requests_in_flight),
		T(test_lease_order_and_labels),
		T(test_fencing),
		T(test_promote_permit),
		T(test_promote_after_cancel),
		T(test_promote_fencing_hammer),
		T(test_finish_closes_stages),
		T(test_expire_requeue_then_error),
		T(test_requeue),
		T(test_relabel),
		T(test_cancel),
		T(test_supersede),
		T(test_outbox),
		T(test_outbox_descriptions),
		T(test_job_json),
		T(test_job_list),
		T(test_counts_and_ping),
		T(test_job_test_totals),
		T(test_branches),
		T(test_job_changes),
		T(test_migration_2_backfills),
		T(test_write_fails_then_recovers),
		T(test_sqlite_keeps_no_logs),
#undef T
	};
	const struct CMUnitTest pg_tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_ingest_and_duplicate),
		T(test_ingest_without_job),
		T(test_concurrent_ingest),
		T(test_group_commit),
		T(test_close_with_requests_in_flight),
		T(test_lease_order_and_labels),
		T(test_fencing),
		T(test_promote_permit),
		T(test_promote_after_cancel),
		T(test_promote_fencing_hammer),
		T(test_finish_closes_stages),
		T(test_expire_requeue_then_error),
		T(test_requeue),
		T(test_relabel),
		T(test_cancel),
		T(test_supersede),
		T(test_outbox),
		T(test_outbox_descriptions),
		T(test_job_json),
		T(test_job_list),
		T(test_counts_and_ping),
		T(test_job_test_totals),
		T(test_branches),
		T(test_job_changes),
		T(test_pg_open_migrates_concurrently),
		T(test_pg_newer_schema_refused),
		T(test_pg_open_errors),
		T(test_pg_two_servers),
		T(test_pg_notify),
		T(test_pg_copy_from_sqlite),
		T(test_pg_pipeline_failure),
		T(test_pg_pipeline_two_servers),
		T(test_pg_pipeline_connection_lost),
		T(test_pg_log_chunks),
		T(test_pg_log_two_writers),
#undef T
	};
	int failed = cmocka_run_group_tests_name("store: sqlite", tests, NULL, NULL);

	pg_base = getenv("SP_TEST_PG_URL");
	if (!pg_base || !*pg_base) {
		printf("[  SKIPPED ] store: postgres: SP_TEST_PG_URL is not set (make test starts"
		       " a server with tests/tools/pg_cluster.sh)\n");
		return failed;
	}
	return failed + cmocka_run_group_tests_name("store: postgres", pg_tests, NULL, NULL);
}
