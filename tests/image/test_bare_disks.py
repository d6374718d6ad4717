"""Disk artifacts without a tar: KubeVirt's VM export artifacts and ORAS-pushed disk files.

Each artifact is built here (manifest with artifactType, config, layers that are the
disk itself, annotations as KubeVirt and ORAS write them), pushed by the suite's own
client to a real docker-registry and mounted with `oci-fs mount`: the bytes must be
the source's (`qemu-img convert -O raw` for qcow2), the holes of a raw disk must show
through SEEK_DATA/SEEK_HOLE, a read in the middle must fetch a small part of the
blob, and bad input must be refused naming the layer or fail its reads with EIO.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from support import images
from support.fuse_checks import CHUNK, assert_same_bytes, data_runs
from support.images import Blob, canonical_json
from support.processes import Mount, OcifsError

KiB = 1 << 10
MiB = 1 << 20
TLS = "--tls-verify=false"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KUBEVIRT_VM = "application/vnd.kubevirt.virtualmachine.v1"
KUBEVIRT_CONFIG = "application/vnd.kubevirt.virtualmachine.config.v1+json"
KUBEVIRT_RAW_ZSTD = "application/vnd.kubevirt.disk.raw+zstd"
ORAS_UNKNOWN = "application/vnd.unknown.artifact.v1"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"

assert shutil.which("zstd") and shutil.which("qemu-img"), "zstd / qemu-img not installed: run scripts/install-deps.sh"


# --------------------------------------------------------------------------- building artifacts


def push_artifact(registry, repo: str, tag: str, layers: list[Blob], config: Blob,
                  artifact_type: str | None) -> str:
    """Pushes config and layers, then the manifest (OCI 1.1 shape); returns the manifest digest."""
    client = registry.client()
    for blob in [config, *layers]:
        client.put_blob(repo, blob.data, blob.digest)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers]}
    if artifact_type:
        manifest["artifactType"] = artifact_type
    body = json.dumps(manifest, indent=2).encode()
    return client.put_manifest(repo, tag, body, OCI_MANIFEST)


def vm_config() -> Blob:
    spec = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "testvm"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}
    return Blob(canonical_json(spec), KUBEVIRT_CONFIG)


def empty_config() -> Blob:
    return Blob(b"{}", OCI_EMPTY)


def sparse_disk(size: int, runs: list[tuple[int, int]], seed: int) -> bytes:
    """A raw disk of `size` bytes, random data in `runs` ((start, end), 64 KiB aligned), zeros elsewhere."""
    rng = random.Random(seed)
    out = bytearray(size)
    for start, end in runs:
        out[start:end] = rng.randbytes(end - start)
    return bytes(out)


def zstd_streamed(data: bytes) -> bytes:
    """One zstd frame written by a streaming encoder: `zstd` reading a pipe, no content size."""
    proc = subprocess.run("cat | zstd -q -c -3", shell=True, input=data, capture_output=True, check=True)
    frame = proc.stdout
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    descriptor = frame[4]
    assert descriptor >> 6 == 0 and not descriptor & 0x20, "the frame carries a content size"
    return frame


def zstd_sized(data: bytes) -> bytes:
    """One zstd frame with its content size in the header (`zstd FILE`)."""
    return images.compress(data, "zstd")


def kubevirt_disk(name: str, raw: bytes, compressed: bytes, size_annotation: str | None = "auto") -> Blob:
    annotations = {"io.kubevirt.disk.name": name, TITLE: f"{name}.raw.zst"}
    if size_annotation == "auto":
        annotations["io.kubevirt.disk.size"] = f"{len(raw) // KiB}Ki"
    elif size_annotation is not None:
        annotations["io.kubevirt.disk.size"] = size_annotation
    return Blob(compressed, KUBEVIRT_RAW_ZSTD, annotations)


ROOT_RUNS = [(0, 256 * KiB), (MiB, MiB + 128 * KiB), (3 * MiB - 64 * KiB, 3 * MiB)]
DATA_RUNS = [(512 * KiB, 768 * KiB), (2 * MiB - 64 * KiB, 2 * MiB)]


@pytest.fixture
def kubevirt(registry, repo):
    """A KubeVirt VM export: rootdisk streamed without a content size, datadisk with one."""
    root = sparse_disk(3 * MiB, ROOT_RUNS, seed=1)
    data = sparse_disk(2 * MiB, DATA_RUNS, seed=2)
    layers = [kubevirt_disk("rootdisk", root, zstd_streamed(root)),
              kubevirt_disk("datadisk", data, zstd_sized(data), size_annotation=None)]
    digest = push_artifact(registry, repo, "vm", layers, vm_config(), KUBEVIRT_VM)
    return registry.ref(repo, "vm"), {"rootdisk": (root, ROOT_RUNS), "datadisk": (data, DATA_RUNS)}, digest


# --------------------------------------------------------------------------- KubeVirt VM export


@pytest.mark.parametrize("name", ["rootdisk", "datadisk"])
def test_each_disk_of_a_kubevirt_vm_export_mounts_by_name_with_its_holes(ocifs, kubevirt, workdir, name):
    ref, disks, _ = kubevirt
    raw, runs = disks[name]
    with Mount(ref, workdir / "mnt", TLS, "--disk", name, cache_dir=workdir / "cache") as m:
        image = m.dir / "disk.img"
        assert image.stat().st_size == len(raw)
        assert_same_bytes(image.read_bytes(), raw)
        # Read whole, the stream's zero runs are known: they are holes, the rest data.
        assert data_runs(image) == runs
    # A second mount reads the kept stream back from the cache directory.
    with Mount(ref, workdir / "mnt2", TLS, "--disk", name, cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), raw)


def test_a_vm_export_with_two_disks_and_no_choice_is_refused_listing_them(ocifs, kubevirt, workdir):
    ref, _, _ = kubevirt
    with pytest.raises(OcifsError) as refused:
        with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache"):
            pass
    message = refused.value.result.stderr
    assert "rootdisk" in message and "datadisk" in message and "--disk" in message, message
    with pytest.raises(OcifsError) as missing:
        with Mount(ref, workdir / "mnt", TLS, "--disk", "swap", cache_dir=workdir / "cache"):
            pass
    assert "swap" in missing.value.result.stderr and "rootdisk" in missing.value.result.stderr


def test_tree_mode_shows_every_disk_of_a_vm_export(ocifs, kubevirt, workdir):
    ref, disks, _ = kubevirt
    with Mount(ref, workdir / "mnt", TLS, "--mode", "tree", cache_dir=workdir / "cache") as m:
        assert sorted(os.listdir(m.dir)) == ["datadisk.img", "rootdisk.img"]
        for name, (raw, _) in disks.items():
            assert_same_bytes((m.dir / f"{name}.img").read_bytes(), raw, f"{name}.img")


def test_a_disk_is_picked_by_its_title_too(ocifs, kubevirt, workdir):
    ref, disks, _ = kubevirt
    with Mount(ref, workdir / "mnt", TLS, "--disk", "datadisk.raw.zst", cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), disks["datadisk"][0])


def test_inspect_ls_and_cat_describe_a_vm_export(ocifs, kubevirt, registry, repo):
    ref, disks, digest = kubevirt
    shown = json.loads(ocifs("inspect", "--json", TLS, ref).stdout)
    assert shown["artifactType"] == KUBEVIRT_VM
    assert shown["digest"] == digest
    assert shown["vmConfig"]["digest"] == vm_config().digest
    by_name = {d["name"]: d for d in shown["disks"]}
    assert set(by_name) == {"rootdisk", "datadisk"}
    assert by_name["rootdisk"]["format"] == "raw" and by_name["rootdisk"]["size"] == 3 * MiB
    assert by_name["rootdisk"]["title"] == "rootdisk.raw.zst"
    assert by_name["datadisk"]["format"] == "raw" and by_name["datadisk"]["size"] == 2 * MiB
    assert all(d["compression"] == "zstd" for d in shown["disks"])
    text = ocifs("inspect", TLS, ref).text
    assert f"ArtifactType: {KUBEVIRT_VM}" in text and "rootdisk raw 3145728 zstd" in text, text
    listing = ocifs("ls", TLS, ref).text
    assert "/rootdisk.img" in listing and "/datadisk.img" in listing, listing
    assert ocifs("cat", TLS, ref, "rootdisk").stdout == disks["rootdisk"][0]
    assert ocifs("cat", TLS, ref, "datadisk.img").stdout == disks["datadisk"][0]


def test_accelerate_makes_a_single_frame_vm_export_disk_random_access_from_the_first_read(
        ocifs, registry, repo, workdir):
    """`oci-fs accelerate` on a VM export: the raw+zstd layer (one streamed frame) gets its
    zstd checkpoints (no tar index: the layer is the disk), and a mount on a fresh node reads
    the disk's last MiB fetching a small part of the layer, where one without the artifact
    streams the layer to it."""
    rng = random.Random(14)
    raw = bytearray(rng.randbytes(24 * MiB))  # incompressible: the layer is about the disk's size
    raw[4 * MiB:6 * MiB] = bytes(2 * MiB)      # and a run of zeros
    raw = bytes(raw)
    layer = kubevirt_disk("rootdisk", raw, zstd_streamed(raw))
    push_artifact(registry, repo, "vm", [layer], vm_config(), KUBEVIRT_VM)
    ref = registry.ref(repo, "vm")

    def fetched() -> int:
        return sum(r.written for r in registry.blob_gets(repo) if r.digest == layer.digest)

    def read_last_mib(mnt: Path) -> None:
        fd = os.open(mnt / "disk.img", os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            assert os.pread(fd, MiB, len(raw) - MiB) == raw[-MiB:]
        finally:
            os.close(fd)

    before = fetched()
    with Mount(ref, workdir / "plain", TLS, "--accel=off", cache_dir=workdir / "cache-plain") as m:
        read_last_mib(m.dir)
    without = fetched() - before
    assert without >= layer.size * 9 // 10, (without, layer.size)

    out = ocifs("accelerate", TLS, ref, timeout=300).stdout.decode().strip()
    artifact = out.splitlines()[-1]
    assert artifact.startswith(f"{registry.host}/{repo}@sha256:"), out
    shown = ocifs("inspect", TLS, ref).text
    # Incompressible: zstd stores it in raw blocks, listed in a raw span table.
    assert f"Accel: {artifact} (1 zstd checkpoint index, 1 raw span table, 0 profiles" in shown, shown

    log = workdir / "mount.log"
    before = fetched()
    with Mount(ref, workdir / "accel", TLS, "--log-level=info", f"--log-file={log}",
               cache_dir=workdir / "cache") as m:
        read_last_mib(m.dir)
        first_read = fetched() - before
        # Whole, with its zeros; the artifact changes what is fetched, never what is read.
        assert_same_bytes((m.dir / "disk.img").read_bytes(), raw)
    text = log.read_text()
    # accelerate pushes a version 2 index: read lazily (its table at open, dictionaries on use).
    assert "reading the zstd checkpoint index of layer" in text and "lazily" in text, text
    assert "is wrong" not in text, text
    # The last MiB: its checkpoint span and the chunks around it, not the layer.
    assert first_read <= 8 * MiB, (first_read, layer.size)
    assert first_read * 3 < without, (first_read, without)


# --------------------------------------------------------------------------- ORAS-pushed files


def make_qcow2(workdir: Path, size: int, seed: int) -> tuple[bytes, bytes]:
    """(qcow2 file, its `qemu-img convert -O raw`): random 64 KiB clusters every 512 KiB."""
    rng = random.Random(seed)
    src = workdir / "src.raw"
    with open(src, "wb") as f:
        f.truncate(size)
        for at in range(0, size, 512 * KiB):
            f.seek(at)
            f.write(rng.randbytes(64 * KiB))
    made = workdir / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", str(src),
                    str(made)], check=True, capture_output=True)
    back = workdir / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(made), str(back)], check=True,
                   capture_output=True)
    return made.read_bytes(), back.read_bytes()


def test_an_oras_pushed_qcow2_file_reads_as_qemu_img_converts_it_and_lazily(ocifs, registry, repo, workdir):
    qcow2, raw = make_qcow2(workdir, 64 * MiB, seed=3)
    layer = Blob(qcow2, "application/vnd.oci.image.layer.v1.tar", {TITLE: "disk.qcow2"})
    assert len(qcow2) > 8 * MiB
    push_artifact(registry, repo, "v1", [layer], empty_config(), ORAS_UNKNOWN)
    ref = registry.ref(repo, "v1")

    def fetched() -> int:
        return sum(r.written for r in registry.blob_gets(repo) if r.digest == layer.digest)

    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        image = m.dir / "disk.img"
        assert image.stat().st_size == 64 * MiB
        at_mount = fetched()
        fd = os.open(image, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            middle = 32 * MiB + 4096  # in the cluster written at 32 MiB
            assert os.pread(fd, 4096, middle) == raw[middle:middle + 4096]
        finally:
            os.close(fd)
        after = fetched()
        # The qcow2 header and tables, then about one chunk for the cluster: never the whole blob.
        assert at_mount <= 2 * CHUNK, f"the mount fetched {at_mount} of {len(qcow2)} bytes"
        assert after - at_mount <= 2 * CHUNK, f"one 4 KiB read fetched {after - at_mount} bytes"
        assert after < len(qcow2) // 2
        assert_same_bytes(image.read_bytes(), raw)


def test_a_qcow2_file_with_neither_disk_media_type_nor_title_is_known_by_its_bytes(ocifs, registry, repo, workdir):
    qcow2, raw = make_qcow2(workdir, 4 * MiB, seed=4)
    layer = Blob(gzip.compress(qcow2, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    push_artifact(registry, repo, "v1", [layer], empty_config(), None)
    with Mount(registry.ref(repo, "v1"), workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), raw)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_inspect_and_ls_tell_a_qcow2_by_its_bytes(ocifs, registry, repo, workdir, compression):
    """No disk media type, no title: inspect finds the qcow2 from one small read of the blob's head."""
    qcow2, raw = make_qcow2(workdir, 4 * MiB, seed=15)
    blob = {"none": qcow2, "gzip": gzip.compress(qcow2, mtime=0), "zstd": zstd_sized(qcow2)}[compression]
    media = "application/vnd.oci.image.layer.v1.tar" + ("" if compression == "none" else "+" + compression)
    layer = Blob(blob, media)
    push_artifact(registry, repo, "v1", [layer], empty_config(), None)
    ref = registry.ref(repo, "v1")
    name = "disk-" + layer.digest.split(":", 1)[1][:12]
    shown = json.loads(ocifs("inspect", "--json", TLS, ref).stdout)
    assert [(d["name"], d["format"], d["size"], d["compression"], d["layer"]) for d in shown["disks"]] == \
        [(name, "qcow2", 4 * MiB, compression, layer.digest)], shown
    text = ocifs("inspect", TLS, ref).text
    assert f"Disks:\n  {name} qcow2 {4 * MiB} {compression} {layer.digest}" in text, text
    listing = ocifs("ls", TLS, ref).text
    assert f"{4 * MiB} /{name}.img (qcow2 disk, layer {layer.digest})" in listing, listing
    assert ocifs("cat", TLS, ref, name).stdout == qcow2


