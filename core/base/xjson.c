/*
 * xjson.c — cJSON printing without NULL checks at every caller; see xjson.h.
 */
#include "core/base/xjson.h"

#include <stdio.h>
#include <stdlib.h>

char *sp_xjson_print(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);

	if (!s) {
		/* cJSON fails only when malloc does: fatal, as in xalloc.c */
		fputs("stagepipe: out of memory\n", stderr);
		abort();
	}
	return s;
}
