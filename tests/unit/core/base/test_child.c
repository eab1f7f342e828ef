/*
 * test_child.c — starting child processes (core/base/child.c): capture, caps,
 * stdin, exit statuses, signals, timeouts, PATH lookup, descriptors and
 * signal state handed to the child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/child.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "tests/unit/support/testutil.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;  /* the DIR's own descriptor */
}

/* Runs argv with defaults; returns sp_child_run's code. */
static int run(const char *const *argv, struct sp_child_result *res, struct sp_error *err)
{
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;

	o.argv = argv;
	return sp_child_run(&o, res, err);
}

static void test_capture_and_exit_code(void **state)
{
	const char *argv[] = { "/bin/sh", "-c", "printf 'to out'; printf 'to err' >&2; exit 3", NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	char how[64];

	(void)state;
	assert_int_equal(run(argv, &res, &err), 0);
	assert_int_equal(res.exit_code, 3);
	assert_int_equal(res.term_signal, 0);
	assert_string_equal(res.out.data, "to out");
	assert_string_equal(res.err.data, "to err");
	assert_false(res.timed_out);
	assert_string_equal(sp_child_describe(&res, how, sizeof(how)), "exited with status 3");
	sp_child_result_release(&res);
}

static void test_path_lookup(void **state)
{
	const char *argv[] = { "sh", "-c", "echo found", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	char *where = NULL;

	(void)state;
	o.argv = argv;
	o.path = "/nonexistent-dir::/usr/bin";
	assert_int_equal(sp_child_run(&o, &res, &err), 0);
	assert_string_equal(res.out.data, "found\n");
	sp_child_result_release(&res);

	assert_int_equal(sp_child_which(&where, "sh", "/nonexistent-dir:/usr/bin:/bin", &err), 0);
	assert_string_equal(where, "/usr/bin/sh");
	free(where);

	o.path = "/nonexistent-dir";
	assert_int_equal(sp_child_run(&o, &res, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "sh not found in PATH (/nonexistent-dir)"));
	assert_int_equal(res.exit_code, -1);
	sp_child_result_release(&res);
}

static void test_missing_program(void **state)
{
	const char *abs[] = { "/no/such/program", NULL };
	const char *rel[] = { "stagepipe-no-such-program", NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	assert_int_equal(run(abs, &res, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "/no/such/program"));
	sp_child_result_release(&res);
	assert_int_equal(run(rel, &res, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "stagepipe-no-such-program not found"));
	sp_child_result_release(&res);
}

static void test_exec_failures(void **state)
{
	char *dir = sp_test_tempdir("sp-child-"), *noexec, *badinterp, *garbage;
	const char *argv[2] = { NULL, NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	noexec = sp_xasprintf("%s/noexec", dir);
	badinterp = sp_xasprintf("%s/badinterp", dir);
	garbage = sp_xasprintf("%s/garbage", dir);
	sp_test_write_file(noexec, "#!/bin/sh\necho hi\n");
	sp_test_write_file(badinterp, "#!/no/such/interpreter\n");
	assert_int_equal(chmod(badinterp, 0755), 0);
	sp_test_write_file(garbage, "\x7f" "ELF\x01\x02\x03garbage");
	assert_int_equal(chmod(garbage, 0755), 0);

	argv[0] = noexec;
	assert_int_equal(run(argv, &res, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "is not executable"));
	sp_child_result_release(&res);

	/* valgrind cannot go on in a child whose exec failed past its own
	 * checks (it kills the child): the two cases below need the pipe */
	if (sp_test_under_valgrind())
		goto out;

	/* exec's own ENOENT (the interpreter), reported through the pipe */
	argv[0] = badinterp;
	assert_int_equal(run(argv, &res, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "cannot run"));
	sp_child_result_release(&res);

	argv[0] = garbage;
	assert_int_equal(run(argv, &res, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "cannot run"));
	sp_child_result_release(&res);
out:
	sp_test_rmtree(dir);
	free(dir);
	free(noexec);
	free(badinterp);
	free(garbage);
}

static void test_stdin_larger_than_a_pipe(void **state)
{
	const char *argv[] = { "cat", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	size_t n = 300 * 1000, i;
	char *in = sp_xmalloc(n);

	(void)state;
	for (i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	o.argv = argv;
	o.stdin_data = in;
	o.stdin_len = n;
	assert_int_equal(sp_child_run(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.out.len, n);
	assert_memory_equal(res.out.data, in, n);
	sp_child_result_release(&res);
	free(in);
}

static void test_stdin_not_read_is_not_sigpipe(void **state)
{
	const char *argv[] = { "/bin/sh", "-c", "exec 0<&-; echo closed", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct sigaction old, dfl;
	sigset_t pending, mask_before, mask_after;
	size_t n = 4 * 1024 * 1024;
	char *in = sp_xcalloc(n, 1);

	(void)state;
	/* SIGPIPE at its default (kills the process): the test survives only
	 * if sp_child_run keeps the signal from us */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &dfl, &old);
	pthread_sigmask(SIG_SETMASK, NULL, &mask_before);
	o.argv = argv;
	o.stdin_data = in;
	o.stdin_len = n;
	assert_int_equal(sp_child_run(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "closed\n");
	sigpending(&pending);
	assert_int_equal(sigismember(&pending, SIGPIPE), 0);
	pthread_sigmask(SIG_SETMASK, NULL, &mask_after);
	assert_int_equal(sigismember(&mask_after, SIGPIPE), sigismember(&mask_before, SIGPIPE));
	sigaction(SIGPIPE, &old, NULL);
	sp_child_result_release(&res);
	free(in);
}

static void test_stdin_is_dev_null_by_default(void **state)
{
	const char *argv[] = { "cat", NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	assert_int_equal(run(argv, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.out.len, 0);
	sp_child_result_release(&res);
}

static void test_caps(void **state)
{
	const char *argv[] = { "/bin/sh", "-c",
		"head -c 1000000 /dev/zero; head -c 50000 /dev/zero >&2; echo tail >&2", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	o.argv = argv;
	o.stdout_cap = 1000;
	o.stderr_cap = 100;
	assert_int_equal(sp_child_run(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.out.len, 1000);
	assert_int_equal(res.out_dropped, 999000);
	assert_int_equal(res.err.len, 100);
	assert_int_equal(res.err_dropped, 50000 + 5 - 100);
	sp_child_result_release(&res);
}

static void test_killed_by_signal(void **state)
{
	const char *argv[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	char how[64];

	(void)state;
	assert_int_equal(run(argv, &res, &err), 0);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.term_signal, SIGTERM);
	assert_non_null(strstr(sp_child_describe(&res, how, sizeof(how)), "signal 15"));
	sp_child_result_release(&res);
}

static void test_timeout_kills_the_group(void **state)
{
	/* the background sleep keeps stdout open: killing only sh would hang */
	const char *argv[] = { "/bin/sh", "-c", "sleep 30 & echo $!; wait", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	double t0 = now_s(), took;
	char *end, stat_path[64], buf[256];
	long bg;
	int tries;

	(void)state;
	o.argv = argv;
	o.timeout_ms = 300;
	assert_int_equal(sp_child_run(&o, &res, &err), SP_ETIMEOUT);
	took = now_s() - t0;
	assert_true(took < 2.0);
	assert_true(res.timed_out);
	assert_int_equal(res.term_signal, SIGKILL);
	assert_non_null(strstr(err.msg, "did not finish within 0.3s"));
	/* what it printed before the kill is kept */
	bg = strtol(res.out.data, &end, 10);
	assert_true(bg > 0 && *end == '\n');
	/* the grandchild is gone (or a zombie waiting for init) */
	snprintf(stat_path, sizeof(stat_path), "/proc/%ld/stat", bg);
	for (tries = 0; tries < 50; tries++) {
		FILE *f = fopen(stat_path, "r");
		char *p;
		if (!f)
			break;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (p && (p = strrchr(buf, ')')) && (p[2] == 'Z' || p[2] == 'X'))
			break;
		usleep(20000);
	}
	assert_true(tries < 50);
	sp_child_result_release(&res);
}

static void test_grandchild_holding_the_pipe(void **state)
{
	/* sh exits at once; its background child keeps stdout for 3 s */
	const char *argv[] = { "/bin/sh", "-c", "sleep 3 & echo done", NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	double t0 = now_s();

	(void)state;
	assert_int_equal(run(argv, &res, &err), 0);
	assert_true(now_s() - t0 < 2.5);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "done\n");
	sp_child_result_release(&res);
}

static int cancel_after(void *ud)
{
	int *calls = ud;
	return ++*calls > 3;
}

static void test_cancel(void **state)
{
	const char *argv[] = { "sleep", "30", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	int calls = 0;
	double t0 = now_s();

	(void)state;
	o.argv = argv;
	o.cancel = cancel_after;
	o.cancel_ud = &calls;
	assert_int_equal(sp_child_run(&o, &res, &err), SP_ECANCELLED);
	assert_true(now_s() - t0 < 2.0);
	assert_true(res.cancelled);
	sp_child_result_release(&res);
}

static void test_environment(void **state)
{
	const char *argv[] = { "env", NULL };
	const char *envp[] = { "ONLY=this", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	o.argv = argv;
	o.envp = envp;
	assert_int_equal(sp_child_run(&o, &res, &err), 0);
	assert_string_equal(res.out.data, "ONLY=this\n");
	sp_child_result_release(&res);
}

static void test_no_descriptor_leaks(void **state)
{
	/* the shell lists its own descriptors (the glob's own directory
	 * descriptor is closed again by the time of the -e test) */
	const char *argv[] = { "/bin/sh", "-c",
		"for f in /proc/$$/fd/*; do [ -e \"$f\" ] && printf '%s ' \"${f##*/}\"; done; true",
		NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	int leak, before, after, i;

	(void)state;
	/* an inheritable descriptor of ours the child must not get */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak >= 0);
	before = count_fds();
	for (i = 0; i < 20; i++) {
		assert_int_equal(run(argv, &res, &err), 0);
		assert_string_equal(res.out.data, "0 1 2 ");
		sp_child_result_release(&res);
	}
	after = count_fds();
	assert_int_equal(before, after);
	close(leak);
}

static void test_closed_stdio_in_parent(void **state)
{
	/* with our fd 0 closed, pipes come back as 0: they must still work */
	const char *argv[] = { "cat", NULL };
	struct sp_child_opts o = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	int saved = dup(0);

	(void)state;
	assert_true(saved >= 0);
	close(0);
	o.argv = argv;
	o.stdin_data = "through\n";
	o.stdin_len = 8;
	assert_int_equal(sp_child_run(&o, &res, &err), 0);
	dup2(saved, 0);
	close(saved);
	assert_string_equal(res.out.data, "through\n");
	sp_child_result_release(&res);
}

static void test_signal_state_is_reset(void **state)
{
	const char *argv[] = { "cat", "/proc/self/status", NULL };
	struct sp_child_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct sigaction sa_ign, old;
	sigset_t usr1, oldmask;
	unsigned long long ign;
	const char *p;
	int sig;

	(void)state;
	memset(&sa_ign, 0, sizeof(sa_ign));
	sa_ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa_ign, &old);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, &oldmask);
	assert_int_equal(run(argv, &res, &err), 0);
	pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGPIPE, &old, NULL);
	assert_non_null(strstr(res.out.data, "SigBlk:\t0000000000000000\n"));
	assert_non_null(p = strstr(res.out.data, "SigIgn:\t"));
	ign = strtoull(p + 8, NULL, 16);
	/* signals 32..SIGRTMIN-1 belong to libc, which refuses to touch them;
	 * whatever started this test may have left them ignored */
	for (sig = 32; sig < SIGRTMIN; sig++)
		ign &= ~(1ULL << (sig - 1));
	assert_int_equal(ign, 0);
	sp_child_result_release(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capture_and_exit_code),
		cmocka_unit_test(test_path_lookup),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_exec_failures),
		cmocka_unit_test(test_stdin_larger_than_a_pipe),
		cmocka_unit_test(test_stdin_not_read_is_not_sigpipe),
		cmocka_unit_test(test_stdin_is_dev_null_by_default),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_killed_by_signal),
		cmocka_unit_test(test_timeout_kills_the_group),
		cmocka_unit_test(test_grandchild_holding_the_pipe),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_no_descriptor_leaks),
		cmocka_unit_test(test_closed_stdio_in_parent),
		cmocka_unit_test(test_signal_state_is_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
