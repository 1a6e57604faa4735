#!/usr/bin/env bash
# Outputs: raw and compressed images, OUT.bmap, OUT.sha256, reproducibility,
# refusals and the Raspberry Pi Imager JSON, checked with real tools
# (bmaptool, xz, zstd, gzip, sha256sum, python's json).
# Single-quoted bash -c scripts expand their own "$1": that is the point.
# shellcheck disable=SC2016
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

if ! "$DIMIMAGE" build --help >/dev/null 2>&1; then
  echo "skip - dimimage build is not available yet"
  summary
  exit
fi

# Small (150 MB) so that four compressed builds stay within seconds.
base=$(fixture outputs-small --fat 16 --boot-size 48 --root-size 96) || { fail "fixture"; summary; exit 1; }
export SOURCE_DATE_EPOCH=1700000000
# Every secret supplied, so two builds can be byte-identical.
ARGS=(--role observability --base "$base" --hostname obs --quiet
  --set OPENOBSERVE_PASSWORD=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6 --set OPENOBSERVE_EMAIL=ops@example.org)

mkdir -p "$T/a" "$T/b"
build() { "$DIMIMAGE" build "${ARGS[@]}" "$@"; }

# ---- raw -------------------------------------------------------------------
check "build raw .img" build -o "$T/a/out.img"
check "OUT.bmap and OUT.sha256 beside the raw output" test -s "$T/a/out.img.bmap" -a -s "$T/a/out.img.sha256"
check "sha256sum -c passes beside the output" bash -c 'cd "$1" && sha256sum -c --status out.img.sha256' _ "$T/a"
# The image holds the stack's secrets: 0600 whatever the umask, and so is
# every temporary from its creation (a reader that opens a file keeps it
# after a chmod); the bmap and the sums are for anyone.
[[ $(stat -c %a "$T/a/out.img") == 600 && $(stat -c %a "$T/a/out.img.bmap") == 644 && $(stat -c %a "$T/a/out.img.sha256") == 644 ]] \
  && ok "OUT 0600, OUT.bmap and OUT.sha256 0644" \
  || fail "modes: $(stat -c '%n %a' "$T/a/out.img" "$T/a/out.img.bmap" "$T/a/out.img.sha256" | tr '\n' ' ')"
# The directory's sync fails after the renames: OUT is in place (a --force
# build's old files already gone), so that is a warning over a build that
# stands, not an error over files left behind.
if strace -f -o /dev/null -e trace=fsync true 2>/dev/null; then
  mkdir -p "$T/ds"
  build -o "$T/ds/out.img" >/dev/null 2>&1
  rc=0
  strace -f -qq -o /dev/null -P "$T/ds" -e trace=fsync -e inject=fsync:error=EIO \
    "$DIMIMAGE" build "${ARGS[@]}" -o "$T/ds/out.img" --force >/dev/null 2>"$T/ds.err" || rc=$?
  [[ $rc == 0 ]] && grep -q "^dimimage: warning: .*/ds: cannot sync the directory (Input/output error): out.img is written" "$T/ds.err" \
    && ! grep -q 'error:' "$T/ds.err" && (cd "$T/ds" && sha256sum -c --status out.img.sha256) \
    && ok "a failed directory sync after the commit: a warning, the image in place" \
    || fail "a failed directory sync after the commit: exit $rc: $(cat "$T/ds.err")"
  rm -rf "$T/ds"
fi
if strace -f -o /dev/null -e trace=openat true 2>/dev/null; then
  (umask 000 && strace -f -qq -e trace=openat -o "$T/open.trace" "$DIMIMAGE" build --role app --base "$base" \
    --hostname m --quiet --set DIMDIM_API_IMAGE=x/api:1 --set DIMDIM_WORKER_IMAGE=x/worker:1 \
    --set OPENOBSERVE_PASSWORD=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6 -o "$T/modes.img" >"$T/modes.log" 2>&1)
  # every file it creates, wherever (strace writes a path's non-ASCII bytes
  # as octal escapes, so a path with an "ß" in TMPDIR would not match $T);
  # not /dev/null, which a library's helper shell redirects to (that one
  # only: TMPDIR, and so $T, may well be under /dev/shm)
  created=$(grep 'O_CREAT' "$T/open.trace" | grep -vc '"/dev/null"' || true)
  wide=$(grep 'O_CREAT' "$T/open.trace" | grep -v '"/dev/null"' | grep -v ', 0600)' || true)
  [[ $created -ge 3 && -z $wide ]] && ok "umask 000: every file a build creates is created 0600 ($created files)" \
    || fail "umask 000: created ${created} files, not 0600: $wide"
  [[ $(stat -c %a "$T/modes.img") == 600 && $(stat -c %a "$T/modes.img.secrets.env") == 600 ]] \
    && ok "umask 000: OUT and OUT.secrets.env 0600" || fail "umask 000: $(stat -c '%n %a' "$T/modes.img"*)"
  rm -f "$T/modes.img"*
