/*
 * test_untar.c — safe extraction of untrusted tar streams.
 *
 * Archives are built in memory with libarchive's writer (as a hostile
 * container could shape them) and pulled through the read callback in
 * random-sized pieces.  Each test extracts into BASE/dest next to an empty
 * BASE/outside, and afterwards checks that BASE still holds exactly those
 * two folders and that outside is still empty: nothing may land anywhere
 * but dest.  The real archive ($SP_FIXTURES/docker/archive-reports.tar) is
 * what GET /containers/{id}/archive?path=/tmp/r answered on dockerd 20.10.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/report/untar.h"
#include "core/base/xalloc.h"
#include "tests/unit/support/testutil.h"

/* ---- archives in memory -------------------------------------------------- */

struct tarb {
	struct archive *a;
	struct sp_buf out;
};

static la_ssize_t tar_write_cb(struct archive *a, void *ud, const void *buf, size_t n)
{
	(void)a;
	sp_buf_add(ud, buf, n);
	return (la_ssize_t)n;
}

static void tar_begin(struct tarb *t)
{
	sp_buf_init(&t->out, 0);
	t->a = archive_write_new();
	assert_non_null(t->a);
	assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_none(t->a), ARCHIVE_OK);
	/* No padding after the end marker: the stream is exactly the archive. */
	assert_int_equal(archive_write_set_bytes_in_last_block(t->a, 1), ARCHIVE_OK);
	assert_int_equal(archive_write_open(t->a, &t->out, NULL, tar_write_cb, NULL), ARCHIVE_OK);
}

static void tar_entry(struct tarb *t, const char *path, unsigned int type, int mode,
		      const char *data, size_t len, const char *symlink, const char *hardlink)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, (mode_t)mode);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_uid(e, 1000);
	archive_entry_set_gid(e, 1000);
	archive_entry_set_mtime(e, 1700000000, 0);
	if (symlink)
		archive_entry_set_symlink(e, symlink);
	if (hardlink)
		archive_entry_set_hardlink(e, hardlink);
	if (type == AE_IFCHR)
		archive_entry_set_rdev(e, makedev(1, 3));
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (len)
		assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

static void tar_file(struct tarb *t, const char *path, const char *data)
{
	tar_entry(t, path, AE_IFREG, 0644, data, strlen(data), NULL, NULL);
}

static void tar_dir(struct tarb *t, const char *path)
{
	tar_entry(t, path, AE_IFDIR, 0755, NULL, 0, NULL, NULL);
}

static void tar_symlink(struct tarb *t, const char *path, const char *target)
{
	tar_entry(t, path, AE_IFLNK, 0777, NULL, 0, target, NULL);
}

static void tar_hardlink(struct tarb *t, const char *path, const char *target)
{
	tar_entry(t, path, AE_IFREG, 0644, NULL, 0, NULL, target);
}

static void tar_end(struct tarb *t)
{
	assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
	archive_write_free(t->a);
	t->a = NULL;
}

/* ---- the pull callback ----------------------------------------------------- */

struct feeder {
	const char *data;
	size_t len, off;
	size_t max;     /* piece size limit; 0: all at once */
	uint32_t seed;  /* random piece sizes when nonzero */
	size_t fail_at; /* nonzero: fail once this many bytes were handed out */
	char piece[65536];
};

static int feed(void *ud, const void **buf, size_t *len, struct sp_error *err)
{
	struct feeder *f = ud;
	size_t n = f->len - f->off;

	if (f->fail_at && f->off >= f->fail_at)
		return sp_error_set(err, SP_EENGINE, "connection reset by the engine");
	if (f->max && n > f->max)
		n = f->seed ? 1 + sp_test_rand(&f->seed) % f->max : f->max;
	if (n > sizeof(f->piece))
		n = sizeof(f->piece);
	/* A private copy, so that a reader keeping stale pointers would show. */
	memcpy(f->piece, f->data + f->off, n);
	*buf = f->piece;
	*len = n;
	f->off += n;
	return 0;
}

/* ---- the playground -------------------------------------------------------- */

struct place {
	char *base;
	char *dest;
	char *outside;
};

