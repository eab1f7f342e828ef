/*
 * auth.c — registry credentials as the docker CLI finds them; see auth.h
 * for the order and the rules.
 *
 * What docker/cli does, read from its source: a configured helper's
 * answer replaces whatever auths holds for the registry (its native
 * store overwrites the file store's user and password, with empty ones
 * when the helper has nothing), so a helper that says "credentials not
 * found" means anonymous; a file entry is looked up by its exact key
 * first, then by comparing host names.  An identity token wins over a
 * user and password in the same entry, as it does in the daemon.
 *
 * Every string that may hold a secret (config file bytes, the helper's
 * stdout, parsed JSON, the header) is wiped with OPENSSL_cleanse before
 * it is freed, and error messages are built from names only: a file
 * path, a registry, a helper name, a byte count.
 */
#include "core/registry/auth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/child.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

#define CONFIG_CAP (4 * 1024 * 1024)
#define HELPER_OUT_CAP (64 * 1024)
#define HELPER_ERR_CAP (4 * 1024)
#define HELPER_TIMEOUT_MS 30000L
#define HUB_HOST "index.docker.io"
#define ENV_PAIR "STAGEPIPE_REGISTRY_USER/STAGEPIPE_REGISTRY_PASSWORD"

/* ---- small helpers ---- */

static const char *env(const struct sp_auth_opts *o, const char *name)
{
	const char *v = o && o->getenv ? o->getenv(name, o->getenv_ud) : NULL;
	return v && *v ? v : NULL;
}

void sp_auth_free_secret(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static void wipe_buf(struct sp_buf *b)
{
	if (b->alloc)
		OPENSSL_cleanse(b->data, b->alloc);
	sp_buf_release(b);
}

/* Wipes every string of a parsed document (cJSON limits the depth). */
static void json_wipe(cJSON *j)
{
	for (; j; j = j->next) {
		if (j->valuestring)
			OPENSSL_cleanse(j->valuestring, strlen(j->valuestring));
		json_wipe(j->child);
	}
}

static void json_wipe_delete(cJSON *j)
{
	if (!j)
		return;
	json_wipe(j);
	cJSON_Delete(j);
}

static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) && v->valuestring && *v->valuestring ? v->valuestring : NULL;
}

char *sp_auth_normalize_key(const char *key)
{
	const char *p = strstr(key, "://");
	size_t n, i;
	char *out;

	p = p ? p + 3 : key;
	n = strcspn(p, "/");
	out = sp_xstrndup(p, n);
	for (i = 0; i < n; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] - 'A' + 'a');
	if (!strcmp(out, "docker.io") || !strcmp(out, "registry-1.docker.io")) {
		free(out);
		out = sp_xstrdup(HUB_HOST);
	}
	return out;
}

/*
 * The member of obj whose key is exactly key, else the first whose key
 * normalises to host; NULL when none.  *matched is its key (borrowed).
 */
static const cJSON *find_key(const cJSON *obj, const char *key, const char *host,
			     const char **matched)
{
	const cJSON *c;

	*matched = NULL;
	if (!cJSON_IsObject(obj))
		return NULL;
	for (c = obj->child; c; c = c->next)
		if (c->string && !strcmp(c->string, key)) {
			*matched = c->string;
			return c;
		}
	for (c = obj->child; c; c = c->next) {
		char *k;
		int same;
		if (!c->string)
			continue;
		k = sp_auth_normalize_key(c->string);
		same = !strcmp(k, host);
		free(k);
		if (same) {
			*matched = c->string;
			return c;
		}
	}
	return NULL;
}

/* Standard base64 (config "auth") → bytes; NULL when it is not base64. */
static char *b64_decode(const char *s, size_t *outlen)
{
	size_t n = strlen(s), pad = 0;
	unsigned char *out;
	int got;

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	if (n == 0 || n % 4 || n > (size_t)CONFIG_CAP)
		return NULL;
	if (s[n - 1] == '=')
		pad++;
	if (s[n - 2] == '=')
		pad++;
	out = sp_xmalloc(n / 4 * 3 + 1);
	got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (got < 0 || (size_t)got < pad) {
		OPENSSL_cleanse(out, n / 4 * 3 + 1);
		free(out);
		return NULL;
	}
	*outlen = (size_t)got - pad;
	out[*outlen] = '\0';
	return (char *)out;
}

