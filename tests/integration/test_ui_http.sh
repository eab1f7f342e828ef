# The web UI's server side against a real `stagepipe serve`, no engine:
# the one local slot runs tests/tools/fake_run.sh as its `stagepipe`, so
# jobs made through the API finish (one stage "test", 3 tests passed).
# Checked with curl: the page shell on every page URL (and /jobs/ID for a
# browser only), the built-in assets with ETag and 304, read access with a
# read token (Bearer and the login cookie; 401 without), the cookie's
# attributes and the CSRF header for mutating calls, /api/session,
# /api/repos, the job rows' test totals, the job change stream
# (/api/events), log ranges at their edges (suffix, A-B, past the end,
# an empty file, HEAD), badges (escaped, a branch with a slash), no token
# in the log, and a stream that ends when the server stops.
#
#   BIN=$PWD/build/stagepipe top=$PWD sh tests/integration/test_ui_http.sh
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null 2>&1 || fail "jq not found"
: "${BIN:?BIN=path/to/stagepipe}"
: "${top:=$(cd "$(dirname "$0")/../.." && pwd)}"

ADMIN=adm-$(rnd 16)
READ=rd-$(rnd 16)
SECRET=hs-$(rnd 12)
export SP_UI_ADMIN="$ADMIN" SP_UI_READ="$READ" SP_UI_SECRET="$SECRET"
SHA1=$(rnd 20)
SHA2=$(rnd 20)

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
mkdir -p "$T/data"
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
public_url: http://ci.test
workers: 1
stagepipe: $top/tests/tools/fake_run.sh
env: { FAKE_MODE: pass }
admin_token_env: SP_UI_ADMIN
read_token_env: SP_UI_READ
drain_timeout: 5s
repos:
  - name: app
    url: https://ci-bot:pw-$SECRET@git.example.com/team/app.git
    forge: github
    secret_env: SP_UI_SECRET
EOF

srv_pid=
sse_pid=
test_cleanup() {
	[ -n "$sse_pid" ] && kill "$sse_pid" 2>/dev/null
	[ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null
	wait 2>/dev/null
	true
}

serve_up "$T/serve.yml" "$BASE"

# req [curl options] URL-PATH: sets $code, $body ($T/body), headers in $T/hdr
req() {
	_p=
	for _a; do _p=$_a; done
	: >"$T/body"  # curl writes nothing (and leaves the file) for an empty body
	code=$(curl -s -D "$T/hdr" -o "$T/body" -w '%{http_code}' "$@" 2>/dev/null |
		tail -c 3) || true
	body=$(cat "$T/body")
	: "$_p"
}
want() { # want CODE WHAT
	[ "$code" = "$1" ] || fail "$2: HTTP $code, wanted $1; body: $(head -c 300 "$T/body")"
}
hdr() { # hdr NAME: the header's value (last one), without CR
	grep -i "^$1:" "$T/hdr" | tail -n 1 | sed 's/^[^:]*: *//' | tr -d '\r'
}
want_hdr() { # want_hdr NAME TEXT WHAT: the header holds TEXT
	case "$(hdr "$1")" in
	*"$2"*) ;;
	*) fail "$3: $1 is \"$(hdr "$1")\", wanted it to hold \"$2\"" ;;
	esac
}
AUTH_R="Authorization: Bearer $READ"
AUTH_A="Authorization: Bearer $ADMIN"

# ---- the page shell: every page URL, public -------------------------------
for p in / /agents /repos; do
	req "$BASE$p"
	want 200 "GET $p"
	want_hdr Content-Type text/html "GET $p"
	want_hdr Cache-Control no-cache "GET $p"
	case $body in *"<html"* | *"<!doctype"* | *"<!DOCTYPE"*) ;; *) fail "GET $p: not the shell" ;; esac
done
if [ -f "$top/web/index.html" ]; then
	cmp -s "$T/body" "$top/web/index.html" || fail "/ is not web/index.html"
fi
req -X POST "$BASE/"
want 405 "POST /"

