/*
 * pipeline.h — the pipeline file (v1): model and loader.
 *
 * A pipeline file is YAML (see README.md, "The pipeline file").  The loader
 * checks everything that can be checked without running anything — types,
 * unknown keys (with "did you mean"), required keys, stage names, needs
 * (unknown stages, cycles), durations, coverage bounds, variable names and
 * image references — and reports each problem with its line and column.
 *
 * Strings that may hold ${...} variables (tags, env, build args) are kept
 * as written, with their position; they are expanded per job with
 * sp_vars_expand() when the commit is known.
 */
#ifndef SP_PIPELINE_H
#define SP_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/yaml/diag.h"

struct sp_error;
struct sp_vars;

/* Largest pipeline file read, in bytes. */
#define SP_PIPELINE_MAX_FILE (4 * 1024 * 1024)
/* Timeout of a stage that sets none. */
#define SP_STAGE_DEFAULT_TIMEOUT_MS ((int64_t)60 * 60 * 1000)
/* Most variants one matrix stage expands to, and most stages a pipeline
 * with a matrix may expand to in all (serve keeps at most 256 per job). */
#define SP_MATRIX_MAX_VARIANTS 64
#define SP_PIPELINE_MAX_STAGES 256
/* Longest variant name, e.g. "test[3.11,postgres]" (serve's limit). */
#define SP_STAGE_NAME_MAX 100
/* How long a health check waits for "healthy" unless told otherwise. */
#define SP_HEALTH_DEFAULT_TIMEOUT_MS ((int64_t)60 * 1000)

struct sp_pos {
	int line, col;  /* 1-based; 0 when not from the file */
};

/* A string from the file and where it was written. */
struct sp_pstr {
	char *s;
	struct sp_pos pos;
};

/* NAME: value, with the position of the value. */
struct sp_pvar {
	char *name;
	char *value;
	struct sp_pos pos;
};

struct sp_strlist {
	struct sp_pstr *items;
	size_t n;
};

struct sp_varlist {
	struct sp_pvar *items;
	size_t n;
};

enum sp_stage_kind {
	SP_STAGE_BUILD,   /* only build the target (e.g. promote) */
	SP_STAGE_PYTEST,  /* PYTHON -m pytest ARGS in a container of the target */
	SP_STAGE_RUN,     /* a command in a container of the target */
};

enum sp_network {
	SP_NETWORK_DEFAULT,
	SP_NETWORK_HOST,
	SP_NETWORK_NONE,
};

struct sp_healthcheck {
	bool enabled;
	int port;            /* 0: use the image's HEALTHCHECK */
	char *path;          /* HTTP path when port is set; "/health" by default */
	int64_t timeout_ms;
};

/* How long a service may take to be ready unless told otherwise. */
#define SP_SERVICE_DEFAULT_READY_MS ((int64_t)60 * 1000)

/*
 * A service of a stage (services:): a container started before the stage's
 * command, reachable from it by name, removed after it.  See README.md,
 * "Services".  Strings may hold ${...} variables (expanded per job).
 */
struct sp_service {
	char *name;                 /* host name: [a-z0-9][a-z0-9-]*, at most 63 */
	struct sp_pos pos;          /* of the service's mapping */
	struct sp_pstr image;       /* an image reference, or s NULL ... */
	char *target;               /* ... a Dockerfile target of the pipeline's build */
	struct sp_varlist env;
	struct sp_strlist command;  /* empty: the image's CMD */
	bool command_shell;         /* command given as one string: sh -c */
	int ready_port;             /* ready once something listens on it (TCP); 0: no */
	struct sp_strlist ready_cmd;/* ready once this exits 0 in the service */
	int64_t ready_timeout_ms;
};

struct sp_stage {
	/*
	 * A stage with matrix: is expanded by the loader into one sp_stage per
	 * combination of values (cartesian product, last key fastest), each a
	 * full stage of its own: name is the variant's, "test[3.11]" or
	 * "test[3.11,postgres]" (values in key order as written); group is the
	 * name as written ("test"), shared by the variants; matrix holds this
	 * variant's KEY: value pairs (position: the value in the file), given
	 * to its build as build arguments (over build.args of the same name)
	 * and to its fields as ${matrix.KEY}.  Without matrix: group equals
	 * name and matrix is empty.  needs naming a group lists every variant
	 * (needs.items then hold the variant names, in order).
	 */
	char *name;
	char *group;
	struct sp_varlist matrix;
	struct sp_pos pos;          /* of the stage's mapping */
	char *target;               /* Dockerfile target */
	enum sp_stage_kind kind;
	struct sp_strlist args;     /* pytest arguments, or the run command */
	bool run_shell;             /* run: given as one string, run with sh -c */
	bool allow_no_tests;        /* pytest exit 5 (no tests collected) passes */
	bool has_coverage_min;
	double coverage_min;        /* percent, 0..100 */
	int64_t timeout_ms;
	struct sp_varlist env;
	char *user;                 /* container user; NULL: the image's */
	char *workdir;              /* container working dir; NULL: the image's */
	/* pytest stages: the interpreter (a name looked up on the container's
	 * PATH, or an absolute path); NULL: python, else python3
	 * (core/exec/python.h) */
	char *python;
	int64_t memory;             /* container memory limit in bytes; 0: none */
	int64_t nano_cpus;          /* CPU limit in 1e-9 CPUs; 0: none */
	struct sp_strlist needs;
	size_t *needs_idx;          /* indexes into sp_pipeline.stages */
	struct sp_strlist tags;
	bool push;
	struct sp_healthcheck health;
	/*
	 * artifacts: paths relative to the container's working folder (globs
	 * allowed; core/pipeline/artifact.h), copied out of a pytest or run
	 * stage's container after its command ran, passed or failed.  No
	 * variables.  Checked by the loader: relative, no "..".
	 */
	struct sp_strlist artifacts;
	struct sp_service *services;  /* services: (pytest and run stages) */
	size_t nservices;
};

