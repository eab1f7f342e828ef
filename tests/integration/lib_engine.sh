# tests/integration/lib_engine.sh — a private Docker engine and a private
# registry that a test may kill, restart or fill without disturbing the
# shared ones of contrib/engine.sh.  Sourced after lib.sh (needs $T, fail).
#
#   pe_start DIR [SIZE_MB]  start dockerd with all its state under DIR (its own
#                           socket, data-root, exec-root, pidfile, containerd;
#                           no bridge, no iptables); with SIZE_MB the data-root
#                           is a loop-mounted ext4 of that size.  Sets PE_HOST.
#   pe_kill                 SIGKILL dockerd, as a crash would
#   pe_up                   start it again on the same state, wait for /_ping
#   pe_stop                 stop it and everything it left (containerd, shims),
#                           unmount the data-root; lib.sh's cleanup calls it
#   pe_copy_image IMAGE     IMAGE from $DOCKER_HOST into the private engine
#   pe_labelled             number of containers labelled io.stagepipe.job
#   reg_start DIR           docker-registry on a free loopback port; sets REG
#   reg_stop [SIGNAL]       stop it (default TERM)
#
# Everything is stopped by pid, never by name.

PE_DIR=
PE_HOST=
PE_PID=
PE_LOOP=
PE_ARGS=
REG=
REG_PID=

_pe_sock() { printf '%s\n' "${PE_HOST#unix://}"; }

pe_ping() {
	[ "$(curl -fsS -m 3 --unix-socket "$(_pe_sock)" http://localhost/_ping 2>/dev/null)" = OK ]
}

# pe_start DIR [SIZE_MB]
pe_start() {
	PE_DIR=$1
	mkdir -p "$PE_DIR/data" "$PE_DIR/x"
	if [ -n "${2:-}" ]; then
		truncate -s "${2}M" "$PE_DIR/disk.img" || fail "truncate failed"
		mkfs.ext4 -q -F -m 0 "$PE_DIR/disk.img" >/dev/null 2>&1 || fail "mkfs.ext4 failed"
		# mount -o loop: the loop device goes away with the last unmount
		mount -o loop "$PE_DIR/disk.img" "$PE_DIR/data" || fail "cannot loop-mount $PE_DIR/disk.img"
		PE_LOOP=$(losetup -j "$PE_DIR/disk.img" | cut -d: -f1)
	fi
	echo '{}' >"$PE_DIR/daemon.json"
	PE_HOST=unix://$PE_DIR/d.sock
	PE_ARGS="--host $PE_HOST --config-file $PE_DIR/daemon.json --data-root $PE_DIR/data
		--exec-root $PE_DIR/x --pidfile $PE_DIR/dockerd.pid
		--bridge=none --iptables=false --ip-masq=false --ip6tables=false"
	pe_up
}

pe_up() {
	: >>"$PE_DIR/dockerd.log"
	# shellcheck disable=SC2086  # PE_ARGS is a list of words without spaces
	setsid dockerd $PE_ARGS </dev/null >>"$PE_DIR/dockerd.log" 2>&1 &
	PE_PID=$!
	_i=0
	until pe_ping; do
		kill -0 "$PE_PID" 2>/dev/null || {
			grep -v module=grpc "$PE_DIR/dockerd.log" | tail -n 20 >&2
			fail "private dockerd exited at start"
		}
		_i=$((_i + 1))
		[ "$_i" -lt 120 ] || { tail -n 20 "$PE_DIR/dockerd.log" >&2; fail "private dockerd: no /_ping after 60 s"; }
		sleep 0.5
	done
}

pe_kill() {
	[ -n "$PE_PID" ] || return 0
	kill -KILL "$PE_PID" 2>/dev/null || true
	wait "$PE_PID" 2>/dev/null || true
	PE_PID=
	# its containerd dies with it (parent-death signal); until it is reaped
	# its pid file would make the next dockerd wait for it in vain
	_f=$PE_DIR/x/containerd/containerd.pid
	_c=$(cat "$_f" 2>/dev/null || true)
	_i=0
	while [ -n "$_c" ] && [ -e "/proc/$_c" ] && [ "$_i" -lt 100 ]; do
		[ "$(awk '{ print $3 }' "/proc/$_c/stat" 2>/dev/null)" = Z ] && break
		sleep 0.1
		_i=$((_i + 1))
	done
	rm -f "$_f"
}

