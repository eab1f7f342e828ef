#!/bin/sh
# bench/health.sh BIN — how long the example's health check takes.
#
# The example's runtime image (contrib/example-app: HEALTHCHECK every 5 s,
# start period 10 s) checked by stagepipe (a pipeline with one stage:
# target runtime, healthcheck: true, no tests, no tags; the figure is its
# "healthy after N s" line, from starting the container to healthy) vs
# Docker's own first scheduled healthy status for the same image (anchor:
# create and start a container through the API, then poll State.Health
# every 100 ms until "healthy").  BENCH_RUNS (default 3) of each,
# alternating; medians.  Goal: stagepipe < 1.5 s.
set -eu
BIN=$(cd "$(dirname "${1:-build/stagepipe}")" && pwd)/$(basename "${1:-build/stagepipe}")
top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
. "$top/bench/lib.sh"
bench_engine
W=$(mktemp -d)
cid=
cleanup() {
	[ -z "$cid" ] || curl -sS --unix-socket "$SOCK" -X DELETE "$API/containers/$cid?force=1" >/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

cp -r "$top/contrib/example-app" "$W/app"
cat >"$W/stagepipe.yml" <<YML
version: 1
name: bench-health
build:
  context: app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: health
    target: runtime
    healthcheck: true
YML
args=$(bench_buildargs)
# the same image for both, built once (the build cache makes the pipeline's
# own build of it a lookup)
tar -C "$W/app" -c . | curl -sS --unix-socket "$SOCK" -X POST -T - \
	-H 'Content-Type: application/x-tar' -H 'Expect:' \
	"$API/build?version=2&target=runtime&networkmode=none&buildargs=$args" >"$W/b"
img=$(sed -n 's/.*"moby.image.id","aux":{"ID":"\([^"]*\)".*/\1/p' "$W/b")
[ -n "$img" ] || { echo "building the runtime image failed:"; tail -3 "$W/b"; exit 1; }

now() { date +%s.%N; }
# Docker's own: seconds from the start request to State.Health "healthy"
docker_own() {
	cid=$(curl -sS --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
		-d '{"Image":"'"$img"'","Labels":{"io.stagepipe.bench":"health"},"HostConfig":{"NetworkMode":"none"}}' \
		"$API/containers/create" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
	t0=$(now)
	curl -sS --unix-socket "$SOCK" -X POST "$API/containers/$cid/start"
	while :; do
		st=$(curl -sS --unix-socket "$SOCK" "$API/containers/$cid/json" |
			python3 -c 'import json,sys; print(((json.load(sys.stdin)["State"].get("Health") or {}).get("Status")) or "none")')
		case $st in
		healthy) break ;;
		unhealthy|none) echo "Docker says $st"; exit 1 ;;
		esac
		sleep 0.1
	done
	t1=$(now)
	curl -sS --unix-socket "$SOCK" -X DELETE "$API/containers/$cid?force=1" >/dev/null
	cid=
	python3 -c "print(f'{$t1 - $t0:.2f}')"
}
stagepipe_own() {
	"$BIN" run -C "$W" --no-push >"$W/out" 2>&1 || { tail -5 "$W/out"; exit 1; }
	sed -n 's/.*healthy after \([0-9.]*\)s.*/\1/p' "$W/out" | tail -n 1
}

"$BIN" run -C "$W" --no-push >/dev/null 2>&1 || true  # warm the build cache
: >"$W/times"
i=0
while [ $i -lt "$RUNS" ]; do
	s=$(stagepipe_own)
	d=$(docker_own)
	echo "$s $d" >>"$W/times"
	i=$((i + 1))
done
python3 - "$W/times" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
for i, (s, d) in enumerate(rows):
    print(f"run {i + 1}: stagepipe healthy after {s:5.2f} s   Docker's first healthy status {d:5.2f} s")
ms = statistics.median(r[0] for r in rows)
md = statistics.median(r[1] for r in rows)
print(f"median: stagepipe {ms:.2f} s, Docker's own {md:.2f} s   (goal: stagepipe < 1.5 s)")
print(f"FIGURE health_check {ms:.2f} {md:.2f} value<1.5")
PY
