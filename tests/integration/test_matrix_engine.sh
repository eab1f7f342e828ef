# A matrix stage on the real engine: a generated project whose testing
# target writes its PYTHON_VERSION build argument into the image (the base
# image has one Python, so the argument is what differs).  The stage has
# matrix: {PYTHON_VERSION: ["3.11", "3.12"]} over a build.args default of
# "3.10"; its tests read the value back, compare it with ${matrix.KEY}
# passed in env, and run a number of tests that depends on it (5 for 3.11,
# 6 for 3.12), so each variant has counts of its own.  Checked:
#  1. both variants pass: built with their own value (not build.args'),
#     reported apart in the terminal, --json (group, matrix, counts),
#     --junit (a testcase and the suites per variant) and --coverage (a
#     file per variant); a stage with needs: [test] runs after both;
#  2. 3.12 fails: the run fails (exit 1), 3.11 still passes, the needs
#     stage is skipped naming the failed variant;
#  3. --stage 'test[3.11]' runs that variant only, --stage test both;
#  4. the loader's errors for a bad matrix, as FILE:LINE:COL;
#  5. serve (which reads the --json stream of its job's child): the job's
#     stages are the variants, with their own states, counts and logs;
# and no container is left.
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${DOCKER_HOST:?needs contrib/engine.sh up}"
command -v jq >/dev/null 2>&1 || fail "jq not found"
SOCK=${DOCKER_HOST#unix://}
build_network
export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git config --global user.name Test
git config --global user.email test@example.com

TAG=$(rnd 4)
PIPE=sptest-matrix-$TAG

# ---- the project -----------------------------------------------------------
P=$T/proj
mkdir -p "$P/tests"
cat >"$P/Dockerfile" <<'EOF'
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS testing
RUN [ -e /usr/local/bin/python ] || ln -s "$(command -v python3)" /usr/local/bin/python
ARG PYTHON_VERSION=unset
RUN printf '%s\n' "$PYTHON_VERSION" >/matrix-python-version
WORKDIR /src
COPY tests/ tests/
EOF
cat >"$P/tests/test_matrix.py" <<'EOF'
import os

import pytest

with open("/matrix-python-version") as f:
    V = f.read().strip()
N = {"3.11": 2, "3.12": 3}.get(V, 0)


def test_build_arg_reached_the_image():
    assert V in ("3.11", "3.12"), V


def test_env_has_the_matrix_value():
    assert os.environ["PV"] == V
    assert os.environ["STAGE_NAME"] == "test[%s]" % V


@pytest.mark.parametrize("i", range(N))
def test_per_version(i):
    assert i < N


def test_may_fail():
    assert V != os.environ.get("FAIL_ON", ""), "failing on purpose for " + V
EOF
cat >"$P/stagepipe.yml" <<EOF
version: 1
name: $PIPE
build:
  context: .
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}", PYTHON_VERSION: "3.10" }
  network: \${env.BUILD_NETWORK:-default}
stages:
  - name: test
    target: testing
    matrix:
      PYTHON_VERSION: ["3.11", "3.12"]
    pytest: [-v, -p, no:cacheprovider, --cov=tests]
    env:
      PV: "\${matrix.PYTHON_VERSION}"
      STAGE_NAME: "\${STAGE}"
      FAIL_ON: "\${env.FAIL_ON:-none}"
    timeout: 10m
  - name: after
    target: testing
    needs: [test]
    run: "true"
    timeout: 5m
EOF

containers() { # this run's containers
	curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" --data-urlencode "all=1" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" | jq -r '.[].Id'
}
images() { # the images this test built (labelled with its own pipeline name)
	curl -s --unix-socket "$SOCK" -G "http://localhost/images/json" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" | jq -r '.[].Id'
}
srv_pid=
test_cleanup() {
	if [ -n "$srv_pid" ]; then
		kill -TERM "$srv_pid" 2>/dev/null
		i=0
		while kill -0 "$srv_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$srv_pid" 2>/dev/null
		wait "$srv_pid" 2>/dev/null
	fi
	for c in $(containers); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	for i in $(images); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/images/$i?force=1"
	done
	true
}

