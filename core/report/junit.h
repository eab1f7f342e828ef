/*
 * junit.h — reading pytest's JUnit XML report (`--junitxml=FILE`).
 *
 * The test stage asks pytest for a JUnit report, copies it out of the
 * container and reads it here: how many tests passed, failed, errored,
 * were skipped, and which ones failed with what message.  The shape pytest
 * writes (xunit2, the default since pytest 6):
 *
 *	<testsuites>                                  (absent in old pytest)
 *	  <testsuite name="pytest" tests=… time=…>
 *	    <testcase classname="tests.test_items" name="test_create" time=…/>
 *	    <testcase classname="tests.test_x.TestY" name="test_z[1]" …>
 *	      <failure message="AssertionError: …">traceback…</failure>
 *	    </testcase>
 *	    <testcase …><error message="failed on setup with …">…</error></testcase>
 *	    <testcase …><skipped type="pytest.skip" message="…">…</skipped></testcase>
 *	    <testcase …><skipped type="pytest.xfail" message="…"/></testcase>
 *
 * Counts are taken from the <testcase> elements, not from the suite's
 * attributes, and follow pytest's own summary line ("1 failed, 17 passed,
 * 1 error, 2 skipped, 1 xfailed"):
 *   - every <failure> counts as failed and every <error> as an error (a test
 *     that fails and then errors in teardown is one testcase with both, and
 *     pytest's summary counts it twice too);
 *   - <skipped type="pytest.xfail"> is an expected failure (xfailed), which
 *     the JUnit attributes lump in with skipped;
 *   - a testcase with none of these passed.  A non-strict XPASS looks like a
 *     pass in JUnit, so pytest's "N passed, M xpassed" reads N+M passed here.
 * `tests` is the number of <testcase> elements.
 *
 * Failures and errors are listed (the first SP_JUNIT_MAX_CASES of them) with
 * the test id as pytest prints it (tests/test_items.py::TestY::test_z[1]),
 * the first line of the message and the last lines of the traceback.
 *
 * The file is read with libxml2's streaming xmlTextReader, so memory stays
 * flat however big the report; no network access, no DTD loading, no entity
 * substitution, and a document with a DOCTYPE is refused outright (pytest
 * never writes one, and that is where entity bombs live).  libxml2's own
 * limits apply (10 MB per text node or attribute).
 *
 * Typical use:
 *
 *	struct sp_junit r;
 *	if (sp_junit_parse_file(&r, "reports/junit.xml", err) < 0) ...
 *	printf("%lu passed, %lu failed\n", r.passed, r.failed);
 *	sp_junit_release(&r);
 */
#ifndef SP_JUNIT_H
#define SP_JUNIT_H

#include <stddef.h>

#include "core/base/error.h"

/* Failures and errors kept with their details; the rest are only counted. */
#define SP_JUNIT_MAX_CASES 50
/* A message is its first line, at most this many bytes (UTF-8 kept whole). */
#define SP_JUNIT_MESSAGE_MAX 500
/* The detail is at most this many of the element text's last lines ... */
#define SP_JUNIT_DETAIL_LINES 15
/* ... and at most this many bytes. */
#define SP_JUNIT_DETAIL_MAX 4096

enum sp_junit_kind {
	SP_JUNIT_FAILURE, /* <failure>: an assertion or exception in the test */
	SP_JUNIT_ERROR,   /* <error>: setup/teardown or collection went wrong */
};

struct sp_junit_case {
	enum sp_junit_kind kind;
	char *id;      /* "tests/test_items.py::TestX::test_create[1]"; never NULL */
	char *message; /* first line of the message; "" when there is none */
	char *detail;  /* last lines of the traceback text; "" when there is none */
};

struct sp_junit {
	unsigned long tests;   /* <testcase> elements */
	unsigned long passed;
	unsigned long failed;  /* <failure> elements */
	unsigned long errors;  /* <error> elements */
	unsigned long skipped; /* <skipped>, except xfails */
	unsigned long xfailed; /* <skipped type="pytest.xfail"> */
	double time;           /* seconds: the suites' time (or the sum of the tests') */

	struct sp_junit_case *cases; /* failures and errors, in document order */
	size_t ncases;               /* at most SP_JUNIT_MAX_CASES */
	size_t cases_alloc;
	unsigned long cases_omitted; /* failures and errors beyond the list */
};

/* Initialises an empty result without allocating. */
void sp_junit_init(struct sp_junit *r);
/* Frees the list and its strings; r is then as after sp_junit_init. */
void sp_junit_release(struct sp_junit *r);

/*
 * Parses the JUnit report at path into *out (initialised here; whatever it
 * held is not freed).  The file must be a regular file; it is read as is
 * (no gzip detection, no symlink followed).  On success *out belongs to the
 * caller (sp_junit_release); on failure it is left released, and err says
 * "path:line: what" for XML errors.  Returns 0, SP_ENOTFOUND when path does
 * not exist, or SP_ERROR (unreadable, not XML, not a JUnit report, DOCTYPE).
 */
int sp_junit_parse_file(struct sp_junit *out, const char *path, struct sp_error *err);

/*
 * The same for a report held in memory (data is only read during the call);
 * name is used in messages.  SP_ETOOBIG when len exceeds what libxml2 takes
 * in one buffer (INT_MAX).
 */
int sp_junit_parse_mem(struct sp_junit *out, const char *data, size_t len,
		       const char *name, struct sp_error *err);

/*
 * Turns pytest's classname/name pair back into the test id pytest prints:
 * ("tests.test_items", "test_create") → "tests/test_items.py::test_create",
 * ("tests.test_x.TestY", "test_z[a.b]") → "tests/test_x.py::TestY::test_z[a.b]",
 * ("", "tests.test_broken") (a collection error) → "tests/test_broken.py".
 * JUnit has no file attribute in pytest's default format, so the module is
 * the rightmost dotted part named test_* or *_test, failing that the parts
 * before the trailing Capitalised ones.  Returns a new string the caller frees.
 */
char *sp_junit_test_id(const char *classname, const char *name);

#endif
