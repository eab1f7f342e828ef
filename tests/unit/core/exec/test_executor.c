/*
 * test_executor.c — the executor's logic without a Docker daemon.
 *
 * The executor talks to the backend only through struct sp_runner
 * (runners/runner.h), so these tests give it a scripted fake runner: each
 * case says, per stage, what build/run/health/push return (an image id, a
 * build failure, an engine error, an interrupt, an exit code) and which
 * real pytest reports (tests/fixtures/pytest/, see its README) "the
 * container" leaves behind; the fake copies them to reports_dest as the
 * Docker runner does.  The fake records every call (target, argv, env,
 * labels, limits, refs) and a recording sink (struct sp_sink) keeps every
 * event, so each case checks both what the executor asked the backend to
 * do and what it reported.
 *
 * Interrupts are real, not simulated: an op that "hangs" polls the cancel
 * callback it was given (sp_cancel_check over the stage's struct
 * sp_cancel) until it fires, as a runner following a container's logs
 * does.  A timeout is a stage with a short `timeout:` reaching its
 * deadline; a Ctrl-C is the job's own cancel callback turning true.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/cancel.h"
#include "core/yaml/diag.h"
#include "core/base/error.h"
#include "core/exec/events.h"
#include "core/exec/executor.h"
#include "core/exec/python.h"
#include "core/base/fsutil.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"
#include "core/base/xalloc.h"
#include "runners/runner.h"
#include "tests/unit/support/testutil.h"

/* ---- string vectors ---- */

struct strv {
	char **v;
	size_t n, alloc;
};

static void strv_push(struct strv *s, const char *str)
{
	SP_GROW(s->v, s->alloc, s->n + 1);
	s->v[s->n++] = sp_xstrdup(str);
}

static void strv_release(struct strv *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool strv_has(const struct strv *s, const char *str)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], str))
			return true;
	return false;
}

/* The argv as one string, for readable assertions. */
static char *strv_join(const struct strv *s)
{
	size_t i, len = 1;
	char *out;

	for (i = 0; i < s->n; i++)
		len += strlen(s->v[i]) + 1;
	out = sp_xcalloc(len, 1);
	for (i = 0; i < s->n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, s->v[i]);
	}
	return out;
}

static char *xstrdup_or_null(const char *s)
{
	return s ? sp_xstrdup(s) : NULL;
}

/* ---- the scripted fake runner ---- */

enum interrupt {
	INT_NONE,
	INT_HANG,     /* wait until the cancel callback fires (a deadline) */
	INT_SIGNAL,   /* the user presses Ctrl-C, then wait as above */
	INT_SIGNAL_AFTER, /* Ctrl-C arrives as the op completes normally */
};

/* What the backend does for one stage; zero means "succeed". */
struct step {
	const char *stage;
	/* build */
	int build_rc;               /* SP_EFAILED, SP_EENGINE, ... with build_msg */
	const char *build_msg;
	enum interrupt build_int;
	/* run */
	int run_rc;
	const char *run_msg;
	enum interrupt run_int;
	int exit_code;
	bool oom;
	const char *junit;          /* fixture in pytest/, copied as junit.xml */
	const char *coverage;       /* fixture in pytest/, copied as coverage.xml */
	const char *coverage_xml;   /* or a made-up report, written as coverage.xml */
	bool no_copy;               /* reports_copied = false */
	/* health */
	int health_rc;
	const char *health_msg;
	enum interrupt health_int;
	/* push: the push_fail_at'th push (1-based) of the stage fails */
	int push_rc;
	const char *push_msg;
	unsigned push_fail_at;
	enum interrupt push_int;
	/* the boot of a pytest stage (core/exec/python.h): what the image has */
	const char *no_python;      /* space-separated names that cannot start */
	const char *python2;        /* space-separated names that are Python 2.7.18 */
	bool no_pytest, no_cov;     /* what the boot's interpreter lacks */
	bool probe_silent;          /* the boot prints nothing of its own */
	enum interrupt probe_int;   /* before the boot's go line */
};

enum op { OP_BUILD, OP_RUN, OP_HEALTH, OP_PUSH, OP_TAG };

struct call {
	enum op op;
	char *stage;                /* io.stagepipe.stage, or the stage of the last build */
	/* build */
	char *target, *context, *dockerfile;
	struct strv tags, args;
	bool no_cache, pull;
	/* every op with labels: "name=value" */
	struct strv labels;
	enum sp_network network;
	/* run; a pytest stage's boot is recorded as what it runs, "AS -m pytest
	 * ARGS", with the name the container was started as and the MODE */
	char *image;
	struct strv argv, env;
	char *cand, *mode;
	int rc;                     /* what the run returned */
	char *user, *workdir, *reports_dir, *reports_dest;
	int64_t memory, nano_cpus;
	/* health */
	int port;
	char *path;
	int64_t timeout_ms;
	/* push */
	char *ref;
	/* how cancel was wired */
	bool cancel_is_check;       /* sp_cancel_check over a struct sp_cancel */
	bool cancel_wraps_user;     /* ... whose fn/ud are the job's own */
	int64_t deadline_left_ms;   /* deadline - now when the op started */
	bool has_log;
};

#define MAX_CALLS 64

struct fake {
	struct sp_runner base;      /* first: the executor sees only this */
	const struct step *steps;
	size_t nsteps;
	struct call calls[MAX_CALLS];
	size_t ncalls;
	const struct step *cur;     /* the step of the last build */
	char *cur_stage;
	unsigned pushes;            /* of the current stage */
	unsigned nbuilds;
	unsigned npush_total;
	bool signalled;             /* the job's Ctrl-C flag */
	unsigned cancel_polls;
	bool freed;
};

static const struct step no_step;

static const struct step *step_of(struct fake *f, const char *stage)
{
	size_t i;

	for (i = 0; stage && i < f->nsteps; i++)
		if (!strcmp(f->steps[i].stage, stage))
			return &f->steps[i];
	return &no_step;
}

static int user_cancel(void *ud)
{
	struct fake *f = ud;

	f->cancel_polls++;
	return f->signalled;
}

static const char *label_of(const struct sp_build_kv *labels, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(labels[i].name, name))
			return labels[i].value;
	return NULL;
}

static struct call *new_call(struct fake *f, enum op op, sp_cancel_fn cancel, void *cancel_ud,
			     const struct sp_build_kv *labels, size_t nlabels)
{
	struct call *c;
	size_t i;

	if (f->ncalls == MAX_CALLS)
		fail_msg("more than %d runner calls", MAX_CALLS);
	c = &f->calls[f->ncalls++];
	memset(c, 0, sizeof(*c));
	c->op = op;
	for (i = 0; i < nlabels; i++) {
		char *kv = sp_xasprintf("%s=%s", labels[i].name, labels[i].value);
		strv_push(&c->labels, kv);
		free(kv);
	}
	if (label_of(labels, nlabels, "io.stagepipe.stage"))
		c->stage = sp_xstrdup(label_of(labels, nlabels, "io.stagepipe.stage"));
	else
		c->stage = xstrdup_or_null(f->cur_stage);
	c->cancel_is_check = cancel == sp_cancel_check;
	if (c->cancel_is_check) {
		const struct sp_cancel *sc = cancel_ud;
		c->cancel_wraps_user = sc->fn == user_cancel && sc->ud == f;
		c->deadline_left_ms = sc->deadline_ms ? sc->deadline_ms - sp_cancel_now_ms() : -1;
	}
	return c;
}

static void call_release(struct call *c)
{
	free(c->stage);
	free(c->target);
	free(c->context);
	free(c->dockerfile);
	strv_release(&c->tags);
	strv_release(&c->args);
	strv_release(&c->labels);
	free(c->image);
	strv_release(&c->argv);
	free(c->cand);
	free(c->mode);
	strv_release(&c->env);
	free(c->user);
	free(c->workdir);
	free(c->reports_dir);
	free(c->reports_dest);
	free(c->path);
	free(c->ref);
}

/*
 * Waits, as a runner following a container does, until cancel fires;
 * returns SP_ECANCELLED then.  Gives up (failing the test) after 10s.
 */
static int hang(struct fake *f, enum interrupt how, sp_cancel_fn cancel, void *ud,
		struct sp_error *err)
{
	int64_t give_up = sp_cancel_now_ms() + 10000;
	struct timespec ts = { 0, 2 * 1000 * 1000 };

	if (how == INT_SIGNAL)
		f->signalled = true;
	while (!cancel(ud)) {
		if (sp_cancel_now_ms() > give_up)
			fail_msg("the executor's cancel callback never fired");
		nanosleep(&ts, NULL);
	}
	return sp_error_set(err, SP_ECANCELLED, "stopped");
}

/* A compliant runner stops at once when cancel has already fired. */
static int cancelled_already(sp_cancel_fn cancel, void *ud, struct sp_error *err)
{
	if (cancel && cancel(ud))
		return sp_error_set(err, SP_ECANCELLED, "stopped before starting");
	return 0;
}

static int fake_build(struct sp_runner *r, const struct sp_build_opts *o,
		      struct sp_build_result *res, struct sp_error *err)
{
	struct fake *f = (struct fake *)r;
	struct call *c = new_call(f, OP_BUILD, o->cancel, o->cancel_ud, o->labels, o->nlabels);
	const struct step *s = step_of(f, c->stage);
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	c->target = xstrdup_or_null(o->target);
	c->context = xstrdup_or_null(o->context_dir);
	c->dockerfile = xstrdup_or_null(o->dockerfile);
	for (i = 0; i < o->ntags; i++)
		strv_push(&c->tags, o->tags[i]);
	for (i = 0; i < o->nargs; i++) {
		char *kv = sp_xasprintf("%s=%s", o->args[i].name, o->args[i].value);
		strv_push(&c->args, kv);
		free(kv);
	}
	c->no_cache = o->no_cache;
	c->pull = o->pull;
	c->network = o->network;
	c->has_log = o->log != NULL;
	f->cur = s;
	free(f->cur_stage);
	f->cur_stage = xstrdup_or_null(c->stage);
	f->pushes = 0;

	if ((rc = cancelled_already(o->cancel, o->cancel_ud, err)) < 0)
		return rc;
	if (o->log)
		o->log(o->log_ud, SP_STREAM_BUILD, "#1 [internal] load build definition", 35);
	if (s->build_int == INT_HANG || s->build_int == INT_SIGNAL)
		return hang(f, s->build_int, o->cancel, o->cancel_ud, err);
	if (s->build_rc)
		return sp_error_set(err, s->build_rc, "%s", s->build_msg ? s->build_msg : "build failed");
	if (s->build_int == INT_SIGNAL_AFTER)
		f->signalled = true;
	f->nbuilds++;
	res->image_id = sp_xasprintf("sha256:%064x", f->nbuilds);
	res->context_files = 12;
	res->context_bytes = 3456;
	res->seconds = 0.5;
	return 0;
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	size_t n;
	FILE *in = fopen(from, "rb"), *out;

