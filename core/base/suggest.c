/*
 * suggest.c — edit distance for "did you mean"; see suggest.h.
 */
#include "core/base/suggest.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/xalloc.h"

#define MIN2(a, b) ((a) < (b) ? (a) : (b))

size_t sp_suggest_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, r;
	size_t *d;

	/* names we compare are short; cap the work for hostile input */
	if (la > 256 || lb > 256)
		return (size_t)-1;
	d = sp_xcalloc((la + 1) * (lb + 1), sizeof(*d));
#define D(x, y) d[(x) * (lb + 1) + (y)]
	for (i = 0; i <= la; i++)
		D(i, 0) = i;
	for (j = 0; j <= lb; j++)
		D(0, j) = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]);
			int cb = tolower((unsigned char)b[j - 1]);
			size_t cost = ca == cb ? 0 : 1;
			size_t v = MIN2(D(i - 1, j) + 1, D(i, j - 1) + 1);
			v = MIN2(v, D(i - 1, j - 1) + cost);
			if (i > 1 && j > 1 &&
			    ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb)
				v = MIN2(v, D(i - 2, j - 2) + 1);
			D(i, j) = v;
		}
	}
	r = D(la, lb);
#undef D
	free(d);
	return r;
}

const char *sp_suggest(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1, len = strlen(word), limit;

	limit = len <= 4 ? 1 : 2;
	if (limit > (len + 2) / 3)
		limit = (len + 2) / 3;
	if (limit == 0)
		return NULL;
	for (; *candidates; candidates++) {
		size_t dist = sp_suggest_distance(word, *candidates);
		if (dist <= limit && dist < best_d) {
			best = *candidates;
			best_d = dist;
		}
	}
	return best;
}