fi
check "raw output is sparse" bash -c '(( $(stat -c %b "$1") * 512 < $(stat -c %s "$1") ))' _ "$T/a/out.img"
check "bmaptool copy with our bmap" bmaptool -q copy --bmap "$T/a/out.img.bmap" "$T/a/out.img" "$T/copy.img"
check "bmaptool's copy equals the image" cmp "$T/a/out.img" "$T/copy.img"
rm -f "$T/copy.img"
# Ours is worded as bmaptool 3.6 (Debian 12) words its comments; 3.9 (Debian 13)
# corrected some of them ("The block map is", "has to be zero"), so the
# data (the comments and the file's own checksum over them set aside) is
# compared everywhere, the bytes where bmaptool still writes the old words.
# bmaptool copy above checked our file's checksum.
bmap_data() {
  python3 -c 'import re, sys; s = open(sys.argv[1]).read(); s = re.sub(r"<!--.*?-->", "", s, flags=re.S)
print(re.sub(r"<BmapFileChecksum>.*?</BmapFileChecksum>", "", s))' "$1"
}
bmaptool create -o "$T/ref.bmap" "$T/a/out.img"
check "our bmap's data equals bmaptool create's" cmp <(bmap_data "$T/ref.bmap") <(bmap_data "$T/a/out.img.bmap")
if grep -q 'the checksum has be zero' "$T/ref.bmap"; then
  check "our bmap equals bmaptool create's, byte for byte" cmp "$T/ref.bmap" "$T/a/out.img.bmap"
else
  ok "skipped: our bmap byte for byte: $(bmaptool --version 2>&1) words its comments anew"
fi
rm -f "$T/ref.bmap"
check "no temporaries left" bash -c '! ls -A "$1" | grep -q "^\."' _ "$T/a"

# ---- compressed ------------------------------------------------------------
for fmt in xz zst gz; do
  tool=$fmt
  [[ $fmt == zst ]] && tool=zstd
  [[ $fmt == gz ]] && tool=gzip
  out=$T/a/out.img.$fmt
  check "build .img.$fmt" build -o "$out"
  check "$tool -t passes" "$tool" -qt "$out"
  check "$fmt decompresses to the raw build's bytes" bash -c '"$1" -dc "$2" | cmp - "$3"' _ "$tool" "$out" "$T/a/out.img"
  check "sha256sum -c passes for .img.$fmt" bash -c 'cd "$1" && sha256sum -c --status "$2.sha256"' _ "$T/a" "out.img.$fmt"
  check ".img.$fmt.bmap describes the raw image" cmp "$out.bmap" "$T/a/out.img.bmap"
done
# bmaptool decompresses in Python: once is enough.
check "bmaptool copy from .img.xz" bmaptool -q copy --bmap "$T/a/out.img.xz.bmap" "$T/a/out.img.xz" "$T/copy.img"
check "bmaptool's copy from .img.xz equals the image" cmp "$T/a/out.img" "$T/copy.img"
rm -f "$T/copy.img"
blocks=$(xz --robot -lv "$T/a/out.img.xz" | awk '$1 == "totals" { print $3 }')
if ((blocks > 1)); then ok "xz output has $blocks blocks (parallel decoding)"; else fail "xz output has ${blocks:-no} blocks"; fi
check "gzip header: no name, mtime 0" bash -c 'od -An -tx1 -N8 "$1" | grep -q "1f 8b 08 00 00 00 00 00"' _ "$T/a/out.img.gz"

# ---- reproducibility -------------------------------------------------------
for f in out.img out.img.xz; do
  check "second build of $f" build -o "$T/b/$f"
  for s in "" .bmap .sha256; do
    check "reproducible: $f$s" cmp "$T/a/$f$s" "$T/b/$f$s"
  done
