/*
 * build.c — BuildKit builds through the Engine API; see build.h.
 *
 * One request: the tar of the context goes up as a chunked body pulled
 * from sp_context_read, and the JSON-lines answer comes down into
 * sp_progress_feed.  Neither side is buffered beyond a chunk.
 *
 * Cancelling: when the caller's cancel callback fires, the transfer is
 * aborted (the daemon cancels a build whose client went away) and, to be
 * sure, POST /build/cancel?id=<buildid> is sent on a second connection.
 */
#include "runners/docker/build.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/buf.h"
#include "core/base/cancel.h"
#include "core/base/error.h"
#include "core/base/ids.h"
#include "core/base/xjson.h"
#include "core/base/xalloc.h"
#include "runners/docker/context.h"
#include "runners/docker/progress.h"

struct build_io {
	struct sp_context *ctx;
	struct sp_progress *progress;
	const struct sp_build_opts *o;
};

/* plain-printer lines → the caller's log */
static void on_line(void *ud, const char *line, size_t len)
{
	const struct sp_build_opts *o = ud;

	o->log(o->log_ud, SP_STREAM_BUILD, line, len);
}

static int read_context(void *ud, char *buf, size_t size, size_t *nread, struct sp_error *err)
{
	struct build_io *io = ud;

	return sp_context_read(io->ctx, buf, size, nread, err);
}

static int feed_progress(void *ud, const char *data, size_t len, struct sp_error *err)
{
	struct build_io *io = ud;

	return sp_progress_feed(io->progress, data, len, err);
}

static char *kv_json(const struct sp_build_kv *kv, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	char *s;
	size_t i;

	for (i = 0; i < n; i++)
		cJSON_AddStringToObject(o, kv[i].name, kv[i].value);
	s = sp_xjson_print(o);
	cJSON_Delete(o);
	return s;
}

static void add_param(struct sp_buf *q, const char *name, const char *value)
{
	sp_buf_addf(q, "%s%s=", q->len ? "&" : "?", name);
	sp_engine_urlencode(q, value);
}

static void cancel_on_daemon(struct sp_engine *e, const char *build_id)
{
	struct sp_engine *second = sp_engine_dup(e);
	struct sp_buf path = SP_BUF_INIT;

	sp_buf_addstr(&path, "/build/cancel?id=");
	sp_engine_urlencode(&path, build_id);
	/* best effort: the dropped connection cancels the build anyway */
	(void)sp_engine_call(second, "POST", path.data, NULL, NULL, NULL);
	sp_buf_release(&path);
	sp_engine_free(second);
}

int sp_docker_build(struct sp_engine *e, const struct sp_build_opts *o,
		    struct sp_build_result *res, struct sp_error *err)
{
	struct sp_engine_request req;
	struct build_io io = { NULL, NULL, o };
	struct sp_progress_plain *plain = NULL;
	struct sp_progress_handler handler;
	struct sp_buf q = SP_BUF_INIT;
	const char *dockerfile = o->dockerfile ? o->dockerfile : "Dockerfile";
	char build_id[64], *json, *path = NULL;
	int64_t start = sp_cancel_now_ms();
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((rc = sp_context_open(&io.ctx, o->context_dir, dockerfile, err)) < 0)
		goto out;
	if (o->log) {
		plain = sp_progress_plain_new_cb(on_line, (void *)o);
		sp_progress_plain_handler(plain, &handler);
	}
	io.progress = sp_progress_new(o->log ? &handler : NULL);
	sp_id_random(build_id, sizeof(build_id), "stagepipe", 8);

	add_param(&q, "version", "2");
	add_param(&q, "dockerfile", sp_context_dockerfile(io.ctx));
	if (o->target)
		add_param(&q, "target", o->target);
	for (i = 0; i < o->ntags; i++)
		add_param(&q, "t", o->tags[i]);
	if (o->nargs) {
		json = kv_json(o->args, o->nargs);
		add_param(&q, "buildargs", json);
		free(json);
	}
	if (o->nlabels) {
		json = kv_json(o->labels, o->nlabels);
		add_param(&q, "labels", json);
		free(json);
	}
	add_param(&q, "networkmode", sp_network_name(o->network));
	if (o->ncache_from) {
		/* moby hands these to BuildKit's dockerfile frontend as
		 * "cache-from": each image's inline cache metadata (its config's
		 * moby.buildkit.cache.v0) is read from its registry and matching
		 * layers are pulled instead of rebuilt */
		cJSON *arr = cJSON_CreateArray();
		for (i = 0; i < o->ncache_from; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(o->cache_from[i]));
		json = sp_xjson_print(arr);
		cJSON_Delete(arr);
		add_param(&q, "cachefrom", json);
		free(json);
	}
	if (o->no_cache)
		add_param(&q, "nocache", "1");
	if (o->pull)
		add_param(&q, "pull", "1");
	add_param(&q, "buildid", build_id);
	path = sp_xasprintf("/build%s", q.data);

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = path;
	req.content_type = "application/x-tar";
	req.read = read_context;
	req.read_ud = &io;
	req.data = feed_progress;
	req.data_ud = &io;
	req.cancel = o->cancel;
	req.cancel_ud = o->cancel_ud;

	rc = sp_engine_request(e, &req, NULL, err);
	if (rc == SP_ECANCELLED) {
		cancel_on_daemon(e, build_id);
		sp_error_set(err, SP_ECANCELLED, "build of %s cancelled", o->target ? o->target : "image");
		goto out;
	}
	if (rc < 0) {
		/* show what the stream said so far; the transport error is the one reported */
		sp_progress_abandon(io.progress);
		sp_error_prefix(err, "building %s", o->target ? o->target : "image");
		goto out;
	}
	if ((rc = sp_progress_finish(io.progress, err)) < 0) {
		if (rc != SP_EFAILED)
			sp_error_prefix(err, "building %s", o->target ? o->target : "image");
		goto out;
	}
	res->image_id = sp_xstrdup(sp_progress_image_id(io.progress));
	sp_context_stats(io.ctx, &res->context_files, &res->context_bytes);
	res->seconds = (double)(sp_cancel_now_ms() - start) / 1000.0;
out:
	free(path);
	sp_buf_release(&q);
	sp_progress_free(io.progress);
	sp_progress_plain_free(plain);
	sp_context_free(io.ctx);
	return rc;
}

