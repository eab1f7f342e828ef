/*
 * child.c — starting, feeding, watching and reaping child processes; see
 * child.h for the rules.
 *
 * fork/exec rather than posix_spawn: every step the child takes between
 * the two is spelled out below and is async-signal-safe (sigaction,
 * setpgid, dup2, fcntl, closefrom, sigprocmask, execve, write, _exit), so
 * it is correct in a process that has other threads (libcurl's resolver).
 * The program is found in the parent, before the fork, because searching
 * PATH allocates.
 *
 * The parent multiplexes the three pipes with poll() in short slices and
 * looks at the child with waitpid(WNOHANG) between them: no SIGCHLD
 * handler (which would be process-global state) is needed.  A child
 * that exits while something it started still holds its stdout open
 * gets EXIT_GRACE_MS for the pipes to close; then we stop reading rather
 * than wait on a grandchild.
 *
 * _GNU_SOURCE for pipe2(O_CLOEXEC): a descriptor created without the
 * flag could leak into a child another thread forks in between.
 */
#define _GNU_SOURCE
#include "core/base/child.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

#define POLL_SLICE_MS 50
#define EXIT_GRACE_MS 1000
#define IO_CHUNK 65536
/* The descriptor number the child keeps for reporting an exec failure. */
#define EXEC_REPORT_FD 3

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		/* Linux closes the descriptor even when close() says EINTR */
		(void)close(*fd);
		*fd = -1;
	}
}

/* ---- finding the program ---- */

