/*
 * image.c — tag, inspect, remove and push images on the engine; see
 * image.h.
 *
 * The push stream decoder keeps one small record per layer (its id, the
 * last state, how many tenths of its bytes have been reported) and turns
 * the engine's chatty stream — a "Pushing" line every few hundred
 * kilobytes — into one event per state change.  The first error line
 * wins; it is classified by the words registries and the engine use
 * (docker/distribution's "unauthorized: authentication required", the
 * engine's "no basic auth credentials", Docker Hub's "denied: requested
 * access to the resource is denied"; Go's "connection refused", "no such
 * host", "i/o timeout") so the user gets one line that names the
 * registry and says what to do.
 *
 * A push has no total timeout (a big layer on a slow link is fine) but
 * must keep moving: the engine's cancel hook, polled about once a
 * second, also gives up after stall_secs without a byte from the engine.
 */
#include "runners/docker/image.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/registry/auth.h"
#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/registry/imageref.h"
#include "core/base/xalloc.h"
#include "runners/docker/jsonmsg.h"

/* ---- names in request paths ---- */

/* Image names and ids go into the URL path as they are: only the
 * characters of a reference or an id are allowed. */
static int check_name(const char *name, struct sp_error *err)
{
	const char *s;

	if (!name || !*name)
		return sp_error_set(err, SP_ECONFIG, "empty image name");
	for (s = name; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!(isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' ||
		      c == '@' || c == '[' || c == ']'))
			return sp_error_set(err, SP_ECONFIG, "invalid image name \"%.200s\"", name);
	}
	if (strstr(name, ".."))
		return sp_error_set(err, SP_ECONFIG, "invalid image name \"%.200s\"", name);
	return 0;
}

/* "reg:5000/team/app" and the tag ("latest" when none) of a reference. */
static int split_ref(const char *ref, char **repo, char **tag, struct sp_error *err)
{
	struct sp_imageref r;
	int rc;

	*repo = *tag = NULL;
	if ((rc = sp_imageref_parse(&r, ref, err)) < 0)
		return sp_error_prefix(err, "invalid image reference \"%.200s\"", ref);
	if (*r.digest) {
		sp_imageref_release(&r);
		return sp_error_set(err, SP_ECONFIG, "\"%.200s\" names a digest; tag and push need "
				    "a tag (repository:tag)", ref);
	}
	*repo = *r.domain ? sp_xasprintf("%s/%s", r.domain, r.path) : sp_xstrdup(r.path);
	*tag = sp_xstrdup(*r.tag ? r.tag : "latest");
	sp_imageref_release(&r);
	return 0;
}

/* ---- tag, inspect, remove ---- */

int sp_image_tag(struct sp_engine *e, const char *image, const char *ref, struct sp_error *err)
{
	struct sp_buf path = SP_BUF_INIT;
	char *repo = NULL, *tag = NULL;
	int rc;

	if ((rc = check_name(image, err)) < 0 || (rc = split_ref(ref, &repo, &tag, err)) < 0)
		goto out;
	sp_buf_addf(&path, "/images/%s/tag?repo=", image);
	sp_engine_urlencode(&path, repo);
	sp_buf_addstr(&path, "&tag=");
	sp_engine_urlencode(&path, tag);
	if ((rc = sp_engine_call(e, "POST", path.data, NULL, NULL, err)) < 0)
		sp_error_prefix(err, "tagging %s as %s:%s", image, repo, tag);
out:
	sp_buf_release(&path);
	free(repo);
	free(tag);
	return rc;
}

static char **string_array(const cJSON *a)
{
	const cJSON *c;
	size_t n = 0;
	char **out;

	cJSON_ArrayForEach(c, a)
		n++;
	out = sp_xcalloc(n + 1, sizeof(*out));
	n = 0;
	cJSON_ArrayForEach(c, a)
		if (cJSON_IsString(c))
			out[n++] = sp_xstrdup(c->valuestring);
	return out;
}

/*
 * obj.name as a count of bytes: 0 unless a positive number, clamped to
 * ULLONG_MAX (casting a double beyond it, such as 1e300 or the inf cJSON
 * reads for 1e999, is undefined behaviour; found by tests/fuzz/fuzz_push).
 */
static unsigned long long json_u64(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsNumber(v) || !(v->valuedouble > 0))
		return 0;
	if (v->valuedouble >= 18446744073709551616.0) /* 2^64 */
		return ULLONG_MAX;
	return (unsigned long long)v->valuedouble;
}

