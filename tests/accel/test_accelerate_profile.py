"""An access profile shipped in the acceleration artifact of a gzip layer
(docs/accel-format.md, "Profiles fitted to the index"): a recording mount names
the compressed bytes its reads needed, not the whole checkpoint spans it
inflated; `oci-fs accelerate --profile` fits the profile to the index it pushes
(whole spans, and the index blob's windows of those spans), and a fresh mount
prefetches both, so its reads of the profiled regions fetch nothing more.

Fetches are counted by the registry's request log; every read is compared with
the disk's bytes.
"""

from __future__ import annotations

import re
import time

from support import images
from support.fuse_checks import MiB, assert_reads_match, echo_disk
from support.processes import Mount

TLS = "--tls-verify=false"
GZIP_INDEX = "application/vnd.oci-fs.gzip-index.v4"
# With a profile: checkpoints inside deflate blocks around its regions (docs/gzip-index-format.md).
GZIP_INDEX_V5 = "application/vnd.oci-fs.gzip-index.v5"
PROFILE = "application/vnd.oci-fs.profile.v1"
UNIT = 65536  # the checksum blocks of a mount's own index, and a mount's chunks here
# Five 64 KiB reads spread over a 48 MiB disk, as a boot's scattered reads.
REGIONS = [(o * MiB + 12345, 64 * 1024) for o in (3, 11, 20, 31, 44)]


def accelerate(ocifs, ref: str, *args: str) -> str:
    out = ocifs("accelerate", TLS, ref, *args, timeout=300).stdout.decode().strip()
    assert "@sha256:" in out, out
    return out.splitlines()[-1]


def parse_profile(text: str) -> dict[str, list[int]]:
    """blob digest -> its units, in order (docs/profile-format.md)."""
    blobs: dict[str, list[int]] = {}
    current = None
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith("oci-fs-profile") or line.startswith("chunk-size"):
            continue
        if line.startswith("blob "):
            current = blobs.setdefault(line.split()[1], [])
            continue
        first, _, last = line.partition("-")
        current.extend(range(int(first), int(last or first) + 1))
    return blobs


def profile_unit(text: str) -> int:
    """The profile's chunk size (its `chunk-size` line)."""
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("chunk-size ")))


def requests_for(registry, digest: str) -> list:
    return [r for r in registry.blob_gets() if r.digest == digest]


def wait_for_bytes(registry, digest: str, before: int, want: int, what: str) -> None:
    """Waits (60 s at most) until the registry has served `want` bytes of `digest` since `before`."""
    deadline = time.monotonic() + 60
    while True:
        got = sum(r.written for r in requests_for(registry, digest)) - before
        if got >= want:
            return
        assert time.monotonic() < deadline, f"the profile's prefetch of {what} fetched {got} of {want} bytes"
        time.sleep(0.05)


def record_boot(ocifs, ref: str, data: bytes, workdir):
    """Accelerates `ref` without a profile, then records REGIONS' reads on a mount that uses
    that artifact; returns the recorded profile's path."""
    accelerate(ocifs, ref)
    recorded = workdir / "boot.profile"
    with Mount(ref, workdir / "rec", TLS, "--prefetch-profile=none", f"--record-profile={recorded}",
               cache_dir=workdir / "cache-rec") as m:
        assert_reads_match(m.dir / "disk.img", data, REGIONS)
    return recorded


