/*
 * test_giturl.c — repository URLs: kinds, the three forms, keys, errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/git/giturl.h"

static void parse_ok(struct sp_giturl *u, const char *url)
{
	struct sp_error err = SP_ERROR_INIT;

	if (sp_giturl_parse(u, url, &err) != 0)
		fail_msg("%s: %s", url, err.msg);
}

static char *canon(const char *url)
{
	struct sp_giturl u;
	char *c;

	parse_ok(&u, url);
	c = strdup(u.canonical);
	sp_giturl_release(&u);
	return c;
}

static void test_https(void **state)
{
	struct sp_giturl u;

	(void)state;
	parse_ok(&u, "https://alice:s3cret%21@GitHub.com:443/Team/App.git");
	assert_int_equal(u.kind, SP_GITURL_HTTPS);
	assert_string_equal(u.user, "alice");
	assert_string_equal(u.password, "s3cret!");
	assert_string_equal(u.host, "github.com");
	assert_int_equal(u.port, 0);
	assert_string_equal(u.path, "/Team/App.git");
	assert_string_equal(u.fetch, "https://alice@github.com/Team/App.git");
	assert_string_equal(u.display, "https://github.com/Team/App.git");
	assert_string_equal(u.canonical, "https://github.com/Team/App");
	assert_null(strstr(u.fetch, "s3cret"));
	sp_giturl_release(&u);

	parse_ok(&u, "http://git.example.com:8080/x/y/");
	assert_int_equal(u.kind, SP_GITURL_HTTP);
	assert_int_equal(u.port, 8080);
	assert_null(u.user);
	assert_string_equal(u.canonical, "http://git.example.com:8080/x/y");
	sp_giturl_release(&u);

	/* a token written as the user is not shown either */
	parse_ok(&u, "https://ghp_abcdef123456@github.com/a/b");
	assert_string_equal(u.display, "https://github.com/a/b");
	sp_giturl_release(&u);

	parse_ok(&u, "https://[::1]:3000/a/b.git");
	assert_string_equal(u.host, "[::1]");
	assert_int_equal(u.port, 3000);
	sp_giturl_release(&u);
}

static void test_ssh(void **state)
{
	struct sp_giturl u;
	char *a, *b;

	(void)state;
	parse_ok(&u, "git@github.com:team/app.git");
	assert_int_equal(u.kind, SP_GITURL_SSH);
	assert_string_equal(u.user, "git");
	assert_string_equal(u.host, "github.com");
	assert_string_equal(u.path, "~/team/app.git");
	assert_string_equal(u.fetch, "git@github.com:team/app.git");
	assert_string_equal(u.canonical, "ssh://github.com/~/team/app");
	sp_giturl_release(&u);

	parse_ok(&u, "ssh://git@example.com:2222/srv/app.git");
	assert_int_equal(u.port, 2222);
	assert_string_equal(u.display, "ssh://git@example.com:2222/srv/app.git");
	assert_string_equal(u.canonical, "ssh://example.com:2222/srv/app");
	sp_giturl_release(&u);

	/* the same repository, two spellings: one mirror */
	a = canon("git@example.com:/srv/app.git");
	b = canon("ssh://deploy@EXAMPLE.com:22/srv/app/");
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* home-relative and absolute are different repositories */
	a = canon("example.com:srv/app");
	b = canon("ssh://example.com/srv/app");
	assert_string_not_equal(a, b);
	free(a);
	free(b);

	parse_ok(&u, "git+ssh://h/x");
	assert_int_equal(u.kind, SP_GITURL_SSH);
	sp_giturl_release(&u);
	parse_ok(&u, "git://h.example/x.git");
	assert_int_equal(u.kind, SP_GITURL_GIT);
	assert_string_equal(u.canonical, "git://h.example/x");
	sp_giturl_release(&u);
}

