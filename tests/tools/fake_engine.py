#!/usr/bin/env python3
"""tests/tools/fake_engine.py SOCKET LOG SCENARIO — a fake Docker engine
for faults a real one cannot produce on demand (test code, not product).

Listens on the unix socket SOCKET and speaks just enough of the Engine API
(HTTP/1.1, chunked streams, API 1.41) for `stagepipe build` and
`stagepipe run` with a pytest stage.  Every request line ("METHOD PATH",
query included) is appended to LOG as it arrives, and "# body N bytes"
once a request body has been read in full.  "ready" goes to stdout once
the socket listens.  SCENARIO picks the one fault to inject:

  ok              everything answers as dockerd 20.10 does (control case)
  build-truncated /build: 200, some BuildKit lines, then a clean end of the
                  stream without the moby.image.id line
  build-malformed /build: 200, valid lines, then one that is not JSON
  build-hang      /build: reads the body, then answers nothing, ever
  build-stall     /build: 200 and some lines, then silence, connection open
  build-drop      /build: 200 and some lines, then the connection is closed
                  in the middle of a chunk (as when dockerd is killed)
  build-exit      /build: as build-drop, but the whole fake engine exits
  build-500       /build: HTTP 500 {"message":"something broke"}, no stream
  create-404      containers/create: 404 {"message":"No such image: x"}
  logs-cut        logs: the HTTP stream ends cleanly inside a log frame
  logs-drop       logs: the connection is closed inside a log frame
  wait-137        logs end normally, wait says {"StatusCode":137} (the
                  container was killed when the engine restarted), no
                  reports in the container

Build answers replay tests/fixtures/buildkit/ok.jsonl (a real dockerd
20.10.24 stream); the container for `run` is always "fake1".
"""
import base64
import http.server
import io
import json
import os
import re
import socketserver
import struct
import sys
import tarfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
API = "1.41"
CID = "fake1"

SOCKET, LOG, SCENARIO = sys.argv[1:4]
log_lock = threading.Lock()


def log(line):
    with log_lock, open(LOG, "a") as f:
        f.write(line + "\n")


def fixture(*path):
    with open(os.path.join(FIXTURES, *path), "rb") as f:
        return f.read()


# the real stream, one message per line (b'...\r\n' as dockerd sends them)
BUILD_LINES = [l + b"\r\n" for l in fixture("buildkit", "ok.jsonl").splitlines()]
# the lines before the result: the trace messages only
TRACE_LINES = [l for l in BUILD_LINES if b'"moby.image.id"' not in l and b'"stream"' not in l]


def frame(stream, data):
    """One frame of a multiplexed (Tty: false) log stream."""
    return struct.pack(">BxxxI", stream, len(data)) + data


PYTEST_OUT = [
    frame(1, b"============================= test session starts ==============================\n"),
    frame(1, b"collected 3 items\n\n"),
    frame(1, b"tests/test_app.py ...                                                    [100%]\n"),
    frame(2, b"a warning on stderr\n"),
]


