/*
 * pycache.c — the interpreter probe's small file cache; see pycache.h.
 *
 * Why a file of lines rather than a file per key: one file is one open
 * and one read on a hit, its size is bounded by rewriting it, and there
 * is no folder of stale entries to prune.
 */
#include "core/exec/pycache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/base/xalloc.h"
#include "core/git/mirror.h"

/* Fields of a line after the key. */
enum { F_CANDIDATE, F_EXECUTABLE, F_VERSION, F_PYTEST, F_PYTEST_COV, NFIELDS };

/* One field into the digest's input, its length first: ("ab","c") and
 * ("a","bc") differ; NULL differs from "". */
static void add_field(struct sp_buf *b, const char *s)
{
	uint64_t n = s ? (uint64_t)strlen(s) : UINT64_MAX;
	unsigned char len[8];
	int i;

	for (i = 0; i < 8; i++)
		len[i] = (unsigned char)(n >> (8 * i));
	(void)sp_buf_add(b, len, sizeof(len));
	if (s)
		(void)sp_buf_addstr(b, s);
}

void sp_pycache_key(char out[SP_PYCACHE_KEY_LEN + 1], const char *image_id,
		    const struct sp_stage *st, const char *const *env, size_t nenv)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[SHA256_DIGEST_LENGTH];
	struct sp_buf b = SP_BUF_INIT;
	size_t i;

	add_field(&b, SP_PYCACHE_HEADER);
	add_field(&b, sp_python_probe_script);  /* another script may say more */
	add_field(&b, image_id);
	add_field(&b, st->user);
	add_field(&b, st->workdir);
	add_field(&b, st->python);
	for (i = 0; i < nenv; i++)
		add_field(&b, env[i]);
	SHA256((const unsigned char *)b.data, b.len, d);
	sp_buf_release(&b);
	for (i = 0; i < sizeof(d); i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[SP_PYCACHE_KEY_LEN] = '\0';
}

/* The file's text, or NULL; a wrong header is no file. */
static char *read_cache(const char *dir)
{
	char *path = sp_xasprintf("%s/" SP_PYCACHE_FILE, dir);
	char *text = sp_fs_read_small(path);
	size_t hl = sizeof(SP_PYCACHE_HEADER) - 1;

	free(path);
	if (text && (strncmp(text, SP_PYCACHE_HEADER, hl) != 0 || text[hl] != '\n')) {
		free(text);
		text = NULL;
	}
	return text;
}

/* The next line of *p (without '\n'; a last line without one is cut off
 * by a writer that died: not a line).  NULL at the end. */
static const char *next_line(const char **p, size_t *len)
{
	const char *s = *p, *nl;

	if (!s || !*s || !(nl = strchr(s, '\n')))
		return NULL;
	*len = (size_t)(nl - s);
	*p = nl + 1;
	return s;
}

/* Splits a line into key and fields (pointers into line, lengths in
 * flen); false when it is not a well-formed entry. */
static bool parse_line(const char *line, size_t len, const char *f[NFIELDS], size_t flen[NFIELDS])
{
	const char *end = line + len, *p, *tab;
	size_t i;

	if (len < SP_PYCACHE_KEY_LEN + 1 || line[SP_PYCACHE_KEY_LEN] != '\t')
		return false;
	for (i = 0; i < SP_PYCACHE_KEY_LEN; i++)
		if (!strchr("0123456789abcdef", line[i]) || !line[i])
			return false;
	p = line + SP_PYCACHE_KEY_LEN + 1;
	for (i = 0; i < NFIELDS; i++) {
		tab = memchr(p, '\t', (size_t)(end - p));
		if (i + 1 < NFIELDS ? !tab : tab != NULL)
			return false;
		f[i] = p;
		flen[i] = (size_t)((tab ? tab : end) - p);
		p = tab ? tab + 1 : end;
	}
	return flen[F_CANDIDATE] > 0;
}

static char *field(const char *f, size_t len)
{
	return len ? sp_xstrndup(f, len) : NULL;
}

int sp_pycache_get(const char *dir, const char *key, char **candidate,
		   struct sp_python_info *info)
{
	char *text = dir ? read_cache(dir) : NULL;
	const char *p = text, *line, *f[NFIELDS];
	size_t len, flen[NFIELDS];
	int hit = 0;

