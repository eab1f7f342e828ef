/*
 * api.c — everything under the server that is not a webhook: the REST API
 * (jobs, cancel, retry, manual trigger), stage logs (whole file or live as
 * Server-Sent Events), /healthz, /readyz and /metrics.  The routes and
 * their answers are the table of the HTTP contract (docs/api.md).
 *
 * Logs are never loaded whole: a plain GET streams the log through a
 * content-reader callback (sp_logread: pread of this server's file, or
 * windows of the store's chunks with PostgreSQL, so any server answers
 * for any job; from a Range offset); an SSE stream follows the log the
 * same way, one event per line with the byte offset just
 * after the line as its id (so Last-Event-ID resumes without a gap), and
 * ends with `event: end` once the job is final and every byte is sent.
 * Readers in thread-per-connection mode may block: an SSE reader waits at
 * most 250 ms between looks at the file and at the server's stop flag, so
 * sp_http_stop never waits on an open stream for long.  At most
 * SP_HTTP_SSE_MAX streams are open at once (503 past that), and a client
 * that stops reading is dropped by the idle timeout.
 *
 * Mutating calls need the admin token, compared as SHA-256 digests with
 * CRYPTO_memcmp: constant time whatever the lengths (ui.c: as a Bearer
 * token, or the web UI's session cookie with the X-Stagepipe: 1 header).
 * With a read token configured, reads of job data need it (or the admin
 * token); /healthz, /readyz, /metrics and the page shell stay public.
 *
 * Log ranges (sp_ui_range): bytes=A-, bytes=A-B and bytes=-N, answered
 * 206 with Content-Range "bytes A-B/TOTAL", or 416 with "bytes STAR/TOTAL"
 * (STAR being the asterisk); HEAD gives the size alone.  /jobs/{id} is the
 * UI's page for a client that accepts text/html, the job's JSON otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/git/gitcred.h"
#include "core/git/gitinfo.h"
#include "core/git/giturl.h"
#include "core/pipeline/vars.h"
#include "core/server/http_internal.h"

#define LOG_CHUNK (16 * 1024)
#define SSE_POLL_MS 250
#define SSE_KEEPALIVE_S 15
#define SSE_STATE_EVERY_MS 1000
#define SSE_LINE_MAX (64 * 1024)

enum api_op {
	OP_NOT_FOUND,
	OP_JOBS,          /* GET list, POST trigger */
	OP_JOB,           /* GET /api/jobs/{id} */
	OP_JOB_LOG,
	OP_JOB_CANCEL,
	OP_JOB_RETRY,
	OP_JOB_ARTIFACTS, /* GET /api/jobs/{id}/artifacts[/PATH] (artifacts.c) */
	OP_JOB_PAGE,      /* GET /jobs/{id} */
	OP_HEALTHZ,
	OP_READYZ,
	OP_METRICS,
};

/* ---- routing ------------------------------------------------------------- */

