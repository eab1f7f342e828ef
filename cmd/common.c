/*
 * common.c — shared command steps; see common.h.
 */
#include "cmd/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/git/checkout.h"
#include "core/yaml/diag.h"
#include "core/base/ids.h"
#include "cmd/signals.h"
#include "core/base/xalloc.h"

int sp_cmd_fail(const char *cmd, const struct sp_error *err)
{
	fprintf(stderr, "stagepipe %s: %s\n", cmd, err->msg);
	return sp_error_exit_status(err->code ? err->code : SP_ERROR);
}

/*
 * Loads src->file (the process environment for ${VAR}), printing its
 * problems, then points the GIT_* and PIPELINE variables at src.
 * Returns the exit status.
 */
static int load_pipeline(struct sp_source *src)
{
	struct sp_diags diags = SP_DIAGS_INIT;
	int status = 0;

	src->vars.getenv = sp_vars_process_env;
	if (sp_pipeline_load_file(&src->pipeline, src->file, &src->vars, &diags) < 0) {
		sp_diags_print(&diags, src->file, stderr);
		status = SP_EXIT_USAGE;
	} else {
		sp_gitinfo_vars(&src->git, &src->vars);
		src->vars.pipeline = src->pipeline->name;
	}
	sp_diags_release(&diags);
	return status;
}

int sp_source_load(struct sp_source *src, const char *cmd, const char *dir, const char *file,
		   const char *clean_dest)
{
	struct sp_error err = SP_ERROR_INIT;

	memset(src, 0, sizeof(*src));
	if (sp_gitinfo_discover(&src->git, dir ? dir : ".", &err) < 0)
		return sp_cmd_fail(cmd, &err);
	if (clean_dest) {
		if (!src->git.sha) {
			sp_error_set(&err, SP_ECONFIG, "--clean needs a git repository with a commit; "
				     "%s has none", src->git.root);
			return sp_cmd_fail(cmd, &err);
		}
		if (sp_checkout_local(src->git.root, src->git.sha, clean_dest, &err) < 0)
			return sp_cmd_fail(cmd, &err);
		free(src->git.root);
		src->git.root = sp_xstrdup(clean_dest);
		src->file = !file ? sp_xasprintf("%s/stagepipe.yml", clean_dest) :
			    file[0] == '/' ? sp_xstrdup(file) :
			    sp_xasprintf("%s/%s", clean_dest, file);
	} else {
		/* like git -C: a relative -f is relative to -C DIR */
		src->file = !file ? sp_xasprintf("%s/stagepipe.yml", src->git.root) :
			    file[0] == '/' || !dir ? sp_xstrdup(file) :
			    sp_xasprintf("%s/%s", dir, file);
	}
	return load_pipeline(src);
}

/* "receiving objects: 1200/5000" on a terminal, overwriting itself */
static void checkout_progress(const struct sp_checkout_progress *p, void *ud)
{
	FILE *f = ud;

	if (p->phase == SP_CHECKOUT_FETCHING && p->total_objects)
		fprintf(f, "\r:: receiving objects: %u/%u", p->received_objects, p->total_objects);
}

int sp_source_load_repo(struct sp_source *src, const char *cmd, const char *url,
			const char *ref, const char *sha, const char *file)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_checkout_opts o;
	const struct sp_checkout_result *c = &src->checkout;
	int status;

	memset(src, 0, sizeof(*src));
	memset(&o, 0, sizeof(o));
	o.url = url;
	o.ref = ref;
	o.sha = sha;
	o.getenv = sp_vars_process_env;
	o.progress = isatty(STDERR_FILENO) ? checkout_progress : NULL;
	o.progress_ud = stderr;
	o.cancel = sp_signals_cancel;
	if (sp_checkout(&src->checkout, &o, &err) < 0)
		return sp_cmd_fail(cmd, &err);
	if (o.progress)
		fputc('\n', stderr);
	fprintf(stderr, ":: %s at %s (%s): %s\n", c->url, c->short_sha,
		c->branch ? c->branch : c->tag ? c->tag : "detached", c->subject);
	sp_checkout_result_gitinfo(&src->git, &src->checkout);
	src->file = sp_xasprintf("%s/%s", c->dir, file ? file : "stagepipe.yml");
	if ((status = load_pipeline(src)) != 0)
		return status;
	if (src->pipeline->checkout.submodules &&
	    sp_checkout_submodules(&src->checkout, &o, &err) < 0)
		return sp_cmd_fail(cmd, &err);
	return 0;
}

void sp_source_release(struct sp_source *src)
{
	sp_pipeline_free(src->pipeline);
	sp_gitinfo_release(&src->git);
	sp_checkout_result_release(&src->checkout);
	free(src->file);
	memset(src, 0, sizeof(*src));
}

int sp_cmd_open_engine(struct sp_engine **out, const char *cmd, const char *host)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_engine_config cfg;
	int rc;

	*out = NULL;
	rc = sp_engine_config_from_env(&cfg, host, sp_vars_process_env, NULL, &err);
	if (rc == 0) {
		rc = sp_engine_open(out, &cfg, &err);
		sp_engine_config_release(&cfg);
	}
	return rc < 0 ? sp_cmd_fail(cmd, &err) : 0;
}

void sp_cmd_job_id(char *out, size_t len, const char *prefix)
{
	sp_id_random(out, len, prefix, 6);
}

bool sp_cmd_job_id_valid(const char *id)
{
	size_t n = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_.-");

	return n >= 1 && n <= 64 && id[n] == '\0';
}

void sp_cmd_owner(char *out, size_t len)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, len, "%s:%ld", host, (long)getpid());
}
