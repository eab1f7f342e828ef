/*
 * serve.c — `stagepipe serve`: run a webhook-triggered build server.
 *
 * Not implemented yet: this entry keeps the command table and help honest.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "core/base/error.h"

static int run_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "stagepipe serve: not yet implemented\n");
	return SP_EXIT_USAGE;
}

const struct sp_cmd sp_cmd_serve = {
	"serve",
	"run a webhook-triggered build server (not yet)",
	"usage: stagepipe serve\n\nNot implemented yet.\n",
	run_serve,
};
