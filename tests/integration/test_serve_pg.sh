# Two `stagepipe serve` processes on one PostgreSQL (issue 15; no engine:
# workers 0, jobs stay queued), on two loopback ports with their own data
# folders:
#   1. serve --migrate (and a server that is not there: exit 3, no
#      password shown); both servers migrate a new database at once and start
#   2. a delivery sent to both makes one job (the second answer is the
#      duplicate, 200 with the first one's job); 40 deliveries each sent to
#      both servers at the same moment (in opposite orders) make 40 jobs
#   3. webhook load on both; kill -9 of one: every delivery either server
#      answered 2xx is in the database with its job, sent again (as forges
#      redeliver) to the survivor it is a duplicate with the same job, and
#      the survivor goes on taking new ones
#   4. the killed server starts again and sees every job
#   5. stagepipe store copy: a SQLite server's jobs and deliveries into a new
#      database, a server on it carries on (duplicates known, ids go on)
# PostgreSQL comes from tests/tools/pg_cluster.sh (SP_TEST_PG_URL to use
# another server); the test needs Debian's postgresql (contrib/deps.sh).
# stores: postgres
STORE=postgres
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null 2>&1 || fail "jq not found"
command -v psql >/dev/null 2>&1 || fail "psql not found (contrib/deps.sh)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SIGN="$PY $top/tests/tools/sign_hook.py"
LOAD="$PY $top/tests/tools/hook_load.py"

export GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git init -q --bare "$T/app.git"

SECRET=gh-$(rnd 12)
export SP_GH_SECRET="$SECRET"
P1=$(free_port)
P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
B1=http://127.0.0.1:$P1
B2=http://127.0.0.1:$P2
DB=$T/shared/stagepipe.db   # names the shared database for store_sql

pid1= pid2= load1= load2=
test_cleanup() {
	for p in $pid1 $pid2 $load1 $load2; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	true
}

config() { # config FILE PORT DATA: its store is the shared database
	serve_config "$1" "127.0.0.1:$2" "$3" "$T/shared" <<EOF
workers: 0
drain_timeout: 5s
repos:
  - name: gh
    url: file://$T/app.git
    forge: github
    secret_env: SP_GH_SECRET
    cancel_superseded: false
EOF
}
config "$T/s1.yml" "$P1" "$T/d1"
config "$T/s2.yml" "$P2" "$T/d2"
grep -q '^store: "postgres' "$T/s1.yml" || fail "no PostgreSQL store in the config"

# start BIN serve -c CONFIG >LOG in the background; its pid in $spid
start() { serve_start "$@"; spid=$srv_pid; } # start CONFIG LOG: sets $spid
ready() { serve_ready "$@"; } # ready BASE PID LOG

# ---- 1. --migrate; both start at once ----------------------------------
# --migrate on a database of its own: the schema, then nothing more to do
config "$T/m.yml" "$P1" "$T/dm"
sed -i "s|^store: .*|$(store_line "$T/mig")|" "$T/m.yml"
run "$BIN" serve --migrate -c "$T/m.yml"
expect_rc 0
expect_in out "schema version"
[ "$(store_sql "$T/mig/stagepipe.db" "SELECT version FROM stagepipe_schema")" -ge 2 ] ||
	fail "--migrate did not migrate"
run "$BIN" serve --migrate -c "$T/m.yml"
expect_rc 0
run "$BIN" serve --migrate --check -c "$T/m.yml"
expect_rc 2
# a server that is not there: exit 3, the password not shown
sed "s|^store: .*|store: \"postgresql://ci:hunter2@/nope?host=$T/nowhere\"|" "$T/m.yml" >"$T/bad.yml"
run "$BIN" serve --migrate -c "$T/bad.yml"
expect_rc 3
expect_not_in err hunter2
expect_in err "ci:***@"
start "$T/s1.yml" "$T/s1.log"; pid1=$spid
start "$T/s2.yml" "$T/s2.log"; pid2=$spid
ready "$B1" "$pid1" "$T/s1.log"
ready "$B2" "$pid2" "$T/s2.log"
[ "$(store_sql "$DB" "SELECT version FROM stagepipe_schema")" -ge 2 ] || fail "schema not migrated"
[ "$(store_sql "$DB" "SELECT count(*) FROM stagepipe_schema")" = 1 ] || fail "schema table"
grep -q 'backend=postgres' "$T/s1.log" || fail "server 1 does not say it uses PostgreSQL"

