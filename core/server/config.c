/*
 * config.c — load and check the server's config file; see config.h.
 *
 * The same shape as the pipeline loader (core/pipeline/pipeline.c): the
 * YAML tree of core/yaml/ydoc.c is read mapping by mapping against lists
 * of allowed keys, every problem is added to the diagnostics with its
 * position and the load goes on, so the user sees all of them at once.
 * Secrets are read here (environment or file) so that `serve --check`
 * proves they are there; no message ever contains one.
 */
#include "core/server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/base/buf.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/base/glob.h"
#include "core/base/log.h"
#include "core/base/mask.h"
#include "core/base/suggest.h"
#include "core/base/xalloc.h"
#include "core/pipeline/pipeline.h"
#include "core/git/giturl.h"
#include "core/yaml/ydoc.h"

#define CONFIG_MAX_FILE (1024 * 1024)
#define SECRET_MAX (64 * 1024)
#define REPO_NAME_MAX 64
#define WORKERS_MAX 64
#define AGENTS_MAX 1024
#define LABELS_MAX 64
#define DEFAULT_GIT_USER "x-access-token"

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_BODY_MAX ((size_t)25 * 1024 * 1024)
#define DEFAULT_DRAIN_MS (10L * 60 * 1000)
#define DEFAULT_LEASE_TTL_MS (30L * 1000)
#define DEFAULT_JOB_TIMEOUT_MS (2L * 3600 * 1000)
#define DRAIN_MAX_MS ((int64_t)24 * 3600 * 1000)
#define LEASE_TTL_MAX_MS ((int64_t)3600 * 1000)
#define JOB_TIMEOUT_MAX_MS ((int64_t)7 * 24 * 3600 * 1000)

struct loader {
	struct sp_diags *diags;
	const char *(*getenv_fn)(const char *name);
	const char *dir;           /* the config file's folder, for relative paths */
	struct sp_server_config *c;
};

static const char *const top_keys[] = {
	"listen", "data", "public_url", "workers", "admin_token_env", "admin_token_file",
	"read_token_env", "read_token_file",
	"tls", "body_max", "drain_timeout", "lease_ttl", "max_attempts", "job_timeout",
	"stagepipe", "env", "worker_labels", "agents", "repos", "artifacts_max", "store", NULL,
};
static const char *const tls_keys[] = { "cert", "key", NULL };
static const char *const store_keys[] = { "url_env", "url_file", NULL };
static const char *const repo_keys[] = {
	"name", "url", "forge", "secret_env", "secret_file", "pipeline", "branches",
	"cancel_superseded", "labels", "git", "status", "secrets", NULL,
};
static const char *const repo_secret_keys[] = { "env", "file", NULL };
static const char *const git_keys[] = { "user", "token_env", "token_file", NULL };
static const char *const agent_keys[] = {
	"name", "token_env", "token_file", "token_sha256", NULL,
};
static const char *const status_keys[] = {
	"api", "project", "token_env", "token_file", "context", NULL,
};

#define AT(node) (node)->line, (node)->col

/* ---- typed readers: each reports its own error and returns false ---- */

static bool want_map(struct loader *L, const struct sp_ynode *n, const char *what)
{
	if (n->kind == SP_YMAP)
		return true;
	sp_diags_add(L->diags, AT(n), "%s must be a mapping, not %s", what, sp_ynode_kind_name(n));
	return false;
}

static bool get_string(struct loader *L, const struct sp_ynode *n, const char *what, char **out)
{
	if (n->kind != SP_YSCALAR || sp_ynode_is_null(n)) {
		sp_diags_add(L->diags, AT(n), "%s must be a string, not %s", what,
			     sp_ynode_kind_name(n));
		return false;
	}
	if (!*n->value) {
		sp_diags_add(L->diags, AT(n), "%s must not be empty", what);
		return false;
	}
	if (strlen(n->value) != n->len) {
		sp_diags_add(L->diags, AT(n), "%s must not contain a NUL byte", what);
		return false;
	}
	free(*out);
	*out = sp_xstrdup(n->value);
	return true;
}

static bool get_bool(struct loader *L, const struct sp_ynode *n, const char *what, bool *out)
{
	if (n->kind == SP_YSCALAR && n->plain) {
		if (!strcasecmp(n->value, "true")) {
			*out = true;
			return true;
		}
		if (!strcasecmp(n->value, "false")) {
			*out = false;
			return true;
		}
	}
	sp_diags_add(L->diags, AT(n), "%s must be true or false, not %s", what,
		     sp_ynode_kind_name(n));
	return false;
}

static bool get_int(struct loader *L, const struct sp_ynode *n, const char *what, long lo,
		    long hi, int *out)
{
	char *end;
	long v;

	if (n->kind == SP_YSCALAR && n->plain && n->len && isdigit((unsigned char)n->value[0])) {
		errno = 0;
		v = strtol(n->value, &end, 10);
		if (!*end && !errno && v >= lo && v <= hi) {
			*out = (int)v;
			return true;
		}
	}
	sp_diags_add(L->diags, AT(n), "%s must be a whole number from %ld to %ld, not %s", what,
		     lo, hi, n->kind == SP_YSCALAR ? n->value : sp_ynode_kind_name(n));
	return false;
}

/* max_ms: lease_ttl becomes an int of milliseconds; nothing waits for weeks */
static bool get_duration(struct loader *L, const struct sp_ynode *n, const char *what,
			 int64_t min_ms, int64_t max_ms, long *out)
{
	char why[128];
	int64_t ms;

	if (n->kind != SP_YSCALAR || sp_ynode_is_null(n)) {
		sp_diags_add(L->diags, AT(n), "%s must be a duration like 10m, 30s or 1h30m, not %s",
			     what, sp_ynode_kind_name(n));
		return false;
	}
	if (sp_duration_parse(&ms, n->value, why, sizeof(why)) < 0) {
		sp_diags_add(L->diags, AT(n), "invalid %s \"%s\": %s", what, n->value, why);
		return false;
	}
	if (ms < min_ms) {
		char m[32];
		sp_duration_format(m, sizeof(m), min_ms);
		sp_diags_add(L->diags, AT(n), "%s must be at least %s", what, m);
		return false;
	}
	if (ms > max_ms) {
		char m[32];
		sp_duration_format(m, sizeof(m), max_ms);
		sp_diags_add(L->diags, AT(n), "%s must be at most %s", what, m);
		return false;
	}
	*out = (long)ms;
	return true;
}

