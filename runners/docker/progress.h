/*
 * progress.h — decoding the response body of POST /build.
 *
 * The engine answers a build with a stream of JSON lines (docker-api.md
 * §2): BuildKit's "moby.buildkit.trace" lines carry base64 protobuf
 * StatusResponse messages (vertices, statuses, logs, warnings), one
 * "moby.image.id" line names the result, the classic builder sends
 * "stream"/"status" text, and a failure ends with an "errorDetail" line
 * even though the HTTP status was 200.
 *
 * Two layers:
 *
 *   struct sp_progress        the decoder.  Fed raw body bytes as they
 *                             arrive, it merges BuildKit's incremental
 *                             updates and reports *structured events*
 *                             through a struct sp_progress_handler:
 *                             a step started, a log line, a status, a
 *                             step finished (done / cached / error /
 *                             canceled), a warning, a builder message,
 *                             and at the end the build's result.
 *
 *   struct sp_progress_plain  one consumer of those events, which prints
 *                             them the way `docker buildx build
 *                             --progress=plain` does ("#3 [builder 2/5]
 *                             RUN ...", "#3 0.512 line", "#3 DONE 1.2s",
 *                             the failed step's last lines between
 *                             "------" rules).
 *
 * Steps are numbered 1, 2, ... in the order their vertices first become
 * active (started, completed, or producing output), as buildx numbers
 * them; a vertex keeps its number for the whole stream.
 *
 * Memory is bounded whatever the engine sends: an input line is capped
 * (SP_PROGRESS_LINE_MAX), a log line without a newline is broken at
 * SP_PROGRESS_PARTIAL_MAX, the plain printer keeps only the last
 * SP_PROGRESS_TAIL_LINES lines of each running step.
 *
 * Typical use (runners/docker/build.c):
 *
 *	struct sp_progress_plain *plain = sp_progress_plain_new(stderr);
 *	struct sp_progress_handler h;
 *	sp_progress_plain_handler(plain, &h);
 *	struct sp_progress *p = sp_progress_new(&h);
 *	... for each body chunk: if (sp_progress_feed(p, buf, n, err) < 0) abort the transfer
 *	rc = sp_progress_finish(p, err);     0: image in sp_progress_image_id(p)
 *	sp_progress_free(p);
 *	sp_progress_plain_free(plain);
 */
#ifndef SP_PROGRESS_H
#define SP_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/base/error.h"

/* Longest JSON line accepted from the engine (SP_ETOOBIG beyond). */
#define SP_PROGRESS_LINE_MAX (16u * 1024 * 1024)
/* A log line without '\n' is emitted in pieces of at most this size. */
#define SP_PROGRESS_PARTIAL_MAX (64u * 1024)
/* Lines of a step the plain printer keeps to show after a failure. */
#define SP_PROGRESS_TAIL_LINES 10

/* How a step ended. */
enum sp_progress_outcome {
	SP_PROGRESS_DONE,     /* ran and succeeded */
	SP_PROGRESS_CACHED,   /* result taken from the build cache */
	SP_PROGRESS_ERROR,    /* failed; see error */
	SP_PROGRESS_CANCELED, /* stopped because something else failed */
};

/* Kinds of builder messages that belong to no step. */
enum sp_progress_msg {
	SP_PROGRESS_MSG_STREAM,   /* classic builder output ("Step 2/5 : RUN ...") */
	SP_PROGRESS_MSG_STATUS,   /* a "status" line ("abc123: Pull complete") */
	SP_PROGRESS_MSG_PROGRESS, /* a status line carrying intermediate progress */
	SP_PROGRESS_MSG_ERROR,    /* the daemon's final error text */
};

/* One complete log line of a step (all pointers borrowed for the call). */
struct sp_progress_log {
	const char *line; /* without the '\n' (and a trailing '\r'); NUL at len */
	size_t len;       /* may contain any bytes, even NUL */
	double secs;      /* since the step started (0 when unknown) */
	int stream;       /* 1 stdout, 2 stderr */
};

/* A status (layer pull, context transfer, export) changed. */
struct sp_progress_status {
	const char *id;   /* "sha256:…", "transferring context", "exporting layers" */
	const char *name; /* often "" */
	int64_t current;
	int64_t total;    /* 0 when unknown */
	double secs;      /* started → completed (or → last update); < 0 unknown */
	int first;        /* first report of this id for the step */
	int completed;    /* the status is finished */
};

/* A step ended. */
struct sp_progress_done {
	enum sp_progress_outcome outcome;
	const char *name;  /* the step's name */
	const char *error; /* "" unless ERROR or CANCELED */
	double secs;       /* started → completed; < 0 when unknown */
};

/* A build warning (engines ≥ 23; lint rules, deprecated syntax). */
struct sp_progress_warning {
	int64_t level;
	const char *text;   /* the short message */
	const char *detail; /* detail lines joined with '\n'; may be "" */
	const char *url;    /* may be "" */
};

