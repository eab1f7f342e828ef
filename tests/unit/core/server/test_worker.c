/*
 * test_worker.c — the server's job slots, lease keeper and status sender
 * (core/server/worker.c, outbox.c) with a real SQLite store in a temporary
 * folder and tests/tools/fake_run.sh as the job program: how each way a
 * job ends becomes its state, the promote permit, an API cancel, a drain
 * that requeues, a job timeout, a lease taken back by the keeper, and the
 * outbox rows of repositories with and without statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/config.h"
#include "core/server/server.h"
#include "core/store/store.h"
#include "tests/unit/support/testutil.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"
/* config strings are char * (the loader owns them); these are never freed */
#define W(s) ((char *)(uintptr_t)(s))

struct fix {
	char *dir, *exe;
	char *env[4];
	struct sp_repo_config repos[2];
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
	const char *top = getenv("SP_TOP");

	f->dir = sp_test_tempdir("sp-worker-");
	f->exe = sp_xasprintf("%s/tests/tools/fake_run.sh", top && *top ? top : ".");
	f->srv.store = sp_test_store_open(f->dir);

	f->repos[0].name = W("app");
	f->repos[0].url = W("file:///srv/app.git");
	f->repos[0].forge = SP_FORGE_GITHUB;
	f->repos[0].pipeline = W("stagepipe.yml");
	f->repos[1].name = W("web");
	f->repos[1].url = W("file:///srv/web.git");
	f->repos[1].forge = SP_FORGE_GITEA;
	f->repos[1].pipeline = W("stagepipe.yml");
	f->repos[1].status.enabled = true;
	f->repos[1].status.api = W("http://127.0.0.1:1/api/v1");  /* refused at once */
	f->repos[1].status.project = W("team/web");
	f->repos[1].status.token = W("status-token-secret");
	f->repos[1].status.context = W("ci");

	f->cfg.data = f->dir;
	f->cfg.public_url = W("http://ci.example");
	f->cfg.workers = 2;
	f->cfg.lease_ttl_ms = 600;
	f->cfg.max_attempts = 3;
	f->cfg.job_timeout_ms = 20000;
	f->cfg.drain_timeout_ms = 1000;
	f->cfg.stagepipe = f->exe;
	f->cfg.env = f->env;
	f->cfg.repos = f->repos;
	f->cfg.nrepos = 2;
	f->srv.cfg = &f->cfg;
	f->srv.self_exe = "/no/such/stagepipe";  /* cfg.stagepipe wins */
	f->srv.metrics = sp_metrics_new();
	atomic_init(&f->srv.draining, false);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	size_t i;

	sp_workers_free(f->srv.workers);
	sp_outbox_free(f->srv.outbox);
	sp_store_close(f->srv.store);
	sp_metrics_free(f->srv.metrics);
	sp_test_rmtree(f->dir);
	for (i = 0; i < 4; i++)
		free(f->env[i]);
	free(f->dir);
	free(f->exe);
	free(f);
	return 0;
}

/* Sets the fake child's mode (and more NAME=value), then starts the slots. */
static void start(struct fix *f, const char *mode, const char *more)
{
	struct sp_error err = SP_ERROR_INIT;

	f->env[0] = sp_xasprintf("FAKE_MODE=%s", mode);
	f->env[1] = more ? sp_xstrdup(more) : NULL;
	if (sp_workers_start(&f->srv.workers, &f->srv, &err) < 0)
		fail_msg("workers: %s", err.msg);
}

