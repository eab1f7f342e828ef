/*
 * webhook.h — forge webhooks: verified on the raw body, then parsed.
 *
 * The server calls sp_webhook_verify on the exact bytes received, before
 * any parsing, with the secret of the repository the URL names.  Only a
 * verified body reaches sp_webhook_parse, which reads just what a job
 * needs (cJSON) and maps the forge's event to one of ours.
 *
 * Forges and their headers (SERVER.md, "Ingest"):
 *   github  X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
 *           X-GitHub-Event, X-GitHub-Delivery
 *   gitea   X-Gitea-Signature or X-Forgejo-Signature: <hex HMAC-SHA256>
 *           (Forgejo also sends X-Hub-Signature-256)
 *           X-Gitea-Event / X-Forgejo-Event, X-Gitea-Delivery / X-Forgejo-Delivery
 *   gitlab  X-Gitlab-Token: <secret> (compared in constant time), or the
 *           Standard Webhooks form: webhook-id, webhook-timestamp (unix
 *           seconds, within 5 minutes of now), webhook-signature: one or
 *           more space-separated "v1,<base64 HMAC-SHA256(key, id.ts.body)>"
 *           (key: the secret; a "whsec_" prefix means the rest is base64)
 *           X-Gitlab-Event, X-Gitlab-Event-UUID (or webhook-id) as delivery
 * Any forge: Idempotency-Key is accepted as the delivery id when the
 * forge's own header is missing.
 *
 * Every comparison of a secret or a MAC is constant time (CRYPTO_memcmp
 * over equal lengths).  Nothing here logs or prints a secret.  Pure code:
 * no I/O, no globals; safe from any thread.
 */
#ifndef SP_WEBHOOK_H
#define SP_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sp_error;

enum sp_forge { SP_FORGE_GITHUB, SP_FORGE_GITEA, SP_FORGE_GITLAB };

/* "github", "gitea", "gitlab"; never NULL. */
const char *sp_forge_name(enum sp_forge f);
/* 0 and *out, or -1 for an unknown name ("forgejo" is gitea). */
int sp_forge_parse(const char *name, enum sp_forge *out);

/* Header lookup: the value of name (case-insensitive), or NULL.  The
 * server passes libmicrohttpd's lookup; tests pass a table. */
typedef const char *(*sp_header_fn)(void *ud, const char *name);

/*
 * Checks the request's signature.  secret/secret_len is the repository's
 * secret as configured.  now is the current time (for the Standard
 * Webhooks window).  Returns true only for a valid signature; on false,
 * why (a short fixed phrase for the server's log, never the secret or the
 * MAC) is set when not NULL.  The caller answers 401 without detail.
 */
bool sp_webhook_verify(enum sp_forge forge, const char *secret, size_t secret_len,
		       sp_header_fn header, void *ud, const unsigned char *body,
		       size_t body_len, time_t now, const char **why);

/* The delivery id (borrowed from the headers), or NULL when none is sent. */
const char *sp_webhook_delivery_id(enum sp_forge forge, sp_header_fn header, void *ud);
/* The forge's event name as sent (borrowed), or NULL. */
const char *sp_webhook_event_name(enum sp_forge forge, sp_header_fn header, void *ud);

enum sp_hook_kind {
	SP_HOOK_PUSH,          /* a push to a branch */
	SP_HOOK_TAG,           /* a tag pushed */
	SP_HOOK_PULL_REQUEST,  /* opened, synchronize(d), reopened; GitLab: open, update
				* (with new commits), reopen */
	SP_HOOK_PING,          /* github ping, gitea/gitlab test hooks without a commit */
	SP_HOOK_DELETE,        /* a branch or tag deleted (after sha all zeros) */
	SP_HOOK_IGNORED,       /* anything else (issues, PR closed, labels, ...) */
};

const char *sp_hook_kind_name(enum sp_hook_kind k);

/* What a verified delivery asks for.  Strings are owned (sp_hook_release). */
struct sp_hook {
	enum sp_hook_kind kind;
	char *ref;        /* full ref to fetch: refs/heads/main, refs/tags/v1,
			   * refs/pull/12/head (github, gitea), refs/merge-requests/3/head */
	char *branch;     /* push: the branch; pull request: its target branch */
	char *tag;        /* tag: the tag name */
	char *sha;        /* 40 hex: the commit to build (head of the push / PR) */
	int pr;           /* pull/merge request number */
	char *title;      /* head commit's message, first line */
	char *author;     /* head commit's author name */
	char *sender;     /* who pushed / opened (login or username) */
	char *clone_url;  /* as the payload says; informational only: jobs clone
			   * the URL of the server config, never this one */
	char *ignored_why;/* IGNORED/PING/DELETE: a short reason ("ping", "pull
			   * request closed", "event issues") */
};

/*
 * Parses a verified body.  content_type decides the form: application/json,
 * or application/x-www-form-urlencoded with a payload= field (GitHub).
 * Returns 0 with out filled, or SP_ECONFIG "malformed payload: ..." (HTTP
 * 400) for a body that is not JSON of the expected shape (a push without
 * ref or after, a sha that is not 40 hex, ...).
 */
int sp_webhook_parse(enum sp_forge forge, const char *event_name, const char *content_type,
		     const unsigned char *body, size_t body_len, struct sp_hook *out,
		     struct sp_error *err);
void sp_hook_release(struct sp_hook *h);

#endif
