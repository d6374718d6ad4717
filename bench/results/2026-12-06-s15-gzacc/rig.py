"""Quick rig (fifteenth session, docs/benchmarks.md): run under flock /tmp/oci-fs-bench.lock with
OCIFS_BIN set; env RUNS (artifact runs), ACCEL=1 (record a profile with --accel=off, then
`oci-fs accelerate` it: the artifact every run then uses), NONE=1 (an uncompressed run too),
EXTRA (more mount options), HT=1 (a foreground mount: with OCIFS_BIN a wrapper that runs
`heaptrack oci-fs ... --no-keeper` for the artifact runs). Each read's latency goes to $RIG_OUT/<label>.lat.json.
Quick rig: registry + throttled proxy; cold trace with --record-profile, accelerate, then
N runs of the artifact cold trace (each a fresh cache). Prints time, fetched, requests, PSS."""
import sys, time, json, shutil, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/
OUT = os.environ.get("RIG_OUT", "/tmp/s15g")
import run as R, benchlib as b
from pathlib import Path
runs = int(os.environ.get("RUNS", "2"))
extra = tuple(os.environ.get("EXTRA", "").split())
a = R.finish_args(R.parser().parse_args(["--layers", "none,gzip", "--out", OUT + "/rig-out",
                                         "--scratch", OUT + "/rig-scratch", "--skip-boot"]))
data = b.WORK / "full"
a.out.mkdir(parents=True, exist_ok=True)
layout = data / "oci"
ctx = R.Ctx(a, data, a.out, b.BENCH / "boot-trace.csv", True)
def pyreplay(path, label):
    import csv
    rows = [(int(x["offset"]), int(x["length"])) for x in csv.DictReader(open(b.BENCH / "boot-trace.csv"))]
    fd = os.open(path, os.O_RDONLY)
    lat = []
    t0 = time.monotonic()
    for off, n in rows:
        t = time.monotonic()
        got = 0
        while got < n:
            k = len(os.pread(fd, n - got, off + got))
            if k == 0: break
            got += k
        lat.append((time.monotonic() - t, off, n))
    total = time.monotonic() - t0
    os.close(fd)
    json.dump(lat, open(f"{OUT}/{label}.lat.json", "w"))
    return {"seconds": total}
def one(layer, label, extra_args):
    if os.environ.get("HT"):
        class D: pass
        d = D(); cache = ctx.scratch / "cache-ht"; shutil.rmtree(cache, ignore_errors=True); cache.mkdir(parents=True)
        mnt = ctx.scratch / "mnt-ht"
        d.m = b.processes.Mount(ctx.ref(layer), mnt, "--tls-verify=false", *extra_args, "--log-level", "info",
                                "--log-file", f"{OUT}/{label}.log", cache_dir=cache, stats=True, timeout=300, foreground=True)
        d.m.__enter__(); d.file = mnt / "disk.img"; d.pids = lambda: []; d.close = lambda: d.m.__exit__(None, None, None)
    else:
        d = R.Ocifs(ctx, layer, None, extra_args + ("--log-level", "info", "--log-file", f"{OUT}/{label}.log"))
    ctx.proxy.reset()
    with b.PeakRss(d.pids) as rss:
        t0 = time.monotonic()
        r = pyreplay(d.file, label)
    st = ctx.proxy.stats()
    for pid in d.pids():
            for q in [pid] + b.descendants(pid):
                a0 = [l for l in open(f"/proc/{q}/smaps_rollup") if l.startswith("Anonymous")]
                out = subprocess.run(["gdb","-p",str(q),"-batch","-ex","p (int)malloc_trim(0)"],capture_output=True,text=True).stdout.strip().splitlines()[-1:]
                a1 = [l for l in open(f"/proc/{q}/smaps_rollup") if l.startswith("Anonymous")]
                print("TRIM", q, a0, out, a1)
    for pid in d.pids():
        for q in [pid] + b.descendants(pid):
            roll = open(f"/proc/{q}/smaps_rollup").read().splitlines()
            maps=[]; cur=None
            for line in open(f"/proc/{q}/smaps"):
                f=line.split()
                if "-" in f[0] and not f[0].endswith(":"): cur=[line.strip()[:90],0]; maps.append(cur)
                elif f[0]=="Anonymous:": cur[1]=int(f[1])
            maps.sort(key=lambda m:-m[1]); th=[l for l in open(f"/proc/{q}/status") if l.startswith("Threads")]
            print("ANON", q, th, sum(m[1] for m in maps), [(m[1], m[0][:40]) for m in maps[:12]])
            print(q, " ".join(l.split()[0]+l.split()[1] for l in roll if l.split()[0] in ("Rss:","Pss:","Pss_Anon:","Pss_File:","Pss_Shmem:")))
    d.close()
    print(f"{label}: {r['seconds']:.2f} s fetched {st.get('bytes',0)/2**20:.1f} MiB req {st.get('requests')} pss {rss.peak_kib/1024:.1f} MiB st {st}", flush=True)
try:
    with b.Registry(data / "registry") as reg:
        b.push_layout(layout, reg, R.REPO, ["gzip"])
        with b.Proxy(reg.host, a.mbit, a.rtt_ms, a.out / "proxy.log") as px:
            ctx.proxy = px
            prof = ctx.scratch / "gzip.profile"
            if os.environ.get("ACCEL", "1") == "1":
                one("gzip", "record", ("--accel=off", "--record-profile", str(prof)))
                R.accelerate(ctx, "gzip", prof)
            for i in range(runs):
                one("gzip", f"art{i}", ("--prefetch-profile=none",) + extra)
            if os.environ.get("NONE"):
                b.push_layout(layout, reg, R.REPO, ["none"])
                one("none", "none", ("--accel=off",))
finally:
    b.processes.cleanup_all()
