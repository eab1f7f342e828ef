# Checkouts through sp_checkout as separate processes (no engine, no network):
# concurrent jobs on one repository, a job killed in the middle of a clone,
# the workspace pool, https-style credentials against a local smart-HTTP
# server that wants them, submodules, and the one-line errors.  The driver
# is tests/tools/checkout_driver (a test-only front end, built here against
# the library next to BIN); git daemon and git http-backend serve the
# repositories on loopback.
. "$(dirname "$0")/lib.sh"

DRIVER=$T/checkout_driver
"$top/tests/tools/build-driver.sh" "$(dirname "$BIN")/libstagepipe.a" "$DRIVER" ||
	fail "cannot build the checkout driver"

export HOME="$T/home" GIT_CONFIG_NOSYSTEM=1 XDG_CACHE_HOME="$T/xdg"
mkdir -p "$HOME"
unset STAGEPIPE_GIT_TOKEN STAGEPIPE_GIT_USER STAGEPIPE_GIT_PASSWORD STAGEPIPE_GIT_CREDENTIALS \
	STAGEPIPE_GIT_HOST XDG_CONFIG_HOME 2>/dev/null || true
git config --global user.name Test
git config --global user.email test@example.com
git config --global protocol.file.allow always

# value KEY: from the driver's KEY=VALUE output in $T/out
value() { sed -n "s/^$1=//p" "$T/out" | head -1; }

# --- repositories -----------------------------------------------------------
mkdir -p "$T/srv"
git init -q -b main "$T/work"
(
	cd "$T/work"
	mkdir -p src docs
	i=0
	while [ $i -lt 400 ]; do
		printf 'file %d\n' $i >"src/f$i.txt"
		i=$((i + 1))
	done
	echo readme >README.md
	git add -A && git commit -qm "first"
	git tag -a v1 -m "release 1"
	echo more >>README.md && git commit -qam "second"
)
git clone -q --bare "$T/work" "$T/srv/app.git"
# a big one, so that a clone takes a while: 60 MB that do not compress
git init -q --bare "$T/srv/big.git"
python3 - <<'PY' | git -C "$T/srv/big.git" fast-import --quiet
import os, sys
out = sys.stdout.buffer
out.write(b"commit refs/heads/main\ncommitter T <t@x> 1700000000 +0000\ndata 3\nbig\n")
for i in range(60):
    data = os.urandom(1 << 20)
    out.write(b"M 100644 inline blob%02d.bin\ndata %d\n" % (i, len(data)))
    out.write(data + b"\n")
PY
git -C "$T/srv/big.git" symbolic-ref HEAD refs/heads/main

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
git daemon --detach --pid-file="$T/daemon.pid" --reuseaddr --listen=127.0.0.1 --port="$PORT" \
	--base-path="$T/srv" --export-all "$T/srv" || fail "git daemon did not start"
trap 'kill "$(cat "$T/daemon.pid" 2>/dev/null)" "$(cat "$T/http.pid" 2>/dev/null)" \
	"$(cat "$T/redir.pid" 2>/dev/null)" "$(cat "$T/other.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$T"' EXIT
i=0
until git ls-remote "git://127.0.0.1:$PORT/app.git" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "git daemon does not answer"
	sleep 0.1
done
GITURL=git://127.0.0.1:$PORT

# --- 1. a checkout, then a second one reusing the mirror --------------------
run "$DRIVER" --cache "$T/c1" "$GITURL/app.git"
expect_rc 0
expect_in out "branch=main"
expect_in out "subject=second"
expect_in out "mirror_created=1"
dir=$(value dir)
[ -f "$dir/src/f399.txt" ] && [ ! -e "$dir/.git" ] || fail "the tree is not what was committed"
mirror=$(value mirror)
touch "$mirror/sentinel"
(cd "$T/work" && echo third >>README.md && git commit -qam "third" && git push -q "$T/srv/app.git" main)
run "$DRIVER" --cache "$T/c1" "$GITURL/app.git"
expect_rc 0
expect_in out "subject=third"
expect_in out "mirror_created=0"
expect_in out "objects=3"
[ -f "$mirror/sentinel" ] || fail "the mirror was not reused"
[ "$(value dir)" = "$dir" ] || fail "the workspace was not reused"

