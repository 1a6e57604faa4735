#!/usr/bin/env bash
# Builds on a filesystem that shares extents (XFS with reflink): there every
# copy of the base is a FICLONE (a raw base, the cache's entry, a fleet's two
# decoded files and the clone of a host between them), and a raw base with
# its sha256 computed beside the build is not read by the copy at all.
# Those paths must give the very bytes the copying paths give on this
# machine's own filesystem, share the base's extents, and leave the images
# whole.  Needs root, a loop device and mkfs.xfs; skipped otherwise.
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

raw=$(fixture outputs-small --fat 16 --boot-size 48 --root-size 96) || { fail "fixture"; summary; exit 1; }
export SOURCE_DATE_EPOCH=1700000000
unset DIMIMAGE_CACHE_MAX
OOPW=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6
ARGS=(--role observability --hostname obs --set "OPENOBSERVE_PASSWORD=$OOPW" --set OPENOBSERVE_EMAIL=ops@example.org)
build() { "$DIMIMAGE" build "${ARGS[@]}" --quiet "$@"; }

M=$T/xfs
loop=""
cleanup() {
  [[ -n $loop ]] && { umount "$M" 2>/dev/null; losetup -d "$loop" 2>/dev/null; }
  rm -rf "$T"
}
trap cleanup EXIT
truncate -s 2G "$T/xfs.img"
mkdir -p "$M"
if [[ $(id -u) != 0 ]] || ! command -v mkfs.xfs >/dev/null || ! command -v losetup >/dev/null; then
  echo "skip - needs root, losetup and mkfs.xfs (xfsprogs)"
  summary
  exit
fi
if ! mkfs.xfs -q -m reflink=1 "$T/xfs.img" 2>"$T/mkfs.err" || ! loop=$(losetup -f --show "$T/xfs.img" 2>/dev/null) \
  || ! mount "$loop" "$M" 2>/dev/null; then
  echo "skip - cannot make and mount an XFS filesystem with reflink here: $(head -n 1 "$T/mkfs.err")"
  summary
  exit
fi
cp --sparse=always "$raw" "$M/base.img"
cp --reflink=always "$M/base.img" "$M/probe.img" 2>/dev/null && ok "the XFS filesystem shares extents" \
  || { fail "cp --reflink=always on the XFS filesystem"; summary; exit 1; }
rm -f "$M/probe.img"
xz -T2 --block-size=8MiB -1 -c "$raw" >"$M/base.img.xz"

# shared FILE: FIEMAP reports extents of FILE shared with another file
shared() { filefrag -v "$1" 2>/dev/null | grep -q shared; }

# ---- references: the copying paths, on this machine's own filesystem ----------
mkdir -p "$T/ref"
export XDG_CACHE_HOME=$T/ref-cache
check "reference build from .img (copied)" build --no-cache --base "$M/base.img" -o "$T/ref/raw.img"
cat >"$T/fleet.yml" <<YAML
env: {OPENOBSERVE_PASSWORD: $OOPW, OPENOBSERVE_EMAIL: ops@example.org}
hosts:
  - {name: obs-1, role: observability, address: 10.0.0.7}
  - {name: obs-2, role: observability, address: 10.0.0.8}
  - {name: obs-3, role: observability, address: 10.0.0.9}
YAML
check "reference fleet of three from .img (copied)" \
  "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$M/base.img" -o "$T/ref/fleet-raw" --quiet
check "reference fleet of three from .img.xz (copied)" \
  "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$M/base.img.xz" -o "$T/ref/fleet-xz" --quiet

# ---- the same builds on XFS -------------------------------------------------
export XDG_CACHE_HOME=$M/cache
"$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$M/base.img" -o "$M/raw1.img" >"$T/raw1.log" 2>&1 \
  && ok "first build from .img on XFS" || { fail "first build from .img on XFS"; tail -n 20 "$T/raw1.log"; }
grep -q 'copied at once, its sha256 computed beside the build' "$T/raw1.log" \
  && ok "its base's sha256 computed beside the build" || fail "raw1: $(grep -i sha256 "$T/raw1.log")"
cmp -s "$M/raw1.img" "$T/ref/raw.img" && ok "shared extents, sum computed beside: the copied build's bytes" \
  || fail "raw1.img differs from the copied build"
shared "$M/raw1.img" && ok "raw1.img shares the base's extents" || fail "raw1.img shares no extent"
"$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$M/base.img" -o "$M/raw2.img" >"$T/raw2.log" 2>&1 \
  && grep -q 'sha256 remembered, checked beside the build' "$T/raw2.log" \
  && ok "rebuild from .img on XFS, its remembered sha256 checked beside" || { fail "rebuild on XFS"; tail -n 20 "$T/raw2.log"; }
cmp -s "$M/raw2.img" "$T/ref/raw.img" && ok "rebuild: the copied build's bytes" || fail "raw2.img differs"

# fleet_check NAME REFDIR LOG: images identical to the reference, whole,
# matching their .sha256; the first and last hosts take files over, the
# middle one is cloned, its extents shared.
fleet_check() {
  local name=$1 ref=$2 log=$3 n left
  for n in 1 2 3; do
    cmp -s "$M/$name/obs-$n.img" "$ref/obs-$n.img" && ok "$name: obs-$n.img is the copied fleet's" \
      || fail "$name: obs-$n.img differs from the copied fleet's"
  done
  (cd "$M/$name" && sha256sum -c --quiet obs-1.img.sha256 obs-2.img.sha256 obs-3.img.sha256) \
    && ok "$name: every image matches its .sha256" || fail "$name: .sha256"
  check "$name: obs-2.img fsck clean" fsck_image "$M/$name/obs-2.img"
  grep -q 'obs-1.img: took over' "$log" && grep -q 'obs-2.img: copied the fleet' "$log" \
    && grep -q 'obs-3.img: took over' "$log" && ok "$name: two files taken over, one cloned" \
    || fail "$name: $(grep -E 'took over|copied the' "$log")"
  shared "$M/$name/obs-2.img" && ok "$name: the cloned image shares extents" || fail "$name: obs-2.img shares no extent"
  left=$(find "$M/$name" -mindepth 1 -name '.*' -printf '%f ')
  [[ -z $left ]] && ok "$name: nothing hidden left" || fail "$name: left $left"
}
fleet() {
  local name=$1
  shift
  "$DIMIMAGE" build --fleet "$T/fleet.yml" -o "$M/$name" --verbose "$@" >"$T/$name.log" 2>&1 \
    && ok "$name builds" || { fail "$name builds"; tail -n 20 "$T/$name.log"; }
}
fleet fleet-raw --base "$M/base.img"
fleet_check fleet-raw "$T/ref/fleet-raw" "$T/fleet-raw.log"
fleet fleet-xz --base "$M/base.img.xz"
fleet_check fleet-xz "$T/ref/fleet-xz" "$T/fleet-xz.log"
fleet fleet-hit --base "$M/base.img.xz"
grep -q 'using the cached decompressed image' "$T/fleet-hit.log" && ok "second fleet from .img.xz: a cache hit" \
  || fail "second fleet: no cache hit"
fleet_check fleet-hit "$T/ref/fleet-xz" "$T/fleet-hit.log"
entry=$(find "$M/cache" -name 'base-*.img' | head -n 1)
[[ -n $entry ]] && shared "$entry" && ok "the cache's entry shares extents with what it was copied from" \
  || fail "cache entry: ${entry:-none}"

summary
