/*
 * client.c — the HTTP side of docs/agent-protocol.md; see client.h.
 *
 * Every call goes through a multi handle holding the client's one easy
 * handle: curl_multi_poll sleeps in the kernel until the socket or a timer
 * needs curl (no busy polling, an idle long-poll costs nothing), and
 * curl_multi_wakeup from another thread ends that sleep at once — which
 * is how a drain interrupts the lease long-poll.  The easy handle is kept
 * between calls, so its connection (and TLS session) is reused: a job's
 * heartbeats do not make a new connection each.
 *
 * Nothing here prints the token: no CURLOPT_VERBOSE, no header in an
 * error message; the header strings are wiped in sp_agent_client_free.
 */
#include "core/agent/client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"

/* The longest sleep in curl_multi_poll when curl has no earlier timer: an
 * interrupt wakes it anyway, this is only a safety net. */
#define POLL_MS 10000

struct sp_agent_client {
	char **bases;              /* the servers, no trailing '/' each */
	size_t nbases;
	atomic_size_t own_cur;     /* the cursor when none is shared */
	atomic_size_t *cur;        /* index of the server the next call goes to */
	char *ca_file;
	CURL *easy;
	CURLM *multi;
	struct curl_slist *json_hdrs, *ndjson_hdrs, *octet_hdrs;
	atomic_bool interrupted;
	struct sp_buf body;        /* the answer being read; wiped after each call */
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
};

static void wipe_slist(struct curl_slist *l)
{
	for (; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
}

static struct curl_slist *headers(const char *auth, const char *ctype, bool *ok)
{
	struct curl_slist *l = NULL, *n;
	char *ct = sp_xasprintf("Content-Type: %s", ctype);
	const char *h[] = { auth, ct, "Accept: application/json",
			    /* no 100-continue round trip for bodies over 1 KiB */
			    "Expect:", NULL };
	size_t i;

	for (i = 0; h[i]; i++) {
		n = curl_slist_append(l, h[i]);
		if (!n) {
			*ok = false;
			break;
		}
		l = n;
	}
	free(ct);
	return l;
}

int sp_agent_client_new(struct sp_agent_client **out, const struct sp_agent_client_opts *o,
			struct sp_error *err)
{
	struct sp_agent_client *c = sp_xcalloc(1, sizeof(*c));
	const char *p = o->server, *end;
	size_t n, alloc = 0;
	char *auth = NULL;
	bool ok = true;
	int rc = 0;

	*out = NULL;
	for (;;) {  /* "URL[,URL...]" */
		end = strchr(p, ',');
		n = end ? (size_t)(end - p) : strlen(p);
		while (n && p[n - 1] == '/')
			n--;
		if (n) {
			SP_GROW(c->bases, alloc, c->nbases + 1);
			c->bases[c->nbases++] = sp_xstrndup(p, n);
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (!c->nbases) {
		rc = sp_error_set(err, SP_ECONFIG, "no server URL");
		goto cleanup;
	}
	c->ca_file = o->ca_file ? sp_xstrdup(o->ca_file) : NULL;
	atomic_init(&c->own_cur, 0);
	c->cur = o->cursor ? o->cursor : &c->own_cur;
	atomic_init(&c->interrupted, false);
	sp_buf_init(&c->body, 0);
	c->easy = curl_easy_init();
	c->multi = curl_multi_init();
	if (!c->easy || !c->multi) {
		rc = sp_error_set(err, SP_ERROR, "cannot start libcurl");
		goto cleanup;
	}
	auth = sp_xasprintf("Authorization: Bearer %s", o->token);
	c->json_hdrs = headers(auth, "application/json", &ok);
	c->ndjson_hdrs = headers(auth, "application/x-ndjson", &ok);
	c->octet_hdrs = headers(auth, "application/octet-stream", &ok);
	if (!ok) {
		rc = sp_error_set(err, SP_ERROR, "cannot start libcurl: out of memory");
		goto cleanup;
	}
	*out = c;
	c = NULL;  /* the caller's now */
cleanup:
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	sp_agent_client_free(c);
	return rc;
}

void sp_agent_client_free(struct sp_agent_client *c)
{
	if (!c)
		return;
	if (c->easy)
		curl_easy_cleanup(c->easy);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	wipe_slist(c->json_hdrs);
	wipe_slist(c->ndjson_hdrs);
	wipe_slist(c->octet_hdrs);
	curl_slist_free_all(c->json_hdrs);
	curl_slist_free_all(c->ndjson_hdrs);
	curl_slist_free_all(c->octet_hdrs);
	if (c->body.alloc)
		explicit_bzero(c->body.data, c->body.alloc);
	sp_buf_release(&c->body);
	for (size_t i = 0; i < c->nbases; i++)
		free(c->bases[i]);
	free(c->bases);
	free(c->ca_file);
	free(c);
}

void sp_agent_client_interrupt(struct sp_agent_client *c)
{
	atomic_store(&c->interrupted, true);
	(void)curl_multi_wakeup(c->multi);
}

/* ---- answers ---- */

void sp_agent_answer_release(struct sp_agent_answer *a)
{
	cJSON_Delete(a->json);
	a->json = NULL;
	a->status = 0;
}

void sp_agent_answer_parse(struct sp_agent_answer *a, long status, const char *body,
			   size_t len)
{
	cJSON *j = len ? cJSON_ParseWithLength(body, len) : NULL;

	a->status = status;
	a->json = NULL;
	if (cJSON_IsObject(j))
		a->json = j;
	else
		cJSON_Delete(j);
}

const char *sp_agent_answer_reason(const struct sp_agent_answer *a)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->json, "error");

	if (!cJSON_IsString(v))
		v = cJSON_GetObjectItemCaseSensitive(a->json, "reason");
	return cJSON_IsString(v) ? v->valuestring : "";
}

bool sp_agent_answer_bool(const struct sp_agent_answer *a, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a->json, key));
}

