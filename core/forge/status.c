/*
 * status.c — commit statuses sent back to the forge; see status.h.
 *
 * sp_status_request is pure: it checks what reaches a URL or a header (the
 * project's characters, the sha, the token's bytes) and builds the
 * request, so that the unit tests see exactly what would be sent.
 * sp_status_send hands that request to libcurl with short timeouts, TLS
 * verification left on, no redirects, http(s) only, and the answer kept
 * to 4 KiB.  The token lives only in the header strings, which are wiped
 * before they are freed; nothing here prints it (no CURLOPT_VERBOSE).
 */
#include "core/forge/status.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"
#include "core/git/giturl.h"

#define DESC_MAX 140          /* GitHub's limit for a status description */
#define ANSWER_MAX 4096       /* bytes of the forge's answer kept */
#define ANSWER_SHOWN 200      /* bytes of it put in an error message */
#define CONNECT_TIMEOUT 10L
#define TOTAL_TIMEOUT 30L

#ifndef SP_VERSION
#define SP_VERSION "dev"
#endif

const char *sp_status_forge_state(enum sp_forge f, enum sp_status_state s)
{
	bool gitlab = f == SP_FORGE_GITLAB;

	/* GitHub and Gitea have no "running" or "cancelled": a running job is
	 * still pending there, and a cancelled one did not succeed (error,
	 * not failure: the code was not found wanting). */
	switch (s) {
	case SP_STATUS_PENDING:
		return "pending";
	case SP_STATUS_RUNNING:
		return gitlab ? "running" : "pending";
	case SP_STATUS_SUCCESS:
		return "success";
	case SP_STATUS_FAILURE:
		return gitlab ? "failed" : "failure";
	case SP_STATUS_ERROR:
		return gitlab ? "failed" : "error";
	case SP_STATUS_CANCELLED:
		return gitlab ? "canceled" : "error";
	}
	return gitlab ? "failed" : "error";
}

/* 40 (SHA-1) or 64 (SHA-256) hex digits. */
static bool sha_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strspn(s, "0123456789abcdefABCDEF");
	return s[n] == '\0' && (n == 40 || n == 64);
}

/*
 * "owner/repo" (GitLab: "group/sub/project" or a numeric project id):
 * components of [A-Za-z0-9._-], none of them "." or "..", one slash for
 * GitHub and Gitea.
 */
static bool project_ok(enum sp_forge f, const char *p)
{
	size_t slashes = 0, len;
	const char *c;

	if (!p || !*p)
		return false;
	if (f == SP_FORGE_GITLAB && strspn(p, "0123456789") == strlen(p))
		return true;
	for (c = p; ; c += len + 1) {
		len = strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && !strncmp(c, "..", 2)))
			return false;
		if (c[len] == '\0')
			break;
		if (c[len] != '/')
			return false;
		slashes++;
	}
	return f == SP_FORGE_GITLAB ? slashes >= 1 : slashes == 1;
}