	if (!in)
		fail_msg("cannot open fixture %s (set SP_FIXTURES)", from);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* Leaves the stage's reports in reports_dest, as docker cp would. */
static void copy_reports(const struct step *s, const char *dest)
{
	char *from, *to;

	if (mkdir(dest, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", dest, strerror(errno));
	if (s->junit) {
		from = sp_test_fixture_path("pytest", s->junit);
		to = sp_xasprintf("%s/junit.xml", dest);
		copy_file(from, to);
		free(from);
		free(to);
	}
	if (s->coverage) {
		from = sp_test_fixture_path("pytest", s->coverage);
		to = sp_xasprintf("%s/coverage.xml", dest);
		copy_file(from, to);
		free(from);
		free(to);
	}
	if (s->coverage_xml) {
		to = sp_xasprintf("%s/coverage.xml", dest);
		sp_test_write_file(to, s->coverage_xml);
		free(to);
	}
}

static bool word_in(const char *list, const char *w)
{
	size_t n = strlen(w);
	const char *p = list;

	while (p && *p) {
		if (!strncmp(p, w, n) && (p[n] == ' ' || !p[n]))
			return true;
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return false;
}

static void say(const struct sp_run_opts *o, const char *key, const char *v)
{
	char *line = sp_xasprintf(SP_PYTHON_PROBE_MARK "%s=%s", key, v);

	o->log(o->log_ud, SP_STREAM_STDOUT, line, strlen(line));
	free(line);
}

static bool is_boot(const struct sp_run_opts *o)
{
	return o->ncmd >= 4 && !strcmp(o->cmd[1], "-c") && !strcmp(o->cmd[2], sp_python_boot_script);
}

/*
 * The boot (core/exec/python.h) in the step's image: *as is the name it
 * ends up running as.  0: its go line was said, pytest runs; 1: it
 * stopped (exit 121); <0: it did not start, or hung.
 */
static int fake_boot(struct fake *f, const struct step *s, const struct sp_run_opts *o,
		     const char **as, struct sp_run_result *res, struct sp_error *err)
{
	const char *mode = o->cmd[3];
	bool explicit_ = strstr(mode, "explicit=1") != NULL, cov = strstr(mode, "cov=1") != NULL;
	int hop = strstr(mode, "hop=2") ? 2 : strstr(mode, "hop=1") ? 1 : 0;
	bool py2;
	char *exe;

	*as = o->cmd[0];
	if (word_in(s->no_python, o->cmd[0]))
		return sp_error_set(err, SP_EFAILED, "cannot start `%s` in the image: exec: "
				    "\"%s\": executable file not found in $PATH", o->cmd[0],
				    o->cmd[0]);
	/* python first, then a Python 2 makes way for python3 */
	if (!explicit_ && hop == 0 && !word_in(s->no_python, "python")) {
		*as = "python";
		hop = 1;
	}
	if (!explicit_ && hop < 2 && word_in(s->python2, *as) && !word_in(s->no_python, "python3")) {
		*as = "python3";
		hop = 2;
	}
	py2 = word_in(s->python2, *as);
	if (s->probe_int == INT_HANG || s->probe_int == INT_SIGNAL)
		return hang(f, s->probe_int, o->cancel, o->cancel_ud, err);
	if (s->probe_silent)
		return 0;
	o->log(o->log_ud, SP_STREAM_STDOUT, "sitecustomize says hello", 24);
	exe = sp_xasprintf("%s%s", (*as)[0] == '/' ? "" : "/usr/bin/", *as);
	say(o, "executable", exe);
	free(exe);
	say(o, "version", py2 ? "2.7.18" : "3.11.2");
	say(o, "pytest", s->no_pytest ? "" : "7.2.1");
	say(o, "pytest_cov", s->no_cov ? "" : "4.0.0");
	say(o, "path", "/usr/local/bin:/usr/bin");
	say(o, "as", *as);
	if ((py2 && !explicit_) || s->no_pytest || (cov && s->no_cov)) {
		o->log(o->log_ud, SP_STREAM_STDOUT, SP_PYTHON_STOP, strlen(SP_PYTHON_STOP));
		res->exit_code = SP_PYTHON_BOOT_EXIT;
		return 1;
	}
	o->log(o->log_ud, SP_STREAM_STDOUT, SP_PYTHON_GO, strlen(SP_PYTHON_GO));
	return 0;
}

/* ---- fake services (runners/runner.h sp_services_ops) ---- */

/* What the fake services did, in order, with the run's network mode. */
static struct {
	char trace[1024];
	int up_rc;                  /* what up returns */
	size_t nspecs;
	char images[4][80];
	char env0[80];
	char cmd0[80];
	bool has_mask_fn;
} svc;

static void svc_trace_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void svc_trace_add(const char *fmt, ...)
{
	size_t len = strlen(svc.trace);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(svc.trace + len, sizeof(svc.trace) - len, fmt, ap);
	va_end(ap);
	len = strlen(svc.trace);
	snprintf(svc.trace + len, sizeof(svc.trace) - len, " ");
}

static int fake_services_up(struct sp_runner *r, const struct sp_services_opts *o,
			    struct sp_services **out, size_t *failed, struct sp_error *err)
{
	size_t i;

	(void)r;
	*out = (struct sp_services *)&svc;
	svc.nspecs = o->n;
	for (i = 0; i < o->n && i < 4; i++) {
		snprintf(svc.images[i], sizeof(svc.images[i]), "%s", o->services[i].image);
		o->state(o->state_ud, i, SP_SERVICE_STARTING, o->services[i].image);
	}
	if (o->n && o->services[0].nenv)
		snprintf(svc.env0, sizeof(svc.env0), "%s", o->services[0].env[0]);
	if (o->n && o->services[0].ncmd)
		snprintf(svc.cmd0, sizeof(svc.cmd0), "%s", o->services[0].cmd[o->services[0].ncmd - 1]);
	svc_trace_add("up(%zu,%s)", o->n, sp_network_name(o->network));
	if (svc.up_rc) {
		*failed = o->n - 1;
		o->state(o->state_ud, o->n - 1, SP_SERVICE_FAILED, "not ready");
		return sp_error_set(err, svc.up_rc, "service %s not ready after 1s: nothing listens "
				    "on port %d", o->services[o->n - 1].name,
				    o->services[o->n - 1].ready_port);
	}
	for (i = 0; i < o->n; i++)
		o->state(o->state_ud, i, SP_SERVICE_READY, "listening");
	return 0;
}

static const char *fake_services_mode(const struct sp_services *s)
{
	(void)s;
	return "container:fake";
}

static int fake_services_logs(struct sp_runner *r, struct sp_services *s, size_t i, unsigned tail,
			      sp_runner_log_fn log, void *log_ud, struct sp_error *err)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "service %zu says hello", i);

	(void)r;
	(void)s;
	(void)err;
	svc_trace_add("logs(%zu,%u)", i, tail);
	log(log_ud, SP_STREAM_STDOUT, line, (size_t)n);
	return 0;
}

static int fake_services_down(struct sp_runner *r, struct sp_services *s, struct sp_error *err)
{
	(void)r;
	(void)err;
	assert_ptr_equal(s, &svc);
	svc_trace_add("down");
	return 0;
}

static const struct sp_services_ops fake_services = {
	fake_services_up, fake_services_mode, fake_services_logs, fake_services_down,
};

static int fake_run(struct sp_runner *r, const struct sp_run_opts *o,
		    struct sp_run_result *res, struct sp_error *err)
{
	struct fake *f = (struct fake *)r;
	struct call *c;
	const struct step *s;
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	res->exit_code = -1;
	c = new_call(f, OP_RUN, o->cancel, o->cancel_ud, o->labels, o->nlabels);
	s = step_of(f, c->stage);
	c->image = xstrdup_or_null(o->image);
	if (is_boot(o)) {
		c->cand = sp_xstrdup(o->cmd[0]);
		c->mode = sp_xstrdup(o->cmd[3]);
		strv_push(&c->argv, o->cmd[0]);
		strv_push(&c->argv, "-m");
		strv_push(&c->argv, "pytest");
	}
	for (i = is_boot(o) ? 4 : 0; i < o->ncmd; i++)
		strv_push(&c->argv, o->cmd[i]);
	for (i = 0; i < o->nenv; i++)
		strv_push(&c->env, o->env[i]);
	c->user = xstrdup_or_null(o->user);
	c->workdir = xstrdup_or_null(o->workdir);
	c->memory = o->memory;
	c->nano_cpus = o->nano_cpus;
	c->network = o->network;
	c->reports_dir = xstrdup_or_null(o->reports_dir);
	c->reports_dest = xstrdup_or_null(o->reports_dest);
	c->has_log = o->log != NULL;
	svc_trace_add("run(%s)", o->network_mode ? o->network_mode : "-");

	if ((rc = cancelled_already(o->cancel, o->cancel_ud, err)) < 0)
		return c->rc = rc;
	if (c->mode) {
		const char *as;
		if ((rc = fake_boot(f, s, o, &as, res, err)) < 0)
			return c->rc = rc;
		/* what ran */
		free(c->argv.v[0]);
		c->argv.v[0] = sp_xstrdup(as);
		if (rc == 1)
			return 0;
	}
	if (o->log) {
		o->log(o->log_ud, SP_STREAM_STDOUT, "collected 17 items", 18);
		o->log(o->log_ud, SP_STREAM_STDERR, "warning: something", 18);
	}
	if (s->run_int == INT_HANG || s->run_int == INT_SIGNAL)
		return hang(f, s->run_int, o->cancel, o->cancel_ud, err);
	if (s->run_rc)
		return sp_error_set(err, s->run_rc, "%s", s->run_msg ? s->run_msg : "run failed");
	if (s->run_int == INT_SIGNAL_AFTER)
		f->signalled = true;
	res->exit_code = s->exit_code;
	res->oom_killed = s->oom;
	res->output_bytes = 36;
	if (o->reports_dir && o->reports_dest && !s->no_copy) {
		copy_reports(s, o->reports_dest);
		res->reports_copied = true;
	}
	return 0;
}

static int fake_health(struct sp_runner *r, const struct sp_health_opts *o, struct sp_error *err)
{
	struct fake *f = (struct fake *)r;
	struct call *c = new_call(f, OP_HEALTH, o->cancel, o->cancel_ud, o->labels, o->nlabels);
	const struct step *s = step_of(f, c->stage);
	int rc;

	c->image = xstrdup_or_null(o->image);
	c->network = o->network;
	c->port = o->port;
	c->path = xstrdup_or_null(o->path);
	c->timeout_ms = o->timeout_ms;
	c->has_log = o->log != NULL;
	if ((rc = cancelled_already(o->cancel, o->cancel_ud, err)) < 0)
		return rc;
	if (s->health_int == INT_HANG || s->health_int == INT_SIGNAL)
		return hang(f, s->health_int, o->cancel, o->cancel_ud, err);
	if (s->health_rc)
		return sp_error_set(err, s->health_rc, "%s", s->health_msg ? s->health_msg : "unhealthy");
	return 0;
}

static int fake_push(struct sp_runner *r, const struct sp_push_opts *o,
		     struct sp_push_result *res, struct sp_error *err)
{
	struct fake *f = (struct fake *)r;
	struct call *c = new_call(f, OP_PUSH, o->cancel, o->cancel_ud, NULL, 0);
	const struct step *s = f->cur ? f->cur : &no_step;
	int rc;

	memset(res, 0, sizeof(*res));
	c->ref = xstrdup_or_null(o->ref);
	c->has_log = o->log != NULL;
	f->pushes++;
	if ((rc = cancelled_already(o->cancel, o->cancel_ud, err)) < 0)
		return rc;
	if (s->push_int == INT_HANG || s->push_int == INT_SIGNAL)
		return hang(f, s->push_int, o->cancel, o->cancel_ud, err);
	if (s->push_rc && (s->push_fail_at == 0 || s->push_fail_at == f->pushes))
		return sp_error_set(err, s->push_rc, "%s", s->push_msg ? s->push_msg : "push failed");
	f->npush_total++;
	res->digest = sp_xasprintf("sha256:%064x", 0xd0000u + f->npush_total);
	res->layers_pushed = f->npush_total == 1 ? 3 : 0;
	res->layers_present = 2;
	return 0;
}

static int fake_tag(struct sp_runner *r, const char *image, const char *ref,
		    struct sp_error *err)
{
	struct fake *f = (struct fake *)r;
	struct call *c = new_call(f, OP_TAG, NULL, NULL, NULL, 0);

	(void)err;
	assert_non_null(image);
	c->ref = xstrdup_or_null(ref);
	return 0;
}

static void fake_free(struct sp_runner *r)
{
	((struct fake *)r)->freed = true;
}

static const struct sp_runner_ops fake_ops = {
	"fake", fake_build, fake_run, fake_health, fake_tag, fake_push, fake_free, NULL,
};

/* Calls of one op (and stage, when not NULL), in order. */
static size_t count_calls(const struct fake *f, enum op op, const char *stage)
{
	size_t i, n = 0;

	for (i = 0; i < f->ncalls; i++)
		if (f->calls[i].op == op && (!stage || (f->calls[i].stage &&
							!strcmp(f->calls[i].stage, stage))))
			n++;
	return n;
}

static const struct call *find_call(const struct fake *f, enum op op, const char *stage)
{
	size_t i;

	for (i = 0; i < f->ncalls; i++)
		if (f->calls[i].op == op && (!stage || (f->calls[i].stage &&
							!strcmp(f->calls[i].stage, stage))))
			return &f->calls[i];
	fail_msg("no %d call for stage %s", (int)op, stage ? stage : "(any)");
	return NULL;
}

/* ---- the recording sink ---- */

struct rec_report {
	char *stage;
	enum sp_stage_result result;
	char *message;
	bool has_exit_code;
	int exit_code;
	bool has_tests;
	unsigned long tests, passed, failed, errors, skipped;
	size_t nfailures;
	char *failure0_id, *failure0_message;
	bool has_coverage;
	double coverage;
	char *image_id;
	bool junit_exists, coverage_exists;
	struct strv refs, pushed;
};

struct rec_event {
	enum sp_event_kind kind;
	char *stage;
	/* LOG */
	enum sp_log_stream stream;
	char *line;
	/* STAGE_FINISHED */
	struct rec_report report;
	/* PIPELINE_FINISHED */
	enum sp_stage_result result;
	char *message;
	struct rec_report *reports;
	size_t nreports;
};

struct recorder {
	struct sp_sink base;
	const struct sp_pipeline *pipeline;
	const char *job_id;
	struct rec_event *ev;
	size_t n, alloc;
	unsigned foreign;   /* events with the wrong pipeline or job id */
};

static void rec_copy_report(struct rec_report *d, const struct sp_stage_report *s)
{
	size_t i;

	memset(d, 0, sizeof(*d));
	d->stage = sp_xstrdup(s->stage->name);
	d->result = s->result;
	d->message = xstrdup_or_null(s->message);
	d->has_exit_code = s->has_exit_code;
	d->exit_code = s->exit_code;
	d->has_tests = s->has_tests;
	d->tests = s->tests;
	d->passed = s->passed;
	d->failed = s->failed;
	d->errors = s->errors;
	d->skipped = s->skipped;
	d->nfailures = s->nfailures;
	if (s->nfailures) {
		d->failure0_id = sp_xstrdup(s->failures[0].id);
		d->failure0_message = sp_xstrdup(s->failures[0].message);
	}
	d->has_coverage = s->has_coverage;
	d->coverage = s->coverage;
	d->image_id = xstrdup_or_null(s->image_id);
	d->junit_exists = s->junit_path && access(s->junit_path, R_OK) == 0;
	d->coverage_exists = s->coverage_path && access(s->coverage_path, R_OK) == 0;
	for (i = 0; i < s->nrefs; i++)
		strv_push(&d->refs, s->refs[i]);
	for (i = 0; i < s->npushed; i++)
		strv_push(&d->pushed, s->pushed[i]);
}

static void rec_report_release(struct rec_report *r)
{
	free(r->stage);
	free(r->message);
	free(r->failure0_id);
	free(r->failure0_message);
	free(r->image_id);
	strv_release(&r->refs);
	strv_release(&r->pushed);
}

static void rec_event(struct sp_sink *self, const struct sp_event *ev)
{
	struct recorder *rec = (struct recorder *)self;
	struct rec_event *e;
	size_t i;

	SP_GROW(rec->ev, rec->alloc, rec->n + 1);
	e = &rec->ev[rec->n++];
	memset(e, 0, sizeof(*e));
	e->kind = ev->kind;
	if (ev->pipeline != rec->pipeline || !ev->job_id || strcmp(ev->job_id, rec->job_id))
		rec->foreign++;
	e->stage = ev->stage ? sp_xstrdup(ev->stage->name) : NULL;
	switch (ev->kind) {
	case SP_EVENT_LOG:
		e->stream = ev->stream;
		e->line = sp_xstrndup(ev->line, ev->len);
		break;
	case SP_EVENT_STAGE_FINISHED:
		assert_non_null(ev->report);
		assert_ptr_equal(ev->report->stage, ev->stage);
		rec_copy_report(&e->report, ev->report);
		break;
	case SP_EVENT_PIPELINE_FINISHED:
		e->result = ev->result;
		e->message = xstrdup_or_null(ev->message);
		e->nreports = ev->nreports;
		e->reports = sp_xcalloc(ev->nreports + 1, sizeof(*e->reports));
		for (i = 0; i < ev->nreports; i++)
			rec_copy_report(&e->reports[i], &ev->reports[i]);
		break;
	default:
		break;
	}
}

static void rec_free(struct sp_sink *self)
{
	struct recorder *rec = (struct recorder *)self;
	size_t i, j;

	for (i = 0; i < rec->n; i++) {
		struct rec_event *e = &rec->ev[i];
		free(e->stage);
		free(e->line);
		free(e->message);
		if (e->kind == SP_EVENT_STAGE_FINISHED)
			rec_report_release(&e->report);
		for (j = 0; j < e->nreports; j++)
			rec_report_release(&e->reports[j]);
		free(e->reports);
	}
	free(rec->ev);
	free(rec);
}

static size_t count_events(const struct recorder *rec, enum sp_event_kind kind)
{
	size_t i, n = 0;

	for (i = 0; i < rec->n; i++)
		if (rec->ev[i].kind == kind)
			n++;
	return n;
}

/* The STAGE_FINISHED report of a stage; exactly one must exist. */
static const struct rec_report *finished(const struct recorder *rec, const char *stage)
{
	const struct rec_report *found = NULL;
	size_t i;

	for (i = 0; i < rec->n; i++) {
		const struct rec_event *e = &rec->ev[i];
		if (e->kind != SP_EVENT_STAGE_FINISHED || strcmp(e->stage, stage))
			continue;
		if (found)
			fail_msg("stage %s finished twice", stage);
		found = &e->report;
	}
	if (!found)
		fail_msg("stage %s never finished", stage);
	return found;
}

static bool started(const struct recorder *rec, const char *stage)
{
	size_t i;

	for (i = 0; i < rec->n; i++)
		if (rec->ev[i].kind == SP_EVENT_STAGE_STARTED && !strcmp(rec->ev[i].stage, stage))
			return true;
	return false;
}

static const struct rec_event *pipeline_finished(const struct recorder *rec)
{
	assert_true(rec->n > 0);
	assert_int_equal(count_events(rec, SP_EVENT_PIPELINE_FINISHED), 1);
	assert_int_equal(rec->ev[rec->n - 1].kind, SP_EVENT_PIPELINE_FINISHED);
	return &rec->ev[rec->n - 1];
}

static bool logged(const struct recorder *rec, const char *stage, enum sp_log_stream stream,
		   const char *needle)
{
	size_t i;

	for (i = 0; i < rec->n; i++) {
		const struct rec_event *e = &rec->ev[i];
		if (e->kind == SP_EVENT_LOG && e->stream == stream && e->stage &&
		    !strcmp(e->stage, stage) && strstr(e->line, needle))
			return true;
	}
	return false;
}

#define assert_contains(hay, needle) do { \
	const char *h_ = (hay), *n_ = (needle); \
	if (!h_ || !strstr(h_, n_)) \
		fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
} while (0)

/* ---- harness: a pipeline, the fake, the sink, the options ---- */

static const char *test_getenv(const char *name, void *ud)
{
	(void)ud;
	if (!strcmp(name, "REGISTRY"))
		return "127.0.0.1:5000";
	if (!strcmp(name, "DB_URL"))
		return "postgres://db/test";
	return NULL;
}

struct harness {
	struct fake fake;
	struct recorder *rec;       /* owned by events */
	struct sp_events events;
	struct sp_pipeline *p;
	struct sp_vars vars;
	struct sp_exec_opts o;
	struct sp_error err;
	char *work;
	int64_t elapsed_ms;
};

#define HEAD "version: 1\nname: app\n"

static struct harness *h_new(const char *yaml, const struct step *steps, size_t nsteps)
{
	struct harness *h = sp_xcalloc(1, sizeof(*h));
	struct sp_diags d = SP_DIAGS_INIT;
	size_t i;
	int rc;

