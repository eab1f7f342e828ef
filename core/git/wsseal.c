/*
 * wsseal.c — a workspace's seal (see wsseal.h).
 *
 * The file, native-endian:
 *   "SPWSEAL1"  u32 n_files  u32 n_dirs  tree oid (20)
 *   n_files x  { u32 len  path+NUL  u32 git mode  oid (20)  stat }
 *   n_dirs  x  { u32 len  path+NUL  stat }
 *   u64 checksum of everything before it
 * where stat is u64 ino, u64 size, i64 mtime s, i64 ctime s, u32 mtime ns,
 * u32 ctime ns, u32 st_mode (0: the entry is absent, allowed only for a
 * submodule's folder).  Paths are relative to the tree folder, "." for
 * the folder itself; both lists are sorted (strcmp) and unique.
 */
#define _GNU_SOURCE
#include "core/git/wsseal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"

#define MAGIC "SPWSEAL1"
#define MAX_FILE_BYTES ((size_t)1 << 30)
#define MAX_THREADS 4
#define PATHS_PER_THREAD 4096

/* The lstat fields a seal compares. */
struct wst {
	uint64_t ino, size;
	int64_t mtime_s, ctime_s;
	uint32_t mtime_ns, ctime_ns, mode;  /* mode 0: absent */
};

struct frec {
	const char *path;
	uint32_t gmode;
	git_oid oid;
	struct wst st;
	size_t at;  /* in a loaded seal: where its git mode is in buf */
};

struct drec {
	const char *path;
	struct wst st;
	size_t at;  /* in a loaded seal: where its stat is in buf */
};

struct sp_wsseal {
	git_oid tree;
	struct timespec stamp;  /* the seal file's mtime: entries with ctime >= it are racy */
	struct frec *files;
	size_t n_files;
	struct drec *dirs;
	size_t n_dirs;
	char *buf;  /* the file, read whole: the paths point into it */
	size_t len;
};

struct sp_wsseal_change {
	char *path;
	bool removed;   /* not in the new tree */
	uint32_t gmode; /* else its mode and id there */
	git_oid oid;
};

/* ---- stat, on up to MAX_THREADS threads ---------------------------------- */

static void wst_from(struct wst *w, const struct stat *st)
{
	w->ino = st->st_ino;
	w->size = (uint64_t)st->st_size;
	w->mtime_s = st->st_mtim.tv_sec;
	w->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
	w->ctime_s = st->st_ctim.tv_sec;
	w->ctime_ns = (uint32_t)st->st_ctim.tv_nsec;
	w->mode = st->st_mode;
}

static bool wst_eq(const struct wst *a, const struct wst *b)
{
	return a->ino == b->ino && a->size == b->size && a->mtime_s == b->mtime_s &&
	       a->mtime_ns == b->mtime_ns && a->ctime_s == b->ctime_s &&
	       a->ctime_ns == b->ctime_ns && a->mode == b->mode;
}

struct stat_item {
	const char *path;
	const struct wst *want; /* checking: what the seal says */
	struct wst *got;        /* sealing: filled in */
};

struct stat_run {
	int root;
	struct stat_item *items;
	size_t begin, end;
	atomic_bool *stop;  /* checking: set at the first difference */
	int err;            /* sealing: errno of a failure other than "absent" */
};

/*
 * lstat of each item, relative to root through a cached folder fd.  An
 * absent entry (or one under a non-folder) reads as mode 0.
 */
