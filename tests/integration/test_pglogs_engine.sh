# A job's logs in the PostgreSQL store, read from any server (issue 15):
# two `stagepipe serve` (A and B) on one PostgreSQL store, the real engine,
# registry and base image; agent a1 knows only A, so A writes the logs.
#   1. job 1's stage prints a line every half second: B follows it live as
#      SSE (lines seen while the job runs), answers a byte range while it
#      runs, and the whole log once it ended, the same bytes as A; a stream
#      resumed with Last-Event-ID on A goes on after that line; A's data
#      folder holds no log file; 404 for a stage without a log
#   2. job 2 runs on a1 through A; A is killed (-9) in the middle, then a1
#      and its job process: B still serves job 1's log whole; job 2's lease
#      runs out, agent a2 (knows only B) runs attempt 2, whose lines go on
#      after attempt 1's (one log, offsets without a gap), and a stream on B
#      that followed job 2 from its start saw both attempts
#   3. store copy: a SQLite server's log files go into the new database,
#      whose server serves them
# stores: postgres
STORE=postgres
. "$(dirname "$0")/lib.sh"
command -v psql >/dev/null 2>&1 || fail "psql not found (contrib/deps.sh)"
engine_test_env

TAG=$(rnd 2)
PIPE=sptest-pglogs-$TAG

# ---- the repository: the example app's testing image; a stage that prints
# a line every half second ---------------------------------------------------
mkdir -p "$T/proj/contrib"
cp -r "$top/contrib/example-app" "$T/proj/contrib/example-app"
cat >"$T/proj/stagepipe.yml" <<EOF
version: 1
name: $PIPE
build:
  context: contrib/example-app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: \${env.BUILD_NETWORK:-default}
stages:
  - name: slow
    target: testing
    run: 'for i in \$(seq 1 24); do echo "slow line \$i"; sleep 0.5; done'
    timeout: 10m
EOF
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "slow lines"
git clone -q --bare "$T/proj" "$T/app.git"
C1=$(git -C "$T/app.git" rev-parse main)
# job 2: more lines, so that A can die in the middle of them
sed -i 's/seq 1 24/seq 1 50/' "$T/proj/stagepipe.yml"
git -C "$T/proj" commit -qam "more slow lines"
git -C "$T/proj" push -q "$T/app.git" main:longer
C2=$(git -C "$T/proj" rev-parse HEAD)

# ---- two servers, one store --------------------------------------------------
PA=$(free_port)
PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done
BA=http://127.0.0.1:$PA
BB=http://127.0.0.1:$PB
SECRET=sec-$(rnd 12)
TOK1=tok1-$(rnd 16)
TOK2=tok2-$(rnd 16)
export SP_APP_SECRET="$SECRET" SP_A1_TOKEN="$TOK1" SP_A2_TOKEN="$TOK2"
printf '%s\n' "$TOK1" >"$T/a1.token"
printf '%s\n' "$TOK2" >"$T/a2.token"
chmod 600 "$T/a1.token" "$T/a2.token"
DB=$T/shared/stagepipe.db   # names the shared database for store_sql
config() { # config FILE PORT DATA
	cat >"$1" <<EOF
listen: 127.0.0.1:$2
data: $3
$(store_line "$T/shared")
public_url: http://127.0.0.1:$2
workers: 0
lease_ttl: 10s
drain_timeout: 30s
job_timeout: 15m
agents:
  - name: a1
    token_env: SP_A1_TOKEN
  - name: a2
    token_env: SP_A2_TOKEN
repos:
  - name: app
    url: $T/app.git
    forge: github
    secret_env: SP_APP_SECRET
    cancel_superseded: false
EOF
}
config "$T/sa.yml" "$PA" "$T/da"
config "$T/sb.yml" "$PB" "$T/db"
grep -q '^store: "postgres' "$T/sa.yml" || fail "no PostgreSQL store in the config"
# (lease_ttl 10 s: two runs with 6 s under a loaded 2-core machine saw a
# lease run out on its own, and a job run twice where once was wanted)