static int setup(void **state)
{
	struct place *p = sp_xcalloc(1, sizeof(*p));

	p->base = sp_test_tempdir("sp-untar-");
	p->dest = sp_xasprintf("%s/dest", p->base);
	p->outside = sp_xasprintf("%s/outside", p->base);
	if (mkdir(p->dest, 0755) < 0 || mkdir(p->outside, 0755) < 0)
		return -1;
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct place *p = *state;

	sp_test_rmtree(p->base);
	free(p->base);
	free(p->dest);
	free(p->outside);
	free(p);
	return 0;
}

static size_t count_entries(const char *path)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(path);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Nothing but dest and outside in base, outside empty. */
static void assert_contained(const struct place *p)
{
	assert_int_equal(count_entries(p->base), 2);
	assert_int_equal(count_entries(p->outside), 0);
}

/* Empties dest for the next case. */
static void reset_dest(const struct place *p)
{
	sp_test_rmtree(p->dest);
	assert_int_equal(mkdir(p->dest, 0755), 0);
}

static char *in_dest(const struct place *p, const char *rel)
{
	return sp_xasprintf("%s/%s", p->dest, rel);
}

static void assert_file(const struct place *p, const char *rel, const char *content)
{
	char *path = in_dest(p, rel);
	char buf[256];
	struct stat sb;
	size_t n;
	FILE *f;

	if (lstat(path, &sb) < 0)
		fail_msg("%s was not extracted", rel);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07000, 0);
	assert_int_equal(sb.st_mode & 0600, 0600);
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, content);
	free(path);
}

static void assert_absent(const struct place *p, const char *rel)
{
	char *path = in_dest(p, rel);
	struct stat sb;

	if (lstat(path, &sb) == 0)
		fail_msg("%s should not exist", rel);
	free(path);
}

static int extract(const struct place *p, const struct sp_buf *tar, const struct sp_untar_opts *opts,
		   size_t max, uint32_t seed, struct sp_untar_stats *stats, struct sp_error *err)
{
	struct feeder *f = sp_xcalloc(1, sizeof(*f));
	int rc;

	f->data = tar->data;
	f->len = tar->len;
	f->max = max;
	f->seed = seed;
	sp_error_clear(err);
	rc = sp_untar_extract(p->dest, feed, f, opts, stats, err);
	free(f);
	return rc;
}

/* Extracts and expects a refusal mentioning what; checks containment. */
static void expect_refused(const struct place *p, struct tarb *t, const struct sp_untar_opts *opts,
			   int code, const char *what)
{
	struct sp_error err = SP_ERROR_INIT;

	tar_end(t);
	assert_int_equal(extract(p, &t->out, opts, 0, 0, NULL, &err), code);
	if (!strstr(err.msg, what))
		fail_msg("expected \"%s\" in \"%s\"", what, err.msg);
	assert_contained(p);
	sp_buf_release(&t->out);
}

/* ---- tests ------------------------------------------------------------------- */

static void build_normal(struct tarb *t)
{
	tar_begin(t);
	tar_dir(t, "r/");
	tar_file(t, "r/junit.xml", "<testsuites/>");
	tar_dir(t, "r/sub");
	tar_file(t, "r/sub/coverage.xml", "<coverage/>");
	/* Folders implied only by a file's path. */
	tar_file(t, "r/deep/er/x.txt", "deep");
	tar_entry(t, "r/setuid", AE_IFREG, 04755, "#!/bin/sh\n", 10, NULL, NULL);
	tar_entry(t, "r/unreadable", AE_IFREG, 0000, "secret", 6, NULL, NULL);
	tar_entry(t, "r/locked", AE_IFDIR, 0000, NULL, 0, NULL, NULL);
	tar_file(t, "r/locked/inner", "in");
	tar_symlink(t, "r/latest.xml", "junit.xml");
	tar_symlink(t, "r/sub/up.xml", "../junit.xml");
	tar_symlink(t, "r/sub/dot", ".");
	tar_hardlink(t, "r/copy.xml", "r/junit.xml");
	tar_file(t, "r/./odd//name.txt", "odd");
	tar_end(t);
}

