/*
 * ui.c — the server side of the web UI: the HTML shell and its assets
 * (built into the binary from web/, see contrib/embed-web.sh), status
 * badges, the UI's own JSON (GET /api/repos, GET /api/session), the job
 * change stream (GET /api/events, Server-Sent Events), and who may read
 * (the read token, the session cookie of POST /api/login).
 *
 * Pages: /, /agents, /repos (and /jobs/{id} for a browser, api.c) all
 * answer web/index.html with no-cache; the page's JavaScript routes.  The
 * other files are /ui/<path>, with an ETag (SHA-256 of the file, computed
 * at start) and a five-minute cache.  The shell, its assets and the
 * badges hold no job data and are always public.
 *
 * Access: with read_token configured, every read of job data needs the
 * read or the admin token, as "Authorization: Bearer T" or the cookie
 * sp_token that POST /api/login sets (HttpOnly, SameSite=Strict; Secure
 * over TLS).  The cookie holds SHA-256("stagepipe-ui\n" T) in hex, not the
 * token.  Tokens are compared as SHA-256 digests with CRYPTO_memcmp, so the
 * time taken says nothing about either.  A mutating call (api.c) accepts
 * the admin token as Bearer or as the cookie, and with the cookie only
 * when the request also has "X-Stagepipe: 1" — a header a cross-site form
 * cannot send.
 *
 * GET /api/events polls the store (sp_store_job_changes, one indexed
 * query) once a second and sends `event: jobs` with the ids of the jobs
 * that changed, the store's rev as the event id (Last-Event-ID resumes);
 * polling the store, not a counter in this process, sees changes made by
 * any writer.  It shares the SSE cap with the log streams and, like them,
 * looks at the stop flag every 250 ms.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"
#include "core/git/giturl.h"
#include "core/server/http_internal.h"

#define COOKIE "sp_token"
#define COOKIE_MAX_AGE (7 * 24 * 3600)
#define SESSION_SALT "stagepipe-ui\n"
#define LOGIN_BODY_MAX 4096
#define SP_UI_LOGIN_LOG_MAX 5
#define ASSET_MAX_AGE "public, max-age=300"
#define EVENTS_POLL_MS 1000
#define EVENTS_SLEEP_MS 250
#define EVENTS_KEEPALIVE_S 15
#define EVENTS_BATCH 200
#define BRANCHES_MAX 50

enum ui_op {
	UI_NONE,
	UI_SHELL,
	UI_ASSET,
	UI_BADGE,
	UI_REPOS,
	UI_EVENTS,
	UI_SESSION,
	UI_LOGIN,
	UI_LOGOUT,
};

static enum ui_op op_of(const char *url)
{
	if (!strcmp(url, "/") || !strcmp(url, "/agents") || !strcmp(url, "/repos"))
		return UI_SHELL;
	if (!strncmp(url, "/ui/", 4))
		return UI_ASSET;
	if (!strncmp(url, "/badge/", 7))
		return UI_BADGE;
	if (!strcmp(url, "/api/repos"))
		return UI_REPOS;
	if (!strcmp(url, "/api/events"))
		return UI_EVENTS;
	if (!strcmp(url, "/api/session"))
		return UI_SESSION;
	if (!strcmp(url, "/api/login"))
		return UI_LOGIN;
	if (!strcmp(url, "/api/logout"))
		return UI_LOGOUT;
	return UI_NONE;
}

static const char *route_name(enum ui_op op)
{
	switch (op) {
	/* few names: the metrics' tables are fixed (metrics.c) */
	case UI_SHELL:
	case UI_ASSET: return "ui";
	case UI_BADGE: return "badge";
	case UI_REPOS: return "api_repos";
	case UI_EVENTS: return "sse_events";
	case UI_SESSION:
	case UI_LOGIN:
	case UI_LOGOUT: return "api_session";
	case UI_NONE:
	default: return "other";
	}
}

