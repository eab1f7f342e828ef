/*
 * webhook.c — forge webhooks: signatures checked on the raw bytes, then the
 * verified body parsed into a struct sp_hook.  See webhook.h.
 *
 * Verification uses libcrypto only: HMAC-SHA256 through EVP_MAC, the MAC
 * sent by the forge decoded (hex) or ours encoded (base64) so that two
 * buffers of equal, public length are compared with CRYPTO_memcmp.  A
 * signature of the wrong length or with bad characters is simply not a
 * match.  GitLab's plain X-Gitlab-Token is compared through SHA-256
 * digests of both sides, so that neither the secret's length nor the
 * position of the first differing byte shows in the timing.
 *
 * Parsing uses cJSON (its default nesting limit bounds the recursion) and
 * reads only the fields a job needs; every string copied out is checked
 * (a ref that git would refuse, a sha that is not 40 hex digits, a number
 * out of range make the payload malformed: SP_ECONFIG, HTTP 400).
 */
#include "core/forge/webhook.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"

#define MAC_LEN 32              /* HMAC-SHA256 */
#define SW_TOLERANCE 300        /* Standard Webhooks: 5 minutes either way */
#define SW_PREFIX "whsec_"
#define TITLE_MAX 1024          /* bytes kept of a commit message's first line */
#define NAME_MAX_SHOWN 40       /* bytes of a forge's event/action name in ignored_why */

/* ---- names ---- */

const char *sp_forge_name(enum sp_forge f)
{
	switch (f) {
	case SP_FORGE_GITHUB:
		return "github";
	case SP_FORGE_GITEA:
		return "gitea";
	case SP_FORGE_GITLAB:
		return "gitlab";
	}
	return "unknown";
}

int sp_forge_parse(const char *name, enum sp_forge *out)
{
	if (!name)
		return -1;
	if (!strcmp(name, "github"))
		*out = SP_FORGE_GITHUB;
	else if (!strcmp(name, "gitea") || !strcmp(name, "forgejo"))
		*out = SP_FORGE_GITEA;
	else if (!strcmp(name, "gitlab"))
		*out = SP_FORGE_GITLAB;
	else
		return -1;
	return 0;
}

const char *sp_hook_kind_name(enum sp_hook_kind k)
{
	switch (k) {
	case SP_HOOK_PUSH:
		return "push";
	case SP_HOOK_TAG:
		return "tag";
	case SP_HOOK_PULL_REQUEST:
		return "pull_request";
	case SP_HOOK_PING:
		return "ping";
	case SP_HOOK_DELETE:
		return "delete";
	case SP_HOOK_IGNORED:
		return "ignored";
	}
	return "unknown";
}

/* ---- headers ---- */

/* The header's value, or NULL when it is missing or empty. */
static const char *hdr(sp_header_fn header, void *ud, const char *name)
{
	const char *v;

	assert(header);
	v = header(ud, name);
	return v && *v ? v : NULL;
}

const char *sp_webhook_delivery_id(enum sp_forge forge, sp_header_fn header, void *ud)
{
	const char *v = NULL;

	switch (forge) {
	case SP_FORGE_GITHUB:
		v = hdr(header, ud, "X-GitHub-Delivery");
		break;
	case SP_FORGE_GITEA:
		v = hdr(header, ud, "X-Gitea-Delivery");
		if (!v)
			v = hdr(header, ud, "X-Forgejo-Delivery");
		break;
	case SP_FORGE_GITLAB:
		v = hdr(header, ud, "X-Gitlab-Event-UUID");
		if (!v)
			v = hdr(header, ud, "webhook-id");
		break;
	}
	if (!v)
		v = hdr(header, ud, "Idempotency-Key");
	return v;
}

const char *sp_webhook_event_name(enum sp_forge forge, sp_header_fn header, void *ud)
{
	const char *v = NULL;

	switch (forge) {
	case SP_FORGE_GITHUB:
		v = hdr(header, ud, "X-GitHub-Event");
		break;
	case SP_FORGE_GITEA:
		v = hdr(header, ud, "X-Gitea-Event");
		if (!v)
			v = hdr(header, ud, "X-Forgejo-Event");
		if (!v)  /* Gitea sends GitHub's names too */
			v = hdr(header, ud, "X-GitHub-Event");
		break;
	case SP_FORGE_GITLAB:
		v = hdr(header, ud, "X-Gitlab-Event");
		break;
	}
	return v;
}

