"""The acceleration artifact for zstd layers (docs/accel-format.md): a zstd layer
of several frames without a seek table gets its frame table, with a CRC-32 of
every frame's decoded bytes, so a fresh node neither walks the whole layer to
find its frames nor trusts the table for the bytes it returns; a single-frame
layer gets a checkpoint index (docs/zstd-checkpoint-format.md), with a CRC-32
of every 64 KiB of the decoded layer. How a fresh mount reads the end of such
a disk without the whole layer: test_accelerate.py.

Fetches are counted by the registry's request log; every read is compared with
the disk's bytes.
"""

from __future__ import annotations

import json
import os
import random
import struct
import zlib

import pytest

from support import images
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan
from support.processes import Mount

from test_accelerate import TLS, accelerate, blob_bytes_of, layer_bytes, phrase_disk, push_artifact_like

ZSTD_FRAMES = "application/vnd.oci-fs.zstd-frames.v2"
ZSTD_CHECKPOINTS = "application/vnd.oci-fs.zstd-checkpoints.v2"  # what accelerate pushes: table first, read lazily
ZSTD_CHECKPOINTS_V1 = "application/vnd.oci-fs.zstd-checkpoints.v1"  # what older versions pushed: fetched whole
RAW_SPANS = "application/vnd.oci-fs.raw-spans.v1"  # a zstd layer's raw blocks (docs/raw-spans-format.md)
V2_HEADER, V2_RECORD = 64, 40


@pytest.mark.parametrize("compression,frame_size,kind,media_type", [
    ("zstd-multiframe", MiB, "zstd frame table", ZSTD_FRAMES),
    # Frames over 1 MiB get checkpoints inside them, as one frame does.
    ("zstd-multiframe", 3 * MiB, "zstd checkpoint index", ZSTD_CHECKPOINTS),
    ("zstd", 0, "zstd checkpoint index", ZSTD_CHECKPOINTS)])
def test_inspect_shows_the_zstd_index(compression, frame_size, kind, media_type, ocifs, registry, repo):
    sizing = {"frame_size": frame_size} if frame_size else {}
    ref, _ = images.push_containerdisk(registry, repo, disk_bytes(8 * MiB, seed=81), compression, **sizing)
    artifact = accelerate(ocifs, ref)
    out = ocifs("inspect", TLS, ref).stdout.decode()
    # A random disk: its raw blocks are listed where it has checkpoints.
    raw = "1 raw span table, " if kind == "zstd checkpoint index" else ""
    assert f"Accel: {artifact} (1 {kind}, 1 tar index, {raw}0 profiles" in out, out
    j = json.loads(ocifs("inspect", TLS, "--json", ref).stdout)
    assert j["accel"]["indexes"][0]["mediaType"] == media_type
    assert j["accel"]["indexes"][0]["kind"] == kind


def spoil_a_frame_crc(table: bytes) -> bytes:
    """The frame table (docs/zstd-frames-format.md, version 2 with CRCs) with frame
    10's CRC changed and the file's CRC made right again."""
    version, count, _blob, flags = struct.unpack_from("<IIQI", table, 8)
    assert (version, flags) == (2, 1) and count > 10
    body = bytearray(table[:-4])
    body[28 + 10 * 36 + 32] ^= 0xFF
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def v2_table(index: bytes) -> int:
    """The length of a version 2 checkpoint index's table (docs/zstd-checkpoint-format.md)."""
    assert index[:8] == b"OCIFSZCI" and struct.unpack_from("<I", index, 8)[0] == 2
    return struct.unpack_from("<Q", index, 56)[0]


