/*
 * agents.c — the server side of `stagepipe agent`: the four calls of
 * docs/agent-protocol.md, GET /api/agents, and who is online (server.h,
 * agents_internal.h).
 *
 * The protocol is plain functions over (agent, numbers of the URL, body)
 * → (status, JSON), and a thin libmicrohttpd glue at the end of the file,
 * so the unit tests drive it against a real store without sockets.
 *
 * Tokens: the config keeps each agent's SHA-256 only; a presented token is
 * hashed and compared with every digest by CRYPTO_memcmp, without an early
 * exit.  This happens before a byte of the body is read.
 *
 * Lease (long-poll): each try is sp_store_lease with the agent's labels;
 * with nothing queued the call sleeps on a condition variable until
 * sp_agents_wake bumps the generation (a job was queued or put back:
 * sp_server_queued), the wait is over, the server drains, or the HTTP
 * daemons stop; it also wakes every second to see whether the client hung
 * up, and every REPOLL_MS looks at the store anyway.  libmicrohttpd runs a
 * thread per connection: blocking in the handler for the whole wait does
 * not count as idle time for the 30 s connection timeout (checked with
 * 0.9.75: a handler that sleeps past the timeout still gets its answer
 * out), so a 60 s long-poll is fine.
 *
 * Per running job (and epoch) the server keeps what its event batches
 * need between calls: the job's log files (sp_joblog), the event applier
 * (sp_jobevents: stage rows, the pipeline_finished summary) and the last
 * batch number applied (a retried batch is answered again, not applied
 * twice).  It is made at the lease (or at the first events call after a
 * server restart), dropped at the finish, when the job's epoch moves on,
 * or when no call came for it for 2 × lease_ttl.  Calls for one job are
 * serialised by its own mutex; the table and the agents' runtime state by
 * the module's mutex, never held across a store call.
 *
 * Ownership: a job's calls are accepted from the agent that leased it
 * only (403 otherwise); the epoch fences everything else (409).  Tokens
 * and git credentials never reach a log line.
 */
/* POLLRDHUP: a long-poll notices its client hung up */
#define _GNU_SOURCE
#include "core/server/agents_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/pipeline/pipeline.h"
#include "core/server/http_internal.h"

/* Look at the store this often even without a wake (a job queued by
 * another process, a lease refused by a busy store). */
#define REPOLL_MS 5000
/* Wake this often while waiting to see whether the client is still there. */
#define GONE_CHECK_MS 1000
#define LABEL_MAX 64
#define RUNNING_MAX 256
#define REASON_MAX 1000
/* Event lines that failed to apply, logged per job (the rest counted). */
#define EVENT_WARN_MAX 5
#define REFUSED_LOG_MAX 20

struct agent_rt {
	const struct sp_agent_config *cfg;
	bool seen;
	time_t last_seen;           /* wall clock, for the list */
	int64_t last_seen_ms;       /* monotonic, for "online" */
	char *labels;               /* "a,b" as last reported, or NULL */
	int free;
	int64_t *running;
	size_t nrunning, arunning;
	char address[64];
};

/* What the event batches of one job (at one epoch) need between calls. */
struct jobstate {
	struct jobstate *next;
	int64_t job, epoch;
	int agent;
	int refs;                   /* under a->mu */
	bool dead;                  /* out of the table; freed at refs 0 */
	int64_t last_call_ms;       /* under a->mu */
	pthread_mutex_t mu;         /* the fields below */
	int64_t last_seq;
	struct sp_joblog *log;      /* NULL until opened */
	struct sp_jobevents *je;
	int event_errors;
	uint64_t artifact_bytes;    /* uploaded (or being uploaded) by this lease */
	bool end_noted;             /* the finish's note is in the log */
};

struct sp_agents {
	struct sp_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t cond;        /* long-polls wait here */
	uint64_t gen;               /* bumped by sp_agents_wake */
	bool stopping;
	struct agent_rt *agents;
	size_t n;
	struct jobstate *jobs;
	int64_t last_store_warn_ms;
	atomic_llong refused_sec;
	atomic_int refused_n;
	atomic_int refused_dropped;
};

/* ---- small helpers --------------------------------------------------------- */

static int ttl_ms(const struct sp_agents *a)
{
	long t = a->srv->cfg->lease_ttl_ms;

	return t > 0 && t <= 3600 * 1000 ? (int)t : 30000;
}

static int max_attempts(const struct sp_agents *a)
{
	return a->srv->cfg->max_attempts > 0 ? a->srv->cfg->max_attempts : 3;
}

static bool draining(const struct sp_agents *a)
{
	return atomic_load(&a->srv->draining);
}

static void reply(struct sp_agents_reply *out, unsigned int status, cJSON *body)
{
	out->status = status;
	out->body = body;
}

