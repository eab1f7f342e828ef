/*
 * runners/docker/runner.h — the Docker Engine implementation of struct
 * sp_runner (runners/runner.h).
 */
#ifndef SP_DOCKER_RUNNER_H
#define SP_DOCKER_RUNNER_H

#include "runners/docker/engine.h"
#include "runners/runner.h"

/*
 * A runner over engine e.  Takes ownership of e (freed with the runner
 * through r->ops->free).  Never NULL.  Its engine holds one libcurl
 * handle: use it from one thread at a time; r->ops->sibling gives
 * another runner with its own connection for another thread.
 */
struct sp_runner *sp_docker_runner_new(struct sp_engine *e);

/* The engine of a Docker runner (borrowed). */
struct sp_engine *sp_docker_runner_engine(struct sp_runner *r);

#endif
