/*
 * http.c — the libmicrohttpd daemons and the request life cycle; see
 * server.h and http_internal.h.
 *
 * One daemon per listen address, each with a thread per connection: a
 * handler may block (the store's group commit, an SSE stream waiting for
 * log lines) without holding anyone else up, and the connection limit
 * bounds the threads.  A request is routed on its first call, before any
 * body byte is read, so that an unknown repository, a wrong method or a
 * Content-Length over the cap is answered at once; the body is then
 * accumulated under the route's cap, and the route answers once it is
 * complete.
 *
 * What a client that is not trusted yet can hold is bounded: headers by
 * libmicrohttpd's per-connection memory (CONNECTION_MEMORY), connections
 * by CONNECTION_LIMIT (PER_IP_LIMIT of them from one address), the bytes
 * of all bodies being received by the body budget (sp_http_reserve), the
 * time to send a body by BODY_DEADLINE_S (the idle timeout alone lets a
 * byte every 29 s hold a thread for ever), and a body over the cap is read
 * and dropped only up to DRAIN_MAX more bytes before the connection is
 * closed.
 *
 * Agents' lease calls are long-polls (agents.c): a handler blocks up to
 * 60 s waiting for a job.  In thread-per-connection mode that time is not
 * idle time for CONNECTION_TIMEOUT_S (libmicrohttpd 0.9.75 sends the
 * answer of a handler that blocked past the timeout), and sp_http_stop
 * wakes them first so that stopping never waits for a long-poll.
 */
#include "core/server/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"
#include "core/server/agents_internal.h"

#define CONNECTION_LIMIT 1024
#define PER_IP_LIMIT 256
#define CONNECTION_TIMEOUT_S 30
#define CONNECTION_MEMORY (32 * 1024)   /* request line + headers, per connection */
#define THREAD_STACK (512 * 1024)
#define BODY_BUDGET_MIN ((size_t)128 * 1024 * 1024)
#define BODY_DEADLINE_S 60.0            /* forges themselves give up after 10 s */
#define DRAIN_MIN ((size_t)1024 * 1024)

/* ---- answers ------------------------------------------------------------- */

double sp_http_elapsed(const struct sp_req *r)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - r->t0.tv_sec) + (double)(now.tv_nsec - r->t0.tv_nsec) / 1e9;
}

enum MHD_Result sp_http_reply(struct sp_req *r, unsigned int status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		r->answered = true;
		sp_metrics_http(r->h->srv->metrics, r->route, (int)status, sp_http_elapsed(r));
	}
	return ret;
}

static struct MHD_Response *buffer_response(const char *data, size_t len, const char *ctype)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		abort();  /* out of memory, as xalloc */
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return resp;
}

enum MHD_Result sp_http_reply_json(struct sp_req *r, unsigned int status, cJSON *j)
{
	struct MHD_Response *resp;
	char *text;

	if (!j)
		return sp_http_reply(r, status, buffer_response("", 0, NULL));
	text = sp_xjson_print(j);
	cJSON_Delete(j);
	resp = buffer_response(text, strlen(text), "application/json");
	free(text);
	return sp_http_reply(r, status, resp);
}

enum MHD_Result sp_http_reply_error(struct sp_req *r, unsigned int status, const char *fmt, ...)
{
	cJSON *j = cJSON_CreateObject();
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(j, "error", msg);
	return sp_http_reply_json(r, status, j);
}

enum MHD_Result sp_http_reply_text(struct sp_req *r, unsigned int status, const char *text)
{
	return sp_http_reply(r, status,
			     buffer_response(text, strlen(text), "text/plain; charset=utf-8"));
}

