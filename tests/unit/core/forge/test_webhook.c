/*
 * test_webhook.c — forge webhooks (core/forge/webhook.c): the published
 * signature vectors (GitHub, Standard Webhooks), each forge's signature
 * accepted and refused (wrong, missing, other secret, truncated body),
 * the Standard Webhooks time window, every fixture of
 * tests/fixtures/webhooks mapped to its kind/ref/sha/branch/pr, the
 * form-encoded body, and malformed payloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/forge/webhook.h"
#include "tests/unit/support/testutil.h"

/* Headers as a NULL-terminated list of name, value pairs. */
static const char *hget(void *ud, const char *name)
{
	const char *const *kv = ud;

	for (; kv[0]; kv += 2)
		if (!strcasecmp(kv[0], name))
			return kv[1];
	return NULL;
}

/* HMAC-SHA256 hex, computed with HMAC() (not the code under test's EVP_MAC). */
static void hmac_hex(const void *key, size_t key_len, const void *data, size_t len, char out[65])
{
	unsigned char mac[32];
	unsigned int n = 0;
	int i;

	assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, data, len, mac, &n));
	assert_int_equal(n, 32);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static bool verify(enum sp_forge f, const char *secret, const char *const *hdrs, const char *body,
		   time_t now, const char **why)
{
	return sp_webhook_verify(f, secret, strlen(secret), hget, (void *)(uintptr_t)hdrs,
				 (const unsigned char *)body, strlen(body), now, why);
}

/* ---- GitHub ---- */

#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_SIG "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static void test_github_published_vector(void **state)
{
	const char *h[] = { "X-Hub-Signature-256", "sha256=" GH_SIG, NULL };
	const char *why = "unset";
	char mine[65];

	(void)state;
	hmac_hex(GH_SECRET, strlen(GH_SECRET), GH_BODY, strlen(GH_BODY), mine);
	assert_string_equal(mine, GH_SIG);
	assert_true(verify(SP_FORGE_GITHUB, GH_SECRET, h, GH_BODY, 0, &why));
	assert_null(why);
	/* The header name is case-insensitive as HTTP says; upper-case hex is hex. */
	{
		const char *h2[] = { "x-hub-signature-256",
				     "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
				     NULL };

		assert_true(verify(SP_FORGE_GITHUB, GH_SECRET, h2, GH_BODY, 0, NULL));
	}
}

static void test_github_refused(void **state)
{
	const char *good[] = { "X-Hub-Signature-256", "sha256=" GH_SIG, NULL };
	const char *none[] = { "X-GitHub-Event", "push", NULL };
	const char *short_sig[] = { "X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1", NULL };
	const char *long_sig[] = { "X-Hub-Signature-256", "sha256=" GH_SIG "00", NULL };
	const char *bad_hex[] = { "X-Hub-Signature-256", "sha256=z57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", NULL };
	const char *sha1[] = { "X-Hub-Signature-256", "sha1=" GH_SIG, NULL };
	const char *flipped[] = { "X-Hub-Signature-256", "sha256=657107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", NULL };
	const char *gitea_only[] = { "X-Gitea-Signature", GH_SIG, NULL };
	const char *why = NULL;

	(void)state;
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, none, GH_BODY, 0, &why));
	assert_string_equal(why, "missing signature");
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, gitea_only, GH_BODY, 0, &why));
	assert_string_equal(why, "missing signature");
	assert_false(verify(SP_FORGE_GITHUB, "It's a Secret to Everybody!", good, GH_BODY, 0, &why));
	assert_string_equal(why, "signature mismatch");
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, good, "Hello, World", 0, &why));
	assert_string_equal(why, "signature mismatch");
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, good, "", 0, &why));
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, flipped, GH_BODY, 0, &why));
	assert_string_equal(why, "signature mismatch");
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, short_sig, GH_BODY, 0, &why));
	assert_string_equal(why, "malformed signature");
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, long_sig, GH_BODY, 0, &why));
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, bad_hex, GH_BODY, 0, &why));
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, sha1, GH_BODY, 0, &why));
	assert_string_equal(why, "malformed signature");
	/* No secret configured: nothing verifies. */
	assert_false(sp_webhook_verify(SP_FORGE_GITHUB, "", 0, hget, (void *)(uintptr_t)good,
				       (const unsigned char *)GH_BODY, strlen(GH_BODY), 0, &why));
	assert_string_equal(why, "no secret configured");
	/* why may be NULL. */
	assert_false(verify(SP_FORGE_GITHUB, GH_SECRET, none, GH_BODY, 0, NULL));
}

/* The secret's bytes are the key: a NUL inside it counts. */
static void test_secret_is_bytes(void **state)
{
	static const char secret[] = { 's', '\0', 'x' };
	char hex[65], hdr[80];
	const char *h[] = { "X-Hub-Signature-256", hdr, NULL };

	(void)state;
	hmac_hex(secret, sizeof(secret), GH_BODY, strlen(GH_BODY), hex);
	snprintf(hdr, sizeof(hdr), "sha256=%s", hex);
	assert_true(sp_webhook_verify(SP_FORGE_GITHUB, secret, sizeof(secret), hget,
				      (void *)(uintptr_t)h, (const unsigned char *)GH_BODY,
				      strlen(GH_BODY), 0, NULL));
	assert_false(sp_webhook_verify(SP_FORGE_GITHUB, secret, 1, hget, (void *)(uintptr_t)h,
				       (const unsigned char *)GH_BODY, strlen(GH_BODY), 0, NULL));
}

/* ---- Gitea / Forgejo ---- */

