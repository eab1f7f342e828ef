/*
 * scaffold.c — renders and writes the files of `stagepipe init`.
 *
 * The Dockerfile follows the seed's multi-stage guide (builder → runtime,
 * builder → testing; venv built in the builder and copied into a non-root
 * runtime; tests in an image that extends the builder) and the example
 * app's way of working offline: the base image is a build argument, the
 * venv sees the base image's packages (--system-site-packages), and pip
 * runs only for requirements the interpreter does not meet.  The project
 * is not pip-installed: its source goes on PYTHONPATH (src/ or the
 * project folder), which needs no build backend and no network.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"
#include "core/init/scaffold.h"

/* --- stagepipe.yml ------------------------------------------------------- */

static void cov_args(struct sp_buf *out, const struct sp_init_project *p, const char *sep)
{
	size_t i;

	if (!p->packages.n) {
		sp_buf_addf(out, "%s--cov=.", sep);
		return;
	}
	for (i = 0; i < p->packages.n; i++)
		sp_buf_addf(out, "%s--cov=%s", sep, p->packages.v[i]);
}

void sp_init_render_pipeline(struct sp_buf *out, const struct sp_init_project *p)
{
	const char *reg = "${env.REGISTRY:-registry.example.com/team}";

	sp_buf_addf(out,
		    "# Written by `stagepipe init`: tests with coverage in the `testing` image,\n"
		    "# then the `runtime` image built, %stagged and pushed.\n"
		    "# Offline (contrib/engine.sh up) BASE_IMAGE, BUILD_NETWORK and REGISTRY\n"
		    "# come from the environment; otherwise the defaults below apply.\n"
		    "version: 1\n"
		    "name: %s\n"
		    "\n"
		    "build:\n"
		    "  context: .\n"
		    "  dockerfile: Dockerfile\n"
		    "  args:\n"
		    "    BASE_IMAGE: ${env.BASE_IMAGE:-python:3.%d-slim}\n"
		    "%s"
		    "  network: ${env.BUILD_NETWORK:-default}\n"
		    "\n"
		    "stages:\n"
		    "  - name: test\n"
		    "    target: testing\n"
		    "    pytest: [-v",
		    p->web != SP_INIT_WEB_NONE ? "health-checked, " : "", p->name, p->py_minor,
		    p->installer == SP_INIT_UV ? "    UV_IMAGE: ${env.UV_IMAGE:-" SP_INIT_UV_IMAGE "}\n" : "");
	cov_args(out, p, ", ");
	sp_buf_addstr(out, ", --cov-report=term-missing]\n");
	if (p->has_fail_under)
		sp_buf_addf(out, "    coverage: { min: %g }\n", p->fail_under);
	if (!p->tests_dir)
		sp_buf_addstr(out, "    allow_no_tests: true\n");
	sp_buf_addstr(out, "    timeout: 30m\n\n");
	sp_buf_addstr(out,
		      "  - name: promote\n"
		      "    target: runtime\n"
		      "    needs: [test]\n"
		      "    tags:\n");
	if (p->in_git)
		sp_buf_addf(out, "      - %s/%s:${GIT_SHORT_SHA}\n", reg, p->name);
	sp_buf_addf(out, "      - %s/%s:latest\n", reg, p->name);
	sp_buf_addstr(out, "    push: true\n");
	if (p->web != SP_INIT_WEB_NONE)
		sp_buf_addstr(out, "    healthcheck: true\n");
}

/* --- Dockerfile ------------------------------------------------------------ */

/* A JSON string for an exec-form instruction (the values here are simple). */
static void json_str(struct sp_buf *out, const char *s)
{
	sp_buf_addch(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			sp_buf_addch(out, '\\');
		sp_buf_addch(out, *s);
	}
	sp_buf_addch(out, '"');
}

static const char *pythonpath(const struct sp_init_project *p)
{
	return p->layout == SP_INIT_LAYOUT_SRC ? "/app/src" : "/app";
}

static void copy_dep_files(struct sp_buf *out, const struct sp_init_project *p)
{
	size_t i, files = 0;

	for (i = 0; i < p->dep_files.n; i++) {
		if (!strcmp(p->dep_files.v[i], "requirements"))
			continue;
		if (!files++)
			sp_buf_addstr(out, "COPY");
		sp_buf_addf(out, " %s", p->dep_files.v[i]);
	}
	if (files)
		sp_buf_addstr(out, " ./\n");
	if (sp_init_list_has(&p->dep_files, "requirements"))
		sp_buf_addstr(out, "COPY requirements ./requirements\n");
}

