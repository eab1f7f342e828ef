/*
 * test_pipeline.c — the pipeline loader: valid files, and every class of
 * error with the exact line and column reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/yaml/diag.h"
#include "core/base/error.h"
#include "core/pipeline/pipeline.h"
#include "core/base/xalloc.h"
#include "core/pipeline/vars.h"

/* ---- helpers ---- */

static const char *fake_env(const char *name, void *ud)
{
	(void)ud;
	if (!strcmp(name, "REGISTRY"))
		return "127.0.0.1:5000";
	if (!strcmp(name, "UPPER"))
		return "Registry.Example.com/Team";
	if (!strcmp(name, "NET"))
		return "none";
	return NULL;
}

static struct sp_vars test_env(void)
{
	struct sp_vars v;

	memset(&v, 0, sizeof(v));
	v.getenv = fake_env;
	return v;
}

static struct sp_pipeline *load_ok(const char *yaml)
{
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;
	struct sp_vars env = test_env();
	int rc = sp_pipeline_load_buffer(&p, "t.yml", yaml, strlen(yaml), &env, &d);

	if (rc != 0) {
		size_t i;
		for (i = 0; i < d.n; i++)
			fprintf(stderr, "unexpected: %d:%d: %s\n", d.items[i].line,
				d.items[i].col, d.items[i].msg);
	}
	assert_int_equal(rc, 0);
	assert_non_null(p);
	sp_diags_release(&d);
	return p;
}

struct bad_case {
	const char *name;
	const char *yaml;
	int line, col;
	const char *msg;  /* substring of the message at that position */
};

/* Loads c->yaml and asserts that some diagnostic is at line:col with msg. */
static void check_bad(void **state)
{
	const struct bad_case *c = *state;
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;
	struct sp_vars env = test_env();
	int rc = sp_pipeline_load_buffer(&p, "t.yml", c->yaml, strlen(c->yaml), &env, &d);
	size_t i;
	int found = 0;

	assert_int_equal(rc, SP_ECONFIG);
	assert_null(p);
	assert_true(d.n > 0);
	for (i = 0; i < d.n; i++) {
		if (d.items[i].line == c->line && d.items[i].col == c->col &&
		    strstr(d.items[i].msg, c->msg))
			found = 1;
	}
	if (!found) {
		fprintf(stderr, "case %s: wanted %d:%d: ...%s...\n", c->name, c->line, c->col, c->msg);
		for (i = 0; i < d.n; i++)
			fprintf(stderr, "  got %d:%d: %s\n", d.items[i].line, d.items[i].col,
				d.items[i].msg);
	}
	assert_true(found);
	sp_diags_release(&d);
}

#define HEAD "version: 1\nname: app\n"
#define STAGE1 "stages:\n  - name: test\n    target: testing\n"

static void test_python_key(void **state)
{
	static const char *const ok[] = { "python3", "python3.12", "/opt/venv/bin/python",
					  "pypy3", "python3.13t" };
	struct sp_pipeline *p;
	size_t i;

	(void)state;
	p = load_ok(HEAD STAGE1 "    pytest: []\n");
	assert_null(p->stages[0].python);
	sp_pipeline_free(p);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *y = sp_xasprintf(HEAD STAGE1 "    pytest: []\n    python: %s\n", ok[i]);
		p = load_ok(y);
		assert_string_equal(p->stages[0].python, ok[i]);
		sp_pipeline_free(p);
		free(y);
	}
}

