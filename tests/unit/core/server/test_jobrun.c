/*
 * test_jobrun.c — a job as a child process (core/server/jobrun.c), against
 * tests/tools/fake_run.sh: argv and environment, event lines, the promote
 * permit over stdin, cancel and timeout (SIGTERM, then SIGKILL), the
 * stderr tail, long lines, descriptors, and a program that is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/server.h"
#include "tests/unit/support/testutil.h"

static char *fake_path(void)
{
	const char *top = getenv("SP_TOP");

	return sp_xasprintf("%s/tests/tools/fake_run.sh", top && *top ? top : ".");
}

struct seen {
	char **lines;
	size_t n, alloc;
	size_t longest;
	char promoted_stage[64];
	bool grant;
	int cancel_after;   /* cancel once this many lines were seen (0: never) */
	int cancel_calls;
};

static void on_line(void *ud, const char *line, size_t len)
{
	struct seen *s = ud;

	SP_GROW(s->lines, s->alloc, s->n + 1);
	s->lines[s->n++] = sp_xstrndup(line, len);
	if (len > s->longest)
		s->longest = len;
}

static int on_cancel(void *ud)
{
	struct seen *s = ud;

	s->cancel_calls++;
	return s->cancel_after && (int)s->n >= s->cancel_after;
}

static void on_promote(void *ud, const char *stage, bool *granted, char *reason, size_t len)
{
	struct seen *s = ud;

	snprintf(s->promoted_stage, sizeof(s->promoted_stage), "%s", stage);
	*granted = s->grant;
	if (!s->grant)
		snprintf(reason, len, "already promoted by attempt 1");
}

static bool has_line(const struct seen *s, const char *needle)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strstr(s->lines[i], needle))
			return true;
	return false;
}

static void seen_release(struct seen *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->lines[i]);
	free(s->lines);
}

