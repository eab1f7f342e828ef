# Two `stagepipe serve` on one PostgreSQL store, two agents each given both
# servers (in different orders: a1 --server S1 --server S2, a2 the other
# way), the real engine, registry and base image (issue 15):
#   1. a delivery sent to both servers makes one job; a job on each server
#      (one of them promotes), both running their test stage when server 1
#      is killed (-9) under webhook load on both servers (hook_load.py, for
#      a repository whose jobs no agent takes: they stay queued); more
#      deliveries go to server 2 meanwhile: every delivery answered 2xx,
#      by either server, is stored with its job and, sent again to server
#      2, is a duplicate of that job; every job passes, the running ones in
#      their first attempt (their renewals, events and finish went to
#      server 2: agent.server_switched), the promote granted once
#   2. server 1 back; a promoting job whose agent is killed in its test
#      stage is taken over after the TTL by the other agent and promoted
#      once across both servers (one granted permit in both logs, one set of
#      manifest PUTs)
# stores: postgres
STORE=postgres
. "$(dirname "$0")/lib.sh"
command -v psql >/dev/null 2>&1 || fail "psql not found (contrib/deps.sh)"
engine_test_env
LOAD="$PY $top/tests/tools/hook_load.py"

TAG=$(rnd 2)
P_APP=sptest-pgapp-$TAG
P_FAST=sptest-pgfast-$TAG

# ---- the repository: the example app; a fast pipeline (test only);
# tests that sleep -----------------------------------------------------------
example_project "$P_APP"
cat >"$T/proj/ci/fast.yml" <<EOF
version: 1
name: $P_FAST
build:
  context: contrib/example-app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: \${env.BUILD_NETWORK:-default}
stages:
  - name: test
    target: testing
    pytest: [-v]
    timeout: 10m
EOF
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "example app"
git clone -q --bare "$T/proj" "$T/app.git"
A=$(git -C "$T/app.git" rev-parse main)
git -C "$T/proj" checkout -q -b sleep20
cat >"$T/proj/contrib/example-app/tests/test_sleep.py" <<EOF
import time


def test_sleep():
    time.sleep(20)
EOF
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "a test that sleeps 20 s"
git -C "$T/proj" push -q "$T/app.git" sleep20
S20=$(git -C "$T/proj" rev-parse HEAD)
# the full pipeline (test + promote) builds on main only: its sleeping
# variant is the main of a second repository
git clone -q --bare "$T/proj" "$T/app2.git"
git -C "$T/app2.git" update-ref refs/heads/main "$S20"

# ---- two servers, one store --------------------------------------------------
P1=$(free_port)
P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
B1=http://127.0.0.1:$P1
B2=http://127.0.0.1:$P2
SECRET=sec-$(rnd 12)
TOK1=tok1-$(rnd 16)
TOK2=tok2-$(rnd 16)
export SP_APP_SECRET="$SECRET" SP_A1_TOKEN="$TOK1" SP_A2_TOKEN="$TOK2"
printf '%s\n' "$TOK1" >"$T/a1.token"
printf '%s\n' "$TOK2" >"$T/a2.token"
chmod 600 "$T/a1.token" "$T/a2.token"
DB=$T/shared/stagepipe.db   # names the shared database for store_sql
config() { # config FILE PORT DATA: its store is the shared database
	serve_config "$1" "127.0.0.1:$2" "$3" "$T/shared" <<EOF
public_url: http://127.0.0.1:$2
workers: 0
lease_ttl: 6s
drain_timeout: 30s
job_timeout: 15m
agents:
  - name: a1
    token_env: SP_A1_TOKEN
  - name: a2
    token_env: SP_A2_TOKEN
repos:
  - name: fast
    url: $T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    pipeline: ci/fast.yml
    cancel_superseded: false
  - name: app2
    url: file://$T/app2.git
    forge: github
    secret_env: SP_APP_SECRET
    cancel_superseded: false
  - name: load
    url: file://$T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    labels: [parked]
    cancel_superseded: false
EOF
}
config "$T/s1.yml" "$P1" "$T/d1"
config "$T/s2.yml" "$P2" "$T/d2"
grep -q '^store: "postgres' "$T/s1.yml" || fail "no PostgreSQL store in the config"

