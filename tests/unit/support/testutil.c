/*
 * testutil.c — helpers the unit tests share; see testutil.h.
 */
#include "tests/unit/support/testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"
#include "core/store/store.h"

char *sp_test_fixture_path(const char *set, const char *name)
{
	const char *dir = getenv("SP_FIXTURES");

	return sp_xasprintf("%s/%s/%s", dir && *dir ? dir : "tests/fixtures", set, name);
}

char *sp_test_read_stream(FILE *f, size_t *len)
{
	struct sp_buf b = SP_BUF_INIT;
	char chunk[16384];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sp_buf_add(&b, chunk, n);
	return sp_buf_detach(&b, len);
}

char *sp_test_read_fixture(const char *set, const char *name, size_t *len)
{
	char *path = sp_test_fixture_path(set, name), *data;
	FILE *f = fopen(path, "rb");

	if (!f)
		fail_msg("cannot open fixture %s (set SP_FIXTURES)", path);
	data = sp_test_read_stream(f, len);
	fclose(f);
	free(path);
	return data;
}

char *sp_test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	data = sp_test_read_stream(f, len);
	fclose(f);
	return data;
}

void sp_test_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

struct sp_store *sp_test_store_open(const char *dir)
{
	struct sp_store_opts o = { 0 };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store *st = NULL;
	char *db = sp_xasprintf("%s/stagepipe.db", dir);

	o.path = db;
	if (sp_store_open_sqlite(&st, &o, &err) < 0)
		fail_msg("store %s: %s", db, err.msg);
	free(db);
	return st;
}

char *sp_test_tempdir(const char *prefix)
{
	struct sp_error err = SP_ERROR_INIT;
	char *dir;

	if (sp_fs_tempdir(&dir, prefix, &err) < 0)
		fail_msg("%s", err.msg);
	return dir;
}

/* Best effort, depth first; sp_test_rmtree checks what is left. */
static void remove_tree(const char *path)
{
	struct stat sb;
	struct dirent *de;
	DIR *d;

	if (lstat(path, &sb) < 0)
		return;
	if (!S_ISDIR(sb.st_mode)) {
		(void)unlink(path);
		return;
	}
	(void)chmod(path, 0700);
	d = opendir(path);
	while (d && (de = readdir(d)) != NULL) {
		char *sub;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = sp_xasprintf("%s/%s", path, de->d_name);
		remove_tree(sub);
		free(sub);
	}
	if (d)
		closedir(d);
	(void)rmdir(path);
}

void sp_test_rmtree(const char *path)
{
	struct stat sb;

	remove_tree(path);
	if (lstat(path, &sb) == 0 || errno != ENOENT)
		fail_msg("cannot remove %s", path);
}

const char *sp_test_env(const char *name, void *ud)
{
	const char *const *e;
	size_t n = strlen(name);

	for (e = ud; *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

uint32_t sp_test_rand(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

int sp_test_under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") != NULL;
}
