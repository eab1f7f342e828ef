#!/bin/sh
# fake_run.sh — stands in for `stagepipe run ... --json --permit-stdin` in the
# unit tests of core/server/jobrun.c and worker.c: prints event lines like
# the real child (docs/events.md) and behaves as $FAKE_MODE says.
#
#   pass      a one-stage pipeline that passes; its argv as log lines
#   fail      the stage fails (exit 1)
#   skipped   pipeline_finished result skipped (exit 0)
#   promote   asks for the promote permit, prints the answer as a log line;
#             exit 0 when granted, 3 when refused
#   sleep     starts a stage and sleeps $FAKE_SECONDS (30); SIGTERM: stage
#             cancelled, exit 130; else it passes
#   stubborn  ignores SIGTERM and sleeps (SIGKILL needed)
#   stderr    a FILE:LINE:COL line on stderr, then $FAKE_NOISE (300) more, exit 2
#   infra     an engine error on stderr, exit 3
#   env       prints $FAKE_VAR as a log line
#   long      a 3 MiB stdout line, then a normal one
#   fds       lists its open descriptors as a log line
#   nostage   a log line without a stage
# The stage is named $FAKE_STAGE (default "test").
stage=${FAKE_STAGE:-test}
ev() { printf '%s\n' "$1"; }
log() { printf '{"event":"log","stage":"%s","stream":"stdout","line":"%s"}\n' "$stage" "$1"; }
started() {
	ev '{"event":"pipeline_started","pipeline":"fake","job":"x","stages":["'"$stage"'"]}'
	ev '{"event":"stage_started","stage":"'"$stage"'","target":"testing"}'
}
finished() {  # result exit_code
	ev '{"event":"stage_finished","stage":"'"$stage"'","result":"'"$1"'","seconds":0.5,"exit_code":'"$2"',"tests":{"total":3,"passed":3,"failed":0,"errors":0,"skipped":0}}'
}
pipeline() {  # result message
	ev '{"event":"pipeline_finished","pipeline":"fake","result":"'"$1"'","seconds":1.5,"message":"'"$2"'"}'
}

case "${FAKE_MODE:-pass}" in
pass)
	started
	for a in "$@"; do log "arg $a"; done
	echo "a line on stderr" >&2
	finished passed 0
	pipeline passed "pipeline fake passed"
	;;
fail)
	started
	log "1 failed"
	finished failed 1
	pipeline failed "stage $stage failed: 1 test failed"
	exit 1
	;;
skipped)
	ev '{"event":"pipeline_started","pipeline":"fake","job":"x","stages":[]}'
	pipeline skipped "on: rules do not build this push"
	;;
promote)
	started
	ev '{"event":"promote_request","stage":"'"$stage"'"}'
	IFS= read -r answer || answer="EOF"
	log "answer $(printf '%s' "$answer" | sed 's/"/\x27/g')"
	case "$answer" in
	*'"granted":true'*) finished passed 0; pipeline passed ok; exit 0 ;;
	*) finished error 0; pipeline error "promotion refused"; exit 3 ;;
	esac
	;;
sleep)
	started
	trap 'finished cancelled 0; pipeline cancelled interrupted; exit 130' TERM
	log "sleeping"
	sleep "${FAKE_SECONDS:-30}" &
	wait $!
	finished passed 0
	pipeline passed "slept"
	exit 0
	;;
stubborn)
	trap '' TERM
	started
	log "sleeping"
	sleep 30
	;;
stderr)
	echo "stagepipe run: stagepipe.yml:3:5: unknown key \"stagez\"" >&2
	i=0
	while [ $i -lt "${FAKE_NOISE:-300}" ]; do echo "noise line $i of the child's stderr" >&2; i=$((i + 1)); done
	echo "last line" >&2
	exit 2
	;;
infra)
	started
	echo "stagepipe run: cannot reach the engine at unix:///nope" >&2
	exit 3
	;;
env)
	started
	log "FAKE_VAR=${FAKE_VAR:-unset}"
	finished passed 0
	pipeline passed ok
	;;
long)
	head -c 3145728 /dev/zero | tr '\0' 'x'
	echo
	log "after"
	;;
fds)
	log "fds $(ls /proc/$$/fd | sort -n | tr "\n" " ")"
	;;
nostage)
	ev '{"event":"log","stream":"info","line":"cloning the repository"}'
	started
	finished passed 0
	pipeline passed ok
	;;
*)
	echo "fake_run.sh: unknown FAKE_MODE $FAKE_MODE" >&2
	exit 99
	;;
esac
