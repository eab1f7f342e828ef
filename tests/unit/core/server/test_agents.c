/*
 * test_agents.c — the server side of the agent protocol (core/server/
 * agents.c) through its plain functions (agents_internal.h), with a real
 * SQLite store in a temporary folder and no sockets: tokens, routes, a
 * job's whole life (lease → event batches with a retried one → promote
 * once → finish), fencing after the lease keeper took a job back, a job
 * given back (requeue), another agent's job, labels, the agent list and
 * counts, and long-polls woken by a queued job, a drain and a stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/agents_internal.h"
#include "core/server/config.h"
#include "core/server/server.h"
#include "core/store/store.h"
#include "tests/unit/support/testutil.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"
#define W(s) ((char *)(uintptr_t)(s))
#define TOKEN1 "tok-build-1-secret"
#define TOKEN2 "tok-build-2-secret"

struct fix {
	char *dir;
	struct sp_repo_config repos[2];
	struct sp_agent_config agents[2];
	struct sp_server_config cfg;
	struct sp_server srv;
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int setup(void **state)
{
	struct fix *f = sp_xcalloc(1, sizeof(*f));
	struct sp_error err = SP_ERROR_INIT;

	f->dir = sp_test_tempdir("sp-agents-");
	f->srv.store = sp_test_store_open(f->dir);

	f->repos[0].name = W("app");
	f->repos[0].url = W("https://git.example.com/team/app.git");
	f->repos[0].forge = SP_FORGE_GITHUB;
	f->repos[0].pipeline = W("ci.yml");
	f->repos[0].git_user = W("x-access-token");
	f->repos[0].git_token = W("git-token-secret");
	{
		/* the pipeline's secrets: of this repo (freed by teardown) */
		struct sp_repo_secret *sec = sp_xcalloc(1, sizeof(*sec));
		sec->name = W("API_TOKEN");
		sec->value = W("api-secret-value");
		sec->len = strlen(sec->value);
		f->repos[0].secrets = sec;
		f->repos[0].nsecrets = 1;
	}
	f->repos[1].name = W("web");
	f->repos[1].url = W("file:///srv/web.git");
	f->repos[1].forge = SP_FORGE_GITEA;
	f->repos[1].pipeline = W("stagepipe.yml");
	f->repos[1].labels = W("linux");

	f->agents[0].name = W("build-1");
	SHA256((const unsigned char *)TOKEN1, strlen(TOKEN1), f->agents[0].token_sha256);
	f->agents[0].has_token = true;
	f->agents[1].name = W("build-2");
	SHA256((const unsigned char *)TOKEN2, strlen(TOKEN2), f->agents[1].token_sha256);
	f->agents[1].has_token = true;

	f->cfg.data = f->dir;
	f->cfg.public_url = W("http://ci.example");
	f->cfg.lease_ttl_ms = 30000;
	f->cfg.max_attempts = 3;
	f->cfg.job_timeout_ms = 7200000;
	f->cfg.repos = f->repos;
	f->cfg.nrepos = 2;
	f->cfg.agents = f->agents;
	f->cfg.nagents = 2;
	f->srv.cfg = &f->cfg;
	f->srv.metrics = sp_metrics_new();
	atomic_init(&f->srv.draining, false);
	if (sp_agents_new(&f->srv.agents, &f->srv, &err) < 0)
		fail_msg("agents: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	sp_workers_free(f->srv.workers);  /* they wake the agents: first */
	sp_agents_free(f->srv.agents);
	sp_store_close(f->srv.store);
	sp_metrics_free(f->srv.metrics);
	sp_test_rmtree(f->dir);
	free(f->repos[0].secrets);  /* the array (its strings are literals) */
	free(f->dir);
	free(f);
	return 0;
}

static int64_t create(struct fix *f, const char *repo, const char *labels)
{
	struct sp_job_spec j = { .repo = repo, .event = "push", .ref = "refs/heads/main",
				 .branch = "main", .sha = SHA, .labels = labels };
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;

	memset(&res, 0, sizeof(res));
	if (sp_store_job_create(f->srv.store, &j, &res, &err) < 0)
		fail_msg("create: %s", err.msg);
	return res.job_id;
}

