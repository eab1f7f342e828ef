/*
 * artifacts.c — a job's artifacts kept by the server: DATA/artifacts/<job>/.
 *
 * A job's child `stagepipe run` is given --artifacts DATA/artifacts/<job>
 * (emptied before each attempt) and --artifacts-max-bytes from the
 * config's artifacts_max, so the files land there as <stage>/<path>,
 * extracted by the safe untar (core/report/untar.h): nothing outside the
 * folder, links only within it.
 *
 * The API lists them (GET /api/jobs/ID/artifacts: path and size of every
 * file, sorted) and serves one (GET /api/jobs/ID/artifacts/<stage>/<path>).
 * The path is walked component by component with openat(O_NOFOLLOW): a
 * symlink, "." / ".." or an empty component is refused, so a request can
 * never leave the job's folder whatever the folder holds.  A file is sent
 * as application/octet-stream with Content-Disposition: attachment and a
 * sandbox CSP: artifacts are written by the code under test (an HTML
 * coverage report may hold anything) and must never run as a page of the
 * server's own origin, next to the UI's login cookie.
 */
#define _GNU_SOURCE
#include "core/server/server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"
#include "core/server/http_internal.h"

#define LIST_MAX 100000  /* files listed at most */
#define DEPTH_MAX 64
#define CHUNK (64 * 1024)

int sp_artifacts_dir(char *buf, size_t len, const char *data, int64_t job)
{
	int w = snprintf(buf, len, "%s/artifacts/%" PRId64, data, job);

	if (w < 0 || (size_t)w >= len) {
		if (len)
			buf[0] = '\0';
		return -1;
	}
	return 0;
}

int sp_artifacts_reset(const char *data, int64_t job, char *buf, size_t len,
		       struct sp_error *err)
{
	char top[4096];

	if (sp_artifacts_dir(buf, len, data, job) < 0 ||
	    snprintf(top, sizeof(top), "%s/artifacts", data) >= (int)sizeof(top))
		return sp_error_set(err, SP_ERROR, "job %" PRId64 ": artifacts path too long", job);
	if (mkdir(top, 0750) < 0 && errno != EEXIST)
		return sp_error_set(err, SP_ERROR, "creating %s: %s", top, strerror(errno));
	if (sp_fs_rmtree(buf, err) < 0)
		return sp_error_prefix(err, "emptying the artifacts of job %" PRId64, job);
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return sp_error_set(err, SP_ERROR, "creating %s: %s", buf, strerror(errno));
	return 0;
}

/* ---- listing ------------------------------------------------------------- */

struct lister {
	cJSON *arr;
	size_t n;
	uint64_t total;
	struct sp_buf path;
};

static int walk(struct lister *l, int dfd, int depth, struct sp_error *err)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(dfd);
		return sp_error_set(err, SP_ERROR, "reading %s: %s", l->path.data, strerror(errno));
	}
	while (rc == 0 && (de = readdir(d))) {
		struct stat st;
		size_t mark = l->path.len;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;  /* gone meanwhile */
		if (mark)
			sp_buf_addch(&l->path, '/');
		sp_buf_addstr(&l->path, de->d_name);
		if (S_ISDIR(st.st_mode) && depth < DEPTH_MAX) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				rc = walk(l, sub, depth + 1, err);
		} else if (S_ISREG(st.st_mode)) {
			cJSON *o;
			if (++l->n > LIST_MAX) {
				rc = sp_error_set(err, SP_ETOOBIG, "more than %d artifacts", LIST_MAX);
			} else {
				o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "path", l->path.data);
				cJSON_AddNumberToObject(o, "size", (double)st.st_size);
				cJSON_AddItemToArray(l->arr, o);
				l->total += (uint64_t)st.st_size;
			}
		}
		l->path.len = mark;
		l->path.data[mark] = '\0';
	}
	closedir(d);
	return rc;
}

static int by_path(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

	return strcmp(cJSON_GetObjectItemCaseSensitive(x, "path")->valuestring,
		      cJSON_GetObjectItemCaseSensitive(y, "path")->valuestring);
}

int sp_artifacts_list(const char *dir, cJSON **out, uint64_t *total, struct sp_error *err)
{
	struct lister l;
	cJSON **items = NULL, *it, *sorted;
	size_t i, n = 0;
	int fd, rc;

	*out = NULL;
	*total = 0;
	memset(&l, 0, sizeof(l));
	l.arr = cJSON_CreateArray();
	sp_buf_init(&l.path, 0);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : sp_error_set(err, SP_ERROR, "%s: %s", dir, strerror(errno));
		goto out;  /* no folder: no artifacts */
	}
	if ((rc = walk(&l, fd, 0, err)) < 0)
		goto out;
	items = sp_xcalloc(l.n + 1, sizeof(*items));
	cJSON_ArrayForEach(it, l.arr)
		items[n++] = it;
	qsort(items, n, sizeof(*items), by_path);
	sorted = cJSON_CreateArray();
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(sorted, cJSON_DetachItemViaPointer(l.arr, items[i]));
	*out = sorted;
	*total = l.total;
out:
	if (!*out)
		*out = cJSON_CreateArray();
	free(items);
	cJSON_Delete(l.arr);
	sp_buf_release(&l.path);
	return rc;
}

/* ---- one file ------------------------------------------------------------ */

int sp_artifacts_open(const char *dir, const char *rel, int *out, uint64_t *size,
		      struct sp_error *err)
{
	const char *p = rel;
	int fd, next, rc = 0;
	struct stat st;

