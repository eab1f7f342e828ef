/*
 * xalloc.h — allocation wrappers that never return NULL.
 *
 * stagepipe is an application: when malloc fails there is nothing sensible
 * left to do, so these abort with a message instead of making every caller
 * test for NULL.  Limits on *untrusted* sizes are enforced elsewhere (see
 * struct sp_buf's cap) and reported as errors, never as aborts.
 */
#ifndef SP_XALLOC_H
#define SP_XALLOC_H

#include <stddef.h>

void *sp_xmalloc(size_t size);
void *sp_xcalloc(size_t nmemb, size_t size);
void *sp_xrealloc(void *ptr, size_t size);
/* Grows *ptr (an array of elem-sized items with *alloc slots) to hold at least need. */
void sp_xgrow(void **ptr, size_t *alloc, size_t need, size_t elem);
char *sp_xstrdup(const char *s);
char *sp_xstrndup(const char *s, size_t n);
/* printf into a new string; the caller frees it. */
char *sp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SP_GROW(ptr, alloc, need) \
	sp_xgrow((void **)&(ptr), &(alloc), (need), sizeof(*(ptr)))

#endif
