/*
 * jobrun.c — a job is a child `stagepipe run`; see server.h.
 *
 * The child is started by sp_child_spawn (core/base/child.h says how and
 * why), with die_with_parent: when the thread that started it dies (the
 * server was killed), the job is told to stop (SIGTERM); it removes its
 * containers and exits 130.  Its stdin (the permit channel) then reads
 * EOF too, so it can never be granted a promotion.  What sp_child_run
 * does not do, done here: it runs for hours and talks: stdout is cut into
 * event lines as it arrives (core/base/lines.c, bounded), a
 * promote_request is answered on its stdin, stderr keeps only its last
 * 2 KiB of lines.
 *
 * When the child has exited, whatever it left in its process group gets
 * SIGKILL (it is still a zombie then, so the group id cannot have been
 * reused), and only then is it reaped: nothing a job started outlives it.
 *
 * Stopping (cancel or timeout) is SIGTERM to the group, so that the job
 * can clean up; SIGKILL follows after a grace (30 s for a cancel, 10 s
 * for a timeout).  While it stops, its output is still read (the last
 * stage_finished and pipeline_finished events come then) and the cancel
 * callback is still polled every 100 ms, its answer ignored: the worker's
 * heartbeat lives there.
 *
 * sp_jobrun returns 0 when the child ran and was reaped, whatever its
 * exit (res says how it ended; cancelled/timed_out tell that we stopped
 * it); SP_ENOTFOUND when exe does not exist; SP_ERROR when it could not be
 * started or watched.  The child's environment and argv are never put in
 * an error message or a log line.
 */
#define _GNU_SOURCE
#include "core/server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/base/buf.h"
#include "core/base/child.h"
#include "core/base/clock.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/base/lines.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"

#define TICK_MS 100
#define CANCEL_GRACE_MS 30000
#define TIMEOUT_GRACE_MS 10000
#define EXIT_GRACE_MS 1000
/* Longest stdout line handed over whole; a longer one comes in pieces
 * (which are not JSON, and so are ignored). */
#define LINE_MAX_BYTES (1024 * 1024)
#define TAIL_MAX (sizeof(((struct sp_jobrun_result *)0)->stderr_tail))
#define IO_CHUNK 65536

extern char **environ;

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

/* ---- argv and environment, built before the fork (they allocate) ---- */

struct strv {
	const char **v;
	size_t n, alloc;
};

