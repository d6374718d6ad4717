"""A real `docker-registry` (distribution 2.8) for one test or one session.

    with Registry(tmp_dir) as reg:                          # anonymous, plain HTTP
    with Registry(tmp_dir, pki=pki, tls=True) as reg:        # https, CA in pki.cert_dir
    with Registry(tmp_dir, pki=pki, tls=True, auth="htpasswd", users={"u": "p"}) as reg:
    with Registry(tmp_dir, pki=pki, auth="token", users={"u": "p"}, anonymous=False) as reg:
    with Registry(tmp_dir, proxy_remote=upstream.url) as mirror:  # a pull-through cache
    with Registry(tmp_dir, pki=pki, auth="token", token_expires_in=5, token_valid_for=5) as reg:
                                                             # tokens refused 5 s after issue

The registry listens on a free 127.0.0.1 port (`reg.host` = "127.0.0.1:PORT"),
stores blobs under `reg.storage_dir` (filesystem driver) and logs JSON lines
to `reg.log_path`. It runs in its own process group and is stopped on exit
(SIGTERM, then SIGKILL), also when the test fails; see processes.cleanup_all.

`reg.request_log()` parses the "response completed" lines (method, uri,
status, bytes written, user agent: a mirror's requests upstream carry one,
oci-fs' none; when the response completed); `blob_gets()` / `blob_bytes()` count blob downloads,
e.g. to prove that a second mount fetches nothing. `reg.client()` is a
RegistryClient with the right TLS trust and credentials. `with reg.paused():`
stops the process (SIGSTOP, and waits until it is stopped: connections are accepted by the kernel, nothing
answers) and continues it on exit, also when the body fails.
"""

from __future__ import annotations

