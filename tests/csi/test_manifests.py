"""The Kubernetes manifests in kubernetes/: the properties the driver relies
on, and yamllint clean."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # python3-yaml, a dependency of yamllint

KUBE = Path(os.environ.get("OCIFS_SOURCE_DIR", Path(__file__).resolve().parents[2])) / "kubernetes"
DRIVER = "oci-fs.csi.oci-fs.io"


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d]


def one(name: str, kind: str) -> dict:
    [d] = [d for d in docs(name) if d["kind"] == kind]
    return d


def test_yamllint_is_clean():
    assert shutil.which("yamllint"), "yamllint is not installed (scripts/install-deps.sh installs it)"
    r = subprocess.run(["yamllint", "-s", "-c", str(KUBE / ".yamllint"), str(KUBE)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_csidriver():
    d = one("csidriver.yaml", "CSIDriver")
    assert d["metadata"]["name"] == DRIVER
    assert d["spec"]["attachRequired"] is False
    assert d["spec"]["podInfoOnMount"] is True
    assert sorted(d["spec"]["volumeLifecycleModes"]) == ["Ephemeral", "Persistent"]
    assert d["spec"]["requiresRepublish"] is True  # rotated secrets reach the mounts


def test_daemonset_plugin_container():
    ds = one("daemonset.yaml", "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one("serviceaccount.yaml", "ServiceAccount")["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    containers = {c["name"]: c for c in pod["containers"]}
    plugin = containers["oci-fs"]
    assert plugin["securityContext"]["privileged"] is True
    assert plugin["args"][0] == "csi"
    assert "--endpoint=unix:///csi/csi.sock" in plugin["args"]
    mounts = {m["mountPath"]: m for m in plugin["volumeMounts"]}
    assert volumes[mounts["/dev/fuse"]["name"]]["hostPath"]["path"] == "/dev/fuse"
    kubelet = mounts["/var/lib/kubelet"]
    assert kubelet["mountPropagation"] == "Bidirectional"
    assert volumes[kubelet["name"]]["hostPath"]["path"] == "/var/lib/kubelet"
    cache = mounts["/var/cache/oci-fs"]
    assert "hostPath" in volumes[cache["name"]]
    assert "--cache-dir=/var/cache/oci-fs" in plugin["args"]
    assert plugin["livenessProbe"]["httpGet"]["port"] == "healthz"
    conf = mounts["/etc/containers"]  # the node's registries.conf (docs/operations.md)
    assert conf["readOnly"] is True
    assert volumes[conf["name"]]["hostPath"]["path"] == "/etc/containers"


def test_daemonset_mounts_outlive_the_plugin_container():
    """A container restart kills its cgroup and, with a private PID namespace,
    everything in it: the mounts run in the host's PID namespace and in a
    cgroup of the host's cgroupfs (docs/kubernetes.md)."""
    pod = one("daemonset.yaml", "DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    plugin = {c["name"]: c for c in pod["containers"]}["oci-fs"]
    [flag] = [a for a in plugin["args"] if a.startswith("--mount-cgroup=")]
    cgroup_dir = flag.split("=", 1)[1]
    [mount] = [m for m in plugin["volumeMounts"] if cgroup_dir.startswith(m["mountPath"] + "/")]
    assert volumes[mount["name"]]["hostPath"]["path"] == "/sys/fs/cgroup"
    assert not mount.get("readOnly", False)
    # The keepers' state files and control sockets (docs/keeper.md), which the
    # next container's `oci-fs restart` and `status` must find.
    run = {m["mountPath"]: m for m in plugin["volumeMounts"]}["/run/oci-fs"]
    assert volumes[run["name"]]["hostPath"]["path"] == "/run/oci-fs"


def test_daemonset_exposes_metrics_with_the_usual_annotations():
    ds = one("daemonset.yaml", "DaemonSet")
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    plugin = {c["name"]: c for c in ds["spec"]["template"]["spec"]["containers"]}["oci-fs"]
    port = next(p["containerPort"] for p in plugin["ports"] if p["name"] == "metrics")
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert f"--metrics-address=0.0.0.0:{port}" in plugin["args"]


def test_daemonset_sidecars_share_the_socket():
    pod = one("daemonset.yaml", "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    containers = {c["name"]: c for c in pod["containers"]}
    socket_dir = volumes["socket-dir"]["hostPath"]["path"]
    assert socket_dir == f"/var/lib/kubelet/plugins/{DRIVER}"
    registrar = containers["node-driver-registrar"]
    assert "node-driver-registrar" in registrar["image"]
    assert "--csi-address=/csi/csi.sock" in registrar["args"]
    assert f"--kubelet-registration-path={socket_dir}/csi.sock" in registrar["args"]
    reg_mounts = {m["mountPath"]: m["name"] for m in registrar["volumeMounts"]}
    assert volumes[reg_mounts["/registration"]]["hostPath"]["path"] == "/var/lib/kubelet/plugins_registry"
    probe = containers["liveness-probe"]
    assert "--csi-address=/csi/csi.sock" in probe["args"]
    port = next(p["containerPort"] for p in containers["oci-fs"]["ports"] if p["name"] == "healthz")
    assert f"--health-port={port}" in probe["args"]
    for c in containers.values():
        assert {"name": "socket-dir", "mountPath": "/csi"} in c["volumeMounts"]


def test_kustomization_lists_every_manifest():
    k = docs("kustomization.yaml")[0]
    for f in k["resources"]:
        assert (KUBE / f).exists(), f
    assert {"csidriver.yaml", "daemonset.yaml", "serviceaccount.yaml"} <= set(k["resources"])


def test_dockerfile_is_a_debian_12_multi_stage_build():
    text = (KUBE / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) == 2 and all(f.startswith("debian:12") for f in froms)
    assert "install-deps.sh" in text and "cmake" in text and "fuse3" in text


def test_examples_use_the_driver():
    ex = KUBE / "examples"
    inline = one("examples/inline-volume-pod.yaml", "Pod")
    csi = inline["spec"]["volumes"][0]["csi"]
    assert csi["driver"] == DRIVER and csi["volumeAttributes"]["image"]
    pv = one("examples/pv-pvc.yaml", "PersistentVolume")
    assert pv["spec"]["csi"]["driver"] == DRIVER and pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    pvc = one("examples/pv-pvc.yaml", "PersistentVolumeClaim")
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    secret = one("examples/private-image.yaml", "Secret")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    private = one("examples/private-image.yaml", "Pod")["spec"]["volumes"][0]["csi"]
    assert private["nodePublishSecretRef"]["name"] == secret["metadata"]["name"]
    vm = one("examples/kubevirt-vm.yaml", "VirtualMachine")
    [vol] = vm["spec"]["template"]["spec"]["volumes"]
    assert vol["ephemeral"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    # A VM export artifact (docs/bare-disks.md): its PV names the disk; the VM boots from its claim.
    export_pv = one("examples/kubevirt-vm-export.yaml", "PersistentVolume")
    assert export_pv["spec"]["csi"]["driver"] == DRIVER and export_pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert export_pv["spec"]["csi"]["volumeAttributes"]["disk"] == "rootdisk"
    export_pvc = one("examples/kubevirt-vm-export.yaml", "PersistentVolumeClaim")
    assert export_pvc["spec"]["volumeName"] == export_pv["metadata"]["name"]
    [export_vol] = one("examples/kubevirt-vm-export.yaml", "VirtualMachine")["spec"]["template"]["spec"]["volumes"]
    assert export_vol["ephemeral"]["persistentVolumeClaim"]["claimName"] == export_pvc["metadata"]["name"]
    assert sorted(p.name for p in ex.glob("*.yaml")) == [
        "inline-volume-pod.yaml", "kubevirt-vm-export.yaml", "kubevirt-vm.yaml", "private-image.yaml", "pv-pvc.yaml"]
