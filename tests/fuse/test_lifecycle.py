"""How a mount ends and how else it starts: umount(8), fusermount3 -u, SIGTERM,
`-f`, mount(8) through mount.fuse3, -o allow_other, SIGUSR1 for the stats."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import images, processes
from support.fuse_checks import MiB, assert_same_bytes, disk_bytes, ocifs_pids_for, wait_stats
from support.processes import Mount, is_mounted

TLS = "--tls-verify=false"


@pytest.fixture(scope="module")
def disk(registry):
    data = disk_bytes(1 * MiB + 4321, seed=51)
    images.push(registry, "t/fuse-lifecycle", "v1", images.containerdisk(data, "gzip"))
    return registry.ref("t/fuse-lifecycle", "v1"), data


def assert_ended_cleanly(m: Mount, pid: int) -> None:
    assert processes.wait_pid_gone(pid, 10), "the daemon did not exit"
    assert not is_mounted(m.dir)
    assert os.listdir(m.dir) == []  # a plain directory again, no ENOTCONN


def wait_mounted(proc: subprocess.Popen, mnt: Path, timeout: float = 60) -> None:
    """Waits until the foreground mount `proc` serves `mnt`; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while not is_mounted(mnt):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no mount after {timeout}s"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [["umount"], ["fusermount3", "-u"]])