static void test_gitea(void **state)
{
	const char *secret = "gitea-secret", *body = "{\"ref\":\"refs/heads/main\"}";
	char hex[65], prefixed[80];
	const char *why = NULL;

	(void)state;
	hmac_hex(secret, strlen(secret), body, strlen(body), hex);
	snprintf(prefixed, sizeof(prefixed), "sha256=%s", hex);
	{
		const char *h[] = { "X-Gitea-Signature", hex, NULL };

		assert_true(verify(SP_FORGE_GITEA, secret, h, body, 0, &why));
		assert_false(verify(SP_FORGE_GITEA, "other", h, body, 0, &why));
		assert_string_equal(why, "signature mismatch");
		assert_false(verify(SP_FORGE_GITEA, secret, h, "{\"ref\":\"refs/heads/main\"", 0, &why));
		assert_string_equal(why, "signature mismatch");
	}
	{
		const char *h[] = { "X-Forgejo-Signature", hex, NULL };

		assert_true(verify(SP_FORGE_GITEA, secret, h, body, 0, &why));
	}
	{
		/* Forgejo sends all three. */
		const char *h[] = { "X-Forgejo-Signature", hex, "X-Gitea-Signature", hex,
				    "X-Hub-Signature-256", prefixed, NULL };

		assert_true(verify(SP_FORGE_GITEA, secret, h, body, 0, &why));
	}
	{
		const char *h[] = { "X-Hub-Signature-256", prefixed, NULL };

		assert_true(verify(SP_FORGE_GITEA, secret, h, body, 0, &why));
	}
	{
		/* Gitea's header has no prefix. */
		const char *h[] = { "X-Gitea-Signature", prefixed, NULL };

		assert_false(verify(SP_FORGE_GITEA, secret, h, body, 0, &why));
		assert_string_equal(why, "malformed signature");
	}
	{
		const char *h[] = { "X-Gitea-Event", "push", "X-Gitea-Signature", "", NULL };

		assert_false(verify(SP_FORGE_GITEA, secret, h, body, 0, &why));
		assert_string_equal(why, "missing signature");
	}
}

/* ---- GitLab: X-Gitlab-Token ---- */

static void test_gitlab_token(void **state)
{
	const char *body = "{}", *why = NULL;
	const char *ok[] = { "X-Gitlab-Token", "s3cret-token", NULL };
	const char *shorter[] = { "X-Gitlab-Token", "s3cret-toke", NULL };
	const char *longer[] = { "X-Gitlab-Token", "s3cret-token2", NULL };
	const char *other[] = { "X-Gitlab-Token", "s3cret-tokeN", NULL };
	const char *none[] = { "X-Gitlab-Event", "Push Hook", NULL };

	(void)state;
	assert_true(verify(SP_FORGE_GITLAB, "s3cret-token", ok, body, 0, &why));
	assert_null(why);
	assert_false(verify(SP_FORGE_GITLAB, "s3cret-token", shorter, body, 0, &why));
	assert_string_equal(why, "token mismatch");
	assert_false(verify(SP_FORGE_GITLAB, "s3cret-token", longer, body, 0, &why));
	assert_false(verify(SP_FORGE_GITLAB, "s3cret-token", other, body, 0, &why));
	assert_false(verify(SP_FORGE_GITLAB, "other", ok, body, 0, &why));
	assert_false(verify(SP_FORGE_GITLAB, "s3cret-token", none, body, 0, &why));
	assert_string_equal(why, "missing signature");
	/* A whsec_ secret is a signing token: the plain token is not enough. */
	{
		const char *h[] = { "X-Gitlab-Token", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL };

		assert_false(verify(SP_FORGE_GITLAB, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h,
				    body, 0, &why));
		assert_string_equal(why, "missing signature");
	}
}

/* ---- GitLab: Standard Webhooks ---- */

/* The Standard Webhooks libraries' "sign function works" vector. */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS "1614265330"
#define SW_T 1614265330
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void test_standard_published_vector(void **state)
{
	const char *h[] = { "webhook-id", SW_ID, "webhook-timestamp", SW_TS,
			    "webhook-signature", SW_SIG, NULL };
	const char *why = "unset";

	(void)state;
	assert_true(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
	assert_null(why);
	assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, "{\"test\": 2432232315}", SW_T, &why));
	assert_string_equal(why, "signature mismatch");
	assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, "{\"test\": 243223231", SW_T, &why));
	assert_false(verify(SP_FORGE_GITLAB, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", h, SW_BODY,
			    SW_T, &why));
	assert_string_equal(why, "signature mismatch");
	/* Without the prefix the secret is the raw key (webhook.h), not base64. */
	assert_false(verify(SP_FORGE_GITLAB, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, SW_BODY, SW_T,
			    &why));
	assert_false(verify(SP_FORGE_GITLAB, "whsec_not base64!", h, SW_BODY, SW_T, &why));
	assert_string_equal(why, "secret is not valid whsec_ base64");
	assert_false(verify(SP_FORGE_GITLAB, "whsec_", h, SW_BODY, SW_T, &why));
}

static void test_standard_window(void **state)
{
	const char *h[] = { "webhook-id", SW_ID, "webhook-timestamp", SW_TS,
			    "webhook-signature", SW_SIG, NULL };
	const char *why = NULL;

	(void)state;
	assert_true(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T + 300, &why));
	assert_true(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T - 300, &why));
	assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T + 301, &why));
	assert_string_equal(why, "timestamp outside window");
	assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T - 301, &why));
	assert_string_equal(why, "timestamp outside window");
	assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, 0, &why));
}

