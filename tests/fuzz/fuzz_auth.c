/*
 * fuzz_auth.c — libFuzzer target: registry credential documents
 * (core/registry/auth.h).
 *
 * There is no parse-from-buffer function; the pure way in is
 * DOCKER_AUTH_CONFIG, a config document ({"auths": ...}) in the
 * environment, which sp_auth_lookup reads through the getenv function it
 * is given, and whose credHelpers/credsStore are never run.  The input up
 * to the first NUL is that document; the rest, when there is a NUL, is the
 * registry looked up (else a few fixed ones).  No other variable is set,
 * so no config file is read and no helper is started.  A lookup that
 * finds credentials is turned into the X-Registry-Auth header, and its
 * description must not show the password (see leaks()).  The registry is also
 * normalised with sp_auth_normalize_key.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/base/error.h"
#include "core/registry/auth.h"
#include "tests/fuzz/fuzz.h"

static const char *fake_env(const char *name, void *ud)
{
	return !strcmp(name, "DOCKER_AUTH_CONFIG") ? ud : NULL;
}

/* 1 when s, or any key or non-secret string of the JSON tree j, holds pw. */
static int seen(const cJSON *j, const char *pw)
{
	const cJSON *c;

	if (!j)
		return 0;
	if (j->string && strstr(j->string, pw))
		return 1;
	if (cJSON_IsString(j) && j->valuestring && strstr(j->valuestring, pw) &&
	    !(j->string && (!strcmp(j->string, "password") || !strcmp(j->string, "auth") ||
			    !strcmp(j->string, "identitytoken"))))
		return 1;
	for (c = j->child; c; c = c->next)
		if (seen(c, pw))
			return 1;
	return 0;
}

/*
 * Whether the description shows the password.  It legitimately names the
 * user, the registry and the config key, and has fixed text, any of which
 * may happen to contain the password: only a password with a '#' (which no
 * fixed text of auth.c has) that is found nowhere else counts.
 */
static int leaks(const char *desc, const char *pw, const char *doc, const char *registry,
		 const char *user)
{
	cJSON *j;
	int other;

	if (!strchr(pw, '#') || !strstr(desc, pw))
		return 0;
	if (strstr(registry, pw) || (user && strstr(user, pw)))
		return 0;
	j = cJSON_Parse(doc);
	other = seen(j, pw);
	cJSON_Delete(j);
	return !other;
}

static void lookup(const char *doc, const char *registry)
{
	struct sp_auth_opts o = { fake_env, NULL, 1000 };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_auth a;
	char *hdr;

	o.getenv_ud = (void *)(uintptr_t)doc;
	free(sp_auth_normalize_key(registry));
	if (sp_auth_lookup(&a, registry, &o, &err) == 0) {
		if (a.source == SP_AUTH_HELPER || a.source == SP_AUTH_CONFIG)
			abort(); /* no helper, no file: only the document answers */
		if (!a.description)
			abort();
		if (a.password && leaks(a.description, a.password, doc, registry, a.username))
			abort(); /* never a secret in the description */
		hdr = sp_auth_header(&a);
		sp_auth_free_secret(hdr);
	}
	sp_auth_release(&a);
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
	static const char *const registries[] = {
		"docker.io", "reg.example.com:5000", "127.0.0.1:5000",
	};
	char *doc = fuzz_strndup(data, size);
	size_t doclen = strlen(doc), i;

	if (doclen < size) {
		lookup(doc, doc + doclen + 1);
	} else {
		for (i = 0; i < sizeof(registries) / sizeof(registries[0]); i++)
			lookup(doc, registries[i]);
	}
	free(doc);
	return 0;
}