/* ---- the call ---- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct sp_agent_client *c = ud;
	size_t n = size * nmemb;

	if (c->body.len + n > SP_AGENT_ANSWER_MAX) {
		c->too_big = true;
		return 0;  /* CURLE_WRITE_ERROR */
	}
	(void)sp_buf_add(&c->body, ptr, n);
	return n;
}

static void wipe_body(struct sp_agent_client *c)
{
	if (c->body.alloc)
		explicit_bzero(c->body.data, c->body.len);
	sp_buf_reset(&c->body);
	/* a 1 MiB answer's buffer is not kept for the small ones after it */
	if (c->body.alloc > 64 * 1024) {
		explicit_bzero(c->body.data, c->body.alloc);
		sp_buf_release(&c->body);
	}
}

/* An upload's body, read from a file as libcurl asks for it. */
struct upload {
	int fd;
	int error;  /* errno of a failed read, 0 */
};

static size_t read_upload(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct upload *u = ud;
	ssize_t n;

	do
		n = read(u->fd, buf, size * nmemb);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		u->error = errno;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

static int post(struct sp_agent_client *c, const char *path, struct curl_slist *hdrs,
		const char *body, size_t len, struct upload *up, long timeout_s,
		struct sp_agent_answer *ans, struct sp_error *err);
static void next_server(struct sp_agent_client *c, size_t from, long status);

int sp_agent_client_post(struct sp_agent_client *c, const char *path, const char *ctype,
			 const char *body, size_t len, long timeout_s,
			 struct sp_agent_answer *ans, struct sp_error *err)
{
	return post(c, path, !strcmp(ctype, "application/x-ndjson") ? c->ndjson_hdrs : c->json_hdrs,
		    body, len, NULL, timeout_s, ans, err);
}

int sp_agent_client_upload(struct sp_agent_client *c, const char *path, int fd, uint64_t size,
			   long timeout_s, struct sp_agent_answer *ans, struct sp_error *err)
{
	struct upload up = { fd, 0 };
	int rc = post(c, path, c->octet_hdrs, NULL, (size_t)size, &up, timeout_s, ans, err);

	if (rc < 0 && up.error)
		sp_error_prefix(err, "reading the file to upload: %s", strerror(up.error));
	return rc;
}

static int post(struct sp_agent_client *c, const char *path, struct curl_slist *hdrs,
		const char *body, size_t len, struct upload *up, long timeout_s,
		struct sp_agent_answer *ans, struct sp_error *err)
{
	CURL *e = c->easy;
	CURLMsg *msg;
	CURLcode res = CURLE_OK;
	CURLMcode mc;
	size_t at = atomic_load(c->cur) % c->nbases;
	char *url = sp_xasprintf("%s%s", c->bases[at], path);
	bool added = false, done = false;
	long status = 0;
	int running = 0, left = 0, rc = 0;

	ans->status = 0;
	ans->json = NULL;
	if (atomic_load(&c->interrupted)) {
		rc = sp_error_set(err, SP_ECANCELLED, "interrupted");
		goto cleanup;
	}
	wipe_body(c);
	c->too_big = false;
	c->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	if (up) {
		/* the body comes from the file, never whole in memory */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_upload);
		curl_easy_setopt(e, CURLOPT_READDATA, up);
	} else {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
	}
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)SP_AGENT_CONNECT_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "stagepipe-agent/" SP_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);

	if ((mc = curl_multi_add_handle(c->multi, e)) != CURLM_OK) {
		rc = sp_error_set(err, SP_EENGINE, "libcurl: %s", curl_multi_strerror(mc));
		goto cleanup;
	}
	added = true;
	while (!done) {
		if (atomic_load(&c->interrupted)) {
			rc = sp_error_set(err, SP_ECANCELLED, "interrupted");
			goto cleanup;
		}
		mc = curl_multi_perform(c->multi, &running);
		if (mc != CURLM_OK) {
			rc = sp_error_set(err, SP_EENGINE, "libcurl: %s", curl_multi_strerror(mc));
			goto cleanup;
		}
		while ((msg = curl_multi_info_read(c->multi, &left))) {
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
				res = msg->data.result;
				done = true;
			}
		}
		if (done || !running) {
			done = true;
			break;
		}
		mc = curl_multi_poll(c->multi, NULL, 0, POLL_MS, NULL);
		if (mc != CURLM_OK && mc != CURLM_UNRECOVERABLE_POLL) {
			rc = sp_error_set(err, SP_EENGINE, "libcurl: %s", curl_multi_strerror(mc));
			goto cleanup;
		}
	}
	if (res != CURLE_OK) {
		if (c->too_big)
			rc = sp_error_set(err, SP_EENGINE, "the server's answer is larger than %d KiB",
					  SP_AGENT_ANSWER_MAX / 1024);
		else
			rc = sp_error_set(err, SP_EENGINE, "%s",
					  c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
		goto cleanup;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	sp_agent_answer_parse(ans, status, c->body.data, c->body.len);
cleanup:
	if (added)
		curl_multi_remove_handle(c->multi, e);
	wipe_body(c);
	free(url);
	if (rc == SP_EENGINE || (rc == 0 && (status == 502 || status == 503)))
		next_server(c, at, rc == 0 ? status : 0);
	return rc;
}

const char *sp_agent_client_server(const struct sp_agent_client *c)
{
	return c->bases[atomic_load(c->cur) % c->nbases];
}

/*
 * A call to server from failed: the next call (of every client sharing
 * the cursor) goes to the one after it.  Only the client that moves the
 * cursor logs: when a server dies, the clients that were using it all fail
 * and all see the cursor move once, not once each.
 */
static void next_server(struct sp_agent_client *c, size_t from, long status)
{
	char q1[300], q2[300];
	size_t to;

	if (c->nbases < 2)
		return;
	to = (from + 1) % c->nbases;
	if (!atomic_compare_exchange_strong(c->cur, &from, to))
		return;  /* another client moved on already */
	/* the URLs carry no user, password or query (checked by the command) */
	sp_log_info("agent.server_switched", "from=%s to=%s status=%ld",
		    sp_log_quote(c->bases[from], q1, sizeof(q1)),
		    sp_log_quote(c->bases[to], q2, sizeof(q2)), status);
}

/* ---- the lease ---- */

static char *str_dup(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) && *v->valuestring ? sp_xstrdup(v->valuestring) : NULL;
}

