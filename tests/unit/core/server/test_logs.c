/*
 * test_logs.c — job log files (core/server/logs.c): which stage names make
 * a path, appending lines per stage, modes, and appending again after a
 * reopen (a retried job); a disk that is full (/dev/full, RLIMIT_FSIZE):
 * the line is lost whole (never half a line in the file), counted, and
 * noted before the next line written once there is room again.
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
#include <unistd.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_write_and_reopen),
		cmocka_unit_test(test_open_fails),
		cmocka_unit_test(test_disk_full),
		cmocka_unit_test(test_disk_fills_mid_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
