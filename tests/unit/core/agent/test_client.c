/*
 * test_client.c — the agent's HTTP side (core/agent/client.c): answers
 * parsed, the lease read and checked, the backoff schedule, and real
 * calls to a one-connection HTTP server on loopback in a thread (the
 * bearer header and the body arrive, the status comes back, an answer over
 * 1 MiB is an error, an interrupt ends a call that waits for its answer).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/agent/client.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

/* ---- answers ---- */

static void test_answer_parse(void **state)
{
	struct sp_agent_answer a = SP_AGENT_ANSWER_INIT;
	const char *body = "{\"granted\":false,\"stale\":true,\"reason\":\"not yours\"}";

	(void)state;
	sp_agent_answer_parse(&a, 409, body, strlen(body));
	assert_int_equal(a.status, 409);
	assert_non_null(a.json);
	assert_false(sp_agent_answer_bool(&a, "granted"));
	assert_true(sp_agent_answer_bool(&a, "stale"));
	assert_false(sp_agent_answer_bool(&a, "missing"));
	assert_string_equal(sp_agent_answer_reason(&a), "not yours");
	sp_agent_answer_release(&a);

	/* "error" wins over "reason" */
	body = "{\"error\":\"this token belongs to agent build-1\",\"reason\":\"x\"}";
	sp_agent_answer_parse(&a, 403, body, strlen(body));
	assert_string_equal(sp_agent_answer_reason(&a), "this token belongs to agent build-1");
	sp_agent_answer_release(&a);

	/* empty, not JSON, not an object: no json, reason "" */
	sp_agent_answer_parse(&a, 204, "", 0);
	assert_null(a.json);
	assert_string_equal(sp_agent_answer_reason(&a), "");
	sp_agent_answer_parse(&a, 502, "<html>bad gateway</html>", 24);
	assert_null(a.json);
	assert_int_equal(a.status, 502);
	sp_agent_answer_parse(&a, 200, "[1,2]", 5);
	assert_null(a.json);
	sp_agent_answer_release(&a);
}

/* ---- the lease ---- */

#define SHA "0123456789abcdef0123456789abcdef01234567"

static cJSON *lease_json(void)
{
	const char *s = "{\"job\": 42, \"epoch\": 3, \"attempt\": 2, \"ttl_ms\": 30000,"
			"\"repo\": \"app\", \"repo_url\": \"https://git.example.com/team/app.git\","
			"\"ref\": \"refs/heads/main\", \"sha\": \"" SHA "\", \"event\": \"push\","
			"\"event_ref\": \"main\", \"pipeline\": \"stagepipe.yml\","
			"\"job_label\": \"srv-42\", \"timeout_ms\": 7200000,"
			"\"credentials\": {\"user\": \"x-access-token\", \"token\": \"s3cret\"},"
			"\"secrets\": {\"API_TOKEN\": \"api-value\", \"B\": \"b=c\"}}";

	return cJSON_Parse(s);
}

static void test_lease_full(void **state)
{
	struct sp_agent_lease l;
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = lease_json();

	(void)state;
	assert_int_equal(sp_agent_lease_parse(&l, j, &err), 0);
	assert_int_equal(l.job, 42);
	assert_int_equal(l.epoch, 3);
	assert_int_equal(l.attempt, 2);
	assert_int_equal(l.ttl_ms, 30000);
	assert_int_equal(l.timeout_ms, 7200000);
	assert_string_equal(l.repo, "app");
	assert_string_equal(l.repo_url, "https://git.example.com/team/app.git");
	assert_string_equal(l.ref, "refs/heads/main");
	assert_string_equal(l.sha, SHA);
	assert_string_equal(l.event, "push");
	assert_string_equal(l.event_ref, "main");
	assert_string_equal(l.pipeline, "stagepipe.yml");
	assert_string_equal(l.job_label, "srv-42");
	assert_string_equal(l.git_user, "x-access-token");
	assert_string_equal(l.git_token, "s3cret");
	assert_int_equal(l.nsecrets, 2);
	assert_string_equal(l.secret_env[0], "API_TOKEN=api-value");
	assert_string_equal(l.secret_env[1], "B=b=c");
	sp_agent_lease_release(&l);
	assert_null(l.git_token);
	assert_null(l.secret_env);
	assert_int_equal(l.job, 0);
	cJSON_Delete(j);
}

