/*
 * ids.h — random identifiers for jobs and builds.
 */
#ifndef SP_IDS_H
#define SP_IDS_H

#include <stddef.h>

/*
 * Writes "<prefix>-<2*nbytes hex>" into out (len bytes, always
 * NUL-terminated), from getrandom(); falls back to the clock and the pid
 * when the kernel has no entropy to give.
 */
void sp_id_random(char *out, size_t len, const char *prefix, size_t nbytes);

#endif
