/*
 * test_pycache.c — the interpreter probe's cache (core/exec/pycache.h)
 * and sp_python_find_cached over a counting fake runner: what the key
 * depends on, the file's round trip, bound, atomic rewrite and its
 * tolerance of damage, and that a hit runs no container yet fails the
 * same checks as a probe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/exec/pycache.h"
#include "core/exec/python.h"
#include "tests/unit/support/testutil.h"

#define IMAGE "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fix {
	char *dir;      /* the cache folder (not created: put creates it) */
	char *top;
};

static int setup(void **state)
{
	struct fix *f = sp_xcalloc(1, sizeof(*f));

	f->top = sp_test_tempdir("pycache");
	f->dir = sp_xasprintf("%s/cache/stagepipe", f->top);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	sp_test_rmtree(f->top);
	free(f->top);
	free(f->dir);
	free(f);
	return 0;
}

static void key_of(char out[SP_PYCACHE_KEY_LEN + 1], const char *image, const char *user,
		   const char *workdir, const char *python, const char *const *env, size_t nenv)
{
	struct sp_stage st;

	memset(&st, 0, sizeof(st));
	st.name = (char *)"test";
	st.user = (char *)user;
	st.workdir = (char *)workdir;
	st.python = (char *)python;
	sp_pycache_key(out, image, &st, env, nenv);
}

static void test_key_depends_on_what_decides(void **state)
{
	static const char *const env[] = { "A=1", "PATH=/opt/venv/bin:/usr/bin" };
	static const char *const env_swapped[] = { "PATH=/opt/venv/bin:/usr/bin", "A=1" };
	static const char *const env_split[] = { "A=1PATH=/opt/venv/bin:/usr/bin" };
	char base[65], k[65], again[65];

	(void)state;
	key_of(base, IMAGE, NULL, NULL, NULL, env, 2);
	assert_int_equal(strlen(base), SP_PYCACHE_KEY_LEN);
	assert_int_equal(strspn(base, "0123456789abcdef"), SP_PYCACHE_KEY_LEN);
	key_of(again, IMAGE, NULL, NULL, NULL, env, 2);
	assert_string_equal(base, again);
	key_of(k, "sha256:1123456789abcdef", NULL, NULL, NULL, env, 2);
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, "1000", NULL, NULL, env, 2);
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, "", NULL, NULL, env, 2);           /* "" is not "unset" */
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, NULL, "/src", NULL, env, 2);
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, NULL, NULL, "python3", env, 2);
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, NULL, NULL, NULL, env, 1);
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, NULL, NULL, NULL, env_swapped, 2);  /* order: a later value wins */
	assert_string_not_equal(base, k);
	key_of(k, IMAGE, NULL, NULL, NULL, env_split, 1);    /* no ambiguity at boundaries */
	assert_string_not_equal(base, k);
	/* the user moved into the workdir: another key */
	key_of(k, IMAGE, "x", NULL, NULL, env, 2);
	key_of(again, IMAGE, NULL, "x", NULL, env, 2);
	assert_string_not_equal(k, again);
}

static void fill(struct sp_python_info *info, const char *exe, const char *ver,
		 const char *pytest, const char *cov)
{
	sp_python_info_release(info);
	info->seen = true;
	info->executable = exe ? sp_xstrdup(exe) : NULL;
	info->version = ver ? sp_xstrdup(ver) : NULL;
	info->pytest = pytest ? sp_xstrdup(pytest) : NULL;
	info->pytest_cov = cov ? sp_xstrdup(cov) : NULL;
	info->path = sp_xstrdup("/usr/bin");
}

