/*
 * context.c — the build context as a tar stream, produced while it is read.
 *
 * Design note: pull mode.  libcurl pulls a request body through its
 * READFUNCTION ("give me up to N bytes"); libarchive pushes (archive_write_*
 * calls a write callback with whatever it produced).  sp_context_read joins
 * the two by running the producer only as far as the consumer needs:
 *
 *	sp_context_read(buf, size):
 *		while unread pending bytes < size and not finished: step()
 *		copy min(size, pending) out
 *
 * One step() is one of: take the next entry of the walk and write its header
 * (archive_write_header); copy the next chunk (64 KiB at most) of the file
 * being sent (read + archive_write_data); at the end, archive_write_close,
 * which emits the two zero records.  The write callback only appends to the
 * pending buffer.  libarchive is given bytes_per_block = 0, so it keeps no
 * block buffer of its own: every byte it produces lands in pending at once.
 * The stream is a valid tar of 512-byte records ending with the usual 1 KiB
 * of zeros, merely not padded to a 10 KiB block, which no reader needs.
 *
 * Memory bound.  Held at any time: the pending bytes (fewer than the last
 * request + one 64 KiB chunk + one entry's headers, pax included), the
 * 64 KiB chunk, and the walk — for each folder on the current path, an open
 * descriptor and its sorted list of names (a folder must be read whole to be
 * sorted; nothing else of the tree is ever kept).  So memory depends on the
 * read size, the depth and the widest folder on the current path, never on
 * the number or size of files: 10 GB cost what 10 MB do.  Descriptors: one
 * per level plus the file being copied.
 *
 * What goes in follows docker/cli's tar of a context (moby's TarWithOptions
 * over filepath.Walk): names sorted bytewise within a folder, a folder before
 * its contents, no entry for the root; .dockerignore with exception-aware
 * pruning — an excluded folder is walked only when an exception pattern
 * points below it, and its own entry is then not sent; the Dockerfile and
 * .dockerignore always sent (docker/cli appends "!" rules for them), with
 * the folders leading to the Dockerfile walked even when excluded.  Headers:
 * pax-restricted (plain ustar unless a long or non-ASCII name needs a pax
 * header), mode bits kept, uid/gid 0 without names, mtime to the second.
 * Symlinks are stored as links, never followed; hard links are sent as
 * separate files; sockets, devices and fifos are skipped.
 */
#include "runners/docker/context.h"

#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/xalloc.h"
#include "runners/docker/ignore.h"

#define CONTEXT_CHUNK (64u * 1024u)

/* ------------------------------------------------------------------ */
/* The walk, shared by the stream and the listing                      */
/* ------------------------------------------------------------------ */

/* One open folder on the current path. */
struct frame {
	int fd;           /* the folder, for the *at() calls */
	char **names;     /* its entries, sorted */
	size_t n, next, alloc;
	size_t prefix;    /* length of its relative path plus '/' (0 for the root) */
};

struct walk {
	char *root;            /* the context folder as given, for messages */
	char *dockerfile;      /* cleaned, relative to root */
	struct sp_ignore *ig;
	struct frame *stack;
	size_t depth, alloc;
	char *path;            /* relative path of the current entry */
	size_t plen, palloc;
	char *link;            /* target of the current symlink */
	size_t lalloc;
	struct sp_context_counts stats;
};