static int64_t create(struct fix *f, const char *repo)
{
	struct sp_job_spec j = { .repo = repo, .event = "push", .ref = "refs/heads/main",
				 .branch = "main", .sha = SHA, .statuses = true };
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;

	if (sp_store_job_create(f->srv.store, &j, &res, &err))
		fail_msg("job_create: %s", err.msg);
	sp_workers_wake(f->srv.workers);
	return res.job_id;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Waits (up to 15 s) until the job is in one of the states "a|b"; returns
 * its detail (the caller deletes it). */
static cJSON *wait_state(struct fix *f, int64_t id, const char *states)
{
	struct sp_error err = SP_ERROR_INIT;
	int i;

	for (i = 0; i < 1500; i++) {
		cJSON *j = NULL;
		const char *s;

		if (sp_store_job_get(f->srv.store, id, &j, &err))
			fail_msg("job_get: %s", err.msg);
		s = jstr(j, "state");
		if (s && strstr(states, s))
			return j;
		cJSON_Delete(j);
		sleep_ms(10);
	}
	fail_msg("job %lld never reached %s", (long long)id, states);
	return NULL;
}

/* Until sp_workers_busy is n (15 s at most). */
static void wait_busy(struct fix *f, int n)
{
	int i;

	for (i = 0; i < 1500 && sp_workers_busy(f->srv.workers) != n; i++)
		sleep_ms(10);
	assert_int_equal(sp_workers_busy(f->srv.workers), n);
}

static char *log_text(struct fix *f, int64_t job, const char *stage)
{
	char path[512];

	assert_int_equal(sp_logs_path(path, sizeof(path), f->dir, job, stage), 0);
	return sp_test_read_file(path, NULL);
}

static void test_passed(void **state)
{
	struct fix *f = *state;
	int64_t id;
	cJSON *j;
	char *text;

	start(f, "pass", NULL);
	id = create(f, "app");
	j = wait_state(f, id, "passed|failed|error|cancelled|skipped");
	assert_string_equal(jstr(j, "state"), "passed");
	assert_string_equal(jstr(j, "pipeline"), "fake");
	assert_non_null(cJSON_GetObjectItemCaseSensitive(j, "summary"));
	cJSON_Delete(j);
	text = log_text(f, id, "test");
	assert_non_null(strstr(text, "arg srv-"));
	assert_non_null(strstr(text, "arg file:///srv/app.git"));
	assert_non_null(strstr(text, "arg --permit-stdin"));
	free(text);
	text = log_text(f, id, "_job");
	assert_non_null(strstr(text, "attempt 1 on local-"));
	assert_non_null(strstr(text, "stagepipe serve: passed"));
	free(text);
	/* the slot counts itself idle just after the store says passed */
	wait_busy(f, 0);
}

struct outcome { const char *mode, *more, *state, *reason; };

static void test_outcomes(void **state)
{
	static const struct outcome cases[] = {
		{ "fail", NULL, "failed", "stage test failed: 1 test failed" },
		{ "skipped", NULL, "skipped", "on: rules do not build this push" },
		/* the first FILE:LINE:COL line within the stderr tail (2 KiB) */
		{ "stderr", "FAKE_NOISE=10", "failed", "stagepipe.yml:3:5: unknown key" },
		{ "infra", NULL, "error", "cannot reach the engine" },
		{ "promote", NULL, "passed", NULL },
	};
	struct fix *f = *state;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t id;
		cJSON *j;

		sp_workers_free(f->srv.workers);
		free(f->env[0]);
		free(f->env[1]);
		start(f, cases[i].mode, cases[i].more);
		id = create(f, "app");
		j = wait_state(f, id, "passed|failed|error|cancelled|skipped");
		if (strcmp(jstr(j, "state"), cases[i].state))
			fail_msg("%s: state %s, want %s (reason %s)", cases[i].mode,
				 jstr(j, "state"), cases[i].state, jstr(j, "reason"));
		if (cases[i].reason && (!jstr(j, "reason") ||
					!strstr(jstr(j, "reason"), cases[i].reason)))
			fail_msg("%s: reason %s, want %s", cases[i].mode, jstr(j, "reason"),
				 cases[i].reason);
		if (!strcmp(cases[i].mode, "promote"))
			assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "promoted")));
		cJSON_Delete(j);
	}
}

static void test_repo_gone(void **state)
{
	struct fix *f = *state;
	int64_t id;
	cJSON *j;

	start(f, "pass", NULL);
	id = create(f, "gone");
	j = wait_state(f, id, "passed|failed|error|cancelled|skipped");
	assert_string_equal(jstr(j, "state"), "error");
	assert_string_equal(jstr(j, "reason"), "repository no longer configured");
	cJSON_Delete(j);
}

static void test_api_cancel(void **state)
{
	struct fix *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	enum sp_job_state after;
	int64_t id;
	cJSON *j;

	start(f, "sleep", NULL);
	id = create(f, "app");
	cJSON_Delete(wait_state(f, id, "running"));
	sleep_ms(300);
	assert_int_equal(sp_store_cancel(f->srv.store, id, "test", &after, &err), 0);
	j = wait_state(f, id, "passed|failed|error|cancelled|skipped");
	assert_string_equal(jstr(j, "state"), "cancelled");
	cJSON_Delete(j);
}

static void test_timeout(void **state)
{
	struct fix *f = *state;
	int64_t id;
	cJSON *j;

	f->cfg.job_timeout_ms = 400;
	start(f, "sleep", NULL);
	id = create(f, "app");
	j = wait_state(f, id, "passed|failed|error|cancelled|skipped");
	assert_string_equal(jstr(j, "state"), "failed");
	assert_string_equal(jstr(j, "reason"), "timed out after 400ms");
	cJSON_Delete(j);
}

