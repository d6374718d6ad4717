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
import struct
import zlib

import pytest

from support import images
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan
from support.processes import Mount

from test_accelerate import TLS, accelerate, push_artifact_like

ZSTD_FRAMES = "application/vnd.oci-fs.zstd-frames.v2"
ZSTD_CHECKPOINTS = "application/vnd.oci-fs.zstd-checkpoints.v1"


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
    assert f"Accel: {artifact} (1 {kind}, 0 profiles" in out, out
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


def spoil_a_block_crc(index: bytes) -> bytes:
    """The checkpoint index (docs/zstd-checkpoint-format.md) with the CRC of decoded
    block 20 changed (the table ends the file, before its own CRC), the file's CRC
    made right again."""
    assert index[:8] == b"OCIFSZCI"
    decoded, = struct.unpack_from("<Q", index, 24)
    block, = struct.unpack_from("<I", index, 36)
    blocks = -(-decoded // block)
    assert blocks > 20
    body = bytearray(index[:-4])
    body[len(body) - 4 * blocks + 4 * 20] ^= 0xFF
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


@pytest.mark.parametrize("compression,kind,media_type,spoil", [
    ("zstd-multiframe", "zstd frame table", ZSTD_FRAMES, spoil_a_frame_crc),
    ("zstd", "zstd checkpoint index", ZSTD_CHECKPOINTS, spoil_a_block_crc)], ids=["frames", "checkpoints"])
def test_a_zstd_index_with_a_wrong_crc_still_reads_exact_bytes_and_is_logged_once(
        compression, kind, media_type, spoil, ocifs, registry, repo, workdir):
    data = disk_bytes(24 * MiB, seed=83)
    ref, img = images.push_containerdisk(registry, repo, data, compression)
    push_artifact_like(registry, repo, accelerate(ocifs, ref), spoil, media_type)
    log = workdir / "mount.log"
    cache = workdir / "cache"
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=84, random_reads=30))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    text = log.read_text()
    assert f"installed the {kind}" in text, text  # the spoilt artifact was the one used
    wrong = [l for l in text.splitlines() if f"{kind} of" in l and "is wrong" in l and "proved wrong" in l]
    assert len(wrong) == 1, text
    # The mount dropped the index (a frame table: saved the frames it located in its place;
    # a checkpoint index: deleted it, streaming the layer): a second mount reads quietly.
    log.write_text("")
    with Mount(ref, workdir / "m2", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    text = log.read_text()
    assert "is wrong" not in text and f"installed the {kind}" not in text, text