static const char *jstr(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static bool jbool(const cJSON *j, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, key));
}

static char *job_state(struct fix *f, int64_t id)
{
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = NULL;
	char *s;

	if (sp_store_job_get(f->srv.store, id, &j, &err) < 0)
		fail_msg("job_get: %s", err.msg);
	s = sp_xstrdup(jstr(j, "state"));
	cJSON_Delete(j);
	return s;
}

static void assert_state(struct fix *f, int64_t id, const char *want)
{
	char *s = job_state(f, id);

	assert_string_equal(s, want);
	free(s);
}

/* A call of agent with body (a C string, may be NULL). */
static struct sp_agents_call call(int agent, int64_t job, int64_t epoch, int64_t seq,
				  const char *body)
{
	struct sp_agents_call c;

	memset(&c, 0, sizeof(c));
	c.agent = agent;
	c.job = job;
	c.epoch = epoch;
	c.seq = seq;
	c.body = body;
	c.len = body ? strlen(body) : 0;
	c.address = "192.0.2.7";
	return c;
}

static void lease(struct fix *f, int agent, const char *body, int wait_s,
		  struct sp_agents_reply *out)
{
	struct sp_agents_call c = call(agent, 0, 0, 0, body);

	c.wait_s = wait_s;
	sp_agents_lease(f->srv.agents, &c, out);
}

#define LEASE1 "{\"agent\":\"build-1\",\"labels\":[\"linux\",\"big\"],\"free\":2,\"running\":[]}"
#define LEASE2 "{\"agent\":\"build-2\",\"labels\":[],\"free\":1}"

/* ---- tokens and routes ---- */

static void test_auth(void **state)
{
	struct fix *f = *state;
	struct sp_agents *a = f->srv.agents;

	assert_int_equal(sp_agents_auth(a, "Bearer " TOKEN1), 0);
	assert_int_equal(sp_agents_auth(a, "bearer  " TOKEN2), 1);
	assert_int_equal(sp_agents_auth(a, "Bearer " TOKEN1 "x"), -1);
	assert_int_equal(sp_agents_auth(a, "Bearer tok-build-1-secre"), -1);
	assert_int_equal(sp_agents_auth(a, "Bearer "), -1);
	assert_int_equal(sp_agents_auth(a, "Basic " TOKEN1), -1);
	assert_int_equal(sp_agents_auth(a, TOKEN1), -1);
	assert_int_equal(sp_agents_auth(a, NULL), -1);
	assert_int_equal(sp_agents_auth(NULL, "Bearer " TOKEN1), -1);
	assert_string_equal(sp_agents_name(a, 1), "build-2");
}

static void test_route(void **state)
{
	int64_t job;

	(void)state;
	assert_int_equal(sp_agents_route("/api/agent/lease", &job), SP_AGENTS_OP_LEASE);
	assert_int_equal(sp_agents_route("/api/agents", &job), SP_AGENTS_OP_LIST);
	assert_int_equal(sp_agents_route("/api/agent/jobs/42/events", &job), SP_AGENTS_OP_EVENTS);
	assert_int_equal(job, 42);
	assert_int_equal(sp_agents_route("/api/agent/jobs/7/promote", &job),
			 SP_AGENTS_OP_PROMOTE);
	assert_int_equal(sp_agents_route("/api/agent/jobs/7/finish", &job), SP_AGENTS_OP_FINISH);
	assert_int_equal(sp_agents_route("/api/agent/jobs/07/finish", &job), SP_AGENTS_OP_NONE);
	assert_int_equal(sp_agents_route("/api/agent/jobs/x/finish", &job), SP_AGENTS_OP_NONE);
	assert_int_equal(sp_agents_route("/api/agent/jobs/7", &job), SP_AGENTS_OP_NONE);
	assert_int_equal(sp_agents_route("/api/agent/jobs/7/other", &job), SP_AGENTS_OP_NONE);
	assert_int_equal(sp_agents_route("/api/agent/leases", &job), SP_AGENTS_OP_NONE);
	assert_int_equal(sp_agents_route("/api/agent/jobs/1234567890123456789/events", &job),
			 SP_AGENTS_OP_NONE);
}

