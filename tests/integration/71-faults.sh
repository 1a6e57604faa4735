#!/usr/bin/env bash
# Issue 8: faults during a build. The output file system filling up, an
# unwritable output directory, SIGINT/SIGTERM at several points: each time
# the exit is by the signal or non-zero (never a crash), no OUT, OUT.bmap,
# OUT.sha256, OUT.secrets.env or hidden temporary is left, and the base is
# unchanged.
source "$(dirname "$0")/../lib.sh"

PW=qT7vLm2Rz8KpWx4N
args=(--role observability --set "OPENOBSERVE_PASSWORD=$PW")
small=$(fixture small --boot-size 64 --cluster 512 --root-size 64) || exit 1
# 300 MiB of non-zero data in the root fs: enough to fill a small tmpfs and
# to keep a build busy long enough to be interrupted at several points.
big=$(fixture fill300 --boot-size 64 --cluster 512 --root-size 400 --ext4-size-fill 300) || exit 1
export XDG_CACHE_HOME=$T/cache
mkdir -p "$T/cache"

mounts=()
cleanup() {
  local m
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

# left DIR: what a failed build left in DIR (hidden files included; nothing
# when DIR itself is gone).
left() { [[ ! -e $1 ]] || ls -A "$1"; }
# said_stop LOG OUT: LOG holds the one line a stopped build says, once
# (and no error), empty otherwise with what it holds instead.
said_stop() {
  local n
  n=$(grep -cxF "dimimage: interrupted: $2: not written" "$1")
  [[ $n == 1 ]] && ! grep -q '^dimimage: error:' "$1" || { echo "said $n times:"; grep '^dimimage:' "$1"; }
}
# cache_temps: temporaries left in the decompressed-base cache.
cache_temps() { find "$T/cache" \( -name '.*' -o -name 'tmp-*' \) -type f 2>/dev/null; find "$T/cache" -name '*.tmp' 2>/dev/null; }

# mount_tmpfs DIR SIZE [ro]: a tmpfs at DIR; fails when we may not mount.
mount_tmpfs() {
  mkdir -p "$1"
  ((EUID == 0)) || return 1
  mount -t tmpfs -o "size=$2" tmpfs "$1" 2>/dev/null || return 1
  mounts+=("$1")
  if [[ ${3:-} == ro ]]; then mount -o remount,ro "$1" 2>/dev/null || return 1; fi
}

# ---- ENOSPC --------------------------------------------------------------------------
before=$(sha256sum <"$big")
if mount_tmpfs "$T/full" 20m; then
  for out in big.img big.img.zst; do
    expect_error "ENOSPC ($out into a 20 MiB tmpfs), with what to do next" 'No space left on device \(free some space there' \
      "$DIMIMAGE" build "${args[@]}" --base "$big" -o "$T/full/$out"
    check "ENOSPC ($out): the error names OUT, not its temporary" grep -q "^dimimage: error: $T/full/$out: cannot write" "$T/.err"
    expect_rc "ENOSPC ($out) is an output that cannot be created, not bad input" 73
    [[ -z $(left "$T/full") ]] && ok "ENOSPC ($out): nothing left" || fail "ENOSPC ($out): left $(left "$T/full")"
    rm -rf "${T:?}/full/"{*,.[!.]*}
  done
  # inspect decompresses a compressed IMAGE into TMPDIR: a full one is
  # TMPDIR's to fix (inspect has no -o), and nothing is left in it
  zstd -q -1 -c "$big" >"$T/big.img.zst"
  expect_error "ENOSPC: inspect of a .zst into a full TMPDIR says to set TMPDIR" \
    "^dimimage: error: $T/full: cannot write: No space left on device \(free some space there, or set TMPDIR to a directory with room" \
    env TMPDIR="$T/full" "$DIMIMAGE" inspect "$T/big.img.zst"
  expect_rc "ENOSPC: inspect into a full TMPDIR" 73
  [[ -z $(left "$T/full") ]] && ok "ENOSPC (inspect): nothing left" || fail "ENOSPC (inspect): left $(left "$T/full")"
  rm -f "$T/big.img.zst"
  [[ $(df --output=used -B1 "$T/full" | tail -n 1) -lt 1048576 ]] && ok "ENOSPC: space freed again" || fail "ENOSPC: space still used: $(df -h "$T/full" | tail -n 1)"
else
  ok "skipped: ENOSPC needs a small tmpfs and mounting one needs root (uid $EUID)"
fi
# ENOSPC while the partitions are edited (ext4 and FAT writes, the ext4
# write-back, injected from the Nth write on): the message names the base,
# as the image is known, so it says the full disk is OUT's, exit 73.
if strace -f -o /dev/null -e trace=pwrite64 true 2>/dev/null; then
  hits=0
  mkdir -p "$T/ns"
  for n in 2 100 140 150 200 300 450 600; do
    rc=0
    strace -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:error=ENOSPC:when="$n+" \
      "$DIMIMAGE" build "${args[@]}" --base "$small" -o "$T/ns/out.img" --no-cache >/dev/null 2>"$T/ns.err" || rc=$?
    ((rc == 0)) && { rm -f "$T/ns/"*; continue; } # the build made fewer writes
    hits=$((hits + 1))
    [[ $rc == 73 && $(grep -c '^dimimage: error:' "$T/ns.err") == 1 && -z $(left "$T/ns") ]] \
      && grep -q 'No space left on device.*(.*free some space there, or give -o a place with room)' "$T/ns.err" \
      && ok "ENOSPC from write $n on: exit 73, one line saying what to do, nothing left" \
      || { fail "ENOSPC from write $n on: exit $rc, left $(left "$T/ns")"; sed 's/^/    /' "$T/ns.err"; }
  done
  ((hits >= 4)) && ok "ENOSPC injected at $hits points of the build" || fail "ENOSPC injected at only $hits points"
  rm -rf "$T/ns"
fi
# A fleet decodes its base into two files at once: room for one of them
# (the base holds ~320 MiB), not for both.
cat >"$T/fleet.yml" <<YAML
hosts:
  - {name: f1, role: observability, address: 10.0.0.7, env: {OPENOBSERVE_PASSWORD: $PW}}
  - {name: f2, role: observability, address: 10.0.0.8, env: {OPENOBSERVE_PASSWORD: $PW}}
YAML
if mount_tmpfs "$T/half" 500m; then
  expect_error "ENOSPC: a fleet whose second decoded file does not fit" 'No space left on device \(free some space there' \
    "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$big" -o "$T/half/fleet"
  expect_rc "ENOSPC (fleet)" 73
  grep -Eq "/fleet/f[12]\.img: " "$T/.err" && ok "ENOSPC (fleet): names the host whose image it is" \
    || fail "ENOSPC (fleet): names $(cat "$T/.err")"
  [[ -z $(left "$T/half/fleet") ]] && ok "ENOSPC (fleet): nothing left" || fail "ENOSPC (fleet): left $(left "$T/half/fleet")"
  [[ $(df --output=used -B1 "$T/half" | tail -n 1) -lt 1048576 ]] && ok "ENOSPC (fleet): space freed again" \
    || fail "ENOSPC (fleet): space still used: $(df -h "$T/half" | tail -n 1)"
else
  ok "skipped: ENOSPC of a fleet needs a tmpfs and mounting one needs root (uid $EUID)"
fi
[[ $(sha256sum <"$big") == "$before" ]] && ok "ENOSPC: base unchanged" || fail "ENOSPC: base changed"

# ---- unwritable output directory -------------------------------------------------------
if ((EUID == 0)); then
  # root ignores directory modes; a read-only mount stops it.
  if mount_tmpfs "$T/ro" 1m ro; then ro_ok=1; else ro_ok=0; fi
else
  mkdir -p "$T/ro"
  chmod 0555 "$T/ro"
  ro_ok=1
fi
if ((ro_ok)); then
  before=$(sha256sum <"$small")
  expect_error "unwritable output directory" 'ro(/out\.img)?: .*(not writable|Read-only|Permission denied|cannot create)' \
    "$DIMIMAGE" build "${args[@]}" --base "$small" -o "$T/ro/out.img"
  [[ -z $(left "$T/ro") ]] && ok "unwritable: nothing left" || fail "unwritable: left $(left "$T/ro")"
  [[ $(sha256sum <"$small") == "$before" ]] && ok "unwritable: base unchanged" || fail "unwritable: base changed"
  rc=0
  "$DIMIMAGE" build "${args[@]}" --base "$small" -o "$T/ro/out.img" >/dev/null 2>&1 || rc=$?
  [[ $rc == 73 ]] && ok "unwritable: exit 73 (cannot create output)" || fail "unwritable: exit $rc, want 73"
else
  ok "skipped: unwritable output directory: cannot remount a tmpfs read-only"
fi

# ---- another user's OUT in a sticky directory ------------------------------------------------
# In /tmp and its like only a file's owner may replace it: --force or not,
# such an OUT (or a companion the commit would remove) is refused before the
# build starts, not by the rename at its end.  Making another user's file
# takes root: as root the builds run as nobody.
mkdir -p "$T/perm/sticky" && cp --sparse=always "$small" "$T/perm/base.img"
if ((EUID == 0)) && unprivileged "$T/perm"; then
  chmod 1777 "$T/perm/sticky" && chmod a+r "$T/perm/base.img"
  echo theirs >"$T/perm/sticky/o.img"
  echo theirs >"$T/perm/sticky/p.img.bmap"
  before=$(cd "$T/perm/sticky" && sha256sum ./*)
  expect_error "another user's OUT in a sticky directory, --force" \
    "sticky/o\.img: belongs to another user \(uid 0\) in the sticky directory .*sticky, where only its owner may replace it; choose another -o" \
    "${UNPRIV[@]}" build "${args[@]}" --force --base "$T/perm/base.img" -o "$T/perm/sticky/o.img"
  expect_rc "another user's OUT in a sticky directory" 73
  expect_error "another user's OUT.bmap in a sticky directory" "sticky/p\.img\.bmap: belongs to another user \(uid 0\)" \
    "${UNPRIV[@]}" build "${args[@]}" --base "$T/perm/base.img" -o "$T/perm/sticky/p.img"
  expect_rc "another user's OUT.bmap in a sticky directory" 73
  [[ $(cd "$T/perm/sticky" && sha256sum ./*) == "$before" ]] && ok "sticky directory: nothing left, nothing replaced" \
    || fail "sticky directory: $(ls -A "$T/perm/sticky")"
  chown 65534:65534 "$T/perm/sticky/o.img"
  check "... and one's own OUT there is replaced with --force" \
    "${UNPRIV[@]}" build "${args[@]}" --quiet --force --base "$T/perm/base.img" -o "$T/perm/sticky/o.img"
else
  ok "skipped: another user's OUT needs root to make it (uid $EUID)"
fi
rm -rf "$T/perm"

# ---- an immutable or append-only OUT ----------------------------------------------------
# chattr +i or +a: not even root may rename over it.  Refused before the
# build starts (with the flag to clear), not by the rename at its end.
mkdir -p "$T/imm"
echo mine >"$T/imm/o.img"
echo mine >"$T/imm/p.img.bmap"
if chattr +i "$T/imm/o.img" 2>/dev/null && chattr +a "$T/imm/p.img.bmap" 2>/dev/null; then
  expect_error "an immutable OUT, --force" \
    'imm/o\.img: is immutable \(chattr \+i\), so nothing may replace it: clear that with chattr -i \(as root\), or choose another -o' \
    "$DIMIMAGE" build "${args[@]}" --force --verbose --base "$small" -o "$T/imm/o.img"
  expect_rc "an immutable OUT" 73
  check_fails "... refused before the base is read" grep -q "^Reading" "$T/.out" "$T/.err"
  expect_error "an append-only OUT.bmap" 'imm/p\.img\.bmap: is append-only \(chattr \+a\)' \
    "$DIMIMAGE" build "${args[@]}" --base "$small" -o "$T/imm/p.img"
  chattr -i "$T/imm/o.img"; chattr -a "$T/imm/p.img.bmap"
  [[ $(cat "$T/imm/o.img" "$T/imm/p.img.bmap") == $'mine\nmine' && $(find "$T/imm" -mindepth 1 | wc -l) == 2 ]] \
    && ok "immutable OUT: nothing left, nothing replaced" || fail "immutable OUT: $(find "$T/imm" -mindepth 1)"
else
  ok "skipped: chattr +i/+a needs root and a filesystem with the flags (uid $EUID)"
fi
rm -rf "$T/imm"

# ---- a file size limit -------------------------------------------------------------------
# OUT larger than its filesystem holds in one file (FAT32: 4 GiB) or than
# `ulimit -f` allows: EFBIG, an output that cannot be created (73), with what
# to do next and nothing left.  SIGXFSZ, which ulimit -f raises first, would
# kill the build (exit 153) with its temporaries beside OUT.
mkdir -p "$T/lim"
kb=$(($(stat -c %s "$small") / 1024))
for c in "out.img 10000" "out.img.zst 10000" "out.img $((kb + 1024)) --grow 64M"; do
  read -r out lim grow <<<"$c"
  # shellcheck disable=SC2086,SC2016 # $grow is two words or none; the quoted `ulimit` and $1 are literal
  expect_error "ulimit -f $lim, -o $out${grow:+ $grow}: one error, what to do next" \
    'File too large \(more than the filesystem there holds in one file, 4 GiB on FAT32, or than `ulimit -f` allows' \
    bash -c 'ulimit -f "$1"; shift; exec "$@"' _ "$lim" "$DIMIMAGE" build "${args[@]}" --base "$small" -o "$T/lim/$out" $grow
  expect_rc "ulimit -f $lim, -o $out${grow:+ $grow}: an output that cannot be created" 73
  [[ -z $(left "$T/lim") ]] && ok "ulimit -f $lim, -o $out: nothing left" || fail "ulimit -f $lim, -o $out: left $(left "$T/lim")"
done

# ---- a build cut short in its commit ------------------------------------------------------
# OUT.secrets.env, OUT.bmap and OUT.sha256 describe one OUT: a --force'd
# rebuild that fails keeps the old set whole, and one stopped between two
# renames (SIGKILL, no cleanup) may leave files missing, never a new file
# beside an old OUT or the other way round.
gargs=(--role app --base "$small" --set DIMDIM_API_IMAGE=a/b --set DIMDIM_WORKER_IMAGE=a/c --no-cache)
if strace -f -o /dev/null -e trace=rename true 2>/dev/null; then
  # sums DIR: "NAME SUM" of each visible file, sorted.
  sums() { (cd "$1" && for f in *; do [[ -f $f ]] && echo "$f $(sha256sum <"$f" | cut -c1-64)"; done); }
  mkdir -p "$T/re"
  "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" >/dev/null 2>&1 || fail "first build for the rebuilds"
  old=$(sums "$T/re")
  [[ $(wc -l <<<"$old") == 4 ]] && ok "first build: OUT, .bmap, .sha256, .secrets.env" || fail "first build: $old"
  expect_error "--force rebuild whose image cannot be synced" "cannot sync|Input/output error" \
    strace -f -o /dev/null -e trace=fdatasync -e inject=fdatasync:error=EIO:when=1 \
    "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" --force
  [[ $(sums "$T/re") == "$old" ]] && ok "failed --force rebuild: the old image and its secrets untouched" \
    || fail "failed --force rebuild left: $(sums "$T/re")"
  # consistent DIR OLD: every file present is from OUT's build.
  consistent() {
    local f s was now=0 bad=
    local seen
    seen=$(find "$1" -mindepth 1 -maxdepth 1 -not -name '.*' -printf '%f ')
    [[ -f $1/out.img ]] || { [[ -z $seen ]] || bad="no OUT, yet $seen"; echo "$bad"; return; }
    grep -qx "out.img $(sha256sum <"$1/out.img" | cut -c1-64)" <<<"$2" && was=1 || was=0
    for f in out.img.bmap out.img.sha256 out.img.secrets.env; do
      [[ -f $1/$f ]] || continue
      s=$(sha256sum <"$1/$f" | cut -c1-64)
      grep -qx "$f $s" <<<"$2" && now=1 || now=0
      ((now == was)) || bad+="$f from the $( ((now)) && echo old || echo new) build beside the $( ((was)) && echo old || echo new) OUT; "
    done
    echo "$bad"
  }
  # killed_at N ARGS...: a build SIGKILLed as it makes its Nth rename.
  killed_at() {
    local n=$1
    shift
    (strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:signal=SIGKILL:when="$n" \
      "$DIMIMAGE" build "${gargs[@]}" "$@" || true) >/dev/null 2>&1
  }
  for n in 1 2 3 4; do
    killed_at "$n" -o "$T/re/out.img" --force
    bad=$(consistent "$T/re" "$old")
    [[ -z $bad ]] && ok "--force rebuild killed at rename $n: nothing mismatched" || fail "--force rebuild killed at rename $n: $bad"
    rm -rf "$T/re"; mkdir -p "$T/re"
    killed_at "$n" -o "$T/re/out.img"
    bad=$(consistent "$T/re" "")
    [[ -z $bad ]] && ok "first build killed at rename $n: no file without its OUT" || fail "first build killed at rename $n: $bad"
    # the next build is not refused for a file the killed one left
    if [[ ! -f $T/re/out.img ]]; then
      check "first build killed at rename $n: the next build runs" "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img"
    fi
    rm -rf "$T/re"; mkdir -p "$T/re"
    "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" >/dev/null 2>&1 || fail "build for the next rebuild"
    old=$(sums "$T/re")
  done
  # SIGINT at each rename: OUT stays tracked until the run is finished, so
  # whatever of its set is in place goes with the temporaries.
  for n in 1 2 3 4; do
    rm -rf "$T/re"; mkdir -p "$T/re"
    rc=0
    strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:signal=SIGINT:when="$n" \
      "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" >/dev/null 2>"$T/int.err" || rc=$?
    [[ $rc == 130 && -z $(left "$T/re") ]] && ok "SIGINT at rename $n of the commit: exit 130, nothing left" \
      || fail "SIGINT at rename $n of the commit: exit $rc, left $(left "$T/re" | tr '\n' ' ')"
    said=$(said_stop "$T/int.err" "$T/re/out.img")
    [[ -z $said ]] && ok "SIGINT at rename $n of the commit: one line says OUT is not written" \
      || fail "SIGINT at rename $n of the commit: $said"
    "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" >/dev/null 2>&1 || fail "build for the interrupted rebuild"
    old=$(sums "$T/re")
    rc=0
    strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:signal=SIGINT:when="$n" \
      "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" --force >/dev/null 2>&1 || rc=$?
    bad=$(consistent "$T/re" "$old")
    [[ $rc == 130 && -z $bad && -z $(find "$T/re" -name '.*.tmp') ]] \
      && ok "SIGINT at rename $n of a --force rebuild: exit 130, no temporary, nothing of one build beside the other's" \
      || fail "SIGINT at rename $n of a --force rebuild: exit $rc; $bad $(find "$T/re" -name '.*.tmp')"
  done
  # SIGQUIT (^\\) stops a build as SIGINT does, and leaves no core dump of
  # its memory (the secrets) even where core dumps are allowed
  rm -rf "$T/re"; mkdir -p "$T/re"
  rc=0
  # (the group's stderr takes bash's own "Quit" line)
  { (cd "$T/re" && ulimit -c unlimited && strace -f -o /dev/null -e trace=rename,renameat,renameat2 \
    -e inject=rename,renameat,renameat2:signal=SIGQUIT:when=1 "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img") \
    >/dev/null 2>"$T/quit.err"; } 2>/dev/null || rc=$?
  [[ $rc == 131 && -z $(left "$T/re") && -z $(find "$T/re" -name 'core*') ]] \
    && ok "SIGQUIT during the commit: exit 131, nothing left, no core dump" \
    || fail "SIGQUIT during the commit: exit $rc, left $(find "$T/re" -mindepth 1 | tr '\n' ' ')"
  # A signal the parent ignores (nohup's SIGHUP, a background job's SIGINT)
  # stays ignored: the build goes on to the end.
  rm -rf "$T/re"; mkdir -p "$T/re"
  rc=0
  (trap '' HUP INT && strace -f -o /dev/null -e trace=rename,renameat,renameat2 \
    -e inject=rename,renameat,renameat2:signal=SIGHUP:when=1 "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img") \
    >/dev/null 2>"$T/ign.err" || rc=$?
  [[ $rc == 0 ]] && (cd "$T/re" && sha256sum -c --status out.img.sha256) \
    && ok "SIGHUP ignored by the parent (nohup): the build goes on and stands" \
    || fail "SIGHUP under nohup: exit $rc: $(cat "$T/ign.err")"
  # an Imager list is renamed with OUT's files, and goes with them
  for n in 1 2 3 4 5; do
    rm -rf "$T/re"; mkdir -p "$T/re"
    rc=0
    strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:signal=SIGINT:when="$n" \
      "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" --imager-json "$T/re/list.json" >/dev/null 2>&1 || rc=$?
    [[ $rc == 130 && -z $(left "$T/re") ]] && ok "SIGINT at rename $n of a commit with --imager-json: exit 130, nothing left" \
      || fail "SIGINT at rename $n of a commit with --imager-json: exit $rc, left $(left "$T/re" | tr '\n' ' ')"
  done
  # the Imager list's rename, the commit's last, failing: the renamed rest goes
  rm -rf "$T/re"; mkdir -p "$T/re"
  expect_error "the commit's last rename (the Imager list) failing" "cannot rename" \
    strace -f -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:error=EIO:when=5 \
    "$DIMIMAGE" build "${gargs[@]}" -o "$T/re/out.img" --imager-json "$T/re/list.json"
  [[ -z $(left "$T/re") ]] && ok "the commit's last rename failing: nothing left" || fail "last rename failing: left $(left "$T/re" | tr '\n' ' ')"
  rm -rf "$T/re"
else
  ok "skipped: the commit's faults need strace"
fi

# A build killed outright runs no handler and leaves its temporaries; the
# next build of the same OUT removes them, but not one a live build holds
# (locked) nor one just written.
if strace -f -o /dev/null -e trace=fdatasync true 2>/dev/null; then
  mkdir -p "$T/sw"
  (strace -f -o /dev/null -e trace=fdatasync -e inject=fdatasync:signal=SIGKILL:when=1 \
    "$DIMIMAGE" build "${gargs[@]}" -o "$T/sw/out.img" || true) >/dev/null 2>&1
  killed=$(find "$T/sw" -name '.out.img.*.tmp' | wc -l)
  ((killed >= 1)) && ok "a build killed at its sync leaves its temporaries ($killed)" || fail "killed build left: $(ls -A "$T/sw")"
  touch -d '2 minutes ago' "$T/sw"/.out.img.*.tmp
  exec 9>"$T/sw/.out.img.LIVE01.tmp"
  flock -x 9
  touch -d '2 minutes ago' "$T/sw/.out.img.LIVE01.tmp"
  : >"$T/sw/.out.img.FRESH1.tmp"
  "$DIMIMAGE" build "${gargs[@]}" -o "$T/sw/out.img" >/dev/null 2>"$T/sw.err" || fail "build after a killed one: $(cat "$T/sw.err")"
  exec 9>&-
  grep -q "^Removed $T/sw/\.out\.img\..*\.tmp (.*), left by a build that was killed" "$T/sw.err" \
    && ok "the next build removes a killed build's temporaries, saying so" || fail "no removal said: $(cat "$T/sw.err")"
  kept=$(cd "$T/sw" && find . -name '.out.img.*.tmp' -printf '%f\n' | sort | tr '\n' ' ')
  [[ $kept == ".out.img.FRESH1.tmp .out.img.LIVE01.tmp " ]] && ok "a locked and a fresh temporary kept, the rest removed" \
    || fail "temporaries left: $kept"
  check "the build after a killed one writes a good image" test -s "$T/sw/out.img"
  rm -rf "$T/sw"
else
  ok "skipped: killing a build needs strace"
fi

# SIGINT while the decoded base is copied into the cache: the cache's
# temporary goes too.
if strace -f -o /dev/null -e trace=rename true 2>/dev/null; then
  zstd -q -1 -c "$small" >"$T/small.img.zst"
  rm -rf "${T:?}/cache/"*
  mkdir -p "$T/ci"
  rc=0
  strace -f -o /dev/null -e trace=copy_file_range -e inject=copy_file_range:signal=SIGINT:when=1 \
    "$DIMIMAGE" build "${args[@]}" --base "$T/small.img.zst" -o "$T/ci/out.img" >/dev/null 2>"$T/int.err" || rc=$?
  ((rc == 130)) && ok "SIGINT while caching the base: exit 130" || fail "SIGINT while caching the base: exit $rc"
  said=$(said_stop "$T/int.err" "$T/ci/out.img")
  [[ -z $said ]] && ok "SIGINT while caching the base: one line says OUT is not written" \
    || fail "SIGINT while caching the base: $said"
  [[ -z $(cache_temps) && -z $(left "$T/ci") ]] && ok "SIGINT while caching the base: no cache temporary, nothing left" \
    || fail "SIGINT while caching the base: left $(cache_temps) $(left "$T/ci")"
  rm -rf "${T:?}/cache/"* "$T/ci" "$T/small.img.zst"
else
  ok "skipped: interrupting the cache's copy needs strace"
fi

# ---- SIGINT and SIGTERM at several points --------------------------------------------------
zstd -q -1 -T0 -c "$big" >"$T/big.img.zst"
mkdir -p "$T/sig"
base_sum=$(sha256sum <"$T/big.img.zst")
raw_sum=$(sha256sum <"$big")

# interrupt SIG DELAY BASE OUT [extra args]: start a build, send SIG after
# DELAY seconds, check what it left.
interrupt() {
  local sig=$1 delay=$2 base=$3 out=$4
  shift 4
  local what
  what="$sig after ${delay}s (${base##*/} -> $out)"
  env --default-signal=INT,TERM "$DIMIMAGE" build "${args[@]}" --base "$base" -o "$T/sig/$out" "$@" >"$T/sig.log" 2>&1 &
  local pid=$!
  sleep "$delay"
  kill -s "$sig" "$pid" 2>/dev/null
  local rc=0
  wait "$pid" || rc=$?
  local want=$((128 + $(kill -l "$sig")))
  if ((rc == 0)); then
    # Finished before the signal landed: the outputs are complete ones.
    ok "$what: finished before the signal"
    rm -f "$T/sig/"*
    return
  fi
  if ((rc == want)) || ((rc > 0 && rc < 128)); then
    ok "$what: exit $rc (last said: $(grep -v '^$' "$T/sig.log" | tail -n 1 | cut -c1-60))"
  else
    fail "$what: exit $rc (a crash?)"; sed 's/^/    /' "$T/sig.log" | tail -n 5
  fi
  # Stopped by the signal, it says so, once; unless the build had said
  # nothing at all: on a busy machine the signal may land before main runs
  # (at any of these delays), where there is nothing to undo and nothing is
  # said.  Its first line ("Reading ...") comes after the handlers are set.
  local said
  said=$(said_stop "$T/sig.log" "$T/sig/$out")
  if ((rc == want)) && [[ -s $T/sig.log ]]; then
    [[ -z $said ]] && ok "$what: one line says OUT is not written" || fail "$what: $said"
  fi
  [[ -z $(left "$T/sig") ]] && ok "$what: nothing left" || { fail "$what: left $(left "$T/sig")"; rm -rf "${T:?}/sig/"{*,.[!.]*}; }
  [[ -z $(cache_temps) ]] && ok "$what: no cache temporaries" || { fail "$what: cache temporaries $(cache_temps)"; }
}

