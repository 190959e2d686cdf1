#!/usr/bin/env bash
# The main job: build the initramfs and a qemu-virt image (16 GiB sparse, holding only the loader
# region's GPT, boot-a and rootfs-a, as flashed), then boot it the way a board boots: QEMU
# aarch64 (TCG) runs Debian's U-Boot, whose distro boot runs the generated boot.scr; the script
# echoes the build ID, picks slot A from the A/B counters and saves the spent try, then boots the
# real Debian arm64 kernel with our initramfs. /init's first boot creates boot-b, rootfs-b and
# the f2fs /data, writes the fresh-flash marker and switch_roots into the probe rootfs, which
# prints what it sees and powers off. Then `atomix inspect` shows the disk after the first boot.
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
$atomix image build --board qemu-virt --rootfs "$out/rootfs" --kernel .cache/Image \
  --initramfs "$out/initramfs.img" --version demo --size 16G --out "$out"
image=$(ls "$out"/atomixos-qemu-virt-demo-*.img)
$atomix qemu --uboot --disk "$image" --timeout 120
$atomix inspect --board qemu-virt "$image"
