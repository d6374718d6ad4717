"""A TCG boot from an oci-fs mount whose cache already holds the whole disk, against a boot of
the local raw file, alternating, so the cost of the FUSE + qcow2 path is seen apart from fetching:

    python3 bench/boot_warm.py [LAYER] [--rounds N] [MOUNT OPTIONS...]

LAYER: a layer of bench/work/full (default gzip; bench/run.sh must have built it). Uses the
bench's registry directory directly (no throttling: the cache is filled first), the bench's qemu
command line (boot.py) and prints one line per boot. Needs root (FUSE).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402
import boot  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layer", nargs="?", default="gzip")
    ap.add_argument("--rounds", type=int, default=2)
    a, extra = ap.parse_known_args()
    data = b.WORK / "full"
    scratch = Path(tempfile.mkdtemp(prefix="boot-warm-"))
    try:
        with b.Registry(data / "registry") as reg:
            ref = f"{reg.host}/bench/disk:{a.layer}"
            cache = scratch / "cache"
            cache.mkdir()
            opts = ("--tls-verify=false", "--accel=off", *extra)
            with b.processes.Mount(ref, scratch / "m", *opts, cache_dir=cache, timeout=120):
                t = time.monotonic()
                subprocess.run(["dd", f"if={scratch}/m/disk.img", "of=/dev/null", "bs=4M"], check=True,
                               capture_output=True)
                print(f"filled the cache: {time.monotonic() - t:.1f} s", flush=True)
            for rnd in range(a.rounds):
                b.drop_file_cache(data / "disk.raw")
                r = boot.run_qemu(f"file={data}/disk.raw,format=raw,if=virtio,snapshot=on", 900,
                                  scratch / f"local{rnd}.log")
                print(f"round {rnd + 1}: local file {r['boot_seconds']:.1f} s", flush=True)
                t0 = time.monotonic()
                with b.processes.Mount(ref, scratch / "m", *opts, cache_dir=cache, timeout=120):
                    r = boot.run_qemu(f"file={scratch}/m/disk.img,format=raw,if=virtio,snapshot=on", 900,
                                      scratch / f"warm{rnd}.log", t_start=t0)
                print(f"round {rnd + 1}: oci-fs warm {r['boot_seconds']:.1f} s (mount included)", flush=True)
    finally:
        b.processes.cleanup_all()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