# took BASE OUT [args]: the seconds one whole build takes on this machine.
# The later delays below are fractions of it: fixed ones that land in the
# commit on one machine find the build finished on a faster one (the
# .img.xz output's 3 and 6 s all did, on a VM where it takes 2.5 s).
took() {
  local base=$1 out=$2 t0 t1
  shift 2
  t0=$(date +%s%N)
  "$DIMIMAGE" build "${args[@]}" --base "$base" -o "$T/sig/$out" "$@" >/dev/null 2>&1 || fail "a whole build to time ($out): exit $?"
  t1=$(date +%s%N)
  rm -rf "${T:?}/sig/"{*,.[!.]*}
  echo $(((t1 - t0) / 1000000))
}
# part MS F: F (a fraction, in hundredths) of MS milliseconds, as seconds
part() { printf '%d.%03d' $(($1 * $2 / 100000)) $(($1 * $2 / 100 % 1000)); }
zst_ms=$(took "$T/big.img.zst" out.img --no-cache)
raw_ms=$(took "$big" out.img)
xz_ms=$(took "$big" out.img.xz --compression-level 1)
echo "# whole builds here: .zst base ${zst_ms} ms, raw base ${raw_ms} ms, .img.xz output ${xz_ms} ms"
for sig in INT TERM; do
  for delay in 0.05 0.3 "$(part "$zst_ms" 85)"; do
    interrupt "$sig" "$delay" "$T/big.img.zst" out.img --no-cache
  done
  # Decompressing into the cache, interrupted.
  interrupt "$sig" "$(part "$zst_ms" 50)" "$T/big.img.zst" out.img
  rm -rf "${T:?}/cache/"*
  # Raw base: copying, editing, the commit (hashes, bmap, sync).
  for delay in 0.1 "$(part "$raw_ms" 50)" "$(part "$raw_ms" 85)"; do
    interrupt "$sig" "$delay" "$big" out.img
  done
  # During the .img.xz compression of the output.
  for f in 50 75; do
    interrupt "$sig" "$(part "$xz_ms" "$f")" "$big" out.img.xz --compression-level 1
  done
done
[[ $(sha256sum <"$T/big.img.zst") == "$base_sum" ]] && ok "signals: compressed base unchanged" || fail "signals: compressed base changed"
[[ $(sha256sum <"$big") == "$raw_sum" ]] && ok "signals: raw base unchanged" || fail "signals: raw base changed"

summary
