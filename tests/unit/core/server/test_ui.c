/*
 * test_ui.c — the web UI's server side (core/server/ui.c) through its
 * plain functions: token comparison and the session cookie's value, the
 * Cookie header, log ranges at every edge, content types, the embedded
 * asset table, badges (escaped), GET /api/repos's JSON from a real SQLite
 * store, and the job change stream (GET /api/events): its events, resuming
 * from Last-Event-ID, and ending when the server stops.  The HTTP glue
 * (who may read, cookies, CSRF header, 304s) is tested against a real
 * `serve` by tests/integration/test_ui_http.sh.
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

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/server/http_internal.h"
#include "core/store/store.h"
#include "tests/unit/support/testutil.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"
#define W(s) ((char *)(uintptr_t)(s))

/* ---- pure helpers ---------------------------------------------------------- */

static void test_token_eq(void **state)
{
	(void)state;
	assert_true(sp_ui_token_eq("s3cret", "s3cret", 6));
	assert_false(sp_ui_token_eq("s3cret", "s3cre", 5));
	assert_false(sp_ui_token_eq("s3cret", "s3cret!", 7));
	assert_false(sp_ui_token_eq("s3cret", "S3cret", 6));
	assert_false(sp_ui_token_eq("s3cret", "", 0));
	assert_false(sp_ui_token_eq(NULL, "s3cret", 6));
	assert_false(sp_ui_token_eq("s3cret", NULL, 0));
	/* got need not be NUL-terminated at got_len */
	assert_true(sp_ui_token_eq("abc", "abcdef", 3));
}

