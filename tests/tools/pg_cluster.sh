#!/bin/sh
# tests/tools/pg_cluster.sh — a private PostgreSQL cluster for the tests.
#
#   pg_cluster.sh start DIR    initdb into DIR (a new, empty or absent folder),
#                              start it, print SP_TEST_PG_URL=<url> on stdout
#   pg_cluster.sh stop DIR     stop it and remove DIR
#   pg_cluster.sh halt DIR     stop it at once (pg_ctl -m immediate: as a
#                              crash or a power cut would), keeping DIR
#   pg_cluster.sh resume DIR   start a halted one again (crash recovery)
#   pg_cluster.sh run CMD...   start one in a temporary folder, run CMD with
#                              SP_TEST_PG_URL exported, stop and remove it;
#                              exits with CMD's status.  Without initdb (no
#                              PostgreSQL installed) CMD runs without the URL
#                              and the PostgreSQL tests say they are skipped.
#                              An SP_TEST_PG_URL already set is used as it is.
#
# The cluster is Debian's PostgreSQL (contrib/deps.sh installs it), run as
# the `postgres` user when we are root (initdb refuses root) through
# runuser, else as ourselves.  It listens only on a unix socket in DIR (no
# TCP port, so parallel runs never collide), trusts local connections, and
# keeps fsync and synchronous_commit on as in production: the tests measure
# and rely on real commits.  The URL names the `postgres` database as the
# superuser; tests make their own schemas or databases in it.
set -eu

pg_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return; }
	done
	command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
	return 1
}

# as_owner CMD...: runs CMD as the cluster's owner
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# pg_start BINDIR DIR: starts the cluster in DIR/data
pg_start() {
	as_owner "$1/pg_ctl" -D "$2/data" -l "$2/server.log" -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories='$2' -c fsync=on \
-c synchronous_commit=on -c max_connections=300 -c shared_buffers=64MB" \
		start >"$2/pg_ctl.log" 2>&1 || { cat "$2/pg_ctl.log" "$2/server.log" >&2; exit 1; }
}

start() {
	dir=$1
	bin=$(pg_bindir) || { echo "pg_cluster.sh: no initdb (apt-get install postgresql)" >&2; exit 3; }
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
		owner=postgres
	else
		owner=$(id -un)
	fi
	chmod 0700 "$dir"
	as_owner "$bin/initdb" -D "$dir/data" -U "$owner" --auth=trust -E UTF8 --locale=C.UTF-8 \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
	pg_start "$bin" "$dir"
	# the socket folder must be reachable by the test user too
	chmod 0711 "$dir"
	echo "SP_TEST_PG_URL=postgresql://$owner@/postgres?host=$dir"
}

stop() {
	dir=$1
	[ -d "$dir" ] || return 0
	if bin=$(pg_bindir) && [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

halt() {
	bin=$(pg_bindir) || exit 3
	as_owner "$bin/pg_ctl" -D "$1/data" -m immediate -w -t 60 stop >/dev/null 2>&1
}

resume() {
	bin=$(pg_bindir) || exit 3
	pg_start "$bin" "$1"
}

case ${1:-} in
start) [ $# = 2 ] || exit 2; start "$2" ;;
stop) [ $# = 2 ] || exit 2; stop "$2" ;;
halt) [ $# = 2 ] || exit 2; halt "$2" ;;
resume) [ $# = 2 ] || exit 2; resume "$2" ;;
run)
	shift
	if [ -n "${SP_TEST_PG_URL:-}" ] || ! pg_bindir >/dev/null 2>&1; then
		exec "$@"
	fi
	dir=$(mktemp -d /tmp/sp-pg.XXXXXX)
	trap 'stop "$dir"' EXIT INT TERM
	url=$(start "$dir" | sed -n 's/^SP_TEST_PG_URL=//p')
	export SP_TEST_PG_URL="$url"
	rc=0
	"$@" || rc=$?
	exit $rc
	;;
*) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
