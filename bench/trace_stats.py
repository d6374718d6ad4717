#!/usr/bin/python3
"""What a read trace needs from a qcow2 image: the guest bytes it reads, the qcow2 clusters
behind them and their compressed bytes (the floor for "bytes fetched for the boot trace").

    trace_stats.py TRACE.csv DISK.qcow2      -> one JSON line

Counts each guest cluster once; compressed sizes come from the L2 entries (sector counts,
so an upper bound by < 512 bytes a cluster); the L1 and the L2 tables touched are added.
needed_ranges() gives the same bytes as (offset, length) ranges of the qcow2 file, merged
where they touch: what a reader that knew the trace in advance would fetch (run.py's floor).
"""
import json
import struct
import sys


def read_trace(trace: str) -> list[tuple[int, int]]:
    reads = []
    for line in open(trace):
        if line[:1].isdigit():
            off, n = line.split(",")[:2]
            reads.append((int(off), int(n)))
    return reads


def analyse(trace: str, qcow: str) -> tuple[dict, list[tuple[int, int]]]:
    """(the JSON summary, the qcow2 file ranges the trace needs, sorted and merged)."""
    reads = read_trace(trace)
    ranges = []
    with open(qcow, "rb") as f:
        hdr = f.read(72)
        magic, version = struct.unpack(">II", hdr[:8])
        assert magic == 0x514649FB, "not a qcow2"
        cluster_bits, = struct.unpack(">I", hdr[20:24])
        size, = struct.unpack(">Q", hdr[24:32])
        l1_size, = struct.unpack(">I", hdr[36:40])
        l1_off, = struct.unpack(">Q", hdr[40:48])
        cs = 1 << cluster_bits
        ranges += [(0, len(hdr)), (l1_off, 8 * l1_size)]
        f.seek(l1_off)
        l1 = struct.unpack(f">{l1_size}Q", f.read(8 * l1_size))
        l2_entries = cs // 8
        clusters = set()
        for off, n in reads:
            for c in range(off // cs, (off + n - 1) // cs + 1):
                clusters.add(c)
        l2_cache = {}
        comp_bytes = plain_bytes = zero = 0
        ncomp = 0
        x = 62 - (cluster_bits - 8)
        for c in sorted(clusters):
            l1i, l2i = divmod(c, l2_entries)
            l2_off = l1[l1i] & 0x00FFFFFFFFFFFE00 if l1i < len(l1) else 0
            if not l2_off:
                zero += 1
                continue
            if l2_off not in l2_cache:
                f.seek(l2_off)
                l2_cache[l2_off] = struct.unpack(f">{l2_entries}Q", f.read(cs))
                ranges.append((l2_off, cs))
            e = l2_cache[l2_off][l2i]
            if e & (1 << 62):
                host = e & ((1 << x) - 1)
                nsec = ((e >> x) & ((1 << (cluster_bits - 8)) - 1)) + 1
                n = nsec * 512 - (host & 511)
                comp_bytes += n
                ncomp += 1
                ranges.append((host, n))
            elif e & 0x00FFFFFFFFFFFE00:
                plain_bytes += cs
                ranges.append((e & 0x00FFFFFFFFFFFE00, cs))
            else:
                zero += 1
    summary = {
        "reads": len(reads), "read_bytes": sum(n for _, n in reads),
        "cluster_size": cs, "clusters": len(clusters), "compressed_clusters": ncomp,
        "unallocated_or_zero_clusters": zero,
        "compressed_bytes_needed": comp_bytes + plain_bytes + 8 * l1_size + cs * len(l2_cache),
        "disk_size": size}
    return summary, merge(ranges)


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for off, n in sorted(ranges):
        if out and off <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], off + n - out[-1][0])
        else:
            out.append([off, n])
    return [(o, n) for o, n in out]


def needed_ranges(trace: str, qcow: str) -> list[tuple[int, int]]:
    return analyse(trace, qcow)[1]


def main() -> int:
    print(json.dumps(analyse(sys.argv[1], sys.argv[2])[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
