# stagepipe validate / help / --version as a user runs them (no engine).
. "$(dirname "$0")/lib.sh"

run "$BIN" validate -f "$top/pipelines/fastapi.yml"
expect_rc 0
expect_in out 'pipeline "fastapi-app" is valid, 2 stages'
expect_in out '1. test'
expect_in out '2. promote'

# a typo: file:line:col, the key, a suggestion, exit 2
sed 's/timeout: 15m/timout: 15m/' "$top/pipelines/fastapi.yml" >"$T/typo.yml"
line=$(grep -n 'timout:' "$T/typo.yml" | cut -d: -f1)
run "$BIN" validate -f "$T/typo.yml"
expect_rc 2
expect_in err "$T/typo.yml:$line:5: unknown key \"timout\" in stage \"test\"; did you mean \"timeout\"?"

# default file name, from the current folder
cp "$top/pipelines/fastapi.yml" "$T/stagepipe.yml"
(cd "$T" && "$BIN" validate -q) || fail "validate with the default file name"

# missing file
run "$BIN" validate -f "$T/nope.yml"
expect_rc 2
expect_in err "nope.yml: cannot open: No such file or directory"

# a 1 MB alias bomb is refused quickly and in little memory
awk 'BEGIN {
	print "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"
	for (i = 1; i < 30; i++) {
		printf "a%d: &a%d [", i, i
		for (j = 0; j < 10; j++) printf "%s*a%d", (j ? ", " : ""), i - 1
		print "]"
	}
	for (i = 0; i < 14000; i++) printf "# padding %070d\n", i
}' >"$T/bomb.yml"
size=$(wc -c <"$T/bomb.yml")
[ "$size" -gt 1000000 ] || fail "bomb is only $size bytes"
if command -v /usr/bin/time >/dev/null 2>&1; then
	run /usr/bin/time -f '%e %M' "$BIN" validate -f "$T/bomb.yml"
	expect_rc 2
	expect_in err "alias bomb"
	set -- $(tail -n 1 "$T/err")
	echo "alias bomb: ${1}s, ${2} KB peak"
	[ "${2%%.*}" -lt 65536 ] || fail "alias bomb used ${2} KB"
else
	run "$BIN" validate -f "$T/bomb.yml"
	expect_rc 2
	expect_in err "alias bomb"
fi

# usage errors exit 2
run "$BIN" validate --frobnicate
expect_rc 2
run "$BIN" frobnicate
expect_rc 2
expect_in err 'no such command "frobnicate"'
run "$BIN"
expect_rc 2

run "$BIN" --version
expect_rc 0
expect_in out "stagepipe "
expect_in out "libgit2"

run "$BIN" help validate
expect_rc 0
expect_in out "usage: stagepipe validate"
