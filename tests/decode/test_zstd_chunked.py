"""zstd:chunked layers as buildah pushes them (docs/zstd-chunked.md): a first mount
reads the layer's TOC and serves disk.img at random from its first read, with no
acceleration artifact and no first pass; a TOC that lies never yields wrong bytes.

The image is built and pushed by buildah itself (vfs storage under the test's own
directory, removed at the end, also on failure) to the test's docker-registry.
Fetches are counted by the registry's request log.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import processes
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan, scan_reads
from support.images import sha256
from support.processes import Mount

TLS = "--tls-verify=false"
POSITION = "io.containers.zstd-chunked.manifest-position"
CHECKSUM = "io.containers.zstd-chunked.manifest-checksum"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

pytestmark = pytest.mark.skipif(
    shutil.which("buildah") is None or os.geteuid() != 0 or shutil.which("qemu-img") is None,
    reason="needs buildah (scripts/install-deps.sh), qemu-img and root")


class Buildah:
    """buildah with its own storage under `root`; the directory goes with close()."""

    def __init__(self, root: Path):
        self.root = root
        self.args = ["buildah", "--root", str(root / "storage"), "--runroot", str(root / "run"),
                     "--storage-driver", "vfs"]

    def run(self, *args: str, timeout: float = 300) -> str:
        r = subprocess.run(self.args + list(args), capture_output=True, text=True, timeout=timeout,
                           start_new_session=True)
        assert r.returncode == 0, f"buildah {' '.join(args)}: {r.stderr[-2000:]}"
        return r.stdout

    def close(self) -> None:
        subprocess.run(self.args + ["rmi", "--all", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def buildah(workdir):
    b = Buildah(workdir / "buildah")
    try:
        yield b
    finally:
        b.close()


def push_chunked_disk(buildah: Buildah, registry, repo: str, workdir: Path, raw: bytes) -> tuple[str, bytes]:
    """A qcow2 of `raw` in disk/ pushed zstd:chunked as repo:v1; returns (ref, the raw disk)."""
    ctx = workdir / "ctx"
    (ctx / "disk").mkdir(parents=True)
    (workdir / "source.raw").write_bytes(raw)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(workdir / "source.raw"),
                    str(ctx / "disk" / "disk.qcow2")], check=True, capture_output=True)
    converted = workdir / "converted.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(ctx / "disk" / "disk.qcow2"),
                    str(converted)], check=True, capture_output=True)
    (ctx / "Containerfile").write_text("FROM scratch\nADD disk/disk.qcow2 /disk/\n")
    tag = f"localhost/{repo.replace('/', '-')}:v1"
    buildah.run("bud", "--isolation", "chroot", "-t", tag, str(ctx))
    ref = registry.ref(repo, "v1")
    buildah.run("push", TLS, "--compression-format", "zstd:chunked", tag, f"docker://{ref}")
    return ref, converted.read_bytes()


def manifest_of(registry, repo: str, tag: str = "v1") -> dict:
    r = registry.client().get_manifest(repo, tag, accept=OCI_MANIFEST)
    assert r.status == 200, r.status
    return r.json()


def put_manifest(registry, repo: str, tag: str, manifest: dict) -> str:
    return registry.client().put_manifest(repo, tag, json.dumps(manifest).encode(), OCI_MANIFEST)


def layer_bytes(registry, digest: str) -> int:
    return sum(r.written for r in registry.blob_gets() if r.digest == digest)


@pytest.fixture
def chunked_image(buildah, registry, repo, workdir):
    raw = disk_bytes(64 * MiB, seed=141)
    ref, want = push_chunked_disk(buildah, registry, repo, workdir, raw)
    assert want == raw
    layer = manifest_of(registry, repo)["layers"][0]
    assert layer["mediaType"].endswith("+zstd") and POSITION in layer["annotations"], layer
    return ref, want, layer


def test_a_first_mount_reads_the_end_of_a_zstd_chunked_disk_without_the_whole_layer(
        ocifs, registry, repo, workdir, chunked_image):
    ref, want, layer = chunked_image
    assert f"{layer['digest']} {layer['size']} zstd (zstd:chunked TOC)" in ocifs("inspect", TLS, ref).text
    assert json.loads(ocifs("inspect", "--json", TLS, ref).text)["layers"][0]["toc"] == "zstd:chunked"
    before = layer_bytes(registry, layer["digest"])
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", cache_dir=workdir / "cache", stats=True) as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
        first = layer_bytes(registry, layer["digest"]) - before
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=142, random_reads=20))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    print(f"zstd:chunked: last MiB on a fresh cache fetched {first} of {layer['size']} layer bytes")
    # The TOC, the tar headers' frames, the qcow2 tables and the last MiB's chunks: not the layer.
    assert first <= 12 * MiB, (first, layer["size"])
    assert first * 4 < layer["size"]

    # A remount on the same cache has the TOC and the frame table beside it: nothing to fetch for the open.
    before = layer_bytes(registry, layer["digest"])
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
    assert layer_bytes(registry, layer["digest"]) == before
    side = list((workdir / "cache").rglob("*.zstdtoc"))
    assert len(side) == 1, side


def test_a_wrong_manifest_position_falls_back_to_the_stream_and_reads_exact_bytes(
        registry, repo, workdir, chunked_image):
    ref, want, layer = chunked_image
    manifest = manifest_of(registry, repo)
    offset, length, size, kind = manifest["layers"][0]["annotations"][POSITION].split(":")
    manifest["layers"][0]["annotations"][POSITION] = f"{int(offset) + 1}:{length}:{size}:{kind}"
    put_manifest(registry, repo, "moved", manifest)
    with Mount(registry.ref(repo, "moved"), workdir / "mnt", TLS, "--accel=off", "--log-level=warn",
               cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB), (0, MiB)])
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    assert "plain zstd stream" in m.result.output, m.result.describe()


def _zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout


def test_a_toc_whose_chunk_digest_lies_fails_that_chunk_with_eio_never_wrong_bytes(
        registry, repo, workdir, chunked_image):
    ref, want, layer = chunked_image
    blob = registry.client().get_blob(repo, layer["digest"]).body
    offset, length, _, _ = (int(x) for x in layer["annotations"][POSITION].split(":"))
    toc = json.loads(subprocess.run(["zstd", "-q", "-d", "-c"], input=blob[offset:offset + length],
                                    capture_output=True, check=True).stdout)
    # A chunk from the middle of the qcow2 (guest data, not its tables) gets another digest.
    chunks = sorted((i for i, e in enumerate(toc["entries"]) if e.get("chunkDigest") and not e.get("chunkType")),
                    key=lambda i: toc["entries"][i]["offset"])
    middle = chunks[len(chunks) // 2]
    toc["entries"][middle]["chunkDigest"] = "sha256:" + hashlib.sha256(b"not these bytes").hexdigest()
    text = json.dumps(toc).encode()
    packed = _zstd(text)
    head = blob[:offset - 8]
    tail = len(packed).to_bytes(4, "little")
    new_blob = head + bytes.fromhex("502a4d18") + tail + packed
    new_digest = registry.client().put_blob(repo, new_blob)
    manifest = manifest_of(registry, repo)
    manifest["layers"][0].update(digest=new_digest, size=len(new_blob))
    manifest["layers"][0]["annotations"][POSITION] = f"{offset}:{len(packed)}:{len(text)}:1"
    manifest["layers"][0]["annotations"][CHECKSUM] = sha256(packed)
    put_manifest(registry, repo, "lying", manifest)

    with Mount(registry.ref(repo, "lying"), workdir / "mnt", TLS, "--accel=off",
               cache_dir=workdir / "cache") as m:
        errors, good = scan_reads(m.dir / "disk.img", want)
    assert errors and good, (errors, good)


def test_accelerate_leaves_a_zstd_chunked_layer_to_its_own_toc(ocifs, registry, repo, workdir, chunked_image):
    ref, want, layer = chunked_image
    out = ocifs("accelerate", TLS, "--work-dir", str(workdir), ref, timeout=300)
    artifact = out.text.strip().splitlines()[-1]
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    # No zstd index (the TOC is one already), only the layer's tar index; and a line saying why.
    assert [p["mediaType"] for p in manifest["layers"]] == ["application/vnd.oci-fs.tar-index.v2"], manifest
    assert "zstd:chunked: read at random through its own TOC" in out.stderr, out.describe()
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
