/*
 * image.h — images on the engine: tag, push, inspect, remove
 * (docker-api.md §5).
 *
 * A push is POST /images/{repo}/push?tag=T with X-Registry-Auth always
 * sent (core/registry/auth.h makes it).  The engine answers 200 at once and then
 * streams JSON lines: per-layer statuses (Preparing, Waiting, Pushing
 * with byte counts, Pushed, Layer already exists, Mounted from R,
 * Retrying in N seconds), "T: digest: sha256:… size: N", and
 * {"aux":{"Tag","Digest","Size"}}.  A failure (bad credentials, an
 * unreachable registry) is an errorDetail line under that same 200, so
 * success is "aux.Digest seen and no error".
 *
 * The stream is decoded by struct sp_image_push_decoder, a pure function of
 * the bytes fed to it (unit-tested on recorded streams, see
 * tests/fixtures/push/), which reports compactly: one event per layer
 * state change, a progress event per tenth of a layer's bytes, and a
 * final event with the counts (pushed, already there, mounted).  Its
 * errors name the registry; an authentication failure also says which
 * credentials were sent and where stagepipe looks for them (never a
 * secret: the decoder never sees one).
 */
#ifndef SP_DOCKER_IMAGE_H
#define SP_DOCKER_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/registry/auth.h"
#include "runners/docker/engine.h"

struct sp_error;

/* ---- tag, inspect, remove ---- */

/*
 * Tags image (an id "sha256:…" or a name) as ref ("reg:5000/team/app:v1";
 * no tag means "latest").  Returns 0; SP_ENOTFOUND when image does not
 * exist; SP_ECONFIG when ref is not a valid reference or has a digest;
 * SP_EENGINE otherwise.
 */
int sp_image_tag(struct sp_engine *e, const char *image, const char *ref,
		 struct sp_error *err);

struct sp_image_info {
	char *id;              /* "sha256:…" */
	char **repo_tags;      /* NULL-terminated, never NULL */
	char **repo_digests;   /* "reg:5000/team/app@sha256:…"; NULL-terminated, never NULL */
	unsigned long long size;
};

/*
 * GET /images/{name}/json into out (release with
 * sp_image_info_release).  SP_ENOTFOUND when there is no such image.
 */
int sp_image_inspect(struct sp_engine *e, const char *name, struct sp_image_info *out,
		     struct sp_error *err);
void sp_image_info_release(struct sp_image_info *info);

/*
 * The digest ("sha256:…") the engine recorded for repository repo
 * ("reg:5000/team/app") after a push or pull, or NULL; borrowed from info.
 */
const char *sp_image_info_repo_digest(const struct sp_image_info *info, const char *repo);

/*
 * DELETE /images/{name} (with force: even when tagged in several
 * repositories or used by a stopped container).  Returns 0, SP_ENOTFOUND
 * when it is already gone (callers cleaning up may ignore that), or
 * SP_EENGINE (409: in use by a running container).
 */
int sp_image_remove(struct sp_engine *e, const char *name, bool force, struct sp_error *err);

/*
 * Pulls ref ("postgres:16", "reg:5000/team/db@sha256:…") into the engine
 * (POST /images/create; credentials are not sent: public or local
 * registries).  SP_ENOTFOUND when the registry has no such image,
 * SP_EENGINE for other failures (the engine's message in err),
 * SP_ECANCELLED when cancel (may be NULL) fired.
 */
int sp_image_pull(struct sp_engine *e, const char *ref, sp_engine_cancel_fn cancel,
		  void *cancel_ud, struct sp_error *err);

/* ---- push ---- */

enum sp_image_layer_state {
	SP_IMAGE_LAYER_PREPARING,
	SP_IMAGE_LAYER_WAITING,
	SP_IMAGE_LAYER_PUSHING,
	SP_IMAGE_LAYER_PUSHED,
	SP_IMAGE_LAYER_EXISTS,     /* "Layer already exists" */
	SP_IMAGE_LAYER_MOUNTED,    /* "Mounted from team/other" (cross-repository mount) */
	SP_IMAGE_LAYER_RETRYING,   /* "Retrying in 5 seconds" */
};

/* "preparing", "waiting", "pushing", "pushed", "already exists",
 * "mounted", "retrying". */
const char *sp_image_layer_state_name(enum sp_image_layer_state s);

struct sp_image_push_result {
	char *tag;                /* the pushed tag; owned */
	char *digest;             /* "sha256:…" of the manifest; owned */
	unsigned long long size;  /* manifest size in bytes */
	size_t layers;            /* layers seen */
	size_t pushed;            /* uploaded */
	size_t existing;          /* already in the repository */
	size_t mounted;           /* mounted from another repository of the registry */
	double seconds;           /* set by sp_image_push */
};

void sp_image_push_result_release(struct sp_image_push_result *res);

enum sp_image_push_event_kind {
	SP_IMAGE_PUSH_LAYER,     /* a layer changed state */
	SP_IMAGE_PUSH_PROGRESS,  /* a pushing layer passed another tenth of its bytes */
	SP_IMAGE_PUSH_MESSAGE,   /* a line that is not about a layer ("The push refers to…") */
	SP_IMAGE_PUSH_DONE,      /* the push succeeded; result is filled */
	SP_IMAGE_PUSH_AUTH,      /* sp_image_push_auto: text says which credentials */
};

