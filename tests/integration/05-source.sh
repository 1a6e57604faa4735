#!/usr/bin/env bash
# shellcheck disable=SC2016
# Base input: every container format (xz multi-block, gzip, zstd, zip, raw)
# made with the real tools, the base sha256 in the manifest against
# sha256sum, the decompressed-base cache (hit, damaged entry, list, clean,
# --no-cache), a raw base's remembered sha256 (used, wrong), refusals with
# one error line, and the base left untouched.
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

if ! "$DIMIMAGE" build --help >/dev/null 2>&1; then
  echo "skip - dimimage build is not available yet"
  summary
  exit
fi

raw=$(fixture outputs) || { fail "fixture"; summary; exit 1; }
export SOURCE_DATE_EPOCH=1700000000
export XDG_CACHE_HOME=$T/cache
unset DIMIMAGE_CACHE_MAX
ARGS=(--role observability --hostname obs
  --set OPENOBSERVE_PASSWORD=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6 --set OPENOBSERVE_EMAIL=ops@example.org)
build() { "$DIMIMAGE" build "${ARGS[@]}" --quiet "$@"; }

sum=$(sha256sum "$raw" | cut -c1-64)
mkdir -p "$T/in"
cp --sparse=always "$raw" "$T/in/base.img"
# Small blocks so the .xz has several: the threaded decoder's case.
xz -T2 --block-size=8MiB -1 -c "$raw" >"$T/in/base.img.xz"
xz -T1 -1 -c "$raw" >"$T/in/single.img.xz"
gzip -1 -c "$raw" >"$T/in/base.img.gz"
zstd -q -c "$raw" >"$T/in/base.img.zst"
# A skippable frame first (zstd -dc passes over it): still zstd.
{ printf 'P*M\030\004\000\000\000abcd'; cat "$T/in/base.img.zst"; } >"$T/in/skippable.img.zst"
(cd "$T/in" && zip -q base.zip base.img)
cp "$T/in/base.img.xz" "$T/in/misnamed.img"
before=$(cd "$T/in" && sha256sum -- *)

blocks=$(xz --robot -lv "$T/in/base.img.xz" | awk '$1 == "totals" { print $3 }')
if ((blocks > 1)); then ok "test base .xz has $blocks blocks"; else fail "test base .xz has ${blocks:-no} blocks"; fi

