"""The acceleration artifact (docs/accel-format.md): `oci-fs accelerate` pushes a
gzip layer's checkpoint index next to the image, and a mount on a fresh cache
uses it from its first read instead of reading the layer from its start.

Fetches are counted by the registry's request log. Every read is compared with
the disk's bytes: an artifact changes what is fetched, never what is read.
"""

from __future__ import annotations

import json
import random
import struct
import zlib

import pytest

from support import images
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, echo_disk, read_plan
from support.images import Image, sha256
from support.processes import Mount

TLS = "--tls-verify=false"
ARTIFACT_TYPE = "application/vnd.oci-fs.accel.v1"
GZIP_INDEX = "application/vnd.oci-fs.gzip-index.v4"  # what accelerate pushes: table first, read lazily
GZIP_INDEX_V3 = "application/vnd.oci-fs.gzip-index.v3"  # what older versions pushed: fetched whole
V4_HEADER, V4_RECORD = 76, 40


def layer_bytes(registry, img: Image) -> int:
    """Bytes the registry served oci-fs (which sends no User-Agent) for the image's layer
    blobs so far: the test's own GETs (urllib's) are left out, however late they are logged."""
    digests = {l.digest for l in img.layers}
    return sum(r.written for r in registry.blob_gets() if r.digest in digests and not r.useragent)


def accelerate(ocifs, ref: str, *args: str) -> str:
    """Runs `oci-fs accelerate`; returns the artifact reference it prints."""
    out = ocifs("accelerate", TLS, ref, *args, timeout=300).stdout.decode().strip()
    assert "@sha256:" in out, out
    return out.splitlines()[-1]


def fallback_index(registry, repo: str, subject: str) -> dict:
    r = registry.client().get_manifest(repo, subject.replace(":", "-"), accept="application/vnd.oci.image.index.v1+json")
    assert r.status == 200, r.status
    return r.json()


@pytest.mark.parametrize("compression", ["gzip", "zstd-multiframe", "zstd"])
def test_a_first_mount_with_the_artifact_reads_the_end_of_a_compressed_disk_without_the_whole_layer(
        compression, ocifs, registry, repo, workdir):
    data = disk_bytes(64 * MiB, seed=61)
    ref, img = images.push_containerdisk(registry, repo, data, compression)
    layer = img.layers[0]

    # Without an artifact, a fresh mount reads the layer from its start to reach its end
    # (gzip and single-frame zstd: its first pass; zstd of several frames without a seek table: the walk
    # of its frames).
    before = layer_bytes(registry, img)
    with Mount(ref, workdir / "plain", TLS, "--accel=off", cache_dir=workdir / "cache-plain") as m:
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - MiB, MiB)])
    without = layer_bytes(registry, img) - before
    assert without >= layer.size * 9 // 10, (without, layer.size)

    artifact = accelerate(ocifs, ref)
    assert artifact.startswith(f"{registry.host}/{repo}@sha256:")
    digest = artifact.split("@", 1)[1]
    listed = fallback_index(registry, repo, img.digest)["manifests"]
    assert [d["digest"] for d in listed] == [digest]
    assert listed[0]["artifactType"] == ARTIFACT_TYPE

    before = layer_bytes(registry, img)
    with Mount(ref, workdir / "accel", TLS, cache_dir=workdir / "cache", stats=True) as m:
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - MiB, MiB)])
        first_read = layer_bytes(registry, img) - before
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=62, random_reads=20))
    # The last MiB: its checkpoint span (or frames) and the chunks around it, not the layer.
    assert first_read <= 8 * MiB, (first_read, layer.size)
    assert first_read * 4 < without


def blob_bytes_of(registry, digest: str) -> int:
    """Bytes of blob `digest` the registry served oci-fs (as layer_bytes)."""
    return sum(r.written for r in registry.blob_gets() if r.digest == digest and not r.useragent)