static void *stat_items(void *arg)
{
	struct stat_run *r = arg;
	char parent[PATH_MAX];
	int pfd = -1;
	bool have_parent = false;
	size_t i;

	parent[0] = '\0';
	for (i = r->begin; i < r->end; i++) {
		struct stat_item *it = &r->items[i];
		const char *slash = strrchr(it->path, '/');
		size_t plen = slash ? (size_t)(slash - it->path) : 0;
		struct wst got;
		struct stat st;
		int fd;

		if (r->stop && atomic_load_explicit(r->stop, memory_order_relaxed))
			break;
		if (!have_parent || strlen(parent) != plen || memcmp(parent, it->path, plen)) {
			if (pfd >= 0)
				close(pfd);
			pfd = -1;
			if (plen >= sizeof(parent)) {
				r->err = ENAMETOOLONG;
				break;
			}
			memcpy(parent, it->path, plen);
			parent[plen] = '\0';
			have_parent = true;
			if (plen)
				pfd = openat(r->root, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (plen && pfd < 0 && errno != ENOENT && errno != ENOTDIR && !r->stop)
				r->err = errno;
		}
		fd = plen ? pfd : r->root;
		memset(&got, 0, sizeof(got));
		if (fd >= 0 && fstatat(fd, slash ? slash + 1 : it->path, &st, AT_SYMLINK_NOFOLLOW) == 0)
			wst_from(&got, &st);
		else if (fd >= 0 && errno != ENOENT && errno != ENOTDIR && !r->stop)
			r->err = errno;
		if (r->stop) {
			if (!wst_eq(&got, it->want)) {
				atomic_store(r->stop, true);
				break;
			}
		} else {
			*it->got = got;
		}
	}
	if (pfd >= 0)
		close(pfd);
	return NULL;
}

/* Runs stat_items over items on as many threads as pay; 0 or an errno. */
static int stat_all(const char *dir, struct stat_item *items, size_t n, atomic_bool *stop)
{
	struct stat_run runs[MAX_THREADS];
	pthread_t tids[MAX_THREADS];
	bool started[MAX_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t t, nt = 1 + n / PATHS_PER_THREAD, at = 0;
	int root, rc = 0;

	if (cpus < 1)
		cpus = 1;
	if (nt > (size_t)cpus)
		nt = (size_t)cpus;
	if (nt > MAX_THREADS)
		nt = MAX_THREADS;
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return errno;
	for (t = 0; t < nt; t++) {
		size_t len = n / nt + (t < n % nt);

		runs[t] = (struct stat_run){ root, items, at, at + len, stop, 0 };
		at += len;
		/* the first share runs on this thread, after the others started */
		started[t] = t > 0 && pthread_create(&tids[t], NULL, stat_items, &runs[t]) == 0;
	}
	for (t = 0; t < nt; t++)
		if (!started[t])
			stat_items(&runs[t]);
	for (t = 0; t < nt; t++) {
		if (started[t])
			pthread_join(tids[t], NULL);
		if (runs[t].err && !rc)
			rc = runs[t].err;
	}
	close(root);
	return rc;
}

/* ---- the file ------------------------------------------------------------ */

uint64_t sp_wsseal_checksum(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (; n; p++, n--)
		h = (h ^ *p) * 0x100000001b3ULL;
	return h;
}

struct reader {
	char *p, *end;
};

static bool take(struct reader *r, void *dst, size_t len)
{
	if ((size_t)(r->end - r->p) < len)
		return false;
	memcpy(dst, r->p, len);
	r->p += len;
	return true;
}

/* A NUL-terminated path in place; NULL when malformed. */
static const char *take_path(struct reader *r)
{
	uint32_t len;
	const char *s;

	if (!take(r, &len, sizeof(len)) || len == 0 || (size_t)(r->end - r->p) < len ||
	    r->p[len - 1] != '\0' || strlen(r->p) != len - 1)
		return NULL;
	s = r->p;
	r->p += len;
	return s;
}

static bool take_wst(struct reader *r, struct wst *w)
{
	return take(r, &w->ino, 8) && take(r, &w->size, 8) && take(r, &w->mtime_s, 8) &&
	       take(r, &w->ctime_s, 8) && take(r, &w->mtime_ns, 4) && take(r, &w->ctime_ns, 4) &&
	       take(r, &w->mode, 4);
}

static char *read_whole(const char *path, size_t *len, struct timespec *mtime)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE_BYTES)
		goto fail;
	buf = sp_xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto fail;
		got += (size_t)k;
	}
	close(fd);
	*len = got;
	*mtime = st.st_mtim;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* A path of a tree: relative, no empty, "." or ".." part ("." alone: the folder). */
static bool path_ok(const char *p, bool dir)
{
	const char *s = p;

	if (dir && !strcmp(p, "."))
		return true;
	for (;;) {
		size_t n = strcspn(s, "/");

		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!s[n])
			return true;
		s += n + 1;
	}
}

struct sp_wsseal *sp_wsseal_parse(char *buf, size_t len)
{
	struct sp_wsseal *s = sp_xcalloc(1, sizeof(*s));
	struct reader r;
	char magic[8];
	uint32_t nf, nd;
	uint64_t sum;
	size_t i;

	s->buf = buf;
	if (len < 8)
		goto bad;
	memcpy(&sum, s->buf + len - 8, 8);
	if (sum != sp_wsseal_checksum(s->buf, len - 8))
		goto bad;
	r.p = s->buf;
	r.end = s->buf + len - 8;
	if (!take(&r, magic, 8) || memcmp(magic, MAGIC, 8) || !take(&r, &nf, 4) ||
	    !take(&r, &nd, 4) || !take(&r, s->tree.id, GIT_OID_RAWSZ))
		goto bad;
	/* each record takes more than 48 bytes: counts past that are lies */
	if ((size_t)nf + nd > len / 48)
		goto bad;
	s->files = sp_xcalloc(nf ? nf : 1, sizeof(*s->files));
	s->dirs = sp_xcalloc(nd ? nd : 1, sizeof(*s->dirs));
	for (i = 0; i < nf; i++) {
		struct frec *f = &s->files[i];

		if (!(f->path = take_path(&r)) || !path_ok(f->path, false) ||
		    (f->at = (size_t)(r.p - s->buf), !take(&r, &f->gmode, 4)) ||
		    !take(&r, f->oid.id, GIT_OID_RAWSZ) ||
		    !take_wst(&r, &f->st) || (i && strcmp(s->files[i - 1].path, f->path) >= 0))
			goto bad;
	}
	s->n_files = nf;
	for (i = 0; i < nd; i++) {
		struct drec *d = &s->dirs[i];

		if (!(d->path = take_path(&r)) || !path_ok(d->path, true) ||
		    (d->at = (size_t)(r.p - s->buf), !take_wst(&r, &d->st)) ||
		    (i && strcmp(s->dirs[i - 1].path, d->path) >= 0))
			goto bad;
	}
	s->n_dirs = nd;
	if (r.p != r.end)
		goto bad;
	s->len = len;
	return s;
bad:
	sp_wsseal_free(s);
	return NULL;
}