/* 1: an executable regular file; 0: none; -1: a file we may not execute */
static int executable(const char *file)
{
	struct stat st;

	if (stat(file, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return access(file, X_OK) == 0 ? 1 : -1;
}

int sp_child_which(char **out, const char *program, const char *path, struct sp_error *err)
{
	const char *p;
	char *denied = NULL;
	int rc = 0;

	*out = NULL;
	if (!program || !*program)
		return sp_error_set(err, SP_ENOTFOUND, "no program to run");
	if (strchr(program, '/')) {
		switch (executable(program)) {
		case 1:
			*out = sp_xstrdup(program);
			return 0;
		case -1:
			return sp_error_set(err, SP_ERROR, "%s is not executable", program);
		default:
			return sp_error_set(err, SP_ENOTFOUND, "%s: no such program", program);
		}
	}
	if (!path)
		path = SP_CHILD_DEFAULT_PATH;
	for (p = path;; p += strcspn(p, ":") + 1) {
		size_t n = strcspn(p, ":");
		char *cand = n ? sp_xasprintf("%.*s/%s", (int)n, p, program)
			       : sp_xasprintf("./%s", program);
		int x = executable(cand);

		if (x == 1) {
			*out = cand;
			goto out;
		}
		if (x < 0 && !denied)
			denied = cand;
		else
			free(cand);
		if (!p[n])
			break;
	}
	if (denied)
		rc = sp_error_set(err, SP_ERROR, "%s is not executable", denied);
	else
		rc = sp_error_set(err, SP_ENOTFOUND, "%s not found in PATH (%.300s)", program, path);
out:
	free(denied);
	return rc;
}

/* ---- the child side: async-signal-safe calls only ---- */

__attribute__((noreturn))
static void child_exec(const char *prog, const char *const *argv, const char *const *envp,
		       int in_fd, int out_fd, int err_fd, int report_fd, pid_t parent)
{
	struct sigaction sa;
	sigset_t none;
	int sig, e;

	/* handlers and SIG_IGN (SIGPIPE) of ours must not outlive the exec */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);  /* EINVAL for KILL, STOP, libc's own */
	/* its own group, so a timeout can kill what it starts as well */
	(void)setpgid(0, 0);
	/* the parent dying (its thread, precisely) stops it; a parent that
	 * died before this line is caught by the getppid test */
	if (parent > 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
			goto fail;
		if (getppid() != parent) {
			errno = ESRCH;
			goto fail;
		}
	}

	/* every source descriptor is >= 3 (see move_high), so no dup2 below
	 * clobbers another source, and each target loses FD_CLOEXEC */
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		goto fail;
	if (report_fd != EXEC_REPORT_FD && dup2(report_fd, EXEC_REPORT_FD) < 0)
		goto fail;
	if (fcntl(EXEC_REPORT_FD, F_SETFD, FD_CLOEXEC) < 0)
		goto fail;
	report_fd = EXEC_REPORT_FD;
	closefrom(EXEC_REPORT_FD + 1);

	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	execve(prog, (char *const *)argv, (char *const *)(envp ? envp : (const char *const *)environ));
fail:
	e = errno;
	(void)!write(report_fd, &e, sizeof(e));
	_exit(127);
}

/* ---- the parent side ---- */

/*
 * A descriptor below 3 (the caller closed its stdin, say) would be
 * overwritten by the child's dup2 onto 0-2 before being used; move it up.
 */
static int move_high(int *fd)
{
	int nfd;

	if (*fd >= 3)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return -1;
	close_fd(fd);
	*fd = nfd;
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int sp_child_wait(pid_t pid, int *status)
{
	pid_t r;

	while ((r = waitpid(pid, status, 0)) < 0 && errno == EINTR)
		;
	return r == pid ? 0 : -1;
}

void sp_child_spawn_end(struct sp_spawn *sp)
{
	sigset_t pipeset, pending;

	close_fd(&sp->in_fd);
	close_fd(&sp->out_fd);
	close_fd(&sp->err_fd);
	if (sp->mask_set) {
		/* a SIGPIPE that came while it ran is ours (unless one was
		 * pending before: not ours, left alone) */
		sigemptyset(&pipeset);
		sigaddset(&pipeset, SIGPIPE);
		sigemptyset(&pending);
		if (!sp->sigpipe_pending_before && sigpending(&pending) == 0 &&
		    sigismember(&pending, SIGPIPE) == 1) {
			struct timespec zero = { 0, 0 };
			(void)sigtimedwait(&pipeset, NULL, &zero);
		}
		(void)pthread_sigmask(SIG_SETMASK, &sp->old_mask, NULL);
		sp->mask_set = false;
	}
}

int sp_child_spawn(const struct sp_spawn_opts *o, struct sp_spawn *sp, struct sp_error *err)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	int report[2] = { -1, -1 };
	const char *name;
	char *prog = NULL;
	sigset_t all, pending, keep;
	pid_t parent = getpid();
	int rc = 0, status, e;

	assert(o && o->argv && o->argv[0]);
	memset(sp, 0, sizeof(*sp));
	sp->pid = -1;
	sp->in_fd = sp->out_fd = sp->err_fd = -1;
	name = o->name ? o->name : o->argv[0];

	if ((rc = sp_child_which(&prog, o->argv[0], o->path, err)) < 0)
		goto out;
	if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 ||
	    pipe2(report, O_CLOEXEC) < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot run %s: pipe: %s", name, strerror(errno));
		goto out;
	}
	if (o->stdin_pipe) {
		if (pipe2(in_pipe, O_CLOEXEC) < 0) {
			rc = sp_error_set(err, SP_ERROR, "cannot run %s: pipe: %s", name,
					  strerror(errno));
			goto out;
		}
	} else if ((in_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot run %s: /dev/null: %s", name,
				  strerror(errno));
		goto out;
	}
	if (move_high(&in_pipe[0]) < 0 || move_high(&out_pipe[1]) < 0 ||
	    move_high(&err_pipe[1]) < 0 || move_high(&report[1]) < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot run %s: %s", name, strerror(errno));
		goto out;
	}

	/*
	 * Every signal blocked over the fork (no handler of ours may run in
	 * the child); afterwards SIGPIPE stays blocked in this thread until
	 * sp_child_spawn_end.
	 */
	sigemptyset(&pending);
	if (sigpending(&pending) == 0)
		sp->sigpipe_pending_before = sigismember(&pending, SIGPIPE) == 1;
	sigfillset(&all);
	if ((e = pthread_sigmask(SIG_SETMASK, &all, &sp->old_mask)) != 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot run %s: sigmask: %s", name, strerror(e));
		goto out;
	}
	sp->mask_set = true;
	sp->start = sp_clock_ms();
	sp->pid = fork();
	if (sp->pid == 0)
		child_exec(prog, o->argv, o->envp, in_pipe[0], out_pipe[1], err_pipe[1], report[1],
			   o->die_with_parent ? parent : 0);
	e = errno;
	keep = sp->old_mask;
	sigaddset(&keep, SIGPIPE);
	(void)pthread_sigmask(SIG_SETMASK, &keep, NULL);
	if (sp->pid < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot run %s: fork: %s", name, strerror(e));
		goto out;
	}
	/* also from here: kill(-pid) must not race the child's own setpgid */
	(void)setpgid(sp->pid, sp->pid);
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[1]);
	close_fd(&report[1]);

	/* EOF: exec succeeded (close-on-exec); sizeof(int): its errno */
	{
		ssize_t n;
		e = 0;
		while ((n = read(report[0], &e, sizeof(e))) < 0 && errno == EINTR)
			;
		if (n == (ssize_t)sizeof(e)) {
			(void)sp_child_wait(sp->pid, &status);
			sp->pid = -1;
			rc = sp_error_set(err, e == ENOENT ? SP_ENOTFOUND : SP_ERROR,
					  "cannot run %s: %s", name, strerror(e));
			goto out;
		}
	}
	if (in_pipe[1] >= 0 && set_nonblock(in_pipe[1]) < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot run %s: %s", name, strerror(errno));
		kill(-sp->pid, SIGKILL);
		(void)sp_child_wait(sp->pid, &status);
		sp->pid = -1;
		goto out;
	}
	sp->in_fd = in_pipe[1];
	sp->out_fd = out_pipe[0];
	sp->err_fd = err_pipe[0];
	in_pipe[1] = out_pipe[0] = err_pipe[0] = -1;
