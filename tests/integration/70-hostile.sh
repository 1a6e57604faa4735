#!/usr/bin/env bash
# Issue 8: hostile inputs. Every one is generated here into $T (nothing big
# is checked in) and must give exactly one "dimimage: error:" line, a
# non-zero exit that is not a crash, no output file (nor a hidden
# temporary) and an unchanged base. Inputs that are odd but valid (CRLF,
# a BOM, 1 MB lines) must build, with the right values in the image.
# Already covered elsewhere, not repeated here: truncated .xz/.zst, gzip CRC
# mismatch, zip of two images, text file, empty file (05-source.sh); all-zero
# image, no partition table, overlapping partitions, partitions past the
# end, GPT (11-disk-refusals.sh); a full root fs with --no-grow
# (20-filesystems.sh); a source archive symlink escaping the tree (50-roles.sh).
# The FAT/ext4 refusals below match the problem, not the file named: they
# currently name OUT or its temporary rather than the base (reported).
source "$(dirname "$0")/../lib.sh"

small=(--boot-size 64 --cluster 512 --root-size 64)
good=$(fixture small "${small[@]}") || exit 1
PW=qT7vLm2Rz8KpWx4N
args=(--role observability --set "OPENOBSERVE_PASSWORD=$PW")
mkdir -p "$T/in" "$T/out"
cp --sparse=always "$good" "$T/in/base.img"

# outputs_left: the names left in $T/out (hidden temporaries included).
outputs_left() { ls -A "$T/out"; }

# refuse DESC PATTERN BASE [build args...]: the build must fail cleanly.
refuse() {
  local what=$1 pattern=$2 base=$3
  shift 3
  local before=absent after=absent
  [[ -e $base ]] && before=$(sha256sum <"$base")
  expect_error "$what" "$pattern" "$DIMIMAGE" build --base "$base" -o "$T/out/result.img" "$@"
  local left
  left=$(outputs_left)
  [[ -z $left ]] && ok "$what: no output left" || { fail "$what: left $left"; rm -rf "${T:?}/out/"{*,.[!.]*}; }
  [[ -e $base ]] && after=$(sha256sum <"$base")
  [[ $before == "$after" ]] && ok "$what: base unchanged" || fail "$what: base changed"
}

# accept DESC BASE [build args...]: the build must succeed; the image is
# left at $T/out/ok.img for the caller's checks (removed by the next call).
accept() {
  local what=$1 base=$2
  shift 2
  rm -f "$T/out/ok.img"*
  if "$DIMIMAGE" build --base "$base" -o "$T/out/ok.img" --quiet "$@" >"$T/accept.log" 2>&1; then
    # an error line belongs to a failed build only
    if grep -q '^dimimage: error:' "$T/accept.log"; then
      fail "$what: succeeded with an error line"; sed 's/^/    /' "$T/accept.log" | tail -n 10
      return 1
    fi
    ok "$what"
    return 0
  fi
  fail "$what (rc=$?)"; sed 's/^/    /' "$T/accept.log" | tail -n 10
  return 1
}

# ---- compressed and archived bases ----------------------------------------------
gzip -1 -c "$T/in/base.img" >"$T/in/full.img.gz"
head -c $(($(stat -c %s "$T/in/full.img.gz") / 2)) "$T/in/full.img.gz" >"$T/in/trunc.img.gz"
refuse "truncated .gz" 'trunc\.img\.gz.*(corrupt|truncated)' "$T/in/trunc.img.gz" "${args[@]}"
# cut before any trailer could be read: not a read error at a negative offset
head -c 3 "$T/in/full.img.gz" >"$T/in/stub.img.gz"
refuse "a .gz of 3 bytes" 'stub\.img\.gz: corrupt or truncated gzip data: 3 bytes, too few for a gzip file' \
  "$T/in/stub.img.gz" "${args[@]}"
