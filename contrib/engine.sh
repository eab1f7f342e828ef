#!/bin/sh
# contrib/engine.sh — a real Docker engine, registry and offline Python base
# image for stagepipe's integration tests (see docs/TESTING.md).
#
#   eval "$(contrib/engine.sh up)"   reuse or start engine + registry, build the
#                                    base image once; stdout is only export lines
#                                    (BUILD_NETWORK=none too when the engine
#                                    has no bridge network)
#   contrib/engine.sh status         what is running, and who started it
#   contrib/engine.sh down           stop only what `up` started
#
# An engine that `up` starts also listens on tcp://127.0.0.1:23760 with
# --tlsverify (throwaway CA made once under $STATE/tls; rm -r it to renew):
# `up` then also exports STAGEPIPE_TLS_HOST and STAGEPIPE_TLS_CERTS (a
# DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem).  A reused engine has none.
#
# Environment:
#   DOCKER_HOST              unix:// engine to reuse if it answers /_ping
#   STAGEPIPE_ENGINE_DIR     state dir   (default /var/tmp/stagepipe-engine)
#   STAGEPIPE_CACHE_DIR      rootfs cache (default /var/cache/stagepipe)
#   STAGEPIPE_DEBIAN_MIRROR  debootstrap mirror (default: the one apt uses)
#   STAGEPIPE_ENGINE_TIMEOUT seconds to wait for dockerd (default 60)
#
# Needs root and the packages in contrib/deps.sh --engine.
# Progress goes to stderr; only `up` writes to stdout.
set -eu

STATE=${STAGEPIPE_ENGINE_DIR:-/var/tmp/stagepipe-engine}
CACHE=${STAGEPIPE_CACHE_DIR:-/var/cache/stagepipe}
TIMEOUT=${STAGEPIPE_ENGINE_TIMEOUT:-60}

BASE_IMAGE=stagepipe-test/python:bookworm
BASE_SUITE=bookworm
BASE_VARIANT=minbase
BASE_PKGS=python3,python3-pytest,python3-pytest-cov,python3-fastapi,python3-httpx,python3-uvicorn
BASE_LABEL=org.stagepipe.base-key
REGISTRY_ADDR=127.0.0.1:5000

# TLS endpoint of an engine we start.  Client files where the docker CLI
# looks for them ($DOCKER_CERT_PATH/{ca,cert,key}.pem); the daemon's and the
# CA's private key apart, so the client dir can be handed out as it is.
TLS_ADDR=127.0.0.1:23760
TLS_HOST=tcp://$TLS_ADDR
TLS=$STATE/tls
TLS_SRV=$TLS/daemon
TLS_CAKEY=$TLS/ca/key.pem
TLS_DAYS=3650

# Image config applied on import (`docker import --change`).  Part of the
# image key, not of the rootfs key: editing it re-imports, no re-debootstrap.
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BASE_CHANGES="ENV PATH=$BASE_PATH|ENV LANG=C.UTF-8|CMD [\"python3\"]"

prog=${0##*/}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- paths ---------------------------------------------------------------

# A unix socket path must fit in sun_path (108 bytes with the NUL), and
# dockerd's exec-root holds containerd's sockets (+~40 bytes).  A long state
# dir therefore keeps its sockets in a short run dir under /tmp.
if [ "${#STATE}" -le 60 ]; then
	RUN=$STATE
else
	RUN=/tmp/stagepipe-engine-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)
fi
SOCK=$RUN/docker.sock
EXEC=$RUN/exec
PRIVATE_HOST=unix://$SOCK

# --- small helpers ---------------------------------------------------------

now() { date +%s; }

# ping SOCKET: true when an engine answers GET /_ping with OK.
ping_sock() {
	[ -S "$1" ] || return 1
	[ "$(curl -fsS -m 3 --unix-socket "$1" http://localhost/_ping 2>/dev/null)" = OK ]
}

registry_answers() {
	[ "$(curl -sS -m 3 -o /dev/null -w '%{http_code}' "http://$REGISTRY_ADDR/v2/" 2>/dev/null)" = 200 ]
}

# sock_of_host unix:///path -> /path (empty for other schemes)
sock_of_host() {
	case $1 in
	unix://*) printf '%s\n' "${1#unix://}" ;;
	*) ;;
	esac
}

