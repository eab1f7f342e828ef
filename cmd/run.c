/*
 * run.c — `stagepipe run`: run the pipeline on the working tree (or a clean checkout).
 *
 * Not implemented yet: this entry keeps the command table and help honest.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "core/error.h"

static int run_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "stagepipe run: not yet implemented\n");
	return SP_EXIT_USAGE;
}

const struct sp_cmd sp_cmd_run = {
	"run",
	"run the pipeline on the working tree (or a clean checkout) (not yet)",
	"usage: stagepipe run\n\nNot implemented yet.\n",
	run_run,
};