static void test_standard_headers(void **state)
{
	const char *why = NULL;

	(void)state;
	{
		/* Several signatures: other versions and stale keys are skipped. */
		const char *h[] = { "webhook-id", SW_ID, "webhook-timestamp", SW_TS,
				    "webhook-signature",
				    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
				    "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=  " SW_SIG
				    " v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", NULL };

		assert_true(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
	}
	{
		const char *h[] = { "webhook-id", SW_ID, "webhook-timestamp", SW_TS,
				    "webhook-signature", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
				    NULL };

		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
		assert_string_equal(why, "signature mismatch");
	}
	{
		/* Partial signatures. */
		const char *h[] = { "webhook-id", SW_ID, "webhook-timestamp", SW_TS,
				    "webhook-signature", "v1,g0hM9SsE", NULL };
		const char *h2[] = { "webhook-id", SW_ID, "webhook-timestamp", SW_TS,
				     "webhook-signature", "v1,", NULL };

		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h2, SW_BODY, SW_T, &why));
	}
	{
		const char *h[] = { "webhook-timestamp", SW_TS, "webhook-signature", SW_SIG, NULL };

		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
		assert_string_equal(why, "missing webhook-id");
	}
	{
		const char *h[] = { "webhook-id", SW_ID, "webhook-signature", SW_SIG, NULL };

		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
		assert_string_equal(why, "missing webhook-timestamp");
	}
	{
		const char *h[] = { "webhook-id", SW_ID, "webhook-timestamp", "hello",
				    "webhook-signature", SW_SIG, NULL };
		const char *h2[] = { "webhook-id", SW_ID, "webhook-timestamp", "-1614265330",
				     "webhook-signature", SW_SIG, NULL };
		const char *h3[] = { "webhook-id", SW_ID, "webhook-timestamp", "99999999999999999999999",
				     "webhook-signature", SW_SIG, NULL };

		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
		assert_string_equal(why, "malformed timestamp");
		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h2, SW_BODY, SW_T, &why));
		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h3, SW_BODY, SW_T, &why));
	}
	{
		/* The id is signed: another id, another MAC. */
		const char *h[] = { "webhook-id", "msg_other", "webhook-timestamp", SW_TS,
				    "webhook-signature", SW_SIG, NULL };

		assert_false(verify(SP_FORGE_GITLAB, SW_SECRET, h, SW_BODY, SW_T, &why));
	}
}

/* A plain (non-whsec) secret signs as raw bytes; with a token header too, the token wins. */
static void test_standard_raw_key(void **state)
{
	const char *secret = "plain-signing-key", *body = "{\"object_kind\":\"push\"}";
	char signed_content[256], b64[64], sig[80];
	unsigned char mac[32];
	unsigned int n = 0;
	const char *why = NULL;

	(void)state;
	snprintf(signed_content, sizeof(signed_content), "%s.%s.%s", "id-1", "1700000000", body);
	assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
			     (const unsigned char *)signed_content, strlen(signed_content), mac, &n));
	EVP_EncodeBlock((unsigned char *)b64, mac, 32);
	snprintf(sig, sizeof(sig), "v1,%s", b64);
	{
		const char *h[] = { "webhook-id", "id-1", "webhook-timestamp", "1700000000",
				    "webhook-signature", sig, NULL };

		assert_true(verify(SP_FORGE_GITLAB, secret, h, body, 1700000100, &why));
	}
	{
		const char *h[] = { "X-Gitlab-Token", secret, "webhook-id", "id-1",
				    "webhook-timestamp", "1", "webhook-signature", "v1,x", NULL };

		assert_true(verify(SP_FORGE_GITLAB, secret, h, body, 1700000100, &why));
	}
}

/* ---- headers ---- */

static void test_delivery_and_event(void **state)
{
	const char *gh[] = { "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			     "X-GitHub-Event", "push", NULL };
	const char *gt[] = { "X-Gitea-Delivery", "f6266f16", "X-Gitea-Event", "push",
			     "X-GitHub-Event", "push", NULL };
	const char *fj[] = { "X-Forgejo-Delivery", "d1", "X-Forgejo-Event", "pull_request", NULL };
	const char *gl[] = { "X-Gitlab-Event-UUID", "uuid-1", "X-Gitlab-Event", "Push Hook",
			     "webhook-id", "wh-1", "Idempotency-Key", "ik-1", NULL };
	const char *gl2[] = { "webhook-id", "wh-1", "Idempotency-Key", "ik-1", NULL };
	const char *idem[] = { "Idempotency-Key", "ik-2", NULL };
	const char *nothing[] = { NULL };

	(void)state;
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITHUB, hget, gh),
			    "72d3162e-cc78-11e3-81ab-4c9367dc0958");
	assert_string_equal(sp_webhook_event_name(SP_FORGE_GITHUB, hget, gh), "push");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITEA, hget, gt), "f6266f16");
	assert_string_equal(sp_webhook_event_name(SP_FORGE_GITEA, hget, gt), "push");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITEA, hget, fj), "d1");
	assert_string_equal(sp_webhook_event_name(SP_FORGE_GITEA, hget, fj), "pull_request");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITLAB, hget, gl), "uuid-1");
	assert_string_equal(sp_webhook_event_name(SP_FORGE_GITLAB, hget, gl), "Push Hook");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITLAB, hget, gl2), "wh-1");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITHUB, hget, idem), "ik-2");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITEA, hget, idem), "ik-2");
	assert_string_equal(sp_webhook_delivery_id(SP_FORGE_GITLAB, hget, idem), "ik-2");
	assert_null(sp_webhook_delivery_id(SP_FORGE_GITHUB, hget, nothing));
	assert_null(sp_webhook_event_name(SP_FORGE_GITLAB, hget, nothing));
}

