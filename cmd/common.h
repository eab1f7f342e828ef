/*
 * common.h — steps several commands share: find the source and its
 * commit, load the pipeline, open the engine, make a job id.
 */
#ifndef SP_CMD_COMMON_H
#define SP_CMD_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "core/git/checkout.h"
#include "core/base/error.h"
#include "core/git/gitinfo.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/vars.h"
#include "runners/docker/engine.h"

struct sp_source {
	struct sp_gitinfo git;
	struct sp_pipeline *pipeline;
	struct sp_vars vars;     /* GIT_*, PIPELINE and the process environment */
	char *file;              /* the pipeline file's path */
	struct sp_checkout_result checkout;  /* with --repo: the checked-out commit */
};

/*
 * Finds the source root around dir, loads the pipeline (file, or
 * stagepipe.yml at the root) and fills the variables.  Pipeline-file
 * problems are printed as FILE:LINE:COL lines.  Returns the exit status:
 * 0, or 2 / 3 after printing the reason prefixed with "stagepipe CMD: ".
 *
 * A relative file is relative to dir when dir is given (as git -C).
 * With clean_dest, HEAD's commit is checked out there (libgit2) and
 * becomes the source root; a relative file is then relative to the
 * repository.
 */
int sp_source_load(struct sp_source *src, const char *cmd, const char *dir, const char *file,
		   const char *clean_dest);
/*
 * Like sp_source_load for a commit of any repository (run --repo): url
 * and ref (NULL: the default branch) checked out through the mirror cache
 * (core/git/checkout.c); file is relative to the repository.  sha (NULL,
 * or 40 hex) is the exact commit to build: ref then says what to fetch to
 * get it and which branch or tag to report (sp_checkout_opts.sha).
 * Submodules are checked out when the pipeline's checkout.submodules says
 * so.
 */
int sp_source_load_repo(struct sp_source *src, const char *cmd, const char *url,
			const char *ref, const char *sha, const char *file);
void sp_source_release(struct sp_source *src);

/* Opens the engine at host (NULL: the environment's).  0, or prints and returns 3. */
int sp_cmd_open_engine(struct sp_engine **out, const char *cmd, const char *host);

/* "local-3f9a1c2b7d10" */
void sp_cmd_job_id(char *out, size_t len, const char *prefix);

/* Whether id can be a job id given on the command line: [A-Za-z0-9_.-]{1,64}
 * (it becomes a container label value and a file name elsewhere). */
bool sp_cmd_job_id_valid(const char *id);

/* "hostname:pid" of this process, the io.stagepipe.owner label. */
void sp_cmd_owner(char *out, size_t len);

/* Prints "stagepipe CMD: message" and returns the exit status for err. */
int sp_cmd_fail(const char *cmd, const struct sp_error *err);

#endif
