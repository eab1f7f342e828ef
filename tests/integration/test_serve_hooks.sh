# stagepipe serve, ingest side (no engine: workers 0, jobs stay queued):
# signed deliveries of every forge built here (GitHub, Gitea, GitLab token,
# GitLab Standard Webhooks) — accepted, duplicate, bad / missing signature,
# wrong secret, oversize (Content-Length and chunked), malformed, wrong
# content type, unknown repo, ping, branch delete, filtered branch — each
# followed by a look into the database for exactly what must (and must not)
# be there; the commit status of a queued job at a recording forge (with
# retries); the REST API and its admin token; --check; /healthz, /readyz,
# /metrics; SIGTERM; a restart keeps the jobs.  STORE=postgres: the same
# against PostgreSQL (lib_pg.sh).
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null 2>&1 || fail "sqlite3 not found (contrib/deps.sh --engine)"
command -v jq >/dev/null 2>&1 || fail "jq not found"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SIGN="$PY $top/tests/tools/sign_hook.py"

export GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME" "$T/data"
git config --global user.name Test
git config --global user.email test@example.com
git config --global init.defaultBranch main

# a small repository, so the manual trigger can resolve a branch
git init -q "$T/src"
echo one >"$T/src/README"
git -C "$T/src" add README
git -C "$T/src" commit -qm one
git clone -q --bare "$T/src" "$T/app.git"
main_sha=$(git -C "$T/app.git" rev-parse main)

sha() { rnd 20; }

# secrets and tokens, made now; none may appear in a log or the database
GH_SECRET=gh-$(rnd 12)
GT_SECRET=gt-$(rnd 12)
GL_SECRET=gl-$(rnd 12)
GS_SECRET=whsec_$(head -c 24 /dev/urandom | base64)
ADMIN=adm-$(rnd 16)
STATUS_TOKEN=st-$(rnd 16)
export SP_GH_SECRET="$GH_SECRET" SP_GL_SECRET="$GL_SECRET" SP_GS_SECRET="$GS_SECRET"
export SP_TEST_ADMIN="$ADMIN"
printf '%s\n' "$GT_SECRET" >"$T/gt.secret"
printf '%s\n' "$STATUS_TOKEN" >"$T/status.token"
chmod 600 "$T/gt.secret" "$T/status.token"

# the recording forge (statuses of the gh repository go there)
recorder_up "$STATUS_TOKEN"
REC_PORT=$REC

srv_pid=
test_cleanup() {
	[ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null
	kill "$rec_pid" 2>/dev/null
	wait 2>/dev/null
	true
}

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
DB=$T/data/stagepipe.db

write_config() { # write_config FILE [no-admin]
	{
		echo "public_url: http://ci.test"
		echo "workers: 0"
		[ "${2:-}" = no-admin ] || echo "admin_token_env: SP_TEST_ADMIN"
		cat <<EOF
body_max: 1m
drain_timeout: 5s
repos:
  - name: gh
    url: file://$T/app.git
    forge: github
    secret_env: SP_GH_SECRET
    branches: [main, "release/*"]
    status:
      api: http://127.0.0.1:$REC_PORT
      project: team/app
      token_file: $T/status.token
  - name: gt
    url: $T/app.git
    forge: gitea
    secret_file: $T/gt.secret
  - name: gl
    url: file://$T/app.git
    forge: gitlab
    secret_env: SP_GL_SECRET
  - name: gs
    url: file://$T/app.git
    forge: gitlab
    secret_env: SP_GS_SECRET
EOF
	} >"$T/config.rest"
	serve_config "$1" "127.0.0.1:$PORT" "$T/data" <"$T/config.rest"
}
write_config "$T/serve.yml"

start_serve() { serve_up "$1" "$BASE"; } # start_serve CONFIG

stop_serve() { # stop_serve: SIGTERM, wants exit 0
	kill -TERM "$srv_pid"
	_rc=0
	wait "$srv_pid" || _rc=$?
	srv_pid=
	[ "$_rc" = 0 ] || { tail -20 "$T/serve.log"; fail "serve exited $_rc after SIGTERM, wanted 0"; }
}

secret_of() {
	case $1 in
	gh) echo "$GH_SECRET" ;; gt) echo "$GT_SECRET" ;;
	gl) echo "$GL_SECRET" ;; gs) echo "$GS_SECRET" ;; *) echo nope ;;
	esac
}

