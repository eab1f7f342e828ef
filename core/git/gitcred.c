/*
 * gitcred.c — which credentials a fetch may offer; see gitcred.h.
 *
 * This file only decides and describes: handing a candidate to libgit2
 * (and counting attempts) is mirror.c's job, so the rules here can be
 * tested without a server.  Secrets live in the candidates only, and are
 * wiped when the list is released.
 */
#include "core/git/gitcred.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/git/giturl.h"
#include "core/base/xalloc.h"

/* A credentials file bigger than this is not a credentials file. */
#define CRED_FILE_MAX (1024 * 1024)

static const char *env(sp_vars_getenv_fn getenv, void *ud, const char *name)
{
	const char *v = getenv ? getenv(name, ud) : NULL;

	return v && *v ? v : NULL;
}

static void add(struct sp_gitcred_list *list, enum sp_gitcred_kind kind, const char *user,
		const char *secret, const char *key_file, char *label)
{
	struct sp_gitcred *c;

	SP_GROW(list->items, list->alloc, list->n + 1);
	c = &list->items[list->n++];
	c->kind = kind;
	c->user = user ? sp_xstrdup(user) : NULL;
	c->secret = secret ? sp_xstrdup(secret) : NULL;
	c->key_file = key_file ? sp_xstrdup(key_file) : NULL;
	c->label = label;  /* taken */
}

/* Does the credentials-file line's path (may be "") cover the repository path? */
static bool path_covers(const char *line_path, const char *repo_path)
{
	size_t n = strlen(line_path), m = strlen(repo_path);

	while (n > 0 && line_path[n - 1] == '/')
		n--;
	if (n > 4 && !strncmp(line_path + n - 4, ".git", 4))
		n -= 4;
	if (n == 0)
		return true;
	if (m > 4 && !strcmp(repo_path + m - 4, ".git"))
		m -= 4;
	if (m < n || strncmp(line_path, repo_path, n))
		return false;
	return m == n || repo_path[n] == '/';
}