# alive PID PATTERN: PID runs and its command line contains PATTERN (guards
# against a recycled pid before we signal it).
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
	tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# stop PID PATTERN NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
	alive "$1" "$2" || return 0
	log "stopping $3 (pid $1)"
	kill -TERM "$1" 2>/dev/null || true
	i=0
	while alive "$1" "$2"; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			log "$3 ignored SIGTERM for 30 s; sending SIGKILL"
			kill -KILL "$1" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
}

# marker_get FILE KEY: value of KEY=value in a marker file.
marker_get() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n1; }

# spawn PIDFILE LOG CMD...: run CMD in its own session, detached from our
# stdio and lock fd; writes its pid (exec keeps it) to PIDFILE.
spawn() {
	pidf=$1 logf=$2
	shift 2
	rm -f "$pidf"
	# shellcheck disable=SC2016  # $$ and "$@" belong to the inner shell
	setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" \
		</dev/null >>"$logf" 2>&1 9>&- &
	i=0
	while [ ! -s "$pidf" ] && [ "$i" -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	cat "$pidf" 2>/dev/null || true
}

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			die "$c not found; run contrib/deps.sh --engine"
	done
}

# --- TLS endpoint ------------------------------------------------------------

# tls_curl PATH: GET https://$TLS_ADDR/PATH as our client (peer verified).
tls_curl() {
	curl -fsS -m 3 --cacert "$TLS/ca.pem" --cert "$TLS/cert.pem" --key "$TLS/key.pem" \
		"https://$TLS_ADDR/$1"
}

# engine_id CURL-ARGS...: the engine's ID from GET /info (the first "ID" key
# is the top-level one; ContainerdCommit etc. come later).
engine_id() {
	"$@" 2>/dev/null | grep -o '"ID":"[^"]*"' | head -n1 | cut -d'"' -f4
}

# tls_same_engine: $TLS_ADDR answers our client cert, verified against our
# CA, and is the very engine behind $SOCK (not a stale or foreign listener).
tls_same_engine() {
	[ -s "$TLS/ca.pem" ] && [ -s "$TLS/cert.pem" ] && [ -s "$TLS/key.pem" ] || return 1
	tid=$(engine_id tls_curl info)
	[ -n "$tid" ] || return 1
	[ "$tid" = "$(engine_id curl -fsS -m 3 --unix-socket "$SOCK" http://localhost/info)" ]
}

# tls_files_ok: CA, daemon and client files exist, match, chain to the CA
# and stay valid for another day.
tls_files_ok() {
	for f in "$TLS/ca.pem" "$TLS/cert.pem" "$TLS/key.pem" "$TLS_SRV/cert.pem" \
		"$TLS_SRV/key.pem" "$TLS_CAKEY"; do
		[ -s "$f" ] || return 1
	done
	openssl verify -CAfile "$TLS/ca.pem" "$TLS/cert.pem" "$TLS_SRV/cert.pem" \
		>/dev/null 2>&1 || return 1
	for c in "$TLS/ca.pem" "$TLS/cert.pem" "$TLS_SRV/cert.pem"; do
		openssl x509 -noout -checkend 86400 -in "$c" >/dev/null 2>&1 || return 1
	done
	for pair in "$TLS/cert.pem:$TLS/key.pem" "$TLS_SRV/cert.pem:$TLS_SRV/key.pem" \
		"$TLS/ca.pem:$TLS_CAKEY"; do
		a=$(openssl x509 -noout -pubkey -in "${pair%%:*}" 2>/dev/null) || return 1
		b=$(openssl pkey -pubout -in "${pair#*:}" 2>/dev/null) || return 1
		[ -n "$a" ] && [ "$a" = "$b" ] || return 1
	done
}

