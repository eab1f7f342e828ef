/*
 * glob.c — branch and tag patterns (see glob.h).
 */
#include "core/base/glob.h"

#include <stddef.h>

/*
 * A bracket expression at p ("[abc]", "[a-z]", "[!x]") against c.  Returns
 * the pattern just after it and sets *hit, or NULL when the '[' has no
 * closing ']' (then it is an ordinary character).
 */
static const char *bracket(const char *p, char c, bool *hit)
{
	bool neg = false, in = false;
	const char *q = p + 1;

	if (*q == '!' || *q == '^') {
		neg = true;
		q++;
	}
	if (*q == ']') {  /* a leading ']' is a member */
		in = (c == ']');
		q++;
	}
	for (; *q && *q != ']'; q++) {
		if (q[1] == '-' && q[2] && q[2] != ']') {
			if (c >= q[0] && c <= q[2])
				in = true;
			q += 2;
		} else if (*q == c) {
			in = true;
		}
	}
	if (!*q)
		return NULL;
	*hit = (in != neg) && c && c != '/';
	return q + 1;
}

bool sp_glob_match(const char *p, const char *s)
{
	const char *after;
	bool hit;

	while (*p) {
		if (p[0] == '*' && p[1] == '*') {
			p += 2;
			if (*p == '/' && sp_glob_match(p + 1, s))
				return true;
			for (;; s++) {
				if (sp_glob_match(p, s))
					return true;
				if (!*s)
					return false;
			}
		}
		if (*p == '*') {
			p++;
			for (;; s++) {
				if (sp_glob_match(p, s))
					return true;
				if (!*s || *s == '/')
					return false;
			}
		}
		if (*p == '[' && (after = bracket(p, *s, &hit))) {
			if (!hit)
				return false;
			p = after;
			s++;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return !*s;
}
