#!/usr/bin/env bash
# Issue 3: builds over fixtures with each ext4 feature set, FAT16 (8.3
# upper-case names, a crowded and a full root directory) and FAT32 (512-byte
# and 4 KiB clusters, orphaned long-name entries); every output fsck-clean with the contracted files,
# modes and owners (debugfs, mtools).  Room: a full root filesystem is grown
# (automatically and with --grow) or refused with --no-grow.
source "$(dirname "$0")/../lib.sh"
make_key
export SOURCE_DATE_EPOCH=1764547200
DBPW='Tr0ub4dor-and-3-horses'
# FAT32 needs 65525 clusters: 512-byte clusters keep the boot partition (and fsck) small.
SMALL=(--boot-size 64 --cluster 512 --root-size 200)

build() { # build OUT BASE [extra options...]
  local out=$1 base=$2
  shift 2
  "$DIMIMAGE" build --role app --base "$base" -o "$out" --quiet --hostname dimdim-fs --user pi \
    --ssh-key "$T/key.pub" --ip 192.168.1.101/24 --gateway 192.168.1.1 \
    --set DB_PASSWORD="$DBPW" --set DIMDIM_API_IMAGE=x/api:1 --set DIMDIM_WORKER_IMAGE=x/worker:1 "$@"
}

