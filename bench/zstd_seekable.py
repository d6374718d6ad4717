#!/usr/bin/python3
"""Compresses a file into zstd's seekable format: independent frames of FRAME bytes of input
(default 4 MiB), then a skippable frame holding the seek table (contrib/seekable_format in the
zstd sources). Any zstd decoder reads the result as the plain stream (skippable frames are
ignored); a seekable reader can start at any frame.  Uses the zstd CLI for each frame.

usage: zstd_seekable.py IN OUT [--frame BYTES] [--level N]
"""
import argparse
import struct
import subprocess
import sys

SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--frame", type=int, default=4 << 20)
    ap.add_argument("--level", type=int, default=3)
    a = ap.parse_args()
    entries = []
    with open(a.src, "rb") as fin, open(a.dst, "wb") as fout:
        while True:
            chunk = fin.read(a.frame)
            if not chunk:
                break
            comp = subprocess.run(
                ["zstd", "-q", f"-{a.level}", "-c", f"--stream-size={len(chunk)}"],
                input=chunk, stdout=subprocess.PIPE, check=True).stdout
            fout.write(comp)
            entries.append((len(comp), len(chunk)))
        table = b"".join(struct.pack("<II", c, d) for c, d in entries)
        table += struct.pack("<IBI", len(entries), 0, SEEKABLE_MAGIC)
        fout.write(struct.pack("<II", SKIPPABLE_MAGIC, len(table)) + table)
    print(f"{len(entries)} frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
