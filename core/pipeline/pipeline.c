/*
 * pipeline.c — load and check a pipeline file; see pipeline.h.
 *
 * Two passes over the YAML tree (core/yaml/ydoc.c): the first reads each
 * mapping against its list of allowed keys into the model, reporting
 * type errors where they are; the second checks what spans stages (names,
 * needs, order).  Problems are collected, not fatal, so a user sees all of
 * them at once; a YAML syntax error stops early because nothing after it
 * can be trusted.
 */
#include "core/pipeline/pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/duration.h"
#include "core/base/error.h"
#include "core/base/glob.h"
#include "core/registry/imageref.h"
#include "core/base/suggest.h"
#include "core/pipeline/vars.h"
#include "core/base/xalloc.h"
#include "core/pipeline/artifact.h"
#include "core/yaml/ydoc.h"

#define STAGE_NAME_MAX 63

struct loader {
	struct sp_diags *diags;
	const struct sp_vars *env;
	struct sp_pipeline *p;
};

static const char *const top_keys[] = {
	"version", "name", "build", "checkout", "stages", "on", "runs_on", "secrets", NULL,
};
static const char *const checkout_keys[] = { "submodules", NULL };
static const char *const build_keys[] = {
	"context", "dockerfile", "args", "network", "no_cache", "pull", "cache_from", NULL,
};
static const char *const stage_keys[] = {
	"name", "target", "pytest", "run", "coverage", "timeout", "env", "needs",
	"tags", "push", "healthcheck", "allow_no_tests", "user", "workdir", "memory", "cpus",
	"artifacts", "matrix", "python", "services", NULL,
};
static const char *const service_keys[] = {
	"name", "image", "target", "env", "command", "ready", NULL,
};
static const char *const ready_keys[] = { "port", "cmd", "timeout", NULL };
static const char *const coverage_keys[] = { "min", NULL };
static const char *const health_keys[] = { "port", "path", "timeout", NULL };
static const char *const on_keys[] = { "push", "tag", "pull_request", NULL };
static const char *const branch_keys[] = { "branches", NULL };

#define AT(node) (node)->line, (node)->col

static struct sp_pos pos_of(const struct sp_ynode *n)
{
	struct sp_pos p = { n->line, n->col };
	return p;
}

static void strlist_release(struct sp_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->items[i].s);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void varlist_release(struct sp_varlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->items[i].name);
		free(l->items[i].value);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* ---- typed readers: each reports its own error and returns false ---- */

static bool want_map(struct loader *L, const struct sp_ynode *n, const char *what)
{
	if (n->kind == SP_YMAP)
		return true;
	sp_diags_add(L->diags, AT(n), "%s must be a mapping, not %s", what, sp_ynode_kind_name(n));
	return false;
}

static bool get_string(struct loader *L, const struct sp_ynode *n, const char *what, char **out)
{
	if (n->kind != SP_YSCALAR || sp_ynode_is_null(n)) {
		sp_diags_add(L->diags, AT(n), "%s must be a string, not %s", what,
			     sp_ynode_kind_name(n));
		return false;
	}
	free(*out);
	*out = sp_xstrdup(n->value);
	return true;
}

static bool get_nonempty(struct loader *L, const struct sp_ynode *n, const char *what, char **out)
{
	if (!get_string(L, n, what, out))
		return false;
	if (**out)
		return true;
	sp_diags_add(L->diags, AT(n), "%s must not be empty", what);
	return false;
}

static bool get_bool(struct loader *L, const struct sp_ynode *n, const char *what, bool *out)
{
	if (n->kind == SP_YSCALAR && n->plain) {
		if (!strcasecmp(n->value, "true")) {
			*out = true;
			return true;
		}
		if (!strcasecmp(n->value, "false")) {
			*out = false;
			return true;
		}
	}
	sp_diags_add(L->diags, AT(n), "%s must be true or false, not %s", what,
		     sp_ynode_kind_name(n));
	return false;
}

static bool get_number(struct loader *L, const struct sp_ynode *n, const char *what, double *out)
{
	char *end;
	double v;

	if (n->kind == SP_YSCALAR && n->plain && n->len) {
		errno = 0;
		v = strtod(n->value, &end);
		if (!*end && !errno && isfinite(v)) {
			*out = v;
			return true;
		}
	}
	sp_diags_add(L->diags, AT(n), "%s must be a number, not %s", what, sp_ynode_kind_name(n));
	return false;
}

static bool get_duration(struct loader *L, const struct sp_ynode *n, const char *what, int64_t *out)
{
	char why[128];

	if (n->kind != SP_YSCALAR || sp_ynode_is_null(n)) {
		sp_diags_add(L->diags, AT(n), "%s must be a duration like 15m, 90s or 1h30m, not %s",
			     what, sp_ynode_kind_name(n));
		return false;
	}
	if (sp_duration_parse(out, n->value, why, sizeof(why)) < 0) {
		sp_diags_add(L->diags, AT(n), "invalid %s \"%s\": %s", what, n->value, why);
		return false;
	}
	return true;
}

/* A size like 512m, 2g, 1048576 (bytes); Docker needs at least 6 MiB. */
static bool get_memory(struct loader *L, const struct sp_ynode *n, int64_t *out)
{
	const char *p;
	int64_t v = 0, mult = 1;

	if (n->kind != SP_YSCALAR || !n->len || !isdigit((unsigned char)n->value[0]))
		goto bad;
	for (p = n->value; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (*p - '0');
		if (v > ((int64_t)1 << 50))
			goto bad;
	}
	switch (tolower((unsigned char)*p)) {
	case '\0': break;
	case 'b': p++; break;
	case 'k': mult = 1024; p++; break;
	case 'm': mult = 1024 * 1024; p++; break;
	case 'g': mult = 1024 * 1024 * 1024; p++; break;
	default: goto bad;
	}
	if (*p)
		goto bad;
	/* the digit loop caps v at 2^50, which a g suffix can still overflow */
	if (v > INT64_MAX / mult)
		goto bad;
	v *= mult;
	if (v < 6 * 1024 * 1024) {
		sp_diags_add(L->diags, AT(n), "memory must be at least 6m (Docker's minimum)");
		return false;
	}
	*out = v;
	return true;
bad:
	sp_diags_add(L->diags, AT(n), "memory must be a size like 512m or 2g, not \"%s\"",
		     n->kind == SP_YSCALAR ? n->value : sp_ynode_kind_name(n));
	return false;
}

/* Checks the ${...} in a scalar, pointing at the bad one. */
static bool check_vars(struct loader *L, const struct sp_ynode *n)
{
	struct sp_error err = SP_ERROR_INIT;
	size_t off = 0;

	if (sp_vars_check(n->value, &off, &err) == 0)
		return true;
	/* exact column when the value sits on one line as written */
	if (!memchr(n->value, '\n', off))
		sp_diags_add(L->diags, n->line, n->col + (n->plain ? 0 : 1) + (int)off, "%s", err.msg);
	else
		sp_diags_add(L->diags, AT(n), "%s", err.msg);
	return false;
}

/* A string or a list of strings (a lone string becomes a list of one). */
static bool get_strlist(struct loader *L, const struct sp_ynode *n, const char *what,
			struct sp_strlist *out, bool allow_scalar, bool vars)
{
	const struct sp_ynode *const *items = &n;
	size_t count = 1, i;
	bool ok = true;

	if (n->kind == SP_YSEQ) {
		items = (const struct sp_ynode *const *)n->items;
		count = n->n;
	} else if (n->kind != SP_YSCALAR || !allow_scalar || sp_ynode_is_null(n)) {
		sp_diags_add(L->diags, AT(n), "%s must be a list%s, not %s", what,
			     allow_scalar ? " or a string" : "", sp_ynode_kind_name(n));
		return false;
	}
	strlist_release(out);  /* "pytest" then "run": the last one is kept */
	out->items = sp_xcalloc(count, sizeof(*out->items));
	for (i = 0; i < count; i++) {
		const struct sp_ynode *it = items[i];
		if (it->kind != SP_YSCALAR || sp_ynode_is_null(it)) {
			sp_diags_add(L->diags, AT(it), "each item of %s must be a string, not %s",
				     what, sp_ynode_kind_name(it));
			ok = false;
			continue;
		}
		if (vars && !check_vars(L, it))
			ok = false;
		out->items[out->n].s = sp_xstrdup(it->value);
		out->items[out->n].pos = pos_of(it);
		out->n++;
	}
	return ok;
}

