#!/bin/sh
# contrib/demo.sh BIN — the README's first command (make demo).
#
# Runs the bundled example pipeline (pipelines/fastapi.yml) on
# contrib/example-app end to end: tests with coverage in the testing
# image, then the runtime image built, health-checked and pushed to the
# loopback registry.  Uses the engine that answers (DOCKER_HOST, or the
# default socket) or starts a private one (contrib/engine.sh up), which
# also provides the registry on 127.0.0.1:5000 and an offline Python base
# image made from Debian packages.
set -eu
BIN=$(cd "$(dirname "${1:-build/stagepipe}")" && pwd)/$(basename "${1:-build/stagepipe}")
cd "$(dirname "$0")/.."

if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] &&
	curl -fsS --max-time 3 --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1; then
	export DOCKER_HOST=unix:///var/run/docker.sock
fi
echo "demo: preparing the engine, registry and base image (contrib/engine.sh up)" >&2
eval "$(contrib/engine.sh up)"

# (engine.sh exports BUILD_NETWORK=none for an engine without a bridge
# network, like the private one; the pipeline reads it as build.network)

echo "demo: stagepipe run -f pipelines/fastapi.yml (engine $DOCKER_HOST, registry $REGISTRY)" >&2
status=0
"$BIN" run -f pipelines/fastapi.yml || status=$?
if [ "$status" -eq 0 ]; then
	echo
	echo "The runtime image went to the registry at $REGISTRY:"
	curl -fsS "http://$REGISTRY/v2/fastapi-app/tags/list" || true
	echo
	echo "Pull it with:  docker pull $REGISTRY/fastapi-app:latest   (DOCKER_HOST=$DOCKER_HOST)"
fi
exit "$status"
