/*
 * vars.h — ${...} variables in pipeline values (tags, env, build args).
 *
 *   ${GIT_SHA}  ${GIT_SHORT_SHA}  ${GIT_BRANCH}  ${GIT_TAG}
 *   ${PIPELINE} ${STAGE}
 *   ${env.NAME}            the environment variable NAME (must be set)
 *   ${env.NAME:-default}   ... or default when NAME is unset or empty
 *   ${matrix.KEY}          the value of KEY in the stage's matrix: variant
 *   $${                    a literal "${"
 *
 * A "$" not followed by "{" is literal.  Names are checked when the file
 * is loaded (an unknown name is an error there); values are filled in when
 * a job runs and knows its commit.
 */
#ifndef SP_VARS_H
#define SP_VARS_H

#include <stdbool.h>
#include <stddef.h>

struct sp_error;

/* Looks up an environment variable; returns NULL when unset. */
typedef const char *(*sp_vars_getenv_fn)(const char *name, void *ud);

struct sp_vars {
	const char *git_sha;        /* NULL when unknown (not a repository) */
	const char *git_short_sha;
	const char *git_branch;     /* NULL when detached or unknown */
	const char *git_tag;        /* NULL when HEAD is not tagged */
	const char *pipeline;
	const char *stage;          /* NULL outside a stage */
	/*
	 * The stage variant's matrix values (KEY -> value, nmatrix of each,
	 * borrowed); none outside a matrix stage.  A ${matrix.KEY} that is not
	 * here is an error, also with sample set (the loader checks names
	 * against the stage's own matrix that way).
	 */
	const char *const *matrix_names;
	const char *const *matrix_values;
	size_t nmatrix;
	sp_vars_getenv_fn getenv;   /* NULL: no environment at all */
	void *getenv_ud;
	/*
	 * When set, unknown values (unset GIT_*, unset env without default)
	 * expand to a plausible sample instead of failing: used to check a
	 * file (e.g. that tags are valid references) before a job exists.
	 */
	int sample;
};

/*
 * Checks the syntax and the variable names of s without expanding.
 * Returns 0, or SP_ECONFIG with the message in err and the byte offset of
 * the offending "${" in *bad_off.
 */
int sp_vars_check(const char *s, size_t *bad_off, struct sp_error *err);

/*
 * Expands s.  On success *out is a new string the caller frees.  On error
 * returns SP_ECONFIG (bad syntax, unknown name, a value that is not set),
 * *out is NULL and *bad_off (may be NULL) says where.
 */
int sp_vars_expand(char **out, const char *s, const struct sp_vars *vars,
		   size_t *bad_off, struct sp_error *err);

/*
 * Whether s (already checked) refers to the variable name (whole) or to
 * one whose name starts with name (!whole: "matrix."); "$${" escapes do
 * not count.  *off (may be NULL) gets the byte offset of its "${".
 */
bool sp_vars_uses(const char *s, const char *name, bool whole, size_t *off);

/*
 * Whether s (already checked) refers to the environment variable name
 * through ${env.NAME} or ${env.NAME:-default}; *off (may be NULL) gets
 * the byte offset of the first such "${".
 */
bool sp_vars_uses_env(const char *s, const char *name, size_t *off);

/* The process environment as an sp_vars_getenv_fn (ud unused). */
const char *sp_vars_process_env(const char *name, void *ud);

#endif
