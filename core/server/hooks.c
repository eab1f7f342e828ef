/*
 * hooks.c — POST /hooks/{repo}: the webhook ingest path (SERVER.md,
 * "Ingest").
 *
 * In order: the repository from the URL (404), the method (405), the
 * draining server (503), Content-Length over the cap (413, before a byte
 * of the body is read), the content type (415), the server's body budget
 * (503 "server busy": http.c, sp_http_reserve); then, on the whole raw
 * body, the signature (401, nothing stored), the delivery id, the parse
 * (400), the branches filter, and one store call that records the
 * delivery and its job in one transaction.  The answer is sent after that
 * call returns, i.e. after the commit: never a 2xx for something not on
 * disk.  Every outcome is counted (sp_metrics_delivery) and logged.
 *
 * A store that cannot commit (the data disk is full, an I/O error) makes
 * the hook 503 (the forge retries later): nothing of the delivery is kept,
 * so its redelivery is new, not a duplicate.  /readyz (sp_hooks_readyz)
 * says so too, and both recover by themselves once a write commits again.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/base/error.h"
#include "core/base/ids.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/forge/webhook.h"
#include "core/server/http_internal.h"

static const char *forge_of(const struct sp_req *r)
{
	return r->repo ? sp_forge_name(r->repo->forge) : "unknown";
}

static void count(struct sp_req *r, const char *outcome)
{
	sp_metrics_delivery(r->h->srv->metrics, forge_of(r), outcome);
}

#define SP_HOOK_REFUSED_LOG_MAX 20

/*
 * Whether one more hook.refused line may be logged this second.  Every
 * refusal is still counted in the metrics; the lines past the limit are
 * summed up once the second is over (hook.refused_suppressed).
 */
static bool refused_log_ok(struct sp_http *h)
{
	struct timespec ts;
	long long sec, old;
	int dropped;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sec = (long long)ts.tv_sec;
	old = atomic_load(&h->refused_sec);
	if (old != sec && atomic_compare_exchange_strong(&h->refused_sec, &old, sec)) {
		atomic_store(&h->refused_n, 0);
		dropped = atomic_exchange(&h->refused_dropped, 0);
		if (dropped)
			sp_log_warn("hook.refused_suppressed", "count=%d", dropped);
	}
	if (atomic_fetch_add(&h->refused_n, 1) < SP_HOOK_REFUSED_LOG_MAX)
		return true;
	atomic_fetch_add(&h->refused_dropped, 1);
	return false;
}

static const char *header_fn(void *ud, const char *name)
{
	return sp_http_header(ud, name);
}

/* The media type without parameters, lower case, into buf. */
static void media_type(const char *ct, char *buf, size_t len)
{
	size_t i = 0;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	for (; *ct && *ct != ';' && *ct != ' ' && *ct != '\t' && i + 1 < len; ct++)
		buf[i++] = (char)((*ct >= 'A' && *ct <= 'Z') ? *ct + 32 : *ct);
	buf[i] = '\0';
}

enum MHD_Result sp_hooks_begin(struct sp_req *r)
{
	const struct sp_server *srv = r->h->srv;
	const char *name = r->url + (strlen(r->url) > 7 ? 7 : strlen(r->url));
	const char *cl, *ct;
	char q[400], mt[128];
	size_t content_length = 0;

	r->repo = strchr(name, '/') ? NULL : sp_server_config_repo(srv->cfg, name);
	if (!r->repo) {
		count(r, "not_found");
		if (refused_log_ok(r->h))
			sp_log_info("hook.refused", "status=404 repo=%s reason=\"unknown repository\"",
				    sp_log_quote(name, q, sizeof(q)));
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "unknown repository");
	}
	if (strcmp(r->method, MHD_HTTP_METHOD_POST)) {
		count(r, "bad_request");
		return sp_http_reply_405(r, "POST");
	}
	if (atomic_load(&r->h->srv->draining)) {
		count(r, "unavailable");
		if (refused_log_ok(r->h))
			sp_log_info("hook.refused", "status=503 repo=%s reason=draining", r->repo->name);
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "draining");
	}
	r->body_max = srv->cfg->body_max;
	cl = sp_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cl, &end, 10);
		if (end == cl || *end || errno || !isdigit((unsigned char)cl[0]) ||
		    v > r->body_max) {
			count(r, "too_large");
			if (refused_log_ok(r->h))
				sp_log_info("hook.refused", "status=413 repo=%s content_length=%s",
					    r->repo->name, sp_log_quote(cl, q, sizeof(q)));
			return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
						   "body over %zu bytes", r->body_max);
		}
		content_length = (size_t)v;
	}
	ct = sp_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	media_type(ct ? ct : "", mt, sizeof(mt));
	if (strcmp(mt, "application/json") && strcmp(mt, "application/x-www-form-urlencoded")) {
		count(r, "unsupported_media_type");
		if (refused_log_ok(r->h))
			sp_log_info("hook.refused", "status=415 repo=%s content_type=%s", r->repo->name,
				    sp_log_quote(ct ? ct : "", q, sizeof(q)));
		return sp_http_reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
					   "content type must be application/json or "
					   "application/x-www-form-urlencoded");
	}
	if (content_length) {
		/* the bytes are held from now on: take them from the server's
		 * budget (every unauthenticated connection may ask for body_max) */
		if (!sp_http_reserve(r, content_length)) {
			count(r, "unavailable");
			if (refused_log_ok(r->h))
				sp_log_warn("hook.refused", "status=503 repo=%s reason=\"body budget spent\" "
					    "content_length=%zu", r->repo->name, content_length);
			return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server busy");
		}
		/* one allocation for the whole body */
		sp_buf_grow(&r->body, content_length);
	}
	return MHD_YES;
}

