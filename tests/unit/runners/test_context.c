/*
 * test_context.c — the build context tar stream: a real folder (files,
 * empty folders, symlinks, a 200-character name, an executable, a fifo,
 * .dockerignore exclusions with an exception under an excluded folder) is
 * streamed through sp_context_read with odd read sizes, read back with
 * libarchive's reader and checked entry by entry; plus the listing, the
 * always-sent Dockerfile/.dockerignore, and the errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "runners/docker/context.h"
#include "tests/unit/support/testutil.h"

#define MTIME 1600000000
#define BIG_SIZE 200003u

/* ---- building folders ---- */

static char *tmpdir(void)
{
	char *dir = sp_test_tempdir("sp-context-");

	assert_int_equal(chmod(dir, 0755), 0);
	return dir;
}

static void set_mtime(const char *root, const char *rel)
{
	struct timespec ts[2] = { { MTIME, 0 }, { MTIME, 0 } };
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void put(const char *root, const char *rel, const void *data, size_t len, mode_t mode)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	set_mtime(root, rel);
}

static void putstr(const char *root, const char *rel, const char *s, mode_t mode)
{
	put(root, rel, s, strlen(s), mode);
}

static void mkd(const char *root, const char *rel, mode_t mode)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir(path, mode), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void lnk(const char *root, const char *rel, const char *target)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(symlink(target, path), 0);
	set_mtime(root, rel);
}

static unsigned char *big_content(void)
{
	unsigned char *b = malloc(BIG_SIZE);
	uint32_t x = 12345;
	size_t i;

	for (i = 0; i < BIG_SIZE; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (unsigned char)(x >> 16);
	}
	return b;
}

static char *long_name(void)
{
	static char name[201];

	memset(name, 'z', 196);
	memcpy(name + 196, ".txt", 5);
	return name; /* 200 characters */
}

static const char dockerignore_text[] =
	"# build junk\n*.log\nignored\nsecret\n!secret/keep.txt\nDockerfile\n.dockerignore\n";

/* The folder used by most tests. */
static char *make_tree(void)
{
	char *root = tmpdir();
	unsigned char *big = big_content();
	char path[1024];

	putstr(root, "Dockerfile", "FROM scratch\nCOPY . /\n", 0644);
	putstr(root, ".dockerignore", dockerignore_text, 0644);
	mkd(root, "app", 0755);
	putstr(root, "app/main.py", "print('hi')\n", 0644);
	putstr(root, "app/run.sh", "#!/bin/sh\necho hi\n", 0755);
	put(root, "big.bin", big, BIG_SIZE, 0600);
	lnk(root, "dangling", "does/not/exist");
	putstr(root, "debug.log", "noise\n", 0644);
	mkd(root, "empty", 0700);
	snprintf(path, sizeof(path), "%s/fifo", root);
	assert_int_equal(mkfifo(path, 0644), 0);
	mkd(root, "ignored", 0755);
	putstr(root, "ignored/x.txt", "x\n", 0644);
	lnk(root, "link", "app/main.py");
	putstr(root, long_name(), "long\n", 0644);
	mkd(root, "nested", 0755);
	mkd(root, "nested/a", 0755);
	mkd(root, "nested/a/b", 0751);
	mkd(root, "secret", 0755);
	putstr(root, "secret/keep.txt", "keep\n", 0640);
	putstr(root, "secret/drop.txt", "drop\n", 0644);
	mkd(root, "secret/sub", 0755);
	putstr(root, "secret/sub/deep.txt", "deep\n", 0644);
	/* folders last, so that creating their contents does not move their mtime */
	set_mtime(root, "nested/a/b");
	set_mtime(root, "nested/a");
	set_mtime(root, "nested");
	set_mtime(root, "empty");
	set_mtime(root, "app");
	free(big);
	return root;
}

/* ---- streaming and reading back ---- */

static int stream(const char *dir, const char *df, size_t rsize, struct sp_buf *out,
		  struct sp_context_counts *stats, struct sp_error *err)
{
	struct sp_context *ctx = NULL;
	char *buf = malloc(rsize);
	size_t n;
	int rc;

