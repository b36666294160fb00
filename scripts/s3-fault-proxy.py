#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy between Coffre and an S3 server, for tests and benchmarks.

    s3-fault-proxy.py --upstream http://127.0.0.1:7480 --port-file F [--seed N] [--rate R]
                      [--faults 500,503,reset,reset-after,truncate,slow] [--log FILE]

Listens on a free loopback port (written to --port-file once it listens). Each request is
forwarded to the upstream server unchanged, or, with probability --rate, meets one fault drawn
from --faults with a generator seeded by --seed (the same seed, the same faults for the same
request sequence on one connection):

  500          answer 500 InternalError without forwarding
  503          answer 503 SlowDown without forwarding
  reset        close the connection without forwarding or answering
  reset-after  forward (the server carries the request out), then close without answering
  truncate     forward, send the answer's head and half its body, then close
  slow         forward, then wait 0.2-1.5 s before answering

--log FILE gets one line per request: method, path, status sent (or the fault), bytes in and
out; benchmarks count requests there. Standard library only.
"""
import argparse
import asyncio
import os
import signal
import random
import sys
import urllib.parse

ERROR_BODY = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
              '<Message>injected by s3-fault-proxy</Message></Error>')


class Proxy:
    def __init__(self, args):
        up = urllib.parse.urlsplit(args.upstream)
        self.host, self.port = up.hostname, up.port or 80
        self.rate = args.rate
        self.faults = [f for f in args.faults.split(",") if f]
        self.seed = args.seed
        self.connections = 0
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.counts = {}

    def note(self, method, path, outcome, sent, received):
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self.log:
            self.log.write(f"{method} {path} {outcome} {sent} {received}\n")

    async def read_message(self, reader, request_method=None):
        """Reads one HTTP/1.1 message (head and Content-Length or chunked body); None at EOF."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        no_body = request_method == "HEAD" or (request_method is not None and lines[0].split(" ")[1] in ("204", "304"))
        if not no_body:
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    data = await reader.readexactly(size + 2)
                    chunks.append(size_line + data)
                    if size == 0:
                        break
                body = b"".join(chunks)
        return lines[0], head, body

    async def handle(self, client_reader, client_writer):
        self.connections += 1
        rng = random.Random(self.seed * 1_000_003 + self.connections)
        upstream = None
        try:
            while True:
                try:
                    first, head, body = await self.read_message(client_reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, path = first.split(" ")[0], first.split(" ")[1]
                fault = rng.choice(self.faults) if self.faults and rng.random() < self.rate else None
                if fault in ("500", "503"):
                    code = "InternalError" if fault == "500" else "SlowDown"
                    text = "Internal Server Error" if fault == "500" else "Service Unavailable"
                    payload = ERROR_BODY.format(code=code).encode()
                    client_writer.write(f"HTTP/1.1 {fault} {text}\r\nContent-Type: application/xml\r\n"
                                        f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                    await client_writer.drain()
                    self.note(method, path, f"fault-{fault}", len(head) + len(body), 0)
                    continue
                if fault == "reset":
                    self.note(method, path, "fault-reset", len(head) + len(body), 0)
                    return
                if upstream is None:
                    upstream = await asyncio.open_connection(self.host, self.port)
                up_reader, up_writer = upstream
                up_writer.write(head + body)
                await up_writer.drain()
                status_line, rhead, rbody = await self.read_message(up_reader, request_method=method)
                status = status_line.split(" ")[1]
                if fault == "reset-after":
                    self.note(method, path, f"fault-reset-after-{status}", len(head) + len(body), 0)
                    return
                if fault == "truncate" and len(rbody) > 1:
                    client_writer.write(rhead + rbody[: len(rbody) // 2])
                    await client_writer.drain()
                    self.note(method, path, f"fault-truncate-{status}", len(head) + len(body), len(rbody) // 2)
                    return
                if fault == "slow":
                    await asyncio.sleep(rng.uniform(0.2, 1.5))
                client_writer.write(rhead + rbody)
                await client_writer.drain()
                self.note(method, path, status if fault is None else f"{fault}-{status}",
                          len(head) + len(body), len(rhead) + len(rbody))
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            client_writer.close()
            if upstream is not None:
                upstream[1].close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--faults", default="500,503,reset,reset-after,truncate,slow")
    parser.add_argument("--log")
    args = parser.parse_args()
    proxy = Proxy(args)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # A parent may hand down SIGTERM blocked or ignored: stop on it all the same.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
