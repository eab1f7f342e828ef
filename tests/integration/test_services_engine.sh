# Services on the real engine: a stage's services are built from the
# test's own Dockerfile (a TCP echo server, target "echo") or run from an
# image (the base image serving HTTP with python3 -m http.server), started
# and ready before pytest runs, reached by name from the tests (on this
# engine without a bridge: one shared network namespace, the names mapped
# to localhost), and gone afterwards: after a pass, a failing test (whose
# run shows the services' logs, masked), a service that never gets ready
# (one clear line and its logs), SIGINT mid-test, a per-job network where
# the engine has networks (aliases), an image no registry has, SIGTERM
# while waiting for readiness; after kill -9, `prune --dry-run` lists what
# was left (this script removes it: the engine is shared).  Also the
# loader's errors for services, with their line and column.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${DOCKER_HOST:?needs contrib/engine.sh up}"
command -v jq >/dev/null 2>&1 || fail "jq not found"
SOCK=${DOCKER_HOST#unix://}
build_network

TAG=$(rnd 4)
PIPE=sptest-services-$TAG
export SVC_TOKEN="tok-$(rnd 8)"

P=$T/proj
mkdir -p "$P/tests" "$P/echo"
cat >"$P/Dockerfile" <<'EOF'
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS base
RUN [ -e /usr/local/bin/python ] || ln -s "$(command -v python3)" /usr/local/bin/python

FROM base AS echo
COPY echo/ /srv/
CMD ["python3", "-u", "/srv/echo_server.py"]

FROM base AS testing
WORKDIR /src
COPY tests/ tests/
EOF
cat >"$P/echo/echo_server.py" <<'EOF'
import os
import socketserver
import time

PORT = int(os.environ.get("ECHO_PORT", "7000"))
GREETING = os.environ.get("GREETING", "")
# a secret given to the service through env: masked wherever stagepipe shows it
print("echo server: token is", os.environ.get("TOKEN", "-"), flush=True)
time.sleep(float(os.environ.get("DELAY", "0")))


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        data = self.rfile.readline()
        print("echo server: got", data.strip().decode(), flush=True)
        self.wfile.write(GREETING.encode() + data)


socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("", PORT), Echo) as srv:
    print("echo server listening on", PORT, flush=True)
    srv.serve_forever()
EOF
cat >"$P/tests/test_services.py" <<'EOF'
import os
import socket
import time
import urllib.request


def test_echo_service_answers():
    with socket.create_connection(("echo", 7000), timeout=5) as s:
        s.sendall(b"ping\n")
        assert s.makefile().readline() == "hello ping\n"


def test_web_service_answers():
    with urllib.request.urlopen("http://web:8081/", timeout=5) as r:
        assert r.status == 200


def test_maybe_fails():
    if os.environ.get("SLOW"):
        print("sleeping-" + os.environ["SLOW"], flush=True)
        time.sleep(600)
    assert not os.environ.get("FAIL"), "failing on purpose"
EOF
# pipeline STAGE_ENV ECHO_READY: the project's pipeline with a stage env and
# the echo service's ready check
pipeline() {
	cat <<EOF
version: 1
name: $PIPE
build:
  context: .
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: \${env.BUILD_NETWORK:-default}
secrets: [SVC_TOKEN]
stages:
  - name: test
    target: testing
    pytest: [-v, -p, no:cacheprovider]
    timeout: 10m
    env: { $1 }
    services:
      - name: echo
        target: echo
        env: { ECHO_PORT: "7000", GREETING: "hello ", TOKEN: "\${env.SVC_TOKEN}", DELAY: "1" }
        ready: $2
      - name: web
        image: \${env.BASE_IMAGE}
        command: cd /tmp && exec python3 -m http.server 8081
        ready:
          cmd: [python3, -c, "import urllib.request as u; u.urlopen('http://localhost:8081/')"]
          timeout: 30s
EOF
}
pipeline 'X: "1"' '{port: 7000, timeout: 60s}' >"$P/stagepipe.yml"

