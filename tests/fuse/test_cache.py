"""The chunk cache behind a mount (docs/cache-format.md): a warm cache serves a second
mount without registry traffic, the size bound holds while it evicts, and damaged
chunk files are dropped and refetched, never served.

Fetches are counted twice: by the registry's request log and by the mount's
--stats-file counters.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time

import pytest

from support import images
from support.fuse_checks import (CHUNK, CHUNK_HEADER, MiB, assert_reads_match, assert_same_bytes, chunk_files,
                                 data_runs, disk_bytes, kept_pieces, read_plan, tree_bytes)
from support.images import Image
from support.processes import Mount

TLS = "--tls-verify=false"
FRAME = 512 * 1024  # frame size of the multi-frame zstd test layers


def side_files(cache) -> list[str]:
    """The side files in place (not the temporary files they are written to)."""
    names = os.listdir(cache / "side") if (cache / "side").is_dir() else []
    return [n for n in names if ".tmp." not in n]


def layer_traffic(registry, img: Image) -> tuple[int, int]:
    """(GETs, bytes) the registry served for the image's layer blobs."""
    digests = {l.digest for l in img.layers}
    gets = [r for r in registry.blob_gets() if r.digest in digests]
    return len(gets), sum(r.written for r in gets)


def mount_twice(registry, ref: str, img: Image, data: bytes, cache, workdir):
    """Mounts and reads the whole disk twice with one cache dir; returns
    (registry layer traffic after the first and the second mount, stats of the
    second mount, the repository's blob GETs made by the second mount)."""
    with Mount(ref, workdir / "m1", TLS, cache_dir=cache, stats=True) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    assert m.stats["blob_bytes"] >= img.layers[0].size, m.stats
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    gets_before = len(registry.blob_gets(repo))
    first = layer_traffic(registry, img)
    assert first[1] >= img.layers[0].size
    with Mount(ref, workdir / "m2", TLS, cache_dir=cache, stats=True) as m:
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=42))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    return first, layer_traffic(registry, img), m.stats, registry.blob_gets(repo)[gets_before:]


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd-multiframe"])
def test_a_second_mount_with_the_same_cache_dir_fetches_no_layer_bytes(kind, ocifs, registry, repo, workdir):
    data = disk_bytes(3 * MiB + 5000, seed=41)
    ref, img = images.push_containerdisk(registry, repo, data, kind, frame_size=FRAME)
    first, second, stats, _ = mount_twice(registry, ref, img, data, workdir / "cache", workdir)
    assert second == first, "the second mount fetched layer bytes"
    assert stats["cache_misses"] == 0, stats
    assert stats["blob_bytes"] <= img.config.size, stats  # at most the image config (see below)


def test_a_gzip_layer_mounted_again_reads_randomly_from_the_kept_index_and_chunks(ocifs, registry, repo, workdir):
    data = disk_bytes(4 * MiB + 99, seed=43)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip", frame_size=FRAME)
    cache = workdir / "cache"
    with Mount(ref, workdir / "m1", TLS, cache_dir=cache, stats=True) as m:
        assert_reads_match(m.dir / "disk.img", data, [(3 * MiB, 10)])
        # The first pass goes on past the read and saves the checkpoint index when it
        # reaches the layer's end. An unmount before then cancels it and saves nothing,
        # so wait for the file (a loaded machine may take seconds for the last MiB).
        deadline = time.monotonic() + 60
        while not any(n.startswith(img.layers[0].digest) for n in side_files(cache)):
            assert time.monotonic() < deadline, f"no gzip index in {cache / 'side'}: {side_files(cache)}"
            time.sleep(0.05)
    layer_before = layer_traffic(registry, img)

    with Mount(ref, workdir / "m2", TLS, cache_dir=cache, stats=True) as m:
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=44))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    assert m.stats["blob_bytes"] <= img.config.size, m.stats  # no layer bytes
    assert m.stats["cache_misses"] == 0, m.stats
    assert layer_traffic(registry, img) == layer_before


