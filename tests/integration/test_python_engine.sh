# The interpreter of a pytest stage on the real engine (core/exec/python.h).
# The base image (contrib/engine.sh) has /usr/bin/python3 and no `python`,
# as most Debian and Ubuntu images: every image here is built from it.
#   - python3 only: the tests pass, counts and coverage as pytest's own;
#   - a venv first on PATH (with pytest; the system python3 and a system
#     `python` without it): the venv's interpreter runs the tests;
#   - python: in the stage: that interpreter, or one line when it is not there;
#   - no pytest, --cov without pytest-cov, no Python at all: one line each
#     naming the image and what was looked for, exit 1, no test run; a
#     container that cannot start for another reason (a user the image
#     lacks): the engine's reason, not "no Python";
#   - the test container finds its interpreter itself: a python3-only
#     image creates one container per run of a stage, an image with
#     `python` and no python3 two (python3 cannot start);
#   - the boot's lines are not in the output, a test printing them is;
#   - no container left behind.
. "$(dirname "$0")/lib.sh"
: "${BASE_IMAGE:?needs contrib/engine.sh up}"
: "${DOCKER_HOST:?needs contrib/engine.sh up}"

U=$(rnd 4)
P=$T/proj
mkdir -p "$P/pkg" "$P/tests"
cat >"$P/Dockerfile" <<'EOF'
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS py3only
# as the base image is: python3 and no python
RUN ! command -v python && command -v python3
WORKDIR /src
COPY . .

FROM py3only AS venv
# pytest only in the venv; a system `python` and python3 without it
RUN python3 -m venv --without-pip /opt/venv && \
    site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
    cp -a /usr/lib/python3/dist-packages/. "$site"/ && \
    cd /usr/lib/python3/dist-packages && rm -rf pytest _pytest pytest-*.dist-info pytest_cov* pytest-cov.pth && \
    ln -s /usr/bin/python3 /usr/local/bin/python && \
    ! /usr/local/bin/python -c 'import pytest' && ! /usr/bin/python3 -c 'import pytest' && \
    /opt/venv/bin/python -c 'import pytest, pytest_cov'
ENV PATH=/opt/venv/bin:$PATH

FROM py3only AS nopytest
RUN cd /usr/lib/python3/dist-packages && rm -rf pytest _pytest pytest-*.dist-info pytest_cov* pytest-cov.pth

FROM py3only AS nocov
RUN cd /usr/lib/python3/dist-packages && rm -rf pytest_cov* pytest-cov.pth

FROM py3only AS nopython
RUN rm -f /usr/bin/python3 /usr/bin/python3.11

FROM py3only AS pyonly
# `python` and no python3
RUN ln -s "$(readlink -f /usr/bin/python3)" /usr/bin/python && rm /usr/bin/python3 && \
    ! command -v python3
EOF
cat >"$P/pkg/__init__.py" <<'EOF'
import sys


def add(a, b):
    return a + b


def interpreter():
    return sys.executable


def unused(x):
    if x:
        return 1
    return 2
EOF
cat >"$P/tests/test_pkg.py" <<'EOF'
import pytest

from pkg import add, interpreter


def test_add():
    assert add(1, 2) == 3


def test_add_more():
    assert add(2, 2) == 4


def test_which_python():
    print("RUNNING UNDER", interpreter())
    print("stagepipe-probe: stop")


@pytest.mark.skip(reason="counted as skipped")
def test_skipped():
    pass
EOF
cat >"$P/stagepipe.yml" <<EOF
version: 1
name: py-$U
build:
  args: { BASE_IMAGE: "\${env.BASE_IMAGE}" }
  network: none
stages:
  - name: py3only
    target: py3only
    pytest: [-s, --cov=pkg, --cov-report=term]
  - name: venv
    target: venv
    pytest: [-s, --cov=pkg, --cov-report=term]
  - name: key
    target: py3only
    python: /usr/bin/python3.11
    pytest: [-s]
  - name: keygone
    target: py3only
    python: python3.99
    pytest: [-q]
  - name: nopytest
    target: nopytest
    pytest: [-q]
  - name: nocov
    target: nocov
    pytest: [-q, --cov=pkg]
  - name: nocovok
    target: nocov
    pytest: [-q]
  - name: nopython
    target: nopython
    pytest: [-q]
  - name: pyonly
    target: pyonly
    pytest: [-s, --cov=pkg]
  - name: baduser
    target: py3only
    user: nosuchuser
    pytest: [-q]
EOF

# validate shows the key, and refuses a bad one with its position
run "$BIN" validate -f "$P/stagepipe.yml"
expect_rc 0
expect_in out "target py3only; pytest -s; python /usr/bin/python3.11; timeout 1h"
sed 's|python: python3.99|python: "python3 -X dev"|' "$P/stagepipe.yml" >"$T/bad.yml"
run "$BIN" validate -f "$T/bad.yml"
expect_rc 2
expect_in err 'bad.yml:19:13: python "python3 -X dev" must be a program name (python3.12) or an absolute path (/opt/venv/bin/python), without spaces'

stage() { run "$BIN" run -C "$P" --stage "$1"; }
# the last line of the run's output: the reason
last_line() { tail -n 1 "$T/out"; }

# 1. python3 only: passes with pytest's counts and coverage
stage py3only
expect_rc 0
expect_in out ':: python: /usr/bin/python3 (Python 3.'
expect_in out "python3 on the image's PATH), pytest "
expect_in out "RUNNING UNDER /usr/bin/python3"
expect_in out "3 passed, 1 skipped in"
expect_in out "3 passed, 0 failed, 1 skipped — coverage 66.7%"
grep -Eq '^ *TOTAL +9 +3 +67%' "$T/out" || { cat "$T/out"; fail "pytest-cov's TOTAL is not 9 3 67%"; }
expect_not_in out "cannot start"
# the boot's lines are not the output; a test printing one is
expect_not_in out "stagepipe-probe: executable="
expect_not_in out "stagepipe-probe: go"
expect_in out "stagepipe-probe: stop"

