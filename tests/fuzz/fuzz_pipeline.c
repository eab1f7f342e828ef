/*
 * fuzz_pipeline.c — libFuzzer target: the YAML pipeline loader.
 *
 * The input is a pipeline file (stagepipe.yml from any branch) given to
 * sp_pipeline_load_buffer with a small fake environment.  A file that
 * loads is then asked about its on: rules for each kind of event, and a
 * file that does not has every diagnostic formatted, as the CLI prints it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"
#include "core/yaml/diag.h"
#include "tests/fuzz/fuzz.h"

static const char *fake_env(const char *name, void *ud)
{
	(void)ud;
	if (!strcmp(name, "HOME"))
		return "/root";
	if (!strcmp(name, "NET"))
		return "none";
	if (!strcmp(name, "EMPTY"))
		return "";
	return NULL;
}

static void expand(const struct sp_pipeline *p, const char *s, struct sp_pos pos,
		   const struct sp_vars *env)
{
	struct sp_error err = SP_ERROR_INIT;
	char *out = NULL;

	if (!s)
		return;
	if (sp_pipeline_expand(p, s, pos, env, &out, &err) == 0)
		free(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const events[][2] = {
		{ "push", "main" }, { "push", "refs/heads/release/1.0" },
		{ "tag", "v1.2.3" }, { "pull_request", "main" }, { "manual", "" },
		{ "bogus", "x" },
	};
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;
	struct sp_vars env;
	size_t i;
	int rc;

	memset(&env, 0, sizeof(env));
	env.getenv = fake_env;
	env.git_sha = "0123456789abcdef0123456789abcdef01234567";
	env.git_short_sha = "0123456";
	env.git_branch = "main";
	env.pipeline = "fuzz";
	env.sample = (size && data[0] & 1);

	rc = sp_pipeline_load_buffer(&p, "fuzz.yml", (const char *)data, size, &env, &d);
	if (rc == 0 && p) {
		char why[256];
		enum sp_network net;
		size_t j;

		for (i = 0; i < sizeof(events) / sizeof(events[0]); i++)
			(void)sp_pipeline_on_match(p, events[i][0], events[i][1], why, sizeof(why));
		(void)sp_pipeline_network(p, &env, &net, NULL);
		/* what a job does with the values once it knows its commit */
		for (j = 0; j < p->build.args.n; j++)
			expand(p, p->build.args.items[j].value, p->build.args.items[j].pos, &env);
		for (i = 0; i < p->nstages; i++) {
			const struct sp_stage *st = &p->stages[i];
			(void)sp_stage_measures_coverage(st);
			for (j = 0; j < st->tags.n; j++)
				expand(p, st->tags.items[j].s, st->tags.items[j].pos, &env);
			for (j = 0; j < st->env.n; j++)
				expand(p, st->env.items[j].value, st->env.items[j].pos, &env);
		}
	}
	for (i = 0; i < d.n; i++) /* items kept; count() adds the dropped */
		free(sp_diags_format(&d, i, "fuzz.yml"));
	sp_pipeline_free(p);
	sp_diags_release(&d);
	return 0;
}
