#!/usr/bin/env bash
# The main job: build the AtomixOS root filesystem (mkosi, cached by its inputs), the initramfs
# and a qemu-virt image (16 GiB sparse, holding only the loader region's GPT, boot-a and
# rootfs-a, as flashed), then boot it the way a board boots: QEMU aarch64 (TCG) runs Debian's
# U-Boot, whose distro boot runs the generated boot.scr; the script echoes the build ID, picks
# slot A from the A/B counters and saves the spent try, then boots the Debian arm64 kernel with
# our initramfs. /init's first boot creates boot-b, rootfs-b and the f2fs /data, writes the
# fresh-flash marker and switch_roots into the real root: systemd brings up /data, the network
# (eth0 WAN by DHCP, eth1 LAN 172.20.30.1/24), dnsmasq, chrony, sshd, nftables and RAUC to
# multi-user. The image's boot partition carries a provisioning seed (out/demo/seed/: a bundle
# of a config.toml with a generated admin key and a container built on the device from a
# Containerfile, no registry): atomix-first-boot.service imports it, renders and activates the
# users, network, firewall and the container, and marks the slot good in RAUC. The bench board
# logs root in on the serial console, where this script waits for that, has the device report
# its state (slot, counters, /data, addresses, services, the container's page) and powers it
# off. Then `atomix inspect` shows the disk. Both NICs are QEMU user networking with
# restrict=on; the device's tcp/8080 and 8081 (WAN) and ssh (LAN) are forwarded to 127.0.0.1:18080,
# 127.0.0.1:18081 and 127.0.0.1:12222.
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

# The seed: a bundle (config.toml + the container's build files) with a fresh admin key.
seed=$out/seed
mkdir -p "$seed/files/web/www"
ssh-keygen -q -t ed25519 -N '' -C admin@demo -f "$out/admin_ed25519"
cat > "$seed/config.toml" <<EOF
version = 1

[users.admin]
isAdmin = true
ssh_key = "$(cat "$out/admin_ed25519.pub")"

[network.firewall.inbound.wan]
tcp = [8081]

[activation]
required = ["web"]
timeout_seconds = 900

[containers.build.web.Build]
ImageTag = "localhost/web:latest"
File = "\${FILES_DIR}/web/Containerfile"
SetWorkingDirectory = "\${FILES_DIR}/web"

[containers.container.web]
privileged = true

[containers.container.web.Container]
Image = "web.build"
Exec = "/bin/busybox httpd -f -p 8081 -h /www"
EOF
cp .cache/busybox/bin/busybox "$seed/files/web/busybox"
echo "AtomixOS demo: provisioned" > "$seed/files/web/www/index.html"
# A bundle's files are placed 0600: the binary is made executable in the image.
printf 'FROM scratch\nCOPY --chmod=0755 busybox /bin/busybox\nCOPY www /www\n' \
  > "$seed/files/web/Containerfile"
$atomix device validate "$seed/config.toml"
tar --zstd -cf "$out/config.tar.zst" -C "$seed" config.toml files

# What the device reports once it is provisioned (typed at its root prompt).
report='timeout 900 sh -c "until test -e /data/.completed_first_boot; do sleep 2; done";
journalctl -b -u atomix-first-boot --no-pager -o cat | tail -n 12;
systemctl is-system-running --wait; systemd-analyze; rauc status;
busybox wget -qO- http://127.0.0.1:8081/;
atomix env --board qemu-virt /dev/vda print | tail -n 1; findmnt /data; ip -br -4 addr;
systemctl --no-pager --plain --no-legend list-units --type=service --state=running;
nft list chain inet filter input;
if journalctl -b -u atomix-first-boot -o cat | grep -q "marked the booted slot boot.0 good";
then systemctl poweroff; else echo "demo: the device was not provisioned"; systemctl reboot; fi'

set -x
$atomix initramfs build --board qemu-virt --out "$out/initramfs.img"
$atomix image build --board qemu-virt --rootfs "$rootfs" --kernel .cache/Image \
  --initramfs "$out/initramfs.img" --version demo --size 16G --out "$out"
image=$(ls "$out"/atomixos-qemu-virt-demo-*.img)
# The seed goes on boot-a (16 MiB into the disk), as a bring-up engineer copies it onto a
# flashed card.
mcopy -o -i "$image@@16M" "$out/config.tar.zst" ::config.tar.zst
$atomix qemu --uboot --disk "$image" --net --forward 18080:8080 --forward 18081:8081 --forward lan:12222:22 \
  --smp 2 --memory 2048 --timeout 1500 --log "$out/console.log" \
  --expect 'root@atomixos:~# ' "$(tr '\n' ' ' <<<"$report")"
$atomix inspect --board qemu-virt "$image"
