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

#include "runners/docker/engine.h"
#include "runners/runner.h"

struct sp_error;

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

#endif
