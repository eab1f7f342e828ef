/*
 * prune.c — `stagepipe prune`: remove what crashed runs left behind.
 *
 * Every container stagepipe creates carries the label io.stagepipe.job;
 * a run removes its own, but a run killed with SIGKILL (or a machine that
 * lost power) cannot.  This finds them by label and removes them — except
 * those whose run may still be going (label io.stagepipe.owner "host:pid":
 * alive here, or still running for another host), so pruning never breaks
 * a run in progress.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "core/base/error.h"
#include "runners/docker/container.h"

static int run_prune(int argc, char **argv);

const struct sp_cmd sp_cmd_prune = {
	"prune",
	"remove containers left behind by interrupted runs",
	"usage: stagepipe prune [-n] [--all] [--docker-host HOST]\n"
	"\n"
	"Removes the containers labelled io.stagepipe.job (and the networks of\n"
	"services) whose run is no longer alive, and says what it removed.  A run\n"
	"on this machine is asked directly;\n"
	"for a run elsewhere (an engine shared over tcp://) only containers that\n"
	"have stopped are removed.\n"
	"\n"
	"  -n, --dry-run          list them, remove nothing\n"
	"      --all              also those of runs still going on this machine\n"
	"      --docker-host HOST engine address\n"
	"\n"
	"Exit status: 0 done (also when there was nothing), 3 engine error.\n",
	run_prune,
};

struct prune {
	struct sp_engine *engine;
	int dry_run, all;
	char host[256];
	unsigned found, removed, failed, alive;
};

static int prune_one(void *ud, const struct sp_container_summary *c)
{
	struct prune *pr = ud;
	struct sp_error err = SP_ERROR_INIT;

	pr->found++;
	if (!pr->all && sp_container_owner_alive(c, pr->host)) {
		pr->alive++;
		printf("kept %.12s %s (job %s: its run %s may still be going; --all removes it)\n",
		       c->id, c->name, c->job, *c->owner ? c->owner : "on an unknown host");
		return 0;
	}
	if (pr->dry_run) {
		printf("would remove %.12s %s (job %s, %s)\n", c->id, c->name, c->job, c->state);
		return 0;
	}
	if (sp_container_remove(pr->engine, c->id, &err) < 0) {
		fprintf(stderr, "stagepipe prune: %.12s %s: %s\n", c->id, c->name, err.msg);
		pr->failed++;
		return 0;
	}
	pr->removed++;
	printf("removed %.12s %s (job %s, was %s)\n", c->id, c->name, c->job, c->state);
	return 0;
}

/* A services' network (after the containers, which were on it). */
static int prune_network(void *ud, const struct sp_container_summary *n)
{
	struct prune *pr = ud;
	struct sp_error err = SP_ERROR_INIT;

	pr->found++;
	if (!pr->all && sp_container_owner_alive(n, pr->host)) {
		pr->alive++;
		printf("kept network %s (job %s: its run %s may still be going; --all removes it)\n",
		       n->name, n->job, *n->owner ? n->owner : "on an unknown host");
		return 0;
	}
	if (pr->dry_run) {
		printf("would remove network %s (job %s)\n", n->name, n->job);
		return 0;
	}
	if (sp_container_network_remove(pr->engine, n->id, &err) < 0) {
		fprintf(stderr, "stagepipe prune: network %s: %s\n", n->name, err.msg);
		pr->failed++;
		return 0;
	}
	pr->removed++;
	printf("removed network %s (job %s)\n", n->name, n->job);
	return 0;
}

static int run_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'a' },
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
		case 'a': pr.all = 1; break;
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
	if (gethostname(pr.host, sizeof(pr.host)) < 0)
		pr.host[0] = '\0';
	pr.host[sizeof(pr.host) - 1] = '\0';
	if ((status = sp_cmd_open_engine(&pr.engine, "prune", host)) != 0)
		return status;
	if (sp_container_list_labelled(pr.engine, "io.stagepipe.job", prune_one, &pr, &err) < 0) {
		status = sp_cmd_fail("prune", &err);
		goto out;
	}
	if (sp_container_network_list(pr.engine, "io.stagepipe.job", prune_network, &pr, &err) < 0) {
		status = sp_cmd_fail("prune", &err);
		goto out;
	}
	if (!pr.found)
		printf("nothing to prune: no containers labelled io.stagepipe.job\n");
	else if (!pr.dry_run)
		printf("%u removed%s%s\n", pr.removed, pr.alive ? ", some kept (runs in progress)" : "",
		       pr.failed ? ", some could not be removed" : "");
	status = pr.failed ? SP_EXIT_INFRA : SP_EXIT_OK;
out:
	sp_engine_free(pr.engine);
	return status;
}
