/*
 * test_config.c — the server's config loader: a full and a minimal file
 * with their defaults, every class of error with its position, all at
 * once, secrets never in a message, and the branches filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/config.h"
#include "core/yaml/diag.h"
#include "tests/unit/support/testutil.h"

static const char *test_getenv(const char *name)
{
	static const char *const env[] = {
		"TEST_ADMIN=admin-token-value",
		"APP_SECRET=app-secret-value",
		"APP_STATUS=status-token-value",
		"WEB_SECRET=web-secret-value",
		"EMPTY_SECRET=",
		"AGENT1=agent-one-token-value",
		"AGENT2=agent-two-token-value",
		"GIT_TOK=git-token-value",
		"TEST_READ=read-token-value",
		"API_TOK=api-secret-value",
		"TINY=abc",
		"PG_URL=postgres://ci:pw@db/ci",
		"NOT_PG=mysql://x",
		NULL,
	};
	return sp_test_env(name, (void *)env);
}

static struct sp_server_config *load_fixture_ok(const char *name)
{
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;
	char *path = sp_test_fixture_path("server", name);
	size_t i;
	int rc = sp_server_config_load(&c, path, test_getenv, &d);

	for (i = 0; i < d.n; i++)
		fprintf(stderr, "unexpected: %d:%d: %s\n", d.items[i].line, d.items[i].col,
			d.items[i].msg);
	assert_int_equal(rc, 0);
	assert_non_null(c);
	sp_diags_release(&d);
	free(path);
	return c;
}

static void test_good(void **state)
{
	struct sp_server_config *c = load_fixture_ok("good.yml");
	const struct sp_repo_config *r;
	size_t dl;

	(void)state;
	assert_int_equal(c->nlisten, 3);
	assert_string_equal(c->listen[0], "127.0.0.1:8080");
	assert_string_equal(c->listen[1], "[::1]:8081");
	assert_string_equal(c->listen[2], "ci.example.com:443");
	assert_null(c->listen[3]);
	/* relative to the config file's folder */
	dl = strlen(c->data);
	assert_true(c->data[0] == '/');
	assert_true(dl > 12 && !strcmp(c->data + dl - 12, "/server/data"));
	assert_string_equal(c->public_url, "https://ci.example.com");
	assert_int_equal(c->workers, 4);
	assert_string_equal(c->admin_token, "admin-token-value");
	assert_null(c->tls_cert);
	assert_int_equal(c->body_max, 512 * 1024);
	assert_int_equal(c->drain_timeout_ms, 60 * 1000);
	assert_int_equal(c->lease_ttl_ms, 45 * 1000);
	assert_int_equal(c->max_attempts, 5);
	assert_int_equal(c->job_timeout_ms, 90L * 60 * 1000);
	assert_null(c->stagepipe);
	assert_string_equal(c->env[0], "DOCKER_HOST=unix:///run/docker.sock");
	assert_string_equal(c->env[1], "EMPTY=");
	assert_null(c->env[2]);
	assert_int_equal(c->nrepos, 3);

	r = sp_server_config_repo(c, "app");
	assert_non_null(r);
	assert_int_equal(r->forge, SP_FORGE_GITHUB);
	assert_string_equal(r->secret, "app-secret-value");
	assert_int_equal(r->secret_len, strlen("app-secret-value"));
	assert_string_equal(r->pipeline, "ci/stagepipe.yml");
	assert_false(r->cancel_superseded);
	assert_string_equal(r->labels, "linux,amd64");
	assert_true(r->status.enabled);
	assert_null(r->status.api);
	assert_string_equal(r->status.project, "team/app");
	assert_string_equal(r->status.token, "status-token-value");
	assert_string_equal(r->status.context, "stagepipe");

	r = sp_server_config_repo(c, "tools.v2");
	assert_non_null(r);
	assert_int_equal(r->forge, SP_FORGE_GITEA);
	assert_string_equal(r->secret, "file-secret-value");  /* newline dropped */
	assert_int_equal(r->secret_len, strlen("file-secret-value"));
	assert_string_equal(r->pipeline, "stagepipe.yml");
	assert_true(r->cancel_superseded);
	assert_null(r->branches);
	assert_null(r->labels);
	assert_string_equal(r->status.api, "https://git.example.com/api/v1");
	assert_string_equal(r->status.project, "other/tools");
	assert_string_equal(r->status.token, "file-secret-value");
	assert_string_equal(r->status.context, "ci");

	r = sp_server_config_repo(c, "web_1");
	assert_non_null(r);
	assert_int_equal(r->forge, SP_FORGE_GITLAB);
	assert_false(r->status.enabled);
	assert_null(sp_server_config_repo(c, "nope"));
	assert_null(sp_server_config_repo(c, "App"));
	sp_server_config_free(c);
}

