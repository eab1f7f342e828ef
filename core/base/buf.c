/*
 * buf.c — growable byte buffer with a cap; see buf.h.
 */
#include "core/base/buf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"
#include "core/base/xalloc.h"

char sp_buf_empty[1];

void sp_buf_init(struct sp_buf *b, size_t cap)
{
	b->data = sp_buf_empty;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap;
}

void sp_buf_release(struct sp_buf *b)
{
	if (b->alloc)
		free(b->data);
	sp_buf_init(b, b->cap);
}

void sp_buf_reset(struct sp_buf *b)
{
	b->len = 0;
	if (b->alloc)
		b->data[0] = '\0';
}

int sp_buf_grow(struct sp_buf *b, size_t extra)
{
	size_t need;

	if (extra > (size_t)-1 - b->len - 1)
		return SP_ETOOBIG;
	if (b->cap && b->len + extra > b->cap)
		return SP_ETOOBIG;
	need = b->len + extra + 1;
	if (need <= b->alloc)
		return 0;
	if (!b->alloc) {
		b->data = NULL;
	}
	SP_GROW(b->data, b->alloc, need);
	if (b->len == 0)
		b->data[0] = '\0';
	return 0;
}

int sp_buf_add(struct sp_buf *b, const void *data, size_t len)
{
	int rc;

	if (len == 0)
		return 0;
	if ((rc = sp_buf_grow(b, len)) < 0)
		return rc;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int sp_buf_addstr(struct sp_buf *b, const char *s)
{
	return sp_buf_add(b, s, strlen(s));
}

int sp_buf_addch(struct sp_buf *b, char c)
{
	return sp_buf_add(b, &c, 1);
}

int sp_buf_vaddf(struct sp_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, rc;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	assert(n >= 0);
	if ((rc = sp_buf_grow(b, (size_t)n)) < 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int sp_buf_addf(struct sp_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sp_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void sp_buf_consume(struct sp_buf *b, size_t n)
{
	assert(n <= b->len);
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *sp_buf_detach(struct sp_buf *b, size_t *len)
{
	char *p;

	if (!b->alloc)
		p = sp_xstrdup("");
	else
		p = b->data;
	if (len)
		*len = b->len;
	b->data = sp_buf_empty;
	b->len = 0;
	b->alloc = 0;
	return p;
}