int sp_image_inspect(struct sp_engine *e, const char *name, struct sp_image_info *out,
		     struct sp_error *err)
{
	struct sp_buf body = SP_BUF_INIT;
	char *path = NULL;
	cJSON *j = NULL;
	const cJSON *id;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_name(name, err)) < 0)
		goto out;
	path = sp_xasprintf("/images/%s/json", name);
	if ((rc = sp_engine_call(e, "GET", path, NULL, &body, err)) < 0) {
		sp_error_prefix(err, "inspecting image %s", name);
		goto out;
	}
	j = cJSON_ParseWithLength(body.data, body.len);
	id = cJSON_GetObjectItemCaseSensitive(j, "Id");
	if (!cJSON_IsString(id)) {
		rc = sp_error_set(err, SP_EENGINE, "inspecting image %s: the engine's answer has "
				  "no Id", name);
		goto out;
	}
	out->id = sp_xstrdup(id->valuestring);
	out->repo_tags = string_array(cJSON_GetObjectItemCaseSensitive(j, "RepoTags"));
	out->repo_digests = string_array(cJSON_GetObjectItemCaseSensitive(j, "RepoDigests"));
	out->size = json_u64(j, "Size");
out:
	if (rc < 0)
		sp_image_info_release(out);
	cJSON_Delete(j);
	sp_buf_release(&body);
	free(path);
	return rc;
}

static void free_strings(char **v)
{
	size_t i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void sp_image_info_release(struct sp_image_info *info)
{
	if (!info)
		return;
	free(info->id);
	free_strings(info->repo_tags);
	free_strings(info->repo_digests);
	memset(info, 0, sizeof(*info));
}

const char *sp_image_info_repo_digest(const struct sp_image_info *info, const char *repo)
{
	size_t i, n = strlen(repo);

	for (i = 0; info->repo_digests && info->repo_digests[i]; i++) {
		const char *d = info->repo_digests[i];
		if (!strncmp(d, repo, n) && d[n] == '@')
			return d + n + 1;
	}
	return NULL;
}

int sp_image_remove(struct sp_engine *e, const char *name, bool force, struct sp_error *err)
{
	char *path = NULL;
	int rc;

	if ((rc = check_name(name, err)) < 0)
		return rc;
	path = sp_xasprintf("/images/%s?force=%d", name, force ? 1 : 0);
	if ((rc = sp_engine_call(e, "DELETE", path, NULL, NULL, err)) < 0)
		sp_error_prefix(err, "removing image %s", name);
	free(path);
	return rc;
}

/* ---- the push stream decoder ---- */

struct layer {
	char *id;
	enum sp_image_layer_state state;
	int decile;                    /* last tenth reported */
	unsigned long long current, total;
};

struct sp_image_push_decoder {
	char *ref, *registry, *auth_desc;
	sp_image_push_event_fn on_event;
	void *ud;
	struct sp_buf line;            /* a line split across chunks */
	size_t lineno;
	struct layer *layers;
	size_t nlayers, alloc;
	char *error;                   /* the daemon's first error */
	char *tag, *digest;
	unsigned long long size;
	int feed_rc;                   /* a feed error sticks */
	struct sp_error feed_err;
};

const char *sp_image_layer_state_name(enum sp_image_layer_state s)
{
	switch (s) {
	case SP_IMAGE_LAYER_PREPARING: return "preparing";
	case SP_IMAGE_LAYER_WAITING: return "waiting";
	case SP_IMAGE_LAYER_PUSHING: return "pushing";
	case SP_IMAGE_LAYER_PUSHED: return "pushed";
	case SP_IMAGE_LAYER_EXISTS: return "already exists";
	case SP_IMAGE_LAYER_MOUNTED: return "mounted";
	case SP_IMAGE_LAYER_RETRYING: return "retrying";
	}
	return "?";
}

struct sp_image_push_decoder *sp_image_push_decoder_new(const struct sp_image_push_decoder_opts *o)
{
	struct sp_image_push_decoder *d = sp_xcalloc(1, sizeof(*d));

	d->ref = sp_xstrdup(o->ref ? o->ref : "the image");
	d->registry = sp_xstrdup(o->registry ? o->registry : "the registry");
	d->auth_desc = o->auth_desc ? sp_xstrdup(o->auth_desc) : NULL;
	d->on_event = o->on_event;
	d->ud = o->ud;
	sp_buf_init(&d->line, SP_IMAGE_PUSH_LINE_MAX);
	return d;
}

void sp_image_push_decoder_free(struct sp_image_push_decoder *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->nlayers; i++)
		free(d->layers[i].id);
	free(d->layers);
	sp_buf_release(&d->line);
	free(d->ref);
	free(d->registry);
	free(d->auth_desc);
	free(d->error);
	free(d->tag);
	free(d->digest);
	free(d);
}