static void test_minimal_defaults(void **state)
{
	struct sp_server_config *c = load_fixture_ok("minimal.yml");

	(void)state;
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0], "127.0.0.1:8080");
	assert_string_equal(c->data, "/var/lib/stagepipe");
	assert_string_equal(c->public_url, "http://127.0.0.1:8080");
	assert_int_equal(c->workers, 1);
	assert_null(c->admin_token);
	assert_int_equal(c->body_max, 25 * 1024 * 1024);
	assert_int_equal(c->drain_timeout_ms, 10L * 60 * 1000);
	assert_int_equal(c->lease_ttl_ms, 30L * 1000);
	assert_int_equal(c->max_attempts, 3);
	assert_int_equal(c->job_timeout_ms, 2L * 3600 * 1000);
	assert_null(c->env);
	assert_int_equal(c->nrepos, 1);
	assert_true(c->repos[0].cancel_superseded);
	assert_false(c->repos[0].status.enabled);
	sp_server_config_free(c);
}

struct want {
	int line, col;
	const char *msg;
};

static bool has(const struct sp_diags *d, int line, int col, const char *msg)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->items[i].line == line && d->items[i].col == col &&
		    strstr(d->items[i].msg, msg))
			return true;
	return false;
}

/* Every problem of bad.yml, at once and at its place. */
static void test_bad_all_at_once(void **state)
{
	static const struct want wants[] = {
		{ 1, 10, "invalid listen address \"127.0.0.1:0\": the port must be" },
		{ 1, 25, "an IPv6 address is written [addr]:port" },
		{ 1, 35, "not an IPv4 address or host name" },
		{ 2, 7, "data must not be empty" },
		{ 3, 1, "unknown key \"wrokers\" in the config file; did you mean \"workers\"?" },
		{ 4, 10, "workers must be a whole number from 0 to 64" },
		{ 5, 18, "environment variable UNSET_ADMIN (admin_token_env) is not set" },
		{ 6, 14, "tls.cert \"missing.pem\": cannot read" },
		{ 6, 6, "tls needs both cert and key" },
		{ 7, 11, "body_max must be a size like 512k or 25m" },
		{ 8, 16, "invalid drain_timeout" },
		{ 10, 11, "invalid repository name \"App\"" },
		{ 11, 10, "url must not be empty" },
		{ 12, 12, "unknown forge \"bitbucket\"" },
		{ 14, 18, "give secret_env or secret_file, not both" },
		{ 16, 10, "ext::" },
		{ 18, 17, "environment variable EMPTY_SECRET (secret_env) is empty" },
		{ 19, 5, "unknown key \"brnaches\" in repository \"dup\"; did you mean \"branches\"?" },
		{ 21, 7, "status.api is required for a gitea repository" },
		{ 22, 5, "repository \"dup\": missing required key \"url\"" },
		{ 22, 5, "repository name \"dup\" is used twice" },
		{ 25, 13, "missing token_env or token_file" },
	};
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;
	char *path = sp_test_fixture_path("server", "bad.yml");
	size_t i;
	bool ok = true;

	(void)state;
	assert_int_equal(sp_server_config_load(&c, path, test_getenv, &d), SP_ECONFIG);
	assert_null(c);
	for (i = 0; i < sizeof(wants) / sizeof(wants[0]); i++)
		if (!has(&d, wants[i].line, wants[i].col, wants[i].msg)) {
			fprintf(stderr, "missing: %d:%d: %s\n", wants[i].line, wants[i].col,
				wants[i].msg);
			ok = false;
		}
	/* no secret in any message */
	for (i = 0; i < d.n; i++) {
		if (!ok)
			fprintf(stderr, "  got %d:%d: %s\n", d.items[i].line, d.items[i].col,
				d.items[i].msg);
		assert_null(strstr(d.items[i].msg, "secret-value"));
		assert_null(strstr(d.items[i].msg, "token-value"));
	}
	assert_true(ok);
	sp_diags_release(&d);
	free(path);
}

