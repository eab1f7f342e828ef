/*
 * test_detect.c — what `stagepipe init` reads from project trees made here
 * (src and flat layouts, pyproject with and without requires-python,
 * setup.cfg, requirements files, uv.lock, Poetry, FastAPI and Flask apps),
 * and the files it writes for them: the pipeline loads as `validate`
 * loads it, the Dockerfile has the seed's three stages, nothing existing
 * is overwritten without force.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/init/detect.h"
#include "core/init/scaffold.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"
#include "core/yaml/diag.h"
#include "tests/unit/support/testutil.h"

/* Writes root/rel, making the folders on the way. */
static void put(const char *root, const char *rel, const char *text)
{
	char *path = sp_xasprintf("%s/%s", root, rel), *p;

	for (p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	sp_test_write_file(path, text);
	free(path);
}

static int setup(void **state)
{
	*state = sp_test_tempdir("sp-init-");
	return 0;
}

static int teardown(void **state)
{
	sp_test_rmtree(*state);
	free(*state);
	return 0;
}

static void detect(struct sp_init_project *p, const char *dir)
{
	struct sp_error err = SP_ERROR_INIT;

	if (sp_init_detect(p, dir, &err) < 0)
		fail_msg("detect %s: %s", dir, err.msg);
}

static int has_note(const struct sp_init_project *p, const char *part)
{
	size_t i;

	for (i = 0; i < p->notes.n; i++)
		if (strstr(p->notes.v[i], part))
			return 1;
	return 0;
}

static void assert_list(const struct sp_init_list *l, const char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		if (i >= l->n)
			fail_msg("list has %zu items, wanted %s at %zu", l->n, want[i], i);
		assert_string_equal(l->v[i], want[i]);
	}
	assert_int_equal(l->n, i);
}

/* The rendered pipeline loads as `validate` loads it (environment empty). */
static void assert_pipeline_valid(const struct sp_init_project *p)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_diags diags = SP_DIAGS_INIT;
	struct sp_pipeline *pl = NULL;
	struct sp_vars env;

	memset(&env, 0, sizeof(env));
	env.getenv = sp_test_env;
	env.getenv_ud = (void *)(const char *const[]){ NULL };
	sp_init_render_pipeline(&b, p);
	if (sp_pipeline_load_buffer(&pl, "stagepipe.yml", b.data, b.len, &env, &diags) < 0) {
		sp_diags_print(&diags, "stagepipe.yml", stderr);
		fail_msg("generated pipeline does not load:\n%s", b.data);
	}
	assert_int_equal(pl->nstages, 2);
	assert_string_equal(pl->stages[0].target, "testing");
	assert_string_equal(pl->stages[1].target, "runtime");
	sp_pipeline_free(pl);
	sp_diags_release(&diags);
	sp_buf_release(&b);
}

static char *dockerfile(const struct sp_init_project *p)
{
	struct sp_buf b = SP_BUF_INIT;

	sp_init_render_dockerfile(&b, p);
	return sp_buf_detach(&b, NULL);
}

