"""`oci-fs accelerate` on an eStargz image (docs/estargz.md, docs/accel-format.md):
the layer carries its own TOC, which makes it random access on any node, so the
artifact holds no gzip index for it (accelerate says why), but its tar index and
the profiles given still apply.
"""

from __future__ import annotations

from support.estargz import write_estargz
from support.fuse_checks import MiB, assert_reads_match, assert_same_bytes, disk_bytes, read_plan
from support.images import Image, push, sha256
from support.processes import Mount

from test_accelerate import TLS

PROFILE = "application/vnd.oci-fs.profile.v1"
TAR_INDEX = "application/vnd.oci-fs.tar-index.v2"


def test_an_estargz_layer_gets_no_gzip_index_but_its_tar_index_and_the_profile(ocifs, registry, repo, workdir):
    want = disk_bytes(8 * MiB, seed=151)
    layer = write_estargz([("etc", None), *[(f"etc/f{i:02d}", bytes([i]) * (100 + i)) for i in range(30)],
                           ("disk", None), ("disk/disk.img", want)], chunk_size=512 << 10)
    push(registry, repo, "v1", Image([layer.layer()]))
    ref = registry.ref(repo, "v1")
    digest = sha256(layer.blob)
    profile = workdir / "boot.profile"
    profile.write_text(f"oci-fs-profile 1\nchunk-size 65536\nblob {digest} 2\n3\n100\n")

    r = ocifs("accelerate", TLS, ref, "--profile", str(profile), timeout=300)
    artifact = r.stdout.decode().strip().splitlines()[-1]
    assert f"layer {digest} (eStargz: read at random through its own TOC" in r.stderr, r.describe()
    manifest = registry.client().get_manifest(repo, artifact.split("@", 1)[1]).json()
    assert sorted(p["mediaType"] for p in manifest["layers"]) == [PROFILE, TAR_INDEX], manifest

    # A fresh node: the TOC for the bytes, the artifact for the listing and the prefetch.
    log = workdir / "mount.log"
    with Mount(ref, workdir / "m", TLS, "--log-level=info", f"--log-file={log}", cache_dir=workdir / "cache") as m:
        assert_reads_match(m.dir / "disk.img", want, read_plan(len(want), seed=152, random_reads=20))
        assert_same_bytes((m.dir / "disk.img").read_bytes(), want)
    text = log.read_text()
    assert "prefetching the access profile of" in text, text
    assert f"kept the tar index of layer {digest}" in text, text
    assert "is wrong" not in text, text
