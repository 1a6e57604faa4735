#!/usr/bin/env bash
# bench/run.sh: dimimage against the floor of its work (issue 9).
#
# Makes once, cached in bench/.cache (ignored by git), a Raspberry-Pi-OS-shaped
# base (MBR, FAT32 bootfs, ext4 rootfs filled with real system files from
# /usr) and its multi-block `xz -T0` form, then times, median of $RUNS runs,
# the floors and dimimage side by side and prints each as a ratio to its floor
# with the peak RSS (/usr/bin/time).  See bench/README.md.
#
# Environment:
#   RUNS=3                 runs per row (median)
#   BENCH_BASE=FILE        use this raw image instead of making one (and FILE.xz
#                          when it exists, else an .xz made in the cache)
#   BENCH_ROOT_MIB=2200    size of the made base's root partition
#   BENCH_DATA_MIB=1600    system files copied into it
#   BENCH_XZ_LEVEL=1       preset of the base's .xz (RasPiOS ships -6: realistic
#                          but making it takes ~20 min on a loaded 2-core box)
#   BENCH_XZ_OUT=1         0: skip the .img.xz output rows (xz -3 -T2 takes ~2 min
#                          a run here: 6 runs add ~10 min)
#   BENCH_SMALL=1          0: skip the 1 GiB base (peak RSS against base size)
#   DIMIMAGE=build/dimimage
set -euo pipefail
# Numbers are sorted, divided and printed here: with a decimal comma
# (LANG=de_DE.UTF-8) sort -n read "12.5" as 125 and awk printed "1,50".
export LC_ALL=C

TOP=$(cd "$(dirname "$0")/.." && pwd)
DIMIMAGE=${DIMIMAGE:-$TOP/build/dimimage}
CACHE=$TOP/bench/.cache
RUNS=${RUNS:-3}
ROOT_MIB=${BENCH_ROOT_MIB:-2200}
DATA_MIB=${BENCH_DATA_MIB:-1600}
XZ_LEVEL=${BENCH_XZ_LEVEL:-1}
NPROC=$(nproc)
mkdir -p "$CACHE"
W=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$W"' EXIT

for tool in xz zstd /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 1; }
done

# ---- the base ----------------------------------------------------------------
# The made base's files are named for what shapes them, so a change of
# BENCH_ROOT_MIB, BENCH_DATA_MIB or BENCH_XZ_LEVEL makes a new one.
SHAPE=r${ROOT_MIB}-d${DATA_MIB}

# stage_files DIR MIB: about MIB MiB of regular files from /usr, whole files in
# path order, copied with their directories (hard links would let one inode
# stand for several files and shrink the data).
stage_files() {
  local dir=$1 mib=$2
  echo "bench: staging ${mib} MiB of system files from /usr" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  find /usr -xdev -type f -readable -printf '%s\tusr/%P\n' 2>/dev/null | sort -t $'\t' -k2 |
    awk -F '\t' -v max=$((mib * 1048576)) 'sum < max { sum += $1; print $2 }' >"$dir.list"
  tar -C / -cf - -T "$dir.list" | tar -C "$dir.tmp" -xf -
  rm -f "$dir.list"
  mv "$dir.tmp" "$dir"
}

make_base() {
  local img=$1 tree=$CACHE/tree-$DATA_MIB
  [[ -d $tree ]] || stage_files "$tree" "$DATA_MIB"
  # make room when the files need more than the root partition was given
  local staged root=$ROOT_MIB
  staged=$(du -sm "$tree" | cut -f1)
  ((staged * 5 / 4 + 256 > root)) && root=$((staged * 5 / 4 + 256))
  echo "bench: making the base image (once): ${staged} MiB of files, ${root} MiB root" >&2
  "$TOP/scripts/make-fixture.sh" -o "$img.tmp" --boot-size 512 --root-size "$root" --extra-root "$tree" >/dev/null
  mv "$img.tmp" "$img"
}

if [[ -n ${BENCH_BASE:-} ]]; then
  base=$BENCH_BASE
  basexz=$BENCH_BASE.xz
  [[ -f $basexz ]] || basexz=$CACHE/$(basename "$base").xz
else
  base=$CACHE/base-$SHAPE.img
  basexz=$CACHE/base-$SHAPE.xz$XZ_LEVEL.img.xz
  [[ -f $base ]] || make_base "$base"