static void test_round_trip(void **state)
{
	struct fix *f = *state;
	struct sp_python_info in = SP_PYTHON_INFO_INIT, out = SP_PYTHON_INFO_INIT;
	struct sp_error err = SP_ERROR_INIT;
	char key[65], other[65], *cand = NULL, *path, *text;
	struct stat sb;

	key_of(key, IMAGE, NULL, NULL, NULL, NULL, 0);
	key_of(other, IMAGE, "1000", NULL, NULL, NULL, 0);
	/* no folder, no file: a miss */
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	assert_null(cand);
	assert_false(out.seen);
	assert_int_equal(sp_pycache_get(NULL, key, &cand, &out), 0);

	fill(&in, "/usr/bin/python3", "3.11.2", "7.2.1", NULL);
	assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
	path = sp_xasprintf("%s/" SP_PYCACHE_FILE, f->dir);
	assert_int_equal(stat(f->dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 1);
	assert_string_equal(cand, "python3");
	assert_true(out.seen);
	assert_string_equal(out.executable, "/usr/bin/python3");
	assert_string_equal(out.version, "3.11.2");
	assert_string_equal(out.pytest, "7.2.1");
	assert_null(out.pytest_cov);          /* not said stays not said */
	free(cand);
	cand = NULL;
	sp_python_info_release(&out);
	assert_int_equal(sp_pycache_get(f->dir, other, &cand, &out), 0);

	/* the same key again: replaced, one line */
	fill(&in, "/opt/venv/bin/python", "3.12.0", "8.0.0", "4.1.0");
	assert_int_equal(sp_pycache_put(f->dir, key, "python", &in, &err), 0);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 1);
	assert_string_equal(cand, "python");
	assert_string_equal(out.pytest_cov, "4.1.0");
	text = sp_test_read_file(path, NULL);
	assert_non_null(strstr(text, SP_PYCACHE_HEADER "\n"));
	assert_null(strstr(strstr(text, key) + 1, key));
	assert_null(strstr(text, "3.11.2"));
	free(text);
	free(cand);
	free(path);
	sp_python_info_release(&out);
	sp_python_info_release(&in);
}

static void test_damage_is_a_miss(void **state)
{
	struct fix *f = *state;
	struct sp_python_info in = SP_PYTHON_INFO_INIT, out = SP_PYTHON_INFO_INIT;
	struct sp_error err = SP_ERROR_INIT;
	char key[65], *cand = NULL, *path, *text;

	key_of(key, IMAGE, NULL, NULL, NULL, NULL, 0);
	fill(&in, "/usr/bin/python3", "3.11.2", "7.2.1", "4.0.0");
	assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
	path = sp_xasprintf("%s/" SP_PYCACHE_FILE, f->dir);

	/* another header (a newer format, garbage): ignored whole */
	text = sp_xasprintf("stagepipe python-probes 2\n%s\tpython3\t\t\t7\t\n", key);
	sp_test_write_file(path, text);
	free(text);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	sp_test_write_file(path, "\x7f" "ELF\1\1\1\0\0\0\0garbage");
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	sp_test_write_file(path, "");
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);

	/* a line cut short by a writer that died, fields missing or extra,
	 * no candidate, a key that is not hex: each a miss */
	text = sp_xasprintf(SP_PYCACHE_HEADER "\n%s\tpython3\t/usr/bin/python3\t3\t7", key);
	sp_test_write_file(path, text);
	free(text);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	text = sp_xasprintf(SP_PYCACHE_HEADER "\n%s\tpython3\t/usr/bin/python3\t3\n"
			    "%s\tpython3\t/usr/bin/python3\t3\t7\t\t\n"
			    "%s\t\t/usr/bin/python3\t3\t7\t\n", key, key, key);
	sp_test_write_file(path, text);
	free(text);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	assert_null(cand);
	assert_false(out.seen);

	/* a damaged line among good ones: the good ones still count, and a
	 * put drops the damaged one */
	text = sp_xasprintf(SP_PYCACHE_HEADER "\nnot a line\n%s\tpython\t\t\t8\t\n", key);
	sp_test_write_file(path, text);
	free(text);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 1);
	assert_string_equal(cand, "python");
	assert_string_equal(out.pytest, "8");
	assert_null(out.executable);
	free(cand);
	cand = NULL;
	sp_python_info_release(&out);
	key[0] = key[0] == 'a' ? 'b' : 'a';
	assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
	text = sp_test_read_file(path, NULL);
	assert_null(strstr(text, "not a line"));
	free(text);

	/* values it cannot write back are not remembered */
	key[1] = key[1] == 'a' ? 'b' : 'a';
	fill(&in, "/weird\tpath/python", "3.11.2", "7.2.1", NULL);
	assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	fill(&in, "/usr/bin/python3", "3.11.2\n", "7.2.1", NULL);
	assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
	assert_int_equal(sp_pycache_get(f->dir, key, &cand, &out), 0);
	free(path);
	sp_python_info_release(&in);
}

