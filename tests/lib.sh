#!/usr/bin/env bash
# Shared helpers for integration tests: ok/FAIL lines, a summary line
# "N passed, N failed", a scratch directory, and cached fixture images.
# shellcheck disable=SC2034
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The checking tools (e2fsck, debugfs, fsck.fat, sfdisk, tune2fs, mkfs.*)
# are in /usr/sbin, not on a Debian user's PATH unless root.
export PATH=$PATH:/usr/sbin:/sbin
DIMIMAGE=${DIMIMAGE:-$TOP/build/dimimage}
FIXTURES=${FIXTURES:-$TOP/build/fixtures}
export DIMIMAGE_DATADIR=${DIMIMAGE_DATADIR:-$TOP}
PASSED=0
FAILED=0
# --tmpdir, not "$TMPDIR/...": a TMPDIR ending in "/" made T hold a "//",
# which dimimage's messages (naming the same file) do not, and the checks
# matching $T in them failed.
T=$(mktemp -d --tmpdir dimimage-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
# dimimage's cache of decompressed bases (and its remembered sums) is the
# test's own, not the caller's ~/.cache: nothing left behind in it, nothing
# found there, and the same whether HOME is unset, unwritable or shared.
# (The caller's stays in OUTER_XDG_CACHE_HOME, for the e2e fixtures.)
OUTER_XDG_CACHE_HOME=${XDG_CACHE_HOME:-}
export XDG_CACHE_HOME=$T/xdg-cache

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() {
  local what=$1
  shift
  if "$@" >"$T/.check.out" 2>&1; then
    ok "$what"
  else
    fail "$what"
    sed 's/^/    /' "$T/.check.out" | tail -n 20
  fi
}

# check_fails DESCRIPTION COMMAND...: ok when the command fails (non-zero).
check_fails() {
  local what=$1
  shift
  if "$@" >"$T/.check.out" 2>&1; then
    fail "$what (unexpectedly succeeded)"
    sed 's/^/    /' "$T/.check.out" | tail -n 20
  else
    ok "$what"
  fi
}

# expect_error DESCRIPTION PATTERN COMMAND...: the command fails with exactly
# one "dimimage: error:" line on stderr matching PATTERN (grep -E).  Its exit
# status is left in LAST_RC (for expect_rc).
expect_error() {
  local what=$1 pattern=$2
  shift 2
  local rc=0
  "$@" >"$T/.out" 2>"$T/.err" || rc=$?
  LAST_RC=$rc
  local n
  n=$(grep -c '^dimimage: error:' "$T/.err" || true)
  if ((rc == 0)); then
    fail "$what: exit 0"
  elif ((rc >= 128)); then
    fail "$what: killed by signal (rc=$rc)"; sed 's/^/    /' "$T/.err" | tail -n 20
  elif [[ $n != 1 ]]; then
    fail "$what: $n error lines"; sed 's/^/    /' "$T/.err" | tail -n 20
  elif ! grep -Eq -- "$pattern" "$T/.err"; then
    fail "$what: error does not match /$pattern/"; sed 's/^/    /' "$T/.err"
  else
    ok "$what"
  fi
}

# expect_rc DESCRIPTION CODE: the last expect_error's command exited CODE.
expect_rc() {
  [[ ${LAST_RC:-} == "$2" ]] && ok "$1: exit $2" || fail "$1: exit ${LAST_RC:-unset}, not $2"
}

# on_pty CMD [ARG...]: CMD on a terminal of its own (script(1)), both its
# streams on stdout, its exit status returned; PTY_STTY, when set, is run
# first ("stty cols 60; ").  script runs its command with $SHELL -c, and
# CI's SHELL may be unset (sh): the quoting printf %q writes, $'...' for a
# control character, is bash's.
on_pty() {
  local cmd
  printf -v cmd '%q ' "$@"
  SHELL=$BASH script -qec "${PTY_STTY:-}$cmd" /dev/null
}

# unprivileged DIR: sets UNPRIV to a command that runs dimimage as a user
# whom file modes refuse, for files in DIR.  Not root: ourselves, the user
# those refusals are for.  Root reads and writes anything, so: nobody, by
# setpriv, with copies of the binary and of its profiles and overlays in
# DIR, which (and $T above it) nobody may enter: the tree may be in /root.
# Returns 1 when root has no setpriv.
unprivileged() {
  if ((EUID != 0)); then
    UNPRIV=("$DIMIMAGE")
    return 0
  fi
  command -v setpriv >/dev/null || return 1
  mkdir -p "$1/data" && cp -R "$DIMIMAGE_DATADIR/profiles" "$DIMIMAGE_DATADIR/overlays" "$1/data/" &&
    cp "$DIMIMAGE" "$1/dimimage" && chmod -R a+rX "$1/data" && chmod 0755 "$1/dimimage" "$1" &&
    chmod o+x "$T" || return 1
  UNPRIV=(env DIMIMAGE_DATADIR="$1/data" setpriv --reuid=65534 --regid=65534 --clear-groups -- "$1/dimimage")
}

# fixture NAME [make-fixture options...]: path of a cached fixture image
# built by scripts/make-fixture.sh (rebuilt when the script changes).
fixture() {
  local name=$1
  shift
  mkdir -p "$FIXTURES"
  local key
  # a directory (--extra-root) counts by its content, not its temporary path
  key=$( (cat "$TOP/scripts/make-fixture.sh"; echo "$name"
          for a in "$@"; do
            if [[ -d $a ]]; then tar -C "$a" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | sha256sum
            else echo "$a"; fi
          done) | sha256sum | cut -c1-12)
  local img="$FIXTURES/$name-$key.img"
  if [[ ! -f $img ]]; then
    # this shell's own: two runs making the same fixture at once (two
    # checkouts sharing the cache) must not write into one file
    local tmp="$img.$BASHPID.tmp"
    "$TOP/scripts/make-fixture.sh" "$@" -o "$tmp" >/dev/null || { rm -f "$tmp"; echo "fixture $name failed" >&2; return 1; }
    mv "$tmp" "$img"
  fi
  echo "$img"
}

# make_iso OUT [hybrid]: an ISO 9660 image at OUT, made by the first of
# xorriso, genisoimage or mkisofs installed; without any, its volume
# descriptors are written by hand (type 1, "CD001", version 1 at 32 KiB, the
# set terminator after it), which is what tells an ISO 9660 image by its
# content.  hybrid: with an MBR boot signature too, as isohybrid leaves one
# (an installer ISO that can also be dd'd to a stick).  ISO_TOOL says which.
make_iso() {
  local out=$1 dir
  dir=$(mktemp -d --tmpdir="$T" iso.XXXXXX) && echo "an installer's file" >"$dir/README.TXT"
  if command -v xorriso >/dev/null; then
    ISO_TOOL=xorriso; xorriso -as mkisofs -quiet -o "$out" "$dir" >/dev/null 2>&1
  elif command -v genisoimage >/dev/null; then
    ISO_TOOL=genisoimage; genisoimage -quiet -o "$out" "$dir" >/dev/null 2>&1
  elif command -v mkisofs >/dev/null; then
    ISO_TOOL=mkisofs; mkisofs -quiet -o "$out" "$dir" >/dev/null 2>&1
  else
    ISO_TOOL="printf and dd (no xorriso, genisoimage or mkisofs here)"
    rm -f "$out" && truncate -s 2M "$out" &&
      printf '\001CD001\001' | dd of="$out" bs=1 seek=32768 conv=notrunc status=none &&
      printf '\377CD001\001' | dd of="$out" bs=1 seek=34816 conv=notrunc status=none
  fi || return 1
  rm -rf "$dir"
  [[ ${2:-} != hybrid ]] || printf '\125\252' | dd of="$out" bs=1 seek=510 conv=notrunc status=none
}

# Byte offset of partition N of an image (from sfdisk, not from dimimage).
part_offset() {
  sfdisk -J "$1" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(t["partitions"][int(sys.argv[1])-1]["start"]*512)' "$2"
}

summary() {
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0))
}