sa_pid= sb_pid= slite_pid= a1_pid= a2_pid= sse1_pid= sse1j_pid= sse2_pid=
containers() { # ids of this run's containers
	curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" \
		--data-urlencode "all=1" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$PIPE\"]}" |
		jq -r '.[].Id'
}
test_cleanup() {
	for p in "$sse1_pid" "$sse1j_pid" "$sse2_pid"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
	stop_pid "$a1_pid"
	stop_pid "$a2_pid"
	stop_pid "$sa_pid"
	stop_pid "$sb_pid"
	stop_pid "$slite_pid"
	for c in $(containers); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	wait 2>/dev/null
	# PGLOGS_KEEP=DIR: the servers' and agents' logs and the streams kept there
	if [ -n "${PGLOGS_KEEP:-}" ]; then
		mkdir -p "$PGLOGS_KEEP"
		cp "$T"/*.log "$T"/sse* "$T"/whole* "$PGLOGS_KEEP"/ 2>/dev/null
	fi
	true
}
start_serve() { # start_serve a|b
	"$BIN" serve -c "$T/s$1.yml" >>"$T/serve.out" 2>>"$T/s$1.log" &
	eval "s${1}_pid=\$!"
	_b=$BA
	[ "$1" = b ] && _b=$BB
	_i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$_b/readyz")" = 200 ]; do
		kill -0 "$(eval "echo \$s${1}_pid")" 2>/dev/null || { tail -20 "$T/s$1.log"; fail "serve $1 exited at start"; }
		_i=$((_i + 1))
		[ $_i -lt 150 ] || { tail -20 "$T/s$1.log"; fail "serve $1 not ready in 15 s"; }
		sleep 0.1
	done
}
start_agent() { # start_agent NAME SERVER
	mkdir -p "$T/$1/home"
	env HOME="$T/$1/home" XDG_CACHE_HOME="$T/$1/cache" \
		"$BIN" agent --server "$2" --token-file "$T/$1.token" --name "$1" \
		--labels "linux,$1" >>"$T/$1.out" 2>>"$T/$1.log" &
	eval "${1}_pid=\$!"
}
push() { # push BASE BRANCH SHA DELIVERY: a signed GitHub push; sets $job
	$SIGN --url "$1/hooks/app" --forge github --secret "$SECRET" --ref "$2" --sha "$3" \
		--delivery "$4" >"$T/hook" 2>&1
	code=$(head -n 1 "$T/hook")
	[ "$code" = 202 ] || fail "push $2 to $1: HTTP $(cat "$T/hook")"
	job=$(tail -n +2 "$T/hook" | jq -r .job)
}
JOBS_API=$BB JOBS_LOGS="sa sb a1 a2"  # lib.sh: detail, jd, wait_final, expect_state
sse() { # sse BASE JOB OUT [LAST-EVENT-ID]: follows the slow stage's log (background)
	curl -s -N --max-time 600 -H 'Accept: text/event-stream' \
		${4:+-H "Last-Event-ID: $4"} "$1/api/jobs/$2/log?stage=slow" >"$3"
}
whole() { # whole BASE JOB OUT [STAGE]: the HTTP status
	curl -s -o "$3" -w '%{http_code}' "$1/api/jobs/$2/log?stage=${4:-slow}"
}
slow_lines() { grep -c '^slow line' "$1" 2>/dev/null || true; }
sse_data() { sed -n 's/^data: //p' "$1"; }
wait_for() { # wait_for FILE PATTERN SECONDS
	_n=$(($3 * 10))
	until grep -q "$2" "$1" 2>/dev/null; do
		_n=$((_n - 1))
		[ $_n -gt 0 ] || { logs_tail; fail "no \"$2\" in $1 after $3 s"; }
		sleep 0.1
	done
}

start_serve a
start_serve b
start_agent a1 "$BA"

# ---- 1. job 1 through A, read from B while it runs and after ---------------
push "$BA" main "$C1" d-1
j1=$job
sse "$BB" "$j1" "$T/sse1" &
sse1_pid=$!
# and the job's own log (stage _job), live on B too
curl -s -N --max-time 600 -H 'Accept: text/event-stream' "$BB/api/jobs/$j1/log?stage=_job" \
	>"$T/sse1j" &
sse1j_pid=$!
# the first lines reach B's stream while the job still runs (the image
# build comes first: up to 10 minutes on a cold engine)
wait_for "$T/sse1" '^data: slow line 3$' 600
detail "$j1"
[ "$(jd .state)" = running ] || fail "job $j1 is $(jd .state) when its third line is seen"
[ "$(jd .agent)" = a1 ] || fail "job $j1 runs on $(jd .agent), wanted a1"
grep -q '^data: slow line 24$' "$T/sse1" && fail "B's stream had every line before the job ended"
# a byte range from B while it runs
code=$(curl -s -o "$T/range1" -D "$T/range1.h" -w '%{http_code}' -H 'Range: bytes=0-9' \
	"$BB/api/jobs/$j1/log?stage=slow")
[ "$code" = 206 ] || fail "range of a running job's log from B: HTTP $code"
grep -qi '^content-range: bytes 0-9/' "$T/range1.h" || fail "no Content-Range: $(cat "$T/range1.h")"
[ "$(wc -c <"$T/range1")" = 10 ] || fail "the range is $(wc -c <"$T/range1") bytes, wanted 10"
wait "$sse1_pid" || fail "B's stream of job $j1 failed"
sse1_pid=
wait_final "$j1" 300
expect_state "$j1" passed
[ "$(jd .attempt)" = 1 ] || { grep -h "job=$j1\b" "$T/sa.log" "$T/sb.log" "$T/a1.log"; fail "job $j1 ran $(jd .attempt) times"; }
tail -n 2 "$T/sse1" | grep -q '^data: passed$' || fail "B's stream did not end with the job: $(tail -n 3 "$T/sse1")"
# the server's last note is in the log before the job is final, so a live
# stream has it before it ends
wait "$sse1j_pid" || fail "B's stream of job $j1's _job log failed"
sse1j_pid=
sse_data "$T/sse1j" | grep -q '^stagepipe serve: agent a1: passed$' ||
	fail "the live _job stream has no final note: $(sse_data "$T/sse1j" | tail -n 3)"
# the whole log from B, and from A: the same bytes; what the stream saw
[ "$(whole "$BB" "$j1" "$T/whole1.b")" = 200 ] || fail "whole log of job $j1 from B"
[ "$(whole "$BA" "$j1" "$T/whole1.a")" = 200 ] || fail "whole log of job $j1 from A"
cmp -s "$T/whole1.a" "$T/whole1.b" || fail "A and B serve different logs of job $j1"
[ "$(slow_lines "$T/whole1.b")" = 24 ] || { cat "$T/whole1.b"; jq . "$T/job.json"; logs_tail; fail "job $j1's log has $(slow_lines "$T/whole1.b") slow lines, wanted 24"; }
[ "$(head -c 10 "$T/whole1.b")" = "$(cat "$T/range1")" ] || fail "the range read is not the log's start"
sse_data "$T/sse1" | grep '^slow line' >"$T/sse1.lines"
grep '^slow line' "$T/whole1.b" | cmp -s - "$T/sse1.lines" || fail "B's stream and the log differ"
# resumed on the other server: Last-Event-ID is a byte offset in the log
id5=$(grep -B1 '^data: slow line 5$' "$T/sse1" | sed -n 's/^id: //p')
[ -n "$id5" ] || fail "no id before line 5 in the stream"
sse "$BA" "$j1" "$T/sse1r" "$id5"
[ "$(sse_data "$T/sse1r" | head -n 1)" = "slow line 6" ] ||
	fail "resumed at $id5 on A, the stream began with: $(sse_data "$T/sse1r" | head -n 1)"
tail -n 2 "$T/sse1r" | grep -q '^data: passed$' || fail "the resumed stream did not end"
# the logs are the store's: no file in A's data folder; 404 as before
[ ! -e "$T/da/logs/$j1" ] || fail "A wrote log files: $(ls -R "$T/da/logs")"
[ "$(whole "$BB" "$j1" "$T/none" nosuch)" = 404 ] || fail "a stage without a log is not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: text/event-stream' \
	"$BB/api/jobs/$j1/log?stage=nosuch")" = 404 ] || fail "SSE of a stage without a log is not 404"
[ "$(whole "$BB" "$j1" "$T/job1" _job)" = 200 ] || fail "no job log"
grep -q "attempt 1 on agent a1" "$T/job1" || fail "job log: $(cat "$T/job1")"
echo "job $j1: followed live on B, range and whole from both servers"

# ---- 2. A dies while job 2 runs; B serves; attempt 2 appends ----------------
push "$BA" longer "$C2" d-2
j2=$job
sse "$BB" "$j2" "$T/sse2" &
sse2_pid=$!
wait_for "$T/sse2" '^data: slow line 6$' 600
kill -9 "$sa_pid"
wait "$sa_pid" 2>/dev/null
sa_pid=
# a1 and its job process go too (the run's container is removed at the end)
vchild=$(pgrep -P "$a1_pid" | head -n 1)
kill -STOP "$a1_pid"
[ -n "$vchild" ] && kill -9 "$vchild"
kill -9 "$a1_pid"
wait "$a1_pid" 2>/dev/null
a1_pid=
# job 1's log lives on without A
[ "$(whole "$BB" "$j1" "$T/whole1.after")" = 200 ] || fail "B lost job $j1's log with A"
cmp -s "$T/whole1.b" "$T/whole1.after" || fail "job $j1's log changed when A died"
first=$(grep -c "^data: slow line" "$T/sse2")
start_agent a2 "$BB"
wait_final "$j2" 600
expect_state "$j2" passed
[ "$(jd .attempt)/$(jd .agent)" = 2/a2 ] || { grep -h "job=$j2\b" "$T/sb.log" "$T/a2.log" "$T/a1.log" "$T/sa.log"; cat "$T/sse2"; fail "job $j2 ended in attempt $(jd .attempt) on $(jd .agent), wanted 2 on a2"; }
wait "$sse2_pid" || fail "B's stream of job $j2 failed"
sse2_pid=
[ "$(whole "$BB" "$j2" "$T/whole2")" = 200 ] || fail "whole log of job $j2 from B"
grep '^slow line' "$T/whole2" >"$T/whole2.lines"
n1=$(grep -n '^slow line 1$' "$T/whole2.lines" | sed -n '2s/:.*//p')
[ -n "$n1" ] || fail "job $j2's log has one attempt only: $(cat "$T/whole2.lines" | tr '\n' ' ')"
n1=$((n1 - 1))   # lines of attempt 1
[ "$n1" -ge "$first" ] || fail "attempt 1 left $n1 lines in the log, B's stream had seen $first"
head -n "$n1" "$T/whole2.lines" | cmp -s - "$(seq 1 "$n1" | sed 's/^/slow line /' >"$T/exp1"; echo "$T/exp1")" ||
	fail "attempt 1's lines are not in order"
[ "$(tail -n +"$((n1 + 1))" "$T/whole2.lines" | wc -l)" = 50 ] || fail "attempt 2's lines: $(tail -n +"$((n1 + 1))" "$T/whole2.lines" | wc -l), wanted 50"
sse_data "$T/sse2" | grep '^slow line' | cmp -s - "$T/whole2.lines" ||
	fail "B's stream across both attempts differs from the log"
tail -n 2 "$T/sse2" | grep -q '^data: passed$' || fail "B's stream of job $j2 did not end"
[ "$(whole "$BB" "$j2" "$T/job2" _job)" = 200 ] || fail "no job log of job $j2"
grep -q "attempt 1 on agent a1" "$T/job2" && grep -q "attempt 2 on agent a2" "$T/job2" ||
	fail "job $j2's job log: $(cat "$T/job2")"
# one log per stage: chunks end to end from 0, whole lines each
gaps=$(store_sql "$DB" "SELECT count(*) FROM job_log l WHERE off <> coalesce((SELECT p.off
	+ length(p.data) FROM job_log p WHERE p.job_id = l.job_id AND p.stage = l.stage
	AND p.off < l.off ORDER BY p.off DESC LIMIT 1), 0)")