/* A config written to a temporary folder; returns the diagnostics' count. */
static size_t load_text(const char *text, struct sp_diags *d, struct sp_server_config **c)
{
	char *dir = sp_test_tempdir("sp-config-");
	char *path = sp_xasprintf("%s/serve.yml", dir);

	sp_test_write_file(path, text);
	*c = NULL;
	sp_server_config_load(c, path, test_getenv, d);
	free(path);
	sp_test_rmtree(dir);
	free(dir);
	return d->n;
}

#define REPO "repos:\n  - name: a\n    url: /srv/a.git\n    forge: github\n    secret_env: APP_SECRET\n"

static void test_small_cases(void **state)
{
	static const struct {
		const char *yaml;
		int line, col;
		const char *msg;
	} cases[] = {
		{ "", 1, 1, "the config file is empty" },
		{ "- a\n", 1, 1, "the config file must be a mapping" },
		{ REPO, 1, 1, "missing required key \"data\"" },
		{ "data: /d\n", 1, 1, "missing required key \"repos\"" },
		{ "data: /d\nrepos: []\n", 2, 8, "repos must not be empty" },
		{ "data: /d\nlisten: 8080\n" REPO, 2, 9, "expected host:port" },
		{ "data: /d\nlisten: \"[::1]\"\n" REPO, 2, 9, "[addr]:port" },
		{ "data: /d\nlisten: \"[fe80::zz]:80\"\n" REPO, 2, 9, "not an IPv6 address" },
		{ "data: /d\nlisten: \"1.2.3.4:65536\"\n" REPO, 2, 9, "1 to 65535" },
		{ "data: /d\nlisten: [\"a:1\", \"a:1\"]\n" REPO, 2, 17, "given twice" },
		{ "data: /d\nlisten: []\n" REPO, 2, 9, "listen must not be empty" },
		{ "data: /d\nworkers: -1\n" REPO, 2, 10, "from 0 to 64" },
		{ "data: /d\nworkers: 1.5\n" REPO, 2, 10, "from 0 to 64" },
		{ "data: /d\nmax_attempts: 0\n" REPO, 2, 15, "from 1 to 100" },
		{ "data: /d\nlease_ttl: 10ms\n" REPO, 2, 12, "lease_ttl must be at least 1s" },
		{ "data: /d\nbody_max: 2g\n" REPO, 2, 11, "between 1k and 1g" },
		/* 2^34+1 gigabytes: wraps to exactly 1g if multiplied unchecked */
		{ "data: /d\nbody_max: 17179869185g\n" REPO, 2, 11, "between 1k and 1g" },
		{ "data: /d\nbody_max: 1099511627776\n" REPO, 2, 11, "between 1k and 1g" },
		{ "data: /d\nbody_max: 99999999999999999999999\n" REPO, 2, 11, "size like" },
		{ "data: /d\nlease_ttl: 2h\n" REPO, 2, 12, "lease_ttl must be at most 1h" },
		{ "data: /d\ndrain_timeout: 25h\n" REPO, 2, 16, "drain_timeout must be at most" },
		{ "data: /d\nworkers: 99999999999999999999\n" REPO, 2, 10, "from 0 to 64" },
		{ "data: /d\nlisten: [\"[::1]:80\", \"[::1]:80\"]\n" REPO, 2, 22, "given twice" },
		{ "data: /d\npublic_url: ci.example.com\n" REPO, 2, 13, "http:// or https://" },
		{ "data: /d\nadmin_token_env: A\nadmin_token_file: /x\n" REPO, 3, 19, "not both" },
		{ "data: /d\nadmin_token_file: /nonexistent/token\n" REPO, 2, 19, "cannot open" },
		{ "data: /d\nadmin_token_env: \"1BAD\"\n" REPO, 2, 18, "not a valid environment" },
		{ "data: /d\nread_token_env: A\nread_token_file: /x\n" REPO, 3, 18, "not both" },
		{ "data: /d\nread_token_env: NOPE_READ\n" REPO, 2, 17,
		  "NOPE_READ (read_token_env) is not set" },
		{ "data: /d\nread_token_envv: A\n" REPO, 2, 1, "did you mean \"read_token_env\"" },
		{ "data: /d\ntls: { key: /etc/hostname }\n" REPO, 2, 6, "both cert and key" },
		{ "data: /d\ntls: { cert: /etc/hostname, kye: x }\n" REPO, 2, 29, "did you mean \"key\"" },
		{ "data: /d\nstagepipe: /nonexistent/stagepipe\n" REPO, 2, 12, "not an executable" },
		{ "data: /d\nenv: { 9X: a }\n" REPO, 2, 8, "invalid name \"9X\"" },
		{ "data: /d\nenv: [a]\n" REPO, 2, 6, "env must be a mapping" },
		{ "data: /d\n" REPO "    status: { token_env: APP_STATUS, projet: x }\n", 7, 38,
		  "did you mean \"project\"" },
		{ "data: /d\n" REPO "    status: { token_env: APP_STATUS, api: ftp://x }\n", 7, 43,
		  "http:// or https://" },
		{ "data: /d\n" REPO "    status: { token_env: NOPE_STATUS }\n", 7, 26,
		  "NOPE_STATUS (token_env) is not set" },
		{ "data: /d\n" REPO "    labels: [\"a b\"]\n", 7, 13, "invalid label" },
		{ "data: /d\n" REPO "    branches: []\n", 7, 15, "branches must not be empty" },
		{ "data: /d\n" REPO "    cancel_superseded: yes\n", 7, 24, "true or false" },
		{ "data: /d\nrepos:\n  - name: .x\n    url: /a\n    forge: github\n"
		  "    secret_env: APP_SECRET\n", 3, 11, "invalid repository name" },
		{ "data: /d\nrepos:\n  - name: a/b\n    url: /a\n    forge: github\n"
		  "    secret_env: APP_SECRET\n", 3, 11, "invalid repository name" },
		{ "data: /d\nrepos:\n  - name: a\n    url: /a\n    secret_env: APP_SECRET\n", 3, 5,
		  "missing required key \"forge\"" },
		{ "data: /d\nrepos:\n  - name: a\n    url: /a\n    forge: github\n", 3, 5,
		  "missing secret_env or secret_file" },
		{ "data: /d\nrepos:\n  - a\n", 3, 5, "each repository must be a mapping" },
		{ "data: /d\nrepos:\n  - name: a\n    url: /a\n    forge: github\n"
		  "    secret_file: /etc\n", 6, 18, "not a regular file" },
		/* git: credentials */
		{ "data: /d\n" REPO "    git: { user: ci }\n", 7, 10, "missing token_env or token_file" },
		{ "data: /d\n" REPO "    git: { token_env: GIT_TOK, usr: x }\n", 7, 32,
		  "did you mean \"user\"" },
		{ "data: /d\n" REPO "    git: { token_env: NOPE_GIT }\n", 7, 23,
		  "NOPE_GIT (token_env) is not set" },
		{ "data: /d\n" REPO "    git: { token_env: GIT_TOK, user: \"a:b\" }\n", 7, 38,
		  "git.user must not contain" },
		{ "data: /d\n" REPO "    git: x-access-token\n", 7, 10, "git must be a mapping" },
		/* agents and worker labels */
		{ "data: /d\nagents: { name: a }\n" REPO, 2, 9, "agents must be a list" },
		{ "data: /d\nagents:\n  - name: Build\n    token_env: AGENT1\n" REPO, 3, 11,
		  "invalid agent name \"Build\"" },
		{ "data: /d\nagents:\n  - name: -b\n    token_env: AGENT1\n" REPO, 3, 11,
		  "invalid agent name" },
		{ "data: /d\nagents:\n  - name: local-1\n    token_env: AGENT1\n" REPO, 3, 11,
		  "the server's own slots" },
		{ "data: /d\nagents:\n  - name: b\n" REPO, 3, 5,
		  "agent \"b\": missing token_env, token_file or token_sha256" },
		{ "data: /d\nagents:\n  - token_env: AGENT1\n" REPO, 3, 5,
		  "agent 1: missing required key \"name\"" },
		{ "data: /d\nagents:\n  - name: b\n    token_env: AGENT1\n    token_sha256: ab\n"
		  REPO, 5, 19, "give one of token_env, token_file and token_sha256" },
		{ "data: /d\nagents:\n  - name: b\n    token_sha256: abc\n" REPO, 4, 19,
		  "token_sha256 must be 64 hex digits" },
		{ "data: /d\nagents:\n  - name: b\n    token_env: AGENT1\n    tokn_file: x\n" REPO,
		  5, 5, "unknown key \"tokn_file\" in agent \"b\"; did you mean \"token_file\"?" },
		{ "data: /d\nagents:\n  - name: b\n    token_env: AGENT1\n"
		  "  - name: b\n    token_env: AGENT2\n" REPO, 5, 5, "agent name \"b\" is used twice" },
		{ "data: /d\nagents:\n  - name: b\n    token_env: AGENT1\n"
		  "  - name: c\n    token_env: AGENT1\n" REPO, 5, 5,
		  "agent \"c\" has the same token as agent \"b\"" },
		{ "data: /d\nagents:\n  - name: b\n    token_env: NOPE_AGENT\n" REPO, 4, 16,
		  "NOPE_AGENT (token_env) is not set" },
		{ "data: /d\nworker_labels: [\"a b\"]\n" REPO, 2, 16, "invalid label" },
		{ "data: /d\nworker_lables: [a]\n" REPO, 2, 1, "did you mean \"worker_labels\"" },
		/* a repository's secrets: */
		{ "data: /d\n" REPO "    secrets: [A]\n", 7, 14, "secrets must be a mapping" },
		{ "data: /d\n" REPO "    secrets: {9X: {env: API_TOK}}\n", 7, 15,
		  "secret name \"9X\" must be an environment variable name" },
		{ "data: /d\n" REPO "    secrets: {STAGEPIPE_GIT_TOKEN: {env: API_TOK}}\n", 7, 15,
		  "not STAGEPIPE_*" },
		{ "data: /d\n" REPO "    secrets: {A: API_TOK}\n", 7, 18, "each secret ({env: VAR} or "
		  "{file: PATH}) must be a mapping" },
		{ "data: /d\n" REPO "    secrets: {A: {env: NOPE_X}}\n", 7, 24,
		  "environment variable NOPE_X (secrets.A.env) is not set" },
		{ "data: /d\n" REPO "    secrets: {A: {}}\n", 7, 18, "missing secrets.A.env or "
		  "secrets.A.file" },
		{ "data: /d\n" REPO "    secrets: {A: {env: API_TOK, file: x}}\n", 7, 39,
		  "give secrets.A.env or secrets.A.file, not both" },
		{ "data: /d\n" REPO "    secrets: {A: {evn: API_TOK}}\n", 7, 19,
		  "unknown key \"evn\" in repository \"a\" secrets.A; did you mean \"env\"?" },
		{ "data: /d\n" REPO "    secrets: {A: {env: TINY}}\n", 7, 24,
		  "the value is 3 bytes long; a secret must be at least 4 bytes" },
	};
	size_t i, j;
	int failed = 0;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_diags d = SP_DIAGS_INIT;
		struct sp_server_config *c = NULL;
		bool found;

		load_text(cases[i].yaml, &d, &c);
		found = has(&d, cases[i].line, cases[i].col, cases[i].msg);
		if (!found || c) {
			fprintf(stderr, "case %zu: wanted %d:%d: ...%s...\n", i, cases[i].line,
				cases[i].col, cases[i].msg);
			for (j = 0; j < d.n; j++)
				fprintf(stderr, "  got %d:%d: %s\n", d.items[j].line, d.items[j].col,
					d.items[j].msg);
		}
		if (!found || c)
			failed++;
		sp_server_config_free(c);
		sp_diags_release(&d);
	}
	assert_int_equal(failed, 0);
}

