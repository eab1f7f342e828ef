# Pipeline secrets on the real engine: a generated project lists two
# secrets (one with a space, '/', '+', '&' and '='; one of several lines).
# Its tests prove that the container got them (their SHA-256 is in the
# project) and print them every way a leak happens: plainly, split across
# two writes with a flush and a pause between (two reads of the log
# stream), across lines, on stderr, base64 at the three alignments and
# URL-safe, URL-encoded (%XX both cases, '+' for space), in JSON, and in a
# failing assertion (the JUnit report).  Then no byte stagepipe wrote holds
# a secret or one of those forms: `run` (terminal, --json, --junit, stderr)
# and `serve` (its log, its data folder, the API's job and logs, the
# commit statuses), with one job on a local slot and one on an agent (the
# secrets then travel in the lease).  Also: the loader refuses a secret in build args, an
# unset or too short secret stops the run (exit 2) before anything runs.
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${DOCKER_HOST:?needs contrib/engine.sh up}"
command -v jq >/dev/null 2>&1 || fail "jq not found"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SOCK=${DOCKER_HOST#unix://}

export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git config --global user.name Test
git config --global user.email test@example.com
build_network

TAG=$(rnd 4)
PIPE=sptest-secrets-$TAG
S="sk-$(rnd 10)/a+b c&d=e"
M="-----BEGIN K$TAG KEY-----
$(rnd 12)
$(rnd 12)
-----END K$TAG KEY-----"

# ---- the project -----------------------------------------------------------
P=$T/proj
mkdir -p "$P/tests"
cat >"$P/Dockerfile" <<'EOF'
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS testing
RUN [ -e /usr/local/bin/python ] || ln -s "$(command -v python3)" /usr/local/bin/python
WORKDIR /src
COPY tests/ tests/
EOF
printf '%s' "$S" | sha256sum | cut -d' ' -f1 >"$P/tests/api_token.sha256"
printf '%s' "$M" | sha256sum | cut -d' ' -f1 >"$P/tests/multi_key.sha256"
cat >"$P/tests/test_secrets.py" <<'EOF'
import base64
import hashlib
import json
import os
import re
import sys
import time
import urllib.parse

S = os.environ.get("API_TOKEN", "")
M = os.environ.get("MULTI_KEY", "")
HERE = os.path.dirname(os.path.abspath(__file__))


def expected(name):
    with open(os.path.join(HERE, name + ".sha256")) as f:
        return f.read().strip()


def test_container_got_the_secrets():
    assert hashlib.sha256(S.encode()).hexdigest() == expected("api_token")
    assert hashlib.sha256(M.encode()).hexdigest() == expected("multi_key")


def test_prints_the_secrets():
    out = sys.stdout
    print("plain:", S, flush=True)
    out.write("split:" + S[:9])
    out.flush()
    time.sleep(0.5)
    out.write(S[9:] + ":end\n")
    out.flush()
    print("multi:\n" + M, flush=True)
    print("stderr:", S, file=sys.stderr, flush=True)
    for pre in (b"", b"x", b"xy"):
        data = pre + S.encode() + b"tail"
        print("b64:", base64.b64encode(data).decode(), flush=True)
        print("b64url:", base64.urlsafe_b64encode(pre + S.encode()).decode(), flush=True)
    print("b64 multi:", base64.b64encode(M.encode()).decode(), flush=True)
    q = urllib.parse.quote(S, safe="")
    print("url:", q, urllib.parse.quote_plus(S), urllib.parse.quote(S),
          re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), q), flush=True)
    print("query:", urllib.parse.urlencode({"token": S, "key": M}), flush=True)
    print("json:", json.dumps({"t": S, "m": M}), flush=True)


def test_fails_showing_the_secret():
    assert S == "not the secret"
EOF
cat >"$P/stagepipe.yml" <<EOF
version: 1
name: $PIPE
build:
  context: .
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: \${env.BUILD_NETWORK:-default}
secrets: [API_TOKEN, MULTI_KEY]
stages:
  - name: test
    target: testing
    pytest: [-s, -v, -p, no:cacheprovider]
    timeout: 10m
  - name: shell
    target: testing
    run: 'printf "%s" "\$API_TOKEN" | base64; printf "%s\\n" "\$MULTI_KEY"; printf "%s" "\$MULTI_KEY" | base64 -w 0; echo'
    timeout: 5m