# ---- 2. one delivery, two servers: one job ------------------------------
hook() { # hook BASE DELIVERY: sets $code and $job
	$SIGN --url "$1/hooks/gh" --forge github --secret "$SECRET" --ref main \
		--sha "$(printf '%s' "$2" | sha1sum | cut -c1-40)" --delivery "$2" >"$T/hook.$$" 2>&1 || true
	code=$(head -n 1 "$T/hook.$$")
	job=$(tail -n +2 "$T/hook.$$" | jq -r '.job // empty' 2>/dev/null)
}
hook "$B1" first-1
[ "$code" = 202 ] || fail "server 1: HTTP $code for a new delivery"
j1=$job
hook "$B2" first-1
[ "$code" = 200 ] || fail "server 2: HTTP $code for the same delivery, wanted 200 (duplicate)"
[ "$job" = "$j1" ] || fail "server 2 answered job $job for the delivery of job $j1"
[ "$(store_sql "$DB" "SELECT count(*) FROM jobs")" = 1 ] || fail "two servers made two jobs"

# 40 ids, each sent to both, all 80 arriving at the same moment (hook_burst:
# every request but its last byte first), server 2 getting them in the
# opposite order: the two servers' batches hold the same new deliveries
i=0 burst=
while [ $i -lt 40 ]; do
	$SIGN --forge github --secret "$SECRET" --ref main --delivery "race-$i" --dump >"$T/race.$i"
	i=$((i + 1))
done
i=0
while [ $i -lt 40 ]; do
	burst="$burst 127.0.0.1:$P1/hooks/gh=$T/race.$i 127.0.0.1:$P2/hooks/gh=$T/race.$((39 - i))"
	i=$((i + 1))
done
$PY "$top/tests/tools/hook_burst.py" $burst >"$T/race.out" 2>&1 || true
if grep -qvE '^20[02] ' "$T/race.out"; then
	grep -vE '^20[02] ' "$T/race.out" | sort | uniq -c | head
	grep -h 'hook.failed' "$T/s1.log" "$T/s2.log" | head -n 5
	fail "a racing delivery was refused"
fi
[ "$(grep -c '^202 ' "$T/race.out")" = 40 ] ||
	fail "racing deliveries: $(grep -c '^202 ' "$T/race.out") answered 202, wanted 40"
[ "$(store_sql "$DB" "SELECT count(*) FROM deliveries WHERE id LIKE 'race-%'")" = 40 ] ||
	fail "racing deliveries stored: $(store_sql "$DB" "SELECT count(*) FROM deliveries WHERE id LIKE 'race-%'")"
[ "$(store_sql "$DB" "SELECT count(DISTINCT job_id) FROM deliveries WHERE id LIKE 'race-%'")" = 40 ] ||
	fail "racing deliveries: not one job each"
[ "$(store_sql "$DB" "SELECT count(*) FROM jobs")" = 41 ] || fail "jobs: $(store_sql "$DB" "SELECT count(*) FROM jobs"), wanted 41"

# ---- 3. load on both, kill -9 of one ----------------------------------
$LOAD --url "$B1/hooks/gh" --forge github --secret "$SECRET" --out "$T/l1" --threads 4 \
	--seconds 20 --dup 10 2>"$T/l1.err" &
load1=$!
$LOAD --url "$B2/hooks/gh" --forge github --secret "$SECRET" --out "$T/l2" --threads 4 \
	--seconds 20 --dup 10 2>"$T/l2.err" &
