/*
 * python.h — which interpreter runs a pytest stage, found by the test
 * container itself.
 *
 * A pytest stage's interpreter is the stage's `python:` when set;
 * otherwise `python`, else `python3`, looked up on the container's own
 * PATH (the image's ENV PATH, or the stage's env PATH): a venv first on
 * PATH wins, and a `python` that is Python 2 makes way for python3.
 *
 * No separate probe runs: the stage's command is
 *     CAND -c BOOT MODE ARGS...
 * with CAND `python3` (or the stage's python:), BOOT the script
 * sp_python_boot_script and MODE one word (sp_python_boot_mode).  The
 * boot, in the test container itself:
 *   - not explicit, hop 0: execs `python` when it is on PATH (isfile and
 *     X_OK, as the engine looks), as `python` with hop 1;
 *   - Python 2 and not explicit: execs `python3` from PATH (hop 2) once,
 *     else says what it is and stops;
 *   - then prints "stagepipe-probe: KEY=VALUE" lines on stdout
 *     (executable, version, pytest, pytest_cov (found without importing
 *     them), path, as = the name it runs as), then "stagepipe-probe: stop"
 *     and exits SP_PYTHON_BOOT_EXIT when pytest (or pytest-cov for --cov)
 *     is missing, or "stagepipe-probe: go" and runs pytest as `-m pytest`
 *     does (runpy, sys.path[0] the working directory).
 * One container in the common case; a second (CAND `python`, hop 1) only
 * when python3 cannot be started at all.
 *
 * The caller feeds the run's output through sp_python_boot_feed, which
 * keeps the boot's lines out of the stage's log until go or stop; after
 * that every line is the tests' own.  The parsing and the messages are
 * pure (unit-tested).
 */
#ifndef SP_EXEC_PYTHON_H
#define SP_EXEC_PYTHON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/pipeline/pipeline.h"
#include "runners/runner.h"

struct sp_error;

/* Prefix of the boot's lines. */
#define SP_PYTHON_PROBE_MARK "stagepipe-probe: "
#define SP_PYTHON_GO SP_PYTHON_PROBE_MARK "go"
#define SP_PYTHON_STOP SP_PYTHON_PROBE_MARK "stop"

/* The boot's exit status after a stop line. */
#define SP_PYTHON_BOOT_EXIT 121

/* The boot script, for `CAND -c` (Python 2.7 and 3.x, ASCII): it
 * re-executes itself with the same text. */
extern const char sp_python_boot_script[];

/*
 * The boot's MODE word for st run as cand at hop (0: first start, 1:
 * as `python`, 2: as python3 after a Python 2):
 * "cov=1,explicit=0,hop=0,as=python3".  A new string the caller frees.
 */
char *sp_python_boot_mode(const struct sp_stage *st, const char *cand, unsigned hop);

/* What the boot said.  Strings owned; NULL when not said. */
struct sp_python_info {
	bool seen;             /* at least one probe line arrived */
	char *executable;      /* sys.executable: "/opt/venv/bin/python" */
	char *version;         /* "3.11.2" */
	char *pytest;          /* pytest's version, "?" when unknown; NULL: not importable */
	char *pytest_cov;      /* the same for pytest-cov (module pytest_cov) */
	char *path;            /* the container's PATH */
	char *as;              /* the name it runs as: "python3" */
};

#define SP_PYTHON_INFO_INIT { false, NULL, NULL, NULL, NULL, NULL, NULL }

void sp_python_info_release(struct sp_python_info *info);

/*
 * Reads one line of the boot's output (len bytes, no '\n').  Lines
 * without the mark (a sitecustomize printing) are ignored.
 */
void sp_python_info_feed(struct sp_python_info *info, const char *line, size_t len);

enum sp_python_boot_state {
	SP_PYTHON_BOOTING,     /* no go or stop line yet */
	SP_PYTHON_RUNNING,     /* "go": pytest runs; every line is its own */
	SP_PYTHON_STOPPED,     /* "stop": no test runs */
};

struct sp_python_boot {
	enum sp_python_boot_state state;
	struct sp_python_info info;
};

#define SP_PYTHON_BOOT_INIT { SP_PYTHON_BOOTING, SP_PYTHON_INFO_INIT }

/*
 * One line of the run's output: true when it is the boot's (a probe,
 * go or stop line on stdout before go or stop: not for the stage's log),
 * false when it is the stage's own.
 */
bool sp_python_boot_feed(struct sp_python_boot *b, enum sp_log_stream stream, const char *line,
			 size_t len);

/*
 * "the image of target "testing" (sha256:0123456789ab)": how messages
 * name an image.  A new string the caller frees.
 */
char *sp_python_image_name(const char *target, const char *image_id);

/*
 * Checks what the boot of candidate found for stage st (image: from
 * sp_python_image_name).  0 when the stage can run; SP_EFAILED with one
 * line in err when the interpreter cannot import pytest, or pytest_cov
 * while the stage measures coverage.  A boot that said nothing
 * (info->seen false) passes: the test run then shows what is wrong.
 */
int sp_python_check(const struct sp_python_info *info, const struct sp_stage *st,
		    const char *candidate, const char *image, struct sp_error *err);

/*
 * Whether why, the engine's reason for a container that did not start,
 * says its command is not there (`exec: "X": executable file not found in
 * $PATH`, or no such file) rather than something else: the stage's user,
 * a mount, the runtime.  NULL: true (nothing says otherwise).
 */
bool sp_python_exec_missing(const char *why);

/*
 * SP_EFAILED with one line in err: no candidate could be started (why:
 * the engine's reason for the last one, may be NULL), or `python` was
 * Python 2 (python2: its version, may be NULL) and python3 could not be.
 * A why that is not about a missing command (sp_python_exec_missing) is
 * said as it is: the container could not start, whatever the image holds.
 */
int sp_python_not_found(const struct sp_stage *st, const char *image, const char *why,
			const char *python2, struct sp_error *err);

/*
 * Why a boot stopped (b->state SP_PYTHON_STOPPED), as the messages
 * above: always SP_EFAILED with one line in err.
 */
int sp_python_stopped(const struct sp_python_boot *b, const struct sp_stage *st,
		      const char *image, struct sp_error *err);

/*
 * One line saying which interpreter runs the tests:
 * "python: /usr/bin/python3 (Python 3.11.2, python3 on the image's PATH),
 * pytest 7.2.1, pytest-cov 4.0.0" (candidate: what ran when the boot did
 * not say as=).  A new string the caller frees.
 */
char *sp_python_describe(const struct sp_python_info *info, const struct sp_stage *st,
			 const char *candidate);

#endif
