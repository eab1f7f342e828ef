/*
 * config.h — the server's config file (`stagepipe serve -c FILE`).
 *
 * YAML through the same tree as the pipeline (core/yaml/ydoc.h): every
 * problem is "FILE:LINE:COL: message", all at once, unknown keys with
 * "did you mean", and the CLI exits 2.  Secrets are never written in the
 * file: each comes from an environment variable (`*_env`) or a file
 * (`*_file`, trailing newline dropped), read when the config is loaded, so
 * `--check` proves they are there.  A secret file readable by others is a
 * warning.
 *
 *   listen: ["127.0.0.1:8080", "[::1]:8080"]   # or one string; default 127.0.0.1:8080
 *   data: /var/lib/stagepipe                  # database + logs (required)
 *   store: sqlite                             # default: DATA/stagepipe.db; or a PostgreSQL
 *                                             # URL postgres://…, or {url_env: NAME} /
 *                                             # {url_file: PATH} when it holds a password
 *   public_url: https://ci.example.com        # for status links (default http://LISTEN0)
 *   workers: 1                                # local job slots; 0 = agents only
 *   admin_token_env: STAGEPIPE_ADMIN_TOKEN    # or admin_token_file
 *   read_token_env: STAGEPIPE_READ_TOKEN      # or read_token_file; optional: when set,
 *                                             # reading the API and the UI's data needs it
 *                                             # (or the admin token); badges stay public
 *   tls: { cert: FILE, key: FILE }            # optional: HTTPS (libmicrohttpd + GnuTLS)
 *   body_max: 25m                             # webhook body cap (size like 512k, 25m)
 *   artifacts_max: 256m                       # a job's artifacts, all stages (1k..1g)
 *   drain_timeout: 10m                        # SIGTERM: how long running jobs may finish
 *   lease_ttl: 30s                            # lease lifetime without a heartbeat
 *   max_attempts: 3                           # infrastructure attempts per job
 *   job_timeout: 2h                           # a child run is killed after this
 *   stagepipe: /usr/bin/stagepipe             # the binary run for each job (default: this one)
 *   env: { DOCKER_HOST: unix:///run/docker.sock }   # extra environment of job children
 *   worker_labels: [linux]                    # labels of the local slots (default none:
 *                                             # they take only jobs that require none)
 *   agents:                                   # remote `stagepipe agent`s (docs/agent-protocol.md)
 *     - name: build-1                         # [a-z0-9][a-z0-9._-]*, <= 63, not "local-*"
 *       token_env: AGENT1_TOKEN               # or token_file, or token_sha256: 64 hex
 *   repos:
 *     - name: app                             # hook: POST /hooks/app  [a-z0-9._-]
 *       url: https://github.com/team/app.git  # what jobs clone: https, ssh, file://, path
 *       forge: github                         # github | gitea (forgejo) | gitlab
 *       secret_env: APP_HOOK_SECRET           # or secret_file (required)
 *       pipeline: stagepipe.yml               # default
 *       branches: [main, "release/v*"]        # optional: only these branches make jobs
 *       cancel_superseded: true               # default: a newer push cancels older jobs
 *       labels: [linux]                       # optional: agents must have these
 *       git:                                  # optional: clone credentials for the jobs
 *         user: x-access-token                # default
 *         token_env: APP_GIT_TOKEN            # or token_file (required)
 *       secrets:                              # optional: values of the pipeline's secrets:
 *         API_TOKEN: { env: APP_API_TOKEN }   # NAME: {env: VAR} or {file: PATH}; each at
 *         DB_PASSWORD: { file: db.pass }      # least 4 bytes; given to this repo's jobs only
 *       status:                               # optional: commit statuses
 *         api: https://api.github.com         # default per forge (gitea: required)
 *         project: team/app                   # default: from url
 *         token_env: APP_STATUS_TOKEN         # or token_file
 *         context: stagepipe                  # default
 *
 * An agent's token is kept only as its SHA-256 (the text read from the
 * environment or the file is wiped at once): the server compares digests.
 *
 * Ownership: sp_server_config_load returns a new config; free it with
 * sp_server_config_free.  All strings belong to it.
 */
