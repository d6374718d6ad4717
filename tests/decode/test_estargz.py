"""eStargz layers (docs/estargz.md): a first mount reads the layer's footer and TOC
and serves disk.img at random from its first read, inflating only the gzip members
of the chunks a read touches, each checked against the TOC's chunkDigest; a damaged
chunk is EIO, never wrong bytes; a TOC that cannot be used falls back to the plain
gzip path with a warning, reading exact bytes.

support/estargz.py writes the layers here, since damaging them (a chunk, the TOC,
the footer) needs a writer we control; the first test checks them against real
readers (gzip, GNU tar). Layers written by the reference implementation
(stargz-snapshotter's `ctr-remote image convert --estargz`, a Debian package) are
tested in test_estargz_real.py. Fetches are counted by the test's
docker-registry's request log; qemu-img is the byte reference.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from support.estargz import FOOTER_SIZE, TOC_DIGEST, rewrite_toc, write_estargz
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan, scan_reads
from support.images import Image, push
from support.processes import Mount

TLS = "--tls-verify=false"
CHUNK = 512 << 10

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None or os.geteuid() != 0,
                                reason="needs qemu-img and root")


def qcow2_of(raw: bytes, workdir: Path) -> tuple[bytes, bytes]:
    """(a qcow2 of `raw`, what qemu-img reads back from it as raw)."""
    (workdir / "src.raw").write_bytes(raw)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(workdir / "src.raw"),
                    str(workdir / "disk.qcow2")], check=True, capture_output=True)
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(workdir / "disk.qcow2"),
                    str(workdir / "back.raw")], check=True, capture_output=True)
    return (workdir / "disk.qcow2").read_bytes(), (workdir / "back.raw").read_bytes()


def push_estargz(registry, repo: str, tag: str, layer) -> str:
    push(registry, repo, tag, Image([layer.layer()]))
    return registry.ref(repo, tag)


def layer_bytes(registry, digest: str) -> int:
    return sum(r.written for r in registry.blob_gets() if r.digest == digest)


def test_the_generated_layer_is_a_gzip_tar_that_gzip_and_gnu_tar_read(workdir):
    content = disk_bytes(3 * MiB + 1234, seed=150)
    e = write_estargz([("disk", None), ("disk/disk.img", content), ("disk/empty", b""), ("disk/small", b"hi")],
                      chunk_size=CHUNK)
    (workdir / "layer.tar.gz").write_bytes(e.blob)
    tar = subprocess.run(["gzip", "-dc", str(workdir / "layer.tar.gz")], check=True, capture_output=True).stdout
    assert tar == e.tar
    listing = subprocess.run(["tar", "-tf", "-"], input=tar, check=True, capture_output=True).stdout.decode()
    assert listing.split() == ["disk/", "disk/disk.img", "disk/empty", "disk/small", "stargz.index.json"]
    (workdir / "x").mkdir()
    subprocess.run(["tar", "-xf", "-", "-C", str(workdir / "x")], input=tar, check=True, capture_output=True)
    assert (workdir / "x/disk/disk.img").read_bytes() == content
    assert json.loads((workdir / "x/stargz.index.json").read_bytes()) == e.toc
    # The footer: an empty gzip member whose extra field gives the TOC's offset.
    assert gzip.decompress(e.blob[-FOOTER_SIZE:]) == b""
    assert e.blob[-FOOTER_SIZE + 16:-FOOTER_SIZE + 38] == b"%016xSTARGZ" % e.toc_offset
    # Every chunk's offset starts a gzip member that decodes to the chunk first.
    chunks = [x for x in e.toc["entries"] if "chunkDigest" in x and x["name"] == "disk/disk.img"]
    assert len(chunks) == 7
    for c in chunks:
        d = zlib.decompressobj(31).decompress(e.blob[c["offset"]:e.toc_offset])
        size = c.get("chunkSize") or len(content) - c.get("chunkOffset", 0)
        start = c.get("chunkOffset", 0)
        assert d[:size] == content[start:start + size]


@pytest.fixture
def qcow2_layer(workdir):
    raw = disk_bytes(24 * MiB, seed=151)
    qcow2, want = qcow2_of(raw, workdir)
    assert want == raw
    return write_estargz([("disk", None), ("disk/disk.qcow2", qcow2)], chunk_size=CHUNK), want


def test_a_first_mount_reads_the_end_of_an_estargz_qcow2_without_the_whole_layer(
        ocifs, registry, repo, workdir, qcow2_layer):
    layer, want = qcow2_layer
    ref = push_estargz(registry, repo, "v1", layer)
    digest = layer.layer().digest
    assert f"{digest} {len(layer.blob)} gzip (eStargz TOC)" in ocifs("inspect", TLS, ref).text
    assert json.loads(ocifs("inspect", "--json", TLS, ref).text)["layers"][0]["toc"] == "estargz"
    before = layer_bytes(registry, digest)
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", cache_dir=workdir / "cache",
               stats=True) as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
        first = layer_bytes(registry, digest) - before
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=152, random_reads=20))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    print(f"eStargz: last MiB on a fresh cache fetched {first} of {len(layer.blob)} layer bytes")
    # Footer, TOC, the header members, the qcow2 tables and the last MiB's chunks: not the layer.
    assert first * 3 < len(layer.blob), (first, len(layer.blob))


def test_a_raw_disk_in_an_estargz_layer_reads_back_exact(registry, repo, workdir):
    want = disk_bytes(20 * MiB + 4096 * 3, seed=153)
    layer = write_estargz([("disk", None), ("disk/disk.img", want)], chunk_size=CHUNK)
    ref = push_estargz(registry, repo, "v1", layer)
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=154, random_reads=30))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    assert "plain gzip" not in m.result.output, m.result.describe()


def test_a_damaged_chunk_fails_its_reads_with_eio_never_wrong_bytes(registry, repo, workdir):
    want = disk_bytes(8 * MiB, seed=155)
    layer = write_estargz([("disk", None), ("disk/disk.img", want)], chunk_size=CHUNK, tamper_chunk=6)
    ref = push_estargz(registry, repo, "v1", layer)
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", cache_dir=workdir / "cache") as m:
        errors, good = scan_reads(m.dir / "disk.img", want)
    assert errors and good, (errors, good)
    # Only around chunk 6 (bytes [3 MiB, 3.5 MiB)), with the kernel's read-ahead before it.
    assert all(3 * MiB - 1 * MiB <= off < 3 * MiB + CHUNK for off in errors), errors


@pytest.mark.parametrize("damage", ["annotation", "offset", "footer"])
def test_a_toc_that_cannot_be_used_falls_back_to_plain_gzip_with_exact_bytes(registry, repo, workdir, damage):
    want = disk_bytes(6 * MiB, seed=156)
    layer = write_estargz([("disk", None), ("disk/disk.img", want)], chunk_size=CHUNK)
    image_layer = layer.layer()
    if damage == "annotation":  # the TOC is not the one the annotation vouches for
        image_layer.annotations[TOC_DIGEST] = "sha256:" + "0" * 64
        why = "digest mismatch"
    elif damage == "offset":  # a chunk placed past the TOC
        toc = json.loads(layer.toc_json)
        next(x for x in toc["entries"] if x.get("chunkOffset"))["offset"] = layer.toc_offset + 10
        layer = rewrite_toc(layer, toc)
        image_layer = layer.layer()
        why = "content offset outside the layer's data"
    else:  # the footer's magic is gone
        blob = layer.blob[:-FOOTER_SIZE + 32] + b"NOTGZ!" + layer.blob[-FOOTER_SIZE + 38:]
        image_layer.data = blob
        why = "eStargz footer"
    push(registry, repo, "v1", Image([image_layer]))
    with Mount(registry.ref(repo, "v1"), workdir / "mnt", TLS, "--accel=off", "--log-level=warn",
               cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB), (0, MiB)])
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    assert "plain gzip stream" in m.result.output and why in m.result.output, m.result.describe()