fi
# make_xz IMG XZ: XZ made from IMG (multi-block: -T0), once
make_xz() {
  [[ -f $2 ]] && return
  echo "bench: xz -T0 -$XZ_LEVEL of $(basename "$1") (once; this takes a while)" >&2
  xz -T0 "-$XZ_LEVEL" -c "$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}
make_xz "$base" "$basexz"

# A 1 GiB base (256 MiB boot, 768 MiB root, ~450 MiB of the same files), made
# once, to show that peak RSS does not grow with the base.
small=$CACHE/base-1g-d450.img
smallxz=$CACHE/base-1g-d450.xz$XZ_LEVEL.img.xz
make_small() {
  local tree=$CACHE/tree-450
  [[ -d $tree ]] || stage_files "$tree" 450
  echo "bench: making the 1 GiB base (once)" >&2
  "$TOP/scripts/make-fixture.sh" -o "$small.tmp" --boot-size 256 --root-size 768 --extra-root "$tree" >/dev/null
  mv "$small.tmp" "$small"
}
if [[ ${BENCH_SMALL:-1} == 1 ]]; then
  [[ -f $small ]] || make_small
  make_xz "$small" "$smallxz"
fi

# ---- timing ------------------------------------------------------------------
# measure NAME CMD...: run RUNS times (the output dir emptied before each),
# record the median wall time, the largest peak RSS, and for a dimimage
# build run with --verbose the median of its "phase finish" (the commit).
declare -A SEC RSS FIN
measure_n() {
  local runs=$1 name=$2
  shift 2
  local times=() fins=() rss=0 i t m f
  for ((i = 0; i < runs; i++)); do
    rm -rf "$W/out" && mkdir -p "$W/out"
    sync
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>"$W/err" || {
      echo "bench: $name failed:" >&2
      tail -n 5 "$W/err" >&2
      return 1
    }
    read -r t m <"$W/time"
    times+=("$t")
    ((m > rss)) && rss=$m
    f=$(sed -n 's/.*debug: phase finish: \([0-9.]*\) s.*/\1/p' "$W/err" | awk '{ s += $1 } END { if (NR) print s }')
    [[ -n $f ]] && fins+=("$f")
  done
  SEC[$name]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  RSS[$name]=$((rss / 1024))
  if ((${#fins[@]})); then
    FIN[$name]=$(printf '%s\n' "${fins[@]}" | sort -n | sed -n "$(((${#fins[@]} + 1) / 2))p")
  fi
  echo "bench: $name: ${SEC[$name]} s, ${RSS[$name]} MiB" >&2
}
measure() { measure_n "$RUNS" "$@"; }

# ratio A B: A / B to two places
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print ((r + 0 <= t + 0) ? "ok" : "MISSED") }'; }

row() { # row NAME [FLOOR TARGET]
  local name=$1 floor=${2:-} target=${3:-}
  [[ -n ${SEC[$name]:-} ]] || return 0
  local r="" v=""
  if [[ -n $floor && -n ${SEC[$floor]:-} ]]; then
    r=$(ratio "${SEC[$name]}" "${SEC[$floor]}")
    [[ -n $target ]] && v="target <=${target}x $(verdict "$r" "$target")"
  fi
  printf '%-44s %7s s %6s MiB  %6s  %s\n' "$name" "${SEC[$name]}" "${RSS[$name]}" "${r:+${r}x}" \
    "${floor:+vs $floor}${v:+  ($v)}"
}

# frow NAME FLOOR TARGET: the commit phase alone (compression, hashing,
# bmap, fsync) of a compressed build against the standalone compressor
frow() {
  local name=$1 floor=$2 target=$3
  [[ -n ${FIN[$name]:-} && -n ${SEC[$floor]:-} ]] || return 0
  local r
  r=$(ratio "${FIN[$name]}" "${SEC[$floor]}")
  printf '%-44s %7s s %10s  %6s  %s\n' "  of which the commit (phase finish)" "${FIN[$name]}" "" "${r}x" \
    "vs $floor  (target <=${target}x $(verdict "$r" "$target"))"
}

# to OUT CMD...: CMD's stdout into OUT (a fixed script, arguments passed as such)
# shellcheck disable=SC2016
TO=(bash -c 'out=$1; shift; exec "$@" >"$out"' to)

ARGS=(--role observability --hostname bench --verbose
  --set OPENOBSERVE_PASSWORD=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6 --set OPENOBSERVE_EMAIL=ops@example.org)
export XDG_CACHE_HOME=$W/xdg
export SOURCE_DATE_EPOCH=1700000000
export DIMIMAGE_DATADIR=${DIMIMAGE_DATADIR:-$TOP}

# A fleet of two (app + observability), secrets in the file, images given so
# that no --source is needed.
cat >"$W/fleet.yml" <<'YAML'
env: {DIMDIM_API_IMAGE: example/api:1, DIMDIM_WORKER_IMAGE: example/worker:1}
hosts:
  - {name: bench-app, role: app, address: 10.1.0.11}
  - {name: bench-obs, role: observability, address: 10.1.0.12, env: {OPENOBSERVE_PASSWORD: Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6, OPENOBSERVE_EMAIL: ops@example.org}}
YAML

load() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(load)
echo "bench: base $(du -h --apparent-size "$base" | cut -f1) raw, $(du -h "$base" | cut -f1) allocated," \
  "$(du -h "$basexz" | cut -f1) .xz ($(xz --robot -lv "$basexz" | awk '$1 == "totals" { print $3 }') blocks);" \
  "$NPROC CPUs; median of $RUNS; load average $LOAD_START" >&2

# floors
measure "floor: xz -T0 -dc > out.img" "${TO[@]}" "$W/out/out.img" xz -T0 -dc "$basexz"
measure "floor: xz -T0 -dc > /dev/null" xz -T0 -dc "$basexz"
measure "floor: xz -dc > out.img (1 thread)" "${TO[@]}" "$W/out/out.img" xz -T1 -dc "$basexz"
measure "floor: cp --sparse=always" cp --sparse=always "$base" "$W/out/out.img"
ZSTD_FLOOR="floor: zstd -3 -T$NPROC of the raw image"
XZ_FLOOR="floor: xz -3 -T$NPROC of the raw image"
measure "$ZSTD_FLOOR" zstd -q -3 "-T$NPROC" "$base" -o "$W/out/out.img.zst"
if [[ ${BENCH_XZ_OUT:-1} == 1 ]]; then
  measure "$XZ_FLOOR" "${TO[@]}" "$W/out/out.img.xz" xz -3 "-T$NPROC" -c "$base"
fi

# The contract's floors: the work a build must do (issue 2: the base's
# sha256 for the manifest; issue 6: OUT.sha256 and the bmap's range hashes),
# done with standard tools, as parallel as they allow: the copy or decode,
# then the output's SHA-256 (openssl) beside `bmaptool create`, the base's
# SHA-256 beside the copy (after the decode: the CPUs are full then).  No
# edits, no fsync.  What a build costs beyond the issue's floors, these show
# the contract costs too.
if command -v openssl >/dev/null && command -v bmaptool >/dev/null; then
  # shellcheck disable=SC2016
  measure "contract: xz -dc; 3 hashes" bash -c 'xz -T0 -dc "$1" >"$2" &&
    { openssl dgst -sha256 "$2" >/dev/null & openssl dgst -sha256 "$2" >/dev/null & bmaptool -q create "$2" >/dev/null; wait; }' \
    _ "$basexz" "$W/out/out.img"
  # shellcheck disable=SC2016
  measure "contract: cp; 3 hashes" bash -c 'openssl dgst -sha256 "$1" >/dev/null & cp --sparse=always "$1" "$2" &&
    { openssl dgst -sha256 "$2" >/dev/null & bmaptool -q create "$2" >/dev/null; wait; }; wait' _ "$base" "$W/out/out.img"
  # shellcheck disable=SC2016
  measure "contract: cp; zstd; 3 hashes" bash -c 'openssl dgst -sha256 "$1" >/dev/null & cp --sparse=always "$1" "$2" &&
    { bmaptool -q create "$2" >/dev/null & zstd -q -3 -T"$3" "$2" -o "$2.zst" && openssl dgst -sha256 "$2.zst" >/dev/null; wait; }; wait' \
    _ "$base" "$W/out/out.img" "$NPROC"
fi

# dimimage (compressed outputs use the default level 3 and one thread per CPU,
# like the floors)
B="dimimage build from .img.xz"
measure "$B" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$basexz" -o "$W/out/o.img"
measure "dimimage build from .img" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$base" -o "$W/out/o.img"
"$DIMIMAGE" build "${ARGS[@]}" --base "$basexz" -o "$W/prime.img" >/dev/null 2>&1 && rm -f "$W"/prime.img*
measure "dimimage build from the cache" "$DIMIMAGE" build "${ARGS[@]}" --base "$basexz" -o "$W/out/o.img"
# the raw base's sha256 remembered by a first build, checked beside the next
R="dimimage rebuild from .img (sum remembered)"
"$DIMIMAGE" build "${ARGS[@]}" --base "$base" -o "$W/prime.img" >/dev/null 2>&1 && rm -f "$W"/prime.img*
measure "$R" "$DIMIMAGE" build "${ARGS[@]}" --base "$base" -o "$W/out/o.img"
F="dimimage fleet of 2 from .img.xz"
measure "$F" "$DIMIMAGE" build --verbose --fleet "$W/fleet.yml" --no-cache --base "$basexz" -o "$W/out/fleet"
Z="dimimage build -o .img.zst (from .img)"
measure "$Z" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$base" -o "$W/out/o.img.zst"
X="dimimage build -o .img.xz (from .img)"
if [[ ${BENCH_XZ_OUT:-1} == 1 ]]; then
  measure "$X" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$base" -o "$W/out/o.img.xz"
fi

# peak RSS against the base's size (one run each)
if [[ -f $smallxz ]]; then
  measure_n 1 "1 GiB: floor: xz -T0 -dc > out.img" "${TO[@]}" "$W/out/out.img" xz -T0 -dc "$smallxz"
  measure_n 1 "1 GiB: dimimage build from .img.xz" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$smallxz" -o "$W/out/o.img"
  # read once, as the full base is by its cp floor: its times are not the
  # disk's (these rows are for peak RSS; cold, this one took 11.7 s, not 1.4)
  cat "$small" >/dev/null
  measure_n 1 "1 GiB: dimimage build from .img" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$small" -o "$W/out/o.img"
  measure_n 1 "1 GiB: dimimage build -o .img.zst" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$small" -o "$W/out/o.img.zst"
fi
LOAD_END=$(load)

echo
echo "load average (1/5/15 min): $LOAD_START at the start, $LOAD_END at the end; $NPROC CPUs"
printf '%-44s %9s %10s  %6s  %s\n' "what" "median" "peak RSS" "ratio" "floor"
row "floor: xz -T0 -dc > out.img"
row "floor: xz -T0 -dc > /dev/null"
row "floor: xz -dc > out.img (1 thread)"
row "floor: cp --sparse=always"
row "$ZSTD_FLOOR"
row "$XZ_FLOOR"
row "$B" "floor: xz -T0 -dc > out.img" 1.10
row "dimimage build from .img" "floor: cp --sparse=always" 1.25
row "dimimage build from the cache" "floor: cp --sparse=always" 1.25
row "$R" "floor: cp --sparse=always" 1.25
row "$F" "$B" 1.30
row "$Z" "$ZSTD_FLOOR"
frow "$Z" "$ZSTD_FLOOR" 1.05
row "$X" "$XZ_FLOOR"
frow "$X" "$XZ_FLOOR" 1.05

if [[ -n ${SEC["contract: cp; 3 hashes"]:-} ]]; then
  echo
  echo "against the same work with standard tools (the contract's hashing included; no target)"
  row "contract: xz -dc; 3 hashes"
  row "contract: cp; 3 hashes"
  row "contract: cp; zstd; 3 hashes"
  row "$B" "contract: xz -dc; 3 hashes"
  row "dimimage build from .img" "contract: cp; 3 hashes"
  row "dimimage build from the cache" "contract: cp; 3 hashes"
  row "$Z" "contract: cp; zstd; 3 hashes"
fi

if [[ -f $smallxz ]]; then
  echo
  echo "peak RSS against the base's size (target: <= 64 MiB + what the xz decoder holds, the same for both)"
  printf '%-44s %10s %10s\n' "what" "1 GiB" "$(du -h --apparent-size "$base" | cut -f1)"
  rss_row() { printf '%-44s %6s MiB %6s MiB\n' "$1" "${RSS["1 GiB: $1"]:-?}" "${RSS[$2]:-?}"; }
  rss_row "floor: xz -T0 -dc > out.img" "floor: xz -T0 -dc > out.img"
  rss_row "dimimage build from .img.xz" "$B"
  rss_row "dimimage build from .img" "dimimage build from .img"
  rss_row "dimimage build -o .img.zst" "$Z"
fi
