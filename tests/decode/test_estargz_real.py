"""eStargz layers made by the reference implementation (docs/estargz.md): a qcow2
containerDisk pushed as a plain gzip image, converted by stargz-snapshotter's own
`ctr-remote image convert --estargz --oci` (package `estargz`, the writer
BuildKit and nerdctl use) and pushed back, as a user makes one: with the default
options, with a boot record (prefetch landmark, 1 MiB chunks), and as
stargz-snapshotter's zstd:chunked (`--zstdchunked`: eStargz's layout in zstd
frames, docs/zstd-chunked.md). A first mount reads the end of the disk fetching
a small part of the layer; every byte matches qemu-img's raw conversion;
`oci-fs accelerate` leaves the layer to its TOC.

ctr-remote works through containerd's content store, so the module starts a
containerd of its own (root, state and sockets under the test's directory, no
snapshotter or runtime used), converts once, and stops it before the tests read:
also when the conversion fails. Fetches are counted by the registry's log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import processes
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan
from support.images import push_containerdisk
from support.processes import Mount

TLS = "--tls-verify=false"
TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
NAMESPACE = "ocifs-tests"

pytestmark = pytest.mark.skipif(
    shutil.which("containerd") is None or shutil.which("ctr-remote") is None
    or shutil.which("qemu-img") is None or os.geteuid() != 0,
    reason="needs containerd and ctr-remote (packages containerd, stargz-snapshotter: "
           "scripts/install-deps.sh), qemu-img and root")

# containerd 1.6 with only what image conversion needs: the content store, the
# metadata and image services. No CRI, no snapshotters (nothing is unpacked),
# nothing outside `root`.
_CONFIG = """version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.overlayfs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{dir}/c.sock"
[ttrpc]
  address = "{dir}/t.sock"
"""


class Containerd:
    """A containerd under `directory` (a context manager: stopped and removed on exit,
    also when the body fails), driven through `ctr-remote`."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.sock = directory / "c.sock"
        self.log = directory / "containerd.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Containerd":
        self.dir.mkdir(parents=True)
        (self.dir / "config.toml").write_text(_CONFIG.format(dir=self.dir))
        with open(self.log, "wb") as log:
            self.proc = processes.spawn(["containerd", "--config", self.dir / "config.toml"],
                                        stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(deadline=time.monotonic() + 30)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            processes.stop(self.proc, timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait_ready(self, deadline: float) -> None:
        while True:
            assert self.proc is not None and self.proc.poll() is None, \
                f"containerd exited: {self.log.read_text()[-2000:]}"
            if self.sock.exists() and subprocess.run(
                    self._ctr("version"), capture_output=True, timeout=10).returncode == 0:
                return
            assert time.monotonic() < deadline, f"containerd not ready: {self.log.read_text()[-2000:]}"
            time.sleep(0.1)

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr-remote", "--address", str(self.sock), "--namespace", NAMESPACE, *args]

    def ctr(self, *args: str, timeout: float = 120) -> str:
        r = subprocess.run(self._ctr(*args), capture_output=True, text=True, timeout=timeout,
                           start_new_session=True)
        assert r.returncode == 0, f"ctr-remote {' '.join(args)}: {r.stderr[-2000:]}"
        return r.stdout


def layer_bytes(registry, digest: str) -> int:
    return sum(r.written for r in registry.blob_gets() if r.digest == digest)


# What each converted tag is: ctr-remote's options, and the TOC oci-fs reads it through.
VARIANTS = {
    "esgz": (["--estargz"], "gzip (eStargz TOC)"),  # the defaults: 4 MiB chunks, gzip -9
    # A boot record puts disk/ first behind a .prefetch.landmark entry; 1 MiB chunks.
    "esgz-prio": (["--estargz", "--estargz-record-in", "{record}", "--estargz-chunk-size", str(MiB)],
                  "gzip (eStargz TOC)"),
    # stargz-snapshotter's zstd:chunked: the eStargz layout and TOC in zstd frames.
    "zstdchunked": (["--zstdchunked"], "zstd (zstd:chunked TOC)"),
}


@pytest.fixture(scope="module")
def converted(registry):
    """{tag: (ref, the layer's descriptor)} for VARIANTS, the qemu-img raw conversion of the
    disk, and the seconds the conversions took: a 40 MiB qcow2 containerDisk pushed plain,
    then converted by ctr-remote and pushed back."""
    work = processes.test_root() / f"estargz-real-{os.getpid()}"
    work.mkdir()
    try:
        raw = disk_bytes(40 * MiB, seed=161)
        (work / "source.raw").write_bytes(raw)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(work / "source.raw"),
                        str(work / "disk.qcow2")], check=True, capture_output=True)
        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(work / "disk.qcow2"),
                        str(work / "back.raw")], check=True, capture_output=True)
        want = (work / "back.raw").read_bytes()
        assert want == raw
        (work / "record.json").write_text('{"path": "disk/disk.qcow2"}\n')
        repo = "t/estargz-real"
        plain, _ = push_containerdisk(registry, repo, (work / "disk.qcow2").read_bytes(), name="disk.qcow2",
                                      tag="plain")
        start = time.monotonic()
        with Containerd(work / "ctd") as ctd:
            ctd.ctr("content", "fetch", "--plain-http", plain)
            for tag, (options, _) in VARIANTS.items():
                ref = registry.ref(repo, tag)
                ctd.ctr("images", "convert", *[o.format(record=work / "record.json") for o in options], "--oci",
                        plain, ref, timeout=300)
                ctd.ctr("images", "push", "--plain-http", ref)
        took = time.monotonic() - start
        print(f"ctr-remote: fetch, {len(VARIANTS)} conversions and pushes of a {len(want) >> 20} MiB qcow2 disk: "
              f"{took:.1f} s")
        images = {}
        for tag in VARIANTS:
            r = registry.client().get_manifest(repo, tag, accept=OCI_MANIFEST)
            assert r.status == 200, r.status
            layers = r.json()["layers"]
            assert len(layers) == 1 and TOC_DIGEST in layers[0].get("annotations", {}), layers
            images[tag] = (registry.ref(repo, tag), layers[0])
        yield images, want, took
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_conversions_take_seconds_not_minutes(converted):
    *_, took = converted
    assert took < 90, took


