# Integration tests of the registry path through the oci-fs command (pytest; they
# start their own docker-registry and token server on free 127.0.0.1 ports).
ocifs_add_py_test(integration.harness support/test_harness.py TIMEOUT 120)
ocifs_add_py_test(integration.registry registry/test_registry.py TIMEOUT 300)
ocifs_add_py_test(integration.registry_auth registry/test_registry_auth.py TIMEOUT 300)
ocifs_add_py_test(integration.registry_mirrors registry/test_mirrors.py TIMEOUT 400)
ocifs_add_py_test(integration.registry_timeouts registry/test_timeouts.py TIMEOUT 600)
ocifs_add_py_test(integration.registry_credential_helpers registry/test_credential_helpers.py TIMEOUT 300)
ocifs_add_py_test(integration.registry_token_expiry registry/test_token_expiry.py TIMEOUT 400)
