# Test stages on the real engine: pytest in the testing image, reports,
# gates, timeouts, SIGINT, prune, --junit/--coverage, big output.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"

U=$$
# $T/$1: a copy of the example app with a pipeline running only its tests;
# $2 extra stage keys (YAML, 4-space indented lines)
app() {
	rm -rf "$T/$1"
	mkdir -p "$T/$1"
	cp -r "$top/contrib/example-app" "$T/$1/app"
	cat >"$T/$1/stagepipe.yml" <<YML
version: 1
name: $1-$U
build:
  context: app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: test
    target: testing
    pytest: [-v, --cov=app, --cov-report=term-missing]
    coverage: { min: 80 }
${2:-}
YML
}

# containers of this test's pipelines (others may run on the same engine)
labelled() {
	curl -s --unix-socket "${DOCKER_HOST#unix://}" \
		'http://localhost/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.stagepipe.job%22%5D%7D' |
		python3 -c 'import json,sys; print(sum(c["Labels"].get("io.stagepipe.pipeline","").endswith("-'"$U"'") for c in json.load(sys.stdin)))'
}

# 1. the example app's tests pass; counts match pytest's own summary line
app ok
run "$BIN" run -C "$T/ok" --junit "$T/ok/junit.xml" --coverage "$T/ok/coverage.xml"
expect_rc 0
expect_in out "17 passed in"
expect_in out "17 passed, 0 failed, 0 skipped — coverage 100.0% (min 80%)"
expect_in out "pipeline ok-$U passed"
grep -q "<testcase classname=\"stagepipe.ok-$U\" name=\"test\"" "$T/ok/junit.xml" || fail "--junit lacks the stage"
grep -q 'test_health' "$T/ok/junit.xml" || fail "--junit lacks the tests"
grep -q 'line-rate=' "$T/ok/coverage.xml" || fail "--coverage is not Cobertura"
[ "$(labelled)" = 0 ] || fail "containers left behind after a passing run"

# 2. one failing test: stage fails, names the test and its assertion, exit 1
app failing
cat >"$T/failing/app/tests/test_zz_broken.py" <<'PY'
def test_answer_is_42():
    assert 6 * 7 == 43, "the answer changed"
PY
run "$BIN" run -C "$T/failing"
expect_rc 1
expect_in out "FAILED tests/test_zz_broken.py::test_answer_is_42"
expect_in out "the answer changed"
expect_in out "17 passed, 1 failed"
expect_in out "test failed"

# 3. below coverage.min: both numbers
app lowcov
cat >>"$T/lowcov/app/app/store.py" <<'PY'


def _never_called_1(x):
    if x > 1:
        return [i * i for i in range(x) if i % 2]
    elif x < -1:
        return {"neg": x}
    return None


def _never_called_2(items):
    out = []
    for it in items:
        if it:
            out.append(str(it).upper())
        else:
            out.append("-")
    return out
PY
sed -i 's/min: 80/min: 95/' "$T/lowcov/stagepipe.yml"
run "$BIN" run -C "$T/lowcov"
expect_rc 1
grep -Eq 'coverage [0-9]+\.[0-9]% < 95%' "$T/out" || { cat "$T/out"; fail "no 'coverage N% < 95%'"; }

# 4. no tests collected is a failure (and allowed when the stage says so)
app empty
sed -i 's/pytest: \[-v, --cov=app, --cov-report=term-missing\]/pytest: [-k, no_test_matches_this]/; /coverage:/d' "$T/empty/stagepipe.yml"
run "$BIN" run -C "$T/empty"
expect_rc 1
expect_in out "pytest exited 5: no tests collected"
echo "    allow_no_tests: true" >>"$T/empty/stagepipe.yml"
run "$BIN" run -C "$T/empty"
expect_rc 0

# 5. a test that sleeps past the timeout is killed and reported
app slow
cat >"$T/slow/app/tests/test_zz_slow.py" <<'PY'
import time
def test_sleeps():
    time.sleep(600)
PY
echo "    timeout: 8s" >>"$T/slow/stagepipe.yml"
start=$(date +%s)
run "$BIN" run -C "$T/slow"
expect_rc 1
expect_in out "timed out after 8s while running the tests"
[ $(($(date +%s) - start)) -lt 40 ] || fail "the timeout took too long"
[ "$(labelled)" = 0 ] || fail "the timed-out container was left behind"

