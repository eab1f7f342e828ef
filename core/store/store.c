/*
 * store.c — the backend-independent half of the job store (see store.h):
 * state and status names, the sp_store_* calls dispatched through the
 * backend's ops table, and the release functions for results.
 */
#include "core/store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/error.h"

static const char *const job_state_names[SP_JOB_NSTATES] = {
	[SP_JOB_QUEUED] = "queued",
	[SP_JOB_RUNNING] = "running",
	[SP_JOB_PASSED] = "passed",
	[SP_JOB_FAILED] = "failed",
	[SP_JOB_ERROR] = "error",
	[SP_JOB_CANCELLED] = "cancelled",
	[SP_JOB_SKIPPED] = "skipped",
};

const char *sp_job_state_name(enum sp_job_state s)
{
	if ((int)s < 0 || (int)s >= SP_JOB_NSTATES)
		return "unknown";
	return job_state_names[s];
}

int sp_job_state_parse(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < SP_JOB_NSTATES; i++)
		if (!strcmp(job_state_names[i], name))
			return i;
	return -1;
}

bool sp_job_state_final(enum sp_job_state s)
{
	return s != SP_JOB_QUEUED && s != SP_JOB_RUNNING && (int)s >= 0 &&
	       (int)s < SP_JOB_NSTATES;
}

const char *sp_status_state_name(enum sp_status_state s)
{
	switch (s) {
	case SP_STATUS_PENDING:
		return "pending";
	case SP_STATUS_RUNNING:
		return "running";
	case SP_STATUS_SUCCESS:
		return "success";
	case SP_STATUS_FAILURE:
		return "failure";
	case SP_STATUS_ERROR:
		return "error";
	case SP_STATUS_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}

int sp_store_open(struct sp_store **out, const struct sp_store_opts *o, struct sp_error *err)
{
	if (o && o->url && *o->url)
		return sp_store_open_postgres(out, o, err);
	return sp_store_open_sqlite(out, o, err);
}

void sp_store_close(struct sp_store *st)
{
	if (st)
		st->ops->close(st);
}

int sp_store_ingest(struct sp_store *st, const struct sp_delivery *d,
		    const struct sp_job_spec *job, struct sp_ingest_result *out,
		    struct sp_error *err)
{
	return st->ops->ingest(st, d, job, out, err);
}

int sp_store_job_create(struct sp_store *st, const struct sp_job_spec *job,
			struct sp_ingest_result *out, struct sp_error *err)
{
	return st->ops->job_create(st, job, out, err);
}

int sp_store_lease(struct sp_store *st, const struct sp_lease_req *req,
		   struct sp_lease *out, struct sp_error *err)
{
	return st->ops->lease(st, req, out, err);
}

void sp_lease_release(struct sp_lease *l)
{
	if (!l)
		return;
	free(l->repo);
	free(l->event);
	free(l->ref);
	free(l->branch);
	free(l->tag);
	free(l->sha);
	memset(l, 0, sizeof(*l));
}

int sp_store_renew(struct sp_store *st, int64_t job, int64_t epoch, int ttl_ms,
		   bool *cancel, struct sp_error *err)
{
	return st->ops->renew(st, job, epoch, ttl_ms, cancel, err);
}

int sp_store_stage(struct sp_store *st, int64_t job, int64_t epoch,
		   const struct sp_stage_update *u, struct sp_error *err)
{
	return st->ops->stage(st, job, epoch, u, err);
}

int sp_store_promote(struct sp_store *st, int64_t job, int64_t epoch, bool *granted,
		     char *reason, size_t reason_len, struct sp_error *err)
{
	return st->ops->promote(st, job, epoch, granted, reason, reason_len, err);
}

int sp_store_finish(struct sp_store *st, int64_t job, int64_t epoch,
		    const struct sp_finish *f, struct sp_error *err)
{
	return st->ops->finish(st, job, epoch, f, err);
}

int sp_store_expire(struct sp_store *st, int max_attempts, int *requeued, int *failed,
		    struct sp_error *err)
{
	return st->ops->expire(st, max_attempts, requeued, failed, err);
}

int sp_store_cancel(struct sp_store *st, int64_t job, const char *reason,
		    enum sp_job_state *state_after, struct sp_error *err)
{
	return st->ops->cancel(st, job, reason, state_after, err);
}

int sp_store_requeue(struct sp_store *st, int64_t job, int64_t epoch, const char *reason,
		     int max_attempts, struct sp_error *err)
{
	return st->ops->requeue(st, job, epoch, reason, max_attempts, err);
}

int sp_store_relabel(struct sp_store *st, int64_t job, int64_t epoch, const char *labels,
		     const char *reason, struct sp_error *err)
{
	return st->ops->relabel(st, job, epoch, labels, reason, err);
}

int sp_store_job_get(struct sp_store *st, int64_t job, cJSON **out, struct sp_error *err)
{
	return st->ops->job_get(st, job, out, err);
}

int sp_store_job_list(struct sp_store *st, const struct sp_job_filter *f, cJSON **out,
		      struct sp_error *err)
{
	return st->ops->job_list(st, f, out, err);
}

int sp_store_delivery_count(struct sp_store *st, const char *repo, int64_t *n,
			    struct sp_error *err)
{
	return st->ops->delivery_count(st, repo, n, err);
}

int sp_store_branches(struct sp_store *st, const char *repo, const char *branch, int limit,
		      cJSON **out, struct sp_error *err)
{
	return st->ops->branches(st, repo, branch, limit, out, err);
}

int sp_store_job_changes(struct sp_store *st, int64_t since, int64_t *ids, size_t max,
			 size_t *n, int64_t *last, struct sp_error *err)
{
	return st->ops->job_changes(st, since, ids, max, n, last, err);
}

int sp_store_outbox_next(struct sp_store *st, int max, struct sp_status_row **rows,
			 size_t *n, struct sp_error *err)
{
	return st->ops->outbox_next(st, max, rows, n, err);
}

void sp_status_rows_release(struct sp_status_row *rows, size_t n)
{
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++) {
		free(rows[i].repo);
		free(rows[i].sha);
		free(rows[i].context);
		free(rows[i].description);
	}
	free(rows);
}