# What the last trailer cannot vouch for is refused, as gzip -t fails it:
# a second member (whose corruption libarchive would not see) and bytes
# after the end.
gzip -c </dev/null >"$T/in/empty.gz"
cat "$T/in/full.img.gz" "$T/in/empty.gz" >"$T/in/multi.img.gz"
refuse "a multi-member .gz" 'multi\.img\.gz: cannot verify this gzip file: its trailer does not cover the data' \
  "$T/in/multi.img.gz" "${args[@]}"
{ cat "$T/in/full.img.gz"; printf 'GARBAGE!'; } >"$T/in/garbage.img.gz"
refuse "a .gz with bytes after its end" 'garbage\.img\.gz: cannot verify this gzip file' "$T/in/garbage.img.gz" "${args[@]}"
(cd "$T/in" && zip -q -P secret enc.zip base.img)
refuse "an encrypted zip, named as such" 'enc\.zip: the zip archive is encrypted: unzip it \(with its password\)' \
  "$T/in/enc.zip" "${args[@]}"
xz -T0 -1 -c "$T/in/base.img" >"$T/in/flip.img.xz"
printf '\xff\x00\xff\x00\xff\x00\xff\x00' | dd of="$T/in/flip.img.xz" bs=1 seek=$(($(stat -c %s "$T/in/flip.img.xz") / 2)) conv=notrunc status=none
refuse "corrupt .xz (bytes flipped mid-stream)" 'flip\.img\.xz.*(corrupt|truncated)' "$T/in/flip.img.xz" "${args[@]}"
head -c 4096 /dev/urandom >"$T/in/noise.img.zst"
refuse "random bytes named .zst" 'noise\.img\.zst' "$T/in/noise.img.zst" "${args[@]}"
(cd "$T/in" && zip -q -1 full.zip base.img)
head -c $(($(stat -c %s "$T/in/full.zip") / 2)) "$T/in/full.zip" >"$T/in/trunc.zip"
refuse "truncated .zip" 'trunc\.zip' "$T/in/trunc.zip" "${args[@]}"
cp "$T/in/full.zip" "$T/in/badcrc.zip"
# Corrupt compressed data in the middle of the member: the CRC must catch it.
printf '\xde\xad\xbe\xef' | dd of="$T/in/badcrc.zip" bs=1 seek=$(($(stat -c %s "$T/in/full.zip") / 2)) conv=notrunc status=none
refuse "corrupt .zip member" 'badcrc\.zip' "$T/in/badcrc.zip" "${args[@]}"
(cd "$T/in" && cp base.img b.img && cp base.img c.img && zip -q -0 three.zip base.img b.img c.img && rm b.img c.img)
refuse "zip of three images" 'three\.zip.*3 images' "$T/in/three.zip" "${args[@]}"
# A zip compressed again: read as a zip it gave its first entry, without
# the one-image rule (of these three images, base.img was built)
zstd -q -1 "$T/in/three.zip" -o "$T/in/three.zip.zst" && gzip -1 -k "$T/in/three.zip"
refuse "a .zip.zst: a zip, not a disk image" 'three\.zip\.zst: the decompressed data is a zip archive, not a disk image' \
  "$T/in/three.zip.zst" "${args[@]}"
refuse "a .zip.gz too" 'three\.zip\.gz: the decompressed data is a zip archive' "$T/in/three.zip.gz" "${args[@]}"
rm -f "$T/in/"*.gz "$T/in/"*.xz "$T/in/"*.zip "$T/in/"*.zst

# ---- file systems -------------------------------------------------------------------
boot_off=$(part_offset "$good" 1)
boot_sectors=$(sfdisk -J "$good" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["size"])')
cp --sparse=always "$good" "$T/in/fat12.img"
bcat "$good" /cmdline.txt >"$T/cmdline.txt"
bcat "$good" /config.txt >"$T/config.txt"
mkfs.fat -F 12 -s 64 -n BOOTFS --offset $((boot_off / 512)) "$T/in/fat12.img" $((boot_sectors / 2)) >/dev/null 2>&1
MTOOLS_SKIP_CHECK=1 mcopy -i "$T/in/fat12.img@@$boot_off" "$T/cmdline.txt" "$T/config.txt" ::/ 2>/dev/null
if [[ $(file -bs --offset "$boot_off" "$T/in/fat12.img" 2>/dev/null) == *"FAT (12 bit)"* ]] || python3 -c '
import sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])+54); sys.exit(f.read(8)!=b"FAT12   ")' "$T/in/fat12.img" "$boot_off"; then
  refuse "FAT12 boot partition" 'FAT12; only FAT16 and FAT32' "$T/in/fat12.img" "${args[@]}"