static void test_bounded_and_no_leftovers(void **state)
{
	struct fix *f = *state;
	struct sp_python_info in = SP_PYTHON_INFO_INIT, out = SP_PYTHON_INFO_INIT;
	struct sp_error err = SP_ERROR_INIT;
	char key[65], first[65], last[65], img[80], *cand = NULL, *path, *text, *p;
	size_t lines = 0;
	int i;
	DIR *d;
	struct dirent *de;

	fill(&in, "/usr/bin/python3", "3.11.2", "7.2.1", NULL);
	for (i = 0; i < SP_PYCACHE_MAX + 10; i++) {
		snprintf(img, sizeof(img), "sha256:%064d", i);
		key_of(key, img, NULL, NULL, NULL, NULL, 0);
		if (i == 0)
			memcpy(first, key, sizeof(key));
		memcpy(last, key, sizeof(key));
		assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
	}
	path = sp_xasprintf("%s/" SP_PYCACHE_FILE, f->dir);
	text = sp_test_read_file(path, NULL);
	for (p = text; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, 1 + SP_PYCACHE_MAX);
	free(text);
	assert_int_equal(sp_pycache_get(f->dir, first, &cand, &out), 0);   /* the oldest went */
	assert_int_equal(sp_pycache_get(f->dir, last, &cand, &out), 1);
	free(cand);
	sp_python_info_release(&out);
	/* the temporary files were renamed, none left */
	assert_non_null(d = opendir(f->dir));
	while ((de = readdir(d)))
		assert_true(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
			    !strcmp(de->d_name, SP_PYCACHE_FILE));
	closedir(d);
	free(path);
	sp_python_info_release(&in);
}

static void test_unwritable_is_an_error_not_a_crash(void **state)
{
	struct fix *f = *state;
	struct sp_python_info in = SP_PYTHON_INFO_INIT;
	struct sp_error err = SP_ERROR_INIT;
	char key[65], *blocker, *cand = NULL;

	key_of(key, IMAGE, NULL, NULL, NULL, NULL, 0);
	fill(&in, "/usr/bin/python3", "3.11.2", "7.2.1", NULL);
	/* a file where the folder should be */
	blocker = sp_xasprintf("%s/file", f->top);
	sp_test_write_file(blocker, "x");
	assert_true(sp_pycache_put(blocker, key, "python3", &in, &err) < 0);
	assert_int_equal(sp_pycache_get(blocker, key, &cand, &in), 0);
	free(blocker);
	/* a folder it cannot write to (root writes anywhere) */
	if (geteuid() != 0) {
		assert_int_equal(sp_pycache_put(f->dir, key, "python3", &in, &err), 0);
		assert_int_equal(chmod(f->dir, 0500), 0);
		sp_error_clear(&err);
		assert_int_equal(sp_pycache_put(f->dir, key, "python", &in, &err), SP_ERROR);
		assert_non_null(strstr(err.msg, f->dir));
		assert_int_equal(chmod(f->dir, 0700), 0);
	}
	sp_python_info_release(&in);
}

/* ---- sp_python_find_cached over a fake runner ---- */