static const struct bad_case bad_cases[] = {
	/* YAML syntax */
	{ "syntax_unclosed_flow", HEAD "stages: [a, b\n", 4, 1, "YAML syntax" },
	{ "syntax_bad_indent", HEAD "stages:\n  - name: x\n   target: y\n", 5, 4, "YAML syntax" },
	{ "syntax_tab", HEAD "stages:\n\t- name: x\n", 4, 1, "YAML syntax" },
	{ "syntax_unclosed_quote", HEAD "stages:\n  - name: \"x\n", 5, 1, "YAML syntax" },
	{ "two_documents", HEAD "stages: []\n---\nname: b\n", 4, 1, "only one YAML document" },
	{ "duplicate_key", HEAD "name: again\n" STAGE1, 3, 1, "duplicate key \"name\" (first at line 2)" },
	{ "duplicate_stage_key", HEAD STAGE1 "    target: runtime\n", 6, 5, "duplicate key \"target\"" },
	{ "unknown_alias", HEAD STAGE1 "    env: *nope\n", 6, 10, "unknown alias *nope" },
	{ "yaml_tag", HEAD "stages: !!map {}\n", 3, 9, "YAML tags" },
	/* top level */
	{ "root_not_map", "- a\n- b\n", 1, 1, "must be a mapping" },
	{ "runs_on_bad_label", HEAD STAGE1 "runs_on: [linux, GPU]\n", 6, 18, "\"GPU\" is not a label" },
	{ "runs_on_map", HEAD STAGE1 "runs_on: {a: b}\n", 6, 10, "runs_on must be a list" },
	/* services */
	{ "services_not_list", HEAD STAGE1 "    pytest: true\n    services: {a: b}\n", 7, 15, "services must be a list of mappings, not a mapping" },
	{ "services_on_build_stage", HEAD STAGE1 "    services: [{name: db, image: pg}]\n", 6, 15, "services need a pytest or run stage (stage \"test\" only builds)" },
	{ "service_scalar", HEAD STAGE1 "    pytest: true\n    services:\n" "      - db\n", 8, 9, "each service must be a mapping" },
	{ "service_unknown_key", HEAD STAGE1 "    pytest: true\n    services:\n" "      - name: db\n        image: pg\n        prot: 5\n", 10, 9, "unknown key \"prot\" in service \"db\" of stage \"test\"" },
	{ "service_no_image", HEAD STAGE1 "    pytest: true\n    services:\n" "      - name: db\n", 8, 9, "service \"db\" of stage \"test\" needs \"image\" (an image reference) or \"target\"" },
	{ "service_both", HEAD STAGE1 "    pytest: true\n    services:\n" "      - name: db\n        image: pg\n        target: db\n", 10, 17, "has both \"image\" and \"target\"" },
	{ "service_no_name", HEAD STAGE1 "    pytest: true\n    services:\n" "      - image: pg\n", 8, 9, "service 1 of stage \"test\" is missing the required key \"name\"" },
	{ "service_bad_name", HEAD STAGE1 "    pytest: true\n    services:\n" "      - name: my_db\n        image: pg\n", 8, 15, "service name \"my_db\" must be a host name" },
	{ "service_name_dash", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db-, image: pg}\n", 8, 16, "must be a host name" },
	{ "service_dup", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg}\n      - {name: db, image: pg}\n", 9, 9, "duplicate service name \"db\" in stage \"test\" (first at line 8)" },
	{ "service_bad_image", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: \"Bad Image\"}\n", 8, 27, "image \"Bad Image\" is not a valid image reference" },
	{ "service_bad_target", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, target: \"-x\"}\n", 8, 28, "not a valid Dockerfile stage name" },
	{ "service_bad_var", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: \"pg:${nope\"}\n", 8, 31, "unterminated \"${\"" },
	{ "service_env_name", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, env: {1X: a}}\n", 8, 37, "invalid name \"1X\" in env" },
	{ "service_command_empty", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, command: []}\n", 8, 40, "command must not be empty" },
	{ "ready_not_map", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, ready: 5432}\n", 8, 38, "ready must be a mapping" },
	{ "ready_port_bad", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, ready: {port: 0}}\n", 8, 45, "ready.port must be a port number (1-65535), not 0" },
	{ "ready_unknown", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, ready: {prot: 5}}\n", 8, 39, "did you mean \"port\"?" },
	{ "ready_both", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, ready: {port: 5, cmd: [x]}}\n", 8, 38, "ready has both port and cmd" },
	{ "ready_cmd_empty", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, ready: {cmd: []}}\n", 8, 44, "ready.cmd must not be empty" },
	{ "ready_timeout_bad", HEAD STAGE1 "    pytest: true\n    services:\n" "      - {name: db, image: pg, ready: {timeout: soon}}\n", 8, 48, "invalid ready.timeout" },
	/* secrets */
	{ "secrets_map", HEAD STAGE1 "secrets: {A: b}\n", 6, 10, "secrets must be a list" },
	{ "secrets_scalar", HEAD STAGE1 "secrets: TOKEN\n", 6, 10, "secrets must be a list" },
	{ "secrets_bad_name", HEAD STAGE1 "secrets: [TOKEN, 9LIVES]\n", 6, 18,
	  "\"9LIVES\" is not an environment variable name" },
	{ "secrets_dash_name", HEAD STAGE1 "secrets:\n  - API-KEY\n", 7, 5,
	  "\"API-KEY\" is not an environment variable name" },
	{ "secrets_twice", HEAD STAGE1 "secrets: [TOKEN, TOKEN]\n", 6, 18,
	  "\"TOKEN\" is listed twice (first at line 6)" },
	{ "secrets_reserved", HEAD STAGE1 "secrets: [STAGEPIPE_GIT_TOKEN]\n", 6, 11,
	  "names starting with STAGEPIPE_ are stagepipe's own" },
	{ "secrets_item_map", HEAD STAGE1 "secrets: [{a: b}]\n", 6, 11, "each item of secrets must be a string" },
	{ "secret_in_build_arg", HEAD "secrets: [API_TOKEN]\nbuild:\n  args: {TOKEN: \"${env.API_TOKEN}\"}\n" STAGE1,
	  5, 17, "build.args.TOKEN uses the secret API_TOKEN (${env.API_TOKEN}): build arguments are "
	  "kept in the image's history" },
	{ "secret_in_build_arg_default", HEAD "build:\n  args:\n    X: \"a-${env.API_TOKEN:-none}-b\"\n"
	  STAGE1 "secrets: [API_TOKEN]\n", 5, 8, "build.args.X uses the secret API_TOKEN" },
	{ "secret_set_by_env", HEAD "secrets: [API_TOKEN]\n" STAGE1 "    env: {API_TOKEN: x}\n", 7, 22,
	  "stage \"test\" env sets API_TOKEN, which is a secret" },
	{ "empty_file", "", 1, 1, "empty" },
	{ "missing_version", "name: app\n" STAGE1, 1, 1, "missing required key \"version\"" },
	{ "missing_name", "version: 1\n" STAGE1, 1, 1, "missing required key \"name\"" },
	{ "missing_stages", HEAD, 1, 1, "missing required key \"stages\"" },
	{ "bad_version", "version: 2\nname: app\n" STAGE1, 1, 10, "unsupported version 2" },
	{ "version_string", "version: \"one\"\nname: app\n" STAGE1, 1, 10, "unsupported version" },
	{ "unknown_top_key", HEAD "stage:\n  - name: x\n" STAGE1, 3, 1, "did you mean \"stages\"?" },
	{ "x_key_nested", HEAD STAGE1 "    x-note: 1\n", 6, 5, "unknown key \"x-note\"" },
	{ "checkout_unknown", HEAD "checkout:\n  submodule: true\n" STAGE1, 4, 3, "did you mean \"submodules\"?" },
	{ "checkout_not_bool", HEAD "checkout:\n  submodules: 2\n" STAGE1, 4, 15, "must be true or false" },
	{ "unknown_top_far", HEAD "zzzzzz: 1\n" STAGE1, 3, 1, "expected one of: version, name" },
	{ "stages_not_list", HEAD "stages: {a: 1}\n", 3, 9, "stages must be a list, not a mapping" },
	{ "stages_empty", HEAD "stages: []\n", 3, 9, "stages must not be empty" },
	{ "name_list", "version: 1\nname: [a]\n" STAGE1, 2, 7, "name must be a string, not a list" },
	/* build */
	{ "build_unknown", HEAD "build:\n  dockerfil: D\n" STAGE1, 4, 3, "did you mean \"dockerfile\"?" },
	{ "build_network", HEAD "build:\n  network: bridge\n" STAGE1, 4, 12, "must be default, host or none" },
	{ "build_network_var", HEAD "build:\n  network: ${env.NOPE:-bridge}\n" STAGE1, 4, 12, "(from \"${env.NOPE:-bridge}\")" },
	{ "build_args_list", HEAD "build:\n  args: [a]\n" STAGE1, 4, 9, "build.args must be a mapping" },
	{ "build_args_badname", HEAD "build:\n  args:\n    1X: y\n" STAGE1, 5, 5, "invalid name \"1X\"" },
	{ "build_args_nested", HEAD "build:\n  args:\n    X: {a: 1}\n" STAGE1, 5, 8, "build.args.X must be a string" },
	{ "build_no_cache", HEAD "build:\n  no_cache: maybe\n" STAGE1, 4, 13, "must be true or false" },
	{ "build_context_empty", HEAD "build:\n  context: \"\"\n" STAGE1, 4, 12, "must not be empty" },
	/* stages */
	{ "stage_not_map", HEAD "stages:\n  - test\n", 4, 5, "each stage must be a mapping" },
	{ "stage_unknown_key", HEAD STAGE1 "    timout: 15m\n", 6, 5, "unknown key \"timout\" in stage \"test\"; did you mean \"timeout\"?" },
	{ "stage_unknown_key2", HEAD STAGE1 "    need: [x]\n", 6, 5, "did you mean \"needs\"?" },
	{ "stage_missing_name", HEAD "stages:\n  - target: testing\n", 4, 5, "stage 1 is missing the required key \"name\"" },
	{ "stage_missing_target", HEAD "stages:\n  - name: test\n", 4, 5, "missing the required key \"target\"" },
	{ "stage_bad_name", HEAD "stages:\n  - name: Test Stage\n    target: t\n", 4, 11, "must be lower case" },
	{ "stage_bad_target", HEAD "stages:\n  - name: t\n    target: 9lives\n", 5, 13, "not a valid Dockerfile stage name" },
	{ "duplicate_stage", HEAD STAGE1 "  - name: test\n    target: runtime\n", 6, 5, "duplicate stage name \"test\" (first at line 4)" },
	{ "pytest_and_run", HEAD STAGE1 "    pytest: [-v]\n    run: make test\n", 7, 10, "both \"pytest\" and \"run\"" },
	{ "pytest_scalar", HEAD STAGE1 "    pytest: -v\n", 6, 13, "pytest must be a list" },
	{ "pytest_item_map", HEAD STAGE1 "    pytest: [{a: 1}]\n", 6, 14, "each item of pytest must be a string" },
	{ "run_empty", HEAD STAGE1 "    run: []\n", 6, 10, "run must not be empty" },
	{ "coverage_no_pytest", HEAD STAGE1 "    coverage: {min: 80}\n", 6, 15, "coverage needs a pytest stage" },
	{ "coverage_over", HEAD STAGE1 "    pytest: [--cov]\n    coverage: {min: 101}\n", 7, 21, "between 0 and 100" },
	{ "coverage_without_cov", HEAD STAGE1 "    pytest: [-v]\n    coverage: {min: 80}\n", 7, 15, "add --cov=PACKAGE" },
	{ "memory_bad", HEAD STAGE1 "    memory: lots\n", 6, 13, "memory must be a size like 512m" },
	{ "memory_small", HEAD STAGE1 "    memory: 1m\n", 6, 13, "at least 6m" },
	{ "memory_overflow", HEAD STAGE1 "    memory: 9000000000g\n", 6, 13, "memory must be a size like 512m" },
	{ "cpus_zero", HEAD STAGE1 "    cpus: 0\n", 6, 11, "cpus must be more than 0" },
	{ "workdir_relative", HEAD STAGE1 "    workdir: app\n", 6, 14, "absolute path" },
	{ "python_run", HEAD STAGE1 "    run: make\n    python: python3\n", 7, 13, "python needs a pytest stage" },
	{ "python_empty", HEAD STAGE1 "    pytest: []\n    python: \"\"\n", 7, 13, "python must not be empty" },
	{ "python_space", HEAD STAGE1 "    pytest: []\n    python: \"python -X dev\"\n", 7, 13, "a program name (python3.12) or an absolute path" },
	{ "python_option", HEAD STAGE1 "    pytest: []\n    python: -m\n", 7, 13, "a program name" },
	{ "python_relative", HEAD STAGE1 "    pytest: []\n    python: .venv/bin/python\n", 7, 13, "a program name" },
	{ "python_list", HEAD STAGE1 "    pytest: []\n    python: [python3]\n", 7, 13, "python must be a string" },
	{ "python_typo", HEAD STAGE1 "    pytest: []\n    pyhton: python3\n", 7, 5, "did you mean \"python\"" },
	{ "allow_no_tests_run", HEAD STAGE1 "    run: make\n    allow_no_tests: true\n", 7, 21, "allow_no_tests needs a pytest stage" },
	{ "coverage_negative", HEAD STAGE1 "    pytest: []\n    coverage: {min: -5}\n", 7, 21, "between 0 and 100" },
	{ "coverage_string", HEAD STAGE1 "    pytest: []\n    coverage: {min: \"80\"}\n", 7, 21, "must be a number, not a string" },
	{ "coverage_unknown", HEAD STAGE1 "    pytest: []\n    coverage: {minimum: 80}\n", 7, 16, "unknown key \"minimum\"" },
	{ "timeout_no_unit", HEAD STAGE1 "    timeout: 90\n", 6, 14, "missing unit" },
	{ "timeout_bad_unit", HEAD STAGE1 "    timeout: 15x\n", 6, 14, "unknown unit" },
	{ "timeout_fraction", HEAD STAGE1 "    timeout: 1.5h\n", 6, 14, "fractions are not allowed" },
	{ "timeout_order", HEAD STAGE1 "    timeout: 30m1h\n", 6, 14, "largest to smallest" },
	{ "timeout_zero", HEAD STAGE1 "    timeout: 0s\n", 6, 14, "longer than zero" },
	{ "timeout_huge", HEAD STAGE1 "    timeout: 9999h\n", 6, 14, "at most 7 days" },
	{ "timeout_list", HEAD STAGE1 "    timeout: [1m]\n", 6, 14, "must be a duration" },
	{ "env_bad_name", HEAD STAGE1 "    env:\n      BAD-NAME: x\n", 7, 7, "invalid name \"BAD-NAME\"" },
	{ "env_null", HEAD STAGE1 "    env:\n      X:\n", 7, 9, "env.X must be a string, not null" },
	{ "needs_unknown", HEAD STAGE1 "  - name: promote\n    target: runtime\n    needs: [tset]\n", 8, 13, "needs unknown stage \"tset\"; did you mean \"test\"?" },
	{ "needs_unknown_far", HEAD STAGE1 "  - name: promote\n    target: runtime\n    needs: deploy\n", 8, 12, "needs unknown stage \"deploy\"" },
	{ "needs_self", HEAD STAGE1 "    needs: [test]\n", 6, 13, "needs itself" },
	{ "needs_cycle", HEAD "stages:\n  - name: a\n    target: t\n    needs: [c]\n"
	  "  - name: b\n    target: t\n    needs: [a]\n  - name: c\n    target: t\n    needs: [b]\n",
	  6, 13, "needs form a cycle: a -> c -> b -> a" },
	{ "push_without_tags", HEAD STAGE1 "    push: true\n", 6, 11, "push: true needs tags" },
	{ "push_not_bool", HEAD STAGE1 "    push: yes please\n", 6, 11, "must be true or false" },
	{ "tag_uppercase", HEAD STAGE1 "    tags: [Registry.example.com/Team/app:1]\n", 6, 12, "must be lowercase" },
	{ "tag_bad_chars", HEAD STAGE1 "    tags: [\"app:v1!\"]\n", 6, 12, "invalid character '!' in tag" },
	{ "tag_expanded_bad", HEAD STAGE1 "    tags: [\"${env.UPPER}/app:1\"]\n", 6, 12, "once expanded" },
	{ "tag_empty_tag", HEAD STAGE1 "    tags: [\"app:\"]\n", 6, 12, "empty tag" },
	{ "var_unknown", HEAD STAGE1 "    tags: [\"app:${GIT_SAH}\"]\n", 6, 17, "unknown variable ${GIT_SAH}; did you mean ${GIT_SHA}?" },
	{ "var_unknown_env_hint", HEAD STAGE1 "    env:\n      A: x${HOME}\n", 7, 11, "write ${env.HOME}" },
	{ "var_unterminated", HEAD STAGE1 "    env:\n      A: \"${env.X\"\n", 7, 11, "unterminated" },
	{ "var_default_on_builtin", HEAD "build:\n  args:\n    A: ${GIT_SHA:-x}\n" STAGE1, 5, 8, "only allowed for ${env" },
	{ "health_bad", HEAD STAGE1 "    healthcheck: [1]\n", 6, 18, "healthcheck must be true, false or a mapping" },
	{ "health_port", HEAD STAGE1 "    healthcheck: {port: 70000}\n", 6, 25, "port number" },
	{ "health_path", HEAD STAGE1 "    healthcheck: {port: 80, path: health}\n", 6, 35, "must start with \"/\"" },
	{ "health_port_no_network", HEAD "build:\n  network: none\n" STAGE1 "    healthcheck: {port: 80}\n",
	  4, 12, "needs build.network host or default" },
	{ "health_unknown", HEAD STAGE1 "    healthcheck: {prot: 80}\n", 6, 19, "did you mean \"port\"?" },
	/* artifacts and cache_from */
	{ "artifact_dotdot", HEAD STAGE1 "    run: make\n    artifacts: [dist/../../etc]\n", 7, 17,
	  "artifact \"dist/../../etc\" must not climb out of the working folder (\"..\")" },
	{ "artifact_dotdot_alone", HEAD STAGE1 "    run: make\n    artifacts:\n      - ok.txt\n      - ..\n",
	  9, 9, "must not climb out" },
	{ "artifact_absolute", HEAD STAGE1 "    pytest: []\n    artifacts: /etc/passwd\n", 7, 16,
	  "must be relative to the container's working folder, not absolute" },
	{ "artifact_dot", HEAD STAGE1 "    run: make\n    artifacts: [\"./\"]\n", 7, 17,
	  "names the working folder itself" },
	{ "artifact_empty", HEAD STAGE1 "    run: make\n    artifacts: [\"\"]\n", 7, 17, "must not be empty" },
	{ "artifact_backslash", HEAD STAGE1 "    run: make\n    artifacts: ['a\\b']\n", 7, 17, "backslash" },
	{ "artifact_map", HEAD STAGE1 "    run: make\n    artifacts: {paths: [a]}\n", 7, 16,
	  "artifacts must be a list or a string" },
	{ "artifact_build_stage", HEAD STAGE1 "    artifacts: [dist/]\n", 6, 16,
	  "artifacts need a container to copy them from: a pytest or run stage" },
	{ "cache_from_bad", HEAD "build:\n  cache_from: [\"Reg/App:1\"]\n" STAGE1, 4, 16,
	  "build.cache_from \"Reg/App:1\" is not a valid image reference" },
	{ "cache_from_var", HEAD "build:\n  cache_from: \"${env.UPPER}/app\"\n" STAGE1, 4, 15,
	  "once expanded" },
	{ "cache_from_unknown_var", HEAD "build:\n  cache_from: [\"${NOPE}/app\"]\n" STAGE1, 4, 17,
	  "unknown variable ${NOPE}" },
	/* on */
	{ "on_unknown", HEAD STAGE1 "on:\n  pushh: true\n", 7, 3, "did you mean \"push\"?" },
	{ "on_push_unknown", HEAD STAGE1 "on:\n  push: {branch: [main]}\n", 7, 10, "did you mean \"branches\"?" },
	{ "on_push_bad", HEAD STAGE1 "on:\n  push: 3\n", 7, 9, "must be true or false" },
	/* matrix */
	{ "matrix_not_map", HEAD STAGE1 "    matrix: [1, 2]\n", 6, 13, "matrix must be a mapping" },
	{ "matrix_empty", HEAD STAGE1 "    matrix: {}\n", 6, 13, "matrix must not be empty" },
	{ "matrix_empty_list", HEAD STAGE1 "    matrix:\n      PY: []\n", 7, 11, "matrix.PY must not be an empty list" },
	{ "matrix_scalar_values", HEAD STAGE1 "    matrix:\n      PY: \"3.11\"\n", 7, 11, "matrix.PY must be a list of values, not a string" },
	{ "matrix_nested_value", HEAD STAGE1 "    matrix:\n      PY: [\"3.11\", [3]]\n", 7, 20, "each value of matrix.PY must be a string or number, not a list" },
	{ "matrix_null_value", HEAD STAGE1 "    matrix:\n      PY: [~]\n", 7, 12, "must be a string or number" },
	{ "matrix_bad_key", HEAD STAGE1 "    matrix:\n      python-version: [1]\n", 7, 7, "invalid matrix key \"python-version\"" },
	{ "matrix_bad_value", HEAD STAGE1 "    matrix:\n      PY: [\"3 11\"]\n", 7, 12, "value \"3 11\" must be 1 to 32" },
	{ "matrix_dup_value", HEAD STAGE1 "    matrix:\n      PY: [\"3.11\", \"3.11\"]\n", 7, 20, "lists \"3.11\" twice" },
	{ "matrix_too_many", HEAD STAGE1 "    matrix:\n      A: [1, 2, 3, 4, 5, 6, 7, 8]\n      B: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
	  7, 7, "more than 64 variants" },
	{ "matrix_ref_unknown", HEAD STAGE1 "    matrix: {PY: [\"3.11\"]}\n    pytest: [\"-k${matrix.PV}\"]\n",
	  7, 14, "no matrix key PV" },
	{ "matrix_ref_no_matrix", HEAD STAGE1 "    env: {A: \"${matrix.PY}\"}\n", 6, 14, "no matrix key PY" },
	{ "matrix_ref_bad_key", HEAD STAGE1 "    env: {A: \"${matrix.P-Y}\"}\n", 6, 15, "invalid matrix key" },
	{ "matrix_in_build_args", HEAD "build:\n  args:\n    A: ${matrix.PY}\n" STAGE1, 5, 8, "build.args are shared" },
	{ "matrix_needs_itself", HEAD STAGE1 "    matrix: {PY: [a, b]}\n    needs: [test]\n", 7, 13, "needs itself" },
	{ "matrix_name_too_long", HEAD "stages:\n  - name: " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\n    target: t\n"
	  "    matrix:\n      A: [bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb]\n      B: [cccccccccccccccccccccccccccccccc]\n",
	  7, 7, "longer than 100 bytes" },
	/* hostile */
	{ "deep_nesting", HEAD "stages: "
	  "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]\n",
	  3, 72, "nested more than 64 levels" },
};

