# tests/integration/lib.sh — helpers sourced by the integration tests.
# Each test is a POSIX sh script; the first failed check ends it.

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# run CMD...: runs it, keeping stdout in $T/out, stderr in $T/err, status in $rc
run() {
	rc=0
	"$@" >"$T/out" 2>"$T/err" || rc=$?
}

expect_rc() {
	[ "$rc" = "$1" ] || {
		echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"
		fail "exit status $rc, wanted $1"
	}
}

# expect_in FILE TEXT: FILE (out or err) contains the fixed string TEXT
expect_in() {
	grep -qF -- "$2" "$T/$1" || {
		echo "--- $1"; cat "$T/$1"
		fail "$1 lacks: $2"
	}
}

expect_not_in() {
	if grep -qF -- "$2" "$T/$1"; then
		echo "--- $1"; cat "$T/$1"
		fail "$1 has: $2"
	fi
}
