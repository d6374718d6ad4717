#!/usr/bin/python3
"""The benchmark: lazy oci-fs mounts against the full import and the nbdkit + qemu-storage-daemon
pipeline, through a registry on loopback behind a proxy that costs what a network costs.

Run it with bench/run.sh (which builds the disk and the replay tool first); see
docs/benchmarks.md for what each scenario means. Writes OUT/results.json,
OUT/results.md, OUT/bytes-vs-time.png and the proxy's log.

The scenarios are data: each part (PARTS) plans a list of Sessions (a disk opened, a Step per
row, the disk closed) that run_session runs; the targets under the table are the TARGETS table,
evaluated by targets().
"""
from __future__ import annotations

import argparse
import http.client
import json
import tarfile
import threading
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402
import boot  # noqa: E402
import trace_stats  # noqa: E402

REPO = "bench/disk"
REPLAY = b.WORK / "replay"


class Ctx:
    def __init__(self, args, data: Path, out: Path, trace: Path, ocifs: bool = False):
        self.a, self.data, self.out, self.trace, self.ocifs = args, data, out, trace, ocifs
        self.rows: list[dict] = []
        self.proxy: b.Proxy | None = None
        self.disk_mib = (data / "disk.raw").stat().st_size / 2**20
        self.scratch = args.scratch or data / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_results(cls, out: Path) -> "Ctx":
        """The context of an earlier run, from its results.json: enough to report it again."""
        res = json.loads((out / "results.json").read_text())
        ctx = cls.__new__(cls)
        ctx.a = argparse.Namespace(**(vars(finish_args(parser().parse_args([]))) | res["args"]))
        ctx.a.out, ctx.out, ctx.trace, ctx.rows = out, out, Path(res["trace"]), res["rows"]
        ctx.machine = res.get("machine")
        # The disk's size is not recorded: a full sequential read reads all of it.
        seq = [r["read_bytes"] for r in ctx.rows if r["scenario"].startswith("cold seq") and "read_bytes" in r]
        ctx.disk_mib = max(seq) / 2**20 if seq else float("nan")
        ctx.proxy = argparse.Namespace(log_path=out / "proxy.log")
        return ctx

    def ref(self, layer: str) -> str:
        return f"{self.proxy.host}/{REPO}:{layer}"

    def blob_digest(self, layer: str) -> str:
        return b.sha256_file(self.data / b.LAYERS[layer].file)

    def measure(self, subject: str, layer: str, scenario: str, fn, pids=lambda: (), **extra):
        """Runs fn() between a reset and a read of the proxy's counters; records one row."""
        self.proxy.reset()
        start = time.time()
        t0 = time.monotonic()
        row = {"subject": subject, "layer": layer, "scenario": scenario}
        try:
            with b.PeakRss(pids) as rss:
                res = fn() or {}
            row["seconds"] = round(res.pop("seconds", time.monotonic() - t0), 4)
            row["rss_mib"] = round(max(rss.peak_kib, res.pop("rss_kib", 0)) / 1024, 1) or None
            if rss.peak_hwm_kib:
                row["max_process_hwm_mib"] = round(rss.peak_hwm_kib / 1024, 1)
            row.update(res)
        except Exception as e:  # one failing scenario must not lose the others
            row["error"] = str(e)[-500:]
            b.log(f"{subject}/{layer}/{scenario} FAILED: {row['error']}")
        st = self.proxy.stats()
        row.update(fetched_bytes=st["bytes_down"], requests=st["requests"],
                   blob_requests=st["blob_requests"], connections=st["connections"],
                   start=round(start, 4), end=round(time.time(), 4), **extra)
        self.rows.append(row)
        b.log(f"{subject:10} {layer:13} {scenario:22} {fmt_s(row.get('seconds'))} s "
              f"{row['fetched_bytes'] / 2**20:9.1f} MiB {row['requests']:6} req "
              f"rss {row.get('rss_mib')} MiB")
        self.save()
        return row

    def save(self):
        (self.out / "results.json").write_text(json.dumps(
            {"machine": machine(), "args": vars(self.a) | {"out": str(self.a.out)},
             "trace": str(self.trace), "rows": self.rows}, indent=1, default=str))


def fmt_s(x) -> str:
    return f"{x:8.3f}" if isinstance(x, (int, float)) else f"{'-':>8}"


# ----------------------------------------------------------------------------- sessions

class Disk:
    """A disk file that a session's steps read: opening it is the constructor (timed as the
    session's open row, or inside the first step that asks for it), close() ends it."""
    file: Path
    open_fields: dict = {}  # the open row's measurement (the import's seconds and steps)

    def pids(self) -> list[int]:
        return []

    def close(self) -> dict:
        """Fields the session may add to its last row (oci-fs's --stats)."""
        return {}


class Slot:
    """The disk of the session being run, opened on first use."""

    def __init__(self, opener: Callable[[], Disk] | None):
        self.opener, self.disk = opener, None

    def get(self) -> Disk:
        if self.disk is None:
            self.disk = self.opener()
        return self.disk

    def pids(self) -> list[int]:
        return self.disk.pids() if self.disk else []

    def close(self) -> dict:
        disk, self.disk = self.disk, None
        return disk.close() if disk else {}


@dataclass
class Step:
    """One row: `run` is timed; `before` runs untimed right before it and returns fields for
    the row (or None); `extra` are fields known in advance."""
    scenario: str
    run: Callable[[Slot], dict | None]
    before: Callable[[Slot], dict | None] | None = None
    extra: dict = field(default_factory=dict)


def always() -> bool:
    return True


@dataclass
class Session:
    """A disk opened, read by its steps (one row each) and closed.

    open_row: the scenario of a row that times opening the disk alone (a mount, the import);
    None: the first step that asks for the disk opens it (a boot times its mount). A failed
    open ends the session. setup runs first, untimed: its failure is recorded as an error row
    and skips the rest of the session's group (the sessions after it need what it set up).
    when is asked when the session's turn comes (a profile the sessions before wrote).
    """
    subject: str
    layer: str
    steps: list[Step]
    disk: Callable[[], Disk] | None = None
    open_row: str | None = None
    setup: Callable[[], None] | None = None
    when: Callable[[], bool] = always
    group: str = ""
    stats: bool = False  # the disk's close() fields go to the session's last row


def run_session(ctx: Ctx, s: Session, broken: set[str]) -> None:
    if (s.group and s.group in broken) or not s.when():
        return
    if s.setup:
        try:
            s.setup()
        except Exception as e:  # noqa: BLE001 (reported as the row's error)
            def fail(e=e):
                raise e
            broken.add(s.group)
            ctx.measure(s.subject, s.layer, s.open_row or s.steps[0].scenario, fail)
            return
    slot = Slot(s.disk)
    try:
        if s.open_row:
            ctx.measure(s.subject, s.layer, s.open_row, lambda: dict(slot.get().open_fields), slot.pids)
            if slot.disk is None:
                return
        for step in s.steps:
            extra = step.extra | ((step.before(slot) or {}) if step.before else {})
            ctx.measure(s.subject, s.layer, step.scenario, lambda: step.run(slot), slot.pids, **extra)
    finally:
        fields = slot.close()
        if s.stats and fields:
            ctx.rows[-1].update(fields)


# ----------------------------------------------------------------------------- readers

def replay(path: Path, mode: str, *extra: str, timeout: float = 1800) -> dict:
    out = subprocess.run([str(REPLAY), mode, str(path), *extra], check=True,
                         stdout=subprocess.PIPE, timeout=timeout).stdout
    r = json.loads(out)
    return {"seconds": r["seconds"], "read_bytes": r["bytes"], "reads": r["reads"]}


