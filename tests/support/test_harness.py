"""Tests of the harness itself: every registry flavour starts, takes a push, serves
blobs, counts requests; token auth refuses bad credentials; images are exact."""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from support import images, processes
from support.images import Dir, File, Hardlink, Index, Opaque, Symlink, Whiteout
from support.registry import Registry, free_port


def _small_image(flavor="oci", compression="gzip"):
    return images.containerdisk(os.urandom(3000) + b"end", compression, flavor=flavor)


def _pull_blob_with_urllib(reg, repo, digest, creds=None) -> bytes:
    return reg.client(creds).get_blob(repo, digest).body


def test_an_anonymous_registry_takes_a_push_and_serves_the_exact_blob(registry, repo):
    img = _small_image()
    digest = images.push(registry, repo, "v1", img)
    assert digest == img.digest
    layer = img.layers[0]
    with urllib.request.urlopen(f"{registry.url}/v2/{repo}/blobs/{layer.digest}") as r:
        assert r.read() == layer.data
    got = registry.client().get_manifest(repo, "v1")
    assert got.body == img.manifest
    assert got.headers["docker-content-digest"] == img.digest


def test_the_request_log_counts_blob_gets_and_bytes(registry, repo):
    img = _small_image()
    images.push(registry, repo, "v1", img)
    before = registry.blob_gets(repo)
    layer = img.layers[0]
    registry.client().get_blob(repo, layer.digest)
    registry.client().get_blob(repo, layer.digest, byte_range=(10, 19))
    gets = registry.blob_gets(repo)[len(before):]
    assert [(g.status, g.written) for g in gets] == [(200, layer.size), (206, 10)]
    assert all(g.digest == layer.digest for g in gets)