static void emit(const struct sp_image_push_decoder *d, const struct sp_image_push_event *ev)
{
	if (d->on_event)
		d->on_event(d->ud, ev);
}

static int parse_state(const char *s, enum sp_image_layer_state *out)
{
	if (!strcmp(s, "Preparing"))
		*out = SP_IMAGE_LAYER_PREPARING;
	else if (!strcmp(s, "Waiting"))
		*out = SP_IMAGE_LAYER_WAITING;
	else if (!strcmp(s, "Pushing"))
		*out = SP_IMAGE_LAYER_PUSHING;
	else if (!strcmp(s, "Pushed"))
		*out = SP_IMAGE_LAYER_PUSHED;
	else if (!strcmp(s, "Layer already exists"))
		*out = SP_IMAGE_LAYER_EXISTS;
	else if (!strncmp(s, "Mounted from ", 13))
		*out = SP_IMAGE_LAYER_MOUNTED;
	else if (!strncmp(s, "Retrying in ", 12))
		*out = SP_IMAGE_LAYER_RETRYING;
	else
		return -1;
	return 0;
}

/* The record for layer id (*is_new when just added); NULL past the cap. */
static struct layer *layer_for(struct sp_image_push_decoder *d, const char *id, bool *is_new)
{
	size_t i;

	*is_new = false;
	for (i = 0; i < d->nlayers; i++)
		if (!strcmp(d->layers[i].id, id))
			return &d->layers[i];
	if (d->nlayers >= SP_IMAGE_PUSH_LAYERS_MAX)
		return NULL;
	SP_GROW(d->layers, d->alloc, d->nlayers + 1);
	memset(&d->layers[d->nlayers], 0, sizeof(d->layers[0]));
	d->layers[d->nlayers].id = sp_xstrdup(id);
	*is_new = true;
	return &d->layers[d->nlayers++];
}

static void on_layer_status(struct sp_image_push_decoder *d, const char *id, const char *status,
			    enum sp_image_layer_state st, const cJSON *json)
{
	struct sp_image_push_event ev;
	struct layer *l;
	bool is_new;

	if (!(l = layer_for(d, id, &is_new)))
		return;
	if (st == SP_IMAGE_LAYER_PUSHING) {
		const cJSON *pd = cJSON_GetObjectItemCaseSensitive(json, "progressDetail");
		l->current = json_u64(pd, "current");
		l->total = json_u64(pd, "total");
	}
	if (is_new || l->state != st) {
		l->state = st;
		memset(&ev, 0, sizeof(ev));
		ev.kind = SP_IMAGE_PUSH_LAYER;
		ev.layer = l->id;
		ev.state = st;
		ev.text = status;
		ev.current = l->current;
		ev.total = l->total;
		emit(d, &ev);
	}
	if (st == SP_IMAGE_LAYER_PUSHING && l->total) {
		unsigned long long pct = l->current >= l->total ? 100 : l->current * 100 / l->total;
		int dec = (int)(pct / 10 * 10);
		if (dec >= 10 && dec > l->decile) {
			l->decile = dec;
			memset(&ev, 0, sizeof(ev));
			ev.kind = SP_IMAGE_PUSH_PROGRESS;
			ev.layer = l->id;
			ev.state = st;
			ev.current = l->current;
			ev.total = l->total;
			ev.percent = dec;
			emit(d, &ev);
		}
	}
}

