#!/usr/bin/env bash
# run-fuzz.sh smoke RUNS FUZZER... : a short run of each target over its corpus
# (new inputs kept in build/fuzz-corpus/<name> too).
# run-fuzz.sh time SECONDS FUZZER... : each target for SECONDS, new inputs kept
# in build/fuzz-corpus/<name> (the checked-in seeds stay untouched).
set -u
mode=$1 amount=$2
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
# libparted's constructor trips ASan's strchr check before main().
export ASAN_OPTIONS=${ASAN_OPTIONS:-intercept_strchr=0}
passed=0 failed=0
for f in "$@"; do
  name=$(basename "$f")
  name=${name#fuzz_}
  seeds=$top/tests/fuzz/corpus/$name
  mkdir -p "$seeds"
  work=$top/build/fuzz-corpus/$name
  mkdir -p "$work" "$top/build/fuzz-artifacts"
  # libFuzzer writes new inputs into the first corpus directory: the work
  # one, in both modes, so a `make check` leaves the checked-in seeds alone.
  if [[ $mode == smoke ]]; then
    args=(-runs="$amount" -max_len=65536 "$work" "$seeds")
  else
    args=(-max_total_time="$amount" -max_len=65536 -print_final_stats=1 "$work" "$seeds")
  fi
  if "$f" -artifact_prefix="$top/build/fuzz-artifacts/$name-" "${args[@]}" >"$top/build/fuzz-$name.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok - fuzz $name ($(grep -Eo 'stat::number_of_executed_units: [0-9]+|Done [0-9]+ runs' "$top/build/fuzz-$name.log" | tail -n 1))"
  else
    failed=$((failed + 1))
    echo "FAIL - fuzz $name (see build/fuzz-$name.log)"
    tail -n 30 "$top/build/fuzz-$name.log"
  fi
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