def test_a_full_cache_evicts_and_stays_within_its_bound_while_reads_stay_correct(ocifs, registry, repo, workdir):
    data = disk_bytes(16 * MiB + 4321, seed=45)
    ref, img = images.push_containerdisk(registry, repo, data, "none", frame_size=FRAME)
    cache = workdir / "cache"
    limit = 4 * MiB
    bound = limit + CHUNK + CHUNK_HEADER  # the limit plus one chunk in flight
    with Mount(ref, workdir / "mnt", TLS, "--cache-size", "4M", cache_dir=cache, stats=True) as m:
        peak = 0
        with open(m.dir / "disk.img", "rb") as f:
            for off in range(0, len(data), MiB):
                assert_same_bytes(f.read(MiB), data[off:off + MiB], f"disk.img at {off}")
                peak = max(peak, tree_bytes(cache / "chunks"))
        chunks_total = tree_bytes(cache / "chunks")
        assert peak <= bound, f"chunk files peaked at {peak} bytes, bound {bound}"
        assert tree_bytes(cache) <= bound + 256 * 1024  # + side files (tar index), lock, usage
        _, fetched_once = layer_traffic(registry, img)
        assert fetched_once >= len(data)
    assert m.stats["cache_evictions"] > 0, m.stats
    assert chunks_total <= bound

    # re-read on a new mount (the first one's page cache would serve it)
    with Mount(ref, workdir / "mnt2", TLS, "--cache-size", "4M", cache_dir=cache, stats=True) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
        assert tree_bytes(cache / "chunks") <= bound
    _, fetched_twice = layer_traffic(registry, img)
    assert fetched_twice - fetched_once >= len(data) - limit, "the re-read did not fetch the evicted chunks"
    assert m.stats["blob_bytes"] >= len(data) - limit, m.stats


def test_truncated_or_corrupted_chunk_files_are_refetched_not_served(ocifs, registry, repo, workdir):
    data = disk_bytes(4 * MiB + 1234, seed=47)
    ref, img = images.push_containerdisk(registry, repo, data, "none", frame_size=FRAME)
    layer = img.layers[0].digest
    cache = workdir / "cache"
    with Mount(ref, workdir / "m1", TLS, cache_dir=cache) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    files = {i: p for (k, i), p in chunk_files(cache).items() if k == layer}
    assert sorted(files) == list(range((img.layers[0].size + CHUNK - 1) // CHUNK)), sorted(files)

    truncated, flipped, header_hit = files[1], files[2], files[3]
    with open(truncated, "r+b") as f:
        f.truncate(CHUNK_HEADER + 1000)
    with open(flipped, "r+b") as f:
        f.seek(CHUNK_HEADER + 4096 + 7)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x40]))
    with open(header_hit, "r+b") as f:  # the header's chunk index field
        f.seek(16)
        f.write((99).to_bytes(8, "little"))
    damaged = sum(min(CHUNK, img.layers[0].size - i * CHUNK) for i in (1, 2, 3))
    gets_before, bytes_before = layer_traffic(registry, img)

    with Mount(ref, workdir / "m2", TLS, cache_dir=cache, stats=True) as m:
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=48))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    gets_after, bytes_after = layer_traffic(registry, img)
    assert bytes_after - bytes_before == damaged, (gets_after - gets_before, bytes_after - bytes_before)
    assert m.stats["blob_bytes"] - damaged in (0, img.config.size), m.stats  # (+ the config, see above)
    assert m.stats.get("cache_corrupt_dropped") == 3, m.stats
    for p in (truncated, flipped, header_hit):  # rewritten whole
        assert os.path.getsize(p) == CHUNK_HEADER + CHUNK