/*
 * The RUN step that installs what the image lacks: the helper lists the
 * unmet requirements, and only when there are some does pip (or uv sync)
 * run; dev: the testing stage's dev and test dependencies.
 */
static void install_missing(struct sp_buf *out, const struct sp_init_project *p, int dev)
{
	const struct sp_init_list *args = dev ? &p->dev_args : &p->runtime_args;
	const char *tmp = dev ? "/tmp/requirements-dev.txt" : "/tmp/requirements.txt";
	const char *what = dev ? "dev dependencies" : "runtime dependencies";
	int uv = p->installer == SP_INIT_UV;
	size_t i;

	sp_buf_addf(out, "RUN --mount=type=cache,target=/root/.cache/%s \\\n"
			 "    python3 " SP_INIT_DEPS_SCRIPT, uv ? "uv" : "pip");
	for (i = 0; i < args->n; i++)
		sp_buf_addf(out, " %s", args->v[i]);
	sp_buf_addf(out, " > %s && \\\n    if [ -s %s ]; then \\\n", tmp, tmp);
	if (!uv) {
		sp_buf_addf(out, "        python -m pip install -r %s; \\\n", tmp);
	} else {
		sp_buf_addstr(out, "        command -v uv >/dev/null || { echo \"no uv in the image: "
				   "UV_IMAGE must hold /uv\" >&2; exit 1; }; \\\n");
		if (!dev) {
			sp_buf_addstr(out, "        uv sync --locked --no-dev --no-install-project; \\\n");
		} else {
			sp_buf_addstr(out, "        uv sync --locked --no-install-project");
			if (p->dev_extra && p->dev_args.n > 2 && !strcmp(p->dev_args.v[1], "--extra"))
				sp_buf_addf(out, " --extra %s", p->dev_extra);
			if (!sp_init_list_has(&p->dev_deps, "pytest") ||
			    !sp_init_list_has(&p->dev_deps, "pytest-cov"))
				sp_buf_addstr(out, " && \\\n        uv pip install pytest pytest-cov");
			sp_buf_addstr(out, "; \\\n");
		}
	}
	sp_buf_addf(out, "    else \\\n"
			 "        echo \"%s provided by the base image; %s skipped\"; \\\n",
		    what, uv ? "uv sync" : "pip");
	if (uv && !dev)
		sp_buf_addstr(out, "        python3 -m venv --system-site-packages --without-pip "
				   "/app/.venv; \\\n");
	sp_buf_addf(out, "    fi && \\\n    rm -f %s", tmp);
	if (!uv && !dev)
		sp_buf_addstr(out, " && \\\n    python -m compileall -q /app/.venv");
	sp_buf_addstr(out, "\n");
}

static void add_user(struct sp_buf *out, int chown_app)
{
	sp_buf_addf(out, "RUN groupadd --gid 1000 app && \\\n"
			 "    useradd --uid 1000 --gid app --shell /bin/bash --create-home app%s\n",
		    chown_app ? " && \\\n    chown app:app /app" : "");
}

static void healthcheck(struct sp_buf *out, const struct sp_init_project *p)
{
	if (p->health_path)
		sp_buf_addf(out,
			    "# No curl in the image: probe %s with the standard library.\n"
			    "HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \\\n"
			    "    CMD [\"python\", \"-c\", \"import sys, urllib.request; "
			    "sys.exit(urllib.request.urlopen('http://127.0.0.1:%d%s', timeout=4)"
			    ".status != 200)\"]\n",
			    p->health_path, SP_INIT_PORT, p->health_path);
	else
		sp_buf_addf(out,
			    "# No health route found in the code: healthy once the port accepts\n"
			    "# connections (add a /health route and probe it instead).\n"
			    "HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \\\n"
			    "    CMD [\"python\", \"-c\", \"import socket; "
			    "socket.create_connection(('127.0.0.1', %d), 4).close()\"]\n",
			    SP_INIT_PORT);
}

