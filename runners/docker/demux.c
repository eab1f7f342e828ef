/*
 * demux.c — Docker's framed stdout/stderr stream, demultiplexed as it
 * arrives; see demux.h.
 *
 * The loop alternates between two states: collecting the 8 header bytes
 * (which may come one by one over several reads) and passing payload bytes
 * straight through to the callback (as many as the current chunk holds, up
 * to the end of the frame).  Nothing is copied except the header, so memory
 * stays constant whatever the frame sizes.
 */
#include "runners/docker/demux.h"

#include <assert.h>
#include <string.h>

void sp_demux_init(struct sp_demux *d, sp_demux_fn fn, void *ud)
{
	assert(fn);
	memset(d, 0, sizeof(*d));
	d->fn = fn;
	d->ud = ud;
	d->stream = SP_DEMUX_STDOUT;
}

int sp_demux_mid_frame(const struct sp_demux *d)
{
	return d->hdr_len > 0 || d->left > 0;
}

/* Validates the complete header in d->hdr and starts its frame. */
static int start_frame(struct sp_demux *d, struct sp_error *err)
{
	const unsigned char *h = d->hdr;

	if (h[1] || h[2] || h[3] || h[0] > 3)
		return sp_error_set(err, SP_EENGINE,
				    "log stream: bad frame header %02x %02x %02x %02x %02x %02x %02x %02x "
				    "at byte %llu (not a multiplexed stream; was the container started with a TTY?)",
				    h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
				    (unsigned long long)(d->offset - SP_DEMUX_HEADER_SIZE));
	d->stream = h[0] == 0 ? SP_DEMUX_STDOUT : (enum sp_demux_stream)h[0];
	d->left = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | (uint32_t)h[7];
	d->hdr_len = 0;
	d->frames++;
	return 0;
}

int sp_demux_feed(struct sp_demux *d, const void *data, size_t len, struct sp_error *err)
{
	const char *p = data;
	int rc = 0;

	if (d->failed) {
		rc = sp_error_set(err, d->failed, "log stream: demultiplexer used after an error");
		goto out;
	}
	while (len > 0) {
		size_t n;

		if (d->left == 0) {
			n = SP_DEMUX_HEADER_SIZE - d->hdr_len;
			if (n > len)
				n = len;
			memcpy(d->hdr + d->hdr_len, p, n);
			d->hdr_len += n;
			d->offset += n;
			p += n;
			len -= n;
			if (d->hdr_len < SP_DEMUX_HEADER_SIZE)
				break;
			if ((rc = start_frame(d, err)) < 0)
				goto out;
			continue;
		}
		n = len < d->left ? len : d->left;
		d->left -= (uint32_t)n;
		d->offset += n;
		if ((rc = d->fn(d->ud, d->stream, p, n, err)) < 0)
			goto out;
		p += n;
		len -= n;
	}
out:
	if (rc < 0)
		d->failed = rc;
	return rc;
}

int sp_demux_finish(const struct sp_demux *d, struct sp_error *err)
{
	if (d->failed)
		return d->failed;
	if (d->hdr_len > 0)
		return sp_error_set(err, SP_EENGINE,
				    "log stream ended inside a frame header (%zu of %d bytes) at byte %llu",
				    d->hdr_len, SP_DEMUX_HEADER_SIZE, (unsigned long long)d->offset);
	if (d->left > 0)
		return sp_error_set(err, SP_EENGINE,
				    "log stream ended inside a frame: %lu bytes of %s missing at byte %llu",
				    (unsigned long)d->left,
				    d->stream == SP_DEMUX_STDERR ? "stderr" :
				    d->stream == SP_DEMUX_SYSERR ? "an engine message" : "stdout",
				    (unsigned long long)d->offset);
	return 0;
}
