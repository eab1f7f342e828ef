/*
 * test_status.c — commit statuses (core/forge/status.c): the state words
 * per forge, the URL, headers and JSON body built for each forge, the
 * checks on what reaches a URL or a header, the project taken from a clone
 * URL, and one send per answer class against a one-shot HTTP listener on
 * 127.0.0.1 (no daemon: a thread that answers one request).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/forge/status.h"
#include "tests/unit/support/testutil.h"

#define SHA "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
#define TOKEN "tok-SECRET-123"

static void test_states(void **state)
{
	static const struct {
		enum sp_status_state s;
		const char *github, *gitea, *gitlab;
	} t[] = {
		{ SP_STATUS_PENDING, "pending", "pending", "pending" },
		{ SP_STATUS_RUNNING, "pending", "pending", "running" },
		{ SP_STATUS_SUCCESS, "success", "success", "success" },
		{ SP_STATUS_FAILURE, "failure", "failure", "failed" },
		{ SP_STATUS_ERROR, "error", "error", "failed" },
		{ SP_STATUS_CANCELLED, "error", "error", "canceled" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_string_equal(sp_status_forge_state(SP_FORGE_GITHUB, t[i].s), t[i].github);
		assert_string_equal(sp_status_forge_state(SP_FORGE_GITEA, t[i].s), t[i].gitea);
		assert_string_equal(sp_status_forge_state(SP_FORGE_GITLAB, t[i].s), t[i].gitlab);
	}
}

/* A built request, released by req_release. */
struct req {
	char *url;
	struct sp_buf body;
	char *hdrs[4];
	size_t nhdrs;
	cJSON *json;
};

static int build(const struct sp_status_target *t, const struct sp_status_msg *m, struct req *r,
		 struct sp_error *err)
{
	int rc;

	memset(r, 0, sizeof(*r));
	sp_buf_init(&r->body, 0);
	rc = sp_status_request(t, m, &r->url, &r->body, r->hdrs, &r->nhdrs, err);
	if (rc == 0) {
		r->json = cJSON_Parse(r->body.data);
		assert_non_null(r->json);
	}
	return rc;
}

static void req_release(struct req *r)
{
	size_t i;

	for (i = 0; i < r->nhdrs; i++)
		free(r->hdrs[i]);
	free(r->url);
	sp_buf_release(&r->body);
	cJSON_Delete(r->json);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_github_request(void **state)
{
	struct sp_status_target t = { SP_FORGE_GITHUB, NULL, "team/app", TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_FAILURE, "stagepipe/test", "2 tests failed",
				   "https://ci.example.com/jobs/7" };
	struct sp_error err = SP_ERROR_INIT;
	struct req r;

	(void)state;
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(r.url, "https://api.github.com/repos/team/app/statuses/" SHA);
	assert_int_equal(r.nhdrs, 4);
	assert_string_equal(r.hdrs[0], "Authorization: Bearer " TOKEN);
	assert_string_equal(r.hdrs[1], "Accept: application/vnd.github+json");
	assert_string_equal(r.hdrs[2], "X-GitHub-Api-Version: 2022-11-28");
	assert_string_equal(r.hdrs[3], "Content-Type: application/json");
	assert_string_equal(jstr(r.json, "state"), "failure");
	assert_string_equal(jstr(r.json, "context"), "stagepipe/test");
	assert_string_equal(jstr(r.json, "description"), "2 tests failed");
	assert_string_equal(jstr(r.json, "target_url"), "https://ci.example.com/jobs/7");
	assert_null(jstr(r.json, "name"));
	assert_int_equal(cJSON_GetArraySize(r.json), 4);
	req_release(&r);

	/* GitHub Enterprise: an api base with a trailing slash. */
	t.api = "https://ghe.example.com/api/v3/";
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(r.url, "https://ghe.example.com/api/v3/repos/team/app/statuses/" SHA);
	req_release(&r);
}

static void test_gitea_request(void **state)
{
	struct sp_status_target t = { SP_FORGE_GITEA, "https://gitea.example.com/api/v1", "team/app",
				      TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_RUNNING, NULL, "running", NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct req r;

	(void)state;
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(r.url, "https://gitea.example.com/api/v1/repos/team/app/statuses/" SHA);
	assert_int_equal(r.nhdrs, 3);
	assert_string_equal(r.hdrs[0], "Authorization: token " TOKEN);
	assert_string_equal(r.hdrs[1], "Accept: application/json");
	assert_string_equal(r.hdrs[2], "Content-Type: application/json");
	assert_string_equal(jstr(r.json, "state"), "pending");
	assert_string_equal(jstr(r.json, "context"), "stagepipe");   /* the default */
	assert_string_equal(jstr(r.json, "description"), "running");
	assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "target_url"));
	req_release(&r);

	/* Gitea has no default API: it must be configured. */
	t.api = NULL;
	assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
	assert_null(r.url);
	assert_int_equal(r.nhdrs, 0);
	assert_non_null(strstr(err.msg, "api"));
	t.api = "";
	assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
	t.api = "ftp://gitea.example.com/api/v1";
	assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
}

