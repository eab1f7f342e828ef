/*
 * fuzz_server_config.c — libFuzzer target: the server config loader.
 *
 * sp_server_config_load only reads files, so each input is written to
 * serve.yml in a private temporary folder made once per process (removed
 * at exit); a hook.secret file sits next to it for *_file secrets.  The
 * environment is fake: UNSET* is not set, EMPTY* is empty, any other name
 * is "s3cret".  A config that loads has each repository's branch filter
 * tried on a few branch names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/server/config.h"
#include "core/yaml/diag.h"
#include "tests/fuzz/fuzz.h"

static char *tmpdir;   /* written once by LLVMFuzzerInitialize */
static char *cfgpath;

static const char *fake_getenv(const char *name)
{
	if (!strncmp(name, "UNSET", 5))
		return NULL;
	if (!strncmp(name, "EMPTY", 5))
		return "";
	return "s3cret";
}

static void cleanup(void)
{
	if (tmpdir)
		(void)sp_fs_rmtree(tmpdir, NULL);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		abort();
	if (len && fwrite(data, 1, len, f) != len)
		abort();
	if (fclose(f) != 0)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sp_error err = SP_ERROR_INIT;
	char *p;

	(void)argc;
	(void)argv;
	fuzz_quiet_log();
	if (sp_fs_tempdir(&tmpdir, "sp-fuzz-config-", &err) < 0) {
		fprintf(stderr, "fuzz_server_config: %s\n", err.msg);
		abort();
	}
	atexit(cleanup);
	cfgpath = sp_xasprintf("%s/serve.yml", tmpdir);
	p = sp_xasprintf("%s/hook.secret", tmpdir);
	write_file(p, "file-secret\n", 12);
	free(p);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const branches[] = {
		"main", "release/v1", "release/v1/hotfix", "feature/x", "",
	};
	struct sp_diags d = SP_DIAGS_INIT;
	struct sp_server_config *c = NULL;
	size_t i, j;

	write_file(cfgpath, data, size);
	if (sp_server_config_load(&c, cfgpath, fake_getenv, &d) == 0 && c) {
		for (i = 0; i < c->nrepos; i++) {
			const struct sp_repo_config *r = &c->repos[i];
			if (sp_server_config_repo(c, r->name) == NULL)
				abort(); /* a loaded repository must be found by its name */
			for (j = 0; j < sizeof(branches) / sizeof(branches[0]); j++)
				(void)sp_repo_branch_allowed(r, branches[j]);
		}
	}
	for (i = 0; i < d.n; i++) /* items kept; count() adds the dropped */
		free(sp_diags_format(&d, i, "serve.yml"));
	sp_server_config_free(c);
	sp_diags_release(&d);
	return 0;
}
