/*
 * testutil.h — small helpers the unit tests share: fixtures, temporary
 * folders and files, an environment given as a table, a seeded generator.
 *
 * The Makefile links every .c file of tests/unit/support/ into every test
 * binary.  The helpers fail the running test (cmocka's fail_msg and
 * assertions) instead of returning errors: they are for test bodies and
 * setup and teardown functions, where trouble with the test's own files is
 * the test's failure.  Out of memory aborts (xalloc).
 */
#ifndef SP_TESTUTIL_H
#define SP_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The path of fixture $SP_FIXTURES/set/name (tests/fixtures when
 * SP_FIXTURES is unset or empty), e.g. ("pytest", "fail-junit.xml").
 * A new string the caller frees.
 */
char *sp_test_fixture_path(const char *set, const char *name);

/*
 * The whole of fixture set/name, '\0'-terminated; *len (may be NULL) is
 * its size.  Fails the test when the file cannot be opened.  The caller
 * frees the result.
 */
char *sp_test_read_fixture(const char *set, const char *name, size_t *len);

/* The whole of any file, as sp_test_read_fixture. */
char *sp_test_read_file(const char *path, size_t *len);

/* What f holds from where it is to its end, likewise; f stays open. */
char *sp_test_read_stream(FILE *f, size_t *len);

/* Writes text to path (created or truncated); fails the test on any error. */
void sp_test_write_file(const char *path, const char *text);

/*
 * Makes a new private folder "$TMPDIR/<prefix>XXXXXX" (TMPDIR default
 * /tmp).  A new string the caller frees; remove the folder with
 * sp_test_rmtree.
 */
char *sp_test_tempdir(const char *prefix);

/*
 * Opens (creating) the SQLite job store DIR/stagepipe.db, as `serve` does
 * with its data folder; fails the test when it cannot.  Close it with
 * sp_store_close.
 */
struct sp_store;
struct sp_store *sp_test_store_open(const char *dir);

/*
 * Removes path and everything below it, never following symlinks; the
 * folders are made readable and writable first (tests leave unreadable
 * ones behind on purpose).  A path that does not exist is fine.  Fails the
 * test when anything is left.
 */
void sp_test_rmtree(const char *path);

/*
 * An sp_vars_getenv_fn over ud, a NULL-terminated array of "NAME=value"
 * strings: the value of the first entry named name (borrowed), or NULL.
 */
const char *sp_test_env(const char *name, void *ud);

/* xorshift32: the next number of a reproducible sequence; *state != 0. */
uint32_t sp_test_rand(uint32_t *state);

/*
 * Whether the test runs under valgrind (`make valgrind`): its preload
 * library is in LD_PRELOAD.  For the few checks valgrind itself defeats
 * (peak RSS, which its freed-block queue inflates; an exec that fails
 * after fork, from which valgrind cannot recover in the child).
 */
int sp_test_under_valgrind(void);

/*
 * The internal subset of a "billion laughs" document: lol9 expands to
 * 10^9 "lol"s.  Follow it with a root element that uses &lol9;.
 */
#define SP_TEST_LOL_DOCTYPE \
	"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">" \
	"<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">" \
	"<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">" \
	"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">" \
	"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">" \
	"<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">" \
	"<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">" \
	"<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">" \
	"<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">" \
	"<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"

#endif