/* ---- a job's whole life ---- */

static char *read_log(struct fix *f, int64_t job, const char *stage)
{
	char path[4096];

	assert_int_equal(sp_logs_path(path, sizeof(path), f->dir, job, stage), 0);
	return sp_test_read_file(path, NULL);
}

static void test_job_life(void **state)
{
	struct fix *f = *state;
	struct sp_agents *a = f->srv.agents;
	struct sp_agents_reply r;
	struct sp_agents_call c;
	const cJSON *cr;
	cJSON *list, *job = NULL;
	struct sp_error err = SP_ERROR_INIT;
	int64_t id = create(f, "app", NULL), epoch;
	char *log;
	int configured, online;
	const char *batch1 =
		"{\"event\":\"pipeline_started\",\"pipeline\":\"app\",\"stages\":[\"build\"]}\n"
		"{\"event\":\"stage_started\",\"stage\":\"build\"}\n"
		"{\"event\":\"log\",\"stage\":\"build\",\"stream\":\"stdout\",\"line\":\"one\"}\n";
	const char *batch2 =
		"{\"event\":\"log\",\"stage\":\"build\",\"stream\":\"stdout\",\"line\":\"two\"}\n"
		"{\"event\":\"stage_finished\",\"stage\":\"build\",\"result\":\"passed\","
		"\"seconds\":1.5}\n"
		"{\"event\":\"pipeline_finished\",\"pipeline\":\"app\",\"result\":\"passed\","
		"\"seconds\":2}\n";

	(void)state;
	sp_agents_counts(a, &configured, &online);
	assert_int_equal(configured, 2);
	assert_int_equal(online, 0);

	lease(f, 0, LEASE1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(jnum(r.body, "job"), id);
	epoch = (int64_t)jnum(r.body, "epoch");
	assert_true(epoch >= 1);
	assert_int_equal(r.leased_job, id);
	assert_int_equal(r.leased_epoch, epoch);
	assert_int_equal(jnum(r.body, "attempt"), 1);
	assert_int_equal(jnum(r.body, "ttl_ms"), 30000);
	assert_string_equal(jstr(r.body, "repo"), "app");
	assert_string_equal(jstr(r.body, "repo_url"), "https://git.example.com/team/app.git");
	assert_string_equal(jstr(r.body, "ref"), "refs/heads/main");
	assert_string_equal(jstr(r.body, "sha"), SHA);
	assert_string_equal(jstr(r.body, "event"), "push");
	assert_string_equal(jstr(r.body, "event_ref"), "main");
	assert_string_equal(jstr(r.body, "pipeline"), "ci.yml");
	{
		char label[40];
		snprintf(label, sizeof(label), "srv-%lld", (long long)id);
		assert_string_equal(jstr(r.body, "job_label"), label);
	}
	assert_int_equal(jnum(r.body, "timeout_ms"), 7200000);
	cr = cJSON_GetObjectItemCaseSensitive(r.body, "credentials");
	assert_non_null(cr);
	assert_string_equal(jstr(cr, "user"), "x-access-token");
	assert_string_equal(jstr(cr, "token"), "git-token-secret");
	cr = cJSON_GetObjectItemCaseSensitive(r.body, "secrets");
	assert_non_null(cr);
	assert_string_equal(jstr(cr, "API_TOKEN"), "api-secret-value");
	sp_agents_reply_release(&r);
	assert_state(f, id, "running");

	/* seen: online, labels, running */
	sp_agents_counts(a, &configured, &online);
	assert_int_equal(online, 1);
	list = sp_agents_list(a);
	{
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(list, "agents");
		const cJSON *a0 = cJSON_GetArrayItem(arr, 0), *a1 = cJSON_GetArrayItem(arr, 1);
		assert_int_equal(cJSON_GetArraySize(arr), 2);
		assert_string_equal(jstr(a0, "name"), "build-1");
		assert_true(jbool(a0, "online"));
		assert_non_null(jstr(a0, "last_seen"));
		assert_string_equal(jstr(a0, "address"), "192.0.2.7");
		assert_int_equal(jnum(a0, "free"), 2);
		assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a0,
						       "labels"), 1)->valuestring, "big");
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a0, "running")),
				 1);
		assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a0, "running"),
						    0)->valuedouble, id);
		/* configured, never seen */
		assert_string_equal(jstr(a1, "name"), "build-2");
		assert_false(jbool(a1, "online"));
		assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a1, "last_seen")));
		assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a1, "address")));
	}
	cJSON_Delete(list);

	/* batch 1, then batch 1 again (a retry after a lost answer): applied once */
	c = call(0, id, epoch, 1, batch1);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	assert_false(jbool(r.body, "cancel"));
	sp_agents_reply_release(&r);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	/* a heartbeat (empty body) */
	c = call(0, id, epoch, 2, NULL);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 3, batch2);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	/* an older seq again: not applied */
	c = call(0, id, epoch, 2, batch1);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	/* bad numbers */
	c = call(0, id, epoch, 0, batch1);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 400);
	sp_agents_reply_release(&r);

	/* another agent's job */
	c = call(1, id, epoch, 9, batch1);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 403);
	sp_agents_reply_release(&r);
	c = call(1, id, epoch, 0, "{\"stage\":\"release\"}");
	sp_agents_promote(a, &c, &r);
	assert_int_equal(r.status, 403);
	sp_agents_reply_release(&r);

	/* the promote permit: once per job, to this epoch (again if it asks again) */
	c = call(0, id, epoch, 0, "{\"stage\":\"release\"}");
	sp_agents_promote(a, &c, &r);
	assert_int_equal(r.status, 200);
	assert_true(jbool(r.body, "granted"));
	sp_agents_reply_release(&r);
	sp_agents_promote(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);

	/* finish: bad states first */
	c = call(0, id, epoch, 0, "{\"state\":\"running\"}");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 400);
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 0, "not json");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 400);
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 0, "{\"state\":\"passed\",\"reason\":\"17 tests passed\","
		 "\"exit_code\":0,\"seconds\":31.2}");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	/* retried after a lost answer: the same result stands */
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	/* but another result for it is stale */
	c = call(0, id, epoch, 0, "{\"state\":\"failed\"}");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 409);
	assert_true(jbool(r.body, "stale"));
	sp_agents_reply_release(&r);

	assert_int_equal(sp_store_job_get(f->srv.store, id, &job, &err), 0);
	assert_string_equal(jstr(job, "state"), "passed");
	assert_string_equal(jstr(job, "agent"), "build-1");
	assert_true(jbool(job, "promoted"));
	assert_string_equal(jstr(job, "pipeline"), "app");  /* from the events' summary */
	{
		const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(job, "stages"),
						     0);
		assert_string_equal(jstr(st, "name"), "build");
		assert_string_equal(jstr(st, "state"), "passed");
	}
	cJSON_Delete(job);

	/* each log line once, in order */
	log = read_log(f, id, "build");
	assert_string_equal(log, "one\ntwo\n");
	free(log);
	log = read_log(f, id, "_job");
	assert_non_null(strstr(log, "on agent build-1"));
	assert_non_null(strstr(log, "agent build-1: passed: 17 tests passed"));
	assert_null(strstr(log, "git-token-secret"));
	free(log);

	/* no longer running on the agent */
	list = sp_agents_list(a);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "agents"), 0),
		"running")), 0);
	cJSON_Delete(list);
}

