/*
 * runner.h — the interface between the executor and an execution backend.
 *
 * The executor (core/exec/executor.c) decides what runs, in which order, with
 * which deadline, and reports it as events; a runner knows how to build an
 * image, run a command in a container of it, tag, push and health-check
 * it on one particular backend.  runners/docker/ is the backend; another
 * (a remote builder, podman) is one more file implementing these ops.
 *
 * Output reaches the executor as lines through sp_runner_log_fn; the
 * runner never prints.  Every operation takes a cancel callback and stops
 * promptly, cleaning up after itself, when it fires.
 */
#ifndef SP_RUNNER_H
#define SP_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/cancel.h"
#include "core/base/lines.h"
#include "core/base/mask.h"
#include "core/pipeline/pipeline.h"

struct sp_error;

enum sp_log_stream {
	SP_STREAM_BUILD,   /* image build progress */
	SP_STREAM_STDOUT,  /* the stage's command */
	SP_STREAM_STDERR,
	SP_STREAM_INFO,    /* stagepipe's own notes (pushing, health) */
};

/* One line of output, without its '\n', NOT NUL-terminated; borrowed. */
typedef void (*sp_runner_log_fn)(void *ud, enum sp_log_stream stream,
				 const char *line, size_t len);

struct sp_build_kv {
	const char *name;
	const char *value;
};

struct sp_build_opts {
	const char *context_dir;           /* folder sent as the build context */
	const char *dockerfile;            /* path inside the context; NULL "Dockerfile" */
	const char *target;                /* Dockerfile stage; NULL: the last one */
	const char *const *tags;           /* image names to tag the result with */
	size_t ntags;
	const struct sp_build_kv *args;    /* build arguments (already expanded) */
	size_t nargs;
	const struct sp_build_kv *labels;  /* image labels (io.stagepipe.*) */
	size_t nlabels;
	enum sp_network network;
	bool no_cache;
	bool pull;
	/* images whose build cache may be reused (BuildKit imports their
	 * inline cache from their registry); expanded references */
	const char *const *cache_from;
	size_t ncache_from;
	sp_cancel_fn cancel;               /* SP_ECANCELLED when it fires */
	void *cancel_ud;
	sp_runner_log_fn log;              /* build progress lines; may be NULL */
	void *log_ud;
};

struct sp_build_result {
	char *image_id;        /* "sha256:…"; owned */
	unsigned long long context_files;
	unsigned long long context_bytes;
	double seconds;
};

void sp_build_result_release(struct sp_build_result *res);

struct sp_run_opts {
	const char *image;                 /* id or name */
	const char *const *cmd;            /* argv; NULL: the image's CMD */
	size_t ncmd;
	const char *const *env;            /* "NAME=value" */
	size_t nenv;
	const char *user;                  /* NULL: the image's */
	const char *workdir;               /* NULL: the image's */
	int64_t memory;                    /* bytes; 0: no limit */
	int64_t nano_cpus;                 /* 1e-9 CPUs; 0: no limit */
	enum sp_network network;
	const struct sp_build_kv *labels;
	size_t nlabels;
	/* A folder created (mode 1777) in the container before start and
	 * copied out to reports_dest after exit; NULL for none. */
	const char *reports_dir;
	const char *reports_dest;
	/*
	 * Artifacts: paths relative to the container's working folder (globs
	 * allowed, core/pipeline/artifact.h), copied out after the command
	 * ended, whatever its exit code, into artifacts_dest (an existing
	 * folder) under the same relative paths; at most artifacts_max_bytes
	 * of files in all (0: SP_ARTIFACTS_DEFAULT_MAX).  A path that is not
	 * there or a glob that matches nothing is one "warning:" line through
	 * log; so is a copy that fails or hits the cap (the run still
	 * succeeds: the command's result stands).  NULL/0: none.
	 */
	const char *const *artifacts;
	size_t nartifacts;
	const char *artifacts_dest;
	unsigned long long artifacts_max_bytes;
	sp_cancel_fn cancel;               /* kill + remove when it fires */
	void *cancel_ud;
	sp_runner_log_fn log;              /* the command's output, line by line */
	void *log_ud;
	/* The secrets in env (may be NULL): the runner masks the command's
	 * raw output with it before cutting it into lines (sp_runner_lines),
	 * so that a secret split across two reads is caught. */
	const struct sp_mask *mask;
	/* Services (sp_services_ops): a Docker NetworkMode that replaces
	 * network ("container:ID", a user network's name); NULL: network.
	 * alias: the container's name on that user network; extra_hosts:
	 * "name:address" lines for /etc/hosts. */
	const char *network_mode;
	const char *alias;
	const char *const *extra_hosts;
	size_t nextra_hosts;
};

