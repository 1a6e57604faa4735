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
mapfile -t pkg_cflags < <(pkg-config --cflags libarchive yaml-0.1 libparted blkid ext2fs e2p com_err liblzma libzstd libcrypto libxcrypt | tr ' ' '\n' | grep .)
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

# The completions (bash, zsh, fish) parse, and offer exactly what each
# command's --help names: its options (-h/--help too, which every command
# takes) and its words (the commands; cache's list and clean).  So an option
# added to the C and its --help, or dropped, fails here until every
# completion knows it.  complete.sh asks each shell itself, here in an empty
# directory (no file names among the offers); dimimage is $DIMIMAGE, else build/dimimage.
bin=${DIMIMAGE:-$PWD/build/dimimage}
declare -A comp_file=([bash]=scripts/dimimage.bash-completion [zsh]=scripts/dimimage.zsh-completion [fish]=scripts/dimimage.fish)
total=$((total + 2))
if zsh -n "${comp_file[zsh]}"; then echo "ok - zsh -n ${comp_file[zsh]}"; else echo "FAIL - zsh -n ${comp_file[zsh]}"; failed=$((failed + 1)); fi
if fish --no-execute "${comp_file[fish]}"; then echo "ok - fish --no-execute ${comp_file[fish]}"
else echo "FAIL - fish --no-execute ${comp_file[fish]}"; failed=$((failed + 1)); fi
commands=(build inspect flash profiles cache version)
# help_names CMD WHAT: the options (WHAT=options) or words (WHAT=words) that
# `dimimage CMD --help` names (CMD '' for dimimage's own), examples aside.
# An option is a word starting with '-' after a space, ',', '(', '[', '`' or
# the line's start, save one after another command's name ("build
# --no-cache" in cache's text names build's option); a word is one at the
# start of a two-column line ("  list   show cached bases ...").
help_names() {
  local others
  others=$(printf '%s\n' "${commands[@]}" | grep -vx -- "$1" | paste -sd'|')
  # shellcheck disable=SC2086 # no CMD: no word
  "$bin" $1 --help | sed -E '/^[Ee]xamples?:/,$d' | if [[ $2 == options ]]; then
    sed -E "s/(^|[^a-z])($others) --?[a-z][a-z0-9-]*//g" | grep -oE '(^|[][ ,(`])--?[a-z][a-z0-9-]*' | sed -E 's/^[^-]+//'
  else
    sed -nE 's/^  ([a-z][a-z0-9-]*)  .*/\1/p'
  fi | LC_ALL=C sort -u
}
# offered SHELL CMD WHAT: the options (after "-") or words (a new word) the
# SHELL completion offers after `dimimage CMD`
offered() {
  local prefix=- pick='^-'
  [[ $3 == words ]] && prefix='' pick='^[^-]'
  # shellcheck disable=SC2086 # no CMD: no word
  (cd "$comp_dir" && PATH=${bin%/*}:$PATH DIMIMAGE_DATADIR=$OLDPWD "$OLDPWD/scripts/complete.sh" "$1" "$OLDPWD/${comp_file[$1]}" \
    dimimage $2 "$prefix") | sed 's/=$//' | grep -E -- "$pick" | LC_ALL=C sort -u
}
comp_dir=$(mktemp -d)
if [[ ! -x $bin ]]; then
  total=$((total + 1)); failed=$((failed + 1)); echo "FAIL - completions against --help: no $bin (run make)"
else
  for cmd in '' "${commands[@]}"; do
    for sh in bash zsh fish; do
      total=$((total + 1))
      problems=
      for what in options words; do
        # every command takes -h/--help; dimimage itself --version too (main.c)
        allowed=$'-h\n--help'
        [[ -n $cmd ]] || allowed+=$'\n--version'
        named=$(help_names "$cmd" "$what")
        got=$(offered "$sh" "$cmd" "$what")
        missing=$(LC_ALL=C comm -23 <(echo "$named") <(echo "$got") | grep . | paste -sd' ')
        unknown=$(LC_ALL=C comm -13 <(echo "$named") <(echo "$got") | grep . | grep -vxF -- "$allowed" | paste -sd' ')
        problems+=${missing:+ lacks $missing;}${unknown:+ offers $unknown, unknown to --help;}
      done
      if [[ -z $problems ]]; then
        echo "ok - $sh completion: dimimage${cmd:+ $cmd}'s options and words as its --help names them"
      else
        echo "FAIL - $sh completion of dimimage${cmd:+ $cmd}:${problems%;}"
        failed=$((failed + 1))
      fi
    done
  done
fi
rm -rf "$comp_dir"
# Unit tests and fuzzers keep their scratch files under $TMPDIR (test_util.h's
# tu_mkdtemp, tu_mkstemp, tu_tmpfile): no /tmp of their own, and no tmpfile(),
# which glibc puts in /tmp whatever TMPDIR says.
total=$((total + 1))
if hits=$(grep -nE '"/tmp/|(^|[^_[:alnum:]])tmpfile\(' tests/unit/*.[ch] tests/fuzz/*.[ch]); then
  echo "FAIL - tests use /tmp, not \$TMPDIR"; failed=$((failed + 1))
  printf '    %s\n' "${hits//$'\n'/$'\n'    }"
else
  echo "ok - tests keep to \$TMPDIR"
fi
# The man page: groff's every warning (-ww), and man's own check.
total=$((total + 1))
man_warn=$( { groff -ww -man -z docs/dimimage.1; man --warnings -l docs/dimimage.1 >/dev/null; } 2>&1)
if [[ -z $man_warn ]]; then
  echo "ok - man page docs/dimimage.1 renders without warnings"
else
  echo "FAIL - man page docs/dimimage.1"; failed=$((failed + 1))
  printf '    %s\n' "$man_warn"
fi

echo "lint: $((total - failed)) passed, $failed failed"
((failed == 0))
