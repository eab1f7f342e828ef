/*
 * ydoc.c — libyaml events → a positioned tree, with limits; see ydoc.h.
 *
 * The parse is a loop over events with an explicit stack of open
 * collections (no recursion, so nesting depth costs no C stack).  Every
 * node is allocated once and recorded in doc->nodes; aliases add a second
 * pointer to an existing node, so the tree is really a DAG and release
 * walks doc->nodes, never the tree.
 */
#include "core/yaml/ydoc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

struct frame {
	struct sp_ynode *node;
	char *anchor;  /* registered when the collection ends */
};

struct anchor {
	char *name;
	struct sp_ynode *node;
};

struct parser {
	struct sp_ydoc *doc;
	const struct sp_ydoc_limits *lim;
	struct sp_diags *diags;
	struct frame *stack;
	size_t depth, stack_alloc;
	struct anchor *anchors;
	size_t nanchors, anchors_alloc;
	size_t raw_nodes;
	int documents;
};

static int fail(struct parser *p, const yaml_mark_t *m, const char *msg)
{
	sp_diags_add(p->diags, (int)m->line + 1, (int)m->column + 1, "%s", msg);
	return SP_ECONFIG;
}

static size_t sat_add(size_t a, size_t b)
{
	return a > (size_t)-1 - b ? (size_t)-1 : a + b;
}

static struct sp_ynode *new_node(struct parser *p, enum sp_ynode_kind kind,
				 const yaml_mark_t *m)
{
	struct sp_ydoc *doc = p->doc;
	struct sp_ynode *n = sp_xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	n->expanded = 1;
	SP_GROW(doc->nodes, doc->alloc, doc->nnodes + 1);
	doc->nodes[doc->nnodes++] = n;
	return n;
}

static int count_node(struct parser *p, const yaml_mark_t *m)
{
	char msg[128];

	if (++p->raw_nodes <= p->lim->max_nodes)
		return 0;
	snprintf(msg, sizeof(msg), "too many YAML nodes (more than %zu)", p->lim->max_nodes);
	return fail(p, m, msg);
}

static int add_anchor(struct parser *p, const char *name, struct sp_ynode *node,
		      const yaml_mark_t *m)
{
	char msg[128];

	if (p->nanchors >= p->lim->max_anchors) {
		snprintf(msg, sizeof(msg), "too many anchors (more than %zu)", p->lim->max_anchors);
		return fail(p, m, msg);
	}
	SP_GROW(p->anchors, p->anchors_alloc, p->nanchors + 1);
	p->anchors[p->nanchors].name = sp_xstrdup(name);
	p->anchors[p->nanchors].node = node;
	p->nanchors++;
	return 0;
}

static struct sp_ynode *find_anchor(struct parser *p, const char *name)
{
	size_t i;

	/* newest first: a redefined anchor replaces the old one */
	for (i = p->nanchors; i > 0; i--)
		if (!strcmp(p->anchors[i - 1].name, name))
			return p->anchors[i - 1].node;
	return NULL;
}

/* Appends child to the open collection (or makes it the root). */
static int add_child(struct parser *p, struct sp_ynode *child, const yaml_mark_t *m)
{
	struct sp_ynode *parent;
	char msg[160];

	if (p->depth == 0) {
		p->doc->root = child;
		return 0;
	}
	parent = p->stack[p->depth - 1].node;
	if (parent->kind == SP_YMAP && parent->n % 2 == 0) {
		if (child->kind != SP_YSCALAR)
			return fail(p, m, "mapping keys must be plain strings");
		if (parent->n / 2 >= p->lim->max_keys) {
			snprintf(msg, sizeof(msg), "mapping has more than %zu keys", p->lim->max_keys);
			return fail(p, m, msg);
		}
	}
	SP_GROW(parent->items, parent->alloc, parent->n + 1);
	parent->items[parent->n++] = child;
	parent->expanded = sat_add(parent->expanded, child->expanded);
	if (parent->expanded > p->lim->max_expanded) {
		snprintf(msg, sizeof(msg),
			 "aliases expand this document to more than %zu nodes "
			 "(an alias bomb?); refusing it", p->lim->max_expanded);
		return fail(p, m, msg);
	}
	return 0;
}