# tls_generate: a fresh throwaway CA, daemon cert (127.0.0.1, localhost) and
# client cert, built aside and swapped in whole.  Only called before we
# start dockerd, under the state lock.
tls_generate() {
	tmp=$TLS.new
	rm -rf "$tmp"
	mkdir -p "$tmp/ca" "$tmp/daemon"
	cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = stagepipe
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	# (no set -e here: it does not apply inside an `if` condition; hence &&)
	if ! (
		umask 077
		newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
		# issue KEY CN EXT OUT: a cert for KEY signed by the CA
		issue() {
			openssl req -config openssl.cnf -new -key "$1" -subj "/CN=$2" -out "$4.csr" &&
				openssl x509 -req -in "$4.csr" -CA ca.pem -CAkey ca/key.pem \
					-set_serial "0x$(openssl rand -hex 16)" -days "$TLS_DAYS" -sha256 \
					-extfile openssl.cnf -extensions "$3" -out "$4" &&
				rm -f "$4.csr"
		}
		cd "$tmp" &&
			newkey ca/key.pem &&
			openssl req -config openssl.cnf -new -x509 -key ca/key.pem -sha256 \
				-subj "/CN=stagepipe throwaway test CA" -days "$TLS_DAYS" \
				-extensions ca_ext -out ca.pem &&
			newkey daemon/key.pem &&
			issue daemon/key.pem localhost server_ext daemon/cert.pem &&
			newkey key.pem &&
			issue key.pem stagepipe-client client_ext cert.pem &&
			cp ca.pem daemon/ca.pem &&
			rm -f openssl.cnf &&
			chmod 644 ca.pem cert.pem daemon/ca.pem daemon/cert.pem &&
			chmod 755 . daemon && chmod 700 ca
	) >"$STATE/tls.log" 2>&1; then
		log "tls: openssl failed; see $STATE/tls.log"
		tail -n 10 "$STATE/tls.log" >&2
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$TLS"
	mv "$tmp" "$TLS"
}

# tls_prepare: certificates in place and the port free, so the dockerd we are
# about to start can listen on $TLS_HOST too.  False (with a warning) when
# not: the engine then starts on its unix socket alone, as before.
tls_prepare() {
	if ! command -v openssl >/dev/null 2>&1; then
		log "tls: warning: openssl not found (contrib/deps.sh --engine); starting without $TLS_HOST"
		return 1
	fi
	if tls_files_ok; then
		log "tls: certificates in $TLS reused"
	else
		t0=$(now)
		log "tls: making a throwaway CA, daemon and client certificates in $TLS"
		tls_generate || return 1
		log "tls: certificates made in $(($(now) - t0))s"
	fi
	# curl exit 7: connection refused, nobody listens
	prc=0
	curl -sS -m 2 -o /dev/null "http://$TLS_ADDR/" 2>/dev/null || prc=$?
	if [ "$prc" != 7 ]; then
		log "tls: warning: something already listens on $TLS_ADDR; starting without $TLS_HOST"
		return 1
	fi
}

# tls_recorded: what dockerd.started says of TLS: yes (started with
# $TLS_HOST), no (started without), old (by an engine.sh that knew no TLS),
# none (no engine recorded as started by up).
tls_recorded() {
	if [ ! -f "$STATE/dockerd.started" ]; then
		echo none
	elif ! grep -q '^tls=' "$STATE/dockerd.started"; then
		echo old
	elif [ "$(marker_get "$STATE/dockerd.started" tls)" = "$TLS_HOST" ]; then
		echo yes
	else
		echo no
	fi
}

# tls_detect: sets TLS_UP=1 when the engine in $DOCKER_HOST is our private
# engine and its TLS endpoint answers with our certificates.
tls_detect() {
	TLS_UP=0
	if [ "$DOCKER_HOST" != "$PRIVATE_HOST" ]; then
		log "tls: $DOCKER_HOST is not the private engine; no TLS endpoint to advertise"
	elif tls_same_engine; then
		TLS_UP=1
		log "tls: $TLS_HOST answers (certs $TLS)"
	else
		case $(tls_recorded) in
		yes) log "tls: warning: the engine was started with $TLS_HOST but it does not answer with the certificates in $TLS; not advertising it" ;;
		no) log "tls: the private engine was started without TLS (no openssl, or $TLS_ADDR was busy); contrib/engine.sh down && contrib/engine.sh up retries" ;;
		old) log "tls: the private engine was started by an older engine.sh, without TLS; contrib/engine.sh down && contrib/engine.sh up gives it one" ;;
		*) log "tls: the private engine was not started by up here; no TLS endpoint to advertise" ;;
		esac
	fi
}