def test_a_fitted_profile_in_the_artifact_prefetches_the_spans_and_windows_its_reads_need(
        ocifs, registry, repo, workdir):
    data = echo_disk(48 * MiB, seed=141)  # reads copy from ~16 KiB of each window (a random disk's are sparse)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    layer = img.layers[0]
    client = registry.client()

    # A node with the artifact (no profile yet) records the reads: the bytes they needed.
    recorded = record_boot(ocifs, ref, data, workdir)
    units = parse_profile(recorded.read_text())[layer.digest]
    unit = profile_unit(recorded.read_text())
    assert unit == 4096  # a recording's unit
    # Each read is 64 KiB (with the kernel's read-ahead a few 64 KiB; the checksum blocks
    # read around it to verify them are not its need), plus the tar header's check: not
    # the 1 MiB spans that were inflated.
    assert len(units) * unit <= (8 * len(REGIONS) + 2) * UNIT, units

    artifact = accelerate(ocifs, ref, "--profile", str(recorded))
    manifest = client.get_manifest(repo, artifact.split("@", 1)[1]).json()
    # The profile's regions got checkpoints inside deflate blocks: a version 5 index, its own media type.
    [index_piece] = [l for l in manifest["layers"] if l["mediaType"] == GZIP_INDEX_V5]
    index_head = client.get_blob(repo, index_piece["digest"]).body[:12]
    assert index_head[:8] == b"OCIFSGZI" and int.from_bytes(index_head[8:12], "little") == 5
    [profile_piece] = [l for l in manifest["layers"] if l["mediaType"] == PROFILE]
    shipped_text = client.get_blob(repo, profile_piece["digest"]).body.decode()
    shipped = parse_profile(shipped_text)
    shipped_unit = profile_unit(shipped_text)
    index_digest = index_piece["digest"]
    # Fitted: the layer's units cover the recorded ones (whole spans of the new index), and
    # the index blob has a section: its windows of those spans.
    assert set(units) <= set(shipped[layer.digest])
    assert shipped.get(index_digest), shipped.keys()

    def served(digest: str) -> int:
        return sum(r.written for r in requests_for(registry, digest))

    index_before, layer_before = served(index_digest), served(layer.digest)
    index_size, layer_size = index_piece["size"], layer.size

    def want(us: list[int], size: int, piece: int) -> int:
        """The bytes of the `piece`-byte pieces holding the shipped units `us`: the layer's are
        fetched in the profile's 4 KiB units, the index blob's in 64 KiB pieces."""
        pieces = {u * shipped_unit // piece for u in us if u * shipped_unit < size}
        return sum(min(size, (p + 1) * piece) - p * piece for p in pieces)

    # 64 KiB chunks: a window a read needed and the prefetch had not fetched would be a request of its own.
    log = workdir / "m.log"
    layer_requests_before = len(requests_for(registry, layer.digest))
    with Mount(ref, workdir / "m", TLS, "--chunk-size=64K", "--log-level=info", f"--log-file={log}",
               cache_dir=workdir / "cache") as m:
        # The prefetch of the shipped profile (the artifact's): every unit it names, of both blobs.
        wait_for_bytes(registry, index_digest, index_before, want(shipped[index_digest], index_size, UNIT), "the index")
        wait_for_bytes(registry, layer.digest, layer_before, want(shipped[layer.digest], layer_size, shipped_unit), "the layer")
        index_requests = len(requests_for(registry, index_digest))
        layer_requests = len(requests_for(registry, layer.digest))
        # The layer's runs came several to a request (docker-registry does multi-range requests).
        short = layer.digest.removeprefix("sha256:")[:12]
        deadline = time.monotonic() + 30
        while not (done := re.search(rf"blob sha256:{short}.*profile prefetch done .* (\d+) runs in (\d+) requests",
                                     log.read_text())):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        runs, requests = int(done.group(1)), int(done.group(2))
        assert 1 <= requests < runs, done.group(0)
        assert layer_requests - layer_requests_before <= requests + 1  # + the tar header's check
        assert_reads_match(m.dir / "disk.img", data, REGIONS)
        # The reads inflated from the index's checkpoints: their windows and spans were there.
        assert len(requests_for(registry, index_digest)) == index_requests
        assert len(requests_for(registry, layer.digest)) == layer_requests
    # The profile's prefetch fetched what it names (the index: and its table's chunk), not the layer whole.
    assert served(layer.digest) - layer_before < layer_size // 3
    assert served(index_digest) - index_before <= want(shipped[index_digest], index_size, UNIT) + 2 * UNIT


def test_without_the_fitted_profile_the_same_reads_fetch_windows_as_they_go(ocifs, registry, repo, workdir):
    """The control: the artifact without a profile, the same reads: each fetches its window then."""
    data = echo_disk(48 * MiB, seed=141)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    artifact = accelerate(ocifs, ref)
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    [index_piece] = [l for l in manifest["layers"] if l["mediaType"] == GZIP_INDEX]
    with Mount(ref, workdir / "m", TLS, "--chunk-size=64K", "--prefetch-profile=none", cache_dir=workdir / "cache") as m:
        before = len(requests_for(registry, index_piece["digest"]))
        assert_reads_match(m.dir / "disk.img", data, REGIONS)
        assert len(requests_for(registry, index_piece["digest"])) > before


def test_a_zstd_layers_fitted_profile_is_fetched_in_its_4_kib_units(ocifs, registry, repo, workdir):
    """A zstd layer's profile, fitted to the artifact's checkpoint index, names the segments its
    reads decode to 4 KiB: the prefetch fetches those 4 KiB pieces, not the 64 KiB pieces
    around them (each region's edges would cost up to 64 KiB more)."""
    data = echo_disk(48 * MiB, seed=143)
    ref, img = images.push_containerdisk(registry, repo, data, "zstd")
    layer = img.layers[0]
    client = registry.client()
    recorded = record_boot(ocifs, ref, data, workdir)
    artifact = accelerate(ocifs, ref, "--profile", str(recorded))
    manifest = client.get_manifest(repo, artifact.split("@", 1)[1]).json()
    [profile_piece] = [l for l in manifest["layers"] if l["mediaType"] == PROFILE]
    shipped_text = client.get_blob(repo, profile_piece["digest"]).body.decode()
    shipped_unit = profile_unit(shipped_text)
    assert shipped_unit == 4096
    units = parse_profile(shipped_text)[layer.digest]

    def pieces_bytes(piece: int) -> int:
        pieces = {u * shipped_unit // piece for u in units if u * shipped_unit < layer.size}
        return sum(min(layer.size, (p + 1) * piece) - p * piece for p in pieces)

    want4, want64 = pieces_bytes(4096), pieces_bytes(65536)
    assert want4 < want64 - 64 * 1024, (want4, want64)  # the two can be told apart

    def served() -> int:
        return sum(r.written for r in requests_for(registry, layer.digest))

    before = served()
    with Mount(ref, workdir / "m", TLS, cache_dir=workdir / "cache") as m:
        wait_for_bytes(registry, layer.digest, before, want4, "the layer")
        assert_reads_match(m.dir / "disk.img", data, REGIONS)
        time.sleep(0.5)  # a prefetch of 64 KiB pieces would have gone on past want4 by now
        fetched = served() - before
    # The profile's runs fill gaps of at most 2 x 64 KiB between pieces: well under the 64 KiB
    # pieces' bytes.
    assert fetched < want64, (fetched, want4, want64)