static void check_normal(const struct place *p, const char *prefix)
{
	char buf[64], *path;
	ssize_t n;
	struct stat sb, sb2;

	snprintf(buf, sizeof(buf), "%sjunit.xml", prefix);
	assert_file(p, buf, "<testsuites/>");
	snprintf(buf, sizeof(buf), "%ssub/coverage.xml", prefix);
	assert_file(p, buf, "<coverage/>");
	snprintf(buf, sizeof(buf), "%sdeep/er/x.txt", prefix);
	assert_file(p, buf, "deep");
	snprintf(buf, sizeof(buf), "%ssetuid", prefix);
	assert_file(p, buf, "#!/bin/sh\n"); /* set-id bit dropped */
	snprintf(buf, sizeof(buf), "%sunreadable", prefix);
	assert_file(p, buf, "secret");      /* u+rw added */
	snprintf(buf, sizeof(buf), "%slocked/inner", prefix);
	assert_file(p, buf, "in");
	snprintf(buf, sizeof(buf), "%scopy.xml", prefix);
	assert_file(p, buf, "<testsuites/>");
	snprintf(buf, sizeof(buf), "%sodd/name.txt", prefix);
	assert_file(p, buf, "odd");

	snprintf(buf, sizeof(buf), "%slatest.xml", prefix);
	path = in_dest(p, buf);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	n = readlink(path, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "junit.xml");
	free(path);

	snprintf(buf, sizeof(buf), "%sjunit.xml", prefix);
	path = in_dest(p, buf);
	assert_int_equal(stat(path, &sb), 0);
	free(path);
	snprintf(buf, sizeof(buf), "%scopy.xml", prefix);
	path = in_dest(p, buf);
	assert_int_equal(stat(path, &sb2), 0);
	assert_true(sb.st_ino == sb2.st_ino); /* a real hardlink */
	free(path);
	/* No owner restore: files belong to whoever extracted them. */
	assert_int_equal(sb.st_uid, getuid());
}

static void test_normal(void **state)
{
	struct place *p = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_untar_opts opts = SP_UNTAR_OPTS_INIT;
	struct sp_untar_stats st;
	struct tarb t;
	uint32_t seed;

	build_normal(&t);
	/* Whole, then in pieces of every kind: same result. */
	for (seed = 0; seed < 6; seed++) {
		reset_dest(p);
		assert_int_equal(extract(p, &t.out, NULL, seed ? 700 : 0, seed * 7919u, &st, &err), 0);
		check_normal(p, "r/");
		assert_int_equal(st.entries, 14);
		assert_int_equal(st.bytes, 13 + 11 + 4 + 10 + 6 + 2 + 3);
		assert_contained(p);
	}
	/* Byte by byte. */
	reset_dest(p);
	assert_int_equal(extract(p, &t.out, NULL, 1, 0, &st, &err), 0);
	check_normal(p, "r/");

	/* Docker's layout: strip the basename, its own entry is skipped. */
	reset_dest(p);
	opts.strip_first = 1;
	assert_int_equal(extract(p, &t.out, &opts, 0, 0, &st, &err), 0);
	check_normal(p, "");
	assert_int_equal(st.entries, 13);
	assert_absent(p, "r");
	assert_contained(p);

	/* Extracting again over what is there replaces it. */
	assert_int_equal(extract(p, &t.out, &opts, 0, 0, &st, &err), 0);
	check_normal(p, "");
	sp_buf_release(&t.out);
}

static void test_docker_archive(void **state)
{
	struct place *p = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_untar_opts opts = SP_UNTAR_OPTS_INIT;
	struct sp_untar_stats st;
	struct sp_buf tar = SP_BUF_INIT;
	char chunk[4096], *file, *data;
	struct stat sb;
	uint64_t size;
	size_t n;
	FILE *f;

	data = sp_test_read_fixture("docker", "archive-reports.tar", &n);
	sp_buf_add(&tar, data, n);
	free(data);

	opts.strip_first = 1;
	assert_int_equal(extract(p, &tar, &opts, 1000, 42, &st, &err), 0);
	/* "r/" is skipped; the two reports land directly in dest. */
	assert_int_equal(st.entries, 2);
	file = in_dest(p, "junit.xml");
	assert_int_equal(stat(file, &sb), 0);
	assert_true(sb.st_size > 100);
	size = (uint64_t)sb.st_size;
	f = fopen(file, "rb");
	assert_non_null(f);
	n = fread(chunk, 1, sizeof(chunk) - 1, f);
	chunk[n] = '\0';
	fclose(f);
	assert_non_null(strstr(chunk, "<testsuites><testsuite name=\"pytest\""));
	free(file);
	file = in_dest(p, "coverage.xml");
	assert_int_equal(stat(file, &sb), 0);
	assert_true(sb.st_size > 1000);
	size += (uint64_t)sb.st_size;
	assert_int_equal(st.bytes, size);
	free(file);
	assert_int_equal(count_entries(p->dest), 2);
	assert_contained(p);
	sp_buf_release(&tar);
}

