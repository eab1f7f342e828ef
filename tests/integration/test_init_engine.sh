# stagepipe init on the real engine: the files it writes for a src-layout
# library, a flat-layout FastAPI service and a uv project (all made here)
# and for the example app (its own Dockerfile, .dockerignore and pipeline moved aside)
# pass `validate` and then the whole pipeline, offline (BASE_IMAGE with no
# PyPI, BUILD_NETWORK=none, pushes to $REGISTRY); init again refuses
# without --force and changes nothing.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}" "${REGISTRY:?needs contrib/engine.sh up}"
build_network

uniq=$(rnd 4)

commit() {
	(cd "$1" && git init -q && git add -A &&
		git -c user.email=ci@example.com -c user.name=ci commit -qm "initial") ||
		fail "cannot make the repository $1"
}

# checksum of every file in a folder but .git
tree_sum() {
	(cd "$1" && find . -path ./.git -prune -o -type f -print | LC_ALL=C sort |
		xargs sha256sum) | sha256sum
}

# 1. a src-layout library: pyproject with requires-python, a dev extra,
#    tests outside the package (no __init__.py), no runtime dependencies
S=$T/srclib
mkdir -p "$S/src/calclib" "$S/tests"
cat >"$S/pyproject.toml" <<EOF
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "sp-init-src-$uniq"
version = "0.1.0"
requires-python = ">=3.10, <3.12"
dependencies = []

[project.optional-dependencies]
test = ["pytest>=7"]
EOF
cat >"$S/src/calclib/__init__.py" <<'EOF'
from .calc import add, mean

__all__ = ["add", "mean"]
EOF
cat >"$S/src/calclib/calc.py" <<'EOF'
def add(a, b):
    return a + b


def mean(values):
    if not values:
        raise ValueError("mean of nothing")
    return sum(values) / len(values)
EOF
cat >"$S/tests/test_calc.py" <<'EOF'
import pytest

from calclib import add, mean


def test_add():
    assert add(2, 3) == 5


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_mean_empty():
    with pytest.raises(ValueError):
        mean([])
EOF
commit "$S"

run "$BIN" init "$S"
expect_rc 0
expect_in out "src layout, package calclib, tests in tests/"
expect_in out "python 3.11 (requires-python \">=3.10, <3.12\", pyproject.toml)"
expect_in out "wrote    $S/stagepipe.yml"
expect_in out "wrote    $S/Dockerfile"
expect_in out "wrote    $S/.dockerignore"
expect_in out "next: stagepipe validate -f $S/stagepipe.yml && stagepipe run -C $S"
grep -qx 'ARG BASE_IMAGE=python:3.11-slim' "$S/Dockerfile" || fail "no BASE_IMAGE default 3.11"
grep -q '^USER app' "$S/Dockerfile" || fail "runtime not non-root"
grep -q 'HEALTHCHECK' "$S/Dockerfile" && fail "a library got a HEALTHCHECK"
grep -q 'PYTHONPATH=/app/src' "$S/Dockerfile" || fail "src not on PYTHONPATH"
for t in builder runtime testing; do
	grep -q " AS $t\$" "$S/Dockerfile" || fail "no $t stage"
done
run "$BIN" validate -f "$S/stagepipe.yml"
expect_rc 0
expect_in out "is valid, 2 stages"

commit_again() { (cd "$1" && git add -A && git -c user.email=ci@example.com -c user.name=ci commit -qm "stagepipe init") || fail "commit"; }
commit_again "$S"
sha=$(cd "$S" && git rev-parse --short=7 HEAD)
run "$BIN" run -C "$S"
expect_rc 0
expect_in out "dev dependencies provided by the base image; pip skipped"
expect_in out "3/3 passed"
expect_in out "pushed $REGISTRY/sp-init-src-$uniq:$sha@sha256:"
expect_in out "pipeline sp-init-src-$uniq passed"

# 2. init again: refused, nothing changed; --force rewrites (same contents)
before=$(tree_sum "$S")
run "$BIN" init "$S"
expect_rc 1
expect_in err "$S/stagepipe.yml already there; nothing written (--force overwrites)"
[ "$(tree_sum "$S")" = "$before" ] || fail "a refused init changed files"
echo "# mine" >>"$S/Dockerfile"
run "$BIN" init --force "$S"
expect_rc 0
expect_in out "same     $S/stagepipe.yml"
expect_in out "replaced $S/Dockerfile"
grep -q '# mine' "$S/Dockerfile" && fail "--force kept the old Dockerfile"

# 3. a flat-layout FastAPI service from requirements files: an app factory
#    with a /healthz route, uvicorn in the requirements: a HEALTHCHECK
F=$T/shop-$uniq
mkdir -p "$F/shop" "$F/tests"
printf 'fastapi>=0.90\nuvicorn>=0.17  # the server\n' >"$F/requirements.txt"
printf -- '-r requirements.txt\npytest>=7\npytest-cov\nhttpx\n' >"$F/requirements-dev.txt"
printf '3.11\n' >"$F/.python-version"
: >"$F/shop/__init__.py"
cat >"$F/shop/web.py" <<'EOF'
from fastapi import FastAPI


def create_app():
    app = FastAPI(title="shop")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/price/{n}")
    def price(n: int):
        return {"n": n, "total": n * 3}

    return app
