# stagepipe serve with the real engine, registry and base image: signed
# GitHub pushes for a local bare repository run the example pipeline as
# jobs (workers 1).  A passing push (with the registry push and its promote
# permit), a commit that breaks a test, statuses in order at a local
# recording forge, the stage log (whole, Range, SSE with resume), cancel of
# a running job through the API (its containers removed), retry through the
# API, `kill -9` of the server right after a 202 (the job runs after the
# restart), and no container left at the end.
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
[ "$STORE" = postgres ] || command -v sqlite3 >/dev/null 2>&1 ||
	fail "sqlite3 not found (contrib/deps.sh --engine)"
engine_test_env
export XDG_CACHE_HOME="$T/cache"
mkdir -p "$T/data"

# pipeline names unique to this run: the engine is shared, and container
# labels (io.stagepipe.job=srv-N, N from 1 in every data folder) are not
TAG=$(rnd 4)
P_APP=sptest-app-$TAG
P_FAST=sptest-fast-$TAG

# ---- the repository: the example app, its pipeline, a fast pipeline --------
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
    pytest: [-v, --cov=app]
    coverage: { min: 80 }
    timeout: 10m
on:
  push: true
EOF
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "example app"
git clone -q --bare "$T/proj" "$T/app.git"
A=$(git -C "$T/app.git" rev-parse main)
# broken: a test that fails
git -C "$T/proj" checkout -q -b broken
cat >"$T/proj/contrib/example-app/tests/test_broken.py" <<'EOF'
def test_broken_on_purpose():
    assert 1 + 1 == 3
EOF
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "break a test"
B=$(git -C "$T/proj" rev-parse HEAD)
# slow: a test that sleeps (for cancel)
git -C "$T/proj" checkout -q main
git -C "$T/proj" checkout -q -b slow
cat >"$T/proj/contrib/example-app/tests/test_slow.py" <<'EOF'
import time


def test_slow():
    time.sleep(600)
EOF
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "a slow test"
C=$(git -C "$T/proj" rev-parse HEAD)
git -C "$T/proj" push -q "$T/app.git" broken slow

# ---- the recording forge, the config, the server ---------------------------
SECRET=sec-$(rnd 12)
ADMIN=adm-$(rnd 12)
STATUS_TOKEN=st-$(rnd 12)
export SP_APP_SECRET="$SECRET" SP_TEST_ADMIN="$ADMIN"
printf '%s\n' "$STATUS_TOKEN" >"$T/status.token"
chmod 600 "$T/status.token"

recorder_up "$STATUS_TOKEN"

srv_pid=
containers() { # containers [all]: ids of this run's containers (both pipelines)
	for p in "$P_APP" "$P_FAST"; do
		curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
			--data-urlencode "all=${1:-0}" \
			--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$p\"]}" |
			jq -r '.[].Id'
	done
}
job_containers() { # job_containers ID [all]: this run's containers of job ID
	for p in "$P_APP" "$P_FAST"; do
		curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
			--data-urlencode "all=${2:-0}" \
			--data-urlencode "filters={\"label\":[\"io.stagepipe.job=srv-$1\",\"io.stagepipe.pipeline=$p\"]}" |
			jq -r '.[].Id'
	done
}
test_cleanup() {
	if [ -n "$srv_pid" ]; then
		kill -TERM "$srv_pid" 2>/dev/null
		i=0
		while kill -0 "$srv_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$srv_pid" 2>/dev/null
	fi
	kill "$rec_pid" 2>/dev/null
	# never leave containers on the shared engine, whatever happened
	for c in $(containers 1); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	wait 2>/dev/null
	true
}

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
public_url: $BASE
workers: 1
admin_token_env: SP_TEST_ADMIN
lease_ttl: 5s
drain_timeout: 30s
job_timeout: 15m
env:
  DOCKER_HOST: "$DOCKER_HOST"
  BASE_IMAGE: "$BASE_IMAGE"
  REGISTRY: "$REGISTRY"
  BUILD_NETWORK: "$BUILD_NETWORK"
