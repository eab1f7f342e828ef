#!/usr/bin/env python3
"""seed.py — (re)makes the seed corpora in tests/fuzz/corpus/ from tests/fixtures.

Run from the repository root: python3 tests/fuzz/seed.py
Targets whose input starts with a flags byte (demux, progress, push, untar,
webhook; see each fuzz_*.c) get that byte put in front of each fixture.
Hand-written seeds (pipeline, server_config, dockerignore, giturl, auth,
junit/cobertura extras) are kept as they are; this script only adds files.
"""
import glob, hashlib, hmac, io, os, tarfile

C = "tests/fuzz/corpus"
F = "tests/fixtures"


def put(target, name, data):
    d = os.path.join(C, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# flags byte: 0x00 all at once, 0x01 tiny pieces, 0x03 larger pieces
for p in sorted(glob.glob(F + "/buildkit/*.jsonl")):
    b = os.path.basename(p)
    put("progress", b, b"\x00" + read(p))
put("progress", "ok.jsonl.tiny", b"\x05" + read(F + "/buildkit/ok.jsonl"))
put("progress", "fail-run.jsonl.abandon", b"\x83" + read(F + "/buildkit/fail-run.jsonl"))



def records(path):
    """fuzz_progress's record form (flags bit 6): 2-byte length + raw protobuf or JSON."""
    import base64, json
    out = b""
    for line in read(path).splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("id") == "moby.buildkit.trace" and isinstance(m.get("aux"), str):
            rec = base64.b64decode(m["aux"])
            if rec[:1] == b"{":
                continue
        else:
            rec = line
        out += len(rec).to_bytes(2, "big") + rec
    return out


for b in ("ok.jsonl", "fail-run.jsonl", "cached.jsonl"):
    put("progress", b + ".records", b"\x40" + records(F + "/buildkit/" + b))

for p in sorted(glob.glob(F + "/push/*.jsonl")):
    b = os.path.basename(p)
    put("push", b, b"\x00" + read(p))
    put("jsonmsg", "push-" + b, read(p))
put("push", "auth-ok.jsonl.tiny", b"\x05" + read(F + "/push/auth-ok.jsonl"))
for b in ("classic-fail.jsonl", "fail-run.jsonl"):
    put("jsonmsg", "build-" + b, read(F + "/buildkit/" + b))

framed = read(F + "/docker/logs-framed.bin")
put("demux", "logs-framed.bin", b"\x00" + framed[:8192])
put("demux", "logs-framed.tiny", b"\x05" + framed[:2048])
put("demux", "syserr-stop", b"\x80" + b"\x01\0\0\0\0\0\0\x03abc" + b"\x03\0\0\0\0\0\0\x04oops" +
    b"\x02\0\0\0\0\0\0\x02e\n")
put("demux", "tty", b"\x00HTTP/1.1 200 OK\r\n")

put("untar", "archive-reports.tar", b"\x80" + read(F + "/docker/archive-reports.tar"))
put("untar", "archive-reports.tiny", b"\x85" + read(F + "/docker/archive-reports.tar"))


def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1764800000
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            elif kind == "file":
                ti.size = len(extra)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(extra))
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = extra
                t.addfile(ti)
            elif kind == "hard":
                ti.type = tarfile.LNKTYPE
                ti.linkname = extra
                t.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                t.addfile(ti)
    return buf.getvalue()


put("untar", "links.tar", b"\x80" + tar([
    ("r", "dir", None), ("r/a", "dir", None), ("r/a/f.txt", "file", b"hello\n"),
    ("r/a/l", "sym", "../b"), ("r/b", "file", b"b\n"), ("r/h", "hard", "r/a/f.txt")]))
put("untar", "escape-sym.tar", b"\x00" + tar([
    ("x", "sym", "../outside"), ("x/evil", "file", b"pwned")]))
put("untar", "dotdot.tar", b"\x00" + tar([("a/../../outside/evil", "file", b"x")]))
put("untar", "absolute.tar", b"\x00" + tar([("/tmp/evil", "file", b"x")], tarfile.GNU_FORMAT))
put("untar", "fifo.tar", b"\x00" + tar([("p", "fifo", None)], tarfile.USTAR_FORMAT))
put("untar", "longname.tar", b"\x01" + tar([("d/" + "n" * 150 + "/f", "file", b"long\n")],
                                           tarfile.GNU_FORMAT))

for p in sorted(glob.glob(F + "/pytest/*-junit.xml")):
    put("junit", os.path.basename(p), read(p))
for p in sorted(glob.glob(F + "/pytest/*-coverage.xml")):
    put("cobertura", os.path.basename(p), read(p))

# webhooks: flags 0x07 (sign for every forge), event header, content type
SECRET = b"It's a Secret to Everybody"
EVENT = {"github": "X-GitHub-Event", "gitea": "X-Gitea-Event", "gitlab": "X-Gitlab-Event"}
GITLAB = {"push": "Push Hook", "tag": "Tag Push Hook", "merge_request": "Merge Request Hook"}
for p in sorted(glob.glob(F + "/webhooks/*.json")) + [F + "/webhooks/github-push.form"]:
    b = os.path.basename(p)
    forge, rest = b.split("-", 1)
    ev = rest.split(".")[0].split("-")[0]
    if ev == "pull_request" and forge == "gitea":
        ev = "pull_request"
    if forge == "gitlab":
        ev = GITLAB.get(ev, GITLAB.get(rest.split("-")[0], "System Hook"))
        if rest.startswith("tag-push"):
            ev = "Tag Push Hook"
    ctype = "application/x-www-form-urlencoded" if b.endswith(".form") else "application/json"
    body = read(p)
    hdrs = "%s: %s\nContent-Type: %s\nX-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\n" % (
        EVENT[forge], ev, ctype)
    flags = {"github": 0x04, "gitea": 0x05, "gitlab": 0x06}[forge]
    put("webhook", b, bytes([flags]) + hdrs.encode() + b"\n" + body)
# a GitLab Standard Webhooks delivery with a whsec_ key, signed by the harness
put("webhook", "gitlab-standard", b"\x0e" + b"X-Gitlab-Event: Push Hook\nwebhook-id: msg_2\n\n" +
    read(F + "/webhooks/gitlab-push.json"))
# the same with a plain secret as the raw key (no X-Gitlab-Token)
put("webhook", "gitlab-standard-raw", b"\x26" + b"X-Gitlab-Event: Push Hook\nwebhook-id: msg_3\n\n" +
    read(F + "/webhooks/gitlab-push.json"))
# an unsigned github delivery (verification fails, the parser still runs)
sig = hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest()
put("webhook", "github-ping-sig", b"\x00X-Hub-Signature-256: sha256=" + sig.encode() +
    b"\nX-GitHub-Event: ping\n\n{}")
