"""Access profiles (docs/profile-format.md): a mount records which chunks of the layer its
reads touched, first read first (--record-profile); a later cold mount fetches them ahead,
before any read asks (--prefetch-profile), so those reads reach no registry.

Fetches are counted by the registry's own request log.
"""

from __future__ import annotations

import time

import pytest

from support import images
from support.fuse_checks import MiB, assert_reads_match, disk_bytes
from support.images import Dir, File, Image, Layer
from support.processes import Mount

TLS = "--tls-verify=false"
FRAME = 512 * 1024  # frame size of the multi-frame zstd test layers
CHUNK = MiB  # the mount's default --chunk-size
UNIT = 4 * 1024  # what a recording mount notes its reads in, whatever its chunk size
PIECE = 64 * 1024  # the smallest piece a mount fetches such a profile in (an uncompressed layer's)
DATA_AT = 1024  # the disk's bytes in the layer's tar: after the headers of disk/ and disk/disk.img


def layer_gets(registry, img: Image) -> list:
    digest = img.layers[0].digest
    return [r for r in registry.blob_gets() if r.digest == digest]


def read_profile(path) -> tuple[int, dict[str, list[int]]]:
    """(chunk size, blob -> chunks) of a profile file, parsed as the doc describes it."""
    lines = [l for l in path.read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "oci-fs-profile 1"
    assert lines[1].startswith("chunk-size ")
    blobs: dict[str, list[int]] = {}
    declared: dict[str, int] = {}
    current: list[int] = []
    for line in lines[2:]:
        if line.startswith("blob "):
            _, digest, count = line.split()
            current = blobs.setdefault(digest, [])
            declared[digest] = int(count)
        else:
            first, _, last = line.partition("-")
            current.extend(range(int(first), int(last or first) + 1))
    for digest, chunks in blobs.items():
        assert len(chunks) == declared[digest] == len(set(chunks)), (digest, chunks)
    return int(lines[1].split()[1]), blobs


def profile_pieces(units: list[int], chunk: int) -> set[int]:
    """What a mount with `chunk`-byte chunks fetches for a profile's 4 KiB `units`: the 64 KiB
    pieces holding them when its chunks are larger (docs/profile-format.md), else the chunks
    holding them; as indexes of pieces of that size (piece_size() below)."""
    return {u * UNIT // piece_size(chunk) for u in units}


def piece_size(chunk: int) -> int:
    return PIECE if chunk > PIECE else chunk


def wait_for_fetches(registry, img: Image, before: int, units: list[int], chunk: int = CHUNK) -> None:
    """Waits (30 s at most) until the layer's GETs after the first `before` carried the bytes
    that a mount with `chunk`-byte chunks fetches for the profile's `units` (profile_pieces)."""
    deadline = time.monotonic() + 30
    size = piece_size(chunk)
    want = sum(min(size, len(img.layers[0].data) - p * size) for p in profile_pieces(units, chunk))
    while sum(r.written for r in layer_gets(registry, img)[before:]) < want:
        assert time.monotonic() < deadline, "the profile's pieces were not fetched ahead"
        time.sleep(0.05)


# Disk offsets the "workload" reads, in this order: chunks 5, 1, 7 of the layer.
READS = [(5 * MiB + 100, 4096), (1 * MiB + 7, 300), (7 * MiB + 9000, 8192)]


@pytest.mark.parametrize("kind", ["none", "zstd-multiframe"])
def test_a_recorded_profile_is_fetched_ahead_by_the_next_cold_mount(kind, ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 777, seed=61)
    ref, img = images.push_containerdisk(registry, repo, data, kind, frame_size=FRAME)
    profile = workdir / "boot.profile"
    with Mount(ref, workdir / "m1", TLS, "--record-profile", profile, "--readahead", "0",
               cache_dir=workdir / "cache1") as m:
        assert_reads_match(m.dir / "disk.img", data, READS)
        assert not profile.exists()  # written at unmount
    chunk_size, blobs = read_profile(profile)
    assert chunk_size == UNIT  # the bytes read, finer than the cache's chunks
    assert list(blobs) == [img.layers[0].digest]
    chunks = blobs[img.layers[0].digest]
    if kind == "none":
        wanted = [(DATA_AT + off) // UNIT for off, _ in READS]  # in chunks 5, 1, 7
        assert [c for c in chunks if c in wanted] == wanted, chunks  # first read first
        assert len(chunks) * UNIT < 12 * PIECE  # what was read, not the layer
    else:  # frames: the mount also walks the frame headers, and those chunks are recorded too
        assert chunks, chunks

    # A cold mount with the profile: its chunks arrive without a read asking for them.
    before = len(layer_gets(registry, img))
    log = workdir / "m2.log"
    with Mount(ref, workdir / "m2", TLS, "--prefetch-profile", profile, "--readahead", "0",
               "--log-level=info", f"--log-file={log}", cache_dir=workdir / "cache2") as m:
        wait_for_fetches(registry, img, before, chunks)
        # A zstd layer's profile is fitted to its frames once they are found (its
        # walk's own fetches count above): wait for the prefetch to say it is done.
        deadline = time.monotonic() + 30
        while "profile prefetch done" not in log.read_text():
            assert time.monotonic() < deadline, "the profile's prefetch did not end"
            time.sleep(0.05)
        fetched = len(layer_gets(registry, img))
        assert_reads_match(m.dir / "disk.img", data, READS)
        assert len(layer_gets(registry, img)) == fetched, "a profiled read went to the registry"
    if kind == "none":  # the profile, not the layer
        assert sum(r.written for r in layer_gets(registry, img)[before:]) < len(img.layers[0].data) // 2


def test_a_gzip_layer_read_as_a_stream_records_nothing_for_it(ocifs, registry, repo, workdir):
    data = disk_bytes(3 * MiB, seed=62)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip", frame_size=FRAME)
    profile = workdir / "p"
    cache = workdir / "cache"
    with Mount(ref, workdir / "m1", TLS, "--record-profile", profile, cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, READS[1:2] + [(len(data) - 10, 10)])
        # The pass saves the checkpoint index when it ends; the next mount needs it.
        hexdigest = img.layers[0].digest.split(":")[1]
        deadline = time.monotonic() + 30
        while not [p for p in (cache / "side").glob(f"*{hexdigest}*gzidx*")]:
            assert time.monotonic() < deadline, "the gzip index was not saved"
            time.sleep(0.05)
    assert read_profile(profile)[1] == {}
    # The next mount keeps the index: now its reads are random, and recorded.
    with Mount(ref, workdir / "m2", TLS, "--record-profile", profile, cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, READS[1:2])
    assert list(read_profile(profile)[1]) == [img.layers[0].digest]


@pytest.mark.parametrize("chunk", ["256K", "2M"])
def test_a_profile_is_fetched_ahead_by_a_mount_of_another_chunk_size(chunk, ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 5, seed=63)
    ref, img = images.push_containerdisk(registry, repo, data, "none", frame_size=FRAME)
    profile = workdir / "p"
    with Mount(ref, workdir / "m1", TLS, "--record-profile", profile, "--readahead", "0",
               cache_dir=workdir / "cache1") as m:
        assert_reads_match(m.dir / "disk.img", data, READS)
    units = read_profile(profile)[1][img.layers[0].digest]
    size = {"256K": 256 * 1024, "2M": 2 * MiB}[chunk]
    before = len(layer_gets(registry, img))
    with Mount(ref, workdir / "m2", TLS, "--prefetch-profile", profile, "--chunk-size", chunk, "--readahead", "0",
               cache_dir=workdir / "cache2") as m:
        wait_for_fetches(registry, img, before, units, size)
        fetched = len(layer_gets(registry, img))
        assert_reads_match(m.dir / "disk.img", data, READS)
        assert len(layer_gets(registry, img)) == fetched, "a profiled read went to the registry"
    # The profile's chunks and the 1 MiB miss groups of the mount's own two first reads
    # (tar headers, the disk's end), not the layer.
    got = sum(r.written for r in layer_gets(registry, img)[before:])
    assert got <= len({u * UNIT // size for u in units}) * size + 2 * max(size, MiB), got


# Small reads far apart: each in its own MiB, so whole chunks would be 1 MiB per read.
SCATTERED = [(1 * MiB + 4096, 4096), (9 * MiB + 70000, 300), (4 * MiB + 5, 8192), (17 * MiB + 3 * PIECE, 2 * PIECE),
             (13 * MiB + 1000, 512)]


def test_a_small_profile_fetches_about_its_own_bytes_not_whole_chunks(ocifs, registry, repo, workdir):
    """A profile names 4 KiB units; a mount with 1 MiB chunks fetches the 64 KiB pieces holding
    them (coalesced into few ranges, kept apart from the chunks) rather than the chunks around them, and the reads they
    cover reach no registry. (Compressed layers: the bench's "(artifact, profile)" rows.)"""
    data = disk_bytes(20 * MiB + 333, seed=67)
    ref, img = images.push_containerdisk(registry, repo, data, "none")
    profile = workdir / "boot.profile"
    record_cache = workdir / "cache1"
    with Mount(ref, workdir / "m1", TLS, "--record-profile", profile, "--readahead", "0",
               cache_dir=record_cache) as m:
        assert_reads_match(m.dir / "disk.img", data, SCATTERED)
    units = read_profile(profile)[1][img.layers[0].digest]
    pieces = profile_pieces(units, CHUNK)
    unit_bytes = len(pieces) * PIECE
    whole_chunks = len({u * UNIT // CHUNK for u in units}) * CHUNK
    assert unit_bytes * 2 < whole_chunks, (units, "the reads are not scattered enough to tell")

    cache2 = workdir / "cache2"
    before = len(layer_gets(registry, img))
    log = workdir / "m2.log"
    with Mount(ref, workdir / "m2", TLS, "--prefetch-profile", profile, "--readahead", "0", "--log-level", "info",
               "--log-file", log, cache_dir=cache2) as m:
        wait_for_fetches(registry, img, before, units)
        deadline = time.monotonic() + 30
        while "profile prefetch done" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        gets = layer_gets(registry, img)[before:]
        assert_reads_match(m.dir / "disk.img", data, SCATTERED)
        assert len(layer_gets(registry, img)) - before == len(gets), "a profiled read went to the registry"
    got = sum(r.written for r in gets)
    # The pieces, plus the short gaps a run fills (at most 2 pieces per request): not the chunks.
    assert unit_bytes <= got + PIECE, (got, unit_bytes)  # the last piece may be short
    assert got <= unit_bytes + 2 * PIECE * len(gets), (got, unit_bytes, len(gets))
    assert got * 2 < whole_chunks, (got, whole_chunks)
    assert len(gets) < len(pieces) or len(pieces) <= 2, (len(gets), pieces)  # coalesced
    assert "pieces" in log.read_text()
    # The pieces are kept in the cache dir (docs/cache-format.md "Kept pieces"), not as chunks.
    assert list((cache2 / "kept").glob("*profile-pieces*")), list((cache2 / "kept").iterdir())


def with_shipped_profile(img: Image, profile: bytes, compression: str = "gzip") -> Image:
    """The image plus a layer holding /.oci-fs/profile, as `COPY boot.profile /.oci-fs/profile` adds."""
    return Image(img.layers + [Layer.from_entries([Dir(".oci-fs"), File(".oci-fs/profile", profile)], compression)])


def test_a_profile_shipped_in_the_image_is_fetched_ahead_with_no_flag(ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 777, seed=64)
    ref, img = images.push_containerdisk(registry, repo, data, "none")
    profile = workdir / "boot.profile"
    with Mount(ref, workdir / "m1", TLS, "--record-profile", profile, "--readahead", "0",
               cache_dir=workdir / "cache1") as m:
        assert_reads_match(m.dir / "disk.img", data, READS)
    chunks = read_profile(profile)[1][img.layers[0].digest]
    images.push(registry, repo, "shipped", with_shipped_profile(img, profile.read_bytes()))

    before = len(layer_gets(registry, img))
    log = workdir / "m2.log"
    with Mount(registry.ref(repo, "shipped"), workdir / "m2", TLS, "--readahead", "0", "--log-level", "info",
               "--log-file", log, cache_dir=workdir / "cache2") as m:
        wait_for_fetches(registry, img, before, chunks)
        fetched = len(layer_gets(registry, img))
        assert_reads_match(m.dir / "disk.img", data, READS)
        assert len(layer_gets(registry, img)) == fetched, "a profiled read went to the registry"
    assert f"prefetching the access profile the image ships ({len(chunks)} chunks)" in log.read_text()

    # --prefetch-profile none: the image's profile is not used.
    before = len(layer_gets(registry, img))
    log3 = workdir / "m3.log"
    with Mount(registry.ref(repo, "shipped"), workdir / "m3", TLS, "--readahead", "0", "--prefetch-profile", "none",
               "--log-level", "info", "--log-file", log3, cache_dir=workdir / "cache3") as m:
        time.sleep(0.5)
        # The mount's own: tar headers and disk trailer, each a small exact read and its chunk
        # (4 GETs; under load a read can start before its chunk's background fetch, one more),
        # not the profile's pieces on top of them.
        assert len(layer_gets(registry, img)) - before <= 5
        assert_reads_match(m.dir / "disk.img", data, READS[1:2])
    assert "access profile" not in log3.read_text(), log3.read_text()


def test_a_malformed_shipped_profile_is_reported_and_the_disk_still_reads(ocifs, registry, repo, workdir):
    data = disk_bytes(3 * MiB, seed=65)
    _, img = images.push_containerdisk(registry, repo, data, "none")
    bad = b"oci-fs-profile 1\nchunk-size 1048576\nblob sha256:" + b"b" * 64 + b" 3\n1\n"
    images.push(registry, repo, "bad", with_shipped_profile(img, bad))
    log = workdir / "m.log"
    with Mount(registry.ref(repo, "bad"), workdir / "m", TLS, "--log-file", log, cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, READS[1:2] + [(0, len(data))])
    text = log.read_text()
    assert "not using the image's access profile" in text and "/.oci-fs/profile in layer sha256:" in text, text
    assert "declares 3 chunks but lists 1" in text, text


def test_a_first_seen_gzip_disk_under_a_profile_layer_is_ready_at_its_entry(ocifs, registry, repo, workdir):
    """The disk's gzip layer is read as a stream the first time; the small profile layer above it
    must not make the mount wait for the whole pass (the lowest stream layer with the disk stops
    at its entry, and the rest is verified in the background)."""
    data = disk_bytes(6 * MiB + 5, seed=66)
    _, img = images.push_containerdisk(registry, repo, data, "gzip")
    profile = b"oci-fs-profile 1\nchunk-size 1048576\nblob " + img.layers[0].digest.encode() + b" 1\n0\n"
    images.push(registry, repo, "shipped", with_shipped_profile(img, profile))
    log = workdir / "m.log"
    with Mount(registry.ref(repo, "shipped"), workdir / "m", TLS, "--log-level", "info", "--log-file", log,
               cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, [(0, len(data))] + READS[1:2])
        deadline = time.monotonic() + 30
        while "the disk is confirmed" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    text = log.read_text()
    assert f"layer {img.layers[0].digest}: ready at the disk's entry" in text, text