static void test_names(void **state)
{
	enum sp_forge f = SP_FORGE_GITLAB;

	(void)state;
	assert_int_equal(sp_forge_parse("github", &f), 0);
	assert_int_equal(f, SP_FORGE_GITHUB);
	assert_int_equal(sp_forge_parse("gitea", &f), 0);
	assert_int_equal(f, SP_FORGE_GITEA);
	assert_int_equal(sp_forge_parse("forgejo", &f), 0);
	assert_int_equal(f, SP_FORGE_GITEA);
	assert_int_equal(sp_forge_parse("gitlab", &f), 0);
	assert_int_equal(f, SP_FORGE_GITLAB);
	assert_int_equal(sp_forge_parse("bitbucket", &f), -1);
	assert_int_equal(sp_forge_parse(NULL, &f), -1);
	assert_string_equal(sp_forge_name(SP_FORGE_GITHUB), "github");
	assert_string_equal(sp_forge_name(SP_FORGE_GITEA), "gitea");
	assert_string_equal(sp_forge_name(SP_FORGE_GITLAB), "gitlab");
	assert_string_equal(sp_hook_kind_name(SP_HOOK_PUSH), "push");
	assert_string_equal(sp_hook_kind_name(SP_HOOK_TAG), "tag");
	assert_string_equal(sp_hook_kind_name(SP_HOOK_PULL_REQUEST), "pull_request");
	assert_string_equal(sp_hook_kind_name(SP_HOOK_PING), "ping");
	assert_string_equal(sp_hook_kind_name(SP_HOOK_DELETE), "delete");
	assert_string_equal(sp_hook_kind_name(SP_HOOK_IGNORED), "ignored");
}

/* ---- fixtures ---- */

#define BEFORE "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
#define AFTER "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
#define PRHEAD "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
#define PRHEAD2 "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"

struct expect {
	enum sp_forge forge;
	const char *event;
	const char *file;
	enum sp_hook_kind kind;
	const char *ref, *sha, *branch, *tag;
	int pr;
	const char *title, *author, *sender, *clone_url, *ignored_why;
};

#define GH_CLONE "https://github.com/team/app.git"
#define GT_CLONE "https://gitea.example.com/team/app.git"
#define GL_CLONE "https://gitlab.example.com/group/app.git"
#define PR_TITLE "Add a retry to the uploader"

