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
 * a copy never merges.  Logs and artifacts are files in the data folder,
 * not in the store: a server on PostgreSQL keeps using the same folder.
 */
#include "core/store/store.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		rc = pg(dst, "COMMIT", NULL, err);
cleanup:
	PQclear(r);
	if (rc && dst && PQstatus(dst) == CONNECTION_OK)
		PQclear(PQexec(dst, "ROLLBACK"));
	PQfinish(dst);
	sqlite3_close(src);
	return trimmed(err, rc);
}