static void test_bad_paths(void **state)
{
	struct place *p = *state;
	struct sp_untar_opts strip = SP_UNTAR_OPTS_INIT;
	struct tarb t;
	char *abs_path = sp_xasprintf("%s/x", p->outside);
	char *abs_link = sp_xasprintf("%s", p->outside);

	strip.strip_first = 1;

	tar_begin(&t);
	tar_file(&t, "ok.txt", "fine");
	tar_file(&t, "/etc/sp-untar-test-x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"/etc/sp-untar-test-x\": absolute path");
	assert_int_equal(access("/etc/sp-untar-test-x", F_OK), -1);
	/* What came before the bad entry is there, inside dest only. */
	assert_file(p, "ok.txt", "fine");
	reset_dest(p);

	tar_begin(&t);
	tar_file(&t, abs_path, "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "absolute path");

	tar_begin(&t);
	tar_file(&t, "../x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"../x\": \"..\" in the path");

	tar_begin(&t);
	tar_file(&t, "../outside/x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "\"..\" in the path");

	tar_begin(&t);
	tar_file(&t, "a/../../x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "\"..\" in the path");

	tar_begin(&t);
	tar_file(&t, "./a/..", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "\"..\" in the path");

	/* Stripping never eats a "..": "../x" is refused, not turned into "x". */
	tar_begin(&t);
	tar_file(&t, "../x", "pwned");
	expect_refused(p, &t, &strip, SP_ERROR, "\"..\" in the path");

	tar_begin(&t);
	tar_file(&t, "r/../../outside/x", "pwned");
	expect_refused(p, &t, &strip, SP_ERROR, "\"..\" in the path");

	/* A file with nothing left after stripping. */
	tar_begin(&t);
	tar_file(&t, "junit.xml", "<testsuites/>");
	expect_refused(p, &t, &strip, SP_ERROR, "refusing entry \"junit.xml\": no name left");

	/* Names in messages are made printable. */
	tar_begin(&t);
	tar_file(&t, "../\x1b[31mred\x07", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"../?[31mred?\"");

	tar_begin(&t);
	tar_entry(&t, "/", AE_IFDIR, 0755, NULL, 0, NULL, NULL);
	tar_file(&t, "/x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "absolute path");

	free(abs_path);
	free(abs_link);
}

static void test_bad_symlinks(void **state)
{
	struct place *p = *state;
	struct sp_untar_opts strip = SP_UNTAR_OPTS_INIT;
	struct tarb t;

	strip.strip_first = 1;

	/* Symlink to /etc, then a file through it. */
	tar_begin(&t);
	tar_symlink(&t, "etc", "/etc");
	tar_file(&t, "etc/sp-untar-test-x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"etc\": symlink to an absolute path");
	assert_int_equal(access("/etc/sp-untar-test-x", F_OK), -1);
	assert_absent(p, "etc");

	tar_begin(&t);
	tar_symlink(&t, "out", p->outside);
	tar_file(&t, "out/x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "symlink to an absolute path");

	tar_begin(&t);
	tar_symlink(&t, "out", "../outside");
	tar_file(&t, "out/x", "pwned");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"out\": symlink pointing outside");

	tar_begin(&t);
	tar_symlink(&t, "a/b/l", "../../../outside");
	expect_refused(p, &t, NULL, SP_ERROR, "symlink pointing outside");

	/* ".." after a name: refused even when it would resolve inside. */
	tar_begin(&t);
	tar_symlink(&t, "a/l", "b/../../x");
	expect_refused(p, &t, NULL, SP_ERROR, "symlink pointing outside");

	tar_begin(&t);
	tar_symlink(&t, "self", ".");
	tar_symlink(&t, "esc", "self/..");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"esc\": symlink pointing outside");
	reset_dest(p);

	tar_begin(&t);
	tar_symlink(&t, "empty", "");
	expect_refused(p, &t, NULL, SP_ERROR, "empty symlink target");

	/* Depth counts after stripping: r/l -> ../x would leave dest. */
	tar_begin(&t);
	tar_symlink(&t, "r/l", "../x");
	expect_refused(p, &t, &strip, SP_ERROR, "symlink pointing outside");

	/* A symlink inside dest is fine, but nothing is written through it. */
	tar_begin(&t);
	tar_dir(&t, "sub");
	tar_symlink(&t, "s", "sub");
	tar_file(&t, "s/x", "through");
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"s/x\": path through a symlink");
	assert_absent(p, "sub/x");
	reset_dest(p);

	/* A symlink replaced by a folder of the same name later is not followed. */
	tar_begin(&t);
	tar_symlink(&t, "d", ".");
	tar_dir(&t, "d");
	tar_file(&t, "d/x", "in d");
	tar_end(&t);
	{
		struct sp_error err = SP_ERROR_INIT;
		struct stat sb;
		char *d = in_dest(p, "d");

		assert_int_equal(extract(p, &t.out, NULL, 0, 0, NULL, &err), 0);
		assert_int_equal(lstat(d, &sb), 0);
		assert_true(S_ISDIR(sb.st_mode));
		assert_file(p, "d/x", "in d");
		assert_absent(p, "x");
		free(d);
	}
	assert_contained(p);
	sp_buf_release(&t.out);
	reset_dest(p);
}