static const struct expect fixtures[] = {
	{ SP_FORGE_GITHUB, "push", "github-push.json", SP_HOOK_PUSH, "refs/heads/main", AFTER,
	  "main", NULL, 0, "Fix the flaky build", "Mona Lisa", "mona", GH_CLONE, NULL },
	{ SP_FORGE_GITHUB, "push", "github-push-tag.json", SP_HOOK_TAG, "refs/tags/v1.2.0", AFTER,
	  NULL, "v1.2.0", 0, "Release 1.2.0", "Mona Lisa", "mona", GH_CLONE, NULL },
	{ SP_FORGE_GITHUB, "push", "github-push-delete.json", SP_HOOK_DELETE,
	  "refs/heads/feature/old", NULL, "feature/old", NULL, 0, NULL, NULL, "mona", GH_CLONE,
	  "branch deleted" },
	{ SP_FORGE_GITHUB, "ping", "github-ping.json", SP_HOOK_PING, NULL, NULL, NULL, NULL, 0,
	  NULL, NULL, "octocat", NULL, "ping" },
	{ SP_FORGE_GITHUB, "pull_request", "github-pull_request-opened.json", SP_HOOK_PULL_REQUEST,
	  "refs/pull/12/head", PRHEAD, "main", NULL, 12, PR_TITLE, "octocat", "octocat", GH_CLONE,
	  NULL },
	{ SP_FORGE_GITHUB, "pull_request", "github-pull_request-synchronize.json",
	  SP_HOOK_PULL_REQUEST, "refs/pull/12/head", PRHEAD2, "main", NULL, 12, PR_TITLE,
	  "octocat", "octocat", GH_CLONE, NULL },
	{ SP_FORGE_GITHUB, "pull_request", "github-pull_request-reopened.json",
	  SP_HOOK_PULL_REQUEST, "refs/pull/12/head", PRHEAD, "main", NULL, 12, PR_TITLE,
	  "octocat", "octocat", GH_CLONE, NULL },
	{ SP_FORGE_GITHUB, "pull_request", "github-pull_request-closed.json", SP_HOOK_IGNORED,
	  NULL, NULL, NULL, NULL, 12, NULL, NULL, "octocat", GH_CLONE, "pull request closed" },
	{ SP_FORGE_GITHUB, "issues", "github-push.json", SP_HOOK_IGNORED, NULL, NULL, NULL, NULL,
	  0, NULL, NULL, NULL, NULL, "event issues" },

	{ SP_FORGE_GITEA, "push", "gitea-push.json", SP_HOOK_PUSH, "refs/heads/main", AFTER,
	  "main", NULL, 0, "Fix the flaky build", "Mona Lisa", "mona", GT_CLONE, NULL },
	{ SP_FORGE_GITEA, "push", "gitea-push-tag.json", SP_HOOK_TAG, "refs/tags/v1.2.0", AFTER,
	  NULL, "v1.2.0", 0, "Release 1.2.0", "Mona Lisa", "mona", GT_CLONE, NULL },
	{ SP_FORGE_GITEA, "push", "gitea-push-delete.json", SP_HOOK_DELETE,
	  "refs/heads/feature/old", NULL, "feature/old", NULL, 0, NULL, NULL, "mona", GT_CLONE,
	  "branch deleted" },
	{ SP_FORGE_GITEA, "push", "gitea-push-test.json", SP_HOOK_PING, NULL, NULL, NULL, NULL, 0,
	  NULL, NULL, NULL, NULL, "test hook without a commit" },
	{ SP_FORGE_GITEA, "delete", "gitea-delete.json", SP_HOOK_DELETE, "refs/heads/feature/old",
	  NULL, "feature/old", NULL, 0, NULL, NULL, "mona", NULL, "branch deleted" },
	{ SP_FORGE_GITEA, "create", "gitea-delete.json", SP_HOOK_IGNORED, NULL, NULL, NULL, NULL,
	  0, NULL, NULL, NULL, NULL, "event create" },
	{ SP_FORGE_GITEA, "pull_request", "gitea-pull_request-opened.json", SP_HOOK_PULL_REQUEST,
	  "refs/pull/5/head", PRHEAD, "main", NULL, 5, PR_TITLE, "mona", "mona", GT_CLONE, NULL },
	{ SP_FORGE_GITEA, "pull_request", "gitea-pull_request-synchronized.json",
	  SP_HOOK_PULL_REQUEST, "refs/pull/5/head", PRHEAD2, "main", NULL, 5, PR_TITLE, "mona",
	  "mona", GT_CLONE, NULL },
	{ SP_FORGE_GITEA, "pull_request", "gitea-pull_request-reopened.json", SP_HOOK_PULL_REQUEST,
	  "refs/pull/5/head", PRHEAD, "main", NULL, 5, PR_TITLE, "mona", "mona", GT_CLONE, NULL },
	{ SP_FORGE_GITEA, "pull_request", "gitea-pull_request-closed.json", SP_HOOK_IGNORED, NULL,
	  NULL, NULL, NULL, 5, NULL, NULL, "mona", GT_CLONE, "pull request closed" },
	/* A review event says "synchronized" too; its name is not pull_request. */
	{ SP_FORGE_GITEA, "pull_request_approved", "gitea-pull_request-synchronized.json",
	  SP_HOOK_IGNORED, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL,
	  "event pull_request_approved" },

	{ SP_FORGE_GITLAB, "Push Hook", "gitlab-push.json", SP_HOOK_PUSH, "refs/heads/main",
	  AFTER, "main", NULL, 0, "Fix the flaky build", "Jordi Mallach", "jsmith", GL_CLONE,
	  NULL },
	{ SP_FORGE_GITLAB, "Tag Push Hook", "gitlab-tag-push.json", SP_HOOK_TAG,
	  "refs/tags/v1.2.0", AFTER, NULL, "v1.2.0", 0, NULL, NULL, "jsmith", GL_CLONE, NULL },
	{ SP_FORGE_GITLAB, "Push Hook", "gitlab-push-delete.json", SP_HOOK_DELETE,
	  "refs/heads/feature/old", NULL, "feature/old", NULL, 0, NULL, NULL, "jsmith", GL_CLONE,
	  "branch deleted" },
	{ SP_FORGE_GITLAB, "Push Hook", "gitlab-push-test.json", SP_HOOK_PING, NULL, NULL, NULL,
	  NULL, 0, NULL, NULL, "jsmith", NULL, "test hook without a commit" },
	{ SP_FORGE_GITLAB, "Merge Request Hook", "gitlab-merge_request-open.json",
	  SP_HOOK_PULL_REQUEST, "refs/merge-requests/3/head", PRHEAD, "main", NULL, 3,
	  "Retry the upload", "Jordi Mallach", "root", GL_CLONE, NULL },
	{ SP_FORGE_GITLAB, "Merge Request Hook", "gitlab-merge_request-update.json",
	  SP_HOOK_PULL_REQUEST, "refs/merge-requests/3/head", PRHEAD2, "main", NULL, 3,
	  "Retry the upload", "Jordi Mallach", "root", GL_CLONE, NULL },
	{ SP_FORGE_GITLAB, "Merge Request Hook", "gitlab-merge_request-update-no-commits.json",
	  SP_HOOK_IGNORED, NULL, NULL, NULL, NULL, 3, NULL, NULL, "root", GL_CLONE,
	  "merge request updated without new commits" },
	{ SP_FORGE_GITLAB, "Merge Request Hook", "gitlab-merge_request-reopen.json",
	  SP_HOOK_PULL_REQUEST, "refs/merge-requests/3/head", PRHEAD, "main", NULL, 3,
	  "Retry the upload", "Jordi Mallach", "root", GL_CLONE, NULL },
	{ SP_FORGE_GITLAB, "Merge Request Hook", "gitlab-merge_request-close.json",
	  SP_HOOK_IGNORED, NULL, NULL, NULL, NULL, 3, NULL, NULL, "root", GL_CLONE,
	  "pull request close" },
	/* object_kind decides; the event header is only a fallback. */
	{ SP_FORGE_GITLAB, NULL, "gitlab-push.json", SP_HOOK_PUSH, "refs/heads/main", AFTER,
	  "main", NULL, 0, "Fix the flaky build", "Jordi Mallach", "jsmith", GL_CLONE, NULL },
	/* Without an event header, GitHub's shapes are recognised. */
	{ SP_FORGE_GITHUB, NULL, "github-push.json", SP_HOOK_PUSH, "refs/heads/main", AFTER,
	  "main", NULL, 0, "Fix the flaky build", "Mona Lisa", "mona", GH_CLONE, NULL },
	{ SP_FORGE_GITHUB, NULL, "github-ping.json", SP_HOOK_PING, NULL, NULL, NULL, NULL, 0,
	  NULL, NULL, "octocat", NULL, "ping" },
	{ SP_FORGE_GITHUB, NULL, "github-pull_request-opened.json", SP_HOOK_PULL_REQUEST,
	  "refs/pull/12/head", PRHEAD, "main", NULL, 12, PR_TITLE, "octocat", "octocat", GH_CLONE,
	  NULL },
};

#define ASSERT_STR_OR_NULL(got, want, file, field)                                       \
	do {                                                                             \
		if ((want) == NULL && (got) != NULL)                                     \
			fail_msg("%s: %s is \"%s\", want NULL", file, field, got);        \
		if ((want) != NULL && ((got) == NULL || strcmp(got, want) != 0))          \
			fail_msg("%s: %s is \"%s\", want \"%s\"", file, field,            \
				 (got) ? (got) : "(null)", want);                          \
	} while (0)

static void check_hook(const struct expect *e, const struct sp_hook *h)
{
	if (h->kind != e->kind)
		fail_msg("%s (%s): kind %s, want %s", e->file, e->event ? e->event : "no event",
			 sp_hook_kind_name(h->kind), sp_hook_kind_name(e->kind));
	ASSERT_STR_OR_NULL(h->ref, e->ref, e->file, "ref");
	ASSERT_STR_OR_NULL(h->sha, e->sha, e->file, "sha");
	ASSERT_STR_OR_NULL(h->branch, e->branch, e->file, "branch");
	ASSERT_STR_OR_NULL(h->tag, e->tag, e->file, "tag");
	ASSERT_STR_OR_NULL(h->title, e->title, e->file, "title");
	ASSERT_STR_OR_NULL(h->author, e->author, e->file, "author");
	ASSERT_STR_OR_NULL(h->sender, e->sender, e->file, "sender");
	ASSERT_STR_OR_NULL(h->clone_url, e->clone_url, e->file, "clone_url");
	ASSERT_STR_OR_NULL(h->ignored_why, e->ignored_why, e->file, "ignored_why");
	if (h->pr != e->pr)
		fail_msg("%s: pr %d, want %d", e->file, h->pr, e->pr);
}