static void test_repo_secrets(void **state)
{
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;
	const struct sp_repo_config *r;

	(void)state;
	assert_int_equal(load_text("data: /d\n" REPO "    secrets:\n"
				   "      API_TOKEN: {env: API_TOK}\n"
				   "      OTHER: {env: GIT_TOK}\n", &d, &c), 0);
	assert_non_null(c);
	r = sp_server_config_repo(c, "a");
	assert_int_equal(r->nsecrets, 2);
	assert_string_equal(r->secrets[0].name, "API_TOKEN");
	assert_string_equal(r->secrets[0].value, "api-secret-value");
	assert_int_equal(r->secrets[0].len, strlen("api-secret-value"));
	assert_string_equal(r->secrets[1].name, "OTHER");
	sp_server_config_free(c);
	sp_diags_release(&d);
}

static void test_secret_file_and_tls(void **state)
{
	char *dir = sp_test_tempdir("sp-config-");
	char *path = sp_xasprintf("%s/serve.yml", dir);
	char *sec = sp_xasprintf("%s/s.secret", dir);
	char *pem = sp_xasprintf("%s/c.pem", dir);
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;

	(void)state;
	sp_test_write_file(sec, "line-one\r\n");
	sp_test_write_file(pem, "-----BEGIN-----\n");
	sp_test_write_file(path, "data: d\nlisten: \"0.0.0.0:443\"\n"
			   "tls: { cert: c.pem, key: c.pem }\n"
			   "admin_token_file: s.secret\n"
			   "repos:\n  - name: a\n    url: ../a.git\n    forge: gitlab\n"
			   "    secret_file: s.secret\n");
	assert_int_equal(sp_server_config_load(&c, path, test_getenv, &d), 0);
	assert_string_equal(c->admin_token, "line-one");
	assert_null(c->read_token);  /* reads are public */
	assert_string_equal(c->repos[0].secret, "line-one");
	assert_int_equal(c->repos[0].secret_len, 8);
	assert_non_null(strstr(c->tls_cert, "/c.pem"));
	assert_true(c->tls_cert[0] == '/');
	assert_string_equal(c->public_url, "https://0.0.0.0:443");
	sp_server_config_free(c);
	sp_diags_release(&d);
	sp_test_rmtree(dir);
	free(dir);
	free(path);
	free(sec);
	free(pem);
}

