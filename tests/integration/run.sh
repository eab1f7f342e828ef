#!/bin/sh
# tests/integration/run.sh BIN — run every tests/integration/test_*.sh.
#
# Tests whose name ends in _engine.sh need a real Docker engine, registry
# and base image: contrib/engine.sh starts them (or reuses running ones)
# once for the whole run, and stops at the end only what it started
# (STAGEPIPE_KEEP_ENGINE=1 keeps them for the next run).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
export BIN top

started_engine=0
cleanup() {
	if [ "$started_engine" = 1 ] && [ "${STAGEPIPE_KEEP_ENGINE:-0}" != 1 ]; then
		"$top/contrib/engine.sh" down >&2 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_engine=0
for t in "$here"/test_*_engine.sh; do
	[ -e "$t" ] && need_engine=1
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

pass=0 fail=0 failed=
for t in "$here"/test_*.sh; do
	name=$(basename "$t" .sh)
	log=$(mktemp)
	start=$(date +%s)
	if sh "$t" >"$log" 2>&1; then
		pass=$((pass + 1))
		printf '  PASS   %s (%ss)\n' "$name" "$(($(date +%s) - start))"
	else
		fail=$((fail + 1))
		failed="$failed $name"
		printf '  FAIL   %s\n' "$name"
		sed 's/^/         /' "$log"
	fi
	rm -f "$log"
done
echo "integration: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" = 0 ]
