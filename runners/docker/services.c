/*
 * runners/docker/services.c — a stage's services on the Docker Engine
 * (struct sp_services_ops, runners/runner.h).
 *
 * Networking follows the stage's network:
 *   default  a per-job user-defined network (opts->net_name) with each
 *            service attached under its name as alias; the stage's
 *            container joins that network and reaches "db:5432".
 *   none     (engines without a bridge) the first service's network
 *            namespace is shared: the others and the stage's container
 *            join it (NetworkMode container:ID), so everything talks over
 *            localhost and ports must differ.  The first service's
 *            /etc/hosts maps every service name to 127.0.0.1, and the
 *            joining containers share that file, so "db:5432" still works.
 *   host     everything on the host's network: localhost, ports must differ.
 *
 * Readiness: ready_port is a TCP listen check run inside the service
 * (/bin/sh reading /proc/net/tcp{,6}: nothing else needed in the image);
 * ready_cmd runs inside it through the exec API; neither waits for the
 * image's HEALTHCHECK when it has one, else for the container to run.
 * A service that exits first, or is not ready in time, fails.
 *
 * Every container and the network carry the job's io.stagepipe.* labels
 * (prune finds them); down removes them whatever a signal says.
 */
#include "runners/docker/services.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "runners/docker/container.h"
#include "runners/docker/image.h"

struct sp_services {
	struct sp_engine *engine;          /* borrowed from the runner */
	char *net;                         /* the network we created, or NULL */
	char *mode;                        /* NetworkMode for the stage's container */
	char **ids;                        /* per service; NULL when not created */
	char **names;
	size_t n;
	const struct sp_mask *mask;
	sp_runner_log_fn log;
	void *log_ud;
};

