/*
 * pycache.h — remembers what the interpreter probe of a pytest stage
 * found (core/exec/python.h), so that a repeated run starts no probe
 * container.
 *
 * What decides the probe's answer is the key: the image's content
 * (runner->ops->image_key: a digest of its layers and of its Env, User,
 * WorkingDir and Entrypoint; not its id, which differs between runs since
 * every build carries its job's label), the stage's user, workdir and env (in order: a later
 * value wins) and its `python:`, and the probe script itself.  The same
 * key means the same file system and the same lookup: the answer cannot
 * differ, so a hit is as good as a probe.  Only probes whose interpreter
 * started and said something are remembered; the checks
 * (sp_python_check: pytest, pytest-cov for --cov) are made again on a hit,
 * so a stage that asks for more than another of the same key still
 * fails with its own line.
 *
 * The file: CACHE_DIR/python-probes (CACHE_DIR as the checkout's mirrors
 * use, sp_checkout_cache_dir), text, a header line then one line per key:
 *     KEY \t CANDIDATE \t EXECUTABLE \t VERSION \t PYTEST \t PYTEST_COV
 * (an empty field: not said).  At most SP_PYCACHE_MAX entries, the most
 * recent last; rewritten whole through a temporary file and rename, so a
 * reader sees the old file or the new one.  An unreadable file, a wrong
 * header, or a line that does not parse is a miss, never an error; two
 * runs writing at once may lose one entry (probed again next time).
 * Values with a tab, a newline or a backslash are not remembered.
 */
#ifndef SP_EXEC_PYCACHE_H
#define SP_EXEC_PYCACHE_H

#include <stddef.h>

#include "core/exec/python.h"
#include "core/pipeline/pipeline.h"

struct sp_error;

/* The file's name under the cache folder, and its first line. */
#define SP_PYCACHE_FILE "python-probes"
#define SP_PYCACHE_HEADER "stagepipe python-probes 1"
/* Entries kept; the oldest go first. */
#define SP_PYCACHE_MAX 256
/* A key: SHA-256 in hex. */
#define SP_PYCACHE_KEY_LEN 64

/*
 * The key of a probe of st (its user, workdir and python:) in image
 * (runner->ops->image_key's answer, or the image id)
 * with env (nenv "NAME=value" strings, as the probe gets them) into out
 * (SP_PYCACHE_KEY_LEN hex digits and a NUL).
 */
void sp_pycache_key(char out[SP_PYCACHE_KEY_LEN + 1], const char *image,
		    const struct sp_stage *st, const char *const *env, size_t nenv);

/*
 * Looks key up in dir's cache.  1 on a hit: *candidate is a new string
 * (the caller frees it) and info is filled (seen true; release it);
 * 0 on a miss (no file, no such key, anything unreadable), outputs
 * untouched.
 */
int sp_pycache_get(const char *dir, const char *key, char **candidate,
		   struct sp_python_info *info);

/*
 * Remembers candidate and info (info->seen must be true) under key,
 * replacing an older entry of the key and dropping the oldest past
 * SP_PYCACHE_MAX.  Creates dir (0700) when needed.  0, or SP_ERROR with
 * err set (nothing in the file changed); 0 and nothing written for
 * values it does not keep (see above).
 */
int sp_pycache_put(const char *dir, const char *key, const char *candidate,
		   const struct sp_python_info *info, struct sp_error *err);

#endif
