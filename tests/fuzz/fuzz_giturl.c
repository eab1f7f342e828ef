/*
 * fuzz_giturl.c — libFuzzer target: repository URL parsing (core/git/giturl.h).
 *
 * The input up to the first newline is a URL (of a server config, a
 * submodule, a credentials line); what follows is a relative submodule URL
 * resolved against it.  A URL that parses is turned into its key, host:port
 * and origin.  (Whether the display form hides the password is a unit
 * test's job: a password may legitimately equal a part of the host or path.)
 */
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/git/giturl.h"
#include "tests/fuzz/fuzz.h"

static void derived(const struct sp_giturl *u)
{
	char *s = NULL;

	if (!u->fetch || !u->display || !u->canonical)
		abort();
	sp_giturl_key(&s, u);
	free(s);
	sp_giturl_hostport(&s, u);
	free(s);
	sp_giturl_origin(&s, u);
	free(s);
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
	struct sp_error err = SP_ERROR_INIT;
	struct sp_giturl u;
	char *s = fuzz_strndup(data, size), *rel, *nl, *out = NULL;

	nl = strchr(s, '\n');
	rel = nl ? nl + 1 : NULL;
	if (nl)
		*nl = '\0';
	memset(&u, 0, sizeof(u));
	if (sp_giturl_parse(&u, s, &err) == 0) {
		derived(&u);
		sp_giturl_release(&u);
	}
	if (sp_giturl_parse_credential(&u, s, &err) == 0) {
		derived(&u);
		sp_giturl_release(&u);
	}
	if (rel) {
		sp_giturl_resolve(&out, s, rel);
		if (!out)
			abort();
		free(out);
	}
	free(s);
	return 0;
}
