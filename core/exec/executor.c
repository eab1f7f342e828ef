/*
 * executor.c — stages in order, gates, deadlines; see executor.h.
 *
 * The executor owns one sp_stage_report per stage and a "plan" holding
 * each selected stage's strings with variables filled in.  It talks to
 * the backend only through struct sp_runner and to the user only through
 * events.
 */
#include "core/exec/executor.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/base/buf.h"
#include "core/exec/python.h"
#include "core/exec/sched.h"
#include "core/report/cobertura.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/registry/imageref.h"
#include "core/report/junit.h"
#include "core/base/xalloc.h"

struct plan {
	bool selected;
	char **tags;
	size_t ntags;
	char **env;          /* "NAME=value" */
	size_t nenv;
	char **args;         /* pytest arguments or the run command, expanded */
	size_t nargs;
	/* a matrix variant's build args: build.args with its matrix over them
	 * (values borrowed from the run's build settings and the pipeline);
	 * NULL without a matrix (the run's build args as they are) */
	struct sp_build_kv *bargs;
	size_t nbargs;
	const char **mnames, **mvalues;  /* the matrix for ${matrix.KEY} */
};

struct shared;
struct slot;

/*
 * The pipeline's run.  Each started stage works on its own copy (a
 * "view": current, runner and slot set for it; the rest borrowed from
 * the pipeline's), so that on_log knows its stage without a lock.
 */
struct run {
	const struct sp_exec_opts *o;
	struct sp_stage_report *reports;
	struct plan *plans;
	struct sp_build_settings build;
	const struct sp_stage *current;
	struct sp_runner *runner;           /* this stage's connection (o->runner, or a sibling) */
	struct slot *slot;                  /* this stage's; NULL outside a stage */
	struct shared *sh;                  /* NULL: no stage runs (sp_executor_skip) */
};

/* One started stage. */
struct slot {
	struct run view;
	size_t idx;
	int abort;                /* atomic: set while ahead when its gate fails */
	bool ahead;               /* started ahead of its needs */
	bool threaded;
	pthread_t thread;
	double t0;
};

/* What the stages share; lock before ev_lock when both are taken. */
struct shared {
	pthread_mutex_t lock;     /* sched, sst, artifacts_used */
	pthread_cond_t cond;      /* a stage finished or went through its gate */
	pthread_mutex_t ev_lock;  /* one event at a time to the sinks */
	pthread_mutex_t permit_lock;  /* one promote permit question at a time */
	struct sp_sched sched;
	struct sp_sched_stage *sst;
	struct slot *slots;       /* one per stage */
	unsigned long long artifacts_used;  /* bytes of artifacts kept so far */
};

/* One decimal as usual, but a figure under the minimum never shows as
 * reaching it: 79.96 against 80 reads "79.9% < 80%", not "80.0% < 80%". */
static double shown_below(double percent, double min)
{
	double r = round(percent * 10.0) / 10.0;

	return r >= min ? floor(percent * 10.0) / 10.0 : r;
}

const char *sp_executor_pytest_status(int code)
{
	switch (code) {
	case 0: return "all tests passed";
	case 1: return "tests failed";
	case 2: return "test run interrupted";
	case 3: return "pytest internal error";
	case 4: return "pytest usage error (bad command-line arguments)";
	case 5: return "no tests collected";
	case 137: return "killed (SIGKILL)";
	case 143: return "terminated (SIGTERM)";
	default: return "pytest exited abnormally";
	}
}

static double now_secs(void)
{
	return (double)sp_cancel_now_ms() / 1000.0;
}

static void emit(struct run *r, struct sp_event *ev)
{
	ev->pipeline = r->o->pipeline;
	ev->job_id = r->o->job_id;
	if (r->sh)
		pthread_mutex_lock(&r->sh->ev_lock);
	sp_events_emit(r->o->events, ev);
	if (r->sh)
		pthread_mutex_unlock(&r->sh->ev_lock);
}

static void on_log(void *ud, enum sp_log_stream stream, const char *line, size_t len)
{
	struct run *r = ud;
	struct sp_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_LOG;
	ev.stage = r->current;
	ev.stream = stream;
	ev.line = line;
	ev.len = len;
	emit(r, &ev);
}

static void note(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct run *r, const char *fmt, ...)
{
	struct sp_buf b = SP_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	(void)sp_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	on_log(r, SP_STREAM_INFO, b.data, b.len);
	sp_buf_release(&b);
}