static void strv_add(struct strv *s, const char *str)
{
	SP_GROW(s->v, s->alloc, s->n + 2);
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

static void build_argv(struct strv *a, const struct sp_jobrun_opts *o, char *max_buf, size_t max_len)
{
	strv_add(a, o->exe);
	strv_add(a, "run");
	strv_add(a, "--repo");
	strv_add(a, o->repo_url);
	strv_add(a, "--ref");
	strv_add(a, o->ref);
	if (o->sha) {
		strv_add(a, "--sha");
		strv_add(a, o->sha);
	}
	if (o->pipeline) {
		strv_add(a, "-f");
		strv_add(a, o->pipeline);
	}
	strv_add(a, "--json");
	if (o->job_label) {
		strv_add(a, "--job-id");
		strv_add(a, o->job_label);
	}
	if (o->event) {
		strv_add(a, "--event");
		strv_add(a, o->event);
		if (o->event_ref) {
			strv_add(a, "--event-ref");
			strv_add(a, o->event_ref);
		}
	}
	if (o->agent) {
		strv_add(a, "--agent");
		strv_add(a, o->agent);
	}
	if (o->docker_host) {
		strv_add(a, "--docker-host");
		strv_add(a, o->docker_host);
	}
	if (o->runner_labels) {
		strv_add(a, "--runner-labels");
		strv_add(a, o->runner_labels);
	}
	if (o->artifacts_dir) {
		strv_add(a, "--artifacts");
		strv_add(a, o->artifacts_dir);
		if (o->artifacts_max_bytes) {
			snprintf(max_buf, max_len, "%llu", o->artifacts_max_bytes);
			strv_add(a, "--artifacts-max-bytes");
			strv_add(a, max_buf);
		}
	}
	strv_add(a, "--permit-stdin");
}

static bool env_overridden(const char *entry, const char *const *extra)
{
	size_t n = strcspn(entry, "=");

	for (; extra && *extra; extra++)
		if (!strncmp(*extra, entry, n) && (*extra)[n] == '=')
			return true;
	return false;
}

/* environ, minus the names extra sets, plus extra.  Entries borrowed. */
static void build_env(struct strv *e, const char *const *extra)
{
	char **p;

	SP_GROW(e->v, e->alloc, 1);
	e->v[0] = NULL;
	for (p = environ; p && *p; p++)
		if (!env_overridden(*p, extra))
			strv_add(e, *p);
	for (; extra && *extra; extra++)
		strv_add(e, *extra);
}

/* ---- the parent side ---- */

struct run {
	const struct sp_jobrun_opts *o;
	struct sp_jobrun_result *res;
	int in_fd;                 /* the child's stdin (permit answers) */
	struct sp_lines out_lines, err_lines;
	struct sp_buf tail;        /* last lines of stderr, '\n'-separated */
};

/* Writes one answer line to the child's stdin; on trouble closes it (the
 * child then reads EOF: "no answer", refused). */
static void answer(struct run *r, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (r->in_fd >= 0 && off <= len) {
		const char *p = off < len ? line + off : "\n";
		size_t n = off < len ? len - off : 1;
		ssize_t w = write(r->in_fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* EAGAIN cannot happen for one short line to a child that
			 * waits for it; EPIPE: it is gone */
			close_fd(&r->in_fd);
			return;
		}
		off += (size_t)w;
	}
}

static void promote(struct run *r, const char *line, size_t len)
{
	cJSON *ev = cJSON_ParseWithLength(line, len), *ans;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(ev, "event");
	const cJSON *stage = cJSON_GetObjectItemCaseSensitive(ev, "stage");
	char reason[512] = "", *out;
	bool granted = false;

	if (!cJSON_IsString(e) || strcmp(e->valuestring, "promote_request")) {
		cJSON_Delete(ev);
		return;
	}
	if (!cJSON_IsString(stage))
		snprintf(reason, sizeof(reason), "promote_request without a stage");
	else if (!r->o->on_promote)
		snprintf(reason, sizeof(reason), "no promote permit here");
	else
		r->o->on_promote(r->o->ud, stage->valuestring, &granted, reason, sizeof(reason));
	ans = cJSON_CreateObject();
	cJSON_AddBoolToObject(ans, "granted", granted);
	if (!granted)
		cJSON_AddStringToObject(ans, "reason", *reason ? reason : "refused");
	out = sp_xjson_print(ans);
	answer(r, out);
	cJSON_free(out);
	cJSON_Delete(ans);
	cJSON_Delete(ev);
}

static void on_out_line(void *ud, const char *line, size_t len)
{
	struct run *r = ud;

	if (r->o->on_line)
		r->o->on_line(r->o->ud, line, len);
	/* cheap test first: only a promote_request is parsed here */
	if (len < 4096 && memmem(line, len, "promote_request", 15))
		promote(r, line, len);
}

static void on_err_line(void *ud, const char *line, size_t len)
{
	struct run *r = ud;

	(void)sp_buf_add(&r->tail, line, len);
	(void)sp_buf_addch(&r->tail, '\n');
	/* keep whole lines, the newest, in TAIL_MAX - 1 bytes */
	while (r->tail.len > TAIL_MAX - 1) {
		const char *nl = memchr(r->tail.data, '\n', r->tail.len);

		sp_buf_consume(&r->tail, (size_t)(nl - r->tail.data) + 1);
	}
}

/* Reads once; closes *fd at EOF or on a real error. */
static void read_once(int *fd, struct sp_lines *l)
{
	char chunk[IO_CHUNK];
	ssize_t n = read(*fd, chunk, sizeof(chunk));

	if (n > 0)
		sp_lines_feed(l, chunk, (size_t)n);
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		close_fd(fd);
}

/*
 * One signal to the child's process group (it leads its own).  Only once:
 * `stagepipe run` takes a second SIGTERM as "quit at once, skip the
 * cleanup", so the same signal must not reach it twice.  The pid alone
 * only when the group is not there yet (between fork and setpgid).
 */
static void signal_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) < 0 && errno == ESRCH)
		(void)kill(pid, sig);
}

int sp_jobrun(const struct sp_jobrun_opts *o, struct sp_jobrun_result *res,
	      struct sp_error *err)
{
	struct strv argv = { NULL, 0, 0 }, envp = { NULL, 0, 0 };
	struct sp_spawn_opts so;
	struct sp_spawn sp;
	struct run r;
	bool exited = false;
	int64_t start = 0, deadline = 0, kill_at = 0, exited_at = 0, next_tick;
	char artifacts_max[24];
	pid_t pid = -1;
	int rc = 0, status = 0;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	memset(&r, 0, sizeof(r));
	r.o = o;
	r.res = res;
	r.in_fd = -1;
	memset(&sp, 0, sizeof(sp));
	sp.in_fd = sp.out_fd = sp.err_fd = -1;
	sp_lines_init(&r.out_lines, LINE_MAX_BYTES, on_out_line, &r);
	sp_lines_init(&r.err_lines, TAIL_MAX - 2, on_err_line, &r);
	sp_buf_init(&r.tail, 0);

