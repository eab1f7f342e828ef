/*
 * agent.c — `stagepipe agent`: run jobs for a stagepipe server on this machine's engine.
 *
 * Not implemented yet: this entry keeps the command table and help honest.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "core/base/error.h"

static int run_agent(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "stagepipe agent: not yet implemented\n");
	return SP_EXIT_USAGE;
}

const struct sp_cmd sp_cmd_agent = {
	"agent",
	"run jobs for a stagepipe server on this machine's engine (not yet)",
	"usage: stagepipe agent\n\nNot implemented yet.\n",
	run_agent,
};
