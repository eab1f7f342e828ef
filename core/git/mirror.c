/*
 * mirror.c — the bare mirror of a repository in the cache; see mirror.h.
 *
 * Everything that changes a mirror (making it, fetching into it, throwing
 * it away) happens under the exclusive flock of its lock file; readers
 * (checkouts writing a tree from its objects) hold the shared lock, so a
 * rebuild waits for them.  A lock is tied to this process's open file
 * description, so a job that dies — however it dies — releases it, and a
 * crash can leave behind only a temporary folder (removed on the next
 * open) or a mirror the checks on open reject.
 *
 * The fetch goes through an anonymous remote built from the URL each time:
 * the mirror's config never holds a URL with credentials in it, and the
 * password, token or key passphrase reaches libgit2 only through the
 * credential callback.  libgit2 messages are scrubbed of those secrets
 * before they go into an error.
 */
#define _XOPEN_SOURCE 700
#include "core/git/mirror.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/git/gitcred.h"
#include "core/git/gitinfo.h"
#include "core/git/giturl.h"
#include "core/base/xalloc.h"

#define MARKER "stagepipe-mirror"
#define MARKER_MAGIC "stagepipe mirror 1\n"
#define LOCK_POLL_MS 50
#define PROGRESS_EVERY_MS 200
/*
 * Each fetch over the wire adds a pack, and libgit2 looks objects up pack
 * by pack; it cannot repack a mirror cheaply (its pack builder searches
 * deltas anew), so a mirror with more packs than this is cloned afresh:
 * one full clone every ~MAX_PACKS fetches.
 */
#define MAX_PACKS 100

/* ---- small helpers ------------------------------------------------------- */