def test_a_mount_with_the_artifact_fetches_the_index_table_and_the_windows_it_needs_not_the_whole_index(
        ocifs, registry, repo, workdir):
    data = echo_disk(64 * MiB, seed=81)  # the data after a checkpoint copies ~16 KiB of its window
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    artifact = accelerate(ocifs, ref)
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    [piece] = [l for l in manifest["layers"] if l["mediaType"] == GZIP_INDEX]
    index = registry.client().get_blob(repo, piece["digest"]).body
    table = v4_table(index)
    assert table * 8 < len(index), (table, len(index))  # the windows are most of it
    before = blob_bytes_of(registry, piece["digest"])
    log = workdir / "mount.log"
    # 64 KiB chunks: the index blob is fetched by the chunk (the layer by its 1 MiB miss group).
    with Mount(ref, workdir / "m", TLS, "--chunk-size=64K", "--log-level=info", f"--log-file={log}",
               cache_dir=workdir / "cache", stats=True) as m:
        at_mount = blob_bytes_of(registry, piece["digest"]) - before
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - 3 * MiB, 4096)])
        first_read = blob_bytes_of(registry, piece["digest"]) - before
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=82, random_reads=20))
    # The table (in the first chunk) at mount; a window or two (their 64 KiB chunks, a window
    # possibly across a chunk's edge) for the first read: not the whole index.
    assert table <= at_mount <= 256 * 1024, (at_mount, table, len(index))
    assert first_read <= 3 * 64 * 1024 < len(index) // 3, (first_read, len(index))
    assert "lazily" in log.read_text()
    assert not list((workdir / "cache").rglob("*.gzidx"))  # no first pass ran, so none saved its index


def test_incompressible_data_gets_sparse_windows_and_dense_checkpoints_so_a_read_fetches_little(
        ocifs, registry, repo, workdir):
    data = disk_bytes(48 * MiB, seed=85)  # gzip copies almost nothing: windows nearly empty
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    artifact = accelerate(ocifs, ref)
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    [piece] = [l for l in manifest["layers"] if l["mediaType"] == GZIP_INDEX]
    index = registry.client().get_blob(repo, piece["digest"]).body
    records = list(v4_records(index))
    windows = [r for r in records if r[3] > 0]
    # A checkpoint about every 128 KiB of output (a regular index: every ~1 MiB).
    assert len(records) >= 48 * MiB // (256 * 1024), len(records)
    # Their 32 KiB windows, whole, would take ~32 KiB each; sparse, a few hundred bytes.
    assert sum(r[5] for r in windows) < len(windows) * 2048, (sum(r[5] for r in windows), len(windows))
    layer_before = layer_bytes(registry, img)
    with Mount(ref, workdir / "m", TLS, cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - 5 * MiB - 12345, 4096)])
        first_read = layer_bytes(registry, img) - layer_before
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=86, random_reads=20))
    # One short span and the 1 MiB chunks around it (queued beside the read), not a regular span.
    assert first_read <= 3 * MiB, first_read


def test_an_artifact_with_a_version_3_gzip_index_still_serves_exact_bytes(ocifs, registry, repo, workdir):
    data = disk_bytes(32 * MiB, seed=83)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    artifact = accelerate(ocifs, ref)
    push_artifact_like(registry, repo, artifact, as_version_3, new_media_type=GZIP_INDEX_V3)
    log = workdir / "mount.log"
    layer_before = layer_bytes(registry, img)
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", data, [(len(data) - MiB, MiB)])
        first_read = layer_bytes(registry, img) - layer_before
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=84, random_reads=20))
    text = log.read_text()
    assert "installed the gzip index" in text, text  # fetched whole, as before
    assert "is wrong" not in text, text
    assert first_read <= 8 * MiB, (first_read, img.layers[0].size)  # the last MiB's span, not the layer


def test_the_artifact_is_kept_in_the_cache_and_a_second_mount_asks_the_registry_nothing(
        ocifs, registry, repo, workdir):
    data = disk_bytes(8 * MiB, seed=63)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    accelerate(ocifs, ref)
    cache = workdir / "cache"
    with Mount(ref, workdir / "m1", TLS, cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, [(5 * MiB, 4096)])
    log_before = len(registry.request_log())
    with Mount(ref, workdir / "m2", TLS, cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, [(5 * MiB, 4096)])
    asked = [r.uri for r in registry.request_log()[log_before:]]
    assert not [u for u in asked if "referrers" in u or "sha256-" in u], asked