static int process_line(struct sp_image_push_decoder *d, const char *s, size_t n, struct sp_error *err)
{
	const cJSON *aux, *status, *id;
	const char *error;
	cJSON *json = NULL;
	int rc = 0;

	d->lineno++;
	if (sp_jsonmsg_parse(&json, &s, &n) < 0) {
		rc = sp_error_set(err, SP_EENGINE, "push stream line %zu: not a JSON object",
				  d->lineno);
		goto out;
	}
	if (!json)
		return 0;
	if ((error = sp_jsonmsg_error(json)) != NULL && !d->error)
		d->error = sp_xstrdup(error);
	aux = cJSON_GetObjectItemCaseSensitive(json, "aux");
	if (cJSON_IsObject(aux)) {
		const cJSON *dg = cJSON_GetObjectItemCaseSensitive(aux, "Digest");
		const cJSON *tg = cJSON_GetObjectItemCaseSensitive(aux, "Tag");
		if (cJSON_IsString(dg) && *dg->valuestring) {
			free(d->digest);
			d->digest = sp_xstrdup(dg->valuestring);
			free(d->tag);
			d->tag = cJSON_IsString(tg) ? sp_xstrdup(tg->valuestring) : NULL;
			d->size = json_u64(aux, "Size");
		}
	}
	status = cJSON_GetObjectItemCaseSensitive(json, "status");
	id = cJSON_GetObjectItemCaseSensitive(json, "id");
	if (cJSON_IsString(status) && *status->valuestring) {
		enum sp_image_layer_state st;
		if (cJSON_IsString(id) && *id->valuestring &&
		    parse_state(status->valuestring, &st) == 0) {
			on_layer_status(d, id->valuestring, status->valuestring, st, json);
		} else {
			struct sp_image_push_event ev;
			char *text = cJSON_IsString(id) && *id->valuestring
				? sp_xasprintf("%s: %s", id->valuestring, status->valuestring)
				: sp_xstrdup(status->valuestring);
			memset(&ev, 0, sizeof(ev));
			ev.kind = SP_IMAGE_PUSH_MESSAGE;
			ev.text = text;
			emit(d, &ev);
			free(text);
		}
	}
out:
	cJSON_Delete(json);
	return rc;
}

int sp_image_push_decoder_feed(struct sp_image_push_decoder *d, const char *data, size_t len,
			 struct sp_error *err)
{
	const char *nl;
	int rc;

	if (d->feed_rc < 0) {
		if (err)
			*err = d->feed_err;
		return d->feed_rc;
	}
	while (len && (nl = memchr(data, '\n', len))) {
		size_t n = (size_t)(nl - data) + 1;
		if (d->line.len) {
			if (sp_buf_add(&d->line, data, n) < 0)
				goto toobig;
			rc = process_line(d, d->line.data, d->line.len, &d->feed_err);
			sp_buf_reset(&d->line);
		} else {
			rc = process_line(d, data, n, &d->feed_err);
		}
		if (rc < 0)
			goto fail;
		data += n;
		len -= n;
	}
	if (len && sp_buf_add(&d->line, data, len) < 0)
		goto toobig;
	return 0;
toobig:
	rc = sp_error_set(&d->feed_err, SP_ETOOBIG, "push stream line %zu: longer than %d bytes",
			  d->lineno + 1, SP_IMAGE_PUSH_LINE_MAX);
fail:
	d->feed_rc = rc;
	if (err)
		*err = d->feed_err;
	return rc;
}

/* Case-insensitive substring test (strcasestr is not standard C). */
static bool contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++) {
		size_t i;
		for (i = 0; i < n && hay[i] &&
		     tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]); i++)
			;
		if (i == n)
			return true;
	}
	return false;
}

static bool contains_any(const char *hay, const char *const *needles)
{
	for (; *needles; needles++)
		if (contains(hay, *needles))
			return true;
	return false;
}

static const char *const auth_words[] = {
	"unauthorized", "authentication required", "no basic auth credentials",
	"denied:", "requested access to the resource is denied",
	"incorrect username or password", "insufficient_scope", NULL,
};

static const char *const network_words[] = {
	"connection refused", "no such host", "i/o timeout", "network is unreachable",
	"no route to host", "connection reset by peer", "tls handshake timeout",
	"server gave http response to https client", "x509:", "dial tcp", NULL,
};