static void set_message(struct sp_stage_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_message(struct sp_stage_report *rep, const char *fmt, ...)
{
	struct sp_buf b = SP_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	(void)sp_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	free(rep->message);
	rep->message = sp_buf_detach(&b, NULL);
}

/* ---- planning: selection and variables, before anything runs ---- */

static void select_with_needs(struct run *r, size_t idx)
{
	const struct sp_stage *st = &r->o->pipeline->stages[idx];
	size_t i;

	if (r->plans[idx].selected)
		return;
	r->plans[idx].selected = true;
	for (i = 0; i < st->needs.n; i++)
		select_with_needs(r, st->needs_idx[i]);
}

/* A matrix variant's build args and ${matrix.KEY} values, into pl. */
static void plan_matrix(struct run *r, const struct sp_stage *st, struct plan *pl)
{
	size_t i, j;

	if (!st->matrix.n)
		return;
	pl->bargs = sp_xcalloc(r->build.nargs + st->matrix.n, sizeof(*pl->bargs));
	pl->mnames = sp_xcalloc(st->matrix.n, sizeof(*pl->mnames));
	pl->mvalues = sp_xcalloc(st->matrix.n, sizeof(*pl->mvalues));
	for (i = 0; i < r->build.nargs; i++)
		pl->bargs[pl->nbargs++] = r->build.args[i];
	for (i = 0; i < st->matrix.n; i++) {
		const struct sp_pvar *m = &st->matrix.items[i];

		pl->mnames[i] = m->name;
		pl->mvalues[i] = m->value;
		/* the matrix wins over build.args of the same name */
		for (j = 0; j < pl->nbargs && strcmp(pl->bargs[j].name, m->name); j++)
			;
		if (j == pl->nbargs)
			pl->nbargs++;
		pl->bargs[j].name = m->name;
		pl->bargs[j].value = m->value;
	}
}

/* Expands (and drops) every variable of a stage's services: a missing
 * value then fails the job before anything is built, like the stage's own. */
static int check_service_vars(const struct sp_pipeline *p, const struct sp_stage *st,
			      const struct sp_vars *v, struct sp_error *err)
{
	size_t i, j;
	char *x = NULL;
	int rc = 0;

	for (i = 0; i < st->nservices && rc == 0; i++) {
		const struct sp_service *sv = &st->services[i];
		if (sv->image.s && (rc = sp_pipeline_expand(p, sv->image.s, sv->image.pos, v, &x,
							    err)) == 0)
			free(x);
		for (j = 0; j < sv->env.n && rc == 0; j++)
			if ((rc = sp_pipeline_expand(p, sv->env.items[j].value, sv->env.items[j].pos, v,
						     &x, err)) == 0)
				free(x);
		for (j = 0; j < sv->command.n && rc == 0; j++)
			if ((rc = sp_pipeline_expand(p, sv->command.items[j].s, sv->command.items[j].pos,
						     v, &x, err)) == 0)
				free(x);
		for (j = 0; j < sv->ready_cmd.n && rc == 0; j++)
			if ((rc = sp_pipeline_expand(p, sv->ready_cmd.items[j].s,
						     sv->ready_cmd.items[j].pos, v, &x, err)) == 0)
				free(x);
	}
	return rc;
}

static int plan(struct run *r, struct sp_error *err)
{
	const struct sp_pipeline *p = r->o->pipeline;
	struct sp_vars v = *r->o->vars;
	size_t i, j;
	int rc;

	if (r->o->only_stage) {
		/* a matrix stage's name selects all its variants */
		if (!sp_pipeline_stage(p, r->o->only_stage))
			return sp_error_set(err, SP_ECONFIG, "no stage \"%s\" in %s", r->o->only_stage,
					    p->file);
		for (i = 0; i < p->nstages; i++)
			if (sp_stage_selected(&p->stages[i], r->o->only_stage))
				select_with_needs(r, i);
	} else {
		for (i = 0; i < p->nstages; i++)
			r->plans[i].selected = true;
	}
	v.stage = NULL;
	if ((rc = sp_build_settings_expand(&r->build, p, r->o->source_root, &v, err)) < 0)
		return rc;
	for (i = 0; i < p->nstages; i++) {
		const struct sp_stage *st = &p->stages[i];
		struct plan *pl = &r->plans[i];
		if (!pl->selected)
			continue;
		v.stage = st->name;
		plan_matrix(r, st, pl);
		v.matrix_names = pl->mnames;
		v.matrix_values = pl->mvalues;
		v.nmatrix = st->matrix.n;
		if ((rc = check_service_vars(p, st, &v, err)) < 0)
			return rc;
		pl->tags = sp_xcalloc(st->tags.n + 1, sizeof(*pl->tags));
		for (j = 0; j < st->tags.n; j++) {
			const struct sp_pstr *t = &st->tags.items[j];
			struct sp_imageref ref;
			struct sp_error why = SP_ERROR_INIT;
			if ((rc = sp_pipeline_expand(p, t->s, t->pos, &v, &pl->tags[j], err)) < 0)
				return rc;
			pl->ntags++;
			/* checked at load with sample values; now with the real ones */
			if (sp_imageref_parse(&ref, pl->tags[j], &why) < 0)
				return sp_error_set(err, SP_ECONFIG, "%s:%d:%d: tag \"%s\" is \"%s\" "
						    "here, not a valid image reference: %s", p->file,
						    t->pos.line, t->pos.col, t->s, pl->tags[j], why.msg);
			if (*ref.digest) {
				sp_imageref_release(&ref);
				return sp_error_set(err, SP_ECONFIG, "%s:%d:%d: tag \"%s\" holds a digest; "
						    "a tag names an image to push, like reg/app:v1",
						    p->file, t->pos.line, t->pos.col, t->s);
			}
			sp_imageref_release(&ref);
		}
		pl->args = sp_xcalloc(st->args.n + 1, sizeof(*pl->args));
		for (j = 0; j < st->args.n; j++) {
			const struct sp_pstr *a = &st->args.items[j];
			if ((rc = sp_pipeline_expand(p, a->s, a->pos, &v, &pl->args[j], err)) < 0)
				return rc;
			pl->nargs++;
		}
		pl->env = sp_xcalloc(st->env.n + 1, sizeof(*pl->env));
		for (j = 0; j < st->env.n; j++) {
			const struct sp_pvar *e = &st->env.items[j];
			char *val;
			if ((rc = sp_pipeline_expand(p, e->value, e->pos, &v, &val, err)) < 0)
				return rc;
			pl->env[j] = sp_xasprintf("%s=%s", e->name, val);
			free(val);
			pl->nenv++;
		}
	}
	return 0;
}

int sp_build_settings_expand(struct sp_build_settings *out, const struct sp_pipeline *p,
			     const char *source_root, const struct sp_vars *vars,
			     struct sp_error *err)
{
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	out->args = sp_xcalloc(p->build.args.n + 1, sizeof(*out->args));
	out->values = sp_xcalloc(p->build.args.n + 1, sizeof(*out->values));
	for (i = 0; i < p->build.args.n; i++) {
		const struct sp_pvar *a = &p->build.args.items[i];
		if ((rc = sp_pipeline_expand(p, a->value, a->pos, vars, &out->values[i], err)) < 0)
			goto fail;
		out->args[i].name = a->name;
		out->args[i].value = out->values[i];
		out->nargs++;
	}
	if ((rc = sp_pipeline_network(p, vars, &out->network, err)) < 0)
		goto fail;
	out->cache_from = sp_xcalloc(p->build.cache_from.n + 1, sizeof(*out->cache_from));
	for (i = 0; i < p->build.cache_from.n; i++) {
		const struct sp_pstr *c = &p->build.cache_from.items[i];
		struct sp_imageref ref;
		struct sp_error why = SP_ERROR_INIT;
		if ((rc = sp_pipeline_expand(p, c->s, c->pos, vars, &out->cache_from[i], err)) < 0)
			goto fail;
		out->ncache_from++;
		/* checked at load with sample values; now with the real ones */
		if (sp_imageref_parse(&ref, out->cache_from[i], &why) < 0) {
			rc = sp_error_set(err, SP_ECONFIG, "%s:%d:%d: build.cache_from \"%s\" is \"%s\" "
					  "here, not a valid image reference: %s", p->file,
					  c->pos.line, c->pos.col, c->s, out->cache_from[i], why.msg);
			goto fail;
		}
		sp_imageref_release(&ref);
	}
	out->context_dir = p->build.context[0] == '/' ? sp_xstrdup(p->build.context) :
			   sp_xasprintf("%s/%s", source_root, p->build.context);
	return 0;
fail:
	sp_build_settings_release(out);
	return rc;
}

void sp_build_settings_add_matrix(struct sp_build_settings *s, const struct sp_stage *st)
{
	size_t i, j;

	if (!st->matrix.n)
		return;
	s->args = sp_xrealloc(s->args, (s->nargs + st->matrix.n + 1) * sizeof(*s->args));
	s->values = sp_xrealloc(s->values, (s->nargs + st->matrix.n + 1) * sizeof(*s->values));
	for (i = 0; i < st->matrix.n; i++) {
		const struct sp_pvar *m = &st->matrix.items[i];

		for (j = 0; j < s->nargs && strcmp(s->args[j].name, m->name); j++)
			;
		if (j == s->nargs)
			s->nargs++;
		else
			free(s->values[j]);
		s->values[j] = sp_xstrdup(m->value);
		s->args[j].name = m->name;
		s->args[j].value = s->values[j];
	}
}

void sp_build_settings_release(struct sp_build_settings *s)
{
	size_t i;

	for (i = 0; i < s->nargs; i++)
		free(s->values[i]);
	free(s->values);
	free(s->args);
	for (i = 0; i < s->ncache_from; i++)
		free(s->cache_from[i]);
	free(s->cache_from);
	free(s->context_dir);
	memset(s, 0, sizeof(*s));
}

/* ---- one stage ---- */

/* Outcome of an interrupted operation: timeout (a failure) or a signal. */
static enum sp_stage_result interrupted(struct run *r, struct sp_stage_report *rep,
					const struct sp_cancel *c, const char *what)
{
	char dur[32];

	if (!c->reason) {
		/* neither our deadline nor a signal: the engine gave up by itself */
		set_message(rep, "the engine cancelled the job while %s (restarted, or cancelled "
			    "from elsewhere)", what);
		return SP_RESULT_ERROR;
	}
	if (c->reason == SP_ETIMEOUT) {
		sp_duration_format(dur, sizeof(dur), rep->stage->timeout_ms);
		set_message(rep, "timed out after %s while %s", dur, what);
		note(r, "stage timeout (%s) reached while %s: stopped", dur, what);
		return SP_RESULT_FAILED;
	}
	set_message(rep, "interrupted while %s", what);
	return SP_RESULT_CANCELLED;
}

static void read_reports(struct run *r, struct sp_stage_report *rep, const char *dir)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_junit ju;
	struct sp_cobertura co;
	char *junit = sp_xasprintf("%s/junit.xml", dir);
	char *cov = sp_xasprintf("%s/coverage.xml", dir);
	struct stat sb;
	size_t i;

	sp_junit_init(&ju);
	sp_cobertura_init(&co);
	/* reports are written by the code under test: they may print a secret */
	if (sp_mask_active(r->o->mask)) {
		if (stat(junit, &sb) == 0 && sp_mask_file(r->o->mask, junit, &err) < 0)
			note(r, "JUnit report: %s", err.msg);
		if (stat(cov, &sb) == 0 && sp_mask_file(r->o->mask, cov, &err) < 0)
			note(r, "coverage report: %s", err.msg);
		sp_error_clear(&err);
	}
	if (stat(junit, &sb) == 0) {
		if (sp_junit_parse_file(&ju, junit, &err) == 0) {
			rep->has_tests = true;
			rep->tests = ju.tests;
			rep->passed = ju.passed;
			rep->failed = ju.failed;
			rep->errors = ju.errors;
			rep->skipped = ju.skipped + ju.xfailed;
			rep->failures = sp_xcalloc(ju.ncases + 1, sizeof(*rep->failures));
			for (i = 0; i < ju.ncases; i++) {
				rep->failures[i].id = sp_xstrdup(ju.cases[i].id);
				rep->failures[i].message = sp_xstrdup(ju.cases[i].message);
				rep->failures[i].detail = sp_xstrdup(ju.cases[i].detail);
			}
			rep->nfailures = ju.ncases;
			rep->failures_omitted = ju.cases_omitted;
			rep->junit_path = junit;
			junit = NULL;
		} else {
			note(r, "JUnit report unreadable: %s", err.msg);
		}
	}
	if (stat(cov, &sb) == 0) {
		if (sp_cobertura_parse_file(&co, cov, &err) == 0) {
			rep->has_coverage = true;
			rep->coverage = co.total_percent;
			rep->coverage_path = cov;
			cov = NULL;
		} else {
			note(r, "coverage report unreadable: %s", err.msg);
		}
	}
	sp_junit_release(&ju);
	sp_cobertura_release(&co);
	free(junit);
	free(cov);
}

