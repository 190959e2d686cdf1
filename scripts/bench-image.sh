#!/usr/bin/env bash
# Benchmark (DESIGN section 8): building the flashable rock64 image — `atomix image build`
# (release build) against the shell pipeline doing the same work (mksquashfs, mkimage, truncate,
# dd, sfdisk, mkfs.vfat, mcopy, sync, sha256sum) — side by side in one run, alternating, median
# of N, for two rootfs trees (the cached kernel module tree and the busybox probe rootfs).
# Prints one table: metric | ours | anchor | ratio | target (ours <= 1.0).
#
# Usage: scripts/bench-image.sh [--runs N] [--dir DIR] [--rootfs DIR] [--json]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# The rock64 initramfs the images carry needs the aarch64 /init.
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo build --release --locked -p atomix -p atomix-systests --bin atomix --bin atomix-bench
target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
exec "$target/release/atomix-bench" image --atomix "$target/release/atomix" "$@"
