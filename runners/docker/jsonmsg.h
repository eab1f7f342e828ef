/*
 * jsonmsg.h — one line of the engine's JSON message streams.
 *
 * POST /build and POST /images/{name}/push answer with one JSON object a
 * line (moby's pkg/jsonmessage): "stream", "status", "id",
 * "progressDetail", "aux", and on failure "errorDetail" {"message"} and
 * "error".  The decoders (progress.c for builds, image.c for pushes) read
 * their own fields; reading a line and its error are the same for both.
 */
#ifndef SP_JSONMSG_H
#define SP_JSONMSG_H

#include <stddef.h>

#include <cjson/cJSON.h>

/*
 * Reads the line s[0..*n) (its '\n' may be there or not).  JSON white
 * space around the object is skipped: *s and *n are left on what remains,
 * for the caller's messages.  Returns 0 with *out the object (the
 * caller's: cJSON_Delete) or NULL for a blank line; -1 with *out NULL
 * when the line holds anything but one JSON object (the caller says so,
 * with its line number).
 */
int sp_jsonmsg_parse(cJSON **out, const char **s, size_t *n);

/*
 * The error msg reports: errorDetail.message, else "error", else "unknown
 * error" when either field is there without a text; NULL when msg has
 * neither field.  Borrowed from msg.
 */
const char *sp_jsonmsg_error(const cJSON *msg);

#endif
