/*
 * engine.c — HTTP to the Docker Engine over libcurl; see engine.h.
 *
 * One easy handle per engine, reset between requests so the connection
 * to the daemon is kept alive.  A request that must run while another is
 * streaming (cancelling a build) opens a second engine.
 *
 * The response status is known once headers have arrived, before the
 * first body byte reaches the write callback: a 2xx body goes to the
 * caller's stream callback, anything else is collected (capped) so that
 * the daemon's {"message": ...} can be put in the error.
 */
#include "runners/docker/engine.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

#define CONNECT_TIMEOUT_SECS 10L
#define ERROR_BODY_CAP (64 * 1024)
#define CALL_BODY_CAP (16 * 1024 * 1024)

struct sp_engine {
	struct sp_engine_config cfg;
	CURL *curl;
	char api_version[16];
};

/* ---- configuration ---- */

static const char *env_get(sp_vars_getenv_fn getenv_fn, void *ud, const char *name)
{
	const char *v = getenv_fn ? getenv_fn(name, ud) : NULL;
	return v && *v ? v : NULL;
}

int sp_engine_config_from_env(struct sp_engine_config *cfg, const char *host,
			      sp_vars_getenv_fn getenv_fn, void *ud, struct sp_error *err)
{
	const char *certdir, *home, *cfgdir;
	char *dir = NULL;
	int rc = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (!host || !*host)
		host = env_get(getenv_fn, ud, "DOCKER_HOST");
	if (!host)
		host = "unix:///var/run/docker.sock";
	cfg->host = sp_xstrdup(host);
	if (env_get(getenv_fn, ud, "DOCKER_API_VERSION"))
		cfg->api_version = sp_xstrdup(env_get(getenv_fn, ud, "DOCKER_API_VERSION"));

	if (!strncmp(host, "unix://", 7)) {
		const char *path = host + 7;
		if (!*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			rc = sp_error_set(err, SP_ECONFIG, "invalid Docker host \"%s\": %s", host,
					  *path ? "socket path too long" : "empty socket path");
			goto out;
		}
		cfg->socket_path = sp_xstrdup(path);
		cfg->base_url = sp_xstrdup("http://localhost");
	} else if (!strncmp(host, "tcp://", 6)) {
		const char *hp = host + 6;
		size_t len = strcspn(hp, "/");
		bool has_port;

		if (len == 0) {
			rc = sp_error_set(err, SP_ECONFIG, "invalid Docker host \"%s\": no address", host);
			goto out;
		}
		/* DOCKER_TLS_VERIFY or DOCKER_TLS set to anything turns TLS on */
		cfg->tls_verify = env_get(getenv_fn, ud, "DOCKER_TLS_VERIFY") != NULL;
		cfg->tls = cfg->tls_verify || env_get(getenv_fn, ud, "DOCKER_TLS") != NULL;
		{
			/* a port is a ':' after any "[ipv6]" part */
			size_t i, colon = 0, bracket = 0;
			for (i = 0; i < len; i++) {
				if (hp[i] == ':')
					colon = i + 1;
				else if (hp[i] == ']')
					bracket = i + 1;
			}
			has_port = colon > bracket;
		}
		cfg->base_url = sp_xasprintf("%s://%.*s%s", cfg->tls ? "https" : "http", (int)len, hp,
					     has_port ? "" : cfg->tls ? ":2376" : ":2375");
		if (cfg->tls) {
			certdir = env_get(getenv_fn, ud, "DOCKER_CERT_PATH");
			if (!certdir) {
				cfgdir = env_get(getenv_fn, ud, "DOCKER_CONFIG");
				home = env_get(getenv_fn, ud, "HOME");
				dir = cfgdir ? sp_xstrdup(cfgdir) : sp_xasprintf("%s/.docker", home ? home : "");
				certdir = dir;
			}
			cfg->ca_file = sp_xasprintf("%s/ca.pem", certdir);
			cfg->cert_file = sp_xasprintf("%s/cert.pem", certdir);
			cfg->key_file = sp_xasprintf("%s/key.pem", certdir);
		}
	} else {
		rc = sp_error_set(err, SP_ECONFIG,
				  "unsupported Docker host \"%s\": use unix:///path/to/docker.sock "
				  "or tcp://host:port", host);
		goto out;
	}
out:
	free(dir);
	if (rc < 0)
		sp_engine_config_release(cfg);
	return rc;
}

