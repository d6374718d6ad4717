#!/usr/bin/python3
"""The benchmark: lazy oci-fs mounts against the full import and the nbdkit + qemu-storage-daemon
pipeline, through a registry on loopback behind a proxy that costs what a network costs.

Run it with bench/run.sh (which builds the disk and the replay tool first); see
docs/benchmarks.md for what each scenario means. Writes OUT/results.json,
OUT/results.md, OUT/bytes-vs-time.png and the proxy's log.
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
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402
import boot  # noqa: E402
import trace_stats  # noqa: E402

REPO = "bench/disk"
REPLAY = b.WORK / "replay"


class Ctx:
    def __init__(self, args, data: Path, out: Path, trace: Path):
        self.a, self.data, self.out, self.trace = args, data, out, trace
        self.rows: list[dict] = []
        self.proxy: b.Proxy | None = None
        self.disk_mib = (data / "disk.raw").stat().st_size / 2**20
        self.scratch = data / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def ref(self, layer: str) -> str:
        return f"{self.proxy.host}/{REPO}:{layer}"

    def blob_digest(self, layer: str) -> str:
        return b.sha256_file(self.data / b.LAYER_FILE[layer])

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


# ----------------------------------------------------------------------------- readers

def replay(path: Path, mode: str, *extra: str, timeout: float = 1800) -> dict:
    out = subprocess.run([str(REPLAY), mode, str(path), *extra], check=True,
                         stdout=subprocess.PIPE, timeout=timeout).stdout
    r = json.loads(out)
    return {"seconds": r["seconds"], "read_bytes": r["bytes"], "reads": r["reads"]}


def reads(ctx: Ctx, subject: str, layer: str, disk: Path, phase: str, pids=lambda: (),
          scenarios=("trace", "random", "seq"), before=None, label="", **extra) -> None:
    """The read scenarios on one disk file: phase is "cold" or "warm"; label a suffix."""
    t = ["--threads", str(ctx.a.threads)]
    spec = {"trace": ("trace", str(ctx.trace), *t),
            "random": ("random", str(ctx.a.random_reads), "--size", "4096", "--seed", "42", *t),
            "seq": ("seq", "--size", str(1 << 20))}
    for s in scenarios:
        if before:
            before()
        if phase == "warm":  # how much of the file the page cache still holds (DAMON, docs/benchmarks.md)
            extra["resident_mib_before"] = b.resident_mib(disk)
        ctx.measure(subject, layer, f"{phase} {s}{label}",
                    lambda s=s: replay(disk, *spec[s], timeout=ctx.a.peer_timeout), pids, **extra)


# ----------------------------------------------------------------------------- local raw

def run_local(ctx: Ctx) -> None:
    raw = ctx.data / "disk.raw"
    drop = lambda: b.drop_file_cache(raw)  # noqa: E731
    reads(ctx, "local", "raw", raw, "cold", before=drop)
    reads(ctx, "local", "raw", raw, "warm", scenarios=("trace", "seq"))


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
    dec = {"none": [], "gzip": ["-z"], "zstd": ["--zstd"], "zstd-seekable": ["--zstd"], "raw-gzip": ["-z"]}[layer]
    steps["untar"] = b.run_timed(["tar", "-x", *dec, "-f", str(blob), "-C", str(dest), "disk/disk.img"])
    blob.unlink()
    steps["convert"] = b.run_timed(["qemu-img", "convert", "-O", "raw",
                                    str(dest / "disk" / "disk.img"), str(dest / "disk.raw")])
    (dest / "disk" / "disk.img").unlink()
    return {"seconds": sum(s["seconds"] for s in steps.values()),
            "rss_kib": max(s["rss_kib"] for s in steps.values()),
            "steps": {k: round(v["seconds"], 3) for k, v in steps.items()}}


def run_full_import(ctx: Ctx, layer: str) -> None:
    dest = ctx.scratch / f"import-{layer}"
    ctx.measure("import", layer, "import", lambda: full_import(ctx, layer, dest))
    raw = dest / "disk.raw"
    reads(ctx, "import", layer, raw, "cold", before=lambda: b.drop_file_cache(raw))
    reads(ctx, "import", layer, raw, "warm", scenarios=("trace", "seq"))
    shutil.rmtree(dest, ignore_errors=True)


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


def run_floor(ctx: Ctx) -> None:
    """What no lazy reader can beat on this link, measured: for the uncompressed layer, the
    compressed bytes the trace needs (trace_stats.needed_ranges, shifted by the disk's place
    in the tar) fetched with a perfect prefetch, all at once; for a gzip layer's first mount,
    which must decompress the stream up to the trace's last read, one GET of the whole layer
    (the row says how far into the tar the trace reaches: the bench disk's boot reads its
    last clusters)."""
    tar_path = ctx.data / b.LAYER_TAR["none"]
    with tarfile.open(tar_path) as tar:
        base = tar.getmember("disk/disk.img").offset_data
    ranges = [(base + o, n) for o, n in trace_stats.needed_ranges(str(ctx.trace), str(ctx.data / "disk.qcow2"))]
    reach = round((ranges[-1][0] + ranges[-1][1]) / tar_path.stat().st_size, 4)
    if "none" in ctx.a.layers:
        for c in FLOOR_CONNECTIONS:
            ctx.measure("floor", "none", f"trace bytes ({c} at once)",
                        lambda c=c: fetch_ranges(ctx, "none", ranges, c))
    if "gzip" in ctx.a.layers:
        ctx.measure("floor", "gzip", "whole layer", lambda: fetch_ranges(ctx, "gzip", [(0, 0)], 1),
                    trace_reaches=reach)


# ----------------------------------------------------------------------------- nbdkit + qsd

class NbdQsd:
    """nbdkit curl plugin + tar filter (the uncompressed layer over HTTP ranges) -> NBD ->
    qemu-storage-daemon opening it as qcow2 -> raw disk exported as a FUSE file."""

    def __init__(self, ctx: Ctx, layer: str):
        self.ctx, self.layer = ctx, layer
        self.dir = ctx.scratch / "nbdqsd"
        self.file = self.dir / "disk.img"
        self.procs: list = []

    def __enter__(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.file.touch()
        sock = self.dir / "nbd.sock"
        url = f"http://{self.ctx.proxy.host}/v2/{REPO}/blobs/{self.ctx.blob_digest(self.layer)}"
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
        return self

    def pids(self):
        return [p.pid for p in self.procs if p.poll() is None]

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            b.processes.stop(p, timeout=10)
        if b.processes.is_mounted(self.file):
            b.processes.unmount(self.file, lazy=True)


def run_nbdqsd(ctx: Ctx, layer: str = "none") -> None:
    """Each cold scenario on a fresh pipeline; warm ones after the cold full read. --quick: the
    trace only (every read of this pipeline is a round trip: a full read takes minutes)."""
    holder = {}

    def start():
        holder["m"] = NbdQsd(ctx, layer).__enter__()

    for s in ("trace",) if ctx.a.quick else ctx.a.nbdqsd_scenarios:
        ctx.measure("nbdkit+qsd", layer, "mount", start, lambda: holder["m"].pids() if "m" in holder else ())
        try:
            if "m" in holder:
                reads(ctx, "nbdkit+qsd", layer, holder["m"].file, "cold", holder["m"].pids, scenarios=(s,))
                if s == "seq":  # no cache in this pipeline: warm = a second cold (trace only)
                    reads(ctx, "nbdkit+qsd", layer, holder["m"].file, "warm", holder["m"].pids,
                          scenarios=("trace",))
        finally:
            if "m" in holder:
                holder.pop("m").__exit__()


# ----------------------------------------------------------------------------- oci-fs

def ocifs_available() -> str | None:
    try:
        binary = b.processes.ocifs_bin()
    except b.processes.OcifsNotBuilt:
        return None
    out = subprocess.run([binary, "mount", "--help"], capture_output=True, text=True)
    text = out.stdout + out.stderr
    return binary if "mount" in text and "not implemented" not in text.lower() else None


class Ocifs:
    """One `oci-fs mount` of a layer through the proxy; a fresh cache dir unless given one."""

    def __init__(self, ctx: Ctx, layer: str, cache: Path | None = None, extra=()):
        self.ctx, self.layer = ctx, layer
        self.dir = ctx.scratch / f"mnt-{layer}"
        self.cache = cache or ctx.scratch / f"cache-{layer}"
        if cache is None:
            shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.m = b.processes.Mount(ctx.ref(layer), self.dir, "--tls-verify=false", *ctx.a.ocifs_args, *extra,
                                   cache_dir=self.cache, stats=True, timeout=120)

    @property
    def file(self) -> Path:
        return self.dir / "disk.img"

    def __enter__(self):
        self.m.__enter__()
        with open(self.file, "rb") as f:
            f.read(4096)
        return self

    def pids(self):
        return [self.m.pid] if self.m.pid else []

    def __exit__(self, *exc):
        self.m.__exit__()
        return False


def keep_only_gzip_index(cache: Path) -> None:
    """Leaves the gzip checkpoint index of a cache dir (side/<key>.gzidx, docs/cache-format.md)
    and drops every cached chunk, so the next mount has the index but no data."""
    shutil.rmtree(cache / "chunks", ignore_errors=True)
    if not list((cache / "side").glob("*.gzidx")):
        raise RuntimeError(f"no gzip index in {cache}/side after a full read")


def run_ocifs(ctx: Ctx, layer: str) -> None:
    holder = {}

    def mount(cache=None, extra=()):
        def go():
            holder["m"] = Ocifs(ctx, layer, cache, extra).__enter__()
        return go

    def pids():
        return holder["m"].pids() if "m" in holder else ()

    def session(scenarios, phase_cache=None, label="", extra=(), warm=True):
        ctx.measure("oci-fs", layer, "mount" + label, mount(phase_cache, extra), pids)
        if "m" not in holder:
            return
        m = holder["m"]
        try:
            reads(ctx, "oci-fs", layer, m.file, "cold", pids, scenarios=scenarios, label=label)
            if warm and "seq" in scenarios:
                reads(ctx, "oci-fs", layer, m.file, "warm", pids, scenarios=("trace", "seq"), label=label)
        finally:
            holder.pop("m").__exit__()
            ctx.rows[-1]["ocifs_stats"] = m.m.stats

    # The cold trace also records an access profile (docs/profile-format.md); the "(profile)"
    # session is a new cold mount that fetches it ahead, as a second boot of the image would.
    profile = ctx.scratch / f"{layer}.profile"
    profile.unlink(missing_ok=True)
    use_profile = ctx.a.profile and layer in ("none", "zstd-seekable")
    def remount():
        # The same node mounts the image again after the boot (a VM restarted): the cold
        # trace session's cache dir is kept (chunks, decompressed qcow2 clusters, indexes);
        # the page cache of disk.img is not.
        ctx.measure("oci-fs", layer, "mount (remount)", mount(ctx.scratch / f"cache-{layer}"), pids)
        if "m" not in holder:
            return
        m = holder["m"]
        try:
            reads(ctx, "oci-fs", layer, m.file, "remount", pids, scenarios=("trace",))
        finally:
            holder.pop("m").__exit__()
            ctx.rows[-1]["ocifs_stats"] = m.m.stats

    for s in ("trace", "random", "seq"):
        session((s,), extra=("--record-profile", str(profile)) if s == "trace" and use_profile else ())
        if s == "trace":
            remount()
    if use_profile and profile.exists():
        session(("trace",), label=" (profile)", extra=("--prefetch-profile", str(profile)))
    if layer in ("gzip", "raw-gzip"):
        # The index exists now (the seq pass decompressed the whole layer): keep it, drop chunks.
        cache = ctx.scratch / f"cache-{layer}"
        try:
            keep_only_gzip_index(cache)
        except Exception as e:
            err = e

            def fail():
                raise err
            ctx.measure("oci-fs", layer, "mount (index)", fail)
            return
        record = ("--record-profile", str(profile)) if ctx.a.profile else ()
        session(("trace",), cache, " (index)", extra=record)
        if ctx.a.profile and profile.exists():
            keep_only_gzip_index(cache)
            session(("trace",), cache, " (index, profile)", extra=("--prefetch-profile", str(profile)))
        # A full read on a node that has the index but not the chunks (evicted, or an index
        # shipped with the image): a raw disk's runs of zeros are known from the index.
        keep_only_gzip_index(cache)
        session(("seq",), cache, " (index)", warm=False)


# ----------------------------------------------------------------------------- boots

def run_boots(ctx: Ctx, ocifs: bool) -> None:
    """Each boot --boot-runs times, in rounds (local, then per layer import, oci-fs, oci-fs with
    a profile), so that drift of the machine hits every subject alike; rows of round k > 1 are
    named "boot #k" and the targets take the median."""
    for rnd in range(max(1, ctx.a.boot_runs)):
        boot_round(ctx, ocifs, "" if rnd == 0 else f" #{rnd + 1}")


def boot_round(ctx: Ctx, ocifs: bool, suffix: str) -> None:
    cons = ctx.out / "console"
    cons.mkdir(exist_ok=True)
    to = ctx.a.boot_timeout
    raw = ctx.data / "disk.raw"
    tag = suffix.replace(" #", "-")
    b.drop_file_cache(raw)
    ctx.measure("local", "raw", "boot" + suffix, lambda: boot.run_qemu(
        f"file={raw},format=raw,if=virtio,snapshot=on", to, cons / f"local{tag}.log"))
    for layer in ctx.a.boot_layers:
        if layer not in ctx.a.layers:
            continue

        def import_boot(layer=layer):
            dest = ctx.scratch / f"import-{layer}"
            t0 = time.monotonic()
            imp = full_import(ctx, layer, dest)
            res = boot.run_qemu(f"file={dest / 'disk.raw'},format=raw,if=virtio,snapshot=on",
                                to, cons / f"import-{layer}{tag}.log", t_start=t0)
            shutil.rmtree(dest, ignore_errors=True)
            return res | {"import_seconds": round(imp["seconds"], 3), "rss_kib": imp["rss_kib"]}
        ctx.measure("import", layer, "boot" + suffix, import_boot)
        if ocifs:
            # The first lazy boot records an access profile; with --profile, another cold mount
            # fetches it ahead while qemu boots (the profile of a real boot, used by another).
            profile = ctx.scratch / f"boot-{layer}.profile"
            runs = [("boot", ())]
            if ctx.a.profile and layer in ("none", "zstd-seekable"):  # gzip, zstd: read as streams here
                if not suffix:
                    profile.unlink(missing_ok=True)
                    runs = [("boot", ("--record-profile", str(profile)))]
                runs.append(("boot (profile)", ("--prefetch-profile", str(profile))))
            for scenario, extra in runs:
                if "--prefetch-profile" in extra and not profile.exists():
                    continue
                holder = {}

                def lazy_boot(layer=layer, extra=extra, scenario=scenario):
                    t0 = time.monotonic()
                    holder["m"] = Ocifs(ctx, layer, extra=extra).__enter__()
                    log = cons / f"ocifs-{layer}{'-profile' if 'profile' in scenario else ''}{tag}.log"
                    return boot.run_qemu(f"file={holder['m'].file},format=raw,if=virtio,snapshot=on",
                                         to, log, t_start=t0)
                try:
                    ctx.measure("oci-fs", layer, scenario + suffix, lazy_boot,
                                lambda: holder["m"].pids() if "m" in holder else ())
                finally:
                    if "m" in holder:
                        holder.pop("m").__exit__()
    if "none" in ctx.a.layers and not ctx.a.skip_peers and not suffix:  # ~90 s a boot: once
        holder = {}

        def nbd_boot():
            t0 = time.monotonic()
            holder["m"] = NbdQsd(ctx, "none").__enter__()
            return boot.run_qemu(f"file={holder['m'].file},format=raw,if=virtio,snapshot=on",
                                 to, cons / "nbdqsd-none.log", t_start=t0)
        try:
            ctx.measure("nbdkit+qsd", "none", "boot", nbd_boot,
                        lambda: holder["m"].pids() if "m" in holder else ())
        finally:
            if "m" in holder:
                holder.pop("m").__exit__()


# ----------------------------------------------------------------------------- report

def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**20, 1),
            "kernel": platform.release(), "loadavg": open("/proc/loadavg").read().split()[:3],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write_markdown(ctx: Ctx, m: dict | None = None) -> str:
    m = m or machine()
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; "
             f"{m['date']}; load average at the end {' '.join(m['loadavg'])}.",
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
    lines += ["", *targets(ctx)]
    text = "\n".join(lines) + "\n"
    (ctx.out / "results.md").write_text(text)
    return text


def _get(ctx, subject, layer, scenario, key="seconds"):
    for r in ctx.rows:
        if (r["subject"], r["layer"], r["scenario"]) == (subject, layer, scenario) and "error" not in r:
            return r.get(key)
    return None


def targets(ctx: Ctx) -> list[str]:
    """The issue's targets as ratios of this run (only those whose rows exist)."""
    out = []

    def total(subject, layer, scen, mount_label=""):
        a = _get(ctx, subject, layer, scen)
        mnt = _get(ctx, subject, layer, "mount" + mount_label) if subject != "import" else \
            _get(ctx, "import", layer, "import")
        return None if a is None or mnt is None else a + mnt

    for layer in ("none", "zstd", "zstd-seekable", "gzip", "raw-gzip"):
        imp = total("import", layer if layer != "zstd-seekable" else "zstd", "cold trace")
        lazy = total("oci-fs", layer, "cold trace")
        if imp and lazy:
            goal = 2 if layer in ("gzip", "raw-gzip") else 10
            out.append(f"- boot trace, {layer}: full import {imp:.1f} s / oci-fs {lazy:.2f} s = "
                       f"{imp / lazy:.1f}x (target >= {goal}x)")
        seq_imp = total("import", layer if layer != "zstd-seekable" else "zstd", "cold seq")
        seq_lazy = total("oci-fs", layer, "cold seq")
        if seq_imp and seq_lazy:
            out.append(f"- full sequential read, {layer}: oci-fs {seq_lazy:.1f} s vs import {seq_imp:.1f} s "
                       f"(target: no slower)")
    floors = [r for r in ctx.rows if r["subject"] == "floor" and "error" not in r]
    for layer in ("none", "gzip"):
        imp = total("import", layer, "cold trace")
        mine = [r for r in floors if r["layer"] == layer]
        if imp and mine:
            best = min(mine, key=lambda r: r["seconds"])
            what = (f"fetching only the {best['needed_bytes'] / 2**20:.1f} MiB the trace needs, "
                    f"{best['in_flight']} ranges at once," if layer == "none" else
                    f"the whole layer (a first mount streams it to the trace's last read, "
                    f"{100 * best['trace_reaches']:.1f}% into the tar),")
            out.append(f"- floor, {layer}: {what} takes {best['seconds']:.2f} s on this link: no lazy mount "
                       f"can beat the import by more than {imp / best['seconds']:.1f}x here")
    for layer in ("gzip", "raw-gzip"):
        gi = total("oci-fs", layer, "cold trace (index)", " (index)")
        gimp = total("import", layer, "cold trace")
        if gi and gimp:
            out.append(f"- boot trace, {layer} with index: {gimp / gi:.1f}x (target >= 10x)")
    for layer, label in (("none", " (profile)"), ("zstd-seekable", " (profile)"), ("gzip", " (index, profile)"),
                         ("raw-gzip", " (index, profile)")):
        imp = total("import", layer if layer != "zstd-seekable" else "zstd", "cold trace")
        lazy = total("oci-fs", layer, "cold trace" + label, label)
        if imp and lazy:
            out.append(f"- boot trace{label}, {layer}: full import {imp:.1f} s / oci-fs {lazy:.2f} s = "
                       f"{imp / lazy:.1f}x (target >= 10x)")
    def boot_median(subject, layer, scen):
        v = sorted(r["boot_seconds"] for r in ctx.rows if (r["subject"], r["layer"]) == (subject, layer)
                   and r["scenario"].split(" #")[0] == scen and "error" not in r and "boot_seconds" in r)
        return (v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2, len(v)) if v \
            else (None, 0)
    local, n = boot_median("local", "raw", "boot")
    for layer in ctx.a.boot_layers:
        (imp, _), (lazy, _), (prof, _) = (boot_median(s, layer, scen) for s, scen in
                                          (("import", "boot"), ("oci-fs", "boot"), ("oci-fs", "boot (profile)")))
        if imp and lazy:
            line = (f"- VM boot to multi-user, {layer} (median of {n}): "
                    + (f"local file {local:.1f} s, " if local else "")
                    + f"import + boot {imp:.1f} s, oci-fs {lazy:.1f} s")
            if prof:
                line += f", oci-fs with the first boot's profile {prof:.1f} s"
            out.append(line)
    for scen in ("warm trace", "warm seq"):
        loc = _get(ctx, "local", "raw", scen)
        for layer in ctx.a.layers:
            v = _get(ctx, "oci-fs", layer, scen)
            if loc and v:
                cached = [_get(ctx, s, l, scen, "resident_mib_before") for s, l in (("oci-fs", layer), ("local", "raw"))]
                note = (f" (page cache before: {cached[0]:.0f} vs {cached[1]:.0f} MiB of "
                        f"{ctx.disk_mib:.0f})" if None not in cached else "")
                out.append(f"- {scen}, {layer}: {v / loc:.2f}x the local raw file (target <= 2x){note}")
    loc = _get(ctx, "local", "raw", "cold trace")
    for layer in ctx.a.layers:
        v = _get(ctx, "oci-fs", layer, "remount trace")
        if loc and v:
            out.append(f"- trace after a remount on the same node, {layer}: {v:.2f} s, "
                       f"{v / loc:.2f}x the local raw file's cold trace")
    for layer in ctx.a.layers:
        rss = [r.get("rss_mib") or 0 for r in ctx.rows if r["subject"] == "oci-fs" and r["layer"] == layer]
        if rss and max(rss) > 0:
            out.append(f"- peak RSS of oci-fs, {layer}: {max(rss):.1f} MiB (target <= 64)")
    peer = total("nbdkit+qsd", "none", "cold trace")
    lazy = total("oci-fs", "none", "cold trace")
    if peer and lazy:
        out.append(f"- boot trace vs nbdkit+qsd (uncompressed): {peer / lazy:.1f}x (target > 1x)")
    return ["Targets:", *out] if out else []


