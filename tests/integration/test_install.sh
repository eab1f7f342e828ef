# `make install` into a DESTDIR, then `make uninstall`: the binary, the
# man pages (rendered by groff and man without a warning), the bash and zsh
# completions (bash -n / zsh -n, and bash's completing commands, options
# and stage names for real); the man page and the completions name every
# command and option `stagepipe help` lists; the EXAMPLE of stagepipe.yml(5)
# is a valid pipeline.  No engine needed.
. "$(dirname "$0")/lib.sh"
command -v groff >/dev/null 2>&1 || fail "groff not found (apt-get install groff-base)"

D=$T/dest
# the binary under test, never rebuilt (-o): BUILD is its folder
make -C "$top" --no-print-directory -o "$BIN" install DESTDIR="$D" PREFIX=/usr \
	BUILD="$(dirname "$BIN")" >"$T/make.out" 2>&1 || { cat "$T/make.out"; fail "make install failed"; }

SP=$D/usr/bin/stagepipe
MAN1=$D/usr/share/man/man1/stagepipe.1
MAN5=$D/usr/share/man/man5/stagepipe.yml.5
BASHC=$D/usr/share/bash-completion/completions/stagepipe
ZSHC=$D/usr/share/zsh/site-functions/_stagepipe
for f in "$SP" "$MAN1" "$MAN5" "$BASHC" "$ZSHC"; do
	[ -f "$f" ] || { find "$D" >&2; fail "not installed: ${f#$D}"; }
done
[ -x "$SP" ] || fail "the binary is not executable"
[ "$(stat -c %a "$MAN1")" = 644 ] || fail "stagepipe.1 mode $(stat -c %a "$MAN1")"
run "$SP" --version
expect_rc 0
expect_in out "stagepipe "

# 1. the man pages render without a warning (groff -ww; man --warnings)
for m in "$MAN1" "$MAN5"; do
	groff -man -ww -z "$m" 2>"$T/groff.err" || fail "groff failed on ${m#$D}"
	[ ! -s "$T/groff.err" ] || { cat "$T/groff.err"; fail "groff warns about ${m#$D}"; }
	if command -v man >/dev/null 2>&1; then
		MANWIDTH=80 man --warnings -l "$m" >"$T/man.out" 2>"$T/man.err" ||
			fail "man -l failed on ${m#$D}"
		[ ! -s "$T/man.err" ] || { cat "$T/man.err"; fail "man warns about ${m#$D}"; }
		[ -s "$T/man.out" ] || fail "man rendered nothing for ${m#$D}"
	fi
done
# the check is not blind: a bad macro and a bad escape are reported
sed 's/^\.SH NAME$/.SH NAME\n.XY bogus\nbad \\q escape/' "$MAN1" >"$T/bad.1"
groff -man -ww -z "$T/bad.1" 2>"$T/groff.err" || true
[ -s "$T/groff.err" ] || fail "groff -ww did not see a broken page"
if command -v man >/dev/null 2>&1; then
	man --where --manpath="$D/usr/share/man" stagepipe >"$T/where" 2>&1 || { cat "$T/where"; fail "man -w stagepipe"; }
	grep -qF "$MAN1" "$T/where" || fail "man -w found $(cat "$T/where")"
	man --where --manpath="$D/usr/share/man" 5 stagepipe.yml >"$T/where" 2>&1 || { cat "$T/where"; fail "man -w 5 stagepipe.yml"; }
fi
MANWIDTH=80 man -l "$MAN1" 2>/dev/null | grep -q "EXIT STATUS" || fail "no EXIT STATUS in stagepipe(1)"
MANWIDTH=80 man -l "$MAN1" 2>/dev/null | grep -q "ENVIRONMENT" || fail "no ENVIRONMENT in stagepipe(1)"

# 2. the example of stagepipe.yml(5) is a valid pipeline
sed -n '/^\.SH EXAMPLE/,/^\.EE/p' "$MAN5" | sed '1,2d;$d' | sed 's/\\-/-/g' >"$T/example.yml"
[ -s "$T/example.yml" ] || fail "no EXAMPLE in stagepipe.yml(5)"
run "$SP" validate -f "$T/example.yml"
expect_rc 0
expect_in out 'is valid, 2 stages'

