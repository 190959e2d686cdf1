#!/usr/bin/env bash
# Idempotent host set-up for building and testing the AtomixOS boot toolkit on Debian 12 x86_64.
# Installs apt packages (amd64 and arm64 multiarch; with Debian's chromium, chromedriver and a
# font for the web console's browser test), the Rust target for the static /init and
# cargo-deny, and unpacks the test kernel and busybox (Debian arm64 packages), and chronyd (for
# checking the rendered chrony files), into the cache directory.
#
# Usage: scripts/setup.sh            (as root; safe to run again: it skips what is already there)
# Env:   ATOMIX_CACHE  cache directory (default: <repo>/.cache, ignored by git)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${ATOMIX_CACHE:-$repo/.cache}
mkdir -p "$cache"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

host_pkgs=(
  qemu-system-arm qemu-user-static u-boot-qemu u-boot-tools
  squashfs-tools dosfstools mtools gdisk fdisk cpio zstd kmod util-linux file busybox-static
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross libclang-dev clang pkg-config
  f2fs-tools libf2fs-format-dev libf2fs-dev uuid-dev libselinux1-dev openssh-client
  python3-venv nftables dbus-daemon time
  systemd   # systemd-repart, which T1 compares our plans with (not there on a minimal Debian 12)
  dnsmasq-base libcap2 libgnutls30 libnettle8 libseccomp2
  chromium chromium-driver fonts-dejavu-core
)
arm64_pkgs=(libf2fs-format-dev:arm64 libf2fs-dev:arm64 uuid-dev:arm64 libselinux1-dev:arm64)

# Tests run builds side by side, and each runs this script: one at a time (apt has one lock).
exec 9>"$cache/.setup.lock"
flock 9

# True when every package is installed, for its architecture: the host's (or all), or arm64
# for the names that end in :arm64. (`dpkg -s name` refuses a name installed for two
# architectures, as the -dev libraries are here.)
all_installed() {
  local host_arch installed p
  host_arch=$(dpkg --print-architecture)
  installed=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}:${Architecture}\n' 2>/dev/null \
                | awk '$1 == "ii" { print $2 }')
  for p in "$@"; do
    case $p in
      *:*) grep -qxF "$p" <<<"$installed" || return 1 ;;
      *) grep -qxF -e "$p:$host_arch" -e "$p:all" <<<"$installed" || return 1 ;;
    esac
  done
}

