#!/usr/bin/env bash
# Builds the AtomixOS root filesystem squashfs for a board: mkosi.conf (Debian trixie arm64),
# the board's files (`atomix rootfs files`), our aarch64 `atomix` binary, the test kernel's
# modules, packed by `atomix rootfs pack`. See docs/rootfs.md.
#
# Usage: scripts/rootfs.sh [--board B] [--json] [--rebuild | --fresh --out FILE] [--quiet]
#   --board B   board profile (default qemu-virt)
#   --json      print the build's manifest (sizes, sha256, keys, times, packages) on stdout
#               instead of the squashfs path
#   --rebuild   make the squashfs again even when it is cached (mkosi's package set cache is
#               still used)
#   --fresh     build everything again in a scratch cache (only downloaded packages are reused)
#               and leave the caches as they are; needs --out. For checking reproducibility.
#   --out FILE  also copy the squashfs (and its manifest, FILE.json) here
#   --quiet     no progress on stderr, only errors
#
# Caches (ATOMIX_ROOTFS_CACHE, default /var/cache/atomixos when root): mkosi's package set is
# cached under a key over mkosi's version, mkosi.conf, the prepare script, the apt sources and
# the package versions the archive resolves them to today (~10 minutes cold, under qemu-user);
# the squashfs under a key over that and everything added after it (seconds to a minute).
# The same inputs give the same squashfs, byte for byte.
#
# Exit codes: 0 built (or found in the cache), 1 the build failed, 2 bad usage.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${ATOMIX_CACHE:-$repo/.cache}
if [ "$(id -u)" -eq 0 ]; then
  store=${ATOMIX_ROOTFS_CACHE:-/var/cache/atomixos}
else
  store=${ATOMIX_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/atomixos}
fi
# mkosi is not on PyPI and Debian 12's mkosi 14 cannot build here (systemd-nspawn); trixie's
# package (architecture all, pure Python) runs on bookworm's python3. Pinned by version and hash.
mkosi_version=25.3-7
mkosi_sha256=ef56c81324fd47d65490e944ec4697bb3f6fb21326d0d071bfc2fb5ba5383252

board=qemu-virt json=0 fresh=0 rebuild=0 out="" quiet=0
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --board) board=${2:?--board needs a value}; shift 2 ;;
    --json) json=1; shift ;;
    --fresh) fresh=1; shift ;;
    --rebuild) rebuild=1; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h|--help) usage ;;
    *) echo "rootfs.sh: unknown argument $1" >&2; usage ;;
  esac
done
if [ "$fresh" -eq 1 ] && [ -z "$out" ]; then
  echo "rootfs.sh: --fresh builds outside the caches and needs --out FILE" >&2; exit 2
fi

log() { [ "$quiet" -eq 1 ] || printf '[rootfs] %s\n' "$*" >&2; }
die() { printf 'rootfs.sh: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

[ "$(id -u)" -eq 0 ] || die "mkosi installs packages as root (dpkg keeps their owners): run as root"
mkdir -p "$store"

# Builds run side by side (the tests build boards and a fresh copy at once): the shared tool
# state below (the host's packages, the private apt lists, mkosi) is set up by one at a time.
exec 8>"$store/.tools.lock"
flock 8

# The host's tools (qemu-user-static, squashfs-tools, the aarch64 cross toolchain, the test
# kernel): quick when they are there already.
# (stdout is this script's answer: everything else goes to stderr.)
if [ "$quiet" -eq 1 ]; then
  setup_log=$("$repo/scripts/setup.sh" 2>&1) || { printf '%s\n' "$setup_log" >&2; die "scripts/setup.sh failed"; }
else
  "$repo/scripts/setup.sh" >&2 || die "scripts/setup.sh failed"
fi

# --- the tools: qemu-user through binfmt_misc for arm64 maintainer scripts, and mkosi ---------
if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  reg=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f "$reg" ] || die "$reg missing: run scripts/setup.sh (qemu-user-static)"
  # F: the interpreter is opened now, so it works inside the image's chroot.
  cat "$reg" > /proc/sys/fs/binfmt_misc/register
fi

# A private apt state for trixie's package lists: the host's /etc/apt is not touched.
apt_dir=$store/apt
apt_opts=(-o "Dir::Etc::SourceList=/dev/null"
          -o "Dir::Etc::SourceParts=$repo/rootfs/sandbox/etc/apt/sources.list.d"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o "Dir::State::Status=/dev/null" -o "APT::Sandbox::User=root")
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
log "apt-get update (trixie, arm64 and all)"
apt-get "${apt_opts[@]}" -o APT::Architecture=arm64 -o APT::Architectures=arm64 update -qq \
  || die "apt-get update of the trixie lists failed"

