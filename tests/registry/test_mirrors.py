"""registries.conf mirrors, rewrites and blocks, and HTTP(S)_PROXY (docs/operations.md).

The mirror is a real pull-through cache: Debian's docker-registry in proxy
mode (`proxy: remoteurl:`) in front of another docker-registry. Which of the
two oci-fs asked is told apart by the User-Agent in the upstream's log:
oci-fs (libcurl) sends none, the mirror's Go client does.
"""

from __future__ import annotations

import os
import time

import pytest

from support import images
from support.fault_proxy import FaultProxy
from support.processes import Mount

DISK_SIZE = 6 * 1024 * 1024 + 12345
# Fetch only what a read asks for: no read-ahead, profile, artifact lookup or stream pass.
QUIET = ("--readahead", "0", "--accel", "off", "--prefetch-profile", "none", "--miss-fetch", "chunk")


@pytest.fixture
def upstream(make_registry):
    return make_registry()


@pytest.fixture
def mirror(make_registry, upstream):
    return make_registry(proxy_remote=upstream.url)


@pytest.fixture
def pushed(upstream, repo):
    disk = os.urandom(DISK_SIZE)
    ref, _ = images.push_containerdisk(upstream, repo, disk, compression="none")
    return ref, disk


def write_conf(workdir, text: str):
    path = workdir / "registries.conf"
    path.write_text(text)
    return path


def mirror_conf(workdir, upstream_host: str, mirror_host: str):
    return write_conf(workdir, f"""
[[registry]]
location = "{upstream_host}"
insecure = true

[[registry.mirror]]
location = "{mirror_host}"
insecure = true
""")


def direct_requests(registry, repo: str, blobs_only: bool = False) -> list:
    """Requests of `repo` that oci-fs itself sent to `registry` (no User-Agent: not the mirror's)."""
    return [r for r in registry.request_log() if r.repo == repo and not r.useragent
            and (r.is_blob or not blobs_only)]


def served(registry, repo: str, kind: str) -> list:
    return [r for r in registry.request_log() if r.repo == repo and r.status in (200, 206)
            and (r.is_blob if kind == "blob" else r.is_manifest)]


def read_all(path, piece: int = 256 * 1024) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while True:
            b = os.pread(fd, piece, len(out))
            if not b:
                return bytes(out)
            out += b
    finally:
        os.close(fd)


def test_a_cold_mount_reads_through_the_mirror(ocifs, upstream, mirror, pushed, repo, workdir):
    ref, disk = pushed
    conf = mirror_conf(workdir, upstream.host, mirror.host)
    with Mount(ref, workdir / "m", "--registries-conf", conf, *QUIET, cache_dir=workdir / "cache") as m:
        assert read_all(m.dir / "disk.img") == disk
    assert served(mirror, repo, "manifest"), "the manifest was not asked of the mirror"
    assert served(mirror, repo, "blob"), "no blob was read through the mirror"
    assert direct_requests(upstream, repo) == [], "oci-fs went to the upstream although the mirror answered"


def test_reads_finish_from_the_upstream_when_the_mirror_stops(ocifs, upstream, mirror, pushed, repo, workdir):
    ref, disk = pushed
    conf = mirror_conf(workdir, upstream.host, mirror.host)
    # The first MiB through the mirror: the kernel's readahead (up to 1 MiB, and as much
    # again asynchronously) may fetch past it, never the 5 MiB after it.
    half = 1024 * 1024
    with Mount(ref, workdir / "m", "--registries-conf", conf, *QUIET, cache_dir=workdir / "cache") as m:
        fd = os.open(m.dir / "disk.img", os.O_RDONLY)
        try:
            assert os.pread(fd, half, 0) == disk[:half]
            assert served(mirror, repo, "blob")
            assert not direct_requests(upstream, repo, blobs_only=True)
            mirror.stop()  # refused from now on
            start = time.monotonic()
            rest = os.pread(fd, DISK_SIZE - half, half)
            took = time.monotonic() - start
        finally:
            os.close(fd)
    assert rest == disk[half:]
    assert direct_requests(upstream, repo, blobs_only=True), "the rest was not read from the upstream"
    assert took < 30, f"falling back from a refused mirror took {took:.1f}s"


