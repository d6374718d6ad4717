"""Honest timeouts (docs/cli.md, "Timeouts"): a registry that stalls is given up
on in a bounded time, the error says which request timed out and after how
long, and a stalled request is retried on a fresh connection. The faults come
from a proxy in front of a real docker-registry (tests/support/fault_proxy.py).
"""

from __future__ import annotations

import os
import re
import threading
import time

import pytest

from support import images
from support.fault_proxy import FaultProxy
from support.processes import Mount

QUIET = ("--readahead", "0", "--accel", "off", "--prefetch-profile", "none", "--miss-fetch", "chunk")


@pytest.fixture
def pushed(registry, repo):
    disk = os.urandom(3 * 1024 * 1024 + 4321)
    ref, _ = images.push_containerdisk(registry, repo, disk, compression="none")
    return ref, repo, disk


@pytest.fixture
def proxy(registry):
    with FaultProxy(("127.0.0.1", registry.port)) as p:
        yield p


def through(proxy, repo: str) -> str:
    return f"{proxy.host}/{repo}:v1"


def test_a_registry_that_never_answers_fails_within_the_timeout_naming_the_request(ocifs, proxy, pushed):
    _, repo, _ = pushed
    proxy.fault("stall", count=1000)
    res = ocifs("inspect", "--tls-verify=false", "--stall-timeout", "2", "--registry-timeout", "6",
                through(proxy, repo), check=False, timeout=60)
    assert res.returncode == 1
    assert res.seconds < 20, res.describe()
    # The plain-HTTP request's stall comes first, not the TLS probe's error.
    assert re.search(rf"GET http://{proxy.host}/v2/{repo}/manifests/v1 got no answer in [12] s", res.stderr), \
        res.stderr
    assert "attempts in" in res.stderr, res.stderr
    assert not res.stderr.startswith("oci-fs: TLS"), res.stderr


def test_the_default_bound_is_well_under_a_minute(ocifs, proxy, pushed):
    _, repo, _ = pushed
    proxy.fault("stall", count=1000)
    res = ocifs("inspect", "--tls-verify=false", through(proxy, repo), check=False, timeout=120)
    assert res.returncode == 1
    assert res.seconds < 40, res.describe()
    assert "got no answer in" in res.stderr, res.stderr


def test_a_stalled_request_is_retried_on_a_fresh_connection(ocifs, proxy, pushed):
    _, repo, _ = pushed
    proxy.fault("stall", count=1, match="/manifests/v1")
    connections_before = proxy.connections
    res = ocifs("inspect", "--tls-verify=false", "--stall-timeout", "2", through(proxy, repo), timeout=60)
    assert proxy.faults == [f"stall GET /v2/{repo}/manifests/v1 HTTP/1.1"]
    assert len(proxy.requests_matching("/manifests/v1")) >= 2, proxy.requests
    assert proxy.connections - connections_before >= 3  # the https probe, the stalled one, the fresh one
    assert res.seconds >= 2


def test_5xx_answers_are_retried(ocifs, proxy, pushed):
    _, repo, _ = pushed
    proxy.fault("503", count=2, match="/manifests/v1")
    ocifs("inspect", "--tls-verify=false", through(proxy, repo), timeout=60)
    assert len(proxy.faults) == 2


def test_a_fuse_read_of_a_stalled_registry_fails_within_the_bound_and_a_later_one_succeeds(proxy, pushed, workdir):
    _, repo, disk = pushed
    with Mount(through(proxy, repo), workdir / "m", "--tls-verify=false", "--stall-timeout", "2",
               "--registry-timeout", "5", *QUIET, cache_dir=workdir / "cache") as m:
        fd = os.open(m.dir / "disk.img", os.O_RDONLY)
        try:
            proxy.fault("stall", count=1000, match="/blobs/")
            start = time.monotonic()
            with pytest.raises(OSError):
                os.pread(fd, 4096, 2 * 1024 * 1024)
            took = time.monotonic() - start
            assert took < 20, f"a read waited {took:.1f}s"
            proxy.clear()
            # A blob that failed its whole budget is asked with a one-second
            # budget for 3 s (kFailureHold); this read's stall needs a whole budget.
            time.sleep(3.5)
            proxy.fault("stall", count=1, match="/blobs/")  # one stall, then the retry answers
            assert os.pread(fd, 4096, 2 * 1024 * 1024) == disk[2 * 1024 * 1024:2 * 1024 * 1024 + 4096]
        finally:
            os.close(fd)