/* A positive decimal job id of at most 18 digits, or 0. */
static int64_t parse_id(const char *s, size_t len)
{
	int64_t v = 0;
	size_t i;

	if (!len || len > 18 || s[0] == '0')
		return 0;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static enum api_op route_of(const char *url, int64_t *job)
{
	const char *rest, *slash;

	*job = 0;
	if (!strcmp(url, "/healthz"))
		return OP_HEALTHZ;
	if (!strcmp(url, "/readyz"))
		return OP_READYZ;
	if (!strcmp(url, "/metrics"))
		return OP_METRICS;
	if (!strcmp(url, "/api/jobs") || !strcmp(url, "/api/jobs/"))
		return OP_JOBS;
	if (!strncmp(url, "/jobs/", 6)) {
		*job = parse_id(url + 6, strlen(url + 6));
		return *job ? OP_JOB_PAGE : OP_NOT_FOUND;
	}
	if (strncmp(url, "/api/jobs/", 10))
		return OP_NOT_FOUND;
	rest = url + 10;
	slash = strchr(rest, '/');
	*job = parse_id(rest, slash ? (size_t)(slash - rest) : strlen(rest));
	if (!*job)
		return OP_NOT_FOUND;
	if (!slash)
		return OP_JOB;
	if (!strcmp(slash, "/log"))
		return OP_JOB_LOG;
	if (!strcmp(slash, "/cancel"))
		return OP_JOB_CANCEL;
	if (!strcmp(slash, "/retry"))
		return OP_JOB_RETRY;
	if (!strcmp(slash, "/artifacts") || !strncmp(slash, "/artifacts/", 11))
		return OP_JOB_ARTIFACTS;
	return OP_NOT_FOUND;
}

static const char *route_name(enum api_op op, const char *method)
{
	switch (op) {
	case OP_JOBS: return strcmp(method, "POST") ? "api_jobs" : "api_trigger";
	case OP_JOB: return "api_job";
	case OP_JOB_LOG: return "log";
	case OP_JOB_CANCEL: return "api_cancel";
	case OP_JOB_RETRY: return "api_retry";
	case OP_JOB_ARTIFACTS: return "api_artifacts";
	case OP_JOB_PAGE: return "job_page";
	case OP_HEALTHZ: return "healthz";
	case OP_READYZ: return "readyz";
	case OP_METRICS: return "metrics";
	case OP_NOT_FOUND:
	default: return "other";
	}
}

static bool op_is_post(enum api_op op, const char *method)
{
	return op == OP_JOB_CANCEL || op == OP_JOB_RETRY ||
	       (op == OP_JOBS && !strcmp(method, "POST"));
}

/* Whether the client asked for a page (a browser's navigation). */
static bool wants_html(struct sp_req *r)
{
	const char *accept = sp_http_header(r, MHD_HTTP_HEADER_ACCEPT);

	return accept && strstr(accept, "text/html");
}

enum MHD_Result sp_api_begin(struct sp_req *r)
{
	int64_t job;
	enum api_op op = route_of(r->url, &job);
	bool is_get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
	unsigned int st;
	const char *why = NULL;

	r->route = route_name(op, r->method);
	r->body_max = SP_HTTP_API_BODY_MAX;
	if (op == OP_NOT_FOUND)
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	if (op == OP_JOBS) {
		if (!is_get && strcmp(r->method, "POST"))
			return sp_http_reply_405(r, "GET, POST");
	} else if (op == OP_JOB_CANCEL || op == OP_JOB_RETRY) {
		if (strcmp(r->method, "POST"))
			return sp_http_reply_405(r, "POST");
	} else if (!is_get) {
		return sp_http_reply_405(r, "GET");
	}
	if (!op_is_post(op, r->method)) {
		/* reads of job data need the read token when one is configured;
		 * the page shell for a browser is public (ui.c) */
		if (op == OP_HEALTHZ || op == OP_READYZ || op == OP_METRICS ||
		    (op == OP_JOB_PAGE && wants_html(r)))
			return MHD_YES;
		if (sp_ui_read_check(r))
			return sp_ui_unauthorized(r, "read token required");
		return MHD_YES;
	}
	/* mutating: the token before a byte of the body */
	if ((st = sp_ui_admin_check(r, &why)) != 0) {
		if (st == MHD_HTTP_UNAUTHORIZED)
			return sp_ui_unauthorized(r, why);
		return sp_http_reply_error(r, st, "%s", why);
	}
	if (!sp_http_length_ok(r))
		return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body over %zu bytes",
					   r->body_max);
	return MHD_YES;
}

/* ---- small answers ---------------------------------------------------------- */

static enum MHD_Result store_error(struct sp_req *r, int rc, const struct sp_error *err)
{
	char q[600];

	if (rc == SP_ENOTFOUND)
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "no such job");
	sp_log_error("api.store", "route=%s error=%s", r->route,
		     sp_log_quote(err->msg, q, sizeof(q)));
	return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store unavailable");
}

/*
 * A ping is a committed (fsynced) write, and /healthz is public: a success
 * is trusted for HEALTH_CACHE_MS so that a client polling it in a loop
 * cannot keep the disk busy under the hooks' commits.  A failure is not
 * cached.
 */
#define HEALTH_CACHE_MS 1000
static enum MHD_Result do_healthz(struct sp_req *r)
{
	struct sp_error err = SP_ERROR_INIT;
	int64_t now = sp_clock_ms();
	char q[600];