static void test_session_value(void **state)
{
	char a[65], b[65], c[65];
	size_t i;

	(void)state;
	sp_ui_session_value("admin-token-1", a);
	sp_ui_session_value("admin-token-1", b);
	sp_ui_session_value("admin-token-2", c);
	assert_int_equal(strlen(a), 64);
	for (i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_null(strstr(a, "admin"));
}

static void test_cookie_find(void **state)
{
	const char *v;
	size_t n;

	(void)state;
	assert_true(sp_ui_cookie_find("a=1; sp_token=abc; b=2", "sp_token", &v, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(v, "abc", 3);
	assert_true(sp_ui_cookie_find("sp_token_x=1;sp_token=zz", "sp_token", &v, &n));
	assert_int_equal(n, 2);
	assert_memory_equal(v, "zz", 2);
	assert_true(sp_ui_cookie_find("sp_token=\"q\"", "sp_token", &v, &n));
	assert_int_equal(n, 1);
	assert_memory_equal(v, "q", 1);
	assert_true(sp_ui_cookie_find("x=1; sp_token=last  ", "sp_token", &v, &n));
	assert_int_equal(n, 4);
	assert_false(sp_ui_cookie_find("x=1; xsp_token=2", "sp_token", &v, &n));
	assert_false(sp_ui_cookie_find("", "sp_token", &v, &n));
	assert_false(sp_ui_cookie_find("sp_token", "sp_token", &v, &n));
	assert_null(v);
}

static void range(const char *h, uint64_t size, int want, uint64_t from, uint64_t to)
{
	uint64_t f = 77, t = 77;
	int rc = sp_ui_range(h, size, &f, &t);

	if (rc != want)
		fail_msg("range \"%s\" of %llu: %d, wanted %d", h ? h : "(none)",
			 (unsigned long long)size, rc, want);
	if (rc == 1 && (f != from || t != to))
		fail_msg("range \"%s\" of %llu: %llu-%llu, wanted %llu-%llu", h,
			 (unsigned long long)size, (unsigned long long)f, (unsigned long long)t,
			 (unsigned long long)from, (unsigned long long)to);
}

static void test_range(void **state)
{
	(void)state;
	/* no range, or one we do not serve: the whole file */
	range(NULL, 100, 0, 0, 0);
	range("items=0-1", 100, 0, 0, 0);
	range("bytes=0-1,5-9", 100, 0, 0, 0);
	range("bytes=9-5", 100, 0, 0, 0);
	range("bytes=x-", 100, 0, 0, 0);
	range("bytes=-", 100, 0, 0, 0);
	range("bytes=--5", 100, 0, 0, 0);
	range("bytes=99999999999999999999-", 100, 0, 0, 0);
	/* bytes=A- */
	range("bytes=0-", 100, 1, 0, 99);
	range("bytes=40-", 100, 1, 40, 99);
	range("bytes=99-", 100, 1, 99, 99);
	range("bytes=100-", 100, -1, 0, 0);
	range("bytes=0-", 0, -1, 0, 0);
	/* bytes=A-B */
	range("bytes=0-0", 100, 1, 0, 0);
	range("bytes=10-19", 100, 1, 10, 19);
	range("bytes=90-500", 100, 1, 90, 99);   /* B past the end: to the end */
	range("bytes=100-200", 100, -1, 0, 0);   /* A past the end */
	range("bytes=0-10", 0, -1, 0, 0);
	/* bytes=-N: the last N */
	range("bytes=-10", 100, 1, 90, 99);
	range("bytes=-100", 100, 1, 0, 99);
	range("bytes=-262144", 100, 1, 0, 99);   /* more than the file: all of it */
	range("bytes=-1", 1, 1, 0, 0);
	range("bytes=-0", 100, -1, 0, 0);
	range("bytes=-5", 0, 0, 0, 0);           /* empty: the whole (empty) file */
}

static void test_content_type(void **state)
{
	(void)state;
	assert_string_equal(sp_ui_content_type("app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(sp_ui_content_type("x/y.mjs"), "text/javascript; charset=utf-8");
	assert_string_equal(sp_ui_content_type("style.css"), "text/css; charset=utf-8");
	assert_string_equal(sp_ui_content_type("favicon.svg"), "image/svg+xml");
	assert_string_equal(sp_ui_content_type("index.HTML"), "text/html; charset=utf-8");
	assert_string_equal(sp_ui_content_type("README"), "application/octet-stream");
	assert_string_equal(sp_ui_content_type("a.js/b"), "application/octet-stream");
}

static void test_assets(void **state)
{
	static const unsigned char one[] = "hello", two[] = "";
	const struct sp_ui_asset table[] = {
		{ "app.js", one, one + 5 },
		{ "sub/x.svg", two, two },
		{ NULL, NULL, NULL },
	};
	const struct sp_ui_asset *a;

	(void)state;
	a = sp_ui_asset_find(table, "sub/x.svg");
	assert_ptr_equal(a, &table[1]);
	assert_null(sp_ui_asset_find(table, "sub"));
	assert_null(sp_ui_asset_find(table, "../app.js"));
	/* the table built from web/: well formed, each entry ends with a NUL */
	for (a = sp_ui_assets; a->path; a++) {
		assert_true(a->end >= a->data);
		assert_int_equal(*a->end, 0);
		assert_null(strstr(a->path, ".."));
	}
}

static void test_badge(void **state)
{
	char *svg;

	(void)state;
	svg = sp_ui_badge_svg("app main", "passed");
	assert_non_null(strstr(svg, "<svg "));
	assert_non_null(strstr(svg, ">passed<"));
	assert_non_null(strstr(svg, "#4c1"));
	assert_non_null(strstr(svg, "<title>app main: passed</title>"));
	free(svg);
	svg = sp_ui_badge_svg("a", "failed");
	assert_non_null(strstr(svg, ">failed<"));
	assert_non_null(strstr(svg, "#e05d44"));
	free(svg);
	svg = sp_ui_badge_svg("a", "running");
	assert_non_null(strstr(svg, ">running<"));
	assert_non_null(strstr(svg, "#007ec6"));
	free(svg);
	svg = sp_ui_badge_svg("a", "error");
	assert_non_null(strstr(svg, ">error<"));
	free(svg);
	svg = sp_ui_badge_svg("a", NULL);
	assert_non_null(strstr(svg, ">no builds<"));
	free(svg);
	/* hostile repository and branch text is escaped */
	svg = sp_ui_badge_svg("app <script>alert(\"x\")</script>&'\x01", "passed");
	assert_null(strstr(svg, "<script"));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;?"));
	free(svg);
}

/* ---- with a store ------------------------------------------------------------ */

struct fix {
	char *dir;
	struct sp_repo_config repos[2];
	struct sp_server_config cfg;
	struct sp_server srv;
	struct sp_http h;
};

static int setup(void **state)
{
	struct fix *f = sp_xcalloc(1, sizeof(*f));

	f->dir = sp_test_tempdir("sp-ui-");
	f->srv.store = sp_test_store_open(f->dir);
	f->repos[0].name = W("app");
	f->repos[0].url = W("https://ci-bot:hunter2@git.example.com/team/app.git");
	f->repos[0].forge = SP_FORGE_GITHUB;
	f->repos[1].name = W("web");
	f->repos[1].url = W("file:///srv/web.git");
	f->repos[1].forge = SP_FORGE_GITEA;
	f->cfg.data = f->dir;
	f->cfg.repos = f->repos;
	f->cfg.nrepos = 2;
	f->srv.cfg = &f->cfg;
	atomic_init(&f->srv.draining, false);
	f->h.srv = &f->srv;
	atomic_init(&f->h.stopping, false);
	atomic_init(&f->h.sse_streams, 0);
	sp_ui_init(&f->h);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	sp_ui_release(&f->h);
	sp_store_close(f->srv.store);
	sp_test_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static int64_t create(struct fix *f, const char *repo, const char *event, const char *branch)
{
	char ref[128];
	struct sp_job_spec j = { .repo = repo, .event = event, .ref = ref, .branch = branch,
				 .sha = SHA, .title = "Add <b>things</b>", .author = "Ann" };
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;

	snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
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

static void test_repos_json(void **state)
{
	struct fix *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	const cJSON *repos, *app, *web, *br, *b;
	int64_t m1, m2, fx;
	cJSON *j = NULL;
	char *text;

	m1 = create(f, "app", "push", "main");
	fx = create(f, "app", "push", "feature/x");
	m2 = create(f, "app", "push", "main");
	create(f, "app", "pull_request", "main");
	assert_true(m1 < m2);
	assert_int_equal(sp_ui_repos_json(&f->srv, &j, &err), 0);
	repos = cJSON_GetObjectItemCaseSensitive(j, "repos");
	assert_int_equal(cJSON_GetArraySize(repos), 2);
	app = cJSON_GetArrayItem(repos, 0);
	web = cJSON_GetArrayItem(repos, 1);
	assert_string_equal(jstr(app, "name"), "app");
	assert_string_equal(jstr(app, "forge"), "github");
	assert_string_equal(jstr(app, "url_display"), "https://git.example.com/team/app.git");
	text = cJSON_PrintUnformatted(j);
	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "ci-bot"));
	free(text);
	br = cJSON_GetObjectItemCaseSensitive(app, "branches");
	assert_int_equal(cJSON_GetArraySize(br), 2);
	b = cJSON_GetArrayItem(br, 0);
	assert_string_equal(jstr(b, "branch"), "main");
	assert_int_equal(cJSON_GetObjectItem(b, "job")->valuedouble, (double)m2);
	assert_string_equal(jstr(b, "state"), "queued");
	assert_string_equal(jstr(b, "sha"), SHA);
	assert_string_equal(jstr(b, "title"), "Add <b>things</b>");
	assert_string_equal(jstr(b, "author"), "Ann");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "finished")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "seconds")));
	assert_non_null(cJSON_GetObjectItem(b, "tests"));
	b = cJSON_GetArrayItem(br, 1);
	assert_string_equal(jstr(b, "branch"), "feature/x");
	assert_int_equal(cJSON_GetObjectItem(b, "job")->valuedouble, (double)fx);
	assert_string_equal(jstr(web, "url_display"), "/srv/web.git");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(web, "branches")), 0);
	cJSON_Delete(j);
}

