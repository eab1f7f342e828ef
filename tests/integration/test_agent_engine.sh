# stagepipe agent with the real engine, registry and base image, on three
# "hosts" made of network namespaces (lib_netns.sh): the server (workers 0)
# on one, agents a1 and a2 on the others, TCP between them over a bridge of
# the test's own; both agents use the one engine socket.
#
#   1. bad and missing tokens: 401, a token for another name 403, an agent
#      with a wrong token exits 2; nothing is leased
#   2. two jobs at once spread over both agents and pass; GET /api/agents
#   3. kill -9 of an agent (and its job process) in its test stage: after
#      the TTL the job is rerun on the other agent and passes, promoted once
#      (one granted permit, one set of manifest PUTs in the registry); the
#      killed agent, restarted, removes the containers it left
#   4. an agent frozen (SIGSTOP) past its TTL, then resumed: its job went to
#      the other agent; its late events are refused (409) and it stops its
#      job and removes its containers
#   5. a server restart (kill -9) while both agents run jobs: nothing lost,
#      the jobs finish and pass
#   6. draining: SIGTERM lets the running job finish, exit 0; meanwhile a
#      job whose runs_on names the stopped agent's label waits for it (the
#      other agent gives it back) and runs once it is back; two signals
#      stop it (containers removed, the job requeued and run elsewhere),
#      exit 130
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
engine_test_env
mkdir -p "$T/data"

TAG=$(rnd 2)
P_APP=sptest-agapp-$TAG
P_FAST=sptest-agfast-$TAG

# ---- the repository: the example app with its pipeline; a fast pipeline
# (test only); branches whose tests sleep -------------------------------
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
# the same, for one agent only (runs_on: its own label)
for a in a1 a2; do
	sed -e "s/^name: $P_FAST/name: $P_FAST-$a/" "$T/proj/ci/fast.yml" >"$T/proj/ci/on-$a.yml"
	printf 'runs_on: [linux, %s]\n' "$a" >>"$T/proj/ci/on-$a.yml"
done
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "example app"
git clone -q --bare "$T/proj" "$T/app.git"
A=$(git -C "$T/app.git" rev-parse main)
# branch sleepN: a test that sleeps N seconds (a job that stays in its
# test stage long enough to be hit)
mk_sleep_branch() {
	git -C "$T/proj" checkout -q main
	git -C "$T/proj" checkout -q -b "sleep$1"
	cat >"$T/proj/contrib/example-app/tests/test_sleep.py" <<EOF
import time


def test_sleep():
    time.sleep($1)
EOF
	git -C "$T/proj" add -A
	git -C "$T/proj" commit -qm "a test that sleeps $1 s"
	git -C "$T/proj" push -q "$T/app.git" "sleep$1"
	git -C "$T/proj" rev-parse HEAD
}
S20=$(mk_sleep_branch 20)
S40=$(mk_sleep_branch 40)
# the full pipeline (test + promote) builds on main only: its sleeping
# variant goes on a main of a second repository
git clone -q --bare "$T/proj" "$T/app2.git"
git -C "$T/app2.git" update-ref refs/heads/main "$S20"

# ---- hosts, tokens, config ------------------------------------------------
netns_up "$TAG" srv a1 a2
SRV_IP=$(netns_ip srv)
PORT=$(free_port)
BASE=http://$SRV_IP:$PORT
SECRET=sec-$(rnd 12)
ADMIN=adm-$(rnd 12)
TOK1=tok1-$(rnd 16)
TOK2=tok2-$(rnd 16)
export SP_APP_SECRET="$SECRET" SP_TEST_ADMIN="$ADMIN" SP_A1_TOKEN="$TOK1"
printf '%s\n' "$TOK1" >"$T/a1.token"
printf '%s\n' "$TOK2" >"$T/a2.token"
chmod 600 "$T/a1.token" "$T/a2.token"
SHA2=$(printf '%s' "$TOK2" | sha256sum | cut -d' ' -f1)
serve_config "$T/serve.yml" "$SRV_IP:$PORT" "$T/data" <<EOF
public_url: $BASE
workers: 0
admin_token_env: SP_TEST_ADMIN
lease_ttl: 6s
drain_timeout: 30s
job_timeout: 15m
agents:
  - name: a1
    token_env: SP_A1_TOKEN
  - name: a2
    token_sha256: $SHA2
repos:
  - name: app
    url: file://$T/app.git
    forge: github
    secret_env: SP_APP_SECRET
  - name: fast
    url: $T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    pipeline: ci/fast.yml
  - name: app2
    url: file://$T/app2.git
    forge: github
    secret_env: SP_APP_SECRET
  - name: on-a1
    url: $T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    pipeline: ci/on-a1.yml
  - name: on-a2
    url: $T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    pipeline: ci/on-a2.yml