static void test_lease_minimal(void **state)
{
	struct sp_agent_lease l;
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = cJSON_Parse("{\"job\": 7, \"epoch\": 1, \"repo_url\": \"https://h/r.git\","
			       "\"ref\": \"refs/tags/v1\"}");

	(void)state;
	assert_int_equal(sp_agent_lease_parse(&l, j, &err), 0);
	assert_int_equal(l.attempt, 1);
	assert_int_equal(l.ttl_ms, 30000);
	assert_int_equal(l.timeout_ms, 0);
	assert_string_equal(l.repo, "");
	assert_string_equal(l.job_label, "srv-7");
	assert_null(l.sha);
	assert_null(l.event_ref);
	assert_null(l.git_user);
	assert_null(l.git_token);
	assert_int_equal(l.nsecrets, 0);
	sp_agent_lease_release(&l);
	cJSON_Delete(j);

	/* malformed secrets: a bad name, a reserved one, a non-string value */
	{
		static const char *const bad[] = {
			"{\"A-B\": \"x\"}", "{\"STAGEPIPE_GIT_TOKEN\": \"x\"}", "{\"A\": 1}", "[1]",
		};
		size_t i;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *text = sp_xasprintf("{\"job\": 7, \"epoch\": 1, \"repo_url\": \"u\", "
						  "\"ref\": \"r\", \"secrets\": %s}", bad[i]);
			j = cJSON_Parse(text);
			assert_int_equal(sp_agent_lease_parse(&l, j, &err), SP_ERROR);
			assert_non_null(strstr(err.msg, "malformed secrets"));
			sp_agent_lease_release(&l);
			cJSON_Delete(j);
			free(text);
		}
	}

	/* a tiny ttl is raised to 1 s */
	j = cJSON_Parse("{\"job\": 7, \"epoch\": 1, \"repo_url\": \"u\", \"ref\": \"r\","
			"\"ttl_ms\": 10}");
	assert_int_equal(sp_agent_lease_parse(&l, j, &err), 0);
	assert_int_equal(l.ttl_ms, 1000);
	sp_agent_lease_release(&l);
	cJSON_Delete(j);
}

static void bad_lease(const char *json, const char *msg, int64_t job)
{
	struct sp_agent_lease l;
	struct sp_error err = SP_ERROR_INIT;
	cJSON *j = cJSON_Parse(json);

	assert_int_equal(sp_agent_lease_parse(&l, j, &err), SP_ERROR);
	if (!strstr(err.msg, msg))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, msg);
	assert_int_equal(l.job, job);
	sp_agent_lease_release(&l);
	cJSON_Delete(j);
}

static void test_lease_bad(void **state)
{
	(void)state;
	bad_lease("[]", "not a JSON object", 0);
	bad_lease("{\"epoch\": 1}", "no job id", 0);
	bad_lease("{\"job\": -1, \"epoch\": 1}", "no job id", 0);
	bad_lease("{\"job\": 1.5, \"epoch\": 1}", "no job id", 0);
	bad_lease("{\"job\": 4}", "no epoch", 0);
	/* job and epoch known: the job can be given back */
	bad_lease("{\"job\": 4, \"epoch\": 2, \"ref\": \"r\"}", "no repo_url", 4);
	bad_lease("{\"job\": 4, \"epoch\": 2, \"repo_url\": \"u\"}", "no valid ref", 4);
	bad_lease("{\"job\": 4, \"epoch\": 2, \"repo_url\": \"u\", \"ref\": \"--upload-pack=x\"}",
		  "no valid ref", 4);
	bad_lease("{\"job\": 4, \"epoch\": 2, \"repo_url\": \"u\", \"ref\": \"r\", \"sha\": \"abc\"}",
		  "malformed sha", 4);
	bad_lease("{\"job\": 4, \"epoch\": 2, \"repo_url\": \"u\", \"ref\": \"r\","
		  "\"job_label\": \"a b\"}", "malformed job_label", 4);
	bad_lease("{\"job\": 4, \"epoch\": 2, \"repo_url\": \"u\", \"ref\": \"r\","
		  "\"pipeline\": \"-x\"}", "starting with '-'", 4);
}

/* ---- backoff ---- */

static void test_backoff(void **state)
{
	static const long base[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };
	uint32_t rnd = 12345;
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		/* the ends of the jitter, and random values between */
		assert_int_equal(sp_agent_backoff_ms((int)i + 1, 0), base[i] - base[i] / 5);
		assert_int_equal(sp_agent_backoff_ms((int)i + 1, (uint32_t)(base[i] * 2 / 5)),
				 base[i] + base[i] / 5);
		for (k = 0; k < 100; k++) {
			long d;

			rnd ^= rnd << 13;
			rnd ^= rnd >> 17;
			rnd ^= rnd << 5;
			d = sp_agent_backoff_ms((int)i + 1, rnd);
			assert_true(d >= base[i] - base[i] / 5 && d <= base[i] + base[i] / 5);
		}
	}
	assert_true(sp_agent_backoff_ms(1000000, 0) <= 36000);
}

