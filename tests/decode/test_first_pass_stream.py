"""Without an acceleration artifact, a first mount of a gzip or single-frame zstd layer
streams it: the first pass keeps several range requests in flight ahead of what it
decodes (DecoderOptions::pass_read_ahead), so it runs at the link's rate, not one
request at a time; and a read of a region the pass has passed is answered at once,
long before the pass ends.

The registry sits behind tests/support/fault_proxy.py with a per-connection rate: one
request at a time moves at most `RATE`, so a pass that ends well inside LAYER / RATE
had requests in flight together.
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


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_first_pass_streams_with_requests_in_flight_and_serves_reads_behind_it_at_once(
        kind, ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 4321, seed=1411)
    _, img = images.push_containerdisk(registry, repo, data, kind)
    layer = img.layers[0].size
    assert layer > 9 * MiB  # mostly incompressible: 9 s and more at RATE, one request at a time
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
    one_at_a_time = layer / RATE
    took = ended - start
    # Several requests in flight: the whole layer in well under what one connection needs
    # (about a third of it with three; a busy machine slows the decoding, not the link).
    assert took < 0.6 * one_at_a_time, f"the pass took {took:.1f} s for {layer} bytes at {RATE} B/s a connection"
    # The read behind the pass did not wait for its end: the rest of the layer came after it.
    assert ended - behind > 0.25 * (ended - start), (
        f"the first MiB was answered {behind - start:.1f} s in, the pass ended at {took:.1f} s")
