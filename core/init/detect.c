/*
 * detect.c — reads an existing Python project for `stagepipe init`.
 *
 * Everything here only reads.  Files are read whole but capped
 * (MAX_FILE): a project file larger than that is not one init can use,
 * and the folder walks are bounded (MAX_SCAN files, MAX_DEPTH levels) so
 * a huge tree costs a bounded time.  pyproject.toml goes through the small
 * TOML reader (toml.h); setup.cfg through the INI reading below, limited
 * to the keys init looks at.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"
#include "core/init/detect.h"
#include "core/init/toml.h"

#define MAX_FILE (4 * 1024 * 1024)
#define MAX_SCAN 2000
#define MAX_DEPTH 6

/* --- lists ------------------------------------------------------------- */

void sp_init_list_add(struct sp_init_list *l, const char *s)
{
	SP_GROW(l->v, l->alloc, l->n + 1);
	l->v[l->n++] = sp_xstrdup(s);
}

int sp_init_list_has(const struct sp_init_list *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return 1;
	return 0;
}

static void list_add_unique(struct sp_init_list *l, const char *s)
{
	if (!sp_init_list_has(l, s))
		sp_init_list_add(l, s);
}

void sp_init_list_release(struct sp_init_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_sort(struct sp_init_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

void sp_init_project_release(struct sp_init_project *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->python_spec);
	sp_init_list_release(&p->packages);
	sp_init_list_release(&p->copy);
	free(p->tests_dir);
	sp_init_list_release(&p->dep_files);
	sp_init_list_release(&p->runtime_args);
	sp_init_list_release(&p->dev_args);
	sp_init_list_release(&p->deps);
	sp_init_list_release(&p->dev_deps);
	free(p->dev_extra);
	free(p->app_ref);
	free(p->health_path);
	sp_init_list_release(&p->notes);
	memset(p, 0, sizeof(*p));
}

/* --- files ------------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
	return sp_xasprintf("%s/%s", dir, name);
}

static int is_file(const char *dir, const char *name)
{
	struct stat st;
	char *p = join(dir, name);
	int ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);

	free(p);
	return ok;
}

static int is_dir(const char *dir, const char *name)
{
	struct stat st;
	char *p = join(dir, name);
	int ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);

	free(p);
	return ok;
}

/* A folder, not a symbolic link to one (walks do not follow links). */
static int is_real_dir(const char *dir, const char *name)
{
	struct stat st;
	char *p = join(dir, name);
	int ok = lstat(p, &st) == 0 && S_ISDIR(st.st_mode);

	free(p);
	return ok;
}

/*
 * The contents of dir/name (NUL-terminated, *len its length), a new string;
 * NULL when it cannot be read or is over MAX_FILE bytes.
 */
static char *read_file(const char *dir, const char *name, size_t *len)
{
	struct sp_buf b;
	char chunk[65536];
	char *p = join(dir, name);
	ssize_t n;
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	free(p);
	if (fd < 0)
		return NULL;
	sp_buf_init(&b, MAX_FILE);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (sp_buf_add(&b, chunk, (size_t)n) < 0) {
			n = -1;
			break;
		}
	}
	close(fd);
	if (n < 0) {
		sp_buf_release(&b);
		return NULL;
	}
	return sp_buf_detach(&b, len);
}