int sp_image_push_decoder_finish(struct sp_image_push_decoder *d, struct sp_image_push_result *res,
			   struct sp_error *err)
{
	struct sp_image_push_event ev;
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	if (d->feed_rc < 0) {
		if (err)
			*err = d->feed_err;
		return d->feed_rc;
	}
	if (d->line.len) {
		/* a last line without its newline */
		rc = process_line(d, d->line.data, d->line.len, err);
		sp_buf_reset(&d->line);
		if (rc < 0)
			return rc;
	}
	if (d->error) {
		if (contains_any(d->error, auth_words))
			return sp_error_set(err, SP_EENGINE, "registry %s refused the push of %s: "
					    "%s; credentials sent: %s. %s", d->registry, d->ref,
					    d->error, d->auth_desc ? d->auth_desc : "(not said)",
					    SP_AUTH_WHERE);
		if (contains_any(d->error, network_words))
			return sp_error_set(err, SP_EENGINE, "cannot reach registry %s to push %s: %s",
					    d->registry, d->ref, d->error);
		if (contains(d->error, "does not exist locally"))
			return sp_error_set(err, SP_ENOTFOUND, "cannot push %s: %s", d->ref, d->error);
		return sp_error_set(err, SP_EENGINE, "pushing %s to registry %s failed: %s", d->ref,
				    d->registry, d->error);
	}
	if (!d->digest)
		return sp_error_set(err, SP_EENGINE, "the push of %s to registry %s ended without "
				    "a digest and without an error", d->ref, d->registry);
	res->digest = sp_xstrdup(d->digest);
	res->tag = d->tag ? sp_xstrdup(d->tag) : NULL;
	res->size = d->size;
	res->layers = d->nlayers;
	for (i = 0; i < d->nlayers; i++) {
		if (d->layers[i].state == SP_IMAGE_LAYER_PUSHED)
			res->pushed++;
		else if (d->layers[i].state == SP_IMAGE_LAYER_EXISTS)
			res->existing++;
		else if (d->layers[i].state == SP_IMAGE_LAYER_MOUNTED)
			res->mounted++;
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = SP_IMAGE_PUSH_DONE;
	ev.result = res;
	emit(d, &ev);
	return 0;
}

void sp_image_push_result_release(struct sp_image_push_result *res)
{
	if (!res)
		return;
	free(res->tag);
	free(res->digest);
	memset(res, 0, sizeof(*res));
}

/* ---- push ---- */

struct push_ctx {
	struct sp_image_push_decoder *dec;
	const struct sp_image_push_opts *o;
	int64_t last_data_ms;
	int64_t stall_ms;       /* 0: never */
	bool stalled;
};

static int push_data(void *ud, const char *data, size_t len, struct sp_error *err)
{
	struct push_ctx *c = ud;

	c->last_data_ms = sp_clock_ms();
	return sp_image_push_decoder_feed(c->dec, data, len, err);
}

static int push_cancel(void *ud)
{
	struct push_ctx *c = ud;

	if (c->o->cancel && c->o->cancel(c->o->cancel_ud))
		return 1;
	if (c->stall_ms && sp_clock_ms() - c->last_data_ms > c->stall_ms) {
		c->stalled = true;
		return 1;
	}
	return 0;
}

int sp_image_push(struct sp_engine *e, const char *ref, const struct sp_image_push_opts *o,
		  struct sp_image_push_result *res, struct sp_error *err)
{
	struct sp_image_push_decoder_opts dopts;
	struct sp_engine_request req;
	struct sp_buf path = SP_BUF_INIT;
	struct sp_imageref r;
	struct push_ctx ctx;
	const char *headers[2];
	char *repo = NULL, *tag = NULL, *hdr = NULL, *name = NULL;
	int64_t start = sp_clock_ms();
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&ctx, 0, sizeof(ctx));
	memset(&r, 0, sizeof(r));
	if ((rc = split_ref(ref, &repo, &tag, err)) < 0)
		goto out;
	if ((rc = sp_imageref_parse(&r, ref, err)) < 0)
		goto out;
	name = sp_xasprintf("%s:%s", repo, tag);

	sp_buf_addf(&path, "/images/%s/push?tag=", repo);
	sp_engine_urlencode(&path, tag);
	hdr = sp_xasprintf("X-Registry-Auth: %s", o->auth_header ? o->auth_header : "e30=");
	headers[0] = hdr;
	headers[1] = NULL;

	memset(&dopts, 0, sizeof(dopts));
	dopts.ref = name;
	dopts.registry = sp_imageref_registry(&r);
	dopts.auth_desc = o->auth_desc;
	dopts.on_event = o->on_event;
	dopts.ud = o->ud;
	ctx.dec = sp_image_push_decoder_new(&dopts);
	ctx.o = o;
	ctx.last_data_ms = sp_clock_ms();
	ctx.stall_ms = o->stall_secs < 0 ? 0 : 1000 * (o->stall_secs ? o->stall_secs
							   : SP_IMAGE_PUSH_STALL_SECS);

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = path.data;
	req.headers = headers;
	req.data = push_data;
	req.data_ud = &ctx;
	req.cancel = push_cancel;
	req.cancel_ud = &ctx;
	rc = sp_engine_request(e, &req, NULL, err);
	if (rc < 0) {
		if (ctx.stalled)
			rc = sp_error_set(err, SP_EENGINE, "pushing %s to registry %s: nothing "
					  "happened for %llds; giving up", name,
					  sp_imageref_registry(&r), (long long)(ctx.stall_ms / 1000));
		else if (rc != SP_ECANCELLED)
			sp_error_prefix(err, "pushing %s", name);
		goto out;
	}
	if ((rc = sp_image_push_decoder_finish(ctx.dec, res, err)) < 0)
		goto out;
	res->seconds = (double)(sp_clock_ms() - start) / 1000.0;
out:
	sp_image_push_decoder_free(ctx.dec);
	sp_auth_free_secret(hdr);
	sp_imageref_release(&r);
	sp_buf_release(&path);
	free(repo);
	free(tag);
	free(name);
	return rc;
}

