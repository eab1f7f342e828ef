/*
 * cmd.h — the subcommand table.
 *
 * Each cmd/<verb>.c defines one `const struct sp_cmd sp_cmd_<verb>`; the
 * table in cmd/main.c lists them.  A command's run function gets argv with
 * argv[0] set to the command name (ready for getopt_long) and returns the
 * process exit status (see core/base/error.h: SP_EXIT_*).
 */
#ifndef SP_CMD_H
#define SP_CMD_H

#include <stdio.h>

struct sp_cmd {
	const char *name;
	const char *summary;  /* one line for `stagepipe help` */
	const char *usage;    /* full text for `stagepipe help NAME` / -h */
	int (*run)(int argc, char **argv);
};

/* Prints "stagepipe CMD: <message>" and the usage hint to stderr; returns 2. */
int sp_cmd_usage_error(const struct sp_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints cmd->usage to f. */
void sp_cmd_print_usage(const struct sp_cmd *cmd, FILE *f);

extern const struct sp_cmd sp_cmd_validate;
extern const struct sp_cmd sp_cmd_build;
extern const struct sp_cmd sp_cmd_context;
extern const struct sp_cmd sp_cmd_prune;
extern const struct sp_cmd sp_cmd_push;
extern const struct sp_cmd sp_cmd_run;
extern const struct sp_cmd sp_cmd_serve;
extern const struct sp_cmd sp_cmd_agent;
extern const struct sp_cmd sp_cmd_store;
extern const struct sp_cmd sp_cmd_init;

#endif