bool sp_ui_owns(const char *url)
{
	return op_of(url) != UI_NONE;
}

/* ---- pure helpers ---------------------------------------------------------- */

bool sp_ui_token_eq(const char *want, const char *got, size_t got_len)
{
	unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
	bool eq;

	if (!want || !got)
		return false;
	SHA256((const unsigned char *)want, strlen(want), a);
	SHA256((const unsigned char *)got, got_len, b);
	eq = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
	OPENSSL_cleanse(b, sizeof(b));
	return eq;
}

void sp_ui_session_value(const char *token, char out[65])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	char *salted = sp_xasprintf(SESSION_SALT "%s", token);
	size_t i;

	SHA256((const unsigned char *)salted, strlen(salted), d);
	OPENSSL_cleanse(salted, strlen(salted));
	free(salted);
	for (i = 0; i < sizeof(d); i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	out[64] = '\0';
}

bool sp_ui_cookie_find(const char *header, const char *name, const char **val, size_t *len)
{
	size_t nlen = strlen(name);
	const char *p = header;

	*val = NULL;
	*len = 0;
	while (p && *p) {
		const char *end;
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (!end)
			end = p + strlen(p);
		if ((size_t)(end - p) > nlen && !strncmp(p, name, nlen) && p[nlen] == '=') {
			const char *v = p + nlen + 1, *e = end;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e - v >= 2 && *v == '"' && e[-1] == '"') {
				v++;
				e--;
			}
			*val = v;
			*len = (size_t)(e - v);
			return true;
		}
		p = *end ? end + 1 : NULL;
	}
	return false;
}

/* Digits into *v (at most 2^50); the first byte after them in *end. */
static bool parse_u64(const char *s, const char **end, uint64_t *v)
{
	*v = 0;
	if (!isdigit((unsigned char)*s))
		return false;
	for (; isdigit((unsigned char)*s); s++) {
		*v = *v * 10 + (uint64_t)(*s - '0');
		if (*v > ((uint64_t)1 << 50))
			return false;
	}
	*end = s;
	return true;
}

int sp_ui_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
	const char *p;
	uint64_t a, b;

	*from = 0;
	*to = size ? size - 1 : 0;
	if (!h || strncmp(h, "bytes=", 6))
		return 0;
	p = h + 6;
	while (*p == ' ')
		p++;
	if (*p == '-') {
		/* the last N bytes */
		if (!parse_u64(p + 1, &p, &b) || *p)
			return 0;
		if (b == 0)
			return -1;
		if (size == 0)
			return 0;  /* nothing to send a part of: the whole (empty) file */
		*from = b >= size ? 0 : size - b;
		return 1;
	}
	if (!parse_u64(p, &p, &a) || *p != '-')
		return 0;
	p++;
	if (!*p) {
		if (a >= size)
			return -1;
		*from = a;
		return 1;
	}
	if (!parse_u64(p, &p, &b) || *p || b < a)
		return 0;  /* invalid, or several ranges: ignored (RFC 9110 14.2) */
	if (a >= size)
		return -1;
	*from = a;
	*to = b >= size ? size - 1 : b;
	return 1;
}

const char *sp_ui_content_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".html", "text/html; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".json", "application/json" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	if (dot && !strchr(dot, '/'))
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (!strcasecmp(dot, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

const struct sp_ui_asset *sp_ui_asset_find(const struct sp_ui_asset *table, const char *path)
{
	for (; table && table->path; table++)
		if (!strcmp(table->path, path))
			return table;
	return NULL;
}

static void xml_escape(struct sp_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': sp_buf_addstr(b, "&amp;"); break;
		case '<': sp_buf_addstr(b, "&lt;"); break;
		case '>': sp_buf_addstr(b, "&gt;"); break;
		case '"': sp_buf_addstr(b, "&quot;"); break;
		case '\'': sp_buf_addstr(b, "&#39;"); break;
		default:
			/* control characters are not XML 1.0 */
			if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n')
				sp_buf_addch(b, '?');
			else
				sp_buf_addch(b, *s);
		}
	}
}

