#!/usr/bin/env bash
# Run shellcheck on every shell script we ship or test with.
set -u
cd "$(dirname "$0")/.." || exit 1
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.sh' 'scripts/*' 'overlays/**' '.ci/run' \
  | while read -r f; do [[ -f $f ]] && head -c 64 "$f" | grep -Eq '^#!.*(ba)?sh' && echo "$f"; done | sort -u)
failed=0
for f in "${files[@]}"; do
  if shellcheck -x "$f"; then echo "ok - shellcheck $f"; else echo "FAIL - shellcheck $f"; failed=$((failed + 1)); fi
done
echo "lint: $((${#files[@]} - failed)) passed, $failed failed"
((failed == 0))