/* ---- valid files ---- */

static void test_reference_pipeline(void **state)
{
	struct sp_pipeline *p;
	const struct sp_stage *t, *pr;
	char path[4096];
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_vars env = test_env();
	const char *top = getenv("SP_TOP");

	(void)state;
	snprintf(path, sizeof(path), "%s/pipelines/fastapi.yml", top ? top : ".");
	assert_int_equal(sp_pipeline_load_file(&p, path, &env, &d), 0);
	assert_string_equal(p->name, "fastapi-app");
	assert_int_equal(p->nstages, 2);
	t = sp_pipeline_stage(p, "test");
	pr = sp_pipeline_stage(p, "promote");
	assert_non_null(t);
	assert_non_null(pr);
	assert_int_equal(t->kind, SP_STAGE_PYTEST);
	assert_true(t->has_coverage_min);
	assert_true(t->coverage_min == 80.0);
	assert_int_equal(t->timeout_ms, 15 * 60 * 1000);
	assert_int_equal(pr->kind, SP_STAGE_BUILD);
	assert_true(pr->push);
	assert_true(pr->health.enabled);
	assert_int_equal(pr->needs.n, 1);
	assert_int_equal(p->order[0], 0);
	assert_int_equal(p->order[1], 1);
	sp_pipeline_free(p);
	sp_diags_release(&d);
}

