/*
 * status.h — commit statuses sent back to the forge.
 *
 *   github  POST {api}/repos/{owner}/{repo}/statuses/{sha}
 *           Authorization: Bearer <token>; Accept: application/vnd.github+json
 *           {state: pending|success|failure|error, context, description, target_url}
 *           api default https://api.github.com
 *   gitea   POST {api}/repos/{owner}/{repo}/statuses/{sha}
 *           Authorization: token <token>
 *           {state: pending|success|failure|error|warning, context, description, target_url}
 *           api: https://HOST/api/v1 (no default: required)
 *   gitlab  POST {api}/projects/{url-encoded owner/repo}/statuses/{sha}
 *           PRIVATE-TOKEN: <token>
 *           {state: pending|running|success|failed|canceled, name, description, target_url}
 *           api default https://gitlab.com/api/v4
 * owner/repo ("project") comes from the repository config (status.project),
 * or is derived from its clone URL's path without ".git".
 *
 * Descriptions are cut to 140 bytes (GitHub's limit) on a UTF-8 boundary.
 * The token is never printed; error messages name the URL (without
 * credentials) and the HTTP status and at most 200 bytes of the answer.
 */
#ifndef SP_STATUS_H
#define SP_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/forge/webhook.h"
#include "core/store/store.h"

struct sp_error;
struct sp_buf;

struct sp_status_target {
	enum sp_forge forge;
	const char *api;       /* base URL, no trailing slash needed; NULL: the default */
	const char *project;   /* "owner/repo" (GitLab: "group/sub/project") */
	const char *token;     /* borrowed; never printed */
};

struct sp_status_msg {
	const char *sha;
	enum sp_status_state state;
	const char *context;       /* "stagepipe", "stagepipe/test" */
	const char *description;
	const char *target_url;    /* may be NULL */
};

/* The forge's word for a state ("failure" / "failed", "canceled", ...). */
const char *sp_status_forge_state(enum sp_forge f, enum sp_status_state s);

/*
 * Builds the request: *url (new string), the JSON body into body (cleared
 * first), and up to 4 header lines into hdrs ("Name: value", new strings,
 * *nhdrs set).  Pure; unit-tested.  SP_ECONFIG when the target lacks what
 * the forge needs (gitea without api).
 */
int sp_status_request(const struct sp_status_target *t, const struct sp_status_msg *m,
		      char **url, struct sp_buf *body, char *hdrs[4], size_t *nhdrs,
		      struct sp_error *err);

/*
 * Sends one status with libcurl (timeouts: 10 s connect, 30 s total; TLS
 * verified; no redirects).  0 on a 2xx.  SP_EENGINE otherwise (err says
 * the URL, the status or the transport error); *retry is false for
 * answers that will not change on retry (400, 401, 403, 404, 422).
 */
int sp_status_send(const struct sp_status_target *t, const struct sp_status_msg *m,
		   bool *retry, struct sp_error *err);

/* "owner/repo" from a clone URL (https, ssh, scp-like); new string or NULL. */
char *sp_status_project_from_url(const char *url);

#endif
