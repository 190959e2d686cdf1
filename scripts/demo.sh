#!/usr/bin/env bash
# The main job: build the initramfs and a qemu-virt disk image (16 GiB sparse, holding only
# boot-a and rootfs-a, as flashed), then boot it in QEMU aarch64 (real Debian arm64 kernel, TCG)
# and stream the console: the first boot creates boot-b, rootfs-b and the f2fs /data, writes the
# fresh-flash marker and switch_roots into the probe rootfs, which powers off.
# Artefacts land in out/demo/. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=out/demo
rm -rf "$out" && mkdir -p "$out"   # each run starts clean

scripts/setup.sh
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo build --release -p atomix -p atomix-systests --locked
atomix=target/release/atomix

set -x
target/release/atomix-test-rootfs "$out/rootfs"
$atomix initramfs build --board qemu-virt --out "$out/initramfs.img"
$atomix image build --board qemu-virt --rootfs "$out/rootfs" \
  --kernel .cache/Image --initramfs "$out/initramfs.img" --size 16G --out "$out/disk.img"
$atomix qemu --kernel .cache/Image --initramfs "$out/initramfs.img" --disk "$out/disk.img" \
  --append "console=ttyAMA0 panic=-1 atomixos.lowerdev=PARTLABEL=rootfs-a rauc.slot=boot.0 probe.data=/dev/vda5" \
  --timeout 60
