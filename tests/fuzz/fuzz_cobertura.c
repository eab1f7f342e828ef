/*
 * fuzz_cobertura.c — libFuzzer target: the Cobertura XML reader
 * (coverage.py's --cov-report=xml), through sp_cobertura_parse_mem.
 * Percentages must stay within 0..100 whatever the file says.
 */
#include <math.h>
#include <stdlib.h>

#include "core/base/error.h"
#include "core/report/cobertura.h"
#include "tests/fuzz/fuzz.h"

static int pct_ok(double v)
{
	return !isnan(v) && v >= 0.0 && v <= 100.0;
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
	struct sp_cobertura c;
	size_t i;

	if (sp_cobertura_parse_mem(&c, (const char *)data, size, "coverage.xml", &err) == 0) {
		if (c.nfiles > SP_COBERTURA_MAX_FILES)
			abort();
		for (i = 0; i < c.nfiles; i++)
			if (!c.files[i].filename || !pct_ok(c.files[i].line_percent))
				abort();
		if (!pct_ok(c.line_percent) || !pct_ok(c.branch_percent) ||
		    !pct_ok(c.total_percent))
			abort(); /* promised: 0..100 */
		sp_cobertura_release(&c);
	}
	return 0;
}