/* Reads the stream until its output holds want (or it ends); the text. */
static char *read_until(struct sp_ui_events *e, const char *want, bool *ended)
{
	struct sp_buf b = SP_BUF_INIT;
	char chunk[256];
	ssize_t n;

	*ended = false;
	while (!strstr(b.data, want)) {
		n = sp_ui_events_read(e, 0, chunk, sizeof(chunk));
		if (n == MHD_CONTENT_READER_END_OF_STREAM) {
			*ended = true;
			break;
		}
		assert_true(n > 0);
		sp_buf_add(&b, chunk, (size_t)n);
	}
	return sp_buf_detach(&b, NULL);
}

static void test_events(void **state)
{
	struct fix *f = *state;
	struct sp_ui_events *e;
	char *text, want[64];
	bool ended;
	int64_t a, b;

	e = sp_ui_events_new(&f->h, -1);
	assert_int_equal(atomic_load(&f->h.sse_streams), 1);
	text = read_until(e, "\n\n", &ended);
	assert_false(ended);
	assert_non_null(strstr(text, "retry: "));
	free(text);

	a = create(f, "app", "push", "main");
	snprintf(want, sizeof(want), "data: {\"changed\":[%lld]}\n\n", (long long)a);
	text = read_until(e, want, &ended);
	assert_false(ended);
	assert_non_null(strstr(text, "event: jobs\n"));
	assert_non_null(strstr(text, "id: "));
	free(text);

	/* two changes between polls come as one event */
	b = create(f, "web", "push", "main");
	{
		struct sp_error err = SP_ERROR_INIT;
		enum sp_job_state after;
		assert_int_equal(sp_store_cancel(f->srv.store, a, "stop", &after, &err), 0);
	}
	snprintf(want, sizeof(want), "{\"changed\":[%lld,%lld]}", (long long)b, (long long)a);
	text = read_until(e, want, &ended);
	assert_false(ended);
	free(text);

	/* stopping ends the stream */
	atomic_store(&f->h.stopping, true);
	text = read_until(e, "never", &ended);
	assert_true(ended);
	free(text);
	sp_ui_events_free(e);
	assert_int_equal(atomic_load(&f->h.sse_streams), 0);
}