def test_two_mounts_sharing_a_cache_dir_read_concurrently_and_correctly(ocifs, registry, repo, workdir):
    import threading
    data = disk_bytes(4 * MiB + 333, seed=49)
    ref, img = images.push_containerdisk(registry, repo, data, "none", frame_size=FRAME)
    cache = workdir / "cache"
    errors: list[str] = []
    with Mount(ref, workdir / "m1", TLS, cache_dir=cache) as m1, \
            Mount(ref, workdir / "m2", TLS, cache_dir=cache) as m2:
        def reader(m, seed):
            try:
                assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=seed, random_reads=20))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(f"{m.dir}: {e}")
        threads = [threading.Thread(target=reader, args=(m, s)) for s, m in enumerate([m1, m2, m1, m2])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a reader hung"
    assert not errors, "\n".join(errors)
    assert all(os.path.getsize(p) == CHUNK_HEADER + min(CHUNK, img.layers[0].size - i * CHUNK)
               for (k, i), p in chunk_files(cache).items() if k == img.layers[0].digest)


def test_a_second_mount_with_the_same_cache_dir_fetches_no_blob_at_all(ocifs, registry, repo, workdir):
    """Not even the image config: with a warm cache only the manifest is asked for."""
    data = disk_bytes(1 * MiB + 5000, seed=46)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip", frame_size=FRAME)
    _, _, stats, gets = mount_twice(registry, ref, img, data, workdir / "cache", workdir)
    assert [g.uri for g in gets] == [], f"config is {img.config.digest}"
    assert stats["blob_bytes"] == 0 and stats["blob_requests"] == 0, stats


def wait_for_layer_bytes(registry, img: Image, want: int, timeout: float = 30) -> float:
    """Seconds until the registry has served `want` bytes of the image's layers."""
    start = time.monotonic()
    while layer_traffic(registry, img)[1] < want:
        assert time.monotonic() - start < timeout, f"{layer_traffic(registry, img)[1]} of {want} bytes fetched"
        time.sleep(0.02)
    return time.monotonic() - start


def test_prefetch_all_fetches_the_whole_layer_in_the_background(ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 999, seed=71)
    ref, img = images.push_containerdisk(registry, repo, data, "none")
    with Mount(ref, workdir / "m", TLS, "--prefetch-all", cache_dir=workdir / "cache") as m:
        wait_for_layer_bytes(registry, img, img.layers[0].size)
        gets = layer_traffic(registry, img)[0]
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
        assert layer_traffic(registry, img)[0] == gets, "a read went to the registry after the whole layer came"
    assert layer_traffic(registry, img)[1] <= img.layers[0].size + 2 * CHUNK  # each chunk about once


def test_prefetch_rate_caps_the_background_fetch(ocifs, registry, repo, workdir):
    data = disk_bytes(12 * MiB + 999, seed=72)
    ref, img = images.push_containerdisk(registry, repo, data, "none")
    with Mount(ref, workdir / "m", TLS, "-o", "prefetch=all,prefetch_rate=4M", cache_dir=workdir / "cache") as m:
        # The clock starts when the registry finished the layer's first GET, not when the mount
        # is ready: the prefetch starts when the blob is opened, before that, and on a busy
        # machine a second 0.5 s pause (one more 2 MiB step) could pass before the mount was.
        # A step starts at least 0.5 s per 2 MiB after the first step's GET completed, which
        # is no earlier than the first layer GET's.
        wait_for_layer_bytes(registry, img, 1)
        first = min(r.completed for r in registry.blob_gets() if r.digest == img.layers[0].digest)
        time.sleep(1.0)
        traffic = layer_traffic(registry, img)
        elapsed = time.time() - first
        # 2 MiB steps, each followed by a 0.5 s pause: ~4 MiB a second, plus the mount's own reads.
        assert traffic[1] <= (2 + 4 * elapsed + 2) * MiB, (traffic, elapsed)
        wait_for_layer_bytes(registry, img, img.layers[0].size)
        took = time.time() - first
        assert took >= (img.layers[0].size / MiB - 2 - 2) / 4, took  # no faster than the cap allows
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)


def test_a_bad_prefetch_rate_is_a_usage_error(ocifs, registry, repo, workdir):
    ref, _ = images.push_containerdisk(registry, repo, disk_bytes(10_000, seed=73), "none")
    (workdir / "m").mkdir()
    res = ocifs("mount", TLS, "--prefetch-all", "--prefetch-rate", "fast", ref, workdir / "m", check=False)
    assert res.returncode == 2, res.describe()
    assert "--prefetch-rate" in res.stderr, res.describe()


@pytest.mark.parametrize("kind", ["gzip", "zstd-multiframe"])
def test_a_raw_disk_in_a_compressed_layer_is_read_again_from_its_kept_chunks(kind, ocifs, registry, repo, workdir):
    """--cluster-cache for a raw disk: the 64 KiB chunks a mount's reads decompress are kept
    (zero ones only in memory), and the next mount reads them without the layer."""
    data = disk_bytes(12 * MiB, seed=45) + bytes(MiB) + disk_bytes(3 * MiB + 5000, seed=46)
    ref, img = images.push_containerdisk(registry, repo, data, kind, frame_size=FRAME)
    digest = img.layers[0].digest
    cache = workdir / "cache"
    unit = 64 * 1024
    nonzero = sum(1 for i in range(0, len(data), unit) if data[i:i + unit].count(0) != len(data[i:i + unit]))
    with Mount(ref, workdir / "m1", TLS, cache_dir=cache, stats=True) as m:
        # At full speed: the reads keep the chunks themselves (docs/cache-format.md "Kept
        # pieces"), so none is dropped however busy the machine is.
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    assert m.stats["cluster_cache_dropped"] == 0, m.stats
    kept = kept_pieces(cache, f"{digest}:raw-chunks-*", piece_size=unit)
    assert len(kept) == nonzero, f"{len(kept)} chunks kept, {nonzero} not all zeros"

    def second_mount(*args) -> tuple[int, dict]:
        # Without the layer's chunks, whatever the mount does not find kept comes from the registry.
        for d in (cache / "chunks").glob(f"*/{digest}"):
            shutil.rmtree(d)
        before = layer_traffic(registry, img)[1]
        with Mount(ref, workdir / "m2", TLS, *args, cache_dir=cache, stats=True) as m2:
            assert_reads_match(m2.dir / "disk.img", data, read_plan(len(data), seed=47))
            assert_same_bytes((m2.dir / "disk.img").read_bytes(), data)
        return layer_traffic(registry, img)[1] - before, m2.stats

    kept_bytes, stats = second_mount()
    assert stats["cluster_cache_hits"] >= nonzero, stats
    off_bytes, stats_off = second_mount("--cluster-cache", "off")
    assert stats_off["cluster_cache_hits"] == 0, stats_off
    # Kept: only what the mount reads itself to open the disk (its first and last bytes)
    # and the zero chunks, each a span or frame of the layer (the gzip index and the zstd
    # frame table are side files: no walk of the layer); off: the whole layer again.
    assert off_bytes >= img.layers[0].size * 0.9, (off_bytes, img.layers[0].size)
    assert kept_bytes <= off_bytes // 2, (kept_bytes, off_bytes)