/* base64url with padding, as the engine decodes X-Registry-Auth */
static char *b64url_encode(const char *s, size_t n)
{
	char *out = sp_xmalloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	int i;

	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	out[len] = '\0';
	return out;
}

static void set_description(struct sp_auth *a, const char *what, const char *from)
{
	free(a->description);
	if (a->identity_token)
		a->description = sp_xasprintf("an identity token from %s", from);
	else if (a->username)
		a->description = sp_xasprintf("user \"%s\" from %s", a->username, from);
	else
		a->description = sp_xasprintf("no credentials (anonymous): %s", what ? what : from);
}

/*
 * Credentials from one auths entry.  Returns 1 when it held some, 0 when
 * it was empty (a credsStore marker), SP_ECONFIG when it does not decode.
 * where: "auths[\"reg.io\"] in /root/.docker/config.json", for messages.
 */
static int from_entry(struct sp_auth *a, const cJSON *entry, const char *where,
		      struct sp_error *err)
{
	const char *auth = json_str(entry, "auth");
	const char *token = json_str(entry, "identitytoken");
	const char *user = json_str(entry, "username");
	const char *pass = json_str(entry, "password");

	if (!cJSON_IsObject(entry))
		return sp_error_set(err, SP_ECONFIG, "%s is not an object", where);
	if (token) {
		a->identity_token = sp_xstrdup(token);
		return 1;
	}
	if (auth) {
		size_t len = 0;
		char *plain = b64_decode(auth, &len), *colon;
		if (!plain)
			return sp_error_set(err, SP_ECONFIG, "the \"auth\" value of %s is not "
					    "base64 (it should be base64 of user:password)", where);
		colon = memchr(plain, ':', len);
		if (!colon || colon == plain || memchr(plain, '\0', len)) {
			OPENSSL_cleanse(plain, len);
			free(plain);
			return sp_error_set(err, SP_ECONFIG, "the \"auth\" value of %s does not "
					    "decode to user:password", where);
		}
		a->username = sp_xstrndup(plain, (size_t)(colon - plain));
		a->password = sp_xstrdup(colon + 1);
		OPENSSL_cleanse(plain, len);
		free(plain);
		return 1;
	}
	if (user && pass) {
		a->username = sp_xstrdup(user);
		a->password = sp_xstrdup(pass);
		return 1;
	}
	return 0;
}

/* Line number of position pos in text, for "not valid JSON" messages. */
static int line_of(const char *text, const char *pos)
{
	int line = 1;

	for (; text && pos && text < pos && *text; text++)
		if (*text == '\n')
			line++;
	return line;
}

/* ---- credential helpers ---- */

