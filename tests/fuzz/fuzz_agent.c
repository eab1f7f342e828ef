/*
 * fuzz_agent.c — libFuzzer target: the agent protocol (docs/agent-protocol.md),
 * both sides.
 *
 * Server side (core/server/agents.c through agents_internal.h, as its unit
 * tests drive it): a real SQLite store opened once per process in a private
 * temporary folder (fuzz_store.h), two configured agents (build-1, build-2),
 * repository "app", and one job running on build-1 that the events,
 * promote and finish calls are about.  After every call the harness looks
 * at that job in the store; when it is no longer running at the epoch it
 * knows (finished, given back, fenced), a new job is made and leased to
 * build-1.  Every 512 inputs the job is finished and its logs removed, so
 * that stage rows and log files stay few.
 *
 * Agent side (core/agent/): an answer parsed as the client does
 * (sp_agent_answer_parse, _reason, _bool) and, for a 200, the lease answer
 * (sp_agent_lease_parse); the event batcher (batch.h) whose batches are
 * then posted to the server's events call, as an agent does.
 *
 * Input: one flags byte, then the body.
 *   bits 0-2  the call: 0 lease (wait 0), 1 events, 2 promote, 3 finish,
 *             4 an answer on the agent side (bits 5-6 choose its status:
 *             200, 409, 403, 503), 5 route + Authorization ("URL NUL
 *             header"), 6 the agent's batcher → events, 7 events then
 *             finish with the same body (a finish whose summary comes
 *             from the events applied)
 *   bit 3     the call comes from build-2 (not the job's agent: 403)
 *   bit 4     a stale epoch (the job's epoch - 1; 0 at the first lease)
 *   bit 5     events: the last seq again (a retried batch, not applied)
 *   bit 6     batch: a small cap (1 KiB), so that lines are dropped
 *   bit 7     the server drains (lease answers 503)
 *
 * What must hold: every answer has a status the protocol names and, when
 * it has a body, a JSON object; a parsed lease has what a job needs (job
 * and epoch >= 1, repo_url, a ref not starting with '-', ttl >= 1 s, each
 * secret as NAME=value); a
 * batch is whole lines; the token check finds exactly the agent whose token
 * was sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/agent/batch.h"
#include "core/agent/client.h"
#include "core/base/error.h"
#include "core/server/agents_internal.h"
#include "core/server/config.h"
#include "core/server/server.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_store.h"

#define W(s) ((char *)(uintptr_t)(s))
#define ROTATE_EVERY 512
#define TOKEN1 "tok-build-1-secret"
#define TOKEN2 "tok-build-2-secret"

static struct fuzz_store fs;     /* all set up once by LLVMFuzzerInitialize */
static struct sp_repo_config repos[2];
static struct sp_agent_config agents[2];
static struct sp_server_config cfg;
static struct sp_server srv;
static int64_t job, epoch, seq;
static unsigned runs;

static void cleanup(void)
{
	sp_agents_free(srv.agents);
	sp_metrics_free(srv.metrics);
	fuzz_store_close(&fs);
}

static void new_job(void)
{
	fuzz_store_new_job(&fs, "build-1", &job, &epoch);
	seq = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sp_error err = SP_ERROR_INIT;

	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	fuzz_store_open(&fs, "sp-fuzz-agent-");

	repos[0].name = W("app");
	repos[0].url = W("https://git.example.com/team/app.git");
	repos[0].forge = SP_FORGE_GITHUB;
	repos[0].pipeline = W("ci.yml");
	repos[0].git_user = W("x-access-token");
	repos[0].git_token = W("git-token-secret");
	repos[1].name = W("web");
	repos[1].url = W("file:///srv/web.git");
	repos[1].forge = SP_FORGE_GITEA;
	repos[1].labels = W("linux");
	agents[0].name = W("build-1");
	SHA256((const unsigned char *)TOKEN1, strlen(TOKEN1), agents[0].token_sha256);
	agents[0].has_token = true;
	agents[1].name = W("build-2");
	SHA256((const unsigned char *)TOKEN2, strlen(TOKEN2), agents[1].token_sha256);
	agents[1].has_token = true;
	cfg.data = fs.dir;
	cfg.public_url = W("http://ci.example");
	/* short: the state of a job nobody calls about (one a fuzzed lease
	 * took) is dropped, with its open log, after 2 × TTL */
	cfg.lease_ttl_ms = 2000;
	cfg.max_attempts = 3;
	cfg.job_timeout_ms = 7200000;
	cfg.repos = repos;
	cfg.nrepos = 2;
	cfg.agents = agents;
	cfg.nagents = 2;
	srv.cfg = &cfg;
	srv.store = fs.st;
	srv.metrics = sp_metrics_new();
	atomic_init(&srv.draining, false);
	if (sp_agents_new(&srv.agents, &srv, &err) < 0)
		fuzz_die("agents", &err);
	new_job();
	atexit(cleanup);
	return 0;
}