	if (now - atomic_load(&r->h->health_ok_ms) < HEALTH_CACHE_MS)
		return sp_http_reply_text(r, MHD_HTTP_OK, "ok\n");
	if (sp_store_ping(r->h->srv->store, &err) < 0) {
		sp_log_warn("health.failed", "error=%s", sp_log_quote(err.msg, q, sizeof(q)));
		return sp_http_reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store unavailable\n");
	}
	atomic_store(&r->h->health_ok_ms, sp_clock_ms());
	return sp_http_reply_text(r, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result do_metrics(struct sp_req *r)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct MHD_Response *resp;

	if (sp_metrics_render(r->h->srv->metrics, r->h->srv->store, &b, &err) < 0) {
		sp_buf_release(&b);
		return sp_http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
	}
	sp_metrics_render_agents(&b, r->h->srv->agents);
	resp = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
	sp_buf_release(&b);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	return sp_http_reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result do_list(struct sp_req *r)
{
	struct sp_job_filter f;
	struct sp_error err = SP_ERROR_INIT;
	const char *before = sp_http_arg(r, "before"), *limit = sp_http_arg(r, "limit");
	const char *state = sp_http_arg(r, "state");
	cJSON *j = NULL;
	int rc;

	memset(&f, 0, sizeof(f));
	f.repo = sp_http_arg(r, "repo");
	f.ref = sp_http_arg(r, "ref");
	if (f.repo && !*f.repo)
		f.repo = NULL;
	if (f.ref && !*f.ref)
		f.ref = NULL;
	if (state && *state) {
		if (sp_job_state_parse(state) < 0)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "unknown state \"%.40s\"",
						   state);
		f.state = state;
	}
	if (before && *before && !(f.before = parse_id(before, strlen(before))))
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "before must be a job id");
	if (limit && *limit) {
		int64_t n = parse_id(limit, strlen(limit));
		if (n < 1 || n > 200)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
						   "limit must be from 1 to 200");
		f.limit = (int)n;
	}
	if ((rc = sp_store_job_list(r->h->srv->store, &f, &j, &err)) < 0)
		return store_error(r, rc, &err);
	return sp_http_reply_json(r, MHD_HTTP_OK, j);
}

static enum MHD_Result do_job(struct sp_req *r, int64_t id)
{
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = NULL;
	int rc;

	if ((rc = sp_store_job_get(r->h->srv->store, id, &j, &err)) < 0)
		return store_error(r, rc, &err);
	return sp_http_reply_json(r, MHD_HTTP_OK, j);
}

/* The job's state (a name from the store), or -1 with *rc set. */
static int job_state(struct sp_store *st, int64_t id, int *rc, struct sp_error *err)
{
	cJSON *j = NULL;
	const cJSON *s;
	int state = -1;

	if ((*rc = sp_store_job_get(st, id, &j, err)) < 0)
		return -1;
	s = cJSON_GetObjectItemCaseSensitive(j, "state");
	if (cJSON_IsString(s))
		state = sp_job_state_parse(s->valuestring);
	cJSON_Delete(j);
	if (state < 0)
		*rc = sp_error_set(err, SP_ERROR, "job %lld has no state", (long long)id);
	return state;
}

static enum MHD_Result do_cancel(struct sp_req *r, int64_t id)
{
	struct sp_server *srv = r->h->srv;
	struct sp_error err = SP_ERROR_INIT;
	enum sp_job_state after;
	cJSON *j;
	int rc, before;

	before = job_state(srv->store, id, &rc, &err);
	if (before < 0)
		return store_error(r, rc, &err);
	if (sp_job_state_final((enum sp_job_state)before))
		return sp_http_reply_error(r, MHD_HTTP_CONFLICT, "job already finished");
	if ((rc = sp_store_cancel(srv->store, id, "cancelled through the API", &after, &err)) < 0)
		return store_error(r, rc, &err);
	if (sp_job_state_final(after) && after != SP_JOB_CANCELLED)
		return sp_http_reply_error(r, MHD_HTTP_CONFLICT, "job already finished");
	sp_log_info("job.cancel", "job=%lld state=%s", (long long)id, sp_job_state_name(after));
	if (srv->workers && after == SP_JOB_RUNNING)
		sp_workers_poke(srv->workers, id);
	if (srv->outbox)
		sp_outbox_wake(srv->outbox);
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "job", (double)id);
	cJSON_AddStringToObject(j, "state", sp_job_state_name(after));
	return sp_http_reply_json(r, MHD_HTTP_ACCEPTED, j);
}

