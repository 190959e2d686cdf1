#!/usr/bin/env bash
# The benchmark (DESIGN section 8): our initramfs against a hand-written busybox one, both built
# and booted (QEMU aarch64, TCG, the same kernel and disk image) in this one invocation. Prints
# the per-boot numbers and one table: metric | ours | baseline (anchor) | ratio | target.
#
# Usage: scripts/bench.sh [--boots N] [--json]     (N boots of each side, default 5)
# Installs what it needs first (scripts/setup.sh). Console logs: <target>/qemu-logs/bench-*.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

scripts/setup.sh >&2
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo run --release --locked -p atomix-systests --bin atomix-bench -- boot "$@"