/* The first line of s without its JSON or control bytes; for messages. */
static void first_line(const struct sp_buf *b, char *out, size_t len)
{
	const char *s = b->data;
	size_t n, i;

	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	/* something that looks like a JSON answer may hold the secret */
	if (*s == '{' || *s == '[') {
		snprintf(out, len, "(%zu bytes of JSON not shown)", b->len);
		return;
	}
	n = strcspn(s, "\r\n");
	if (n > 200)
		n = 200;
	if (n >= len)
		n = len - 1;
	for (i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	out[n] = '\0';
}

/*
 * What a lookup runs with: the caller's options and its cancel callback.
 * Everything below takes &lookup_opts.base; from_helper, the one user of
 * cancel, gets back to the whole (base is the first member).
 */
struct lookup_opts {
	struct sp_auth_opts base;
	sp_cancel_fn cancel;
	void *cancel_ud;
};

static int from_helper(struct sp_auth *a, const char *helper, const char *why,
		       const struct sp_auth_opts *o, struct sp_error *err)
{
	const struct lookup_opts *lo = (const struct lookup_opts *)o;
	struct sp_child_opts co = SP_CHILD_OPTS_INIT;
	struct sp_child_result res;
	struct sp_error cerr = SP_ERROR_INIT;
	const char *argv[3];
	char *prog = sp_xasprintf("docker-credential-%s", helper), *from = NULL;
	char how[128], line[256];
	cJSON *j = NULL;
	const char *user, *secret;
	int rc;

	from = sp_xasprintf("%s (%s)", prog, why);
	argv[0] = prog;
	argv[1] = "get";
	argv[2] = NULL;
	co.argv = argv;
	co.path = env(o, "PATH");
	co.stdin_data = a->server_address;
	co.stdin_len = strlen(a->server_address);
	co.stdout_cap = HELPER_OUT_CAP;
	co.stderr_cap = HELPER_ERR_CAP;
	co.timeout_ms = o && o->helper_timeout_ms > 0 ? o->helper_timeout_ms : HELPER_TIMEOUT_MS;
	co.cancel = lo->cancel;
	co.cancel_ud = lo->cancel_ud;
	rc = sp_child_run(&co, &res, &cerr);
	if (rc == SP_ECANCELLED || (rc == 0 && res.cancelled)) {
		rc = sp_error_set(err, SP_ECANCELLED, "cancelled while credential helper %s "
				  "ran for registry %s", from, a->registry);
		goto out;
	}
	if (rc == SP_ETIMEOUT) {
		rc = sp_error_set(err, SP_EENGINE, "credential helper %s did not answer for "
				  "registry %s within %.0fs", from, a->registry,
				  (double)co.timeout_ms / 1000.0);
		goto out;
	}
	if (rc < 0) {
		/* the child error names the program, never stdin */
		rc = sp_error_set(err, SP_EENGINE, "credential helper for registry %s: %s "
				  "(configured by %s)", a->registry, cerr.msg, why);
		goto out;
	}
	if (res.exit_code != 0) {
		if (strstr(res.out.data, "credentials not found") ||
		    strstr(res.err.data, "credentials not found")) {
			char *what = sp_xasprintf("%s has none for %s", from, a->server_address);
			set_description(a, what, from);
			free(what);
			rc = 0;
			goto out;
		}
		first_line(res.out.len ? &res.out : &res.err, line, sizeof(line));
		rc = sp_error_set(err, SP_EENGINE, "credential helper %s failed for registry %s "
				  "(%s)%s%s", from, a->registry, sp_child_describe(&res, how, sizeof(how)),
				  line[0] ? ": " : "", line);
		goto out;
	}
	j = cJSON_ParseWithLength(res.out.data, res.out.len);
	user = json_str(j, "Username");
	secret = json_str(j, "Secret");
	if (!cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "Secret"))) {
		rc = sp_error_set(err, SP_EENGINE, "credential helper %s printed %zu bytes that are "
				  "not {\"ServerURL\",\"Username\",\"Secret\"} JSON for registry %s",
				  from, res.out.len, a->registry);
		goto out;
	}
	if (secret && user && !strcmp(user, "<token>"))
		a->identity_token = sp_xstrdup(secret);
	else if (secret && user) {
		a->username = sp_xstrdup(user);
		a->password = sp_xstrdup(secret);
	}
	a->source = a->username || a->identity_token ? SP_AUTH_HELPER : SP_AUTH_ANONYMOUS;
	{
		char *what = sp_xasprintf("%s returned empty credentials", from);
		set_description(a, what, from);
		free(what);
	}
	rc = 0;
out:
	json_wipe_delete(j);
	wipe_buf(&res.out);
	wipe_buf(&res.err);
	sp_child_result_release(&res);
	free(prog);
	free(from);
	return rc;
}

/* ---- the config file ---- */

/* Reads path into b; 1 when it exists, 0 when it does not, <0 error. */
static int read_config(struct sp_buf *b, const char *path, struct sp_error *err)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;
	int rc = 1;

	if (!f)
		return errno == ENOENT || errno == ENOTDIR ? 0
			: sp_error_set(err, SP_ECONFIG, "cannot read %s: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (sp_buf_add(b, chunk, n) < 0) {
			rc = sp_error_set(err, SP_ECONFIG, "%s is larger than %d bytes", path,
					  CONFIG_CAP);
			break;
		}
	}
	if (rc > 0 && ferror(f))
		rc = sp_error_set(err, SP_ECONFIG, "cannot read %s: %s", path, strerror(errno));
	OPENSSL_cleanse(chunk, sizeof(chunk));
	fclose(f);
	return rc;
}