static bool env_name_ok(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* NAME: value mapping (env, build args); values may hold variables. */
static bool get_varlist(struct loader *L, const struct sp_ynode *n, const char *what,
			struct sp_varlist *out)
{
	size_t i;
	bool ok = true;

	if (!want_map(L, n, what))
		return false;
	varlist_release(out);
	out->items = sp_xcalloc(n->n / 2 + 1, sizeof(*out->items));
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		struct sp_pvar *pv;
		if (!env_name_ok(k->value)) {
			sp_diags_add(L->diags, AT(k),
				     "invalid name \"%s\" in %s (letters, digits and _; "
				     "not starting with a digit)", k->value, what);
			ok = false;
			continue;
		}
		if (v->kind != SP_YSCALAR || sp_ynode_is_null(v)) {
			sp_diags_add(L->diags, AT(v), "%s.%s must be a string, not %s", what,
				     k->value, sp_ynode_kind_name(v));
			ok = false;
			continue;
		}
		if (!check_vars(L, v))
			ok = false;
		pv = &out->items[out->n++];
		pv->name = sp_xstrdup(k->value);
		pv->value = sp_xstrdup(v->value);
		pv->pos = pos_of(v);
	}
	return ok;
}

static void unknown_key(struct loader *L, const struct sp_ynode *key, const char *where,
			const char *const *allowed)
{
	const char *hint = sp_suggest(key->value, allowed);
	struct sp_buf list = SP_BUF_INIT;
	size_t i;

	if (hint) {
		sp_diags_add(L->diags, AT(key), "unknown key \"%s\" in %s; did you mean \"%s\"?",
			     key->value, where, hint);
		return;
	}
	for (i = 0; allowed[i]; i++)
		sp_buf_addf(&list, "%s%s", i ? ", " : "", allowed[i]);
	sp_diags_add(L->diags, AT(key), "unknown key \"%s\" in %s (expected one of: %s)",
		     key->value, where, list.data);
	sp_buf_release(&list);
}

/* ---- sections ---- */

/*
 * The matrix of st as the parallel arrays sp_vars wants; *names and
 * *values are new arrays of borrowed strings the caller frees (both NULL
 * when st has no matrix).
 */
static void matrix_arrays(const struct sp_stage *st, const char ***names, const char ***values)
{
	size_t i;

	*names = *values = NULL;
	if (!st || !st->matrix.n)
		return;
	*names = sp_xcalloc(st->matrix.n, sizeof(**names));
	*values = sp_xcalloc(st->matrix.n, sizeof(**values));
	for (i = 0; i < st->matrix.n; i++) {
		(*names)[i] = st->matrix.items[i].name;
		(*values)[i] = st->matrix.items[i].value;
	}
}

/* Variables for checks at load time: the real environment, sample values
 * for the rest (the stage's matrix, set by the caller, is its own). */
static void sample_vars(struct loader *L, struct sp_vars *v, const struct sp_stage *st)
{
	memset(v, 0, sizeof(*v));
	if (L->env) {
		v->getenv = L->env->getenv;
		v->getenv_ud = L->env->getenv_ud;
	}
	v->pipeline = L->p->name ? L->p->name : "pipeline";
	v->stage = st && st->name ? st->name : "stage";
	v->sample = 1;
}


/* Checks that s is an image reference once variables get sample values;
 * what names the key in messages ("tag", "build.cache_from"). */
static void check_ref(struct loader *L, const struct sp_stage *st, const struct sp_pstr *t,
		      const char *what);

static void load_cache_from(struct loader *L, const struct sp_ynode *n)
{
	struct sp_strlist *l = &L->p->build.cache_from;
	size_t i;

	if (!get_strlist(L, n, "build.cache_from", l, true, true))
		return;
	for (i = 0; i < l->n; i++)
		check_ref(L, NULL, &l->items[i], "build.cache_from");
}

static void load_artifacts(struct loader *L, struct sp_stage *st, const struct sp_ynode *n)
{
	const char *why;
	size_t i;

	if (!get_strlist(L, n, "artifacts", &st->artifacts, true, false))
		return;
	for (i = 0; i < st->artifacts.n; i++) {
		const struct sp_pstr *a = &st->artifacts.items[i];
		if (!sp_artifact_check(a->s, &why))
			sp_diags_add(L->diags, a->pos.line, a->pos.col, "artifact \"%s\" %s", a->s, why);
	}
}

/* build.args are the pipeline's, not a variant's: no ${matrix.KEY} there. */
static void check_build_args_matrix(struct loader *L)
{
	size_t i;

	for (i = 0; i < L->p->build.args.n; i++) {
		const struct sp_pvar *a = &L->p->build.args.items[i];

		if (sp_vars_uses(a->value, "matrix.", false, NULL))
			sp_diags_add(L->diags, a->pos.line, a->pos.col,
				     "build.args.%s uses ${matrix...}: build.args are shared by "
				     "all stages; a stage's matrix keys are given to its build as "
				     "build arguments already", a->name);
	}
}

static void load_build(struct loader *L, const struct sp_ynode *n)
{
	struct sp_pipeline *p = L->p;
	size_t i;

	if (!want_map(L, n, "build"))
		return;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;
	
		if (!strcmp(key, "context")) {
			get_nonempty(L, v, "build.context", &p->build.context);
		} else if (!strcmp(key, "dockerfile")) {
			get_nonempty(L, v, "build.dockerfile", &p->build.dockerfile);
		} else if (!strcmp(key, "args")) {
			get_varlist(L, v, "build.args", &p->build.args);
			check_build_args_matrix(L);
		} else if (!strcmp(key, "network")) {
			if (get_nonempty(L, v, "build.network", &p->build.network.s) && check_vars(L, v)) {
				struct sp_error err = SP_ERROR_INIT;
				struct sp_vars sv;
				enum sp_network net;
				p->build.network.pos = pos_of(v);
				sample_vars(L, &sv, NULL);
				if (sp_pipeline_network(p, &sv, &net, &err) < 0)
					sp_diags_add(L->diags, AT(v), "%s", err.msg);
			}
		} else if (!strcmp(key, "no_cache")) {
			get_bool(L, v, "build.no_cache", &p->build.no_cache);
		} else if (!strcmp(key, "pull")) {
			get_bool(L, v, "build.pull", &p->build.pull);
		} else if (!strcmp(key, "cache_from")) {
			load_cache_from(L, v);
		} else {
			unknown_key(L, k, "build", build_keys);
		}
	}
}

