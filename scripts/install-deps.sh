#!/usr/bin/env bash
# Installs every Debian 12 package oci-fs needs to build, test and run.
# Idempotent; safe to run again. Must run as root.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then echo "install-deps.sh: run as root" >&2; exit 1; fi
pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libzstd-dev zlib1g-dev libdeflate-dev
  robin-map-dev libspdlog-dev catch2 nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libyaml-cpp-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  docker-registry skopeo qemu-utils nbdkit openssl apache2-utils
  libbenchmark-dev qemu-system-common time python3-matplotlib
  e2fsprogs zstd gzip pigz python3 python3-pytest python3-cryptography python3-grpcio python3-protobuf yamllint
  curl tar buildah
  containerd stargz-snapshotter  # ctr-remote converts test images to eStargz (tests/decode/test_estargz_real.py)
  mold  # scripts/test.sh links with it: several times faster than ld.bfd
  libcpp-httplib-dev python3-prometheus-client
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The distribution registry and containerd packages start system services; tests start their own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi
