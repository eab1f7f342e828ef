/*
 * build.c — `stagepipe build`: build one target of the pipeline's
 * Dockerfile with BuildKit and print the image id.
 *
 * The first piece of `stagepipe run` to land: it reads the same pipeline
 * file, resolves the same variables and sends the same build, so a user
 * can build a stage's image on its own.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/signals.h"
#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/exec/executor.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"
#include "core/base/xalloc.h"
#include "runners/docker/build.h"
#include "runners/docker/engine.h"

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

static void print_line(void *ud, enum sp_log_stream stream, const char *line, size_t len)
{
	(void)ud;
	(void)stream;
	fwrite(line, 1, len, stderr);
	fputc('\n', stderr);
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
	struct sp_source src;
	struct sp_engine *engine = NULL;
	struct sp_build_opts bo;
	struct sp_build_result res;
	struct sp_vars vars;
	const struct sp_stage *stage = NULL;
	const struct sp_pipeline *p;
	const char *file = NULL, *dir = NULL, *stage_name = NULL, *target = NULL, *host = NULL;
	struct sp_build_settings bs;
	char **tags = NULL;
	const char **mnames = NULL, **mvalues = NULL;
	struct sp_build_kv labels[3];
	size_t ntags = 0, i;
	int c, quiet = 0, no_cache = 0, pull = 0, status = SP_EXIT_OK;
	char job[32];

	memset(&src, 0, sizeof(src));
	memset(&res, 0, sizeof(res));
	memset(&bs, 0, sizeof(bs));
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
	if ((status = sp_source_load(&src, "build", dir, file, NULL)) != 0)
		goto out;
	p = src.pipeline;
	if (stage_name) {
		stage = sp_pipeline_stage(p, stage_name);
		if (!stage) {
			status = sp_cmd_usage_error(&sp_cmd_build, "no stage \"%s\" in %s", stage_name,
						    src.file);
			goto out;
		}
	} else if (!target) {
		stage = &p->stages[p->order[0]];
	}
	if (stage)
		target = stage->target;

	vars = src.vars;
	vars.stage = stage ? stage->name : NULL;
	if (stage && stage->matrix.n) {
		mnames = sp_xcalloc(stage->matrix.n, sizeof(*mnames));
		mvalues = sp_xcalloc(stage->matrix.n, sizeof(*mvalues));
		for (i = 0; i < stage->matrix.n; i++) {
			mnames[i] = stage->matrix.items[i].name;
			mvalues[i] = stage->matrix.items[i].value;
		}
		vars.matrix_names = mnames;
		vars.matrix_values = mvalues;
		vars.nmatrix = stage->matrix.n;
	}
	for (i = 0; stage && i < stage->tags.n; i++) {
		char *t;
		if (sp_pipeline_expand(p, stage->tags.items[i].s, stage->tags.items[i].pos, &vars,
				       &t, &err) < 0) {
			status = sp_cmd_fail("build", &err);
			goto out;
		}
		tags = sp_xrealloc(tags, (ntags + 2) * sizeof(*tags));
		tags[ntags++] = t;
		tags[ntags] = NULL;
	}
	memset(&bo, 0, sizeof(bo));
	if (sp_build_settings_expand(&bs, p, src.git.root, &vars, &err) < 0) {
		status = sp_cmd_fail("build", &err);
		goto out;
	}
	if (stage)
		sp_build_settings_add_matrix(&bs, stage);
	if ((status = sp_cmd_open_engine(&engine, "build", host)) != 0)
		goto out;

	sp_cmd_job_id(job, sizeof(job), "local");
	labels[0].name = "io.stagepipe.job";
	labels[0].value = job;
	labels[1].name = "io.stagepipe.pipeline";
	labels[1].value = p->name;
	labels[2].name = "io.stagepipe.stage";
	labels[2].value = stage ? stage->name : "";
	bo.context_dir = bs.context_dir;
	bo.network = bs.network;
	bo.dockerfile = p->build.dockerfile;
	bo.target = target;
	bo.tags = (const char *const *)tags;
	bo.ntags = ntags;
	bo.args = bs.args;
	bo.nargs = bs.nargs;
	bo.labels = labels;
	bo.nlabels = stage ? 3 : 2;
	bo.no_cache = no_cache || p->build.no_cache;
	bo.pull = pull || p->build.pull;
	bo.cache_from = (const char *const *)bs.cache_from;
	bo.ncache_from = bs.ncache_from;
	bo.cancel = sp_signals_cancel;
	if (!quiet) {
		bo.log = print_line;
		fprintf(stderr, "building target %s of %s (engine %s, API %s)\n", target,
			bs.context_dir, sp_engine_host(engine), sp_engine_api_version(engine));
	}
	if (sp_docker_build(engine, &bo, &res, &err) < 0) {
		status = sp_cmd_fail("build", &err);
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
	sp_engine_free(engine);
	for (i = 0; tags && i < ntags; i++)
		free(tags[i]);
	free(tags);
	free(mnames);
	free(mvalues);
	sp_build_settings_release(&bs);
	sp_source_release(&src);
	return status;
}
