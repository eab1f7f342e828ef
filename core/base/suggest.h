/*
 * suggest.h — "did you mean" for misspelt names.
 */
#ifndef SP_SUGGEST_H
#define SP_SUGGEST_H

#include <stddef.h>

/*
 * Returns the candidate closest to word by edit distance (insertions,
 * deletions, substitutions and swaps of neighbours, case-insensitive),
 * or NULL when none is close enough to be a plausible typo (distance at
 * most 1 for short words, 2 for longer ones, never more than a third of the
 * word).  candidates is NULL-terminated; the result is borrowed from it.
 */
const char *sp_suggest(const char *word, const char *const *candidates);

/* Optimal-string-alignment distance between a and b, case-insensitive. */
size_t sp_suggest_distance(const char *a, const char *b);

#endif
