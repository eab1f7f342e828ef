/*
 * cobertura.h — reading coverage.py's Cobertura XML (`--cov-report=xml`).
 *
 * The test stage asks pytest-cov for a Cobertura report and reads the
 * line coverage from it for the `coverage.min` gate.  coverage.py writes:
 *
 *	<coverage lines-valid="118" lines-covered="78" line-rate="0.661"
 *	          branches-valid="44" branches-covered="18" branch-rate="0.4091" …>
 *	  <sources><source>/app/app</source></sources>
 *	  <packages><package name="." line-rate=…>
 *	    <classes><class name="main.py" filename="main.py" line-rate=…>
 *	      <methods/><lines><line number="3" hits="1"/> …
 *
 * Three figures come out of it, in percent:
 *   line_percent   lines-covered / lines-valid (line-rate when the counts
 *                  are absent, as with other Cobertura writers);
 *   branch_percent branches-covered / branches-valid, when measured;
 *   total_percent  coverage.py's own "TOTAL" figure, which is what pytest-cov
 *                  prints ("Total coverage: 59.26%") and what its fail_under
 *                  checks: with branch coverage on it is (lines + branches
 *                  covered) / (lines + branches valid), otherwise the line figure.
 * The two differ as soon as branch coverage is on (66.10% of lines vs a
 * 59.26% total for the same run), so say which one a gate uses.
 *
 * Per-file figures (the first SP_COBERTURA_MAX_FILES <class> elements) are
 * counted from their <line> elements, for "least covered files" listings.
 *
 * Streaming with libxml2's xmlTextReader, same safety as junit.h: no
 * network, no DTD, no entity substitution, DOCTYPE refused; memory flat.
 */
#ifndef SP_COBERTURA_H
#define SP_COBERTURA_H

#include <stddef.h>

#include "core/base/error.h"

/* Files listed with their own figures; the rest are only counted. */
#define SP_COBERTURA_MAX_FILES 1000

struct sp_cobertura_file {
	char *filename;              /* as written (relative to a <source>); never NULL */
	unsigned long lines_valid;   /* <line> elements */
	unsigned long lines_covered; /* ... with hits > 0 */
	double line_percent;         /* 100 when the file has no lines */
};

struct sp_cobertura {
	unsigned long lines_valid, lines_covered;       /* from the root element */
	unsigned long branches_valid, branches_covered;
	int has_line_counts;  /* lines-valid/-covered were given (else line-rate was used) */
	int has_branches;     /* branch figures were given and branches-valid > 0 */

	double line_percent;   /* 0..100 */
	double branch_percent; /* 0..100; 0 when !has_branches */
	double total_percent;  /* 0..100; coverage.py's total (see above) */

	struct sp_cobertura_file *files; /* in document order */
	size_t nfiles;                   /* at most SP_COBERTURA_MAX_FILES */
	size_t files_alloc;
	unsigned long files_omitted;
};

/* Initialises an empty result without allocating. */
void sp_cobertura_init(struct sp_cobertura *c);
/* Frees the file list; c is then as after sp_cobertura_init. */
void sp_cobertura_release(struct sp_cobertura *c);

/*
 * Parses the Cobertura report at path into *out (initialised here).  The
 * file must be a regular file (no symlink followed, no gzip sniffing).  On
 * success *out belongs to the caller (sp_cobertura_release); on failure it
 * is left released.  Returns 0, SP_ENOTFOUND when path does not exist, or
 * SP_ERROR: unreadable, not XML, DOCTYPE, root is not <coverage>, or the
 * root carries neither lines-valid/lines-covered nor line-rate.
 * A report that measured no lines (lines-valid="0") parses, with
 * line_percent 100 as coverage.py counts it; check lines_valid before
 * gating on such a report.
 */
int sp_cobertura_parse_file(struct sp_cobertura *out, const char *path, struct sp_error *err);

/* The same for a report in memory; name is used in messages. */
int sp_cobertura_parse_mem(struct sp_cobertura *out, const char *data, size_t len,
			   const char *name, struct sp_error *err);

#endif
