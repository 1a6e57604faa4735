#!/usr/bin/env bash
# dimimage flash onto regular files (and a mounted loop device when the
# machine allows it): bmap-aware writes equal the image, verification catches
# a corrupted image, and every refusal is one error line.
# Single-quoted bash -c scripts expand their own "$1": that is the point.
# shellcheck disable=SC2016
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

if ! "$DIMIMAGE" flash --help >/dev/null 2>&1; then
  echo "skip - dimimage flash is not available yet"
  summary
  exit
fi

base=$(fixture outputs-small --fat 16 --boot-size 48 --root-size 96) || { fail "fixture"; summary; exit 1; }
img=$T/img.img
cp --sparse=always "$base" "$img"
size=$(stat -c %s "$img")
# The bmap comes from bmaptool itself, so this test does not trust our writer.
bmaptool create -o "$img.bmap" "$img" 2>/dev/null
xz -T2 -1 -c "$img" >"$T/cimg.img.xz"
cp "$img.bmap" "$T/cimg.img.bmap" # beside the .xz under the stripped name

check "flash --help" "$DIMIMAGE" flash --help

truncate -s "$size" "$T/dev1"
check "flash raw image with bmap onto a file" "$DIMIMAGE" flash --quiet "$img" "$T/dev1"
check "the file equals the image" cmp "$img" "$T/dev1"

# A bmap whose checksums are not SHA-256 (nothing of it could be checked) is
# refused unless --no-verify says checking is not wanted.
sed 's|<ChecksumType> *sha256 *</ChecksumType>|<ChecksumType> md5 </ChecksumType>|' "$img.bmap" >"$T/md5.bmap"
grep -q '<ChecksumType> md5 </ChecksumType>' "$T/md5.bmap" || fail "md5 bmap: ChecksumType not rewritten"
truncate -s "$size" "$T/dev-md5"
expect_error "a bmap with md5 checksums refused: flash would verify nothing" "md5.bmap: its checksums are md5, which flash does not verify" \
  "$DIMIMAGE" flash --quiet --bmap "$T/md5.bmap" "$img" "$T/dev-md5"
check "... and written with --no-verify" "$DIMIMAGE" flash --quiet --no-verify --bmap "$T/md5.bmap" "$img" "$T/dev-md5"
check "... equal to the image" cmp "$img" "$T/dev-md5"
rm -f "$T/dev-md5"

# A used "card": old data in the unmapped blocks must not survive on a file.
head -c "$size" /dev/urandom >"$T/dev2"
before=$(sha256sum <"$T/dev2")
expect_error "a file that holds data, without --yes and not on a terminal" \
  "dev2: not on a terminal: pass --yes to confirm overwriting this file, which holds data" \
  "$DIMIMAGE" flash --quiet "$img" "$T/dev2"
expect_rc "a file that holds data, not confirmed" 64
[[ $(sha256sum <"$T/dev2") == "$before" ]] && ok "a file not confirmed is untouched" \
  || fail "a file not confirmed was written"
if command -v script >/dev/null; then
  rc=0
  printf 'n\n' | on_pty "$DIMIMAGE" flash "$img" "$T/dev2" >"$T/prompt.out" 2>&1 || rc=$?
  check "the prompt names the file and its size" grep -q "Overwrite $T/dev2 (a file of .* that holds data)? \\[y/N\\]" \
    "$T/prompt.out"
  check "answering no writes nothing" test "$(sha256sum <"$T/dev2")" = "$before"
  check "answering no exits non-zero" test "$rc" -ne 0
  head -c "$size" /dev/urandom >"$T/dev2y"
  printf 'y\n' | on_pty "$DIMIMAGE" flash --quiet "$img" "$T/dev2y" >/dev/null 2>&1
  check "answering yes writes the file" cmp "$img" "$T/dev2y"
fi
check "flash over old data" "$DIMIMAGE" flash --quiet --yes "$img" "$T/dev2"
check "the used file equals the image" cmp "$img" "$T/dev2"

