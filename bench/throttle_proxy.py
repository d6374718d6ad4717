#!/usr/bin/python3
"""A TCP proxy on loopback that makes a local registry cost what a real network costs.

    throttle_proxy.py --upstream 127.0.0.1:5000 [--listen 127.0.0.1:0] [--mbit 400] [--rtt-ms 20]
                      [--port-file F] [--log F]

Each direction of each connection is a delay line: bytes read from one side wait for the
bandwidth (one token bucket per direction, shared by all connections, so parallel
connections share the link) and then for RTT/2 of propagation before they are written to
the other side. Data keeps flowing while earlier bytes are in flight (it is a line, not a
stall per packet). A new connection pays one extra RTT before its first bytes reach the
server, as a TCP handshake would.

Counters (connections, bytes each way, HTTP requests seen, of which blob and Range
requests) are served as JSON on a control port: GET /stats, GET /reset (returns the
counters, then zeroes them). --log writes JSON lines: the cumulative downstream bytes every
10 ms while they change, and every HTTP request line with its Range header, each with the
wall-clock time "t" (seconds since the epoch).
"""
import argparse
import asyncio
import json
import re
import sys
import time

CHUNK = 64 * 1024
QUEUE_CHUNKS = 256  # per direction and connection: 16 MiB in flight at most


class Bucket:
    """Token bucket in bytes; take() waits until the bytes may go. FIFO across callers."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.last = float(burst), time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        async with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= n
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.rate)


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.connections = 0
        self.bytes_down = 0
        self.bytes_up = 0
        self.requests = 0
        self.blob_requests = 0
        self.range_requests = 0

    def as_dict(self):
        return dict(self.__dict__)


class RequestParser:
    """Counts HTTP/1.1 requests in the client->server stream (GET/HEAD; bodies skipped)."""

    def __init__(self, proxy, conn_id):
        self.buf = b""
        self.skip = 0
        self.proxy, self.conn_id = proxy, conn_id

    def feed(self, data: bytes):
        self.buf += data
        while True:
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf, self.skip = self.buf[n:], self.skip - n
                if self.skip:
                    return
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:  # not HTTP: stop parsing
                    self.buf = b""
                return
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
            lines = head.split("\r\n")
            m = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
            self.skip = int(m.group(1)) if m else 0
            rng = next((l.split(":", 1)[1].strip() for l in lines[1:]
                        if l.lower().startswith("range:")), None)
            self.proxy.on_request(self.conn_id, lines[0], rng)


class Proxy:
    def __init__(self, args):
        self.a = args
        self.upstream = args.upstream.rsplit(":", 1)
        rate = args.mbit * 1e6 / 8
        # 10 ms of burst: the proxy is a Python process on the machine it measures, and a
        # wakeup of its event loop that the reader's own CPU work delays by more than the
        # burst loses link time for good (2 ms lost 3-4% of a 400 Mbit/s transfer whenever
        # the client process kept both cores busy; a NIC does not need the host's CPU).
        burst = max(CHUNK, int(rate * 0.010))
        self.down, self.up = Bucket(rate, burst), Bucket(rate, burst)
        self.one_way = args.rtt_ms / 2000.0
        self.stats = Stats()
        self.total = Stats()  # never reset
        self.next_id = 0
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.last_logged = -1

    def emit(self, rec):
        if self.log:
            rec["t"] = round(time.time(), 4)
            self.log.write(json.dumps(rec) + "\n")

    def on_request(self, conn_id, line, rng):
        for s in (self.stats, self.total):
            s.requests += 1
            if "/blobs/" in line:
                s.blob_requests += 1
            if rng:
                s.range_requests += 1
        self.emit({"conn": conn_id, "req": line, "range": rng})

    async def pump(self, reader, writer, bucket, start_at, counter, parser=None):
        q: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)

        async def read_side():
            try:
                while True:
                    data = await reader.read(CHUNK)
                    if not data:
                        break
                    await bucket.take(len(data))
                    if parser:
                        parser.feed(data)
                    await q.put((max(time.monotonic(), start_at) + self.one_way, data))
            except (ConnectionError, OSError):
                pass
            await q.put((time.monotonic() + self.one_way, None))

        async def write_side():
            try:
                while True:
                    due, data = await q.get()
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if data is None:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
                    counter(len(data))
            except (ConnectionError, OSError):
                pass

        await asyncio.gather(read_side(), write_side())

    def count_down(self, n):
        self.stats.bytes_down += n
        self.total.bytes_down += n

    def count_up(self, n):
        self.stats.bytes_up += n
        self.total.bytes_up += n

    async def handle(self, creader, cwriter):
        accepted = time.monotonic()
        self.next_id += 1
        conn_id = self.next_id
        self.stats.connections += 1
        self.total.connections += 1
        try:
            ureader, uwriter = await asyncio.open_connection(self.upstream[0], int(self.upstream[1]))
        except OSError:
            cwriter.close()
            return
        # The handshake's round trip: the first request reaches the server 1.5 RTT after connect().
        first_up = accepted + 2 * self.one_way
        try:
            await asyncio.gather(
                self.pump(creader, uwriter, self.up, first_up, self.count_up,
                          RequestParser(self, conn_id)),
                self.pump(ureader, cwriter, self.down, 0, self.count_down))
        finally:
            for w in (cwriter, uwriter):
                w.close()

    async def control(self, reader, writer):
        try:
            line = (await reader.readline()).decode("latin-1")
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            body = json.dumps(self.stats.as_dict())
            if line.startswith("GET /reset"):
                self.stats.reset()
                self.emit({"reset": True})
            elif line.startswith("GET /total"):
                body = json.dumps(self.total.as_dict())
            elif not line.startswith("GET /stats"):
                body = json.dumps({"error": "GET /stats, /reset or /total"})
            writer.write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}")
                         .encode())
            await writer.drain()
        finally:
            writer.close()

    async def sampler(self):
        while True:
            await asyncio.sleep(0.01)
            if self.total.bytes_down != self.last_logged:
                self.last_logged = self.total.bytes_down
                self.emit({"down": self.total.bytes_down})

    async def run(self):
        host, port = self.a.listen.rsplit(":", 1)
        srv = await asyncio.start_server(self.handle, host, int(port))
        ctl = await asyncio.start_server(self.control, host, 0)
        ports = {"port": srv.sockets[0].getsockname()[1], "control": ctl.sockets[0].getsockname()[1]}
        if self.a.port_file:
            with open(self.a.port_file + ".tmp", "w") as f:
                json.dump(ports, f)
            import os
            os.replace(self.a.port_file + ".tmp", self.a.port_file)
        print(json.dumps(ports), flush=True)
        asyncio.ensure_future(self.sampler())
        async with srv, ctl:
            await asyncio.gather(srv.serve_forever(), ctl.serve_forever())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the registry")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--mbit", type=float, default=400.0, help="bandwidth each way, Mbit/s (0: none)")
    ap.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time added, ms")
    ap.add_argument("--port-file", help="write {\"port\":..,\"control\":..} here once listening")
    ap.add_argument("--log", help="JSON-lines log of requests and cumulative bytes")
    args = ap.parse_args()
    try:
        asyncio.run(Proxy(args).run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