manifest_sum() { "$DIMIMAGE" inspect --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifest"]["base"]["sha256"])'; }

# ---- every format ------------------------------------------------------------
# inspect reads the base through the same path as build: every container
# must give what the raw image gives.
"$DIMIMAGE" inspect --json "$T/in/base.img" >"$T/raw.json" 2>/dev/null
check "inspect --json of the raw base" test -s "$T/raw.json"
for f in base.img.xz single.img.xz base.img.gz base.img.zst skippable.img.zst base.zip misnamed.img; do
  check "inspect --json of $f equals the raw base's" bash -c '"$1" inspect --json "$2" | cmp - "$3"' _ "$DIMIMAGE" "$T/in/$f" "$T/raw.json"
done
for f in base.img base.img.xz; do
  out=$T/out-$f.img
  check "build from $f" build --no-cache --base "$T/in/$f" -o "$out"
  got=$(manifest_sum "$out" 2>/dev/null || true)
  if [[ $got == "$sum" ]]; then ok "$f: manifest base sha256 is sha256sum of the raw base"; else fail "$f: manifest base sha256 '$got' != $sum"; fi
  check "$f: output is sparse" bash -c '(( $(stat -c %b "$1") * 512 * 4 < $(stat -c %s "$1") ))' _ "$out"
  check "$f: e2fsck -fn of the root partition" bash -c 'e2fsck -fn "$1?offset=$((532480 * 512))"' _ "$out"
  rm -f "$out" "$out".*
done
check "--no-cache left no cache behind" bash -c '! ls "$1"/dimimage/base-*.img 2>/dev/null | grep -q .' _ "$XDG_CACHE_HOME"

# ---- the cache -----------------------------------------------------------------
# retried WHAT LOG WARNING OUT: a --verbose build whose copy of the base was
# found bad beside it warned, said no error, started again from phase plan
# and wrote OUT.
retried() {
  local what=$1 log=$2 warning=$3 out=$4
  check "$what: build still succeeds" test -s "$out"
  check "$what: warned about" grep -q "$warning" "$log"
  check "$what: no error line" bash -c '! grep -q "^dimimage: error:" "$1"' _ "$log"
  check "$what: read the base again" grep -q "phase plan" <(sed -n "\|$warning|,\$p" "$log")
}
# A dry run reads no compressed base: what depends on it waits for the build.
"$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/dry.img" --dry-run --timezone Europe/Berln >/dev/null 2>"$T/dry.err" \
  && grep -q 'is compressed and not in the cache' "$T/dry.err" && ok "--dry-run from an uncached .xz: not decompressed, says so" \
  || fail "--dry-run from an uncached .xz: $(cat "$T/dry.err")"
check "first build from .xz fills the cache" build --base "$T/in/base.img.xz" -o "$T/c1.img"
check "cache holds base-<sha256 of the raw base>.img" test -f "$XDG_CACHE_HOME/dimimage/base-$sum.img"
check "the cached image is byte-identical to the raw base" cmp "$XDG_CACHE_HOME/dimimage/base-$sum.img" "$raw"
check "cache list names the base" bash -c '"$1" cache list | grep -q "base.img.xz (xz)"' _ "$DIMIMAGE"
DIMIMAGE_CACHE_MAX=lots "$DIMIMAGE" cache list >/dev/null 2>"$T/cm.err"
check "an invalid DIMIMAGE_CACHE_MAX is warned about" grep -q "warning: DIMIMAGE_CACHE_MAX: 'lots' is not a size" "$T/cm.err"
check "second build (from the cache)" build --base "$T/in/base.img.xz" -o "$T/c2.img"
check "cache hit gives identical bytes" cmp "$T/c1.img" "$T/c2.img"
expect_error "--dry-run from a cached .xz checks the base's time zone" "Europe/Berln, which this base does not have" \
  "$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/dry.img" --dry-run --timezone Europe/Berln
printf 'XXXXXXXX' | dd of="$XDG_CACHE_HOME/dimimage/base-$sum.img" bs=1 seek=$((8192 * 512 + 4096)) conv=notrunc status=none
"$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/c3.img" >"$T/c3.log" 2>&1
check "damaged cache entry: build still succeeds" test -s "$T/c3.img"
check "damaged cache entry: warned about" grep -q "damaged" "$T/c3.log"
check "damaged cache entry: no error line" bash -c '! grep -q "^dimimage: error:" "$1"' _ "$T/c3.log"
check "damaged cache entry: output still identical" cmp "$T/c1.img" "$T/c3.img"
check "damaged cache entry replaced by a good one" cmp "$XDG_CACHE_HOME/dimimage/base-$sum.img" "$raw"
# The rebuild hands the cached copy on before its check is done: damage that
# breaks the copy's root filesystem (its superblock's magic) fails the edits,
# and that error must give way to the check's verdict and a second try.
printf 'XX' | dd of="$XDG_CACHE_HOME/dimimage/base-$sum.img" bs=1 seek=$((532480 * 512 + 1024 + 56)) conv=notrunc status=none
"$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/dry.img" --dry-run >/dev/null 2>"$T/dry.err" \
  && grep -q 'cached copy of .* cannot be read' "$T/dry.err" && ! grep -q '^dimimage: error:' "$T/dry.err" \
  && ok "--dry-run from a damaged cache entry: no error, leaves it to the build" || fail "--dry-run, damaged entry: $(cat "$T/dry.err")"
"$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$T/in/base.img.xz" -o "$T/c3b.img" >"$T/c3b.log" 2>&1
retried "entry with a broken root fs" "$T/c3b.log" damaged "$T/c3b.img"
check "entry with a broken root fs: output identical" cmp "$T/c1.img" "$T/c3b.img"
check "entry with a broken root fs: replaced by a good one" cmp "$XDG_CACHE_HOME/dimimage/base-$sum.img" "$raw"
# A FIFO where a ref belongs (a stray mkfifo, a hostile cache): opening it
# to read would wait for a writer forever. The lookup, cache list and the
# store's pruning pass over it; the store puts a ref there again.
ref=$(grep -l "^sha256 $sum$" "$XDG_CACHE_HOME"/dimimage/ref-* | head -n 1)
rm -f "$ref" && mkfifo "$ref"
check "a FIFO as the cache ref: cache list does not wait on it" timeout 20 "$DIMIMAGE" cache list
check "a FIFO as the cache ref: the build does not wait on it" timeout 60 "$DIMIMAGE" build "${ARGS[@]}" --quiet \
  --base "$T/in/base.img.xz" -o "$T/c3c.img"
check "a FIFO as the cache ref: output identical" cmp "$T/c1.img" "$T/c3c.img"
check "a FIFO as the cache ref: a ref file there again" test -f "$ref"
# An entry removed between the lookup and the open (cache clean or another
# build's eviction, in another terminal): a miss, not a damaged entry, and
# what has its name by then is not dropped. strace makes that open fail.
entry=$XDG_CACHE_HOME/dimimage/base-$sum.img
if strace -f -o /dev/null -e trace=openat true 2>/dev/null; then
  ino=$(stat -c %i "$entry")
  gone() { strace -f -o /dev/null -P "$entry" -e trace=openat -e inject=openat:error=ENOENT:when=1 "$@"; }
  gone "$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/c3d.img" >"$T/c3d.log" 2>&1
  check "entry gone before its open: build succeeds" cmp "$T/c1.img" "$T/c3d.img"
  check "entry gone before its open: not called damaged" bash -c '! grep -q "damaged" "$1"' _ "$T/c3d.log"
  check "entry gone before its open: the entry there now is kept" test "$(stat -c %i "$entry")" = "$ino"
  gone "$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/dry.img" --dry-run >/dev/null 2>"$T/dry.err" \
    && grep -q 'cached copy of .* cannot be read' "$T/dry.err" && ! grep -q '^dimimage: error:' "$T/dry.err" \
    && ok "--dry-run, entry gone before its open: no error, leaves it to the build" \
    || fail "--dry-run, entry gone before its open: $(cat "$T/dry.err")"
  # one that cannot be opened is not damaged either: said so, and kept
  strace -f -o /dev/null -P "$entry" -e trace=openat -e inject=openat:error=EACCES:when=1 \
    "$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/c3e.img" >"$T/c3e.log" 2>&1
  check "entry that cannot be opened: build succeeds" cmp "$T/c1.img" "$T/c3e.img"
  check "entry that cannot be opened: said so" grep -q "cannot read the cached copy of .*: Permission denied; decompressing again" "$T/c3e.log"
  check "entry that cannot be opened: not called damaged" bash -c '! grep -q "damaged" "$1"' _ "$T/c3e.log"
  check "entry that cannot be opened: kept" test "$(stat -c %i "$entry")" = "$ino"
else
  ok "skipped: an entry gone before its open needs strace"
fi

# A base that changes while it is read (a download still running, cp over
# it) is said to have changed, exit 75 (try again), whatever the read made
# of it: here a .gz cut to half its size after 1 s, each read slowed so the
# decoder reaches the cut later, where it saw the data cut short (65) and
# said so.  (A raw base is copied at once and hashed beside the build: the
# hash sees the change and the base is read again, as it is by then.)
if strace -f -o /dev/null -e trace=read true 2>/dev/null; then
  cat "$raw" <(head -c 16M /dev/urandom) | gzip -1 >"$T/in/cut.img.gz" # random: a read for each MiB
  (/bin/sleep 1; truncate -s $(($(stat -c %s "$T/in/cut.img.gz") / 2)) "$T/in/cut.img.gz") &
  expect_error "a .gz base cut short while it is read: said to have changed" \
    "cut\.img\.gz: changed while it was read \(is something writing it\?\)" \
    strace -f -qq -o /dev/null -P "$T/in/cut.img.gz" -e trace=read -e inject=read:delay_exit=300000 \
    "$DIMIMAGE" build "${ARGS[@]}" --quiet --no-cache --base "$T/in/cut.img.gz" -o "$T/cut.img"
  expect_rc "... exit 75" 75
  wait
  check "... nothing written" test ! -e "$T/cut.img"
  rm -f "$T/in/cut.img.gz"
else
  ok "skipped: a base cut short while it is read needs strace"
fi
# A base whose last sector, holding data, lies past the last 4 KiB boundary:
# the zero-grain writes and the cache's copy must keep it.
cp --sparse=always "$raw" "$T/odd.img"
printf 'tail sector\n' | dd of="$T/odd.img" bs=512 seek=$(($(stat -c %s "$raw") / 512)) conv=notrunc,sync status=none
xz -T2 -1 -c "$T/odd.img" >"$T/odd.img.xz"
oddsum=$(sha256sum "$T/odd.img" | cut -c1-64)
# A build killed outright leaves its tmp- copy; the next build that uses
# the cache drops one untouched for a minute and unlocked (no live build's),
# not a fresh one, nor one a live build holds: at a store, and at a hit.
cdir=$XDG_CACHE_HOME/dimimage
head -c 4096 /dev/urandom >"$cdir/tmp-KILLED"
touch -d '2 minutes ago' "$cdir/tmp-KILLED"
head -c 4096 /dev/urandom >"$cdir/tmp-LIVE01"
check "base of 4 KiB + 512 bytes: built and cached" build --base "$T/odd.img.xz" -o "$T/c4.img"
check "at a store: a killed build's cache temporary removed" test ! -e "$cdir/tmp-KILLED"
check "at a store: a fresh cache temporary kept" test -e "$cdir/tmp-LIVE01"
rm -f "$cdir/tmp-LIVE01"
check "base of 4 KiB + 512 bytes: cached image identical to it" cmp "$cdir/base-$oddsum.img" "$T/odd.img"
head -c 4096 /dev/urandom >"$cdir/tmp-KILLED"
exec 9>"$cdir/tmp-LOCKED"
flock -x 9
touch -d '2 minutes ago' "$cdir/tmp-KILLED" "$cdir/tmp-LOCKED"
check "base of 4 KiB + 512 bytes: rebuilt from the cache" build --base "$T/odd.img.xz" -o "$T/c5.img"
exec 9>&-
check "at a hit: a killed build's cache temporary removed" test ! -e "$cdir/tmp-KILLED"
check "at a hit: a temporary a live build holds kept" test -e "$cdir/tmp-LOCKED"
rm -f "$cdir/tmp-LOCKED"
check "base of 4 KiB + 512 bytes: rebuild identical" cmp "$T/c4.img" "$T/c5.img"
# A raw base is not copied into the cache, but its sha256 is remembered: the
# next build copies it at once and checks it beside the edits.
# The first build from it copies it at once too, hashes it beside the
# edits and fills the sum into the manifest as the commit reads it back.
"$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$T/in/base.img" -o "$T/r1.img" >"$T/r1.log" 2>&1
check "build from .img remembers its sha256" test -s "$T/r1.img"
check "first build from .img: its sha256 computed beside the build" grep -q "base.img: sha256 computed beside the build" "$T/r1.log"
got=$(manifest_sum "$T/r1.img" 2>/dev/null || true)
if [[ $got == "$sum" ]]; then ok "sha256 computed beside: filled into the manifest"; else fail "sha256 computed beside: manifest says '$got'"; fi
check "sha256 computed beside: OUT.sha256 is the file's" bash -c 'cd "$(dirname "$1")" && sha256sum --quiet -c "$1.sha256"' _ "$T/r1.img"
check "sha256 computed beside: bmaptool copy checks every range" bmaptool copy --bmap "$T/r1.img.bmap" "$T/r1.img" "$T/r1-copy.img"
check "sha256 computed beside: e2fsck -fn" bash -c 'e2fsck -fn "$1?offset=$((532480 * 512))"' _ "$T/r1.img"
rm -f "$T/r1-copy.img"
# a compressed output is fed the filled-in bytes too
check "sha256 computed beside: -o .img.zst" build --no-cache --base "$T/in/base.img" -o "$T/r1z.img.zst"
zstd -q -d "$T/r1z.img.zst" -o "$T/r1z.img"
got=$(manifest_sum "$T/r1z.img" 2>/dev/null || true)
if [[ $got == "$sum" ]]; then ok "sha256 computed beside: in the .img.zst's manifest"; else fail "sha256 computed beside: .img.zst's manifest says '$got'"; fi
check "sha256 computed beside: .img.zst holds the raw build's image" cmp "$T/r1.img" "$T/r1z.img"
rm -f "$T"/r1z.img*
check "one sum-* file, holding the base's sha256" bash -c '[[ $(grep -l "^sha256 $2$" "$1"/dimimage/sum-* | wc -l) == 1 ]]' _ "$XDG_CACHE_HOME" "$sum"
check "no copy of the raw base in the cache" bash -c '! grep -qs "^source .*/base\.img$" "$1"/dimimage/ref-*' _ "$XDG_CACHE_HOME"
"$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$T/in/base.img" -o "$T/r2.img" >"$T/r2.log" 2>&1
check "rebuild from .img: used the remembered sha256" grep -q "sha256 remembered, checked beside the build" "$T/r2.log"
check "rebuild from .img: the check passed" grep -q "its remembered sha256 checked out" "$T/r2.log"
check "rebuild from .img: identical output" cmp "$T/r1.img" "$T/r2.img"
check "rebuild from .img: same OUT.sha256" bash -c '[[ $(cut -c1-64 "$1") == $(cut -c1-64 "$2") ]]' _ "$T/r1.img.sha256" "$T/r2.img.sha256"
check "cache list counts the remembered sum" bash -c '"$1" cache list | grep -q "sha256 of 1 raw base,"' _ "$DIMIMAGE"
sed -i "s/^sha256 .*/sha256 $(printf '0%.0s' {1..64})/" "$XDG_CACHE_HOME"/dimimage/sum-*
"$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$T/in/base.img" -o "$T/r3.img" >"$T/r3.log" 2>&1
retried "wrong remembered sha256" "$T/r3.log" "base.img: does not match the sha256 remembered for it" "$T/r3.img"
# r3 was hashed on the way, r1's sum computed beside: the same bytes
check "wrong remembered sha256: output identical to the first build's" cmp "$T/r1.img" "$T/r3.img"
got=$(manifest_sum "$T/r3.img" 2>/dev/null || true)
if [[ $got == "$sum" ]]; then ok "wrong remembered sha256: manifest has the real one"; else fail "wrong remembered sha256: manifest says '$got'"; fi
check "wrong remembered sha256: base still there" cmp "$T/in/base.img" "$raw"
check "wrong remembered sha256: replaced by the real one" grep -q "^sha256 $sum$" "$XDG_CACHE_HOME"/dimimage/sum-*
sumfile=$(ls "$XDG_CACHE_HOME"/dimimage/sum-*)
rm -f "$sumfile" && mkfifo "$sumfile"
check "a FIFO as the remembered sha256: the build does not wait on it" timeout 60 "$DIMIMAGE" build "${ARGS[@]}" \
  --quiet --base "$T/in/base.img" -o "$T/r4.img"
check "a FIFO as the remembered sha256: output identical" cmp "$T/r1.img" "$T/r4.img"
check "a FIFO as the remembered sha256: a sum file there again" grep -q "^sha256 $sum$" "$sumfile"
rm -f "$T"/r?.img* "$T"/r?.log
# A cache others may write to (XDG_CACHE_HOME in /tmp, made by another user,
# or left writable) is not used: a planted image with a ref naming its own
# sha256 passes the check before use. Here one is planted for base.img.xz:
# the odd base, under a ref with base.img.xz's key.
cdir=$XDG_CACHE_HOME/dimimage
xzref=$(grep -l "^sha256 $sum$" "$cdir"/ref-* | head -n 1)
sed -i -e "s/^sha256 .*/sha256 $oddsum/" -e "s/^bytes .*/bytes $(stat -c %s "$T/odd.img")/" "$xzref"
cp --sparse=always "$T/odd.img" "$cdir/base-$oddsum.img"
planted() { # WHAT WHY: a build from base.img.xz ignores the planted entry
  local what=$1 why=$2
  "$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/p.img" >"$T/p.log" 2>&1
  check "$what: not used as the cache, and said why" grep -q "dimimage: warning: $cdir: not used as the cache: $why" "$T/p.log"
  got=$(manifest_sum "$T/p.img" 2>/dev/null || true)
  if [[ $got == "$sum" ]]; then ok "$what: built from the base itself"; else fail "$what: built from '$got'"; fi
  check "$what: cache list says it is not used" bash -c '"$1" cache list 2>&1 | grep -q "not used as the cache: $2"' _ "$DIMIMAGE" "$why"
  rm -f "$T"/p.img*
}
chmod 0777 "$cdir"
planted "a cache every user may write to" "other users may write to it"
chmod 0700 "$cdir"
if [[ $(id -u) == 0 ]]; then
  chown 65534 "$cdir"
  planted "a cache another user owns" "another user owns it"
  chown 0 "$cdir"
else
  ok "skipped: a cache another user owns needs root to chown"
fi
# the same planted entry in a cache of one's own is the user's own doing
"$DIMIMAGE" build "${ARGS[@]}" --quiet --base "$T/in/base.img.xz" -o "$T/p.img" 2>/dev/null
got=$(manifest_sum "$T/p.img" 2>/dev/null || true)
if [[ $got == "$oddsum" ]]; then ok "control: the planted entry is used from a cache of one's own"; else fail "control: planted entry not used ('$got')"; fi
rm -f "$T"/p.img* "$xzref" "$cdir/base-$oddsum.img"
# A bound lowered below what is cached takes effect at the next miss, even
# one too big to be cached itself.
check "a cached image to evict" build --base "$T/in/base.img.xz" -o "$T/b1.img"
check "a cached image to evict: there" test -f "$cdir/base-$sum.img"
DIMIMAGE_CACHE_MAX=4K "$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$T/in/single.img.xz" -o "$T/b2.img" >"$T/b2.log" 2>&1
check "a base bigger than a lowered bound: not cached" grep -q "more than the cache may hold" "$T/b2.log"
check "a base bigger than a lowered bound: what was cached evicted" test ! -e "$cdir/base-$sum.img"
rm -f "$T"/b?.img* "$T/b2.log"
# A damaged entry that cannot be removed (an immutable directory) is not
# copied a second time: the build reads the base itself after one warning.
check "an entry to damage" build --base "$T/in/base.img.xz" -o "$T/d1.img"
printf 'XXXXXXXX' | dd of="$cdir/base-$sum.img" bs=1 seek=$((8192 * 512 + 4096)) conv=notrunc status=none
if chattr +i "$cdir" 2>/dev/null; then
  "$DIMIMAGE" build "${ARGS[@]}" --verbose --base "$T/in/base.img.xz" -o "$T/d2.img" >"$T/d2.log" 2>&1
  chattr -i "$cdir"
  check "a damaged entry that cannot be dropped: the build succeeds" cmp "$T/c1.img" "$T/d2.img"
  check "a damaged entry that cannot be dropped: warned once" test "$(grep -c damaged "$T/d2.log")" = 1
else
  ok "skipped: an undeletable damaged entry needs chattr +i (root, a filesystem with flags)"
fi
rm -f "$T"/d?.img* "$T/d2.log"
# cache clean beside a build storing its copy: the finished copy, about to
# be renamed into place, is still that build's (locked until renamed).
# strace holds the rename back, cache clean runs meanwhile.
if strace -f -o /dev/null -e trace=rename true 2>/dev/null; then
  "$DIMIMAGE" cache clean >/dev/null 2>&1
  strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:delay_enter=4000000:when=1 \
    "$DIMIMAGE" build "${ARGS[@]}" --base "$T/in/base.img.xz" -o "$T/k.img" >"$T/k.log" 2>&1 &
  spid=$!
  for _ in $(seq 100); do compgen -G "$cdir/tmp-*" >/dev/null && break; sleep 0.1; done
  sleep 1.5
  "$DIMIMAGE" cache clean >/dev/null 2>&1
  wait "$spid"
  check "cache clean beside a build's store: the build succeeds" test -s "$T/k.img"
  check "cache clean beside a build's store: its copy kept" cmp "$cdir/base-$sum.img" "$raw"
  check "cache clean beside a build's store: no cache warning" bash -c '! grep -q "cannot write to the cache" "$1"' _ "$T/k.log"
  rm -f "$T"/k.img* "$T/k.log"
else
  ok "skipped: cache clean beside a store needs strace"
fi
# A build killed outright left its copy: cache list shows the space it
# takes, and cache clean counts it among what it removed.
head -c 8192 /dev/urandom >"$XDG_CACHE_HOME/dimimage/tmp-KILLED"
check "cache list shows a killed build's copy" \
  bash -c '"$1" cache list | grep -q "^and 1 unfinished copy, 8.0 KiB on disk"' _ "$DIMIMAGE"
n=$(find "$XDG_CACHE_HOME/dimimage" -mindepth 1 -maxdepth 1 | wc -l)
check "cache clean counts every file it removed ($n)" \
  bash -c '"$1" cache clean 2>&1 | grep -q "^removed $2 cache files from "' _ "$DIMIMAGE" "$n"
check "cache empty after clean" bash -c '! ls "$1"/dimimage/ | grep -q .' _ "$XDG_CACHE_HOME"
rm -f "$T"/c?.img* "$T"/odd.img*

# ---- where the cache is --------------------------------------------------------
# lib.sh gives every test its own XDG_CACHE_HOME, so the HOME fallback is
# tried here on purpose.  Without XDG_CACHE_HOME the cache is HOME/.cache/
# dimimage, made as needed; a HOME that does not exist (sbuild's and many
# service accounts' /nonexistent) is not made: the build runs uncached.
mkdir -p "$T/cache-home"
check "no XDG_CACHE_HOME: a build from .xz succeeds" env -u XDG_CACHE_HOME HOME="$T/cache-home" \
  "$DIMIMAGE" build "${ARGS[@]}" --quiet --base "$T/in/base.img.xz" -o "$T/h1.img"
check "no XDG_CACHE_HOME: the cache is HOME/.cache/dimimage" test -f "$T/cache-home/.cache/dimimage/base-$sum.img"
for b in base.img.xz base.img; do
  check "a HOME that does not exist, base $b: the build succeeds" env -u XDG_CACHE_HOME HOME="$T/gone/home" \
    "$DIMIMAGE" build "${ARGS[@]}" --quiet --base "$T/in/$b" -o "$T/h2.img"
  check "a HOME that does not exist, base $b: not made" test ! -e "$T/gone"
  env -u XDG_CACHE_HOME HOME="$T/gone/home" "$DIMIMAGE" build "${ARGS[@]}" --quiet --force --base "$T/in/$b" \
    -o "$T/h2.img" 2>"$T/h2.err"
  check "a HOME that does not exist, base $b: no word of a cache" bash -c '! grep -q "cache" "$1"' _ "$T/h2.err"
  rm -rf "$T/gone" "$T"/h2.img*
done
rm -rf "$T/cache-home" "$T"/h1.img*
# A file where the cache directory goes: one warning (the lookup's), the
# build uncached.
mkdir -p "$T/cf" && : >"$T/cf/dimimage"
XDG_CACHE_HOME=$T/cf "$DIMIMAGE" build "${ARGS[@]}" --quiet --base "$T/in/base.img.xz" -o "$T/h3.img" 2>"$T/h3.err" \
  && [[ $(grep -c cache "$T/h3.err") == 1 ]] && grep -q "cf/dimimage: not used as the cache: it is not a directory" "$T/h3.err" \
  && ok "a file where the cache directory goes: one warning, built uncached" || fail "a file as the cache directory: $(cat "$T/h3.err")"
rm -rf "$T/cf" "$T"/h3.*

# ---- refusals ------------------------------------------------------------------
head -c $(($(stat -c %s "$T/in/base.img.xz") / 2)) "$T/in/base.img.xz" >"$T/in/trunc.img.xz"
expect_error "truncated .xz" "trunc.img.xz: corrupt or truncated xz data" build --base "$T/in/trunc.img.xz" -o "$T/e.img"
head -c $(($(stat -c %s "$T/in/base.img.zst") / 2)) "$T/in/base.img.zst" >"$T/in/trunc.img.zst"
expect_error "truncated .zst" "trunc.img.zst: corrupt or truncated zstd data" build --base "$T/in/trunc.img.zst" -o "$T/e.img"
cp "$T/in/base.img.gz" "$T/in/badcrc.img.gz"
gzsize=$(stat -c %s "$T/in/badcrc.img.gz")
printf '\xde\xad' | dd of="$T/in/badcrc.img.gz" bs=1 seek=$((gzsize - 8)) conv=notrunc status=none
expect_error "gzip CRC mismatch" "badcrc.img.gz: corrupt or truncated gzip data" build --base "$T/in/badcrc.img.gz" -o "$T/e.img"
(cd "$T/in" && cp base.img other.img && zip -q two.zip base.img other.img && rm other.img)
expect_error "zip with two images" "two.zip: zip archive holds 2 images" build --base "$T/in/two.zip" -o "$T/e.img"
echo "not an image" >"$T/in/notes.txt"
(cd "$T/in" && zip -q none.zip notes.txt)
expect_error "zip with no image" "none.zip: zip archive holds no \*.img" build --base "$T/in/none.zip" -o "$T/e.img"
expect_error "text file" "notes.txt: .*not a disk image" build --base "$T/in/notes.txt" -o "$T/e.img"
: >"$T/in/empty.img"
expect_error "empty file" "empty.img: empty file" build --base "$T/in/empty.img" -o "$T/e.img"
expect_error "missing base" "nope.img.xz: cannot open: No such file or directory" build --base "$T/in/nope.img.xz" -o "$T/e.img"
expect_rc "missing base" 66
printf 'FOO=bar\nnot an assignment\n' >"$T/in/bad.env"
expect_error "a missing base is named before a bad .env" "nope.img.xz: cannot open" \
  build --env "$T/in/bad.env" --base "$T/in/nope.img.xz" -o "$T/e.img"
expect_error "a directory as the base" "in: is a directory, not an image file" build --base "$T/in" -o "$T/e.img"
expect_rc "a directory as the base" 66
# An unreadable base is missing input (66), not an output that cannot be
# created (73, what EACCES means for -o). Mode 0000: its owner cannot read it
# either.
mkdir -p "$T/perm" && cp "$T/in/base.img" "$T/perm/locked.img" && chmod 0000 "$T/perm/locked.img"
if unprivileged "$T/perm"; then
  expect_error "an unreadable base" "locked.img: cannot open: Permission denied" \
    "${UNPRIV[@]}" build "${ARGS[@]}" --quiet --base "$T/perm/locked.img" -o "$T/perm/e.img"
  expect_rc "an unreadable base" 66
  check "an unreadable base: nothing written" bash -c '! ls "$1"/e.img* 2>/dev/null | grep -q .' _ "$T/perm"
  # The same for --source, a directory or an archive (inspect's and flash's
  # IMAGE: 10-inspect, 31-flash).
  cp "$T/in/base.img" "$T/perm/ok.img" && chmod a+r "$T/perm/ok.img"
  mkdir -p "$T/perm/src" && tar -cf "$T/perm/src.tar" -C "$T/perm" src && chmod 0000 "$T/perm/src" "$T/perm/src.tar"
  for s in src src.tar; do
    expect_error "an unreadable --source $s" "$s: cannot read.*Permission denied" \
      "${UNPRIV[@]}" build "${ARGS[@]}" --quiet --dry-run --base "$T/perm/ok.img" --source "$T/perm/$s" -o "$T/perm/e.img"
    expect_rc "an unreadable --source $s" 66
  done
else
  ok "skipped: an unreadable base needs setpriv to drop root"
fi
rm -rf "$T/perm"
check "no output left after failures" bash -c '! ls "$1"/e.img* 2>/dev/null | grep -q .' _ "$T"
rm -f "$T/in/trunc.img.xz" "$T/in/trunc.img.zst" "$T/in/badcrc.img.gz" "$T/in/two.zip" "$T/in/none.zip" "$T/in/notes.txt" "$T/in/empty.img" "$T/in/bad.env"

after=$(cd "$T/in" && sha256sum -- *)
if [[ $before == "$after" ]]; then ok "bases untouched"; else fail "a base changed"; fi

summary
