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
/* Live streams (SSE: stage logs, and the UI's job changes, GET /api/events)
 * open at once, over every daemon: a stream holds a connection and a thread
 * (a log stream also a file) for as long as it lasts (read access may be
 * public), so they get a share of the connection limit, not all of it. */
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
	/* the UI's assets: ETags ("\"<16 hex>\"", from each file's SHA-256),
	 * one per sp_ui_assets entry (ui.c, sp_ui_init) */
	char (*etags)[20];
	size_t nassets;
	/* failed logins are logged at most SP_UI_LOGIN_LOG_MAX a second (ui.c) */
	atomic_llong login_sec;
	atomic_int login_n;
};

enum sp_route_kind {
	SP_ROUTE_NONE,      /* answered already (early refusal) */
	SP_ROUTE_HOOK,
	SP_ROUTE_API,
	SP_ROUTE_AGENT,     /* /api/agent/... and /api/agents (agents.c) */
	SP_ROUTE_UI,        /* the web UI: pages, /ui/, /badge/, /api/repos|events|session|
			     * login|logout (ui.c) */
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
	/*
	 * A route's begin may set sink: the body then goes there piece by
	 * piece as it arrives (an artifact upload, written to a file), never
	 * into body, without the body cap, the body budget or the 60 s body
	 * deadline (the sender was authenticated by begin).  A negative
	 * return drops the rest of the body and sets sink_failed for the
	 * finish.  sink_free (may be NULL) runs when the request ends,
	 * however it ends.
	 */
	int (*sink)(struct sp_req *r, const char *data, size_t len);
	void (*sink_free)(struct sp_req *r);
	void *sink_ud;
	bool sink_failed;
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

/* 405 with an Allow header ("GET", "GET, POST"). */
enum MHD_Result sp_http_reply_405(struct sp_req *r, const char *allow);
/* Whether the Content-Length, when sent, is a number within r->body_max
 * (else the caller answers 413 before a byte of the body is read). */
bool sp_http_length_ok(struct sp_req *r);

/* Header value (case-insensitive), or NULL. */
const char *sp_http_header(struct sp_req *r, const char *name);
/* Query argument, or NULL. */
const char *sp_http_arg(struct sp_req *r, const char *name);
/* Seconds since the request started. */
double sp_http_elapsed(const struct sp_req *r);
/* Makes sure r holds at least total bytes of the server's body budget;
 * false when the budget cannot give them (answer 503). */
bool sp_http_reserve(struct sp_req *r, size_t total);

/*
 * The bytes of an SSE stream (log follow, job changes) not yet handed to
 * libmicrohttpd: its content reader adds to buf, then hands them over with
 * sp_sse_out_take; a stream with nothing to say sends a keepalive comment.
 */
struct sp_sse_out {
	struct sp_buf buf;
	size_t pos;               /* bytes of buf already handed over */
	int64_t last_ms;          /* when bytes last went out (sp_clock_ms) */
};
void sp_sse_out_init(struct sp_sse_out *o);
void sp_sse_out_release(struct sp_sse_out *o);
/* Copies pending bytes (at most max) to dst; how many, 0 when none. */
size_t sp_sse_out_take(struct sp_sse_out *o, char *dst, size_t max);
/* Queues ": keepalive" when nothing went out for keepalive_ms; whether it did. */
bool sp_sse_out_keepalive(struct sp_sse_out *o, int64_t keepalive_ms);

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
/*
 * GET /readyz: whether a hook would be taken now.  503 "draining" while
 * stopping; while the store's last write failed, one ping (a committed
 * write) decides: 503 "store unavailable: disk full" (or without the
 * reason), else ready again — a freed disk needs no hook to show.
 */
enum MHD_Result sp_hooks_readyz(struct sp_req *r);

/* ---- api.c --------------------------------------------------------------- */

/* First call of any other request: route, early refusals; sets body_max. */
enum MHD_Result sp_api_begin(struct sp_req *r);
/* The whole body is in r->body: answer. */
enum MHD_Result sp_api_finish(struct sp_req *r);

/* ---- artifacts.c --------------------------------------------------------- */

/* GET /api/jobs/{job}/artifacts (rel NULL or "": the list as JSON) and
 * /api/jobs/{job}/artifacts/{rel} (the file, as a download). */
enum MHD_Result sp_artifacts_get(struct sp_req *r, int64_t job, const char *rel);

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

/* ---- ui.c: the web UI's server side -------------------------------------- */

/*
 * One file of web/, built into the binary (contrib/embed-web.sh writes the
 * table; the Makefile runs it).  path is relative to web/ ("app.js");
 * data .. end are its bytes (end is one past the last, and *end is a NUL).
 */
struct sp_ui_asset {
	const char *path;
	const unsigned char *data, *end;
};
/* Every file of web/ at build time; ends with an entry whose path is NULL. */
extern const struct sp_ui_asset sp_ui_assets[];

/* Fills h->etags (called by sp_http_start; tests call it on their own h). */
void sp_ui_init(struct sp_http *h);
/* Frees what sp_ui_init made. */
void sp_ui_release(struct sp_http *h);

/* Whether url is one of ui.c's routes (the first call routes with it). */
bool sp_ui_owns(const char *url);
/* First call of a UI request: method (405), read access (401), body cap. */
enum MHD_Result sp_ui_begin(struct sp_req *r);
/* The whole body is in r->body: answer. */
enum MHD_Result sp_ui_finish(struct sp_req *r);
/* The HTML shell (web/index.html), for the page URLs (api.c: /jobs/{id}
 * when the client accepts text/html). */
enum MHD_Result sp_ui_shell(struct sp_req *r);

/* What a request may do: from its Authorization: Bearer token or the UI's
 * session cookie, compared in constant time. */
struct sp_ui_access {
	bool read;          /* reads are public, or it carries the read or admin token */
	bool admin;         /* it carries the admin token */
	bool admin_cookie;  /* ... only in the cookie (mutating calls then need the
			     * X-Stagepipe: 1 header: a CSRF guard) */
	bool read_public;   /* no read token is configured */
};
void sp_ui_access_of(struct sp_req *r, struct sp_ui_access *a);
/* 0 when r may read; else 401 (answer it with sp_ui_unauthorized). */
unsigned int sp_ui_read_check(struct sp_req *r);
/* 0 when r may mutate; else 401 (no or a wrong token), 403 (no admin
 * token configured, or the cookie without X-Stagepipe: 1); *why says which. */
unsigned int sp_ui_admin_check(struct sp_req *r, const char **why);
/* 401 {"error": why} with WWW-Authenticate: Bearer realm="stagepipe". */
enum MHD_Result sp_ui_unauthorized(struct sp_req *r, const char *why);

/* ---- ui.c: pure helpers (unit-tested) ---- */

/* want == got, in time that depends on neither (SHA-256 digests compared
 * with CRYPTO_memcmp); false when want is NULL. */
bool sp_ui_token_eq(const char *want, const char *got, size_t got_len);
/* The session cookie's value for token: 64 hex of SHA-256("stagepipe-ui\n"
 * token), so the cookie holds no token and any token fits in a cookie. */
void sp_ui_session_value(const char *token, char out[65]);
/* The value of cookie name in a Cookie header (borrowed: *val, *len);
 * false when absent. */
bool sp_ui_cookie_find(const char *header, const char *name, const char **val,
		       size_t *len);
/*
 * A Range header against a file of size bytes: 0 the whole file (no
 * header, or a form not served: several ranges, not bytes=), 1 the bytes
 * *from..*to (inclusive), -1 unsatisfiable (416 with bytes STAR/size).
 * Served: "bytes=A-" (A < size), "bytes=A-B" (A <= B; B past the end is
 * the end; A past the end is -1), "bytes=-N" (the last N bytes, the whole
 * file when N >= size; N = 0 is -1; an empty file: 0).
 */
int sp_ui_range(const char *header, uint64_t size, uint64_t *from, uint64_t *to);
/* "text/javascript; charset=utf-8" for app.js, ...; by extension. */
const char *sp_ui_content_type(const char *path);
/* The asset at path in table (NULL-path terminated), or NULL. */
const struct sp_ui_asset *sp_ui_asset_find(const struct sp_ui_asset *table,
					   const char *path);
/* A shields-style badge "stagepipe | state" (state: a job state, or NULL
 * for "no builds"); title (repo and branch) is escaped.  A new string. */
char *sp_ui_badge_svg(const char *title, const char *state);
/* GET /api/repos's answer, from the config and the store.  A new tree. */
int sp_ui_repos_json(struct sp_server *srv, cJSON **out, struct sp_error *err);

/*
 * GET /api/events: one stream's state, for libmicrohttpd's content reader
 * (sp_ui_events_read, sp_ui_events_free).  since: the rev to report
 * changes after (< 0: from now).  The stream counts in h->sse_streams.
 */
struct sp_ui_events;
struct sp_ui_events *sp_ui_events_new(struct sp_http *h, int64_t since);
ssize_t sp_ui_events_read(void *cls, uint64_t pos, char *buf, size_t max);
void sp_ui_events_free(void *cls);

/* ---- metrics.c ----------------------------------------------------------- */

/* The agents' gauges (configured, online) in the Prometheus text; a may
 * be NULL (both 0). */
void sp_metrics_render_agents(struct sp_buf *out, struct sp_agents *a);

#endif
