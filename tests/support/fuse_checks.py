"""Helpers for the FUSE mount tests (tests/fuse): disk contents, read patterns,
byte-for-byte checks, the chunk cache on disk, daemon counters.

    data = disk_bytes(3 << 20 | 12345, seed=1)    # random with zero runs
    assert_reads_match(mnt / "disk.img", data, read_plan(len(data), seed=2))
    chunk_files(cache_dir)                        # {(key, index): Path}
    kept_pieces(cache_dir, "sha256:...:raw-chunks-*")  # {index: length} of a disk's kept pieces
    stats = wait_stats(mount, since)              # the periodic --stats-file rewrite
"""

from __future__ import annotations

import errno
import json
import os
import random
import struct
import time
import zlib
from pathlib import Path

from . import processes

MiB = 1 << 20
CHUNK = 1 << 20  # the chunk cache's default chunk size (docs/cache-format.md)
CHUNK_HEADER = 48


def disk_bytes(size: int, seed: int) -> bytes:
    """`size` bytes of incompressible random data with runs of zeros (as real disks
    have), deterministic in `seed`."""
    rng = random.Random(seed)
    out = bytearray(rng.randbytes(size))
    pos = 0
    while pos < size:  # a zero run of 4..64 KiB every ~256 KiB, some page-aligned, some not
        pos += rng.randrange(64 * 1024, 256 * 1024)
        n = rng.randrange(4 * 1024, 64 * 1024)
        if rng.random() < 0.5:
            pos -= pos % 4096
        out[pos:pos + n] = bytes(len(out[pos:pos + n]))
        pos += n
    return bytes(out)


def echo_disk(size: int, seed: int) -> bytes:
    """Random 16 KiB blocks, each followed by a copy of itself: gzip halves it, and
    the data after a checkpoint copies from up to 16 KiB of its window, so
    windows stay large (incompressible bytes that are referenced) where a
    random disk's sparse ones are nearly empty."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        block = rng.randbytes(16 * 1024)
        out += block + block
    return bytes(out[:size])


def read_plan(size: int, seed: int, random_reads: int = 60) -> list[tuple[int, int]]:
    """(offset, length) pairs: every 1 MiB chunk boundary crossed, the first and last
    bytes, the last partial page, a read past the end, and random ranges."""
    rng = random.Random(seed)
    plan = [(0, 1), (0, 4096), (size - 1, 1), (size - size % 4096, 4096), (size - 100, 4096),
            (size - 3 * 4096 - 7, 3 * 4096 + 7), (size, 10), (size + 4096, 10)]
    plan = [(max(0, off), n) for off, n in plan]
    for b in range(CHUNK, size, CHUNK):
        plan += [(b - 1, 2), (b - 3000, 6000), (b - 4096, 8192)]
    if size > 2 * CHUNK + 10:
        plan.append((CHUNK - 5, CHUNK + 10))  # spans three chunks
    for _ in range(random_reads):
        off = rng.randrange(size)
        plan.append((off, rng.choice([1, 511, 4096, 4097, 65536, 300_000, rng.randrange(1, 2 * CHUNK)])))
    return plan


def assert_reads_match(path: Path | str, data: bytes, plan: list[tuple[int, int]]) -> None:
    """pread()s every range of `plan` from `path` and compares with `data`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, n in plan:
            got = _pread_full(fd, n, off)
            want = data[off:off + n]
            if got != want:
                raise AssertionError(f"{path}: pread({n}, {off}) returned {len(got)} bytes, "
                                     f"want {len(want)}; first difference at "
                                     f"{first_difference(got, want)}")
    finally:
        os.close(fd)


def _pread_full(fd: int, n: int, off: int) -> bytes:
    parts = []
    while n > 0:
        b = os.pread(fd, n, off)
        if not b:
            break
        parts.append(b)
        n -= len(b)
        off += len(b)
    return b"".join(parts)


def first_difference(a: bytes, b: bytes) -> int | None:
    for i in range(0, min(len(a), len(b)), 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            return i + next(j for j in range(4096) if a[i + j:i + j + 1] != b[i + j:i + j + 1])
    return None if len(a) == len(b) else min(len(a), len(b))


def scan_reads(path: Path | str, want: bytes, piece: int = 64 << 10) -> tuple[list[int], int]:
    """pread()s `path` in pieces of `piece` bytes (within one FUSE read, so a failed
    piece is EIO, not a short read); every byte returned must equal `want`'s.
    Returns (offsets of the pieces that failed with EIO or came back short, count of
    whole good pieces); any other error fails."""
    fd = os.open(path, os.O_RDONLY)
    errors, good = [], 0
    try:
        for off in range(0, len(want), piece):
            try:
                got = os.pread(fd, piece, off)
            except OSError as e:
                assert e.errno == errno.EIO, e
                errors.append(off)
                continue
            assert got == want[off:off + len(got)], f"wrong bytes at {off}"
            if len(got) < len(want[off:off + piece]):  # the kernel's read-ahead met a bad piece
                errors.append(off)
            else:
                good += 1
    finally:
        os.close(fd)
    return errors, good


def assert_same_bytes(got: bytes, want: bytes, what: str = "disk.img") -> None:
    if got != want:
        raise AssertionError(f"{what}: {len(got)} bytes, want {len(want)}; "
                             f"first difference at {first_difference(got, want)}")


def open_for_write_errno(path: Path | str, flags: int) -> int | None:
    """The errno of os.open(path, flags), or None if it succeeded (then closed)."""
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        return e.errno
    os.close(fd)
    return None


WRITE_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)