import hashlib
import contextlib
import json
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import processes
from .client import RegistryClient
from .pki import Pki
from .token_server import TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"
# /v2/<name>/(blobs|manifests|tags|blobs/uploads)/<ref>
_URI = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs/uploads|blobs|manifests|tags)/(?P<ref>[^/?]*)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (also good as a closed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_time(text: str) -> float:
    """A log line's RFC 3339 "time" (nanoseconds, "Z") in time.time() seconds; 0.0 if absent."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Request:
    """One request the registry answered."""

    method: str
    uri: str
    status: int
    written: int  # response body bytes
    repo: str | None  # repository name, from the URI
    digest: str | None  # the blob or manifest digest in the URI, if any
    useragent: str = ""  # the client's User-Agent ("" for oci-fs, which sends none)
    completed: float = 0.0  # when the response completed, in time.time() seconds

    @property
    def is_blob(self) -> bool:
        return "/blobs/sha256:" in self.uri and "/uploads/" not in self.uri

    @property
    def is_manifest(self) -> bool:
        return "/manifests/" in self.uri


class Registry:
    """A docker-registry process; a context manager. See the module docstring."""

    def __init__(self, directory: Path | str, pki: Pki | None = None, tls: bool = False,
                 auth: str | None = None, users: dict[str, str] | None = None,
                 anonymous: bool = False, client_cert: bool = False,
                 start_timeout: float = 10, proxy_remote: str | None = None,
                 token_expires_in: int = 300, token_valid_for: int | None = None):
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"auth must be None, 'htpasswd' or 'token', not {auth!r}")
        if auth == "htpasswd" and not tls:
            raise ValueError("distribution only accepts htpasswd auth with TLS: pass tls=True")
        if (tls or auth == "token") and pki is None:
            raise ValueError("tls and token auth need a Pki")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.tls = tls
        self.auth = auth
        self.users = dict(users if users is not None else ({"tester": "s3cret-Pa55"} if auth else {}))
        self.anonymous = anonymous
        self.client_cert = client_cert
        self.start_timeout = start_timeout
        self.proxy_remote = proxy_remote  # a pull-through cache of this registry URL
        # auth="token": the lifetime tokens announce, and how long the registry
        # takes them (TokenServer's expires_in and valid_for).
        self.token_expires_in = token_expires_in
        self.token_valid_for = token_valid_for
        self.storage_dir = self.dir / "storage"
        self.log_path = self.dir / "registry.log"
        self.config_path = self.dir / "config.yml"
        self.port: int | None = None
        self.token_server: TokenServer | None = None
        self._proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ properties

    @property
    def host(self) -> str:
        """"127.0.0.1:PORT", the registry part of a reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_cert_path(self) -> Path | None:
        return self.pki.ca_cert_path if self.tls else None

    @property
    def cert_dir(self) -> Path | None:
        """For `--cert-dir`: ca.crt (plus client.cert/.key when client_cert=True)."""
        if not self.tls:
            return None
        return self.pki.client_cert_dir if self.client_cert else self.pki.cert_dir

    @property
    def creds(self) -> tuple[str, str] | None:
        """The first user's (name, password), or None without auth."""
        return next(iter(self.users.items())) if self.users else None

    def ref(self, repo: str, tag: str = "latest", digest: str | None = None) -> str:
        """"127.0.0.1:PORT/repo:tag" or "127.0.0.1:PORT/repo@sha256:..."."""
        return f"{self.host}/{repo}@{digest}" if digest else f"{self.host}/{repo}:{tag}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert_path))
        if self.client_cert:
            ctx.load_cert_chain(str(self.pki.client_cert_path), str(self.pki.client_key_path))
        return ctx

    def client(self, creds: tuple[str, str] | None | bool = True) -> RegistryClient:
        """A RegistryClient; creds=True uses self.creds, None/False anonymous."""
        c = self.creds if creds is True else (creds or None)
        return RegistryClient(self.url, c, self.ssl_context())

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Registry":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.auth == "token":
            server_ctx = None
            if self.tls:
                server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                server_ctx.load_cert_chain(str(self.pki.server_cert_path), str(self.pki.server_key_path))
            self.token_server = TokenServer(self.pki, self.users, self.anonymous, server_ctx,
                                            expires_in=self.token_expires_in,
                                            valid_for=self.token_valid_for)
            self.token_server.start()
        if self.auth == "htpasswd":
            self._write_htpasswd()
        last = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            self.config_path.write_text(self._config())
            log = open(self.log_path, "ab")
            try:
                self._proc = processes.spawn([REGISTRY_BIN, "serve", str(self.config_path)],
                                             stdout=log, stderr=subprocess.STDOUT)
            finally:
                log.close()
            if self._wait_ready():
                return
            processes.stop(self._proc)
            self._proc = None
            last = self.log_path.read_text(errors="replace")[-3000:]
            if "address already in use" not in last:
                break
        raise RuntimeError(f"docker-registry did not start; log:\n{last}")

    @contextlib.contextmanager
    def paused(self):
        assert self._proc is not None, "the registry is not running"
        processes.sigstop(self._proc.pid)  # returns once it is stopped
        try:
            yield self
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._proc is not None:
            processes.stop(self._proc)
            self._proc = None
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                status = self._probe("/v2/")
                if status in (200, 401):
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _probe(self, path: str) -> int:
        req = urllib.request.Request(self.url + path)
        try:
            with urllib.request.urlopen(req, timeout=2, context=self.ssl_context()) as r:
                r.read()
                return r.status
        except urllib.error.HTTPError as e:
            e.read()
            return e.code

    def _write_htpasswd(self) -> None:
        lines = []
        for user, password in self.users.items():
            out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                 capture_output=True, text=True).stdout
            lines.append(out.strip())
        self.htpasswd_path = self.dir / "htpasswd"
        self.htpasswd_path.write_text("\n".join(lines) + "\n")

    def _config(self) -> str:
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage_dir)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.proxy_remote:
            cfg["proxy"] = {"remoteurl": self.proxy_remote}
        if self.tls:
            cfg["http"]["tls"] = {"certificate": str(self.pki.server_cert_path),
                                  "key": str(self.pki.server_key_path)}
            if self.client_cert:
                cfg["http"]["tls"]["clientcas"] = [str(self.pki.ca_cert_path)]
        if self.auth == "htpasswd":
            cfg["auth"] = {"htpasswd": {"realm": "oci-fs-test", "path": str(self.htpasswd_path)}}
        elif self.auth == "token":
            ts = self.token_server
            cfg["auth"] = {"token": {"realm": ts.realm, "service": ts.service, "issuer": ts.issuer,
                                     "rootcertbundle": str(self.pki.token_cert_path)}}
        return json.dumps(cfg, indent=2)  # JSON is YAML

    # ------------------------------------------------------------------ request log

    def request_log(self, sync: bool = True) -> list[Request]:
        """Every answered request so far, oldest first (the harness' own sync probes excluded).

        sync=True first sends a marker request and waits until it is logged, so
        requests a client finished before this call are in the list.
        """
        marker = None
        if sync and self._proc is not None:
            marker = "ocifs-sync-" + secrets.token_hex(6)
            try:
                self._probe(f"/v2/?{marker}")
            except OSError:
                marker = None
        deadline = time.monotonic() + 5
        while True:
            text = self.log_path.read_text(errors="replace")
            if marker is None or marker in text or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        out = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if not str(e.get("msg", "")).startswith("response completed"):
                continue
            uri = e.get("http.request.uri", "")
            if uri.startswith("/v2/?ocifs-sync-"):
                continue
            m = _URI.match(uri)
            out.append(Request(e.get("http.request.method", ""), uri,
                               int(e.get("http.response.status", 0)),
                               int(e.get("http.response.written", 0)),
                               m.group("name") if m else None,
                               m.group("ref") if m and m.group("ref").startswith("sha256:") else None,
                               e.get("http.request.useragent", ""),
                               _log_time(e.get("time", ""))))
        return out

    def blob_gets(self, repo: str | None = None) -> list[Request]:
        """Successful blob GETs (200/206), optionally of one repository."""
        return [r for r in self.request_log() if r.method == "GET" and r.is_blob
                and r.status in (200, 206) and (repo is None or r.repo == repo)]

    def blob_bytes(self, repo: str | None = None) -> int:
        """Blob bytes served by successful GETs."""
        return sum(r.written for r in self.blob_gets(repo))

    # ------------------------------------------------------------------ storage

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob (manifests are blobs too)."""
        algo, hexd = digest.split(":", 1)
        return (self.storage_dir / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data")

    def tamper_blob(self, digest: str, new_data: bytes) -> None:
        """Replaces the stored bytes of a blob, so the registry serves `new_data` for `digest`."""
        p = self.blob_data_path(digest)
        if not p.exists():
            raise FileNotFoundError(p)
        p.write_bytes(new_data)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()

