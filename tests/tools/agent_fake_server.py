#!/usr/bin/env python3
"""agent_fake_server.py — a tiny stand-in for `stagepipe serve`'s agent API
(docs/agent-protocol.md), for trying `stagepipe agent` by hand and for its
fault cases.  Not the real server (core/server/agents.c): no store, no
fencing beyond what a mode fakes.

    agent_fake_server.py PORT TOKEN [--jobs N] [--mode MODE] [--ttl-ms MS]

Hands out N jobs (default 1; job ids 1..N, epoch 1), then answers 204
after the long-poll wait.  Every request is printed as one JSON line on
stdout: {"call": ..., "job": ..., "status": ..., ...}.

Modes:
  normal       as the contract says
  refuse       401 on every call
  unavailable  503 on the first 3 lease calls, then normal
  fence        409 stale on the events of job 1 after its 2nd batch
  cancel       {"cancel": true} on the 2nd events batch of job 1
  deny         the promote permit refused (409 already promoted)
  drop         closes the connection without an answer for events
               seq 2 the first time (the agent retries with the same seq)
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

SHA = "0123456789abcdef0123456789abcdef01234567"


class State:
    def __init__(self, token, jobs, mode, ttl_ms):
        self.token = token
        self.queue = list(range(1, jobs + 1))
        self.mode = mode
        self.ttl_ms = ttl_ms
        self.lock = threading.Lock()
        self.lease_calls = 0
        self.batches = {}      # job -> count of applied batches
        self.last_seq = {}     # job -> last seq applied
        self.dropped_once = False
        self.lines = {}        # job -> lines applied


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj=None, headers=()):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.st
        u = urlparse(self.path)
        q = parse_qs(u.query)
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        auth = self.headers.get("Authorization", "")
        if st.mode == "refuse" or auth != "Bearer " + st.token:
            emit(call=u.path, status=401)
            return self.answer(401, None, [("WWW-Authenticate", 'Bearer realm="stagepipe"')])
        parts = u.path.strip("/").split("/")
        if u.path == "/api/agent/lease":
            return self.lease(st, q, body)
        if len(parts) == 5 and parts[:3] == ["api", "agent", "jobs"]:
            job = int(parts[3])
            if parts[4] == "events":
                return self.events(st, job, q, body)
            if parts[4] == "promote":
                return self.promote(st, job, q, body)
            if parts[4] == "finish":
                req = json.loads(body)
                emit(call="finish", job=job, epoch=int(q["epoch"][0]), body=req)
                return self.answer(200, {})
        return self.answer(404, {"error": "no such call"})

    def lease(self, st, q, body):
        req = json.loads(body)
        wait = int(q.get("wait", ["30"])[0])
        with st.lock:
            st.lease_calls += 1
            calls = st.lease_calls
            job = st.queue.pop(0) if st.queue else None
        emit(call="lease", status=None, body=req)
        if st.mode == "unavailable" and calls <= 3:
            if job:
                st.queue.insert(0, job)
            emit(call="lease", status=503)
            return self.answer(503, {"error": "the server is draining"})
        if job is None:
            time.sleep(min(wait, 60))
            emit(call="lease", status=204)
            return self.answer(204)
        lease = {"job": job, "epoch": 1, "attempt": 1, "ttl_ms": st.ttl_ms, "repo": "app",
                 "repo_url": "https://git.example.com/team/app.git", "ref": "refs/heads/main",
                 "sha": SHA, "event": "push", "event_ref": "main", "pipeline": "stagepipe.yml",
                 "job_label": "srv-%d" % job, "timeout_ms": 600000,
                 "credentials": {"user": "x-access-token", "token": "fake-git-token"}}
        emit(call="lease", status=200, job=job)
        return self.answer(200, lease)

    def events(self, st, job, q, body):
        seq = int(q["seq"][0])
        lines = body.decode().splitlines()
        with st.lock:
            if st.mode == "drop" and job == 1 and seq == 2 and not st.dropped_once:
                st.dropped_once = True
                emit(call="events", job=job, seq=seq, status="dropped", lines=len(lines))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if st.mode == "fence" and job == 1 and st.batches.get(job, 0) >= 2:
                emit(call="events", job=job, seq=seq, status=409)
                return self.answer(409, {"error": "the lease moved on", "stale": True})
            applied = seq > st.last_seq.get(job, 0)
            if applied:
                st.last_seq[job] = seq
                st.batches[job] = st.batches.get(job, 0) + 1
                st.lines.setdefault(job, []).extend(lines)
            cancel = st.mode == "cancel" and job == 1 and st.batches.get(job, 0) >= 2
        emit(call="events", job=job, seq=seq, status=200, applied=applied, lines=lines,
             cancel=cancel)
        return self.answer(200, {"cancel": cancel})

    def promote(self, st, job, q, body):
        req = json.loads(body)
        if st.mode == "deny":
            emit(call="promote", job=job, body=req, status=409)
            return self.answer(409, {"granted": False, "reason": "already promoted by attempt 1"})
        emit(call="promote", job=job, body=req, status=200)
        return self.answer(200, {"granted": True})


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    port, token = int(args[0]), args[1]
    jobs, mode, ttl = 1, "normal", 30000
    i = 2
    while i < len(args):
        if args[i] == "--jobs":
            jobs = int(args[i + 1])
        elif args[i] == "--mode":
            mode = args[i + 1]
        elif args[i] == "--ttl-ms":
            ttl = int(args[i + 1])
        i += 2
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.st = State(token, jobs, mode, ttl)
    emit(call="ready", port=port)
    srv.serve_forever()


if __name__ == "__main__":
    main()
