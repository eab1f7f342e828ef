/*
 * vars.c — check and expand ${...} variables; see vars.h.
 *
 * Each reference is parsed within its own "${" ... "}" and names are
 * compared by length, so the work is linear in the input and a name of any
 * length is looked up whole (only messages clip it).
 */
#include "core/pipeline/vars.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/suggest.h"
#include "core/base/xalloc.h"

/* How much of a name a message shows. */
#define MSG_NAME_MAX 128

static const char *const known_names[] = {
	"GIT_SHA", "GIT_SHORT_SHA", "GIT_BRANCH", "GIT_TAG", "PIPELINE", "STAGE", NULL,
};

/* One parsed ${...}: name (and for env.X the variable), optional default. */
struct ref {
	const char *name; size_t name_len;   /* "GIT_SHA" or "env.HOME" */
	const char *def; size_t def_len;     /* after ":-" */
	bool has_def;
	size_t len;                          /* bytes from '$' to '}' inclusive */
};

static bool env_name_ok(const char *s, size_t len)
{
	size_t i;

	if (!len || isdigit((unsigned char)s[0]))
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* A length for "%.*s" in a message: long names are clipped. */
static int clip(size_t len)
{
	return len > MSG_NAME_MAX ? MSG_NAME_MAX : (int)len;
}

/*
 * The first ":-" in [s, end), or NULL.  Searching only up to the "}" keeps
 * a file of many references linear (strstr ran to the end of the string
 * for each one).  memchr rather than memmem, which glibc declares only
 * under _GNU_SOURCE.
 */
static const char *find_default(const char *s, const char *end)
{
	const char *p;

	for (p = s; p < end && (p = memchr(p, ':', (size_t)(end - p))) != NULL; p++)
		if (p + 1 < end && p[1] == '-')
			return p;
	return NULL;
}

/* Parses the reference at s (which starts with "${"). */
static int parse_ref(struct ref *r, const char *s, struct sp_error *err)
{
	const char *body = s + 2, *end = strchr(body, '}'), *sep;
	char name[MSG_NAME_MAX + 1];  /* for messages and suggestions only */
	size_t i;

	memset(r, 0, sizeof(*r));
	if (!end)
		return sp_error_set(err, SP_ECONFIG, "unterminated \"${\" (missing \"}\")");
	r->len = (size_t)(end - s) + 1;
	r->name = body;
	sep = find_default(body, end);
	if (sep) {
		r->name_len = (size_t)(sep - body);
		r->def = sep + 2;
		r->def_len = (size_t)(end - r->def);
		r->has_def = true;
	} else {
		r->name_len = (size_t)(end - body);
	}
	if (r->name_len == 0)
		return sp_error_set(err, SP_ECONFIG, "empty variable name in \"${}\"");
	if (r->name_len > 4 && !strncmp(r->name, "env.", 4)) {
		if (!env_name_ok(r->name + 4, r->name_len - 4))
			return sp_error_set(err, SP_ECONFIG, "invalid environment variable name \"%.*s\"",
					    clip(r->name_len - 4), r->name + 4);
		return 0;
	}
	if (r->name_len > 7 && !strncmp(r->name, "matrix.", 7)) {
		if (!env_name_ok(r->name + 7, r->name_len - 7))
			return sp_error_set(err, SP_ECONFIG, "invalid matrix key \"%.*s\"",
					    clip(r->name_len - 7), r->name + 7);
		if (r->has_def)
			return sp_error_set(err, SP_ECONFIG,
				"a default (\":-\") is only allowed for ${env.NAME:-default}");
		return 0;
	}
	if (r->has_def)
		return sp_error_set(err, SP_ECONFIG,
			"a default (\":-\") is only allowed for ${env.NAME:-default}");
	for (i = 0; known_names[i]; i++)
		if (strlen(known_names[i]) == r->name_len &&
		    !strncmp(known_names[i], r->name, r->name_len))
			return 0;
	snprintf(name, sizeof(name), "%.*s", clip(r->name_len), r->name);
	{
		const char *hint = sp_suggest(name, known_names);
		if (hint)
			return sp_error_set(err, SP_ECONFIG,
				"unknown variable ${%s}; did you mean ${%s}?", name, hint);
		if (env_name_ok(r->name, r->name_len))
			return sp_error_set(err, SP_ECONFIG,
				"unknown variable ${%s}; for an environment variable write ${env.%s}",
				name, name);
		return sp_error_set(err, SP_ECONFIG,
			"unknown variable ${%s}; known: GIT_SHA, GIT_SHORT_SHA, GIT_BRANCH, "
			"GIT_TAG, PIPELINE, STAGE, env.NAME, matrix.KEY", name);
	}
}

int sp_vars_check(const char *s, size_t *bad_off, struct sp_error *err)
{
	const char *p = s;
	struct ref r;
	int rc;

	while ((p = strchr(p, '$')) != NULL) {
		if (p[1] == '$' && p[2] == '{') {
			p += 3;
			continue;
		}
		if (p[1] != '{') {
			p++;
			continue;
		}
		if ((rc = parse_ref(&r, p, err)) < 0) {
			if (bad_off)
				*bad_off = (size_t)(p - s);
			return rc;
		}
		p += r.len;
	}
	return 0;
}

static const char *sample_value(const char *name, size_t len)
{
	static const struct { const char *name, *value; } samples[] = {
		{ "GIT_SHA", "0123456789abcdef0123456789abcdef01234567" },
		{ "GIT_SHORT_SHA", "0123456" },
		{ "GIT_BRANCH", "main" },
		{ "GIT_TAG", "v1.0.0" },
		{ "PIPELINE", "pipeline" },
		{ "STAGE", "stage" },
	};
	size_t i;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		if (strlen(samples[i].name) == len && !strncmp(samples[i].name, name, len))
			return samples[i].value;
	return "sample";
}

static const char *builtin_value(const struct sp_vars *v, const char *name, size_t len)
{
#define IS(lit) (len == sizeof(lit) - 1 && !strncmp(name, lit, len))
	if (IS("GIT_SHA")) return v->git_sha;
	if (IS("GIT_SHORT_SHA")) return v->git_short_sha;
	if (IS("GIT_BRANCH")) return v->git_branch;
	if (IS("GIT_TAG")) return v->git_tag;
	if (IS("PIPELINE")) return v->pipeline;
	if (IS("STAGE")) return v->stage;
#undef IS
	return NULL;
}

static const char *matrix_value(const struct sp_vars *v, const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < v->nmatrix; i++)
		if (strlen(v->matrix_names[i]) == len && !strncmp(v->matrix_names[i], key, len))
			return v->matrix_values[i];
	return NULL;
}

