#!/bin/sh
# contrib/deps.sh — install the Debian packages stagepipe needs, idempotently.
#
#   contrib/deps.sh            build + unit-test dependencies
#   contrib/deps.sh --engine   also what the integration tests need
#                              (dockerd, a registry, debootstrap for the base image)
#   contrib/deps.sh --fuzz     also clang and its libFuzzer/sanitizer runtimes
#                              (make fuzz, make fuzz-smoke)
#
# Installs only what is missing, so a second run costs one dpkg query.
# Needs root (or sudo) only when something is missing.
set -eu

BUILD_PKGS="gcc make pkg-config libc6-dev
libyaml-dev libgit2-dev libcurl4-openssl-dev libcjson-dev libcmocka-dev
libarchive-dev libprotobuf-c-dev protobuf-c-compiler libxml2-dev libssl-dev
libsqlite3-dev libmicrohttpd-dev"
FUZZ_PKGS="clang libclang-rt-14-dev"
ENGINE_PKGS="docker.io docker-registry debootstrap curl iproute2 ca-certificates time openssl apache2-utils git python3 wrk sqlite3 jq"

pkgs=$BUILD_PKGS
for arg in "$@"; do
	case $arg in
	--engine) pkgs="$pkgs $ENGINE_PKGS" ;;
	--fuzz) pkgs="$pkgs $FUZZ_PKGS" ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
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
[ -z "$missing" ] && exit 0

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