static void test_src_pyproject(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	char *df;

	put(dir, "pyproject.toml",
	    "[project]\n"
	    "name = \"Calc_Lib.core\"\n"
	    "requires-python = \">=3.9,<3.12\"\n"
	    "dependencies = [\"attrs>=22\", \"Typing_Extensions\"]\n"
	    "[project.optional-dependencies]\n"
	    "docs = [\"sphinx\"]\n"
	    "test = [\"pytest>=7\", \"hypothesis\"]\n"
	    "[tool.coverage.report]\n"
	    "fail_under = 85.5\n");
	put(dir, "src/calclib/__init__.py", "");
	put(dir, "src/calclib/ops.py", "def add(a, b):\n    return a + b\n");
	put(dir, "src/calclib_extra.py", "X = 1\n");
	put(dir, "src/not-a-package/readme.txt", "x");
	put(dir, "tests/test_ops.py", "def test_add():\n    pass\n");
	detect(&p, dir);
	assert_string_equal(p.name, "calc-lib-core");
	assert_int_equal(p.py_minor, 11);
	assert_string_equal(p.python_spec, ">=3.9,<3.12");
	assert_string_equal(p.python_from, "pyproject.toml");
	assert_int_equal(p.layout, SP_INIT_LAYOUT_SRC);
	assert_list(&p.packages, (const char *const[]){ "calclib", "calclib_extra", NULL });
	assert_list(&p.copy, (const char *const[]){ "src", NULL });
	assert_string_equal(p.tests_dir, "tests");
	assert_int_equal(p.installer, SP_INIT_PIP);
	assert_list(&p.deps, (const char *const[]){ "attrs", "typing-extensions", NULL });
	assert_list(&p.dev_deps, (const char *const[]){ "pytest", "hypothesis", NULL });
	assert_string_equal(p.dev_extra, "test");
	assert_list(&p.runtime_args, (const char *const[]){ "pyproject.toml", NULL });
	assert_list(&p.dev_args, (const char *const[]){ "--no-runtime", "--extra", "test",
		"pyproject.toml", "--require", "pytest", "--require", "pytest-cov", NULL });
	assert_list(&p.dep_files, (const char *const[]){ "pyproject.toml", NULL });
	assert_int_equal(p.web, SP_INIT_WEB_NONE);
	assert_true(p.has_fail_under);
	assert_true(p.fail_under > 85.4 && p.fail_under < 85.6);
	assert_false(p.has_dockerfile);
	assert_false(p.has_pipeline);
	assert_pipeline_valid(&p);
	df = dockerfile(&p);
	assert_non_null(strstr(df, "ARG BASE_IMAGE=python:3.11-slim\n"));
	assert_non_null(strstr(df, "FROM ${BASE_IMAGE} AS builder\n"));
	assert_non_null(strstr(df, "FROM ${BASE_IMAGE} AS runtime\n"));
	assert_non_null(strstr(df, "FROM builder AS testing\n"));
	assert_non_null(strstr(df, "COPY --chown=app:app ./src ./src\n"));
	assert_non_null(strstr(df, "PYTHONPATH=/app/src"));
	assert_non_null(strstr(df, "\nUSER app\n"));
	assert_null(strstr(df, "HEALTHCHECK"));
	assert_non_null(strstr(df, "\"--cov=calclib\", \"--cov=calclib_extra\""));
	free(df);
	sp_init_project_release(&p);
}

static void test_flat_no_requires_python(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;

	put(dir, "pyproject.toml",
	    "[project]\nname = \"flatlib\"\ndependencies = []\n"
	    "[dependency-groups]\ndev = [\"pytest\", {include-group = \"lint\"}]\n"
	    "lint = [\"ruff\"]\n"
	    "[tool.pytest.ini_options]\ntestpaths = [\"checks\"]\n");
	put(dir, "flatlib/__init__.py", "");
	put(dir, "docs/__init__.py", "");         /* not a package of the project */
	put(dir, "tests/__init__.py", "");
	put(dir, "checks/test_x.py", "");
	put(dir, "setup.py", "");
	detect(&p, dir);
	assert_int_equal(p.py_minor, SP_INIT_PY_DEFAULT);
	assert_null(p.python_spec);
	assert_null(p.python_from);
	assert_int_equal(p.layout, SP_INIT_LAYOUT_FLAT);
	assert_list(&p.packages, (const char *const[]){ "flatlib", NULL });
	assert_list(&p.copy, (const char *const[]){ "flatlib", NULL });
	assert_string_equal(p.tests_dir, "checks");
	assert_list(&p.dev_args, (const char *const[]){ "--no-runtime", "--group", "dev",
		"pyproject.toml", "--require", "pytest", "--require", "pytest-cov", NULL });
	assert_pipeline_valid(&p);
	sp_init_project_release(&p);
}