/* Decides a pytest stage's result from its exit code, reports and gates. */
static enum sp_stage_result judge_pytest(struct sp_stage_report *rep, const struct sp_stage *st,
					 const struct sp_run_result *res)
{
	int code = res->exit_code;

	if (res->oom_killed) {
		set_message(rep, "the test container ran out of memory (exit %d)", code);
		return SP_RESULT_FAILED;
	}
	if ((code == 137 || code == 143) && !rep->has_tests) {
		/* killed from outside and no report: not a test result */
		set_message(rep, "the test container was killed (exit %d) from outside, not for lack "
			    "of memory: an engine restart or a docker kill?", code);
		return SP_RESULT_ERROR;
	}
	if (rep->has_tests && rep->failed + rep->errors > 0) {
		unsigned long bad = rep->failed + rep->errors;
		const struct sp_test_failure *f = rep->nfailures ? &rep->failures[0] : NULL;
		set_message(rep, "%lu test%s %s%s%s%s%s%s", bad, bad == 1 ? "" : "s",
			    rep->failed ? "failed" : "had errors",
			    f ? ": " : "", f ? f->id : "", f && *f->message ? " — " : "",
			    f ? f->message : "", bad > 1 ? " (and more, see above)" : "");
		return SP_RESULT_FAILED;
	}
	/* our gate first: its message has both numbers */
	if (st->has_coverage_min && rep->has_coverage && rep->coverage + 1e-9 < st->coverage_min) {
		set_message(rep, "coverage %.1f%% < %g%%", shown_below(rep->coverage, st->coverage_min),
			    st->coverage_min);
		return SP_RESULT_FAILED;
	}
	/* "no tests": exit 5, or 1 when a coverage fail_under also tripped */
	if ((code == 5 || (code == 1 && rep->has_tests)) && rep->has_tests && rep->tests == 0) {
		if (st->allow_no_tests)
			return SP_RESULT_PASSED;
		set_message(rep, "pytest exited %d: no tests collected (set allow_no_tests: true "
			    "to accept)", code);
		return SP_RESULT_FAILED;
	}
	if (code == 5 && st->allow_no_tests)
		return SP_RESULT_PASSED;
	if (code == 1 && rep->has_tests) {
		set_message(rep, "pytest exited 1 although no test failed: a threshold in the "
			    "project's own configuration (e.g. coverage fail_under) was not met");
		return SP_RESULT_FAILED;
	}
	if (code == 1 && !rep->has_tests) {
		/* pytest writes its report whenever tests ran: the interpreter
		 * itself said 1 (it found pytest, then could not run it) */
		set_message(rep, "pytest exited 1 without a report: did pytest start? (see the "
			    "output above, e.g. \"No module named pytest\")");
		return SP_RESULT_FAILED;
	}
	if (code != 0) {
		set_message(rep, "pytest exited %d: %s%s", code, sp_executor_pytest_status(code),
			    code == 5 ? " (set allow_no_tests: true to accept)" : "");
		return SP_RESULT_FAILED;
	}
	if (st->has_coverage_min && !rep->has_coverage) {
		set_message(rep, "coverage.min is %g%% but pytest wrote no coverage report",
			    st->coverage_min);
		return SP_RESULT_FAILED;
	}
	return SP_RESULT_PASSED;
}

/*
 * After a stage's image is built (and its command passed): the health
 * check, then the pushes.  Nothing is pushed unless the image is healthy.
 */
static enum sp_stage_result promote(struct run *r, struct sp_stage_report *rep,
				    const struct plan *pl, struct sp_cancel *cancel,
				    const struct sp_build_kv *labels, size_t nlabels,
				    struct sp_error *err)
{
	const struct sp_stage *st = rep->stage;
	struct sp_runner *runner = r->runner;
	double t0;
	size_t i;
	int rc;

	if (st->health.enabled && !runner->ops->health) {
		set_message(rep, "the %s runner cannot run health checks", runner->ops->name);
		return SP_RESULT_ERROR;
	}
	if (st->health.enabled) {
		struct sp_health_opts ho;
		memset(&ho, 0, sizeof(ho));
		ho.image = rep->image_id;
		ho.env = (const char *const *)pl->env;
		ho.nenv = pl->nenv;
		ho.user = st->user;
		ho.network = r->build.network;
		ho.labels = labels;
		ho.nlabels = nlabels;
		ho.port = st->health.port;
		ho.path = st->health.path;
		ho.timeout_ms = st->health.timeout_ms;
		ho.cancel = sp_cancel_check;
		ho.cancel_ud = cancel;
		ho.log = on_log;
		ho.log_ud = r;
		note(r, "health check: starting the image, waiting for it to be healthy");
		t0 = now_secs();
		rc = runner->ops->health(runner, &ho, err);
		if (rc == SP_ECANCELLED)
			return interrupted(r, rep, cancel, "waiting for the health check");
		if (rc == SP_EFAILED || rc == SP_ECONFIG) {
			set_message(rep, "health check failed: %s%s", err->msg,
				    st->push && pl->ntags ? "; nothing was pushed" : "");
			return SP_RESULT_FAILED;
		}
		if (rc < 0) {
			set_message(rep, "%s", err->msg);
			return SP_RESULT_ERROR;
		}
		note(r, "healthy after %.1fs", now_secs() - t0);
	}
	if (pl->ntags && r->o->promote_permit) {
		char reason[512] = "";
		/* one question at a time: the answers carry no stage name */
		pthread_mutex_lock(&r->sh->permit_lock);
		rc = r->o->promote_permit(r->o->promote_ud, st->name, sp_cancel_check, cancel,
					  reason, sizeof(reason));
		pthread_mutex_unlock(&r->sh->permit_lock);
		if (rc < 0) {
			/* the tags were never given: do not report them */
			for (i = 0; i < rep->nrefs; i++)
				free(rep->refs[i]);
			rep->nrefs = 0;
		}
		if (rc == SP_ECANCELLED && cancel->reason)
			return interrupted(r, rep, cancel, "waiting for the promote permit");
		if (rc < 0) {
			set_message(rep, "promote refused: %s", *reason ? reason : "no reason given");
			note(r, "promote permit refused: nothing was tagged or pushed");
			return SP_RESULT_ERROR;
		}
		note(r, "promote permit granted");
	}
	for (i = 0; i < pl->ntags; i++) {
		if ((rc = runner->ops->tag(runner, rep->image_id, pl->tags[i], err)) < 0) {
			set_message(rep, "tagging %s: %s", pl->tags[i], err->msg);
			return SP_RESULT_ERROR;
		}
		note(r, "tagged %s", pl->tags[i]);
	}
	if (!st->push || !pl->ntags)
		return SP_RESULT_PASSED;
	if (r->o->no_push) {
		note(r, "--no-push: not pushing %zu tag%s", pl->ntags, pl->ntags == 1 ? "" : "s");
		return SP_RESULT_PASSED;
	}
	if (!runner->ops->push) {
		set_message(rep, "the %s runner cannot push", runner->ops->name);
		return SP_RESULT_ERROR;
	}
	rep->pushed = sp_xcalloc(pl->ntags + 1, sizeof(*rep->pushed));
	for (i = 0; i < pl->ntags; i++) {
		struct sp_push_opts po;
		struct sp_push_result pr;
		memset(&po, 0, sizeof(po));
		memset(&pr, 0, sizeof(pr));
		po.ref = pl->tags[i];
		po.cancel = sp_cancel_check;
		po.cancel_ud = cancel;
		po.log = on_log;
		po.log_ud = r;
		t0 = now_secs();
		rc = runner->ops->push(runner, &po, &pr, err);
		if (rc == SP_ECANCELLED)
			return interrupted(r, rep, cancel, "pushing");
		if (rc < 0) {
			set_message(rep, "%s", err->msg);
			return SP_RESULT_ERROR;
		}
		assert(pr.digest);  /* a runner's push returns the digest on success */
		if (pr.layers_pushed == 0)
			note(r, "pushed %s@%s in %.1fs: the registry already had every layer",
			     pl->tags[i], pr.digest, now_secs() - t0);
		else
			note(r, "pushed %s@%s in %.1fs: %u layer%s sent, %u already there",
			     pl->tags[i], pr.digest, now_secs() - t0, pr.layers_pushed,
			     pr.layers_pushed == 1 ? "" : "s", pr.layers_present);
		rep->pushed[rep->npushed++] = sp_xasprintf("%s@%s", pl->tags[i], pr.digest);
		sp_push_result_release(&pr);
	}
	return SP_RESULT_PASSED;
}