static void reply_error(struct sp_agents_reply *out, unsigned int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_error(struct sp_agents_reply *out, unsigned int status, const char *fmt, ...)
{
	cJSON *j = cJSON_CreateObject();
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(j, "error", msg);
	reply(out, status, j);
}

/* 409 for a fenced call: {"error": msg, "stale": true}. */
static void reply_stale(struct sp_agents_reply *out, const char *msg)
{
	cJSON *j = cJSON_CreateObject();

	cJSON_AddStringToObject(j, "error", msg);
	cJSON_AddBoolToObject(j, "stale", true);
	reply(out, 409, j);
}

void sp_agents_reply_release(struct sp_agents_reply *reply)
{
	cJSON_Delete(reply->body);
	reply->body = NULL;
}

static const char *jstr(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A whole number in [lo, hi] at key; false when absent or otherwise. */
static bool jint(const cJSON *j, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
		return false;
	*out = (int64_t)d;
	return true;
}

/* ---- the log limiter of refused calls ---------------------------------------- */

bool sp_agents_refused_log_ok(struct sp_agents *a)
{
	struct timespec ts;
	long long sec, old;
	int dropped;

	if (!a)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sec = (long long)ts.tv_sec;
	old = atomic_load(&a->refused_sec);
	if (old != sec && atomic_compare_exchange_strong(&a->refused_sec, &old, sec)) {
		atomic_store(&a->refused_n, 0);
		dropped = atomic_exchange(&a->refused_dropped, 0);
		if (dropped)
			sp_log_warn("agent.unauthorized_suppressed", "count=%d", dropped);
	}
	if (atomic_fetch_add(&a->refused_n, 1) < REFUSED_LOG_MAX)
		return true;
	atomic_fetch_add(&a->refused_dropped, 1);
	return false;
}

/* ---- life cycle ---------------------------------------------------------------- */

int sp_agents_new(struct sp_agents **out, struct sp_server *srv, struct sp_error *err)
{
	struct sp_agents *a = sp_xcalloc(1, sizeof(*a));
	pthread_condattr_t ca;
	size_t i;

	(void)err;
	a->srv = srv;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	a->n = srv->cfg->nagents;
	a->agents = sp_xcalloc(a->n ? a->n : 1, sizeof(*a->agents));
	for (i = 0; i < a->n; i++)
		a->agents[i].cfg = &srv->cfg->agents[i];
	atomic_init(&a->refused_sec, 0);
	atomic_init(&a->refused_n, 0);
	atomic_init(&a->refused_dropped, 0);
	*out = a;
	return 0;
}

static void jobstate_free(struct jobstate *s)
{
	if (!s)
		return;
	sp_jobevents_free(s->je);
	sp_joblog_close(s->log);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void sp_agents_free(struct sp_agents *a)
{
	struct jobstate *s, *next;
	size_t i;

	if (!a)
		return;
	for (s = a->jobs; s; s = next) {
		next = s->next;
		jobstate_free(s);
	}
	for (i = 0; i < a->n; i++) {
		free(a->agents[i].labels);
		free(a->agents[i].running);
	}
	free(a->agents);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void sp_agents_wake(struct sp_agents *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->gen++;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
}

void sp_agents_stop(struct sp_agents *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	a->gen++;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
}

static bool online(const struct agent_rt *rt, int64_t now)
{
	return rt->seen && now - rt->last_seen_ms < (int64_t)SP_AGENTS_ONLINE_S * 1000;
}

void sp_agents_counts(struct sp_agents *a, int *configured, int *online_n)
{
	int64_t now = sp_clock_ms();
	size_t i;
	int on = 0;

	if (!a) {
		*configured = 0;
		*online_n = 0;
		return;
	}
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < a->n; i++)
		if (online(&a->agents[i], now))
			on++;
	pthread_mutex_unlock(&a->mu);
	*configured = (int)a->n;
	*online_n = on;
}

const char *sp_agents_name(const struct sp_agents *a, int idx)
{
	return idx >= 0 && (size_t)idx < a->n ? a->agents[idx].cfg->name : "?";
}

/* ---- authentication --------------------------------------------------------- */

int sp_agents_auth(const struct sp_agents *a, const char *auth)
{
	unsigned char got[SHA256_DIGEST_LENGTH];
	int found = -1;
	size_t i;

	if (!a || !auth || strncasecmp(auth, "Bearer ", 7))
		return -1;
	auth += 7;
	while (*auth == ' ')
		auth++;
	if (!*auth)
		return -1;
	SHA256((const unsigned char *)auth, strlen(auth), got);
	/* every digest is compared, and the match is picked without a branch:
	 * the time does not depend on which agent (if any) matched */
	for (i = 0; i < a->n; i++) {
		int eq = CRYPTO_memcmp(got, a->agents[i].cfg->token_sha256, sizeof(got)) == 0;
		int mask = -eq;
		found = (found & ~mask) | ((int)i & mask);
	}
	OPENSSL_cleanse(got, sizeof(got));
	return found;
}

/* ---- agents' runtime state (under a->mu) -------------------------------------- */

static void running_add(struct agent_rt *rt, int64_t job)
{
	size_t i;

	for (i = 0; i < rt->nrunning; i++)
		if (rt->running[i] == job)
			return;
	if (rt->nrunning >= RUNNING_MAX)
		return;
	SP_GROW(rt->running, rt->arunning, rt->nrunning + 1);
	rt->running[rt->nrunning++] = job;
}

static void running_remove(struct sp_agents *a, int agent, int64_t job)
{
	struct agent_rt *rt;
	size_t i;

	if (agent < 0 || (size_t)agent >= a->n)
		return;
	pthread_mutex_lock(&a->mu);
	rt = &a->agents[agent];
	for (i = 0; i < rt->nrunning; i++)
		if (rt->running[i] == job) {
			rt->running[i] = rt->running[--rt->nrunning];
			break;
		}
	pthread_mutex_unlock(&a->mu);
}

/* ---- per-job state ---------------------------------------------------------------- */

/* Takes s out of the table (under a->mu); true when the caller frees it. */
static bool unlink_locked(struct sp_agents *a, struct jobstate *s)
{
	struct jobstate **pp;

	for (pp = &a->jobs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	s->dead = true;
	s->next = NULL;
	return s->refs == 0;
}

/*
 * States of jobs no call came for within 2 × TTL (an agent that died
 * mid-job: the keeper takes the job back, nothing else would ever close
 * its log files).  Freed outside the lock.
 */
static void sweep(struct sp_agents *a)
{
	struct jobstate *s, *next, *gone = NULL;
	int64_t limit = sp_clock_ms() - 2 * (int64_t)ttl_ms(a);

	pthread_mutex_lock(&a->mu);
	for (s = a->jobs; s; s = next) {
		next = s->next;
		if (s->refs == 0 && s->last_call_ms < limit) {
			unlink_locked(a, s);
			s->next = gone;
			gone = s;
		}
	}
	pthread_mutex_unlock(&a->mu);
	for (s = gone; s; s = next) {
		next = s->next;
		sp_log_debug("agent.job_dropped", "job=%" PRId64 " epoch=%" PRId64
			     " reason=\"no call within 2 lease TTLs\"", s->job, s->epoch);
		jobstate_free(s);
	}
}

/*
 * The state of (job, epoch) with a reference, or NULL when none (a state
 * of an older epoch is dropped: that lease is over).  create: make one for
 * agent when there is none.
 */
static struct jobstate *state_get(struct sp_agents *a, int64_t job, int64_t epoch, int agent,
				  bool create)
{
	struct jobstate *s, *old = NULL;

	pthread_mutex_lock(&a->mu);
	for (s = a->jobs; s; s = s->next)
		if (s->job == job)
			break;
	if (s && s->epoch < epoch) {
		if (unlink_locked(a, s))
			old = s;
		s = NULL;
	} else if (s && s->epoch > epoch) {
		/* a stale call: the store fences it */
		pthread_mutex_unlock(&a->mu);
		return NULL;
	}
	if (!s && create) {
		s = sp_xcalloc(1, sizeof(*s));
		s->job = job;
		s->epoch = epoch;
		s->agent = agent;
		pthread_mutex_init(&s->mu, NULL);
		s->next = a->jobs;
		a->jobs = s;
	}
	if (s) {
		s->refs++;
		s->last_call_ms = sp_clock_ms();
	}
	pthread_mutex_unlock(&a->mu);
	jobstate_free(old);
	return s;
}

static void state_put(struct sp_agents *a, struct jobstate *s)
{
	bool free_it;

	if (!s)
		return;
	pthread_mutex_lock(&a->mu);
	s->refs--;
	free_it = s->dead && s->refs == 0;
	pthread_mutex_unlock(&a->mu);
	if (free_it)
		jobstate_free(s);
}

/* Drops s (the job ended or was fenced) and puts the caller's reference. */
static void state_drop(struct sp_agents *a, struct jobstate *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&a->mu);
	if (!s->dead)
		unlink_locked(a, s);
	pthread_mutex_unlock(&a->mu);
	state_put(a, s);
}

/* Drops the state of (job, epoch), if any (after a 409; the lease answer
 * could not be sent). */
static void drop_job(struct sp_agents *a, int64_t job, int64_t epoch)
{
	struct jobstate *s;

	pthread_mutex_lock(&a->mu);
	for (s = a->jobs; s; s = s->next)
		if (s->job == job && s->epoch == epoch)
			break;
	if (s && unlink_locked(a, s)) {
		pthread_mutex_unlock(&a->mu);
		jobstate_free(s);
		return;
	}
	pthread_mutex_unlock(&a->mu);
}

/* Opens the job's log and event applier (s->mu held); false on failure. */
static bool state_open(struct sp_agents *a, struct jobstate *s, struct sp_error *err)
{
	if (s->log)
		return true;
	if (sp_joblog_open_store(&s->log, a->srv->store, a->srv->cfg->data, s->job, err) < 0)
		return false;
	s->je = sp_jobevents_new(a->srv, s->job, s->epoch, s->log);
	return true;
}

/* A line in the job log (DATA/logs/<job>/_job.log); s->mu held. */
static void state_note(struct jobstate *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void state_note(struct jobstate *s, const char *fmt, ...)
{
	struct sp_error err = SP_ERROR_INIT;
	char line[1024], q[600];
	va_list ap;

	if (!s->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (sp_joblog_write(s->log, "_job", line, strlen(line), &err) < 0)
		sp_log_warn("job.log_failed", "job=%" PRId64 " error=%s", s->job,
			    sp_log_quote(err.msg, q, sizeof(q)));
}

/* ---- who owns a job ------------------------------------------------------------ */

/*
 * Whether agent may write to job at epoch: the job's lease is this
 * agent's.  0, or fills out (403 another agent's, 404 no such job, 409 the
 * epoch is not the job's running one, 503 store trouble) and returns -1.
 */
static int owner_check(struct sp_agents *a, int agent, int64_t job, int64_t epoch,
		       struct sp_agents_reply *out)
{
	struct sp_error err = SP_ERROR_INIT;
	const cJSON *e;
	const char *who, *state;
	cJSON *j = NULL;
	char q[600];
	int rc;

	if ((rc = sp_store_job_get(a->srv->store, job, &j, &err)) < 0) {
		if (rc == SP_ENOTFOUND) {
			reply_error(out, 404, "no such job");
		} else {
			sp_log_warn("agent.store", "job=%" PRId64 " error=%s", job,
				    sp_log_quote(err.msg, q, sizeof(q)));
			reply_error(out, 503, "store unavailable");
		}
		return -1;
	}
	e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
	who = jstr(j, "agent");
	state = jstr(j, "state");
	rc = 0;
	if (!cJSON_IsNumber(e) || (int64_t)e->valuedouble != epoch || !state ||
	    strcmp(state, "running")) {
		reply_stale(out, "this lease is no longer current");
		rc = -1;
	} else if (!who || strcmp(who, sp_agents_name(a, agent))) {
		reply_error(out, 403, "job %" PRId64 " is not leased to agent %s", job,
			    sp_agents_name(a, agent));
		rc = -1;
	}
	cJSON_Delete(j);
	return rc;
}

/*
 * The job's state for a call of agent at epoch, with a reference: the
 * one made at the lease, or (a server restarted since) a new one once the
 * store says the lease is this agent's.  NULL with out filled otherwise.
 */
static struct jobstate *state_for_call(struct sp_agents *a, const struct sp_agents_call *c,
				       struct sp_agents_reply *out)
{
	struct jobstate *s = state_get(a, c->job, c->epoch, c->agent, false);

	if (s && s->agent != c->agent) {
		state_put(a, s);
		reply_error(out, 403, "job %" PRId64 " is not leased to agent %s", c->job,
			    sp_agents_name(a, c->agent));
		return NULL;
	}
	if (s)
		return s;
	if (owner_check(a, c->agent, c->job, c->epoch, out) < 0)
		return NULL;
	s = state_get(a, c->job, c->epoch, c->agent, true);
	if (!s)  /* a newer lease of the job came meanwhile */
		reply_stale(out, "this lease is no longer current");
	return s;
}

/* A call refused before the store was asked (not the job's running epoch). */
static void log_stale(struct sp_agents *a, const struct sp_agents_call *c, const char *call)
{
	sp_log_warn("agent.fenced", "agent=%s job=%" PRId64 " epoch=%" PRId64 " call=%s "
		    "error=\"not the job's running epoch\"", sp_agents_name(a, c->agent), c->job,
		    c->epoch, call);
}

static void fenced(struct sp_agents *a, const struct sp_agents_call *c, const char *call,
		   const char *why)
{
	char q[600];

	sp_log_warn("agent.fenced", "agent=%s job=%" PRId64 " epoch=%" PRId64 " call=%s error=%s",
		    sp_agents_name(a, c->agent), c->job, c->epoch, call,
		    sp_log_quote(why, q, sizeof(q)));
	drop_job(a, c->job, c->epoch);
	running_remove(a, c->agent, c->job);
}

/* ---- POST /api/agent/lease ------------------------------------------------------ */

/* push → the branch, tag → the tag, pull_request → the target branch,
 * manual → the branch, if any (as worker.c). */
static const char *event_ref_of(const struct sp_lease *l)
{
	if (!l->event)
		return NULL;
	if (!strcmp(l->event, "tag"))
		return l->tag;
	return l->branch;
}

/* The body of a lease call, checked; labels joined into *labels. */
static int lease_body(struct sp_agents *a, const struct sp_agents_call *c, char **labels,
		      int64_t *free_n, int64_t **running, size_t *nrunning,
		      struct sp_agents_reply *out)
{
	const char *name = sp_agents_name(a, c->agent);
	const cJSON *lv, *rv, *it;
	struct sp_buf b = SP_BUF_INIT;
	cJSON *body;
	const char *agent;
	int rc = -1, n = 0;

	*labels = NULL;
	*running = NULL;
	*nrunning = 0;
	body = c->len ? cJSON_ParseWithLength(c->body, c->len) : NULL;
	if (!cJSON_IsObject(body)) {
		reply_error(out, 400, "body must be a JSON object");
		goto out;
	}
	agent = jstr(body, "agent");
	if (!agent) {
		reply_error(out, 400, "agent (the agent's name) is required");
		goto out;
	}
	if (strcmp(agent, name)) {
		reply_error(out, 403, "this token belongs to agent %s", name);
		goto out;
	}
	if (!jint(body, "free", 0, 1000000, free_n)) {
		reply_error(out, 400, "free must be a whole number (the jobs the agent can take)");
		goto out;
	}
	if (*free_n == 0) {
		reply_error(out, 400, "free is 0: ask for a job when there is room for one");
		goto out;
	}
	lv = cJSON_GetObjectItemCaseSensitive(body, "labels");
	if (lv && !cJSON_IsNull(lv)) {
		if (!cJSON_IsArray(lv) || cJSON_GetArraySize(lv) > LABEL_MAX) {
			reply_error(out, 400, "labels must be a list of at most %d labels", LABEL_MAX);
			goto out;
		}
		cJSON_ArrayForEach(it, lv) {
			if (!cJSON_IsString(it) || !sp_label_valid(it->valuestring)) {
				reply_error(out, 400, "invalid label (1 to 63 of a-z, 0-9, '.', '_', '-')");
				goto out;
			}
			sp_buf_addf(&b, "%s%s", n++ ? "," : "", it->valuestring);
		}
	}
	rv = cJSON_GetObjectItemCaseSensitive(body, "running");
	if (rv && !cJSON_IsNull(rv)) {
		if (!cJSON_IsArray(rv) || cJSON_GetArraySize(rv) > RUNNING_MAX) {
			reply_error(out, 400, "running must be a list of at most %d job ids",
				    RUNNING_MAX);
			goto out;
		}
		*running = sp_xcalloc((size_t)cJSON_GetArraySize(rv) + 1, sizeof(**running));
		cJSON_ArrayForEach(it, rv) {
			double d = cJSON_IsNumber(it) ? it->valuedouble : 0;
			if (!(d >= 1 && d <= 9e15) || d != (double)(int64_t)d) {
				reply_error(out, 400, "running must list job ids");
				goto out;
			}
			(*running)[(*nrunning)++] = (int64_t)d;
		}
	}
	*labels = n ? sp_buf_detach(&b, NULL) : NULL;
	rc = 0;
out:
	sp_buf_release(&b);
	if (rc < 0) {
		free(*running);
		*running = NULL;
		*nrunning = 0;
	}
	cJSON_Delete(body);
	return rc;
}

/* The agent was heard from (a->mu held); address may be NULL. */
static void mark_seen(struct agent_rt *rt, const char *address)
{
	rt->seen = true;
	rt->last_seen = time(NULL);
	rt->last_seen_ms = sp_clock_ms();
	if (address)
		snprintf(rt->address, sizeof(rt->address), "%s", address);
}

/* The lease call is the agent's "seen" time; running and labels as reported. */
static void seen(struct sp_agents *a, const struct sp_agents_call *c, const char *labels,
		 int free_n, const int64_t *running, size_t nrunning)
{
	struct agent_rt *rt = &a->agents[c->agent];
	size_t i;

	pthread_mutex_lock(&a->mu);
	mark_seen(rt, c->address);
	free(rt->labels);
	rt->labels = labels ? sp_xstrdup(labels) : NULL;
	rt->free = free_n;
	rt->nrunning = 0;
	for (i = 0; i < nrunning; i++)
		running_add(rt, running[i]);
	pthread_mutex_unlock(&a->mu);
}

/*
 * An accepted event batch (the heartbeat of a running job) is also a sign
 * of life: after a server restart an agent busy with a long job shows
 * online, with that job, before its next lease call.
 */
static void seen_running(struct sp_agents *a, const struct sp_agents_call *c)
{
	struct agent_rt *rt = &a->agents[c->agent];

	pthread_mutex_lock(&a->mu);
	mark_seen(rt, c->address);
	running_add(rt, c->job);
	pthread_mutex_unlock(&a->mu);
}

/* The 200 answer of a lease (credentials only when the repo has git:,
 * secrets only when it has secrets:). */
static cJSON *lease_answer(struct sp_agents *a, const struct sp_lease *l,
			   const struct sp_repo_config *repo)
{
	const struct sp_server_config *cfg = a->srv->cfg;
	const char *event_ref = event_ref_of(l);
	cJSON *j = cJSON_CreateObject();
	char label[40];

	snprintf(label, sizeof(label), "srv-%" PRId64, l->job_id);
	cJSON_AddNumberToObject(j, "job", (double)l->job_id);
	cJSON_AddNumberToObject(j, "epoch", (double)l->epoch);
	cJSON_AddNumberToObject(j, "attempt", l->attempt);
	cJSON_AddNumberToObject(j, "ttl_ms", ttl_ms(a));
	cJSON_AddStringToObject(j, "repo", l->repo);
	cJSON_AddStringToObject(j, "repo_url", repo->url);
	cJSON_AddStringToObject(j, "ref", l->ref ? l->ref : "");
	cJSON_AddStringToObject(j, "sha", l->sha ? l->sha : "");
	cJSON_AddStringToObject(j, "event", l->event ? l->event : "push");
	if (event_ref)
		cJSON_AddStringToObject(j, "event_ref", event_ref);
	cJSON_AddStringToObject(j, "pipeline", repo->pipeline ? repo->pipeline : "stagepipe.yml");
	cJSON_AddStringToObject(j, "job_label", label);
	cJSON_AddNumberToObject(j, "timeout_ms", (double)cfg->job_timeout_ms);
	if (repo->git_token) {
		cJSON *cr = cJSON_AddObjectToObject(j, "credentials");
		cJSON_AddStringToObject(cr, "user", repo->git_user ? repo->git_user
					: "x-access-token");
		cJSON_AddStringToObject(cr, "token", repo->git_token);
	}
	if (repo->nsecrets) {
		/* the pipeline's secrets:, for the job child's environment */
		cJSON *sec = cJSON_AddObjectToObject(j, "secrets");
		size_t i;

		for (i = 0; i < repo->nsecrets; i++)
			cJSON_AddStringToObject(sec, repo->secrets[i].name, repo->secrets[i].value);
	}
	return j;
}

/* A leased job whose repository left the config: it ends `error` (as worker.c). */
static void lease_orphan(struct sp_agents *a, const struct sp_lease *l)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_finish f;
	char q[600];

	memset(&f, 0, sizeof(f));
	f.state = SP_JOB_ERROR;
	f.reason = "repository no longer configured";
	f.exit_code = -1;
	if (sp_store_finish(a->srv->store, l->job_id, l->epoch, &f, &err) < 0) {
		sp_log_warn("agent.finish_failed", "job=%" PRId64 " error=%s", l->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
		return;
	}
	sp_metrics_job_finished(a->srv->metrics, "error", 0);
	sp_log_info("job.finished", "job=%" PRId64 " state=error seconds=0.0 reason=%s",
		    l->job_id, sp_log_quote(f.reason, q, sizeof(q)));
	if (a->srv->outbox)
		sp_outbox_wake(a->srv->outbox);
}

/* A lease was made: the job's state (its log opened, a note in it). */
static void lease_made(struct sp_agents *a, const struct sp_agents_call *c,
		       const struct sp_lease *l)
{
	struct sp_error err = SP_ERROR_INIT;
	struct jobstate *s = state_get(a, l->job_id, l->epoch, c->agent, true);
	char q[600], dir[4096];

	pthread_mutex_lock(&a->mu);
	running_add(&a->agents[c->agent], l->job_id);
	pthread_mutex_unlock(&a->mu);
	/* this lease's artifacts only: what an earlier attempt uploaded goes */
	if (sp_artifacts_reset(a->srv->cfg->data, l->job_id, dir, sizeof(dir), &err) < 0) {
		sp_log_warn("agent.artifact", "job=%" PRId64 " error=%s", l->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
		sp_error_clear(&err);
	}
	pthread_mutex_lock(&s->mu);
	if (state_open(a, s, &err))
		state_note(s, "stagepipe serve: attempt %d on agent %s: %s %s at %s", l->attempt,
			   sp_agents_name(a, c->agent), l->event ? l->event : "build",
			   l->ref ? l->ref : "", l->sha ? l->sha : "");
	else
		sp_log_warn("job.log_failed", "job=%" PRId64 " error=%s", l->job_id,
			    sp_log_quote(err.msg, q, sizeof(q)));
	pthread_mutex_unlock(&s->mu);
	state_put(a, s);
	if (a->srv->outbox)
		sp_outbox_wake(a->srv->outbox);  /* its "running" status */
}

void sp_agents_lease(struct sp_agents *a, const struct sp_agents_call *c,
		     struct sp_agents_reply *out)
{
	const struct sp_server_config *cfg = a->srv->cfg;
	int64_t free_n = 0, *running = NULL, start = sp_clock_ms(), deadline;
	size_t nrunning = 0;
	char *labels = NULL, q[600];
	int wait_s = c->wait_s;

	memset(out, 0, sizeof(*out));
	if (c->agent < 0 || (size_t)c->agent >= a->n) {
		reply_error(out, 403, "unknown agent");
		return;
	}
	if (lease_body(a, c, &labels, &free_n, &running, &nrunning, out) < 0)
		return;
	seen(a, c, labels, (int)free_n, running, nrunning);
	free(running);
	sweep(a);
	if (draining(a)) {
		reply_error(out, 503, "the server is draining");
		goto out;
	}
	if (wait_s < 0)
		wait_s = 0;
	if (wait_s > SP_AGENTS_WAIT_MAX_S)
		wait_s = SP_AGENTS_WAIT_MAX_S;
	deadline = start + (int64_t)wait_s * 1000;
	for (;;) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_lease_req req;
		struct sp_lease l;
		const struct sp_repo_config *repo;
		struct timespec until;
		int64_t now, next_poll;
		uint64_t gen;
		bool stop;
		int rc;

		pthread_mutex_lock(&a->mu);
		gen = a->gen;
		stop = a->stopping;
		pthread_mutex_unlock(&a->mu);
		if (stop || draining(a)) {
			reply(out, 204, NULL);
			goto out;
		}
		memset(&req, 0, sizeof(req));
		req.agent = sp_agents_name(a, c->agent);
		req.labels = labels;
		req.ttl_ms = ttl_ms(a);
		memset(&l, 0, sizeof(l));
		rc = sp_store_lease(a->srv->store, &req, &l, &err);
		if (rc == 0) {
			repo = sp_server_config_repo(cfg, l.repo);
			if (!repo) {
				lease_orphan(a, &l);
				sp_lease_release(&l);
				continue;
			}
			lease_made(a, c, &l);
			sp_log_info("agent.lease", "agent=%s job=%" PRId64 " epoch=%" PRId64
				    " attempt=%d repo=%s waited_ms=%" PRId64, req.agent, l.job_id,
				    l.epoch, l.attempt, sp_log_quote(l.repo, q, sizeof(q)),
				    sp_clock_ms() - start);
			reply(out, 200, lease_answer(a, &l, repo));
			out->leased_job = l.job_id;
			out->leased_epoch = l.epoch;
			sp_lease_release(&l);
			goto out;
		}
		if (rc != SP_ENOTFOUND) {
			bool warn;
			pthread_mutex_lock(&a->mu);
			warn = sp_clock_ms() - a->last_store_warn_ms > 60000;
			if (warn)
				a->last_store_warn_ms = sp_clock_ms();
			pthread_mutex_unlock(&a->mu);
			if (warn)
				sp_log_warn("lease.failed", "agent=%s error=%s", req.agent,
					    sp_log_quote(err.msg, q, sizeof(q)));
			reply_error(out, 503, "store unavailable");
			goto out;
		}
		/* nothing queued for these labels: wait for a wake */
		now = sp_clock_ms();
		if (now >= deadline) {
			reply(out, 204, NULL);
			goto out;
		}
		next_poll = now + REPOLL_MS < deadline ? now + REPOLL_MS : deadline;
		for (;;) {
			int64_t t = sp_clock_ms(), until_ms;

			if (t >= next_poll)
				break;
			if (c->gone && c->gone(c->ud)) {
				sp_log_debug("agent.gone", "agent=%s", req.agent);
				reply(out, 204, NULL);
				goto out;
			}
			until_ms = t + GONE_CHECK_MS < next_poll ? t + GONE_CHECK_MS : next_poll;
			sp_clock_abs(&until, until_ms);
			pthread_mutex_lock(&a->mu);
			while (a->gen == gen && !a->stopping && !draining(a))
				if (pthread_cond_timedwait(&a->cond, &a->mu, &until) == ETIMEDOUT)
					break;
			stop = a->gen != gen || a->stopping || draining(a);
			pthread_mutex_unlock(&a->mu);
			if (stop)
				break;
		}
	}
out:
	free(labels);
}

void sp_agents_unlease(struct sp_agents *a, int agent, int64_t job, int64_t epoch)
{
	struct sp_error err = SP_ERROR_INIT;
	char q[600];

	if (!a || job <= 0)
		return;
	drop_job(a, job, epoch);
	running_remove(a, agent, job);
	if (sp_store_requeue(a->srv->store, job, epoch, "the lease answer could not be sent",
			     max_attempts(a), &err) < 0) {
		sp_log_warn("agent.unlease_failed", "agent=%s job=%" PRId64 " error=%s",
			    sp_agents_name(a, agent), job, sp_log_quote(err.msg, q, sizeof(q)));
		return;
	}
	sp_log_info("job.requeued", "job=%" PRId64 " agent=%s reason=\"the lease answer could "
		    "not be sent\"", job, sp_agents_name(a, agent));
	sp_server_queued(a->srv);
}

/* ---- POST /api/agent/jobs/{id}/events ------------------------------------------ */

/* Applies the batch's lines (s->mu held); SP_ECONFLICT when fenced. */
static int apply_lines(struct sp_agents *a, struct jobstate *s, const char *body, size_t len,
		       struct sp_error *cerr)
{
	const char *p = body, *end = body + len;
	char q[600];

	while (p < end) {
		struct sp_error err = SP_ERROR_INIT;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int rc;

		if (n && p[n - 1] == '\r')
			n--;
		if (n) {
			rc = sp_jobevents_line(s->je, p, n, &err);
			if (rc == SP_ECONFLICT) {
				sp_error_set(cerr, SP_ECONFLICT, "%s", err.msg);
				return rc;
			}
			if (rc < 0 && s->event_errors++ < EVENT_WARN_MAX)
				sp_log_warn("job.event_failed", "job=%" PRId64 " error=%s", s->job,
					    sp_log_quote(err.msg, q, sizeof(q)));
		}
		p = nl ? nl + 1 : end;
	}
	(void)a;
	return 0;
}

void sp_agents_events(struct sp_agents *a, const struct sp_agents_call *c,
		      struct sp_agents_reply *out)
{
	struct sp_error err = SP_ERROR_INIT;
	struct jobstate *s;
	bool cancel = false;
	cJSON *j;
	char q[600];
	int rc;

	memset(out, 0, sizeof(*out));
	if (c->job <= 0 || c->epoch <= 0 || c->seq <= 0) {
		reply_error(out, 400, "epoch and seq must be whole numbers from 1");
		return;
	}
	sweep(a);
	if (!(s = state_for_call(a, c, out))) {
		if (out->status == 409)
			log_stale(a, c, "events");
		return;
	}
	/* the renew first: a fenced batch applies nothing */
	rc = sp_store_renew(a->srv->store, c->job, c->epoch, ttl_ms(a), &cancel, &err);
	if (rc == SP_ECONFLICT) {
		state_put(a, s);
		fenced(a, c, "events", err.msg);
		reply_stale(out, err.msg);
		return;
	}
	if (rc < 0) {
		state_put(a, s);
		if (rc == SP_ENOTFOUND) {
			reply_error(out, 404, "no such job");
			return;
		}
		sp_log_warn("agent.store", "job=%" PRId64 " call=events error=%s", c->job,
			    sp_log_quote(err.msg, q, sizeof(q)));
		reply_error(out, 503, "store unavailable");
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (c->seq <= s->last_seq) {
		/* a retried batch whose answer was lost: answered, not applied again */
		pthread_mutex_unlock(&s->mu);
		state_put(a, s);
		goto answer;
	}
	if (!state_open(a, s, &err)) {
		pthread_mutex_unlock(&s->mu);
		state_put(a, s);
		sp_log_error("job.log_failed", "job=%" PRId64 " error=%s", c->job,
			     sp_log_quote(err.msg, q, sizeof(q)));
		reply_error(out, 503, "cannot write the job's log");
		return;
	}
	/* an empty batch (a heartbeat) may come without a body */
	rc = c->body && c->len ? apply_lines(a, s, c->body, c->len, &err) : 0;
	if (rc == 0)
		s->last_seq = c->seq;
	pthread_mutex_unlock(&s->mu);
	if (rc == SP_ECONFLICT) {
		state_put(a, s);
		fenced(a, c, "events", err.msg);
		reply_stale(out, err.msg);
		return;
	}
	state_put(a, s);
answer:
	seen_running(a, c);
	j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "cancel", cancel);
	reply(out, 200, j);
}

/* ---- POST /api/agent/jobs/{id}/promote ----------------------------------------- */

void sp_agents_promote(struct sp_agents *a, const struct sp_agents_call *c,
		       struct sp_agents_reply *out)
{
	struct sp_error err = SP_ERROR_INIT;
	struct jobstate *s;
	const char *stage = NULL;
	bool granted = false;
	char reason[512], q[600], qs[200];
	cJSON *body = NULL, *j;
	int rc;

	memset(out, 0, sizeof(*out));
	reason[0] = '\0';
	if (c->job <= 0 || c->epoch <= 0) {
		reply_error(out, 400, "epoch must be a whole number from 1");
		return;
	}
	if (c->len) {
		body = cJSON_ParseWithLength(c->body, c->len);
		if (!cJSON_IsObject(body)) {
			cJSON_Delete(body);
			reply_error(out, 400, "body must be a JSON object");
			return;
		}
		stage = jstr(body, "stage");
	}
	if (!(s = state_for_call(a, c, out))) {
		if (out->status == 409) {
			/* {"granted": false, "stale": true, "reason": ...} */
			log_stale(a, c, "promote");
			sp_agents_reply_release(out);
			j = cJSON_CreateObject();
			cJSON_AddBoolToObject(j, "granted", false);
			cJSON_AddBoolToObject(j, "stale", true);
			cJSON_AddStringToObject(j, "reason", "this lease is no longer current");
			reply(out, 409, j);
		}
		cJSON_Delete(body);
		return;
	}
	state_put(a, s);
	rc = sp_store_promote(a->srv->store, c->job, c->epoch, &granted, reason, sizeof(reason),
			      &err);
	if (rc == SP_ECONFLICT) {
		fenced(a, c, "promote", err.msg);
		j = cJSON_CreateObject();
		cJSON_AddBoolToObject(j, "granted", false);
		cJSON_AddBoolToObject(j, "stale", true);
		cJSON_AddStringToObject(j, "reason", err.msg);
		reply(out, 409, j);
		goto out;
	}
	if (rc < 0) {
		if (rc == SP_ENOTFOUND) {
			reply_error(out, 404, "no such job");
		} else {
			sp_log_warn("agent.store", "job=%" PRId64 " call=promote error=%s", c->job,
				    sp_log_quote(err.msg, q, sizeof(q)));
			reply_error(out, 503, "store unavailable");
		}
		goto out;
	}
	sp_log_info("job.promote", "job=%" PRId64 " epoch=%" PRId64 " agent=%s stage=%s "
		    "granted=%s%s%s", c->job, c->epoch, sp_agents_name(a, c->agent),
		    sp_log_quote(stage ? stage : "", qs, sizeof(qs)), granted ? "true" : "false",
		    granted ? "" : " reason=", granted ? "" : sp_log_quote(reason, q, sizeof(q)));
	j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "granted", granted);
	if (!granted)
		cJSON_AddStringToObject(j, "reason", reason);
	reply(out, granted ? 200 : 409, j);
out:
	cJSON_Delete(body);
}

/* ---- POST /api/agent/jobs/{id}/finish ------------------------------------------ */

/*
 * After a 409 on finish: whether the job already ended at this epoch in
 * the state asked (a retried finish whose answer was lost).
 */
static bool already_finished(struct sp_agents *a, int64_t job, int64_t epoch, const char *state)
{
	struct sp_error err = SP_ERROR_INIT;
	const cJSON *e;
	const char *st;
	cJSON *j = NULL;
	bool same;

	if (sp_store_job_get(a->srv->store, job, &j, &err) < 0)
		return false;
	e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
	st = jstr(j, "state");
	same = cJSON_IsNumber(e) && (int64_t)e->valuedouble == epoch && st && !strcmp(st, state);
	cJSON_Delete(j);
	return same;
}

/* "a,b": 1 to 16 labels, each 1 to 63 of [a-z0-9._-] (runs_on's rule). */
static bool labels_ok(const char *s)
{
	size_t n = 0;

	for (;;) {
		size_t len = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-");

		if (len < 1 || len > 63 || ++n > 16)
			return false;
		s += len;
		if (!*s)
			return true;
		if (*s++ != ',')
			return false;
	}
}

void sp_agents_job_finish(struct sp_agents *a, const struct sp_agents_call *c,
			  struct sp_agents_reply *out)
{
	struct sp_error err = SP_ERROR_INIT;
	struct jobstate *s = NULL;
	struct sp_finish f;
	const cJSON *summary;
	const char *state_name, *reason;
	char rbuf[REASON_MAX + 1], q[600];
	cJSON *body = NULL;
	const char *labels = NULL;
	bool requeue, relabel, done_before;
	double seconds = 0;
	int64_t code = -1;
	int state = -1, rc;

	memset(out, 0, sizeof(*out));
	if (c->job <= 0 || c->epoch <= 0) {
		reply_error(out, 400, "epoch must be a whole number from 1");
		return;
	}
	body = c->len ? cJSON_ParseWithLength(c->body, c->len) : NULL;
	if (!cJSON_IsObject(body)) {
		reply_error(out, 400, "body must be a JSON object");
		goto out;
	}
	state_name = jstr(body, "state");
	relabel = state_name && !strcmp(state_name, "relabel");
	/* both give the job back; relabel for a runner with other labels */
	requeue = relabel || (state_name && !strcmp(state_name, "requeue"));
	if (!requeue && (!state_name || (state = sp_job_state_parse(state_name)) < 0 ||
			 !sp_job_state_final((enum sp_job_state)state))) {
		reply_error(out, 400, "state must be passed, failed, error, cancelled, skipped, "
			    "requeue or relabel");
		goto out;
	}
	if (relabel && (!(labels = jstr(body, "labels")) || !labels_ok(labels))) {
		reply_error(out, 400, "relabel needs labels: \"a,b\", each 1 to 63 of a-z, 0-9, "
			    "'.', '_', '-'");
		goto out;
	}
	reason = jstr(body, "reason");
	rbuf[0] = '\0';
	if (reason) {
		/* one line, bounded */
		size_t n = strcspn(reason, "\r\n");
		snprintf(rbuf, sizeof(rbuf), "%.*s", (int)(n < REASON_MAX ? n : REASON_MAX), reason);
	}
	if (!jint(body, "exit_code", -1, 255, &code))
		code = -1;
	{
		const cJSON *sv = cJSON_GetObjectItemCaseSensitive(body, "seconds");
		if (cJSON_IsNumber(sv) && sv->valuedouble >= 0 && sv->valuedouble < 3.2e8)
			seconds = sv->valuedouble;
	}
	if (!(s = state_for_call(a, c, out))) {
		if (out->status == 409 && !requeue && already_finished(a, c->job, c->epoch,
								       state_name)) {
			sp_agents_reply_release(out);
			reply(out, 200, cJSON_CreateObject());
		} else if (out->status == 409) {
			log_stale(a, c, "finish");
		}
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	/*
	 * The note, then the log complete, before the job is final or back in
	 * the queue: a live log stream ends when it sees the final state, so a
	 * line written after that would be missing there (a log in the store
	 * is buffered; lines lost are logged there).  Once per lease: an agent
	 * trying the call again after a 503 does not add it twice.
	 */
	if (!s->end_noted) {
		state_note(s, "stagepipe serve: agent %s: %s%s%s", sp_agents_name(a, c->agent),
			   requeue ? "given back to the queue" : state_name, *rbuf ? ": " : "",
			   rbuf);
		s->end_noted = true;
	}
	(void)sp_joblog_flush(s->log, NULL);
	if (relabel) {
		rc = sp_store_relabel(a->srv->store, c->job, c->epoch, labels, *rbuf ? rbuf : NULL,
				      &err);
	} else if (requeue) {
		rc = sp_store_requeue(a->srv->store, c->job, c->epoch,
				      *rbuf ? rbuf : "the agent gave the job back", max_attempts(a),
				      &err);
	} else {
		summary = cJSON_GetObjectItemCaseSensitive(body, "summary");
		if (!cJSON_IsObject(summary))
			summary = s->je ? sp_jobevents_summary(s->je) : NULL;
		memset(&f, 0, sizeof(f));
		f.state = (enum sp_job_state)state;
		f.reason = *rbuf ? rbuf : NULL;
		f.exit_code = (int)code;
		f.summary = summary;
		f.pipeline = summary ? jstr(summary, "pipeline") : NULL;
		if (f.pipeline && !*f.pipeline)
			f.pipeline = NULL;
		rc = sp_store_finish(a->srv->store, c->job, c->epoch, &f, &err);
	}
	/* the same finish, sent again after its answer was lost: done */
	done_before = rc == SP_ECONFLICT && !requeue &&
		      already_finished(a, c->job, c->epoch, state_name);
	if (rc == SP_ECONFLICT && !done_before) {
		state_note(s, "stagepipe serve: agent %s: that result was not taken: %s",
			   sp_agents_name(a, c->agent), err.msg);
		(void)sp_joblog_flush(s->log, NULL);
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == SP_ECONFLICT) {
		state_put(a, s);
		s = NULL;
		if (done_before) {
			reply(out, 200, cJSON_CreateObject());
			goto out;
		}
		fenced(a, c, "finish", err.msg);
		reply_stale(out, err.msg);
		goto out;
	}
	if (rc < 0) {
		if (rc == SP_ENOTFOUND) {
			reply_error(out, 404, "no such job");
		} else {
			sp_log_warn("agent.store", "job=%" PRId64 " call=finish error=%s", c->job,
				    sp_log_quote(err.msg, q, sizeof(q)));
			reply_error(out, 503, "store unavailable");
		}
		goto out;
	}
	/* the job is over here: its log files are closed (fsynced) */
	state_drop(a, s);
	s = NULL;
	running_remove(a, c->agent, c->job);
	if (relabel) {
		char ql[200];

		sp_log_info("job.relabeled", "job=%" PRId64 " agent=%s labels=%s", c->job,
			    sp_agents_name(a, c->agent), sp_log_quote(labels, ql, sizeof(ql)));
		sp_server_queued(a->srv);
	} else if (requeue) {
		sp_log_info("job.requeued", "job=%" PRId64 " agent=%s reason=%s", c->job,
			    sp_agents_name(a, c->agent),
			    sp_log_quote(*rbuf ? rbuf : "the agent gave the job back", q, sizeof(q)));
		sp_server_queued(a->srv);
	} else {
		sp_metrics_job_finished(a->srv->metrics, state_name, seconds);
		sp_log_info("agent.finish", "agent=%s job=%" PRId64 " epoch=%" PRId64 " state=%s "
			    "seconds=%.1f exit_code=%d%s%s", sp_agents_name(a, c->agent), c->job,
			    c->epoch, state_name, seconds, (int)code, *rbuf ? " reason=" : "",
			    *rbuf ? sp_log_quote(rbuf, q, sizeof(q)) : "");
	}
	if (a->srv->outbox)
		sp_outbox_wake(a->srv->outbox);
	reply(out, 200, cJSON_CreateObject());
out:
	state_put(a, s);
	cJSON_Delete(body);
}

/* ---- GET /api/agents ------------------------------------------------------------- */

cJSON *sp_agents_list(struct sp_agents *a)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "agents");
	int64_t now = sp_clock_ms();
	size_t i, k;

	if (!a)
		return root;
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < a->n; i++) {
		const struct agent_rt *rt = &a->agents[i];
		cJSON *o = cJSON_CreateObject(), *lv, *rv;
		const char *p;

		cJSON_AddStringToObject(o, "name", rt->cfg->name);
		lv = cJSON_AddArrayToObject(o, "labels");
		for (p = rt->labels; p && *p;) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			char *l = sp_xstrndup(p, n);
			cJSON_AddItemToArray(lv, cJSON_CreateString(l));
			free(l);
			p = e ? e + 1 : NULL;
		}
		cJSON_AddBoolToObject(o, "online", online(rt, now));
		if (rt->seen) {
			struct tm tm;
			char ts[40];
			if (gmtime_r(&rt->last_seen, &tm) &&
			    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm))
				cJSON_AddStringToObject(o, "last_seen", ts);
			else
				cJSON_AddNullToObject(o, "last_seen");
		} else {
			cJSON_AddNullToObject(o, "last_seen");
		}
		if (rt->address[0])
			cJSON_AddStringToObject(o, "address", rt->address);
		else
			cJSON_AddNullToObject(o, "address");
		cJSON_AddNumberToObject(o, "free", rt->free);
		rv = cJSON_AddArrayToObject(o, "running");
		for (k = 0; k < rt->nrunning; k++)
			cJSON_AddItemToArray(rv, cJSON_CreateNumber((double)rt->running[k]));
		cJSON_AddItemToArray(arr, o);
	}
	pthread_mutex_unlock(&a->mu);
	return root;
}