struct sp_wsseal *sp_wsseal_load(const char *path)
{
	struct sp_wsseal *s;
	struct timespec mtime;
	size_t len;
	char *buf = read_whole(path, &len, &mtime);

	if (buf && (s = sp_wsseal_parse(buf, len)) != NULL) {
		s->stamp = mtime;
		return s;
	}
	return NULL;
}

void sp_wsseal_free(struct sp_wsseal *s)
{
	if (!s)
		return;
	free(s->files);
	free(s->dirs);
	free(s->buf);
	free(s);
}

/* ---- checking ------------------------------------------------------------ */

static bool is_racy(const struct sp_wsseal *s, const struct wst *w)
{
	return w->ctime_s > s->stamp.tv_sec ||
	       (w->ctime_s == s->stamp.tv_sec && w->ctime_ns >= (uint32_t)s->stamp.tv_nsec);
}

static int drec_key_cmp(const void *key, const void *rec)
{
	return strcmp(key, ((const struct drec *)rec)->path);
}

static int frec_key_cmp(const void *key, const void *rec)
{
	return strcmp(key, ((const struct frec *)rec)->path);
}

/* Whether path (relative) is sealed, as a file or as a folder. */
static bool sealed(const struct sp_wsseal *s, const char *path)
{
	return bsearch(path, s->files, s->n_files, sizeof(*s->files), frec_key_cmp) ||
	       bsearch(path, s->dirs, s->n_dirs, sizeof(*s->dirs), drec_key_cmp);
}

/*
 * A racy folder: every name it lists is sealed.  (That every sealed entry
 * is there, the lstat of each has shown.)
 */
