/*
 * error.h — error codes and the error object every fallible function fills.
 *
 * Functions that can fail return 0 on success or one of the negative SP_E*
 * codes below, and write a human-readable message into a caller-owned
 * struct sp_error.  Codes are few and exist for callers that act on them
 * (the CLI maps them to exit statuses); the message carries the detail.
 *
 * Messages are passed up with context added in front
 * ("building testing: daemon said: ..."), never replaced.
 */
#ifndef SP_ERROR_H
#define SP_ERROR_H

#include <stddef.h>

enum sp_errcode {
	SP_OK = 0,
	SP_ERROR = -1,      /* anything without a more specific code */
	SP_ENOTFOUND = -2,  /* a named thing (file, image, ref) does not exist */
	SP_ECONFIG = -3,    /* the pipeline file or the command line is wrong */
	SP_EENGINE = -4,    /* Docker engine, registry or other infrastructure */
	SP_ETIMEOUT = -5,   /* a deadline passed */
	SP_ECANCELLED = -6, /* a signal or the user asked us to stop */
	SP_ETOOBIG = -7,    /* input over a configured limit */
	SP_EFAILED = -8,    /* the pipeline ran and a stage failed */
	SP_ECONFLICT = -9,  /* a stale writer: the job's epoch moved on (HTTP 409) */
};

#define SP_ERROR_MSG_MAX 2048

struct sp_error {
	int code;                    /* last code set; 0 when clear */
	char msg[SP_ERROR_MSG_MAX];  /* NUL-terminated; "" when clear */
};

#define SP_ERROR_INIT { 0, "" }

/*
 * Sets the error (err may be NULL) and returns code, so that a failing
 * function can `return sp_error_set(err, SP_EENGINE, "...")`.
 */
int sp_error_set(struct sp_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Adds context in front of the current message: "CONTEXT: old message".
 * Keeps the code.  Returns err->code (or SP_ERROR when err is NULL).
 */
int sp_error_prefix(struct sp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void sp_error_clear(struct sp_error *err);

/* A short name for a code ("engine error"), for logs; never NULL. */
const char *sp_error_name(int code);

/*
 * The documented process exit status for a code:
 * 0 ok, 1 pipeline failed, 2 usage or pipeline-file error,
 * 3 engine/registry/infrastructure error, 130 interrupted.
 */
int sp_error_exit_status(int code);

#define SP_EXIT_OK 0
#define SP_EXIT_FAILED 1
#define SP_EXIT_USAGE 2
#define SP_EXIT_INFRA 3
/* run --runner-labels: this runner lacks labels of the pipeline's runs_on
 * (serve and agents give the job back for a runner that has them) */
#define SP_EXIT_WRONG_RUNNER 4
#define SP_EXIT_INTERRUPTED 130

#endif