static void test_setup_cfg(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;

	put(dir, "setup.cfg",
	    "[metadata]\n"
	    "name = legacy_pkg\n"
	    "\n"
	    "[options]\n"
	    "python_requires = >=3.8, <3.10\n"
	    "package_dir =\n"
	    "    = src\n"
	    "install_requires =\n"
	    "    requests>=2\n"
	    "    # a comment\n"
	    "\n"
	    "    click ; python_version >= \"3.8\"\n"
	    "\n"
	    "[options.extras_require]\n"
	    "tests =\n"
	    "    pytest\n"
	    "    pytest-mock\n"
	    "[tool:pytest]\n"
	    "testpaths = test\n");
	put(dir, "setup.py", "from setuptools import setup\nsetup()\n");
	put(dir, "src/legacy_pkg/__init__.py", "");
	put(dir, "test/test_a.py", "");
	detect(&p, dir);
	assert_string_equal(p.name, "legacy-pkg");
	assert_int_equal(p.py_minor, 9);
	assert_string_equal(p.python_from, "setup.cfg");
	assert_int_equal(p.layout, SP_INIT_LAYOUT_SRC);
	assert_string_equal(p.tests_dir, "test");
	assert_list(&p.deps, (const char *const[]){ "requests", "click", NULL });
	assert_list(&p.dev_deps, (const char *const[]){ "pytest", "pytest-mock", NULL });
	assert_list(&p.runtime_args, (const char *const[]){ "setup.cfg", NULL });
	assert_list(&p.dev_args, (const char *const[]){ "--no-runtime", "--extra", "tests",
		"setup.cfg", "--require", "pytest", "--require", "pytest-cov", NULL });
	assert_list(&p.dep_files, (const char *const[]){ "setup.cfg", NULL });
	assert_pipeline_valid(&p);
	sp_init_project_release(&p);
}

static void test_requirements(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	char *df;

	put(dir, "requirements.txt",
	    "# runtime\n-r base.txt\nnumpy>=1.24  # arrays\n--index-url https://example.invalid\n\n");
	put(dir, "base.txt", "Pillow\n");
	put(dir, "requirements-dev.txt", "-r requirements.txt\npytest\n");
	put(dir, "tool.py", "def main():\n    pass\n");
	put(dir, "conftest.py", "");
	put(dir, "test_tool.py", "");
	detect(&p, dir);
	assert_int_equal(p.layout, SP_INIT_LAYOUT_FLAT);
	assert_list(&p.packages, (const char *const[]){ "tool", NULL });
	assert_list(&p.copy, (const char *const[]){ "tool.py", NULL });
	assert_null(p.tests_dir);
	assert_true(has_note(&p, "no tests folder"));
	assert_list(&p.deps, (const char *const[]){ "numpy", "pillow", NULL });
	assert_list(&p.dev_deps, (const char *const[]){ "pytest", "numpy", "pillow", NULL });
	assert_list(&p.dep_files,
		    (const char *const[]){ "requirements.txt", "base.txt", "requirements-dev.txt", NULL });
	assert_list(&p.runtime_args, (const char *const[]){ "requirements.txt", NULL });
	assert_pipeline_valid(&p);
	df = dockerfile(&p);
	assert_non_null(strstr(df, "COPY requirements.txt base.txt requirements-dev.txt ./\n"));
	assert_non_null(strstr(df, "missing_deps.py requirements.txt > /tmp/requirements.txt"));
	assert_non_null(strstr(df, "COPY --chown=app:app ./tool.py ./tool.py\n"));
	free(df);
	sp_init_project_release(&p);
}

static void test_uv_lock(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	struct sp_buf b = SP_BUF_INIT;
	char *df;

	put(dir, "pyproject.toml",
	    "[project]\nname = \"uvapp\"\nrequires-python = \">=3.13\"\n"
	    "dependencies = [\"httpx\"]\n"
	    "[dependency-groups]\ndev = [\"pytest\", \"pytest-cov\"]\n");
	put(dir, "uv.lock", "version = 1\nrequires-python = \">=3.13\"\n");
	put(dir, "uvapp/__init__.py", "");
	put(dir, "tests/test_a.py", "");
	detect(&p, dir);
	assert_int_equal(p.installer, SP_INIT_UV);
	assert_int_equal(p.py_minor, 13);
	assert_list(&p.dep_files, (const char *const[]){ "pyproject.toml", "uv.lock", NULL });
	assert_pipeline_valid(&p);
	df = dockerfile(&p);
	assert_non_null(strstr(df, "ARG BASE_IMAGE=python:3.13-slim\n"));
	assert_non_null(strstr(df, "ARG UV_IMAGE=ghcr.io/astral-sh/uv:latest\n"));
	assert_non_null(strstr(df, "COPY --from=uv /uv* /usr/local/bin/\n"));
	assert_non_null(strstr(df, "COPY pyproject.toml uv.lock ./\n"));
	assert_non_null(strstr(df, "missing_deps.py pyproject.toml > /tmp/requirements.txt"));
	assert_non_null(strstr(df, "uv sync --locked --no-dev --no-install-project; \\\n"));
	/* the dev group has pytest and pytest-cov: no extra install */
	assert_non_null(strstr(df, "uv sync --locked --no-install-project; \\\n"));
	assert_non_null(strstr(df, "uv sync skipped"));
	assert_null(strstr(df, "pip install"));
	free(df);
	sp_init_render_pipeline(&b, &p);
	assert_non_null(strstr(b.data, "    UV_IMAGE: ${env.UV_IMAGE:-ghcr.io/astral-sh/uv:latest}\n"));
	sp_buf_release(&b);
	sp_init_project_release(&p);
}

