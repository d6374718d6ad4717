"""The benchmark's --quick form, so the harness cannot rot (bench/run.sh --quick).

Register with ocifs_add_py_test (needs root for FUSE exports). Skips (exit 77 from run.sh)
when the bench's packages are missing: bench/install-deps.sh installs them.
"""
import json
import subprocess
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent


def test_quick_benchmark_runs_every_available_scenario(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([str(BENCH / "run.sh"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 77:
        pytest.skip(proc.stderr.strip()[-300:])
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
    assert (out / "results.md").read_text().count("|") > 20
    assert (out / "bytes-vs-time.png").stat().st_size > 1000
