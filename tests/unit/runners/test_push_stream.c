/*
 * test_push_stream.c — the POST /images/{name}/push stream decoder
 * (runners/docker/image.c).
 *
 * Real streams recorded from dockerd 20.10 ($SP_FIXTURES/push/NAME.jsonl,
 * see the README there), each fed whole and in pseudo-random chunks (the
 * events must not depend on where the body was split), plus synthetic
 * lines for what the recordings cannot show (Docker Hub's "denied",
 * retries, hostile input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "runners/docker/image.h"
#include "tests/unit/support/testutil.h"

#define DIGEST_TINY "sha256:9092a2a5d795d37f76298825f92c576dcda0108dd102b062d0d8d8aa8f8b912c"
#define AUTH_DESC "user \"sp-user\" from STAGEPIPE_REGISTRY_USER/STAGEPIPE_REGISTRY_PASSWORD"

/* Events as text, one per line, to compare runs. */
static void record(void *ud, const struct sp_image_push_event *ev)
{
	struct sp_buf *b = ud;

	switch (ev->kind) {
	case SP_IMAGE_PUSH_LAYER:
		sp_buf_addf(b, "L %s %s [%s]\n", ev->layer, sp_image_layer_state_name(ev->state), ev->text);
		break;
	case SP_IMAGE_PUSH_PROGRESS:
		sp_buf_addf(b, "P %s %d%%\n", ev->layer, ev->percent);
		break;
	case SP_IMAGE_PUSH_MESSAGE:
		sp_buf_addf(b, "M %s\n", ev->text);
		break;
	case SP_IMAGE_PUSH_AUTH:
		sp_buf_addf(b, "A %s\n", ev->text);
		break;
	case SP_IMAGE_PUSH_DONE:
		sp_buf_addf(b, "D %s %zu layers, %zu pushed, %zu existing, %zu mounted\n",
			    ev->result->digest, ev->result->layers, ev->result->pushed,
			    ev->result->existing, ev->result->mounted);
		break;
	}
}

struct run {
	struct sp_buf events;
	struct sp_image_push_result res;
	struct sp_error err;
	int rc;
};

/* Feeds data in chunks of at most max bytes (0: whole), seeded sizes. */
static void run_stream(struct run *r, const char *data, size_t len, size_t max,
		       const char *ref, const char *registry)
{
	struct sp_image_push_decoder_opts o;
	struct sp_image_push_decoder *d;
	unsigned seed = 12345;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	sp_buf_init(&r->events, 0);
	memset(&o, 0, sizeof(o));
	o.ref = ref;
	o.registry = registry;
	o.auth_desc = AUTH_DESC;
	o.on_event = record;
	o.ud = &r->events;
	d = sp_image_push_decoder_new(&o);
	while (off < len) {
		size_t n = len - off;
		if (max) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 8) % max;
			if (n > len - off)
				n = len - off;
		}
		r->rc = sp_image_push_decoder_feed(d, data + off, n, &r->err);
		if (r->rc < 0)
			break;
		off += n;
	}
	if (r->rc == 0)
		r->rc = sp_image_push_decoder_finish(d, &r->res, &r->err);
	sp_image_push_decoder_free(d);
}

static void run_release(struct run *r)
{
	sp_buf_release(&r->events);
	sp_image_push_result_release(&r->res);
}

/* Runs a fixture whole and in 1..7 and 1..300 byte chunks: same outcome. */
static void run_fixture(struct run *r, const char *name, const char *ref, const char *registry)
{
	static const size_t sizes[] = { 7, 300 };
	size_t len, i;
	char *data = sp_test_read_fixture("push", name, &len);

	run_stream(r, data, len, 0, ref, registry);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct run again;
		run_stream(&again, data, len, sizes[i], ref, registry);
		assert_int_equal(again.rc, r->rc);
		assert_string_equal(again.events.data, r->events.data);
		assert_string_equal(again.err.msg, r->err.msg);
		run_release(&again);
	}
	free(data);
}

#define TINY "127.0.0.1:5000/stagepipe-rec/tiny:v1"

static void test_first_push(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "ok.jsonl", TINY, "127.0.0.1:5000");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.events.data,
		"M The push refers to repository [127.0.0.1:5000/stagepipe-rec/tiny]\n"
		"L 02ab8c4034f1 preparing [Preparing]\n"
		"L f6549b609ed3 preparing [Preparing]\n"
		"L f6549b609ed3 pushing [Pushing]\n"
		"P f6549b609ed3 100%\n"
		"L 02ab8c4034f1 pushing [Pushing]\n"
		"P 02ab8c4034f1 10%\n"
		"P 02ab8c4034f1 100%\n"
		"L f6549b609ed3 pushed [Pushed]\n"
		"L 02ab8c4034f1 pushed [Pushed]\n"
		"M v1: digest: " DIGEST_TINY " size: 734\n"
		"D " DIGEST_TINY " 2 layers, 2 pushed, 0 existing, 0 mounted\n");
	assert_string_equal(r.res.digest, DIGEST_TINY);
	assert_string_equal(r.res.tag, "v1");
	assert_int_equal(r.res.size, 734);
	run_release(&r);
}