static void test_fastapi(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	struct sp_buf b = SP_BUF_INIT;
	char *df;

	put(dir, "pyproject.toml",
	    "[project]\nname = \"svc\"\nrequires-python = \"~=3.10\"\n"
	    "dependencies = [\"fastapi>=0.100\", \"uvicorn[standard]>=0.20\"]\n");
	put(dir, "src/svc/__init__.py", "");
	put(dir, "src/svc/models.py", "from fastapi import FastAPI  # not built here\n");
	put(dir, "src/svc/api/__init__.py", "");
	put(dir, "src/svc/api/main.py",
	    "from fastapi import FastAPI\n"
	    "\n"
	    "api: FastAPI = FastAPI(title=\"svc\")\n"
	    "\n"
	    "@api.get(\"/health\")\n"
	    "def health():\n"
	    "    return {\"ok\": True}\n");
	put(dir, "tests/test_api.py", "");
	detect(&p, dir);
	assert_int_equal(p.py_minor, 12);
	assert_int_equal(p.web, SP_INIT_WEB_UVICORN);
	assert_string_equal(p.app_ref, "svc.api.main:api");
	assert_false(p.app_factory);
	assert_string_equal(p.health_path, "/health");
	assert_pipeline_valid(&p);
	sp_init_render_pipeline(&b, &p);
	assert_non_null(strstr(b.data, "    healthcheck: true\n"));
	sp_buf_release(&b);
	df = dockerfile(&p);
	assert_non_null(strstr(df, "HEALTHCHECK --interval=5s"));
	assert_non_null(strstr(df, "http://127.0.0.1:8000/health"));
	assert_non_null(strstr(df, "CMD [\"python\", \"-m\", \"uvicorn\", \"svc.api.main:api\", "
				   "\"--host\", \"0.0.0.0\", \"--port\", \"8000\"]\n"));
	assert_non_null(strstr(df, "EXPOSE 8000\n"));
	free(df);
	sp_init_project_release(&p);
}

static void test_flask_factory_and_no_server(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	char *df, *sub;

	put(dir, "requirements.txt", "Flask>=2\ngunicorn\n");
	put(dir, "app.py",
	    "from flask import Flask\n\n"
	    "def create_app():\n"
	    "    application = Flask(__name__)\n"
	    "    return application\n");
	detect(&p, dir);
	assert_int_equal(p.web, SP_INIT_WEB_GUNICORN);
	assert_string_equal(p.app_ref, "app:create_app");
	assert_true(p.app_factory);
	assert_null(p.health_path);
	df = dockerfile(&p);
	assert_non_null(strstr(df, "\"--bind\", \"0.0.0.0:8000\", \"app:create_app()\"]"));
	assert_non_null(strstr(df, "socket.create_connection(('127.0.0.1', 8000), 4)"));
	free(df);
	sp_init_project_release(&p);

	/* FastAPI without a server to run it: no health check, a note */
	sub = sp_xasprintf("%s/noserver", dir);
	put(sub, "requirements.txt", "fastapi\n");
	put(sub, "web/__init__.py", "from fastapi import FastAPI\napp = FastAPI()\n");
	detect(&p, sub);
	assert_int_equal(p.web, SP_INIT_WEB_NONE);
	assert_true(has_note(&p, "no server"));
	sp_init_project_release(&p);

	/* uvicorn and FastAPI but no app object anywhere */
	put(sub, "requirements.txt", "fastapi\nuvicorn\n");
	put(sub, "web/__init__.py", "from fastapi import FastAPI\n");
	detect(&p, sub);
	assert_int_equal(p.web, SP_INIT_WEB_NONE);
	assert_true(has_note(&p, "no module-level FastAPI app"));
	sp_init_project_release(&p);
	free(sub);
}