	h->vars.git_sha = "0123456789abcdef0123456789abcdef01234567";
	h->vars.git_short_sha = "0123456";
	h->vars.git_branch = "main";
	h->vars.git_tag = NULL;
	h->vars.getenv = test_getenv;
	rc = sp_pipeline_load_buffer(&h->p, "t.yml", yaml, strlen(yaml), &h->vars, &d);
	if (rc != 0) {
		for (i = 0; i < d.n; i++)
			fprintf(stderr, "t.yml:%d:%d: %s\n", d.items[i].line, d.items[i].col,
				d.items[i].msg);
		fail_msg("the test's pipeline does not load");
	}
	sp_diags_release(&d);
	h->vars.pipeline = h->p->name;

	h->fake.base.ops = &fake_ops;
	h->fake.steps = steps;
	h->fake.nsteps = nsteps;

	h->rec = sp_xcalloc(1, sizeof(*h->rec));
	h->rec->base.event = rec_event;
	h->rec->base.free = rec_free;
	h->rec->pipeline = h->p;
	h->rec->job_id = "local-0123456789ab";
	h->events = (struct sp_events)SP_EVENTS_INIT;
	sp_events_add(&h->events, &h->rec->base);

	h->work = sp_test_tempdir("sp-test-executor-");

	h->o.pipeline = h->p;
	h->o.vars = &h->vars;
	h->o.source_root = "/src/repo";
	h->o.work_dir = h->work;
	h->o.job_id = "local-0123456789ab";
	h->o.owner = "ci-host:4242";
	h->o.runner = &h->fake.base;
	h->o.events = &h->events;
	h->o.cancel = user_cancel;
	h->o.cancel_ud = &h->fake;
	return h;
}

static int h_run(struct harness *h)
{
	int64_t t0 = sp_cancel_now_ms();
	int rc;

	sp_error_clear(&h->err);
	rc = sp_executor_run(&h->o, &h->err);
	h->elapsed_ms = sp_cancel_now_ms() - t0;
	assert_int_equal(h->rec->foreign, 0);
	if (rc < 0)
		assert_int_equal(h->err.code, rc);
	return rc;
}

static void h_free(struct harness *h)
{
	size_t i;

	for (i = 0; i < h->fake.ncalls; i++)
		call_release(&h->fake.calls[i]);
	free(h->fake.cur_stage);
	sp_events_release(&h->events);
	sp_pipeline_free(h->p);
	(void)sp_fs_rmtree(h->work, NULL);
	free(h->work);
	free(h);
}

#define NSTEPS(a) (sizeof(a) / sizeof((a)[0]))

#define TEST_STAGE \
	"stages:\n" \
	"  - name: test\n" \
	"    target: testing\n" \
	"    pytest: [-v, --cov=app]\n" \
	"    coverage: { min: 80 }\n" \
	"    env: { APP_ENV: test }\n"

/* Runs a one-stage pytest pipeline with the given step; returns the harness. */
static struct harness *run_test_stage(const char *yaml, const struct step *s, int want_rc)
{
	struct harness *h = h_new(yaml, s, 1);

	assert_int_equal(h_run(h), want_rc);
	return h;
}

/* ---- services ---- */

#define SERVICES_STAGE \
	"stages:\n" \
	"  - name: test\n" \
	"    target: testing\n" \
	"    pytest: [-q]\n" \
	"    services:\n" \
	"      - {name: db, image: \"${env.REGISTRY}/postgres:16\", env: {URL: \"${env.DB_URL}\"},\n" \
	"         command: \"serve --sha ${GIT_SHORT_SHA}\", ready: {port: 5432}}\n" \
	"      - {name: echo, target: echo, ready: {port: 7000}}\n"

static size_t service_events(const struct recorder *rec)
{
	size_t i, n = 0;

	for (i = 0; i < rec->n; i++)
		if (rec->ev[i].kind == SP_EVENT_SERVICE)
			n++;
	return n;
}

static void test_services_around_the_tests(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 0, .junit = "pass-junit.xml" },
	};
	struct harness *h;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	h = h_new(HEAD SERVICES_STAGE, s, 1);
	h->fake.base.services = &fake_services;
	*state = h;
	assert_int_equal(h_run(h), 0);
	/* up before the tests, which join the services' network; down after */
	assert_string_equal(svc.trace, "up(2,default) run(container:fake) down ");
	assert_int_equal(svc.nspecs, 2);
	assert_string_equal(svc.images[0], "127.0.0.1:5000/postgres:16");
	/* echo is a target: built like the stage's own, with the job's labels */
	assert_int_equal(count_calls(&h->fake, OP_BUILD, "test"), 2);
	assert_string_equal(h->fake.calls[1].target, "echo");
	assert_true(strncmp(svc.images[1], "sha256:", 7) == 0);
	assert_string_equal(svc.env0, "URL=postgres://db/test");
	assert_string_equal(svc.cmd0, "serve --sha 0123456");
	/* starting, ready and removed for each */
	assert_int_equal(service_events(h->rec), 6);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
}

static void test_services_logs_on_failure(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 1, .junit = "fail-junit.xml" },
	};
	struct harness *h;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	h = h_new(HEAD SERVICES_STAGE, s, 1);
	h->fake.base.services = &fake_services;
	*state = h;
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_string_equal(svc.trace, "up(2,default) run(container:fake) logs(0,40) logs(1,40) down ");
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "db | service 0 says hello"));
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "echo | service 1 says hello"));
}

static void test_services_not_ready(void **state)
{
	static const struct step s[] = { { .stage = "test" } };
	struct harness *h;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	svc.up_rc = SP_EFAILED;
	h = h_new(HEAD SERVICES_STAGE, s, 1);
	h->fake.base.services = &fake_services;
	*state = h;
	assert_int_equal(h_run(h), SP_EFAILED);
	/* no test run; the logs shown; everything removed */
	assert_string_equal(svc.trace, "up(2,default) logs(0,40) logs(1,40) down ");
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 0);
	assert_string_equal(finished(h->rec, "test")->message,
			    "service echo not ready after 1s: nothing listens on port 7000");
}

static void test_services_missing_variable_stops_before_building(void **state)
{
	static const struct step s[] = { { .stage = "test" } };
	struct harness *h = h_new(HEAD "stages:\n  - name: test\n    target: testing\n"
				  "    run: [make]\n    services:\n"
				  "      - {name: db, image: pg, env: {PW: \"${env.NOT_SET}\"}}\n", s, 1);

	*state = h;
	h->fake.base.services = &fake_services;
	assert_int_equal(h_run(h), SP_ECONFIG);
	assert_contains(h->err.msg, "t.yml:8:41:");
	assert_contains(h->err.msg, "NOT_SET");
	assert_int_equal(h->fake.ncalls, 0);
}

static void test_services_need_a_runner_that_has_them(void **state)
{
	static const struct step s[] = { { .stage = "test" } };
	struct harness *h = h_new(HEAD SERVICES_STAGE, s, 1);

	*state = h;
	assert_int_equal(h_run(h), SP_EENGINE);
	assert_string_equal(finished(h->rec, "test")->message,
			    "the fake runner cannot run services");
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 0);
}

/* ---- pytest status ---- */

static void test_pytest_status_words(void **state)
{
	(void)state;
	assert_string_equal(sp_executor_pytest_status(0), "all tests passed");
	assert_string_equal(sp_executor_pytest_status(1), "tests failed");
	assert_string_equal(sp_executor_pytest_status(2), "test run interrupted");
	assert_string_equal(sp_executor_pytest_status(3), "pytest internal error");
	assert_contains(sp_executor_pytest_status(4), "usage error");
	assert_string_equal(sp_executor_pytest_status(5), "no tests collected");
	assert_contains(sp_executor_pytest_status(137), "SIGKILL");
	assert_contains(sp_executor_pytest_status(143), "SIGTERM");
	assert_string_equal(sp_executor_pytest_status(6), "pytest exited abnormally");
	assert_string_equal(sp_executor_pytest_status(-1), "pytest exited abnormally");
	assert_string_equal(sp_executor_pytest_status(255), "pytest exited abnormally");
}

/* ---- pytest stages: reports and gates ---- */

static void test_pytest_pass(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 0, .junit = "pass-junit.xml",
		  .coverage = "pass-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;
	const struct rec_event *pf;
	const struct call *b, *r;
	char *argv;
	size_t k;

	(void)state;
	h = run_test_stage(HEAD TEST_STAGE, s, 0);
	assert_string_equal(h->err.msg, "");

	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_PASSED);
	assert_null(rep->message);
	assert_true(rep->has_exit_code);
	assert_int_equal(rep->exit_code, 0);
	assert_true(rep->has_tests);
	assert_int_equal(rep->tests, 17);
	assert_int_equal(rep->passed, 17);
	assert_int_equal(rep->failed, 0);
	assert_int_equal(rep->errors, 0);
	assert_int_equal(rep->skipped, 0);
	assert_int_equal(rep->nfailures, 0);
	assert_true(rep->has_coverage);
	assert_true(rep->coverage > 99.99 && rep->coverage <= 100.0);
	assert_true(rep->junit_exists);
	assert_true(rep->coverage_exists);
	assert_non_null(rep->image_id);
	assert_contains(rep->image_id, "sha256:");

	/* one build of the stage's target, then one run of that image */
	assert_int_equal(h->fake.ncalls, 2);
	b = &h->fake.calls[0];
	r = &h->fake.calls[1];
	assert_int_equal(b->op, OP_BUILD);
	assert_string_equal(b->target, "testing");
	assert_string_equal(b->context, "/src/repo/.");
	assert_int_equal(r->op, OP_RUN);
	assert_string_equal(r->image, rep->image_id);

	/* pytest with stagepipe's report options after the stage's own */
	argv = strv_join(&r->argv);
	assert_string_equal(argv, "python -m pytest -v --cov=app "
			    "--junitxml=" SP_REPORTS_DIR "/junit.xml "
			    "--cov-report=xml:" SP_REPORTS_DIR "/coverage.xml");
	free(argv);
	assert_string_equal(r->reports_dir, SP_REPORTS_DIR);
	assert_non_null(r->reports_dest);
	assert_int_equal(strncmp(r->reports_dest, h->work, strlen(h->work)), 0);
	assert_true(strv_has(&r->env, "APP_ENV=test"));
	assert_int_equal(r->env.n, 1);
	assert_null(r->user);
	assert_null(r->workdir);
	assert_int_equal(r->memory, 0);
	assert_int_equal(r->nano_cpus, 0);

	/* labels: the container carries the owner (for prune), the image does not */
	assert_true(strv_has(&r->labels, "io.stagepipe.job=local-0123456789ab"));
	assert_true(strv_has(&r->labels, "io.stagepipe.pipeline=app"));
	assert_true(strv_has(&r->labels, "io.stagepipe.stage=test"));
	assert_true(strv_has(&r->labels, "io.stagepipe.owner=ci-host:4242"));
	assert_true(strv_has(&b->labels, "io.stagepipe.job=local-0123456789ab"));
	assert_true(strv_has(&b->labels, "io.stagepipe.stage=test"));
	for (k = 0; k < b->labels.n; k++)
		assert_null(strstr(b->labels.v[k], "io.stagepipe.owner"));

	/* every op can be interrupted by the job's Ctrl-C and the deadline */
	assert_true(b->cancel_is_check && b->cancel_wraps_user);
	assert_true(r->cancel_is_check && r->cancel_wraps_user);
	assert_true(b->has_log && r->has_log);

	/* events: started, the stage, its output as LOG events, finished */
	assert_int_equal(h->rec->ev[0].kind, SP_EVENT_PIPELINE_STARTED);
	assert_int_equal(h->rec->ev[1].kind, SP_EVENT_STAGE_STARTED);
	assert_string_equal(h->rec->ev[1].stage, "test");
	assert_true(logged(h->rec, "test", SP_STREAM_BUILD, "load build definition"));
	assert_true(logged(h->rec, "test", SP_STREAM_STDOUT, "collected 17 items"));
	assert_true(logged(h->rec, "test", SP_STREAM_STDERR, "warning: something"));
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "built testing"));
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->result, SP_RESULT_PASSED);
	assert_null(pf->message);
	assert_int_equal(h->rec->ev[h->rec->n - 2].kind, SP_EVENT_STAGE_FINISHED);
	assert_false(h->fake.freed);  /* the runner belongs to the caller */
	h_free(h);
}

static void test_pytest_skips_and_xfails(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .junit = "skip-junit.xml", .coverage = "skip-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD TEST_STAGE, s, 0);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_PASSED);
	assert_int_equal(rep->tests, 20);
	assert_int_equal(rep->passed, 17);
	assert_int_equal(rep->skipped, 3);  /* 2 skipped + 1 xfailed */
	h_free(h);
}

static void test_pytest_failing_tests(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 1, .junit = "fail-junit.xml",
		  .coverage = "fail-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;
	const struct rec_event *pf;

	(void)state;
	h = run_test_stage(HEAD TEST_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_int_equal(rep->exit_code, 1);
	assert_int_equal(rep->tests, 19);
	assert_int_equal(rep->passed, 17);
	assert_int_equal(rep->failed, 1);
	assert_int_equal(rep->errors, 1);
	assert_int_equal(rep->nfailures, 2);
	assert_string_equal(rep->failure0_id,
			    "tests/test_zz_fail.py::TestPricing::test_price_is_doubled");
	/* the message names the test and its assertion */
	assert_contains(rep->message, "2 tests failed");
	assert_contains(rep->message, "tests/test_zz_fail.py::TestPricing::test_price_is_doubled");
	assert_contains(rep->message, "AssertionError: price should be doubled");
	/* the job's error is the stage's message */
	assert_string_equal(h->err.msg, rep->message);
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->result, SP_RESULT_FAILED);
	assert_string_equal(pf->message, rep->message);
	h_free(h);
}

