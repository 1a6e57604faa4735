#!/usr/bin/env bash
# dimimage build refuses bases that are not Raspberry-Pi-OS-shaped: exactly
# one error line naming the problem, non-zero exit, no OUT left, base unchanged.
source "$(dirname "$0")/../lib.sh"

build_args=(--role observability --set OPENOBSERVE_PASSWORD=qT7vLm2Rz8KpWx4N)
small=(--boot-size 64 --cluster 512 --root-size 64)
good=$(fixture small "${small[@]}") || exit 1
gpt=$(fixture small-gpt "${small[@]}" --table gpt) || exit 1
none=$(fixture small-none "${small[@]}" --table none) || exit 1

# patch_entry IMG INDEX TYPE START SECTORS: rewrite one MBR partition entry.
patch_entry() {
  python3 - "$@" <<'PY'
import struct, sys
img, i, t, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 16), int(sys.argv[4]), int(sys.argv[5])
with open(img, "r+b") as f:
    f.seek(446 + 16 * i)
    f.write(struct.pack("<B3sB3sII", 0, b"\0\0\0", t, b"\0\0\0", start, n))
PY
}

mkdir -p "$T/bad"
cp --sparse=always "$good" "$T/bad/past-end.img"
truncate -s 100M "$T/bad/past-end.img"
cp --sparse=always "$good" "$T/bad/overlap.img"
patch_entry "$T/bad/overlap.img" 1 83 8292 131072
cp --sparse=always "$good" "$T/bad/no-fat.img"
patch_entry "$T/bad/no-fat.img" 0 0c 2048 4096
cp --sparse=always "$good" "$T/bad/no-ext4.img"
patch_entry "$T/bad/no-ext4.img" 1 00 0 0
cp --sparse=always "$gpt" "$T/bad/gpt.img"
cp --sparse=always "$none" "$T/bad/no-table.img"
truncate -s 64M "$T/bad/zero.img"
printf 'console=serial0,115200 console=tty1 root=PARTUUID=2a7c1d5e-02\n' >"$T/bad/cmdline.img"
head -c 4096 /dev/urandom >"$T/bad/tiny.img"
# the root's superblock checksum broken (one byte of its label changed)
cp --sparse=always "$good" "$T/bad/sb-csum.img"
printf 'X' | dd of="$T/bad/sb-csum.img" bs=1 seek=$(($(part_offset "$T/bad/sb-csum.img" 2) + 1024 + 0x78)) conv=notrunc status=none
cp --sparse=always "$good" "$T/base.img"
xz -T0 -1 -c "$T/base.img" >"$T/full.img.xz"
head -c $(($(stat -c %s "$T/full.img.xz") / 2)) "$T/full.img.xz" >"$T/bad/truncated.img.xz"

# refuse NAME PATTERN: build from $T/bad/NAME must fail cleanly.
refuse() {
  # OUT's name shares nothing with the base's, so the pattern proves the
  # message names the base (not a temporary copy of it).
  local name=$1 pattern=$2 base=$T/bad/$1 out=$T/out/result.img
  mkdir -p "$T/out"
  local before=absent
  [[ -e $base ]] && before=$(sha256sum <"$base")
  expect_error "refuse $name" "$pattern" "$DIMIMAGE" build "${build_args[@]}" --base "$base" -o "$out"
  check "refuse $name: no output left" test -z "$(ls -A "$T/out")"
  local after=absent
  [[ -e $base ]] && after=$(sha256sum <"$base")
  check "refuse $name: base unchanged" test "$before" = "$after"
}

# Sanity: the unmodified fixture builds, so a refusal below is about the base.
if "$DIMIMAGE" build "${build_args[@]}" --base "$good" -o "$T/good.img" >"$T/good.log" 2>&1; then
  ok "the unmodified fixture builds"
else
  fail "the unmodified fixture builds"; sed 's/^/    /' "$T/good.log" | tail -n 5
fi
rm -f "$T"/good.img*

refuse past-end.img 'past-end\.img.*partition 2 ends at sector 270336, past the end of the image \(204800 sectors\)'
refuse overlap.img 'overlap\.img.*partitions 1 and 2 overlap'
refuse no-fat.img 'no-fat\.img.*no FAT boot partition'
refuse no-ext4.img 'no-ext4\.img.*no ext4 root partition'
# named as what it is, not "no ext4 root partition" (Debian 13's libblkid
# does not name a filesystem whose checksum is wrong unless asked to)
refuse sb-csum.img 'sb-csum\.img.*[Ss]uperblock checksum does not match'
refuse gpt.img 'gpt\.img.*GPT partition tables are not supported'
# source.c may refuse these before disk.c sees them, in its own words.
refuse no-table.img 'no-table\.img.*(no partition table found|not a disk image)'
refuse zero.img 'zero\.img.*(empty \(all zero\)|not a disk image)'
refuse cmdline.img 'cmdline\.img.*(text file|not a disk image)'
refuse tiny.img 'tiny\.img.*(too small to be a disk image|not a disk image)'
refuse missing.img 'missing\.img'
refuse truncated.img.xz 'truncated\.img\.xz'
# a tar archive holding an image, raw or compressed: told to extract it
tar -cf "$T/bad/packed.img" -C "$T/bad" cmdline.img
xz -1 -c "$T/bad/packed.img" >"$T/bad/packed-xz.img.xz"
refuse packed.img 'packed\.img: this is a tar archive, not a disk image: extract the \.img'
refuse packed-xz.img.xz 'packed-xz\.img\.xz: the decompressed data is a tar archive'