/* ---- crypto ---- */

/* HMAC-SHA256(key, parts...) into mac; false if libcrypto fails. */
static bool hmac_sha256(const unsigned char *key, size_t key_len, const void *const *parts,
			const size_t *lens, size_t nparts, unsigned char mac[MAC_LEN])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = NULL;
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	size_t out_len = 0, i;
	bool ok = false;

	if (!m || key_len == 0)
		goto cleanup;
	ctx = EVP_MAC_CTX_new(m);
	if (!ctx)
		goto cleanup;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(ctx, key, key_len, params))
		goto cleanup;
	for (i = 0; i < nparts; i++)
		if (lens[i] && !EVP_MAC_update(ctx, parts[i], lens[i]))
			goto cleanup;
	if (!EVP_MAC_final(ctx, mac, &out_len, MAC_LEN) || out_len != MAC_LEN)
		goto cleanup;
	ok = true;
cleanup:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return ok;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2*MAC_LEN hex digits into out; false otherwise. */
static bool hex_mac(const char *s, unsigned char out[MAC_LEN])
{
	size_t i;

	if (strlen(s) != 2 * MAC_LEN)
		return false;
	for (i = 0; i < MAC_LEN; i++) {
		int a = hexval((unsigned char)s[2 * i]), b = hexval((unsigned char)s[2 * i + 1]);

		if (a < 0 || b < 0)
			return false;
		out[i] = (unsigned char)(a * 16 + b);
	}
	return true;
}

/* Checks a hex HMAC of body (prefix, e.g. "sha256=", expected first). */
static bool check_hex(const char *sig, const char *prefix, const char *secret, size_t secret_len,
		      const unsigned char *body, size_t body_len, const char **why)
{
	unsigned char got[MAC_LEN], want[MAC_LEN];
	const void *parts[1] = { body };
	size_t lens[1] = { body_len };
	size_t plen = strlen(prefix);
	bool ok;

	if (strncmp(sig, prefix, plen) != 0 || !hex_mac(sig + plen, got)) {
		*why = "malformed signature";
		return false;
	}
	if (!hmac_sha256((const unsigned char *)secret, secret_len, parts, lens, 1, want)) {
		*why = "cannot compute HMAC";
		return false;
	}
	ok = CRYPTO_memcmp(got, want, MAC_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	if (!ok)
		*why = "signature mismatch";
	return ok;
}

/* GitLab's X-Gitlab-Token: equal to the secret, compared through digests. */
static bool check_token(const char *token, const char *secret, size_t secret_len, const char **why)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int alen = 0, blen = 0;
	bool ok;

	if (!EVP_Digest(token, strlen(token), a, &alen, EVP_sha256(), NULL) ||
	    !EVP_Digest(secret, secret_len, b, &blen, EVP_sha256(), NULL) || alen != blen) {
		*why = "cannot compute digest";
		return false;
	}
	ok = CRYPTO_memcmp(a, b, alen) == 0;
	OPENSSL_cleanse(b, sizeof(b));
	if (!ok)
		*why = "token mismatch";
	return ok;
}

/*
 * The Standard Webhooks key: a "whsec_" secret is base64, decoded into
 * *owned (a new buffer the caller wipes and frees); any other secret is
 * the key as it is.  false when the base64 is bad.
 */
static bool sw_key(const char *secret, size_t secret_len, const unsigned char **key,
		   size_t *key_len, unsigned char **owned)
{
	size_t plen = strlen(SW_PREFIX), n, pad = 0, room;
	const char *b64;
	unsigned char *buf;
	int got;

	*owned = NULL;
	if (secret_len < plen || memcmp(secret, SW_PREFIX, plen) != 0) {
		*key = (const unsigned char *)secret;
		*key_len = secret_len;
		return true;
	}
	b64 = secret + plen;
	n = secret_len - plen;
	if (n == 0 || n % 4 != 0 || n > INT_MAX || memchr(b64, '\0', n))
		return false;
	if (b64[n - 1] == '=')
		pad++;
	if (b64[n - 2] == '=')
		pad++;
	room = n / 4 * 3 + 1;
	buf = sp_xmalloc(room);
	got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got <= pad) {
		OPENSSL_cleanse(buf, room);
		free(buf);
		return false;
	}
	*key = *owned = buf;
	*key_len = (size_t)got - pad;
	return true;
}

/* Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature. */
static bool check_standard(const char *sigs, const char *secret, size_t secret_len,
			   sp_header_fn header, void *ud, const unsigned char *body,
			   size_t body_len, time_t now, const char **why)
{
	const char *id = hdr(header, ud, "webhook-id");
	const char *ts = hdr(header, ud, "webhook-timestamp");
	unsigned char mac[MAC_LEN], *owned = NULL;
	const unsigned char *key = NULL;
	char want[4 * ((MAC_LEN + 2) / 3) + 1];
	size_t key_len = 0, want_len, i;
	bool ok = false;
	long long t = 0;
	const char *p;

	if (!id) {
		*why = "missing webhook-id";
		return false;
	}
	if (!ts) {
		*why = "missing webhook-timestamp";
		return false;
	}
	/* Unix seconds: digits only, and few enough that nothing overflows. */
	for (i = 0; ts[i]; i++) {
		if (ts[i] < '0' || ts[i] > '9' || i >= 15) {
			*why = "malformed timestamp";
			return false;
		}
		t = t * 10 + (ts[i] - '0');
	}
	if (t < (long long)now - SW_TOLERANCE || t > (long long)now + SW_TOLERANCE) {
		*why = "timestamp outside window";
		return false;
	}
	if (!sw_key(secret, secret_len, &key, &key_len, &owned)) {
		*why = "secret is not valid whsec_ base64";
		return false;
	}
	{
		const void *parts[5] = { id, ".", ts, ".", body };
		size_t lens[5] = { strlen(id), 1, strlen(ts), 1, body_len };

		if (!hmac_sha256(key, key_len, parts, lens, 5, mac)) {
			*why = "cannot compute HMAC";
			goto cleanup;
		}
	}
	want_len = (size_t)EVP_EncodeBlock((unsigned char *)want, mac, MAC_LEN);
	/* One or more space-separated "v<n>,<base64>"; only v1 is ours. */
	*why = "signature mismatch";
	for (p = sigs; *p;) {
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == 3 + want_len && !strncmp(p, "v1,", 3) &&
		    CRYPTO_memcmp(p + 3, want, want_len) == 0) {
			ok = true;
			*why = NULL;
			break;
		}
		p += n;
	}
cleanup:
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(want, sizeof(want));
	if (owned) {
		OPENSSL_cleanse(owned, key_len);
		free(owned);
	}
	return ok;
}

bool sp_webhook_verify(enum sp_forge forge, const char *secret, size_t secret_len,
		       sp_header_fn header, void *ud, const unsigned char *body,
		       size_t body_len, time_t now, const char **why)
{
	const char *dummy = NULL, *sig;
	bool ok = false;

	assert(header && (body || body_len == 0));
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!secret || secret_len == 0) {
		*why = "no secret configured";
		return false;
	}
	switch (forge) {
	case SP_FORGE_GITHUB:
		sig = hdr(header, ud, "X-Hub-Signature-256");
		if (!sig) {
			*why = "missing signature";
			return false;
		}
		ok = check_hex(sig, "sha256=", secret, secret_len, body, body_len, why);
		break;
	case SP_FORGE_GITEA:
		/* Forgejo sends X-Forgejo-Signature and X-Hub-Signature-256
		 * besides X-Gitea-Signature; all carry the same HMAC. */
		if ((sig = hdr(header, ud, "X-Gitea-Signature")) ||
		    (sig = hdr(header, ud, "X-Forgejo-Signature")))
			ok = check_hex(sig, "", secret, secret_len, body, body_len, why);
		else if ((sig = hdr(header, ud, "X-Hub-Signature-256")))
			ok = check_hex(sig, "sha256=", secret, secret_len, body, body_len, why);
		else
			*why = "missing signature";
		break;
	case SP_FORGE_GITLAB: {
		/*
		 * A hook may carry both a secret token and a signing token; the
		 * repository has one secret.  A "whsec_" secret is a signing
		 * token: only the Standard Webhooks form is checked.  Any other
		 * secret is the X-Gitlab-Token when that header is sent, else
		 * the raw key of a Standard Webhooks signature.
		 */
		const char *tok = hdr(header, ud, "X-Gitlab-Token");
		size_t plen = strlen(SW_PREFIX);
		bool whsec = secret_len >= plen && !memcmp(secret, SW_PREFIX, plen);

		sig = hdr(header, ud, "webhook-signature");
		if (sig && (whsec || !tok))
			ok = check_standard(sig, secret, secret_len, header, ud, body, body_len,
					    now, why);
		else if (tok && !whsec)
			ok = check_token(tok, secret, secret_len, why);
		else
			*why = "missing signature";
		break;
	}
	}
	if (ok)
		*why = NULL;
	else if (!*why)
		*why = "signature mismatch";
	return ok;
}