static void test_coverage_below_min(void **state)
{
	/* lowcov: every test passed, pytest-cov's own fail_under made it exit 1 */
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 1, .junit = "lowcov-junit.xml",
		  .coverage = "lowcov-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD TEST_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_int_equal(rep->tests, 4);
	assert_int_equal(rep->failed, 0);
	assert_true(rep->has_coverage);
	/* coverage.py's total (lines + branches): 59.26%, not the 66.1% line rate */
	assert_true(rep->coverage > 59.2 && rep->coverage < 59.3);
	assert_string_equal(rep->message, "coverage 59.3% < 80%");
	assert_string_equal(h->err.msg, "coverage 59.3% < 80%");
	h_free(h);
}

static void test_coverage_min_without_report(void **state)
{
	/* --cov=typo: pytest-cov writes no XML at all (see the fixtures' README) */
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 0, .junit = "pass-junit.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD TEST_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_false(rep->has_coverage);
	assert_contains(rep->message, "coverage.min is 80% but pytest wrote no coverage report");
	h_free(h);
}

static void test_fail_under_exit1_without_failures(void **state)
{
	/* no coverage.min of ours: only the project's fail_under tripped */
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 1, .junit = "lowcov-junit.xml",
		  .coverage = "lowcov-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD "stages:\n  - name: test\n    target: testing\n"
			   "    pytest: [--cov=app]\n", s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_int_equal(rep->failed, 0);
	assert_contains(rep->message, "pytest exited 1 although no test failed");
	assert_contains(rep->message, "fail_under");
	h_free(h);
}

#define NOTESTS_STAGE \
	"stages:\n  - name: test\n    target: testing\n    pytest: [--cov=app]\n"

static void test_no_tests_exit5_fails(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 5, .junit = "empty-junit.xml",
		  .coverage = "empty-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD NOTESTS_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_true(rep->has_tests);
	assert_int_equal(rep->tests, 0);
	assert_contains(rep->message, "pytest exited 5: no tests collected");
	assert_contains(rep->message, "allow_no_tests: true");
	h_free(h);
}

static void test_no_tests_exit1_gated_fails(void **state)
{
	/* empty-gated: no test ran and fail_under tripped, so pytest said 1, not 5 */
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 1, .junit = "empty-gated-junit.xml",
		  .coverage = "empty-gated-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD NOTESTS_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_int_equal(rep->tests, 0);
	assert_contains(rep->message, "pytest exited 1: no tests collected");
	assert_contains(rep->message, "allow_no_tests");
	h_free(h);
}

static void test_allow_no_tests_passes(void **state)
{
	static const char *yaml = HEAD NOTESTS_STAGE "    allow_no_tests: true\n";
	static const struct step exit5[] = {
		{ .stage = "test", .exit_code = 5, .junit = "empty-junit.xml",
		  .coverage = "empty-coverage.xml" },
	};
	static const struct step gated[] = {
		{ .stage = "test", .exit_code = 1, .junit = "empty-gated-junit.xml",
		  .coverage = "empty-gated-coverage.xml" },
	};
	static const struct step noreports[] = {
		{ .stage = "test", .exit_code = 5, .no_copy = true },
	};
	struct harness *h;

	(void)state;
	h = run_test_stage(yaml, exit5, 0);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	h_free(h);
	h = run_test_stage(yaml, gated, 0);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	h_free(h);
	h = run_test_stage(yaml, noreports, 0);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	h_free(h);
}

static void test_pytest_exit_codes_in_words(void **state)
{
	static const struct {
		int code;
		const char *want;
	} cases[] = {
		{ 2, "pytest exited 2: test run interrupted" },
		{ 3, "pytest exited 3: pytest internal error" },
		{ 4, "pytest exited 4: pytest usage error (bad command-line arguments)" },
		{ 5, "pytest exited 5: no tests collected (set allow_no_tests: true to accept)" },
		{ 1, "pytest exited 1 without a report: did pytest start? (see the output above, "
		     "e.g. \"No module named pytest\")" },
	};
	struct step s[1];
	struct harness *h;
	size_t i;

	(void)state;
	/* no reports (pytest died before writing them): the exit status alone */
	for (i = 0; i < NSTEPS(cases); i++) {
		memset(s, 0, sizeof(s));
		s[0].stage = "test";
		s[0].exit_code = cases[i].code;
		s[0].no_copy = true;
		h = run_test_stage(HEAD NOTESTS_STAGE, s, SP_EFAILED);
		assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_FAILED);
		assert_string_equal(finished(h->rec, "test")->message, cases[i].want);
		h_free(h);
	}
}

/*
 * Killed from outside (exit 137/143 without the OOM flag) before pytest
 * wrote a report: not a test result but an infrastructure error.
 */
static void test_killed_from_outside(void **state)
{
	static const int codes[] = { 137, 143 };
	struct step s[1];
	struct harness *h;
	size_t i;

	(void)state;
	for (i = 0; i < NSTEPS(codes); i++) {
		memset(s, 0, sizeof(s));
		s[0].stage = "test";
		s[0].exit_code = codes[i];
		s[0].no_copy = true;
		h = run_test_stage(HEAD NOTESTS_STAGE, s, SP_EENGINE);
		assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_ERROR);
		assert_contains(finished(h->rec, "test")->message, "killed");
		assert_int_equal(finished(h->rec, "test")->exit_code, codes[i]);
		h_free(h);
	}
}

static void test_collection_error(void **state)
{
	/* collect: a test file that cannot be imported; pytest exits 2 */
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 2, .junit = "collect-junit.xml",
		  .coverage = "collect-coverage.xml" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = run_test_stage(HEAD NOTESTS_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_int_equal(rep->exit_code, 2);
	assert_int_equal(rep->errors, 1);
	/* the module that failed to import, and why (from the element text) */
	assert_contains(rep->message, "tests/test_zz_broken.py");
	assert_contains(rep->message, "ImportError: cannot import name 'no_such_name'");
	h_free(h);
}

static void test_oom(void **state)
{
	static const struct step py[] = {
		{ .stage = "test", .exit_code = 137, .oom = true, .junit = "pass-junit.xml" },
	};
	static const struct step run[] = {
		{ .stage = "lint", .exit_code = 137, .oom = true },
	};
	struct harness *h;

	(void)state;
	h = run_test_stage(HEAD NOTESTS_STAGE "    memory: 64m\n", py, SP_EFAILED);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_FAILED);
	assert_string_equal(finished(h->rec, "test")->message,
			    "the test container ran out of memory (exit 137)");
	assert_int_equal(find_call(&h->fake, OP_RUN, "test")->memory, 64 * 1024 * 1024);
	h_free(h);

	h = run_test_stage(HEAD "stages:\n  - name: lint\n    target: testing\n"
			   "    run: make lint\n", run, SP_EFAILED);
	assert_int_equal(finished(h->rec, "lint")->result, SP_RESULT_FAILED);
	assert_string_equal(finished(h->rec, "lint")->message, "command exited 137 (out of memory)");
	h_free(h);
}

static void test_run_stage_command(void **state)
{
	static const struct step s[] = {
		{ .stage = "lint", .exit_code = 0 },
		{ .stage = "unit", .exit_code = 3 },
	};
	struct harness *h;
	const struct call *c;
	char *argv;

	(void)state;
	h = h_new(HEAD "stages:\n"
		  "  - name: lint\n    target: testing\n    run: ruff check . && mypy app\n"
		  "    user: \"1000\"\n    workdir: /app\n    memory: 512m\n    cpus: 1.5\n"
		  "  - name: unit\n    target: testing\n    run: [make, unit, \"V=1\"]\n",
		  s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);

	c = find_call(&h->fake, OP_RUN, "lint");
	argv = strv_join(&c->argv);
	assert_string_equal(argv, "/bin/sh -c ruff check . && mypy app");
	free(argv);
	assert_int_equal(c->argv.n, 3);
	assert_string_equal(c->user, "1000");
	assert_string_equal(c->workdir, "/app");
	assert_int_equal(c->memory, (int64_t)512 * 1024 * 1024);
	assert_int_equal(c->nano_cpus, 1500000000);
	/* a run stage has no reports to copy */
	assert_null(c->reports_dir);
	assert_null(c->reports_dest);
	assert_int_equal(finished(h->rec, "lint")->result, SP_RESULT_PASSED);
	assert_false(finished(h->rec, "lint")->has_tests);

	c = find_call(&h->fake, OP_RUN, "unit");
	argv = strv_join(&c->argv);
	assert_string_equal(argv, "make unit V=1");  /* exec form: no shell */
	free(argv);
	assert_null(c->user);
	assert_int_equal(finished(h->rec, "unit")->result, SP_RESULT_FAILED);
	assert_int_equal(finished(h->rec, "unit")->exit_code, 3);
	assert_string_equal(finished(h->rec, "unit")->message, "command exited 3");
	h_free(h);
}

static void test_cov_report_only_with_cov(void **state)
{
	static const struct {
		const char *pytest;
		bool cov_report;
	} cases[] = {
		{ "[-v]", false },
		{ "true", false },
		{ "[--cov-branch, -q]", false },
		{ "[--cov]", true },
		{ "[-q, --cov=app, --cov-report=term-missing]", true },
	};
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;
	size_t i, k;

	(void)state;
	for (i = 0; i < NSTEPS(cases); i++) {
		char *yaml = sp_xasprintf(HEAD "stages:\n  - name: test\n    target: testing\n"
					  "    pytest: %s\n", cases[i].pytest);
		const struct call *c;
		bool has_xml = false, has_junit = false;

		h = run_test_stage(yaml, s, 0);
		c = find_call(&h->fake, OP_RUN, "test");
		assert_string_equal(c->argv.v[0], "python");
		assert_string_equal(c->argv.v[1], "-m");
		assert_string_equal(c->argv.v[2], "pytest");
		for (k = 0; k < c->argv.n; k++) {
			if (!strcmp(c->argv.v[k], "--cov-report=xml:" SP_REPORTS_DIR "/coverage.xml"))
				has_xml = true;
			if (!strcmp(c->argv.v[k], "--junitxml=" SP_REPORTS_DIR "/junit.xml"))
				has_junit = true;
		}
		if (has_xml != cases[i].cov_report)
			fail_msg("pytest: %s: --cov-report=xml %s", cases[i].pytest,
				 has_xml ? "added" : "missing");
		assert_true(has_junit);
		h_free(h);
		free(yaml);
	}
}

/* ---- needs, selection, order ---- */

#define CHAIN \
	HEAD "stages:\n" \
	"  - name: a\n    target: ta\n    run: \"true\"\n" \
	"  - name: b\n    target: tb\n    run: \"true\"\n    needs: [a]\n" \
	"  - name: c\n    target: tc\n    run: \"true\"\n    needs: [b]\n" \
	"  - name: d\n    target: td\n    run: \"true\"\n"

static void test_needs_chain_skips_transitively(void **state)
{
	static const struct step s[] = { { .stage = "a", .exit_code = 2 } };
	struct harness *h;
	const struct rec_event *pf;

	(void)state;
	h = h_new(CHAIN, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_int_equal(finished(h->rec, "a")->result, SP_RESULT_FAILED);
	assert_int_equal(finished(h->rec, "b")->result, SP_RESULT_SKIPPED);
	assert_string_equal(finished(h->rec, "b")->message, "needs a, which failed");
	assert_int_equal(finished(h->rec, "c")->result, SP_RESULT_SKIPPED);
	assert_string_equal(finished(h->rec, "c")->message, "needs b, which was skipped");
	/* an independent stage still runs */
	assert_int_equal(finished(h->rec, "d")->result, SP_RESULT_PASSED);
	/* skipped stages are neither started nor built */
	assert_false(started(h->rec, "b"));
	assert_false(started(h->rec, "c"));
	assert_int_equal(count_calls(&h->fake, OP_BUILD, NULL), 2);
	assert_int_equal(count_calls(&h->fake, OP_BUILD, "b"), 0);
	assert_int_equal(count_calls(&h->fake, OP_BUILD, "c"), 0);
	assert_null(finished(h->rec, "b")->image_id);
	assert_false(finished(h->rec, "b")->has_exit_code);
	assert_string_equal(h->err.msg, "command exited 2");
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->result, SP_RESULT_FAILED);
	h_free(h);
}

#define SELECT \
	HEAD "stages:\n" \
	"  - name: lint\n    target: testing\n    run: \"true\"\n" \
	"  - name: test\n    target: testing\n    pytest: [-q]\n" \
	"  - name: promote\n    target: runtime\n    needs: [test]\n" \
	"  - name: docs\n    target: docs\n    run: \"true\"\n" \
	"    tags: [\"127.0.0.1:5000/docs:${GIT_TAG}\"]\n"

static void test_only_stage_selects_needs(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;

	(void)state;
	h = h_new(SELECT, s, NSTEPS(s));
	h->o.only_stage = "promote";
	/* docs' ${GIT_TAG} has no value, but docs is not selected: no error */
	assert_int_equal(h_run(h), 0);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	assert_int_equal(finished(h->rec, "promote")->result, SP_RESULT_PASSED);
	assert_int_equal(finished(h->rec, "lint")->result, SP_RESULT_SKIPPED);
	assert_contains(finished(h->rec, "lint")->message, "not selected");
	assert_contains(finished(h->rec, "lint")->message, "--stage promote");
	assert_int_equal(finished(h->rec, "docs")->result, SP_RESULT_SKIPPED);
	assert_contains(finished(h->rec, "docs")->message, "not selected");
	assert_int_equal(h->fake.ncalls, 3);
	assert_string_equal(h->fake.calls[0].stage, "test");
	assert_int_equal(h->fake.calls[0].op, OP_BUILD);
	assert_int_equal(h->fake.calls[1].op, OP_RUN);
	assert_string_equal(h->fake.calls[2].stage, "promote");
	assert_string_equal(h->fake.calls[2].target, "runtime");
	assert_int_equal(pipeline_finished(h->rec)->nreports, 4);
	h_free(h);
}

static void test_only_stage_unknown(void **state)
{
	struct harness *h;

	(void)state;
	h = h_new(SELECT, NULL, 0);
	h->o.only_stage = "deploy";
	assert_int_equal(h_run(h), SP_ECONFIG);
	assert_contains(h->err.msg, "no stage \"deploy\"");
	assert_int_equal(h->fake.ncalls, 0);
	assert_int_equal(h->rec->n, 0);
	h_free(h);
}

#define MATRIX \
	HEAD "build:\n  args: {PYTHON_VERSION: \"3.10\", KEEP: k}\n" \
	"stages:\n" \
	"  - name: test\n    target: testing\n" \
	"    matrix:\n      PYTHON_VERSION: [\"3.11\", \"3.12\"]\n" \
	"    pytest: [-q, \"-k=py${matrix.PYTHON_VERSION}\"]\n" \
	"    env: {PV: \"${matrix.PYTHON_VERSION}\", ST: \"${STAGE}\"}\n" \
	"  - name: promote\n    target: runtime\n    needs: [test]\n"

