"""A qcow2 containerDisk mounted with `oci-fs mount` reads exactly like
`qemu-img convert -O raw` of the same file, lazily.

Images are made with qemu-img / qemu-io themselves (compat 0.10 and 1.1, cluster
sizes 4 KiB..2 MiB, zlib and zstd compressed clusters, extended L2 entries,
metadata preallocation, zero clusters, an internal snapshot), put in a
containerDisk, pushed to the session registry and mounted. Malformed images
(bytes patched per the qcow2 spec) must be refused at mount or give EIO at
read without taking the daemon down.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import select
import shutil
import struct
import subprocess
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import images, processes
from support.fuse_checks import (CHUNK, assert_reads_match, assert_same_bytes, kept_pieces, ocifs_pids_for,
                                 read_plan)
from support.processes import Mount, is_mounted

KiB = 1 << 10
MiB = 1 << 20

assert shutil.which("qemu-img") and shutil.which("qemu-io"), \
    "qemu-img / qemu-io (qemu-utils) not installed: run scripts/install-deps.sh"


# --------------------------------------------------------------------------- qemu helpers


def qemu(*args: str, timeout: float = 60) -> str:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"$ {' '.join(map(str, args))}\nexit {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res.stdout


def qemu_io(img: Path, commands: list[str]) -> None:
    if commands:
        qemu("qemu-io", "-f", "qcow2", *sum((["-c", c] for c in commands), []), img)


def qemu_map(path: Path, fmt: str) -> list[dict]:
    return json.loads(qemu("qemu-img", "map", "--output=json", "-f", fmt, path))


def reference_raw(img: Path, out: Path) -> bytes:
    qemu("qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, out)
    return out.read_bytes()


def runs_from_map(entries: list[dict]) -> list[tuple[int, int, bool]]:
    """qemu-img map JSON -> merged [(start, end, is_hole)]: a range is a hole if
    qemu reports it "zero": true or "data": false."""
    runs: list[list] = []
    for e in entries:
        hole = bool(e["zero"]) or not e["data"]
        start, end = e["start"], e["start"] + e["length"]
        if runs and runs[-1][2] == hole and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end, hole])
    return [tuple(r) for r in runs]


def runs_from_lseek(path: Path) -> list[tuple[int, int, bool]]:
    """SEEK_DATA/SEEK_HOLE enumeration of `path` -> [(start, end, is_hole)]."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        runs, pos = [], 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                data = size
            if data > pos:
                runs.append((pos, data, True))
            if data >= size:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            assert hole > data, f"SEEK_HOLE from data offset {data} returned {hole}"
            runs.append((data, hole, False))
            pos = hole
        return runs
    finally:
        os.close(fd)


def describe_runs(runs) -> str:
    return "\n".join(f"  {'hole' if h else 'data'} {s:#x}..{e:#x}" for s, e, h in runs[:40]) + \
        (f"\n  ... {len(runs)} runs" if len(runs) > 40 else "")


def nonsparse_copy(src: Path, dst: Path) -> bytes:
    """The image as a containerDisk layer holds it: every byte written, no host holes.
    (qemu punches holes in fresh clusters; inside a tar there are none, so the
    qemu-img map reference is taken from this copy.)"""
    data = src.read_bytes()
    dst.write_bytes(data)
    return data


# --------------------------------------------------------------------------- source data


_WORDS = [bytes(random.Random(7).choices(b"abcdefghijklmnopqrstuvwxyz", k=n)) for n in range(2, 12)] + \
         [b"kernel", b"root", b"/usr/lib", b"\x00\x00\x00\x01", b"systemd", b"\n", b"ext4", b"0000"]