truncate -s "$((size + 64 * 1048576))" "$T/dev3"
check "flash .img.xz (bmap found without .xz) onto a larger file" "$DIMIMAGE" flash --quiet "$T/cimg.img.xz" "$T/dev3"
check "the larger file starts with the image" cmp -n "$size" "$img" "$T/dev3"

# Stopped by a signal, flash says in one line what it leaves: nothing
# written (at the device's open), a device without a partition table (at
# its first write), or one written and not verified (at the read-back's
# fadvise).  strace -P: only the device's calls are counted.
if strace -f -o /dev/null -e trace=openat true 2>/dev/null; then
  for c in "openat nothing written" \
    "pwrite64 left without a partition table (its first 64 KiB stay zero until a flash completes); flash it again" \
    "fadvise64 written, not verified"; do
    read -r call said <<<"$c"
    truncate -s "$size" "$T/dev5"
    rc=0
    strace -f -o /dev/null -P "$T/dev5" -e trace="$call" -e inject="$call":signal=SIGINT:when=1 \
      "$DIMIMAGE" flash --yes "$img" "$T/dev5" >/dev/null 2>"$T/int.err" || rc=$?
    n=$(grep -cxF "dimimage: interrupted: $T/dev5: $said" "$T/int.err")
    [[ $rc == 130 && $n == 1 && $(grep -c '^dimimage:' "$T/int.err") == 1 ]] \
      && ok "SIGINT at the device's $call: exit 130, one line: $said" \
      || { fail "SIGINT at the device's $call: exit $rc, said $n times"; sed 's/^/    /' "$T/int.err"; }
  done
  rm -f "$T/dev5"
  # A file whose filesystem punches no holes: the unmapped bytes are
  # written as zeros, and a failure there fails the flash (the read-back
  # checks the mapped ranges only, so it would pass over old data).
  head -c "$size" /dev/urandom >"$T/dev6"
  strace -f -o "$T/calls" -P "$T/dev6" -e trace=pwrite64,fallocate -e inject=fallocate:error=EOPNOTSUPP \
    "$DIMIMAGE" flash --quiet --yes "$img" "$T/dev6"
  check "no hole can be punched: the unmapped bytes are written as zeros" cmp "$img" "$T/dev6"
  k=$(awk '/fallocate\(/ { f = 1 } /pwrite64\(/ { n++; if (f) { print n; exit } }' "$T/calls")
  head -c "$size" /dev/urandom >"$T/dev6"
  if [[ -n $k ]]; then
    expect_error "... and one that fails fails the flash" "dev6: cannot clear the unmapped bytes at [0-9]*: No space left" \
      strace -f -o /dev/null -P "$T/dev6" -e trace=pwrite64,fallocate -e inject=fallocate:error=EOPNOTSUPP \
      -e inject=pwrite64:error=ENOSPC:when="$k" "$DIMIMAGE" flash --quiet --yes "$img" "$T/dev6"
  else
    fail "no write of zeros after the failed fallocate: $(grep -c pwrite64 "$T/calls") writes"
  fi
  rm -f "$T/dev6" "$T/calls"
  # The flush after the partition table fails: the table is written, so
  # the device is not said to be without one; what it holds is unknown.
  truncate -s "$size" "$T/dev7"
  expect_error "a failed flush after the partition table: said so" \
    "dev7: cannot flush the device after writing its partition table: Input/output error; what it holds is unknown" \
    strace -f -o /dev/null -P "$T/dev7" -e trace=fsync,fdatasync -e inject=fsync,fdatasync:error=EIO:when=2 \
    "$DIMIMAGE" flash --quiet --yes "$img" "$T/dev7"
  grep -q 'without a partition table' "$T/.err" && fail "... yet said to be without a partition table" \
    || ok "... not said to be without a partition table"
  rm -f "$T/dev7"
else
  echo "skip - interrupting a flash at a chosen point needs strace"
fi

mv "$img.bmap" "$T/saved.bmap"
truncate -s "$size" "$T/dev4"
check "flash without a bmap writes every block" "$DIMIMAGE" flash --quiet "$img" "$T/dev4"
check "no-bmap flash equals the image" cmp "$img" "$T/dev4"
check "--bmap FILE" "$DIMIMAGE" flash --quiet --yes --bmap "$T/saved.bmap" "$img" "$T/dev4"
check "options after IMAGE and DEVICE" "$DIMIMAGE" flash "$img" "$T/dev4" --bmap "$T/saved.bmap" --quiet -y
mv "$T/saved.bmap" "$img.bmap"

