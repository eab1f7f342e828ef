/*
 * build.c — `stagepipe build`: build one target of the pipeline's
 * Dockerfile with BuildKit and print the image id.
 *
 * The first piece of `stagepipe run` to land: it reads the same pipeline
 * file, resolves the same variables and sends the same build, so a user
 * can build a stage's image on its own.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <git2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/signals.h"
#include "core/buf.h"
#include "core/diag.h"
#include "core/error.h"
#include "core/gitinfo.h"
#include "core/pipeline.h"
#include "core/vars.h"
#include "core/xalloc.h"
#include "runners/docker/build.h"
#include "runners/docker/engine.h"
#include "runners/docker/progress.h"

static int run_build(int argc, char **argv);

const struct sp_cmd sp_cmd_build = {
	"build",
	"build one stage's Dockerfile target with BuildKit",
	"usage: stagepipe build [-f FILE] [-C DIR] [--stage NAME | --target TARGET]\n"
	"                       [-t TAG]... [--no-cache] [--pull] [--docker-host HOST] [-q]\n"
	"\n"
	"Builds a target of the pipeline's Dockerfile on the Docker engine, showing\n"
	"BuildKit's progress on stderr, and prints the image id on stdout.\n"
	"\n"
	"  -f, --file FILE        pipeline file (default: stagepipe.yml at the source root)\n"
	"  -C DIR                 source folder (default: the git work tree around the\n"
	"                         current folder, or the current folder)\n"
	"      --stage NAME       build this stage's target, tagged with its tags\n"
	"      --target TARGET    build this Dockerfile target (default: the first stage's)\n"
	"  -t, --tag TAG          also tag the image TAG (repeatable)\n"
	"      --no-cache         do not use the build cache\n"
	"      --pull             always pull newer base images\n"
	"      --docker-host HOST engine address (default: $DOCKER_HOST or\n"
	"                         unix:///var/run/docker.sock)\n"
	"  -q, --quiet            no build progress, only errors and the image id\n"
	"\n"
	"Exit status: 0 built, 1 the build failed, 2 usage or pipeline-file error,\n"
	"3 engine error, 130 interrupted.\n",
	run_build,
};

static void new_job_id(char *out, size_t len)
{
	unsigned char r[6];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	snprintf(out, len, "local-");
	for (i = 0; i < sizeof(r); i++)
		snprintf(out + strlen(out), len - strlen(out), "%02x", r[i]);
}

/* Prints an error and returns the exit status that goes with it. */
static int report(const struct sp_error *err)
{
	fprintf(stderr, "stagepipe build: %s\n", err->msg);
	return sp_error_exit_status(err->code ? err->code : SP_ERROR);
}

