/*
 * runner.c — helpers shared by every runner; see runner.h.
 */
#include "runners/runner.h"

#include <stdlib.h>
#include <string.h>

void sp_build_result_release(struct sp_build_result *res)
{
	if (!res)
		return;
	free(res->image_id);
	memset(res, 0, sizeof(*res));
}

void sp_push_result_release(struct sp_push_result *res)
{
	if (!res)
		return;
	free(res->digest);
	memset(res, 0, sizeof(*res));
}