	sp_buf_init(out, 0);
	rc = sp_context_open(&ctx, dir, df, err);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	for (;;) {
		rc = sp_context_read(ctx, buf, rsize, &n, err);
		if (rc < 0)
			break;
		assert_true(n <= rsize);
		if (n == 0)
			break;
		sp_buf_add(out, buf, n);
	}
	if (stats)
		sp_context_get_counts(ctx, stats);
	sp_context_free(ctx);
	free(buf);
	return rc;
}

struct tentry {
	char *name;
	unsigned type;   /* AE_IFREG, AE_IFDIR, AE_IFLNK */
	unsigned perm;
	int64_t size, uid, gid;
	int named;       /* a uname or gname is set */
	time_t mtime;
	char *link;
	unsigned char *data;
};

struct tlist {
	struct tentry e[64];
	size_t n;
};

static void tar_parse(const struct sp_buf *tar, struct tlist *l)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;

	memset(l, 0, sizeof(*l));
	assert_non_null(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, tar->data, tar->len), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		struct tentry *t = &l->e[l->n++];

		assert_true(l->n < 64);
		t->name = strdup(archive_entry_pathname(ae));
		t->type = archive_entry_filetype(ae);
		t->perm = archive_entry_perm(ae);
		t->size = archive_entry_size(ae);
		t->uid = archive_entry_uid(ae);
		t->gid = archive_entry_gid(ae);
		t->named = (archive_entry_uname(ae) && *archive_entry_uname(ae)) ||
			   (archive_entry_gname(ae) && *archive_entry_gname(ae));
		t->mtime = archive_entry_mtime(ae);
		if (archive_entry_symlink(ae))
			t->link = strdup(archive_entry_symlink(ae));
		t->data = malloc((size_t)t->size + 1);
		assert_int_equal(archive_read_data(a, t->data, (size_t)t->size + 1), t->size);
	}
	assert_int_equal(archive_read_free(a), ARCHIVE_OK);
}

static void tlist_release(struct tlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->e[i].name);
		free(l->e[i].link);
		free(l->e[i].data);
	}
	l->n = 0;
}

struct want {
	const char *name;
	unsigned type;
	unsigned perm;
	const char *content; /* files: exact text, or NULL for big.bin; links: target */
};

static void check_entries(const struct tlist *l, const struct want *w, size_t nw)
{
	unsigned char *big = big_content();
	size_t i;

	for (i = 0; i < l->n && i < nw; i++)
		if (strcmp(l->e[i].name, w[i].name))
			fprintf(stderr, "entry %zu: got %s, want %s\n", i, l->e[i].name, w[i].name);
	assert_int_equal(l->n, nw);
	for (i = 0; i < nw; i++) {
		const struct tentry *t = &l->e[i];

		assert_string_equal(t->name, w[i].name);
		assert_int_equal(t->type, w[i].type);
		assert_int_equal(t->perm, w[i].perm);
		assert_int_equal(t->uid, 0);
		assert_int_equal(t->gid, 0);
		assert_false(t->named);
		assert_int_equal(t->mtime, MTIME);
		if (w[i].type == AE_IFREG && w[i].content) {
			assert_int_equal(t->size, strlen(w[i].content));
			assert_memory_equal(t->data, w[i].content, strlen(w[i].content));
		} else if (w[i].type == AE_IFREG) {
			assert_int_equal(t->size, BIG_SIZE);
			assert_memory_equal(t->data, big, BIG_SIZE);
		} else if (w[i].type == AE_IFLNK) {
			assert_non_null(t->link);
			assert_string_equal(t->link, w[i].content);
			assert_int_equal(t->size, 0);
		} else {
			assert_int_equal(t->size, 0);
		}
	}
	free(big);
}