/* read_token_env / read_token_file: the web UI's read access (ui.c) */
static void test_read_token(void **state)
{
	char *dir = sp_test_tempdir("sp-config-");
	char *path = sp_xasprintf("%s/serve.yml", dir);
	char *tok = sp_xasprintf("%s/read.token", dir);
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;
	size_t i;

	(void)state;
	sp_test_write_file(path, "data: d\nread_token_env: TEST_READ\n"
			   "admin_token_env: TEST_ADMIN\n"
			   "repos:\n  - name: a\n    url: ../a.git\n    forge: gitlab\n"
			   "    secret_env: APP_SECRET\n");
	assert_int_equal(sp_server_config_load(&c, path, test_getenv, &d), 0);
	assert_string_equal(c->read_token, "read-token-value");
	assert_string_equal(c->admin_token, "admin-token-value");
	sp_server_config_free(c);
	c = NULL;

	sp_test_write_file(tok, "read-from-file\n");
	sp_test_write_file(path, "data: d\nread_token_file: read.token\n"
			   "repos:\n  - name: a\n    url: ../a.git\n    forge: gitlab\n"
			   "    secret_env: APP_SECRET\n");
	assert_int_equal(sp_server_config_load(&c, path, test_getenv, &d), 0);
	assert_string_equal(c->read_token, "read-from-file");
	assert_null(c->admin_token);
	sp_server_config_free(c);
	c = NULL;

	/* an empty variable is an error that does not print the token's text */
	sp_test_write_file(path, "data: d\nread_token_env: EMPTY_SECRET\n"
			   "repos:\n  - name: a\n    url: ../a.git\n    forge: gitlab\n"
			   "    secret_env: APP_SECRET\n");
	assert_int_equal(sp_server_config_load(&c, path, test_getenv, &d), SP_ECONFIG);
	assert_null(c);
	assert_true(d.n >= 1);
	for (i = 0; i < d.n; i++)
		assert_null(strstr(d.items[i].msg, "value"));
	assert_non_null(strstr(d.items[0].msg, "EMPTY_SECRET (read_token_env) is empty"));
	sp_diags_release(&d);
	sp_test_rmtree(dir);
	free(dir);
	free(path);
	free(tok);
}

