# The whole pipeline on the real engine and registry: test, promote
# (health check, push), --json, --clean, nothing pushed on failure.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}" "${REGISTRY:?needs contrib/engine.sh up}"

uniq=$$-$(date +%s)

# $T/$1: a git repository with the example app and a test + promote pipeline
# pushing to $REGISTRY/$2
repo() {
	rm -rf "$T/$1"
	mkdir -p "$T/$1"
	cp -r "$top/contrib/example-app/." "$T/$1/"
	cat >"$T/$1/stagepipe.yml" <<YML
version: 1
name: $1
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: test
    target: testing
    pytest: [-q, --cov=app]
    coverage: { min: 80 }
  - name: promote
    target: runtime
    needs: [test]
    tags: ["\${env.REGISTRY}/$2:\${GIT_SHORT_SHA}", "\${env.REGISTRY}/$2:latest"]
    push: true
    healthcheck: { timeout: 60s }
YML
	(cd "$T/$1" && git init -q && git add -A &&
		git -c user.email=ci@example.com -c user.name=ci commit -qm "initial") ||
		fail "cannot make the repository"
}

tags_of() {
	curl -s "http://$REGISTRY/v2/$1/tags/list"
}

# 1. the whole pipeline passes; the registry then holds ${GIT_SHORT_SHA}
repo pass "sp-pass-$uniq"
sha=$(cd "$T/pass" && git rev-parse --short=7 HEAD)
run "$BIN" run -C "$T/pass"
expect_rc 0
expect_in out "healthy after"
expect_in out "pushed $REGISTRY/sp-pass-$uniq:$sha@sha256:"
tags_of "sp-pass-$uniq" >"$T/tags"
grep -q "\"$sha\"" "$T/tags" || { cat "$T/tags"; fail "registry lacks tag $sha"; }
grep -q '"latest"' "$T/tags" || fail "registry lacks tag latest"
registry_lists "sp-pass-$uniq" || fail "catalog lacks the repository"

# 2. pushing the same image again: the registry already has every layer
run "$BIN" run -C "$T/pass" --stage promote
expect_rc 0
expect_in out "already had every layer"

# 3. a failing test: exit 1, the promote stage skipped, nothing pushed
repo failing "sp-fail-$uniq"
printf 'def test_broken():\n    assert 1 == 2\n' >"$T/failing/tests/test_zz_broken.py"
(cd "$T/failing" && git add -A && git -c user.email=ci@example.com -c user.name=ci commit -qm broken)
run "$BIN" run -C "$T/failing"
expect_rc 1
expect_in out "promote skipped"
tags_of "sp-fail-$uniq" | grep -q '"tags":\[' && fail "something was pushed after a failing test"

# 4. an image whose HEALTHCHECK fails is not pushed
repo sick "sp-sick-$uniq"
sed -i 's|^HEALTHCHECK .*|HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=2 \\|; s|CMD \["python", "-c", "import sys, urllib.request.*|CMD ["python", "-c", "import sys; print(\\"db unreachable\\"); sys.exit(1)"]|' "$T/sick/Dockerfile"
grep -q 'db unreachable' "$T/sick/Dockerfile" || fail "could not break the HEALTHCHECK"
(cd "$T/sick" && git add -A && git -c user.email=ci@example.com -c user.name=ci commit -qm sick)
run "$BIN" run -C "$T/sick"
expect_rc 1
expect_in out "health check failed: unhealthy"
expect_in out "nothing was pushed"
expect_in out "db unreachable"
tags_of "sp-sick-$uniq" | grep -q '"tags":\[' && fail "an unhealthy image was pushed"

# 5. --json: every line is JSON; stage results, test counts, coverage
run "$BIN" run -C "$T/pass" --json --no-push
expect_rc 0
python3 - "$T/out" <<'PY' || fail "--json output is wrong"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
fin = {e["stage"]: e for e in events if e["event"] == "stage_finished"}
assert fin["test"]["result"] == "passed", fin
assert fin["test"]["tests"]["passed"] == 17 and fin["test"]["tests"]["failed"] == 0, fin
assert fin["test"]["coverage"] == 100, fin
assert fin["promote"]["result"] == "passed", fin
assert events[-1]["event"] == "pipeline_finished" and events[-1]["result"] == "passed"
PY

# 6. --clean builds the committed tree: an uncommitted failing test is absent
printf 'def test_uncommitted():\n    assert False\n' >"$T/pass/tests/test_zz_local.py"
run "$BIN" run -C "$T/pass" --no-push
expect_rc 1
run "$BIN" run -C "$T/pass" --no-push --clean
expect_rc 0
expect_in out "17 passed"

# 7. wrong registry password: exit 3, the registry named, no password shown
start_auth_registry ci-user "right-$uniq-Pw"
sed -i "s|\${env.REGISTRY}/sp-pass|$areg/sp-pass|g" "$T/pass/stagepipe.yml"
rm -f "$T/pass/tests/test_zz_local.py"
mkdir -p "$T/nocfg"
run env DOCKER_CONFIG="$T/nocfg" STAGEPIPE_REGISTRY_USER=ci-user \
	STAGEPIPE_REGISTRY_PASSWORD="wrong-$uniq-Pw" "$BIN" run -C "$T/pass"
expect_rc 3
expect_in out "registry $areg"
expect_not_in out "wrong-$uniq-Pw"
expect_not_in err "wrong-$uniq-Pw"
run env DOCKER_CONFIG="$T/nocfg" STAGEPIPE_REGISTRY_USER=ci-user \
	STAGEPIPE_REGISTRY_PASSWORD="right-$uniq-Pw" "$BIN" run -C "$T/pass" --stage promote
expect_rc 0
expect_in out "pushed $areg/sp-pass-$uniq:"