static void test_fixtures(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct expect *e = &fixtures[i];
		struct sp_error err = SP_ERROR_INIT;
		struct sp_hook h;
		size_t len;
		char *body = sp_test_read_fixture("webhooks", e->file, &len);
		int rc = sp_webhook_parse(e->forge, e->event, "application/json",
					  (const unsigned char *)body, len, &h, &err);

		if (rc)
			fail_msg("%s: %s", e->file, err.msg);
		check_hook(e, &h);
		sp_hook_release(&h);
		assert_null(h.ref);
		free(body);
	}
}

/* Each forge's fixture signed as the forge signs it, then verified and parsed. */
static void test_signed_fixtures(void **state)
{
	static const struct {
		enum sp_forge forge;
		const char *file, *sig_header, *prefix;
	} cases[] = {
		{ SP_FORGE_GITHUB, "github-push.json", "X-Hub-Signature-256", "sha256=" },
		{ SP_FORGE_GITEA, "gitea-push.json", "X-Gitea-Signature", "" },
		{ SP_FORGE_GITEA, "gitea-push.json", "X-Forgejo-Signature", "" },
	};
	const char *secret = "a webhook secret";
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		char *body = sp_test_read_fixture("webhooks", cases[i].file, &len);
		char hex[65], sig[80];
		const char *h[] = { cases[i].sig_header, sig, NULL };
		const char *why = NULL;

		hmac_hex(secret, strlen(secret), body, len, hex);
		snprintf(sig, sizeof(sig), "%s%s", cases[i].prefix, hex);
		assert_true(sp_webhook_verify(cases[i].forge, secret, strlen(secret), hget,
					      (void *)(uintptr_t)h, (const unsigned char *)body,
					      len, 0, &why));
		/* One byte changed, one byte missing. */
		body[len / 2] ^= 1;
		assert_false(sp_webhook_verify(cases[i].forge, secret, strlen(secret), hget,
					       (void *)(uintptr_t)h, (const unsigned char *)body,
					       len, 0, &why));
		assert_string_equal(why, "signature mismatch");
		body[len / 2] ^= 1;
		assert_false(sp_webhook_verify(cases[i].forge, secret, strlen(secret), hget,
					       (void *)(uintptr_t)h, (const unsigned char *)body,
					       len - 1, 0, &why));
		free(body);
	}
	/* GitLab with a signing token over a fixture. */
	{
		size_t len;
		char *body = sp_test_read_fixture("webhooks", "gitlab-push.json", &len);
		unsigned char key[32], mac[32];
		char b64[64], whsec[80], sig[80];
		unsigned int n = 0;
		const char *why = NULL;
		size_t k;

		for (k = 0; k < sizeof(key); k++)
			key[k] = (unsigned char)(k * 7 + 1);
		EVP_EncodeBlock((unsigned char *)b64, key, sizeof(key));
		snprintf(whsec, sizeof(whsec), "whsec_%s", b64);
		{
			/* HMAC over "id.ts.body" with one-shot HMAC() over a copy. */
			size_t clen = len + 64;
			char *content = sp_xmalloc(clen);
			int cl = snprintf(content, clen, "%s.%s.", "d5c8b1e0", "1700000000");

			memcpy(content + cl, body, len);
			assert_non_null(HMAC(EVP_sha256(), key, sizeof(key),
					     (const unsigned char *)content, (size_t)cl + len, mac, &n));
			free(content);
		}
		EVP_EncodeBlock((unsigned char *)b64, mac, 32);
		snprintf(sig, sizeof(sig), "v1,%s", b64);
		{
			const char *h[] = { "webhook-id", "d5c8b1e0", "webhook-timestamp", "1700000000",
					    "webhook-signature", sig, "X-Gitlab-Event", "Push Hook",
					    NULL };

			assert_true(sp_webhook_verify(SP_FORGE_GITLAB, whsec, strlen(whsec), hget,
						      (void *)(uintptr_t)h,
						      (const unsigned char *)body, len, 1700000010,
						      &why));
			assert_false(sp_webhook_verify(SP_FORGE_GITLAB, whsec, strlen(whsec), hget,
						       (void *)(uintptr_t)h,
						       (const unsigned char *)body, len - 1,
						       1700000010, &why));
		}
		free(body);
	}
}

/* GitHub's application/x-www-form-urlencoded delivery: payload=<url-encoded JSON>. */
static void test_form_body(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_hook h;
	size_t len;
	char *body = sp_test_read_fixture("webhooks", "github-push.form", &len);

	(void)state;
	assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "push",
					  "application/x-www-form-urlencoded", (const unsigned char *)body,
					  len, &h, &err), 0);
	check_hook(&fixtures[0], &h);
	sp_hook_release(&h);
	free(body);

	/* Other fields around it, '+' as a space, %XX escapes. */
	{
		const char *b = "a=1&payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%2C%22after%22%3A%22"
				AFTER "%22%2C%22head_commit%22%3A%7B%22message%22%3A%22two+words%22%7D%7D&z=2";

		assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "push",
						  "Application/X-WWW-Form-Urlencoded; charset=utf-8",
						  (const unsigned char *)b, strlen(b), &h, &err), 0);
		assert_int_equal(h.kind, SP_HOOK_PUSH);
		assert_string_equal(h.title, "two words");
		assert_string_equal(h.sha, AFTER);
		sp_hook_release(&h);
	}
	{
		const char *bad[] = { "", "a=1", "payload=%7", "payload=%zz", "payload=%00",
				      "payloads=%7B%7D", "payload=not+json" };
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "push",
							  "application/x-www-form-urlencoded",
							  (const unsigned char *)bad[i],
							  strlen(bad[i]), &h, &err), SP_ECONFIG);
			assert_non_null(strstr(err.msg, "malformed payload: "));
			assert_null(h.ref);
		}
	}
}

