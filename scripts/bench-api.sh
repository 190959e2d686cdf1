#!/usr/bin/env bash
# Benchmark (DESIGN section 8, issue 10): the provisioning API, `atomix-provision serve
# --activation none` against the original AtomixOS service, both on 127.0.0.1 and measured in
# one run: RSS (at start, idle once provisioned, after the load, peak) and the throughput,
# p50/p99 latency and errors of GET /api/health, GET /api/nonce and a signed POST /api/validate
# at 1 and 200 concurrent clients, cell by cell interleaved (how: `atomix-bench api --help`).
# Each server gets a fresh config root, provisioned with a small config whose admin key is made
# here by ssh-keygen; both are killed by pid on every path. About a minute with the default S (3).
#
# Usage: scripts/bench-api.sh [--seconds S] [--json]      (as root; installs what it needs)
#        more: [--rounds R] [--max-requests N] [--concurrency 1,200] [--routes health,nonce,validate]
#              [--client-threads T] [--one-address]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
case ${1:-} in -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

scripts/setup.sh >/dev/null 2>&1 || scripts/setup.sh
# Ours as the device gets it (scripts/rootfs.sh): the device profile, static musl.
cargo build --profile device --target x86_64-unknown-linux-musl --locked -q -p atomix-provision
cargo build --release --locked -q -p atomix-systests --bin atomix-bench
target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
ours=$target/x86_64-unknown-linux-musl/device/atomix-provision
theirs=${ATOMIX_CACHE:-$repo/.cache}/orig-venv/bin/atomixos-provision

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-api.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ssh-keygen -q -t ed25519 -N '' -C bench-admin -f "$work/admin"
mkdir -p "$work/ours/data" "$work/original/data"
read -r port_ours port_orig < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

export ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT=1
"$ours" serve "$work/ours/data/config" --host 127.0.0.1 --port "$port_ours" \
  --activation none >"$work/ours.log" 2>&1 &
pid_ours=$!
pids+=("$pid_ours")
ATOMIXOS_CONFIG_SCHEMA=$repo/../shared/anchors/atomixos-provision/config.schema.json \
  "$theirs" serve "$work/original/data/config" --host 127.0.0.1 --port "$port_orig" \
  >"$work/original.log" 2>&1 &
pid_orig=$!
pids+=("$pid_orig")

if ! "$target/release/atomix-bench" api --ours "$port_ours:$pid_ours" \
     --original "$port_orig:$pid_orig" --key "$work/admin" "$@"; then
  for side in ours original; do
    echo "--- the last lines of $side's log:" >&2
    tail -n 20 "$work/$side.log" >&2
  done
  exit 1
fi