static void test_already_there(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "exists.jsonl", TINY, "127.0.0.1:5000");
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.events.data, "L 02ab8c4034f1 already exists [Layer already exists]\n"));
	assert_int_equal(r.res.layers, 2);
	assert_int_equal(r.res.pushed, 0);
	assert_int_equal(r.res.existing, 2);
	assert_string_equal(r.res.digest, DIGEST_TINY);
	run_release(&r);

	run_fixture(&r, "mounted.jsonl", "127.0.0.1:5000/stagepipe-rec/other:v1", "127.0.0.1:5000");
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.events.data,
			       "L f6549b609ed3 mounted [Mounted from stagepipe-rec/tiny]\n"));
	assert_int_equal(r.res.mounted, 2);
	assert_int_equal(r.res.pushed, 0);
	run_release(&r);
}

static void test_waiting_and_many_layers(void **state)
{
	struct run r;
	const char *p;
	int waiting = 0;

	(void)state;
	run_fixture(&r, "waiting.jsonl", "127.0.0.1:5000/stagepipe-rec/eight:v1", "127.0.0.1:5000");
	assert_int_equal(r.rc, 0);
	for (p = r.events.data; (p = strstr(p, " waiting [Waiting]")); p++)
		waiting++;
	assert_int_equal(waiting, 3);
	assert_int_equal(r.res.layers, 8);
	assert_int_equal(r.res.pushed, 8);
	assert_int_equal(r.res.size, 1997);
	run_release(&r);
}

static void test_big_layer_progress_in_tenths(void **state)
{
	struct run r;
	char want[64];
	int pct;

	(void)state;
	run_fixture(&r, "big.jsonl", "127.0.0.1:5001/stagepipe-rec/python:bookworm", "127.0.0.1:5001");
	assert_int_equal(r.rc, 0);
	/* 96 "Pushing" lines become one state change and ten progress events */
	for (pct = 10; pct <= 100; pct += 10) {
		snprintf(want, sizeof(want), "P 7acff348efdd %d%%\n", pct);
		assert_non_null(strstr(r.events.data, want));
		assert_null(strstr(strstr(r.events.data, want) + 1, want));
	}
	assert_int_equal(r.res.pushed, 1);
	assert_string_equal(r.res.tag, "bookworm");
	run_release(&r);
}

static void test_auth_failures(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "badauth.jsonl", "127.0.0.1:5001/stagepipe-rec/tiny:v1", "127.0.0.1:5001");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "registry 127.0.0.1:5001 refused the push of "
				   "127.0.0.1:5001/stagepipe-rec/tiny:v1: unauthorized: "
				   "authentication required"));
	assert_non_null(strstr(r.err.msg, "credentials sent: " AUTH_DESC));
	assert_non_null(strstr(r.err.msg, "DOCKER_AUTH_CONFIG"));
	assert_non_null(strstr(r.err.msg, "config.json"));
	assert_null(r.res.digest);
	run_release(&r);

	run_fixture(&r, "noauth.jsonl", "127.0.0.1:5001/stagepipe-rec/tiny:v1", "127.0.0.1:5001");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "registry 127.0.0.1:5001 refused the push"));
	assert_non_null(strstr(r.err.msg, "no basic auth credentials"));
	run_release(&r);
}

static void test_unreachable(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "refused.jsonl", "127.0.0.1:5009/stagepipe-rec/tiny:v1", "127.0.0.1:5009");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "cannot reach registry 127.0.0.1:5009 to push "
				   "127.0.0.1:5009/stagepipe-rec/tiny:v1: "));
	assert_non_null(strstr(r.err.msg, "connection refused"));
	run_release(&r);

	run_fixture(&r, "nohost.jsonl", "registry.stagepipe.invalid/stagepipe-rec/tiny:v1",
		    "registry.stagepipe.invalid");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "cannot reach registry registry.stagepipe.invalid"));
	assert_non_null(strstr(r.err.msg, "no such host"));
	run_release(&r);
}

static void test_no_local_tag(void **state)
{
	struct run r;

	(void)state;
	run_fixture(&r, "notag.jsonl", "127.0.0.1:5000/stagepipe-rec/nosuch:v1", "127.0.0.1:5000");
	assert_int_equal(r.rc, SP_ENOTFOUND);
	assert_non_null(strstr(r.err.msg, "An image does not exist locally with the tag"));
	run_release(&r);
}

static void feed_text(struct run *r, const char *text)
{
	run_stream(r, text, strlen(text), 0, "docker.io/team/app:1", "docker.io");
}

