"""The CSI node plugin, driven as kubelet drives it, over its unix socket.

The plugin is `oci-fs csi`; it launches the real `oci-fs mount` against a
docker-registry started by the harness (tests/support), with containerDisks
pushed by the test.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from support import images, processes
from csi_client import Plugin, capability, pb2

EPHEMERAL = {"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "vm-1",
             "csi.storage.k8s.io/pod.namespace": "default"}


def disk_bytes(seed: str, size: int = 3 << 20) -> bytes:
    line = f"disk of {seed}\n".encode()
    return (line * (size // len(line) + 1))[:size]


# --------------------------------------------------------------------------- backends


class RealBackend:
    name = "real"

    def __init__(self, workdir: Path, request):
        self.binary = processes.ocifs_bin()
        self.registry = request.getfixturevalue("registry")
        self.request = request
        self.data: dict[str, bytes] = {}
        self.plugin_extra = ["--tls-verify=false"]

    def image(self, repo: str) -> str:
        data = disk_bytes(repo)
        images.push(self.registry, repo, "v1", images.containerdisk(data), creds=None)
        ref = self.registry.ref(repo, "v1")
        self.data[ref] = data
        return ref

    def expected(self, ref: str) -> bytes:
        return self.data[ref.split("@")[0]]

    def private(self, repo: str):
        reg = self.request.getfixturevalue("htpasswd_registry")
        data = disk_bytes("private-" + repo)
        images.push(reg, repo, "v1", images.containerdisk(data))
        ref = reg.ref(repo, "v1")
        self.data[ref] = data
        user, password = reg.creds
        self.plugin_extra = ["--cert-dir", str(reg.cert_dir)]

        def cfg(pw):
            auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
            return json.dumps({"auths": {reg.host: {"auth": auth}}})
        return ref, cfg(password), cfg("wrong-" + password), password

    def unknown(self) -> str:
        return self.registry.ref("no/such-image", "v1")


@pytest.fixture
def backend(request, workdir):
    return RealBackend(workdir, request)


def plugin_command(backend) -> list[str]:
    return [backend.binary, "csi"]


def unmount_leftovers(workdir: Path) -> None:
    """Whatever a failing test left mounted under `workdir`: unmount it and kill its daemons."""
    for target in processes.mounts_under(workdir):
        for pid in _mount_pids(target):
            _kill_mount(pid)
        processes.unmount(target, lazy=True)


@pytest.fixture
def make_plugin(backend, workdir):
    started = []

    def make(wait_ready=True, env=None) -> Plugin:
        p = Plugin(plugin_command(backend), workdir, backend.plugin_extra)
        p.env_extra = dict(env or {})
        started.append(p)
        return p.start(wait_ready)

    yield make
    for p in started:
        p.stop()
    unmount_leftovers(workdir)


def _mount_pids(target) -> list[int]:
    """The daemon of `target`: its keeper (docs/keeper.md), or an `oci-fs mount` without one."""
    keepers, mounts = [], []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            argv = (d / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[-1] == str(target).encode():
            if argv[1] == b"keeper":
                keepers.append(int(d.name))
            elif argv[1] == b"mount":
                mounts.append(int(d.name))
    return keepers or mounts


def _kill_mount(pid: int) -> None:
    """SIGKILL to a mount's daemon and its serving process (its process group):
    a kept mount dies only with both."""
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass


def target_of(workdir: Path, name: str) -> Path:
    """kubelet's layout: the parent exists, the target does not yet."""
    parent = workdir / "pods" / name / "volumes" / "kubernetes.io~csi" / "disk"
    parent.mkdir(parents=True, exist_ok=True)
    return parent / "mount"


def publish(plugin, target, ref=None, volume_id=None, context=None, mode="SINGLE_NODE_WRITER",
            secrets=None, block=False, readonly=True):
    ctx = dict(EPHEMERAL, image=ref) if context is None else context
    return plugin.client.node("NodePublishVolume", volume_id=volume_id or f"csi-{target.parents[3].name}",
                              target_path=str(target), volume_capability=capability(mode, block),
                              readonly=readonly, volume_context=ctx, secrets=secrets or {})


def unpublish(plugin, target, volume_id=None):
    return plugin.client.node("NodeUnpublishVolume",
                              volume_id=volume_id or f"csi-{target.parents[3].name}",
                              target_path=str(target))


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kwargs)
    return e.value


def read_disk(target: Path) -> bytes:
    return (target / "disk.img").read_bytes()


