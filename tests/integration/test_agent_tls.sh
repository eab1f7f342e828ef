# stagepipe agent over https, without an engine: the jobs are
# tests/tools/fake_run.sh behind a wrapper that notes its environment.
#
#   - an agent without --ca-file refuses the server's private certificate
#     (libcurl checks it by default) and leases nothing
#   - with --ca-file it leases and finishes a job; the token came from
#     STAGEPIPE_AGENT_TOKEN and is not in the job's environment; the
#     repository's git credentials are, and in no log
# stores: sqlite postgres
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null 2>&1 || fail "jq not found"
command -v openssl >/dev/null 2>&1 || fail "openssl not found"

export GIT_CONFIG_NOSYSTEM=1 HOME="$T/home"
mkdir -p "$HOME"
git init -q -b main "$T/src"
git -C "$T/src" -c user.name=T -c user.email=t@example.com commit -q --allow-empty -m one
git clone -q --bare "$T/src" "$T/app.git"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 2 \
	-subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 ||
	fail "openssl could not make a test certificate"

TOKEN=agt-$(rnd 16)
GIT_TOKEN=git-$(rnd 16)
ADMIN=adm-$(rnd 12)
export SP_A1_TOKEN="$TOKEN" SP_GIT_TOKEN="$GIT_TOKEN" SP_ADMIN="$ADMIN" SP_SECRET=hook-$(rnd 8)

# the job: what its environment holds, then a one-stage pipeline that passes
cat >"$T/job.sh" <<EOF
#!/bin/sh
{
	env | grep -q -- "$TOKEN" && echo "agent token: present" || echo "agent token: absent"
	[ "\$STAGEPIPE_GIT_TOKEN" = "$GIT_TOKEN" ] && echo "git token: present" || echo "git token: absent"
	echo "git user: \$STAGEPIPE_GIT_USER"
} >"$T/job.env"
FAKE_MODE=pass exec "$top/tests/tools/fake_run.sh" "\$@"
EOF
chmod 755 "$T/job.sh"

PORT=$(free_port)
BASE=https://127.0.0.1:$PORT
serve_config "$T/serve.yml" "127.0.0.1:$PORT" "$T/data" <<EOF
workers: 0
admin_token_env: SP_ADMIN
tls: { cert: $T/tls.crt, key: $T/tls.key }
agents:
  - name: a1
    token_env: SP_A1_TOKEN
repos:
  - name: app
    url: file://$T/app.git
    forge: github
    secret_env: SP_SECRET
    git: { token_env: SP_GIT_TOKEN }
EOF

srv_pid= ag_pid=
test_cleanup() {
	for p in $ag_pid $srv_pid; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	true
}
serve_up "$T/serve.yml" "$BASE" --cacert "$T/tls.crt"

# ---- no --ca-file: the private certificate is refused ---------------------
# (the agent is started without the server's variables: another machine)
env -u SP_A1_TOKEN -u SP_GIT_TOKEN -u SP_ADMIN STAGEPIPE_AGENT_TOKEN="$TOKEN" \
	"$BIN" agent --server "$BASE" --name a1 --stagepipe "$T/job.sh" 2>"$T/agent0.log" &
ag_pid=$!
i=0
until grep -q 'agent.server_unreachable' "$T/agent0.log"; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat "$T/agent0.log"; fail "an agent without --ca-file did not complain"; }
	sleep 0.1
done
grep -qi 'certificate' "$T/agent0.log" || { cat "$T/agent0.log"; fail "the complaint does not name the certificate"; }
kill -TERM "$ag_pid"
rc=0
wait "$ag_pid" || rc=$?
ag_pid=
[ "$rc" = 0 ] || fail "an idle agent exited $rc after SIGTERM"
[ "$(curl -s --cacert "$T/tls.crt" "$BASE/api/agents" | jq -r '.agents[0].online')" = false ] ||
	fail "an agent that never got through is listed online"

# ---- --ca-file: a job passes -------------------------------------------------
env -u SP_A1_TOKEN -u SP_GIT_TOKEN -u SP_ADMIN STAGEPIPE_AGENT_TOKEN="$TOKEN" \
	"$BIN" agent --server "$BASE" --name a1 --ca-file "$T/tls.crt" --stagepipe "$T/job.sh" 2>"$T/agent.log" &
ag_pid=$!
code=$(curl -s -o "$T/trigger" -w '%{http_code}' --cacert "$T/tls.crt" -X POST \
	-H "Authorization: Bearer $ADMIN" -d '{"repo":"app","ref":"main"}' "$BASE/api/jobs")
[ "$code" = 201 ] || fail "trigger: HTTP $code $(cat "$T/trigger")"
job=$(jq -r .job "$T/trigger")
i=0
while :; do
	state=$(curl -s --cacert "$T/tls.crt" "$BASE/api/jobs/$job" | jq -r .state)
	case $state in passed | failed | error | cancelled | skipped) break ;; esac
	i=$((i + 1))
	[ $i -lt 300 ] || { cat "$T/agent.log"; fail "job $job not final after 30 s ($state)"; }
	sleep 0.1
done
[ "$state" = passed ] || { cat "$T/agent.log"; fail "job $job ended $state"; }
[ "$(curl -s --cacert "$T/tls.crt" "$BASE/api/jobs/$job" | jq -r .agent)" = a1 ] || fail "job $job: not run by a1"
grep -qx "agent token: absent" "$T/job.env" || { cat "$T/job.env"; fail "the agent's token reached the job"; }
grep -qx "git token: present" "$T/job.env" || { cat "$T/job.env"; fail "the git token did not reach the job"; }
grep -qx "git user: x-access-token" "$T/job.env" || { cat "$T/job.env"; fail "the git user is not the default"; }
kill -TERM "$ag_pid"
rc=0
wait "$ag_pid" || rc=$?
ag_pid=
[ "$rc" = 0 ] || fail "the agent exited $rc after SIGTERM"

# ---- no secret in any log ------------------------------------------------------
for f in serve.log serve.out agent0.log agent.log; do
	grep -qF -e "$TOKEN" -e "$GIT_TOKEN" "$T/$f" && fail "a secret is in $f"
done
if grep -E 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" "$T/agent.log" >/dev/null 2>&1; then
	grep -E -A20 'runtime error:|AddressSanitizer|LeakSanitizer' "$T/serve.log" "$T/agent.log" | head -60
	fail "sanitizer reports"
fi
exit 0