/* ---- artifacts ---- */

/* The job's cap on artifacts, all stages together. */
static unsigned long long artifacts_cap(const struct run *r)
{
	return r->o->artifacts_max_bytes ? r->o->artifacts_max_bytes : SP_ARTIFACTS_DEFAULT_MAX;
}

/*
 * Points ro at the stage's artifacts and their folder (DIR/<stage>,
 * created); *dest and *paths are new, for release_artifacts.  Without a
 * folder (no --artifacts) or when it cannot be made, a note says the
 * artifacts are not kept and ro is left alone.
 */
static void plan_artifacts(struct run *r, const struct sp_stage *st, struct sp_run_opts *ro,
			   char **dest, const char ***paths)
{
	unsigned long long used;
	size_t i;

	*dest = NULL;
	*paths = NULL;
	if (!st->artifacts.n)
		return;
	if (!r->o->artifacts_dir) {
		note(r, "artifacts: not kept (run with --artifacts DIR to keep them)");
		return;
	}
	if (mkdir(r->o->artifacts_dir, 0755) < 0 && errno != EEXIST) {
		note(r, "warning: artifacts not kept: creating %s: %s", r->o->artifacts_dir,
		     strerror(errno));
		return;
	}
	*dest = sp_xasprintf("%s/%s", r->o->artifacts_dir, st->name);
	if (mkdir(*dest, 0755) < 0 && errno != EEXIST) {
		note(r, "warning: artifacts not kept: creating %s: %s", *dest, strerror(errno));
		free(*dest);
		*dest = NULL;
		return;
	}
	pthread_mutex_lock(&r->sh->lock);
	used = r->sh->artifacts_used;
	pthread_mutex_unlock(&r->sh->lock);
	if (used >= artifacts_cap(r)) {
		note(r, "warning: artifacts not kept: the job's %llu bytes of artifacts are used up",
		     artifacts_cap(r));
		free(*dest);
		*dest = NULL;
		return;
	}
	*paths = sp_xcalloc(st->artifacts.n + 1, sizeof(**paths));
	for (i = 0; i < st->artifacts.n; i++)
		(*paths)[i] = st->artifacts.items[i].s;
	ro->artifacts = *paths;
	ro->nartifacts = st->artifacts.n;
	ro->artifacts_dest = *dest;
	ro->artifacts_max_bytes = artifacts_cap(r) - used;
}

/* One line on what was kept, after the run. */
static void report_artifacts(struct run *r, struct sp_stage_report *rep,
			     const struct sp_run_result *res, const char *dest)
{
	if (!dest)
		return;
	pthread_mutex_lock(&r->sh->lock);
	r->sh->artifacts_used += res->artifacts_bytes;
	pthread_mutex_unlock(&r->sh->lock);
	rep->has_artifacts = true;
	rep->artifacts_entries = res->artifacts_entries;
	rep->artifacts_bytes = res->artifacts_bytes;
	rep->artifacts_warnings = res->artifacts_missing + res->artifacts_failed;
	note(r, "artifacts: %lu entr%s, %llu bytes in %s%s", res->artifacts_entries,
	     res->artifacts_entries == 1 ? "y" : "ies", res->artifacts_bytes, dest,
	     res->artifacts_missing || res->artifacts_failed ? " (see the warnings above)" : "");
}

/*
 * A pytest stage's output: the boot's lines (core/exec/python.h) are
 * read, not logged; at its go line, the note on the interpreter.
 */
struct pytest_log {
	struct run *r;
	const struct sp_stage *st;
	const char *cand;             /* what the container was started as */
	struct sp_python_boot boot;
};

static void on_pytest_log(void *ud, enum sp_log_stream stream, const char *line, size_t len)
{
	struct pytest_log *pl = ud;
	char *s;

	if (!sp_python_boot_feed(&pl->boot, stream, line, len)) {
		on_log(pl->r, stream, line, len);
		return;
	}
	if (pl->boot.state == SP_PYTHON_RUNNING) {
		s = sp_python_describe(&pl->boot.info, pl->st, pl->cand);
		note(pl->r, "%s", s);
		free(s);
	}
}

/*
 * Runs a pytest stage's container: CAND -c BOOT MODE ARGS (cmd[0] and
 * cmd[3], owned by cmd, are replaced for the second try).  When python3
 * cannot be started and the stage has no python:, once more as `python`.
 * 0 with *res when the container ran (pl->boot says whether the tests
 * did); SP_EFAILED with the interpreter's one line when none started;
 * otherwise the runner's error.
 */
static int run_pytest(struct run *r, const struct sp_stage *st, const char *image_id,
		      struct sp_run_opts *ro, char **cmd, struct pytest_log *pl,
		      struct sp_run_result *res, struct sp_error *err)
{
	char why[SP_ERROR_MSG_MAX], *image;
	int rc;

	pl->r = r;
	pl->st = st;
	pl->cand = cmd[0];
	ro->log = on_pytest_log;
	ro->log_ud = pl;
	rc = r->runner->ops->run(r->runner, ro, res, err);
	/* python3 is not there: `python` may be (not when the container could
	 * not start for another reason, which `python` would meet too) */
	if (rc == SP_EFAILED && !st->python && sp_python_exec_missing(err->msg)) {
		free(cmd[0]);
		cmd[0] = sp_xstrdup("python");
		free(cmd[3]);
		cmd[3] = sp_python_boot_mode(st, "python", 1);
		pl->cand = cmd[0];
		sp_python_info_release(&pl->boot.info);
		pl->boot.state = SP_PYTHON_BOOTING;
		sp_error_clear(err);
		rc = r->runner->ops->run(r->runner, ro, res, err);
	}
	if (rc != SP_EFAILED)
		return rc;
	snprintf(why, sizeof(why), "%s", err->msg);
	sp_error_clear(err);
	image = sp_python_image_name(st->target, image_id);
	rc = sp_python_not_found(st, image, why, NULL, err);
	free(image);
	return rc;
}

/* ---- services (services: on a stage) ---- */

/* How many lines of a service's output are shown when something failed. */
#define SERVICE_LOG_TAIL 40

struct stage_services {
	struct run *r;
	struct sp_services *handle;       /* the runner's; NULL until started */
	struct sp_service_spec *specs;
	size_t n;
	char **owned;                     /* every string allocated for specs */
	size_t nowned, owned_alloc;
};

static char *keep(struct stage_services *ss, char *s)
{
	if (ss->nowned == ss->owned_alloc) {
		ss->owned_alloc = ss->owned_alloc ? 2 * ss->owned_alloc : 16;
		ss->owned = sp_xrealloc(ss->owned, ss->owned_alloc * sizeof(*ss->owned));
	}
	ss->owned[ss->nowned++] = s;
	return s;
}

static void on_service_state(void *ud, size_t i, enum sp_service_state state, const char *detail)
{
	struct stage_services *ss = ud;
	struct sp_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_SERVICE;
	ev.stage = ss->r->current;
	ev.service = ss->specs[i].name;
	ev.service_state = state;
	ev.message = detail;
	emit(ss->r, &ev);
}

/* Expands a list of pipeline strings into argv (kept in ss). */
static int expand_list(struct stage_services *ss, const struct sp_strlist *l,
		       const struct sp_vars *v, const char *const **out, size_t *n,
		       struct sp_error *err)
{
	const struct sp_pipeline *p = ss->r->o->pipeline;
	const char **argv = (const char **)keep(ss, sp_xcalloc(l->n + 1, sizeof(char *)));
	char *x;
	size_t i;
	int rc;

