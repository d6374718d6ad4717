# Integration tests of the chunk cache across processes: concurrent `oci-fs mount`s
# of one image over one cache dir share their fetches (docs/cache-format.md "Fetch
# leases"). Run as root; real docker-registry on a free 127.0.0.1 port.
ocifs_add_py_test(integration.cache_shared_fetch cache/test_shared_fetch.py TIMEOUT 900)