static int64_t now_ms(void)
{
	return sp_cancel_now_ms();
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool cancelled(const struct sp_checkout_opts *o)
{
	return o->cancel && o->cancel(o->cancel_ud);
}

static void progress(const struct sp_mirror *m, enum sp_checkout_phase phase,
		     const git_indexer_progress *st)
{
	struct sp_checkout_progress p;

	if (!m->opts->progress)
		return;
	memset(&p, 0, sizeof(p));
	p.phase = phase;
	p.url = m->url->display;
	p.path = m->sub_path ? m->sub_path : "";
	if (st) {
		p.total_objects = st->total_objects;
		p.received_objects = st->received_objects;
		p.indexed_objects = st->indexed_objects;
		p.received_bytes = st->received_bytes;
	}
	m->opts->progress(&p, m->opts->progress_ud);
}

int sp_mirror_mkdirs(const char *path, mode_t mode, struct sp_error *err)
{
	char *p = sp_xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; ; s++) {
		if (*s == '/' || !*s) {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				rc = sp_error_set(err, SP_ERROR, "cannot create the folder %s: %s", p,
						  strerror(errno));
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}

/* libgit2's last message on one line, secrets removed; caller frees. */
static char *git_msg(const struct sp_gitcred_list *creds, const struct sp_giturl *u)
{
	char *msg = sp_xstrdup(sp_gitinfo_last_error());
	char *p;
	size_t n;

	for (p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = strlen(msg);
	while (n && msg[n - 1] == ' ')
		msg[--n] = '\0';
	sp_gitcred_redact(msg, creds, u);
	return msg;
}

int sp_mirror_git_error(const struct sp_mirror *m, int code, const char *what,
			struct sp_error *err)
{
	struct sp_gitcred_list creds = SP_GITCRED_LIST_INIT;
	char *msg;

	/*
	 * The same scrub as a failed fetch: the candidates this repository
	 * could have been offered (a lookup error only means fewer to scrub).
	 * The lookup leaves libgit2's last error alone: it never calls libgit2.
	 */
	if (m->opts && sp_gitcred_list(&creds, m->url, m->env_host, m->opts->getenv,
				       m->opts->getenv_ud, NULL) < 0)
		sp_gitcred_list_release(&creds);
	msg = git_msg(&creds, m->url);
	sp_error_set(err, code, "%s %s: %s", what, m->url->display, msg);
	free(msg);
	sp_gitcred_list_release(&creds);
	return code;
}

bool sp_mirror_error_is_damage(void)
{
	const git_error *e = git_error_last();

	return e && (e->klass == GIT_ERROR_ODB || e->klass == GIT_ERROR_ZLIB ||
		     e->klass == GIT_ERROR_OBJECT || e->klass == GIT_ERROR_TREE ||
		     e->klass == GIT_ERROR_INDEXER);
}

/* ---- locking ------------------------------------------------------------- */

int sp_mirror_lock(struct sp_mirror *m, bool exclusive, struct sp_error *err)
{
	int mode = exclusive ? LOCK_EX : LOCK_SH;
	bool told = false;

	if (m->lock_mode == mode)
		return 0;
	for (;;) {
		if (flock(m->lock_fd, mode | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return sp_error_set(err, SP_ERROR, "cannot lock the mirror of %s: %s",
					    m->url->display, strerror(errno));
		/* a failed conversion drops the lock we had (flock(2)) */
		m->lock_mode = 0;
		if (!told) {
			progress(m, SP_CHECKOUT_WAITING, NULL);
			told = true;
		}
		if (cancelled(m->opts))
			return sp_error_set(err, SP_ECANCELLED,
					    "cancelled while waiting for the mirror of %s",
					    m->url->display);
		sleep_ms(LOCK_POLL_MS);
	}
	m->lock_mode = mode;
	return 0;
}

/* ---- checks on open ------------------------------------------------------ */

static bool read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, cap, f);
	fclose(f);
	*len = n;
	return true;
}

static bool marker_ok(const char *dir, const char *canonical)
{
	char *path = sp_xasprintf("%s/" MARKER, dir);
	char *want = sp_xasprintf(MARKER_MAGIC "url %s\n", canonical);
	char buf[4096];
	size_t n = 0;
	bool ok;

	ok = read_small(path, buf, sizeof(buf), &n) && n == strlen(want) && !memcmp(buf, want, n);
	free(path);
	free(want);
	return ok;
}

static bool tail(int fd, off_t size, void *buf, size_t n)
{
	return size >= (off_t)n && pread(fd, buf, n, size - (off_t)n) == (ssize_t)n;
}

/*
 * Every pack index has its pack, and the pack's checksum trailer is the
 * one the index names.  *count: the number of packs.
 */
static bool packs_ok(const char *dir, int *count)
{
	char *packdir = sp_xasprintf("%s/objects/pack", dir);
	DIR *d = opendir(packdir);
	struct dirent *de;
	bool ok = true;

	*count = 0;
	if (!d) {
		ok = errno == ENOENT;
		free(packdir);
		return ok;
	}
	while (ok && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		unsigned char idx_tail[40], pack_tail[20], magic[4];
		char *idx, *pack;
		struct stat si, sp;
		int fi, fp;

		if (n < 5 || strcmp(de->d_name + n - 4, ".idx"))
			continue;
		(*count)++;
		idx = sp_xasprintf("%s/%s", packdir, de->d_name);
		pack = sp_xasprintf("%s/%.*s.pack", packdir, (int)(n - 4), de->d_name);
		fi = open(idx, O_RDONLY | O_CLOEXEC);
		fp = open(pack, O_RDONLY | O_CLOEXEC);
		ok = fi >= 0 && fp >= 0 && fstat(fi, &si) == 0 && fstat(fp, &sp) == 0 &&
		     si.st_size >= 8 + 1024 + 40 && sp.st_size >= 12 + 20 &&
		     tail(fi, si.st_size, idx_tail, sizeof(idx_tail)) &&
		     tail(fp, sp.st_size, pack_tail, sizeof(pack_tail)) &&
		     pread(fp, magic, 4, 0) == 4 && !memcmp(magic, "PACK", 4) &&
		     !memcmp(idx_tail, pack_tail, 20);
		if (fi >= 0)
			close(fi);
		if (fp >= 0)
			close(fp);
		free(idx);
		free(pack);
	}
	closedir(d);
	free(packdir);
	return ok;
}

/* Every ref's target can be read (this also opens, and so checks, the packs holding them). */
static bool refs_ok(git_repository *repo)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	bool ok = true;
	int grc;

	if (git_reference_iterator_new(&it, repo) < 0)
		return false;
	while (ok && (grc = git_reference_next(&ref, it)) == 0) {
		const git_oid *id = git_reference_target(ref);
		git_object *obj = NULL;

		if (id && git_object_lookup(&obj, repo, id, GIT_OBJECT_ANY) < 0)
			ok = false;
		git_object_free(obj);
		git_reference_free(ref);
		ref = NULL;
	}
	if (ok && grc != GIT_ITEROVER)
		ok = false;
	git_reference_iterator_free(it);
	return ok;
}

static int unlink_lock(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	size_t n = strlen(path);

	(void)sb;
	(void)ftw;
	if (flag == FTW_F && n > 5 && !strcmp(path + n - 5, ".lock"))
		(void)unlink(path);
	return 0;
}

/*
 * Lock files a killed fetch left (libgit2 makes "<ref>.lock" while it
 * writes a ref); with the exclusive lock held, nobody else is writing.
 */
static void remove_stale_locks(const char *dir)
{
	static const char *const top[] = { "packed-refs.lock", "HEAD.lock", "config.lock",
					   "FETCH_HEAD.lock", "shallow.lock" };
	char *refs = sp_xasprintf("%s/refs", dir);
	size_t i;

	(void)nftw(refs, unlink_lock, 8, FTW_PHYS);
	free(refs);
	for (i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		char *p = sp_xasprintf("%s/%s", dir, top[i]);

		(void)unlink(p);
		free(p);
	}
}

/* Temporary folders of this key left by a crash. */
static void remove_stale_tmp(const char *mirrors, const char *key)
{
	DIR *d = opendir(mirrors);
	struct dirent *de;
	char *prefix = sp_xasprintf("%s.tmp-", key);

	while (d && (de = readdir(d)) != NULL) {
		if (!strncmp(de->d_name, prefix, strlen(prefix))) {
			char *p = sp_xasprintf("%s/%s", mirrors, de->d_name);

			(void)sp_fs_rmtree(p, NULL);
			free(p);
		}
	}
	if (d)
		closedir(d);
	free(prefix);
}

/* Opens m->path if it is a complete, sound mirror of m->url. */
static bool open_existing(struct sp_mirror *m)
{
	struct stat st;
	int packs;

	if (stat(m->path, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	if (!marker_ok(m->path, m->url->canonical) || !packs_ok(m->path, &packs))
		return false;
	if (packs > MAX_PACKS && m->url->kind != SP_GITURL_FILE)
		return false;
	remove_stale_locks(m->path);
	if (git_repository_open_bare(&m->repo, m->path) < 0)
		return false;
	if (!refs_ok(m->repo)) {
		git_repository_free(m->repo);
		m->repo = NULL;
		return false;
	}
	m->ino = st.st_ino;
	return true;
}

/* Starts a new mirror in a temporary folder next to where it will go. */
static int start_new(struct sp_mirror *m, struct sp_error *err)
{
	git_repository_init_options io;
	git_config *cfg = NULL;
	int rc = 0;

	m->tmp = sp_xasprintf("%.*s.tmp-XXXXXX", (int)(strlen(m->path) - 4), m->path);
	if (!mkdtemp(m->tmp)) {
		rc = sp_error_set(err, SP_ERROR, "cannot create the folder %s: %s", m->tmp,
				  strerror(errno));
		free(m->tmp);
		m->tmp = NULL;
		return rc;
	}
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_NO_REINIT;
	if (git_repository_init_ext(&m->repo, m->tmp, &io) < 0 ||
	    git_repository_config(&cfg, m->repo) < 0 ||
	    git_config_set_bool(cfg, "core.logallrefupdates", 0) < 0 ||
	    git_config_set_int32(cfg, "gc.auto", 0) < 0) {
		rc = sp_mirror_git_error(m, SP_ERROR, "cannot create a mirror of", err);
	}
	git_config_free(cfg);
	m->created = true;
	return rc;
}

int sp_mirror_open(struct sp_mirror *m, const struct sp_giturl *url, const char *cache_dir,
		   const struct sp_checkout_opts *opts, const char *env_host, const char *sub_path,
		   struct sp_error *err)
{
	char *mirrors = NULL, *key = NULL, *lock = NULL;
	int rc;

	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
	m->url = url;
	m->opts = opts;
	m->env_host = env_host;
	m->sub_path = sub_path;
	mirrors = sp_xasprintf("%s/mirrors", cache_dir);
	if ((rc = sp_mirror_mkdirs(mirrors, 0700, err)) < 0)
		goto out;
	sp_giturl_key(&key, url);
	m->path = sp_xasprintf("%s/%s.git", mirrors, key);
	lock = sp_xasprintf("%s/%s.lock", mirrors, key);
	m->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (m->lock_fd < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot open the lock file %s: %s", lock,
				  strerror(errno));
		goto out;
	}
	if ((rc = sp_mirror_lock(m, true, err)) < 0)
		goto out;
	remove_stale_tmp(mirrors, key);
	if (open_existing(m))
		goto out;
	/* missing, unfinished or damaged: never used, made again */
	if (sp_fs_rmtree(m->path, err) < 0) {
		rc = sp_error_prefix(err, "removing a damaged mirror");
		goto out;
	}
	rc = start_new(m, err);
out:
	free(mirrors);
	free(key);
	free(lock);
	return rc;
}

int sp_mirror_rebuild(struct sp_mirror *m, struct sp_error *err)
{
	int rc;

	if ((rc = sp_mirror_lock(m, true, err)) < 0)
		return rc;
	git_repository_free(m->repo);
	m->repo = NULL;
	if (m->tmp) {
		(void)sp_fs_rmtree(m->tmp, NULL);
		free(m->tmp);
		m->tmp = NULL;
	}
	if (sp_fs_rmtree(m->path, err) < 0)
		return sp_error_prefix(err, "removing a damaged mirror");
	return start_new(m, err);
}

void sp_mirror_close(struct sp_mirror *m)
{
	if (!m)
		return;
	git_repository_free(m->repo);
	if (m->tmp) {
		(void)sp_fs_rmtree(m->tmp, NULL);
		free(m->tmp);
	}
	if (m->lock_fd >= 0)
		close(m->lock_fd);  /* releases the flock */
	free(m->path);
	free(m->head);
	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
}

/* ---- fetching ------------------------------------------------------------ */

struct fetch_ctx {
	struct sp_mirror *m;
	struct sp_gitcred_list creds;
	size_t next;
	struct sp_buf tried;  /* labels of what was offered, for the error */
	bool exhausted;
	bool offsite;         /* credentials were asked for by another origin */
	bool cancelled;
	int64_t last_ms;
	bool done_reported;
};

/* Whether url (as libgit2 asks for credentials) has u's scheme, host and port. */
static bool same_origin(const char *url, const struct sp_giturl *u)
{
	struct sp_giturl asked;
	char *a = NULL, *b = NULL;
	bool same;

	if (!url || sp_giturl_parse(&asked, url, NULL) < 0)
		return false;
	sp_giturl_origin(&a, &asked);
	sp_giturl_origin(&b, u);
	same = !strcmp(a, b);
	free(a);
	free(b);
	sp_giturl_release(&asked);
	return same;
}

static int on_credentials(git_credential **out, const char *url, const char *username_from_url,
			  unsigned int allowed, void *payload)
{
	struct fetch_ctx *c = payload;

	if (!same_origin(url, c->m->url)) {
		/*
		 * Every candidate was chosen for the repository's own scheme, host
		 * and port; a server elsewhere (a redirect) gets none of them.
		 */
		c->exhausted = true;
		c->offsite = true;
		git_error_set_str(GIT_ERROR_NET, "credentials asked for by another host: refused");
		return GIT_EUSER;
	}
	if (allowed == GIT_CREDENTIAL_USERNAME) {
		const char *user = username_from_url ? username_from_url
				   : c->m->url->user ? c->m->url->user : "git";
		return git_credential_username_new(out, user);
	}
	while (c->next < c->creds.n) {
		const struct sp_gitcred *k = &c->creds.items[c->next++];
		int grc = 1;

		if (k->kind == SP_GITCRED_USERPASS && (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT))
			grc = git_credential_userpass_plaintext_new(out, k->user, k->secret);
		else if (k->kind == SP_GITCRED_SSH_KEY && (allowed & GIT_CREDENTIAL_SSH_KEY))
			grc = git_credential_ssh_key_new(out, k->user, NULL, k->key_file, k->secret);
		else if (k->kind == SP_GITCRED_SSH_AGENT && (allowed & GIT_CREDENTIAL_SSH_KEY))
			grc = git_credential_ssh_key_from_agent(out, k->user);
		if (grc == 1)
			continue;  /* not a kind the server takes */
		if (c->tried.len)
			sp_buf_addstr(&c->tried, ", ");
		sp_buf_addstr(&c->tried, k->label);
		return grc;
	}
	c->exhausted = true;
	git_error_set_str(GIT_ERROR_NET, "no (more) credentials to try");
	return GIT_EUSER;
}

static int on_transfer(const git_indexer_progress *st, void *payload)
{
	struct fetch_ctx *c = payload;
	int64_t now;

	if (cancelled(c->m->opts)) {
		c->cancelled = true;
		return -1;
	}
	if (!c->m->opts->progress)
		return 0;
	if (st->total_objects && st->received_objects == st->total_objects &&
	    st->indexed_objects == st->total_objects) {
		if (!c->done_reported)
			progress(c->m, SP_CHECKOUT_FETCHING, st);
		c->done_reported = true;
		return 0;
	}
	now = now_ms();
	if (now - c->last_ms >= PROGRESS_EVERY_MS) {
		c->last_ms = now;
		progress(c->m, SP_CHECKOUT_FETCHING, st);
	}
	return 0;
}

static int on_sideband(const char *str, int len, void *payload)
{
	struct fetch_ctx *c = payload;

	(void)str;
	(void)len;
	if (cancelled(c->m->opts)) {
		c->cancelled = true;
		return -1;
	}
	return 0;
}

/* A local repository that is missing or not a repository: SP_ENOTFOUND, said plainly. */
static int check_local(const struct sp_mirror *m, struct sp_error *err)
{
	git_repository *r = NULL;
	struct stat st;

	if (stat(m->url->path, &st) < 0)
		return sp_error_set(err, SP_ENOTFOUND, "no repository at %s: %s", m->url->display,
				    strerror(errno));
	if (git_repository_open_ext(&r, m->url->path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return sp_error_set(err, SP_ENOTFOUND, "%s is not a git repository",
				    m->url->display);
	git_repository_free(r);
	return 0;
}

static int fetch_failed(struct fetch_ctx *c, int grc, struct sp_error *err)
{
	const struct sp_giturl *u = c->m->url;
	char *msg;
	int rc;

	/*
	 * The cancel callback first: a signal that interrupted a read shows up
	 * as libgit2 "Interrupted system call" before any progress callback ran.
	 */
	if (c->cancelled || cancelled(c->m->opts))
		return sp_error_set(err, SP_ECANCELLED, "cancelled while fetching %s", u->display);
	if (c->offsite)
		return sp_error_set(err, SP_EENGINE, "cannot fetch %s: another host asked for its "
				    "credentials (a redirect?); none were sent", u->display);
	if (c->exhausted || grc == GIT_EAUTH) {
		if (c->tried.len)
			return sp_error_set(err, SP_EENGINE, "authentication failed for %s (tried %s)",
					    u->display, c->tried.data);
		if (u->kind == SP_GITURL_SSH)
			return sp_error_set(err, SP_EENGINE, "authentication failed for %s: no ssh "
					    "credentials (set STAGEPIPE_GIT_SSH_KEY or start an "
					    "ssh agent)", u->display);
		return sp_error_set(err, SP_EENGINE, "%s asks for credentials and none are set "
				    "(STAGEPIPE_GIT_TOKEN, STAGEPIPE_GIT_USER/STAGEPIPE_GIT_PASSWORD, "
				    "or a credentials file)", u->display);
	}
	msg = git_msg(&c->creds, u);
	rc = sp_error_set(err, SP_EENGINE, "cannot fetch %s: %s", u->display, msg);
	free(msg);
	return rc;
}

/* Hard-links src to dst (a copy across file systems or where links are refused). */
static bool link_or_copy(const char *src, const char *dst)
{
	char buf[65536], *tmp;
	ssize_t n;
	int in, out;
	bool ok = true;

	if (link(src, dst) == 0)
		return true;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return false;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return false;
	tmp = sp_xasprintf("%s.tmp", dst);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
	if (out < 0) {
		close(in);
		free(tmp);
		return false;
	}
	while (ok && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 || write(out, buf, (size_t)n) != n)
			ok = false;
	}
	close(in);
	if (close(out) < 0)
		ok = false;
	if (ok && rename(tmp, dst) < 0)
		ok = false;
	if (!ok)
		(void)unlink(tmp);
	free(tmp);
	return ok;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A small text file's contents ("" when missing); caller frees. */
static char *read_text(const char *path)
{
	char *text = sp_fs_read_small(path);

	return text ? text : sp_xstrdup("");
}

static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = list; (p = strstr(p, name)) != NULL; p += n)
		if ((p == list || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

/* The packs of one objects folder, linked into the mirror; names added to linked. */
static void link_packs(const char *objects, const char *to, struct sp_buf *linked)
{
	char *from = sp_xasprintf("%s/pack", objects);
	DIR *d = opendir(from);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char *si, *sp, *di, *dp;

		if (n < 5 || strcmp(de->d_name + n - 4, ".idx") || strncmp(de->d_name, "pack-", 5))
			continue;
		sp_buf_addf(linked, "%.*s\n", (int)(n - 4), de->d_name);
		si = sp_xasprintf("%s/%s", from, de->d_name);
		sp = sp_xasprintf("%s/%.*s.pack", from, (int)(n - 4), de->d_name);
		di = sp_xasprintf("%s/%s", to, de->d_name);
		dp = sp_xasprintf("%s/%.*s.pack", to, (int)(n - 4), de->d_name);
		if (!exists(di) && (!link_or_copy(sp, dp) || !link_or_copy(si, di))) {
			(void)unlink(dp);
			(void)unlink(di);
		}
		free(si);
		free(sp);
		free(di);
		free(dp);
	}
	if (d)
		closedir(d);
	free(from);
}

/* The loose objects of one objects folder that the mirror lacks, linked in. */
static void link_loose(const char *objects, const char *mirror_objects)
{
	int i;

	for (i = 0; i < 256; i++) {
		char *sd = sp_xasprintf("%s/%02x", objects, i);
		char *dd = sp_xasprintf("%s/%02x", mirror_objects, i);
		DIR *ld = opendir(sd);
		struct dirent *de;

		while (ld && (de = readdir(ld)) != NULL) {
			char *a, *b;

			if (strlen(de->d_name) != GIT_OID_HEXSZ - 2)
				continue;
			if (mkdir(dd, 0755) < 0 && errno != EEXIST)
				break;
			a = sp_xasprintf("%s/%s", sd, de->d_name);
			b = sp_xasprintf("%s/%s", dd, de->d_name);
			if (!exists(b))
				(void)link_or_copy(a, b);
			free(a);
			free(b);
		}
		if (ld)
			closedir(ld);
		free(sd);
		free(dd);
	}
}

/*
 * A repository on this machine is not fetched through libgit2's local
 * transport, which packs anew every object it sends (tens of seconds for
 * a big history) and, for each annotated tag, the whole tree it points at
 * on every fetch.  Instead, as `git clone /path` does, its packs and loose
 * objects are hard-linked into the mirror (copied across file systems);
 * the fetch that follows finds every object there and only moves refs.
 * Packs and loose objects are immutable once they have their name, so
 * sharing inodes is safe; a pack is linked before its index, and both go
 * if either fails.  Objects the source borrows through
 * objects/info/alternates are linked from there too.
 *
 * Packs the source has since dropped (after its `git gc`) are removed
 * from the mirror, but only those this linked ("stagepipe-linked" lists
 * them): the source's new packs hold what its refs need, and the mirror's
 * refs follow the source's.  Best effort throughout: whatever is not
 * linked is fetched as usual.  Runs under the exclusive lock.
 */
static void sync_local(const struct sp_mirror *m)
{
	git_repository *src = NULL;
	const char *dir = m->tmp ? m->tmp : m->path;
	char *objects = NULL, *mobjects = NULL, *to = NULL, *alt = NULL, *altfile = NULL;
	char *old = NULL, *listpath = NULL, *line, *next;
	struct sp_buf linked = SP_BUF_INIT;
	DIR *d;
	struct dirent *de;

	if (git_repository_open_ext(&src, m->url->path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return;
	objects = sp_xasprintf("%sobjects", git_repository_commondir(src));
	mobjects = sp_xasprintf("%s/objects", dir);
	to = sp_xasprintf("%s/objects/pack", dir);
	listpath = sp_xasprintf("%s/stagepipe-linked", dir);
	old = read_text(listpath);
	link_packs(objects, to, &linked);
	link_loose(objects, mobjects);
	altfile = sp_xasprintf("%s/info/alternates", objects);
	alt = read_text(altfile);
	for (line = alt; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (line[0] == '/') {
			link_packs(line, to, &linked);
			link_loose(line, mobjects);
		}
	}
	/* linked before, gone from the source now: drop from the mirror */
	d = opendir(to);
	while (d && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char *name;

		if (n < 6 || strcmp(de->d_name + n - 5, ".pack"))
			continue;
		name = sp_xstrndup(de->d_name, n - 5);
		if (listed(old, name) && !listed(linked.data, name)) {
			char *p = sp_xasprintf("%s/%s.idx", to, name);

			(void)unlink(p);
			free(p);
			p = sp_xasprintf("%s/%s.pack", to, name);
			(void)unlink(p);
			free(p);
		}
		free(name);
	}
	if (d)
		closedir(d);
	{
		FILE *f = fopen(listpath, "w");

		if (f) {
			fputs(linked.data, f);
			fclose(f);
		}
	}
	free(listpath);
	sp_buf_release(&linked);
	free(old);
	free(alt);
	free(altfile);
	free(objects);
	free(mobjects);
	free(to);
	git_repository_free(src);
}

/* Writes the marker and renames the new mirror into place. */
static int finish_new(struct sp_mirror *m, struct sp_error *err)
{
	char *marker = sp_xasprintf("%s/" MARKER, m->tmp);
	char *text = sp_xasprintf(MARKER_MAGIC "url %s\n", m->url->canonical);
	struct stat st;
	FILE *f = fopen(marker, "wb");
	int rc = 0;

	if (!f || fputs(text, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot write %s: %s", marker, strerror(errno));
		goto out;
	}
	git_repository_free(m->repo);
	m->repo = NULL;
	if (rename(m->tmp, m->path) < 0) {
		rc = sp_error_set(err, SP_ERROR, "cannot move the new mirror to %s: %s", m->path,
				  strerror(errno));
		goto out;
	}
	free(m->tmp);
	m->tmp = NULL;
	if (git_repository_open_bare(&m->repo, m->path) < 0) {
		rc = sp_mirror_git_error(m, SP_ERROR, "cannot open the new mirror of", err);
		goto out;
	}
	if (stat(m->path, &st) == 0)
		m->ino = st.st_ino;
out:
	if (f)
		fclose(f);
	free(marker);
	free(text);
	return rc;
}

int sp_mirror_fetch(struct sp_mirror *m, const char *const *extra, size_t n_extra,
		    struct sp_error *err)
{
	git_remote *remote = NULL;
	git_remote_create_options ro;
	git_remote_callbacks cbs;
	git_fetch_options fo;
	git_remote_connect_options co;
	git_proxy_options proxy;
	git_strarray specs;
	git_buf head = { NULL, 0, 0 };
	const git_indexer_progress *st;
	struct fetch_ctx c;
	char *specv[16];
	size_t i;
	int rc = 0, grc;

	memset(&c, 0, sizeof(c));
	c.m = m;
	sp_buf_init(&c.tried, 0);
	if (n_extra > sizeof(specv) / sizeof(specv[0]) - 2)
		return sp_error_set(err, SP_ECONFIG, "too many refs to fetch at once");
	if ((rc = sp_mirror_lock(m, true, err)) < 0)
		goto out;
	if (m->url->kind == SP_GITURL_FILE && (rc = check_local(m, err)) < 0)
		goto out;
	if (m->url->kind == SP_GITURL_FILE)
		sync_local(m);
	if ((rc = sp_gitcred_list(&c.creds, m->url, m->env_host, m->opts->getenv,
				  m->opts->getenv_ud, err)) < 0)
		goto out;

	specv[0] = (char *)"+refs/heads/*:refs/heads/*";
	specv[1] = (char *)"+refs/tags/*:refs/tags/*";
	for (i = 0; i < n_extra; i++)
		specv[2 + i] = (char *)extra[i];
	specs.strings = specv;
	specs.count = 2 + n_extra;

	git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
	cbs.credentials = on_credentials;
	cbs.transfer_progress = on_transfer;
	cbs.sideband_progress = on_sideband;
	cbs.payload = &c;
	git_proxy_options_init(&proxy, GIT_PROXY_OPTIONS_VERSION);
	proxy.type = GIT_PROXY_AUTO;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks = cbs;
	fo.proxy_opts = proxy;
	fo.prune = GIT_FETCH_PRUNE;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	/* never follow a redirect: libgit2 1.5 would take credentials off-site */
	fo.follow_redirects = GIT_REMOTE_REDIRECT_NONE;
	git_remote_connect_options_init(&co, GIT_REMOTE_CONNECT_OPTIONS_VERSION);
	co.callbacks = cbs;
	co.proxy_opts = proxy;
	co.follow_redirects = GIT_REMOTE_REDIRECT_NONE;

	progress(m, SP_CHECKOUT_FETCHING, NULL);
	/*
	 * Anonymous (nothing written to the mirror's config), and without
	 * url.*.insteadOf rewriting from the user's git config: the URL given
	 * is the URL fetched.  (It also avoids libgit2 1.5 leaking regex
	 * match data on every remote it creates.)
	 */
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = m->repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if ((grc = git_remote_create_with_opts(&remote, m->url->fetch, &ro)) < 0 ||
	    (grc = git_remote_connect_ext(remote, GIT_DIRECTION_FETCH, &co)) < 0) {
		rc = fetch_failed(&c, grc, err);
		goto out;
	}
	if (git_remote_default_branch(&head, remote) == 0 && head.ptr)
		m->head = sp_xstrdup(head.ptr);
	if ((grc = git_remote_download(remote, &specs, &fo)) < 0 ||
	    (grc = git_remote_update_tips(remote, &cbs, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE,
					  "stagepipe: fetch")) < 0 ||
	    (grc = git_remote_prune(remote, &cbs)) < 0) {
		rc = fetch_failed(&c, grc, err);
		goto out;
	}
	st = git_remote_stats(remote);
	m->objects_received += st->received_objects;
	m->bytes_received += st->received_bytes;
	m->fetched = true;
	(void)git_remote_disconnect(remote);
	if (m->head && git_repository_set_head(m->repo, m->head) < 0) {
		rc = sp_mirror_git_error(m, SP_ERROR, "cannot record the default branch of", err);
		goto out;
	}
	if (m->tmp)
		rc = finish_new(m, err);
out:
	git_buf_dispose(&head);
	git_remote_free(remote);
	sp_gitcred_list_release(&c.creds);
	sp_buf_release(&c.tried);
	return rc;
}
