/*
 * imageref.c — validate and split image references; see imageref.h.
 *
 * Written as a small hand parser rather than a regex so that each way a
 * reference can be wrong gets its own message.
 */
#include "core/registry/imageref.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128

static bool is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* component := [a-z0-9]+ ((.|_|__|-+)[a-z0-9]+)*  over s[0..len) */
static int check_component(const char *s, size_t len, struct sp_error *err)
{
	size_t i = 0;

	if (len == 0)
		return sp_error_set(err, SP_ECONFIG, "empty path component");
	for (i = 0; i < len; i++) {
		if (isupper((unsigned char)s[i]))
			return sp_error_set(err, SP_ECONFIG, "repository name must be lowercase");
	}
	i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && is_lower_alnum(s[i]))
			i++;
		if (i == start)
			return sp_error_set(err, SP_ECONFIG,
				"invalid character '%c' in repository name", s[i]);
		if (i == len)
			return 0;
		/* a separator */
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < len && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < len && s[i] == '-')
				i++;
		} else {
			return sp_error_set(err, SP_ECONFIG,
				"invalid character '%c' in repository name", s[i]);
		}
		if (i == len || !is_lower_alnum(s[i]))
			return sp_error_set(err, SP_ECONFIG,
				"repository name components must not end with or repeat a separator");
	}
	return 0;
}

static int check_domain(const char *s, size_t len, struct sp_error *err)
{
	size_t i = 0, hostlen = len;
	const char *colon;

	if (len && s[0] == '[') {
		const char *end = memchr(s, ']', len);
		if (!end)
			return sp_error_set(err, SP_ECONFIG, "unclosed '[' in registry address");
		for (i = 1; s + i < end; i++)
			if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
				return sp_error_set(err, SP_ECONFIG, "invalid IPv6 registry address");
		i = (size_t)(end - s) + 1;
		hostlen = i;
	} else {
		colon = memchr(s, ':', len);
		if (colon)
			hostlen = (size_t)(colon - s);
		/* dot-separated labels of [A-Za-z0-9-], not starting/ending with '-' */
		while (i < hostlen) {
			size_t start = i;
			while (i < hostlen && (isalnum((unsigned char)s[i]) || s[i] == '-'))
				i++;
			if (i == start || s[start] == '-' || s[i - 1] == '-')
				return sp_error_set(err, SP_ECONFIG, "invalid registry host name");
			if (i < hostlen) {
				if (s[i] != '.')
					return sp_error_set(err, SP_ECONFIG,
						"invalid character '%c' in registry host name", s[i]);
				i++;
				if (i == hostlen)
					return sp_error_set(err, SP_ECONFIG, "invalid registry host name");
			}
		}
		if (hostlen == 0)
			return sp_error_set(err, SP_ECONFIG, "empty registry host name");
	}
	if (hostlen < len) {
		size_t p = hostlen + 1, digits = 0;
		if (s[hostlen] != ':')
			return sp_error_set(err, SP_ECONFIG, "invalid registry address");
		for (; p < len; p++, digits++)
			if (!isdigit((unsigned char)s[p]))
				return sp_error_set(err, SP_ECONFIG, "registry port must be a number");
		if (!digits)
			return sp_error_set(err, SP_ECONFIG, "empty registry port");
	}
	return 0;
}

static int check_tag(const char *s, struct sp_error *err)
{
	size_t i, len = strlen(s);

	if (len == 0)
		return sp_error_set(err, SP_ECONFIG, "empty tag after ':'");
	if (len > TAG_MAX_LEN)
		return sp_error_set(err, SP_ECONFIG, "tag longer than %d characters", TAG_MAX_LEN);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '_' || (i > 0 && (c == '.' || c == '-')))
			continue;
		return sp_error_set(err, SP_ECONFIG, "invalid character '%c' in tag \"%s\"", c, s);
	}
	return 0;
}

static int check_digest(const char *s, struct sp_error *err)
{
	const char *colon = strchr(s, ':');
	size_t i, hex = 0;

	if (!colon || colon == s || !isalpha((unsigned char)s[0]))
		return sp_error_set(err, SP_ECONFIG, "invalid digest \"%s\" (want algorithm:hex)", s);
	for (i = 0; s + i < colon; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("+.-_", s[i]))
			return sp_error_set(err, SP_ECONFIG, "invalid digest algorithm in \"%s\"", s);
	for (i = 1; colon[i]; i++, hex++)
		if (!isxdigit((unsigned char)colon[i]))
			return sp_error_set(err, SP_ECONFIG, "invalid digest \"%s\" (hex expected)", s);
	if (hex < 32)
		return sp_error_set(err, SP_ECONFIG, "digest \"%s\" is too short", s);
	return 0;
}

int sp_imageref_parse(struct sp_imageref *out, const char *s, struct sp_error *err)
{
	char *copy = NULL, *at, *name, *tag = NULL, *slash, *lastslash, *p;
	const char *domain = "";
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!*s)
		return sp_error_set(err, SP_ECONFIG, "empty image reference");
	copy = sp_xstrdup(s);
	at = strchr(copy, '@');
	if (at) {
		*at = '\0';
		if ((rc = check_digest(at + 1, err)) < 0)
			goto out;
	}
	name = copy;
	/* a ':' after the last '/' starts the tag (a ':' before it is a port) */
	lastslash = strrchr(name, '/');
	p = strchr(lastslash ? lastslash : name, ':');
	if (p) {
		*p = '\0';
		tag = p + 1;
		if ((rc = check_tag(tag, err)) < 0)
			goto out;
	}
	if (strlen(name) > NAME_MAX_LEN) {
		rc = sp_error_set(err, SP_ECONFIG, "repository name longer than %d characters",
				  NAME_MAX_LEN);
		goto out;
	}
	slash = strchr(name, '/');
	if (slash) {
		size_t dlen = (size_t)(slash - name);
		bool has_upper = false;
		for (p = name; p < slash; p++)
			has_upper |= isupper((unsigned char)*p) != 0;
		if (memchr(name, '.', dlen) || memchr(name, ':', dlen) ||
		    (dlen == 9 && !strncmp(name, "localhost", 9)) || has_upper) {
			if ((rc = check_domain(name, dlen, err)) < 0)
				goto out;
			*slash = '\0';
			domain = name;
			name = slash + 1;
		}
	}
	if (!*name) {
		rc = sp_error_set(err, SP_ECONFIG, "missing repository name");
		goto out;
	}
	for (p = name;;) {
		char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if ((rc = check_component(p, len, err)) < 0)
			goto out;
		if (!end)
			break;
		p = end + 1;
	}
	out->domain = sp_xstrdup(domain);
	out->path = sp_xstrdup(name);
	out->tag = sp_xstrdup(tag ? tag : "");
	out->digest = sp_xstrdup(at ? at + 1 : "");
out:
	free(copy);
	return rc;
}

void sp_imageref_release(struct sp_imageref *ref)
{
	if (!ref)
		return;
	free(ref->domain);
	free(ref->path);
	free(ref->tag);
	free(ref->digest);
	memset(ref, 0, sizeof(*ref));
}

const char *sp_imageref_registry(const struct sp_imageref *ref)
{
	return ref->domain && *ref->domain ? ref->domain : "docker.io";
}