int sp_store_outbox_done(struct sp_store *st, int64_t id, bool ok, const char *error,
			 int retry_in_ms, struct sp_error *err)
{
	return st->ops->outbox_done(st, id, ok, error, retry_in_ms, err);
}

int sp_store_counts(struct sp_store *st, struct sp_store_counts *out, struct sp_error *err)
{
	return st->ops->counts(st, out, err);
}

int sp_store_ping(struct sp_store *st, struct sp_error *err)
{
	return st->ops->ping(st, err);
}

int sp_store_last_write(struct sp_store *st, bool *disk_full, struct sp_error *err)
{
	if (disk_full)
		*disk_full = false;
	return st->ops->last_write(st, disk_full, err);
}

int sp_store_listen(struct sp_store *st, void (*fn)(void *arg), void *arg,
		    struct sp_error *err)
{
	if (!st->ops->listen)
		return 0;
	return st->ops->listen(st, fn, arg, err);
}

bool sp_store_has_logs(const struct sp_store *st)
{
	return st && st->ops->log_append && st->ops->log_size && st->ops->log_read;
}

int sp_store_log_append(struct sp_store *st, int64_t job, const char *stage, const void *data,
			size_t len, int64_t *off, struct sp_error *err)
{
	int64_t dummy;

	if (!sp_store_has_logs(st))
		return sp_error_set(err, SP_ERROR, "store: %s keeps no logs", st->ops->name);
	return st->ops->log_append(st, job, stage, data, len, off ? off : &dummy, err);
}

int sp_store_log_size(struct sp_store *st, int64_t job, const char *stage, int64_t *size,
		      struct sp_error *err)
{
	*size = 0;
	if (!sp_store_has_logs(st))
		return sp_error_set(err, SP_ERROR, "store: %s keeps no logs", st->ops->name);
	return st->ops->log_size(st, job, stage, size, err);
}

int sp_store_log_read(struct sp_store *st, int64_t job, const char *stage, int64_t from,
		      void *buf, size_t max, size_t *n, struct sp_error *err)
{
	*n = 0;
	if (!sp_store_has_logs(st))
		return sp_error_set(err, SP_ERROR, "store: %s keeps no logs", st->ops->name);
	return st->ops->log_read(st, job, stage, from, buf, max, n, err);
}
