# The web UI in a real browser (tests/browser/ui.test.mjs: Debian's
# chromium driven by playwright-core) against a real `stagepipe serve`
# running the example app's tests on the real engine: a webhook's job shows
# up and turns passed without a reload; the job page shows 17 passed and the
# coverage; a failing job shows its test and assertion; badges; the live log
# of a running stage; cancel from the button; a 200 MB log shows its end
# while fetching only a window of it; repos, agents, phone width, keyboard.  Screenshots of each page go to build/ui-screenshots/ (kept).
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${DOCKER_HOST:?needs contrib/engine.sh up}"
command -v jq >/dev/null 2>&1 || fail "jq not found"
command -v node >/dev/null 2>&1 || fail "node not found: contrib/deps.sh --browser"
command -v chromium >/dev/null 2>&1 || fail "chromium not found: contrib/deps.sh --browser"
[ -d "$top/tests/browser/node_modules/playwright-core" ] ||
	fail "playwright-core not installed: contrib/deps.sh --browser (npm ci in tests/browser)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SOCK=${DOCKER_HOST#unix://}

export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME" "$T/data"
git config --global user.name "Ada Tester"
git config --global user.email ada@example.com
build_network
P_UI=sptest-ui-$(rnd 4)

# ---- the repository: main passes, broken fails a test, slow prints a test
# line every 3 s and then waits (for the live log and the cancel) ----------
mkdir -p "$T/proj/contrib" "$T/proj/ci"
cp -r "$top/contrib/example-app" "$T/proj/contrib/example-app"
cat >"$T/proj/stagepipe.yml" <<EOF
version: 1
name: $P_UI
build:
  context: contrib/example-app
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: \${env.BUILD_NETWORK:-default}
stages:
  - name: test
    target: testing
    pytest: [-v, --cov=app]
    coverage: { min: 80 }
    env: { PYTHONUNBUFFERED: "1" }
    timeout: 10m
  - name: package
    target: runtime
    needs: [test]
    healthcheck: true
EOF
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "The example app"
git clone -q --bare "$T/proj" "$T/app.git"
git -C "$T/proj" checkout -q -b broken
cat >"$T/proj/contrib/example-app/tests/test_broken.py" <<'EOF'
def test_broken_on_purpose():
    total = 1 + 1
    assert total == 3, "one and one make two"
EOF
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "Break a test on purpose"
git -C "$T/proj" checkout -q main
git -C "$T/proj" checkout -q -b slow
{
	echo "import time"
	i=0
	while [ $i -lt 8 ]; do
		printf '\n\ndef test_step_%s():\n    time.sleep(3)\n' "$i"
		i=$((i + 1))
	done
	printf '\n\ndef test_zz_wait():\n    time.sleep(600)\n'
} >"$T/proj/contrib/example-app/tests/test_slow.py"
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "Slow tests"
git -C "$T/proj" push -q "$T/app.git" broken slow

SECRET=sec-$(rnd 12)
ADMIN=adm-$(rnd 12)
export SP_APP_SECRET="$SECRET" SP_TEST_ADMIN="$ADMIN"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
workers: 2
admin_token_env: SP_TEST_ADMIN
job_timeout: 15m
env:
  DOCKER_HOST: "$DOCKER_HOST"
  BASE_IMAGE: "$BASE_IMAGE"
  BUILD_NETWORK: "$BUILD_NETWORK"
repos:
  - name: app
    url: file://$T/app.git
    forge: github
    secret_env: SP_APP_SECRET
EOF
cat >"$T/push.sh" <<EOF
#!/bin/sh
# push.sh BRANCH: a signed GitHub push of the branch's head; prints the job id
sha=\$(git -C "$T/app.git" rev-parse "refs/heads/\$1")
$PY "$top/tests/tools/sign_hook.py" --url "$BASE/hooks/app" --forge github \\
	--secret "$SECRET" --ref "\$1" --sha "\$sha" --message "\$(git -C "$T/app.git" log -1 --format=%s "\$sha")" \\
	--author "Ada Tester" >"$T/hook.out" 2>&1
[ "\$(head -n 1 "$T/hook.out")" = 202 ] || { cat "$T/hook.out"; exit 1; }
tail -n +2 "$T/hook.out" | jq -r .job
EOF
chmod 755 "$T/push.sh"

srv_pid=
containers() {
	curl -s --unix-socket "$SOCK" -G "http://localhost/containers/json" --data-urlencode "all=1" \
		--data-urlencode "filters={\"label\":[\"io.stagepipe.pipeline=$P_UI\"]}" | jq -r '.[].Id'
}
test_cleanup() {
	stop_pid "$srv_pid"
	for c in $(containers); do
		curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE "http://localhost/containers/$c?force=1"
	done
	wait 2>/dev/null
	true
}
serve_up "$T/serve.yml" "$BASE"

if [ "$STORE" = postgres ]; then
	# the store's chunks, as its servers write them: whole lines, under
	# 64 KiB each (3,378 chunks of 800 lines of 74 bytes), at the log's end
	cat >"$T/biglog.sh" <<EOF
#!/bin/sh
# biglog.sh JOB: the job's test log grows by 200 MB
psql -XAtq -v ON_ERROR_STOP=1 "$(_pg_url_of "$T/data")" -c "
INSERT INTO job_log (job_id, stage, off, data)
SELECT \$1, 'test', e.o + g.i * 59200,
       convert_to(repeat('a line of a very long test log, with some words to fill it up: 0123456789' || chr(10), 800), 'UTF8')
FROM generate_series(0, 3377) AS g(i),
     (SELECT coalesce(max(off + length(data)), 0) AS o FROM job_log WHERE job_id = \$1 AND stage = 'test') AS e;
INSERT INTO job_log (job_id, stage, off, data)
SELECT \$1, 'test', coalesce(max(off + length(data)), 0), convert_to('the end of a 200 MB log' || chr(10), 'UTF8')
FROM job_log WHERE job_id = \$1 AND stage = 'test';"
EOF
else
	cat >"$T/biglog.sh" <<EOF
#!/bin/sh
# biglog.sh JOB: the job's test log grows to 200 MB
yes "a line of a very long test log, with some words to fill it up: 0123456789" |
	head -c 200000000 >>"$T/data/logs/\$1/test.log"
echo "the end of a 200 MB log" >>"$T/data/logs/\$1/test.log"
EOF
fi
chmod 755 "$T/biglog.sh"

# (STORE=postgres: build/ui-screenshots-postgres/, beside SQLite's)
shots=$top/build/ui-screenshots
[ "$STORE" != postgres ] || shots=$shots-postgres
SHOTS=${UI_SCREENSHOTS:-$shots}
rm -rf "$SHOTS"
rc=0
(cd "$top/tests/browser" && BASE="$BASE" ADMIN="$ADMIN" PUSH="$T/push.sh" SHOTS="$SHOTS" \
	BIGLOG="$T/biglog.sh" \
	timeout 1800 node ui.test.mjs) || rc=$?
if [ "$rc" != 0 ]; then
	tail -30 "$T/serve.log"
	fail "browser tests failed (screenshots in $SHOTS)"
fi
echo "screenshots: $SHOTS"
ls "$SHOTS"

grep -qF "$ADMIN" "$T/serve.log" && fail "the admin token is in serve's log"
if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" >/dev/null 2>&1; then
	grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" | head -60
	fail "sanitizer reports in serve's log"
fi
kill -TERM "$srv_pid"
wait "$srv_pid" 2>/dev/null
srv_pid=
[ -z "$(containers)" ] || fail "containers of this test are left: $(containers)"
exit 0