static void test_defaults(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD STAGE1);
	enum sp_network net;
	struct sp_vars env = test_env();

	(void)state;
	assert_string_equal(p->build.context, ".");
	assert_string_equal(p->build.dockerfile, "Dockerfile");
	assert_int_equal(sp_pipeline_network(p, &env, &net, NULL), 0);
	assert_int_equal(net, SP_NETWORK_DEFAULT);
	assert_int_equal(p->stages[0].kind, SP_STAGE_BUILD);
	assert_int_equal(p->stages[0].timeout_ms, SP_STAGE_DEFAULT_TIMEOUT_MS);
	assert_false(p->on.push.enabled);
	sp_pipeline_free(p);
}

static void test_order_follows_needs(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD "stages:\n"
		"  - {name: deploy, target: r, needs: [promote]}\n"
		"  - {name: promote, target: r, needs: [test, lint]}\n"
		"  - {name: lint, target: t, run: ruff check .}\n"
		"  - {name: test, target: t, pytest: [-q]}\n");

	(void)state;
	/* lint and test come first (file order), then promote, then deploy */
	assert_string_equal(p->stages[p->order[0]].name, "lint");
	assert_string_equal(p->stages[p->order[1]].name, "test");
	assert_string_equal(p->stages[p->order[2]].name, "promote");
	assert_string_equal(p->stages[p->order[3]].name, "deploy");
	assert_true(p->stages[2].run_shell);
	assert_string_equal(p->stages[2].args.items[0].s, "ruff check .");
	sp_pipeline_free(p);
}

