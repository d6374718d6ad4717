# FUSE integration tests: real `oci-fs mount`s of images pushed to a docker-registry
# the tests start on a free 127.0.0.1 port (tests/support). Run as root (mount(8),
# allow_other, umount(8)); each file takes well under a minute on 2 cores.
ocifs_add_py_test(integration.mount fuse/test_mount.py TIMEOUT 900)
ocifs_add_py_test(integration.mount_cache fuse/test_cache.py TIMEOUT 900)
ocifs_add_py_test(integration.mount_errors fuse/test_errors.py TIMEOUT 600)
ocifs_add_py_test(integration.mount_lifecycle fuse/test_lifecycle.py TIMEOUT 600)
ocifs_add_py_test(integration.mount_profile fuse/test_profile.py TIMEOUT 600)
ocifs_add_py_test(integration.mount_keeper fuse/test_keeper.py TIMEOUT 600)
ocifs_add_py_test(integration.mount_keeper_boot fuse/test_keeper_boot.py TIMEOUT 600)
ocifs_add_py_test(integration.mount_keeper_failures fuse/test_keeper_failures.py TIMEOUT 300)