enum MHD_Result sp_hooks_too_large(struct sp_req *r)
{
	count(r, "too_large");
	if (refused_log_ok(r->h))
		sp_log_info("hook.refused", "status=413 repo=%s reason=\"chunked body over the cap\"",
			    r->repo->name);
	return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body over %zu bytes",
				   r->body_max);
}

static enum MHD_Result answer_ingest(struct sp_req *r, const struct sp_ingest_result *res,
				     const char *delivery, const char *ignored)
{
	cJSON *j = cJSON_CreateObject();
	char q[400];

	if (res->duplicate) {
		count(r, "duplicate");
		sp_log_info("hook.duplicate", "repo=%s delivery=%s job=%lld", r->repo->name,
			    sp_log_quote(delivery, q, sizeof(q)), (long long)res->job_id);
		if (res->job_id)
			cJSON_AddNumberToObject(j, "job", (double)res->job_id);
		else
			cJSON_AddNullToObject(j, "job");
		cJSON_AddBoolToObject(j, "duplicate", true);
		return sp_http_reply_json(r, MHD_HTTP_OK, j);
	}
	if (ignored) {
		char q2[400];
		count(r, "ignored");
		sp_log_info("hook.ignored", "repo=%s delivery=%s why=%s", r->repo->name,
			    sp_log_quote(delivery, q, sizeof(q)), sp_log_quote(ignored, q2, sizeof(q2)));
		cJSON_AddNullToObject(j, "job");
		cJSON_AddStringToObject(j, "ignored", ignored);
		return sp_http_reply_json(r, MHD_HTTP_OK, j);
	}
	count(r, "accepted");
	cJSON_AddNumberToObject(j, "job", (double)res->job_id);
	cJSON_AddStringToObject(j, "state", "queued");
	return sp_http_reply_json(r, MHD_HTTP_ACCEPTED, j);
}

enum MHD_Result sp_hooks_finish(struct sp_req *r)
{
	struct sp_server *srv = r->h->srv;
	const struct sp_repo_config *repo = r->repo;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_hook hook;
	struct sp_delivery d;
	struct sp_job_spec spec;
	struct sp_ingest_result res;
	const char *why = NULL, *delivery, *event_name, *ct;
	char random_id[64], q[400], q2[400], *outcome = NULL, *ignored = NULL;
	enum MHD_Result ret;
	bool make_job = false;
	size_t i;

