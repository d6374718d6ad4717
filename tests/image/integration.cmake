# Integration tests of disk artifacts without a tar (pytest + real FUSE + qemu-img +
# a docker-registry the test starts on a free 127.0.0.1 port): KubeVirt VM exports
# (raw+zstd disk layers), ORAS-pushed disk files, bad input.
ocifs_add_py_test(integration.bare_disks image/test_bare_disks.py TIMEOUT 900)