# An ISO 9660 image (a CD or an installer, perhaps a hybrid one with an
# MBR) is named as such, with what a Raspberry Pi OS download looks like.
make_iso "$T/bad/installer.iso" || fail "make_iso"
make_iso "$T/bad/hybrid.iso" hybrid || fail "make_iso hybrid"
xz -1 -c "$T/bad/installer.iso" >"$T/bad/installer.iso.xz"
iso_said="an ISO 9660 \(CD/DVD or installer\) image, not a Raspberry Pi OS disk image: the Raspberry Pi OS downloads are \.img\.xz files"
echo "# ISO images made by $ISO_TOOL"
refuse installer.iso "installer\.iso: is $iso_said"
expect_rc "an ISO 9660 base: bad data" 65
refuse hybrid.iso "hybrid\.iso: is $iso_said"
refuse installer.iso.xz "installer\.iso\.xz: decompresses to $iso_said"
# before it is copied, or decoded further than its first chunk
xz -1 -c "$T/bad/hybrid.iso" >"$T/bad/hybrid.iso.xz"
refuse hybrid.iso.xz "hybrid\.iso\.xz: decompresses to $iso_said"
"$DIMIMAGE" build "${build_args[@]}" --base "$T/bad/hybrid.iso" -o "$T/out/result.img" --verbose >"$T/iso.log" 2>&1
check_fails "a hybrid ISO refused before it is read (no 'Reading' line)" grep -q '^Reading' "$T/iso.log"

# A compressed base every build would refuse is not kept in the cache:
# gigabytes of a real one would stay in ~/.cache after the error.
xz -T0 -1 -c "$T/bad/gpt.img" >"$T/bad/gpt.img.xz"
XDG_CACHE_HOME=$T/xdg refuse gpt.img.xz 'gpt\.img\.xz.*GPT partition tables are not supported'
XDG_CACHE_HOME=$T/xdg "$DIMIMAGE" cache list >"$T/cache.out" 2>&1
grep -q '^0 images' "$T/cache.out" && ok "a refused .img.xz is not cached" || fail "a refused base cached: $(cat "$T/cache.out")"
XDG_CACHE_HOME=$T/xdg refuse gpt.img.xz 'gpt\.img\.xz.*GPT partition tables are not supported'
# nor by a fleet, which decompresses it once for all its hosts
printf 'hosts:\n  - {name: o1, role: observability, address: 10.0.0.7, env: {OPENOBSERVE_PASSWORD: qT7vLm2Rz8KpWx4N}}\n' \
  >"$T/fleet.yml"
expect_error "a fleet on a GPT .img.xz" 'gpt\.img\.xz.*GPT partition tables are not supported' \
  env XDG_CACHE_HOME="$T/xdg" "$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$T/bad/gpt.img.xz" -o "$T/fleet-out"
XDG_CACHE_HOME=$T/xdg "$DIMIMAGE" cache list >"$T/cache.out" 2>&1
grep -q '^0 images' "$T/cache.out" && ok "a refused .img.xz is not cached by a fleet" || fail "a fleet cached a refused base: $(cat "$T/cache.out")"
xz -T0 -1 -c "$good" >"$T/good.img.xz"
XDG_CACHE_HOME=$T/xdg "$DIMIMAGE" build "${build_args[@]}" --base "$T/good.img.xz" -o "$T/good.img" --quiet
XDG_CACHE_HOME=$T/xdg "$DIMIMAGE" cache list >"$T/cache.out" 2>&1
grep -q '^1 image,' "$T/cache.out" && ok "a good .img.xz is cached" || fail "a good base not cached: $(cat "$T/cache.out")"
rm -f "$T"/good.img*

# An empty extended partition after the root one: a usable base, but the
# root partition may not grow over it (the layout lists no extended
# container, the kernel still maps it).
ext=$T/ext-after.img
cp --sparse=always "$good" "$ext"
read -r rstart rsize < <(python3 -c 'import struct, sys
f = open(sys.argv[1], "rb"); f.seek(446 + 16 + 8); print(*struct.unpack("<II", f.read(8)))' "$ext")
truncate -s +8M "$ext"
patch_entry "$ext" 2 05 $((rstart + rsize)) 16384
printf '\x55\xaa' | dd of="$ext" bs=1 seek=$(((rstart + rsize) * 512 + 510)) conv=notrunc status=none
mkdir -p "$T/out"
before=$(sha256sum <"$ext")
expect_error "--grow over an extended partition after root refused" \
  'ext-after\.img: cannot grow: partition 3 \(type 0x05, sectors [0-9]+-[0-9]+\) lies after the root partition 2' \
  "$DIMIMAGE" build "${build_args[@]}" --grow 64M --base "$ext" -o "$T/out/grown.img"
check "--grow over an extended partition: no output left" test -z "$(ls -A "$T/out")"
[[ $(sha256sum <"$ext") == "$before" ]] && ok "--grow over an extended partition: base unchanged" || fail "base changed"

summary