static void test_local(void **state)
{
	struct sp_giturl u;
	char cwd[PATH_MAX], *want, *a, *b;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	parse_ok(&u, "/no/such/repo.git/");
	assert_int_equal(u.kind, SP_GITURL_FILE);
	assert_null(u.host);
	assert_string_equal(u.path, "/no/such/repo.git");
	assert_string_equal(u.fetch, "/no/such/repo.git");
	assert_string_equal(u.canonical, "file:///no/such/repo.git");
	sp_giturl_release(&u);

	parse_ok(&u, "file:///no/such/my%20repo");
	assert_string_equal(u.path, "/no/such/my repo");
	sp_giturl_release(&u);

	parse_ok(&u, "no-such-relative");
	want = malloc(strlen(cwd) + 32);
	snprintf(want, strlen(cwd) + 32, "%s/no-such-relative", cwd);
	assert_string_equal(u.path, want);
	free(want);
	sp_giturl_release(&u);

	/* a work tree and its .git folder; "/tmp" and "/tmp/" */
	a = canon("/no/such/proj/.git");
	b = canon("file:///no/such/proj");
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* but repo and repo.git on disk are two folders */
	a = canon("/no/such/proj.git");
	b = canon("/no/such/proj");
	assert_string_not_equal(a, b);
	free(a);
	free(b);
	/* a path that exists is resolved (symlinks, "..") */
	a = canon("/tmp/../tmp");
	b = canon("/tmp");
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"ftp://host/x",
		"htps://github.com/a/b",
		"https://",
		"https:///a/b",
		"https://github.com",
		"https://github.com/",
		"https://host:99999/x",
		"https://host:12ab/x",
		"https://-oProxyCommand=x/y",
		"ssh://-oProxyCommand=evil/x",
		"-oProxyCommand=evil:x",
		"host:",
		"ext::sh -c touch% /tmp/pwned",
		"https://host/a\nb",
		"https://a%zz@host/x",
		"file://relative/path",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sp_error err = SP_ERROR_INIT;
		struct sp_giturl u;

		if (sp_giturl_parse(&u, bad[i], &err) != SP_ECONFIG)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(strstr(err.msg, "malformed repository URL"));
		assert_null(u.fetch);
	}
}

static void test_no_secret_in_errors(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_giturl u;

	(void)state;
	assert_int_equal(sp_giturl_parse(&u, "https://bob:hunter2secret@-bad/x", &err), SP_ECONFIG);
	assert_null(strstr(err.msg, "hunter2secret"));
	assert_non_null(strstr(err.msg, "-bad/x"));
	assert_int_equal(sp_giturl_parse(&u, "https://bob:hunter2secret@host", &err), SP_ECONFIG);
	assert_null(strstr(err.msg, "hunter2secret"));
}

/* A '/' in the user part: the URL is refused and nothing of the authority shown. */
static void test_slash_in_password(void **state)
{
	static const char *const urls[] = {
		"https://bob:s3cr/et@github.com/o/r.git",
		"https://bob:1234/5678@github.com/o/r.git",
		"http://bob:pass/word9@h/o/r.git",
		"ssh://bob:pass/word9@h/o/r.git",
		"git://bob:pass/word9@h/o/r.git",
		"https://github.com/o/r@x.git",  /* no secret, still ambiguous */
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_giturl u;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		memset(&u, 0x5a, sizeof(u));
		if (sp_giturl_parse(&u, urls[i], &err) != SP_ECONFIG)
			fail_msg("%s was accepted", urls[i]);
		assert_null(u.display);
		assert_null(u.canonical);
		assert_null(strstr(err.msg, "bob"));
		assert_null(strstr(err.msg, "s3cr"));
		assert_null(strstr(err.msg, "5678"));
		assert_null(strstr(err.msg, "word9"));
		assert_non_null(strstr(err.msg, "://...\""));
	}
	/* after '?' or '#' an '@' is not the authority's */
	parse_ok(&u, "https://h/o/r.git?x=a@b");
	sp_giturl_release(&u);
	/* %2F is how a '/' goes in a password */
	parse_ok(&u, "https://bob:s3cr%2Fet@github.com/o/r.git");
	assert_string_equal(u.password, "s3cr/et");
	assert_string_equal(u.host, "github.com");
	assert_null(strstr(u.display, "s3cr"));
	assert_null(strstr(u.canonical, "s3cr"));
	assert_null(strstr(u.fetch, "s3cr"));
	sp_giturl_release(&u);
}

