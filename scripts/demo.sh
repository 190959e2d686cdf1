#!/usr/bin/env bash
# The main job: build the AtomixOS root filesystem (mkosi, cached by its inputs), the initramfs
# and a qemu-virt image (16 GiB sparse, holding only the loader region's GPT, boot-a and
# rootfs-a, as flashed), then boot it the way a board boots: QEMU aarch64 (TCG) runs Debian's
# U-Boot, whose distro boot runs the generated boot.scr; the script echoes the build ID, picks
# slot A from the A/B counters and saves the spent try, then boots the Debian arm64 kernel with
# our initramfs. /init's first boot creates boot-b, rootfs-b and the f2fs /data, writes the
# fresh-flash marker and switch_roots into the real root: systemd brings up /data, the network
# (eth0 WAN by DHCP, eth1 LAN 172.20.30.1/24), dnsmasq, chrony, sshd, nftables and RAUC to
# multi-user. The bench board logs root in on the serial console, where this script has the
# device report its state (slot, /data, addresses, services) and power off. Then
# `atomix inspect` shows the disk. Both NICs are QEMU user networking with restrict=on; the
# device's tcp/8080 (WAN) and ssh (LAN) are forwarded to 127.0.0.1:18080 and 127.0.0.1:12222.
# Artefacts land in out/demo/. Installs what it needs first (scripts/setup.sh). Run as root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=out/demo
rm -rf "$out" && mkdir -p "$out"   # each run starts clean

scripts/setup.sh
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo build --release -p atomix --locked
atomix=target/release/atomix
rootfs=$(scripts/rootfs.sh --board qemu-virt)

# What the device reports once it is up (typed at its root prompt).
report='systemctl is-system-running --wait; systemd-analyze; rauc status;
atomix env --board qemu-virt /dev/vda print | tail -n 1; findmnt /data; ip -br -4 addr;
systemctl --no-pager --plain --no-legend list-units --type=service --state=running;
nft list chain inet filter input; systemctl poweroff'

set -x
$atomix initramfs build --board qemu-virt --out "$out/initramfs.img"
$atomix image build --board qemu-virt --rootfs "$rootfs" --kernel .cache/Image \
  --initramfs "$out/initramfs.img" --version demo --size 16G --out "$out"
image=$(ls "$out"/atomixos-qemu-virt-demo-*.img)
$atomix qemu --uboot --disk "$image" --net --forward 18080:8080 --forward lan:12222:22 \
  --smp 2 --memory 2048 --timeout 900 --log "$out/console.log" \
  --expect 'root@atomixos:~# ' "$(tr '\n' ' ' <<<"$report")"
$atomix inspect --board qemu-virt "$image"
