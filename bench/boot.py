#!/usr/bin/python3
"""Boots the benchmark's Debian disk with qemu (TCG) until the guest prints OCIFS-BOOTED.

    boot.py DISK [--trace OUT.csv] [--timeout S] [--console LOG]

DISK is a raw disk file (a local file or a mounted oci-fs disk.img). qemu opens it with
snapshot=on: guest writes go to a temporary overlay, so DISK is only read, as a read-only
mount needs. --trace serves DISK through nbdkit's log filter and writes every read the
guest's disk saw as `offset,length,t` lines (guest disk bytes; t = seconds since qemu
started) to OUT.csv. Prints one JSON line: {"boot_seconds": S, "exit_seconds": S, ...}.
"""
from __future__ import annotations

import argparse
import json
import re
import selectors
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

MARKER = b"OCIFS-BOOTED"


def qemu_argv(drive: str) -> list[str]:
    return ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "1",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-nic", "none", "-drive", drive]


def run_qemu(drive: str, timeout: float, console: Path | None, t_start: float | None = None) -> dict:
    """Runs qemu until the marker (and then until it powers off, 60 s at most)."""
    t0 = time.monotonic()
    t_start = t0 if t_start is None else t_start
    proc = b.processes.spawn(qemu_argv(drive), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = bytearray()
    booted = None
    try:
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not sel.select(timeout=1):
                if proc.poll() is not None:
                    break
                continue
            chunk = proc.stdout.read1(65536)
            if not chunk:
                break
            out += chunk
            if booted is None and MARKER in out:
                booted = time.monotonic()
                deadline = min(deadline, booted + 60)
        exited = time.monotonic() if proc.poll() is not None or proc.wait(5) is not None else None
    except subprocess.TimeoutExpired:
        exited = None
    finally:
        b.processes.stop(proc)
        if console:
            console.write_bytes(bytes(out))
    if booted is None:
        tail = bytes(out[-2000:]).decode(errors="replace")
        raise RuntimeError(f"guest did not print {MARKER.decode()} within {timeout}s; console tail:\n{tail}")
    return {"boot_seconds": round(booted - t_start, 3),
            "qemu_seconds": round(booted - t0, 3),
            "exit_seconds": round(exited - t_start, 3) if exited else None}


_READ = re.compile(r"^(\S+ \S+) .*?\bRead id=\d+ offset=(0x[0-9a-f]+) count=(0x[0-9a-f]+)")


def parse_nbdkit_log(text: str, t_qemu: float) -> list[tuple[int, int, float]]:
    reads = []
    for line in text.splitlines():
        m = _READ.match(line)
        if not m:
            continue
        try:
            ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            ts = t_qemu
        reads.append((int(m.group(2), 16), int(m.group(3), 16), round(ts - t_qemu, 4)))
    return reads


def boot_traced(disk: Path, out_csv: Path, timeout: float, console: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ocifs-bench-nbd-") as tmp:
        sock, logf = Path(tmp) / "nbd.sock", Path(tmp) / "nbd.log"
        nbd = b.processes.spawn(["nbdkit", "--foreground", "--readonly", "-U", str(sock),
                                 "--filter=log", "file", str(disk), f"logfile={logf}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if sock.exists():
                    break
                time.sleep(0.05)
            t_qemu = time.time()
            res = run_qemu(f"file=nbd+unix:///?socket={sock},format=raw,if=virtio,snapshot=on",
                           timeout, console)
        finally:
            b.processes.stop(nbd)
        reads = parse_nbdkit_log(logf.read_text(errors="replace"), t_qemu)
    booted_at = res["qemu_seconds"]
    reads = [r for r in reads if r[2] <= booted_at + 0.5]  # up to the marker
    with open(out_csv, "w") as f:
        f.write("offset,length,t\n")
        for off, n, t in reads:
            f.write(f"{off},{n},{t}\n")
    res.update(trace_reads=len(reads), trace_bytes=sum(n for _, n, _ in reads),
               trace_unique_bytes=unique_bytes(reads))
    return res


def unique_bytes(reads) -> int:
    spans = sorted((o, o + n) for o, n, *_ in reads)
    total, cur_s, cur_e = 0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("disk", type=Path)
    ap.add_argument("--trace", type=Path)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--console", type=Path)
    a = ap.parse_args()
    if a.trace:
        res = boot_traced(a.disk, a.trace, a.timeout, a.console)
    else:
        res = run_qemu(f"file={a.disk},format=raw,if=virtio,snapshot=on", a.timeout, a.console)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