static void test_agents_and_git(void **state)
{
	char *dir = sp_test_tempdir("sp-config-");
	char *path = sp_xasprintf("%s/serve.yml", dir);
	char *tok = sp_xasprintf("%s/agent.token", dir);
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;
	unsigned char want[SHA256_DIGEST_LENGTH];
	size_t i;

	(void)state;
	sp_test_write_file(tok, "file-agent-token\n");
	sp_test_write_file(path, "data: /d\nworkers: 0\nworker_labels: [linux, big]\n"
			   "agents:\n"
			   "  - name: build-1\n    token_env: AGENT1\n"
			   "  - name: build.2\n    token_file: agent.token\n"
			   "  - name: 3rd_one\n    token_sha256: "
			   "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n"
			   "repos:\n  - name: a\n    url: /srv/a.git\n    forge: github\n"
			   "    secret_env: APP_SECRET\n"
			   "    git: { token_env: GIT_TOK }\n"
			   "  - name: b\n    url: /srv/b.git\n    forge: github\n"
			   "    secret_env: APP_SECRET\n"
			   "    git: { user: ci-bot, token_file: agent.token }\n"
			   "  - name: c\n    url: /srv/c.git\n    forge: github\n"
			   "    secret_env: APP_SECRET\n");
	if (sp_server_config_load(&c, path, test_getenv, &d) != 0)
		for (i = 0; i < d.n; i++)
			fprintf(stderr, "unexpected: %d:%d: %s\n", d.items[i].line, d.items[i].col,
				d.items[i].msg);
	assert_non_null(c);
	assert_int_equal(c->workers, 0);
	assert_string_equal(c->worker_labels, "linux,big");
	assert_int_equal(c->nagents, 3);
	assert_string_equal(c->agents[0].name, "build-1");
	SHA256((const unsigned char *)"agent-one-token-value", 21, want);
	assert_memory_equal(c->agents[0].token_sha256, want, sizeof(want));
	assert_string_equal(c->agents[1].name, "build.2");
	SHA256((const unsigned char *)"file-agent-token", 16, want);  /* newline dropped */
	assert_memory_equal(c->agents[1].token_sha256, want, sizeof(want));
	/* sha256("test"), upper case accepted */
	SHA256((const unsigned char *)"test", 4, want);
	assert_memory_equal(c->agents[2].token_sha256, want, sizeof(want));
	assert_string_equal(c->repos[0].git_user, "x-access-token");
	assert_string_equal(c->repos[0].git_token, "git-token-value");
	assert_string_equal(c->repos[1].git_user, "ci-bot");
	assert_string_equal(c->repos[1].git_token, "file-agent-token");
	assert_null(c->repos[2].git_user);
	assert_null(c->repos[2].git_token);
	sp_server_config_free(c);
	sp_diags_release(&d);

	/* no agents: none configured, the slots have no labels */
	sp_test_write_file(path, "data: /d\nagents: []\n" REPO);
	c = NULL;
	assert_int_equal(sp_server_config_load(&c, path, test_getenv, &d), 0);
	assert_int_equal(c->nagents, 0);
	assert_null(c->worker_labels);
	sp_server_config_free(c);
	sp_diags_release(&d);

	assert_true(sp_agent_name_ok("a"));
	assert_true(sp_agent_name_ok("0build.x_y-z"));
	assert_false(sp_agent_name_ok(""));
	assert_false(sp_agent_name_ok(".a"));
	assert_false(sp_agent_name_ok("_a"));
	assert_false(sp_agent_name_ok("a/b"));
	assert_false(sp_agent_name_ok("local-2"));
	assert_true(sp_agent_name_ok("localhost"));
	assert_true(sp_agent_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(sp_agent_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));

	sp_test_rmtree(dir);
	free(dir);
	free(path);
	free(tok);
}