static void runtime_cmd(struct sp_buf *out, const struct sp_init_project *p)
{
	char port[16], *ref;

	snprintf(port, sizeof(port), "%d", SP_INIT_PORT);
	if (p->web == SP_INIT_WEB_UVICORN) {
		sp_buf_addstr(out, "CMD [\"python\", \"-m\", \"uvicorn\", ");
		json_str(out, p->app_ref);
		sp_buf_addf(out, "%s, \"--host\", \"0.0.0.0\", \"--port\", \"%s\"]\n",
			    p->app_factory ? ", \"--factory\"" : "", port);
	} else if (p->web == SP_INIT_WEB_GUNICORN) {
		ref = sp_xasprintf("%s%s", p->app_ref, p->app_factory ? "()" : "");
		sp_buf_addf(out, "CMD [\"python\", \"-m\", \"gunicorn\", \"--bind\", \"0.0.0.0:%s\", ",
			    port);
		json_str(out, ref);
		sp_buf_addstr(out, "]\n");
		free(ref);
	} else {
		sp_buf_addstr(out, "CMD [\"python\"]\n");
	}
}

void sp_init_render_dockerfile(struct sp_buf *out, const struct sp_init_project *p)
{
	int uv = p->installer == SP_INIT_UV;
	size_t i;

	sp_buf_addf(out,
		    "# Written by `stagepipe init` for %s.\n"
		    "# Three stages, as in the multi-stage guide: builder -> runtime,\n"
		    "# builder -> testing.\n"
		    "#\n"
		    "# BASE_IMAGE is the Python image to build on: python:3.%d-slim by default",
		    p->name, p->py_minor);
	if (p->python_from && p->python_spec && strcmp(p->python_from, ".python-version"))
		sp_buf_addf(out, "\n# (%s's requires-python \"%s\")", p->python_from, p->python_spec);
	else if (p->python_from)
		sp_buf_addf(out, "\n# (from %s)", p->python_from);
	sp_buf_addstr(out, "; stagepipe.yml passes ${env.BASE_IMAGE}\n"
			   "# when it is set.\n");
	if (uv)
		sp_buf_addstr(out,
			      "# Dependencies: " SP_INIT_DEPS_SCRIPT " lists the requirements the\n"
			      "# base image does not meet; when there are some, `uv sync --locked` installs\n"
			      "# uv.lock's versions into /app/.venv (uv comes from UV_IMAGE).  When the\n"
			      "# base image has them all (an offline Debian image: set UV_IMAGE to the\n"
			      "# base image too, the wildcard COPY then copies nothing), uv never runs\n"
			      "# and the venv sees the base image's packages (--system-site-packages).\n");
	else
		sp_buf_addstr(out,
			      "# Dependencies: " SP_INIT_DEPS_SCRIPT " lists the requirements the\n"
			      "# base image does not meet, and pip installs only those into /app/.venv\n"
			      "# (made with --system-site-packages, so it sees the base image's packages):\n"
			      "# on python:3.X-slim pip installs everything; on an image that has the\n"
			      "# packages already (an offline Debian image) pip never runs.\n");
	sp_buf_addf(out,
		    "# The project is not pip-installed: its code is on PYTHONPATH (%s).\n"
		    "#\n"
		    "# No `# syntax=` line on purpose: it would make BuildKit pull a frontend image.\n"
		    "\n"
		    "ARG BASE_IMAGE=python:3.%d-slim\n",
		    pythonpath(p), p->py_minor);
	if (uv)
		sp_buf_addstr(out, "ARG UV_IMAGE=" SP_INIT_UV_IMAGE "\n\nFROM ${UV_IMAGE} AS uv\n");
	sp_buf_addstr(out,
		      "\n"
		      "# ============================================\n"
		      "# STAGE 1: builder (virtualenv + dependencies, compiled)\n"
		      "# ============================================\n"
		      "FROM ${BASE_IMAGE} AS builder\n\n");
	if (uv) {
		sp_buf_addstr(out,
			      "# A wildcard: an image without uv (UV_IMAGE=${BASE_IMAGE}) copies nothing.\n"
			      "COPY --from=uv /uv* /usr/local/bin/\n"
			      "\n"
			      "ENV UV_LINK_MODE=copy \\\n"
			      "    UV_COMPILE_BYTECODE=1 \\\n"
			      "    UV_NO_PROGRESS=1 \\\n"
			      "    UV_PYTHON_DOWNLOADS=never \\\n"
			      "    UV_PROJECT_ENVIRONMENT=/app/.venv \\\n"
			      "    VIRTUAL_ENV=/app/.venv \\\n"
			      "    PATH=\"/app/.venv/bin:${PATH}\" \\\n"
			      "    PYTHONUNBUFFERED=1\n"
			      "\n"
			      "WORKDIR /app\n"
			      "\n"
			      "# Dependency files first, so code changes keep this layer cached.\n");
		copy_dep_files(out, p);
		sp_buf_addstr(out, "COPY " SP_INIT_DEPS_SCRIPT " .stagepipe/\n\n");
		install_missing(out, p, 0);
	} else {
		sp_buf_addstr(out,
			      "ENV VIRTUAL_ENV=/app/.venv \\\n"
			      "    PATH=\"/app/.venv/bin:${PATH}\" \\\n"
			      "    PYTHONUNBUFFERED=1 \\\n"
			      "    PIP_DISABLE_PIP_VERSION_CHECK=1 \\\n"
			      "    PIP_ROOT_USER_ACTION=ignore\n"
			      "\n"
			      "WORKDIR /app\n"
			      "\n"
			      "# --without-pip: Debian's python3 has no ensurepip; where the base image\n"
			      "# has pip, it is seen through --system-site-packages and installs here.\n"
			      "RUN python3 -m venv --system-site-packages --without-pip /app/.venv\n"
			      "\n"
			      "# Dependency files first, so code changes keep this layer cached.\n");
		copy_dep_files(out, p);
		sp_buf_addstr(out, "COPY " SP_INIT_DEPS_SCRIPT " .stagepipe/\n\n");
		install_missing(out, p, 0);
	}

	sp_buf_addstr(out,
		      "\n"
		      "# ============================================\n"
		      "# STAGE 2: runtime (production, non-root)\n"
		      "# ============================================\n"
		      "FROM ${BASE_IMAGE} AS runtime\n\n");
	add_user(out, 0);
	sp_buf_addstr(out, "\nWORKDIR /app\n\n"
			   "COPY --from=builder --chown=app:app /app/.venv /app/.venv\n");
	if (!p->copy.n)
		sp_buf_addstr(out, "COPY --chown=app:app . .\n");
	for (i = 0; i < p->copy.n; i++)
		sp_buf_addf(out, "COPY --chown=app:app ./%s ./%s\n", p->copy.v[i], p->copy.v[i]);
	sp_buf_addf(out,
		    "\n"
		    "ENV VIRTUAL_ENV=/app/.venv \\\n"
		    "    PATH=\"/app/.venv/bin:${PATH}\" \\\n"
		    "    PYTHONPATH=%s \\\n"
		    "    PYTHONDONTWRITEBYTECODE=1 \\\n"
		    "    PYTHONUNBUFFERED=1\n"
		    "\n"
		    "# Bytecode for the code too (hash-checked .pyc, so COPY mtimes do not matter).\n"
		    "RUN python -m compileall -q --invalidation-mode checked-hash",
		    pythonpath(p));
	if (!p->copy.n)
		sp_buf_addstr(out, " .");
	for (i = 0; i < p->copy.n; i++)
		sp_buf_addf(out, " %s", p->copy.v[i]);
	sp_buf_addstr(out, "\n\nUSER app\n\n");
	if (p->web != SP_INIT_WEB_NONE) {
		healthcheck(out, p);
		sp_buf_addf(out, "\nEXPOSE %d\n\n", SP_INIT_PORT);
	}
	runtime_cmd(out, p);

	sp_buf_addstr(out,
		      "\n"
		      "# ============================================\n"
		      "# STAGE 3: testing (CI)\n"
		      "# ============================================\n"
		      "FROM builder AS testing\n\n");
	sp_buf_addstr(out, "# Dev dependencies (and pytest, pytest-cov), same rule as above.\n");
	install_missing(out, p, 1);
	sp_buf_addstr(out, "\n");
	sp_buf_addstr(out, "# Tests run as the same non-root user as the service; /app must be\n"
			   "# writable for .coverage and .pytest_cache.\n");
	add_user(out, 1);
	sp_buf_addf(out,
		    "\n"
		    "COPY --chown=app:app . .\n"
		    "\n"
		    "ENV PYTHONPATH=%s\n"
		    "\n"
		    "USER app\n"
		    "\n"
		    "CMD [\"python\", \"-m\", \"pytest\", \"-v\"",
		    pythonpath(p));
	if (!p->packages.n)
		sp_buf_addstr(out, ", \"--cov=.\"");
	for (i = 0; i < p->packages.n; i++)
		sp_buf_addf(out, ", \"--cov=%s\"", p->packages.v[i]);
	sp_buf_addstr(out, ", \"--cov-report=term-missing\"]\n");
}

