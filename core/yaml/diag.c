/*
 * diag.c — collecting and printing positioned diagnostics; see diag.h.
 */
#include "core/yaml/diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "core/base/buf.h"
#include "core/base/xalloc.h"

void sp_diags_init(struct sp_diags *d)
{
	d->items = NULL;
	d->n = d->alloc = d->dropped = 0;
}

void sp_diags_add(struct sp_diags *d, int line, int col, const char *fmt, ...)
{
	struct sp_buf b = SP_BUF_INIT;
	va_list ap;

	if (d->n >= SP_DIAGS_MAX) {
		d->dropped++;
		return;
	}
	va_start(ap, fmt);
	(void)sp_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	SP_GROW(d->items, d->alloc, d->n + 1);
	d->items[d->n].line = line;
	d->items[d->n].col = col;
	d->items[d->n].msg = sp_buf_detach(&b, NULL);
	d->n++;
}

size_t sp_diags_count(const struct sp_diags *d)
{
	return d->n + d->dropped;
}

char *sp_diags_format(const struct sp_diags *d, size_t i, const char *file)
{
	const struct sp_diag *g = &d->items[i];

	if (g->line <= 0)
		return sp_xasprintf("%s: %s", file, g->msg);
	return sp_xasprintf("%s:%d:%d: %s", file, g->line, g->col, g->msg);
}

void sp_diags_print(struct sp_diags *d, const char *file, FILE *f)
{
	size_t i, j;

	/* insertion sort: stable, and n is at most SP_DIAGS_MAX */
	for (i = 1; i < d->n; i++) {
		struct sp_diag t = d->items[i];
		for (j = i; j > 0; j--) {
			struct sp_diag *p = &d->items[j - 1];
			if (p->line < t.line || (p->line == t.line && p->col <= t.col))
				break;
			d->items[j] = *p;
		}
		d->items[j] = t;
	}
	for (i = 0; i < d->n; i++) {
		char *s = sp_diags_format(d, i, file);
		fprintf(f, "%s\n", s);
		free(s);
	}
	if (d->dropped)
		fprintf(f, "%s: %zu more errors not shown\n", file, d->dropped);
}

void sp_diags_release(struct sp_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->items[i].msg);
	free(d->items);
	sp_diags_init(d);
}