/* ---- parsing helpers ---- */

static int malformed(struct sp_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int malformed(struct sp_error *err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sp_error_set(err, SP_ECONFIG, "malformed payload: %s", msg);
}

/* The string a JSON value holds, or NULL. */
static const char *vstr(const cJSON *v)
{
	return v && cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *jget(const cJSON *o, const char *key)
{
	return o && cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);

	return vstr(v);
}

static const cJSON *jobj(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);

	return v && cJSON_IsObject(v) ? v : NULL;
}

/* A positive int from a JSON number; 0 when missing or out of range. */
static int jint(const cJSON *o, const char *key)
{
	const cJSON *v = jget(o, key);

	if (!v || !cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > INT_MAX ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return 0;
	return (int)v->valuedouble;
}

static bool is_sha(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < 40; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return s[40] == '\0';
}

static bool is_zero_sha(const char *s)
{
	return s && strlen(s) == 40 && strspn(s, "0") == 40;
}

static char *dup_sha(const char *s)
{
	char *d = sp_xstrdup(s);
	size_t i;

	for (i = 0; d[i]; i++)
		if (d[i] >= 'A' && d[i] <= 'F')
			d[i] = (char)(d[i] - 'A' + 'a');
	return d;
}

static char *dup_or_null(const char *s)
{
	return s ? sp_xstrdup(s) : NULL;
}

/* A commit message's first line, cut to TITLE_MAX bytes on a UTF-8 boundary. */
static char *first_line(const char *msg)
{
	size_t n;

	if (!msg)
		return NULL;
	n = strcspn(msg, "\r\n");
	if (n > TITLE_MAX) {
		n = TITLE_MAX;
		while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
			n--;
	}
	return sp_xstrndup(msg, n);
}

/* A forge's name for something, printable and short, for ignored_why. */
static char *shown_name(const char *prefix, const char *name)
{
	char clean[NAME_MAX_SHOWN + 1];
	size_t i;

	if (!name || !*name)
		return sp_xasprintf("%s (none)", prefix);
	for (i = 0; name[i] && i < NAME_MAX_SHOWN; i++) {
		unsigned char c = (unsigned char)name[i];

		clean[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ' ' ||
			   c == '.' ? (char)c : '?';
	}
	clean[i] = '\0';
	return sp_xasprintf("%s %s", prefix, clean);
}

/*
 * A full ref git would accept (a subset of git check-ref-format): below
 * "refs/", at most 255 bytes, no control characters or " ~^:?*[\", no
 * "..", "@{" or "//", no component starting with "." or ending in ".lock",
 * not ending in "/" or ".".
 */
static bool ref_ok(const char *ref)
{
	size_t n, i, len;
	const char *c;

	if (!ref || strncmp(ref, "refs/", 5) != 0)
		return false;
	n = strlen(ref);
	if (n <= 5 || n > 255 || ref[n - 1] == '/' || ref[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)ref[i];

		if (ch < 0x20 || ch == 0x7f || strchr(" ~^:?*[\\", ch))
			return false;
	}
	if (strstr(ref, "..") || strstr(ref, "@{") || strstr(ref, "//"))
		return false;
	for (c = ref; *c; c += len + (c[len] == '/')) {
		len = strcspn(c, "/");
		if (*c == '.' || (len >= 5 && !strncmp(c + len - 5, ".lock", 5)))
			return false;
	}
	return true;
}

static char *ref_under(const char *prefix, const char *name)
{
	return sp_xasprintf("%s%s", prefix, name);
}

/* ---- push ---- */

/* What the forges' push payloads have in common. */
struct push_facts {
	const char *ref;
	const cJSON *after;    /* the JSON value: may be null for GitLab tests */
	const char *before;
	bool deleted;          /* GitHub's "deleted" */
	const char *head;      /* the commit to build when it differs from after */
	const char *message, *author, *sender, *clone_url;
};

static int fill_push(struct sp_hook *h, const struct push_facts *f, struct sp_error *err)
{
	const char *after = vstr(f->after);
	bool is_tag;

	if (!f->ref)
		return malformed(err, "push without ref");
	if (!ref_ok(f->ref))
		return malformed(err, "push ref is not a valid ref");
	if (!after)
		return malformed(err, "push without after");
	is_tag = !strncmp(f->ref, "refs/tags/", 10);
	h->ref = sp_xstrdup(f->ref);
	h->sender = dup_or_null(f->sender);
	h->clone_url = dup_or_null(f->clone_url);
	if (!strncmp(f->ref, "refs/heads/", 11))
		h->branch = sp_xstrdup(f->ref + 11);
	else if (is_tag)
		h->tag = sp_xstrdup(f->ref + 10);
	if (f->deleted || is_zero_sha(after)) {
		h->kind = SP_HOOK_DELETE;
		h->ignored_why = sp_xstrdup(is_tag ? "tag deleted" : h->branch ? "branch deleted" :
					    "ref deleted");
		return 0;
	}
	if (!is_sha(after))
		return malformed(err, "push after is not a 40-hex sha");
	if (f->head && !is_sha(f->head))
		return malformed(err, "push head commit is not a 40-hex sha");
	h->sha = dup_sha(f->head ? f->head : after);
	h->title = first_line(f->message);
	h->author = dup_or_null(f->author);
	if (h->branch) {
		h->kind = SP_HOOK_PUSH;
	} else if (is_tag) {
		h->kind = SP_HOOK_TAG;
	} else {
		h->kind = SP_HOOK_IGNORED;
		h->ignored_why = sp_xstrdup("push to a ref that is not a branch or tag");
	}
	return 0;
}

/* GitHub and Gitea: ref, before, after, head_commit, repository, sender. */
static int push_github_like(struct sp_hook *h, const cJSON *root, struct sp_error *err)
{
	const cJSON *head = jobj(root, "head_commit");
	const cJSON *sender = jobj(root, "sender"), *deleted = jget(root, "deleted");
	struct push_facts f = { 0 };

	f.ref = jstr(root, "ref");
	f.after = jget(root, "after");
	f.before = jstr(root, "before");
	f.deleted = cJSON_IsTrue(deleted);
	f.head = jstr(head, "id");
	f.message = jstr(head, "message");
	f.author = jstr(jobj(head, "author"), "name");
	f.sender = jstr(sender, "login");
	if (!f.sender)
		f.sender = jstr(sender, "username");
	f.clone_url = jstr(jobj(root, "repository"), "clone_url");
	/* Gitea's "test delivery" on an empty repository: a fake commit of zeros. */
	if (is_zero_sha(f.before) && is_zero_sha(vstr(f.after)) && !f.deleted) {
		h->kind = SP_HOOK_PING;
		h->ignored_why = sp_xstrdup("test hook without a commit");
		return 0;
	}
	return fill_push(h, &f, err);
}

/* ---- pull requests ---- */

struct pr_facts {
	int number;
	const char *action;
	bool build;            /* the action asks for a build */
	const char *head_sha, *target, *title, *author, *sender, *clone_url;
	bool merge_request;    /* GitLab: refs/merge-requests/N/head, else refs/pull/N/head */
};

static int fill_pr(struct sp_hook *h, const struct pr_facts *f, const char *ignored,
		   struct sp_error *err)
{
	char *target_ref = NULL;
	int rc = 0;

	h->pr = f->number;
	h->sender = dup_or_null(f->sender);
	h->clone_url = dup_or_null(f->clone_url);
	if (!f->build) {
		h->kind = SP_HOOK_IGNORED;
		h->ignored_why = ignored ? sp_xstrdup(ignored) :
			shown_name("pull request", f->action);
		return 0;
	}
	if (f->number <= 0)
		return malformed(err, "pull request without a number");
	if (!is_sha(f->head_sha))
		return malformed(err, "pull request head is not a 40-hex sha");
	if (!f->target)
		return malformed(err, "pull request without a target branch");
	target_ref = ref_under("refs/heads/", f->target);
	if (!ref_ok(target_ref)) {
		rc = malformed(err, "pull request target is not a valid branch");
		goto cleanup;
	}
	h->kind = SP_HOOK_PULL_REQUEST;
	if (f->merge_request)
		h->ref = sp_xasprintf("refs/merge-requests/%d/head", f->number);
	else
		h->ref = sp_xasprintf("refs/pull/%d/head", f->number);
	h->sha = dup_sha(f->head_sha);
	h->branch = sp_xstrdup(f->target);
	h->title = first_line(f->title);
	h->author = dup_or_null(f->author);
cleanup:
	free(target_ref);
	return rc;
}

/* GitHub and Gitea pull_request payloads. */
static int pr_github_like(struct sp_hook *h, const cJSON *root, bool gitea, struct sp_error *err)
{
	const cJSON *pr = jobj(root, "pull_request");
	const cJSON *sender = jobj(root, "sender");
	struct pr_facts f = { 0 };

	if (!pr)
		return malformed(err, "pull_request event without pull_request");
	f.action = jstr(root, "action");
	f.number = jint(root, "number");
	if (!f.number)
		f.number = jint(pr, "number");
	f.build = f.action && (!strcmp(f.action, "opened") || !strcmp(f.action, "reopened") ||
			       !strcmp(f.action, gitea ? "synchronized" : "synchronize") ||
			       (gitea && !strcmp(f.action, "synchronize")));
	f.head_sha = jstr(jobj(pr, "head"), "sha");
	f.target = jstr(jobj(pr, "base"), "ref");
	f.title = jstr(pr, "title");
	f.author = jstr(jobj(pr, "user"), "login");
	f.sender = jstr(sender, "login");
	if (!f.sender)
		f.sender = jstr(sender, "username");
	f.clone_url = jstr(jobj(root, "repository"), "clone_url");
	return fill_pr(h, &f, NULL, err);
}

/* GitHub's and Gitea's own "delete" event: ref is the short name. */
static int delete_event(struct sp_hook *h, const cJSON *root, struct sp_error *err)
{
	const char *ref = jstr(root, "ref"), *type = jstr(root, "ref_type");
	bool tag = type && !strcmp(type, "tag");
	char *full;

	if (!ref || !type)
		return malformed(err, "delete event without ref or ref_type");
	full = ref_under(tag ? "refs/tags/" : "refs/heads/", ref);
	if (!ref_ok(full)) {
		free(full);
		return malformed(err, "delete event ref is not a valid ref");
	}
	h->kind = SP_HOOK_DELETE;
	h->ref = full;
	if (tag)
		h->tag = sp_xstrdup(ref);
	else
		h->branch = sp_xstrdup(ref);
	h->sender = dup_or_null(jstr(jobj(root, "sender"), "login"));
	h->ignored_why = sp_xstrdup(tag ? "tag deleted" : "branch deleted");
	return 0;
}

/* An event name for a payload sent without one (GitHub and Gitea shapes). */
static const char *guess_event(const cJSON *root)
{
	if (jget(root, "zen") && jget(root, "hook_id"))
		return "ping";
	if (jobj(root, "pull_request"))
		return "pull_request";
	if (jget(root, "ref") && jget(root, "after"))
		return "push";
	return NULL;
}

static int parse_github(struct sp_hook *h, const char *event, const cJSON *root,
			struct sp_error *err)
{
	if (!event)
		event = guess_event(root);
	if (event && !strcmp(event, "ping")) {
		h->kind = SP_HOOK_PING;
		h->ignored_why = sp_xstrdup("ping");
		h->sender = dup_or_null(jstr(jobj(root, "sender"), "login"));
		return 0;
	}
	if (event && !strcmp(event, "push"))
		return push_github_like(h, root, err);
	if (event && !strcmp(event, "pull_request"))
		return pr_github_like(h, root, false, err);
	if (event && !strcmp(event, "delete"))
		return delete_event(h, root, err);
	h->kind = SP_HOOK_IGNORED;
	h->ignored_why = shown_name("event", event);
	return 0;
}

static int parse_gitea(struct sp_hook *h, const char *event, const cJSON *root,
		       struct sp_error *err)
{
	if (!event)
		event = guess_event(root);
	if (event && !strcmp(event, "ping")) {
		h->kind = SP_HOOK_PING;
		h->ignored_why = sp_xstrdup("ping");
		return 0;
	}
	if (event && !strcmp(event, "push"))
		return push_github_like(h, root, err);
	/* "pull_request" covers opened, synchronized, reopened, closed, labels,
	 * assignments; review events come under other names and also say
	 * "synchronized", so the name matters. */
	if (event && (!strcmp(event, "pull_request") || !strcmp(event, "pull_request_sync")))
		return pr_github_like(h, root, true, err);
	if (event && !strcmp(event, "delete"))
		return delete_event(h, root, err);
	h->kind = SP_HOOK_IGNORED;
	h->ignored_why = shown_name("event", event);
	return 0;
}

/* ---- GitLab ---- */

static int gitlab_push(struct sp_hook *h, const cJSON *root, struct sp_error *err)
{
	const cJSON *commits = jget(root, "commits"), *c, *head = NULL, *project;
	const char *checkout = jstr(root, "checkout_sha");
	struct push_facts f = { 0 };

	f.ref = jstr(root, "ref");
	f.after = jget(root, "after");
	f.before = jstr(root, "before");
	f.sender = jstr(root, "user_username");
	project = jobj(root, "project");
	f.clone_url = jstr(project, "git_http_url");
	if (!f.clone_url)
		f.clone_url = jstr(jobj(root, "repository"), "git_http_url");
	/* The "Test" button on a project without a commit sends after: null. */
	if (f.ref && cJSON_IsNull(f.after)) {
		h->kind = SP_HOOK_PING;
		h->ignored_why = sp_xstrdup("test hook without a commit");
		h->sender = dup_or_null(f.sender);
		return 0;
	}
	/* checkout_sha is the commit (for an annotated tag, after is the tag object). */
	if (checkout && vstr(f.after) && !is_zero_sha(vstr(f.after)))
		f.head = checkout;
	if (commits && cJSON_IsArray(commits)) {
		cJSON_ArrayForEach(c, commits) {
			const char *id = jstr(c, "id");

			if (id && ((f.head && !strcasecmp(id, f.head)) ||
				   (vstr(f.after) && !strcasecmp(id, vstr(f.after)))))
				head = c;
		}
	}
	f.message = jstr(head, "message");
	f.author = jstr(jobj(head, "author"), "name");
	return fill_push(h, &f, err);
}

static int gitlab_mr(struct sp_hook *h, const cJSON *root, struct sp_error *err)
{
	const cJSON *attrs = jobj(root, "object_attributes"), *last;
	const char *oldrev, *ignored = NULL;
	struct pr_facts f = { 0 };

	if (!attrs)
		return malformed(err, "merge request without object_attributes");
	last = jobj(attrs, "last_commit");
	oldrev = jstr(attrs, "oldrev");
	f.action = jstr(attrs, "action");
	f.number = jint(attrs, "iid");
	if (f.action && (!strcmp(f.action, "open") || !strcmp(f.action, "reopen"))) {
		f.build = true;
	} else if (f.action && !strcmp(f.action, "update")) {
		/* oldrev is sent only when the update pushed new commits. */
		f.build = oldrev && *oldrev;
		if (!f.build)
			ignored = "merge request updated without new commits";
	}
	f.head_sha = jstr(last, "id");
	f.target = jstr(attrs, "target_branch");
	f.title = jstr(last, "message");
	if (!f.title)
		f.title = jstr(last, "title");
	f.author = jstr(jobj(last, "author"), "name");
	f.sender = jstr(jobj(root, "user"), "username");
	f.clone_url = jstr(jobj(root, "project"), "git_http_url");
	f.merge_request = true;
	return fill_pr(h, &f, ignored, err);
}

static int parse_gitlab(struct sp_hook *h, const char *event, const cJSON *root,
			struct sp_error *err)
{
	/* object_kind is in every GitLab payload (system hooks included);
	 * the event header is the fallback. */
	const char *kind = jstr(root, "object_kind");

	if (!kind && event) {
		if (!strcmp(event, "Push Hook"))
			kind = "push";
		else if (!strcmp(event, "Tag Push Hook"))
			kind = "tag_push";
		else if (!strcmp(event, "Merge Request Hook"))
			kind = "merge_request";
	}
	if (kind && (!strcmp(kind, "push") || !strcmp(kind, "tag_push")))
		return gitlab_push(h, root, err);
	if (kind && !strcmp(kind, "merge_request"))
		return gitlab_mr(h, root, err);
	h->kind = SP_HOOK_IGNORED;
	h->ignored_why = shown_name("event", kind ? kind : event);
	return 0;
}

/* ---- body ---- */

enum body_form { FORM_JSON, FORM_URLENCODED, FORM_OTHER };

static enum body_form body_form(const char *content_type)
{
	size_t n;

	if (!content_type)
		return FORM_JSON;
	content_type += strspn(content_type, " \t");
	n = strcspn(content_type, "; \t");
	if (n == 16 && !strncasecmp(content_type, "application/json", n))
		return FORM_JSON;
	if (n > 5 && !strncasecmp(content_type + n - 5, "+json", 5))
		return FORM_JSON;
	if (n == 33 && !strncasecmp(content_type, "application/x-www-form-urlencoded", n))
		return FORM_URLENCODED;
	return FORM_OTHER;
}

/* URL-decodes s[0..n) ('+' is a space) into out (room for n + 1); false on a bad escape or NUL. */
static bool form_decode(const char *s, size_t n, char *out, size_t *out_len)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			int a, b;

			if (n - i < 3)
				return false;
			a = hexval((unsigned char)s[i + 1]);
			b = hexval((unsigned char)s[i + 2]);
			if (a < 0 || b < 0 || (a == 0 && b == 0))
				return false;
			out[o++] = (char)(a * 16 + b);
			i += 2;
		} else if (s[i] == '\0') {
			return false;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*out_len = o;
	return true;
}

/* The decoded payload= field of a form body: a new buffer, or NULL. */
static char *form_payload(const char *body, size_t len, size_t *out_len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = len - i, klen;
		const char *amp = memchr(body + i, '&', n), *eq;
		char *out;

		if (amp)
			n = (size_t)(amp - (body + i));
		eq = memchr(body + i, '=', n);
		klen = eq ? (size_t)(eq - (body + i)) : n;
		if (eq && klen == 7 && !memcmp(body + i, "payload", 7)) {
			size_t vlen = n - klen - 1;

			out = sp_xmalloc(vlen + 1);
			if (!form_decode(eq + 1, vlen, out, out_len)) {
				free(out);
				return NULL;
			}
			return out;
		}
		i += n + 1;
	}
	return NULL;
}

