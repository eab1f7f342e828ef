# Stages in flight together (run --jobs, issue 14): the runtime image
# builds while the tests run and is tagged and pushed only once they
# passed; a failing test discards it (or stops its build); SIGINT with
# two stages in flight removes every container and stops the build; the
# terminal view with concurrent stages has the shape of a golden file.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}" "${REGISTRY:?needs contrib/engine.sh up}"

uniq=$$-$(date +%s)
GOLDEN=$top/tests/integration/golden/overlap_term.txt

# $T/$1: the example app with a test + promote pipeline pushing to
# $REGISTRY/$2; the runtime target gets a RUN that prints $3 (a marker)
# and sleeps $4 seconds (0: no such RUN)
app() {
	rm -rf "${T:?}/$1"
	mkdir -p "$T/$1"
	cp -r "$top/contrib/example-app/." "$T/$1/"
	if [ "$4" != 0 ]; then
		sed -i "/^FROM \${BASE_IMAGE} AS runtime/a RUN echo \"slow build $3\" \&\& sleep $4" \
			"$T/$1/Dockerfile"
		grep -q "slow build $3" "$T/$1/Dockerfile" || fail "cannot slow the runtime build"
	fi
	cat >"$T/$1/stagepipe.yml" <<YML
version: 1
name: $1
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: test
    target: testing
    pytest: [-q]
  - name: promote
    target: runtime
    needs: [test]
    tags: ["\${env.REGISTRY}/$2:latest"]
    push: true
YML
}

# slow_test DIR SECONDS PASS: a test that sleeps, then passes (1) or fails (0)
slow_test() {
	printf 'import time\ndef test_zz_slow():\n    time.sleep(%s)\n    assert %s\n' "$2" \
		"$([ "$3" = 1 ] && echo True || echo False)" >"$T/$1/tests/test_zz_slow.py"
}

# the engine's references to this run's images (tags and pushed digests),
# by name only: the same image may carry other tests' tags
test_cleanup() {
	docker images --digests --format '{{.Repository}} {{.Tag}} {{.Digest}}' 2>/dev/null |
		while read -r repo tag digest; do
			case $repo in "$REGISTRY"/sp-ovl-*-"$uniq") ;; *) continue ;; esac
			[ "$tag" = "<none>" ] || docker rmi "$repo:$tag" >/dev/null 2>&1 || true
			[ "$digest" = "<none>" ] || docker rmi "$repo@$digest" >/dev/null 2>&1 || true
		done
}

tags_of() { curl -s "http://$REGISTRY/v2/$1/tags/list"; }
labelled() { docker ps -aq --filter "label=io.stagepipe.job=$1" | wc -l; }
# the runtime build's RUN of marker $1 is running on the engine
building() { ps -eo args | grep -v grep | grep -qF "slow build $1"; }

# (a) test + promote overlap: promote starts, and its runtime image is
# built, before the test stage finished; tagged and pushed after it
app pass "sp-ovl-pass-$uniq" x 0
slow_test pass 4 1
run "$BIN" run -C "$T/pass" --json --jobs 2
expect_rc 0
python3 - "$T/out" <<'PY' || fail "the runtime build did not overlap the tests"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def at(pred):
    return next(i for i, e in enumerate(ev) if pred(e))
test_end = at(lambda e: e["event"] == "stage_finished" and e["stage"] == "test")
prom_start = at(lambda e: e["event"] == "stage_started" and e["stage"] == "promote")
built = at(lambda e: e["event"] == "log" and e["stage"] == "promote"
           and e["line"].startswith("built runtime"))
tagged = at(lambda e: e["event"] == "log" and e["stage"] == "promote"
            and e["line"].startswith("tagged "))
assert prom_start < test_end and built < test_end < tagged, (prom_start, built, test_end, tagged)
fin = {e["stage"]: e for e in ev if e["event"] == "stage_finished"}
assert fin["test"]["result"] == "passed" and fin["promote"]["result"] == "passed", fin
assert len(fin["promote"]["pushed"]) == 1, fin
# the same kinds and fields as one stage at a time
kinds = {e["event"] for e in ev}
assert kinds == {"pipeline_started", "stage_started", "log", "stage_finished",
                 "pipeline_finished"}, kinds
print(f"overlap: promote started at event {prom_start}, runtime built at {built}, "
      f"test finished at {test_end}, tagged at {tagged}")
PY
tags_of "sp-ovl-pass-$uniq" | grep -q '"latest"' || fail "the passing pipeline pushed nothing"

# --jobs 1: the old order, promote only after test
run "$BIN" run -C "$T/pass" --json --jobs 1 --no-push
expect_rc 0
python3 - "$T/out" <<'PY' || fail "--jobs 1 did not keep one stage at a time"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
seq = [(e["event"], e.get("stage")) for e in ev if e["event"] in ("stage_started", "stage_finished")]
assert seq == [("stage_started", "test"), ("stage_finished", "test"),
               ("stage_started", "promote"), ("stage_finished", "promote")], seq
PY

