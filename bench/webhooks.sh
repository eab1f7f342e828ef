#!/bin/sh
# bench/webhooks.sh BIN — durable webhook ingest of `stagepipe serve`.
#
# Starts `BIN serve` (workers 0: jobs stay queued; no statuses) on a free
# loopback port with a fresh data folder on the normal disk (BENCH_DIR,
# default /var/tmp/stagepipe-bench: durable mode, WAL + synchronous=FULL,
# every 202 is on disk), then runs wrk (BENCH_CONNECTIONS connections,
# default 64; BENCH_THREADS threads, default 2; BENCH_SECONDS, default 10)
# with bench/webhooks.lua: signed GitHub push deliveries, one body signed
# once, a unique X-GitHub-Delivery per request.  Prints accepted/s, p50/p99
# latency, the answers by status and the jobs in the database afterwards
# (each 202 is a job; requests cut off in flight when wrk stops may add a
# few jobs without a counted 202).  Then the same load on GET /readyz, which
# writes nothing, as the ceiling; and the VmRSS of serve idle before and
# after the load.  Figures only, no pass/fail (the issue's goals: >= 5,000
# durable deliveries/s with p99 < 10 ms on 2 cores; idle RSS < 10 MB).
#
# BENCH_STORE=postgres: the same against PostgreSQL — a private cluster
# (tests/tools/pg_cluster.sh, fsync on) in the data folder's place, or
# the server BENCH_PG_URL names (its database must be empty or ours).
# BENCH_SERVERS=2 (with BENCH_STORE=postgres): two servers on the one
# database, one wrk each (half the connections, one thread each) at the
# same time; prints the sum of accepted/s and each one's p50/p99.
# With PostgreSQL it prints the server's durability and group-commit
# settings it ran with (fsync, synchronous_commit, commit_delay,
# commit_siblings: the private cluster keeps PostgreSQL's defaults).
# The last lines are FIGURE lines (bench/summary.sh): accepted/s (goal
# >= 5000) and p99 in ms (goal < 10); _pg, _pg2 in the names for one and
# two servers on PostgreSQL.
set -eu
BIN=$(cd "$(dirname "${1:-build/stagepipe}")" && pwd)/$(basename "${1:-build/stagepipe}")
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
SECS=${BENCH_SECONDS:-10}
BASE_DIR=${BENCH_DIR:-/var/tmp/stagepipe-bench}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

