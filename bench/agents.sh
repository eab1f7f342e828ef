#!/bin/sh
# bench/agents.sh BIN — `stagepipe agent` figures: idle RSS, lease latency,
# and the jobs a second one server hands to 8 agents.
#
# A server (workers 0) on a free loopback port with a fresh data folder on
# the normal disk (BENCH_DIR, default /var/tmp/stagepipe-bench), and agents
# that run a trivial job: their --stagepipe is tests/tools/fake_run.sh (a
# one-stage pipeline that passes at once, no engine), behind a wrapper that
# notes the time its child process started.
#
#   idle RSS        VmRSS of an agent connected and long-polling, 3 s idle
#                   (goal < 5 MB), and of the server beside it
#   lease latency   BENCH_LATENCY_JOBS (default 20) pushes one at a time to
#                   one idle agent: time from the webhook's 202 to the job's
#                   child process starting (goal < 50 ms); p50 and max
#   jobs/s          BENCH_JOBS (default 400) pushes sent at once to 8 agents
#                   of capacity 1: jobs ended per second, from the first 202
#                   to the last job passed
# Figures only, no pass/fail; the last lines are FIGURE lines
# (bench/summary.sh): lease latency p90 in ms (goal < 50).
#
# BENCH_STORE=postgres: the same against PostgreSQL — a private cluster
# (tests/tools/pg_cluster.sh, fsync on) in the data folder's place, or the
# server BENCH_PG_URL names (its database must be empty or ours).
# BENCH_SERVERS=2 (with BENCH_STORE=postgres): a second server on the same
# database, and the agents connect to it while the pushes go to the first:
# every lease then waits on the first server's NOTIFY (LISTEN/NOTIFY
# across servers) instead of an in-process wake.
set -eu
BIN=$(cd "$(dirname "${1:-build/stagepipe}")" && pwd)/$(basename "${1:-build/stagepipe}")
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
BASE_DIR=${BENCH_DIR:-/var/tmp/stagepipe-bench}
NLAT=${BENCH_LATENCY_JOBS:-20}
NJOBS=${BENCH_JOBS:-400}
NAGENTS=8
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
STORE=${BENCH_STORE:-sqlite}
SERVERS=${BENCH_SERVERS:-1}
if [ "$SERVERS" = 2 ] && [ "$STORE" != postgres ]; then
	echo "agents.sh: BENCH_SERVERS=2 needs BENCH_STORE=postgres" >&2
	exit 2
fi
case $STORE in sqlite|postgres) ;; *) echo "agents.sh: BENCH_STORE is sqlite or postgres" >&2; exit 2 ;; esac
if [ "$STORE" = postgres ]; then
	command -v psql >/dev/null 2>&1 || { echo "agents.sh: psql not found" >&2; exit 1; }
else
	command -v sqlite3 >/dev/null 2>&1 || { echo "agents.sh: sqlite3 not found" >&2; exit 1; }
fi

mkdir -p "$BASE_DIR"
W=$(mktemp -d "$BASE_DIR/agents.XXXXXX")
pids=
cleanup() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	[ -n "${pgdir:-}" ] && "$top/tests/tools/pg_cluster.sh" stop "$pgdir"
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(bench_port)
BASE=http://127.0.0.1:$port

SECRET=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export STAGEPIPE_BENCH_SECRET="$SECRET"
git init -q --bare "$W/app.git"
bench_store "$W"
{
	cat <<EOF
listen: 127.0.0.1:$port
data: $W/data
$store
workers: 0
lease_ttl: 30s
repos:
  - name: app
    url: file://$W/app.git
    forge: github
    secret_env: STAGEPIPE_BENCH_SECRET
    cancel_superseded: false
agents:
EOF
	i=1
	while [ $i -le $NAGENTS ]; do
		od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$W/b$i.token"
		chmod 600 "$W/b$i.token"
		printf '  - name: b%s\n    token_file: %s\n' "$i" "$W/b$i.token"
		i=$((i + 1))
	done
} >"$W/serve.yml"

# the job process: note when it started, then the fake one-stage pipeline
cat >"$W/job.sh" <<EOF
#!/bin/sh
date +%s.%N >>"$W/starts"
FAKE_MODE=pass exec "$top/tests/tools/fake_run.sh" "\$@"
EOF
chmod 755 "$W/job.sh"
: >"$W/starts"

"$BIN" serve -c "$W/serve.yml" 2>"$W/serve.log" &
srv=$!
pids="$pids $srv"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$W/serve.log"; echo "agents.sh: serve did not start" >&2; exit 1; }
	sleep 0.1
done
ABASE=$BASE
if [ "$SERVERS" = 2 ]; then
	port2=$(bench_port $((port + 1)))
	sed "s|^listen: .*|listen: 127.0.0.1:$port2|; s|^data: .*|data: $W/data2|" "$W/serve.yml" >"$W/serve2.yml"
	"$BIN" serve -c "$W/serve2.yml" 2>"$W/serve2.log" &
	pids="$pids $!"
	ABASE=http://127.0.0.1:$port2
	i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$ABASE/readyz")" = 200 ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || { cat "$W/serve2.log"; echo "agents.sh: serve 2 did not start" >&2; exit 1; }
		sleep 0.1
	done
