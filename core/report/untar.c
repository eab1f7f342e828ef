/*
 * untar.c — extracting an untrusted tar stream into a folder; see untar.h.
 *
 * libarchive reads the tar from the caller's pull callback and writes
 * entries with archive_write_disk; before an entry reaches the writer we
 * check it ourselves and rewrite its names:
 *
 *   1. the path is cleaned ("." and empty components dropped) and refused
 *      if absolute or if any component is ".."; with strip_first its first
 *      component goes;
 *   2. caps on entry count and declared file size are applied;
 *   3. the type must be a file, folder, symlink or hardlink; a symlink's
 *      target must stay lexically inside dest (leading ".." only, no deeper
 *      than the link's folder); a hardlink's target is cleaned like a path;
 *   4. every existing component on the way (and a hardlink's target) is
 *      lstat'ed: a symlink or non-folder there refuses the entry;
 *   5. the names are made absolute under realpath(dest), the mode masked
 *      to rwx bits with u+rw (u+rwx for folders), owners left alone.
 *
 * Why no ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS: archive_write_disk writes
 * relative names against the process's current folder, and changing that
 * (chdir) would break every other thread.  So the names we give it are
 * absolute (dest + cleaned relative path), which that flag would refuse;
 * the archive's own absolute names are refused in step 1 instead.  The two
 * flags we do set (SECURE_NODOTDOT, SECURE_SYMLINKS) re-check steps 1 and 4
 * inside libarchive, on the full path, as the entry is created.
 */
#include "core/report/untar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/base/buf.h"
#include "core/base/xalloc.h"

struct source {
	sp_untar_read_fn fn;
	void *ud;
	struct sp_error *err;
	int rc; /* the callback's failure, 0 while it has not failed */
};

static la_ssize_t read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct source *src = ctx;
	size_t len = 0;
	int rc;

	*buf = NULL;
	rc = src->fn(src->ud, buf, &len, src->err);
	if (rc < 0) {
		src->rc = rc;
		archive_set_error(a, EIO, "read callback failed");
		return -1;
	}
	if (len > (size_t)SSIZE_MAX) {
		src->rc = sp_error_set(src->err, SP_ERROR, "read callback returned %zu bytes", len);
		archive_set_error(a, EIO, "read callback returned too much");
		return -1;
	}
	return (la_ssize_t)len;
}

/*
 * Cleans an archive path into out ("a/b", no leading or trailing '/'),
 * dropping the first component when strip.  Returns 0, or -1 with *why set.
 * *depth gets the number of components left.
 */