void sp_engine_config_release(struct sp_engine_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->host);
	free(cfg->socket_path);
	free(cfg->base_url);
	free(cfg->ca_file);
	free(cfg->cert_file);
	free(cfg->key_file);
	free(cfg->api_version);
	memset(cfg, 0, sizeof(*cfg));
}

static void config_copy(struct sp_engine_config *dst, const struct sp_engine_config *src)
{
#define DUP(f) dst->f = src->f ? sp_xstrdup(src->f) : NULL
	DUP(host);
	DUP(socket_path);
	DUP(base_url);
	DUP(ca_file);
	DUP(cert_file);
	DUP(key_file);
	DUP(api_version);
#undef DUP
	dst->tls = src->tls;
	dst->tls_verify = src->tls_verify;
}

/* ---- requests ---- */

struct xfer {
	const struct sp_engine_request *req;
	CURL *curl;
	long status;
	struct sp_buf *collect;    /* 2xx body when not streamed */
	struct sp_buf errbody;     /* non-2xx body, capped */
	struct sp_error cb_err;    /* error from a read/data callback */
	int cb_rc;
	bool cancelled;
};

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nmemb;

	if (!x->status)
		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status < 200 || x->status > 299) {
		/* keep what fits; the rest of an error body does not matter */
		size_t room = ERROR_BODY_CAP - x->errbody.len;
		(void)sp_buf_add(&x->errbody, ptr, len < room ? len : room);
		return len;
	}
	if (x->req->data) {
		int rc = x->req->data(x->req->data_ud, ptr, len, &x->cb_err);
		if (rc < 0) {
			x->cb_rc = rc;
			return 0;  /* makes curl stop with CURLE_WRITE_ERROR */
		}
		return len;
	}
	if (x->collect && sp_buf_add(x->collect, ptr, len) < 0) {
		x->cb_rc = sp_error_set(&x->cb_err, SP_ETOOBIG,
					"response larger than %zu bytes", x->collect->cap);
		return 0;
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = 0;
	int rc;

	rc = x->req->read(x->req->read_ud, buf, size * nmemb, &n, &x->cb_err);
	if (rc < 0) {
		x->cb_rc = rc;
		return CURL_READFUNC_ABORT;
	}
	return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = ud;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (x->req->cancel && x->req->cancel(x->req->cancel_ud)) {
		x->cancelled = true;
		return 1;
	}
	return 0;
}

/* Why a unix socket cannot be reached, from a plain connect(). */
static const char *socket_problem(const char *path, char *buf, size_t len)
{
	struct sockaddr_un sa;
	int fd, e = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return "cannot create a socket";
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		e = errno;
	close(fd);
	if (e == ENOENT)
		snprintf(buf, len, "no socket at %s", path);
	else if (e == ECONNREFUSED)
		snprintf(buf, len, "nothing is listening on %s", path);
	else if (e)
		snprintf(buf, len, "%s: %s", path, strerror(e));
	else
		snprintf(buf, len, "%s accepted a connection but did not answer", path);
	return buf;
}

static int unreachable(const struct sp_engine *e, const char *why, struct sp_error *err)
{
	return sp_error_set(err, SP_EENGINE,
			    "cannot reach the Docker engine at %s (%s); start one "
			    "(systemctl start docker, or contrib/engine.sh up for a private one) "
			    "or point DOCKER_HOST or --docker-host at a running engine",
			    e->cfg.host, why);
}

/* The daemon's message from an error body: {"message": "..."} or the text. */
static void daemon_message(const struct sp_buf *body, char *out, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(body->data, body->len);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	size_t n;

	if (cJSON_IsString(m) && m->valuestring) {
		snprintf(out, len, "%s", m->valuestring);
	} else {
		snprintf(out, len, "%s", body->len ? body->data : "(no message)");
		n = strlen(out);
		while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
			out[--n] = '\0';
	}
	cJSON_Delete(j);
}

/* "/build?version=2&t=..." → "/build" for messages, and a 64-hex id in it
 * ("/containers/<id>/logs") shortened to its first 12, as docker ps does */
static void path_only(const char *path, char *out, size_t len)
{
	size_t n = strcspn(path, "?"), i = 0, o = 0, run;

	while (i < n && o + 1 < len) {
		run = 0;
		while (i + run < n && strchr("0123456789abcdef", path[i + run]) && path[i + run])
			run++;
		if (run == 64 && (i + run == n || path[i + run] == '/')) {
			o += (size_t)snprintf(out + o, len - o, "%.12s", path + i);
			if (o >= len)
				o = len - 1;
			i += run;
		} else {
			for (run = run ? run : 1; run && o + 1 < len; run--)
				out[o++] = path[i++];
		}
	}
	out[o < len ? o : len - 1] = '\0';
}

