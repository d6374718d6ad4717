#!/bin/bash
# Builds the benchmark's VM disk and its containerDisk layers, cached in bench/work/.
#
#   bench/make-disk.sh [--quick] [--force]
#
# Full (default), in bench/work/full/:
#   rootfs/        Debian 12 made by debootstrap (kernel, systemd, udev, dbus)
#   disk.raw       4 GiB MBR disk: partition 1 (from 1 MiB) is ext4 with the rootfs;
#                  syslinux MBR + extlinux boot it, so qemu boots from the disk alone
#   disk.qcow2     qemu-img convert -c -O qcow2 (compressed clusters, as cloud images)
#   layer.tar      the containerDisk layer: disk/ and disk/disk.img (the qcow2), 0644, uid 107
#   layer.tar.gz   gzip -6 (what docker/buildah/skopeo write)
#   layer.tar.zst  zstd -3, one frame (what the zstd CLI and skopeo write)
#   layer.tar.seekable.zst  zstd in 4 MiB frames + a seek table (zstd seekable format)
#   disk.raw.zst   (BENCH_KUBEVIRT_LAYER=1) the raw disk as one streamed zstd frame: a KubeVirt VM export's layer
#   layer.zstd-chunked  (BENCH_ZSTD_CHUNKED_LAYER=1) the qcow2's containerDisk built and pushed by
#                  buildah (--compression-format zstd:chunked); layer.zstd-chunked.desc.json holds
#                  its descriptor's annotations (the TOC's position) and its diff_id
# --quick, in bench/work/quick/: a 64 MiB disk.raw that is a bare ext4 (mkfs.ext4 -d from a
#   few generated files, no debootstrap, no bootloader), then the same qcow2 and layers.
#
# The guest prints OCIFS-BOOTED on ttyS0 once multi-user.target is reached, then powers off.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
quick=0
force=0
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --force) force=1 ;;
    *) echo "usage: $0 [--quick] [--force]" >&2; exit 2 ;;
  esac
done
mirror=${BENCH_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}

if [[ $quick == 1 ]]; then out=$here/work/quick; else out=$here/work/full; fi
mkdir -p "$out"
cd "$out"
[[ $force == 1 ]] && rm -rf disk.raw disk.qcow2 layer.tar*

log() { echo "make-disk: $*" >&2; }

make_quick_raw() {
  local src=$out/quick-src
  rm -rf "$src"
  mkdir -p "$src/etc" "$src/usr/lib" "$src/var/log"
  # Files of assorted sizes, incompressible and compressible, so qcow2 compression
  # and the decoders both have work to do.
  head -c 12M /dev/urandom >"$src/usr/lib/random.bin"
  seq 1 2000000 >"$src/var/log/numbers.txt"
  for i in $(seq 1 200); do head -c $((i * 97)) /dev/urandom | base64 >"$src/etc/f$i.conf"; done
  rm -f disk.raw.tmp
  mkfs.ext4 -q -F -L root -d "$src" disk.raw.tmp 64M
  mv disk.raw.tmp disk.raw
  rm -rf "$src"
}