def replay_args(ctx: Ctx, kind: str) -> tuple[str, ...]:
    t = ("--threads", str(ctx.a.threads))
    return {"trace": ("trace", str(ctx.trace), *t),
            "random": ("random", str(ctx.a.random_reads), "--size", "4096", "--seed", "42", *t),
            "seq": ("seq", "--size", str(1 << 20))}[kind]


def reads(ctx: Ctx, phase: str, kinds=("trace", "random", "seq"), label: str = "",
          drop: bool = False) -> list[Step]:
    """The read scenarios on a session's disk, "{phase} {kind}{label}": phase "cold", "warm"
    (the page cache's share of the file is recorded first: DAMON, docs/benchmarks.md) or
    "remount"; drop evicts the file's pages before each (a local file)."""
    def before(slot: Slot) -> dict | None:
        f = slot.get().file
        if drop:
            b.drop_file_cache(f)
        return {"resident_mib_before": b.resident_mib(f)} if phase == "warm" else None

    return [Step(f"{phase} {k}{label}", before=before,
                 run=lambda slot, k=k: replay(slot.get().file, *replay_args(ctx, k), timeout=ctx.a.peer_timeout))
            for k in kinds]


# ----------------------------------------------------------------------------- local raw

class LocalFile(Disk):
    def __init__(self, path: Path):
        self.file = path


def local_plan(ctx: Ctx) -> list[Session]:
    disk = lambda: LocalFile(ctx.data / "disk.raw")  # noqa: E731
    return [Session("local", "raw", reads(ctx, "cold", drop=True) + reads(ctx, "warm", ("trace", "seq")), disk)]


# ----------------------------------------------------------------------------- full import

def full_import(ctx: Ctx, layer: str, dest: Path) -> dict:
    """What CDI does: skopeo copy, untar the disk, qemu-img convert -O raw."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    steps = {}
    steps["skopeo"] = b.run_timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                   f"docker://{ctx.ref(layer)}", f"dir:{dest / 'image'}"])
    manifest = json.loads((dest / "image" / "manifest.json").read_text())
    blob = dest / "image" / manifest["layers"][0]["digest"].split(":", 1)[1]
    steps["untar"] = b.run_timed(["tar", "-x", *b.LAYERS[layer].tar_flags, "-f", str(blob), "-C", str(dest),
                                  "disk/disk.img"])
    blob.unlink()
    steps["convert"] = b.run_timed(["qemu-img", "convert", "-O", "raw",
                                    str(dest / "disk" / "disk.img"), str(dest / "disk.raw")])
    (dest / "disk" / "disk.img").unlink()
    return {"seconds": sum(s["seconds"] for s in steps.values()),
            "rss_kib": max(s["rss_kib"] for s in steps.values()),
            "steps": {k: round(v["seconds"], 3) for k, v in steps.items()}}


class Imported(Disk):
    """The layer imported (full_import) into a scratch dir, removed on close."""

    def __init__(self, ctx: Ctx, layer: str):
        self.dir = ctx.scratch / f"import-{layer}"
        self.open_fields = full_import(ctx, layer, self.dir)
        self.file = self.dir / "disk.raw"

    def close(self) -> dict:
        shutil.rmtree(self.dir, ignore_errors=True)
        return {}


def import_plan(ctx: Ctx) -> list[Session]:
    """Each layer's import once (zstd-seekable's is zstd's), then the reads of the local file."""
    return [Session("import", layer, reads(ctx, "cold", drop=True) + reads(ctx, "warm", ("trace", "seq")),
                    lambda layer=layer: Imported(ctx, layer), "import")
            for layer in ctx.a.layers if b.LAYERS[layer].import_as == layer]


# ----------------------------------------------------------------------------- floor

FLOOR_CONNECTIONS = (8, 32)