s1_pid= s2_pid= a1_pid= a2_pid= load1= load2=
containers() { # containers [all]: ids of this run's containers
	for p in "$P_APP" "$P_FAST"; do
		curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
			--data-urlencode "all=${1:-0}" \
			--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$p\"]}" |
			jq -r '.[].Id'
	done
}
agent_containers() { # agent_containers NAME JOB
	for p in "$P_APP" "$P_FAST"; do
		curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
			--data-urlencode "all=1" \
			--data-urlencode "filters={\"label\":[\"io.stagepipe.job=srv-$2\",\"io.stagepipe.agent=$1\",\"io.stagepipe.pipeline=$p\"]}" |
			jq -r '.[].Id'
	done
}
test_cleanup() {
	stop_pid "$load1"
	stop_pid "$load2"
	stop_pid "$a1_pid"
	stop_pid "$a2_pid"
	stop_pid "$s1_pid"
	stop_pid "$s2_pid"
	for c in $(containers 1); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	wait 2>/dev/null
	true
}
start_serve() { # start_serve 1|2
	serve_start "$T/s$1.yml" "$T/s$1.log"
	eval "s${1}_pid=\$srv_pid"
	_b=$B1
	[ "$1" = 2 ] && _b=$B2
	serve_ready "$_b" "$srv_pid" "$T/s$1.log"
}
start_agent() { # start_agent NAME SERVER SERVER
	mkdir -p "$T/$1/home"
	env HOME="$T/$1/home" XDG_CACHE_HOME="$T/$1/cache" \
		"$BIN" agent --server "$2" --server "$3" --token-file "$T/$1.token" --name "$1" \
		--labels "linux,$1" >>"$T/$1.out" 2>>"$T/$1.log" &
	eval "${1}_pid=\$!"
}
push() { # push BASE REPO BRANCH SHA DELIVERY [CODE]: a signed GitHub push; sets $job
	$SIGN --url "$1/hooks/$2" --forge github --secret "$SECRET" --ref "$3" --sha "$4" \
		--delivery "$5" >"$T/hook" 2>&1
	code=$(head -n 1 "$T/hook")
	[ "$code" = "${6:-202}" ] || fail "push $2 $3 to $1: HTTP $(cat "$T/hook")"
	job=$(tail -n +2 "$T/hook" | jq -r .job)
	echo "$5 $job" >>"$T/acked"
}
API=$B2   # server 2 lives throughout
JOBS_API=$API JOBS_LOGS="s1 s2 a1 a2"  # lib.sh: detail, jd, wait_final, expect_state
wait_running_on() { # wait_running_on ID SECONDS: sets $on
	_n=$(($2 * 2))
	while [ $_n -gt 0 ]; do
		detail "$1"
		on=$(jd .agent)
		if [ "$(jd .state)" = running ] && [ -n "$on" ] && [ "$on" != null ] &&
			[ -n "$(pytest_running "$on" "$1")" ] &&
			[ "$(jq -r '.stages[] | select(.name == "test") | .state' "$T/job.json")" = running ]; then
			return
		fi
		sleep 0.5
		_n=$((_n - 1))
	done
	jq . "$T/job.json"
	logs_tail
	fail "job $1 never ran its test container"
}
other() { [ "$1" = a1 ] && echo a2 || echo a1; }
pid_of() { eval "echo \$${1}_pid"; }
child_of() { pgrep -P "$1" | head -n 1; }
granted() { cat "$T/s1.log" "$T/s2.log" | grep -c "job=$1 .*granted=true"; }

start_serve 1
start_serve 2
start_agent a1 "$B1" "$B2"
start_agent a2 "$B2" "$B1"

# ---- 1. kill -9 of server 1 while both agents run jobs ------------------------
push "$B1" fast sleep20 "$S20" d-1
j1=$job
push "$B2" fast sleep20 "$S20" d-1 200
[ "$job" = "$j1" ] || fail "server 2 answered job $job for the delivery of job $j1"
push "$B2" app2 main "$S20" d-2
j2=$job
wait_running_on "$j1" 600
wait_running_on "$j2" 600
# webhook load on both (2 connections each), server 1 killed in the midst
$LOAD --url "$B1/hooks/load" --forge github --secret "$SECRET" --out "$T/l1" --threads 2 \
	--seconds 120 --dup 10 2>"$T/l1.err" &
load1=$!
$LOAD --url "$B2/hooks/load" --forge github --secret "$SECRET" --out "$T/l2" --threads 2 \
	--seconds 120 --dup 10 2>"$T/l2.err" &
load2=$!
answers() { cat "$@" 2>/dev/null | wc -l; }
_n=0
until [ "$(answers "$T/l1")" -ge 100 ] && [ "$(answers "$T/l2")" -ge 100 ]; do
	_n=$((_n + 1))
	[ $_n -lt 300 ] || fail "the load made $(answers "$T/l1") + $(answers "$T/l2") answers in 30 s"
	sleep 0.1
done
kill -9 "$s1_pid"
wait "$s1_pid" 2>/dev/null
s1_pid=
sleep 0.3
kill -TERM "$load1"
wait "$load1" || fail "hook_load 1 failed: $(cat "$T/l1.err")"
load1=
push "$B2" fast main "$A" d-3
j3=$job
push "$B2" fast sleep20 "$S20" d-4
j4=$job
# server 2 goes on taking the load's deliveries
n2=$(answers "$T/l2")
_n=0
until [ "$(answers "$T/l2")" -ge $((n2 + 100)) ]; do
	_n=$((_n + 1))
	[ $_n -lt 300 ] || fail "server 2 stopped answering the load when server 1 was killed"
	sleep 0.1