/* ---- real calls over loopback ---- */

struct server {
	int lfd;
	int port;
	const char *answer;   /* the whole response; NULL: never answer */
	size_t answer_len;
	char request[8192];
	size_t request_len;
	pthread_t th;
};

static void *serve_one(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	char buf[4096];
	ssize_t n;

	if (fd < 0)
		return NULL;
	/* the request: headers, then Content-Length bytes of body */
	for (;;) {
		char *end, *cl;
		size_t want;

		s->request[s->request_len] = '\0';
		end = strstr(s->request, "\r\n\r\n");
		if (end) {
			cl = strcasestr(s->request, "Content-Length: ");
			want = (size_t)(end + 4 - s->request) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
			if (s->request_len >= want)
				break;
		}
		n = read(fd, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len);
		if (n <= 0)
			break;
		s->request_len += (size_t)n;
	}
	s->request[s->request_len] = '\0';
	if (s->answer) {
		size_t off = 0;

		while (off < s->answer_len &&
		       (n = write(fd, s->answer + off, s->answer_len - off)) > 0)
			off += (size_t)n;
	} else {
		while (read(fd, buf, sizeof(buf)) > 0)  /* until the client goes */
			;
	}
	close(fd);
	return NULL;
}

static void server_start(struct server *s, const char *answer, size_t len)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->answer = answer;
	s->answer_len = len;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, serve_one, s), 0);
}

