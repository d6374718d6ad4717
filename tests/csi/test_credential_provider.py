"""Credentials of CSI volumes that keep working (docs/kubernetes.md, "Registry credentials").

- A kubelet credential provider plugin (`oci-fs csi --image-credential-provider-config
  --image-credential-provider-bin-dir`): the test ships the provider as a shell
  script; it gets a CredentialProviderRequest on stdin and answers with the
  password in its directory. The registry uses token auth (tests/support/token_server.py).
- Credentials that rotate: the token server stops taking the old password, and
  tokens live 5 s. A provider's new answer (after its cacheDuration), or the
  volume published again with its Secret's new data (requiresRepublish), is
  written over the volume's credentials file; the mount reads it again when the
  old credentials are refused, and new ranges read with exact bytes.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import grpc
import pytest

from support import images, processes
from csi_client import Plugin
from test_csi import (assert_clean, publish, rpc_error, target_of, unmount_leftovers,
                      unpublish, wait_until)

MIB = 1 << 20
DISK_SIZE = 24 * MIB
LIFETIME = 5  # seconds a token is taken by the registry
PROVIDER = "ocifs-test-provider"

PROVIDER_SCRIPT = """#!/bin/sh
# A kubelet credential provider: the request on stdin, the response on stdout.
dir="$PROVIDER_DIR"
cat > "$dir/request.json"
echo "$*" >> "$dir/calls.log"
if [ -e "$dir/fail" ]; then echo "no credentials for that image today" >&2; exit 3; fi
printf '{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse",'
printf '"cacheKeyType":"Registry","cacheDuration":"%s",' "$(cat "$dir/duration")"
printf '"auth":{"%s":{"username":"%s","password":"%s"}}}\\n' "$(cat "$dir/host")" "$(cat "$dir/user")" \\
  "$(cat "$dir/password")"
"""


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.rename(path)


class Provider:
    """The shipped provider plugin and its config; `password` is what it hands out."""

    def __init__(self, workdir: Path, reg, match: str | None = None, duration: str = "1m"):
        self.dir = workdir / "provider"
        self.bin_dir = workdir / "provider-bin"
        self.dir.mkdir(parents=True)
        self.bin_dir.mkdir(parents=True)
        script = self.bin_dir / PROVIDER
        script.write_text(PROVIDER_SCRIPT)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        user, password = reg.creds
        for name, value in (("host", reg.host), ("user", user), ("password", password), ("duration", duration)):
            _write(self.dir / name, value)
        self.config = workdir / "credential-providers.yaml"
        self.config.write_text(f"""apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: {PROVIDER}
    matchImages:
      - "{match or reg.host}"
    defaultCacheDuration: 10m
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials]
    env:
      - name: PROVIDER_DIR
        value: {self.dir}