/* ---- lease bodies and labels ---- */

static void test_lease_refusals(void **state)
{
	struct fix *f = *state;
	struct sp_agents_reply r;
	static const struct {
		const char *body;
		unsigned int status;
	} cases[] = {
		{ NULL, 400 },
		{ "[]", 400 },
		{ "{\"free\":1}", 400 },
		{ "{\"agent\":\"build-2\",\"free\":1}", 403 },
		{ "{\"agent\":\"build-1\",\"free\":0}", 400 },
		{ "{\"agent\":\"build-1\"}", 400 },
		{ "{\"agent\":\"build-1\",\"free\":1.5}", 400 },
		{ "{\"agent\":\"build-1\",\"free\":1,\"labels\":[\"a b\"]}", 400 },
		{ "{\"agent\":\"build-1\",\"free\":1,\"labels\":\"linux\"}", 400 },
		{ "{\"agent\":\"build-1\",\"free\":1,\"running\":[\"x\"]}", 400 },
		{ "{\"agent\":\"build-1\",\"free\":1}", 204 },  /* nothing queued */
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lease(f, 0, cases[i].body, 0, &r);
		if (r.status != cases[i].status)
			fail_msg("case %zu: status %u, wanted %u", i, r.status, cases[i].status);
		if (r.status == 403)
			assert_string_equal(jstr(r.body, "error"),
					    "this token belongs to agent build-1");
		sp_agents_reply_release(&r);
	}
}