static bool is_merge_key(const struct sp_ynode *k)
{
	return k->plain && k->len == 2 && !memcmp(k->value, "<<", 2);
}

static bool same_key(const struct sp_ynode *a, const struct sp_ynode *b)
{
	return a->len == b->len && !memcmp(a->value, b->value, a->len);
}

static bool has_key(struct sp_ynode **items, size_t n, const struct sp_ynode *key)
{
	size_t i;

	for (i = 0; i < n; i += 2)
		if (same_key(items[i], key))
			return true;
	return false;
}

/* Duplicate keys are errors; "<<" merge keys are folded in (explicit keys win). */
static int finish_map(struct parser *p, struct sp_ynode *m)
{
	struct sp_ynode **out = NULL;
	size_t i, j, nout = 0, aout = 0;
	bool merges = false;
	int rc = 0;

	for (i = 0; i < m->n; i += 2) {
		if (is_merge_key(m->items[i])) {
			merges = true;
			continue;
		}
		for (j = 0; j < i; j += 2) {
			if (same_key(m->items[j], m->items[i])) {
				sp_diags_add(p->diags, m->items[i]->line, m->items[i]->col,
					     "duplicate key \"%s\" (first at line %d)",
					     m->items[i]->value, m->items[j]->line);
				return SP_ECONFIG;
			}
		}
	}
	if (!merges)
		return 0;
	for (i = 0; i < m->n; i += 2) {
		if (is_merge_key(m->items[i]))
			continue;
		SP_GROW(out, aout, nout + 2);
		out[nout++] = m->items[i];
		out[nout++] = m->items[i + 1];
	}
	for (i = 0; i < m->n; i += 2) {
		struct sp_ynode *v = m->items[i + 1], *const *srcs;
		size_t nsrc, s;

		if (!is_merge_key(m->items[i]))
			continue;
		if (v->kind == SP_YMAP) {
			srcs = &m->items[i + 1];
			nsrc = 1;
		} else if (v->kind == SP_YSEQ) {
			srcs = v->items;
			nsrc = v->n;
		} else {
			sp_diags_add(p->diags, v->line, v->col,
				     "the value of \"<<\" must be a mapping or a list of mappings");
			rc = SP_ECONFIG;
			goto out;
		}
		for (s = 0; s < nsrc; s++) {
			if (srcs[s]->kind != SP_YMAP) {
				sp_diags_add(p->diags, srcs[s]->line, srcs[s]->col,
					     "\"<<\" can only merge mappings");
				rc = SP_ECONFIG;
				goto out;
			}
			for (j = 0; j < srcs[s]->n; j += 2) {
				if (has_key(out, nout, srcs[s]->items[j]))
					continue;
				SP_GROW(out, aout, nout + 2);
				out[nout++] = srcs[s]->items[j];
				out[nout++] = srcs[s]->items[j + 1];
			}
		}
	}
	free(m->items);
	m->items = out;
	m->n = nout;
	m->alloc = aout;
	out = NULL;  /* now owned by m */
out:
	free(out);
	return rc;
}

static int on_scalar(struct parser *p, yaml_event_t *ev)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	struct sp_ynode *n;
	char msg[128];
	int rc;

	if ((rc = count_node(p, &ev->start_mark)) < 0)
		return rc;
	if (ev->data.scalar.length > p->lim->max_scalar) {
		snprintf(msg, sizeof(msg), "value longer than %zu bytes", p->lim->max_scalar);
		return fail(p, &ev->start_mark, msg);
	}
	if (tag && strcmp(tag, YAML_STR_TAG) != 0)
		return fail(p, &ev->start_mark, "YAML tags other than !!str are not supported");
	n = new_node(p, SP_YSCALAR, &ev->start_mark);
	n->value = sp_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
	n->len = ev->data.scalar.length;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
	if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
		return fail(p, &ev->start_mark, "NUL character in a value");
	if (ev->data.scalar.anchor &&
	    (rc = add_anchor(p, (const char *)ev->data.scalar.anchor, n, &ev->start_mark)) < 0)
		return rc;
	return add_child(p, n, &ev->start_mark);
}

