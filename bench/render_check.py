#!/usr/bin/python3
"""Renders the report (results.md: the table and the targets) of earlier runs with this
bench/run.py and with another version of it, and prints the differences: a change to the
harness that is not meant to change the report must print none.

    bench/render_check.py OTHER_RUN_PY [RESULTS_DIR...]

OTHER_RUN_PY is a run.py next to its own benchlib.py (e.g. `git show HEAD~1:bench/run.py`
with the other bench/ files in a copy of the tree); RESULTS_DIR defaults to every
bench/results/*/ with a results.json. Nothing is written there. Exit status 1 on a difference.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def render(run_py: Path, results: Path) -> str:
    """write_markdown of run_py (imported as a module) on the rows of results/results.json."""
    spec = importlib.util.spec_from_file_location("run_under_check", run_py)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    res = json.loads((results / "results.json").read_text())
    with tempfile.TemporaryDirectory() as out:
        ctx = mod.Ctx.__new__(mod.Ctx)
        ctx.a = argparse.Namespace(**res["args"])
        ctx.out, ctx.trace, ctx.rows = Path(out), Path(res["trace"]), res["rows"]
        seq = [r["read_bytes"] for r in ctx.rows if r["scenario"].startswith("cold seq") and "read_bytes" in r]
        ctx.disk_mib = max(seq) / 2**20 if seq else float("nan")  # not recorded: a full read's size
        return mod.write_markdown(ctx, res["machine"])


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--render":  # in a process of its own: one benchlib each
        sys.stdout.write(render(Path(sys.argv[2]), Path(sys.argv[3])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", type=Path)
    ap.add_argument("results", type=Path, nargs="*")
    a = ap.parse_args()
    dirs = a.results or sorted(p.parent for p in (HERE / "results").glob("*/results.json"))
    status = 0
    for d in dirs:
        texts = []
        for run_py in (a.other.resolve(), HERE / "run.py"):
            p = subprocess.run([sys.executable, __file__, "--render", str(run_py), str(d)],
                               capture_output=True, text=True)
            texts.append(p.stdout if p.returncode == 0 else f"FAILED: {p.stderr.strip().splitlines()[-1]}\n")
        diff = list(difflib.unified_diff(texts[0].splitlines(), texts[1].splitlines(),
                                         str(a.other), "bench/run.py", lineterm="", n=0))
        print(f"{d}: {'same' if not diff else 'DIFFERENT'} ({len(texts[1].splitlines())} lines)"
              + (" [" + texts[0].strip() + "]" if texts[0].startswith("FAILED") else ""))
        for line in diff:
            print("   ", line)
        status |= bool(diff)
    return status


if __name__ == "__main__":
    sys.exit(main())