# Offline readers for built images, using only real tools.
# rootfs IMG: "IMG?offset=N" for debugfs/e2fsck (partition 2).
rootfs() { echo "$1?offset=$(part_offset "$1" 2)"; }
# dbgq HOSTPATH: a host path as one argument of a debugfs request ("dump
# /etc/x $(dbgq "$T/x")"): in double quotes, a '"' in it doubled, as
# debugfs' parser (libss) reads it; spaces and commas need nothing more.
dbgq() { local q='"'; printf '"%s"' "${1//$q/$q$q}"; }
# rcat IMG PATH: a file's content from the root filesystem.
rcat() { debugfs -R "cat $2" "$(rootfs "$1")" 2>/dev/null; }
# rstat IMG PATH: "MODE UID GID TYPE" of a root filesystem path (MODE octal, 4 digits).
rstat() {
  debugfs -R "stat $2" "$(rootfs "$1")" 2>/dev/null | awk '
    /Type:/ { for (i = 1; i <= NF; i++) { if ($i == "Type:") t = $(i+1); if ($i == "Mode:") m = $(i+1) } }
    /^User:/ { u = $2; g = $4 }
    END { if (t != "") printf "%s %s %s %s\n", m, u, g, t }'
}
# rlink IMG PATH: a symlink's target.
rlink() { debugfs -R "stat $2" "$(rootfs "$1")" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'; }
# bootfs IMG: "IMG@@OFFSET" for mtools (partition 1).
bootfs() { echo "$1@@$(part_offset "$1" 1)"; }
bcat() { MTOOLS_SKIP_CHECK=1 mtype -i "$(bootfs "$1")" "::$2" 2>/dev/null; }
# boot_bytes IMG OUT: the raw FAT partition, for fsck.fat and greps.
boot_bytes() {
  local off size
  off=$(part_offset "$1" 1)
  size=$(sfdisk -J "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["size"]*512)')
  python3 - "$1" "$2" "$off" "$size" <<'PY'
import sys
src, dst, off, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(src, 'rb') as f, open(dst, 'wb') as o:
    f.seek(off)
    left = size
    while left:
        b = f.read(min(left, 1 << 20))
        if not b:
            break
        o.write(b)
        left -= len(b)
PY
}
# fsck_image IMG: e2fsck -fn on the root and fsck.fat -n on the boot partition.
fsck_image() {
  e2fsck -fn "$(rootfs "$1")" >/dev/null 2>&1 || { echo "e2fsck failed on $1"; e2fsck -fn "$(rootfs "$1")" 2>&1 | tail -n 15; return 1; }
  boot_bytes "$1" "$T/.boot.fat"
  fsck.fat -n "$T/.boot.fat" >/dev/null 2>&1 || { echo "fsck.fat failed on $1"; fsck.fat -n "$T/.boot.fat" 2>&1 | tail -n 15; return 1; }
  rm -f "$T/.boot.fat"
}
# A throwaway SSH key pair at $T/key(.pub).
make_key() { [[ -f $T/key.pub ]] || ssh-keygen -q -t ed25519 -N '' -C test@dimimage -f "$T/key"; }
