# stagepipe serve under faults (no engine: workers 0, jobs stay queued or
# are "run" by hand through the agent protocol):
#
# 1. kill -9 under webhook load, ROUNDS times (GitHub and Gitea deliveries
#    in turn): tests/tools/hook_load.py sends signed pushes with unique
#    delivery ids (and some re-sent ids) over 8 connections and records
#    every answer; the server is SIGKILLed mid-load and started again on
#    the same data folder; every delivery is sent once more (a forge's
#    redelivery); then the database must hold exactly one delivery row and
#    one job for every delivery that was ever answered 2xx, with the job
#    the answer named, no id answered 202 twice, and no other job.
# 2. a full data disk: the data folder on a small file system of its own
#    (a loop-mounted ext4 image, or tmpfs where loop devices are missing or
#    FAULT_FS=tmpfs),
#    with the log folder on a tmpfs of its own:
#    - log folder full while an agent posts a job's log lines: the server
#      stays up and answers 200, the lines are lost whole (never half a
#      line), and the next line written says how many were lost;
#    - data disk full: hooks answer 503 (disk full, logged), /readyz and
#      /healthz 503, an agent's event batch 503; nothing of a refused
#      delivery is stored;
#    - space freed, no restart: /readyz ready, the refused deliveries sent
#      again are new jobs (202), the agent's retried batch is applied once.
# STORE=postgres: the same, but the database is not on the data disk, so
# its place in part 2 takes what a user of a PostgreSQL store meets
# instead: PostgreSQL stops (pg_ctl -m immediate, as a crash would; the
# test's own cluster, not the run's shared one) and comes back, no restart
# of the server: hooks, /readyz, /healthz and the agent's batch 503 while
# it is away, nothing of a refused delivery stored, then the same recovery.
# Needs root (mount) and sqlite3 (also to compare the answers with the
# store's rows, whichever the store).
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null 2>&1 || fail "sqlite3 not found (contrib/deps.sh --engine)"
# a cluster of our own: part 2 stops it
[ "$STORE" != postgres ] || pg_private
[ "$(id -u)" = 0 ] || fail "needs root (mounts a small file system)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SIGN="$PY $top/tests/tools/sign_hook.py"
LOAD="$PY $top/tests/tools/hook_load.py"
ROUNDS=${ROUNDS:-3}

GH_SECRET=gh-$(rnd 12)
GT_SECRET=gt-$(rnd 12)
AGENT_TOKEN=ag-$(rnd 16)
export SP_GH_SECRET="$GH_SECRET" SP_GT_SECRET="$GT_SECRET" SP_AGENT_TOKEN="$AGENT_TOKEN"