static void test_labels(void **state)
{
	struct fix *f = *state;
	struct sp_agents_reply r;
	int64_t id = create(f, "web", "linux");

	/* build-2 has no labels: not for it */
	lease(f, 1, LEASE2, 0, &r);
	assert_int_equal(r.status, 204);
	assert_null(r.body);
	/* build-1 has linux */
	lease(f, 0, LEASE1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(jnum(r.body, "job"), id);
	/* no git: credentials and no secrets for this repo */
	assert_null(cJSON_GetObjectItemCaseSensitive(r.body, "credentials"));
	assert_null(cJSON_GetObjectItemCaseSensitive(r.body, "secrets"));
	sp_agents_reply_release(&r);
}

/* ---- fencing and requeue ---- */

static void test_stale_after_expiry(void **state)
{
	struct fix *f = *state;
	struct sp_agents *a = f->srv.agents;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agents_reply r;
	struct sp_agents_call c;
	int64_t id = create(f, "app", NULL), epoch;
	int requeued = 0, failed = 0;

	f->cfg.lease_ttl_ms = 1000;
	lease(f, 0, LEASE1, 0, &r);
	assert_int_equal(r.status, 200);
	epoch = r.leased_epoch;
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 1, "{\"event\":\"log\",\"line\":\"x\"}\n");
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);

	/* no heartbeat for longer than the TTL: the keeper takes it back */
	sleep_ms(1300);
	assert_int_equal(sp_store_expire(f->srv.store, 3, &requeued, &failed, &err), 0);
	assert_int_equal(requeued, 1);
	assert_state(f, id, "queued");

	c = call(0, id, epoch, 2, "{\"event\":\"log\",\"line\":\"late\"}\n");
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 409);
	assert_true(jbool(r.body, "stale"));
	assert_non_null(jstr(r.body, "error"));
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 0, "{\"stage\":\"release\"}");
	sp_agents_promote(a, &c, &r);
	assert_int_equal(r.status, 409);
	assert_false(jbool(r.body, "granted"));
	assert_true(jbool(r.body, "stale"));
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 0, "{\"state\":\"passed\"}");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 409);
	assert_true(jbool(r.body, "stale"));
	sp_agents_reply_release(&r);
	assert_state(f, id, "queued");

	/* build-2 takes it at the next epoch; build-1's old epoch stays fenced */
	lease(f, 1, "{\"agent\":\"build-2\",\"free\":1}", 0, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.leased_job, id);
	assert_true(r.leased_epoch > epoch);
	assert_int_equal(jnum(r.body, "attempt"), 2);
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 3, NULL);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 409);
	sp_agents_reply_release(&r);
}