/* The names in dir/sub (sorted, without "." and ".."). */
static void list_dir(struct sp_init_list *out, const char *dir, const char *sub)
{
	char *p = sub ? join(dir, sub) : sp_xstrdup(dir);
	DIR *d = opendir(p);
	struct dirent *de;

	free(p);
	if (!d)
		return;
	while ((de = readdir(d)) && out->n < MAX_SCAN) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sp_init_list_add(out, de->d_name);
	}
	closedir(d);
	list_sort(out);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static int is_identifier(const char *s, size_t n)
{
	size_t i;

	if (!n || isdigit((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

/* --- requirements -------------------------------------------------------- */

char *sp_init_req_name(const char *req)
{
	struct sp_buf b = SP_BUF_INIT;
	const char *s = req;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!isalnum((unsigned char)*s))
		return NULL; /* a path, an option, a URL: no name */
	while (isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.') {
		char ch = (char)tolower((unsigned char)*s);
		if (ch == '_' || ch == '.')
			ch = '-';
		/* runs of separators are one '-' (PEP 503) */
		if (!(ch == '-' && b.len && b.data[b.len - 1] == '-'))
			sp_buf_addch(&b, ch);
		s++;
		if (b.len > 200)
			break;
	}
	if (!b.len) {
		sp_buf_release(&b);
		return NULL;
	}
	return sp_buf_detach(&b, NULL);
}

static void add_req(struct sp_init_list *names, const char *req)
{
	char *n = sp_init_req_name(req);

	if (n)
		list_add_unique(names, n);
	free(n);
}

/*
 * Names of the requirements in a requirements file; its `-r FILE`
 * includes go to includes.
 */
static void read_requirements(const char *dir, const char *file, struct sp_init_list *names,
			      struct sp_init_list *includes)
{
	size_t len;
	char *text = read_file(dir, file, &len), *line, *save = NULL, *hash;

	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if ((hash = strstr(line, " #")) != NULL)
			*hash = '\0';
		if (!strncmp(line, "-r ", 3) || !strncmp(line, "--requirement ", 14)) {
			line = strchr(line, ' ');
			while (*line == ' ')
				line++;
			line[strcspn(line, " \t\r")] = '\0';
			if (includes && *line)
				list_add_unique(includes, line);
			continue;
		}
		if (*line == '#' || *line == '-' || !*line)
			continue;
		add_req(names, line);
	}
	free(text);
}

/* --- setup.cfg (INI) ----------------------------------------------------- */

/*
 * The value of key in [section] of an INI text (continuation lines joined
 * with '\n', comments dropped), a new string; NULL when absent.
 */
static char *ini_get(const char *text, const char *section, const char *key)
{
	struct sp_buf b = SP_BUF_INIT;
	const char *p = text, *eol, *s, *e;
	int in_section = 0, in_value = 0;

	while (*p) {
		eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		s = p;
		e = eol;
		while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (in_value && s < e && (*s == ' ' || *s == '\t')) {
			while (s < e && (*s == ' ' || *s == '\t'))
				s++;
			if (s < e && *s != '#' && *s != ';') {
				if (b.len)
					sp_buf_addch(&b, '\n');
				sp_buf_add(&b, s, (size_t)(e - s));
			}
		} else if (in_value && s == e) {
			/* blank lines inside a value are allowed */
		} else {
			if (in_value)
				break;
			if (s < e && *s == '[') {
				const char *close = memchr(s, ']', (size_t)(e - s));
				in_section = close && (size_t)(close - s - 1) == strlen(section) &&
					     !strncmp(s + 1, section, strlen(section));
			} else if (in_section && s < e && *s != '#' && *s != ';') {
				const char *eq = s;
				const char *k_end;
				while (eq < e && *eq != '=' && *eq != ':')
					eq++;
				k_end = eq;
				while (k_end > s && (k_end[-1] == ' ' || k_end[-1] == '\t'))
					k_end--;
				if (eq < e && (size_t)(k_end - s) == strlen(key) &&
				    !strncmp(s, key, strlen(key))) {
					eq++;
					while (eq < e && (*eq == ' ' || *eq == '\t'))
						eq++;
					sp_buf_add(&b, eq, (size_t)(e - eq));
					in_value = 1;
				}
			}
		}
		p = *eol ? eol + 1 : eol;
	}
	if (!in_value) {
		sp_buf_release(&b);
		return NULL;
	}
	return sp_buf_detach(&b, NULL);
}

/* The items of an INI list value. */
static void ini_list(const char *value, struct sp_init_list *out, int names)
{
	/* a dangling list has one item a line (';' then starts a marker); a
	 * one-line value separates items with ';' (setuptools' list-semi) */
	const char *sep = strchr(value, '\n') ? "\n" : ";";
	char *copy = sp_xstrdup(value), *item, *save = NULL;

	for (item = strtok_r(copy, sep, &save); item; item = strtok_r(NULL, sep, &save)) {
		while (*item == ' ')
			item++;
		if (!*item || *item == '#')
			continue;
		if (names)
			add_req(out, item);
		else
			list_add_unique(out, item);
	}
	free(copy);
}

/* --- Python versions ------------------------------------------------------ */

/* "3.11.2" -> major 3, minor 11, patch 2 (-1 when absent); the rest after. */
static const char *parse_version(const char *s, int v[3], int *star)
{
	int i;

	v[0] = v[1] = v[2] = -1;
	*star = 0;
	for (i = 0; i < 3; i++) {
		if (!isdigit((unsigned char)*s))
			break;
		v[i] = 0;
		while (isdigit((unsigned char)*s)) {
			if (v[i] < 1000)
				v[i] = v[i] * 10 + (*s - '0');
			s++;
		}
		if (*s != '.')
			break;
		s++;
		if (*s == '*') {
			*star = 1;
			s++;
			break;
		}
	}
	return s;
}

/* Does 3.minor (any patch release) satisfy one clause?  -1: unreadable. */
static int clause_allows(const char *clause, int minor)
{
	char op[3] = "";
	int v[3], star, lo, hi, n = 0;
	const char *rest;

	while (*clause == ' ')
		clause++;
	while (n < 2 && strchr("<>=!~^", *clause) && *clause)
		op[n++] = *clause++;
	op[n] = '\0';
	while (*clause == ' ')
		clause++;
	if (*clause == 'v')
		clause++;
	rest = parse_version(clause, v, &star);
	while (*rest == ' ')
		rest++;
	if (v[0] < 0 || *rest)
		return -1;
	if (v[0] != 3)
		return strchr(op, '<') ? v[0] > 3 : strchr(op, '>') ? v[0] < 3 :
		       !strcmp(op, "!=") ? 1 : 0;
	if (v[1] < 0)
		v[1] = 0;
	/* the range of minors each operator allows */
	lo = 0;
	hi = 1000;
	if (!strcmp(op, ">=") || !strcmp(op, "^"))
		lo = v[1];
	else if (!strcmp(op, ">"))
		lo = v[2] > 0 ? v[1] : v[1] + 1; /* >3.11.1 allows a later 3.11 */
	else if (!strcmp(op, "<"))
		hi = v[2] > 0 ? v[1] : v[1] - 1; /* <3.12.1 allows 3.12.0 */
	else if (!strcmp(op, "<="))
		hi = v[1];
	else if (!strcmp(op, "==") || !strcmp(op, "") || !strcmp(op, "==="))
		lo = hi = v[1];
	else if (!strcmp(op, "!="))
		return star || v[2] < 0 ? minor != v[1] : 1;
	else if (!strcmp(op, "~=")) {
		lo = v[1];
		if (v[2] >= 0)
			hi = v[1];
	} else if (!strcmp(op, "~"))
		lo = hi = v[1];
	else
		return -1;
	return minor >= lo && minor <= hi;
}

/* Does spec allow 3.minor?  1, 0, or -1 when it cannot be read. */
static int spec_allows(const char *spec, int minor)
{
	char *copy, *clause, *save = NULL;
	int r, ok = 1;

	if (strstr(spec, "||") || strlen(spec) > 200)
		return -1;
	copy = sp_xstrdup(spec);
	for (clause = strtok_r(copy, ",", &save); clause; clause = strtok_r(NULL, ",", &save)) {
		r = clause_allows(clause, minor);
		if (r < 0) {
			ok = -1;
			break;
		}
		if (!r)
			ok = 0;
	}
	free(copy);
	return ok;
}

int sp_init_pick_python(const char *spec)
{
	int m, r;

	if (!spec || !*spec)
		return SP_INIT_PY_DEFAULT;
	if ((r = spec_allows(spec, SP_INIT_PY_DEFAULT)) != 0)
		return r < 0 ? -1 : SP_INIT_PY_DEFAULT;
	for (m = SP_INIT_PY_MAX; m >= SP_INIT_PY_MIN; m--)
		if (spec_allows(spec, m) == 1)
			return m;
	return -1;
}

/* --- names --------------------------------------------------------------- */

static char *image_name(const char *s)
{
	struct sp_buf b = SP_BUF_INIT;

	for (; *s && b.len < 64; s++) {
		char ch = (char)tolower((unsigned char)*s);
		if (!isalnum((unsigned char)ch) || (unsigned char)ch >= 0x80)
			ch = '-';
		if (ch == '-' && (!b.len || b.data[b.len - 1] == '-'))
			continue;
		sp_buf_addch(&b, ch);
	}
	while (b.len && b.data[b.len - 1] == '-')
		b.data[--b.len] = '\0';
	if (!b.len)
		sp_buf_addstr(&b, "app");
	return sp_buf_detach(&b, NULL);
}

/* --- layout --------------------------------------------------------------- */

static int is_package_dir(const char *dir, const char *name)
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	char *p;
	int ok;

	if (!is_identifier(base, strlen(base)))
		return 0;
	p = join(name, "__init__.py");
	ok = is_file(dir, p);
	free(p);
	return ok;
}

static const char *const not_packages[] = {
	"tests", "test", "testing", "docs", "doc", "examples", "example", "scripts", "script",
	"build", "dist", "venv", "env", "site-packages", "node_modules", "benchmarks", "bench",
	"tools", "contrib", "migrations", "htmlcov", NULL,
};

static const char *const not_modules[] = {
	"setup.py", "conftest.py", "noxfile.py", "tasks.py", "fabfile.py", "manage.py",
	"dodo.py", "docs.py", NULL,
};

static int in_table(const char *const *t, const char *s)
{
	for (; *t; t++)
		if (!strcmp(*t, s))
			return 1;
	return 0;
}

static void find_layout(struct sp_init_project *p, const char *dir, const struct sp_toml *t)
{
	struct sp_init_list names = { 0 };
	const struct sp_toml_entry *e;
	size_t i;

	/* [tool.setuptools] packages = [...] that exist, top-level ones */
	e = t ? sp_toml_get(t, "tool.setuptools.packages") : NULL;
	if (e && e->type == SP_TOML_ARRAY) {
		for (i = 0; i < e->nitems; i++) {
			if (!is_identifier(e->items[i], strlen(e->items[i])))
				continue; /* "pkg.sub", or not a name we could write in a COPY */
			if (is_dir(dir, e->items[i])) {
				list_add_unique(&p->packages, e->items[i]);
				list_add_unique(&p->copy, e->items[i]);
			}
		}
		if (p->packages.n) {
			p->layout = SP_INIT_LAYOUT_FLAT;
			return;
		}
	}
	if (is_dir(dir, "src")) {
		list_dir(&names, dir, "src");
		for (i = 0; i < names.n; i++) {
			char *sub = join("src", names.v[i]);
			if (is_package_dir(dir, sub))
				list_add_unique(&p->packages, names.v[i]);
			else if (ends_with(names.v[i], ".py") &&
				 is_identifier(names.v[i], strlen(names.v[i]) - 3)) {
				char *mod = sp_xstrndup(names.v[i], strlen(names.v[i]) - 3);
				list_add_unique(&p->packages, mod);
				free(mod);
			}
			free(sub);
		}
		sp_init_list_release(&names);
		if (p->packages.n) {
			p->layout = SP_INIT_LAYOUT_SRC;
			list_add_unique(&p->copy, "src");
			return;
		}
	}
	p->layout = SP_INIT_LAYOUT_FLAT;
	list_dir(&names, dir, NULL);
	for (i = 0; i < names.n; i++)
		if (names.v[i][0] != '.' && !in_table(not_packages, names.v[i]) &&
		    is_dir(dir, names.v[i]) && is_package_dir(dir, names.v[i])) {
			list_add_unique(&p->packages, names.v[i]);
			list_add_unique(&p->copy, names.v[i]);
		}
	if (!p->packages.n) {
		for (i = 0; i < names.n; i++) {
			size_t n = strlen(names.v[i]);
			if (ends_with(names.v[i], ".py") && !in_table(not_modules, names.v[i]) &&
			    strncmp(names.v[i], "test_", 5) && !ends_with(names.v[i], "_test.py") &&
			    is_identifier(names.v[i], n - 3) && is_file(dir, names.v[i])) {
				char *mod = sp_xstrndup(names.v[i], n - 3);
				list_add_unique(&p->packages, mod);
				list_add_unique(&p->copy, names.v[i]);
				free(mod);
			}
		}
	}
	sp_init_list_release(&names);
}

static void find_tests(struct sp_init_project *p, const char *dir, const struct sp_toml *t,
		       const char *setup_cfg)
{
	const struct sp_toml_entry *e = t ? sp_toml_get(t, "tool.pytest.ini_options.testpaths") : NULL;
	static const char *const usual[] = { "tests", "test", "testing", NULL };
	char *v;
	size_t i;

	if (e && e->type == SP_TOML_ARRAY) {
		for (i = 0; i < e->nitems; i++)
			if (e->items[i][0] && e->items[i][0] != '/' && !strstr(e->items[i], "..") &&
			    is_dir(dir, e->items[i])) {
				p->tests_dir = sp_xstrdup(e->items[i]);
				return;
			}
	}
	if (setup_cfg && (v = ini_get(setup_cfg, "tool:pytest", "testpaths")) != NULL) {
		char *first = v + strspn(v, " \n");
		first[strcspn(first, " \n")] = '\0';
		if (*first && *first != '/' && !strstr(first, "..") && is_dir(dir, first)) {
			p->tests_dir = sp_xstrdup(first);
			free(v);
			return;
		}
		free(v);
	}
	for (i = 0; usual[i]; i++)
		if (is_dir(dir, usual[i])) {
			p->tests_dir = sp_xstrdup(usual[i]);
			return;
		}
}

/* --- web services --------------------------------------------------------- */

struct scan {
	const char *root;   /* project folder */
	size_t files, dirs;
	/* best candidate so far */
	char *ref;
	int factory;
	int rank;
	int health;         /* 1 /health, 2 /healthz */
	const char *framework; /* "FastAPI" or "Flask" */
};

/* Rank of a file name as the place of an app object: lower is likelier. */
static int file_rank(const char *name)
{
	static const char *const likely[] = { "main.py", "app.py", "asgi.py", "wsgi.py",
					      "api.py", "server.py", "web.py", "__init__.py", NULL };
	int i;

	for (i = 0; likely[i]; i++)
		if (!strcmp(name, likely[i]))
			return i;
	return 20;
}

/* NAME = CALL(  at the start of a line: NAME into name, CALL into call. */
static int top_assignment(const char *line, char *name, size_t nsz, char *call, size_t csz)
{
	const char *s = line, *n0, *c0;
	size_t n;

	n0 = s;
	while (isalnum((unsigned char)*s) || *s == '_')
		s++;
	n = (size_t)(s - n0);
	if (!is_identifier(n0, n) || n >= nsz)
		return 0;
	memcpy(name, n0, n);
	name[n] = '\0';
	while (*s == ' ')
		s++;
	if (*s == ':') { /* annotation */
		s++;
		while (*s && *s != '=' && *s != '\n')
			s++;
	}
	if (*s != '=' || s[1] == '=')
		return 0;
	s++;
	while (*s == ' ')
		s++;
	c0 = s;
	while (isalnum((unsigned char)*s) || *s == '_' || *s == '.')
		s++;
	n = (size_t)(s - c0);
	if (!n || *s != '(' || n >= csz)
		return 0;
	memcpy(call, c0, n);
	call[n] = '\0';
	return 1;
}

/* Does the text define `def NAME(` at the top level? */
static int defines(const char *text, const char *fn)
{
	const char *p = text;
	size_t n = strlen(fn);

	while ((p = strstr(p, "def ")) != NULL) {
		if ((p == text || p[-1] == '\n') && !strncmp(p + 4, fn, n) && p[4 + n] == '(')
			return 1;
		p += 4;
	}
	return 0;
}

/* Looks at one module (import name mod, text) for an app object. */
static void scan_module(struct scan *sc, const char *mod, const char *base, const char *text)
{
	char name[128], call[128];
	const char *line = text, *ctor = sc->framework;
	int rank = file_rank(base) * 10, found = 0, factory = 0;
	char *fact = NULL;

	if (strstr(text, "\"/healthz\"") || strstr(text, "'/healthz'"))
		sc->health = sc->health ? sc->health : 2;
	if (strstr(text, "\"/health\"") || strstr(text, "'/health'"))
		sc->health = 1;
	if (!strstr(text, ctor))
		return;
	while (line && *line) {
		if (top_assignment(line, name, sizeof(name), call, sizeof(call))) {
			const char *simple = strrchr(call, '.') ? strrchr(call, '.') + 1 : call;
			if (!strcmp(simple, ctor) || (defines(text, call) && strcmp(call, name))) {
				rank += !strcmp(name, "app") ? 0 : !strcmp(name, "application") ? 1 : 2;
				found = 1;
				break;
			}
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	if (!found) {
		/* a factory: def create_app(...) that builds the app */
		static const char *const factories[] = { "create_app", "make_app", "build_app",
							 "get_app", "app_factory", NULL };
		int i;
		for (i = 0; factories[i]; i++)
			if (defines(text, factories[i])) {
				fact = sp_xstrdup(factories[i]);
				factory = 1;
				rank += 5;
				break;
			}
		if (!fact)
			return;
	}
	if (sc->ref && sc->rank <= rank) {
		free(fact);
		return;
	}
	free(sc->ref);
	sc->ref = sp_xasprintf("%s:%s", mod, factory ? fact : name);
	sc->factory = factory;
	sc->rank = rank;
	free(fact);
}

/* Walks rel (a folder under the project, import prefix mod) for modules. */
static void scan_dir(struct scan *sc, const char *rel, const char *mod, int depth)
{
	struct sp_init_list names = { 0 };
	size_t i, len;

	if (depth > MAX_DEPTH || ++sc->dirs > MAX_SCAN / 10)
		return;
	list_dir(&names, sc->root, rel);
	for (i = 0; i < names.n && sc->files < MAX_SCAN; i++) {
		const char *n = names.v[i];
		char *path = join(rel, n);
		size_t nl = strlen(n);
		if (ends_with(n, ".py") && is_identifier(n, nl - 3) && is_file(sc->root, path)) {
			char *text = read_file(sc->root, path, &len);
			char *m = !strcmp(n, "__init__.py") ? sp_xstrdup(mod)
							    : sp_xasprintf("%s.%.*s", mod, (int)(nl - 3), n);
			sc->files++;
			if (text)
				scan_module(sc, m, n, text);
			free(text);
			free(m);
		} else if (n[0] != '.' && strcmp(n, "tests") && strcmp(n, "test") &&
			   is_identifier(n, nl) && is_real_dir(sc->root, path)) {
			char *m = sp_xasprintf("%s.%s", mod, n);
			scan_dir(sc, path, m, depth + 1);
			free(m);
		}
		free(path);
	}
	sp_init_list_release(&names);
}

static void find_web(struct sp_init_project *p, const char *dir)
{
	struct scan sc;
	size_t i, len;

	memset(&sc, 0, sizeof(sc));
	sc.root = dir;
	if (sp_init_list_has(&p->deps, "fastapi") && sp_init_list_has(&p->deps, "uvicorn")) {
		sc.framework = "FastAPI";
		p->web = SP_INIT_WEB_UVICORN;
	} else if (sp_init_list_has(&p->deps, "flask") && sp_init_list_has(&p->deps, "gunicorn")) {
		sc.framework = "Flask";
		p->web = SP_INIT_WEB_GUNICORN;
	} else {
		if (sp_init_list_has(&p->deps, "fastapi") || sp_init_list_has(&p->deps, "flask"))
			sp_init_list_add(&p->notes,
					 "a web framework is a dependency but no server to run it "
					 "(uvicorn for FastAPI, gunicorn for Flask): no HEALTHCHECK");
		return;
	}
	for (i = 0; i < p->packages.n; i++) {
		const char *pkg = p->packages.v[i];
		char *rel = p->layout == SP_INIT_LAYOUT_SRC ? join("src", pkg) : sp_xstrdup(pkg);
		if (is_dir(dir, rel)) {
			scan_dir(&sc, rel, pkg, 0);
		} else {
			char *file = sp_xasprintf("%s.py", rel);
			char *text = read_file(dir, file, &len);
			if (text)
				scan_module(&sc, pkg, file, text);
			free(text);
			free(file);
		}
		free(rel);
	}
	if (!sc.ref) {
		p->web = SP_INIT_WEB_NONE;
		sp_init_list_add(&p->notes, sc.framework[0] == 'F' && sc.framework[1] == 'a'
			? "FastAPI and uvicorn are dependencies but no module-level FastAPI app "
			  "(or create_app factory) was found: no HEALTHCHECK"
			: "Flask and gunicorn are dependencies but no module-level Flask app "
			  "(or create_app factory) was found: no HEALTHCHECK");
		return;
	}
	p->app_ref = sc.ref;
	sc.ref = NULL; /* owned by p now */
	p->app_factory = sc.factory;
	if (sc.health)
		p->health_path = sp_xstrdup(sc.health == 1 ? "/health" : "/healthz");
}

/* --- dependencies ---------------------------------------------------------- */

static const char *const dev_names[] = { "dev", "test", "tests", "testing", NULL };

static void toml_names(const struct sp_toml_entry *e, struct sp_init_list *out)
{
	size_t i;

	if (!e || e->type != SP_TOML_ARRAY)
		return;
	for (i = 0; i < e->nitems; i++)
		add_req(out, e->items[i]);
}

static void add_arg2(struct sp_init_list *l, const char *a, const char *b)
{
	sp_init_list_add(l, a);
	sp_init_list_add(l, b);
}

/* Requirements files: the runtime one and the dev ones. */
static const char *const req_runtime[] = { "requirements.txt", "requirements/base.txt",
					   "requirements/main.txt", "requirements/prod.txt", NULL };
static const char *const req_dev[] = { "requirements-dev.txt", "requirements_dev.txt",
				       "dev-requirements.txt", "requirements-test.txt",
				       "requirements_test.txt", "test-requirements.txt",
				       "requirements-tests.txt", "requirements/dev.txt",
				       "requirements/test.txt", "requirements/tests.txt", NULL };

static void add_dep_file(struct sp_init_project *p, const char *dir, const char *file)
{
	/* a file under requirements/ comes with its folder (for its -r includes) */
	if (!strncmp(file, "requirements/", 13))
		list_add_unique(&p->dep_files, "requirements");
	else if (is_file(dir, file))
		list_add_unique(&p->dep_files, file);
}

static void read_req_file(struct sp_init_project *p, const char *dir, const char *file,
			  struct sp_init_list *names, int depth)
{
	struct sp_init_list inc = { 0 };
	size_t i;

	read_requirements(dir, file, names, &inc);
	add_dep_file(p, dir, file);
	/* -r includes, relative to the project folder, a few levels deep */
	for (i = 0; i < inc.n && depth < 4; i++)
		if (!strchr(file, '/') && !strstr(inc.v[i], "..") && inc.v[i][0] != '/' &&
		    is_file(dir, inc.v[i]))
			read_req_file(p, dir, inc.v[i], names, depth + 1);
	sp_init_list_release(&inc);
}

static void find_deps(struct sp_init_project *p, const char *dir, const struct sp_toml *t,
		      const char *setup_cfg)
{
	const struct sp_toml_entry *e;
	char key[128], *v;
	size_t i;
	int have_dev = 0;

	if (t && is_file(dir, "uv.lock")) {
		p->installer = SP_INIT_UV;
		list_add_unique(&p->dep_files, "pyproject.toml");
		list_add_unique(&p->dep_files, "uv.lock");
	}
	/* runtime */
	if (t && (sp_toml_get(t, "project.dependencies") || sp_toml_get(t, "project.name"))) {
		toml_names(sp_toml_get(t, "project.dependencies"), &p->deps);
		list_add_unique(&p->dep_files, "pyproject.toml");
		list_add_unique(&p->runtime_args, "pyproject.toml");
	}
	if (t) {
		/* Poetry 1: [tool.poetry.dependencies] name = "^1.2" or {version=...} */
		static const char prefix[] = "tool.poetry.dependencies.";
		int poetry = 0;
		for (i = 0; i < t->n; i++) {
			const char *k = t->entries[i].key;
			if (strncmp(k, prefix, sizeof(prefix) - 1))
				continue;
			k += sizeof(prefix) - 1;
			if (!strcmp(k, "python") || !strncmp(k, "python.", 7))
				continue;
			char *n = sp_xstrndup(k, strcspn(k, "."));
			add_req(&p->deps, n);
			free(n);
			poetry = 1;
		}
		if (poetry && !sp_init_list_has(&p->runtime_args, "pyproject.toml")) {
			list_add_unique(&p->dep_files, "pyproject.toml");
			list_add_unique(&p->runtime_args, "pyproject.toml");
			sp_init_list_add(&p->notes,
					 "Poetry dependencies are installed by name (their version "
					 "constraints are Poetry's, not pip's): check the versions pip picks");
		}
	}
	if (setup_cfg && (v = ini_get(setup_cfg, "options", "install_requires")) != NULL) {
		ini_list(v, &p->deps, 1);
		free(v);
		list_add_unique(&p->dep_files, "setup.cfg");
		list_add_unique(&p->runtime_args, "setup.cfg");
	}
	for (i = 0; req_runtime[i]; i++)
		if (is_file(dir, req_runtime[i])) {
			read_req_file(p, dir, req_runtime[i], &p->deps, 0);
			list_add_unique(&p->runtime_args, req_runtime[i]);
			break;
		}

	/* dev / test */
	sp_init_list_add(&p->dev_args, "--no-runtime");
	for (i = 0; t && dev_names[i] && !have_dev; i++) {
		snprintf(key, sizeof(key), "project.optional-dependencies.%s", dev_names[i]);
		if ((e = sp_toml_get(t, key)) != NULL && e->type == SP_TOML_ARRAY) {
			toml_names(e, &p->dev_deps);
			add_arg2(&p->dev_args, "--extra", dev_names[i]);
			p->dev_extra = sp_xstrdup(dev_names[i]);
			have_dev = 1;
		}
	}
	for (i = 0; t && dev_names[i] && !have_dev; i++) {
		snprintf(key, sizeof(key), "dependency-groups.%s", dev_names[i]);
		if ((e = sp_toml_get(t, key)) != NULL && e->type == SP_TOML_ARRAY) {
			toml_names(e, &p->dev_deps);
			add_arg2(&p->dev_args, "--group", dev_names[i]);
			p->dev_extra = sp_xstrdup(dev_names[i]);
			have_dev = 1;
		}
	}
	if (t && !have_dev && (e = sp_toml_get(t, "tool.uv.dev-dependencies")) != NULL &&
	    e->type == SP_TOML_ARRAY) {
		toml_names(e, &p->dev_deps);
		add_arg2(&p->dev_args, "--group", "uv-dev");
		have_dev = 1;
	}
	if (have_dev) {
		list_add_unique(&p->dep_files, "pyproject.toml");
		sp_init_list_add(&p->dev_args, "pyproject.toml");
	}
	for (i = 0; setup_cfg && dev_names[i] && !have_dev; i++) {
		if ((v = ini_get(setup_cfg, "options.extras_require", dev_names[i])) != NULL) {
			ini_list(v, &p->dev_deps, 1);
			free(v);
			add_arg2(&p->dev_args, "--extra", dev_names[i]);
			p->dev_extra = sp_xstrdup(dev_names[i]);
			list_add_unique(&p->dep_files, "setup.cfg");
			sp_init_list_add(&p->dev_args, "setup.cfg");
			have_dev = 1;
		}
	}
	for (i = 0; req_dev[i]; i++)
		if (is_file(dir, req_dev[i])) {
			read_req_file(p, dir, req_dev[i], &p->dev_deps, 0);
			sp_init_list_add(&p->dev_args, req_dev[i]);
			have_dev = 1;
		}
	/* the pipeline runs pytest with --cov: these two, whatever the project lists */
	add_arg2(&p->dev_args, "--require", "pytest");
	add_arg2(&p->dev_args, "--require", "pytest-cov");
	if (!p->runtime_args.n && is_file(dir, "setup.py"))
		sp_init_list_add(&p->notes, "setup.py is not read (it is code): list the "
				 "dependencies in pyproject.toml, setup.cfg or requirements.txt");
	if (!have_dev)
		sp_init_list_add(&p->notes, "no dev/test dependencies found (optional-dependencies "
				 "dev or test, dependency-groups, requirements-dev.txt): the testing "
				 "image gets pytest and pytest-cov only");
}

/* --- the project ----------------------------------------------------------- */

static int in_git_tree(const char *dir)
{
	char path[PATH_MAX], *slash;
	struct stat st;

	if (!realpath(dir, path))
		return 0;
	for (;;) {
		char *git = sp_xasprintf("%s/.git", path);
		int ok = stat(git, &st) == 0;
		free(git);
		if (ok)
			return 1;
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			return 0;
		*slash = '\0';
	}
}

static char *python_version_file(const char *dir)
{
	size_t len;
	char *text = read_file(dir, ".python-version", &len);

	if (text)
		text[strcspn(text, "\r\n")] = '\0';
	return text;
}

int sp_init_detect(struct sp_init_project *p, const char *dir, struct sp_error *err)
{
	struct sp_toml toml = SP_TOML_INIT;
	struct sp_toml *t = NULL;
	char *pyproject = NULL, *setup_cfg = NULL, *pyver = NULL, *base = NULL;
	const char *name = NULL, *spec = NULL;
	struct sp_init_list top = { 0 };
	struct stat st;
	size_t len, i;
	int rc, any_py = 0, m;

	memset(p, 0, sizeof(*p));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = sp_error_set(err, SP_ENOTFOUND, "%s: not a folder", dir);
		goto out;
	}
	if (is_file(dir, "pyproject.toml")) {
		if (!(pyproject = read_file(dir, "pyproject.toml", &len))) {
			rc = sp_error_set(err, SP_ECONFIG, "%s/pyproject.toml: cannot read it (or over %d MiB)",
					  dir, MAX_FILE >> 20);
			goto out;
		}
		if ((rc = sp_toml_parse(&toml, pyproject, len, err)) < 0) {
			sp_error_prefix(err, "%s/pyproject.toml", dir);
			goto out;
		}
		t = &toml;
	}
	if (is_file(dir, "setup.cfg"))
		setup_cfg = read_file(dir, "setup.cfg", &len);
	list_dir(&top, dir, NULL);
	for (i = 0; i < top.n; i++)
		if (ends_with(top.v[i], ".py") || (!strncmp(top.v[i], "requirements", 12) &&
						   ends_with(top.v[i], ".txt")))
			any_py = 1;
	find_layout(p, dir, t);
	if (!t && !setup_cfg && !any_py && !p->packages.n && !is_dir(dir, "requirements")) {
		rc = sp_error_set(err, SP_ENOTFOUND,
				  "%s: no pyproject.toml, setup.cfg, setup.py, requirements*.txt "
				  "or .py file: not a Python project init can read", dir);
		goto out;
	}

	/* the name */
	if (t && !(name = sp_toml_get_string(t, "project.name")))
		name = sp_toml_get_string(t, "tool.poetry.name");
	if (!name && setup_cfg && (base = ini_get(setup_cfg, "metadata", "name")) != NULL)
		name = base;
	if (!name) {
		char real[PATH_MAX];
		const char *slash;
		if (realpath(dir, real) && (slash = strrchr(real, '/')) != NULL && slash[1]) {
			free(base);
			base = sp_xstrdup(slash + 1);
			name = base;
		}
	}
	p->name = image_name(name ? name : "app");

	/* Python */
	if (t && (spec = sp_toml_get_string(t, "project.requires-python")) != NULL)
		p->python_from = "pyproject.toml";
	else if (t && (spec = sp_toml_get_string(t, "tool.poetry.dependencies.python")) != NULL)
		p->python_from = "pyproject.toml";
	if (spec)
		p->python_spec = sp_xstrdup(spec);
	else if (setup_cfg && (p->python_spec = ini_get(setup_cfg, "options", "python_requires")))
		p->python_from = "setup.cfg";
	if (p->python_spec && (strlen(p->python_spec) > 200 ||
			       strpbrk(p->python_spec, "\n\r\t\x1b\"\\"))) {
		/* it goes into the Dockerfile's comment and init's output: plain text only */
		free(p->python_spec);
		p->python_spec = NULL;
		p->python_from = NULL;
		sp_init_list_add(&p->notes, "requires-python is not a plain one-line specifier: "
				 "ignored, using 3.12");
	}
	p->py_minor = SP_INIT_PY_DEFAULT;
	if (p->python_spec) {
		m = sp_init_pick_python(p->python_spec);
		if (m < 0)
			sp_init_list_add(&p->notes, "requires-python allows none of the Python "
					 "versions init knows (3.8 to 3.13), or could not be read: "
					 "using 3.12");
		else
			p->py_minor = m;
	}
	if ((pyver = python_version_file(dir)) != NULL) {
		int v[3], star;
		parse_version(pyver, v, &star);
		/* .python-version wins when requires-python allows it */
		if (v[0] == 3 && v[1] >= SP_INIT_PY_MIN && v[1] <= SP_INIT_PY_MAX &&
		    (!p->python_spec || spec_allows(p->python_spec, v[1]) == 1)) {
			p->py_minor = v[1];
			p->python_from = ".python-version";
		}
	}

	if (!p->packages.n)
		sp_init_list_add(&p->notes, "no package or module found (neither src/PKG nor "
				 "PKG/__init__.py nor a top-level .py module): coverage is measured "
				 "over the whole folder");
	find_tests(p, dir, t, setup_cfg);
	if (!p->tests_dir)
		sp_init_list_add(&p->notes, "no tests folder (tests/, test/ or pytest's testpaths): "
				 "the test stage allows a run that collects no tests");
	find_deps(p, dir, t, setup_cfg);
	find_web(p, dir);

	if (t) {
		const char *fu = NULL;
		const struct sp_toml_entry *e = sp_toml_get(t, "tool.coverage.report.fail_under");
		if (e && e->type == SP_TOML_OTHER)
			fu = e->value;
		if (fu) {
			char *end;
			double d = strtod(fu, &end);
			if (!*end && d >= 0 && d <= 100) {
				p->fail_under = d;
				p->has_fail_under = 1;
			}
		}
	}
	p->has_dockerfile = is_file(dir, "Dockerfile");
	p->has_dockerignore = is_file(dir, ".dockerignore");
	p->has_pipeline = is_file(dir, "stagepipe.yml");
	p->in_git = in_git_tree(dir);
	rc = 0;
out:
	sp_toml_release(&toml);
	sp_init_list_release(&top);
	free(pyproject);
	free(setup_cfg);
	free(pyver);
	free(base);
	return rc;
}
