/*
 * jsonmsg.c — a line of the engine's JSON message streams; see jsonmsg.h.
 */
#include "runners/docker/jsonmsg.h"

static int is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int sp_jsonmsg_parse(cJSON **out, const char **s, size_t *n)
{
	const char *end = NULL;
	cJSON *json;

	*out = NULL;
	while (*n && is_json_space((*s)[*n - 1]))
		(*n)--;
	while (*n && is_json_space(**s)) {
		(*s)++;
		(*n)--;
	}
	if (*n == 0)
		return 0;
	json = cJSON_ParseWithLengthOpts(*s, *n, &end, 0);
	if (!cJSON_IsObject(json) || end != *s + *n) {
		cJSON_Delete(json);
		return -1;
	}
	*out = json;
	return 0;
}

const char *sp_jsonmsg_error(const cJSON *msg)
{
	const cJSON *ed = cJSON_GetObjectItemCaseSensitive(msg, "errorDetail");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(ed, "message");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(msg, "error");

	if (!ed && !e)
		return NULL;
	return cJSON_IsString(m) && m->valuestring[0] ? m->valuestring :
	       cJSON_IsString(e) && e->valuestring[0] ? e->valuestring :
	       "unknown error";
}
