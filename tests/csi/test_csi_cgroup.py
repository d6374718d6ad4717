"""The plugin's container restarted the way a container runtime does it: every
process of the container's cgroup killed at once (`cgroup.kill`).

The tests make cgroups under the cgroup v2 hierarchy /sys/fs/cgroup/unified:
one stands for the plugin container's cgroup (the plugin is started in it),
one is the plugin's `--mount-cgroup` (docs/kubernetes.md). A reader holds the
published volume's disk.img open and compares every byte while the plugin's
cgroup is killed and the plugin started again. The control case, without
--mount-cgroup, shows what the kill does to mounts that live in the plugin's
cgroup. The namespace tests start the plugin in a cgroup namespace of its own
(`unshare --cgroup`) and in mount namespaces of its own (`unshare --mount`).
Every cgroup the tests make is removed (its processes killed first), and every
mount they make unmounted, whatever happens.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
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

    def start(cg: Path, *extra: str, wrapper: list[str] | None = None) -> Plugin:
        """`wrapper`: the command that moves itself to `cg` and execs its arguments."""
        command = (wrapper or ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg / "cgroup.procs")]) \
            + [backend.binary, "csi"]
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


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (every thread's children)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _assert_volume_in_its_cgroup(target: Path, mounts_cg: Path) -> tuple[int, str]:
    """The keeper of `target` and the serving processes it started all run in
    mounts_cg/<key> (as the root cgroup namespace names it); returns (keeper, path)."""
    [keeper] = _mount_pids(target)
    volume_cg = _cgroup_of(keeper)
    assert volume_cg.startswith(f"/{mounts_cg.name}/"), volume_cg
    key = volume_cg.rsplit("/", 1)[1]
    assert len(key) == 16 and (mounts_cg / key).is_dir(), volume_cg
    tree = _tree(keeper)
    assert len(tree) >= 2, f"the keeper {keeper} serves with no child process: {tree}"
    assert {p: _cgroup_of(p) for p in tree} == {p: volume_cg for p in tree}
    procs = {int(p) for p in (mounts_cg / key / "cgroup.procs").read_text().split()}
    assert procs == set(tree), (procs, tree)
    return keeper, volume_cg


def test_a_plugin_in_its_own_cgroup_namespace_puts_mounts_in_their_cgroups(
        plugins, backend, workdir, cgroups):  # noqa: F811
    """containerd's default on cgroup v2: the plugin's container has a private
    cgroup namespace whose root is the container's cgroup. --mount-cgroup names
    a directory of the host's hierarchy; the volume's processes must land in
    DIR/<key> as the host sees it, not in a path relative to the plugin's
    namespace root (which would be a cgroup under the plugin's own)."""
    plugin_cg, mounts_cg = cgroups
    command = ["sh", "-c", 'echo $$ > "$0" && exec unshare --cgroup "$@"', str(plugin_cg / "cgroup.procs")]
    p = plugins(plugin_cg, "--mount-cgroup", str(mounts_cg), wrapper=command)
    assert _ns(p.proc.pid, "cgroup") != _ns("self", "cgroup"), "the plugin is not in its own cgroup namespace"
    assert _cgroup_of(p.proc.pid) == "/" + plugin_cg.name
    ref = backend.image("cgroup-ns")
    target = target_of(workdir, "pod-cgroup-ns")
    publish(p, target, ref)
    keeper, volume_cg = _assert_volume_in_its_cgroup(target, mounts_cg)
    try:  # the child joins PID 1's cgroup namespace if the plugin can see it is another
        pid1 = _ns(1, "cgroup")
    except PermissionError:  # this machine's /proc/1/ns: the plugin cannot tell, and stays
        pid1 = _ns(p.proc.pid, "cgroup")
    assert {_ns(q, "cgroup") for q in _tree(keeper)} == {pid1}
    assert [c for c in plugin_cg.iterdir() if c.is_dir()] == []  # nothing made under the plugin's cgroup
    assert (target / "disk.img").read_bytes() == backend.expected(ref)
    unpublish(p, target)
    assert_clean(p, target)
    assert not (UNIFIED / volume_cg.lstrip("/")).exists(), "the volume's cgroup was not removed"
    assert [c for c in mounts_cg.iterdir() if c.is_dir()] == []


def _mounted_in(pid: int, target: Path) -> bool:
    """Whether `target` is a mount point in the mount namespace of `pid`."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        if line.split()[4] == str(target):
            return True
    return False


def test_a_plugin_in_its_own_cgroup_namespace_joins_pid_1s_before_the_move(
        plugins, backend, workdir, cgroups):  # noqa: F811
    """The branch for a cgroup namespace that is not PID 1's: the launched child
    joins PID 1's cgroup namespace (setns) before it writes itself into the
    volume's cgroup. On this machine /proc/1/ns is unreadable even to root (the
    VM's init), so PID 1 is played by a stand-in: the plugin runs in a private
    mount namespace whose /proc/1 is a bind mount of /proc/<a sleep> that stays
    in the test's (root) cgroup namespace, as the host's init does for a
    container with hostPID. The mount is then visible only in the plugin's
    mount namespace: the test reads it through /proc/<keeper>/root."""
    plugin_cg, mounts_cg = cgroups
    inner = 'sleep 100000 & mount --bind /proc/$! /proc/1 && exec unshare --cgroup "$@"'
    command = ["sh", "-c", 'echo $$ > "$0" && inner="$1" && shift && '
               'exec unshare --mount --propagation private sh -c "$inner" sh "$@"',
               str(plugin_cg / "cgroup.procs"), inner]
    # (the stand-in sleep runs in plugin_cg: the fixture's cgroup.kill ends it)
    p = plugins(plugin_cg, "--mount-cgroup", str(mounts_cg), wrapper=command)
    root_ns = _ns("self", "cgroup")
    plugin_ns = _ns(p.proc.pid, "cgroup")
    assert plugin_ns != root_ns, "the plugin is not in its own cgroup namespace"
    assert _ns(p.proc.pid, "mnt") != _ns("self", "mnt")
    ref = backend.image("cgroup-ns-join")
    target = target_of(workdir, "pod-cgroup-ns-join")
    publish(p, target, ref)
    keeper, volume_cg = _assert_volume_in_its_cgroup(target, mounts_cg)
    # The keeper and its servers joined the stand-in's (root) cgroup namespace.
    assert {_ns(q, "cgroup") for q in _tree(keeper)} == {root_ns}
    assert not processes.is_mounted(target)  # not in the test's mount namespace ...
    assert _mounted_in(keeper, target)  # ... in the plugin's
    data = Path(f"/proc/{keeper}/root{target}/disk.img").read_bytes()
    assert data == backend.expected(ref)
    unpublish(p, target)
    assert not _mounted_in(p.proc.pid, target)
    assert processes.wait_pid_gone(keeper, 20), "the keeper did not exit after the unmount"
    assert not (UNIFIED / volume_cg.lstrip("/")).exists(), "the volume's cgroup was not removed"
    assert [c for c in mounts_cg.iterdir() if c.is_dir()] == []


@pytest.fixture
def shared_workdir(workdir):
    """`workdir` bind-mounted on itself and made a shared mount (like kubelet's
    /var/lib/kubelet with Bidirectional propagation): mounts made below it in
    a mount namespace copied with `unshare --mount --propagation unchanged`
    appear in the test's namespace and in every other such copy."""
    subprocess.run(["mount", "--bind", str(workdir), str(workdir)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(workdir)], check=True)
        yield workdir
    finally:
        for mp in processes.mounts_under(workdir):  # deepest first; the bind itself last
            subprocess.run(["umount", "-l", mp], check=False)


def test_a_plugin_in_another_mount_namespace_restarts_a_volume_with_its_own_binary(
        shared_workdir, plugins, backend, workdir, cgroups):  # noqa: F811
    """A DaemonSet update: the new plugin's container has a mount namespace of
    its own, the volume's keeper stays in the old container's. The new plugin,
    of another version, runs `oci-fs restart --binary /proc/<its pid>/root/<its
    binary>` (mount_launcher.cc): the keeper must exec the new plugin's binary,
    which exists only in the new plugin's mount namespace (a tmpfs there
    holding a copy), so nothing but the path through /proc/<pid>/root reaches it.
    The old version is stood for by editing the record while no plugin runs."""
    plugin_cg, mounts_cg = cgroups
    procs = str(plugin_cg / "cgroup.procs")
    old = plugins(plugin_cg, "--mount-cgroup", str(mounts_cg), wrapper=[
        "sh", "-c", 'echo $$ > "$0" && exec unshare --mount --propagation unchanged "$@"', procs])
    old_mnt = _ns(old.proc.pid, "mnt")
    assert old_mnt != _ns("self", "mnt")
    ref = backend.image("mount-ns-restart")
    target = target_of(workdir, "pod-mount-ns")
    publish(old, target, ref)
    assert processes.is_mounted(target), "the plugin's mount did not propagate to the test's namespace"
    keeper, volume_cg = _assert_volume_in_its_cgroup(target, mounts_cg)
    assert _ns(keeper, "mnt") == old_mnt
    [record] = old.records()
    state = json.loads(processes.run_ocifs("status", "--json", str(target)).stdout)[0]
    original = os.stat(backend.binary)
    assert os.stat(f"/proc/{state['server_pid']}/exe").st_ino == original.st_ino
    expected = backend.expected(ref)

    bin_dir = workdir.parent / f"{workdir.name}-newbin"  # outside the shared mount: private
    bin_dir.mkdir()
    with open(target / "disk.img", "rb") as f:
        assert f.read() == expected
        _kill_cgroup(plugin_cg)  # the runtime stops the old container
        assert old.proc.wait(20) == -9
        old.stop()
        assert _mount_pids(target) == [keeper] and _ns(keeper, "mnt") == old_mnt
        [path] = (old.state_dir / "volumes").glob("*.json")
        path.write_text(json.dumps(dict(record, ocifsVersion="0.0.1-old")))

        # oci-fs and the plugin it execs for `oci-fs csi` (its sibling oci-fs-csi)
        inner = ('mount -t tmpfs ocifs-test-bin "$0" && cp "$1" "$0/oci-fs" && cp "$1-csi" "$0/oci-fs-csi" '
                 '&& shift && exec "$0/oci-fs" "$@"')
        new = plugins(plugin_cg, "--mount-cgroup", str(mounts_cg), wrapper=[
            "sh", "-c", 'echo $$ > "$0" && inner="$1" && dir="$2" && shift 2 && '
            'exec unshare --mount --propagation unchanged sh -c "$inner" "$dir" "$@"', procs, inner, str(bin_dir)])
        assert _ns(new.proc.pid, "mnt") not in (old_mnt, _ns("self", "mnt"))
        new_bin = f"/proc/{new.proc.pid}/root{bin_dir}/oci-fs"
        copy = os.stat(new_bin)
        assert copy.st_ino != original.st_ino
        assert not Path(f"/proc/{keeper}/root{bin_dir}/oci-fs").exists()  # not in the keeper's namespace
        wait_until(lambda: "1 adopted, 0 remounted, 0 dropped" in new.log_text(), 60, "recovery")
        assert "oci-fs 0.0.1-old -> " in new.log_text(), new.log_text()
        now = json.loads(processes.run_ocifs("status", "--json", str(target)).stdout)[0]
        assert now["keeper_pid"] == keeper and now["server_pid"] != state["server_pid"]
        assert now["takeovers"] == 1
        exe = os.stat(f"/proc/{now['server_pid']}/exe")
        assert (exe.st_dev, exe.st_ino) == (copy.st_dev, copy.st_ino), "the server does not run the new binary"
        assert _ns(now["server_pid"], "mnt") == old_mnt  # it stays in the keeper's namespace
        assert _cgroup_of(now["server_pid"]) == volume_cg  # and in the volume's cgroup
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        f.seek(0)
        assert f.read() == expected
    assert new.records()[0]["ocifsVersion"] == record["ocifsVersion"]
    unpublish(new, target)
    assert_clean(new, target)
    assert [c for c in mounts_cg.iterdir() if c.is_dir()] == []