static bool folder_as_sealed(const struct sp_wsseal *s, int root, const char *d)
{
	int fd = openat(root, d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dh = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	bool ok = dh != NULL;

	if (fd >= 0 && !dh)
		close(fd);
	while (ok && (e = readdir(dh)) != NULL) {
		char *p;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = strcmp(d, ".") ? sp_xasprintf("%s/%s", d, e->d_name) : sp_xstrdup(e->d_name);
		ok = sealed(s, p);
		free(p);
	}
	if (dh)
		closedir(dh);
	return ok;
}

/* A racy file or link: its contents hash to the sealed object id. */
static bool content_as_sealed(int root, const char *dir, const struct frec *f)
{
	char target[PATH_MAX];
	git_oid oid;
	char *full;
	ssize_t len;
	int rc;

	if (S_ISLNK(f->st.mode)) {
		len = readlinkat(root, f->path, target, sizeof(target));
		return len >= 0 && (size_t)len < sizeof(target) &&
		       git_odb_hash(&oid, target, (size_t)len, GIT_OBJECT_BLOB) == 0 &&
		       git_oid_equal(&oid, &f->oid);
	}
	if (!S_ISREG(f->st.mode))
		return false;
	full = sp_xasprintf("%s/%s", dir, f->path);
	rc = git_odb_hashfile(&oid, full, GIT_OBJECT_BLOB);
	free(full);
	return rc == 0 && git_oid_equal(&oid, &f->oid);
}

bool sp_wsseal_holds(const struct sp_wsseal *s, const char *dir)
{
	size_t n = s->n_files + s->n_dirs, i;
	struct stat_item *items = sp_xcalloc(n ? n : 1, sizeof(*items));
	atomic_bool differs = false;
	bool ok;
	int root = -1;

	for (i = 0; i < s->n_files; i++)
		items[i] = (struct stat_item){ s->files[i].path, &s->files[i].st, NULL };
	for (i = 0; i < s->n_dirs; i++)
		items[s->n_files + i] = (struct stat_item){ s->dirs[i].path, &s->dirs[i].st, NULL };
	ok = stat_all(dir, items, n, &differs) == 0 && !atomic_load(&differs);
	free(items);
	/*
	 * racy entries, changed in the clock step the seal was written in: a
	 * later change could have left their times as sealed, so their
	 * contents are compared (a file's hash, a folder's names): the few
	 * the last checkout wrote at its very end
	 */
	if (ok && (root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		ok = false;
	for (i = 0; ok && i < s->n_files; i++)
		if (is_racy(s, &s->files[i].st))
			ok = S_ISDIR(s->files[i].st.mode) ?
				     folder_as_sealed(s, root, s->files[i].path) :  /* a submodule's */
				     content_as_sealed(root, dir, &s->files[i]);
	for (i = 0; ok && i < s->n_dirs; i++)
		if (is_racy(s, &s->dirs[i].st))
			ok = folder_as_sealed(s, root, s->dirs[i].path);
	if (root >= 0)
		close(root);
	return ok;
}

/* Removes path under root: a folder with all it holds, else the entry. */
static int remove_at(int root, const char *dir, const char *path, mode_t type,
		     struct sp_error *err)
{
	char *full;
	int rc;

	if (type != S_IFDIR) {
		if (unlinkat(root, path, 0) == 0 || errno == ENOENT)
			return 0;
		return sp_error_set(err, SP_ERROR, "cannot remove %s/%s: %s", dir, path,
				    strerror(errno));
	}
	full = sp_xasprintf("%s/%s", dir, path);
	rc = sp_fs_rmtree(full, err);
	free(full);
	return rc;
}

int sp_wsseal_clear_changed(const struct sp_wsseal *s, const char *dir, struct sp_error *err)
{
	int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0, rc = 0;
	size_t i;

	if (root < 0)
		return sp_error_set(err, SP_ERROR, "cannot open %s: %s", dir, strerror(errno));
	/*
	 * folders first, parents before children (sorted): once a folder that
	 * became a link is gone, no path below it leads out of dir
	 */
	for (i = 0; i < s->n_dirs && rc == 0; i++) {
		struct stat st;

		if (!strcmp(s->dirs[i].path, ".") ||
		    fstatat(root, s->dirs[i].path, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
			continue;
		rc = remove_at(root, dir, s->dirs[i].path, st.st_mode & S_IFMT, err);
		n++;
	}
	for (i = 0; i < s->n_files && rc == 0; i++) {
		const struct frec *f = &s->files[i];
		struct stat st;
		struct wst got;

		if (fstatat(root, f->path, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		wst_from(&got, &st);
		/* as sealed, and not racy or with the sealed contents */
		if (wst_eq(&got, &f->st) &&
		    (!is_racy(s, &f->st) || S_ISDIR(f->st.mode) || content_as_sealed(root, dir, f)))
			continue;
		/* a submodule's folder changes with its tree: only a type change counts */
		if (f->gmode == GIT_FILEMODE_COMMIT && (st.st_mode & S_IFMT) == (f->st.mode & S_IFMT))
			continue;
		rc = remove_at(root, dir, f->path, st.st_mode & S_IFMT, err);
		n++;
	}
	close(root);
	return rc < 0 ? rc : n;
}

/* ---- the difference of two trees ----------------------------------------- */

struct changes {
	struct sp_wsseal_change *v;
	size_t n, cap;
};

static void add_change(struct changes *c, const char *prefix, const char *name, bool removed,
		       uint32_t gmode, const git_oid *oid)
{
	struct sp_wsseal_change *ch;

	SP_GROW(c->v, c->cap, c->n + 1);
	ch = &c->v[c->n++];
	memset(ch, 0, sizeof(*ch));
	ch->path = sp_xmalloc(strlen(prefix) + strlen(name) + 1);
	strcpy(ch->path, prefix);
	strcat(ch->path, name);
	ch->removed = removed;
	ch->gmode = gmode;
	if (oid)
		git_oid_cpy(&ch->oid, oid);
}

/* Git's order of tree entries: a tree's name compares as if it ended in '/'. */
static int entry_cmp(const git_tree_entry *a, const git_tree_entry *b)
{
	const char *x = git_tree_entry_name(a), *y = git_tree_entry_name(b);
	size_t lx = strlen(x), ly = strlen(y), n = lx < ly ? lx : ly;
	int c = memcmp(x, y, n);
	unsigned char cx, cy;

	if (c)
		return c;
	cx = n < lx ? (unsigned char)x[n] : git_tree_entry_type(a) == GIT_OBJECT_TREE ? '/' : 0;
	cy = n < ly ? (unsigned char)y[n] : git_tree_entry_type(b) == GIT_OBJECT_TREE ? '/' : 0;
	return (int)cx - (int)cy;
}

static int walk(struct changes *c, git_repository *repo, const git_tree *a, const git_tree *b,
		const char *prefix);

/* Entry e (of the old tree when removed) and, for a tree, everything under it. */
static int one_side(struct changes *c, git_repository *repo, const git_tree_entry *e,
		    const char *prefix, bool removed)
{
	git_tree *sub = NULL;
	char *p;
	int rc;

	if (git_tree_entry_type(e) != GIT_OBJECT_TREE) {
		add_change(c, prefix, git_tree_entry_name(e), removed,
			   (uint32_t)git_tree_entry_filemode(e), git_tree_entry_id(e));
		return 0;
	}
	if (git_tree_lookup(&sub, repo, git_tree_entry_id(e)) < 0)
		return -1;
	p = sp_xmalloc(strlen(prefix) + strlen(git_tree_entry_name(e)) + 2);
	sprintf(p, "%s%s/", prefix, git_tree_entry_name(e));
	rc = removed ? walk(c, repo, sub, NULL, p) : walk(c, repo, NULL, sub, p);
	free(p);
	git_tree_free(sub);
	return rc;
}

/* The changes from a to b (either may be NULL: empty), paths under prefix. */
static int walk(struct changes *c, git_repository *repo, const git_tree *a, const git_tree *b,
		const char *prefix)
{
	size_t i = 0, j = 0, na = a ? git_tree_entrycount(a) : 0, nb = b ? git_tree_entrycount(b) : 0;

	while (i < na || j < nb) {
		const git_tree_entry *x = i < na ? git_tree_entry_byindex(a, i) : NULL;
		const git_tree_entry *y = j < nb ? git_tree_entry_byindex(b, j) : NULL;
		int cmp = !x ? 1 : !y ? -1 : entry_cmp(x, y);

		if (cmp < 0) {
			if (one_side(c, repo, x, prefix, true) < 0)
				return -1;
			i++;
			continue;
		}
		if (cmp > 0) {
			if (one_side(c, repo, y, prefix, false) < 0)
				return -1;
			j++;
			continue;
		}
		i++;
		j++;
		if (!git_oid_cmp(git_tree_entry_id(x), git_tree_entry_id(y)) &&
		    git_tree_entry_filemode(x) == git_tree_entry_filemode(y))
			continue;
		if (git_tree_entry_type(x) == GIT_OBJECT_TREE) {
			git_tree *ta = NULL, *tb = NULL;
			char *p;
			int rc;

			if (git_tree_lookup(&ta, repo, git_tree_entry_id(x)) < 0 ||
			    git_tree_lookup(&tb, repo, git_tree_entry_id(y)) < 0) {
				git_tree_free(ta);
				return -1;
			}
			p = sp_xmalloc(strlen(prefix) + strlen(git_tree_entry_name(x)) + 2);
			sprintf(p, "%s%s/", prefix, git_tree_entry_name(x));
			rc = walk(c, repo, ta, tb, p);
			free(p);
			git_tree_free(ta);
			git_tree_free(tb);
			if (rc < 0)
				return -1;
		} else {
			add_change(c, prefix, git_tree_entry_name(y), false,
				   (uint32_t)git_tree_entry_filemode(y), git_tree_entry_id(y));
		}
	}
	return 0;
}

static int change_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sp_wsseal_change *)a)->path,
		      ((const struct sp_wsseal_change *)b)->path);
}

static const struct frec *find_file(const struct sp_wsseal *s, const char *path)
{
	return s ? bsearch(path, s->files, s->n_files, sizeof(*s->files), frec_key_cmp) : NULL;
}

static int index_add(git_index *idx, const struct frec *f)
{
	git_index_entry e;

	memset(&e, 0, sizeof(e));
	e.ctime.seconds = (int32_t)f->st.ctime_s;
	e.ctime.nanoseconds = f->st.ctime_ns;
	e.mtime.seconds = (int32_t)f->st.mtime_s;
	e.mtime.nanoseconds = f->st.mtime_ns;
	e.ino = (uint32_t)f->st.ino;
	e.mode = f->gmode;
	e.file_size = (uint32_t)f->st.size;
	git_oid_cpy(&e.id, &f->oid);
	e.path = f->path;
	return git_index_add(idx, &e);
}

int sp_wsseal_diff(struct sp_wsseal_diff *out, const struct sp_wsseal *s, git_repository *repo,
		   const git_tree *tree)
{
	struct changes c = { NULL, 0, 0 };
	git_tree *old = NULL;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (git_tree_lookup(&old, repo, &s->tree) < 0 || walk(&c, repo, old, tree, "") < 0 ||
	    git_index_new(&out->baseline) < 0)
		goto fail;
	git_tree_free(old);
	old = NULL;
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), change_cmp);
	out->changes = c.v;
	out->n_paths = c.n;
	out->paths = sp_xcalloc(c.n ? c.n : 1, sizeof(*out->paths));
	for (i = 0; i < c.n; i++) {
		const struct frec *f = find_file(s, c.v[i].path);

		out->paths[i] = c.v[i].path;
		if (f && index_add(out->baseline, f) < 0) {
			sp_wsseal_diff_release(out);
			return -1;
		}
	}
	return 0;
fail:
	git_tree_free(old);
	for (i = 0; i < c.n; i++)
		free(c.v[i].path);
	free(c.v);
	git_index_free(out->baseline);
	memset(out, 0, sizeof(*out));
	return -1;
}

void sp_wsseal_diff_release(struct sp_wsseal_diff *d)
{
	size_t i;

	for (i = 0; i < d->n_paths; i++)
		free(d->changes[i].path);
	free(d->changes);
	free(d->paths);
	git_index_free(d->baseline);
	memset(d, 0, sizeof(*d));
}

int sp_wsseal_index(git_index **out, const struct sp_wsseal *s)
{
	size_t i;

	if (git_index_new(out) < 0)
		return -1;
	for (i = 0; s && i < s->n_files; i++) {
		if (index_add(*out, &s->files[i]) < 0) {
			git_index_free(*out);
			*out = NULL;
			return -1;
		}
	}
	return 0;
}

/* ---- sealing ------------------------------------------------------------- */

/* A seal being made: records whose paths are either borrowed or in owned. */
struct draft {
	struct frec *files;
	size_t n_files, cap_files;
	struct drec *dirs;
	size_t n_dirs, cap_dirs;
	char **owned;
	size_t n_owned, cap_owned;
};

static const char *own(struct draft *d, char *p)
{
	SP_GROW(d->owned, d->cap_owned, d->n_owned + 1);
	d->owned[d->n_owned++] = p;
	return p;
}

static struct frec *new_file(struct draft *d)
{
	SP_GROW(d->files, d->cap_files, d->n_files + 1);
	memset(&d->files[d->n_files], 0, sizeof(*d->files));
	return &d->files[d->n_files++];
}

static struct drec *new_dir(struct draft *d)
{
	SP_GROW(d->dirs, d->cap_dirs, d->n_dirs + 1);
	memset(&d->dirs[d->n_dirs], 0, sizeof(*d->dirs));
	return &d->dirs[d->n_dirs++];
}

static void draft_release(struct draft *d)
{
	size_t i;

	for (i = 0; i < d->n_owned; i++)
		free(d->owned[i]);
	free(d->owned);
	free(d->files);
	free(d->dirs);
}

static int on_entry(const char *root, const git_tree_entry *e, void *payload)
{
	struct draft *d = payload;
	const char *name = git_tree_entry_name(e);
	char *p = sp_xmalloc(strlen(root) + strlen(name) + 1);

	strcpy(p, root);
	strcat(p, name);
	own(d, p);
	if (git_tree_entry_type(e) == GIT_OBJECT_TREE) {
		new_dir(d)->path = p;
	} else {
		struct frec *f = new_file(d);

		f->path = p;
		f->gmode = (uint32_t)git_tree_entry_filemode(e);
		git_oid_cpy(&f->oid, git_tree_entry_id(e));
	}
	return 0;
}

static int drec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct drec *)a)->path, ((const struct drec *)b)->path);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Every folder above a changed path ("." included), sorted, unique: a new
 * array of new strings (*n of them), both the caller's to free.
 */