/* 1: found credentials (or a helper's final answer), 0: nothing here, <0 error */
static int from_document(struct sp_auth *a, const cJSON *doc, const char *name, bool helpers,
			 const char *key, const char *host, const struct sp_auth_opts *o,
			 struct sp_error *err)
{
	const cJSON *entry, *helper;
	const char *matched;
	char *where;
	int rc = 0;

	if (!cJSON_IsObject(doc))
		return sp_error_set(err, SP_ECONFIG, "%s is not a JSON object", name);
	if (helpers) {
		char *why = NULL;
		const char *store = json_str(doc, "credsStore");
		helper = find_key(cJSON_GetObjectItemCaseSensitive(doc, "credHelpers"), key, host,
				  &matched);
		if (helper && cJSON_IsString(helper)) {
			/* "" takes the registry away from credsStore: auths answer */
			if (*helper->valuestring) {
				why = sp_xasprintf("credHelpers[\"%s\"] in %s", matched, name);
				rc = from_helper(a, helper->valuestring, why, o, err);
			}
		} else if (store) {
			why = sp_xasprintf("credsStore in %s", name);
			rc = from_helper(a, store, why, o, err);
		}
		if (why) {
			free(why);
			/* the helper's answer is final, anonymous or not */
			return rc < 0 ? rc : 1;
		}
	}
	entry = find_key(cJSON_GetObjectItemCaseSensitive(doc, "auths"), key, host, &matched);
	if (!entry)
		return 0;
	where = sp_xasprintf("auths[\"%s\"] in %s", matched, name);
	rc = from_entry(a, entry, where, err);
	if (rc > 0) {
		a->source = helpers ? SP_AUTH_CONFIG : SP_AUTH_ENV_CONFIG;
		set_description(a, NULL, where);
	}
	free(where);
	return rc;
}

int sp_auth_lookup(struct sp_auth *out, const char *registry, const struct sp_auth_opts *o,
		   struct sp_error *err)
{
	return sp_auth_lookup_cancel(out, registry, o, NULL, NULL, err);
}

int sp_auth_lookup_cancel(struct sp_auth *out, const char *registry,
			  const struct sp_auth_opts *opts, sp_cancel_fn cancel, void *cancel_ud,
			  struct sp_error *err)
{
	struct lookup_opts lo;
	const struct sp_auth_opts *o = &lo.base;
	struct sp_buf file = SP_BUF_INIT;
	const char *user, *pass, *only, *dir, *home, *key;
	char *host = NULL, *path = NULL, *nothing = NULL;
	cJSON *doc = NULL;
	int rc = 0;

	memset(&lo, 0, sizeof(lo));
	if (opts)
		lo.base = *opts;
	lo.cancel = cancel;
	lo.cancel_ud = cancel_ud;
	memset(out, 0, sizeof(*out));
	out->registry = sp_xstrdup(registry);
	host = sp_auth_normalize_key(registry);
	out->server_address = sp_xstrdup(!strcmp(host, HUB_HOST) ? SP_AUTH_HUB_KEY : registry);
	key = out->server_address;

	/* 1. the CI variables */
	user = env(o, "STAGEPIPE_REGISTRY_USER");
	pass = env(o, "STAGEPIPE_REGISTRY_PASSWORD");
	only = env(o, "STAGEPIPE_REGISTRY");
	if (!user != !pass) {
		rc = sp_error_set(err, SP_ECONFIG, "%s is set but %s is not: set both, or neither",
				  user ? "STAGEPIPE_REGISTRY_USER" : "STAGEPIPE_REGISTRY_PASSWORD",
				  user ? "STAGEPIPE_REGISTRY_PASSWORD" : "STAGEPIPE_REGISTRY_USER");
		goto out;
	}
	if (user) {
		char *h = only ? sp_auth_normalize_key(only) : NULL;
		bool applies = !h || !strcmp(h, host);
		free(h);
		if (applies) {
			out->username = sp_xstrdup(user);
			out->password = sp_xstrdup(pass);
			out->source = SP_AUTH_ENV;
			set_description(out, NULL, ENV_PAIR);
			goto out;
		}
	}

