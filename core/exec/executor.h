/*
 * executor.h — run a pipeline's stages in order, with deadlines, gates
 * and cancel, reporting everything as events.
 *
 * For each selected stage in dependency order (up to o->jobs of them at
 * once, see sched.h): skip it when a stage it
 * needs did not pass; otherwise build its target, run its command (pytest
 * with stagepipe's own report options, or run:), read the reports, apply
 * the gates (exit code, coverage.min), and record the result.  Variables
 * are expanded for every selected stage before anything runs, so a
 * missing value fails the job before the first build.
 *
 * See docs/job-lifecycle.md.
 */
#ifndef SP_EXECUTOR_H
#define SP_EXECUTOR_H

#include <stdbool.h>

#include "core/base/cancel.h"
#include "core/exec/events.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"
#include "runners/runner.h"

struct sp_error;

/* Where the pytest reports live inside the test container. */
#define SP_REPORTS_DIR "/tmp/stagepipe-reports"

/*
 * The promote permit (see docs/job-lifecycle.md): asked once for each
 * stage that has tags, after its command, gates and health check passed
 * and before anything is tagged or pushed.  stage is the stage's name;
 * cancel(cancel_ud) is the stage's own check (a signal or its timeout),
 * to be polled while waiting for an answer.  Returns 0 to grant;
 * SP_ECANCELLED when cancel fired; any other negative code refuses, with
 * one line in reason[0..len) saying why (NUL-terminated).
 */
typedef int (*sp_promote_permit_fn)(void *ud, const char *stage, sp_cancel_fn cancel,
				    void *cancel_ud, char *reason, size_t len);

struct sp_exec_opts {
	const struct sp_pipeline *pipeline;
	const struct sp_vars *vars;     /* GIT_*, PIPELINE, env; STAGE is set per stage */
	const char *source_root;        /* build.context is relative to it */
	const char *work_dir;           /* an existing folder for this job's files */
	const char *job_id;             /* io.stagepipe.job label value */
	const char *owner;              /* io.stagepipe.owner: "host:pid", for prune */
	const char *agent;              /* io.stagepipe.agent: the agent running the job
					 * (NULL: none), for its cleanup at start */
	const char *only_stage;         /* NULL, or run this stage and what it needs */
	bool no_push;
	struct sp_runner *runner;
	struct sp_events *events;
	sp_cancel_fn cancel;            /* Ctrl-C */
	void *cancel_ud;
	/* NULL: every promotion is granted (plain `stagepipe run`); a job of
	 * serve or agent asks its parent (run --permit-stdin) */
	sp_promote_permit_fn promote_permit;
	void *promote_ud;
	/* The pipeline's secrets as "NAME=value" (borrowed), given to every
	 * test container (pytest and run:), never to builds or the health
	 * check; NULL when none. */
	const char *const *secret_env;
	size_t nsecret_env;
	/* Their values (borrowed; NULL: none): the containers' raw output and
	 * the reports copied out of them are masked with it (the events are
	 * masked by o->events' own mask). */
	const struct sp_mask *mask;
	/* Where stages' artifacts go: DIR/<stage>/<path> (created as
	 * needed); NULL: artifacts are not copied (one note says so).
	 * artifacts_max_bytes caps the whole job's, all stages together (0:
	 * SP_ARTIFACTS_DEFAULT_MAX); past it, a warning and no more.  Stages
	 * in flight together may each use what was left when they started,
	 * so the job's total can pass the cap by what they copy at once. */
	const char *artifacts_dir;
	unsigned long long artifacts_max_bytes;
	/*
	 * At most this many stages in flight at once (core/exec/sched.h):
	 * those whose needs passed run concurrently, and a stage whose needs
	 * are still running builds its image ahead of them, tagged and pushed
	 * only once they passed.  Each stage in flight then has its own
	 * runner (runner->ops->sibling, freed when the stage ends); o->runner
	 * itself is only used from the calling thread.  0 or 1: one stage at
	 * a time in the pipeline's order, as does a runner without sibling.
	 */
	unsigned jobs;
};

/* The pipeline's build section with variables filled in, for one job. */
struct sp_build_settings {
	struct sp_build_kv *args;   /* name/value pairs; values point into values[] */
	char **values;
	size_t nargs;
	enum sp_network network;
	char *context_dir;          /* build.context under the source root */
	char **cache_from;          /* build.cache_from, expanded */
	size_t ncache_from;
};

/* The build argument that makes BuildKit export its inline cache with an
 * image; given to the builds of stages that push (unless build.args sets
 * it), so that another machine can use the pushed image as cache_from. */
#define SP_INLINE_CACHE_ARG "BUILDKIT_INLINE_CACHE"

/*
 * Expands p's build args, network and cache_from with vars and places the context
 * under source_root.  On success out holds new strings (release with
 * sp_build_settings_release); SP_ECONFIG "FILE:LINE:COL: ..." otherwise.
 */
int sp_build_settings_expand(struct sp_build_settings *out, const struct sp_pipeline *p,
			     const char *source_root, const struct sp_vars *vars,
			     struct sp_error *err);
void sp_build_settings_release(struct sp_build_settings *s);

/*
 * Puts a matrix variant's values over s's build args (`stagepipe build
 * --stage 'test[3.11]'`): a key of st's matrix replaces the build arg of
 * its name, or is added.  Nothing for a stage without matrix.
 */
void sp_build_settings_add_matrix(struct sp_build_settings *s, const struct sp_stage *st);

/*
 * Runs the pipeline.  Returns 0 when every selected stage passed;
 * SP_EFAILED when one failed (its report says why); SP_ECANCELLED when
 * interrupted; SP_EENGINE for an infrastructure error; SP_ECONFIG when a
 * variable has no value.  err holds the message for the non-zero cases.
 */
int sp_executor_run(const struct sp_exec_opts *o, struct sp_error *err);

/*
 * A job whose pipeline's on: rules exclude its event: nothing is built.
 * Emits pipeline_started, then pipeline_finished with result skipped,
 * seconds 0 and message why, every stage's report skipped with the same
 * message (no stage events).  Uses only o->pipeline, o->job_id and
 * o->events.
 */
void sp_executor_skip(const struct sp_exec_opts *o, const char *why);

/* pytest's exit status in words ("tests failed", "no tests collected"). */
const char *sp_executor_pytest_status(int code);

#endif