static int run_build(int argc, char **argv)
{
	enum { OPT_STAGE = 256, OPT_TARGET, OPT_NOCACHE, OPT_PULL, OPT_HOST };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "stage", required_argument, NULL, OPT_STAGE },
		{ "target", required_argument, NULL, OPT_TARGET },
		{ "tag", required_argument, NULL, 't' },
		{ "no-cache", no_argument, NULL, OPT_NOCACHE },
		{ "pull", no_argument, NULL, OPT_PULL },
		{ "docker-host", required_argument, NULL, OPT_HOST },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_diags diags = SP_DIAGS_INIT;
	struct sp_gitinfo git;
	struct sp_pipeline *p = NULL;
	struct sp_engine_config cfg;
	struct sp_engine *engine = NULL;
	struct sp_build_opts bo;
	struct sp_build_result res;
	struct sp_progress_plain *plain = NULL;
	struct sp_progress_handler handler;
	struct sp_vars vars;
	const struct sp_stage *stage = NULL;
	const char *file = NULL, *dir = ".", *stage_name = NULL, *target = NULL, *host = NULL;
	char **tags = NULL, **argvals = NULL, *context = NULL, *pfile = NULL;
	struct sp_build_kv *args = NULL, labels[3];
	size_t ntags = 0, i;
	int c, quiet = 0, no_cache = 0, pull = 0, status = SP_EXIT_OK;
	char job[32];

	memset(&git, 0, sizeof(git));
	memset(&cfg, 0, sizeof(cfg));
	memset(&res, 0, sizeof(res));
	tags = sp_xcalloc((size_t)argc + 1, sizeof(*tags));
	while ((c = getopt_long(argc, argv, "+f:C:t:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'C': dir = optarg; break;
		case OPT_STAGE: stage_name = optarg; break;
		case OPT_TARGET: target = optarg; break;
		case 't': tags[ntags++] = sp_xstrdup(optarg); break;
		case OPT_NOCACHE: no_cache = 1; break;
		case OPT_PULL: pull = 1; break;
		case OPT_HOST: host = optarg; break;
		case 'q': quiet = 1; break;
		case 'h':
			sp_cmd_print_usage(&sp_cmd_build, stdout);
			goto out;
		default:
			status = sp_cmd_usage_error(&sp_cmd_build, "bad option");
			goto out;
		}
	}
	if (optind < argc) {
		status = sp_cmd_usage_error(&sp_cmd_build, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (stage_name && target) {
		status = sp_cmd_usage_error(&sp_cmd_build, "--stage and --target exclude each other");
		goto out;
	}
	sp_signals_install();

	if (sp_gitinfo_discover(&git, dir, &err) < 0) {
		status = report(&err);
		goto out;
	}
	pfile = file ? sp_xstrdup(file) : sp_xasprintf("%s/stagepipe.yml", git.root);
	memset(&vars, 0, sizeof(vars));
	vars.getenv = sp_vars_process_env;
	if (sp_pipeline_load_file(&p, pfile, &vars, &diags) < 0) {
		sp_diags_print(&diags, pfile, stderr);
		status = SP_EXIT_USAGE;
		goto out;
	}
	if (stage_name) {
		stage = sp_pipeline_stage(p, stage_name);
		if (!stage) {
			status = sp_cmd_usage_error(&sp_cmd_build, "no stage \"%s\" in %s", stage_name, pfile);
			goto out;
		}
	} else if (!target) {
		stage = &p->stages[p->order[0]];
	}
	if (stage)
		target = stage->target;

	sp_gitinfo_vars(&git, &vars);
	vars.pipeline = p->name;
	vars.stage = stage ? stage->name : NULL;
	for (i = 0; stage && i < stage->tags.n; i++) {
		char *t;
		if (sp_pipeline_expand(p, stage->tags.items[i].s, stage->tags.items[i].pos, &vars,
				       &t, &err) < 0) {
			status = report(&err);
			goto out;
		}
		tags = sp_xrealloc(tags, (ntags + 2) * sizeof(*tags));
		tags[ntags++] = t;
		tags[ntags] = NULL;
	}
	args = sp_xcalloc(p->build.args.n + 1, sizeof(*args));
	argvals = sp_xcalloc(p->build.args.n + 1, sizeof(*argvals));
	for (i = 0; i < p->build.args.n; i++) {
		const struct sp_pvar *a = &p->build.args.items[i];
		if (sp_pipeline_expand(p, a->value, a->pos, &vars, &argvals[i], &err) < 0) {
			status = report(&err);
			goto out;
		}
		args[i].name = a->name;
		args[i].value = argvals[i];
	}
	memset(&bo, 0, sizeof(bo));
	if (sp_pipeline_network(p, &vars, &bo.network, &err) < 0) {
		status = report(&err);
		goto out;
	}
	context = p->build.context[0] == '/' ? sp_xstrdup(p->build.context)
					      : sp_xasprintf("%s/%s", git.root, p->build.context);

	if (sp_engine_config_from_env(&cfg, host, sp_vars_process_env, NULL, &err) < 0 ||
	    sp_engine_open(&engine, &cfg, &err) < 0) {
		status = report(&err);
		goto out;
	}

	new_job_id(job, sizeof(job));
	labels[0].name = "io.stagepipe.job";
	labels[0].value = job;
	labels[1].name = "io.stagepipe.pipeline";
	labels[1].value = p->name;
	labels[2].name = "io.stagepipe.stage";
	labels[2].value = stage ? stage->name : "";
	bo.context_dir = context;
	bo.dockerfile = p->build.dockerfile;
	bo.target = target;
	bo.tags = (const char *const *)tags;
	bo.ntags = ntags;
	bo.args = args;
	bo.nargs = p->build.args.n;
	bo.labels = labels;
	bo.nlabels = stage ? 3 : 2;
	bo.no_cache = no_cache || p->build.no_cache;
	bo.pull = pull || p->build.pull;
	bo.cancel = sp_signals_cancel;
	if (!quiet) {
		plain = sp_progress_plain_new(stderr);
		sp_progress_plain_handler(plain, &handler);
		bo.progress = &handler;
		fprintf(stderr, "building target %s of %s (engine %s, API %s)\n", target,
			context, sp_engine_host(engine), sp_engine_api_version(engine));
	}
	if (sp_docker_build(engine, &bo, &res, &err) < 0) {
		status = report(&err);
		goto out;
	}
	if (!quiet) {
		fprintf(stderr, "built %s in %.1fs (context: %llu files, %llu bytes)\n", target,
			res.seconds, res.context_files, res.context_bytes);
		for (i = 0; i < ntags; i++)
			fprintf(stderr, "tagged %s\n", tags[i]);
	}
	printf("%s\n", res.image_id);
out:
	sp_build_result_release(&res);
	sp_progress_plain_free(plain);
	sp_engine_free(engine);
	sp_engine_config_release(&cfg);
	for (i = 0; tags && i < ntags; i++)
		free(tags[i]);
	free(tags);
	for (i = 0; p && argvals && i < p->build.args.n; i++)
		free(argvals[i]);
	free(argvals);
	free(args);
	free(context);
	free(pfile);
	sp_pipeline_free(p);
	sp_diags_release(&diags);
	sp_gitinfo_release(&git);
	return status;
}