def test_a_gzip_compressed_bare_raw_disk(ocifs, registry, repo, workdir):
    raw = sparse_disk(3 * MiB, [(0, 128 * KiB), (2 * MiB, 2 * MiB + 64 * KiB)], seed=5)
    layer = Blob(gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip", {TITLE: "disk.img.gz"})
    push_artifact(registry, repo, "v1", [layer], empty_config(), ORAS_UNKNOWN)
    with Mount(registry.ref(repo, "v1"), workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        image = m.dir / "disk.img"
        assert image.stat().st_size == len(raw)
        assert_same_bytes(image.read_bytes(), raw)


def test_an_lfedge_raw_disk_layer(ocifs, registry, repo, workdir):
    raw = sparse_disk(MiB, [(0, 64 * KiB)], seed=6)
    layer = Blob(raw, "application/vnd.lfedge.disk.layer.v1+raw")
    push_artifact(registry, repo, "v1", [layer], empty_config(), None)
    with Mount(registry.ref(repo, "v1"), workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), raw)


@pytest.mark.parametrize("found_by", ["title", "bytes", "media type"])
def test_an_oras_artifact_with_other_files_beside_the_disk(ocifs, registry, repo, workdir, found_by):
    """A README.md and a JSON file pushed with the disk (each titled, ORAS's default media type):
    neither is parsed as a tar; the disk is found by its title, its bytes or its media type,
    and inspect lists the others as files."""
    qcow2, raw = make_qcow2(workdir, 8 * MiB, seed=16)
    disk = Blob(qcow2, *{"title": ("application/vnd.oci.image.layer.v1.tar", {TITLE: "disk.qcow2"}),
                        "bytes": ("application/vnd.oci.image.layer.v1.tar", {}),
                        "media type": ("application/vnd.lfedge.disk.layer.v1+qcow2", {})}[found_by])
    readme = Blob(b"# A VM disk\n\nBoot it with virtctl.\n", "application/vnd.oci.image.layer.v1.tar",
                  {TITLE: "README.md"})
    spec = Blob(canonical_json({"cpus": 2, "memory": "2Gi"}) * 20, "application/json", {TITLE: "vm.json"})
    push_artifact(registry, repo, "v1", [readme, disk, spec], empty_config(), ORAS_UNKNOWN)
    ref = registry.ref(repo, "v1")
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), raw)
    with Mount(ref, workdir / "tree", TLS, "--mode", "tree", cache_dir=workdir / "cache") as m:
        assert len(os.listdir(m.dir)) == 1 and os.listdir(m.dir)[0].endswith(".img"), os.listdir(m.dir)
    shown = json.loads(ocifs("inspect", "--json", TLS, ref).stdout)
    assert [(d["format"], d["layer"]) for d in shown["disks"]] == [("qcow2", disk.digest)], shown
    assert [(f["title"], f["layer"], f["size"]) for f in shown["files"]] == \
        [("README.md", readme.digest, readme.size), ("vm.json", spec.digest, spec.size)], shown
    text = ocifs("inspect", TLS, ref).text
    assert f"Files:\n  README.md {readme.size} application/vnd.oci.image.layer.v1.tar {readme.digest}\n" \
        f"  vm.json {spec.size} application/json {spec.digest}" in text, text


