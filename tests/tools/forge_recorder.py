#!/usr/bin/python3
"""tests/tools/forge_recorder.py — a stand-in forge API that records commit statuses.

    forge_recorder.py --port 0 --port-file F --out LOG.jsonl [--token T] [--fail 500:2]

Listens on 127.0.0.1:PORT (0: a free port, written to --port-file once it
listens), and for every request appends one JSON line to --out:
    {"seq", "time", "method", "path", "headers": {...the interesting ones,
     lower-case...}, "body": parsed JSON or the text, "answered": status}
and answers as the forges do for a commit status: 201 with a JSON body
(GitHub/Gitea: {id, state, context, description, target_url, url};
GitLab: {id, status, name, sha, target_url}).

Failures, to test retries:
  --fail STATUS:N      the first N requests get STATUS (e.g. 500:2, 401:1)
  --token T            a request without "Authorization: Bearer T",
                       "Authorization: token T" or "PRIVATE-TOKEN: T" gets 401
  POST /_control {"fail": N, "status": 500}   the next N requests get status
  GET  /_requests      every recorded request as a JSON array
Control requests are not recorded.  Python 3 standard library only.
"""

import argparse
import itertools
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEEP = ("authorization", "private-token", "accept", "content-type", "user-agent",
        "x-github-api-version", "content-length")


class State:
    def __init__(self, out, token, fail_status, fail_n):
        self.lock = threading.Lock()
        self.out = out
        self.token = token
        self.fail_status = fail_status
        self.fail_n = fail_n
        self.records = []
        self.seq = itertools.count(1)
        self.ids = itertools.count(1000)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "forge-recorder/1"

    def log_message(self, fmt, *args):  # quiet; the JSON lines are the log
        pass

    def _reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, raw.decode("utf-8", "replace")

    def _authorized(self, st):
        if not st.token:
            return True
        auth = self.headers.get("Authorization", "")
        return (auth in ("Bearer " + st.token, "token " + st.token)
                or self.headers.get("PRIVATE-TOKEN") == st.token)

    def do_GET(self):
        st = self.server.state
        if self.path == "/_requests":
            with st.lock:
                self._reply(200, st.records)
            return
        self._handle(None)

    def do_POST(self):
        st = self.server.state
        if self.path == "/_control":
            _, body = self._body()
            with st.lock:
                if isinstance(body, dict):
                    st.fail_n = int(body.get("fail", 0))
                    st.fail_status = int(body.get("status", 500))
                    if "token" in body:
                        st.token = body["token"]
            self._reply(200, {"ok": True})
            return
        self._handle(self._body()[1])

    def _handle(self, body):
        st = self.server.state
        with st.lock:
            seq = next(st.seq)
            if st.fail_n > 0:
                st.fail_n -= 1
                status = st.fail_status
            elif not self._authorized(st):
                status = 401
            else:
                status = 201
            rec = {
                "seq": seq, "time": round(time.time(), 3), "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in ((k.lower(), v) for k, v in self.headers.items())
                            if k in KEEP},
                "body": body, "answered": status,
            }
            st.records.append(rec)
            with open(st.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
                f.flush()
                os.fsync(f.fileno())
            sid = next(st.ids)
        if status == 401:
            self._reply(401, {"message": "Bad credentials"})
            return
        if status != 201:
            self._reply(status, {"message": "recorder told to fail"})
            return
        b = body if isinstance(body, dict) else {}
        m = re.search(r"/statuses/([0-9a-f]{40})$", self.path)
        sha = m.group(1) if m else None
        if "/api/v4/" in self.path or "name" in b:  # GitLab
            self._reply(201, {"id": sid, "sha": sha, "ref": None, "status": b.get("state"),
                              "name": b.get("name"), "target_url": b.get("target_url"),
                              "description": b.get("description"),
                              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        else:
            self._reply(201, {"id": sid, "url": "http://%s%s" % (self.headers.get("Host"), self.path),
                              "state": b.get("state"), "context": b.get("context"),
                              "description": b.get("description"),
                              "target_url": b.get("target_url"),
                              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--out", required=True)
    p.add_argument("--token")
    p.add_argument("--fail", default=os.environ.get("RECORDER_FAIL", ""),
                   help="STATUS:N — the first N requests get STATUS")
    a = p.parse_args()
    fs, fn = 500, 0
    if a.fail:
        s, _, n = a.fail.partition(":")
        fs, fn = int(s), int(n or 1)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.state = State(a.out, a.token, fs, fn)
    open(a.out, "a").close()
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