def reports_tar(with_reports):
    """The archive GET answer: the real one, or only the empty folder."""
    if with_reports:
        return fixture("docker", "archive-reports.tar")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("stagepipe-reports")
        d.type, d.mode = tarfile.DIRTYPE, 0o1777
        t.addfile(d)
    return out.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Docker/20.10.24-fake"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet: LOG is the record
        pass

    # ---- request side ----

    def read_body(self):
        """The whole request body, chunked (curl's uploads) or not."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("request body cut")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                body += self.rfile.read(size)
                self.rfile.read(2)  # CRLF after the chunk
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        log("# body %d bytes" % len(body))
        return bytes(body)

    # ---- response side ----

    def head(self, status, ctype, length=None, extra=()):
        self.send_response(status)
        self.send_header("Api-Version", API)
        self.send_header("Ostype", "linux")
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def reply(self, status, body=b"", ctype="application/json", extra=()):
        if not isinstance(body, bytes):
            body = (json.dumps(body) + "\n").encode()
        self.head(status, ctype if body else None, len(body), extra)
        self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self):
        self.wfile.write(b"0\r\n\r\n")

    def cut(self):
        """Drop the connection without ending the stream."""
        self.wfile.flush()
        self.close_connection = True

    def hang(self):
        """Never answer again; the connection stays open."""
        threading.Event().wait()

    # ---- routes ----

    def do_any(self):
        log("%s %s" % (self.command, self.path))
        path, _, query = self.path.partition("?")
        m = re.match(r"/v[0-9.]+(/.*)$", path)
        route = m.group(1) if m else path
        if route == "/_ping":
            return self.reply(200, b"OK", "text/plain; charset=utf-8",
                              [("Builder-Version", "2")])
        if route == "/version":
            return self.reply(200, {"Version": "20.10.24-fake", "ApiVersion": API,
                                    "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"})
        if route == "/build/cancel":
            return self.reply(200)
        if route == "/build":
            return self.build()
        if route == "/containers/create":
            self.read_body()
            if SCENARIO == "create-404":
                return self.reply(404, {"message": "No such image: x"})
            return self.reply(201, {"Id": CID, "Warnings": []})
        m = re.match(r"/containers/%s(/[a-z]+)?$" % CID, route)
        if m:
            return self.container(m.group(1) or "")
        self.reply(404, {"message": "fake engine: no route for %s %s" % (self.command, path)})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_any

    def build(self):
        self.read_body()  # dockerd 20.10 answers only once it has it all
        if SCENARIO == "build-500":
            return self.reply(500, {"message": "something broke"})
        if SCENARIO == "build-hang":
            return self.hang()
        self.head(200, "application/json")
        some = TRACE_LINES[:6]
        if SCENARIO == "build-truncated":
            for l in some:
                self.chunk(l)
            return self.end()
        if SCENARIO == "build-malformed":
            for l in some[:5]:
                self.chunk(l)
            self.chunk(b'{"id":"moby.buildkit.trace","aux":"Cm8KR3NoYTI1\r\n')
            for l in some[5:]:
                self.chunk(l)
            return self.end()
        if SCENARIO == "build-stall":
            for l in some:
                self.chunk(l)
            return self.hang()
        if SCENARIO in ("build-drop", "build-exit"):
            for l in some:
                self.chunk(l)
            # a chunk announced but only half sent, as a killed daemon leaves it
            self.wfile.write(b"%x\r\n%s" % (len(some[0]), some[0][:20]))
            if SCENARIO == "build-exit":
                os._exit(0)
            return self.cut()
        for l in BUILD_LINES:
            self.chunk(l)
        self.end()

    def container(self, what):
        if self.command == "PUT" and what == "/archive":
            self.read_body()
            return self.reply(200)
        if what == "/start":
            return self.reply(204)
        if what == "/logs":
            self.head(200, "application/vnd.docker.raw-stream")
            for f in PYTEST_OUT:
                self.chunk(f)
            if SCENARIO in ("logs-cut", "logs-drop"):
                # a 200-byte stdout frame of which 17 bytes arrive
                self.chunk(struct.pack(">BxxxI", 1, 200) + b"tests/test_more.p")
                if SCENARIO == "logs-drop":
                    return self.cut()
            return self.end()
        if what == "/wait":
            code = 137 if SCENARIO == "wait-137" else 0
            return self.reply(200, {"StatusCode": code, "Error": None})
        if what == "/json":
            code = 137 if SCENARIO == "wait-137" else 0
            return self.reply(200, {"Id": CID, "State": {
                "Status": "exited", "Running": False, "ExitCode": code,
                "OOMKilled": False, "Error": ""}})
        if self.command == "GET" and what == "/archive":
            stat = {"name": "stagepipe-reports", "size": 4096, "mode": 2147484671,
                    "mtime": "2026-11-28T12:00:00Z", "linkTarget": ""}
            return self.reply(200, reports_tar(SCENARIO != "wait-137"), "application/x-tar",
                              [("X-Docker-Container-Path-Stat",
                                base64.b64encode(json.dumps(stat).encode()).decode())])
        if what == "/kill":
            return self.reply(204)
        if self.command == "DELETE" and what == "":
            return self.reply(204)
        self.reply(404, {"message": "fake engine: no route for %s %s" % (self.command, what)})


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that went away is part of the game


if __name__ == "__main__":
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    srv = Server(SOCKET, Handler)
    print("ready", flush=True)
    srv.serve_forever()