	/* 2. DOCKER_AUTH_CONFIG */
	if (env(o, "DOCKER_AUTH_CONFIG")) {
		const char *text = env(o, "DOCKER_AUTH_CONFIG");
		doc = cJSON_Parse(text);
		if (!doc) {
			/* no excerpt: the text holds credentials */
			rc = sp_error_set(err, SP_ECONFIG, "DOCKER_AUTH_CONFIG is not valid JSON "
					  "(error near byte %zu)", cJSON_GetErrorPtr() ?
					  (size_t)(cJSON_GetErrorPtr() - text) : (size_t)0);
			goto out;
		}
		if ((rc = from_document(out, doc, "DOCKER_AUTH_CONFIG", false, key, host, o,
					err)) != 0) {
			if (rc > 0)
				rc = 0;
			goto out;
		}
		json_wipe_delete(doc);
		doc = NULL;
	}

	/* 3. config.json */
	dir = env(o, "DOCKER_CONFIG");
	home = env(o, "HOME");
	if (dir)
		path = sp_xasprintf("%s/config.json", dir);
	else if (home)
		path = sp_xasprintf("%s/.docker/config.json", home);
	if (!path) {
		nothing = sp_xasprintf("none for %s in the environment, and neither DOCKER_CONFIG "
				       "nor HOME is set", registry);
		set_description(out, nothing, NULL);
		goto out;
	}
	sp_buf_init(&file, CONFIG_CAP);
	if ((rc = read_config(&file, path, err)) < 0)
		goto out;
	if (rc == 0) {
		nothing = sp_xasprintf("none for %s in the environment, and no %s", registry, path);
		set_description(out, nothing, NULL);
		rc = 0;
		goto out;
	}
	doc = cJSON_ParseWithLength(file.data, file.len);
	if (!doc) {
		rc = sp_error_set(err, SP_ECONFIG, "%s is not valid JSON (line %d)", path,
				  line_of(file.data, cJSON_GetErrorPtr()));
		goto out;
	}
	if ((rc = from_document(out, doc, path, true, key, host, o, err)) < 0)
		goto out;
	if (rc == 0) {
		nothing = sp_xasprintf("none for %s in the environment or %s", registry, path);
		set_description(out, nothing, NULL);
	}
	rc = 0;
out:
	json_wipe_delete(doc);
	wipe_buf(&file);
	if (rc < 0) {
		sp_auth_free_secret(out->password);
		sp_auth_free_secret(out->identity_token);
		out->password = out->identity_token = NULL;
		free(out->username);
		out->username = NULL;
		out->source = SP_AUTH_ANONYMOUS;
	}
	if (!out->description)
		set_description(out, "none found", NULL);
	free(nothing);
	free(path);
	free(host);
	return rc;
}

char *sp_auth_header(const struct sp_auth *a)
{
	cJSON *j = cJSON_CreateObject();
	char *json, *out;

	if (!j) {
		fputs("stagepipe: out of memory\n", stderr);
		abort();
	}
	if (a && a->identity_token) {
		cJSON_AddStringToObject(j, "identitytoken", a->identity_token);
	} else if (a && a->username) {
		cJSON_AddStringToObject(j, "username", a->username);
		cJSON_AddStringToObject(j, "password", a->password ? a->password : "");
		cJSON_AddStringToObject(j, "serveraddress", a->server_address);
	}
	json = cJSON_PrintUnformatted(j);
	json_wipe_delete(j);
	if (!json) {
		fputs("stagepipe: out of memory\n", stderr);
		abort();
	}
	out = b64url_encode(json, strlen(json));
	OPENSSL_cleanse(json, strlen(json));
	cJSON_free(json);
	return out;
}

void sp_auth_release(struct sp_auth *a)
{
	if (!a)
		return;
	free(a->registry);
	free(a->server_address);
	free(a->username);
	sp_auth_free_secret(a->password);
	sp_auth_free_secret(a->identity_token);
	free(a->description);
	memset(a, 0, sizeof(*a));
}
