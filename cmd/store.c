/*
 * store.c — `stagepipe store copy`: from the SQLite store of a data folder
 * to a new PostgreSQL store (core/store/copy.c does the work).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/base/error.h"
#include "core/store/store.h"

static int run_store(int argc, char **argv);

const struct sp_cmd sp_cmd_store = {
	"store",
	"copy a server's SQLite store into PostgreSQL",
	"usage: stagepipe store copy --from sqlite:PATH (--to URL | --to-env NAME)\n"
	"\n"
	"Copies every job, stage, delivery and commit-status row of the SQLite\n"
	"store PATH (DATA/stagepipe.db; stop its server first) into the PostgreSQL\n"
	"store at URL, ids kept, in one transaction; both are migrated to this\n"
	"stagepipe's schema first.  The target must hold no job yet.  Logs and\n"
	"artifacts stay files in the data folder: point the servers' store: at URL\n"
	"and keep their data: as it was.\n"
	"\n"
	"      --from sqlite:PATH  the SQLite database\n"
	"      --to URL            the PostgreSQL database (postgres://...)\n"
	"      --to-env NAME       the URL from environment variable NAME (keeps a\n"
	"                          password off the command line)\n"
	"\n"
	"Exit status: 0 copied, 2 usage or a target that is not empty, 3 a store\n"
	"could not be read or written (nothing was copied).\n",
	run_store,
};

static int run_store(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "to-env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store_copy_stats stats;
	const char *from = NULL, *to = NULL, *to_env = NULL;
	char shown[512];
	int c, rc;

	if (argc < 2 || strcmp(argv[1], "copy")) {
		if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
			sp_cmd_print_usage(&sp_cmd_store, stdout);
			return SP_EXIT_OK;
		}
		return sp_cmd_usage_error(&sp_cmd_store, "the one subcommand is copy");
	}
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'e': to_env = optarg; break;
		case 'h': sp_cmd_print_usage(&sp_cmd_store, stdout); return SP_EXIT_OK;
		default: return sp_cmd_usage_error(&sp_cmd_store, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_store, "unexpected argument \"%s\"", argv[optind]);
	if (!from || strncmp(from, "sqlite:", 7) || !from[7])
		return sp_cmd_usage_error(&sp_cmd_store, "--from sqlite:PATH is required");
	if (!to == !to_env)
		return sp_cmd_usage_error(&sp_cmd_store, "give --to URL or --to-env NAME");
	if (to_env) {
		to = getenv(to_env);
		if (!to || !*to)
			return sp_cmd_usage_error(&sp_cmd_store, "environment variable %s is %s",
						  to_env, to ? "empty" : "not set");
	}
	if (strncmp(to, "postgres://", 11) && strncmp(to, "postgresql://", 13))
		return sp_cmd_usage_error(&sp_cmd_store, "the target must be a postgres:// URL");
	sp_store_pg_mask_url(to, shown, sizeof(shown));
	rc = sp_store_copy(from + 7, to, &stats, &err);
	if (rc) {
		fprintf(stderr, "stagepipe store: %s\n", err.msg);
		return rc == SP_ECONFIG ? SP_EXIT_USAGE : SP_EXIT_INFRA;
	}
	printf("copied %s to %s: %lld jobs, %lld stages, %lld deliveries, %lld status rows,"
	       " %lld log files (%lld bytes)\n", from + 7, shown, (long long)stats.jobs,
	       (long long)stats.stages, (long long)stats.deliveries, (long long)stats.outbox,
	       (long long)stats.logs, (long long)stats.log_bytes);
	return SP_EXIT_OK;
}