static void test_gitlab_request(void **state)
{
	struct sp_status_target t = { SP_FORGE_GITLAB, NULL, "group/app", TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_CANCELLED, "stagepipe", "cancelled by mona",
				   "https://ci.example.com/jobs/9" };
	struct sp_error err = SP_ERROR_INIT;
	struct req r;

	(void)state;
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(r.url, "https://gitlab.com/api/v4/projects/group%2Fapp/statuses/" SHA);
	assert_int_equal(r.nhdrs, 3);
	assert_string_equal(r.hdrs[0], "PRIVATE-TOKEN: " TOKEN);
	assert_string_equal(r.hdrs[1], "Accept: application/json");
	assert_string_equal(r.hdrs[2], "Content-Type: application/json");
	assert_string_equal(jstr(r.json, "state"), "canceled");
	assert_string_equal(jstr(r.json, "name"), "stagepipe");
	assert_null(jstr(r.json, "context"));
	assert_string_equal(jstr(r.json, "description"), "cancelled by mona");
	assert_string_equal(jstr(r.json, "target_url"), "https://ci.example.com/jobs/9");
	req_release(&r);

	t.api = "https://gitlab.example.com/api/v4";
	t.project = "group/sub.group/my-app_2";
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(r.url, "https://gitlab.example.com/api/v4/projects/"
			    "group%2Fsub.group%2Fmy-app_2/statuses/" SHA);
	req_release(&r);

	/* A numeric project id is GitLab's other name for a project. */
	t.project = "1234";
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(r.url, "https://gitlab.example.com/api/v4/projects/1234/statuses/" SHA);
	req_release(&r);
}

static void test_description_cut(void **state)
{
	struct sp_status_target t = { SP_FORGE_GITHUB, NULL, "team/app", TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_SUCCESS, "stagepipe", NULL, NULL };
	struct sp_error err = SP_ERROR_INIT;
	char desc[400];
	struct req r;

	(void)state;
	memset(desc, 'a', 300);
	desc[300] = '\0';
	m.description = desc;
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_int_equal(strlen(jstr(r.json, "description")), 140);
	req_release(&r);

	/* 139 bytes then "é" (2 bytes): cut before the é, not inside it. */
	memset(desc, 'a', 139);
	strcpy(desc + 139, "\xc3\xa9 and more");
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_int_equal(strlen(jstr(r.json, "description")), 139);
	req_release(&r);
	/* Exactly 140 with the é at 138..139: kept whole. */
	memset(desc, 'a', 138);
	strcpy(desc + 138, "\xc3\xa9 and more");
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_int_equal(strlen(jstr(r.json, "description")), 140);
	req_release(&r);

	m.description = NULL;
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(jstr(r.json, "description"), "");
	req_release(&r);

	/* Quotes and newlines are JSON-escaped, not pasted. */
	m.description = "say \"hi\"\nbye";
	assert_int_equal(build(&t, &m, &r, &err), 0);
	assert_string_equal(jstr(r.json, "description"), "say \"hi\"\nbye");
	req_release(&r);
}