struct sp_image_push_event {
	enum sp_image_push_event_kind kind;
	const char *layer;         /* LAYER, PROGRESS: the short layer id */
	enum sp_image_layer_state state; /* LAYER */
	const char *text;          /* LAYER: the daemon's status text; MESSAGE: the line;
				      AUTH: sp_auth.description (never a secret) */
	unsigned long long current, total;  /* PROGRESS, and LAYER once bytes are known */
	int percent;               /* PROGRESS: 10, 20, ... 100 */
	const struct sp_image_push_result *result;  /* DONE */
};

/* Receives push events; every pointer is valid only during the call. */
typedef void (*sp_image_push_event_fn)(void *ud, const struct sp_image_push_event *ev);

/* Longest JSON line accepted in a push stream (SP_ETOOBIG beyond). */
#define SP_IMAGE_PUSH_LINE_MAX (1024 * 1024)
/* Layers tracked per push; more are ignored (a hostile stream). */
#define SP_IMAGE_PUSH_LAYERS_MAX 4096

struct sp_image_push_decoder_opts {
	const char *ref;        /* "reg:5000/team/app:v1", for messages */
	const char *registry;   /* "reg:5000" (sp_imageref_registry), for messages */
	const char *auth_desc;  /* which credentials were sent (sp_auth.description); may be NULL */
	sp_image_push_event_fn on_event;  /* may be NULL */
	void *ud;
};

struct sp_image_push_decoder;

/* A new decoder; strings in o are copied.  Free with sp_image_push_decoder_free. */
struct sp_image_push_decoder *sp_image_push_decoder_new(const struct sp_image_push_decoder_opts *o);
void sp_image_push_decoder_free(struct sp_image_push_decoder *d);

/*
 * Feeds body bytes, split anywhere.  Returns 0, SP_ETOOBIG for a line
 * over SP_IMAGE_PUSH_LINE_MAX, or SP_EENGINE for a line that is not a JSON
 * object.  An error line from the daemon is not a feed error: it is
 * kept for sp_image_push_decoder_finish.
 */
int sp_image_push_decoder_feed(struct sp_image_push_decoder *d, const char *data, size_t len,
			 struct sp_error *err);

/*
 * Ends the stream.  On success (a digest and no error) fills res
 * (release with sp_image_push_result_release), emits SP_IMAGE_PUSH_DONE and returns
 * 0.  Otherwise res is left empty and:
 *   SP_EENGINE   the registry refused the credentials ("registry R
 *                refused the push of REF: unauthorized: …; credentials
 *                sent: …; stagepipe looks for …"), could not be reached
 *                ("cannot reach registry R …"), said anything else, or
 *                the stream ended without a digest;
 *   SP_ENOTFOUND no local image has that tag.
 */
int sp_image_push_decoder_finish(struct sp_image_push_decoder *d, struct sp_image_push_result *res,
			   struct sp_error *err);

/* Default for sp_image_push_opts.stall_secs. */
#define SP_IMAGE_PUSH_STALL_SECS 120L

struct sp_image_push_opts {
	const char *auth_header;   /* X-Registry-Auth value (sp_auth_header); NULL: anonymous */
	const char *auth_desc;     /* sp_auth.description, for messages; may be NULL */
	sp_image_push_event_fn on_event; /* may be NULL */
	void *ud;
	sp_engine_cancel_fn cancel;  /* may be NULL */
	void *cancel_ud;
	/*
	 * Give up when the engine sends nothing for this long: a push that
	 * moves bytes reports progress several times a second, so silence
	 * means a stalled registry.  0: SP_IMAGE_PUSH_STALL_SECS; <0: never.
	 */
	long stall_secs;
};

/*
 * Pushes ref ("reg:5000/team/app:v1"; no tag means "latest"; a digest
 * is SP_ECONFIG), which must already be a local tag (sp_image_tag).
 * On success fills res (release with sp_image_push_result_release) and
 * returns 0.  Errors: those of sp_image_push_decoder_finish, SP_EENGINE for an
 * engine that refused or dropped the request or a stalled push,
 * SP_ECANCELLED when cancel said so.
 */
int sp_image_push(struct sp_engine *e, const char *ref, const struct sp_image_push_opts *o,
		  struct sp_image_push_result *res, struct sp_error *err);

/*
 * sp_image_push with the credentials core/registry/auth.h finds for ref's
 * registry (ao: the environment to look in); o->auth_header and
 * o->auth_desc are ignored.  Adds the errors of sp_auth_lookup
 * (SP_ECONFIG, SP_EENGINE), prefixed with "pushing REF".  Before the
 * push, one SP_IMAGE_PUSH_AUTH event says which credentials were found.
 */
int sp_image_push_auto(struct sp_engine *e, const char *ref, const struct sp_auth_opts *ao,
		       const struct sp_image_push_opts *o, struct sp_image_push_result *res,
		       struct sp_error *err);

#endif