def v2_records(index: bytes):
    """(in, out, kind, dict_size, zdict_offset, zdict_length, zdict_crc) of each checkpoint."""
    count, = struct.unpack_from("<Q", index, 48)
    for i in range(count):
        at = V2_HEADER + V2_RECORD * i
        in_, out, kind = struct.unpack_from("<QQB", index, at)
        yield (in_, out, kind) + struct.unpack_from("<IQII", index, at + 20)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def spoil_a_block_crc(index: bytes) -> bytes:
    """The version 2 checkpoint index with the CRC of decoded block 20 changed (the
    checksums end the table, before its own CRC), the table's CRC made right again."""
    decoded, = struct.unpack_from("<Q", index, 24)
    block, = struct.unpack_from("<I", index, 36)
    blocks = -(-decoded // block)
    assert blocks > 20
    table = v2_table(index)
    body = bytearray(index[:table - 4])
    body[len(body) - 4 * blocks + 4 * 20] ^= 0xFF
    return with_crc(bytes(body)) + index[table:]


def spoil_the_last_dictionary(index: bytes) -> bytes:
    """The version 2 checkpoint index with a byte of its last dictionary changed (the
    one a read of the disk's end decodes from), its CRC-32 left as it was."""
    last = [r for r in v2_records(index) if r[5] > 0][-1]
    body = bytearray(index)
    body[last[4] + last[5] // 2] ^= 0x40
    return bytes(body)


def as_version_1(index: bytes) -> bytes:
    """A version 2 checkpoint index in the version 1 layout (each dictionary after its
    record), as older oci-fs versions pushed it."""
    header = bytearray(index[:56])
    struct.pack_into("<I", header, 8, 1)
    out = bytes(header)
    records = list(v2_records(index))
    for in_, o, kind, dict_size, zoff, zlen, _zcrc in records:
        out += struct.pack("<QQB3xII", in_, o, kind, dict_size, zlen) + index[zoff:zoff + zlen]
    out += index[V2_HEADER + V2_RECORD * len(records):v2_table(index) - 4]  # the block checksums
    return with_crc(out)


@pytest.mark.parametrize("compression,kind,media_type,spoil", [
    ("zstd-multiframe", "zstd frame table", ZSTD_FRAMES, spoil_a_frame_crc),
    ("zstd", "zstd checkpoint index", ZSTD_CHECKPOINTS, spoil_a_block_crc)], ids=["frames", "checkpoints"])
def test_a_zstd_index_with_a_wrong_crc_still_reads_exact_bytes_and_is_logged_once(
        compression, kind, media_type, spoil, ocifs, registry, repo, workdir):
    data = disk_bytes(24 * MiB, seed=83)
    ref, img = images.push_containerdisk(registry, repo, data, compression)
    # Without the raw span table: reads inside raw blocks would copy them and never
    # decode (nor check) the spoilt block (the table's own checks: below).
    push_artifact_like(registry, repo, accelerate(ocifs, ref), spoil, media_type, drop=(RAW_SPANS,))
    log = workdir / "mount.log"
    cache = workdir / "cache"
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=84, random_reads=30))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    text = log.read_text()
    used = {"zstd frame table": "installed the zstd frame table",
            "zstd checkpoint index": "reading the zstd checkpoint index of layer"}[kind]
    assert used in text, text  # the spoilt artifact was the one used
    wrong = [l for l in text.splitlines() if f"{kind} of" in l and "is wrong" in l and "proved wrong" in l]
    assert len(wrong) == 1, text
    # The mount dropped the index (a frame table: saved the frames it located in its place;
    # a checkpoint index: deleted it, streaming the layer): a second mount reads quietly.
    log.write_text("")
    with Mount(ref, workdir / "m2", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    text = log.read_text()
    assert "is wrong" not in text and used not in text, text


def test_a_mount_with_the_artifact_fetches_the_checkpoint_table_and_the_dictionary_it_needs_not_the_whole_index(
        ocifs, registry, repo, workdir):
    # Compressible, with matches reaching back across checkpoints: every dictionary holds content.
    data = phrase_disk(64 * MiB, seed=85)
    ref, img = images.push_containerdisk(registry, repo, data, "zstd")
    artifact = accelerate(ocifs, ref)
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    [piece] = [l for l in manifest["layers"] if l["mediaType"] == ZSTD_CHECKPOINTS]
    index = registry.client().get_blob(repo, piece["digest"]).body
    table = v2_table(index)
    dicts = [r for r in v2_records(index) if r[5] > 0]
    assert len(dicts) > 50 and table * 4 < len(index), (len(dicts), table, len(index))
    before = blob_bytes_of(registry, piece["digest"])
    layer_before = layer_bytes(registry, img)
    log = workdir / "mount.log"
    # 64 KiB chunks: the index blob is fetched by the chunk (the layer by its 1 MiB miss group).
    with Mount(ref, workdir / "m", TLS, "--chunk-size=64K", "--log-level=info", f"--log-file={log}",
               cache_dir=workdir / "cache", stats=True) as m:
        at_mount = blob_bytes_of(registry, piece["digest"]) - before
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - MiB, MiB)])
        first_read = blob_bytes_of(registry, piece["digest"]) - before
        first_layer = layer_bytes(registry, img) - layer_before
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=86, random_reads=20))
    # The table (and the chunk it ends in) at mount.
    assert table <= at_mount <= table + 2 * 65536, (at_mount, table, len(index))
    # The last MiB: the dictionaries of its few segments (their chunks), not the rest.
    biggest = max(r[5] for r in dicts)
    assert first_read - at_mount <= 8 * (biggest + 2 * 65536), (first_read, at_mount, biggest, len(index))
    assert first_read <= len(index) // 4, (first_read, len(index))
    assert first_layer <= 8 * MiB, (first_layer, img.layers[0].size)
    text = log.read_text()
    assert "reading the zstd checkpoint index of layer" in text, text
    assert "is wrong" not in text, text