struct walk_entry {
	const char *path;      /* borrowed from the walk */
	enum sp_context_type type;
	struct stat st;
	int fd;                /* files: open for reading, the caller closes it; else -1 */
	const char *link;      /* symlinks: the target, borrowed */
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void frame_release(struct frame *f)
{
	size_t i;

	if (f->fd >= 0)
		close(f->fd);
	for (i = 0; i < f->n; i++)
		free(f->names[i]);
	free(f->names);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

/*
 * Opens the folder name (relative to parent_fd; "." for the root) whose
 * relative path is w->path[0..w->plen), reads and sorts its names and pushes
 * it on the stack.
 */
static int walk_push(struct walk *w, int parent_fd, const char *name, struct sp_error *err)
{
	struct frame f;
	struct dirent *de;
	DIR *d = NULL;
	int dfd, rc = 0;

	memset(&f, 0, sizeof(f));
	f.fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (f.fd < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot open folder %s/%s: %s", w->root,
				  w->plen ? w->path : ".", strerror(errno));
		goto out;
	}
	/* read through a duplicate, so that closedir leaves f.fd open */
	dfd = fcntl(f.fd, F_DUPFD_CLOEXEC, 0);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		rc = sp_error_set(err, SP_ERROR, "cannot read folder %s/%s: %s", w->root,
				  w->plen ? w->path : ".", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		SP_GROW(f.names, f.alloc, f.n + 1);
		f.names[f.n++] = sp_xstrdup(de->d_name);
	}
	if (errno) {
		rc = sp_error_set(err, SP_ERROR, "cannot read folder %s/%s: %s", w->root,
				  w->plen ? w->path : ".", strerror(errno));
		goto out;
	}
	if (f.n > 1)
		qsort(f.names, f.n, sizeof(*f.names), cmp_names);
	if (w->plen)
		f.prefix = w->plen + 1; /* the '/' is put in by walk_next */
	SP_GROW(w->stack, w->alloc, w->depth + 1);
	w->stack[w->depth++] = f;
	memset(&f, 0, sizeof(f));
	f.fd = -1; /* handed to the stack */
out:
	if (d)
		closedir(d);
	frame_release(&f);
	return rc;
}

static void walk_release(struct walk *w)
{
	while (w->depth > 0)
		frame_release(&w->stack[--w->depth]);
	free(w->stack);
	free(w->root);
	free(w->dockerfile);
	free(w->path);
	free(w->link);
	sp_ignore_free(w->ig);
	memset(w, 0, sizeof(*w));
}

/*
 * The Dockerfile path, cleaned: empty and "." parts dropped; absolute paths
 * and ".." refused (the file must be inside the context).
 */
static int clean_dockerfile(char **out, const char *df, struct sp_error *err)
{
	struct sp_buf b = SP_BUF_INIT;
	const char *p = df;
	int rc = 0;

	*out = NULL;
	if (df[0] == '/') {
		rc = sp_error_set(err, SP_ECONFIG,
				  "Dockerfile path \"%s\" must be relative to the context folder", df);
		goto out;
	}
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && !memcmp(p, "..", 2)) {
			rc = sp_error_set(err, SP_ECONFIG,
					  "Dockerfile path \"%s\" leaves the context folder", df);
			goto out;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (b.len)
				sp_buf_addch(&b, '/');
			sp_buf_add(&b, p, n);
		}
		p += n;
		if (*p == '/')
			p++;
	}
	if (!b.len) {
		rc = sp_error_set(err, SP_ECONFIG, "Dockerfile path \"%s\" names no file", df);
		goto out;
	}
	*out = sp_buf_detach(&b, NULL);
out:
	sp_buf_release(&b);
	return rc;
}

static int walk_open(struct walk *w, const char *dir, const char *dockerfile,
		     struct sp_error *err)
{
	struct stat st;
	char *ignore_path = NULL;
	int rootfd = -1, rc = 0;

	memset(w, 0, sizeof(*w));
	if (!dir || !*dir)
		dir = ".";
	if (!dockerfile || !*dockerfile)
		dockerfile = "Dockerfile";
	w->root = sp_xstrdup(dir);
	for (size_t n = strlen(w->root); n > 1 && w->root[n - 1] == '/'; n--)
		w->root[n - 1] = '\0'; /* "ctx/" → "ctx", for messages */
	rc = clean_dockerfile(&w->dockerfile, dockerfile, err);
	if (rc < 0)
		goto out;
	assert(w->dockerfile); /* set on success (sp_buf_detach never returns NULL) */
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		int e = errno;
		rc = sp_error_set(err, e == ENOENT ? SP_ENOTFOUND : SP_ERROR,
				  "cannot open build context %s: %s", dir, strerror(e));
		goto out;
	}
	if (fstatat(rootfd, w->dockerfile, &st, 0) < 0) {
		int e = errno;
		rc = sp_error_set(err, e == ENOENT ? SP_ENOTFOUND : SP_ERROR,
				  "Dockerfile %s in build context %s: %s", w->dockerfile, dir,
				  strerror(e));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = sp_error_set(err, SP_ECONFIG, "Dockerfile %s in build context %s is a folder",
				  w->dockerfile, dir);
		goto out;
	}
	ignore_path = sp_xasprintf("%s/.dockerignore", w->root);
	rc = sp_ignore_load_file(&w->ig, ignore_path, err);
	if (rc < 0)
		goto out;
	rc = walk_push(w, rootfd, ".", err);