def fetch_ranges(ctx: Ctx, layer: str, ranges: list[tuple[int, int]], connections: int) -> dict:
    """GETs `ranges` of the layer's blob through the proxy on `connections` keep-alive
    connections at once (each takes the next range when it is done); checks every length.
    A range of length 0 is a GET of the whole blob."""
    path = f"/v2/{REPO}/blobs/{ctx.blob_digest(layer)}"
    todo = list(reversed(ranges))
    lock = threading.Lock()
    errors: list[str] = []

    def worker():
        conn = http.client.HTTPConnection(ctx.proxy.host, timeout=120)
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    off, n = todo.pop()
                headers = {"Range": f"bytes={off}-{off + n - 1}"} if n else {}
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                body = r.read()
                if r.status not in (200, 206) or (n and len(body) != n):
                    with lock:
                        errors.append(f"GET {path} bytes {off}+{n}: HTTP {r.status}, {len(body)} bytes")
        except Exception as e:  # noqa: BLE001 (reported as the row's error)
            with lock:
                errors.append(str(e))
        finally:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(min(connections, len(ranges)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return {"seconds": time.monotonic() - t0, "needed_bytes": sum(n for _, n in ranges),
            "ranges": len(ranges), "in_flight": connections}


def floor_plan(ctx: Ctx) -> list[Session]:
    """What no lazy reader can beat on this link, measured: for the uncompressed layer, the
    compressed bytes the trace needs (trace_stats.needed_ranges, shifted by the disk's place
    in the tar) fetched with a perfect prefetch, all at once; for a gzip layer's first mount,
    which must decompress the stream up to the trace's last read, one GET of the whole layer
    (the row says how far into the tar the trace reaches: the bench disk's boot reads its
    last clusters)."""
    tar_path = ctx.data / b.LAYERS["none"].tar
    with tarfile.open(tar_path) as tar:
        base = tar.getmember("disk/disk.img").offset_data
    ranges = [(base + o, n) for o, n in trace_stats.needed_ranges(str(ctx.trace), str(ctx.data / "disk.qcow2"))]
    reach = round((ranges[-1][0] + ranges[-1][1]) / tar_path.stat().st_size, 4)
    plan = []
    if "none" in ctx.a.layers:
        plan.append(Session("floor", "none", [
            Step(f"trace bytes ({c} at once)", lambda slot, c=c: fetch_ranges(ctx, "none", ranges, c))
            for c in FLOOR_CONNECTIONS]))
    # A first mount without the artifact streams these (a seekable zstd layer: fills it, reads ahead by frames).
    for layer in ("gzip", "zstd", "zstd-seekable"):
        if layer in ctx.a.layers:
            plan.append(Session("floor", layer, [
                Step("whole layer", lambda slot, layer=layer: fetch_ranges(ctx, layer, [(0, 0)], 1),
                     extra={"trace_reaches": reach})]))
    if "kubevirt" in ctx.a.layers:
        # A VM export's single zstd frame is read as a stream on a first mount without the
        # artifact: to the raw disk's highest offset the trace reads.
        plan.append(Session("floor", "kubevirt", [
            Step("whole layer", lambda slot: fetch_ranges(ctx, "kubevirt", [(0, 0)], 1))]))
    return plan


# ----------------------------------------------------------------------------- nbdkit + qsd

class NbdQsd(Disk):
    """nbdkit curl plugin + tar filter (the uncompressed layer over HTTP ranges) -> NBD ->
    qemu-storage-daemon opening it as qcow2 -> raw disk exported as a FUSE file."""

    def __init__(self, ctx: Ctx, layer: str):
        self.dir = ctx.scratch / "nbdqsd"
        self.file = self.dir / "disk.img"
        self.procs: list = []
        try:
            self._start(ctx, layer)
        except BaseException:
            self.close()
            raise

    def _start(self, ctx: Ctx, layer: str) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.file.touch()
        sock = self.dir / "nbd.sock"
        url = f"http://{ctx.proxy.host}/v2/{REPO}/blobs/{ctx.blob_digest(layer)}"
        self.procs.append(b.processes.spawn(
            ["nbdkit", "--foreground", "--readonly", "-U", str(sock), "--filter=tar",
             "curl", f"url={url}", "tar-entry=disk/disk.img"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "nbdkit.log", "wb")))
        wait_for(lambda: sock.exists(), 30, "nbdkit socket")
        self.procs.append(b.processes.spawn(
            ["qemu-storage-daemon",
             "--blockdev", f"driver=nbd,node-name=nbd0,server.type=unix,server.path={sock},read-only=on",
             "--blockdev", "driver=qcow2,node-name=disk0,file=nbd0,read-only=on",
             "--export", f"type=fuse,id=exp0,node-name=disk0,mountpoint={self.file},writable=off"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "qsd.log", "wb")))
        wait_for(lambda: b.processes.is_mounted(self.file) or self.procs[-1].poll() is not None,
                 60, "qemu-storage-daemon FUSE export")
        if not b.processes.is_mounted(self.file):
            raise RuntimeError("qemu-storage-daemon: " + (self.dir / "qsd.log").read_text()[-1000:])
        with open(self.file, "rb") as f:
            f.read(4096)

    def pids(self):
        return [p.pid for p in self.procs if p.poll() is None]

    def close(self) -> dict:
        for p in reversed(self.procs):
            b.processes.stop(p, timeout=10)
        if b.processes.is_mounted(self.file):
            b.processes.unmount(self.file, lazy=True)
        return {}


def nbdqsd_plan(ctx: Ctx) -> list[Session]:
    """Each cold scenario on a fresh pipeline; warm ones after the cold full read. --quick: the
    trace only (every read of this pipeline is a round trip: a full read takes minutes)."""
    if "none" not in ctx.a.layers:
        return []
    return [Session("nbdkit+qsd", "none",  # no cache in this pipeline: warm = a second cold (trace only)
                    reads(ctx, "cold", (s,)) + (reads(ctx, "warm", ("trace",)) if s == "seq" else []),
                    lambda: NbdQsd(ctx, "none"), "mount")
            for s in (("trace",) if ctx.a.quick else ctx.a.nbdqsd_scenarios)]


# ----------------------------------------------------------------------------- oci-fs

def ocifs_available() -> str | None:
    try:
        binary = b.processes.ocifs_bin()
    except b.processes.OcifsNotBuilt:
        return None
    out = subprocess.run([binary, "mount", "--help"], capture_output=True, text=True)
    text = out.stdout + out.stderr
    return binary if "mount" in text and "not implemented" not in text.lower() else None


class Ocifs(Disk):
    """One `oci-fs mount` of a layer through the proxy; a fresh cache dir unless given one."""

    def __init__(self, ctx: Ctx, layer: str, cache: Path | None = None, extra=(), name: str = ""):
        self.dir = ctx.scratch / f"mnt-{layer}{name}"
        self.cache = cache or ctx.scratch / f"cache-{layer}"
        if cache is None:
            shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.m = b.processes.Mount(ctx.ref(layer), self.dir, "--tls-verify=false", *ctx.a.ocifs_args, *extra,
                                   cache_dir=self.cache, stats=True, timeout=120)
        self.m.__enter__()
        try:
            with open(self.file, "rb") as f:
                f.read(4096)
        except BaseException:
            self.m.__exit__()
            raise

    @property
    def file(self) -> Path:
        return self.dir / "disk.img"

    def pids(self):
        return [self.m.pid] if self.m.pid else []

    def close(self) -> dict:
        self.m.__exit__()
        return {"ocifs_stats": self.m.stats}


def keep_only_gzip_index(cache: Path) -> None:
    """Leaves the gzip checkpoint index of a cache dir (side/<key>.gzidx, docs/cache-format.md)
    and drops every cached chunk and kept piece, so the next mount has the index but no data."""
    shutil.rmtree(cache / "chunks", ignore_errors=True)
    shutil.rmtree(cache / "kept", ignore_errors=True)  # decompressed clusters would serve the reads
    if not list((cache / "side").glob("*.gzidx")):
        raise RuntimeError(f"no gzip index in {cache}/side after a full read")


def ocifs_knows_accel() -> bool:
    """Whether the oci-fs under test has acceleration artifacts (an older one, in an A/B, has not)."""
    out = subprocess.run([b.processes.ocifs_bin(), "mount", "--help"], capture_output=True, text=True)
    return "--accel" in out.stdout + out.stderr


def accelerate(ctx: Ctx, layer: str, profile: Path) -> None:
    """Pushes the layer image's acceleration artifact (docs/accel-format.md), with the recorded
    profile when there is one; untimed: a publisher does it once, next to the image."""
    args = ["accelerate", "--tls-verify=false", "--work-dir", str(ctx.scratch), ctx.ref(layer)]
    if profile.exists():
        args += ["--profile", str(profile)]
    b.processes.run_ocifs(*args, timeout=1800)


def ocifs_plan(ctx: Ctx, layer: str) -> list[Session]:
    """A fresh mount for each cold scenario (warm ones after the full read), a remount of the
    trace's cache dir, the sessions that use what those left: a profile, a gzip index; and a
    first mount on a fresh node with the image's acceleration artifact, with and without its
    profile. Every session but those passes --accel=off: the artifact of an earlier run (the
    registry keeps it) must not help them."""
    kind = b.LAYERS[layer]
    cache = ctx.scratch / f"cache-{layer}"
    profile = ctx.scratch / f"{layer}.profile"
    record, prefetch = ("--record-profile", str(profile)), ("--prefetch-profile", str(profile))
    knows_accel = ocifs_knows_accel()
    no_accel = ("--accel=off",) if knows_accel else ()

    def session(label, steps, kept=False, extra=(), accel=False, **kw) -> Session:
        extra = tuple(extra) + (() if accel else no_accel)
        return Session("oci-fs", layer, steps, lambda: Ocifs(ctx, layer, cache if kept else None, extra),
                       "mount" + label, group=f"oci-fs {layer}", stats=True, **kw)

    # The cold trace also records an access profile (docs/profile-format.md); the "(profile)"
    # session is a new cold mount that fetches it ahead, as a second boot of the image would.
    use_profile = ctx.a.profile and kind.seekable
    plan = [
        session("", reads(ctx, "cold", ("trace",)), extra=record if use_profile else (),
                setup=lambda: profile.unlink(missing_ok=True)),
        # The same node mounts the image again after the boot (a VM restarted): the cold trace
        # session's cache dir is kept (chunks, decompressed qcow2 clusters, indexes); the page
        # cache of disk.img is not.
        session(" (remount)", reads(ctx, "remount", ("trace",)), kept=True),
        session("", reads(ctx, "cold", ("random",))),
        session("", reads(ctx, "cold", ("seq",)) + reads(ctx, "warm", ("trace", "seq"))),
    ]
    if use_profile:
        plan.append(session(kind.profile_label, reads(ctx, "cold", ("trace",), kind.profile_label),
                            extra=prefetch, when=profile.exists))
    if kind.gzip_index:
        # The index exists now (the seq pass decompressed the whole layer): keep it, drop chunks.
        keep = lambda: keep_only_gzip_index(cache)  # noqa: E731
        plan.append(session(" (index)", reads(ctx, "cold", ("trace",), " (index)"), kept=True,
                            extra=record if ctx.a.profile else (), setup=keep))
        if ctx.a.profile:
            plan.append(session(kind.profile_label, reads(ctx, "cold", ("trace",), kind.profile_label),
                                kept=True, extra=prefetch, setup=keep, when=profile.exists))
        # A full read on a node that has the index but not the chunks (evicted, or an index
        # shipped with the image): a raw disk's runs of zeros are known from the index.
        plan.append(session(" (index)", reads(ctx, "cold", ("seq",), " (index)"), kept=True, setup=keep))
    if kind.decoder != "none" and knows_accel:
        # A node that never saw the layer, with the artifact `oci-fs accelerate` pushed: without,
        # then with, its profile. A layer read at random before (gzip with its index, seekable
        # zstd) has its profile from the sessions above, attached to the first artifact; a
        # single-frame zstd layer gets it from the first artifact's session, and a second
        # artifact with it (the newest, which a fresh mount takes).
        records_here = ctx.a.profile and not (use_profile or kind.gzip_index)

        def first_artifact() -> None:
            if records_here:
                profile.unlink(missing_ok=True)
            accelerate(ctx, layer, profile)

        plan.append(session(" (artifact)", reads(ctx, "cold", ("trace",), " (artifact)"), accel=True,
                            extra=("--prefetch-profile=none",) + (record if records_here else ()),
                            setup=first_artifact))
        if ctx.a.profile:
            plan.append(session(" (artifact, profile)", reads(ctx, "cold", ("trace",), " (artifact, profile)"),
                                accel=True, when=profile.exists,
                                setup=(lambda: accelerate(ctx, layer, profile)) if records_here else None))
    return plan


# ----------------------------------------------------------------------------- boots

def boot_plan(ctx: Ctx) -> list[Session]:
    """Each boot --boot-runs times, in rounds (local, then per layer import, oci-fs, oci-fs with
    a profile), so that drift of the machine hits every subject alike; rows of round k > 1 are
    named "boot #k" and the targets take the median."""
    cons = ctx.out / "console"
    cons.mkdir(exist_ok=True)

    def qemu(log: str, timed_open: bool = True, **fields: Callable[[Disk], Any]) -> Callable[[Slot], dict]:
        """Boots the session's disk; timed_open: the boot's time includes opening the disk (a
        mount, an import); fields: more fields of the row, from the disk."""
        def run(slot: Slot) -> dict:
            t0 = time.monotonic()
            disk = slot.get()
            res = boot.run_qemu(f"file={disk.file},format=raw,if=virtio,snapshot=on", ctx.a.boot_timeout,
                                cons / log, t_start=t0 if timed_open else None)
            return res | {k: f(disk) for k, f in fields.items()}
        return run

    plan = []
    for rnd in range(max(1, ctx.a.boot_runs)):
        suffix = "" if rnd == 0 else f" #{rnd + 1}"
        tag = suffix.replace(" #", "-")
        plan.append(Session("local", "raw", [Step("boot" + suffix, qemu(f"local{tag}.log", timed_open=False),
                                                  before=lambda slot: b.drop_file_cache(slot.get().file))],
                            lambda: LocalFile(ctx.data / "disk.raw")))
        for layer in ctx.a.boot_layers:
            if layer not in ctx.a.layers:
                continue
            plan.append(Session("import", layer, [Step("boot" + suffix, qemu(
                f"import-{layer}{tag}.log", import_seconds=lambda d: round(d.open_fields["seconds"], 3),
                rss_kib=lambda d: d.open_fields["rss_kib"]))],
                lambda layer=layer: Imported(ctx, b.LAYERS[layer].import_as)))
            if not ctx.ocifs:
                continue
            # The first lazy boot records an access profile; with --profile, another cold mount
            # fetches it ahead while qemu boots (the profile of a real boot, used by another).
            profile = ctx.scratch / f"boot-{layer}.profile"
            knows_accel = ocifs_knows_accel()
            no_accel = ("--accel=off",) if knows_accel else ()
            runs = [("boot", no_accel, None)]
            if ctx.a.profile and b.LAYERS[layer].seekable:  # gzip, zstd: read as streams here
                if not suffix:
                    runs = [("boot", no_accel + ("--record-profile", str(profile)),
                             lambda p=profile: p.unlink(missing_ok=True))]
                runs.append(("boot (profile)", no_accel + ("--prefetch-profile", str(profile)), None))
            if knows_accel and b.LAYERS[layer].decoder != "none":
                # A fresh node with the image's acceleration artifact, as `oci-fs accelerate`
                # pushes it (pushed again each round, untimed): the issue's "time to a running
                # VM". As a publisher would: the first round boots with an artifact without a
                # profile and records the boot's reads; every "boot (artifact)" round's artifact
                # carries that boot's profile (else the profile this run's cold trace recorded).
                trace_profile = ctx.scratch / f"{layer}.profile"
                boot_profile = ctx.scratch / f"boot-artifact-{layer}.profile"
                if not suffix and ctx.a.profile:
                    def bare_artifact(layer=layer, bp=boot_profile) -> None:
                        bp.unlink(missing_ok=True)
                        accelerate(ctx, layer, ctx.scratch / "no.profile")
                    runs.append(("boot (artifact, no profile)",
                                 ("--prefetch-profile=none", "--record-profile", str(boot_profile)), bare_artifact))
                runs.append(("boot (artifact)", (),
                             lambda layer=layer, tp=trace_profile, bp=boot_profile:
                             accelerate(ctx, layer, bp if bp.exists() else tp)))
            for scenario, extra, setup in runs:
                log = f"ocifs-{layer}{'-profile' if 'profile' in scenario else ''}{'-artifact' if 'artifact' in scenario else ''}{tag}.log"
                plan.append(Session("oci-fs", layer, [Step(scenario + suffix, qemu(log))],
                                    lambda layer=layer, extra=extra: Ocifs(ctx, layer, extra=extra), setup=setup,
                                    when=profile.exists if "--prefetch-profile" in extra else always))
        if "none" in ctx.a.layers and not ctx.a.skip_peers and not suffix:  # ~90 s a boot: once
            plan.append(Session("nbdkit+qsd", "none", [Step("boot", qemu("nbdqsd-none.log"))],
                                lambda: NbdQsd(ctx, "none")))
    return plan


# ----------------------------------------------------------------------------- concurrent mounts

class OcifsPool(Disk):
    """n `oci-fs mount`s of one layer started at once over one fresh cache dir (as n VMs of one
    image on a node), each on its own mount point; file is the first one's disk."""

    def __init__(self, ctx: Ctx, layer: str, n: int):
        self.cache = ctx.scratch / f"cache-{layer}-x{n}"
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True)
        no_accel = ("--accel=off",) if ocifs_knows_accel() else ()
        self.mounts: list[Ocifs | None] = [None] * n
        errors: list[BaseException] = []

        def start(i: int) -> None:
            try:
                self.mounts[i] = Ocifs(ctx, layer, self.cache, no_accel, name=f"-x{n}-{i}")
            except BaseException as e:  # noqa: BLE001 (raised below, after the others are up)
                errors.append(e)
        threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.close()
            raise errors[0]

    @property
    def files(self) -> list[Path]:
        return [m.file for m in self.mounts if m]

    @property
    def file(self) -> Path:
        return self.files[0]

    def pids(self):
        return [p for m in self.mounts if m for p in m.pids()]

    def pss_mib(self) -> float:
        """The summed PSS (/proc/PID/smaps_rollup) of the mounts' processes and their children."""
        total = 0
        for pid in self.pids():
            for p in [pid] + b.descendants(pid):
                try:
                    for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except OSError:
                    pass
        return round(total / 1024, 1)

    def close(self) -> dict:
        stats = [m.close() for m in self.mounts if m]
        self.mounts = []
        return {"ocifs_stats": [s.get("ocifs_stats") for s in stats]}


def concurrent_replays(ctx: Ctx, slot: Slot) -> dict:
    """The boot trace replayed on every mount of the pool at once (the pool opens first, inside the
    timed step: bytes and time include the mounts). seconds: the slowest trace; trace_seconds: each."""
    t0 = time.monotonic()
    pool = slot.get()
    mounted = time.monotonic() - t0
    results: list[dict | BaseException | None] = [None] * len(pool.files)

    def one(i: int, f: Path) -> None:
        try:
            results[i] = replay(f, *replay_args(ctx, "trace"), timeout=ctx.a.peer_timeout)
        except BaseException as e:  # noqa: BLE001
            results[i] = e
    threads = [threading.Thread(target=one, args=(i, f)) for i, f in enumerate(pool.files)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    secs = [r["seconds"] for r in results]
    return {"seconds": round(mounted + max(secs), 4), "mount_seconds": round(mounted, 3),
            "trace_seconds": [round(x, 3) for x in secs], "read_bytes": sum(r["read_bytes"] for r in results),
            "mounts": len(secs), "pss_mib": pool.pss_mib()}


def concurrent_plan(ctx: Ctx) -> list[Session]:
    """N = 1, 3, 8 concurrent cold mounts of one layer (the first of --concurrent-layers) over one
    cache dir, each replaying the boot trace: the cross-process single flight of the chunk cache."""
    plan = []
    for layer in ctx.a.concurrent_layers:
        for n in ctx.a.concurrent:
            # Its own subject: the oci-fs targets (one mount's RSS, say) are not about N mounts.
            plan.append(Session("oci-fs pool", layer, [Step(f"concurrent {n} trace", lambda slot: concurrent_replays(ctx, slot))],
                                lambda layer=layer, n=n: OcifsPool(ctx, layer, n), group=f"concurrent {layer}"))
    return plan


def concurrent_lines(ctx: Ctx) -> list[str]:
    """The concurrent part's table: bytes and times as ratios against N = 1 of the same run. A VM's
    time is the pool's mount time plus its replay (the replays start together once every mount is
    up; a mount that waits for another's gzip pass is slow to come up and then fast to read)."""
    lines = []
    for layer in ctx.a.concurrent_layers:
        rows = {r["mounts"]: r for r in ctx.rows if r["layer"] == layer and "mounts" in r and "error" not in r}
        one = rows.get(1)
        if not one:
            continue
        lines += ["", f"Concurrent cold mounts of {layer} over one cache dir (ratios against N = 1 of this run):", "",
                  "| N | fetched MiB | bytes / N=1 | mount s | replay s (each) | slowest mount + replay s | "
                  "time / N=1 | PSS MiB (all) |",
                  "|---:|---:|---:|---:|---|---:|---:|---:|"]
        base_t = one["mount_seconds"] + max(one["trace_seconds"])
        for n, r in sorted(rows.items()):
            t = r["mount_seconds"] + max(r["trace_seconds"])
            lines.append(f"| {n} | {r['fetched_bytes'] / 2**20:.1f} | {r['fetched_bytes'] / max(1, one['fetched_bytes']):.2f} | "
                         f"{r['mount_seconds']:.1f} | {', '.join(f'{x:.1f}' for x in r['trace_seconds'])} | {t:.1f} | "
                         f"{t / base_t:.2f} | {r['pss_mib']:.0f} |")
    return lines


# The parts of a run (--only), in the order they run: each plans its sessions when its turn comes.
PARTS: dict[str, Callable[[Ctx], list[Session]]] = {
    "local": local_plan,
    "import": import_plan,
    "floor": floor_plan,
    "nbdqsd": nbdqsd_plan,
    "ocifs": lambda ctx: [s for layer in ctx.a.layers for s in ocifs_plan(ctx, layer)],
    "boot": boot_plan,
    "concurrent": concurrent_plan,  # only when asked for (--only concurrent)
}


def run_parts(ctx: Ctx, parts: set[str]) -> None:
    broken: set[str] = set()
    for name, plan in PARTS.items():
        if name in parts:
            for session in plan(ctx):
                if ctx.a.sessions and not any(re.fullmatch(ctx.a.sessions, st.scenario) for st in session.steps):
                    continue
                run_session(ctx, session, broken)


# ----------------------------------------------------------------------------- report

def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**20, 1),
            "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().split()[:3],
            "autogroup": autogroup(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def autogroup() -> bool | None:
    """Whether the scheduler groups CPU time per session (kernel.sched_autogroup_enabled): then a
    `nice`d build in another terminal still takes an equal share of the CPU from the bench, and
    timings on a shared machine swing by 30% and more (a TCG boot: 35 s to 47 s)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def write_markdown(ctx: Ctx, m: dict | None = None) -> str:
    m = m or machine()
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; "
             f"{m['date']}; load average at the end {' '.join(m['loadavg'])}"
             + ("; scheduler autogroups on (nice does not shield the bench)" if m.get("autogroup") else "") + ".",
             f"Network: {ctx.a.mbit:g} Mbit/s, {ctx.a.rtt_ms:g} ms RTT (bench/throttle_proxy.py). "
             f"Trace: {ctx.trace.name}; replay threads: {ctx.a.threads}.", "",
             "| subject | layer | scenario | seconds | fetched MiB | requests | peak RSS MiB |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in ctx.rows:
        secs = r.get("boot_seconds", r.get("seconds"))
        s = "error" if "error" in r else f"{secs:.3f}"
        if "steps" in r:
            s += " (" + ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items()) + ")"
        if "import_seconds" in r:
            s += f" (import {r['import_seconds']:.1f})"
        if r.get("resident_mib_before") is not None:
            s += f" ({r['resident_mib_before']:.0f} MiB cached before)"
        lines.append(f"| {r['subject']} | {r['layer']} | {r['scenario']} | {s} | "
                     f"{r['fetched_bytes'] / 2**20:.1f} | {r['requests']} | {r.get('rss_mib') or '-'} |")
    lines += concurrent_lines(ctx)
    lines += ["", *targets(ctx)]
    text = "\n".join(lines) + "\n"
    (ctx.out / "results.md").write_text(text)
    return text


# ----------------------------------------------------------------------------- targets
# A selector picks a value of the run's rows for one layer: a number, a row, or None (missing).

Selector = Callable[[Ctx, str], Any]


def rows_of(ctx: Ctx, subject: str, layer: str, scenario: str) -> list[dict]:
    return [r for r in ctx.rows if (r["subject"], r["layer"], r["scenario"]) == (subject, layer, scenario)
            and "error" not in r]


def row(subject: str, scenario: str, key: str = "seconds", layer: str | None = None) -> Selector:
    """The first such row's `key` (layer: a fixed one, as the local file's "raw")."""
    def get(ctx, lay):
        found = rows_of(ctx, subject, layer or lay, scenario)
        return found[0].get(key) if found else None
    return get


def total(subject: str, read: str, label: str | Callable[[b.Layer], str] = "") -> Selector:
    """Time to the end of a read, "{read}{label}": the read plus its session's mount,
    "mount{label}", or, for the import, plus the import (the layer's import: zstd's for
    zstd-seekable); label may depend on the layer."""
    def get(ctx, layer):
        lab = label(b.LAYERS[layer]) if callable(label) else label
        lay = b.LAYERS[layer].import_as if subject == "import" else layer
        opened = row(subject, "import" if subject == "import" else "mount" + lab)(ctx, lay)
        done = row(subject, read + lab)(ctx, lay)
        return None if done is None or opened is None else done + opened
    return get


def fastest(subject: str) -> Selector:
    """The fastest row of a subject and layer (the floor's, at its best number of connections)."""
    def get(ctx, layer):
        mine = [r for r in ctx.rows if (r["subject"], r["layer"]) == (subject, layer) and "error" not in r]
        return min(mine, key=lambda r: r["seconds"]) if mine else None
    return get


def boot_times(ctx: Ctx, subject: str, layer: str, scenario: str) -> list[float]:
    """The boot times of every round ("boot", "boot #2", ...)."""
    return [r["boot_seconds"] for r in ctx.rows if (r["subject"], r["layer"]) == (subject, layer)
            and r["scenario"].split(" #")[0] == scenario and "error" not in r and "boot_seconds" in r]


def boots(subject: str, scenario: str, layer: str | None = None) -> Selector:
    """The median boot time of every round, None without any (the targets take medians)."""
    def get(ctx, lay):
        v = boot_times(ctx, subject, layer or lay, scenario)
        return median(v) if v else None
    return get


def peak_rss(subject: str) -> Selector:
    def get(ctx, layer):
        rss = [r.get("rss_mib") or 0 for r in ctx.rows if r["subject"] == subject and r["layer"] == layer]
        return max(rss) if rss else None
    return get


@dataclass(frozen=True)
class Target:
    """One line under the table, for each layer the target's group covers where num and den
    (when given) both have a value: text.format(**v) or text(v), with v: layer, L (its
    b.Layer), num, den, ratio (num over den, or over den's seconds when den is a row), goal
    and the values of `also` (optional ones, None when missing)."""
    name: str
    num: Selector
    den: Selector | None
    text: str | Callable[[dict], str]
    goal: float | Callable[[b.Layer], float] | None = None
    also: dict[str, Selector] = field(default_factory=dict)

    def line(self, ctx: Ctx, layer: str) -> str | None:
        num = self.num(ctx, layer)
        den = self.den(ctx, layer) if self.den else None
        if not num or (self.den and not den):
            return None
        kind = b.LAYERS.get(layer)
        v = {"name": self.name, "layer": layer, "L": kind, "num": num, "den": den,
             "goal": self.goal(kind) if callable(self.goal) else self.goal, "disk_mib": ctx.disk_mib}
        if den:
            v["ratio"] = num / (den["seconds"] if isinstance(den, dict) else den)
        v |= {k: sel(ctx, layer) for k, sel in self.also.items()}
        return "- " + (self.text(v) if callable(self.text) else self.text.format(**v))


def table_layers(pred: Callable[[b.Layer], Any] = lambda kind: True) -> Callable[[Ctx], list[str]]:
    """Every layer kind of b.LAYERS (whether this run has it or not) that pred accepts, in its order."""
    return lambda ctx: [k for k, kind in b.LAYERS.items() if pred(kind)]


def run_layers(ctx: Ctx) -> list[str]:
    return ctx.a.layers


def boot_layers(ctx: Ctx) -> list[str]:
    return ctx.a.boot_layers


def only(*layers: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: list(layers)


IMPORT_VS_LAZY = "{name}, {layer}: full import {num:.1f} s / oci-fs {den:.2f} s = {ratio:.1f}x (target >= {goal}x)"


def _floor(what: Callable[[dict], str]) -> Callable[[dict], str]:
    return lambda v: (f"floor, {v['layer']}: {what(v['den'])} takes {v['den']['seconds']:.2f} s on this link: "
                      f"no lazy mount can beat the import by more than {v['ratio']:.1f}x here")


def _boot(v: dict) -> str:
    line = (f"VM boot to multi-user, {v['layer']} (median of {v['n']}): "
            + (f"local file {v['local']:.1f} s, " if v["local"] else "")
            + f"import + boot {v['num']:.1f} s, oci-fs {v['den']:.1f} s")
    line += f", oci-fs with the first boot's profile {v['profile']:.1f} s" if v["profile"] else ""
    if v.get("artifact") and v["local"]:
        line += (f", oci-fs on a fresh node with the artifact {v['artifact']:.1f} s (mount included): "
                 f"{v['artifact'] / v['local']:.2f}x the local file's boot (target <= 1.1x, plus the mount)")
    return line


def _warm(v: dict) -> str:
    note = (f" (page cache before: {v['cached']:.0f} vs {v['cached_local']:.0f} MiB of {v['disk_mib']:.0f})"
            if None not in (v["cached"], v["cached_local"]) else "")
    return f"{v['name']}, {v['layer']}: {v['ratio']:.2f}x the local raw file (target <= 2x){note}"


def _warm_target(scenario: str) -> Target:
    return Target(scenario, row("oci-fs", scenario), row("local", scenario, layer="raw"), _warm,
                  also={"cached": row("oci-fs", scenario, "resident_mib_before"),
                        "cached_local": row("local", scenario, "resident_mib_before", layer="raw")})


def _profiled_label(kind: b.Layer) -> str:
    """The session of a layer kind that has all the help a first mount can get: the artifact and
    its profile (a compressed layer), or the profile (the uncompressed layer, which needs no index)."""
    return " (artifact, profile)" if kind.decoder != "none" else (kind.profile_label or " (profile)")


def _vs_floor(v: dict) -> str:
    got = f", {v['mib'] / 2**20:.1f} MiB fetched" if v.get("mib") else ""
    return (f"{v['name']}, {v['layer']}{_profiled_label(v['L'])}: mount + trace {v['num']:.2f} s{got}, "
            f"{v['ratio']:.2f}x the floor ({v['den']['needed_bytes'] / 2**20:.1f} MiB, {v['den']['in_flight']} at once, "
            f"{v['den']['seconds']:.2f} s) (target <= {v['goal']}x)")


# The targets as ratios of this run: (the layers a group covers, its targets); the lines
# come layer by layer within a group.
TARGETS: list[tuple[Callable[[Ctx], list[str]], list[Target]]] = [
    (table_layers(), [
        Target("boot trace", total("import", "cold trace"), total("oci-fs", "cold trace"), IMPORT_VS_LAZY,
               goal=lambda kind: 2 if kind.gzip_index else 10),  # a gzip stream is entered at its start only
        Target("full sequential read", total("oci-fs", "cold seq"), total("import", "cold seq"),
               "{name}, {layer}: oci-fs {num:.1f} s vs import {den:.1f} s (target: no slower)")]),
    (only("none"), [Target("floor", total("import", "cold trace"), fastest("floor"), _floor(
        lambda r: f"fetching only the {r['needed_bytes'] / 2**20:.1f} MiB the trace needs, "
                  f"{r['in_flight']} ranges at once,"))]),
    (only("gzip"), [Target("floor", total("import", "cold trace"), fastest("floor"), _floor(
        lambda r: f"the whole layer (a first mount streams it to the trace's last read, "
                  f"{100 * r['trace_reaches']:.1f}% into the tar),"))]),
    # The issue: without an artifact, a first mount of a gzip or zstd layer streams it at link
    # rate (a seekable one is filled behind its reads), so its trace ends within 1.1x of one GET
    # of the whole layer.
    (only("gzip", "zstd", "zstd-seekable"), [
        Target("first mount vs whole layer", total("oci-fs", "cold trace"), fastest("floor"),
               lambda v: f"boot trace, {v['layer']} on a first mount without the artifact: {v['num']:.2f} s, "
                         f"{v['ratio']:.2f}x one GET of the whole layer ({v['den']['seconds']:.2f} s; "
                         f"target <= 1.1x)")]),
    # The issue: a zstd:chunked layer (buildah push --compression-format zstd:chunked) is read at
    # random from its first mount through the TOC it carries, no artifact and no first pass: its
    # cold trace against the uncompressed layer's (the first try fetched the whole layer).
    (only("zstd-chunked"), [
        Target("first mount vs uncompressed", total("oci-fs", "cold trace"),
               lambda ctx, layer: total("oci-fs", "cold trace")(ctx, "none"),
               lambda v: f"boot trace, {v['layer']} on a first mount (its own TOC, no artifact): {v['num']:.2f} s, "
                         + (f"{v['mib'] / 2**20:.1f} MiB fetched, " if v.get("mib") else "")
                         + f"{v['ratio']:.2f}x the uncompressed layer's first mount ({v['den']:.2f} s)",
               also={"mib": row("oci-fs", "cold trace", "fetched_bytes")})]),
    (table_layers(lambda kind: kind.gzip_index), [
        Target("boot trace", total("import", "cold trace"), total("oci-fs", "cold trace", " (index)"),
               "{name}, {layer} with index: {ratio:.1f}x (target >= {goal}x)", goal=10)]),
    # A fresh node with the image's acceleration artifact (docs/accel-format.md): the issue asks
    # for the gzip layer within 1.2x of the uncompressed layer's cold trace without a profile.
    (table_layers(lambda kind: kind.decoder != "none"), [
        Target("boot trace", total("import", "cold trace"), total("oci-fs", "cold trace", " (artifact)"),
               "{name}, {layer} on a fresh node with the artifact: {ratio:.1f}x the full import"),
        Target("boot trace vs uncompressed", total("oci-fs", "cold trace", " (artifact)"),
               lambda ctx, layer: total("oci-fs", "cold trace")(ctx, "none"),
               "{name}, {layer} with the artifact: {ratio:.2f}x the uncompressed layer's cold trace "
               "(target <= 1.2x)"),
        Target("boot trace", total("import", "cold trace"), total("oci-fs", "cold trace", " (artifact, profile)"),
               "{name}, {layer} on a fresh node with the artifact and its profile: {ratio:.1f}x the full import")]),
    # The issue: with the artifact and its profile, each layer kind within 1.5x of its floor, the
    # bytes it needs at link rate. The floor measured is the uncompressed layer's (the qcow2's
    # compressed clusters the trace needs, fetched all at once); a gzip or zstd layer of this disk
    # needs at least about as many bytes (its clusters are compressed already: the layer's
    # compression saves 2%), plus the rest of the spans its reads inflate.
    (table_layers(), [
        Target("profile vs floor", total("oci-fs", "cold trace", _profiled_label),
               lambda ctx, layer: fastest("floor")(ctx, "none"), _vs_floor, goal=1.5,
               also={"mib": lambda ctx, layer: row("oci-fs", "cold trace" + _profiled_label(b.LAYERS[layer]),
                                                     "fetched_bytes")(ctx, layer)})]),
    (table_layers(lambda kind: kind.profile_label), [
        Target("boot trace", total("import", "cold trace"),
               total("oci-fs", "cold trace", lambda kind: kind.profile_label),
               IMPORT_VS_LAZY.replace("{name}", "{name}{L.profile_label}"), goal=10)]),
    (boot_layers, [Target("VM boot", boots("import", "boot"), boots("oci-fs", "boot"), _boot,
                          also={"local": boots("local", "boot", layer="raw"),
                                "n": lambda ctx, layer: len(boot_times(ctx, "local", "raw", "boot")),
                                "profile": boots("oci-fs", "boot (profile)"),
                                "artifact": boots("oci-fs", "boot (artifact)")})]),
    (run_layers, [_warm_target("warm trace")]),
    (run_layers, [_warm_target("warm seq")]),
    (run_layers, [Target("remount trace", row("oci-fs", "remount trace"), row("local", "cold trace", layer="raw"),
                         "trace after a remount on the same node, {layer}: {num:.2f} s, "
                         "{ratio:.2f}x the local raw file's cold trace")]),
    (run_layers, [Target("peak memory (PSS)", peak_rss("oci-fs"), None,
                         "{name} of oci-fs (keeper + server), {layer}: {num:.1f} MiB (target <= {goal})",
                         goal=64)]),
    # A KubeVirt VM export (docs/bare-disks.md): its one raw+zstd frame read as a stream on a
    # first mount, then random-access with the artifact's zstd checkpoints; against the zstd
    # containerDisk (a qcow2 in a tar, one frame) and the floors of this run.
    (only("kubevirt"), [
        Target("boot trace", total("oci-fs", "cold trace"), lambda ctx, layer: total("oci-fs", "cold trace")(ctx, "zstd"),
               "{name}, {layer} (VM export, one raw+zstd frame) on a first mount: {num:.2f} s, "
               "{ratio:.2f}x the zstd containerDisk's ({den:.2f} s)"),
        Target("boot trace", total("oci-fs", "cold trace", " (artifact)"),
               lambda ctx, layer: total("oci-fs", "cold trace", " (artifact)")(ctx, "zstd"),
               "{name}, {layer} with the artifact: {num:.2f} s, {ratio:.2f}x the zstd containerDisk's "
               "with its artifact ({den:.2f} s)"),
        Target("boot trace", total("oci-fs", "cold trace", " (artifact)"), total("oci-fs", "cold trace"),
               "{name}, {layer}: with the artifact {ratio:.2f}x the time without ({num:.2f} s vs {den:.2f} s)"),
        Target("boot trace", total("oci-fs", "cold trace"), fastest("floor"),
               lambda v: f"boot trace, {v['layer']} on a first mount: {v['num']:.2f} s, {v['ratio']:.2f}x its "
                         f"floor (the whole layer in one GET, {v['den']['seconds']:.2f} s)"),
        Target("boot trace", total("oci-fs", "cold trace", " (artifact)"), lambda ctx, layer: fastest("floor")(ctx, "none"),
               lambda v: f"boot trace, {v['layer']} with the artifact: {v['num']:.2f} s, {v['ratio']:.2f}x the "
                         f"uncompressed layer's floor ({v['den']['needed_bytes'] / 2**20:.1f} MiB the trace needs, "
                         f"{v['den']['in_flight']} ranges at once, {v['den']['seconds']:.2f} s)")]),
    (only("none"), [Target("boot trace vs nbdkit+qsd", total("nbdkit+qsd", "cold trace"),
                           total("oci-fs", "cold trace"), "{name} (uncompressed): {ratio:.1f}x (target > 1x)")]),
]


def targets(ctx: Ctx) -> list[str]:
    """The TARGETS lines whose rows exist in this run."""
    out = [line for layers, group in TARGETS for layer in layers(ctx) for t in group
           if (line := t.line(ctx, layer)) is not None]
    return ["Targets:", *out] if out else []


def replot(out: Path) -> int:
    """Redraws results.md and the plot of an earlier run from its results.json and proxy.log."""
    ctx = Ctx.from_results(out)
    print(write_markdown(ctx, ctx.machine))
    plot(ctx)
    return 0


def plot(ctx: Ctx) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        b.log("no matplotlib: no plot")
        return
    samples = []
    for line in open(ctx.proxy.log_path):
        rec = json.loads(line)
        if "down" in rec:
            samples.append((rec["t"], rec["down"]))
    wanted = [r for r in ctx.rows if "error" not in r and r["scenario"] in ("import", "mount", "cold trace", "boot")]

    def series(rows):
        t0 = rows[0]["start"]
        end = rows[-1]["end"]
        base = max([d for t, d in samples if t <= t0] or [0])
        pts = [(0.0, 0)] + [(t - t0, d - base) for t, d in samples if t0 < t <= end]
        pts.append((end - t0, pts[-1][1]))
        return pts

    colors = {}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = ["cold trace"] + (["boot"] if any(r["scenario"] == "boot" for r in wanted) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, final in zip(axes[0], panels):
        for subject in ("import", "nbdkit+qsd", "oci-fs"):
            for layer in ctx.a.layers:
                rows = [r for r in wanted if r["subject"] == subject and r["layer"] == layer]
                if final == "cold trace":
                    first = "import" if subject == "import" else "mount"
                    seq = [r for r in rows if r["scenario"] in (first, "cold trace")]
                    idx = [i for i, r in enumerate(seq) if r["scenario"] == "cold trace"]
                    if not idx or idx[0] == 0:
                        continue
                    seq = seq[idx[0] - 1: idx[0] + 1]
                else:
                    seq = [r for r in rows if r["scenario"] == "boot"]
                if not seq:
                    continue
                pts = series(seq)
                label = f"{subject} ({layer})"
                color = colors.setdefault(label, palette[len(colors) % len(palette)])
                ax.plot([p[0] for p in pts], [p[1] / 2**20 for p in pts], label=label, color=color)
        ax.set_title("boot trace: mount/import, then replay" if final == "cold trace"
                     else "time to a running VM (TCG boot)")
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("MiB fetched from the registry")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(f"Cumulative registry bytes, {ctx.a.mbit:g} Mbit/s, {ctx.a.rtt_ms:g} ms RTT")
    fig.tight_layout()
    fig.savefig(ctx.out / "bytes-vs-time.png", dpi=100)


# ----------------------------------------------------------------------------- main

def quick_trace(data: Path) -> Path:
    """A deterministic stand-in for the boot trace on the quick disk: the first 256 KiB
    (superblock, group descriptors, bitmaps) and 100 clustered reads of 4-128 KiB."""
    path = data / "trace.csv"
    size = (data / "disk.raw").stat().st_size
    rnd = random.Random(7)
    lines = ["offset,length"] + [f"{o},{4096}" for o in range(0, 256 << 10, 4096)]
    pos = 0
    for _ in range(100):
        pos = (pos + rnd.choice([4096, 65536, 1 << 20, rnd.randrange(size)])) % (size - (128 << 10))
        pos -= pos % 512
        lines.append(f"{pos},{rnd.choice([4096, 16384, 65536, 131072])}")
    path.write_text("\n".join(lines) + "\n")
    return path


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 MiB disk, no boots (test-suite form)")
    ap.add_argument("--mbit", type=float, default=400)
    ap.add_argument("--rtt-ms", type=float, default=20)
    ap.add_argument("--layers", default="none,gzip,zstd,zstd-seekable")
    ap.add_argument("--boot-layers", default="gzip,zstd,none")
    ap.add_argument("--threads", type=int, default=1, help="replay threads (requests in flight)")
    ap.add_argument("--random-reads", type=int, help="default 1000 (--quick: 100)")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--skip-ocifs", action="store_true")
    ap.add_argument("--skip-boot", action="store_true")
    ap.add_argument("--boot-runs", type=int, default=1, help="rounds of boots (the targets take medians)")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the access-profile sessions (record on one mount, prefetch on the next)")
    ap.add_argument("--ocifs-args", default="", help="extra `oci-fs mount` options, space-separated "
                    "(e.g. --ocifs-args=--prefetch-all)")
    ap.add_argument("--nbdqsd-scenarios", default="trace,random,seq",
                    help="cold scenarios of the nbdkit+qsd peer (its full read takes ~8 min)")
    ap.add_argument("--sessions", default="", metavar="REGEX",
                    help="run only the sessions with a step whose name fully matches REGEX, e.g. "
                    "'cold trace.*' (a session that needs an earlier one's profile or index is skipped "
                    "when that one is filtered out)")
    ap.add_argument("--only", default="", help="comma list of parts: local,import,floor,nbdqsd,ocifs,boot,"
                    "concurrent (the last runs only when named)")
    ap.add_argument("--concurrent", default="1,3,8", help="the concurrent part's numbers of mounts")
    ap.add_argument("--concurrent-layers", default="gzip", help="the concurrent part's layers")
    ap.add_argument("--peer-timeout", type=float, default=900, help="seconds for one peer scenario")
    ap.add_argument("--boot-timeout", type=float, default=900)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--scratch", type=Path, help="mount points and cache dirs (default bench/work/<data>/scratch; "
                    "removed at the end)")
    ap.add_argument("--replot", type=Path, metavar="DIR", help="redraw results.md and the plot of DIR")
    return ap


def finish_args(a: argparse.Namespace) -> argparse.Namespace:
    """The options as the run uses them (lists, the --quick defaults); results.json records these."""
    a.random_reads = a.random_reads or (100 if a.quick else 1000)
    a.layers = [x for x in a.layers.split(",") if x]
    a.boot_layers = [x for x in a.boot_layers.split(",") if x]
    a.ocifs_args = a.ocifs_args.split()
    a.nbdqsd_scenarios = [x for x in a.nbdqsd_scenarios.split(",") if x]
    a.concurrent = [int(x) for x in str(a.concurrent).split(",") if x] if isinstance(a.concurrent, str) else a.concurrent
    a.concurrent_layers = ([x for x in a.concurrent_layers.split(",") if x]
                           if isinstance(a.concurrent_layers, str) else a.concurrent_layers)
    return a


def main() -> int:
    a = parser().parse_args()
    if a.replot:
        return replot(a.replot)
    a = finish_args(a)
    parts = set(a.only.split(",")) if a.only else set(PARTS) - {"concurrent"}
    if a.skip_peers:
        parts -= {"import", "floor", "nbdqsd"}
    if a.skip_ocifs:
        parts.discard("ocifs")
    if a.skip_boot or a.quick:
        parts.discard("boot")
    data = b.WORK / ("quick" if a.quick else "full")
    a.out = a.out or b.WORK / "results" / (("quick-" if a.quick else "") + time.strftime("%Y%m%d-%H%M%S"))
    a.out.mkdir(parents=True, exist_ok=True)
    trace = quick_trace(data) if a.quick else b.BENCH / "boot-trace.csv"
    if not trace.exists():
        b.log(f"no boot trace at {trace}: run bench/run.sh --record-trace first")
        return 1
    if autogroup() and float(open("/proc/loadavg").read().split()[0]) > 1:
        b.log("note: the machine is busy and kernel.sched_autogroup_enabled=1, so nice'd work elsewhere "
              "still shares the CPU with this run; `echo 0 > /proc/sys/kernel/sched_autogroup_enabled` "
              "lets nice shield it")
    ocifs = ocifs_available() if parts & {"ocifs", "boot", "concurrent"} else None
    if not ocifs:
        b.log("oci-fs mount not available: oci-fs scenarios skipped")
        parts -= {"ocifs", "concurrent"}
    layout = data / "oci"
    b.write_oci_layout(layout, {c: data / b.LAYERS[c].file for c in a.layers})
    ctx = Ctx(a, data, a.out, trace, bool(ocifs))
    try:
        with b.Registry(data / "registry") as reg:
            b.push_layout(layout, reg, REPO, a.layers)
            with b.Proxy(reg.host, a.mbit, a.rtt_ms, a.out / "proxy.log") as px:
                ctx.proxy = px
                run_parts(ctx, parts)
                ctx.save()
                print(write_markdown(ctx))
                plot(ctx)
    finally:
        b.processes.cleanup_all()
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    errors = [r for r in ctx.rows if "error" in r]
    b.log(f"results in {a.out} ({len(ctx.rows)} rows, {len(errors)} errors)")
    return 1 if errors else 0


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
