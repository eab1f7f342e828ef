/*
 * test_artifacts.c — a job's artifacts on the server (core/server/
 * artifacts.c): the folder per job and its reset, the sorted listing that
 * leaves links out, opening a file without ever following a link or
 * climbing out, the upload path rule, and placing an upload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"
#include "core/server/server.h"

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_folder_list_open(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *data = NULL, dir[4096], path[4200], buf[64];
	cJSON *list = NULL;
	uint64_t total = 0, size = 0;
	int fd = -1;
	ssize_t n;

	(void)state;
	assert_int_equal(sp_fs_tempdir(&data, "sp-art-", &err), 0);
	assert_int_equal(sp_artifacts_reset(data, 7, dir, sizeof(dir), &err), 0);
	snprintf(path, sizeof(path), "%s/artifacts/7", data);
	assert_string_equal(dir, path);
	/* an empty (or missing) folder lists nothing */
	assert_int_equal(sp_artifacts_list(dir, &list, &total, &err), 0);
	assert_int_equal(cJSON_GetArraySize(list), 0);
	cJSON_Delete(list);

	snprintf(path, sizeof(path), "%s/test", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/test/htmlcov", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/test/htmlcov/index.html", dir);
	put(path, "<h1>");
	snprintf(path, sizeof(path), "%s/test/b.txt", dir);
	put(path, "bb");
	snprintf(path, sizeof(path), "%s/test/link", dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	snprintf(path, sizeof(path), "%s/test/dirlink", dir);
	assert_int_equal(symlink("/etc", path), 0);
	assert_int_equal(sp_artifacts_list(dir, &list, &total, &err), 0);
	assert_int_equal(cJSON_GetArraySize(list), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "path")->valuestring,
			    "test/b.txt");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "path")->valuestring,
			    "test/htmlcov/index.html");
	assert_int_equal(total, 6);
	cJSON_Delete(list);

	assert_int_equal(sp_artifacts_open(dir, "test/htmlcov/index.html", &fd, &size, &err), 0);
	n = read(fd, buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_int_equal(size, 4);
	close(fd);
	assert_int_equal(sp_artifacts_open(dir, "test/link", &fd, &size, &err), SP_ENOTFOUND);
	assert_int_equal(sp_artifacts_open(dir, "test/dirlink/passwd", &fd, &size, &err), SP_ENOTFOUND);
	assert_int_equal(sp_artifacts_open(dir, "test/htmlcov", &fd, &size, &err), SP_ENOTFOUND);
	assert_int_equal(sp_artifacts_open(dir, "test/../test/b.txt", &fd, &size, &err), SP_ECONFIG);
	assert_int_equal(sp_artifacts_open(dir, "test//b.txt", &fd, &size, &err), SP_ECONFIG);
	assert_int_equal(sp_artifacts_open(dir, "./test/b.txt", &fd, &size, &err), SP_ECONFIG);
	assert_int_equal(sp_artifacts_open(dir, "", &fd, &size, &err), SP_ECONFIG);
	assert_int_equal(sp_artifacts_open(dir, "nope", &fd, &size, &err), SP_ENOTFOUND);

	/* a new attempt starts empty */
	assert_int_equal(sp_artifacts_reset(data, 7, dir, sizeof(dir), &err), 0);
	assert_int_equal(sp_artifacts_list(dir, &list, &total, &err), 0);
	assert_int_equal(cJSON_GetArraySize(list), 0);
	cJSON_Delete(list);
	assert_int_equal(sp_fs_rmtree(data, &err), 0);
	free(data);
}

static void test_upload(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	char *data = NULL, dir[4096], tmp[4096], path[4200];
	uint64_t size = 0;
	int fd = -1;

	(void)state;
	assert_true(sp_artifacts_rel_ok("test/htmlcov/index.html"));
	assert_true(sp_artifacts_rel_ok("a..b/.c"));
	assert_false(sp_artifacts_rel_ok(""));
	assert_false(sp_artifacts_rel_ok("/etc/x"));
	assert_false(sp_artifacts_rel_ok("a/"));
	assert_false(sp_artifacts_rel_ok("a//b"));
	assert_false(sp_artifacts_rel_ok("a/./b"));
	assert_false(sp_artifacts_rel_ok("a/../../b"));
	assert_false(sp_artifacts_rel_ok("a\\b"));
	assert_false(sp_artifacts_rel_ok("a\nb"));

	assert_int_equal(sp_fs_tempdir(&data, "sp-art-", &err), 0);
	assert_int_equal(sp_artifacts_reset(data, 3, dir, sizeof(dir), &err), 0);
	assert_int_equal(sp_artifacts_tmpfile(data, tmp, sizeof(tmp), &fd, &err), 0);
	assert_int_equal(write(fd, "wheel", 5), 5);
	close(fd);
	assert_int_equal(sp_artifacts_place(dir, "make/dist/app.whl", tmp, &err), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(sp_artifacts_open(dir, "make/dist/app.whl", &fd, &size, &err), 0);
	assert_int_equal(size, 5);
	close(fd);
	/* a symlink planted on the way is not followed */
	snprintf(path, sizeof(path), "%s/evil", dir);
	assert_int_equal(symlink(data, path), 0);
	assert_int_equal(sp_artifacts_tmpfile(data, tmp, sizeof(tmp), &fd, &err), 0);
	close(fd);
	assert_int_equal(sp_artifacts_place(dir, "evil/x", tmp, &err), SP_ECONFIG);
	snprintf(path, sizeof(path), "%s/x", data);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(sp_artifacts_place(dir, "../x", tmp, &err), SP_ECONFIG);
	unlink(tmp);
	assert_int_equal(sp_fs_rmtree(data, &err), 0);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folder_list_open),
		cmocka_unit_test(test_upload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