	memset(&hook, 0, sizeof(hook));
	if (atomic_load(&srv->draining)) {
		count(r, "unavailable");
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "draining");
	}
	if (!sp_webhook_verify(repo->forge, repo->secret, repo->secret_len, header_fn, r,
			       (const unsigned char *)r->body.data, r->body.len, time(NULL), &why)) {
		count(r, "unauthorized");
		if (refused_log_ok(r->h))
			sp_log_warn("hook.refused", "status=401 repo=%s reason=%s", repo->name,
				    sp_log_quote(why ? why : "bad signature", q, sizeof(q)));
		return sp_http_reply_json(r, MHD_HTTP_UNAUTHORIZED, NULL);
	}
	delivery = sp_webhook_delivery_id(repo->forge, header_fn, r);
	if (!delivery || !*delivery)
		delivery = sp_http_header(r, "Idempotency-Key");
	if (!delivery || !*delivery || strlen(delivery) > 200) {
		/* nothing to dedupe on: this delivery is its own */
		sp_id_random(random_id, sizeof(random_id), "local", 16);
		delivery = random_id;
	}
	event_name = sp_webhook_event_name(repo->forge, header_fn, r);
	ct = sp_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (sp_webhook_parse(repo->forge, event_name, ct ? ct : "application/json",
			     (const unsigned char *)r->body.data, r->body.len, &hook, &err) < 0) {
		count(r, "bad_request");
		if (refused_log_ok(r->h))
			sp_log_info("hook.refused", "status=400 repo=%s delivery=%s reason=%s", repo->name,
				    sp_log_quote(delivery, q, sizeof(q)), sp_log_quote(err.msg, q2, sizeof(q2)));
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	}

	switch (hook.kind) {
	case SP_HOOK_PUSH:
	case SP_HOOK_PULL_REQUEST:
		if (!sp_repo_branch_allowed(repo, hook.branch)) {
			ignored = sp_xasprintf("branch %s is not in the repository's branches",
					       hook.branch ? hook.branch : "(none)");
			break;
		}
		make_job = true;
		break;
	case SP_HOOK_TAG:
		make_job = true;
		break;
	case SP_HOOK_PING:
	case SP_HOOK_DELETE:
	case SP_HOOK_IGNORED:
	default:
		ignored = sp_xstrdup(hook.ignored_why ? hook.ignored_why
				     : sp_hook_kind_name(hook.kind));
		break;
	}
	outcome = make_job ? sp_xstrdup("job") : sp_xasprintf("ignored: %s", ignored);

	memset(&d, 0, sizeof(d));
	d.repo = repo->name;
	d.id = delivery;
	d.forge = sp_forge_name(repo->forge);
	d.event = event_name;
	d.outcome = outcome;
	memset(&spec, 0, sizeof(spec));
	if (make_job) {
		spec.repo = repo->name;
		spec.event = hook.kind == SP_HOOK_TAG ? "tag"
			     : hook.kind == SP_HOOK_PULL_REQUEST ? "pull_request" : "push";
		spec.ref = hook.ref;
		spec.branch = hook.branch;
		spec.tag = hook.tag;
		spec.sha = hook.sha;
		spec.pr = hook.pr;
		spec.title = hook.title;
		spec.author = hook.author;
		spec.sender = hook.sender;
		spec.labels = repo->labels;
		spec.supersede = repo->cancel_superseded && hook.kind != SP_HOOK_TAG;
		spec.statuses = repo->status.enabled;
	}
	memset(&res, 0, sizeof(res));
	if (sp_store_ingest(srv->store, &d, make_job ? &spec : NULL, &res, &err) < 0) {
		struct sp_error e2 = SP_ERROR_INIT;
		bool full = false;

		(void)sp_store_last_write(srv->store, &full, &e2);
		count(r, "unavailable");
		/* rate-limited like the refusals: a forge retrying into a full
		 * disk must not fill the journal too */
		if (refused_log_ok(r->h))
			sp_log_error("hook.failed", "status=503 repo=%s delivery=%s reason=%s error=%s",
				     repo->name, sp_log_quote(delivery, q, sizeof(q)),
				     full ? "\"disk full\"" : "\"store unavailable\"",
				     sp_log_quote(err.msg, q2, sizeof(q2)));
		ret = sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s",
					  full ? "store unavailable: the server's disk is full"
					       : "store unavailable");
		goto out;
	}
	if (!res.duplicate && make_job) {
		char qref[400];
		sp_log_info("hook.accepted", "repo=%s delivery=%s event=%s job=%lld",
			    repo->name, sp_log_quote(delivery, q, sizeof(q)), spec.event,
			    (long long)res.job_id);
		sp_log_info("job.queued", "job=%lld repo=%s ref=%s sha=%s", (long long)res.job_id,
			    repo->name, sp_log_quote(spec.ref, qref, sizeof(qref)), spec.sha);
		for (i = 0; i < res.nsuperseded; i++) {
			sp_log_info("job.superseded", "job=%lld by=%lld",
				    (long long)res.superseded[i], (long long)res.job_id);
			if (srv->workers)
				sp_workers_poke(srv->workers, res.superseded[i]);
		}
	}
	ret = answer_ingest(r, &res, delivery, res.duplicate ? NULL : ignored);
	if (!res.duplicate && make_job) {
		sp_server_queued(srv);
		if (srv->outbox)
			sp_outbox_wake(srv->outbox);
	}
out:
	free(outcome);
	free(ignored);
	sp_hook_release(&hook);
	return ret;
}

enum MHD_Result sp_hooks_readyz(struct sp_req *r)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *store = r->h->srv->store;
	bool full = false;
	char q[600];

	if (atomic_load(&r->h->srv->draining))
		return sp_http_reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "draining\n");
	if (sp_store_last_write(store, &full, &err) == 0)
		return sp_http_reply_text(r, MHD_HTTP_OK, "ready\n");
	/* the last write failed: try one now (the disk may have room again) */
	sp_error_clear(&err);
	if (sp_store_ping(store, &err) == 0)
		return sp_http_reply_text(r, MHD_HTTP_OK, "ready\n");
	(void)sp_store_last_write(store, &full, NULL);
	sp_log_debug("ready.failed", "error=%s", sp_log_quote(err.msg, q, sizeof(q)));
	return sp_http_reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE,
				  full ? "store unavailable: disk full\n" : "store unavailable\n");
}