done
# The caller's time zone, locale and umask reach no byte: the FAT times,
# the ext4 times and the manifest's build time are SOURCE_DATE_EPOCH in
# UTC.  The zone is a POSIX TZ string, 14 hours east (another date too),
# so that it needs no tzdata; the second build above ran in the same
# environment as the first, and would not see a local time.
mkdir -p "$T/tz"
(umask 077 && TZ=KIR-14 LC_ALL=POSIX build -o "$T/tz/out.img") >"$T/tz.log" 2>&1
for s in "" .bmap .sha256; do
  check "reproducible in another time zone, locale and umask: out.img$s" cmp "$T/a/out.img$s" "$T/tz/out.img$s"
done
rm -rf "$T/tz"
# A SOURCE_DATE_EPOCH that is not a time would make a build quietly not
# reproducible (the current time instead): refused, as the specification asks.
for sde in 2023-11-14 ' 1700000000' 1.7e9 -1; do
  expect_error "SOURCE_DATE_EPOCH='$sde' refused" "SOURCE_DATE_EPOCH: '$sde' is not a number of seconds since 1970" \
    env SOURCE_DATE_EPOCH="$sde" "$DIMIMAGE" build "${ARGS[@]}" -o "$T/b/sde.img"
  expect_rc "SOURCE_DATE_EPOCH='$sde'" 64
done
check_fails "no output after a bad SOURCE_DATE_EPOCH" test -e "$T/b/sde.img"
check "an empty SOURCE_DATE_EPOCH is unset" env SOURCE_DATE_EPOCH= "$DIMIMAGE" build "${ARGS[@]}" -o "$T/b/sde.img" --dry-run