/* ---- HTTP glue (libmicrohttpd) -------------------------------------------------- */

enum sp_agents_op sp_agents_route(const char *url, int64_t *job)
{
	const char *rest, *slash;
	int64_t v = 0;
	size_t i, len;

	*job = 0;
	if (!strcmp(url, "/api/agents") || !strcmp(url, "/api/agents/"))
		return SP_AGENTS_OP_LIST;
	if (!strcmp(url, "/api/agent/lease"))
		return SP_AGENTS_OP_LEASE;
	if (strncmp(url, "/api/agent/jobs/", 16))
		return SP_AGENTS_OP_NONE;
	rest = url + 16;
	slash = strchr(rest, '/');
	if (!slash)
		return SP_AGENTS_OP_NONE;
	len = (size_t)(slash - rest);
	if (!len || len > 18 || rest[0] == '0')
		return SP_AGENTS_OP_NONE;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)rest[i]))
			return SP_AGENTS_OP_NONE;
		v = v * 10 + (rest[i] - '0');
	}
	*job = v;
	if (!strcmp(slash, "/events"))
		return SP_AGENTS_OP_EVENTS;
	if (!strcmp(slash, "/promote"))
		return SP_AGENTS_OP_PROMOTE;
	if (!strcmp(slash, "/finish"))
		return SP_AGENTS_OP_FINISH;
	if (!strcmp(slash, "/artifacts"))
		return SP_AGENTS_OP_ARTIFACT;
	*job = 0;
	return SP_AGENTS_OP_NONE;
}