# hook REPO FORGE [sign_hook options]: sets $code and $body
hook() {
	_r=$1 _f=$2
	shift 2
	$SIGN --url "$BASE/hooks/$_r" --forge "$_f" --secret "$(secret_of "$_r")" "$@" \
		>"$T/hook" 2>&1 || true
	code=$(head -n 1 "$T/hook")
	body=$(tail -n +2 "$T/hook")
}
want() { # want CODE WHAT
	[ "$code" = "$1" ] || fail "$2: HTTP $code, wanted $1; body: $body"
}
jbody() { printf '%s' "$body" | jq -r "$1" 2>/dev/null || echo "(not JSON: $body)"; }

sql() { store_sql "$DB" "$1"; }
counts() { sql "SELECT (SELECT count(*) FROM deliveries) || ' ' || (SELECT count(*) FROM jobs)"; }
nd=0 nj=0
expect_counts() { # expect_counts WHAT: the database holds exactly $nd deliveries and $nj jobs
	_c=$(counts)
	[ "$_c" = "$nd $nj" ] || fail "$1: deliveries/jobs in the database: $_c, wanted $nd $nj"
}
# nothing stored anywhere mentions TEXT (refused delivery ids, secrets)
expect_not_stored() {
	if store_dump "$DB" | grep -qF -- "$1"; then
		store_dump "$DB" | grep -F -- "$1" | head -5
		fail "the database holds $2"
	fi
}
api() { # api METHOD PATH [BODY] [TOKEN]: sets $code and $body
	_tok=${4-$ADMIN}
	if [ -n "$_tok" ]; then
		set -- "$1" "$2" "${3:-}" -H "Authorization: Bearer $_tok"
	else
		set -- "$1" "$2" "${3:-}"
	fi
	_m=$1 _p=$2 _b=$3
	shift 3
	if [ -n "$_b" ]; then
		code=$(curl -s -o "$T/api" -w '%{http_code}' -X "$_m" -H 'Content-Type: application/json' \
			--data "$_b" "$@" "$BASE$_p")
	else
		code=$(curl -s -o "$T/api" -w '%{http_code}' -X "$_m" "$@" "$BASE$_p")
	fi
	body=$(cat "$T/api")
}

# ---- --check ---------------------------------------------------------------
run "$BIN" serve --check -c "$T/serve.yml"
expect_rc 0
cp "$T/serve.yml" "$T/bad.yml"
sed -i 's/^workers: 0/wrokers: 0/' "$T/bad.yml"
echo "    brnaches: [main]" >>"$T/bad.yml"
run "$BIN" serve --check -c "$T/bad.yml"
expect_rc 2
ln=$(grep -n '^wrokers:' "$T/bad.yml" | cut -d: -f1)
grep -Eq "^$T/bad.yml:$ln:1: " "$T/err" || { cat "$T/err"; fail "no $T/bad.yml:$ln:1: for the unknown key"; }
expect_in err "workers"
grep -Eq "^$T/bad.yml:[0-9]+:[0-9]+: .*brnaches" "$T/err" ||
	{ cat "$T/err"; fail "every problem at once: the second unknown key is not reported"; }
# a secret that is not there is a config error, found by --check
run env -u SP_GL_SECRET "$BIN" serve --check -c "$T/serve.yml"
expect_rc 2
expect_in err "SP_GL_SECRET"
expect_not_in err "$GH_SECRET"

start_serve "$T/serve.yml"

# ---- health ----------------------------------------------------------------
[ "$(curl -s "$BASE/healthz")" = ok ] || fail "/healthz is not ok: $(curl -s -i "$BASE/healthz")"
[ "$(curl -s "$BASE/readyz")" = ready ] || fail "/readyz is not ready"
store_exists "$DB" || fail "no database at $DB ($STORE)"
[ "$STORE" != postgres ] || grep -q 'serve.store.*backend=postgres' "$T/serve.log" ||
	fail "STORE=postgres, but serve did not say it uses PostgreSQL"

# a second server on the same address cannot listen: exit 3
run "$BIN" serve -c "$T/serve.yml"
expect_rc 3