static bool int_of(const cJSON *j, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static bool hex40(const char *s)
{
	return strlen(s) == 40 && strspn(s, "0123456789abcdef") == 40;
}

static bool label_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n >= 1 && n <= 64 && !s[n];
}

static char *wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
	return NULL;
}

#define DAY_MS (24LL * 3600 * 1000)
/* Most secrets a lease may carry. */
#define LEASE_SECRETS_MAX 256

static bool secret_name_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");

	return n >= 1 && n <= 64 && !s[n] && !(s[0] >= '0' && s[0] <= '9') &&
	       strncmp(s, "STAGEPIPE_", 10) != 0;
}

/* "secrets": {NAME: value, ...} (absent: none) into l->secret_env. */
static int parse_secrets(struct sp_agent_lease *l, const cJSON *sec)
{
	const cJSON *it;
	size_t n = 0;

	if (!sec)
		return 0;
	if (!cJSON_IsObject(sec))
		return SP_ERROR;
	cJSON_ArrayForEach(it, sec)
		n++;
	if (n > LEASE_SECRETS_MAX)
		return SP_ERROR;
	l->secret_env = sp_xcalloc(n + 1, sizeof(*l->secret_env));
	cJSON_ArrayForEach(it, sec) {
		if (!it->string || !secret_name_ok(it->string) || !cJSON_IsString(it))
			return SP_ERROR;
		l->secret_env[l->nsecrets++] = sp_xasprintf("%s=%s", it->string, it->valuestring);
	}
	return 0;
}