static bool stage_name_ok(const char *s)
{
	size_t len = strlen(s), i;

	if (!len || len > STAGE_NAME_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

static bool target_ok(const char *s)
{
	if (!isalpha((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
			return false;
	return true;
}

static void load_coverage(struct loader *L, struct sp_stage *st, const struct sp_ynode *n,
			  const char *where)
{
	size_t i;

	if (!want_map(L, n, "coverage"))
		return;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		if (!strcmp(k->value, "min")) {
			double d;
			if (!get_number(L, v, "coverage.min", &d))
				continue;
			if (d < 0 || d > 100) {
				sp_diags_add(L->diags, AT(v),
					     "coverage.min must be between 0 and 100, not %s", v->value);
				continue;
			}
			st->coverage_min = d;
			st->has_coverage_min = true;
		} else {
			unknown_key(L, k, where, coverage_keys);
		}
	}
}

static void load_health(struct loader *L, struct sp_stage *st, const struct sp_ynode *n,
			const char *where)
{
	size_t i;

	st->health.timeout_ms = SP_HEALTH_DEFAULT_TIMEOUT_MS;
	if (n->kind == SP_YSCALAR) {
		get_bool(L, n, "healthcheck", &st->health.enabled);
		return;
	}
	if (n->kind != SP_YMAP) {
		sp_diags_add(L->diags, AT(n), "healthcheck must be true, false or a mapping, not %s",
			     sp_ynode_kind_name(n));
		return;
	}
	st->health.enabled = true;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		if (!strcmp(k->value, "port")) {
			double d;
			if (!get_number(L, v, "healthcheck.port", &d))
				continue;
			if (d < 1 || d > 65535 || d != (int)d)
				sp_diags_add(L->diags, AT(v),
					     "healthcheck.port must be a port number (1-65535), not %s",
					     v->value);
			else
				st->health.port = (int)d;
		} else if (!strcmp(k->value, "path")) {
			if (get_string(L, v, "healthcheck.path", &st->health.path) &&
			    st->health.path[0] != '/')
				sp_diags_add(L->diags, AT(v), "healthcheck.path must start with \"/\"");
		} else if (!strcmp(k->value, "timeout")) {
			get_duration(L, v, "healthcheck.timeout", &st->health.timeout_ms);
		} else {
			unknown_key(L, k, where, health_keys);
		}
	}
	if (st->health.path && !st->health.port)
		sp_diags_add(L->diags, AT(n), "healthcheck.path needs healthcheck.port");
	if (st->health.port && !st->health.path)
		st->health.path = sp_xstrdup("/health");
}

/* ---- services ---- */

/* A service name is its host name on the job's network: a DNS label. */
static bool service_name_ok(const char *s)
{
	size_t len = strlen(s);

	return len >= 1 && len <= 63 && (islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])) &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == len && s[len - 1] != '-';
}

static void services_free(struct sp_service *sv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(sv[i].name);
		free(sv[i].image.s);
		free(sv[i].target);
		varlist_release(&sv[i].env);
		strlist_release(&sv[i].command);
		strlist_release(&sv[i].ready_cmd);
	}
	free(sv);
}

static void load_ready(struct loader *L, struct sp_service *sv, const struct sp_ynode *n,
		       const char *where)
{
	size_t i;

	if (!want_map(L, n, "ready"))
		return;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		if (!strcmp(k->value, "port")) {
			double d;
			if (!get_number(L, v, "ready.port", &d))
				continue;
			if (d < 1 || d > 65535 || d != (int)d)
				sp_diags_add(L->diags, AT(v),
					     "ready.port must be a port number (1-65535), not %s", v->value);
			else
				sv->ready_port = (int)d;
		} else if (!strcmp(k->value, "cmd")) {
			if (get_strlist(L, v, "ready.cmd", &sv->ready_cmd, false, true) &&
			    sv->ready_cmd.n == 0)
				sp_diags_add(L->diags, AT(v), "ready.cmd must not be empty");
		} else if (!strcmp(k->value, "timeout")) {
			get_duration(L, v, "ready.timeout", &sv->ready_timeout_ms);
		} else {
			unknown_key(L, k, where, ready_keys);
		}
	}
	if (sv->ready_port && sv->ready_cmd.n)
		sp_diags_add(L->diags, AT(n), "%s: ready has both port and cmd; choose one", where);
}

static void load_service(struct loader *L, struct sp_service *sv, const struct sp_ynode *n,
			 const char *stage_where, size_t idx)
{
	const struct sp_ynode *name = sp_ynode_get(n, "name");
	const struct sp_ynode *image = NULL, *target = NULL;
	char where[2 * STAGE_NAME_MAX + 64];
	size_t i;

	sv->pos = pos_of(n);
	sv->ready_timeout_ms = SP_SERVICE_DEFAULT_READY_MS;
	if (name && name->kind == SP_YSCALAR && service_name_ok(name->value))
		snprintf(where, sizeof(where), "service \"%s\" of %s", name->value, stage_where);
	else
		snprintf(where, sizeof(where), "service %zu of %s", idx + 1, stage_where);
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;

		if (!strcmp(key, "name")) {
			if (get_nonempty(L, v, "service name", &sv->name) && !service_name_ok(sv->name))
				sp_diags_add(L->diags, AT(v),
					     "service name \"%s\" must be a host name: lower case "
					     "letters, digits and '-', starting with a letter or digit, "
					     "at most 63 long", sv->name);
		} else if (!strcmp(key, "image")) {
			image = v;
			if (get_nonempty(L, v, "image", &sv->image.s)) {
				struct sp_imageref ref;
				struct sp_error err = SP_ERROR_INIT;
				sv->image.pos = pos_of(v);
				if (!check_vars(L, v))
					continue;
				if (strchr(sv->image.s, '$'))
					continue;  /* checked once expanded */
				if (sp_imageref_parse(&ref, sv->image.s, &err) < 0)
					sp_diags_add(L->diags, AT(v),
						     "image \"%s\" is not a valid image reference: %s",
						     sv->image.s, err.msg);
				else
					sp_imageref_release(&ref);
			}
		} else if (!strcmp(key, "target")) {
			target = v;
			if (get_nonempty(L, v, "target", &sv->target) && !target_ok(sv->target))
				sp_diags_add(L->diags, AT(v),
					     "target \"%s\" is not a valid Dockerfile stage name", sv->target);
		} else if (!strcmp(key, "env")) {
			get_varlist(L, v, "env", &sv->env);
		} else if (!strcmp(key, "command")) {
			if (get_strlist(L, v, "command", &sv->command, true, true))
				sv->command_shell = v->kind == SP_YSCALAR;
			if (v->kind == SP_YSEQ && v->n == 0)
				sp_diags_add(L->diags, AT(v), "command must not be empty");
		} else if (!strcmp(key, "ready")) {
			load_ready(L, sv, v, where);
		} else {
			unknown_key(L, k, where, service_keys);
		}
	}
	if (!name)
		sp_diags_add(L->diags, AT(n), "%s is missing the required key \"name\"", where);
	if (!image && !target)
		sp_diags_add(L->diags, AT(n),
			     "%s needs \"image\" (an image reference) or \"target\" (a Dockerfile "
			     "stage, built like the stage's own)", where);
	if (image && target)
		sp_diags_add(L->diags, AT(target), "%s has both \"image\" and \"target\"; choose one",
			     where);
}

/* services: [{name, image|target, env, command, ready}, ...] */
static void load_services(struct loader *L, struct sp_stage *st, const struct sp_ynode *n,
			  const char *where)
{
	size_t i, j;

	if (n->kind != SP_YSEQ) {
		sp_diags_add(L->diags, AT(n), "services must be a list of mappings, not %s",
			     sp_ynode_kind_name(n));
		return;
	}
	services_free(st->services, st->nservices);
	st->services = sp_xcalloc(n->n + 1, sizeof(*st->services));
	st->nservices = 0;
	for (i = 0; i < n->n; i++) {
		struct sp_service *sv = &st->services[st->nservices];
		if (!want_map(L, n->items[i], "each service"))
			continue;
		load_service(L, sv, n->items[i], where, i);
		st->nservices++;
		if (!sv->name)
			continue;
		for (j = 0; j + 1 < st->nservices; j++)
			if (st->services[j].name && !strcmp(st->services[j].name, sv->name)) {
				sp_diags_add(L->diags, sv->pos.line, sv->pos.col,
					     "duplicate service name \"%s\" in %s (first at line %d)",
					     sv->name, where, st->services[j].pos.line);
				break;
			}
	}
}

/* Checks that a tag is an image reference once variables are filled in. */
static void check_tag(struct loader *L, const struct sp_stage *st, const struct sp_pstr *t)
{
	check_ref(L, st, t, "tag");
}