mkosi_dir=$store/mkosi-$mkosi_version
if [ ! -f "$mkosi_dir/.done" ]; then
  log "installing mkosi $mkosi_version (trixie's package) into $mkosi_dir"
  rm -rf "$mkosi_dir" && mkdir -p "$mkosi_dir/dl"
  (cd "$mkosi_dir/dl" && apt-get "${apt_opts[@]}" -o APT::Architecture=arm64 \
     -o APT::Architectures=arm64 download -qq "mkosi=$mkosi_version") \
    || die "cannot download mkosi $mkosi_version"
  echo "$mkosi_sha256  $(ls "$mkosi_dir"/dl/mkosi_*.deb)" | sha256sum -c --quiet \
    || die "mkosi_$mkosi_version: sha256 mismatch"
  dpkg-deb -x "$mkosi_dir"/dl/mkosi_*.deb "$mkosi_dir/root"
  rm -rf "$mkosi_dir/dl"
  touch "$mkosi_dir/.done"
fi
mkosi() { PYTHONPATH=$mkosi_dir/root/usr/lib/python3/dist-packages python3 -m mkosi -C "$repo" "$@"; }

# --- what goes in ---------------------------------------------------------------------------
mkdir -p "$store/mkosi"
config_json=$(mkosi --cache-directory "$store/mkosi" --json summary) || die "mkosi cannot read mkosi.conf"
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)["Images"][0][sys.argv[1]]; print("\n".join(v) if isinstance(v, list) else v)' "$1" <<<"$config_json"; }
epoch=$(field SourceDateEpoch)
mapfile -t packages < <(field Packages)

# The package versions the archive gives today, as mkosi installs them (essential + the list).
resolved=$(apt-get "${apt_opts[@]}" -o APT::Architecture=arm64 -o APT::Architectures=arm64 \
  -o APT::Install-Recommends=false -s install '?essential' base-files "${packages[@]}" \
  | awk '/^Inst /{ v=$3; gsub(/[()]/, "", v); print $2 "=" v }' | LC_ALL=C sort) \
  || die "cannot resolve the package set (apt-get -s install)"
[ -n "$resolved" ] || die "the package set resolved to nothing"
flock -u 8
exec 8>&-

# A tree as a hash: paths, types, modes, link targets and file contents.
tree_hash() {
  (cd "$1" && find . -printf '%P %y %m %l\n' | LC_ALL=C sort \
     && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum) | sha256sum | cut -c1-64
}
sha() { sha256sum "$@" | cut -c1-64; }

base_key=$( { echo "mkosi $mkosi_version"; sha "$repo/mkosi.conf" "$repo/rootfs/mkosi.prepare.chroot";
              tree_hash "$repo/rootfs/sandbox"; echo "$resolved"; } | sha256sum | cut -c1-16)

# Our aarch64 binaries.
# atomix links Debian's glibc-built f2fs archives; atomix-provision is pure Rust, static musl
# (no shared libc mapped: a smaller footprint, docs/provisioning.md "Benchmark").
log "building atomix (gnu) and atomix-provision (musl) for aarch64"
(cd "$repo" && cargo build --profile device --target aarch64-unknown-linux-gnu -p atomix \
   --locked -q && cargo build --profile device --target aarch64-unknown-linux-musl \
   -p atomix-provision --locked -q) || die "cargo build of the aarch64 binaries failed"
target_dir=$(cd "$repo" && realpath -m "${CARGO_TARGET_DIR:-target}")
declare -A device_bin=(
  [atomix]=$target_dir/aarch64-unknown-linux-gnu/device/atomix
  [atomix-provision]=$target_dir/aarch64-unknown-linux-musl/device/atomix-provision
)
(cd "$repo" && cargo build --release -p atomix --locked -q) || die "cargo build of atomix failed"
atomix_host=$target_dir/release/atomix