def test_inspect_shows_the_artifact(ocifs, registry, repo):
    data = disk_bytes(2 * MiB, seed=64)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    out = ocifs("inspect", TLS, ref).stdout.decode()
    assert "Accel: none" in out
    artifact = accelerate(ocifs, ref)
    out = ocifs("inspect", TLS, ref).stdout.decode()
    # A random disk: gzip stores most of it, so the artifact lists its stored blocks too.
    assert f"Accel: {artifact} (1 gzip index, 1 tar index, 1 raw span table, 0 profiles" in out
    j = json.loads(ocifs("inspect", TLS, "--json", ref).stdout)
    assert j["accel"]["reference"] == artifact
    assert j["accel"]["raw_span_tables"][0]["layer"] == img.layers[0].digest
    assert j["accel"]["indexes"][0]["layer"] == img.layers[0].digest
    assert j["accel"]["indexes"][0]["kind"] == "gzip index"
    assert j["accel"]["tar_indexes"][0]["layer"] == img.layers[0].digest


def phrase_disk(size: int, seed: int) -> bytes:
    """A compressible disk: 32 random 700-byte phrases in random order, so deflate
    refers back to them everywhere, across its checkpoints (into their windows)."""
    rng = random.Random(seed)
    phrases = [rng.randbytes(700) for _ in range(32)]
    out = bytearray()
    while len(out) < size:
        out += phrases[rng.randrange(32)]
    return bytes(out[:size])


def with_file_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def v4_table(index: bytes) -> int:
    """The length of a version 4 index's table (docs/gzip-index-format.md)."""
    assert struct.unpack_from("<I", index, 8)[0] == 4
    return struct.unpack_from("<Q", index, 68)[0]


def v4_records(index: bytes):
    """(position of the record, out, in, window_length, window offset, its length) per checkpoint."""
    count = struct.unpack_from("<Q", index, 40)[0]
    for i in range(count):
        pos = V4_HEADER + V4_RECORD * i
        out, in_, _bits, _kind, wlen, zoff, zlen = struct.unpack_from("<QQBBxxIQI", index, pos)
        yield pos, out, in_, wlen, zoff, zlen


def with_table_crc(index: bytes) -> bytes:
    table = v4_table(index)
    return with_file_crc(index[:table - 4]) + index[table:]


def spoil_a_window(index: bytes) -> bytes:
    """The version 4 index with its second checkpoint's window changed, its CRC-32
    and the table's made right again: it inflates to other bytes without any zlib
    error; only the checksums of the decoded layer can tell."""
    body = bytearray(index)
    for i, (pos, _out, _in, wlen, zoff, zlen) in enumerate(v4_records(index)):
        if i >= 1 and wlen:
            window = bytearray(zlib.decompress(index[zoff:zoff + zlen]))
            for k in range(0, len(window), 97):
                window[k] ^= 0x5A
            z = zlib.compress(bytes(window))
            # Appended at the end, the record pointed at it.
            struct.pack_into("<QII", body, pos + 24, len(body), len(z), zlib.crc32(z))
            return with_table_crc(bytes(body) + z)
    raise AssertionError("no checkpoint with a window")


