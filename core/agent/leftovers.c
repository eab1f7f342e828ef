/*
 * leftovers.c — the containers an earlier run of this agent left behind;
 * see sp_agent_remove_leftovers in agent.h.  The engine side of it; the
 * log lines are the caller's.
 */
#include "core/agent/agent.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/pipeline/vars.h"
#include "runners/docker/container.h"
#include "runners/docker/engine.h"

struct leftovers {
	struct sp_engine *engine;
	char host[256];
	unsigned removed, failed, kept;
	struct sp_error first;   /* the first removal that failed */
};

static int remove_one(void *ud, const struct sp_container_summary *c)
{
	struct leftovers *lo = ud;
	struct sp_error err = SP_ERROR_INIT;

	/* a run still going on this machine (another agent of the same name,
	 * on another server): not ours to touch */
	if (sp_container_owner_alive(c, lo->host)) {
		lo->kept++;
		return 0;
	}
	if (sp_container_remove(lo->engine, c->id, &err) < 0) {
		if (!lo->failed++)
			sp_error_set(&lo->first, err.code, "%.12s %s: %s", c->id, c->name, err.msg);
		return 0;
	}
	lo->removed++;
	return 0;
}

int sp_agent_remove_leftovers(const char *name, const char *docker_host, unsigned *removed,
			      unsigned *kept, struct sp_error *err)
{
	struct sp_engine_config cfg;
	struct leftovers lo;
	char label[128];
	int rc;

	memset(&lo, 0, sizeof(lo));
	*removed = 0;
	*kept = 0;
	if (gethostname(lo.host, sizeof(lo.host)) < 0)
		snprintf(lo.host, sizeof(lo.host), "unknown");
	lo.host[sizeof(lo.host) - 1] = '\0';
	rc = sp_engine_config_from_env(&cfg, docker_host, sp_vars_process_env, NULL, err);
	if (rc < 0)
		return rc;
	rc = sp_engine_open(&lo.engine, &cfg, err);
	sp_engine_config_release(&cfg);
	if (rc < 0)
		return rc;
	snprintf(label, sizeof(label), "io.stagepipe.agent=%s", name);
	rc = sp_container_list_labelled(lo.engine, label, remove_one, &lo, err);
	*removed = lo.removed;
	*kept = lo.kept;
	if (rc == 0 && lo.failed)
		rc = sp_error_set(err, SP_EENGINE, "%u container%s could not be removed, %s",
				  lo.failed, lo.failed == 1 ? "" : "s", lo.first.msg);
	sp_engine_free(lo.engine);
	return rc;
}