/* A size like 512k, 25m, 1g or a number of bytes. */
static bool get_size(struct loader *L, const struct sp_ynode *n, const char *what, size_t *out)
{
	const char *p;
	uint64_t v = 0, mult = 1;

	if (n->kind != SP_YSCALAR || !n->len || !isdigit((unsigned char)n->value[0]))
		goto bad;
	for (p = n->value; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > ((uint64_t)1 << 40))
			goto bad;
	}
	switch (tolower((unsigned char)*p)) {
	case '\0': break;
	case 'b': p++; break;
	case 'k': mult = 1024; p++; break;
	case 'm': mult = 1024 * 1024; p++; break;
	case 'g': mult = 1024 * 1024 * 1024; p++; break;
	default: goto bad;
	}
	if (*p)
		goto bad;
	/* checked before the multiplication: 17179869185g must not wrap to 1g */
	if (v > ((uint64_t)1 << 30) / mult || v * mult < 1024) {
		sp_diags_add(L->diags, AT(n), "%s must be between 1k and 1g, not %s", what, n->value);
		return false;
	}
	*out = (size_t)(v * mult);
	return true;
bad:
	sp_diags_add(L->diags, AT(n), "%s must be a size like 512k or 25m, not \"%s\"", what,
		     n->kind == SP_YSCALAR ? n->value : sp_ynode_kind_name(n));
	return false;
}

/* A string or a list of strings into a new NULL-terminated array. */
static bool get_strv(struct loader *L, const struct sp_ynode *n, const char *what, char ***out,
		     size_t *count)
{
	const struct sp_ynode *const *items = &n;
	size_t k = 1, i, got = 0;
	char **v;
	bool ok = true;

	if (n->kind == SP_YSEQ) {
		items = (const struct sp_ynode *const *)n->items;
		k = n->n;
	} else if (n->kind != SP_YSCALAR || sp_ynode_is_null(n)) {
		sp_diags_add(L->diags, AT(n), "%s must be a list or a string, not %s", what,
			     sp_ynode_kind_name(n));
		return false;
	}
	if (k == 0) {
		sp_diags_add(L->diags, AT(n), "%s must not be empty", what);
		return false;
	}
	v = sp_xcalloc(k + 1, sizeof(*v));
	for (i = 0; i < k; i++) {
		const struct sp_ynode *it = items[i];
		if (it->kind != SP_YSCALAR || sp_ynode_is_null(it) || !*it->value ||
		    strlen(it->value) != it->len) {
			sp_diags_add(L->diags, AT(it), "each item of %s must be a non-empty string, "
				     "not %s", what, sp_ynode_kind_name(it));
			ok = false;
			continue;
		}
		v[got++] = sp_xstrdup(it->value);
	}
	*out = v;
	if (count)
		*count = got;
	return ok;
}

static void strv_free(char **v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static void unknown_key(struct loader *L, const struct sp_ynode *key, const char *where,
			const char *const *allowed)
{
	const char *hint = sp_suggest(key->value, allowed);
	struct sp_buf list = SP_BUF_INIT;
	size_t i;

	if (hint) {
		sp_diags_add(L->diags, AT(key), "unknown key \"%s\" in %s; did you mean \"%s\"?",
			     key->value, where, hint);
		return;
	}
	for (i = 0; allowed[i]; i++)
		sp_buf_addf(&list, "%s%s", i ? ", " : "", allowed[i]);
	sp_diags_add(L->diags, AT(key), "unknown key \"%s\" in %s (expected one of: %s)",
		     key->value, where, list.data);
	sp_buf_release(&list);
}

/* path as written, or made absolute against the config file's folder. */
static char *abs_path(struct loader *L, const char *path)
{
	if (path[0] == '/')
		return sp_xstrdup(path);
	return sp_xasprintf("%s/%s", L->dir, path);
}

/* ---- secrets ---- */

static bool env_name_ok(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/*
 * Reads a secret named by NAME_env or NAME_file (exactly one unless
 * optional and both absent).  kenv/kfile are the nodes (NULL when not
 * given), at is where to report a missing one.  *out and *len get the
 * value; the value never appears in a message.
 */
static void read_secret_as(struct loader *L, const char *envkey, const char *fkey,
			   const struct sp_ynode *at, const struct sp_ynode *kenv,
			   const struct sp_ynode *kfile, bool required, char **out, size_t *len);

static void read_secret(struct loader *L, const char *what, const struct sp_ynode *at,
			const struct sp_ynode *kenv, const struct sp_ynode *kfile, bool required,
			char **out, size_t *len)
{
	char envkey[64], fkey[64];

	snprintf(envkey, sizeof(envkey), "%s_env", what);
	snprintf(fkey, sizeof(fkey), "%s_file", what);
	read_secret_as(L, envkey, fkey, at, kenv, kfile, required, out, len);
}

/* read_secret with the two keys named in full (envkey, fkey). */
static void read_secret_as(struct loader *L, const char *envkey, const char *fkey,
			   const struct sp_ynode *at, const struct sp_ynode *kenv,
			   const struct sp_ynode *kfile, bool required, char **out, size_t *len)
{
	char *name = NULL, *path = NULL;

	if (kenv && kfile) {
		sp_diags_add(L->diags, AT(kfile), "give %s or %s, not both", envkey, fkey);
		return;
	}
	if (!kenv && !kfile) {
		if (required)
			sp_diags_add(L->diags, AT(at), "missing %s or %s", envkey, fkey);
		return;
	}
	if (kenv) {
		const char *v;
		if (!get_string(L, kenv, envkey, &name))
			return;
		if (!env_name_ok(name)) {
			sp_diags_add(L->diags, AT(kenv), "%s is not a valid environment variable name",
				     envkey);
			goto out;
		}
		v = L->getenv_fn(name);
		if (!v || !*v) {
			sp_diags_add(L->diags, AT(kenv), "environment variable %s (%s) is %s", name,
				     envkey, v ? "empty" : "not set");
			goto out;
		}
		*out = sp_xstrdup(v);
		*len = strlen(v);
	} else {
		struct sp_buf b = SP_BUF_INIT;
		struct stat st;
		char chunk[4096];
		ssize_t n;
		int fd;

		if (!get_string(L, kfile, fkey, &name))
			return;
		path = abs_path(L, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			sp_diags_add(L->diags, AT(kfile), "%s \"%s\": cannot open: %s", fkey, name,
				     strerror(errno));
			goto out;
		}
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			sp_diags_add(L->diags, AT(kfile), "%s \"%s\" is not a regular file", fkey, name);
			close(fd);
			goto out;
		}
		if (st.st_mode & S_IROTH)
			sp_log_warn("config.warning", "file=%s msg=\"%s is readable by others\"",
				    L->c->file, fkey);
		sp_buf_init(&b, SECRET_MAX);
		while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || sp_buf_add(&b, chunk, (size_t)n) < 0) {
				sp_diags_add(L->diags, AT(kfile), "%s \"%s\": %s", fkey, name,
					     n < 0 ? strerror(errno) : "larger than 64 KiB");
				break;
			}
		}
		close(fd);
		if (b.len && b.data[b.len - 1] == '\n')
			b.len--;
		if (b.len && b.data[b.len - 1] == '\r')
			b.len--;
		b.data[b.len] = '\0';
		if (!b.len && n == 0)
			sp_diags_add(L->diags, AT(kfile), "%s \"%s\" is empty", fkey, name);
		if (b.len && n == 0) {
			*len = b.len;
			*out = sp_buf_detach(&b, NULL);
		} else {
			if (b.alloc)
				memset(b.data, 0, b.len);
			sp_buf_release(&b);
		}
	}
