# tests/integration/lib.sh — helpers sourced by the integration tests.
# Each test is a POSIX sh script; the first failed check ends it.

T=$(mktemp -d)
_lib_pids=
# A test may define test_cleanup; it runs first, then what lib.sh started.
# KEEP_T=1 keeps the test's folder $T (logs, data) for a look afterwards.
lib_cleanup() {
	if command -v test_cleanup >/dev/null 2>&1; then test_cleanup; fi
	for p in $_lib_pids; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pg_cleanup
	if [ "${KEEP_T:-0}" = 1 ]; then
		echo "lib.sh: KEEP_T=1: the test's files are kept in $T" >&2
	else
		rm -rf "$T"
	fi
}
trap lib_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# run CMD...: runs it, keeping stdout in $T/out, stderr in $T/err, status in $rc
run() {
	rc=0
	"$@" >"$T/out" 2>"$T/err" || rc=$?
}

expect_rc() {
	[ "$rc" = "$1" ] || {
		echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"
		fail "exit status $rc, wanted $1"
	}
}

# expect_in FILE TEXT: FILE (out or err) contains the fixed string TEXT
expect_in() {
	grep -qF -- "$2" "$T/$1" || {
		echo "--- $1"; cat "$T/$1"
		fail "$1 lacks: $2"
	}
}

expect_not_in() {
	if grep -qF -- "$2" "$T/$1"; then
		echo "--- $1"; cat "$T/$1"
		fail "$1 has: $2"
	fi
}

# rnd N: N random bytes as hex (names and secrets unique to a run)
rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# build_network: exports BUILD_NETWORK (build.network of the test pipelines)
# unless set: "default" when the engine at $DOCKER_HOST has a bridge
# network, "none" when not (contrib/engine.sh's private engine)
build_network() {
	if [ -z "${BUILD_NETWORK:-}" ]; then
		if curl -fsS --unix-socket "${DOCKER_HOST#unix://}" http://localhost/networks/bridge \
			>/dev/null 2>&1; then
			BUILD_NETWORK=default
		else
			BUILD_NETWORK=none
		fi
	fi
	export BUILD_NETWORK
}

# registry_lists REPO: the registry at $REGISTRY lists REPO in its catalog.
# The catalog comes in pages (100 names unless n= says otherwise, at most
# 1000), so follow its Link: <…>; rel="next" headers to the end.
registry_lists() {
	_rl_path="/v2/_catalog?n=1000"
	while [ -n "$_rl_path" ]; do
		curl -fsS -D "$T/.catalog.h" "http://$REGISTRY$_rl_path" >"$T/.catalog" || return 1
		grep -qF "\"$1\"" "$T/.catalog" && return 0
		_rl_path=$(tr -d '\r' <"$T/.catalog.h" |
			sed -n 's/^[Ll]ink: *<\([^>]*\)>; *rel="next".*/\1/p')
	done
	return 1
}

# free_port: a loopback port nothing answers on (curl: "couldn't connect"),
# below the kernel's ephemeral range (ip_local_port_range, 32768 by
# default): a port in that range can be handed to some outgoing connection
# between this check and the server's bind ("Address already in use")
free_port() {
	_fp_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "${_fp_lo:-0}" -gt 12000 ] 2>/dev/null || _fp_lo=32768
	p=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d " ") % (_fp_lo - 10000)))
	while :; do
		rc=0
		curl -s -o /dev/null -m 2 "http://127.0.0.1:$p/" || rc=$?
		[ "$rc" = 7 ] && { echo "$p"; return; }
		p=$((p + 1))
		[ "$p" -lt "$_fp_lo" ] || p=10000
	done
}

