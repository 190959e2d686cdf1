#!/usr/bin/env bash
# Benchmark (DESIGN section 8): atomix-provision beside the original AtomixOS provisioner on the
# same input, the largest config of the corpus (config/tests/fixtures/full.toml): `validate`
# and an initial `import` into an empty /data (and again into a tmpfs, where fsync is free), each
# run N times as its own process; median wall time and median peak RSS (GNU time's %M) of each,
# and ours as a fraction of theirs.
# With --boots B, also in the guest (QEMU, the real root filesystem, about 5 minutes a boot):
# systemd start -> provisioned and marked good for a boot-partition seed, and the container's
# start alone, median of B first boots (atomix-bench rootfs --provision).
#
# Usage: scripts/bench-provision.sh [--runs N] [--boots B] [--json]   (as root; installs what it needs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
runs=30 json=0 boots=0
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --boots) boots=${2:?--boots needs a number}; shift 2 ;;
    --json) json=1; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-provision.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
scripts/setup.sh >/dev/null 2>&1 || scripts/setup.sh
# The binary as the device gets it (scripts/rootfs.sh): the device profile, static musl.
cargo build --profile device --target x86_64-unknown-linux-musl --locked -q -p atomix-provision
cargo build --release --locked -q -p atomix-systests --bin atomix-bench
target=$(cargo run --release --locked -q -p atomix-systests --bin atomix-bench -- target-dir)
ours=$target/x86_64-unknown-linux-musl/device/atomix-provision
theirs=${ATOMIX_CACHE:-$repo/.cache}/orig-venv/bin/atomixos-provision
export ATOMIXOS_CONFIG_SCHEMA=$repo/../shared/anchors/atomixos-provision/config.schema.json
export ATOMIXOS_ALLOW_UNSAFE_CONFIG_ROOT=1
host=$(python3 - "$ours" "$theirs" "$repo/config/tests/fixtures/full.toml" "$runs" "$json" <<'PY'
import json, os, shutil, statistics, subprocess, sys, tempfile, time

ours, theirs, config, runs, as_json = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"

def once(argv):
    """Wall seconds and peak RSS (KiB) of one process, run under GNU time: a process's peak
    RSS (wait4's ru_maxrss) includes the memory of whatever forked it before its exec, and
    time(1) is a small C program (its own floor, /bin/true, is about 1 MiB)."""
    with tempfile.NamedTemporaryFile(prefix="bench-provision-rss-") as out:
        start = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        if code != 0:
            sys.exit(f"bench-provision: {argv} failed (exit {code})")
        return wall, int(open(out.name).read().split()[-1])

# The import again into a tmpfs, where fsync costs nothing: both sides fsync every file and
# directory they write (25 and 24 calls), which on a disk is most of our time.
SHM = "/dev/shm"

def measure(tool, command):
    walls, rss = [], []
    for _ in range(runs):
        work = tempfile.mkdtemp(prefix="bench-provision-", dir=SHM if command == "import_tmpfs" else None)
        argv = [tool, "validate", config] if command == "validate" else \
               [tool, "import", config, os.path.join(work, "data/config")]
        w, r = once(argv)
        walls.append(w); rss.append(r)
        shutil.rmtree(work)
    return statistics.median(walls), statistics.median(rss)

rows = {}
commands = ["validate", "import"] + (["import_tmpfs"] if os.path.isdir(SHM) else [])
LABELS = {"validate": "validate", "import": "import", "import_tmpfs": "import on tmpfs"}
for command in commands:
    # Interleaved, so both see the same machine.
    o = measure(ours, command)
    t = measure(theirs, command)
    rows[command] = {"ours_s": o[0], "original_s": t[0], "ours_rss_kib": o[1], "original_rss_kib": t[1]}

if as_json:
    print(json.dumps({"config": config, "runs": runs, "results": rows}, indent=2))
else:
    print(f"atomix-provision vs the original, {os.path.basename(config)}, median of {runs} processes each")
    print(f"{'':30}{'ours':>12}{'original':>12}{'ours/orig':>11}")
    for command, r in rows.items():
        command = LABELS[command]
        print(f"{command + ' (ms)':30}{r['ours_s']*1e3:12.2f}{r['original_s']*1e3:12.1f}{r['ours_s']/r['original_s']:11.3f}")
        print(f"{command + ' peak RSS (MiB)':30}{r['ours_rss_kib']/1024:12.1f}{r['original_rss_kib']/1024:12.1f}{r['ours_rss_kib']/r['original_rss_kib']:11.3f}")
PY
)
if [ "$boots" -eq 0 ]; then
  printf '%s\n' "$host"
  [ "$json" = 1 ] || echo "(in the guest: --boots N)"
  exit 0
fi
cargo build --profile init --target aarch64-unknown-linux-gnu -p atomix-initrd --locked -q
scripts/rootfs.sh --board qemu-virt --quiet >/dev/null
if [ "$json" = 1 ]; then
  guest=$("$target/release/atomix-bench" rootfs --provision --boots "$boots" --json)
  python3 -c 'import json,sys; print(json.dumps({"host": json.loads(sys.argv[1]), "guest": json.loads(sys.argv[2])}, indent=2))' "$host" "$guest"
else
  printf '%s\n\n' "$host"
  "$target/release/atomix-bench" rootfs --provision --boots "$boots"
fi