out:
	free(name);
	free(path);
}

/* ---- listen addresses ---- */

static bool port_ok(const char *s)
{
	long v;
	char *end;

	if (!*s || !isdigit((unsigned char)*s) || strlen(s) > 5)
		return false;
	v = strtol(s, &end, 10);
	return !*end && v >= 1 && v <= 65535;
}

static bool hostname_ok(const char *s, size_t len)
{
	size_t i;

	if (!len || len > 253 || s[0] == '-' || s[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/* "host:port", "[v6]:port"; NULL when fine, else why. */
static const char *listen_check(const char *s)
{
	const char *colon;
	char host[256];
	unsigned char addr[16];

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		size_t hl;
		if (!rb || rb[1] != ':')
			return "an IPv6 address is written [addr]:port";
		hl = (size_t)(rb - s - 1);
		if (hl >= sizeof(host))
			return "address too long";
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			return "not an IPv6 address";
		return port_ok(rb + 2) ? NULL : "the port must be a number from 1 to 65535";
	}
	colon = strrchr(s, ':');
	if (!colon)
		return "expected host:port";
	if (memchr(s, ':', (size_t)(colon - s)))
		return "an IPv6 address is written [addr]:port";
	if (!port_ok(colon + 1))
		return "the port must be a number from 1 to 65535";
	if (!hostname_ok(s, (size_t)(colon - s)))
		return "not an IPv4 address or host name";
	return NULL;
}

static void load_listen(struct loader *L, const struct sp_ynode *n)
{
	char **v = NULL;
	size_t count = 0, i;
	const struct sp_ynode *const *items = &n;

	if (!get_strv(L, n, "listen", &v, &count)) {
		strv_free(v);
		return;
	}
	if (n->kind == SP_YSEQ)
		items = (const struct sp_ynode *const *)n->items;
	for (i = 0; i < count; i++) {
		const char *why = listen_check(v[i]);
		size_t j;
		if (why)
			sp_diags_add(L->diags, AT(items[i]), "invalid listen address \"%s\": %s",
				     v[i], why);
		for (j = 0; j < i; j++)
			if (!strcmp(v[i], v[j]))
				sp_diags_add(L->diags, AT(items[i]),
					     "listen address \"%s\" is given twice", v[i]);
	}
	if (count > 8)
		sp_diags_add(L->diags, AT(n), "at most 8 listen addresses");
	strv_free(L->c->listen);
	L->c->listen = v;
	L->c->nlisten = count;
}

/* ---- sections ---- */

static void load_tls(struct loader *L, const struct sp_ynode *n)
{
	struct sp_server_config *c = L->c;
	const struct sp_ynode *cert = NULL, *key = NULL;
	size_t i;

	if (!want_map(L, n, "tls"))
		return;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		char *p = NULL, *abs;
		if (!strcmp(k->value, "cert") || !strcmp(k->value, "key")) {
			bool is_cert = k->value[0] == 'c';
			if (!get_string(L, v, is_cert ? "tls.cert" : "tls.key", &p))
				continue;
			abs = abs_path(L, p);
			if (access(abs, R_OK) != 0)
				sp_diags_add(L->diags, AT(v), "tls.%s \"%s\": cannot read: %s", k->value,
					     p, strerror(errno));
			free(p);
			if (is_cert) {
				free(c->tls_cert);
				c->tls_cert = abs;
				cert = v;
			} else {
				free(c->tls_key);
				c->tls_key = abs;
				key = v;
			}
		} else {
			unknown_key(L, k, "tls", tls_keys);
		}
	}
	if (!cert != !key)
		sp_diags_add(L->diags, AT(n), "tls needs both cert and key");
}

static void free_secret(char *s);

static bool pg_url_ok(const char *u)
{
	return !strncmp(u, "postgres://", 11) || !strncmp(u, "postgresql://", 13);
}

/*
 * store: sqlite (the default: DATA/stagepipe.db), a PostgreSQL URL, or
 * {url_env: NAME} / {url_file: PATH} when the URL holds a password.  The
 * URL is never printed.
 */
static void load_store(struct loader *L, const struct sp_ynode *n)
{
	struct sp_server_config *c = L->c;
	const struct sp_ynode *kenv = NULL, *kfile = NULL;
	char *u = NULL;
	size_t len = 0;

	if (n->kind == SP_YSCALAR) {
		if (!get_string(L, n, "store", &u))
			return;
		if (!strcmp(u, "sqlite")) {
			free(u);
			return;
		}
		if (!pg_url_ok(u)) {
			sp_diags_add(L->diags, AT(n), "store must be sqlite, a postgres:// URL or "
				     "{url_env: NAME}");
			free_secret(u);
			return;
		}
		free_secret(c->store_url);
		c->store_url = u;
		return;
	}
	if (!want_map(L, n, "store"))
		return;
	for (size_t i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		if (!strcmp(k->value, "url_env"))
			kenv = v;
		else if (!strcmp(k->value, "url_file"))
			kfile = v;
		else
			unknown_key(L, k, "store", store_keys);
	}
	read_secret_as(L, "url_env", "url_file", n, kenv, kfile, true, &u, &len);
	if (u && !pg_url_ok(u)) {
		sp_diags_add(L->diags, AT(kenv ? kenv : kfile), "store: the URL must start with "
			     "postgres:// or postgresql://");
		free_secret(u);
		return;
	}
	if (u) {
		free_secret(c->store_url);
		c->store_url = u;
	}
}

static void load_env(struct loader *L, const struct sp_ynode *n)
{
	size_t i, k = 0;

	if (!want_map(L, n, "env"))
		return;
	strv_free(L->c->env);
	L->c->env = sp_xcalloc(n->n / 2 + 1, sizeof(char *));
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *key = n->items[i], *v = n->items[i + 1];
		if (!env_name_ok(key->value)) {
			sp_diags_add(L->diags, AT(key), "invalid name \"%s\" in env (letters, digits "
				     "and _; not starting with a digit)", key->value);
			continue;
		}
		if (v->kind != SP_YSCALAR || strlen(v->value) != v->len) {
			sp_diags_add(L->diags, AT(v), "env.%s must be a string, not %s", key->value,
				     sp_ynode_kind_name(v));
			continue;
		}
		L->c->env[k++] = sp_xasprintf("%s=%s", key->value,
					      sp_ynode_is_null(v) ? "" : v->value);
	}
}

