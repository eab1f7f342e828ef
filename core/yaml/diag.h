/*
 * diag.h — positioned diagnostics for files the user wrote.
 *
 * The pipeline loader does not stop at the first mistake: it collects up
 * to SP_DIAGS_MAX messages, each with a 1-based line and column, and the
 * CLI prints them as "FILE:LINE:COL: message" (the format editors and
 * compilers use, so they are clickable).
 */
#ifndef SP_DIAG_H
#define SP_DIAG_H

#include <stddef.h>
#include <stdio.h>

#define SP_DIAGS_MAX 50

struct sp_diag {
	int line;   /* 1-based; 0 when the problem is the file as a whole */
	int col;    /* 1-based */
	char *msg;  /* owned */
};

struct sp_diags {
	struct sp_diag *items;
	size_t n, alloc;
	size_t dropped;  /* messages past SP_DIAGS_MAX, counted not kept */
};

#define SP_DIAGS_INIT { NULL, 0, 0, 0 }

void sp_diags_init(struct sp_diags *d);
void sp_diags_add(struct sp_diags *d, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Total reported, including dropped ones. */
size_t sp_diags_count(const struct sp_diags *d);
/* Sorts by position (stable) and prints "file:line:col: msg" lines to f. */
void sp_diags_print(struct sp_diags *d, const char *file, FILE *f);
/* Formats item i as "file:line:col: msg" into a new string; caller frees. */
char *sp_diags_format(const struct sp_diags *d, size_t i, const char *file);
void sp_diags_release(struct sp_diags *d);

#endif