out:
	close_fd(&in_pipe[0]);
	close_fd(&in_pipe[1]);
	close_fd(&out_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[0]);
	close_fd(&err_pipe[1]);
	close_fd(&report[0]);
	close_fd(&report[1]);
	if (rc < 0)
		sp_child_spawn_end(sp);
	free(prog);
	return rc;
}

/* ---- sp_child_run: start, feed, capture, reap ---- */

/* Appends what fits under the cap; counts the rest as dropped. */
static void capture(struct sp_buf *b, size_t *dropped, const char *data, size_t n)
{
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	size_t take = n < room ? n : room;

	if (take)
		(void)sp_buf_add(b, data, take);  /* fits: cannot fail */
	*dropped += n - take;
}

/* Reads once from *fd; closes it at EOF or on a real error. */
static void drain_once(int *fd, struct sp_buf *b, size_t *dropped)
{
	char chunk[IO_CHUNK];
	ssize_t n = read(*fd, chunk, sizeof(chunk));

	if (n > 0)
		capture(b, dropped, chunk, (size_t)n);
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		close_fd(fd);
}

/* Reads whatever is already in the pipe, without waiting. */
static void drain_rest(int *fd, struct sp_buf *b, size_t *dropped)
{
	if (*fd < 0)
		return;
	if (set_nonblock(*fd) == 0) {
		char chunk[IO_CHUNK];
		ssize_t n;
		while ((n = read(*fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
			if (n > 0)
				capture(b, dropped, chunk, (size_t)n);
	}
	close_fd(fd);
}

static void kill_group(pid_t pid)
{
	(void)kill(-pid, SIGKILL);
	(void)kill(pid, SIGKILL);  /* in case it never became a group leader */
}

int sp_child_run(const struct sp_child_opts *o, struct sp_child_result *res,
		 struct sp_error *err)
{
	struct sp_spawn_opts so;
	struct sp_spawn sp;
	bool reaped = false;
	size_t in_off = 0;
	int64_t deadline = 0, exited_at = 0;
	const char *name;
	pid_t pid;
	int rc = 0, status = 0;

	assert(o && o->argv && o->argv[0]);
	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	sp_buf_init(&res->out, o->stdout_cap ? o->stdout_cap : SP_CHILD_DEFAULT_CAP);
	sp_buf_init(&res->err, o->stderr_cap ? o->stderr_cap : SP_CHILD_DEFAULT_CAP);
	name = o->argv[0];

	memset(&so, 0, sizeof(so));
	so.argv = o->argv;
	so.path = o->path;
	so.envp = o->envp;
	so.stdin_pipe = o->stdin_data != NULL;
	if ((rc = sp_child_spawn(&so, &sp, err)) < 0)
		return rc;
	pid = sp.pid;
	if (sp.in_fd >= 0 && o->stdin_len == 0)
		close_fd(&sp.in_fd);
	if (o->timeout_ms > 0)
		deadline = sp.start + o->timeout_ms;

	for (;;) {
		struct pollfd pfd[3];
		int nfd = 0, wait_ms = POLL_SLICE_MS, i;
		int64_t t;

		if (!reaped) {
			pid_t r = waitpid(pid, &status, WNOHANG);
			if (r == pid) {
				reaped = true;
				exited_at = sp_clock_ms();
			} else if (r < 0 && errno != EINTR) {
				rc = sp_error_set(err, SP_ERROR, "lost track of %s: waitpid: %s "
						  "(is SIGCHLD ignored?)", name, strerror(errno));
				kill_group(pid);
				pid = -1;
				goto out;
			}
		}
		if (reaped && sp.out_fd < 0 && sp.err_fd < 0)
			break;
		t = sp_clock_ms();
		if (reaped && t - exited_at >= EXIT_GRACE_MS)
			break;  /* something it started still holds the pipes */
		if (!reaped && deadline && t >= deadline)
			res->timed_out = true;
		else if (!reaped && o->cancel && o->cancel(o->cancel_ud))
			res->cancelled = true;
		if (res->timed_out || res->cancelled) {
			kill_group(pid);
			(void)sp_child_wait(pid, &status);
			reaped = true;
			break;
		}
		if (deadline && !reaped && deadline - t < wait_ms)
			wait_ms = (int)(deadline - t);
		if (reaped && EXIT_GRACE_MS - (t - exited_at) < wait_ms)
			wait_ms = (int)(EXIT_GRACE_MS - (t - exited_at));
		if (wait_ms < 0)
			wait_ms = 0;

		if (sp.in_fd >= 0) {
			pfd[nfd].fd = sp.in_fd;
			pfd[nfd++].events = POLLOUT;
		}
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
			rc = sp_error_set(err, SP_ERROR, "watching %s: poll: %s", name,
					  strerror(errno));
			kill_group(pid);
			(void)sp_child_wait(pid, &status);
			pid = -1;
			goto out;
		}
		for (i = 0; i < nfd; i++) {
			if (!pfd[i].revents)
				continue;
			if (pfd[i].fd == sp.in_fd) {
				size_t left = o->stdin_len - in_off;
				ssize_t n = write(sp.in_fd, o->stdin_data + in_off,
						  left < IO_CHUNK ? left : IO_CHUNK);
				if (n > 0)
					in_off += (size_t)n;
				/* EPIPE: it does not want the rest; its exit status says why */
				if ((n > 0 && in_off == o->stdin_len) ||
				    (n < 0 && errno != EINTR && errno != EAGAIN))
					close_fd(&sp.in_fd);
			} else if (pfd[i].fd == sp.out_fd) {
				drain_once(&sp.out_fd, &res->out, &res->out_dropped);
			} else if (pfd[i].fd == sp.err_fd) {
				drain_once(&sp.err_fd, &res->err, &res->err_dropped);
			}
		}
	}
	pid = -1;
	drain_rest(&sp.out_fd, &res->out, &res->out_dropped);
	drain_rest(&sp.err_fd, &res->err, &res->err_dropped);
	res->seconds = (double)(sp_clock_ms() - sp.start) / 1000.0;
	if (WIFEXITED(status))
		res->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		res->term_signal = WTERMSIG(status);
	if (res->timed_out)
		rc = sp_error_set(err, SP_ETIMEOUT, "%s did not finish within %.1fs and was killed",
				  name, (double)o->timeout_ms / 1000.0);
	else if (res->cancelled)
		rc = sp_error_set(err, SP_ECANCELLED, "%s: interrupted", name);
out:
	if (pid > 0) {
		kill_group(pid);
		(void)sp_child_wait(pid, &status);
	}
	sp_child_spawn_end(&sp);
	return rc;
}

void sp_child_result_release(struct sp_child_result *res)
{
	if (!res)
		return;
	sp_buf_release(&res->out);
	sp_buf_release(&res->err);
	res->out_dropped = res->err_dropped = 0;
}

const char *sp_child_describe(const struct sp_child_result *res, char *buf, size_t len)
{
	if (res->timed_out)
		snprintf(buf, len, "was killed after its timeout");
	else if (res->cancelled)
		snprintf(buf, len, "was interrupted");
	else if (res->term_signal)
		snprintf(buf, len, "was killed by signal %d (%s)", res->term_signal,
			 strsignal(res->term_signal));
	else if (res->exit_code >= 0)
		snprintf(buf, len, "exited with status %d", res->exit_code);
	else
		snprintf(buf, len, "did not run");
	return buf;
}