fi

start_agent() { # start_agent N
	SP_LOG_LEVEL=warn "$BIN" agent --server "$ABASE" --token-file "$W/b$1.token" --name "b$1" \
		--capacity 1 --stagepipe "$W/job.sh" 2>>"$W/agent$1.log" &
	pids="$pids $!"
	eval "agent$1=\$!"
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ { print $2 }' "/proc/$1/status"; }
mb() { echo "$(($1 / 1024)).$((($1 % 1024) * 10 / 1024)) MB"; }

# ---- idle RSS -------------------------------------------------------------------
start_agent 1
sleep 3
a_rss=$(rss_kb "$agent1")
a_anon=$(anon_kb "$agent1")
s_rss=$(rss_kb "$srv")


# ---- the driver: signed pushes, each its own delivery id ------------------------
"$PY" "$top/tests/tools/sign_hook.py" --forge github --secret "$SECRET" --ref main \
	--sha 0123456789abcdef0123456789abcdef01234567 --dump >"$W/req"
cat >"$W/drive.py" <<'EOF'
import http.client, sys, time, uuid, os
mode, port, n, starts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
raw = open(sys.argv[5], "rb").read()
head, body = raw.split(b"\n\n", 1)
headers = {}
for line in head.decode().splitlines():
    k, v = line.split(": ", 1)
    headers[k] = v
headers.pop("Content-Length", None)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def send():
    headers["X-GitHub-Delivery"] = str(uuid.uuid4())
    conn.request("POST", "/hooks/app", body=body, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != 202:
        sys.exit("hook: HTTP %d" % r.status)
    return time.time()
def nstarts():
    with open(starts) as f:
        return sum(1 for _ in f)
if mode == "latency":
    lat = []
    for i in range(n):
        before = nstarts()
        t = send()
        while nstarts() == before:
            time.sleep(0.0005)
        with open(starts) as f:
            start = float(f.read().split()[-1])
        lat.append((start - t) * 1000)
        time.sleep(0.2)  # the agent is idle again, long-polling
    lat.sort()
    print("%.1f %.1f %.1f" % (lat[len(lat) // 2], lat[int(len(lat) * 0.9)], lat[-1]))
else:
    t0 = time.time()
    for i in range(n):
        send()
    print("%.6f %.6f" % (t0, time.time()))
EOF

# ---- lease latency: one idle agent ------------------------------------------------
lat=$("$PY" "$W/drive.py" latency "$port" "$NLAT" "$W/starts" "$W/req")

# ---- jobs/s: 8 agents -------------------------------------------------------------
i=2
while [ $i -le $NAGENTS ]; do start_agent $i; i=$((i + 1)); done
sleep 1
done_before=$(count "SELECT count(*) FROM jobs WHERE state = 'passed'")
times=$("$PY" "$W/drive.py" burst "$port" "$NJOBS" "$W/starts" "$W/req")
t0=${times% *}
want=$((done_before + NJOBS))
i=0
while [ "$(count "SELECT count(*) FROM jobs WHERE state = 'passed'")" -lt "$want" ]; do
	i=$((i + 1))
	[ $i -lt 6000 ] || { echo "agents.sh: jobs did not finish within 10 min" >&2; exit 1; }
	sleep 0.1
done
t1=$(date +%s.%N)
other=$(count "SELECT count(*) FROM jobs WHERE state NOT IN ('passed')")
if [ -n "$store" ]; then
	spread=$(count "SELECT string_agg(n::text, ' ' ORDER BY agent) FROM (SELECT agent, count(*) AS n FROM jobs GROUP BY agent) x")
else
	spread=$(count "SELECT group_concat(n, ' ') FROM (SELECT count(*) AS n FROM jobs GROUP BY agent ORDER BY agent)")
fi
a_rss2=$(rss_kb "$agent1")

echo "agent idle RSS: $(mb "$a_rss"), of which its own (anonymous) memory $(mb "$a_anon"), the rest shared library pages (server beside it: $(mb "$s_rss"); agent after $NJOBS jobs: $(mb "$a_rss2"))"
set -- $lat
echo "store: $STORE$([ "$SERVERS" = 2 ] && echo ", two servers: pushes to one, agents on the other")"
echo "lease latency (202 -> job process started, idle agent, $NLAT jobs): p50 $1 ms, p90 $2 ms, max $3 ms"
"$PY" -c "import sys; n=$NJOBS; d=$t1-$t0; print('jobs/s with $NAGENTS agents (trivial pipeline, %d jobs): %.0f (%.2f s)' % (n, n/d, d))"
echo "jobs per agent: $spread; jobs not passed: $other"
suffix=; [ "$STORE" = postgres ] && suffix=_pg
[ "$SERVERS" = 2 ] && suffix=_pg2
echo "FIGURE lease_latency_p90_ms$suffix $2 - value<50"
