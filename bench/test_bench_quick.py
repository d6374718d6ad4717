"""The benchmark's --quick form, so the harness cannot rot (bench/run.sh --quick).

Registered in CTest as bench.quick (needs root for FUSE exports); scripts/install-deps.sh
installs what --quick needs, so a missing package (run.sh's exit 77) is a failure.
"""
import json
import subprocess
from pathlib import Path


BENCH = Path(__file__).resolve().parent


def test_quick_benchmark_runs_every_available_scenario(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([str(BENCH / "run.sh"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 77, "bench packages missing: " + proc.stderr.strip()[-300:]
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads((out / "results.json").read_text())
    rows = res["rows"]
    assert not [r for r in rows if "error" in r]
    seen = {(r["subject"], r["scenario"]) for r in rows}
    for want in [("local", "cold trace"), ("local", "warm seq"), ("import", "import"),
                 ("import", "cold trace"), ("nbdkit+qsd", "cold trace")]:
        assert want in seen, want
    imports = [r for r in rows if r["scenario"] == "import"]
    assert all(r["fetched_bytes"] > 10 << 20 for r in imports)  # the whole layer crossed the proxy
    if any(r["subject"] == "oci-fs" for r in rows):
        lazy = [r for r in rows if r["subject"] == "oci-fs" and r["scenario"] == "cold trace"]
        assert lazy and all(r["read_bytes"] > 0 for r in lazy)
        profiled = [r for r in rows if r["subject"] == "oci-fs" and r["scenario"].startswith("cold trace")
                    and r["scenario"].endswith("profile)")]
        assert {r["layer"] for r in profiled} >= {"none", "zstd-seekable", "gzip"}, profiled
        assert all(r["read_bytes"] == lazy[0]["read_bytes"] for r in profiled)  # the same trace, all of it
        # A fresh node with a compressed layer's acceleration artifact reads the whole trace (the
        # quick trace spans most of its small disk: what it saves shows in the full run only).
        artifact = [r for r in rows if r["subject"] == "oci-fs" and r["scenario"] == "cold trace (artifact)"]
        assert {r["layer"] for r in artifact} == {"gzip", "zstd", "zstd-seekable"}, artifact
        assert all(r["read_bytes"] == lazy[0]["read_bytes"] for r in artifact)
        # A remount on the same node reads the whole trace from its cache dir, not the registry.
        # The kernel's read-ahead of disk.img (up to 1 MiB past a read) depends on the page
        # cache's state, so it may touch clusters of one chunk the cold mount's read-ahead did
        # not (seen once in an ASan run: one 1 MiB chunk, 3 misses, of a trace whose cold mount
        # fetched 13 MiB): at most that one chunk, in one request.
        remounts = [r for r in rows if r["subject"] == "oci-fs" and r["scenario"] == "remount trace"]
        assert {r["layer"] for r in remounts} == {r["layer"] for r in lazy}, remounts
        assert all(r["read_bytes"] == lazy[0]["read_bytes"] and r["fetched_bytes"] < (1 << 20) + (16 << 10)
                   and r["blob_requests"] <= 1 for r in remounts), remounts
    assert (out / "results.md").read_text().count("|") > 20
    assert (out / "bytes-vs-time.png").stat().st_size > 1000


def test_throttle_proxy_limits_bandwidth_and_adds_latency(tmp_path):
    import os
    import subprocess
    import sys
    sys.path.insert(0, str(BENCH))
    import benchlib as b

    data = os.urandom(32 << 20)
    with b.Registry(tmp_path / "reg") as reg:
        digest = reg.client().put_blob("t/blob", data)
        with b.Proxy(reg.host, 400, 20, tmp_path / "proxy.log") as px:
            url = f"http://{px.host}/v2/t/blob/blobs/{digest}"

            def curl(*extra):
                out = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                                      *extra, url], capture_output=True, text=True, check=True).stdout
                size, secs = out.split()
                return int(size), float(secs)

            size, secs = curl()
            wire = len(data) * 8 / 400e6
            assert size == len(data)
            assert wire <= secs <= 2 * wire + 1.0, secs       # never faster than the link
            size, secs = curl("-r", "0-4095")
            assert size == 4096 and secs >= 0.040, secs      # handshake RTT + request RTT
            st = px.stats()
            assert st["requests"] == 2 and st["range_requests"] == 1 and st["connections"] == 2
            assert st["bytes_down"] >= len(data) + 4096
