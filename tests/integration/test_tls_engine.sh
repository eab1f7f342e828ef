# stagepipe build against the engine's TLS endpoint (tcp:// + --tlsverify,
# as contrib/engine.sh up starts it): DOCKER_TLS_VERIFY, DOCKER_TLS,
# DOCKER_CERT_PATH and --docker-host read as the docker CLI reads them.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"

if [ -z "${STAGEPIPE_TLS_HOST:-}" ]; then
	echo "SKIP: STAGEPIPE_TLS_HOST is unset (the engine was not started by contrib/engine.sh up" \
		"with TLS; contrib/engine.sh down && contrib/engine.sh up gives it one)"
	exit 0
fi
: "${STAGEPIPE_TLS_CERTS:?set with STAGEPIPE_TLS_HOST by contrib/engine.sh up}"
command -v openssl >/dev/null 2>&1 || fail "openssl not found (contrib/deps.sh --engine)"

# No TLS setting from the caller's environment may leak into a check; each
# check sets its own through env(1) (an assignment before a shell function
# may outlive the call in some shells).
unset DOCKER_TLS_VERIFY DOCKER_TLS DOCKER_CERT_PATH DOCKER_CONFIG

mkdir -p "$T/proj"
cat >"$T/proj/stagepipe.yml" <<'YML'
version: 1
name: tls
build:
  args: { BASE_IMAGE: "${env.BASE_IMAGE}" }
  network: none
stages:
  - name: build
    target: t
YML
cat >"$T/proj/Dockerfile" <<'EOF'
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS t
RUN echo built-over-tls
EOF

# A cert dir whose ca.pem is another CA; cert.pem/key.pem are the right
# client's (the daemon runs --tlsverify: no client cert, no handshake).
mkdir -p "$T/wrong-ca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/wrong-ca/ca-key.pem" -out "$T/wrong-ca/ca.pem" -days 1 \
	-subj "/CN=not the engine's CA" >"$T/openssl.log" 2>&1 ||
	{ cat "$T/openssl.log"; fail "openssl could not make a CA"; }
cp "$STAGEPIPE_TLS_CERTS/cert.pem" "$STAGEPIPE_TLS_CERTS/key.pem" "$T/wrong-ca/"

# (a) DOCKER_HOST=tcp:// + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH
run env DOCKER_HOST="$STAGEPIPE_TLS_HOST" DOCKER_TLS_VERIFY=1 \
	DOCKER_CERT_PATH="$STAGEPIPE_TLS_CERTS" "$BIN" build -C "$T/proj"
expect_rc 0
expect_in out "sha256:"
expect_in err "engine $STAGEPIPE_TLS_HOST"
expect_in err "built t in"

# (b) the same host from --docker-host; DOCKER_HOST names a dead socket, so
# only the flag can make this work
run env DOCKER_HOST="unix://$T/no-engine.sock" DOCKER_TLS_VERIFY=1 \
	DOCKER_CERT_PATH="$STAGEPIPE_TLS_CERTS" "$BIN" build -C "$T/proj" \
	--docker-host "$STAGEPIPE_TLS_HOST"
expect_rc 0
expect_in out "sha256:"
expect_in err "engine $STAGEPIPE_TLS_HOST"

# (c) verification on, the engine's certificate is not from DOCKER_CERT_PATH's CA
run env DOCKER_HOST="$STAGEPIPE_TLS_HOST" DOCKER_TLS_VERIFY=1 \
	DOCKER_CERT_PATH="$T/wrong-ca" "$BIN" build -C "$T/proj"
expect_rc 3
expect_in err "$STAGEPIPE_TLS_HOST presented a TLS certificate not signed by the CA in $T/wrong-ca/ca.pem"
expect_not_in out "sha256:"

# (d) DOCKER_TLS without DOCKER_TLS_VERIFY: TLS, the peer not verified (as
# the docker CLI does), so the wrong ca.pem does not matter
run env DOCKER_HOST="$STAGEPIPE_TLS_HOST" DOCKER_TLS=1 \
	DOCKER_CERT_PATH="$T/wrong-ca" "$BIN" build -C "$T/proj"
expect_rc 0
expect_in out "sha256:"

# (d') an empty DOCKER_TLS_VERIFY is unset, as for the docker CLI
run env DOCKER_HOST="$STAGEPIPE_TLS_HOST" DOCKER_TLS_VERIFY='' DOCKER_TLS=1 \
	DOCKER_CERT_PATH="$T/wrong-ca" "$BIN" build -C "$T/proj"
expect_rc 0

# (e) no TLS settings: plain http to the TLS port
run env DOCKER_HOST="$STAGEPIPE_TLS_HOST" "$BIN" build -C "$T/proj"
expect_rc 3
expect_in err "$STAGEPIPE_TLS_HOST expects TLS"
expect_in err "DOCKER_TLS_VERIFY=1"
expect_not_in out "sha256:"

# the unix socket still serves the same engine, without TLS
run "$BIN" build -C "$T/proj"
expect_rc 0
expect_in err "engine $DOCKER_HOST"
echo "tls: all checks passed against $STAGEPIPE_TLS_HOST"
