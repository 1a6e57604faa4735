#!/usr/bin/env bash
# Shared helpers for integration tests: ok/FAIL lines, a summary line
# "N passed, N failed", a scratch directory, and cached fixture images.
# shellcheck disable=SC2034
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIMIMAGE=${DIMIMAGE:-$TOP/build/dimimage}
FIXTURES=${FIXTURES:-$TOP/build/fixtures}
export DIMIMAGE_DATADIR=${DIMIMAGE_DATADIR:-$TOP}
PASSED=0
FAILED=0
T=$(mktemp -d "${TMPDIR:-/tmp}/dimimage-test.XXXXXX")
trap 'rm -rf "$T"' EXIT

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
# one "dimimage: error:" line on stderr matching PATTERN (grep -E).
expect_error() {
  local what=$1 pattern=$2
  shift 2
  local rc=0
  "$@" >"$T/.out" 2>"$T/.err" || rc=$?
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

# fixture NAME [make-fixture options...]: path of a cached fixture image
# built by scripts/make-fixture.sh (rebuilt when the script changes).
fixture() {
  local name=$1
  shift
  mkdir -p "$FIXTURES"
  local key
  key=$( (cat "$TOP/scripts/make-fixture.sh"; echo "$name $*") | sha256sum | cut -c1-12)
  local img="$FIXTURES/$name-$key.img"
  if [[ ! -f $img ]]; then
    "$TOP/scripts/make-fixture.sh" "$@" -o "$img.tmp" >/dev/null || { echo "fixture $name failed" >&2; return 1; }
    mv "$img.tmp" "$img"
  fi
  echo "$img"
}

# Byte offset of partition N of an image (from sfdisk, not from dimimage).
part_offset() {
  sfdisk -J "$1" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(t["partitions"][int(sys.argv[1])-1]["start"]*512)' "$2"
}

summary() {
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0))
}
