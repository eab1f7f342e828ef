/*
 * push.c — `stagepipe push IMAGE REF...`: tag a local image and push it.
 *
 * The promote stage's last step on its own, so that registries and
 * credentials can be tried (and tested) without running a pipeline:
 * credentials are found as the docker CLI finds them (core/registry/auth.h),
 * progress is one line per layer that moved, and each pushed reference
 * is printed with its digest on stdout, ready for a deploy script.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/signals.h"
#include "core/registry/auth.h"
#include "core/base/error.h"
#include "core/pipeline/vars.h"
#include "runners/docker/engine.h"
#include "runners/docker/image.h"

/* Layers at least this big get a line per tenth pushed. */
#define BIG_LAYER (10ULL * 1000 * 1000)

static int run_push(int argc, char **argv);

const struct sp_cmd sp_cmd_push = {
	"push",
	"tag a local image and push it to a registry",
	"usage: stagepipe push [--docker-host HOST] [-q] IMAGE REF...\n"
	"\n"
	"Tags the local image IMAGE (an id or a name) as each REF\n"
	"(registry[:port]/repository[:tag]) and pushes it.  Progress goes to\n"
	"stderr, one line per layer; each pushed reference is printed on stdout\n"
	"as REF@sha256:....\n"
	"\n"
	"Registry credentials, first found wins: STAGEPIPE_REGISTRY_USER and\n"
	"STAGEPIPE_REGISTRY_PASSWORD (for every registry, or only the one named by\n"
	"STAGEPIPE_REGISTRY); DOCKER_AUTH_CONFIG; $DOCKER_CONFIG/config.json or\n"
	"~/.docker/config.json (credHelpers, credsStore, auths: what `docker login`\n"
	"writes); else none.  Passwords are never printed.\n"
	"\n"
	"      --docker-host HOST engine address (default: $DOCKER_HOST or\n"
	"                         unix:///var/run/docker.sock)\n"
	"  -q, --quiet            no progress, only errors and the pushed references\n"
	"\n"
	"Exit status: 0 pushed, 2 usage error (a bad reference, half-set credential\n"
	"variables, an unreadable config.json), 3 registry or engine error,\n"
	"130 interrupted.\n",
	run_push,
};

static void human(char *out, size_t len, unsigned long long n)
{
	if (n >= 1000ULL * 1000 * 1000)
		snprintf(out, len, "%.1f GB", (double)n / 1e9);
	else if (n >= 1000ULL * 1000)
		snprintf(out, len, "%.1f MB", (double)n / 1e6);
	else if (n >= 1000)
		snprintf(out, len, "%.1f kB", (double)n / 1e3);
	else
		snprintf(out, len, "%llu B", n);
}

/* The compact printer: layers that moved, big layers by tenths. */
static void on_event(void *ud, const struct sp_image_push_event *ev)
{
	FILE *f = ud;
	char size[32];

	switch (ev->kind) {
	case SP_IMAGE_PUSH_AUTH:
		fprintf(f, "  credentials: %s\n", ev->text);
		break;
	case SP_IMAGE_PUSH_LAYER:
		switch (ev->state) {
		case SP_IMAGE_LAYER_PUSHING:
			if (ev->total >= BIG_LAYER) {
				human(size, sizeof(size), ev->total);
				fprintf(f, "  %s pushing %s\n", ev->layer, size);
			}
			break;
		case SP_IMAGE_LAYER_PUSHED:
		case SP_IMAGE_LAYER_EXISTS:
			fprintf(f, "  %s %s\n", ev->layer, sp_image_layer_state_name(ev->state));
			break;
		case SP_IMAGE_LAYER_MOUNTED:
		case SP_IMAGE_LAYER_RETRYING:
			fprintf(f, "  %s %s\n", ev->layer, ev->text);
			break;
		default:
			break;
		}
		break;
	case SP_IMAGE_PUSH_PROGRESS:
		if (ev->total >= BIG_LAYER && ev->percent < 100)
			fprintf(f, "  %s %d%%\n", ev->layer, ev->percent);
		break;
	case SP_IMAGE_PUSH_MESSAGE:
	case SP_IMAGE_PUSH_DONE:
		break;
	}
	fflush(f);
}

static int run_push(int argc, char **argv)
{
	enum { OPT_HOST = 256 };
	static const struct option opts[] = {
		{ "docker-host", required_argument, NULL, OPT_HOST },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_engine *engine = NULL;
	struct sp_auth_opts ao;
	struct sp_image_push_opts po;
	const char *host = NULL, *image;
	int c, i, quiet = 0, status = SP_EXIT_OK;

	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_HOST: host = optarg; break;
		case 'q': quiet = 1; break;
		case 'h':
			sp_cmd_print_usage(&sp_cmd_push, stdout);
			return SP_EXIT_OK;
		default:
			return sp_cmd_usage_error(&sp_cmd_push, "bad option");
		}
	}
	if (argc - optind < 2)
		return sp_cmd_usage_error(&sp_cmd_push, "needs an image and at least one reference");
	image = argv[optind];
	sp_signals_install();
	if ((status = sp_cmd_open_engine(&engine, "push", host)) != 0)
		goto out;

	memset(&ao, 0, sizeof(ao));
	ao.getenv = sp_vars_process_env;
	memset(&po, 0, sizeof(po));
	po.on_event = quiet ? NULL : on_event;
	po.ud = stderr;
	po.cancel = sp_signals_cancel;
	for (i = optind + 1; i < argc; i++) {
		struct sp_image_push_result res;
		const char *ref = argv[i];

		if (sp_image_tag(engine, image, ref, &err) < 0) {
			status = sp_cmd_fail("push", &err);
			goto out;
		}
		if (!quiet)
			fprintf(stderr, "pushing %s\n", ref);
		if (sp_image_push_auto(engine, ref, &ao, &po, &res, &err) < 0) {
			status = sp_cmd_fail("push", &err);
			goto out;
		}
		if (!quiet)
			fprintf(stderr, "%s: %zu layer%s pushed, %zu already present, in %.1fs\n",
				ref, res.pushed, res.pushed == 1 ? "" : "s",
				res.existing + res.mounted, res.seconds);
		printf("%s@%s\n", ref, res.digest);
		fflush(stdout);
		sp_image_push_result_release(&res);
	}
out:
	sp_engine_free(engine);
	return status;
}