else
  fail "could not make a FAT12 boot partition"
fi
cp --sparse=always "$good" "$T/in/exfat.img"
# An exFAT boot sector (mkfs.exfat is not installed): OEM name "EXFAT   ",
# no BPB (bytes 11-63 zero), the signature, shift fields for 512-byte
# sectors and 4 KiB clusters; enough for anyone probing the type.
python3 - "$T/in/exfat.img" "$boot_off" "$boot_sectors" <<'PY'
import struct, sys
img, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bs = bytearray(512)
bs[0:3] = b"\xeb\x76\x90"
bs[3:11] = b"EXFAT   "
struct.pack_into("<QQIIIIIIHH", bs, 64, 0, n, 24, 8, 32, n // 8 - 8, 4, 0x12345678, 0x0100, 0)
bs[108] = 9   # BytesPerSectorShift
bs[109] = 3   # SectorsPerClusterShift
bs[110] = 1   # NumberOfFats
bs[510:512] = b"\x55\xaa"
with open(img, "r+b") as f:
    f.seek(off)
    f.write(bs)
PY
refuse "exFAT boot partition" 'exfat\.img.*no FAT boot partition|exFAT; only FAT16 and FAT32' "$T/in/exfat.img" "${args[@]}"

cp --sparse=always "$good" "$T/in/recover.img"
debugfs -w -R 'feature needs_recovery' "$(rootfs "$T/in/recover.img")" >/dev/null 2>&1
if debugfs -R features "$(rootfs "$T/in/recover.img")" 2>/dev/null | grep -q needs_recovery; then
  refuse "ext4 needing journal recovery" 'not clean \(its journal needs recovery\).*e2fsck' "$T/in/recover.img" "${args[@]}"
else
  fail "could not set needs_recovery"
fi
cp --sparse=always "$good" "$T/in/errors.img"
debugfs -w -R 'ssv state 2' "$(rootfs "$T/in/errors.img")" >/dev/null 2>&1
if tune2fs -l "$(rootfs "$T/in/errors.img")" 2>/dev/null | grep -q 'state:.*with errors'; then
  refuse "ext4 marked with errors" 'not clean \(it is marked as having errors\).*e2fsck' "$T/in/errors.img" "${args[@]}"
else
  fail "could not mark the root fs with errors"
fi
# A directory block that cannot be read (its checksum does not match: a
# bad sector, a bit flipped) under a file the build only looks at: no
# absence, but an error, and not an error line over an image built anyway
# (exit 0) without what it held (iso3166.tab: the Wi-Fi countries).
cp --sparse=always "$good" "$T/in/baddir.img"
zblk=$(debugfs -R 'blocks /usr/share/zoneinfo' "$(rootfs "$T/in/baddir.img")" 2>/dev/null | awk '{ print $1 }')
if [[ $zblk =~ ^[0-9]+$ ]]; then
  printf 'garbage%.0s' {1..100} | dd of="$T/in/baddir.img" bs=1 conv=notrunc status=none \
    seek=$(($(part_offset "$T/in/baddir.img" 2) + zblk * $(debugfs -R stats "$(rootfs "$T/in/baddir.img")" 2>/dev/null | awk '/^Block size:/ { print $3 }') + 24))
  refuse "ext4: a directory block that does not match its checksum, under a file only looked at" \
    'baddir\.img: ext4 /usr/share/zoneinfo/iso3166\.tab: looking up: Directory block checksum does not match' \
    "$T/in/baddir.img" "${args[@]}"
  expect_rc "... a data error" 65
else
  fail "no block for /usr/share/zoneinfo in the fixture: $zblk"
fi

mkdir -p "$T/extra/opt"
echo 'not a directory' >"$T/extra/opt/dimdim-health"
optfile=$(fixture opt-file "${small[@]}" --extra-root "$T/extra") || exit 1
cp --sparse=always "$optfile" "$T/in/opt-file.img"
refuse "/opt/dimdim-health a regular file in the base" '/opt/dimdim-health is not a directory .*in the base' \
  "$T/in/opt-file.img" "${args[@]}"
expect_rc "a file in the base where a directory goes is bad input data" 65
# The same for the directory of a symlink the build makes (Bookworm, --user:
# getty@tty1 re-enabled), found behind the path, not at it.
mkdir -p "$T/wants/etc/systemd/system"
echo 'not a directory' >"$T/wants/etc/systemd/system/getty.target.wants"
wantsfile=$(fixture getty-wants-file "${small[@]}" --extra-root "$T/wants") || exit 1
refuse "getty.target.wants a regular file in the base" \
  'getty@tty1\.service: /etc/systemd/system/getty\.target\.wants is not a directory .*in the base' \
  "$wantsfile" "${args[@]}" --user pi
expect_rc "a file in the base where a symlink's directory goes" 65
# Paths the build only probes (keyboard layouts, locales), unreachable in
# the base behind a file or a symlink loop: absent, as lstat says, not an
# error line in front of a build that succeeds.
mkdir -p "$T/odd/usr/share"
echo 'not a directory' >"$T/odd/usr/share/X11"
ln -s i18n "$T/odd/usr/share/i18n"
oddbase=$(fixture odd-share "${small[@]}" --extra-root "$T/odd") || exit 1
if accept "probed paths behind a file or a symlink loop" "$oddbase" "${args[@]}"; then
  check "probed paths unreachable: e2fsck -fn clean" e2fsck -fn "$(rootfs "$T/out/ok.img")"
fi
rm -f "$T/in/fat12.img" "$T/in/exfat.img" "$T/in/recover.img" "$T/in/errors.img" "$T/in/opt-file.img" "$T/out/ok.img"*

# ---- boot partitions that set up the first boot some other way ---------------------
# Raspberry Pi Imager's customisation (firstrun.sh run by systemd.run= on
# bookworm, cloud-init's seed on trixie), userconf.txt beside --user: built
# over, the two fight at first boot (firstrun.sh renames the user, sets its
# host name and cuts cmdline.txt from systemd.run= on, the Wi-Fi country
# dimimage appended with it) or dimimage's user-data silently drops
# Imager's user and Wi-Fi.  Raspberry Pi OS's own comment-only seed files
# and a built image's own build.
mcopy_boot() { # mcopy_boot IMG FILE...: onto the boot partition's root
  local img=$1
  shift
  MTOOLS_SKIP_CHECK=1 mcopy -o -i "$img@@$(part_offset "$img" 1)" "$@" ::/
}
mkdir -p "$T/imager"
make_key
printf '%s systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target' \
  "$(head -n 1 "$T/cmdline.txt")" >"$T/imager/cmdline.txt"
printf '#!/bin/bash\nset +e\nrm -f /boot/firstrun.sh\nsed -i "s| systemd.run.*||g" /boot/cmdline.txt\nexit 0\n' \
  >"$T/imager/firstrun.sh"
cp --sparse=always "$good" "$T/in/imager.img"
mcopy_boot "$T/in/imager.img" "$T/imager/cmdline.txt" "$T/imager/firstrun.sh"
refuse "bookworm customised by Imager (firstrun.sh)" \
  'imager\.img: boot partition: cmdline\.txt runs /boot/firstrun\.sh at first boot' \
  "$T/in/imager.img" "${args[@]}" --wifi-country DE
# shellcheck disable=SC2016 # a crypt hash, not an expansion
printf 'bob:$y$j9T$Q8yQ0kS1d1G5rG0lKx0ZP.$0Xz4w6tQ\n' >"$T/imager/userconf.txt"
cp --sparse=always "$good" "$T/in/userconf.img"
mcopy_boot "$T/in/userconf.img" "$T/imager/userconf.txt"
refuse "userconf.txt beside --user" 'userconf\.img: boot partition: userconf\.txt would be ignored' \
  "$T/in/userconf.img" "${args[@]}" --user pi --ssh-key "$T/key.pub"
accept "userconf.txt without --user (userconf-pi reads it)" "$T/in/userconf.img" "${args[@]}"
rm -f "$T/out/ok.img"*
trixie=$(fixture trixie-small --flavour trixie --boot-size 64 --cluster 512 --root-size 200) || exit 1
printf '#cloud-config\n# set up by Raspberry Pi Imager\n\nusers:\n- name: bob\n  lock_passwd: false\n' \
  >"$T/imager/user-data"
cp --sparse=always "$trixie" "$T/in/cloudinit.img"
mcopy_boot "$T/in/cloudinit.img" "$T/imager/user-data"
refuse "trixie customised by Imager (user-data)" \
  'cloudinit\.img: boot partition: user-data holds cloud-init settings' "$T/in/cloudinit.img" "${args[@]}"
printf '#cloud-config\n# comments only, as Raspberry Pi OS ships it\n#users:\n#- name: bob\n' >"$T/imager/user-data"
printf '# netplan\n#network:\n#  version: 2\n' >"$T/imager/network-config"
cp --sparse=always "$trixie" "$T/in/stockseed.img"
mcopy_boot "$T/in/stockseed.img" "$T/imager/user-data" "$T/imager/network-config"
if accept "trixie with comment-only seed files" "$T/in/stockseed.img" "${args[@]}" --user pi --ssh-key "$T/key.pub"; then
  mv "$T/out/ok.img" "$T/in/built.img"
  rm -f "$T/out/ok.img"*
  # dimimage's own output as a base: refused, naming that build and what
  # of it would stay (its user, whom this build does not name), unless
  # --allow-built-base, which builds over it with that said once
  refuse "a built image as the base" \
    'built\.img: built by dimimage already \(role observability, user pi, from stockseed\.img\): a build over it keeps .*\(user pi with their SSH keys and sudo, .*, or pass --allow-built-base$' \
    "$T/in/built.img" "${args[@]}"
  if accept "a built trixie image built again with --allow-built-base (its own user-data)" "$T/in/built.img" \
    "${args[@]}" --allow-built-base; then
    check "built again: one warning, naming the old user" \
      test "$(grep -c 'warning: .*built\.img: built by dimimage already (.*user pi with their SSH keys' "$T/accept.log")" = 1
  fi
  # the same user again: nothing of theirs is said to stay
  expect_error "a built image as the base, the same user" 'built by dimimage already \([^)]*\): a build over it keeps what that build set and this one does not replace \(a Wi-Fi' \
    "$DIMIMAGE" build --base "$T/in/built.img" -o "$T/out/same.img" "${args[@]}" --user pi --ssh-key "$T/key.pub"
  expect_rc "a built image as the base, the same user" 65
fi
rm -f "$T/in/imager.img" "$T/in/userconf.img" "$T/in/cloudinit.img" "$T/in/stockseed.img" "$T/in/built.img"* "$T/out/"*

# ---- overlays and source archives escaping their tree ------------------------------
data=$T/data
mkdir -p "$data"
cp -r "$TOP/profiles" "$TOP/overlays" "$data/"
ln -s ../../../../../etc/shadow "$data/overlays/observability/escape"
DIMIMAGE_DATADIR=$data refuse "overlay symlink escaping the overlay tree" 'escape.*(outside|escap)' "$T/in/base.img" "${args[@]}"
rm "$data/overlays/observability/escape"
ln -s /etc/shadow "$data/overlays/observability/absolute"
DIMIMAGE_DATADIR=$data refuse "overlay symlink to an absolute path outside the overlay" 'absolute.*(outside|escap|absolute)' \
  "$T/in/base.img" "${args[@]}"
rm -rf "$data"

app=(--role app --set DB_PASSWORD=Tr0ub4dor-and-3-horses --set "OPENOBSERVE_PASSWORD=$PW")
# mk_tar NAME MEMBER-SPEC...: a tar built by Python, as tar(1) refuses to
# write most of these. SPEC is file:NAME, dir:NAME, symlink:NAME:TARGET or
# hardlink:NAME:TARGET.
mk_tar() {
  python3 - "$@" <<'PY'
import io, sys, tarfile
out, specs = sys.argv[1], sys.argv[2:]
with tarfile.open(out, "w") as t:
    for d in ("src/deploy",):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
    for name in ("src/deploy/Dockerfile.api", "src/deploy/Dockerfile.worker"):
        data = b"FROM scratch\n"; ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    for s in specs:
        kind, name, *rest = s.split(":")
        ti = tarfile.TarInfo(name)
        if kind == "file":
            data = b"evil\n"; ti.size = len(data); t.addfile(ti, io.BytesIO(data)); continue
        if kind == "dir": ti.type = tarfile.DIRTYPE
        elif kind == "symlink": ti.type = tarfile.SYMTYPE; ti.linkname = rest[0]
        elif kind == "hardlink": ti.type = tarfile.LNKTYPE; ti.linkname = rest[0]
        t.addfile(ti)
PY
}
mk_tar "$T/in/dotdot.tar" "file:src/../../evil"
refuse "source archive with a ../ path" 'dotdot\.tar.*(\.\.|outside)' "$T/in/base.img" "${app[@]}" --source "$T/in/dotdot.tar"
mk_tar "$T/in/abs.tar" "file:/etc/evil"
refuse "source archive with an absolute path" 'abs\.tar.*(absolute|outside|/etc/evil)' "$T/in/base.img" "${app[@]}" --source "$T/in/abs.tar"
mk_tar "$T/in/reldir.tar" "symlink:src/up:../../.." "file:src/up/etc/evil"
refuse "source archive writing through a symlink that escapes" 'reldir\.tar.*(outside|symlink|escap)' "$T/in/base.img" "${app[@]}" --source "$T/in/reldir.tar"
mk_tar "$T/in/hard.tar" "hardlink:src/shadow:/etc/shadow"
refuse "source archive with a hard link outside the tree" 'hard\.tar.*(outside|link|absolute)' "$T/in/base.img" "${app[@]}" --source "$T/in/hard.tar"
rm -f "$T/in/"*.tar

# ---- YAML: alias bombs, deep nesting, huge scalars ---------------------------------
# yaml_bomb FILE PREFIX: a "billion laughs" document under PREFIX's key.
yaml_bomb() {
  {
    printf '%s\n' "$2"
    printf 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in $(seq 1 9); do
      printf 'a%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n' "$i" "$i" $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1))
    done
  } >"$1"
}
# yaml_deep FILE PREFIX: 100000 nested flow sequences.
yaml_deep() { { printf '%s\nx: ' "$2"; python3 -c 'print("[" * 100000 + "]" * 100000)'; } >"$1"; }
# yaml_huge FILE PREFIX: a 32 MiB scalar.
yaml_huge() { { printf '%s\nx: "' "$2"; head -c $((32 << 20)) /dev/zero | tr '\0' a; printf '"\n'; } >"$1"; }