	*out = -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sp_error_set(err, SP_ENOTFOUND, "no artifacts");
	for (;;) {
		size_t n = strcspn(p, "/");
		char name[256];
		bool last = p[n] == '\0';

		if (n == 0 || n >= sizeof(name) || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			rc = sp_error_set(err, SP_ECONFIG, "bad artifact path");
			break;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		next = openat(fd, name, (last ? O_RDONLY : O_RDONLY | O_DIRECTORY) |
			      O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		close(fd);
		fd = next;
		if (fd < 0) {
			rc = sp_error_set(err, SP_ENOTFOUND, "no such artifact");
			break;
		}
		if (last)
			break;
		p += n + 1;
	}
	if (rc == 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)))
		rc = sp_error_set(err, SP_ENOTFOUND, "no such artifact");
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*out = fd;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* ---- uploads (agents) ---------------------------------------------------- */

bool sp_artifacts_rel_ok(const char *rel)
{
	const char *p = rel;
	size_t len = strlen(rel);

	if (!len || len > 1024)
		return false;
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			return false;
	p = rel;
	for (;;) {
		size_t n = strcspn(p, "/");

		if (n == 0 || n > 255 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

int sp_artifacts_tmpfile(const char *data, char *path, size_t len, int *fd, struct sp_error *err)
{
	char top[4096];

	*fd = -1;
	if (snprintf(top, sizeof(top), "%s/artifacts", data) >= (int)sizeof(top) ||
	    snprintf(path, len, "%s/.tmp", top) >= (int)len)
		return sp_error_set(err, SP_ERROR, "artifacts path too long");
	if ((mkdir(top, 0750) < 0 && errno != EEXIST) || (mkdir(path, 0750) < 0 && errno != EEXIST))
		return sp_error_set(err, SP_ERROR, "creating %s: %s", path, strerror(errno));
	if (snprintf(path, len, "%s/.tmp/upload-XXXXXX", top) >= (int)len)
		return sp_error_set(err, SP_ERROR, "artifacts path too long");
	*fd = mkostemp(path, O_CLOEXEC);
	if (*fd < 0)
		return sp_error_set(err, SP_ERROR, "creating a file in %s/.tmp: %s", top, strerror(errno));
	return 0;
}

int sp_artifacts_place(const char *dir, const char *rel, const char *tmp, struct sp_error *err)
{
	const char *p = rel;
	int fd, next, rc = 0;

	if (!sp_artifacts_rel_ok(rel))
		return sp_error_set(err, SP_ECONFIG, "bad artifact path");
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return sp_error_set(err, SP_ERROR, "creating %s: %s", dir, strerror(errno));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sp_error_set(err, SP_ERROR, "%s: %s", dir, strerror(errno));
	for (;;) {
		size_t n = strcspn(p, "/");
		char name[256];

		memcpy(name, p, n);
		name[n] = '\0';
		if (!p[n]) {
			/* the file itself: never through or onto a symlink (rename
			 * replaces a link by the file, it does not follow it) */
			if (renameat(AT_FDCWD, tmp, fd, name) < 0)
				rc = sp_error_set(err, SP_ERROR, "placing %s: %s", rel, strerror(errno));
			break;
		}
		if (mkdirat(fd, name, 0750) < 0 && errno != EEXIST) {
			rc = sp_error_set(err, SP_ERROR, "creating the folders of %s: %s", rel,
					  strerror(errno));
			break;
		}
		next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			rc = sp_error_set(err, SP_ECONFIG, "%s: a folder on the way is not a folder", rel);
			break;
		}
		close(fd);
		fd = next;
		p += n + 1;
	}
	close(fd);
	return rc;
}

/* ---- HTTP ---------------------------------------------------------------- */

struct file_stream {
	int fd;
};

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct file_stream *fs = cls;
	ssize_t n;

	do
		n = pread(fs->fd, buf, max, (off_t)pos);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void file_free(void *cls)
{
	struct file_stream *fs = cls;

	close(fs->fd);
	free(fs);
}

enum MHD_Result sp_artifacts_get(struct sp_req *r, int64_t job, const char *rel)
{
	struct sp_error err = SP_ERROR_INIT;
	struct MHD_Response *resp;
	struct file_stream *fs;
	char dir[4096], cd[400];
	const char *base;
	cJSON *j = NULL, *list = NULL;
	uint64_t total = 0, size = 0;
	int fd, rc;

	if ((rc = sp_store_job_get(r->h->srv->store, job, &j, &err)) < 0) {
		if (rc == SP_ENOTFOUND)
			return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "no such job");
		return sp_http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store unavailable");
	}
	cJSON_Delete(j);
	if (sp_artifacts_dir(dir, sizeof(dir), r->h->srv->cfg->data, job) < 0)
		return sp_http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "path too long");
	if (!rel || !*rel) {
		if (sp_artifacts_list(dir, &list, &total, &err) < 0) {
			cJSON_Delete(list);
			return sp_http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
		}
		j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "job", (double)job);
		cJSON_AddNumberToObject(j, "bytes", (double)total);
		cJSON_AddItemToObject(j, "artifacts", list);
		return sp_http_reply_json(r, MHD_HTTP_OK, j);
	}
	rc = sp_artifacts_open(dir, rel, &fd, &size, &err);
	if (rc == SP_ECONFIG)
		return sp_http_reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", err.msg);
	if (rc < 0)
		return sp_http_reply_error(r, MHD_HTTP_NOT_FOUND, "%s", err.msg);
	fs = sp_xcalloc(1, sizeof(*fs));
	fs->fd = fd;
	resp = MHD_create_response_from_callback(size, CHUNK, file_read, fs, file_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Content-Security-Policy", "sandbox; default-src 'none'");
	base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	/* the name as a token: anything unusual becomes '_' */
	snprintf(cd, sizeof(cd), "attachment; filename=\"%.300s\"", base);
	for (char *c = cd + 22; *c && c[1]; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_'))
			*c = '_';
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
	return sp_http_reply(r, MHD_HTTP_OK, resp);
}