# --- 1b. a local repository by path: its objects shared, not copied ----------
# Its packs are hard-linked into the mirror (no alternates: the mirror must
# not depend on the source's object files, which the user's `git gc` may
# delete at any time, even during a run).
git clone -q --bare "$T/work" "$T/srv/local.git"
git -C "$T/srv/local.git" repack -adq
run "$DRIVER" --cache "$T/c1b" "$T/srv/local.git"
expect_rc 0
expect_in out "subject=third"
expect_in out "mirror_created=1"
expect_in out "objects=0"
lmirror=$(value mirror)
[ ! -e "$lmirror/objects/info/alternates" ] || fail "the mirror borrows the source's objects"
spack=$(ls "$T/srv/local.git/objects/pack/"*.pack)
[ "$(stat -c %i "$spack")" = "$(stat -c %i "$lmirror/objects/pack/$(basename "$spack")")" ] ||
	fail "the source's pack was copied, not linked"
lsha=$(value sha)
lreadme=$(git -C "$T/srv/local.git" show "$lsha:README.md")
# the source gets a commit and is gc'd: its packs are replaced; the mirror follows
(cd "$T/work" && echo local >>README.md && git commit -qam "local" && git push -q "$T/srv/local.git" main)
git -C "$T/srv/local.git" gc -q --prune=now
run "$DRIVER" --cache "$T/c1b" "$T/srv/local.git"
expect_rc 0
expect_in out "subject=local"
expect_in out "mirror_created=0"
[ -f "$(value dir)/src/f399.txt" ] || fail "the tree is not what was committed"
# every object file of the source gone (a gc, a deleted clone): a commit
# the mirror holds is still checked out whole from the mirror alone
rm -rf "$T/srv/local.git/objects/pack" "$T/srv/local.git/objects/"??
run "$DRIVER" --cache "$T/c1b" --dest "$T/localdest" --ref "$lsha" "$T/srv/local.git"
expect_rc 0
expect_in out "sha=$lsha"
[ "$(cat "$T/localdest/README.md")" = "$lreadme" ] ||
	fail "the tree of a commit the mirror holds depends on the source's objects"

# --- 2. six jobs at once on one repository, empty cache ---------------------
want=$(git -C "$T/srv/app.git" rev-parse main)
for n in 1 2 3 4 5 6; do
	case $n in
	1 | 2 | 3) url=$GITURL/app.git ;;
	*) url=file://$T/srv/app.git ;;
	esac
	"$DRIVER" --cache "$T/c2" --hold 1 "$url" >"$T/conc$n.out" 2>"$T/conc$n.err" &
	eval "pid$n=\$!"
done
for n in 1 2 3 4 5 6; do
	eval "wait \$pid$n" || { cat "$T/conc$n.err"; fail "concurrent job $n failed"; }
	grep -q "^sha=$want" "$T/conc$n.out" || fail "concurrent job $n checked out something else"
done
# git:// and file:// of one repository are two mirrors; each job had its own workspace
[ "$(ls "$T/c2/mirrors" | grep -c '\.git$')" = 2 ] || { ls "$T/c2/mirrors"; fail "not one mirror per URL"; }
[ "$(ls "$T/c2/mirrors" | grep -c 'tmp-')" = 0 ] || fail "a temporary mirror was left behind"
[ "$(sed -n 's/^dir=//p' "$T"/conc*.out | sort -u | wc -l)" = 6 ] || fail "two jobs shared a workspace"

# --- 3. a job killed in the middle of its clone -----------------------------
"$DRIVER" --cache "$T/c3" --progress "$GITURL/big.git" >"$T/kill.out" 2>"$T/kill.err" &
pid=$!
i=0
until grep -Eq 'fetching .*: [1-9][0-9]*/' "$T/kill.err" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 300 ] || { kill -9 $pid; cat "$T/kill.err"; fail "the clone never started"; }
	sleep 0.05