#ifndef SP_SERVER_CONFIG_H
#define SP_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/forge/webhook.h"
#include "core/yaml/diag.h"

/* One of a repository's secrets: (the value is never printed). */
struct sp_repo_secret {
	char *name;              /* the pipeline's name for it (an env var name) */
	char *value;             /* NUL-terminated; wiped when freed */
	size_t len;
};

struct sp_repo_config {
	char *name;
	char *url;
	enum sp_forge forge;
	char *secret;            /* the webhook secret (bytes, NUL-terminated) */
	size_t secret_len;
	char *pipeline;          /* default "stagepipe.yml" */
	char **branches;         /* NULL-terminated patterns, or NULL for all */
	bool cancel_superseded;  /* default true */
	char *labels;            /* "a,b" or NULL */
	char *git_user;          /* clone credentials (git:): user, never NULL when */
	char *git_token;         /* git_token is set; the token is never printed */
	struct {
		bool enabled;
		char *api;           /* NULL: the forge's default */
		char *project;       /* never NULL when enabled */
		char *token;         /* never printed */
		char *context;       /* default "stagepipe" */
	} status;
	/* secrets: for the pipeline's secrets: list.  A job's child `stagepipe
	 * run` gets each as NAME=value in its environment (worker.c; agents
	 * through the lease), and every other job's child has the value
	 * blanked; the server never prints one. */
	struct sp_repo_secret *secrets;
	size_t nsecrets;
};

#define SP_AGENT_NAME_MAX 63

/* A remote agent allowed to lease jobs. */
struct sp_agent_config {
	char *name;
	unsigned char token_sha256[32];  /* the SHA-256 of its bearer token */
	bool has_token;                  /* token_sha256 is set (false only while loading) */
};

#define SP_SERVER_ARTIFACTS_MAX_DEFAULT ((size_t)256 * 1024 * 1024)

struct sp_server_config {
	char *file;              /* as given */
	char **listen;           /* "host:port" each; nlisten >= 1 */
	size_t nlisten;
	char *data;              /* absolute */
	char *public_url;        /* no trailing slash */
	int workers;
	char *admin_token;       /* NULL: mutating API calls are refused (403) */
	char *read_token;        /* NULL: reads are public; else they need it or the admin
				  * token (Bearer, or the UI's session cookie) */
	char *tls_cert, *tls_key;  /* both or neither (file contents are read at start) */
	size_t body_max;         /* bytes; default 25 MiB */
	size_t artifacts_max;    /* bytes of artifacts a job keeps; default 256 MiB */
	long drain_timeout_ms;   /* default 10 min */
	long lease_ttl_ms;       /* default 30 s */
	int max_attempts;        /* default 3 */
	long job_timeout_ms;     /* default 2 h */
	char *stagepipe;         /* NULL: /proc/self/exe */
	char **env;              /* "NAME=value", NULL-terminated, or NULL */
	char *worker_labels;     /* the local slots' labels "a,b", or NULL */
	char *store_url;         /* PostgreSQL URL (never printed), or NULL: SQLite in data */
	struct sp_agent_config *agents;
	size_t nagents;
	struct sp_repo_config *repos;
	size_t nrepos;
};

/*
 * Loads and checks FILE.  getenv is used for *_env secrets (NULL: the
 * process environment).  Returns 0, or SP_ECONFIG with every problem in
 * diags (and *out NULL).
 */
int sp_server_config_load(struct sp_server_config **out, const char *path,
			  const char *(*getenv_fn)(const char *name),
			  struct sp_diags *diags);
void sp_server_config_free(struct sp_server_config *c);

/* The repository named name (borrowed), or NULL. */
const struct sp_repo_config *sp_server_config_repo(const struct sp_server_config *c,
						   const char *name);

/* Whether name is a valid agent name ([a-z0-9][a-z0-9._-]*, at most
 * SP_AGENT_NAME_MAX; "local-*" is the server's own slots). */
bool sp_agent_name_ok(const char *name);

/* Whether branch passes the repo's branches filter ("*" within a segment,
 * "**" across; no filter: every branch). */
bool sp_repo_branch_allowed(const struct sp_repo_config *r, const char *branch);

#endif
