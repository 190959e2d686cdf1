#!/usr/bin/env bash
# Benchmark (DESIGN section 8): first-boot repartitioning of a flashed 16 GiB image file —
# `atomix repart --dry-run=no` (release build) against systemd-repart v252 (table + vfat) plus
# mkfs.f2fs and sload.f2fs through a loop device over the data partition — side by side in one
# run, median of N. Prints one table: metric | ours | anchor | ratio | target (ours <= 0.5).
# Then, in QEMU (the real arm64 kernel and our /init), the initrd time of a first boot of a
# flashed 16 GiB disk against the steady-state boot that follows it (initrd.json, median of N).
#
# Usage: scripts/bench-repart.sh [--runs N] [--dir DIR] [--json]     (needs root: loop devices)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo build --release --locked -p atomix -p atomix-systests --bin atomix --bin atomix-bench
target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
exec "$target/release/atomix-bench" repart --atomix "$target/release/atomix" "$@"