srv_pid='' load_pid='' mnt_data='' mnt_logs=''
test_cleanup() {
	[ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null
	[ -n "$load_pid" ] && kill -9 "$load_pid" 2>/dev/null
	wait 2>/dev/null
	for m in $mnt_logs $mnt_data; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	true
}

# sql DB QUERY: one answer, through a connection of our own (read-only for
# SQLite)
sql() {
	if [ "$STORE" = postgres ]; then
		store_sql "$1" "$2"
	else
		sqlite3 -readonly -batch -noheader "$1" "$2"
	fi
}
# integrity DB: the SQLite file is whole (PostgreSQL keeps its own: true)
integrity() {
	[ "$STORE" = postgres ] || [ "$(sqlite3 -readonly -batch -noheader "$1" 'PRAGMA integrity_check')" = ok ]
}

config() { # config FILE PORT DATA [LEASE_TTL]
	serve_config "$1" "127.0.0.1:$2" "$3" <<EOF
workers: 0
drain_timeout: 5s
lease_ttl: ${4:-120s}
agents:
  - name: a1
    token_env: SP_AGENT_TOKEN
repos:
  - name: gh
    url: file://$T/app.git
    forge: github
    secret_env: SP_GH_SECRET
  - name: gt
    url: file://$T/app.git
    forge: gitea
    secret_env: SP_GT_SECRET
EOF
}

# ---- 1. kill -9 under load ---------------------------------------------

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
DB=$T/data/stagepipe.db
config "$T/a.yml" "$PORT" "$T/data"

# check_answers FILE...: what the load generator saw, over all its files:
# no answer other than 2xx or none (000), every id answered 202 at most
# once, all 2xx answers of one id name one job
check_answers() {
	awk '$2 !~ /^(2..|000)$/ { print "unexpected answer: " $0; bad = 1 }
	     $2 == "202" { if (++acc[$1] > 1) { print "202 twice: " $1; bad = 1 } }
	     $2 ~ /^2/ { if (($1 in job) && job[$1] != $3) {
	                     print "two jobs for " $1 ": " job[$1] " and " $3; bad = 1 }
	                 job[$1] = $3 }
	     END { exit bad }' "$@" >"$T/answers.bad" ||
		{ head -20 "$T/answers.bad"; fail "the answers under load are inconsistent"; }
}

# check_store: the database against every 2xx answer so far
check_store() {
	for f in "$T"/load.*; do
		case $f in *.err | *.ids) continue ;; esac
		r=${f##*/load.}
		r=${r%%.*}
		awk -v repo="$(cat "$T/repo.$r")" '$2 ~ /^2/ { print repo "," $1 "," $3 "," $4 }' "$f"
	done | sort -u >"$T/acked.csv"
	nacked=$(wc -l <"$T/acked.csv")
	# the store's rows, compared in a database of sqlite3's own (the same
	# check for either store)
	sql "$DB" "SELECT repo, id, job_id FROM deliveries" >"$T/deliveries.psv" ||
		fail "could not read the deliveries"
	sql "$DB" "SELECT id, sha FROM jobs" >"$T/jobs.psv" || fail "could not read the jobs"
	sqlite3 -batch -noheader :memory: >"$T/check.out" 2>&1 <<EOF || { cat "$T/check.out"; fail "sqlite3 check failed"; }
CREATE TABLE deliveries (repo TEXT, id TEXT, job_id INTEGER);
CREATE TABLE jobs (id INTEGER, sha TEXT);
.separator |
.import $T/deliveries.psv deliveries
.import $T/jobs.psv jobs
.separator ,
UPDATE deliveries SET job_id = NULL WHERE job_id = '';
CREATE TEMP TABLE acked (repo TEXT, id TEXT, job INTEGER, sha TEXT);
.import --csv --schema temp $T/acked.csv acked
SELECT 'missing delivery or other job: ' || a.repo || ' ' || a.id || ' job ' || a.job
  FROM temp.acked a LEFT JOIN deliveries d ON d.repo = a.repo AND d.id = a.id
  WHERE d.job_id IS NULL OR d.job_id <> a.job;
SELECT 'job of another commit: ' || a.id || ' job ' || a.job
  FROM temp.acked a LEFT JOIN jobs j ON j.id = a.job WHERE j.sha IS NULL OR j.sha <> a.sha;
SELECT 'two jobs for one commit: ' || sha FROM jobs GROUP BY sha HAVING count(*) > 1;
SELECT 'a job without its delivery: ' || id FROM jobs
  WHERE id NOT IN (SELECT job_id FROM deliveries WHERE job_id IS NOT NULL);
SELECT 'deliveries ' || (SELECT count(*) FROM deliveries) || ', jobs '
  || (SELECT count(*) FROM jobs) || ', answered 2xx ' || (SELECT count(*) FROM temp.acked);
EOF
	if grep -v '^deliveries ' "$T/check.out" | grep -q .; then
		head -20 "$T/check.out"
		fail "the database does not match the answers"
	fi
	grep -qx "deliveries $nacked, jobs $nacked, answered 2xx $nacked" "$T/check.out" ||
		fail "counts differ: $(cat "$T/check.out") (want $nacked of each)"
}

round=0
while [ "$round" -lt "$ROUNDS" ]; do
	round=$((round + 1))
	if [ $((round % 2)) = 1 ]; then
		repo=gh forge=github secret=$GH_SECRET
	else
		repo=gt forge=gitea secret=$GT_SECRET
	fi
	echo "$repo" >"$T/repo.$round"
	out=$T/load.$round
	: >"$out"
	serve_up "$T/a.yml" "$BASE"
	$LOAD --url "$BASE/hooks/$repo" --forge "$forge" --secret "$secret" --out "$out" \
		--threads 8 --seconds 120 2>"$out.err" &
	load_pid=$!
	# a few hundred answers in, then a random moment later: SIGKILL
	want=$((200 + $(od -An -N1 -tu1 /dev/urandom | tr -d ' ') * 4))
	i=0
	while [ "$(wc -l <"$out")" -lt "$want" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || fail "round $round: the load made $(wc -l <"$out") answers in 30 s"
		sleep 0.1
	done
	kill -9 "$srv_pid"
	wait "$srv_pid" 2>/dev/null
	srv_pid=
	sleep 0.2
	kill -TERM "$load_pid"
	wait "$load_pid" || fail "round $round: hook_load failed: $(cat "$out.err")"
	load_pid=
	n2xx=$(awk '$2 ~ /^2/' "$out" | wc -l)
	# in flight at the kill: sent, never answered (not: refused afterwards)
	n000=$(awk '$2 == "000" && $3 != "refused"' "$out" | wc -l)
	[ "$n2xx" -gt 100 ] || fail "round $round: only $n2xx answers 2xx before the kill"
	check_answers "$out"

	# the same data folder again: the database opens, whole
	serve_up "$T/a.yml" "$BASE"
	integrity "$DB" || fail "round $round: integrity_check failed"
	# every delivery again, as forges redeliver after an outage
	cut -d' ' -f1 "$out" | sort -u >"$out.ids"
	$LOAD --url "$BASE/hooks/$repo" --forge "$forge" --secret "$secret" --out "$out.re" \
		--threads 8 --resend "$out.ids" 2>"$out.err" || fail "resend failed: $(cat "$out.err")"
	[ "$(wc -l <"$out.re")" = "$(wc -l <"$out.ids")" ] || fail "round $round: resend incomplete"
	awk '$2 !~ /^2/' "$out.re" >"$T/re.bad"
	[ -s "$T/re.bad" ] && { head "$T/re.bad"; fail "round $round: a redelivery was not answered 2xx"; }
	check_answers "$out" "$out.re"
	# an id answered 2xx before the kill is a duplicate now (200, same job)
	awk 'NR == FNR { if ($2 ~ /^2/) acked[$1] = 1; next }
	     ($1 in acked) && $2 != "200" { print; bad = 1 } END { exit bad }' \
		"$out" "$out.re" >"$T/re.bad" ||
		{ head "$T/re.bad"; fail "round $round: a delivery answered 2xx before the kill was taken again"; }
	check_store
	# in flight, committed, the answer lost with the server: a duplicate now
	nlost=$(awk 'NR == FNR { if ($2 == "000" && $3 != "refused") inflight[$1] = 1; next }
		     ($1 in inflight) && $2 == "200" { n++ } END { print n + 0 }' "$out" "$out.re")
	echo "round $round ($forge): $n2xx answered 2xx before kill -9, $n000 in flight" \
		"($nlost of them committed); after the restart: $(tail -1 "$T/check.out")"
	kill -TERM "$srv_pid"
	wait "$srv_pid" || fail "round $round: serve did not stop cleanly after SIGTERM"
	srv_pid=
done
grep -q 'hook.duplicate' "$T/serve.log" || fail "no duplicate was seen"
# no_complaint: nothing in serve.log a sanitizer or a crash would write
no_complaint() {
	if grep -qE 'level=(fatal|crit)|Sanitizer|runtime error' "$T/serve.log"; then
		fail "serve complained: $(grep -E 'level=(fatal|crit)|Sanitizer|runtime error' "$T/serve.log" | head -3)"
	fi
}
no_complaint

# ---- 2. a full disk ------------------------------------------------------

mkdir -p "$T/fs"
fs=ext4
if [ "${FAULT_FS:-}" != tmpfs ] && command -v mkfs.ext4 >/dev/null 2>&1 && [ -e /dev/loop-control ] &&
	truncate -s 24M "$T/fs.img" && mkfs.ext4 -q -F -m 0 "$T/fs.img" >/dev/null 2>&1 &&
	mount -o loop "$T/fs.img" "$T/fs" 2>/dev/null; then
	:
else
	fs=tmpfs
	mount -t tmpfs -o size=16m,mode=0755 tmpfs "$T/fs" || fail "cannot mount a tmpfs"
fi
mnt_data=$T/fs
DATA=$T/fs/data
mkdir -p "$DATA/logs"
mount -t tmpfs -o size=256k,mode=0750 tmpfs "$DATA/logs" || fail "cannot mount a tmpfs"
mnt_logs=$DATA/logs
DB=$DATA/stagepipe.db
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
config "$T/b.yml" "$PORT" "$DATA"
: >"$T/serve.log"
serve_up "$T/b.yml" "$BASE"

# fill DIR: takes every free block of DIR's file system
fill() {
	dd if=/dev/zero of="$1/fill.big" bs=64k 2>/dev/null
	dd if=/dev/zero of="$1/fill.small" bs=1k 2>/dev/null
	dd if=/dev/zero of="$1/fill.tiny" bs=512 2>/dev/null
	true
}
unfill() { rm -f "$1"/fill.*; }

# hook [sign_hook options]: a GitHub push to gh; sets $code and $body
hook() {
	$SIGN --url "$BASE/hooks/gh" --forge github --secret "$GH_SECRET" "$@" >"$T/hook" 2>&1 || true
	code=$(head -n 1 "$T/hook")
	body=$(tail -n +2 "$T/hook")
}
# agent PATH BODY [content type]: a call of agent a1; sets $code and $body
agent() {
	body=$(curl -s -m 10 -o - -w '\n%{http_code}' -H "Authorization: Bearer $AGENT_TOKEN" \
		-H "Content-Type: ${3:-application/json}" --data-binary "$2" "$BASE$1") || true
	code=$(printf '%s\n' "$body" | tail -n 1)
	body=$(printf '%s\n' "$body" | sed '$d')
}
logline() { printf '{"event":"log","stage":"test","stream":"stdout","line":"%s"}\n' "$1"; }
alive() { kill -0 "$srv_pid" 2>/dev/null || { tail -20 "$T/serve.log"; fail "serve died: $1"; }; }

for b in one two three; do
	hook --ref "fault-$b" --sha "$(rnd 20)"
	[ "$code" = 202 ] || fail "hook before the disk fills: $code $body"
done
agent "/api/agent/lease?wait=0" '{"agent":"a1","labels":[],"free":1}'
[ "$code" = 200 ] || fail "lease: $code $body"
job=$(printf '%s' "$body" | sed -n 's/.*"job":\([0-9]*\).*/\1/p')
epoch=$(printf '%s' "$body" | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p')
[ -n "$job" ] && [ -n "$epoch" ] || fail "lease answer: $body"
ev() { agent "/api/agent/jobs/$job/events?epoch=$epoch&seq=$1" "$2" application/x-ndjson; }
ev 1 "$(printf '%s\n%s\n' '{"event":"pipeline_started","pipeline":"p","stages":["test"]}' \
	'{"event":"stage_started","stage":"test"}'; logline l1; logline l2; logline l3)"
[ "$code" = 200 ] || fail "events 1: $code $body"
# the stage's log as the API serves it (a file, or the PostgreSQL store's
# chunks: those are appended up to 250 ms after the lines came)
LOG=$T/job.log
getlog() { curl -s -o "$LOG" "$BASE/api/jobs/$job/log?stage=test"; }
# log_is TEXT: the log is TEXT (waits up to 3 s for the store's chunks)
log_is() {
	_i=0
	while getlog; [ "$(cat "$LOG")" != "$1" ] && [ $_i -lt 30 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	[ "$(cat "$LOG")" = "$1" ]
}
log_is "$(printf 'l1\nl2\nl3')" || fail "log before the fill: $(cat "$LOG")"

# -- the log folder fills up: lines lost whole, the server goes on.  The
# long line needs a new block and is cut short by the full disk: it goes
# whole; the short ones after it still fit in the file's last block, the
# first of them after a note.  Only with SQLite: with PostgreSQL the logs
# are in the database, not in files (the database away is below)
if [ "$STORE" != postgres ]; then
fill "$DATA/logs"
long=$(head -c 6000 /dev/zero | tr '\0' x)
ev 2 "$(logline "$long"; logline l4)"
[ "$code" = 200 ] || fail "events with the log folder full: $code $body"
alive "log folder full"
grep -q 'event=job.event_failed.*No space left on device' "$T/serve.log" ||
	fail "no job.event_failed line for the lost log line"
log_is "$(printf 'l1\nl2\nl3\n[stagepipe: 1 log line lost here: No space left on device]\nl4')" ||
	fail "log with the log folder full: $(head -c 300 "$LOG")"
ev 3 "$(logline "$long"; logline "$long")"
[ "$code" = 200 ] || fail "events with the log folder full: $code $body"
unfill "$DATA/logs"
ev 4 "$(logline l5)"
[ "$code" = 200 ] || fail "events after the log folder has room: $code $body"
getlog
[ "$(tail -n 2 "$LOG")" = "$(printf '[stagepipe: 2 log lines lost here: No space left on device]\nl5')" ] ||
	fail "log after the room came back: $(tail -c 300 "$LOG")"
fi

# -- the store goes away: 503, nothing stored.  SQLite: the data disk fills
# up.  PostgreSQL: the database is not on the data disk; PostgreSQL itself
# stops (as a crash would) instead.
before_d=$(sql "$DB" 'SELECT count(*) FROM deliveries')
before_j=$(sql "$DB" 'SELECT count(*) FROM jobs')
if [ "$STORE" = postgres ]; then
	pg_halt
	why="store unavailable" body_want="store unavailable" ready_want="store unavailable"
else
	fill "$T/fs"
	why="disk full" body_want="disk is full" ready_want="store unavailable: disk full"
fi
: >"$T/refused"
n=0
while [ $n -lt 20 ]; do
	n=$((n + 1))
	id=full-$n-$(rnd 4)
	hook --ref "full-$n" --sha "$(rnd 20)" --delivery "$id"
	[ "$code" = 503 ] || fail "hook $n with the store away ($why): $code $body (wanted 503)"
	echo "$id" >>"$T/refused"
done
case $body in *"$body_want"*) ;; *) fail "503 body: $body" ;; esac
alive "store away ($why)"
grep -q 'event=hook.failed status=503 repo=gh .*reason="'"$why"'"' "$T/serve.log" ||
	fail "no hook.failed line saying $why: $(grep hook.failed "$T/serve.log" | tail -1)"
code=$(curl -s -o "$T/ready" -w '%{http_code}' "$BASE/readyz")
[ "$code" = 503 ] && grep -qx "$ready_want" "$T/ready" ||
	fail "/readyz with the store away ($why): $code $(cat "$T/ready")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
[ "$code" = 503 ] || fail "/healthz with the store away ($why): $code"
curl -s "$BASE/metrics" | grep -q 'stagepipe_deliveries_total{forge="github",outcome="unavailable"} 20' ||
	fail "metrics: $(curl -s "$BASE/metrics" | grep deliveries_total)"
ev 5 "$(logline l7; logline l8)"
[ "$code" = 503 ] || fail "events with the store away ($why): $code $body (wanted 503)"
if [ "$STORE" != postgres ]; then
	# nothing half-stored (read while the disk is still full)
	[ "$(sql "$DB" 'SELECT count(*) FROM deliveries')" = "$before_d" ] || fail "a refused delivery was stored"
	[ "$(sql "$DB" 'SELECT count(*) FROM jobs')" = "$before_j" ] || fail "a refused delivery made a job"
	integrity "$DB" || fail "integrity_check failed with the disk full"
fi

# -- the store back, no restart
if [ "$STORE" = postgres ]; then
	pg_resume
	# nothing half-stored (read before anything is sent again)
	[ "$(sql "$DB" 'SELECT count(*) FROM deliveries')" = "$before_d" ] || fail "a refused delivery was stored"
	[ "$(sql "$DB" 'SELECT count(*) FROM jobs')" = "$before_j" ] || fail "a refused delivery made a job"
else
	unfill "$T/fs"
fi
code=$(curl -s -o "$T/ready" -w '%{http_code}' "$BASE/readyz")
[ "$code" = 200 ] || fail "/readyz once the store is back: $code $(cat "$T/ready")"
n=0
while read -r id; do
	n=$((n + 1))
	hook --ref "full-$n" --sha "$(rnd 20)" --delivery "$id"
	[ "$code" = 202 ] || fail "refused delivery $id sent again: $code $body (wanted 202: new)"
	last=$id
done <"$T/refused"
hook --delivery "$last"
[ "$code" = 200 ] && case $body in *'"duplicate":true'*) true ;; *) false ;; esac ||
	fail "a delivery sent a second time after the store came back: $code $body"
[ "$(sql "$DB" 'SELECT count(*) FROM deliveries')" = $((before_d + 20)) ] ||
	fail "deliveries after the store came back: $(sql "$DB" 'SELECT count(*) FROM deliveries')"
[ "$(sql "$DB" 'SELECT count(*) FROM jobs')" = $((before_j + 20)) ] ||
	fail "jobs after the store came back: $(sql "$DB" 'SELECT count(*) FROM jobs')"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
[ "$code" = 200 ] || fail "/healthz once the store is back: $code"
# the agent's batch refused while full, sent again: applied once
ev 5 "$(logline l7; logline l8)"
[ "$code" = 200 ] || fail "events 5 sent again: $code $body"
ev 5 "$(logline l7; logline l8)"
[ "$code" = 200 ] || fail "events 5 sent a third time: $code $body"
_i=0
while getlog; [ "$(tail -n 2 "$LOG")" != "$(printf 'l7\nl8')" ] && [ $_i -lt 30 ]; do
	sleep 0.1
	_i=$((_i + 1))
done
[ "$(tail -n 2 "$LOG")" = "$(printf 'l7\nl8')" ] && [ "$(grep -c '^l7$' "$LOG")" = 1 ] ||
	fail "log after the retried batch: $(cat "$LOG")"
agent "/api/agent/jobs/$job/finish?epoch=$epoch" '{"state":"passed","exit_code":0,"seconds":1}'
[ "$code" = 200 ] || fail "finish: $code $body"
kill -TERM "$srv_pid"
wait "$srv_pid" || fail "serve did not stop cleanly after SIGTERM"
srv_pid=
if [ "$STORE" != postgres ]; then
	grep -q 'event=job.log_lost job='"$job"' lines=3 ' "$T/serve.log" ||
		fail "no job.log_lost line: $(grep log_lost "$T/serve.log")"
fi
integrity "$DB" || fail "integrity_check failed at the end"
no_complaint
echo "store away ($why; $fs): hooks 503 while away, 202 again once back; log lines lost whole and counted"

# ---- 3. PostgreSQL slow, not gone ----------------------------------------
# (PostgreSQL only: SQLite's writer gives up on a lock after its 5 s busy
# timeout and answers 503, part 2's case.)  The writer is held up longer
# than the lease TTL by a delivery waiting on a lock another session holds;
# the server's lease keeper (every second) asks to expire leases meanwhile,
# and an agent's heartbeat comes after that, while the writer is still
# held up.  Once the lock is gone the heartbeat keeps its lease: the store's
# own delay does not take a lease from an agent that called in time.
if [ "$STORE" = postgres ]; then
	PORT=$(free_port)
	BASE=http://127.0.0.1:$PORT
	config "$T/c.yml" "$PORT" "$T/cdata" 4s
	serve_up "$T/c.yml" "$BASE"
	hook --ref slow-1 --sha "$(rnd 20)"
	[ "$code" = 202 ] || fail "hook before the lock: $code $body"
	agent "/api/agent/lease?wait=0" '{"agent":"a1","labels":[],"free":1}'
	[ "$code" = 200 ] || fail "lease: $code $body"
	job=$(printf '%s' "$body" | sed -n 's/.*"job":\([0-9]*\).*/\1/p')
	epoch=$(printf '%s' "$body" | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p')
	ev 1 ""
	[ "$code" = 200 ] || fail "heartbeat before the lock: $code $body"
	store_sql "$T/cdata/stagepipe.db" \
		"BEGIN; LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT" \
		>"$T/lock.out" 2>&1 &
	lock_pid=$!
	sleep 0.3
	$SIGN --url "$BASE/hooks/gh" --forge github --secret "$GH_SECRET" --ref slow-2 \
		--sha "$(rnd 20)" >"$T/hook.slow" 2>&1 &
	slow_pid=$!
	sleep 1.7
	t0=$(date +%s%3N)
	ev 2 ""
	t1=$(date +%s%3N)
	wait "$lock_pid" || fail "the lock: $(cat "$T/lock.out")"
	wait "$slow_pid"
	[ "$(head -n 1 "$T/hook.slow")" = 202 ] || fail "the delivery that waited on the lock: $(cat "$T/hook.slow")"
	[ $((t1 - t0)) -ge 2000 ] || fail "the heartbeat did not wait for the writer ($((t1 - t0)) ms): no stall to test"
	[ "$code" = 200 ] || fail "a heartbeat that waited $((t1 - t0)) ms on a held-up writer lost its lease: $code $body"
	ev 3 ""
	[ "$code" = 200 ] || fail "the heartbeat after the stall: $code $body"
	grep -q "event=lease.expired" "$T/serve.log" && fail "a lease expired: $(grep lease.expired "$T/serve.log")"
	kill -TERM "$srv_pid"
	wait "$srv_pid" || fail "serve did not stop cleanly after SIGTERM"
	srv_pid=
	echo "PostgreSQL slow: a heartbeat waited $((t1 - t0)) ms behind a lock held past the lease TTL and kept its lease"
fi
echo "PASS test_serve_faults"