static void test_bad_targets(void **state)
{
	static const struct {
		enum sp_forge forge;
		const char *project;
	} bad[] = {
		{ SP_FORGE_GITHUB, "team" },
		{ SP_FORGE_GITHUB, "team/app/x" },
		{ SP_FORGE_GITHUB, "" },
		{ SP_FORGE_GITHUB, NULL },
		{ SP_FORGE_GITHUB, "../app" },
		{ SP_FORGE_GITHUB, "team/.." },
		{ SP_FORGE_GITHUB, "team/app?x=1" },
		{ SP_FORGE_GITHUB, "team/app#x" },
		{ SP_FORGE_GITHUB, "team app/x" },
		{ SP_FORGE_GITHUB, "/team/app" },
		{ SP_FORGE_GITHUB, "team/app/" },
		{ SP_FORGE_GITHUB, "team//app" },
		{ SP_FORGE_GITEA, "team%2Fapp" },
		{ SP_FORGE_GITLAB, "group" },
		{ SP_FORGE_GITLAB, "group/../x" },
		{ SP_FORGE_GITLAB, "12a" },
	};
	struct sp_status_msg m = { SHA, SP_STATUS_SUCCESS, "stagepipe", "ok", NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct req r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sp_status_target t = { bad[i].forge, "https://forge.example.com/api",
					      bad[i].project, TOKEN };

		if (build(&t, &m, &r, &err) != SP_ECONFIG)
			fail_msg("project \"%s\" accepted", bad[i].project ? bad[i].project : "(null)");
		assert_null(r.url);
	}
	/* Bad shas. */
	{
		struct sp_status_target t = { SP_FORGE_GITHUB, NULL, "team/app", TOKEN };
		const char *shas[] = { NULL, "", "0d1a26e6", SHA "0", "../../../user",
				       "zd1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" };

		for (i = 0; i < sizeof(shas) / sizeof(shas[0]); i++) {
			m.sha = shas[i];
			assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
		}
		m.sha = SHA;
	}
	/* Tokens: none, or ones that would break the header; never in the message. */
	{
		struct sp_status_target t = { SP_FORGE_GITHUB, NULL, "team/app", NULL };
		const char *toks[] = { "Zq9\r\nX-Evil: 1", "Zq9 with space", "Zq9\x7f", "Zq9ö" };

		assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
		assert_non_null(strstr(err.msg, "no token"));
		t.token = "";
		assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
		for (i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
			t.token = toks[i];
			assert_int_equal(build(&t, &m, &r, &err), SP_ECONFIG);
			assert_null(strstr(err.msg, "Zq9"));
		}
	}
}

/* The body buffer is cleared first, and its cap is honoured. */
static void test_body_buffer(void **state)
{
	struct sp_status_target t = { SP_FORGE_GITHUB, NULL, "team/app", TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_SUCCESS, "stagepipe", "ok", NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_buf b;
	char *url = NULL, *hdrs[4];
	size_t n = 0, i;

	(void)state;
	sp_buf_init(&b, 0);
	sp_buf_addstr(&b, "old junk");
	assert_int_equal(sp_status_request(&t, &m, &url, &b, hdrs, &n, &err), 0);
	assert_int_equal(b.data[0], '{');
	for (i = 0; i < n; i++)
		free(hdrs[i]);
	free(url);
	sp_buf_release(&b);

	sp_buf_init(&b, 10);
	assert_int_equal(sp_status_request(&t, &m, &url, &b, hdrs, &n, &err), SP_ETOOBIG);
	assert_null(url);
	assert_int_equal(n, 0);
	sp_buf_release(&b);
}

static void test_project_from_url(void **state)
{
	static const struct {
		const char *url, *want;
	} t[] = {
		{ "https://github.com/team/app.git", "team/app" },
		{ "https://github.com/team/app", "team/app" },
		{ "https://github.com/team/app/", "team/app" },
		{ "https://github.com/team/app.git/", "team/app" },
		{ "https://user:pw@gitea.example.com:3000/team/app.git", "team/app" },
		{ "https://gitlab.example.com/group/sub/app.git", "group/sub/app" },
		{ "ssh://git@github.com/team/app.git", "team/app" },
		{ "ssh://git@gitea.example.com:2222/team/app.git", "team/app" },
		{ "git@github.com:team/app.git", "team/app" },
		{ "git@gitlab.example.com:group/sub/app.git", "group/sub/app" },
		{ "git@host:/team/app.git", "team/app" },
		{ "file:///srv/team/app.git", "team/app" },
		{ "file:///srv/git/team/app", "team/app" },
		{ "/srv/git/team/app.git", "team/app" },
		{ "https://github.com/app.git", NULL },
		{ "https://github.com/", NULL },
		{ "file:///app.git", NULL },
		{ "not a url at all\n", NULL },
		{ "ext::sh -c evil", NULL },
		{ "", NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *got = sp_status_project_from_url(t[i].url);

		if ((got == NULL) != (t[i].want == NULL) || (got && strcmp(got, t[i].want)))
			fail_msg("%s: got %s, want %s", t[i].url, got ? got : "NULL",
				 t[i].want ? t[i].want : "NULL");
		free(got);
	}
	assert_null(sp_status_project_from_url(NULL));
}

/* ---- a one-shot HTTP listener ---- */

struct listener {
	int fd;
	int port;
	const char *answer;      /* the whole HTTP answer to send */
	char request[16384];     /* what was received */
	size_t request_len;
	pthread_t thread;
};

static void *serve_one(void *ud)
{
	struct listener *l = ud;
	struct timeval tv = { 5, 0 };
	int c = accept(l->fd, NULL, NULL);
	size_t want = 0;

	if (c < 0)
		return NULL;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = recv(c, l->request + l->request_len,
				 sizeof(l->request) - 1 - l->request_len, 0);
		char *end;

		if (n <= 0)
			break;
		l->request_len += (size_t)n;
		l->request[l->request_len] = '\0';
		end = strstr(l->request, "\r\n\r\n");
		if (end && !want) {
			const char *cl = strstr(l->request, "\r\nContent-Length:");

			want = (size_t)(end + 4 - l->request) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (want && l->request_len >= want)
			break;
		if (l->request_len >= sizeof(l->request) - 1)
			break;
	}
	if (send(c, l->answer, strlen(l->answer), MSG_NOSIGNAL) < 0)
		perror("send");
	close(c);
	return NULL;
}

static void listener_start(struct listener *l, const char *answer)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	memset(l, 0, sizeof(*l));
	l->answer = answer;
	l->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l->fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l->fd, 1), 0);
	assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &alen), 0);
	l->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&l->thread, NULL, serve_one, l), 0);
}