static bool repo_name_ok(const char *s)
{
	size_t len = strlen(s), i;

	if (!len || len > REPO_NAME_MAX || s[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    !strchr("._-", s[i]))
			return false;
	return true;
}

/* A label list into "a,b" (*out replaced when the list reads). */
static void get_labels(struct loader *L, const struct sp_ynode *v, const char *what, char **out)
{
	struct sp_buf b = SP_BUF_INIT;
	char **lv = NULL;
	size_t nl = 0, j;

	if (get_strv(L, v, what, &lv, &nl)) {
		if (nl > LABELS_MAX)
			sp_diags_add(L->diags, AT(v), "%s: at most %d labels", what, LABELS_MAX);
		for (j = 0; j < nl; j++) {
			if (!sp_label_valid(lv[j]))
				sp_diags_add(L->diags, AT(v), "invalid label \"%s\" (1 to 63 of a-z, 0-9, "
					     "'.', '_' and '-')", lv[j]);
			sp_buf_addf(&b, "%s%s", j ? "," : "", lv[j]);
		}
		free(*out);
		*out = sp_buf_detach(&b, NULL);
	}
	strv_free(lv);
}

/* "team/app" from the URL's path: no leading "/" or "~/", no ".git". */
static char *project_from_url(const char *url)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_giturl u;
	const char *p;
	char *out;
	size_t len;

	if (sp_giturl_parse(&u, url, &err) < 0)
		return NULL;
	p = u.path ? u.path : "";
	if (!strncmp(p, "~/", 2))
		p += 2;
	while (*p == '/')
		p++;
	out = sp_xstrdup(p);
	len = strlen(out);
	while (len && out[len - 1] == '/')
		out[--len] = '\0';
	if (len > 4 && !strcmp(out + len - 4, ".git"))
		out[len - 4] = '\0';
	sp_giturl_release(&u);
	if (!*out) {
		free(out);
		return NULL;
	}
	return out;
}

static bool http_url_ok(const char *s)
{
	return (!strncmp(s, "http://", 7) && s[7]) || (!strncmp(s, "https://", 8) && s[8]);
}

static void strip_slash(char *s)
{
	size_t len = strlen(s);

	while (len && s[len - 1] == '/')
		s[--len] = '\0';
}

static void load_status(struct loader *L, struct sp_repo_config *r, const struct sp_ynode *n,
			const char *where, const struct sp_ynode *forge_node)
{
	const struct sp_ynode *kenv = NULL, *kfile = NULL, *project = NULL;
	char w[REPO_NAME_MAX + 64];
	size_t i, len = 0;

	snprintf(w, sizeof(w), "%s status", where);
	if (!want_map(L, n, "status"))
		return;
	r->status.enabled = true;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;
		if (!strcmp(key, "api")) {
			if (get_string(L, v, "status.api", &r->status.api)) {
				if (!http_url_ok(r->status.api))
					sp_diags_add(L->diags, AT(v), "status.api must be an http:// or "
						     "https:// URL, not \"%s\"", r->status.api);
				strip_slash(r->status.api);
			}
		} else if (!strcmp(key, "project")) {
			if (get_string(L, v, "status.project", &r->status.project))
				project = v;
		} else if (!strcmp(key, "token_env")) {
			kenv = v;
		} else if (!strcmp(key, "token_file")) {
			kfile = v;
		} else if (!strcmp(key, "context")) {
			get_string(L, v, "status.context", &r->status.context);
		} else {
			unknown_key(L, k, w, status_keys);
		}
	}
	read_secret(L, "token", n, kenv, kfile, true, &r->status.token, &len);
	if (!r->status.api && r->forge == SP_FORGE_GITEA && forge_node)
		sp_diags_add(L->diags, AT(n), "status.api is required for a gitea repository "
			     "(e.g. https://gitea.example.com/api/v1)");
	if (!r->status.context)
		r->status.context = sp_xstrdup("stagepipe");
	if (!r->status.project && r->url) {
		struct sp_giturl u;
		bool parses = sp_giturl_parse(&u, r->url, NULL) == 0;
		if (parses)
			sp_giturl_release(&u);
		r->status.project = project_from_url(r->url);
		if (!r->status.project && parses)
			sp_diags_add(L->diags, AT(n), "status.project cannot be taken from the url; "
				     "give it");
	}
	(void)project;
}