static void test_run_list_and_env(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD "stages:\n"
		"  - name: t\n    target: testing\n    run: [python3, -m, pytest]\n"
		"    env: {A: \"1\", B: 2, C: \"${GIT_SHA}\", D: \"${env.HOME:-/root}\"}\n"
		"    timeout: 1h30m\n    memory: 512m\n    cpus: 1.5\n    user: \"1000:1000\"\n"
		"    workdir: /src\n");
	const struct sp_stage *st = &p->stages[0];

	(void)state;
	assert_int_equal(st->kind, SP_STAGE_RUN);
	assert_false(st->run_shell);
	assert_int_equal(st->args.n, 3);
	assert_int_equal(st->env.n, 4);
	assert_string_equal(st->env.items[1].value, "2");
	assert_string_equal(st->env.items[2].value, "${GIT_SHA}");
	assert_int_equal(st->env.items[2].pos.line, 7);
	assert_int_equal(st->timeout_ms, 90 * 60 * 1000);
	assert_int_equal(st->memory, 512 * 1024 * 1024);
	assert_int_equal(st->nano_cpus, 1500000000);
	assert_string_equal(st->user, "1000:1000");
	assert_string_equal(st->workdir, "/src");
	sp_pipeline_free(p);
}

static void test_anchors_and_merge(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD
		"x-defaults: &defaults\n"
		"  target: testing\n"
		"  timeout: 10m\n"
		"stages:\n"
		"  - <<: *defaults\n    name: unit\n    pytest: [-q]\n"
		"  - <<: *defaults\n    name: slow\n    timeout: 1h\n    pytest: [-m, slow]\n");

	(void)state;
	assert_int_equal(p->nstages, 2);
	assert_string_equal(p->stages[0].target, "testing");
	assert_int_equal(p->stages[0].timeout_ms, 10 * 60 * 1000);
	assert_string_equal(p->stages[1].target, "testing");
	assert_int_equal(p->stages[1].timeout_ms, 60 * 60 * 1000);  /* explicit key wins */
	sp_pipeline_free(p);
}