# jq over the stage_finished event of a stage in $T/out
fin() { jq -c --arg s "$1" "select(.event == \"stage_finished\" and .stage == \$s) | $2" "$T/out"; }

# ---- 1. both variants pass ---------------------------------------------------
run "$BIN" validate -f "$P/stagepipe.yml"
expect_rc 0
expect_in out "test[3.11]"
expect_in out "matrix PYTHON_VERSION=3.12"
expect_in out "needs test[3.11], test[3.12]"

mkdir -p "$T/cov"
run "$BIN" run -C "$P" --json --junit "$T/j1.xml" --coverage "$T/cov/coverage.xml"
expect_rc 0
[ "$(jq -c 'select(.event == "pipeline_started") | .stages' "$T/out")" = \
	'["test[3.11]","test[3.12]","after"]' ] || fail "stages: $(grep pipeline_started "$T/out")"
[ "$(jq -c 'select(.event == "pipeline_started") | .needs.after' "$T/out")" = \
	'["test[3.11]","test[3.12]"]' ] || fail "needs: $(grep pipeline_started "$T/out")"
[ "$(jq -c 'select(.event == "stage_started" and .stage == "test[3.12]") | [.group, .matrix]' \
	"$T/out")" = '["test",{"PYTHON_VERSION":"3.12"}]' ] || fail "stage_started of test[3.12]"
[ "$(fin 'test[3.11]' '[.result, .tests.total, .tests.passed, .matrix.PYTHON_VERSION]')" = \
	'["passed",5,5,"3.11"]' ] || fail "test[3.11]: $(fin 'test[3.11]' .)"
[ "$(fin 'test[3.12]' '[.result, .tests.total, .tests.passed, .group]')" = \
	'["passed",6,6,"test"]' ] || fail "test[3.12]: $(fin 'test[3.12]' .)"
[ "$(fin after .result)" = '"passed"' ] || fail "after: $(fin after .)"
# each variant's log is its own
jq -r 'select(.event == "log" and .stage == "test[3.11]") | .line' "$T/out" >"$T/log311"
grep -q "test_per_version\[1\] PASSED" "$T/log311" || fail "no pytest output in test[3.11]'s log"
if grep -q "test_per_version\[2\]" "$T/log311"; then fail "test[3.12]'s tests in test[3.11]'s log"; fi
# two builds with their own argument: two images, neither of the default
i311=$(fin 'test[3.11]' .image)
i312=$(fin 'test[3.12]' .image)
[ -n "$i311" ] && [ "$i311" != "$i312" ] || fail "the variants share an image: $i311 $i312"
# JUnit: a testcase per variant and each variant's suite under its name
grep -q 'testcase classname="stagepipe.'"$PIPE"'" name="test\[3.11\]"' "$T/j1.xml" ||
	fail "junit: no test[3.11] testcase: $(head -c 2000 "$T/j1.xml")"