# ---- refusals ----------------------------------------------------------------
# What file modes refuse: an image that may not be read is a missing input
# (66), as build --base says of one; a device that may not be written, an
# output that cannot be made (73).  Neither is touched.
mkdir -p "$T/perm"
cp --sparse=always "$img" "$T/perm/ok.img" && cp "$img.bmap" "$T/perm/ok.img.bmap"
chmod a+r "$T/perm/ok.img" "$T/perm/ok.img.bmap" # whatever the caller's umask
cp --sparse=always "$img" "$T/perm/locked.img" && chmod 0000 "$T/perm/locked.img"
truncate -s "$size" "$T/perm/dev" && chmod 0666 "$T/perm/dev"
head -c 4096 /dev/urandom >"$T/perm/rodev" && truncate -s "$size" "$T/perm/rodev" && chmod 0444 "$T/perm/rodev"
if unprivileged "$T/perm"; then
  expect_error "an unreadable image" "locked.img: cannot open image: Permission denied" \
    "${UNPRIV[@]}" flash --yes "$T/perm/locked.img" "$T/perm/dev"
  expect_rc "an unreadable image" 66
  [[ -z $(tr -d '\0' <"$T/perm/dev" | head -c 1) ]] && ok "an unreadable image: the device untouched" \
    || fail "an unreadable image: the device was written"
  before=$(sha256sum <"$T/perm/rodev")
  expect_error "a device that may not be written" "rodev: cannot open: Permission denied" \
    "${UNPRIV[@]}" flash --yes "$T/perm/ok.img" "$T/perm/rodev"
  expect_rc "a device that may not be written" 73
  [[ $(sha256sum <"$T/perm/rodev") == "$before" ]] && ok "a device that may not be written: untouched" \
    || fail "a device that may not be written: it changed"
else
  ok "skipped: unreadable images and unwritable devices need setpriv to drop root"
fi
rm -rf "$T/perm"
truncate -s "$((size / 2))" "$T/small"
expect_error "device smaller than the image" "smaller than the image" "$DIMIMAGE" flash "$img" "$T/small"
expect_rc "device smaller than the image" 65
# An .xz without a bmap (as Raspberry Pi OS's downloads come): its index
# gives the size, so a too-small device is refused before it is touched.
xz -T2 -1 -c "$img" >"$T/nobmap.img.xz"
head -c "$((size / 2))" /dev/urandom >"$T/small2"
before=$(sha256sum <"$T/small2")
expect_error ".img.xz without a bmap onto a smaller device" "smaller than the image \(.* < $((size / 1048576)).0 MiB\)" \
  "$DIMIMAGE" flash --yes "$T/nobmap.img.xz" "$T/small2"
[[ $(sha256sum <"$T/small2") == "$before" ]] && ok ".img.xz without a bmap: the small device untouched" \
  || fail ".img.xz without a bmap: the small device was written"
# A .zst of a file records its size in the frame header: refused untouched too.
zstd -q -1 -c "$img" >"$T/nobmap.img.zst"
expect_error ".img.zst without a bmap onto a smaller device" "small2: the device is smaller than the image" \
  "$DIMIMAGE" flash --yes "$T/nobmap.img.zst" "$T/small2"
[[ $(sha256sum <"$T/small2") == "$before" ]] && ok ".img.zst without a bmap: the small device untouched" \
  || fail ".img.zst without a bmap: the small device was written"
# A .gz's last member ends with its size (modulo 4 GiB): a lower bound.
head -c "$((size / 2))" "$img" >"$T/small3"
gzip -1 -c "$img" >"$T/nobmap.img.gz"
before=$(sha256sum <"$T/small3")
expect_error ".img.gz without a bmap onto a smaller device, refused before writing" \
  "small3: the device is smaller than the image \(.* < $((size / 1048576)).0 MiB, the size .*gzip trailer states" \
  "$DIMIMAGE" flash --yes "$T/nobmap.img.gz" "$T/small3"
