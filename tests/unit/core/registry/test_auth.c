/*
 * test_auth.c — registry credentials found as the docker CLI finds them
 * (core/registry/auth.c): config files written to a temporary folder, a fake
 * credential helper script put on an injected PATH, the CI variables,
 * the X-Registry-Auth encoding (checked by decoding it), and that no
 * error message or description ever holds a secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/registry/auth.h"
#include "core/base/error.h"
#include "core/registry/imageref.h"
#include "core/base/xalloc.h"
#include "tests/unit/support/testutil.h"

#define SECRET "Sup3r-s3cret-PW"
#define HELPER_SECRET "helper-S3cret"

/* ---- fixtures ---- */

struct fx {
	char *dir;         /* the temporary folder: DOCKER_CONFIG and PATH */
	char *env[16];     /* "NAME=value", NULL-terminated */
	size_t nenv;
};

static const char *table_env(const char *name, void *ud)
{
	struct fx *f = ud;

	return sp_test_env(name, f->env);
}

static void setenv_fx(struct fx *f, const char *name, const char *value)
{
	size_t n = strlen(name), i;

	for (i = 0; i < f->nenv; i++)
		if (!strncmp(f->env[i], name, n) && f->env[i][n] == '=') {
			free(f->env[i]);
			f->env[i] = sp_xasprintf("%s=%s", name, value);
			return;
		}
	assert_true(f->nenv + 1 < sizeof(f->env) / sizeof(f->env[0]));
	f->env[f->nenv++] = sp_xasprintf("%s=%s", name, value);
}

static void write_file(const char *dir, const char *name, const char *text, int mode)
{
	char *path = sp_xasprintf("%s/%s", dir, name);

	sp_test_write_file(path, text);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
	free(path);
}

static char *read_file(const char *dir, const char *name)
{
	char *path = sp_xasprintf("%s/%s", dir, name), buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	free(path);
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return sp_xstrdup(buf);
}

/* The fake helper answers by the server URL it reads on stdin. */
static const char helper_script[] =
	"#!/bin/sh\n"
	"[ \"$1\" = get ] || { echo \"unexpected arguments: $*\" >&2; exit 2; }\n"
	"url=$(cat)\n"
	"printf '%s' \"$url\" >\"${0%/*}/last-url\"\n"
	"case $url in\n"
	"creds.example|https://index.docker.io/v1/)\n"
	"  printf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"" HELPER_SECRET "\"}\\n' \"$url\" ;;\n"
	"token.example)\n"
	"  printf '{\"ServerURL\":\"%s\",\"Username\":\"<token>\",\"Secret\":\"helper-T0ken\"}\\n' \"$url\" ;;\n"
	"garbage.example) echo \"user:" HELPER_SECRET " is not JSON\" ;;\n"
	"fail.example) echo 'the keychain exploded' >&2; exit 4 ;;\n"
	"leak.example) printf '{\"Username\":\"u\",\"Secret\":\"" HELPER_SECRET "\"}'; exit 1 ;;\n"
	"slow.example) sleep 5 ;;\n"
	"*) echo 'credentials not found in native keychain'; exit 1 ;;\n"
	"esac\n";

static const char other_script[] =
	"#!/bin/sh\n"
	"cat >/dev/null\n"
	"echo '{\"ServerURL\":\"x\",\"Username\":\"other-user\",\"Secret\":\"other-pw\"}'\n";

static int setup(void **state)
{
	struct fx *f = sp_xcalloc(1, sizeof(*f));

	f->dir = sp_test_tempdir("sp-auth-");
	write_file(f->dir, "docker-credential-test", helper_script, 0755);
	write_file(f->dir, "docker-credential-other", other_script, 0755);
	setenv_fx(f, "DOCKER_CONFIG", f->dir);
	setenv_fx(f, "PATH", f->dir);
	setenv_fx(f, "HOME", "/nonexistent-home");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	size_t i;

	sp_test_rmtree(f->dir);
	free(f->dir);
	for (i = 0; i < f->nenv; i++)
		free(f->env[i]);
	free(f);
	return 0;
}

static void config(struct fx *f, const char *json)
{
	write_file(f->dir, "config.json", json, 0600);
}