/* git: { user, token_env | token_file }: the jobs' clone credentials. */
static void load_git(struct loader *L, struct sp_repo_config *r, const struct sp_ynode *n,
		     const char *where)
{
	const struct sp_ynode *kenv = NULL, *kfile = NULL;
	char w[REPO_NAME_MAX + 64];
	size_t i, len = 0;

	snprintf(w, sizeof(w), "%s git", where);
	if (!want_map(L, n, "git"))
		return;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;
		if (!strcmp(key, "user")) {
			if (get_string(L, v, "git.user", &r->git_user)) {
				const char *p;
				for (p = r->git_user; *p; p++)
					if ((unsigned char)*p < ' ' || *p == ':' || *p == 0x7f)
						break;
				if (*p)
					sp_diags_add(L->diags, AT(v), "git.user must not contain ':' or "
						     "control characters");
			}
		} else if (!strcmp(key, "token_env")) {
			kenv = v;
		} else if (!strcmp(key, "token_file")) {
			kfile = v;
		} else {
			unknown_key(L, k, w, git_keys);
		}
	}
	read_secret(L, "token", n, kenv, kfile, true, &r->git_token, &len);
	if (!r->git_user)
		r->git_user = sp_xstrdup(DEFAULT_GIT_USER);
}

/*
 * secrets: { NAME: {env: VAR} | {file: PATH}, ... }: the values of the
 * pipeline's secrets: for this repository's jobs.  NAME as in a pipeline
 * (an environment variable name, not STAGEPIPE_*); each value at least
 * SP_MASK_MIN bytes, since it could not be masked otherwise.
 */
static void load_repo_secrets(struct loader *L, struct sp_repo_config *r,
			      const struct sp_ynode *n, const char *where)
{
	size_t i, j;

	if (!want_map(L, n, "secrets"))
		return;
	r->secrets = sp_xcalloc(n->n / 2 + 1, sizeof(*r->secrets));
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const struct sp_ynode *kenv = NULL, *kfile = NULL;
		struct sp_repo_secret *sec;
		char w[REPO_NAME_MAX + 256], ek[96], fk[96];

		if (!env_name_ok(k->value) || !strncmp(k->value, "STAGEPIPE_", 10)) {
			sp_diags_add(L->diags, AT(k), "%s: secret name \"%s\" must be an environment "
				     "variable name (letters, digits and _, not starting with a "
				     "digit, not STAGEPIPE_*)", where, k->value);
			continue;
		}
		if (strlen(k->value) > 64) {
			sp_diags_add(L->diags, AT(k), "%s: secret name longer than 64", where);
			continue;
		}
		snprintf(w, sizeof(w), "%s secrets.%s", where, k->value);
		if (!want_map(L, v, "each secret ({env: VAR} or {file: PATH})"))
			continue;
		for (j = 0; j < v->n; j += 2) {
			const char *key = v->items[j]->value;
			if (!strcmp(key, "env"))
				kenv = v->items[j + 1];
			else if (!strcmp(key, "file"))
				kfile = v->items[j + 1];
			else
				unknown_key(L, v->items[j], w, repo_secret_keys);
		}
		sec = &r->secrets[r->nsecrets];
		snprintf(ek, sizeof(ek), "secrets.%s.env", k->value);
		snprintf(fk, sizeof(fk), "secrets.%s.file", k->value);
		read_secret_as(L, ek, fk, v, kenv, kfile, true, &sec->value, &sec->len);
		if (!sec->value)
			continue;
		if (sec->len < SP_MASK_MIN) {
			sp_diags_add(L->diags, AT(kenv ? kenv : kfile), "%s: the value is %zu byte%s "
				     "long; a secret must be at least %d bytes to be masked", w,
				     sec->len, sec->len == 1 ? "" : "s", SP_MASK_MIN);
			OPENSSL_cleanse(sec->value, sec->len);
			free(sec->value);
			sec->value = NULL;
			continue;
		}
		sec->name = sp_xstrdup(k->value);
		r->nsecrets++;
	}
}