/* A token that can go in a header line: printable ASCII, no spaces. */
static bool token_ok(const char *t)
{
	const unsigned char *c;

	if (!t || !*t)
		return false;
	for (c = (const unsigned char *)t; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return false;
	return true;
}

/* The description cut to DESC_MAX bytes without splitting a UTF-8 sequence. */
static char *cut_description(const char *d)
{
	size_t n;

	if (!d)
		return sp_xstrdup("");
	n = strlen(d);
	if (n > DESC_MAX) {
		n = DESC_MAX;
		while (n > 0 && ((unsigned char)d[n] & 0xC0) == 0x80)
			n--;
	}
	return sp_xstrndup(d, n);
}

/* The API base without trailing slashes (a new string), or NULL. */
static char *api_base(const struct sp_status_target *t)
{
	const char *api = t->api;
	size_t n;

	if (!api || !*api) {
		if (t->forge == SP_FORGE_GITHUB)
			api = "https://api.github.com";
		else if (t->forge == SP_FORGE_GITLAB)
			api = "https://gitlab.com/api/v4";
		else
			return NULL;
	}
	n = strlen(api);
	while (n > 0 && api[n - 1] == '/')
		n--;
	return sp_xstrndup(api, n);
}

static bool http_url(const char *u)
{
	return !strncmp(u, "https://", 8) || !strncmp(u, "http://", 7);
}

int sp_status_request(const struct sp_status_target *t, const struct sp_status_msg *m,
		      char **url, struct sp_buf *body, char *hdrs[4], size_t *nhdrs,
		      struct sp_error *err)
{
	const char *forge = sp_forge_name(t->forge);
	char *api = NULL, *desc = NULL, *json = NULL, *project = NULL;
	cJSON *o = NULL;
	size_t n = 0;
	int rc = 0;

	*url = NULL;
	*nhdrs = 0;
	sp_buf_reset(body);
	api = api_base(t);
	if (!api) {
		rc = sp_error_set(err, SP_ECONFIG, "%s status: the forge's api URL is required", forge);
		goto cleanup;
	}
	if (!http_url(api)) {
		rc = sp_error_set(err, SP_ECONFIG, "%s status: the api URL must be http(s)", forge);
		goto cleanup;
	}
	if (!project_ok(t->forge, t->project)) {
		rc = sp_error_set(err, SP_ECONFIG, "%s status: bad project \"%.100s\" (want %s)",
				  forge, t->project ? t->project : "",
				  t->forge == SP_FORGE_GITLAB ? "group/project" : "owner/repo");
		goto cleanup;
	}
	if (!sha_ok(m->sha)) {
		rc = sp_error_set(err, SP_ECONFIG, "%s status: bad commit sha", forge);
		goto cleanup;
	}
	if (!token_ok(t->token)) {
		/* Never say what the token holds. */
		rc = sp_error_set(err, SP_ECONFIG, "%s status: %s", forge,
				  t->token && *t->token ? "the token has characters a header cannot carry"
				  : "no token");
		goto cleanup;
	}

	o = cJSON_CreateObject();
	if (!o)
		abort();  /* out of memory, as xalloc does */
	desc = cut_description(m->description);
	if (!cJSON_AddStringToObject(o, "state", sp_status_forge_state(t->forge, m->state)) ||
	    !cJSON_AddStringToObject(o, t->forge == SP_FORGE_GITLAB ? "name" : "context",
				     m->context && *m->context ? m->context : "stagepipe") ||
	    !cJSON_AddStringToObject(o, "description", desc) ||
	    (m->target_url && !cJSON_AddStringToObject(o, "target_url", m->target_url)))
		abort();
	json = sp_xjson_print(o);
	rc = sp_buf_addstr(body, json);
	if (rc) {
		rc = sp_error_set(err, rc, "%s status: the request body is over its limit", forge);
		goto cleanup;
	}

	switch (t->forge) {
	case SP_FORGE_GITHUB:
		*url = sp_xasprintf("%s/repos/%s/statuses/%s", api, t->project, m->sha);
		hdrs[n++] = sp_xasprintf("Authorization: Bearer %s", t->token);
		hdrs[n++] = sp_xstrdup("Accept: application/vnd.github+json");
		hdrs[n++] = sp_xstrdup("X-GitHub-Api-Version: 2022-11-28");
		break;
	case SP_FORGE_GITEA:
		*url = sp_xasprintf("%s/repos/%s/statuses/%s", api, t->project, m->sha);
		hdrs[n++] = sp_xasprintf("Authorization: token %s", t->token);
		hdrs[n++] = sp_xstrdup("Accept: application/json");
		break;
	case SP_FORGE_GITLAB: {
		/* The project path is one URL segment: "group/app" → "group%2Fapp".
		 * Only [A-Za-z0-9._-/] got here, so the encoding is fixed. */
		char *esc = curl_easy_escape(NULL, t->project, 0);

		if (!esc)
			abort();
		project = sp_xstrdup(esc);
		curl_free(esc);
		*url = sp_xasprintf("%s/projects/%s/statuses/%s", api, project, m->sha);
		hdrs[n++] = sp_xasprintf("PRIVATE-TOKEN: %s", t->token);
		hdrs[n++] = sp_xstrdup("Accept: application/json");
		break;
	}
	}
	hdrs[n++] = sp_xstrdup("Content-Type: application/json");
	*nhdrs = n;
cleanup:
	if (rc)
		sp_buf_reset(body);
	cJSON_Delete(o);
	free(json);
	free(desc);
	free(api);
	free(project);
	return rc;
}

/* ---- sending ---- */

struct answer {
	char data[ANSWER_MAX + 1];
	size_t len;
};

/* Keeps the first ANSWER_MAX bytes and swallows the rest. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct answer *a = ud;
	size_t n = size * nmemb, room = ANSWER_MAX - a->len;

	if (room > 0) {
		size_t k = n < room ? n : room;

		memcpy(a->data + a->len, ptr, k);
		a->len += k;
		a->data[a->len] = '\0';
	}
	return n;
}

/* The URL without user, password, query or fragment (a new string). */
static char *display_url(const char *url)
{
	CURLU *u = curl_url();
	char *out = NULL, *res;

	if (!u)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		return sp_xstrdup("(unparsable URL)");
	}
	res = sp_xstrdup(out);
	curl_free(out);
	curl_url_cleanup(u);
	return res;
}