cp "$TOP/profiles/observability.yml" "$T/prof.yml"
host_head='hostname: dimdim-obs'
fleet_head="name: f
hosts:
  - {name: dimdim-obs, role: observability, address: 192.168.1.102}
network: {prefix: 24, gateway: 192.168.1.1}"
prof_head=$(grep -v '^#' "$TOP/profiles/observability.yml")
for kind in bomb deep huge; do
  "yaml_$kind" "$T/in/host-$kind.yml" "$host_head"
  refuse "--host YAML $kind" "host-$kind\.yml" "$T/in/base.img" "${args[@]}" --host "$T/in/host-$kind.yml"
  "yaml_$kind" "$T/in/prof-$kind.yml" "$prof_head"
  refuse "--role profile YAML $kind" "prof-$kind\.yml" "$T/in/base.img" --role "$T/in/prof-$kind.yml" --set OPENOBSERVE_PASSWORD=$PW
  "yaml_$kind" "$T/in/fleet-$kind.yml" "$fleet_head"
  before=$(sha256sum <"$T/in/base.img")
  expect_error "--fleet YAML $kind" "fleet-$kind\.yml" "$DIMIMAGE" build --fleet "$T/in/fleet-$kind.yml" --base "$T/in/base.img" -o "$T/out/fleet" --set OPENOBSERVE_PASSWORD=$PW
  [[ -z $(outputs_left) ]] && ok "--fleet YAML $kind: no output left" || { fail "--fleet YAML $kind: left $(outputs_left)"; rm -rf "$T/out/fleet"; }
  [[ $(sha256sum <"$T/in/base.img") == "$before" ]] && ok "--fleet YAML $kind: base unchanged" || fail "--fleet YAML $kind: base changed"
  rm -f "$T/in/"*-"$kind".yml