static int from_file(struct sp_gitcred_list *list, const struct sp_giturl *u, const char *file,
		     bool must_exist, struct sp_error *err)
{
	struct sp_buf text;
	FILE *f;
	char chunk[4096], *line, *next;
	size_t got;
	int lineno = 0, rc = 0;

	sp_buf_init(&text, CRED_FILE_MAX);
	f = fopen(file, "r");
	if (!f) {
		if (!must_exist && errno == ENOENT)
			return 0;
		return sp_error_set(err, SP_ECONFIG, "credentials file %s: %s", file, strerror(errno));
	}
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (sp_buf_add(&text, chunk, got) < 0) {
			rc = sp_error_set(err, SP_ECONFIG, "credentials file %s: over %d bytes", file,
					  CRED_FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		rc = sp_error_set(err, SP_ECONFIG, "credentials file %s: cannot read it", file);
		goto out;
	}
	for (line = text.data; line && *line; line = next) {
		struct sp_giturl l;
		char *end;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (!*line || *line == '#')
			continue;
		/* a malformed line is skipped, as git's store helper skips it */
		if (sp_giturl_parse_credential(&l, line, NULL) < 0)
			continue;
		if (l.kind == u->kind && l.user && l.password && l.port == u->port &&
		    !strcmp(l.host, u->host) && (!u->user || !strcmp(u->user, l.user)) &&
		    path_covers(l.path, u->path))
			add(list, SP_GITCRED_USERPASS, l.user, l.password, NULL,
			    sp_xasprintf("credentials file %s line %d (user %s)", file, lineno,
					 l.user));
		sp_giturl_release(&l);
	}
out:
	fclose(f);
	explicit_bzero(text.data, text.len);
	sp_buf_release(&text);
	return rc;
}

static int http_candidates(struct sp_gitcred_list *list, const struct sp_giturl *u, bool env_ok,
			   sp_vars_getenv_fn getenv, void *ud, struct sp_error *err)
{
	const char *token = env(getenv, ud, "STAGEPIPE_GIT_TOKEN");
	const char *user = env(getenv, ud, "STAGEPIPE_GIT_USER");
	const char *password = env(getenv, ud, "STAGEPIPE_GIT_PASSWORD");
	const char *file = env(getenv, ud, "STAGEPIPE_GIT_CREDENTIALS");
	const char *xdg = env(getenv, ud, "XDG_CONFIG_HOME"), *home = env(getenv, ud, "HOME");
	char *deflt = NULL;
	int rc;

	if (u->user && u->password)
		add(list, SP_GITCRED_USERPASS, u->user, u->password, NULL,
		    sp_xasprintf("the user and password in the URL (user %s)", u->user));
	if (!token && ((user != NULL) != (password != NULL)) && env_ok)
		return sp_error_set(err, SP_ECONFIG, "%s is set but %s is not",
				    user ? "STAGEPIPE_GIT_USER" : "STAGEPIPE_GIT_PASSWORD",
				    user ? "STAGEPIPE_GIT_PASSWORD" : "STAGEPIPE_GIT_USER");
	if (env_ok && token) {
		const char *as = user ? user : u->user ? u->user : "x-access-token";

		add(list, SP_GITCRED_USERPASS, as, token, NULL,
		    sp_xasprintf("STAGEPIPE_GIT_TOKEN as user %s", as));
	}
	if (env_ok && user && password)
		add(list, SP_GITCRED_USERPASS, user, password, NULL,
		    sp_xasprintf("STAGEPIPE_GIT_USER/STAGEPIPE_GIT_PASSWORD (user %s)", user));
	if (file)
		return from_file(list, u, file, true, err);
	if (xdg)
		deflt = sp_xasprintf("%s/stagepipe/git-credentials", xdg);
	else if (home)
		deflt = sp_xasprintf("%s/.config/stagepipe/git-credentials", home);
	rc = deflt ? from_file(list, u, deflt, false, err) : 0;
	free(deflt);
	return rc;
}

static int ssh_candidates(struct sp_gitcred_list *list, const struct sp_giturl *u, bool env_ok,
			  sp_vars_getenv_fn getenv, void *ud, struct sp_error *err)
{
	const char *key = env(getenv, ud, "STAGEPIPE_GIT_SSH_KEY");
	const char *pass = env(getenv, ud, "STAGEPIPE_GIT_SSH_PASSPHRASE");
	const char *user = u->user ? u->user : "git";

	if (env_ok && key) {
		if (access(key, R_OK) < 0)
			return sp_error_set(err, SP_ECONFIG, "STAGEPIPE_GIT_SSH_KEY=%s: %s", key,
					    strerror(errno));
		add(list, SP_GITCRED_SSH_KEY, user, pass, key,
		    sp_xasprintf("the key file STAGEPIPE_GIT_SSH_KEY=%s (user %s)", key, user));
	}
	if (env(getenv, ud, "SSH_AUTH_SOCK"))
		add(list, SP_GITCRED_SSH_AGENT, user, NULL, NULL,
		    sp_xasprintf("the ssh agent (user %s)", user));
	return 0;
}

int sp_gitcred_list(struct sp_gitcred_list *list, const struct sp_giturl *u, const char *env_host,
		    sp_vars_getenv_fn getenv, void *getenv_ud, struct sp_error *err)
{
	const char *only = env(getenv, getenv_ud, "STAGEPIPE_GIT_HOST");
	const char *sep;
	char *hp = NULL;
	bool env_ok, top_http = !env_host || !strstr(env_host, "://");
	int rc = 0;

	if (u->kind != SP_GITURL_HTTPS && u->kind != SP_GITURL_HTTP && u->kind != SP_GITURL_SSH)
		return 0;
	sp_giturl_hostport(&hp, u);
	/* env_host may carry the top-level repository's scheme ("https://host") */
	if (env_host && (sep = strstr(env_host, "://")) != NULL) {
		top_http = (size_t)(sep - env_host) == 4 && !strncasecmp(env_host, "http", 4);
		env_host = sep + 3;
	}
	if (only)
		env_ok = !strcasecmp(only, hp);
	else
		env_ok = !env_host || !strcasecmp(env_host, hp);
	/* a token over plain http only when the repository itself was asked for over http */
	if (u->kind == SP_GITURL_HTTP && !top_http)
		env_ok = false;
	if (u->kind == SP_GITURL_SSH)
		rc = ssh_candidates(list, u, env_ok, getenv, getenv_ud, err);
	else
		rc = http_candidates(list, u, env_ok, getenv, getenv_ud, err);
	free(hp);
	if (rc < 0)
		sp_gitcred_list_release(list);
	return rc;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void sp_gitcred_list_release(struct sp_gitcred_list *list)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < list->n; i++) {
		free(list->items[i].user);
		wipe_free(list->items[i].secret);
		free(list->items[i].key_file);
		free(list->items[i].label);
	}
	free(list->items);
	list->items = NULL;
	list->n = list->alloc = 0;
}

static void redact_one(char *msg, const char *secret)
{
	size_t n, rest;
	char *p;

	if (!secret || (n = strlen(secret)) < 4)
		return;
	while ((p = strstr(msg, secret)) != NULL) {
		memcpy(p, "***", 3);
		rest = strlen(p + n);
		memmove(p + 3, p + n, rest + 1);
	}
}

void sp_gitcred_redact(char *msg, const struct sp_gitcred_list *list, const struct sp_giturl *u)
{
	size_t i;

	for (i = 0; list && i < list->n; i++)
		redact_one(msg, list->items[i].secret);
	if (u) {
		redact_one(msg, u->password);
		if (u->kind == SP_GITURL_HTTPS || u->kind == SP_GITURL_HTTP)
			redact_one(msg, u->user);
	}
}