# --- engine ------------------------------------------------------------------

# Sets DOCKER_HOST to an engine that answers, starting one if needed.
engine_up() {
	if [ -n "${DOCKER_HOST:-}" ]; then
		s=$(sock_of_host "$DOCKER_HOST")
		if [ -n "$s" ] && ping_sock "$s"; then
			if [ "$s" = "$SOCK" ]; then
				log "engine: private engine at $DOCKER_HOST answers; reusing"
			else
				log "engine: DOCKER_HOST=$DOCKER_HOST answers; reusing it (down will not stop it)"
			fi
			return 0
		fi
		log "engine: DOCKER_HOST=$DOCKER_HOST does not answer /_ping (or is not unix://); using the private engine"
	fi
	DOCKER_HOST=$PRIVATE_HOST
	export DOCKER_HOST
	if ping_sock "$SOCK"; then
		log "engine: private engine at $SOCK answers; reusing"
		return 0
	fi

	need dockerd
	if dataroot_in_use; then
		die "a dockerd with --data-root $STATE/data runs but $SOCK does not answer /_ping; see $STATE/dockerd.log (contrib/engine.sh down stops it if it is ours)"
	fi
	mkdir -p "$STATE/data" "$EXEC" "$RUN"
	# Our own (empty) config so an /etc/docker/daemon.json cannot add flags
	# that clash with ours; and our own containerd namespace so a shared
	# system containerd, if any, keeps our containers apart.
	[ -f "$STATE/daemon.json" ] || echo '{}' >"$STATE/daemon.json"
	: >"$STATE/dockerd.log"
	set -- dockerd --host "$PRIVATE_HOST" \
		--config-file "$STATE/daemon.json" \
		--data-root "$STATE/data" --exec-root "$EXEC" \
		--pidfile "$STATE/dockerd.pid" \
		--containerd-namespace stagepipe \
		--containerd-plugins-namespace stagepipe-plugins \
		--bridge=none --iptables=false --ip-masq=false --ip6tables=false
	tls=
	if tls_prepare; then
		tls=$TLS_HOST
		set -- "$@" --host "$TLS_HOST" --tlsverify --tlscacert "$TLS_SRV/ca.pem" \
			--tlscert "$TLS_SRV/cert.pem" --tlskey "$TLS_SRV/key.pem"
	fi
	log "engine: starting dockerd (socket $SOCK${tls:+, $tls with TLS}, log $STATE/dockerd.log)"
	t0=$(now)
	pid=$(spawn "$STATE/dockerd.spawn.pid" "$STATE/dockerd.log" "$@")
	[ -n "$pid" ] || die "could not start dockerd"
	printf 'pid=%s\nsock=%s\ndata=%s\ntls=%s\ntls_certs=%s\nstarted=%s\n' \
		"$pid" "$SOCK" "$STATE/data" "$tls" "${tls:+$TLS}" "$(date -u +%FT%TZ)" \
		>"$STATE/dockerd.started"
	while ! ping_sock "$SOCK"; do
		if ! alive "$pid" dockerd; then
			log "engine: dockerd exited; last lines of $STATE/dockerd.log:"
			tail -n 30 "$STATE/dockerd.log" >&2
			stop_dockerd "$pid"
			rm -f "$STATE/dockerd.started"
			exit 1
		fi
		if [ $(($(now) - t0)) -ge "$TIMEOUT" ]; then
			log "engine: no /_ping answer after ${TIMEOUT}s; last lines of $STATE/dockerd.log:"
			tail -n 30 "$STATE/dockerd.log" >&2
			stop_dockerd "$pid"
			rm -f "$STATE/dockerd.started"
			exit 1
		fi
		sleep 0.5
	done
	log "engine: dockerd pid $pid ready in $(($(now) - t0))s"
}

# --- registry ------------------------------------------------------------

