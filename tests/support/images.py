"""Test images without docker: deterministic tars, compression, images, indexes.

    tar = make_tar([Dir("disk"), File("disk/disk.img", data)])
    img = Image([Layer.from_tar(tar, "gzip")], flavor="oci")        # or flavor="docker"
    idx = Index([(img_amd64, "linux/amd64"), (img_arm64, "linux/arm64")])
    push(reg, "repo", "tag", img)          # through the registry HTTP API
    write_oci_layout(dir, img, "tag")      # for `oci:DIR:tag`
    containerdisk(disk_bytes, "gzip")      # a KubeVirt containerDisk image

Everything is byte-for-byte reproducible: fixed mtime, uid/gid, no gzip
timestamp, sorted JSON keys. `digest` attributes are "sha256:<hex>" of the exact
bytes pushed.
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

MTIME = 1700000000

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

LAYER_MEDIA_TYPES = {
    "oci": {"none": "application/vnd.oci.image.layer.v1.tar",
            "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"},
    "docker": {"none": "application/vnd.docker.image.rootfs.diff.tar",
               "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
               "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd"},
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- tar entries


@dataclass
class File:
    path: str
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class Dir:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass
class Symlink:
    path: str
    target: str


@dataclass
class Hardlink:
    path: str
    target: str  # path of an earlier entry in the same tar


@dataclass
class Whiteout:
    """Deletes `path` of lower layers: an empty file `dir/.wh.name`."""
    path: str


@dataclass
class Opaque:
    """Hides everything lower layers put in directory `path`: `path/.wh..wh..opq`."""
    path: str


Entry = File | Dir | Symlink | Hardlink | Whiteout | Opaque


def make_tar(entries: Sequence[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of `entries` in the given order (PAX by default: long names get pax headers)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            name = e.path.strip("/")
            data = b""
            if isinstance(e, Whiteout):
                d, base = os.path.split(name)
                info = tarfile.TarInfo(os.path.join(d, ".wh." + base))
                info.mode = 0o644
            elif isinstance(e, Opaque):
                info = tarfile.TarInfo(os.path.join(name, ".wh..wh..opq"))
                info.mode = 0o644
            else:
                info = tarfile.TarInfo(name)
                info.mode = getattr(e, "mode", 0o777)
                info.uid, info.gid = getattr(e, "uid", 0), getattr(e, "gid", 0)
                if isinstance(e, File):
                    data = e.data
                    info.size = len(data)
                elif isinstance(e, Dir):
                    info.type = tarfile.DIRTYPE
                elif isinstance(e, Symlink):
                    info.type, info.linkname = tarfile.SYMTYPE, e.target
                elif isinstance(e, Hardlink):
                    info.type, info.linkname = tarfile.LNKTYPE, e.target.strip("/")
            info.mtime = MTIME
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


# --------------------------------------------------------------------------- compression


def compress(data: bytes, kind: str, frame_size: int = 1 << 20, level: int = 3) -> bytes:
    """kind: "none", "gzip", "zstd", "zstd-unsized" (one frame without a content size, as a
    streaming encoder writes: `cat F | zstd`) or "zstd-multiframe" (independent zstd frames
    of `frame_size` input bytes each, concatenated; a valid zstd stream)."""
    if kind == "none":
        return data
    if kind == "gzip":
        return _gzip.compress(data, compresslevel=6, mtime=0)
    if kind == "zstd":
        return _zstd(data, level)
    if kind == "zstd-unsized":
        return subprocess.run(["zstd", "-q", "-c", f"-{level}", "--no-check"], input=data,
                              capture_output=True, check=True).stdout
    if kind == "zstd-multiframe":
        if not data:
            return _zstd(b"", level)
        return b"".join(_zstd(data[i:i + frame_size], level) for i in range(0, len(data), frame_size))
    raise ValueError(f"unknown compression {kind!r}")


def _zstd(data: bytes, level: int) -> bytes:
    # --stream-size: the frame header carries the content size, as `zstd FILE` writes it.
    return subprocess.run(["zstd", "-q", "-c", f"-{level}", "--no-check", f"--stream-size={len(data)}"], input=data,
                          capture_output=True, check=True).stdout


def compression_of(kind: str) -> str:
    """"zstd-multiframe" -> "zstd": what `inspect` reports."""
    return "zstd" if kind.startswith("zstd") else kind


# --------------------------------------------------------------------------- blobs, images


@dataclass
class Blob:
    data: bytes
    media_type: str
    annotations: dict | None = None

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = self.annotations
        return d


@dataclass
class Layer(Blob):
    tar: bytes = b""  # uncompressed
    compression: str = "none"  # none | gzip | zstd (what inspect reports)

    @classmethod
    def from_tar(cls, tar: bytes, compression: str = "gzip", flavor: str = "oci",
                 **compress_kwargs) -> "Layer":
        c = compression_of(compression)
        return cls(compress(tar, compression, **compress_kwargs), LAYER_MEDIA_TYPES[flavor][c],
                   tar=tar, compression=c)

    @classmethod
    def from_entries(cls, entries: Sequence[Entry], compression: str = "gzip",
                     flavor: str = "oci", **kw) -> "Layer":
        return cls.from_tar(make_tar(entries), compression, flavor, **kw)

    @property
    def diff_id(self) -> str:
        return sha256(self.tar)


@dataclass
class Image:
    """One platform's image: config + layers; `flavor` "oci" or "docker" picks media types."""

    layers: list[Layer]
    flavor: str = "oci"
    platform: str = "linux/amd64"
    annotations: dict | None = None
    config_extra: dict = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        return OCI_MANIFEST if self.flavor == "oci" else DOCKER_MANIFEST

    @property
    def config(self) -> Blob:
        os_, arch, *variant = self.platform.split("/")
        cfg = {"architecture": arch, "os": os_, "config": {},
               "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in self.layers]}}
        if variant:
            cfg["variant"] = variant[0]
        cfg.update(self.config_extra)
        return Blob(canonical_json(cfg), OCI_CONFIG if self.flavor == "oci" else DOCKER_CONFIG)

    @property
    def manifest(self) -> bytes:
        m = {"schemaVersion": 2, "mediaType": self.media_type,
             "config": self.config.descriptor(), "layers": [l.descriptor() for l in self.layers]}
        if self.annotations:
            m["annotations"] = self.annotations
        return json.dumps(m, indent=2, sort_keys=True).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]

    def descriptor(self) -> dict:
        os_, arch, *variant = self.platform.split("/")
        plat = {"architecture": arch, "os": os_}
        if variant:
            plat["variant"] = variant[0]
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest),
                "platform": plat}


