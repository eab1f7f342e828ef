/*
 * gitcred.h — credentials for fetching a repository, and keeping them secret.
 *
 * For one repository URL, sp_gitcred_list finds the credentials that may be
 * offered, in the order they are tried (each at most once):
 *
 *   http(s):
 *     1. the user and password written in the URL itself;
 *     2. STAGEPIPE_GIT_TOKEN: a token, sent as the password of
 *        STAGEPIPE_GIT_USER (default "x-access-token", which GitHub,
 *        Gitea/Forgejo and GitLab all accept with a token);
 *     3. STAGEPIPE_GIT_USER and STAGEPIPE_GIT_PASSWORD (one without the
 *        other is an error);
 *     4. a credentials file in git-credential-store format, one
 *        "https://user:secret@host[:port][/path]" per line (%-escaped),
 *        at STAGEPIPE_GIT_CREDENTIALS or else
 *        $XDG_CONFIG_HOME/stagepipe/git-credentials (default
 *        ~/.config/stagepipe/git-credentials; a missing default file is
 *        fine, a missing STAGEPIPE_GIT_CREDENTIALS file is an error).  A
 *        line matches on scheme, host and port, on the user when the URL
 *        names one, and on the path when the line has one (a prefix, by
 *        path components).  Every matching line is a candidate.
 *   ssh:
 *     1. STAGEPIPE_GIT_SSH_KEY: a private key file (its passphrase in
 *        STAGEPIPE_GIT_SSH_PASSPHRASE);
 *     2. the ssh agent, when SSH_AUTH_SOCK is set.
 *     The user is the URL's, else "git".
 *
 * The STAGEPIPE_GIT_* variables are sent only to one host: the host of
 * the repository being checked out (env_host; its submodules on other
 * hosts do not get them), or STAGEPIPE_GIT_HOST (host[:port]) when set.
 * The credentials file is already scoped by host.
 *
 * Every environment lookup goes through the caller's sp_vars_getenv_fn.
 * Each candidate carries a label that names where it came from and never
 * holds the secret ("STAGEPIPE_GIT_TOKEN as user x-access-token",
 * "credentials file /home/u/.config/stagepipe/git-credentials line 3",
 * "ssh agent"), for "authentication failed ... (tried ...)" messages.
 * sp_gitcred_list_release wipes the secrets.
 */
#ifndef SP_GITCRED_H
#define SP_GITCRED_H

#include <stddef.h>

#include "core/pipeline/vars.h"

struct sp_error;
struct sp_giturl;

enum sp_gitcred_kind {
	SP_GITCRED_USERPASS,  /* user + secret (password or token) */
	SP_GITCRED_SSH_KEY,   /* user + key file (+ secret: the passphrase, may be NULL) */
	SP_GITCRED_SSH_AGENT, /* user */
};

struct sp_gitcred {
	enum sp_gitcred_kind kind;
	char *user;
	char *secret;   /* never printed */
	char *key_file; /* SSH_KEY only */
	char *label;    /* safe to print */
};

struct sp_gitcred_list {
	struct sp_gitcred *items;
	size_t n, alloc;
};

#define SP_GITCRED_LIST_INIT { NULL, 0, 0 }

/*
 * Fills list (which must be empty) with the candidates for u.  env_host
 * is "host[:port]" that the STAGEPIPE_GIT_* variables may go to (NULL:
 * u's own host), or the top-level repository's origin
 * "scheme://host[:port]" (sp_giturl_origin): then, also, they go over
 * plain http only when that scheme is http (an https repository's token
 * never goes to an http submodule, even on the same host).  getenv may be NULL (no environment).  Returns 0 (an
 * empty list is fine: the server may not ask), or SP_ECONFIG for a
 * variable set wrongly or an unreadable STAGEPIPE_GIT_CREDENTIALS /
 * STAGEPIPE_GIT_SSH_KEY file (the message names the variable and the
 * file, never a secret).
 */
int sp_gitcred_list(struct sp_gitcred_list *list, const struct sp_giturl *u, const char *env_host,
		    sp_vars_getenv_fn getenv, void *getenv_ud, struct sp_error *err);

/* Wipes and frees the candidates; the list is then empty. */
void sp_gitcred_list_release(struct sp_gitcred_list *list);

/*
 * Replaces, in msg (NUL-terminated, changed in place), every occurrence
 * of each candidate's secret and of u's password and user (http(s): the
 * user may be a token) with "***".  Strings shorter than 4 bytes are left
 * alone (too likely to be ordinary text).
 */
void sp_gitcred_redact(char *msg, const struct sp_gitcred_list *list, const struct sp_giturl *u);

#endif
