/*
 * test_gitcred.c — which credentials a fetch offers, in which order, to
 * which host; credentials files; secrets kept out of messages.
 *
 * The environment is a table given through sp_vars_getenv_fn; files are
 * written to a temporary folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/git/gitcred.h"
#include "core/git/giturl.h"
#include "tests/unit/support/testutil.h"

static char *base;

static int setup(void **state)
{
	(void)state;
	base = sp_test_tempdir("sp-gitcred-");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sp_test_rmtree(base);
	free(base);
	return 0;
}

static void list_for(struct sp_gitcred_list *l, const char *url, const char *env_host,
		     const char *const *env)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_giturl u;

	assert_int_equal(sp_giturl_parse(&u, url, &err), 0);
	memset(l, 0, sizeof(*l));
	if (sp_gitcred_list(l, &u, env_host, sp_test_env, (void *)env, &err) != 0)
		fail_msg("%s", err.msg);
	sp_giturl_release(&u);
}

/* Listing for url with env is refused as SP_ECONFIG; the message in *err. */
static void list_refused(const char *url, const char *const *env, struct sp_error *err)
{
	struct sp_gitcred_list l = SP_GITCRED_LIST_INIT;
	struct sp_giturl u;

	assert_int_equal(sp_giturl_parse(&u, url, err), 0);
	assert_int_equal(sp_gitcred_list(&l, &u, NULL, sp_test_env, (void *)env, err), SP_ECONFIG);
	sp_giturl_release(&u);
}

static void test_https_order(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", "STAGEPIPE_GIT_USER=ci",
			      "STAGEPIPE_GIT_PASSWORD=pw-abcdef", "HOME=/nonexistent", NULL };
	struct sp_gitcred_list l;

	(void)state;
	list_for(&l, "https://me:urlpass1@git.example.com/a/b.git", NULL, env);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].user, "me");
	assert_string_equal(l.items[0].secret, "urlpass1");
	assert_string_equal(l.items[1].user, "ci");
	assert_string_equal(l.items[1].secret, "tok-123456");
	assert_string_equal(l.items[1].label, "STAGEPIPE_GIT_TOKEN as user ci");
	assert_string_equal(l.items[2].secret, "pw-abcdef");
	assert_null(strstr(l.items[2].label, "pw-abcdef"));
	sp_gitcred_list_release(&l);
	assert_int_equal(l.n, 0);
}

static void test_token_default_user(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", NULL };
	struct sp_gitcred_list l;

	(void)state;
	list_for(&l, "https://github.com/a/b", NULL, env);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].user, "x-access-token");
	assert_int_equal(l.items[0].kind, SP_GITCRED_USERPASS);
	sp_gitcred_list_release(&l);
}

static void test_env_scoped_to_host(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", NULL };
	const char *env2[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", "STAGEPIPE_GIT_HOST=other.org",
			       NULL };
	struct sp_gitcred_list l;

	(void)state;
	/* a submodule on another host than the repository's gets nothing */
	list_for(&l, "https://evil.example/x", "github.com", env);
	assert_int_equal(l.n, 0);
	list_for(&l, "https://github.com/x", "github.com", env);
	assert_int_equal(l.n, 1);
	sp_gitcred_list_release(&l);
	/* STAGEPIPE_GIT_HOST names the one host */
	list_for(&l, "https://github.com/x", "github.com", env2);
	assert_int_equal(l.n, 0);
	list_for(&l, "https://other.org/x", "github.com", env2);
	assert_int_equal(l.n, 1);
	sp_gitcred_list_release(&l);
}

/* The token never goes over plain http unless the repository itself is http. */
static void test_env_not_over_http(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", NULL };
	const char *env2[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", "STAGEPIPE_GIT_HOST=h", NULL };
	struct sp_gitcred_list l;

	(void)state;
	/* an http submodule of an https repository, same host */
	list_for(&l, "http://h/sub", "https://h", env);
	assert_int_equal(l.n, 0);
	list_for(&l, "http://h/sub", "https://h", env2);
	assert_int_equal(l.n, 0);
	list_for(&l, "http://h/sub", "ssh://h", env);
	assert_int_equal(l.n, 0);
	/* but the URL's own password still goes (it was written for that URL) */
	list_for(&l, "http://u:pw-in-url@h/sub", "https://h", env);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].secret, "pw-in-url");
	sp_gitcred_list_release(&l);
	/* an https submodule of an https repository, and http under http */
	list_for(&l, "https://h/sub", "https://h", env);
	assert_int_equal(l.n, 1);
	sp_gitcred_list_release(&l);
	list_for(&l, "http://h/sub", "http://h", env);
	assert_int_equal(l.n, 1);
	sp_gitcred_list_release(&l);
	/* the port still counts */
	list_for(&l, "https://h:8443/sub", "https://h", env);
	assert_int_equal(l.n, 0);
}

static void test_half_set(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_USER=ci", NULL };
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	list_refused("https://h/x", env, &err);
	assert_string_equal(err.msg, "STAGEPIPE_GIT_USER is set but STAGEPIPE_GIT_PASSWORD is not");
}