static char **folders_above(const struct sp_wsseal_diff *diff, size_t *n)
{
	size_t cap = 0, k = 0, i, w;
	char **v = NULL;

	SP_GROW(v, cap, 1);
	v[k++] = sp_xstrdup(".");
	for (i = 0; i < diff->n_paths; i++) {
		const char *p = diff->paths[i], *s;

		for (s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
			SP_GROW(v, cap, k + 1);
			v[k++] = sp_xstrndup(p, (size_t)(s - p));
		}
	}
	qsort(v, k, sizeof(*v), str_cmp);
	for (i = 0, w = 0; i < k; i++) {
		if (!w || strcmp(v[w - 1], v[i]))
			v[w++] = v[i];
		else
			free(v[i]);
	}
	*n = w;
	return v;
}

/* Appends n bytes at *w (room was made for the whole seal). */
static void put(char **w, const void *p, size_t n)
{
	memcpy(*w, p, n);
	*w += n;
}

static void put_path(char **w, const char *p)
{
	uint32_t len = (uint32_t)strlen(p) + 1;

	put(w, &len, 4);
	put(w, p, len);
}

#define WST_BYTES 44

static void put_wst(char **w, const struct wst *st)
{
	put(w, &st->ino, 8);
	put(w, &st->size, 8);
	put(w, &st->mtime_s, 8);
	put(w, &st->ctime_s, 8);
	put(w, &st->mtime_ns, 4);
	put(w, &st->ctime_ns, 4);
	put(w, &st->mode, 4);
}