enum MHD_Result sp_http_reply_405(struct sp_req *r, const char *allow)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		abort();  /* out of memory, as xalloc */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	return sp_http_reply(r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

bool sp_http_length_ok(struct sp_req *r)
{
	const char *cl = sp_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long v;
	char *end;

	if (!cl)
		return true;
	errno = 0;
	v = strtoull(cl, &end, 10);
	return end != cl && !*end && !errno && cl[0] >= '0' && cl[0] <= '9' && v <= r->body_max;
}

bool sp_http_reserve(struct sp_req *r, size_t total)
{
	struct sp_http *h = r->h;
	size_t more, cur;

	if (total <= r->reserved)
		return true;
	more = total - r->reserved;
	cur = atomic_load(&h->body_bytes);
	do {
		if (cur > h->body_budget || more > h->body_budget - cur)
			return false;
	} while (!atomic_compare_exchange_weak(&h->body_bytes, &cur, cur + more));
	r->reserved = total;
	return true;
}

const char *sp_http_header(struct sp_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *sp_http_arg(struct sp_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- SSE output ------------------------------------------------------------ */

void sp_sse_out_init(struct sp_sse_out *o)
{
	sp_buf_init(&o->buf, 0);
	o->pos = 0;
	o->last_ms = sp_clock_ms();
}

void sp_sse_out_release(struct sp_sse_out *o)
{
	sp_buf_release(&o->buf);
	o->pos = 0;
}

size_t sp_sse_out_take(struct sp_sse_out *o, char *dst, size_t max)
{
	size_t n = o->buf.len - o->pos;

	if (!n)
		return 0;
	if (n > max)
		n = max;
	memcpy(dst, o->buf.data + o->pos, n);
	o->pos += n;
	if (o->pos == o->buf.len) {
		sp_buf_reset(&o->buf);
		o->pos = 0;
	}
	o->last_ms = sp_clock_ms();
	return n;
}

bool sp_sse_out_keepalive(struct sp_sse_out *o, int64_t keepalive_ms)
{
	if (sp_clock_ms() - o->last_ms < keepalive_ms)
		return false;
	sp_buf_addstr(&o->buf, ": keepalive\n\n");
	return true;
}

/* ---- the request life cycle ---------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct sp_http *h = cls;
	struct sp_req *r = *con_cls;

	(void)version;
	if (!r) {
		r = sp_xcalloc(1, sizeof(*r));
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		r->h = h;
		r->conn = conn;
		r->method = method;
		r->url = sp_xstrdup(url);
		r->route = "other";
		sp_buf_init(&r->body, 0);
		*con_cls = r;
		r->agent = -1;
		if (!strncmp(url, "/hooks/", 7) || !strcmp(url, "/hooks")) {
			r->kind = SP_ROUTE_HOOK;
			r->route = "hooks";
			return sp_hooks_begin(r);
		}
		if (sp_ui_owns(url)) {
			r->kind = SP_ROUTE_UI;
			return sp_ui_begin(r);
		}
		if (!strncmp(url, "/api/agent/", 11) || !strcmp(url, "/api/agents") ||
		    !strcmp(url, "/api/agents/")) {
			r->kind = SP_ROUTE_AGENT;
			/* the agent list is a read like any other (the agent
			 * protocol's own calls carry agent tokens) */
			if (strncmp(url, "/api/agent/", 11) && sp_ui_read_check(r)) {
				r->route = "agents";
				return sp_ui_unauthorized(r, "read token required");
			}
			return sp_agents_begin(r);
		}
		r->kind = SP_ROUTE_API;
		return sp_api_begin(r);
	}
	if (r->answered) {
		/* refused early: the rest of the body is dropped by libmicrohttpd */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size && r->sink) {
		if (!r->sink_failed && r->sink(r, upload_data, *upload_data_size) < 0)
			r->sink_failed = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		/* a body trickled in to hold a thread: close the connection */
		if (sp_http_elapsed(r) > BODY_DEADLINE_S) {
			sp_log_info("http.refused", "route=%s reason=\"body not received within %.0f s\"",
				    r->route, BODY_DEADLINE_S);
			return MHD_NO;
		}
		if (!r->too_large && !r->busy && r->body.len + n > r->body_max) {
			r->too_large = true;
			sp_buf_release(&r->body);
		}
		if (!r->too_large && !r->busy && !sp_http_reserve(r, r->body.len + n)) {
			r->busy = true;
			sp_buf_release(&r->body);
		}
		if (!r->too_large && !r->busy) {
			sp_buf_add(&r->body, upload_data, n);
			return MHD_YES;
		}
		/*
		 * libmicrohttpd (0.9.75) cannot queue an answer while upload data
		 * is being handed over, so a chunked body over the cap is read on
		 * and dropped, then answered 413 — but only so far: past DRAIN_MAX
		 * more bytes the client is not sending a webhook, and the
		 * connection is closed without an answer.  Nothing of it is kept.
		 */
		r->dropped += n;
		if (r->dropped > (r->body_max > DRAIN_MIN ? r->body_max : DRAIN_MIN)) {
			sp_log_info("http.refused", "route=%s reason=\"body far over the cap\"",
				    r->route);
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (r->busy) {
		if (r->kind == SP_ROUTE_HOOK)
			sp_metrics_delivery(h->srv->metrics,
					    r->repo ? sp_forge_name(r->repo->forge) : "unknown",
					    "unavailable");
		sp_log_warn("http.busy", "route=%s budget=%zu", r->route, h->body_budget);
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server busy");
	}
	if (r->too_large) {
		if (r->kind == SP_ROUTE_HOOK)
			return sp_hooks_too_large(r);
		return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body over %zu bytes",
					   r->body_max);
	}
	if (r->kind == SP_ROUTE_HOOK)
		return sp_hooks_finish(r);
	if (r->kind == SP_ROUTE_AGENT)
		return sp_agents_finish(r);
	if (r->kind == SP_ROUTE_UI)
		return sp_ui_finish(r);
	return sp_api_finish(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct sp_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	if (r->reserved)
		atomic_fetch_sub(&r->h->body_bytes, r->reserved);
	if (r->sink_free)
		r->sink_free(r);
	sp_buf_release(&r->body);
	free(r->url);
	free(r);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512], q[600];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	sp_log_debug("http.mhd", "msg=%s", sp_log_quote(msg, q, sizeof(q)));
}

/* ---- start and stop ------------------------------------------------------- */

/* "host:port" / "[v6]:port" into a socket address (names resolved). */
static int resolve(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
		   bool *v6, struct sp_error *err)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *port;
	size_t hl;
	int rc;

	if (listen[0] == '[') {
		const char *rb = strchr(listen, ']');
		if (!rb)
			return sp_error_set(err, SP_ECONFIG, "bad listen address %s", listen);
		hl = (size_t)(rb - listen - 1);
		port = rb + 2;
		if (hl >= sizeof(host))
			return sp_error_set(err, SP_ECONFIG, "bad listen address %s", listen);
		memcpy(host, listen + 1, hl);
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon)
			return sp_error_set(err, SP_ECONFIG, "bad listen address %s", listen);
		hl = (size_t)(colon - listen);
		port = colon + 1;
		if (hl >= sizeof(host))
			return sp_error_set(err, SP_ECONFIG, "bad listen address %s", listen);
		memcpy(host, listen, hl);
	}
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return sp_error_set(err, SP_EENGINE, "cannot resolve %s: %s", listen,
				    gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
}

