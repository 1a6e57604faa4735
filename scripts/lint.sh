#!/usr/bin/env bash
# Run shellcheck on every shell script we ship or test with (and the bash
# completion, which is sourced: no #!, a "# shellcheck shell=" line instead).
set -u
cd "$(dirname "$0")/.." || exit 1
# candidates: what git tracks or would (build/ and the bench cache are
# ignored); by name when git will not list them (a tarball of the tree, or a
# checkout another user owns: git's safe.directory refuses it, and nothing
# would have been checked).
candidates() {
  git ls-files -co --exclude-standard -- '*.sh' 'scripts/*' 'overlays/**' '.ci/run' 2>/dev/null && return
  find . \( -path ./.git -o -path ./build -o -path ./bench/.cache \) -prune -o -type f \
    \( -name '*.sh' -o -path './scripts/*' -o -path './overlays/*' -o -path ./.ci/run \) -print | sed 's|^\./||'
}
mapfile -t files < <(candidates | while read -r f; do [[ -f $f ]] && { head -c 64 "$f" | grep -Eq '^#!.*(ba)?sh' \
    || head -n 3 "$f" | grep -q '^# shellcheck shell='; } && echo "$f"; done | LC_ALL=C sort -u)
failed=0
((${#files[@]})) || { echo "FAIL - shellcheck: no shell scripts found"; failed=1; }
for f in "${files[@]}"; do
  if shellcheck -x "$f"; then echo "ok - shellcheck $f"; else echo "FAIL - shellcheck $f"; failed=$((failed + 1)); fi
done
total=${#files[@]}

# cppcheck: warnings, portability and performance (style is clang-format's
# and review's business). Inline suppressions must say why.
total=$((total + 1))
# duplicateAssignExpression is a style check that cppcheck 2.10 reports even
# without --enable=style; two variables starting equal is not a bug.
# normalCheckLevelMaxBranches is cppcheck 2.17's (Debian 13) note that it
# limits its analysis, and it sets the error exit code: not a finding.
if cppcheck --enable=warning,portability,performance --error-exitcode=1 --inline-suppr -q --suppress=duplicateAssignExpression \
  --suppress=normalCheckLevelMaxBranches \
  -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DDIMIMAGE_VERSION='"lint"' -DDIMIMAGE_DATADIR='"/"' -Ibuilder builder/*.c; then
  echo "ok - cppcheck builder/*.c"
else
  echo "FAIL - cppcheck builder/*.c"; failed=$((failed + 1))
fi

# clang-tidy with the checked-in .clang-tidy, two files at a time.
# scripts/lint-analyzer.h tells the analyzer what log_error returns.
mapfile -t pkg_cflags < <(pkg-config --cflags libarchive yaml-0.1 libparted blkid ext2fs com_err liblzma libzstd libcrypto libxcrypt | tr ' ' '\n' | grep .)
tidy_flags=(-std=c17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 '-DDIMIMAGE_VERSION="lint"' '-DDIMIMAGE_DATADIR="/"' -Ibuilder "${pkg_cflags[@]}")
tidy_out=$(mktemp -d)
# tidy_one FILE: clang-tidy on one file (run by xargs in a child bash, so
# the flags come in $TIDY_FLAGS); output in $tidy_out, a .failed mark if unclean.
tidy_one() {
  local f=$1 out flags extra=(-include scripts/lint-analyzer.h)
  out=$tidy_out/${1//\//_}
  read -ra flags <<<"$TIDY_FLAGS"
  [[ $f == builder/log.c ]] && extra=()
  clang-tidy --quiet "$f" -- "${flags[@]}" "${extra[@]}" >"$out" 2>&1 || touch "$out.failed"
}
export -f tidy_one
export tidy_out TIDY_FLAGS="${tidy_flags[*]}"
mapfile -t cfiles < <(ls builder/*.c)
# shellcheck disable=SC2016 # $1 is the child bash's
printf '%s\n' "${cfiles[@]}" | xargs -P2 -n1 bash -c 'tidy_one "$1"' _
for f in "${cfiles[@]}"; do
  total=$((total + 1))
  if [[ -e $tidy_out/${f//\//_}.failed ]]; then
    echo "FAIL - clang-tidy $f"; failed=$((failed + 1))
    grep -E '(warning|error):' "$tidy_out/${f//\//_}" | sed 's/^/    /'
  else
    echo "ok - clang-tidy $f"
  fi
done
rm -rf "$tidy_out"

echo "lint: $((total - failed)) passed, $failed failed"
((failed == 0))