static void test_stream_tree(void **state)
{
	static const size_t sizes[] = { 1, 7, 511, 4096, 65536 + 3, 1u << 20 };
	char *root = make_tree();
	char longname[256];
	struct sp_buf first = SP_BUF_INIT;
	struct want w[] = {
		{ ".dockerignore", AE_IFREG, 0644, dockerignore_text },
		{ "Dockerfile", AE_IFREG, 0644, "FROM scratch\nCOPY . /\n" },
		{ "app/", AE_IFDIR, 0755, NULL },
		{ "app/main.py", AE_IFREG, 0644, "print('hi')\n" },
		{ "app/run.sh", AE_IFREG, 0755, "#!/bin/sh\necho hi\n" },
		{ "big.bin", AE_IFREG, 0600, NULL },
		{ "dangling", AE_IFLNK, 0777, "does/not/exist" },
		{ "empty/", AE_IFDIR, 0700, NULL },
		{ "link", AE_IFLNK, 0777, "app/main.py" },
		{ "nested/", AE_IFDIR, 0755, NULL },
		{ "nested/a/", AE_IFDIR, 0755, NULL },
		{ "nested/a/b/", AE_IFDIR, 0751, NULL },
		{ "secret/keep.txt", AE_IFREG, 0640, "keep\n" },
		{ longname, AE_IFREG, 0644, "long\n" },
	};
	size_t i;

	(void)state;
	snprintf(longname, sizeof(longname), "%s", long_name());
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_context_counts st;
		struct sp_buf tar;
		struct tlist l;
		int rc = stream(root, NULL, sizes[i], &tar, &st, &err);

		if (rc)
			fprintf(stderr, "stream: %s\n", err.msg);
		assert_int_equal(rc, 0);
		/* whole 512-byte records, ending with two zero records */
		assert_int_equal(tar.len % 512, 0);
		assert_true(tar.len >= 1024);
		for (size_t k = tar.len - 1024; k < tar.len; k++)
			assert_int_equal(tar.data[k], 0);
		/* the same bytes whatever the read size */
		if (i == 0) {
			sp_buf_add(&first, tar.data, tar.len);
		} else {
			assert_int_equal(tar.len, first.len);
			assert_memory_equal(tar.data, first.data, first.len);
		}
		assert_int_equal(st.files, 7);
		assert_int_equal(st.dirs, 5);
		assert_int_equal(st.symlinks, 2);
		assert_int_equal(st.excluded, 5); /* debug.log ignored secret secret/drop.txt secret/sub */
		assert_int_equal(st.skipped, 1);  /* the fifo */
		assert_int_equal(st.bytes, strlen(dockerignore_text) + 22 + 12 + 18 + BIG_SIZE + 5 + 5);
		assert_int_equal(st.tar_bytes, tar.len);

		tar_parse(&tar, &l);
		check_entries(&l, w, sizeof(w) / sizeof(w[0]));
		tlist_release(&l);
		sp_buf_release(&tar);
	}
	sp_buf_release(&first);
	sp_test_rmtree(root);
	free(root);
}

/* ---- the listing walks the same way ---- */

struct collected {
	char names[64][256];
	uint64_t sizes[64];
	enum sp_context_type types[64];
	size_t n;
	size_t stop_after; /* 0: never */
};

static int collect(const char *path, uint64_t size, enum sp_context_type type, void *ud)
{
	struct collected *c = ud;

	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", path);
	c->sizes[c->n] = size;
	c->types[c->n] = type;
	c->n++;
	if (c->stop_after && c->n == c->stop_after)
		return -42;
	return 1; /* positive: go on */
}