# 6. SIGINT during the tests: exit 130, no container left
app sigint
cp "$T/slow/app/tests/test_zz_slow.py" "$T/sigint/app/tests/"
"$BIN" run -C "$T/sigint" >"$T/out" 2>"$T/err" &
pid=$!
i=0
until grep -q "test_sleeps" "$T/out" 2>/dev/null || grep -q "collected" "$T/out" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 600 ] || { kill -9 $pid; fail "tests never started"; }
	sleep 0.1
done
sleep 1
kill -INT $pid
rc=0
wait $pid || rc=$?
expect_rc 130
expect_in out "cancelled"
[ "$(labelled)" = 0 ] || fail "containers left behind after SIGINT"

# 7. prune: a run killed with SIGKILL leaves its container; prune removes it
#    (and keeps the containers of a run that is still going)
#    (waits for the tests' own output: the container is then surely there)
"$BIN" run -C "$T/sigint" >"$T/out" 2>"$T/err" &
pid=$!
i=0
until grep -q "collected" "$T/out" 2>/dev/null && [ "$(labelled)" != 0 ]; do
	i=$((i + 1))
	[ $i -lt 600 ] || { kill -9 $pid; fail "no container appeared"; }
	sleep 0.1
done
run "$BIN" prune
expect_rc 0
expect_in out "may still be going"
[ "$(labelled)" != 0 ] || fail "prune removed the container of a live run"
kill -9 $pid
wait $pid 2>/dev/null || true
run "$BIN" prune
expect_rc 0
expect_in out "removed "
expect_in out "job local-"
[ "$(labelled)" = 0 ] || fail "prune left containers"

# 8. 200 MB of test output: streamed, stagepipe's memory stays flat
app loud
cat >"$T/loud/app/tests/test_zz_loud.py" <<'PY'
import sys
def test_prints_200_mb():
    line = "x" * 1023 + "\n"
    for _ in range(200 * 1024):
        sys.stdout.write(line)
PY
sed -i 's/pytest: \[-v, --cov=app, --cov-report=term-missing\]/pytest: [-s, -q, --cov=app]/' "$T/loud/stagepipe.yml"
/usr/bin/time -f '%M' -o "$T/rss" "$BIN" run -C "$T/loud" >/dev/null 2>"$T/err" || {
	cat "$T/err"; fail "the loud run failed"; }
rss=$(tail -n 1 "$T/rss")
echo "200 MB of output: peak RSS ${rss} KB"
# an ASan binary (run.sh --sanitized sets SANITIZE) has shadow memory and a
# quarantine of freed blocks on top: still far below the 200 MB
max=30
[ -z "${SANITIZE:-}" ] || max=120
[ "$rss" -lt $((max * 1024)) ] || fail "peak RSS ${rss} KB >= $max MB"

# 9. a run stage with limits and overrides: the container gets them
app limits
cat >>"$T/limits/stagepipe.yml" <<'YML'
  - name: limits
    target: testing
    needs: [test]
    run: "echo uid=$(id -u) dir=$(pwd); cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/cpu.max 2>/dev/null || true"
    user: "4242"
    workdir: /tmp
    memory: 64m
    cpus: 0.5
YML
run "$BIN" run -C "$T/limits"
expect_rc 0
expect_in out "uid=4242 dir=/tmp"
expect_in out "67108864"
grep -q "50000 100000" "$T/out" || [ ! -e /sys/fs/cgroup/cpu.max ] || fail "cpus: 0.5 not applied"

# 10. a run stage that fails: its exit status, and the stage after it skipped
app runfail
cat >>"$T/runfail/stagepipe.yml" <<'YML'
  - name: lint
    target: testing
    run: [python, -c, "import sys; print('lint: 3 problems'); sys.exit(3)"]
  - name: after
    target: testing
    needs: [lint]
    run: "true"
YML
run "$BIN" run -C "$T/runfail"
expect_rc 1
expect_in out "lint: 3 problems"
expect_in out "command exited 3"
expect_in out "after skipped: needs lint, which failed"

# 11. a command that is not in the image: the stage fails (exit 1), it is
#     not an engine error, and the independent stage after it still runs
app nocmd
cat >>"$T/nocmd/stagepipe.yml" <<'YML'
  - name: typo
    target: testing
    run: [no-such-command, --version]
YML
run "$BIN" run -C "$T/nocmd"
expect_rc 1
expect_in out "cannot start \`no-such-command\` in the image"
expect_in out "test passed"
[ "$(labelled)" = 0 ] || fail "the container of a command that could not start was left"
