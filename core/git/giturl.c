/*
 * giturl.c — repository URLs; see giturl.h.
 *
 * The parser is deliberately strict about the parts that reach a network
 * library or a file name (scheme, host, port) and lenient about the path,
 * which only the server interprets.  It never resolves names or touches the
 * network; a local path is only made absolute (and its symlinks resolved
 * when it exists, so that two spellings of one folder share a mirror).
 */
#include "core/git/giturl.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape or a NUL byte. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = sp_xmalloc(n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		int a, b;

		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (n - i < 3) {
			free(out);
			return NULL;
		}
		a = hexval((unsigned char)s[i + 1]);
		b = hexval((unsigned char)s[i + 2]);
		if (a < 0 || b < 0 || (a == 0 && b == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(a * 16 + b);
		i += 2;
	}
	*o = '\0';
	return out;
}

static char *lower_dup(const char *s, size_t n)
{
	char *out = sp_xstrndup(s, n);
	char *p;

	for (p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

/* host: a name or an IPv4 address ([A-Za-z0-9._-]) or a bracketed IPv6 address. */
static bool host_ok(const char *h)
{
	const char *p;

	if (!*h || *h == '-')
		return false;
	if (*h == '[') {
		size_t n = strlen(h);

		if (n < 3 || h[n - 1] != ']')
			return false;
		for (p = h + 1; p < h + n - 1; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return false;
		return true;
	}
	for (p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
			return false;
	return true;
}

static int default_port(enum sp_giturl_kind k)
{
	switch (k) {
	case SP_GITURL_HTTPS: return 443;
	case SP_GITURL_HTTP: return 80;
	case SP_GITURL_SSH: return 22;
	case SP_GITURL_GIT: return 9418;
	case SP_GITURL_FILE: return 0;
	}
	return 0;
}

static const char *scheme_name(enum sp_giturl_kind k)
{
	switch (k) {
	case SP_GITURL_HTTPS: return "https";
	case SP_GITURL_HTTP: return "http";
	case SP_GITURL_SSH: return "ssh";
	case SP_GITURL_GIT: return "git";
	case SP_GITURL_FILE: return "file";
	}
	return "?";
}

/* Length of path without trailing slashes, then without a ".git" suffix (remote repositories). */
static size_t trimmed_len(const char *path, bool strip_git)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	if (strip_git && n > 5 && !strncmp(path + n - 4, ".git", 4) && path[n - 5] != '/')
		n -= 4;
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n;
}

/*
 * host[:port] part of an authority (userinfo already removed) into u.
 * Returns false when malformed.
 */
static bool parse_hostport(struct sp_giturl *u, const char *s, size_t n)
{
	const char *colon = NULL, *p;

	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return false;
		if ((size_t)(close + 1 - s) < n) {
			if (close[1] != ':')
				return false;
			colon = close + 1;
		}
	} else {
		colon = memchr(s, ':', n);
	}
	u->host = lower_dup(s, colon ? (size_t)(colon - s) : n);
	if (!host_ok(u->host))
		return false;
	if (colon) {
		long port = 0;

		if (colon + 1 == s + n)
			return true;  /* "host:" — an empty port means the default */
		for (p = colon + 1; p < s + n; p++) {
			if (!isdigit((unsigned char)*p) || port > 65535)
				return false;
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return false;
		u->port = port == default_port(u->kind) ? 0 : (int)port;
	}
	return true;
}

static void set_hostport(struct sp_buf *b, const struct sp_giturl *u)
{
	sp_buf_addstr(b, u->host);
	if (u->port)
		sp_buf_addf(b, ":%d", u->port);
}

static int bad(struct sp_giturl *u, struct sp_error *err, const char *shown, const char *why)
{
	sp_giturl_release(u);
	return sp_error_set(err, SP_ECONFIG, "malformed repository URL \"%s\": %s", shown, why);
}

/* scheme://[userinfo@]host[:port]/path */
static int parse_hierarchical(struct sp_giturl *u, const char *rest, bool need_path,
			      struct sp_error *err)
{
	const char *slash = strchr(rest, '/');
	const char *auth_end = slash ? slash : rest + strlen(rest);
	const char *at = NULL, *p, *raw_user = NULL;
	size_t raw_user_len = 0;
	struct sp_buf b = SP_BUF_INIT;
	char *shown;
	int rc;

	/*
	 * An '@' past the first '/' means a '/' inside the user part (a
	 * password "s3cr/et" not written as %2F): the authority cannot be told
	 * apart from a secret, so nothing of it is shown or used.
	 */
	for (p = auth_end; *p && *p != '?' && *p != '#'; p++) {
		if (*p == '@') {
			shown = sp_xasprintf("%s://...", scheme_name(u->kind));
			rc = bad(u, err, shown, "'@' after the host (write a '/' in a user or "
				 "password as %2F)");
			free(shown);
			return rc;
		}
	}
	for (p = rest; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));

		raw_user = rest;
		raw_user_len = (size_t)((colon ? colon : at) - rest);
		u->user = pct_decode(rest, raw_user_len);
		if (colon)
			u->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
		if (!u->user || (colon && !u->password)) {
			/* no display form yet: show only what cannot be a secret */
			shown = sp_xasprintf("%s://...", scheme_name(u->kind));
			rc = bad(u, err, shown, "bad %-escape in the user part");
			free(shown);
			return rc;
		}
		if (!*u->user) {
			free(u->user);
			u->user = NULL;
		}
	}
	/* What may be shown in errors from here on: the URL without userinfo. */
	shown = sp_xasprintf("%s://%s", scheme_name(u->kind), at ? at + 1 : rest);
	if (!parse_hostport(u, at ? at + 1 : rest, (size_t)(auth_end - (at ? at + 1 : rest)))) {
		rc = bad(u, err, shown, "bad host or port");
		goto out;
	}
	if (need_path && (!slash || trimmed_len(slash, false) <= 1)) {
		rc = bad(u, err, shown, "no repository path");
		goto out;
	}
	u->path = sp_xstrdup(slash ? slash : "");

	/* fetch: without the password */
	sp_buf_addf(&b, "%s://", scheme_name(u->kind));
	if (raw_user && raw_user_len) {
		sp_buf_add(&b, raw_user, raw_user_len);
		sp_buf_addch(&b, '@');
	}
	set_hostport(&b, u);
	sp_buf_addstr(&b, u->path);
	u->fetch = sp_buf_detach(&b, NULL);

	/* display: no password; no user either for http(s) */
	sp_buf_addf(&b, "%s://", scheme_name(u->kind));
	if (u->user && u->kind != SP_GITURL_HTTPS && u->kind != SP_GITURL_HTTP)
		sp_buf_addf(&b, "%s@", u->user);
	set_hostport(&b, u);
	sp_buf_addstr(&b, u->path);
	u->display = sp_buf_detach(&b, NULL);
	rc = 0;
out:
	free(shown);
	return rc;
}

/* [user@]host:path */
static int parse_scp(struct sp_giturl *u, const char *url, const char *colon, struct sp_error *err)
{
	const char *at = memchr(url, '@', (size_t)(colon - url));
	const char *hs = at ? at + 1 : url;

	u->kind = SP_GITURL_SSH;
	/*
	 * "bob:hunter2@host/o/r.git" is an http-style user:password, not
	 * host "bob": show none of it.
	 */
	if (strchr(colon, '@'))
		return bad(u, err, "...", "'@' after the ':' (user:password@host is not a "
			   "repository URL without a scheme)");
	if (at && at > url)
		u->user = sp_xstrndup(url, (size_t)(at - url));
	u->host = lower_dup(hs, (size_t)(colon - hs));
	if (!host_ok(u->host))
		return bad(u, err, url, "bad host");
	if (!colon[1] || trimmed_len(colon + 1, false) == 0)
		return bad(u, err, url, "no repository path");
	if (colon[1] == '/')
		u->path = sp_xstrdup(colon + 1);
	else if (colon[1] == '~')
		u->path = sp_xstrdup(colon + 1);
	else
		u->path = sp_xasprintf("~/%s", colon + 1);
	u->fetch = sp_xstrdup(url);
	u->display = sp_xstrdup(url);
	return 0;
}

static int parse_local(struct sp_giturl *u, const char *path, struct sp_error *err)
{
	char resolved[PATH_MAX], cwd[PATH_MAX];
	size_t n;

	u->kind = SP_GITURL_FILE;
	if (realpath(path, resolved)) {
		u->path = sp_xstrdup(resolved);
	} else if (path[0] == '/') {
		u->path = sp_xstrdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return bad(u, err, path, "cannot find the current folder");
		u->path = sp_xasprintf("%s/%s", strcmp(cwd, "/") ? cwd : "", path);
	}
	n = trimmed_len(u->path, false);
	u->path[n] = '\0';
	u->fetch = sp_xstrdup(u->path);
	u->display = sp_xstrdup(u->path);
	return 0;
}

static void make_canonical(struct sp_giturl *u)
{
	struct sp_buf b = SP_BUF_INIT;

	if (u->kind == SP_GITURL_FILE) {
		size_t n = strlen(u->path);

		/* a work tree and its .git folder are one repository */
		if (n > 5 && !strcmp(u->path + n - 5, "/.git"))
			n -= 5;
		sp_buf_addstr(&b, "file://");
		sp_buf_add(&b, u->path, n);
	} else {
		sp_buf_addf(&b, "%s://", scheme_name(u->kind));
		set_hostport(&b, u);
		if (u->path[0] != '/')
			sp_buf_addch(&b, '/');
		sp_buf_add(&b, u->path, trimmed_len(u->path, true));
	}
	u->canonical = sp_buf_detach(&b, NULL);
}

int sp_giturl_parse(struct sp_giturl *u, const char *url, struct sp_error *err)
{
	const char *sep, *p, *first_slash, *colon;
	int rc;

	memset(u, 0, sizeof(*u));
	if (!url || !*url)
		return sp_error_set(err, SP_ECONFIG, "malformed repository URL: it is empty");
	for (p = url; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return sp_error_set(err, SP_ECONFIG,
					    "malformed repository URL: it holds a control character");
	/* git's "<transport>::<address>" remote helpers (ext:: runs commands) */
	for (p = url; isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'; p++)
		;
	if (p > url && p[0] == ':' && p[1] == ':')
		return sp_error_set(err, SP_ECONFIG, "malformed repository URL \"%.*s::...\": "
				    "remote helpers are not supported", (int)(p - url), url);

	sep = strstr(url, "://");
	first_slash = strchr(url, '/');
	if (sep && (!first_slash || first_slash > sep)) {
		size_t n = (size_t)(sep - url);
		char *scheme = lower_dup(url, n);
		const char *rest = sep + 3;

		if (!strcmp(scheme, "https"))
			u->kind = SP_GITURL_HTTPS;
		else if (!strcmp(scheme, "http"))
			u->kind = SP_GITURL_HTTP;
		else if (!strcmp(scheme, "ssh") || !strcmp(scheme, "git+ssh") ||
			 !strcmp(scheme, "ssh+git"))
			u->kind = SP_GITURL_SSH;
		else if (!strcmp(scheme, "git"))
			u->kind = SP_GITURL_GIT;
		else if (!strcmp(scheme, "file"))
			u->kind = SP_GITURL_FILE;
		else {
			rc = sp_error_set(err, SP_ECONFIG, "malformed repository URL \"%s://...\": "
					  "unsupported scheme (https, http, ssh, git or file)",
					  scheme);
			free(scheme);
			return rc;
		}
		free(scheme);
		if (u->kind == SP_GITURL_FILE) {
			char *path;

			if (!strncmp(rest, "localhost/", 10))
				rest += 9;
			if (rest[0] != '/')
				return bad(u, err, "file://...",
					   "a file URL needs an absolute path (file:///path)");
			path = pct_decode(rest, strlen(rest));
			if (!path)
				return bad(u, err, url, "bad %-escape");
			rc = parse_local(u, path, err);
			free(path);
		} else {
			rc = parse_hierarchical(u, rest, true, err);
		}
	} else {
		colon = strchr(url, ':');
		if (colon && colon > url && (!first_slash || colon < first_slash))
			rc = parse_scp(u, url, colon, err);
		else
			rc = parse_local(u, url, err);
	}
	if (rc < 0)
		return rc;
	make_canonical(u);
	return 0;
}

int sp_giturl_parse_credential(struct sp_giturl *u, const char *line, struct sp_error *err)
{
	const char *sep = strstr(line, "://");
	int rc;

	memset(u, 0, sizeof(*u));
	if (!strncasecmp(line, "https://", 8))
		u->kind = SP_GITURL_HTTPS;
	else if (!strncasecmp(line, "http://", 7))
		u->kind = SP_GITURL_HTTP;
	else
		return sp_error_set(err, SP_ECONFIG, "not an http(s) URL");
	rc = parse_hierarchical(u, sep + 3, false, err);
	if (rc < 0)
		return rc;
	make_canonical(u);
	return 0;
}

void sp_giturl_release(struct sp_giturl *u)
{
	if (!u)
		return;
	if (u->password) {
		explicit_bzero(u->password, strlen(u->password));
		free(u->password);
	}
	free(u->user);
	free(u->host);
	free(u->path);
	free(u->fetch);
	free(u->display);
	free(u->canonical);
	memset(u, 0, sizeof(*u));
}

static void add_clean(struct sp_buf *b, const char *s, size_t n, size_t max)
{
	size_t i;

	if (n > max)
		n = max;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		sp_buf_addch(b, isalnum(c) || c == '.' || c == '-' || c == '_' ? (char)c : '_');
	}
}

void sp_giturl_key(char **out, const struct sp_giturl *u)
{
	struct sp_buf b = SP_BUF_INIT;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	const char *path = u->path, *last;
	size_t n = trimmed_len(path, u->kind != SP_GITURL_FILE);

	if (u->host)
		add_clean(&b, u->host, strlen(u->host), 40);
	else
		sp_buf_addstr(&b, "local");
	sp_buf_addch(&b, '-');
	for (last = path + n; last > path && last[-1] != '/' && last[-1] != '~'; last--)
		;
	if (!u->host && (size_t)(path + n - last) == 4 && !strncmp(last, ".git", 4)) {
		/* "/x/proj/.git": name it after proj */
		const char *end = last - 1;

		for (last = end; last > path && last[-1] != '/'; last--)
			;
		add_clean(&b, last, (size_t)(end - last), 40);
	} else {
		add_clean(&b, last, (size_t)(path + n - last), 40);
	}
	if (!EVP_Digest(u->canonical, strlen(u->canonical), md, &mdlen, EVP_sha256(), NULL))
		abort();  /* SHA-256 is always available in libcrypto */
	sp_buf_addch(&b, '-');
	for (i = 0; i < 8 && i < mdlen; i++)
		sp_buf_addf(&b, "%02x", md[i]);
	*out = sp_buf_detach(&b, NULL);
}

void sp_giturl_hostport(char **out, const struct sp_giturl *u)
{
	struct sp_buf b = SP_BUF_INIT;

	if (u->host)
		set_hostport(&b, u);
	*out = sp_buf_detach(&b, NULL);
}

void sp_giturl_origin(char **out, const struct sp_giturl *u)
{
	struct sp_buf b = SP_BUF_INIT;

	sp_buf_addf(&b, "%s://", scheme_name(u->kind));
	if (u->host)
		set_hostport(&b, u);
	*out = sp_buf_detach(&b, NULL);
}

void sp_giturl_resolve(char **out, const char *base, const char *rel)
{
	struct sp_buf b = SP_BUF_INIT;
	size_t n;

	if (strcmp(rel, ".") && strcmp(rel, "..") && strncmp(rel, "./", 2) &&
	    strncmp(rel, "../", 3)) {
		*out = sp_xstrdup(rel);
		return;
	}
	sp_buf_addstr(&b, base);
	while (b.len > 1 && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	for (;;) {
		if (!strcmp(rel, ".")) {
			rel += 1;
		} else if (!strncmp(rel, "./", 2)) {
			rel += 2;
		} else if (!strcmp(rel, "..") || !strncmp(rel, "../", 3)) {
			rel += rel[2] ? 3 : 2;
			/* drop the last component: up to a '/' or the ':' of host:path */
			for (n = b.len; n > 0 && b.data[n - 1] != '/' && b.data[n - 1] != ':'; n--)
				;
			if (n == 0) {
				b.len = 0;
			} else if (b.data[n - 1] == ':') {
				b.len = n;  /* keep "host:" */
			} else {
				/* never climb into "scheme://": the host stays */
				if (n >= 2 && b.data[n - 2] == '/')
					continue;
				b.len = n - 1;
			}
			b.data[b.len] = '\0';
		} else {
			break;
		}
	}
	if (*rel) {
		if (b.len && b.data[b.len - 1] != ':' && b.data[b.len - 1] != '/')
			sp_buf_addch(&b, '/');
		sp_buf_addstr(&b, rel);
	}
	*out = sp_buf_detach(&b, NULL);
}