# 1b. one container per run of a pytest stage (the tests' own; no probe),
# every run, though each build is a new image; two when python3 cannot
# start and `python` can
API="http://localhost/v1.41"
created() {  # containers of this pipeline created between $1 and $2 (epoch seconds, fractions allowed)
	curl -s --unix-socket "${DOCKER_HOST#unix://}" -G "$API/events" --data-urlencode "since=$1" \
		--data-urlencode "until=$2" --data-urlencode \
		'filters={"type":["container"],"event":["create"],"label":["io.stagepipe.pipeline=py-'"$U"'"]}' |
		grep -c '"Action":"create"' || true
}
echo "# a change" >>"$P/pkg/__init__.py"
t0=$(date +%s.%N)
stage py3only
t1=$(($(date +%s) + 1))
expect_rc 0
expect_in out ':: python: /usr/bin/python3 (Python 3.'
expect_in out "pytest-cov "
expect_in out "3 passed, 0 failed, 1 skipped — coverage 66.7%"
n=$(created "$t0" "$t1")
[ "$n" = 1 ] || fail "a run after a change created $n containers, wanted 1 (the tests')"

t0=$(date +%s.%N)
stage pyonly
t1=$(($(date +%s) + 1))
expect_rc 0
expect_in out ":: python: /usr/bin/python (Python 3."
expect_in out "python on the image's PATH), pytest "
expect_in out "RUNNING UNDER /usr/bin/python"
expect_in out "3 passed, 0 failed, 1 skipped — coverage 66.7%"
n=$(created "$t0" "$t1")
[ "$n" = 2 ] || fail "without python3 the run created $n containers, wanted 2 (python3 cannot start, then python)"

# 2. a venv first on PATH wins over /usr/local/bin/python and /usr/bin/python3
stage venv
expect_rc 0
expect_in out ":: python: /opt/venv/bin/python (Python 3."
expect_in out "python on the image's PATH), pytest "
expect_in out "RUNNING UNDER /opt/venv/bin/python"
expect_in out "3 passed, 0 failed, 1 skipped — coverage 66.7%"

# 3. python: in the stage
stage key
expect_rc 0
expect_in out ":: python: /usr/bin/python3.11 (Python 3."
expect_in out "the stage's python: /usr/bin/python3.11)"
expect_in out "RUNNING UNDER /usr/bin/python3.11"
stage keygone
expect_rc 1
expect_in out 'cannot start python: python3.99 (stage "keygone") in the image of target "py3only" (sha256:'
last_line | grep -q ': exec: "python3.99": executable file not found in \$PATH$' || { cat "$T/out"; fail "no engine reason"; }

# 4. what is missing: one line, exit 1, and no test ran
stage nopytest
expect_rc 1
last_line | grep -Eq '^no pytest in the image of target "nopytest" \(sha256:[0-9a-f]{12}\): /usr/bin/python3 \(Python 3\.[0-9.]+, python3 on the image.s PATH\) cannot import pytest; install pytest in that target, or set python: in stage "nopytest" to an interpreter that has it$' ||
	{ cat "$T/out"; fail "no clear line for a missing pytest"; }
expect_not_in out "No module named pytest"
expect_not_in out "passed"
expect_not_in out "stagepipe-probe:"

stage nocov
expect_rc 1
last_line | grep -Eq '^--cov needs the pytest-cov plugin, which /usr/bin/python3 \(Python 3\.[0-9.]+, python3 on the image.s PATH\) in the image of target "nocov" \(sha256:[0-9a-f]{12}\) cannot import; install pytest-cov in that target, or drop --cov \(and coverage.min\) from stage "nocov"$' ||
	{ cat "$T/out"; fail "no clear line for a missing pytest-cov"; }
expect_not_in out "usage:"
expect_not_in out "unrecognized arguments"

stage nocovok
expect_rc 0
expect_in out "3 passed, 0 failed, 1 skipped"

stage nopython
expect_rc 1
last_line | grep -Eq '^no Python in the image of target "nopython" \(sha256:[0-9a-f]{12}\): neither python nor python3 can be started from its PATH; install Python in that target, or set python: in stage "nopython" to the interpreter.s absolute path$' ||
	{ cat "$T/out"; fail "no clear line for an image without Python"; }

# a container that cannot start for another reason is not "no Python": the
# engine's reason, and no second try as `python`
stage baduser
expect_rc 1
expect_not_in out "no Python"
last_line | grep -Eq '^the test container of stage "baduser" cannot start in the image of target "py3only" \(sha256:[0-9a-f]{12}\): unable to find user nosuchuser: no matching entries in passwd file$' ||
	{ cat "$T/out"; fail "no clear line for a user the image lacks"; }

# 5. --json: the same line is the stage's message
run "$BIN" run -C "$P" --stage nopytest --json
expect_rc 1
grep '"event":"stage_finished"' "$T/out" | grep -q '"message":"no pytest in the image of target' ||
	{ cat "$T/out"; fail "--json lacks the stage's message"; }

# 6. nothing left behind
left=$(curl -s --unix-socket "${DOCKER_HOST#unix://}" \
	'http://localhost/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.stagepipe.pipeline%3Dpy-'"$U"'%22%5D%7D')
[ "$left" = "[]" ] || fail "containers left: $left"
echo "ok"
