"""`oci-fs inspect | ls | cat` against a real docker-registry (docs/cli.md), anonymous.

Images are built and pushed by the harness (tests/support); the plain-HTTP
registry is reached with --tls-verify=false. TLS and auth: test_registry_auth.py.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from support import images
from support.cli_output import parse_inspect, parse_ls, ls_paths
from support.images import Dir, File, Hardlink, Image, Index, Layer, Opaque, Symlink, Whiteout
from support.registry import free_port


def disk_bytes(size: int, seed: int) -> bytes:
    """Half random, half compressible, not a multiple of 512: a disk that shows off-by-ones."""
    rnd = os.urandom(size // 2)
    return rnd + bytes((i * seed) & 0xFF for i in range(size - len(rnd)))


@pytest.fixture
def cli(ocifs, registry, workdir):
    """oci-fs SUBCOMMAND ARGS... with --tls-verify=false (plain HTTP) and a per-test cache."""
    cache = workdir / "cache"

    def run(sub, *args, check=True, **kw):
        return ocifs(sub, "--tls-verify=false", "--cache-dir", cache, *args, check=check, **kw)
    return run


COMPRESSIONS = ["gzip", "none", "zstd", "zstd-multiframe"]


@pytest.fixture(scope="module")
def containerdisks(registry):
    """One containerDisk per compression, pushed as t/disk-<kind>:v1."""
    out = {}
    for i, kind in enumerate(COMPRESSIONS):
        disk = disk_bytes(1_500_001 + i, seed=i + 3)
        img = images.Image([images.Layer.from_tar(
            images.make_tar([Dir("disk", uid=107, gid=107),
                             File("disk/disk.img", disk, 0o644, 107, 107)]),
            kind, frame_size=256 * 1024)])
        repo = f"t/disk-{kind}"
        images.push(registry, repo, "v1", img)
        out[kind] = (repo, img, disk)
    return out


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_inspect_json_reports_the_pushed_manifest_digest_and_layers(cli, registry, containerdisks, kind):
    repo, img, _ = containerdisks[kind]
    doc = json.loads(cli("inspect", "--json", registry.ref(repo, "v1")).text)
    assert doc["digest"] == images.sha256(img.manifest)
    assert doc["mediaType"] == images.OCI_MANIFEST
    assert doc["platform"] == "linux/amd64"
    assert doc["reference"].startswith(registry.ref(repo, "v1"))
    assert doc["config"] == {"digest": img.config.digest, "size": img.config.size}
    layer = img.layers[0]
    assert doc["layers"] == [{"digest": layer.digest, "size": layer.size,
                              "mediaType": layer.media_type,
                              "compression": images.compression_of(kind)}]


def test_inspect_text_prints_key_value_lines_and_one_line_per_layer(cli, registry, containerdisks):
    repo, img, _ = containerdisks["zstd"]
    fields = parse_inspect(cli("inspect", registry.ref(repo, "v1")).text)
    assert fields["Digest"] == img.digest
    assert fields["MediaType"] == images.OCI_MANIFEST
    assert fields["Platform"] == "linux/amd64"
    assert fields["Config"] == img.config.digest
    assert fields["Reference"].startswith(registry.ref(repo, "v1"))
    assert fields["Layers"] == [(img.layers[0].digest, img.layers[0].size, "zstd")]


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_ls_lists_the_disk_directory_and_the_disk_file(cli, registry, containerdisks, kind):
    repo, _, disk = containerdisks[kind]
    out = cli("ls", registry.ref(repo, "v1")).text
    assert out.splitlines() == ["drwxr-xr-x 0 /disk", f"-rw-r--r-- {len(disk)} /disk/disk.img"]


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_cat_writes_exactly_the_bytes_of_the_file(cli, registry, containerdisks, kind):
    repo, _, disk = containerdisks[kind]
    out = cli("cat", registry.ref(repo, "v1"), "/disk/disk.img").stdout
    assert len(out) == len(disk)
    assert out == disk


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_second_cat_with_a_warm_cache_fetches_no_layer_bytes_and_warns_nothing(
        cli, registry, containerdisks, kind):
    repo, img, disk = containerdisks[kind]
    layer = img.layers[0].digest

    def layer_bytes():
        return sum(r.written for r in registry.blob_gets(repo) if r.digest == layer)
    first = cli("cat", registry.ref(repo, "v1"), "/disk/disk.img")
    assert first.stdout == disk
    fetched = layer_bytes()
    second = cli("cat", registry.ref(repo, "v1"), "/disk/disk.img")
    assert second.stdout == disk
    assert "warn" not in second.stderr.lower(), second.stderr
    assert layer_bytes() == fetched


def test_a_reference_by_digest_and_the_docker_prefix_name_the_same_image(cli, registry, containerdisks):
    repo, img, disk = containerdisks["gzip"]
    for ref in (registry.ref(repo, digest=img.digest), f"docker://{registry.ref(repo, 'v1')}",
                f"{registry.ref(repo, 'v1')}@{img.digest}"):
        assert json.loads(cli("inspect", "--json", ref).text)["digest"] == img.digest, ref
    assert cli("cat", f"docker://{registry.ref(repo, 'v1')}", "disk/disk.img").stdout == disk


def test_docker_v2_schema2_media_types_are_read(cli, registry, repo):
    disk = disk_bytes(300_000, 7)
    img = images.containerdisk(disk, "gzip", flavor="docker")
    images.push(registry, repo, "v1", img)
    doc = json.loads(cli("inspect", "--json", registry.ref(repo, "v1")).text)
    assert doc["digest"] == img.digest
    assert doc["mediaType"] == images.DOCKER_MANIFEST
    assert doc["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert doc["layers"][0]["compression"] == "gzip"
    assert cli("cat", registry.ref(repo, "v1"), "/disk/disk.img").stdout == disk


@pytest.fixture
def rich_image(registry, repo):
    """Symlinks, hardlinks, a long name, nested directories, in one gzip layer."""
    long_name = "deep/" + "n" * 120 + "/" + "f" * 110 + ".txt"
    entries = [Dir("usr"), Dir("usr/bin"), File("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
               Symlink("bin", "usr/bin"), Dir("etc"), File("etc/os-release", b"ID=test\n"),
               Symlink("etc/link", "os-release"), Hardlink("etc/hard", "etc/os-release"),
               Dir("deep"), Dir("deep/" + "n" * 120), File(long_name, b"long\n")]
    img = Image([Layer.from_entries(entries, "gzip")])
    images.push(registry, repo, "v1", img)
    return registry.ref(repo, "v1"), long_name


def test_ls_sorts_by_path_and_shows_symlink_targets(cli, rich_image):
    ref, long_name = rich_image
    entries = parse_ls(cli("ls", ref).text)
    paths = [e.path for e in entries]
    assert paths == sorted(paths)
    by = {e.path: e for e in entries}
    assert by["/bin"] == parse_ls("lrwxrwxrwx 7 /bin -> usr/bin")[0]
    assert by["/usr/bin/tool"].mode == "-rwxr-xr-x" and by["/usr/bin/tool"].size == 18
    assert by["/etc/hard"].mode.startswith("-") and by["/etc/hard"].size == 8
    assert "/" + long_name in by


def test_ls_below_a_path_lists_only_that_subtree(cli, rich_image):
    ref, _ = rich_image
    assert ls_paths(cli("ls", ref, "/etc").text) == ["/etc", "/etc/hard", "/etc/link", "/etc/os-release"]


def test_cat_follows_symlinks_and_hardlinks_and_long_names(cli, rich_image):
    ref, long_name = rich_image
    assert cli("cat", ref, "/bin/tool").stdout == b"#!/bin/sh\necho hi\n"
    assert cli("cat", ref, "/etc/link").stdout == b"ID=test\n"
    assert cli("cat", ref, "/etc/hard").stdout == b"ID=test\n"
    assert cli("cat", ref, "/" + long_name).stdout == b"long\n"


def test_cat_of_a_directory_or_a_missing_file_fails(cli, rich_image):
    ref, _ = rich_image
    for path in ("/etc", "/etc/nope"):
        res = cli("cat", ref, path, check=False)
        assert res.returncode != 0 and res.stdout == b""
        assert "oci-fs: " in res.stderr and path.lstrip("/") in res.stderr


def test_layers_merge_with_whiteouts_and_opaque_directories(cli, registry, repo):
    lower = Layer.from_entries([Dir("a"), File("a/keep", b"keep"), File("a/gone", b"gone"),
                                File("a/over", b"old"), Dir("b"), File("b/old", b"old"),
                                Dir("b/sub"), File("b/sub/deep", b"deep"), Dir("c"),
                                File("c/file", b"c")], "gzip")
    upper = Layer.from_entries([Dir("a"), Whiteout("a/gone"), File("a/over", b"new!"),
                                Dir("b"), Opaque("b"), File("b/new", b"new"), Whiteout("c")], "zstd")
    images.push(registry, repo, "v1", Image([lower, upper]))
    ref = registry.ref(repo, "v1")
    assert ls_paths(cli("ls", ref).text) == ["/a", "/a/keep", "/a/over", "/b", "/b/new"]
    assert cli("cat", ref, "/a/keep").stdout == b"keep"
    assert cli("cat", ref, "/a/over").stdout == b"new!"
    for hidden in ("/a/gone", "/b/old", "/b/sub/deep", "/c/file"):
        res = cli("cat", ref, hidden, check=False)
        assert res.returncode != 0 and res.stdout == b"", hidden


def test_an_oci_layout_directory_is_read_without_a_registry(ocifs, workdir):
    disk = disk_bytes(200_000, 5)
    img = images.containerdisk(disk, "zstd")
    other = images.containerdisk(b"other", "gzip")
    layout = workdir / "layout"
    images.write_oci_layout(layout, other, "v0")
    images.write_oci_layout(layout, img, "v1")
    cache = ["--cache-dir", workdir / "cache"]
    doc = json.loads(ocifs("inspect", "--json", f"oci:{layout}:v1").text)
    assert doc["digest"] == img.digest
    assert doc["layers"][0]["compression"] == "zstd"
    assert ocifs("cat", *cache, f"oci:{layout}:v1", "/disk/disk.img").stdout == disk
    assert ocifs("cat", *cache, f"oci:{layout}:v0", "/disk/disk.img").stdout == b"other"


@pytest.fixture
def multiarch(registry, repo):
    amd = images.containerdisk(b"amd64 disk", "gzip", platform="linux/amd64")
    arm = images.containerdisk(b"arm64 disk", "gzip", platform="linux/arm64")
    idx = Index([arm, amd])
    images.push(registry, repo, "multi", idx)
    return registry.ref(repo, "multi"), idx, amd, arm


def test_platform_picks_the_image_of_a_multi_platform_index(cli, multiarch):
    ref, idx, amd, arm = multiarch
    doc = json.loads(cli("inspect", "--json", "--platform", "linux/arm64", ref).text)
    assert doc["digest"] == arm.digest and doc["platform"] == "linux/arm64"
    assert cli("cat", "--platform", "linux/arm64", ref, "/disk/disk.img").stdout == b"arm64 disk"


def test_the_default_platform_is_linux_amd64(cli, multiarch):
    ref, idx, amd, arm = multiarch
    doc = json.loads(cli("inspect", "--json", ref).text)
    assert doc["digest"] == amd.digest and doc["platform"] == "linux/amd64"
    assert cli("cat", ref, "/disk/disk.img").stdout == b"amd64 disk"


def test_a_missing_platform_fails_listing_the_platforms_present(cli, multiarch):
    ref = multiarch[0]
    res = cli("inspect", "--platform", "linux/s390x", ref, check=False)
    assert res.returncode != 0
    assert "linux/s390x" in res.stderr
    assert "linux/amd64" in res.stderr and "linux/arm64" in res.stderr


def test_a_docker_manifest_list_is_resolved_by_platform(cli, registry, repo):
    amd = images.containerdisk(b"amd", "gzip", flavor="docker")
    arm = images.containerdisk(b"arm", "gzip", flavor="docker", platform="linux/arm64")
    images.push(registry, repo, "v1", Index([amd, arm], flavor="docker"))
    ref = registry.ref(repo, "v1")
    assert cli("cat", "--platform", "linux/arm64", ref, "/disk/disk.img").stdout == b"arm"
    assert json.loads(cli("inspect", "--json", ref).text)["digest"] == amd.digest


def _tamper_manifest(registry, repo):
    """Pushes an image, then rewrites its stored manifest: same digest, other bytes."""
    img = images.containerdisk(b"disk", "gzip")
    images.push(registry, repo, "v1", img)
    registry.tamper_blob(img.digest, img.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":2'))
    return img


def _assert_digest_mismatch(res):
    assert res.returncode != 0
    msg = res.stderr.lower()
    assert "digest" in msg and "mismatch" in msg, res.stderr


def test_a_manifest_whose_bytes_do_not_match_the_digest_asked_for_is_refused(cli, registry, repo):
    img = _tamper_manifest(registry, repo)
    _assert_digest_mismatch(cli("inspect", registry.ref(repo, digest=img.digest), check=False))


def test_a_tagged_manifest_whose_bytes_do_not_match_docker_content_digest_is_refused(cli, registry, repo):
    _tamper_manifest(registry, repo)
    _assert_digest_mismatch(cli("inspect", registry.ref(repo, "v1"), check=False))


def test_an_unreachable_registry_fails_quickly_naming_the_host(cli):
    host = f"127.0.0.1:{free_port()}"
    t = time.monotonic()
    res = cli("inspect", f"{host}/x:y", check=False, timeout=30)
    assert res.returncode != 0
    assert time.monotonic() - t < 15
    assert host in res.stderr


@pytest.mark.parametrize("what", ["tag", "repository", "digest"])
def test_an_unknown_manifest_is_reported_as_not_found(cli, registry, containerdisks, what):
    repo, img, _ = containerdisks["gzip"]
    ref = {"tag": registry.ref(repo, "nope"), "repository": registry.ref("t/never-pushed", "v1"),
           "digest": registry.ref(repo, digest="sha256:" + "ab" * 32)}[what]
    res = cli("inspect", ref, check=False)
    assert res.returncode != 0
    assert "oci-fs: " in res.stderr
    msg = res.stderr.lower()
    assert "not found" in msg or "unknown" in msg, res.stderr