@pytest.mark.parametrize("piece", ["dictionary", "raw span table"])
def test_a_tampered_zstd_piece_still_reads_exact_bytes_and_is_logged_once(piece, ocifs, registry, repo, workdir):
    """A checkpoint's dictionary changed (its CRC-32 not), or a raw span table whose unit
    CRC-32s do not match the blob's bytes (docs/raw-spans-format.md)."""
    if piece == "dictionary":
        data, spoil, media, what, why = (phrase_disk(16 * MiB, seed=87), spoil_the_last_dictionary, ZSTD_CHECKPOINTS,
                                         "zstd checkpoint index of", "does not match its CRC-32")
    else:
        data, spoil, media, what, why = (raw_disk(16 * MiB, seed=93), spoil_a_unit_crc, RAW_SPANS,
                                         "raw span table of", "do not match their CRC-32s")
    ref, img = images.push_containerdisk(registry, repo, data, "zstd")
    push_artifact_like(registry, repo, accelerate(ocifs, ref), spoil, media)
    log = workdir / "mount.log"
    cache = workdir / "cache"
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - MiB, MiB)])
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    text = log.read_text()
    assert "reading the zstd checkpoint index of layer" in text, text
    wrong = [l for l in text.splitlines() if what in l and "is wrong" in l]
    assert len(wrong) == 1, text
    assert why in wrong[0], wrong


def test_an_artifact_with_a_version_1_zstd_checkpoint_index_still_serves_exact_bytes(
        ocifs, registry, repo, workdir):
    data = phrase_disk(32 * MiB, seed=89)
    ref, img = images.push_containerdisk(registry, repo, data, "zstd")
    push_artifact_like(registry, repo, accelerate(ocifs, ref), as_version_1, ZSTD_CHECKPOINTS,
                       new_media_type=ZSTD_CHECKPOINTS_V1)
    log = workdir / "mount.log"
    layer_before = layer_bytes(registry, img)
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - MiB, MiB)])
        first_read = layer_bytes(registry, img) - layer_before
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=90, random_reads=20))
    text = log.read_text()
    assert "installed the zstd checkpoint index" in text, text  # fetched whole, as before
    assert "is wrong" not in text, text
    assert first_read <= 8 * MiB, (first_read, img.layers[0].size)  # the last MiB's segments, not the layer


def raw_spans_of(index: bytes) -> list[tuple[int, int, int]]:
    """(in, out, size) of each span of a raw span table (docs/raw-spans-format.md)."""
    assert index[:8] == b"OCIFSRAW" and struct.unpack_from("<I", index, 8)[0] == 1
    count, = struct.unpack_from("<Q", index, 32)
    return [struct.unpack_from("<QQI", index, 48 + 20 * k) for k in range(count)]


