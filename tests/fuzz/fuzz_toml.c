/*
 * fuzz_toml.c — libFuzzer target: the small TOML reader of `stagepipe init`
 * (core/init/toml.h), which reads a project's pyproject.toml.
 *
 * The input is the document.  A document that parses is looked up the way
 * init looks at it (every entry's key, strings and array items read whole).
 */
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/init/toml.h"
#include "tests/fuzz/fuzz.h"

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
	struct sp_toml t = SP_TOML_INIT;
	size_t i, j, sum = 0;

	if (sp_toml_parse(&t, (const char *)data, size, &err) < 0) {
		if (t.entries || t.n || !err.msg[0])
			abort();
		return 0;
	}
	for (i = 0; i < t.n; i++) {
		const struct sp_toml_entry *e = &t.entries[i];
		if (sp_toml_get(&t, e->key) == NULL)
			abort();
		sum += strlen(e->key);
		if (e->type != SP_TOML_ARRAY) {
			if (!e->value)
				abort();
			sum += strlen(e->value);
		}
		for (j = 0; j < e->nitems; j++)
			sum += strlen(e->items[j]);
	}
	(void)sp_toml_get_string(&t, "project.requires-python");
	sp_toml_release(&t);
	return sum == (size_t)-1;
}