int sp_engine_request(struct sp_engine *e, const struct sp_engine_request *req,
		      struct sp_engine_response *resp, struct sp_error *err)
{
	struct curl_slist *hdrs = NULL;
	struct xfer x;
	char *url = NULL, where[600], msg[1024], why[512], detail[CURL_ERROR_SIZE];
	const char *method = req->method ? req->method : "GET";
	CURLcode cc;
	size_t i;
	int rc = 0;

	memset(&x, 0, sizeof(x));
	x.req = req;
	x.curl = e->curl;
	x.collect = resp ? resp->body : NULL;
	sp_buf_init(&x.errbody, ERROR_BODY_CAP);
	path_only(req->path, why, sizeof(why));
	snprintf(where, sizeof(where), "%s %s", method, why);

	curl_easy_reset(e->curl);
	if (req->unversioned)
		url = sp_xasprintf("%s%s", e->cfg.base_url, req->path);
	else
		url = sp_xasprintf("%s/v%s%s", e->cfg.base_url, e->api_version, req->path);
	detail[0] = '\0';
	curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, detail);
	curl_easy_setopt(e->curl, CURLOPT_URL, url);
	if (e->cfg.socket_path)
		curl_easy_setopt(e->curl, CURLOPT_UNIX_SOCKET_PATH, e->cfg.socket_path);
	if (e->cfg.tls) {
		curl_easy_setopt(e->curl, CURLOPT_CAINFO, e->cfg.ca_file);
		curl_easy_setopt(e->curl, CURLOPT_SSLCERT, e->cfg.cert_file);
		curl_easy_setopt(e->curl, CURLOPT_SSLKEY, e->cfg.key_file);
		curl_easy_setopt(e->curl, CURLOPT_SSL_VERIFYPEER, e->cfg.tls_verify ? 1L : 0L);
		curl_easy_setopt(e->curl, CURLOPT_SSL_VERIFYHOST, e->cfg.tls_verify ? 2L : 0L);
	}
	if (!e->cfg.socket_path)
		curl_easy_setopt(e->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SECS);
	curl_easy_setopt(e->curl, CURLOPT_USERAGENT, "stagepipe/" SP_VERSION);
	if (req->low_speed_secs > 0) {
		curl_easy_setopt(e->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e->curl, CURLOPT_LOW_SPEED_TIME, req->low_speed_secs);
	}
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(e->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e->curl, CURLOPT_XFERINFODATA, &x);

	if (req->read || req->body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
		/* a body goes up the POST way; PUT is the same with another verb */
		curl_easy_setopt(e->curl, CURLOPT_POST, 1L);
		if (strcmp(method, "POST"))
			curl_easy_setopt(e->curl, CURLOPT_CUSTOMREQUEST, method);
		if (req->read) {
			curl_easy_setopt(e->curl, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(e->curl, CURLOPT_READDATA, &x);
			hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
		} else {
			curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)req->body_len);
			curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		}
		hdrs = curl_slist_append(hdrs, "Expect:");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(e->curl, CURLOPT_CUSTOMREQUEST, method);
	}
	if (req->content_type) {
		char *h = sp_xasprintf("Content-Type: %s", req->content_type);
		hdrs = curl_slist_append(hdrs, h);
		free(h);
	}
	for (i = 0; req->headers && req->headers[i]; i++)
		hdrs = curl_slist_append(hdrs, req->headers[i]);
	if (hdrs)
		curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, hdrs);

	cc = curl_easy_perform(e->curl);
	if (!x.status)
		curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &x.status);
	if (resp)
		resp->status = x.status;

	if (x.cancelled) {
		rc = sp_error_set(err, SP_ECANCELLED, "%s: interrupted", where);
	} else if (x.cb_rc < 0) {
		rc = x.cb_rc;
		if (err) {
			*err = x.cb_err;
			err->code = rc;
		}
	} else if (cc == CURLE_COULDNT_CONNECT && e->cfg.socket_path) {
		rc = unreachable(e, socket_problem(e->cfg.socket_path, why, sizeof(why)), err);
	} else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		   (cc == CURLE_OPERATION_TIMEDOUT && x.status == 0)) {
		rc = unreachable(e, curl_easy_strerror(cc), err);
	} else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE) {
		rc = sp_error_set(err, SP_EENGINE, "the Docker engine at %s presented a TLS "
				  "certificate not signed by the CA in %s (%s); check DOCKER_CERT_PATH",
				  e->cfg.host, e->cfg.ca_file, *detail ? detail : curl_easy_strerror(cc));
	} else if (cc == CURLE_SSL_CERTPROBLEM) {
		rc = sp_error_set(err, SP_EENGINE, "cannot use the TLS client certificate %s with "
				  "key %s for %s (%s); check DOCKER_CERT_PATH", e->cfg.cert_file,
				  e->cfg.key_file, e->cfg.host, *detail ? detail : curl_easy_strerror(cc));
	} else if (e->cfg.tls && x.status == 0 &&
		   (cc == CURLE_RECV_ERROR || cc == CURLE_SSL_CONNECT_ERROR)) {
		rc = sp_error_set(err, SP_EENGINE, "the Docker engine at %s refused the TLS "
				  "connection (%s); is %s a client certificate its CA signed?",
				  e->cfg.host, *detail ? detail : curl_easy_strerror(cc),
				  e->cfg.cert_file);
	} else if (cc == CURLE_PARTIAL_FILE || cc == CURLE_GOT_NOTHING ||
		   cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR) {
		/* it answered, then the connection went: the daemon stopped or crashed */
		rc = sp_error_set(err, SP_EENGINE, "%s: the connection to the Docker engine at %s "
				  "broke (did the engine stop or restart?): %s", where,
				  e->cfg.host, *detail ? detail : curl_easy_strerror(cc));
	} else if (cc != CURLE_OK) {
		rc = sp_error_set(err, SP_EENGINE, "%s: connection to the Docker engine at %s "
				  "failed: %s", where, e->cfg.host,
				  *detail ? detail : curl_easy_strerror(cc));
	} else if (x.status == 400 && !e->cfg.tls &&
		   strstr(x.errbody.data, "HTTP request to an HTTPS server")) {
		rc = sp_error_set(err, SP_EENGINE, "the Docker engine at %s expects TLS; set "
				  "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to a folder with ca.pem, "
				  "cert.pem and key.pem", e->cfg.host);
	} else if (x.status < 200 || x.status > 299) {
		daemon_message(&x.errbody, msg, sizeof(msg));
		rc = sp_error_set(err, x.status == 404 ? SP_ENOTFOUND : SP_EENGINE,
				  "%s: engine answered HTTP %ld: %s", where, x.status, msg);
	}
	/* The handle outlives this call (curl_easy_header reads it after, and
	 * cleanup may still report into the error buffer): let it keep no
	 * pointer to this frame's buffer or to the freed header list. */
	curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	free(url);
	sp_buf_release(&x.errbody);
	return rc;
}

