/*
 * agent.h — `stagepipe agent`: run a server's jobs on this machine's engine.
 *
 *   client.c   the HTTP side of docs/agent-protocol.md (libcurl: TLS with
 *              certificate checks, a private CA, a timeout on every call)
 *   agent.c    the loop: one leaser thread long-polls for jobs while fewer
 *              than capacity run; each job runs in a thread of its own as
 *              a child `stagepipe run` (core/server/jobrun.c), its event
 *              lines sent back in batches (<= 200 ms or 64 KiB) that are
 *              also the lease's heartbeat; the promote permit is asked of
 *              the server; a 409 anywhere fences the job (its child is
 *              stopped and removes its containers)
 *
 * cmd/agent.c parses the options, removes the containers an earlier run of
 * this agent left (label io.stagepipe.agent), takes the signals (sigwait)
 * and calls sp_agent_drain / sp_agent_force.
 *
 * Secrets: the token and the git credentials of a lease are never logged,
 * never put in an error message, never in a child's argv (credentials go
 * in its environment only), and are wiped when freed.
 *
 * Threads: sp_agent_start starts the threads; sp_agent_drain,
 * sp_agent_force and sp_agent_running may be called from any thread.
 * The caller blocks the signals it takes (SIGTERM...) before
 * sp_agent_start: the threads inherit the mask.  libcurl must have been
 * initialised (curl_global_init, cmd/main.c).
 */
#ifndef SP_AGENT_H
#define SP_AGENT_H

#include <stdbool.h>

struct sp_error;

struct sp_agent_opts {
	const char *server;        /* base URL: http(s)://host:port[/prefix] (required);
				    * several comma-separated: servers sharing one store,
				    * each client moves to the next on a network error or
				    * 502/503 (client.h) */
	const char *token;         /* bearer token (required; borrowed, never printed) */
	const char *name;          /* the agent's name (required): [a-z0-9][a-z0-9._-]*, <= 63 */
	const char *const *labels; /* NULL-terminated, may be NULL */
	int capacity;              /* jobs at once, >= 1 */
	const char *docker_host;   /* the children's --docker-host (NULL: their environment) */
	const char *ca_file;       /* CA bundle for https (NULL: the system's) */
	const char *exe;           /* the stagepipe binary children run (required) */
	int lease_wait_s;          /* long-poll wait asked of the server; 0: 30 */
};

struct sp_agent;

/*
 * Checks opts and starts the leaser thread (the first lease call is made
 * at once).  *out owns copies of everything in opts.
 */
int sp_agent_start(struct sp_agent **out, const struct sp_agent_opts *opts,
		   struct sp_error *err);

/*
 * Blocks until the agent has stopped on its own: the server refused its
 * token (401/403: returns SP_ECONFIG with the reason in err), or a drain
 * or force is over (returns 0).
 */
int sp_agent_wait(struct sp_agent *a, struct sp_error *err);

/* First SIGTERM: no new leases; running jobs go on to their end; then
 * sp_agent_wait returns. */
void sp_agent_drain(struct sp_agent *a);

/* Second signal: running jobs are stopped now (their children remove
 * their containers) and given back to the server (finish "requeue"). */
void sp_agent_force(struct sp_agent *a);

/* Jobs running now. */
int sp_agent_running(struct sp_agent *a);

/* After sp_agent_wait (or before sp_agent_start failed: NULL is fine).
 * Wipes the token copy. */
void sp_agent_free(struct sp_agent *a);

/*
 * Removes the containers labelled io.stagepipe.agent=name on the engine
 * at docker_host (NULL: the environment's), left by an earlier run of
 * this agent (killed, or its machine lost power; its jobs went back to
 * the queue when their leases ran out).  A container whose run is still
 * going on this machine (sp_container_owner_alive: another agent process
 * of the same name) is kept.  *removed and *kept say how many.
 * SP_EENGINE when the engine cannot be reached or some could not be
 * removed.  Call it before sp_agent_start: no job of this agent runs.
 */
int sp_agent_remove_leftovers(const char *name, const char *docker_host, unsigned *removed,
			      unsigned *kept, struct sp_error *err);

/* An agent name: [a-z0-9][a-z0-9._-]*, at most 63 bytes. */
bool sp_agent_name_valid(const char *name);


#endif
