# stagepipe push against the real engine and real registries: the
# loopback registry of contrib/engine.sh (anonymous), a second
# docker-registry with htpasswd auth started here on a free loopback port,
# and a port where nothing listens.  Needs htpasswd (apache2-utils).
. "$(dirname "$0")/lib.sh"
: "${REGISTRY:?needs contrib/engine.sh up}"
: "${DOCKER_HOST:?needs contrib/engine.sh up}"

unset STAGEPIPE_REGISTRY_USER STAGEPIPE_REGISTRY_PASSWORD STAGEPIPE_REGISTRY DOCKER_AUTH_CONFIG
# no stray ~/.docker/config.json: each case says where credentials are
mkdir -p "$T/nocfg"
DOCKER_CONFIG=$T/nocfg
export DOCKER_CONFIG

SOCK=
case $DOCKER_HOST in unix://*) SOCK=${DOCKER_HOST#unix://} ;; esac
image=
refs=
test_cleanup() {
	# the local tags this test made, then its image
	if [ -n "$SOCK" ]; then
		for r in $refs $image; do
			curl -s -o /dev/null --unix-socket "$SOCK" -X DELETE \
				"http://localhost/images/$r?force=1" || true
		done
	fi
}

ms() { date +%s%3N; }

# --- a tiny image whose one layer is new on every run ----------------------
mkdir -p "$T/img"
cat >"$T/img/stagepipe.yml" <<'YML'
version: 1
name: pushtest
build:
  network: none
stages:
  - name: build
    target: t
YML
printf 'FROM scratch AS t\nCOPY stamp /stamp\n' >"$T/img/Dockerfile"
echo "stagepipe push test $$ $(date +%s%N)" >"$T/img/stamp"
run "$BIN" build -C "$T/img" -q
expect_rc 0
image=$(cat "$T/out")
case $image in sha256:*) ;; *) fail "build printed no image id: $image" ;; esac

repo=stagepipe-it/push
tag=t$$-$(date +%s)
ref=$REGISTRY/$repo:$tag
refs="$ref"

# 1. first push: the layer goes up, the digest is the registry's
run "$BIN" push "$image" "$ref"
expect_rc 0
expect_in out "$ref@sha256:"
expect_in err "pushing $ref"
expect_in err "credentials: no credentials (anonymous)"
expect_in err " pushed"
expect_in err "1 layer pushed, 0 already present"
digest=$(sed -n "s|^$ref@||p" "$T/out")
registry_lists "$repo" || fail "catalog lacks $repo"
curl -fsS "http://$REGISTRY/v2/$repo/tags/list" >"$T/tags" || fail "no tags/list"
grep -qF "\"$tag\"" "$T/tags" || fail "tags/list lacks $tag: $(cat "$T/tags")"
have=$(curl -fsS -o /dev/null -D - \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	"http://$REGISTRY/v2/$repo/manifests/$tag" | tr -d '\r' |
	sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
[ "$have" = "$digest" ] || fail "registry has $have, stagepipe printed $digest"

# 2. again, plus a second tag: nothing to upload, fast, and it says so
t0=$(ms)
run "$BIN" push "$image" "$ref" "$REGISTRY/$repo:$tag-b"
took=$(($(ms) - t0))
refs="$refs $REGISTRY/$repo:$tag-b"
expect_rc 0
expect_in out "$ref@$digest"
expect_in out "$REGISTRY/$repo:$tag-b@$digest"
expect_in err "already exists"
expect_in err "0 layers pushed, 1 already present"
[ "$took" -lt 5000 ] || fail "a push the registry already holds took ${took}ms"
echo "second push of 2 tags: ${took}ms"

# --- a registry that wants a password ---------------------------------------
user=sp-user
pw="right-$$-Pw"
wrong="wrong-$$-Pw"
start_auth_registry "$user" "$pw"
aref=$areg/$repo:$tag
refs="$refs $aref"

# 3. wrong password: exit 3, the registry named, the password nowhere
run env STAGEPIPE_REGISTRY_USER="$user" STAGEPIPE_REGISTRY_PASSWORD="$wrong" "$BIN" push "$image" "$aref"
expect_rc 3
expect_in err "registry $areg refused the push of $aref"
expect_in err "unauthorized"
expect_in err "user \"$user\" from STAGEPIPE_REGISTRY_USER/STAGEPIPE_REGISTRY_PASSWORD"
expect_not_in out "$wrong"
expect_not_in err "$wrong"

# 4. no credentials at all
run "$BIN" push "$image" "$aref"
expect_rc 3
expect_in err "registry $areg refused the push"
expect_in err "no basic auth credentials"
expect_in err "anonymous"

# 5. the right password from the CI variables
run env STAGEPIPE_REGISTRY_USER="$user" STAGEPIPE_REGISTRY_PASSWORD="$pw" "$BIN" push "$image" "$aref"
expect_rc 0
expect_in out "$aref@$digest"
expect_not_in out "$pw"
expect_not_in err "$pw"
curl -fsS -u "$user:$pw" "http://$areg/v2/$repo/tags/list" | grep -qF "\"$tag\"" ||
	fail "the auth registry lacks $repo:$tag"

# 6. from config.json auths, as `docker login` writes it
mkdir -p "$T/cfg"
printf '{"auths":{"http://%s/v2/":{"auth":"%s"}}}\n' "$areg" \
	"$(printf '%s:%s' "$user" "$pw" | base64 -w0)" >"$T/cfg/config.json"
run env DOCKER_CONFIG="$T/cfg" "$BIN" push "$image" "$aref"
expect_rc 0
expect_in err "user \"$user\" from auths[\"http://$areg/v2/\"]"
expect_in err "already present"
expect_not_in err "$pw"

# 7. from a credential helper (credsStore) found on PATH
mkdir -p "$T/bin" "$T/hcfg"
cat >"$T/bin/docker-credential-sptest" <<EOF
#!/bin/sh
read -r url || true
[ "\$1" = get ] && [ "\$url" = "$areg" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$url" "$user" "$pw"
EOF
chmod 755 "$T/bin/docker-credential-sptest"
echo '{"credsStore":"sptest"}' >"$T/hcfg/config.json"
run env PATH="$T/bin:$PATH" DOCKER_CONFIG="$T/hcfg" "$BIN" push "$image" "$aref"
expect_rc 0
expect_in err "from docker-credential-sptest (credsStore in $T/hcfg/config.json)"
expect_not_in err "$pw"
expect_not_in out "$pw"

# 8. a registry address where nothing listens
dead=$(free_port)
dref=127.0.0.1:$dead/$repo:$tag
refs="$refs $dref"
run "$BIN" push "$image" "$dref"
expect_rc 3
expect_in err "cannot reach registry 127.0.0.1:$dead"
expect_in err "connection refused"

# 9. usage
run "$BIN" push "$image"
expect_rc 2
expect_in err "needs an image and at least one reference"
