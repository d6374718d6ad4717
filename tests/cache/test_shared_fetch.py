"""Many mounts of one image on a node cost one download: `oci-fs mount`s of one gzip
image started together over one cache dir share the chunk fetches through the cache's
fetch leases (docs/cache-format.md "Fetch leases"), so the registry serves each layer
byte about once, and every mount reads exact bytes.

The registry sits behind a slow proxy (tests/support/fault_proxy.py, rate) so that the
mounts' fetches overlap in time; the registry's own request log counts the bytes. A gzip
layer is shared by its first pass's lease (one mount streams it, the others adopt its
index); an uncompressed one by the chunk fetch leases.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from support import images
from support.fault_proxy import FaultProxy
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan
from support.processes import Mount, wait_pid_gone

TLS = "--tls-verify=false"


def layer_bytes(registry, img) -> int:
    digests = {l.digest for l in img.layers}
    return sum(r.written for r in registry.blob_gets() if r.digest in digests)


@pytest.mark.parametrize("kind", ["gzip", "none"])
def test_three_concurrent_mounts_of_one_image_fetch_each_layer_byte_about_once(kind, ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 4321, seed=1601)
    _, img = images.push_containerdisk(registry, repo, data, kind)
    layer = img.layers[0].size
    assert layer > 9 * MiB  # mostly incompressible: ~10 s to stream at the proxy's rate
    cache = workdir / "cache"
    n = 3
    spans: dict[int, tuple[float, float]] = {}  # each mount command's start and end
    with FaultProxy(("127.0.0.1", registry.port), rate=1 * MiB) as proxy:
        ref = f"{proxy.host}/{repo}:v1"
        before = layer_bytes(registry, img)
        mounts = [Mount(ref, workdir / f"m{i}", TLS, cache_dir=cache, stats=True, timeout=120) for i in range(n)]
        errors: list[str] = []
        entered: list[Mount] = []
        lock = threading.Lock()
        up = threading.Barrier(n, timeout=300)

        def run(i: int) -> None:
            m = mounts[i]
            try:
                start = time.monotonic()
                m.__enter__()
                with lock:
                    entered.append(m)
                    spans[i] = (start, time.monotonic())
                up.wait()  # the reads start together
                # The same ranges in every mount (one seed), then the whole disk.
                assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=7, random_reads=30))
                assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
            except BaseException as e:  # noqa: BLE001 - reported below
                up.abort()
                errors.append(f"mount {i}: {e!r}")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=600)
            assert not any(t.is_alive() for t in threads), "a reader hung"
        finally:
            for m in entered:
                m.__exit__(None, None, None)
    assert not errors, "\n".join(errors)
    fetched = layer_bytes(registry, img) - before
    stats = [m.stats for m in mounts]
    # Once, give or take a chunk: one mount fetched each chunk, the others waited for it.
    assert layer <= fetched <= layer * 1.1 + MiB, (fetched, layer, stats)
    assert all(s["cache_lease_timeouts"] == 0 for s in stats), stats
    # The sharing was tested: the mounts overlapped in time.
    if kind == "gzip":  # a mount streams the layer (its tar) before it is up: all were mounting at once
        assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), spans
        # One mount streamed it; the others started no stream of their own (each would
        # fetch the bytes of the chunks the other streams claimed, passing through it).
        others = sorted(s["blob_bytes"] for s in stats)[:-1]
        assert all(b < 256 * 1024 for b in others), stats
    else:  # read together: some chunks were waited for, not fetched again
        assert sum(s["cache_lease_waits"] for s in stats) > 0, stats


def _read_range(path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def _push_slow_gzip(registry, repo, seed: int):
    data = disk_bytes(16 * MiB + 777, seed=seed)
    _, img = images.push_containerdisk(registry, repo, data, "gzip")
    assert img.layers[0].size > 12 * MiB  # mostly incompressible: over 12 s to stream at 1 MiB/s
    return data, img


def test_a_mount_following_another_mounts_gzip_pass_reads_behind_it_before_the_pass_ends(ocifs, registry, repo,
                                                                                        workdir):
    """The second mount's pass finds the layer's pass lease held by the first, so it
    does not stream the layer; its reads behind what the first mount's pass has kept
    are copies of those chunks, served while that pass still runs (its index is not
    saved yet), not after it ends."""
    data, img = _push_slow_gzip(registry, repo, seed=1611)
    cache = workdir / "cache"
    index = cache / "side" / f"{img.layers[0].digest}.gzidx"
    with FaultProxy(("127.0.0.1", registry.port), rate=1 * MiB) as proxy:
        ref = f"{proxy.host}/{repo}:v1"
        with Mount(ref, workdir / "owner", TLS, cache_dir=cache, timeout=120):
            with Mount(ref, workdir / "follower", TLS, cache_dir=cache, timeout=120) as follower:
                disk = follower.dir / "disk.img"
                head = _read_range(disk, 0, 2 * MiB)
                middle = _read_range(disk, 3 * MiB + 4321, 300_000)
                pass_running = not index.exists()
                assert_same_bytes(head, data[: 2 * MiB], "the follower's first 2 MiB")
                assert_same_bytes(middle, data[3 * MiB + 4321: 3 * MiB + 4321 + 300_000], "the follower's middle read")
                assert pass_running, "the follower's reads returned only after the owner's pass had saved its index"
                # Then every byte, through the rest of the pass and the adopted index.
                assert_same_bytes(disk.read_bytes(), data)
                assert_reads_match(disk, data, read_plan(len(data), seed=11, random_reads=20))
    assert index.exists()


def test_a_mount_following_a_gzip_pass_whose_process_is_killed_takes_the_pass_over(ocifs, registry, repo, workdir):
    """kill -9 of the mount that streams the layer mid-pass: the flock on its pass lease
    goes with it, the following mount takes the lease, streams the layer itself and
    every read returns exact bytes, before and after the kill."""
    data, img = _push_slow_gzip(registry, repo, seed=1612)
    cache = workdir / "cache"
    index = cache / "side" / f"{img.layers[0].digest}.gzidx"
    with FaultProxy(("127.0.0.1", registry.port), rate=1 * MiB) as proxy:
        ref = f"{proxy.host}/{repo}:v1"
        owner = Mount(ref, workdir / "owner", TLS, "--no-keeper", cache_dir=cache, timeout=120)
        with owner:
            assert owner.pid is not None
            with Mount(ref, workdir / "follower", TLS, cache_dir=cache, timeout=120) as follower:
                disk = follower.dir / "disk.img"
                assert_same_bytes(_read_range(disk, 0, 1 * MiB), data[: 1 * MiB], "the follower's first MiB")
                assert not index.exists(), "the owner's pass ended before it could be killed (too fast a link?)"
                os.kill(owner.pid, signal.SIGKILL)
                assert wait_pid_gone(owner.pid, 30)
                assert_same_bytes(disk.read_bytes(), data)
                assert_reads_match(disk, data, read_plan(len(data), seed=12, random_reads=20))
            # The owner's mount is dead (its connection gone); leaving the block unmounts it.
    assert index.exists()  # saved by the follower's pass, which took over