struct sp_run_result {
	int exit_code;                     /* the command's exit status */
	bool oom_killed;
	unsigned long long output_bytes;
	bool reports_copied;               /* reports_dest holds what was there */
	unsigned long artifacts_entries;   /* files, folders and links copied */
	unsigned long long artifacts_bytes;
	unsigned artifacts_missing;        /* paths/globs that found nothing */
	unsigned artifacts_failed;         /* copies that failed (a warning each) */
};

/* Most bytes of artifacts a job keeps unless told otherwise. */
#define SP_ARTIFACTS_DEFAULT_MAX ((unsigned long long)1024 * 1024 * 1024)

struct sp_health_opts {
	const char *image;
	const char *const *env;            /* the stage's "NAME=value" */
	size_t nenv;
	const char *user;                  /* NULL: the image's */
	enum sp_network network;
	const struct sp_build_kv *labels;
	size_t nlabels;
	int port;                          /* 0: the image's HEALTHCHECK */
	const char *path;                  /* HTTP path for a port probe */
	int64_t timeout_ms;
	sp_cancel_fn cancel;
	void *cancel_ud;
	sp_runner_log_fn log;              /* progress and, on failure, the evidence */
	void *log_ud;
};

struct sp_push_opts {
	const char *ref;                   /* "registry:5000/team/app:tag" */
	sp_cancel_fn cancel;
	void *cancel_ud;
	sp_runner_log_fn log;              /* compact progress */
	void *log_ud;
};

struct sp_push_result {
	char *digest;                      /* "sha256:…"; owned */
	unsigned layers_pushed;
	unsigned layers_present;           /* already in the registry */
};

void sp_push_result_release(struct sp_push_result *res);

/*
 * A command's raw output (one stream) to sp_runner_log_fn lines: masked
 * with mask (may be NULL: no cost) as it arrives, then cut into lines of
 * at most max bytes (core/base/lines.h).  For runners.
 */
struct sp_runner_lines {
	struct sp_mask_stream mask;
	struct sp_lines lines;
	enum sp_log_stream stream;
	sp_runner_log_fn log;
	void *log_ud;
};

void sp_runner_lines_init(struct sp_runner_lines *l, const struct sp_mask *mask, size_t max,
			  enum sp_log_stream stream, sp_runner_log_fn log, void *log_ud);
void sp_runner_lines_feed(struct sp_runner_lines *l, const char *data, size_t len);
/* The end of the stream: what the masker held, then a last unfinished line. */
void sp_runner_lines_flush(struct sp_runner_lines *l);
void sp_runner_lines_release(struct sp_runner_lines *l);

struct sp_runner;

/* ---- services: containers a stage's command talks to ---- */

struct sp_service_spec {
	const char *name;                  /* its host name for the stage */
	const char *image;                 /* id or reference (pulled when absent) */
	const char *const *cmd;            /* NULL: the image's CMD */
	size_t ncmd;
	const char *const *env;            /* "NAME=value" */
	size_t nenv;
	int ready_port;                    /* ready once a TCP socket listens on it */
	const char *const *ready_cmd;      /* ready once this exits 0 inside it */
	size_t nready_cmd;
	int64_t ready_timeout_ms;          /* from its start */
};

