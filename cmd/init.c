/*
 * init.c — `stagepipe init [DIR]`: a pipeline (and, when missing, the
 * three-stage Dockerfile) for an existing Python project.
 *
 * The reading is core/init/detect.c, the files core/init/scaffold.c; this
 * file parses the options, says what was found and written, and what to
 * run next.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"
#include "core/init/detect.h"
#include "core/init/scaffold.h"
#include "runners/docker/ignore.h"

static int run_init(int argc, char **argv);

const struct sp_cmd sp_cmd_init = {
	"init",
	"write a pipeline (and Dockerfile) for an existing Python project",
	"usage: stagepipe init [--force] [DIR]\n"
	"\n"
	"Reads the Python project in DIR (default: the current folder):\n"
	"pyproject.toml, setup.cfg, requirements*.txt, uv.lock, requires-python,\n"
	"the package layout (src/ or flat) and the tests folder, and writes:\n"
	"\n"
	"  stagepipe.yml   a pytest stage with coverage on the `testing` target, then\n"
	"                  `promote`: the `runtime` image tagged and pushed (health-\n"
	"                  checked when it is a FastAPI/uvicorn or Flask/gunicorn app)\n"
	"  Dockerfile      when there is none: builder / runtime / testing, the base\n"
	"                  image an ARG (BASE_IMAGE, default python:3.X-slim from\n"
	"                  requires-python), non-root runtime; pip installs only what\n"
	"                  the base image lacks (uv, held to uv.lock, when there is one)\n"
	"  .dockerignore   when there is none\n"
	"  " SP_INIT_DEPS_SCRIPT "\n"
	"                  with the Dockerfile: what it runs to find what pip (or uv)\n"
	"                  must install\n"
	"\n"
	"Nothing is overwritten without --force: an existing stagepipe.yml stops\n"
	"init before it writes anything; an existing Dockerfile or .dockerignore is\n"
	"kept (the pipeline expects its `testing` and `runtime` targets).\n"
	"\n"
	"  -f, --force   overwrite the files init writes\n"
	"\n"
	"Exit status: 0 written, 1 a file is already there (nothing written),\n"
	"2 usage error or DIR is not a Python project init can read.\n",
	run_init,
};

static const char *action_word(enum sp_init_action a)
{
	switch (a) {
	case SP_INIT_WROTE: return "wrote   ";
	case SP_INIT_REPLACED: return "replaced";
	case SP_INIT_KEPT: return "kept    ";
	case SP_INIT_SAME: return "same    ";
	}
	return "";
}


/* A kept .dockerignore must let in what the new Dockerfile copies. */
static void check_kept_dockerignore(const char *dir, const struct sp_init_project *p)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ignore *ig = NULL;
	char *path = sp_xasprintf("%s/.dockerignore", dir);
	size_t i;

	if (sp_ignore_load_file(&ig, path, &err) < 0) {
		printf("warning: %s\n", err.msg);
		goto out;
	}
	for (i = 0; i < p->dep_files.n; i++)
		if (sp_ignore_match(ig, p->dep_files.v[i]))
			printf("warning: the kept .dockerignore leaves out %s, which the Dockerfile "
			       "copies\n", p->dep_files.v[i]);
	for (i = 0; i < p->copy.n; i++)
		if (sp_ignore_match(ig, p->copy.v[i]))
			printf("warning: the kept .dockerignore leaves out %s, which the Dockerfile "
			       "copies\n", p->copy.v[i]);
	if (sp_ignore_match(ig, SP_INIT_DEPS_SCRIPT))
		printf("warning: the kept .dockerignore leaves out " SP_INIT_DEPS_SCRIPT
		       ", which the Dockerfile copies\n");
out:
	sp_ignore_free(ig);
	free(path);
}

/* Does the Dockerfile text have a stage named name (FROM ... AS name)? */
static int has_stage(const char *text, const char *name)
{
	const char *line = text, *s;
	size_t n = strlen(name);

	for (; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (strncasecmp(s, "FROM", 4) || (s[4] != ' ' && s[4] != '\t'))
			continue;
		for (s += 4; *s && *s != '\n'; s++)
			if ((s[-1] == ' ' || s[-1] == '\t') && !strncasecmp(s, "AS", 2) &&
			    (s[2] == ' ' || s[2] == '\t')) {
				s += 2;
				while (*s == ' ' || *s == '\t')
					s++;
				if (!strncasecmp(s, name, n) && (isspace((unsigned char)s[n]) || !s[n]))
					return 1;
			}
	}
	return 0;
}

