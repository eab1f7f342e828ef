# Faults on a REAL engine (issue 12): dockerd killed during a build and
# during the test stage, the registry stopped during a push, the engine's
# disk full during a build, stagepipe itself kill -9'ed mid-test then
# `stagepipe prune`.  Each ends with exit 3, one clear line saying why, and
# no container labelled io.stagepipe.job once the engine is back.
#
# The engine killed or filled here is a PRIVATE dockerd (lib_engine.sh) with
# its data-root on a small loop-mounted ext4, and the registry stopped is a
# private docker-registry: the shared ones of contrib/engine.sh stay up.
# The shared engine only lends its base image ($BASE_IMAGE).
# FAULTS="a b" runs only those (a build, b test, c push, d disk, e kill -9).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_engine.sh"
: "${BIN:?set BIN}" "${top:?set top}" "${BASE_IMAGE:?needs contrib/engine.sh up}"
[ "$(id -u)" = 0 ] || fail "needs root (dockerd, losetup, mount)"
FAULTS=${FAULTS:-a b c d e}

test_cleanup() {
	[ -z "${sp_pid:-}" ] || kill -9 "$sp_pid" 2>/dev/null || true
	reg_stop KILL
	pe_stop
}

t0=$(date +%s)
pe_start "$T/pe" 800
pe_copy_image "$BASE_IMAGE"
echo "private engine up, $BASE_IMAGE copied in $(($(date +%s) - t0))s"
export DOCKER_HOST="$PE_HOST"

# the example app, with two more build targets: one that sleeps (a fault
# during a build, at a known step) and one that writes more than the
# engine's disk holds; and a test that waits (a fault during the tests)
P=$T/p
mkdir -p "$P"
cp -r "$top/contrib/example-app" "$P/app"
# (a sleep of a length of our own, so that we can see it run: build output
# reaches a file only in blocks)
nap=$((3000 + $$ % 1000))
cat >>"$P/app/Dockerfile" <<DF

FROM testing AS slowbuild
RUN echo "sp-fault: build step sleeping" && sleep $nap

FROM testing AS fillbuild
RUN dd if=/dev/zero of=/tmp/fill bs=1M count=4096
DF
cat >"$P/app/tests/test_zz_wait.py" <<'PY'
import os, sys, time
def test_waits():
    if os.environ.get("SP_FAULT_WAIT") != "1":
        return
    print("sp-fault: test waiting", flush=True)
    sys.stdout.flush()
    time.sleep(300)
PY

# pipeline STAGE-YAML: $P/stagepipe.yml with that one stage
pipeline() {
	cat >"$P/stagepipe.yml" <<YML
version: 1
name: faults-$$
build:
  context: app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
$1
YML
}
TEST_STAGE='  - name: test
    target: testing
    pytest: [-s, -q, -p, no:cacheprovider]
    env: { SP_FAULT_WAIT: "1" }'

# start [ARGS]: stagepipe run in the background (out/err in $T), pid in $sp_pid
start() {
	"$BIN" run -C "$P" "$@" >"$T/out" 2>"$T/err" &
	sp_pid=$!
}

# wait_for TEXT SECONDS: until stagepipe's output has TEXT
wait_for() {
	_i=0
	until grep -qF -- "$1" "$T/out" "$T/err" 2>/dev/null; do
		kill -0 "$sp_pid" 2>/dev/null || { show "ended early"; fail "stagepipe ended before: $1"; }
		_i=$((_i + 1))
		[ "$_i" -lt $(($2 * 10)) ] || { show "timeout"; fail "no \"$1\" after $2 s"; }
		sleep 0.1
	done
}

# finish SECONDS: wait for stagepipe to end (at most SECONDS), rc in $rc
finish() {
	_i=0
	while kill -0 "$sp_pid" 2>/dev/null; do
		_i=$((_i + 1))
		[ "$_i" -lt $(($1 * 10)) ] || { kill -9 "$sp_pid"; show "hang"; fail "stagepipe still ran $1 s after the fault"; }
		sleep 0.1
	done
	rc=0
	wait "$sp_pid" || rc=$?
	sp_pid=
}

show() {
	echo "=== $1: exit ${rc:-?}"
	sed 's/^/  out| /' "$T/out" | tail -n 8
	sed 's/^/  err| /' "$T/err" | tail -n 8
}

# reason TEXT: the run ends with one line saying why, with TEXT: the last
# line of the terminal view (nothing on stderr), or with --json (JSON) the
# only line on stderr
reason() {
	if [ "${JSON:-}" ]; then
		[ "$(wc -l <"$T/err")" = 1 ] || { show reason; fail "stderr is not one line"; }
		tail -n 1 "$T/out" | grep -q '"event":"pipeline_finished"' ||
			{ show reason; fail "the last JSON event is not pipeline_finished"; }
		tail -n 1 "$T/err" >"$T/last"
	else
		[ ! -s "$T/err" ] || { show reason; fail "stderr is not empty"; }
		tail -n 1 "$T/out" >"$T/last"
	fi
	expect_in last "$1"
}