done
kill -9 $pid
wait $pid 2>/dev/null || true
ls "$T/c3/mirrors" | grep -q 'tmp-' || fail "expected the killed clone's temporary folder"
ls "$T/c3/mirrors" | grep -q '\.git$' && fail "a half-made mirror was put in place"
run "$DRIVER" --cache "$T/c3" "$GITURL/big.git"
expect_rc 0
expect_in out "mirror_created=1"
[ "$(ls "$T/c3/mirrors" | grep -c 'tmp-')" = 0 ] || fail "the killed clone's folder was not removed"
cmp -s "$(value dir)/blob59.bin" /dev/null && fail "blob59.bin is empty"
[ "$(wc -c <"$(value dir)/blob59.bin")" = 1048576 ] || fail "blob59.bin is not whole"

# --- 4. credentials: a smart-HTTP server that wants user "ci", password "s3cr3t-t0ken-value"
cat >"$T/smart_http_server.py" <<'PY'
import base64, http.server, os, subprocess, sys
root, want = sys.argv[1], "Basic " + base64.b64encode(b"ci:s3cr3t-t0ken-value").decode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int(self.rfile.readline().strip().split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
    def serve(self):
        body = self.body() if self.command == "POST" else b""
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(body)), REMOTE_USER="ci", REMOTE_ADDR="127.0.0.1",
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
    do_GET = do_POST = serve
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$T/smart_http_server.py" "$T/srv" >"$T/http.port" 2>"$T/http.log" &
echo $! >"$T/http.pid"
i=0
until [ -s "$T/http.port" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the HTTP server did not start"
	sleep 0.1
done
HTTP=http://127.0.0.1:$(cat "$T/http.port")
SECRET=s3cr3t-t0ken-value

# none set: says so, names the URL
run "$DRIVER" --cache "$T/c4" "$HTTP/app.git"
expect_rc 3
expect_in err "checkout: $HTTP/app.git asks for credentials and none are set"
# a wrong token: which URL, which method
run env STAGEPIPE_GIT_TOKEN=wrong-token-value STAGEPIPE_GIT_USER=ci "$DRIVER" --cache "$T/c4" "$HTTP/app.git"
expect_rc 3
expect_in err "checkout: authentication failed for $HTTP/app.git (tried STAGEPIPE_GIT_TOKEN as user ci)"
expect_not_in err "wrong-token-value"
[ "$(wc -l <"$T/err")" = 1 ] || fail "not one line"
# the right one
run env STAGEPIPE_GIT_TOKEN=$SECRET STAGEPIPE_GIT_USER=ci "$DRIVER" --cache "$T/c4" "$HTTP/app.git"
expect_rc 0
expect_in out "subject=third"
# user and password
run env STAGEPIPE_GIT_USER=ci STAGEPIPE_GIT_PASSWORD=$SECRET "$DRIVER" --cache "$T/c5" "$HTTP/app.git"
expect_rc 0
# a credentials file (git-credential-store format), with a wrong line first
mkdir -p "$T/cfg/stagepipe"
printf 'http://ci:nope-nope@127.0.0.1:%s\nhttp://ci:%s@127.0.0.1:%s/app.git\n' \
	"$(cat "$T/http.port")" "$SECRET" "$(cat "$T/http.port")" >"$T/cfg/stagepipe/git-credentials"
run env XDG_CONFIG_HOME="$T/cfg" "$DRIVER" --cache "$T/c6" "$HTTP/app.git"
expect_rc 0
# in the URL itself: works, and is printed nowhere, stored nowhere
run "$DRIVER" --cache "$T/c7" --progress "http://ci:$SECRET@127.0.0.1:$(cat "$T/http.port")/app.git"
expect_rc 0
expect_not_in out "$SECRET"
expect_not_in err "$SECRET"
run "$DRIVER" --cache "$T/c7" --ref no-such-ref "http://ci:$SECRET@127.0.0.1:$(cat "$T/http.port")/app.git"
expect_rc 3
expect_not_in err "$SECRET"
grep -rqa -- "$SECRET" "$T/c4" "$T/c5" "$T/c6" "$T/c7" && fail "a secret was written into the cache"
# the token is not sent to another host (a submodule elsewhere, say)
run env STAGEPIPE_GIT_TOKEN=$SECRET STAGEPIPE_GIT_USER=ci STAGEPIPE_GIT_HOST=example.com \
	"$DRIVER" --cache "$T/c8" "$HTTP/app.git"
expect_rc 3
expect_in err "asks for credentials and none are set"

# --- 4b. a redirect to another server never takes the token along -----------
# "redir" answers every request with 302 to "other" (another port: another
# origin); "other" asks for Basic credentials and logs any it is sent.
cat >"$T/redirect_server.py" <<'PY'
import http.server, sys
mode, target, log = sys.argv[1], sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.path, self.headers.get("Authorization", "-")))
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", target + self.path)
        else:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="other"')
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_POST = do_GET
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$T/redirect_server.py" other - "$T/other.log" >"$T/other.port" 2>/dev/null &
echo $! >"$T/other.pid"
i=0
until [ -s "$T/other.port" ]; do i=$((i + 1)); [ $i -lt 100 ] || fail "no server"; sleep 0.1; done
python3 "$T/redirect_server.py" redirect "http://127.0.0.1:$(cat "$T/other.port")" \
	"$T/redir.log" >"$T/redir.port" 2>/dev/null &