static void test_poetry_and_python_version(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;

	put(dir, "pyproject.toml",
	    "[tool.poetry]\nname = \"poet\"\n"
	    "[tool.poetry.dependencies]\npython = \"^3.10\"\nrequests = \"^2.31\"\n"
	    "rich = { version = \"^13\", optional = true }\n");
	put(dir, "poet/__init__.py", "");
	put(dir, ".python-version", "3.10.14\n");
	detect(&p, dir);
	assert_string_equal(p.name, "poet");
	assert_int_equal(p.py_minor, 10);
	assert_string_equal(p.python_from, ".python-version");
	assert_list(&p.deps, (const char *const[]){ "requests", "rich", NULL });
	assert_true(has_note(&p, "Poetry"));
	sp_init_project_release(&p);

	/* a .python-version that requires-python excludes is ignored */
	put(dir, ".python-version", "3.8\n");
	detect(&p, dir);
	assert_int_equal(p.py_minor, 12);
	sp_init_project_release(&p);
}

static void test_not_python(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	struct sp_error err = SP_ERROR_INIT;
	char *missing;

	put(dir, "README.md", "# not Python\n");
	assert_int_equal(sp_init_detect(&p, dir, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "not a Python project"));
	sp_init_project_release(&p);

	missing = sp_xasprintf("%s/nope", dir);
	assert_int_equal(sp_init_detect(&p, missing, &err), SP_ENOTFOUND);
	sp_init_project_release(&p);
	free(missing);

	put(dir, "pyproject.toml", "[project]\nname = \"x\nversion = 1\n");
	assert_int_equal(sp_init_detect(&p, dir, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "pyproject.toml: 2:"));
	sp_init_project_release(&p);
}

/* What goes into the Dockerfile and the pipeline stays plain. */
static void test_hostile_values(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	char *df;

	put(dir, "pyproject.toml",
	    "[project]\nname = \"x\\n\\nRUN evil\"\n"
	    "requires-python = \">=3.9\\nRUN curl evil\"\n"
	    "[tool.setuptools]\npackages = [\"good\", \"bad pkg\", \"bad\\nRUN x\"]\n");
	put(dir, "good/__init__.py", "");
	put(dir, "bad pkg/__init__.py", "");
	detect(&p, dir);
	assert_string_equal(p.name, "x-run-evil");
	assert_null(p.python_spec);
	assert_true(has_note(&p, "not a plain one-line specifier"));
	assert_list(&p.packages, (const char *const[]){ "good", NULL });
	df = dockerfile(&p);
	assert_null(strstr(df, "\nRUN evil"));
	assert_null(strstr(df, "\nRUN curl"));
	assert_null(strstr(df, "bad"));
	free(df);
	assert_pipeline_valid(&p);
	sp_init_project_release(&p);
}

