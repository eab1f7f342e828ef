# bench/lib.sh — what several benchmarks share.  Sourced after `top` (the
# repository) is set; never run by itself (`make bench` skips it).

# bench_engine: the Docker engine the bench talks to: DOCKER_HOST and
# BASE_IMAGE as set, else the private engine (contrib/engine.sh up, which
# starts it when it is not running); then SOCK (its unix socket) and API
# (the base URL of the API version the raw anchors call).
bench_engine() {
	if [ -z "${DOCKER_HOST:-}" ] || [ -z "${BASE_IMAGE:-}" ]; then
		eval "$("$top/contrib/engine.sh" up)"
	fi
	SOCK=${DOCKER_HOST#unix://}
	API=http://localhost/v1.41
}

# bench_buildargs: the example app's build args ({"BASE_IMAGE": ...}) as a
# URL-encoded JSON value for /build?buildargs=
bench_buildargs() {
	python3 -c 'import json,urllib.parse,os; print(urllib.parse.quote(json.dumps({"BASE_IMAGE": os.environ["BASE_IMAGE"]})))'
}

# bench_port [FROM]: a free loopback port, FROM or the first free one after
# it (default: a random one in 20000-49999)
bench_port() {
	_p=${1:-$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000))}
	while curl -s -o /dev/null -m 1 "http://127.0.0.1:$_p/"; [ $? != 7 ]; do _p=$((_p + 1)); done
	echo "$_p"
}

# bench_store W: the job store of the bench's servers, from BENCH_STORE
# (sqlite, the default, or postgres: BENCH_PG_URL, else a private cluster
# in W/pg made by tests/tools/pg_cluster.sh, fsync on).  Sets store (the
# serve.yml line; empty for SQLite), pgurl, and pgdir (the cluster to stop
# at exit; empty when none was started).
bench_store() {
	pgdir= store= pgurl=
	[ "${BENCH_STORE:-sqlite}" = postgres ] || return 0
	pgurl=${BENCH_PG_URL:-}
	if [ -z "$pgurl" ]; then
		pgdir=$1/pg
		chmod 0711 "$1"
		pgurl=$("$top/tests/tools/pg_cluster.sh" start "$pgdir" | sed -n 's/^SP_TEST_PG_URL=//p')
	fi
	store="store: \"$pgurl\""
}

# count SQL: the number SQL answers, from the bench's store (SQLite: the
# database in $W/data)
count() {
	if [ -n "$store" ]; then psql -XAtq "$pgurl" -c "$1"
	else sqlite3 "$W/data/stagepipe.db" "$1"; fi
}