def test_a_read_through_a_stalled_mirror_and_upstream_waits_one_registry_timeout(registry, pushed, workdir):
    """The mirror asked first and the upstream after it share one --registry-timeout,
    and the kernel's second FUSE read of the failed page (its readahead failed
    first) does not wait again: the pread fails after about 10 s, not the
    mirror's 8 s stall plus the upstream's 10, twice."""
    _, repo, disk = pushed
    with FaultProxy(("127.0.0.1", registry.port)) as upstream, \
            FaultProxy(("127.0.0.1", registry.port)) as mirror:
        conf = workdir / "registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "{upstream.host}"\ninsecure = true\n\n'
                        f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n')
        with Mount(through(upstream, repo), workdir / "m", "--registries-conf", conf, "--stall-timeout", "8",
                   "--registry-timeout", "10", *QUIET, cache_dir=workdir / "cache") as m:
            fd = os.open(m.dir / "disk.img", os.O_RDONLY)
            try:
                mirror.fault("stall", count=1000, match="/blobs/")
                upstream.fault("stall", count=1000, match="/blobs/")
                start = time.monotonic()
                with pytest.raises(OSError):
                    os.pread(fd, 4096, 2 * 1024 * 1024)
                took = time.monotonic() - start
                assert mirror.faults and upstream.faults, "both endpoints were asked"
                # 8 + 10 s before the budget was shared; 10 s (and a second of slack for
                # the last attempt's rounding) now, with room for a busy machine.
                assert took < 15, f"a read waited {took:.1f}s"
                mirror.clear()
                upstream.clear()
                # At once: the upstream answers the short ask of a blob that
                # just failed its budget (the mirror is skipped for its backoff).
                assert os.pread(fd, 4096, 2 * 1024 * 1024) == disk[2 * 1024 * 1024:2 * 1024 * 1024 + 4096]
            finally:
                os.close(fd)


class _Readers:
    """One thread per offset, each preading `n` bytes there at once; results: bytes or OSError."""

    def __init__(self, fd: int, offsets: list, n: int = 4096):
        self.results = [None] * len(offsets)

        def read(i, offset):
            try:
                self.results[i] = os.pread(fd, n, offset)
            except OSError as e:
                self.results[i] = e

        self.threads = [threading.Thread(target=read, args=(i, o)) for i, o in enumerate(offsets)]
        for t in self.threads:
            t.start()

    def join(self) -> list:
        for t in self.threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "a read never returned"
        return self.results

    def first(self, timeout: float = 120):
        """The first result to arrive (the others may still be reading)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [r for r in self.results if r is not None]
            if done:
                return done[0]
            time.sleep(0.01)
        raise AssertionError("no read returned")


def test_reads_right_after_a_paused_registry_resumes_get_their_bytes(registry, pushed, workdir):
    """Reads that fail in an outage do not poison the reads after it: reads of
    a chunk whose fetch just failed its whole budget, issued right after the
    registry continues, get the bytes (no failure remembered for them), and
    readers that joined a fetch begun in the outage get theirs."""
    _, repo, disk = pushed
    # Pages of one chunk: concurrent FUSE reads that share one chunk fetch.
    failing = [2 * 1024 * 1024 + k * 65536 for k in range(4)]
    joining = [1024 * 1024 + k * 65536 for k in range(4)]
    with Mount(registry.ref(repo, "v1"), workdir / "m", "--tls-verify=false", "--stall-timeout", "2",
               "--registry-timeout", "10", *QUIET, cache_dir=workdir / "cache") as m:
        fd = os.open(m.dir / "disk.img", os.O_RDONLY)
        try:
            assert os.pread(fd, 4096, 0) == disk[:4096]
            with registry.paused():
                failed = _Readers(fd, failing)
                # A fetch that starts in the outage, 3 s into the other's 10 s
                # budget: it is still asking when the registry continues.
                time.sleep(3)
                joined = _Readers(fd, joining)
                # The registry continues as soon as the first read has failed
                # its whole budget: the others (the kernel asks again for a
                # page whose read failed, and that ask may get a budget of its
                # own) may still be waiting, and then get the bytes.
                assert isinstance(failed.first(), OSError), "a read succeeded from a stopped registry"
            for offset, r in zip(failing, failed.join()):
                assert isinstance(r, OSError) or r == disk[offset:offset + 4096], f"wrong bytes: {r!r:.200}"
            # Continued: at once, the pages that just failed are read again.
            resumed = _Readers(fd, failing).join()
            for offset, r in zip(failing, resumed):
                assert r == disk[offset:offset + 4096], f"a read right after the registry resumed: {r!r:.200}"
            for offset, r in zip(joining, joined.join()):
                assert r == disk[offset:offset + 4096], f"a read of a fetch begun in the outage: {r!r:.200}"
        finally:
            os.close(fd)