def zero_block_runs(stream: bytes, block: int = 4096, min_run: int = 64 * 1024) -> list[tuple[int, int]]:
    """[start, end) of each run of all-zero `block`s (aligned in `stream`) of at least
    `min_run` bytes: the runs a gzip layer's first pass keeps (src/decode/zero_ranges.h)."""
    runs, start = [], None
    for off in range(0, len(stream) + block, block):
        part = stream[off:off + block]
        if part and part.count(0) == len(part):
            start = off if start is None else start
            continue
        end = min(off, len(stream))
        if start is not None and end - start >= min_run:
            runs.append((start, end))
        start = None
    return runs


def test_a_raw_disk_in_a_gzip_layer_reports_its_zeros_as_holes_and_a_later_mount_knows_them_from_the_index(
        ocifs, registry, repo, workdir):
    """The first pass notes the runs of zeros (>= 64 KiB, in 4 KiB blocks of the tar stream);
    SEEK_HOLE reports them, the gzip index keeps them (docs/gzip-index-format.md, version 2),
    and a mount that loads the index knows them before reading anything: reads there fetch
    nothing."""
    zero_regions = [(1 * MiB, 7 * MiB), (9 * MiB, 12 * MiB)]
    data = bytearray(disk_bytes(14 * MiB, seed=81))
    for a, b in zero_regions:
        data[a:b] = bytes(b - a)
    data[13 * MiB:13 * MiB + 40 * 1024] = bytes(40 * 1024)  # too short to be a hole
    data = bytes(data)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    stream = img.layers[0].tar
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        base = tar.getmember("disk/disk.img").offset_data
    holes = [(max(a, base) - base, min(b, base + len(data)) - base) for a, b in zero_block_runs(stream)
             if b > base and a < base + len(data)]
    assert len(holes) == len(zero_regions), holes  # the 40 KiB run is too short
    want_runs, pos = [], 0
    for a, b in holes:
        want_runs.append((pos, a))
        pos = b
    want_runs.append((pos, len(data)))
    cache = workdir / "cache"
    with Mount(ref, workdir / "m1", TLS, "--cluster-cache", "off", cache_dir=cache) as m:
        image = m.dir / "disk.img"
        assert_same_bytes(image.read_bytes(), data)  # the pass ran to the end
        assert data_runs(image) == want_runs
        deadline = time.monotonic() + 30
        while not list((cache / "side").glob("*.gzidx")):
            assert time.monotonic() < deadline, "the gzip index was not saved"
            time.sleep(0.05)
    shutil.rmtree(cache / "chunks")  # the index stays; every byte read now comes from the registry
    before = layer_traffic(registry, img)[1]
    with Mount(ref, workdir / "m2", TLS, "--cluster-cache", "off", cache_dir=cache) as m:
        image = m.dir / "disk.img"
        assert data_runs(image) == want_runs  # known from the index, nothing read yet
        mounted = layer_traffic(registry, img)[1]
        fd = os.open(image, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no kernel read-ahead into the data around
            for a, b in holes:
                for at in range(a + 256 * 1024, b - 256 * 1024, 64 * 1024):
                    assert os.pread(fd, 64 * 1024, at) == bytes(64 * 1024)
        finally:
            os.close(fd)
        assert layer_traffic(registry, img)[1] == mounted, "reading known zeros fetched layer bytes"
        assert_reads_match(image, data, read_plan(len(data), seed=82))
    # The mount reads the tar header and checks the blob's tail against the index: a 1 MiB
    # miss group each, out of a 14 MiB layer.
    assert mounted - before <= 2 * MiB + 64 * 1024, "the mount fetched more than its first reads need"
