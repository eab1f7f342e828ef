# Artifacts on the real engine (issue 13): a run stage that fails after
# writing files, and a pytest stage with an HTML coverage report; the
# pipeline asks for a folder, a file, a glob inside a folder, a glob at the
# top of the working folder, a path that does not exist and a glob that
# matches nothing.  `run --artifacts DIR` must leave exactly what matched
# under DIR/<stage>/ (also for the failed stage: artifacts are copied pass
# or fail), say one warning line for each of the two that found nothing,
# and not fail because of them.  A symlink out of the container's folder is
# refused by the safe untar (a warning, nothing written outside); a glob
# works with the working folder / too.  Without --artifacts nothing is
# copied and one note says so; past the job's cap (--artifacts-max-bytes) a
# warning and the rest not kept.  The loader refuses ".." and absolute
# paths with FILE:LINE:COL.  Then serve keeps a job's artifacts and the API
# lists and serves them (traversal and links refused), and an agent's job
# uploads the same files to the server.
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
: "${BIN:?set BIN}" "${BASE_IMAGE:?needs contrib/engine.sh up}" "${DOCKER_HOST:?needs contrib/engine.sh up}"
build_network

PIPE=sptest-artifacts-$(rnd 4)
P=$T/proj
mkdir -p "$P/tests" "$P/app"
cat >"$P/Dockerfile" <<'EOF'
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS testing
RUN [ -e /usr/local/bin/python ] || ln -s "$(command -v python3)" /usr/local/bin/python
WORKDIR /src
COPY app/ app/
COPY tests/ tests/
EOF
cat >"$P/app/__init__.py" <<'EOF'
def add(a, b):
    return a + b


def unused(x):
    if x:
        return 1
    return 2
EOF
cat >"$P/tests/test_add.py" <<'EOF'
from app import add


def test_add():
    assert add(2, 3) == 5
EOF
cat >"$P/stagepipe.yml" <<EOF
version: 1
name: $PIPE
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: \${env.BUILD_NETWORK:-default}
stages:
  - name: make
    target: testing
    run: |
      set -e
      mkdir -p htmlcov/sub dist out
      echo '<h1>cov</h1>' > htmlcov/index.html
      echo 'js' > htmlcov/sub/a.js
      echo wheel > dist/app-1.0-py3-none-any.whl
      echo sdist > dist/app-1.0.tar.gz
      echo report > report.txt
      echo one > one.log; echo two > two.log
      ln -s /etc/passwd out/escape
      exit 3
    artifacts:
      - htmlcov/
      - "dist/*.whl"
      - ./report.txt
      - "*.log"
      - missing.txt
      - "nomatch/*.zip"
      - "dist/*.none"
    timeout: 5m
  - name: test
    target: testing
    pytest: [--cov=app, --cov-report=html, -p, no:cacheprovider]
    artifacts: [htmlcov]
    timeout: 5m
  - name: root
    target: testing
    workdir: /
    run: echo top > /top-sp.log
    artifacts: ["*-sp.log"]
    timeout: 5m
  - name: unsafe
    target: testing
    run: mkdir -p out && ln -s /etc/passwd out/escape && echo ok > out/fine.txt
    artifacts: [out]
    timeout: 5m
EOF

A=$T/arts
run "$BIN" run -C "$P" --artifacts "$A"
expect_rc 1                      # the make stage fails (exit 3) ...
expect_in out "command exited 3"
# ... and its artifacts are there all the same
[ "$(cat "$A/make/htmlcov/index.html")" = "<h1>cov</h1>" ] || fail "htmlcov/index.html: $(ls -R "$A")"
[ "$(cat "$A/make/htmlcov/sub/a.js")" = js ] || fail "htmlcov/sub/a.js missing"
[ "$(cat "$A/make/dist/app-1.0-py3-none-any.whl")" = wheel ] || fail "the wheel is missing"
[ ! -e "$A/make/dist/app-1.0.tar.gz" ] || fail "dist/*.whl copied the sdist too"
[ "$(cat "$A/make/report.txt")" = report ] || fail "report.txt missing"
[ "$(cat "$A/make/one.log")$(cat "$A/make/two.log")" = onetwo ] || fail "*.log missing"
[ ! -e "$A/make/app" ] && [ ! -e "$A/make/tests" ] || fail "*.log copied other things: $(ls "$A/make")"
[ ! -e "$A/make/nomatch" ] || fail "an empty folder for a glob without match"
expect_in out "warning: artifact missing.txt: path not found in the container; nothing copied"
expect_in out "warning: artifact nomatch/*.zip: folder not found in the container; nothing copied"
expect_in out "warning: artifact dist/*.none: no match in the container; nothing copied"
expect_in out "artifacts: "
# the pytest stage passed and kept its HTML coverage report
[ -s "$A/test/htmlcov/index.html" ] || fail "pytest's htmlcov missing: $(ls -R "$A/test" 2>&1)"
grep -q "app/__init__.py\|app___init___py" "$A/test/htmlcov/index.html" || fail "htmlcov does not show app"
# a glob in the working folder / itself
[ "$(cat "$A/root/top-sp.log")" = top ] || fail "a glob with workdir /: $(ls -R "$A/root" 2>&1)"
[ "$(ls "$A/root")" = top-sp.log ] || fail "a glob with workdir / copied more: $(ls "$A/root")"
# the link out of the folder is refused; nothing outside the destination
expect_in out "warning: artifact out: "
expect_in out "symlink"
[ ! -e "$A/unsafe/out/escape" ] || fail "a symlink to /etc/passwd was written"
echo "artifacts: file, folder, globs, missing ones warned, pass or fail, symlink refused"