@pytest.mark.parametrize("fault", ["503", "stall"])
def test_a_failing_mirror_falls_back_for_the_request_with_exact_bytes(ocifs, upstream, mirror, pushed, repo,
                                                                       workdir, fault):
    ref, disk = pushed
    with FaultProxy(("127.0.0.1", mirror.port)) as proxy:
        conf = mirror_conf(workdir, upstream.host, proxy.host)
        with Mount(ref, workdir / "m", "--registries-conf", conf, "--stall-timeout", "2", *QUIET,
                   cache_dir=workdir / "cache") as m:
            proxy.fault(fault, count=1000, match="/blobs/")
            assert read_all(m.dir / "disk.img", piece=1 << 20) == disk
        assert proxy.faults, "the mirror was never asked for a blob"
        # Skipped for a backoff after it failed: not asked for every chunk.
        assert len(proxy.faults) < DISK_SIZE // (1 << 20)
    assert direct_requests(upstream, repo, blobs_only=True)


def test_a_rewritten_location_is_read_instead_of_the_named_registry(ocifs, upstream, pushed, repo, workdir):
    ref, disk = pushed
    conf = write_conf(workdir, f"""
[[registry]]
prefix = "vms.example.invalid/images"
location = "{upstream.host}/{repo.rsplit('/', 1)[0]}"
insecure = true
""")
    name = repo.rsplit("/", 1)[1]
    out = ocifs("cat", "--registries-conf", conf, f"vms.example.invalid/images/{name}:v1", "/disk/disk.img")
    assert out.stdout == disk


def test_a_blocked_registry_is_refused_with_a_message_that_says_so(ocifs, upstream, pushed, workdir):
    ref, _ = pushed
    conf = write_conf(workdir, f'[[registry]]\nlocation = "{upstream.host}"\nblocked = true\n')
    res = ocifs("inspect", "--registries-conf", conf, ref, check=False)
    assert res.returncode == 1
    assert "blocked" in res.stderr and str(conf) in res.stderr, res.stderr
    assert not any(r.is_manifest and r.method == "GET" for r in upstream.request_log())


def test_a_malformed_registries_conf_names_the_file_and_line(ocifs, upstream, pushed, workdir):
    ref, _ = pushed
    conf = write_conf(workdir, '[[registry]]\nlocation = "a"\n[[registry.mirror]\n')
    res = ocifs("inspect", "--registries-conf", conf, ref, check=False)
    assert res.returncode == 1
    assert str(conf) in res.stderr and "line 3" in res.stderr, res.stderr


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_http_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it(ocifs, upstream, pushed, variable):
    ref, _ = pushed
    with FaultProxy(("127.0.0.1", upstream.port)) as proxy:
        ocifs("inspect", "--tls-verify=false", ref, env={variable: proxy.url, "NO_PROXY": "", "no_proxy": ""})
        assert proxy.requests_matching("/manifests/"), proxy.requests
        seen = len(proxy.requests)
        ocifs("inspect", "--tls-verify=false", ref, env={variable: proxy.url, "NO_PROXY": "127.0.0.1"})
        assert len(proxy.requests) == seen, "NO_PROXY was not honoured"


def test_https_proxy_tunnels_tls_with_connect(ocifs, make_registry, repo):
    tls = make_registry(tls=True)
    ref, _ = images.push_containerdisk(tls, repo, os.urandom(100_000), compression="gzip")
    with FaultProxy(("127.0.0.1", tls.port)) as proxy:
        ocifs("inspect", "--cert-dir", tls.cert_dir, ref, env={"HTTPS_PROXY": proxy.url, "NO_PROXY": ""})
        assert proxy.requests_matching("CONNECT 127.0.0.1:"), proxy.requests


def test_a_mirror_that_failed_is_skipped_for_a_backoff_then_asked_again(ocifs, upstream, mirror, pushed, repo,
                                                                        workdir):
    ref, disk = pushed
    mib = 1 << 20
    with FaultProxy(("127.0.0.1", mirror.port)) as proxy:
        conf = mirror_conf(workdir, upstream.host, proxy.host)
        with Mount(ref, workdir / "m", "--registries-conf", conf, *QUIET, cache_dir=workdir / "cache") as m:
            fd = os.open(m.dir / "disk.img", os.O_RDONLY)
            try:
                proxy.fault("503", count=1, match="/blobs/")
                assert os.pread(fd, 4096, 2 * mib) == disk[2 * mib:2 * mib + 4096]
                assert len(proxy.faults) == 1
                asked = len(proxy.requests_matching("/blobs/"))
                assert os.pread(fd, 4096, 3 * mib) == disk[3 * mib:3 * mib + 4096]
                assert len(proxy.requests_matching("/blobs/")) == asked, "the mirror was asked during its backoff"
                time.sleep(6)  # the first backoff is 5 s
                assert os.pread(fd, 4096, 4 * mib) == disk[4 * mib:4 * mib + 4096]
                assert len(proxy.requests_matching("/blobs/")) > asked, "the mirror was not asked again"
            finally:
                os.close(fd)