# ---- every forge -----------------------------------------------------------
for pair in gh:github gt:gitea gl:gitlab-token gs:gitlab-standard-webhooks; do
	r=${pair%%:*} f=${pair#*:}
	s1=$(sha)
	[ "$r" = gh ] && gh_s1=$s1

	# accepted: 202 with the job, committed: the delivery and the job are there
	hook "$r" "$f" --ref main --sha "$s1" --delivery "d-$r-1" --before "$main_sha"
	want 202 "$f push"
	job=$(jbody .job)
	[ "$(jbody .state)" = queued ] || fail "$f push: $body"
	case $job in '' | *[!0-9]*) fail "$f push: no job id in $body" ;; esac
	nd=$((nd + 1)) nj=$((nj + 1))
	expect_counts "$f accepted"
	[ "$(sql "SELECT repo || '|' || state || '|' || sha || '|' || ref FROM jobs WHERE id = $job")" = \
		"$r|queued|$s1|refs/heads/main" ] ||
		fail "$f accepted: job row: $(sql "SELECT * FROM jobs WHERE id = $job")"
	store_dump "$DB" | grep -q "d-$r-1" || fail "$f accepted: delivery id d-$r-1 not stored"
	api GET "/api/jobs/$job" "" ""
	[ "$code" = 200 ] && [ "$(jbody .sha)" = "$s1" ] && [ "$(jbody .event)" = push ] &&
		[ "$(jbody .branch)" = main ] || fail "$f: GET /api/jobs/$job: $code $body"

	# duplicate: 200, the same job, nothing written (even with another body)
	hook "$r" "$f" --ref main --sha "$(sha)" --delivery "d-$r-1"
	want 200 "$f duplicate"
	[ "$(jbody .job)" = "$job" ] && [ "$(jbody .duplicate)" = true ] || fail "$f duplicate: $body"
	expect_counts "$f duplicate"

	# refused: 401 without detail, nothing stored
	for fault in --bad-signature --no-signature --wrong-secret; do
		hook "$r" "$f" --sha "$(sha)" --delivery "bad-$r$fault" $fault
		want 401 "$f $fault"
		[ -z "$body" ] || fail "$f $fault: 401 with a body: $body"
		expect_counts "$f $fault"
	done
	# too big: by Content-Length (answered before the body), and chunked
	hook "$r" "$f" --sha "$(sha)" --delivery "bad-$r-big" --oversize 1500000
	want 413 "$f oversize (Content-Length)"
	hook "$r" "$f" --sha "$(sha)" --delivery "bad-$r-chunked" --oversize 1500000 --chunked
	want 413 "$f oversize (chunked)"
	[ "$(jbody .error)" = "body over 1048576 bytes" ] || fail "$f chunked 413 body: $body"
	# a chunked delivery under the cap is fine
	hook "$r" "$f" --ref main --sha "$(sha)" --delivery "d-$r-chunked" --chunked
	want 202 "$f chunked under the cap"
	nd=$((nd + 1)) nj=$((nj + 1))
	# malformed JSON (signed): 400, nothing stored
	hook "$r" "$f" --delivery "bad-$r-malformed" --malformed
	want 400 "$f malformed"
	case $(jbody .error) in "malformed payload: "*) ;; *) fail "$f malformed: $body" ;; esac
	# another content type: 415
	hook "$r" "$f" --sha "$(sha)" --delivery "bad-$r-ctype" --content-type text/plain
	want 415 "$f text/plain"
	# a repository the config does not have: 404, nothing stored
	$SIGN --url "$BASE/hooks/nope" --forge "$f" --secret "$(secret_of "$r")" \
		--delivery "bad-$r-unknown" >"$T/hook" 2>&1
	code=$(head -n 1 "$T/hook") body=$(tail -n +2 "$T/hook")
	want 404 "$f unknown repo"
	[ "$(jbody .error)" = "unknown repository" ] || fail "$f unknown repo: $body"
	expect_counts "$f refused"

	# branch deleted: 200, no job; the delivery is kept for dedupe
	hook "$r" "$f" --event delete --ref old-feature --delivery "d-$r-del"
	want 200 "$f branch delete"
	[ "$(jbody .job)" = null ] && [ "$(jbody '.ignored | type')" = string ] ||
		fail "$f branch delete: $body"
	nd=$((nd + 1))
	expect_counts "$f branch delete"
	hook "$r" "$f" --event delete --ref old-feature --delivery "d-$r-del"
	want 200 "$f branch delete again"
	[ "$(jbody .duplicate)" = true ] || fail "$f repeated ignored delivery: $body"
	expect_counts "$f branch delete again"

	# ping (GitHub), the "test delivery" of Gitea and GitLab: 200, no job
	hook "$r" "$f" --event ping --delivery "d-$r-ping"
	want 200 "$f ping"
	[ "$(jbody .job)" = null ] && [ "$(jbody '.ignored | type')" = string ] ||
		fail "$f ping: $body"
	nd=$((nd + 1))
	expect_counts "$f ping"

	# a pull / merge request: the head commit, the target branch
	s2=$(sha)
	hook "$r" "$f" --event pull_request --ref main --pr 12 --sha "$s2" --delivery "d-$r-pr"
	want 202 "$f pull request"
	pr=$(jbody .job)
	nd=$((nd + 1)) nj=$((nj + 1))
	expect_counts "$f pull request"
	case $f in gitlab*) want_ref=refs/merge-requests/12/head ;; *) want_ref=refs/pull/12/head ;; esac
	api GET "/api/jobs/$pr" "" ""
	[ "$(jbody .event)/$(jbody .ref)/$(jbody .sha)/$(jbody .pr)/$(jbody .branch)" = \
		"pull_request/$want_ref/$s2/12/main" ] || fail "$f pull request job: $body"

	# a tag
	hook "$r" "$f" --event tag --ref v1.0 --sha "$(sha)" --delivery "d-$r-tag"
	want 202 "$f tag"
	tj=$(jbody .job)
	nd=$((nd + 1)) nj=$((nj + 1))
	api GET "/api/jobs/$tj" "" ""
	[ "$(jbody .event)/$(jbody .ref)/$(jbody .tag)" = "tag/refs/tags/v1.0/v1.0" ] ||
		fail "$f tag job: $body"
	expect_counts "$f tag"
