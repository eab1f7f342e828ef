/*
 * engine.h — the Docker Engine API transport (libcurl).
 *
 * Where the engine is comes from the environment exactly as the docker CLI
 * reads it: DOCKER_HOST (unix:///path, tcp://host:port), DOCKER_TLS_VERIFY /
 * DOCKER_TLS and DOCKER_CERT_PATH for TLS over tcp, DOCKER_API_VERSION to
 * pin a version.  sp_engine_open() pings the daemon and negotiates the API
 * version; every later request is sent under /v<version>/.
 *
 * Requests either collect a (capped) response body or stream it to a
 * callback as it arrives; a request body is either a buffer or pulled from
 * a read callback (the build context is streamed this way).  Streams where
 * silence is normal (/build, wait, logs?follow) have no total or
 * low-speed timeout: deadlines belong to the caller, which stops a
 * transfer through the cancel callback.
 *
 * Any non-2xx answer becomes an error carrying the HTTP status, the request
 * and the daemon's own message.
 */
#ifndef SP_DOCKER_ENGINE_H
#define SP_DOCKER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/pipeline/vars.h"

struct sp_buf;
struct sp_error;

/* Highest and lowest API versions this client speaks. */
#define SP_ENGINE_API_MAX "1.44"
#define SP_ENGINE_API_MIN "1.40"

struct sp_engine_config {
	char *host;         /* "unix:///var/run/docker.sock" or "tcp://h:p" */
	char *socket_path;  /* for unix:// hosts */
	char *base_url;     /* "http://localhost" or "https://h:p" */
	bool tls;           /* https to a tcp:// host */
	bool tls_verify;    /* verify the daemon's certificate */
	char *ca_file, *cert_file, *key_file;  /* from DOCKER_CERT_PATH */
	char *api_version;  /* DOCKER_API_VERSION, or NULL to negotiate */
};

/*
 * Fills cfg from the environment (getenv may be sp_vars_process_env);
 * host, when non-NULL, replaces DOCKER_HOST (--docker-host).  Returns 0,
 * or SP_ECONFIG for a malformed host.  Release with
 * sp_engine_config_release.
 */
int sp_engine_config_from_env(struct sp_engine_config *cfg, const char *host,
			      sp_vars_getenv_fn getenv, void *ud, struct sp_error *err);
void sp_engine_config_release(struct sp_engine_config *cfg);

struct sp_engine;

/*
 * Connects: pings the daemon, negotiates the API version.  On success
 * *out is a new engine (owns a copy of cfg) for sp_engine_free.  When no
 * engine answers, returns SP_EENGINE with one line naming the address and
 * how to start an engine.
 */
int sp_engine_open(struct sp_engine **out, const struct sp_engine_config *cfg,
		   struct sp_error *err);
void sp_engine_free(struct sp_engine *e);

/*
 * A second connection to the same engine with the same API version,
 * without a new handshake: for a request that must go out while another
 * is streaming (cancelling a build).  Free with sp_engine_free.
 */
struct sp_engine *sp_engine_dup(const struct sp_engine *e);

/* True when the engine answers GET /_ping now (one try of at most a few
 * seconds, no error kept). */
bool sp_engine_ping(struct sp_engine *e);

/* The negotiated API version ("1.41"); borrowed. */
const char *sp_engine_api_version(const struct sp_engine *e);
/* The address as the user wrote it ("unix:///var/run/docker.sock"); borrowed. */
const char *sp_engine_host(const struct sp_engine *e);

/* Reads up to size bytes of request body into buf; sets *nread (0 = end). */
typedef int (*sp_engine_read_fn)(void *ud, char *buf, size_t size, size_t *nread,
				 struct sp_error *err);
/* Receives response body bytes of a 2xx answer as they arrive. */
typedef int (*sp_engine_data_fn)(void *ud, const char *data, size_t len,
				 struct sp_error *err);
/* Polled about once a second and on every transfer step; non-zero stops it. */
typedef int (*sp_engine_cancel_fn)(void *ud);

struct sp_engine_request {
	const char *method;        /* "GET", "POST", "DELETE", ... */
	const char *path;          /* "/build?version=2"; the version is added */
	bool unversioned;          /* send path as is (/_ping) */
	const char *content_type;  /* request body type; NULL: none */
	const char *const *headers;/* extra "Name: value" lines, NULL-terminated */
	const char *body;          /* a whole body... */
	size_t body_len;
	sp_engine_read_fn read;    /* ...or one pulled in pieces (chunked) */
	void *read_ud;
	sp_engine_data_fn data;    /* stream a 2xx body here; NULL: collect it */
	void *data_ud;
	sp_engine_cancel_fn cancel;
	void *cancel_ud;
	long low_speed_secs;       /* >0: fail when under 1 byte/s for this long */
};

struct sp_engine_response {
	long status;               /* HTTP status; 0 when none arrived */
	struct sp_buf *body;       /* caller's buffer for a collected body, or NULL */
};

/*
 * Sends a request and waits for the whole answer.  Returns 0 when the
 * daemon answered 2xx.  Otherwise: SP_ENOTFOUND for 404, SP_EENGINE for
 * other statuses and for transport failures, SP_ECANCELLED when cancel
 * said so, or the error a read/data callback returned; err says which
 * request failed and carries the daemon's message.  resp may be NULL.
 */
int sp_engine_request(struct sp_engine *e, const struct sp_engine_request *req,
		      struct sp_engine_response *resp, struct sp_error *err);

/*
 * Convenience for small JSON calls: body (may be NULL) sent as
 * application/json, the 2xx answer collected into out (capped at 16 MiB).
 */
int sp_engine_call(struct sp_engine *e, const char *method, const char *path,
		   const char *json_body, struct sp_buf *out, struct sp_error *err);

/*
 * The same, also giving the HTTP status in *status (status may be NULL):
 * set whatever the result, 0 when no answer arrived.  For callers that act
 * on a particular non-2xx answer (304 not modified, 409 conflict) where the
 * return code alone (SP_EENGINE) does not say which.
 */
int sp_engine_call_status(struct sp_engine *e, const char *method, const char *path,
			  const char *json_body, struct sp_buf *out, long *status,
			  struct sp_error *err);

/* Percent-encodes s for a query string, appending to b. */
void sp_engine_urlencode(struct sp_buf *b, const char *s);

#endif