stamp="$cache/apt.stamp"
want="$(printf '%s\n' "${host_pkgs[@]}" "${arm64_pkgs[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || ! all_installed "${host_pkgs[@]}" "${arm64_pkgs[@]}"; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding arm64 multiarch"
    as_root dpkg --add-architecture arm64
  fi
  log "apt-get update"
  as_root apt-get update -qq
  log "installing ${#host_pkgs[@]} host packages and ${#arm64_pkgs[@]} arm64 libraries"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${host_pkgs[@]}" "${arm64_pkgs[@]}" >/dev/null
  echo "$want" > "$stamp"
fi

if command -v rustup >/dev/null 2>&1; then
  # rust-toolchain.toml pins the toolchain by version; rustup would download it from
  # static.rust-lang.org, which may not be reachable. When the installed stable is that very
  # version, name it by its version too (the entry rustup itself would make).
  pinned=$(sed -n 's/^channel = "\(.*\)"$/\1/p' "$repo/rust-toolchain.toml")
  host=$(rustc +stable -vV | sed -n 's/^host: //p')
  toolchains=${RUSTUP_HOME:-$HOME/.rustup}/toolchains
  if [ ! -e "$toolchains/$pinned-$host" ] && rustc +stable --version | grep -q "^rustc $pinned "; then
    log "toolchain $pinned is the installed stable: linking it"
    ln -s "$toolchains/stable-$host" "$toolchains/$pinned-$host"
  fi
  # gnu: the static /init and the device's atomix (they link Debian's glibc-built f2fs
  # archives); musl: the device's atomix-provision, and its host build for the benchmark.
  for t in aarch64-unknown-linux-gnu aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    if ! rustup target list --installed | grep -qx "$t"; then
      log "rustup target add $t"
      rustup target add "$t"
    fi
  done
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
fi
# cargo-deny for the lint step of scripts/test.sh (licenses, bans, sources: deny.toml); built
# from crates.io once (a few minutes), pinned.
deny_version=0.20.2
if command -v cargo >/dev/null 2>&1 \
   && ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $deny_version"; then
  log "cargo install cargo-deny $deny_version"
  cargo install cargo-deny --version "$deny_version" --locked
fi

# Download a package and unpack it (without installing it).
# $1: package name with its architecture (name:arch), $2: unpack directory under the cache.
fetch_deb() {
  local pkg=$1 dir=$2
  if [ -f "$cache/$dir/.done" ]; then return; fi
  rm -rf "$cache/$dir" "$cache/dl-$dir"
  mkdir -p "$cache/dl-$dir"
  (cd "$cache/dl-$dir" && apt-get download -qq -o APT::Sandbox::User=root "$pkg")
  dpkg-deb -x "$cache"/dl-"$dir"/*.deb "$cache/$dir"
  rm -rf "$cache/dl-$dir"
  touch "$cache/$dir/.done"
}

# An arm64 package (for a metapackage, resolve its versioned dependency first), unpacked.
fetch_arm64() { fetch_deb "$1:arm64" "$2"; }

# The test kernel: linux-image-arm64 is a metapackage; its first dependency names the ABI version.
kpkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
kpkg=${kpkg%:arm64}
if [ -z "$kpkg" ]; then
  echo "setup: cannot resolve linux-image-arm64:arm64 to a kernel package (apt-get update?)" >&2
  exit 1
fi
if [ ! -f "$cache/kernel/.done" ] || [ "$(cat "$cache/kernel/.pkg" 2>/dev/null)" != "$kpkg" ]; then
  log "downloading test kernel $kpkg"
  rm -f "$cache/kernel/.done"
  fetch_arm64 "$kpkg" kernel
  echo "$kpkg" > "$cache/kernel/.pkg"
fi
fetch_arm64 busybox-static busybox
# The Rock64 loader files (idbloader.img, u-boot.itb): the package exists only for arm64 and
# `apt-get install` cannot take it on amd64 (research P1), so it is unpacked like the kernel.
fetch_arm64 u-boot-rockchip u-boot-rockchip

# chronyd for the T1 check of the rendered chrony files (config/tests/network_tools.rs), for
# this host's architecture: unpacked, not installed, so that no time daemon starts here (its
# libraries are in host_pkgs). dnsmasq for the same tests is dnsmasq-base, which has no service.
chrony_pkg="chrony:$(dpkg --print-architecture)"
if [ "$(cat "$cache/chrony/.pkg" 2>/dev/null)" != "$chrony_pkg" ]; then
  log "unpacking $chrony_pkg"
  rm -f "$cache/chrony/.done"
  fetch_deb "$chrony_pkg" chrony
  echo "$chrony_pkg" > "$cache/chrony/.pkg"
fi

# The original AtomixOS provisioner (../shared/anchors), the oracle of the differential tests
# and the benchmark's anchor, in a venv of Debian's python3 (its dependencies from PyPI).
anchor=$repo/../shared/anchors/atomixos-provision
venv=$cache/orig-venv
if [ -d "$anchor" ]; then
  want_venv=$( (cat "$anchor/pyproject.toml"; find "$anchor/src" -type f -name '*.py' -print0 \
                | LC_ALL=C sort -z | xargs -0 cat) | sha256sum | cut -c1-16)
  if [ ! -x "$venv/bin/atomixos-provision" ] || [ "$(cat "$venv/.anchor" 2>/dev/null)" != "$want_venv" ]; then
    log "installing the original provisioner into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$anchor"
    echo "$want_venv" > "$venv/.anchor"
  fi
else
  log "warning: no $anchor: the differential tests against the original will fail"
fi

# Stable names for the harness: the kernel Image and its module tree.
kimage=$(ls "$cache"/kernel/boot/vmlinuz-* | head -n1)
ln -sfn "$kimage" "$cache/Image"
log "kernel: $kimage"
log "done (cache: $cache)"