static void test_health_and_triggers(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD "build:\n  network: ${env.NET}\n"
		"stages:\n  - name: promote\n    target: runtime\n"
		"    tags: [\"${env.REGISTRY}/app:${GIT_SHORT_SHA}\", app:latest]\n"
		"    push: true\n    healthcheck: {port: 8000, timeout: 30s}\n"
		"on:\n  push: {branches: [main, \"release/*\"]}\n  tag: true\n  pull_request: [main]\n");
	const struct sp_stage *st = &p->stages[0];
	struct sp_vars env = test_env();
	enum sp_network net;

	(void)state;
	assert_int_equal(sp_pipeline_network(p, &env, &net, NULL), 0);
	assert_int_equal(net, SP_NETWORK_NONE);
	assert_true(st->health.enabled);
	assert_int_equal(st->health.port, 8000);
	assert_string_equal(st->health.path, "/health");
	assert_int_equal(st->health.timeout_ms, 30000);
	assert_int_equal(st->tags.n, 2);
	assert_true(p->on.push.enabled);
	assert_int_equal(p->on.push.patterns.n, 2);
	assert_true(p->on.tag.enabled);
	assert_int_equal(p->on.tag.patterns.n, 0);
	assert_true(p->on.pull_request.enabled);
	sp_pipeline_free(p);
}

static void test_services(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD STAGE1 "    pytest: [-q]\n    services:\n"
		"      - name: db\n        image: \"${env.REGISTRY}/postgres:16\"\n"
		"        env: {POSTGRES_PASSWORD: pw}\n        ready: {port: 5432, timeout: 90s}\n"
		"      - name: cache\n        target: cache\n        command: redis-server --port 6380\n"
		"        ready: {cmd: [redis-cli, -p, \"6380\", ping]}\n"
		"      - {name: 9web, image: nginx, command: [nginx, -g, daemon off;]}\n");
	const struct sp_stage *st = &p->stages[0];
	const struct sp_service *sv = st->services;

	(void)state;
	assert_int_equal(st->nservices, 3);
	assert_string_equal(sv[0].name, "db");
	assert_string_equal(sv[0].image.s, "${env.REGISTRY}/postgres:16");
	assert_null(sv[0].target);
	assert_int_equal(sv[0].env.n, 1);
	assert_int_equal(sv[0].ready_port, 5432);
	assert_int_equal(sv[0].ready_timeout_ms, 90000);
	assert_int_equal(sv[0].pos.line, 8);
	assert_string_equal(sv[1].target, "cache");
	assert_null(sv[1].image.s);
	assert_true(sv[1].command_shell);
	assert_int_equal(sv[1].command.n, 1);
	assert_int_equal(sv[1].ready_cmd.n, 4);
	assert_int_equal(sv[1].ready_port, 0);
	assert_int_equal(sv[1].ready_timeout_ms, SP_SERVICE_DEFAULT_READY_MS);
	assert_false(sv[2].command_shell);
	assert_int_equal(sv[2].command.n, 3);
	sp_pipeline_free(p);
	p = load_ok(HEAD STAGE1 "    run: make check\n    services: []\n");
	assert_int_equal(p->stages[0].nservices, 0);
	sp_pipeline_free(p);
}

static void test_all_errors_reported(void **state)
{
	const char *yaml = HEAD "stages:\n  - name: test\n    target: testing\n"
		"    timout: 1m\n    coverage: {min: 200}\n    push: maybe\n";
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;

	(void)state;
	assert_int_equal(sp_pipeline_load_buffer(&p, "t.yml", yaml, strlen(yaml), NULL, &d),
			 SP_ECONFIG);
	/* unknown key, coverage bound, coverage without pytest, bool */
	assert_true(d.n >= 4);
	sp_diags_release(&d);
}

static void test_missing_file(void **state)
{
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;
	char *s;

	(void)state;
	assert_int_equal(sp_pipeline_load_file(&p, "/nonexistent/x.yml", NULL, &d), SP_ECONFIG);
	assert_int_equal(d.n, 1);
	s = sp_diags_format(&d, 0, "/nonexistent/x.yml");
	assert_string_equal(s, "/nonexistent/x.yml: cannot open: No such file or directory");
	free(s);
	sp_diags_release(&d);
}

static void test_alias_bomb(void **state)
{
	/* ten levels of ten aliases: 10^10 nodes if expanded */
	char yaml[8192];
	size_t off = 0;
	int i, j;
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;

	(void)state;
	off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "a0: &a0 [lol]\n");
	for (i = 1; i < 10; i++) {
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "a%d: &a%d [", i, i);
		for (j = 0; j < 10; j++)
			off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%s*a%d", j ? "," : "", i - 1);
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "]\n");
	}
	assert_int_equal(sp_pipeline_load_buffer(&p, "t.yml", yaml, off, NULL, &d), SP_ECONFIG);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.items[0].msg, "alias bomb"));
	sp_diags_release(&d);
}

/* ---- on: rules (sp_pipeline_on_match) ---- */

static bool on_match(const struct sp_pipeline *p, const char *event, const char *name,
		     const char *want_why)
{
	char why[256] = "unset";
	bool ok = sp_pipeline_on_match(p, event, name, why, sizeof(why));

	if (want_why && !strstr(why, want_why))
		fail_msg("why is \"%s\", wanted \"%s\" in it", why, want_why);
	return ok;
}

static void test_runs_on(void **state)
{
	struct sp_pipeline *p;

	(void)state;
	p = load_ok(HEAD STAGE1);
	assert_int_equal(p->runs_on.n, 0);
	sp_pipeline_free(p);
	p = load_ok(HEAD STAGE1 "runs_on: [linux, gpu-1.x]\n");
	assert_int_equal(p->runs_on.n, 2);
	assert_string_equal(p->runs_on.items[1].s, "gpu-1.x");
	sp_pipeline_free(p);
	p = load_ok(HEAD STAGE1 "runs_on: linux\n");
	assert_int_equal(p->runs_on.n, 1);
	sp_pipeline_free(p);
}