[[ $(sha256sum <"$T/small3") == "$before" ]] && ok ".img.gz without a bmap: the small device untouched" \
  || fail ".img.gz without a bmap: the small device was written"
# A .gz cut off mid-download: its last 4 bytes are then compressed data,
# not ISIZE; the refusal says where the size came from and how to tell
gzip -1 -c "$img" | head -c 300000 >"$T/cut.img.gz"
check_fails "gzip -t fails the cut-off .gz" gzip -t "$T/cut.img.gz"
truncate -s 1M "$T/small4"
expect_error "a cut-off .img.gz: the size is the gzip trailer's, which a truncated download fakes" \
  "small4: the device is smaller than the image \(.*the size .*cut\.img\.gz's gzip trailer states; a truncated download .*gzip -t .*cut\.img\.gz\)" \
  "$DIMIMAGE" flash --yes "$T/cut.img.gz" "$T/small4"
# A raw image shorter than its bmap says: a wrong bmap, or a truncated image
head -c "$((size / 2))" "$img" >"$T/half.img"
check_fails "bmaptool refuses the truncated image with its bmap too" \
  bmaptool copy --bmap "$img.bmap" "$T/half.img" "$T/half-copy.img"
expect_error "a truncated raw image with its bmap" "pass the right --bmap, or the image is truncated" \
  "$DIMIMAGE" flash --yes --bmap "$img.bmap" "$T/half.img" "$T/dev1"
# A .zip's entry states its size.
(cd "$T" && ln -sf "$img" nobmap.img && zip -q -1 nobmap.zip nobmap.img && rm nobmap.img)
expect_error ".zip without a bmap onto a smaller device, refused before writing" \
  "small3: the device is smaller than the image \(.* < $((size / 1048576)).0 MiB\)" \
  "$DIMIMAGE" flash --yes "$T/nobmap.zip" "$T/small3"
[[ $(sha256sum <"$T/small3") == "$before" ]] && ok ".zip without a bmap: the small device untouched" \
  || fail ".zip without a bmap: the small device was written"
# A .gz whose last member is empty says nothing of the size: found only when
# the device runs out.  The partition table is written last, so the card is
# left with none, not with a valid one over half-written filesystems (the
# MBR of an earlier image was there).
{ gzip -1 -c "$img"; gzip -1 -c </dev/null; } >"$T/nobmap.img.gz"
check "the smaller device holds a partition table before" sfdisk -d "$T/small3"
expect_error ".img.gz without a bmap onto a smaller device" "small3: the device is smaller than the image" \
  "$DIMIMAGE" flash --yes "$T/nobmap.img.gz" "$T/small3"
check_fails "a flash cut short leaves no partition table" sfdisk -d "$T/small3"
check "a flash cut short says the device has no partition table" \
  grep -q "warning: $T/small3: left without a partition table.*flash it again" "$T/.err"
check "a flash cut short leaves zeros in the first 64 KiB" cmp -n 65536 "$T/small3" /dev/zero
check "...and wrote the rest it could" cmp -i 65536:65536 -n 1048576 "$img" "$T/small3"
truncate -s "$size" "$T/dev5"
check "flash .img.xz without a bmap" "$DIMIMAGE" flash --quiet "$T/nobmap.img.xz" "$T/dev5"
check "the .img.xz without a bmap is written whole" cmp "$img" "$T/dev5"
# Not disk images: refused before the device is touched.
: >"$T/empty.img"
: | xz -c >"$T/empty.img.xz"
echo "this is not an image" >"$T/text.img"
for f in empty.img empty.img.xz text.img; do
  before=$(sha256sum <"$T/dev5")
  expect_error "flash $f refused" "$f: .*(empty|not a disk image)" "$DIMIMAGE" flash --yes "$T/$f" "$T/dev5"
  check_fails "flash $f: no warning about a device it did not touch" grep -q "left without a partition table" "$T/.err"
  [[ $(sha256sum <"$T/dev5") == "$before" ]] && ok "flash $f: device untouched" || fail "flash $f: device written"
