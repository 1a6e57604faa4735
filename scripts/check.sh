#!/usr/bin/env bash
# Run every test suite (make targets given as arguments), even when one
# fails, and close with the total of their "N passed, N failed" lines.
set -u
passed=0 failed=0 broken=()
for target in "$@"; do
  echo "==== $target"
  log=$(mktemp)
  make --no-print-directory "$target" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^([a-z0-9-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  rm -f "$log"
  if [[ -n $line ]]; then
    counts=${line#*: }; [[ $line == *:* ]] || counts=$line
    p=${counts%% passed*}; f=${counts#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    if ((rc != 0 && f == 0)); then failed=$((failed + 1)); broken+=("$target (rc=$rc)"); fi
  elif ((rc != 0)); then
    failed=$((failed + 1)); broken+=("$target (rc=$rc, no summary)")
  fi
done
for b in "${broken[@]}"; do echo "FAIL - $b"; done
echo "check: $passed passed, $failed failed"
((failed == 0))