# start_auth_registry USER PASSWORD: a docker-registry with htpasswd auth on
# a free loopback port, stopped when the test ends; sets $areg (host:port).
start_auth_registry() {
	command -v htpasswd >/dev/null 2>&1 ||
		fail "htpasswd not found: install apache2-utils (contrib/deps.sh --engine)"
	mkdir -p "$T/reg/data"
	htpasswd -nbB "$1" "$2" >"$T/reg/htpasswd" 2>/dev/null || fail "htpasswd failed"
	_tries=0
	while :; do
		_tries=$((_tries + 1))
		[ "$_tries" -le 5 ] || fail "could not start docker-registry; log: $(cat "$T/reg.log")"
		_port=$(free_port)
		cat >"$T/reg/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $T/reg/data
http:
  addr: 127.0.0.1:$_port
auth:
  htpasswd:
    realm: stagepipe-test
    path: $T/reg/htpasswd
EOF
		docker-registry serve "$T/reg/config.yml" >"$T/reg.log" 2>&1 &
		_pid=$!
		_i=0
		_code=
		while [ "$_i" -lt 40 ] && kill -0 "$_pid" 2>/dev/null; do
			_code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$_port/v2/" || true)
			[ "$_code" = 401 ] && break
			sleep 0.25
			_i=$((_i + 1))
		done
		if [ "$_code" = 401 ]; then
			_lib_pids="$_lib_pids $_pid"
			areg=127.0.0.1:$_port
			return
		fi
		kill "$_pid" 2>/dev/null || true
		wait "$_pid" 2>/dev/null || true
	done
}

# recorder_up TOKEN: starts tests/tools/forge_recorder.py (statuses it
# records go to $T/rec.jsonl, each checked against TOKEN) on a free port,
# waits up to 5 s for it and sets $REC to that port and $rec_pid; lib.sh
# stops it at exit.
recorder_up() {
	"${PY:-python3}" "$top/tests/tools/forge_recorder.py" --port 0 \
		--port-file "$T/rec.port" --out "$T/rec.jsonl" --token "$1" 2>"$T/rec.err" &
	rec_pid=$!
	_lib_pids="$_lib_pids $rec_pid"
	_i=0
	while [ ! -s "$T/rec.port" ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
	[ -s "$T/rec.port" ] || fail "forge_recorder did not start: $(cat "$T/rec.err")"
	REC=$(cat "$T/rec.port")
}

# serve_config FILE LISTEN DATA [SHARED]: writes the serve config FILE:
# `listen: LISTEN`, `data: DATA`, the store line of DATA (lib_pg.sh:
# nothing for SQLite, the server's own PostgreSQL database with
# STORE=postgres; that of folder SHARED instead when given: servers sharing
# one database), then the rest of the config from stdin.  LISTEN is
# written as it is (a flow list of addresses too).
serve_config() {
	_sc_store=$(store_line "${4:-$3}") || fail "no store for ${4:-$3}"
	{
		printf 'listen: %s\ndata: %s\n' "$2" "$3"
		[ -z "$_sc_store" ] || printf '%s\n' "$_sc_store"
		cat
	} >"$1"
}

# serve_start CONFIG [LOG]: starts "$BIN serve -c CONFIG" in the background
# (stdout appended to $T/serve.out, stderr to LOG, default $T/serve.log)
# and sets $srv_pid.  With $serve_wrap set (e.g. "netns_spawn srv") the
# server runs through that command.  Stopping it is the test's business.
serve_wrap=
serve_start() {
	$serve_wrap "$BIN" serve -c "$1" >>"$T/serve.out" 2>>"${2:-$T/serve.log}" &
	srv_pid=$!
}

# serve_ready BASE PID LOG [CURL OPTION...]: waits up to 15 s for the server
# PID (its stderr in LOG) to answer BASE/readyz with 200, curl given the
# CURL OPTIONs too (e.g. --cacert for https)
serve_ready() {
	_sr_base=$1 _sr_pid=$2 _sr_log=$3
	shift 3
	_i=0
	while [ $_i -lt 150 ]; do
		kill -0 "$_sr_pid" 2>/dev/null || { tail -20 "$_sr_log"; fail "serve exited at start"; }
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$_sr_base/readyz")" = 200 ] && return
		sleep 0.1
		_i=$((_i + 1))
	done
	tail -20 "$_sr_log"
	fail "serve did not answer $_sr_base/readyz within 15 s"
}