static void test_bad_hardlinks(void **state)
{
	struct place *p = *state;
	struct sp_untar_opts strip = SP_UNTAR_OPTS_INIT;
	char *victim = sp_xasprintf("%s/victim", p->base);
	struct tarb t;
	struct stat sb;

	strip.strip_first = 1;
	/* A file next to dest that a hardlink must not reach. */
	sp_test_write_file(victim, "keep");

	tar_begin(&t);
	tar_hardlink(&t, "h", "../victim");
	tar_end(&t);
	{
		struct sp_error err = SP_ERROR_INIT;

		assert_int_equal(extract(p, &t.out, NULL, 0, 0, NULL, &err), SP_ERROR);
		assert_non_null(strstr(err.msg, "refusing entry \"h\": hardlink pointing outside"));
	}
	sp_buf_release(&t.out);
	assert_absent(p, "h");
	assert_int_equal(stat(victim, &sb), 0);
	assert_int_equal(sb.st_nlink, 1);
	unlink(victim);
	assert_contained(p);

	tar_begin(&t);
	tar_hardlink(&t, "h", "/etc/passwd");
	expect_refused(p, &t, NULL, SP_ERROR, "hardlink pointing outside");

	tar_begin(&t);
	tar_hardlink(&t, "h", "a/../../etc/passwd");
	expect_refused(p, &t, NULL, SP_ERROR, "hardlink pointing outside");

	/* With strip, the target is stripped too: r/../x is still "..". */
	tar_begin(&t);
	tar_hardlink(&t, "r/h", "r/../x");
	expect_refused(p, &t, &strip, SP_ERROR, "hardlink pointing outside");

	/* To a symlink inside dest (which could lead anywhere later). */
	tar_begin(&t);
	tar_symlink(&t, "l", "f");
	tar_hardlink(&t, "h", "l");
	expect_refused(p, &t, NULL, SP_ERROR, "hardlink to a symlink");
	reset_dest(p);

	/* Through a symlinked folder. */
	tar_begin(&t);
	tar_dir(&t, "sub");
	tar_file(&t, "sub/f", "x");
	tar_symlink(&t, "s", "sub");
	tar_hardlink(&t, "h", "s/f");
	expect_refused(p, &t, NULL, SP_ERROR, "path through a symlink");
	reset_dest(p);

	tar_begin(&t);
	tar_hardlink(&t, "h", "missing");
	expect_refused(p, &t, NULL, SP_ERROR, "hardlink to a file that does not exist");

	tar_begin(&t);
	tar_dir(&t, "d");
	tar_hardlink(&t, "h", "d");
	expect_refused(p, &t, NULL, SP_ERROR, "hardlink to something that is not a file");
	reset_dest(p);

	/* Stripped and inside: fine. */
	tar_begin(&t);
	tar_file(&t, "r/f", "data");
	tar_hardlink(&t, "r/h", "r/f");
	tar_end(&t);
	{
		struct sp_error err = SP_ERROR_INIT;

		assert_int_equal(extract(p, &t.out, &strip, 0, 0, NULL, &err), 0);
		assert_file(p, "h", "data");
	}
	sp_buf_release(&t.out);
	assert_contained(p);
	free(victim);
}