EOF

srv_pid= a1_pid= a2_pid=
containers() { # containers [all]: ids of this run's containers
	for p in "$P_APP" "$P_FAST" "$P_FAST-a1" "$P_FAST-a2"; do
		curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
			--data-urlencode "all=${1:-0}" \
			--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$p\"]}" |
			jq -r '.[].Id'
	done
}
# agent_containers NAME JOB: this run's containers (all) of job JOB by agent NAME
agent_containers() {
	for p in "$P_APP" "$P_FAST" "$P_FAST-a1" "$P_FAST-a2"; do
		curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
			--data-urlencode "all=1" \
			--data-urlencode "filters={\"label\":[\"io.stagepipe.job=srv-$2\",\"io.stagepipe.agent=$1\",\"io.stagepipe.pipeline=$p\"]}" |
			jq -r '.[].Id'
	done
}
test_cleanup() {
	stop_pid "$a1_pid"
	stop_pid "$a2_pid"
	stop_pid "$srv_pid"
	netns_down
	for c in $(containers 1); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	wait 2>/dev/null
	true
}

# the server on its own host
serve_wrap="netns_spawn srv"
start_serve() { serve_up "$T/serve.yml" "$BASE"; }
# start_agent NAME: the agent on its own host, with its own home and cache
start_agent() {
	mkdir -p "$T/$1/home"
	netns_spawn "$1" env HOME="$T/$1/home" XDG_CACHE_HOME="$T/$1/cache" \
		"$BIN" agent --server "$BASE" --token-file "$T/$1.token" --name "$1" \
		--labels "linux,$1" >>"$T/$1.out" 2>>"$T/$1.log" &
	eval "${1}_pid=\$!"
}
push() { # push REPO BRANCH SHA [DELIVERY]: a signed GitHub push; sets $job
	$SIGN --url "$BASE/hooks/$1" --forge github --secret "$SECRET" --ref "$2" --sha "$3" \
		--delivery "${4:-d-$1-$2-$3}" >"$T/hook" 2>&1
	code=$(head -n 1 "$T/hook")
	[ "$code" = 202 ] || fail "push $1 $2: HTTP $(cat "$T/hook")"
	job=$(tail -n +2 "$T/hook" | jq -r .job)
}
JOBS_LOGS="serve a1 a2"  # lib.sh: detail, jd, wait_final, expect_state
# wait_running_on ID SECONDS: until job ID runs its test container; sets $on
# (the agent running it)
wait_running_on() {
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
# the agent's job process (its child `stagepipe run`), by parent pid
child_of() { pgrep -P "$1" | head -n 1; }
lease_code() { # lease_code TOKEN NAME: HTTP status of a lease call that does not wait
	curl -s -o "$T/lease" -w '%{http_code}' -X POST -H "Content-Type: application/json" \
		${1:+-H "Authorization: Bearer $1"} \
		-d "{\"agent\":\"$2\",\"labels\":[],\"free\":1}" "$BASE/api/agent/lease?wait=0"
}

start_serve

# ---- 1. tokens ----------------------------------------------------------------
[ "$(lease_code "" a1)" = 401 ] || fail "lease without a token: not 401 ($(cat "$T/lease"))"
[ ! -s "$T/lease" ] || fail "a 401 with a body: $(cat "$T/lease")"
[ "$(lease_code "wrong-$TOK1" a1)" = 401 ] || fail "lease with a wrong token: not 401"
[ "$(lease_code "$TOK2" a1)" = 403 ] || fail "a2's token for a1: not 403 ($(cat "$T/lease"))"
[ "$(lease_code "$TOK1" a1)" = 204 ] || fail "a1's lease with nothing queued: not 204 ($(cat "$T/lease"))"
printf 'not-the-token\n' >"$T/bad.token"
chmod 600 "$T/bad.token"
rc=0
netns_run a1 "$BIN" agent --server "$BASE" --token-file "$T/bad.token" --name a1 \
	>"$T/bad.out" 2>"$T/bad.err" || rc=$?
[ "$rc" = 2 ] || { cat "$T/bad.err"; fail "an agent with a wrong token exited $rc, wanted 2"; }
grep -qi "token" "$T/bad.err" || { cat "$T/bad.err"; fail "the agent did not say its token was refused"; }
grep -qF "not-the-token" "$T/bad.err" "$T/serve.log" && fail "a token was printed"
rc=0
env -u STAGEPIPE_AGENT_TOKEN "$BIN" agent --server "$BASE" --name a1 >"$T/bad.out" 2>"$T/bad.err" || rc=$?
[ "$rc" = 2 ] || { cat "$T/bad.err"; fail "an agent without a token exited $rc, wanted 2"; }

# ---- 2. two jobs at once spread over both agents ------------------------------
start_agent a1
start_agent a2
push fast sleep20 "$S20"
j1=$job
push fast main "$A"
j2=$job
wait_final "$j1" 600
expect_state "$j1" passed
on1=$(jd .agent)
wait_final "$j2" 600
expect_state "$j2" passed
on2=$(jd .agent)
[ "$on1" != "$on2" ] || fail "both jobs ran on $on1 (capacity 1 each)"
case "$on1$on2" in a1a2 | a2a1) ;; *) fail "jobs ran on \"$on1\" and \"$on2\"" ;; esac
curl -s "$BASE/api/agents" >"$T/agents.json"
for a in a1 a2; do
	jq -e --arg a "$a" '.agents[] | select(.name == $a) | .online == true and (.labels | index($a) != null)' \
		"$T/agents.json" >/dev/null || { cat "$T/agents.json"; fail "agent $a not listed online with its labels"; }