static void test_secrets(void **state)
{
	struct sp_pipeline *p;

	(void)state;
	p = load_ok(HEAD STAGE1);
	assert_int_equal(p->secrets.n, 0);
	sp_pipeline_free(p);
	/* other build args, a stage env made from a secret, and a build arg
	 * that merely mentions a similar name are fine */
	p = load_ok(HEAD "secrets: [API_TOKEN, DB_PASSWORD]\n"
		    "build:\n  args: {V: \"${env.API_TOKEN_X:-1}\", W: \"$${env.API_TOKEN}\"}\n"
		    STAGE1 "    env: {TOKEN_COPY: \"${env.API_TOKEN}\"}\n");
	assert_int_equal(p->secrets.n, 2);
	assert_string_equal(p->secrets.items[0].s, "API_TOKEN");
	assert_string_equal(p->secrets.items[1].s, "DB_PASSWORD");
	assert_int_equal(p->secrets.items[1].pos.line, 3);
	sp_pipeline_free(p);
	p = load_ok(HEAD "secrets:\n  - A\n  - B_2\n" STAGE1);
	assert_int_equal(p->secrets.n, 2);
	sp_pipeline_free(p);
}

static void test_artifacts_and_cache_from(void **state)
{
	struct sp_pipeline *p;

	(void)state;
	p = load_ok(HEAD "build:\n  cache_from: [\"${env.REGISTRY}/app:latest\", app:cache]\n"
		    STAGE1 "    pytest: [--cov=app]\n    artifacts: [htmlcov/, \"dist/*.whl\", ./cov.xml]\n"
		    "  - name: sh\n    target: t\n    run: make\n    artifacts: out\n");
	assert_int_equal(p->build.cache_from.n, 2);
	assert_string_equal(p->build.cache_from.items[0].s, "${env.REGISTRY}/app:latest");
	assert_int_equal(p->stages[0].artifacts.n, 3);
	assert_string_equal(p->stages[0].artifacts.items[1].s, "dist/*.whl");
	assert_int_equal(p->stages[0].artifacts.items[1].pos.line, 9);
	assert_int_equal(p->stages[1].artifacts.n, 1);
	sp_pipeline_free(p);
	p = load_ok(HEAD STAGE1);
	assert_int_equal(p->build.cache_from.n, 0);
	assert_int_equal(p->stages[0].artifacts.n, 0);
	sp_pipeline_free(p);
}

static void test_on_match(void **state)
{
	struct sp_pipeline *p;
	char tiny[8];

	(void)state;
	p = load_ok(HEAD STAGE1
		    "on:\n  push: {branches: [main, \"release/*\"]}\n  tag: [\"v*\"]\n"
		    "  pull_request: true\n");
	/* push: the patterns are globs over the branch name */
	assert_true(on_match(p, "push", "main", "on.push matches branch \"main\" (\"main\")"));
	assert_true(on_match(p, "push", "release/1.0", "(\"release/*\")"));
	assert_false(on_match(p, "push", "release/a/b", NULL));  /* * stays within a segment */
	assert_true(on_match(p, "push", "refs/heads/main", NULL));  /* a full ref works too */
	assert_false(on_match(p, "push", "dev", "on.push does not list branch \"dev\""));
	assert_false(on_match(p, "push", "mainline", NULL));
	assert_false(on_match(p, "push", "release", NULL));
	assert_false(on_match(p, "push", "", NULL));
	assert_false(on_match(p, "push", NULL, NULL));
	/* tag */
	assert_true(on_match(p, "tag", "v1.2.3", "on.tag matches tag \"v1.2.3\""));
	assert_true(on_match(p, "tag", "refs/tags/v2", NULL));
	assert_false(on_match(p, "tag", "nightly", "on.tag does not list tag \"nightly\""));
	/* pull_request: true builds every target branch */
	assert_true(on_match(p, "pull_request", "anything/at-all",
			     "on.pull_request builds every target branch"));
	/* manual: always */
	assert_true(on_match(p, "manual", NULL, "manual"));
	assert_false(on_match(p, "merge", "main", "unknown event \"merge\""));
	/* why may be NULL or small */
	assert_true(sp_pipeline_on_match(p, "push", "main", NULL, 0));
	assert_false(sp_pipeline_on_match(p, "push", "dev", tiny, sizeof(tiny)));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	sp_pipeline_free(p);

	/* no on: at all: every event is built */
	p = load_ok(HEAD STAGE1);
	assert_true(on_match(p, "push", "main", "no on: section"));
	assert_true(on_match(p, "tag", "v1", NULL));
	assert_true(on_match(p, "pull_request", "main", NULL));
	assert_true(on_match(p, "manual", "whatever", NULL));
	sp_pipeline_free(p);

	/* an on: section with one key: the others are off */
	p = load_ok(HEAD STAGE1 "on:\n  tag: true\n");
	assert_false(on_match(p, "push", "main", "on.push is off: pushes are not built"));
	assert_false(on_match(p, "pull_request", "main",
			      "on.pull_request is off: pull requests are not built"));
	assert_true(on_match(p, "tag", "v1", NULL));
	sp_pipeline_free(p);

	/* ** crosses segments */
	p = load_ok(HEAD STAGE1 "on:\n  push: [\"feature/**\"]\n");
	assert_true(on_match(p, "push", "feature/a/b", NULL));
	assert_false(on_match(p, "push", "feat/a", NULL));
	sp_pipeline_free(p);

	/* explicit false, and a list form for pull_request */
	p = load_ok(HEAD STAGE1 "on:\n  push: false\n  pull_request: [main]\n  tag: {tags: [\"v[0-9]*\"]}\n");
	assert_false(on_match(p, "push", "main", "on.push is off"));
	assert_true(on_match(p, "pull_request", "main", NULL));
	assert_false(on_match(p, "pull_request", "dev",
			      "on.pull_request does not list target branch \"dev\""));
	assert_true(on_match(p, "tag", "v1", NULL));
	assert_false(on_match(p, "tag", "vx", NULL));
	sp_pipeline_free(p);
}