static int on_start(struct parser *p, yaml_event_t *ev, enum sp_ynode_kind kind)
{
	const yaml_char_t *anchor, *tag;
	struct sp_ynode *n;
	char msg[128];
	int rc;

	if ((rc = count_node(p, &ev->start_mark)) < 0)
		return rc;
	if (p->depth >= p->lim->max_depth) {
		snprintf(msg, sizeof(msg), "nested more than %zu levels deep", p->lim->max_depth);
		return fail(p, &ev->start_mark, msg);
	}
	if (kind == SP_YMAP) {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	} else {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	}
	if (tag)
		return fail(p, &ev->start_mark, "YAML tags on mappings and lists are not supported");
	n = new_node(p, kind, &ev->start_mark);
	SP_GROW(p->stack, p->stack_alloc, p->depth + 1);
	p->stack[p->depth].node = n;
	p->stack[p->depth].anchor = anchor ? sp_xstrdup((const char *)anchor) : NULL;
	p->depth++;
	return 0;
}

static int on_end(struct parser *p, yaml_event_t *ev)
{
	struct frame f = p->stack[--p->depth];
	int rc = 0;

	if (f.node->kind == SP_YMAP && (rc = finish_map(p, f.node)) < 0)
		goto out;
	if (f.anchor && (rc = add_anchor(p, f.anchor, f.node, &ev->start_mark)) < 0)
		goto out;
	rc = add_child(p, f.node, &ev->start_mark);
out:
	free(f.anchor);
	return rc;
}

static int on_alias(struct parser *p, yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct sp_ynode *target = find_anchor(p, name);
	char msg[160];
	int rc;

	if ((rc = count_node(p, &ev->start_mark)) < 0)
		return rc;
	if (!target) {
		snprintf(msg, sizeof(msg), "unknown alias *%.60s (no earlier &%.60s)", name, name);
		return fail(p, &ev->start_mark, msg);
	}
	return add_child(p, target, &ev->start_mark);
}

/* libyaml's own error, positioned. */
static int parser_error(struct parser *p, const yaml_parser_t *yp, const char *data, size_t len)
{
	yaml_mark_t m = yp->problem_mark;
	const char *problem = yp->problem ? yp->problem : "invalid YAML";

	if (yp->error == YAML_READER_ERROR) {
		/* only an offset is known: turn it into a position */
		size_t off = yp->problem_offset < len ? yp->problem_offset : len, i;
		m.line = 0;
		m.column = 0;
		for (i = 0; i < off; i++) {
			if (data[i] == '\n') {
				m.line++;
				m.column = 0;
			} else {
				m.column++;
			}
		}
	}
	if (yp->context)
		sp_diags_add(p->diags, (int)m.line + 1, (int)m.column + 1, "YAML syntax: %s %s (line %d)",
			     problem, yp->context, (int)yp->context_mark.line + 1);
	else
		sp_diags_add(p->diags, (int)m.line + 1, (int)m.column + 1, "YAML syntax: %s", problem);
	return SP_ECONFIG;
}

