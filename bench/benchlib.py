"""Pieces the benchmark scripts share: the registry (tests/support), the throttling proxy,
OCI layouts pushed with skopeo, timing, peak RSS, cache dropping.

Every process is started through tests/support/processes.spawn, so nothing outlives the run.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
sys.path.insert(0, str(ROOT / "tests"))
from support import processes  # noqa: E402  (tests/support, the shared harness)
from support.registry import Registry  # noqa: E402

PY = "/usr/bin/python3"

@dataclass(frozen=True)
class Layer:
    """One kind of containerDisk layer the bench pushes (a tag; make-disk.sh builds its blob)."""
    kind: str                # the tag, as --layers names it
    decoder: str             # how the blob is compressed: "none", "gzip" or "zstd"
    file: str                # the blob, in bench/work/<full|quick>/
    tar: str = "layer.tar"   # its uncompressed tar (diff_id): the qcow2 disk's, or (raw-gzip) the raw disk's
    seekable: bool = False   # read at any offset from a first mount (an access profile helps that mount)
    imports_as: str = ""     # the layer whose full import it shares (zstd-seekable: zstd's); "": its own
    bare: bool = False       # no tar: the layer of a KubeVirt VM export artifact (docs/bare-disks.md)

    @property
    def media(self) -> str:
        if self.bare:
            return "application/vnd.kubevirt.disk.raw+zstd"
        return "application/vnd.oci.image.layer.v1.tar" + ("" if self.decoder == "none" else "+" + self.decoder)

    @property
    def tar_flags(self) -> list[str]:
        """tar -x's option for the decoder."""
        return {"none": [], "gzip": ["-z"], "zstd": ["--zstd"]}[self.decoder]

    @property
    def gzip_index(self) -> bool:
        """oci-fs builds a checkpoint index on the first full read (the "(index)" sessions)."""
        return self.decoder == "gzip"

    @property
    def import_as(self) -> str:
        return self.imports_as or self.kind

    @property
    def profile_label(self) -> str | None:
        """The label of the oci-fs session that prefetches an access profile, if any: a seekable
        layer's second cold mount, a gzip layer's mount with its index; single-frame zstd is
        read as a stream, a profile has nothing to add there."""
        return " (profile)" if self.seekable else " (index, profile)" if self.gzip_index else None


# Every layer kind, in the order the targets list them.
LAYERS = {layer.kind: layer for layer in (
    Layer("none", "none", "layer.tar", seekable=True),
    Layer("zstd", "zstd", "layer.tar.zst"),
    Layer("zstd-seekable", "zstd", "layer.tar.seekable.zst", seekable=True, imports_as="zstd"),
    Layer("gzip", "gzip", "layer.tar.gz"),
    Layer("raw-gzip", "gzip", "raw.tar.gz", tar="raw.tar"),
    # A KubeVirt VM export (--layers kubevirt): the raw disk as one streamed zstd frame, no tar;
    # no import of its own (CDI's would fetch and decompress the same bytes as zstd's).
    Layer("kubevirt", "zstd", "disk.raw.zst", tar="disk.raw", imports_as="zstd", bare=True),
    # A zstd:chunked containerDisk as buildah pushes it (--layers zstd-chunked; make-disk.sh): read
    # at random from a first mount through the TOC it carries (docs/zstd-chunked.md); its tar is
    # buildah's, its import zstd's (the same disk, decompressed the same way).
    Layer("zstd-chunked", "zstd", "layer.zstd-chunked", seekable=True, imports_as="zstd"),
)}

KUBEVIRT_VM = "application/vnd.kubevirt.virtualmachine.v1"
KUBEVIRT_CONFIG = "application/vnd.kubevirt.virtualmachine.config.v1+json"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    cache = path.with_name(path.name + ".sha256")
    st = path.stat()
    key = f"{st.st_size} {st.st_mtime_ns}"
    if cache.exists():
        k, _, d = cache.read_text().partition("\n")
        if k == key:
            return d.strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    d = "sha256:" + h.hexdigest()
    cache.write_text(f"{key}\n{d}\n")
    return d


def write_oci_layout(layout: Path, layers: dict[str, Path]) -> None:
    """An OCI image layout with one single-layer containerDisk image per tag (hard links)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def put(data: bytes) -> str:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / d[7:]).write_bytes(data)
        return d

    manifests = []
    for tag, path in layers.items():
        digest = sha256_file(path)
        dst = blobs / digest[7:]
        if not dst.exists():
            try:
                os.link(path, dst)
            except OSError:
                subprocess.run(["cp", "--reflink=auto", str(path), str(dst)], check=True)
        layer = {"mediaType": LAYERS[tag].media, "digest": digest, "size": path.stat().st_size}
        extra = {}
        # A layer another tool built (zstd-chunked: buildah) comes with its descriptor's
        # annotations and its diff_id beside it.
        desc_path = path.with_name(path.name + ".desc.json")
        desc = json.loads(desc_path.read_text()) if desc_path.exists() else None
        if desc:
            layer["annotations"] = desc["annotations"]
        if LAYERS[tag].bare:
            # A KubeVirt VM export artifact: the VM's spec as config, the disk's layer annotated.
            config = json.dumps({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                 "metadata": {"name": "bench"}, "spec": {"runStrategy": "Halted"}},
                                sort_keys=True).encode()
            config_type, extra = KUBEVIRT_CONFIG, {"artifactType": KUBEVIRT_VM}
            size = path.with_name(LAYERS[tag].tar).stat().st_size
            layer["annotations"] = {"io.kubevirt.disk.name": "rootdisk", "io.kubevirt.disk.size": f"{size >> 10}Ki",
                                    "org.opencontainers.image.title": "rootdisk.raw.zst"}
        else:
            diff_id = desc["diff_id"] if desc else sha256_file(path.with_name(LAYERS[tag].tar))
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                                 "config": {}}, sort_keys=True).encode()
            config_type = "application/vnd.oci.image.config.v1+json"
        cd = put(config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", **extra,
            "config": {"mediaType": config_type, "digest": cd, "size": len(config)},
            "layers": [layer],
        }, sort_keys=True).encode()
        md = put(manifest)
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": md, "size": len(manifest),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": manifests}, indent=1))


def push_layout(layout: Path, reg: Registry, repo: str, tags: list[str]) -> None:
    """Pushes the layout's images blob by blob, as they are (skopeo would gzip the
    uncompressed layer on its way to a docker:// destination)."""
    client = reg.client()
    idx = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    for desc in idx["manifests"]:
        tag = desc["annotations"]["org.opencontainers.image.ref.name"]
        if tag not in tags or _manifest_exists(reg, repo, tag, layout):
            continue
        manifest = (blobs / desc["digest"][7:]).read_bytes()
        m = json.loads(manifest)
        for d in [m["config"]] + m["layers"]:
            if not client.blob_exists(repo, d["digest"]):
                client.put_blob(repo, (blobs / d["digest"][7:]).read_bytes(), d["digest"])
        client.put_manifest(repo, tag, manifest, desc["mediaType"])