/* At most ANSWER_SHOWN bytes of the answer, one printable line. */
static void shown_answer(const struct answer *a, char *out, size_t size)
{
	size_t n = a->len < ANSWER_SHOWN ? a->len : ANSWER_SHOWN, i;

	if (n >= size)
		n = size - 1;
	while (n > 0 && n < a->len && ((unsigned char)a->data[n] & 0xC0) == 0x80)
		n--;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a->data[i];

		out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	out[n] = '\0';
}

/* Answers that will not change however often they are asked again. */
static bool final_status(long code)
{
	return code == 400 || code == 401 || code == 403 || code == 404 || code == 422;
}

int sp_status_send(const struct sp_status_target *t, const struct sp_status_msg *m,
		   bool *retry, struct sp_error *err)
{
	char *url = NULL, *hdrs[4] = { NULL, NULL, NULL, NULL }, *shown = NULL;
	struct sp_buf body = SP_BUF_INIT;
	struct curl_slist *list = NULL;
	struct answer *ans = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	size_t nhdrs = 0, i;
	CURL *c = NULL;
	CURLcode res;
	long code = 0;
	int rc;

	*retry = false;
	rc = sp_status_request(t, m, &url, &body, hdrs, &nhdrs, err);
	if (rc)
		goto cleanup;
	shown = display_url(url);
	*retry = true;
	c = curl_easy_init();
	if (!c) {
		rc = sp_error_set(err, SP_EENGINE, "status to %s: cannot start libcurl", shown);
		goto cleanup;
	}
	for (i = 0; i < nhdrs; i++) {
		struct curl_slist *l = curl_slist_append(list, hdrs[i]);

		if (!l) {
			rc = sp_error_set(err, SP_EENGINE, "status to %s: out of memory", shown);
			goto cleanup;
		}
		list = l;
	}
	ans = sp_xcalloc(1, sizeof(*ans));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, TOTAL_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "stagepipe/" SP_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, ans);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	res = curl_easy_perform(c);
	if (res != CURLE_OK) {
		if (res == CURLE_URL_MALFORMAT || res == CURLE_UNSUPPORTED_PROTOCOL)
			*retry = false;
		rc = sp_error_set(err, SP_EENGINE, "status to %s: %s", shown,
				  errbuf[0] ? errbuf : curl_easy_strerror(res));
		goto cleanup;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		char what[ANSWER_SHOWN + 1];

		shown_answer(ans, what, sizeof(what));
		*retry = !final_status(code);
		rc = sp_error_set(err, SP_EENGINE, "status to %s: HTTP %ld%s%s", shown, code,
				  what[0] ? ": " : "", what);
		goto cleanup;
	}
	*retry = false;
	rc = 0;
cleanup:
	if (c)
		curl_easy_cleanup(c);
	curl_slist_free_all(list);
	for (i = 0; i < nhdrs; i++) {
		OPENSSL_cleanse(hdrs[i], strlen(hdrs[i]));
		free(hdrs[i]);
	}
	sp_buf_release(&body);
	free(ans);
	free(shown);
	free(url);
	return rc;
}

/* ---- project from a clone URL ---- */

char *sp_status_project_from_url(const char *url)
{
	struct sp_giturl u;
	char *path = NULL, *res = NULL, *p, *start;
	size_t n;

	if (!url || sp_giturl_parse(&u, url, NULL) != 0)
		return NULL;
	path = sp_xstrdup(u.path ? u.path : "");
	/* Trailing slashes, then ".git", then slashes again ("app.git/"). */
	n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		path[--n] = '\0';
	if (n >= 4 && !strcmp(path + n - 4, ".git"))
		path[n -= 4] = '\0';
	while (n > 0 && path[n - 1] == '/')
		path[--n] = '\0';
	start = path;
	if (u.kind == SP_GITURL_FILE) {
		/* A local path: its last two components. */
		p = strrchr(path, '/');
		if (!p)
			goto cleanup;
		*p = '\0';
		start = strrchr(path, '/');
		*p = '/';
		start = start ? start + 1 : path;
	} else {
		/* The whole path on the server (GitLab groups nest). */
		if (start[0] == '~')
			start += strcspn(start, "/");
		while (*start == '/')
			start++;
	}
	if (!*start || !strchr(start, '/') || start[0] == '/')
		goto cleanup;
	res = sp_xstrdup(start);
cleanup:
	free(path);
	sp_giturl_release(&u);
	return res;
}
