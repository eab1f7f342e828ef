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
# The job store: a test whose header has the line `# stores: sqlite
# postgres` (the serve and agent tests) runs twice, once as it is (SQLite)
# and once more as NAME@postgres with STORE=postgres (lib_pg.sh: each of
# its servers gets a PostgreSQL database of its own); `# stores: postgres`
# marks a test that uses PostgreSQL only.  TEST@postgres runs one test that
# way; STORE=postgres in run.sh's environment runs every TEST named that
# way.  One private PostgreSQL cluster (tests/tools/pg_cluster.sh) serves
# the whole run: started before the first test that needs it, exported as
# SP_TEST_PG_URL, stopped at the end (an SP_TEST_PG_URL already set is used
# instead).
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

# stores_of TEST: the stores its `# stores:` line names ("sqlite" without one)
stores_of() {
	_s=$(sed -n 's/^# stores: *//p' "$1" | head -n 1)
	echo "${_s:-sqlite}"
}

# the tests to run, as the positional parameters: PATH or PATH@postgres
if [ $# -gt 0 ]; then
	n=$#
	for t in "$@"; do
		case $t in
		*@postgres) st=@postgres t=${t%@postgres} ;;
		*@*) echo "run.sh: unknown store in $t (only @postgres)" >&2; exit 2 ;;
		*) st= ;;
		esac
		t=$here/$(basename "$t" .sh).sh
		[ -e "$t" ] || { echo "run.sh: no such test $t" >&2; exit 2; }
		[ "${STORE:-sqlite}" = postgres ] && st=@postgres
		set -- "$@" "$t$st"
	done
	shift "$n"
else
	for t in "$here"/test_*.sh; do
		set -- "$@" "$t"
		_st=" $(stores_of "$t") "
		case $_st in
		*" sqlite "*) case $_st in *" postgres "*) set -- "$@" "$t@postgres" ;; esac ;;
		esac
	done
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

started_engine=0 pg_dir=
cleanup() {
	[ -z "$pg_dir" ] || "$top/tests/tools/pg_cluster.sh" stop "$pg_dir"
	if [ "$started_engine" = 1 ] && [ "${STAGEPIPE_KEEP_ENGINE:-0}" != 1 ]; then
		"$top/contrib/engine.sh" down >&2 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_engine=0
for t in "$@"; do
	case $t in *_engine.sh | *_engine.sh@*) need_engine=1 ;; esac
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

# pg_up: SP_TEST_PG_URL set, the run's cluster started if need be
pg_up() {
	[ -n "${SP_TEST_PG_URL:-}" ] && return 0
	[ -z "$pg_dir" ] || return 1  # tried before, and it failed
	pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/sp-pg.XXXXXX")
	SP_TEST_PG_URL=$("$top/tests/tools/pg_cluster.sh" start "$pg_dir" |
		sed -n 's/^SP_TEST_PG_URL=//p')
	[ -n "$SP_TEST_PG_URL" ] || return 1
	export SP_TEST_PG_URL
}

pass=0 fail=0 failed=
for t in "$@"; do
	store=sqlite
	case $t in *@postgres) store=postgres t=${t%@postgres} ;; esac
	name=$(basename "$t" .sh)
	[ "$store" = sqlite ] || name=$name@$store
	log=$(mktemp)
	start=$(date +%s)
	ok=1
	if [ "$store" = postgres ] || [ "$(stores_of "$t")" = postgres ]; then
		pg_up >"$log" 2>&1 || { echo "run.sh: could not start PostgreSQL" >>"$log"; ok=0; }
	fi
	if [ "$ok" = 0 ]; then
		:
	elif [ "$store" = postgres ]; then
		STORE=postgres sh "$t" >>"$log" 2>&1 || ok=0
	else
		STORE=sqlite sh "$t" >>"$log" 2>&1 || ok=0
	fi
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
