# tests/integration/lib_netns.sh — several "hosts" on one machine, for the
# agent tests: network namespaces joined by a bridge of their own.
#
#   netns_up TAG HOST...   makes namespace sp-TAG-HOST for each HOST, a
#                          bridge spbr-TAG in this (the test's) namespace with
#                          10.R.S.254/24, and gives the Nth host 10.R.S.N
#                          (R.S random per run); loopback is up in each
#   netns_ip HOST          its address
#   netns_run HOST CMD...  runs CMD in the host's namespace
#   netns_spawn HOST CMD... & the same in the background, where $! is CMD's
#                          own pid (the subshell execs `ip netns exec`,
#                          which execs CMD)
#   netns_down             removes what netns_up made (test_cleanup calls it)
#
# The hosts share the machine's file system, so a unix socket (the Docker
# engine's) and a file:// repository are reachable from every one of them;
# what crosses the bridge is TCP between hosts.  Needs root and iproute2.

_netns_tag=
_netns_hosts=
_netns_net=

netns_up() {
	command -v ip >/dev/null 2>&1 || fail "ip not found: install iproute2 (contrib/deps.sh --engine)"
	[ "$(id -u)" = 0 ] || fail "network namespaces need root"
	_netns_tag=$1
	shift
	_netns_net="10.$((100 + $(od -An -N1 -tu1 /dev/urandom | tr -d ' ') % 100)).$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')"
	ip link add "spbr-$_netns_tag" type bridge || fail "cannot make a bridge"
	ip addr add "$_netns_net.254/24" dev "spbr-$_netns_tag"
	ip link set "spbr-$_netns_tag" up
	_n=0
	for _h in "$@"; do
		_n=$((_n + 1))
		_ns=sp-$_netns_tag-$_h
		ip netns add "$_ns" || fail "cannot make the namespace $_ns"
		_netns_hosts="$_netns_hosts $_h"
		ip link add "spv$_n-$_netns_tag" type veth peer name eth0 netns "$_ns" ||
			fail "cannot make a veth pair for $_h"
		ip link set "spv$_n-$_netns_tag" master "spbr-$_netns_tag"
		ip link set "spv$_n-$_netns_tag" up
		ip -n "$_ns" addr add "$_netns_net.$_n/24" dev eth0
		ip -n "$_ns" link set eth0 up
		ip -n "$_ns" link set lo up
		eval "_netns_ip_$_h=$_netns_net.$_n"
	done
}

netns_ip() {
	eval "printf '%s\n' \"\$_netns_ip_$1\""
}

netns_run() {
	_h=$1
	shift
	ip netns exec "sp-$_netns_tag-$_h" "$@"
}

# only as `netns_spawn HOST CMD... &`: the exec replaces the background
# subshell (in the foreground it would replace the test's shell)
netns_spawn() {
	_h=$1
	shift
	exec ip netns exec "sp-$_netns_tag-$_h" "$@"
}

netns_down() {
	[ -n "$_netns_tag" ] || return 0
	for _h in $_netns_hosts; do
		# whatever still runs in it goes first
		for _p in $(ip netns pids "sp-$_netns_tag-$_h" 2>/dev/null); do
			kill -9 "$_p" 2>/dev/null
		done
		ip netns del "sp-$_netns_tag-$_h" 2>/dev/null
	done
	ip link del "spbr-$_netns_tag" 2>/dev/null
	_netns_tag=
	true
}
