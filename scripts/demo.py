#!/usr/bin/python3
"""The main job on its embedded default: a local registry, a sample VM disk
that this script makes itself, and oci-fs serving it lazily.

    scripts/demo.py [--oci-fs PATH]

Steps, each printed with the command it runs:
 1. make a small ext4 filesystem holding /hello.txt (mkfs.ext4 -d), convert it to
    a compressed qcow2 as cloud images are (qemu-img convert -c);
 2. pack it as a KubeVirt containerDisk (one gzip layer, disk/disk.img) and push it
    to a real docker-registry started on a free 127.0.0.1 port;
 3. oci-fs inspect, oci-fs ls;
 4. oci-fs mount: DIR/disk.img is the raw disk; qemu-img info reads it and
    debugfs reads /hello.txt out of the ext4 filesystem inside it;
 5. unmount and stop the registry.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.images import containerdisk, push  # noqa: E402
from support.registry import Registry  # noqa: E402

HELLO = "Hello from a VM disk served lazily by oci-fs!\n"


def run(*cmd, capture=False):
    print("$ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    r = subprocess.run([str(c) for c in cmd], text=True, capture_output=capture)
    if r.returncode != 0:
        if capture:
            sys.stderr.write(r.stdout + r.stderr)
        sys.exit(f"demo: {cmd[0]} failed with exit status {r.returncode}")
    return r.stdout if capture else ""


def make_sample_disk(work: Path) -> Path:
    tree = work / "rootfs"
    (tree / "etc").mkdir(parents=True)
    (tree / "hello.txt").write_text(HELLO)
    (tree / "etc" / "os-release").write_text('NAME="oci-fs sample"\n')
    raw = work / "sample.raw"
    run("truncate", "-s", "64M", raw)
    run("mkfs.ext4", "-q", "-F", "-L", "ocifs-sample", "-d", tree, raw)
    qcow2 = work / "sample.qcow2"
    run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, qcow2)
    return qcow2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oci-fs", default=str(ROOT / "build" / "src" / "cli" / "oci-fs"))
    args = ap.parse_args()
    ocifs = args.oci_fs
    work = Path(tempfile.mkdtemp(prefix="oci-fs-demo-"))
    print(f"# working in {work}")
    qcow2 = make_sample_disk(work)

    reg = Registry(work / "registry")
    reg.start()
    try:
        ref = reg.ref("demo/sample-disk", "v1")
        print(f"# pushing a containerDisk (gzip layer, disk/disk.img = {qcow2.stat().st_size} byte qcow2) to {ref}")
        push(reg, "demo/sample-disk", "v1", containerdisk(qcow2.read_bytes(), "gzip"))
        common = ["--tls-verify=false"]
        print(run(ocifs, "inspect", *common, ref, capture=True))
        print(run(ocifs, "ls", *common, ref, capture=True))
        mnt = work / "mnt"
        mnt.mkdir()
        cache = work / "cache"
        run(ocifs, "mount", *common, "--cache-dir", cache, "--stats-file", work / "stats.json", ref, mnt)
        try:
            run("ls", "-l", mnt)
            print(run("qemu-img", "info", mnt / "disk.img", capture=True))
            out = run("debugfs", "-R", "cat /hello.txt", mnt / "disk.img", capture=True)
            print(out)
            if out != HELLO:
                sys.exit("demo: /hello.txt read through the mount is wrong")
            print("# the file inside the VM disk reads back exactly; only the ranges read were fetched.")
        finally:
            run("umount", mnt)
        stats = work / "stats.json"
        for _ in range(100):  # the daemon writes its counters as it exits
            if stats.exists():
                break
            time.sleep(0.1)
        print("# fetch counters of that mount: " + (stats.read_text().strip() if stats.exists() else "(none)"))
    finally:
        reg.stop()
    print("demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