static const char *route_name(enum sp_agents_op op)
{
	switch (op) {
	case SP_AGENTS_OP_LEASE: return "agent_lease";
	case SP_AGENTS_OP_EVENTS: return "agent_events";
	case SP_AGENTS_OP_PROMOTE: return "agent_promote";
	case SP_AGENTS_OP_FINISH: return "agent_finish";
	case SP_AGENTS_OP_LIST: return "agents";
	case SP_AGENTS_OP_ARTIFACT: return "agent_artifact";
	case SP_AGENTS_OP_NONE:
	default: return "other";
	}
}

static void client_address(struct sp_req *r, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	buf[0] = '\0';
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !(sa = ci->client_addr))
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
			  (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  buf, (socklen_t)len);
}

static enum MHD_Result unauthorized(struct sp_req *r, const char *why)
{
	struct MHD_Response *resp;
	char addr[64];

	if (sp_agents_refused_log_ok(r->h->srv->agents)) {
		client_address(r, addr, sizeof(addr));
		sp_log_warn("agent.unauthorized", "route=%s address=%s reason=\"%s\"", r->route,
			    addr[0] ? addr : "-", why);
	}
	resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				"Bearer realm=\"stagepipe\"");
	return sp_http_reply(r, MHD_HTTP_UNAUTHORIZED, resp);
}