static const char *jstr(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void woke(struct sp_server *srv)
{
	sp_server_queued(srv);
	if (srv->outbox)
		sp_outbox_wake(srv->outbox);
}

static enum MHD_Result do_retry(struct sp_req *r, int64_t id)
{
	struct sp_server *srv = r->h->srv;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ingest_result res;
	struct sp_job_spec spec;
	const struct sp_repo_config *repo;
	const cJSON *pr;
	cJSON *old = NULL, *j;
	enum MHD_Result ret;
	int rc;

	if ((rc = sp_store_job_get(srv->store, id, &old, &err)) < 0)
		return store_error(r, rc, &err);
	memset(&spec, 0, sizeof(spec));
	spec.repo = jstr(old, "repo");
	repo = spec.repo ? sp_server_config_repo(srv->cfg, spec.repo) : NULL;
	if (!repo) {
		ret = sp_http_reply_error(r, MHD_HTTP_CONFLICT,
					  "repository of job %lld is no longer configured",
					  (long long)id);
		goto out;
	}
	spec.event = jstr(old, "event");
	spec.ref = jstr(old, "ref");
	spec.branch = jstr(old, "branch");
	spec.tag = jstr(old, "tag");
	spec.sha = jstr(old, "sha");
	pr = cJSON_GetObjectItemCaseSensitive(old, "pr");
	spec.pr = cJSON_IsNumber(pr) ? pr->valueint : 0;
	spec.title = jstr(old, "title");
	spec.author = jstr(old, "author");
	spec.sender = jstr(old, "sender");
	spec.labels = repo->labels;
	spec.retry_of = id;
	spec.statuses = repo->status.enabled;
	if (!spec.event || !spec.ref || !spec.sha) {
		ret = sp_http_reply_error(r, MHD_HTTP_CONFLICT, "job %lld cannot be retried",
					  (long long)id);
		goto out;
	}
	memset(&res, 0, sizeof(res));
	if ((rc = sp_store_job_create(srv->store, &spec, &res, &err)) < 0) {
		ret = store_error(r, rc == SP_ENOTFOUND ? SP_ERROR : rc, &err);
		goto out;
	}
	sp_log_info("job.queued", "job=%lld repo=%s retry_of=%lld", (long long)res.job_id,
		    repo->name, (long long)id);
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "job", (double)res.job_id);
	cJSON_AddNumberToObject(j, "retry_of", (double)id);
	ret = sp_http_reply_json(r, MHD_HTTP_CREATED, j);
	woke(srv);
out:
	cJSON_Delete(old);
	return ret;
}

/* ---- manual trigger: ref → sha with libgit2 (remote ls) ------------------- */

struct ls_ctx {
	struct sp_gitcred_list creds;
	size_t next;
	const struct sp_giturl *url;
};

static int on_credentials(git_credential **out, const char *url, const char *username_from_url,
			  unsigned int allowed, void *payload)
{
	struct ls_ctx *c = payload;

	(void)url;
	if (allowed == GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, username_from_url ? username_from_url
						   : c->url->user ? c->url->user : "git");
	while (c->next < c->creds.n) {
		const struct sp_gitcred *k = &c->creds.items[c->next++];
		if (k->kind == SP_GITCRED_USERPASS && (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT))
			return git_credential_userpass_plaintext_new(out, k->user, k->secret);
		if (k->kind == SP_GITCRED_SSH_KEY && (allowed & GIT_CREDENTIAL_SSH_KEY))
			return git_credential_ssh_key_new(out, k->user, NULL, k->key_file, k->secret);
		if (k->kind == SP_GITCRED_SSH_AGENT && (allowed & GIT_CREDENTIAL_SSH_KEY))
			return git_credential_ssh_key_from_agent(out, k->user);
	}
	git_error_set_str(GIT_ERROR_NET, "no (more) credentials to try");
	return GIT_EUSER;
}

