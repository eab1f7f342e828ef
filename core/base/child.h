/*
 * child.h — the one place stagepipe starts a child process.
 *
 * stagepipe talks to Docker over its API and never runs the docker CLI;
 * the few programs it does run (registry credential helpers,
 * docker-credential-<name>) go through sp_child_run, and the server's and
 * the agent's jobs (`stagepipe run` children, core/server/jobrun.c)
 * through sp_child_spawn under it.  Both do what a
 * careful daemon does (tmux's job.c, git's run-command.c):
 *
 *   - the program is looked up in a PATH the caller gives (so tests can
 *     inject one) before anything is started, and a missing program is
 *     SP_ENOTFOUND naming it;
 *   - fork happens with every signal blocked, so no handler of ours runs
 *     in the child; the child puts every signal back to its default
 *     disposition (SIGPIPE is ignored in stagepipe, a child must not
 *     inherit that), empties its signal mask, becomes leader of its own
 *     process group, closes every descriptor above 2 (closefrom) and
 *     execs; an exec failure is reported to the parent through a
 *     close-on-exec pipe and the child leaves with _exit(127);
 *   - stdin is written from the caller's buffer, stdout and stderr are
 *     captured up to a cap (past it bytes are counted and dropped, never
 *     left in the pipe, so a chatty child cannot block); writing to a
 *     child that stopped reading is EPIPE, never a SIGPIPE;
 *   - a timeout or the cancel callback kills the whole process group
 *     (SIGKILL), so a shell script's own children go too.
 *
 * Every descriptor sp_child_run opens is closed before it returns; the
 * caller's descriptors are not touched.  It is safe to call from several
 * threads at once (it changes only the calling thread's signal mask, and
 * restores it).
 */
#ifndef SP_CHILD_H
#define SP_CHILD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/base/buf.h"
#include "core/base/cancel.h"

struct sp_error;

/* Default cap for captured stdout/stderr when the caller gives 0. */
#define SP_CHILD_DEFAULT_CAP (1024 * 1024)
/* PATH used to find a program when the caller gives none. */
#define SP_CHILD_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct sp_child_opts {
	/*
	 * argv[0] is the program: a path when it holds a '/', else a name
	 * looked up in `path`.  NULL-terminated; borrowed.
	 */
	const char *const *argv;
	/* PATH for the lookup (":"-separated; an empty entry is "."); NULL:
	 * SP_CHILD_DEFAULT_PATH.  Only used to find argv[0]. */
	const char *path;
	/* The child's environment ("NAME=value", NULL-terminated); NULL:
	 * this process's own environment. */
	const char *const *envp;
	/* Bytes written to the child's stdin, which is then closed; with
	 * NULL stdin is /dev/null. */
	const char *stdin_data;
	size_t stdin_len;
	size_t stdout_cap;  /* 0: SP_CHILD_DEFAULT_CAP */
	size_t stderr_cap;  /* 0: SP_CHILD_DEFAULT_CAP */
	long timeout_ms;    /* 0: none; else SIGKILL to the group after this */
	sp_cancel_fn cancel;  /* polled every 50 ms: non-zero kills it; may be NULL */
	void *cancel_ud;
};

#define SP_CHILD_OPTS_INIT { NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL }

struct sp_child_result {
	int exit_code;       /* exit status when the child exited, else -1 */
	int term_signal;     /* signal that ended it (SIGKILL after a timeout), else 0 */
	bool timed_out;      /* killed because timeout_ms passed */
	bool cancelled;      /* killed because cancel said so */
	struct sp_buf out;   /* captured stdout (at most stdout_cap bytes) */
	struct sp_buf err;   /* captured stderr (at most stderr_cap bytes) */
	size_t out_dropped;  /* stdout bytes past the cap, read and dropped */
	size_t err_dropped;
	double seconds;      /* wall time from start to reaping */
};

/*
 * Runs o->argv to completion.  res is always initialised (release it
 * with sp_child_result_release, even after an error).
 *
 * Returns 0 when the child ran and was reaped, whatever its exit status
 * (look at res->exit_code / res->term_signal).  Errors:
 *   SP_ENOTFOUND   the program is not in PATH or does not exist
 *                  (nothing ran);
 *   SP_ETIMEOUT    the timeout killed it (res holds what it printed);
 *   SP_ECANCELLED  cancel killed it;
 *   SP_ERROR       it could not be started (not executable, out of
 *                  processes or descriptors...).
 * Messages name the program (argv[0]) but never its other arguments,
 * stdin or output, which may hold secrets.
 */
int sp_child_run(const struct sp_child_opts *o, struct sp_child_result *res,
		 struct sp_error *err);

/* Frees the captured output; res is then as after a failed start. */
void sp_child_result_release(struct sp_child_result *res);

/*
 * "exited with status 3", "was killed by signal 9 (Killed)": how the
 * child ended, into buf (always NUL-terminated); returns buf.
 */
const char *sp_child_describe(const struct sp_child_result *res, char *buf, size_t len);

/*
 * The start on its own, for a caller that watches the child its own way
 * (a job: `stagepipe run` for hours, read line by line, answered on its
 * stdin).  sp_child_run is built on it.
 */
struct sp_spawn_opts {
	const char *const *argv;  /* as in sp_child_opts; borrowed */
	const char *path;         /* as in sp_child_opts */
	const char *const *envp;  /* as in sp_child_opts */
	const char *name;         /* for messages ("the job"); NULL: argv[0] */
	bool stdin_pipe;          /* a pipe for its stdin (else /dev/null) */
	/* PR_SET_PDEATHSIG(SIGTERM): when the thread that started it dies, it
	 * is told to stop (and it is not started at all when the parent is
	 * gone by the time it runs) */
	bool die_with_parent;
};

struct sp_spawn {
	pid_t pid;      /* the child, leader of its own process group; -1: none */
	int in_fd;      /* write end of its stdin (stdin_pipe, non-blocking), else -1 */
	int out_fd;     /* read end of its stdout */
	int err_fd;     /* read end of its stderr */
	int64_t start;  /* sp_clock_ms() at the fork */
	/* the calling thread's signal mask, put back by sp_child_spawn_end */
	sigset_t old_mask;
	bool mask_set, sigpipe_pending_before;
};

/*
 * Starts o->argv as sp_child_run does (program found first, every signal
 * blocked over the fork, defaults and an empty mask in the child, its own
 * process group, descriptors above 2 closed, an exec failure reported
 * back).  On 0, sp is the caller's: its descriptors are close-on-exec,
 * SIGPIPE stays blocked in the calling thread (a write to a child that
 * went away is EPIPE) until sp_child_spawn_end, which must then be called
 * from the same thread once the child is reaped (or killed and reaped).
 * Errors as sp_child_run's before anything ran (SP_ENOTFOUND, SP_ERROR);
 * sp is then already ended.
 */
int sp_child_spawn(const struct sp_spawn_opts *o, struct sp_spawn *sp, struct sp_error *err);

/*
 * Closes the descriptors sp still holds, consumes a SIGPIPE the child
 * caused, and puts the thread's signal mask back.  Does not touch the
 * process: reap it first.  Safe on an ended or failed sp.
 */
void sp_child_spawn_end(struct sp_spawn *sp);

/* Waits for pid (EINTR retried); 0 once reaped. */
int sp_child_wait(pid_t pid, int *status);

/*
 * Finds program in path (see sp_child_opts.path) as sp_child_run does.
 * On success *out is a new string (the caller frees it).  Returns 0 or
 * SP_ENOTFOUND.
 */
int sp_child_which(char **out, const char *program, const char *path, struct sp_error *err);

#endif