/* store: sqlite (default), a URL, {url_env}; errors where they are. */
static void test_store(void **state)
{
	static const struct {
		const char *yaml;
		const char *url;     /* NULL: SQLite */
		int line, col;       /* 0: loads */
		const char *msg;
	} cases[] = {
		{ "data: /d\n" REPO, NULL, 0, 0, NULL },
		{ "data: /d\nstore: sqlite\n" REPO, NULL, 0, 0, NULL },
		{ "data: /d\nstore: postgresql:///ci?host=/run/pg\n" REPO,
		  "postgresql:///ci?host=/run/pg", 0, 0, NULL },
		{ "data: /d\nstore: {url_env: PG_URL}\n" REPO, "postgres://ci:pw@db/ci", 0, 0, NULL },
		{ "data: /d\nstore: mysql://db\n" REPO, NULL, 2, 8, "store must be sqlite" },
		{ "data: /d\nstore: {url_env: NOT_PG}\n" REPO, NULL, 2, 18, "must start with postgres" },
		{ "data: /d\nstore: {url_env: NOPE}\n" REPO, NULL, 2, 18, "is not set" },
		{ "data: /d\nstore: {url: x}\n" REPO, NULL, 2, 9, "unknown key \"url\"" },
		{ "data: /d\nstore: {}\n" REPO, NULL, 2, 8, "missing url_env or url_file" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_diags d = SP_DIAGS_INIT;
		struct sp_server_config *c = NULL;
		size_t n = load_text(cases[i].yaml, &d, &c);

		if (!cases[i].line) {
			if (n)
				fail_msg("case %zu: %s", i, d.items[0].msg);
			if (cases[i].url)
				assert_string_equal(c->store_url, cases[i].url);
			else
				assert_null(c->store_url);
		} else if (!has(&d, cases[i].line, cases[i].col, cases[i].msg)) {
			fail_msg("case %zu: no %d:%d: %s (got %s)", i, cases[i].line, cases[i].col,
				 cases[i].msg, n ? d.items[0].msg : "nothing");
		}
		sp_server_config_free(c);
		sp_diags_release(&d);
	}
}

static void test_missing_file(void **state)
{
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;

	(void)state;
	assert_int_equal(sp_server_config_load(&c, "/nonexistent/serve.yml", NULL, &d),
			 SP_ECONFIG);
	assert_null(c);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.items[0].line, 0);
	assert_non_null(strstr(d.items[0].msg, "cannot open"));
	sp_diags_release(&d);
}