static void test_matrix_expansion(void **state)
{
	struct sp_pipeline *p = load_ok(HEAD "build:\n  args: {PYTHON_VERSION: \"3.10\", KEEP: k}\n"
		"stages:\n"
		"  - name: lint\n    target: t\n    run: ruff check .\n"
		"  - name: test\n    target: testing\n"
		"    matrix:\n      PYTHON_VERSION: [\"3.11\", 3.12]\n      DB: [postgres, mysql]\n"
		"    pytest: [\"-k${matrix.DB}\"]\n    tags: [\"app:${matrix.PYTHON_VERSION}\"]\n"
		"    needs: [lint]\n"
		"  - {name: promote, target: runtime, needs: [test, lint]}\n"
		"  - {name: one, target: t, needs: [\"test[3.12,mysql]\"]}\n");
	const char *const want[] = { "test[3.11,postgres]", "test[3.11,mysql]",
				     "test[3.12,postgres]", "test[3.12,mysql]" };
	const struct sp_stage *pr, *one;
	size_t i;

	(void)state;
	assert_int_equal(p->nstages, 7);
	assert_string_equal(p->stages[0].name, "lint");
	assert_string_equal(p->stages[0].group, "lint");
	assert_int_equal(p->stages[0].matrix.n, 0);
	for (i = 0; i < 4; i++) {
		const struct sp_stage *st = &p->stages[1 + i];
		assert_string_equal(st->name, want[i]);
		assert_string_equal(st->group, "test");
		assert_int_equal(st->matrix.n, 2);
		assert_string_equal(st->matrix.items[0].name, "PYTHON_VERSION");
		assert_string_equal(st->matrix.items[1].name, "DB");
		/* every variant owns its strings */
		assert_string_equal(st->args.items[0].s, "-k${matrix.DB}");
		assert_int_equal(st->needs.n, 1);
		assert_int_equal(st->needs_idx[0], 0);
		assert_true(sp_stage_selected(st, "test"));
		assert_true(sp_stage_selected(st, want[i]));
		assert_false(sp_stage_selected(st, "lint"));
	}
	assert_string_equal(p->stages[1].matrix.items[0].value, "3.11");
	assert_string_equal(p->stages[1].matrix.items[1].value, "postgres");
	assert_int_equal(p->stages[1].matrix.items[1].pos.line, 13);
	assert_string_equal(p->stages[4].matrix.items[0].value, "3.12");
	assert_string_equal(p->stages[4].matrix.items[1].value, "mysql");
	assert_false(sp_stage_selected(&p->stages[1], "test[3.12,mysql]"));
	/* needs: [test, lint] waits for every variant, then lint */
	pr = sp_pipeline_stage(p, "promote");
	assert_int_equal(pr->needs.n, 5);
	for (i = 0; i < 4; i++) {
		assert_string_equal(pr->needs.items[i].s, want[i]);
		assert_int_equal(pr->needs_idx[i], 1 + i);
		assert_int_equal(pr->needs.items[i].pos.line, pr->needs.items[0].pos.line);
	}
	assert_string_equal(pr->needs.items[4].s, "lint");
	one = sp_pipeline_stage(p, "one");
	assert_int_equal(one->needs.n, 1);
	assert_int_equal(one->needs_idx[0], 4);
	/* the group's name finds the first variant */
	assert_ptr_equal(sp_pipeline_stage(p, "test"), &p->stages[1]);
	assert_ptr_equal(sp_pipeline_stage(p, "test[3.12,postgres]"), &p->stages[3]);
	assert_null(sp_pipeline_stage(p, "test[3.13]"));
	/* order: lint, the variants in file order, promote, one */
	assert_string_equal(p->stages[p->order[0]].name, "lint");
	assert_string_equal(p->stages[p->order[1]].name, "test[3.11,postgres]");
	assert_string_equal(p->stages[p->order[4]].name, "test[3.12,mysql]");
	assert_string_equal(p->stages[p->order[5]].name, "promote");
	sp_pipeline_free(p);
}

static void test_matrix_errors_once(void **state)
{
	const char *yaml = HEAD "stages:\n  - name: test\n    target: t\n"
		"    matrix: {A: [a, b, c]}\n    needs: [nope]\n    timeout: forever\n";
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;

	(void)state;
	assert_int_equal(sp_pipeline_load_buffer(&p, "t.yml", yaml, strlen(yaml), NULL, &d),
			 SP_ECONFIG);
	/* one message per mistake, not one per variant */
	assert_int_equal(d.n, 2);
	assert_non_null(strstr(d.items[0].msg, "timeout") ? d.items[0].msg : d.items[1].msg);
	assert_true(strstr(d.items[0].msg, "unknown stage \"nope\"") ||
		    strstr(d.items[1].msg, "unknown stage \"nope\""));
	sp_diags_release(&d);
}

static void test_huge_scalar(void **state)
{
	size_t n = 300 * 1024;
	char *yaml = malloc(n + 32);
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_pipeline *p = NULL;

	(void)state;
	memcpy(yaml, "name: ", 6);
	memset(yaml + 6, 'x', n);
	yaml[6 + n] = '\n';
	assert_int_equal(sp_pipeline_load_buffer(&p, "t.yml", yaml, n + 7, NULL, &d), SP_ECONFIG);
	assert_int_equal(d.items[0].line, 1);
	assert_int_equal(d.items[0].col, 7);
	assert_non_null(strstr(d.items[0].msg, "longer than"));
	sp_diags_release(&d);
	free(yaml);
}

int main(void)
{
	const size_t nbad = sizeof(bad_cases) / sizeof(bad_cases[0]);
	const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_reference_pipeline),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_python_key),
		cmocka_unit_test(test_order_follows_needs),
		cmocka_unit_test(test_run_list_and_env),
		cmocka_unit_test(test_anchors_and_merge),
		cmocka_unit_test(test_health_and_triggers),
		cmocka_unit_test(test_services),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_huge_scalar),
		cmocka_unit_test(test_on_match),
		cmocka_unit_test(test_runs_on),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_artifacts_and_cache_from),
		cmocka_unit_test(test_matrix_expansion),
		cmocka_unit_test(test_matrix_errors_once),
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct CMUnitTest *tests = calloc(nbad + nfixed, sizeof(*tests));
	size_t i;
	int rc;

	for (i = 0; i < nfixed; i++)
		tests[i] = fixed[i];
	for (i = 0; i < nbad; i++) {
		tests[nfixed + i].name = bad_cases[i].name;
		tests[nfixed + i].test_func = check_bad;
		tests[nfixed + i].initial_state = (void *)&bad_cases[i];
	}
	rc = _cmocka_run_group_tests("pipeline", tests, nbad + nfixed, NULL, NULL);
	free(tests);
	return rc;
}