static void test_list(void **state)
{
	char *root = make_tree();
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context_counts st;
	struct collected *c = calloc(1, sizeof(*c));

	(void)state;
	assert_int_equal(sp_context_list(root, "Dockerfile", collect, c, &st, &err), 0);
	assert_int_equal(c->n, 14);
	assert_string_equal(c->names[0], ".dockerignore");
	assert_string_equal(c->names[2], "app");
	assert_int_equal(c->types[2], SP_CONTEXT_DIR);
	assert_string_equal(c->names[5], "big.bin");
	assert_int_equal(c->sizes[5], BIG_SIZE);
	assert_int_equal(c->types[6], SP_CONTEXT_SYMLINK);
	assert_string_equal(c->names[11], "nested/a/b");
	assert_string_equal(c->names[12], "secret/keep.txt");
	assert_string_equal(c->names[13], long_name());
	assert_int_equal(st.files, 7);
	assert_int_equal(st.dirs, 5);
	assert_int_equal(st.symlinks, 2);
	assert_int_equal(st.excluded, 5);
	assert_int_equal(st.skipped, 1);
	assert_int_equal(st.bytes, strlen(dockerignore_text) + 22 + 12 + 18 + BIG_SIZE + 5 + 5);

	/* a negative callback value stops the walk and comes back */
	memset(c, 0, sizeof(*c));
	c->stop_after = 3;
	assert_int_equal(sp_context_list(root, NULL, collect, c, NULL, &err), -42);
	assert_int_equal(c->n, 3);

	free(c);
	sp_test_rmtree(root);
	free(root);
}

/* ---- the Dockerfile and .dockerignore are sent even when matched ---- */

static void test_build_files_always_sent(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context_counts st;
	struct sp_context *ctx = NULL;
	struct sp_buf tar;
	struct tlist l;
	char *root = tmpdir();

	(void)state;
	putstr(root, "Dockerfile", "FROM scratch\n", 0644);
	putstr(root, ".dockerignore", "*\n", 0644);
	putstr(root, "a.txt", "a\n", 0644);
	mkd(root, "sub", 0755);
	putstr(root, "sub/b.txt", "b\n", 0644);
	assert_int_equal(stream(root, NULL, 100, &tar, &st, &err), 0);
	tar_parse(&tar, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.e[0].name, ".dockerignore");
	assert_string_equal(l.e[1].name, "Dockerfile");
	assert_int_equal(st.excluded, 2);
	tlist_release(&l);
	sp_buf_release(&tar);
	sp_test_rmtree(root);
	free(root);

	/* a Dockerfile inside an excluded folder: the folder is walked for it alone */
	root = tmpdir();
	putstr(root, ".dockerignore", "docker\n.dockerignore\n", 0644);
	mkd(root, "docker", 0755);
	putstr(root, "docker/Dockerfile.ci", "FROM scratch\n", 0644);
	putstr(root, "docker/other.txt", "o\n", 0644);
	putstr(root, "x.txt", "x\n", 0644);
	assert_int_equal(stream(root, "./docker//Dockerfile.ci", 7, &tar, &st, &err), 0);
	tar_parse(&tar, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.e[0].name, ".dockerignore");
	assert_string_equal(l.e[1].name, "docker/Dockerfile.ci");
	assert_string_equal(l.e[2].name, "x.txt");
	assert_int_equal(st.excluded, 2); /* docker, docker/other.txt */
	tlist_release(&l);
	sp_buf_release(&tar);

	assert_int_equal(sp_context_open(&ctx, root, "./docker//Dockerfile.ci", &err), 0);
	assert_string_equal(sp_context_dockerfile(ctx), "docker/Dockerfile.ci");
	sp_context_free(ctx);
	sp_test_rmtree(root);
	free(root);
}

/* ---- errors ---- */