static void load_repo(struct loader *L, struct sp_repo_config *r, const struct sp_ynode *n,
		      size_t idx)
{
	const struct sp_ynode *secrets = NULL;
	const struct sp_ynode *name = sp_ynode_get(n, "name");
	const struct sp_ynode *kenv = NULL, *kfile = NULL, *forge = NULL, *status = NULL;
	const struct sp_ynode *git = NULL;
	char where[REPO_NAME_MAX + 32];
	size_t i;

	r->cancel_superseded = true;
	if (name && name->kind == SP_YSCALAR && repo_name_ok(name->value))
		snprintf(where, sizeof(where), "repository \"%s\"", name->value);
	else
		snprintf(where, sizeof(where), "repository %zu", idx + 1);
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;
		if (!strcmp(key, "name")) {
			if (get_string(L, v, "name", &r->name) && !repo_name_ok(r->name))
				sp_diags_add(L->diags, AT(v), "invalid repository name \"%s\" (a-z, 0-9, "
					     "'.', '_' and '-', at most %d, not starting with '.')",
					     r->name, REPO_NAME_MAX);
		} else if (!strcmp(key, "url")) {
			if (get_string(L, v, "url", &r->url)) {
				struct sp_error err = SP_ERROR_INIT;
				struct sp_giturl u;
				if (sp_giturl_parse(&u, r->url, &err) < 0)
					sp_diags_add(L->diags, AT(v), "%s", err.msg);
				else
					sp_giturl_release(&u);
			}
		} else if (!strcmp(key, "forge")) {
			char *f = NULL;
			if (get_string(L, v, "forge", &f)) {
				if (sp_forge_parse(f, &r->forge) < 0)
					sp_diags_add(L->diags, AT(v), "unknown forge \"%s\" (expected "
						     "github, gitea, forgejo or gitlab)", f);
				else
					forge = v;
			}
			free(f);
		} else if (!strcmp(key, "secret_env")) {
			kenv = v;
		} else if (!strcmp(key, "secret_file")) {
			kfile = v;
		} else if (!strcmp(key, "pipeline")) {
			get_string(L, v, "pipeline", &r->pipeline);
		} else if (!strcmp(key, "branches")) {
			strv_free(r->branches);
			r->branches = NULL;
			get_strv(L, v, "branches", &r->branches, NULL);
		} else if (!strcmp(key, "cancel_superseded")) {
			get_bool(L, v, "cancel_superseded", &r->cancel_superseded);
		} else if (!strcmp(key, "labels")) {
			get_labels(L, v, "labels", &r->labels);
		} else if (!strcmp(key, "git")) {
			git = v;
		} else if (!strcmp(key, "status")) {
			status = v;
		} else if (!strcmp(key, "secrets")) {
			secrets = v;
		} else {
			unknown_key(L, k, where, repo_keys);
		}
	}
	if (!r->name && !name)
		sp_diags_add(L->diags, AT(n), "%s: missing required key \"name\"", where);
	if (!r->url && !sp_ynode_get(n, "url"))
		sp_diags_add(L->diags, AT(n), "%s: missing required key \"url\"", where);
	if (!forge && !sp_ynode_get(n, "forge"))
		sp_diags_add(L->diags, AT(n), "%s: missing required key \"forge\" (github, gitea "
			     "or gitlab)", where);
	read_secret(L, "secret", n, kenv, kfile, true, &r->secret, &r->secret_len);
	if (!r->pipeline)
		r->pipeline = sp_xstrdup("stagepipe.yml");
	if (status)
		load_status(L, r, status, where, forge);
	if (git)
		load_git(L, r, git, where);
	if (secrets)
		load_repo_secrets(L, r, secrets, where);
}

static void load_repos(struct loader *L, const struct sp_ynode *n)
{
	struct sp_server_config *c = L->c;
	size_t i, j;

	if (n->kind != SP_YSEQ) {
		sp_diags_add(L->diags, AT(n), "repos must be a list, not %s", sp_ynode_kind_name(n));
		return;
	}
	if (n->n == 0) {
		sp_diags_add(L->diags, AT(n), "repos must not be empty");
		return;
	}
	c->repos = sp_xcalloc(n->n, sizeof(*c->repos));
	c->nrepos = n->n;
	for (i = 0; i < n->n; i++) {
		c->repos[i].cancel_superseded = true;
		if (!want_map(L, n->items[i], "each repository"))
			continue;
		load_repo(L, &c->repos[i], n->items[i], i);
		for (j = 0; j < i; j++)
			if (c->repos[i].name && c->repos[j].name &&
			    !strcmp(c->repos[i].name, c->repos[j].name))
				sp_diags_add(L->diags, AT(n->items[i]),
					     "repository name \"%s\" is used twice", c->repos[i].name);
	}
}

bool sp_agent_name_ok(const char *s)
{
	size_t len = strlen(s), i;

	if (!len || len > SP_AGENT_NAME_MAX || !strncmp(s, "local-", 6))
		return false;
	if (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0]))
		return false;
	for (i = 1; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    !strchr("._-", s[i]))
			return false;
	return true;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 64 hex digits into 32 bytes. */
static bool sha256_hex(const char *s, unsigned char out[32])
{
	size_t i;

	if (strlen(s) != 64)
		return false;
	for (i = 0; i < 32; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static void wipe_free(char *s, size_t len)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, len);
	free(s);
}

/*
 * One agent: its name and exactly one of token_env, token_file (the token
 * is hashed and its text wiped at once) and token_sha256 (the digest).
 */
static void load_agent(struct loader *L, struct sp_agent_config *a, const struct sp_ynode *n,
		       size_t idx)
{
	const struct sp_ynode *name = sp_ynode_get(n, "name");
	const struct sp_ynode *kenv = NULL, *kfile = NULL, *khash = NULL;
	char where[SP_AGENT_NAME_MAX + 32], *token = NULL, *hex = NULL;
	size_t i, len = 0;
	int given;

	if (name && name->kind == SP_YSCALAR && sp_agent_name_ok(name->value))
		snprintf(where, sizeof(where), "agent \"%s\"", name->value);
	else
		snprintf(where, sizeof(where), "agent %zu", idx + 1);
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;
		if (!strcmp(key, "name")) {
			if (get_string(L, v, "name", &a->name) && !sp_agent_name_ok(a->name))
				sp_diags_add(L->diags, AT(v), "invalid agent name \"%s\" (a-z, 0-9, '.', "
					     "'_' and '-', starting with a letter or digit, at most %d; "
					     "\"local-*\" names the server's own slots)", a->name,
					     SP_AGENT_NAME_MAX);
		} else if (!strcmp(key, "token_env")) {
			kenv = v;
		} else if (!strcmp(key, "token_file")) {
			kfile = v;
		} else if (!strcmp(key, "token_sha256")) {
			khash = v;
		} else {
			unknown_key(L, k, where, agent_keys);
		}
	}
	if (!a->name && !name)
		sp_diags_add(L->diags, AT(n), "%s: missing required key \"name\"", where);
	given = !!kenv + !!kfile + !!khash;
	if (given == 0) {
		sp_diags_add(L->diags, AT(n), "%s: missing token_env, token_file or token_sha256",
			     where);
		return;
	}
	if (given > 1) {
		const struct sp_ynode *at = khash ? khash : kfile;
		sp_diags_add(L->diags, AT(at), "%s: give one of token_env, token_file and "
			     "token_sha256", where);
		return;
	}
	if (khash) {
		if (get_string(L, khash, "token_sha256", &hex) && !sha256_hex(hex, a->token_sha256))
			sp_diags_add(L->diags, AT(khash), "token_sha256 must be 64 hex digits (the "
				     "SHA-256 of the token, e.g. from sha256sum)");
		else if (hex)
			a->has_token = true;
		free(hex);
		return;
	}
	read_secret(L, "token", n, kenv, kfile, true, &token, &len);
	if (token) {
		SHA256((const unsigned char *)token, len, a->token_sha256);
		a->has_token = true;
	}
	wipe_free(token, len);
}