def spoil_a_checksum(index: bytes) -> bytes:
    """The version 4 index with the CRC of the decoded block at 1.25 MiB (block 20 of
    64 KiB; accelerate writes 16 KiB blocks) changed (the checksums end its table,
    before the table's own CRC), the table's CRC made right again."""
    decompressed = struct.unpack_from("<Q", index, 24)[0]
    for size in (1 << k for k in range(12, 25)):  # the block size: 4 KiB..16 MiB
        blocks = -(-decompressed // size)
        section = v4_table(index) - 4 - 4 * blocks
        if struct.unpack_from("<IQ", index, section - 12) == (size, blocks):
            break
    else:
        raise AssertionError("no block checksums found")
    body = bytearray(index)
    body[section + 4 * (20 * 65536 // size)] ^= 0xFF
    return with_table_crc(bytes(body))


def as_version_3(index: bytes) -> bytes:
    """A version 4 index in the version 3 layout (windows after their records), as
    older oci-fs versions pushed it."""
    header = bytearray(index[:68])
    struct.pack_into("<I", header, 8, 3)
    out = bytes(header)
    records = list(v4_records(index))
    for pos, _out, _in, wlen, zoff, zlen in records:
        out += index[pos:pos + 24] + struct.pack("<I", zlen) + index[zoff:zoff + zlen]
    rest = index[V4_HEADER + V4_RECORD * len(records):v4_table(index) - 4]  # zero runs, checksums
    return with_file_crc(out + rest)


def push_artifact_like(registry, repo: str, artifact_ref: str, spoil, media_type: str = GZIP_INDEX,
                       new_media_type: str | None = None, drop: tuple[str, ...] = ()) -> str:
    """Pushes a copy of an artifact whose index piece of `media_type` is spoil(index)
    (of `new_media_type` if given; dropped if spoil is None), without its pieces of
    the media types `drop`, listed in the fallback tag as the newest; returns its digest."""
    client = registry.client()
    digest = artifact_ref.split("@", 1)[1]
    manifest = json.loads(client.get_manifest(repo, digest).body)
    manifest["layers"] = [p for p in manifest["layers"] if p["mediaType"] not in drop]
    piece = next(p for p in manifest["layers"] if p["mediaType"] == media_type)
    if spoil is None:
        manifest["layers"].remove(piece)
    else:
        index = client.get_blob(repo, piece["digest"]).body
        bad = spoil(index)
        piece["digest"] = client.put_blob(repo, bad)
        piece["size"] = len(bad)
    if new_media_type:
        piece["mediaType"] = new_media_type
    manifest["annotations"]["org.opencontainers.image.created"] = "2099-01-01T00:00:00Z"
    body = json.dumps(manifest).encode()
    new_digest = client.put_manifest(repo, sha256(body), body, manifest["mediaType"])
    subject = manifest["subject"]["digest"]
    tag = subject.replace(":", "-")
    index_doc = json.loads(client.get_manifest(repo, tag).body)
    index_doc["manifests"].append({"mediaType": manifest["mediaType"], "digest": new_digest, "size": len(body),
                                   "artifactType": ARTIFACT_TYPE,
                                   "annotations": {"org.opencontainers.image.created": "2099-01-01T00:00:00Z"}})
    client.put_manifest(repo, tag, json.dumps(index_doc).encode(), "application/vnd.oci.image.index.v1+json")
    return new_digest


@pytest.mark.parametrize("spoil", [spoil_a_window, spoil_a_checksum], ids=["window", "checksum"])
def test_a_tampered_index_still_reads_exact_bytes_and_is_logged_once(spoil, ocifs, registry, repo, workdir):
    data = phrase_disk(8 * MiB, seed=65)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    artifact = accelerate(ocifs, ref)
    push_artifact_like(registry, repo, artifact, spoil)
    log = workdir / "mount.log"
    cache = workdir / "cache"
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_reads_match(m.dir / "disk.img", data, read_plan(len(data), seed=66, random_reads=30))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    text = log.read_text()
    assert "reading the gzip index of layer" in text, text  # the spoilt artifact was the one used
    wrong = [l for l in text.splitlines() if "gzip index of" in l and "is wrong" in l]
    assert len(wrong) == 1, text
    # The mount's own first pass saved a good index in its place: a second mount reads it quietly.
    log.write_text("")
    with Mount(ref, workdir / "m2", TLS, "--log-level=info", f"--log-file={log}", cache_dir=cache) as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data)
    assert "is wrong" not in log.read_text()


def test_an_artifact_of_another_image_is_ignored(ocifs, registry, repo, workdir):
    data_a = disk_bytes(4 * MiB, seed=67)
    data_b = disk_bytes(4 * MiB, seed=68)
    ref_a, img_a = images.push_containerdisk(registry, repo, data_a, "gzip", tag="a")
    ref_b, img_b = images.push_containerdisk(registry, repo, data_b, "gzip", tag="b")
    artifact_a = accelerate(ocifs, ref_a)
    # B's fallback tag lists A's artifact (a registry or a client that got it wrong).
    client = registry.client()
    digest_a = artifact_a.split("@", 1)[1]
    body = client.get_manifest(repo, digest_a).body
    index_doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_a,
                                "size": len(body), "artifactType": ARTIFACT_TYPE}]}
    client.put_manifest(repo, img_b.digest.replace(":", "-"), json.dumps(index_doc).encode(),
                        "application/vnd.oci.image.index.v1+json")
    log = workdir / "mount.log"
    with Mount(ref_b, workdir / "m", TLS, f"--log-file={log}", cache_dir=workdir / "cache") as m:
        assert_same_bytes((m.dir / "disk.img").read_bytes(), data_b)
    assert f"is for the image manifest {img_a.digest}, not {img_b.digest}" in log.read_text()
    # Pinned, it is an error that says so.
    r = ocifs("mount", TLS, f"--accel={artifact_a}", f"--cache-dir={workdir / 'cache2'}", ref_b,
              workdir / "m", check=False)
    assert r.returncode != 0
    assert f"is for the image manifest {img_a.digest}" in r.stderr


