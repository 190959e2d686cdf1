#!/usr/bin/env bash
# Every test tier, as CI runs it (DESIGN section 6):
#   lint   rustfmt, clippy -D warnings (host and the aarch64 /init), rustdoc -D warnings,
#          cargo deny (deny.toml)
#   T0/T1  unit tests with fakes; image-file tests with the real host tools
#   T2     privileged: loop devices, squashfs + overlay mounts, switch_root in a mount namespace
#   T1     also the root filesystem squashfs: contents, owners, a fresh build gives the same bytes
#   T3     QEMU aarch64 boots of the real Debian arm64 kernel with our initramfs and disk image,
#          through U-Boot, into the probe rootfs and into the real AtomixOS root filesystem
# Installs what it needs first (scripts/setup.sh). Must run as root (T2 mounts, apt).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

step() { printf '\n=== %s\n' "$*"; }

step "set-up"
scripts/setup.sh

step "lint: rustfmt"
cargo fmt --all -- --check
step "lint: clippy (host)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "lint: clippy (aarch64: /init and the f2fs library it links)"
cargo clippy --target aarch64-unknown-linux-gnu -p atomix-initrd -p atomix-f2fs --locked -- -D warnings
step "lint: rustdoc (the library crates' docs and links; the CLI's doc comments are its --help)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --exclude atomix --locked
step "lint: cargo deny (licenses, banned and duplicate crates, sources; offline: no advisories)"
cargo deny --offline --locked check licenses bans sources

step "build: static aarch64 /init and the atomix CLI"
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked
cargo build --release -p atomix --locked

step "root filesystem: mkosi (cached by its inputs), our aarch64 atomix, the board's files"
scripts/rootfs.sh --board qemu-virt

step "tests: T0-T3"
# QEMU boots are CPU-bound under TCG; two at a time keeps each within its deadline on 2 cores.
cargo test --workspace --locked -- --test-threads=2
