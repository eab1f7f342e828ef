/*
 * test_logs.c — job log files (core/server/logs.c): which stage names make
 * a path, appending lines per stage, modes, and appending again after a
 * reopen (a retried job); a disk that is full (/dev/full, RLIMIT_FSIZE):
 * the line is lost whole (never half a line in the file), counted, and
 * noted before the next line written once there is room again.
 *
 * Logs in the store (PostgreSQL, when SP_TEST_PG_URL names a server: make
 * test starts one): lines appended in chunks on time (250 ms) and at
 * 64 KiB, whole lines in every chunk, a second attempt (another server)
 * going on at the end, a chunk the store refuses lost, counted and noted;
 * sp_logread over files and over the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/server.h"
#include "tests/unit/support/testutil.h"

static void test_path(void **state)
{
	char buf[256], small[16];
	char longname[102];

	(void)state;
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 42, "test"), 0);
	assert_string_equal(buf, "/d/logs/42/test.log");
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 7, "_job"), 0);
	assert_string_equal(buf, "/d/logs/7/_job.log");
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "build-x_1.2[linux]"), 0);
	assert_string_equal(buf, "/d/logs/1/build-x_1.2[linux].log");

	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "test[3.11,postgres+x]"), 0);
	assert_string_equal(buf, "/d/logs/1/test[3.11,postgres+x].log");
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, ""), -1);
	assert_string_equal(buf, "");
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, NULL), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, ".hidden"), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, ".."), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "a/b"), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "../x"), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "a b"), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "a\nb"), -1);
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, "caf\xc3\xa9"), -1);

	memset(longname, 'a', 100);
	longname[100] = '\0';
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, longname), 0);
	longname[100] = 'a';
	longname[101] = '\0';
	assert_int_equal(sp_logs_path(buf, sizeof(buf), "/d", 1, longname), -1);

	/* a buffer too small is refused, never cut */
	assert_int_equal(sp_logs_path(small, sizeof(small), "/data", 1, "test"), -1);
	assert_string_equal(small, "");
}

static void test_write_and_reopen(void **state)
{
	char *dir = sp_test_tempdir("sp-logs-"), path[512], *text;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(sp_joblog_open(&l, dir, 9, &err), 0);
	assert_non_null(l);
	assert_int_equal(sp_joblog_write(l, "test", "one", 3, &err), 0);
	assert_int_equal(sp_joblog_write(l, "build", "b1", 2, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "two and more", 3, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "", 0, &err), 0);
	assert_int_equal(sp_joblog_write(l, "_job", "cloning", 7, &err), 0);
	assert_int_equal(sp_joblog_write(l, "../evil", "x", 1, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "cannot name a log file"));

	/* readable at once, before close */
	assert_int_equal(sp_logs_path(path, sizeof(path), dir, 9, "test"), 0);
	text = sp_test_read_file(path, NULL);
	assert_string_equal(text, "one\ntwo\n\n");
	free(text);
	sp_joblog_close(l);

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	snprintf(path, sizeof(path), "%s/logs/9", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);

	/* a second attempt appends */
	assert_int_equal(sp_joblog_open(&l, dir, 9, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "three", 5, &err), 0);
	sp_joblog_close(l);
	assert_int_equal(sp_logs_path(path, sizeof(path), dir, 9, "test"), 0);
	text = sp_test_read_file(path, NULL);
	assert_string_equal(text, "one\ntwo\n\nthree\n");
	free(text);
	assert_int_equal(sp_logs_path(path, sizeof(path), dir, 9, "build"), 0);
	text = sp_test_read_file(path, NULL);
	assert_string_equal(text, "b1\n");
	free(text);
	assert_int_equal(sp_logs_path(path, sizeof(path), dir, 9, "_job"), 0);
	text = sp_test_read_file(path, NULL);
	assert_string_equal(text, "cloning\n");
	free(text);

	sp_joblog_close(NULL);
	sp_test_rmtree(dir);
	free(dir);
}

static void test_open_fails(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = (struct sp_joblog *)1;

	(void)state;
	assert_int_equal(sp_joblog_open(&l, "/nonexistent/dir/here", 1, &err), SP_ERROR);
	assert_null(l);
	assert_non_null(strstr(err.msg, "cannot create the log folder"));
}

