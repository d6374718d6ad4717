# zstd:chunked layers pushed by buildah itself, read through their TOC
# (docs/zstd-chunked.md); skipped without buildah, qemu-img or root.
ocifs_add_py_test(integration.zstd_chunked decode/test_zstd_chunked.py TIMEOUT 900)
# eStargz layers written by tests/support/estargz.py, read through their TOC
# (docs/estargz.md); skipped without qemu-img or root.
ocifs_add_py_test(integration.estargz decode/test_estargz.py TIMEOUT 900)
# eStargz layers converted by stargz-snapshotter's own ctr-remote (a containerd
# of the test's own); skipped without containerd, ctr-remote, qemu-img or root.
ocifs_add_py_test(integration.estargz_real decode/test_estargz_real.py TIMEOUT 600)
# A first mount without an artifact streams a gzip or single-frame zstd layer with
# requests in flight, and serves the reads behind its pass at once.
ocifs_add_py_test(integration.first_pass_stream decode/test_first_pass_stream.py TIMEOUT 600)