# serve_up CONFIG BASE [CURL OPTION...]: serve_start and serve_ready (its
# log $T/serve.log); with STORE=postgres, checks that it said it uses
# PostgreSQL (a config not written by serve_config would not)
serve_up() {
	_su_conf=$1 _su_base=$2
	shift 2
	serve_start "$_su_conf"
	serve_ready "$_su_base" "$srv_pid" "$T/serve.log" "$@"
	[ "$STORE" != postgres ] || grep -q 'serve.store.*backend=postgres' "$T/serve.log" ||
		fail "STORE=postgres, but serve did not say it uses PostgreSQL"
}

# stop_pid PID: SIGCONT and SIGTERM, then SIGKILL after 10 s; waits for it
stop_pid() {
	[ -n "$1" ] || return 0
	kill -CONT "$1" 2>/dev/null
	kill -TERM "$1" 2>/dev/null
	_sp_i=0
	while kill -0 "$1" 2>/dev/null && [ $_sp_i -lt 100 ]; do sleep 0.1; _sp_i=$((_sp_i + 1)); done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	true
}

# engine_test_env: the start of a serve/agent test on the engine: the
# engine's variables (contrib/engine.sh up) and jq are there; sets PY, SIGN
# (tests/tools/sign_hook.py) and SOCK (the engine's unix socket); HOME in
# $T with a git identity; BUILD_NETWORK (build_network), all exported
engine_test_env() {
	: "${BASE_IMAGE:?needs contrib/engine.sh up}"
	: "${REGISTRY:?needs contrib/engine.sh up}"
	: "${DOCKER_HOST:?needs contrib/engine.sh up}"
	command -v jq >/dev/null 2>&1 || fail "jq not found"
	PY=/usr/bin/python3
	[ -x "$PY" ] || PY=python3
	SIGN="$PY $top/tests/tools/sign_hook.py"
	SOCK=${DOCKER_HOST#unix://}
	case $DOCKER_HOST in unix://*) ;; *) fail "this test needs the engine on a unix socket" ;; esac
	export GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
	mkdir -p "$HOME"
	git config --global user.name Test
	git config --global user.email test@example.com
	build_network
	export BUILD_NETWORK BASE_IMAGE REGISTRY DOCKER_HOST
}

# example_project NAME: $T/proj holds the example app (contrib/example-app)
# and pipelines/fastapi.yml as stagepipe.yml, renamed NAME (its image too);
# not committed yet
example_project() {
	mkdir -p "$T/proj/contrib" "$T/proj/ci"
	cp -r "$top/contrib/example-app" "$T/proj/contrib/example-app"
	sed -e "s/^name: fastapi-app/name: $1/" \
		-e "s#/fastapi-app:#/$1:#" "$top/pipelines/fastapi.yml" >"$T/proj/stagepipe.yml"
	grep -q "^name: $1" "$T/proj/stagepipe.yml" || fail "could not adapt pipelines/fastapi.yml"
}

# ---- a server's jobs, as the serve and agent tests look at them ----------
# JOBS_API: the server asked (default $BASE); JOBS_LOGS: the logs under $T
# (names without .log, default serve) whose ends are shown when a check
# fails.
detail() { curl -s "${JOBS_API:-$BASE}/api/jobs/$1" >"$T/job.json"; }
jd() { jq -r "$1" "$T/job.json"; }
logs_tail() {
	for _lt_f in ${JOBS_LOGS:-serve}; do
		echo "--- $_lt_f.log (last 25)"
		tail -n 25 "$T/$_lt_f.log" 2>/dev/null
	done
}
# wait_final ID SECONDS: until job ID is final; its detail in $T/job.json
wait_final() {
	_wf_n=$2
	while [ "$_wf_n" -gt 0 ]; do
		detail "$1"
		case $(jd .state 2>/dev/null) in
		passed | failed | error | cancelled | skipped) return ;;
		esac
		sleep 1
		_wf_n=$((_wf_n - 1))
	done
	jq . "$T/job.json"
	logs_tail
	fail "job $1 not final after $2 s"
}
# expect_state ID STATE: the detail read last says job ID ended STATE
expect_state() {
	[ "$(jd .state)" = "$2" ] || {
		jq . "$T/job.json"
		logs_tail
		fail "job $1 ended $(jd .state), wanted $2 (reason: $(jd .reason))"
	}
}

