/*
 * validate.c — `stagepipe validate`: check a pipeline file, run nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/base/buf.h"
#include "core/yaml/diag.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"

static int run_validate(int argc, char **argv);

const struct sp_cmd sp_cmd_validate = {
	"validate",
	"check a pipeline file and show its stages in run order",
	"usage: stagepipe validate [-f FILE] [-q]\n"
	"\n"
	"Checks the pipeline file without running anything and prints its stages\n"
	"in the order they would run.  Problems are printed as FILE:LINE:COL: message.\n"
	"\n"
	"  -f, --file FILE   pipeline file (default: stagepipe.yml)\n"
	"  -q, --quiet       print nothing on success\n"
	"\n"
	"Exit status: 0 valid, 2 invalid or unreadable.\n",
	run_validate,
};

static void describe_stage(const struct sp_stage *st, struct sp_buf *b)
{
	char dur[32];
	size_t i;

	sp_buf_addf(b, "target %s", st->target);
	if (st->kind == SP_STAGE_PYTEST) {
		sp_buf_addstr(b, "; pytest");
		for (i = 0; i < st->args.n; i++)
			sp_buf_addf(b, " %s", st->args.items[i].s);
		if (st->python)
			sp_buf_addf(b, "; python %s", st->python);
	} else if (st->kind == SP_STAGE_RUN) {
		sp_buf_addstr(b, "; run");
		for (i = 0; i < st->args.n; i++)
			sp_buf_addf(b, " %s", st->args.items[i].s);
	} else {
		sp_buf_addstr(b, "; image only (no command)");
	}
	if (st->has_coverage_min)
		sp_buf_addf(b, "; coverage >= %g%%", st->coverage_min);
	sp_duration_format(dur, sizeof(dur), st->timeout_ms);
	sp_buf_addf(b, "; timeout %s", dur);
	if (st->needs.n) {
		sp_buf_addstr(b, "; needs");
		for (i = 0; i < st->needs.n; i++)
			sp_buf_addf(b, "%s %s", i ? "," : "", st->needs.items[i].s);
	}
	if (st->tags.n)
		sp_buf_addf(b, "; %zu tag%s%s", st->tags.n, st->tags.n == 1 ? "" : "s",
			    st->push ? ", pushed" : "");
	for (i = 0; i < st->matrix.n; i++)
		sp_buf_addf(b, "%s%s=%s", i ? ", " : "; matrix ", st->matrix.items[i].name,
			    st->matrix.items[i].value);
	if (st->health.enabled) {
		if (st->health.port)
			sp_buf_addf(b, "; healthcheck http :%d%s", st->health.port, st->health.path);
		else
			sp_buf_addstr(b, "; healthcheck");
	}
}

static int run_validate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_diags diags = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;
	struct sp_vars env;
	const char *file = "stagepipe.yml";
	int quiet = 0, c, status;
	size_t i, width = 0;

	while ((c = getopt_long(argc, argv, "+f:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': sp_cmd_print_usage(&sp_cmd_validate, stdout); return SP_EXIT_OK;
		default: return sp_cmd_usage_error(&sp_cmd_validate, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_validate, "unexpected argument \"%s\"", argv[optind]);

	memset(&env, 0, sizeof(env));
	env.getenv = sp_vars_process_env;
	if (sp_pipeline_load_file(&p, file, &env, &diags) < 0) {
		sp_diags_print(&diags, file, stderr);
		status = SP_EXIT_USAGE;
		goto out;
	}
	status = SP_EXIT_OK;
	if (quiet)
		goto out;
	printf("%s: pipeline \"%s\" is valid, %zu stage%s\n", file, p->name, p->nstages,
	       p->nstages == 1 ? "" : "s");
	for (i = 0; i < p->nstages; i++)
		if (strlen(p->stages[i].name) > width)
			width = strlen(p->stages[i].name);
	for (i = 0; i < p->nstages; i++) {
		const struct sp_stage *st = &p->stages[p->order[i]];
		struct sp_buf b = SP_BUF_INIT;
		describe_stage(st, &b);
		printf("  %zu. %-*s  %s\n", i + 1, (int)width, st->name, b.data);
		sp_buf_release(&b);
	}
out:
	sp_diags_release(&diags);
	sp_pipeline_free(p);
	return status;
}