	for (i = 0; i < l->n; i++) {
		if ((rc = sp_pipeline_expand(p, l->items[i].s, l->items[i].pos, v, &x, err)) < 0)
			return rc;
		argv[i] = keep(ss, x);
	}
	*out = argv;
	*n = l->n;
	return 0;
}

/* The services' specs: variables filled in, targets built. */
static int services_prepare(struct stage_services *ss, const struct sp_stage *st,
			    struct sp_build_opts *bo, struct sp_error *err)
{
	const struct sp_pipeline *p = ss->r->o->pipeline;
	struct sp_vars v = *ss->r->o->vars;
	size_t i, j;
	int rc;

	v.stage = st->name;
	ss->specs = sp_xcalloc(st->nservices + 1, sizeof(*ss->specs));
	ss->n = st->nservices;
	for (i = 0; i < st->nservices; i++) {
		const struct sp_service *sv = &st->services[i];
		struct sp_service_spec *sp = &ss->specs[i];
		const char **env = (const char **)keep(ss, sp_xcalloc(sv->env.n + 1, sizeof(char *)));
		char *x;

		sp->name = sv->name;
		sp->ready_port = sv->ready_port;
		sp->ready_timeout_ms = sv->ready_timeout_ms;
		for (j = 0; j < sv->env.n; j++) {
			const struct sp_pvar *e = &sv->env.items[j];
			if ((rc = sp_pipeline_expand(p, e->value, e->pos, &v, &x, err)) < 0)
				return rc;
			env[j] = keep(ss, sp_xasprintf("%s=%s", e->name, x));
			free(x);
		}
		sp->env = env;
		sp->nenv = sv->env.n;
		if (sv->command_shell && sv->command.n == 1) {
			const char **sh = (const char **)keep(ss, sp_xcalloc(4, sizeof(char *)));
			if ((rc = sp_pipeline_expand(p, sv->command.items[0].s, sv->command.items[0].pos,
						     &v, &x, err)) < 0)
				return rc;
			sh[0] = "/bin/sh";
			sh[1] = "-c";
			sh[2] = keep(ss, x);
			sp->cmd = sh;
			sp->ncmd = 3;
		} else if ((rc = expand_list(ss, &sv->command, &v, &sp->cmd, &sp->ncmd, err)) < 0) {
			return rc;
		}
		if ((rc = expand_list(ss, &sv->ready_cmd, &v, &sp->ready_cmd, &sp->nready_cmd,
				      err)) < 0)
			return rc;
		if (sv->image.s) {
			if ((rc = sp_pipeline_expand(p, sv->image.s, sv->image.pos, &v, &x, err)) < 0)
				return rc;
			sp->image = keep(ss, x);
		} else {
			struct sp_build_result br;
			struct sp_build_opts o = *bo;
			memset(&br, 0, sizeof(br));
			o.target = sv->target;
			rc = ss->r->runner->ops->build(ss->r->runner, &o, &br, err);
			if (rc < 0) {
				sp_error_prefix(err, "building target %s of service %s", sv->target,
						sv->name);
				sp_build_result_release(&br);
				return rc;
			}
			note(ss->r, "built %s for service %s: %.19s (%.1fs)", sv->target, sv->name,
			     br.image_id, br.seconds);
			sp->image = keep(ss, br.image_id);
			br.image_id = NULL;
			sp_build_result_release(&br);
		}
	}
	return 0;
}

struct prefixed {
	struct run *r;
	const char *name;
	bool said;           /* the header line is out */
};

static void on_service_log(void *ud, enum sp_log_stream stream, const char *line, size_t len)
{
	struct prefixed *pf = ud;

	(void)stream;
	if (!pf->said)
		note(pf->r, "service %s: its last %d lines of output:", pf->name, SERVICE_LOG_TAIL);
	pf->said = true;
	note(pf->r, "%s | %.*s", pf->name, (int)len, line);
}

/* The last lines of each service's output (masked), when something failed. */
static void services_show_logs(struct stage_services *ss)
{
	struct sp_runner *runner = ss->r->runner;
	struct sp_error err = SP_ERROR_INIT;
	size_t i;

	if (!ss->handle)
		return;
	for (i = 0; i < ss->n; i++) {
		struct prefixed pf = { ss->r, ss->specs[i].name, false };
		if (runner->services->logs(runner, ss->handle, i, SERVICE_LOG_TAIL, on_service_log,
					   &pf, &err) < 0)
			note(ss->r, "service %s: no output: %s", ss->specs[i].name, err.msg);
		sp_error_clear(&err);
	}
}

/*
 * Builds and starts the stage's services and waits until they are ready.
 * 0, or the stage's result when it cannot go on (rep's message set, the
 * services' logs shown).  *mode: the NetworkMode that reaches them.
 */