done
curl -s "$BASE/metrics" | grep -q '^stagepipe_agents_online 2$' || fail "/metrics: not 2 agents online"

# ---- 3. kill -9 of an agent in its test stage -----------------------------------
push app2 main "$S20"
j3=$job
wait_running_on "$j3" 600
victim=$on
vpid=$(pid_of "$victim")
vchild=$(child_of "$vpid")
[ -n "$vchild" ] || fail "agent $victim runs no job process"
# freeze the agent first, so that it cannot see its child die and report
kill -STOP "$vpid"
kill -9 "$vchild"
kill -9 "$vpid"
wait "$vpid" 2>/dev/null
eval "${victim}_pid="
[ -n "$(agent_containers "$victim" "$j3")" ] || fail "the killed job left no container (nothing to clean up)"
# after the TTL the other agent takes the job
_n=120
while [ $_n -gt 0 ]; do
	detail "$j3"
	[ "$(jd .agent)" = "$(other "$victim")" ] && [ "$(jd .attempt)" = 2 ] && break
	sleep 0.5
	_n=$((_n - 1))
done
[ $_n -gt 0 ] || { jq . "$T/job.json"; logs_tail; fail "job $j3 was not taken back from killed $victim"; }
# the killed agent, restarted, removes what its killed run left (the test
# container still runs its 20 s test)
start_agent "$victim"
_n=60
while [ -n "$(agent_containers "$victim" "$j3")" ] && [ $_n -gt 0 ]; do sleep 0.5; _n=$((_n - 1)); done
[ -z "$(agent_containers "$victim" "$j3")" ] || fail "restarted $victim did not remove its leftovers"
grep -q 'agent.cleanup removed=[1-9]' "$T/$victim.log" || { logs_tail; fail "restarted $victim removed nothing itself"; }
wait_final "$j3" 600
expect_state "$j3" passed
[ "$(jd .agent)" = "$(other "$victim")" ] || fail "job $j3 finished on $(jd .agent), not $(other "$victim")"
[ "$(jd .attempt)" = 2 ] || fail "job $j3: attempt $(jd .attempt), wanted 2"
[ "$(jd .promoted)" = true ] || fail "job $j3 not promoted"
granted=$(grep -c "job=$j3 .*granted=true" "$T/serve.log")
[ "$granted" = 1 ] || { grep "job=$j3" "$T/serve.log"; fail "job $j3: $granted granted permits"; }
reglog=${STAGEPIPE_ENGINE_DIR:-/var/tmp/stagepipe-engine}/registry.log
if [ -f "$reglog" ]; then
	# two tags (sha and latest), one push each
	puts=$(grep -c "\"PUT /v2/$P_APP/manifests/[^ ]* HTTP/1.1\" 201" "$reglog")
	[ "$puts" = 2 ] || fail "the registry got $puts manifest PUTs for $P_APP, wanted 2 (one promote)"
else
	echo "note: no registry log at $reglog; manifest PUTs not counted"
fi

# ---- 4. an agent frozen past its TTL --------------------------------------------
push fast sleep40 "$S40"
j4=$job
wait_running_on "$j4" 600
frozen=$on
fpid=$(pid_of "$frozen")
kill -STOP "$fpid"
# the lease runs out (6 s) and the other agent takes the job
_n=120
while [ $_n -gt 0 ]; do
	detail "$j4"
	[ "$(jd .agent)" = "$(other "$frozen")" ] && [ "$(jd .attempt)" = 2 ] && break
	sleep 0.5
	_n=$((_n - 1))