echo $! >"$T/redir.pid"
i=0
until [ -s "$T/redir.port" ]; do i=$((i + 1)); [ $i -lt 100 ] || fail "no server"; sleep 0.1; done
: >"$T/other.log"
run env STAGEPIPE_GIT_TOKEN=$SECRET STAGEPIPE_GIT_USER=ci \
	"$DRIVER" --cache "$T/c9" "http://127.0.0.1:$(cat "$T/redir.port")/app.git"
expect_rc 3
expect_not_in err "$SECRET"
[ -s "$T/redir.log" ] || fail "the redirecting server was never asked"
grep -q -- "Basic" "$T/other.log" && fail "credentials were sent to the redirect target"
grep -rqa -- "$SECRET" "$T/c9" && fail "a secret was written into the cache"
kill "$(cat "$T/redir.pid")" "$(cat "$T/other.pid")" 2>/dev/null

# --- 5. submodules -----------------------------------------------------------
git init -q -b main "$T/lib" && echo lib >"$T/lib/lib.c"
git -C "$T/lib" add -A && git -C "$T/lib" commit -qm lib
git clone -q --bare "$T/lib" "$T/srv/lib.git"
git -C "$T/work" submodule add -q "$T/srv/lib.git" vendor/lib
git -C "$T/work" commit -qm "lib submodule"
git -C "$T/work" push -q "$T/srv/app.git" main
run "$DRIVER" --cache "$T/c1" --submodules "file://$T/srv/app.git"
expect_rc 0
expect_in out "submodule=vendor/lib "
[ "$(cat "$(value dir)/vendor/lib/lib.c")" = lib ] || fail "the submodule was not checked out"

# --- 6. the one-line errors and their exit status ---------------------------
run "$DRIVER" --cache "$T/c1" --ref nope "$GITURL/app.git"
expect_rc 3
expect_in err "checkout: no branch, tag or commit \"nope\" in $GITURL/app.git"
run "$DRIVER" --cache "$T/c1" "$T/srv/missing.git"
expect_rc 3
expect_in err "checkout: no repository at $T/srv/missing.git"
run "$DRIVER" --cache "$T/c1" "$GITURL/missing.git"
expect_rc 3
expect_in err "checkout: cannot fetch $GITURL/missing.git: "
run "$DRIVER" --cache "$T/c1" "htps://example.com/a/b"
expect_rc 2
expect_in err "checkout: malformed repository URL"
for f in err; do
	[ "$(wc -l <"$T/$f")" = 1 ] || fail "not one line"
done
exit 0