static enum sp_stage_result services_up(struct stage_services *ss, struct sp_stage_report *rep,
					struct sp_build_opts *bo, struct sp_cancel *cancel,
					const struct sp_build_kv *labels, size_t nlabels,
					const char **mode, struct sp_error *err)
{
	const struct sp_stage *st = rep->stage;
	struct sp_runner *runner = ss->r->runner;
	struct sp_services_opts so;
	char *net;
	size_t failed = 0, k;
	int rc;

	*mode = NULL;
	if (!runner->services) {
		set_message(rep, "the %s runner cannot run services", runner->ops->name);
		return SP_RESULT_ERROR;
	}
	if ((rc = services_prepare(ss, st, bo, err)) < 0) {
		if (rc == SP_ECANCELLED)
			return interrupted(ss->r, rep, cancel, "building a service");
		set_message(rep, "%s", err->msg);
		return rc == SP_EENGINE ? SP_RESULT_ERROR : SP_RESULT_FAILED;
	}
	net = sp_xasprintf("stagepipe-%s-%s", ss->r->o->job_id, st->name);
	for (k = 0; net[k]; k++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", net[k]))
			net[k] = '-';
	memset(&so, 0, sizeof(so));
	so.services = ss->specs;
	so.n = ss->n;
	so.network = ss->r->build.network;
	so.net_name = net;
	so.labels = labels;
	so.nlabels = nlabels;
	so.mask = ss->r->o->mask;
	so.cancel = sp_cancel_check;
	so.cancel_ud = cancel;
	so.state = on_service_state;
	so.state_ud = ss;
	so.log = on_log;
	so.log_ud = ss->r;
	rc = runner->services->up(runner, &so, &ss->handle, &failed, err);
	free(net);
	if (rc == SP_ECANCELLED)
		return interrupted(ss->r, rep, cancel, "starting the services");
	if (rc < 0) {
		set_message(rep, "%s", err->msg);
		services_show_logs(ss);
		return rc == SP_EFAILED ? SP_RESULT_FAILED : SP_RESULT_ERROR;
	}
	*mode = runner->services->network_mode(ss->handle);
	return SP_RESULT_PASSED;
}

/* Removes the services (whatever happened) and frees ss's strings. */
static void services_down(struct stage_services *ss)
{
	struct sp_runner *runner = ss->r->runner;
	struct sp_error err = SP_ERROR_INIT;
	size_t i;

	if (ss->handle) {
		if (runner->services->down(runner, ss->handle, &err) < 0)
			note(ss->r, "services not all removed (`stagepipe prune` removes them): %s",
			     err.msg);
		else
			for (i = 0; i < ss->n; i++)
				on_service_state(ss, i, SP_SERVICE_REMOVED, NULL);
		ss->handle = NULL;
	}
	for (i = 0; i < ss->nowned; i++)
		free(ss->owned[i]);
	free(ss->owned);
	free(ss->specs);
	memset(ss, 0, sizeof(*ss));
}

/* ---- stages in flight together (core/exec/sched.h) ---- */

/* The stage's cancel: a signal (o->cancel), or its gate failed while it
 * was building ahead of its needs. */
static int stage_cancel(void *ud)
{
	struct slot *sl = ud;
	const struct sp_exec_opts *o = sl->view.o;

	if (__atomic_load_n(&sl->abort, __ATOMIC_ACQUIRE))
		return 1;
	return o->cancel ? o->cancel(o->cancel_ud) : 0;
}

static bool signalled(const struct run *r)
{
	return r->o->cancel && r->o->cancel(r->o->cancel_ud);
}

/* rep's message for a stage that does not run because of need (or,
 * need == SIZE_MAX, because the pipeline stopped). */
static void skip_message(struct run *r, struct sp_stage_report *rep, size_t need)
{
	const struct sp_sched_stage *d;

	if (need == SIZE_MAX) {
		set_message(rep, "not run: the pipeline stopped");
		return;
	}
	d = &r->sh->sst[need];
	set_message(rep, "needs %s, which %s", r->o->pipeline->stages[need].name,
		    d->result == SP_RESULT_SKIPPED ? "was skipped" :
		    d->result == SP_RESULT_FAILED ? "failed" : "did not pass");
}

/* Under sh->lock: stop the builds of stages ahead whose gate failed. */
static void abort_failed_ahead(struct shared *sh)
{
	size_t i, need;

	for (i = 0; i < sh->sched.n; i++)
		if (sh->sst[i].state == SP_SCHED_AHEAD &&
		    sp_sched_gate(&sh->sched, i, &need) == SP_SCHED_GATE_FAIL)
			__atomic_store_n(&sh->slots[i].abort, 1, __ATOMIC_RELEASE);
}

/* A stage built ahead of its needs is discarded: neither tagged nor
 * pushed, its image not reported. */
static enum sp_stage_result discard_ahead(struct run *r, struct sp_stage_report *rep,
					  size_t need)
{
	size_t i;

	skip_message(r, rep, need);
	note(r, "%s: the image built ahead is discarded, nothing tagged or pushed", rep->message);
	free(rep->image_id);
	rep->image_id = NULL;
	for (i = 0; i < rep->nrefs; i++)
		free(rep->refs[i]);
	rep->nrefs = 0;
	return SP_RESULT_SKIPPED;
}

/*
 * The gate of a stage started ahead of its needs (after its build):
 * waits until they finished.  PASSED: go on (the time waited does not
 * count against the stage's timeout); SKIPPED when one did not pass or
 * the pipeline stopped (the image discarded); CANCELLED on a signal.
 */
static enum sp_stage_result wait_needs(struct run *r, struct sp_stage_report *rep,
				       struct sp_cancel *cancel)
{
	struct shared *sh = r->sh;
	size_t idx = r->slot->idx, need = SIZE_MAX, j;
	const struct sp_stage *st = rep->stage;
	enum sp_sched_gate gate;
	int64_t t0 = sp_cancel_now_ms();
	bool said = false;
	struct sp_buf names = SP_BUF_INIT;

	pthread_mutex_lock(&sh->lock);
	if (sh->sst[idx].state != SP_SCHED_AHEAD) {
		pthread_mutex_unlock(&sh->lock);
		return SP_RESULT_PASSED;
	}
	while ((gate = sp_sched_gate(&sh->sched, idx, &need)) == SP_SCHED_GATE_WAIT &&
	       !signalled(r)) {
		struct timespec ts;

		if (!said) {
			for (j = 0; j < st->needs.n; j++)
				if (sh->sst[st->needs_idx[j]].state != SP_SCHED_DONE)
					sp_buf_addf(&names, "%s%s", names.len ? ", " : "",
						    r->o->pipeline->stages[st->needs_idx[j]].name);
			pthread_mutex_unlock(&sh->lock);
			note(r, "built ahead; waiting for %s before going on", names.data);
			sp_buf_release(&names);
			said = true;
			pthread_mutex_lock(&sh->lock);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&sh->cond, &sh->lock, &ts);
	}
	if (gate == SP_SCHED_GATE_GO) {
		sh->sst[idx].state = SP_SCHED_RUNNING;
		pthread_cond_broadcast(&sh->cond);
	}
	pthread_mutex_unlock(&sh->lock);
	if (gate == SP_SCHED_GATE_WAIT) {
		cancel->reason = SP_ECANCELLED;
		return interrupted(r, rep, cancel, "waiting for its needs");
	}
	if (gate == SP_SCHED_GATE_FAIL)
		return discard_ahead(r, rep, need);
	if (cancel->deadline_ms)
		cancel->deadline_ms += sp_cancel_now_ms() - t0;
	if (said)
		note(r, "needs passed: going on");
	return SP_RESULT_PASSED;
}

static enum sp_stage_result run_stage(struct run *r, size_t idx, struct sp_error *err)
{
	const struct sp_exec_opts *o = r->o;
	const struct sp_pipeline *p = o->pipeline;
	const struct sp_stage *st = &p->stages[idx];
	struct sp_stage_report *rep = &r->reports[idx];
	struct plan *pl = &r->plans[idx];
	/* a stage started ahead of its needs is also stopped when they fail */
	struct sp_cancel cancel = { o->cancel, o->cancel_ud, 0, 0 };
	struct sp_build_opts bo;
	struct sp_build_result br;
	struct sp_run_opts ro;
	struct sp_run_result res;
	struct sp_build_kv labels[5];
	size_t nlabels = 4;
	char **cmd = NULL, *reports = NULL, *stage_dir = NULL, *artifacts_dest = NULL;
	char *image = NULL;
	struct pytest_log pyl = { NULL, NULL, NULL, SP_PYTHON_BOOT_INIT };
	const char **env = NULL, **artifact_paths = NULL;
	struct sp_build_kv *args = NULL;
	size_t ncmd = 0, nenv = 0, i;
	enum sp_stage_result result = SP_RESULT_PASSED;
	struct stage_services svc;
	const char *svc_mode = NULL;
	int rc;

	memset(&br, 0, sizeof(br));
	memset(&svc, 0, sizeof(svc));
	svc.r = r;
	if (r->slot && r->slot->ahead) {
		cancel.fn = stage_cancel;
		cancel.ud = r->slot;
	}
	cancel.deadline_ms = sp_cancel_now_ms() + st->timeout_ms;
	labels[0].name = "io.stagepipe.job";
	labels[0].value = o->job_id;
	labels[1].name = "io.stagepipe.pipeline";
	labels[1].value = p->name;
	labels[2].name = "io.stagepipe.stage";
	labels[2].value = st->name;
	labels[3].name = "io.stagepipe.owner";
	labels[3].value = o->owner ? o->owner : "";
	if (o->agent) {
		labels[nlabels].name = "io.stagepipe.agent";
		labels[nlabels++].value = o->agent;
	}

	/* build */
	memset(&bo, 0, sizeof(bo));
	bo.context_dir = r->build.context_dir;
	bo.dockerfile = p->build.dockerfile;
	bo.target = st->target;
	/* tagged only once tests and health check passed (promote) */
	bo.args = pl->bargs ? pl->bargs : r->build.args;
	bo.nargs = pl->bargs ? pl->nbargs : r->build.nargs;
	bo.cache_from = (const char *const *)r->build.cache_from;
	bo.ncache_from = r->build.ncache_from;
	if (st->push && !o->no_push) {
		/* the pushed image carries its cache for another machine's cache_from */
		args = sp_xcalloc(bo.nargs + 1, sizeof(*args));
		memcpy(args, bo.args, bo.nargs * sizeof(*args));
		for (i = 0; i < bo.nargs && strcmp(args[i].name, SP_INLINE_CACHE_ARG); i++)
			;
		if (i == bo.nargs) {
			args[i].name = SP_INLINE_CACHE_ARG;
			args[i].value = "1";
			bo.args = args;
			bo.nargs++;
		}
	}
	bo.labels = labels;
	bo.nlabels = 3;  /* not the owner: images outlive the run */
	bo.network = r->build.network;
	bo.no_cache = p->build.no_cache;
	bo.pull = p->build.pull;
	bo.cancel = sp_cancel_check;
	bo.cancel_ud = &cancel;
	bo.log = on_log;
	bo.log_ud = r;
	rc = r->runner->ops->build(r->runner, &bo, &br, err);
	if (rc == SP_ECANCELLED) {
		result = interrupted(r, rep, &cancel, "building");
		goto out;
	}
	if (rc == SP_EFAILED || rc == SP_ECONFIG) {
		set_message(rep, "%s", err->msg);
		result = SP_RESULT_FAILED;
		goto out;
	}
	if (rc < 0) {
		set_message(rep, "%s", err->msg);
		result = SP_RESULT_ERROR;
		goto out;
	}
	assert(br.image_id);  /* a runner's build returns an image on success */
	rep->image_id = sp_xstrdup(br.image_id);
	note(r, "built %s: %.19s (%.1fs, context %llu files)", st->target, br.image_id,
	     br.seconds, br.context_files);
	if ((result = wait_needs(r, rep, &cancel)) != SP_RESULT_PASSED)
		goto out;
	rep->refs = sp_xcalloc(pl->ntags + 1, sizeof(*rep->refs));
	for (i = 0; i < pl->ntags; i++)
		rep->refs[rep->nrefs++] = sp_xstrdup(pl->tags[i]);
	if (st->kind == SP_STAGE_BUILD) {
		result = promote(r, rep, pl, &cancel, labels, nlabels, err);
		goto out;
	}

	if (st->nservices &&
	    (result = services_up(&svc, rep, &bo, &cancel, labels, nlabels, &svc_mode, err)) !=
	    SP_RESULT_PASSED)
		goto out;

	/* run the command */
	cmd = sp_xcalloc(pl->nargs + 8, sizeof(*cmd));
	if (st->kind == SP_STAGE_PYTEST) {
		/* `python3 -m pytest ARGS`, the interpreter found by the
		 * container itself (core/exec/python.h) */
		cmd[ncmd++] = sp_xstrdup(st->python ? st->python : "python3");
		cmd[ncmd++] = sp_xstrdup("-c");
		cmd[ncmd++] = sp_xstrdup(sp_python_boot_script);
		cmd[ncmd++] = sp_python_boot_mode(st, cmd[0], 0);
		for (i = 0; i < pl->nargs; i++)
			cmd[ncmd++] = sp_xstrdup(pl->args[i]);
		cmd[ncmd++] = sp_xstrdup("--junitxml=" SP_REPORTS_DIR "/junit.xml");
		if (sp_stage_measures_coverage(st))
			cmd[ncmd++] = sp_xstrdup("--cov-report=xml:" SP_REPORTS_DIR "/coverage.xml");
		stage_dir = sp_xasprintf("%s/%s", o->work_dir, st->name);
		reports = sp_xasprintf("%s/reports", stage_dir);
		if (mkdir(stage_dir, 0755) < 0 && errno != EEXIST) {
			sp_error_set(err, SP_ERROR, "creating %s: %s", stage_dir, strerror(errno));
			set_message(rep, "%s", err->msg);
			result = SP_RESULT_ERROR;
			goto out;
		}
	} else if (st->run_shell) {
		cmd[ncmd++] = sp_xstrdup("/bin/sh");
		cmd[ncmd++] = sp_xstrdup("-c");
		cmd[ncmd++] = sp_xstrdup(pl->args[0]);
	} else {
		for (i = 0; i < pl->nargs; i++)
			cmd[ncmd++] = sp_xstrdup(pl->args[i]);
	}
	/* the stage's env, then the secrets (the loader keeps their names apart) */
	env = sp_xcalloc(pl->nenv + o->nsecret_env + 1, sizeof(*env));
	for (i = 0; i < pl->nenv; i++)
		env[nenv++] = pl->env[i];
	for (i = 0; i < o->nsecret_env; i++)
		env[nenv++] = o->secret_env[i];
	memset(&ro, 0, sizeof(ro));
	ro.image = br.image_id;
	ro.cmd = (const char *const *)cmd;
	ro.ncmd = ncmd;
	ro.env = env;
	ro.nenv = nenv;
	ro.mask = o->mask;
	ro.network = r->build.network;
	ro.network_mode = svc_mode;  /* NULL without services */
	ro.user = st->user;
	ro.workdir = st->workdir;
	ro.memory = st->memory;
	ro.nano_cpus = st->nano_cpus;
	ro.labels = labels;
	ro.nlabels = nlabels;
	ro.reports_dir = reports ? SP_REPORTS_DIR : NULL;
	ro.reports_dest = reports;
	ro.cancel = sp_cancel_check;
	ro.cancel_ud = &cancel;
	ro.log = on_log;
	ro.log_ud = r;
	plan_artifacts(r, st, &ro, &artifacts_dest, &artifact_paths);
	memset(&res, 0, sizeof(res));
	if (st->kind == SP_STAGE_PYTEST)
		rc = run_pytest(r, st, br.image_id, &ro, cmd, &pyl, &res, err);
	else
		rc = r->runner->ops->run(r->runner, &ro, &res, err);
	if (rc == 0)
		report_artifacts(r, rep, &res, artifacts_dest);
	if (rc == SP_EFAILED) {
		/* the command could not even start: the stage's own fault */
		set_message(rep, "%s", err->msg);
		result = SP_RESULT_FAILED;
		goto out;
	}
	if (rc == SP_ECANCELLED) {
		result = interrupted(r, rep, &cancel, st->kind != SP_STAGE_PYTEST ?
				     "running the command" :
				     pyl.boot.state == SP_PYTHON_BOOTING ?
				     "looking for the Python interpreter" : "running the tests");
		goto out;
	}
	if (rc < 0) {
		set_message(rep, "%s", err->msg);
		result = SP_RESULT_ERROR;
		goto out;
	}
	if (st->kind == SP_STAGE_PYTEST && pyl.boot.state == SP_PYTHON_STOPPED) {
		/* no test ran: no reports to read */
		image = sp_python_image_name(st->target, br.image_id);
		(void)sp_python_stopped(&pyl.boot, st, image, err);
		set_message(rep, "%s", err->msg);
		result = SP_RESULT_FAILED;
		goto out;
	}
	if (st->kind == SP_STAGE_PYTEST && pyl.boot.state == SP_PYTHON_BOOTING) {
		char *line = sp_python_describe(&pyl.boot.info, st, cmd[0]);
		note(r, "%s", line);
		free(line);
	}
	rep->has_exit_code = true;
	rep->exit_code = res.exit_code;
	if (st->kind == SP_STAGE_PYTEST) {
		if (res.reports_copied)
			read_reports(r, rep, reports);
		result = judge_pytest(rep, st, &res);
	} else if (res.exit_code != 0) {
		set_message(rep, "command exited %d%s", res.exit_code,
			    res.oom_killed ? " (out of memory)" : "");
		result = SP_RESULT_FAILED;
	}
	if (svc.handle && (result == SP_RESULT_FAILED || result == SP_RESULT_ERROR))
		services_show_logs(&svc);
	services_down(&svc);  /* before the health check and pushes: not needed there */
	svc.r = r;
	if (result == SP_RESULT_PASSED)
		result = promote(r, rep, pl, &cancel, labels, nlabels, err);
out:
	services_down(&svc);
	for (i = 0; cmd && i < ncmd; i++)
		free(cmd[i]);
	free(cmd);
	free(env);
	free(reports);
	free(stage_dir);
	free(artifacts_dest);
	free(artifact_paths);
	free(args);
	free(image);
	sp_python_info_release(&pyl.boot.info);
	sp_build_result_release(&br);
	return result;
}

/* ---- the pipeline ---- */

static void finish_stage(struct run *r, size_t idx, enum sp_stage_result result, double start)
{
	struct sp_stage_report *rep = &r->reports[idx];
	struct sp_event ev;

	rep->result = result;
	rep->seconds = start > 0 ? now_secs() - start : 0;
	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_STAGE_FINISHED;
	ev.stage = rep->stage;
	ev.report = rep;
	emit(r, &ev);
}

/* A started stage, from its STAGE_STARTED to its STAGE_FINISHED; in its
 * own thread (with its own runner) when stages run concurrently. */
static void *stage_main(void *ud)
{
	struct slot *sl = ud;
	struct run *r = &sl->view;
	struct shared *sh = r->sh;
	struct sp_stage_report *rep = &r->reports[sl->idx];
	struct sp_error err = SP_ERROR_INIT;
	enum sp_stage_result res;
	size_t need = SIZE_MAX;

	res = run_stage(r, sl->idx, &err);
	if (res == SP_RESULT_CANCELLED && __atomic_load_n(&sl->abort, __ATOMIC_ACQUIRE) &&
	    !signalled(r)) {
		/* its build was stopped: a need did not pass */
		pthread_mutex_lock(&sh->lock);
		(void)sp_sched_gate(&sh->sched, sl->idx, &need);
		pthread_mutex_unlock(&sh->lock);
		res = discard_ahead(r, rep, need);
	}
	finish_stage(r, sl->idx, res, sl->t0);
	pthread_mutex_lock(&sh->lock);
	sh->sst[sl->idx].state = SP_SCHED_DONE;
	sh->sst[sl->idx].result = res;
	if (res == SP_RESULT_CANCELLED || res == SP_RESULT_ERROR)
		sh->sched.stop = true;
	abort_failed_ahead(sh);
	pthread_cond_broadcast(&sh->cond);
	pthread_mutex_unlock(&sh->lock);
	if (r->runner != r->o->runner)
		r->runner->ops->free(r->runner);
	r->runner = NULL;
	sp_error_clear(&err);
	return NULL;
}

/* The stages: started as sp_sched_next says, each in its slot. */
static void run_stages(struct run *r)
{
	const struct sp_exec_opts *o = r->o;
	const struct sp_pipeline *p = o->pipeline;
	struct shared *sh = r->sh;
	enum sp_sched_action act;
	enum sp_sched_skip why;
	struct sp_event ev;
	size_t idx, need, i, nbatch = 0;
	size_t *batch = sp_xcalloc(p->nstages + 1, sizeof(*batch));
	bool threads = sh->sched.jobs > 1;

	pthread_mutex_lock(&sh->lock);
	while ((act = sp_sched_next(&sh->sched, &idx, &why, &need)) != SP_SCHED_END) {
		struct slot *sl = &sh->slots[idx];

		if (act == SP_SCHED_WAIT && !nbatch) {
			pthread_cond_wait(&sh->cond, &sh->lock);
			continue;
		}
		if (act == SP_SCHED_WAIT) {
			/* what can start now starts together: every header out
			 * before the first line of output (the terminal's
			 * prefixes are decided from the first) */
			pthread_mutex_unlock(&sh->lock);
			for (i = 0; i < nbatch; i++) {
				memset(&ev, 0, sizeof(ev));
				ev.kind = SP_EVENT_STAGE_STARTED;
				ev.stage = &p->stages[batch[i]];
				emit(&sh->slots[batch[i]].view, &ev);
			}
			for (i = 0; i < nbatch; i++) {
				sl = &sh->slots[batch[i]];
				sl->t0 = now_secs();
				if (threads) {
					/* its own connection: a runner is not shared between threads */
					sl->view.runner = o->runner->ops->sibling(o->runner);
					if (pthread_create(&sl->thread, NULL, stage_main, sl) == 0)
						sl->threaded = true;
					else
						stage_main(sl);  /* no thread to be had: here, then */
				} else {
					stage_main(sl);
				}
			}
			nbatch = 0;
			pthread_mutex_lock(&sh->lock);
			continue;
		}
		sl->view = *r;
		sl->view.current = &p->stages[idx];
		sl->view.slot = sl;
		sl->view.runner = o->runner;
		sl->idx = idx;
		if (act == SP_SCHED_SKIP) {
			sh->sst[idx].state = SP_SCHED_DONE;
			sh->sst[idx].result = SP_RESULT_SKIPPED;
			if (why == SP_SCHED_SKIP_UNSELECTED)
				set_message(&r->reports[idx], "not selected (--stage %s)", o->only_stage);
			else
				skip_message(r, &r->reports[idx],
					     why == SP_SCHED_SKIP_NEED ? need : SIZE_MAX);
			abort_failed_ahead(sh);
			pthread_mutex_unlock(&sh->lock);
			finish_stage(&sl->view, idx, SP_RESULT_SKIPPED, 0);
			pthread_mutex_lock(&sh->lock);
			continue;
		}
		sh->sst[idx].state = act == SP_SCHED_RUN ? SP_SCHED_RUNNING : SP_SCHED_AHEAD;
		sl->ahead = act == SP_SCHED_GO_AHEAD;
		batch[nbatch++] = idx;
	}
	pthread_mutex_unlock(&sh->lock);
	for (i = 0; i < p->nstages; i++)
		if (sh->slots[i].threaded)
			pthread_join(sh->slots[i].thread, NULL);
	free(batch);
}

int sp_executor_run(const struct sp_exec_opts *o, struct sp_error *err)
{
	const struct sp_pipeline *p = o->pipeline;
	struct run r;
	struct shared sh;
	struct sp_event ev;
	double start = now_secs();
	enum sp_stage_result overall = SP_RESULT_PASSED;
	const char *why = NULL;
	size_t i, j;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.lock, NULL);
	pthread_mutex_init(&sh.ev_lock, NULL);
	pthread_mutex_init(&sh.permit_lock, NULL);
	pthread_cond_init(&sh.cond, NULL);
	r.o = o;
	r.sh = &sh;
	r.runner = o->runner;
	r.reports = sp_xcalloc(p->nstages, sizeof(*r.reports));
	r.plans = sp_xcalloc(p->nstages, sizeof(*r.plans));
	sh.sst = sp_xcalloc(p->nstages + 1, sizeof(*sh.sst));
	sh.slots = sp_xcalloc(p->nstages + 1, sizeof(*sh.slots));
	for (i = 0; i < p->nstages; i++)
		r.reports[i].stage = &p->stages[i];
	if ((rc = plan(&r, err)) < 0)
		goto out;
	for (i = 0; i < p->nstages; i++) {
		sh.sst[i].needs = p->stages[i].needs_idx;
		sh.sst[i].nneeds = p->stages[i].needs.n;
		sh.sst[i].selected = r.plans[i].selected;
	}
	sh.sched.stages = sh.sst;
	sh.sched.n = p->nstages;
	sh.sched.order = p->order;
	/* concurrent stages need a connection each */
	sh.sched.jobs = o->jobs > 1 && o->runner->ops->sibling ? o->jobs : 1;
	sh.sched.ahead = true;

	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_PIPELINE_STARTED;
	emit(&r, &ev);

	run_stages(&r);

	/* the worst result decides: cancelled > error > failed > passed */
	for (i = 0; i < p->nstages; i++) {
		const struct sp_stage_report *rep = &r.reports[i];
		if (rep->result == SP_RESULT_CANCELLED) {
			overall = SP_RESULT_CANCELLED;
			why = rep->message;
		} else if (rep->result == SP_RESULT_ERROR && overall != SP_RESULT_CANCELLED) {
			overall = SP_RESULT_ERROR;
			why = rep->message;
		} else if (rep->result == SP_RESULT_FAILED && overall == SP_RESULT_PASSED) {
			overall = SP_RESULT_FAILED;
			why = rep->message;
		}
	}
	switch (overall) {
	case SP_RESULT_CANCELLED:
		rc = sp_error_set(err, SP_ECANCELLED, "interrupted");
		break;
	case SP_RESULT_ERROR:
		rc = sp_error_set(err, SP_EENGINE, "%s", why ? why : "infrastructure error");
		break;
	case SP_RESULT_FAILED:
		rc = sp_error_set(err, SP_EFAILED, "%s", why ? why : "a stage failed");
		break;
	default:
		rc = 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_PIPELINE_FINISHED;
	ev.result = overall;
	ev.seconds = now_secs() - start;
	ev.reports = r.reports;
	ev.nreports = p->nstages;
	ev.message = rc < 0 ? err->msg : NULL;
	emit(&r, &ev);
out:
	for (i = 0; i < p->nstages; i++) {
		struct plan *pl = &r.plans[i];
		for (j = 0; j < pl->ntags; j++)
			free(pl->tags[j]);
		free(pl->tags);
		for (j = 0; j < pl->nenv; j++)
			free(pl->env[j]);
		free(pl->env);
		for (j = 0; j < pl->nargs; j++)
			free(pl->args[j]);
		free(pl->args);
		free(pl->bargs);
		free(pl->mnames);
		free(pl->mvalues);
		sp_stage_report_release(&r.reports[i]);
	}
	free(r.plans);
	free(r.reports);
	free(sh.sst);
	free(sh.slots);
	pthread_cond_destroy(&sh.cond);
	pthread_mutex_destroy(&sh.permit_lock);
	pthread_mutex_destroy(&sh.ev_lock);
	pthread_mutex_destroy(&sh.lock);
	sp_build_settings_release(&r.build);
	return rc;
}

void sp_executor_skip(const struct sp_exec_opts *o, const char *why)
{
	const struct sp_pipeline *p = o->pipeline;
	struct sp_stage_report *reports = sp_xcalloc(p->nstages + 1, sizeof(*reports));
	struct run r;
	struct sp_event ev;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.o = o;
	for (i = 0; i < p->nstages; i++) {
		reports[i].stage = &p->stages[i];
		reports[i].result = SP_RESULT_SKIPPED;
		set_message(&reports[i], "%s", why);
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_PIPELINE_STARTED;
	emit(&r, &ev);
	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_EVENT_PIPELINE_FINISHED;
	ev.result = SP_RESULT_SKIPPED;
	ev.seconds = 0;
	ev.reports = reports;
	ev.nreports = p->nstages;
	ev.message = why;
	emit(&r, &ev);
	for (i = 0; i < p->nstages; i++)
		sp_stage_report_release(&reports[i]);
	free(reports);
}