static int clean_path(const char *in, int strip, struct sp_buf *out, size_t *depth,
		      const char **why)
{
	const char *p = in;
	int stripped = !strip;

	sp_buf_reset(out);
	*depth = 0;
	if (*p == '/') {
		*why = "absolute path";
		return -1;
	}
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			*why = "\"..\" in the path";
			return -1;
		}
		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* empty or "." component: nothing */
		} else if (!stripped) {
			stripped = 1;
		} else {
			if (out->len)
				sp_buf_addch(out, '/');
			sp_buf_add(out, p, n);
			(*depth)++;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/*
 * A symlink at depth `depth` (components of its own path) may point only
 * at something inside dest: relative, a run of leading ".." no longer than
 * the folders above the link, and no ".." after a normal component.
 */
static int symlink_ok(const char *target, size_t depth, const char **why)
{
	const char *p = target;
	size_t up = 0;
	int seen_name = 0;

	if (!*p) {
		*why = "empty symlink target";
		return -1;
	}
	if (*p == '/') {
		*why = "symlink to an absolute path";
		return -1;
	}
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (seen_name || ++up > depth - 1) {
				*why = "symlink pointing outside the destination";
				return -1;
			}
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			seen_name = 1;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/*
 * lstat()s each existing component of rel under root; with whole, the last
 * one too.  Refuses symlinks and non-folders on the way.  0 or -1 (*why).
 * Components that do not exist yet are fine: the writer creates folders.
 */
static int walk_ok(const char *root, const char *rel, int whole, struct sp_buf *tmp,
		   const char **why)
{
	const char *p = rel;
	struct stat sb;

	sp_buf_reset(tmp);
	sp_buf_addstr(tmp, root);
	while (*p) {
		size_t n = strcspn(p, "/");
		int last = p[n] == '\0';

		if (last && !whole)
			break;
		sp_buf_addch(tmp, '/');
		sp_buf_add(tmp, p, n);
		if (lstat(tmp->data, &sb) < 0) {
			if (errno == ENOENT && !last)
				return 0;
			*why = whole && last ? "hardlink to a file that does not exist" : "cannot stat a folder on the way";
			return -1;
		}
		if (S_ISLNK(sb.st_mode)) {
			*why = last ? "hardlink to a symlink" : "path through a symlink";
			return -1;
		}
		if (!last && !S_ISDIR(sb.st_mode)) {
			*why = "path through something that is not a folder";
			return -1;
		}
		if (last && !S_ISREG(sb.st_mode)) {
			*why = "hardlink to something that is not a file";
			return -1;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

static const char *type_name(unsigned int type)
{
	switch (type) {
	case AE_IFCHR: return "character device";
	case AE_IFBLK: return "block device";
	case AE_IFIFO: return "fifo";
	case AE_IFSOCK: return "socket";
	default: return "unknown type";
	}
}

/* Copies the current entry's data from a to w; counts into *bytes. */
static int copy_data(struct archive *a, struct archive *w, const char *name, uint64_t limit,
		     uint64_t *bytes, struct source *src, struct sp_error *err)
{
	const void *buf;
	size_t size;
	la_int64_t offset;
	int r;

	for (;;) {
		r = archive_read_data_block(a, &buf, &size, &offset);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN) {
			if (src->rc < 0)
				return sp_error_prefix(err, "reading the archive at %s", name);
			return sp_error_set(err, SP_ERROR, "archive: %s: %s", name, archive_error_string(a));
		}
		if (size > limit - *bytes)
			return sp_error_set(err, SP_ETOOBIG, "archive: %s: more than %llu bytes of files",
					    name, (unsigned long long)limit);
		*bytes += size;
		if (archive_write_data_block(w, buf, size, offset) < ARCHIVE_WARN)
			return sp_error_set(err, SP_ERROR, "extracting %s: %s", name, archive_error_string(w));
	}
}

/*
 * A name from the archive, fit for an error message: control bytes become
 * '?' (no terminal escapes from a hostile archive) and it is cut at 200.
 */
static void printable(const char *name, struct sp_buf *out)
{
	size_t i;

	sp_buf_reset(out);
	for (i = 0; name[i] && i < 200; i++)
		sp_buf_addch(out, (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i]);
	if (name[i])
		sp_buf_addstr(out, "...");
}

/* State of one extraction. */
struct job {
	const struct sp_untar_opts *opts;
	const char *root;    /* realpath of dest */
	struct sp_buf rel;   /* current entry, cleaned */
	struct sp_buf full;  /* root + "/" + rel */
	struct sp_buf link;  /* hardlink target, cleaned */
	struct sp_buf tmp;
	size_t entries;      /* headers seen */
	uint64_t declared;   /* file sizes announced so far */
};

/*
 * Checks entry e and rewrites its names under the root.  Returns 1 to
 * extract it, 0 to skip it (the stripped top folder), or a negative code.
 */
static int prepare_entry(struct job *j, struct archive_entry *e, struct sp_error *err)
{
	const char *name = archive_entry_pathname(e);
	const char *hl = archive_entry_hardlink(e);
	const char *sl = archive_entry_symlink(e);
	unsigned int type = archive_entry_filetype(e);
	const char *why = NULL;
	size_t depth, ldepth;

	if (!name)
		name = "";
	if (++j->entries > j->opts->max_entries) {
		printable(name, &j->tmp);
		return sp_error_set(err, SP_ETOOBIG, "archive: more than %zu entries (at %s)",
				    j->opts->max_entries, j->tmp.data);
	}
	if (clean_path(name, j->opts->strip_first, &j->rel, &depth, &why) < 0)
		goto refuse;
	if (j->rel.len == 0) {
		if (type == AE_IFDIR && !hl)
			return 0;
		why = "no name left";
		goto refuse;
	}
	/* an entry left out is never written, so it needs no further check:
	 * a hostile link next to the wanted files does not spoil them */
	if (j->opts->filter && !j->opts->filter(j->opts->filter_ud, j->rel.data))
		return 0;
	if (strlen(j->root) + 1 + j->rel.len >= PATH_MAX) {
		why = "path too long";
		goto refuse;
	}
	if (hl) {
		if (clean_path(hl, j->opts->strip_first, &j->link, &ldepth, &why) < 0 || j->link.len == 0) {
			why = "hardlink pointing outside the destination";
			goto refuse;
		}
		if (walk_ok(j->root, j->link.data, 1, &j->tmp, &why) < 0)
			goto refuse;
		sp_buf_reset(&j->tmp);
		sp_buf_addf(&j->tmp, "%s/%s", j->root[1] ? j->root : "", j->link.data);
		archive_entry_set_hardlink(e, j->tmp.data);
	} else if (type == AE_IFLNK) {
		if (symlink_ok(sl ? sl : "", depth, &why) < 0)
			goto refuse;
	} else if (type != AE_IFREG && type != AE_IFDIR) {
		why = type_name(type);
		goto refuse;
	}
	if (walk_ok(j->root, j->rel.data, 0, &j->full, &why) < 0)
		goto refuse;

	if ((type == AE_IFREG || hl) && archive_entry_size(e) > 0) {
		uint64_t size = (uint64_t)archive_entry_size(e);

		if (size > j->opts->max_bytes - j->declared) {
			printable(name, &j->tmp);
			return sp_error_set(err, SP_ETOOBIG,
					    "archive: more than %llu bytes of files (at %s)",
					    (unsigned long long)j->opts->max_bytes, j->tmp.data);
		}
		j->declared += size;
	}

	sp_buf_reset(&j->full);
	sp_buf_addf(&j->full, "%s/%s", j->root[1] ? j->root : "", j->rel.data);
	archive_entry_set_pathname(e, j->full.data);
	archive_entry_set_perm(e, (archive_entry_perm(e) & 0777) |
				  (type == AE_IFDIR ? 0700 : 0600));
	return 1;

refuse:
	printable(name, &j->tmp);
	return sp_error_set(err, SP_ERROR, "archive: refusing entry \"%s\": %s", j->tmp.data, why);
}

int sp_untar_extract(const char *dest, sp_untar_read_fn read, void *ud,
		     const struct sp_untar_opts *opts, struct sp_untar_stats *stats,
		     struct sp_error *err)
{
	static const struct sp_untar_opts defaults = SP_UNTAR_OPTS_INIT;
	struct source src = { read, ud, err, 0 };
	struct job j;
	struct archive *a = NULL, *w = NULL;
	struct archive_entry *e;
	char *root = NULL;
	size_t extracted = 0;
	uint64_t bytes = 0;
	struct stat sb;
	int rc = 0, r;

	memset(&j, 0, sizeof(j));
	j.opts = opts ? opts : &defaults;
	sp_buf_init(&j.rel, 0);
	sp_buf_init(&j.full, 0);
	sp_buf_init(&j.link, 0);
	sp_buf_init(&j.tmp, 0);
	root = realpath(dest, NULL);
	if (!root) {
		rc = sp_error_set(err, errno == ENOENT ? SP_ENOTFOUND : SP_ERROR,
				  "%s: %s", dest, strerror(errno));
		goto out;
	}
	if (stat(root, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		rc = sp_error_set(err, SP_ERROR, "%s: not a folder", dest);
		goto out;
	}
	j.root = root;

	a = archive_read_new();
	w = archive_write_disk_new();
	if (!a || !w) {
		rc = sp_error_set(err, SP_ERROR, "archive: out of memory");
		goto out;
	}
	archive_read_support_format_tar(a);
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
					  ARCHIVE_EXTRACT_SECURE_SYMLINKS);
	if (archive_read_open(a, &src, NULL, read_cb, NULL) != ARCHIVE_OK) {
		if (src.rc < 0)
			rc = sp_error_prefix(err, "reading the archive");
		else
			rc = sp_error_set(err, SP_ERROR, "archive: %s", archive_error_string(a));
		goto out;
	}

	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (src.rc < 0)
				rc = sp_error_prefix(err, "reading the archive");
			else
				rc = sp_error_set(err, SP_ERROR, "archive: %s", archive_error_string(a));
			goto out;
		}
		if ((rc = prepare_entry(&j, e, err)) < 0)
			goto out;
		if (rc == 0) {
			archive_read_data_skip(a);
			continue;
		}
		rc = 0;
		printable(j.rel.data, &j.tmp); /* the name for messages */
		if (archive_write_header(w, e) < ARCHIVE_WARN) {
			rc = sp_error_set(err, SP_ERROR, "extracting %s: %s", j.tmp.data,
					  archive_error_string(w));
			goto out;
		}
		if (archive_entry_size(e) > 0 &&
		    (rc = copy_data(a, w, j.tmp.data, j.opts->max_bytes, &bytes, &src, err)) < 0)
			goto out;
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
			rc = sp_error_set(err, SP_ERROR, "extracting %s: %s", j.tmp.data,
					  archive_error_string(w));
			goto out;
		}
		extracted++;
	}
	if (archive_write_close(w) < ARCHIVE_WARN)
		rc = sp_error_set(err, SP_ERROR, "extracting: %s", archive_error_string(w));
out:
	if (stats) {
		stats->entries = extracted;
		stats->bytes = bytes;
	}
	if (w)
		archive_write_free(w);
	if (a)
		archive_read_free(a);
	free(root);
	sp_buf_release(&j.rel);
	sp_buf_release(&j.full);
	sp_buf_release(&j.link);
	sp_buf_release(&j.tmp);
	return rc;
}
