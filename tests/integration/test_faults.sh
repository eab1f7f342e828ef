# Engine faults a real engine cannot produce on demand, from a fake engine
# (tests/tools/fake_engine.py) on a unix socket in $T: build streams that
# end early, break, hang or die; log streams cut inside a frame; a test
# container killed by an engine restart; HTTP errors.  No engine needed.
. "$(dirname "$0")/lib.sh"
: "${BIN:?set BIN (build/stagepipe)}" "${top:?set top (the repository)}"

sock=$T/fake.sock
reqs=$T/requests.log
fake_pid=

stop_fake() {
	[ -n "$fake_pid" ] || return 0
	kill "$fake_pid" 2>/dev/null || true
	wait "$fake_pid" 2>/dev/null || true
	fake_pid=
}
test_cleanup() { stop_fake; }

# fake SCENARIO: a fresh fake engine on $sock injecting SCENARIO; its
# requests go to $reqs (see fake_engine.py for the scenarios)
fake() {
	stop_fake
	: >"$reqs"
	: >"$T/fake.out"
	python3 "$top/tests/tools/fake_engine.py" "$sock" "$reqs" "$1" \
		>"$T/fake.out" 2>"$T/fake.err" &
	fake_pid=$!
	i=0
	until grep -q ready "$T/fake.out"; do
		kill -0 "$fake_pid" 2>/dev/null || fail "fake engine did not start: $(cat "$T/fake.err")"
		i=$((i + 1))
		[ $i -lt 400 ] || fail "fake engine not ready after 20s"
		sleep 0.05
	done
}

# sp COMMAND ARGS...: stagepipe against the fake, at most 60 s
sp() {
	_cmd=$1
	shift
	run timeout -k 5 60 "$BIN" "$_cmd" --docker-host "unix://$sock" "$@"
	[ "$rc" != 124 ] || fail "stagepipe $_cmd still ran after 60s"
}

# show LABEL: what stagepipe said, for the log
show() {
	echo "=== $1: exit $rc"
	sed 's/^/  out| /' "$T/out" | tail -n 12
	sed 's/^/  err| /' "$T/err" | tail -n 12
}

requested() {
	grep -qxF -- "$1" "$reqs" || {
		echo "--- requests"; cat "$reqs"
		fail "the fake engine never got: $1"
	}
}

not_requested() {
	if grep -qF -- "$1" "$reqs"; then
		echo "--- requests"; cat "$reqs"
		fail "the fake engine got: $1"
	fi
}

# both streams: the run view and the summary go to stdout, errors to stderr
expect_said() {
	cat "$T/out" "$T/err" >"$T/all"
	expect_in all "$1"
}

# a pipeline with one pytest stage; the fake builds and runs nothing
mkdir -p "$T/app"
printf 'FROM scratch AS testing\nCOPY . /app\n' >"$T/app/Dockerfile"
cat >"$T/app/stagepipe.yml" <<'YML'
version: 1
name: faults
build:
  network: none
stages:
  - name: test
    target: testing
    pytest: [-q]
YML
rm_fake1="DELETE /v1.41/containers/fake1?force=1&v=1"

# 0. control: the fake is good enough for a passing run
fake ok
sp run -C "$T/app"
show "ok (control)"
expect_rc 0
expect_in out "pipeline faults passed"
requested "$rm_fake1"

# 1. the build stream ends (cleanly) without moby.image.id
fake build-truncated
sp build -C "$T/app"
show build-truncated
expect_rc 3
expect_in err "build stream ended without a result"
sp run -C "$T/app"
show "build-truncated (run)"
expect_rc 3
expect_said "build stream ended without a result"
not_requested "containers/create"

# 2. a line that is not JSON after valid ones: named by its number
fake build-malformed
sp build -C "$T/app"
show build-malformed
expect_rc 3
expect_in err "build stream line 6: not a JSON object: \""

# 3. the engine reads the context, then nothing (build-hang: not even
#    headers; build-stall: headers and some lines): SIGINT after ~2 s
#    ends it at once, and the build is cancelled on the daemon
for s in build-hang build-stall; do
	fake "$s"
	"$BIN" build -C "$T/app" --docker-host "unix://$sock" >"$T/out" 2>"$T/err" &
	pid=$!
	i=0
	until grep -q '^# body' "$reqs"; do
		i=$((i + 1))
		[ $i -lt 200 ] || { kill -9 $pid; fail "$s: the build context never arrived"; }
		sleep 0.05
	done
	sleep 2
	kill -0 $pid 2>/dev/null || fail "$s: stagepipe ended before SIGINT"
	kill -INT $pid
	i=0
	while kill -0 $pid 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 50 ] || { kill -9 $pid; fail "$s: still running 5s after SIGINT"; }
		sleep 0.1
	done
	rc=0
	wait $pid || rc=$?
	show "$s (SIGINT after 2s, gone in ~$((i / 10)).$((i % 10))s)"
	expect_rc 130
	expect_in err "cancelled"
	id=$(sed -n 's|^POST /v1.41/build?.*buildid=\([^&]*\).*|\1|p' "$reqs")
	[ -n "$id" ] || fail "$s: no buildid in the build request"
	requested "POST /v1.41/build/cancel?id=$id"
done

# 4. the daemon dies mid-build: the connection drops inside a chunk
#    (build-drop), or the whole engine goes away (build-exit)
for s in build-drop build-exit; do
	fake "$s"
	sp build -C "$T/app"
	show "$s"
	expect_rc 3
	expect_in err "unix://$sock"
	expect_in err "connection to the Docker engine"
	expect_not_in err "ERROR: build stream"
done

# 5. the log stream stops inside a frame, with a clean end of the HTTP
#    stream (logs-cut) or a dropped connection (logs-drop): an engine
#    error, and the container is removed all the same
fake logs-cut
sp run -C "$T/app"
show logs-cut
expect_rc 3
expect_said "log stream ended inside a frame"
requested "$rm_fake1"

fake logs-drop
sp run -C "$T/app"
show logs-drop
expect_rc 3
expect_said "unix://$sock"
requested "$rm_fake1"

# 5b. the test container was killed (engine restart): wait says 137, not
#     OOM, and there are no reports: an infrastructure error, not a test result
fake wait-137
sp run -C "$T/app"
show wait-137
expect_rc 3
expect_said "killed (exit 137) from outside"
requested "$rm_fake1"

# 6. HTTP errors before any stream
fake build-500
sp build -C "$T/app"
show build-500
expect_rc 3
expect_in err "HTTP 500"
expect_in err "something broke"
expect_not_in err "ERROR: build stream"

fake create-404
sp run -C "$T/app"
show create-404
expect_rc 3
expect_said "No such image: x"
expect_said "creating the container"
not_requested "/start"
