/*
 * logs.c — a job's log files: DATA/logs/<job>/<stage>.log.
 *
 * One file per stage, appended line by line as the job's log events
 * arrive (jobevents.c) and read by the API (whole, by byte range, or
 * followed as SSE).  Lines that belong to no stage (checkout progress,
 * the worker's own notes) go to the job log "_job" (DATA/logs/<job>/
 * _job.log): a leading underscore is a valid name here and pipelines
 * cannot name a stage so, so it never collides with a stage.
 *
 * Files are opened O_APPEND (a retried job's second attempt goes on after
 * the first one's lines, so a reader's byte offsets stay valid), 0640 in
 * a 0750 folder, close-on-exec so no job child inherits them.  A file is
 * fsynced when the job ends: the lines are in the page cache as soon as
 * they are written (readers see them at once), and on disk once the job
 * is over.
 *
 * A write that fails (the data disk is full, an I/O error) loses that line
 * and only that line: a part of it already written is cut off again
 * (ftruncate to where the line began), so the file never holds half a
 * line and the next line starts at a line boundary.  The caller gets the
 * error (and logs it; the job goes on).  The lines lost are counted, and
 * the next line that can be written is preceded by a note saying how many
 * were lost and why (the two in one write: both or neither); sp_joblog_close logs the job's total once
 * (job.log_lost).
 *
 * With a store that keeps logs (PostgreSQL: sp_store_has_logs), the same
 * interface writes chunks into the store instead, so every server sharing
 * it reads a running job's log (sp_joblog_open_store).  Lines are
 * buffered per stage and appended as one chunk per stage (whole lines,
 * never a line cut in two) when the job has 64 KiB buffered, 250 ms after
 * the first line buffered (a thread of the joblog waits for that), and at
 * sp_joblog_flush / sp_joblog_close (the callers flush before they write
 * the job's final state, so a finished job's log is complete).  The
 * append goes through the store's writer (group commit with every other
 * write of the server), never a connection of its own.  Memory: at most
 * 64 KiB and one line per job.  The store puts a chunk at the stage's end
 * as it finds it, so a retried job (on any server) goes on after the
 * earlier attempt's lines and byte offsets stay valid for readers.  An
 * append that fails loses that chunk's lines only: counted, and noted
 * before the next line of the stage as for files.
 *
 * Readers (sp_logread): the same for both: a size, and reads at a byte
 * offset (pread of the file, or windows of chunks from the store).
 */
#define _GNU_SOURCE
#include "core/server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/clock.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"

#define STAGE_NAME_MAX 100
/* More distinct stages than this in one job is a bug, not a pipeline. */
#define MAX_FILES 256
/* Store mode: a chunk is appended once this much is buffered ... */
#define CHUNK_BYTES (64 * 1024)
/* ... or this long after the first line buffered. */
#define FLUSH_MS 250
/* The store reader's window (one query). */
#define READ_WINDOW (64 * 1024)

