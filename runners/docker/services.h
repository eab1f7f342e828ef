/*
 * runners/docker/services.h — a stage's services on the Docker Engine;
 * the docker runner's struct sp_services_ops (runners/runner.h) calls
 * these.  See services.c for networking and readiness.
 */
#ifndef SP_DOCKER_SERVICES_H
#define SP_DOCKER_SERVICES_H

#include "runners/docker/engine.h"
#include "runners/runner.h"

/* As sp_services_ops.up; e is borrowed and must outlive *out. */
int sp_docker_services_up(struct sp_engine *e, const struct sp_services_opts *o,
			  struct sp_services **out, size_t *failed, struct sp_error *err);
const char *sp_docker_services_network_mode(const struct sp_services *s);
int sp_docker_services_logs(struct sp_services *s, size_t i, unsigned tail, sp_runner_log_fn log,
			    void *log_ud, struct sp_error *err);
/* Removes everything and frees s (may be NULL). */
int sp_docker_services_down(struct sp_services *s, struct sp_error *err);

#endif
