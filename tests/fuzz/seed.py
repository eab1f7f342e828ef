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

# job event lines (fuzz_jobevents: NDJSON) as a job's child writes them
# (docs/events.md); the agent protocol (fuzz_agent: a flags byte whose
# bits 0-2 choose the call, then its body; docs/agent-protocol.md)
RUN = (
    '{"event":"pipeline_started","pipeline":"fastapi-app","job":"srv-17","stages":["build","test","promote"],'
    '"needs":{"test":["build"],"promote":["test"]}}\n'
    '{"event":"stage_started","stage":"build","target":"builder"}\n'
    '{"event":"log","stage":"build","stream":"build","line":"#5 [builder 2/4] RUN pip install ."}\n'
    '{"event":"stage_finished","stage":"build","result":"passed","seconds":12.5,"exit_code":0}\n'
    '{"event":"stage_started","stage":"test","target":"testing"}\n'
    '{"event":"log","stage":"test","stream":"stdout","line":"17 passed in 0.82s"}\r\n'
    '{"event":"log","stream":"info","line":"checkout done"}\n'
    '{"event":"stage_finished","stage":"test","result":"passed","seconds":3.1,"exit_code":0,'
    '"image":"sha256:0123","tests":{"total":17,"passed":17,"failed":0,"errors":0,"skipped":0},'
    '"coverage":100,"coverage_min":80}\n'
    '{"event":"promote_request","stage":"promote"}\n'
    '{"event":"stage_finished","stage":"promote","result":"skipped","seconds":0}\n'
    '{"event":"pipeline_finished","pipeline":"fastapi-app","result":"passed","seconds":14.2,'
    '"message":"17 tests passed"}\n')
SKIPPED = (
    '{"event":"pipeline_started","pipeline":"fastapi-app","job":"srv-17","stages":["test","promote"]}\n'
    '{"event":"pipeline_finished","pipeline":"fastapi-app","result":"skipped","seconds":0,'
    '"message":"on.push does not list branch \\"dev\\""}\n')
MISMATCH = ('{"event":"runner_mismatch","pipeline":"fastapi-app","runs_on":"linux,gpu",'
            '"message":"this runner (labels: linux) lacks gpu"}\n')
JUNK = ('not json\n{"event":"log","stage":"../../etc","line":"x"}\n'
        '{"event":"stage_started","stage":"Bad Name"}\n{"event":"nope"}\n[1,2]\n'
        '{"event":"log","stage":"test","line":"no newline at the end"}')
put("jobevents", "run.ndjson", RUN)
put("jobevents", "skipped.ndjson", SKIPPED)
put("jobevents", "mismatch.ndjson", MISMATCH)
put("jobevents", "junk.ndjson", JUNK)

A = "agent"
put(A, "lease", b"\x00" + b'{"agent":"build-1","labels":["linux","big"],"free":2,"running":[41]}')
put(A, "lease-other", b"\x08" + b'{"agent":"build-2","labels":[],"free":1}')
put(A, "lease-wrong-name", b"\x00" + b'{"agent":"build-2","free":1}')
put(A, "lease-drain", b"\x80" + b'{"agent":"build-1","free":1,"running":null}')
put(A, "events", b"\x01" + RUN.encode())
put(A, "events-retry", b"\x21" + RUN.encode())
put(A, "events-stale", b"\x11" + SKIPPED.encode())
put(A, "heartbeat", b"\x01")
put(A, "promote", b"\x02" + b'{"stage":"promote"}')
put(A, "promote-other", b"\x0a" + b'{"stage":"promote"}')
put(A, "finish", b"\x03" + b'{"state":"passed","reason":"17 tests passed","exit_code":0,'
    b'"seconds":31.2,"summary":{"event":"pipeline_finished","pipeline":"fastapi-app",'
    b'"result":"passed","seconds":14.2}}')
put(A, "finish-requeue", b"\x03" + b'{"state":"requeue","reason":"agent shutting down"}')
put(A, "finish-relabel", b"\x03" + b'{"state":"relabel","labels":"linux,gpu","exit_code":4}')
put(A, "finish-stale", b"\x13" + b'{"state":"failed","exit_code":1}')
put(A, "events-finish", b"\x07" + RUN.encode())
LEASE = (b'{"job":42,"epoch":3,"attempt":2,"ttl_ms":30000,"repo":"app",'
         b'"repo_url":"https://git.example.com/team/app.git","ref":"refs/heads/main",'
         b'"sha":"0123456789abcdef0123456789abcdef01234567","event":"push","event_ref":"main",'
         b'"pipeline":"stagepipe.yml","job_label":"srv-42","timeout_ms":7200000,'
         b'"credentials":{"user":"x-access-token","token":"t0ken"}}')
put(A, "answer-lease", b"\x04" + LEASE)
put(A, "answer-lease-secrets", b"\x04" + LEASE[:-1] +
    b',"secrets":{"API_TOKEN":"api-secret-value","DB_PASSWORD":"pw with spaces"}}')
put(A, "answer-lease-min", b"\x04" + b'{"job":1,"epoch":1,"repo_url":"file:///r","ref":"main"}')
put(A, "answer-stale", b"\x24" + b'{"granted":false,"stale":true,"reason":"already promoted by attempt 1"}')
put(A, "answer-error", b"\x44" + b'{"error":"this token belongs to agent build-1"}')
put(A, "answer-cancel", b"\x04" + b'{"cancel":true}')
put(A, "route-events", b"\x05" + b"/api/agent/jobs/42/events\0Bearer tok-build-1-secret")
put(A, "route-lease", b"\x05" + b"/api/agent/lease\0bearer   tok-build-2-secret")
put(A, "route-finish", b"\x05" + b"/api/agent/jobs/007/finish\0Basic dXNlcjpwYXNz")
put(A, "route-list", b"\x05" + b"/api/agents/")
put(A, "batch", b"\x06" + RUN.encode())
put(A, "batch-small", b"\x46" + (RUN * 4).encode())
put(A, "batch-each", b"\x26" + SKIPPED.encode())
