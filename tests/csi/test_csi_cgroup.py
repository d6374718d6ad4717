"""The plugin's container restarted the way a container runtime does it: every
process of the container's cgroup killed at once (`cgroup.kill`).

The test makes cgroups under the cgroup v2 hierarchy /sys/fs/cgroup/unified:
one stands for the plugin container's cgroup (the plugin is started in it),
one is the plugin's `--mount-cgroup` (docs/kubernetes.md). A reader holds the
published volume's disk.img open and compares every byte while the plugin's
cgroup is killed and the plugin started again. The control case, without
--mount-cgroup, shows what the kill does to mounts that live in the plugin's
cgroup. Every cgroup the test makes is removed (its processes killed first),
whatever happens.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from csi_client import Plugin
from support import processes
from test_csi import (_mount_pids, assert_clean, backend, publish, target_of,  # noqa: F401 (fixture)
                      unpublish, wait_until)

UNIFIED = Path("/sys/fs/cgroup/unified")
MiB = 1 << 20


def _populated(cg: Path) -> bool:
    return "populated 1" in (cg / "cgroup.events").read_text()


def _kill_cgroup(cg: Path) -> None:
    (cg / "cgroup.kill").write_text("1")


def _remove_cgroup(cg: Path) -> None:
    """Kills what runs in `cg` and below, and removes it and its children."""
    if not cg.exists():
        return
    _kill_cgroup(cg)
    deadline = time.monotonic() + 20
    while _populated(cg) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        child.rmdir()
    cg.rmdir()


def _cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


@pytest.fixture
def cgroups():
    """(plugin cgroup, mount cgroup root), both under /sys/fs/cgroup/unified."""
    assert UNIFIED.is_dir() and (UNIFIED / "cgroup.procs").exists(), \
        f"{UNIFIED} is not a cgroup v2 hierarchy on this machine"
    tag = f"ocifs-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    plugin_cg, mounts_cg = UNIFIED / f"{tag}-plugin", UNIFIED / f"{tag}-mounts"
    try:
        plugin_cg.mkdir()
        assert (plugin_cg / "cgroup.kill").exists(), "no cgroup.kill (Linux 5.14+) in a cgroup v2 child"
        yield plugin_cg, mounts_cg  # the plugin creates mounts_cg itself
    finally:
        for cg in (plugin_cg, mounts_cg):
            _remove_cgroup(cg)


@pytest.fixture
def plugins(backend, workdir):  # noqa: F811 (fixture)
    """Starts `oci-fs csi` in a cgroup: a shell moves itself there and execs the plugin."""
    started: list[Plugin] = []

    def start(cg: Path, *extra: str) -> Plugin:
        command = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg / "cgroup.procs"), backend.binary, "csi"]
        p = Plugin(command, workdir, backend.plugin_extra + list(extra))
        started.append(p)
        return p.start()

    yield start
    for p in started:
        p.stop()
    for target in processes.mounts_under(workdir):
        processes.unmount(target, lazy=True)


class Reader(threading.Thread):
    """Keeps disk.img open and reads it at changing offsets (page cache dropped
    first, so every read reaches the mount), comparing with `data`."""

    def __init__(self, path: Path, data: bytes):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY)
        self.data = data
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.errnos: list[int] = []
        self.reads = 0
        self.longest = 0.0

    def run(self):
        off = 0
        while not self.stop_event.is_set():
            n = 256 * 1024
            os.posix_fadvise(self.fd, off - off % 4096, n + 8192, os.POSIX_FADV_DONTNEED)
            start = time.monotonic()
            try:
                got = os.pread(self.fd, n, off)
            except OSError as e:
                self.errors.append(f"pread({n} at {off}): {e}")
                self.errnos.append(e.errno)
                time.sleep(0.05)
                if len(self.errors) > 20:
                    return
                continue
            self.longest = max(self.longest, time.monotonic() - start)
            if got != self.data[off:off + len(got)]:
                self.errors.append(f"wrong bytes: {n} at {off}")
            elif len(got) < n:
                self.errors.append(f"short read: {len(got)} of {n} at {off}")
            self.reads += 1
            off = (off + 1234567) % (len(self.data) - n)

    def wait_reads(self, count: int, timeout: float = 60):
        target = self.reads + count
        wait_until(lambda: self.reads >= target or len(self.errors) > 20, timeout, f"{count} more reads")

    def close(self):
        self.stop_event.set()
        self.join(60)
        assert not self.is_alive(), "the reader hung for more than 60 s"
        try:
            os.close(self.fd)
        except OSError:  # the flush of a dead mount's file: ENOTCONN
            pass


def test_cgroup_kill_of_the_plugin_leaves_its_mounts_serving(plugins, backend, workdir, cgroups):  # noqa: F811
    plugin_cg, mounts_cg = cgroups
    plugin = plugins(plugin_cg, "--mount-cgroup", str(mounts_cg))
    assert _cgroup_of(plugin.proc.pid) == "/" + plugin_cg.name
    ref = backend.image("cgroup-kill")
    target = target_of(workdir, "pod-cgroup")
    publish(plugin, target, ref)
    [keeper] = _mount_pids(target)
    volume_cg = _cgroup_of(keeper)
    assert volume_cg.startswith(f"/{mounts_cg.name}/"), volume_cg  # the volume's own cgroup
    assert (UNIFIED / volume_cg.lstrip("/")).parent == mounts_cg
    expected = backend.expected(ref)

    reader = Reader(target / "disk.img", expected)
    reader.start()
    try:
        reader.wait_reads(20)
        old_pid = plugin.proc.pid
        _kill_cgroup(plugin_cg)  # what the runtime does to the container
        assert plugin.proc.wait(20) == -9
        wait_until(lambda: not _populated(plugin_cg), 20, "the plugin's cgroup to empty")
        assert processes.wait_pid_gone(old_pid, 10)
        assert _mount_pids(target) == [keeper]  # the keeper lives on
        reader.wait_reads(20)  # reads while no plugin runs
        plugin.stop()

        plugin = plugins(plugin_cg, "--mount-cgroup", str(mounts_cg))
        wait_until(lambda: "1 adopted, 0 remounted, 0 dropped" in plugin.log_text(), 30, "recovery")
        reader.wait_reads(20)
    finally:
        reader.close()
    assert not reader.errors, reader.errors[:5]
    print(f"\ncgroup.kill of the plugin: {reader.reads} reads, none failed; longest read "
          f"{reader.longest * 1000:.0f} ms")
    assert _mount_pids(target) == [keeper]

    unpublish(plugin, target)
    assert_clean(plugin, target)
    assert not (UNIFIED / volume_cg.lstrip("/")).exists(), "the volume's cgroup was not removed"
    assert [p for p in mounts_cg.iterdir() if p.is_dir()] == []


def test_without_a_mount_cgroup_the_kill_ends_the_mounts_and_the_plugin_remounts(
        plugins, backend, workdir, cgroups):  # noqa: F811
    """The control case: the mounts live in the plugin's cgroup and die with it."""
    plugin_cg, _ = cgroups
    plugin = plugins(plugin_cg)
    ref = backend.image("cgroup-kill-control")
    target = target_of(workdir, "pod-cgroup-control")
    publish(plugin, target, ref)
    [keeper] = _mount_pids(target)
    assert _cgroup_of(keeper) == "/" + plugin_cg.name
    expected = backend.expected(ref)
    reader = Reader(target / "disk.img", expected)
    reader.start()
    try:
        reader.wait_reads(10)
        _kill_cgroup(plugin_cg)
        assert plugin.proc.wait(20) == -9
        assert processes.wait_pid_gone(keeper, 10)
        wait_until(lambda: reader.errors, 30, "the reader to fail")
    finally:
        reader.close()
    assert errno.ENOTCONN in reader.errnos or errno.ECONNABORTED in reader.errnos \
        or any(e.startswith("short read") for e in reader.errors), reader.errors[:3]
    assert not [e for e in reader.errors if e.startswith("wrong bytes")], reader.errors[:3]
    plugin.stop()
    plugin = plugins(plugin_cg)
    wait_until(lambda: "0 adopted, 1 remounted, 0 dropped" in plugin.log_text(), 30, "recovery")
    with open(target / "disk.img", "rb") as f:  # a new open of the new mount
        assert f.read() == expected
    unpublish(plugin, target)
    assert_clean(plugin, target)
