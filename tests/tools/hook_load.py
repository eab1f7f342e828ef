#!/usr/bin/python3
"""tests/tools/hook_load.py — signed webhook deliveries under load, each one recorded.

Used by tests/integration/test_serve_faults.sh (a server SIGKILLed under
load must lose no delivery it answered 2xx).  Python 3 standard library
only; the deliveries are built and signed by sign_hook.py (same folder), so
every forge it knows works here too.

    hook_load.py --url http://127.0.0.1:PORT/hooks/gh --forge github --secret S \\
                 --out RESULTS [--threads 8] [--seconds 30] [--count N] [--dup 10]
    hook_load.py --url ... --forge ... --secret S --out RESULTS --resend IDS

Load mode: THREADS threads, each with its own keep-alive connection, send
push deliveries, each with a new delivery id D and the commit sha1(D) (so a
job can be traced back to its delivery), until SIGTERM/SIGINT, SECONDS or
COUNT.  Every --dup'th delivery re-sends an id sent before (by any thread):
a forge's redelivery while the server is busy.  A connection that fails is
opened again (after 50 ms when it was refused).

--resend IDS: sends each delivery id listed in the file IDS (one per line,
the first word) once more, with the same body as in load mode, one thread
per --threads; then exits.

RESULTS: one line per request, written as each answer arrives:
    ID STATUS JOB SHA KIND
STATUS is the HTTP status (000: no answer: reset, timed out, or the
connection was refused); JOB the "job" of the answer ("-" when none,
"refused" when the connection was refused: the request was never sent); KIND "new", "dup" (a re-send in
load mode) or "resend".  A summary goes to stderr at the end.  Exit status 0
(the answers are for the caller to judge), 2 on bad usage.
"""

import argparse
import copy
import hashlib
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sign_hook  # noqa: E402  (the one place deliveries are built and signed)


def sha_of_delivery(delivery):
    return hashlib.sha1(delivery.encode()).hexdigest()


class Load:
    def __init__(self, a):
        self.a = a
        u = urllib.parse.urlsplit(a.url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = u.path
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = []        # ids sent so far (candidates for a re-send)
        self.n = 0            # requests started (load mode)
        self.counts = {}
        self.out = open(a.out, "a", buffering=1, encoding="utf-8")
        self.deadline = time.monotonic() + a.seconds if a.seconds else None
        self.base = sign_hook.make_parser().parse_args(
            ["--forge", a.forge, "--secret", a.secret, "--ref", a.ref])

    def request(self, delivery):
        """(headers, body) of the push delivery with this id."""
        opts = copy.copy(self.base)
        opts.sha = sha_of_delivery(delivery)
        opts.delivery = delivery
        opts.message = "load " + delivery[:8]
        return sign_hook.build(opts)

    def record(self, delivery, status, job, kind):
        line = "%s %03d %s %s %s\n" % (delivery, status, "-" if job is None else job,
                                       sha_of_delivery(delivery), kind)
        with self.lock:
            self.out.write(line)
            key = "%03d" % status
            self.counts[key] = self.counts.get(key, 0) + 1

    def send(self, conn_box, delivery, kind):
        headers, body = self.request(delivery)
        conn = conn_box[0]
        if conn is None:
            conn = conn_box[0] = http.client.HTTPConnection(self.host, self.port,
                                                            timeout=self.a.timeout)
        status, job, refused = 0, None, False
        try:
            conn.putrequest("POST", self.path, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            status = r.status
            try:
                job = json.loads(data.decode("utf-8", "replace")).get("job")
            except ValueError:
                job = None
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn_box[0] = None
        except ConnectionRefusedError:
            refused = True
            conn.close()
            conn_box[0] = None
        except (OSError, http.client.HTTPException):
            conn.close()
            conn_box[0] = None
        self.record(delivery, status, "refused" if refused else job, kind)
        if refused:
            time.sleep(0.05)

    def next_delivery(self):
        """(id, kind) of the next load-mode delivery, or None to stop."""
        with self.lock:
            if self.stop.is_set():
                return None
            if self.deadline and time.monotonic() >= self.deadline:
                return None
            if self.a.count and self.n >= self.a.count:
                return None
            self.n += 1
            if self.a.dup and self.sent and self.n % self.a.dup == 0:
                return random.choice(self.sent), "dup"
            d = str(uuid.uuid4())
            self.sent.append(d)
            return d, "new"

    def load_thread(self):
        box = [None]
        while True:
            nd = self.next_delivery()
            if nd is None:
                break
            self.send(box, nd[0], nd[1])
        if box[0] is not None:
            box[0].close()

    def resend_thread(self, ids):
        box = [None]
        while not self.stop.is_set():
            with self.lock:
                if not ids:
                    break
                d = ids.pop()
            self.send(box, d, "resend")
        if box[0] is not None:
            box[0].close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="http://HOST:PORT/hooks/NAME")
    p.add_argument("--forge", default="github", choices=sign_hook.FORGES)
    p.add_argument("--secret", required=True)
    p.add_argument("--ref", default="main")
    p.add_argument("--out", required=True, help="append one line per request here")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    p.add_argument("--count", type=int, default=0, help="stop after this many requests")
    p.add_argument("--dup", type=int, default=10,
                   help="every Nth request re-sends an earlier id (0: never)")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--resend", help="re-send the ids listed in this file, then exit")
    a = p.parse_args()
    if a.threads < 1:
        p.error("--threads must be at least 1")

    load = Load(a)
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    signal.signal(signal.SIGINT, lambda *_: load.stop.set())
    if a.resend:
        with open(a.resend, encoding="utf-8") as f:
            ids = [ln.split()[0] for ln in f if ln.strip()]
        ids.reverse()
        target, args = load.resend_thread, (ids,)
    else:
        target, args = load.load_thread, ()
    threads = [threading.Thread(target=target, args=args, daemon=True)
               for _ in range(a.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    # join with a timeout, so that the signal handlers run in this thread
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.1)
    load.out.close()
    secs = time.monotonic() - t0
    total = sum(load.counts.values())
    print("hook_load: %d requests in %.1f s (%.0f/s): %s" % (
        total, secs, total / secs if secs else 0,
        " ".join("%s=%d" % kv for kv in sorted(load.counts.items()))), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