void sp_init_render_dockerignore(struct sp_buf *out, const struct sp_init_project *p)
{
	(void)p;
	sp_buf_addstr(out,
		      "# Written by `stagepipe init`: what the build context leaves out.\n"
		      "# VCS and editor state\n"
		      ".git\n"
		      ".gitignore\n"
		      ".idea\n"
		      ".vscode\n"
		      "# Python build/test leftovers; the image makes its own\n"
		      "**/__pycache__\n"
		      "**/*.py[cod]\n"
		      ".venv\n"
		      "venv\n"
		      ".tox\n"
		      ".nox\n"
		      ".pytest_cache\n"
		      ".mypy_cache\n"
		      ".ruff_cache\n"
		      ".coverage\n"
		      ".coverage.*\n"
		      "htmlcov\n"
		      "coverage.xml\n"
		      "build\n"
		      "dist\n"
		      "*.egg-info\n"
		      "# local secrets\n"
		      ".env\n");
}

/* --- writing ---------------------------------------------------------------- */

struct planned {
	const char *path;
	struct sp_buf body;
	int exists, same, write;
};

static int write_whole(const char *dir, const char *rel, const struct sp_buf *body,
		       struct sp_error *err)
{
	char *path = sp_xasprintf("%s/%s", dir, rel), *slash;
	int rc;