/* Width of text in 11 px Verdana, roughly (shields.io draws the same). */
static int text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += strchr("ijlt.:,;!|' ", *s) ? 4 : strchr("mwMW", *s) ? 10 : 7;
	return w;
}

char *sp_ui_badge_svg(const char *title, const char *state)
{
	static const struct { const char *state, *text, *color; } looks[] = {
		{ "passed", "passed", "#4c1" },
		{ "failed", "failed", "#e05d44" },
		{ "error", "error", "#9f3a38" },
		{ "running", "running", "#007ec6" },
		{ "queued", "queued", "#007ec6" },
		{ "cancelled", "cancelled", "#9f9f9f" },
		{ "skipped", "skipped", "#9f9f9f" },
	};
	const char *label = "stagepipe", *text = "no builds", *color = "#9f9f9f";
	struct sp_buf b = SP_BUF_INIT;
	int lw, tw, w;
	size_t i;

	for (i = 0; state && i < sizeof(looks) / sizeof(looks[0]); i++)
		if (!strcmp(looks[i].state, state)) {
			text = looks[i].text;
			color = looks[i].color;
		}
	lw = text_width(label) + 10;
	tw = text_width(text) + 10;
	w = lw + tw;
	sp_buf_addf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"20\" "
		    "role=\"img\" aria-label=\"%s: %s\">", w, label, text);
	sp_buf_addstr(&b, "<title>");
	if (title && *title) {
		xml_escape(&b, title);
		sp_buf_addstr(&b, ": ");
	}
	sp_buf_addf(&b, "%s</title>", text);
	sp_buf_addf(&b, "<linearGradient id=\"s\" x2=\"0\" y2=\"100%%\"><stop offset=\"0\" "
		    "stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" "
		    "stop-opacity=\".1\"/></linearGradient><clipPath id=\"r\"><rect width=\"%d\" "
		    "height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>", w);
	sp_buf_addf(&b, "<g clip-path=\"url(#r)\"><rect width=\"%d\" height=\"20\" "
		    "fill=\"#555\"/><rect x=\"%d\" width=\"%d\" height=\"20\" fill=\"%s\"/>"
		    "<rect width=\"%d\" height=\"20\" fill=\"url(#s)\"/></g>", lw, lw, tw, color, w);
	sp_buf_addf(&b, "<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,"
		    "DejaVu Sans,sans-serif\" font-size=\"11\">"
		    "<text x=\"%d\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">%s</text>"
		    "<text x=\"%d\" y=\"14\">%s</text>"
		    "<text x=\"%d\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">%s</text>"
		    "<text x=\"%d\" y=\"14\">%s</text></g></svg>\n",
		    lw / 2, label, lw / 2, label, lw + tw / 2, text, lw + tw / 2, text);
	return sp_buf_detach(&b, NULL);
}