/* A stage log that is /dev/full: every write fails with ENOSPC. */
static void test_disk_full(void **state)
{
	char *dir = sp_test_tempdir("sp-logs-"), path[512];
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;

	(void)state;
	assert_int_equal(sp_joblog_open(&l, dir, 3, &err), 0);
	assert_int_equal(sp_logs_path(path, sizeof(path), dir, 3, "test"), 0);
	assert_int_equal(symlink("/dev/full", path), 0);
	assert_int_equal(sp_joblog_write(l, "test", "one", 3, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "No space left on device"));
	assert_non_null(strstr(err.msg, "the line is lost"));
	assert_int_equal(sp_joblog_write(l, "test", "two", 3, &err), SP_ERROR);
	assert_int_equal(sp_joblog_lost(l), 2);
	/* other files go on */
	assert_int_equal(sp_joblog_write(l, "build", "b1", 2, &err), 0);
	assert_int_equal(sp_joblog_lost(l), 2);
	sp_joblog_close(l);  /* logs job.log_lost; fsync/close of /dev/full are fine */
	assert_int_equal(sp_joblog_lost(NULL), 0);
	sp_test_rmtree(dir);
	free(dir);
}

/*
 * RLIMIT_FSIZE stands in for a disk filling up mid-line: the write is cut
 * short at the limit, then fails (EFBIG).  The file keeps only whole
 * lines; once the limit is lifted, a note and the next line follow.
 */
static void test_disk_fills_mid_line(void **state)
{
	char *dir = sp_test_tempdir("sp-logs-"), path[512], *text;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;
	struct rlimit old, lim;
	void (*old_xfsz)(int);

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(sp_joblog_open(&l, dir, 4, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "first", 5, &err), 0);

	lim = old;
	lim.rlim_cur = 10;  /* "first\n" is 6 bytes: 4 more fit */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(sp_joblog_write(l, "test", "second line", 11, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "File too large"));
	assert_int_equal(sp_joblog_write(l, "test", "third line", 10, &err), SP_ERROR);
	assert_int_equal(sp_joblog_lost(l), 2);
	assert_int_equal(sp_logs_path(path, sizeof(path), dir, 4, "test"), 0);
	text = sp_test_read_file(path, NULL);
	assert_string_equal(text, "first\n");  /* no half line */
	free(text);

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(sp_joblog_write(l, "test", "fourth", 6, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "fifth", 5, &err), 0);
	text = sp_test_read_file(path, NULL);
	assert_string_equal(text, "first\n[stagepipe: 2 log lines lost here: File too large]\n"
			    "fourth\nfifth\n");
	free(text);
	assert_int_equal(sp_joblog_lost(l), 2);  /* a total: it stays */
	sp_joblog_close(l);
	signal(SIGXFSZ, old_xfsz);
	sp_test_rmtree(dir);
	free(dir);
}