done
kill -TERM "$load2"
wait "$load2" || fail "hook_load 2 failed: $(cat "$T/l2.err")"
load2=
awk '$2 !~ /^(2..|000)$/ { print "unexpected answer: " $0; bad = 1 } END { exit bad }' \
	"$T/l1" "$T/l2" || fail "answers other than 2xx under load"
for j in "$j1" "$j2" "$j3" "$j4"; do
	wait_final "$j" 600
	expect_state "$j" passed
done
for j in "$j1" "$j2"; do
	detail "$j"
	[ "$(jd .attempt)" = 1 ] || { logs_tail; fail "job $j was run again ($(jd .attempt) attempts) after server 1 died"; }
done
detail "$j2"
[ "$(jd .promoted)" = true ] || fail "job $j2 not promoted"
[ "$(granted "$j2")" = 1 ] || fail "job $j2: $(granted "$j2") granted permits"
grep -q "event=agent.server_switched from=$B1 to=$B2" "$T/a1.log" ||
	{ logs_tail; fail "a1 did not switch to server 2"; }
# every delivery answered 2xx has its job, in the store
while read -r d j; do
	[ "$(store_sql "$DB" "SELECT job_id FROM deliveries WHERE id = '$d'")" = "$j" ] ||
		fail "delivery $d (job $j) is not stored with its job"
done <"$T/acked"
# and so has every delivery of the load answered 2xx, by either server;
# what server 1 answered, sent again to server 2, is a duplicate
acked_stored "$DB" load "$T/l1" "$T/l2"
acked_resent "$B2/hooks/load" github "$SECRET" "$T/l1"
echo "server 1 killed: jobs $j1 $j2 $j3 $j4 passed through server 2;" \
	"$acked load deliveries answered 2xx ($(awk '$2 ~ /^2/' "$T/l1" | wc -l) by server 1), none lost"

# ---- 2. a promoting job taken over after its agent died, across servers ------
start_serve 1
push "$B1" app2 main "$S20" d-5
j5=$job
wait_running_on "$j5" 600
victim=$on
vpid=$(pid_of "$victim")
vchild=$(child_of "$vpid")
[ -n "$vchild" ] || fail "agent $victim runs no job process"
kill -STOP "$vpid"
kill -9 "$vchild"
kill -9 "$vpid"
wait "$vpid" 2>/dev/null
eval "${victim}_pid="
wait_final "$j5" 600
expect_state "$j5" passed
[ "$(jd .agent)/$(jd .attempt)" = "$(other "$victim")/2" ] ||
	fail "job $j5 ended on $(jd .agent) attempt $(jd .attempt), wanted $(other "$victim") attempt 2"
[ "$(jd .promoted)" = true ] || fail "job $j5 not promoted"
[ "$(granted "$j5")" = 1 ] || { grep -h "job=$j5" "$T/s1.log" "$T/s2.log"; fail "job $j5: $(granted "$j5") granted permits"; }
reglog=${STAGEPIPE_ENGINE_DIR:-/var/tmp/stagepipe-engine}/registry.log
if [ -f "$reglog" ]; then
	# two promotes (jobs $j2 and $j5), two tags each
	puts=$(grep -c "\"PUT /v2/$P_APP/manifests/[^ ]* HTTP/1.1\" 201" "$reglog")
	[ "$puts" = 4 ] || fail "the registry got $puts manifest PUTs for $P_APP, wanted 4 (two promotes)"
fi
# the victim, restarted, removes what its killed run left
if [ "$victim" = a1 ]; then start_agent a1 "$B1" "$B2"; else start_agent a2 "$B2" "$B1"; fi
_n=60
while [ -n "$(agent_containers "$victim" "$j5")" ] && [ $_n -gt 0 ]; do sleep 0.5; _n=$((_n - 1)); done
[ -z "$(agent_containers "$victim" "$j5")" ] || fail "restarted $victim did not remove its leftovers"

# ---- the end ---------------------------------------------------------------------
for p in a1 a2 s1 s2; do
	stop_pid "$(pid_of "$p")"
	eval "${p}_pid="
done
for f in s1 s2 a1 a2; do
	grep -qF -e "$TOK1" -e "$TOK2" "$T/$f.log" && fail "a token is in $f's log"
	if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/$f.log" >/dev/null 2>&1; then
		grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/$f.log" | head -60
		fail "sanitizer reports in $f's log"
	fi
done
[ -z "$(containers 1)" ] || fail "containers of this test are left: $(containers 1)"
exit 0