def _manifest_exists(reg: Registry, repo: str, tag: str, layout: Path) -> bool:
    idx = json.loads((layout / "index.json").read_text())
    want = next(m["digest"] for m in idx["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    req = urllib.request.Request(f"{reg.url}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.headers.get("Docker-Content-Digest") == want
    except OSError:
        return False


class Proxy:
    """bench/throttle_proxy.py in front of a registry; a context manager."""

    def __init__(self, upstream: str, mbit: float, rtt_ms: float, log_path: Path):
        self.args = [PY, str(BENCH / "throttle_proxy.py"), "--upstream", upstream,
                     "--mbit", str(mbit), "--rtt-ms", str(rtt_ms), "--log", str(log_path)]
        self.log_path = log_path
        self.port_file = log_path.with_suffix(".ports")
        self.proc = None

    def __enter__(self) -> "Proxy":
        self.port_file.unlink(missing_ok=True)
        self.proc = processes.spawn(self.args + ["--port-file", str(self.port_file)],
                                    stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("throttle_proxy.py did not start")
            time.sleep(0.02)
        ports = json.loads(self.port_file.read_text())
        self.port, self.control = ports["port"], ports["control"]
        return self

    def __exit__(self, *exc) -> None:
        processes.stop(self.proc)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _get(self, what: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control}/{what}", timeout=5) as r:
            return json.loads(r.read())

    def stats(self) -> dict:
        return self._get("stats")

    def reset(self) -> dict:
        return self._get("reset")


class PeakRss:
    """Peak memory in KiB of a set of processes (and their children), sampled every 50 ms
    and at exit, maximum kept: the sum of their proportional set sizes (Pss in
    /proc/PID/smaps_rollup), so pages two processes share (the binary's and its
    libraries' text, a keeper's and its server's) count once, split between them.
    A kept mount is two processes of one binary; summing their VmHWM counted the
    shared pages twice. `peak_hwm_kib` is the largest single process's VmHWM (the
    kernel's own peak, which catches a spike between two samples).

    Sampling only sees processes that live for at least one tick; for short-lived
    commands use run_timed (GNU time's maximum resident set size).
    """

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn
        self.peak_kib = 0
        self.peak_hwm_kib = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self.sample()
        self._stop.set()
        self._t.join()

    def sample(self):
        total = 0
        for pid in self.pids_fn():
            for p in [pid] + descendants(pid):
                total += pss_kib(p)
                self.peak_hwm_kib = max(self.peak_hwm_kib, vm_hwm_kib(p))
        self.peak_kib = max(self.peak_kib, total)

    def _run(self):
        while not self._stop.wait(0.05):
            self.sample()


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        for k in map(int, kids):
            out.append(k)
            todo.append(k)
    return out


def drop_file_cache(path: Path) -> None:
    """Evicts one file's pages from the page cache (the polite form of drop_caches)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_mib(path: Path) -> float | None:
    """MiB of `path` in the page cache (util-linux fincore: mincore on a mapping), or None."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                             capture_output=True, text=True, timeout=30)
        return round(int(out.stdout.split()[0]) / 2**20, 1) if out.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


@contextmanager
def timed():
    t = {"start": time.time()}
    t0 = time.monotonic()
    yield t
    t["seconds"] = time.monotonic() - t0
    t["end"] = time.time()


def run_timed(argv: list[str], **kw) -> dict:
    """Runs a command under GNU time; {"seconds": wall, "rss_kib": maximum resident set}."""
    with open(os.devnull, "w") as devnull:
        fd, tf = tempfile_path()
        try:
            t0 = time.monotonic()
            proc = processes.spawn(["/usr/bin/time", "-f", "%M", "-o", tf, *argv],
                                   stdout=kw.pop("stdout", devnull), stderr=subprocess.PIPE, **kw)
            _, err = proc.communicate()
            secs = time.monotonic() - t0
            processes.stop(proc)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode()[-2000:]}")
            rss = int((Path(tf).read_text().strip().splitlines() or ["0"])[-1])
        finally:
            os.close(fd)
            os.unlink(tf)
    return {"seconds": secs, "rss_kib": rss}


def tempfile_path():
    import tempfile
    return tempfile.mkstemp(prefix="ocifs-bench-")
