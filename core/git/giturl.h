/*
 * giturl.h — repository URLs: parsed, checked, normalised, made safe to print.
 *
 * A repository is named the ways git users name one:
 *
 *   https://host[:port]/path   http://...   (user[:password]@ allowed)
 *   ssh://[user@]host[:port]/path
 *   [user@]host:path           (scp-like; path relative to the home folder
 *                               unless it starts with "/")
 *   git://host[:port]/path
 *   file:///abs/path           a local path (absolute or relative)
 *
 * Three forms come out of one URL:
 *   fetch      what libgit2 is given: the URL without its password (a
 *              password is handed over by the credential callback, so it
 *              never lands in a file or a message);
 *   display    safe to print: no password, and for http(s) no user either
 *              (a token is often written as the user);
 *   canonical  the repository's identity, the source of the mirror key:
 *              scheme and host in lower case, default port and user
 *              dropped, trailing "/" and ".git" dropped, local paths made
 *              absolute ("file:///abs/path").  Two spellings of one
 *              repository share a mirror; two repositories never do.
 *
 * Malformed URLs (unknown scheme, no host, a bad port, control
 * characters, git's "ext::" helpers, a host starting with "-") are
 * SP_ECONFIG.
 */
#ifndef SP_GITURL_H
#define SP_GITURL_H

#include <stddef.h>

struct sp_error;

enum sp_giturl_kind {
	SP_GITURL_HTTPS,
	SP_GITURL_HTTP,
	SP_GITURL_SSH,
	SP_GITURL_GIT,
	SP_GITURL_FILE,
};

struct sp_giturl {
	enum sp_giturl_kind kind;
	char *user;       /* percent-decoded; NULL when the URL has none */
	char *password;   /* percent-decoded; NULL when none; a secret, never print */
	char *host;       /* lower case; NULL for FILE */
	int port;         /* 0: the scheme's default */
	char *path;       /* "/team/app.git", "~/app.git" (scp-like, home-relative),
			   * or the absolute local path for FILE */
	char *fetch;      /* see above */
	char *display;
	char *canonical;
};

/*
 * Parses url.  A relative local path is made absolute against the
 * current folder.  On success fills u (release with sp_giturl_release);
 * on error returns SP_ECONFIG with a message naming the URL (its display
 * form, never a password) and leaves u empty.
 */
int sp_giturl_parse(struct sp_giturl *u, const char *url, struct sp_error *err);

/*
 * Like sp_giturl_parse for a line of a credentials file: http(s) only,
 * and the path may be missing (u->path is then "").
 */
int sp_giturl_parse_credential(struct sp_giturl *u, const char *line, struct sp_error *err);

/* Frees u's strings (the password wiped first); u is then empty. */
void sp_giturl_release(struct sp_giturl *u);

/*
 * The mirror folder name for u: "<host or local>-<last path part>-<16 hex
 * of SHA-256(canonical)>", only [A-Za-z0-9._-].  *out is a new string.
 */
void sp_giturl_key(char **out, const struct sp_giturl *u);

/*
 * Resolves a submodule URL as git does: "./x" and "../x" are relative to
 * the superproject's URL base (its fetch form), anything else is returned
 * as it is.  *out is a new string.
 */
void sp_giturl_resolve(char **out, const char *base, const char *rel);

/*
 * "host" or "host:port" (lower case) of u, the key credentials are
 * matched on; "" for FILE.  *out is a new string.
 */
void sp_giturl_hostport(char **out, const struct sp_giturl *u);

/*
 * "scheme://host[:port]" of u (scheme and host lower case, the default
 * port dropped; "file://" for FILE): the origin credentials are scoped
 * to.  *out is a new string.
 */
void sp_giturl_origin(char **out, const struct sp_giturl *u);

#endif