def replot(out: Path) -> int:
    """Redraws results.md and the plot of an earlier run from its results.json and proxy.log."""
    res = json.loads((out / "results.json").read_text())
    a = argparse.Namespace(**res["args"])
    a.out = out
    ctx = Ctx.__new__(Ctx)
    ctx.a, ctx.out, ctx.trace, ctx.rows = a, out, Path(res["trace"]), res["rows"]
    ctx.proxy = argparse.Namespace(log_path=out / "proxy.log")
    print(write_markdown(ctx, res.get("machine")))
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


def main() -> int:
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
    ap.add_argument("--only", default="", help="comma list of parts: local,import,floor,nbdqsd,ocifs,boot")
    ap.add_argument("--peer-timeout", type=float, default=900, help="seconds for one peer scenario")
    ap.add_argument("--boot-timeout", type=float, default=900)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--replot", type=Path, metavar="DIR", help="redraw results.md and the plot of DIR")
    a = ap.parse_args()
    if a.replot:
        return replot(a.replot)
    a.random_reads = a.random_reads or (100 if a.quick else 1000)
    a.layers = [x for x in a.layers.split(",") if x]
    a.boot_layers = [x for x in a.boot_layers.split(",") if x]
    a.ocifs_args = a.ocifs_args.split()
    a.nbdqsd_scenarios = [x for x in a.nbdqsd_scenarios.split(",") if x]
    parts = set(a.only.split(",")) if a.only else {"local", "import", "floor", "nbdqsd", "ocifs", "boot"}
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
    ocifs = ocifs_available() if "ocifs" in parts or "boot" in parts else None
    if not ocifs:
        b.log("oci-fs mount not available: oci-fs scenarios skipped")
        parts.discard("ocifs")
    layout = data / "oci"
    b.write_oci_layout(layout, {c: data / b.LAYER_FILE[c] for c in a.layers})
    ctx = Ctx(a, data, a.out, trace)
    try:
        with b.Registry(data / "registry") as reg:
            b.push_layout(layout, reg, REPO, a.layers)
            with b.Proxy(reg.host, a.mbit, a.rtt_ms, a.out / "proxy.log") as px:
                ctx.proxy = px
                if "local" in parts:
                    run_local(ctx)
                if "import" in parts:
                    for layer in a.layers:
                        if layer != "zstd-seekable":  # the same import as zstd
                            run_full_import(ctx, layer)
                if "floor" in parts:
                    run_floor(ctx)
                if "nbdqsd" in parts and "none" in a.layers:
                    run_nbdqsd(ctx)
                if "ocifs" in parts:
                    for layer in a.layers:
                        run_ocifs(ctx, layer)
                if "boot" in parts:
                    run_boots(ctx, bool(ocifs))
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