no_containers() {
	n=$(pe_labelled)
	[ "$n" = 0 ] || { DOCKER_HOST=$PE_HOST docker ps -a --filter label=io.stagepipe.job; fail "$1: $n labelled containers left"; }
}

case " $FAULTS " in *" e "*)
	# e. stagepipe kill -9'ed mid-test: its container stays; prune removes it
	s=$(date +%s)
	pipeline "$TEST_STAGE"
	start
	wait_for "sp-fault: test waiting" 180
	kill -9 "$sp_pid"
	finish 10
	[ "$rc" = 137 ] || fail "e: kill -9 gave $rc"
	[ "$(pe_labelled)" = 1 ] || fail "e: wanted the killed run's container left, got $(pe_labelled)"
	run "$BIN" prune
	expect_rc 0
	expect_in out "removed "
	no_containers "e (after prune)"
	echo "e. kill -9 mid-test + prune: ok ($(($(date +%s) - s))s)"
	;;
esac

case " $FAULTS " in *" b "*)
	# b. dockerd killed while pytest runs in the test container
	s=$(date +%s)
	pipeline "$TEST_STAGE"
	start
	wait_for "sp-fault: test waiting" 180
	pe_kill
	# stagepipe waits for the engine to come back to remove its container
	wait_for "waiting up to" 30
	pe_up
	finish 60
	show b
	expect_rc 3
	reason "broke (did the engine stop or restart?)"
	expect_not_in out "could not remove"
	no_containers "b (engine back)"
	echo "b. dockerd killed during the tests: ok ($(($(date +%s) - s))s)"

	# b2. the same, but the engine stays away and Ctrl-C ends the wait:
	#     the container left is named, and prune removes it once it is back
	s=$(date +%s)
	start
	wait_for "sp-fault: test waiting" 180
	pe_kill
	wait_for "waiting up to" 30
	kill -INT "$sp_pid"
	finish 10
	show b2
	expect_rc 3
	expect_in out "left behind"
	expect_in out "stagepipe prune"
	pe_up
	run "$BIN" prune
	expect_rc 0
	expect_in out "removed "
	no_containers "b2 (after prune)"
	echo "b2. ... the engine stays away, Ctrl-C: ok ($(($(date +%s) - s))s)"
	;;
esac

case " $FAULTS " in *" a "*)
	# a. dockerd killed during a build step
	s=$(date +%s)
	pipeline '  - name: slow
    target: slowbuild
    run: "true"'
	start --json
	JSON=1
	_i=0
	until pgrep -fx "sleep $nap" >/dev/null; do
		kill -0 "$sp_pid" 2>/dev/null || { show a; fail "a: stagepipe ended before the build step"; }
		_i=$((_i + 1))
		[ "$_i" -lt 1800 ] || fail "a: the build step did not start in 180 s"
		sleep 0.1
	done
	pe_kill
	finish 60
	show a
	expect_rc 3
	reason "broke (did the engine stop or restart?)"
	JSON=
	pe_up
	no_containers "a (engine back)"
	echo "a. dockerd killed during a build: ok ($(($(date +%s) - s))s)"
	;;
esac

case " $FAULTS " in *" c "*)
	# c. the registry stopped while the promote stage pushes
	s=$(date +%s)
	reg_start "$T/reg"
	pipeline "  - name: promote
    target: runtime
    tags: [\"$REG/faults-$$:1\"]
    push: true"
	start
	# the upload has begun once the registry holds an upload session
	_i=0
	until [ -n "$(find "$T/reg/data" -path '*_uploads*' -print -quit 2>/dev/null)" ]; do
		kill -0 "$sp_pid" 2>/dev/null || { show c; fail "c: stagepipe ended before the push began"; }
		_i=$((_i + 1))
		[ "$_i" -lt 1800 ] || fail "c: no upload after 180 s"
		sleep 0.1
	done
	reg_stop TERM
	finish 120
	show c
	expect_rc 3
	reason "$REG"
	no_containers c
	echo "c. registry stopped during a push: ok ($(($(date +%s) - s))s)"
	;;
esac

case " $FAULTS " in *" d "*)
	# d. the engine's disk (an 800 MB loop device) fills during a build step
	s=$(date +%s)
	pipeline '  - name: fill
    target: fillbuild
    run: "true"'
	start
	finish 120
	show d
	expect_rc 3
	reason "no space left on device"
	no_containers d
	echo "d. disk full during a build: ok ($(($(date +%s) - s))s)"
	;;
esac

echo "faults on a real engine: ok in $(($(date +%s) - t0))s"