labelled() { # this pipeline's containers (any state), and its networks
	curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" --data-urlencode "all=1" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" | jq -r '.[].Id'
	curl -s --unix-socket "$SOCK" -G "http://localhost/networks" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" | jq -r '.[].Id'
}
expect_none_left() {
	i=0
	while [ -n "$(labelled)" ]; do
		i=$((i + 1))
		[ $i -lt 50 ] || fail "$1: left behind: $(labelled | tr '\n' ' ')"
		sleep 0.1
	done
}
test_cleanup() {
	[ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null
	for c in $(curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
		--data-urlencode "all=1" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" | jq -r '.[].Id'); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	true
}

# ---- 1. the loader --------------------------------------------------------------
cat >"$T/bad.yml" <<'EOF'
version: 1
name: bad
stages:
  - name: test
    target: testing
    pytest: true
    services:
      - name: db
        image: postgres:16
        imgae: x
      - name: db
        target: db
      - name: Cache_1
        image: redis
      - name: nothing
        ready: {port: 99999, cmd: [true]}
  - name: promote
    target: runtime
    services: [{name: x, image: y}]
EOF
run "$BIN" validate -f "$T/bad.yml"
expect_rc 2
expect_in err 'bad.yml:10:9: unknown key "imgae" in service "db" of stage "test"; did you mean "image"?'
expect_in err 'bad.yml:11:9: duplicate service name "db" in stage "test" (first at line 8)'
expect_in err 'bad.yml:13:15: service name "Cache_1" must be a host name'
expect_in err 'bad.yml:15:9: service "nothing" of stage "test" needs "image" (an image reference) or "target"'
expect_in err 'bad.yml:16:23: ready.port must be a port number (1-65535), not 99999'
expect_in err 'bad.yml:19:15: services need a pytest or run stage (stage "promote" only builds)'
run "$BIN" validate -f "$P/stagepipe.yml"
expect_rc 0

# ---- 2. a pass: ready before the tests, reached by name, gone afterwards -------------
run "$BIN" run -C "$P" --json
expect_rc 0
jq -c 'select(.event == "service") | [.service, .state]' "$T/out" >"$T/states"
for want in '["echo","starting"]' '["web","starting"]' '["echo","ready"]' '["web","ready"]' \
	'["echo","removed"]' '["web","removed"]'; do
	grep -qxF "$want" "$T/states" || { cat "$T/out"; fail "no service event $want"; }
done
# the services were ready before pytest wrote its first line
ready_line=$(grep -n '"state":"ready","message":"`python3`' "$T/out" | cut -d: -f1 | tail -1)
pytest_line=$(grep -n '"stream":"stdout"' "$T/out" | cut -d: -f1 | head -1)
[ -n "$ready_line" ] && [ -n "$pytest_line" ] && [ "$ready_line" -lt "$pytest_line" ] ||
	{ cat "$T/out"; fail "the services were not ready before pytest started"; }
[ "$(jq -r 'select(.event == "stage_finished") | .tests.passed' "$T/out")" = 3 ] ||
	{ cat "$T/out"; fail "the three tests did not pass"; }
grep -F '"service":"echo","state":"ready"' "$T/out" | grep -q 'listening on port 7000' ||
	fail "echo's ready event does not say why"
expect_none_left "after a pass"
echo "pass: services ready before the tests, reached as echo:7000 and web:8081, none left"

# ---- 3. a failing test shows the services' logs, masked ---------------------------
pipeline 'FAIL: "1"' '{port: 7000}' >"$P/stagepipe.yml"
run "$BIN" run -C "$P"
expect_rc 1
expect_in out "failing on purpose"
expect_in out "service echo: its last 40 lines of output:"
expect_in out ":: echo | echo server listening on 7000"
expect_in out ":: echo | echo server: got ping"
expect_in out ":: echo | echo server: token is ***"
expect_not_in out "$SVC_TOKEN"
expect_in out ":: web | "
expect_none_left "after a failing test"
echo "failing test: both services' logs shown, the token masked, none left"

# ---- 4. a service that never gets ready ------------------------------------------
pipeline 'X: "1"' '{port: 7999, timeout: 4s}' >"$P/stagepipe.yml"
run "$BIN" run -C "$P" --json
expect_rc 1
jq -r 'select(.event == "stage_finished") | .message' "$T/out" >"$T/why"
grep -qxF "service echo not ready after 4s: nothing listens on port 7999" "$T/why" ||
	{ cat "$T/out"; fail "unclear message: $(cat "$T/why")"; }
grep -F '"service":"echo","state":"failed"' "$T/out" | grep -qF "not ready after 4s" ||
	fail "no failed event for echo"
grep -qF 'echo | echo server listening on 7000' "$T/out" || fail "echo's logs not shown"
[ -z "$(jq -r 'select(.stream == "stdout") | .line' "$T/out")" ] || fail "pytest ran anyway"
expect_none_left "after a service that never got ready"
echo "never ready: one clear line, its logs, no test run, none left"

# ---- 5. SIGINT mid-test: exit 130, everything removed -------------------------------
marker=$(rnd 3)
pipeline "SLOW: \"$marker\"" '{port: 7000}' >"$P/stagepipe.yml"
"$BIN" run -C "$P" --json >"$T/out" 2>"$T/err" &
pid=$!
i=0
# pytest holds the test's output back: the test before it passed, so it sleeps
until grep -qF "test_web_service_answers PASSED" "$T/out"; do
	i=$((i + 1))
	[ $i -lt 1200 ] || { cat "$T/out" "$T/err"; fail "the slow test never started"; }
	sleep 0.1
done
sleep 1
[ "$(labelled | wc -l)" -ge 3 ] || fail "expected two services and the test container mid-test"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
pid=
expect_rc 130
grep -F '"service":"echo","state":"removed"' "$T/out" >/dev/null || fail "no removed event after SIGINT"
expect_none_left "after SIGINT"
echo "SIGINT mid-test: exit 130, services and test container gone"

# ---- 6. where the engine has networks: a per-job network, names as aliases ---------
# (build.network default; this engine has no "bridge" for builds, so the
# Dockerfile has no RUN step and the stage runs python3 -m pytest itself)
pipeline 'X: "1"' '{port: 7000}' |
	sed 's/    pytest: \[-v, -p, no:cacheprovider\]/    run: [python3, -m, pytest, -v, -p, no:cacheprovider]/' \
		>"$P/stagepipe.yml"
sed -i '/^RUN /d' "$P/Dockerfile"
grep -q 'run: \[python3' "$P/stagepipe.yml" || fail "could not make the run: variant"
BUILD_NETWORK=default run "$BIN" run -C "$P" --json
expect_rc 0
grep -qF 'test_echo_service_answers PASSED' "$T/out" || { cat "$T/out"; fail "echo not reached"; }
grep -qF 'test_web_service_answers PASSED' "$T/out" || { cat "$T/out"; fail "web not reached"; }
expect_none_left "after a run on a per-job network"
echo "per-job network: echo and web reached by alias, network and containers gone"

# ---- 7. kill -9 mid-test: what is left is what `stagepipe prune` knows -------------
# (only --dry-run: the engine is shared, so this test removes its own leftovers)
marker=$(rnd 3)
pipeline "SLOW: \"$marker\"" '{port: 7000}' |
	sed 's/    pytest: \[-v, -p, no:cacheprovider\]/    run: [python3, -m, pytest, -v, -p, no:cacheprovider]/' \
		>"$P/stagepipe.yml"
BUILD_NETWORK=default "$BIN" run -C "$P" --json >"$T/killed" 2>"$T/err" &
pid=$!
i=0
until grep -qF "test_web_service_answers PASSED" "$T/killed"; do
	i=$((i + 1))
	[ $i -lt 1200 ] || { cat "$T/killed" "$T/err"; fail "the slow test never started (kill -9)"; }
	sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
run "$BIN" prune --dry-run
expect_rc 0
job=$(jq -r 'select(.event == "pipeline_started") | .job' "$T/killed")
[ -n "$job" ] || fail "no job id"
grep -qF "would remove network stagepipe-$job-test (job $job)" "$T/out" ||
	{ cat "$T/out"; fail "prune does not know the services' network"; }
[ "$(grep -c "would remove .* (job $job, " "$T/out")" -ge 3 ] ||
	{ cat "$T/out"; fail "prune does not know the services' and test's containers"; }
for c in $(labelled); do # ours: containers first, then the network
	curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
done
for c in $(labelled); do
	curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/networks/$c"
done
expect_none_left "after removing what kill -9 left"
echo "kill -9: prune --dry-run lists the services, the test container and the network"

# ---- 8. an image that no registry has: the stage fails with one line -------------
: "${REGISTRY:?needs contrib/engine.sh up}"
pipeline 'X: "1"' '{port: 7000}' | sed "s|image: \${env.BASE_IMAGE}|image: $REGISTRY/sptest-none-$TAG:1|" \
	>"$P/stagepipe.yml"
grep -q "sptest-none-$TAG" "$P/stagepipe.yml" || fail "could not make the missing-image variant"
run "$BIN" run -C "$P"
expect_rc 1
expect_in out "service web: pulling $REGISTRY/sptest-none-$TAG:1"
expect_in out "== test failed"
expect_in out "service web: pulling $REGISTRY/sptest-none-$TAG:1:"
expect_none_left "after a missing image"
echo "missing image: pulled, refused by the registry, the stage failed, none left"

# ---- 9. SIGTERM while waiting for a service to be ready ----------------------------
pipeline 'X: "1"' '{port: 7999, timeout: 5m}' >"$P/stagepipe.yml"
"$BIN" run -C "$P" --json >"$T/termed" 2>"$T/err" &
pid=$!
i=0
# (services are waited for in order: echo's wait, which cannot end, blocks)
until grep -qF '"service":"web","state":"starting"' "$T/termed"; do
	i=$((i + 1))
	[ $i -lt 1200 ] || { cat "$T/termed" "$T/err"; fail "web never started (SIGTERM)"; }
	sleep 0.1
done
sleep 2
[ "$(labelled | wc -l)" -ge 2 ] || fail "expected both services to run before SIGTERM"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
expect_rc 130
[ "$(jq -r 'select(.event == "stage_finished") | .message' "$T/termed")" = \
	"interrupted while starting the services" ] || { cat "$T/termed"; fail "SIGTERM: wrong message"; }
expect_none_left "after SIGTERM while waiting for a service"
echo "SIGTERM while waiting for readiness: exit 130, none left"