static void test_matrix_variants(void **state)
{
	static const struct step s[] = {
		{ .stage = "test[3.11]", .junit = "pass-junit.xml" },
		{ .stage = "test[3.12]", .exit_code = 1, .junit = "fail-junit.xml" },
	};
	const struct rec_report *a, *b;
	const struct call *c;
	struct harness *h;
	char *argv;

	(void)state;
	h = h_new(MATRIX, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	/* each variant built with its value over build.args, the rest kept */
	c = find_call(&h->fake, OP_BUILD, "test[3.11]");
	assert_string_equal(c->target, "testing");
	assert_true(strv_has(&c->args, "PYTHON_VERSION=3.11"));
	assert_false(strv_has(&c->args, "PYTHON_VERSION=3.10"));
	assert_true(strv_has(&c->args, "KEEP=k"));
	assert_int_equal(c->args.n, 2);
	c = find_call(&h->fake, OP_BUILD, "test[3.12]");
	assert_true(strv_has(&c->args, "PYTHON_VERSION=3.12"));
	/* ${matrix.KEY} in arguments and env; each variant its own reports dir */
	c = find_call(&h->fake, OP_RUN, "test[3.12]");
	argv = strv_join(&c->argv);
	assert_contains(argv, "-q -k=py3.12 --junitxml=");
	free(argv);
	assert_true(strv_has(&c->env, "PV=3.12"));
	assert_true(strv_has(&c->env, "ST=test[3.12]"));
	assert_contains(c->reports_dest, "/test[3.12]/reports");
	c = find_call(&h->fake, OP_RUN, "test[3.11]");
	assert_true(strv_has(&c->env, "PV=3.11"));
	assert_contains(c->reports_dest, "/test[3.11]/reports");
	/* reported apart, with their own counts */
	a = finished(h->rec, "test[3.11]");
	b = finished(h->rec, "test[3.12]");
	assert_int_equal(a->result, SP_RESULT_PASSED);
	assert_int_equal(b->result, SP_RESULT_FAILED);
	assert_true(a->has_tests && b->has_tests);
	assert_int_equal(a->failed, 0);
	assert_true(b->failed > 0);
	/* needs: [test] waits for both; one failing skips promote */
	assert_int_equal(finished(h->rec, "promote")->result, SP_RESULT_SKIPPED);
	assert_string_equal(finished(h->rec, "promote")->message, "needs test[3.12], which failed");
	assert_int_equal(count_calls(&h->fake, OP_BUILD, "promote"), 0);
	assert_int_equal(pipeline_finished(h->rec)->result, SP_RESULT_FAILED);
	h_free(h);
}

static void test_matrix_only_stage(void **state)
{
	static const struct step s[] = {
		{ .stage = "test[3.11]", .junit = "pass-junit.xml" },
		{ .stage = "test[3.12]", .junit = "pass-junit.xml" },
	};
	struct harness *h;

	(void)state;
	/* the group's name: every variant */
	h = h_new(MATRIX, s, NSTEPS(s));
	h->o.only_stage = "test";
	assert_int_equal(h_run(h), 0);
	assert_int_equal(finished(h->rec, "test[3.11]")->result, SP_RESULT_PASSED);
	assert_int_equal(finished(h->rec, "test[3.12]")->result, SP_RESULT_PASSED);
	assert_int_equal(finished(h->rec, "promote")->result, SP_RESULT_SKIPPED);
	h_free(h);
	/* one variant's name: that one */
	h = h_new(MATRIX, s, NSTEPS(s));
	h->o.only_stage = "test[3.12]";
	assert_int_equal(h_run(h), 0);
	assert_int_equal(finished(h->rec, "test[3.11]")->result, SP_RESULT_SKIPPED);
	assert_contains(finished(h->rec, "test[3.11]")->message, "not selected");
	assert_int_equal(finished(h->rec, "test[3.12]")->result, SP_RESULT_PASSED);
	assert_int_equal(count_calls(&h->fake, OP_BUILD, NULL), 1);
	h_free(h);
	/* promote brings both variants along */
	h = h_new(MATRIX, s, NSTEPS(s));
	h->o.only_stage = "promote";
	assert_int_equal(h_run(h), 0);
	assert_int_equal(count_calls(&h->fake, OP_BUILD, NULL), 3);
	assert_int_equal(finished(h->rec, "promote")->result, SP_RESULT_PASSED);
	h_free(h);
}

static void test_stage_order_follows_needs(void **state)
{
	struct harness *h;
	const struct rec_event *pf;
	const char *want[] = { "a", "b", "c" };
	size_t i, k = 0;

	(void)state;
	/* written backwards: each stage needs the one below it */
	h = h_new(HEAD "stages:\n"
		  "  - name: c\n    target: tc\n    needs: b\n"
		  "  - name: b\n    target: tb\n    needs: [a]\n"
		  "  - name: a\n    target: ta\n", NULL, 0);
	assert_int_equal(h_run(h), 0);
	assert_int_equal(h->fake.ncalls, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(h->fake.calls[i].op, OP_BUILD);
		assert_string_equal(h->fake.calls[i].stage, want[i]);
	}
	for (i = 0; i < h->rec->n; i++) {
		if (h->rec->ev[i].kind != SP_EVENT_STAGE_STARTED)
			continue;
		assert_true(k < 3);
		assert_string_equal(h->rec->ev[i].stage, want[k++]);
	}
	assert_int_equal(k, 3);
	/* ... while the final reports stay in file order */
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->nreports, 3);
	assert_string_equal(pf->reports[0].stage, "c");
	assert_string_equal(pf->reports[1].stage, "b");
	assert_string_equal(pf->reports[2].stage, "a");
	h_free(h);
}

/* ---- build failures and engine errors ---- */

static void test_build_failure(void **state)
{
	static const struct step s[] = {
		{ .stage = "a", .build_rc = SP_EFAILED,
		  .build_msg = "building ta: RUN pip install -r requirements.txt: exit code 1" },
	};
	struct harness *h;

	(void)state;
	h = h_new(CHAIN, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_int_equal(finished(h->rec, "a")->result, SP_RESULT_FAILED);
	assert_string_equal(finished(h->rec, "a")->message,
			    "building ta: RUN pip install -r requirements.txt: exit code 1");
	assert_null(finished(h->rec, "a")->image_id);
	assert_int_equal(count_calls(&h->fake, OP_RUN, "a"), 0);
	assert_string_equal(finished(h->rec, "b")->message, "needs a, which failed");
	assert_string_equal(finished(h->rec, "c")->message, "needs b, which was skipped");
	assert_int_equal(finished(h->rec, "d")->result, SP_RESULT_PASSED);
	assert_string_equal(h->err.msg, finished(h->rec, "a")->message);
	h_free(h);
}

static void test_engine_error_stops_pipeline(void **state)
{
	static const struct step build_err[] = {
		{ .stage = "a", .build_rc = SP_EENGINE,
		  .build_msg = "connecting to unix:///var/run/docker.sock: connection refused" },
	};
	static const struct step run_err[] = {
		{ .stage = "a", .run_rc = SP_EENGINE,
		  .run_msg = "creating the container: daemon said: no space left on device" },
	};
	struct harness *h;
	const struct rec_event *pf;

	(void)state;
	h = h_new(CHAIN, build_err, NSTEPS(build_err));
	assert_int_equal(h_run(h), SP_EENGINE);
	assert_int_equal(finished(h->rec, "a")->result, SP_RESULT_ERROR);
	assert_contains(finished(h->rec, "a")->message, "connection refused");
	assert_int_equal(finished(h->rec, "d")->result, SP_RESULT_SKIPPED);
	assert_string_equal(finished(h->rec, "d")->message, "not run: the pipeline stopped");
	assert_int_equal(finished(h->rec, "b")->result, SP_RESULT_SKIPPED);
	assert_int_equal(h->fake.ncalls, 1);
	assert_contains(h->err.msg, "connection refused");
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->result, SP_RESULT_ERROR);
	h_free(h);

	h = h_new(CHAIN, run_err, NSTEPS(run_err));
	assert_int_equal(h_run(h), SP_EENGINE);
	assert_int_equal(finished(h->rec, "a")->result, SP_RESULT_ERROR);
	assert_contains(finished(h->rec, "a")->message, "no space left on device");
	assert_false(finished(h->rec, "a")->has_exit_code);
	assert_string_equal(finished(h->rec, "d")->message, "not run: the pipeline stopped");
	assert_false(started(h->rec, "d"));
	assert_int_equal(count_calls(&h->fake, OP_BUILD, "d"), 0);
	h_free(h);
}

static void test_error_after_failure_is_the_job_result(void **state)
{
	/* a fails (its own fault), then d hits an engine error: exit 3, not 1 */
	static const struct step s[] = {
		{ .stage = "a", .exit_code = 1 },
		{ .stage = "d", .build_rc = SP_EENGINE, .build_msg = "engine went away" },
	};
	struct harness *h;

	(void)state;
	h = h_new(CHAIN, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EENGINE);
	assert_string_equal(h->err.msg, "engine went away");
	assert_int_equal(pipeline_finished(h->rec)->result, SP_RESULT_ERROR);
	h_free(h);
}

/* ---- cancel and timeouts ---- */

static void test_cancel_during_run(void **state)
{
	static const struct step s[] = { { .stage = "a", .run_int = INT_SIGNAL } };
	struct harness *h;
	const struct rec_event *pf;

	(void)state;
	h = h_new(CHAIN, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_ECANCELLED);
	assert_int_equal(finished(h->rec, "a")->result, SP_RESULT_CANCELLED);
	assert_contains(finished(h->rec, "a")->message, "interrupted while");
	assert_int_equal(finished(h->rec, "b")->result, SP_RESULT_SKIPPED);
	assert_int_equal(finished(h->rec, "d")->result, SP_RESULT_SKIPPED);
	assert_string_equal(finished(h->rec, "d")->message, "not run: the pipeline stopped");
	assert_int_equal(h->fake.ncalls, 2);
	assert_true(h->fake.cancel_polls > 0);
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->result, SP_RESULT_CANCELLED);
	assert_non_null(pf->message);
	h_free(h);
}

static void test_cancel_during_build(void **state)
{
	static const struct step s[] = { { .stage = "test", .build_int = INT_SIGNAL } };
	struct harness *h;

	(void)state;
	h = run_test_stage(HEAD TEST_STAGE, s, SP_ECANCELLED);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_CANCELLED);
	assert_string_equal(finished(h->rec, "test")->message, "interrupted while building");
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 0);
	h_free(h);
}

static void test_cancel_between_stages(void **state)
{
	/* Ctrl-C arrives just as a's command exits 0: a passes, nothing more runs */
	static const struct step s[] = { { .stage = "a", .run_int = INT_SIGNAL_AFTER } };
	struct harness *h;
	size_t i;

	(void)state;
	h = h_new(CHAIN, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_ECANCELLED);
	assert_int_equal(finished(h->rec, "a")->result, SP_RESULT_PASSED);
	assert_int_equal(pipeline_finished(h->rec)->result, SP_RESULT_CANCELLED);
	/* no run started after the interrupt */
	for (i = 2; i < h->fake.ncalls; i++)
		assert_int_not_equal(h->fake.calls[i].op, OP_RUN);
	assert_int_equal(finished(h->rec, "c")->result, SP_RESULT_SKIPPED);
	assert_int_not_equal(finished(h->rec, "b")->result, SP_RESULT_PASSED);
	assert_int_not_equal(finished(h->rec, "d")->result, SP_RESULT_PASSED);
	h_free(h);
}

static void test_timeout_during_run(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .run_int = INT_HANG },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(HEAD "stages:\n"
		  "  - name: test\n    target: testing\n    pytest: [-q]\n    timeout: 150ms\n"
		  "  - name: after\n    target: testing\n    needs: [test]\n"
		  "  - name: other\n    target: other\n    run: \"true\"\n",
		  s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_contains(rep->message, "timed out after 150ms");
	assert_contains(rep->message, "while running");
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "stage timeout (150ms) reached"));
	/* the deadline fired (not a signal), and not long after 150ms */
	assert_false(h->fake.signalled);
	assert_true(h->elapsed_ms >= 140 && h->elapsed_ms < 5000);
	/* a timeout is the stage's failure: its dependents skip, the rest runs */
	assert_string_equal(finished(h->rec, "after")->message, "needs test, which failed");
	assert_int_equal(finished(h->rec, "other")->result, SP_RESULT_PASSED);
	assert_string_equal(h->err.msg, rep->message);
	h_free(h);
}

#define PROMOTE_SHORT \
	HEAD "stages:\n" \
	"  - name: promote\n    target: runtime\n    timeout: 100ms\n" \
	"    tags: [\"127.0.0.1:5000/app:latest\"]\n    push: true\n    healthcheck: true\n"

/* Every interruptible op says what it was doing; timeouts fail, signals cancel. */
static void test_interrupt_messages(void **state)
{
	static const struct step build_to[] = { { .stage = "a", .build_int = INT_HANG } };
	static const struct step push_to[] = { { .stage = "promote", .push_int = INT_HANG } };
	static const struct step health_sig[] = {
		{ .stage = "promote", .health_int = INT_SIGNAL },
	};
	static const struct step push_sig[] = { { .stage = "promote", .push_int = INT_SIGNAL } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(HEAD "stages:\n  - name: a\n    target: ta\n    run: \"true\"\n"
		  "    timeout: 100ms\n", build_to, 1);
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "a");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_string_equal(rep->message, "timed out after 100ms while building");
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 0);
	h_free(h);

	h = h_new(PROMOTE_SHORT, push_to, 1);
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_string_equal(rep->message, "timed out after 100ms while pushing");
	assert_int_equal(rep->pushed.n, 0);
	h_free(h);

	h = h_new(PROMOTE_SHORT, health_sig, 1);
	assert_int_equal(h_run(h), SP_ECANCELLED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_CANCELLED);
	assert_string_equal(rep->message, "interrupted while waiting for the health check");
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	h_free(h);

	h = h_new(PROMOTE_SHORT, push_sig, 1);
	assert_int_equal(h_run(h), SP_ECANCELLED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_CANCELLED);
	assert_string_equal(rep->message, "interrupted while pushing");
	assert_int_equal(pipeline_finished(h->rec)->result, SP_RESULT_CANCELLED);
	h_free(h);
}

static void test_deadline_from_stage_timeout(void **state)
{
	struct harness *h;
	const struct call *a, *b;

	(void)state;
	h = h_new(HEAD "stages:\n"
		  "  - name: a\n    target: ta\n    run: \"true\"\n    timeout: 15m\n"
		  "  - name: b\n    target: tb\n    run: \"true\"\n", NULL, 0);
	assert_int_equal(h_run(h), 0);
	a = find_call(&h->fake, OP_RUN, "a");
	b = find_call(&h->fake, OP_RUN, "b");
	assert_true(a->deadline_left_ms > 15 * 60 * 1000 - 5000);
	assert_true(a->deadline_left_ms <= 15 * 60 * 1000);
	assert_true(b->deadline_left_ms > SP_STAGE_DEFAULT_TIMEOUT_MS - 5000);
	assert_true(b->deadline_left_ms <= SP_STAGE_DEFAULT_TIMEOUT_MS);
	h_free(h);
}

/* ---- variables ---- */

static void test_missing_variable_before_any_build(void **state)
{
	struct harness *h;

	(void)state;
	h = h_new(HEAD "stages:\n"
		  "  - name: test\n    target: testing\n    pytest: [-q]\n"
		  "  - name: release\n    target: runtime\n    needs: [test]\n"
		  "    tags: [\"127.0.0.1:5000/app:${GIT_TAG}\"]\n", NULL, 0);
	assert_null(h->vars.git_tag);  /* an untagged commit */
	assert_int_equal(h_run(h), SP_ECONFIG);
	assert_contains(h->err.msg, "GIT_TAG");
	assert_contains(h->err.msg, "t.yml:");
	/* the job ended before the first build: nothing ran, nothing reported */
	assert_int_equal(h->fake.ncalls, 0);
	assert_int_equal(count_events(h->rec, SP_EVENT_STAGE_STARTED), 0);
	h_free(h);
}