done

# GitHub only: form-encoded payload, a branch outside the filter, 405
hook gh github --form --ref main --sha "$(sha)" --delivery d-gh-form
want 202 "github form-encoded payload"
nd=$((nd + 1)) nj=$((nj + 1))
hook gh github --ref feature/x --sha "$(sha)" --delivery d-gh-feature
want 200 "github push to a branch outside the filter"
[ "$(jbody .job)" = null ] || fail "filtered branch: $body"
nd=$((nd + 1))
hook gh github --ref release/2.0 --sha "$(sha)" --delivery d-gh-release
want 202 "github push to release/2.0 (filter release/*)"
nd=$((nd + 1)) nj=$((nj + 1))
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/hooks/gh")
want 405 "GET /hooks/gh"
# Standard Webhooks: a timestamp out of the 5-minute window
hook gs gitlab-standard-webhooks --sha "$(sha)" --delivery bad-gs-stale --stale
want 401 "standard webhooks, stale timestamp"
# GitLab: the token of another repository
$SIGN --url "$BASE/hooks/gl" --forge gitlab-token --secret "$GS_SECRET" \
	--delivery bad-gl-other >"$T/hook" 2>&1
code=$(head -n 1 "$T/hook") body=
want 401 "gitlab token of another repository"
expect_counts "after every forge"
expect_not_stored "bad-" "a refused delivery"
for s in "$GH_SECRET" "$GT_SECRET" "$GL_SECRET" "$GS_SECRET" "$ADMIN" "$STATUS_TOKEN"; do
	expect_not_stored "$s" "a secret"
	if grep -qF -- "$s" "$T/serve.log" "$T/serve.out"; then fail "a secret is in serve's log"; fi
done

# ---- the REST API ----------------------------------------------------------
api GET "/api/jobs?repo=gh&limit=2" "" ""
[ "$code" = 200 ] || fail "GET /api/jobs: $code $body"
[ "$(jbody '.jobs | length')" = 2 ] || fail "limit=2: $body"
[ "$(jbody '[.jobs[].repo] | unique | join(",")')" = gh ] || fail "repo filter: $body"
next=$(jbody .next)
case $next in '' | null) fail "no cursor after 2 of many jobs: $body" ;; esac
api GET "/api/jobs?repo=gh&before=$next&limit=200" "" ""
[ "$code" = 200 ] || fail "GET /api/jobs?before=: $code $body"
ngh=$(sql "SELECT count(*) FROM jobs WHERE repo = 'gh'")
[ "$(($(jbody '.jobs | length') + 2))" = "$ngh" ] || fail "cursor paging lost jobs: $body"
api GET "/api/jobs?state=queued&limit=200" "" ""
[ "$(jbody '[.jobs[].state] | unique | join(",")')" = queued ] || fail "state filter: $body"
api GET /api/jobs/999999 "" ""
want 404 "unknown job"
code=$(curl -s -o "$T/api" -w '%{http_code}' "$BASE/jobs/$job")
body=$(cat "$T/api")
want 200 "GET /jobs/$job"
[ "$(jbody .id)" = "$job" ] || fail "/jobs/$job: $body"