static void test_synthetic(void **state)
{
	struct run r;

	(void)state;
	/* Docker Hub, pushing to someone else's namespace */
	feed_text(&r, "{\"status\":\"Preparing\",\"id\":\"aaa\"}\r\n"
		      "{\"errorDetail\":{\"message\":\"denied: requested access to the resource is "
		      "denied\"},\"error\":\"denied: requested access to the resource is denied\"}\r\n");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "registry docker.io refused the push of docker.io/team/app:1"));
	run_release(&r);

	/* a retried layer: one event per state change; no trailing newline */
	feed_text(&r, "{\"status\":\"Pushing\",\"progressDetail\":{\"current\":10,\"total\":100},\"id\":\"a\"}\n"
		      "{\"status\":\"Retrying in 5 seconds\",\"id\":\"a\"}\n"
		      "{\"status\":\"Retrying in 4 seconds\",\"id\":\"a\"}\n"
		      "{\"status\":\"Pushing\",\"progressDetail\":{\"current\":5,\"total\":100},\"id\":\"a\"}\n"
		      "{\"status\":\"Pushing\",\"progressDetail\":{\"current\":30,\"total\":100},\"id\":\"a\"}\n"
		      "{\"status\":\"Pushed\",\"id\":\"a\"}\n"
		      "{\"status\":\"something new\",\"id\":\"a\"}\n"
		      "\n"
		      "{\"aux\":{\"Tag\":\"1\",\"Digest\":\"sha256:abc\",\"Size\":5}}");
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.events.data,
		"L a pushing [Pushing]\n"
		"P a 10%\n"
		"L a retrying [Retrying in 5 seconds]\n"
		"L a pushing [Pushing]\n"
		"P a 30%\n"
		"L a pushed [Pushed]\n"
		"M a: something new\n"
		"D sha256:abc 1 layers, 1 pushed, 0 existing, 0 mounted\n");
	run_release(&r);

	/* a stream that ends without its digest */
	feed_text(&r, "{\"status\":\"Preparing\",\"id\":\"a\"}\n{\"status\":\"Pushed\",\"id\":\"a\"}\n");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "ended without a digest"));
	run_release(&r);

	/* some other registry error */
	feed_text(&r, "{\"error\":\"received unexpected HTTP status: 500 Internal Server Error\"}\n"
		      "{\"aux\":{\"Tag\":\"1\",\"Digest\":\"sha256:abc\",\"Size\":5}}\n");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "pushing docker.io/team/app:1 to registry docker.io "
				   "failed: received unexpected HTTP status: 500"));
	run_release(&r);
}

static void test_hostile_input(void **state)
{
	struct sp_image_push_decoder_opts o;
	struct sp_image_push_decoder *d;
	struct sp_image_push_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct run r;
	char *big;
	size_t i;

	(void)state;
	feed_text(&r, "{\"status\":\"Preparing\",\"id\":\"a\"}\nnot json\n");
	assert_int_equal(r.rc, SP_EENGINE);
	assert_non_null(strstr(r.err.msg, "push stream line 2: not a JSON object"));
	run_release(&r);
	feed_text(&r, "[1,2]\n");
	assert_int_equal(r.rc, SP_EENGINE);
	run_release(&r);

	/* an endless line; the error sticks */
	memset(&o, 0, sizeof(o));
	d = sp_image_push_decoder_new(&o);
	big = sp_xmalloc(SP_IMAGE_PUSH_LINE_MAX / 4);
	memset(big, ' ', SP_IMAGE_PUSH_LINE_MAX / 4);
	for (i = 0; i < 5 && sp_image_push_decoder_feed(d, big, SP_IMAGE_PUSH_LINE_MAX / 4, &err) == 0; i++)
		;
	assert_int_equal(err.code, SP_ETOOBIG);
	assert_int_equal(sp_image_push_decoder_feed(d, "{}\n", 3, &err), SP_ETOOBIG);
	assert_int_equal(sp_image_push_decoder_finish(d, &res, &err), SP_ETOOBIG);
	assert_null(res.digest);
	sp_image_push_decoder_free(d);
	free(big);

	/* more layers than we track */
	d = sp_image_push_decoder_new(&o);
	for (i = 0; i < SP_IMAGE_PUSH_LAYERS_MAX + 100; i++) {
		char line[80];
		int n = snprintf(line, sizeof(line), "{\"status\":\"Pushed\",\"id\":\"l%zu\"}\n", i);
		assert_int_equal(sp_image_push_decoder_feed(d, line, (size_t)n, &err), 0);
	}
	{
		static const char last[] = "{\"aux\":{\"Digest\":\"sha256:x\"}}\n";
		assert_int_equal(sp_image_push_decoder_feed(d, last, strlen(last), &err), 0);
	}
	assert_int_equal(sp_image_push_decoder_finish(d, &res, &err), 0);
	assert_int_equal(res.layers, SP_IMAGE_PUSH_LAYERS_MAX);
	assert_null(res.tag);
	sp_image_push_result_release(&res);
	sp_image_push_decoder_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_push),
		cmocka_unit_test(test_already_there),
		cmocka_unit_test(test_waiting_and_many_layers),
		cmocka_unit_test(test_big_layer_progress_in_tenths),
		cmocka_unit_test(test_auth_failures),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_no_local_tag),
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_hostile_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
