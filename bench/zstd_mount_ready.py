#!/usr/bin/env python3
"""Mount readiness of a single-frame zstd layer with its acceleration artifact
(issue 14, the zstd checkpoint index read lazily): the time from starting
`oci-fs mount` to the first 4 KiB of disk.img read, on a fresh cache.

A raw disk of `--size` bytes (ext4 made with `mkfs.ext4 -d` from the given
directories, the rest zeros) is pushed as a containerDisk whose layer is one
zstd frame (`zstd -LEVEL`) to a local docker-registry; `oci-fs accelerate`
(each binary given) pushes its artifact; then each configuration is mounted
`--runs` times, each with a new cache directory, pinned to its artifact:

    python3 bench/zstd_mount_ready.py --work /tmp/zr --bin new=build/src/cli/oci-fs \
        [--bin main=/work/main/build/src/cli/oci-fs] [--v1-from new] [--level 3] [--runs 3]

`--v1-from NAME` also pushes NAME's index rewritten in the version 1 layout
(what oci-fs pushed before version 2) and mounts it with NAME's binary.
Prints one line per run (seconds to the first 4 KiB, then to the last 4 KiB
read after it) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import images, processes  # noqa: E402
from support.registry import Registry  # noqa: E402

TLS = "--tls-verify=false"
V2 = "application/vnd.oci-fs.zstd-checkpoints.v2"
V1 = "application/vnd.oci-fs.zstd-checkpoints.v1"


def make_disk(path: Path, size: int, dirs: list[str]) -> bytes:
    stage = path.parent / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    for d in dirs:
        subprocess.run(["cp", "-a", d, str(stage / Path(d).name)], check=True)
    path.unlink(missing_ok=True)
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(stage), str(path)], check=True)
    shutil.rmtree(stage)
    return path.read_bytes()


def as_version_1(index: bytes) -> bytes:
    """A version 2 checkpoint index in the version 1 layout (docs/zstd-checkpoint-format.md)."""
    count, table = struct.unpack_from("<QQ", index, 48)
    header = bytearray(index[:56])
    struct.pack_into("<I", header, 8, 1)
    out = [bytes(header)]
    for i in range(count):
        at = 64 + 40 * i
        in_, o, kind = struct.unpack_from("<QQB", index, at)
        dict_size, zoff, zlen, _ = struct.unpack_from("<IQII", index, at + 20)
        out += [struct.pack("<QQB3xII", in_, o, kind, dict_size, zlen), index[zoff:zoff + zlen]]
    out.append(index[64 + 40 * count:table - 4])
    body = b"".join(out)
    return body + struct.pack("<I", zlib.crc32(body))


def accelerate(binary: str, ref: str) -> str:
    os.environ["OCIFS_BIN"] = binary
    out = processes.run_ocifs("accelerate", TLS, ref, timeout=3600).stdout.decode().strip()
    return out.splitlines()[-1]


def repush_as_v1(registry, repo: str, artifact: str) -> str:
    client = registry.client()
    manifest = json.loads(client.get_manifest(repo, artifact.split("@", 1)[1]).body)
    piece = next(p for p in manifest["layers"] if p["mediaType"] == V2)
    v1 = as_version_1(client.get_blob(repo, piece["digest"]).body)
    piece.update(digest=client.put_blob(repo, v1), size=len(v1), mediaType=V1)
    body = json.dumps(manifest).encode()
    digest = client.put_manifest(repo, images.sha256(body), body, manifest["mediaType"])
    return artifact.split("@", 1)[0] + "@" + digest


def time_mount(binary: str, ref: str, artifact: str | None, mnt: Path, cache: Path,
               disk: tuple[bytes, bytes]) -> tuple[float, float]:
    """Seconds from the start of `oci-fs mount` to its first 4 KiB of disk.img read,
    then to the last 4 KiB read after it (each compared with the disk's)."""
    os.environ["OCIFS_BIN"] = binary
    shutil.rmtree(cache, ignore_errors=True)
    accel = f"--accel={artifact}" if artifact else "--accel=off"
    start = time.monotonic()
    with processes.Mount(ref, mnt, TLS, accel, cache_dir=cache, timeout=600):
        with open(mnt / "disk.img", "rb") as f:
            assert f.read(4096) == disk[0]
            first = time.monotonic() - start
            f.seek(-4096, os.SEEK_END)
            assert f.read(4096) == disk[1]
            last = time.monotonic() - start
    return first, last


def piece_size(registry, repo: str, artifact: str) -> int:
    manifest = json.loads(registry.client().get_manifest(repo, artifact.split("@", 1)[1]).body)
    return sum(p["size"] for p in manifest["layers"] if p["mediaType"] in (V1, V2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--bin", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--v1-from", default=None)
    ap.add_argument("--size", type=int, default=1 << 30)
    ap.add_argument("--dirs", default="/usr/lib/python3,/usr/include")
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    bins = dict(b.split("=", 1) for b in a.bin)
    a.work.mkdir(parents=True, exist_ok=True)
    disk = make_disk(a.work / "disk.img", a.size, a.dirs.split(","))
    try:
        with Registry(a.work / "registry") as registry:
            ref, img = images.push_containerdisk(registry, "bench/zstd", disk, "zstd", level=a.level)
            ends = (disk[:4096], disk[-4096:])
            del disk
            print(f"layer {img.layers[0].size} bytes (zstd -{a.level}, one frame)", flush=True)
            configs = [("off", next(iter(bins.values())), None)]
            for name, binary in bins.items():
                t = time.monotonic()
                art = accelerate(binary, ref)
                print(f"accelerate {name}: {time.monotonic() - t:.1f} s, {art}, index {piece_size(registry, 'bench/zstd', art)} bytes", flush=True)
                configs.append((name, binary, art))
                if name == a.v1_from:
                    v1 = repush_as_v1(registry, "bench/zstd", art)
                    print(f"{name}+v1: {v1}, index {piece_size(registry, 'bench/zstd', v1)} bytes", flush=True)
                    configs.append((name + "+v1", binary, v1))
            for name, binary, art in configs:
                for run in range(a.runs):
                    first, last = time_mount(binary, ref, art, a.work / "mnt", a.work / f"cache-{name}", ends)
                    load = os.getloadavg()[0]
                    print(f"{name} run {run + 1}: {first:.2f} s to the first 4 KiB, {last:.2f} s to the last"
                          f" (load {load:.2f})", flush=True)
    finally:
        processes.cleanup_all()


if __name__ == "__main__":
    main()
