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

#include "core/base/error.h"
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
		   "0123456789_.-[]");
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
};

struct sp_joblog {
	char *data;
	int64_t job;
	struct joblog_file *files;
	size_t n, alloc;
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

/* The open fd of stage's file (opened on first use), or a negative code. */
static int stage_fd(struct sp_joblog *l, const char *stage, struct sp_error *err)
{
	char path[4096];
	size_t i;
	int fd;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->files[i].stage, stage))
			return l->files[i].fd;
	if (sp_logs_path(path, sizeof(path), l->data, l->job, stage) < 0)
		return sp_error_set(err, SP_ERROR, "job %" PRId64 ": \"%.100s\" cannot name a log "
				    "file", l->job, stage);
	if (l->n >= MAX_FILES)
		return sp_error_set(err, SP_ETOOBIG, "job %" PRId64 ": more than %d log files",
				    l->job, MAX_FILES);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return sp_error_set(err, SP_ERROR, "cannot open %s: %s", path, strerror(errno));
	SP_GROW(l->files, l->alloc, l->n + 1);
	l->files[l->n].stage = sp_xstrdup(stage);
	l->files[l->n].fd = fd;
	l->n++;
	return fd;
}

int sp_joblog_write(struct sp_joblog *l, const char *stage, const char *line, size_t len,
		    struct sp_error *err)
{
	static const char nl = '\n';
	struct iovec iov[2];
	size_t total = len + 1, done = 0;
	int fd = stage_fd(l, stage, err);

	if (fd < 0)
		return fd;
	/* one writev for the line and its newline: readers of a growing file
	 * rarely see half a line, and never another line inside one */
	while (done < total) {
		ssize_t n;
		int cnt = 0;

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
			return sp_error_set(err, SP_ERROR, "writing the log of job %" PRId64
					    " stage %s: %s", l->job, stage, strerror(errno));
		}
		done += (size_t)n;
	}
	return 0;
}

void sp_joblog_close(struct sp_joblog *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++) {
		(void)fsync(l->files[i].fd);
		(void)close(l->files[i].fd);
		free(l->files[i].stage);
	}
	free(l->files);
	free(l->data);
	free(l);
}