static void test_variables_reach_the_runner(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;
	const struct call *b, *r, *p;

	(void)state;
	h = h_new(HEAD "build:\n"
		  "  context: contrib/example-app\n"
		  "  dockerfile: docker/Dockerfile.ci\n"
		  "  args: { BASE_IMAGE: \"${env.BASE_IMAGE:-python:3.12-slim}\", "
		  "REV: \"${GIT_SHORT_SHA}\" }\n"
		  "  network: none\n"
		  "  no_cache: true\n"
		  "stages:\n"
		  "  - name: test\n    target: testing\n    pytest: [-q]\n"
		  "    env:\n"
		  "      WHO: \"${PIPELINE}/${STAGE}@${GIT_BRANCH}\"\n"
		  "      DB: \"${env.DB_URL}\"\n"
		  "      LIT: \"$${NOT_A_VAR} and $HOME\"\n"
		  "  - name: ship\n    target: runtime\n    needs: [test]\n    push: true\n"
		  "    tags: [\"${env.REGISTRY}/${PIPELINE}:${GIT_SHORT_SHA}\", "
		  "\"${env.REGISTRY}/${PIPELINE}:${STAGE}-${GIT_BRANCH}\"]\n",
		  s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);

	b = find_call(&h->fake, OP_BUILD, "test");
	assert_string_equal(b->context, "/src/repo/contrib/example-app");
	assert_string_equal(b->dockerfile, "docker/Dockerfile.ci");
	assert_true(strv_has(&b->args, "BASE_IMAGE=python:3.12-slim"));
	assert_true(strv_has(&b->args, "REV=0123456"));
	assert_int_equal(b->network, SP_NETWORK_NONE);
	assert_true(b->no_cache);
	assert_int_equal(b->tags.n, 0);

	r = find_call(&h->fake, OP_RUN, "test");
	assert_int_equal(r->network, SP_NETWORK_NONE);
	assert_int_equal(r->env.n, 3);
	assert_true(strv_has(&r->env, "WHO=app/test@main"));
	assert_true(strv_has(&r->env, "DB=postgres://db/test"));
	assert_true(strv_has(&r->env, "LIT=${NOT_A_VAR} and $HOME"));

	/* the ship image is built untagged, then tagged with the expanded tags
	 * once it passed (so a failed image never takes a name) */
	b = find_call(&h->fake, OP_BUILD, "ship");
	assert_int_equal(b->tags.n, 0);
	assert_int_equal(count_calls(&h->fake, OP_TAG, "ship"), 2);
	{
		const char *want[] = { "127.0.0.1:5000/app:0123456", "127.0.0.1:5000/app:ship-main" };
		size_t i, k = 0;
		for (i = 0; i < h->fake.ncalls; i++)
			if (h->fake.calls[i].op == OP_TAG)
				assert_string_equal(h->fake.calls[i].ref, want[k++]);
	}
	assert_int_equal(finished(h->rec, "ship")->refs.n, 2);
	assert_string_equal(finished(h->rec, "ship")->refs.v[1], "127.0.0.1:5000/app:ship-main");
	p = find_call(&h->fake, OP_PUSH, "ship");
	assert_string_equal(p->ref, "127.0.0.1:5000/app:0123456");
	h_free(h);
}

/* ---- promote: health check, then push ---- */

#define PROMOTE \
	HEAD "stages:\n" \
	"  - name: test\n    target: testing\n    pytest: [-q]\n" \
	"  - name: promote\n    target: runtime\n    needs: [test]\n" \
	"    tags: [\"127.0.0.1:5000/app:${GIT_SHORT_SHA}\", \"127.0.0.1:5000/app:latest\"]\n" \
	"    push: true\n" \
	"    healthcheck: { port: 8000, path: /healthz, timeout: 30s }\n"

static void test_health_fail_nothing_pushed(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .junit = "pass-junit.xml" },
		{ .stage = "promote", .health_rc = SP_EFAILED,
		  .health_msg = "the container exited (1) before it was healthy" },
	};
	struct harness *h;
	const struct rec_report *rep;
	const struct call *c;

	(void)state;
	h = h_new(PROMOTE, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_contains(rep->message, "health check failed");
	assert_contains(rep->message, "the container exited (1) before it was healthy");
	assert_contains(rep->message, "nothing was pushed");
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	assert_int_equal(rep->pushed.n, 0);
	/* a build-only stage runs no command */
	assert_int_equal(count_calls(&h->fake, OP_RUN, "promote"), 0);
	c = find_call(&h->fake, OP_HEALTH, "promote");
	assert_string_equal(c->image, rep->image_id);
	assert_int_equal(c->port, 8000);
	assert_string_equal(c->path, "/healthz");
	assert_int_equal(c->timeout_ms, 30000);
	assert_true(strv_has(&c->labels, "io.stagepipe.owner=ci-host:4242"));
	assert_true(strv_has(&c->labels, "io.stagepipe.stage=promote"));
	assert_true(c->cancel_is_check && c->cancel_wraps_user);
	h_free(h);
}

static void test_health_timeout(void **state)
{
	static const struct step s[] = { { .stage = "promote", .health_int = INT_HANG } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(HEAD "stages:\n"
		  "  - name: promote\n    target: runtime\n    timeout: 100ms\n"
		  "    tags: [\"127.0.0.1:5000/app:latest\"]\n    push: true\n    healthcheck: true\n",
		  s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_contains(rep->message, "timed out after 100ms");
	assert_contains(rep->message, "health check");
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	assert_int_equal(find_call(&h->fake, OP_HEALTH, "promote")->port, 0);
	h_free(h);
}

static void test_healthy_push_each_tag(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;
	const struct rec_report *rep;
	const struct rec_event *pf;
	size_t i, health_at = 0, push_at[2] = { 0, 0 }, np = 0;

	(void)state;
	h = h_new(PROMOTE, s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_PASSED);
	/* health check first, then one push per tag, in the file's order */
	for (i = 0; i < h->fake.ncalls; i++) {
		if (h->fake.calls[i].op == OP_HEALTH)
			health_at = i;
		if (h->fake.calls[i].op == OP_PUSH && np < 2)
			push_at[np++] = i;
	}
	assert_int_equal(np, 2);
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 2);
	assert_true(health_at > 0 && health_at < push_at[0]);
	assert_string_equal(h->fake.calls[push_at[0]].ref, "127.0.0.1:5000/app:0123456");
	assert_string_equal(h->fake.calls[push_at[1]].ref, "127.0.0.1:5000/app:latest");
	assert_true(h->fake.calls[push_at[0]].cancel_is_check);
	/* pushed: ref@digest for each */
	assert_int_equal(rep->pushed.n, 2);
	assert_string_equal(rep->pushed.v[0], "127.0.0.1:5000/app:0123456@sha256:"
			    "00000000000000000000000000000000000000000000000000000000000d0001");
	assert_string_equal(rep->pushed.v[1], "127.0.0.1:5000/app:latest@sha256:"
			    "00000000000000000000000000000000000000000000000000000000000d0002");
	assert_true(logged(h->rec, "promote", SP_STREAM_INFO, "pushed 127.0.0.1:5000/app:0123456@"));
	assert_true(logged(h->rec, "promote", SP_STREAM_INFO, "already had every layer"));
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->reports[1].pushed.n, 2);
	h_free(h);
}

static void test_no_push(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(PROMOTE, s, NSTEPS(s));
	h->o.no_push = true;
	assert_int_equal(h_run(h), 0);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_PASSED);
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	assert_int_equal(count_calls(&h->fake, OP_HEALTH, "promote"), 1);
	assert_int_equal(rep->pushed.n, 0);
	assert_int_equal(rep->refs.n, 2);  /* still built and tagged locally */
	assert_true(logged(h->rec, "promote", SP_STREAM_INFO, "--no-push: not pushing 2 tags"));
	h_free(h);
}

static void test_push_error(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .junit = "pass-junit.xml" },
		{ .stage = "promote", .push_rc = SP_EENGINE, .push_fail_at = 2,
		  .push_msg = "pushing 127.0.0.1:5000/app:latest: denied: requested access "
			      "to the resource is denied" },
	};
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(PROMOTE, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EENGINE);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_ERROR);
	assert_contains(rep->message, "denied");
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 2);
	/* the tag that made it is still reported */
	assert_int_equal(rep->pushed.n, 1);
	assert_contains(rep->pushed.v[0], "127.0.0.1:5000/app:0123456@sha256:");
	assert_contains(h->err.msg, "denied");
	assert_int_equal(pipeline_finished(h->rec)->result, SP_RESULT_ERROR);
	h_free(h);
}

static void test_push_only_when_asked(void **state)
{
	/* tags without push: true are built and tagged, never pushed */
	struct harness *h;

	(void)state;
	h = h_new(HEAD "stages:\n  - name: image\n    target: runtime\n"
		  "    tags: [\"127.0.0.1:5000/app:latest\"]\n", NULL, 0);
	assert_int_equal(h_run(h), 0);
	assert_int_equal(h->fake.ncalls, 2);  /* build, tag */
	assert_int_equal(count_calls(&h->fake, OP_TAG, NULL), 1);
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	assert_int_equal(count_calls(&h->fake, OP_HEALTH, NULL), 0);
	assert_int_equal(finished(h->rec, "image")->refs.n, 1);
	h_free(h);
}

static const struct sp_runner_ops fake_ops_no_push = {
	"fake", fake_build, fake_run, fake_health, fake_tag, NULL, fake_free, NULL,
};

static void test_runner_without_push(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(PROMOTE, s, NSTEPS(s));
	h->fake.base.ops = &fake_ops_no_push;
	assert_int_equal(h_run(h), SP_EENGINE);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_ERROR);
	assert_string_equal(rep->message, "the fake runner cannot push");
	h_free(h);

	/* with --no-push the missing op does not matter */
	h = h_new(PROMOTE, s, NSTEPS(s));
	h->fake.base.ops = &fake_ops_no_push;
	h->o.no_push = true;
	assert_int_equal(h_run(h), 0);
	h_free(h);
}

/* ---- the promote permit (serve/agent: run --permit-stdin) ---- */

struct permit_fake {
	struct fake *fake;
	int rc;                 /* the answer: 0 grants, a negative code refuses */
	const char *reason;     /* written into reason when refusing */
	enum interrupt wait;    /* INT_HANG: wait for the stage's cancel; INT_SIGNAL: Ctrl-C too */
	struct strv asked;      /* stage names, in order */
	size_t calls_before;    /* runner calls made before the (last) question */
	bool cancel_is_check;
};

static int fake_permit(void *ud, const char *stage, sp_cancel_fn cancel, void *cancel_ud,
		       char *reason, size_t len)
{
	struct permit_fake *pf = ud;
	struct sp_error e = SP_ERROR_INIT;

	strv_push(&pf->asked, stage);
	pf->calls_before = pf->fake->ncalls;
	pf->cancel_is_check = cancel == sp_cancel_check;
	assert_non_null(reason);
	assert_true(len >= 64);
	if (pf->wait != INT_NONE)
		return hang(pf->fake, pf->wait, cancel, cancel_ud, &e);
	if (pf->rc < 0 && pf->reason)
		snprintf(reason, len, "%s", pf->reason);
	return pf->rc;
}

static struct harness *h_new_permit(struct permit_fake *pf, const struct step *s, size_t n)
{
	struct harness *h = h_new(PROMOTE, s, n);

	pf->fake = &h->fake;
	h->o.promote_permit = fake_permit;
	h->o.promote_ud = pf;
	return h;
}

static void test_permit_granted(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct permit_fake pf;
	struct harness *h;
	const struct rec_report *rep;
	size_t i, health_at = 0, first_tag = 0;

	(void)state;
	memset(&pf, 0, sizeof(pf));
	h = h_new_permit(&pf, s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	/* asked once, for the stage with tags only, after its health check and
	 * before the first tag */
	assert_int_equal(pf.asked.n, 1);
	assert_string_equal(pf.asked.v[0], "promote");
	assert_true(pf.cancel_is_check);
	for (i = 0; i < h->fake.ncalls; i++) {
		if (h->fake.calls[i].op == OP_HEALTH)
			health_at = i;
		if (h->fake.calls[i].op == OP_TAG && !first_tag)
			first_tag = i;
	}
	assert_true(health_at < pf.calls_before);
	assert_int_equal(first_tag, pf.calls_before);
	assert_int_equal(count_calls(&h->fake, OP_TAG, NULL), 2);
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 2);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_PASSED);
	assert_int_equal(rep->pushed.n, 2);
	assert_true(logged(h->rec, "promote", SP_STREAM_INFO, "promote permit granted"));
	strv_release(&pf.asked);
	h_free(h);
}

static void test_permit_refused(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct permit_fake pf;
	struct harness *h;
	const struct rec_report *rep;
	const struct rec_event *fin;

	(void)state;
	memset(&pf, 0, sizeof(pf));
	pf.rc = SP_ECONFLICT;
	pf.reason = "job 41 already promoted this commit (epoch 2)";
	h = h_new_permit(&pf, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EENGINE);  /* exit status 3 */
	assert_int_equal(pf.asked.n, 1);
	/* nothing tagged, nothing pushed, nothing claimed */
	assert_int_equal(count_calls(&h->fake, OP_TAG, NULL), 0);
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	assert_int_equal(count_calls(&h->fake, OP_HEALTH, "promote"), 1);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_ERROR);
	assert_string_equal(rep->message,
			    "promote refused: job 41 already promoted this commit (epoch 2)");
	assert_int_equal(rep->refs.n, 0);
	assert_int_equal(rep->pushed.n, 0);
	assert_non_null(rep->image_id);  /* built, just not promoted */
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	fin = pipeline_finished(h->rec);
	assert_int_equal(fin->result, SP_RESULT_ERROR);
	assert_string_equal(fin->message,
			    "promote refused: job 41 already promoted this commit (epoch 2)");
	assert_contains(h->err.msg, "promote refused");
	strv_release(&pf.asked);
	h_free(h);

	/* a refusal without a reason still says it was refused */
	memset(&pf, 0, sizeof(pf));
	pf.rc = SP_ERROR;
	h = h_new_permit(&pf, s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EENGINE);
	assert_string_equal(finished(h->rec, "promote")->message, "promote refused: no reason given");
	assert_int_equal(count_calls(&h->fake, OP_TAG, NULL), 0);
	strv_release(&pf.asked);
	h_free(h);
}

static void test_permit_not_asked(void **state)
{
	static const struct step unhealthy[] = {
		{ .stage = "test", .junit = "pass-junit.xml" },
		{ .stage = "promote", .health_rc = SP_EFAILED, .health_msg = "exited (1)" },
	};
	static const struct step failing[] = {
		{ .stage = "test", .exit_code = 1, .junit = "fail-junit.xml" },
	};
	struct permit_fake pf;
	struct harness *h;

	(void)state;
	/* an unhealthy image is not promoted: no question */
	memset(&pf, 0, sizeof(pf));
	h = h_new_permit(&pf, unhealthy, NSTEPS(unhealthy));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_int_equal(pf.asked.n, 0);
	h_free(h);
	/* nor one whose tests failed (promote is skipped) */
	memset(&pf, 0, sizeof(pf));
	h = h_new_permit(&pf, failing, NSTEPS(failing));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_int_equal(pf.asked.n, 0);
	h_free(h);
	/* nor a stage without tags */
	memset(&pf, 0, sizeof(pf));
	h = h_new(HEAD "stages:\n  - name: image\n    target: runtime\n", NULL, 0);
	pf.fake = &h->fake;
	h->o.promote_permit = fake_permit;
	h->o.promote_ud = &pf;
	assert_int_equal(h_run(h), 0);
	assert_int_equal(pf.asked.n, 0);
	h_free(h);
}