def wait_until(pred, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_clean(plugin, target):
    assert not processes.is_mounted(target)
    # The daemon exits on its own once unmounted; give it a moment.
    wait_until(lambda: not [p for p in _mount_pids(target) if not processes.wait_pid_gone(p, 0.1)],
               timeout=15, what="the mount process to exit")
    assert not target.exists() or not any(target.iterdir())


# --------------------------------------------------------------------------- tests


def test_identity_and_node_info_rpcs(make_plugin):
    plugin = make_plugin()
    c = plugin.client
    info = c.identity("GetPluginInfo")
    assert info.name == "oci-fs.csi.oci-fs.io"
    assert info.vendor_version
    caps = c.identity("GetPluginCapabilities")
    assert not any(cap.service.type == 1 for cap in caps.capabilities)  # no controller
    assert c.identity("Probe").ready.value is True
    assert c.node("NodeGetInfo").node_id == "node-1"
    node_caps = c.node("NodeGetCapabilities")
    rpc = pb2().NodeServiceCapability.RPC
    assert [cap.rpc.type for cap in node_caps.capabilities] == [rpc.GET_VOLUME_STATS, rpc.VOLUME_CONDITION]
    err = rpc_error(c.node, "NodeGetVolumeStats", volume_id="nope", volume_path="/nonexistent")
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_inline_volume_is_readable_and_unpublishes(make_plugin, backend, workdir):
    plugin = make_plugin()
    ref = backend.image("inline")
    target = target_of(workdir, "pod-a")
    publish(plugin, target, ref)
    assert read_disk(target) == backend.expected(ref)
    assert os.listdir(target) == ["disk.img"]
    [record] = plugin.records()
    assert record["image"] == ref and record["digest"].startswith("sha256:")
    assert record["targetPath"] == str(target) and record["ephemeral"] is True

    # Repeating the publish is OK; another image at the same target is not.
    publish(plugin, target, ref)
    err = rpc_error(publish, plugin, target, backend.image("other"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert str(target) in err.details()

    stats = plugin.client.node("NodeGetVolumeStats", volume_id="csi-pod-a", volume_path=str(target))
    assert stats.volume_condition.abnormal is False
    assert {u.unit for u in stats.usage} == {1, 2}

    unpublish(plugin, target)
    assert_clean(plugin, target)
    assert not target.exists()
    assert plugin.records() == []
    unpublish(plugin, target)  # again: OK
    unpublish(plugin, target_of(workdir, "never-published"))  # unknown: OK


def test_prefetch_attributes_reach_the_mount_and_bad_ones_are_refused(make_plugin, backend, workdir):
    plugin = make_plugin()
    ref = backend.image("inline")
    target = target_of(workdir, "pod-p")
    publish(plugin, target, context=dict(EPHEMERAL, image=ref, prefetchAll="true", prefetchRate="16M",
                                         profile="none", clusterCache="off"))
    assert read_disk(target) == backend.expected(ref)
    [pid] = _mount_pids(target)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    at = argv.index(b"--prefetch-all")
    assert argv[at:at + 4] == [b"--prefetch-all", b"--prefetch-rate=16M", b"--prefetch-profile=none",
                               b"--cluster-cache=off"], argv
    [record] = plugin.records()
    assert record["attributes"] == {"prefetchAll": "true", "prefetchRate": "16M", "profile": "none",
                                    "clusterCache": "off"}
    unpublish(plugin, target)
    assert_clean(plugin, target)

    bad = target_of(workdir, "pod-q")
    err = rpc_error(publish, plugin, bad, context=dict(EPHEMERAL, image=ref, prefetchRate="fast"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "prefetchRate" in err.details()
    assert not bad.exists() and plugin.records() == []


def test_pre_provisioned_pv(make_plugin, backend, workdir):
    plugin = make_plugin()
    ref = backend.image("pv")
    target = target_of(workdir, "pod-pv")
    publish(plugin, target, volume_id=ref, context={}, mode="MULTI_NODE_READER_ONLY")
    assert read_disk(target) == backend.expected(ref)
    unpublish(plugin, target, volume_id=ref)
    assert_clean(plugin, target)

    for mode in ("SINGLE_NODE_WRITER", "MULTI_NODE_MULTI_WRITER"):
        err = rpc_error(publish, plugin, target, volume_id=ref, context={}, mode=mode)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "read-only" in err.details()
    err = rpc_error(publish, plugin, target, volume_id=ref, context={},
                    mode="MULTI_NODE_READER_ONLY", block=True)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "block" in err.details()
    assert_clean(plugin, target)


def test_private_image_with_a_dockerconfigjson_secret(make_plugin, backend, workdir):
    ref, good, bad, secret_word = backend.private("secret")
    plugin = make_plugin()
    target = target_of(workdir, "pod-private")
    publish(plugin, target, ref, secrets={".dockerconfigjson": good})
    assert read_disk(target) == backend.expected(ref)
    [cred] = plugin.secret_files()
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
    processes.assert_secret_absent(secret_word, cmdlines + [plugin.log_text()])
    unpublish(plugin, target)
    assert_clean(plugin, target)
    assert plugin.secret_files() == []

    # A wrong secret: a CSI auth error with a clear message, nothing left.
    bad_target = target_of(workdir, "pod-bad-secret")
    err = rpc_error(publish, plugin, bad_target, ref, secrets={".dockerconfigjson": bad})
    assert err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert ref.split(":v1")[0] in err.details()
    assert_clean(plugin, bad_target)
    assert plugin.records() == [] and plugin.secret_files() == []
    processes.assert_secret_absent(secret_word, [plugin.log_text(), err.details()])

    # Not a dockerconfigjson Secret at all.
    err = rpc_error(publish, plugin, bad_target, ref, secrets={"password": secret_word})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    processes.assert_secret_absent(secret_word, [err.details(), plugin.log_text()])


def test_unknown_image_is_not_found(make_plugin, backend, workdir):
    plugin = make_plugin()
    target = target_of(workdir, "pod-unknown")
    ref = backend.unknown()
    err = rpc_error(publish, plugin, target, ref)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert ref.rsplit(":", 1)[0] in err.details()
    assert_clean(plugin, target)
    assert plugin.records() == []
    err = rpc_error(publish, plugin, target, context=dict(EPHEMERAL))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "image" in err.details()


def test_ten_volumes_of_one_image_at_once(make_plugin, backend, workdir):
    plugin = make_plugin()
    ref = backend.image("many")
    targets = [target_of(workdir, f"pod-{i}") for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda t: publish(plugin, t, ref), targets))
    expected = backend.expected(ref)
    for t in targets:
        assert read_disk(t) == expected
    assert len(plugin.records()) == 10
    assert len({r["digest"] for r in plugin.records()}) == 1
    for _ in range(2):  # repeated unpublish is fine
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda t: unpublish(plugin, t), targets))
    for t in targets:
        assert_clean(plugin, t)
    assert plugin.records() == []


def test_plugin_restart_adopts_repairs_and_drops(make_plugin, backend, workdir):
    plugin = make_plugin()
    ref = backend.image("restart")
    kept, died, gone = (target_of(workdir, n) for n in ("pod-kept", "pod-died", "pod-gone"))
    for t in (kept, died, gone):
        publish(plugin, t, ref)
    plugin.kill9()

    # While the plugin is down: one mount process dies, one target vanishes.
    [pid] = _mount_pids(died)
    _kill_mount(pid)
    assert processes.wait_pid_gone(pid, 10)
    [gone_pid] = _mount_pids(gone)
    _kill_mount(gone_pid)
    processes.unmount(gone, lazy=True)
    gone.rmdir()

    plugin = make_plugin()
    expected = backend.expected(ref)
    assert read_disk(kept) == expected
    assert read_disk(died) == expected
    assert {r["targetPath"] for r in plugin.records()} == {str(kept), str(died)}
    assert "1 adopted, 1 remounted, 1 dropped" in plugin.log_text()
    for t in (kept, died, gone):
        unpublish(plugin, t)
        assert_clean(plugin, t)


def test_a_killed_mount_process_is_repaired(make_plugin, backend, workdir):
    plugin = make_plugin()
    ref = backend.image("repair")
    target = target_of(workdir, "pod-repair")
    publish(plugin, target, ref)
    [record] = plugin.records()
    [pid] = _mount_pids(target)
    assert record["mountPid"] == pid
    _kill_mount(pid)
    processes.wait_pid_gone(pid, 10)
    wait_until(lambda: read_disk(target) == backend.expected(ref), timeout=30,
               what="the plugin to remount the volume")
    # The record is saved just after the new mount answers; wait for it too.
    wait_until(lambda: plugin.records()[0]["mountPid"] not in (0, pid), timeout=10,
               what="the plugin to record the new mount process")
    [record] = plugin.records()
    assert record["mountPid"] == _mount_pids(target)[0]
    unpublish(plugin, target)
    assert_clean(plugin, target)


def test_a_killed_serving_process_is_taken_over_without_a_remount(make_plugin, backend, workdir):
    """A volume is a kept mount (docs/keeper.md): SIGKILL to its serving process
    is a takeover, invisible to a reader holding disk.img open and to the plugin."""
    plugin = make_plugin()
    ref = backend.image("takeover")
    target = target_of(workdir, "pod-takeover")
    publish(plugin, target, ref)
    [record] = plugin.records()
    [keeper] = _mount_pids(target)
    assert record["mountPid"] == keeper
    expected = backend.expected(ref)
    with open(target / "disk.img", "rb") as f:
        assert f.read() == expected
        for _ in range(2):
            servers = [int(p.name) for p in Path("/proc").glob("[0-9]*")
                       if (p / "stat").exists() and _parent_of(int(p.name)) == keeper]
            assert len(servers) == 1, servers
            os.kill(servers[0], signal.SIGKILL)
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            f.seek(0)
            assert f.read() == expected  # the same open file, served by the next process
    assert _mount_pids(target) == [keeper]
    assert plugin.records()[0]["mountPid"] == keeper
    unpublish(plugin, target)
    assert_clean(plugin, target)


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_plugin_of_another_version_restarts_the_volumes_it_adopts(make_plugin, backend, workdir):
    """The plugin restarted with a version other than the one that published a
    volume hands the volume to a serving process of its own (`oci-fs restart`):
    the pod's open disk.img reads on, the keeper stays. The older version is
    stood for by editing the record while the plugin is down."""
    plugin = make_plugin()
    ref = backend.image("upgrade")
    target = target_of(workdir, "pod-upgrade")
    publish(plugin, target, ref)
    [record] = plugin.records()
    assert record["ocifsVersion"]
    [keeper] = _mount_pids(target)
    state = json.loads(processes.run_ocifs("status", "--json", target).stdout)[0]
    expected = backend.expected(ref)
    with open(target / "disk.img", "rb") as f:
        assert f.read() == expected
        plugin.kill9()
        [path] = (plugin.state_dir / "volumes").glob("*.json")
        path.write_text(json.dumps(dict(record, ocifsVersion="0.0.1-old")))
        plugin = make_plugin()
        assert "oci-fs 0.0.1-old -> " in plugin.log_text()
        new = json.loads(processes.run_ocifs("status", "--json", target).stdout)[0]
        assert new["server_pid"] != state["server_pid"] and new["takeovers"] == 1
        assert new["keeper_pid"] == keeper
        assert plugin.records()[0]["ocifsVersion"] == record["ocifsVersion"]
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        f.seek(0)
        assert f.read() == expected
    unpublish(plugin, target)
    assert_clean(plugin, target)


def test_a_disk_of_a_kubevirt_vm_export_by_its_disk_attribute(make_plugin, backend, workdir):
    """A VM export artifact (docs/bare-disks.md): disk layers without a tar; `disk` picks one."""
    registry, repo = backend.registry, "csi/vm-export"
    disks = {"rootdisk": disk_bytes("root", 2 << 20), "datadisk": disk_bytes("data", 1 << 20)}
    config = images.Blob(json.dumps({"kind": "VirtualMachine"}).encode(),
                         "application/vnd.kubevirt.virtualmachine.config.v1+json")
    layers = [images.Blob(images.compress(data, "zstd"), "application/vnd.kubevirt.disk.raw+zstd",
                          {"io.kubevirt.disk.name": name, "io.kubevirt.disk.size": f"{len(data) >> 10}Ki",
                           "org.opencontainers.image.title": f"{name}.raw.zst"})
              for name, data in disks.items()]
    client = registry.client(None)
    for blob in [config, *layers]:
        client.put_blob(repo, blob.data, blob.digest)
    manifest = {"schemaVersion": 2, "mediaType": images.OCI_MANIFEST,
                "artifactType": "application/vnd.kubevirt.virtualmachine.v1",
                "config": config.descriptor(), "layers": [layer.descriptor() for layer in layers]}
    client.put_manifest(repo, "v1", json.dumps(manifest).encode(), images.OCI_MANIFEST)
    ref = registry.ref(repo, "v1")

    plugin = make_plugin()
    target = target_of(workdir, "vm-export")
    publish(plugin, target, ref, context=dict(EPHEMERAL, image=ref, disk="rootdisk"))
    assert os.listdir(target) == ["disk.img"]
    assert read_disk(target) == disks["rootdisk"]
    [record] = plugin.records()
    assert record["attributes"]["disk"] == "rootdisk"
    unpublish(plugin, target)
    assert_clean(plugin, target)
    # Two disks and no choice: refused, listing them.
    other = target_of(workdir, "vm-export-2")
    err = rpc_error(publish, plugin, other, ref)
    assert "rootdisk" in err.details() and "datadisk" in err.details(), err.details()
