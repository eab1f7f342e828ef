/*
 * fuzz_untar.c — libFuzzer target: the safe extraction of an untrusted tar.
 *
 * The first input byte chooses how the archive is handed over (pieces of
 * what size) and whether the first path component is stripped, as for
 * Docker's archive endpoint; the rest is the tar stream.  Each run extracts
 * into a fresh dest folder inside a private base folder (made once per
 * process) next to an empty "outside" folder; afterwards the base must
 * still hold exactly dest and outside, with outside empty, and dest is
 * removed.  Caps are kept small (1 MiB, 200 entries) so a run stays fast.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/report/untar.h"
#include "tests/fuzz/fuzz.h"

static char *base, *dest, *outside; /* written once by LLVMFuzzerInitialize */

struct src {
	const uint8_t *data;
	size_t size, off, i;
	unsigned seed;
};

static int reader(void *ud, const void **buf, size_t *len, struct sp_error *err)
{
	struct src *s = ud;
	size_t n = fuzz_chunk(s->seed, s->i++);

	(void)err;
	if (n > s->size - s->off)
		n = s->size - s->off;
	*buf = s->data + s->off;
	*len = n;
	s->off += n;
	return 0;
}

static void cleanup(void)
{
	if (base)
		(void)sp_fs_rmtree(base, NULL);
}

/* Number of entries in folder path other than . and .. (-1: cannot open). */
static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sp_error err = SP_ERROR_INIT;

	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	if (sp_fs_tempdir(&base, "sp-fuzz-untar-", &err) < 0) {
		fprintf(stderr, "fuzz_untar: %s\n", err.msg);
		abort();
	}
	atexit(cleanup);
	dest = sp_xasprintf("%s/dest", base);
	outside = sp_xasprintf("%s/outside", base);
	if (mkdir(outside, 0700) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_untar_opts opts = { 0, 1024 * 1024, 200, NULL, NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_untar_stats stats;
	struct src s;

	if (size < 1)
		return 0;
	s.seed = data[0];
	s.data = data + 1;
	s.size = size - 1;
	s.off = s.i = 0;
	opts.strip_first = s.seed & 0x80;
	if (mkdir(dest, 0700) != 0)
		abort();
	(void)sp_untar_extract(dest, reader, &s, &opts, &stats, &err);
	/* nothing may land anywhere but dest */
	if (count_entries(outside) != 0 || count_entries(base) != 2) {
		fprintf(stderr, "fuzz_untar: something was written outside dest\n");
		abort();
	}
	if (sp_fs_rmtree(dest, &err) < 0) {
		fprintf(stderr, "fuzz_untar: cannot remove dest: %s\n", err.msg);
		abort();
	}
	return 0;
}