static void test_requeue_and_cancel(void **state)
{
	struct fix *f = *state;
	struct sp_agents *a = f->srv.agents;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agents_reply r;
	struct sp_agents_call c;
	enum sp_job_state after;
	int64_t id = create(f, "app", NULL), epoch;

	lease(f, 0, LEASE1, 0, &r);
	epoch = r.leased_epoch;
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 0, "{\"state\":\"requeue\",\"reason\":\"agent shutting down\"}");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	assert_state(f, id, "queued");

	/* leased again: attempt 2; an API cancel reaches the agent at its next batch */
	lease(f, 0, LEASE1, 0, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(jnum(r.body, "attempt"), 2);
	epoch = r.leased_epoch;
	sp_agents_reply_release(&r);
	assert_int_equal(sp_store_cancel(f->srv.store, id, "cancelled through the API", &after,
					 &err), 0);
	c = call(0, id, epoch, 1, NULL);
	sp_agents_events(a, &c, &r);
	assert_int_equal(r.status, 200);
	assert_true(jbool(r.body, "cancel"));
	sp_agents_reply_release(&r);
	c = call(0, id, epoch, 0, "{\"state\":\"cancelled\",\"exit_code\":130}");
	sp_agents_job_finish(a, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	assert_state(f, id, "cancelled");

	/* the lease answer could not be sent: back to the queue at once */
	id = create(f, "app", NULL);
	lease(f, 0, LEASE1, 0, &r);
	assert_int_equal(r.leased_job, id);
	sp_agents_unlease(a, 0, r.leased_job, r.leased_epoch);
	sp_agents_reply_release(&r);
	assert_state(f, id, "queued");
}

/* A job whose events come after a server restart (no state kept in memory). */
static void test_events_without_lease_state(void **state)
{
	struct fix *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agents_reply r;
	struct sp_agents_call c;
	struct sp_lease_req req = { .agent = "build-1", .labels = NULL, .ttl_ms = 30000 };
	struct sp_lease l;
	int64_t id = create(f, "app", NULL);

	memset(&l, 0, sizeof(l));
	assert_int_equal(sp_store_lease(f->srv.store, &req, &l, &err), 0);
	assert_int_equal(l.job_id, id);
	/* build-2 cannot write to it, build-1 can */
	c = call(1, id, l.epoch, 1, "{\"event\":\"log\",\"line\":\"x\"}\n");
	sp_agents_events(f->srv.agents, &c, &r);
	assert_int_equal(r.status, 403);
	sp_agents_reply_release(&r);
	c = call(0, id, l.epoch, 1, "{\"event\":\"log\",\"line\":\"x\"}\n");
	sp_agents_events(f->srv.agents, &c, &r);
	assert_int_equal(r.status, 200);
	sp_agents_reply_release(&r);
	/* its batches count as signs of life: online, with the job, before
	 * any lease call of this server's */
	{
		cJSON *list = sp_agents_list(f->srv.agents);
		const cJSON *ag = cJSON_GetArrayItem(cJSON_GetObjectItem(list, "agents"), 0);

		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ag, "online")));
		assert_int_equal((int64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(ag, "running"),
							     0)->valuedouble, id);
		cJSON_Delete(list);
	}
	c = call(0, id + 100, 1, 1, NULL);
	sp_agents_events(f->srv.agents, &c, &r);
	assert_int_equal(r.status, 404);
	sp_agents_reply_release(&r);
	sp_lease_release(&l);
}

/* ---- long-polls ---- */

struct poller {
	struct fix *f;
	int agent;
	const char *body;
	struct sp_agents_reply r;
	pthread_t th;
};

static void *poll_main(void *arg)
{
	struct poller *p = arg;

	lease(p->f, p->agent, p->body, 30, &p->r);
	return NULL;
}

