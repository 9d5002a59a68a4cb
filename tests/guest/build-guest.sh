#!/bin/bash
# Builds what the real-guest tests boot, into DIR (make check-guest calls it
# as `build-guest.sh build/guest build/guest/guestprog`):
#   DIR/vmlinuz, DIR/modules/*.ko   a Debian kernel, fetched once with
#                                   apt-get download and unpacked with
#                                   dpkg-deb -x (no install hooks); kept
#                                   while DIR/vmlinuz exists
#   DIR/initramfs.cpio.gz           busybox as /init's shell, the virtio
#                                   block modules, tests/guest/init, and
#                                   guestprog; rebuilt on every call
# Needs apt-get, dpkg-deb, busybox-static (for its cpio); exits non-zero
# with a message when something is missing.
set -euo pipefail
dir=$1
prog=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"

if [ ! -s "$dir/vmlinuz" ]; then
  # The kernel the metapackage points at now (apt-cache knows the version).
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.[0-9.]*-[0-9]*-amd64\)$/\1/p' |
    head -n1)
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' |
      awk '{print $1}' | sort -V | tail -n1)
  fi
  [ -n "$pkg" ] || { echo "build-guest: no linux-image package known to apt" >&2; exit 1; }
  echo "build-guest: fetching $pkg"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
  # apt-get download writes into the cwd; as root it fetches as _apt when
  # that user can write there, else (with a warning) as root.
  chown _apt "$tmp" 2>/dev/null || true
  (cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || { echo "build-guest: apt-get download $pkg failed" >&2; exit 1; }
  dpkg-deb -x "$deb" "$tmp/x"
  rm -rf "$dir/modules"
  mkdir -p "$dir/modules"
  for m in $mods; do
    f=$(find "$tmp/x/lib/modules" -name "$m.ko*" | head -n1)
    [ -n "$f" ] || { echo "build-guest: $m.ko not in $pkg" >&2; exit 1; }
    case $f in
      *.ko) cp "$f" "$dir/modules/$m.ko" ;;
      *.ko.xz) xz -dc "$f" >"$dir/modules/$m.ko" ;;
      *.ko.zst) zstd -qdc "$f" >"$dir/modules/$m.ko" ;;
      *) echo "build-guest: cannot unpack $f" >&2; exit 1 ;;
    esac
  done
  echo "$pkg" >"$dir/kernel-package"
  cp "$(ls "$tmp"/x/boot/vmlinuz-* | head -n1)" "$dir/vmlinuz.tmp"
  mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
  rm -rf "$tmp"
  trap - EXIT
fi

bb=$(command -v busybox || true)
[ -n "$bb" ] && "$bb" --list 2>/dev/null | grep -qx cpio ||
  { echo "build-guest: needs busybox-static (apt-get install busybox-static)" >&2; exit 1; }
file -L "$bb" 2>/dev/null | grep -q 'statically linked' ||
  ldd "$bb" 2>&1 | grep -q 'not a dynamic' ||
  { echo "build-guest: $bb is not static (apt-get install busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$bb" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
cp "$prog" "$root/guestprog"
cp "$dir"/modules/*.ko "$root/lib/modules/"
(cd "$root" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) |
  gzip -1 >"$dir/initramfs.cpio.gz.tmp"
mv "$dir/initramfs.cpio.gz.tmp" "$dir/initramfs.cpio.gz"
echo "build-guest: $dir/initramfs.cpio.gz ($(du -k "$dir/initramfs.cpio.gz" | cut -f1) KiB), kernel $(cat "$dir/kernel-package" 2>/dev/null || echo '?')"