@dataclass
class Index:
    """A multi-platform index (OCI) / manifest list (Docker) of Images."""

    images: list[Image]
    flavor: str = "oci"

    @property
    def media_type(self) -> str:
        return OCI_INDEX if self.flavor == "oci" else DOCKER_LIST

    @property
    def manifest(self) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": self.media_type,
                           "manifests": [i.descriptor() for i in self.images]},
                          indent=2, sort_keys=True).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def containerdisk(disk: bytes, compression: str = "gzip", name: str = "disk.img",
                  flavor: str = "oci", platform: str = "linux/amd64", uid: int = 107,
                  **compress_kwargs) -> Image:
    """A KubeVirt containerDisk: one layer with `disk/` and `disk/<name>` (0644, uid 107).
    compress_kwargs go to compress() (frame_size=..., say)."""
    tar = make_tar([Dir("disk", 0o755, uid, uid), File(f"disk/{name}", disk, 0o644, uid, uid)])
    return Image([Layer.from_tar(tar, compression, flavor, **compress_kwargs)], flavor, platform)


def push_containerdisk(registry, repo: str, disk: bytes, compression: str = "gzip", tag: str = "v1",
                       **kwargs) -> tuple[str, Image]:
    """containerdisk(disk, compression, **kwargs) pushed as repo:tag; returns (its reference, it)."""
    img = containerdisk(disk, compression, **kwargs)
    push(registry, repo, tag, img)
    return registry.ref(repo, tag), img


# --------------------------------------------------------------------------- push / layout


def push(registry, repo: str, tag: str | None, obj: Image | Index, creds=True) -> str:
    """Pushes an Image or Index through the registry HTTP API; returns the manifest digest.

    `registry` is a support.registry.Registry (or a RegistryClient). creds=True
    uses the registry's first user, None anonymous, or a (user, password) pair.
    An Index pushes its images by digest first. tag=None pushes by digest only.
    """
    client = registry.client(creds) if hasattr(registry, "client") else registry
    images = obj.images if isinstance(obj, Index) else [obj]
    for img in images:
        for blob in img.blobs():
            client.put_blob(repo, blob.data, blob.digest)
        if isinstance(obj, Index):
            client.put_manifest(repo, img.digest, img.manifest, img.media_type)
    digest = client.put_manifest(repo, tag or obj.digest, obj.manifest, obj.media_type)
    assert digest == obj.digest, f"registry computed {digest}, we {obj.digest}"
    return digest


def write_oci_layout(directory: Path | str, obj: Image | Index, tag: str | None = "latest") -> Path:
    """Writes (or adds to) an OCI image layout directory; `oci:DIR:tag` names the image."""
    d = Path(directory)
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (d / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    images = obj.images if isinstance(obj, Index) else [obj]

    def put(data: bytes):
        (blobs / sha256(data).split(":", 1)[1]).write_bytes(data)

    for img in images:
        for b in img.blobs():
            put(b.data)
        put(img.manifest)
    put(obj.manifest)
    index_path = d / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else \
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    desc = {"mediaType": obj.media_type, "digest": obj.digest, "size": len(obj.manifest)}
    if tag:
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append(desc)
    index_path.write_text(json.dumps(index, indent=2))
    return d


def skopeo_copy(src: str, dst: str, *extra: str, timeout: float = 60) -> None:
    """`skopeo copy` for interop checks (e.g. "oci:DIR:tag" -> "docker://HOST/repo:tag").
    Note: skopeo re-compresses uncompressed layers; use push() for exact bytes."""
    if not shutil.which("skopeo"):
        raise RuntimeError("skopeo not installed")
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", *extra, src, dst],
                   check=True, capture_output=True, timeout=timeout)