int sp_http_start(struct sp_http **out, struct sp_server *srv, struct sp_error *err)
{
	const struct sp_server_config *cfg = srv->cfg;
	struct sp_http *h = sp_xcalloc(1, sizeof(*h));
	size_t i;
	int rc = 0;

	*out = NULL;
	h->srv = srv;
	atomic_init(&h->stopping, false);
	h->body_budget = cfg->body_max > BODY_BUDGET_MIN / 2 ? 2 * cfg->body_max : BODY_BUDGET_MIN;
	atomic_init(&h->body_bytes, 0);
	atomic_init(&h->sse_streams, 0);
	atomic_init(&h->health_ok_ms, (long long)-1000000);
	sp_ui_init(h);
	if (cfg->tls_cert) {
		h->tls_cert = sp_fs_read_small(cfg->tls_cert);
		h->tls_key = sp_fs_read_small(cfg->tls_key);
		if (!h->tls_cert || !h->tls_key) {
			rc = sp_error_set(err, SP_ECONFIG, "cannot read the TLS %s file %s",
					  h->tls_cert ? "key" : "certificate",
					  h->tls_cert ? cfg->tls_key : cfg->tls_cert);
			goto fail;
		}
	}
	for (i = 0; i < cfg->nlisten && i < SP_HTTP_MAX_DAEMONS; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = 0;
		/* poll(2), not select(2): descriptors past FD_SETSIZE (log files,
		 * the store, streams) must not make connections fail */
		unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
				     MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
		bool v6 = false;
		struct MHD_Daemon *d;

		if ((rc = resolve(cfg->listen[i], &ss, &sslen, &v6, err)) < 0)
			goto fail;
		/* IPv6 only (IPV6_V6ONLY), as nginx: "[::]:8080" and
		 * "0.0.0.0:8080" can both be listed */
		if (v6)
			flags |= MHD_USE_IPv6;
		if (h->tls_cert)
			flags |= MHD_USE_TLS;
		if (h->tls_cert)
			d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
					     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
					     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)PER_IP_LIMIT,
					     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
					     MHD_OPTION_CONNECTION_TIMEOUT,
					     (unsigned int)CONNECTION_TIMEOUT_S,
					     MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
					     MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
					     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
					     MHD_OPTION_HTTPS_MEM_CERT, h->tls_cert,
					     MHD_OPTION_HTTPS_MEM_KEY, h->tls_key,
					     MHD_OPTION_END);
		else
			d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
					     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
					     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
					     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)PER_IP_LIMIT,
					     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
					     MHD_OPTION_CONNECTION_TIMEOUT,
					     (unsigned int)CONNECTION_TIMEOUT_S,
					     MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
					     MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
					     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
					     MHD_OPTION_END);
		if (!d) {
			rc = sp_error_set(err, SP_EENGINE, "cannot listen on %s%s%s", cfg->listen[i],
					  errno ? ": " : "", errno ? strerror(errno) : "");
			goto fail;
		}
		h->daemons[h->ndaemons++] = d;
		sp_log_info("serve.listen", "addr=%s tls=%s", cfg->listen[i],
			    h->tls_cert ? "true" : "false");
	}
	*out = h;
	return 0;
fail:
	sp_http_stop(h);
	sp_http_free(h);
	return rc;
}

void sp_http_stop(struct sp_http *h)
{
	size_t i;

	if (!h)
		return;
	atomic_store(&h->stopping, true);
	/* long-polls waiting for a job return now: MHD_stop_daemon joins
	 * their threads */
	sp_agents_stop(h->srv->agents);
	for (i = 0; i < h->ndaemons; i++)
		MHD_stop_daemon(h->daemons[i]);
	h->ndaemons = 0;
}

void sp_http_free(struct sp_http *h)
{
	if (!h)
		return;
	sp_http_stop(h);
	if (h->tls_key)
		memset(h->tls_key, 0, strlen(h->tls_key));
	free(h->tls_key);
	free(h->tls_cert);
	sp_ui_release(h);
	free(h);
}