int sp_vars_expand(char **out, const char *s, const struct sp_vars *vars,
		   size_t *bad_off, struct sp_error *err)
{
	struct sp_buf b = SP_BUF_INIT;
	const char *p = s, *q;
	struct ref r;
	int rc = 0;

	*out = NULL;
	while ((q = strchr(p, '$')) != NULL) {
		const char *val = NULL;

		if (q[1] == '$' && q[2] == '{') {
			sp_buf_add(&b, p, (size_t)(q - p));
			sp_buf_addstr(&b, "${");
			p = q + 3;
			continue;
		}
		if (q[1] != '{') {
			sp_buf_add(&b, p, (size_t)(q - p + 1));
			p = q + 1;
			continue;
		}
		sp_buf_add(&b, p, (size_t)(q - p));
		if ((rc = parse_ref(&r, q, err)) < 0)
			goto fail;
		if (r.name_len > 4 && !strncmp(r.name, "env.", 4)) {
			if (vars->getenv) {
				char *env = sp_xstrndup(r.name + 4, r.name_len - 4);
				val = vars->getenv(env, vars->getenv_ud);
				free(env);
			}
			if (val && !*val && r.has_def)
				val = NULL;
			if (!val && r.has_def) {
				sp_buf_add(&b, r.def, r.def_len);
				p = q + r.len;
				continue;
			}
			if (!val && vars->sample)
				val = "sample";
			if (!val) {
				rc = sp_error_set(err, SP_ECONFIG,
					"environment variable %.*s is not set (write ${%.*s:-default} "
					"to give a default)", clip(r.name_len - 4), r.name + 4,
					clip(r.name_len), r.name);
				goto fail;
			}
		} else if (r.name_len > 7 && !strncmp(r.name, "matrix.", 7)) {
			if (!(val = matrix_value(vars, r.name + 7, r.name_len - 7))) {
				rc = sp_error_set(err, SP_ECONFIG, "${%.*s} has no value: the stage has "
						  "no matrix key %.*s", clip(r.name_len), r.name,
						  clip(r.name_len - 7), r.name + 7);
				goto fail;
			}
		} else {
			val = builtin_value(vars, r.name, r.name_len);
			if (!val && vars->sample)
				val = sample_value(r.name, r.name_len);
			if (!val) {
				const char *why = "";
				if (r.name_len > 4 && !strncmp(r.name, "GIT_", 4))
					why = vars->git_sha ? (r.name_len == 7 &&
						!strncmp(r.name, "GIT_TAG", 7) ?
						": HEAD has no tag" : ": HEAD is not on a branch") :
						": the source is not a git repository";
				rc = sp_error_set(err, SP_ECONFIG, "${%.*s} has no value%s",
						  clip(r.name_len), r.name, why);
				goto fail;
			}
		}
		sp_buf_addstr(&b, val);
		p = q + r.len;
	}
	sp_buf_addstr(&b, p);
	*out = sp_buf_detach(&b, NULL);
	return 0;
fail:
	if (bad_off)
		*bad_off = (size_t)(q - s);
	sp_buf_release(&b);
	return rc;
}

bool sp_vars_uses(const char *s, const char *name, bool whole, size_t *off)
{
	struct sp_error err = SP_ERROR_INIT;
	size_t n = strlen(name);
	const char *p = s;
	struct ref r;

	while ((p = strchr(p, '$')) != NULL) {
		if (p[1] == '$' && p[2] == '{') {
			p += 3;
			continue;
		}
		if (p[1] != '{') {
			p++;
			continue;
		}
		if (parse_ref(&r, p, &err) < 0)
			return false;
		if ((whole ? r.name_len == n : r.name_len >= n) && !strncmp(r.name, name, n)) {
			if (off)
				*off = (size_t)(p - s);
			return true;
		}
		p += r.len;
	}
	return false;
}

bool sp_vars_uses_env(const char *s, const char *name, size_t *off)
{
	char *ref = sp_xasprintf("env.%s", name);
	bool used = sp_vars_uses(s, ref, true, off);

	free(ref);
	return used;
}

const char *sp_vars_process_env(const char *name, void *ud)
{
	(void)ud;
	return getenv(name);
}