static void test_drain_requeues(void **state)
{
	struct fix *f = *state;
	int64_t id;
	cJSON *j;

	start(f, "sleep", NULL);
	id = create(f, "app");
	cJSON_Delete(wait_state(f, id, "running"));
	/* the store says running a moment before the slot counts itself busy */
	wait_busy(f, 1);
	atomic_store(&f->srv.draining, true);
	sp_workers_drain(f->srv.workers, 200);
	assert_int_equal(sp_workers_busy(f->srv.workers), 0);
	j = wait_state(f, id, "queued");
	assert_non_null(strstr(jstr(j, "reason"), "server stopped"));
	cJSON_Delete(j);
}

static void test_drain_waits(void **state)
{
	struct fix *f = *state;
	int64_t id;
	cJSON *j;

	start(f, "sleep", "FAKE_SECONDS=1");
	id = create(f, "app");
	/* running in the store is not enough: a lease that meets the drain
	 * before its slot counts it busy is given back, rightly */
	wait_busy(f, 1);
	atomic_store(&f->srv.draining, true);
	sp_workers_drain(f->srv.workers, 10000);
	j = wait_state(f, id, "passed");
	cJSON_Delete(j);
}

static void test_keeper_takes_back_a_lost_lease(void **state)
{
	struct fix *f = *state;
	struct sp_lease_req q = { .agent = "gone-agent", .ttl_ms = 100 };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;
	struct sp_job_spec js = { .repo = "app", .event = "push", .ref = "refs/heads/main",
				  .branch = "main", .sha = SHA };
	struct sp_ingest_result res;
	cJSON *j;

	/* leased by an agent that never comes back, before our slots start */
	assert_int_equal(sp_store_job_create(f->srv.store, &js, &res, &err), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sp_store_lease(f->srv.store, &q, &l, &err), 0);
	start(f, "pass", NULL);
	j = wait_state(f, res.job_id, "passed|failed|error|cancelled|skipped");
	assert_string_equal(jstr(j, "state"), "passed");
	assert_true(cJSON_GetObjectItemCaseSensitive(j, "attempt")->valueint == 2);
	cJSON_Delete(j);
	sp_lease_release(&l);
}

static void test_outbox(void **state)
{
	struct fix *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store_counts c;
	int64_t app, web;
	int i;
	cJSON *j;

	start(f, "pass", NULL);
	assert_int_equal(sp_outbox_start(&f->srv.outbox, &f->srv, &err), 0);
	app = create(f, "app");
	web = create(f, "web");
	cJSON_Delete(wait_state(f, app, "passed"));
	cJSON_Delete(wait_state(f, web, "passed"));
	sp_outbox_wake(f->srv.outbox);
	/* app has no status: its rows are done; web's fail (connection refused)
	 * and wait for a retry */
	for (i = 0; i < 500; i++) {
		assert_int_equal(sp_store_counts(f->srv.store, &c, &err), 0);
		if (c.outbox_failing > 0 && c.outbox_pending == c.outbox_failing)
			break;
		sleep_ms(10);
	}
	assert_true(c.outbox_failing > 0);
	assert_int_equal(sp_store_job_get(f->srv.store, web, &j, &err), 0);
	{
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
		const char *le = jstr(st, "last_error");
		assert_non_null(le);
		assert_null(strstr(le, "status-token-secret"));
	}
	cJSON_Delete(j);
	assert_int_equal(sp_store_job_get(f->srv.store, app, &j, &err), 0);
	assert_true(cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(j, "status"), "pending")->valueint == 0);
	cJSON_Delete(j);
	sp_outbox_stop(f->srv.outbox, 100);
}

/* The server's secrets from its environment never reach a job, whose
 * pipeline could print them (${env.NAME}). */
static void test_secrets_not_in_job_env(void **state)
{
	struct fix *f = *state;
	int64_t id;
	cJSON *j;
	char *text;

	setenv("FAKE_VAR", "status-token-secret", 1);  /* repo web's status token */
	start(f, "env", NULL);
	id = create(f, "app");
	j = wait_state(f, id, "passed|failed|error|cancelled|skipped");
	assert_string_equal(jstr(j, "state"), "passed");
	cJSON_Delete(j);
	unsetenv("FAKE_VAR");
	text = log_text(f, id, "test");
	assert_null(strstr(text, "status-token-secret"));
	assert_non_null(strstr(text, "FAKE_VAR=unset"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_passed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repo_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_requeues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keeper_takes_back_a_lost_lease, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_not_in_job_env, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
