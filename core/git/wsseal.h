/*
 * wsseal.h — a workspace's seal: which tree its folder holds, and a cheap
 * proof that nobody has changed the folder since.
 *
 * A checkout workspace (checkout.h) keeps its tree between jobs.  After
 * each checkout a seal is written beside it: the commit tree the folder
 * holds and, for every file (blob, symlink, submodule folder) and every
 * directory, its git mode and object id and its lstat: inode, size, mode,
 * mtime and ctime to the nanosecond.  ctime cannot be set from user
 * space: any write, truncate, chmod, chown, link or rename of a file
 * changes the file's, and any entry added to, removed from or renamed in
 * a directory changes the directory's.  So one lstat per entry, compared
 * with the seal, proves that the folder still holds exactly the sealed
 * tree and nothing else (what git's index does for `git status`, plus the
 * directories, so no directory needs listing).  The next checkout then
 * writes only the paths that differ between the sealed tree and the new
 * one: one stat per entry, a walk of the changed subtrees, and the
 * changed files.
 *
 * Racy entries (git's "racily clean" ones): an entry changed in the same
 * clock step as the seal was written (its ctime not before the seal
 * file's mtime) could be changed again within that step without its
 * times moving.  Those few, the last ones a checkout wrote, are compared
 * by content as well: a file's or link's blob hash, a folder's list of
 * names.  This holds on file systems whose times step by 1-2 s too (more
 * entries are racy there, once).
 *
 * A seal that is missing, truncated, from another version or damaged
 * (it carries a checksum) is no seal: the caller does a full checkout,
 * using what the seal says as the baseline only when it is readable.
 * The file is native-endian: a cache of this machine, never shared.
 *
 * Nothing here is thread-safe for one seal; different seals are
 * independent.  sp_wsseal_holds uses up to 4 threads of its own.
 */
#ifndef SP_WSSEAL_H
#define SP_WSSEAL_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_error;
struct sp_wsseal;

/* The differences between a sealed tree and a new one (sp_wsseal_diff). */
struct sp_wsseal_diff {
	char **paths;        /* every path removed, added or changed, sorted */
	size_t n_paths;
	git_index *baseline; /* the sealed entries of those paths (libgit2's baseline) */
	/* private */
	struct sp_wsseal_change *changes;
};

/* The seal at path; NULL when there is none or it is not a valid seal. */
struct sp_wsseal *sp_wsseal_load(const char *path);

void sp_wsseal_free(struct sp_wsseal *s);

/*
 * The seal in buf (len bytes, the file's contents), which it takes: freed
 * with the seal, or at once when NULL is returned (not a valid seal: bad
 * checksum, counts, order, or a path that is absolute or has an empty,
 * "." or ".." part).  sp_wsseal_load is read + parse.
 */
struct sp_wsseal *sp_wsseal_parse(char *buf, size_t len);

/* The checksum a seal ends with, of the n bytes before it. */
uint64_t sp_wsseal_checksum(const void *data, size_t n);

/*
 * True when dir holds exactly what s records: every entry's lstat is as
 * sealed, and nothing else is there (the directories' are as sealed); the
 * racy entries' contents too.
 */
bool sp_wsseal_holds(const struct sp_wsseal *s, const char *dir);

/*
 * Removes from dir every sealed file whose lstat differs from the seal,
 * or whose contents do when it is racy (a submodule's folder: only when
 * no longer a folder), and every sealed folder that is no longer a folder, so that the full checkout that
 * follows writes them anew.  libgit2 alone would trust a file whose size
 * and mtime are as before (it does not look at ctime), and would write
 * through a link that replaced a file or a folder, even out of dir.  Call
 * when sp_wsseal_holds is false.  Returns the number removed, or -1 with
 * err set.
 */
int sp_wsseal_clear_changed(const struct sp_wsseal *s, const char *dir, struct sp_error *err);

/*
 * What differs between the tree s records and tree (a tree of repo):
 * out->paths for git_checkout_tree's pathlist, out->baseline for its
 * baseline_index.  Returns 0, or -1 when the sealed tree is not in repo
 * (then nothing is allocated).  Release with sp_wsseal_diff_release.
 */
int sp_wsseal_diff(struct sp_wsseal_diff *out, const struct sp_wsseal *s,
		   git_repository *repo, const git_tree *tree);

void sp_wsseal_diff_release(struct sp_wsseal_diff *d);

/*
 * An in-memory index of every entry s records (an empty one when s is
 * NULL): the baseline of a full checkout of dir, so that files whose stat
 * is still as sealed are neither read nor written again.  -1 on a libgit2
 * error.
 */
int sp_wsseal_index(git_index **out, const struct sp_wsseal *s);

/*
 * Seals dir, which now holds tree: with old and d (the seal and diff the
 * checkout started from), only the diff's paths and the directories above
 * them are stat'ed again (when files only changed, none added or removed,
 * old is updated in place and written out as it is: use it no more);
 * without, every entry of tree.  Written atomically (a temporary file and
 * rename; no fsync: a seal lost in a crash only costs a full check).  When
 * an entry of tree is missing from dir, or the seal cannot be written, the
 * seal at path is removed and SP_ERROR returned: the caller carries on
 * without one.
 */
int sp_wsseal_write(const char *path, const git_tree *tree, const char *dir,
		    struct sp_wsseal *old, const struct sp_wsseal_diff *d,
		    struct sp_error *err);

#endif