repos:
  - name: app
    url: file://$T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    status:
      api: http://127.0.0.1:$REC
      project: team/app
      token_file: $T/status.token
  - name: fast
    url: $T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    pipeline: ci/fast.yml
    status:
      api: http://127.0.0.1:$REC
      project: team/fast
      token_file: $T/status.token
      context: ci
EOF

start_serve() { serve_up "$T/serve.yml" "$BASE"; }

# push REPO BRANCH SHA [DELIVERY]: a signed GitHub push; sets $job
push() {
	$SIGN --url "$BASE/hooks/$1" --forge github --secret "$SECRET" --ref "$2" --sha "$3" \
		--delivery "${4:-d-$1-$2-$3}" >"$T/hook" 2>&1
	code=$(head -n 1 "$T/hook")
	[ "$code" = 202 ] || fail "push $1 $2: HTTP $(cat "$T/hook")"
	job=$(tail -n +2 "$T/hook" | jq -r .job)
}
# lib.sh: detail, jd, wait_final, expect_state (of $BASE)
stage() { jq -c --arg s "$1" '.stages[] | select(.name == $s)' "$T/job.json"; }
admin() { # admin PATH: POST with the admin token; sets $code, $T/api
	code=$(curl -s -o "$T/api" -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" "$BASE$1")
}
statuses() { # statuses PROJECT SHA: "context state" lines in arrival order (201s only)
	jq -r --arg p "/repos/$1/statuses/$2" \
		'select(.path == $p and .answered == 201) | .body.context + " " + .body.state' "$T/rec.jsonl"
}
wait_status() { # wait_status PROJECT SHA "CONTEXT STATE" SECONDS (STATE: a regex)
	_n=$(($4 * 10))
	while [ $_n -gt 0 ]; do
		statuses "$1" "$2" | grep -Eqx "$3" && return
		sleep 0.1
		_n=$((_n - 1))
	done
	cat "$T/rec.jsonl"
	fail "status \"$3\" for $2 never reached the forge"
}

start_serve

# ---- 1. a push to main passes (test + promote with push) ------------------
push app main "$A"
j1=$job
wait_final "$j1" 600
expect_state "$j1" passed
[ "$(stage test | jq -r .state)" = passed ] || fail "stage test: $(stage test)"
[ "$(stage test | jq -r .report.tests.passed)" = 17 ] || fail "17 tests wanted: $(stage test)"
[ "$(stage test | jq -r .report.tests.failed)" = 0 ] || fail "failed tests: $(stage test)"
stage test | jq -e '.report.coverage >= 80' >/dev/null || fail "no coverage: $(stage test)"
[ "$(stage promote | jq -r .state)" = passed ] || fail "stage promote: $(stage promote)"
stage promote | jq -e '.report.pushed | length > 0' >/dev/null || fail "nothing pushed: $(stage promote)"
[ "$(jd .promoted)" = true ] || fail "job $j1 not marked promoted"
[ "$(jd .sha)/$(jd .ref)/$(jd .event)" = "$A/refs/heads/main/push" ] || fail "job $j1: $(cat "$T/job.json")"
short=$(printf %.7s "$A")
curl -fsS "http://$REGISTRY/v2/$P_APP/tags/list" | grep -q "\"$short\"" ||
	fail "no image $P_APP:$short in the registry"

# statuses, in order: "stagepipe" pending ... success; each stage success
# before the final one; the link to the job, the token
wait_status team/app "$A" "stagepipe success" 30
statuses team/app "$A" >"$T/st1"
[ "$(head -n 1 "$T/st1")" = "stagepipe pending" ] || { cat "$T/st1"; fail "first status is not pending"; }
[ "$(grep '^stagepipe ' "$T/st1" | tail -n 1)" = "stagepipe success" ] || { cat "$T/st1"; fail "last is not success"; }
grep '^stagepipe ' "$T/st1" | sed '$d' | grep -vx 'stagepipe pending' && { cat "$T/st1"; fail "a non-pending status before the end"; }
for s in test promote; do
	grep -q "^stagepipe/$s success\$" "$T/st1" || { cat "$T/st1"; fail "no success for stagepipe/$s"; }
done
last_stage=$(grep -n '^stagepipe/' "$T/st1" | tail -n 1 | cut -d: -f1)
final=$(grep -n '^stagepipe success$' "$T/st1" | cut -d: -f1)
[ "$final" -gt "$last_stage" ] || { cat "$T/st1"; fail "the final status came before a stage's"; }
jq -e -s --arg p "/repos/team/app/statuses/$A" --arg u "$BASE/jobs/$j1" --arg t "Bearer $STATUS_TOKEN" \
	'[.[] | select(.path == $p)] | all(.body.target_url == $u and .headers.authorization == $t)' \
	"$T/rec.jsonl" >/dev/null || { cat "$T/rec.jsonl"; fail "a status without the job link or token"; }

# the stage log: whole, a range, SSE, SSE resumed
code=$(curl -s -o "$T/log" -D "$T/log.h" -w '%{http_code}' "$BASE/api/jobs/$j1/log?stage=test")
[ "$code" = 200 ] || fail "log: HTTP $code"
grep -qi '^content-type: text/plain; charset=utf-8' "$T/log.h" || fail "log content type: $(cat "$T/log.h")"
grep -q "17 passed" "$T/log" || { cat "$T/log"; fail "the test log lacks \"17 passed\""; }
size=$(wc -c <"$T/log")
half=$((size / 2))
code=$(curl -s -o "$T/log.tail" -w '%{http_code}' -H "Range: bytes=$half-" "$BASE/api/jobs/$j1/log?stage=test")
[ "$code" = 206 ] || fail "log Range: HTTP $code"
tail -c +$((half + 1)) "$T/log" | cmp -s - "$T/log.tail" || fail "log Range: not the tail from byte $half"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/jobs/$j1/log?stage=nope")
[ "$code" = 404 ] || fail "log of an unknown stage: HTTP $code"
curl -s -N --max-time 20 -H 'Accept: text/event-stream' "$BASE/api/jobs/$j1/log?stage=test" >"$T/sse"
grep -q '^event: end$' "$T/sse" && grep -qx 'data: passed' "$T/sse" || { tail "$T/sse"; fail "SSE: no end event"; }
sed -n 's/^data: //p' "$T/sse" | sed '$d' | cmp -s - "$T/log" || fail "SSE data lines are not the log"
[ "$(grep '^id: ' "$T/sse" | tail -n 1)" = "id: $size" ] || fail "SSE: the last id is not the size $size"
# resume after the 5th line: the 6th line comes first
off=$(grep '^id: ' "$T/sse" | sed -n 5p | cut -c5-)
line6=$(sed -n 6p "$T/log")
curl -s -N --max-time 20 -H 'Accept: text/event-stream' -H "Last-Event-ID: $off" \
	"$BASE/api/jobs/$j1/log?stage=test" >"$T/sse2"
[ "$(sed -n 's/^data: //p' "$T/sse2" | head -n 1)" = "$line6" ] ||
	{ head "$T/sse2"; fail "SSE resumed at $off does not start at line 6: $line6"; }
curl -s -N --max-time 20 -H 'Accept: text/event-stream' "$BASE/api/jobs/$j1/log?stage=test&from=$off" >"$T/sse3"
cmp -s "$T/sse2" "$T/sse3" || fail "SSE ?from= differs from Last-Event-ID"

# ---- 2. a commit that breaks a test fails ---------------------------------
push fast broken "$B"
j2=$job
wait_final "$j2" 600
expect_state "$j2" failed
[ "$(stage test | jq -r .state)" = failed ] || fail "stage test: $(stage test)"
[ "$(stage test | jq -r .report.tests.failed)" = 1 ] || fail "1 failed test wanted: $(stage test)"
stage test | jq -e '[.report.failures[].id] | any(test("test_broken_on_purpose"))' >/dev/null ||
	fail "the failing test is not in the job detail: $(stage test)"
wait_status team/fast "$B" "ci failure" 30
statuses team/fast "$B" | grep -qx "ci/test failure" || fail "no ci/test failure status"

# ---- 3. cancel a running job through the API --------------------------------
push fast slow "$C"
j3=$job
curl -s -N --max-time 900 -H 'Accept: text/event-stream' "$BASE/api/jobs/$j3/log?stage=test" \
	>"$T/sse.live" 2>/dev/null &
sse_pid=$!
n=600
while [ $n -gt 0 ]; do # until its pytest container runs
	[ -n "$(job_containers "$j3")" ] && [ "$(curl -s "$BASE/api/jobs/$j3" | jq -r .state)" = running ] && break
	sleep 0.5
	n=$((n - 1))
done
[ $n -gt 0 ] || { detail "$j3"; jq . "$T/job.json"; fail "job $j3 never ran its test container"; }
sleep 2
code=$(curl -s -o "$T/api" -w '%{http_code}' -X POST "$BASE/api/jobs/$j3/cancel")
[ "$code" = 401 ] || fail "cancel without a token: HTTP $code"
admin "/api/jobs/$j3/cancel"
[ "$code" = 202 ] || fail "cancel: HTTP $code $(cat "$T/api")"
wait_final "$j3" 90
expect_state "$j3" cancelled
# a clean stop: the child got one SIGTERM, stopped its container, reported
# the stage and exited 130 (a second signal makes `run` quit at once,
# leaving its containers)
[ "$(jd .exit_code)/$(stage test | jq -r .state)" = 130/cancelled ] ||
	fail "job $j3 was not stopped cleanly: exit_code $(jd .exit_code), stage $(stage test)"
[ -z "$(job_containers "$j3" 1)" ] || fail "containers of the cancelled job $j3 are left: $(job_containers "$j3" 1)"
admin "/api/jobs/$j3/cancel"
[ "$code" = 409 ] || fail "cancel of a finished job: HTTP $code"
# the live log stream followed the job and ended with its state
n=100
while kill -0 "$sse_pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
kill "$sse_pid" 2>/dev/null
grep -qx 'data: cancelled' "$T/sse.live" || { tail "$T/sse.live"; fail "the live SSE stream did not end with cancelled"; }
grep -q '^data: ' "$T/sse.live" || fail "the live SSE stream carried no line"
# GitHub has no "cancelled": error (or failure) is what the forge gets
wait_status team/fast "$C" "ci (error|failure)" 30

# ---- 4. kill -9 of the server right after a 202 -----------------------------
push fast main "$A" d-kill
j4=$job
kill -9 "$srv_pid"
wait "$srv_pid" 2>/dev/null
srv_pid=
[ "$(store_sql "$T/data/stagepipe.db" "SELECT count(*) FROM jobs WHERE id = $j4")" = 1 ] ||
	fail "job $j4 was answered 202 but is not in the database"
start_serve
wait_final "$j4" 600
expect_state "$j4" passed
[ "$(stage test | jq -r .report.tests.passed)" = 17 ] || fail "job $j4: $(stage test)"

# ---- 5. retry through the API: a new job that passes ------------------------
admin "/api/jobs/$j4/retry"
[ "$code" = 201 ] || fail "retry: HTTP $code $(cat "$T/api")"
j5=$(jq -r .job "$T/api")
[ "$(jq -r .retry_of "$T/api")" = "$j4" ] || fail "retry: $(cat "$T/api")"
wait_final "$j5" 600
expect_state "$j5" passed
[ "$(jd .retry_of)/$(jd .sha)" = "$j4/$A" ] || fail "retried job: $(cat "$T/job.json")"

# ---- the end: SIGTERM exits 0, no container left ----------------------------
curl -s "$BASE/metrics" >"$T/metrics"
grep -q '^stagepipe_jobs' "$T/metrics" || { cat "$T/metrics"; fail "no job metrics"; }
kill -TERM "$srv_pid"
rc=0
wait "$srv_pid" || rc=$?
srv_pid=
[ "$rc" = 0 ] || { tail -20 "$T/serve.log"; fail "serve exited $rc after SIGTERM"; }
for j in "$j1" "$j2" "$j3" "$j4" "$j5"; do
	[ -z "$(job_containers "$j" 1)" ] || fail "containers of job $j are left"
done
[ -z "$(containers 1)" ] || fail "containers of this test are left: $(containers 1)"
# a sanitizer build (make asan) reports here
if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" >/dev/null 2>&1; then
	grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" | head -60
	fail "sanitizer reports in serve's log"
fi
exit 0