static bool is_sha(const char *s)
{
	size_t i;

	for (i = 0; i < 40; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return s[40] == '\0';
}

/*
 * The commit ref names on the remote (a full ref; an annotated tag is
 * peeled) into sha.  SP_ENOTFOUND when the remote has no such ref.
 */
static int resolve_ref(const char *repo_url, const char *ref, char sha[41], struct sp_error *err)
{
	struct sp_giturl u;
	struct ls_ctx c;
	git_remote *rem = NULL;
	git_remote_callbacks cb;
	const git_remote_head **heads;
	size_t n, i, rlen = strlen(ref);
	bool found = false;
	int rc;

	memset(&c, 0, sizeof(c));
	git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
	if ((rc = sp_giturl_parse(&u, repo_url, err)) < 0)
		return rc;
	c.url = &u;
	if (sp_gitcred_list(&c.creds, &u, NULL, sp_vars_process_env, NULL, NULL) < 0)
		sp_gitcred_list_release(&c.creds);
	cb.credentials = on_credentials;
	cb.payload = &c;
	if (git_remote_create_detached(&rem, u.fetch) < 0 ||
	    git_remote_connect(rem, GIT_DIRECTION_FETCH, &cb, NULL, NULL) < 0 ||
	    git_remote_ls(&heads, &n, rem) < 0) {
		rc = sp_error_set(err, SP_EENGINE, "cannot list the refs of %s: %s", u.display,
				  sp_gitinfo_last_error());
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *name = heads[i]->name;
		/* a peeled tag ("refs/tags/v1^{}") wins over the tag object */
		if (!strncmp(name, ref, rlen) && !strcmp(name + rlen, "^{}")) {
			git_oid_tostr(sha, 41, &heads[i]->oid);
			found = true;
			break;
		}
		if (!strcmp(name, ref) && !found) {
			git_oid_tostr(sha, 41, &heads[i]->oid);
			found = true;
		}
	}
	rc = found ? 0 : sp_error_set(err, SP_ENOTFOUND, "%s has no ref %s", u.display, ref);
out:
	if (rem) {
		git_remote_disconnect(rem);
		git_remote_free(rem);
	}
	sp_gitcred_list_release(&c.creds);
	sp_giturl_release(&u);
	return rc;
}

static bool ref_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (!len || len > 250 || s[0] == '/' || s[0] == '-' || s[len - 1] == '/' ||
	    strstr(s, "..") || strstr(s, "//") || strstr(s, "@{"))
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || strchr("~^:?*[\\\x7f", s[i]))
			return false;
	return true;
}

static enum MHD_Result do_trigger(struct sp_req *r)
{
	struct sp_server *srv = r->h->srv;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ingest_result res;
	struct sp_job_spec spec;
	const struct sp_repo_config *repo;
	const char *name, *ref_in, *sha_in;
	char *ref = NULL, sha[41], q[600];
	cJSON *body, *j;
	enum MHD_Result ret;
	int rc;

	body = cJSON_ParseWithLength(r->body.data, r->body.len);
	if (!cJSON_IsObject(body)) {
		ret = sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "body must be a JSON object");
		goto out;
	}
	name = jstr(body, "repo");
	ref_in = jstr(body, "ref");
	sha_in = jstr(body, "sha");
	repo = name ? sp_server_config_repo(srv->cfg, name) : NULL;
	if (!repo) {
		ret = sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "unknown repository");
		goto out;
	}
	if (!ref_in || !ref_ok(ref_in)) {
		ret = sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad ref");
		goto out;
	}
	ref = strncmp(ref_in, "refs/", 5) ? sp_xasprintf("refs/heads/%s", ref_in)
		: sp_xstrdup(ref_in);
	if (sha_in) {
		if (!is_sha(sha_in)) {
			ret = sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "sha must be 40 hex digits");
			goto out;
		}
		snprintf(sha, sizeof(sha), "%s", sha_in);
		for (rc = 0; sha[rc]; rc++)
			sha[rc] = (char)tolower((unsigned char)sha[rc]);
	} else if ((rc = resolve_ref(repo->url, ref, sha, &err)) < 0) {
		sp_log_info("api.trigger", "repo=%s ref=%s error=%s", repo->name, ref,
			    sp_log_quote(err.msg, q, sizeof(q)));
		ret = sp_http_reply_error(r, rc == SP_ENOTFOUND ? MHD_HTTP_BAD_REQUEST
					  : MHD_HTTP_BAD_GATEWAY, "%s", err.msg);
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.repo = repo->name;
	spec.event = "manual";
	spec.ref = ref;
	if (!strncmp(ref, "refs/heads/", 11))
		spec.branch = ref + 11;
	else if (!strncmp(ref, "refs/tags/", 10))
		spec.tag = ref + 10;
	spec.sha = sha;
	spec.sender = "api";
	spec.labels = repo->labels;
	spec.statuses = repo->status.enabled;
	memset(&res, 0, sizeof(res));
	if ((rc = sp_store_job_create(srv->store, &spec, &res, &err)) < 0) {
		ret = store_error(r, rc == SP_ENOTFOUND ? SP_ERROR : rc, &err);
		goto out;
	}
	sp_log_info("job.queued", "job=%lld repo=%s ref=%s sha=%s event=manual",
		    (long long)res.job_id, repo->name, sp_log_quote(ref, q, sizeof(q)), sha);
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "job", (double)res.job_id);
	ret = sp_http_reply_json(r, MHD_HTTP_CREATED, j);
	woke(srv);
