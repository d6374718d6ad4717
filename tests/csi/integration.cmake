# Integration tests of the CSI node plugin (pytest): a kubelet-like client on
# the plugin's unix socket, with fake-oci-fs and with the real oci-fs against
# a docker-registry; and the Kubernetes manifests (properties + yamllint).
# They need the oci-fs target (module cli) for OCIFS_BIN.
if(TARGET oci-fs)
  ocifs_add_py_test(integration.csi csi/test_csi.py TIMEOUT 600)
  ocifs_add_py_test(integration.csi_cgroup csi/test_csi_cgroup.py TIMEOUT 300)
  ocifs_add_py_test(integration.csi_manifests csi/test_manifests.py TIMEOUT 120)
  ocifs_add_py_test(integration.csi_credential_provider csi/test_credential_provider.py TIMEOUT 600)
endif()
if(TARGET oci-fs)
  ocifs_add_py_test(integration.csi_metrics csi/test_metrics.py TIMEOUT 600)
endif()