/* "user:password@host/path" without a scheme is not scp form with host "user". */
static void test_scp_with_password(void **state)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_giturl u;

	(void)state;
	assert_int_equal(sp_giturl_parse(&u, "bob:hunter2@github.com/o/r.git", &err),
			 SP_ECONFIG);
	assert_null(strstr(err.msg, "hunter2"));
	assert_null(u.display);
	assert_int_equal(sp_giturl_parse(&u, "git@h:o/x@hunter2.git", &err), SP_ECONFIG);
	assert_null(strstr(err.msg, "hunter2"));
	/* an ordinary scp form still parses */
	parse_ok(&u, "git@github.com:o/r.git");
	assert_string_equal(u.display, "git@github.com:o/r.git");
	sp_giturl_release(&u);
	/* a file URL with an authority shows no part of it */
	assert_int_equal(sp_giturl_parse(&u, "file://bob:hunter2@h/x", &err), SP_ECONFIG);
	assert_null(strstr(err.msg, "hunter2"));
}

static void test_origin(void **state)
{
	struct sp_giturl u;
	char *o;

	(void)state;
	parse_ok(&u, "HTTPS://tok@GitHub.com:443/o/r.git");
	sp_giturl_origin(&o, &u);
	assert_string_equal(o, "https://github.com");
	free(o);
	sp_giturl_release(&u);
	parse_ok(&u, "http://h:8080/o/r.git");
	sp_giturl_origin(&o, &u);
	assert_string_equal(o, "http://h:8080");
	free(o);
	sp_giturl_release(&u);
	parse_ok(&u, "git@h:o/r.git");
	sp_giturl_origin(&o, &u);
	assert_string_equal(o, "ssh://h");
	free(o);
	sp_giturl_release(&u);
}

static void test_key(void **state)
{
	struct sp_giturl u, v;
	char *k1, *k2;
	const char *p;

	(void)state;
	parse_ok(&u, "https://token@github.com/team/app.git");
	parse_ok(&v, "https://github.com/team/app");
	sp_giturl_key(&k1, &u);
	sp_giturl_key(&k2, &v);
	assert_string_equal(k1, k2);
	assert_int_equal(strncmp(k1, "github.com-app-", 15), 0);
	assert_int_equal(strlen(k1), 15 + 16);
	free(k2);
	sp_giturl_release(&v);
	parse_ok(&v, "https://github.com/team/app2");
	sp_giturl_key(&k2, &v);
	assert_string_not_equal(k1, k2);
	free(k1);
	free(k2);
	sp_giturl_release(&u);
	sp_giturl_release(&v);

	parse_ok(&u, "/srv/git/my project!/.git");
	sp_giturl_key(&k1, &u);
	assert_int_equal(strncmp(k1, "local-my_project_-", 18), 0);
	for (p = k1; *p; p++)
		assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "0123456789._-", *p));
	free(k1);
	sp_giturl_release(&u);
}

static void test_resolve(void **state)
{
	static const char *const cases[][3] = {
		{ "https://h/team/app.git", "../lib.git", "https://h/team/lib.git" },
		{ "https://h/team/app.git/", "../lib.git", "https://h/team/lib.git" },
		{ "https://h/team/app", "./sub", "https://h/team/app/sub" },
		{ "https://h/team/app", "../../other/x", "https://h/other/x" },
		{ "git@h:team/app.git", "../lib.git", "git@h:team/lib.git" },
		{ "git@h:app.git", "../lib.git", "git@h:lib.git" },
		{ "/srv/git/super.git", "../lib.git", "/srv/git/lib.git" },
		{ "/srv/git/super.git", "https://x/y", "https://x/y" },
		{ "https://h/a", "../../../x", "https://h/x" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out;

		sp_giturl_resolve(&out, cases[i][0], cases[i][1]);
		if (strcmp(out, cases[i][2]))
			fail_msg("%s + %s = %s, wanted %s", cases[i][0], cases[i][1], out, cases[i][2]);
		free(out);
	}
}

static void test_credential_line(void **state)
{
	struct sp_giturl u;
	char *hp;

	(void)state;
	assert_int_equal(sp_giturl_parse_credential(&u, "https://u:p%40ss@Host.example:8443", NULL), 0);
	assert_string_equal(u.user, "u");
	assert_string_equal(u.password, "p@ss");
	assert_string_equal(u.path, "");
	sp_giturl_hostport(&hp, &u);
	assert_string_equal(hp, "host.example:8443");
	free(hp);
	sp_giturl_release(&u);
	assert_int_equal(sp_giturl_parse_credential(&u, "ssh://u:p@h/x", NULL), SP_ECONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_https),
		cmocka_unit_test(test_ssh),
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_no_secret_in_errors),
		cmocka_unit_test(test_slash_in_password),
		cmocka_unit_test(test_scp_with_password),
		cmocka_unit_test(test_origin),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_credential_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