/* The names a stage's log can have (in files and in the store alike). */
static bool stage_ok(const char *stage)
{
	size_t n;

	if (!stage)
		return false;
	n = strspn(stage, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789_.-[]+,");
	return !(n == 0 || n > STAGE_NAME_MAX || stage[n] != '\0' || stage[0] == '.');
}

int sp_logs_path(char *buf, size_t len, const char *data, int64_t job, const char *stage)
{
	int w;

	if (len)
		buf[0] = '\0';
	if (!stage || !data || !stage_ok(stage))
		return -1;
	w = snprintf(buf, len, "%s/logs/%" PRId64 "/%s.log", data, job, stage);
	if (w < 0 || (size_t)w >= len) {
		if (len)
			buf[0] = '\0';
		return -1;
	}
	return 0;
}

struct joblog_file {
	char *stage;
	int fd;
	uint64_t lost;          /* lines lost since the last one written */
	int lost_errno;         /* why the last of them was lost */
};

/* Store mode: one stage's buffered lines. */
struct joblog_chunk {
	char *stage;
	struct sp_buf buf;      /* whole lines, each with its newline */
	uint64_t lines;         /* lines in buf (a note not counted) */
	uint64_t lost;          /* lines lost since the last chunk stored */
	char why[200];          /* why the last of them were lost */
};

struct sp_joblog {
	char *data;
	int64_t job;
	struct joblog_file *files;
	size_t n, alloc;
	uint64_t lost;          /* lines lost in all its files */
	int lost_errno;
	/* store mode (st != NULL): everything below under mu */
	struct sp_store *st;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* the flusher waits on it */
	pthread_t flusher;
	bool stop;
	struct joblog_chunk *chunks;
	size_t nchunks, chunks_alloc;
	size_t buffered;        /* bytes in all chunks' buffers */
	int64_t first_ms;       /* when the first of them was buffered */
	char lost_why[200];
};

static int make_dir(const char *path, struct sp_error *err)
{
	if (mkdir(path, 0750) < 0 && errno != EEXIST)
		return sp_error_set(err, SP_ERROR, "cannot create the log folder %s: %s", path,
				    strerror(errno));
	return 0;
}

int sp_joblog_open(struct sp_joblog **out, const char *data, int64_t job,
		   struct sp_error *err)
{
	char *logs = sp_xasprintf("%s/logs", data);
	char *dir = sp_xasprintf("%s/logs/%" PRId64, data, job);
	struct sp_joblog *l = NULL;
	int rc;

	*out = NULL;
	if ((rc = make_dir(logs, err)) < 0 || (rc = make_dir(dir, err)) < 0)
		goto cleanup;
	l = sp_xcalloc(1, sizeof(*l));
	l->data = sp_xstrdup(data);
	l->job = job;
	*out = l;
cleanup:
	free(logs);
	free(dir);
	return rc;
}

/* stage's file (opened on first use), or NULL with err set. */
static struct joblog_file *stage_file(struct sp_joblog *l, const char *stage,
				      struct sp_error *err)
{
	char path[4096];
	size_t i;
	int fd;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->files[i].stage, stage))
			return &l->files[i];
	if (sp_logs_path(path, sizeof(path), l->data, l->job, stage) < 0) {
		sp_error_set(err, SP_ERROR, "job %" PRId64 ": \"%.100s\" cannot name a log "
			     "file", l->job, stage);
		return NULL;
	}
	if (l->n >= MAX_FILES) {
		sp_error_set(err, SP_ETOOBIG, "job %" PRId64 ": more than %d log files",
			     l->job, MAX_FILES);
		return NULL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		sp_error_set(err, SP_ERROR, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	SP_GROW(l->files, l->alloc, l->n + 1);
	memset(&l->files[l->n], 0, sizeof(l->files[l->n]));
	l->files[l->n].stage = sp_xstrdup(stage);
	l->files[l->n].fd = fd;
	return &l->files[l->n++];
}

/*
 * Appends line + '\n' to fd whole, or not at all: 0, or an errno value
 * (what was written of the line is cut off again).
 */
static int append_line(int fd, const char *line, size_t len)
{
	static const char nl = '\n';
	struct iovec iov[2];
	size_t total = len + 1, done = 0;
	off_t start = lseek(fd, 0, SEEK_END);

	/* one writev for the line and its newline: readers of a growing file
	 * rarely see half a line, and never another line inside one */
	while (done < total) {
		ssize_t n;
		int cnt = 0, e;

		if (done < len) {
			iov[cnt].iov_base = (void *)(uintptr_t)(line + done);
			iov[cnt++].iov_len = len - done;
		}
		iov[cnt].iov_base = (void *)(uintptr_t)&nl;
		iov[cnt++].iov_len = 1;
		n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			/* only this job's writer appends to the file: the bytes
			 * from start on are this line's */
			if (done && start >= 0)
				(void)!ftruncate(fd, start);
			return e;
		}
		done += (size_t)n;
	}
	return 0;
}