load2=$!
i=0
while [ "$(cat "$T/l1" "$T/l2" 2>/dev/null | wc -l)" -lt 600 ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || fail "the load made $(cat "$T/l1" "$T/l2" | wc -l) answers in 30 s"
	sleep 0.1
done
kill -9 "$pid1"
wait "$pid1" 2>/dev/null
pid1=
sleep 0.3
kill -TERM "$load1"
wait "$load1" || fail "hook_load 1 failed: $(cat "$T/l1.err")"
load1=
n2=$(wc -l <"$T/l2")
sleep 1
[ "$(wc -l <"$T/l2")" -gt "$n2" ] || fail "server 2 stopped answering when server 1 was killed"
kill -TERM "$load2"
wait "$load2" || fail "hook_load 2 failed: $(cat "$T/l2.err")"
load2=
awk '$2 !~ /^(2..|000)$/ { print "unexpected answer: " $0; bad = 1 } END { exit bad }' \
	"$T/l1" "$T/l2" || fail "answers other than 2xx under load"
# every delivery answered 2xx is stored, with the job it was answered with
acked_stored "$DB" gh "$T/l1" "$T/l2"
[ "$acked" -gt 300 ] || fail "only $acked deliveries answered 2xx"
# what server 1 answered, sent again to server 2: duplicates, same job
acked_resent "$B2/hooks/gh" github "$SECRET" "$T/l1"
echo "two servers: $acked deliveries answered 2xx ($(awk '$2 ~ /^2/' "$T/l1" | wc -l) by the" \
	"killed one), $stored stored, none lost"

# ---- 4. the killed server again ----------------------------------------
start "$T/s1.yml" "$T/s1.log"; pid1=$spid
ready "$B1" "$pid1" "$T/s1.log"
n=$(store_sql "$DB" "SELECT count(*) FROM jobs")
q=$(curl -s "$B1/metrics" | awk '$1 == "stagepipe_jobs{state=\"queued\"}" { print $2 }')
[ "$q" = "$n" ] || fail "server 1 after its restart sees $q queued jobs, the database holds $n"
for p in $pid1 $pid2; do
	kill -TERM "$p"
	wait "$p" || fail "serve $p did not stop cleanly"
done
pid1= pid2=
# ---- 5. from SQLite: store copy ----------------------------------------
# a server on SQLite takes 3 deliveries, stops; its store goes to a new
# database; a server on that database sees the jobs and the deliveries
config "$T/lite.yml" "$P1" "$T/dl"
sed -i '/^store: /d' "$T/lite.yml"
start "$T/lite.yml" "$T/lite.log"; pid1=$spid
ready "$B1" "$pid1" "$T/lite.log"
for d in l-1 l-2 l-3; do
	hook "$B1" "$d"
	[ "$code" = 202 ] || fail "sqlite server: HTTP $code"
done
kill -TERM "$pid1"; wait "$pid1"; pid1=
export SP_COPY_URL="$(store_line "$T/copy" | sed 's/^store: "\(.*\)"$/\1/')"
run "$BIN" store copy --from "sqlite:$T/dl/stagepipe.db" --to-env SP_COPY_URL
expect_rc 0
expect_in out "3 jobs"
run "$BIN" store copy --from "sqlite:$T/dl/stagepipe.db" --to-env SP_COPY_URL
expect_rc 2
expect_in err "empty"
run "$BIN" store copy --from "sqlite:$T/dl/stagepipe.db" --to "postgresql://ci:hunter2@/x?host=$T/none"
expect_rc 3
expect_not_in err hunter2
run "$BIN" store copy --from "$T/dl/stagepipe.db" --to-env SP_COPY_URL
expect_rc 2
sed -i "s|^store: .*|$(store_line "$T/copy")|" "$T/lite.yml"
start "$T/lite.yml" "$T/lite.log"; pid1=$spid
ready "$B1" "$pid1" "$T/lite.log"
hook "$B1" l-2
[ "$code" = 200 ] || fail "after the copy: delivery l-2 is new again (HTTP $code)"
hook "$B1" l-4
[ "$code" = 202 ] && [ "$job" = 4 ] || fail "after the copy: a new delivery got HTTP $code job $job, wanted 202 job 4"
kill -TERM "$pid1"; wait "$pid1" || fail "serve on the copy did not stop cleanly"; pid1=

if grep -qE 'level=(fatal|crit)|Sanitizer|runtime error' "$T/s1.log" "$T/s2.log"; then
	fail "serve complained: $(grep -hE 'level=(fatal|crit)|Sanitizer|runtime error' "$T/s1.log" "$T/s2.log" | head -3)"
fi
exit 0