static void load_agents(struct loader *L, const struct sp_ynode *n)
{
	struct sp_server_config *c = L->c;
	size_t i, j;

	if (n->kind != SP_YSEQ) {
		sp_diags_add(L->diags, AT(n), "agents must be a list, not %s", sp_ynode_kind_name(n));
		return;
	}
	if (n->n > AGENTS_MAX) {
		sp_diags_add(L->diags, AT(n), "at most %d agents", AGENTS_MAX);
		return;
	}
	if (!n->n)
		return;
	c->agents = sp_xcalloc(n->n, sizeof(*c->agents));
	c->nagents = n->n;
	for (i = 0; i < n->n; i++) {
		struct sp_agent_config *a = &c->agents[i];
		if (!want_map(L, n->items[i], "each agent"))
			continue;
		load_agent(L, a, n->items[i], i);
		for (j = 0; j < i; j++) {
			const struct sp_agent_config *b = &c->agents[j];
			if (a->name && b->name && !strcmp(a->name, b->name))
				sp_diags_add(L->diags, AT(n->items[i]),
					     "agent name \"%s\" is used twice", a->name);
			/* a token must name one agent */
			else if (a->has_token && b->has_token &&
				 !CRYPTO_memcmp(a->token_sha256, b->token_sha256, 32))
				sp_diags_add(L->diags, AT(n->items[i]), "agent \"%s\" has the same "
					     "token as agent \"%s\"", a->name ? a->name : "?",
					     b->name ? b->name : "?");
		}
	}
}

static void load_root(struct loader *L, const struct sp_ynode *root)
{
	struct sp_server_config *c = L->c;
	const struct sp_ynode *kenv = NULL, *kfile = NULL, *data = NULL;
	const struct sp_ynode *renv = NULL, *rfile = NULL;
	size_t i, len = 0;

	if (!want_map(L, root, "the config file"))
		return;
	for (i = 0; i < root->n; i += 2) {
		const struct sp_ynode *k = root->items[i], *v = root->items[i + 1];
		const char *key = k->value;
		if (!strcmp(key, "listen")) {
			load_listen(L, v);
		} else if (!strcmp(key, "data")) {
			char *d = NULL;
			if (get_string(L, v, "data", &d)) {
				free(c->data);
				c->data = abs_path(L, d);
				strip_slash(c->data);
				if (!*c->data) {
					free(c->data);
					c->data = sp_xstrdup("/");
				}
				data = v;
			}
			free(d);
		} else if (!strcmp(key, "public_url")) {
			if (get_string(L, v, "public_url", &c->public_url)) {
				if (!http_url_ok(c->public_url))
					sp_diags_add(L->diags, AT(v), "public_url must be an http:// or "
						     "https:// URL, not \"%s\"", c->public_url);
				strip_slash(c->public_url);
			}
		} else if (!strcmp(key, "workers")) {
			get_int(L, v, "workers", 0, WORKERS_MAX, &c->workers);
		} else if (!strcmp(key, "admin_token_env")) {
			kenv = v;
		} else if (!strcmp(key, "admin_token_file")) {
			kfile = v;
		} else if (!strcmp(key, "read_token_env")) {
			renv = v;
		} else if (!strcmp(key, "read_token_file")) {
			rfile = v;
		} else if (!strcmp(key, "tls")) {
			load_tls(L, v);
		} else if (!strcmp(key, "body_max")) {
			get_size(L, v, "body_max", &c->body_max);
		} else if (!strcmp(key, "artifacts_max")) {
			get_size(L, v, "artifacts_max", &c->artifacts_max);
		} else if (!strcmp(key, "drain_timeout")) {
			get_duration(L, v, "drain_timeout", 0, DRAIN_MAX_MS, &c->drain_timeout_ms);
		} else if (!strcmp(key, "lease_ttl")) {
			get_duration(L, v, "lease_ttl", 1000, LEASE_TTL_MAX_MS, &c->lease_ttl_ms);
		} else if (!strcmp(key, "max_attempts")) {
			get_int(L, v, "max_attempts", 1, 100, &c->max_attempts);
		} else if (!strcmp(key, "job_timeout")) {
			get_duration(L, v, "job_timeout", 1000, JOB_TIMEOUT_MAX_MS,
				     &c->job_timeout_ms);
		} else if (!strcmp(key, "stagepipe")) {
			char *p = NULL;
			if (get_string(L, v, "stagepipe", &p)) {
				free(c->stagepipe);
				c->stagepipe = abs_path(L, p);
				if (access(c->stagepipe, X_OK) != 0)
					sp_diags_add(L->diags, AT(v), "stagepipe \"%s\": not an "
						     "executable file (%s)", p, strerror(errno));
			}
			free(p);
		} else if (!strcmp(key, "env")) {
			load_env(L, v);
		} else if (!strcmp(key, "worker_labels")) {
			get_labels(L, v, "worker_labels", &c->worker_labels);
		} else if (!strcmp(key, "agents")) {
			load_agents(L, v);
		} else if (!strcmp(key, "repos")) {
			load_repos(L, v);
		} else if (!strcmp(key, "store")) {
			load_store(L, v);
		} else {
			unknown_key(L, k, "the config file", top_keys);
		}
	}
	if (!data && !sp_ynode_get(root, "data"))
		sp_diags_add(L->diags, AT(root), "missing required key \"data\" (the folder for the "
			     "database and logs)");
	if (!sp_ynode_get(root, "repos"))
		sp_diags_add(L->diags, AT(root), "missing required key \"repos\"");
	read_secret(L, "admin_token", root, kenv, kfile, false, &c->admin_token, &len);
	read_secret(L, "read_token", root, renv, rfile, false, &c->read_token, &len);
	if (!c->listen) {
		c->listen = sp_xcalloc(2, sizeof(char *));
		c->listen[0] = sp_xstrdup(DEFAULT_LISTEN);
		c->nlisten = 1;
	}
	if (!c->public_url && c->nlisten)
		c->public_url = sp_xasprintf("%s://%s", c->tls_cert ? "https" : "http",
					     c->listen[0]);
}