done

# ---- .env files -----------------------------------------------------------------------
printf 'OPENOBSERVE_PASSWORD=%s\nOPENOBSERVE_EMAIL=a\0b@example.com\n' "$PW" >"$T/in/nul.env"
refuse ".env with a NUL byte" 'nul\.env(:2)?.*(NUL|nul|binary|control)' "$T/in/base.img" --role observability --env "$T/in/nul.env"

# env_value IMG KEY: KEY's value in the image's /opt/dimdim-health/.env
# (unquoting single quotes as dotenv writes them).
env_value() { rcat "$1" /opt/dimdim-health/.env | sed -n "s/^$2=//p" | sed "s/^'\(.*\)'\$/\1/"; }

printf 'OPENOBSERVE_PASSWORD=%s\r\nOPENOBSERVE_EMAIL=ops@example.com\r\n# comment\r\n' "$PW" >"$T/in/crlf.env"
if accept ".env with CRLF line ends accepted" "$T/in/base.img" --role observability --env "$T/in/crlf.env"; then
  [[ $(env_value "$T/out/ok.img" OPENOBSERVE_EMAIL) == ops@example.com ]] && ok "CRLF: value has no CR" \
    || fail "CRLF: OPENOBSERVE_EMAIL is $(env_value "$T/out/ok.img" OPENOBSERVE_EMAIL | od -c | head -n 2)"
  [[ $(env_value "$T/out/ok.img" OPENOBSERVE_PASSWORD) == "$PW" ]] && ok "CRLF: secret without CR" || fail "CRLF: password value wrong"
  rcat "$T/out/ok.img" /opt/dimdim-health/.env | grep -q $'\r' && fail "CRLF: a CR in the image's .env" || ok "CRLF: no CR in the image's .env"