/*
 * The events.  Every member may be NULL (the event is then dropped).
 * `step` is the #N number (>= 1); warnings not tied to a known step get 0.
 * Strings and structs passed in are borrowed for the duration of the call.
 *
 * For a step, the order is: vertex_started, then any vertex_status /
 * vertex_log / warning, then vertex_done.  A step the engine runs again
 * after it finished gets another vertex_started with the same number.
 * finished is called once, by sp_progress_finish, with the value it
 * returns and its message ("" on success).
 */
struct sp_progress_handler {
	void (*vertex_started)(void *ud, int step, const char *name);
	void (*vertex_log)(void *ud, int step, const struct sp_progress_log *log);
	void (*vertex_status)(void *ud, int step, const struct sp_progress_status *st);
	void (*vertex_done)(void *ud, int step, const struct sp_progress_done *done);
	void (*warning)(void *ud, int step, const struct sp_progress_warning *w);
	void (*message)(void *ud, enum sp_progress_msg kind, const char *text);
	void (*finished)(void *ud, int code, const char *message);
	void *ud;
};

struct sp_progress;

/*
 * A new decoder.  The handler struct is copied (NULL: no events, only the
 * result).  Never NULL; free with sp_progress_free.
 */
struct sp_progress *sp_progress_new(const struct sp_progress_handler *handler);

/* Frees the decoder; accepts NULL.  Emits nothing. */
void sp_progress_free(struct sp_progress *p);

/*
 * Feeds len bytes of the response body, split anywhere.  Complete lines
 * are decoded and their events emitted before this returns; a partial last
 * line waits for the next call.
 *
 * Returns 0, or (and fills err, the line number of the stream in the
 * message):
 *   SP_EENGINE  a line that is not JSON, bad base64 or protobuf in a trace
 *   SP_ETOOBIG  a line longer than SP_PROGRESS_LINE_MAX, too many steps
 * After an error the decoder stays failed: later calls, and
 * sp_progress_finish, return the same error.  A build failure reported
 * by the daemon is not an error here; sp_progress_finish reports it.
 */
int sp_progress_feed(struct sp_progress *p, const void *data, size_t len,
		     struct sp_error *err);

/*
 * Ends the stream: decodes a last line without '\n', emits the log lines
 * still held back, then the finished event (also after a feed error, with
 * that error).  Returns
 *   0             an image id was seen and no error (sp_progress_image_id)
 *   SP_EFAILED    the build failed: the message names the failing step
 *                 ("build step [builder 3/5] RUN make failed: <daemon's
 *                 error>"; classic: "build failed at Step 3/5 : RUN make:
 *                 ..."), with a hint about build.network when the engine
 *                 has no bridge network
 *   SP_ECANCELLED the daemon's error is a cancellation and no step failed
 *   SP_EENGINE    the stream ended without a result, or was malformed
 *   SP_ETOOBIG    see sp_progress_feed
 * Calling it again returns the same result without emitting anything;
 * sp_progress_feed must not be called after it.
 */
int sp_progress_finish(struct sp_progress *p, struct sp_error *err);

/*
 * Ends the stream after a transport failure: a partial last line is
 * dropped (it is not a line), the step output held back is emitted, no
 * result is decided and no finished event is sent.  A later
 * sp_progress_finish returns SP_EENGINE.  Accepts NULL.
 */
void sp_progress_abandon(struct sp_progress *p);

/* The built image id ("sha256:…"), or NULL if none was seen yet.  Borrowed. */
const char *sp_progress_image_id(const struct sp_progress *p);

/*
 * The name of the step that failed ("[builder 3/5] RUN make", or a
 * classic "Step 3/5 : RUN make"), or NULL if none failed (yet).  Borrowed.
 */
const char *sp_progress_failed_step(const struct sp_progress *p);

/* ------------------------------------------------------------------ */
/* The plain printer.                                                  */

/* Receives each output line, without '\n' (line[len] == '\0'). */
typedef void (*sp_progress_line_fn)(void *ud, const char *line, size_t len);

struct sp_progress_plain;

/* A printer writing lines to out (borrowed: not closed).  Never NULL. */
struct sp_progress_plain *sp_progress_plain_new(FILE *out);

/* A printer handing each line to fn(ud, ...).  Never NULL. */
struct sp_progress_plain *sp_progress_plain_new_cb(sp_progress_line_fn fn, void *ud);

/*
 * Fills *out with callbacks that print through r (out->ud = r), to give
 * to sp_progress_new.  r must outlive the decoder's last event.
 */
void sp_progress_plain_handler(struct sp_progress_plain *r,
			       struct sp_progress_handler *out);

/* Frees the printer; accepts NULL.  Prints nothing. */
void sp_progress_plain_free(struct sp_progress_plain *r);

#endif