static void server_stop(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

static struct sp_agent_client *client_for(const struct server *s)
{
	struct sp_agent_client_opts o;
	struct sp_agent_client *c;
	struct sp_error err = SP_ERROR_INIT;
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	o.server = url;
	o.token = "tok-abc123";
	o.ca_file = NULL;
	o.cursor = NULL;
	assert_int_equal(sp_agent_client_new(&c, &o, &err), 0);
	return c;
}

static void test_call(void **state)
{
	static const char resp[] = "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n"
				   "Content-Length: 36\r\nConnection: close\r\n\r\n"
				   "{\"error\":\"stale epoch\",\"stale\":true}";
	struct sp_agent_answer ans;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agent_client *c;
	struct server s;

	(void)state;
	server_start(&s, resp, sizeof(resp) - 1);
	c = client_for(&s);
	assert_int_equal(sp_agent_client_post(c, "/api/agent/jobs/4/events?epoch=2&seq=1",
					      "application/x-ndjson", "{\"a\":1}\n", 8, 15, &ans,
					      &err), 0);
	server_stop(&s);
	assert_int_equal(ans.status, 409);
	assert_true(sp_agent_answer_bool(&ans, "stale"));
	assert_string_equal(sp_agent_answer_reason(&ans), "stale epoch");
	sp_agent_answer_release(&ans);
	assert_non_null(strstr(s.request, "POST /api/agent/jobs/4/events?epoch=2&seq=1 HTTP/1.1\r\n"));
	assert_non_null(strstr(s.request, "\r\nAuthorization: Bearer tok-abc123\r\n"));
	assert_non_null(strstr(s.request, "\r\nContent-Type: application/x-ndjson\r\n"));
	assert_null(strstr(s.request, "Expect:"));
	assert_non_null(strstr(s.request, "\r\n\r\n{\"a\":1}\n"));
	sp_agent_client_free(c);
}

static void test_answer_too_big(void **state)
{
	size_t n = SP_AGENT_ANSWER_MAX + 4096;
	char *resp = sp_xmalloc(n + 200);
	int h = snprintf(resp, 200, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n", n);
	struct sp_agent_answer ans;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agent_client *c;
	struct server s;

	(void)state;
	memset(resp + h, ' ', n);
	server_start(&s, resp, (size_t)h + n);
	c = client_for(&s);
	assert_int_equal(sp_agent_client_post(c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "larger than"));
	assert_null(ans.json);
	sp_agent_client_free(c);
	server_stop(&s);
	free(resp);
}

struct interrupter {
	struct sp_agent_client *c;
	struct server *s;
};

static void *interrupt_later(void *arg)
{
	struct interrupter *in = arg;

	/* once the request has arrived (the call is waiting for the answer) */
	while (!strstr(in->s->request, "\r\n\r\n{}"))
		usleep(10000);
	sp_agent_client_interrupt(in->c);
	return NULL;
}

static void test_interrupt(void **state)
{
	struct sp_agent_answer ans;
	struct sp_error err = SP_ERROR_INIT;
	struct interrupter in;
	struct server s;
	pthread_t th;

	(void)state;
	server_start(&s, NULL, 0);  /* never answers */
	in.c = client_for(&s);
	in.s = &s;
	assert_int_equal(pthread_create(&th, NULL, interrupt_later, &in), 0);
	assert_int_equal(sp_agent_client_post(in.c, "/api/agent/lease?wait=60", "application/json",
					      "{}", 2, 75, &ans, &err), SP_ECANCELLED);
	pthread_join(th, NULL);
	/* sticky: the next call does not even start */
	assert_int_equal(sp_agent_client_post(in.c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), SP_ECANCELLED);
	sp_agent_client_free(in.c);  /* closes the connection: the server ends */
	server_stop(&s);
}

static void test_unreachable(void **state)
{
	struct sp_agent_client_opts o = { "http://127.0.0.1:1", "t", NULL, NULL };
	struct sp_agent_answer ans;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agent_client *c;

	(void)state;
	assert_int_equal(sp_agent_client_new(&c, &o, &err), 0);
	assert_int_equal(sp_agent_client_post(c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), SP_EENGINE);
	assert_true(err.msg[0] != '\0');
	assert_null(strstr(err.msg, "Bearer"));
	sp_agent_client_free(c);
}

/* Several servers: a network error or a 502/503 moves the next call on;
 * other answers (a 409 here) do not; round robin. */
static void test_failover(void **state)
{
	static const char r503[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
				   "Connection: close\r\n\r\n";
	static const char r409[] = "HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n"
				   "Connection: close\r\n\r\n";
	struct sp_agent_client_opts o;
	struct sp_agent_answer ans;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agent_client *c, *d;
	atomic_size_t cur;
	struct server a, b;
	char urls[160], want[64];

	(void)state;
	server_start(&a, r503, sizeof(r503) - 1);
	server_start(&b, r409, sizeof(r409) - 1);
	snprintf(urls, sizeof(urls), "http://127.0.0.1:1,http://127.0.0.1:%d/,"
		 "http://127.0.0.1:%d", a.port, b.port);
	o.server = urls;
	o.token = "t";
	o.ca_file = NULL;
	o.cursor = NULL;
	assert_int_equal(sp_agent_client_new(&c, &o, &err), 0);
	assert_string_equal(sp_agent_client_server(c), "http://127.0.0.1:1");
	assert_int_equal(sp_agent_client_post(c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), SP_EENGINE);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d", a.port);  /* '/' dropped */
	assert_string_equal(sp_agent_client_server(c), want);
	assert_int_equal(sp_agent_client_post(c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), 0);
	assert_int_equal(ans.status, 503);
	sp_agent_answer_release(&ans);
	server_stop(&a);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d", b.port);
	assert_string_equal(sp_agent_client_server(c), want);
	assert_int_equal(sp_agent_client_post(c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), 0);
	assert_int_equal(ans.status, 409);
	sp_agent_answer_release(&ans);
	server_stop(&b);
	assert_string_equal(sp_agent_client_server(c), want);  /* a 409 stays */
	sp_agent_client_free(c);
	/* two clients sharing a cursor: one's failure moves both, once */
	atomic_init(&cur, 0);
	o.cursor = &cur;
	assert_int_equal(sp_agent_client_new(&c, &o, &err), 0);
	assert_int_equal(sp_agent_client_new(&d, &o, &err), 0);
	assert_int_equal(sp_agent_client_post(c, "/x", "application/json", "{}", 2, 15, &ans,
					      &err), SP_EENGINE);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d", a.port);
	assert_string_equal(sp_agent_client_server(d), want);
	assert_int_equal((int)atomic_load(&cur), 1);
	sp_agent_client_free(d);
	sp_agent_client_free(c);
	o.cursor = NULL;
	/* an empty list */
	o.server = ",";
	assert_int_equal(sp_agent_client_new(&c, &o, &err), SP_ECONFIG);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_parse),
		cmocka_unit_test(test_lease_full),
		cmocka_unit_test(test_lease_minimal),
		cmocka_unit_test(test_lease_bad),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_call),
		cmocka_unit_test(test_answer_too_big),
		cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_failover),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
