/*
 * agents_internal.h — the agent protocol (docs/agent-protocol.md) as
 * plain functions, without HTTP; private to core/server/ and its tests.
 *
 * agents.c answers every call of the protocol here: a call is (the agent
 * its token named, the numbers of the URL, the body) and its answer a
 * status and a JSON body.  The libmicrohttpd glue of the same file
 * (sp_agents_begin / sp_agents_finish, http_internal.h) only parses the
 * URL, checks the token before the body is read, and sends the answer,
 * so that the unit tests drive the protocol against a real store without
 * a socket.
 *
 * Threads: every function may be called from any thread between
 * sp_agents_new and sp_agents_free.  A lease call may block (the
 * long-poll) until a job is queued (sp_agents_wake), its wait is over, the
 * server drains (then 204) or sp_agents_stop.
 */
#ifndef SP_AGENTS_INTERNAL_H
#define SP_AGENTS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/server/server.h"

/* Body caps (413 past them). */
#define SP_AGENTS_BODY_MAX (64 * 1024)
#define SP_AGENTS_EVENTS_MAX (4 * 1024 * 1024)
/* Long-poll: the default and the longest wait of a lease call. */
#define SP_AGENTS_WAIT_DEFAULT_S 30
#define SP_AGENTS_WAIT_MAX_S 60
/* An agent seen (a lease call) within this long is online. */
#define SP_AGENTS_ONLINE_S 60

enum sp_agents_op {
	SP_AGENTS_OP_NONE,        /* not a route of agents.c (404) */
	SP_AGENTS_OP_LEASE,       /* POST /api/agent/lease */
	SP_AGENTS_OP_EVENTS,      /* POST /api/agent/jobs/{id}/events */
	SP_AGENTS_OP_PROMOTE,     /* POST /api/agent/jobs/{id}/promote */
	SP_AGENTS_OP_FINISH,      /* POST /api/agent/jobs/{id}/finish */
	SP_AGENTS_OP_LIST,        /* GET /api/agents (public, like GET /api/jobs) */
	SP_AGENTS_OP_ARTIFACT,    /* POST /api/agent/jobs/{id}/artifacts?epoch=N&path=P */
};

/* The operation of url (a path without the query); *job for the job routes. */
enum sp_agents_op sp_agents_route(const char *url, int64_t *job);

/*
 * The configured agent (its index in cfg->agents) whose token the
 * Authorization header value ("Bearer TOKEN") carries, or -1.  The token's
 * SHA-256 is compared with every agent's digest (CRYPTO_memcmp, no early
 * exit).  authorization may be NULL.
 */
int sp_agents_auth(const struct sp_agents *a, const char *authorization);

/* The configured name of agent idx (borrowed). */
const char *sp_agents_name(const struct sp_agents *a, int idx);

/* One protocol call.  All borrowed for the call. */
struct sp_agents_call {
	int agent;                 /* from sp_agents_auth (>= 0) */
	const char *address;       /* the client's address, for the agent list (may be NULL) */
	const char *body;          /* the request body (may be NULL when len is 0) */
	size_t len;
	int64_t job, epoch, seq;   /* from the URL: seq only for events */
	int wait_s;                /* lease: the long-poll wait, 0..SP_AGENTS_WAIT_MAX_S */
	/* lease: polled about every second while waiting; true: the client
	 * went away, stop waiting (answer 204, nothing leased).  May be NULL. */
	bool (*gone)(void *ud);
	void *ud;
};

/* An answer: status, and a JSON body (owned by the caller; NULL: empty). */
struct sp_agents_reply {
	unsigned int status;
	cJSON *body;
	int64_t leased_job;        /* lease 200: the job leased, to give back with */
	int64_t leased_epoch;      /* sp_agents_unlease when the answer cannot be sent */
};

/* Frees reply->body. */
void sp_agents_reply_release(struct sp_agents_reply *reply);

/* POST /api/agent/lease: 200 with a job, 204, 400, 403, 503. */
void sp_agents_lease(struct sp_agents *a, const struct sp_agents_call *c,
		     struct sp_agents_reply *out);
/* POST /api/agent/jobs/{id}/events: 200 {cancel}, 400, 403, 404, 409 stale, 503. */
void sp_agents_events(struct sp_agents *a, const struct sp_agents_call *c,
		      struct sp_agents_reply *out);
/* POST /api/agent/jobs/{id}/promote: 200 {granted}, 409, ... */
void sp_agents_promote(struct sp_agents *a, const struct sp_agents_call *c,
		       struct sp_agents_reply *out);
/* POST /api/agent/jobs/{id}/finish: 200 {}, 400, 409 stale, ... */
void sp_agents_job_finish(struct sp_agents *a, const struct sp_agents_call *c,
			  struct sp_agents_reply *out);
/* GET /api/agents: {"agents": [...]}; a new tree the caller deletes. */
cJSON *sp_agents_list(struct sp_agents *a);

/*
 * The lease answer of (job, epoch) could not be handed to the client: the
 * job goes back to the queue (sp_store_requeue) rather than wait for its
 * TTL.
 */
void sp_agents_unlease(struct sp_agents *a, int agent, int64_t job, int64_t epoch);

/* The HTTP daemons stop: waiting long-polls return now (204) and no new
 * one waits.  (sp_http_stop) */
void sp_agents_stop(struct sp_agents *a);

/*
 * Whether one more agent.unauthorized line may be logged this second (at
 * most 20; the rest are summed up in agent.unauthorized_suppressed).
 */
bool sp_agents_refused_log_ok(struct sp_agents *a);

#endif
