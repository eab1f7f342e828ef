/*
 * container.h — containers through the Engine API: create, start, follow
 * the logs, wait, copy files in and out, kill, remove, list by label.
 *
 * Thin, one request each; runners/docker/runner.c strings them together
 * into "run this command and clean up whatever happens".
 */
#ifndef SP_DOCKER_CONTAINER_H
#define SP_DOCKER_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/report/untar.h"
#include "runners/docker/engine.h"
#include "runners/runner.h"

struct sp_error;

/*
 * Creates a container for o (image, cmd, env, user, workdir, network,
 * labels; never a host mount or the Docker socket).  *id is a new string
 * the caller frees.  SP_ENOTFOUND when the image does not exist,
 * SP_EFAILED when the engine refused the settings (4xx).
 */
int sp_container_create(struct sp_engine *e, const struct sp_run_opts *o, char **id,
			struct sp_error *err);

/* Creates folder name (mode 1777) inside parent (which must exist) before start. */
int sp_container_mkdir(struct sp_engine *e, const char *id, const char *parent,
		       const char *name, struct sp_error *err);

/* SP_EFAILED when the command cannot be started (not in the image). */
int sp_container_start(struct sp_engine *e, const char *id, struct sp_error *err);

/*
 * Follows stdout and stderr from the start until the container exits,
 * handing complete lines to log (long lines are cut at 64 KiB pieces),
 * with the secrets of mask (may be NULL) masked in the raw stream first.
 * *bytes (may be NULL) counts the output.  SP_ECANCELLED when cancel fires.
 */
int sp_container_logs(struct sp_engine *e, const char *id, sp_runner_log_fn log, void *log_ud,
		      const struct sp_mask *mask, sp_cancel_fn cancel, void *cancel_ud,
		      unsigned long long *bytes, struct sp_error *err);

/* Waits until the container is not running; its exit code and OOM flag.
 * SP_ECANCELLED when cancel (may be NULL) fires first. */
int sp_container_wait(struct sp_engine *e, const char *id, int *exit_code, bool *oom_killed,
		      sp_cancel_fn cancel, void *cancel_ud, struct sp_error *err);

/* Most bytes sp_container_copy_out accepts (the reports of a test run). */
#define SP_CONTAINER_COPY_MAX ((unsigned long long)256 * 1024 * 1024)

/* Copies folder path out of the container into dest (created), its contents
 * only, refusing absolute paths, ".." and links that escape, and more than
 * SP_CONTAINER_COPY_MAX bytes; streamed like sp_container_extract.
 * SP_ECANCELLED when cancel (may be NULL) fires. */
int sp_container_copy_out(struct sp_engine *e, const char *id, const char *path,
			  const char *dest, sp_cancel_fn cancel, void *cancel_ud,
			  struct sp_error *err);

/*
 * Streams the archive of path (absolute, inside the container; works on a
 * stopped one) into the safe extractor (core/report/untar.h) with opts
 * (strip_first, caps, filter), writing under dest (must exist).  The
 * response is handed over through a socket pair to a thread that
 * extracts while the bytes arrive: nothing the size of the archive is
 * held in memory or on disk.  stats (may be NULL) gets what was written.
 * Returns 0; SP_ENOTFOUND when path does not exist in the container;
 * SP_ETOOBIG past a cap; SP_ECANCELLED; SP_ERROR for a refused entry;
 * SP_EENGINE.
 */
int sp_container_extract(struct sp_engine *e, const char *id, const char *path,
			 const char *dest, const struct sp_untar_opts *opts,
			 sp_cancel_fn cancel, void *cancel_ud, struct sp_untar_stats *stats,
			 struct sp_error *err);

struct sp_container_state {
	bool running;
	int exit_code;
	bool has_health;          /* the image has a HEALTHCHECK */
	char health[16];          /* "starting", "healthy", "unhealthy" */
	char *health_log;         /* the last probes' output, newest last; owned */
	char *ip;                 /* the container's address on its network; owned, may be "" */
	char *workdir;            /* Config.WorkingDir; owned, "" when the image sets none */
	/* The HEALTHCHECK's command as an argv (CMD as written, CMD-SHELL
	 * through /bin/sh -c); NULL-terminated, owned; NULL without one. */
	char **health_cmd;
	size_t nhealth_cmd;
	int64_t health_timeout_ms; /* its Timeout; 0: Docker's default (30 s) */
};

/* Reads the container's state; release with sp_container_state_release. */
int sp_container_inspect(struct sp_engine *e, const char *id, struct sp_container_state *st,
			 struct sp_error *err);
void sp_container_state_release(struct sp_container_state *st);

/* The last `tail` lines of the container's output (both streams) to log. */
int sp_container_tail(struct sp_engine *e, const char *id, unsigned tail, sp_runner_log_fn log,
		      void *log_ud, struct sp_error *err);

/* The same, with the secrets of mask (may be NULL) masked first. */
int sp_container_tail_masked(struct sp_engine *e, const char *id, unsigned tail,
			     const struct sp_mask *mask, sp_runner_log_fn log, void *log_ud,
			     struct sp_error *err);

/*
 * Runs cmd in the running container through the exec API (detached, no
 * output kept) and waits up to limit_ms for it to finish: 0 and its exit
 * status in *exit_code; SP_ETIMEOUT when it still runs (it is left to
 * finish by itself, inside the container); SP_EENGINE etc.
 */
int sp_container_exec(struct sp_engine *e, const char *id, const char *const *cmd, size_t ncmd,
		      int64_t limit_ms, int *exit_code, struct sp_error *err);

/* Creates a user-defined bridge network with labels. */
int sp_container_network_create(struct sp_engine *e, const char *name, const struct sp_build_kv *labels,
		      size_t nlabels, struct sp_error *err);
/* Removes a network; gone is fine. */
int sp_container_network_remove(struct sp_engine *e, const char *name, struct sp_error *err);

/* SIGKILL; a container already gone or stopped is not an error. */
int sp_container_kill(struct sp_engine *e, const char *id, struct sp_error *err);

/* Force-removes the container and its anonymous volumes; gone is fine. */
int sp_container_remove(struct sp_engine *e, const char *id, struct sp_error *err);

/* One container of a listing; every string borrowed, "" when absent. */
struct sp_container_summary {
	const char *id;
	const char *name;
	const char *state;   /* "running", "exited", ... */
	const char *job;     /* label io.stagepipe.job */
	const char *owner;   /* label io.stagepipe.owner: "host:pid" of the run */
	const char *agent;   /* label io.stagepipe.agent: the agent that ran it */
};

/* Called for each container carrying label (any value; "name=value" for
 * that value only); return < 0 to stop. */
typedef int (*sp_container_each_fn)(void *ud, const struct sp_container_summary *c);

int sp_container_list_labelled(struct sp_engine *e, const char *label,
			       sp_container_each_fn fn, void *ud, struct sp_error *err);

/* The same for networks (a stage's services' network): state is "". */
int sp_container_network_list(struct sp_engine *e, const char *label, sp_container_each_fn fn,
			     void *ud, struct sp_error *err);

/*
 * Might the run that created c (label io.stagepipe.owner "host:pid") still
 * be going?  A run of this machine (host: its gethostname) is asked
 * directly (kill(pid, 0); this process never counts); for one of another
 * machine (an engine shared over tcp://) or without the label we cannot
 * know, so a container that still runs counts as alive and one that
 * exited does not.  For prune and an agent's cleanup at start.
 */
bool sp_container_owner_alive(const struct sp_container_summary *c, const char *host);

#endif