static void test_permit_wait_interrupted(void **state)
{
	struct permit_fake pf;
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	/* the stage's timeout runs while waiting for the answer */
	memset(&pf, 0, sizeof(pf));
	h = h_new(HEAD "stages:\n  - name: promote\n    target: runtime\n    timeout: 100ms\n"
		  "    tags: [\"127.0.0.1:5000/app:latest\"]\n    push: true\n", NULL, 0);
	pf.fake = &h->fake;
	pf.wait = INT_HANG;
	h->o.promote_permit = fake_permit;
	h->o.promote_ud = &pf;
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_contains(rep->message, "timed out after 100ms while waiting for the promote permit");
	assert_int_equal(count_calls(&h->fake, OP_TAG, NULL), 0);
	assert_int_equal(count_calls(&h->fake, OP_PUSH, NULL), 0);
	strv_release(&pf.asked);
	h_free(h);

	/* SIGTERM / Ctrl-C while waiting: cancelled, nothing tagged */
	memset(&pf, 0, sizeof(pf));
	pf.wait = INT_SIGNAL;
	h = h_new_permit(&pf, NULL, 0);
	assert_int_equal(h_run(h), SP_ECANCELLED);
	rep = finished(h->rec, "promote");
	assert_int_equal(rep->result, SP_RESULT_CANCELLED);
	assert_contains(rep->message, "interrupted while waiting for the promote permit");
	assert_int_equal(count_calls(&h->fake, OP_TAG, NULL), 0);
	assert_int_equal(rep->refs.n, 0);
	strv_release(&pf.asked);
	h_free(h);
}

/* ---- a job its pipeline's on: rules exclude ---- */

static void test_skip(void **state)
{
	struct harness *h;
	const struct rec_event *fin;
	size_t i;

	(void)state;
	h = h_new(PROMOTE, NULL, 0);
	sp_executor_skip(&h->o, "on.push does not list branch \"dev\"");
	assert_int_equal(h->rec->foreign, 0);
	assert_int_equal(h->fake.ncalls, 0);
	assert_int_equal(h->rec->n, 2);
	assert_int_equal(h->rec->ev[0].kind, SP_EVENT_PIPELINE_STARTED);
	assert_int_equal(count_events(h->rec, SP_EVENT_STAGE_STARTED), 0);
	assert_int_equal(count_events(h->rec, SP_EVENT_STAGE_FINISHED), 0);
	fin = pipeline_finished(h->rec);
	assert_int_equal(fin->result, SP_RESULT_SKIPPED);
	assert_string_equal(fin->message, "on.push does not list branch \"dev\"");
	assert_int_equal(fin->nreports, 2);
	for (i = 0; i < fin->nreports; i++) {
		assert_int_equal(fin->reports[i].result, SP_RESULT_SKIPPED);
		assert_string_equal(fin->reports[i].message, "on.push does not list branch \"dev\"");
	}
	assert_string_equal(sp_stage_result_name(SP_RESULT_SKIPPED), "skipped");
	h_free(h);
}

/* The reports folder cannot be made: an infrastructure error, before any container. */
static void test_work_dir_missing(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml" } };
	struct harness *h;
	char *gone;

	(void)state;
	h = h_new(HEAD NOTESTS_STAGE, s, NSTEPS(s));
	gone = sp_xasprintf("%s/not-there", h->work);
	h->o.work_dir = gone;
	assert_int_equal(h_run(h), SP_EENGINE);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_ERROR);
	assert_contains(finished(h->rec, "test")->message, "not-there/test");
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 0);
	free(gone);
	h_free(h);
}


/* ---- the interpreter (core/exec/python.h) ---- */

#define PY_STAGE(extra) \
	"stages:\n  - name: test\n    target: testing\n    pytest: [-q, --cov=app]\n" \
	"    user: \"1000\"\n    workdir: /src\n    env: { APP_ENV: test }\n" extra

/* Where the first log line of stage containing needle is (SIZE_MAX: none). */
static size_t log_at(const struct recorder *rec, const char *stage, const char *needle)
{
	size_t i;

	for (i = 0; i < rec->n; i++) {
		const struct rec_event *e = &rec->ev[i];
		if (e->kind == SP_EVENT_LOG && e->stage && !strcmp(e->stage, stage) &&
		    strstr(e->line, needle))
			return i;
	}
	return SIZE_MAX;
}

/* one container: started as python3, the boot finds python first on PATH;
 * its lines are not the stage's, the note comes before the tests' output */
static void test_python_first(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml",
					   .coverage = "pass-coverage.xml" } };
	struct harness *h;
	const struct call *c;
	char *argv;

	(void)state;
	h = h_new(HEAD PY_STAGE(""), s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 1);
	c = find_call(&h->fake, OP_RUN, "test");
	assert_string_equal(c->cand, "python3");
	assert_string_equal(c->mode, "cov=1,explicit=0,hop=0,as=python3");
	argv = strv_join(&c->argv);
	assert_string_equal(argv, "python -m pytest -q --cov=app "
			    "--junitxml=" SP_REPORTS_DIR "/junit.xml "
			    "--cov-report=xml:" SP_REPORTS_DIR "/coverage.xml");
	free(argv);
	assert_true(strv_has(&c->env, "APP_ENV=test"));
	assert_string_equal(c->user, "1000");
	assert_string_equal(c->workdir, "/src");
	assert_non_null(c->reports_dir);
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "python: /usr/bin/python (Python 3.11.2, "
			   "python on the image's PATH), pytest 7.2.1, pytest-cov 4.0.0"));
	assert_true(log_at(h->rec, "test", "python: /usr/bin/python") <
		    log_at(h->rec, "test", "collected 17 items"));
	/* the boot's lines are not the stage's; other lines before go are */
	assert_true(logged(h->rec, "test", SP_STREAM_STDOUT, "sitecustomize says hello"));
	assert_false(logged(h->rec, "test", SP_STREAM_STDOUT, SP_PYTHON_PROBE_MARK));
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	h_free(h);
}

/* an image with only python3 runs the tests with python3, in one container */
static void test_python3_when_no_python(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml",
					   .coverage = "pass-coverage.xml", .no_python = "python" } };
	struct harness *h;
	char *argv;

	(void)state;
	h = h_new(HEAD PY_STAGE(""), s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 1);
	argv = strv_join(&find_call(&h->fake, OP_RUN, "test")->argv);
	assert_string_equal(argv, "python3 -m pytest -q --cov=app "
			    "--junitxml=" SP_REPORTS_DIR "/junit.xml "
			    "--cov-report=xml:" SP_REPORTS_DIR "/coverage.xml");
	free(argv);
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "python: /usr/bin/python3 (Python "
			   "3.11.2, python3 on the image's PATH), pytest 7.2.1, pytest-cov 4.0.0"));
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	h_free(h);
}

/* no python3: a second container started as python (hop 1) */
static void test_python_when_no_python3(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml",
					   .coverage = "pass-coverage.xml", .no_python = "python3" } };
	struct harness *h;

	(void)state;
	h = h_new(HEAD PY_STAGE(""), s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 2);
	assert_int_equal(h->fake.calls[1].rc, SP_EFAILED);
	assert_string_equal(h->fake.calls[1].cand, "python3");
	assert_string_equal(h->fake.calls[2].cand, "python");
	assert_string_equal(h->fake.calls[2].mode, "cov=1,explicit=0,hop=1,as=python");
	assert_string_equal(h->fake.calls[2].argv.v[0], "python");
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "python: /usr/bin/python (Python 3.11.2, "
			   "python on the image's PATH)"));
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_PASSED);
	h_free(h);
}

/* a `python` that is Python 2 makes way for python3; one set by python: does not */
static void test_python2_skipped(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml",
					   .coverage = "pass-coverage.xml", .python2 = "python" } };
	static const struct step both[] = { { .stage = "test", .python2 = "python",
					      .no_python = "python3" } };
	static const struct step key[] = { { .stage = "test", .junit = "pass-junit.xml",
					     .coverage = "pass-coverage.xml", .python2 = "python2" } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(HEAD PY_STAGE(""), s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 1);
	assert_string_equal(find_call(&h->fake, OP_RUN, "test")->argv.v[0], "python3");
	h_free(h);

	h = h_new(HEAD PY_STAGE(""), both, NSTEPS(both));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_contains(rep->message, "no Python 3 in the image of target "
			"\"testing\" (sha256:000000000000): python is Python 2.7.18 and python3 "
			"cannot be started from its PATH");
	assert_false(rep->has_exit_code);
	assert_false(rep->junit_exists);
	h_free(h);

	h = h_new(HEAD PY_STAGE("    python: python2\n"), key, NSTEPS(key));
	assert_int_equal(h_run(h), 0);
	assert_string_equal(find_call(&h->fake, OP_RUN, "test")->argv.v[0], "python2");
	assert_string_equal(find_call(&h->fake, OP_RUN, "test")->mode,
			    "cov=1,explicit=1,hop=0,as=python2");
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "(Python 2.7.18, the stage's python: "
			   "python2)"));
	h_free(h);
}

/* python: is the only candidate */
static void test_python_key(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml",
					   .coverage = "pass-coverage.xml" } };
	static const struct step gone[] = { { .stage = "test", .no_python = "/opt/py/bin/python3" } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(HEAD PY_STAGE("    python: /opt/py/bin/python3\n"), s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 1);
	assert_string_equal(find_call(&h->fake, OP_RUN, "test")->argv.v[0], "/opt/py/bin/python3");
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "python: /opt/py/bin/python3 (Python "
			   "3.11.2, the stage's python: /opt/py/bin/python3)"));
	h_free(h);

	h = h_new(HEAD PY_STAGE("    python: /opt/py/bin/python3\n"), gone, NSTEPS(gone));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 1);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_contains(rep->message, "cannot start python: /opt/py/bin/python3 (stage \"test\") in "
			"the image of target \"testing\" (sha256:");
	assert_contains(rep->message, "executable file not found");
	h_free(h);
}