enum sp_service_state {
	SP_SERVICE_STARTING,               /* detail: the image */
	SP_SERVICE_READY,                  /* detail: how it was seen ready */
	SP_SERVICE_FAILED,                 /* detail: why */
	SP_SERVICE_REMOVED,
};

const char *sp_service_state_name(enum sp_service_state s);

struct sp_services_opts {
	const struct sp_service_spec *services;
	size_t n;
	enum sp_network network;           /* the stage's (build.network) */
	const char *net_name;              /* for a per-job network, where there is one */
	const struct sp_build_kv *labels;  /* io.stagepipe.* on every container and network */
	size_t nlabels;
	const struct sp_mask *mask;        /* the job's secrets, for their output */
	sp_cancel_fn cancel;
	void *cancel_ud;
	void (*state)(void *ud, size_t i, enum sp_service_state st, const char *detail);
	void *state_ud;
	sp_runner_log_fn log;              /* stagepipe's own notes (pulls, removal) */
	void *log_ud;
};

struct sp_services;  /* a runner's running services */

struct sp_services_ops {
	/* Starts the services in order, then waits until each is ready.
	 * *out is set whenever anything was created, also on failure (for
	 * logs and down).  0: all ready; SP_EFAILED: one exited or did not
	 * get ready in time (*failed its index; err says why); SP_ECANCELLED;
	 * SP_EENGINE. */
	int (*up)(struct sp_runner *r, const struct sp_services_opts *o, struct sp_services **out,
		  size_t *failed, struct sp_error *err);
	/* The NetworkMode (sp_run_opts.network_mode) that reaches them. */
	const char *(*network_mode)(const struct sp_services *s);
	/* The last tail lines of service i's output, masked, to log. */
	int (*logs)(struct sp_runner *r, struct sp_services *s, size_t i, unsigned tail,
		    sp_runner_log_fn log, void *log_ud, struct sp_error *err);
	/* Removes every container and the network, whatever a pending
	 * signal says; frees s.  Returns < 0 when something was left. */
	int (*down)(struct sp_runner *r, struct sp_services *s, struct sp_error *err);
};

struct sp_runner_ops {
	const char *name;
	int (*build)(struct sp_runner *r, const struct sp_build_opts *o,
		     struct sp_build_result *res, struct sp_error *err);
	/* Runs a command to completion.  Returns 0 when it ran (whatever its
	 * exit code), SP_EFAILED when it could not start (no such program in
	 * the image), SP_ECANCELLED when cancel fired, SP_EENGINE etc. */
	int (*run)(struct sp_runner *r, const struct sp_run_opts *o,
		   struct sp_run_result *res, struct sp_error *err);
	/* Starts a container of the image and waits for it to be healthy.
	 * 0 healthy; SP_EFAILED unhealthy, exited or timed out (err says
	 * why, with the probe's output); SP_ECANCELLED; SP_EENGINE. */
	int (*health)(struct sp_runner *r, const struct sp_health_opts *o, struct sp_error *err);
	/* Gives the image the name ref ("reg:5000/team/app:v1") on the backend. */
	int (*tag)(struct sp_runner *r, const char *image, const char *ref, struct sp_error *err);
	/* Pushes ref (already tagged locally).  SP_EENGINE for registry
	 * and engine errors (never showing a password). */
	int (*push)(struct sp_runner *r, const struct sp_push_opts *o,
		    struct sp_push_result *res, struct sp_error *err);
	void (*free)(struct sp_runner *r);
	/*
	 * A runner is used from one thread at a time.  A new runner of the
	 * same backend and settings with its own connection, for another
	 * thread (a stage running concurrently); the caller owns it (its
	 * ops->free) and frees it before r.  Never NULL.  NULL op: the
	 * backend cannot run two things at once (stages then run one by one).
	 */
	struct sp_runner *(*sibling)(struct sp_runner *r);
};

struct sp_runner {
	const struct sp_runner_ops *ops;
	const struct sp_services_ops *services;  /* NULL: no services on this backend */
};

#endif
