/*
 * fuzz_webhook.c — libFuzzer target: webhook verification and payload
 * parsing (core/forge/webhook.h).
 *
 * Input: one flags byte, then HTTP-like header lines "Name: value\n" up to
 * an empty line, then the body (no empty line: no headers, all body).
 * Flags:
 *   bit 0-1  the forge verified against (3: all three)
 *   bit 2    the harness signs the body itself (X-Hub-Signature-256,
 *            X-Gitea-Signature, X-Gitlab-Token, and the Standard Webhooks
 *            webhook-signature with webhook-id/-timestamp), replacing what
 *            the input sent, so that the accepting paths are reached
 *   bit 3    the secret is a "whsec_" signing key (base64) instead of text
 *   bit 4    parse as application/x-www-form-urlencoded when the input
 *            sends no Content-Type
 *   bit 5    with bit 2, no X-Gitlab-Token: a plain secret is then the raw
 *            key of the Standard Webhooks signature
 * The body is then verified (the fixed secret, a fixed now) and parsed for
 * every forge, with the event name its headers give and without one (the
 * server parses only verified bodies; the fuzzer cannot forge a MAC, so
 * here every body is parsed).  A parsed hook must keep its promises:
 * sha 40 hex (when set), the kind in range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/base/error.h"
#include "core/forge/webhook.h"
#include "tests/fuzz/fuzz.h"

#define MAX_HEADERS 32
#define NOW ((time_t)1764800000)

static const char TEXT_SECRET[] = "It's a Secret to Everybody";
/* "whsec_" + base64 of a 24-byte key */
static const char WHSEC_SECRET[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct headers {
	char *name[MAX_HEADERS];
	char *value[MAX_HEADERS];
	size_t n;
};

static const char *hget(void *ud, const char *name)
{
	const struct headers *h = ud;
	size_t i;

	for (i = 0; i < h->n; i++)
		if (!strcasecmp(h->name[i], name))
			return h->value[i];
	return NULL;
}

static void hset(struct headers *h, const char *name, const char *value)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		if (!strcasecmp(h->name[i], name)) {
			free(h->value[i]);
			h->value[i] = sp_xstrdup(value);
			return;
		}
	}
	if (h->n == MAX_HEADERS) { /* full: the last one makes room */
		h->n--;
		free(h->name[h->n]);
		free(h->value[h->n]);
	}
	h->name[h->n] = sp_xstrdup(name);
	h->value[h->n] = sp_xstrdup(value);
	h->n++;
}

static void hfree(struct headers *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		free(h->name[i]);
		free(h->value[i]);
	}
	h->n = 0;
}

/* Parses "Name: value" lines up to an empty line; returns the body offset. */
static size_t parse_headers(struct headers *h, const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len;
		char *line, *colon, *v;

		if (!nl)
			return 0; /* no empty line: everything is body */
		len = (size_t)(nl - (data + off));
		if (len == 0)
			return off + 1;
		line = fuzz_strndup(data + off, len);
		colon = strchr(line, ':');
		if (colon) {
			*colon = '\0';
			for (v = colon + 1; *v == ' '; v++)
				;
			hset(h, line, v);
		}
		free(line);
		off += len + 1;
	}
	return 0;
}

