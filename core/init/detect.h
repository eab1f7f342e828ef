/*
 * detect.h — what `stagepipe init` learns about an existing Python project.
 *
 * sp_init_detect reads a project folder (never writes to it): pyproject.toml
 * ([project], [tool.poetry], [tool.setuptools], [tool.pytest.ini_options],
 * [tool.coverage.report], [dependency-groups], [tool.uv]), setup.cfg,
 * requirements*.txt, uv.lock, .python-version, the package layout (src/ or
 * flat) and the tests folder, and whether the project is a web service it
 * can recognise (a FastAPI app with uvicorn, or a Flask app with gunicorn,
 * whose app object or factory it finds in the code).
 */
#ifndef SP_INIT_DETECT_H
#define SP_INIT_DETECT_H

#include <stddef.h>

struct sp_error;

/* A list of owned strings. */
struct sp_init_list {
	char **v;
	size_t n, alloc;
};

enum sp_init_layout {
	SP_INIT_LAYOUT_FLAT, /* packages at the top of the project */
	SP_INIT_LAYOUT_SRC,  /* packages under src/ */
};

enum sp_init_installer {
	SP_INIT_PIP, /* pip, only for what the base image lacks */
	SP_INIT_UV,  /* uv sync --locked (the project has uv.lock) */
};

enum sp_init_web {
	SP_INIT_WEB_NONE,
	SP_INIT_WEB_UVICORN,  /* FastAPI (ASGI) served by uvicorn */
	SP_INIT_WEB_GUNICORN, /* Flask (WSGI) served by gunicorn */
};

/* The Python versions init knows an official python:3.X-slim image for. */
#define SP_INIT_PY_MIN 8
#define SP_INIT_PY_MAX 13
#define SP_INIT_PY_DEFAULT 12

struct sp_init_project {
	char *name;           /* for the pipeline and the image: [a-z0-9-], never empty */
	int py_minor;         /* the base image's Python: 3.<py_minor> */
	char *python_spec;    /* requires-python as written; NULL when none */
	const char *python_from; /* which file said it ("pyproject.toml"); NULL when none */

	enum sp_init_layout layout;
	struct sp_init_list packages; /* import names of the top-level packages/modules */
	struct sp_init_list copy;     /* what the runtime image copies: "src", "app", "util.py" */
	char *tests_dir;              /* "tests"; NULL when no tests folder was found */

	enum sp_init_installer installer;
	struct sp_init_list dep_files; /* dependency files the builder copies first */
	struct sp_init_list runtime_args; /* missing_deps.py arguments for the runtime deps */
	struct sp_init_list dev_args;     /* ... for the dev/test deps (without runtime) */
	struct sp_init_list deps;      /* normalised names of the runtime dependencies */
	struct sp_init_list dev_deps;  /* ... of the dev/test dependencies */
	char *dev_extra;               /* the optional-dependencies / group used for dev; or NULL */

	enum sp_init_web web;
	char *app_ref;        /* "app.main:app" or "pkg.web:create_app" */
	int app_factory;      /* app_ref names a factory function */
	char *health_path;    /* "/health" when the code has such a route; else NULL */

	int has_fail_under;   /* [tool.coverage.report] fail_under */
	double fail_under;

	int has_dockerfile, has_dockerignore, has_pipeline;
	int in_git;           /* the folder is inside a git work tree */
	struct sp_init_list notes; /* what the user should know, one sentence each */
};

/*
 * Reads the project in dir into *out (zeroed by the callee).  0;
 * SP_ENOTFOUND when dir is not a folder or holds nothing Python
 * (no pyproject.toml, setup.cfg, setup.py, requirements*.txt nor .py file);
 * SP_ECONFIG for a pyproject.toml that does not parse ("FILE:LINE:COL: ...").
 * The caller releases out with sp_init_project_release, also after an error.
 */
int sp_init_detect(struct sp_init_project *out, const char *dir, struct sp_error *err);

void sp_init_project_release(struct sp_init_project *p);

/*
 * The Python minor version (3.X) to build with for a requires-python
 * specifier (PEP 440, and Poetry's ^ and ~): SP_INIT_PY_DEFAULT when it
 * allows it, else the newest allowed one in SP_INIT_PY_MIN..MAX.
 * -1 when none is allowed or the specifier cannot be read.
 */
int sp_init_pick_python(const char *spec);

/*
 * The normalised distribution name of a PEP 508 requirement
 * ("Flask[async]>=2" -> "flask"), a new string; NULL when there is none.
 */
char *sp_init_req_name(const char *req);

void sp_init_list_add(struct sp_init_list *l, const char *s);
int sp_init_list_has(const struct sp_init_list *l, const char *s);
void sp_init_list_release(struct sp_init_list *l);

#endif