[ "$gaps" = 0 ] || fail "$gaps chunks do not follow the one before"
cut=$(store_sql "$DB" "SELECT count(*) FROM job_log WHERE get_byte(data, length(data) - 1) <> 10")
[ "$cut" = 0 ] || fail "$cut chunks end inside a line"
[ "$(store_sql "$DB" "SELECT sum(length(data)) FROM job_log WHERE job_id = $j2 AND stage = 'slow'")" = \
	"$(wc -c <"$T/whole2")" ] || fail "the chunks of job $j2 and its log differ in size"
echo "job $j2: A killed in attempt 1 ($n1 lines), attempt 2 on a2 appended after them"

# ---- 3. store copy takes a SQLite server's log files along -------------------
# a server on SQLite takes a delivery and stops; its job gets a log file
# (as its worker would have written it); after the copy a server on the
# new database serves that log from the database
config "$T/slite.yml" "$PA" "$T/dl"
sed -i '/^store: /d' "$T/slite.yml"
start_serve lite
push "$BA" main "$C1" l-1
lj=$job
stop_pid "$slite_pid"
slite_pid=
mkdir -p "$T/dl/logs/$lj"
seq 1 20000 | sed 's/^/copied line /' >"$T/copied.want"
cp "$T/copied.want" "$T/dl/logs/$lj/slow.log"
printf 'cloning\n' >"$T/dl/logs/$lj/_job.log"
export SP_COPY_URL="$(store_line "$T/copy" | sed 's/^store: "\(.*\)"$/\1/')"
run "$BIN" store copy --from "sqlite:$T/dl/stagepipe.db" --to-env SP_COPY_URL
expect_rc 0
expect_in out "1 jobs"
expect_in out "2 log files ($(($(wc -c <"$T/copied.want") + 8)) bytes)"
sed -i "/^data: /a $(store_line "$T/copy")" "$T/slite.yml"
rm -r "$T/dl/logs"   # from now on the database's
start_serve lite
[ "$(whole "$BA" "$lj" "$T/copied")" = 200 ] || fail "the copied log is not served"
cmp -s "$T/copied" "$T/copied.want" || fail "the copied log differs from its file"
code=$(curl -s -o "$T/copied.r" -w '%{http_code}' -H 'Range: bytes=-18' "$BA/api/jobs/$lj/log?stage=slow")
[ "$code" = 206 ] && [ "$(cat "$T/copied.r")" = "copied line 20000" ] ||
	fail "the copied log's end: HTTP $code $(cat "$T/copied.r")"
stop_pid "$slite_pid"
slite_pid=
echo "store copy: job $lj's log files went into the database"

# ---- the end ---------------------------------------------------------------------
for p in a2 sb; do
	stop_pid "$(eval "echo \$${p}_pid")"
	eval "${p}_pid="
done
for f in sa sb slite a1 a2; do
	grep -qF -e "$TOK1" -e "$TOK2" "$T/$f.log" && fail "a token is in $f's log"
	if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/$f.log" >/dev/null 2>&1; then
		grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/$f.log" | head -60
		fail "sanitizer reports in $f's log"
	fi
done
exit 0