out:
	if (rootfd >= 0)
		close(rootfd);
	free(ignore_path);
	return rc;
}

static int is_build_file(const struct walk *w, const char *path)
{
	return !strcmp(path, w->dockerfile) || !strcmp(path, ".dockerignore");
}

/* 1 when the folder dir lies on the way to the Dockerfile. */
static int leads_to_dockerfile(const struct walk *w, const char *dir, size_t n)
{
	return !strncmp(w->dockerfile, dir, n) && w->dockerfile[n] == '/';
}

static int read_link(struct walk *w, int dirfd, const char *name, size_t hint,
		     struct sp_error *err)
{
	size_t want = hint + 1 > 64 ? hint + 1 : 64;
	ssize_t n;

	for (;;) {
		SP_GROW(w->link, w->lalloc, want);
		n = readlinkat(dirfd, name, w->link, w->lalloc);
		if (n < 0)
			return sp_error_set(err, SP_ERROR, "cannot read symlink %s/%s: %s", w->root,
					    w->path, strerror(errno));
		if ((size_t)n < w->lalloc)
			break;
		want = w->lalloc * 2; /* truncated: try a larger buffer */
	}
	w->link[n] = '\0';
	return 0;
}

/*
 * The next entry to send: 1 (e filled), 0 at the end, or an error.
 * Excluded and special entries are counted and passed over.
 */