static void opts_init(struct sp_jobrun_opts *o, const char *exe, const char *const *env,
		      struct seen *s)
{
	memset(o, 0, sizeof(*o));
	o->exe = exe;
	o->repo_url = "file:///srv/app.git";
	o->ref = "refs/heads/main";
	o->sha = "0123456789abcdef0123456789abcdef01234567";
	o->pipeline = "pipelines/app.yml";
	o->event = "push";
	o->event_ref = "main";
	o->job_label = "srv-42";
	o->env = env;
	o->cancel = on_cancel;
	o->on_line = on_line;
	o->on_promote = on_promote;
	o->ud = s;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_pass_argv_env(void **state)
{
	const char *env[] = { "FAKE_MODE=pass", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.term_signal, 0);
	assert_false(res.cancelled);
	assert_false(res.timed_out);
	assert_string_equal(res.stderr_tail, "a line on stderr");
	assert_true(s.n >= 10);
	assert_true(has_line(&s, "\"event\":\"pipeline_started\""));
	assert_true(has_line(&s, "\"event\":\"pipeline_finished\""));
	/* run --repo URL --ref REF --sha SHA -f PIPELINE --json --job-id L
	 * --event push --event-ref main --permit-stdin */
	assert_true(has_line(&s, "\"arg run\""));
	assert_true(has_line(&s, "\"arg file:///srv/app.git\""));
	assert_true(has_line(&s, "\"arg refs/heads/main\""));
	assert_true(has_line(&s, "\"arg 0123456789abcdef0123456789abcdef01234567\""));
	assert_true(has_line(&s, "\"arg pipelines/app.yml\""));
	assert_true(has_line(&s, "\"arg --json\""));
	assert_true(has_line(&s, "\"arg srv-42\""));
	assert_true(has_line(&s, "\"arg --event\""));
	assert_true(has_line(&s, "\"arg --event-ref\""));
	assert_true(has_line(&s, "\"arg --permit-stdin\""));
	seen_release(&s);

	/* no event: neither --event nor --event-ref */
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	o.event = NULL;
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_false(has_line(&s, "\"arg --event\""));
	assert_false(has_line(&s, "\"arg --event-ref\""));
	assert_true(has_line(&s, "\"arg --permit-stdin\""));
	seen_release(&s);
	free(exe);
}

static void test_environment(void **state)
{
	const char *env[] = { "FAKE_MODE=env", "FAKE_VAR=from-config", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;

	(void)state;
	/* the server's environment goes through, the config's wins */
	setenv("FAKE_VAR", "from-server", 1);
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_true(has_line(&s, "FAKE_VAR=from-config"));
	seen_release(&s);

	env[1] = NULL;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_true(has_line(&s, "FAKE_VAR=from-server"));
	seen_release(&s);
	unsetenv("FAKE_VAR");
	free(exe);
}

static void test_promote(void **state)
{
	const char *env[] = { "FAKE_MODE=promote", "FAKE_STAGE=release", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.grant = true;
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_string_equal(s.promoted_stage, "release");
	assert_true(has_line(&s, "answer {'granted':true}"));
	assert_true(has_line(&s, "\"event\":\"promote_request\""));
	assert_int_equal(res.exit_code, 0);
	seen_release(&s);

	memset(&s, 0, sizeof(s));
	s.grant = false;
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_true(has_line(&s, "answer {'granted':false,'reason':'already promoted by attempt 1'}"));
	assert_int_equal(res.exit_code, 3);
	seen_release(&s);

	/* no permit callback: refused */
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	o.on_promote = NULL;
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_true(has_line(&s, "'granted':false"));
	assert_int_equal(res.exit_code, 3);
	seen_release(&s);
	free(exe);
}

static void test_cancel(void **state)
{
	const char *env[] = { "FAKE_MODE=sleep", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	double t0;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.cancel_after = 3;  /* pipeline_started, stage_started, "sleeping" */
	opts_init(&o, exe, env, &s);
	t0 = now_s();
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_true(now_s() - t0 < 5);
	assert_true(res.cancelled);
	assert_false(res.timed_out);
	/* it got SIGTERM and could say goodbye: its last events are read */
	assert_int_equal(res.exit_code, 130);
	assert_true(has_line(&s, "\"result\":\"cancelled\""));
	assert_true(has_line(&s, "\"event\":\"pipeline_finished\""));
	seen_release(&s);
	free(exe);
}

static void test_timeout(void **state)
{
	const char *env[] = { "FAKE_MODE=sleep", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	double t0;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	o.timeout_ms = 300;
	t0 = now_s();
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_true(now_s() - t0 < 5);
	assert_true(res.timed_out);
	assert_false(res.cancelled);
	assert_int_equal(res.exit_code, 130);
	assert_true(res.seconds >= 0.3);
	seen_release(&s);
	free(exe);
}

/* SIGTERM ignored: SIGKILL 10 s after a timeout */
static void test_timeout_then_kill(void **state)
{
	const char *env[] = { "FAKE_MODE=stubborn", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	double t0, took;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	o.timeout_ms = 200;
	t0 = now_s();
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	took = now_s() - t0;
	assert_true(took >= 10.0 && took < 13.0);
	assert_true(res.timed_out);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.term_signal, SIGKILL);
	seen_release(&s);
	free(exe);
}

static void test_stderr_tail(void **state)
{
	const char *env[] = { "FAKE_MODE=stderr", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	size_t n;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 2);
	n = strlen(res.stderr_tail);
	assert_true(n > 1500 && n < sizeof(res.stderr_tail));
	/* whole lines, the newest */
	assert_true(n >= 9 && !strcmp(res.stderr_tail + n - 9, "last line"));
	assert_non_null(strstr(res.stderr_tail, "noise line 299 of"));
	assert_memory_equal(res.stderr_tail, "noise line ", 11);
	assert_null(strstr(res.stderr_tail, "unknown key"));
	assert_int_equal(s.n, 0);
	seen_release(&s);
	free(exe);
}

static void test_long_line_is_cut(void **state)
{
	const char *env[] = { "FAKE_MODE=long", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_true(s.longest <= 1024 * 1024);
	assert_true(s.n >= 4);
	assert_true(has_line(&s, "\"line\":\"after\""));
	seen_release(&s);
	free(exe);
}

static void test_descriptors(void **state)
{
	const char *env[] = { "FAKE_MODE=fds", NULL };
	char *exe = fake_path();
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	int leak = open("/dev/null", O_RDONLY), fd57;

	(void)state;
	/* a descriptor of ours without close-on-exec must not reach the job */
	fd57 = dup2(leak, 57);
	assert_int_equal(fd57, 57);
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, env, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_true(has_line(&s, "fds 0 1 2"));
	assert_false(has_line(&s, " 57 "));
	seen_release(&s);
	close(fd57);
	close(leak);
	free(exe);
}

static void test_missing_program(void **state)
{
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, "/no/such/stagepipe", NULL, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "/no/such/stagepipe"));
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(s.n, 0);
	seen_release(&s);
}

/* A script of our own (fake_run.sh has no such mode), made executable. */
static char *write_script(const char *dir, const char *name, const char *body)
{
	char *path = sp_xasprintf("%s/%s", dir, name);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fprintf(fp, "#!/bin/sh\n%s", body);
	fclose(fp);
	assert_int_equal(chmod(path, 0755), 0);
	return path;
}

/* What a job starts in its process group does not outlive it, even when
 * it holds the job's pipes. */
static void test_leftovers_killed(void **state)
{
	char *dir = sp_test_tempdir("sp-jobrun-");
	char *pidfile = sp_xasprintf("%s/pid", dir);
	char *body = sp_xasprintf("sleep 60 &\necho $! > %s\nexit 0\n", pidfile);
	char *exe = write_script(dir, "leftover.sh", body);
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	char *text;
	pid_t left;
	int i;

	(void)state;
	memset(&s, 0, sizeof(s));
	opts_init(&o, exe, NULL, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	text = sp_test_read_file(pidfile, NULL);
	left = (pid_t)atoi(text);
	assert_true(left > 0);
	/* gone (its parent, init, reaps it soon after the SIGKILL) */
	for (i = 0; i < 200 && kill(left, 0) == 0; i++) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (kill(left, 0) == 0) {
		(void)kill(left, SIGKILL);
		fail_msg("the job's background process %d outlived it", (int)left);
	}
	free(text);
	seen_release(&s);
	sp_test_rmtree(dir);
	free(exe);
	free(body);
	free(pidfile);
	free(dir);
}

/* A job that closed its stdin and then asks for the permit: the answer
 * meets EPIPE, no SIGPIPE reaches us, and our signal mask is as before. */
static void test_closed_stdin_no_sigpipe(void **state)
{
	char *dir = sp_test_tempdir("sp-jobrun-");
	char *exe = write_script(dir, "nostdin.sh",
				 "exec 0<&-\n"
				 "echo '{\"event\":\"promote_request\",\"stage\":\"release\"}'\n"
				 "sleep 0.3\n"
				 "echo '{\"event\":\"promote_request\",\"stage\":\"release\"}'\n"
				 "exit 0\n");
	struct sp_jobrun_opts o;
	struct sp_jobrun_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct seen s;
	sigset_t before, after, pending;

	(void)state;
	assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &before), 0);
	memset(&s, 0, sizeof(s));
	s.grant = true;
	opts_init(&o, exe, NULL, &s);
	assert_int_equal(sp_jobrun(&o, &res, &err), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(s.promoted_stage, "release");
	assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &after), 0);
	assert_int_equal(sigismember(&before, SIGPIPE), sigismember(&after, SIGPIPE));
	assert_int_equal(sigismember(&before, SIGTERM), sigismember(&after, SIGTERM));
	sigemptyset(&pending);
	assert_int_equal(sigpending(&pending), 0);
	assert_int_equal(sigismember(&pending, SIGPIPE), 0);
	seen_release(&s);
	sp_test_rmtree(dir);
	free(exe);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_argv_env),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_promote),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_timeout_then_kill),
		cmocka_unit_test(test_stderr_tail),
		cmocka_unit_test(test_long_line_is_cut),
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_leftovers_killed),
		cmocka_unit_test(test_closed_stdin_no_sigpipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