static void test_long_poll(void **state)
{
	struct fix *f = *state;
	struct poller p;
	int64_t id;

	/* woken by a queued job */
	memset(&p, 0, sizeof(p));
	p.f = f;
	p.agent = 0;
	p.body = LEASE1;
	assert_int_equal(pthread_create(&p.th, NULL, poll_main, &p), 0);
	sleep_ms(200);
	id = create(f, "app", NULL);
	sp_server_queued(&f->srv);  /* no workers here: NULL-safe */
	pthread_join(p.th, NULL);
	assert_int_equal(p.r.status, 200);
	assert_int_equal(p.r.leased_job, id);
	sp_agents_reply_release(&p.r);

	/* ended by a drain: 204; a new lease call is refused with 503 */
	memset(&p.r, 0, sizeof(p.r));
	assert_int_equal(pthread_create(&p.th, NULL, poll_main, &p), 0);
	sleep_ms(200);
	atomic_store(&f->srv.draining, true);
	sp_agents_wake(f->srv.agents);
	pthread_join(p.th, NULL);
	assert_int_equal(p.r.status, 204);
	lease(f, 0, LEASE1, 0, &p.r);
	assert_int_equal(p.r.status, 503);
	sp_agents_reply_release(&p.r);
	atomic_store(&f->srv.draining, false);

	/* ended by the HTTP daemons stopping */
	memset(&p.r, 0, sizeof(p.r));
	assert_int_equal(pthread_create(&p.th, NULL, poll_main, &p), 0);
	sleep_ms(200);
	sp_agents_stop(f->srv.agents);
	pthread_join(p.th, NULL);
	assert_int_equal(p.r.status, 204);
}

static bool gone_after_two(void *ud)
{
	int *n = ud;

	return ++*n >= 2;
}

static void test_long_poll_client_gone(void **state)
{
	struct fix *f = *state;
	struct sp_agents_call c = call(0, 0, 0, 0, LEASE1);
	struct sp_agents_reply r;
	int n = 0;

	c.wait_s = 30;
	c.gone = gone_after_two;
	c.ud = &n;
	sp_agents_lease(f->srv.agents, &c, &r);
	assert_int_equal(r.status, 204);
	assert_int_equal(n, 2);
}

/* ---- local slots: labels and the repo's git: credentials ---- */

static void wait_final(struct fix *f, int64_t id)
{
	int i;

	for (i = 0; i < 600; i++) {  /* a generous minute */
		char *s = job_state(f, id);
		bool final = strcmp(s, "queued") && strcmp(s, "running");
		free(s);
		if (final)
			return;
		sleep_ms(100);
	}
	fail_msg("job %lld did not end", (long long)id);
}

static void test_worker_labels_and_git_env(void **state)
{
	struct fix *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	char *exe = sp_test_fixture_path("server", "fake_git_env.sh"), *log, *st;
	int64_t labelled, id;

	/* the server's own environment has other credentials: the repo's win */
	setenv("STAGEPIPE_GIT_TOKEN", "from-the-server-env", 1);
	f->cfg.workers = 1;
	f->cfg.stagepipe = exe;
	f->srv.self_exe = exe;
	labelled = create(f, "web", "linux");
	id = create(f, "app", NULL);
	if (sp_workers_start(&f->srv.workers, &f->srv, &err) < 0)
		fail_msg("workers: %s", err.msg);
	wait_final(f, id);
	assert_state(f, id, "passed");
	log = read_log(f, id, "test");
	assert_string_equal(log, "user=x-access-token token=git-token-secret\n");
	free(log);
	/* the slot has no labels: the job that requires one is left to agents */
	st = job_state(f, labelled);
	assert_string_equal(st, "queued");
	free(st);
	sp_workers_drain(f->srv.workers, 0);
	sp_workers_free(f->srv.workers);
	f->srv.workers = NULL;

	/* with worker_labels it is taken; a repo without git: gets the
	 * server's own environment */
	f->cfg.worker_labels = W("linux,big");
	if (sp_workers_start(&f->srv.workers, &f->srv, &err) < 0)
		fail_msg("workers: %s", err.msg);
	wait_final(f, labelled);
	assert_state(f, labelled, "passed");
	log = read_log(f, labelled, "test");
	assert_string_equal(log, "user=unset token=from-the-server-env\n");
	free(log);
	sp_workers_drain(f->srv.workers, 0);
	sp_workers_free(f->srv.workers);
	f->srv.workers = NULL;
	unsetenv("STAGEPIPE_GIT_TOKEN");
	free(exe);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test(test_route),
		cmocka_unit_test_setup_teardown(test_job_life, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_after_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_without_lease_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_poll_client_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_labels_and_git_env, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