static void hex(char *out, const unsigned char *mac, unsigned len)
{
	unsigned i;

	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/* Signs body the way each forge does, into the headers. */
static void sign(struct headers *h, const char *secret, size_t secret_len, int whsec,
		 int no_token, const uint8_t *body, size_t body_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE], key[64];
	unsigned maclen = 0;
	char hexmac[2 * EVP_MAX_MD_SIZE + 8], b64[4 * EVP_MAX_MD_SIZE];
	const char *ts = "1764800000";
	char *id, *msg, *sig;
	size_t keylen = secret_len;
	size_t idlen, mlen;

	HMAC(EVP_sha256(), secret, (int)secret_len, body, body_len, mac, &maclen);
	memcpy(hexmac, "sha256=", 7);
	hex(hexmac + 7, mac, maclen);
	hset(h, "X-Hub-Signature-256", hexmac);
	hset(h, "X-Gitea-Signature", hexmac + 7);
	if (!whsec && !no_token)
		hset(h, "X-Gitlab-Token", secret);

	/* Standard Webhooks: HMAC(key, id "." ts "." body), base64 */
	if (whsec) {
		int n = EVP_DecodeBlock(key, (const unsigned char *)secret + 6,
					(int)(secret_len - 6));
		if (n != 24)
			abort(); /* WHSEC_SECRET holds 24 bytes, without padding */
		keylen = (size_t)n;
	} else {
		memcpy(key, secret, secret_len);
	}
	id = sp_xstrdup(hget(h, "webhook-id") ? hget(h, "webhook-id") : "msg_fuzz");
	hset(h, "webhook-id", id);
	hset(h, "webhook-timestamp", ts);
	idlen = strlen(id);
	mlen = idlen + 1 + strlen(ts) + 1 + body_len;
	msg = sp_xmalloc(mlen + 1);
	snprintf(msg, mlen + 1, "%s.%s.", id, ts);
	if (body_len)
		memcpy(msg + idlen + 1 + strlen(ts) + 1, body, body_len);
	free(id);
	HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, mlen, mac, &maclen);
	free(msg);
	EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
	sig = sp_xasprintf("v1,bm90IHRoaXMgb25l v1,%s", b64);
	hset(h, "webhook-signature", sig);
	free(sig);
}

static void check_hook(const struct sp_hook *k)
{
	size_t i;

	if ((int)k->kind < SP_HOOK_PUSH || k->kind > SP_HOOK_IGNORED)
		abort();
	(void)sp_hook_kind_name(k->kind);
	if (k->sha) {
		if (strlen(k->sha) != 40)
			abort();
		for (i = 0; i < 40; i++)
			if (!strchr("0123456789abcdefABCDEF", k->sha[i]))
				abort();
	}
	if ((k->kind == SP_HOOK_PUSH || k->kind == SP_HOOK_TAG ||
	     k->kind == SP_HOOK_PULL_REQUEST) && (!k->ref || !k->sha))
		abort(); /* a build needs a ref and a commit */
}

static void parse(enum sp_forge f, const char *event, const char *ctype,
		  const uint8_t *body, size_t len)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_hook k;

	memset(&k, 0, sizeof(k));
	if (sp_webhook_parse(f, event, ctype, body, len, &k, &err) == 0)
		check_hook(&k);
	sp_hook_release(&k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct headers h = { { NULL }, { NULL }, 0 };
	const char *secret, *ctype, *why;
	unsigned flags;
	size_t boff, blen, secret_len;
	const uint8_t *body;
	int f;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	boff = parse_headers(&h, data, size);
	if (boff == 0)
		hfree(&h);
	body = data + boff;
	blen = size - boff;
	secret = (flags & 8) ? WHSEC_SECRET : TEXT_SECRET;
	secret_len = strlen(secret);
	if (flags & 4)
		sign(&h, secret, secret_len, (flags & 8) != 0, (flags & 32) != 0, body, blen);

	for (f = SP_FORGE_GITHUB; f <= SP_FORGE_GITLAB; f++) {
		if ((flags & 3) != 3 && (unsigned)f != (flags & 3))
			continue;
		why = "unset";
		if (sp_webhook_verify((enum sp_forge)f, secret, secret_len, hget, &h, body, blen,
				      NOW, &why)) {
			if (why)
				abort(); /* why is NULL on success */
		} else if (!why) {
			abort(); /* and set on failure */
		}
	}
	ctype = hget(&h, "Content-Type");
	if (!ctype)
		ctype = (flags & 16) ? "application/x-www-form-urlencoded" : "application/json";
	for (f = SP_FORGE_GITHUB; f <= SP_FORGE_GITLAB; f++) {
		const char *ev = sp_webhook_event_name((enum sp_forge)f, hget, &h);
		(void)sp_webhook_delivery_id((enum sp_forge)f, hget, &h);
		parse((enum sp_forge)f, ev, ctype, body, blen);
		if (ev)
			parse((enum sp_forge)f, NULL, ctype, body, blen);
	}
	hfree(&h);
	return 0;
}
