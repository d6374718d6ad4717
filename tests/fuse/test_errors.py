"""`oci-fs mount` failures (docs/cli.md): a clear `oci-fs: ...` message on stderr,
a non-zero exit (1 when the image cannot be mounted), no mount left in
/proc/self/mountinfo and no oci-fs process left behind."""

from __future__ import annotations

import errno
import os
import time

import pytest

from support import images
from support.fuse_checks import disk_bytes, ocifs_pids_for
from support.images import Dir, File, Image, Layer, make_tar
from support.processes import is_mounted, unmount
from support.registry import free_port

TLS = "--tls-verify=false"


def failed_mount(ocifs, ref: str, mnt, cache, *opts: str):
    """Runs the daemonizing mount expecting failure; checks nothing is left behind."""
    res = ocifs("mount", TLS, "--cache-dir", cache, *opts, ref, mnt, check=False, kill_group=False,
                timeout=90)
    assert res.returncode != 0, res.describe()
    assert not is_mounted(mnt), res.describe()
    assert ocifs_pids_for(mnt) == [], "an oci-fs process outlived the failed mount"
    assert res.stderr.startswith("oci-fs: "), res.describe()
    assert len(res.stderr.strip().splitlines()) <= 3, res.describe()  # a message, not a log dump
    return res


@pytest.fixture
def mnt(workdir):
    d = workdir / "mnt"
    d.mkdir()
    yield d
    assert os.listdir(d) == [] and not is_mounted(d)


def test_an_unknown_tag_fails_with_a_message_naming_it(ocifs, registry, repo, mnt, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 1), "gzip"))
    res = failed_mount(ocifs, registry.ref(repo, "nosuchtag"), mnt, workdir / "cache")
    assert res.returncode == 1
    assert "nosuchtag" in res.stderr, res.describe()


def test_an_unknown_digest_fails_with_a_message_naming_it(ocifs, registry, repo, mnt, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 2), "gzip"))
    digest = "sha256:" + "0" * 64
    res = failed_mount(ocifs, registry.ref(repo, digest=digest), mnt, workdir / "cache")
    assert res.returncode == 1
    assert digest in res.stderr, res.describe()


def test_an_image_without_a_disk_directory_fails_with_no_disk(ocifs, registry, repo, mnt, workdir):
    img = Image([Layer.from_entries([Dir("etc"), File("etc/hostname", b"vm\n")], "gzip")])
    images.push(registry, repo, "v1", img)
    res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache")
    assert res.returncode == 1
    assert "no disk" in res.stderr, res.describe()


def two_disk_image(kind: str) -> Image:
    tar = make_tar([Dir("disk"), File("disk/a.img", b"a" * 5000), File("disk/b.qcow2", b"b" * 7000)])
    return Image([Layer.from_tar(tar, kind, frame_size=4096)])  # several zstd frames: random access


@pytest.mark.parametrize("kind", ["none", "zstd-multiframe"])
def test_two_disks_under_disk_fail_with_a_message_naming_both(ocifs, registry, repo, mnt, workdir, kind):
    images.push(registry, repo, "v1", two_disk_image(kind))
    res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache")
    assert res.returncode == 1
    assert "a.img" in res.stderr and "b.qcow2" in res.stderr, res.describe()
    assert "--disk-path" in res.stderr, res.describe()


def test_two_disks_in_a_gzip_layer_seen_first_time_fail_reads_then_fail_the_next_mount(
        ocifs, registry, repo, mnt, workdir):
    """A gzip layer with no index yet is mounted as soon as the disk's entry is
    read (docs/cli.md); when the background pass finds a second disk, reads
    fail with EIO from then on, and the next mount (index complete) is refused."""
    images.push(registry, repo, "v1", two_disk_image("gzip"))
    ref, cache, log = registry.ref(repo, "v1"), workdir / "cache", workdir / "mount.log"
    res = ocifs("mount", TLS, "--cache-dir", cache, "--log-file", log, ref, mnt, check=False, timeout=90)
    assert res.returncode == 0, res.describe()
    try:
        deadline = time.monotonic() + 20
        while True:
            fd = os.open(mnt / "disk.img", os.O_RDONLY)
            try:
                # Pages read before the verdict stay in the kernel's page cache: drop them.
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.pread(fd, 4096, 0)
            except OSError as e:
                assert e.errno == errno.EIO
                break
            finally:
                os.close(fd)
            assert time.monotonic() < deadline, "reads never failed"
            time.sleep(0.1)
        text = log.read_text()
        assert "a.img" in text and "b.qcow2" in text, text
    finally:
        assert unmount(mnt)
    again = failed_mount(ocifs, ref, mnt, cache)
    assert "a.img" in again.stderr and "b.qcow2" in again.stderr, again.describe()


def test_a_mount_point_that_does_not_exist_fails_with_a_message_naming_it(ocifs, registry, repo, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 3), "gzip"))
    missing = workdir / "no" / "such" / "dir"
    res = failed_mount(ocifs, registry.ref(repo, "v1"), missing, workdir / "cache")
    assert str(missing) in res.stderr, res.describe()
    assert not missing.exists(), "the mount created the missing mount point"


def test_an_unreachable_registry_fails_with_a_message_naming_it(ocifs, mnt, workdir):
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    res = failed_mount(ocifs, f"{host}/t/disk:v1", mnt, workdir / "cache")
    assert res.returncode == 1
    assert host in res.stderr, res.describe()
    assert res.seconds < 60, "gave up too slowly"


@pytest.mark.parametrize("opts", [["-o", "no_such_option"], ["--mode", "weird"]])
def test_an_unknown_mount_option_or_mode_is_a_usage_error_exit_2(opts, ocifs, registry, repo, mnt, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 4), "gzip"))
    res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache", *opts)
    assert opts[1] in res.stderr, res.describe()
    assert res.returncode == 2, res.describe()  # docs/cli.md: 2 for a usage error


def test_a_malformed_access_profile_fails_the_mount_naming_the_file_and_line(ocifs, registry, repo, mnt, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 1), "none"))
    bad = workdir / "bad.profile"
    bad.write_text("oci-fs-profile 1\nchunk-size 1048576\nblob sha256:" + "a" * 64 + " 2\n7\n")
    res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache", "--prefetch-profile", bad)
    assert res.returncode == 1
    assert str(bad) in res.stderr and "declares 2 chunks but lists 1" in res.stderr, res.describe()
    res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache", "--prefetch-profile",
                       workdir / "missing.profile")
    assert "missing.profile does not exist" in res.stderr, res.describe()


def test_a_chunk_size_that_is_not_a_power_of_two_is_a_usage_error(ocifs, registry, repo, mnt, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 1), "none"))
    res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache", "--chunk-size", "3000")
    assert res.returncode == 2
    assert "--chunk-size must be a power of two" in res.stderr, res.describe()


def test_a_bad_decode_thread_count_is_a_usage_error(ocifs, registry, repo, mnt, workdir):
    images.push(registry, repo, "v1", images.containerdisk(disk_bytes(10_000, 1), "none"))
    for bad in ("-1", "65", "many"):
        res = failed_mount(ocifs, registry.ref(repo, "v1"), mnt, workdir / "cache", "--decode-threads", bad)
        assert res.returncode == 2
        assert f"--decode-threads must be auto or a number from 0 to 64, not '{bad}'" in res.stderr, res.describe()