# pids of what runs out of our exec-root (containerd, shims) and of dockerd
_pe_pids() {
	for _p in /proc/[0-9]*; do
		case $(cat "$_p/comm" 2>/dev/null) in
		dockerd | containerd | containerd-shim* | runc) ;;
		*) continue ;;
		esac
		tr '\0' ' ' <"$_p/cmdline" 2>/dev/null | grep -qF -- "$PE_DIR/" && echo "${_p#/proc/}"
	done
}

# pids whose root filesystem is one of our overlays: what ran in a container
# or a build step (a build step's process outlives a killed dockerd, and its
# mount namespace keeps the data-root busy).  Only the "/" mount counts: a
# namespace that merely sees our mounts (ip netns exec) is someone else's.
_pe_jailed() {
	_self=$(readlink /proc/self/ns/mnt)
	for _p in /proc/[0-9]*; do
		[ "$(readlink "$_p/ns/mnt" 2>/dev/null)" != "$_self" ] || continue
		awk -v d="$PE_DIR/" '$5 == "/" && index($0, d) { f = 1 } END { exit !f }' \
			"$_p/mountinfo" 2>/dev/null && echo "${_p#/proc/}"
	done
}

pe_stop() {
	[ -n "$PE_DIR" ] || return 0
	if [ -n "$PE_PID" ]; then
		kill -TERM "$PE_PID" 2>/dev/null || true
		_i=0
		while kill -0 "$PE_PID" 2>/dev/null && [ "$_i" -lt 60 ]; do
			sleep 0.5
			_i=$((_i + 1))
		done
		kill -KILL "$PE_PID" 2>/dev/null || true
		wait "$PE_PID" 2>/dev/null || true
		PE_PID=
	fi
	for _p in $(_pe_pids) $(_pe_jailed); do
		kill -KILL "$_p" 2>/dev/null || true
	done
	# container mounts (shm, overlay) under the data-root, then the data-root
	for _m in $(awk -v d="$PE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$_m" 2>/dev/null || true
	done
	[ -z "$PE_LOOP" ] || losetup -d "$PE_LOOP" 2>/dev/null || true
	PE_LOOP=
	PE_DIR=
}

pe_copy_image() {
	docker save "$1" | DOCKER_HOST=$PE_HOST docker load -q >/dev/null ||
		fail "cannot copy $1 into the private engine"
}

pe_labelled() {
	DOCKER_HOST=$PE_HOST docker ps -aq --filter label=io.stagepipe.job | wc -l
}

reg_start() {
	mkdir -p "$1/data"
	_tries=0
	while :; do
		_tries=$((_tries + 1))
		[ "$_tries" -le 5 ] || fail "could not start docker-registry; log: $(cat "$1/reg.log")"
		_port=$(free_port)
		cat >"$1/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $1/data
http:
  addr: 127.0.0.1:$_port
EOF
		docker-registry serve "$1/config.yml" >"$1/reg.log" 2>&1 &
		REG_PID=$!
		_i=0
		_code=
		while [ "$_i" -lt 40 ] && kill -0 "$REG_PID" 2>/dev/null; do
			_code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$_port/v2/" || true)
			[ "$_code" = 200 ] && break
			sleep 0.25
			_i=$((_i + 1))
		done
		if [ "$_code" = 200 ]; then
			# shellcheck disable=SC2034  # for the test that sources this
			REG=127.0.0.1:$_port
			return
		fi
		reg_stop KILL
	done
}

reg_stop() {
	[ -n "$REG_PID" ] || return 0
	kill "-${1:-TERM}" "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true
	REG_PID=
}