# ---- assets: built in, typed, cached with an ETag ---------------------------
n_assets=0
for f in $(cd "$top" && find web -type f ! -name '.*' ! -name '*~' 2>/dev/null); do
	rel=${f#web/}
	[ "$rel" = index.html ] && continue
	req "$BASE/ui/$rel"
	want 200 "GET /ui/$rel"
	cmp -s "$T/body" "$top/$f" || fail "/ui/$rel differs from $f (rebuild the binary?)"
	case $rel in
	*.js) want_hdr Content-Type "text/javascript" "/ui/$rel" ;;
	*.css) want_hdr Content-Type "text/css" "/ui/$rel" ;;
	*.svg) want_hdr Content-Type "image/svg+xml" "/ui/$rel" ;;
	esac
	want_hdr Cache-Control "max-age=300" "/ui/$rel"
	etag=$(hdr ETag)
	[ -n "$etag" ] || fail "/ui/$rel has no ETag"
	req -H "If-None-Match: $etag" "$BASE/ui/$rel"
	want 304 "/ui/$rel with its ETag"
	[ -z "$body" ] || fail "a 304 with a body"
	req -H 'If-None-Match: "0000"' "$BASE/ui/$rel"
	want 200 "/ui/$rel with another ETag"
	n_assets=$((n_assets + 1))
done
echo "  assets checked: $n_assets"
req "$BASE/ui/index.html"
want 404 "/ui/index.html"
req "$BASE/ui/nope.js"
want 404 "/ui/nope.js"
req --path-as-is "$BASE/ui/../Makefile"
[ "$code" = 404 ] || [ "$code" = 400 ] || fail "/ui/../Makefile: HTTP $code"

# ---- read access with a read token ------------------------------------------
for p in /api/jobs /api/jobs/1 /api/repos /api/agents "/api/jobs/1/log?stage=test" /jobs/1; do
	req "$BASE$p"
	want 401 "GET $p without a token"
	want_hdr WWW-Authenticate Bearer "GET $p without a token"
	req -H "Authorization: Bearer nope-$READ" "$BASE$p"
	want 401 "GET $p with a wrong token"
done
req -H 'Accept: text/event-stream' "$BASE/api/events"
want 401 "GET /api/events without a token"
for p in /healthz /readyz /metrics /badge/app/main.svg; do
	req "$BASE$p"
	want 200 "GET $p is public"
done
req -H 'Accept: text/html,application/xhtml+xml' "$BASE/jobs/1"
want 200 "a browser's /jobs/1 (the shell is public)"
want_hdr Content-Type text/html "/jobs/1 for a browser"
req -H "$AUTH_R" "$BASE/api/jobs"
want 200 "GET /api/jobs with the read token"
req -H "$AUTH_A" "$BASE/api/agents"
want 200 "GET /api/agents with the admin token"
req "$BASE/api/session"
want 200 "GET /api/session"
[ "$(printf '%s' "$body" | jq -c '[.read, .admin, .read_public, .admin_configured]')" = \
	'[false,false,false,true]' ] || fail "session without a token: $body"
req -H "$AUTH_R" "$BASE/api/session"
[ "$(printf '%s' "$body" | jq -c '[.read, .admin]')" = '[true,false]' ] ||
	fail "session with the read token: $body"
req -H "$AUTH_A" "$BASE/api/session"
[ "$(printf '%s' "$body" | jq -c '[.read, .admin]')" = '[true,true]' ] ||
	fail "session with the admin token: $body"
# the read token cannot mutate
req -X POST -H "$AUTH_R" -H 'Content-Type: application/json' \
	--data "{\"repo\":\"app\",\"ref\":\"main\",\"sha\":\"$SHA1\"}" "$BASE/api/jobs"
want 401 "a trigger with the read token"

