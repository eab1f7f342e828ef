/*
 * ignore.h — .dockerignore rules, with moby/patternmatcher v0.6.1 semantics.
 *
 * A .dockerignore is read the way docker/cli and BuildKit read it
 * (patternmatcher's ignorefile.ReadAll followed by patternmatcher.New): a
 * UTF-8 BOM is stripped, a line whose first byte is '#' is a comment, each
 * line is trimmed, a leading '!' marks an exception, the path is cleaned
 * ("./a" → "a", "a/" → "a", "a/../b" → "b") and one leading '/' removed.
 *
 * Matching follows PatternMatcher.MatchesOrParentMatches: the patterns are
 * walked in order; a pattern is looked at only when its exception flag equals
 * the current verdict (so an exception can only re-include what an earlier
 * pattern excluded, and an exclusion only exclude what is still included); a
 * pattern applies when it matches the path or any of its parent folders; the
 * last one that applies wins.
 *
 * Every pattern is compiled when the file is read, so syntax errors (a bare
 * '!', an unclosed '[', an escape or range the matcher cannot compile) are
 * reported up front, with the .dockerignore line number.  Matching itself
 * cannot fail.
 *
 * Paths given to the match functions are relative to the context root,
 * '/'-separated, without a leading "./" (as a walker produces them).
 */
#ifndef SP_IGNORE_H
#define SP_IGNORE_H

#include <stddef.h>

#include "core/base/error.h"

/* A compiled list of patterns; opaque. */
struct sp_ignore;

/*
 * Parses .dockerignore text (len bytes; need not be NUL-terminated).
 * On success *out is a new list owned by the caller (free with
 * sp_ignore_free); an empty text gives an empty list that excludes nothing.
 * On failure *out is NULL and err says ".dockerignore:LINE: what" with
 * SP_ECONFIG (bad pattern) or SP_ETOOBIG (a line of 64 KiB or more, which
 * docker's own reader refuses too).
 */
int sp_ignore_parse(struct sp_ignore **out, const char *text, size_t len,
		    struct sp_error *err);

/*
 * Reads and parses the file at path (messages then name the path).
 * A missing file is not an error: *out is an empty list.  Other read
 * failures are SP_ERROR; files over 16 MiB are SP_ETOOBIG.
 * *out is owned by the caller; NULL on failure.
 */
int sp_ignore_load_file(struct sp_ignore **out, const char *path,
			struct sp_error *err);

/*
 * 1 when relpath is excluded from the build context, 0 when it is kept.
 * ig may be NULL (nothing is excluded).
 */
int sp_ignore_match(const struct sp_ignore *ig, const char *relpath);

/*
 * 1 when the walk must still go into the folder reldir although it is
 * excluded, because some exception pattern names a path at or below it
 * (upstream: the pattern text plus "/" starts with reldir plus "/").  This
 * is a plain text prefix test, as upstream's: an exception that starts with a
 * wildcard, such as "!**" followed by "/keep", keeps no folder open.
 * The folder's own entry is not sent in that case, only what the
 * exceptions bring back.  0 otherwise; 0 when ig is NULL.
 */
int sp_ignore_may_descend(const struct sp_ignore *ig, const char *reldir);

/* Number of patterns (comments and blank lines not counted); 0 for NULL. */
size_t sp_ignore_count(const struct sp_ignore *ig);

/* 1 when at least one pattern is an exception ("!..."); 0 for NULL. */
int sp_ignore_has_exceptions(const struct sp_ignore *ig);

/* Frees the list; NULL is accepted. */
void sp_ignore_free(struct sp_ignore *ig);

#endif