struct fake {
	struct sp_runner base;
	int runs;
	const char *say;       /* what the probe prints (lines of "KEY=VALUE") */
};

static int fake_run(struct sp_runner *r, const struct sp_run_opts *o, struct sp_run_result *res,
		    struct sp_error *err)
{
	struct fake *fk = (struct fake *)r;
	const char *p = fk->say, *nl;
	char line[256];

	(void)err;
	fk->runs++;
	memset(res, 0, sizeof(*res));
	assert_string_equal(o->cmd[1], "-c");
	while (p && *p && (nl = strchr(p, '\n'))) {
		snprintf(line, sizeof(line), SP_PYTHON_PROBE_MARK "%.*s", (int)(nl - p), p);
		o->log(o->log_ud, SP_STREAM_STDOUT, line, strlen(line));
		p = nl + 1;
	}
	return 0;
}

static const struct sp_runner_ops fake_ops = { .name = "fake", .run = fake_run };

static void test_find_cached(void **state)
{
	struct fix *f = *state;
	struct fake fk = { { &fake_ops, NULL }, 0,
			   "executable=/usr/bin/python3\nversion=3.11.2\npytest=7.2.1\npytest_cov=\n"
			   "path=/usr/bin\n" };
	static const char *const env[] = { "CI=1" };
	struct sp_pstr cov = { (char *)"--cov=pkg", { 0, 0 } };
	struct sp_python_info info = SP_PYTHON_INFO_INIT;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_run_opts ro;
	struct sp_stage st;
	char *out = NULL, *line;

	memset(&st, 0, sizeof(st));
	st.name = (char *)"test";
	memset(&ro, 0, sizeof(ro));
	ro.image = IMAGE;
	ro.env = env;
	ro.nenv = 1;

	/* no cache folder: a probe each time */
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", NULL, &out, &info, &err), 0);
	free(out);
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", NULL, &out, &info, &err), 0);
	assert_int_equal(fk.runs, 2);
	assert_false(info.cached);
	free(out);

	/* the first probes (python, then python3: the fake's `python` starts
	 * and says Python 3, so one run), the second is a hit */
	fk.runs = 0;
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", f->dir, &out, &info, &err), 0);
	assert_int_equal(fk.runs, 1);
	assert_false(info.cached);
	free(out);
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", f->dir, &out, &info, &err), 0);
	assert_int_equal(fk.runs, 1);
	assert_true(info.cached);
	assert_string_equal(out, "python");
	line = sp_python_describe(&info, &st, out);
	assert_string_equal(line, "python: /usr/bin/python3 (Python 3.11.2, python on the image's "
			    "PATH), pytest 7.2.1 (probed before)");
	free(line);
	free(out);

	/* a stage of the same key that asks for --cov: the hit is checked
	 * again, and fails as the probe would (no pytest-cov) */
	st.args.items = &cov;
	st.args.n = 1;
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", f->dir, &out, &info, &err),
			 SP_EFAILED);
	assert_null(out);
	assert_int_equal(fk.runs, 1);
	assert_non_null(strstr(err.msg, "--cov needs the pytest-cov plugin"));
	st.args.n = 0;

	/* another env: another key, a probe; a probe that found no pytest
	 * fails and is not remembered */
	fk.say = "executable=/usr/bin/python3\nversion=3.11.2\npytest=\n";
	ro.nenv = 0;
	sp_error_clear(&err);
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", f->dir, &out, &info, &err),
			 SP_EFAILED);
	assert_non_null(strstr(err.msg, "no pytest in the image of target \"t\""));
	assert_int_equal(sp_python_find_cached(&fk.base, &ro, &st, "t", f->dir, &out, &info, &err),
			 SP_EFAILED);
	assert_int_equal(fk.runs, 3);
	sp_python_info_release(&info);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_depends_on_what_decides),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_is_a_miss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_and_no_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_is_an_error_not_a_crash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_find_cached, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