""")

    def flags(self) -> list[str]:
        return ["--image-credential-provider-config", str(self.config),
                "--image-credential-provider-bin-dir", str(self.bin_dir)]

    def calls(self) -> int:
        log = self.dir / "calls.log"
        return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def token_reg(make_registry):
    return make_registry(auth="token", users={"node-puller": "first-Pa55word"}, token_expires_in=LIFETIME,
                         token_valid_for=LIFETIME)


@pytest.fixture
def pushed(token_reg, repo):
    disk = os.urandom(DISK_SIZE)
    ref, _ = images.push_containerdisk(token_reg, repo, disk, compression="none")
    return ref, disk


@pytest.fixture
def plugins(workdir):
    started = []

    def make(*extra) -> Plugin:
        p = Plugin([processes.ocifs_bin(), "csi"], workdir, ["--tls-verify=false", *extra])
        started.append(p)
        return p.start()

    yield make
    for p in started:
        p.stop()
    unmount_leftovers(workdir)


def _dockerconfig(reg, user, password) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {reg.host: {"auth": auth}}})


def _pread(path: Path, off: int, n: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def _rotate_password(reg, new: str) -> None:
    """The token server takes only `new` for the user from now on."""
    user = reg.creds[0]
    reg.token_server.users[user] = new
    reg.users[user] = new


def _secrets_nowhere(plugin, secrets: list[str]) -> None:
    cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
    for s in secrets:
        processes.assert_secret_absent(s, cmdlines + [plugin.log_text()])


def test_a_provider_supplies_the_credentials_of_a_volume_without_a_secret(plugins, token_reg, pushed, workdir, repo):
    ref, disk = pushed
    provider = Provider(workdir, token_reg)
    plugin = plugins(*provider.flags())
    target = target_of(workdir, "pod-provider")
    publish(plugin, target, ref)
    assert _pread(target / "disk.img", 0, MIB) == disk[:MIB]
    request = json.loads((provider.dir / "request.json").read_text())
    assert request == {"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
                       "image": f"{token_reg.host}/{repo}"}
    assert (provider.dir / "calls.log").read_text().splitlines()[0] == "get-credentials"
    [record] = plugin.records()
    assert record["authSource"] == "provider"
    [cred] = plugin.secret_files()
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert token_reg.token_server.tokens_issued("node-puller") > 0
    _secrets_nowhere(plugin, [token_reg.creds[1]])

    # cacheKeyType Registry, 10 minutes: a second volume of the registry asks no one.
    calls = provider.calls()
    other = target_of(workdir, "pod-provider-2")
    publish(plugin, other, ref)
    assert _pread(other / "disk.img", 20 * MIB, MIB) == disk[20 * MIB:21 * MIB]
    assert provider.calls() == calls
    for t in (target, other):
        unpublish(plugin, t)
        assert_clean(plugin, t)
    assert plugin.secret_files() == []


def test_a_failing_or_unmatched_provider_leaves_a_clear_error(plugins, token_reg, pushed, workdir):
    ref, _ = pushed
    provider = Provider(workdir, token_reg)
    (provider.dir / "fail").write_text("")
    plugin = plugins(*provider.flags())
    target = target_of(workdir, "pod-failing")
    err = rpc_error(publish, plugin, target, ref)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert f'credential provider "{PROVIDER}"' in err.details()
    assert "no credentials for that image today" in err.details()
    assert_clean(plugin, target)
    assert plugin.records() == [] and plugin.secret_files() == []
    plugin.stop()

    # A provider for other images is not asked: the registry refuses anonymous access.
    unmatched = Provider(workdir / "unmatched", token_reg, match="*.example.com")
    plugin = plugins(*unmatched.flags())
    err = rpc_error(publish, plugin, target, ref)
    assert err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), err.details()
    assert unmatched.calls() == 0
    assert_clean(plugin, target)


def test_a_bad_provider_config_stops_the_plugin_with_a_message(workdir, token_reg):
    provider = Provider(workdir, token_reg)
    good = provider.config.read_text()
    provider.config.write_text(good.replace("    defaultCacheDuration: 10m\n", ""))
    res = processes.run_ocifs("csi", "--endpoint", f"unix://{workdir}/csi.sock", "--node-id", "n",
                              "--state-dir", workdir / "state", *provider.flags(), check=False, timeout=30)
    assert res.returncode == 1
    assert str(provider.config) in res.stderr and "defaultCacheDuration" in res.stderr, res.stderr
    (provider.bin_dir / PROVIDER).unlink()
    provider.config.write_text(good)
    res = processes.run_ocifs("csi", "--endpoint", f"unix://{workdir}/csi.sock", "--node-id", "n",
                              "--state-dir", workdir / "state", *provider.flags(), check=False, timeout=30)
    assert res.returncode == 1
    assert f"{provider.bin_dir}/{PROVIDER}" in res.stderr, res.stderr


def test_a_volume_follows_its_providers_rotated_credentials(plugins, token_reg, pushed, workdir):
    ref, disk = pushed
    provider = Provider(workdir, token_reg, duration="2s")
    plugin = plugins(*provider.flags())
    target = target_of(workdir, "pod-rotate-provider")
    publish(plugin, target, ref)
    assert _pread(target / "disk.img", 0, MIB) == disk[:MIB]
    [cred] = plugin.secret_files()
    before = cred.read_text()

    _write(provider.dir / "password", "second-Pa55word")
    _rotate_password(token_reg, "second-Pa55word")
    wait_until(lambda: cred.read_text() != before, timeout=60, what="the plugin to ask the provider again")
    refused = len(token_reg.token_server.refused)
    time.sleep(LIFETIME + 1)  # every token of the old password is refused by now
    for off in (20 * MIB, 12 * MIB):
        assert _pread(target / "disk.img", off, MIB) == disk[off:off + MIB]
    assert token_reg.token_server.tokens_issued("node-puller") > 1
    # The old password was refused once, then the rewritten file was read.
    assert len(token_reg.token_server.refused) > refused
    _secrets_nowhere(plugin, ["first-Pa55word", "second-Pa55word"])
    unpublish(plugin, target)
    assert_clean(plugin, target)


def test_a_rotated_secret_is_used_once_the_old_one_is_refused(plugins, token_reg, pushed, workdir):
    ref, disk = pushed
    user, first = token_reg.creds
    plugin = plugins()
    target = target_of(workdir, "pod-rotate-secret")
    publish(plugin, target, ref, secrets={".dockerconfigjson": _dockerconfig(token_reg, user, first)})
    assert _pread(target / "disk.img", 0, MIB) == disk[:MIB]
    [cred] = plugin.secret_files()

    # The Secret is rotated: the registry refuses the old password, kubelet
    # publishes the volume again with the new data (requiresRepublish).
    _rotate_password(token_reg, "rotated-Pa55word")
    publish(plugin, target, ref, secrets={".dockerconfigjson": _dockerconfig(token_reg, user, "rotated-Pa55word")})
    assert "rotated-Pa55word" not in cred.read_text()  # base64 in the file, never plain
    assert json.loads(cred.read_text()) == json.loads(_dockerconfig(token_reg, user, "rotated-Pa55word"))
    assert "its secret changed" in plugin.log_text()
    time.sleep(LIFETIME + 1)  # the token of the old password is refused by now
    refused = len(token_reg.token_server.refused)
    for off in (20 * MIB, 12 * MIB):
        assert _pread(target / "disk.img", off, MIB) == disk[off:off + MIB]
    # The mount asked with the old password first, was refused, and read the file again.
    assert [r for r in token_reg.token_server.refused[refused:] if r.reason == "wrong credentials"]
    assert token_reg.token_server.issued[-1].user == user
    _secrets_nowhere(plugin, [first, "rotated-Pa55word"])
    unpublish(plugin, target)
    assert_clean(plugin, target)
    assert plugin.secret_files() == []
