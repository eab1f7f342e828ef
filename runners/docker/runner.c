/*
 * runners/docker/runner.c — build and run through the Engine API.
 *
 * run() is the one place that strings container requests together, and
 * it owns the rule that matters most: whatever happens after create —
 * the command fails, the deadline passes, Ctrl-C, the daemon errs — the
 * container is removed before run() returns.  Cleanup requests carry no
 * cancel callback, so a pending signal cannot stop the cleanup itself.
 */
#include "runners/docker/runner.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/duration.h"
#include "core/registry/auth.h"
#include "core/base/error.h"
#include "core/pipeline/artifact.h"
#include "core/pipeline/vars.h"
#include "core/base/xalloc.h"
#include "runners/docker/build.h"
#include "runners/docker/container.h"
#include "runners/docker/image.h"
#include "runners/docker/services.h"

struct docker_runner {
	struct sp_runner base;
	struct sp_engine *engine;
};

static struct sp_engine *engine_of(struct sp_runner *r)
{
	return ((struct docker_runner *)r)->engine;
}

static int docker_build(struct sp_runner *r, const struct sp_build_opts *o,
			struct sp_build_result *res, struct sp_error *err)
{
	return sp_docker_build(engine_of(r), o, res, err);
}

static void info(const struct sp_run_opts *o, const char *what, const char *why)
{
	char line[1024];
	int n;

	if (!o->log)
		return;
	n = snprintf(line, sizeof(line), "%s: %s", what, why);
	if (n > 0)
		o->log(o->log_ud, SP_STREAM_INFO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* "/tmp/stagepipe-reports" → parent "/tmp", name "stagepipe-reports" */
static void split_path(const char *path, char **parent, char **name)
{
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path) {
		*parent = sp_xstrdup("/");
		*name = sp_xstrdup(slash ? slash + 1 : path);
	} else {
		*parent = sp_xstrndup(path, (size_t)(slash - path));
		*name = sp_xstrdup(slash + 1);
	}
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* How long a run waits for an engine that went away (crashed, restarted)
 * to come back, so that it can remove its container. */
#define ENGINE_BACK_SECS 60

/*
 * Removes container id (forced).  When the engine itself is gone, waits up
 * to ENGINE_BACK_SECS for it to answer /_ping again (a restart by systemd
 * takes seconds), saying so through log, then removes it; a container that
 * still cannot be removed is named with what removes it later.
 */
static int remove_container(struct sp_engine *e, const char *id, sp_runner_log_fn log,
			    void *log_ud, sp_cancel_fn cancel, void *cancel_ud, struct sp_error *err)
{
	char line[512];
	int64_t deadline;
	int n, rc, was_cancelled;

	if ((rc = sp_container_remove(e, id, err)) == 0 || sp_engine_ping(e))
		return rc;  /* removed, or the engine is there and its answer stands */
	n = snprintf(line, sizeof(line), "the Docker engine at %s went away; waiting up to %ds "
		     "for it to come back to remove container %.12s", sp_engine_host(e),
		     ENGINE_BACK_SECS, id);
	if (log && n > 0)
		log(log_ud, SP_STREAM_INFO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	/* an interrupt that stopped the run does not cut the wait short; one
	 * that comes during it does */
	was_cancelled = cancel && cancel(cancel_ud);
	deadline = sp_cancel_now_ms() + ENGINE_BACK_SECS * 1000;
	while (sp_cancel_now_ms() < deadline && !(!was_cancelled && cancel && cancel(cancel_ud))) {
		pause_ms(500);
		if (sp_engine_ping(e)) {
			sp_error_clear(err);
			return sp_container_remove(e, id, err);
		}
	}
	return sp_error_set(err, SP_EENGINE, "container %.12s left behind: the Docker engine at "
			    "%s did not come back; `stagepipe prune` removes it once it is back",
			    id, sp_engine_host(e));
}

static void warn(const struct sp_run_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warn(const struct sp_run_opts *o, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (!o->log)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		o->log(o->log_ud, SP_STREAM_INFO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static bool artifact_filter(void *ud, const char *rel)
{
	return sp_artifact_match(ud, rel);
}

/* mkdir -p of rel (cleaned, may be "") under root; 0 or -1 with errno. */
static int make_dirs(const char *root, const char *rel)
{
	char *path = sp_xasprintf("%s/%s", root, rel), *p;
	int rc = 0;

	for (p = path + strlen(root) + 1; rc == 0 && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			rc = -1;
		*p = '/';
	}
	if (rc == 0 && *rel && mkdir(path, 0755) < 0 && errno != EEXIST)
		rc = -1;
	free(path);
	return rc;
}

/*
 * Copies o->artifacts out of container id (see runner.h).  Only a cancel
 * is an error (SP_ECANCELLED, err set); everything else is a warning line
 * and a count in res.
 */
static int copy_artifacts(struct sp_engine *e, const char *id, const struct sp_run_opts *o,
			  struct sp_run_result *res, struct sp_error *err)
{
	struct sp_container_state st;
	unsigned long long cap = o->artifacts_max_bytes ? o->artifacts_max_bytes :
				 SP_ARTIFACTS_DEFAULT_MAX;
	const char *workdir;
	size_t i;
	int rc = 0;

	if ((rc = sp_container_inspect(e, id, &st, err)) < 0) {
		warn(o, "warning: artifacts not copied: %s", err->msg);
		res->artifacts_failed += (unsigned)o->nartifacts;
		sp_error_clear(err);
		return 0;
	}
	workdir = *st.workdir ? st.workdir : "/";
	for (i = 0; i < o->nartifacts; i++) {
		struct sp_untar_opts uo = SP_UNTAR_OPTS_INIT;
		struct sp_untar_stats stats = { 0, 0 };
		struct sp_error why = SP_ERROR_INIT;
		const char *pat = o->artifacts[i];
		char *base = NULL, *rest = NULL, *src = NULL, *dest = NULL, *slash;
		const char *sub;

		sp_artifact_split(pat, &base, &rest);
		src = sp_xasprintf("%s%s%s%s", workdir, workdir[strlen(workdir) - 1] == '/' ? "" : "/",
				   base, rest ? (*base ? "/." : ".") : "");
		/* a glob: the base folder's contents ("base/." gives entries
		 * "./a", also for "/" itself), filtered, into dest/base; a plain
		 * path: the archive of it as is ("name/..."), into dest/dirname */
		if (rest) {
			uo.filter = artifact_filter;
			uo.filter_ud = rest;
			sub = base;
			dest = sp_xasprintf("%s%s%s", o->artifacts_dest, *base ? "/" : "", base);
		} else {
			slash = strrchr(base, '/');
			if (slash)
				*slash = '\0';
			sub = slash ? base : "";
			dest = sp_xasprintf("%s%s%s", o->artifacts_dest, *sub ? "/" : "", sub);
		}
		uo.max_bytes = cap - res->artifacts_bytes;
		uo.max_entries = 100000;
		if (make_dirs(o->artifacts_dest, sub) < 0) {
			warn(o, "warning: artifact %s: creating %s: %s", pat, dest, strerror(errno));
			res->artifacts_failed++;
			goto next;
		}
		rc = sp_container_extract(e, id, src, dest, &uo, o->cancel, o->cancel_ud, &stats, &why);
		res->artifacts_entries += stats.entries;
		res->artifacts_bytes += stats.bytes;
		if (rc == SP_ECANCELLED) {
			*err = why;
			goto next;
		}
		if (rc == SP_ENOTFOUND) {
			warn(o, "warning: artifact %s: %s not found in the container; nothing copied",
			     pat, rest ? "folder" : "path");
			res->artifacts_missing++;
		} else if (rc == SP_ETOOBIG && !strstr(why.msg, "entries")) {
			warn(o, "warning: artifact %s: over the job's cap of %llu bytes of artifacts; "
			     "the rest is not copied", pat, cap);
			res->artifacts_failed++;
		} else if (rc == SP_ETOOBIG) {
			warn(o, "warning: artifact %s: %s; the rest is not copied", pat, why.msg);
			res->artifacts_failed++;
		} else if (rc < 0) {
			warn(o, "warning: artifact %s: %s", pat, why.msg);
			res->artifacts_failed++;
		} else if (rest && stats.entries == 0) {
			warn(o, "warning: artifact %s: no match in the container; nothing copied", pat);
			res->artifacts_missing++;
		}
		if (rest && stats.entries == 0)
			(void)rmdir(dest);  /* only when it stayed empty */
		rc = 0;
next:
		free(base);
		free(rest);
		free(src);
		free(dest);
		if (rc == SP_ECANCELLED || (res->artifacts_bytes >= cap && i + 1 < o->nartifacts))
			break;
	}
	sp_container_state_release(&st);
	return rc;
}

static int docker_run(struct sp_runner *r, const struct sp_run_opts *o,
		      struct sp_run_result *res, struct sp_error *err)
{
	struct sp_engine *e = engine_of(r);
	struct sp_error cleanup_err = SP_ERROR_INIT;
	char *id = NULL, *parent = NULL, *name = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	if ((rc = sp_container_create(e, o, &id, err)) < 0) {
		if (rc == SP_ENOTFOUND)
			rc = SP_EENGINE;
		sp_error_prefix(err, "creating the container");
		goto out;
	}
	if (o->reports_dir) {
		split_path(o->reports_dir, &parent, &name);
		if ((rc = sp_container_mkdir(e, id, parent, name, err)) < 0) {
			sp_error_prefix(err, "creating %s in the container", o->reports_dir);
			goto out;
		}
	}
	if ((rc = sp_container_start(e, id, err)) < 0) {
		if (strstr(err->msg, "network bridge not found") ||
		    strstr(err->msg, "network default not found"))
			sp_error_prefix(err, "this engine has no \"bridge\" network; set "
					"build.network: host or none in the pipeline");
		if (rc == SP_EFAILED && o->ncmd)
			sp_error_prefix(err, "cannot start `%s` in the image", o->cmd[0]);
		else
			sp_error_prefix(err, "starting the container");
		goto out;
	}
	rc = sp_container_logs(e, id, o->log, o->log_ud, o->mask, o->cancel, o->cancel_ud,
			       &res->output_bytes, err);
	if (rc == SP_ECANCELLED)
		goto out;  /* the forced remove below kills it */
	if (rc < 0) {
		sp_error_prefix(err, "following the container's output");
		goto out;
	}
	rc = sp_container_wait(e, id, &res->exit_code, &res->oom_killed, o->cancel, o->cancel_ud,
			       err);
	if (rc < 0)
		goto out;  /* remove below stops it */
	if (o->reports_dir && o->reports_dest) {
		rc = sp_container_copy_out(e, id, o->reports_dir, o->reports_dest, o->cancel,
					   o->cancel_ud, &cleanup_err);
		if (rc == SP_ECANCELLED) {
			*err = cleanup_err;
			goto out;
		}
		rc = 0;
		if (cleanup_err.code)
			info(o, "reports not copied", cleanup_err.msg);
		else
			res->reports_copied = true;
	}
	if (o->nartifacts && o->artifacts_dest &&
	    (rc = copy_artifacts(e, id, o, res, err)) < 0)
		goto out;
out:
	if (id && remove_container(e, id, o->log, o->log_ud, o->cancel, o->cancel_ud,
				   &cleanup_err) < 0)
		info(o, "could not remove the container", cleanup_err.msg);
	free(id);
	free(parent);
	free(name);
	return rc;
}

static void log_text(const struct sp_health_opts *o, enum sp_log_stream stream, const char *text)
{
	const char *p = text, *nl;

	if (!o->log)
		return;
	while (*p) {
		nl = strchr(p, '\n');
		o->log(o->log_ud, stream, p, nl ? (size_t)(nl - p) : strlen(p));
		if (!nl)
			break;
		p = nl + 1;
	}
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * nmemb;
}

/* One HTTP GET of the service; 1 when it answered 2xx. */
static int probe_http(const char *host, int port, const char *path)
{
	CURL *c = curl_easy_init();
	char *url;
	long status = 0;

	if (!c)
		return 0;
	url = sp_xasprintf("http://%s:%d%s", host, port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	free(url);
	return status >= 200 && status < 300;
}

/* How often the health check looks again (inspect, and probe). */
#define HEALTH_POLL_MS 200

/*
 * Runs the image's HEALTHCHECK command in the container through the exec
 * API, within its Timeout and the time left; 1 when it exited 0.  A failure
 * is not a verdict (the start period's rule: early failures do not count);
 * Docker's own probes still decide "unhealthy".
 */
static int probe_exec(struct sp_engine *e, const char *id, const struct sp_container_state *st,
		      int64_t deadline)
{
	struct sp_error err = SP_ERROR_INIT;
	int64_t left = deadline - sp_cancel_now_ms();
	int64_t limit = st->health_timeout_ms > 0 ? st->health_timeout_ms : 30000;
	int code = -1;

	if (left <= 0)
		return 0;
	if (limit > left)
		limit = left;
	if (sp_container_exec(e, id, (const char *const *)st->health_cmd, st->nhealth_cmd, limit,
			      &code, &err) < 0)
		return 0;
	return code == 0;
}

static int docker_health(struct sp_runner *r, const struct sp_health_opts *o, struct sp_error *err)
{
	struct sp_engine *e = engine_of(r);
	struct sp_run_opts ro;
	struct sp_container_state st;
	struct sp_error ignored = SP_ERROR_INIT;
	int64_t deadline = sp_cancel_now_ms() + o->timeout_ms;
	char *id = NULL, what[128];
	int rc;

	memset(&st, 0, sizeof(st));
	if (o->port && o->network == SP_NETWORK_NONE)
		return sp_error_set(err, SP_ECONFIG, "healthcheck.port needs a network: set "
				    "build.network to host or default");
	memset(&ro, 0, sizeof(ro));
	ro.image = o->image;
	ro.env = o->env;
	ro.nenv = o->nenv;
	ro.user = o->user;
	ro.network = o->network;
	ro.labels = o->labels;
	ro.nlabels = o->nlabels;
	if ((rc = sp_container_create(e, &ro, &id, err)) < 0 ||
	    (rc = sp_container_start(e, id, err)) < 0) {
		sp_error_prefix(err, "starting the image for its health check");
		goto out;
	}
	if (o->port)
		snprintf(what, sizeof(what), "GET http://…:%d%s", o->port, o->path);
	else
		snprintf(what, sizeof(what), "the image's HEALTHCHECK");
	for (;;) {
		if (o->cancel && o->cancel(o->cancel_ud)) {
			rc = SP_ECANCELLED;
			goto out;
		}
		sp_container_state_release(&st);
		if ((rc = sp_container_inspect(e, id, &st, err)) < 0)
			goto out;
		if (!st.running) {
			rc = sp_error_set(err, SP_EFAILED, "the container exited (status %d) before "
					  "it was healthy; its last output is above", st.exit_code);
			(void)sp_container_tail(e, id, 20, o->log, o->log_ud, &ignored);
			goto out;
		}
		if (o->port) {
			const char *host = o->network == SP_NETWORK_HOST || !*st.ip ? "127.0.0.1" : st.ip;
			if (probe_http(host, o->port, o->path))
				break;
		} else if (!st.has_health) {
			rc = sp_error_set(err, SP_EFAILED, "the image has no HEALTHCHECK: add one to "
					  "the Dockerfile, or set healthcheck: {port: N, path: /health}");
			goto out;
		} else if (!strcmp(st.health, "healthy")) {
			break;
		} else if (st.health_cmd && strcmp(st.health, "unhealthy") &&
			   probe_exec(e, id, &st, deadline)) {
			/* the image's own check passed when we ran it: Docker's
			 * first scheduled probe comes only after its interval */
			break;
		} else if (!strcmp(st.health, "unhealthy")) {
			log_text(o, SP_STREAM_INFO, st.health_log);
			rc = sp_error_set(err, SP_EFAILED, "unhealthy: %s failed; its last output is "
					  "above", what);
			goto out;
		}
		if (sp_cancel_now_ms() >= deadline) {
			char dur[32];
			sp_duration_format(dur, sizeof(dur), o->timeout_ms);
			if (st.health_log && *st.health_log)
				log_text(o, SP_STREAM_INFO, st.health_log);
			(void)sp_container_tail(e, id, 20, o->log, o->log_ud, &ignored);
			rc = sp_error_set(err, SP_EFAILED, "not healthy after %s (%s: %s)", dur, what,
					  o->port ? "no 2xx answer" : st.health);
			goto out;
		}
		pause_ms(HEALTH_POLL_MS);
	}
	rc = 0;
out:
	if (id)
		(void)remove_container(e, id, o->log, o->log_ud, o->cancel, o->cancel_ud,
				       NULL);  /* forced: kills it first */
	sp_container_state_release(&st);
	free(id);
	return rc;
}

/* Layer states worth a line; progress within a layer is not. */
static void push_event(void *ud, const struct sp_image_push_event *ev)
{
	const struct sp_push_opts *o = ud;
	char line[512];
	int n = 0;

	switch (ev->kind) {
	case SP_IMAGE_PUSH_AUTH:
		n = snprintf(line, sizeof(line), "credentials: %s", ev->text);
		break;
	case SP_IMAGE_PUSH_LAYER:
		if (ev->state == SP_IMAGE_LAYER_PUSHED || ev->state == SP_IMAGE_LAYER_EXISTS)
			n = snprintf(line, sizeof(line), "layer %s %s", ev->layer,
				     sp_image_layer_state_name(ev->state));
		else if (ev->state == SP_IMAGE_LAYER_MOUNTED || ev->state == SP_IMAGE_LAYER_RETRYING)
			n = snprintf(line, sizeof(line), "layer %s %s", ev->layer, ev->text);
		break;
	default:
		break;
	}
	if (n > 0 && o->log)
		o->log(o->log_ud, SP_STREAM_INFO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int docker_push(struct sp_runner *r, const struct sp_push_opts *o,
		       struct sp_push_result *res, struct sp_error *err)
{
	struct sp_auth_opts ao = { sp_vars_process_env, NULL, 0 };
	struct sp_image_push_opts po;
	struct sp_image_push_result ir;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&po, 0, sizeof(po));
	po.on_event = push_event;
	po.ud = (void *)o;
	po.cancel = o->cancel;
	po.cancel_ud = o->cancel_ud;
	if ((rc = sp_image_push_auto(engine_of(r), o->ref, &ao, &po, &ir, err)) < 0)
		return rc;
	res->digest = ir.digest;
	ir.digest = NULL;  /* handed to res */
	res->layers_pushed = (unsigned)ir.pushed;
	res->layers_present = (unsigned)(ir.existing + ir.mounted);
	sp_image_push_result_release(&ir);
	return 0;
}

static int docker_tag(struct sp_runner *r, const char *image, const char *ref,
		      struct sp_error *err)
{
	return sp_image_tag(engine_of(r), image, ref, err);
}

static void docker_free(struct sp_runner *r)
{
	if (!r)
		return;
	sp_engine_free(engine_of(r));
	free(r);
}

static int docker_services_up(struct sp_runner *r, const struct sp_services_opts *o,
			      struct sp_services **out, size_t *failed, struct sp_error *err)
{
	return sp_docker_services_up(engine_of(r), o, out, failed, err);
}

static int docker_services_logs(struct sp_runner *r, struct sp_services *s, size_t i,
				unsigned tail, sp_runner_log_fn log, void *log_ud,
				struct sp_error *err)
{
	(void)r;
	return sp_docker_services_logs(s, i, tail, log, log_ud, err);
}

static int docker_services_down(struct sp_runner *r, struct sp_services *s, struct sp_error *err)
{
	(void)r;
	return sp_docker_services_down(s, err);
}

static const struct sp_services_ops docker_services = {
	docker_services_up,
	sp_docker_services_network_mode,
	docker_services_logs,
	docker_services_down,
};

static struct sp_runner *docker_sibling(struct sp_runner *r);

static const struct sp_runner_ops docker_ops = {
	"docker",
	docker_build,
	docker_run,
	docker_health,
	docker_tag,
	docker_push,
	docker_free,
	docker_sibling,
};

/* One libcurl handle per engine: a sibling has its own (sp_engine_dup,
 * no new handshake). */
static struct sp_runner *docker_sibling(struct sp_runner *r)
{
	return sp_docker_runner_new(sp_engine_dup(engine_of(r)));
}

struct sp_runner *sp_docker_runner_new(struct sp_engine *e)
{
	struct docker_runner *d = sp_xcalloc(1, sizeof(*d));

	d->base.ops = &docker_ops;
	d->base.services = &docker_services;
	d->engine = e;
	return &d->base;
}

struct sp_engine *sp_docker_runner_engine(struct sp_runner *r)
{
	return engine_of(r);
}
