/*
 * http_internal.h — what http.c shares with its route files (hooks.c,
 * api.c, agents.c); private to core/server/.
 *
 * http.c owns the libmicrohttpd daemons and one struct sp_req per request
 * (libmicrohttpd's con_cls): it routes on the first call, lets the route
 * refuse early (before any body byte is read), accumulates the body under
 * the route's cap, and calls the route's handler once the body is
 * complete.  Every answer goes through sp_http_reply*, which also times
 * the request for /metrics.
 */
#ifndef SP_HTTP_INTERNAL_H
#define SP_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <microhttpd.h>
#include <cjson/cJSON.h>

#include "core/base/buf.h"
#include "core/server/server.h"

#define SP_HTTP_MAX_DAEMONS 8
#define SP_HTTP_API_BODY_MAX (64 * 1024)
/* Live log streams (SSE) open at once, over every daemon: a stream holds a
 * connection, a thread and a file for as long as its job runs (read access
 * is public), so they get a share of the connection limit, not all of it. */
#define SP_HTTP_SSE_MAX 256

struct sp_http {
	struct sp_server *srv;
	struct MHD_Daemon *daemons[SP_HTTP_MAX_DAEMONS];
	size_t ndaemons;
	char *tls_cert, *tls_key;  /* PEM contents, for libmicrohttpd */
	atomic_bool stopping;      /* sp_http_stop: streams end */
	/*
	 * Request bodies are buffered whole before anything is verified, so
	 * every unauthenticated connection could hold body_max bytes: their sum
	 * is capped at body_budget (bytes reserved by sp_http_reserve, given
	 * back when the request completes); past it a request answers 503.
	 */
	size_t body_budget;
	atomic_size_t body_bytes;
	atomic_int sse_streams;    /* open SSE streams (api.c) */
	atomic_llong health_ok_ms; /* last good /healthz ping, monotonic ms (api.c) */
	/* refused hooks are logged at most SP_HOOK_REFUSED_LOG_MAX a second, so
	 * that unauthenticated noise cannot fill the disk (hooks.c) */
	atomic_llong refused_sec;
	atomic_int refused_n;
	atomic_int refused_dropped;
};

enum sp_route_kind {
	SP_ROUTE_NONE,      /* answered already (early refusal) */
	SP_ROUTE_HOOK,
	SP_ROUTE_API,
	SP_ROUTE_AGENT,     /* /api/agent/... and /api/agents (agents.c) */
};

/* One request (libmicrohttpd's con_cls). */
struct sp_req {
	struct sp_http *h;
	struct MHD_Connection *conn;
	enum sp_route_kind kind;
	const char *route;         /* the metrics name; fixed strings */
	const char *method;
	char *url;                 /* copy of the path */
	struct timespec t0;
	bool answered;             /* a response is queued */
	bool too_large;            /* the body passed the cap */
	bool busy;                 /* the body did not fit in the server's budget */
	size_t body_max;
	size_t reserved;           /* bytes of h->body_bytes held by this request */
	size_t dropped;            /* body bytes read and dropped (too_large, busy) */
	struct sp_buf body;
	const struct sp_repo_config *repo;   /* hooks: the repository of the URL */
	int agent;                 /* agents: the agent the token names (index), -1 */
};

/* ---- http.c: answers (each also records sp_metrics_http) ------------------ */

/* Queues resp with status (resp is destroyed here). */
enum MHD_Result sp_http_reply(struct sp_req *r, unsigned int status,
			      struct MHD_Response *resp);
/* A JSON answer; j is deleted here (may be NULL: no body). */
enum MHD_Result sp_http_reply_json(struct sp_req *r, unsigned int status, cJSON *j);
/* {"error": msg} */
enum MHD_Result sp_http_reply_error(struct sp_req *r, unsigned int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* text/plain; charset=utf-8 */
enum MHD_Result sp_http_reply_text(struct sp_req *r, unsigned int status, const char *text);

/* Header value (case-insensitive), or NULL. */
const char *sp_http_header(struct sp_req *r, const char *name);
/* Query argument, or NULL. */
const char *sp_http_arg(struct sp_req *r, const char *name);
/* Seconds since the request started. */
double sp_http_elapsed(const struct sp_req *r);
/* Makes sure r holds at least total bytes of the server's body budget;
 * false when the budget cannot give them (answer 503). */
bool sp_http_reserve(struct sp_req *r, size_t total);

/* ---- hooks.c ------------------------------------------------------------- */

/*
 * First call of a /hooks/... request: routes it to its repository and
 * refuses early (404, 405, 413 by Content-Length, 415, 503 draining)
 * before a byte of the body is read.  Sets r->body_max otherwise.
 */
enum MHD_Result sp_hooks_begin(struct sp_req *r);
/* The whole body is in r->body: verify, dedupe, ingest, answer. */
enum MHD_Result sp_hooks_finish(struct sp_req *r);
/* A body past the cap (chunked): 413 and the delivery counted. */
enum MHD_Result sp_hooks_too_large(struct sp_req *r);

/* ---- api.c --------------------------------------------------------------- */

/* First call of any other request: route, early refusals; sets body_max. */
enum MHD_Result sp_api_begin(struct sp_req *r);
/* The whole body is in r->body: answer. */
enum MHD_Result sp_api_finish(struct sp_req *r);

/* ---- agents.c ------------------------------------------------------------ */

/*
 * First call of a /api/agent/... or /api/agents request: route (404),
 * method (405), the agent's token (401 with WWW-Authenticate, before any
 * body byte), a lease while draining (503), Content-Length over the cap
 * (413: events 4 MiB, the rest 64 KiB).  Sets r->body_max and r->agent.
 */
enum MHD_Result sp_agents_begin(struct sp_req *r);
/* The whole body is in r->body: answer (a lease call may block for its
 * long-poll wait). */
enum MHD_Result sp_agents_finish(struct sp_req *r);

/* ---- metrics.c ----------------------------------------------------------- */

/* The agents' gauges (configured, online) in the Prometheus text; a may
 * be NULL (both 0). */
void sp_metrics_render_agents(struct sp_buf *out, struct sp_agents *a);

#endif
