"""Kept mounts (docs/keeper.md): the FUSE connection outlives the process serving it.

8 threads read disk.img at random (dropping the page cache first, so every read
reaches the serving process) and compare every byte while the serving process
is killed with SIGKILL, or replaced by `oci-fs restart`; the keeper killed; a
takeover whose binary cannot start; `status` and `restart`'s usage errors.
Takeover stalls are printed (pytest -s shows them) and written to
$OCIFS_KEEPER_STALLS if set.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support import images, processes
from support.fuse_checks import MiB, disk_bytes
from support.processes import Mount, is_mounted

TLS = "--tls-verify=false"
DEADLINE = 60  # seconds: generous, the suite must pass under stress-ng --cpu 2


@pytest.fixture(scope="module")
def disk(registry):
    data = disk_bytes(6 * MiB + 777, seed=77)
    images.push(registry, "t/fuse-keeper", "v1", images.containerdisk(data, "gzip"))
    return registry.ref("t/fuse-keeper", "v1"), data


def status(*dirs, check=True) -> list[dict]:
    r = processes.run_ocifs("status", "--json", *[str(d) for d in dirs], check=check)
    return json.loads(r.stdout) if r.returncode == 0 else []


def wait_for(what: str, predicate, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def wait_new_server(mnt: Path, old_pid: int) -> dict:
    def serving():
        s = status(mnt)
        return s[0] if s and s[0]["server_pid"] not in (0, old_pid) and s[0]["server_alive"] else None
    return wait_for(f"a server other than {old_pid} for {mnt}", serving)


def mount_id(mnt: Path) -> str | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        if processes._unescape_mountinfo(f[4]) == str(mnt):
            return f[0] + " " + f[2]
    return None


def kill_all(pids) -> None:
    """SIGKILL to each of `pids` that still exists."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_kept_mount(state: dict, mnt: Path) -> None:
    """A test's cleanup: SIGKILL to the keeper and server of `state` (a
    `status` entry), then a lazy unmount of `mnt`."""
    kill_all((state["keeper_pid"], state["server_pid"]))
    processes.unmount(mnt, lazy=True)


def abort_connection(mnt: Path) -> None:
    """Ends a FUSE connection whatever its processes do, so that hung readers
    return: every holder of its /dev/fuse descriptor is killed (fusectl's
    abort file is not mounted everywhere)."""
    for s in status(mnt, check=False):
        kill_all((s["keeper_pid"], s["server_pid"]))
    kill_all(processes.find_processes(processes.ocifs_bin(), str(mnt)))
    processes.unmount(mnt, lazy=True)


class Readers:
    """`threads` threads reading `path` at random offsets and comparing with `data`."""

    def __init__(self, path: Path, data: bytes, threads: int = 8):
        self.path, self.data = path, data
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.reads: list[tuple[float, float]] = []  # (start, end), time.monotonic()
        self.in_flight: dict[int, float] = {}  # reader -> start of its unfinished read
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> "Readers":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = DEADLINE) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        hung = [t for t in self.threads if t.is_alive()]
        if hung:
            abort_connection(self.path.parent)
            for t in hung:
                t.join(10)
            raise AssertionError(f"{len(hung)} readers hung for more than {timeout}s")

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        size = len(self.data)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while not self.stop_event.is_set():
                off = rng.randrange(size)
                n = rng.choice([4096, 65536, 300_000, MiB])
                os.posix_fadvise(fd, off - off % 4096, n + 8192, os.POSIX_FADV_DONTNEED)
                start = time.monotonic()
                self.in_flight[seed] = start
                try:
                    got = os.pread(fd, n, off)
                except OSError as e:
                    self.in_flight.pop(seed, None)
                    self.errors.append(f"pread({n} at {off}): {e}")
                    if len(self.errors) > 20:
                        return
                    continue
                self.in_flight.pop(seed, None)
                self.reads.append((start, time.monotonic()))
                # A short read (a page the kernel still had, then a dead
                # connection) is a failure too, but only wrong bytes are a lie.
                if got != self.data[off:off + len(got)]:
                    self.errors.append(f"wrong bytes: {n} at {off}")
                elif len(got) < min(n, size - off):
                    self.errors.append(f"short read: {len(got)} of {n} at {off}")
        finally:
            try:
                os.close(fd)
            except OSError:  # the connection is gone
                pass

    def wait_reads(self, count: int) -> None:
        target = len(self.reads) + count
        wait_for(f"{count} more reads", lambda: len(self.reads) >= target or self.errors)

    def stall_after(self, t: float, until: float) -> float:
        """Longest wait, from `t`, of a read in flight at `t` or started before `until`."""
        waits = [end - max(start, t) for start, end in list(self.reads) if end > t and start < until]
        return max(waits, default=0.0)


