#!/bin/sh
# bench/context_upload.sh BIN — build-context upload: stagepipe vs a raw pipe.
#
# A generated context of ~1 GB in ~50,000 files (BENCH_FILES, BENCH_MB to
# change it) is sent to POST /build of a one-line Dockerfile twice, in one
# run on the same engine:
#   raw:       tar -c DIR | curl --unix-socket SOCK --data-binary @- .../build
#   stagepipe: stagepipe build -C DIR (context tarred while it is sent)
# and prints seconds, MB/s, the ratio and stagepipe's peak RSS.
# BENCH_RUNS pairs (default 3), alternating which goes first; medians.
# Needs an engine: eval "$(contrib/engine.sh up)" first (or this starts it).
set -eu
BIN=$(cd "$(dirname "${1:-build/stagepipe}")" && pwd)/$(basename "${1:-build/stagepipe}")
top=$(cd "$(dirname "$0")/.." && pwd)
FILES=${BENCH_FILES:-50000}
MB=${BENCH_MB:-1000}
DIR=${BENCH_DIR:-/var/tmp/stagepipe-bench}/ctx-$FILES-$MB

. "$top/bench/lib.sh"
bench_engine

if [ ! -f "$DIR/.complete" ]; then
	echo "generating $FILES files, $MB MB in $DIR ..." >&2
	rm -rf "$DIR"
	mkdir -p "$DIR"
	python3 - "$DIR" "$FILES" "$MB" <<'PY'
import os, sys
d, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = mb * 1024 * 1024 // n
block = os.urandom(1 << 20)
for i in range(n):
    sub = os.path.join(d, "data", "d%03d" % (i % 500))
    if i < 500:
        os.makedirs(sub, exist_ok=True)
    off = (i * 7919) % ((1 << 20) - size) if size < (1 << 20) else 0
    with open(os.path.join(sub, "f%06d.bin" % i), "wb") as f:
        f.write(block[off:off + size])
PY
	printf 'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n' >"$DIR/Dockerfile"
	cat >"$DIR/stagepipe.yml" <<YML
version: 1
name: bench
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - { name: build, target: "" }
YML
	sed -i 's/target: ""/target: bench/' "$DIR/stagepipe.yml"
	sed -i 's/^FROM ${BASE_IMAGE}$/FROM ${BASE_IMAGE} AS bench/' "$DIR/Dockerfile"
	touch "$DIR/.complete"
fi
bytes=$(du -sb --exclude=.complete "$DIR" | cut -f1)
nfiles=$(find "$DIR" -type f | wc -l)
echo "context: $nfiles files, $((bytes / 1048576)) MB"

now() { date +%s.%N; }
args=$(bench_buildargs)
RUNS=${BENCH_RUNS:-3}

raw() {
	tar -C "$DIR" -c . | curl -sS --unix-socket "$SOCK" -X POST \
		-H 'Content-Type: application/x-tar' -H 'Expect:' -T - \
		"http://localhost/v1.41/build?version=2&target=bench&networkmode=none&buildargs=$args" \
		>"$DIR/../raw.out"
	grep -q moby.image.id "$DIR/../raw.out" || { echo "raw build failed:"; tail -3 "$DIR/../raw.out"; exit 1; }
}
sp() {
	/usr/bin/time -f '%M' -o "$DIR/../rss" "$BIN" build -q -C "$DIR" >/dev/null
}

# warm the page cache once so both see the same state
tar -C "$DIR" -c . >/dev/null
: >"$DIR/../times"
i=0
while [ $i -lt "$RUNS" ]; do
	# alternate which goes first, so neither always pays for the other
	if [ $((i % 2)) = 0 ]; then
		t0=$(now); raw; t1=$(now); sp; t2=$(now)
		echo "raw-first $t0 $t1 $t2 $(cat "$DIR/../rss")" >>"$DIR/../times"
	else
		t0=$(now); sp; t1=$(now); raw; t2=$(now)
		echo "sp-first $t0 $t1 $t2 $(cat "$DIR/../rss")" >>"$DIR/../times"
	fi
	i=$((i + 1))
done

python3 - "$DIR/../times" "$bytes" <<'PY2'
import statistics, sys
rows = []
for l in open(sys.argv[1]):
    order, t0, t1, t2, rss = l.split()
    a, b = float(t1) - float(t0), float(t2) - float(t1)
    rows.append((a, b, float(rss)) if order == "raw-first" else (b, a, float(rss)))
mb = int(sys.argv[2]) / 1048576
for i, (raw, sp, rss) in enumerate(rows):
    print(f"run {i + 1}: raw pipe {raw:6.2f} s ({mb / raw:6.1f} MB/s)   stagepipe {sp:6.2f} s ({mb / sp:6.1f} MB/s)")
raw = statistics.median(r[0] for r in rows)
sp = statistics.median(r[1] for r in rows)
print(f"median raw pipe (tar | curl): {raw:6.2f} s  {mb / raw:7.1f} MB/s")
print(f"median stagepipe build:       {sp:6.2f} s  {mb / sp:7.1f} MB/s")
print(f"throughput ratio (stagepipe / raw): {raw / sp:.2f}   (goal >= 0.90)")
print(f"stagepipe peak RSS: {max(r[2] for r in rows) / 1024:.1f} MB   (goal < 30 MB)")
# seconds for the figure: throughput ratio >= 0.90 is time ratio <= 1/0.90
print(f"FIGURE context_upload {sp:.2f} {raw:.2f} ratio<=1.11")
PY2
