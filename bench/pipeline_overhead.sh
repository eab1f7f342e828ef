#!/bin/sh
# bench/pipeline_overhead.sh BIN — stagepipe against the raw API sequence.
#
# The example pipeline (test + promote, no push, no health check) with a
# warm build cache (a repeated run),
# run by stagepipe (its default --jobs: the runtime target builds while the
# tests run) and as the same steps done one after the other with raw
# Engine API calls (curl): build testing, create/start/wait a pytest
# container, build runtime, tag.  Alternating runs (BENCH_RUNS, default 3);
# prints each, the medians, the ratio (issue 14's goal: <= 0.70), and
# stagepipe's peak RSS; then its FIGURE line (bench/summary.sh).
#
# BENCH_CHANGE=1 (bench/pipeline_changed.sh): a source file of the app
# changes before each run of either, as in CI, so both build new images;
# also counts the containers each stagepipe run creates (one: the tests
# find their interpreter themselves, core/exec/python.h).
set -eu
CHANGE=${BENCH_CHANGE:-0}
BIN=$(cd "$(dirname "${1:-build/stagepipe}")" && pwd)/$(basename "${1:-build/stagepipe}")
top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
. "$top/bench/lib.sh"
bench_engine
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

cp -r "$top/contrib/example-app" "$W/app"
cat >"$W/stagepipe.yml" <<YML
version: 1
name: bench
build:
  context: app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: test
    target: testing
    pytest: [-q, --cov=app]
  - name: promote
    target: runtime
    needs: [test]
    tags: [bench/app:latest]
YML
args=$(bench_buildargs)

raw() {
	tar -C "$W/app" -c . | curl -sS --unix-socket "$SOCK" -X POST -T - \
		-H 'Content-Type: application/x-tar' -H 'Expect:' \
		"$API/build?version=2&target=testing&t=bench/raw:testing&networkmode=none&buildargs=$args" >"$W/b1"
	grep -q moby.image.id "$W/b1"
	id=$(curl -sS --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
		-d '{"Image":"bench/raw:testing","Cmd":["python","-m","pytest","-q","--cov=app"],"HostConfig":{"NetworkMode":"none"}}' \
		"$API/containers/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
	curl -sS --unix-socket "$SOCK" -X POST "$API/containers/$id/start"
	curl -sS --unix-socket "$SOCK" "$API/containers/$id/logs?follow=1&stdout=1&stderr=1" >/dev/null
	curl -sS --unix-socket "$SOCK" -X POST "$API/containers/$id/wait" | grep -q '"StatusCode":0'
	curl -sS --unix-socket "$SOCK" -X DELETE "$API/containers/$id?force=1"
	tar -C "$W/app" -c . | curl -sS --unix-socket "$SOCK" -X POST -T - \
		-H 'Content-Type: application/x-tar' -H 'Expect:' \
		"$API/build?version=2&target=runtime&networkmode=none&buildargs=$args" >"$W/b2"
	rid=$(sed -n 's/.*"moby.image.id","aux":{"ID":"\([^"]*\)".*/\1/p' "$W/b2")
	curl -sS --unix-socket "$SOCK" -X POST "$API/images/$rid/tag?repo=bench/raw&tag=latest"
}

now() { date +%s.%N; }
# a source change, as a commit makes (content: BuildKit ignores mtimes)
change() { [ "$CHANGE" = 0 ] || echo "# change $(now)" >>"$W/app/app/__init__.py"; }
# containers created by the stagepipe run between $1 and $2
created() {
	curl -s --unix-socket "$SOCK" -G "$API/events" --data-urlencode "since=$1" \
		--data-urlencode "until=$2" --data-urlencode \
		'filters={"type":["container"],"event":["create"],"label":["io.stagepipe.pipeline=bench"]}' |
		grep -c '"Action":"create"' || true
}
# warm both caches once
raw >/dev/null 2>&1
"$BIN" run -C "$W" --no-push >/dev/null
: >"$W/times"
i=0
while [ $i -lt "$RUNS" ]; do
	change
	t0=$(now); raw >/dev/null; t1=$(now)
	change
	t1=$(now)
	/usr/bin/time -f '%M' -o "$W/rss" "$BIN" run -C "$W" --no-push >/dev/null
	t2=$(now)
	n=-1
	if [ "$CHANGE" != 0 ]; then
		sleep 1.1  # the engine's events are listed up to a whole second
		n=$(created "$t1" "$(now)")
	fi
	echo "$t0 $t1 $t2 $(cat "$W/rss") $n" >>"$W/times"
	i=$((i + 1))
done
python3 - "$W/times" "$CHANGE" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
change = sys.argv[2] != "0"
raw = [r[1] - r[0] for r in rows]
sp = [r[2] - r[1] for r in rows]
for i, (a, b) in enumerate(zip(raw, sp)):
    made = f"   ({int(rows[i][4])} container(s) created)" if change else ""
    print(f"run {i + 1}: raw API {a:6.2f} s   stagepipe {b:6.2f} s{made}")
mr, ms = statistics.median(raw), statistics.median(sp)
print(f"median: raw API {mr:.2f} s, stagepipe {ms:.2f} s")
print(f"ratio (stagepipe / raw): {ms / mr:.3f}   (goal <= 0.70)")
print(f"stagepipe peak RSS: {max(r[3] for r in rows) / 1024:.1f} MB")
name = "pipeline_changed_vs_raw_api" if change else "pipeline_vs_raw_api"
print(f"FIGURE {name} {ms:.2f} {mr:.2f} ratio<=0.70")
PY