registry_up() {
	if registry_answers; then
		log "registry: $REGISTRY_ADDR answers /v2/; reusing"
		return 0
	fi
	need docker-registry
	mkdir -p "$STATE/registry/data"
	cat >"$STATE/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
	: >"$STATE/registry.log"
	log "registry: starting docker-registry on $REGISTRY_ADDR (log $STATE/registry.log)"
	pid=$(spawn "$STATE/registry.pid" "$STATE/registry.log" \
		docker-registry serve "$STATE/registry/config.yml")
	[ -n "$pid" ] || die "could not start docker-registry"
	printf 'pid=%s\nconfig=%s\nstarted=%s\n' \
		"$pid" "$STATE/registry/config.yml" "$(date -u +%FT%TZ)" >"$STATE/registry.started"
	i=0
	while ! registry_answers; do
		i=$((i + 1))
		if ! alive "$pid" docker-registry || [ "$i" -gt 60 ]; then
			log "registry: not answering on $REGISTRY_ADDR; last lines of $STATE/registry.log:"
			tail -n 20 "$STATE/registry.log" >&2
			stop_pid "$pid" docker-registry docker-registry
			rm -f "$STATE/registry.started"
			exit 1
		fi
		sleep 0.25
	done
	log "registry: pid $pid ready"
}

# --- base image ------------------------------------------------------------

# The Debian mirror apt uses for $BASE_SUITE (one-line and deb822 sources).
debian_mirror() {
	if [ -n "${STAGEPIPE_DEBIAN_MIRROR:-}" ]; then
		echo "$STAGEPIPE_DEBIAN_MIRROR"
		return
	fi
	m=
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		m=$(awk -v s="$BASE_SUITE" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
				if ($(i + 1) == s && $i ~ /^(https?|file):/) { print $i; exit }
			}' "$f")
		[ -n "$m" ] && break
	done
	if [ -z "$m" ]; then
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -r "$f" ] || continue
			m=$(awk -v s="$BASE_SUITE" '
				function flush() {
					if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") &&
					    enabled != "no" && uri != "") { print uri; found = 1 }
					types = suites = uri = enabled = ""
				}
				/^[ \t]*#/ { next }
				/^[ \t]*$/ { flush(); if (found) exit; next }
				/^[ \t]/ { if (key == "uris" && uri == "") uri = $1; next }
				{
					key = tolower(substr($0, 1, index($0, ":") - 1))
					val = substr($0, index($0, ":") + 1)
					gsub(/^[ \t]+|[ \t]+$/, "", val)
					if (key == "types") types = val
					else if (key == "suites") suites = val
					else if (key == "enabled") enabled = tolower(val)
					else if (key == "uris") { split(val, u, /[ \t]+/); uri = u[1] }
				}
				END { if (!found) flush() }' "$f" | head -n1)
			case $m in http://* | https://* | file:*) break ;; *) m= ;; esac
		done
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

# umount_under DIR: undo mounts left at or under DIR (by a failed debootstrap,
# or by a dockerd that died before it could clean up: it bind-mounts its
# data-root onto itself and keeps a netns mount in its exec-root).
umount_under() {
	findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' |
		sort -r | while read -r mp; do
		umount -l "$mp" 2>/dev/null || true
	done
}

# dataroot_in_use: some process (a dockerd) runs with our data-root.
dataroot_in_use() {
	for c in /proc/[0-9]*/cmdline; do
		tr '\0' ' ' 2>/dev/null <"$c" | grep -qF -- "--data-root $STATE/data " && return 0
	done
	return 1
}

# stop_dockerd PID: stop our dockerd and clear what it may have left mounted.
stop_dockerd() {
	stop_pid "$1" "--data-root $STATE/data " dockerd
	if ! dataroot_in_use; then
		umount_under "$STATE/data"
		umount_under "$EXEC"
	fi
}