# ---- jobs (the fake child) and their rows -----------------------------------
# job events: a stream opened before the jobs exist
curl -s -N -H "$AUTH_R" -H 'Accept: text/event-stream' "$BASE/api/events" >"$T/events" 2>&1 &
sse_pid=$!
trigger() { # trigger REF SHA: prints the new job's id
	req -X POST -H "$AUTH_A" -H 'Content-Type: application/json' \
		--data "{\"repo\":\"app\",\"ref\":\"$1\",\"sha\":\"$2\"}" "$BASE/api/jobs"
	want 201 "trigger $1"
	printf '%s' "$body" | jq -r .job
}
wait_final() { # wait_final ID
	_i=0
	while :; do
		req -H "$AUTH_R" "$BASE/api/jobs/$1"
		case $(printf '%s' "$body" | jq -r .state) in
		passed | failed | error | cancelled | skipped) return ;;
		esac
		_i=$((_i + 1))
		[ $_i -lt 300 ] || fail "job $1 not final after 30 s: $body"
		sleep 0.1
	done
}
j1=$(trigger main "$SHA1")
wait_final "$j1"
[ "$(printf '%s' "$body" | jq -r .state)" = passed ] || fail "job $j1: $body"
req -H "$AUTH_R" "$BASE/api/jobs?repo=app"
row=$(printf '%s' "$body" | jq -c ".jobs[] | select(.id == $j1)")
[ "$(printf '%s' "$row" | jq -c .tests)" = '{"total":3,"passed":3,"failed":0}' ] ||
	fail "job row tests: $row"
[ "$(printf '%s' "$row" | jq -c '[.coverage, .coverage_min]')" = '[null,null]' ] ||
	fail "job row coverage: $row"
# the change stream told about it (created, started, finished)
i=0
until grep -q "\"changed\":\[.*\b$j1\b" "$T/events"; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$T/events"; fail "no job change event for job $j1"; }
	sleep 0.1
done
grep -q '^event: jobs$' "$T/events" || fail "no event: jobs line"
grep -q '^id: [0-9][0-9]*$' "$T/events" || fail "no id: line"
kill "$sse_pid" 2>/dev/null; wait "$sse_pid" 2>/dev/null; sse_pid=

j2=$(trigger feature/x "$SHA2")
wait_final "$j2"

# ---- /api/repos ------------------------------------------------------------
req -H "$AUTH_R" "$BASE/api/repos"
want 200 "GET /api/repos"
case $body in *"$SECRET"* | *ci-bot*) fail "/api/repos shows the URL's credentials: $body" ;; esac
[ "$(printf '%s' "$body" | jq -r '.repos[0].name + " " + .repos[0].forge + " " + .repos[0].url_display')" = \
	"app github https://git.example.com/team/app.git" ] || fail "/api/repos: $body"
[ "$(printf '%s' "$body" | jq -c '[.repos[0].branches[] | [.branch, .job, .state, .sha]]')" = \
	"[[\"feature/x\",$j2,\"passed\",\"$SHA2\"],[\"main\",$j1,\"passed\",\"$SHA1\"]]" ] ||
	fail "/api/repos branches: $body"
printf '%s' "$body" | jq -e '.repos[0].branches[0] | has("title") and has("author") and
	has("finished") and has("seconds")' >/dev/null || fail "/api/repos branch fields: $body"

# ---- badges: public, escaped, a branch with a slash -------------------------
req "$BASE/badge/app/main.svg"
want 200 "badge main"
want_hdr Content-Type image/svg+xml "badge"
want_hdr Cache-Control no-cache "badge"
case $body in *">passed<"*) ;; *) fail "badge main: $body" ;; esac
req "$BASE/badge/app/feature%2Fx.svg"
case $body in *">passed<"*) ;; *) fail "badge feature%2Fx: $body" ;; esac
req "$BASE/badge/app/feature/x.svg"
case $body in *">passed<"*) ;; *) fail "badge feature/x: $body" ;; esac
req "$BASE/badge/app/nothing-here.svg"
want 200 "badge of a branch without jobs"
case $body in *"no builds"*) ;; *) fail "badge without jobs: $body" ;; esac
req "$BASE/badge/app/%3Cscript%3Ealert(1)%3C%2Fscript%3E.svg"
case $body in *"<script"*) fail "badge: the branch is not escaped: $body" ;; esac
case $body in *"&lt;script&gt;"*) ;; *) fail "badge: the branch's text is not there: $body" ;; esac
req "$BASE/badge/nope/main.svg"
want 404 "badge of an unknown repository"
req "$BASE/badge/app"
want 404 "a badge URL without a branch"

