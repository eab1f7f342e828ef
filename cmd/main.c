/*
 * main.c — the stagepipe command: global options and the command table.
 *
 * Each subcommand lives in cmd/<name>.c and is listed in `commands`
 * below; this file only finds the command and hands it argv.
 */
#include <curl/curl.h>
#include <libxml/parser.h>
#include <git2.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>
#include <cjson/cJSON.h>

#include "cmd/cmd.h"
#include "core/base/error.h"
#include "core/git/checkout.h"

static const struct sp_cmd *const commands[] = {
	&sp_cmd_run,
	&sp_cmd_validate,
	&sp_cmd_build,
	&sp_cmd_context,
	&sp_cmd_prune,
	&sp_cmd_push,
	&sp_cmd_serve,
	&sp_cmd_agent,
	&sp_cmd_store,
	&sp_cmd_init,
	NULL,
};

static const struct sp_cmd *find_command(const char *name)
{
	size_t i;

	for (i = 0; commands[i]; i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

int sp_cmd_usage_error(const struct sp_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stagepipe %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'stagepipe help %s'.\n", cmd->name);
	return SP_EXIT_USAGE;
}

void sp_cmd_print_usage(const struct sp_cmd *cmd, FILE *f)
{
	fputs(cmd->usage, f);
}

static void print_overview(FILE *f)
{
	size_t i;

	fputs("usage: stagepipe [--version] [--help] COMMAND [ARGS]\n\n"
	      "CI pipelines for staged Docker builds: test the `testing` target with\n"
	      "pytest and coverage, then promote the `runtime` target.\n\n"
	      "Commands:\n", f);
	for (i = 0; commands[i]; i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fputs("  help       show help for a command\n\n"
	      "Exit status: 0 passed, 1 pipeline failed, 2 usage or pipeline-file error,\n"
	      "3 engine/registry/infrastructure error, 130 interrupted.\n"
	      "See 'stagepipe help COMMAND' for a command's options.\n", f);
}

static int print_version(void)
{
	curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	int gmaj = 0, gmin = 0, grev = 0;

	git_libgit2_version(&gmaj, &gmin, &grev);
	printf("stagepipe %s\n", SP_VERSION);
	printf("libyaml %s, libgit2 %d.%d.%d, libcurl %s, cJSON %s\n",
	       yaml_get_version_string(), gmaj, gmin, grev, cv->version, cJSON_Version());
	return SP_EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
	const struct sp_cmd *cmd;

	if (argc < 2) {
		print_overview(stdout);
		return SP_EXIT_OK;
	}
	cmd = find_command(argv[1]);
	if (!cmd) {
		fprintf(stderr, "stagepipe help: no such command \"%s\"\n", argv[1]);
		return SP_EXIT_USAGE;
	}
	sp_cmd_print_usage(cmd, stdout);
	return SP_EXIT_OK;
}

int main(int argc, char **argv)
{
	const struct sp_cmd *cmd;
	int status;

	/* file names in build contexts are bytes in the user's encoding */
	setlocale(LC_CTYPE, "");
	if (argc < 2) {
		print_overview(stderr);
		return SP_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))
		return print_version();
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(1, argv);
	if (!strcmp(argv[1], "help"))
		return cmd_help(argc - 1, argv + 1);
	if (argv[1][0] == '-') {
		fprintf(stderr, "stagepipe: unknown option %s\n", argv[1]);
		print_overview(stderr);
		return SP_EXIT_USAGE;
	}
	cmd = find_command(argv[1]);
	if (!cmd) {
		fprintf(stderr, "stagepipe: no such command \"%s\"; see 'stagepipe help'\n", argv[1]);
		return SP_EXIT_USAGE;
	}
	/* once per process, before any thread: libcurl and libgit2 want it so */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	git_libgit2_init();
	(void)sp_checkout_global_init();
	xmlInitParser();
	status = cmd->run(argc - 1, argv + 1);
	xmlCleanupParser();
	git_libgit2_shutdown();
	curl_global_cleanup();
	return status;
}