static void check_ref(struct loader *L, const struct sp_stage *st, const struct sp_pstr *t,
		      const char *what)
{
	struct sp_error err = SP_ERROR_INIT;
	int rc;
	struct sp_imageref ref;
	struct sp_vars v;
	char *expanded = NULL;
	const char **names, **values;

	sample_vars(L, &v, st);
	matrix_arrays(st, &names, &values);
	v.matrix_names = names;
	v.matrix_values = values;
	v.nmatrix = st ? st->matrix.n : 0;
	rc = sp_vars_expand(&expanded, t->s, &v, NULL, &err);
	free(names);
	free(values);
	if (rc < 0)
		return; /* reported by check_vars, or by check_matrix_refs */
	if (sp_imageref_parse(&ref, expanded, &err) < 0) {
		if (strcmp(expanded, t->s))
			sp_diags_add(L->diags, t->pos.line, t->pos.col,
				     "%s \"%s\" (\"%s\" once expanded) is not a valid image reference: %s",
				     what, t->s, expanded, err.msg);
		else
			sp_diags_add(L->diags, t->pos.line, t->pos.col,
				     "%s \"%s\" is not a valid image reference: %s", what, t->s, err.msg);
	} else {
		sp_imageref_release(&ref);
	}
	free(expanded);
}

bool sp_stage_measures_coverage(const struct sp_stage *st)
{
	size_t i;

	for (i = 0; i < st->args.n; i++)
		if (!strcmp(st->args.items[i].s, "--cov") || !strncmp(st->args.items[i].s, "--cov=", 6))
			return true;
	return false;
}

/*
 * A stage's python: the interpreter's argv[0], looked up on the
 * container's PATH by the engine when it is a name: a name of
 * [A-Za-z0-9._+-] not starting with '-', or an absolute path without
 * spaces or control characters.
 */
static bool python_ok(const char *s)
{
	const char *c;

	if (s[0] == '/') {
		for (c = s; *c; c++)
			if ((unsigned char)*c <= ' ' || *c == 0x7f)
				return false;
		return strlen(s) > 1;
	}
	return s[0] != '-' && s[0] != '.' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") ==
	       strlen(s);
}

/* ---- matrix: ---- */

/* One key of a matrix: its name and its list of values. */
struct axis {
	const struct sp_ynode *key, *values;
};

static bool matrix_value_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 32 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789._+-") == n;
}

/*
 * Reads matrix: {KEY: [v, ...], ...} into ax (room for n->n / 2 keys);
 * returns how many variants it makes, or 0 after reporting what is wrong.
 */
static size_t parse_matrix(struct loader *L, const struct sp_ynode *n, struct axis *ax,
			   size_t *nax)
{
	size_t i, j, m, count = 1;
	bool ok = true;

	*nax = 0;
	if (!want_map(L, n, "matrix"))
		return 0;
	if (n->n == 0) {
		sp_diags_add(L->diags, AT(n), "matrix must not be empty (KEY: [value, ...])");
		return 0;
	}
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];

		if (!env_name_ok(k->value)) {
			sp_diags_add(L->diags, AT(k), "invalid matrix key \"%s\" (a build argument "
				     "name: letters, digits and _; not starting with a digit)", k->value);
			ok = false;
			continue;
		}
		if (v->kind != SP_YSEQ) {
			sp_diags_add(L->diags, AT(v), "matrix.%s must be a list of values, not %s",
				     k->value, sp_ynode_kind_name(v));
			ok = false;
			continue;
		}
		if (v->n == 0) {
			sp_diags_add(L->diags, AT(v), "matrix.%s must not be an empty list", k->value);
			ok = false;
			continue;
		}
		for (j = 0; j < v->n; j++) {
			const struct sp_ynode *it = v->items[j];

			if (it->kind != SP_YSCALAR || sp_ynode_is_null(it)) {
				sp_diags_add(L->diags, AT(it), "each value of matrix.%s must be a "
					     "string or number, not %s", k->value, sp_ynode_kind_name(it));
				ok = false;
				continue;
			}
			if (!matrix_value_ok(it->value)) {
				sp_diags_add(L->diags, AT(it), "matrix.%s value \"%s\" must be 1 to 32 "
					     "of letters, digits, '.', '_', '+' and '-' (it becomes part "
					     "of the stage's name)", k->value, it->value);
				ok = false;
				continue;
			}
			for (m = 0; m < j; m++)
				if (v->items[m]->kind == SP_YSCALAR &&
				    !strcmp(v->items[m]->value, it->value)) {
					sp_diags_add(L->diags, AT(it), "matrix.%s lists \"%s\" twice",
						     k->value, it->value);
					ok = false;
					break;
				}
		}
		ax[*nax].key = k;
		ax[*nax].values = v;
		(*nax)++;
		if (count <= SP_MATRIX_MAX_VARIANTS)
			count *= v->n;
	}
	if (!ok)
		return 0;
	if (count > SP_MATRIX_MAX_VARIANTS) {
		sp_diags_add(L->diags, AT(n), "matrix makes more than %d variants; use fewer "
			     "values or keys", SP_MATRIX_MAX_VARIANTS);
		return 0;
	}
	return count;
}

/*
 * Makes st the variant-th combination of its matrix (last key fastest):
 * fills st->matrix and renames it NAME[v1,v2,...], keeping NAME in group.
 */
static void apply_variant(struct sp_stage *st, const struct axis *ax, size_t nax, size_t variant)
{
	struct sp_buf name = SP_BUF_INIT;
	size_t i, rest = variant;

	st->matrix.items = sp_xcalloc(nax, sizeof(*st->matrix.items));
	st->matrix.n = nax;
	for (i = nax; i-- > 0;) {
		const struct sp_ynode *v = ax[i].values->items[rest % ax[i].values->n];

		rest /= ax[i].values->n;
		st->matrix.items[i].name = sp_xstrdup(ax[i].key->value);
		st->matrix.items[i].value = sp_xstrdup(v->value);
		st->matrix.items[i].pos = pos_of(v);
	}
	sp_buf_addf(&name, "%s[", st->group);
	for (i = 0; i < nax; i++)
		sp_buf_addf(&name, "%s%s", i ? "," : "", st->matrix.items[i].value);
	sp_buf_addstr(&name, "]");
	free(st->name);
	st->name = sp_buf_detach(&name, NULL);
}

/* Reports a ${matrix.KEY} in s that the stage's matrix does not have. */
static void check_matrix_ref(struct loader *L, const struct sp_stage *st, const struct sp_vars *v,
			     const char *s, struct sp_pos pos)
{
	struct sp_error err = SP_ERROR_INIT;
	char *out = NULL;
	size_t off = 0;

	if (!strstr(s, "${matrix."))
		return;
	if (sp_vars_expand(&out, s, v, &off, &err) < 0) {
		if (strstr(err.msg, "matrix"))
			sp_diags_add(L->diags, pos.line, pos.col, "stage \"%s\": %s",
				     st->group ? st->group : "?", err.msg);
	}
	free(out);
}

/* The ${matrix.KEY} of a stage's pytest/run arguments, env and tags. */
static void check_matrix_refs(struct loader *L, const struct sp_stage *st)
{
	const char **names, **values;
	struct sp_vars v;
	size_t i;

	sample_vars(L, &v, st);
	matrix_arrays(st, &names, &values);
	v.matrix_names = names;
	v.matrix_values = values;
	v.nmatrix = st ? st->matrix.n : 0;
	for (i = 0; i < st->args.n; i++)
		check_matrix_ref(L, st, &v, st->args.items[i].s, st->args.items[i].pos);
	for (i = 0; i < st->env.n; i++)
		check_matrix_ref(L, st, &v, st->env.items[i].value, st->env.items[i].pos);
	for (i = 0; i < st->tags.n; i++)
		check_matrix_ref(L, st, &v, st->tags.items[i].s, st->tags.items[i].pos);
	free(names);
	free(values);
}

bool sp_stage_selected(const struct sp_stage *st, const char *name)
{
	return (st->name && !strcmp(st->name, name)) || (st->group && !strcmp(st->group, name));
}

/*
 * Loads one stage mapping into st.  variant (0 without a matrix) says
 * which combination of its matrix st becomes; L's diags hear about the
 * matrix itself only for variant 0.
 */