# (b1) the test fails after the runtime image was built: it is discarded,
# nothing tagged in the engine, nothing pushed
app failing "sp-ovl-fail-$uniq" x 0
slow_test failing 4 0
run "$BIN" run -C "$T/failing" --jobs 2
expect_rc 1
expect_in out "[promote] :: built runtime"
expect_in out "needs test, which failed: the image built ahead is discarded, nothing tagged or pushed"
expect_in out "-- promote skipped: needs test, which failed"
expect_not_in out ":: tagged"
[ -z "$(docker images -q "$REGISTRY/sp-ovl-fail-$uniq")" ] || fail "the discarded image was tagged"
tags_of "sp-ovl-fail-$uniq" | grep -q '"tags":\[' && fail "something was pushed after a failing test"

# (b2) the test fails while the runtime build still runs: the build is
# stopped (not waited for), nothing tagged or pushed
mark=fail-$uniq
app slowfail "sp-ovl-slowfail-$uniq" "$mark" 120
slow_test slowfail 3 0
t0=$(date +%s)
run "$BIN" run -C "$T/slowfail" --jobs 2
t1=$(date +%s)
expect_rc 1
expect_in out "-- promote skipped: needs test, which failed"
expect_in out "the image built ahead is discarded"
[ $((t1 - t0)) -lt 60 ] || fail "the runtime build was waited for ($((t1 - t0)) s)"
[ -z "$(docker images -q "$REGISTRY/sp-ovl-slowfail-$uniq")" ] || fail "the image was tagged"
tags_of "sp-ovl-slowfail-$uniq" | grep -q '"tags":\[' && fail "something was pushed"
i=0
while building "$mark"; do
	i=$((i + 1))
	[ $i -lt 20 ] || fail "the runtime build still runs after the test failed"
	sleep 0.5
done

# (c) SIGINT with two stages in flight (pytest running, the runtime build
# running): both stop, exit 130, no container of the job left, the build
# stopped
mark=int-$uniq
job=ovl-int-$(rnd 4)
app int "sp-ovl-int-$uniq" "$mark" 120
slow_test int 120 1
"$BIN" run -C "$T/int" --jobs 2 --job-id "$job" >"$T/out" 2>"$T/err" &
pid=$!
i=0
until [ "$(labelled "$job")" -ge 1 ] && building "$mark"; do
	i=$((i + 1))
	[ $i -lt 240 ] || { cat "$T/out"; fail "the two stages were never in flight together"; }
	sleep 0.5
done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
expect_rc 130
expect_in out "== test cancelled"
expect_in out "== promote cancelled"
[ "$(labelled "$job")" = 0 ] || { docker ps -a --filter "label=io.stagepipe.job=$job"; \
	fail "containers of the job left after SIGINT"; }
i=0
while building "$mark"; do
	i=$((i + 1))
	[ $i -lt 20 ] || fail "the runtime build still runs after SIGINT"
	sleep 0.5
done
tags_of "sp-ovl-int-$uniq" | grep -q '"tags":\[' && fail "something was pushed after SIGINT"

# (d) the terminal view (not a TTY) with three stages in flight, against
# the golden shape: each stage's lines in order under its prefix, result
# blocks whole, the summary; times, ids and versions normalised, build
# progress dropped
app golden "sp-ovl-golden-$uniq" x 0
slow_test golden 3 1  # the runtime image is built before the tests end
cat >>"$T/golden/stagepipe.yml" <<'YML'
  - name: lint
    target: testing
    run: echo "lint ok" && sleep 1 && echo "lint done"
YML
sed -i 's/^    push: true$/    push: false/' "$T/golden/stagepipe.yml"
run "$BIN" run -C "$T/golden" --jobs 3
expect_rc 0
python3 - "$T/out" "$REGISTRY" "sp-ovl-golden-$uniq" >"$T/shape" <<'PY'
import re, sys
text, registry, repo = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
stages = ["test", "promote", "lint"]
blocks = {s: [] for s in stages}
glob, cur = [], None
def norm(l):
    l = l.replace(registry, "REGISTRY").replace(repo, "REPO")
    l = re.sub(r"sha256:[0-9a-f]+", "sha256:ID", l)
    l = re.sub(r"local-[0-9a-f]+", "local-ID", l)
    l = re.sub(r"\b\d+\.\d+s\b", "N.Ns", l)
    l = re.sub(r"\b\d+(\.\d+)+\b", "V", l)
    return l
for line in text.split("\n"):
    m = re.match(r"^\[([a-z]+)\]( *) (:: |   )(.*)$", line)
    if m:
        body = m.group(4)
        if m.group(3) == "   " and (re.match(r"#\d+ ", body) or not body.strip()):
            continue  # build progress (cache state) and blank lines
        blocks[m.group(1)].append(norm(line))
        cur = None
        continue
    m = re.match(r"^(==|--) ([a-z]+) ", line)
    if m and m.group(2) in blocks:
        blocks[m.group(2)].append(norm(line))
        cur = m.group(2)
        continue
    if cur and line.startswith("   "):
        blocks[cur].append(norm(line))
        continue
    cur = None
    if line.strip():
        glob.append(re.sub(r"  +", "  ", norm(line)))
print("\n".join(glob))
for s in stages:
    print(f"## {s}")
    print("\n".join(blocks[s]))
PY
if ! diff -u "$GOLDEN" "$T/shape"; then
	echo "--- stdout"; cat "$T/out"
	[ -n "${UPDATE_GOLDEN:-}" ] && cp "$T/shape" "$GOLDEN"
	fail "the terminal view differs from $GOLDEN (UPDATE_GOLDEN=1 to take this one)"
fi
echo "ok"
