"""A mount outlives its token (docs/cli.md, "Credentials").

The token server issues tokens the registry refuses 5 s after issue
(TokenServer valid_for; distribution's 60 s leeway is backdated away). A
mount reads a first range, waits until the registry refuses that read's
token, and reads ranges it never read: they are fetched with new tokens,
with exact bytes. Credentials come from an auth
file or from a docker credential helper; the server either announces the
5 s lifetime (the mount renews before it runs out) or claims 300 s (the
registry's 401 is what tells the mount the token is gone).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import urllib.error
import urllib.request

import pytest

from support import images
from support.processes import Mount, assert_secret_absent

MIB = 1 << 20
DISK_SIZE = 12 * MIB
LIFETIME = 5
# Fetch only what a read asks for, one chunk at a time.
QUIET = ("--readahead", "0", "--accel", "off", "--prefetch-profile", "none", "--miss-fetch", "chunk")

HELPER = """#!/bin/sh
read server
echo "$server" >> "$(dirname "$0")/asked.log"
printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\\n' "$server"
"""


def _authfile(path, reg, user, password):
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    return path


def _status_with_token(reg, repo, token) -> int:
    req = urllib.request.Request(f"{reg.url}/v2/{repo}/manifests/v1",
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _refused_blob_requests(reg) -> list[dict]:
    """The blob requests the registry refused for an invalid (expired) token."""
    out = []
    for line in reg.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        if e.get("msg") == "error authorizing context: invalid token" and \
                "/blobs/" in e.get("http.request.uri", ""):
            out.append(e)
    return out


def _helper_config(workdir, reg):
    bindir = workdir / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-ocifsexpiry"
    user, secret = reg.creds
    helper.write_text(HELPER.format(user=user, secret=secret))
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    config = workdir / "config.json"
    config.write_text(json.dumps({"credHelpers": {reg.host: "ocifsexpiry"}}))
    return config, {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}, bindir / "asked.log"


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "unannounced"])
@pytest.mark.parametrize("source", ["authfile", "helper"])
def test_a_mount_reads_new_ranges_after_its_token_expired(make_registry, repo, workdir, source, announced):
    reg = make_registry(auth="token", token_expires_in=LIFETIME if announced else 300,
                        token_valid_for=LIFETIME)
    disk = os.urandom(DISK_SIZE)
    ref, _ = images.push_containerdisk(reg, repo, disk, compression="none")
    user, password = reg.creds
    env = None
    asked = None
    if source == "authfile":
        config = _authfile(workdir / "auth.json", reg, user, password)
    else:
        config, env, asked = _helper_config(workdir, reg)
    ts = reg.token_server
    with Mount(ref, workdir / "m", "--tls-verify=false", "--authfile", config, "--log-level", "debug", "--log-file",
               workdir / "mount.log", *QUIET, cache_dir=workdir / "cache", env=env) as m:
        fd = os.open(m.dir / "disk.img", os.O_RDONLY)
        try:
            assert os.pread(fd, MIB, 0) == disk[:MIB]
            issued_before = ts.tokens_issued(user)
            first_token = ts.issued[-1].token
            # Until the registry refuses the first read's token (LIFETIME after
            # its issue): the ranges below are read with that token stale.
            deadline = time.monotonic() + 6 * LIFETIME
            while _status_with_token(reg, repo, first_token) != 401:
                assert time.monotonic() < deadline, "the registry still takes the first token"
                time.sleep(0.2)
            for off in (6 * MIB, 10 * MIB, 3 * MIB):
                assert os.pread(fd, MIB, off) == disk[off:off + MIB], f"range at {off >> 20} MiB"
        finally:
            os.close(fd)
    assert ts.tokens_issued(user) > issued_before, "no new token was fetched after the first expired"
    late = [r for r in reg.request_log() if r.is_blob and r.method == "GET"]
    assert [r for r in late if r.status == 206], "no range was served"
    if not announced:
        # The registry's refusal of the stale token is what renewed it (distribution
        # logs a refused request as a warning, not as "response completed").
        assert _refused_blob_requests(reg), "the registry never refused the stale token"
    if source == "helper":
        assert asked.read_text().splitlines()[0] == reg.host
    texts = [(workdir / "mount.log").read_text(errors="replace")]
    assert_secret_absent(password, texts)
    for issued in ts.issued:
        assert_secret_absent(issued.token.split(".")[2], texts)