static const char *jstr(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void copy_field(cJSON *to, const char *name, const cJSON *from, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);

	cJSON_AddItemToObject(to, name, v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
}

int sp_ui_repos_json(struct sp_server *srv, cJSON **out, struct sp_error *err)
{
	const struct sp_server_config *cfg = srv->cfg;
	cJSON *root = cJSON_CreateObject(), *repos = cJSON_AddArrayToObject(root, "repos");
	size_t i;
	int rc = 0;

	*out = NULL;
	for (i = 0; i < cfg->nrepos; i++) {
		const struct sp_repo_config *rc_ = &cfg->repos[i];
		struct sp_giturl u;
		struct sp_error uerr = SP_ERROR_INIT;
		cJSON *o = cJSON_CreateObject(), *list = NULL, *arr;
		const cJSON *row;

		cJSON_AddItemToArray(repos, o);
		cJSON_AddStringToObject(o, "name", rc_->name);
		cJSON_AddStringToObject(o, "forge", sp_forge_name(rc_->forge));
		if (sp_giturl_parse(&u, rc_->url, &uerr) == 0) {
			cJSON_AddStringToObject(o, "url_display", u.display);
			sp_giturl_release(&u);
		} else {
			cJSON_AddNullToObject(o, "url_display");
		}
		arr = cJSON_AddArrayToObject(o, "branches");
		if ((rc = sp_store_branches(srv->store, rc_->name, NULL, BRANCHES_MAX, &list,
					    err)) < 0)
			goto fail;
		cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(list, "branches")) {
			cJSON *b = cJSON_CreateObject();
			copy_field(b, "branch", row, "branch");
			copy_field(b, "job", row, "id");
			copy_field(b, "state", row, "state");
			copy_field(b, "sha", row, "sha");
			copy_field(b, "title", row, "title");
			copy_field(b, "author", row, "author");
			copy_field(b, "event", row, "event");
			copy_field(b, "created", row, "created");
			copy_field(b, "finished", row, "finished");
			copy_field(b, "seconds", row, "seconds");
			copy_field(b, "tests", row, "tests");
			copy_field(b, "coverage", row, "coverage");
			cJSON_AddItemToArray(arr, b);
		}
		cJSON_Delete(list);
	}
	*out = root;
	return 0;
fail:
	cJSON_Delete(root);
	return rc;
}

/* ---- assets and access ----------------------------------------------------- */

void sp_ui_init(struct sp_http *h)
{
	const struct sp_ui_asset *a;
	size_t i, n = 0;

	for (a = sp_ui_assets; a->path; a++)
		n++;
	h->nassets = n;
	h->etags = sp_xcalloc(n ? n : 1, sizeof(*h->etags));
	for (i = 0; i < n; i++) {
		unsigned char d[SHA256_DIGEST_LENGTH];
		size_t k;

		SHA256(sp_ui_assets[i].data, (size_t)(sp_ui_assets[i].end - sp_ui_assets[i].data),
		       d);
		h->etags[i][0] = '"';
		for (k = 0; k < 8; k++)
			snprintf(&h->etags[i][1 + 2 * k], 3, "%02x", d[k]);
		h->etags[i][17] = '"';
		h->etags[i][18] = '\0';
	}
	atomic_init(&h->login_sec, 0);
	atomic_init(&h->login_n, 0);
}

void sp_ui_release(struct sp_http *h)
{
	if (!h)
		return;
	free(h->etags);
	h->etags = NULL;
	h->nassets = 0;
}

/* The token of "Authorization: Bearer T" (borrowed), or NULL. */
static const char *bearer(struct sp_req *r)
{
	const char *auth = sp_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);

	if (!auth || strncasecmp(auth, "Bearer ", 7))
		return NULL;
	auth += 7;
	while (*auth == ' ')
		auth++;
	return auth;
}

/* Whether the cookie value (64 hex) is the session value of token. */
static bool cookie_is(const char *token, const char *val, size_t len)
{
	char want[65];
	bool eq;

	if (!token)
		return false;
	sp_ui_session_value(token, want);
	eq = sp_ui_token_eq(want, val, len);
	OPENSSL_cleanse(want, sizeof(want));
	return eq;
}

void sp_ui_access_of(struct sp_req *r, struct sp_ui_access *a)
{
	const struct sp_server_config *cfg = r->h->srv->cfg;
	const char *tok = bearer(r), *val = NULL;
	const char *cookies = sp_http_header(r, MHD_HTTP_HEADER_COOKIE);
	size_t len = 0;
	bool admin_bearer = false, admin_cookie = false, read_bearer = false;
	bool read_cookie = false;

	memset(a, 0, sizeof(*a));
	a->read_public = !cfg->read_token;
	if (tok) {
		admin_bearer = sp_ui_token_eq(cfg->admin_token, tok, strlen(tok));
		read_bearer = sp_ui_token_eq(cfg->read_token, tok, strlen(tok));
	}
	if (cookies && sp_ui_cookie_find(cookies, COOKIE, &val, &len) && len) {
		admin_cookie = cookie_is(cfg->admin_token, val, len);
		read_cookie = cookie_is(cfg->read_token, val, len);
	}
	a->admin = admin_bearer || admin_cookie;
	a->admin_cookie = admin_cookie && !admin_bearer;
	a->read = a->read_public || a->admin || read_bearer || read_cookie;
}