# 3. every command and option of `stagepipe help` is in the man page and
#    in both completions
"$SP" help >"$T/help" 2>&1
cmds=$(sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' "$T/help")
[ -n "$cmds" ] || fail "no commands in stagepipe help"
for c in $cmds; do
	grep -q "^\.SS \"stagepipe $c\"" "$MAN1" || fail "stagepipe.1 has no section for $c"
	grep -q "^_stagepipe_commands=.*\b$c\b" "$BASHC" || fail "the bash completion lacks command $c"
	grep -q "'$c:" "$ZSHC" || fail "the zsh completion lacks command $c"
	[ "$c" = help ] && continue
	"$SP" help "$c" >"$T/h.$c" 2>&1
	for o in $(grep -oE -- '(^|[ [,|])--[a-z][a-z-]*' "$T/h.$c" | sed 's/^[^-]*//' | sort -u); do
		roff=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
		grep -q -- "$roff" "$MAN1" || fail "stagepipe.1 does not mention $c $o"
		awk -v c="$c" '$0 ~ "^\t" c "\\)" || $0 ~ "^\t" c ")", /;;/' "$BASHC" | grep -q -- "$o\b" ||
			fail "the bash completion of $c lacks $o"
		awk -v c="$c" '$0 ~ "\\(" c "\\)", /;;/' "$ZSHC" >"$T/zblock"
		# $file_opts: -f/--file, written once
		grep -q 'file_opts' "$T/zblock" && grep -F -- "'(-f --file)'" "$ZSHC" >>"$T/zblock"
		grep -q -- "$o\b" "$T/zblock" || fail "the zsh completion of $c lacks $o"
	done
done

# 4. the completion scripts: syntax, and bash completing for real
bash -n "$BASHC" || fail "bash -n $BASHC"
if command -v zsh >/dev/null 2>&1; then
	zsh -n "$ZSHC" || fail "zsh -n $ZSHC"
else
	echo "zsh not installed: zsh -n skipped" >&2
fi
complete_words() {
	# complete_words WORD... : what bash completes for the last word
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _stagepipe
		printf "%s\n" "${COMPREPLY[@]}"' sh "$BASHC" "$@"
}
[ "$(complete_words "$SP" va)" = validate ] || fail "bash: 'va' does not complete to validate"
complete_words "$SP" run --no >"$T/c"; grep -qx -- --no-push "$T/c" || fail "bash: run --no: $(cat "$T/c")"
complete_words "$SP" run -f "$top/pipelines/fastapi.yml" --stage "" | tr '\n' ' ' >"$T/c"
[ "$(cat "$T/c")" = "test promote " ] || fail "bash: --stage gives '$(cat "$T/c")'"
complete_words "$SP" build -C "$top/contrib/example-app" --target "" | sort | tr '\n' ' ' >"$T/c"
[ "$(cat "$T/c")" = "builder runtime testing " ] || fail "bash: --target gives '$(cat "$T/c")'"
[ -z "$(complete_words "$SP" run --stage "" 2>&1)" ] || fail "bash: --stage without a pipeline file"

# zsh completing for real (in a zpty, as a terminal would): commands,
# options, stage names from the pipeline file, Dockerfile targets
if command -v zsh >/dev/null 2>&1 && zsh -c 'zmodload zsh/zpty' 2>/dev/null; then
	mkdir -p "$T/zfp"
	cp "$ZSHC" "$T/zfp/"
	cat >"$T/zcomp.zsh" <<'EOF2'
# zcomp.zsh FPATH_DIR BIN_DIR LINE WANT...: types LINE and TAB in an
# interactive zsh, fails unless everything it shows has each WANT
zmodload zsh/zpty
fp=$1 bindir=$2 line=$3; shift 3
zpty z 'zsh -f -i'
zpty -w z "PROMPT='> '; path=($bindir \$path); fpath=($fp \$fpath); autoload -U compinit; compinit -u -D"
zpty -w -n z "$line"$'\t'
all= out=
for i in {1..80}; do
  while zpty -r -t z out; do all+=$out; done
  ok=1
  for w in "$@"; do [[ $all == *"$w"* ]] || ok=0; done
  (( ok )) && break
  sleep 0.1
done
zpty -d z
(( ok )) || { print -r -- "zsh showed: ${all//$'\e'\[[0-9;?]#[A-Za-z]/}"; exit 1; }
EOF2
	zc() { zsh -f "$T/zcomp.zsh" "$T/zfp" "$(dirname "$SP")" "$@" >"$T/zc.out" 2>&1 ||
		{ cat "$T/zc.out"; fail "zsh: '$1' does not complete to $2..."; }; }
	zc "stagepipe va" "stagepipe validate"
	zc "stagepipe run --no" "--no-push"
	zc "stagepipe run -f $top/pipelines/fastapi.yml --stage=" promote test
	zc "stagepipe build -C $top/contrib/example-app --target=" builder runtime testing
fi

# 5. make uninstall leaves nothing but folders
make -C "$top" --no-print-directory uninstall DESTDIR="$D" PREFIX=/usr >"$T/make.out" 2>&1 ||
	{ cat "$T/make.out"; fail "make uninstall failed"; }
left=$(find "$D" ! -type d)
[ -z "$left" ] || fail "left after uninstall: $left"
echo ok