static char *b64(const char *s)
{
	char *out = sp_xmalloc(4 * ((strlen(s) + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)strlen(s));
	return out;
}

static int lookup_within(struct fx *f, const char *registry, struct sp_auth *a,
			 struct sp_error *err, long helper_timeout_ms)
{
	struct sp_auth_opts o;

	memset(&o, 0, sizeof(o));
	o.getenv = table_env;
	o.getenv_ud = f;
	o.helper_timeout_ms = helper_timeout_ms;
	return sp_auth_lookup(a, registry, &o, err);
}

static int lookup(struct fx *f, const char *registry, struct sp_auth *a, struct sp_error *err)
{
	return lookup_within(f, registry, a, err, 5000);
}

/* Decodes an X-Registry-Auth value back into JSON. */
static cJSON *decode_header(const char *h)
{
	size_t n = strlen(h), i, pad = 0;
	char *std = sp_xstrdup(h);
	unsigned char *raw = sp_xmalloc(n + 1);
	int len;
	cJSON *j;

	assert_int_equal(n % 4, 0);
	for (i = 0; i < n; i++) {
		assert_true(std[i] != '+' && std[i] != '/');
		if (std[i] == '-')
			std[i] = '+';
		else if (std[i] == '_')
			std[i] = '/';
	}
	if (n && std[n - 1] == '=')
		pad++;
	if (n > 1 && std[n - 2] == '=')
		pad++;
	len = EVP_DecodeBlock(raw, (unsigned char *)std, (int)n);
	assert_true(len >= 0);
	raw[len - (int)pad] = '\0';
	j = cJSON_Parse((char *)raw);
	assert_non_null(j);
	free(std);
	free(raw);
	return j;
}

static const char *jstr(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* No secret, nor its base64, in an error or a description. */
static void assert_clean(const char *text, const char *secret)
{
	char *enc = b64(secret);

	if (strstr(text, secret) || strstr(text, enc))
		fail_msg("secret in \"%s\"", text);
	free(enc);
}

/* ---- tests ---- */

static void test_anonymous_without_config(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *h;

	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ANONYMOUS);
	assert_null(a.username);
	assert_null(a.password);
	assert_non_null(strstr(a.description, "anonymous"));
	assert_non_null(strstr(a.description, "config.json"));
	h = sp_auth_header(&a);
	assert_string_equal(h, "e30=");  /* {} */
	sp_auth_free_secret(h);
	sp_auth_release(&a);
}

static void test_auths_auth(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *enc = b64("alice:" SECRET ":with-colon"), *json, *h;
	cJSON *j;

	json = sp_xasprintf("{\"auths\":{\"other.example\":{\"auth\":\"eDp5\"},"
			    "\"reg.example:5000\":{\"auth\":\"%s\",\"email\":\"a@b\"}}}", enc);
	config(f, json);
	assert_int_equal(lookup(f, "reg.example:5000", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_CONFIG);
	assert_string_equal(a.username, "alice");
	assert_string_equal(a.password, SECRET ":with-colon");  /* split at the first ':' */
	assert_non_null(strstr(a.description, "user \"alice\" from auths[\"reg.example:5000\"]"));
	assert_clean(a.description, SECRET);
	h = sp_auth_header(&a);
	j = decode_header(h);
	assert_string_equal(jstr(j, "username"), "alice");
	assert_string_equal(jstr(j, "password"), SECRET ":with-colon");
	assert_string_equal(jstr(j, "serveraddress"), "reg.example:5000");
	assert_null(jstr(j, "identitytoken"));
	cJSON_Delete(j);
	sp_auth_free_secret(h);
	sp_auth_release(&a);
	free(json);
	free(enc);
}

static void test_auths_identity_token(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *h;
	cJSON *j;

	config(f, "{\"auths\":{\"tok.example\":{\"auth\":\"dTpw\",\"identitytoken\":\"tok-123\"}}}");
	assert_int_equal(lookup(f, "tok.example", &a, &err), 0);
	assert_string_equal(a.identity_token, "tok-123");
	assert_null(a.username);
	assert_non_null(strstr(a.description, "identity token"));
	h = sp_auth_header(&a);
	j = decode_header(h);
	assert_string_equal(jstr(j, "identitytoken"), "tok-123");
	assert_null(jstr(j, "username"));
	assert_null(jstr(j, "password"));
	cJSON_Delete(j);
	sp_auth_free_secret(h);
	sp_auth_release(&a);
}

static void test_key_normalisation(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *k;

	k = sp_auth_normalize_key("https://Reg.Example:5000/v2/");
	assert_string_equal(k, "reg.example:5000");
	free(k);
	k = sp_auth_normalize_key("registry-1.docker.io");
	assert_string_equal(k, "index.docker.io");
	free(k);

	config(f, "{\"auths\":{"
		  "\"https://reg.example:5000/v2/\":{\"auth\":\"bm9ybTpwdw==\"},"
		  "\"http://Plain.Example/some/path\":{\"username\":\"u2\",\"password\":\"p2\"},"
		  "\"exact.example\":{\"auth\":\"ZXhhY3Q6cHc=\"},"
		  "\"https://exact.example/\":{\"auth\":\"bm9ybTpwdw==\"}}}");
	assert_int_equal(lookup(f, "reg.example:5000", &a, &err), 0);
	assert_string_equal(a.username, "norm");
	sp_auth_release(&a);
	assert_int_equal(lookup(f, "plain.example", &a, &err), 0);
	assert_string_equal(a.username, "u2");
	assert_string_equal(a.password, "p2");
	sp_auth_release(&a);
	/* the exact key wins over one that only normalises to the host */
	assert_int_equal(lookup(f, "exact.example", &a, &err), 0);
	assert_string_equal(a.username, "exact");
	sp_auth_release(&a);
	/* another port is another registry */
	assert_int_equal(lookup(f, "reg.example:5001", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ANONYMOUS);
	sp_auth_release(&a);
}

static void test_docker_hub(void **state)
{
	struct fx *f = *state;
	struct sp_imageref r;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *h;
	cJSON *j;

	config(f, "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1Yi1wdw==\"}}}");
	assert_int_equal(sp_imageref_parse(&r, "team/app:1", &err), 0);
	assert_int_equal(lookup(f, sp_imageref_registry(&r), &a, &err), 0);
	sp_imageref_release(&r);
	assert_string_equal(a.registry, "docker.io");
	assert_string_equal(a.server_address, SP_AUTH_HUB_KEY);
	assert_string_equal(a.username, "hub");
	assert_string_equal(a.password, "hub-pw");
	h = sp_auth_header(&a);
	j = decode_header(h);
	assert_string_equal(jstr(j, "serveraddress"), "https://index.docker.io/v1/");
	cJSON_Delete(j);
	sp_auth_free_secret(h);
	sp_auth_release(&a);
}

static void test_helpers(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *url;

	/* credHelpers for the host beats credsStore; the helper's answer
	 * beats auths for the same host */
	config(f, "{\"credsStore\":\"other\","
		  "\"credHelpers\":{\"creds.example\":\"test\",\"https://token.example\":\"test\","
		  "\"notfound.example\":\"test\"},"
		  "\"auths\":{\"creds.example\":{\"auth\":\"ZmlsZTpmaWxlLXB3\"},"
		  "\"notfound.example\":{\"auth\":\"ZmlsZTpmaWxlLXB3\"}}}");
	assert_int_equal(lookup(f, "creds.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_HELPER);
	assert_string_equal(a.username, "helper-user");
	assert_string_equal(a.password, HELPER_SECRET);
	assert_non_null(strstr(a.description, "docker-credential-test (credHelpers[\"creds.example\"]"));
	assert_clean(a.description, HELPER_SECRET);
	url = read_file(f->dir, "last-url");
	assert_string_equal(url, "creds.example");  /* exactly the URL, no newline */
	free(url);
	sp_auth_release(&a);

	/* "<token>" means an identity token; the key matched after normalising */
	assert_int_equal(lookup(f, "token.example", &a, &err), 0);
	assert_string_equal(a.identity_token, "helper-T0ken");
	assert_null(a.username);
	sp_auth_release(&a);

	/* not found: anonymous, even though auths has an entry */
	assert_int_equal(lookup(f, "notfound.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ANONYMOUS);
	assert_null(a.username);
	assert_non_null(strstr(a.description, "has none for notfound.example"));
	sp_auth_release(&a);

	/* any other host goes to credsStore */
	assert_int_equal(lookup(f, "else.example", &a, &err), 0);
	assert_string_equal(a.username, "other-user");
	assert_non_null(strstr(a.description, "credsStore"));
	sp_auth_release(&a);

	/* credHelpers[host] = "" opts the host out of credsStore: auths answer */
	config(f, "{\"credsStore\":\"test\",\"credHelpers\":{\"creds.example\":\"\"},"
		  "\"auths\":{\"creds.example\":{\"auth\":\"ZmlsZTpmaWxlLXB3\"}}}");
	assert_int_equal(lookup(f, "creds.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_CONFIG);
	assert_string_equal(a.username, "file");
	sp_auth_release(&a);

	/* Docker Hub: the helper gets the hub key */
	config(f, "{\"credsStore\":\"test\"}");
	assert_int_equal(lookup(f, "docker.io", &a, &err), 0);
	assert_string_equal(a.username, "helper-user");
	url = read_file(f->dir, "last-url");
	assert_string_equal(url, SP_AUTH_HUB_KEY);
	free(url);
	sp_auth_release(&a);
}

static void test_helper_failures(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;

	config(f, "{\"credsStore\":\"test\",\"credHelpers\":{\"missing.example\":\"nosuch\"}}");

	assert_int_equal(lookup(f, "garbage.example", &a, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "docker-credential-test"));
	assert_non_null(strstr(err.msg, "garbage.example"));
	assert_non_null(strstr(err.msg, "not {\"ServerURL\""));
	assert_clean(err.msg, HELPER_SECRET);
	assert_null(a.username);
	sp_auth_release(&a);

	assert_int_equal(lookup(f, "fail.example", &a, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "exited with status 4"));
	assert_non_null(strstr(err.msg, "the keychain exploded"));
	sp_auth_release(&a);

	/* failed, but printed JSON holding a secret: not shown */
	assert_int_equal(lookup(f, "leak.example", &a, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "bytes of JSON not shown"));
	assert_clean(err.msg, HELPER_SECRET);
	sp_auth_release(&a);

	assert_int_equal(lookup(f, "missing.example", &a, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "docker-credential-nosuch not found in PATH"));
	assert_non_null(strstr(err.msg, "credHelpers[\"missing.example\"]"));
	sp_auth_release(&a);

	assert_int_equal(lookup_within(f, "slow.example", &a, &err, 300), SP_EENGINE);
	assert_non_null(strstr(err.msg, "did not answer"));
	sp_auth_release(&a);
}

static int cancel_after_polls(void *ud)
{
	int *polls = ud;

	return ++*polls > 4;
}

/* A helper that hangs is killed when the lookup is cancelled, well before its timeout. */
static void test_helper_cancelled(void **state)
{
	struct fx *f = *state;
	struct sp_auth_opts o;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	struct timespec t0, t1;
	int polls = 0;

	config(f, "{\"credsStore\":\"test\"}");
	memset(&o, 0, sizeof(o));
	o.getenv = table_env;
	o.getenv_ud = f;
	o.helper_timeout_ms = 30000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(sp_auth_lookup_cancel(&a, "slow.example", &o, cancel_after_polls, &polls,
					       &err), SP_ECANCELLED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	assert_non_null(strstr(err.msg, "cancelled"));
	assert_non_null(strstr(err.msg, "slow.example"));
	assert_null(a.username);
	sp_auth_release(&a);

	/* a cancel that never fires changes nothing */
	polls = -1000000;
	assert_int_equal(sp_auth_lookup_cancel(&a, "creds.example", &o, cancel_after_polls,
					       &polls, &err), 0);
	assert_string_equal(a.username, "helper-user");
	sp_auth_release(&a);
}

static void test_ci_variables(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;

	config(f, "{\"auths\":{\"reg.example\":{\"auth\":\"ZmlsZTpmaWxlLXB3\"}}}");
	setenv_fx(f, "STAGEPIPE_REGISTRY_USER", "ci-user");
	setenv_fx(f, "STAGEPIPE_REGISTRY_PASSWORD", SECRET);
	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ENV);
	assert_string_equal(a.username, "ci-user");
	assert_string_equal(a.password, SECRET);
	assert_non_null(strstr(a.description,
			       "STAGEPIPE_REGISTRY_USER/STAGEPIPE_REGISTRY_PASSWORD"));
	assert_clean(a.description, SECRET);
	sp_auth_release(&a);

	/* limited to another registry: the config answers */
	setenv_fx(f, "STAGEPIPE_REGISTRY", "https://other.example/");
	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_string_equal(a.username, "file");
	sp_auth_release(&a);
	setenv_fx(f, "STAGEPIPE_REGISTRY", "Reg.Example");
	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_string_equal(a.username, "ci-user");
	sp_auth_release(&a);
	setenv_fx(f, "STAGEPIPE_REGISTRY", "");

	/* one without the other */
	setenv_fx(f, "STAGEPIPE_REGISTRY_USER", "");
	assert_int_equal(lookup(f, "reg.example", &a, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "STAGEPIPE_REGISTRY_PASSWORD is set but "
				   "STAGEPIPE_REGISTRY_USER is not"));
	assert_clean(err.msg, SECRET);
	assert_null(a.password);
	sp_auth_release(&a);
	setenv_fx(f, "STAGEPIPE_REGISTRY_USER", "ci-user");
	setenv_fx(f, "STAGEPIPE_REGISTRY_PASSWORD", "");
	assert_int_equal(lookup(f, "reg.example", &a, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "STAGEPIPE_REGISTRY_USER is set but"));
	sp_auth_release(&a);
}

static void test_docker_auth_config(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *enc = b64("envcfg:" SECRET), *json;

	config(f, "{\"auths\":{\"reg.example\":{\"auth\":\"ZmlsZTpmaWxlLXB3\"}}}");
	json = sp_xasprintf("{\"auths\":{\"https://reg.example\":{\"auth\":\"%s\"}}}", enc);
	setenv_fx(f, "DOCKER_AUTH_CONFIG", json);
	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ENV_CONFIG);
	assert_string_equal(a.username, "envcfg");
	assert_string_equal(a.password, SECRET);
	sp_auth_release(&a);
	/* no entry there: the file answers */
	assert_int_equal(lookup(f, "else.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ANONYMOUS);
	sp_auth_release(&a);
	free(json);

	json = sp_xasprintf("{\"auths\":{\"reg.example\":{\"auth\":\"%s\"}", enc);
	setenv_fx(f, "DOCKER_AUTH_CONFIG", json);
	assert_int_equal(lookup(f, "reg.example", &a, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "DOCKER_AUTH_CONFIG is not valid JSON"));
	assert_clean(err.msg, SECRET);
	sp_auth_release(&a);
	setenv_fx(f, "DOCKER_AUTH_CONFIG", "");
	free(json);
	free(enc);
}

static void test_bad_config_files(void **state)
{
	struct fx *f = *state;
	struct sp_auth a;
	struct sp_error err = SP_ERROR_INIT;
	char *enc, *json;

	/* not JSON: line number, no excerpt */
	config(f, "{\n \"auths\": {\n  \"reg.example\": {\"auth\": \"" SECRET "\"\n");
	assert_int_equal(lookup(f, "reg.example", &a, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "config.json is not valid JSON (line"));
	assert_clean(err.msg, SECRET);
	sp_auth_release(&a);

	/* auth not base64 (it holds the secret as text) */
	config(f, "{\"auths\":{\"reg.example\":{\"auth\":\"user:" SECRET "\"}}}");
	assert_int_equal(lookup(f, "reg.example", &a, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "is not base64"));
	assert_non_null(strstr(err.msg, "auths[\"reg.example\"]"));
	assert_clean(err.msg, SECRET);
	sp_auth_release(&a);

	/* base64 without a ':' */
	enc = b64("user" SECRET);
	json = sp_xasprintf("{\"auths\":{\"reg.example\":{\"auth\":\"%s\"}}}", enc);
	config(f, json);
	assert_int_equal(lookup(f, "reg.example", &a, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "does not decode to user:password"));
	assert_clean(err.msg, SECRET);
	assert_null(strstr(err.msg, enc));
	assert_null(a.username);
	assert_null(a.password);
	sp_auth_release(&a);
	free(json);
	free(enc);

	/* an empty entry (what credsStore leaves) is no credentials */
	config(f, "{\"auths\":{\"reg.example\":{}}}");
	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_int_equal(a.source, SP_AUTH_ANONYMOUS);
	sp_auth_release(&a);

	/* the config folder: $HOME/.docker when DOCKER_CONFIG is unset */
	setenv_fx(f, "DOCKER_CONFIG", "");
	setenv_fx(f, "HOME", "/nonexistent-home");
	assert_int_equal(lookup(f, "reg.example", &a, &err), 0);
	assert_non_null(strstr(a.description, "/nonexistent-home/.docker/config.json"));
	sp_auth_release(&a);
}

static void test_header_is_base64url_with_padding(void **state)
{
	static const char *passwords[] = { "a", "ab", "abc", "~~~>>>???", "?>?>~", "\xc3\xa9t\xc3\xa9" };
	size_t i;
	int urlsafe = 0;

	(void)state;
	for (i = 0; i < sizeof(passwords) / sizeof(passwords[0]); i++) {
		struct sp_auth a;
		char *h;
		cJSON *j;

		memset(&a, 0, sizeof(a));
		a.server_address = (char *)"reg.example";
		a.username = (char *)"u";
		a.password = (char *)passwords[i];
		h = sp_auth_header(&a);
		if (strchr(h, '-') || strchr(h, '_'))
			urlsafe = 1;
		j = decode_header(h);  /* asserts no '+' '/' and length % 4 == 0 */
		assert_string_equal(jstr(j, "password"), passwords[i]);
		assert_string_equal(jstr(j, "serveraddress"), "reg.example");
		cJSON_Delete(j);
		sp_auth_free_secret(h);
	}
	assert_true(urlsafe);  /* the translation was exercised */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_anonymous_without_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auths_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auths_identity_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_normalisation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_hub, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helpers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ci_variables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_auth_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config_files, setup, teardown),
		cmocka_unit_test(test_header_is_base64url_with_padding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