static int parse_str(enum sp_forge f, const char *event, const char *body, struct sp_hook *h,
		     struct sp_error *err)
{
	return sp_webhook_parse(f, event, "application/json", (const unsigned char *)body,
				strlen(body), h, err);
}

static void expect_malformed(enum sp_forge f, const char *event, const char *body)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_hook h;
	int rc = parse_str(f, event, body, &h, &err);

	if (rc != SP_ECONFIG)
		fail_msg("%s: rc %d for %.80s", sp_forge_name(f), rc, body);
	if (strncmp(err.msg, "malformed payload: ", 19) != 0)
		fail_msg("message \"%s\"", err.msg);
	assert_null(h.ref);
	assert_null(h.sha);
}

static void test_malformed(void **state)
{
	(void)state;
	expect_malformed(SP_FORGE_GITHUB, "push", "");
	expect_malformed(SP_FORGE_GITHUB, "push", "not json");
	expect_malformed(SP_FORGE_GITHUB, "push", "[1, 2]");
	expect_malformed(SP_FORGE_GITHUB, "push", "\"a string\"");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/main\"");
	expect_malformed(SP_FORGE_GITHUB, "push", "{} trailing");
	expect_malformed(SP_FORGE_GITHUB, "push", "{}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/main\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": 7, \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push",
			 "{\"ref\": \"refs/heads/main\", \"after\": \"0d1a26e6\"}");
	expect_malformed(SP_FORGE_GITHUB, "push",
			 "{\"ref\": \"refs/heads/main\", \"after\": \"" AFTER "0\"}");
	expect_malformed(SP_FORGE_GITHUB, "push",
			 "{\"ref\": \"refs/heads/main\", \"after\": \"zd1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c\"}");
	expect_malformed(SP_FORGE_GITHUB, "push",
			 "{\"ref\": \"refs/heads/main\", \"after\": \"" AFTER "\", "
			 "\"head_commit\": {\"id\": \"abc\"}}");
	/* Refs git would refuse. */
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"main\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/a..b\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/a b\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/x.lock\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/.x\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/x/\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/a\\nb\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads/a@{1}\", \"after\": \"" AFTER "\"}");
	expect_malformed(SP_FORGE_GITHUB, "push", "{\"ref\": \"refs/heads//a\", \"after\": \"" AFTER "\"}");
	/* Pull requests that ask for a build must say what to build. */
	expect_malformed(SP_FORGE_GITHUB, "pull_request", "{\"action\": \"opened\"}");
	expect_malformed(SP_FORGE_GITHUB, "pull_request",
			 "{\"action\": \"opened\", \"number\": 3, \"pull_request\": "
			 "{\"head\": {\"sha\": \"nope\"}, \"base\": {\"ref\": \"main\"}}}");
	expect_malformed(SP_FORGE_GITHUB, "pull_request",
			 "{\"action\": \"opened\", \"pull_request\": "
			 "{\"head\": {\"sha\": \"" PRHEAD "\"}, \"base\": {\"ref\": \"main\"}}}");
	expect_malformed(SP_FORGE_GITHUB, "pull_request",
			 "{\"action\": \"opened\", \"number\": -4, \"pull_request\": "
			 "{\"head\": {\"sha\": \"" PRHEAD "\"}, \"base\": {\"ref\": \"main\"}}}");
	expect_malformed(SP_FORGE_GITHUB, "pull_request",
			 "{\"action\": \"opened\", \"number\": 1.5, \"pull_request\": "
			 "{\"head\": {\"sha\": \"" PRHEAD "\"}, \"base\": {\"ref\": \"main\"}}}");
	expect_malformed(SP_FORGE_GITHUB, "pull_request",
			 "{\"action\": \"opened\", \"number\": 3, \"pull_request\": "
			 "{\"head\": {\"sha\": \"" PRHEAD "\"}, \"base\": {\"ref\": \"ma..in\"}}}");
	expect_malformed(SP_FORGE_GITHUB, "pull_request",
			 "{\"action\": \"opened\", \"number\": 3, \"pull_request\": "
			 "{\"head\": {\"sha\": \"" PRHEAD "\"}}}");
	expect_malformed(SP_FORGE_GITEA, "delete", "{\"ref\": \"x\"}");
	expect_malformed(SP_FORGE_GITLAB, "Push Hook", "{\"object_kind\": \"push\"}");
	expect_malformed(SP_FORGE_GITLAB, "Merge Request Hook",
			 "{\"object_kind\": \"merge_request\"}");
	expect_malformed(SP_FORGE_GITLAB, "Merge Request Hook",
			 "{\"object_kind\": \"merge_request\", \"object_attributes\": "
			 "{\"action\": \"open\", \"iid\": 3, \"target_branch\": \"main\", "
			 "\"last_commit\": {\"id\": \"123\"}}}");
}

/* cJSON's nesting limit (1000) bounds the recursion. */
static void test_deep_nesting(void **state)
{
	size_t depth = 5000, i;
	char *body = sp_xmalloc(2 * depth + 64);
	size_t n = 0;

	(void)state;
	n += (size_t)sprintf(body, "{\"ref\": ");
	for (i = 0; i < depth; i++)
		body[n++] = '[';
	for (i = 0; i < depth; i++)
		body[n++] = ']';
	body[n++] = '}';
	body[n] = '\0';
	expect_malformed(SP_FORGE_GITHUB, "push", body);
	free(body);
}