/* ---- public ---- */

static const char *process_getenv(const char *name)
{
	return getenv(name);
}

static char *dir_of(const char *path)
{
	char cwd[PATH_MAX], *d;
	const char *slash = strrchr(path, '/');

	if (slash && slash == path)
		return sp_xstrdup("/");
	if (slash && path[0] == '/')
		return sp_xstrndup(path, (size_t)(slash - path));
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	if (!slash)
		return sp_xstrdup(cwd);
	d = sp_xasprintf("%s/%.*s", strcmp(cwd, "/") ? cwd : "", (int)(slash - path), path);
	return d;
}

static int load_buffer(struct sp_server_config **out, const char *path, const char *data,
		       size_t len, const char *(*getenv_fn)(const char *), struct sp_diags *diags)
{
	struct sp_ydoc doc = SP_YDOC_INIT;
	struct loader L;
	size_t before = sp_diags_count(diags);
	char *dir;
	int rc;

	if ((rc = sp_ydoc_parse(&doc, data, len, NULL, diags)) < 0)
		return rc;
	dir = dir_of(path);
	L.diags = diags;
	L.getenv_fn = getenv_fn ? getenv_fn : process_getenv;
	L.dir = dir;
	L.c = sp_xcalloc(1, sizeof(*L.c));
	L.c->file = sp_xstrdup(path);
	L.c->workers = 1;
	L.c->body_max = DEFAULT_BODY_MAX;
	L.c->artifacts_max = SP_SERVER_ARTIFACTS_MAX_DEFAULT;
	L.c->drain_timeout_ms = DEFAULT_DRAIN_MS;
	L.c->lease_ttl_ms = DEFAULT_LEASE_TTL_MS;
	L.c->max_attempts = 3;
	L.c->job_timeout_ms = DEFAULT_JOB_TIMEOUT_MS;
	if (!doc.root || sp_ynode_is_null(doc.root))
		sp_diags_add(diags, 1, 1, "the config file is empty");
	else
		load_root(&L, doc.root);
	sp_ydoc_release(&doc);
	free(dir);
	if (sp_diags_count(diags) > before) {
		sp_server_config_free(L.c);
		return SP_ECONFIG;
	}
	*out = L.c;
	return 0;
}

int sp_server_config_load(struct sp_server_config **out, const char *path,
			  const char *(*getenv_fn)(const char *name),
			  struct sp_diags *diags)
{
	struct sp_buf b = SP_BUF_INIT;
	int rc;

	*out = NULL;
	rc = sp_ydoc_read_file(&b, path, CONFIG_MAX_FILE, "config file", diags);
	if (rc == 0)
		rc = load_buffer(out, path, b.data, b.len, getenv_fn, diags);
	sp_buf_release(&b);
	return rc;
}

static void free_secret(char *s)
{
	if (!s)
		return;
	memset(s, 0, strlen(s));
	free(s);
}

void sp_server_config_free(struct sp_server_config *c)
{
	size_t i, j;

	if (!c)
		return;
	for (i = 0; i < c->nrepos; i++) {
		struct sp_repo_config *r = &c->repos[i];
		free(r->name);
		free(r->url);
		free_secret(r->secret);
		free(r->pipeline);
		strv_free(r->branches);
		free(r->labels);
		free(r->status.api);
		free(r->status.project);
		free_secret(r->status.token);
		free(r->status.context);
		free(r->git_user);
		free_secret(r->git_token);
		for (j = 0; j < r->nsecrets; j++) {
			free(r->secrets[j].name);
			if (r->secrets[j].value)
				OPENSSL_cleanse(r->secrets[j].value, r->secrets[j].len);
			free(r->secrets[j].value);
		}
		free(r->secrets);
	}
	free(c->repos);
	for (i = 0; i < c->nagents; i++) {
		free(c->agents[i].name);
		OPENSSL_cleanse(c->agents[i].token_sha256, sizeof(c->agents[i].token_sha256));
	}
	free(c->agents);
	free(c->worker_labels);
	free(c->file);
	strv_free(c->listen);
	free(c->data);
	free(c->public_url);
	free_secret(c->admin_token);
	free_secret(c->read_token);
	free_secret(c->store_url);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->stagepipe);
	strv_free(c->env);
	free(c);
}

const struct sp_repo_config *sp_server_config_repo(const struct sp_server_config *c,
						   const char *name)
{
	size_t i;

	for (i = 0; i < c->nrepos; i++)
		if (c->repos[i].name && !strcmp(c->repos[i].name, name))
			return &c->repos[i];
	return NULL;
}

bool sp_repo_branch_allowed(const struct sp_repo_config *r, const char *branch)
{
	size_t i;

	if (!r->branches)
		return true;
	if (!branch)
		return false;
	for (i = 0; r->branches[i]; i++)
		if (sp_glob_match(r->branches[i], branch))
			return true;
	return false;
}