def test_unmounting_ends_the_daemon(how, ocifs, disk, workdir):
    ref, data = disk
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache", stats=True) as m:
        pid = m.pid
        assert pid is not None and ocifs_pids_for(m.dir) == [pid]
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
        r = subprocess.run([*how, str(m.dir)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert_ended_cleanly(m, pid)
    assert m.stats is not None and m.stats["blob_bytes"] > 0  # written at unmount


def test_sigterm_to_the_daemon_unmounts_cleanly(ocifs, disk, workdir):
    ref, data = disk
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache", stats=True) as m:
        pid = m.pid
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
        os.kill(pid, signal.SIGTERM)
        assert_ended_cleanly(m, pid)
    assert m.stats is not None and m.stats["blob_bytes"] > 0


def test_foreground_mode_serves_until_unmounted_then_exits_0(ocifs, disk, workdir):
    ref, data = disk
    mnt = workdir / "mnt"
    mnt.mkdir()
    proc = processes.spawn([processes.ocifs_bin(), "mount", "-f", TLS, "--cache-dir", workdir / "cache", ref, mnt],
                           env=processes.isolated_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_mounted(proc, mnt)
        assert_same_bytes((mnt / "disk.img").read_bytes(), data)
        time.sleep(1)
        assert proc.poll() is None, "the foreground mount exited while mounted"
        with open(mnt / "disk.img", "rb") as f:
            f.seek(len(data) - 4321)
            assert f.read() == data[-4321:]
        assert processes.unmount(mnt)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert os.listdir(mnt) == []
    finally:
        processes.unmount(mnt)
        processes.stop(proc)


# --------------------------------------------------------------------------- mount(8)

def run_mount8(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    proc = processes.spawn(["mount", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        processes.stop(proc)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


def mount8_roundtrip(source: str, fstype: str, data: bytes, workdir: Path) -> None:
    """mount(8) SOURCE at workdir/mnt, read disk.img, umount(8); the daemon ends."""
    mnt = workdir / "mnt"
    mnt.mkdir()
    try:
        r = run_mount8(["-t", fstype, source, str(mnt), "-o",
                        f"tls_verify=false,cache_dir={workdir / 'cache'}"])
        pids = ocifs_pids_for(mnt)
        for pid in pids:
            processes.adopt(pid)  # killed by the harness guards if the test fails
        assert r.returncode == 0, r.stderr
        assert is_mounted(mnt)
        assert len(pids) == 1, pids
        assert os.listdir(mnt) == ["disk.img"]
        assert_same_bytes((mnt / "disk.img").read_bytes(), data)
        fstypes = [l.split(" - ")[1].split()[0] for l in open("/proc/self/mountinfo")
                   if l.split()[4] == os.path.realpath(mnt)]
        assert fstypes == ["fuse.oci-fs"], fstypes
        u = subprocess.run(["umount", str(mnt)], capture_output=True, text=True, timeout=30)
        assert u.returncode == 0, u.stderr
        assert processes.wait_pid_gone(pids[0], 10), "the daemon did not exit after umount"
        assert not is_mounted(mnt)
    finally:
        processes.unmount(mnt)
        for pid in ocifs_pids_for(mnt):
            os.kill(pid, signal.SIGKILL)


def test_mount8_with_an_absolute_program_path_mounts_the_disk(ocifs, disk, workdir):
    """mount.fuse3's `-t fuse PROG#SOURCE` form needs no PATH lookup."""
    ref, data = disk
    mount8_roundtrip(f"{processes.ocifs_bin()}#{ref}", "fuse", data, workdir)


# mount(8) (util-linux) runs helpers with a sanitized environment, without PATH;
# mount.fuse3 then runs `/bin/sh -c 'oci-fs' REF DIR -o OPTS`, and sh falls back
# to its default PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
# A temp dir put first in our PATH is never seen, so the test installs the binary
# as /usr/local/sbin/oci-fs (a symlink) for its duration, unless one is there already.
SYSTEM_LINK = Path("/usr/local/sbin/oci-fs")


@pytest.fixture
def ocifs_on_default_path(ocifs):
    assert os.geteuid() == 0, "mount(8) of a FUSE type needs root; the suite runs as root"
    target = os.path.realpath(processes.ocifs_bin())
    if os.path.lexists(SYSTEM_LINK):
        if os.path.realpath(SYSTEM_LINK) != target:
            pytest.skip(f"{SYSTEM_LINK} exists and is not the binary under test")
        yield
        return
    SYSTEM_LINK.symlink_to(target)
    try:
        yield
    finally:
        if SYSTEM_LINK.is_symlink() and os.readlink(SYSTEM_LINK) == target:
            SYSTEM_LINK.unlink()


def test_mount8_with_type_fuse_oci_fs_runs_oci_fs_and_umount8_ends_it(ocifs_on_default_path, disk, workdir):
    ref, data = disk
    mount8_roundtrip(ref, "fuse.oci-fs", data, workdir)


# --------------------------------------------------------------------------- allow_other

@pytest.fixture
def traversable_root():
    """Lets uid 107 reach mount points under the (0700) test root for the test."""
    root = processes.test_root()
    old = root.stat().st_mode & 0o7777
    root.chmod(old | 0o111)
    yield
    root.chmod(old)


def read_as_uid_107(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=107", "--regid=107", "--clear-groups", "cat", str(path)],
                          capture_output=True, timeout=60)


def test_allow_other_lets_another_user_read_the_disk(ocifs, disk, workdir, traversable_root):
    ref, data = disk
    workdir.chmod(0o755)
    with Mount(ref, workdir / "mnt", TLS, "-o", "allow_other", cache_dir=workdir / "cache") as m:
        r = read_as_uid_107(m.dir / "disk.img")
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_without_allow_other_another_user_gets_eacces(ocifs, disk, workdir, traversable_root):
    ref, data = disk
    workdir.chmod(0o755)
    (workdir / "plain").mkdir()
    (workdir / "plain" / "f").write_bytes(b"x")
    (workdir / "plain" / "f").chmod(0o644)
    control = read_as_uid_107(workdir / "plain" / "f")
    assert control.returncode == 0, control.stderr  # the path itself is reachable
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        r = read_as_uid_107(m.dir / "disk.img")
        assert r.returncode != 0 and r.stdout == b""
        assert b"Permission denied" in r.stderr, r.stderr


def test_sigusr1_writes_the_stats_file_and_keeps_serving(ocifs, disk, workdir):
    ref, data = disk
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache", stats=True) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
        since = time.time()
        os.kill(m.pid, signal.SIGUSR1)
        time.sleep(0.3)
        assert ocifs_pids_for(m.dir) == [m.pid], "SIGUSR1 killed the daemon"
        stats = wait_stats(m.stats_path, since, timeout=5)
        assert stats["blob_bytes"] > 0
        assert is_mounted(m.dir)
        with open(m.dir / "disk.img", "rb") as f:  # still served
            assert f.read(4096) == data[:4096]


# --------------------------------------------------------------------------- a clean stop

def sanitized_build() -> bool:
    """Whether the binary under test is the ASan/UBSan build (OCIFS_SANITIZE in its CMake cache)."""
    build = os.environ.get("OCIFS_BUILD_DIR")
    cache = Path(build) / "CMakeCache.txt" if build else None
    return bool(cache and cache.exists() and "OCIFS_SANITIZE:BOOL=ON" in cache.read_text())


@pytest.mark.parametrize("how", ["fusermount3", "sigterm"])
def test_a_foreground_mount_stops_every_task_and_exits_through_its_destructors(how, ocifs, disk, workdir):
    """No _exit: the process ends through its destructors while background work
    (the gzip pass, prefetch-all, the stats timer) is stopped, so in the ASan
    build LeakSanitizer examines the daemon path and finds nothing."""
    ref, data = disk
    mnt = workdir / "mnt"
    mnt.mkdir()
    # atexit=1: ASan prints its exit stats from an atexit handler, which _exit
    # skips, so their presence shows the process ended through exit() and
    # LeakSanitizer's check at exit ran.
    env = processes.isolated_env({"ASAN_OPTIONS": "detect_leaks=1:exitcode=23:abort_on_error=0:atexit=1"})
    sanitized = sanitized_build()
    if sanitized:
        ldd = subprocess.run(["ldd", processes.ocifs_bin()], capture_output=True, text=True).stdout
        assert "libasan" in ldd, "the sanitized build's binary has no ASan runtime: LeakSanitizer would not run"
    stats = workdir / "stats.json"
    proc = processes.spawn([processes.ocifs_bin(), "mount", "-f", TLS, "--cache-dir", workdir / "cache",
                            "--prefetch-all", "--prefetch-rate", "64K", "--stats-file", stats, ref, mnt],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_mounted(proc, mnt)
        assert_same_bytes((mnt / "disk.img").read_bytes(), data)
        if how == "sigterm":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            assert processes.unmount(mnt)
        out, err = proc.communicate(timeout=60)
        err = err.decode(errors="replace")
        assert "LeakSanitizer" not in err, err[-4000:]
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err[-4000:]
        if sanitized:
            assert "AddressSanitizer exit stats" in err, "the process did not end through exit(): " + err[-2000:]
        assert proc.returncode == 0, err[-4000:]
        assert not is_mounted(mnt)
        assert json.loads(stats.read_text())["blob_bytes"] > 0  # written on the way out
    finally:
        processes.unmount(mnt)
        processes.stop(proc)