fi

printf '\xef\xbb\xbfOPENOBSERVE_EMAIL=bom@example.com\nOPENOBSERVE_PASSWORD=%s\n' "$PW" >"$T/in/bom.env"
if accept ".env with a UTF-8 BOM accepted" "$T/in/base.img" --role observability --env "$T/in/bom.env"; then
  [[ $(env_value "$T/out/ok.img" OPENOBSERVE_EMAIL) == bom@example.com ]] && ok "BOM: first key parsed" \
    || fail "BOM: OPENOBSERVE_EMAIL is '$(env_value "$T/out/ok.img" OPENOBSERVE_EMAIL)'"
  rcat "$T/out/ok.img" /opt/dimdim-health/.env | grep -q $'\xef\xbb\xbf' && fail "BOM: BOM copied into the image" || ok "BOM: not copied into the image"
fi

long=$(head -c 1048576 /dev/zero | tr '\0' x)
printf 'OPENOBSERVE_PASSWORD=%s\nEXTRA_LONG_VALUE=%s\nOPENOBSERVE_EMAIL=long@example.com\n' "$PW" "$long" >"$T/in/long.env"
if accept ".env with a 1 MiB line accepted" "$T/in/base.img" --role observability --env "$T/in/long.env"; then
  [[ $(env_value "$T/out/ok.img" EXTRA_LONG_VALUE | wc -c) == 1048577 ]] && ok "1 MiB value intact in the image" \
    || fail "1 MiB value: $(env_value "$T/out/ok.img" EXTRA_LONG_VALUE | wc -c) bytes"
  [[ $(env_value "$T/out/ok.img" OPENOBSERVE_EMAIL) == long@example.com ]] && ok "line after the 1 MiB line parsed" || fail "line after the 1 MiB line"