def report_stalls(what: str, stalls: list[float]) -> None:
    line = (f"{what}: takeover stalls over {len(stalls)} takeovers: median {statistics.median(stalls) * 1000:.0f} ms, "
            f"max {max(stalls) * 1000:.0f} ms ({', '.join(f'{s * 1000:.0f}' for s in stalls)} ms)")
    print("\n" + line)
    if os.environ.get("OCIFS_KEEPER_STALLS"):
        with open(os.environ["OCIFS_KEEPER_STALLS"], "a") as f:
            f.write(line + "\n")


def test_sigkill_of_the_serving_process_five_times_under_8_readers(ocifs, disk, workdir):
    ref, data = disk
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        mnt = m.dir.resolve()
        before = mount_id(mnt)
        first = wait_for("a serving process", lambda: (status(mnt) or [None])[0])
        assert first["keeper_pid"] > 0 and first["server_pid"] > 0 and not first["stale"]
        stalls = []
        with Readers(mnt / "disk.img", data) as readers:
            readers.wait_reads(50)
            server = first["server_pid"]
            for i in range(5):
                t = time.monotonic()
                os.kill(server, signal.SIGKILL)
                new = wait_new_server(mnt, server)
                assert new["takeovers"] == i + 1
                readers.wait_reads(100)
                stalls.append(readers.stall_after(t, time.monotonic()))
                assert not readers.errors, readers.errors[:5]
                server = new["server_pid"]
            readers.stop()
        assert not readers.errors, readers.errors[:5]
        assert mount_id(mnt) == before, "the mount point is no longer the same mount"
        assert max(stalls) < 30
        report_stalls("kill -9", stalls)
        assert status(mnt)[0]["keeper_pid"] == first["keeper_pid"]
    assert status() == []  # the state file goes with the mount


def test_restart_under_8_readers_hands_over_to_a_new_binary(ocifs, disk, workdir):
    ref, data = disk
    rebuilt = workdir / "bin" / "oci-fs-rebuilt"  # the binary "now on disk": a copy at another path
    rebuilt.parent.mkdir()
    shutil.copy2(processes.ocifs_bin(), rebuilt)
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        mnt = m.dir.resolve()
        before = mount_id(mnt)
        first = status(mnt)[0]
        stalls = []
        with Readers(mnt / "disk.img", data) as readers:
            readers.wait_reads(50)
            for binary in (rebuilt, None):
                t = time.monotonic()
                r = ocifs("restart", *(["--binary", str(binary)] if binary else []), mnt, timeout=DEADLINE)
                new_pid = int(r.stdout.decode().strip())
                s = status(mnt)[0]
                assert s["server_pid"] == new_pid != first["server_pid"]
                readers.wait_reads(100)
                stalls.append(readers.stall_after(t, time.monotonic()))
                assert processes.wait_pid_gone(first["server_pid"], DEADLINE), "the old server did not stop"
                assert os.readlink(f"/proc/{new_pid}/exe") == str(binary or rebuilt)
                first = s
            readers.stop()
        assert not readers.errors, readers.errors[:5]
        assert mount_id(mnt) == before
        report_stalls("restart", stalls)


def test_a_restart_whose_binary_cannot_start_leaves_the_old_server_serving(ocifs, disk, workdir):
    ref, data = disk
    broken = workdir / "broken-oci-fs"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        mnt = m.dir.resolve()
        first = status(mnt)[0]
        with Readers(mnt / "disk.img", data) as readers:
            readers.wait_reads(30)
            for binary in (broken, workdir / "missing"):
                r = ocifs("restart", "--binary", binary, mnt, check=False, timeout=DEADLINE)
                assert r.returncode == 1, r.describe()
                assert "restart of" in r.stderr
                readers.wait_reads(30)
            readers.stop()
        assert not readers.errors, readers.errors[:5]
        assert status(mnt)[0]["server_pid"] == first["server_pid"]