# One debugfs run per batch of commands (the machine may be busy; a run per
# path would dominate the script's time).  snap IMG CMD...: runs them all;
# snap_get CMD prints that command's output.
snap() {
  local img=$1
  shift
  printf '%s\n' "$@" >"$T/snap.cmd"
  debugfs -f "$T/snap.cmd" "$(rootfs "$img")" >"$T/snap.out" 2>/dev/null
}
snap_get() { awk -v c="debugfs: $1" '/^debugfs: / { on = ($0 == c); next } on' "$T/snap.out"; }
# snap_stat PATH: "MODE UID GID TYPE", as lib.sh's rstat.
snap_stat() {
  snap_get "stat $1" | awk '
    /Type:/ { for (i = 1; i <= NF; i++) { if ($i == "Type:") t = $(i+1); if ($i == "Mode:") m = $(i+1) } }
    /^User:/ { u = $2; g = $4 }
    END { if (t != "") printf "%s %s %s %s\n", m, u, g, t }'
}
snap_link() { snap_get "stat $1" | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'; }
# snap_ls DIR: "MODE UID GID NAME" per entry.
snap_ls() { snap_get "ls -p $1" | awk -F/ 'NF >= 7 && $6 != "." && $6 != ".." { printf "%s %s %s %s\n", $3, $4, $5, $6 }'; }

want_stat() { # want_stat WHAT PATH "MODE UID GID TYPE" (from the last snap)
  local got
  got=$(snap_stat "$2")
  [[ $got == "$3" ]] && ok "$1: $2 $3" || fail "$1: $2 is '$got', want '$3'"
}

# The contracted paths with their modes and owners, and fsck on both filesystems.
check_image() {
  local what=$1 img=$2
  check "$what: e2fsck -fn and fsck.fat -n clean" fsck_image "$img"
  local S=/etc/systemd/system W=/etc/systemd/system/multi-user.target.wants
  local paths=(/opt/dimdim-health/deploy/docker-compose.app.yml /opt/dimdim-health/.env /etc/hostname /etc/hosts
    /etc/NetworkManager/system-connections/dimdim-eth.nmconnection /etc/dimimage/manifest.json
    /home/pi /home/pi/.ssh /home/pi/.ssh/authorized_keys)
  local cmds=("ls -p $S" "ls -p $W") f
  for f in "${paths[@]}"; do cmds+=("stat $f"); done
  rm -rf "$T/dump" && mkdir "$T/dump"
  for f in .env hostname hosts manifest.json authorized_keys; do cmds+=("dump $(printf '%s\n' "${paths[@]}" | grep -m1 "/$f\$") $(dbgq "$T/dump/$f")"); done
  snap "$img" "${cmds[@]}"
  local units wants
  units=$(snap_ls $S | grep ' dimdim-.*\.service$')
  wants=$(snap_ls $W | grep ' dimdim-.*\.service$')
  want_stat "$what" /opt/dimdim-health/deploy/docker-compose.app.yml "0644 0 0 regular"
  want_stat "$what" /opt/dimdim-health/.env "0600 0 0 regular"
  grep -qF -- "$DBPW" "$T/dump/.env" && ok "$what: .env holds DB_PASSWORD" || fail "$what: .env lacks DB_PASSWORD"
  want_stat "$what" /etc/hostname "0644 0 0 regular"
  [[ $(<"$T/dump/hostname") == dimdim-fs ]] && ok "$what: /etc/hostname content" || fail "$what: /etc/hostname content"
  want_stat "$what" /etc/hosts "0644 0 0 regular"
  grep -Eq '^127\.0\.1\.1[[:space:]]+dimdim-fs$' "$T/dump/hosts" && ok "$what: /etc/hosts names the host" || fail "$what: /etc/hosts"
  want_stat "$what" /etc/NetworkManager/system-connections/dimdim-eth.nmconnection "0600 0 0 regular"
  want_stat "$what" /etc/dimimage/manifest.json "0644 0 0 regular"
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/dump/manifest.json" 2>/dev/null \
    && ok "$what: manifest.json is JSON" || fail "$what: manifest.json is not JSON"
  want_stat "$what" /home/pi "0700 1000 1000 directory"
  want_stat "$what" /home/pi/.ssh "0700 1000 1000 directory"
  want_stat "$what" /home/pi/.ssh/authorized_keys "0600 1000 1000 regular"
  grep -qF "$(cut -d' ' -f2 "$T/key.pub")" "$T/dump/authorized_keys" \
    && ok "$what: authorized_keys holds the key" || fail "$what: authorized_keys content"
  local bad=0 n=0 mode uid gid name
  while read -r mode uid gid name; do
    [[ -z $name ]] && continue
    n=$((n + 1))
    [[ $mode == 100644 && $uid == 0 && $gid == 0 ]] || { bad=1; echo "    $name: $mode $uid:$gid"; }
  done <<<"$units"
  ((n >= 2 && bad == 0)) && ok "$what: $n dimdim-*.service units 0644 root" || fail "$what: units ($n, bad=$bad)"
  cmds=()
  while read -r mode uid gid name; do [[ -n $name ]] && cmds+=("stat $W/$name"); done <<<"$wants"
  ((${#cmds[@]})) && snap "$img" "${cmds[@]}"
  n=0 bad=0
  while read -r mode uid gid name; do
    [[ -z $name ]] && continue
    n=$((n + 1))
    [[ $mode == 120777 && $(snap_link "$W/$name") == "$S/$name" ]] && grep -q " $name\$" <<<"$units" \
      || { bad=1; echo "    wants/$name: $mode -> $(snap_link "$W/$name")"; }
  done <<<"$wants"
  ((n >= 1 && bad == 0)) && ok "$what: $n enablement symlinks to existing units" || fail "$what: enablement symlinks ($n, bad=$bad)"
}

no_output() { ! compgen -G "$1*" >/dev/null; }

# fat32_clusters WHAT IMG BYTES: minfo says FAT32 with clusters of BYTES.
fat32_clusters() {
  local info
  info=$(MTOOLS_SKIP_CHECK=1 minfo -i "$(bootfs "$2")" ::)
  grep -q 'disk type="FAT32' <<<"$info" && grep -q "^cluster size: $(($3 / 512)) sectors" <<<"$info" \
    && ok "$1: FAT32 with $3-byte clusters (minfo)" || fail "$1: not FAT32/$3: $(grep -E 'disk type|cluster size' <<<"$info" | tr '\n' ' ')"
}

# ---- ext4 feature sets (boot: FAT32, 512-byte clusters) ----
for feat in default ^64bit orphan_file metadata_csum_seed inline_data; do
  opts=("${SMALL[@]}")
  [[ $feat != default ]] && opts+=(--ext4-features "$feat")
  base=$(fixture "ext4-$feat" "${opts[@]}") || { fail "$feat: fixture"; continue; }
  features=$(tune2fs -l "$(rootfs "$base")" 2>/dev/null | sed -n 's/^Filesystem features: *//p')
  case $feat in
    default) [[ " $features " == *" 64bit "* && " $features " == *" metadata_csum "* ]] ;;
    ^64bit) [[ " $features " != *" 64bit "* ]] ;;
    *) [[ " $features " == *" $feat "* ]] ;;
  esac && ok "ext4 $feat: fixture has it ($features)" || fail "ext4 $feat: fixture features: $features"
  [[ $feat == default ]] && fat32_clusters "ext4 $feat fixture" "$base" 512
  out=$T/ext4-${feat#^}.img
  if build "$out" "$base" >"$T/build.log" 2>&1; then ok "ext4 $feat: build"; else fail "ext4 $feat: build"; sed 's/^/    /' "$T/build.log"; continue; fi
  check_image "ext4 $feat" "$out"
  [[ $feat == default ]] && { MTOOLS_SKIP_CHECK=1 mdir -b -i "$(bootfs "$out")" ::/ | grep -qx '::/ssh' \
    && ok "FAT32 512: ssh file on the boot partition" || fail "FAT32 512: no ssh file"; }
  rm -f "$out"*
done

# ---- FAT32 with 4 KiB clusters (512-byte ones: above), and the default 2 KiB ----
for cl in 4096 2048; do
  size=$((cl / 16 + cl / 256)) # MiB: FAT32 needs 65525 clusters
  base=$(fixture "fat32-$cl" --boot-size "$size" --root-size 200 --cluster "$cl") || { fail "fat32-$cl: fixture"; continue; }
  fat32_clusters "FAT32 $cl fixture" "$base" "$cl"
  out=$T/fat32-$cl.img
  if build "$out" "$base" >"$T/build.log" 2>&1; then ok "FAT32 $cl: build"; else fail "FAT32 $cl: build"; sed 's/^/    /' "$T/build.log"; continue; fi
  check_image "FAT32 $cl" "$out"
  MTOOLS_SKIP_CHECK=1 mdir -b -i "$(bootfs "$out")" ::/ | grep -qx '::/ssh' && ok "FAT32 $cl: ssh file on the boot partition" || fail "FAT32 $cl: no ssh file"
  rm -f "$out"*
done

# ---- FAT16: upper-case 8.3 names, crowded and full root directory ----
# free_root IMG: free entries in the FAT16 fixed root directory.
free_root() {
  python3 - "$1" "$(part_offset "$1" 1)" <<'PY'
import struct, sys
with open(sys.argv[1], 'rb') as f:
    f.seek(int(sys.argv[2]))
    bs = f.read(512)
    bps, spc, res, nfats, nroot = struct.unpack_from('<HBHBH', bs, 11)
    fatsz = struct.unpack_from('<H', bs, 22)[0]
    f.seek(int(sys.argv[2]) + (res + nfats * fatsz) * bps)
    d = f.read(nroot * 32)
print(sum(1 for i in range(nroot) if d[i * 32] in (0, 0xE5)))
PY
}
# A directory of N upper-case 8.3 files (one directory entry each), kept with
# the fixtures so lib.sh's cache key (which names the directory) stays valid.
crowd_dir() {
  local dir=$FIXTURES/crowd-boot-$1
  if [[ ! -d $dir ]]; then
    mkdir -p "$dir.tmp"
    for ((i = 0; i < $1; i++)); do printf 'filler %d\n' "$i" >"$dir.tmp/$(printf 'FILL%03d.TXT' "$i")"; done
    touch -d "@$SOURCE_DATE_EPOCH" "$dir.tmp"/*
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}
mkdir -p "$FIXTURES"
FAT16=(--fat 16 --uppercase-83 --fat-root-entries 64 --boot-size 64 --root-size 200)
base=$(fixture fat16-crowded "${FAT16[@]}" --extra-boot "$(crowd_dir 28)") || { fail "fat16-crowded: fixture"; summary; exit; }
free=$(free_root "$base")
((free >= 1 && free <= 4)) && ok "fat16 crowded fixture: $free of 64 root entries free" || fail "fat16 crowded fixture: $free root entries free"
before=$(sha256sum <"$base")
out=$T/fat16.img
if build "$out" "$base" >"$T/build.log" 2>&1; then
  ok "FAT16 crowded root: build"
  check_image "FAT16" "$out"
  listing=$(MTOOLS_SKIP_CHECK=1 mdir -a -i "$(bootfs "$out")" ::/)
  grep -Eq '^CMDLINE +TXT +[0-9]+ ' <<<"$listing" && grep -Eq '^CONFIG +TXT +[0-9]+ ' <<<"$listing" \
    && ok "FAT16: CMDLINE.TXT and CONFIG.TXT keep their upper-case 8.3 names" || { fail "FAT16: 8.3 names"; printf '    %s\n' "$listing"; }
  grep -Eiq '^(cmdline|config)[^ ]* +txt .*(cmdline|config)\.txt' <<<"$listing" && fail "FAT16: a long name was added" || ok "FAT16: no long-name duplicate of cmdline/config"
  bcat "$out" /config.txt | grep -q '^gpu_mem=' && bcat "$out" /config.txt | grep -q dimimage \
    && ok "FAT16: config.txt holds dimimage's gpu_mem block" || fail "FAT16: config.txt lacks the gpu_mem block"
  grep -q 'root=PARTUUID=2a7c1d5e-02' <(bcat "$out" /cmdline.txt) && ok "FAT16: cmdline.txt still names the root" || fail "FAT16: cmdline.txt"
  n=$(grep -c '^FILL' <<<"$listing")
  ((n == 28)) && ok "FAT16: the 28 crowding files survive" || fail "FAT16: $n crowding files"
  [[ $(free_root "$out") -lt $free ]] && ok "FAT16: build used the remaining root entries" || fail "FAT16: root entries unchanged"
  rm -f "$out"*
else
  fail "FAT16 crowded root: build"; sed 's/^/    /' "$T/build.log"
fi
[[ $(sha256sum <"$base") == "$before" ]] && ok "FAT16: base unchanged" || fail "FAT16: base changed"

base=$(fixture fat16-full "${FAT16[@]}" --extra-boot "$(crowd_dir 31)") || { fail "fat16-full: fixture"; summary; exit; }
free=$(free_root "$base")
((free == 0)) && ok "fat16 full fixture: no root entry free" || fail "fat16 full fixture: $free root entries free"
before=$(sha256sum <"$base")
expect_error "FAT16 full root directory refused" 'boot partition: no room for /ssh: its root directory is full \(FAT16 has a fixed' build "$T/full.img" "$base"
expect_rc "FAT16 full root directory is bad input data" 65
# a dry run meets the same refusal: it passing means the build will
expect_error "FAT16 full root directory refused by --dry-run" 'boot partition: no room for /ssh: its root directory is full' \
  build "$T/full.img" "$base" --dry-run
expect_rc "FAT16 full root directory refused by --dry-run" 65
check "no output after a full root directory" no_output "$T/full.img"
[[ $(sha256sum <"$base") == "$before" ]] && ok "FAT16 full: base unchanged" || fail "FAT16 full: base changed"

# ---- room: a boot partition with no free cluster ----
# fill_boot IMG KEEP: fill IMG's boot partition (mtools) so KEEP bytes stay free.
fill_boot() {
  local at free
  at=$(part_offset "$1" 1)
  free=$(MTOOLS_SKIP_CHECK=1 mdir -i "$1@@$at" :: | awk '/bytes free/ { gsub(/[^0-9]/, ""); print }')
  head -c "$((free - $2))" /dev/zero >"$T/fill.bin"
  MTOOLS_SKIP_CHECK=1 mcopy -i "$1@@$at" "$T/fill.bin" ::FILL.BIN
  rm -f "$T/fill.bin"
}
# Bookworm's boot payload is config.txt, rewritten within its own clusters,
# and an empty ssh: no new cluster, so a full partition takes it.
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/bootfull.img"
fill_boot "$T/bootfull.img" 0
if build "$T/bootfull-out.img" "$T/bootfull.img" >"$T/build.log" 2>&1; then
  ok "a full boot partition takes config.txt rewritten in place"
  check_image "boot full" "$T/bootfull-out.img"
  bcat "$T/bootfull-out.img" /config.txt | grep -q '^gpu_mem=' && ok "boot full: config.txt rewritten" \
    || fail "boot full: config.txt lacks gpu_mem"
else
  fail "a full boot partition takes config.txt rewritten in place"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/bootfull"*
# Trixie's adds three cloud-init files: three clusters, with one free.
cp --sparse=always "$(fixture trixie-small --flavour trixie "${SMALL[@]}")" "$T/bootfull.img"
fill_boot "$T/bootfull.img" 512
expect_error "a boot partition one cluster short refused before writing" \
  "bootfull.img: boot partition has 512 B free, the payload needs 1.5 KiB more" build "$T/bootfull-out.img" "$T/bootfull.img"
expect_rc "a boot partition too full" 65
check "no output after a full boot partition" no_output "$T/bootfull-out.img"
rm -f "$T/bootfull"*

# ---- orphaned long-name entries before the slot a new entry takes ----
# A tool that deleted only the 8.3 entry of "Some Long Name.txt" left its two
# LFN entries behind; their checksum is made SSH's, the 1-in-256 case in
# which Linux, mtools and fsck.fat read them as the long name of Bookworm's
# new ssh file, written into the freed slot right after them.
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/orphan.img"
: >"$T/empty"
MTOOLS_SKIP_CHECK=1 mcopy -i "$(bootfs "$T/orphan.img")" "$T/empty" "::/Some Long Name.txt"
python3 - "$T/orphan.img" "$(part_offset "$T/orphan.img" 1)" <<'PY'
import sys
sum_ = 0
for b in b'SSH        ':
    sum_ = (((sum_ & 1) << 7) + (sum_ >> 1) + b) & 0xFF
with open(sys.argv[1], 'r+b') as f:
    f.seek(int(sys.argv[2]))
    part = f.read(64 << 20)
    at = next(i for i in range(0, len(part), 32) if part[i:i + 11] == b'SOMELO~1TXT')
    assert all(part[at - k * 32 + 11] == 0x0F for k in (1, 2))
    for k in (1, 2):
        f.seek(int(sys.argv[2]) + at - k * 32 + 13)
        f.write(bytes([sum_]))
    f.seek(int(sys.argv[2]) + at)
    f.write(b'\xe5')
PY
boot_bytes "$T/orphan.img" "$T/orphan.boot"
fsck.fat -n "$T/orphan.boot" 2>&1 | grep -q 'Orphaned long file name part "Some Long Name.txt"' \
  && ok "fixture: orphaned LFN entries before a free slot" || fail "fixture: no orphaned LFN entries"
if build "$T/orphan-out.img" "$T/orphan.img" >"$T/build.log" 2>&1; then
  ok "orphaned LFN entries: build"
  check "orphaned LFN entries: e2fsck -fn and fsck.fat -n clean" fsck_image "$T/orphan-out.img"
  listing=$(MTOOLS_SKIP_CHECK=1 mdir -i "$(bootfs "$T/orphan-out.img")" ::/)
  grep -Eq '^ssh +0 ' <<<"$listing" && ! grep -q 'Some Long Name' <<<"$listing" \
    && ok "orphaned LFN entries: ssh listed under its own name" || { fail "orphaned LFN entries: ssh took their name"; printf '    %s\n' "$listing"; }
else
  fail "orphaned LFN entries: build"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/orphan"* "$T/empty"

# ---- read-only, hidden and system attributes on the files the build edits ----
# (a card once through Windows, say): edited as any other file, the
# attributes kept, since they are the user's
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/ro.img"
MTOOLS_SKIP_CHECK=1 mattrib -i "$(bootfs "$T/ro.img")" +r +h +s ::/config.txt ::/cmdline.txt
(umask 077; printf 'correct horse battery\n' >"$T/ro.psk")
if build "$T/ro-out.img" "$T/ro.img" --wifi-ssid Home --wifi-psk-file "$T/ro.psk" --wifi-country GB >"$T/build.log" 2>&1; then
  ok "read-only, hidden, system config.txt and cmdline.txt: build"
  check "read-only, hidden, system: e2fsck -fn and fsck.fat -n clean" fsck_image "$T/ro-out.img"
  attrs=$(MTOOLS_SKIP_CHECK=1 mattrib -i "$(bootfs "$T/ro-out.img")" ::/config.txt ::/cmdline.txt)
  [[ $(grep -Ec '^ +A +SHR +::/(config|cmdline)\.txt$' <<<"$attrs") == 2 ]] \
    && ok "read-only, hidden, system: the attributes kept" || { fail "attributes now:"; printf '    %s\n' "$attrs"; }
  MTOOLS_SKIP_CHECK=1 mtype -i "$(bootfs "$T/ro-out.img")" ::/cmdline.txt | grep -q 'cfg80211\.ieee80211_regdom=GB' \
    && ok "read-only, hidden, system: cmdline.txt edited" || fail "read-only cmdline.txt: no regulatory domain"
  cmp -s <(MTOOLS_SKIP_CHECK=1 mtype -i "$(bootfs "$T/ro.img")" ::/config.txt) \
    <(MTOOLS_SKIP_CHECK=1 mtype -i "$(bootfs "$T/ro-out.img")" ::/config.txt) \
    && fail "read-only config.txt: not edited" || ok "read-only, hidden, system: config.txt edited"
else
  fail "read-only, hidden, system config.txt and cmdline.txt: build"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/ro"*

# FAT32 as Linux, fsck.fat and mtools tell it (no 16-bit FAT size) with
# fewer than 65525 clusters, which mkfs.fat -F 32 makes on a small partition:
# taken as FAT32.  Trixie's cloud-init files take clusters.  (mtools will not
# write such a volume, so fsck.fat checks it and lists what is on it.)
cp --sparse=always "$(fixture trixie-small --flavour trixie "${SMALL[@]}")" "$T/fewfat32.img"
start=$(sfdisk -J "$T/fewfat32.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')
mkfs.vfat -F 32 -s 2 -S 512 -n bootfs --offset "$start" --mbr=n "$T/fewfat32.img" 65536 >/dev/null 2>&1
boot_bytes "$T/fewfat32.img" "$T/fewfat32.boot"
fsck.fat -n "$T/fewfat32.boot" 2>&1 | grep -q 'only [0-9]* clusters, less than the required minimum of 65525' \
  && ok "fixture: FAT32 with fewer than 65525 clusters" || fail "fixture: not a FAT32 with few clusters"
if build "$T/fewfat32-out.img" "$T/fewfat32.img" >"$T/build.log" 2>&1; then
  ok "FAT32 with fewer than 65525 clusters: build"
  boot_bytes "$T/fewfat32-out.img" "$T/fewfat32.boot"
  check "FAT32 with few clusters: fsck.fat -n clean" fsck.fat -n "$T/fewfat32.boot"
  n=$(fsck.fat -n -l "$T/fewfat32.boot" | grep -Ec '^Checking file /(user-data|meta-data|network-config)( |$)')
  ((n == 3)) && ok "FAT32 with few clusters: the cloud-init files are there" \
    || fail "FAT32 with few clusters: $n of the 3 cloud-init files"
else
  fail "FAT32 with fewer than 65525 clusters: build"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/fewfat32"*

# FAT32 with mirroring off (ext_flags 0x81: FAT #1 active): Linux's vfat and
# fsck.fat read FAT #0 all the same, so both copies must hold the new files.
cp --sparse=always "$(fixture trixie-small --flavour trixie "${SMALL[@]}")" "$T/nomirror.img"
at=$(part_offset "$T/nomirror.img" 1)
for s in 0 6; do printf '\x81\x00' | dd of="$T/nomirror.img" bs=1 seek=$((at + s * 512 + 40)) conv=notrunc status=none; done
if build "$T/nomirror-out.img" "$T/nomirror.img" >"$T/build.log" 2>&1; then
  check_image "FAT32 mirroring off" "$T/nomirror-out.img"
  boot_bytes "$T/nomirror-out.img" "$T/nomirror.boot"
  check "FAT32 mirroring off: both FAT copies hold the same" python3 - "$T/nomirror.boot" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
bps, _, res, nfats = struct.unpack_from('<HBHB', d, 11)
fatsz = struct.unpack_from('<I', d, 36)[0] * bps
fats = [d[(res * bps) + i * fatsz:(res * bps) + (i + 1) * fatsz] for i in range(nfats)]
sys.exit(nfats != 2 or fats[0] != fats[1])
PY
  bcat "$T/nomirror-out.img" /user-data | grep -q '^#cloud-config' && ok "FAT32 mirroring off: user-data reads back" \
    || fail "FAT32 mirroring off: user-data"
else
  fail "FAT32 mirroring off: build"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/nomirror"*

# boot_patched NAME CODE: $T/NAME.img, a copy of the small fixture whose
# boot partition CODE edits (python: f open r+b at the partition's start,
# which is at).
boot_patched() {
  cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/$1.img"
  python3 - "$T/$1.img" "$(part_offset "$T/$1.img" 1)" "$2" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    at = int(sys.argv[2])
    f.seek(at)
    exec(sys.argv[3])
PY
}

# fat_put_right NAME FAULT FIXED: $T/NAME.img (boot_patched) fails
# fsck.fat -n with FAULT; its build's boot partition passes it.
fat_put_right() {
  boot_bytes "$T/$1.img" "$T/$1.boot"
  check_fails "fixture: $2" fsck.fat -n "$T/$1.boot"
  if build "$T/$1-out.img" "$T/$1.img" >"$T/build.log" 2>&1; then
    boot_bytes "$T/$1-out.img" "$T/$1.boot"
    check "$3" fsck.fat -n "$T/$1.boot"
  else
    fail "$3: the build failed"; sed 's/^/    /' "$T/build.log"
  fi
  rm -f "$T/$1"*
}

# An FSInfo free count that is wrong in the base (fsck.fat -n fails on it):
# right in the output even when, as on Bookworm, no cluster changes hands.
boot_patched fsinfo 'sector = struct.unpack_from("<H", f.read(512), 48)[0]
f.seek(at + sector * 512 + 488)
f.write(struct.pack("<I", 1234))'
fat_put_right fsinfo "the base's FSInfo free count is wrong" "a wrong FSInfo free count is put right"

# FAT copies that differ (fsck.fat -n: "FATs differ") in a sector no file
# of the build touches: the output's copies agree, the first one's kept.
boot_patched fatcopies 'b = f.read(512)
bps, _, res, nfats = struct.unpack_from("<HBHB", b, 11)
fatsz = struct.unpack_from("<I", b, 36)[0] * bps
f.seek(at + res * bps + fatsz + fatsz // 2)
f.write(struct.pack("<I", 0x0FFFFFFF))'
fat_put_right fatcopies "the base's FAT copies differ" "FAT copies that differ are made to agree"

# A cmdline.txt that cannot be read (its size beyond its cluster chain) is
# refused: the build used to print the error, drop the edit and succeed.
boot_patched badcmd 'd = f.read(4 << 20)
f.seek(at + d.index(b"CMDLINE TXT") + 28)
f.write((5000).to_bytes(4, "little"))'
expect_error "an unreadable cmdline.txt refused" "badcmd.img: /cmdline.txt: cluster chain is shorter than the file size" \
  build "$T/badcmd-out.img" "$T/badcmd.img" --wifi-country DE
expect_rc "an unreadable cmdline.txt" 65
check "no output after an unreadable cmdline.txt" no_output "$T/badcmd-out.img"
rm -f "$T/badcmd"*

# ---- room: a root filesystem with no free blocks ----
# p N IMG FIELD: a field of partition N from sfdisk -J.
p() { sfdisk -J "$2" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(t["partitions"][int(sys.argv[1])-1][sys.argv[2]])' "$1" "$3"; }
label_id() { sfdisk -J "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["id"])'; }
fs_bytes() {
  tune2fs -l "$(rootfs "$1")" 2>/dev/null |
    awk -F: '/^Block count:/ { gsub(/ /, "", $2); c = $2 } /^Block size:/ { gsub(/ /, "", $2); b = $2 } END { print c * b }'
}
check_grown() { # check_grown WHAT BASE OUT MIN_GROWTH_BYTES
  local what=$1 base=$2 out=$3 min=$4
  local bsize osize
  bsize=$(stat -c %s "$base") osize=$(stat -c %s "$out")
  ((osize > bsize)) && ok "$what: image grew ($bsize -> $osize)" || fail "$what: image did not grow ($bsize -> $osize)"
  local grew=$((($(p 2 "$out" size) - $(p 2 "$base" size)) * 512))
  ((grew >= min && grew > 0)) && ok "$what: partition 2 grew by $grew bytes (>= $min)" || fail "$what: partition 2 grew by $grew bytes"
  local end=$((($(p 2 "$out" start) + $(p 2 "$out" size)) * 512))
  ((osize >= end)) && ok "$what: image holds all of partition 2 ($osize >= $end)" \
    || fail "$what: image ($osize bytes) ends before partition 2 ($end): resize2fs truncation?"
  [[ $(p 2 "$out" start) == "$(p 2 "$base" start)" ]] && ok "$what: partition 2 start kept" || fail "$what: partition 2 moved"
  [[ $(p 1 "$out" start),$(p 1 "$out" size),$(p 1 "$out" type) == "$(p 1 "$base" start),$(p 1 "$base" size),$(p 1 "$base" type)" ]] \
    && ok "$what: partition 1 unchanged" || fail "$what: partition 1 changed"
  [[ $(label_id "$out") == "$(label_id "$base")" ]] && ok "$what: disk id kept ($(label_id "$out"))" || fail "$what: disk id $(label_id "$out")"
  [[ $(fs_bytes "$out") == $(($(p 2 "$out" size) * 512)) ]] && ok "$what: ext4 exactly fills partition 2" \
    || fail "$what: ext4 is $(fs_bytes "$out") bytes, partition 2 is $(($(p 2 "$out" size) * 512))"
  check_image "$what" "$out"
}

if ! base=$(fixture root-full "${SMALL[@]}" --root-free-kib 0); then
  fail "root-full: fixture"
  summary
  exit
fi
freeb=$(tune2fs -l "$(rootfs "$base")" 2>/dev/null | awk -F: '/^Free blocks:/ { gsub(/ /, "", $2); print $2 }')
((freeb < 64)) && ok "root-full fixture: $freeb free blocks" || fail "root-full fixture: $freeb free blocks"
before=$(sha256sum <"$base")
out=$T/grow-auto.img
if build "$out" "$base" >"$T/build.log" 2>&1; then
  ok "full root fs: build grows it automatically"
  check_grown "auto grow" "$base" "$out" 1
else
  fail "full root fs: automatic grow"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$out"*
out=$T/grow-64.img
if build "$out" "$base" --grow 64M >"$T/build.log" 2>&1; then
  ok "full root fs: build --grow 64M"
  check_grown "--grow 64M" "$base" "$out" $((64 << 20))
else
  fail "full root fs: --grow 64M"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$out"*
expect_error "--no-grow on a full root fs refused, saying how much is missing" '[0-9]+(\.[0-9]+)? ?([KMG]i?B|bytes|KiB|MiB)' \
  build "$T/nogrow.img" "$base" --no-grow
expect_rc "--no-grow on a full root fs is bad input data, not a full disk" 65
grep -Eiq 'missing|more|short|need|does not fit|room' "$T/.err" && ok "--no-grow error says what is missing: $(cat "$T/.err")" \
  || fail "--no-grow error: $(cat "$T/.err")"
check "no output after --no-grow" no_output "$T/nogrow.img"
# A dry run reads a raw base in place: the same refusal, and the growth a
# build would make, before anything is written.
expect_error "--dry-run --no-grow on a full root fs refused as the build is" 'root filesystem is .* short' \
  build "$T/nogrow.img" "$base" --no-grow --dry-run
"$DIMIMAGE" build --role app --base "$base" -o "$T/dry.img" --dry-run --hostname dimdim-fs --user pi \
  --set DB_PASSWORD="$DBPW" --set DIMDIM_API_IMAGE=x/api:1 --set DIMDIM_WORKER_IMAGE=x/worker:1 >/dev/null 2>"$T/dry.err" \
  && grep -q 'The root filesystem would grow by [0-9]' "$T/dry.err" \
  && ok "--dry-run on a full root fs says it would grow it" || fail "--dry-run growth: $(cat "$T/dry.err")"
check "no output after --dry-run" no_output "$T/dry.img"
[[ $(sha256sum <"$base") == "$before" ]] && ok "root-full: base unchanged" || fail "root-full: base changed"
expect_error "--dry-run --grow beyond what an MBR partition can hold refused" "an MBR partition cannot end beyond 2 TiB" \
  build "$T/dry.img" "$base" --dry-run --grow 2T
usage_error_grow() { expect_error "$1" "$2" build "$T/dry.img" "$base" --grow "$3"; expect_rc "$1" 64; }
usage_error_grow "--grow more than 2T" "--grow: '3T' is more than an MBR disk holds" 3T
usage_error_grow "--grow of 2^64-1 bytes" "--grow: '18446744073709551615' is more than" 18446744073709551615

# ---- room: names that take directory blocks, and files that take none ----
# 2000 empty files with long names: their blocks cost nothing, their
# directory's entries about 420 KiB, more than the 400 KiB free; the build
# grows the filesystem for them instead of failing half way.
if base=$(fixture root400 --root-size 64 --root-free-kib 400); then
  mkdir -p "$T/names/deploy" "$T/names/empty"
  echo 'FROM scratch' >"$T/names/deploy/Dockerfile.api"
  echo 'FROM scratch' >"$T/names/deploy/Dockerfile.worker"
  long=$(printf 'x%.0s' {1..200})
  (cd "$T/names/empty" && for i in {1..2000}; do : >"$i$long"; done)
  if "$DIMIMAGE" build --role app --base "$base" -o "$T/names.img" --quiet --user pi --ssh-key "$T/key.pub" \
    --set DB_PASSWORD="$DBPW" --source "$T/names" >"$T/build.log" 2>&1; then
    ok "names without data blocks: built, the root grown for their directory"
    check "names without data blocks: e2fsck -fn and fsck.fat -n clean" fsck_image "$T/names.img"
  else
    fail "names without data blocks: build"; sed 's/^/    /' "$T/build.log" | tail -3
  fi
  rm -rf "$T/names" "$T/names.img"*
else
  fail "root400: fixture"
fi

# ---- room: a root filesystem with blocks free but no inodes ----
# 64 MiB of 4 KiB blocks is one (partial) block group of 128 MiB: new
# inodes come only with a second group.
many_dir() {
  local dir=$FIXTURES/many-files-3330
  if [[ ! -d $dir ]]; then
    mkdir -p "$dir.tmp/var/many"
    (cd "$dir.tmp/var/many" && seq -f 'f%05g' 1 3330 | xargs touch -d "@$SOURCE_DATE_EPOCH")
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}
if base=$(fixture few-inodes --root-size 64 --boot-size 64 --cluster 512 --extra-root "$(many_dir)"); then
  inodes=$(tune2fs -l "$(rootfs "$base")" 2>/dev/null | awk -F: '/^Free inodes:/ { gsub(/ /, "", $2); print $2 }')
  blocks=$(tune2fs -l "$(rootfs "$base")" 2>/dev/null | awk -F: '/^Free blocks:/ { gsub(/ /, "", $2); print $2 }')
  ((inodes < 40 && blocks > 4000)) && ok "few-inodes fixture: $inodes free inodes, $blocks free blocks" \
    || fail "few-inodes fixture: $inodes free inodes, $blocks free blocks"
  expect_error "--no-grow with too few free inodes refused" "root filesystem has $inodes free inodes, the payload needs about [0-9]+" \
    build "$T/inodes.img" "$base" --no-grow
  expect_rc "--no-grow with too few free inodes" 65
  expect_error "--dry-run --no-grow with too few free inodes refused too" "root filesystem has $inodes free inodes" \
    build "$T/inodes.img" "$base" --no-grow --dry-run
  if build "$T/inodes.img" "$base" >"$T/build.log" 2>&1; then
    ok "too few free inodes: the build grows the filesystem by a block group"
    check_grown "too few inodes" "$base" "$T/inodes.img" $((64 << 20))
  else
    fail "too few free inodes: build"; sed 's/^/    /' "$T/build.log"
  fi
  # --grow too small to add a group is raised to one
  if build "$T/inodes2.img" "$base" --grow 8M >"$T/build.log" 2>&1; then
    ok "too few free inodes: --grow 8M raised to a block group"
    check "too few inodes, --grow 8M: e2fsck -fn and fsck.fat -n clean" fsck_image "$T/inodes2.img"
  else
    fail "too few free inodes: --grow 8M"; sed 's/^/    /' "$T/build.log"
  fi
  rm -f "$T/inodes"*
else
  fail "few-inodes: fixture"
fi

# A build time past 2038 (2100-01-01): 256-byte inodes carry it in their
# epoch bits; 128-byte ones have no room for it and get 2038's last second,
# as the kernel clamps, not a time wrapped to 1901.
# The time is decoded here from debugfs's raw fields, as the kernel does
# (low 32 bits signed, plus the epoch bits times 2^32): debugfs 1.47.1+
# (Debian 13) adds the epoch to the low bits unsigned and prints 2236 for 2100.
mtime_of() {
  local raw lo extra=0
  raw=$(debugfs -R "stat $2" "$(rootfs "$1")" 2>/dev/null | sed -n 's/^ *mtime: \(0x[0-9a-f:x]*\) --.*/\1/p')
  [[ -n $raw ]] || return 0
  lo=$((${raw%%:*}))
  [[ $raw == *:* ]] && extra=$((0x${raw#*:}))
  ((lo >= 2 ** 31)) && lo=$((lo - 2 ** 32))
  LC_ALL=C date -u -d "@$((lo + (extra & 3) * 2 ** 32))" '+%a %b %e %H:%M:%S %Y'
}
for isz in 128 256; do
  if ((isz == 128)); then base=$(fixture small128 "${SMALL[@]}" --inode-size 128); else base=$(fixture small "${SMALL[@]}"); fi
  want="Tue Jan 19 03:14:07 2038"
  ((isz == 256)) && want="Fri Jan  1 00:00:00 2100"
  if SOURCE_DATE_EPOCH=4102444800 build "$T/y2100.img" "$base" >"$T/build.log" 2>&1; then
    check "a build in 2100, $isz-byte inodes: e2fsck -fn and fsck.fat -n clean" fsck_image "$T/y2100.img"
    got=$(mtime_of "$T/y2100.img" /etc/hostname)
    [[ $got == "$want" ]] && ok "a build in 2100, $isz-byte inodes: /etc/hostname's mtime $got" \
      || fail "a build in 2100, $isz-byte inodes: /etc/hostname's mtime '$got', want '$want'"
    got=$(mtime_of "$T/y2100.img" /opt/dimdim-health/.env)
    [[ $got == "$want" ]] && ok "a build in 2100, $isz-byte inodes: a new file's mtime $got" \
      || fail "a build in 2100, $isz-byte inodes: .env's mtime '$got', want '$want'"
  else
    fail "a build in 2100, $isz-byte inodes"; sed 's/^/    /' "$T/build.log"
  fi
  rm -f "$T/y2100"*
done

# Directories dimimage owns are made its own where the base has them
# already: a world-writable /opt/dimdim-health or system-connections would
# let any account swap what root reads there.
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/perm.img"
printf '%s\n' 'mkdir /opt/dimdim-health' 'sif /opt/dimdim-health mode 040777' 'sif /opt/dimdim-health uid 1000' \
  'mkdir /etc/NetworkManager' 'mkdir /etc/NetworkManager/system-connections' \
  'sif /etc/NetworkManager/system-connections mode 040777' |
  debugfs -w -f - "$T/perm.img?offset=$(part_offset "$T/perm.img" 2)" >/dev/null 2>&1
[[ $(rstat "$T/perm.img" /opt/dimdim-health) == "0777 1000 0 directory" ]] || fail "perm fixture: $(rstat "$T/perm.img" /opt/dimdim-health)"
if build "$T/perm-out.img" "$T/perm.img" >"$T/build.log" 2>&1; then
  for d in /opt/dimdim-health /etc/NetworkManager/system-connections; do
    [[ $(rstat "$T/perm-out.img" "$d") == "0755 0 0 directory" ]] && ok "the base's world-writable $d made 0755 root" \
      || fail "$d: $(rstat "$T/perm-out.img" "$d")"
  done
  check "world-writable directories made ours: e2fsck -fn clean" fsck_image "$T/perm-out.img"
else
  fail "build over world-writable directories"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/perm"*
# ... through a symlink to where the base keeps it (the directory, not the
# link, is made ours), and a stricter one stays stricter.
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/perm.img"
printf '%s\n' 'mkdir /srv' 'mkdir /srv/x' 'sif /srv/x mode 040777' 'sif /srv/x uid 1000' \
  'symlink /opt/dimdim-health /srv/x' 'mkdir /etc/NetworkManager' 'mkdir /etc/NetworkManager/system-connections' \
  'sif /etc/NetworkManager/system-connections mode 040700' |
  debugfs -w -f - "$T/perm.img?offset=$(part_offset "$T/perm.img" 2)" >/dev/null 2>&1
if build "$T/perm-out.img" "$T/perm.img" >"$T/build.log" 2>&1; then
  [[ $(rstat "$T/perm-out.img" /srv/x) == "0755 0 0 directory" ]] && ok "a world-writable directory behind a symlink made 0755 root" \
    || fail "/srv/x: $(rstat "$T/perm-out.img" /srv/x)"
  [[ $(rlink "$T/perm-out.img" /opt/dimdim-health) == /srv/x ]] && rcat "$T/perm-out.img" /srv/x/.env | grep -q '^DB_PASSWORD=' \
    && ok "... the link kept, the files behind it" || fail "/opt/dimdim-health: $(rstat "$T/perm-out.img" /opt/dimdim-health)"
  [[ $(rstat "$T/perm-out.img" /etc/NetworkManager/system-connections) == "0700 0 0 directory" ]] \
    && ok "a stricter system-connections (0700) stays so" || fail "system-connections: $(rstat "$T/perm-out.img" /etc/NetworkManager/system-connections)"
  check "symlinked and strict directories: e2fsck -fn clean" fsck_image "$T/perm-out.img"
else
  fail "build over a symlinked /opt/dimdim-health"; sed 's/^/    /' "$T/build.log"
fi
rm -f "$T/perm"*

# A directory in the base where a file goes is bad input data (65).
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/tzdir.img"
printf 'rm /etc/localtime\nmkdir /etc/localtime\nwrite /etc/hostname /etc/localtime/x\n' |
  debugfs -w -f - "$T/tzdir.img?offset=$(part_offset "$T/tzdir.img" 2)" >/dev/null 2>&1
expect_error "a non-empty directory where /etc/localtime goes" "/etc/localtime: directory not empty" \
  build "$T/tzdir-out.img" "$T/tzdir.img" --timezone Europe/Berlin
expect_rc "a non-empty directory where a file goes" 65
check "no output after a non-empty directory in the way" no_output "$T/tzdir-out.img"
# a dry run meets it too: passing, it says the build will pass
expect_error "a non-empty directory where /etc/localtime goes, by --dry-run" "/etc/localtime: directory not empty" \
  build "$T/tzdir-out.img" "$T/tzdir.img" --timezone Europe/Berlin --dry-run
rm -f "$T/tzdir"*
# What the base has where a directory is needed, refused by a dry run as
# the build refuses it, before the boot partition is written: a symlink
# to nothing on the way to a file, a file where a directory is made.
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/way.img"
printf 'symlink /opt/dimdim-health /mnt/data/dimdim-health\n' |
  debugfs -w -f - "$T/way.img?offset=$(part_offset "$T/way.img" 2)" >/dev/null 2>&1
for dry in "" --dry-run; do
  expect_error "a symlink to nothing where a directory goes${dry:+, by $dry}" \
    "way\.img: ext4 /opt/dimdim-health[^:]*: /opt/dimdim-health is a symlink to nothing in the base, where a directory is needed" \
    build "$T/way-out.img" "$T/way.img" $dry
  expect_rc "a symlink to nothing where a directory goes${dry:+, by $dry}" 65
done
printf 'rm /opt/dimdim-health\nmkdir /home\nwrite /etc/hostname /home/pi\n' | debugfs -w -f - "$T/way.img?offset=$(part_offset "$T/way.img" 2)" >/dev/null 2>&1
for dry in "" --dry-run; do
  expect_error "a file where the user's home goes${dry:+, by $dry}" \
    "way\.img: ext4 /home/pi: /home/pi is not a directory \(nor a symlink to one\) in the base, where a directory is needed" \
    build "$T/way-out.img" "$T/way.img" $dry
done
check "no output after what is in the way" no_output "$T/way-out.img"
rm -f "$T/way"*
# An unlink under what is no directory has nothing to remove: a build, and
# its dry run, go on (the keymap's cache under /etc/console-setup, a file)
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/cs.img"
printf 'rm /etc/console-setup\nwrite /etc/hostname /etc/console-setup\n' |
  debugfs -w -f - "$T/cs.img?offset=$(part_offset "$T/cs.img" 2)" >/dev/null 2>&1
for dry in --dry-run ""; do
  build "$T/cs-out.img" "$T/cs.img" --keymap gb $dry >"$T/build.log" 2>&1 \
    && ok "an unlink under a file: nothing to remove${dry:+ ($dry)}" || { fail "an unlink under a file${dry:+ ($dry)}"; sed 's/^/    /' "$T/build.log"; }
done
rm -f "$T/cs"*

# /etc/passwd a symlink: named as such (it used to be "the base has no /etc/passwd").
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/pwlink.img"
printf 'rm /etc/passwd\nsymlink /etc/passwd ../usr/lib/passwd\n' |
  debugfs -w -f - "$T/pwlink.img?offset=$(part_offset "$T/pwlink.img" 2)" >/dev/null 2>&1
expect_error "/etc/passwd a symbolic link" "pwlink.img: the base's /etc/passwd is a symbolic link; --user edits it in place" \
  build "$T/pwlink-out.img" "$T/pwlink.img"
expect_rc "/etc/passwd a symbolic link" 65
rm -f "$T/pwlink"*

# ext4 features a build cannot edit are named as e2fsprogs names them (they
# were a hex mask), before anything is written: casefold (incompat, set by
# tune2fs) and shared_blocks (read-only compatible: libext2fs writes past it,
# and freeing a block another file shares would corrupt that file).
mkdir -p "$T/feat-out"
for feat in casefold shared_blocks; do
  cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/feat.img"
  if [[ $feat == casefold ]]; then tune2fs -O casefold "$(rootfs "$T/feat.img")" >/dev/null 2>&1
  else debugfs -w -R "feature $feat" "$(rootfs "$T/feat.img")" >/dev/null 2>&1; fi
  tune2fs -l "$(rootfs "$T/feat.img")" 2>/dev/null | grep -q "^Filesystem features:.* $feat" || fail "$feat: fixture lacks it"
  expect_error "a base with $feat" "feat.img: ext4 filesystem at offset [0-9]+ uses ext4 feature '$feat' which dimimage cannot edit safely$" \
    build "$T/feat-out/out.img" "$T/feat.img"
  expect_rc "a base with $feat" 65
  check "a base with $feat: nothing left in the output directory" test -z "$(ls -A "$T/feat-out")"
  rm -f "$T/feat.img"
done
rm -rf "$T/feat-out"

# The base's immutable and append-only flags (chattr +i, +a): what the build
# would replace or remove under them is refused before anything is written,
# as cp onto an immutable file fails; the flags stay on what it leaves alone.
# chattr_img IMG PATH BITS: the inode's flags ORed with BITS (extents kept).
chattr_img() {
  local dev flags
  dev="$1?offset=$(part_offset "$1" 2)"
  flags=$(debugfs -R "stat $2" "$dev" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p')
  debugfs -w -R "sif $2 flags $(printf '0x%x' $((flags | $3)))" "$dev" >/dev/null 2>&1
}
flags_of() { debugfs -R "stat $2" "$(rootfs "$1")" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p'; }
mkdir -p "$T/flags-out"
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/imm.img"
chattr_img "$T/imm.img" /etc/hostname 0x10
expect_error "an immutable /etc/hostname" \
  "imm.img: ext4 /etc/hostname is immutable \\(chattr \\+i\\) in the base, and this build replaces it; clear the flag first \\(chattr -i\\)$" \
  build "$T/flags-out/out.img" "$T/imm.img"
expect_rc "an immutable /etc/hostname" 65
check "an immutable /etc/hostname: nothing left in the output directory" test -z "$(ls -A "$T/flags-out")"
expect_error "an immutable /etc/hostname, --dry-run" "ext4 /etc/hostname is immutable" \
  build "$T/flags-out/out.img" "$T/imm.img" --dry-run
expect_rc "an immutable /etc/hostname, --dry-run" 65
rm -f "$T/imm.img"
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/imm.img"
chattr_img "$T/imm.img" /etc/systemd/system 0x10
expect_error "an immutable /etc/systemd/system" \
  "ext4 /etc/systemd/system/[^ ]+: its directory /etc/systemd/system is immutable \\(chattr \\+i\\) in the base, and this build (adds|replaces) a name" \
  build "$T/flags-out/out.img" "$T/imm.img"
expect_rc "an immutable /etc/systemd/system" 65
check "an immutable /etc/systemd/system: nothing left in the output directory" test -z "$(ls -A "$T/flags-out")"
rm -f "$T/imm.img"
# An append-only directory takes new names; a flagged file nobody touches
# keeps its flag.
cp --sparse=always "$(fixture small "${SMALL[@]}")" "$T/imm.img"
printf '%s\n' 'mkdir /opt' 'mkdir /opt/dimdim-health' |
  debugfs -w -f - "$T/imm.img?offset=$(part_offset "$T/imm.img" 2)" >/dev/null 2>&1
chattr_img "$T/imm.img" /opt/dimdim-health 0x20
chattr_img "$T/imm.img" /etc/rpi-issue 0x10
if build "$T/flags-out/out.img" "$T/imm.img" >"$T/build.log" 2>&1; then
  check "flags the build leaves alone: e2fsck -fn and fsck.fat -n clean" fsck_image "$T/flags-out/out.img"
  (( $(flags_of "$T/flags-out/out.img" /opt/dimdim-health) & 0x20 )) && rcat "$T/flags-out/out.img" /opt/dimdim-health/.env | grep -q '^DB_PASSWORD=' \
    && ok "an append-only /opt/dimdim-health takes the new files and stays append-only" \
    || fail "append-only /opt/dimdim-health: flags $(flags_of "$T/flags-out/out.img" /opt/dimdim-health)"
  (( $(flags_of "$T/flags-out/out.img" /etc/rpi-issue) & 0x10 )) && ok "an immutable file the build does not touch stays immutable" \
    || fail "/etc/rpi-issue: flags $(flags_of "$T/flags-out/out.img" /etc/rpi-issue)"
else
  fail "build over an append-only /opt/dimdim-health"; sed 's/^/    /' "$T/build.log"
fi
rm -rf "$T/imm.img" "$T/flags-out"

summary
