/*
 * ids.c — random identifiers; see ids.h.
 */
#include "core/base/ids.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void sp_id_random(char *out, size_t len, const char *prefix, size_t nbytes)
{
	unsigned char r[32];
	size_t i, off;

	if (nbytes > sizeof(r))
		nbytes = sizeof(r);
	if (getrandom(r, nbytes, GRND_NONBLOCK) != (ssize_t)nbytes) {
		unsigned long long t = (unsigned long long)time(NULL) * 1000003u ^
				       (unsigned long long)getpid();
		for (i = 0; i < nbytes; i++)
			r[i] = (unsigned char)(t >> (8 * (i % 8)));
	}
	snprintf(out, len, "%s-", prefix);
	for (i = 0, off = strlen(out); i < nbytes && off + 2 < len; i++, off += 2)
		snprintf(out + off, len - off, "%02x", r[i]);
}
