/*
 * artifact.c — artifact paths: checks, base/glob split, entry filter;
 * see artifact.h.
 */
#include "core/pipeline/artifact.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/glob.h"
#include "core/base/xalloc.h"

bool sp_artifact_has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

bool sp_artifact_check(const char *path, const char **why)
{
	const char *p = path;
	bool named = false;

	if (!*path) {
		*why = "must not be empty";
		return false;
	}
	if (*path == '/') {
		*why = "must be relative to the container's working folder, not absolute";
		return false;
	}
	for (; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
			*why = "must not hold a backslash or a control character";
			return false;
		}
	}
	p = path;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			*why = "must not climb out of the working folder (\"..\")";
			return false;
		}
		if (n && !(n == 1 && p[0] == '.'))
			named = true;
		p += n;
		while (*p == '/')
			p++;
	}
	if (!named) {
		*why = "names the working folder itself; name what to keep in it";
		return false;
	}
	return true;
}

void sp_artifact_split(const char *path, char **base, char **rest)
{
	struct sp_buf b = SP_BUF_INIT, r = SP_BUF_INIT;
	const char *p = path;
	bool globbing = false;

	while (*p) {
		size_t n = strcspn(p, "/");

		if (n && !(n == 1 && p[0] == '.')) {
			char *comp = sp_xstrndup(p, n);

			if (!globbing && sp_artifact_has_glob(comp))
				globbing = true;
			if (globbing) {
				if (r.len)
					sp_buf_addch(&r, '/');
				sp_buf_add(&r, p, n);
			} else {
				if (b.len)
					sp_buf_addch(&b, '/');
				sp_buf_add(&b, p, n);
			}
			free(comp);
		}
		p += n;
		while (*p == '/')
			p++;
	}
	*base = sp_buf_detach(&b, NULL);
	if (globbing) {
		*rest = sp_buf_detach(&r, NULL);
	} else {
		*rest = NULL;
		sp_buf_release(&r);
	}
}

bool sp_artifact_match(const char *rest, const char *entry)
{
	size_t len = strlen(entry), i;
	char *prefix;
	bool hit = false;

	if (!rest)
		return true;
	prefix = sp_xstrdup(entry);
	/* the entry itself, then every folder above it */
	for (i = len + 1; i-- > 0 && !hit;) {
		if (i < len && entry[i] != '/')
			continue;
		prefix[i] = '\0';
		if (i > 0)
			hit = sp_glob_match(rest, prefix);
	}
	free(prefix);
	return hit;
}