out:
	free(ref);
	cJSON_Delete(body);
	return ret;
}

/* ---- logs: the whole file, streamed -------------------------------------- */

/* A log (file or store: sp_logread) from start on, up to the size at open. */
struct file_stream {
	struct sp_logread *lr;
	uint64_t start;  /* the first byte sent */
};

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sp_error err = SP_ERROR_INIT;
	struct file_stream *fs = cls;
	size_t n;

	if (sp_logread_read(fs->lr, fs->start + pos, buf, max, &n, &err) < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (!n)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

static void file_free(void *cls)
{
	struct file_stream *fs = cls;

	sp_logread_close(fs->lr);
	free(fs);
}

/* A byte offset: digits only, at most 2^50; -1 otherwise. */
static int64_t offset_parse(const char *s)
{
	int64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		v = v * 10 + (*s - '0');
		if (v > ((int64_t)1 << 50))
			return -1;
	}
	return *s ? -1 : v;
}

/*
 * The file, or the part a Range asks for (sp_ui_range: bytes=A-, A-B, -N),
 * as it is now: a file still growing is sent up to its size at the open.
 * 206 carries Content-Range "bytes A-B/TOTAL", 416 "bytes STAR/TOTAL", so
 * a client pages a big log in windows without ever loading it whole.
 */
static enum MHD_Result log_whole(struct sp_req *r, struct sp_logread *lr)
{
	struct sp_error err = SP_ERROR_INIT;
	struct file_stream *fs;
	struct MHD_Response *resp;
	uint64_t from = 0, to = 0, size;
	unsigned int status = MHD_HTTP_OK;
	char cr[96];
	int part, rc;

	if ((rc = sp_logread_size(lr, &size, &err)) < 0) {
		sp_logread_close(lr);
		if (rc == SP_ENOTFOUND)
			return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND,
						   "no log for this stage yet");
		return store_error(r, rc, &err);
	}
	part = sp_ui_range(sp_http_header(r, MHD_HTTP_HEADER_RANGE), size, &from, &to);
	if (part < 0) {
		sp_logread_close(lr);
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		return sp_http_reply(r, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
	}
	if (part == 0) {
		from = 0;
		to = size;  /* one past the end */
	} else {
		status = MHD_HTTP_PARTIAL_CONTENT;
		to++;
	}
	fs = sp_xcalloc(1, sizeof(*fs));
	fs->lr = lr;
	fs->start = from;
	resp = MHD_create_response_from_callback(to - from, LOG_CHUNK, file_read, fs, file_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_PARTIAL_CONTENT) {
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)from,
			 (unsigned long long)to - 1, (unsigned long long)size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	}
	return sp_http_reply(r, status, resp);
}

/* ---- logs: live, as Server-Sent Events ----------------------------------- */