def test_a_titled_layer_that_is_a_tar_stays_a_tar(ocifs, registry, repo, workdir):
    """A directory ORAS packed (titled, a tar) is merged as a tar: a containerDisk's disk/ in it is served."""
    raw = sparse_disk(MiB, [(0, 64 * KiB)], seed=17)
    tar = Blob(gzip.compress(images.make_tar([images.File("disk/disk.img", raw)]), mtime=0),
               "application/vnd.oci.image.layer.v1.tar+gzip", {TITLE: "vmdir", "io.deis.oras.content.unpack": "true"})
    readme = Blob(b"notes\n", "application/vnd.oci.image.layer.v1.tar", {TITLE: "README.md"})
    push_artifact(registry, repo, "v1", [tar, readme], empty_config(), ORAS_UNKNOWN)
    with Mount(registry.ref(repo, "v1"), workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), raw)


# --------------------------------------------------------------------------- bad input


def refused(ref: str, workdir: Path, *opts: str) -> str:
    with pytest.raises(OcifsError) as failed:
        with Mount(ref, workdir / "mnt", TLS, *opts, cache_dir=workdir / "cache"):
            pass
    return failed.value.result.stderr


def test_a_disk_media_type_over_something_else_is_refused_naming_the_layer(ocifs, registry, repo, workdir):
    raw = sparse_disk(MiB, [(0, 64 * KiB)], seed=7)
    cases = {
        "gzip": Blob(gzip.compress(raw), KUBEVIRT_RAW_ZSTD, {"io.kubevirt.disk.name": "a"}),
        "tar": Blob(zstd_sized(images.make_tar([images.File("disk/disk.img", raw)])), KUBEVIRT_RAW_ZSTD,
                    {"io.kubevirt.disk.name": "b"}),
        "qcow2": Blob(raw, "application/vnd.lfedge.disk.layer.v1+qcow2"),
    }
    for tag, layer in cases.items():
        push_artifact(registry, repo, tag, [layer], vm_config(), KUBEVIRT_VM)
        message = refused(registry.ref(repo, tag), workdir)
        assert layer.digest in message, (tag, message)
        assert {"gzip": "gzip data", "tar": "tar archive", "qcow2": "qcow2"}[tag] in message, (tag, message)