int sp_image_push_auto(struct sp_engine *e, const char *ref, const struct sp_auth_opts *ao,
		       const struct sp_image_push_opts *o, struct sp_image_push_result *res,
		       struct sp_error *err)
{
	struct sp_image_push_opts po = *o;
	struct sp_imageref r;
	struct sp_auth auth;
	char *header = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&auth, 0, sizeof(auth));
	if ((rc = sp_imageref_parse(&r, ref, err)) < 0)
		return sp_error_prefix(err, "invalid image reference \"%.200s\"", ref);
	/* a credential helper stops when the push would */
	if ((rc = sp_auth_lookup_cancel(&auth, sp_imageref_registry(&r), ao, o->cancel,
					o->cancel_ud, err)) < 0) {
		sp_error_prefix(err, "pushing %s", ref);
		goto out;
	}
	if (o->on_event) {
		struct sp_image_push_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.kind = SP_IMAGE_PUSH_AUTH;
		ev.text = auth.description;
		o->on_event(o->ud, &ev);
	}
	header = sp_auth_header(&auth);
	po.auth_header = header;
	po.auth_desc = auth.description;
	rc = sp_image_push(e, ref, &po, res, err);
out:
	sp_auth_free_secret(header);
	sp_auth_release(&auth);
	sp_imageref_release(&r);
	return rc;
}

struct pull_io {
	struct sp_buf line;      /* the JSON message line being read */
	char error[512];         /* the first error the stream reported */
};

static void pull_line(struct pull_io *io)
{
	const char *s = io->line.data, *msg;
	size_t n = io->line.len;
	cJSON *j = NULL;

	if (!*io->error && n && sp_jsonmsg_parse(&j, &s, &n) == 0 && j &&
	    (msg = sp_jsonmsg_error(j)))
		snprintf(io->error, sizeof(io->error), "%s", msg);
	cJSON_Delete(j);
	sp_buf_reset(&io->line);
}

static int pull_data(void *ud, const char *data, size_t len, struct sp_error *err)
{
	struct pull_io *io = ud;
	const char *nl;

	(void)err;
	while (len) {
		nl = memchr(data, '\n', len);
		if (!nl) {
			if (io->line.len < 64 * 1024)  /* progress lines are short */
				sp_buf_add(&io->line, data, len);
			break;
		}
		if (io->line.len < 64 * 1024)
			sp_buf_add(&io->line, data, (size_t)(nl - data));
		pull_line(io);
		len -= (size_t)(nl - data) + 1;
		data = nl + 1;
	}
	return 0;
}

int sp_image_pull(struct sp_engine *e, const char *ref, sp_engine_cancel_fn cancel,
		  void *cancel_ud, struct sp_error *err)
{
	struct sp_engine_request req;
	struct sp_buf path = SP_BUF_INIT;
	struct pull_io io;
	int rc;

	memset(&io, 0, sizeof(io));
	sp_buf_init(&io.line, 0);
	sp_buf_addstr(&path, "/images/create?fromImage=");
	sp_engine_urlencode(&path, ref);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = path.data;
	req.data = pull_data;
	req.data_ud = &io;
	req.cancel = cancel;
	req.cancel_ud = cancel_ud;
	req.low_speed_secs = 120;
	rc = sp_engine_request(e, &req, NULL, err);
	if (rc == 0) {
		pull_line(&io);
		if (*io.error)
			rc = sp_error_set(err, strstr(io.error, "not found") ||
					  strstr(io.error, "manifest unknown") ? SP_ENOTFOUND :
					  SP_EENGINE, "pulling %s: %s", ref, io.error);
	} else if (rc != SP_ECANCELLED) {
		sp_error_prefix(err, "pulling %s", ref);
	}
	sp_buf_release(&io.line);
	sp_buf_release(&path);
	return rc;
}