@pytest.mark.parametrize("tag", list(VARIANTS))
def test_a_first_mount_reads_the_end_of_a_real_estargz_disk_without_the_whole_layer(
        ocifs, registry, workdir, converted, tag):
    images, want, _ = converted
    ref, layer = images[tag]
    digest, size = layer["digest"], layer["size"]
    assert f"{digest} {size} {VARIANTS[tag][1]}" in ocifs("inspect", TLS, ref).text
    before = layer_bytes(registry, digest)
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", "--log-level=warn", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
        first = layer_bytes(registry, digest) - before
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=162, random_reads=30))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    print(f"{tag} (ctr-remote): last MiB on a fresh cache fetched {first} of {size} layer bytes")
    # Footer, TOC, the header frames, the first chunk (the qcow2's tables) and the
    # chunks of the last MiB: not the layer; and never the plain stream's path.
    assert first <= 14 * MiB and first * 3 < size, (first, size)
    assert "plain gzip" not in m.result.output and "plain zstd" not in m.result.output, m.result.describe()


def test_inspect_json_names_the_estargz_toc(ocifs, converted):
    images, _, _ = converted
    assert json.loads(ocifs("inspect", "--json", TLS, images["esgz"][0]).text)["layers"][0]["toc"] == "estargz"
    assert json.loads(ocifs("inspect", "--json", TLS, images["zstdchunked"][0]).text)["layers"][0]["toc"] == \
        "zstd:chunked"


@pytest.mark.parametrize("tag", ["esgz", "zstdchunked"])
def test_accelerate_leaves_a_real_estargz_layer_to_its_own_toc(ocifs, registry, workdir, converted, tag):
    images, want, _ = converted
    ref, layer = images[tag]
    out = ocifs("accelerate", TLS, "--work-dir", str(workdir), ref, timeout=300)
    artifact = out.text.strip().splitlines()[-1]
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    # No gzip or zstd index (the TOC is one already), only the layer's tar index; and a line saying why.
    assert [p["mediaType"] for p in manifest["layers"]] == ["application/vnd.oci-fs.tar-index.v2"], manifest
    why = "eStargz" if tag == "esgz" else "zstd:chunked"
    assert f"layer {layer['digest']} ({why}: read at random through its own TOC" in out.stderr, out.describe()
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=163, random_reads=20))