/*
 * Writes the seal.  Its file's mtime, taken from the clock after every
 * entry was stat'ed, tells the next reader which entries are racy.
 */
static int save(const char *path, const git_oid *tree, const struct draft *d,
		struct sp_error *err)
{
	char *buf, *w;
	uint32_t nf = (uint32_t)d->n_files, nd = (uint32_t)d->n_dirs;
	uint64_t sum;
	size_t i, len = 8 + 4 + 4 + GIT_OID_RAWSZ + 8;
	int rc;

	for (i = 0; i < d->n_files; i++)
		len += 4 + strlen(d->files[i].path) + 1 + 4 + GIT_OID_RAWSZ + WST_BYTES;
	for (i = 0; i < d->n_dirs; i++)
		len += 4 + strlen(d->dirs[i].path) + 1 + WST_BYTES;
	w = buf = sp_xmalloc(len);
	put(&w, MAGIC, 8);
	put(&w, &nf, 4);
	put(&w, &nd, 4);
	put(&w, tree->id, GIT_OID_RAWSZ);
	for (i = 0; i < d->n_files; i++) {
		put_path(&w, d->files[i].path);
		put(&w, &d->files[i].gmode, 4);
		put(&w, d->files[i].oid.id, GIT_OID_RAWSZ);
		put_wst(&w, &d->files[i].st);
	}
	for (i = 0; i < d->n_dirs; i++) {
		put_path(&w, d->dirs[i].path);
		put_wst(&w, &d->dirs[i].st);
	}
	sum = sp_wsseal_checksum(buf, (size_t)(w - buf));
	put(&w, &sum, 8);
	rc = sp_fs_write_atomic(path, buf, len, 0600, false, err);
	free(buf);
	return rc;
}

