/*
 * prune.c — `stagepipe prune`: remove what crashed runs left behind.
 *
 * Every container stagepipe creates carries the label io.stagepipe.job;
 * a run removes its own, but a run killed with SIGKILL (or a machine that
 * lost power) cannot.  This finds them by label and removes them.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "core/error.h"
#include "runners/docker/container.h"

static int run_prune(int argc, char **argv);

const struct sp_cmd sp_cmd_prune = {
	"prune",
	"remove containers left behind by interrupted runs",
	"usage: stagepipe prune [-n] [--docker-host HOST]\n"
	"\n"
	"Removes every container labelled io.stagepipe.job (running or not) and\n"
	"says what it removed.\n"
	"\n"
	"  -n, --dry-run          list them, remove nothing\n"
	"      --docker-host HOST engine address\n"
	"\n"
	"Exit status: 0 done (also when there was nothing), 3 engine error.\n",
	run_prune,
};

struct prune {
	struct sp_engine *engine;
	int dry_run;
	unsigned found, removed, failed;
};

static int prune_one(void *ud, const char *id, const char *name, const char *state,
		     const char *job)
{
	struct prune *pr = ud;
	struct sp_error err = SP_ERROR_INIT;

	pr->found++;
	if (pr->dry_run) {
		printf("would remove %.12s %s (job %s, %s)\n", id, name, job, state);
		return 0;
	}
	if (sp_container_remove(pr->engine, id, &err) < 0) {
		fprintf(stderr, "stagepipe prune: %.12s %s: %s\n", id, name, err.msg);
		pr->failed++;
		return 0;
	}
	pr->removed++;
	printf("removed %.12s %s (job %s, was %s)\n", id, name, job, state);
	return 0;
}

static int run_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "docker-host", required_argument, NULL, 256 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct prune pr;
	const char *host = NULL;
	int c, status;

	memset(&pr, 0, sizeof(pr));
	while ((c = getopt_long(argc, argv, "+nh", opts, NULL)) != -1) {
		switch (c) {
		case 'n': pr.dry_run = 1; break;
		case 256: host = optarg; break;
		case 'h':
			sp_cmd_print_usage(&sp_cmd_prune, stdout);
			return SP_EXIT_OK;
		default:
			return sp_cmd_usage_error(&sp_cmd_prune, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_prune, "unexpected argument \"%s\"", argv[optind]);
	if ((status = sp_cmd_open_engine(&pr.engine, "prune", host)) != 0)
		return status;
	if (sp_container_list_labelled(pr.engine, "io.stagepipe.job", prune_one, &pr, &err) < 0) {
		status = sp_cmd_fail("prune", &err);
		goto out;
	}
	if (!pr.found)
		printf("nothing to prune: no containers labelled io.stagepipe.job\n");
	else if (!pr.dry_run)
		printf("%u removed%s\n", pr.removed, pr.failed ? ", some could not be" : "");
	status = pr.failed ? SP_EXIT_INFRA : SP_EXIT_OK;
out:
	sp_engine_free(pr.engine);
	return status;
}
