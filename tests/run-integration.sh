#!/usr/bin/env bash
# Run every tests/integration/*.sh (or those given) and total their counts.
set -u
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0 broken=()
scripts=("$@")
((${#scripts[@]})) || scripts=("$here"/integration/*.sh)
for s in "${scripts[@]}"; do
  echo "== $(basename "$s")"
  out=$(mktemp)
  bash "$s" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  rm -f "$out"
  if [[ -z $line ]]; then
    failed=$((failed + 1)); broken+=("$(basename "$s") (no summary, rc=$rc)")
    continue
  fi
  p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
  passed=$((passed + p)); failed=$((failed + f))
  if ((rc != 0 && f == 0)); then failed=$((failed + 1)); broken+=("$(basename "$s") (rc=$rc)"); fi
done
for b in "${broken[@]}"; do echo "FAIL - $b"; done
echo "integration: $passed passed, $failed failed"
((failed == 0))
