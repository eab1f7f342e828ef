/*
 * build.h — build one Dockerfile target with BuildKit (POST /build?version=2).
 *
 * The context folder is tarred while it is sent (runners/docker/context.c):
 * nothing the size of the context is ever held in memory or written to
 * disk.  The response is decoded as it arrives (runners/docker/progress.c)
 * into the caller's progress events.
 */
#ifndef SP_DOCKER_BUILD_H
#define SP_DOCKER_BUILD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/pipeline.h"
#include "runners/docker/engine.h"
#include "runners/docker/progress.h"

struct sp_error;

struct sp_build_kv {
	const char *name;
	const char *value;
};

struct sp_build_opts {
	const char *context_dir;           /* folder sent as the build context */
	const char *dockerfile;            /* path inside the context; NULL "Dockerfile" */
	const char *target;                /* Dockerfile stage; NULL: the last one */
	const char *const *tags;           /* image names to tag the result with */
	size_t ntags;
	const struct sp_build_kv *args;    /* build arguments (already expanded) */
	size_t nargs;
	const struct sp_build_kv *labels;  /* image labels (io.stagepipe.*) */
	size_t nlabels;
	enum sp_network network;
	bool no_cache;
	bool pull;
	/* Polled during the build; when it returns non-zero the build is
	 * cancelled on the daemon and sp_docker_build returns SP_ECANCELLED. */
	sp_engine_cancel_fn cancel;
	void *cancel_ud;
	const struct sp_progress_handler *progress;  /* may be NULL */
};

struct sp_build_result {
	char *image_id;        /* "sha256:…"; owned, free() it */
	unsigned long long context_files;
	unsigned long long context_bytes;
	double seconds;
};

/*
 * Builds o->target of the context.  On success fills res (release with
 * sp_build_result_release) and returns 0.  Errors: SP_EFAILED when the
 * Dockerfile's build failed (message names the step and the daemon's
 * error), SP_ECANCELLED, SP_EENGINE (engine unreachable, a request the
 * daemon refused, a malformed stream), SP_ECONFIG (e.g. no Dockerfile or
 * an unreadable context file).
 */
int sp_docker_build(struct sp_engine *e, const struct sp_build_opts *o,
		    struct sp_build_result *res, struct sp_error *err);

void sp_build_result_release(struct sp_build_result *res);

#endif
