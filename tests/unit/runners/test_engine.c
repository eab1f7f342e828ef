/*
 * test_engine.c — where the engine is, read from the environment the way
 * the docker CLI reads it (no daemon needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "runners/docker/engine.h"
#include "tests/unit/support/testutil.h"

static void test_default_socket(void **state)
{
	static const char *env[] = { NULL };
	struct sp_engine_config c;

	(void)state;
	assert_int_equal(sp_engine_config_from_env(&c, NULL, sp_test_env, env, NULL), 0);
	assert_string_equal(c.host, "unix:///var/run/docker.sock");
	assert_string_equal(c.socket_path, "/var/run/docker.sock");
	assert_string_equal(c.base_url, "http://localhost");
	assert_false(c.tls);
	assert_null(c.api_version);
	sp_engine_config_release(&c);
}

static void test_docker_host_and_override(void **state)
{
	static const char *env[] = { "DOCKER_HOST=unix:///tmp/d.sock", "DOCKER_API_VERSION=1.41", NULL };
	struct sp_engine_config c;

	(void)state;
	assert_int_equal(sp_engine_config_from_env(&c, NULL, sp_test_env, env, NULL), 0);
	assert_string_equal(c.socket_path, "/tmp/d.sock");
	assert_string_equal(c.api_version, "1.41");
	sp_engine_config_release(&c);
	assert_int_equal(sp_engine_config_from_env(&c, "tcp://127.0.0.1:2375", sp_test_env, env, NULL), 0);
	assert_null(c.socket_path);
	assert_string_equal(c.base_url, "http://127.0.0.1:2375");
	sp_engine_config_release(&c);
}

static void test_tls(void **state)
{
	static const char *verify[] = { "DOCKER_HOST=tcp://docker.example:2376",
		"DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=/certs", NULL };
	/* any value turns TLS on, even "0"; only DOCKER_TLS_VERIFY verifies */
	static const char *tls_only[] = { "DOCKER_HOST=tcp://h", "DOCKER_TLS=0",
		"HOME=/home/u", NULL };
	static const char *config_dir[] = { "DOCKER_HOST=tcp://[::1]", "DOCKER_TLS_VERIFY=0",
		"DOCKER_CONFIG=/cfg", NULL };
	struct sp_engine_config c;

	(void)state;
	assert_int_equal(sp_engine_config_from_env(&c, NULL, sp_test_env, verify, NULL), 0);
	assert_true(c.tls);
	assert_true(c.tls_verify);
	assert_string_equal(c.base_url, "https://docker.example:2376");
	assert_string_equal(c.ca_file, "/certs/ca.pem");
	assert_string_equal(c.cert_file, "/certs/cert.pem");
	assert_string_equal(c.key_file, "/certs/key.pem");
	sp_engine_config_release(&c);

	assert_int_equal(sp_engine_config_from_env(&c, NULL, sp_test_env, tls_only, NULL), 0);
	assert_true(c.tls);
	assert_false(c.tls_verify);
	assert_string_equal(c.base_url, "https://h:2376");
	assert_string_equal(c.ca_file, "/home/u/.docker/ca.pem");
	sp_engine_config_release(&c);

	assert_int_equal(sp_engine_config_from_env(&c, NULL, sp_test_env, config_dir, NULL), 0);
	assert_string_equal(c.base_url, "https://[::1]:2376");
	assert_string_equal(c.key_file, "/cfg/key.pem");
	sp_engine_config_release(&c);
}

static void test_plain_tcp_default_port(void **state)
{
	static const char *env[] = { "DOCKER_HOST=tcp://10.0.0.1", NULL };
	struct sp_engine_config c;

	(void)state;
	assert_int_equal(sp_engine_config_from_env(&c, NULL, sp_test_env, env, NULL), 0);
	assert_string_equal(c.base_url, "http://10.0.0.1:2375");
	sp_engine_config_release(&c);
}

static void test_bad_hosts(void **state)
{
	static const char *env[] = { NULL };
	struct sp_engine_config c;
	struct sp_error err = SP_ERROR_INIT;

	(void)state;
	assert_int_equal(sp_engine_config_from_env(&c, "ssh://me@host", sp_test_env, env, &err),
			 SP_ECONFIG);
	assert_non_null(strstr(err.msg, "unsupported Docker host \"ssh://me@host\""));
	assert_int_equal(sp_engine_config_from_env(&c, "unix://", sp_test_env, env, &err), SP_ECONFIG);
	assert_int_equal(sp_engine_config_from_env(&c, "tcp://", sp_test_env, env, &err), SP_ECONFIG);
	assert_int_equal(sp_engine_config_from_env(&c, "/var/run/docker.sock", sp_test_env, env, &err),
			 SP_ECONFIG);
}

static void test_urlencode(void **state)
{
	struct sp_buf b = SP_BUF_INIT;

	(void)state;
	sp_engine_urlencode(&b, "{\"BASE_IMAGE\":\"a/b:c d\"}~._-");
	assert_string_equal(b.data, "%7B%22BASE_IMAGE%22%3A%22a%2Fb%3Ac%20d%22%7D~._-");
	sp_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_socket),
		cmocka_unit_test(test_docker_host_and_override),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_plain_tcp_default_port),
		cmocka_unit_test(test_bad_hosts),
		cmocka_unit_test(test_urlencode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