# mutating calls: the admin token (on the last pull request job: still queued,
# no later push superseded it)
api POST "/api/jobs/$pr/cancel" "" ""
want 401 "cancel without a token"
[ "$(jbody .error)" = "admin token required" ] || fail "cancel without a token: $body"
api POST "/api/jobs/$pr/cancel" "" "not-the-token"
want 401 "cancel with a wrong token"
api POST "/api/jobs/$pr/cancel"
want 202 "cancel a queued job"
[ "$(jbody .state)" = cancelled ] || fail "cancel: $body"
[ "$(sql "SELECT state FROM jobs WHERE id = $pr")" = cancelled ] || fail "cancel not stored"
api POST "/api/jobs/$pr/cancel"
want 409 "cancel a finished job"
api POST "/api/jobs/$pr/retry" "" ""
want 401 "retry without a token"
api POST "/api/jobs/$pr/retry"
want 201 "retry"
rj=$(jbody .job)
[ "$(jbody .retry_of)" = "$pr" ] || fail "retry: $body"
nj=$((nj + 1))
[ "$(sql "SELECT state || '|' || sha FROM jobs WHERE id = $rj")" = \
	"queued|$(sql "SELECT sha FROM jobs WHERE id = $pr")" ] || fail "retry row"
api POST /api/jobs '{"repo":"gt","ref":"main"}' ""
want 401 "trigger without a token"
api POST /api/jobs '{"repo":"gt","ref":"main"}'
want 201 "trigger gt main"
tj=$(jbody .job)
nj=$((nj + 1))
api GET "/api/jobs/$tj" "" ""
[ "$(jbody .sha)/$(jbody .event)/$(jbody .ref)" = "$main_sha/manual/refs/heads/main" ] ||
	fail "trigger resolved: $body"
api POST /api/jobs '{"repo":"gt","ref":"refs/heads/main","sha":"'"$main_sha"'"}'
want 201 "trigger with a sha"
nj=$((nj + 1))
api POST /api/jobs '{"repo":"gt","ref":"no-such-branch"}'
want 400 "trigger of an unknown branch"
api POST /api/jobs '{"repo":"nope","ref":"main"}'
want 400 "trigger of an unknown repo"
api POST /api/jobs '{"repo":'
want 400 "trigger with malformed JSON"
expect_counts "after the API"

# ---- statuses: the gh jobs' "pending" reached the recording forge ---------
wait_rec() { # wait_rec SECONDS JQ-FILTER: until a recorded request matches
	_n=$(($1 * 10))
	while [ $_n -gt 0 ]; do
		[ -s "$T/rec.jsonl" ] && [ "$(jq -s "[.[] | select($2)] | length" "$T/rec.jsonl")" -gt 0 ] &&
			return 0
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}
wait_rec 10 ".path == \"/repos/team/app/statuses/$gh_s1\"" || {
	cat "$T/rec.jsonl"
	fail "no status for the first gh push at the recorder"
}
# every gh job got one (the first, pending) with its link and the token
gh_first=$(sql "SELECT id FROM jobs WHERE repo = 'gh' ORDER BY id LIMIT 1")
jq -e -s --arg sha "$gh_s1" --arg tok "Bearer $STATUS_TOKEN" --arg url "http://ci.test/jobs/$gh_first" '
	[.[] | select(.path == "/repos/team/app/statuses/" + $sha)] | .[0] |
	.method == "POST" and .body.state == "pending" and .body.context == "stagepipe" and
	.body.target_url == $url and .headers.authorization == $tok and
	.headers.accept == "application/vnd.github+json"' "$T/rec.jsonl" >/dev/null ||
	{ cat "$T/rec.jsonl"; fail "the first status is not as GitHub wants it"; }
# no status for the repositories without status:
for r in gt gl gs; do
	for s in $(sql "SELECT sha FROM jobs WHERE repo = '$r'"); do
		grep -q "$s" "$T/rec.jsonl" && fail "a status was sent for $r, which has no status:"
	done
done

