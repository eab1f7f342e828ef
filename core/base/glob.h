/*
 * glob.h — branch and tag patterns: "main", "release/<star>", "feature/<star><star>".
 *
 * A star matches any run of characters within one "/"-separated segment,
 * two stars any run across segments ("feature/" + two stars matches
 * "feature/a/b"; two stars followed by "/" also match no segment at all).
 * "[abc]", "[a-z]" and "[!x]" match one character of a segment.  Every
 * other character matches itself.  Used for the pipeline's on: rules and
 * the server config's branches filter, so both read patterns alike.
 */
#ifndef SP_GLOB_H
#define SP_GLOB_H

#include <stdbool.h>

/* Whether the whole of s matches pattern.  Pure; patterns are short
 * (plain backtracking). */
bool sp_glob_match(const char *pattern, const char *s);

#endif