	if (!o->exe || !o->repo_url || !o->ref) {
		rc = sp_error_set(err, SP_ERROR, "a job needs a program, a repository and a ref");
		goto out;
	}
	build_argv(&argv, o, artifacts_max, sizeof(artifacts_max));
	build_env(&envp, o->env);
	memset(&so, 0, sizeof(so));
	so.argv = argv.v;
	so.envp = envp.v;
	so.stdin_pipe = true;
	so.die_with_parent = true;
	if ((rc = sp_child_spawn(&so, &sp, err)) < 0)
		goto out;
	pid = sp.pid;
	start = sp.start;
	r.in_fd = sp.in_fd;
	sp.in_fd = -1;  /* non-blocking: sp_child_spawn made it so */
	if (o->timeout_ms > 0)
		deadline = start + o->timeout_ms;
	next_tick = sp_clock_ms();

	for (;;) {
		struct pollfd pfd[2];
		int nfd = 0, wait_ms = TICK_MS, i;
		int64_t t;

		if (!exited) {
			/* WNOWAIT: it stays a zombie, so its pid (and the group id)
			 * cannot be reused until we reap it below */
			siginfo_t si;
			int w;

			memset(&si, 0, sizeof(si));
			w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
			if (w == 0 && si.si_pid == pid) {
				exited = true;
				exited_at = sp_clock_ms();
			} else if (w < 0 && errno != EINTR) {
				rc = sp_error_set(err, SP_ERROR, "lost track of the job: waitpid: %s "
						  "(is SIGCHLD ignored?)", strerror(errno));
				signal_group(pid, SIGKILL);
				pid = -1;
				goto out;
			}
		}
		if (exited && sp.out_fd < 0 && sp.err_fd < 0)
			break;
		t = sp_clock_ms();
		if (exited && t - exited_at >= EXIT_GRACE_MS)
			break;  /* something it started still holds the pipes */
		if (!exited && t >= next_tick) {
			next_tick = t + TICK_MS;
			/* polled while it stops too: the caller's heartbeat goes on */
			bool cancel = o->cancel && o->cancel(o->ud);

			if (!kill_at && deadline && t >= deadline) {
				res->timed_out = true;
				kill_at = t + TIMEOUT_GRACE_MS;
				signal_group(pid, SIGTERM);
			} else if (!kill_at && cancel) {
				res->cancelled = true;
				kill_at = t + CANCEL_GRACE_MS;
				signal_group(pid, SIGTERM);
			} else if (kill_at && t >= kill_at) {
				signal_group(pid, SIGKILL);
				kill_at = INT64_MAX;  /* once */
			}
			t = sp_clock_ms();
		}
		if (!exited)
			wait_ms = next_tick > t ? (int)(next_tick - t) : 0;
		else
			wait_ms = (int)(EXIT_GRACE_MS - (t - exited_at));
		if (wait_ms < 0)
			wait_ms = 0;
		if (wait_ms > TICK_MS)
			wait_ms = TICK_MS;

		if (sp.out_fd >= 0) {
			pfd[nfd].fd = sp.out_fd;
			pfd[nfd++].events = POLLIN;
		}
		if (sp.err_fd >= 0) {
			pfd[nfd].fd = sp.err_fd;
			pfd[nfd++].events = POLLIN;
		}
		if (poll(nfd ? pfd : NULL, (nfds_t)nfd, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			rc = sp_error_set(err, SP_ERROR, "watching the job: poll: %s", strerror(errno));
			signal_group(pid, SIGKILL);
			(void)sp_child_wait(pid, &status);
			pid = -1;
			goto out;
		}
		for (i = 0; i < nfd; i++) {
			if (!pfd[i].revents)
				continue;
			if (pfd[i].fd == sp.out_fd)
				read_once(&sp.out_fd, &r.out_lines);
			else
				read_once(&sp.err_fd, &r.err_lines);
		}
	}
	/* what it left behind in its group (still holding the pipes, or not)
	 * goes with it; then the zombie is exited */
	(void)kill(-pid, SIGKILL);
	if (sp_child_wait(pid, &status) < 0) {
		rc = sp_error_set(err, SP_ERROR, "lost track of the job: waitpid: %s",
				  strerror(errno));
		pid = -1;
		goto out;
	}
	pid = -1;
	sp_lines_flush(&r.out_lines);
	sp_lines_flush(&r.err_lines);
	res->seconds = (double)(sp_clock_ms() - start) / 1000.0;
	if (WIFEXITED(status))
		res->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		res->term_signal = WTERMSIG(status);
out:
	if (pid > 0) {
		signal_group(pid, SIGKILL);
		(void)sp_child_wait(pid, &status);
	}
	{
		/* the tail holds whole lines, each ending in '\n', in TAIL_MAX - 1 */
		size_t n = r.tail.len;
		if (n && r.tail.data[n - 1] == '\n')
			n--;
		memcpy(res->stderr_tail, r.tail.data, n);
		res->stderr_tail[n] = '\0';
	}
	close_fd(&r.in_fd);
	sp_child_spawn_end(&sp);
	sp_lines_release(&r.out_lines);
	sp_lines_release(&r.err_lines);
	sp_buf_release(&r.tail);
	free(argv.v);
	free(envp.v);
	return rc;
}

/* ---- the job's state from how the child ended ---- */

/* The first line of text that looks like FILE:LINE:COL: (a pipeline file
 * diagnostic), copied into out; false when none. */
static bool first_diag_line(const char *text, char *out, size_t len)
{
	const char *line = text;

	while (*line) {
		size_t n = strcspn(line, "\n");
		const char *c;

		for (c = line; c < line + n; c++) {
			const char *p = c + 1;
			size_t d1, d2;

			if (*c != ':' || c == line)
				continue;
			d1 = strspn(p, "0123456789");
			if (!d1 || p[d1] != ':')
				continue;
			d2 = strspn(p + d1 + 1, "0123456789");
			if (d2 && p[d1 + 1 + d2] == ':') {
				snprintf(out, len, "%.*s", (int)n, line);
				return true;
			}
		}
		line += n;
		if (*line == '\n')
			line++;
	}
	return false;
}

/* The last non-empty line of text into out; false when none. */
static bool last_line(const char *text, char *out, size_t len)
{
	const char *end = text + strlen(text), *start;

	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	if (end == text)
		return false;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(out, len, "%.*s", (int)(end - start), start);
	return true;
}

static const char *summary_str(const cJSON *summary, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(summary, key);

	return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

enum sp_job_state sp_jobrun_decide(const struct sp_jobrun_result *res, const cJSON *summary,
				   long timeout_ms, bool asked_cancel, char *reason, size_t len)
{
	const char *msg = summary_str(summary, "message");
	const char *result = summary_str(summary, "result");

	reason[0] = '\0';
	if (res->timed_out && res->exit_code != 0) {
		char d[32];
		sp_duration_format(d, sizeof(d), timeout_ms);
		snprintf(reason, len, "timed out after %s", d);
		return SP_JOB_FAILED;
	}
	switch (res->exit_code) {
	case 0:
		if (msg)
			snprintf(reason, len, "%s", msg);
		return result && !strcmp(result, "skipped") ? SP_JOB_SKIPPED : SP_JOB_PASSED;
	case 1:
		if (msg)
			snprintf(reason, len, "%s", msg);
		return SP_JOB_FAILED;
	case 2:
		if (!first_diag_line(res->stderr_tail, reason, len) &&
		    !last_line(res->stderr_tail, reason, len) && msg)
			snprintf(reason, len, "%s", msg);
		return SP_JOB_FAILED;
	case 3:
		if (msg)
			snprintf(reason, len, "%s", msg);
		else
			(void)last_line(res->stderr_tail, reason, len);
		return SP_JOB_ERROR;
	case 4: {
		static const char prefix[] = "stagepipe run: ";

		if (!last_line(res->stderr_tail, reason, len))
			snprintf(reason, len, "this runner lacks a label the pipeline's runs_on requires");
		else if (!strncmp(reason, prefix, sizeof(prefix) - 1))
			memmove(reason, reason + sizeof(prefix) - 1,
				strlen(reason + sizeof(prefix) - 1) + 1);
		return SP_JOB_QUEUED;
	}
	case 130:
		/* asked to stop: no reason of ours, the store keeps the cancel's
		 * ("cancelled through the API", "superseded by job N") */
		if (asked_cancel)
			reason[0] = '\0';
		else
			snprintf(reason, len, "interrupted");
		return SP_JOB_CANCELLED;
	case -1:
		if (res->cancelled && asked_cancel) {
			reason[0] = '\0';
			return SP_JOB_CANCELLED;
		}
		snprintf(reason, len, "the job process was killed by signal %d (%s)",
			 res->term_signal, strsignal(res->term_signal));
		return SP_JOB_ERROR;
	default: {
		char last[512];

		if (last_line(res->stderr_tail, last, sizeof(last)))
			snprintf(reason, len, "the job process exited with status %d: %s",
				 res->exit_code, last);
		else
			snprintf(reason, len, "the job process exited with status %d",
				 res->exit_code);
		return SP_JOB_ERROR;
	}
	}
}