/* ---- store mode ---- */

/*
 * Appends every stage's buffered lines as one chunk each (mu held).  A
 * chunk the store refuses is lost, counted and noted; the first such
 * error goes to err (may be NULL).  Returns 0 or that error.
 */
static int flush_locked(struct sp_joblog *l, struct sp_error *err)
{
	int ret = 0;

	for (size_t i = 0; i < l->nchunks; i++) {
		struct joblog_chunk *c = &l->chunks[i];
		struct sp_error e = SP_ERROR_INIT;
		char q[300];

		if (!c->buf.len)
			continue;
		if (sp_store_log_append(l->st, l->job, c->stage, c->buf.data, c->buf.len, NULL,
					&e) == 0) {
			c->lost = 0;
		} else {
			c->lost += c->lines;
			l->lost += c->lines;
			snprintf(c->why, sizeof(c->why), "%.199s", e.msg);
			snprintf(l->lost_why, sizeof(l->lost_why), "%.199s", e.msg);
			sp_log_warn("job.log_failed", "job=%" PRId64 " stage=%s lines=%" PRIu64
				    " error=%s", l->job, c->stage, c->lines,
				    sp_log_quote(e.msg, q, sizeof(q)));
			if (!ret)
				ret = sp_error_set(err, SP_ERROR, "writing the log of job %" PRId64
						   " stage %s: %s (%" PRIu64 " line%s lost)",
						   l->job, c->stage, e.msg, c->lines,
						   c->lines == 1 ? "" : "s");
		}
		sp_buf_reset(&c->buf);
		c->lines = 0;
	}
	l->buffered = 0;
	return ret;
}

