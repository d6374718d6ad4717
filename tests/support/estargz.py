"""A writer of eStargz layers, for the tests that need layers they can damage (a
chunk, the TOC, the footer). The reference writer, stargz-snapshotter's
`ctr-remote image convert --estargz` (Debian package stargz-snapshotter), makes
the layers of tests/decode/test_estargz_real.py.

It follows containerd/stargz-snapshotter's estargz package (estargz.go,
Writer.AppendTar and Close; gzip.go, gzipFooterBytes; docs/estargz.md there):

- the layer is a gzip stream of many gzip members;
- every content chunk (at most `chunk_size` bytes of a regular file) starts a
  member of its own: the writer closes the member it was writing, notes the
  compressed offset (the TOC entry's "offset"), and writes the chunk's bytes;
- tar headers (and a file's padding after its last chunk) go into the member
  being written: the first member holds the first headers, the member of a
  file's last chunk also holds its padding and the headers up to the next
  file's first chunk; the data tar has no end-of-archive blocks;
- then the TOC: one gzip member holding the tar entry "stargz.index.json"
  (the JSON) and the two end-of-archive blocks;
- then a 51-byte footer: an empty gzip member (stored, no compression) whose
  extra field is "SG", length 22, "%016x" of the TOC's offset + "STARGZ".

TOC entries (TOCEntry's JSON, empty fields left out as Go's omitempty does):
a regular file's entry is its first chunk: "size", "digest" (sha256 of the
whole content), "offset", "chunkDigest", "chunkSize" only when the chunk is a
full `chunk_size` (the writer leaves it out for a short last chunk); the
following chunks are entries of type "chunk" with the same name, with
"offset", "chunkOffset" (left out when 0), "chunkSize" (same rule) and
"chunkDigest". The layer descriptor carries
"containerd.io/snapshot/stargz/toc.digest" (sha256 of the TOC's JSON) and
"io.containers.estargz.uncompressed-size" (bytes of the whole tar).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass

from support.images import LAYER_MEDIA_TYPES, MTIME, Layer

TOC_DIGEST = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE = "io.containers.estargz.uncompressed-size"
TOC_NAME = "stargz.index.json"
FOOTER_SIZE = 51


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _member(data: bytes) -> bytes:
    """One gzip member of `data`, as Go's gzip.Writer writes it (no name, mtime 0)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def footer(toc_offset: int) -> bytes:
    """The 51-byte footer: an empty gzip member with the TOC's offset in its extra field."""
    subfield = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(subfield)) + subfield
    header = b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\0\xff" + struct.pack("<H", len(extra)) + extra
    empty_stored_block = b"\x01\x00\x00\xff\xff"  # what deflate at NoCompression writes for no data
    out = header + empty_stored_block + struct.pack("<II", zlib.crc32(b""), 0)
    assert len(out) == FOOTER_SIZE
    return out


@dataclass
class Estargz:
    blob: bytes      # the layer as pushed
    tar: bytes       # what it decompresses to
    toc: dict        # the TOC's JSON as an object
    toc_json: bytes  # its bytes in the blob
    toc_offset: int

    def annotations(self) -> dict:
        return {TOC_DIGEST: _sha256(self.toc_json), UNCOMPRESSED_SIZE: str(len(self.tar))}

    def layer(self, flavor: str = "oci") -> Layer:
        return Layer(self.blob, LAYER_MEDIA_TYPES[flavor]["gzip"], self.annotations(), tar=self.tar,
                     compression="gzip")


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_estargz(files: list[tuple[str, bytes | None]], chunk_size: int = 4 << 20, uid: int = 107,
                  tamper_chunk: int | None = None) -> Estargz:
    """files: (path, content) in tar order; content None makes a directory.
    tamper_chunk=n: the n-th chunk of the layer (0-based, in layer order) is written with
    its first byte changed while its TOC entry keeps the digest of the true bytes (a
    layer damaged after it was written); `tar` then holds the changed byte too."""
    blob, tar, member = bytearray(), bytearray(), bytearray()
    entries: list[dict] = []
    chunks_written = 0

    def close_member() -> None:  # Writer.flushGz
        if member:
            blob.extend(_member(bytes(member)))
            member.clear()

    def emit(data: bytes) -> None:
        member.extend(data)
        tar.extend(data)

    for path, content in files:
        info = tarfile.TarInfo(path.strip("/") + ("/" if content is None else ""))
        info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, uid, uid, "", ""
        entry = {"name": info.name, "modtime": "2024-01-01T00:00:00Z", "uid": uid, "gid": uid}
        if content is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            entry.update(type="dir", mode=0o755)
        else:
            info.size, info.mode = len(content), 0o644
            entry.update(type="reg", mode=0o644)
            if content:
                entry.update(size=len(content), digest=_sha256(content))
        emit(_header(info))
        if not content:
            entries.append(entry)
            continue
        written = 0
        while written < len(content):
            n = min(chunk_size, len(content) - written)
            if n == chunk_size:
                entry["chunkSize"] = n
            close_member()
            entry["offset"] = len(blob)
            if written:
                entry["chunkOffset"] = written
            chunk = content[written:written + n]
            entry["chunkDigest"] = _sha256(chunk)
            if chunks_written == tamper_chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            chunks_written += 1
            emit(chunk)
            entries.append(entry)
            written += n
            entry = {"name": info.name, "type": "chunk"}
        emit(b"\0" * (-len(content) % 512))  # tar padding, in the last chunk's member
    close_member()

    toc = {"version": 1, "entries": entries}
    toc_json = json.dumps(toc, indent="\t").encode()
    toc_offset = len(blob)
    info = tarfile.TarInfo(TOC_NAME)
    info.size, info.mode, info.mtime, info.uname, info.gname = len(toc_json), 0o644, 0, "", ""
    toc_tar = _header(info) + toc_json + b"\0" * (-len(toc_json) % 512) + b"\0" * 1024
    tar.extend(toc_tar)
    blob.extend(_member(toc_tar))
    blob.extend(footer(toc_offset))
    return Estargz(bytes(blob), bytes(tar), toc, toc_json, toc_offset)


def rewrite_toc(layer: Estargz, toc: dict) -> Estargz:
    """The same layer with another TOC (and footer), for tests of a TOC that lies."""
    toc_json = json.dumps(toc, indent="\t").encode()
    info = tarfile.TarInfo(TOC_NAME)
    info.size, info.mode, info.mtime, info.uname, info.gname = len(toc_json), 0o644, 0, "", ""
    toc_tar = _header(info) + toc_json + b"\0" * (-len(toc_json) % 512) + b"\0" * 1024
    data_tar = gzip.decompress(layer.blob[:layer.toc_offset])
    blob = layer.blob[:layer.toc_offset] + _member(toc_tar) + footer(layer.toc_offset)
    return Estargz(blob, data_tar + toc_tar, toc, toc_json, layer.toc_offset)