done
# An ISO 9660 image without an MBR is no disk image, named as what it is
# (raw, and by its decoded start when compressed); a hybrid one, which has
# an MBR, is still written, as any disk image is.
make_iso "$T/cd.iso" && make_iso "$T/hybrid.iso" hybrid || fail "make_iso"
echo "# ISO images made by $ISO_TOOL"
xz -1 -c "$T/cd.iso" >"$T/cd.iso.xz"
for f in cd.iso cd.iso.xz; do
  before=$(sha256sum <"$T/dev5")
  expect_error "flash $f refused as an ISO 9660 image" "$f: (is|decompresses to) an ISO 9660 \(CD/DVD or installer\) image" \
    "$DIMIMAGE" flash --yes "$T/$f" "$T/dev5"
  [[ $(sha256sum <"$T/dev5") == "$before" ]] && ok "flash $f: device untouched" || fail "flash $f: device written"
done
check "a hybrid ISO (with an MBR) is flashed" "$DIMIMAGE" flash --quiet --yes "$T/hybrid.iso" "$T/dev5"
check "... and the device starts with it" cmp -n "$(stat -c %s "$T/hybrid.iso")" "$T/hybrid.iso" "$T/dev5"
expect_error "missing image" "img-missing.img: cannot open image" "$DIMIMAGE" flash "$T/img-missing.img" "$T/dev1"
# a FIFO as IMAGE is refused at once (it hung in open before); timeout turns a hang into 124
mkfifo "$T/fifo.img"
expect_error "a FIFO as image" "fifo\.img: not a regular file or block device" timeout 10 "$DIMIMAGE" flash --yes "$T/fifo.img" "$T/dev1"
expect_rc "a FIFO as image, as build --base refuses one" 65
# DEVICE IMAGE, the arguments swapped: said so, before the open (only root
# may open a disk) and before the image, which is not a device, is looked at
blk=$(find /dev -maxdepth 1 -type b -print -quit 2>/dev/null)
if [[ -n $blk ]]; then
  expect_error "the arguments swapped (a block device as IMAGE)" \
    "^dimimage: error: $blk: is a block device, not an image file: the image comes first, then the device \(dimimage flash IMAGE DEVICE\)$" \
    "$DIMIMAGE" flash --yes "$blk" "$img"
  expect_rc "the arguments swapped: a usage error" 64
  check "... and the image left as it was" cmp -s "$img" "$base"
else
  ok "skipped: the arguments swapped (no block device in /dev here)"
fi
expect_error "missing device" "no such device" "$DIMIMAGE" flash "$img" "$T/nodev"
# /dev/sdX as the docs write it: the disks are what to look for, not a
# regular file to create (as root, truncate would put one in /dev's RAM)
expect_error "missing /dev/ device" "/dev/dimimage-no-disk: no such device: .*\(lsblk lists the disks\)" \
  "$DIMIMAGE" flash "$img" /dev/dimimage-no-disk
check_fails "missing /dev/ device: no advice to truncate it" grep -q truncate "$T/.err"
expect_error "character device" "neither a block device nor a regular file" "$DIMIMAGE" flash "$img" /dev/null
expect_error "image onto itself" "image itself" "$DIMIMAGE" flash "$img" "$img"
expect_error "no arguments" "need IMAGE and DEVICE" "$DIMIMAGE" flash

cp --sparse=always "$img" "$T/bad.img"
cp "$img.bmap" "$T/bad.img.bmap"
off=$(part_offset "$img" 1)
printf 'X' | dd of="$T/bad.img" bs=1 seek="$((off + 3))" conv=notrunc status=none
check "the device holds a partition table before" sfdisk -d "$T/dev1"
expect_error "image that does not match its bmap" "do not match the bmap" "$DIMIMAGE" flash --yes "$T/bad.img" "$T/dev1"
check_fails "a flash stopped by a bad checksum leaves no partition table" sfdisk -d "$T/dev1"
check "--no-verify writes it anyway" "$DIMIMAGE" flash --quiet --yes --no-verify "$T/bad.img" "$T/dev1"