EOF
git -C "$P" init -q -b main
git -C "$P" add -A
git -C "$P" commit -qm "secrets project"

# ---- every form that must never be written ---------------------------------
S="$S" M="$M" "$PY" - >"$T/forms" <<'EOF'
import base64, os, re, urllib.parse
S, M = os.environ["S"].encode(), os.environ["M"].encode()
forms = set()
def b64forms(v):
    out = {base64.b64encode(v).decode()}
    for a in range(3):
        enc = base64.b64encode(b"\0" * a + v).decode()
        out.add(enc[(8 * a + 5) // 6:(8 * a + 8 * len(v)) // 6])
    return out | {f.replace("+", "-").replace("/", "_") for f in out}
for v in (S, M):
    forms |= b64forms(v)
    q = urllib.parse.quote(v, safe="")
    forms |= {v.decode(), q, re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), q),
              urllib.parse.quote_plus(v), urllib.parse.quote(v)}
forms |= {l for l in M.decode().split("\n") if len(l) >= 4}
for f in sorted(forms):
    print(f)
EOF
[ "$(wc -l <"$T/forms")" -ge 20 ] || fail "too few forms: $(cat "$T/forms")"
# the check checks: the tests' own output, unmasked, is caught line by line
(cd "$P/tests" && API_TOKEN=$S MULTI_KEY=$M "$PY" -c \
	'import test_secrets as t; t.test_prints_the_secrets()' >"$T/control" 2>&1) ||
	fail "control: $(cat "$T/control")"
for want in plain: split: "BEGIN K" stderr: "b64: " b64url: "b64 multi:" url: query: json:; do
	grep -F -- "$want" "$T/control" | grep -qF -f "$T/forms" || fail "control: \"$want\" not caught"
done
# no_leak WHAT FILE...: none of the forms in the files (binary ones too)
no_leak() {
	_what=$1
	shift
	if grep -rFa -f "$T/forms" -- "$@" >"$T/leak" 2>/dev/null; then
		head -c 3000 "$T/leak"
		fail "$_what: a secret (or a form of it) was written"
	fi
}

