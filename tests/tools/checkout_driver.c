/*
 * checkout_driver.c — sp_checkout from the command line, for tests and the
 * benchmark only (not a stagepipe command; built by the scripts that use
 * it, see tests/tools/build-driver.sh).
 *
 *   checkout_driver [--cache DIR] [--dest DIR] [--ref REF] [--submodules]
 *                   [--progress] [--hold SECONDS] URL
 *
 * Prints the result as KEY=VALUE lines on stdout (url, dir, sha, short_sha,
 * ref, branch, tag, subject, mirror, mirror_created, fetched, objects,
 * bytes, submodule=PATH SHA URL...), errors as "checkout: MESSAGE" on
 * stderr; exits with sp_error_exit_status.  The environment is the
 * process's (credentials, XDG_CACHE_HOME).  --hold keeps the workspace
 * locked that long after printing (to test the workspace pool).
 * CHECKOUT_DRIVER_LIBGIT2_DEFAULTS set: libgit2's own global options are
 * kept (sp_checkout_global_init is not called), to measure what it saves.
 */
#include <getopt.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/git/checkout.h"
#include "core/base/error.h"

static void on_progress(const struct sp_checkout_progress *p, void *ud)
{
	(void)ud;
	switch (p->phase) {
	case SP_CHECKOUT_WAITING:
		fprintf(stderr, "progress: waiting for the mirror of %s\n", p->url);
		break;
	case SP_CHECKOUT_FETCHING:
		fprintf(stderr, "progress: fetching %s%s%s: %u/%u objects, %zu bytes\n", p->url,
			*p->path ? " for " : "", p->path, p->received_objects, p->total_objects,
			p->received_bytes);
		break;
	case SP_CHECKOUT_WRITING:
		fprintf(stderr, "progress: writing %s%s%s: %zu/%zu\n", p->url, *p->path ? " at " : "",
			p->path, p->files_done, p->files_total);
		break;
	}
}

static const char *str(const char *s)
{
	return s ? s : "";
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "dest", required_argument, NULL, 'd' },
		{ "ref", required_argument, NULL, 'r' },
		{ "submodules", no_argument, NULL, 's' },
		{ "progress", no_argument, NULL, 'p' },
		{ "hold", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_checkout_opts o;
	struct sp_checkout_result res;
	struct sp_error err = SP_ERROR_INIT;
	long hold = 0;
	size_t i;
	int c, rc;

	memset(&o, 0, sizeof(o));
	o.getenv = sp_vars_process_env;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.cache_dir = optarg; break;
		case 'd': o.dest = optarg; break;
		case 'r': o.ref = optarg; break;
		case 's': o.submodules = true; break;
		case 'p': o.progress = on_progress; break;
		case 'H': hold = strtol(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: checkout_driver [--cache DIR] [--dest DIR] [--ref REF] "
				"[--submodules] [--progress] [--hold S] URL\n");
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "checkout_driver: one URL expected\n");
		return 2;
	}
	o.url = argv[optind];
	git_libgit2_init();
	if (!getenv("CHECKOUT_DRIVER_LIBGIT2_DEFAULTS"))
		(void)sp_checkout_global_init();
	rc = sp_checkout(&res, &o, &err);
	if (rc < 0) {
		fprintf(stderr, "checkout: %s\n", err.msg);
		git_libgit2_shutdown();
		return sp_error_exit_status(rc);
	}
	printf("url=%s\ndir=%s\nsha=%s\nshort_sha=%s\nref=%s\nbranch=%s\ntag=%s\nsubject=%s\n"
	       "mirror=%s\nmirror_created=%d\nfetched=%d\nobjects=%u\nbytes=%zu\nquick=%d\n",
	       res.url, res.dir, res.sha, res.short_sha, str(res.ref), str(res.branch), str(res.tag),
	       res.subject, res.mirror, res.mirror_created, res.fetched, res.objects_received,
	       res.bytes_received, res.quick);
	for (i = 0; i < res.n_submodules; i++)
		printf("submodule=%s %s %s\n", res.submodules[i].path, res.submodules[i].sha,
		       res.submodules[i].url);
	fflush(stdout);
	if (hold > 0)
		sleep((unsigned int)hold);
	sp_checkout_result_release(&res);
	git_libgit2_shutdown();
	return 0;
}
