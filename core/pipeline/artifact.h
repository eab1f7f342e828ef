/*
 * artifact.h — a stage's artifacts: paths inside its container to keep.
 *
 * An artifact is a path relative to the container's working folder,
 * written with '/' and optionally globs ("htmlcov/", "dist/<star>.whl",
 * "reports/<star><star>/<star>.xml"; core/base/glob.h's rules: a star stays
 * within one segment, two stars cross segments).  It may not be absolute
 * nor hold a ".." component: the loader reports those as FILE:LINE:COL.
 *
 * To copy one out, the runner asks the engine for the archive of the
 * longest leading part without glob characters (the "base", a folder or,
 * without any glob, the path itself) and filters the entries while they
 * are extracted (sp_artifact_match), so only what matches is written and
 * nothing needs listing first.  Pure functions: no I/O.
 */
#ifndef SP_ARTIFACT_H
#define SP_ARTIFACT_H

#include <stdbool.h>

/* Whether s holds a glob character (star, '?', '['). */
bool sp_artifact_has_glob(const char *s);

/*
 * Checks an artifact path as written.  Returns true when fine; otherwise
 * false with *why (static text) saying what is wrong: empty, absolute, a
 * ".." component, a backslash or control character, or the working
 * folder itself (".").
 */
bool sp_artifact_check(const char *path, const char **why);

/*
 * Splits a checked path into what to ask the engine for and how to filter
 * it.  *base: the cleaned leading part without globs ("dist" for
 * "dist/<star>.whl", "htmlcov" for "./htmlcov/", "" for "<star>.whl": the working
 * folder); *rest: the glob part relative to base ("<star>.whl"), or NULL when
 * the path has no glob (then base is the whole path).  Both are new
 * strings the caller frees.
 */
void sp_artifact_split(const char *path, char **base, char **rest);

/*
 * Whether an archive entry (its path relative to the base folder,
 * "a/b.whl", no leading "./") is kept for the glob rest: it matches, or a
 * folder above it matches (a matched folder comes with its contents).
 * Folders on the way to a match need not be kept: the extractor creates
 * them.
 */
bool sp_artifact_match(const char *rest, const char *entry);

#endif
