# Integration tests of the oci-fs command's mount contract (pytest + real FUSE +
# a docker-registry the test starts on a free 127.0.0.1 port).
ocifs_add_py_test(integration.cli_mount cli/test_cli_mount.py TIMEOUT 300)
