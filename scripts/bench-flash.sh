#!/usr/bin/env bash
# Benchmark (DESIGN section 8, issue 4): `atomix flash` (release build) against
# `dd bs=4M conv=fsync`, writing the same ~1 GiB image to the same loop device, side by side in
# one run, alternating, caches dropped before every run; plus the read-back verification against
# `dd iflag=direct | sha256sum`. Prints one table: metric | ours | anchor (dd) | ratio | target
# (write throughput ratio >= 0.9).
#
# Usage: scripts/bench-flash.sh [--rounds N] [--size MIB] [--dir DIR] [--json]
#        (needs root: loop devices, blkdiscard, drop_caches; DIR holds the image and the loop
#        device's backing file, default a temporary directory under $TMPDIR)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

scripts/setup.sh >&2
cargo build --release --locked -p atomix -p atomix-systests --bin atomix --bin atomix-bench
target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
exec "$target/release/atomix-bench" flash --atomix "$target/release/atomix" "$@"
