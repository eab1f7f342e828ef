/*
 * run.c — `stagepipe run`: the whole pipeline on this machine's engine.
 *
 * Source: the working tree around the current folder as it is
 * (uncommitted changes included).  Output: the terminal view on stdout,
 * or JSON lines with --json; --junit/--coverage write report files.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/signals.h"
#include "core/base/error.h"
#include "core/exec/events.h"
#include "core/exec/executor.h"
#include "core/base/fsutil.h"
#include "core/exec/sinks.h"
#include "core/base/xalloc.h"
#include "runners/docker/runner.h"

static int run_run(int argc, char **argv);

const struct sp_cmd sp_cmd_run = {
	"run",
	"run the pipeline on the working tree with this machine's engine",
	"usage: stagepipe run [-f FILE] [-C DIR | --clean | --repo URL [--ref REF]]\n"
	"                     [--stage NAME] [--no-push] [--json]\n"
	"                     [--junit FILE] [--coverage FILE] [--docker-host HOST]\n"
	"\n"
	"Runs the pipeline's stages in order on the Docker engine: builds each\n"
	"stage's target, runs its tests, applies its gates.\n"
	"\n"
	"  -f, --file FILE        pipeline file (default: stagepipe.yml at the source root)\n"
	"  -C DIR                 source folder (default: the git work tree around the\n"
	"                         current folder, or the current folder)\n"
	"      --clean            build a fresh checkout of HEAD (libgit2) instead of the\n"
	"                         working tree; FILE is then relative to the repository\n"
	"      --repo URL         build a commit of this repository (https, ssh, file://,\n"
	"                         a path) through the mirror cache; FILE is relative to it\n"
	"      --ref REF          with --repo: a branch, tag, SHA or refs/pull/N/head\n"
	"                         (default: the remote's default branch)\n"
	"      --stage NAME       run only this stage and the stages it needs\n"
	"      --no-push          build and check, but push nothing\n"
	"      --json             one JSON event per line on stdout instead of the\n"
	"                         terminal view\n"
	"      --junit FILE       write the stages and their tests as JUnit XML\n"
	"      --coverage FILE    write the test stage's coverage as Cobertura XML\n"
	"      --docker-host HOST engine address (default: $DOCKER_HOST or\n"
	"                         unix:///var/run/docker.sock)\n"
	"\n"
	"Exit status: 0 passed, 1 a stage failed, 2 usage or pipeline-file error,\n"
	"3 engine/registry/infrastructure error, 130 interrupted.\n",
	run_run,
};

static int measures_coverage(const struct sp_pipeline *p)
{
	size_t i;

	for (i = 0; i < p->nstages; i++)
		if (p->stages[i].kind == SP_STAGE_PYTEST && sp_stage_measures_coverage(&p->stages[i]))
			return 1;
	return 0;
}

static int run_run(int argc, char **argv)
{
	enum { OPT_STAGE = 256, OPT_NOPUSH, OPT_JSON, OPT_JUNIT, OPT_COVERAGE, OPT_HOST, OPT_CLEAN,
	       OPT_REPO, OPT_REF };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "stage", required_argument, NULL, OPT_STAGE },
		{ "no-push", no_argument, NULL, OPT_NOPUSH },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "junit", required_argument, NULL, OPT_JUNIT },
		{ "coverage", required_argument, NULL, OPT_COVERAGE },
		{ "docker-host", required_argument, NULL, OPT_HOST },
		{ "clean", no_argument, NULL, OPT_CLEAN },
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "ref", required_argument, NULL, OPT_REF },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_source src;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_exec_opts eo;
	struct sp_engine *engine = NULL;
	struct sp_runner *runner = NULL;
	const char *file = NULL, *dir = NULL, *stage = NULL, *host = NULL;
	const char *junit = NULL, *coverage = NULL, *repo = NULL, *ref = NULL;
	char job[32], owner[300], *work = NULL, *clean_dir = NULL;
	int c, json = 0, no_push = 0, clean = 0, status, rc;

	memset(&src, 0, sizeof(src));
	while ((c = getopt_long(argc, argv, "+f:C:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'C': dir = optarg; break;
		case OPT_STAGE: stage = optarg; break;
		case OPT_NOPUSH: no_push = 1; break;
		case OPT_JSON: json = 1; break;
		case OPT_JUNIT: junit = optarg; break;
		case OPT_COVERAGE: coverage = optarg; break;
		case OPT_HOST: host = optarg; break;
		case OPT_CLEAN: clean = 1; break;
		case OPT_REPO: repo = optarg; break;
		case OPT_REF: ref = optarg; break;
		case 'h':
			sp_cmd_print_usage(&sp_cmd_run, stdout);
			return SP_EXIT_OK;
		default:
			return sp_cmd_usage_error(&sp_cmd_run, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_run, "unexpected argument \"%s\"", argv[optind]);
	if (ref && !repo)
		return sp_cmd_usage_error(&sp_cmd_run, "--ref needs --repo");
	if (repo && (dir || clean))
		return sp_cmd_usage_error(&sp_cmd_run, "--repo excludes -C and --clean");
	sp_signals_install();

	if (sp_fs_tempdir(&work, "stagepipe-job-", &err) < 0) {
		status = sp_cmd_fail("run", &err);
		goto out;
	}
	if (clean)
		clean_dir = sp_xasprintf("%s/src", work);
	status = repo ? sp_source_load_repo(&src, "run", repo, ref, file)
		      : sp_source_load(&src, "run", dir, file, clean_dir);
	if (status != 0)
		goto out;
	if (stage && !sp_pipeline_stage(src.pipeline, stage)) {
		status = sp_cmd_usage_error(&sp_cmd_run, "no stage \"%s\" in %s", stage, src.file);
		goto out;
	}
	if (coverage && !measures_coverage(src.pipeline)) {
		status = sp_cmd_usage_error(&sp_cmd_run, "--coverage: no pytest stage in %s measures "
					    "coverage (add --cov=PACKAGE to its pytest arguments)",
					    src.file);
		goto out;
	}
	if ((status = sp_cmd_open_engine(&engine, "run", host)) != 0)
		goto out;
	runner = sp_docker_runner_new(engine);
	engine = NULL;  /* owned by the runner now */
	sp_cmd_job_id(job, sizeof(job), "local");
	sp_cmd_owner(owner, sizeof(owner));

	if (json)
		sp_events_add(&events, sp_sink_json_new(stdout));
	else
		sp_events_add(&events, sp_sink_term_new(stdout, isatty(STDOUT_FILENO) &&
							!getenv("NO_COLOR")));
	if (junit || coverage)
		sp_events_add(&events, sp_sink_reports_new(junit, coverage));

	memset(&eo, 0, sizeof(eo));
	eo.pipeline = src.pipeline;
	eo.vars = &src.vars;
	eo.source_root = src.git.root;
	eo.work_dir = work;
	eo.job_id = job;
	eo.owner = owner;
	eo.only_stage = stage;
	eo.no_push = no_push;
	eo.runner = runner;
	eo.events = &events;
	eo.cancel = sp_signals_cancel;
	rc = sp_executor_run(&eo, &err);
	/* the terminal view's summary already says why; JSON readers and a job
	 * that ended before its first stage (SP_ECONFIG) get it on stderr */
	if (rc == SP_ECONFIG || (json && rc < 0))
		fprintf(stderr, "stagepipe run: %s\n", err.msg);
	status = sp_error_exit_status(rc);
	if (sp_events_finish(&events, &err) < 0) {
		fprintf(stderr, "stagepipe run: %s\n", err.msg);
		if (status == SP_EXIT_OK)
			status = SP_EXIT_INFRA;
	}
out:
	sp_events_release(&events);
	if (work) {
		(void)sp_fs_rmtree(work, NULL);
		free(work);
	}
	free(clean_dir);
	if (runner)
		runner->ops->free(runner);
	sp_engine_free(engine);
	sp_source_release(&src);
	return status;
}
