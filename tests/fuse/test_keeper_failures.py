"""A kept mount whose replacement serving processes keep dying (docs/keeper.md,
"When a takeover fails"): the keeper retries with backoff, then gives up and
ends the mount, so that readers fail instead of hanging; none waits 30 s.

Every new serving process must resolve the pinned image in the registry; the
registry sits behind tests/support/fault_proxy.py, which resets every
connection once the first serving process is killed.

Also `-o nokeeper`, mount(8)'s spelling of --no-keeper.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

from support import processes
from support.fault_proxy import FaultProxy
from support.processes import Mount, is_mounted

from test_keeper import TLS, Readers, disk, kill_kept_mount, status, wait_for  # noqa: F401 (fixture)

GIVE_UP = 25  # seconds without a serving process (docs/keeper.md)


def test_a_keeper_whose_replacements_keep_dying_gives_up_and_readers_fail_within_30s(
        ocifs, disk, registry, workdir):  # noqa: F811
    _, data = disk
    log = workdir / "mount.log"
    with FaultProxy(("127.0.0.1", registry.port)) as proxy:
        ref = f"{proxy.host}/t/fuse-keeper:v1"
        with Mount(ref, workdir / "mnt", TLS, "--log-file", log, "--log-level", "info",
                   cache_dir=workdir / "cache") as m:
            mnt = m.dir.resolve()
            first = status(mnt)[0]
            # Every byte fetched first: errors after the fault come from the takeovers only.
            assert (mnt / "disk.img").read_bytes() == data
            try:
                readers = Readers(mnt / "disk.img", data)
                with readers:
                    readers.wait_reads(30)
                    proxy.fault("reset", count=100000)  # the registry is gone for good
                    t = time.monotonic()
                    os.kill(first["server_pid"], signal.SIGKILL)
                    longest_wait = 0.0  # of a read in flight, sampled while the keeper retries
                    while processes._pid_alive(first["keeper_pid"]) and not processes._is_zombie(first["keeper_pid"]):
                        now = time.monotonic()
                        assert now - t < GIVE_UP + 30, "the keeper did not give up"
                        longest_wait = max([longest_wait] + [now - s for s in list(readers.in_flight.values())])
                        time.sleep(0.1)
                    gave_up = time.monotonic() - t
                    wait_for("every reader to see the error",
                             lambda: not readers.in_flight and len(readers.errors) >= 8, timeout=30)
                    readers.stop(timeout=30)
                longest = max((end - start for start, end in readers.reads if end > t), default=0.0)
                failed = [e for e in readers.errors if "wrong bytes" in e]
                assert not failed, failed[:3]
                assert all(e.startswith("short read") or ("Errno %d]" % errno.ENOTCONN) in e or ("Errno %d]" % errno.ECONNABORTED) in e
                           or ("Errno %d]" % errno.EIO) in e for e in readers.errors), readers.errors[:5]
                assert GIVE_UP - 1 < gave_up < 30 + 15, gave_up  # backoff ran its course, then stopped
                assert longest < 30, f"a read waited {longest:.1f} s"
                assert longest_wait < 30, f"a read waited {longest_wait:.1f} s"
                assert not is_mounted(mnt)  # the keeper unmounted
                text = log.read_text()
                assert "retrying in" in text
                print(f"\nreplacements dying: the keeper gave up after {gave_up:.1f} s; the longest a read "
                      f"waited was {longest_wait:.1f} s; {len(readers.errors)} reads failed "
                      f"({readers.errors[0] if readers.errors else ''})")
            finally:
                kill_kept_mount(first, mnt)


def test_o_nokeeper_is_mount8s_spelling_of_no_keeper(ocifs, disk, workdir):  # noqa: F811
    """`mount -t fuse.oci-fs REF DIR -o ro,nokeeper` runs `oci-fs REF DIR -o ro,nokeeper`:
    one process, no keeper, no state file."""
    ref, data = disk
    mnt = workdir / "mnt"
    mnt.mkdir()
    before = {s["mountpoint"] for s in status()}
    r = ocifs(ref, mnt, "-o", f"ro,nokeeper,tls_verify=false,cache_dir={workdir / 'cache'}", check=False)
    assert r.returncode == 0, r.describe()
    try:
        assert (mnt / "disk.img").read_bytes()[:65536] == data[:65536]
        assert {s["mountpoint"] for s in status()} == before  # no state file: no keeper
        bin_ = processes.ocifs_bin()
        pids = processes.find_processes(bin_, str(mnt.resolve()))
        assert len(pids) == 1, pids
        assert Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")[1] != b"keeper"
    finally:
        processes.unmount(mnt)
