/*
 * client.h — the HTTP side of docs/agent-protocol.md, internal to
 * core/agent.
 *
 * One client per thread (a libcurl easy handle, kept so that its
 * connection is reused, inside a multi handle so that a call can be
 * interrupted).  Every call is a POST with the agent's bearer token;
 * https checks the server's certificate (and host name) against the
 * system's CAs or ca_file; no redirects; connect timeout 10 s and a total
 * timeout per call.  The answer is read into a buffer of at most 1 MiB
 * (more is an error) and parsed as JSON.
 *
 * The token is put in one header of the client's own; it is never
 * logged, never in an error message, and wiped when the client is freed.
 * Answers are wiped too when released (a lease's carries git
 * credentials).
 */
#ifndef SP_AGENT_CLIENT_H
#define SP_AGENT_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct sp_error;

#define SP_AGENT_ANSWER_MAX (1024 * 1024)
#define SP_AGENT_CONNECT_TIMEOUT_S 10
#define SP_AGENT_CALL_TIMEOUT_S 15

struct sp_agent_client_opts {
	const char *server;   /* base URL, http:// or https:// (a trailing '/' is dropped);
			       * or several, comma-separated: servers sharing one
			       * store (see sp_agent_client_post) */
	const char *token;    /* bearer token, borrowed: copied into the client's header */
	const char *ca_file;  /* CA bundle (NULL: the system's) */
	atomic_size_t *cursor;  /* with several servers: which one calls go to, shared
				 * by the clients of one agent so that they use the same
				 * server and move on together; borrowed, outlives the
				 * clients.  NULL: the client keeps its own */
};

struct sp_agent_client;

/* *out owns a copy of everything in o.  SP_ERROR when libcurl cannot
 * start; never mentions the token. */
int sp_agent_client_new(struct sp_agent_client **out, const struct sp_agent_client_opts *o,
			struct sp_error *err);
/* Wipes the token header; NULL is fine.  No call may be running. */
void sp_agent_client_free(struct sp_agent_client *c);

/* An HTTP answer. */
struct sp_agent_answer {
	long status;
	cJSON *json;          /* the body when it is a JSON object (owned), else NULL */
};

#define SP_AGENT_ANSWER_INIT { 0, NULL }

void sp_agent_answer_release(struct sp_agent_answer *a);

/*
 * Fills a from a status and a body (which may be empty or not JSON: json
 * stays NULL then).  What sp_agent_client_post does with what it read;
 * separate for the tests.
 */
void sp_agent_answer_parse(struct sp_agent_answer *a, long status, const char *body,
			   size_t len);

/* The answer's "error" (or else "reason") string, or "" (borrowed). */
const char *sp_agent_answer_reason(const struct sp_agent_answer *a);

/* The answer's boolean key, false when absent. */
bool sp_agent_answer_bool(const struct sp_agent_answer *a, const char *key);

/*
 * POSTs body (len bytes, content type ctype) to the server's base URL +
 * path (which starts with '/').  Returns 0 when an HTTP answer came,
 * whatever its status (in *ans, which the caller releases);
 * SP_ECANCELLED when sp_agent_client_interrupt was called (before the
 * call or while it ran); SP_EENGINE when no usable answer came
 * (connection, TLS, timeout, an answer over 1 MiB), err saying why.
 *
 * With several servers, one is used at a time; after a call that got no
 * usable answer (SP_EENGINE) or a 502/503 the client (and every client
 * sharing its cursor) moves on to the next one (round robin) for its next
 * call, logging agent.server_switched once.
 * The call itself is not repeated here: the callers' retries and backoff
 * stay as they are (so all servers down is no busy loop).
 */
int sp_agent_client_post(struct sp_agent_client *c, const char *path, const char *ctype,
			 const char *body, size_t len, long timeout_s,
			 struct sp_agent_answer *ans, struct sp_error *err);

/*
 * The same with a file as the body (application/octet-stream, size bytes
 * read from fd as they are sent: an artifact upload).  fd is the
 * caller's; its offset moves.
 */
int sp_agent_client_upload(struct sp_agent_client *c, const char *path, int fd, uint64_t size,
			   long timeout_s, struct sp_agent_answer *ans, struct sp_error *err);
/* The server the next call goes to (borrowed). */
const char *sp_agent_client_server(const struct sp_agent_client *c);

/* From any thread: the call running on c (and every later one) returns
 * SP_ECANCELLED at once.  For the lease long-poll on a drain. */
void sp_agent_client_interrupt(struct sp_agent_client *c);

/* ---- the lease answer ---- */

struct sp_agent_lease {
	int64_t job, epoch;
	int attempt;
	long ttl_ms;          /* 30000 when absent; at least 1000 */
	long timeout_ms;      /* the job's timeout, 0: none */
	char *repo;           /* the repository's name in the server config ("" when absent) */
	char *repo_url;       /* never logged (it may carry userinfo) */
	char *ref, *sha, *event, *event_ref, *pipeline;  /* sha, event, event_ref, pipeline may be NULL */
	char *job_label;      /* "srv-<job>" when absent */
	char *git_user;       /* credentials, NULL when absent; wiped by release */
	char *git_token;
	char **secret_env;    /* the repository's secrets: as "NAME=value" for the
			       * job child's environment; wiped by release */
	size_t nsecrets;
};

/*
 * A 200 answer's body (a JSON object) into l (owned strings; release
 * it).  SP_ERROR when something the job needs is missing or malformed;
 * err then says what, and l->job and l->epoch are still set when they
 * were readable (so that the job can be given back).
 */
int sp_agent_lease_parse(struct sp_agent_lease *l, const cJSON *j, struct sp_error *err);
/* Frees and wipes (credentials); l is zeroed. */
void sp_agent_lease_release(struct sp_agent_lease *l);

/* ---- retry policy ---- */

#define SP_AGENT_BACKOFF_FIRST_MS 1000
#define SP_AGENT_BACKOFF_MAX_MS 30000

/*
 * The wait before lease try number failures + 1 after `failures` failed
 * ones in a row (>= 1): 1 s doubling up to 30 s, each +-20 % by rnd (any
 * random number), so that agents that lost the server together do not
 * come back together.
 */
long sp_agent_backoff_ms(int failures, uint32_t rnd);

#endif
