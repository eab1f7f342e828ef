/*
 * ydoc.h — a YAML document as a small tree with positions and limits.
 *
 * libyaml's event parser is driven here into a tree of sp_ynode (scalar,
 * sequence, mapping) that keeps every node's line and column, so that the
 * schema checks in pipeline.c can point at the exact place of a mistake.
 *
 * Hostile input is refused with a positioned message before it costs
 * memory: nesting depth, scalar length, node count and — the "billion
 * laughs" case — the size of the document with its aliases expanded are
 * all capped.  Aliases are not copied: an alias is a second pointer to
 * the anchored node, and each node knows its expanded size.
 *
 * Also handled here, so the schema never sees them: duplicate keys (an
 * error) and YAML merge keys ("<<: *defaults"), which CI files use a lot.
 */
#ifndef SP_YDOC_H
#define SP_YDOC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/yaml/diag.h"

enum sp_ynode_kind { SP_YSCALAR, SP_YSEQ, SP_YMAP };

struct sp_ynode {
	enum sp_ynode_kind kind;
	int line, col;            /* 1-based position of the node's start */
	bool plain;               /* scalar written without quotes or block style */
	char *value;              /* scalar text, NUL-terminated; NULL otherwise */
	size_t len;               /* scalar length in bytes */
	struct sp_ynode **items;  /* SEQ: n items; MAP: n/2 pairs, interleaved */
	size_t n, alloc;          /*   (items[2i] the key, items[2i+1] its value) */
	size_t expanded;          /* node count with aliases expanded (saturating) */
};

struct sp_ydoc_limits {
	size_t max_depth;      /* nesting of sequences and mappings */
	size_t max_scalar;     /* bytes in one scalar */
	size_t max_nodes;      /* nodes as written */
	size_t max_expanded;   /* nodes with aliases expanded */
	size_t max_anchors;
	size_t max_keys;       /* pairs in one mapping */
};

#define SP_YDOC_LIMITS_DEFAULT { 64, 256 * 1024, 100000, 100000, 1000, 2000 }

struct sp_ydoc {
	struct sp_ynode *root;    /* NULL for an empty document */
	struct sp_ynode **nodes;  /* every node, for release */
	size_t nnodes, alloc;
};

#define SP_YDOC_INIT { NULL, NULL, 0, 0 }

/*
 * Parses one YAML document from data.  Returns 0, or SP_ECONFIG with the
 * problems added to diags (at least one).  On error doc is left empty.
 * lim may be NULL for the defaults.
 */
int sp_ydoc_parse(struct sp_ydoc *doc, const char *data, size_t len,
		  const struct sp_ydoc_limits *lim, struct sp_diags *diags);
void sp_ydoc_release(struct sp_ydoc *doc);

struct sp_buf;

/*
 * Reads the file at path (a pipeline, a server config) into out, which is
 * initialised here with max as its cap, for sp_ydoc_parse.  Problems go to
 * diags at line 0: "cannot open: …", "cannot read: …", "is a directory,
 * not a KIND", "file is larger than MAX bytes; refusing it".  Returns 0 or
 * SP_ECONFIG; the caller releases out either way.
 */
int sp_ydoc_read_file(struct sp_buf *out, const char *path, size_t max, const char *kind,
		      struct sp_diags *diags);

/* The value under key in a mapping (borrowed), or NULL. */
const struct sp_ynode *sp_ynode_get(const struct sp_ynode *map, const char *key);
/* A plain "", "~" or "null" scalar. */
bool sp_ynode_is_null(const struct sp_ynode *n);
/* "sequence", "mapping", "string", "number", "boolean" or "null": for messages. */
const char *sp_ynode_kind_name(const struct sp_ynode *n);

#endif