sed 's/<ImageSize> [0-9]*/<ImageSize> 4096/' "$img.bmap" >"$T/odd.bmap"
expect_error "bmap with a broken file checksum" "checksum mismatch|bad" "$DIMIMAGE" flash --bmap "$T/odd.bmap" "$img" "$T/dev1"

root_dev=$(findmnt -no SOURCE / 2>/dev/null)
if [[ -b $root_dev ]]; then
  expect_error "the disk holding the running system" "running system|mounted|removable" "$DIMIMAGE" flash --yes "$img" "$root_dev"
else
  echo "skip - / is not on a block device here"
fi

# ---- a mounted loop device ----------------------------------------------------
truncate -s "$size" "$T/fsdev"
mkfs.ext4 -q -F "$T/fsdev" >/dev/null 2>&1
loop=""
trap '[[ -n $loop ]] && losetup -d "$loop" 2>/dev/null; rm -rf "$T"' EXIT
if [[ $(id -u) == 0 ]] && command -v losetup >/dev/null && loop=$(losetup -f --show "$T/fsdev" 2>/dev/null); then
  mkdir -p "$T/mnt"
  if mount -o ro "$loop" "$T/mnt" 2>/dev/null; then
    expect_error "a mounted loop device" "is mounted" "$DIMIMAGE" flash --yes "$img" "$loop"
    umount "$T/mnt"
  else
    echo "skip - cannot mount a loop device here"
  fi
  # A loop device reading through to the target: neither mounted nor a
  # holder, and O_EXCL does not see it, yet its filesystem may be in use.
  expect_error "a regular file backing a loop device" "fsdev: is in use by loop device $loop; detach it first" \
    "$DIMIMAGE" flash --yes "$img" "$T/fsdev"
  if loop2=$(losetup -f --show "$loop" 2>/dev/null); then
    expect_error "a device backing another loop device" "is in use by loop device $loop2" \
      "$DIMIMAGE" flash --force --yes "$img" "$loop"
    losetup -d "$loop2"
  else
    echo "skip - cannot stack a loop device on a loop device here"
  fi
  expect_error "a non-removable disk without --force" "not a removable disk" "$DIMIMAGE" flash --yes "$img" "$loop"
  # Without --yes, on a terminal: the prompt names the device and its size,
  # and anything but y writes nothing.
  if command -v script >/dev/null; then
    rc=0
    printf 'n\n' | on_pty "$DIMIMAGE" flash --force "$img" "$loop" >"$T/prompt.out" 2>&1 || rc=$?
    grep -Eq "Erase everything on $loop \(([^)]*, )?[0-9.]+ MiB\)\? \[y/N\]" "$T/prompt.out" && ok "the prompt names the device and its size" \
      || { fail "prompt"; sed 's/^/    /' "$T/prompt.out"; }
    [[ $rc == 130 ]] && ok "declined at the prompt: exit 130" || fail "declined at the prompt: exit $rc"
    [[ $(blkid -p -o value -s TYPE "$loop") == ext4 ]] && ok "declined at the prompt: nothing written" \
      || fail "declined at the prompt: the device changed"
  else
    echo "skip - no script(1) for a terminal"
  fi
  # A loop device over the image itself: the write would rewrite the
  # image as it reads it.
  cp --sparse=always "$img" "$T/self.img" && cp "$img.bmap" "$T/self.img.bmap"
  if self=$(losetup -f --show "$T/self.img" 2>/dev/null); then
    sum=$(sha256sum <"$T/self.img")
    expect_error "a loop device over the image itself" "$self: is a loop device over the image itself" \
      "$DIMIMAGE" flash --force --yes "$T/self.img" "$self"
    losetup -d "$self"
    [[ $(sha256sum <"$T/self.img") == "$sum" ]] && ok "... and the image left as it was" || fail "the image changed"
  else
    echo "skip - no second loop device here"
  fi
  check "--force writes the loop device" "$DIMIMAGE" flash --quiet --force --yes "$img" "$loop"
  losetup -d "$loop"
  check "the loop device's file holds the image's mapped blocks" bmaptool -q copy --bmap "$img.bmap" "$T/fsdev" /dev/null
else
  echo "skip - no loop devices here (needs root and losetup)"
fi

summary
