"""Rig (seventeenth session): the gzip "cold trace (index)" row alone, several binaries taking turns.
Run from bench/ under flock /tmp/oci-fs-bench.lock. env BINS="name=path ..." RUNS=n HT=name (heaptrack
foreground --no-keeper for that binary instead), EXTRA_<name>="mount options" added for that binary.
Per binary: one fresh cold trace (--record-profile: the first pass builds the node's index), then per
run the (index) session: only the index kept, --record-profile, the bench's replay, PeakRss (keeper + server)."""
import sys, time, json, shutil, os, subprocess
from pathlib import Path
sys.path.insert(0, os.environ.get("BENCH", str(Path(__file__).resolve().parents[2])))  # bench/
import run as R, benchlib as b
OUT = os.environ.get("RIG_OUT", "/tmp/s17pss/rig")
bins = dict(x.split("=", 1) for x in os.environ["BINS"].split())
runs = int(os.environ.get("RUNS", "2"))
a = R.finish_args(R.parser().parse_args(["--layers", "gzip", "--out", OUT + "/out", "--scratch", OUT + "/scratch", "--skip-boot"]))
data = b.WORK / "full"
a.out.mkdir(parents=True, exist_ok=True)
ctx = R.Ctx(a, data, a.out, b.BENCH / "boot-trace.csv", True)

def smaps(pid):
    roll = {l.split()[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/smaps_rollup") if l.split()[0].endswith(":") and len(l.split()) >= 2 and l.split()[1].isdigit()}
    return {k: roll.get(k, 0) for k in ("Pss:", "Pss_Anon:", "Pss_File:", "Anonymous:")}

def one(name, binpath, cache, label, extra):
    os.environ["OCIFS_BIN"] = binpath
    for k in [k for k in os.environ if k.startswith("MALLOC_")]: del os.environ[k]
    os.environ.update(dict(x.split("=", 1) for x in os.environ.get(f"ENV_{name}", "").split()))
    ht = name in os.environ.get("HT", "").split() and label != "prep"
    if ht:
        class D: pass
        d = D(); mnt = ctx.scratch / "mnt-ht"
        d.m = b.processes.Mount(ctx.ref("gzip"), mnt, "--tls-verify=false", "--no-keeper", *extra, cache_dir=cache, stats=True, timeout=300, foreground=True)
        d.m.__enter__(); d.file = mnt / "disk.img"; d.pids = lambda: []; d.close = lambda: d.m.__exit__(None, None, None)
        open(d.file, "rb").read(4096)
    else:
        d = R.Ocifs(ctx, "gzip", cache, extra)
    ctx.proxy.reset()
    time.sleep(float(os.environ.get("SETTLE", "0")))
    at_mount = {q: smaps(q)["Anonymous:"] for p in d.pids() for q in [p] + b.descendants(p)}
    with b.PeakRss(d.pids) as rss:
        r = R.replay(d.file, *R.replay_args(ctx, "trace"))
        detail = {q: smaps(q) for p in d.pids() for q in [p] + b.descendants(p)}
    st = ctx.proxy.stats()
    d.close()
    print(f"{name} {label}: {r['seconds']:.2f} s fetched {st.get('bytes',0)/2**20:.1f} MiB req {st.get('requests')} "
          f"anon at mount {at_mount} peak pss {rss.peak_kib/1024:.1f} MiB hwm {rss.peak_hwm_kib/1024:.1f} end {detail} load {os.getloadavg()[0]:.1f}", flush=True)

try:
    with b.Registry(data / "registry") as reg:
        b.push_layout(data / "oci", reg, R.REPO, ["gzip"])
        with b.Proxy(reg.host, a.mbit, a.rtt_ms, a.out / "proxy.log") as px:
            ctx.proxy = px
            caches = {}
            for name, path in bins.items():
                cache = ctx.scratch / f"cache-{name}"; shutil.rmtree(cache, ignore_errors=True); cache.mkdir(parents=True)
                one(name, path, cache, "prep", ("--accel=off", "--record-profile", str(ctx.scratch / f"{name}.prof")))
                caches[name] = cache
            for i in range(runs):
                for name, path in bins.items():
                    R.keep_only_gzip_index(caches[name])
                    extra = ("--accel=off", "--record-profile", str(ctx.scratch / f"{name}.prof")) + tuple(os.environ.get(f"EXTRA_{name}", "").split())
                    one(name, path, caches[name], f"index{i}", extra)
finally:
    b.processes.cleanup_all()