# Builds (once) $CACHE/rootfs-<key>.tar; prints its path.
rootfs_tarball() {
	key=$1
	tarball=$CACHE/rootfs-$key.tar
	if [ -s "$tarball" ]; then
		log "base: rootfs tarball cached: $tarball"
		echo "$tarball"
		return
	fi
	need debootstrap
	mirror=$(debian_mirror)
	mkdir -p "$CACHE/work"
	rootfs=$CACHE/work/rootfs-$key.$$
	log "base: debootstrap --variant=$BASE_VARIANT $BASE_SUITE from $mirror (about 80 s; log $CACHE/work/debootstrap.log)"
	t0=$(now)
	# shellcheck disable=SC2064  # expand $rootfs now
	trap "umount_under '$rootfs'; rm -rf --one-file-system '$rootfs' '$tarball.tmp'" EXIT
	if ! debootstrap --variant="$BASE_VARIANT" --include="$BASE_PKGS" \
		"$BASE_SUITE" "$rootfs" "$mirror" >"$CACHE/work/debootstrap.log" 2>&1; then
		log "base: debootstrap failed; last lines of $CACHE/work/debootstrap.log:"
		tail -n 20 "$CACHE/work/debootstrap.log" >&2
		[ -f "$rootfs/debootstrap/debootstrap.log" ] &&
			tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2
		exit 1
	fi
	log "base: debootstrap done in $(($(now) - t0))s; packing"
	# Package caches and the build host's identity do not belong in the image
	# (the engine bind-mounts resolv.conf/hostname/hosts into containers).
	rm -rf "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb \
		"$rootfs/var/lib/apt/lists/"*_* "$rootfs/var/log/"*.log
	rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
	tar -C "$rootfs" --numeric-owner --one-file-system \
		--exclude="./dev/*" --exclude="./proc/*" --exclude="./sys/*" --exclude="./run/*" \
		-cf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
	umount_under "$rootfs"
	rm -rf --one-file-system "$rootfs"
	trap - EXIT
	log "base: cached $tarball ($(du -h "$tarball" | cut -f1))"
	echo "$tarball"
}

base_up() {
	need docker
	rootfs_key=$(printf 'suite=%s variant=%s include=%s\n' \
		"$BASE_SUITE" "$BASE_VARIANT" "$BASE_PKGS" | sha256sum | cut -c1-16)
	image_key=$(printf '%s|%s\n' "$rootfs_key" "$BASE_CHANGES" | sha256sum | cut -c1-16)
	have=$(docker image inspect -f "{{ index .Config.Labels \"$BASE_LABEL\" }}" \
		"$BASE_IMAGE" 2>/dev/null || true)
	if [ "$have" = "$image_key" ]; then
		log "base: $BASE_IMAGE present (key $image_key)"
		return 0
	fi
	mkdir -p "$CACHE"
	# One builder per cache dir at a time (two state dirs may share it).
	exec 8>"$CACHE/.lock"
	flock 8
	tarball=$(rootfs_tarball "$rootfs_key")
	log "base: importing $tarball as $BASE_IMAGE"
	t0=$(now)
	set -- --change "LABEL $BASE_LABEL=$image_key" \
		--message "stagepipe test base: debootstrap $BASE_SUITE $BASE_VARIANT + $BASE_PKGS"
	oldifs=$IFS
	IFS='|'
	for c in $BASE_CHANGES; do
		set -- "$@" --change "$c"
	done
	IFS=$oldifs
	docker import "$@" "$tarball" "$BASE_IMAGE" >&2
	exec 8>&-
	log "base: imported in $(($(now) - t0))s"
}

# --- commands ----------------------------------------------------------------

cmd_up() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (dockerd, debootstrap)"
	need curl setsid flock
	mkdir -p "$STATE"
	# Serialise concurrent `up`/`down` on one state dir.
	exec 9>"$STATE/.lock"
	flock 9
	t_start=$(now)
	engine_up
	tls_detect
	registry_up
	base_up
	echo "$DOCKER_HOST" >"$STATE/docker_host"
	log "up: ready in $(($(now) - t_start))s"
	printf 'export DOCKER_HOST=%s\n' "$DOCKER_HOST"
	printf 'export BASE_IMAGE=%s\n' "$BASE_IMAGE"
	printf 'export REGISTRY=%s\n' "$REGISTRY_ADDR"
	# An engine without a bridge network (like the private one) builds and
	# tests with no network: pipelines read BUILD_NETWORK as build.network
	# (${env.BUILD_NETWORK:-default}); a value already set is kept.
	if [ -z "${BUILD_NETWORK:-}" ]; then
		s=$(sock_of_host "$DOCKER_HOST")
		if [ -n "$s" ] && ! curl -fsS -m 5 --unix-socket "$s" \
			http://localhost/networks/bridge >/dev/null 2>&1; then
			printf 'export BUILD_NETWORK=none\n'
		fi
	fi
	if [ "$TLS_UP" = 1 ]; then
		printf 'export STAGEPIPE_TLS_HOST=%s\n' "$TLS_HOST"
		printf 'export STAGEPIPE_TLS_CERTS=%s\n' "$TLS"
	fi
}