static void test_content_types(void **state)
{
	const char *b = "{\"zen\": \"z\", \"hook_id\": 1}";
	struct sp_error err = SP_ERROR_INIT;
	struct sp_hook h;
	static const char *ok[] = { NULL, "application/json", "application/json; charset=utf-8",
				    "APPLICATION/JSON", "application/vnd.github+json" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "ping", ok[i],
						  (const unsigned char *)b, strlen(b), &h, &err), 0);
		assert_int_equal(h.kind, SP_HOOK_PING);
		sp_hook_release(&h);
	}
	assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "ping", "text/plain",
					  (const unsigned char *)b, strlen(b), &h, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, "malformed payload"));
	/* The body is given with its length: no NUL needed, trailing whitespace fine. */
	{
		const char body[] = { '{', '}', ' ', '\n', 'X' };

		assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "ping", NULL,
						  (const unsigned char *)body, 4, &h, &err), 0);
		sp_hook_release(&h);
		assert_int_equal(sp_webhook_parse(SP_FORGE_GITHUB, "ping", NULL,
						  (const unsigned char *)body, 5, &h, &err),
				 SP_ECONFIG);
	}
}

static void test_other_events(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_hook h;

	(void)state;
	/* A push to a ref that is neither a branch nor a tag. */
	assert_int_equal(parse_str(SP_FORGE_GITHUB, "push",
				   "{\"ref\": \"refs/notes/commits\", \"after\": \"" AFTER "\"}",
				   &h, &err), 0);
	assert_int_equal(h.kind, SP_HOOK_IGNORED);
	assert_non_null(h.ignored_why);
	sp_hook_release(&h);
	/* GitHub's own delete event (short ref name). */
	assert_int_equal(parse_str(SP_FORGE_GITHUB, "delete",
				   "{\"ref\": \"v0.9\", \"ref_type\": \"tag\", \"sender\": {\"login\": \"m\"}}",
				   &h, &err), 0);
	assert_int_equal(h.kind, SP_HOOK_DELETE);
	assert_string_equal(h.ref, "refs/tags/v0.9");
	assert_string_equal(h.tag, "v0.9");
	assert_string_equal(h.ignored_why, "tag deleted");
	sp_hook_release(&h);
	/* GitLab tag deleted. */
	assert_int_equal(parse_str(SP_FORGE_GITLAB, "Tag Push Hook",
				   "{\"object_kind\": \"tag_push\", \"ref\": \"refs/tags/v1\", "
				   "\"before\": \"" AFTER "\", \"after\": "
				   "\"0000000000000000000000000000000000000000\", \"checkout_sha\": null}",
				   &h, &err), 0);
	assert_int_equal(h.kind, SP_HOOK_DELETE);
	assert_string_equal(h.tag, "v1");
	assert_string_equal(h.ignored_why, "tag deleted");
	sp_hook_release(&h);
	/* GitLab events we do not build, and a name that is not printable. */
	assert_int_equal(parse_str(SP_FORGE_GITLAB, "Issue Hook", "{\"object_kind\": \"issue\"}",
				   &h, &err), 0);
	assert_int_equal(h.kind, SP_HOOK_IGNORED);
	assert_string_equal(h.ignored_why, "event issue");
	sp_hook_release(&h);
	assert_int_equal(parse_str(SP_FORGE_GITLAB, "Pipeline Hook", "{}", &h, &err), 0);
	assert_string_equal(h.ignored_why, "event Pipeline Hook");
	sp_hook_release(&h);
	assert_int_equal(parse_str(SP_FORGE_GITHUB, "weird\x01\"name", "{}", &h, &err), 0);
	assert_string_equal(h.ignored_why, "event weird??name");
	sp_hook_release(&h);
	assert_int_equal(parse_str(SP_FORGE_GITHUB, NULL, "{\"action\": \"created\"}", &h, &err), 0);
	assert_int_equal(h.kind, SP_HOOK_IGNORED);
	assert_string_equal(h.ignored_why, "event (none)");
	sp_hook_release(&h);
	/* A GitHub PR with a label added. */
	assert_int_equal(parse_str(SP_FORGE_GITHUB, "pull_request",
				   "{\"action\": \"labeled\", \"number\": 4, \"pull_request\": {}}",
				   &h, &err), 0);
	assert_int_equal(h.kind, SP_HOOK_IGNORED);
	assert_string_equal(h.ignored_why, "pull request labeled");
	assert_int_equal(h.pr, 4);
	sp_hook_release(&h);
	/* Upper-case hex is normalised; the title is the first line, cut at 1024 bytes. */
	{
		char body[3000];
		size_t i, n;

		n = (size_t)snprintf(body, sizeof(body),
				     "{\"ref\": \"refs/heads/main\", \"after\": \"%s\", "
				     "\"head_commit\": {\"message\": \"",
				     "0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C");
		for (i = 0; i < 1500; i++)
			body[n++] = 'x';
		n += (size_t)snprintf(body + n, sizeof(body) - n, "\\nsecond\"}}");
		assert_int_equal(parse_str(SP_FORGE_GITHUB, "push", body, &h, &err), 0);
		assert_string_equal(h.sha, AFTER);
		assert_int_equal(strlen(h.title), 1024);
		sp_hook_release(&h);
	}
	sp_hook_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_github_published_vector),
		cmocka_unit_test(test_github_refused),
		cmocka_unit_test(test_secret_is_bytes),
		cmocka_unit_test(test_gitea),
		cmocka_unit_test(test_gitlab_token),
		cmocka_unit_test(test_standard_published_vector),
		cmocka_unit_test(test_standard_window),
		cmocka_unit_test(test_standard_headers),
		cmocka_unit_test(test_standard_raw_key),
		cmocka_unit_test(test_delivery_and_event),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_signed_fixtures),
		cmocka_unit_test(test_form_body),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_content_types),
		cmocka_unit_test(test_other_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
