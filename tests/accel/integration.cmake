# `oci-fs accelerate` against a docker-registry the tests start, then mounts
# that use the artifact (docs/accel-format.md).
ocifs_add_py_test(integration.accel accel/test_accelerate.py TIMEOUT 900)
# The same against token auth with a pull-only credential, a registry with the
# referrers API (tests/support/referrers_proxy.py), the CSI node plugin, and
# artifacts that are wrong.
ocifs_add_py_test(integration.accel_registries accel/test_accelerate_registries.py TIMEOUT 600)
# zstd layers: a multi-frame layer's frame table with frame CRCs.
ocifs_add_py_test(integration.accel_zstd accel/test_accelerate_zstd.py TIMEOUT 600)
# Tar indexes: a fresh mount lists a layer from the artifact's, checking each file on use.
ocifs_add_py_test(integration.accel_tar accel/test_accelerate_tar.py TIMEOUT 600)
# eStargz: no gzip index (its own TOC), but its tar index and the profiles.
ocifs_add_py_test(integration.accel_estargz accel/test_accelerate_estargz.py TIMEOUT 300)
# gzip: a profile recorded as the bytes reads needed, fitted to the artifact's index
# (whole spans, and the index blob's windows), prefetched by a fresh mount.
ocifs_add_py_test(integration.accel_profile accel/test_accelerate_profile.py TIMEOUT 600)