static void listener_stop(struct listener *l)
{
	pthread_join(l->thread, NULL);
	close(l->fd);
}

static int send_to(struct listener *l, const char *answer, enum sp_forge forge, bool *retry,
		   struct sp_error *err)
{
	char api[128];
	struct sp_status_target t = { forge, api, "team/app", TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_SUCCESS, "stagepipe", "all good",
				   "https://ci.example.com/jobs/1" };

	listener_start(l, answer);
	snprintf(api, sizeof(api), "http://127.0.0.1:%d/api/v1/", l->port);
	{
		int rc = sp_status_send(&t, &m, retry, err);

		listener_stop(l);
		return rc;
	}
}

static void test_send_created(void **state)
{
	struct listener l;
	struct sp_error err = SP_ERROR_INIT;
	bool retry = true;
	const char *body;

	(void)state;
	assert_int_equal(send_to(&l, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
				 "Connection: close\r\n\r\n{}", SP_FORGE_GITEA, &retry, &err), 0);
	assert_false(retry);
	assert_non_null(strstr(l.request, "POST /api/v1/repos/team/app/statuses/" SHA " HTTP/1.1\r\n"));
	assert_non_null(strstr(l.request, "\r\nAuthorization: token " TOKEN "\r\n"));
	assert_non_null(strstr(l.request, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(l.request, "\r\nUser-Agent: stagepipe/"));
	body = strstr(l.request, "\r\n\r\n");
	assert_non_null(body);
	{
		cJSON *j = cJSON_Parse(body + 4);

		assert_non_null(j);
		assert_string_equal(jstr(j, "state"), "success");
		assert_string_equal(jstr(j, "context"), "stagepipe");
		assert_string_equal(jstr(j, "target_url"), "https://ci.example.com/jobs/1");
		cJSON_Delete(j);
	}
}

static void test_send_gitlab(void **state)
{
	struct listener l;
	struct sp_error err = SP_ERROR_INIT;
	bool retry = true;

	(void)state;
	assert_int_equal(send_to(&l, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
				 SP_FORGE_GITLAB, &retry, &err), 0);
	assert_non_null(strstr(l.request, "POST /api/v1/projects/team%2Fapp/statuses/" SHA " "));
	assert_non_null(strstr(l.request, "\r\nPRIVATE-TOKEN: " TOKEN "\r\n"));
}

static void test_send_refused_answers(void **state)
{
	static const struct {
		const char *answer;
		bool retry;
		const char *in_msg;
	} t[] = {
		{ "HTTP/1.1 422 Unprocessable Entity\r\nConnection: close\r\n\r\n"
		  "{\"message\":\"Validation\nFailed\"}\r\n\r\n", false, "HTTP 422: {\"message\":\"Validation Failed\"}" },
		{ "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", false, "HTTP 401" },
		{ "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", false, "HTTP 403" },
		{ "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false, "HTTP 404" },
		{ "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false, "HTTP 400" },
		{ "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", true, "HTTP 500" },
		{ "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n", true, "HTTP 429" },
		{ "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", true, "HTTP 502" },
		/* Redirects are not followed. */
		{ "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
		  "Content-Length: 0\r\n\r\n", true, "HTTP 302" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct listener l;
		struct sp_error err = SP_ERROR_INIT;
		bool retry = !t[i].retry;

		assert_int_equal(send_to(&l, t[i].answer, SP_FORGE_GITEA, &retry, &err),
				 SP_EENGINE);
		if (retry != t[i].retry)
			fail_msg("%s: retry %d", t[i].in_msg, retry);
		if (!strstr(err.msg, t[i].in_msg))
			fail_msg("\"%s\" lacks \"%s\"", err.msg, t[i].in_msg);
		assert_non_null(strstr(err.msg, "/api/v1/repos/team/app/statuses/"));
		assert_null(strstr(err.msg, TOKEN));
	}
}

/* A long answer: 200 bytes of it in the message, the rest swallowed. */
static void test_send_long_answer(void **state)
{
	struct listener l;
	struct sp_error err = SP_ERROR_INIT;
	bool retry = false;
	size_t n = 10000, h;
	char *answer = sp_xmalloc(n + 200);
	const char *p;

	(void)state;
	h = (size_t)snprintf(answer, 200, "HTTP/1.1 503 Busy\r\nContent-Length: %zu\r\n\r\n", n);
	memset(answer + h, 'x', n);
	answer[h + n] = '\0';
	assert_int_equal(send_to(&l, answer, SP_FORGE_GITEA, &retry, &err), SP_EENGINE);
	assert_true(retry);
	p = strstr(err.msg, "HTTP 503: ");
	assert_non_null(p);
	assert_int_equal(strlen(p + 10), 200);
	free(answer);
}

static void test_send_transport_errors(void **state)
{
	struct sp_status_target t = { SP_FORGE_GITEA, NULL, "team/app", TOKEN };
	struct sp_status_msg m = { SHA, SP_STATUS_SUCCESS, "stagepipe", "ok", NULL };
	struct sp_error err = SP_ERROR_INIT;
	char api[128];
	bool retry = false;
	int fd, port;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	(void)state;
	/* A port nobody listens on: bind, note the port, close. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	port = ntohs(a.sin_port);
	close(fd);
	snprintf(api, sizeof(api), "http://user:pw-SECRET@127.0.0.1:%d/api/v1", port);
	t.api = api;
	assert_int_equal(sp_status_send(&t, &m, &retry, &err), SP_EENGINE);
	assert_true(retry);
	assert_non_null(strstr(err.msg, "127.0.0.1"));
	assert_null(strstr(err.msg, "pw-SECRET"));
	assert_null(strstr(err.msg, "user:"));
	assert_null(strstr(err.msg, TOKEN));

	/* A configuration error is not retried. */
	t.api = NULL;
	retry = true;
	assert_int_equal(sp_status_send(&t, &m, &retry, &err), SP_ECONFIG);
	assert_false(retry);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_github_request),
		cmocka_unit_test(test_gitea_request),
		cmocka_unit_test(test_gitlab_request),
		cmocka_unit_test(test_description_cut),
		cmocka_unit_test(test_bad_targets),
		cmocka_unit_test(test_body_buffer),
		cmocka_unit_test(test_project_from_url),
		cmocka_unit_test(test_send_created),
		cmocka_unit_test(test_send_gitlab),
		cmocka_unit_test(test_send_refused_answers),
		cmocka_unit_test(test_send_long_answer),
		cmocka_unit_test(test_send_transport_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