	if (!text)
		return 0;
	(void)next_line(&p, &len);  /* the header */
	/* the last entry of a key wins (put keeps one; a hand-edited file may not) */
	while ((line = next_line(&p, &len))) {
		if (strncmp(line, key, SP_PYCACHE_KEY_LEN) != 0 || !parse_line(line, len, f, flen))
			continue;
		if (hit) {
			free(*candidate);
			sp_python_info_release(info);
		}
		hit = 1;
		*candidate = field(f[F_CANDIDATE], flen[F_CANDIDATE]);
		info->seen = true;
		info->executable = field(f[F_EXECUTABLE], flen[F_EXECUTABLE]);
		info->version = field(f[F_VERSION], flen[F_VERSION]);
		info->pytest = field(f[F_PYTEST], flen[F_PYTEST]);
		info->pytest_cov = field(f[F_PYTEST_COV], flen[F_PYTEST_COV]);
		info->path = NULL;
	}
	free(text);
	return hit;
}

static bool keepable(const char *s)
{
	return !s || !strpbrk(s, "\t\n\r\\");
}

/* Writes text to dir/python-probes through a temporary file and rename. */
static int write_cache(const char *dir, const struct sp_buf *text, struct sp_error *err)
{
	char *path = sp_xasprintf("%s/" SP_PYCACHE_FILE, dir);
	char *tmp = sp_xasprintf("%s/." SP_PYCACHE_FILE ".XXXXXX", dir);
	size_t off = 0;
	int fd = -1, rc = 0;

	if ((fd = mkstemp(tmp)) < 0) {
		rc = sp_error_set(err, SP_ERROR, "creating %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < text->len) {
		ssize_t w = write(fd, text->data + off, text->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = sp_error_set(err, SP_ERROR, "writing %s: %s", tmp,
					  w < 0 ? strerror(errno) : "short write");
			goto out;
		}
		off += (size_t)w;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = sp_error_set(err, SP_ERROR, "writing %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = sp_error_set(err, SP_ERROR, "renaming %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		(void)unlink(tmp);
	free(tmp);
	free(path);
	return rc;
}

int sp_pycache_put(const char *dir, const char *key, const char *candidate,
		   const struct sp_python_info *info, struct sp_error *err)
{
	struct sp_buf out = SP_BUF_INIT;
	char *text = NULL;
	const char *p, *line, *f[NFIELDS], **keep = NULL;
	size_t len, flen[NFIELDS], *keep_len = NULL, n = 0, alloc = 0, i, from;
	int rc = 0;

	if (!info->seen || !candidate || !*candidate || !keepable(candidate) ||
	    !keepable(info->executable) || !keepable(info->version) ||
	    !keepable(info->pytest) || !keepable(info->pytest_cov))
		return 0;
	if ((rc = sp_mirror_mkdirs(dir, 0700, err)) < 0)
		return rc;
	/* the entries kept: well-formed ones of other keys */
	p = text = read_cache(dir);
	if (text)
		(void)next_line(&p, &len);
	while (text && (line = next_line(&p, &len))) {
		if (!parse_line(line, len, f, flen) || !strncmp(line, key, SP_PYCACHE_KEY_LEN))
			continue;
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 32;
			keep = sp_xrealloc(keep, alloc * sizeof(*keep));
			keep_len = sp_xrealloc(keep_len, alloc * sizeof(*keep_len));
		}
		keep[n] = line;
		keep_len[n++] = len;
	}
	from = n >= SP_PYCACHE_MAX ? n - (SP_PYCACHE_MAX - 1) : 0;
	(void)sp_buf_addf(&out, "%s\n", SP_PYCACHE_HEADER);
	for (i = from; i < n; i++)
		(void)sp_buf_addf(&out, "%.*s\n", (int)keep_len[i], keep[i]);
#define S(s) ((s) ? (s) : "")
	(void)sp_buf_addf(&out, "%s\t%s\t%s\t%s\t%s\t%s\n", key, candidate, S(info->executable),
			  S(info->version), S(info->pytest), S(info->pytest_cov));
#undef S
	rc = write_cache(dir, &out, err);
	free(keep);
	free(keep_len);
	free(text);
	sp_buf_release(&out);
	return rc;
}