fi
rm -f "$T/out/ok.img"*
printf 'OPENOBSERVE_PASSWORD=%s\n%s\n' "$PW" "$long" >"$T/in/longbad.env"
refuse ".env with a 1 MiB line without '=' refused with its line" 'longbad\.env:2' "$T/in/base.img" --role observability --env "$T/in/longbad.env"

# A secret pasted on the line after its KEY= : the first '=' of its base64
# makes it a key, which the error must not quote.
pasted=q8X+/k2Lm9zQwR7vT1pYb3Hs0uJc5eNa6dWf4gKi8oM=
printf 'OPENOBSERVE_PASSWORD=\n%s\n' "$pasted" >"$T/in/pasted.env"
refuse ".env with a secret pasted on its own line" 'pasted\.env:2: invalid variable name' "$T/in/base.img" --role observability --env "$T/in/pasted.env"
grep -qF -e "${pasted:0:4}" -e "${pasted:4:8}" "$T/.err" "$T/.out" && fail "pasted secret: echoed in the error" || ok "pasted secret: not echoed"

# ---- the .env written for Compose v1 ------------------------------------------------
# Bookworm's docker-compose 1.29 reads the .env with python-dotenv
# (dotenv_values(path, encoding='utf-8-sig', interpolate=True)): every value
# that dimimage accepts for a bookworm base must read back the same there.
# shellcheck disable=SC1003,SC2016 # literal backslashes and dollars, on purpose
v1vals=('plain-value_1.2:3@x' 'two words # not a comment' "it's \"quoted\"" 'C:\dir\' 'a\\b c'
        'pa$word with space' 'cost 5$ and \n' $'line 1\nline 2' $'tab\there' $'a\r\nb' '#starts with hash'
        ' padded ' "x=\"y\" 'z'" 'ends in quote"' $'caf\xc3\xa9 \xe2\x9c\x93' $'\x01ctrl\x7f' 'p${a:b}q' '$HOME'
        'back\"slash' "'")