/* A kept Dockerfile must have the targets the pipeline names. */
static void check_kept_dockerfile(const char *dir)
{
	char *path = sp_xasprintf("%s/Dockerfile", dir), *text = sp_fs_read_small(path);
	static const char *const targets[] = { "testing", "runtime" };
	size_t i;

	for (i = 0; text && i < 2; i++)
		if (!has_stage(text, targets[i]))
			printf("warning: the kept Dockerfile has no `%s` stage (FROM ... AS %s), "
			       "which stagepipe.yml builds\n", targets[i], targets[i]);
	free(text);
	free(path);
}

static void describe(const struct sp_init_project *p)
{
	size_t i;

	printf("stagepipe init: %s, %s", p->name,
	       p->layout == SP_INIT_LAYOUT_SRC ? "src layout" : "flat layout");
	if (p->packages.n) {
		printf(", package%s", p->packages.n == 1 ? "" : "s");
		for (i = 0; i < p->packages.n; i++)
			printf("%s %s", i ? "," : "", p->packages.v[i]);
	}
	if (p->tests_dir)
		printf(", tests in %s/\n", p->tests_dir);
	else
		printf(", no tests folder\n");
	printf("  python 3.%d", p->py_minor);
	if (p->python_from && p->python_spec && strcmp(p->python_from, ".python-version"))
		printf(" (requires-python \"%s\", %s)", p->python_spec, p->python_from);
	else if (p->python_from)
		printf(" (%s)", p->python_from);
	printf("; dependencies: %zu runtime, %zu dev, installed with %s\n", p->deps.n,
	       p->dev_deps.n, p->installer == SP_INIT_UV ? "uv (uv.lock)" : "pip");
	if (p->web != SP_INIT_WEB_NONE)
		printf("  web service: %s%s served by %s on port %d, health check %s\n",
		       p->app_ref, p->app_factory ? " (factory)" : "",
		       p->web == SP_INIT_WEB_UVICORN ? "uvicorn" : "gunicorn", SP_INIT_PORT,
		       p->health_path ? p->health_path : "(port open)");
}

static int run_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_init_project p;
	struct sp_init_result res;
	struct sp_error err = SP_ERROR_INIT;
	const char *dir = ".";
	int force = 0, here, c, rc, status;
	size_t i;

	while ((c = getopt_long(argc, argv, "+fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': force = 1; break;
		case 'h': sp_cmd_print_usage(&sp_cmd_init, stdout); return SP_EXIT_OK;
		default: return sp_cmd_usage_error(&sp_cmd_init, "bad option");
		}
	}
	if (optind < argc)
		dir = argv[optind++];
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_init, "unexpected argument \"%s\"", argv[optind]);

	if (sp_init_detect(&p, dir, &err) < 0) {
		fprintf(stderr, "stagepipe init: %s\n", err.msg);
		status = SP_EXIT_USAGE;
		goto out;
	}
	rc = sp_init_write(dir, &p, force, &res, &err);
	if (rc == SP_ECONFLICT) {
		fprintf(stderr, "stagepipe init: %s\n", err.msg);
		status = SP_EXIT_FAILED;
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "stagepipe init: %s\n", err.msg);
		status = SP_EXIT_INFRA;
		goto out;
	}
	describe(&p);
	here = !strcmp(dir, ".");
	for (i = 0; i < res.n; i++) {
		printf("  %s %s%s%s", action_word(res.action[i]), here ? "" : dir, here ? "" : "/",
		       res.path[i]);
		if (res.action[i] == SP_INIT_KEPT)
			printf(" (already there; --force overwrites it)");
		printf("\n");
	}
	if (res.n >= 3 && res.action[1] == SP_INIT_KEPT)
		check_kept_dockerfile(dir);
	else if (res.n >= 3 && res.action[2] == SP_INIT_KEPT)
		check_kept_dockerignore(dir, &p);
	for (i = 0; i < p.notes.n; i++)
		printf("note: %s\n", p.notes.v[i]);
	if (p.installer == SP_INIT_UV)
		printf("note: uv comes from UV_IMAGE (default " SP_INIT_UV_IMAGE "); where the "
		       "base image has every dependency, UV_IMAGE=$BASE_IMAGE builds offline\n");
	if (!p.in_git)
		printf("note: not in a git work tree: the image is tagged :latest only\n");
	if (here)
		printf("next: stagepipe validate && stagepipe run\n");
	else
		printf("next: stagepipe validate -f %s/stagepipe.yml && stagepipe run -C %s\n", dir,
		       dir);
	printf("      (the pipeline reads BASE_IMAGE, BUILD_NETWORK and REGISTRY from the "
	       "environment:\n       contrib/engine.sh up exports them for its offline engine)\n");
	status = SP_EXIT_OK;
out:
	sp_init_project_release(&p);
	return status;
}