/* Waits for FLUSH_MS after the first line buffered, then appends. */
static void *flusher_main(void *arg)
{
	struct sp_joblog *l = arg;
	struct timespec ts;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		if (!l->buffered) {
			pthread_cond_wait(&l->cv, &l->mu);
			continue;
		}
		if (sp_clock_ms() >= l->first_ms + FLUSH_MS) {
			(void)flush_locked(l, NULL);  /* logged there */
			continue;
		}
		sp_clock_abs(&ts, l->first_ms + FLUSH_MS);
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int sp_joblog_open_store(struct sp_joblog **out, struct sp_store *st, const char *data,
			 int64_t job, struct sp_error *err)
{
	struct sp_joblog *l;
	int e;

	if (!sp_store_has_logs(st))
		return sp_joblog_open(out, data, job, err);
	*out = NULL;
	l = sp_xcalloc(1, sizeof(*l));
	l->data = sp_xstrdup(data ? data : "");
	l->job = job;
	l->st = st;
	pthread_mutex_init(&l->mu, NULL);
	sp_cond_init_mono(&l->cv);
	if ((e = pthread_create(&l->flusher, NULL, flusher_main, l)) != 0) {
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
		free(l->data);
		free(l);
		return sp_error_set(err, SP_ERROR, "job %" PRId64 ": cannot start its log "
				    "writer: %s", job, strerror(e));
	}
	*out = l;
	return 0;
}

static struct joblog_chunk *stage_chunk(struct sp_joblog *l, const char *stage,
					struct sp_error *err)
{
	for (size_t i = 0; i < l->nchunks; i++)
		if (!strcmp(l->chunks[i].stage, stage))
			return &l->chunks[i];
	if (!stage_ok(stage)) {
		sp_error_set(err, SP_ERROR, "job %" PRId64 ": \"%.100s\" cannot name a log",
			     l->job, stage);
		return NULL;
	}
	if (l->nchunks >= MAX_FILES) {
		sp_error_set(err, SP_ETOOBIG, "job %" PRId64 ": more than %d logs", l->job,
			     MAX_FILES);
		return NULL;
	}
	SP_GROW(l->chunks, l->chunks_alloc, l->nchunks + 1);
	memset(&l->chunks[l->nchunks], 0, sizeof(l->chunks[l->nchunks]));
	l->chunks[l->nchunks].stage = sp_xstrdup(stage);
	sp_buf_init(&l->chunks[l->nchunks].buf, 0);
	return &l->chunks[l->nchunks++];
}

static int store_write(struct sp_joblog *l, const char *stage, const char *line, size_t len,
		       struct sp_error *err)
{
	struct joblog_chunk *c;
	size_t before;
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	if (!(c = stage_chunk(l, stage, err))) {
		rc = SP_ERROR;
		goto out;
	}
	/* a chunk stays under CHUNK_BYTES unless one line alone is bigger */
	if (l->buffered && l->buffered + len + 1 > CHUNK_BYTES)
		rc = flush_locked(l, err);
	before = c->buf.len;
	if (c->lost && !c->buf.len)
		sp_buf_addf(&c->buf, "[stagepipe: %" PRIu64 " log line%s lost here: %s]\n",
			    c->lost, c->lost == 1 ? "" : "s", c->why);
	sp_buf_add(&c->buf, line, len);
	sp_buf_addch(&c->buf, '\n');
	c->lines++;
	if (!l->buffered) {
		l->first_ms = sp_clock_ms();
		pthread_cond_signal(&l->cv);
	}
	l->buffered += c->buf.len - before;
	if (l->buffered >= CHUNK_BYTES) {
		int r2 = flush_locked(l, rc ? NULL : err);

		if (!rc)
			rc = r2;
	}
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

int sp_joblog_flush(struct sp_joblog *l, struct sp_error *err)
{
	int rc;

	if (!l || !l->st)
		return 0;
	pthread_mutex_lock(&l->mu);
	rc = flush_locked(l, err);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static void store_close(struct sp_joblog *l)
{
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->flusher, NULL);
	(void)flush_locked(l, NULL);  /* the thread is gone: mu is not needed */
	if (l->lost) {
		char q[300];

		sp_log_warn("job.log_lost", "job=%" PRId64 " lines=%" PRIu64 " error=%s", l->job,
			    l->lost, sp_log_quote(l->lost_why, q, sizeof(q)));
	}
	for (size_t i = 0; i < l->nchunks; i++) {
		free(l->chunks[i].stage);
		sp_buf_release(&l->chunks[i].buf);
	}
	free(l->chunks);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l->data);
	free(l);
}

/* ---- files ---- */

int sp_joblog_write(struct sp_joblog *l, const char *stage, const char *line, size_t len,
		    struct sp_error *err)
{
	struct joblog_file *f;
	int e;

	if (l->st)
		return store_write(l, stage, line, len, err);
	if (!(f = stage_file(l, stage, err)))
		return SP_ERROR;
	if (f->lost) {
		/* the note and the line go together or not at all, so that a
		 * disk still full gives one note for all the lines lost */
		struct sp_buf b = SP_BUF_INIT;

		sp_buf_addf(&b, "[stagepipe: %" PRIu64 " log line%s lost here: %s]\n", f->lost,
			    f->lost == 1 ? "" : "s", strerror(f->lost_errno));
		sp_buf_add(&b, line, len);
		e = append_line(f->fd, b.data, b.len);
		sp_buf_release(&b);
		if (e)
			goto lost;
		f->lost = 0;
		return 0;
	}
	if ((e = append_line(f->fd, line, len)) != 0)
		goto lost;
	return 0;
lost:
	f->lost++;
	f->lost_errno = e;
	l->lost++;
	l->lost_errno = e;
	return sp_error_set(err, SP_ERROR, "writing the log of job %" PRId64 " stage %s: %s "
			    "(the line is lost)", l->job, stage, strerror(e));
}

uint64_t sp_joblog_lost(const struct sp_joblog *l)
{
	uint64_t n;

	if (!l)
		return 0;
	if (!l->st)
		return l->lost;
	pthread_mutex_lock((pthread_mutex_t *)&l->mu);
	n = l->lost;
	pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
	return n;
}

void sp_joblog_close(struct sp_joblog *l)
{
	size_t i;

	if (!l)
		return;
	if (l->st) {
		store_close(l);
		return;
	}
	if (l->lost)
		sp_log_warn("job.log_lost", "job=%" PRId64 " lines=%" PRIu64 " error=\"%s\"",
			    l->job, l->lost, strerror(l->lost_errno));
	for (i = 0; i < l->n; i++) {
		(void)fsync(l->files[i].fd);
		(void)close(l->files[i].fd);
		free(l->files[i].stage);
	}
	free(l->files);
	free(l->data);
	free(l);
}

/* ---- readers ---------------------------------------------------------- */

struct sp_logread {
	struct sp_store *st;    /* store mode when set */
	char *stage;
	int64_t job;
	char path[4096];        /* file mode */
	int fd;                 /* -1 until the file exists */
	/* store mode: one window of the log, read ahead */
	char *win;
	uint64_t win_off;
	size_t win_len;
};

int sp_logread_open(struct sp_logread **out, struct sp_store *st, const char *data,
		    int64_t job, const char *stage, struct sp_error *err)
{
	struct sp_logread *r;

	*out = NULL;
	if (!stage_ok(stage))
		return sp_error_set(err, SP_ECONFIG, "bad stage name");
	r = sp_xcalloc(1, sizeof(*r));
	r->fd = -1;
	r->job = job;
	r->stage = sp_xstrdup(stage);
	if (sp_store_has_logs(st)) {
		r->st = st;
	} else if (sp_logs_path(r->path, sizeof(r->path), data, job, stage) < 0) {
		sp_logread_close(r);
		return sp_error_set(err, SP_ECONFIG, "bad stage name");
	}
	*out = r;
	return 0;
}

/* The file, opened on first need; false while it does not exist. */
static bool read_fd(struct sp_logread *r)
{
	if (r->fd < 0)
		r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
	return r->fd >= 0;
}

int sp_logread_size(struct sp_logread *r, uint64_t *size, struct sp_error *err)
{
	struct stat st;
	int64_t n;
	int rc;

	*size = 0;
	if (r->st) {
		if ((rc = sp_store_log_size(r->st, r->job, r->stage, &n, err)) < 0)
			return rc;
		*size = (uint64_t)n;
		return 0;
	}
	if (!read_fd(r))
		return sp_error_set(err, SP_ENOTFOUND, "no log for this stage yet");
	if (fstat(r->fd, &st) < 0)
		return sp_error_set(err, SP_ERROR, "%s: %s", r->path, strerror(errno));
	*size = (uint64_t)st.st_size;
	return 0;
}

int sp_logread_read(struct sp_logread *r, uint64_t off, char *buf, size_t max, size_t *n,
		    struct sp_error *err)
{
	ssize_t got;
	size_t have;
	int rc;

	*n = 0;
	if (!max)
		return 0;
	if (!r->st) {
		if (!read_fd(r))
			return 0;
		do
			got = pread(r->fd, buf, max, (off_t)off);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return sp_error_set(err, SP_ERROR, "%s: %s", r->path, strerror(errno));
		*n = (size_t)got;
		return 0;
	}
	if (off < r->win_off || off >= r->win_off + r->win_len) {
		/* a new window: the chunks it touches, one query */
		if (!r->win)
			r->win = sp_xmalloc(READ_WINDOW);
		r->win_len = 0;
		r->win_off = off;
		rc = sp_store_log_read(r->st, r->job, r->stage, (int64_t)off, r->win, READ_WINDOW,
				       &r->win_len, err);
		if (rc < 0)
			return rc;
	}
	if (off < r->win_off || off >= r->win_off + r->win_len)
		return 0;  /* nothing past off yet */
	have = (size_t)(r->win_off + r->win_len - off);
	*n = have < max ? have : max;
	memcpy(buf, r->win + (off - r->win_off), *n);
	return 0;
}

void sp_logread_close(struct sp_logread *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->win);
	free(r->stage);
	free(r);
}