# The kernel's modules (the kernel itself is on the boot partition).
kdir=$(ls -d "$cache"/kernel/lib/modules/*/ 2>/dev/null | head -n1) \
  || die "no kernel modules in $cache/kernel: run scripts/setup.sh"
[ -n "$kdir" ] || die "no kernel modules in $cache/kernel: run scripts/setup.sh"
kver=$(basename "$kdir")

work=$(mktemp -d "$store/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/stage
mkdir -p "$stage/board" "$stage/bin/usr/bin"
"$atomix_host" rootfs files --board "$board" --out "$stage/board" >/dev/null
for bin in atomix atomix-provision; do install -m 0755 "${device_bin[$bin]}" "$stage/bin/usr/bin/$bin"; done

key=$( { echo "$base_key $board $kver"; sha "$repo/rootfs/mkosi.finalize"; tree_hash "$repo/rootfs/tree";
         tree_hash "$stage"; tree_hash "$kdir"; } | sha256sum | cut -c1-16)

entry=$store/rootfs/$board-$key
if [ "$fresh" -eq 1 ]; then
  entry=$work/fresh
  mkosi_cache=$work/mkosi-cache
  # The downloaded packages, as hard links: this build's apt cannot disturb another's.
  packages=$work/packages
  mkdir -p "$store/mkosi/packages"
  cp -al "$store/mkosi/packages" "$packages"
  log "fresh build in $work (the caches are left alone)"
else
  mkosi_cache=$store/mkosi/base-$base_key
  packages=$store/mkosi/packages
fi

publish() {
  ln -sfn "$entry/rootfs.squashfs" "$cache/rootfs-$board.squashfs.new"
  mv -T "$cache/rootfs-$board.squashfs.new" "$cache/rootfs-$board.squashfs"
  ln -sfn "$entry/manifest.json" "$cache/rootfs-$board.json.new"
  mv -T "$cache/rootfs-$board.json.new" "$cache/rootfs-$board.json"
}
finish() {
  if [ -n "$out" ]; then
    cp "$entry/rootfs.squashfs" "$out" && cp "$entry/manifest.json" "$out.json"
  fi
  if [ "$json" -eq 1 ]; then cat "$entry/manifest.json"; else echo "${out:-$entry/rootfs.squashfs}"; fi
}

if [ "$fresh" -eq 0 ] && [ "$rebuild" -eq 0 ] && [ -f "$entry/manifest.json" ]; then
  log "cached: $entry (key $key)"
  mkdir -p "$cache" && publish
  finish
  exit 0
fi

# --- mkosi ----------------------------------------------------------------------------------
# One mkosi at a time on a shared package set cache (another board's build may be using it).
mkdir -p "$store/mkosi"
exec 7>"$mkosi_cache.lock"
flock 7
cached_base=0
[ -d "$mkosi_cache" ] && ls "$mkosi_cache"/*.cache >/dev/null 2>&1 && cached_base=1
if [ "$cached_base" -eq 1 ]; then
  log "mkosi: package set cached (key $base_key); adding the trees"
else
  log "mkosi: installing the package set (key $base_key; about 10 minutes under qemu-user)"
fi
mkdir -p "$mkosi_cache" "$packages" "$work/out" "$work/ws"
t_mkosi=$(now)
mkosi_log=$work/mkosi.log
if ! mkosi --cache-directory "$mkosi_cache" --package-cache-dir "$packages" \
      --workspace-directory "$work/ws" --output-directory "$work/out" \
      --extra-tree "$stage/board" --extra-tree "$stage/bin" \
      --extra-tree "$kdir:/usr/lib/modules/$kver" \
      --force build >"$mkosi_log" 2>&1; then
  tail -n 40 "$mkosi_log" >&2
  die "mkosi failed (the whole log was $mkosi_log; the last 40 lines are above)"
fi
mkosi_s=$(elapsed "$t_mkosi")
log "mkosi done in ${mkosi_s} s"
flock -u 7
exec 7>&-

# --- pack -----------------------------------------------------------------------------------
t_pack=$(now)
mkdir -p "$entry.tmp"
packed=$(SOURCE_DATE_EPOCH=$epoch "$atomix_host" rootfs pack "$work/out/rootfs" \
           --out "$entry.tmp/rootfs.squashfs" --json) || die "atomix rootfs pack failed"
pack_s=$(elapsed "$t_pack")
tree_mib=$(du -sm "$work/out/rootfs" | cut -f1)

python3 - "$entry.tmp/manifest.json" <<EOF
import json, sys
packed = json.loads('''$packed''')
manifest = {
    "board": "$board",
    "squashfs": "$entry/rootfs.squashfs",
    "bytes": packed["bytes"],
    "slot_bytes": packed["slot_bytes"],
    "sha256": packed["sha256"],
    "tree_mib": $tree_mib,
    "key": "$key",
    "base_key": "$base_key",
    "mkosi": "$mkosi_version",
    "kernel_modules": "$kver",
    "source_date_epoch": $epoch,
    "build": {
        "package_set_cached": bool($cached_base),
        "mkosi_s": $mkosi_s,
        "pack_s": $pack_s,
        "total_s": float("$(elapsed "$t_start")"),
    },
    "packages": """$resolved""".split(),
}
json.dump(manifest, open(sys.argv[1], "w"), indent=2)
EOF
rm -rf "$entry" && mv -T "$entry.tmp" "$entry"
log "$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("%s: %.1f MiB squashfs (%.1f%% of the %d MiB slot), tree %d MiB, sha256 %s" % (m["squashfs"], m["bytes"]/2**20, 100*m["bytes"]/m["slot_bytes"], m["slot_bytes"]>>20, m["tree_mib"], m["sha256"]))' "$entry/manifest.json")"

if [ "$fresh" -eq 0 ]; then
  mkdir -p "$cache" && publish
  # Keep the newest few of each cache.
  ls -dt "$store"/mkosi/base-*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
  ls -dt "$store"/rootfs/"$board"-* 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
finish