def spoil_a_unit_crc(index: bytes) -> bytes:
    """The raw span table with the CRC-32 of the middle unit of every span changed,
    the file's CRC made right again."""
    spans = raw_spans_of(index)
    body = bytearray(index[:-4])
    at = 48 + 20 * len(spans)
    for in_, _out, size in spans:
        units = (in_ + size - 1) // 4096 - in_ // 4096 + 1
        body[at + 4 * (units // 2)] ^= 0xFF
        at += 4 * units
    return with_crc(bytes(body))


def raw_disk(size: int, seed: int) -> bytes:
    """Random 1 MiB stretches (stored as zstd raw blocks) between 256 KiB of phrases."""
    rng = random.Random(seed)
    phrases = phrase_disk(256 * 1024, seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(MiB) + phrases
    return bytes(out[:size])


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_a_read_inside_raw_blocks_needs_its_own_bytes_not_a_segment(compression, ocifs, registry, repo, workdir):
    """zstd raw blocks and deflate stored blocks (docs/raw-spans-format.md)."""
    data = raw_disk(32 * MiB, seed=91)
    ref, img = images.push_containerdisk(registry, repo, data, compression)
    artifact = accelerate(ocifs, ref)
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    [piece] = [l for l in manifest["layers"] if l["mediaType"] == RAW_SPANS]
    spans = raw_spans_of(registry.client().get_blob(repo, piece["digest"]).body)
    assert sum(s for _i, _o, s in spans) >= 24 * MiB, len(spans)
    without = push_artifact_like(registry, repo, artifact, None, RAW_SPANS)
    # 4 KiB reads in the middle of random stretches, recorded as a profile (the compressed
    # bytes each read needed). A raw disk in a compressed layer is read in 64 KiB chunks of
    # its decoded bytes (ImageStack::kRawChunkBytes): with the table a read needs that
    # chunk's own units (17 at most); through the index alone, the segments (zstd: 256 KiB
    # of output from their restart point) or spans (gzip) around them.
    reads = [(k * (MiB + 256 * 1024) + 400 * 1024 + 1000, 4096) for k in range(4, 20, 2)]

    def needed(name: str, pin: str) -> tuple[int, str]:
        """The profile units the reads needed (and the mount's opening reads), and the log."""
        log, profile = workdir / f"{name}.log", workdir / f"{name}.profile"
        with Mount(ref, workdir / name, TLS, f"--accel={pin}", "--log-level=debug", f"--log-file={log}",
                   f"--record-profile={profile}", cache_dir=workdir / f"cache-{name}") as m:
            with open(m.dir / "disk.img", "rb", buffering=0) as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)  # no kernel read-ahead
                for at, n in reads:
                    assert os.pread(f.fileno(), n, at) == data[at:at + n], at
        return profile_units(profile, img.layers[0].digest), log.read_text()

    with_units, text = needed("with", artifact)
    assert "raw blocks" in text and "read as they are" in text, text
    without_units, text = needed("without", f"{artifact.split('@')[0]}@{without}")
    assert "read as they are" not in text, text
    # 8 units more: what the mount reads to open the layer (the tar header, the disk's first sector).
    assert with_units <= 17 * len(reads) + 8, (with_units, without_units)
    if compression == "zstd":
        # Through the checkpoint index alone a read decodes, and is recorded as, its segment.
        assert without_units >= 3 * with_units, (with_units, without_units)
    else:
        # A gzip read is recorded as the bytes it needed however it was read (the checksum
        # blocks an inflate reads around them are not its need: docs/profile-format.md), so
        # the two recordings name about the same; what the table changes is the fit
        # (tests/stack/accel_profile_test.cc: stored-block units stay as they are) and the
        # read (a copy, the log line above).
        assert without_units <= 17 * len(reads) + 8 + 16, (with_units, without_units)


def profile_units(path, digest: str) -> int:
    """How many units a recorded profile (docs/profile-format.md) names of blob `digest`."""
    units, current = 0, None
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("oci-fs-profile") or line.startswith("chunk-size"):
            continue
        if line.startswith("blob "):
            current = line.split()[1]
        elif current == digest:
            first, _, last = line.partition("-")
            units += int(last or first) - int(first) + 1
    return units