static void test_open_errors(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context *ctx = (struct sp_context *)&err;
	char *root = tmpdir();
	char missing[600];

	(void)state;
	snprintf(missing, sizeof(missing), "%s/nope", root);
	assert_int_equal(sp_context_open(&ctx, missing, NULL, &err), SP_ENOTFOUND);
	assert_null(ctx);
	assert_non_null(strstr(err.msg, missing));

	/* no Dockerfile */
	assert_int_equal(sp_context_open(&ctx, root, NULL, &err), SP_ENOTFOUND);
	assert_non_null(strstr(err.msg, "Dockerfile"));

	putstr(root, "Dockerfile", "FROM scratch\n", 0644);
	assert_int_equal(sp_context_open(&ctx, root, "../Dockerfile", &err), SP_ECONFIG);
	assert_int_equal(sp_context_open(&ctx, root, "/etc/passwd", &err), SP_ECONFIG);
	assert_int_equal(sp_context_open(&ctx, root, "./", &err), SP_ECONFIG);
	mkd(root, "d", 0755);
	assert_int_equal(sp_context_open(&ctx, root, "d", &err), SP_ECONFIG);

	/* a .dockerignore error, with its line */
	putstr(root, ".dockerignore", "ok\n!\n", 0644);
	assert_int_equal(sp_context_open(&ctx, root, NULL, &err), SP_ECONFIG);
	assert_non_null(strstr(err.msg, ".dockerignore:2: illegal exclusion pattern"));
	assert_int_equal(sp_context_list(root, NULL, collect, NULL, NULL, &err), SP_ECONFIG);
	assert_null(ctx);

	sp_test_rmtree(root);
	free(root);
}

/* In a child that cannot read "secret.txt": 0 when the error names it. */
static int unreadable_child(const char *root)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context *ctx = NULL;
	char buf[4096];
	size_t n;
	int rc;

	if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
		return 10;
	if (sp_context_open(&ctx, root, NULL, &err) != 0)
		return 11;
	do
		rc = sp_context_read(ctx, buf, sizeof(buf), &n, &err);
	while (rc == 0 && n > 0);
	sp_context_free(ctx);
	if (rc != SP_ERROR)
		return 12;
	if (!strstr(err.msg, "secret.txt") || !strstr(err.msg, strerror(EACCES)))
		return 13;
	return 0;
}

static void test_unreadable_file(void **state)
{
	char *root = tmpdir();
	int status = -1;
	pid_t pid;

	(void)state;
	putstr(root, "Dockerfile", "FROM scratch\n", 0644);
	putstr(root, "secret.txt", "s\n", 0000);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unreadable_child(root));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	sp_test_rmtree(root);
	free(root);
}

static void test_file_shrinks(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context *ctx = NULL;
	struct sp_context_counts st;
	unsigned char *big = big_content();
	char *root = tmpdir(), path[600], buf[4096];
	size_t n;
	int rc, truncated = 0;

	(void)state;
	putstr(root, "Dockerfile", "FROM scratch\n", 0644);
	put(root, "z.bin", big, BIG_SIZE, 0644);
	snprintf(path, sizeof(path), "%s/z.bin", root);
	assert_int_equal(sp_context_open(&ctx, root, NULL, &err), 0);
	for (;;) {
		rc = sp_context_read(ctx, buf, sizeof(buf), &n, &err);
		if (rc < 0 || n == 0)
			break;
		sp_context_get_counts(ctx, &st);
		if (!truncated && st.bytes > 13) { /* into z.bin's data */
			assert_int_equal(truncate(path, 1000), 0);
			truncated = 1;
		}
	}
	assert_true(truncated);
	assert_int_equal(rc, SP_ERROR);
	assert_non_null(strstr(err.msg, "z.bin"));
	assert_non_null(strstr(err.msg, "shrank"));
	/* the error sticks */
	sp_error_clear(&err);
	assert_int_equal(sp_context_read(ctx, buf, sizeof(buf), &n, &err), SP_ERROR);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err.msg, "z.bin"));
	sp_context_free(ctx);
	free(big);
	sp_test_rmtree(root);
	free(root);
}

/* Freeing a context half-way closes everything (ASan/LSan check the rest). */
static void test_free_midway(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_context *ctx = NULL;
	char *root = make_tree();
	char buf[1000];
	size_t n;

	(void)state;
	assert_int_equal(sp_context_open(&ctx, root, NULL, &err), 0);
	assert_int_equal(sp_context_read(ctx, buf, sizeof(buf), &n, &err), 0);
	assert_int_equal(n, sizeof(buf));
	sp_context_free(ctx);
	sp_context_free(NULL);
	sp_test_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_tree),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_build_files_always_sent),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_file_shrinks),
		cmocka_unit_test(test_free_midway),
	};

	return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