/* One "on:" trigger; no patterns means every branch (or tag). */
struct sp_trigger {
	bool enabled;
	struct sp_strlist patterns;
};

struct sp_pipeline {
	char *file;                 /* as given to the loader */
	char *name;
	int version;
	struct {
		char *context;          /* relative to the source root; "." default */
		char *dockerfile;       /* relative to the context; "Dockerfile" default */
		struct sp_varlist args;
		struct sp_pstr network;  /* default|host|none, may use ${env.X:-...} */
		bool no_cache;
		bool pull;
		/* images whose inline build cache BuildKit may reuse (the
		 * engine pulls what it needs from their registry); may use
		 * ${...}, checked as image references with sample values */
		struct sp_strlist cache_from;
	} build;
	struct {
		bool submodules;        /* check submodules out (run --repo, serve) */
	} checkout;
	struct sp_stage *stages;    /* in file order */
	size_t nstages;
	size_t *order;              /* stage indexes in run order (needs first) */
	struct {
		/* false when the file has no on: section: serve and agents then
		 * build every push, tag and pull request */
		bool present;
		struct sp_trigger push, tag, pull_request;
	} on;
	/*
	 * runs_on: labels a runner must have to run this pipeline (serve's
	 * worker_labels, an agent's --labels); each [a-z0-9._-]{1,63}.
	 * Empty: any runner.  Ignored by a plain `stagepipe run`.
	 */
	struct sp_strlist runs_on;
	/*
	 * secrets: names of environment variables whose values are secrets
	 * (`run`: stagepipe's environment; serve/agent: the repository's
	 * secrets in the server config).  Each is given to every test
	 * container (pytest and run stages) as an environment variable of
	 * the same name, never to builds, and masked in all output
	 * (core/base/mask.h).  Names are checked like env names, unique, and
	 * not STAGEPIPE_*; build args may not use them (the loader says so).
	 */
	struct sp_strlist secrets;
};

/*
 * A runner label (runs_on, an agent's --labels, a repository's labels, the
 * server's worker_labels): 1 to 63 of [a-z0-9._-].
 */
bool sp_label_valid(const char *s);

/*
 * Loads and checks a pipeline.  On success *out is a new pipeline the
 * caller frees with sp_pipeline_free.  On failure returns SP_ECONFIG with
 * every problem found in diags (positions in the file; a missing or
 * unreadable file has line 0), and *out is NULL.
 *
 * env (may be NULL) supplies environment values used only to check that
 * tags are valid image references once variables are filled in; unset
 * variables get sample values there.
 */
int sp_pipeline_load_file(struct sp_pipeline **out, const char *path,
			  const struct sp_vars *env, struct sp_diags *diags);
int sp_pipeline_load_buffer(struct sp_pipeline **out, const char *name,
			    const char *data, size_t len,
			    const struct sp_vars *env, struct sp_diags *diags);

void sp_pipeline_free(struct sp_pipeline *p);

/*
 * The stage named name (borrowed), or NULL.  A matrix stage's group name
 * ("test") gives its first variant; see sp_stage_selected for all.
 */
const struct sp_stage *sp_pipeline_stage(const struct sp_pipeline *p, const char *name);

/* Whether name selects st: its own name, or its group (every variant). */
bool sp_stage_selected(const struct sp_stage *st, const char *name);

const char *sp_network_name(enum sp_network n);

/*
 * Whether the pipeline's on: rules build an event (serve and agent; plain
 * `run` ignores on:).  event is "push" (name: the branch), "tag" (name:
 * the tag), "pull_request" (name: the target branch) or "manual" (always
 * built; name unused).  A name may also be written as a full ref
 * ("refs/heads/main", "refs/tags/v1").  A trigger that is off (or absent)
 * builds nothing; one without patterns builds every name; patterns are
 * shell globs matched with fnmatch(3) without flags, so a star also
 * matches a slash: "release/" followed by a star matches "release/1.0"
 * and "release/a/b".  Pure: no I/O.
 *
 * why (may be NULL) receives one line saying why, e.g.
 * `on.push does not list branch "dev"` or `on.push matches branch "main"
 * ("main")`.
 * An unknown event is not built ("unknown event ...").
 */
bool sp_pipeline_on_match(const struct sp_pipeline *p, const char *event, const char *name,
			  char *why, size_t whylen);

/* Whether a pytest stage's arguments turn coverage on (--cov, --cov=PKG). */
bool sp_stage_measures_coverage(const struct sp_stage *st);

/*
 * Expands the variables of s, a value read from p's file at pos.  On
 * success *out is a new string the caller frees.  Errors are SP_ECONFIG
 * with a "FILE:LINE:COL: message" text in err.
 */
int sp_pipeline_expand(const struct sp_pipeline *p, const char *s, struct sp_pos pos,
		       const struct sp_vars *vars, char **out, struct sp_error *err);

/*
 * The build network with variables filled in from vars.  Returns 0, or
 * SP_ECONFIG when the result is not default, host or none.
 */
int sp_pipeline_network(const struct sp_pipeline *p, const struct sp_vars *vars,
			enum sp_network *out, struct sp_error *err);

#endif
