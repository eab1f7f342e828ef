/*
 * fuzz.h — small helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * Each target is one fuzz_<name>.c defining LLVMFuzzerTestOneInput (and,
 * when it needs set-up, LLVMFuzzerInitialize); this header only holds
 * static helpers so that every target stays one translation unit plus the
 * library.  Built by `make fuzz` / `make fuzz-smoke` with clang and
 * -fsanitize=fuzzer,address,undefined.
 */
#ifndef SP_FUZZ_H
#define SP_FUZZ_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Sends the structured log (sp_log) to /dev/null: warnings of a loader
 * would otherwise flood the fuzzer's output. */
static inline void fuzz_quiet_log(void)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (fd >= 0)
		sp_log_init(fd);
}

/* A NUL-terminated copy of data (the caller frees). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = sp_xmalloc(size + 1);

	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * Chunk sizes for feeding a stream in pieces, derived from a seed byte so
 * that the same input always splits the same way: 1..16 bytes, a prime,
 * or everything at once.
 */
static inline size_t fuzz_chunk(unsigned seed, size_t i)
{
	switch (seed % 4) {
	case 0: return (size_t)-1;                       /* all at once */
	case 1: return 1 + ((seed >> 2) + i * 7) % 16;   /* tiny pieces */
	case 2: return 7;
	default: return 1 + ((seed >> 2) * 131 + i * 977) % 4096;
	}
}

#endif