int sp_ydoc_parse(struct sp_ydoc *doc, const char *data, size_t len,
		  const struct sp_ydoc_limits *lim, struct sp_diags *diags)
{
	static const struct sp_ydoc_limits defaults = SP_YDOC_LIMITS_DEFAULT;
	struct parser p;
	yaml_parser_t yp;
	yaml_event_t ev;
	bool done = false;
	size_t i;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	memset(doc, 0, sizeof(*doc));
	p.doc = doc;
	p.lim = lim ? lim : &defaults;
	p.diags = diags;
	if (!yaml_parser_initialize(&yp)) {
		/* fails only when malloc does: fatal, as in xalloc.c */
		fputs("stagepipe: out of memory\n", stderr);
		abort();
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)data, len);
	yaml_parser_set_encoding(&yp, YAML_UTF8_ENCODING);
	while (!done) {
		if (!yaml_parser_parse(&yp, &ev)) {
			rc = parser_error(&p, &yp, data, len);
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++p.documents > 1)
				rc = fail(&p, &ev.start_mark,
					  "only one YAML document is allowed in a pipeline file");
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(&p, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = on_start(&p, &ev, SP_YSEQ);
			break;
		case YAML_MAPPING_START_EVENT:
			rc = on_start(&p, &ev, SP_YMAP);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			rc = on_end(&p, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = on_alias(&p, &ev);
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rc < 0)
			break;
	}
	yaml_parser_delete(&yp);
	for (i = 0; i < p.depth; i++)
		free(p.stack[i].anchor);
	free(p.stack);
	for (i = 0; i < p.nanchors; i++)
		free(p.anchors[i].name);
	free(p.anchors);
	if (rc < 0)
		sp_ydoc_release(doc);
	return rc;
}

void sp_ydoc_release(struct sp_ydoc *doc)
{
	size_t i;

	for (i = 0; i < doc->nnodes; i++) {
		free(doc->nodes[i]->value);
		free(doc->nodes[i]->items);
		free(doc->nodes[i]);
	}
	free(doc->nodes);
	memset(doc, 0, sizeof(*doc));
}

const struct sp_ynode *sp_ynode_get(const struct sp_ynode *map, const char *key)
{
	size_t i, klen = strlen(key);

	if (!map || map->kind != SP_YMAP)
		return NULL;
	for (i = 0; i < map->n; i += 2)
		if (map->items[i]->len == klen && !memcmp(map->items[i]->value, key, klen))
			return map->items[i + 1];
	return NULL;
}

bool sp_ynode_is_null(const struct sp_ynode *n)
{
	if (n->kind != SP_YSCALAR || !n->plain)
		return false;
	return n->len == 0 || !strcmp(n->value, "~") || !strcmp(n->value, "null") ||
	       !strcmp(n->value, "Null") || !strcmp(n->value, "NULL");
}

static bool looks_number(const char *s)
{
	char *end;

	if (!*s)
		return false;
	(void)strtod(s, &end);
	return *end == '\0';
}

const char *sp_ynode_kind_name(const struct sp_ynode *n)
{
	if (n->kind == SP_YSEQ)
		return "a list";
	if (n->kind == SP_YMAP)
		return "a mapping";
	if (sp_ynode_is_null(n))
		return "null";
	if (n->plain && (!strcmp(n->value, "true") || !strcmp(n->value, "false")))
		return "a boolean";
	if (n->plain && looks_number(n->value))
		return "a number";
	return "a string";
}

int sp_ydoc_read_file(struct sp_buf *out, const char *path, size_t max, const char *kind,
		      struct sp_diags *diags)
{
	struct stat st;
	char chunk[65536];
	ssize_t n;
	int fd, rc = 0;

	sp_buf_init(out, max);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		sp_diags_add(diags, 0, 0, "cannot open: %s", strerror(errno));
		return SP_ECONFIG;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		sp_diags_add(diags, 0, 0, "is a directory, not a %s", kind);
		rc = SP_ECONFIG;
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sp_diags_add(diags, 0, 0, "cannot read: %s", strerror(errno));
			rc = SP_ECONFIG;
			goto out;
		}
		if (sp_buf_add(out, chunk, (size_t)n) < 0) {
			sp_diags_add(diags, 0, 0, "file is larger than %zu bytes; refusing it", max);
			rc = SP_ECONFIG;
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}