static void test_bad_types(void **state)
{
	struct place *p = *state;
	struct tarb t;

	tar_begin(&t);
	tar_entry(&t, "null", AE_IFCHR, 0666, NULL, 0, NULL, NULL);
	expect_refused(p, &t, NULL, SP_ERROR, "refusing entry \"null\": character device");
	assert_absent(p, "null");

	tar_begin(&t);
	tar_entry(&t, "disk", AE_IFBLK, 0666, NULL, 0, NULL, NULL);
	expect_refused(p, &t, NULL, SP_ERROR, "block device");

	tar_begin(&t);
	tar_entry(&t, "pipe", AE_IFIFO, 0666, NULL, 0, NULL, NULL);
	expect_refused(p, &t, NULL, SP_ERROR, "fifo");
	assert_absent(p, "pipe");
}

static void test_caps(void **state)
{
	struct place *p = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_untar_opts opts = SP_UNTAR_OPTS_INIT;
	struct tarb t;
	char big[1001];
	int i;

	/* Entries: exactly the cap is fine, one more is not. */
	opts.max_entries = 5;
	tar_begin(&t);
	tar_dir(&t, "d");
	for (i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "d/f%d", i);
		tar_file(&t, name, "x");
	}
	tar_end(&t);
	assert_int_equal(extract(p, &t.out, &opts, 0, 0, NULL, &err), 0);
	sp_buf_release(&t.out);
	tar_begin(&t);
	tar_dir(&t, "d");
	for (i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "d/f%d", i);
		tar_file(&t, name, "x");
	}
	reset_dest(p);
	expect_refused(p, &t, &opts, SP_ETOOBIG, "more than 5 entries (at d/f4)");
	assert_absent(p, "d/f4");

	/* Bytes: checked from the header, before anything of the file is written. */
	opts = (struct sp_untar_opts)SP_UNTAR_OPTS_INIT;
	opts.max_bytes = 1000;
	memset(big, 'b', sizeof(big));
	tar_begin(&t);
	tar_entry(&t, "exact", AE_IFREG, 0644, big, 1000, NULL, NULL);
	tar_end(&t);
	reset_dest(p);
	assert_int_equal(extract(p, &t.out, &opts, 0, 0, NULL, &err), 0);
	sp_buf_release(&t.out);

	tar_begin(&t);
	tar_entry(&t, "big", AE_IFREG, 0644, big, 1001, NULL, NULL);
	reset_dest(p);
	expect_refused(p, &t, &opts, SP_ETOOBIG, "more than 1000 bytes of files (at big)");
	assert_absent(p, "big");

	tar_begin(&t);
	tar_entry(&t, "one", AE_IFREG, 0644, big, 600, NULL, NULL);
	tar_entry(&t, "two", AE_IFREG, 0644, big, 600, NULL, NULL);
	reset_dest(p);
	expect_refused(p, &t, &opts, SP_ETOOBIG, "(at two)");
	assert_absent(p, "two");
	reset_dest(p);
}

