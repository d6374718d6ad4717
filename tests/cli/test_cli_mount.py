"""`oci-fs mount` as docs/cli.md describes it, through the harness' Mount helper:
returns once mounted, exposes disk.img, exits 1 leaving no mount, 2 on usage errors,
and the daemon ends at unmount. (Deeper FUSE tests live in tests/fuse.)"""

from __future__ import annotations

import json
import os

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
