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
 */
#define _GNU_SOURCE
#include "core/server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"

#define STAGE_NAME_MAX 100
/* More distinct stages than this in one job is a bug, not a pipeline. */
#define MAX_FILES 256

int sp_logs_path(char *buf, size_t len, const char *data, int64_t job, const char *stage)
{
	size_t n;
	int w;

	if (len)
		buf[0] = '\0';
	if (!stage || !data)
		return -1;
	n = strspn(stage, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789_.-[]+,");
	if (n == 0 || n > STAGE_NAME_MAX || stage[n] != '\0' || stage[0] == '.')
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

struct sp_joblog {
	char *data;
	int64_t job;
	struct joblog_file *files;
	size_t n, alloc;
	uint64_t lost;          /* lines lost in all its files */
	int lost_errno;
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

int sp_joblog_write(struct sp_joblog *l, const char *stage, const char *line, size_t len,
		    struct sp_error *err)
{
	struct joblog_file *f = stage_file(l, stage, err);
	int e;

	if (!f)
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
	return l ? l->lost : 0;
}

void sp_joblog_close(struct sp_joblog *l)
{
	size_t i;

	if (!l)
		return;
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