struct sse {
	struct sp_http *h;
	int64_t job;
	struct sp_logread *lr;   /* the log (file or store) */
	uint64_t off;            /* next byte of the file to read */
	struct sp_buf line;      /* a line read without its newline yet */
	struct sp_sse_out out;   /* formatted, not yet handed to libmicrohttpd */
	int64_t last_state_ms;   /* the job's state was last looked at */
	bool final;              /* the job is final (seen at least once) */
	bool ended;              /* `event: end` is in out */
	bool read_failed;        /* the last look at the log failed (the store away) */
	char state[16];
};

static void sse_emit_line(struct sse *s, const char *data, size_t len, uint64_t id)
{
	size_t i;

	sp_buf_addf(&s->out.buf, "id: %llu\ndata: ", (unsigned long long)id);
	/* a CR would end the SSE line early: keep the text, drop the CRs */
	for (i = 0; i < len; i++)
		if (data[i] != '\r')
			sp_buf_addch(&s->out.buf, data[i]);
	sp_buf_addstr(&s->out.buf, "\n\n");
}

/* Reads what the file has past s->off into events; true when it had some. */
static bool sse_pump(struct sse *s)
{
	struct sp_error err = SP_ERROR_INIT;
	char chunk[8192];
	size_t n, i, start = 0;

	/* an error (the store away for a moment) is nothing new: tried again
	 * at the next look, and the stream does not end on it */
	s->read_failed = sp_logread_read(s->lr, s->off, chunk, sizeof(chunk), &n, &err) < 0;
	if (s->read_failed || !n)
		return false;
	for (i = 0; i < (size_t)n; i++) {
		if (chunk[i] != '\n')
			continue;
		sp_buf_add(&s->line, chunk + start, i - start);
		sse_emit_line(s, s->line.data, s->line.len, s->off + i + 1);
		sp_buf_reset(&s->line);
		start = i + 1;
	}
	sp_buf_add(&s->line, chunk + start, (size_t)n - start);
	s->off += (uint64_t)n;
	if (s->line.len >= SSE_LINE_MAX) {
		/* a very long line goes out in pieces */
		sse_emit_line(s, s->line.data, s->line.len, s->off);
		sp_buf_reset(&s->line);
	}
	return true;
}