/* The protocol's statuses, and a body that is an object (or none). */
static void check_reply(const struct sp_agents_reply *r, enum sp_agents_op op)
{
	switch (r->status) {
	case 200: case 400: case 403: case 404: case 409: case 503:
		break;
	case 204:
		if (op != SP_AGENTS_OP_LEASE) {
			fprintf(stderr, "204 to a job call\n");
			abort();
		}
		break;
	default:
		fprintf(stderr, "unexpected status %u\n", r->status);
		abort();
	}
	if (r->body && !cJSON_IsObject(r->body))
		abort();
	if (r->status == 204 && r->body)
		abort();
	if (op == SP_AGENTS_OP_EVENTS && r->status == 200 &&
	    !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(r->body, "cancel")))
		abort();
	if (op == SP_AGENTS_OP_LEASE && r->status == 200) {
		/* what the server leased, the agent must be able to run */
		struct sp_agent_lease l;
		struct sp_error err = SP_ERROR_INIT;

		if (sp_agent_lease_parse(&l, r->body, &err) < 0) {
			fprintf(stderr, "the server's lease answer does not parse: %s\n", err.msg);
			abort();
		}
		sp_agent_lease_release(&l);
	}
}

static struct sp_agents_call call_of(unsigned flags, const char *body, size_t len)
{
	struct sp_agents_call c;

	memset(&c, 0, sizeof(c));
	c.agent = flags & 0x08 ? 1 : 0;
	c.address = "192.0.2.7";
	c.body = len ? body : NULL;
	c.len = len;
	c.job = job;
	c.epoch = flags & 0x10 ? epoch - 1 : epoch;
	c.wait_s = 0;
	return c;
}

static void do_events(unsigned flags, const char *body, size_t len)
{
	struct sp_agents_call c = call_of(flags, body, len);
	struct sp_agents_reply r;

	if (!(flags & 0x20) || seq == 0)
		seq++;
	c.seq = seq;
	sp_agents_events(srv.agents, &c, &r);
	check_reply(&r, SP_AGENTS_OP_EVENTS);
	sp_agents_reply_release(&r);
}

static void do_finish(unsigned flags, const char *body, size_t len)
{
	struct sp_agents_call c = call_of(flags, body, len);
	struct sp_agents_reply r;

	sp_agents_job_finish(srv.agents, &c, &r);
	check_reply(&r, SP_AGENTS_OP_FINISH);
	sp_agents_reply_release(&r);
}

/* The agent's side of an answer. */
static void do_answer(unsigned flags, const char *body, size_t len)
{
	static const long statuses[] = { 200, 409, 403, 503 };
	struct sp_agent_answer ans = SP_AGENT_ANSWER_INIT;
	struct sp_agent_lease l;
	struct sp_error err = SP_ERROR_INIT;
	const char *why;

	sp_agent_answer_parse(&ans, statuses[(flags >> 5) & 3], body, len);
	if (ans.json && !cJSON_IsObject(ans.json))
		abort();
	why = sp_agent_answer_reason(&ans);
	if (!why)
		abort();
	(void)strlen(why);
	(void)sp_agent_answer_bool(&ans, "cancel");
	(void)sp_agent_answer_bool(&ans, "granted");
	(void)sp_agent_answer_bool(&ans, "stale");
	if (ans.status == 200 && ans.json) {
		if (sp_agent_lease_parse(&l, ans.json, &err) == 0) {
			if (l.job < 1 || l.epoch < 1 || !l.repo || !l.repo_url || !l.ref ||
			    l.ref[0] == '-' || !l.job_label || l.ttl_ms < 1000 ||
			    l.timeout_ms < 0 || l.attempt < 1)
				abort();
			for (size_t i = 0; i < l.nsecrets; i++)  /* NAME=value each */
				if (!l.secret_env || !l.secret_env[i] ||
				    !strchr(l.secret_env[i], '=') || l.secret_env[i][0] == '=')
					abort();
		} else if (!err.msg[0]) {
			abort();  /* a refused lease says why */
		}
		sp_agent_lease_release(&l);
	}
	sp_agent_answer_release(&ans);
}

/* "URL NUL Authorization" through the route and the token check. */
static void do_route(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t ulen = nul ? (size_t)(nul - data) : size;
	char *url = fuzz_strndup(data, ulen);
	char *auth = nul ? fuzz_strndup(nul + 1, size - ulen - 1) : NULL;
	enum sp_agents_op op;
	int64_t id = -1;
	int who;

	op = sp_agents_route(url, &id);
	if ((op == SP_AGENTS_OP_EVENTS || op == SP_AGENTS_OP_PROMOTE ||
	     op == SP_AGENTS_OP_FINISH) != (id > 0))
		abort();
	who = sp_agents_auth(srv.agents, auth);
	if (who < -1 || who > 1)
		abort();
	if (who >= 0 && auth) {
		const char *t = auth + 7;

		while (*t == ' ')
			t++;
		if (strcmp(t, who == 0 ? TOKEN1 : TOKEN2))
			abort();
	}
	free(url);
	free(auth);
}