static void say(const struct sp_services_opts *o, size_t i, enum sp_service_state st,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void say(const struct sp_services_opts *o, size_t i, enum sp_service_state st,
		const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!o->state)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->state(o->state_ud, i, st, line);
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A POSIX sh script: exit 0 once a TCP socket listens on port (v4 or v6). */
static char *listen_script(int port)
{
	return sp_xasprintf("for f in /proc/net/tcp /proc/net/tcp6; do [ -r \"$f\" ] || continue; "
			    "while read -r sl loc rem st rest; do case \"$loc/$st\" in "
			    "*:%04X/0A) exit 0;; esac; done < \"$f\"; done; exit 1", port);
}

static int create_one(struct sp_services *s, const struct sp_services_opts *o, size_t i,
		      struct sp_error *err)
{
	const struct sp_service_spec *sv = &o->services[i];
	struct sp_run_opts ro;
	struct sp_build_kv *labels = sp_xcalloc(o->nlabels + 2, sizeof(*labels));
	char **hosts = NULL, *mode = NULL;
	size_t k;
	int rc;

	memcpy(labels, o->labels, o->nlabels * sizeof(*labels));
	labels[o->nlabels].name = "io.stagepipe.service";
	labels[o->nlabels].value = sv->name;
	memset(&ro, 0, sizeof(ro));
	ro.image = sv->image;
	ro.cmd = sv->ncmd ? sv->cmd : NULL;
	ro.ncmd = sv->ncmd;
	ro.env = sv->env;
	ro.nenv = sv->nenv;
	ro.network = o->network;
	ro.labels = labels;
	ro.nlabels = o->nlabels + 1;
	if (s->net) {
		ro.network_mode = s->net;
		ro.alias = sv->name;
	} else if (o->network == SP_NETWORK_NONE && i > 0) {
		mode = sp_xasprintf("container:%s", s->ids[0]);
		ro.network_mode = mode;
	} else if (o->network == SP_NETWORK_NONE) {
		/* the namespace's owner: every service's name is localhost */
		hosts = sp_xcalloc(o->n + 1, sizeof(*hosts));
		for (k = 0; k < o->n; k++)
			hosts[k] = sp_xasprintf("%s:127.0.0.1", o->services[k].name);
		ro.extra_hosts = (const char *const *)hosts;
		ro.nextra_hosts = o->n;
	}
	rc = sp_container_create(s->engine, &ro, &s->ids[i], err);
	if (rc == SP_ENOTFOUND) {
		if (s->log) {
			char line[512];
			int len = snprintf(line, sizeof(line), "service %s: pulling %s", sv->name,
					   sv->image);
			s->log(s->log_ud, SP_STREAM_INFO, line, len > 0 && (size_t)len < sizeof(line) ?
			       (size_t)len : strlen(line));
		}
		sp_error_clear(err);
		rc = sp_image_pull(s->engine, sv->image, o->cancel, o->cancel_ud, err);
		if (rc == 0)
			rc = sp_container_create(s->engine, &ro, &s->ids[i], err);
		if (rc == SP_ENOTFOUND)  /* no such image: the pipeline's fault */
			err->code = rc = SP_EFAILED;
	}
	if (rc == 0 && (rc = sp_container_start(s->engine, s->ids[i], err)) < 0 &&
	    rc == SP_EFAILED && sv->ncmd)
		sp_error_prefix(err, "cannot start `%s`", sv->cmd[0]);
	for (k = 0; hosts && k < o->n; k++)
		free(hosts[k]);
	free(hosts);
	free(mode);
	free(labels);
	return rc;
}

/* Waits until service i is ready; 0, SP_EFAILED (err says why), SP_ECANCELLED, ... */
static int wait_ready(struct sp_services *s, const struct sp_services_opts *o, size_t i,
		      struct sp_error *err)
{
	const struct sp_service_spec *sv = &o->services[i];
	struct sp_container_state st;
	int64_t start = sp_cancel_now_ms(), deadline = start + sv->ready_timeout_ms;
	char *script = sv->ready_port ? listen_script(sv->ready_port) : NULL;
	const char *sh[3] = { "/bin/sh", "-c", script };
	char dur[32], what[128];
	int rc, code = -1;

	if (sv->ready_port)
		snprintf(what, sizeof(what), "nothing listens on port %d", sv->ready_port);
	else if (sv->nready_cmd)
		snprintf(what, sizeof(what), "`%s` did not exit 0", sv->ready_cmd[0]);
	else
		snprintf(what, sizeof(what), "its HEALTHCHECK did not pass");
	memset(&st, 0, sizeof(st));
	for (;;) {
		struct sp_error probe = SP_ERROR_INIT;
		if (o->cancel && o->cancel(o->cancel_ud)) {
			rc = SP_ECANCELLED;
			goto out;
		}
		sp_container_state_release(&st);
		if ((rc = sp_container_inspect(s->engine, s->ids[i], &st, err)) < 0)
			goto out;
		if (!st.running) {
			rc = sp_error_set(err, SP_EFAILED, "service %s exited (status %d) before it "
					  "was ready", sv->name, st.exit_code);
			goto out;
		}
		if (sv->ready_port || sv->nready_cmd) {
			int64_t left = deadline - sp_cancel_now_ms();
			rc = sp_container_exec(s->engine, s->ids[i],
					       sv->ready_port ? sh : sv->ready_cmd,
					       sv->ready_port ? 3 : sv->nready_cmd,
					       left < 1000 ? 1000 : left > 10000 ? 10000 : left,
					       &code, &probe);
			if (rc == 0 && code == 0)
				break;
			if (rc == 0 && sv->ready_port && (code == 126 || code == 127))
				snprintf(what, sizeof(what), "its port check needs /bin/sh in the image; "
					 "use ready: {cmd: [...]}");
			if (rc < 0 && rc != SP_ETIMEOUT && rc != SP_EENGINE) {
				*err = probe;
				goto out;
			}
			if (rc == SP_EENGINE && sp_cancel_now_ms() >= deadline) {
				snprintf(what, sizeof(what), "its check could not run: %.100s", probe.msg);
			}
		} else if (!st.has_health || !strcmp(st.health, "healthy")) {
			break;
		} else if (!strcmp(st.health, "unhealthy")) {
			rc = sp_error_set(err, SP_EFAILED, "service %s is unhealthy (its HEALTHCHECK "
					  "failed)", sv->name);
			goto out;
		}
		if (sp_cancel_now_ms() >= deadline) {
			sp_duration_format(dur, sizeof(dur), sv->ready_timeout_ms);
			rc = sp_error_set(err, SP_EFAILED, "service %s not ready after %s: %s", sv->name,
					  dur, what);
			goto out;
		}
		pause_ms(300);
	}
	if (sv->ready_port)
		say(o, i, SP_SERVICE_READY, "listening on port %d after %.1fs", sv->ready_port,
		    (double)(sp_cancel_now_ms() - start) / 1000.0);
	else if (sv->nready_cmd)
		say(o, i, SP_SERVICE_READY, "`%s` passed after %.1fs", sv->ready_cmd[0],
		    (double)(sp_cancel_now_ms() - start) / 1000.0);
	else
		say(o, i, SP_SERVICE_READY, "%s after %.1fs", st.has_health ? "healthy" : "running",
		    (double)(sp_cancel_now_ms() - start) / 1000.0);
	rc = 0;
out:
	sp_container_state_release(&st);
	free(script);
	return rc;
}

int sp_docker_services_up(struct sp_engine *e, const struct sp_services_opts *o,
			  struct sp_services **out, size_t *failed, struct sp_error *err)
{
	struct sp_services *s = sp_xcalloc(1, sizeof(*s));
	size_t i;
	int rc = 0;

	*out = s;
	*failed = 0;
	s->engine = e;
	s->n = o->n;
	s->ids = sp_xcalloc(o->n + 1, sizeof(*s->ids));
	s->names = sp_xcalloc(o->n + 1, sizeof(*s->names));
	s->mask = o->mask;
	s->log = o->log;
	s->log_ud = o->log_ud;
	for (i = 0; i < o->n; i++)
		s->names[i] = sp_xstrdup(o->services[i].name);
	if (o->network == SP_NETWORK_DEFAULT) {
		if ((rc = sp_container_network_create(e, o->net_name, o->labels, o->nlabels, err)) < 0) {
			sp_error_prefix(err, "creating the services' network %s", o->net_name);
			return rc;
		}
		s->net = sp_xstrdup(o->net_name);
		s->mode = sp_xstrdup(o->net_name);
	} else if (o->network == SP_NETWORK_HOST) {
		s->mode = sp_xstrdup("host");
	}
	for (i = 0; i < o->n; i++) {
		*failed = i;
		say(o, i, SP_SERVICE_STARTING, "%s", o->services[i].image);
		if ((rc = create_one(s, o, i, err)) < 0) {
			if (rc == SP_ECANCELLED)
				return rc;
			sp_error_prefix(err, "service %s", o->services[i].name);
			say(o, i, SP_SERVICE_FAILED, "%s", err->msg);
			return rc;
		}
		if (i == 0 && o->network == SP_NETWORK_NONE)
			s->mode = sp_xasprintf("container:%s", s->ids[0]);
	}
	for (i = 0; i < o->n; i++) {
		*failed = i;
		if ((rc = wait_ready(s, o, i, err)) < 0) {
			if (rc != SP_ECANCELLED)
				say(o, i, SP_SERVICE_FAILED, "%s", err->msg);
			return rc;
		}
	}
	return 0;
}

const char *sp_docker_services_network_mode(const struct sp_services *s)
{
	return s ? s->mode : NULL;
}

int sp_docker_services_logs(struct sp_services *s, size_t i, unsigned tail, sp_runner_log_fn log,
			    void *log_ud, struct sp_error *err)
{
	if (!s || i >= s->n || !s->ids[i])
		return 0;
	return sp_container_tail_masked(s->engine, s->ids[i], tail, s->mask, log, log_ud, err);
}

/* How long down waits for an engine that went away (as runner.c's run does). */
#define ENGINE_BACK_MS (60 * 1000)

/* Removes container id; when the engine is gone, waits for it once. */
static int remove_waiting(struct sp_services *s, const char *id, bool *waited,
			  struct sp_error *err)
{
	int64_t deadline;

	if (sp_container_remove(s->engine, id, err) == 0 || *waited || sp_engine_ping(s->engine))
		return err->code ? err->code : 0;
	*waited = true;
	if (s->log) {
		char line[256];
		int n = snprintf(line, sizeof(line), "the Docker engine went away; waiting up to %ds "
				 "for it to come back to remove the services", ENGINE_BACK_MS / 1000);
		s->log(s->log_ud, SP_STREAM_INFO, line, n > 0 && (size_t)n < sizeof(line) ?
		       (size_t)n : strlen(line));
	}
	deadline = sp_cancel_now_ms() + ENGINE_BACK_MS;
	while (sp_cancel_now_ms() < deadline) {
		pause_ms(500);
		if (sp_engine_ping(s->engine)) {
			sp_error_clear(err);
			return sp_container_remove(s->engine, id, err);
		}
	}
	return err->code ? err->code : SP_EENGINE;
}

int sp_docker_services_down(struct sp_services *s, struct sp_error *err)
{
	struct sp_error one = SP_ERROR_INIT;
	bool waited = false;
	size_t i;
	int rc = 0;

	if (!s)
		return 0;
	/* the namespace's owner last: the others live in its network */
	for (i = s->n; i-- > 0;) {
		if (s->ids[i] && remove_waiting(s, s->ids[i], &waited, &one) < 0 && rc == 0) {
			rc = one.code ? one.code : SP_EENGINE;
			if (err)
				*err = one;
		}
		sp_error_clear(&one);
		free(s->ids[i]);
		free(s->names[i]);
	}
	if (s->net && sp_container_network_remove(s->engine, s->net, &one) < 0 && rc == 0) {
		rc = one.code ? one.code : SP_EENGINE;
		if (err)
			*err = one;
	}
	free(s->ids);
	free(s->names);
	free(s->net);
	free(s->mode);
	free(s);
	return rc;
}
