#!/bin/sh
# Installs the Debian packages the benchmark harness (bench/run.sh) needs.
# Run as root on Debian 12 (bookworm). Idempotent.
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="
  debootstrap             # the Debian 12 guest (make-disk.sh)
  e2fsprogs fdisk         # mkfs.ext4 -d, sfdisk
  extlinux syslinux-common # bootloader written into the disk image (no loop device needed)
  qemu-utils              # qemu-img convert -c, qemu-nbd
  qemu-system-x86         # booting the guest (TCG here); qemu-storage-daemon lives in qemu-system-common
  nbdkit                  # nbdkit curl plugin + tar filter peer; log filter for the boot trace
  skopeo                  # the full-import peer (what CDI runs)
  docker-registry         # registry on loopback
  zstd gzip tar curl
  fuse3                   # fusermount3
  strace time             # /usr/bin/time -v for peak RSS
  python3-matplotlib      # the cumulative-bytes plot
"
pkgs=$(printf '%s\n' "$pkgs" | sed 's/#.*//' | tr -s ' \n' ' ')
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
fi
echo "bench deps installed"