# --json carries the same lines
run "$BIN" run -C "$P" --stage test --artifacts "$T/arts2" --json
expect_rc 0
expect_in out '"artifacts: '
grep '"event":"stage_finished","stage":"test"' "$T/out" | jq -e '.artifacts.entries > 0 and .artifacts.bytes > 0 and .artifacts.warnings == 0' >/dev/null ||
	fail "--json: stage_finished lacks its artifacts: $(grep stage_finished "$T/out")"
[ -s "$T/arts2/test/htmlcov/index.html" ] || fail "--json: htmlcov missing"

# the job's cap: past it a warning, the rest not copied, the result unchanged
run "$BIN" run -C "$P" --artifacts "$T/arts3" --artifacts-max-bytes 20
expect_rc 1
expect_in out "command exited 3"
expect_in out "the rest is not copied"
expect_in out "over the job's cap of 20 bytes of artifacts"
expect_in out "warning: artifacts not kept: the job's 20 bytes of artifacts are used up"
kept=$(find "$T/arts3" -type f -exec cat {} + | wc -c)
[ "$kept" -le 20 ] || fail "the cap of 20 bytes kept $kept"
echo "artifacts: the job's cap (--artifacts-max-bytes 20) warns and keeps $kept bytes"

# without --artifacts: nothing copied, one note
run "$BIN" run -C "$P" --stage test
expect_rc 0
expect_in out "artifacts: not kept (run with --artifacts DIR to keep them)"

# the loader: .. and absolute paths, with FILE:LINE:COL
sed 's#      - missing.txt#      - ../etc/passwd#; s#    artifacts: \[htmlcov\]#    artifacts: [/etc]#' \
	"$P/stagepipe.yml" >"$T/bad.yml"
run "$BIN" validate -f "$T/bad.yml"
expect_rc 2
expect_in err 'bad.yml:25:9: artifact "../etc/passwd" must not climb out of the working folder ("..")'
expect_in err 'bad.yml:32:17: artifact "/etc" must be relative to the container'"'"'s working folder, not absolute'
echo "artifacts: loader refuses .. and absolute paths"

# ---- serve keeps them per job, the API lists and serves them ------------------
command -v jq >/dev/null 2>&1 || fail "jq not found"
export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME" "$T/data"
git config --global user.name Test
git config --global user.email test@example.com
git -C "$P" init -q -b main
git -C "$P" add -A
git -C "$P" commit -qm "artifacts project"
ADMIN=adm-$(rnd 12)
export SP_ART_ADMIN="$ADMIN" SP_ART_SECRET="sec-$(rnd 12)" SP_ART_A1="a1-$(rnd 16)"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
workers: 1
admin_token_env: SP_ART_ADMIN
artifacts_max: 50m
env:
  DOCKER_HOST: "$DOCKER_HOST"
  BASE_IMAGE: "$BASE_IMAGE"
  BUILD_NETWORK: "$BUILD_NETWORK"
agents:
  - name: a1
    token_env: SP_ART_A1
repos:
  - name: app
    url: $P
    forge: github
    secret_env: SP_ART_SECRET
  - name: remote
    url: $P
    forge: github
    secret_env: SP_ART_SECRET
    labels: [remote]
