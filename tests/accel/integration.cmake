# `oci-fs accelerate` against a docker-registry the tests start, then mounts
# that use the artifact (docs/accel-format.md).
ocifs_add_py_test(integration.accel accel/test_accelerate.py TIMEOUT 900)
