/*
 * xjson.h — cJSON helpers that follow xalloc's rule: out of memory aborts.
 */
#ifndef SP_XJSON_H
#define SP_XJSON_H

#include <cjson/cJSON.h>

/* cJSON_PrintUnformatted that never returns NULL; free with cJSON_free/free. */
char *sp_xjson_print(const cJSON *j);

#endif