/* The draft's files and folders as sealed from scratch: every entry of tree. */
static int draft_full(struct draft *d, const git_tree *tree)
{
	new_dir(d)->path = own(d, sp_xstrdup("."));
	if (git_tree_walk(tree, GIT_TREEWALK_PRE, on_entry, d) < 0)
		return -1;
	if (d->n_dirs > 1)
		qsort(d->dirs, d->n_dirs, sizeof(*d->dirs), drec_cmp);
	return 0;
}

/*
 * The draft from old and the diff: unchanged files and folders keep their
 * sealed stat (they were checked), changed ones are added to items.
 */
static void draft_update(struct draft *d, const struct sp_wsseal *old,
			 const struct sp_wsseal_diff *diff, struct stat_item **items, size_t *n_items)
{
	const struct sp_wsseal_change *ch = diff->changes;
	size_t i = 0, j = 0, n_above, a = 0, k = 0;
	char **above = folders_above(diff, &n_above);

	SP_GROW(d->files, d->cap_files, old->n_files + diff->n_paths);
	SP_GROW(d->dirs, d->cap_dirs, old->n_dirs + n_above);
	*items = sp_xcalloc(diff->n_paths + n_above + 1, sizeof(**items));
	while (i < old->n_files || j < diff->n_paths) {
		int cmp = i == old->n_files ? 1 : j == diff->n_paths ? -1 :
			  strcmp(old->files[i].path, ch[j].path);

		if (cmp < 0) {
			*new_file(d) = old->files[i++];
			continue;
		}
		if (cmp == 0)
			i++;
		if (!ch[j].removed) {
			struct frec *f = new_file(d);

			f->path = ch[j].path;
			f->gmode = ch[j].gmode;
			git_oid_cpy(&f->oid, &ch[j].oid);
		}
		j++;
	}
	/* folders: the sealed ones and those above a change, the latter stat'ed again */
	i = 0;
	while (i < old->n_dirs || a < n_above) {
		int cmp = i == old->n_dirs ? 1 : a == n_above ? -1 : strcmp(old->dirs[i].path, above[a]);

		if (cmp < 0) {
			*new_dir(d) = old->dirs[i++];
			continue;
		}
		if (cmp == 0)
			i++;
		new_dir(d)->path = own(d, above[a++]);
	}
	free(above);
	/*
	 * items point into d's arrays, which no longer grow: the changed
	 * files (in the same order in both) and the folders above them (the
	 * only ones with no stat yet: a sealed folder's mode is never 0)
	 */
	for (i = 0, j = 0; i < d->n_files; i++) {
		while (j < diff->n_paths && ch[j].removed)
			j++;
		if (j < diff->n_paths && d->files[i].path == ch[j].path) {
			(*items)[k++] = (struct stat_item){ d->files[i].path, NULL, &d->files[i].st };
			j++;
		}
	}
	for (i = 0; i < d->n_dirs; i++)
		if (d->dirs[i].st.mode == 0)
			(*items)[k++] = (struct stat_item){ d->dirs[i].path, NULL, &d->dirs[i].st };
	*n_items = k;
}

/*
 * The common case, files changed and none added or removed (so no folder
 * either): their records and those of the folders above them are
 * rewritten where they are in old's buffer (same sizes), which is then
 * written out as it is.  1: not that case (nothing done).
 */