# pytest_running AGENT JOB: the ids of the running containers of server
# job JOB on AGENT that run pytest (its test stage's container: its command
# is the interpreter's boot, which runs pytest; not a build's), on the
# engine at $DOCKER_HOST
pytest_running() {
	curl -s --unix-socket "${DOCKER_HOST#unix://}" -G "http://localhost/containers/json" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.job=srv-$2\",\"io.stagepipe.agent=$1\"],\"status\":[\"running\"]}" |
		jq -r '.[] | select(.Command | test("pytest")) | .Id'
}

# acked_stored DBFILE REPO LOADFILE...: every delivery the
# tests/tools/hook_load.py result files record as answered 2xx is in the
# store of DBFILE (lib_pg.sh's store_sql) for REPO, with the job it was
# answered with and a job of the commit sent; no delivery is without its
# job.  Sets $acked (how many ids were answered 2xx) and $stored (how many
# of REPO's deliveries the store holds).
acked_stored() {
	_as_db=$1 _as_repo=$2
	shift 2
	store_sql "$_as_db" "SELECT d.id || ' ' || d.job_id || ' ' || j.sha FROM deliveries d
		JOIN jobs j ON j.id = d.job_id WHERE d.repo = '$_as_repo'" | LC_ALL=C sort >"$T/.stored" ||
		fail "could not read the deliveries"
	cat "$@" | awk '$2 ~ /^2/ { print $1 " " $3 " " $4 }' | LC_ALL=C sort -u >"$T/.acked"
	acked=$(cut -d' ' -f1 "$T/.acked" | sort -u | wc -l)
	stored=$(wc -l <"$T/.stored")
	LC_ALL=C join -v 1 "$T/.acked" "$T/.stored" >"$T/.missing"
	[ ! -s "$T/.missing" ] ||
		{ head "$T/.missing"; fail "$(wc -l <"$T/.missing") deliveries answered 2xx are not stored"; }
	LC_ALL=C join "$T/.acked" "$T/.stored" | awk '$2 != $4 || $3 != $5' >"$T/.wrong"
	[ ! -s "$T/.wrong" ] ||
		{ head "$T/.wrong"; fail "$(wc -l <"$T/.wrong") deliveries stored with another job"; }
	[ "$(store_sql "$_as_db" "SELECT count(*) FROM deliveries WHERE job_id IS NULL AND repo = '$_as_repo'")" = 0 ] ||
		fail "a delivery without its job"
}

# acked_resent URL FORGE SECRET LOADFILE...: the ids the hook_load result
# files record as answered 2xx, sent again to URL (as a forge redelivers
# after an outage): each one a duplicate (200) with the same job
acked_resent() {
	_ar_url=$1 _ar_forge=$2 _ar_secret=$3
	shift 3
	cat "$@" | awk '$2 ~ /^2/ { print $1 " " $3 }' | LC_ALL=C sort -u >"$T/.ackjobs"
	cut -d' ' -f1 "$T/.ackjobs" >"$T/.ackids"
	"${PY:-python3}" "$top/tests/tools/hook_load.py" --url "$_ar_url" --forge "$_ar_forge" \
		--secret "$_ar_secret" --out "$T/.resent" --threads 4 --resend "$T/.ackids" 2>"$T/.resent.err" ||
		fail "resend failed: $(cat "$T/.resent.err")"
	[ "$(wc -l <"$T/.resent")" = "$(wc -l <"$T/.ackids")" ] || fail "resend incomplete"
	awk '$2 != "200"' "$T/.resent" >"$T/.resent.bad"
	[ ! -s "$T/.resent.bad" ] || { head "$T/.resent.bad"; fail "a delivery answered 2xx before was taken again"; }
	awk '{ print $1 " " $3 }' "$T/.resent" | LC_ALL=C sort -u | LC_ALL=C join "$T/.ackjobs" - |
		awk '$2 != $3' >"$T/.resent.bad"
	[ ! -s "$T/.resent.bad" ] || { head "$T/.resent.bad"; fail "a redelivery named another job"; }
}

# the store of the servers a test starts (STORE=postgres: PostgreSQL)
. "$(dirname "$0")/lib_pg.sh"