static void load_stage(struct loader *L, struct sp_stage *st, const struct sp_ynode *n, size_t idx,
		       size_t variant)
{
	const struct sp_ynode *mnode = sp_ynode_get(n, "matrix");
	const struct sp_ynode *name = sp_ynode_get(n, "name");
	const struct sp_ynode *pytest = NULL, *run = NULL, *coverage = NULL, *tags = NULL;
	const struct sp_ynode *push = NULL, *allow_no_tests = NULL, *artifacts = NULL;
	const struct sp_ynode *python = NULL;
	const struct sp_ynode *services = NULL;
	char where[STAGE_NAME_MAX + 32];
	size_t i;

	st->pos = pos_of(n);
	st->timeout_ms = SP_STAGE_DEFAULT_TIMEOUT_MS;
	if (name && name->kind == SP_YSCALAR && stage_name_ok(name->value))
		snprintf(where, sizeof(where), "stage \"%s\"", name->value);
	else
		snprintf(where, sizeof(where), "stage %zu", idx + 1);

	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		const char *key = k->value;

		if (!strcmp(key, "name")) {
			if (get_nonempty(L, v, "stage name", &st->name) && !stage_name_ok(st->name))
				sp_diags_add(L->diags, AT(v),
					     "stage name \"%s\" must be lower case letters, digits, "
					     "'-' and '_', starting with a letter or digit, at most %d long",
					     st->name, STAGE_NAME_MAX);
		} else if (!strcmp(key, "target")) {
			if (get_nonempty(L, v, "target", &st->target) && !target_ok(st->target))
				sp_diags_add(L->diags, AT(v),
					     "target \"%s\" is not a valid Dockerfile stage name", st->target);
		} else if (!strcmp(key, "pytest")) {
			pytest = v;
			if (v->kind == SP_YSCALAR && !sp_ynode_is_null(v) && v->plain &&
			    !strcmp(v->value, "true")) {
				/* pytest: true — no extra arguments */
			} else {
				get_strlist(L, v, "pytest", &st->args, false, true);
			}
			st->kind = SP_STAGE_PYTEST;
		} else if (!strcmp(key, "run")) {
			run = v;
			if (get_strlist(L, v, "run", &st->args, true, true))
				st->run_shell = v->kind == SP_YSCALAR;
			if (v->kind == SP_YSEQ && v->n == 0)
				sp_diags_add(L->diags, AT(v), "run must not be empty");
			st->kind = SP_STAGE_RUN;
		} else if (!strcmp(key, "coverage")) {
			coverage = v;
			load_coverage(L, st, v, where);
		} else if (!strcmp(key, "timeout")) {
			get_duration(L, v, "timeout", &st->timeout_ms);
		} else if (!strcmp(key, "env")) {
			get_varlist(L, v, "env", &st->env);
		} else if (!strcmp(key, "needs")) {
			get_strlist(L, v, "needs", &st->needs, true, false);
		} else if (!strcmp(key, "tags")) {
			tags = v;
			get_strlist(L, v, "tags", &st->tags, true, true);
		} else if (!strcmp(key, "push")) {
			push = v;
			get_bool(L, v, "push", &st->push);
		} else if (!strcmp(key, "healthcheck")) {
			load_health(L, st, v, where);
		} else if (!strcmp(key, "user")) {
			get_nonempty(L, v, "user", &st->user);
		} else if (!strcmp(key, "workdir")) {
			if (get_nonempty(L, v, "workdir", &st->workdir) && st->workdir[0] != '/')
				sp_diags_add(L->diags, AT(v), "workdir must be an absolute path");
		} else if (!strcmp(key, "memory")) {
			get_memory(L, v, &st->memory);
		} else if (!strcmp(key, "cpus")) {
			double d;
			if (get_number(L, v, "cpus", &d)) {
				if (d <= 0 || d > 1024)
					sp_diags_add(L->diags, AT(v), "cpus must be more than 0 (e.g. 0.5 or 2)");
				else
					st->nano_cpus = (int64_t)(d * 1e9 + 0.5);
			}
		} else if (!strcmp(key, "artifacts")) {
			artifacts = v;
			load_artifacts(L, st, v);
		} else if (!strcmp(key, "python")) {
			python = v;
			if (get_nonempty(L, v, "python", &st->python) && !python_ok(st->python))
				sp_diags_add(L->diags, AT(v), "python \"%s\" must be a program name "
					     "(python3.12) or an absolute path (/opt/venv/bin/python), "
					     "without spaces", st->python);
		} else if (!strcmp(key, "services")) {
			services = v;
			load_services(L, st, v, where);
		} else if (!strcmp(key, "allow_no_tests")) {
			allow_no_tests = v;
			get_bool(L, v, "allow_no_tests", &st->allow_no_tests);
		} else if (!strcmp(key, "matrix")) {
			/* below, once the name is known */
		} else {
			unknown_key(L, k, where, stage_keys);
		}
	}

	if (!name)
		sp_diags_add(L->diags, AT(n), "%s is missing the required key \"name\"", where);
	if (!sp_ynode_get(n, "target"))
		sp_diags_add(L->diags, AT(n),
			     "%s is missing the required key \"target\" (the Dockerfile stage to build)",
			     where);
	if (pytest && run)
		sp_diags_add(L->diags, AT(run), "%s has both \"pytest\" and \"run\"; choose one", where);
	if (coverage && !pytest)
		sp_diags_add(L->diags, AT(coverage),
			     "coverage needs a pytest stage (%s has no \"pytest\")", where);
	if (allow_no_tests && !pytest)
		sp_diags_add(L->diags, AT(allow_no_tests),
			     "allow_no_tests needs a pytest stage (%s has no \"pytest\")", where);
	if (python && !pytest)
		sp_diags_add(L->diags, AT(python),
			     "python needs a pytest stage (%s has no \"pytest\")", where);
	if (coverage && pytest && st->has_coverage_min && !sp_stage_measures_coverage(st))
		sp_diags_add(L->diags, AT(coverage),
			     "coverage.min needs coverage measured: add --cov=PACKAGE to pytest");
	if (artifacts && !pytest && !run)
		sp_diags_add(L->diags, AT(artifacts),
			     "artifacts need a container to copy them from: a pytest or run stage "
			     "(%s only builds)", where);
	if (push && st->push && !tags)
		sp_diags_add(L->diags, AT(push), "push: true needs tags to push");
	if (st->name)
		st->group = sp_xstrdup(st->name);
	if (mnode && st->name) {
		struct axis *ax = sp_xcalloc(mnode->n / 2 + 1, sizeof(*ax));
		size_t nax = 0;

		if (parse_matrix(L, mnode, ax, &nax) > 0)
			apply_variant(st, ax, nax, variant);
		free(ax);
	}
	check_matrix_refs(L, st);
	if (services && !pytest && !run)
		sp_diags_add(L->diags, AT(services),
			     "services need a pytest or run stage (%s only builds)", where);
	for (i = 0; i < st->tags.n; i++)
		check_tag(L, st, &st->tags.items[i]);
}

static void load_trigger(struct loader *L, struct sp_trigger *t, const struct sp_ynode *n,
			 const char *what, const char *list_key)
{
	size_t i;

	if (n->kind == SP_YSCALAR) {
		get_bool(L, n, what, &t->enabled);
		return;
	}
	if (n->kind == SP_YSEQ) {
		t->enabled = true;
		get_strlist(L, n, what, &t->patterns, false, false);
		return;
	}
	if (n->kind != SP_YMAP) {
		sp_diags_add(L->diags, AT(n), "on.%s must be true, false, a list or a mapping", what);
		return;
	}
	t->enabled = true;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		char where[64];
		if (!strcmp(k->value, list_key)) {
			get_strlist(L, v, list_key, &t->patterns, true, false);
		} else {
			static const char *const tag_keys[] = { "tags", NULL };
			snprintf(where, sizeof(where), "on.%s", what);
			unknown_key(L, k, where, strcmp(list_key, "tags") ? branch_keys : tag_keys);
		}
	}
}