def test_a_tls_registry_is_trusted_only_with_the_test_ca(tls_registry, repo):
    assert tls_registry.url.startswith("https://")
    img = _small_image()
    images.push(tls_registry, repo, "v1", img)
    assert _pull_blob_with_urllib(tls_registry, repo, img.config.digest) == img.config.data
    with pytest.raises(urllib.error.URLError) as e:
        urllib.request.urlopen(f"{tls_registry.url}/v2/", context=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
    assert (tls_registry.cert_dir / "ca.crt").read_bytes() == tls_registry.ca_cert_path.read_bytes()


def test_an_htpasswd_registry_needs_the_password(htpasswd_registry, repo):
    img = _small_image()
    images.push(htpasswd_registry, repo, "v1", img)
    assert _pull_blob_with_urllib(htpasswd_registry, repo, img.config.digest, True) == img.config.data
    anon = htpasswd_registry.client(None).get_blob(repo, img.config.digest)
    assert anon.status == 401
    wrong = htpasswd_registry.client(("tester", "wrong")).get_blob(repo, img.config.digest)
    assert wrong.status == 401


def test_htpasswd_without_tls_is_refused_by_the_harness(pki, workdir):
    with pytest.raises(ValueError, match="TLS"):
        Registry(workdir, pki=pki, auth="htpasswd")


def test_a_token_registry_serves_with_a_token_and_refuses_bad_credentials(token_registry, repo):
    img = _small_image()
    images.push(token_registry, repo, "v1", img)
    ts = token_registry.token_server
    n = ts.tokens_issued()
    assert _pull_blob_with_urllib(token_registry, repo, img.config.digest, True) == img.config.data
    assert ts.tokens_issued() == n + 1
    with pytest.raises(PermissionError, match="401"):
        token_registry.client(("tester", "wrong")).get_blob(repo, img.config.digest)
    with pytest.raises(PermissionError, match="401"):
        token_registry.client(None).get_blob(repo, img.config.digest)
    assert [r.reason for r in ts.refused[-2:]] == ["wrong credentials", "credentials required"]


def test_an_anonymous_token_grants_pull_but_not_push(make_registry, repo):
    reg = make_registry(auth="token", anonymous=True)
    img = _small_image()
    images.push(reg, repo, "v1", img)
    anon = reg.client(None)
    assert anon.get_blob(repo, img.layers[0].digest).body == img.layers[0].data
    with pytest.raises(RuntimeError, match="401"):
        images.push(anon, repo, "v2", _small_image())


def test_a_tls_token_registry_with_client_certificates(make_registry, repo):
    reg = make_registry(tls=True, auth="token", client_cert=True)
    assert sorted(os.listdir(reg.cert_dir)) == ["ca.crt", "client.cert", "client.key"]
    img = _small_image()
    images.push(reg, repo, "v1", img)
    assert reg.client().get_blob(repo, img.config.digest).body == img.config.data
    no_client_cert = ssl.create_default_context(cafile=str(reg.ca_cert_path))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(f"{reg.url}/v2/", context=no_client_cert, timeout=5).read()


def test_a_registry_starts_in_under_a_second_and_leaves_no_process(workdir):
    t = time.monotonic()
    with Registry(workdir) as reg:
        pid = reg._proc.pid
        assert time.monotonic() - t < 1.5
    assert processes.wait_pid_gone(pid, 2)


def test_a_tampered_manifest_is_served_with_its_old_digest(registry, repo):
    img = _small_image()
    images.push(registry, repo, "v1", img)
    registry.tamper_blob(img.digest, img.manifest + b"\n ")
    got = registry.client().get_manifest(repo, img.digest)
    assert got.status == 200 and got.body != img.manifest
    assert images.sha256(got.body) != img.digest


def test_a_multi_platform_index_round_trips(registry, repo):
    amd, arm = _small_image(), images.containerdisk(b"arm", "none", platform="linux/arm64/v8")
    idx = Index([amd, arm])
    assert images.push(registry, repo, "multi", idx) == idx.digest
    body = registry.client().get_manifest(repo, "multi").json()
    assert [m["platform"]["architecture"] for m in body["manifests"]] == ["amd64", "arm64"]
    assert body["manifests"][1]["platform"]["variant"] == "v8"


def test_a_docker_manifest_list_round_trips(registry, repo):
    idx = Index([_small_image("docker"), images.containerdisk(b"x", "gzip", flavor="docker",
                                                              platform="linux/arm64")], "docker")
    images.push(registry, repo, "multi", idx)
    got = registry.client().get_manifest(repo, "multi")
    assert got.headers["content-type"] == images.DOCKER_LIST


def test_tars_are_deterministic_and_hold_every_entry_kind():
    long = "d/" + "x" * 150
    entries = [Dir("d"), File("d/f", b"hi", 0o600), Symlink("d/s", "f"), Hardlink("d/h", "d/f"),
               Whiteout("d/gone"), Opaque("o"), File(long, b"L")]
    tar = images.make_tar(entries)
    assert tar == images.make_tar(entries)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        by = {m.name: m for m in tf.getmembers()}
        assert by["d/f"].mode == 0o600 and tf.extractfile("d/f").read() == b"hi"
        assert by["d/s"].issym() and by["d/s"].linkname == "f"
        assert by["d/h"].islnk() and by["d/h"].linkname == "d/f"
        assert "d/.wh.gone" in by and "o/.wh..wh..opq" in by
        assert long in by and by[long].mtime == images.MTIME


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd", "zstd-multiframe"])
def test_compression_round_trips(kind):
    data = os.urandom(100_000) * 3
    packed = images.compress(data, kind, frame_size=65536)
    if kind == "none":
        assert packed == data
        return
    tool = ["gzip", "-dc"] if kind == "gzip" else ["zstd", "-dc"]
    assert subprocess.run(tool, input=packed, capture_output=True, check=True).stdout == data
    if kind == "zstd-multiframe":
        assert packed.count(b"\x28\xb5\x2f\xfd") >= 5  # one magic per 64 KiB frame


def test_an_oci_layout_names_the_image_by_tag(workdir):
    img = _small_image(compression="zstd")
    layout = images.write_oci_layout(workdir / "layout", img, "v1")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == img.digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    blob = layout / "blobs/sha256" / img.layers[0].digest.split(":")[1]
    assert blob.read_bytes() == img.layers[0].data
    assert img.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar+zstd"


def test_skopeo_reads_what_the_harness_pushes(registry, repo, workdir):
    img = _small_image(compression="gzip")
    images.push(registry, repo, "v1", img)
    images.skopeo_copy(f"docker://{registry.ref(repo, 'v1')}", f"oci:{workdir / 'copy'}:v1",
                       "--src-tls-verify=false")
    blob = workdir / "copy/blobs/sha256" / img.layers[0].digest.split(":")[1]
    assert blob.read_bytes() == img.layers[0].data


def test_run_ocifs_kills_a_command_that_hangs_and_its_children(monkeypatch, workdir):
    fake = workdir / "oci-fs"
    fake.write_text("#!/bin/sh\nsleep 31.5 &\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OCIFS_BIN", str(fake))
    t = time.monotonic()
    with pytest.raises(processes.OcifsError, match="did not finish"):
        processes.run_ocifs("ls", timeout=1)
    assert time.monotonic() - t < 5
    time.sleep(0.1)
    assert processes.find_processes("/usr/bin/sleep", "31.5") == []


def test_run_ocifs_isolates_the_environment(monkeypatch, workdir):
    fake = workdir / "oci-fs"
    fake.write_text('#!/bin/sh\necho "HOME=$HOME AUTH=${REGISTRY_AUTH_FILE:-unset}"\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("OCIFS_BIN", str(fake))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", "/root/.secret")
    res = processes.run_ocifs("inspect", check=False)
    assert res.returncode == 3
    assert "AUTH=unset" in res.text and str(processes.test_root()) in res.text
    res = processes.run_ocifs("inspect", check=False, env={"REGISTRY_AUTH_FILE": "/a"})
    assert "AUTH=/a" in res.text


def test_a_closed_port_refuses_connections():
    port = free_port()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