containers() { # this run's containers
	curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" --data-urlencode "all=1" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" | jq -r '.[].Id'
}
srv_pid=
rec_pid=
agent_pid=
test_cleanup() {
	[ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null
	[ -n "$srv_pid" ] && { kill -TERM "$srv_pid" 2>/dev/null; sleep 1; kill -9 "$srv_pid" 2>/dev/null; }
	[ -n "$rec_pid" ] && kill "$rec_pid" 2>/dev/null
	for c in $(containers); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	wait 2>/dev/null
	true
}

# ---- 1. the loader and the environment stop a bad run before it starts ------
sed 's|args: { BASE_IMAGE: "${env.BASE_IMAGE}" }|args: { BASE_IMAGE: "${env.BASE_IMAGE}", T: "x${env.API_TOKEN}" }|' \
	"$P/stagepipe.yml" >"$T/bad.yml"
grep -q 'T: "x${env.API_TOKEN}"' "$T/bad.yml" || fail "could not make bad.yml"
API_TOKEN=$S MULTI_KEY=$M run "$BIN" run -C "$P" -f "$T/bad.yml"
expect_rc 2
expect_in err "bad.yml:5:47: build.args.T uses the secret API_TOKEN"
expect_in err "kept in the image's history"
run env -u MULTI_KEY API_TOKEN="$S" "$BIN" run -C "$P"
expect_rc 2
expect_in err "stagepipe.yml:7:22: secret MULTI_KEY is not set"
run env MULTI_KEY="$M" API_TOKEN=abc "$BIN" run -C "$P"
expect_rc 2
expect_in err "secret API_TOKEN is too short (3 bytes): a secret must be at least 4 bytes"
[ -z "$(containers)" ] || fail "a refused run made containers"
run env API_TOKEN="$S" MULTI_KEY="$M" "$BIN" validate -f "$P/stagepipe.yml"
expect_rc 0

# ---- 2. stagepipe run: --json and the terminal, with --junit ---------------
export API_TOKEN="$S" MULTI_KEY="$M"
run "$BIN" run -C "$P" --json --junit "$T/run1.junit.xml"
cp "$T/out" "$T/run1.out"
cp "$T/err" "$T/run1.err"
expect_rc 1
# the proof: the container had both values (and the failing test failed)
jq -c 'select(.event == "stage_finished" and .stage == "test")' "$T/run1.out" >"$T/st"
[ "$(jq -r .tests.passed "$T/st")" = 2 ] || fail "the secrets did not reach the test container: $(cat "$T/st")"
[ "$(jq -r .tests.failed "$T/st")" = 1 ] || fail "stage test: $(cat "$T/st")"
[ "$(jq -r 'select(.event == "stage_finished" and .stage == "shell") | .result' "$T/run1.out")" = passed ] ||
	fail "stage shell did not pass"
# the outputs were there, masked
grep -qF 'plain: ***' "$T/run1.out" || { cat "$T/run1.out"; fail "no masked plain line"; }
grep -qF 'split:***:end' "$T/run1.out" || fail "the split write is not one masked line"
grep -qF 'stderr: ***' "$T/run1.out" || fail "no masked stderr line"
grep -qF '***' "$T/run1.junit.xml" || fail "the JUnit report has no masked failure"
grep -qF 'test_fails_showing_the_secret' "$T/run1.junit.xml" || fail "junit lacks the failure"
no_leak "run --json" "$T/run1.out" "$T/run1.err" "$T/run1.junit.xml"

run "$BIN" run -C "$P" --junit "$T/run2.junit.xml"
cp "$T/out" "$T/run2.out"
cp "$T/err" "$T/run2.err"
expect_rc 1
grep -qF 'split:***:end' "$T/run2.out" || { cat "$T/run2.out"; fail "terminal: no masked split line"; }
no_leak "run (terminal)" "$T/run2.out" "$T/run2.err" "$T/run2.junit.xml"
# the image's history has no secret: builds never see them
img=$(jq -r 'select(.event == "stage_finished" and .stage == "test") | .image' "$T/run1.out")
[ -n "$img" ] && [ "$img" != null ] && {
	curl -s --unix-socket "$SOCK" "http://localhost/images/$img/history" >"$T/history.json"
	curl -s --unix-socket "$SOCK" "http://localhost/images/$img/json" >"$T/image.json"
	no_leak "image history" "$T/history.json" "$T/image.json"
}
[ -z "$(containers)" ] || fail "run left containers"
unset API_TOKEN MULTI_KEY

# ---- 3. serve: the repository's secrets from the server config -------------
git clone -q --bare "$P" "$T/app.git"
ADMIN=adm-$(rnd 12)
STATUS_TOKEN=st-$(rnd 12)
printf '%s' "$M" >"$T/multi.key"
chmod 600 "$T/multi.key"
printf '%s\n' "$STATUS_TOKEN" >"$T/status.token"
chmod 600 "$T/status.token"
export SP_TEST_ADMIN="$ADMIN" SP_HOOK_SECRET="hook-$(rnd 8)" SP_APP_API="$S"
recorder_up "$STATUS_TOKEN"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
mkdir -p "$T/data"
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
public_url: $BASE
workers: 1
admin_token_env: SP_TEST_ADMIN
job_timeout: 15m
env:
  DOCKER_HOST: "$DOCKER_HOST"
  BASE_IMAGE: "$BASE_IMAGE"
  BUILD_NETWORK: "$BUILD_NETWORK"
agents:
  - name: ag1
    token_file: $T/agent.token
repos:
  - name: app
    url: file://$T/app.git
    forge: github
    secret_env: SP_HOOK_SECRET
    secrets:
      API_TOKEN: { env: SP_APP_API }
      MULTI_KEY: { file: $T/multi.key }
    status:
      api: http://127.0.0.1:$REC
      project: team/app
      token_file: $T/status.token
  - name: viaagent
    url: file://$T/app.git
    forge: github
    secret_env: SP_HOOK_SECRET
    labels: [agentonly]
    secrets:
      API_TOKEN: { env: SP_APP_API }
      MULTI_KEY: { file: $T/multi.key }
EOF
printf '%s\n' "agent-$(rnd 12)" >"$T/agent.token"
chmod 600 "$T/agent.token"
run "$BIN" serve -c "$T/serve.yml" --check
expect_rc 0
no_leak "serve --check" "$T/out" "$T/err"
serve_up "$T/serve.yml" "$BASE"
# the agent's own environment has neither the secrets nor the server's
env -u SP_APP_API -u SP_TEST_ADMIN -u SP_HOOK_SECRET "$BIN" agent --server "$BASE" \
	--token-file "$T/agent.token" --name ag1 --labels agentonly >>"$T/agent.out" 2>>"$T/agent.log" &
agent_pid=$!

# job REPO NAME: a manual job of main, run to its end (failed: the failing
# test); its detail in $T/NAME.json, its stage logs in $T/NAME.log.STAGE
job() {
	code=$(curl -s -o "$T/api" -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" \
		-H 'Content-Type: application/json' -d "{\"repo\":\"$1\",\"ref\":\"main\"}" "$BASE/api/jobs")
	[ "$code" = 201 ] || fail "manual job: HTTP $code $(cat "$T/api")"
	_job=$(jq -r .job "$T/api")
	_n=600
	while [ $_n -gt 0 ]; do
		curl -s "$BASE/api/jobs/$_job" >"$T/$2.json"
		case $(jq -r .state "$T/$2.json") in passed | failed | error | cancelled | skipped) break ;; esac
		sleep 1
		_n=$((_n - 1))
	done
	[ "$(jq -r .state "$T/$2.json")" = failed ] || {
		jq . "$T/$2.json"; tail -30 "$T/serve.log"; tail -30 "$T/agent.log"
		fail "job $_job ($1): wanted failed (the failing test)"
	}
	jq -c '.stages[] | select(.name == "test") | .report.tests' "$T/$2.json" >"$T/st"
	[ "$(jq -r .passed "$T/st")" = 2 ] || {
		jq . "$T/$2.json"; fail "$2: the secrets did not reach the container: $(cat "$T/st")"
	}
	[ "$(jq -r '.stages[] | select(.name == "shell") | .state' "$T/$2.json")" = passed ] ||
		fail "$2: stage shell did not pass"
	curl -s "$BASE/api/jobs/$_job/log?stage=test" >"$T/$2.log.test"
	curl -s "$BASE/api/jobs/$_job/log?stage=shell" >"$T/$2.log.shell"
	grep -qF 'split:***:end' "$T/$2.log.test" || { cat "$T/$2.log.test"; fail "$2: no masked split line"; }
}
job viaagent agentjob
[ "$(jq -r .agent "$T/agentjob.json")" = ag1 ] || fail "the agent did not run it: $(jq -c . "$T/agentjob.json")"
job app localjob
job=$_job
cp "$T/localjob.json" "$T/job.json"
cp "$T/localjob.log.test" "$T/log.test"
cp "$T/localjob.log.shell" "$T/log.shell"
curl -s "$BASE/api/jobs?limit=50" >"$T/jobs.json"
curl -s "$BASE/api/repos" >"$T/repos.json"
curl -s -N -m 2 -H 'Accept: text/event-stream' "$BASE/api/jobs/$job/log?stage=test" >"$T/log.sse" || true
grep -qF 'split:***:end' "$T/log.test" || { cat "$T/log.test"; fail "serve: no masked split line in the log"; }
grep -qF 'stderr: ***' "$T/log.test" || fail "serve: no masked stderr line"
# statuses: the final one carries the failure (masked)
n=50
while [ $n -gt 0 ] && ! jq -e 'select(.body.state == "failure")' "$T/rec.jsonl" >/dev/null 2>&1; do
	sleep 0.2
	n=$((n - 1))
done
jq -e 'select(.body.state == "failure")' "$T/rec.jsonl" >/dev/null || { cat "$T/rec.jsonl"; fail "no failure status"; }
kill -TERM "$agent_pid"
wait "$agent_pid" 2>/dev/null
agent_pid=
kill -TERM "$srv_pid"
wait "$srv_pid" 2>/dev/null
srv_pid=
# every row of the store as text (with STORE=postgres the database is not
# in the data folder)
store_dump "$T/data/stagepipe.db" >"$T/store.dump" || fail "could not dump the store"
no_leak "serve" "$T/serve.log" "$T/serve.out" "$T/job.json" "$T/jobs.json" "$T/repos.json" \
	"$T/log.test" "$T/log.shell" "$T/log.sse" "$T/rec.jsonl" "$T/data" "$T/store.dump" \
	"$T/agentjob.json" "$T/agentjob.log.test" "$T/agentjob.log.shell" "$T/agent.out" "$T/agent.log"
[ -z "$(containers)" ] || fail "serve left containers"
echo "ok: secrets reach the test containers and are masked in run and serve output"