static void load_on(struct loader *L, const struct sp_ynode *n)
{
	size_t i;

	if (!want_map(L, n, "on"))
		return;
	for (i = 0; i < n->n; i += 2) {
		const struct sp_ynode *k = n->items[i], *v = n->items[i + 1];
		if (!strcmp(k->value, "push"))
			load_trigger(L, &L->p->on.push, v, "push", "branches");
		else if (!strcmp(k->value, "tag"))
			load_trigger(L, &L->p->on.tag, v, "tag", "tags");
		else if (!strcmp(k->value, "pull_request"))
			load_trigger(L, &L->p->on.pull_request, v, "pull_request", "branches");
		else
			unknown_key(L, k, "on", on_keys);
	}
}

bool sp_label_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 63 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static void load_runs_on(struct loader *L, const struct sp_ynode *n)
{
	size_t i;

	if (!get_strlist(L, n, "runs_on", &L->p->runs_on, true, false))
		return;
	for (i = 0; i < L->p->runs_on.n; i++)
		if (!sp_label_valid(L->p->runs_on.items[i].s))
			sp_diags_add(L->diags, L->p->runs_on.items[i].pos.line,
				     L->p->runs_on.items[i].pos.col,
				     "runs_on: \"%s\" is not a label (use 1 to 63 of a-z, 0-9, "
				     "'.', '_', '-')", L->p->runs_on.items[i].s);
}

/* ---- across stages ---- */

/* secrets: [NAME, ...] */
static void load_secrets(struct loader *L, const struct sp_ynode *n)
{
	struct sp_strlist *l = &L->p->secrets;
	size_t i, j;

	if (!get_strlist(L, n, "secrets", l, false, false))
		return;
	for (i = 0; i < l->n; i++) {
		const struct sp_pstr *it = &l->items[i];

		if (!env_name_ok(it->s)) {
			sp_diags_add(L->diags, it->pos.line, it->pos.col,
				     "secrets: \"%s\" is not an environment variable name (letters, "
				     "digits and _; not starting with a digit)", it->s);
			continue;
		}
		if (!strncmp(it->s, "STAGEPIPE_", 10)) {
			sp_diags_add(L->diags, it->pos.line, it->pos.col,
				     "secrets: \"%s\": names starting with STAGEPIPE_ are stagepipe's "
				     "own (e.g. the clone credentials) and cannot be secrets", it->s);
			continue;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(l->items[j].s, it->s)) {
				sp_diags_add(L->diags, it->pos.line, it->pos.col,
					     "secrets: \"%s\" is listed twice (first at line %d)",
					     it->s, l->items[j].pos.line);
				break;
			}
	}
}

/* Whether stage i is the first (or only) stage of its group. */
static bool first_variant(const struct sp_pipeline *p, size_t i)
{
	const struct sp_stage *st = &p->stages[i];

	return i == 0 || !st->matrix.n || !p->stages[i - 1].group || !st->group ||
	       strcmp(p->stages[i - 1].group, st->group) != 0;
}

/*
 * Secrets stay out of builds: a build argument is kept in the image's
 * history (docker history shows it to anyone who pulls the image).  And a
 * stage's env may not set a variable of a secret's name, which would
 * replace the secret in its containers.
 */
static void check_secrets(struct loader *L)
{
	const struct sp_pipeline *p = L->p;
	size_t i, j, k;

	for (i = 0; i < p->secrets.n; i++) {
		const char *name = p->secrets.items[i].s;

		for (j = 0; j < p->build.args.n; j++) {
			const struct sp_pvar *a = &p->build.args.items[j];
			size_t off = 0;

			if (sp_vars_uses_env(a->value, name, &off))
				sp_diags_add(L->diags, a->pos.line, a->pos.col,
					     "build.args.%s uses the secret %s (${env.%s}): build "
					     "arguments are kept in the image's history, so secrets are "
					     "never given to builds; they reach the test containers as "
					     "environment variables", a->name, name, name);
		}
		for (j = 0; j < p->nstages; j++)
			for (k = 0; first_variant(p, j) && k < p->stages[j].env.n; k++) {
				const struct sp_pvar *e = &p->stages[j].env.items[k];

				if (!strcmp(e->name, name))
					sp_diags_add(L->diags, e->pos.line, e->pos.col,
						     "stage \"%s\" env sets %s, which is a secret: "
						     "secrets are given to every test container "
						     "already; remove it from env",
						     p->stages[j].group ? p->stages[j].group : "?", name);
			}
	}
}

static ssize_t stage_index(const struct sp_pipeline *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nstages; i++)
		if (p->stages[i].name && !strcmp(p->stages[i].name, name))
			return (ssize_t)i;
	return -1;
}

/* Follows needs from start until it comes back; reports the cycle. */
static void report_cycle(struct loader *L, const bool *placed, size_t start)
{
	struct sp_pipeline *p = L->p;
	struct sp_buf path = SP_BUF_INIT;
	size_t *seen = sp_xcalloc(p->nstages, sizeof(*seen));
	size_t cur = start, step = 1, j, from = 0;
	const struct sp_pstr *at = NULL;

	/* walk unplaced needs until a stage repeats: that stage is on the cycle */
	while (!seen[cur]) {
		seen[cur] = step++;
		for (j = 0; j < p->stages[cur].needs.n; j++) {
			size_t nx = p->stages[cur].needs_idx[j];
			if (!placed[nx]) {
				cur = nx;
				break;
			}
		}
	}
	from = cur;
	sp_buf_addstr(&path, p->stages[from].name);
	do {
		for (j = 0; j < p->stages[cur].needs.n; j++) {
			size_t nx = p->stages[cur].needs_idx[j];
			if (!placed[nx]) {
				if (!at)
					at = &p->stages[cur].needs.items[j];
				cur = nx;
				break;
			}
		}
		sp_buf_addf(&path, " -> %s", p->stages[cur].name);
	} while (cur != from);
	sp_diags_add(L->diags, at->pos.line, at->pos.col, "needs form a cycle: %s", path.data);
	sp_buf_release(&path);
	free(seen);
}

/*
 * A need that names a matrix stage ("test") stands for all its variants:
 * it is replaced by one item per variant ("test[3.11]", "test[3.12]"),
 * each with the position of the need as written.  A need naming one
 * variant, or a plain stage, stays as it is.
 */
static void expand_needs(const struct sp_pipeline *p, struct sp_stage *st)
{
	struct sp_strlist out = { NULL, 0 };
	size_t i, j, n = 0;

	for (i = 0; i < st->needs.n; i++) {
		size_t m = 0;
		for (j = 0; j < p->nstages; j++)
			m += p->stages[j].matrix.n && p->stages[j].group &&
			     !strcmp(p->stages[j].group, st->needs.items[i].s);
		n += m ? m : 1;
	}
	if (n == st->needs.n)
		return;
	out.items = sp_xcalloc(n, sizeof(*out.items));
	for (i = 0; i < st->needs.n; i++) {
		const struct sp_pstr *nd = &st->needs.items[i];
		size_t before = out.n;
		for (j = 0; j < p->nstages; j++)
			if (p->stages[j].matrix.n && p->stages[j].group &&
			    !strcmp(p->stages[j].group, nd->s)) {
				out.items[out.n].s = sp_xstrdup(p->stages[j].name);
				out.items[out.n++].pos = nd->pos;
			}
		if (out.n == before) {
			out.items[out.n].s = sp_xstrdup(nd->s);
			out.items[out.n++].pos = nd->pos;
		}
	}
	strlist_release(&st->needs);
	st->needs = out;
}

