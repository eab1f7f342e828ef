/*
 * copy.c — `stagepipe store copy`: the upgrade path from SQLite to
 * PostgreSQL (store.h, sp_store_copy).
 *
 * Both stores are brought to this binary's schema first (opening them
 * migrates), so their tables have the same columns; then every row of
 * jobs, deliveries, stages, outbox and meta goes across as text in one
 * PostgreSQL transaction, ids and revs kept, with the rev triggers off
 * while it runs (the rows carry their own), and the sequences set past
 * the highest id and rev.  The target must hold no job and no delivery:
 * a copy never merges.  A server on PostgreSQL keeps its logs in the store
 * (job_log): the log files of the data folder (the SQLite file's folder:
 * DATA/logs/<job>/<stage>.log) go into job_log in the same transaction,
 * read in 64 KiB pieces and cut at the last line end (a line longer than
 * that is read on to its end, up to 16 MiB), so no line is split and
 * memory stays bounded; the files of a job the database does not know are
 * left out.  Artifacts stay files in the data folder.
 */
#include "core/store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

/* In this order: rows refer to jobs. */
static const char *const tables[] = { "jobs", "deliveries", "stages", "outbox", "meta" };
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* libpq's messages end in a newline; ours do not. */
static int trimmed(struct sp_error *err, int rc)
{
	size_t n = err ? strlen(err->msg) : 0;

	while (n && (err->msg[n - 1] == '\n' || err->msg[n - 1] == ' '))
		err->msg[--n] = '\0';
	return rc;
}

/* Runs sql on db: 0, or SP_EENGINE with the server's message. */
static int pg(PGconn *db, const char *sql, PGresult **out, struct sp_error *err)
{
	PGresult *r = PQexec(db, sql);
	ExecStatusType s = PQresultStatus(r);

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
		if (out)
			*out = r;
		else
			PQclear(r);
		return 0;
	}
	sp_error_set(err, SP_EENGINE, "store copy: %s: %s", sql, PQerrorMessage(db));
	PQclear(r);
	return trimmed(err, SP_EENGINE);
}

/* Copies one table's rows; counts them into *n. */
static int copy_table(sqlite3 *src, PGconn *dst, const char *table, int64_t *n,
		      struct sp_error *err)
{
	struct sp_buf sql = SP_BUF_INIT;
	sqlite3_stmt *s = NULL;
	const char **vals = NULL;
	char *select = sp_xasprintf("SELECT * FROM %s%s", table,
				    strcmp(table, "meta") ? "" : " WHERE key <> 'ping'");
	int ncol, rc = 0, step;

	*n = 0;
	if (sqlite3_prepare_v2(src, select, -1, &s, NULL) != SQLITE_OK) {
		rc = sp_error_set(err, SP_EENGINE, "store copy: %s: %s", select, sqlite3_errmsg(src));
		goto cleanup;
	}
	ncol = sqlite3_column_count(s);
	sp_buf_addf(&sql, "INSERT INTO %s (", table);
	for (int i = 0; i < ncol; i++)
		sp_buf_addf(&sql, "%s%s", i ? ", " : "", sqlite3_column_name(s, i));
	sp_buf_addstr(&sql, ") VALUES (");
	for (int i = 0; i < ncol; i++)
		sp_buf_addf(&sql, "%s$%d", i ? ", " : "", i + 1);
	sp_buf_addstr(&sql, ")");
	{
		PGresult *r = PQprepare(dst, table, sql.data, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			rc = sp_error_set(err, SP_EENGINE, "store copy: %s: %s", sql.data,
					  PQerrorMessage(dst));
			PQclear(r);
			goto cleanup;
		}
		PQclear(r);
	}
	vals = sp_xcalloc((size_t)ncol, sizeof(*vals));
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		PGresult *r;
		for (int i = 0; i < ncol; i++)
			vals[i] = (const char *)sqlite3_column_text(s, i);
		r = PQexecPrepared(dst, table, ncol, vals, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			rc = sp_error_set(err, SP_EENGINE, "store copy: %s row %" PRId64 ": %s", table,
					  *n + 1, PQerrorMessage(dst));
			PQclear(r);
			goto cleanup;
		}
		PQclear(r);
		(*n)++;
	}
	if (step != SQLITE_DONE)
		rc = sp_error_set(err, SP_EENGINE, "store copy: reading %s: %s", table,
				  sqlite3_errmsg(src));
cleanup:
	sqlite3_finalize(s);
	free(vals);
	free(select);
	sp_buf_release(&sql);
	return trimmed(err, rc);
}