# a failing forge: two 500s, then it works: the status gets there (retries)
curl -s -X POST --data '{"fail":2,"status":500}' "http://127.0.0.1:$REC_PORT/_control" >/dev/null
s3=$(sha)
hook gh github --ref main --sha "$s3" --delivery d-gh-retry
want 202 "push while the forge fails"
nd=$((nd + 1)) nj=$((nj + 1))
wait_rec 40 ".path == \"/repos/team/app/statuses/$s3\" and .answered == 201" || {
	cat "$T/rec.jsonl"
	fail "the status was not retried until it got through"
}
# both 500s were answered to some status (maybe another job's), and each
# of those was sent again later and got through
jq -e -s '. as $all | [$all[] | select(.answered == 500)] | length == 2 and
	all(.[]; . as $f | any($all[]; .path == $f.path and .body.context == $f.body.context and
		.seq > $f.seq and .answered == 201))' "$T/rec.jsonl" >/dev/null ||
	{ cat "$T/rec.jsonl"; fail "a status answered 500 was not sent again until it got through"; }
# a forge that refuses the token (401): not retried; visible in the job
curl -s -X POST --data '{"fail":0,"token":"another"}' "http://127.0.0.1:$REC_PORT/_control" >/dev/null
s4=$(sha)
hook gh github --ref main --sha "$s4" --delivery d-gh-401
want 202 "push while the forge refuses the token"
j4=$(jbody .job)
nd=$((nd + 1)) nj=$((nj + 1))
wait_rec 10 ".path == \"/repos/team/app/statuses/$s4\"" || fail "no status attempt for $s4"
sleep 3
[ "$(jq -s "[.[] | select(.path == \"/repos/team/app/statuses/$s4\")] | length" "$T/rec.jsonl")" = 1 ] ||
	fail "a 401 from the forge was retried"
api GET "/api/jobs/$j4" "" ""
case $(jbody .status.last_error) in *401*) ;; *) fail "the job does not show the failing status: $body" ;; esac
curl -s -X POST --data "{\"fail\":0,\"token\":\"$STATUS_TOKEN\"}" \
	"http://127.0.0.1:$REC_PORT/_control" >/dev/null

# ---- metrics -----------------------------------------------------------------
curl -s "$BASE/metrics" >"$T/metrics"
for m in stagepipe_deliveries_total 'forge="github"' 'forge="gitea"' 'forge="gitlab"' \
	'outcome="accepted"' 'outcome="duplicate"' 'outcome="unauthorized"' 'outcome="too_large"' \
	'outcome="bad_request"' 'outcome="ignored"' 'outcome="unsupported_media_type"'; do
	grep -qF -- "$m" "$T/metrics" || { cat "$T/metrics"; fail "/metrics lacks $m"; }
done
grep -Eq '^stagepipe_deliveries_total\{[^}]*forge="github"[^}]*outcome="accepted"[^}]*\} [1-9]' \
	"$T/metrics" ||
	grep -Eq '^stagepipe_deliveries_total\{[^}]*outcome="accepted"[^}]*forge="github"[^}]*\} [1-9]' \
		"$T/metrics" || { grep deliveries "$T/metrics"; fail "no accepted github deliveries counted"; }

# ---- SIGTERM, restart without an admin token --------------------------------
expect_counts "before the restart"
stop_serve
grep -q "serve.stop" "$T/serve.log" || fail "no serve.stop line in the log"
grep -q "hook.accepted" "$T/serve.log" || fail "no hook.accepted line in the log"
grep -q "status=401" "$T/serve.log" || fail "no hook.refused status=401 line in the log"
write_config "$T/noadmin.yml" no-admin
start_serve "$T/noadmin.yml"
expect_counts "after the restart"
api GET "/api/jobs/$rj" "" ""
[ "$code/$(jbody .state)" = 200/queued ] || fail "the retried job after a restart: $code $body"
api POST "/api/jobs/$rj/cancel" "" "$ADMIN"
want 403 "cancel when no admin token is configured"
api POST /api/jobs '{"repo":"gt","ref":"main"}' "$ADMIN"
want 403 "trigger when no admin token is configured"
# the duplicate survives the restart too
hook gh github --ref main --sha "$(sha)" --delivery "d-gh-1"
want 200 "duplicate after the restart"
stop_serve
expect_counts "at the end"

