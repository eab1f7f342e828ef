# stagepipe build against the real engine (contrib/engine.sh): BuildKit
# progress, cache, failures, .dockerignore, engine down, SIGINT.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"

# a one-stage project in $T/$1 with the given Dockerfile body (after FROM)
project() {
	mkdir -p "$T/$1"
	cat >"$T/$1/stagepipe.yml" <<YML
version: 1
name: $1
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: build
    target: t
YML
	{ echo 'ARG BASE_IMAGE'; echo 'FROM ${BASE_IMAGE} AS t'; cat; } >"$T/$1/Dockerfile"
}

# 1. the example app's testing target, as the reference pipeline says
cd "$top"
BUILD_NETWORK=none run "$BIN" build -f pipelines/fastapi.yml --stage test
expect_rc 0
expect_in out "sha256:"
expect_in err "[builder "
expect_in err "DONE"
expect_in err "built testing in"

# 2. a rebuild comes from the cache
BUILD_NETWORK=none run "$BIN" build -f pipelines/fastapi.yml --stage test
expect_rc 0
expect_in err "CACHED"

# 3. a failing RUN names the step, its output and the exit code
project fail <<'EOF2'
RUN echo hello-from-step; echo oops-on-stderr >&2; exit 3
EOF2
run "$BIN" build -C "$T/fail"
expect_rc 1
expect_in err "RUN echo hello-from-step"
expect_in err "oops-on-stderr"
expect_in err "exit code: 3"

# 4. a Dockerfile syntax error
project syntax <<'EOF2'
RUNN echo hello
EOF2
run "$BIN" build -C "$T/syntax"
expect_rc 1
expect_in err "unknown instruction: RUNN"

# 5. .dockerignore: excluded files are absent, an excepted one is present
project ignore <<'EOF2'
COPY . /ctx
RUN test ! -e /ctx/secret.txt && test ! -e /ctx/logs/drop.log && \
    test -e /ctx/logs/keep.log && test -e /ctx/src/app.py && \
    test -e /ctx/Dockerfile && echo ignore-rules-ok
EOF2
mkdir -p "$T/ignore/logs" "$T/ignore/src"
echo s >"$T/ignore/secret.txt"
echo d >"$T/ignore/logs/drop.log"
echo k >"$T/ignore/logs/keep.log"
echo 'print(1)' >"$T/ignore/src/app.py"
printf 'secret.txt\nlogs\n!logs/keep.log\nDockerfile\n' >"$T/ignore/.dockerignore"
run "$BIN" build -C "$T/ignore" --no-cache
expect_rc 0
expect_in err "ignore-rules-ok"

# 6. no bridge network on this engine: the error says what to set
project bridge <<'EOF2'
RUN echo needs-a-network
EOF2
sed -i 's/network: none/network: default/' "$T/bridge/stagepipe.yml"
run "$BIN" build -C "$T/bridge" --no-cache
expect_rc 1
expect_in err "network bridge not found"
expect_in err "build.network"

# 7. no engine at the address: exit 3, the socket named
run "$BIN" build -C "$T/fail" --docker-host "unix://$T/no-engine.sock"
expect_rc 3
expect_in err "$T/no-engine.sock"
expect_in err "contrib/engine.sh up"

# 8. SIGINT mid-build: exit 130 and the step's process is gone from the daemon
marker=$((400 + $$ % 500))
project cancel <<EOF2
RUN echo started; sleep $marker
EOF2
"$BIN" build -C "$T/cancel" --no-cache >"$T/out" 2>"$T/err" &
pid=$!
i=0
until pgrep -f "sleep $marker" >/dev/null; do
	i=$((i + 1))
	[ $i -lt 300 ] || { kill -9 $pid; cat "$T/err"; fail "the build never started its RUN"; }
	sleep 0.1
done
kill -INT $pid
rc=0
wait $pid || rc=$?
expect_rc 130
expect_in err "cancelled"
i=0
while pgrep -f "sleep $marker" >/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the RUN step still runs on the daemon 10s after SIGINT"
	sleep 0.1
done
echo "SIGINT: step process gone after ~$((i / 10))s"