command -v wrk >/dev/null 2>&1 || { echo "webhooks.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
command -v sqlite3 >/dev/null 2>&1 || { echo "webhooks.sh: sqlite3 not found" >&2; exit 1; }

mkdir -p "$BASE_DIR"
W=$(mktemp -d "$BASE_DIR/webhooks.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	[ -n "${pgdir:-}" ] && "$top/tests/tools/pg_cluster.sh" stop "$pgdir"
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(bench_port)

SECRET=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export STAGEPIPE_BENCH_SECRET="$SECRET"
git init -q --bare "$W/app.git"
bench_store "$W"
cat >"$W/serve.yml" <<EOF
listen: 127.0.0.1:$port
data: $W/data
$store
workers: 0
repos:
  - name: app
    url: file://$W/app.git
    forge: github
    secret_env: STAGEPIPE_BENCH_SECRET
    cancel_superseded: false
EOF

"$BIN" serve -c "$W/serve.yml" 2>"$W/serve.log" &
pid=$!
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "webhooks.sh: serve did not start:" >&2
		cat "$W/serve.log" >&2
		exit 1
	fi
	sleep 0.1
done
sleep 1
rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")

# one push body, signed once
"$PY" "$top/tests/tools/sign_hook.py" --forge github --secret "$SECRET" --ref main \
	--sha 0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c --body-out "$W/body.json" >"$W/headers"
sed -n 's/^X-Hub-Signature-256: //p' "$W/headers" >"$W/sig"
[ -s "$W/sig" ] || { echo "webhooks.sh: no signature made" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
	-H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: bench-warmup' \
	-H "X-Hub-Signature-256: $(cat "$W/sig")" --data-binary "@$W/body.json" \
	"http://127.0.0.1:$port/hooks/app")
[ "$code" = 202 ] || { echo "webhooks.sh: a signed delivery got HTTP $code" >&2; cat "$W/serve.log" >&2; exit 1; }

ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
# latency percentiles from wrk --latency ("50%  1.23ms") in microseconds
pct() {
	awk -v p="$1" '$1 == p {
		v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		if (u == "us") v = v; else if (u == "ms") v = v * 1000; else if (u == "s") v = v * 1000000
		print v }' "$2"
}

echo "stagepipe serve: $(printf '%s' "$BIN"), store ${BENCH_STORE:-sqlite}, data on $(df -P "$W" | awk 'NR==2 {print $1}') ($W)"
echo "load: wrk -t$THREADS -c$CONNS -d${SECS}s, $(wc -c <"$W/body.json") byte GitHub push, unique delivery ids"
if [ -n "$store" ]; then
	echo "postgresql $(count "SHOW server_version"): fsync=$(count "SHOW fsync")" \
		"synchronous_commit=$(count "SHOW synchronous_commit")" \
		"commit_delay=$(count "SHOW commit_delay")" \
		"commit_siblings=$(count "SHOW commit_siblings")"
fi

if [ "${BENCH_SERVERS:-1}" = 2 ]; then
	[ -n "$store" ] || { echo "webhooks.sh: BENCH_SERVERS=2 needs BENCH_STORE=postgres" >&2; exit 1; }
	port2=$(bench_port $((port + 1)))
	sed "s|^listen: .*|listen: 127.0.0.1:$port2|; s|^data: .*|data: $W/data2|" "$W/serve.yml" >"$W/serve2.yml"
	"$BIN" serve -c "$W/serve2.yml" 2>"$W/serve2.log" &
	pid2=$!
	i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port2/readyz")" = 200 ]; do
		i=$((i + 1))
		[ $i -le 100 ] || { echo "webhooks.sh: serve 2 did not start" >&2; cat "$W/serve2.log" >&2; exit 1; }
		sleep 0.1
	done
	half=$((CONNS / 2))
	echo "two servers on one PostgreSQL: wrk -t1 -c$half -d${SECS}s against each, at once"
	for k in 1 2; do
		pk=$port; [ $k = 2 ] && pk=$port2
		WEBHOOK_BODY=$W/body.json WEBHOOK_SIG=$W/sig WEBHOOK_RUN=$$-$k \
			wrk -t1 -c"$half" -d"${SECS}s" --latency -s "$top/bench/webhooks.lua" \
			"http://127.0.0.1:$pk/hooks/app" >"$W/wrk2.$k" 2>&1 &
		eval "wrk_$k=\$!"
	done
	wait "$wrk_1"; wait "$wrk_2"
	sleep 1
	total=0
	for k in 1 2; do
		n=$(awk '$1 == "status" && $2 == 202 {print $3}' "$W/wrk2.$k")
		total=$((total + ${n:-0}))
		echo "  server $k: ${n:-0} accepted, p50 $(ms "$(pct 50% "$W/wrk2.$k")")," \
			"p99 $(ms "$(pct 99% "$W/wrk2.$k")")"
	done
	awk -v n="$total" -v s="$SECS" 'BEGIN { printf "  both: %.0f accepted/s\n", n / s }'
	echo "  in the database $(count "SELECT count(*) FROM jobs") jobs," \
		"$(count "SELECT count(*) FROM deliveries") deliveries"
	p99=$(for k in 1 2; do pct 99% "$W/wrk2.$k"; done | sort -n | tail -1)
	awk -v n="$total" -v s="$SECS" 'BEGIN { printf "FIGURE webhooks_per_s_pg2 %.0f - value>=5000\n", n / s }'
	awk -v us="$p99" 'BEGIN { printf "FIGURE webhooks_p99_ms_pg2 %.2f - value<10\n", us / 1000 }'
	kill -TERM "$pid2"; wait "$pid2" || true
	exit 0
fi

WEBHOOK_BODY=$W/body.json WEBHOOK_SIG=$W/sig WEBHOOK_RUN=$$ \
	wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$top/bench/webhooks.lua" \
	"http://127.0.0.1:$port/hooks/app" >"$W/wrk.hooks" 2>&1 || {
	cat "$W/wrk.hooks" >&2
	exit 1
}
sleep 1
n202=$(awk '$1 == "status" && $2 == 202 {print $3}' "$W/wrk.hooks")
n202=${n202:-0}
secs=$(awk '/requests in/ { for (i = 1; i <= NF; i++) if ($i == "in") { s = $(i + 1); sub(/,$/, "", s) } }
	END { u = s; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", s)
	      if (u == "ms") s = s / 1000; else if (u == "m") s = s * 60; print s }' "$W/wrk.hooks")
jobs=$(count "SELECT count(*) FROM jobs")
# what the server itself counted as accepted (202s it sent, in flight or not)
srv202=$(curl -s "http://127.0.0.1:$port/metrics" |
	awk '/^stagepipe_deliveries_total\{/ && /outcome="accepted"/ {n += $NF} END {print n + 0}')
deliv=$(count "SELECT count(*) FROM deliveries")
echo
echo "POST /hooks/app (durable: each 202 after its commit)"
awk -v n="$n202" -v s="$secs" 'BEGIN { printf "  accepted/s      %.0f (%d accepted in %.2f s)\n", n / s, n, s }'
echo "  latency p50     $(ms "$(pct 50% "$W/wrk.hooks")")"
echo "  latency p99     $(ms "$(pct 99% "$W/wrk.hooks")")"
echo "  answers         $(awk '$1 == "status" {printf "%s×%s ", $3, $2}' "$W/wrk.hooks")$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$W/wrk.hooks" || true)"
grep -E 'Socket errors' "$W/wrk.hooks" | sed 's/^ */  /' || true
echo "  in the database $jobs jobs, $deliv deliveries; 202s sent by serve (metrics): $srv202," \
	"received by wrk: $n202 + 1 warm-up (the rest were in flight when wrk stopped)"

