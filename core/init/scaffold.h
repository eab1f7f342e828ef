/*
 * scaffold.h — the files `stagepipe init` writes for a detected project.
 *
 * stagepipe.yml (a pytest stage on the `testing` target, then `promote`
 * of the `runtime` target), and, when the project has none, the seed's
 * three-stage Dockerfile (builder / runtime / testing) with its
 * .dockerignore, plus .stagepipe/missing_deps.py which the Dockerfile runs
 * so that pip installs only what the base image lacks (a Debian image
 * with the packages and no PyPI builds it offline; python:3.X-slim online).
 * With uv.lock, `uv sync --locked` instead of pip, by the same rule (uv
 * from UV_IMAGE; offline UV_IMAGE=BASE_IMAGE copies no uv and needs none).
 */
#ifndef SP_INIT_SCAFFOLD_H
#define SP_INIT_SCAFFOLD_H

#include "core/init/detect.h"

struct sp_buf;
struct sp_error;

#define SP_INIT_DEPS_SCRIPT ".stagepipe/missing_deps.py"
#define SP_INIT_PORT 8000
#define SP_INIT_UV_IMAGE "ghcr.io/astral-sh/uv:latest"

extern const char sp_init_deps_script[];

/* The pipeline file for p, appended to out. */
void sp_init_render_pipeline(struct sp_buf *out, const struct sp_init_project *p);

/* The three-stage Dockerfile for p, appended to out. */
void sp_init_render_dockerfile(struct sp_buf *out, const struct sp_init_project *p);

/* The .dockerignore, appended to out. */
void sp_init_render_dockerignore(struct sp_buf *out, const struct sp_init_project *p);

enum sp_init_action {
	SP_INIT_WROTE,     /* written (new) */
	SP_INIT_REPLACED,  /* overwritten (--force) */
	SP_INIT_KEPT,      /* exists, left as it is */
	SP_INIT_SAME,      /* exists with exactly these contents */
};

struct sp_init_result {
	const char *path[4];         /* relative to the project folder */
	enum sp_init_action action[4];
	size_t n;
};

/*
 * Writes the files for p into dir.  Without force nothing existing is
 * overwritten: an existing stagepipe.yml (or a different
 * .stagepipe/missing_deps.py where a Dockerfile is to be written) is a
 * conflict, SP_ECONFLICT, and then nothing at all is written; an existing
 * Dockerfile or .dockerignore is kept (and the helper not written).  With
 * force every file is written.  Each file is written whole (temporary file,
 * fsync, rename).  res says what happened to each file (paths are static).
 */
int sp_init_write(const char *dir, const struct sp_init_project *p, int force,
		  struct sp_init_result *res, struct sp_error *err);

#endif