static enum MHD_Result artifact_begin(struct sp_req *r, int64_t job);
static enum MHD_Result artifact_finish(struct sp_req *r, int64_t job);

enum MHD_Result sp_agents_begin(struct sp_req *r)
{
	struct sp_server *srv = r->h->srv;
	int64_t job;
	enum sp_agents_op op = sp_agents_route(r->url, &job);
	const char *auth;

	r->route = route_name(op);
	r->agent = -1;
	r->body_max = SP_AGENTS_BODY_MAX;
	if (op == SP_AGENTS_OP_NONE)
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	if (op == SP_AGENTS_OP_LIST) {
		if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
			return sp_http_reply_405(r, "GET");
		return MHD_YES;
	}
	if (strcmp(r->method, "POST"))
		return sp_http_reply_405(r, "POST");
	/* the token before a byte of the body */
	auth = sp_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth)
		return unauthorized(r, "no token");
	if ((r->agent = sp_agents_auth(srv->agents, auth)) < 0)
		return unauthorized(r, "unknown token");
	if (op == SP_AGENTS_OP_LEASE && atomic_load(&srv->draining))
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is draining");
	if (op == SP_AGENTS_OP_ARTIFACT)
		return artifact_begin(r, job);
	if (op == SP_AGENTS_OP_EVENTS)
		r->body_max = SP_AGENTS_EVENTS_MAX;
	if (!sp_http_length_ok(r))
		return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body over %zu bytes",
					   r->body_max);
	return MHD_YES;
}

