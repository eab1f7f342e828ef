# Build cache across machines (issue 13): build.cache_from and inline cache.
#
# Machine A (the shared engine) runs a pipeline whose promote stage builds
# a target with two slow-to-make layers (one holds a stamp of when it was
# built) and pushes it to a private registry: stagepipe adds
# BUILDKIT_INLINE_CACHE=1 to that build, so the pushed image carries its
# cache metadata.  Machine B is a second dockerd with a fresh, empty,
# loop-mounted data-root (lib_engine.sh) that has only the base image.
# With build.cache_from naming the pushed image, B's build must report the
# RUN steps CACHED (counted in the build output) and the image B built
# must hold A's stamp and blob: the layers came from the registry, nothing
# was rebuilt (date +%s%N and 2 MB of urandom cannot come out the same twice).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_engine.sh"
: "${BIN:?set BIN}" "${BASE_IMAGE:?needs contrib/engine.sh up}" "${DOCKER_HOST:?needs contrib/engine.sh up}"
[ "$(id -u)" = 0 ] || fail "needs root (dockerd, losetup, mount)"
build_network
SHARED_HOST=$DOCKER_HOST

test_cleanup() {
	DOCKER_HOST=$SHARED_HOST docker image rm -f "$IMG" >/dev/null 2>&1 || true
	reg_stop KILL
	pe_stop
}

reg_start "$T/reg"
TAG=$(rnd 4)
IMG=$REG/sptest-cache-$TAG/app:latest
P=$T/proj
mkdir -p "$P"
cat >"$P/Dockerfile" <<'EOF'
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS runtime
ARG SALT=none
RUN echo "$SALT" > /salt && date +%s%N > /stamp && sleep 2
RUN head -c 2000000 /dev/urandom > /blob && sha256sum /blob > /blob.sum
WORKDIR /app
EOF
write_pipeline() { # $1: cache_from line or ""
	cat >"$P/stagepipe.yml" <<EOF
version: 1
name: sptest-cache-$TAG
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}", SALT: "$TAG" }
  network: \${env.BUILD_NETWORK:-default}
$1
stages:
  - name: promote
    target: runtime
    tags: ["$IMG"]
    push: true
  - name: show
    target: runtime
    run: cat /stamp /blob.sum
    needs: [promote]
EOF
}

# ---- machine A: build, push with inline cache --------------------------------
write_pipeline ""
run "$BIN" run -C "$P"
expect_rc 0
expect_in out "pushed $IMG"
stamp_a=$(DOCKER_HOST=$SHARED_HOST docker run --rm --network none "$IMG" cat /stamp)
sum_a=$(DOCKER_HOST=$SHARED_HOST docker run --rm --network none "$IMG" cat /blob.sum)
[ -n "$stamp_a" ] || fail "no stamp in the image built on A"
# the pushed image's config carries BuildKit's inline cache metadata
cfg=$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	"http://$REG/v2/sptest-cache-$TAG/app/manifests/latest" | jq -r .config.digest)
curl -fsS "http://$REG/v2/sptest-cache-$TAG/app/blobs/$cfg" | jq -e '."moby.buildkit.cache.v0"' >/dev/null ||
	fail "the pushed image has no inline cache metadata"
echo "A: built and pushed $IMG with inline cache (stamp $stamp_a)"

# ---- machine B: fresh data-root, only the base image --------------------------
t0=$(date +%s)
pe_start "$T/pe" 1500
pe_copy_image "$BASE_IMAGE"
echo "B: private engine up, $BASE_IMAGE copied in $(($(date +%s) - t0))s"
export DOCKER_HOST=$PE_HOST

write_pipeline "  cache_from: [\"$IMG\"]"
run "$BIN" run -C "$P" --no-push --stage promote
expect_rc 0
cached=$(grep -cE '^ +#[0-9]+ CACHED' "$T/out" || true)
grep -E '^ +#[0-9]+ (CACHED|DONE)|RUN ' "$T/out" | sed 's/^ */   B| /' | head -n 20
[ "$cached" -ge 2 ] || { cat "$T/out"; fail "B: $cached CACHED steps, wanted at least the two RUN steps"; }
expect_in out "importing cache manifest from $IMG"
img_b=$(docker images -q --filter "label=io.stagepipe.pipeline=sptest-cache-$TAG" | head -n 1)
[ -n "$img_b" ] || fail "B: no image built"
stamp_b=$(docker run --rm --network none "$img_b" cat /stamp)
sum_b=$(docker run --rm --network none "$img_b" cat /blob.sum)
[ "$sum_b" = "$sum_a" ] || fail "B: the blob layer was rebuilt ($sum_b, A had $sum_a)"
[ "$stamp_b" = "$stamp_a" ] || fail "B: the stamp layer was rebuilt ($stamp_b, A had $stamp_a)"
echo "B: cache_from reused the layers from the registry: $cached CACHED steps, same stamp and blob"