/* no interpreter, no pytest, no pytest-cov: one line each, no test run */
static void test_python_missing_pieces(void **state)
{
	static const struct step nopy[] = { { .stage = "test", .no_python = "python python3" } };
	static const struct step nopytest[] = { { .stage = "test", .no_python = "python",
						  .no_pytest = true } };
	static const struct step nocov[] = { { .stage = "test", .no_cov = true } };
	static const struct step nocov_ok[] = { { .stage = "test", .no_cov = true,
						  .junit = "pass-junit.xml" } };
	struct harness *h;
	const struct rec_report *rep;

	(void)state;
	h = h_new(HEAD PY_STAGE(""), nopy, NSTEPS(nopy));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_contains(rep->message, "no Python in the image of target \"testing\" (sha256:");
	assert_contains(rep->message, "neither python nor python3");
	assert_null(strchr(rep->message, '\n'));
	assert_int_equal(count_calls(&h->fake, OP_RUN, NULL), 2);
	h_free(h);

	h = h_new(HEAD PY_STAGE(""), nopytest, NSTEPS(nopytest));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_string_equal(rep->message, "no pytest in the image of target \"testing\" "
			    "(sha256:000000000000"
			    "): /usr/bin/python3 (Python 3.11.2, python3 on the image's PATH) cannot "
			    "import pytest; install pytest in that target, or set python: in stage "
			    "\"test\" to an interpreter that has it");
	assert_false(rep->has_exit_code);
	assert_false(logged(h->rec, "test", SP_STREAM_STDOUT, "collected"));
	assert_false(logged(h->rec, "test", SP_STREAM_INFO, "python: "));
	h_free(h);

	h = h_new(HEAD PY_STAGE(""), nocov, NSTEPS(nocov));
	assert_int_equal(h_run(h), SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_contains(rep->message, "--cov needs the pytest-cov plugin, which /usr/bin/python "
			"(Python 3.11.2, python on the image's PATH) in the image of target "
			"\"testing\"");
	assert_contains(rep->message, "drop --cov (and coverage.min) from stage \"test\"");
	h_free(h);

	/* without --cov, pytest-cov is not needed */
	h = h_new(HEAD "stages:\n  - name: test\n    target: testing\n    pytest: [-q]\n",
		  nocov_ok, NSTEPS(nocov_ok));
	assert_int_equal(h_run(h), 0);
	assert_string_equal(find_call(&h->fake, OP_RUN, "test")->mode,
			    "cov=0,explicit=0,hop=0,as=python3");
	h_free(h);
}

/* a boot that prints nothing of its own does not stop the tests */
static void test_python_probe_silent(void **state)
{
	static const struct step s[] = { { .stage = "test", .junit = "pass-junit.xml",
					   .coverage = "pass-coverage.xml", .probe_silent = true } };
	struct harness *h;

	(void)state;
	h = h_new(HEAD PY_STAGE(""), s, NSTEPS(s));
	assert_int_equal(h_run(h), 0);
	assert_true(logged(h->rec, "test", SP_STREAM_INFO, "the probe said nothing"));
	assert_true(logged(h->rec, "test", SP_STREAM_STDOUT, "collected 17 items"));
	h_free(h);
}

/* the stage's deadline and Ctrl-C reach the boot */
static void test_python_probe_interrupted(void **state)
{
	static const struct step hang_[] = { { .stage = "test", .probe_int = INT_HANG } };
	static const struct step sig[] = { { .stage = "test", .probe_int = INT_SIGNAL } };
	static const struct step later[] = { { .stage = "test", .run_int = INT_HANG } };
	struct harness *h;

	(void)state;
	h = h_new(HEAD PY_STAGE("    timeout: 100ms\n"), hang_, NSTEPS(hang_));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_contains(finished(h->rec, "test")->message,
			"timed out after 100ms while looking for the Python interpreter");
	h_free(h);

	h = h_new(HEAD PY_STAGE(""), sig, NSTEPS(sig));
	assert_int_equal(h_run(h), SP_ECANCELLED);
	assert_int_equal(finished(h->rec, "test")->result, SP_RESULT_CANCELLED);
	h_free(h);

	h = h_new(HEAD PY_STAGE("    timeout: 100ms\n"), later, NSTEPS(later));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_contains(finished(h->rec, "test")->message,
			"timed out after 100ms while running the tests");
	h_free(h);
}

/* the boot's lines: read until go or stop, then everything is the tests' */
static void test_python_boot_lines(void **state)
{
	struct sp_python_boot b = SP_PYTHON_BOOT_INIT;
#define FEED(stream, s) sp_python_boot_feed(&b, stream, s, strlen(s))

	(void)state;
	assert_false(FEED(SP_STREAM_STDOUT, "sitecustomize says hello"));
	assert_false(FEED(SP_STREAM_STDERR, SP_PYTHON_PROBE_MARK "version=9"));
	assert_true(FEED(SP_STREAM_STDOUT, SP_PYTHON_PROBE_MARK "version=3.12.1"));
	assert_true(FEED(SP_STREAM_STDOUT, SP_PYTHON_PROBE_MARK "as=python3"));
	assert_true(FEED(SP_STREAM_STDOUT, SP_PYTHON_PROBE_MARK "gone"));  /* not go: a probe line */
	assert_int_equal(b.state, SP_PYTHON_BOOTING);
	assert_true(FEED(SP_STREAM_STDOUT, SP_PYTHON_GO "\r"));
	assert_int_equal(b.state, SP_PYTHON_RUNNING);
	/* a test printing the marks later is just output */
	assert_false(FEED(SP_STREAM_STDOUT, SP_PYTHON_PROBE_MARK "version=1.0"));
	assert_false(FEED(SP_STREAM_STDOUT, SP_PYTHON_STOP));
	assert_int_equal(b.state, SP_PYTHON_RUNNING);
	assert_string_equal(b.info.version, "3.12.1");
	assert_string_equal(b.info.as, "python3");
	sp_python_info_release(&b.info);

	b.state = SP_PYTHON_BOOTING;
	assert_true(FEED(SP_STREAM_STDOUT, SP_PYTHON_STOP));
	assert_int_equal(b.state, SP_PYTHON_STOPPED);
	assert_false(FEED(SP_STREAM_STDOUT, SP_PYTHON_GO));
	assert_int_equal(b.state, SP_PYTHON_STOPPED);
	sp_python_info_release(&b.info);
#undef FEED
}

/* the pure parts: probe lines, modes, image names, messages, the script */
static void test_python_pure(void **state)
{
	struct sp_python_info info = SP_PYTHON_INFO_INIT;
	struct sp_python_boot b = SP_PYTHON_BOOT_INIT;
	struct sp_error e = SP_ERROR_INIT;
	struct sp_stage st;
	char name[] = "t", py[] = "python3.12";
	char *s;
	const char *body;
	static const char *const lines[] = {
		"noise",
		SP_PYTHON_PROBE_MARK "executable=/opt/venv/bin/python",
		SP_PYTHON_PROBE_MARK "version=3.12.1\r",
		SP_PYTHON_PROBE_MARK "pytest=?",
		SP_PYTHON_PROBE_MARK "pytest_cov=",
		SP_PYTHON_PROBE_MARK "path=",
		SP_PYTHON_PROBE_MARK "unknown=1",
		SP_PYTHON_PROBE_MARK "no equals sign",
	};
	size_t i;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.name = name;
	s = sp_python_boot_mode(&st, "python3", 0);
	assert_string_equal(s, "cov=0,explicit=0,hop=0,as=python3");
	free(s);
	st.python = py;
	s = sp_python_boot_mode(&st, py, 0);
	assert_string_equal(s, "cov=0,explicit=1,hop=0,as=python3.12");
	free(s);
	st.python = NULL;

	sp_python_info_feed(&info, "noise", 5);
	assert_false(info.seen);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		sp_python_info_feed(&info, lines[i], strlen(lines[i]));
	assert_true(info.seen);
	assert_string_equal(info.executable, "/opt/venv/bin/python");
	assert_string_equal(info.version, "3.12.1");
	assert_string_equal(info.pytest, "?");
	assert_null(info.pytest_cov);
	assert_string_equal(info.path, "");
	s = sp_python_describe(&info, &st, "python");
	assert_string_equal(s, "python: /opt/venv/bin/python (Python 3.12.1, python on the image's "
			    "PATH), pytest ?");
	free(s);
	sp_python_info_release(&info);
	sp_python_info_release(NULL);

	s = sp_python_image_name("testing", "sha256:0123456789abcdef0123");
	assert_string_equal(s, "the image of target \"testing\" (sha256:0123456789ab)");
	free(s);
	s = sp_python_image_name("t", "app:1");
	assert_string_equal(s, "the image of target \"t\" (app:1)");
	free(s);
	/* the runtime's reason, trimmed to what went wrong */
	st.python = py;
	assert_int_equal(sp_python_not_found(&st, "IMG", "cannot start `python3.12` in the "
					     "image: POST /x: HTTP 400: OCI runtime create "
					     "failed: exec: \"python3.12\": executable file "
					     "not found in $PATH: unknown", NULL, &e), SP_EFAILED);
	assert_string_equal(e.msg, "cannot start python: python3.12 (stage \"t\") in IMG: "
			    "exec: \"python3.12\": executable file not found in $PATH");
	assert_int_equal(sp_python_not_found(&st, "IMG", NULL, NULL, &e), SP_EFAILED);
	assert_string_equal(e.msg, "cannot start python: python3.12 (stage \"t\") in IMG");
	st.python = NULL;
	/* a container that could not start for another reason is not "no
	 * Python": the engine's reason as it is */
	assert_true(sp_python_exec_missing(NULL));
	assert_true(sp_python_exec_missing("exec: \"python3\": executable file not found in $PATH"));
	assert_true(sp_python_exec_missing("exec: \"/v/python\": stat /v/python: no such file or "
					   "directory"));
	assert_false(sp_python_exec_missing("unable to find user nobody2: no matching entries in "
					    "passwd file"));
	assert_false(sp_python_exec_missing("error mounting \"/x\": no such file or directory"));
	assert_int_equal(sp_python_not_found(&st, "IMG", "cannot start `python3` in the image: "
					     "POST /containers/1/start: engine answered HTTP 400: "
					     "unable to find user nobody2: no matching entries in "
					     "passwd file", NULL, &e), SP_EFAILED);
	assert_string_equal(e.msg, "the test container of stage \"t\" cannot start in IMG: "
			    "unable to find user nobody2: no matching entries in passwd file");
	assert_int_equal(sp_python_not_found(&st, "IMG", "the runtime said no", NULL, &e),
			 SP_EFAILED);
	assert_string_equal(e.msg, "the test container of stage \"t\" cannot start in IMG: "
			    "the runtime said no");
	assert_int_equal(sp_python_not_found(&st, "IMG", "exec: \"python\": executable file not "
					     "found in $PATH", NULL, &e), SP_EFAILED);
	assert_non_null(strstr(e.msg, "no Python in IMG"));
	/* a stop that says nothing is still one line */
	b.state = SP_PYTHON_STOPPED;
	assert_int_equal(sp_python_stopped(&b, &st, "IMG", &e), SP_EFAILED);
	assert_string_equal(e.msg, "the interpreter check in IMG stopped the tests without "
			    "saying why");
	/* the script: keys the parser reads, the marks, ASCII, re-executable */
	assert_non_null(strstr(sp_python_boot_script, "('executable'"));
	assert_non_null(strstr(sp_python_boot_script, "('as', cand)"));
	assert_non_null(strstr(sp_python_boot_script, "'" SP_PYTHON_STOP "\\n'"));
	assert_non_null(strstr(sp_python_boot_script, "'" SP_PYTHON_GO "\\n'"));
	assert_non_null(strstr(sp_python_boot_script, "sys.exit(121)"));
	assert_int_equal(SP_PYTHON_BOOT_EXIT, 121);
	assert_int_equal(strncmp(sp_python_boot_script, "S = r'''", 8), 0);
	body = sp_python_boot_script + 8;
	s = strstr(body, "'''");
	assert_non_null(s);
	assert_string_equal(s, "'''\nexec(S)\n");
	for (i = 0; sp_python_boot_script[i]; i++)
		assert_true((unsigned char)sp_python_boot_script[i] < 128);
}

/* ---- the final event ---- */

static void test_pipeline_finished_carries_every_report(void **state)
{
	static const struct step s[] = {
		{ .stage = "lint", .exit_code = 1 },
		{ .stage = "test", .exit_code = 1, .junit = "fail-junit.xml",
		  .coverage = "fail-coverage.xml" },
	};
	struct harness *h;
	const struct rec_event *pf;

	(void)state;
	h = h_new(SELECT, s, NSTEPS(s));
	h->vars.git_tag = "v1.2.0";
	assert_int_equal(h_run(h), SP_EFAILED);
	pf = pipeline_finished(h->rec);
	assert_int_equal(pf->nreports, 4);
	assert_int_equal(pf->result, SP_RESULT_FAILED);
	assert_string_equal(pf->reports[0].stage, "lint");
	assert_int_equal(pf->reports[0].result, SP_RESULT_FAILED);
	assert_string_equal(pf->reports[0].message, "command exited 1");
	assert_string_equal(pf->reports[1].stage, "test");
	assert_int_equal(pf->reports[1].result, SP_RESULT_FAILED);
	assert_int_equal(pf->reports[1].tests, 19);
	assert_true(pf->reports[1].has_coverage);
	assert_true(pf->reports[1].junit_exists);
	assert_string_equal(pf->reports[2].stage, "promote");
	assert_int_equal(pf->reports[2].result, SP_RESULT_SKIPPED);
	assert_string_equal(pf->reports[2].message, "needs test, which failed");
	assert_string_equal(pf->reports[3].stage, "docs");
	assert_int_equal(pf->reports[3].result, SP_RESULT_PASSED);
	assert_string_equal(pf->reports[3].refs.v[0], "127.0.0.1:5000/docs:v1.2.0");
	/* every stage also had its own STAGE_FINISHED event */
	assert_int_equal(count_events(h->rec, SP_EVENT_STAGE_FINISHED), 4);
	assert_int_equal(count_events(h->rec, SP_EVENT_PIPELINE_STARTED), 1);
	assert_int_equal(h->rec->ev[0].kind, SP_EVENT_PIPELINE_STARTED);
	/* the job's message is a failed stage's */
	assert_string_equal(pf->message, "command exited 1");
	h_free(h);
}

/* ---- found while writing these tests, since fixed ---- */

/* These tests free their harness in a teardown, so a failure leaks nothing. */
static int free_harness(void **state)
{
	if (*state)
		h_free(*state);
	*state = NULL;
	return 0;
}

/*
 * The coverage gate's message rounds down: 79.96% against min 80 reads
 * "coverage 79.9% < 80%", never "80.0% < 80%".  The report is made up
 * (10000 lines, 7996 covered, no branches) to hit the edge exactly.
 */
static void test_coverage_message_rounds_down(void **state)
{
	static const struct step s[] = {
		{ .stage = "test", .exit_code = 0, .junit = "pass-junit.xml",
		  .coverage_xml = "<?xml version=\"1.0\" ?>\n"
				  "<coverage version=\"6.5.0\" lines-valid=\"10000\" "
				  "lines-covered=\"7996\" line-rate=\"0.7996\" "
				  "branches-covered=\"0\" branches-valid=\"0\" branch-rate=\"0\" "
				  "complexity=\"0\"><sources><source>/app/app</source></sources>"
				  "<packages/></coverage>\n" },
	};
	struct harness *h;
	const struct rec_report *rep;

	*state = h = run_test_stage(HEAD TEST_STAGE, s, SP_EFAILED);
	rep = finished(h->rec, "test");
	assert_int_equal(rep->result, SP_RESULT_FAILED);
	assert_true(rep->coverage > 79.95 && rep->coverage < 79.97);
	assert_string_equal(rep->message, "coverage 79.9% < 80%");
}

/* A `run:` stage that times out says "running the command", not "the tests". */
static void test_run_stage_timeout_wording(void **state)
{
	static const struct step s[] = { { .stage = "lint", .run_int = INT_HANG } };
	struct harness *h;

	*state = h = h_new(HEAD "stages:\n  - name: lint\n    target: testing\n"
			   "    run: make lint\n    timeout: 100ms\n", s, NSTEPS(s));
	assert_int_equal(h_run(h), SP_EFAILED);
	assert_int_equal(finished(h->rec, "lint")->result, SP_RESULT_FAILED);
	assert_string_equal(finished(h->rec, "lint")->message,
			    "timed out after 100ms while running the command");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pytest_status_words),
		cmocka_unit_test(test_pytest_pass),
		cmocka_unit_test(test_pytest_skips_and_xfails),
		cmocka_unit_test(test_pytest_failing_tests),
		cmocka_unit_test(test_coverage_below_min),
		cmocka_unit_test(test_coverage_min_without_report),
		cmocka_unit_test(test_fail_under_exit1_without_failures),
		cmocka_unit_test(test_no_tests_exit5_fails),
		cmocka_unit_test(test_no_tests_exit1_gated_fails),
		cmocka_unit_test(test_allow_no_tests_passes),
		cmocka_unit_test(test_pytest_exit_codes_in_words),
		cmocka_unit_test(test_killed_from_outside),
		cmocka_unit_test(test_collection_error),
		cmocka_unit_test(test_oom),
		cmocka_unit_test(test_run_stage_command),
		cmocka_unit_test(test_cov_report_only_with_cov),
		cmocka_unit_test(test_needs_chain_skips_transitively),
		cmocka_unit_test(test_only_stage_selects_needs),
		cmocka_unit_test(test_only_stage_unknown),
		cmocka_unit_test(test_matrix_variants),
		cmocka_unit_test(test_matrix_only_stage),
		cmocka_unit_test(test_stage_order_follows_needs),
		cmocka_unit_test(test_build_failure),
		cmocka_unit_test(test_engine_error_stops_pipeline),
		cmocka_unit_test(test_error_after_failure_is_the_job_result),
		cmocka_unit_test(test_cancel_during_run),
		cmocka_unit_test(test_cancel_during_build),
		cmocka_unit_test(test_cancel_between_stages),
		cmocka_unit_test(test_timeout_during_run),
		cmocka_unit_test(test_interrupt_messages),
		cmocka_unit_test(test_deadline_from_stage_timeout),
		cmocka_unit_test(test_missing_variable_before_any_build),
		cmocka_unit_test(test_variables_reach_the_runner),
		cmocka_unit_test(test_health_fail_nothing_pushed),
		cmocka_unit_test(test_health_timeout),
		cmocka_unit_test(test_healthy_push_each_tag),
		cmocka_unit_test(test_no_push),
		cmocka_unit_test(test_push_error),
		cmocka_unit_test(test_push_only_when_asked),
		cmocka_unit_test(test_runner_without_push),
		cmocka_unit_test(test_permit_granted),
		cmocka_unit_test(test_permit_refused),
		cmocka_unit_test(test_permit_not_asked),
		cmocka_unit_test(test_permit_wait_interrupted),
		cmocka_unit_test(test_skip),
		cmocka_unit_test(test_work_dir_missing),
		cmocka_unit_test(test_python_first),
		cmocka_unit_test(test_python3_when_no_python),
		cmocka_unit_test(test_python_when_no_python3),
		cmocka_unit_test(test_python_key),
		cmocka_unit_test(test_python2_skipped),
		cmocka_unit_test(test_python_missing_pieces),
		cmocka_unit_test(test_python_probe_silent),
		cmocka_unit_test(test_python_probe_interrupted),
		cmocka_unit_test(test_python_boot_lines),
		cmocka_unit_test(test_python_pure),
		cmocka_unit_test(test_pipeline_finished_carries_every_report),
		cmocka_unit_test_teardown(test_coverage_message_rounds_down, free_harness),
		cmocka_unit_test_teardown(test_run_stage_timeout_wording, free_harness),
		cmocka_unit_test_teardown(test_services_around_the_tests, free_harness),
		cmocka_unit_test_teardown(test_services_logs_on_failure, free_harness),
		cmocka_unit_test_teardown(test_services_not_ready, free_harness),
		cmocka_unit_test_teardown(test_services_need_a_runner_that_has_them, free_harness),
		cmocka_unit_test_teardown(test_services_missing_variable_stops_before_building,
					  free_harness),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