/* The agent's batcher over the body's lines; each batch goes to the server. */
static void do_batch(unsigned flags, const char *body, size_t len)
{
	struct sp_agent_batch b;
	const char *p = body, *end = body + len, *data;
	size_t n, sent = 0;
	uint64_t bseq;
	int64_t now = 1000;

	sp_agent_batch_init(&b);
	if (flags & 0x40) {
		b.cap = 1024;
		b.flush_bytes = 256;
		b.max_bytes = 512;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		(void)sp_agent_batch_add(&b, p, n, now);
		now += 50;
		p = nl ? nl + 1 : end;
		if (sp_agent_batch_due(&b, now) || (flags & 0x20)) {
			struct sp_agents_call c = call_of(flags & ~0x30u, NULL, 0);
			struct sp_agents_reply r;

			sp_agent_batch_take(&b, &data, &n, &bseq, now);
			if (n && data[n - 1] != '\n')
				abort();  /* whole lines only */
			c.body = n ? data : NULL;
			c.len = n;
			c.seq = (int64_t)bseq + seq;
			sp_agents_events(srv.agents, &c, &r);
			check_reply(&r, SP_AGENTS_OP_EVENTS);
			if (r.status == 200)
				sp_agent_batch_sent(&b, now);
			sp_agents_reply_release(&r);
			if (++sent > 64)
				break;
		}
	}
	/* the final flush (as an agent's job end), bounded */
	while (sp_agent_batch_busy(&b) && sent++ < 128) {
		sp_agent_batch_take(&b, &data, &n, &bseq, now);
		if (n && data[n - 1] != '\n')
			abort();
		sp_agent_batch_sent(&b, now);
	}
	seq += (int64_t)b.seq;
	sp_agent_batch_release(&b);
}

/* The job the calls are about: still running at our epoch, on build-1? */
static void check_job(void)
{
	struct sp_error err = SP_ERROR_INIT;
	const cJSON *e, *st, *ag;
	cJSON *j = NULL;
	bool ours;

	if (sp_store_job_get(fs.st, job, &j, &err) < 0)
		fuzz_die("job_get", &err);
	e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
	st = cJSON_GetObjectItemCaseSensitive(j, "state");
	ag = cJSON_GetObjectItemCaseSensitive(j, "agent");
	ours = cJSON_IsNumber(e) && (int64_t)e->valuedouble == epoch && cJSON_IsString(st) &&
	       !strcmp(st->valuestring, "running") && cJSON_IsString(ag) &&
	       !strcmp(ag->valuestring, "build-1");
	cJSON_Delete(j);
	if (!ours) {
		fuzz_store_drop_logs(&fs, job);
		new_job();
	}
}

static void rotate(void)
{
	static const char done[] = "{\"state\":\"passed\",\"reason\":\"rotated\"}";
	struct sp_agents_call c = call_of(0, done, sizeof(done) - 1);
	struct sp_agents_reply r;

	sp_agents_job_finish(srv.agents, &c, &r);
	sp_agents_reply_release(&r);
	fuzz_store_drop_logs(&fs, job);
	new_job();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_agents_call c;
	struct sp_agents_reply r;
	const char *body;
	unsigned flags;
	size_t len;

	if (size < 1)
		return 0;
	flags = data[0];
	body = (const char *)data + 1;
	len = size - 1;
	if (++runs % ROTATE_EVERY == 0)
		rotate();
	atomic_store(&srv.draining, (flags & 0x80) != 0);
	switch (flags & 7) {
	case 0:
		c = call_of(flags, body, len);
		sp_agents_lease(srv.agents, &c, &r);
		check_reply(&r, SP_AGENTS_OP_LEASE);
		sp_agents_reply_release(&r);
		break;
	case 1:
		do_events(flags, body, len);
		break;
	case 2:
		c = call_of(flags, body, len);
		sp_agents_promote(srv.agents, &c, &r);
		check_reply(&r, SP_AGENTS_OP_PROMOTE);
		sp_agents_reply_release(&r);
		break;
	case 3:
		do_finish(flags, body, len);
		break;
	case 4:
		do_answer(flags, body, len);
		break;
	case 5:
		do_route(data + 1, len);
		break;
	case 6:
		do_batch(flags, body, len);
		break;
	default:
		do_events(flags, body, len);
		do_finish(flags, body, len);
		break;
	}
	atomic_store(&srv.draining, false);
	if ((flags & 7) != 4 && (flags & 7) != 5)
		check_job();
	if (runs % 64 == 0) {
		cJSON *list = sp_agents_list(srv.agents);
		int configured = 0, online = 0;

		sp_agents_counts(srv.agents, &configured, &online);
		if (!cJSON_IsObject(list) || configured != 2 || online < 0 || online > 2)
			abort();
		cJSON_Delete(list);
	}
	return 0;
}
