"""The acceleration artifact (docs/accel-format.md) through the CLI against the
registries it meets: token auth with a pull-only credential, a registry with the
OCI 1.1 referrers API (tests/support/referrers_proxy.py in front of
docker-registry), a CSI volume, and artifacts that are wrong.

Fetches are counted by the registry's request log; reads are compared with the
disk's bytes.
"""

from __future__ import annotations

import json
import os
import signal
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support import images, processes
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes
from support.processes import Mount, assert_secret_absent
from support.registry import free_port
from test_accelerate import ARTIFACT_TYPE, GZIP_INDEX, TLS, accelerate, layer_bytes, push_artifact_like

TESTS = Path(__file__).resolve().parents[1]
DISK = 24 * MiB  # random: the gzip layer is as large


def last_mib(data: bytes) -> list[tuple[int, int]]:
    return [(len(data) - MiB, MiB)]


def assert_small_fetch(fetched: int, layer_size: int) -> None:
    """A read at the end of a gzip disk through the artifact's index: its
    checkpoint span and the chunks around it, not the layer's prefix."""
    assert 0 < fetched <= min(8 * MiB, layer_size // 3), (fetched, layer_size)


def fallback_tag_status(registry, repo: str, subject: str) -> int:
    return registry.client().get_manifest(repo, subject.replace(":", "-")).status


# --------------------------------------------------------------------------- token auth


def test_a_pull_only_credential_cannot_accelerate_and_a_pull_only_mount_uses_the_artifact(
        ocifs, make_registry, repo, workdir):
    writer, reader = ("writer", "Wr1ter-Pa55-x9"), ("reader", "Re4der-Pa55-q7")
    reg = make_registry(auth="token", users=dict([writer, reader]), anonymous=False)
    reg.token_server.limits[reader[0]] = {"pull"}
    data = disk_bytes(DISK, seed=71)
    ref, img = images.push_containerdisk(reg, repo, data, "gzip")  # as the first user, the writer
    layer = img.layers[0]

    log = workdir / "refused.log"
    before = len(reg.request_log())
    r = ocifs("accelerate", TLS, "--creds", ":".join(reader), "--log-level=debug", f"--log-file={log}", ref,
              check=False, timeout=120)
    assert r.returncode != 0, r.describe()
    assert f"repository:{repo}:pull,push" in r.stderr, r.describe()
    fetched = [q.uri for q in reg.request_log()[before:] if q.method == "GET" and q.digest == layer.digest]
    assert fetched == [], fetched  # refused before any layer was read
    for secret in (reader[1], writer[1]):
        assert_secret_absent(secret, [r.stdout, r.stderr, log.read_text()])
    assert fallback_tag_status(reg, repo, img.digest) == 404  # nothing was pushed

    before = len(reg.request_log())
    artifact = accelerate(ocifs, ref, "--creds", ":".join(writer))
    assert artifact.startswith(f"{reg.host}/{repo}@sha256:")
    # The check of push access left no upload open (cancelling one would need the delete action).
    pushed = reg.request_log()[before:]
    started = [q for q in pushed if q.method == "POST" and "/blobs/uploads/" in q.uri and q.status == 202]
    finished = [q for q in pushed if q.method == "PUT" and "/blobs/uploads/" in q.uri and q.status == 201]
    # "{}", the gzip index, the tar index and the raw span table (the random disk's stored blocks)
    assert len(started) == len(finished) == 4, [(q.method, q.status) for q in pushed]
    assert fallback_tag_status(reg, repo, img.digest) == 200

    before = layer_bytes(reg, img)
    with Mount(ref, workdir / "m", TLS, "--creds", ":".join(reader), "--log-level=info",
               f"--log-file={workdir / 'mount.log'}", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, last_mib(data))
        assert_small_fetch(layer_bytes(reg, img) - before, layer.size)
    assert f"{artifact}: reading the gzip index of layer {layer.digest} lazily" in (workdir / "mount.log").read_text()


# --------------------------------------------------------------------------- the referrers API


class ReferrersProxy:
    """tests/support/referrers_proxy.py in front of `upstream`, on a free port."""

    def __init__(self, upstream, log_path: Path):
        self.upstream = upstream
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            with open(log_path, "ab") as log:
                self.proc = processes.spawn([sys.executable, TESTS / "support/referrers_proxy.py", self.port,
                                             upstream.url], stdout=log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            processes.stop(self.proc)
        raise RuntimeError(f"referrers_proxy.py did not start: {log_path.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.log()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://{self.host}{path}", timeout=10) as r:
            return r.read()

    def log(self) -> dict:
        return json.loads(self._get("/_stub/log"))

    def set(self, **controls: int) -> None:
        self._get("/_stub/set?" + "&".join(f"{k}={v}" for k, v in controls.items()))

    def referrers(self, repo: str, subject: str) -> list[dict]:
        return json.loads(self._get(f"/v2/{repo}/referrers/{subject}?artifactType={ARTIFACT_TYPE}"))["manifests"]

    def stop(self) -> None:
        processes.stop(self.proc)


@pytest.fixture
def proxy(make_registry, workdir):
    p = ReferrersProxy(make_registry(), workdir / "proxy.log")
    yield p
    p.stop()


def test_through_the_referrers_api_no_fallback_tag_is_written_and_a_mount_finds_the_artifact(
        ocifs, proxy, repo, workdir):
    reg = proxy.upstream
    data = disk_bytes(DISK, seed=72)
    img = images.containerdisk(data, "gzip")
    images.push(reg, repo, "v1", img)
    layer = img.layers[0]
    ref = f"{proxy.host}/{repo}:v1"

    artifact = accelerate(ocifs, ref)
    assert artifact.startswith(f"{proxy.host}/{repo}@sha256:")
    digest = artifact.split("@", 1)[1]
    assert [d["digest"] for d in proxy.referrers(repo, img.digest)] == [digest]
    assert fallback_tag_status(reg, repo, img.digest) == 404
    pushed = [e for e in proxy.log()["log"] if e["method"] == "PUT" and "/manifests/" in e["path"]]
    assert [e["path"].rsplit("/", 1)[1] for e in pushed] == [digest], pushed

    log = workdir / "mount.log"
    asked = len(proxy.log()["referrers_asked"])
    before = layer_bytes(reg, img)
    with Mount(ref, workdir / "m", TLS, "--log-level=debug", f"--log-file={log}", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, last_mib(data))
        assert_small_fetch(layer_bytes(reg, img) - before, layer.size)
    assert [a["digest"] for a in proxy.log()["referrers_asked"][asked:]] == [img.digest]
    text = log.read_text()
    assert f"1 acceleration artifacts for {img.digest} (through the referrers API)" in text, text
    assert f"{artifact}: reading the gzip index of layer {layer.digest} lazily" in text, text


# --------------------------------------------------------------------------- artifacts that are wrong


def test_a_gzip_index_piece_that_is_not_an_index_is_skipped_with_a_warning(ocifs, registry, repo, workdir):
    data = disk_bytes(4 * MiB, seed=73)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    artifact = accelerate(ocifs, ref)
    noise = random.Random(74).randbytes(5000)
    bad = push_artifact_like(registry, repo, artifact, lambda index: noise)  # the newest: the one a mount takes
    manifest = registry.client().get_manifest(repo, bad).json()
    [piece] = [p for p in manifest["layers"] if p["mediaType"] == GZIP_INDEX]
    assert registry.client().get_blob(repo, piece["digest"]).body == noise  # its digest is right

    log = workdir / "mount.log"
    with Mount(ref, workdir / "m", TLS, f"--log-file={log}", cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    warnings = [l for l in log.read_text().splitlines() if "not using its gzip index" in l]
    assert len(warnings) == 1 and piece["digest"] in warnings[0], log.read_text()
    assert f"{registry.host}/{repo}@{bad}" in warnings[0]


def test_a_fallback_tag_that_holds_garbage_is_logged_and_the_mount_works(ocifs, proxy, repo, workdir):
    data = disk_bytes(4 * MiB, seed=75)
    img = images.containerdisk(data, "gzip")
    images.push(proxy.upstream, repo, "v1", img)
    proxy.set(no_api=1, garbage_tags=1)  # docker-registry's 404 for the API; the tag holds no JSON
    log = workdir / "mount.log"
    with Mount(f"{proxy.host}/{repo}:v1", workdir / "m", TLS, f"--log-file={log}",
               cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    tag = img.digest.replace(":", "-")
    assert [e["status"] for e in proxy.log()["log"] if e["path"].endswith(f"/manifests/{tag}")] == [200]
    text = log.read_text()
    assert "no acceleration artifact: looking it up failed" in text, text


def test_a_pinned_artifact_that_does_not_exist_fails_the_mount_naming_it(ocifs, registry, repo, workdir):
    data = disk_bytes(2 * MiB, seed=76)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    missing = f"{registry.host}/{repo}@sha256:{'5a' * 32}"
    target = workdir / "m"
    target.mkdir()
    r = ocifs("mount", TLS, f"--accel={missing}", f"--cache-dir={workdir / 'cache'}", ref, target, check=False)
    assert r.returncode == 1, r.describe()
    assert f"sha256:{'5a' * 32}" in r.stderr and "--accel" in r.stderr, r.describe()
    assert not processes.is_mounted(target)


# --------------------------------------------------------------------------- a CSI volume


def records(plugin) -> dict:
    """The plugin's volume records (docs/kubernetes.md, "State directory"), by volume id."""
    out = {}
    for p in (plugin.state_dir / "volumes").glob("*.json"):
        r = json.loads(p.read_text())
        out[r["volumeId"]] = r
    return out


def test_a_csi_volume_uses_the_artifact_and_the_accel_attribute_is_honoured(ocifs, registry, repo, workdir):
    if str(TESTS / "csi") not in sys.path:
        sys.path.insert(0, str(TESTS / "csi"))
    import grpc
    from csi_client import Plugin, capability

    data_a, data_b = disk_bytes(DISK, seed=77), disk_bytes(DISK, seed=78)
    ref_a, img_a = images.push_containerdisk(registry, repo, data_a, "gzip", tag="a")
    ref_b, img_b = images.push_containerdisk(registry, repo, data_b, "gzip", tag="b")
    artifact_a, _ = accelerate(ocifs, ref_a), accelerate(ocifs, ref_b)
    plugin = Plugin([processes.ocifs_bin(), "csi"], workdir, ["--tls-verify=false"])  # a fresh cache dir
    published = []

    def publish(name: str, ref: str, **attributes: str) -> Path:
        parent = workdir / "pods" / name / "volumes" / "kubernetes.io~csi" / "disk"
        parent.mkdir(parents=True)
        context = {"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": name,
                   "csi.storage.k8s.io/pod.namespace": "default", "image": ref, **attributes}
        plugin.client.node("NodePublishVolume", volume_id=f"csi-{name}", target_path=str(parent / "mount"),
                           volume_capability=capability(), readonly=True, volume_context=context)
        published.append((f"csi-{name}", parent / "mount", mount_daemon(parent / "mount")))
        return parent / "mount"

    def mount_daemon(target: Path, other_than: int = 0) -> int:
        """The volume's mount daemon: its keeper (whose argv holds the serving process's), or
        the mount process of a mount without one; 0 if none (other than `other_than`)."""
        pids = [p for p in processes.find_processes(processes.ocifs_bin(), str(target)) if p != other_than]
        keepers = [p for p in pids if Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[1:2] == [b"keeper"]]
        return (keepers or pids or [0])[0]

    def mount_argv(target: Path) -> list[str]:
        [pid] = [pid for _, t, pid in published if t == target]
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")

    plugin.start()
    try:
        before = layer_bytes(registry, img_a)
        auto = publish("pod-auto", ref_a)
        assert_reads_match(auto / "disk.img", data_a, last_mib(data_a))
        assert_small_fetch(layer_bytes(registry, img_a) - before, img_a.layers[0].size)
        # The record pins the artifact found at publish, and the mount was given it.
        assert f"--accel={artifact_a}" in mount_argv(auto)
        assert records(plugin)["csi-pod-auto"]["accel"] == artifact_a

        # A newer artifact appears; the volume's mount dies and the plugin remounts it
        # with the artifact it was published with.
        newer = accelerate(ocifs, ref_a)
        assert newer != artifact_a
        [(_, _, old_pid)] = [p for p in published if p[0] == "csi-pod-auto"]
        os.killpg(os.getpgid(old_pid), signal.SIGKILL)  # a kept mount dies with its keeper and server
        deadline = time.monotonic() + 60
        remounted = 0
        while time.monotonic() < deadline and not remounted:
            time.sleep(0.5)
            remounted = mount_daemon(auto, other_than=old_pid)
        assert remounted, "the plugin did not remount the volume"
        argv = Path(f"/proc/{remounted}/cmdline").read_text().split("\0")
        assert f"--accel={artifact_a}" in argv and f"--accel={newer}" not in argv, argv
        published[:] = [p if p[0] != "csi-pod-auto" else (p[0], p[1], remounted) for p in published]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                assert_reads_match(auto / "disk.img", data_a, last_mib(data_a))
                break
            except OSError:
                time.sleep(0.5)  # the remount is on its way
        assert_same_bytes((auto / "disk.img").read_bytes(), data_a)

        before = layer_bytes(registry, img_b)
        off = publish("pod-off", ref_b, accel="off")
        assert "--accel=off" in mount_argv(off)
        assert_reads_match(off / "disk.img", data_b, last_mib(data_b))
        # Its own first pass: the layer from its start up to the read.
        assert layer_bytes(registry, img_b) - before >= img_b.layers[0].size * 9 // 10

        pinned = publish("pod-pinned", ref_a, accel=artifact_a)
        assert f"--accel={artifact_a}" in mount_argv(pinned)
        assert_same_bytes((pinned / "disk.img").read_bytes(), data_a)
        assert {r["attributes"].get("accel") for r in records(plugin).values()} == {None, "off", artifact_a}
        # Only a volume whose accel is auto pins what it found.
        assert records(plugin)["csi-pod-off"]["accel"] == ""
        assert records(plugin)["csi-pod-pinned"]["accel"] == ""

        with pytest.raises(grpc.RpcError) as refused:
            publish("pod-bad", ref_a, accel="sometimes")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "accel" in refused.value.details() and "sometimes" in refused.value.details()
    finally:
        for volume_id, target, _ in published:
            plugin.client.node("NodeUnpublishVolume", volume_id=volume_id, target_path=str(target))
        plugin.stop()
    for _, target, pid in published:
        assert not processes.is_mounted(target)
        assert processes.wait_pid_gone(pid, 15), f"the mount process of {target} did not exit"
