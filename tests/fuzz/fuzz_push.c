/*
 * fuzz_push.c — libFuzzer target: the POST /images/{name}/push response
 * decoder (runners/docker/image.h), a consumer of the JSON message stream.
 *
 * The first input byte chooses how the body is cut into reads; the rest
 * is the body.  Events are received and their strings touched; a
 * successful finish must carry a digest.
 */
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "runners/docker/image.h"
#include "tests/fuzz/fuzz.h"

static void on_event(void *ud, const struct sp_image_push_event *ev)
{
	size_t *n = ud;

	if (ev->layer)
		*n += strlen(ev->layer);
	if (ev->text)
		*n += strlen(ev->text);
	if (ev->kind == SP_IMAGE_PUSH_PROGRESS && (ev->percent < 0 || ev->percent > 100))
		abort();
	(*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_image_push_decoder_opts o = {
		"reg.example.com:5000/team/app:v1", "reg.example.com:5000",
		"user \"ci\" from STAGEPIPE_REGISTRY_USER", on_event, NULL,
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_image_push_result res;
	struct sp_image_push_decoder *d;
	size_t events = 0, off = 0, i = 0;
	unsigned seed;
	int rc = 0;

	if (size < 1)
		return 0;
	seed = data[0];
	data++;
	size--;
	o.ud = &events;
	if (seed & 0x80)
		o.auth_desc = NULL;
	d = sp_image_push_decoder_new(&o);
	while (off < size) {
		size_t n = fuzz_chunk(seed, i++);
		if (n > size - off)
			n = size - off;
		rc = sp_image_push_decoder_feed(d, (const char *)data + off, n, &err);
		if (rc < 0)
			break;
		off += n;
	}
	memset(&res, 0, sizeof(res));
	if (rc == 0 && sp_image_push_decoder_finish(d, &res, &err) == 0) {
		if (!res.digest)
			abort(); /* success means a digest was seen */
		sp_image_push_result_release(&res);
	}
	sp_image_push_decoder_free(d);
	return 0;
}
