/*
 * fuzz_jsonmsg.c — libFuzzer target: the engine's JSON message lines
 * (runners/docker/jsonmsg.h), as the build and push decoders read them.
 *
 * The input is a stream body: each '\n'-separated line goes through
 * sp_jsonmsg_parse and, when it is an object, sp_jsonmsg_error.  The
 * parser's promises are checked: *s and *n stay inside the line, and a
 * failure leaves *out NULL.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runners/docker/jsonmsg.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t linelen = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		/* a copy of exactly the line, so that ASan sees any read past it */
		char *line = sp_xmalloc(linelen ? linelen : 1);
		const char *s = line;
		size_t n = linelen;
		cJSON *msg = (cJSON *)1;
		int rc;

		memcpy(line, p, linelen);
		rc = sp_jsonmsg_parse(&msg, &s, &n);
		if (s < line || s + n > line + linelen)
			abort(); /* what remains must lie inside the line */
		if (rc < 0 && msg)
			abort(); /* *out NULL on failure */
		if (rc == 0 && msg) {
			const char *e = sp_jsonmsg_error(msg);
			if (e)
				(void)strlen(e);
			cJSON_Delete(msg);
		}
		free(line);
		p += linelen;
	}
	return 0;
}
