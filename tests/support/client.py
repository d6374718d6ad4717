"""A small registry HTTP API v2 client for the harness (push, pull, raw requests).

Handles `WWW-Authenticate: Basic` and `Bearer` challenges (fetching a token
from the realm with the repository scope, cached per scope). Used by
images.push() and by tests that check what the registry serves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: dict  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)


def parse_challenge(header: str) -> tuple[str, dict]:
    """'Bearer realm="r",service="s"' -> ("bearer", {"realm": "r", "service": "s"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


@dataclass
class RegistryClient:
    """Talks to one registry. `base_url` like "https://127.0.0.1:5000".

    creds: (user, password) or None. ssl_context: for https (e.g. trusting the test CA).
    """

    base_url: str
    creds: tuple[str, str] | None = None
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30
    _tokens: dict = field(default_factory=dict)
    _basic: bool = False

    def request(self, method: str, path_or_url: str, body: bytes | None = None,
                headers: dict | None = None, scope: str | None = None) -> Response:
        """One request, authenticating on a 401 challenge; never raises for HTTP status."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        hdrs = dict(headers or {})
        auth = self._auth_header(scope)
        if auth:
            hdrs["Authorization"] = auth
        resp = self._send(method, url, body, hdrs)
        if resp.status == 401 and "www-authenticate" in resp.headers:
            scheme, params = parse_challenge(resp.headers["www-authenticate"])
            if scheme == "basic" and self.creds:
                self._basic = True
            elif scheme == "bearer":
                self._tokens[scope] = self.fetch_token(params, scope or params.get("scope"))
            else:
                return resp
            hdrs["Authorization"] = self._auth_header(scope)
            resp = self._send(method, url, body, hdrs)
        return resp

    def _auth_header(self, scope):
        if self._basic and self.creds:
            return "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        if scope in self._tokens:
            return "Bearer " + self._tokens[scope]
        return None

    def fetch_token(self, challenge: dict, scope: str | None) -> str:
        q = {"service": challenge.get("service", "")}
        if scope:
            q["scope"] = scope
        url = challenge["realm"] + "?" + urllib.parse.urlencode(q)
        hdrs = {}
        if self.creds:
            hdrs["Authorization"] = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        resp = self._send("GET", url, None, hdrs)
        if resp.status != 200:
            raise PermissionError(f"token server {url} said {resp.status}: {resp.body[:200]!r}")
        doc = resp.json()
        return doc.get("token") or doc["access_token"]

    def _send(self, method, url, body, headers) -> Response:
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        handlers = [_NoRedirect()]
        if url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(req, timeout=self.timeout) as r:
                return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    # ------------------------------------------------------------------ API

    def blob_exists(self, repo: str, digest: str) -> bool:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}",
                            scope=f"repository:{repo}:pull,push").status == 200

    def put_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """Monolithic upload (POST, then PUT ?digest=); skipped if the blob exists."""
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        scope = f"repository:{repo}:pull,push"
        if self.blob_exists(repo, digest):
            return digest
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", b"", scope=scope)
        if r.status != 202:
            raise RuntimeError(f"blob upload start for {repo}: {r.status} {r.body[:300]!r}")
        loc = urllib.parse.urljoin(self.base_url + "/", r.headers["location"])
        sep = "&" if "?" in loc else "?"
        r = self.request("PUT", f"{loc}{sep}digest={urllib.parse.quote(digest)}", data,
                         {"Content-Type": "application/octet-stream"}, scope=scope)
        if r.status != 201:
            raise RuntimeError(f"blob upload of {digest} to {repo}: {r.status} {r.body[:300]!r}")
        return digest

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        r = self.request("PUT", f"/v2/{repo}/manifests/{reference}", data,
                         {"Content-Type": media_type}, scope=f"repository:{repo}:pull,push")
        if r.status != 201:
            raise RuntimeError(f"manifest PUT {repo}:{reference}: {r.status} {r.body[:500]!r}")
        return r.headers.get("docker-content-digest", "sha256:" + hashlib.sha256(data).hexdigest())

    def get_manifest(self, repo: str, reference: str, accept: str | None = None) -> Response:
        accept = accept or ", ".join([
            "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json"])
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept},
                            scope=f"repository:{repo}:pull")

    def get_blob(self, repo: str, digest: str, byte_range: tuple[int, int] | None = None) -> Response:
        """GET a blob; byte_range=(first, last) inclusive sends a Range header."""
        hdrs = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", headers=hdrs,
                            scope=f"repository:{repo}:pull")