# ---- progress --------------------------------------------------------------
# Compressing a real base's .img.xz takes minutes (bench: ~100 s): on a
# terminal a progress line says so, cleared before the next line; piped or
# with --quiet, none.  script(1) gives the build a terminal; xz -6 makes this
# small image's compression take a second or two, several redraws.
ARGS_LOUD=()
for a in "${ARGS[@]}"; do [[ $a == --quiet ]] || ARGS_LOUD+=("$a"); done
if script -qc true /dev/null >/dev/null 2>&1; then
  pty_build() { # OUT [OPTIONS...]: the build's terminal output in $T/pty.out
    # The terminal is an xterm unless PTY_TERM says (a TERM, or "unset"):
    # what the checks look for is drawn for one, and the caller's TERM may
    # be unset or dumb.
    local term=(TERM="${PTY_TERM:-xterm}")
    [[ ${PTY_TERM:-} == unset ]] && term=(-u TERM)
    on_pty env "${term[@]}" "$DIMIMAGE" build "${ARGS_LOUD[@]}" --compression-level 6 --force -o "$@" \
      >"$T/pty.out" 2>&1 </dev/null || true
  }
  pty_build "$T/b/pg.img.xz"
  if grep -aEq $'\rCompressing pg.img.xz +[0-9]+%' "$T/pty.out" && grep -aq $'\r\e\[K' "$T/pty.out"; then
    ok "a terminal sees 'Compressing OUT  N%', cleared after"
  else
    fail "no compression progress on a terminal: $(tr '\r' '|' <"$T/pty.out" | head -c 400)"
  fi
  # A terminal TERM does not name, or names dumb (Emacs' shell), may not
  # read escape sequences: none is written, a redraw and the clearing
  # after are spaces over the last line.
  for term in dumb unset; do
    PTY_TERM=$term pty_build "$T/b/pg.img.xz"
    if grep -aEq $'\rCompressing pg.img.xz +[0-9]+%' "$T/pty.out" && ! grep -aq $'\e' "$T/pty.out" \
      && grep -aEq $'\r +\r' "$T/pty.out"; then
      ok "TERM $term: the progress line without escape sequences, cleared with spaces"
    else
      fail "TERM $term: $(cat -v "$T/pty.out" | head -c 400)"
    fi
  done
  pty_build "$T/b/pg.img.xz" --quiet
  check_fails "--quiet on a terminal: no progress" grep -aq Compressing "$T/pty.out"
  # OUT's name wider than the terminal: the line is cut to the width (the
  # last column left blank), giving up the name's start, never the
  # figures; each redraw stays on its one line.  A terminal that does not
  # say its width (0 columns) gets the line whole.
  long=an-output-name-much-longer-than-a-narrow-terminal-is-wide-0123456789.img.xz
  progress_lines() { tr '\r' '\n' <"$T/pty.out" | sed 's/\x1b\[K//g' | grep -a '^Compressing '; }
  PTY_STTY='stty cols 60; ' pty_build "$T/b/$long"
  lines=$(progress_lines)
  widest=$(awk '{ print length($0) }' <<<"$lines" | sort -n | tail -n 1)
  # each: "Compressing ...", the end of the name, then all the figures
  cut=0
  while IFS= read -r l; do
    kept=${l#Compressing ...}
    kept=${kept%% *}
    [[ $l =~ ^Compressing\ \.\.\.[^\ ]+\ +[0-9]+%\ \ [0-9.]+\ MB/s(\ \ ETA\ [0-9]+:[0-9]{2})?$ && $long == *?"$kept" \
      && $kept == *.img.xz ]] && cut=$((cut + 1))
  done <<<"$lines"
  [[ -n $lines && ${widest:-99} -le 59 && $cut == $(wc -l <<<"$lines") ]] \
    && ok "a 60-column terminal: 'Compressing ...END-OF-NAME  N%  R MB/s' in 59 columns ($(wc -l <<<"$lines") redraws)" \
    || fail "60 columns: widest $widest, $cut of $(wc -l <<<"$lines") cut right: $(head -c 400 <<<"$lines")"
  PTY_STTY='stty cols 0; ' pty_build "$T/b/$long"
  grep -aEq $'\rCompressing '"${long//./\\.}"' +[0-9]+%' "$T/pty.out" && ok "a terminal of no known width: the name whole" \
    || fail "no width: $(progress_lines | head -c 400)"
  # Narrower than even the verb and the figures: the line itself is cut at
  # the width (its end giving way), so each redraw still stays on one line
  PTY_STTY='stty cols 20; ' pty_build "$T/b/$long"
  lines=$(progress_lines)
  widest=$(awk '{ print length($0) }' <<<"$lines" | sort -n | tail -n 1)
  [[ -n $lines && ${widest:-99} -le 19 ]] && grep -aEq '^Compressing +[0-9]+%' <<<"$lines" \
    && ok "a 20-column terminal: the line cut to 19 columns ($(wc -l <<<"$lines") redraws)" \
    || fail "20 columns: widest ${widest:-none}: $(head -c 400 <<<"$lines")"
  rm -f "$T/b/$long"*
  # A wide (East Asian) character takes two columns: the cut counts them so
  long=$(printf '\u5f71\u50cf%.0s' {1..30}).img.xz
  PTY_STTY='stty cols 60; ' pty_build "$T/b/$long"
  widest=$(progress_lines | python3 -c '
import sys, unicodedata
print(max((sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in l.rstrip("\n")) for l in sys.stdin), default=99))')
  [[ $widest -le 59 ]] && grep -aq 'Compressing \.\.\..*\.img\.xz ' "$T/pty.out" \
    && ok "a 60-column terminal, a name of wide characters: the line in $widest columns" \
    || fail "wide characters, 60 columns: widest $widest: $(progress_lines | head -c 400)"
  rm -f "$T/b/$long"*
  # a name's control characters are not written to the terminal
  esc=$'col\e]0;owned\aor.img.xz'
  pty_build "$T/b/$esc"
  lines=$(progress_lines)
  [[ -n $lines ]] && ! grep -aq $'[\e\a]' <<<"$lines" && grep -aq '^Compressing col?\]0;owned?or\.img\.xz ' <<<"$lines" \
    && ok "a name's control characters are shown as '?' on the progress line" || fail "control characters: $(cat -v <<<"$lines" | head -c 300)"
  rm -f "$T/b/$esc"*
  # a tab too: its width is the terminal's, which the cut cannot count
  tab=$'tab\there.img.xz'
  pty_build "$T/b/$tab"
  lines=$(progress_lines)
  [[ -n $lines ]] && ! grep -aq $'\t' <<<"$lines" && grep -aq '^Compressing tab?here\.img\.xz ' <<<"$lines" \
    && ok "a tab in the name is shown as '?' on the progress line" || fail "tab: $(cat -A <<<"$lines" | head -c 300)"
  rm -f "$T/b/$tab"*
else
  ok "skipped: compression progress on a terminal (no script(1))"
fi
"$DIMIMAGE" build "${ARGS_LOUD[@]}" -o "$T/b/pg.img.xz" --force --compression-level 6 2>"$T/pipe.err" | cat
check "piped: the build says what it wrote" grep -q 'Wrote .*pg.img.xz' "$T/pipe.err"
check_fails "piped: no progress" grep -aq Compressing "$T/pipe.err"

# ---- options and refusals --------------------------------------------------
check "--no-bmap" build -o "$T/b/nb.img" --no-bmap
check_fails "--no-bmap writes no bmap" test -e "$T/b/nb.img.bmap"
check "--compression-level 1" build -o "$T/b/l1.img.zst" --compression-level 1
check "level 1 decompresses to the same bytes" bash -c 'zstd -dc "$1" | cmp - "$2"' _ "$T/b/l1.img.zst" "$T/a/out.img"
# A level the format cannot take is a usage error before any work, even a
# dry run's; a raw OUT takes none.
expect_error "--compression-level 15 for .img.gz" "out of range for this format \(1-9" \
  build -o "$T/b/l15.img.gz" --compression-level 15
expect_rc "--compression-level 15 for .img.gz" 64
expect_error "--compression-level for a raw OUT" "is for compressed outputs" \
  build -o "$T/b/raw-level.img" --compression-level 3 --dry-run
check_fails "no output after the level refusals" test -e "$T/b/l15.img.gz"
# A dry run checks OUT as the build would, and creates nothing.
check "--dry-run" build -o "$T/b/dry.img" --dry-run
check_fails "--dry-run writes no OUT" test -e "$T/b/dry.img"
expect_error "--dry-run: OUT in a missing directory" "output directory does not exist" \
  build -o "$T/b/nowhere/dry.img" --dry-run
expect_rc "--dry-run: OUT in a missing directory" 73
expect_error "-o naming a directory without --fleet" "is a directory; -o names the image to write" build -o "$T/a"
expect_rc "-o naming a directory without --fleet" 64
# /proc takes no new files (ENOENT; for a user other than root, its 0555
# says so first): still an output that cannot be created
expect_error "OUT where no file can be created" "/proc: (cannot create a temporary file here|output directory is not writable)" \
  build -o /proc/x.img
expect_rc "OUT where no file can be created" 73
expect_error "--dry-run: an existing OUT without --force" "output exists; use --force" build -o "$T/a/out.img" --dry-run
expect_rc "--dry-run: an existing OUT without --force" 73
expect_error "--dry-run: --imager-json naming the base" "--imager-json would overwrite" \
  build -o "$T/b/dry.img" --dry-run --imager-json "$base"
before=$(sha256sum "$T/a/out.img")
expect_error "existing OUT without --force" "exists; use --force" build -o "$T/a/out.img"
expect_rc "existing OUT without --force is an output that cannot be created" 73
# With --verbose the error is still the last line: a failed phase reports no time.
expect_error "existing OUT with --verbose" "exists; use --force" build -o "$T/a/out.img" --verbose
check "with --verbose the error is the last line" bash -c 'tail -n 1 "$1" | grep -q "^dimimage: error:"' _ "$T/.err"
check "existing OUT untouched" bash -c '[[ $(sha256sum "$1") == "$2" ]]' _ "$T/a/out.img" "$before"
check "--force overwrites" build -o "$T/a/out.img" --force
# The short forms a user reaches for first.
# -q prints only warnings and errors: here the one warning a build without
# --user earns, and nothing else.
build -o "$T/a/out.img" -f -q >"$T/short.log" 2>&1 \
  && [[ $(cat "$T/short.log") == "dimimage: warning: $T/a/out.img: built without --user: nobody will be able to log in to this Pi" ]] \
  && ok "-f overwrites, -q prints only the warning" || fail "-f -q: $(head -c 500 "$T/short.log")"
build -o "$T/a/out.img" -fv >"$T/short.log" 2>&1 && grep -Eq 'phase [a-z]+: [0-9.]+ s' "$T/short.log" \
  && ok "-v prints each phase's time" || fail "-v: $(head -c 500 "$T/short.log")"
"$DIMIMAGE" build -h 2>&1 | grep -q '^  -q, --quiet' && ok "-h prints the usage, with the short forms" || fail "build -h"
cp "$base" "$T/base.img"
expect_error "OUT is the base" "base image" "$DIMIMAGE" build "${ARGS[@]/$base/$T/base.img}" -o "$T/base.img" --force
ln -s base.img "$T/link.img"
expect_error "OUT is a symlink to the base" "base image" "$DIMIMAGE" build "${ARGS[@]/$base/$T/base.img}" -o "$T/link.img" --force
# A symbolic link to nothing is there to the commit: refused at once, not
# after the build; --force replaces the link, not what it would name.
ln -s nowhere.img "$T/dangling.img"
expect_error "OUT a symbolic link to nothing, without --force: refused" \
  "dangling\.img: output exists \(a symbolic link to nothing\); use --force" build -o "$T/dangling.img"
expect_rc "... as an existing OUT is" 73
check_fails "... before the base is read" grep -q '^Reading\|^== ' "$T/.out" "$T/.err"
check "... and with --force, the link replaced by the image" build -o "$T/dangling.img" --force --quiet
[[ -f $T/dangling.img && ! -L $T/dangling.img && ! -e $T/nowhere.img ]] && ok "... which is a file of its own" \
  || fail "dangling OUT: $(ls -ld "$T"/dangling.img* "$T/nowhere.img" 2>&1)"
rm -f "$T"/dangling.img*
expect_error "unknown extension" "unknown output extension" build -o "$T/b/out.iso"
# -o's own spelling is a usage error, named before any input is read (a
# missing --base here)
expect_rc "unknown extension" 64
expect_error "unknown extension, before the inputs" "out\.iso: unknown output extension" \
  "$DIMIMAGE" build --role observability --base "$T/nonexistent.img" -o "$T/b/out.iso"
rc=0
build -o "$T/nonexistent/out.img" 2>/dev/null || rc=$?
if ((rc == 73)); then ok "missing output directory: EX_CANTCREAT"; else fail "missing output directory: rc=$rc"; fi
check "no temporaries after refusals" bash -c '! ls -A "$1" "$2" | grep -q "^\."' _ "$T/a" "$T/b"

# ---- Raspberry Pi Imager ----------------------------------------------------
if build -o "$T/b/im.img.xz" --model pi4-8gb --imager-json "$T/b/os_list.json" 2>"$T/im.err"; then
  raw_sha=$(xz -dc "$T/b/im.img.xz" | sha256sum | cut -d' ' -f1)
  check "imager json fields" python3 - "$T/b/os_list.json" "$T/b/im.img.xz" "$raw_sha" <<'PY'
import json, os, sys, hashlib, pathlib
j = json.load(open(sys.argv[1]))
e = j["os_list"][0]
img = sys.argv[2]
url = pathlib.Path(os.path.realpath(img)).as_uri()  # percent-encoded: a space is %20
assert e["url"] == url, e["url"]
assert e["image_download_size"] == os.path.getsize(img)
assert e["image_download_sha256"] == hashlib.sha256(open(img, "rb").read()).hexdigest()
assert e["extract_sha256"] == sys.argv[3]
assert e["release_date"] == "2023-11-14", e["release_date"]
assert e["init_format"] == "none"
assert e["devices"] == ["pi4-64bit"], e["devices"]  # --model pi4-8gb
assert e["bmap_url"] == url + ".bmap", e["bmap_url"]
for k in ("name", "description", "extract_size"):
    assert k in e, k
PY
else
  fail "build with --imager-json"; sed 's/^/    /' "$T/im.err"
fi

# --imager-json is renamed into place with OUT: it may name no input or
# output, an existing one needs --force, and a list that cannot be written
# is refused before anything is.
mkdir -p "$T/j"
cp "$base" "$T/j/base.img"
before=$(sha256sum <"$T/j/base.img")
printf 'OPENOBSERVE_EMAIL=ops@example.org\n' >"$T/j/in.env"
J=("${ARGS[@]/$base/$T/j/base.img}")
jbuild() { "$DIMIMAGE" build "${J[@]}" --env "$T/j/in.env" "$@"; }
expect_error "--imager-json is the base" "--imager-json would overwrite .*base\.img" \
  jbuild -o "$T/j/out.img" --imager-json "$T/j/base.img" --force
ln -s base.img "$T/j/link.json"
expect_error "--imager-json is a symlink to the base" "--imager-json would overwrite" \
  jbuild -o "$T/j/out.img" --imager-json "$T/j/link.json" --force
expect_error "--imager-json is an --env file" "--imager-json would overwrite .*in\.env" \
  jbuild -o "$T/j/out.img" --imager-json "$T/j/in.env" --force
for s in "" .bmap .sha256 .secrets.env; do
  expect_error "--imager-json is OUT$s" "--imager-json would overwrite .*out\.img$s" \
    jbuild -o "$T/j/out.img" --imager-json "$T/j/out.img$s" --force
done
[[ $(sha256sum <"$T/j/base.img") == "$before" ]] && ok "--imager-json refusals: base unchanged" || fail "--imager-json refusals: base changed"
[[ $(ls -A "$T/j") == $'base.img\nin.env\nlink.json' ]] && ok "--imager-json refusals: nothing written" || fail "--imager-json refusals: left $(ls -A "$T/j")"
expect_error "--imager-json in a missing directory" "directory for --imager-json does not exist" \
  jbuild -o "$T/j/out.img" --imager-json "$T/j/nonexistent/x.json"
expect_rc "--imager-json in a missing directory" 73
[[ $(ls -A "$T/j") == $'base.img\nin.env\nlink.json' ]] && ok "--imager-json in a missing directory: no OUT, .bmap, .sha256 left" \
  || fail "--imager-json in a missing directory: left $(ls -A "$T/j")"
echo '{}' >"$T/j/list.json"
expect_error "existing --imager-json without --force" "list\.json: exists; use --force" \
  jbuild -o "$T/j/out.img" --imager-json "$T/j/list.json"
check "existing --imager-json with --force" jbuild -o "$T/j/out.img" --imager-json "$T/j/list.json" --force
check "--force'd --imager-json is the new list" grep -q '"os_list"' "$T/j/list.json"
check "no temporaries beside --imager-json" bash -c '! ls -A "$1" | grep -q "^\."' _ "$T/j"

# ---- two builds of one OUT at once (a script running builds in parallel) --
# Without --force exactly one wins (the other is refused, at its start or at
# its commit, and replaces nothing); with it, OUT and its companions still
# come from one build (each commit holds the directory's flock).
mkdir -p "$T/par"
for round in 1 2 3; do
  rm -f "$T/par/"*
  rc1=0 rc2=0
  build -o "$T/par/out.img" --user pa 2>"$T/par1.err" & p1=$!
  build -o "$T/par/out.img" --user pb 2>"$T/par2.err" & p2=$!
  wait "$p1" || rc1=$?
  wait "$p2" || rc2=$?
  if [[ $rc1,$rc2 == 0,73 || $rc1,$rc2 == 73,0 ]]; then ok "parallel builds of one OUT, round $round: one wins, one exits 73"
  else fail "parallel builds of one OUT, round $round: exits $rc1 and $rc2"; cat "$T/par1.err" "$T/par2.err"; fi
  check "parallel builds of one OUT, round $round: the loser says OUT exists" grep -qh "out.img: exists" "$T/par1.err" "$T/par2.err"
  check "parallel builds of one OUT, round $round: OUT.sha256 is OUT's" bash -c 'cd "$1" && sha256sum -c --status out.img.sha256' _ "$T/par"
  rc1=0 rc2=0
  build -o "$T/par/out.img" --user pc --force 2>"$T/par1.err" & p1=$!
  build -o "$T/par/out.img" --user pd --force 2>"$T/par2.err" & p2=$!
  wait "$p1" || rc1=$?
  wait "$p2" || rc2=$?
  [[ $rc1,$rc2 == 0,0 ]] && ok "parallel --force builds of one OUT, round $round: both succeed" \
    || fail "parallel --force builds, round $round: exits $rc1 and $rc2"
  check "parallel --force builds, round $round: OUT.sha256 is OUT's" bash -c 'cd "$1" && sha256sum -c --status out.img.sha256' _ "$T/par"
  check "parallel --force builds, round $round: OUT.bmap is OUT's" bmaptool copy --bmap "$T/par/out.img.bmap" "$T/par/out.img" "$T/par/copy.raw"
  check "parallel builds, round $round: no temporaries left" bash -c '! ls -A "$1" | grep -q "^\."' _ "$T/par"
done

summary