unsigned int sp_ui_read_check(struct sp_req *r)
{
	struct sp_ui_access a;

	if (!r->h->srv->cfg->read_token)
		return 0;
	sp_ui_access_of(r, &a);
	return a.read ? 0 : MHD_HTTP_UNAUTHORIZED;
}

unsigned int sp_ui_admin_check(struct sp_req *r, const char **why)
{
	struct sp_ui_access a;
	const char *x;

	if (!r->h->srv->cfg->admin_token) {
		*why = "admin token not configured";
		return MHD_HTTP_FORBIDDEN;
	}
	sp_ui_access_of(r, &a);
	if (!a.admin) {
		*why = "admin token required";
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (a.admin_cookie) {
		x = sp_http_header(r, "X-Stagepipe");
		if (!x || strcmp(x, "1")) {
			*why = "a call carried by the session cookie needs the header X-Stagepipe: 1";
			return MHD_HTTP_FORBIDDEN;
		}
	}
	*why = NULL;
	return 0;
}

enum MHD_Result sp_ui_unauthorized(struct sp_req *r, const char *why)
{
	struct MHD_Response *resp;
	cJSON *j = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(j, "error", why);
	text = sp_xjson_print(j);
	cJSON_Delete(j);
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	free(text);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				"Bearer realm=\"stagepipe\"");
	return sp_http_reply(r, MHD_HTTP_UNAUTHORIZED, resp);
}

/* ---- answers ----------------------------------------------------------------- */

static enum MHD_Result reply_static(struct sp_req *r, const struct sp_ui_asset *a,
				    const char *etag, const char *cache, const char *ctype)
{
	struct MHD_Response *resp;
	const char *inm = etag ? sp_http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH) : NULL;
	unsigned int status = MHD_HTTP_OK;

	if (inm && (strstr(inm, etag) || !strcmp(inm, "*"))) {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		/* the bytes live in the binary: no copy */
		resp = MHD_create_response_from_buffer((size_t)(a->end - a->data),
						       (void *)(uintptr_t)a->data,
						       MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	}
	if (!resp)
		abort();  /* out of memory, as xalloc */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
	if (etag)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	return sp_http_reply(r, status, resp);
}

enum MHD_Result sp_ui_shell(struct sp_req *r)
{
	static const char none[] =
		"<!doctype html><meta charset=utf-8><title>stagepipe</title>"
		"<p>This stagepipe was built without its web UI (web/ was empty). "
		"The API is at <a href=\"/api/jobs\">/api/jobs</a>.</p>\n";
	static const struct sp_ui_asset fallback = {
		"index.html", (const unsigned char *)none,
		(const unsigned char *)none + sizeof(none) - 1,
	};
	const struct sp_ui_asset *a = sp_ui_asset_find(sp_ui_assets, "index.html");
	struct MHD_Response *resp;

	if (!a)
		a = &fallback;
	resp = MHD_create_response_from_buffer((size_t)(a->end - a->data),
					       (void *)(uintptr_t)a->data, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		abort();
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'self'; img-src 'self' data:; "
				"style-src 'self' 'unsafe-inline'; object-src 'none'; "
				"base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
	return sp_http_reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result do_asset(struct sp_req *r)
{
	const char *path = r->url + 4;
	const struct sp_ui_asset *a;

	if (!strcmp(path, "index.html") || !(a = sp_ui_asset_find(sp_ui_assets, path)))
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	return reply_static(r, a, r->h->etags ? r->h->etags[a - sp_ui_assets] : NULL,
			    ASSET_MAX_AGE, sp_ui_content_type(path));
}

static enum MHD_Result reply_svg(struct sp_req *r, unsigned int status, char *svg)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(svg), svg, MHD_RESPMEM_MUST_COPY);
	free(svg);
	if (!resp)
		abort();
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "image/svg+xml");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'none'");
	return sp_http_reply(r, status, resp);
}

