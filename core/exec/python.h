/*
 * python.h — which interpreter runs a pytest stage.
 *
 * A pytest stage runs `INTERPRETER -m pytest ARGS`.  The interpreter is
 * the stage's `python:` when set; otherwise `python`, else `python3`,
 * each looked up on the container's own PATH (the image's ENV PATH, or
 * the stage's env PATH) by the engine itself, exactly as it will look
 * up the test command: a venv first on PATH wins.
 *
 * Before the tests, a probe runs in a container of the image with the
 * stage's env, user and workdir (no secrets, no network):
 * `CANDIDATE -c SCRIPT`, where SCRIPT prints lines
 * "stagepipe-probe: KEY=VALUE" (executable, version, pytest,
 * pytest_cov, path).  A candidate that cannot be started (not on PATH,
 * not executable), or a `python` that is Python 2, makes way for the next.  The probe finds pytest and
 * pytest-cov without importing them (importlib.util.find_spec), so it
 * costs one interpreter start.  A stage whose image lacks Python, or
 * pytest, or pytest-cov while the stage asks for --cov, fails with one
 * line naming the image and what was looked for, before any test runs.
 *
 * The parsing and the messages are pure (unit-tested); sp_python_find
 * drives a runner.
 */
#ifndef SP_EXEC_PYTHON_H
#define SP_EXEC_PYTHON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/pipeline/pipeline.h"
#include "runners/runner.h"

struct sp_error;

/* Prefix of the probe's lines. */
#define SP_PYTHON_PROBE_MARK "stagepipe-probe: "

/* The probe script, for `INTERPRETER -c` (Python 2.7 and 3.x). */
extern const char sp_python_probe_script[];

/* What the probe said.  Strings owned; NULL when not said. */
struct sp_python_info {
	bool seen;             /* at least one probe line arrived */
	char *executable;      /* sys.executable: "/opt/venv/bin/python" */
	char *version;         /* "3.11.2" */
	char *pytest;          /* pytest's version, "?" when unknown; NULL: not importable */
	char *pytest_cov;      /* the same for pytest-cov (module pytest_cov) */
	char *path;            /* the container's PATH */
	bool cached;           /* known from an earlier probe (pycache.h), none ran */
};

#define SP_PYTHON_INFO_INIT { false, NULL, NULL, NULL, NULL, NULL, false }

void sp_python_info_release(struct sp_python_info *info);

/*
 * Reads one line of the probe's output (len bytes, no '\n').  Lines
 * without the mark (a sitecustomize printing) are ignored.
 */
void sp_python_info_feed(struct sp_python_info *info, const char *line, size_t len);

/*
 * The interpreters to try for st, in order, into out (borrowed strings);
 * returns how many (1: the stage's python:, 2: python then python3).
 */
size_t sp_python_candidates(const struct sp_stage *st, const char *out[2]);

/*
 * "the image of target "testing" (sha256:0123456789ab)": how messages
 * name an image.  A new string the caller frees.
 */
char *sp_python_image_name(const char *target, const char *image_id);

/*
 * Checks what the probe of candidate found for stage st (image: from
 * sp_python_image_name).  0 when the stage can run; SP_EFAILED with one
 * line in err when the interpreter cannot import pytest, or pytest_cov
 * while the stage measures coverage.  A probe that said nothing
 * (info->seen false) passes: the test run then shows what is wrong.
 */
int sp_python_check(const struct sp_python_info *info, const struct sp_stage *st,
		    const char *candidate, const char *image, struct sp_error *err);

/*
 * SP_EFAILED with one line in err: no candidate could be started (why:
 * the engine's reason for the last one, may be NULL), or `python` was
 * Python 2 (python2: its version, may be NULL) and python3 could not be.
 */
int sp_python_not_found(const struct sp_stage *st, const char *image, const char *why,
			const char *python2, struct sp_error *err);

/*
 * One line saying which interpreter runs the tests:
 * "python: /usr/bin/python3 (python3 on the image's PATH), Python 3.11.2,
 * pytest 7.2.1, pytest-cov 4.0.0".  A new string the caller frees.
 */
char *sp_python_describe(const struct sp_python_info *info, const struct sp_stage *st,
			 const char *candidate);

/*
 * Runs the probe for each candidate of st through runner->ops->run with
 * base's image, env, user, workdir, limits, labels and cancel (its cmd,
 * network, reports and log are replaced).  On success *out is the
 * candidate that started (a new string) and info is filled (release it).
 * Errors: SP_EFAILED (no candidate starts, or sp_python_check said no;
 * err has the line), SP_ECANCELLED, and the runner's own errors.
 */
int sp_python_find(struct sp_runner *runner, const struct sp_run_opts *base,
		   const struct sp_stage *st, const char *target, char **out,
		   struct sp_python_info *info, struct sp_error *err);

/*
 * sp_python_find through the probe cache in cache_dir (pycache.h; NULL:
 * no cache, the same as sp_python_find), keyed on runner->ops->image_key
 * of base->image when the runner has it.  A hit runs no container:
 * info is the remembered answer (info->cached set) and sp_python_check
 * is made on it again, so the results and messages are the same as a
 * probe's.  A probe that passed is remembered; a cache that cannot be
 * written is not an error.
 */
int sp_python_find_cached(struct sp_runner *runner, const struct sp_run_opts *base,
			  const struct sp_stage *st, const char *target, const char *cache_dir,
			  char **out, struct sp_python_info *info, struct sp_error *err);

#endif
