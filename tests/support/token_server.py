"""The token service distribution's `auth: token` expects (docker token auth spec).

`TokenServer(pki, users={"alice": "pw"}, anonymous=False)` serves, on a free
127.0.0.1 port (https when given an ssl context):

  GET  /token?service=S&scope=repository:NAME:pull,push   [Authorization: Basic ...]
  POST /token  (OAuth2 form: grant_type=password, username, password, service, scope)

Known user, right password: every requested action is granted, or only those
`limits[user]` lists when set (`ts.limits["reader"] = {"pull"}`: a pull-only
credential). No credentials and anonymous=True: only `pull` is granted. Wrong
credentials, or none while anonymous=False: 401. The reply is {"token",
"access_token", "expires_in", "issued_at"}; the token is an RS256 JWT with the
signing certificate in `x5c` (distribution 2.8 verifies it against
`rootcertbundle`, i.e. pki.token_cert_path).

`issued` lists every token handed out (user, scopes), so tests can see caching.

Short-lived tokens: `expires_in` is the lifetime the reply announces;
`valid_for` (seconds) is how long the registry accepts a token after it was
issued, default the announced lifetime plus distribution's leeway. distribution
2.8 accepts a token until 60 s (`REGISTRY_LEEWAY`) past its `exp` claim, so with
`valid_for` set the claim is backdated by that leeway: the registry refuses
the token `valid_for` seconds after issue (`TokenServer(pki, users,
expires_in=5, valid_for=5)`). `valid_for` longer than `expires_in` is a
server that under-announces, shorter one that revokes early.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .pki import Pki

SERVICE = "oci-fs-test-registry"
REGISTRY_LEEWAY = 60  # seconds distribution 2.8 accepts a token past its exp claim
ISSUER = "oci-fs-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issued:
    user: str | None  # None = anonymous
    scopes: list[str]
    access: list[dict]
    token: str  # the JWT, so tests can check it never shows up in logs


@dataclass
class Refused:
    user: str | None
    reason: str


class TokenServer:
    """Context manager; `realm` is the URL to put in the registry config."""

    def __init__(self, pki: Pki, users: dict[str, str] | None = None, anonymous: bool = False,
                 ssl_context: ssl.SSLContext | None = None, service: str = SERVICE,
                 issuer: str = ISSUER, expires_in: int = 300, valid_for: int | None = None):
        self.pki = pki
        self.users = dict(users or {})
        self.anonymous = anonymous
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.valid_for = valid_for
        self.limits: dict[str, set[str]] = {}  # user -> the only actions granted to them
        self.issued: list[Issued] = []
        self.refused: list[Refused] = []
        self._lock = threading.Lock()
        self._ssl = ssl_context
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "TokenServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query)
                user, password = _basic_creds(self.headers.get("Authorization"))
                self._answer(url.path, q, user, password)

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                q = urllib.parse.parse_qs(self.rfile.read(n).decode())
                user, password = (q.get("username", [None])[0], q.get("password", [None])[0])
                if user is None:
                    user, password = _basic_creds(self.headers.get("Authorization"))
                if "scope" in q:
                    q["scope"] = " ".join(q["scope"]).split()
                self._answer(url.path, q, user, password)

            def _answer(self, path, q, user, password):
                if path != "/token":
                    return self._send(404, {"errors": [{"code": "NOT_FOUND"}]})
                status, doc = server._token_response(q.get("service", [""])[0],
                                                     q.get("scope", []), user, password)
                self._send(status, doc)

            def _send(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="oci-fs test tokens"')
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self._ssl is not None:
            self._httpd.socket = self._ssl.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="token-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def realm(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/token"

    # ------------------------------------------------------------------ tokens

    def _token_response(self, service, scopes, user, password):
        if user is not None:
            if self.users.get(user) != password or password is None:
                with self._lock:
                    self.refused.append(Refused(user, "wrong credentials"))
                return 401, {"errors": [{"code": "UNAUTHORIZED",
                                         "message": "invalid username or password"}]}
        elif not self.anonymous:
            with self._lock:
                self.refused.append(Refused(None, "credentials required"))
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        access = []
        for scope in " ".join(scopes).split():
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if user is None:
                allowed = [a for a in actions if a == "pull"]
            else:
                allowed = [a for a in actions if user not in self.limits or a in self.limits[user]]
            access.append({"type": typ, "name": name, "actions": allowed})
        now = int(time.time())
        exp = now + self.expires_in
        if self.valid_for is not None:
            exp = now + self.valid_for - REGISTRY_LEEWAY
        token = self.make_jwt({"iss": self.issuer, "sub": user or "", "aud": service or self.service,
                               "exp": exp, "nbf": now - 10, "iat": now,
                               "jti": secrets.token_hex(16), "access": access})
        with self._lock:
            self.issued.append(Issued(user, list(scopes), access, token))
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()
        return 200, {"token": token, "access_token": token, "expires_in": self.expires_in,
                     "issued_at": issued_at.replace("+00:00", "Z")}

    def make_jwt(self, claims: dict) -> str:
        """An RS256 JWT signed with pki.token_key, x5c = [the signing certificate]."""
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.pki.token_cert_der).decode()]}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = self.pki.token_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)

    def tokens_issued(self, user: str | None = ...) -> int:
        """How many tokens were issued (to `user` if given; None = anonymous)."""
        with self._lock:
            return sum(1 for i in self.issued if user is ... or i.user == user)


def _basic_creds(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password