def index_checkpoint_ins(registry, repo: str, artifact: str) -> list[int]:
    """The compressed offsets (`in`) of the checkpoints of the artifact's gzip index."""
    client = registry.client()
    manifest = client.get_manifest(repo, artifact.split("@", 1)[1]).json()
    [piece] = [l for l in manifest["layers"] if l["mediaType"] == GZIP_INDEX]
    index = client.get_blob(repo, piece["digest"]).body
    return [in_ for _pos, _out, in_, _wlen, _zoff, _zlen in v4_records(index)]


def test_a_profile_given_to_accelerate_adds_checkpoints_around_its_regions(ocifs, registry, repo, workdir):
    data = disk_bytes(32 * MiB, seed=71)
    ref, img = images.push_containerdisk(registry, repo, data, "gzip")
    layer = img.layers[0]
    plain = index_checkpoint_ins(registry, repo, accelerate(ocifs, ref))
    profile = workdir / "boot.profile"
    profile.write_text(f"oci-fs-profile 1\nchunk-size 65536\nblob {layer.digest} 6\n100\n40-42\n200\n300\n")
    artifact = accelerate(ocifs, ref, "--profile", str(profile))
    ins = index_checkpoint_ins(registry, repo, artifact)
    assert len(ins) > len(plain), (len(ins), len(plain))
    chunk = 65536
    for first, last in [(40, 42), (100, 100), (200, 200), (300, 300)]:
        start, end = first * chunk, (last + 1) * chunk
        # Just before the region (at most a 64 KiB checksum block of output and a deflate
        # block earlier), and at the first block boundary after it.
        assert [i for i in ins if start - 3 * chunk < i <= start], (start, ins)
        assert [i for i in ins if end <= i < end + 2 * chunk], (end, ins)
    # A fresh node reads through it exactly.
    with Mount(ref, workdir / "m", TLS, "--prefetch-profile=none", cache_dir=workdir / "cache") as m:
        regions = [(c * chunk - 4096, 3 * chunk) for c in (40, 100, 200, 300)]
        assert_reads_match(m.dir / "disk.img", data, regions + read_plan(len(data), seed=72, random_reads=20))


def test_all_platforms_pushes_one_artifact_per_platform_of_an_index(ocifs, registry, repo, workdir):
    data = {p: disk_bytes(24 * MiB, seed=s) for p, s in (("linux/amd64", 91), ("linux/arm64", 92))}
    imgs = {p: images.containerdisk(d, "gzip", platform=p) for p, d in data.items()}
    images.push(registry, repo, "multi", images.Index([imgs["linux/arm64"], imgs["linux/amd64"]]))
    ref = registry.ref(repo, "multi")
    out = ocifs("accelerate", TLS, "--all-platforms", ref, timeout=300).stdout.decode().split()
    artifacts = [line for line in out if "@sha256:" in line]
    assert len(artifacts) == 2, out  # in index order: arm64, then amd64
    for platform, artifact in zip(["linux/arm64", "linux/amd64"], artifacts):
        img = imgs[platform]
        # Each artifact's subject is its platform's manifest, listed in that manifest's fallback tag.
        listed = fallback_index(registry, repo, img.digest)["manifests"]
        assert [d["digest"] for d in listed] == [artifact.split("@", 1)[1]]
        # A mount of that platform on a fresh node uses it: the end of the disk without the layer.
        before = layer_bytes(registry, img)
        name = platform.replace("/", "-")
        log = workdir / f"{name}.log"
        with Mount(ref, workdir / name, TLS, f"--platform={platform}", "--log-level=info", f"--log-file={log}",
                   cache_dir=workdir / f"cache-{name}") as m:
            assert_reads_match(m.dir / "disk.img", data[platform], [(len(data[platform]) - MiB, MiB)])
        assert f"reading the gzip index of layer {img.layers[0].digest} lazily" in log.read_text()
        assert layer_bytes(registry, img) - before < img.layers[0].size // 3
    r = ocifs("accelerate", TLS, "--all-platforms", "--platform=linux/amd64", ref, check=False)
    assert r.returncode != 0 and "exclude each other" in r.stderr, r.describe()
