"""Without an acceleration artifact, a first mount of a gzip or single-frame zstd layer
streams it: the first pass keeps range requests in flight ahead of what it decodes
(DecoderOptions::pass_read_ahead), not one request at a time; and a read of a region the
pass has passed is answered at once, long before the pass ends.

The registry sits behind tests/support/fault_proxy.py with a per-connection rate, so the
pass takes seconds: requests in flight together come on different connections of oci-fs's
pool (one request at a time would reuse one connection), and a read behind the pass
returns while most of the layer is still to come.
"""

from __future__ import annotations

import os
import time

import pytest

from support import images
from support.fault_proxy import FaultProxy
from support.fuse_checks import MiB, assert_same_bytes, disk_bytes
from support.processes import Mount

TLS = "--tls-verify=false"
RATE = 1 * MiB  # bytes a second, per connection


# zstd-unsized: one frame without a content size, read as a stream from the mount on (a
# small frame with one is walked at open, before the mount is ready).
@pytest.mark.parametrize("kind", ["gzip", "zstd-unsized"])
def test_a_first_pass_streams_with_requests_in_flight_and_serves_reads_behind_it_at_once(
        kind, ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 4321, seed=1411)
    _, img = images.push_containerdisk(registry, repo, data, kind)
    layer = img.layers[0].size
    assert layer > 9 * MiB  # mostly incompressible: seconds to stream at RATE
    with FaultProxy(("127.0.0.1", registry.port), rate=RATE) as proxy:
        start = time.monotonic()
        with Mount(f"{proxy.host}/{repo}:v1", workdir / "m", TLS, "--accel=off", cache_dir=workdir / "cache",
                   timeout=120) as m:
            fd = os.open(m.dir / "disk.img", os.O_RDONLY)
            try:
                # Behind the pass as soon as it has decoded the disk's first MiB.
                head = os.pread(fd, MiB, 0)
                behind = time.monotonic()
                # The disk's last bytes: the pass's end.
                tail = os.pread(fd, 4096, len(data) - 4096)
                ended = time.monotonic()
            finally:
                os.close(fd)
            assert_same_bytes(head, data[:MiB])
            assert_same_bytes(tail, data[-4096:])
            assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    # Requests in flight together: the pass's range requests came on several connections.
    blob = img.layers[0].digest
    ranged = [c for c, line in proxy.request_connections if blob in line]
    assert len(ranged) >= 3, f"the layer in {len(ranged)} requests"
    assert len(set(ranged)) >= 2, f"the layer's {len(ranged)} requests came one at a time, on one connection"
    # The read behind the pass did not wait for its end: the rest of the layer came after it.
    assert ended - behind > 0.25 * (ended - start), (
        f"the first MiB was answered {behind - start:.1f} s in, the pass ended at {ended - start:.1f} s")