static void test_pick_python(void **state)
{
	static const struct {
		const char *spec;
		int want;
	} cases[] = {
		{ NULL, 12 }, { "", 12 }, { ">=3.8", 12 }, { ">=3.13", 13 }, { ">3.12", 13 },
		{ ">3.12.1", 12 }, { "<3.12", 11 }, { "<3.12.1", 12 }, { "<=3.10", 10 },
		{ ">=3.9,<3.11", 10 }, { ">= 3.9, < 3.11", 10 }, { "==3.9.*", 9 },
		{ "==3.9.18", 9 }, { "~=3.10", 12 }, { "~=3.10.2", 10 }, { "^3.11", 12 },
		{ "~3.11", 11 }, { "!=3.12.*,>=3.10", 13 }, { "!=3.12.1", 12 }, { ">=4", -1 },
		{ "<3", -1 }, { ">=3.14", -1 }, { "3.11", 11 }, { ">=3.9 || <3", -1 },
		{ "garbage", -1 }, { ">=3.x", -1 }, { ">=2.7,!=3.0.*", 12 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sp_init_pick_python(cases[i].spec) != cases[i].want)
			fail_msg("\"%s\": got 3.%d, wanted 3.%d", cases[i].spec ? cases[i].spec : "(null)",
				 sp_init_pick_python(cases[i].spec), cases[i].want);
}

static void test_req_name(void **state)
{
	char *n;

	(void)state;
	n = sp_init_req_name("  Flask[async]>=2 ; python_version>'3'");
	assert_string_equal(n, "flask");
	free(n);
	n = sp_init_req_name("zope.interface__x");
	assert_string_equal(n, "zope-interface-x");
	free(n);
	assert_null(sp_init_req_name(">=1"));
	assert_null(sp_init_req_name("./local/pkg"));
	assert_null(sp_init_req_name("-e ."));
	assert_null(sp_init_req_name(""));
}

static char *slurp(const char *dir, const char *rel)
{
	char *path = sp_xasprintf("%s/%s", dir, rel), *text = sp_test_read_file(path, NULL);

	free(path);
	return text;
}

static void test_write(void **state)
{
	const char *dir = *state;
	struct sp_init_project p;
	struct sp_init_result res;
	struct sp_error err = SP_ERROR_INIT;
	char *before, *after, *path;

	put(dir, "pyproject.toml", "[project]\nname = \"w\"\ndependencies = []\n");
	put(dir, "w/__init__.py", "");
	put(dir, "tests/test_w.py", "");
	detect(&p, dir);
	assert_int_equal(sp_init_write(dir, &p, 0, &res, &err), 0);
	assert_int_equal(res.n, 4);
	assert_string_equal(res.path[0], "stagepipe.yml");
	assert_int_equal(res.action[0], SP_INIT_WROTE);
	assert_string_equal(res.path[3], SP_INIT_DEPS_SCRIPT);
	assert_int_equal(res.action[3], SP_INIT_WROTE);
	after = slurp(dir, SP_INIT_DEPS_SCRIPT);
	assert_string_equal(after, sp_init_deps_script);
	free(after);

	/* again: refused, nothing changed */
	put(dir, "Dockerfile", "FROM scratch AS testing\n");
	before = slurp(dir, "stagepipe.yml");
	assert_int_equal(sp_init_write(dir, &p, 0, &res, &err), SP_ECONFLICT);
	assert_non_null(strstr(err.msg, "stagepipe.yml already there; nothing written"));
	after = slurp(dir, "Dockerfile");
	assert_string_equal(after, "FROM scratch AS testing\n");
	free(after);

	/* pipeline gone: written again, the Dockerfile kept, the helper not needed */
	path = sp_xasprintf("%s/stagepipe.yml", dir);
	unlink(path);
	free(path);
	assert_int_equal(sp_init_write(dir, &p, 0, &res, &err), 0);
	assert_int_equal(res.n, 3);
	assert_int_equal(res.action[0], SP_INIT_WROTE);
	assert_int_equal(res.action[1], SP_INIT_KEPT);
	assert_int_equal(res.action[2], SP_INIT_SAME);
	after = slurp(dir, "stagepipe.yml");
	assert_string_equal(after, before);
	free(after);

	/* a helper of someone else's where a Dockerfile is to be written: refused */
	path = sp_xasprintf("%s/Dockerfile", dir);
	unlink(path);
	free(path);
	put(dir, SP_INIT_DEPS_SCRIPT, "print('mine')\n");
	path = sp_xasprintf("%s/stagepipe.yml", dir);
	unlink(path);
	free(path);
	assert_int_equal(sp_init_write(dir, &p, 0, &res, &err), SP_ECONFLICT);
	assert_non_null(strstr(err.msg, SP_INIT_DEPS_SCRIPT));
	path = sp_xasprintf("%s/stagepipe.yml", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	free(path);

	/* --force: everything written */
	assert_int_equal(sp_init_write(dir, &p, 1, &res, &err), 0);
	assert_int_equal(res.n, 4);
	assert_int_equal(res.action[0], SP_INIT_WROTE);
	assert_int_equal(res.action[1], SP_INIT_WROTE);
	assert_int_equal(res.action[2], SP_INIT_SAME);
	assert_int_equal(res.action[3], SP_INIT_REPLACED);
	after = slurp(dir, SP_INIT_DEPS_SCRIPT);
	assert_string_equal(after, sp_init_deps_script);
	free(after);
	free(before);
	sp_init_project_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_src_pyproject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flat_no_requires_python, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_cfg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requirements, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uv_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fastapi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flask_factory_and_no_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poetry_and_python_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_python, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_values, setup, teardown),
		cmocka_unit_test(test_pick_python),
		cmocka_unit_test(test_req_name),
		cmocka_unit_test_setup_teardown(test_write, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
