"""eStargz layers made by the reference implementation (docs/estargz.md): a qcow2
containerDisk pushed as a plain gzip image, converted by stargz-snapshotter's own
`ctr-remote image convert --estargz --oci` (package `estargz`, the writer
BuildKit and nerdctl use) and pushed back, as a user makes one. A first mount
reads the end of the disk fetching a small part of the layer; every byte matches
qemu-img's raw conversion; `oci-fs accelerate` leaves the layer to its TOC.

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


@pytest.fixture(scope="module")
def estargz_image(registry):
    """(eStargz ref, qemu-img's raw conversion of the disk, the eStargz layer's descriptor,
    seconds the conversion took): a 64 MiB qcow2 containerDisk converted by ctr-remote."""
    work = processes.test_root() / f"estargz-real-{os.getpid()}"
    work.mkdir()
    raw = disk_bytes(64 * MiB, seed=161)
    (work / "source.raw").write_bytes(raw)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(work / "source.raw"),
                    str(work / "disk.qcow2")], check=True, capture_output=True)
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(work / "disk.qcow2"),
                    str(work / "back.raw")], check=True, capture_output=True)
    want = (work / "back.raw").read_bytes()
    assert want == raw
    repo = "t/estargz-real"
    plain, _ = push_containerdisk(registry, repo, (work / "disk.qcow2").read_bytes(), name="disk.qcow2",
                                  tag="plain")
    ref = registry.ref(repo, "esgz")
    start = time.monotonic()
    with Containerd(work / "ctd") as ctd:
        ctd.ctr("content", "fetch", "--plain-http", plain)
        ctd.ctr("images", "convert", "--estargz", "--oci", plain, ref, timeout=300)
        ctd.ctr("images", "push", "--plain-http", ref)
    took = time.monotonic() - start
    print(f"ctr-remote: fetch, convert to eStargz and push of a {len(want) >> 20} MiB qcow2 disk: {took:.1f} s")
    r = registry.client().get_manifest(repo, "esgz", accept=OCI_MANIFEST)
    assert r.status == 200, r.status
    layers = r.json()["layers"]
    assert len(layers) == 1 and layers[0]["mediaType"].endswith("tar+gzip"), layers
    assert TOC_DIGEST in layers[0].get("annotations", {}), layers
    try:
        yield ref, want, layers[0], took
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_conversion_takes_seconds_not_minutes(estargz_image):
    *_, took = estargz_image
    assert took < 60, took


def test_a_first_mount_reads_the_end_of_a_real_estargz_disk_without_the_whole_layer(
        ocifs, registry, workdir, estargz_image):
    ref, want, layer, _ = estargz_image
    digest, size = layer["digest"], layer["size"]
    assert f"{digest} {size} gzip (eStargz TOC)" in ocifs("inspect", TLS, ref).text
    assert json.loads(ocifs("inspect", "--json", TLS, ref).text)["layers"][0]["toc"] == "estargz"
    before = layer_bytes(registry, digest)
    with Mount(ref, workdir / "mnt", TLS, "--accel=off", "--log-level=warn", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
        first = layer_bytes(registry, digest) - before
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=162, random_reads=30))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    print(f"eStargz (ctr-remote): last MiB on a fresh cache fetched {first} of {size} layer bytes")
    # Footer, TOC, the header member, the first 4 MiB chunk (the qcow2's tables) and the
    # chunks of the last MiB: not the layer; and never the plain gzip path.
    assert first <= 14 * MiB and first * 4 < size, (first, size)
    assert "plain gzip" not in m.result.output, m.result.describe()


def test_accelerate_leaves_a_real_estargz_layer_to_its_own_toc(ocifs, registry, workdir, estargz_image):
    ref, want, layer, _ = estargz_image
    out = ocifs("accelerate", TLS, "--work-dir", str(workdir), ref, timeout=300)
    artifact = out.text.strip().splitlines()[-1]
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    # No gzip index (the TOC is one already), only the layer's tar index; and a line saying why.
    assert [p["mediaType"] for p in manifest["layers"]] == ["application/vnd.oci-fs.tar-index.v2"], manifest
    assert f"layer {layer['digest']} (eStargz: read at random through its own TOC" in out.stderr, out.describe()
    with Mount(ref, workdir / "mnt", TLS, cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, [(len(want) - MiB, MiB)])
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=163, random_reads=20))