/* A positive whole number of at most 18 digits, or -1; absent: dflt. */
static int64_t arg_num(struct sp_req *r, const char *name, int64_t dflt)
{
	const char *s = sp_http_arg(r, name);
	int64_t v = 0;
	size_t i, n;

	if (!s)
		return dflt;
	n = strlen(s);
	if (!n || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Whether the client closed its side of the connection (a long-poll it gave up on). */
static bool client_gone(void *ud)
{
	struct sp_req *r = ud;
	const union MHD_ConnectionInfo *ci;
	struct pollfd p;

	if (atomic_load(&r->h->stopping))
		return true;
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return false;
	p.fd = ci->connect_fd;
	p.events = POLLRDHUP;
	p.revents = 0;
	if (poll(&p, 1, 0) <= 0)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* ---- POST /api/agent/jobs/{id}/artifacts: one file, streamed to disk ---------- */

struct upload {
	struct sp_agents *a;
	struct jobstate *s;         /* a reference, put back by upload_free */
	int fd;
	char tmp[4096];
	char *rel;
	uint64_t declared, got;
	uint64_t reserved;          /* counted in s->artifact_bytes until placed */
	bool placed;
};

static int upload_sink(struct sp_req *r, const char *data, size_t len)
{
	struct upload *u = r->sink_ud;

	if (len > u->declared - u->got)
		return -1;  /* more than Content-Length said */
	u->got += len;
	while (len) {
		ssize_t n = write(u->fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void upload_free(struct sp_req *r)
{
	struct upload *u = r->sink_ud;

	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	if (!u->placed && u->tmp[0])
		unlink(u->tmp);
	if (u->s) {
		pthread_mutex_lock(&u->s->mu);
		if (!u->placed)
			u->s->artifact_bytes -= u->reserved;
		pthread_mutex_unlock(&u->s->mu);
		state_put(u->a, u->s);
	}
	free(u->rel);
	free(u);
	r->sink_ud = NULL;
}

static enum MHD_Result artifact_begin(struct sp_req *r, int64_t job)
{
	struct sp_agents *a = r->h->srv->agents;
	const struct sp_server_config *cfg = r->h->srv->cfg;
	const char *rel = sp_http_arg(r, "path");
	const char *cl = sp_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t epoch = arg_num(r, "epoch", -1);
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agents_call c;
	struct sp_agents_reply out;
	struct upload *u;
	struct jobstate *s;
	unsigned long long declared;
	enum MHD_Result ret;
	char *end, q[600];
	bool over;

	if (epoch < 1)
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "epoch must be a whole number from 1");
	if (!rel || !sp_artifacts_rel_ok(rel))
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "path must be stage/relative/path "
					   "without \".\", \"..\" or empty parts");
	if (!cl)
		return sp_http_reply_error(r, MHD_HTTP_LENGTH_REQUIRED, "Content-Length is required");
	errno = 0;
	declared = strtoull(cl, &end, 10);
	if (errno || end == cl || *end || *cl == '-')
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad Content-Length");
	memset(&c, 0, sizeof(c));
	memset(&out, 0, sizeof(out));
	c.agent = r->agent;
	c.job = job;
	c.epoch = epoch;
	if (!(s = state_for_call(a, &c, &out))) {
		if (out.status == 409)
			log_stale(a, &c, "artifacts");
		ret = sp_http_reply_json(r, out.status, out.body);
		return ret;
	}
	pthread_mutex_lock(&s->mu);
	over = declared > cfg->artifacts_max || s->artifact_bytes > cfg->artifacts_max - declared;
	if (!over)
		s->artifact_bytes += declared;
	pthread_mutex_unlock(&s->mu);
	if (over) {
		state_put(a, s);
		return sp_http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "the job's artifacts would "
					   "pass artifacts_max (%zu bytes)", cfg->artifacts_max);
	}
	u = sp_xcalloc(1, sizeof(*u));
	u->a = a;
	u->s = s;
	u->fd = -1;
	u->declared = declared;
	u->reserved = declared;
	u->rel = sp_xstrdup(rel);
	r->sink_ud = u;
	r->sink_free = upload_free;
	if (sp_artifacts_tmpfile(cfg->data, u->tmp, sizeof(u->tmp), &u->fd, &err) < 0) {
		u->tmp[0] = '\0';
		sp_log_warn("agent.artifact", "job=%" PRId64 " error=%s", job,
			    sp_log_quote(err.msg, q, sizeof(q)));
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot store the artifact");
	}
	r->sink = upload_sink;
	return MHD_YES;
}

static enum MHD_Result artifact_finish(struct sp_req *r, int64_t job)
{
	struct upload *u = r->sink_ud;
	struct sp_error err = SP_ERROR_INIT;
	char dir[4096], q[600];
	cJSON *j;
	int rc;

	if (!u)
		return sp_http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no upload");
	if (r->sink_failed || u->got != u->declared) {
		if (u->got > u->declared || u->got < u->declared)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "the body does not have "
						   "the Content-Length's %llu bytes",
						   (unsigned long long)u->declared);
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot store the artifact");
	}
	close(u->fd);
	u->fd = -1;
	if (sp_artifacts_dir(dir, sizeof(dir), r->h->srv->cfg->data, job) < 0)
		return sp_http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "path too long");
	if ((rc = sp_artifacts_place(dir, u->rel, u->tmp, &err)) < 0) {
		if (rc == SP_ECONFIG)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
		sp_log_warn("agent.artifact", "job=%" PRId64 " error=%s", job,
			    sp_log_quote(err.msg, q, sizeof(q)));
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot store the artifact");
	}
	u->placed = true;
	j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "size", (double)u->got);
	return sp_http_reply_json(r, MHD_HTTP_OK, j);
}