static void test_events_resume(void **state)
{
	struct fix *f = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ui_events *e;
	int64_t a, b, rev = -1, ids[4];
	size_t n;
	char *text, want[64];
	bool ended;

	a = create(f, "app", "push", "main");
	assert_int_equal(sp_store_job_changes(f->srv.store, -1, ids, 4, &n, &rev, &err), 0);
	b = create(f, "app", "push", "dev");
	(void)a;
	/* Last-Event-ID = rev: what changed after it comes at once */
	e = sp_ui_events_new(&f->h, rev);
	snprintf(want, sizeof(want), "{\"changed\":[%lld]}", (long long)b);
	text = read_until(e, want, &ended);
	assert_false(ended);
	free(text);
	sp_ui_events_free(e);

	/* an id from another database (past the store's newest): from now */
	e = sp_ui_events_new(&f->h, 999999);
	atomic_store(&f->h.stopping, true);
	text = read_until(e, "never", &ended);
	assert_true(ended);
	assert_null(strstr(text, "changed"));
	free(text);
	sp_ui_events_free(e);
}

struct stopper {
	struct sp_http *h;
};

static void *stop_soon(void *arg)
{
	struct stopper *s = arg;
	struct timespec ts = { 0, 300 * 1000000L };

	nanosleep(&ts, NULL);
	atomic_store(&s->h->stopping, true);
	return NULL;
}

/* A stream with nothing to say ends when the server stops (sp_http_stop). */
static void test_events_stop_while_idle(void **state)
{
	struct fix *f = *state;
	struct stopper s = { &f->h };
	struct sp_ui_events *e = sp_ui_events_new(&f->h, -1);
	pthread_t t;
	char *text;
	bool ended;

	text = read_until(e, "\n\n", &ended);  /* the prelude */
	free(text);
	assert_int_equal(pthread_create(&t, NULL, stop_soon, &s), 0);
	text = read_until(e, "never", &ended);
	assert_true(ended);
	free(text);
	pthread_join(t, NULL);
	sp_ui_events_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_eq),
		cmocka_unit_test(test_session_value),
		cmocka_unit_test(test_cookie_find),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_assets),
		cmocka_unit_test(test_badge),
		cmocka_unit_test_setup_teardown(test_repos_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_stop_while_idle, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