done
[ $_n -gt 0 ] || { jq . "$T/job.json"; logs_tail; fail "job $j4 was not taken back from frozen $frozen"; }
kill -CONT "$fpid"
_n=120
while ! grep -q "agent.fenced.*job=$j4" "$T/$frozen.log" && [ $_n -gt 0 ]; do sleep 0.5; _n=$((_n - 1)); done
grep -q "agent.fenced.*job=$j4" "$T/$frozen.log" || { logs_tail; fail "resumed $frozen was not fenced"; }
_n=120
while [ -n "$(agent_containers "$frozen" "$j4")" ] && [ $_n -gt 0 ]; do sleep 0.5; _n=$((_n - 1)); done
[ -z "$(agent_containers "$frozen" "$j4")" ] || fail "fenced $frozen left containers of job $j4"
wait_final "$j4" 600
expect_state "$j4" passed
[ "$(jd .agent)" = "$(other "$frozen")" ] || fail "job $j4 ended on $(jd .agent)"
kill -0 "$fpid" 2>/dev/null || fail "the fenced agent $frozen died"

# ---- 5. a server restart while agents run jobs -----------------------------------
push fast sleep20 "$S20" d-restart-1
j5=$job
push fast sleep40 "$S40" d-restart-2
j6=$job
wait_running_on "$j5" 600
wait_running_on "$j6" 600
kill -9 "$srv_pid"
wait "$srv_pid" 2>/dev/null
srv_pid=
sleep 1
start_serve
for j in "$j5" "$j6"; do
	wait_final "$j" 600
	expect_state "$j" passed
	[ "$(jd .attempt)" = 1 ] || fail "job $j was run again ($(jd .attempt) attempts) after the restart"
done
code=$(curl -s -o "$T/log" -w '%{http_code}' "$BASE/api/jobs/$j6/log?stage=test")
[ "$code" = 200 ] && grep -q "1 passed\|passed" "$T/log" || { cat "$T/log"; fail "job $j6's test log is incomplete"; }

# ---- 6. draining ------------------------------------------------------------------
# SIGTERM: the running job finishes, then the agent exits 0
push fast sleep20 "$S20" d-drain-1
j7=$job
wait_running_on "$j7" 600
d=$on
dpid=$(pid_of "$d")
kill -TERM "$dpid"
rc=0
wait "$dpid" || rc=$?
eval "${d}_pid="
[ "$rc" = 0 ] || { tail -20 "$T/$d.log"; fail "$d exited $rc after one SIGTERM"; }
detail "$j7"
expect_state "$j7" passed
[ "$(jd .agent)" = "$d" ] || fail "job $j7 moved from $d"
# runs_on: a job for $d only, while only the other agent runs: it leases
# it, its child exits 4 (runner_mismatch), the job waits queued for $d
push "on-$d" main "$A"
jr=$job
_n=120
while [ $_n -gt 0 ]; do
	detail "$jr"
	[ "$(jd .state)" = queued ] && jd .reason | grep -q "labels linux,$d" && break
	sleep 0.5
	_n=$((_n - 1))
done
[ $_n -gt 0 ] || { jq . "$T/job.json"; logs_tail; fail "job $jr was not given back for labels linux,$d"; }
grep -q "job.relabeled job=$jr " "$T/serve.log" || fail "no job.relabeled line for job $jr"
start_agent "$d"
wait_final "$jr" 600
expect_state "$jr" passed
[ "$(jd .agent)/$(jd .attempt)" = "$d/1" ] || fail "job $jr ran on $(jd .agent) attempt $(jd .attempt), wanted $d attempt 1"
# two signals: the job is stopped (containers removed) and runs elsewhere
push fast sleep40 "$S40" d-drain-2
j8=$job
wait_running_on "$j8" 600
d=$on
dpid=$(pid_of "$d")
kill -TERM "$dpid"
sleep 0.5
kill -TERM "$dpid"
rc=0
wait "$dpid" || rc=$?
eval "${d}_pid="
[ "$rc" = 130 ] || { tail -20 "$T/$d.log"; fail "$d exited $rc after two signals, wanted 130"; }
[ -z "$(agent_containers "$d" "$j8")" ] || fail "the stopped agent $d left containers of job $j8"
wait_final "$j8" 600
expect_state "$j8" passed
[ "$(jd .agent)" = "$(other "$d")" ] || fail "job $j8 ended on $(jd .agent), not $(other "$d")"

# ---- the end -----------------------------------------------------------------------
for a in a1 a2; do
	stop_pid "$(pid_of "$a")"
	eval "${a}_pid="
done
stop_pid "$srv_pid"
srv_pid=
for f in serve a1 a2; do
	grep -qF -e "$TOK1" -e "$TOK2" "$T/$f.log" && fail "a token is in $f's log"
	if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/$f.log" >/dev/null 2>&1; then
		grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/$f.log" | head -60
		fail "sanitizer reports in $f's log"
	fi
done
[ -z "$(containers 1)" ] || fail "containers of this test are left: $(containers 1)"
exit 0