static int walk_next(struct walk *w, struct walk_entry *e, struct sp_error *err)
{
	for (;;) {
		struct frame *f;
		const char *name;
		size_t n;
		int excluded, fd, rc;

		if (w->depth == 0)
			return 0;
		f = &w->stack[w->depth - 1];
		if (f->next == f->n) {
			frame_release(f);
			w->depth--;
			continue;
		}
		name = f->names[f->next++];
		n = strlen(name);
		SP_GROW(w->path, w->palloc, f->prefix + n + 1);
		if (f->prefix)
			w->path[f->prefix - 1] = '/';
		memcpy(w->path + f->prefix, name, n + 1);
		w->plen = f->prefix + n;

		memset(e, 0, sizeof(*e));
		e->fd = -1;
		e->path = w->path;
		if (fstatat(f->fd, name, &e->st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed since its folder was read */
			return sp_error_set(err, SP_ERROR, "cannot stat %s/%s: %s", w->root, w->path,
					    strerror(errno));
		}
		excluded = !is_build_file(w, w->path) && sp_ignore_match(w->ig, w->path);

		if (S_ISDIR(e->st.st_mode)) {
			if (excluded) {
				w->stats.excluded++;
				if (!sp_ignore_may_descend(w->ig, w->path) &&
				    !leads_to_dockerfile(w, w->path, w->plen))
					continue; /* pruned */
			}
			rc = walk_push(w, f->fd, name, err); /* f is stale after this */
			if (rc < 0)
				return rc;
			if (excluded)
				continue; /* walked for its exceptions, not sent */
			e->type = SP_CONTEXT_DIR;
			w->stats.dirs++;
			return 1;
		}
		if (excluded) {
			w->stats.excluded++;
			continue;
		}
		if (S_ISREG(e->st.st_mode)) {
			fd = openat(f->fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
			if (fd < 0)
				return sp_error_set(err, SP_ERROR, "cannot read %s/%s: %s", w->root,
						    w->path, strerror(errno));
			if (fstat(fd, &e->st) < 0 || !S_ISREG(e->st.st_mode)) {
				close(fd);
				return sp_error_set(err, SP_ERROR, "%s/%s changed while being read",
						    w->root, w->path);
			}
			e->fd = fd;
			e->type = SP_CONTEXT_FILE;
			w->stats.files++;
			return 1;
		}
		if (S_ISLNK(e->st.st_mode)) {
			rc = read_link(w, f->fd, name, (size_t)e->st.st_size, err);
			if (rc < 0)
				return rc;
			e->link = w->link;
			e->type = SP_CONTEXT_SYMLINK;
			w->stats.symlinks++;
			return 1;
		}
		w->stats.skipped++; /* socket, device or fifo */
	}
}

/* ------------------------------------------------------------------ */
/* The stream                                                          */
/* ------------------------------------------------------------------ */

enum stream_state {
	ST_NEXT,  /* the next step writes the next entry's header */
	ST_DATA,  /* the next step copies a chunk of the current file */
	ST_DONE,  /* the trailer is written: only pending bytes remain */
};

struct sp_context {
	struct walk w;
	struct archive *ar;
	struct archive_entry *entry;  /* reused for every header */
	struct sp_buf pending;        /* produced, not yet handed out */
	size_t off;                   /* pending bytes already handed out */
	char *chunk;                  /* CONTEXT_CHUNK bytes */
	int fd;                       /* file being copied; -1 when none */
	uint64_t left;                /* its bytes still to copy */
	enum stream_state state;
	int failed;                   /* set once a read failed: repeat the error */
	struct sp_error error;
};

static la_ssize_t on_write(struct archive *a, void *ud, const void *buf, size_t len)
{
	struct sp_context *ctx = ud;

	(void)a;
	sp_buf_add(&ctx->pending, buf, len); /* no cap: cannot fail */
	return (la_ssize_t)len;
}

static int write_header(struct sp_context *ctx, const struct walk_entry *e,
			struct sp_error *err)
{
	struct archive_entry *ae = ctx->entry;
	int r;

	archive_entry_clear(ae);
	archive_entry_copy_pathname(ae, e->path);
	archive_entry_set_perm(ae, e->st.st_mode & 07777);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_mtime(ae, e->st.st_mtime, 0);
	switch (e->type) {
	case SP_CONTEXT_FILE:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_size(ae, e->st.st_size);
		break;
	case SP_CONTEXT_DIR:
		archive_entry_set_filetype(ae, AE_IFDIR);
		archive_entry_set_size(ae, 0);
		break;
	case SP_CONTEXT_SYMLINK:
	default:
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_copy_symlink(ae, e->link);
		archive_entry_set_size(ae, 0);
		break;
	}
	r = archive_write_header(ctx->ar, ae);
	if (r < ARCHIVE_WARN) /* a warning is a name libarchive stored raw */
		return sp_error_set(err, SP_ERROR, "cannot add %s/%s to the context tar: %s",
				    ctx->w.root, e->path, archive_error_string(ctx->ar));
	return 0;
}

/* Produces the next piece of the stream into ctx->pending (maybe nothing). */
static int step(struct sp_context *ctx, struct sp_error *err)
{
	struct walk_entry e;
	size_t want;
	ssize_t n;
	int rc;

	switch (ctx->state) {
	case ST_NEXT:
		rc = walk_next(&ctx->w, &e, err);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (archive_write_close(ctx->ar) != ARCHIVE_OK)
				return sp_error_set(err, SP_ERROR, "cannot finish the context tar: %s",
						    archive_error_string(ctx->ar));
			ctx->state = ST_DONE;
			return 0;
		}
		rc = write_header(ctx, &e, err);
		if (rc < 0) {
			if (e.fd >= 0)
				close(e.fd);
			return rc;
		}
		if (e.type == SP_CONTEXT_FILE && e.st.st_size > 0) {
			ctx->fd = e.fd;
			ctx->left = (uint64_t)e.st.st_size;
			ctx->state = ST_DATA;
		} else if (e.fd >= 0) {
			close(e.fd);
		}
		return 0;
	case ST_DATA:
		want = ctx->left < CONTEXT_CHUNK ? (size_t)ctx->left : CONTEXT_CHUNK;
		do
			n = read(ctx->fd, ctx->chunk, want);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return sp_error_set(err, SP_ERROR, "cannot read %s/%s: %s", ctx->w.root,
					    ctx->w.path, strerror(errno));
		if (n == 0)
			return sp_error_set(err, SP_ERROR,
					    "%s/%s shrank while being sent (%" PRIu64 " bytes missing)",
					    ctx->w.root, ctx->w.path, ctx->left);
		if (archive_write_data(ctx->ar, ctx->chunk, (size_t)n) != n)
			return sp_error_set(err, SP_ERROR, "cannot add %s/%s to the context tar: %s",
					    ctx->w.root, ctx->w.path, archive_error_string(ctx->ar));
		ctx->left -= (uint64_t)n;
		ctx->w.stats.bytes += (uint64_t)n;
		if (ctx->left == 0) {
			close(ctx->fd);
			ctx->fd = -1;
			ctx->state = ST_NEXT;
		}
		return 0;
	case ST_DONE:
	default:
		return 0;
	}
}

int sp_context_open(struct sp_context **out, const char *dir, const char *dockerfile,
		    struct sp_error *err)
{
	struct sp_context *ctx = sp_xcalloc(1, sizeof(*ctx));
	int rc = 0;

	*out = NULL;
	ctx->fd = -1;
	sp_buf_init(&ctx->pending, 0);
	rc = walk_open(&ctx->w, dir, dockerfile, err);
	if (rc < 0)
		goto out;
	ctx->ar = archive_write_new();
	ctx->entry = archive_entry_new();
	if (!ctx->ar || !ctx->entry) {
		rc = sp_error_set(err, SP_ERROR, "libarchive: out of memory");
		goto out;
	}
	if (archive_write_set_format_pax_restricted(ctx->ar) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(ctx->ar, 0) != ARCHIVE_OK ||
	    archive_write_open(ctx->ar, ctx, NULL, on_write, NULL) != ARCHIVE_OK) {
		rc = sp_error_set(err, SP_ERROR, "cannot start the context tar: %s",
				  archive_error_string(ctx->ar));
		goto out;
	}
	ctx->chunk = sp_xmalloc(CONTEXT_CHUNK);
	ctx->state = ST_NEXT;
	*out = ctx;
	ctx = NULL; /* handed to the caller */
out:
	sp_context_free(ctx);
	return rc;
}

int sp_context_read(struct sp_context *ctx, char *buf, size_t size, size_t *nread,
		    struct sp_error *err)
{
	size_t avail, n;
	int rc = 0;

	assert(size > 0); /* 0 bytes read means the end of the stream */
	*nread = 0;
	if (ctx->failed)
		return sp_error_set(err, ctx->error.code, "%s", ctx->error.msg);
	avail = ctx->pending.len - ctx->off;
	if (avail < size && ctx->state != ST_DONE) {
		/* keep only the unread bytes (fewer than size), then produce more */
		sp_buf_consume(&ctx->pending, ctx->off);
		ctx->off = 0;
		while (ctx->pending.len < size && ctx->state != ST_DONE) {
			rc = step(ctx, &ctx->error);
			if (rc < 0) {
				ctx->failed = 1;
				sp_error_set(err, rc, "%s", ctx->error.msg);
				goto out;
			}
		}
		avail = ctx->pending.len;
	}
	n = avail < size ? avail : size;
	memcpy(buf, ctx->pending.data + ctx->off, n);
	ctx->off += n;
	if (ctx->off == ctx->pending.len) {
		sp_buf_reset(&ctx->pending);
		ctx->off = 0;
	}
	ctx->w.stats.tar_bytes += n;
	*nread = n;
out:
	return rc;
}

void sp_context_get_counts(const struct sp_context *ctx, struct sp_context_counts *out)
{
	*out = ctx->w.stats;
}

void sp_context_stats(const struct sp_context *ctx, unsigned long long *files,
		      unsigned long long *bytes)
{
	if (files)
		*files = ctx->w.stats.files;
	if (bytes)
		*bytes = ctx->w.stats.bytes;
}

const char *sp_context_dockerfile(const struct sp_context *ctx)
{
	return ctx->w.dockerfile;
}

void sp_context_free(struct sp_context *ctx)
{
	if (!ctx)
		return;
	if (ctx->ar)
		archive_write_free(ctx->ar); /* may still write into pending: free it first */
	if (ctx->entry)
		archive_entry_free(ctx->entry);
	if (ctx->fd >= 0)
		close(ctx->fd);
	walk_release(&ctx->w);
	sp_buf_release(&ctx->pending);
	free(ctx->chunk);
	free(ctx);
}

/* ------------------------------------------------------------------ */
/* The listing                                                         */
/* ------------------------------------------------------------------ */

int sp_context_list(const char *dir, const char *dockerfile, sp_context_list_fn fn, void *ud,
		    struct sp_context_counts *stats, struct sp_error *err)
{
	struct walk w;
	struct walk_entry e;
	int rc;

	rc = walk_open(&w, dir, dockerfile, err);
	while (rc == 0) {
		uint64_t size;

		rc = walk_next(&w, &e, err);
		if (rc <= 0)
			break;
		size = e.type == SP_CONTEXT_FILE ? (uint64_t)e.st.st_size : 0;
		if (e.fd >= 0)
			close(e.fd);
		w.stats.bytes += size;
		rc = fn(e.path, size, e.type, ud);
		if (rc > 0)
			rc = 0; /* only a negative value stops the walk */
	}
	if (stats)
		*stats = w.stats;
	walk_release(&w);
	return rc;
}
