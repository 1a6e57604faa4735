#!/usr/bin/env bash
# ThreadSanitizer over the builds that run threads: the multi-threaded xz
# decoder with its writer, a raw base hashed beside the build, the cache
# filled and then checked beside the build, a fleet decoding into two files
# and committing two hosts at once, the commit's hash/bmap/compressor
# consumers, and SIGINT while threads write.  Any data race, lock-order
# inversion or signal-unsafe call in the handler is a report, and a report
# is a failure.  DIMIMAGE_TSAN is build/tsan/dimimage (make
# check-integration builds it).
source "$(dirname "$0")/../lib.sh"

TSAN_BIN=${DIMIMAGE_TSAN:-}
if [[ -z $TSAN_BIN || ! -x $TSAN_BIN ]]; then
  ok "skipped: no ThreadSanitizer build (DIMIMAGE_TSAN; make check-integration sets it)"
  summary
  exit
fi
# A kernel with more mmap randomisation than the runtime knows stops it at
# start ("unexpected memory mapping"): run without address randomisation.
RUN=("$TSAN_BIN")
if setarch "$(uname -m)" -R true 2>/dev/null; then
  RUN=(setarch "$(uname -m)" -R "$TSAN_BIN")
fi
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1"
# A runtime that cannot start on this machine ("FATAL: ThreadSanitizer:
# unexpected memory mapping") is no finding about the code; any other failure is.
if ! "${RUN[@]}" version >/dev/null 2>"$T/probe.err"; then
  if grep -q 'FATAL: ThreadSanitizer' "$T/probe.err"; then
    ok "skipped: the ThreadSanitizer runtime does not start here: $(grep -m 1 FATAL "$T/probe.err")"
  else
    fail "the ThreadSanitizer build fails at 'version': $(head -n 3 "$T/probe.err")"
  fi
  summary
  exit
fi

small=$(fixture small --boot-size 64 --cluster 512 --root-size 64) || exit 1
make_key
# many small blocks, so the decoder's threads each take several
xz -T2 -1 --block-size=1MiB -c "$small" >"$T/base.img.xz"
cp "$small" "$T/base.img"
args=(--user pi --ssh-key "$T/key.pub" --set DIMDIM_API_IMAGE=ghcr.io/example/api:1
  --set DIMDIM_WORKER_IMAGE=ghcr.io/example/worker:1 --set OPENOBSERVE_PASSWORD=qT7vLm2Rz8KpWx4N --quiet)

# tsan_run DESC WANT_RC COMMAND...: exits WANT_RC with no report, within
# five minutes (each takes seconds; a race can leave a thread waiting for good).
tsan_run() {
  local what=$1 want=$2 rc=0
  shift 2
  timeout -k 5 300 "$@" >"$T/ts.out" 2>"$T/ts.err" || rc=$?
  if grep -q 'ThreadSanitizer' "$T/ts.err"; then
    fail "$what: ThreadSanitizer reports"
    grep -E 'WARNING: ThreadSanitizer|^    #[0-9]+ ' "$T/ts.err" | head -n 40 | sed 's/^/    /'
  elif ((rc != want)); then
    fail "$what: exit $rc, not $want"; tail -n 5 "$T/ts.err" | sed 's/^/    /'
  else
    ok "$what: exit $want, no ThreadSanitizer report"
  fi
}

# Each base three times: without the cache (a raw base hashed beside the
# build; an .xz one through the multi-threaded decoder and its writer), then
# filling the cache (a raw base's sum remembered, an .xz one decoded into
# it), then from it (checked beside the build).
for kind in img img.xz; do
  for run in no-cache fill hit; do
    opt=()
    [[ $run != no-cache ]] || opt=(--no-cache)
    tsan_run ".$kind base, $run" 0 \
      "${RUN[@]}" build --role app --base "$T/base.$kind" "${opt[@]}" -o "$T/$kind-$run.img" "${args[@]}"
  done
  check ".$kind base, hit: a sound image" fsck_image "$T/$kind-hit.img"
done
tsan_run ".img.zst output: hash, bmap and compressor threads" 0 \
  "${RUN[@]}" build --role observability --base "$T/base.img" --no-cache -o "$T/z.img.zst" "${args[@]}"
check ".img.zst output decompresses" zstd -tq "$T/z.img.zst"
tsan_run ".img.xz output from an .xz base" 0 \
  "${RUN[@]}" build --role observability --base "$T/base.img.xz" --no-cache -o "$T/z.img.xz" "${args[@]}"
check ".img.xz output decompresses" xz -t "$T/z.img.xz"
tsan_run "inspect of an .img.xz (decoded as a base is)" 0 "${RUN[@]}" inspect "$T/z.img.xz"

cat >"$T/fleet.yml" <<'EOF'
network: {prefix: 24, gateway: 192.168.1.1}
hosts:
  - {name: ts-app, role: app, address: 192.168.1.101}
  - {name: ts-obs, role: observability, address: 192.168.1.102}
  - {name: ts-all, role: all, address: 192.168.1.103}
EOF
tsan_run "fleet of 3 from .xz: decoded into two files, commits overlapping" 0 \
  "${RUN[@]}" build --fleet "$T/fleet.yml" --base "$T/base.img.xz" --no-cache -o "$T/fleet" "${args[@]}"
check "fleet: a sound image for the host in the middle" fsck_image "$T/fleet/ts-obs.img"

# SIGINT delivered to a thread that is writing the decoded base: the handler
# undoes the run from whichever thread it lands on.
if strace -f -o /dev/null -e trace=pwrite64 true 2>/dev/null; then
  tsan_run "SIGINT while the base is written" 130 \
    strace -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:signal=SIGINT:when=40 \
    "${RUN[@]}" build --role app --base "$T/base.img.xz" --no-cache -o "$T/int.img" "${args[@]}"
  left=$(find "$T" -maxdepth 1 -name '*int.img*' | wc -l)
  if ((left == 0)); then ok "SIGINT: nothing of the build left"; else fail "SIGINT left $left files"; fi
else
  ok "skipped: delivering SIGINT mid-write needs strace"
fi

summary
