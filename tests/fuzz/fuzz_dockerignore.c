/*
 * fuzz_dockerignore.c — libFuzzer target: .dockerignore parsing and matching.
 *
 * The input is a .dockerignore file, optionally followed by a NUL byte and
 * newline-separated paths to match.  Without a NUL, a fixed set of paths
 * is matched.  Every path is asked sp_ignore_match and sp_ignore_may_descend,
 * as the context walker does.
 */
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "runners/docker/ignore.h"
#include "tests/fuzz/fuzz.h"

static void try_path(const struct sp_ignore *ig, const char *path)
{
	(void)sp_ignore_match(ig, path);
	(void)sp_ignore_may_descend(ig, path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fixed[] = {
		"", "Dockerfile", ".git", ".git/config", "a", "a/b", "a/b/c.txt", "node_modules",
		"src/app/main.py", "src/app/__pycache__/main.cpython-312.pyc", "docs/README.md",
		".dockerignore", "x/y/z/w/v/u/t", "[", "a\\b", "**", "é/ü.txt",
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_ignore *ig = NULL;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t textlen = nul ? (size_t)(nul - data) : size;
	size_t i;

	if (sp_ignore_parse(&ig, (const char *)data, textlen, &err) < 0) {
		if (ig)
			abort(); /* *out is NULL on failure */
		return 0;
	}
	(void)sp_ignore_count(ig);
	(void)sp_ignore_has_exceptions(ig);
	if (nul) {
		char *paths = fuzz_strndup(nul + 1, size - textlen - 1), *save = NULL, *p;
		for (p = strtok_r(paths, "\n", &save); p; p = strtok_r(NULL, "\n", &save))
			try_path(ig, p);
		free(paths);
	} else {
		for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			try_path(ig, fixed[i]);
	}
	sp_ignore_free(ig);
	return 0;
}