# ---- workers, without an engine: a fake `stagepipe run` child -------------
# (config key stagepipe:) that speaks the event protocol: a quick pass, and a
# "sleepy" one that runs until SIGTERM.  Cancel of a running job (how fast
# the child is stopped), drain on SIGTERM (hooks 503, the job requeued),
# a restart runs it again, and a second signal forces (exit 130).
cat >"$T/fake-run.sh" <<'FAKE'
#!/bin/sh
# a stand-in for `stagepipe run ... --json --job-id srv-N --event-ref NAME`
ref= job=
while [ $# -gt 0 ]; do
	case $1 in --event-ref) ref=$2; shift ;; --job-id) job=$2; shift ;; esac
	shift
done
echo "start $job $ref $$" >>"$FAKE_LOG"
stop() {
	echo "term $job $$" >>"$FAKE_LOG"
	echo '{"event":"stage_finished","stage":"test","result":"cancelled","seconds":1}'
	echo '{"event":"pipeline_finished","pipeline":"fake","result":"cancelled","seconds":1}'
	exit 130
}
trap stop TERM INT
echo '{"event":"pipeline_started","pipeline":"fake","job":"'"$job"'","stages":["test"]}'
echo '{"event":"stage_started","stage":"test","target":"testing"}'
echo '{"event":"log","stage":"test","stream":"stdout","line":"hello from '"$job"'"}'
case $ref in
sleepy*) i=0; while [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done ;;
esac
echo '{"event":"stage_finished","stage":"test","result":"passed","seconds":0.1,"exit_code":0,"tests":{"total":1,"passed":1,"failed":0,"errors":0,"skipped":0}}'
echo '{"event":"pipeline_finished","pipeline":"fake","result":"passed","seconds":0.1}'
FAKE
chmod +x "$T/fake-run.sh"
serve_config "$T/work.yml" "127.0.0.1:$PORT" "$T/wdata" <<EOF
workers: 1
admin_token_env: SP_TEST_ADMIN
drain_timeout: 2s
stagepipe: $T/fake-run.sh
env: { FAKE_LOG: $T/fake.log }
repos:
  - name: w
    url: file://$T/app.git
    forge: github
    secret_env: SP_GH_SECRET
EOF
: >"$T/fake.log"
DB=$T/wdata/stagepipe.db
now_ms() { date +%s%3N; }
wait_state() { # wait_state JOB STATE SECONDS
	_n=$(($3 * 10))
	while [ $_n -gt 0 ]; do
		[ "$(sql "SELECT state FROM jobs WHERE id = $1")" = "$2" ] && return 0
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}
wait_child() { # wait_child JOB [N]: until the fake child of job JOB started (N times)
	_n=100
	while [ $_n -gt 0 ]; do
		[ "$(grep -c "^start srv-$1 " "$T/fake.log")" -ge "${2:-1}" ] && return 0
		sleep 0.1
		_n=$((_n - 1))
	done
	cat "$T/fake.log"
	fail "the child of job $1 did not start"
}
whook() { # whook BRANCH: a push to w; sets $code $body $wj
	$SIGN --url "$BASE/hooks/w" --forge github --secret "$GH_SECRET" --ref "$1" --sha "$(sha)" \
		>"$T/hook" 2>&1 || true
	code=$(head -n 1 "$T/hook") body=$(tail -n +2 "$T/hook")
	wj=$(jbody .job)
}
start_serve "$T/work.yml"
whook main
want 202 "push (workers 1)"
wait_state "$wj" passed 10 ||
	fail "job $wj (fake child) did not pass: $(sql "SELECT state, reason FROM jobs WHERE id = $wj")"
api GET "/api/jobs/$wj" "" ""
[ "$(jbody '.stages[0].name + " " + .stages[0].state')" = "test passed" ] || fail "fake job detail: $body"
[ "$(curl -s "$BASE/api/jobs/$wj/log?stage=test")" = "hello from srv-$wj" ] ||
	fail "the job's log: $(curl -s "$BASE/api/jobs/$wj/log?stage=test")"

# cancel a running job: the child is stopped at once (not at the next renew)
whook sleepy-1
want 202 "push sleepy-1"
cj=$wj
wait_child "$cj"
t0=$(now_ms)
api POST "/api/jobs/$cj/cancel"
want 202 "cancel a running job"
[ "$(jbody .state)" = running ] || fail "cancel of a running job: $body"
wait_state "$cj" cancelled 30 || fail "job $cj not cancelled 30 s after the cancel"
dt=$(($(now_ms) - t0))
grep -q "^term srv-$cj " "$T/fake.log" || fail "the child of job $cj got no SIGTERM"
[ "$dt" -le 5000 ] || fail "a cancelled running job took $dt ms to stop (wanted <= 5000 ms)"

# a newer push to the same branch supersedes: the running job is stopped
whook sleepy-3
want 202 "push sleepy-3"
oj=$wj
wait_child "$oj"
whook sleepy-3
want 202 "a newer push to sleepy-3"
nj=$wj
wait_state "$oj" cancelled 10 ||
	fail "job $oj not cancelled by the newer push: $(sql "SELECT state, reason FROM jobs WHERE id = $oj")"
sql "SELECT reason FROM jobs WHERE id = $oj" | grep -q "superseded by job $nj" ||
	fail "superseded job $oj: reason $(sql "SELECT reason FROM jobs WHERE id = $oj")"
wait_child "$nj"
api POST "/api/jobs/$nj/cancel"
wait_state "$nj" cancelled 10 || fail "job $nj not cancelled"

# SIGTERM drains: hooks 503, /readyz 503, after drain_timeout the job is
# cancelled and queued again, exit 0
whook sleepy-2
want 202 "push sleepy-2"
dj=$wj
wait_child "$dj"
kill -TERM "$srv_pid"
sleep 0.5
whook main
want 503 "a hook while draining"
[ "$(jbody .error)" = draining ] || fail "hook while draining: $body"
code=$(curl -s -o "$T/api" -w '%{http_code}' "$BASE/readyz")
[ "$code/$(cat "$T/api")" = "503/draining" ] || fail "/readyz while draining: $code $(cat "$T/api")"
rc=0
wait "$srv_pid" || rc=$?
srv_pid=
[ "$rc" = 0 ] || fail "serve exited $rc after a drain, wanted 0"
grep -q "^term srv-$dj " "$T/fake.log" || fail "the drain did not stop the child of job $dj"
[ "$(sql "SELECT state FROM jobs WHERE id = $dj")" = queued ] ||
	fail "job $dj after the drain: $(sql "SELECT state, reason FROM jobs WHERE id = $dj")"
# the restart runs it again; a second signal forces: exit 130, queued again
start_serve "$T/work.yml"
wait_child "$dj" 2
[ "$(sql "SELECT attempt FROM jobs WHERE id = $dj")" = 2 ] || fail "job $dj: not its attempt 2"
kill -TERM "$srv_pid"
sleep 0.3
kill -TERM "$srv_pid"
rc=0
wait "$srv_pid" || rc=$?
srv_pid=
[ "$rc" = 130 ] || fail "serve exited $rc after a second SIGTERM, wanted 130"
[ "$(sql "SELECT state FROM jobs WHERE id = $dj")" = queued ] ||
	fail "job $dj after a forced stop: $(sql "SELECT state, reason FROM jobs WHERE id = $dj")"
# no fake child left running
for pid in $(sed -n 's/^start .* \([0-9]*\)$/\1/p' "$T/fake.log"); do
	kill -0 "$pid" 2>/dev/null && fail "a job child (pid $pid) outlived the server"
done
# ---- TLS (libmicrohttpd + GnuTLS), IPv4 and IPv6 -------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 2 \
	-subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,IP:::1" >/dev/null 2>&1 ||
	fail "openssl could not make a test certificate"
TPORT=$(free_port)
serve_config "$T/tls.yml" "[\"127.0.0.1:$TPORT\", \"[::1]:$TPORT\"]" "$T/tlsdata" <<EOF
workers: 0
tls: { cert: $T/tls.crt, key: $T/tls.key }
repos:
  - name: gh
    url: file://$T/app.git
    forge: github
    secret_env: SP_GH_SECRET
EOF
serve_up "$T/tls.yml" "https://127.0.0.1:$TPORT" --cacert "$T/tls.crt"
if ip -6 addr show lo 2>/dev/null | grep -q '::1'; then
	[ "$(curl -s -g --cacert "$T/tls.crt" "https://[::1]:$TPORT/healthz")" = ok ] ||
		fail "serve with tls: no answer on [::1]"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$TPORT/healthz" || true)
[ "$code" != 200 ] || fail "serve with tls answered plain http"
stop_serve

# a sanitizer build (make asan) reports here
if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" >/dev/null 2>&1; then
	grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" | head -60
	fail "sanitizer reports in serve's log"
fi
exit 0
