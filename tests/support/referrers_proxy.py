"""A stand-in for an OCI 1.1 registry, in front of a docker-registry 2.8 (which
has no referrers API), for the C++ tests of src/registry:

    python3 referrers_proxy.py PORT UPSTREAM_URL [--token USER:PASSWORD:ACTIONS]...

It forwards every request to UPSTREAM_URL (keeping the Host header, so the
registry's upload Locations point back here) and adds:

  PUT  /v2/<name>/manifests/<ref>     a manifest with a `subject` is recorded, and
                                      the answer carries `OCI-Subject: <subject digest>`
  GET  /v2/<name>/referrers/<digest>  an OCI image index of the recorded referrers
       [?artifactType=T]              (filtered, with OCI-Filters-Applied: artifactType)

Test controls (no auth):
  GET /_stub/log                      JSON: every request (method, path, status, auth),
                                      the token scopes asked for, and for each referrers
                                      request whether the fallback tag of its digest had
                                      been asked for before it was answered
  GET /_stub/set?KEY=VALUE            ignore_filter=1 (answer all, no OCI-Filters-Applied),
                                      no_api=1 (404 like docker-registry), page_size=N
                                      (Link rel="next" pages), wait_for_tag=1 (hold a
                                      referrers answer until the fallback tag of its digest
                                      is asked for, at most 20 s: proves the two are sent
                                      at once), garbage_tags=1 (a GET of a fallback tag,
                                      manifests/sha256-<hex>, answers 200 with bytes that
                                      are not JSON)

--token USER:PASSWORD:ACTIONS turns on Bearer token auth: 401 challenges naming
http://127.0.0.1:PORT/token, which grants USER (Basic auth) the asked actions
that ACTIONS ("pull" or "pull,push") allows, and refuses anyone else with 401.
A request needs "pull" (GET, HEAD) or "push" (anything else) of its repository.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import secrets
import sys
import threading
import urllib.parse

PORT = 0  # set by main()
UPSTREAM = urllib.parse.urlsplit("http://127.0.0.1:0")
USERS = {}  # user -> (password, set of actions)

INDEX = "application/vnd.oci.image.index.v1+json"
lock = threading.Condition()
state = {"log": [], "scopes": [], "referrers_asked": [], "tags_asked": set(),
         "ignore_filter": False, "no_api": False, "page_size": 0, "wait_for_tag": False,
         "garbage_tags": False}
referrers = {}  # (name, subject digest) -> {manifest digest: descriptor}
tokens = {}  # token -> (user, {(name, action)})


def parse_path(path):
    """(name, kind, ref) of /v2/<name>/<kind>/<ref>, kind in manifests/blobs/referrers."""
    p = urllib.parse.urlsplit(path).path
    if not p.startswith("/v2/"):
        return None, None, None
    for kind in ("manifests", "referrers", "blobs"):
        marker = "/" + kind + "/"
        at = p.rfind(marker)
        if at > 3:
            rest = p[at + len(marker):]
            if kind == "blobs" and rest.startswith("uploads"):
                return p[4:at], "uploads", rest
            return p[4:at], kind, rest
    return None, None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        with lock:
            state["log"].append({"method": self.command, "path": self.path, "status": status,
                                 "auth": bool(self.headers.get("Authorization"))})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ------------------------------------------------------------------ auth

    def token(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        scope = q.get("scope", [""])[0]
        with lock:
            state["scopes"].append(scope)
        auth = self.headers.get("Authorization", "")
        user, _, password = (base64.b64decode(auth[6:]).decode().partition(":")
                             if auth.startswith("Basic ") else ("", "", ""))
        if user not in USERS or USERS[user][0] != password:
            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
        granted = set()
        parts = scope.split(":")
        if len(parts) == 3 and parts[0] == "repository":
            granted = {(parts[1], a) for a in parts[2].split(",") if a in USERS[user][1]}
        tok = secrets.token_hex(16)
        with lock:
            tokens[tok] = (user, granted)
        self.send(200, json.dumps({"token": tok, "expires_in": 300}).encode())

    def authorized(self, name):
        if not USERS:
            return True
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        tok = self.headers.get("Authorization", "")[7:]
        with lock:
            grant = tokens.get(tok)
        if grant and (name, action) in grant[1]:
            return True
        self.body()  # read what was sent, so the connection can carry the next request
        challenge = ('Bearer realm="http://127.0.0.1:%d/token",service="stub",scope="repository:%s:%s"'
                     % (PORT, name, action))
        if grant:
            challenge += ',error="insufficient_scope"'
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                                       "detail": [{"Type": "repository", "Name": name, "Action": action}]}]})
        self.send(401, body.encode(), [("WWW-Authenticate", challenge), ("Content-Type", "application/json")])
        return False

    # ------------------------------------------------------------------ requests

    def route(self):
        """(name, kind, ref) of a request, or None when auth refused it (and answered)."""
        name, kind, ref = parse_path(self.path)
        if name is not None and not self.authorized(name):
            return None
        return name, kind, ref

    def do_GET(self):
        if self.path == "/_stub/log":
            with lock:
                doc = {k: state[k] for k in ("log", "scopes", "referrers_asked")}
            return self.send(200, json.dumps(doc).encode())
        if self.path.startswith("/_stub/set?"):
            for k, v in urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query):
                with lock:
                    state[k] = int(v) if k == "page_size" else v == "1"
                    if k == "wait_for_tag":
                        state["tags_asked"].clear()  # count only what is asked from now on
            return self.send(200, b"{}")
        if self.path.startswith("/token"):
            return self.token()
        route = self.route()
        if route is None:
            return None
        name, kind, ref = route
        if kind == "manifests":
            with lock:
                state["tags_asked"].add((name, ref))
                lock.notify_all()
                garbage = state["garbage_tags"] and ref.startswith("sha256-")
            if garbage:
                return self.send(200, b"\x00\xffnot json {[", [("Content-Type", INDEX)])
        if kind == "referrers":
            return self.list_referrers(name, ref)
        return self.forward()

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        if self.route() is not None:
            self.forward()

    def do_PATCH(self):
        self.do_POST()

    def do_PUT(self):
        route = self.route()
        if route is None:
            return None
        name, kind, _ = route
        body = self.body()
        status, headers, answer = self.upstream(body)
        if kind == "manifests" and status == 201:
            doc = json.loads(body)
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if isinstance(subject, dict) and "digest" in subject:
                desc = {"mediaType": doc.get("mediaType") or self.headers.get("Content-Type"),
                        "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body),
                        "artifactType": doc.get("artifactType") or doc.get("config", {}).get("mediaType")}
                if doc.get("annotations"):
                    desc["annotations"] = doc["annotations"]
                with lock:
                    referrers.setdefault((name, subject["digest"]), {})[desc["digest"]] = desc
                headers.append(("OCI-Subject", subject["digest"]))
        self.send(status, answer, headers)

    def list_referrers(self, name, ref):
        url = urllib.parse.urlsplit(self.path)
        digest = url.path.rsplit("/", 1)[1]
        q = dict(urllib.parse.parse_qsl(url.query))
        with lock:
            if state["no_api"]:
                return self.send(404, b'{"errors":[{"code":"NOT_FOUND","message":"no such route"}]}')
            tag = digest.replace(":", "-")
            if state["wait_for_tag"]:
                lock.wait_for(lambda: (name, tag) in state["tags_asked"], timeout=20)
            state["referrers_asked"].append({"digest": digest, "tag_asked_before": (name, tag) in state["tags_asked"]})
            entries = list(referrers.get((name, digest), {}).values())
            ignore, page_size = state["ignore_filter"], state["page_size"]
        headers = [("Content-Type", INDEX)]
        want = q.get("artifactType")
        if want and not ignore:
            entries = [e for e in entries if e.get("artifactType") == want]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        start = int(q.get("start", 0))
        if page_size:
            if start + page_size < len(entries):
                nq = dict(q, start=str(start + page_size))
                headers.append(("Link", '<%s?%s>; rel="next"' % (url.path, urllib.parse.urlencode(nq))))
            entries = entries[start:start + page_size]
        doc = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
        self.send(200, json.dumps(doc).encode(), headers)

    def upstream(self, body):
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "connection")}
        conn.request(self.command, self.path, body=body if self.command not in ("GET", "HEAD") else None,
                     headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
        conn.close()
        keep = [(k, v) for k, v in resp.getheaders()
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive")
                and not (k.lower() == "content-length" and self.command != "HEAD")]
        return resp.status, keep, answer

    def forward(self):
        body = self.body() if self.command not in ("GET", "HEAD") else None
        status, headers, answer = self.upstream(body)
        self.send(status, answer, headers)


def main(argv):
    global PORT, UPSTREAM
    PORT = int(argv[1])
    UPSTREAM = urllib.parse.urlsplit(argv[2])
    for i, arg in enumerate(argv):
        if arg == "--token":
            user, password, actions = argv[i + 1].split(":", 2)
            USERS[user] = (password, set(actions.split(",")))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
