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

import threading
import time

import pytest

from support import images
from support.fault_proxy import FaultProxy
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan
from support.processes import Mount

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
    else:  # read together: some chunks were waited for, not fetched again
        assert sum(s["cache_lease_waits"] for s in stats) > 0, stats