int sp_agent_lease_parse(struct sp_agent_lease *l, const cJSON *j, struct sp_error *err)
{
	const cJSON *cred = cJSON_GetObjectItemCaseSensitive(j, "credentials");
	int64_t v;

	memset(l, 0, sizeof(*l));
	if (!cJSON_IsObject(j))
		return sp_error_set(err, SP_ERROR, "the lease is not a JSON object");
	if (!int_of(j, "job", 1, INT64_C(1) << 52, &l->job))
		return sp_error_set(err, SP_ERROR, "the lease has no job id");
	if (!int_of(j, "epoch", 1, INT64_C(1) << 52, &l->epoch)) {
		int rc = sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has no epoch",
				      l->job);
		l->job = 0;  /* without an epoch it cannot be given back */
		return rc;
	}
	l->attempt = int_of(j, "attempt", 1, 1000000, &v) ? (int)v : 1;
	l->ttl_ms = int_of(j, "ttl_ms", 1, DAY_MS, &v) ? (long)v : 30000;
	if (l->ttl_ms < 1000)
		l->ttl_ms = 1000;
	l->timeout_ms = int_of(j, "timeout_ms", 0, 365 * DAY_MS, &v) ? (long)v : 0;
	l->repo = str_dup(j, "repo");
	if (!l->repo)
		l->repo = sp_xstrdup("");
	l->repo_url = str_dup(j, "repo_url");
	l->ref = str_dup(j, "ref");
	l->sha = str_dup(j, "sha");
	l->event = str_dup(j, "event");
	l->event_ref = str_dup(j, "event_ref");
	l->pipeline = str_dup(j, "pipeline");
	l->job_label = str_dup(j, "job_label");
	if (!l->job_label)
		l->job_label = sp_xasprintf("srv-%" PRId64, l->job);
	if (cJSON_IsObject(cred)) {
		l->git_user = str_dup(cred, "user");
		l->git_token = str_dup(cred, "token");
	}
	if (parse_secrets(l, cJSON_GetObjectItemCaseSensitive(j, "secrets")) < 0)
		return sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has malformed "
				    "secrets", l->job);
	if (!l->repo_url)
		return sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has no repo_url",
				    l->job);
	if (!l->ref || l->ref[0] == '-')
		return sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has no valid ref",
				    l->job);
	if (l->sha && !hex40(l->sha))
		return sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has a malformed "
				    "sha", l->job);
	if (!label_ok(l->job_label))
		return sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has a malformed "
				    "job_label", l->job);
	if ((l->event && l->event[0] == '-') || (l->event_ref && l->event_ref[0] == '-') ||
	    (l->pipeline && l->pipeline[0] == '-') || l->repo_url[0] == '-')
		return sp_error_set(err, SP_ERROR, "the lease of job %" PRId64 " has a value "
				    "starting with '-'", l->job);
	return 0;
}

void sp_agent_lease_release(struct sp_agent_lease *l)
{
	size_t i;

	free(l->repo);
	l->repo_url = wipe_free(l->repo_url);
	free(l->ref);
	free(l->sha);
	free(l->event);
	free(l->event_ref);
	free(l->pipeline);
	free(l->job_label);
	wipe_free(l->git_user);
	wipe_free(l->git_token);
	for (i = 0; i < l->nsecrets; i++)
		wipe_free(l->secret_env[i]);
	free(l->secret_env);
	memset(l, 0, sizeof(*l));
}

/* ---- retry policy ---- */

long sp_agent_backoff_ms(int failures, uint32_t rnd)
{
	long base = SP_AGENT_BACKOFF_FIRST_MS;
	long spread;
	int i;

	for (i = 1; i < failures && base < SP_AGENT_BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > SP_AGENT_BACKOFF_MAX_MS)
		base = SP_AGENT_BACKOFF_MAX_MS;
	spread = base * 2 / 5;  /* -20 % .. +20 % */
	return base - base / 5 + (long)(rnd % (uint32_t)(spread + 1));
}