# ---- log ranges -------------------------------------------------------------
LOG="$BASE/api/jobs/$j1/log?stage=test"
req -H "$AUTH_R" "$LOG"
want 200 "the whole log"
size=$(wc -c <"$T/body")
[ "$size" -gt 20 ] || fail "the log is too short to test ranges: $body"
cp "$T/body" "$T/whole.log"
want_hdr Accept-Ranges bytes "the log"
req -I -H "$AUTH_R" "$LOG"
want 200 "HEAD of the log"
[ "$(hdr Content-Length)" = "$size" ] || fail "HEAD: Content-Length $(hdr Content-Length), wanted $size"
range() { # range RANGE CODE FROM TO: sets $body; FROM-TO the bytes (1-based for cut)
	req -H "$AUTH_R" -H "Range: $1" "$LOG"
	want "$2" "Range: $1"
}
range "bytes=-10" 206
want_hdr Content-Range "bytes $((size - 10))-$((size - 1))/$size" "bytes=-10"
tail -c 10 "$T/whole.log" | cmp -s - "$T/body" || fail "bytes=-10 is not the last 10 bytes"
range "bytes=-$((size + 1000))" 206
want_hdr Content-Range "bytes 0-$((size - 1))/$size" "a suffix larger than the file"
cmp -s "$T/whole.log" "$T/body" || fail "a suffix larger than the file is not the whole file"
range "bytes=0-4" 206
want_hdr Content-Range "bytes 0-4/$size" "bytes=0-4"
[ "$(wc -c <"$T/body")" = 5 ] || fail "bytes=0-4 is not 5 bytes"
head -c 5 "$T/whole.log" | cmp -s - "$T/body" || fail "bytes=0-4 is not the first 5 bytes"
range "bytes=3-" 206
want_hdr Content-Range "bytes 3-$((size - 1))/$size" "bytes=3-"
range "bytes=2-$((size + 50))" 206
want_hdr Content-Range "bytes 2-$((size - 1))/$size" "an end past the file"
range "bytes=$size-" 416
want_hdr Content-Range "bytes */$size" "a start at the end"
range "bytes=$size-$((size + 10))" 416
want_hdr Content-Range "bytes */$size" "A-B beyond the end"
range "bytes=-0" 416
range "bytes=5-2" 200
cmp -s "$T/whole.log" "$T/body" || fail "an invalid range is not the whole file"
# an empty log file (SQLite: logs are files; the PostgreSQL store has no
# empty log: a stage's log there begins with its first chunk of lines)
if [ "$STORE" != postgres ]; then
	mkdir -p "$T/data/logs/$j1"
	: >"$T/data/logs/$j1/empty.log"
	LOG="$BASE/api/jobs/$j1/log?stage=empty"
	range "bytes=-262144" 200
	[ ! -s "$T/body" ] || fail "the empty log has bytes"
	range "bytes=0-" 416
	want_hdr Content-Range "bytes */0" "bytes=0- of an empty log"
	req -H "$AUTH_R" "$LOG"
	want 200 "an empty log"
fi

# ---- the login cookie --------------------------------------------------------
req -X POST -H 'Content-Type: application/json' --data '{"token":"wrong"}' "$BASE/api/login"
want 401 "login with a wrong token"
[ -z "$(hdr Set-Cookie)" ] || fail "a wrong login set a cookie"
req -X POST --data 'not json' "$BASE/api/login"
want 400 "login without JSON"
req "$BASE/api/login"
want 405 "GET /api/login"
req -X POST -H 'Content-Type: application/json' --data "{\"token\":\"$READ\"}" "$BASE/api/login"
want 204 "login with the read token"
cookie=$(hdr Set-Cookie)
case $cookie in sp_token=*) ;; *) fail "login: Set-Cookie $cookie" ;; esac
for a in HttpOnly SameSite=Strict Path=/ Max-Age=; do
	case $cookie in *"$a"*) ;; *) fail "the cookie lacks $a: $cookie" ;; esac