# --------------------------------------------------------------------------- mounts, processes


def mountinfo_has(path: Path | str) -> bool:
    """True if /proc/self/mountinfo lists `path` (or its realpath) as a mount point."""
    return processes.is_mounted(path)


def _children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def ocifs_pids_for(directory: Path | str) -> list[int]:
    """The oci-fs daemons whose argv names `directory` (not zombies): a kept
    mount's serving process (docs/keeper.md) counts through its keeper, its parent."""
    bin_ = processes.ocifs_bin()
    pids = set(processes.find_processes(bin_, str(directory)))
    pids |= set(processes.find_processes(bin_, os.path.realpath(directory)))
    live = {p for p in pids if not processes._is_zombie(p)}
    served = {c for p in live for c in _children_of(p)}
    return sorted(live - served)


def daemon_io(pid: int) -> dict[str, int]:
    """/proc/PID/io counters (rchar, wchar, ...) of a daemon and its children (a
    kept mount's serving process): a FUSE daemon writes every read reply to
    /dev/fuse, so `wchar` grows by at least the bytes the kernel asked for."""
    out: dict[str, int] = {}
    for p in [pid, *_children_of(pid)]:
        try:
            text = Path(f"/proc/{p}/io").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            k, _, v = line.partition(":")
            out[k.strip()] = out.get(k.strip(), 0) + int(v)
    return out


def wait_stats(stats_path: Path, since: float, timeout: float = 10) -> dict:
    """The --stats-file content once it has been rewritten after time `since`
    (time.time()). The daemon rewrites it about once a second while mounted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = os.stat(stats_path)
            if st.st_mtime > since:
                text = stats_path.read_text()
                if text.strip():
                    return json.loads(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{stats_path} was not rewritten within {timeout}s")


# --------------------------------------------------------------------------- the cache on disk


def chunk_files(cache_dir: Path | str, chunk_size: int = CHUNK) -> dict[tuple[str, int], Path]:
    """{(key, index): path} of the chunk files under cache_dir/chunks/<chunk_size>/."""
    base = Path(cache_dir) / "chunks" / str(chunk_size)
    out = {}
    if base.is_dir():
        for keydir in base.iterdir():
            for f in keydir.iterdir():
                if f.name.isdigit():
                    out[(keydir.name, int(f.name))] = f
    return out


def kept_pieces(cache_dir: Path | str, key_glob: str, piece_size: int | None = None) -> dict[int, int]:
    """{piece index: length} of the pieces the kept-piece files cache_dir/kept/<key_glob> hold
    (docs/cache-format.md "Kept pieces", version 1): entries whose entry CRC holds and whose
    bytes match their data CRC, as a reader checks them. `piece_size`: the size the files'
    headers must name."""
    out: dict[int, int] = {}
    for path in sorted((Path(cache_dir) / "kept").glob(key_glob)):
        blob = path.read_bytes()
        magic, version, header_size, piece, key_hash, per_group, crc = struct.unpack_from("<8sHHIQII", blob)
        assert (magic, version, header_size, per_group) == (b"OCIFSKPT", 1, 32, 256), path
        assert crc == zlib.crc32(blob[:28]), f"{path}: header CRC"
        assert piece_size is None or piece == piece_size, (path, piece)
        h = 0xcbf29ce484222325
        for b in path.name.encode():
            h = ((h ^ b) * 0x100000001b3) & (2**64 - 1)
        assert key_hash == h, f"{path}: key hash"
        group_bytes = 4096 + 256 * piece
        group = 0
        while 4096 + group * group_bytes < len(blob):
            table = 4096 + group * group_bytes
            for slot in range(256):
                raw = blob[table + 16 * slot:table + 16 * slot + 16].ljust(16, b"\0")
                length, data_crc, low_index, entry_crc = struct.unpack("<IIII", raw)
                index = group * 256 + slot
                if length == 0 or length > piece or low_index != index & 0xffffffff:
                    continue
                if entry_crc != zlib.crc32(struct.pack("<Q", key_hash) + raw[:12]):
                    continue
                at = table + 4096 + slot * piece
                if zlib.crc32(blob[at:at + length]) == data_crc and at + length <= len(blob):
                    out[index] = length
            group += 1
    return out


def tree_bytes(directory: Path | str) -> int:
    """Total size of the regular files below `directory` (os.walk)."""
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # evicted while we walked
                pass
    return total


def data_runs(path) -> list[tuple[int, int]]:
    """(start, end) of each data run, from SEEK_DATA/SEEK_HOLE."""
    runs, fd = [], os.open(path, os.O_RDONLY)
    try:
        size, pos = os.fstat(fd).st_size, 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            runs.append((start, end))
            pos = end
    finally:
        os.close(fd)
    return runs