/* /badge/{repo}/{branch}.svg — libmicrohttpd hands the path percent-decoded,
 * so a branch "a/b" may come as "a%2Fb" or raw. */
static enum MHD_Result do_badge(struct sp_req *r)
{
	struct sp_error err = SP_ERROR_INIT;
	const char *rest = r->url + 7, *slash = strchr(rest, '/');
	char *repo = NULL, *branch = NULL, *title = NULL, q[600];
	const struct sp_repo_config *rc;
	const cJSON *row;
	cJSON *list = NULL;
	size_t blen;
	enum MHD_Result ret;

	if (!slash || slash == rest || (blen = strlen(slash + 1)) <= 4 ||
	    strcmp(slash + 1 + blen - 4, ".svg"))
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND,
					   "badges are /badge/REPO/BRANCH.svg");
	repo = sp_xstrndup(rest, (size_t)(slash - rest));
	branch = sp_xstrndup(slash + 1, blen - 4);
	title = sp_xasprintf("%s %s", repo, branch);
	if (!(rc = sp_server_config_repo(r->h->srv->cfg, repo))) {
		ret = reply_svg(r, MHD_HTTP_NOT_FOUND, sp_ui_badge_svg(title, NULL));
		goto out;
	}
	if (sp_store_branches(r->h->srv->store, rc->name, branch, 1, &list, &err) < 0) {
		sp_log_error("api.store", "route=badge error=%s",
			     sp_log_quote(err.msg, q, sizeof(q)));
		ret = sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store unavailable");
		goto out;
	}
	row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "branches"), 0);
	ret = reply_svg(r, MHD_HTTP_OK, sp_ui_badge_svg(title, row ? jstr(row, "state") : NULL));
out:
	cJSON_Delete(list);
	free(title);
	free(branch);
	free(repo);
	return ret;
}

static enum MHD_Result do_repos(struct sp_req *r)
{
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = NULL;
	char q[600];

	if (sp_ui_repos_json(r->h->srv, &j, &err) < 0) {
		sp_log_error("api.store", "route=%s error=%s", r->route,
			     sp_log_quote(err.msg, q, sizeof(q)));
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store unavailable");
	}
	return sp_http_reply_json(r, MHD_HTTP_OK, j);
}

static enum MHD_Result do_session(struct sp_req *r)
{
	struct sp_ui_access a;
	cJSON *j = cJSON_CreateObject();

	sp_ui_access_of(r, &a);
	cJSON_AddBoolToObject(j, "read", a.read);
	cJSON_AddBoolToObject(j, "admin", a.admin);
	cJSON_AddBoolToObject(j, "read_public", a.read_public);
	cJSON_AddBoolToObject(j, "admin_configured", r->h->srv->cfg->admin_token != NULL);
	return sp_http_reply_json(r, MHD_HTTP_OK, j);
}

static bool secure_cookie(const struct sp_server_config *cfg)
{
	return cfg->tls_cert || (cfg->public_url && !strncmp(cfg->public_url, "https://", 8));
}

static enum MHD_Result reply_cookie(struct sp_req *r, const char *value, int max_age)
{
	struct MHD_Response *resp;
	char *c;

	c = sp_xasprintf(COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s", value,
			 max_age, secure_cookie(r->h->srv->cfg) ? "; Secure" : "");
	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, c);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	OPENSSL_cleanse(c, strlen(c));
	free(c);
	return sp_http_reply(r, MHD_HTTP_NO_CONTENT, resp);
}

