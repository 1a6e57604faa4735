#!/usr/bin/env bash
# Run every test suite (make targets given as arguments), even when one
# fails, and close with the total of their "N passed, N failed" lines.
set -u
passed=0 failed=0 broken=()

# A fresh machine builds the e2e test's arm64 root filesystems under
# qemu-user, one dpkg each (~8 and ~25 min here): the check's longest wait
# when it comes last.  Started now at the lowest priority, they take only
# the CPU the other suites leave; the e2e test then finds them made, or waits
# for the build under way (make-bootable-fixture.sh locks each).  Cached ones
# cost a second.  Each runs in a session of its own, so that it can be
# stopped whole on the way out (should the e2e test not come, or on ^C, which
# the terminal does not send it); with autogroup scheduling a new session is
# also a new group that the scheduler weighs as much as this one whatever
# its nice value (seen: the two builds took 40% of the CPUs each from the
# unit tests), so the group's own nice value is set to 19 as well.
prefetch=()
stop_prefetch() {
  local pid
  for pid in "${prefetch[@]}"; do kill -- "-$pid" 2>/dev/null; done
  prefetch=()
}
trap stop_prefetch EXIT
trap 'stop_prefetch; exit 130' INT
trap 'stop_prefetch; exit 143' TERM
trap 'stop_prefetch; exit 129' HUP
if [[ " $* " == *" check-e2e "* && ${SKIP_E2E:-0} != 1 ]] && ((EUID == 0)) && command -v mmdebstrap >/dev/null; then
  mkdir -p build/e2e-logs
  read -r -a flavours <<<"${E2E_FLAVOURS:-trixie bookworm}"
  for f in "${flavours[@]}"; do
    log=build/e2e-logs/prefetch-$f.log
    echo "==== e2e: $f rootfs made or found in the background (log: $log)"
    # shellcheck disable=SC2016 # "$@" is the inner shell's
    setsid bash -c '{ echo 19 >/proc/self/autogroup; } 2>/dev/null; exec nice -n 19 "$@"' prefetch \
      scripts/make-bootable-fixture.sh --rootfs-only --flavour "$f" >"$log" 2>&1 </dev/null &
    prefetch+=($!)
  done
fi
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