grep -q 'name="test\[3.12\]"' "$T/j1.xml" || fail "junit: no test[3.12]"
[ "$(grep -o 'name="test_per_version' "$T/j1.xml" | wc -l)" = 5 ] ||
	fail "junit: wanted 2 + 3 per-version testcases, got $(grep -o "name=.test_per_version" "$T/j1.xml" | wc -l)"
# coverage: the first variant's at the path, and one file per variant
for f in coverage.xml coverage.test-3.11.xml coverage.test-3.12.xml; do
	grep -q '<coverage' "$T/cov/$f" || fail "no Cobertura report $f: $(ls "$T/cov")"
done

# the terminal view: a section and a summary row per variant
run "$BIN" run -C "$P" --no-push
expect_rc 0
expect_in out "== test[3.11] (target testing)"
expect_in out "== test[3.12] (target testing)"
grep -E '^test\[3\.11\] +passed +[0-9.]+s +5/5 passed' "$T/out" >/dev/null ||
	{ cat "$T/out"; fail "terminal: no summary row for test[3.11] with 5 passed"; }
grep -E '^test\[3\.12\] +passed +[0-9.]+s +6/6 passed' "$T/out" >/dev/null ||
	{ cat "$T/out"; fail "terminal: no summary row for test[3.12] with 6 passed"; }

# ---- 2. one variant fails ----------------------------------------------------
FAIL_ON=3.12 run "$BIN" run -C "$P" --json
expect_rc 1
[ "$(fin 'test[3.11]' '[.result, .tests.total, .tests.failed]')" = '["passed",5,0]' ] ||
	fail "test[3.11] with FAIL_ON=3.12: $(fin 'test[3.11]' .)"
[ "$(fin 'test[3.12]' '[.result, .tests.total, .tests.failed]')" = '["failed",6,1]' ] ||
	fail "test[3.12] with FAIL_ON=3.12: $(fin 'test[3.12]' .)"
[ "$(fin after '[.result, .message]')" = '["skipped","needs test[3.12], which failed"]' ] ||
	fail "after: $(fin after .)"
[ "$(jq -r 'select(.event == "pipeline_finished") | .result' "$T/out")" = failed ] ||
	fail "pipeline result: $(grep pipeline_finished "$T/out")"
FAIL_ON=3.12 run "$BIN" run -C "$P"
expect_rc 1
grep -E '^test\[3\.12\] +failed +[0-9.]+s +5/6 passed' "$T/out" >/dev/null ||
	{ cat "$T/out"; fail "terminal: test[3.12] not failed with its own counts"; }
grep -E '^test\[3\.11\] +passed +[0-9.]+s +5/5 passed' "$T/out" >/dev/null ||
	{ cat "$T/out"; fail "terminal: test[3.11] not passed with its own counts"; }
expect_in out "== test[3.12] failed in"
expect_in out "failing on purpose for 3.12"
expect_in out "-- after skipped: needs test[3.12], which failed"

# ---- 3. --stage --------------------------------------------------------------
FAIL_ON=3.12 run "$BIN" run -C "$P" --json --stage 'test[3.11]'
expect_rc 0
[ "$(fin 'test[3.11]' .result)" = '"passed"' ] || fail "--stage test[3.11]: $(fin 'test[3.11]' .)"
[ "$(fin 'test[3.12]' '[.result, .message]')" = '["skipped","not selected (--stage test[3.11])"]' ] ||
	fail "--stage test[3.11] ran test[3.12]: $(fin 'test[3.12]' .)"
[ "$(jq -c 'select(.event == "stage_started") | .stage' "$T/out" | tr '\n' ' ')" = '"test[3.11]" ' ] ||
	fail "--stage test[3.11] started: $(jq -c 'select(.event == "stage_started") | .stage' "$T/out")"
run "$BIN" run -C "$P" --json --stage test
expect_rc 0
[ "$(jq -c 'select(.event == "stage_started") | .stage' "$T/out" | tr '\n' ' ')" = \
	'"test[3.11]" "test[3.12]" ' ] || fail "--stage test did not run both variants"
[ "$(fin after .result)" = '"skipped"' ] || fail "--stage test ran after"
run "$BIN" run -C "$P" --stage 'test[3.13]'
expect_rc 2
expect_in err 'no stage "test[3.13]"'

# ---- 4. the loader -----------------------------------------------------------
cat >"$T/bad.yml" <<'EOF'
version: 1
name: bad
stages:
  - name: test
    target: testing
    matrix:
      PYTHON_VERSION: []
      DB: [postgres, {x: 1}]
    env: { A: "${matrix.NOPE}" }
  - name: wide
    target: testing
    matrix: { A: [1, 2, 3, 4, 5, 6, 7, 8, 9], B: [1, 2, 3, 4, 5, 6, 7, 8] }
EOF
run "$BIN" validate -f "$T/bad.yml"
expect_rc 2
expect_in err "bad.yml:7:23: matrix.PYTHON_VERSION must not be an empty list"
expect_in err "bad.yml:8:22: each value of matrix.DB must be a string or number, not a mapping"
expect_in err 'bad.yml:9:15: stage "test": ${matrix.NOPE} has no value: the stage has no matrix key NOPE'
expect_in err "bad.yml:12:13: matrix makes more than 64 variants"

# ---- 5. serve: the variants are the job's stages ---------------------------
git -C "$P" init -q -b main
git -C "$P" add -A
git -C "$P" commit -qm "matrix project"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
SP_TEST_ADMIN=admin-$(rnd 8)
SP_APP_SECRET=hook-$(rnd 8)
export SP_TEST_ADMIN SP_APP_SECRET
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
workers: 1
admin_token_env: SP_TEST_ADMIN
job_timeout: 15m
env:
  DOCKER_HOST: "$DOCKER_HOST"
  BASE_IMAGE: "$BASE_IMAGE"
  BUILD_NETWORK: "$BUILD_NETWORK"
  FAIL_ON: "3.12"
repos:
  - name: app
    url: file://$P
    forge: github
    secret_env: SP_APP_SECRET
EOF
serve_up "$T/serve.yml" "$BASE"
curl -s -X POST -H "Authorization: Bearer $SP_TEST_ADMIN" -H 'Content-Type: application/json' \
	-d '{"repo":"app","ref":"main"}' "$BASE/api/jobs" >"$T/created"
job=$(jq -r .job "$T/created")
[ -n "$job" ] && [ "$job" != null ] || fail "manual job: $(cat "$T/created")"
n=300
while [ $n -gt 0 ]; do
	curl -s "$BASE/api/jobs/$job" >"$T/job.json"
	case $(jq -r .state "$T/job.json") in passed | failed | error | cancelled | skipped) break ;; esac
	sleep 1
	n=$((n - 1))