def refused_or_eio(ref: str, workdir: Path, digest: str, why: str, offset: int, good: bytes) -> None:
    """A stream found bad at its end: whether the mount already knows when it is ready
    depends on how far the stream's pass got, so either the mount is refused naming the
    layer, or the read at `offset` fails with EIO; a read at 0 is then EIO or `good`."""
    try:
        m = Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache").__enter__()
    except OcifsError as failed:
        message = failed.result.stderr
        assert digest in message and why in message, message
        return
    try:
        fd = os.open(m.dir / "disk.img", os.O_RDONLY)
        try:
            with pytest.raises(OSError) as eio:
                os.pread(fd, 4096, offset)
            assert eio.value.errno == errno.EIO
            try:
                assert os.pread(fd, 4096, 0) == good
            except OSError as e:
                assert e.errno == errno.EIO
        finally:
            os.close(fd)
    finally:
        m.unmount()


def test_a_size_annotation_that_disagrees_with_the_stream(ocifs, registry, repo, workdir):
    raw = sparse_disk(2 * MiB, [(0, 64 * KiB)], seed=8)
    # Known at open (the frame's content size): the mount is refused.
    sized = kubevirt_disk("rootdisk", raw, zstd_sized(raw), size_annotation="3Mi")
    push_artifact(registry, repo, "sized", [sized], vm_config(), KUBEVIRT_VM)
    message = refused(registry.ref(repo, "sized"), workdir)
    assert sized.digest in message and str(3 * MiB) in message, message
    # Known only at the stream's end: refused, or reads fail from then on (never zeros past the end).
    streamed = kubevirt_disk("rootdisk", raw, zstd_streamed(raw), size_annotation="3Mi")
    push_artifact(registry, repo, "streamed", [streamed], vm_config(), KUBEVIRT_VM)
    refused_or_eio(registry.ref(repo, "streamed"), workdir, streamed.digest, str(3 * MiB), 2 * MiB + 4096,
                   raw[:4096])


