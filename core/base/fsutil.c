/*
 * fsutil.c — temporary folders, recursive removal, small files, atomic
 * writes; see fsutil.h.
 */
#define _XOPEN_SOURCE 700
#include "core/base/fsutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

int sp_fs_tempdir(char **out, const char *prefix, struct sp_error *err)
{
	const char *tmp = getenv("TMPDIR");
	char *path = sp_xasprintf("%s/%sXXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);

	*out = NULL;
	if (!mkdtemp(path)) {
		int rc = sp_error_set(err, SP_ERROR, "cannot create a folder %s: %s", path,
				      strerror(errno));
		free(path);
		return rc;
	}
	*out = path;
	return 0;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int sp_fs_rmtree(const char *path, struct sp_error *err)
{
	if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return sp_error_set(err, SP_ERROR, "cannot remove %s: %s", path, strerror(errno));
	return 0;
}

char *sp_fs_read_small(const char *path)
{
	FILE *f = fopen(path, "r");
	struct sp_buf b;
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	sp_buf_init(&b, 1024 * 1024);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (sp_buf_add(&b, chunk, n) < 0)
			break;
	fclose(f);
	return sp_buf_detach(&b, NULL);
}

int sp_fs_write_atomic(const char *path, const void *data, size_t len, unsigned int mode,
		       bool durable, struct sp_error *err)
{
	char *tmp = sp_xasprintf("%s.XXXXXX", path);
	const char *p = data;
	size_t off = 0;
	int fd, rc = 0;

	if ((fd = mkstemp(tmp)) < 0) {
		free(tmp);
		return sp_error_set(err, SP_ERROR, "cannot write %s: %s", path, strerror(errno));
	}
	while (off < len) {
		ssize_t k = write(fd, p + off, len - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			goto fail;
		off += (size_t)k;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || (durable && fsync(fd) < 0))
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return 0;
fail:
	rc = sp_error_set(err, SP_ERROR, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	free(tmp);
	return rc;
}