int sp_engine_call_status(struct sp_engine *e, const char *method, const char *path,
			  const char *json_body, struct sp_buf *out, long *status,
			  struct sp_error *err)
{
	struct sp_engine_request req;
	struct sp_engine_response resp;
	struct sp_buf sink;
	int rc;

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.path = path;
	if (json_body) {
		req.content_type = "application/json";
		req.body = json_body;
		req.body_len = strlen(json_body);
	}
	sp_buf_init(&sink, CALL_BODY_CAP);
	resp.status = 0;
	resp.body = out ? out : &sink;
	if (out && !out->cap)
		out->cap = CALL_BODY_CAP;
	rc = sp_engine_request(e, &req, &resp, err);
	if (status)
		*status = resp.status;
	sp_buf_release(&sink);
	return rc;
}

int sp_engine_call(struct sp_engine *e, const char *method, const char *path,
		   const char *json_body, struct sp_buf *out, struct sp_error *err)
{
	return sp_engine_call_status(e, method, path, json_body, out, NULL, err);
}

/* ---- connecting ---- */

static int parse_version(const char *s, int *major, int *minor)
{
	char *end;
	long a, b;

	a = strtol(s, &end, 10);
	if (end == s || *end != '.')
		return -1;
	s = end + 1;
	b = strtol(s, &end, 10);
	if (end == s || (*end && *end != '\r' && *end != '\n' && *end != ' '))
		return -1;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

static int version_cmp(const char *a, const char *b)
{
	int am = 0, an = 0, bm = 0, bn = 0;

	(void)parse_version(a, &am, &an);
	(void)parse_version(b, &bm, &bn);
	if (am != bm)
		return am < bm ? -1 : 1;
	return an < bn ? -1 : an > bn;
}

static int negotiate(struct sp_engine *e, struct sp_error *err)
{
	struct sp_engine_request req;
	struct sp_buf body = SP_BUF_INIT;
	struct curl_header *h = NULL;
	const char *daemon_max = "1.24";
	char ver[16] = "";
	cJSON *j = NULL;
	const cJSON *minv;
	int rc, mj, mn;

	memset(&req, 0, sizeof(req));
	req.path = "/_ping";
	req.unversioned = true;
	sp_buf_init(&body, 4096);
	{
		struct sp_engine_response resp = { 0, &body };
		if ((rc = sp_engine_request(e, &req, &resp, err)) < 0)
			goto out;
	}
	if (curl_easy_header(e->curl, "Api-Version", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
	    parse_version(h->value, &mj, &mn) == 0) {
		snprintf(ver, sizeof(ver), "%d.%d", mj, mn);
		daemon_max = ver;
	}
	if (e->cfg.api_version) {
		if (parse_version(e->cfg.api_version, &mj, &mn) < 0) {
			rc = sp_error_set(err, SP_ECONFIG, "DOCKER_API_VERSION \"%s\" is not a version "
					  "like 1.41", e->cfg.api_version);
			goto out;
		}
		snprintf(e->api_version, sizeof(e->api_version), "%d.%d", mj, mn);
	} else {
		if (version_cmp(daemon_max, SP_ENGINE_API_MIN) < 0) {
			rc = sp_error_set(err, SP_EENGINE, "the Docker engine at %s speaks API %s; "
					  "stagepipe needs %s or newer (Docker 19.03+)",
					  e->cfg.host, daemon_max, SP_ENGINE_API_MIN);
			goto out;
		}
		snprintf(e->api_version, sizeof(e->api_version), "%s",
			 version_cmp(daemon_max, SP_ENGINE_API_MAX) < 0 ? daemon_max : SP_ENGINE_API_MAX);
	}
	/* a daemon newer than us may refuse old versions (29.x: below 1.44) */
	sp_buf_reset(&body);
	if ((rc = sp_engine_call(e, "GET", "/version", NULL, &body, err)) < 0)
		goto out;
	j = cJSON_ParseWithLength(body.data, body.len);
	minv = cJSON_GetObjectItemCaseSensitive(j, "MinAPIVersion");
	if (cJSON_IsString(minv) && version_cmp(e->api_version, minv->valuestring) < 0) {
		rc = sp_error_set(err, SP_EENGINE, "the Docker engine at %s needs API %s or newer; "
				  "stagepipe speaks up to %s", e->cfg.host, minv->valuestring,
				  e->api_version);
		goto out;
	}
out:
	cJSON_Delete(j);
	sp_buf_release(&body);
	return rc;
}

bool sp_engine_ping(struct sp_engine *e)
{
	struct sp_engine_request req;

	memset(&req, 0, sizeof(req));
	req.path = "/_ping";
	req.unversioned = true;
	req.low_speed_secs = 5;  /* an engine that accepts but never answers is not there */
	return sp_engine_request(e, &req, NULL, NULL) == 0;
}

int sp_engine_open(struct sp_engine **out, const struct sp_engine_config *cfg,
		   struct sp_error *err)
{
	struct sp_engine *e = sp_xcalloc(1, sizeof(*e));
	int rc;

	*out = NULL;
	config_copy(&e->cfg, cfg);
	e->curl = curl_easy_init();
	if (!e->curl) {
		rc = sp_error_set(err, SP_ERROR, "cannot initialise libcurl");
		goto fail;
	}
	if ((rc = negotiate(e, err)) < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	sp_engine_free(e);
	return rc;
}

struct sp_engine *sp_engine_dup(const struct sp_engine *e)
{
	struct sp_engine *d = sp_xcalloc(1, sizeof(*d));

	config_copy(&d->cfg, &e->cfg);
	memcpy(d->api_version, e->api_version, sizeof(d->api_version));
	d->curl = curl_easy_init();
	if (!d->curl) {
		fputs("stagepipe: cannot initialise libcurl\n", stderr);
		abort();
	}
	return d;
}

void sp_engine_free(struct sp_engine *e)
{
	if (!e)
		return;
	if (e->curl)
		curl_easy_cleanup(e->curl);
	sp_engine_config_release(&e->cfg);
	free(e);
}

const char *sp_engine_api_version(const struct sp_engine *e)
{
	return e->api_version;
}

const char *sp_engine_host(const struct sp_engine *e)
{
	return e->cfg.host;
}

void sp_engine_urlencode(struct sp_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			sp_buf_addch(b, (char)c);
		} else {
			sp_buf_addch(b, '%');
			sp_buf_addch(b, hex[c >> 4]);
			sp_buf_addch(b, hex[c & 15]);
		}
	}
}