done
[ "$(jq -r .state "$T/job.json")" = failed ] ||
	{ jq . "$T/job.json"; tail -20 "$T/serve.log"; fail "serve: the job did not fail as wanted"; }
[ "$(jq -c '[.stages[].name]' "$T/job.json")" = '["test[3.11]","test[3.12]","after"]' ] ||
	{ jq . "$T/job.json"; fail "serve: the job's stages are not the variants"; }
[ "$(jq -c '[.stages[].state]' "$T/job.json")" = '["passed","failed","skipped"]' ] ||
	{ jq . "$T/job.json"; fail "serve: the variants' states"; }
[ "$(jq -c '[.stages[0,1] | .. | objects | select(has("total")) | .total]' "$T/job.json")" = '[5,6]' ] ||
	{ jq . "$T/job.json"; fail "serve: the variants' own test counts"; }
code=$(curl -s -o "$T/vlog" -w '%{http_code}' "$BASE/api/jobs/$job/log?stage=test%5B3.11%5D")
[ "$code" = 200 ] || fail "serve: log of test[3.11]: HTTP $code $(cat "$T/vlog")"
grep -q "test_per_version\[1\] PASSED" "$T/vlog" || fail "serve: test[3.11]'s log: $(head -c 1500 "$T/vlog")"
code=$(curl -s -o "$T/vlog" -w '%{http_code}' "$BASE/api/jobs/$job/log?stage=test%5B3.12%5D")
[ "$code" = 200 ] && grep -q "failing on purpose for 3.12" "$T/vlog" ||
	fail "serve: log of test[3.12]: HTTP $code $(head -c 1500 "$T/vlog")"

[ -z "$(containers)" ] || fail "containers left: $(containers)"
echo "ok: matrix variants built, run, reported and gated on the real engine"
