#!/bin/sh
# contrib/deps.sh — install the Debian packages stagepipe needs, idempotently.
#
#   contrib/deps.sh            build + unit-test dependencies (valgrind too:
#                              make valgrind; PostgreSQL: the store's tests
#                              start a private cluster of it)
#   contrib/deps.sh --engine   also what the integration tests need
#                              (dockerd, a registry, debootstrap for the base image)
#   contrib/deps.sh --fuzz     also clang and its libFuzzer/sanitizer runtimes
#                              (make fuzz, make fuzz-smoke; make check runs
#                              the smoke, so `make deps` and .ci/run pass it)
#   contrib/deps.sh --browser  also Debian's chromium and Node.js/npm, then
#                              playwright-core from npm into tests/browser/
#                              (the web UI's browser tests)
#
# Installs only what is missing, so a second run costs one dpkg query.
# Needs root (or sudo) only when something is missing.
set -eu

BUILD_PKGS="gcc make pkg-config libc6-dev
libyaml-dev libgit2-dev libcurl4-openssl-dev libcjson-dev libcmocka-dev
libarchive-dev libprotobuf-c-dev protobuf-c-compiler libxml2-dev libssl-dev
libsqlite3-dev libmicrohttpd-dev libpq-dev postgresql valgrind"
FUZZ_PKGS="clang libclang-rt-14-dev"
BROWSER_PKGS="chromium fonts-dejavu-core"
ENGINE_PKGS="docker.io docker-registry debootstrap curl iproute2 ca-certificates time openssl apache2-utils git python3 wrk sqlite3 jq groff-base man-db zsh"

pkgs=$BUILD_PKGS
browser=0
for arg in "$@"; do
	case $arg in
	--engine) pkgs="$pkgs $ENGINE_PKGS" ;;
	--fuzz) pkgs="$pkgs $FUZZ_PKGS" ;;
	--browser)
		pkgs="$pkgs $BROWSER_PKGS"
		browser=1
		# a Node.js already there (Debian's or NodeSource's) is kept
		command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
		command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
		;;
	-h|--help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "deps.sh: unknown option $arg" >&2; exit 2 ;;
	esac
done

missing=
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $st in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
# playwright-core (the browser driver; the browser is Debian's chromium)
# from the npm registry, at the version package-lock.json pins
browser_modules() {
	[ "$browser" = 1 ] || return 0
	here=$(cd "$(dirname "$0")/.." && pwd)/tests/browser
	[ -d "$here/node_modules/playwright-core" ] && return 0
	echo "deps.sh: npm ci in tests/browser" >&2
	(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
}

if [ -z "$missing" ]; then
	browser_modules
	exit 0
fi

echo "deps.sh: installing:$missing" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps.sh: need root or sudo to install:$missing" >&2
		exit 1
	}
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# An old package index fails installs with 404s; refresh it first.
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
browser_modules
