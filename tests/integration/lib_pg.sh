# tests/integration/lib_pg.sh — the job store of the servers a test starts,
# SQLite (the default) or PostgreSQL (STORE=postgres), sourced by lib.sh.
#
#   tests/integration/run.sh build/stagepipe test_serve_hooks@postgres
#   STORE=postgres tests/integration/run.sh build/stagepipe test_serve_hooks
#
# (run.sh runs a test whose header says `# stores: sqlite postgres` both
# ways, on one cluster it starts for the whole run.)
# With STORE=postgres each data folder DATA a test gives its server gets a
# database of its own on the server SP_TEST_PG_URL names, or, when that is
# not set, on a private cluster started for the test by
# tests/tools/pg_cluster.sh when lib.sh is sourced (so in the test's own
# shell, not a subshell; stopped and removed when the test ends).
#   store_line DATA       the config line for DATA's store ("" for SQLite)
#   store_sql DBFILE SQL  runs SQL on the store of DBFILE's folder (the
#                         SQLite file DATA/stagepipe.db names it either way);
#                         rows as sqlite3 prints them (a|b, NULL empty)
#   store_dump DBFILE     every row of that store as text (for greps)
#   store_exists DBFILE   whether the store has been created
#   pg_private            (before any store_line) a private cluster for
#                         this test even when SP_TEST_PG_URL names a shared
#                         one: for a test that stops its PostgreSQL
#   pg_halt, pg_resume    stop that private cluster at once (as a crash
#                         would) and start it again
# On a cluster SP_TEST_PG_URL names (tests/integration/run.sh starts one for
# a whole run) the databases a test made are dropped when it ends.
STORE=${STORE:-sqlite}
_pg_dir=
# the prefix of this test's database names (store_line mostly runs in a
# command substitution, so the names it makes cannot be listed)
_pg_prefix=sp_$(printf '%s' "$T" | md5sum | cut -c1-8)_

pg_cleanup() {
	if [ -n "$_pg_dir" ]; then
		"$top/tests/tools/pg_cluster.sh" stop "$_pg_dir"
	elif [ -n "${_pg_url:-}" ]; then
		# FORCE: a server the test left running loses its connections
		for _d in $(psql -XAtq "$_pg_url" -c \
			"SELECT datname FROM pg_database WHERE datname LIKE '${_pg_prefix}%'" 2>/dev/null); do
			psql -XAtq "$_pg_url" -c "DROP DATABASE IF EXISTS $_d WITH (FORCE)" >/dev/null 2>&1 ||
				echo "lib_pg.sh: could not drop database $_d" >&2
		done
	fi
	_pg_dir=
}

# _pg_base: sets $_pg_url (the server, database postgres), starting one if need be
_pg_base() {
	[ -n "${_pg_url:-}" ] && return
	if [ -n "${SP_TEST_PG_URL:-}" ]; then
		_pg_url=$SP_TEST_PG_URL
		return
	fi
	_pg_dir=$(mktemp -d /tmp/sp-pg.XXXXXX)
	_pg_url=$("$top/tests/tools/pg_cluster.sh" start "$_pg_dir" | sed -n 's/^SP_TEST_PG_URL=//p')
	[ -n "$_pg_url" ] || fail "could not start PostgreSQL (tests/tools/pg_cluster.sh)"
}

pg_private() {
	[ -z "$_pg_dir" ] || return 0
	_pg_url= SP_TEST_PG_URL=
	_pg_base
}

pg_halt() {
	[ -n "$_pg_dir" ] || fail "pg_halt: no private cluster (pg_private)"
	"$top/tests/tools/pg_cluster.sh" halt "$_pg_dir" || fail "could not stop PostgreSQL"
}

pg_resume() {
	[ -n "$_pg_dir" ] || fail "pg_resume: no private cluster (pg_private)"
	"$top/tests/tools/pg_cluster.sh" resume "$_pg_dir" || fail "could not start PostgreSQL again"
}

# _pg_db DATA: the database name of data folder DATA
_pg_db() {
	printf '%s%s' "$_pg_prefix" "$(printf '%s' "$1" | md5sum | cut -c1-20)"
}

# _pg_url_of DATA: its URL (the server's with the database name swapped)
_pg_url_of() {
	_pg_base
	printf '%s' "$_pg_url" | sed "s|/postgres?|/$(_pg_db "$1")?|; s|/postgres\$|/$(_pg_db "$1")|"
}

store_line() {
	[ "$STORE" = postgres ] || return 0
	_pg_base
	_db=$(_pg_db "$1")
	if [ -z "$(psql -XAtq "$_pg_url" -c "SELECT 1 FROM pg_database WHERE datname = '$_db'")" ]; then
		psql -XAtq "$_pg_url" -c "CREATE DATABASE $_db" >/dev/null || fail "CREATE DATABASE $_db"
	fi
	echo "store: \"$(_pg_url_of "$1")\""
}

store_sql() {
	if [ "$STORE" = postgres ]; then
		_pg_base
		psql -XAtq -v ON_ERROR_STOP=1 "$(_pg_url_of "$(dirname "$1")")" -c "$2"
	else
		sqlite3 -batch -noheader "$1" "$2"
	fi
}

store_dump() {
	if [ "$STORE" = postgres ]; then
		_pg_base
		pg_dump --data-only --inserts "$(_pg_url_of "$(dirname "$1")")"
	else
		sqlite3 "$1" .dump
	fi
}

store_exists() {
	if [ "$STORE" = postgres ]; then
		[ "$(store_sql "$1" "SELECT count(*) FROM stagepipe_schema" 2>/dev/null)" = 1 ]
	else
		[ -f "$1" ]
	fi
}

[ "$STORE" != postgres ] || _pg_base
