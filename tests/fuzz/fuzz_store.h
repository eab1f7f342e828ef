/*
 * fuzz_store.h — a real SQLite job store for the fuzz targets of the
 * server's store-backed parsers (fuzz_jobevents.c, fuzz_agent.c).
 *
 * One store per process, opened once by LLVMFuzzerInitialize in a private
 * temporary folder (on /dev/shm when TMPDIR is not set and /dev/shm is
 * there: every commit of the store is fsynced, which costs nothing on
 * tmpfs), removed at exit.  Static helpers only, like fuzz.h.
 */
#ifndef SP_FUZZ_STORE_H
#define SP_FUZZ_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/fsutil.h"
#include "core/server/server.h"
#include "core/store/store.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_SHA "0123456789abcdef0123456789abcdef01234567"

struct fuzz_store {
	char *dir;                 /* the data folder (stagepipe.db, logs/) */
	struct sp_store *st;
};

/* Aborts with why (the harness's own trouble is not a finding). */
static inline void fuzz_die(const char *what, const struct sp_error *err)
{
	fprintf(stderr, "fuzz harness: %s: %s\n", what, err ? err->msg : "failed");
	abort();
}

/* Opens fs->st in a new temporary folder "<prefix>XXXXXX". */
static inline void fuzz_store_open(struct fuzz_store *fs, const char *prefix)
{
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store_opts o;
	const char *tmp = getenv("TMPDIR");
	char *db;

	if ((!tmp || !*tmp) && access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	if (sp_fs_tempdir(&fs->dir, prefix, &err) < 0)
		fuzz_die("tempdir", &err);
	memset(&o, 0, sizeof(o));
	db = sp_xasprintf("%s/stagepipe.db", fs->dir);
	o.path = db;
	if (sp_store_open_sqlite(&fs->st, &o, &err) < 0)
		fuzz_die("store", &err);
	free(db);
}

/* Closes the store and removes its folder (an atexit handler's body). */
static inline void fuzz_store_close(struct fuzz_store *fs)
{
	if (fs->st)
		sp_store_close(fs->st);
	fs->st = NULL;
	if (fs->dir)
		(void)sp_fs_rmtree(fs->dir, NULL);
	free(fs->dir);
	fs->dir = NULL;
}

/* A new job of repository "app", leased at once by agent (a running job). */
static inline void fuzz_store_new_job(struct fuzz_store *fs, const char *agent, int64_t *job,
				      int64_t *epoch)
{
	struct sp_job_spec j;
	struct sp_lease_req q;
	struct sp_ingest_result res;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_lease l;

	memset(&j, 0, sizeof(j));
	j.repo = "app";
	j.event = "manual";   /* no supersede key: older jobs stay as they are */
	j.ref = "refs/heads/main";
	j.branch = "main";
	j.sha = FUZZ_SHA;
	memset(&res, 0, sizeof(res));
	if (sp_store_job_create(fs->st, &j, &res, &err) < 0)
		fuzz_die("job_create", &err);
	memset(&q, 0, sizeof(q));
	q.agent = agent;
	q.labels = NULL;
	q.ttl_ms = 3600 * 1000;
	/* the oldest queued job without labels: ours, unless an older one was
	 * given back meanwhile (then that one is the job) */
	memset(&l, 0, sizeof(l));
	if (sp_store_lease(fs->st, &q, &l, &err) < 0)
		fuzz_die("lease", &err);
	*job = l.job_id;
	*epoch = l.epoch;
	sp_lease_release(&l);
}

/* Removes DATA/logs/<job> (the logs of a job the harness is done with). */
static inline void fuzz_store_drop_logs(struct fuzz_store *fs, int64_t job)
{
	char *p = sp_xasprintf("%s/logs/%lld", fs->dir, (long long)job);

	(void)sp_fs_rmtree(p, NULL);
	free(p);
}

#endif