/* sp_logread over the files: none yet, then what was written, in pieces. */
static void test_read_files(void **state)
{
	char *dir = sp_test_tempdir("sp-logs-"), buf[8];
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;
	struct sp_logread *r = NULL;
	uint64_t size;
	size_t n;

	(void)state;
	assert_int_equal(sp_logread_open(&r, NULL, dir, 5, "../x", &err), SP_ECONFIG);
	assert_int_equal(sp_logread_open(&r, NULL, dir, 5, "test", &err), 0);
	assert_int_equal(sp_logread_size(r, &size, &err), SP_ENOTFOUND);
	assert_int_equal(sp_logread_read(r, 0, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, 0);
	/* a store without logs (NULL here, SQLite in the server) is files */
	assert_int_equal(sp_joblog_open_store(&l, NULL, dir, 5, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "hello", 5, &err), 0);
	assert_int_equal(sp_joblog_flush(l, &err), 0);
	assert_int_equal(sp_logread_size(r, &size, &err), 0);
	assert_int_equal(size, 6);
	assert_int_equal(sp_logread_read(r, 2, buf, 3, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "llo", 3);
	assert_int_equal(sp_logread_read(r, 6, buf, 3, &n, &err), 0);
	assert_int_equal(n, 0);
	sp_joblog_close(l);
	sp_logread_close(r);
	sp_logread_close(NULL);
	sp_test_rmtree(dir);
	free(dir);
}

/* ---- in the store (PostgreSQL) ---- */

static const char *pg_base;
static int pg_schemas;

struct pgfx {
	char *schema, *url, *dir;
	struct sp_store *st;
};

static PGconn *pg_connect(const char *url)
{
	PGconn *db = PQconnectdb(url);

	if (PQstatus(db) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(db));
	return db;
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static void pg_exec(const char *url, const char *sql)
{
	PGconn *db = pg_connect(url);
	PGresult *r;

	PQsetNoticeProcessor(db, quiet, NULL);
	r = PQexec(db, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(db));
	PQclear(r);
	PQfinish(db);
}

static int64_t pg_int(const struct pgfx *f, const char *sql)
{
	PGconn *db = pg_connect(f->url);
	PGresult *r = PQexec(db, sql);
	int64_t v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(db));
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(db);
	return v;
}

static struct sp_store *pg_open(const struct pgfx *f)
{
	struct sp_store_opts o = { .url = f->url };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;

	if (sp_store_open(&st, &o, &err))
		fail_msg("open: %s", err.msg);
	return st;
}

static int pg_setup(void **state)
{
	struct pgfx *f;
	char *sql;

	f = sp_xcalloc(1, sizeof(*f));
	f->schema = sp_xasprintf("logs_%ld_%d", (long)getpid(), ++pg_schemas);
	sql = sp_xasprintf("CREATE SCHEMA %s", f->schema);
	pg_exec(pg_base, sql);
	free(sql);
	f->url = sp_xasprintf("%s%soptions=-csearch_path%%3D%s", pg_base,
			      strchr(pg_base, '?') ? "&" : "?", f->schema);
	f->dir = sp_test_tempdir("sp-logs-");
	f->st = pg_open(f);
	*state = f;
	return 0;
}

static int pg_teardown(void **state)
{
	struct pgfx *f = *state;
	char *sql;

	if (!f)
		return 0;
	sp_store_close(f->st);
	sql = sp_xasprintf("DROP SCHEMA %s CASCADE", f->schema);
	pg_exec(pg_base, sql);
	free(sql);
	sp_test_rmtree(f->dir);
	free(f->dir);
	free(f->url);
	free(f->schema);
	free(f);
	return 0;
}

static int64_t new_job(struct sp_store *st)
{
	struct sp_job_spec j = { .repo = "app", .event = "manual", .ref = "refs/heads/main",
				 .branch = "main",
				 .sha = "0123456789abcdef0123456789abcdef01234567" };
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;

	if (sp_store_job_create(st, &j, &res, &err))
		fail_msg("job_create: %s", err.msg);
	return res.job_id;
}

/* The stage's log as the store has it (sp_logread, 1000 bytes a read). */
static char *stored(struct sp_store *st, int64_t job, const char *stage)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_logread *r = NULL;
	uint64_t size = 0;
	size_t len = 0, n;
	char *out;

	assert_int_equal(sp_logread_open(&r, st, "/nowhere", job, stage, &err), 0);
	if (sp_logread_size(r, &size, &err) == SP_ENOTFOUND) {
		sp_logread_close(r);
		return NULL;
	}
	out = sp_xmalloc(size + 1);
	while (len < size) {
		assert_int_equal(sp_logread_read(r, len, out + len, size - len < 1000 ? size - len
						 : 1000, &n, &err), 0);
		assert_true(n > 0);
		len += n;
	}
	out[len] = '\0';
	sp_logread_close(r);
	return out;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Lines reach the store on their own within 250 ms (no flush, no more
 * lines), nothing goes to the data folder; a second attempt on another
 * server goes on at the end. */
static void test_store_on_time(void **state)
{
	struct pgfx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;
	struct sp_store *b;
	int64_t job = new_job(f->st);
	char *text = NULL, path[512];

	assert_int_equal(sp_joblog_open_store(&l, f->st, f->dir, job, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "one", 3, &err), 0);
	assert_int_equal(sp_joblog_write(l, "_job", "cloning", 7, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "two", 3, &err), 0);
	assert_int_equal(sp_joblog_write(l, "../evil", "x", 1, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "cannot name a log"));
	for (int i = 0; i < 300 && !text; i++) {
		sleep_ms(10);
		text = stored(f->st, job, "test");
	}
	assert_non_null(text);
	assert_string_equal(text, "one\ntwo\n");
	free(text);
	text = stored(f->st, job, "_job");
	assert_string_equal(text, "cloning\n");
	free(text);
	sp_joblog_close(l);
	snprintf(path, sizeof(path), "%s/logs", f->dir);
	assert_int_not_equal(access(path, F_OK), 0);  /* no file at all */

	b = pg_open(f);
	assert_int_equal(sp_joblog_open_store(&l, b, f->dir, job, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "three", 5, &err), 0);
	sp_joblog_close(l);  /* appends what is buffered */
	text = stored(f->st, job, "test");
	assert_string_equal(text, "one\ntwo\nthree\n");
	free(text);
	assert_int_equal(pg_int(f, "SELECT count(*) FROM job_log"), 3);
	assert_int_equal(sp_joblog_lost(l = NULL), 0);
	sp_store_close(b);
}

/* 64 KiB make a chunk at once; every chunk is whole lines; a line bigger
 * than a chunk is a chunk of its own; memory stays at a chunk. */
static void test_store_chunks(void **state)
{
	struct pgfx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;
	int64_t job = new_job(f->st);
	char line[101], *big, *text, *expect;
	size_t elen = 0;

	memset(line, 'x', 100);
	line[100] = '\0';
	big = sp_xmalloc(200001);
	memset(big, 'y', 200000);
	big[200000] = '\0';
	expect = sp_xmalloc(2000 * 101 + 200001 + 1);
	assert_int_equal(sp_joblog_open_store(&l, f->st, f->dir, job, &err), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(line, sizeof(line), "%04d", i);
		line[4] = 'x';
		assert_int_equal(sp_joblog_write(l, "test", line, 100, &err), 0);
		memcpy(expect + elen, line, 100);
		expect[elen + 100] = '\n';
		elen += 101;
		if (i == 1000) {
			assert_int_equal(sp_joblog_write(l, "test", big, 200000, &err), 0);
			memcpy(expect + elen, big, 200000);
			expect[elen + 200000] = '\n';
			elen += 200001;
		}
	}
	expect[elen] = '\0';
	/* what was over 64 KiB is stored already, without a flush */
	assert_true(pg_int(f, "SELECT count(*) FROM job_log") >= 3);
	assert_int_equal(sp_joblog_flush(l, &err), 0);
	assert_int_equal(pg_int(f, "SELECT count(*) FROM job_log WHERE length(data) > 65536"), 1);
	assert_int_equal(pg_int(f, "SELECT count(*) FROM job_log"
				" WHERE get_byte(data, length(data) - 1) <> 10"), 0);
	assert_int_equal(pg_int(f, "SELECT sum(length(data)) FROM job_log"), (int64_t)elen);
	text = stored(f->st, job, "test");
	assert_string_equal(text, expect);
	free(text);
	sp_joblog_close(l);
	free(big);
	free(expect);
}

/* A chunk the store refuses (its job is not there yet: the foreign key)
 * is lost, counted, and noted before the next line stored. */
static void test_store_lost(void **state)
{
	struct pgfx *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_joblog *l = NULL;
	int64_t job = new_job(f->st) + 1;
	char *text;

	assert_int_equal(sp_joblog_open_store(&l, f->st, f->dir, job, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "gone 1", 6, &err), 0);
	assert_int_equal(sp_joblog_write(l, "test", "gone 2", 6, &err), 0);
	assert_int_equal(sp_joblog_flush(l, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "2 lines lost"));
	assert_int_equal(sp_joblog_lost(l), 2);
	assert_null(stored(f->st, job, "test"));
	assert_int_equal(new_job(f->st), job);
	assert_int_equal(sp_joblog_write(l, "test", "back", 4, &err), 0);
	assert_int_equal(sp_joblog_flush(l, &err), 0);
	assert_int_equal(sp_joblog_lost(l), 2);  /* a total: it stays */
	text = stored(f->st, job, "test");
	assert_non_null(text);
	assert_true(!strncmp(text, "[stagepipe: 2 log lines lost here: ", 35));
	assert_non_null(strstr(text, "]\nback\n"));
	assert_int_equal(strlen(strstr(text, "]\nback\n")), 7);
	free(text);
	sp_joblog_close(l);  /* logs job.log_lost */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_write_and_reopen),
		cmocka_unit_test(test_open_fails),
		cmocka_unit_test(test_disk_full),
		cmocka_unit_test(test_disk_fills_mid_line),
		cmocka_unit_test(test_read_files),
	};
	const struct CMUnitTest pg_tests[] = {
		cmocka_unit_test_setup_teardown(test_store_on_time, pg_setup, pg_teardown),
		cmocka_unit_test_setup_teardown(test_store_chunks, pg_setup, pg_teardown),
		cmocka_unit_test_setup_teardown(test_store_lost, pg_setup, pg_teardown),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	pg_base = getenv("SP_TEST_PG_URL");
	if (!pg_base || !*pg_base) {
		printf("[  SKIPPED ] logs: postgres: SP_TEST_PG_URL is not set\n");
		return failed;
	}
	return failed + cmocka_run_group_tests_name("logs: postgres", pg_tests, NULL, NULL);
}
