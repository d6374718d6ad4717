# Integration tests of qcow2 containerDisks (pytest + real FUSE + qemu-img/qemu-io +
# a docker-registry the test starts on a free 127.0.0.1 port): byte-for-byte and
# SEEK_DATA/SEEK_HOLE equality with `qemu-img convert -O raw` / `qemu-img map`,
# malformed images, laziness, concurrent reads.
ocifs_add_py_test(integration.qcow2 disk/test_qcow2_mount.py TIMEOUT 900)
