#!/usr/bin/python3
"""tests/tools/hook_burst.py — deliveries that all arrive at the same moment.

    hook_burst.py HOST:PORT/PATH=DUMP [HOST:PORT/PATH=DUMP ...]

Each argument is one request: a server's address and path, and a file
sign_hook.py --dump wrote (headers, an empty line, the body).  Every
request is sent on its own connection but its last byte; once all of them
are that far, the last bytes go out, in the order given, as fast as one
thread can send them — so the servers get the whole burst at once and
take the requests into their batches together (sign_hook.py processes
started at once reach a server one by one).  Prints one line a request, in
the order given: the HTTP status (000 when the connection failed) and the
first line of the answer's body.  Python 3 standard library only.
"""
import socket
import sys


def request(target, dump):
    hostport, _, path = target.partition("/")
    host, _, port = hostport.rpartition(":")
    with open(dump, "rb") as f:
        raw = f.read()
    head, _, body = raw.partition(b"\n\n")
    lines = [b"POST /%s HTTP/1.1" % path.encode(), b"Host: " + hostport.encode(),
             b"Connection: close", b"Content-Length: %d" % len(body)]
    lines += [h for h in head.split(b"\n") if h and not h.lower().startswith(b"content-length:")]
    return (host, int(port)), b"\r\n".join(lines) + b"\r\n\r\n" + body


def answer(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "000"
    first = body.decode("utf-8", "replace").split("\n", 1)[0]
    return status, first


def main():
    if len(sys.argv) < 2:
        print("usage: hook_burst.py HOST:PORT/PATH=DUMP ...", file=sys.stderr)
        return 2
    reqs = []
    for arg in sys.argv[1:]:
        target, _, dump = arg.partition("=")
        reqs.append(request(target, dump))
    socks = []
    for addr, data in reqs:
        s = socket.create_connection(addr, timeout=60)
        s.sendall(data[:-1])
        socks.append(s)
    for s, (_, data) in zip(socks, reqs):
        s.sendall(data[-1:])
    for s in socks:
        status, first = answer(s)
        s.close()
        print(status, first)
    return 0


if __name__ == "__main__":
    sys.exit(main())
