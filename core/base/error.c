/*
 * error.c — the error object; see error.h.
 */
#include "core/base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sp_error_set(struct sp_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int sp_error_prefix(struct sp_error *err, const char *fmt, ...)
{
	char prefix[512], old[SP_ERROR_MSG_MAX];
	size_t pos;
	va_list ap;

	if (!err)
		return SP_ERROR;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* prefix, then ": old"; a message too long is cut, never overflowed */
	pos = strlen(prefix);
	memcpy(err->msg, prefix, pos + 1);
	if (old[0]) {
		size_t room = sizeof(err->msg) - 1 - pos, olen = strlen(old);
		if (room >= 2) {
			memcpy(err->msg + pos, ": ", 2);
			pos += 2;
			room -= 2;
			if (olen > room)
				olen = room;
			memcpy(err->msg + pos, old, olen);
			err->msg[pos + olen] = '\0';
		}
	}
	if (!err->code)
		err->code = SP_ERROR;
	return err->code;
}

void sp_error_clear(struct sp_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

const char *sp_error_name(int code)
{
	switch (code) {
	case SP_OK: return "ok";
	case SP_ENOTFOUND: return "not found";
	case SP_ECONFIG: return "configuration error";
	case SP_EENGINE: return "engine error";
	case SP_ETIMEOUT: return "timed out";
	case SP_ECANCELLED: return "cancelled";
	case SP_ETOOBIG: return "too big";
	case SP_EFAILED: return "failed";
	case SP_ECONFLICT: return "conflict";
	default: return "error";
	}
}

int sp_error_exit_status(int code)
{
	switch (code) {
	case SP_OK: return SP_EXIT_OK;
	case SP_EFAILED: return SP_EXIT_FAILED;
	case SP_ECONFIG: return SP_EXIT_USAGE;
	case SP_ECANCELLED: return SP_EXIT_INTERRUPTED;
	case SP_ENOTFOUND:
	case SP_EENGINE:
	case SP_ETIMEOUT:
	case SP_ETOOBIG:
	case SP_ERROR:
	default: return SP_EXIT_INFRA;
	}
}