static void test_branches(void **state)
{
	static char p0[] = "main", p1[] = "release/*", p2[] = "feature/**", p3[] = "hot*fix",
		    p4[] = "**/wip";
	char *pats[] = { p0, p1, p2, p3, p4, NULL };
	struct sp_repo_config r;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_true(sp_repo_branch_allowed(&r, "anything/at/all"));
	r.branches = pats;
	assert_true(sp_repo_branch_allowed(&r, "main"));
	assert_false(sp_repo_branch_allowed(&r, "main2"));
	assert_false(sp_repo_branch_allowed(&r, "mai"));
	assert_true(sp_repo_branch_allowed(&r, "release/2.0"));
	assert_true(sp_repo_branch_allowed(&r, "release/"));
	assert_false(sp_repo_branch_allowed(&r, "release/2.0/x"));
	assert_false(sp_repo_branch_allowed(&r, "release"));
	assert_true(sp_repo_branch_allowed(&r, "feature/a"));
	assert_true(sp_repo_branch_allowed(&r, "feature/a/b/c"));
	assert_false(sp_repo_branch_allowed(&r, "features/a"));
	assert_true(sp_repo_branch_allowed(&r, "hotfix"));
	assert_true(sp_repo_branch_allowed(&r, "hot-big-fix"));
	assert_false(sp_repo_branch_allowed(&r, "hot/fix"));
	assert_true(sp_repo_branch_allowed(&r, "wip"));
	assert_true(sp_repo_branch_allowed(&r, "a/b/wip"));
	assert_false(sp_repo_branch_allowed(&r, "a/b/wipe"));
	assert_false(sp_repo_branch_allowed(&r, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_bad_all_at_once),
		cmocka_unit_test(test_small_cases),
		cmocka_unit_test(test_repo_secrets),
		cmocka_unit_test(test_secret_file_and_tls),
		cmocka_unit_test(test_read_token),
		cmocka_unit_test(test_agents_and_git),
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_branches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