cmd_down() {
	[ -d "$STATE" ] || { log "down: nothing recorded in $STATE"; return 0; }
	exec 9>"$STATE/.lock"
	flock 9
	if [ -f "$STATE/registry.started" ]; then
		stop_pid "$(marker_get "$STATE/registry.started" pid)" \
			"$(marker_get "$STATE/registry.started" config)" docker-registry
		rm -f "$STATE/registry.started" "$STATE/registry.pid"
	else
		log "down: no registry recorded as started by up; leaving any alone"
	fi
	if [ -f "$STATE/dockerd.started" ]; then
		stop_dockerd "$(marker_get "$STATE/dockerd.started" pid)"
		rm -f "$STATE/dockerd.started" "$STATE/dockerd.spawn.pid"
	else
		log "down: no engine recorded as started by up; leaving any alone"
	fi
	rm -f "$STATE/docker_host"
}

cmd_status() {
	rc=0
	if [ -f "$STATE/dockerd.started" ]; then
		pid=$(marker_get "$STATE/dockerd.started" pid)
		if ping_sock "$SOCK"; then
			echo "engine:   running, started by us (pid $pid), DOCKER_HOST=$PRIVATE_HOST"
		else
			echo "engine:   recorded as started (pid $pid) but $SOCK does not answer"
			rc=1
		fi
	elif ping_sock "$SOCK"; then
		echo "engine:   running at $PRIVATE_HOST (not recorded as ours)"
	else
		s=$(sock_of_host "${DOCKER_HOST:-}")
		if [ -n "$s" ] && ping_sock "$s"; then
			echo "engine:   reusing DOCKER_HOST=$DOCKER_HOST (not ours)"
		else
			echo "engine:   not running"
			rc=1
		fi
	fi
	if ! ping_sock "$SOCK"; then
		echo "tls:      none (no private engine)"
	elif tls_same_engine; then
		echo "tls:      $TLS_HOST --tlsverify, DOCKER_CERT_PATH=$TLS"
	else
		case $(tls_recorded) in
		yes)
			echo "tls:      recorded as listening on $TLS_HOST but it does not answer with the certificates in $TLS"
			rc=1
			;;
		no) echo "tls:      none: the engine was started without it (no openssl, or $TLS_ADDR busy; see up's log)" ;;
		old) echo "tls:      none: the engine was started by an older engine.sh; down && up adds it" ;;
		*) echo "tls:      none (only an engine that up starts has one)" ;;
		esac
	fi
	if [ -f "$STATE/registry.started" ]; then
		pid=$(marker_get "$STATE/registry.started" pid)
		if registry_answers; then
			echo "registry: running on $REGISTRY_ADDR, started by us (pid $pid)"
		else
			echo "registry: recorded as started (pid $pid) but $REGISTRY_ADDR does not answer"
			rc=1
		fi
	elif registry_answers; then
		echo "registry: $REGISTRY_ADDR answers (not ours)"
	else
		echo "registry: not running"
		rc=1
	fi
	host=$(cat "$STATE/docker_host" 2>/dev/null || true)
	s=$(sock_of_host "$host")
	if [ -n "$s" ] && ping_sock "$s" &&
		id=$(DOCKER_HOST=$host docker image inspect -f '{{.Id}}' "$BASE_IMAGE" 2>/dev/null); then
		echo "base:     $BASE_IMAGE ${id#sha256:}" | cut -c1-80
	else
		echo "base:     $BASE_IMAGE not available"
	fi
	for t in "$CACHE"/rootfs-*.tar; do
		[ -f "$t" ] && echo "cache:    $t ($(du -h "$t" | cut -f1))"
	done
	return "$rc"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
-h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
*)
	echo "usage: $prog up|down|status" >&2
	exit 2
	;;
esac