#define LOG_PIECE (64 * 1024)
#define LOG_LINE_MAX (16 * 1024 * 1024)

static int log_insert(PGconn *dst, int64_t job, const char *stage, int64_t off,
		      const char *data, size_t len, struct sp_error *err)
{
	char sjob[32], soff[32];
	const char *vals[4] = { sjob, stage, soff, data };
	int lens[4] = { 0, 0, 0, (int)len }, fmts[4] = { 0, 0, 0, 1 };
	PGresult *r;

	snprintf(sjob, sizeof(sjob), "%" PRId64, job);
	snprintf(soff, sizeof(soff), "%" PRId64, off);
	r = PQexecPrepared(dst, "log_chunk", 4, vals, lens, fmts, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		sp_error_set(err, SP_EENGINE, "store copy: log of job %" PRId64 " stage %s: %s", job,
			     stage, PQerrorMessage(dst));
		PQclear(r);
		return SP_EENGINE;
	}
	PQclear(r);
	return 0;
}

/* One log file into chunks of whole lines. */
static int copy_log_file(PGconn *dst, const char *path, int64_t job, const char *stage,
			 struct sp_store_copy_stats *out, struct sp_error *err)
{
	struct sp_buf b = SP_BUF_INIT;
	int64_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	bool eof = false;

	if (fd < 0)
		return sp_error_set(err, SP_ERROR, "store copy: %s: %s", path, strerror(errno));
	while (!rc && !eof) {
		size_t cut = 0;
		ssize_t n;

		if (sp_buf_grow(&b, LOG_PIECE) < 0) {
			rc = sp_error_set(err, SP_ERROR, "store copy: %s: out of memory", path);
			break;
		}
		do
			n = read(fd, b.data + b.len, LOG_PIECE);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			rc = sp_error_set(err, SP_ERROR, "store copy: %s: %s", path, strerror(errno));
			break;
		}
		b.len += (size_t)n;
		eof = n == 0;
		for (size_t i = b.len; i > 0; i--)
			if (b.data[i - 1] == '\n') {
				cut = i;
				break;
			}
		if (eof || b.len >= LOG_LINE_MAX)
			cut = b.len;  /* the last line, even without its newline */
		if (!cut)
			continue;  /* a line longer than a piece: read on */
		rc = log_insert(dst, job, stage, off, b.data, cut, err);
		off += (int64_t)cut;
		memmove(b.data, b.data + cut, b.len - cut);
		b.len -= cut;
	}
	close(fd);
	sp_buf_release(&b);
	if (!rc && off) {
		out->logs++;
		out->log_bytes += off;
	}
	return rc;
}

/* The log files of the data folder (the one of sqlite_path) into job_log. */
static int copy_logs(const char *sqlite_path, PGconn *dst, struct sp_store_copy_stats *out,
		     struct sp_error *err)
{
	const char *slash = strrchr(sqlite_path, '/');
	char *logs = slash ? sp_xasprintf("%.*s/logs", (int)(slash - sqlite_path), sqlite_path)
			   : sp_xstrdup("logs");
	DIR *top = opendir(logs), *d = NULL;
	struct dirent *je, *fe;
	PGresult *r;
	int rc = 0;