	slash = strrchr(path, '/');
	if (slash && strchr(rel, '/')) {
		*slash = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			rc = sp_error_set(err, SP_ERROR, "cannot make %s: %s", path, strerror(errno));
			goto out;
		}
		*slash = '/';
	}
	rc = sp_fs_write_atomic(path, body->data, body->len, 0644, true, err);
out:
	free(path);
	return rc;
}

/* Does dir/rel exist; does it hold exactly body? */
static void look(const char *dir, struct planned *f)
{
	char *path = sp_xasprintf("%s/%s", dir, f->path);
	struct stat st;
	FILE *fp;
	char *have;
	size_t n;

	f->exists = lstat(path, &st) == 0;
	f->same = 0;
	if (f->exists && S_ISREG(st.st_mode) && (size_t)st.st_size == f->body.len &&
	    (fp = fopen(path, "rb")) != NULL) {
		have = sp_xmalloc(f->body.len + 1);
		n = fread(have, 1, f->body.len, fp);
		f->same = n == f->body.len && !memcmp(have, f->body.data, n);
		free(have);
		fclose(fp);
	}
	free(path);
}

int sp_init_write(const char *dir, const struct sp_init_project *p, int force,
		  struct sp_init_result *res, struct sp_error *err)
{
	struct planned f[4];
	struct sp_buf conflicts = SP_BUF_INIT;
	size_t i, n = 0;
	int rc;

	memset(f, 0, sizeof(f));
	memset(res, 0, sizeof(*res));
	f[n].path = "stagepipe.yml";
	sp_init_render_pipeline(&f[n++].body, p);
	f[n].path = "Dockerfile";
	sp_init_render_dockerfile(&f[n++].body, p);
	f[n].path = ".dockerignore";
	sp_init_render_dockerignore(&f[n++].body, p);
	f[n].path = SP_INIT_DEPS_SCRIPT;
	sp_buf_addstr(&f[n++].body, sp_init_deps_script);
	for (i = 0; i < n; i++) {
		look(dir, &f[i]);
		f[i].write = force || !f[i].exists;
	}
	/* the helper goes with a Dockerfile init writes */
	if (!f[1].write)
		f[3].write = 0;
	else if (f[3].exists && !f[3].same && !force)
		sp_buf_addf(&conflicts, "%s%s", conflicts.len ? ", " : "", f[3].path);
	if (f[0].exists && !force)
		sp_buf_addf(&conflicts, "%s%s", conflicts.len ? ", " : "", f[0].path);
	if (conflicts.len) {
		rc = sp_error_set(err, SP_ECONFLICT, "%s/%s already there; nothing written "
				  "(--force overwrites)", dir, conflicts.data);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (f[i].write && !f[i].same) {
			if ((rc = write_whole(dir, f[i].path, &f[i].body, err)) < 0)
				goto out;
		}
		if (i == 3 && !f[i].write)
			continue; /* helper not needed: not worth a line */
		res->path[res->n] = f[i].path;
		res->action[res->n] = f[i].same ? SP_INIT_SAME :
				      !f[i].write ? SP_INIT_KEPT :
				      f[i].exists ? SP_INIT_REPLACED : SP_INIT_WROTE;
		res->n++;
	}
	rc = 0;
out:
	for (i = 0; i < n; i++)
		sp_buf_release(&f[i].body);
	sp_buf_release(&conflicts);
	return rc;
}
