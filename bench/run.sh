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
#   BENCH_XZ_LEVEL=6       preset of the base's .xz (6 is what RasPiOS ships)
#   BENCH_XZ_OUT=0         1: also time .img.xz output (xz -6 takes minutes)
#   DIMIMAGE=build/dimimage
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
DIMIMAGE=${DIMIMAGE:-$TOP/build/dimimage}
CACHE=$TOP/bench/.cache
RUNS=${RUNS:-3}
ROOT_MIB=${BENCH_ROOT_MIB:-2200}
DATA_MIB=${BENCH_DATA_MIB:-1600}
XZ_LEVEL=${BENCH_XZ_LEVEL:-6}
mkdir -p "$CACHE"
W=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$W"' EXIT

for tool in xz zstd /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 1; }
done

# ---- the base ----------------------------------------------------------------
make_base() {
  local img=$1 tree=$CACHE/tree
  if [[ ! -d $tree ]]; then
    echo "bench: staging ${DATA_MIB} MiB of system files" >&2
    mkdir -p "$tree.tmp/usr"
    local d used
    for d in /usr/lib/x86_64-linux-gnu /usr/bin /usr/share /usr/lib; do
      [[ -d $d ]] || continue
      used=$(du -sm "$tree.tmp" | cut -f1)
      ((used >= DATA_MIB)) && break
      # hard links where /usr shares the file system (cheap), copies otherwise
      cp -al "$d" "$tree.tmp/usr/" 2>/dev/null || cp -a "$d" "$tree.tmp/usr/" 2>/dev/null || true
    done
    mv "$tree.tmp" "$tree"
  fi
  # whole directories are staged: make room for what was actually copied
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
  base=$CACHE/base.img
  basexz=$CACHE/base.img.xz
  [[ -f $base ]] || make_base "$base"
fi
if [[ ! -f $basexz ]]; then
  echo "bench: xz -T0 -$XZ_LEVEL of the base (once; this takes a while)" >&2
  xz -T0 "-$XZ_LEVEL" -c "$base" >"$basexz.tmp"
  mv "$basexz.tmp" "$basexz"
fi

# ---- timing ------------------------------------------------------------------
# measure NAME CMD...: run RUNS times (the output dir emptied before each),
# print the median wall time and the largest peak RSS.
declare -A SEC RSS
measure() {
  local name=$1
  shift
  local times=() rss=0 i
  for ((i = 0; i < RUNS; i++)); do
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
  done
  SEC[$name]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
  RSS[$name]=$((rss / 1024))
}

row() { # row NAME FLOOR TARGET
  local name=$1 floor=${2:-} target=${3:-}
  [[ -n ${SEC[$name]:-} ]] || return 0
  local ratio="" verdict=""
  if [[ -n $floor && -n ${SEC[$floor]:-} ]]; then
    ratio=$(awk -v a="${SEC[$name]}" -v b="${SEC[$floor]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    [[ -n $target ]] && verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print ((r + 0 <= t + 0) ? "ok" : "MISSED") }')
  fi
  printf '%-38s %8s s %7s MiB  %6s  %-22s %s\n' "$name" "${SEC[$name]}" "${RSS[$name]}" \
    "${ratio:+${ratio}x}" "${floor:+vs $floor}" "${target:+target <=${target}x $verdict}"
}

# to OUT CMD...: CMD's stdout into OUT (a fixed script, arguments passed as such)
# shellcheck disable=SC2016
TO=(bash -c 'out=$1; shift; exec "$@" >"$out"' to)

ARGS=(--role observability --hostname bench --quiet
  --set OPENOBSERVE_PASSWORD=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6 --set OPENOBSERVE_EMAIL=ops@example.org)
export XDG_CACHE_HOME=$W/xdg
export SOURCE_DATE_EPOCH=1700000000

echo "bench: base $(du -h --apparent-size "$base" | cut -f1) raw, $(du -h "$base" | cut -f1) allocated," \
  "$(du -h "$basexz" | cut -f1) .xz ($(xz --robot -lv "$basexz" | awk '$1 == "totals" { print $3 }') blocks);" \
  "$(nproc) CPUs; median of $RUNS" >&2

# floors
measure "floor: xz -T0 -dc > out.img" "${TO[@]}" "$W/out/out.img" xz -T0 -dc "$basexz"
measure "floor: xz -T0 -dc > /dev/null" xz -T0 -dc "$basexz"
measure "floor: xz -dc > out.img (1 thread)" "${TO[@]}" "$W/out/out.img" xz -T1 -dc "$basexz"
measure "floor: cp --sparse=always" cp --sparse=always "$base" "$W/out/out.img"
measure "floor: zstd -3 -T0 of the raw image" zstd -q -3 -T0 "$base" -o "$W/out/out.img.zst"
if [[ ${BENCH_XZ_OUT:-0} == 1 ]]; then
  measure "floor: xz -6 -T0 of the raw image" "${TO[@]}" "$W/out/out.img.xz" xz -6 -T0 -c "$base"
fi

# dimimage
if "$DIMIMAGE" build --help >/dev/null 2>&1; then
  measure "dimimage build from .img.xz" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$basexz" -o "$W/out/o.img"
  measure "dimimage build from .img" "$DIMIMAGE" build "${ARGS[@]}" --no-cache --base "$base" -o "$W/out/o.img"
  "$DIMIMAGE" build "${ARGS[@]}" --base "$basexz" -o "$W/prime.img" >/dev/null 2>&1 && rm -f "$W"/prime.img*
  measure "dimimage build from the cache" "$DIMIMAGE" build "${ARGS[@]}" --base "$basexz" -o "$W/out/o.img"
  measure "dimimage build -o .img.zst" "$DIMIMAGE" build "${ARGS[@]}" --base "$basexz" -o "$W/out/o.img.zst"
  if [[ ${BENCH_XZ_OUT:-0} == 1 ]]; then
    measure "dimimage build -o .img.xz" "$DIMIMAGE" build "${ARGS[@]}" --base "$basexz" -o "$W/out/o.img.xz"
  fi
fi

echo
printf '%-38s %10s %11s  %6s  %-22s %s\n' "what" "median" "peak RSS" "ratio" "floor" "target"
row "floor: xz -T0 -dc > out.img"
row "floor: xz -T0 -dc > /dev/null"
row "floor: xz -dc > out.img (1 thread)"
row "floor: cp --sparse=always"
row "floor: zstd -3 -T0 of the raw image"
row "floor: xz -6 -T0 of the raw image"
row "dimimage build from .img.xz" "floor: xz -T0 -dc > out.img" 1.10
row "dimimage build from .img" "floor: cp --sparse=always" 1.25
row "dimimage build from the cache" "floor: cp --sparse=always" 1.25
row "dimimage build -o .img.zst" "floor: zstd -3 -T0 of the raw image"
row "dimimage build -o .img.xz" "floor: xz -6 -T0 of the raw image"