EOF
srv_pid=
ag_pid=
test_cleanup() {
	[ -z "$ag_pid" ] || { kill -TERM "$ag_pid" 2>/dev/null; wait "$ag_pid" 2>/dev/null; }
	[ -z "$srv_pid" ] || { kill -TERM "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; }
	true
}
serve_up "$T/serve.yml" "$BASE"
# trigger REPO: a manual job, waited for; sets $job
trigger() {
	code=$(curl -s -o "$T/trigger" -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" \
		-d "{\"repo\":\"$1\",\"ref\":\"main\"}" "$BASE/api/jobs")
	[ "$code" = 201 ] || fail "trigger: HTTP $code $(cat "$T/trigger")"
	job=$(jq -r .job "$T/trigger")
	i=0
	while :; do
		state=$(curl -s "$BASE/api/jobs/$job" | jq -r .state)
		case $state in passed | failed | error | cancelled) break ;; esac
		i=$((i + 1)); [ $i -lt 300 ] || fail "job $job not final: $state"
		sleep 1
	done
	[ "$state" = failed ] || { tail -30 "$T/serve.log"; fail "job $job ended $state, wanted failed (the make stage exits 3)"; }
}
trigger app
[ -f "$T/data/artifacts/$job/make/dist/app-1.0-py3-none-any.whl" ] || fail "not kept under DATA/artifacts/$job"
curl -fsS "$BASE/api/jobs/$job/artifacts" >"$T/list.json" || fail "GET artifacts failed"
jq -e '.artifacts | map(.path) | index("make/dist/app-1.0-py3-none-any.whl")' "$T/list.json" >/dev/null ||
	fail "list lacks the wheel: $(cat "$T/list.json")"
jq -e '.artifacts | map(.path) | index("test/htmlcov/index.html")' "$T/list.json" >/dev/null ||
	fail "list lacks htmlcov: $(cat "$T/list.json")"
jq -e '.artifacts[] | select(.path == "make/report.txt") | .size == 7' "$T/list.json" >/dev/null ||
	fail "report.txt size: $(cat "$T/list.json")"
curl -fsS "$BASE/api/jobs/$job" | jq -e '.stages[] | select(.name == "make") | .report.artifacts.warnings == 3' >/dev/null ||
	fail "the job's make stage report lacks artifacts.warnings 3: $(curl -s "$BASE/api/jobs/$job")"
code=$(curl -s -D "$T/h" -o "$T/got" -w '%{http_code}' "$BASE/api/jobs/$job/artifacts/make/htmlcov/index.html")
[ "$code" = 200 ] && [ "$(cat "$T/got")" = "<h1>cov</h1>" ] || fail "download: HTTP $code $(cat "$T/got")"
grep -qi '^content-type: application/octet-stream' "$T/h" || fail "download not octet-stream: $(cat "$T/h")"
grep -qi '^content-disposition: attachment; filename="index.html"' "$T/h" || fail "no attachment header: $(cat "$T/h")"
grep -qi '^content-security-policy: sandbox' "$T/h" || fail "no sandbox CSP: $(cat "$T/h")"
for bad in "make/../../../serve.yml" "make/./report.txt" "make//report.txt" "../$job/make/report.txt"; do
	code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$BASE/api/jobs/$job/artifacts/$bad")
	[ "$code" = 400 ] || [ "$code" = 404 ] || fail "artifacts/$bad: HTTP $code"
done
ln -s /etc/passwd "$T/data/artifacts/$job/make/planted"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/jobs/$job/artifacts/make/planted")
[ "$code" = 404 ] || fail "a symlink in the folder was followed: HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/jobs/999999/artifacts")
[ "$code" = 404 ] || fail "artifacts of no job: HTTP $code"
echo "serve: job $job's artifacts kept in DATA/artifacts/$job, listed ($(jq '.artifacts | length' "$T/list.json") files, $(jq .bytes "$T/list.json") bytes), downloaded; traversal and links refused"

# ---- an agent's job: the files travel to the server before the finish ---------
SP_ART_A1=$SP_ART_A1 STAGEPIPE_AGENT_TOKEN=$SP_ART_A1 "$BIN" agent --server "$BASE" --name a1 \
	--labels remote >"$T/agent.out" 2>"$T/agent.log" &
ag_pid=$!
trigger remote
curl -fsS "$BASE/api/jobs/$job/artifacts" >"$T/alist.json" || fail "GET artifacts (agent job) failed"
jq -S '[.artifacts[] | {path, size}]' "$T/list.json" >"$T/l1"
jq -S '[.artifacts[] | {path, size}]' "$T/alist.json" >"$T/l2"
cmp -s "$T/l1" "$T/l2" || { diff "$T/l1" "$T/l2"; cat "$T/agent.log"; fail "the agent job's artifacts differ from the local job's"; }
[ "$(curl -fsS "$BASE/api/jobs/$job/artifacts/make/dist/app-1.0-py3-none-any.whl")" = wheel ] ||
	fail "agent job: the wheel does not download"
grep -q 'agent.artifacts.*sent=16 failed=0' "$T/agent.log" || { cat "$T/agent.log"; fail "agent log lacks the upload line"; }
[ -z "$(ls "$T/data/artifacts/.tmp")" ] || fail "upload leftovers in DATA/artifacts/.tmp: $(ls "$T/data/artifacts/.tmp")"
# the protocol's guards: another lease's epoch, a bad path, no token
code=$(curl -s -o "$T/r" -w '%{http_code}' -X POST -H "Authorization: Bearer $SP_ART_A1" \
	--data-binary x "$BASE/api/agent/jobs/$job/artifacts?epoch=99&path=make/x")
[ "$code" = 409 ] || [ "$code" = 403 ] || fail "upload to a finished job: HTTP $code $(cat "$T/r")"
code=$(curl -s -o "$T/r" -w '%{http_code}' -X POST -H "Authorization: Bearer $SP_ART_A1" \
	--data-binary x "$BASE/api/agent/jobs/$job/artifacts?epoch=1&path=make/../../x")
[ "$code" = 400 ] || fail "upload with ..: HTTP $code $(cat "$T/r")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary x \
	"$BASE/api/agent/jobs/$job/artifacts?epoch=1&path=make/x")
[ "$code" = 401 ] || fail "upload without a token: HTTP $code"
echo "agent: job $job's $(jq '.artifacts | length' "$T/alist.json") artifacts uploaded file by file, the same list as the local job; stale epoch, .. and no token refused"