enum MHD_Result sp_agents_finish(struct sp_req *r)
{
	struct sp_agents *a = r->h->srv->agents;
	struct sp_agents_call c;
	struct sp_agents_reply out;
	enum MHD_Result ret;
	int64_t job;
	enum sp_agents_op op = sp_agents_route(r->url, &job);
	char addr[64];

	if (op == SP_AGENTS_OP_LIST)
		return sp_http_reply_json(r, MHD_HTTP_OK, sp_agents_list(a));
	if (!a || r->agent < 0)
		return unauthorized(r, "unknown token");
	if (op == SP_AGENTS_OP_ARTIFACT)
		return artifact_finish(r, job);
	memset(&c, 0, sizeof(c));
	memset(&out, 0, sizeof(out));
	c.agent = r->agent;
	c.body = r->body.data;
	c.len = r->body.len;
	c.job = job;
	if (op != SP_AGENTS_OP_LEASE) {
		c.epoch = arg_num(r, "epoch", -1);
		if (c.epoch < 1)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
						   "epoch must be a whole number from 1");
	}
	switch (op) {
	case SP_AGENTS_OP_LEASE: {
		int64_t w = arg_num(r, "wait", SP_AGENTS_WAIT_DEFAULT_S);
		if (w < 0)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
						   "wait must be a whole number of seconds");
		c.wait_s = w > SP_AGENTS_WAIT_MAX_S ? SP_AGENTS_WAIT_MAX_S : (int)w;
		client_address(r, addr, sizeof(addr));
		c.address = addr;
		c.gone = client_gone;
		c.ud = r;
		sp_agents_lease(a, &c, &out);
		break;
	}
	case SP_AGENTS_OP_EVENTS:
		c.seq = arg_num(r, "seq", -1);
		if (c.seq < 1)
			return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST,
						   "seq must be a whole number from 1");
		sp_agents_events(a, &c, &out);
		break;
	case SP_AGENTS_OP_PROMOTE:
		sp_agents_promote(a, &c, &out);
		break;
	case SP_AGENTS_OP_FINISH:
		sp_agents_job_finish(a, &c, &out);
		break;
	case SP_AGENTS_OP_LIST:
	case SP_AGENTS_OP_NONE:
	default:
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	}
	if (out.leased_job && client_gone(r)) {
		/* the agent gave up on the long-poll just as a job came */
		sp_agents_reply_release(&out);
		sp_agents_unlease(a, r->agent, out.leased_job, out.leased_epoch);
		return MHD_NO;
	}
	ret = sp_http_reply_json(r, out.status, out.body);
	out.body = NULL;  /* deleted by sp_http_reply_json */
	if (ret != MHD_YES && out.leased_job)
		sp_agents_unlease(a, r->agent, out.leased_job, out.leased_epoch);
	return ret;
}
