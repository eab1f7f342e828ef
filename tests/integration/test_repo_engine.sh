# stagepipe run --repo URL [--ref REF]: the example pipeline built from a
# commit of a repository (a local bare one, served as file:// and as a
# path), not from the working tree; the mirror cache reused by a second
# run; the one-line errors with their exit status.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${REGISTRY:?needs contrib/engine.sh up}"

export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git config --global user.name Test
git config --global user.email test@example.com

# an engine without a bridge network (like the private one) builds and tests
# with no network; pipelines/fastapi.yml reads this as build.network
build_network

# A repository laid out like this project: the example app and its pipeline.
mkdir -p "$T/proj/contrib" "$T/proj/pipelines"
cp -r "$top/contrib/example-app" "$T/proj/contrib/example-app"
cp "$top/pipelines/fastapi.yml" "$T/proj/pipelines/fastapi.yml"
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "example app"
git -C "$T/proj" tag -a v1.0 -m "release 1.0"
echo "# a later change" >>"$T/proj/contrib/example-app/README.md"
git -C "$T/proj" commit -qam "later change"
git clone -q --bare "$T/proj" "$T/app.git"
v1=$(git -C "$T/app.git" rev-parse --short=7 'v1.0^{commit}')
head=$(git -C "$T/app.git" rev-parse --short=7 main)

# run from a folder that is no repository and has a broken pipeline of its
# own: --repo must use neither
mkdir -p "$T/elsewhere"
echo "version: 99" >"$T/elsewhere/stagepipe.yml"
cd "$T/elsewhere"

tags() { curl -fsS "http://$REGISTRY/v2/fastapi-app/tags/list"; }

# 1. the default branch passes the example pipeline, pushed under its commit
run "$BIN" run --repo "file://$T/app.git" -f pipelines/fastapi.yml
expect_rc 0
expect_in out "17 passed"
expect_in out "pipeline fastapi-app passed"
tags | grep -q "\"$head\"" || { tags; fail "no image tagged $head in the registry"; }
[ -d "$T/cache/stagepipe/mirrors" ] || fail "no mirror under \$XDG_CACHE_HOME/stagepipe"

# 2. a tag, by path this time; the same mirror serves it
ls "$T/cache/stagepipe/mirrors" >"$T/mirrors.before"
run "$BIN" run --repo "$T/app.git" --ref v1.0 -f pipelines/fastapi.yml --no-push
expect_rc 0
expect_in out "pipeline fastapi-app passed"
expect_in out "$v1"
ls "$T/cache/stagepipe/mirrors" | cmp -s - "$T/mirrors.before" || fail "a second mirror was made"

# 3. a new commit pushed to the repository is found by the next run
(cd "$T/proj" && echo "# newer" >>contrib/example-app/README.md && git commit -qam newer &&
	git push -q "$T/app.git" main)
newer=$(git -C "$T/app.git" rev-parse --short=7 main)
run "$BIN" run --repo "file://$T/app.git" -f pipelines/fastapi.yml --no-push
expect_rc 0
expect_in out "$newer"

# 4. errors: one line each, exit 3 (2 for a malformed URL), before any build
run "$BIN" run --repo "file://$T/app.git" --ref no-such-branch -f pipelines/fastapi.yml
expect_rc 3
expect_in err "stagepipe run: no branch, tag or commit \"no-such-branch\" in $T/app.git"
[ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err"; fail "not one line"; }
run "$BIN" run --repo "$T/missing.git" -f pipelines/fastapi.yml
expect_rc 3
expect_in err "stagepipe run: no repository at $T/missing.git"
mkdir -p "$T/plain"
run "$BIN" run --repo "$T/plain" -f pipelines/fastapi.yml
expect_rc 3
expect_in err "stagepipe run: $T/plain is not a git repository"
run "$BIN" run --repo "htps://example.com/team/app.git"
expect_rc 2
expect_in err "stagepipe run: malformed repository URL"
# a pipeline file the repository does not have: a pipeline-file error
run "$BIN" run --repo "file://$T/app.git" -f pipelines/nope.yml
expect_rc 2
exit 0