static void sse_check_state(struct sse *s)
{
	struct sp_error err = SP_ERROR_INIT;
	int rc, st;

	s->last_state_ms = sp_clock_ms();
	st = job_state(s->h->srv->store, s->job, &rc, &err);
	if (st < 0) {
		if (rc == SP_ENOTFOUND) {
			s->final = true;
			snprintf(s->state, sizeof(s->state), "unknown");
		}
		return;
	}
	if (sp_job_state_final((enum sp_job_state)st)) {
		s->final = true;
		snprintf(s->state, sizeof(s->state), "%s", sp_job_state_name((enum sp_job_state)st));
	}
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	struct timespec ts = { 0, SSE_POLL_MS * 1000000L };

	(void)pos;
	for (;;) {
		size_t n = sp_sse_out_take(&s->out, buf, max);

		if (n)
			return (ssize_t)n;
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* not on draining: the jobs that finish during the drain can be
		 * followed to their end; sp_http_stop ends the rest */
		if (atomic_load(&s->h->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (sse_pump(s))
			continue;
		/* nothing new in the file */
		if (s->final && !s->read_failed) {
			/* the job ended before this look at the file: everything is sent */
			if (s->line.len) {
				sse_emit_line(s, s->line.data, s->line.len, s->off);
				sp_buf_reset(&s->line);
			}
			sp_buf_addf(&s->out.buf, "event: end\ndata: %s\n\n", s->state);
			s->ended = true;
			continue;
		}
		if (sp_clock_ms() - s->last_state_ms >= SSE_STATE_EVERY_MS) {
			sse_check_state(s);
			if (s->final)
				continue;  /* one more look at the file first */
		}
		if (sp_sse_out_keepalive(&s->out, SSE_KEEPALIVE_S * 1000))
			continue;
		nanosleep(&ts, NULL);
	}
}

static void sse_free(void *cls)
{
	struct sse *s = cls;

	atomic_fetch_sub(&s->h->sse_streams, 1);
	sp_logread_close(s->lr);
	sp_buf_release(&s->line);
	sp_sse_out_release(&s->out);
	free(s);
}

static enum MHD_Result log_sse(struct sp_req *r, int64_t job, struct sp_logread *lr)
{
	struct sp_error err = SP_ERROR_INIT;
	struct MHD_Response *resp;
	struct sse *s;
	const char *from = sp_http_header(r, "Last-Event-ID");
	int64_t off = 0;
	uint64_t size;
	int rc, st;

	if (!from || !*from)
		from = sp_http_arg(r, "from");
	if (from && *from && (off = offset_parse(from)) < 0) {
		sp_logread_close(lr);
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
					   "Last-Event-ID (or from) must be a byte offset");
	}
	st = job_state(r->h->srv->store, job, &rc, &err);
	if (st < 0) {
		sp_logread_close(lr);
		return store_error(r, rc, &err);
	}
	if (sp_job_state_final((enum sp_job_state)st) &&
	    (rc = sp_logread_size(lr, &size, &err)) < 0) {
		sp_logread_close(lr);
		if (rc == SP_ENOTFOUND)
			return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "no log for this stage");
		return store_error(r, rc, &err);
	}
	/* a stream lives as long as its job: public readers get a share of the
	 * connections, not all of them (the hooks must still get in) */
	if (atomic_fetch_add(&r->h->sse_streams, 1) >= SP_HTTP_SSE_MAX) {
		atomic_fetch_sub(&r->h->sse_streams, 1);
		sp_logread_close(lr);
		sp_log_warn("http.busy", "route=sse streams=%d", SP_HTTP_SSE_MAX);
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
					   "too many live log streams");
	}
	s = sp_xcalloc(1, sizeof(*s));
	s->h = r->h;
	s->job = job;
	s->lr = lr;
	sp_buf_init(&s->line, 0);
	sp_sse_out_init(&s->out);
	s->off = (uint64_t)off;
	s->last_state_ms = s->out.last_ms;
	if (sp_job_state_final((enum sp_job_state)st)) {
		s->final = true;
		snprintf(s->state, sizeof(s->state), "%s", sp_job_state_name((enum sp_job_state)st));
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, LOG_CHUNK, sse_read, s,
						 sse_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	/*
	 * The idle timeout stays: the keepalive comment (every 15 s) is
	 * activity enough for a client that reads, and a client that stops
	 * reading is dropped after 30 s instead of holding the stream's
	 * thread, file and connection for ever.
	 */
	r->route = "sse";
	return sp_http_reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result do_log(struct sp_req *r, int64_t job)
{
	const char *stage = sp_http_arg(r, "stage");
	const char *accept = sp_http_header(r, MHD_HTTP_HEADER_ACCEPT);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_logread *lr;

	if (!stage || !*stage)
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "stage is required");
	/* the file of this server, or the store's chunks (PostgreSQL): any
	 * server answers for any job */
	if (sp_logread_open(&lr, r->h->srv->store, r->h->srv->cfg->data, job, stage, &err) < 0)
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad stage name");
	if (accept && strstr(accept, "text/event-stream"))
		return log_sse(r, job, lr);
	return log_whole(r, lr);
}

/* ---- dispatch ------------------------------------------------------------ */

enum MHD_Result sp_api_finish(struct sp_req *r)
{
	int64_t job;
	enum api_op op = route_of(r->url, &job);

	switch (op) {
	case OP_HEALTHZ:
		return do_healthz(r);
	case OP_READYZ:
		return sp_hooks_readyz(r);
	case OP_METRICS:
		return do_metrics(r);
	case OP_JOBS:
		return strcmp(r->method, "POST") ? do_list(r) : do_trigger(r);
	case OP_JOB_PAGE:
		if (wants_html(r))
			return sp_ui_shell(r);
		return do_job(r, job);
	case OP_JOB:
		return do_job(r, job);
	case OP_JOB_LOG:
		return do_log(r, job);
	case OP_JOB_CANCEL:
		return do_cancel(r, job);
	case OP_JOB_RETRY:
		return do_retry(r, job);
	case OP_JOB_ARTIFACTS: {
		const char *rest = strstr(r->url + 10, "/artifacts") + 10;
		return sp_artifacts_get(r, job, *rest ? rest + 1 : NULL);
	}
	case OP_NOT_FOUND:
	default:
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	}
}
