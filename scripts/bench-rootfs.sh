#!/usr/bin/env bash
# Benchmark (DESIGN section 8): the real root filesystem. Guest-clock times of U-Boot boots of a
# 16 GiB qemu-virt image to systemd's multi-user target (kernel start -> /init done ->
# multi-user), first boot and steady state, median of N; the squashfs's size; and the build
# time of scripts/rootfs.sh: with the package set cached, a cache hit, and (with --cold) from
# nothing. Takes about 4 minutes a boot pair under TCG, plus ten for --cold.
#
# Usage: scripts/bench-rootfs.sh [--boots N] [--cold] [--json]     (as root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

scripts/setup.sh
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo build --release --locked -p atomix-systests --bin atomix-bench
scripts/rootfs.sh --board qemu-virt --quiet >/dev/null
target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
exec "$target/release/atomix-bench" rootfs "$@"