/* Failed logins are logged, but at most SP_UI_LOGIN_LOG_MAX a second. */
static bool login_log_ok(struct sp_http *h)
{
	long long now = (long long)time(NULL);

	if (atomic_exchange(&h->login_sec, now) != now)
		atomic_store(&h->login_n, 0);
	return atomic_fetch_add(&h->login_n, 1) < SP_UI_LOGIN_LOG_MAX;
}

static enum MHD_Result do_login(struct sp_req *r)
{
	const struct sp_server_config *cfg = r->h->srv->cfg;
	cJSON *body = cJSON_ParseWithLength(r->body.data, r->body.len);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "token");
	const char *tok = cJSON_IsString(t) ? t->valuestring : NULL;
	const char *which = NULL;
	char value[65];
	enum MHD_Result ret;

	if (!tok) {
		ret = sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
					  "body must be {\"token\": \"...\"}");
		goto out;
	}
	/* both compared, whatever the first gave: the time says nothing */
	if (sp_ui_token_eq(cfg->admin_token, tok, strlen(tok)))
		which = "admin";
	if (sp_ui_token_eq(cfg->read_token, tok, strlen(tok)) && !which)
		which = "read";
	if (!which) {
		if (login_log_ok(r->h))
			sp_log_info("ui.login", "ok=false");
		ret = sp_ui_unauthorized(r, "unknown token");
		goto out;
	}
	sp_ui_session_value(tok, value);
	sp_log_info("ui.login", "ok=true access=%s", which);
	ret = reply_cookie(r, value, COOKIE_MAX_AGE);
	OPENSSL_cleanse(value, sizeof(value));
out:
	/* the token is wiped from the body and the tree before they are freed */
	if (tok)
		OPENSSL_cleanse(t->valuestring, strlen(t->valuestring));
	if (r->body.len)
		OPENSSL_cleanse(r->body.data, r->body.len);
	cJSON_Delete(body);
	return ret;
}

/* ---- GET /api/events -------------------------------------------------------- */

struct sp_ui_events {
	struct sp_http *h;
	int64_t rev;                 /* changes after this one are not sent yet */
	struct sp_sse_out out;
	int64_t last_poll_ms;        /* the store was last looked at */
	bool poll_now;
};

struct sp_ui_events *sp_ui_events_new(struct sp_http *h, int64_t since)
{
	struct sp_ui_events *e = sp_xcalloc(1, sizeof(*e));
	struct sp_error err = SP_ERROR_INIT;
	int64_t now_rev = 0;
	size_t n;

	e->h = h;
	sp_sse_out_init(&e->out);
	/* a rev past the store's (another database since) starts from now */
	if (sp_store_job_changes(h->srv->store, -1, NULL, 0, &n, &now_rev, &err) < 0)
		now_rev = since > 0 ? since : 0;
	e->rev = since >= 0 && since <= now_rev ? since : now_rev;
	e->poll_now = since >= 0 && since < now_rev;
	sp_buf_addstr(&e->out.buf, "retry: 2000\n: stagepipe job changes\n\n");
	e->last_poll_ms = e->out.last_ms;
	atomic_fetch_add(&h->sse_streams, 1);
	return e;
}

static void events_poll(struct sp_ui_events *e)
{
	struct sp_error err = SP_ERROR_INIT;
	int64_t ids[EVENTS_BATCH], last = e->rev;
	size_t n = 0, i;

	e->last_poll_ms = sp_clock_ms();
	e->poll_now = false;
	if (sp_store_job_changes(e->h->srv->store, e->rev, ids, EVENTS_BATCH, &n, &last,
				 &err) < 0 || !n)
		return;  /* a store error: the next poll tries again */
	sp_buf_addf(&e->out.buf, "id: %lld\nevent: jobs\ndata: {\"changed\":[", (long long)last);
	for (i = 0; i < n; i++)
		sp_buf_addf(&e->out.buf, "%s%lld", i ? "," : "", (long long)ids[i]);
	sp_buf_addstr(&e->out.buf, "]}\n\n");
	e->rev = last;
	e->poll_now = n == EVENTS_BATCH;  /* more are waiting */
}

