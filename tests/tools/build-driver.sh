#!/bin/sh
# tests/tools/build-driver.sh LIB OUT — builds checkout_driver (a test-only
# front end to sp_checkout) against the library LIB (build/libstagepipe.a)
# with the project's compiler flags.  Used by tests/integration/test_checkout.sh
# and bench/checkout.sh; not part of the product.  SANITIZE=address,undefined
# (exported by tests/integration/run.sh --sanitized): LIB was built with
# those sanitizers, and so is the driver.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
LIB=$1
OUT=$2
PKGS="yaml-0.1 libgit2 libcurl libcjson libarchive libprotobuf-c libxml-2.0 libcrypto"
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -Wall -Wextra -Werror -O2 -g -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
	${SANITIZE:+-fsanitize=$SANITIZE -fno-omit-frame-pointer} \
	-I"$top" $(pkg-config --cflags $PKGS) \
	-o "$OUT" "$top/tests/tools/checkout_driver.c" "$LIB" \
	$(pkg-config --libs $PKGS) -lpthread
