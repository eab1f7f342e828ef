/*
 * fuzz_junit.c — libFuzzer target: the JUnit XML reader (pytest --junitxml).
 *
 * The input is the report, read with sp_junit_parse_mem.  The documented
 * limits are checked on every result.  The input is also split at its
 * first NUL into a classname/name pair for sp_junit_test_id.
 */
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/report/junit.h"
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
	struct sp_junit r;
	size_t i;

	if (sp_junit_parse_mem(&r, (const char *)data, size, "junit.xml", &err) == 0) {
		if (r.ncases > SP_JUNIT_MAX_CASES)
			abort();
		for (i = 0; i < r.ncases; i++) {
			const struct sp_junit_case *c = &r.cases[i];
			if (!c->id || !c->message || !c->detail)
				abort();
			if (strlen(c->detail) > SP_JUNIT_DETAIL_MAX)
				abort();
			/* a UTF-8 character may be kept whole past the limit */
			if (strlen(c->message) > SP_JUNIT_MESSAGE_MAX + 4)
				abort();
		}
		sp_junit_release(&r);
	}
	if (memchr(data, '\0', size)) {
		char *s = fuzz_strndup(data, size);
		char *name = s + strlen(s) + 1;
		free(sp_junit_test_id(s, name));
		free(s);
	}
	return 0;
}
