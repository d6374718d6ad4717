"""A fault-injecting TCP proxy in front of one upstream (a docker-registry), for
the tests of stalls, 5xx answers and HTTP(S)_PROXY:

    with FaultProxy(("127.0.0.1", registry.port)) as proxy:
        proxy.fault("stall", count=1, match="/manifests/")
        run_ocifs("inspect", "--tls-verify=false", f"{proxy.host}/repo:tag")

It listens on a free 127.0.0.1 port and forwards each connection to the
upstream, reading the client's HTTP/1.1 requests one by one (GET and HEAD,
or with a Content-Length body) so that a fault can hit any request, on a new
connection or a reused one. The answers are piped back unparsed.

fault(kind, count, match): the next `count` requests whose request line
contains `match` get, instead of the upstream's answer:
  "stall"  nothing: the request is swallowed and the connection held open,
           silent, until the proxy stops
  "503"    "HTTP/1.1 503 Service Unavailable" and the connection closed
  "reset"  the connection closed at once

It is also an HTTP proxy (for HTTP_PROXY / HTTPS_PROXY): a CONNECT is
answered 200 and tunnelled to the upstream whatever host it names, and an
absolute-form request line (GET http://host/path) is forwarded as it is
(docker-registry accepts it). A connection that starts with a TLS record is
piped as it is. `requests` lists every request line seen (CONNECT included),
`faults` the ones a fault hit, `request_connections` each request line with the number
(1, 2, ...) of the connection it came on.

rate: if given, each connection's answers are paced to at most `rate` bytes a
second (a slow link: concurrent clients then overlap in time).

A context manager: __exit__ closes every socket and joins every thread.
"""

from __future__ import annotations

import socket
import threading
import time


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], rate: float | None = None):
        self.upstream = upstream
        self.rate = rate
        self.requests: list[str] = []
        # (connection number, request line) of each request: which requests shared a connection.
        self.request_connections: list[tuple[int, str]] = []
        self.faults: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._plan: list[list] = []  # [kind, count left, match]
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def fault(self, kind: str, count: int = 1, match: str = "") -> None:
        if kind not in ("stall", "503", "reset"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._plan.append([kind, count, match])

    def clear(self) -> None:
        with self._lock:
            self._plan.clear()

    def requests_matching(self, text: str) -> list[str]:
        with self._lock:
            return [r for r in self.requests if text in r]

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "FaultProxy":
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            socks = list(self._sockets)
        try:
            self._listener.close()
        except OSError:
            pass
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in list(self._threads):
            t.join(timeout=5)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _track(self, s: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                s.close()
                return False
            self._sockets.add(s)
            return True

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._track(client):
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            self._spawn(self._serve, client, number)

    # ------------------------------------------------------------------ one connection

    def _take_fault(self, line: str, connection: int = 0) -> str | None:
        with self._lock:
            self.requests.append(line)
            self.request_connections.append((connection, line))
            for step in self._plan:
                kind, left, match = step
                if left > 0 and match in line:
                    step[1] -= 1
                    self.faults.append(f"{kind} {line}")
                    return kind
        return None

    def _serve(self, client: socket.socket, connection: int = 0) -> None:
        upstream = None
        try:
            buf = b""
            while True:
                if upstream is None and buf[:1] == b"\x16":  # a TLS ClientHello: pipe it
                    upstream = self._connect_upstream(client)
                    upstream.sendall(buf)
                    self._pipe(client, upstream)
                    return
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                    continue
                head = buf[:end + 4]
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                length = 0
                for h in head.split(b"\r\n")[1:]:
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":", 1)[1].strip() or 0)
                while len(buf) < end + 4 + length:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                request, buf = buf[:end + 4 + length], buf[end + 4 + length:]
                kind = self._take_fault(line, connection)
                if line.startswith("CONNECT "):
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    upstream = self._connect_upstream(client)
                    if buf:
                        upstream.sendall(buf)
                    self._pipe(client, upstream)
                    return
                if kind == "stall":
                    while not self._stopping:  # swallow whatever comes, answer nothing
                        if not client.recv(65536):
                            return
                    return
                if kind == "503":
                    client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n")
                    return
                if kind == "reset":
                    return
                if upstream is None:
                    upstream = self._connect_upstream(client)
                    self._spawn(self._copy, upstream, client, self.rate)
                upstream.sendall(request)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _connect_upstream(self, client: socket.socket) -> socket.socket:
        s = socket.create_connection(self.upstream, timeout=10)
        s.settimeout(None)
        if not self._track(s):
            raise OSError("proxy stopping")
        return s

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        self._spawn(self._copy, b, a)
        self._copy(a, b)

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket, rate: float | None = None) -> None:
        try:
            while True:
                data = src.recv(16384 if rate else 65536)
                if not data:
                    break
                if rate:
                    time.sleep(len(data) / rate)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def wait_for(predicate, timeout: float = 30, step: float = 0.05) -> bool:
    """Polls `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