EOF
cat >"$F/tests/test_web.py" <<'EOF'
from fastapi.testclient import TestClient

from shop.web import create_app


def test_health():
    assert TestClient(create_app()).get("/healthz").json() == {"status": "ok"}


def test_price():
    assert TestClient(create_app()).get("/price/4").json()["total"] == 12
EOF
commit "$F"
run "$BIN" init "$F"
expect_rc 0
expect_in out "shop-$uniq, flat layout, package shop, tests in tests/"
expect_in out "python 3.11 (.python-version)"
expect_in out "web service: shop.web:create_app (factory) served by uvicorn on port 8000, health check /healthz"
grep -q '"--factory"' "$F/Dockerfile" || fail "no --factory for the app factory"
grep -q "8000/healthz" "$F/Dockerfile" || fail "HEALTHCHECK does not probe /healthz"
grep -q 'healthcheck: true' "$F/stagepipe.yml" || fail "promote not health-checked"
grep -q 'COPY requirements.txt requirements-dev.txt ./' "$F/Dockerfile" || fail "dependency files not copied first"
commit_again "$F"
run "$BIN" run -C "$F"
expect_rc 0
expect_in out "runtime dependencies provided by the base image; pip skipped"
expect_in out "2/2 passed"
expect_in out "healthy after"
expect_in out "pushed $REGISTRY/shop-$uniq:"
expect_in out "pipeline shop-$uniq passed"

# 4. the example app, its own pipeline, Dockerfile and .dockerignore moved aside
E=$T/example
mkdir -p "$E" "$T/aside"
cp -r "$top/contrib/example-app/." "$E/"
mv "$E/Dockerfile" "$E/.dockerignore" "$T/aside/"
[ -e "$E/stagepipe.yml" ] && mv "$E/stagepipe.yml" "$T/aside/"
sed -i "s/^name = \"stagepipe-example\"/name = \"sp-init-example-$uniq\"/" "$E/pyproject.toml"
commit "$E"
run "$BIN" init "$E"
expect_rc 0
expect_in out "flat layout, package app, tests in tests/"
expect_in out "web service: app.main:app served by uvicorn on port 8000, health check /health"
grep -q 'coverage: { min: 90 }' "$E/stagepipe.yml" || fail "fail_under not carried over"
commit_again "$E"
run "$BIN" run -C "$E"
expect_rc 0
expect_in out "17/17 passed"
expect_in out "healthy after"
expect_in out "pushed $REGISTRY/sp-init-example-$uniq:"

# 5. a uv project (uv.lock): offline, UV_IMAGE is the base image (no uv in
#    it), which has every dependency, so uv is never needed
U=$T/uvproj
mkdir -p "$U/src/uvpkg" "$U/tests"
cat >"$U/pyproject.toml" <<EOF
[project]
name = "sp-init-uv-$uniq"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["pydantic>=1.10"]

[dependency-groups]
dev = ["pytest>=7", "pytest-cov"]
EOF
printf 'version = 1\nrequires-python = ">=3.11"\n' >"$U/uv.lock"
printf 'from pydantic import BaseModel\n\n\nclass Point(BaseModel):\n    x: int\n    y: int\n' \
	>"$U/src/uvpkg/__init__.py"
printf 'from uvpkg import Point\n\n\ndef test_point():\n    assert Point(x=1, y=2).y == 2\n' \
	>"$U/tests/test_point.py"
commit "$U"
run "$BIN" init "$U"
expect_rc 0
expect_in out "installed with uv (uv.lock)"
grep -q 'uv sync --locked --no-dev --no-install-project' "$U/Dockerfile" || fail "no uv sync"
grep -q 'UV_IMAGE: ${env.UV_IMAGE:-' "$U/stagepipe.yml" || fail "no UV_IMAGE build arg"
commit_again "$U"
UV_IMAGE=$BASE_IMAGE run "$BIN" run -C "$U"
expect_rc 0
expect_in out "runtime dependencies provided by the base image; uv sync skipped"
expect_in out "1/1 passed"
expect_in out "pipeline sp-init-uv-$uniq passed"

# 6. an existing Dockerfile is kept; a folder with nothing Python is refused
K=$T/kept
mkdir -p "$K/pkg"
: >"$K/pkg/__init__.py"
printf 'FROM scratch AS testing\nFROM scratch AS runtime\n' >"$K/Dockerfile"
run "$BIN" init "$K"
expect_rc 0
expect_in out "kept     $K/Dockerfile (already there; --force overwrites it)"
[ ! -e "$K/.stagepipe/missing_deps.py" ] || fail "helper written for a kept Dockerfile"
grep -q 'FROM scratch AS testing' "$K/Dockerfile" || fail "Dockerfile changed"
expect_not_in out "warning"
rm "$K/stagepipe.yml"
printf 'FROM scratch AS test\n' >"$K/Dockerfile"
run "$BIN" init "$K"
expect_rc 0
expect_in out "warning: the kept Dockerfile has no \`testing\` stage"
mkdir -p "$T/empty"
run "$BIN" init "$T/empty"
expect_rc 2
expect_in err "not a Python project init can read"
[ -z "$(ls -A "$T/empty")" ] || fail "init wrote into a folder it refused"
echo "ok"