def source_segments(size: int, seed: int, budget: int,
                    regions: list[tuple[int, int]] | None = None) -> list[tuple[int, bytes]]:
    """Deterministic (offset, bytes) pieces of a disk of `size` bytes: random
    (incompressible) data, compressible text-like data, explicit zero runs and
    small unaligned blips; everything between them is a hole. About `budget`
    bytes in total, spread over `regions` (default: the whole disk)."""
    rng = random.Random(seed)
    regions = regions or [(0, size)]
    segs: list[tuple[int, bytes]] = []
    for start, end in regions:
        segs += _segments(rng, start, min(end, size), budget // len(regions))
    return segs


def _segments(rng: random.Random, start: int, size: int, budget: int) -> list[tuple[int, bytes]]:
    segs: list[tuple[int, bytes]] = []
    pos, used = start + rng.randrange(0, 64 * KiB), 0
    mean_gap = max(4 * KiB, (size - start - budget) // max(1, budget // (160 * KiB)))
    while pos < size and used < budget:
        kind = rng.choices(["random", "text", "zeros", "blip"], [4, 4, 1, 1])[0]
        if kind == "blip":
            n = rng.randrange(1, 3 * KiB)
        else:
            n = rng.randrange(8 * KiB, 320 * KiB)
            if rng.random() < 0.5:
                pos -= pos % (4 * KiB)
        n = min(n, size - pos)
        if kind == "random":
            data = rng.randbytes(n)
        elif kind == "text":
            data = b" ".join(rng.choices(_WORDS, k=n // 4 + 1))[:n]
        elif kind == "zeros":
            data = bytes(n)
        else:
            data = rng.randbytes(n)
        segs.append((pos, data))
        used += n
        pos += n + rng.randrange(0, 2 * mean_gap)
    return segs


def write_raw(path: Path, size: int, segs: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in segs:
            f.seek(off)
            f.write(data)


def io_writes(workdir: Path, segs: list[tuple[int, bytes]], tag: str) -> list[str]:
    """qemu-io commands writing each segment's exact bytes (`write -s FILE off len`)."""
    cmds = []
    for i, (off, data) in enumerate(segs):
        p = workdir / f"{tag}-{i}.bin"
        p.write_bytes(data)
        cmds.append(f"write -q -s {p} {off} {len(data)}")
    return cmds


# --------------------------------------------------------------------------- the matrix


@dataclass
class Case:
    name: str
    compat: str = "1.1"
    cluster: int = 64 * KiB
    compression: str | None = None  # None, "zlib", "zstd": qemu-img convert -c
    extended_l2: bool = False
    preallocation: str | None = None  # "metadata": create, then write with qemu-io
    zero_writes: list[tuple[int, int]] = field(default_factory=list)  # qemu-io write -z
    snapshot: bool = False  # snapshot -c, then more writes
    layer: str = "gzip"  # compression of the containerDisk layer
    vsize: int = 16 * MiB
    budget: int = 2 * MiB
    regions: list[tuple[int, int]] | None = None  # where the data goes (default: everywhere)
    seed: int = 0

    def __str__(self) -> str:
        return self.name


ZW = [(1 * MiB, 128 * KiB), (3 * MiB + 4 * KiB, 200 * KiB), (5 * MiB, 2 * MiB), (9 * MiB + 512, 3 * KiB)]

CASES = [
    Case("compat-0.10-with-64k-clusters", compat="0.10", seed=1),
    Case("compat-1.1-with-4k-clusters", cluster=4 * KiB, seed=2, vsize=8 * MiB),
    Case("compat-1.1-with-64k-clusters-in-an-uncompressed-layer", layer="none", seed=3, vsize=32 * MiB),
    Case("compat-1.1-with-2m-clusters-and-an-unaligned-virtual-size", cluster=2 * MiB, seed=4,
         vsize=20 * MiB + 7 * 512, budget=3 * MiB, regions=[(0, 2 * MiB), (8 * MiB, 10 * MiB),
                                                             (18 * MiB, 21 * MiB)]),
    Case("compat-0.10-zlib-compressed", compat="0.10", compression="zlib", seed=5),
    Case("compat-1.1-zlib-compressed-with-4k-clusters", compression="zlib", cluster=4 * KiB, seed=6,
         vsize=8 * MiB),
    Case("compat-1.1-zstd-compressed-in-a-zstd-layer", compression="zstd", layer="zstd", seed=7,
         vsize=64 * MiB, budget=3 * MiB),
    Case("compat-1.1-zstd-compressed-with-2m-clusters", compression="zstd", cluster=2 * MiB, seed=8,
         budget=3 * MiB, regions=[(2 * MiB, 6 * MiB), (12 * MiB, 13 * MiB)]),
    Case("extended-l2-with-64k-clusters-and-subcluster-zero-writes", extended_l2=True, seed=9,
         zero_writes=ZW + [(11 * MiB + 2 * KiB, 6 * KiB), (12 * MiB + 64 * KiB, 64 * KiB)]),
    Case("extended-l2-with-16k-clusters-zlib-compressed", extended_l2=True, cluster=16 * KiB,
         compression="zlib", seed=10, zero_writes=[(2 * MiB + 1024, 2048), (6 * MiB, 48 * KiB)]),
    Case("preallocation-metadata-partly-written-and-zeroed", preallocation="metadata", seed=11,
         zero_writes=ZW),
    Case("compat-1.1-zero-clusters-over-data-and-holes", seed=12, zero_writes=ZW),
    Case("compat-0.10-zero-writes", compat="0.10", seed=13, zero_writes=ZW),
    Case("zero-clusters-over-zlib-compressed-clusters", compression="zlib", seed=14, zero_writes=ZW),
    Case("an-internal-snapshot-taken-before-later-writes", snapshot=True, seed=15,
         zero_writes=[(4 * MiB, 256 * KiB)]),
]


def build_qcow2(case: Case, workdir: Path) -> Path:
    """Makes the case's qcow2 with qemu-img/qemu-io; returns its (qemu-written) path."""
    src = workdir / "source.raw"
    img = workdir / "made.qcow2"
    segs = source_segments(case.vsize, case.seed, case.budget, case.regions)
    if case.vsize % case.cluster:  # data in the partial last cluster, up to the last byte
        segs.append((case.vsize - 3000, random.Random(case.seed).randbytes(3000)))
    opts = [f"compat={case.compat}", f"cluster_size={case.cluster}"]
    if case.extended_l2:
        opts.append("extended_l2=on")
    if case.compression == "zstd":
        opts.append("compression_type=zstd")
    if case.preallocation:
        opts.append(f"preallocation={case.preallocation}")
        qemu("qemu-img", "create", "-q", "-f", "qcow2", "-o", ",".join(opts), img, str(case.vsize))
        qemu_io(img, io_writes(workdir, segs, "seg"))
    else:
        write_raw(src, case.vsize, segs)
        qemu("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", ",".join(opts),
             *(["-c"] if case.compression else []), src, img)
        src.unlink()
    if case.snapshot:
        qemu("qemu-img", "snapshot", "-c", "before-writes", img)
        later = source_segments(case.vsize, case.seed + 1000, case.budget // 2)
        qemu_io(img, io_writes(workdir, later, "later"))
    qemu_io(img, [f"write -q -z {off} {n}" for off, n in case.zero_writes if off + n <= case.vsize])
    qemu("qemu-img", "check", "-q", "-f", "qcow2", img)
    return img


def mount(ref: str, workdir: Path, *opts: str, **kw) -> Mount:
    return Mount(ref, workdir / "mnt", "--tls-verify=false", *opts,
                 cache_dir=workdir / "cache", **kw)


def _has_compressed_clusters(img: Path) -> bool:
    q = Qcow2.parse(img.read_bytes())
    return any(e & (1 << 62) for e in q.l2_entries())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_qcow2_containerdisk_reads_and_maps_exactly_like_qemu_img_convert(
        ocifs, registry, repo, workdir, case):
    made = build_qcow2(case, workdir)
    qcow2 = workdir / "disk.qcow2"
    disk = nonsparse_copy(made, qcow2)
    if case.compression:
        assert _has_compressed_clusters(qcow2), "the image under test has no compressed cluster"
    want = reference_raw(qcow2, workdir / "reference.raw")
    assert len(want) == case.vsize
    want_runs = runs_from_map(qemu_map(qcow2, "qcow2"))
    ref, _ = images.push_containerdisk(registry, repo, disk, case.layer)

    with mount(ref, workdir) as m:
        path = m.dir / "disk.img"
        assert os.listdir(m.dir) == ["disk.img"]
        assert os.stat(path).st_size == case.vsize

        info = json.loads(qemu("qemu-img", "info", "--output=json", path))
        assert info["format"] == "raw" and info["virtual-size"] == case.vsize, info

        got_runs = runs_from_lseek(path)
        assert got_runs == want_runs, \
            f"SEEK_DATA/SEEK_HOLE of disk.img:\n{describe_runs(got_runs)}\n" \
            f"qemu-img map of the qcow2:\n{describe_runs(want_runs)}"
        raw_runs = runs_from_map(qemu_map(path, "raw"))
        assert [r for r in raw_runs if r[2]] == [r for r in want_runs if r[2]], \
            f"qemu-img map -f raw disk.img:\n{describe_runs(raw_runs)}\n" \
            f"qemu-img map of the qcow2:\n{describe_runs(want_runs)}"

        assert_reads_match(path, want, read_plan(case.vsize, seed=case.seed, random_reads=80))
        assert_same_bytes(path.read_bytes(), want)


# --------------------------------------------------------------------------- a qcow2 parser


@dataclass
class Qcow2:
    """The few qcow2 fields the tests patch or locate (spec: docs/interop/qcow2.txt)."""
    data: bytes
    version: int
    cluster_bits: int
    size: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    extended_l2: bool

    @classmethod
    def parse(cls, data: bytes) -> "Qcow2":
        (magic, version, _bfo, _bfs, cluster_bits, size, _crypt, l1_size, l1_off, rt_off,
         rt_clusters) = struct.unpack_from(">IIQIIQIIQQI", data, 0)
        assert magic == 0x514649FB
        incompatible = struct.unpack_from(">Q", data, 72)[0] if version >= 3 else 0
        return cls(data, version, cluster_bits, size, l1_size, l1_off, rt_off, rt_clusters,
                   bool(incompatible & (1 << 4)))

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def l2_entry_bytes(self) -> int:
        return 16 if self.extended_l2 else 8

    def l1(self) -> list[int]:
        return list(struct.unpack_from(f">{self.l1_size}Q", self.data, self.l1_table_offset))

    def l2_tables(self) -> list[tuple[int, int]]:
        """[(l1 index, L2 table host offset)] of allocated L1 entries."""
        return [(i, e & 0x00FFFFFFFFFFFE00) for i, e in enumerate(self.l1()) if e & 0x00FFFFFFFFFFFE00]

    def l2_entries(self):
        """Yields every L2 entry (the first 8 bytes)."""
        for _i, off in self.l2_tables():
            for j in range(self.cluster_size // self.l2_entry_bytes):
                yield struct.unpack_from(">Q", self.data, off + j * self.l2_entry_bytes)[0]

    def find_l2_entry(self, want) -> tuple[int, int, int]:
        """(guest offset, file position of the entry, entry) of the first L2 entry with want(entry)."""
        per_table = (self.cluster_size // self.l2_entry_bytes) << self.cluster_bits
        for i, off in self.l2_tables():
            for j in range(self.cluster_size // self.l2_entry_bytes):
                pos = off + j * self.l2_entry_bytes
                e = struct.unpack_from(">Q", self.data, pos)[0]
                if want(e):
                    return i * per_table + (j << self.cluster_bits), pos, e
        raise AssertionError("no such L2 entry")

    def metadata_ranges(self) -> list[tuple[int, int]]:
        """Host ranges of the header cluster, L1, refcount table and blocks, L2 tables."""
        cs = self.cluster_size
        out = [(0, cs), (self.l1_table_offset, self.l1_size * 8),
               (self.refcount_table_offset, self.refcount_table_clusters * cs)]
        rt = struct.unpack_from(f">{self.refcount_table_clusters * cs // 8}Q", self.data,
                                self.refcount_table_offset)
        out += [(e & ~(cs - 1), cs) for e in rt if e]
        out += [(off, cs) for _i, off in self.l2_tables()]
        return out


def patched(data: bytes, *patches: tuple[int, str, int]) -> bytes:
    b = bytearray(data)
    for pos, fmt, value in patches:
        struct.pack_into(fmt, b, pos, value)
    return bytes(b)


# --------------------------------------------------------------------------- malformed images


def _base_image(workdir: Path, compressed: bool) -> tuple[Path, bytes]:
    """A valid v3 qcow2 (64 KiB clusters, 8 MiB): data at [0, 1 MiB) and [4 MiB, 5 MiB);
    with `compressed`, compressible text in zlib-compressed clusters. Returns
    (path, qemu-img convert -O raw of it)."""
    rng = random.Random(99)
    if compressed:
        blob = lambda n: b" ".join(rng.choices(_WORDS, k=n // 4 + 1))[:n]  # noqa: E731
    else:
        blob = rng.randbytes
    src = workdir / "base.raw"
    write_raw(src, 8 * MiB, [(0, blob(MiB)), (4 * MiB, blob(MiB))])
    img = workdir / ("base-c.qcow2" if compressed else "base.qcow2")
    qemu("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1,cluster_size=65536",
         *(["-c"] if compressed else []), src, img)
    nonsparse_copy(img, img)
    return img, reference_raw(img, workdir / "base-ref.raw")


def _truncated_in_header(w):
    img, _ = _base_image(w, False)
    return img.read_bytes()[:60]


def _truncated_in_l1(w):
    img, _ = _base_image(w, False)
    data = img.read_bytes()
    return data[:Qcow2.parse(data).l1_table_offset + 4]


def _l1_beyond_eof(w):
    img, _ = _base_image(w, False)
    data = img.read_bytes()
    return patched(data, (40, ">Q", (len(data) + 0xFFFF) // 0x10000 * 0x10000 + 4 * 0x10000))


def _huge_l1_size(w):
    img, _ = _base_image(w, False)
    return patched(img.read_bytes(), (36, ">I", 0x7FFFFFFF))


def _unknown_incompatible_bit(w):
    img, _ = _base_image(w, False)
    data = img.read_bytes()
    return patched(data, (72, ">Q", struct.unpack_from(">Q", data, 72)[0] | (1 << 20)))


def _crypt_method_aes(w):
    img, _ = _base_image(w, False)
    return patched(img.read_bytes(), (32, ">I", 1))


def _luks_encrypted(w):
    img = w / "luks.qcow2"
    # qemu's PBKDF benchmark often fails in sandboxes ("Unable to get accurate CPU
    # usage"); retry, and as a last resort mark a plain image LUKS (crypt_method 2).
    for _attempt in range(15):
        res = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=abc",
                              "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50",
                              str(img), "16M"], capture_output=True, text=True, timeout=60)
        if res.returncode == 0:
            return img.read_bytes()
        assert "accurate CPU usage" in res.stderr, res.stderr
    base, _ = _base_image(w, False)
    return patched(base.read_bytes(), (32, ">I", 2))


def _backing_file(w):
    base, _ = _base_image(w, False)
    over = w / "over.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", over)
    return over.read_bytes()


REFUSED = [
    ("a-file-truncated-inside-the-header", _truncated_in_header, ["truncated"]),
    ("a-file-truncated-inside-the-l1-table", _truncated_in_l1, ["l1", "past the end"]),
    ("an-l1-table-beyond-the-end-of-the-file", _l1_beyond_eof, ["l1", "past the end"]),
    ("a-huge-l1-size", _huge_l1_size, ["l1_size"]),
    ("an-unknown-incompatible-feature-bit", _unknown_incompatible_bit, ["incompatible feature"]),
    ("crypt-method-aes-patched-in", _crypt_method_aes, ["encrypt"]),
    ("a-luks-encrypted-image", _luks_encrypted, ["encrypt"]),
    ("a-backing-file", _backing_file, ["backing file"]),
]


@pytest.mark.parametrize("name,make,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_mounting_a_qcow2_with_a_fatal_defect_exits_1_naming_it_and_leaves_nothing_behind(
        ocifs, registry, repo, workdir, name, make, words):
    ref, _ = images.push_containerdisk(registry, repo, make(workdir), "gzip")
    mnt = workdir / "mnt"
    mnt.mkdir()
    res = ocifs("mount", "--tls-verify=false", "--cache-dir", workdir / "cache", ref, mnt,
                check=False, kill_group=False, timeout=30)
    try:
        assert res.returncode == 1, res.describe()
        assert "oci-fs: " in res.stderr, res.describe()
        for w in words:
            assert w in res.stderr.lower(), f"stderr does not name {w!r}\n{res.describe()}"
        assert not is_mounted(mnt)
        deadline = time.monotonic() + 3
        while ocifs_pids_for(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ocifs_pids_for(mnt) == [], "an oci-fs process outlived the refused mount"
    finally:
        if is_mounted(mnt):
            processes.unmount(mnt)


def _entry_at(q: Qcow2, guest: int) -> tuple[int, int, int]:
    """(guest, position of the L2 entry, entry) for the cluster holding `guest` (first L2 table)."""
    (_i, l2), = q.l2_tables()
    pos = l2 + (guest >> q.cluster_bits) * q.l2_entry_bytes
    return guest, pos, struct.unpack_from(">Q", q.data, pos)[0]


BAD_GUEST = 4 * MiB + 3 * 64 * KiB  # a cluster of the second data block
GOOD_GUEST = 256 * KiB  # a cluster of the first


def _bad_host_entry(host: int):
    def make(w):
        img, want = _base_image(w, False)
        q = Qcow2.parse(img.read_bytes())
        _g, pos, e = _entry_at(q, BAD_GUEST)
        assert e & 0x00FFFFFFFFFFFE00, "the chosen cluster is not allocated"
        return patched(q.data, (pos, ">Q", (1 << 63) | host)), want
    return make


def _truncated_in_data(w):
    img, want = _base_image(w, False)
    q = Qcow2.parse(img.read_bytes())
    _g, _pos, e = _entry_at(q, BAD_GUEST)
    host = e & 0x00FFFFFFFFFFFE00
    return q.data[:host + 1000], want  # the cluster at BAD_GUEST is cut short


def _l2_table_beyond_eof(w):
    img, want = _base_image(w, False)
    q = Qcow2.parse(img.read_bytes())
    # A second L1 entry (guest 512 MiB..) would be beyond the 8 MiB disk: move the only L2 table.
    return patched(q.data, (q.l1_table_offset, ">Q", (1 << 63) | (len(q.data) + 16 * 65536))), want


def _compressed_entry(make_offset):
    def make(w):
        img, want = _base_image(w, True)
        q = Qcow2.parse(img.read_bytes())
        _g, pos, e = _entry_at(q, BAD_GUEST)
        assert e & (1 << 62), "the chosen cluster is not compressed"
        x = 62 - (q.cluster_bits - 8)
        new = (e & ~((1 << x) - 1)) | make_offset(q, e & ((1 << x) - 1))
        return patched(q.data, (pos, ">Q", new)), want
    return make


def _compressed_garbage(w):
    img, want = _base_image(w, True)
    q = Qcow2.parse(img.read_bytes())
    _g, _pos, e = _entry_at(q, BAD_GUEST)
    x = 62 - (q.cluster_bits - 8)
    off = e & ((1 << x) - 1)
    b = bytearray(q.data)
    b[off:off + 512] = bytes(512)  # a stored deflate block whose LEN/NLEN disagree
    return bytes(b), want


EIO_CASES = [
    ("a-file-truncated-inside-a-data-cluster", _truncated_in_data, ["past the end"], 0),
    ("an-l2-entry-pointing-into-the-header-cluster", _bad_host_entry(0x200),
     ["unaligned|header cluster"], 0),
    ("an-l2-entry-pointing-at-the-l1-table", None, ["l1 table"], 0),
    ("an-l1-entry-pointing-at-an-l2-table-past-the-end", _l2_table_beyond_eof, ["past the end"], 1),
    ("a-compressed-cluster-descriptor-past-the-end",
     _compressed_entry(lambda q, off: len(q.data) + 65536), ["past the end"], 0),
    ("a-compressed-cluster-descriptor-into-the-header-cluster",
     _compressed_entry(lambda q, off: 0x100), ["header cluster"], 0),
    ("a-compressed-cluster-that-does-not-inflate", _compressed_garbage, ["guest offset"], 0),
]


@pytest.mark.parametrize("name,make,words,all_bad", EIO_CASES, ids=[c[0] for c in EIO_CASES])
def test_reading_a_corrupt_qcow2_cluster_gives_eio_and_the_mount_keeps_serving(
        ocifs, registry, repo, workdir, name, make, words, all_bad):
    if make is None:  # needs the L1 table offset of the base image
        def make(w):
            img, _ = _base_image(w, False)
            return _bad_host_entry(Qcow2.parse(img.read_bytes()).l1_table_offset)(w)
    disk, want = make(workdir)
    ref, _ = images.push_containerdisk(registry, repo, disk, "gzip")
    log = workdir / "oci-fs.log"
    # In the foreground: a daemonized mount with --log-file keeps the caller's stderr
    # open (see the test below), which would block the harness.
    with mount(ref, workdir, "--log-file", log, foreground=True) as m:
        path = m.dir / "disk.img"
        assert os.stat(path).st_size == 8 * MiB
        fd = os.open(path, os.O_RDONLY)
        try:
            for _ in range(2):
                with pytest.raises(OSError) as err:
                    os.pread(fd, 4096, BAD_GUEST)
                assert err.value.errno == errno.EIO
            assert m.pid is not None and not processes.wait_pid_gone(m.pid, 0.2), "the daemon died"
            if not all_bad:
                assert os.pread(fd, 4096, GOOD_GUEST) == want[GOOD_GUEST:GOOD_GUEST + 4096]
                assert os.pread(fd, 8192, 6 * MiB) == bytes(8192)  # unallocated
            else:  # every guest offset depends on the one L2 table
                with pytest.raises(OSError) as err:
                    os.pread(fd, 4096, GOOD_GUEST)
                assert err.value.errno == errno.EIO
            assert os.listdir(m.dir) == ["disk.img"]
        finally:
            os.close(fd)
    text = log.read_text(errors="replace").lower() if log.exists() else ""
    for w in words:
        assert any(alt in text for alt in w.split("|")), f"the log does not name {w!r}:\n{text[-3000:]}"


# --------------------------------------------------------------------------- laziness


def _layer_bytes(registry, repo: str, digest: str) -> int:
    return sum(r.written for r in registry.blob_gets(repo) if r.digest == digest)


def test_a_qcow2_mount_fetches_only_metadata_for_a_hole_and_about_a_chunk_for_a_cluster(
        ocifs, registry, repo, workdir):
    # 64 MiB virtual, 64 KiB clusters: 1 MiB of random data at every 4 MiB; an uncompressed layer.
    rng = random.Random(42)
    blocks = [(k * 4 * MiB, rng.randbytes(MiB)) for k in range(16)]
    src = workdir / "src.raw"
    write_raw(src, 64 * MiB, blocks)
    made = workdir / "made.qcow2"
    qemu("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1,cluster_size=65536", src, made)
    disk = nonsparse_copy(made, workdir / "disk.qcow2")
    q = Qcow2.parse(disk)
    ref, img = images.push_containerdisk(registry, repo, disk, "none")
    layer = img.layers[0]
    with tarfile.open(fileobj=io.BytesIO(layer.tar)) as tf:
        data_off = tf.getmember("disk/disk.img").offset_data
    meta_chunks = {c for off, n in q.metadata_ranges()
                   for c in range((data_off + off) // CHUNK, (data_off + off + n - 1) // CHUNK + 1)}
    meta_chunks |= {0, (data_off + len(disk)) // CHUNK, (data_off + len(disk) + 1023) // CHUNK}  # tar headers, end
    # ... plus the bytes of the small reads themselves: a small miss fetches its own bytes
    # first, its chunk beside it (MissStrategy, --miss-fetch exact).
    allowed = sum(min(CHUNK, layer.size - c * CHUNK) for c in meta_chunks) + 64 * KiB
    assert layer.size > 16 * MiB

    with mount(ref, workdir, stats=True) as m:
        fd = os.open(m.dir / "disk.img", os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no kernel readahead
            at_mount = _layer_bytes(registry, repo, layer.digest)
            assert at_mount <= allowed, f"the mount itself fetched {at_mount} layer bytes ({allowed} allowed)"
            assert os.pread(fd, 4096, 2 * MiB + 8192) == bytes(4096)  # unallocated
            after_hole = _layer_bytes(registry, repo, layer.digest)
            assert after_hole <= allowed, \
                f"{after_hole} layer bytes fetched after reading a hole ({at_mount} at mount); " \
                f"the metadata chunks " \
                f"{sorted(meta_chunks)} hold {allowed}"
            guest = 40 * MiB + 5 * 64 * KiB  # an allocated cluster, in the middle of a chunk
            _g, _pos, e = _entry_at(q, guest)
            host = e & 0x00FFFFFFFFFFFE00
            assert (data_off + host) // CHUNK not in meta_chunks
            assert os.pread(fd, 64 * KiB, guest) == blocks[10][1][5 * 64 * KiB:6 * 64 * KiB]
            after_cluster = _layer_bytes(registry, repo, layer.digest)
        finally:
            os.close(fd)
    fetched = after_cluster - after_hole
    assert 64 * KiB <= fetched <= 2 * CHUNK, \
        f"reading one 64 KiB cluster fetched {fetched} layer bytes (layer: {layer.size})"
    assert m.stats is not None and m.stats["blob_bytes"] <= allowed + 2 * CHUNK, m.stats


# --------------------------------------------------------------------------- cluster cache


def hex_compressed_qcow2(workdir: Path, size: int, at: int, block: int, seed: int) -> tuple[bytes, bytes]:
    """(qcow2 bytes, qemu-img's raw reference) of a disk of `size` bytes with `block` bytes of hex
    digits at `at` in every MiB, converted with compressed 64 KiB clusters: hex compresses to
    about half, so every allocated cluster is a compressed one."""
    rng = random.Random(seed)
    src = workdir / "src.raw"
    write_raw(src, size, [(k * MiB + at, rng.randbytes(block // 2).hex().encode()) for k in range(size // MiB)])
    made = workdir / "made.qcow2"
    qemu("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", src, made)
    return nonsparse_copy(made, workdir / "disk.qcow2"), reference_raw(made, workdir / "reference.raw")


def test_a_later_mount_reads_compressed_clusters_from_the_cluster_cache_not_the_layer(
        ocifs, registry, repo, workdir):
    # Hex digits compress to about half: every allocated cluster of this image
    # is a compressed one, and they outweigh its metadata clusters.
    disk, want = hex_compressed_qcow2(workdir, 64 * MiB, 64 * KiB, 192 * KiB, seed=5)
    compressed = sum(1 for e in Qcow2.parse(disk).l2_entries() if e & (1 << 62))
    assert compressed >= 96
    ref, img = images.push_containerdisk(registry, repo, disk, "none")
    layer = img.layers[0]
    cache = workdir / "cache"
    chunk_opts = ("--chunk-size", "64K")

    with mount(ref, workdir, *chunk_opts, stats=True) as m:
        # At full speed: the reads that inflate the clusters keep them themselves
        # (docs/cache-format.md "Kept pieces"), so none is dropped however busy the machine is.
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    first = _layer_bytes(registry, repo, layer.digest)
    assert m.stats["cluster_cache_hits"] == 0 and m.stats["cluster_cache_dropped"] == 0, m.stats
    kept = kept_pieces(cache, f"{layer.digest}:qcow2-clusters-*", piece_size=64 * KiB)
    assert len(kept) == compressed, f"{len(kept)} clusters kept of {compressed} compressed ones read"

    # Drop the layer's own chunks: a compressed cluster the next mount does not
    # find in the cluster cache must come from the registry again.
    shutil.rmtree(cache / "chunks" / "65536" / layer.digest)
    with mount(ref, workdir, *chunk_opts, stats=True) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    second = _layer_bytes(registry, repo, layer.digest) - first
    assert m.stats["cluster_cache_hits"] >= compressed
    # What it fetched: the header, the L1 and L2 tables and the tar header (at the
    # layer's start) and the disk's last bytes, each a miss that brings its 1 MiB group.
    assert second <= 2 * MiB + 64 * KiB and second <= first // 3, \
        f"the second mount fetched {second} layer bytes, the first {first}"

    # --cluster-cache off keeps none (and -o cluster_cache=off is the same).
    shutil.rmtree(cache)
    with mount(ref, workdir, "-o", "cluster_cache=off", stats=True) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    assert not list(cache.glob("chunks/*/*:qcow2-clusters-*")) and not list(cache.glob("kept/*:qcow2-clusters-*"))
    assert m.stats["cluster_cache_hits"] == 0


def test_two_concurrent_mounts_of_one_disk_inflate_each_compressed_cluster_once(ocifs, registry, repo, workdir):
    """Two `oci-fs mount`s of one qcow2 disk over one cache dir, reading it whole at the same
    time: each compressed cluster is inflated and kept by one of them, and the other waits for
    it (the kept-piece file's claims, docs/cache-format.md "Claims") or finds it kept, instead
    of inflating it too."""
    disk, want = hex_compressed_qcow2(workdir, 64 * MiB, 64 * KiB, 192 * KiB, seed=6)
    compressed = sum(1 for e in Qcow2.parse(disk).l2_entries() if e & (1 << 62))
    assert compressed >= 96
    ref, img = images.push_containerdisk(registry, repo, disk, "none")
    cache = workdir / "cache"
    mounts = [Mount(ref, workdir / f"m{i}", "--tls-verify=false", "--chunk-size", "64K",
                    cache_dir=cache, stats=True) for i in range(2)]
    with mounts[0], mounts[1]:
        start = threading.Barrier(2, timeout=60)

        def read_whole(m: Mount) -> bytes:
            start.wait()  # both from the first byte, in step: every cluster is wanted by both at once
            return (m.dir / "disk.img").read_bytes()
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(read_whole, mounts))
        for g in got:
            assert_same_bytes(g, want)
    stats = [m.stats for m in mounts]
    assert all(s["cluster_cache_dropped"] == 0 for s in stats), stats
    # Kept by exactly one of them each (the pieces counted where they were made).
    assert sum(s["cluster_cache_kept"] for s in stats) == compressed, stats
    kept = kept_pieces(cache, f"{img.layers[0].digest}:qcow2-clusters-*", piece_size=64 * KiB)
    assert len(kept) == compressed, f"{len(kept)} clusters kept of {compressed} compressed ones read"


# --------------------------------------------------------------------------- concurrency


def test_eight_threads_reading_random_offsets_of_a_compressed_qcow2_all_see_the_reference(
        ocifs, registry, repo, workdir):
    case = Case("concurrency", compression="zlib", seed=77, budget=3 * MiB,
                zero_writes=[(6 * MiB, 256 * KiB)])
    disk = nonsparse_copy(build_qcow2(case, workdir), workdir / "disk.qcow2")
    want = reference_raw(workdir / "disk.qcow2", workdir / "reference.raw")
    assert _has_compressed_clusters(workdir / "disk.qcow2")
    ref, _ = images.push_containerdisk(registry, repo, disk, "gzip")
    # A small cluster memory cache: decompressed clusters are evicted while others read them.
    with mount(ref, workdir, "--memory-cache", "1M") as m:
        path = m.dir / "disk.img"

        def reader(seed: int) -> list[str]:
            rng = random.Random(seed)
            bad = []
            fd = os.open(path, os.O_RDONLY)
            try:
                for _ in range(60):
                    off = rng.randrange(case.vsize)
                    n = rng.choice([1, 4096, 65536, 70000, rng.randrange(1, 512 * KiB)])
                    got = os.pread(fd, n, off)
                    if got != want[off:off + n]:
                        bad.append(f"thread {seed}: pread({n}, {off}) differs")
            finally:
                os.close(fd)
            return bad

        with ThreadPoolExecutor(8) as pool:
            problems = sum(pool.map(reader, range(8)), [])
        assert problems == []
        assert_same_bytes(path.read_bytes(), want)


# --------------------------------------------------------------------------- daemon and stdio


def _reaches_eof(pipe, seconds: float) -> bool:
    """True if the read end `pipe` reports EOF within `seconds` (draining what arrives)."""
    fd = pipe.fileno()
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready and os.read(fd, 65536) == b"":
            return True


def test_a_daemonized_mount_with_a_log_file_does_not_keep_the_callers_stderr_open(
        ocifs, registry, repo, workdir):
    base, _ = _base_image(workdir, False)
    ref, _ = images.push_containerdisk(registry, repo, base.read_bytes(), "gzip")
    mnt = workdir / "mnt"
    mnt.mkdir()
    argv = [processes.ocifs_bin(), "mount", "--tls-verify=false", "--cache-dir", workdir / "cache",
            "--log-file", workdir / "oci-fs.log", ref, mnt]
    proc = processes.spawn(argv, env=processes.isolated_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    pids: list[int] = []
    try:
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode(errors="replace")
        assert is_mounted(mnt)
        pids = ocifs_pids_for(mnt)
        for pid in pids:
            processes.adopt(pid)
        assert _reaches_eof(proc.stdout, 5), "the mount daemon keeps the caller's stdout open"
        assert _reaches_eof(proc.stderr, 5), \
            "the mount daemon keeps the caller's stderr (fd 2) open after `mount` returned: " \
            "a caller reading it to EOF (subprocess.communicate, a shell $(...)) blocks until unmount"
    finally:
        processes.unmount(mnt)
        for pid in pids:
            processes.wait_pid_gone(pid, 10)
            processes.forget(pid)
        processes.stop(proc)
        proc.stdout.close()
        proc.stderr.close()


def test_a_disk_the_complete_image_contradicts_fails_every_read_even_of_clusters_already_inflated(
        ocifs, registry, repo, workdir):
    """A first-seen gzip layer is served from the disk's entry on while the rest is indexed in
    the background. When the rest shows the image breaks the containerDisk contract (here a
    second file under /disk), every later read fails with EIO: also those of compressed
    clusters the view keeps inflated in memory or in the cluster cache."""
    disk, want = hex_compressed_qcow2(workdir, 8 * MiB, 0, 128 * KiB, seed=9)
    filler = random.Random(10).randbytes(24 * MiB)  # the background pass has this to read after the disk
    layer = images.Layer.from_entries([images.Dir("disk"), images.File("disk/disk.img", disk),
                                       images.File("disk/zz.img", filler)], "gzip")
    ref = registry.ref(repo, "two")
    images.push(registry, repo, "two", images.Image([layer]))
    log = workdir / "m.log"
    with mount(ref, workdir, "--log-file", log) as m:
        path = m.dir / "disk.img"
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                # Its clusters are now inflated. The kernel splits this read into several
                # requests: if the background pass poisons the disk between them, the read
                # is short, and what it returned must still be the disk's bytes.
                got = os.pread(fd, 2 * MiB, 0)
                assert 0 < len(got) <= 2 * MiB and got == want[:len(got)], len(got)
            except OSError as e:  # the background pass was quicker: poisoned already
                assert e.errno == errno.EIO
            deadline = time.monotonic() + 30
            while "contradicts the disk served" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the kernel's copy goes; ours must not serve
            for offset in (0, MiB, 5 * MiB):
                with pytest.raises(OSError) as err:
                    os.pread(fd, 64 * KiB, offset)
                assert err.value.errno == errno.EIO
        finally:
            os.close(fd)
    assert "image has 2 files under /disk" in log.read_text()