static void test_bad_streams(void **state)
{
	struct place *p = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_buf junk = SP_BUF_INIT;
	struct feeder *f;
	struct tarb t;
	size_t cut;
	int i;

	/* Cut anywhere inside the data: an error, never a crash or a hang. */
	build_normal(&t);
	for (cut = 100; cut < t.out.len - 1024; cut += 397) {
		struct sp_buf part = SP_BUF_INIT;
		int rc;

		sp_buf_add(&part, t.out.data, cut);
		reset_dest(p);
		rc = extract(p, &part, NULL, 300, (uint32_t)cut, NULL, &err);
		if (rc != SP_ERROR)
			fail_msg("cut at %zu: rc %d (%s)", cut, rc, err.msg);
		assert_contained(p);
		sp_buf_release(&part);
	}

	/* The callback's own error comes back with its message. */
	f = sp_xcalloc(1, sizeof(*f));
	f->data = t.out.data;
	f->len = t.out.len;
	f->max = 512;
	f->fail_at = 3000;
	reset_dest(p);
	sp_error_clear(&err);
	assert_int_equal(sp_untar_extract(p->dest, feed, f, NULL, NULL, &err), SP_EENGINE);
	assert_non_null(strstr(err.msg, "reading the archive"));
	assert_non_null(strstr(err.msg, ": connection reset by the engine"));
	f->off = 0;
	f->fail_at = 1;
	reset_dest(p);
	assert_int_equal(sp_untar_extract(p->dest, feed, f, NULL, NULL, &err), SP_EENGINE);
	free(f);
	sp_buf_release(&t.out);

	/* Not a tar; a compressed tar (no decompression on purpose); nothing at all. */
	for (i = 0; i < 2000; i++)
		sp_buf_addf(&junk, "%d junk ", i);
	reset_dest(p);
	assert_int_equal(extract(p, &junk, NULL, 0, 0, NULL, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "archive: "));
	sp_buf_reset(&junk);
	sp_buf_add(&junk, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
	for (i = 0; i < 100; i++)
		sp_buf_add(&junk, "\0\0\0\0\0\0\0\0", 8);
	assert_int_equal(extract(p, &junk, NULL, 0, 0, NULL, &err), SP_ERROR);
	sp_buf_reset(&junk);
	assert_int_equal(extract(p, &junk, NULL, 0, 0, NULL, &err), SP_ERROR);
	assert_contained(p);
	sp_buf_release(&junk);
}

/* The artifacts' filter: "dist/" + star + ".whl" out of the archive of dist. */
static bool only_wheels(void *ud, const char *rel)
{
	(void)ud;
	return strlen(rel) > 4 && !strcmp(rel + strlen(rel) - 4, ".whl") && !strchr(rel, '/');
}

static void test_filter(void **state)
{
	struct place *p = *state;
	struct sp_untar_opts opts = SP_UNTAR_OPTS_INIT;
	struct sp_untar_stats stats;
	struct sp_error err = SP_ERROR_INIT;
	struct tarb t;

	opts.strip_first = 1;
	opts.filter = only_wheels;
	opts.max_bytes = 11;  /* the two wheels exactly, not the sdist */
	tar_begin(&t);
	tar_dir(&t, "dist/");
	tar_file(&t, "dist/app-1.whl", "wheel");
	tar_file(&t, "dist/app-1.tar.gz", "a big sdist over the cap");
	/* hostile entries left out by the filter neither stop nor reach anything */
	tar_symlink(&t, "dist/escape", "/etc/passwd");
	tar_entry(&t, "dist/fifo", AE_IFIFO, 0644, NULL, 0, NULL, NULL);
	tar_file(&t, "dist/sub/x.whl", "nested");
	tar_file(&t, "dist/lib-2.whl", "wheel2");
	tar_end(&t);
	assert_int_equal(extract(p, &t.out, &opts, 0, 0, &stats, &err), 0);
	assert_file(p, "app-1.whl", "wheel");
	assert_file(p, "lib-2.whl", "wheel2");
	assert_absent(p, "app-1.tar.gz");
	assert_absent(p, "escape");
	assert_absent(p, "fifo");
	assert_absent(p, "sub");
	assert_int_equal(stats.entries, 2);
	assert_int_equal(stats.bytes, 11);
	assert_contained(p);
	sp_buf_release(&t.out);

	/* a kept entry is still checked; ".." is refused before the filter */
	reset_dest(p);
	tar_begin(&t);
	tar_symlink(&t, "dist/bad.whl", "/etc/passwd");
	expect_refused(p, &t, &opts, SP_ERROR, "symlink to an absolute path");
	tar_begin(&t);
	tar_file(&t, "dist/../x.whl", "pwned");
	expect_refused(p, &t, &opts, SP_ERROR, "\"..\" in the path");
}

static void test_dest(void **state)
{
	struct place *p = *state;
	struct sp_error err = SP_ERROR_INIT;
	struct feeder f;
	char *missing = sp_xasprintf("%s/missing", p->base);
	char *file = sp_xasprintf("%s/file", p->dest);
	char *via_link = sp_xasprintf("%s/link", p->base);
	struct tarb t;

	memset(&f, 0, sizeof(f));
	assert_int_equal(sp_untar_extract(missing, feed, &f, NULL, NULL, &err), SP_ENOTFOUND);
	sp_test_write_file(file, "");
	assert_int_equal(sp_untar_extract(file, feed, &f, NULL, NULL, &err), SP_ERROR);
	assert_non_null(strstr(err.msg, "not a folder"));
	unlink(file);

	/* dest given through a symlink: resolved once, then used as the real folder. */
	assert_int_equal(symlink("dest", via_link), 0);
	tar_begin(&t);
	tar_file(&t, "x.txt", "via link");
	tar_end(&t);
	f.data = t.out.data;
	f.len = t.out.len;
	assert_int_equal(sp_untar_extract(via_link, feed, &f, NULL, NULL, &err), 0);
	assert_file(p, "x.txt", "via link");
	unlink(via_link);
	sp_buf_release(&t.out);
	free(missing);
	free(file);
	free(via_link);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_normal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_docker_archive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_hardlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