	if (!top) {
		free(logs);
		return 0;  /* no log written yet */
	}
	r = PQprepare(dst, "log_chunk", "INSERT INTO job_log (job_id, stage, off, data)"
		      " VALUES ($1::bigint, $2, $3::bigint, $4::bytea)", 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = sp_error_set(err, SP_EENGINE, "store copy: %s", PQerrorMessage(dst));
	PQclear(r);
	r = rc ? NULL : PQprepare(dst, "log_job", "SELECT 1 FROM jobs WHERE id = $1::bigint", 0,
				  NULL);
	if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = sp_error_set(err, SP_EENGINE, "store copy: %s", PQerrorMessage(dst));
	PQclear(r);
	while (!rc && (je = readdir(top))) {
		char *end, *dir;
		int64_t job = strtoll(je->d_name, &end, 10);
		const char *v[1] = { je->d_name };
		bool known;

		if (job <= 0 || *end)
			continue;
		r = PQexecPrepared(dst, "log_job", 1, v, NULL, NULL, 0);
		known = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		PQclear(r);
		if (!known)
			continue;  /* a job the database does not know */
		dir = sp_xasprintf("%s/%s", logs, je->d_name);
		d = opendir(dir);
		while (d && !rc && (fe = readdir(d))) {
			size_t n = strlen(fe->d_name);
			char *stage, *path;

			if (n <= 4 || strcmp(fe->d_name + n - 4, ".log") || fe->d_name[0] == '.')
				continue;
			stage = sp_xasprintf("%.*s", (int)(n - 4), fe->d_name);
			path = sp_xasprintf("%s/%s", dir, fe->d_name);
			rc = copy_log_file(dst, path, job, stage, out, err);
			free(stage);
			free(path);
		}
		if (d)
			closedir(d);
		d = NULL;
		free(dir);
	}
	closedir(top);
	free(logs);
	return trimmed(err, rc);
}

int sp_store_copy(const char *sqlite_path, const char *pg_url, struct sp_store_copy_stats *out,
		  struct sp_error *err)
{
	struct sp_store_opts o = { .path = sqlite_path, .url = pg_url };
	struct sp_store *st = NULL;
	sqlite3 *src = NULL;
	PGconn *dst = NULL;
	PGresult *r = NULL;
	char shown[512];
	int64_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	sp_store_pg_mask_url(pg_url, shown, sizeof(shown));
	/* both at this binary's schema (opening migrates) */
	rc = sp_store_open_sqlite(&st, &o, err);
	sp_store_close(st);
	st = NULL;
	if (!rc)
		rc = sp_store_open_postgres(&st, &o, err);
	sp_store_close(st);
	if (rc)
		return rc;
	if (sqlite3_open_v2(sqlite_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = sp_error_set(err, SP_EENGINE, "store copy: %s: %s", sqlite_path,
				  sqlite3_errmsg(src));
		goto cleanup;
	}
	{
		const char *keys[] = { "dbname", "application_name", NULL };
		const char *vals[] = { pg_url, "stagepipe-store-copy", NULL };
		dst = PQconnectdbParams(keys, vals, 1);
	}
	if (PQstatus(dst) != CONNECTION_OK) {
		rc = sp_error_set(err, SP_EENGINE, "store copy: cannot connect to %s: %s", shown,
				  PQerrorMessage(dst));
		goto cleanup;
	}
	PQsetNoticeProcessor(dst, quiet, NULL);
	rc = pg(dst, "BEGIN", NULL, err);
	if (!rc)
		rc = pg(dst, "LOCK TABLE jobs, deliveries, stages, outbox IN EXCLUSIVE MODE", NULL, err);
	if (!rc)
		rc = pg(dst, "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM deliveries)",
			&r, err);
	if (rc)
		goto cleanup;
	if (strcmp(PQgetvalue(r, 0, 0), "0")) {
		rc = sp_error_set(err, SP_ECONFIG, "store copy: %s already holds jobs or deliveries:"
				  " a copy goes into a new, empty database", shown);
		goto cleanup;
	}
	rc = pg(dst, "ALTER TABLE jobs DISABLE TRIGGER USER;"
		"ALTER TABLE stages DISABLE TRIGGER USER", NULL, err);
	for (size_t i = 0; !rc && i < NTABLES; i++) {
		rc = copy_table(src, dst, tables[i], &n, err);
		if (!strcmp(tables[i], "jobs"))
			out->jobs = n;
		else if (!strcmp(tables[i], "deliveries"))
			out->deliveries = n;
		else if (!strcmp(tables[i], "stages"))
			out->stages = n;
		else if (!strcmp(tables[i], "outbox"))
			out->outbox = n;
	}
	if (!rc)
		rc = pg(dst, "ALTER TABLE jobs ENABLE TRIGGER USER;"
			"ALTER TABLE stages ENABLE TRIGGER USER;"
			"SELECT setval(pg_get_serial_sequence('jobs', 'id'),"
			" coalesce((SELECT max(id) FROM jobs), 0) + 1, false);"
			"SELECT setval(pg_get_serial_sequence('outbox', 'id'),"
			" coalesce((SELECT max(id) FROM outbox), 0) + 1, false);"
			"SELECT setval('jobs_rev_seq', coalesce((SELECT max(rev) FROM jobs), 0) + 1,"
			" false)", NULL, err);
	if (!rc)
		rc = copy_logs(sqlite_path, dst, out, err);
	if (!rc)
		rc = pg(dst, "COMMIT", NULL, err);
cleanup:
	PQclear(r);
	if (rc && dst && PQstatus(dst) == CONNECTION_OK)
		PQclear(PQexec(dst, "ROLLBACK"));
	PQfinish(dst);
	sqlite3_close(src);
	return trimmed(err, rc);
}