static void check_stages(struct loader *L)
{
	struct sp_pipeline *p = L->p;
	bool *placed, ok = true;
	size_t i, j, k, norder = 0;

	for (i = 0; i < p->nstages; i++) {
		struct sp_stage *st = &p->stages[i];
		if (!st->group || !stage_name_ok(st->group)) {
			ok = false;
			continue;
		}
		if (!first_variant(p, i))
			continue;
		for (j = 0; j < i; j++) {
			if (p->stages[j].group && !strcmp(p->stages[j].group, st->group) &&
			    first_variant(p, j)) {
				sp_diags_add(L->diags, st->pos.line, st->pos.col,
					     "duplicate stage name \"%s\" (first at line %d)",
					     st->group, p->stages[j].pos.line);
				ok = false;
			}
		}
	}
	if (!ok)
		return;  /* needs cannot be resolved reliably */
	for (i = 0; i < p->nstages; i++)
		expand_needs(p, &p->stages[i]);
	for (i = 0; i < p->nstages; i++) {
		struct sp_stage *st = &p->stages[i];
		bool quiet = !first_variant(p, i);
		st->needs_idx = sp_xcalloc(st->needs.n + 1, sizeof(*st->needs_idx));
		for (j = 0; j < st->needs.n; j++) {
			const struct sp_pstr *nd = &st->needs.items[j];
			ssize_t idx = stage_index(p, nd->s);
			if (idx >= 0 && !strcmp(p->stages[idx].group, st->group)) {
				if (!quiet)
					sp_diags_add(L->diags, nd->pos.line, nd->pos.col,
						     "stage \"%s\" needs itself", st->group);
				ok = false;
			} else if (idx < 0 && quiet) {
				ok = false;
			} else if (idx < 0) {
				const char **names = sp_xcalloc(p->nstages + 1, sizeof(*names));
				const char *hint;
				for (k = 0; k < p->nstages; k++)
					names[k] = p->stages[k].group;
				hint = sp_suggest(nd->s, names);
				if (hint)
					sp_diags_add(L->diags, nd->pos.line, nd->pos.col,
						     "stage \"%s\" needs unknown stage \"%s\"; did you mean \"%s\"?",
						     st->group, nd->s, hint);
				else
					sp_diags_add(L->diags, nd->pos.line, nd->pos.col,
						     "stage \"%s\" needs unknown stage \"%s\"", st->group, nd->s);
				free(names);
				ok = false;
			}
			st->needs_idx[j] = idx < 0 ? 0 : (size_t)idx;
		}
	}
	if (!ok)
		return;
	/* Kahn's algorithm, always taking the earliest ready stage: stable order */
	placed = sp_xcalloc(p->nstages, sizeof(*placed));
	p->order = sp_xcalloc(p->nstages, sizeof(*p->order));
	while (norder < p->nstages) {
		bool progress = false;
		for (i = 0; i < p->nstages; i++) {
			bool ready = !placed[i];
			for (j = 0; ready && j < p->stages[i].needs.n; j++)
				ready = placed[p->stages[i].needs_idx[j]];
			if (ready) {
				placed[i] = true;
				p->order[norder++] = i;
				progress = true;
				break;
			}
		}
		if (!progress) {
			for (i = 0; placed[i]; i++)
				;
			report_cycle(L, placed, i);
			break;
		}
	}
	free(placed);
}

/* How many variants a stage mapping makes: 1 without a (valid) matrix. */
static size_t variants_of(const struct sp_ynode *n)
{
	struct sp_diags quiet = SP_DIAGS_INIT;
	struct loader Q = { &quiet, NULL, NULL };
	const struct sp_ynode *m = n->kind == SP_YMAP ? sp_ynode_get(n, "matrix") : NULL;
	struct axis *ax;
	size_t nax, count;

	if (!m)
		return 1;
	ax = sp_xcalloc(m->n / 2 + 1, sizeof(*ax));
	count = parse_matrix(&Q, m, ax, &nax);
	free(ax);
	sp_diags_release(&quiet);
	return count ? count : 1;
}

/*
 * Loads the stages list, a matrix stage as one sp_stage per variant: the
 * mapping is read again for each (so every variant owns its strings), with
 * the problems of the mapping reported once, from variant 0.
 */
static void load_all_stages(struct loader *L, const struct sp_ynode *stages)
{
	struct sp_pipeline *p = L->p;
	size_t *counts = sp_xcalloc(stages->n, sizeof(*counts));
	size_t i, v, total = 0, k = 0;
	bool matrix = false;

	for (i = 0; i < stages->n; i++) {
		counts[i] = variants_of(stages->items[i]);
		matrix |= counts[i] > 1;
		total += counts[i];
	}
	if (matrix && total > SP_PIPELINE_MAX_STAGES) {
		sp_diags_add(L->diags, AT(stages), "the matrices make %zu stages in all; at most "
			     "%d are run", total, SP_PIPELINE_MAX_STAGES);
		free(counts);
		return;
	}
	p->stages = sp_xcalloc(total, sizeof(*p->stages));
	p->nstages = total;
	for (i = 0; i < stages->n; i++) {
		const struct sp_ynode *n = stages->items[i];

		if (!want_map(L, n, "each stage")) {
			k += counts[i];
			continue;
		}
		for (v = 0; v < counts[i]; v++) {
			struct sp_diags quiet = SP_DIAGS_INIT;
			struct loader Q = *L;
			struct sp_stage *st = &p->stages[k++];

			if (v)
				Q.diags = &quiet;
			load_stage(&Q, st, n, i, v);
			sp_diags_release(&quiet);
			if (st->matrix.n && strlen(st->name) > SP_STAGE_NAME_MAX &&
			    (v == 0 || strlen(p->stages[k - 2].name) <= SP_STAGE_NAME_MAX))
				sp_diags_add(L->diags, AT(sp_ynode_get(n, "matrix")),
					     "the variant name \"%s\" is longer than %d bytes; use "
					     "shorter values or a shorter stage name", st->name,
					     SP_STAGE_NAME_MAX);
		}
	}
	free(counts);
}

static void load_root(struct loader *L, const struct sp_ynode *root)
{
	struct sp_pipeline *p = L->p;
	const struct sp_ynode *stages = NULL, *version = NULL, *name = NULL;
	size_t i;

	if (root->kind != SP_YMAP) {
		sp_diags_add(L->diags, AT(root), "a pipeline file must be a mapping (version, name, "
			     "stages, ...), not %s", sp_ynode_kind_name(root));
		return;
	}
	for (i = 0; i < root->n; i += 2) {
		const struct sp_ynode *k = root->items[i], *v = root->items[i + 1];
		const char *key = k->value;

		if (!strcmp(key, "version")) {
			version = v;
			if (v->kind == SP_YSCALAR && v->plain && !strcmp(v->value, "1"))
				p->version = 1;
			else
				sp_diags_add(L->diags, AT(v),
					     "unsupported version %s; this stagepipe reads version: 1",
					     v->kind == SP_YSCALAR ? v->value : sp_ynode_kind_name(v));
		} else if (!strcmp(key, "name")) {
			name = v;
			get_nonempty(L, v, "name", &p->name);
		} else if (!strcmp(key, "build")) {
			load_build(L, v);
		} else if (!strcmp(key, "checkout")) {
			size_t j;
			if (want_map(L, v, "checkout"))
				for (j = 0; j < v->n; j += 2) {
					if (!strcmp(v->items[j]->value, "submodules"))
						get_bool(L, v->items[j + 1], "checkout.submodules",
							 &p->checkout.submodules);
					else
						unknown_key(L, v->items[j], "checkout", checkout_keys);
				}
		} else if (!strcmp(key, "stages")) {
			stages = v;
		} else if (!strcmp(key, "on")) {
			p->on.present = true;
			load_on(L, v);
		} else if (!strcmp(key, "runs_on")) {
			load_runs_on(L, v);
		} else if (!strcmp(key, "secrets")) {
			load_secrets(L, v);
		} else if (!strncmp(key, "x-", 2)) {
			/* extension fields: a place for YAML anchors, ignored */
		} else {
			unknown_key(L, k, "the pipeline", top_keys);
		}
	}
	if (!version)
		sp_diags_add(L->diags, AT(root), "missing required key \"version\" (add version: 1)");
	if (!name)
		sp_diags_add(L->diags, AT(root), "missing required key \"name\"");
	if (!stages) {
		sp_diags_add(L->diags, AT(root), "missing required key \"stages\"");
		return;
	}
	if (stages->kind != SP_YSEQ) {
		sp_diags_add(L->diags, AT(stages), "stages must be a list, not %s",
			     sp_ynode_kind_name(stages));
		return;
	}
	if (stages->n == 0) {
		sp_diags_add(L->diags, AT(stages), "stages must not be empty");
		return;
	}
	load_all_stages(L, stages);
	check_stages(L);
	check_secrets(L);
	/* a port probe needs a network; known now only when it is written out */
	if (!strcmp(p->build.network.s, "none"))
		for (i = 0; i < p->nstages; i++)
			if (p->stages[i].health.port && first_variant(p, i))
				sp_diags_add(L->diags, p->build.network.pos.line ? p->build.network.pos.line :
					     p->stages[i].pos.line,
					     p->build.network.pos.line ? p->build.network.pos.col :
					     p->stages[i].pos.col,
					     "stage \"%s\" probes healthcheck.port, which needs "
					     "build.network host or default, not none",
					     p->stages[i].group ? p->stages[i].group : "?");
}