v1args=()
for i in "${!v1vals[@]}"; do v1args+=(--set "V1_$i=${v1vals[$i]}"); done
if ! python3 -c 'import dotenv' 2>/dev/null; then
  ok "skip - Compose v1 .env read-back: python3-dotenv is not installed"
elif accept "bookworm: values Compose v1 reads alike accepted" "$T/in/base.img" "${args[@]}" "${v1args[@]}"; then
  rcat "$T/out/ok.img" /opt/dimdim-health/.env >"$T/v1.env"
  if msg=$(python3 - "$T/v1.env" "${v1vals[@]}" 2>&1 <<'PY'
import sys
import os
from dotenv import dotenv_values
os.environ.clear()  # nothing from here may fill a ${...}
got = dotenv_values(sys.argv[1], encoding='utf-8-sig', interpolate=True)
bad = [f'V1_{i}: {got.get(f"V1_{i}")!r} != {v!r}' for i, v in enumerate(sys.argv[2:]) if got.get(f'V1_{i}') != v]
print('\n'.join(bad))
sys.exit(1 if bad else 0)
PY
  ); then ok "bookworm: python-dotenv reads every value back as given"; else fail "bookworm: python-dotenv read back: $msg"; fi
fi
rm -f "$T/out/ok.img"*
# shellcheck disable=SC1003,SC2016 # literal backslashes and dollars, on purpose
for v in 'abc${HOME}def' 'x${A:-b}' "it's \$5" 'x$y\\z' 'x$y\'; do
  refuse "bookworm: a value Compose v1 would read differently refused" 'the value of V1_BAD would be read differently by Compose v1.*change the value' \
    "$T/in/base.img" "${args[@]}" --set "V1_BAD=$v"
  grep -qF -- "$v" "$T/.err" && fail "bookworm: the refused value was printed" || ok "bookworm: the refused value not printed"
done
# shellcheck disable=SC2016 # a literal ${X}, on purpose
printf 'OPENOBSERVE_PASSWORD=%s\n\nV1_BAD='"'"'%s'"'"'\n' "$PW" 'it$s ${X}' >"$T/in/v1bad.env"
refuse "bookworm: refusal names the file and line" 'v1bad\.env:3: the value of V1_BAD' \
  "$T/in/base.img" --role observability --env "$T/in/v1bad.env"
trixie=$(fixture trixie --flavour trixie) || exit 1
# shellcheck disable=SC2016 # literal dollars, on purpose
if accept "trixie: a value only Compose v1 would misread is accepted" "$trixie" "${args[@]}" --set "V1_BAD=it's \$5 \${X}"; then
  rcat "$T/out/ok.img" /opt/dimdim-health/.env | grep -qxF 'V1_BAD="it'"'"'s \$5 \${X}"' \
    && ok "trixie: written for compose-go as before" || fail "trixie: $(rcat "$T/out/ok.img" /opt/dimdim-health/.env | grep V1_BAD)"
fi
rm -f "$T/out/ok.img"*

[[ $(sha256sum <"$T/in/base.img") == $(sha256sum <"$good") ]] && ok "the base copy is unchanged after everything" || fail "base copy changed"
summary
