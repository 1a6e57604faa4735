#!/usr/bin/env bash
# Issue 8: valgrind finds no invalid access, uninitialised use or leak in
# one whole build (secrets set, raw output) and in inspect --json. Noise from
# libparted/libblkid/libext2fs is suppressed in tests/valgrind.supp, scoped to
# those libraries only; nothing of ours is ever suppressed.
source "$(dirname "$0")/../lib.sh"

if ! command -v valgrind >/dev/null; then
  ok "skipped: valgrind is not installed"
  summary
  exit
fi
small=$(fixture small --boot-size 64 --cluster 512 --root-size 64) || exit 1
make_key
vg=(valgrind --leak-check=full "--errors-for-leak-kinds=definite,indirect" --error-exitcode=99
    --track-origins=yes --suppressions="$TOP/tests/valgrind.supp" --num-callers=30)

# under_valgrind DESC LOG COMMAND...: the command succeeds under valgrind
# with no error.
under_valgrind() {
  local what=$1 log=$2
  shift 2
  local rc=0
  "${vg[@]}" --log-file="$log" "$@" >"$T/vg.out" 2>"$T/vg.err" || rc=$?
  if ((rc == 0)); then
    ok "$what: no valgrind error"
  elif ((rc == 99)); then
    fail "$what: valgrind errors"; grep -E '^==[0-9]+== ' "$log" | grep -vE '^==[0-9]+== *$' | head -n 60 | sed 's/^/    /'
  else
    fail "$what: exit $rc"; sed 's/^/    /' "$T/vg.err" | tail -n 10
  fi
  grep -q 'ERROR SUMMARY: 0 errors' "$log" && ok "$what: ERROR SUMMARY 0" || fail "$what: $(grep 'ERROR SUMMARY' "$log")"
  grep -Eq 'definitely lost: [1-9]|indirectly lost: [1-9]' "$log" && fail "$what: leaks: $(grep -E 'definitely|indirectly' "$log" | tr -s ' ')" || ok "$what: no definite or indirect leak"
}

under_valgrind "build --role observability" "$T/build.vg" \
  "$DIMIMAGE" build --role observability --base "$small" -o "$T/vg.img" --quiet \
  --set OPENOBSERVE_PASSWORD=qT7vLm2Rz8KpWx4N --hostname vg-obs --user pi --ssh-key "$T/key.pub" \
  --ip 192.168.1.102/24 --gateway 192.168.1.1 --timezone Europe/Berlin
check "the build under valgrind is a sound image" fsck_image "$T/vg.img"
under_valgrind "inspect --json" "$T/inspect.vg" "$DIMIMAGE" inspect --json "$T/vg.img"
check "inspect --json output is JSON" python3 -m json.tool "$T/vg.out"

summary