int sp_webhook_parse(enum sp_forge forge, const char *event_name, const char *content_type,
		     const unsigned char *body, size_t body_len, struct sp_hook *out,
		     struct sp_error *err)
{
	const char *text = (const char *)body, *end = NULL;
	size_t text_len = body_len;
	char *decoded = NULL;
	cJSON *root = NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!body) {
		text = "";
		text_len = 0;
	}
	switch (body_form(content_type)) {
	case FORM_JSON:
		break;
	case FORM_URLENCODED:
		decoded = form_payload(text, text_len, &text_len);
		if (!decoded) {
			rc = malformed(err, "form body without a valid payload= field");
			goto cleanup;
		}
		text = decoded;
		break;
	case FORM_OTHER:
		rc = malformed(err, "content type is neither JSON nor a form");
		goto cleanup;
	}
	root = cJSON_ParseWithLengthOpts(text, text_len, &end, 0);
	if (!root) {
		rc = malformed(err, "not JSON");
		goto cleanup;
	}
	for (; end && end < text + text_len; end++) {
		if (!strchr(" \t\r\n", *end) || *end == '\0') {
			rc = malformed(err, "trailing bytes after the JSON value");
			goto cleanup;
		}
	}
	if (!cJSON_IsObject(root)) {
		rc = malformed(err, "not a JSON object");
		goto cleanup;
	}
	switch (forge) {
	case SP_FORGE_GITHUB:
		rc = parse_github(out, event_name, root, err);
		break;
	case SP_FORGE_GITEA:
		rc = parse_gitea(out, event_name, root, err);
		break;
	case SP_FORGE_GITLAB:
		rc = parse_gitlab(out, event_name, root, err);
		break;
	}
cleanup:
	cJSON_Delete(root);
	free(decoded);
	if (rc)
		sp_hook_release(out);
	return rc;
}

void sp_hook_release(struct sp_hook *h)
{
	if (!h)
		return;
	free(h->ref);
	free(h->branch);
	free(h->tag);
	free(h->sha);
	free(h->title);
	free(h->author);
	free(h->sender);
	free(h->clone_url);
	free(h->ignored_why);
	memset(h, 0, sizeof(*h));
}