debootstrap_rootfs() {
  if [[ -f rootfs/.complete ]]; then return; fi
  log "debootstrap bookworm from $mirror (several minutes)"
  rm -rf rootfs
  debootstrap --arch=amd64 \
    --include=linux-image-amd64,systemd-sysv,udev,dbus,initramfs-tools,kmod,e2fsprogs \
    bookworm rootfs "$mirror"
  # Make it a VM image: fstab, hostname, no root password prompt needed, the boot marker.
  echo "/dev/vda1 / ext4 errors=remount-ro 0 1" >rootfs/etc/fstab
  echo ocifs-bench >rootfs/etc/hostname
  cat >rootfs/etc/systemd/system/ocifs-booted.service <<'EOF'
[Unit]
Description=Tell the benchmark that multi-user.target was reached, then power off
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo OCIFS-BOOTED >/dev/ttyS0; systemctl poweroff --no-block'

[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/ocifs-booted.service \
    rootfs/etc/systemd/system/multi-user.target.wants/ocifs-booted.service
  chroot rootfs apt-get clean
  rm -rf rootfs/var/lib/apt/lists/* rootfs/var/cache/apt/*.bin
  touch rootfs/.complete
}

make_full_raw() {
  debootstrap_rootfs
  local kver part_off=$((1024 * 1024)) size=$((4 * 1024 * 1024 * 1024))
  kver=$(ls rootfs/boot | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
  [[ -n $kver ]] || { log "no kernel in rootfs/boot"; exit 1; }
  mkdir -p rootfs/boot/extlinux
  cat >rootfs/boot/extlinux/extlinux.conf <<EOF
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /boot/vmlinuz-$kver
  INITRD /boot/initrd.img-$kver
  APPEND root=/dev/vda1 ro console=ttyS0 quiet
EOF
  rm -f disk.raw.tmp
  truncate -s $size disk.raw.tmp
  printf 'label: dos\nlabel-id: 0x0c1f5001\nstart=2048, type=83, bootable\n' | sfdisk -q disk.raw.tmp
  dd if=/usr/lib/syslinux/mbr/mbr.bin of=disk.raw.tmp bs=440 count=1 conv=notrunc status=none
  # ext4 straight into the partition (mke2fs -E offset); 64bit off so extlinux can boot it.
  # Fixed UUID and hash seed: rebuilding gives the same filesystem metadata.
  mkfs.ext4 -q -F -L root -O ^64bit -U 0c1f5001-0000-4000-8000-00000000b007 \
    -E offset=$part_off,hash_seed=0c1f5001-0000-4000-8000-00000000b007 -b 4096 -d rootfs \
    disk.raw.tmp $(((size - part_off) / 4096))
  # extlinux needs the mounted filesystem: a loop device on the partition.
  local mnt=$out/mnt loop
  mkdir -p "$mnt"
  loop=$(losetup -f --show -o $part_off --sizelimit $((size - part_off)) disk.raw.tmp)
  trap 'umount "$mnt" 2>/dev/null || true; losetup -d "$loop" 2>/dev/null || true' EXIT
  mount "$loop" "$mnt"
  extlinux --install "$mnt/boot/extlinux" >/dev/null
  umount "$mnt"
  losetup -d "$loop"
  trap - EXIT
  mv disk.raw.tmp disk.raw
}

if [[ ! -f disk.raw ]]; then
  if [[ $quick == 1 ]]; then make_quick_raw; else make_full_raw; fi
fi
if [[ ! -f disk.qcow2 ]]; then
  log "qcow2 with compressed clusters"
  qemu-img convert -c -O qcow2 disk.raw disk.qcow2.tmp && mv disk.qcow2.tmp disk.qcow2
fi
# pack_disk DISK TAR: a containerDisk layer's tar, DISK as disk/disk.img (owner 107, as
# KubeVirt's images have it; reproducible: sorted, mtime 0).
pack_disk() {
  rm -rf stage && mkdir -p stage/disk
  ln "$1" stage/disk/disk.img 2>/dev/null || cp "$1" stage/disk/disk.img
  chmod 0755 stage/disk && chmod 0644 stage/disk/disk.img
  tar -C stage --format=gnu --sort=name --mtime=@0 --owner=107 --group=107 --numeric-owner \
    -cf "$2.tmp" disk && mv "$2.tmp" "$2"
  rm -rf stage
}
[[ -f layer.tar ]] || pack_disk disk.qcow2 layer.tar
threads=${BENCH_COMPRESS_THREADS:-1}
if [[ ! -f layer.tar.gz ]]; then
  log "gzip"
  gzip -6 -n -c layer.tar >layer.tar.gz.tmp && mv layer.tar.gz.tmp layer.tar.gz
fi
if [[ ! -f layer.tar.zst ]]; then
  log "zstd (one frame)"
  zstd -q -3 -T"$threads" -c layer.tar >layer.tar.zst.tmp && mv layer.tar.zst.tmp layer.tar.zst
fi
if [[ ! -f layer.tar.seekable.zst ]]; then
  log "zstd (4 MiB frames + seek table)"
  /usr/bin/python3 "$here/zstd_seekable.py" layer.tar layer.tar.seekable.zst.tmp &&
    mv layer.tar.seekable.zst.tmp layer.tar.seekable.zst
fi
# A raw disk in a gzip layer (--layers raw-gzip): the same disk, not converted, as
# `ADD disk.raw /disk/` would pack it (a plain tar: its zeros are in the stream).
# Only when a run asks for that layer (run.sh sets BENCH_RAW_LAYER): 4 GiB more on disk.
if [[ ${BENCH_RAW_LAYER:-0} == 1 && ! -f raw.tar.gz ]]; then
  [[ -f raw.tar ]] || pack_disk disk.raw raw.tar
  log "gzip (raw disk)"
  gzip -6 -n -c raw.tar >raw.tar.gz.tmp && mv raw.tar.gz.tmp raw.tar.gz
fi
# A KubeVirt VM export's disk (--layers kubevirt): the raw disk as one zstd frame from a
# streaming encoder (no content size: zstd reads a pipe), as KubeVirt's export writes it;
# pushed as the layer of a VM artifact, no tar (docs/bare-disks.md). Only when a run asks
# for it (run.sh sets BENCH_KUBEVIRT_LAYER).
if [[ ${BENCH_KUBEVIRT_LAYER:-0} == 1 && ! -f disk.raw.zst ]]; then
  log "zstd (raw disk, one streamed frame)"
  cat disk.raw | zstd -q -3 -c >disk.raw.zst.tmp && mv disk.raw.zst.tmp disk.raw.zst
fi
# A zstd:chunked containerDisk (--layers ...zstd-chunked...), as `buildah push
# --compression-format zstd:chunked` writes it: buildah builds the image from the qcow2
# (vfs storage under bench/work, removed after) and pushes it to an OCI layout, from which
# the layer blob and its descriptor's annotations are kept. Only when a run asks for it
# (run.sh sets BENCH_ZSTD_CHUNKED_LAYER).
if [[ ${BENCH_ZSTD_CHUNKED_LAYER:-0} == 1 && ! -f layer.zstd-chunked ]]; then
  log "zstd:chunked (buildah)"
  bah=(buildah --root "$out/buildah/storage" --runroot "$out/buildah/run" --storage-driver vfs)
  rm -rf chunked-ctx chunked.oci && mkdir -p chunked-ctx/disk
  ln disk.qcow2 chunked-ctx/disk/disk.img 2>/dev/null || cp disk.qcow2 chunked-ctx/disk/disk.img
  printf 'FROM scratch\nADD --chown=107:107 disk/disk.img /disk/\n' >chunked-ctx/Containerfile
  chunked_cleanup() {
    "${bah[@]}" rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$out/buildah" "$out/chunked-ctx" "$out/chunked.oci"
  }
  trap chunked_cleanup EXIT
  "${bah[@]}" bud --quiet --isolation chroot -t localhost/ocifs-bench-disk:chunked chunked-ctx >/dev/null
  "${bah[@]}" push --quiet --compression-format zstd:chunked localhost/ocifs-bench-disk:chunked "oci:$out/chunked.oci"
  /usr/bin/python3 - "$out/chunked.oci" <<'PY'
import json, os, sys
oci = sys.argv[1]
blob = lambda d: os.path.join(oci, "blobs", *d.split(":"))
manifest = json.load(open(blob(json.load(open(os.path.join(oci, "index.json")))["manifests"][0]["digest"])))
layer = manifest["layers"][0]
config = json.load(open(blob(manifest["config"]["digest"])))
assert layer["mediaType"].endswith("+zstd") and layer.get("annotations"), layer
os.link(blob(layer["digest"]), "layer.zstd-chunked.tmp")
json.dump({"annotations": layer["annotations"], "diff_id": config["rootfs"]["diff_ids"][0]},
          open("layer.zstd-chunked.desc.json", "w"), indent=1)
PY
  mv layer.zstd-chunked.tmp layer.zstd-chunked
  chunked_cleanup
  trap - EXIT
fi
ls -l disk.raw disk.qcow2 layer.tar* layer.zstd-chunked 2>/dev/null >&2 || true
