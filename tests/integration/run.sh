#!/bin/sh
# tests/integration/run.sh [--sanitized] BIN [TEST...] — run every
# tests/integration/test_*.sh (or only the TESTs named: test_validate or
# test_validate.sh).
#
# Tests whose name ends in _engine.sh need a real Docker engine, registry
# and base image: contrib/engine.sh starts them (or reuses running ones)
# once for the whole run, and stops at the end only what it started
# (STAGEPIPE_KEEP_ENGINE=1 keeps them for the next run).
#
# --sanitized: BIN is built with -fsanitize=address,undefined (make
# integration-asan).  ASAN_OPTIONS and UBSAN_OPTIONS send every report of
# every stagepipe process to files in one folder (log_path), whatever the
# process's stderr is (serve's and agent's `stagepipe run` children write
# theirs to job logs): a process that leaks, overruns, or hits undefined
# behaviour leaves a file there (SANITIZER_LOGS: that folder, default a
# new temporary one).  A test after which a new file is there
# fails, and the file is printed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
sanitized=0
if [ "${1:-}" = --sanitized ]; then
	sanitized=1
	shift
fi
if [ $# -lt 1 ]; then
	echo "usage: run.sh [--sanitized] BIN [TEST...]" >&2
	exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
export BIN top

# the tests to run, as the positional parameters (paths)
if [ $# -gt 0 ]; then
	n=$#
	for t in "$@"; do
		t=$here/$(basename "$t" .sh).sh
		[ -e "$t" ] || { echo "run.sh: no such test $t" >&2; exit 2; }
		set -- "$@" "$t"
	done
	shift "$n"
else
	set -- "$here"/test_*.sh
fi

sanlogs= sanlogs_made=0
if [ "$sanitized" = 1 ]; then
	if [ -n "${SANITIZER_LOGS:-}" ]; then
		sanlogs=$SANITIZER_LOGS
		mkdir -p "$sanlogs"
	else
		sanlogs=$(mktemp -d "${TMPDIR:-/tmp}/sp-sanitizer-XXXXXX")
		sanlogs_made=1
	fi
	# log_path: one file PREFIX.PID per reporting process.  Leaks are
	# reports too (detect_leaks; LeakSanitizer writes where ASan does).
	# UBSan (the binary stops at its first error: -fno-sanitize-recover=all)
	# aborts, and handle_abort makes ASan write that abort as a report with
	# the stack (its __ubsan_handle_* frame names the kind): gcc's separate
	# libubsan ignores log_path next to libasan and prints its own line only
	# to stderr, which for a job child is a log file.  With clang's one
	# runtime the same settings put every report in the folder too.
	ASAN_OPTIONS="log_path=$sanlogs/sanitizer:detect_leaks=1:handle_abort=1"
	UBSAN_OPTIONS="log_path=$sanlogs/sanitizer:print_stacktrace=1:halt_on_error=1:abort_on_error=1"
	# what BIN was built with, for the test-only programs linked against
	# its library (tests/tools/build-driver.sh)
	SANITIZE=${SANITIZE:-address,undefined}
	export ASAN_OPTIONS UBSAN_OPTIONS SANITIZE
fi

started_engine=0
cleanup() {
	if [ "$started_engine" = 1 ] && [ "${STAGEPIPE_KEEP_ENGINE:-0}" != 1 ]; then
		"$top/contrib/engine.sh" down >&2 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_engine=0
for t in "$@"; do
	case $t in *_engine.sh) need_engine=1 ;; esac
done
if [ "$need_engine" = 1 ]; then
	if [ ! -x "$top/contrib/engine.sh" ]; then
		echo "run.sh: contrib/engine.sh is missing" >&2
		exit 1
	fi
	# An engine already up (from `make demo`, or started by hand) is
	# someone else's: reuse it and leave it running afterwards.
	already_up=0
	"$top/contrib/engine.sh" status >/dev/null 2>&1 && already_up=1
	exports=$("$top/contrib/engine.sh" up) || {
		echo "run.sh: could not start a Docker engine (contrib/engine.sh up failed)" >&2
		exit 1
	}
	[ "$already_up" = 1 ] || started_engine=1
	eval "$exports"
fi

# The sanitizer reports that came during the last test: printed, moved
# aside (so the next test starts clean); false when there were any.
sanitizer_clean() {
	[ -n "$sanlogs" ] || return 0
	found=0
	for f in "$sanlogs"/sanitizer.*; do
		[ -e "$f" ] || continue
		found=1
		printf '         sanitizer report %s:\n' "$(basename "$f")"
		sed 's/^/         | /' "$f"
		mkdir -p "$sanlogs/seen"
		mv "$f" "$sanlogs/seen/"
	done
	[ "$found" = 0 ]
}

pass=0 fail=0 failed=
for t in "$@"; do
	name=$(basename "$t" .sh)
	log=$(mktemp)
	start=$(date +%s)
	ok=1
	sh "$t" >"$log" 2>&1 || ok=0
	secs=$(($(date +%s) - start))
	if [ "$ok" = 1 ] && sanitizer_clean >"$log.san"; then
		pass=$((pass + 1))
		printf '  PASS   %s (%ss)\n' "$name" "$secs"
	else
		[ "$ok" = 1 ] || sanitizer_clean >"$log.san" || true
		fail=$((fail + 1))
		failed="$failed $name"
		if [ -s "$log.san" ]; then
			printf '  FAIL   %s (%ss): sanitizer reports\n' "$name" "$secs"
			cat "$log.san"
		else
			printf '  FAIL   %s (%ss)\n' "$name" "$secs"
		fi
		sed 's/^/         /' "$log"
	fi
	rm -f "$log" "$log.san"
done
# a process that ended after its test did (a report then shows up under
# the next test, or here after the last one)
if [ -n "$sanlogs" ]; then
	sleep 1
	if ! sanitizer_clean >"$sanlogs/late"; then
		fail=$((fail + 1))
		failed="$failed after-the-last-test"
		echo "  FAIL   sanitizer reports after the last test"
		cat "$sanlogs/late"
	fi
	rm -f "$sanlogs/late"
fi
if [ -d "$sanlogs/seen" ]; then
	echo "run.sh: sanitizer reports kept in $sanlogs/seen"
elif [ "$sanlogs_made" = 1 ]; then
	rm -rf "$sanlogs"
fi
echo "integration: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" = 0 ]
