# stagepipe run as the job process of serve and agent: --sha, --job-id,
# --event/--event-ref (the pipeline's on: rules), --permit-stdin (the
# promote permit asked of the parent through stdout/stdin, answered here by
# a shell loop reading the JSON stream live through a pipe), and SIGTERM
# removing the job's containers (exit 130).
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${REGISTRY:?needs contrib/engine.sh up}"

export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git config --global user.name Test
git config --global user.email test@example.com
build_network

# the engine's API: engine GET PATH FILTERS-JSON
engine() {
	curl -fsS -G --unix-socket "${DOCKER_HOST#unix://}" "http://localhost$1" \
		--data-urlencode "filters=$2"
}
tags() { curl -fsS "http://$REGISTRY/v2/fastapi-app/tags/list"; }

# commit A, then B on main: jobs name the commit they build with --sha
mkdir -p "$T/proj/contrib" "$T/proj/pipelines"
cp -r "$top/contrib/example-app" "$T/proj/contrib/example-app"
cp "$top/pipelines/fastapi.yml" "$T/proj/pipelines/fastapi.yml"  # on: push main, tag
git -C "$T/proj" init -q -b main
git -C "$T/proj" add -A
git -C "$T/proj" commit -qm "commit A"
echo "# $(date +%s%N) A" >>"$T/proj/contrib/example-app/README.md"
git -C "$T/proj" commit -qam "commit A2"
A=$(git -C "$T/proj" rev-parse HEAD)
echo "# $(date +%s%N) B" >>"$T/proj/contrib/example-app/README.md"
git -C "$T/proj" commit -qam "commit B"
B=$(git -C "$T/proj" rev-parse HEAD)
a7=$(echo "$A" | cut -c1-7)
b7=$(echo "$B" | cut -c1-7)
git clone -q --bare "$T/proj" "$T/app.git"
URL="file://$T/app.git"
mkdir -p "$T/elsewhere"
cd "$T/elsewhere"

# 1. usage errors: exit 2 before anything
run "$BIN" run --repo "$URL" --job-id "a/b"
expect_rc 2
expect_in err "--job-id"
run "$BIN" run --repo "$URL" --event push
expect_rc 2
expect_in err "--event push needs --event-ref"
run "$BIN" run --repo "$URL" --event deploy --event-ref main
expect_rc 2
run "$BIN" run --sha "$A"
expect_rc 2
expect_in err "--sha needs --repo"

# 2. an event the on: rules exclude: nothing built, skipped with the reason, exit 0
run "$BIN" run --repo "$URL" --ref refs/heads/main --sha "$B" -f pipelines/fastapi.yml \
	--job-id srv-skip --event push --event-ref dev --json
expect_rc 0
expect_in out '{"event":"pipeline_started","pipeline":"fastapi-app","job":"srv-skip"'
expect_in out '{"event":"pipeline_finished","pipeline":"fastapi-app","result":"skipped","seconds":0,"message":"on.push does not list branch \"dev\""}'
expect_not_in out '"stage_started"'
[ "$(wc -l <"$T/out")" = 2 ] || { cat "$T/out"; fail "more than two lines"; }
run "$BIN" run --repo "$URL" --sha "$B" -f pipelines/fastapi.yml --event pull_request \
	--event-ref main
expect_rc 0
expect_in out "pipeline fastapi-app skipped"
expect_in out "on.pull_request is off: pull requests are not built"

# 3. granted: the parent reads the stream live and answers the request it
#    sees; --sha builds A although main is at B; pushed under A
mkfifo "$T/in" "$T/events"
"$BIN" run --repo "$URL" --ref refs/heads/main --sha "$A" -f pipelines/fastapi.yml \
	--job-id srv-1 --event push --event-ref refs/heads/main --permit-stdin --json \
	<"$T/in" >"$T/events" 2>"$T/err" &
pid=$!
exec 3>"$T/in"
: >"$T/out"
asked=0
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$T/out"
	case $line in
	'{"event":"promote_request","stage":"promote"}')
		asked=$((asked + 1))
		# nothing tagged before the answer
		grep -q '"line":"tagged ' "$T/out" && fail "tagged before the permit"
		echo '{"granted":true}' >&3 ;;
	esac
done <"$T/events"
rc=0
wait "$pid" || rc=$?
exec 3>&-
expect_rc 0
[ "$asked" = 1 ] || fail "asked $asked times"
expect_in out '"job":"srv-1"'
expect_in out '"line":"promote permit granted"'
expect_in out "\"line\":\"tagged $REGISTRY/fastapi-app:$a7\""
expect_in out '"result":"passed"'
expect_in err "at $a7 (main)"
tags | grep -q "\"$a7\"" || { tags; fail "no image tagged $a7 in the registry"; }
engine /images/json '{"label":["io.stagepipe.job=srv-1"]}' | grep -q '"Id"' ||
	fail "no image labelled io.stagepipe.job=srv-1"

# 4. refused: nothing tagged or pushed, the stage ends error, exit 3
printf '%s\n' '{"granted":false,"reason":"job 41 already promoted this commit"}' >"$T/answer"
run "$BIN" run --repo "$URL" --ref refs/heads/main --sha "$B" -f pipelines/fastapi.yml \
	--job-id srv-2 --event push --event-ref main --permit-stdin --json <"$T/answer"
expect_rc 3
expect_in out '{"event":"promote_request","stage":"promote"}'
expect_in out '"result":"error","seconds":'
expect_in out '"message":"promote refused: job 41 already promoted this commit"'
expect_not_in out '"line":"tagged '
tags | grep -q "\"$b7\"" && fail "$b7 was pushed although refused"
engine /images/json "{\"reference\":[\"$REGISTRY/fastapi-app:$b7\"]}" | grep -q '"Id"' &&
	fail "$b7 was tagged although refused"

# 5. no answer at all (the parent went away): refused
run "$BIN" run --repo "$URL" --sha "$B" -f pipelines/fastapi.yml --job-id srv-3 \
	--event manual --permit-stdin --no-push </dev/null
expect_rc 3
expect_in out "promote refused: no answer from the server"
expect_not_in out ":: tagged "

# 6. SIGTERM during the job: its containers are removed, exit 130
"$BIN" run --repo "$URL" --sha "$B" -f pipelines/fastapi.yml --job-id srv-term --json \
	--no-push >"$T/out" 2>"$T/err" &
pid=$!
i=0
until grep -q '"stage_started","stage":"test"' "$T/out"; do
	i=$((i + 1))
	[ "$i" -lt 600 ] || fail "the test stage never started"
	sleep 0.1
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
expect_rc 130
expect_in out '"event":"pipeline_finished","pipeline":"fastapi-app","result":"cancelled"'
left=$(engine /containers/json?all=1 '{"label":["io.stagepipe.job=srv-term"]}')
[ "$left" = "[]" ] || fail "containers left behind: $left"
exit 0