def test_a_crash_while_the_binary_on_disk_is_broken_is_taken_over_from_the_keepers_image(ocifs, disk, workdir):
    """The keeper retries with backoff, every other attempt from its own image
    (/proc/self/exe): readers wait less than 30 s and read on."""
    ref, data = disk
    binary = workdir / "bin" / "oci-fs"
    binary.parent.mkdir()
    shutil.copy2(processes.ocifs_bin(), binary)
    mnt = workdir / "mnt"
    mnt.mkdir()
    r = subprocess.run([str(binary), "mount", TLS, "--cache-dir", str(workdir / "cache"), ref, str(mnt)],
                       env=processes.isolated_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    try:
        mnt = mnt.resolve()
        first = status(mnt)[0]
        processes.adopt(first["keeper_pid"])
        binary.unlink()
        binary.write_text("#!/bin/sh\nexit 3\n")
        binary.chmod(0o755)
        with Readers(mnt / "disk.img", data) as readers:
            readers.wait_reads(30)
            t = time.monotonic()
            os.kill(first["server_pid"], signal.SIGKILL)
            wait_new_server(mnt, first["server_pid"])
            readers.wait_reads(50)
            stall = readers.stall_after(t, time.monotonic())
            readers.stop()
        assert not readers.errors, readers.errors[:5]
        assert stall < 30
        print(f"\ntakeover with a broken binary on disk: stall {stall * 1000:.0f} ms")
    finally:
        processes.unmount(mnt)
        processes.wait_pid_gone(first["keeper_pid"], 15)


def test_the_keeper_killed_leaves_the_server_serving_until_it_ends(ocifs, disk, workdir):
    ref, data = disk
    log = workdir / "server.log"
    with Mount(ref, workdir / "mnt", TLS, "--log-file", log, "--log-level", "info",
               cache_dir=workdir / "cache") as m:
        mnt = m.dir.resolve()
        first = status(mnt)[0]
        try:
            os.kill(first["keeper_pid"], signal.SIGKILL)
            wait_for("the server's log line",
                     lambda: log.exists() and "the keeper of" in log.read_text())
            lines = [line for line in log.read_text().splitlines() if "the keeper of" in line]
            assert len(lines) == 1 and "ENOTCONN" in lines[0]
            with open(mnt / "disk.img", "rb") as f:  # still served
                assert f.read(4096) == data[:4096]
            assert status(mnt)[0]["stale"]  # the keeper is gone
            os.kill(first["server_pid"], signal.SIGKILL)
            processes.wait_pid_gone(first["server_pid"], 15)
            with pytest.raises(OSError) as e:  # open (FUSE_OPEN) reaches the dead connection
                with open(mnt / "disk.img", "rb") as f:
                    f.read(4096)
            assert e.value.errno in (errno.ENOTCONN, errno.ECONNABORTED), e.value
        finally:
            kill_kept_mount(first, mnt)


def test_restart_of_what_is_not_a_kept_mount_is_a_usage_error(ocifs, workdir):
    plain = workdir / "plain"
    plain.mkdir()
    r = ocifs("restart", plain, check=False)
    assert r.returncode == 2 and "not a kept oci-fs mount" in r.stderr
    r = ocifs("status", plain, check=False)
    assert r.returncode == 1


def test_status_lists_every_kept_mount(ocifs, disk, workdir):
    ref, data = disk
    with Mount(ref, workdir / "a", TLS, cache_dir=workdir / "cache") as a, \
            Mount(ref, workdir / "b", TLS, "--no-keeper", cache_dir=workdir / "cache") as b:
        listed = [s for s in status() if not s["stale"]]  # an earlier test's killed keeper leaves a stale one
        assert [s["mountpoint"] for s in listed] == [str(a.dir.resolve())]  # --no-keeper publishes nothing
        s = listed[0]
        assert s["reference"] == ref and s["digest"].startswith("sha256:")
        assert s["takeovers"] == 0 and s["uptime_seconds"] >= 0 and not s["stale"]
        assert s["keeper_alive"] and s["server_alive"] and s["mounted"]
        text = ocifs("status").stdout.decode()
        assert str(a.dir.resolve()) in text and f"server:    {s['server_pid']}" in text
        assert (b.dir / "disk.img").read_bytes()[:4096] == data[:4096]


def test_status_reports_what_the_mount_fetched_cached_and_failed(ocifs, disk, registry, workdir):
    """`status --json` carries the counters the serving process publishes
    (docs/mount-stats-format.md); they agree with the registry's log."""
    ref, data = disk
    image = images.containerdisk(data, "gzip")
    layer = image.layers[0]
    blobs = {layer.digest, image.config.digest}  # a mount reads the config through the same blob path
    before = len(registry.request_log())
    with Mount(ref, workdir / "st", TLS, cache_dir=workdir / "st-cache") as m:  # a cache of its own: cold
        mnt = m.dir.resolve()
        assert (m.dir / "disk.img").read_bytes() == data

        seen = []

        def caught_up():
            stats = status(mnt)[0]["stats"]
            gets = [r for r in registry.request_log()[before:] if r.method == "GET" and r.digest in blobs]
            seen.append((stats, len(gets), sum(r.written for r in gets)))
            # reads > 0: a file written after our read (the first is written when the mount serves).
            if stats and stats["disk_layer_cached"] == 1.0 and stats["reads"] > 0 and stats["requests"] == len(gets) \
                    and stats["bytes_fetched"] == sum(r.written for r in gets):
                return stats, gets
            return None
        try:
            stats, gets = wait_for("status agreeing with the registry log", caught_up)
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen (stats, GETs, bytes): {seen[-1:]}") from None
        assert gets and stats["bytes_fetched"] >= layer.size
        assert stats["disk_layer"] == layer.digest and stats["disk_layer_bytes"] == layer.size
        assert stats["cached"] == 1.0 and stats["reads"] > 0
        assert stats["errors"] == {"fuse_read": 0, "blob_fetch": 0, "cache_corrupt": 0}
        assert stats["background_fetch"]["enabled"] is False
        assert stats["background_fetch"]["chunks"] == stats["background_fetch"]["total_chunks"] > 0
        assert stats["serving_processes"] == 1
        text = ocifs("status", str(mnt)).stdout.decode()  # not a terminal: no bar
        assert "cached:    100.0% of the disk's layer" in text and "[" not in text.split("cached:")[1].split("\n")[0]

        # A takeover: the new serving process counts from zero, the sum goes on.
        old = status(mnt)[0]["server_pid"]
        os.kill(old, signal.SIGKILL)
        wait_new_server(mnt, old)
        after = wait_for("stats of two serving processes",
                         lambda: (lambda s: s if s and s["serving_processes"] == 2 else None)(status(mnt)[0]["stats"]))
        assert after["requests"] >= stats["requests"] and after["bytes_fetched"] >= stats["bytes_fetched"]
    left = [p for p in (processes.test_root() / "env" / "mounts").glob("*.stats")
            if json.loads(p.read_text())["mountpoint"] == str(mnt)]
    assert left == []  # the keeper removed them with the mount


def test_without_resend_the_reads_in_flight_at_a_crash_wait_until_the_connection_ends(ocifs, disk, workdir):
    """What docs/keeper.md says of kernels before 6.9, shown by a keeper that
    skips FUSE_NOTIFY_RESEND: reads the dead process had taken stay unanswered
    (the new process serves every other read) until the connection is aborted."""
    ref, data = disk
    env = {"OCIFS_KEEPER_NO_RESEND": "1"}
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache", env=env) as m:
        mnt = m.dir.resolve()
        first = status(mnt)[0]
        readers = Readers(mnt / "disk.img", data)
        try:
            readers.__enter__()
            readers.wait_reads(50)
            # SIGSTOP first: the requests its threads had taken stay taken;
            # 8 readers then wait for them or queue behind them. A stop that
            # finds no request taken (a busy machine) loses nothing: again.
            server = first["server_pid"]
            for _ in range(8):
                processes.sigstop(server)
                time.sleep(0.5)
                t = time.monotonic()
                os.kill(server, signal.SIGKILL)
                server = wait_new_server(mnt, server)["server_pid"]
                time.sleep(3)
                stuck = [s for s in list(readers.in_flight.values()) if s < t]
                if stuck:
                    break
            served_after = sum(1 for start, _ in list(readers.reads) if start > t + 1)
            print(f"\nwithout resend: {len(stuck)} of 8 readers stuck in reads begun before the crash; "
                  f"{served_after} later reads served")
            assert stuck, "no read was in flight at the crash (nothing to show)"
            assert time.monotonic() - max(stuck) > 3
        finally:
            readers.stop_event.set()
            abort_connection(mnt)  # what ends them: the stuck reads fail (ECONNABORTED)
            for th in readers.threads:
                th.join(30)
            assert not any(th.is_alive() for th in readers.threads)
        hung = [e for e in readers.errors if "pread" in e]
        print(f"after the connection was aborted: {len(hung)} reads failed ({hung[:1]})")


def test_requests_the_dead_process_had_taken_are_resent_to_the_next(ocifs, disk, workdir):
    """The counterpart of the test above with FUSE_NOTIFY_RESEND (Linux 6.9+):
    a serving process stopped with requests taken, then killed, loses none."""
    ref, data = disk
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        mnt = m.dir.resolve()
        server = status(mnt)[0]["server_pid"]
        stalls = []
        with Readers(mnt / "disk.img", data) as readers:
            readers.wait_reads(50)
            for _ in range(2):
                processes.sigstop(server)
                time.sleep(0.5)
                t = time.monotonic()
                taken = [s for s in list(readers.in_flight.values()) if s < t]
                os.kill(server, signal.SIGKILL)
                server = wait_new_server(mnt, server)["server_pid"]
                readers.wait_reads(100)
                stalls.append(readers.stall_after(t, time.monotonic()))
                assert taken, "no read was in flight"
                assert not readers.errors, readers.errors[:5]
            readers.stop()
        assert not readers.errors, readers.errors[:5]
        print(f"\nresent after SIGSTOP+SIGKILL: stalls {[round(s * 1000) for s in stalls]} ms after the kill")