ssize_t sp_ui_events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sp_ui_events *e = cls;
	struct timespec ts = { 0, EVENTS_SLEEP_MS * 1000000L };

	(void)pos;
	for (;;) {
		size_t n = sp_sse_out_take(&e->out, buf, max);

		if (n)
			return (ssize_t)n;
		if (atomic_load(&e->h->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (e->poll_now || sp_clock_ms() - e->last_poll_ms >= EVENTS_POLL_MS) {
			events_poll(e);
			if (e->out.buf.len)
				continue;
		}
		if (sp_sse_out_keepalive(&e->out, EVENTS_KEEPALIVE_S * 1000))
			continue;
		nanosleep(&ts, NULL);
	}
}

void sp_ui_events_free(void *cls)
{
	struct sp_ui_events *e = cls;

	if (!e)
		return;
	atomic_fetch_sub(&e->h->sse_streams, 1);
	sp_sse_out_release(&e->out);
	free(e);
}

static enum MHD_Result do_events(struct sp_req *r)
{
	struct MHD_Response *resp;
	struct sp_ui_events *e;
	const char *from = sp_http_header(r, "Last-Event-ID");
	int64_t since = -1;

	if (!from || !*from)
		from = sp_http_arg(r, "since");
	if (from && *from) {
		const char *end;
		uint64_t v;
		if (!parse_u64(from, &end, &v) || *end)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
						   "Last-Event-ID (or since) must be a number");
		since = (int64_t)v;
	}
	/* the same cap as the live logs: a stream holds a thread and a connection;
	 * a place is reserved, then handed to the stream (which counts itself) */
	if (atomic_fetch_add(&r->h->sse_streams, 1) >= SP_HTTP_SSE_MAX) {
		atomic_fetch_sub(&r->h->sse_streams, 1);
		sp_log_warn("http.busy", "route=sse_events streams=%d", SP_HTTP_SSE_MAX);
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
					   "too many live streams");
	}
	e = sp_ui_events_new(r->h, since);
	atomic_fetch_sub(&r->h->sse_streams, 1);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sp_ui_events_read, e,
						 sp_ui_events_free);
	if (!resp)
		abort();
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return sp_http_reply(r, MHD_HTTP_OK, resp);
}

/* ---- routing ------------------------------------------------------------------ */

enum MHD_Result sp_ui_begin(struct sp_req *r)
{
	enum ui_op op = op_of(r->url);
	bool is_get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");

	r->route = route_name(op);
	r->body_max = 0;
	if (op == UI_LOGIN || op == UI_LOGOUT) {
		if (strcmp(r->method, "POST"))
			return sp_http_reply_405(r, "POST");
		r->body_max = LOGIN_BODY_MAX;
		if (!sp_http_length_ok(r))
			return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body over %zu bytes",
						   r->body_max);
		return MHD_YES;
	}
	if (!is_get)
		return sp_http_reply_405(r, "GET");
	if ((op == UI_REPOS || op == UI_EVENTS) && sp_ui_read_check(r))
		return sp_ui_unauthorized(r, "read token required");
	return MHD_YES;
}

enum MHD_Result sp_ui_finish(struct sp_req *r)
{
	switch (op_of(r->url)) {
	case UI_SHELL:
		return sp_ui_shell(r);
	case UI_ASSET:
		return do_asset(r);
	case UI_BADGE:
		return do_badge(r);
	case UI_REPOS:
		return do_repos(r);
	case UI_EVENTS:
		return do_events(r);
	case UI_SESSION:
		return do_session(r);
	case UI_LOGIN:
		return do_login(r);
	case UI_LOGOUT:
		return reply_cookie(r, "", 0);
	case UI_NONE:
	default:
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	}
}