def test_a_truncated_zstd_stream_fails_reads_past_the_truncation_with_eio(ocifs, registry, repo, workdir):
    raw = random.Random(9).randbytes(6 * MiB)  # incompressible: the cut is far into the disk
    whole = zstd_streamed(raw)
    layer = kubevirt_disk("rootdisk", raw, whole[:len(whole) // 2])
    push_artifact(registry, repo, "v1", [layer], vm_config(), KUBEVIRT_VM)
    refused_or_eio(registry.ref(repo, "v1"), workdir, layer.digest, "truncated", 5 * MiB, raw[:4096])
    # Without a size annotation the size is learnt at the stream's end: the mount is refused.
    bare = Blob(whole[:len(whole) // 2], KUBEVIRT_RAW_ZSTD, {"io.kubevirt.disk.name": "rootdisk"})
    push_artifact(registry, repo, "nosize", [bare], vm_config(), KUBEVIRT_VM)
    message = refused(registry.ref(repo, "nosize"), workdir)
    assert bare.digest in message and "truncated" in message, message


def test_two_disks_with_one_name_are_refused(ocifs, registry, repo, workdir):
    a = sparse_disk(MiB, [(0, 64 * KiB)], seed=10)
    b = sparse_disk(MiB, [(64 * KiB, 128 * KiB)], seed=11)
    layers = [kubevirt_disk("rootdisk", a, zstd_sized(a)), kubevirt_disk("rootdisk", b, zstd_sized(b))]
    push_artifact(registry, repo, "v1", layers, vm_config(), KUBEVIRT_VM)
    message = refused(registry.ref(repo, "v1"), workdir, "--disk", "rootdisk")
    assert "rootdisk" in message and layers[0].digest in message and layers[1].digest in message, message


@pytest.mark.parametrize("title", ["../../etc/disk.img", "sub/disk.qcow2"])
def test_a_title_with_a_path_in_it_is_refused(ocifs, registry, repo, workdir, title):
    raw = sparse_disk(MiB, [(0, 64 * KiB)], seed=12)
    layer = Blob(raw, "application/vnd.oci.image.layer.v1.tar", {TITLE: title})
    push_artifact(registry, repo, "v1", [layer], empty_config(), ORAS_UNKNOWN)
    message = refused(registry.ref(repo, "v1"), workdir)
    assert layer.digest in message and "plain file name" in message, message