static void test_file(void **state)
{
	char file[256], envfile[300], xdg[300];
	const char *env[] = { envfile, NULL };
	const char *env_xdg[] = { xdg, NULL };
	struct sp_gitcred_list l;

	(void)state;
	snprintf(file, sizeof(file), "%s/creds", base);
	snprintf(envfile, sizeof(envfile), "STAGEPIPE_GIT_CREDENTIALS=%s", file);
	sp_test_write_file(file,
			   "# comment\n"
			   "https://alice:al-secret1@git.example.com\n"
			   "  https://bob:bob-secret2@git.example.com/team  \r\n"
			   "https://carol:ca-secret3@git.example.com/other\n"
			   "https://dave:da-secret4@git.example.com:8443\n"
			   "http://erin:er-secret5@git.example.com\n"
			   "not a url\n"
			   "https://frank@git.example.com\n");
	list_for(&l, "https://git.example.com/team/app.git", NULL, env);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0].user, "alice");
	assert_string_equal(l.items[1].user, "bob");
	assert_string_equal(l.items[1].secret, "bob-secret2");
	assert_non_null(strstr(l.items[1].label, "line 3"));
	assert_null(strstr(l.items[1].label, "secret"));
	sp_gitcred_list_release(&l);

	/* the URL's user must match; the port too; "team" is not a prefix of "teamx" */
	list_for(&l, "https://bob@git.example.com/team/app", NULL, env);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].user, "bob");
	sp_gitcred_list_release(&l);
	list_for(&l, "https://git.example.com:8443/teamx/app", NULL, env);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].user, "dave");
	sp_gitcred_list_release(&l);
	list_for(&l, "http://git.example.com/teamx", NULL, env);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].user, "erin");
	sp_gitcred_list_release(&l);

	/* the default place, under XDG_CONFIG_HOME; missing there is fine */
	snprintf(xdg, sizeof(xdg), "XDG_CONFIG_HOME=%s/nothing", base);
	list_for(&l, "https://git.example.com/team/app.git", NULL, env_xdg);
	assert_int_equal(l.n, 0);
	snprintf(xdg, sizeof(xdg), "XDG_CONFIG_HOME=%s", base);
	snprintf(file, sizeof(file), "%s/stagepipe", base);
	assert_int_equal(mkdir(file, 0700), 0);
	snprintf(file, sizeof(file), "%s/stagepipe/git-credentials", base);
	sp_test_write_file(file, "https://gina:gi-secret6@git.example.com\n");
	list_for(&l, "https://git.example.com/team/app.git", NULL, env_xdg);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].user, "gina");
	sp_gitcred_list_release(&l);
}

static void test_file_missing(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_CREDENTIALS=/nonexistent/creds", NULL };
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	list_refused("https://h/x", env, &err);
	assert_string_equal(err.msg, "credentials file /nonexistent/creds: No such file or directory");
}

static void test_ssh(void **state)
{
	char key[256], keyenv[300];
	const char *env[] = { keyenv, "STAGEPIPE_GIT_SSH_PASSPHRASE=pass-phrase",
			      "SSH_AUTH_SOCK=/tmp/agent.sock", "STAGEPIPE_GIT_TOKEN=tok-123456",
			      NULL };
	const char *bad[] = { "STAGEPIPE_GIT_SSH_KEY=/nonexistent/id", NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_gitcred_list l;

	(void)state;
	snprintf(key, sizeof(key), "%s/id_test", base);
	snprintf(keyenv, sizeof(keyenv), "STAGEPIPE_GIT_SSH_KEY=%s", key);
	sp_test_write_file(key, "not really a key\n");
	list_for(&l, "deploy@git.example.com:team/app.git", NULL, env);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0].kind, SP_GITCRED_SSH_KEY);
	assert_string_equal(l.items[0].user, "deploy");
	assert_string_equal(l.items[0].key_file, key);
	assert_string_equal(l.items[0].secret, "pass-phrase");
	assert_int_equal(l.items[1].kind, SP_GITCRED_SSH_AGENT);
	assert_string_equal(l.items[1].label, "the ssh agent (user deploy)");
	sp_gitcred_list_release(&l);

	list_for(&l, "ssh://git.example.com/team/app.git", NULL, env);
	assert_string_equal(l.items[0].user, "git");
	sp_gitcred_list_release(&l);

	list_refused("git@h:x", bad, &err);
	assert_non_null(strstr(err.msg, "STAGEPIPE_GIT_SSH_KEY=/nonexistent/id"));

	/* git:// and local repositories never get credentials */
	list_for(&l, "git://h/x", NULL, env);
	assert_int_equal(l.n, 0);
	list_for(&l, "/srv/x.git", NULL, env);
	assert_int_equal(l.n, 0);
}

static void test_redact(void **state)
{
	const char *env[] = { "STAGEPIPE_GIT_TOKEN=tok-123456", NULL };
	struct sp_error err = SP_ERROR_INIT;
	struct sp_gitcred_list l;
	struct sp_giturl u;
	char msg[256];

	(void)state;
	list_for(&l, "https://h/x", NULL, env);
	assert_int_equal(sp_giturl_parse(&u, "https://ghp_usertoken:urlpw99@h/x", &err), 0);
	snprintf(msg, sizeof(msg), "a tok-123456 b tok-123456 c urlpw99 d ghp_usertoken e pw");
	sp_gitcred_redact(msg, &l, &u);
	assert_string_equal(msg, "a *** b *** c *** d *** e pw");
	sp_gitcred_list_release(&l);
	sp_giturl_release(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_https_order),
		cmocka_unit_test(test_token_default_user),
		cmocka_unit_test(test_env_scoped_to_host),
		cmocka_unit_test(test_env_not_over_http),
		cmocka_unit_test(test_half_set),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_ssh),
		cmocka_unit_test(test_redact),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
