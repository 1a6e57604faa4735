#!/usr/bin/env bash
# Run cmocka unit-test binaries; print each one's result and a total.
set -u
# test_disk and test_fat run sfdisk, mkfs.vfat, fsck.fat: /usr/sbin, which a
# Debian user other than root does not have on PATH.
export PATH=$PATH:/usr/sbin:/sbin
passed=0 failed=0
for t in "$@"; do
  if out=$("$t" 2>&1); then
    passed=$((passed + 1))
    echo "ok $t"
  else
    failed=$((failed + 1))
    echo "FAIL $t"
    printf '%s\n' "$out" | tail -n 40
  fi
done
echo "units: $passed passed, $failed failed"
((failed == 0))