done
case $cookie in *Secure*) fail "a Secure cookie over http: $cookie" ;; esac
case $cookie in *"$READ"*) fail "the cookie holds the token" ;; esac
rcookie=$(printf '%s' "$cookie" | sed 's/;.*//')
req -H "Cookie: $rcookie" "$BASE/api/jobs"
want 200 "GET /api/jobs with the read cookie"
req -H "Cookie: $rcookie" "$BASE/api/session"
[ "$(printf '%s' "$body" | jq -c '[.read, .admin]')" = '[true,false]' ] ||
	fail "session with the read cookie: $body"
req -X POST -H "Cookie: $rcookie" -H 'X-Stagepipe: 1' "$BASE/api/jobs/$j1/retry"
want 401 "a retry with the read cookie"
req -H "Cookie: sp_token=0000$(printf '%s' "$rcookie" | cut -c14-)" "$BASE/api/jobs"
want 401 "a wrong cookie"

req -X POST -H 'Content-Type: application/json' --data "{\"token\":\"$ADMIN\"}" "$BASE/api/login"
want 204 "login with the admin token"
acookie=$(hdr Set-Cookie | sed 's/;.*//')
[ "$acookie" != "$rcookie" ] || fail "the admin and read cookies are the same"
req -H "Cookie: $acookie" "$BASE/api/session"
[ "$(printf '%s' "$body" | jq -c '[.read, .admin]')" = '[true,true]' ] ||
	fail "session with the admin cookie: $body"
# the cookie alone does not mutate (CSRF); with X-Stagepipe: 1 it does
req -X POST -H "Cookie: $acookie" "$BASE/api/jobs/$j1/retry"
want 403 "a retry with the admin cookie and no X-Stagepipe header"
req -X POST -H "Cookie: $acookie" -H 'X-Stagepipe: 1' "$BASE/api/jobs/$j1/retry"
want 201 "a retry with the admin cookie and X-Stagepipe: 1"
j3=$(printf '%s' "$body" | jq -r .job)
wait_final "$j3"
# Bearer needs no header
req -X POST -H "$AUTH_A" "$BASE/api/jobs/$j1/retry"
want 201 "a retry with the admin Bearer token"
wait_final "$(printf '%s' "$body" | jq -r .job)"
req -X POST "$BASE/api/logout"
want 204 "logout"
case $(hdr Set-Cookie) in *"sp_token=;"*"Max-Age=0"*) ;; *) fail "logout: $(hdr Set-Cookie)" ;; esac

# ---- no token and no cookie value in the server's log ------------------------
vr=$(printf '%s' "$rcookie" | sed 's/^sp_token=//')
va=$(printf '%s' "$acookie" | sed 's/^sp_token=//')
for s in "$ADMIN" "$READ" "$SECRET" "$vr" "$va"; do
	if grep -qF -- "$s" "$T/serve.log" "$T/serve.out"; then
		fail "a secret is in the server's log"
	fi
done

# ---- a job change stream ends when the server stops ---------------------------
curl -s -N -H "$AUTH_R" -H 'Accept: text/event-stream' "$BASE/api/events" >"$T/events2" 2>&1 &
sse_pid=$!
i=0
until grep -q 'retry:' "$T/events2"; do
	i=$((i + 1))
	[ $i -lt 50 ] || fail "the second event stream did not start"
	sleep 0.1
done
kill -TERM "$srv_pid"
rc=0
wait "$srv_pid" || rc=$?
srv_pid=
[ "$rc" = 0 ] || { tail -20 "$T/serve.log"; fail "serve exited $rc after SIGTERM"; }
# the stream ended with the server (curl is done, not hanging on)
i=0
while kill -0 "$sse_pid" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 50 ] || fail "the event stream outlived the server"
	sleep 0.1
done
wait "$sse_pid" 2>/dev/null
sse_pid=
echo "PASS test_ui_http"
