#!/usr/bin/env bash
# Run cmocka unit-test binaries; print each one's result and a total.
set -u
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
