"""`oci-fs mount` as docs/cli.md describes it, through the harness' Mount helper:
returns once mounted, exposes disk.img, exits 1 leaving no mount, 2 on usage errors,
and the daemon ends at unmount. (Deeper FUSE tests live in tests/fuse.)"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import subprocess
import time

import pytest

from support import images, processes
from support.processes import Mount, is_mounted


@pytest.fixture
def disk_ref(registry, repo):
    disk = os.urandom(700_000) + b"tail"
    img = images.containerdisk(disk, "gzip")
    images.push(registry, repo, "v1", img)
    return registry.ref(repo, "v1"), disk, img


def test_mount_returns_once_disk_img_is_readable_and_unmount_ends_the_daemon(
        ocifs, disk_ref, workdir):
    ref, disk, _ = disk_ref
    mnt = workdir / "mnt"
    with Mount(ref, mnt, "--tls-verify=false", cache_dir=workdir / "cache", stats=True) as m:
        assert is_mounted(mnt)
        assert os.listdir(mnt) == ["disk.img"]
        assert os.stat(mnt / "disk.img").st_size == len(disk)
        assert (mnt / "disk.img").read_bytes() == disk
        pid = m.pid
    assert not is_mounted(mnt)
    assert pid is None or processes.wait_pid_gone(pid, 1)
    assert m.stats is not None and m.stats["blob_requests"] >= 1
    assert set(m.stats) >= {"blob_requests", "blob_bytes", "cache_hits", "cache_misses"}


def test_mount_in_the_foreground_serves_until_unmounted(ocifs, disk_ref, workdir):
    ref, disk, _ = disk_ref
    mnt = workdir / "mnt"
    with Mount(ref, mnt, "--tls-verify=false", cache_dir=workdir / "cache", foreground=True):
        with open(mnt / "disk.img", "rb") as f:
            f.seek(len(disk) - 4)
            assert f.read() == b"tail"
    assert not is_mounted(mnt)


def test_mount_of_a_missing_image_exits_1_and_leaves_no_mount(ocifs, registry, workdir):
    mnt = workdir / "mnt"
    mnt.mkdir()
    res = ocifs("mount", "--tls-verify=false", "--cache-dir", workdir / "cache",
                registry.ref("t/absent", "v1"), mnt, check=False, kill_group=False)
    assert res.returncode == 1
    assert "oci-fs: " in res.stderr
    assert not is_mounted(mnt)


def test_mount_without_a_directory_is_a_usage_error(ocifs, registry):
    res = ocifs("mount", registry.ref("t/x", "v1"), check=False)
    assert res.returncode == 2


def test_a_second_mount_from_a_warm_cache_fetches_no_layer_bytes(ocifs, registry, disk_ref, workdir):
    ref, disk, img = disk_ref
    layer = img.layers[0].digest

    def layer_bytes():
        return sum(r.written for r in registry.blob_gets() if r.digest == layer)
    cache = workdir / "cache"
    with Mount(ref, workdir / "m1", "--tls-verify=false", cache_dir=cache, stats=True) as m:
        assert (m.dir / "disk.img").read_bytes() == disk
    before = layer_bytes()
    assert before >= img.layers[0].size
    with Mount(ref, workdir / "m2", "--tls-verify=false", cache_dir=cache, stats=True) as m:
        assert (m.dir / "disk.img").read_bytes() == disk
    assert layer_bytes() == before, json.dumps(m.stats)


def _prefetch_mount(registry, repo, workdir, stderr):
    """`oci-fs mount -f --prefetch-all` of a 12 MiB uncompressed disk (no gzip first pass streams it),
    paced to 4 MiB/s (about 3 s), with stderr to `stderr`; (proc, mnt, disk)."""
    disk = os.urandom(12 << 20)
    images.push(registry, repo, "v1", images.containerdisk(disk, "none"))
    mnt = workdir / "mnt"
    mnt.mkdir()
    proc = processes.spawn([processes.ocifs_bin(), "mount", "-f", "--prefetch-all", "--prefetch-rate", "4M",
                            "--tls-verify=false", "--cache-dir", workdir / "cache", registry.ref(repo, "v1"), mnt],
                           stdout=subprocess.DEVNULL, stderr=stderr, env=processes.isolated_env())
    return proc, mnt, disk


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """Bytes read from `fd` until `marker` and the end of its line, EOF or the deadline."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # a pty whose other end closed
            break
        if not chunk:
            break
        out += chunk
        at = out.find(marker)
        if at >= 0 and b"\n" in out[at:]:
            break
    return out


def _end_mount(proc, mnt) -> None:
    try:
        if is_mounted(mnt):
            processes.unmount(mnt)
        proc.wait(timeout=30)
    finally:
        processes.stop(proc)
        if is_mounted(mnt):
            processes.unmount(mnt, lazy=True)


def _check_prefetched(text: str, mnt, disk: bytes, registry, repo: str) -> None:
    end = re.search(r"oci-fs mount: prefetched ([0-9.]+) MiB in ([0-9.]+) s\n", text)
    assert end, text
    assert 12.0 <= float(end.group(1)) < 12.2, text  # the layer: a tar of the 12 MiB disk
    assert text.count("oci-fs mount: prefetched") == 1, text
    fetched = registry.blob_bytes(repo)
    assert fetched >= 12 << 20
    assert (mnt / "disk.img").read_bytes() == disk
    assert registry.blob_bytes(repo) == fetched  # the whole layer was in the cache


@contextlib.contextmanager
def _prefetching(registry, repo, workdir, terminal: bool):
    """Runs _prefetch_mount with stderr to a pipe or a terminal (a pty) and
    yields what it printed up to its "prefetched" line, checked by
    _check_prefetched; then unmounts, and the mount exits 0."""
    read_end, write_end = pty.openpty() if terminal else os.pipe()
    proc, mnt, disk = _prefetch_mount(registry, repo, workdir, write_end)
    os.close(write_end)
    try:
        text = _read_until(read_end, b"prefetched", 120).decode(errors="replace")
        _check_prefetched(text.replace("\r\n", "\n"), mnt, disk, registry, repo)
        yield text
    finally:
        _end_mount(proc, mnt)
        os.close(read_end)
    assert proc.returncode == 0


def test_a_foreground_prefetch_all_mount_reports_progress_in_lines(ocifs, registry, repo, workdir):
    with _prefetching(registry, repo, workdir, terminal=False) as text:
        lines = re.findall(r"oci-fs mount: prefetch: read ([0-9.]+) of ([0-9.]+) MiB\n", text)
        assert lines, text
        done = [float(d) for d, _ in lines]
        assert done == sorted(done) and done[-1] == float(lines[-1][1]), text  # it grows, and ends whole
        assert len(lines) <= 1 + 120 // 5 + 1, text  # sparse: every 5 s and the last
        assert "\r" not in text  # no bar into a pipe
        assert text.index("prefetch: read") < text.index("prefetched")


def test_a_foreground_prefetch_all_mount_draws_a_bar_on_a_terminal(ocifs, registry, repo, workdir):
    with _prefetching(registry, repo, workdir, terminal=True) as text:
        bars = re.findall(r"\rprefetching layers \[([# ]{30})\] ([0-9.]+) / ([0-9.]+) MiB", text)
        assert bars, repr(text)
        assert bars[-1][0] == "#" * 30 and bars[-1][1] == bars[-1][2], repr(text)
        assert "prefetch: read" not in text  # the bar, not lines
