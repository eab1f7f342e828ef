/*
 * context.c — `stagepipe context`: show what a build would send.
 *
 * Walks a build context exactly as the docker runner streams it
 * (runners/docker/context.h: .dockerignore with docker's semantics, the
 * Dockerfile and .dockerignore always kept) and prints a summary, or with
 * --list every entry and its size.  It answers "why is my upload 2 GB?" and
 * "is this file in the image's context?" without an engine.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/base/error.h"
#include "runners/docker/context.h"

static int run_context(int argc, char **argv);

const struct sp_cmd sp_cmd_context = {
	"context",
	"show the build context a build would send (after .dockerignore)",
	"usage: stagepipe context [--list] [-f DOCKERFILE] [DIR]\n"
	"\n"
	"Walks the build context folder DIR (default: .) the way a build sends it\n"
	"to the engine, applying DIR/.dockerignore as docker does, and prints how\n"
	"many files and bytes would be sent and how many paths are excluded.\n"
	"The Dockerfile and .dockerignore are always sent.\n"
	"\n"
	"  -l, --list             print every entry that would be sent with its\n"
	"                         size (folders and symlinks marked), then the total\n"
	"  -f, --file DOCKERFILE  the Dockerfile, relative to DIR (default: Dockerfile)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 ok, 2 usage or .dockerignore error, 3 DIR cannot be read.\n",
	run_context,
};

/* "1.5 MiB" for bytes >= 1024: one decimal. */
static void human_size(char *out, size_t n, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(out, n, "%.1f %s", v, units[u]);
}

static int print_entry(const char *path, uint64_t size, enum sp_context_type type, void *ud)
{
	(void)ud;
	switch (type) {
	case SP_CONTEXT_DIR:
		printf("%12s  %s/\n", "dir", path);
		break;
	case SP_CONTEXT_SYMLINK:
		printf("%12s  %s\n", "link", path);
		break;
	case SP_CONTEXT_FILE:
	default:
		printf("%12" PRIu64 "  %s\n", size, path);
		break;
	}
	return 0;
}

static int count_only(const char *path, uint64_t size, enum sp_context_type type, void *ud)
{
	(void)path;
	(void)size;
	(void)type;
	(void)ud;
	return 0;
}

static void print_summary(const char *dir, const struct sp_context_counts *c)
{
	char size[32];

	printf("build context %s: %" PRIu64 " file%s, ", dir, c->files, c->files == 1 ? "" : "s");
	if (c->bytes < 1024) {
		printf("%" PRIu64 " byte%s", c->bytes, c->bytes == 1 ? "" : "s");
	} else {
		human_size(size, sizeof(size), c->bytes);
		printf("%s (%" PRIu64 " bytes)", size, c->bytes);
	}
	printf(", %" PRIu64 " folder%s", c->dirs, c->dirs == 1 ? "" : "s");
	if (c->symlinks)
		printf(", %" PRIu64 " symlink%s", c->symlinks, c->symlinks == 1 ? "" : "s");
	printf("\n%" PRIu64 " path%s excluded by .dockerignore", c->excluded,
	       c->excluded == 1 ? "" : "s");
	if (c->skipped)
		printf("; %" PRIu64 " socket%s, device%s or fifo%s skipped", c->skipped,
		       c->skipped == 1 ? "" : "s", c->skipped == 1 ? "" : "s",
		       c->skipped == 1 ? "" : "s");
	printf("\n");
}

static int run_context(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "list", no_argument, NULL, 'l' },
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context_counts counts;
	const char *dir = ".", *dockerfile = NULL;
	int list = 0, c, rc;

	opterr = 0; /* our own messages below */
	while ((c = getopt_long(argc, argv, "+:lf:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			list = 1;
			break;
		case 'f':
			dockerfile = optarg;
			break;
		case 'h':
			sp_cmd_print_usage(&sp_cmd_context, stdout);
			return SP_EXIT_OK;
		case ':':
			return sp_cmd_usage_error(&sp_cmd_context, "option %s needs a value",
						  argv[optind - 1]);
		default:
			if (optopt)
				return sp_cmd_usage_error(&sp_cmd_context, "unknown option -%c",
							  optopt);
			return sp_cmd_usage_error(&sp_cmd_context, "unknown option %s",
						  argv[optind - 1]);
		}
	}
	if (optind < argc)
		dir = argv[optind++];
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_context, "unexpected argument \"%s\"",
					  argv[optind]);

	memset(&counts, 0, sizeof(counts));
	rc = sp_context_list(dir, dockerfile, list ? print_entry : count_only, NULL, &counts, &err);
	if (rc < 0) {
		fflush(stdout);
		fprintf(stderr, "stagepipe context: %s\n", err.msg);
		return sp_error_exit_status(rc);
	}
	print_summary(dir, &counts);
	return SP_EXIT_OK;
}