WEBHOOK_RUN=$$ wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency \
	"http://127.0.0.1:$port/readyz" >"$W/wrk.ready" 2>&1 || { cat "$W/wrk.ready" >&2; exit 1; }
echo
echo "GET /readyz (no store write: the ceiling)"
echo "  requests/s      $(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$W/wrk.ready")"
echo "  latency p50     $(ms "$(pct 50% "$W/wrk.ready")")"
echo "  latency p99     $(ms "$(pct 99% "$W/wrk.ready")")"

sleep 2
rss_after=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
rss_peak=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
echo
echo "serve RSS: idle at start $(awk -v k="$rss_idle" 'BEGIN {printf "%.1f MB", k / 1024}')," \
	"idle after the load $(awk -v k="$rss_after" 'BEGIN {printf "%.1f MB", k / 1024}')," \
	"peak $(awk -v k="$rss_peak" 'BEGIN {printf "%.1f MB", k / 1024}')"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || echo "(serve exited $rc after SIGTERM)"
suffix=; [ -n "$store" ] && suffix=_pg
awk -v n="$n202" -v s="$secs" -v x="$suffix" \
	'BEGIN { printf "FIGURE webhooks_per_s%s %.0f - value>=5000\n", x, n / s }'
awk -v us="$(pct 99% "$W/wrk.hooks")" -v x="$suffix" \
	'BEGIN { printf "FIGURE webhooks_p99_ms%s %.2f - value<10\n", x, us / 1000 }'
