/*
 * auth.h — registry credentials, found the way the docker CLI finds them,
 * and the X-Registry-Auth header the engine wants for a push or pull.
 *
 * For the registry of an image (its domain, or Docker Hub whose key is
 * "https://index.docker.io/v1/"), the first of these that applies wins:
 *
 *   1. STAGEPIPE_REGISTRY_USER and STAGEPIPE_REGISTRY_PASSWORD (CI): used
 *      for every registry, or only for STAGEPIPE_REGISTRY (host[:port])
 *      when that is set too.  One without the other is an error.
 *   2. DOCKER_AUTH_CONFIG: a config document ({"auths": ...}) in the
 *      environment, as newer docker CLIs read it; its auths entries only.
 *   3. The config file $DOCKER_CONFIG/config.json, else
 *      $HOME/.docker/config.json (none: anonymous):
 *        credHelpers[registry] names a helper (an empty name: none, not
 *        even credsStore, so auths answer), else credsStore does; the
 *        helper is asked (docker-credential-<name> get, the server URL on
 *        stdin, {"ServerURL","Username","Secret"} on stdout; Username
 *        "<token>" means Secret is an identity token) and its answer is
 *        final: "credentials not found" means anonymous, not "try auths";
 *        without a helper, auths[registry]: "auth" (base64 "user:pass",
 *        split at the first ':'), "identitytoken", or "username" and
 *        "password".
 *   4. Nothing: anonymous.
 * Config keys are compared exactly first, then after normalising both
 * sides to host[:port] (no scheme, no path), so "https://reg.io/v2/"
 * matches reg.io and "https://index.docker.io/v1/" is Docker Hub.
 *
 * Every environment lookup goes through the sp_vars_getenv_fn the caller
 * passes (PATH too, to find a helper), so tests inject their own.  A
 * helper itself runs (core/base/child.h) with this process's environment,
 * which it may need (HOME, GNUPGHOME, DBUS_SESSION_BUS_ADDRESS), and has
 * helper_timeout_ms to answer.  When it fails, the first line it printed
 * is shown, unless that looks like JSON (which may hold the secret).
 *
 * Secrets: a password or token is kept only in struct sp_auth and the
 * header string; no error message, description or log line ever holds
 * one (nor the base64 of one), and sp_auth_release wipes them.
 */
#ifndef SP_AUTH_H
#define SP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/base/cancel.h"
#include "core/pipeline/vars.h"

struct sp_error;

/* The key docker uses for Docker Hub in config files and helpers. */
#define SP_AUTH_HUB_KEY "https://index.docker.io/v1/"

/* One line for error messages: where credentials are looked for. */
#define SP_AUTH_WHERE \
	"stagepipe looks for registry credentials in STAGEPIPE_REGISTRY_USER/" \
	"STAGEPIPE_REGISTRY_PASSWORD, then DOCKER_AUTH_CONFIG, then $DOCKER_CONFIG/config.json " \
	"(default ~/.docker/config.json: credHelpers, credsStore, auths, as written by " \
	"`docker login`)"

enum sp_auth_source {
	SP_AUTH_ANONYMOUS = 0,
	SP_AUTH_ENV,          /* STAGEPIPE_REGISTRY_USER/_PASSWORD */
	SP_AUTH_ENV_CONFIG,   /* DOCKER_AUTH_CONFIG */
	SP_AUTH_HELPER,       /* docker-credential-<name> */
	SP_AUTH_CONFIG,       /* auths in config.json */
};

struct sp_auth {
	char *registry;       /* "127.0.0.1:5000", "docker.io" */
	char *server_address; /* sent as serveraddress: the host, or SP_AUTH_HUB_KEY */
	char *username;       /* NULL when anonymous or token */
	char *password;       /* secret; NULL unless username is set */
	char *identity_token; /* secret; NULL unless a token was found */
	enum sp_auth_source source;
	/*
	 * Where the answer came from, for messages, never secret:
	 * "user \"ci\" from STAGEPIPE_REGISTRY_USER/STAGEPIPE_REGISTRY_PASSWORD",
	 * "an identity token from docker-credential-desktop (credsStore in
	 * /root/.docker/config.json)", "no credentials (anonymous; ...)".
	 */
	char *description;
};

struct sp_auth_opts {
	sp_vars_getenv_fn getenv;  /* NULL: an empty environment */
	void *getenv_ud;
	long helper_timeout_ms;    /* 0: 30 s */
};

/*
 * Finds the credentials for registry (a host[:port] as
 * sp_imageref_registry returns it; "docker.io" is Docker Hub) into out
 * (release with sp_auth_release; out is initialised even on error).
 * Anonymous is a success (source SP_AUTH_ANONYMOUS).  Errors:
 * SP_ECONFIG for a config file or DOCKER_AUTH_CONFIG that is not JSON,
 * an auths entry that does not decode, or only one of the two
 * STAGEPIPE_REGISTRY_* variables; SP_EENGINE when a configured helper
 * is missing, fails, times out or prints garbage; err names the registry
 * and the file or helper, never a secret.
 */
int sp_auth_lookup(struct sp_auth *out, const char *registry, const struct sp_auth_opts *o,
		   struct sp_error *err);

/*
 * sp_auth_lookup that polls cancel (may be NULL) every 50 ms while a
 * credential helper runs: non-zero kills the helper and the lookup is
 * SP_ECANCELLED.  (Not a field of sp_auth_opts: positional initialisers
 * of that struct elsewhere would then miss a field.)
 */
int sp_auth_lookup_cancel(struct sp_auth *out, const char *registry,
			  const struct sp_auth_opts *o, sp_cancel_fn cancel, void *cancel_ud,
			  struct sp_error *err);

/*
 * The X-Registry-Auth value for a: base64url (with padding) of
 * {"username","password","serveraddress"}, {"identitytoken"}, or {} when
 * anonymous.  The new string is the caller's (it holds a secret: wipe
 * and free it with sp_auth_free_secret).
 */
char *sp_auth_header(const struct sp_auth *a);

/* Wipes then frees a string that holds a secret; NULL is fine. */
void sp_auth_free_secret(char *s);

/* Wipes and frees the contents; a is then all NULL/0. */
void sp_auth_release(struct sp_auth *a);

/*
 * host[:port] of a config key or server URL, lower-cased:
 * "https://Reg.io:5000/v2/" → "reg.io:5000"; Docker Hub's names
 * ("docker.io", "index.docker.io", "registry-1.docker.io") all become
 * "index.docker.io".  The new string is the caller's.
 */
char *sp_auth_normalize_key(const char *key);

#endif