static int patch(const char *path, const git_tree *tree, const char *dir, struct sp_wsseal *old,
		 const struct sp_wsseal_diff *diff, struct sp_error *err)
{
	struct frec **files = NULL;
	struct drec **dirs = NULL;
	struct stat_item *items = NULL;
	char **above = NULL;
	size_t i, nd = 0, n = 0, n_above = 0;
	uint64_t sum;
	int rc = 1, e;

	files = sp_xcalloc(diff->n_paths + 1, sizeof(*files));
	for (i = 0; i < diff->n_paths; i++) {
		files[i] = bsearch(diff->paths[i], old->files, old->n_files, sizeof(*old->files),
				   frec_key_cmp);
		if (diff->changes[i].removed || !files[i])
			goto out;
	}
	above = folders_above(diff, &n_above);
	dirs = sp_xcalloc(n_above, sizeof(*dirs));
	for (nd = 0; nd < n_above; nd++)
		if (!(dirs[nd] = bsearch(above[nd], old->dirs, old->n_dirs, sizeof(*old->dirs),
					 drec_key_cmp)))
			goto out;
	items = sp_xcalloc(diff->n_paths + nd, sizeof(*items));
	for (i = 0; i < diff->n_paths; i++)
		items[n++] = (struct stat_item){ files[i]->path, NULL, &files[i]->st };
	for (i = 0; i < nd; i++)
		items[n++] = (struct stat_item){ dirs[i]->path, NULL, &dirs[i]->st };
	if ((e = stat_all(dir, items, n, NULL)) != 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot seal %s: %s", dir, strerror(e));
		goto out;
	}
	for (i = 0; i < diff->n_paths; i++) {
		struct frec *f = files[i];
		char *at = old->buf + f->at;

		if (f->st.mode == 0 && diff->changes[i].gmode != GIT_FILEMODE_COMMIT) {
			rc = sp_error_set(err, SP_ERROR, "cannot seal %s: %s is missing", dir, f->path);
			goto out;
		}
		f->gmode = diff->changes[i].gmode;
		git_oid_cpy(&f->oid, &diff->changes[i].oid);
		put(&at, &f->gmode, 4);
		put(&at, f->oid.id, GIT_OID_RAWSZ);
		put_wst(&at, &f->st);
	}
	for (i = 0; i < nd; i++) {
		char *at = old->buf + dirs[i]->at;

		if (!S_ISDIR(dirs[i]->st.mode)) {
			rc = sp_error_set(err, SP_ERROR, "cannot seal %s: %s is not a folder", dir,
					  dirs[i]->path);
			goto out;
		}
		put_wst(&at, &dirs[i]->st);
	}
	memcpy(old->buf + 16, git_tree_id(tree)->id, GIT_OID_RAWSZ);
	git_oid_cpy(&old->tree, git_tree_id(tree));
	sum = sp_wsseal_checksum(old->buf, old->len - 8);
	memcpy(old->buf + old->len - 8, &sum, 8);
	rc = sp_fs_write_atomic(path, old->buf, old->len, 0600, false, err);
out:
	for (i = 0; i < n_above; i++)
		free(above[i]);
	free(above);
	free(items);
	free(dirs);
	free(files);
	return rc;
}

int sp_wsseal_write(const char *path, const git_tree *tree, const char *dir,
		    struct sp_wsseal *old, const struct sp_wsseal_diff *diff,
		    struct sp_error *err)
{
	struct draft d;
	struct stat_item *items = NULL;
	size_t n_items = 0, i, w;
	int rc = 0, e;

	memset(&d, 0, sizeof(d));
	if (old && diff && (rc = patch(path, tree, dir, old, diff, err)) != 1) {
		if (rc < 0)
			goto fail;
		return 0;
	}
	rc = 0;
	if (old && diff) {
		draft_update(&d, old, diff, &items, &n_items);
	} else {
		if (draft_full(&d, tree) < 0) {
			rc = sp_error_set(err, SP_ERROR, "cannot read the tree to seal %s", dir);
			goto fail;
		}
		n_items = d.n_files + d.n_dirs;
		items = sp_xcalloc(n_items ? n_items : 1, sizeof(*items));
		for (i = 0; i < d.n_files; i++)
			items[i] = (struct stat_item){ d.files[i].path, NULL, &d.files[i].st };
		for (i = 0; i < d.n_dirs; i++)
			items[d.n_files + i] = (struct stat_item){ d.dirs[i].path, NULL, &d.dirs[i].st };
	}
	if ((e = stat_all(dir, items, n_items, NULL)) != 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot seal %s: %s", dir, strerror(e));
		goto fail;
	}
	/* a file of the tree must be there (a submodule's folder may not be) */
	for (i = 0; i < d.n_files; i++) {
		if (d.files[i].st.mode == 0 && d.files[i].gmode != GIT_FILEMODE_COMMIT) {
			rc = sp_error_set(err, SP_ERROR, "cannot seal %s: %s is missing", dir,
					  d.files[i].path);
			goto fail;
		}
	}
	/* folders gone with their last file (or never made) are no longer sealed */
	for (i = 0, w = 0; i < d.n_dirs; i++)
		if (S_ISDIR(d.dirs[i].st.mode))
			d.dirs[w++] = d.dirs[i];
	d.n_dirs = w;
	if ((rc = save(path, git_tree_id(tree), &d, err)) < 0)
		goto fail;
	goto out;
fail:
	(void)unlink(path);
out:
	free(items);
	draft_release(&d);
	return rc;
}