int sp_pipeline_load_buffer(struct sp_pipeline **out, const char *name,
			    const char *data, size_t len,
			    const struct sp_vars *env, struct sp_diags *diags)
{
	struct sp_ydoc doc = SP_YDOC_INIT;
	struct loader L;
	size_t before = sp_diags_count(diags);
	int rc;

	*out = NULL;
	if (len > SP_PIPELINE_MAX_FILE) {
		sp_diags_add(diags, 0, 0, "file is larger than %d bytes; refusing it",
			     SP_PIPELINE_MAX_FILE);
		return SP_ECONFIG;
	}
	if ((rc = sp_ydoc_parse(&doc, data, len, NULL, diags)) < 0)
		return rc;
	L.diags = diags;
	L.env = env;
	L.p = sp_xcalloc(1, sizeof(*L.p));
	L.p->file = sp_xstrdup(name);
	L.p->build.context = sp_xstrdup(".");
	L.p->build.dockerfile = sp_xstrdup("Dockerfile");
	L.p->build.network.s = sp_xstrdup("default");
	if (!doc.root || sp_ynode_is_null(doc.root))
		sp_diags_add(diags, 1, 1, "the pipeline file is empty");
	else
		load_root(&L, doc.root);
	sp_ydoc_release(&doc);
	if (sp_diags_count(diags) > before) {
		sp_pipeline_free(L.p);
		return SP_ECONFIG;
	}
	*out = L.p;
	return 0;
}

int sp_pipeline_load_file(struct sp_pipeline **out, const char *path,
			  const struct sp_vars *env, struct sp_diags *diags)
{
	struct sp_buf b = SP_BUF_INIT;
	int rc;

	*out = NULL;
	rc = sp_ydoc_read_file(&b, path, SP_PIPELINE_MAX_FILE, "pipeline file", diags);
	if (rc == 0)
		rc = sp_pipeline_load_buffer(out, path, b.data, b.len, env, diags);
	sp_buf_release(&b);
	return rc;
}

void sp_pipeline_free(struct sp_pipeline *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nstages; i++) {
		struct sp_stage *st = &p->stages[i];
		free(st->name);
		free(st->group);
		varlist_release(&st->matrix);
		free(st->target);
		strlist_release(&st->args);
		varlist_release(&st->env);
		strlist_release(&st->needs);
		free(st->needs_idx);
		strlist_release(&st->tags);
		strlist_release(&st->artifacts);
		free(st->health.path);
		free(st->user);
		free(st->workdir);
		free(st->python);
		services_free(st->services, st->nservices);
	}
	free(p->stages);
	free(p->order);
	varlist_release(&p->build.args);
	free(p->build.context);
	free(p->build.dockerfile);
	free(p->build.network.s);
	strlist_release(&p->build.cache_from);
	strlist_release(&p->on.push.patterns);
	strlist_release(&p->on.tag.patterns);
	strlist_release(&p->on.pull_request.patterns);
	strlist_release(&p->runs_on);
	strlist_release(&p->secrets);
	free(p->file);
	free(p->name);
	free(p);
}

const struct sp_stage *sp_pipeline_stage(const struct sp_pipeline *p, const char *name)
{
	ssize_t i = stage_index(p, name);
	size_t j;

	if (i >= 0)
		return &p->stages[i];
	for (j = 0; j < p->nstages; j++)
		if (p->stages[j].group && !strcmp(p->stages[j].group, name))
			return &p->stages[j];
	return NULL;
}

int sp_pipeline_network(const struct sp_pipeline *p, const struct sp_vars *vars,
			enum sp_network *out, struct sp_error *err)
{
	char *s = NULL;
	int rc;

	if ((rc = sp_pipeline_expand(p, p->build.network.s, p->build.network.pos, vars, &s, err)) < 0)
		return rc;
	if (!strcmp(s, "default"))
		*out = SP_NETWORK_DEFAULT;
	else if (!strcmp(s, "host"))
		*out = SP_NETWORK_HOST;
	else if (!strcmp(s, "none"))
		*out = SP_NETWORK_NONE;
	else if (strcmp(s, p->build.network.s))
		rc = sp_error_set(err, SP_ECONFIG,
				  "build.network must be default, host or none, not \"%s\" "
				  "(from \"%s\")", s, p->build.network.s);
	else
		rc = sp_error_set(err, SP_ECONFIG,
				  "build.network must be default, host or none, not \"%s\"", s);
	free(s);
	return rc;
}

int sp_pipeline_expand(const struct sp_pipeline *p, const char *s, struct sp_pos pos,
		       const struct sp_vars *vars, char **out, struct sp_error *err)
{
	struct sp_error e = SP_ERROR_INIT;
	int rc;

	if ((rc = sp_vars_expand(out, s, vars, NULL, &e)) < 0)
		return sp_error_set(err, rc, "%s:%d:%d: %s", p->file, pos.line, pos.col, e.msg);
	return 0;
}

const char *sp_network_name(enum sp_network n)
{
	switch (n) {
	case SP_NETWORK_HOST: return "host";
	case SP_NETWORK_NONE: return "none";
	case SP_NETWORK_DEFAULT:
	default: return "default";
	}
}

/* Writes one line into why (when given); returns ok, for a tail call. */
static bool on_verdict(bool ok, char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool on_verdict(bool ok, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return ok;
}

bool sp_pipeline_on_match(const struct sp_pipeline *p, const char *event, const char *name,
			  char *why, size_t whylen)
{
	const struct sp_trigger *t;
	const char *what, *prefix, *noun, *plural;
	size_t i;

	if (!strcmp(event, "manual"))
		return on_verdict(true, why, whylen, "a manual run is always built");
	if (!strcmp(event, "push")) {
		t = &p->on.push;
		what = "push";
		prefix = "refs/heads/";
		noun = "branch";
		plural = "pushes";
	} else if (!strcmp(event, "tag")) {
		t = &p->on.tag;
		what = "tag";
		prefix = "refs/tags/";
		noun = "tag";
		plural = "tags";
	} else if (!strcmp(event, "pull_request")) {
		t = &p->on.pull_request;
		what = "pull_request";
		prefix = "refs/heads/";
		noun = "target branch";
		plural = "pull requests";
	} else {
		return on_verdict(false, why, whylen, "unknown event \"%s\" (push, tag, "
				  "pull_request or manual)", event);
	}
	if (!name)
		name = "";
	if (!strncmp(name, prefix, strlen(prefix)))
		name += strlen(prefix);
	if (!p->on.present)
		return on_verdict(true, why, whylen, "the pipeline has no on: section: every "
				  "push, tag and pull request is built");
	if (!t->enabled)
		return on_verdict(false, why, whylen, "on.%s is off: %s are not built", what, plural);
	if (!t->patterns.n)
		return on_verdict(true, why, whylen, "on.%s builds every %s", what, noun);
	for (i = 0; i < t->patterns.n; i++)
		if (*name && sp_glob_match(t->patterns.items[i].s, name))
			return on_verdict(true, why, whylen, "on.%s matches %s \"%s\" (\"%s\")", what,
					  noun, name, t->patterns.items[i].s);
	return on_verdict(false, why, whylen, "on.%s does not list %s \"%s\"", what, noun, name);
}
