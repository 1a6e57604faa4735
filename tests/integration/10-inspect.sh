#!/usr/bin/env bash
# dimimage inspect --json against sfdisk and blkid, for raw and compressed
# forms of the fixtures; human output; non-image input.
source "$(dirname "$0")/../lib.sh"

# compare IMAGE_FOR_TOOLS JSON_FILE: partition starts/sizes as sfdisk -J,
# filesystem TYPE/UUID/LABEL as blkid -p, disk id, os_release.
compare() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, subprocess, sys
img, js, flavour = sys.argv[1], sys.argv[2], sys.argv[3]
got = json.load(open(js))
sf = json.loads(subprocess.check_output(["sfdisk", "-J", img]))["partitiontable"]
errs = []
def want(what, a, b):
    if a != b:
        errs.append(f"{what}: inspect says {a!r}, tools say {b!r}")
want("table", got["table"], sf["label"])
want("disk_id", got["disk_id"], sf["id"].lower().removeprefix("0x"))
import os
want("image_bytes", got["image_bytes"], os.path.getsize(img))
want("partition count", len(got["partitions"]), len(sf["partitions"]))
for p, s in zip(got["partitions"], sf["partitions"]):
    n = p["number"]
    want(f"p{n} start", p["start_sector"], s["start"])
    want(f"p{n} size", p["sectors"], s["size"])
    out = subprocess.check_output(["blkid", "-p", "-o", "export", "--offset", str(s["start"] * 512), img], text=True)
    b = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    want(f"p{n} fs_type", p["fs_type"], b.get("TYPE"))
    want(f"p{n} uuid", p["uuid"], b.get("UUID"))
    want(f"p{n} label", p["label"], b.get("LABEL"))
    want(f"p{n} partuuid", p["partuuid"], f'{got["disk_id"]}-{n:02x}')
roles = [p["role"] for p in got["partitions"]]
want("roles", roles, ["boot", "root"])
want("keys", list(got.keys()), ["table", "disk_id", "image_bytes", "partitions", "root_filesystem", "os_release", "manifest"])
want("root_filesystem", got["root_filesystem"], "read")
os_rel = got["os_release"] or {}
want("VERSION_CODENAME", os_rel.get("VERSION_CODENAME"), flavour)
want("ID", os_rel.get("ID"), "debian")
want("manifest", got["manifest"], None)
for e in errs:
    print(e)
sys.exit(1 if errs else 0)
PY
}

bookworm=$(fixture bookworm) || exit 1
trixie=$(fixture trixie --flavour trixie --disk-id 0badcafe) || exit 1

for pair in "bookworm:$bookworm" "trixie:$trixie"; do
  flavour=${pair%%:*}
  img=${pair#*:}
  sum=$(sha256sum "$img")
  if "$DIMIMAGE" inspect "$img" --json >"$T/$flavour.json" 2>"$T/$flavour.err"; then
    check "inspect --json $flavour .img matches sfdisk and blkid" compare "$img" "$T/$flavour.json" "$flavour"
  else
    fail "inspect --json $flavour .img exited non-zero"; sed 's/^/    /' "$T/$flavour.err"
  fi
  check "inspect leaves $flavour .img unchanged" test "$sum" = "$(sha256sum "$img")"
  # an abbreviation after the image, as getopt takes one before it
  "$DIMIMAGE" inspect "$img" --js >"$T/$flavour.js.json" 2>&1 \
    && check "inspect IMAGE --js is --json, as inspect --js IMAGE" cmp -s "$T/$flavour.json" "$T/$flavour.js.json" \
    || fail "inspect $flavour IMAGE --js: $(head -c 300 "$T/$flavour.js.json")"
done

# compressed forms of a small fixture (compressing 600 MiB four times is slow)
small=$(fixture small --boot-size 64 --cluster 512 --root-size 64) || exit 1
cp --sparse=always "$small" "$T/base.img"
xz -T0 -k -1 "$T/base.img"
gzip -k -1 "$T/base.img"
zstd -q -1 "$T/base.img" -o "$T/base.img.zst"
(cd "$T" && zip -q -j -1 base.zip base.img)
tmpdir=$T/tmp
mkdir -p "$tmpdir"
for c in base.img.xz base.img.gz base.img.zst base.zip; do
  if TMPDIR=$tmpdir "$DIMIMAGE" inspect --json "$T/$c" >"$T/$c.json" 2>"$T/$c.err"; then
    check "inspect --json $c matches sfdisk and blkid" compare "$small" "$T/$c.json" bookworm
  else
    fail "inspect --json $c exited non-zero"; sed 's/^/    /' "$T/$c.err"
  fi
  check "inspect $c leaves no temporary file" test -z "$(ls -A "$tmpdir")"
done

# human output
if "$DIMIMAGE" inspect "$bookworm" >"$T/human.txt" 2>&1; then
  check "human output names the OS" grep -q 'Debian GNU/Linux 12 (bookworm)' "$T/human.txt"
  check "human output shows the disk id" grep -q '2a7c1d5e' "$T/human.txt"
  check "human output lists bootfs at 8192" grep -Eq '^1 +8192 +524288 .*vfat .*bootfs' "$T/human.txt"
  check "human output lists rootfs" grep -Eq '^2 +532480 +655360 .*ext4 .*rootfs .*root$' "$T/human.txt"
else
  fail "inspect (human) exited non-zero"; sed 's/^/    /' "$T/human.txt"
fi
"$DIMIMAGE" inspect --help >"$T/help.txt" 2>&1 || true
check "inspect --help shows an example" grep -q 'example: dimimage inspect' "$T/help.txt"

# inspect reports a GPT layout instead of refusing it
gpt=$(fixture gpt --table gpt) || exit 1
if "$DIMIMAGE" inspect --json "$gpt" >"$T/gpt.json" 2>"$T/gpt.err"; then
  check "inspect reports a GPT image" python3 -c '
import json,sys; j=json.load(open(sys.argv[1]))
assert j["table"] == "gpt", j["table"]
assert [p["fs_type"] for p in j["partitions"]] == ["vfat", "ext4"]
assert [p["start_sector"] for p in j["partitions"]] == [8192, 532480]' "$T/gpt.json"
else
  fail "inspect on a GPT image exited non-zero"; sed 's/^/    /' "$T/gpt.err"
fi

# a GPT whose primary header is corrupt: the backup is read, as sfdisk reads
# it, with libparted's complaint as a warning, and the image is not repaired
# (0 partitions and no word before)
cp --sparse=always "$gpt" "$T/gpt-bad.img"
printf '\xff' | dd of="$T/gpt-bad.img" bs=1 seek=528 conv=notrunc status=none
sum=$(sha256sum <"$T/gpt-bad.img")
if "$DIMIMAGE" inspect --json "$T/gpt-bad.img" >"$T/gpt-bad.json" 2>"$T/gpt-bad.err"; then
  check "a corrupt primary GPT: the backup's partitions, as sfdisk reads them" python3 -c '
import json,subprocess,sys; j=json.load(open(sys.argv[1]))
sf = json.loads(subprocess.check_output(["sfdisk", "-J", sys.argv[2]], stderr=subprocess.DEVNULL))["partitiontable"]
got = [(p["start_sector"], p["sectors"]) for p in j["partitions"]]
want = [(p["start"], p["size"]) for p in sf["partitions"]]
assert got == want and len(got) == 2, (got, want)' "$T/gpt-bad.json" "$T/gpt-bad.img"
  check "a corrupt primary GPT: libparted's message as a warning" \
    grep -q '^dimimage: warning: .*gpt-bad.img: libparted: The primary GPT table is corrupt' "$T/gpt-bad.err"
else
  fail "inspect on a GPT with a corrupt primary header exited non-zero"; sed 's/^/    /' "$T/gpt-bad.err"
fi
check "a corrupt primary GPT is left as it was" test "$sum" = "$(sha256sum <"$T/gpt-bad.img")"
"$DIMIMAGE" inspect "$gpt" >/dev/null 2>"$T/gpt.err"
check "an intact GPT: no warning" test ! -s "$T/gpt.err"

# a partition past the end of the file (a cut-off download) is shown with a
# warning; more partitions than inspect lists are said to be cut off
cp --sparse=always "$small" "$T/short.img"
truncate -s $(($(stat -c %s "$small") - 1048576)) "$T/short.img"
"$DIMIMAGE" inspect "$T/short.img" >/dev/null 2>"$T/short.err"
check "a truncated image: partition 2 ends past the end" \
  grep -q '^dimimage: warning: .*short.img: partition 2 ends past the end of the image' "$T/short.err"
truncate -s 64M "$T/many.img"
{ echo "label: gpt"; for _ in $(seq 20); do echo "size=1MiB"; done; } | sfdisk -q "$T/many.img"
"$DIMIMAGE" inspect --json "$T/many.img" >"$T/many.json" 2>"$T/many.err"
check "20 partitions: sfdisk lists 20" test "$(sfdisk -J "$T/many.img" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["partitiontable"]["partitions"]))')" = 20
check "20 partitions: 16 shown, with a warning" grep -q 'more than 16 partitions; only the first 16 are shown' "$T/many.err"

# a built image's manifest is embedded verbatim
mkdir -p "$T/extra/etc/dimimage"
printf '{\n  "role": "app",\n  "hostname": "dimdim-app",\n  "build_time": "2025-01-01T00:00:00Z"\n}\n' >"$T/extra/etc/dimimage/manifest.json"
built=$(fixture manifest --extra-root "$T/extra") || exit 1
if "$DIMIMAGE" inspect --json "$built" >"$T/built.json" 2>"$T/built.err"; then
  check "inspect embeds the manifest" python3 -c '
import json,sys; j=json.load(open(sys.argv[1]))
assert j["manifest"] == {"role": "app", "hostname": "dimdim-app", "build_time": "2025-01-01T00:00:00Z"}, j["manifest"]' "$T/built.json"
else
  fail "inspect on a built image exited non-zero"; sed 's/^/    /' "$T/built.err"
fi
"$DIMIMAGE" inspect "$built" >"$T/built.txt" 2>&1 || true
check "human output shows the manifest role and hostname" grep -q 'role app, hostname dimdim-app' "$T/built.txt"

# a manifest that is not exactly one JSON object is reported as null with a
# warning, never pasted in: it could add keys of its own or break the output
evil_manifest() { # NAME TEXT: a copy of $built whose manifest is TEXT
  cp --sparse=always "$built" "$T/$1.img"
  printf '%s' "$2" >"$T/$1.json"
  debugfs -w -R "rm /etc/dimimage/manifest.json" "$(rootfs "$T/$1.img")" >/dev/null 2>&1
  debugfs -w -R "write $(dbgq "$T/$1.json") /etc/dimimage/manifest.json" "$(rootfs "$T/$1.img")" >/dev/null 2>&1
  rcat "$T/$1.img" /etc/dimimage/manifest.json | cmp -s - "$T/$1.json"
}
for pair in 'inject:{"x": 1}, "table": "gpt", "partitions": [], "y": {}' 'bare:{ "role": "app", oops }' \
            'trailing:{"role": "app"} {}'; do
  name=${pair%%:*}
  check "manifest $name written with debugfs" evil_manifest "$name" "${pair#*:}"
  if "$DIMIMAGE" inspect --json "$T/$name.img" >"$T/$name.out" 2>"$T/$name.err"; then
    check "inspect --json with manifest $name is valid JSON with manifest null" python3 -c '
import json,sys; j=json.load(open(sys.argv[1]))
assert list(j) == ["table", "disk_id", "image_bytes", "partitions", "root_filesystem", "os_release", "manifest"], list(j)
assert j["table"] == "dos" and len(j["partitions"]) == 2 and j["manifest"] is None, j' "$T/$name.out"
    check "inspect --json python3 -m json.tool accepts manifest $name" python3 -m json.tool "$T/$name.out"
    check "manifest $name: one warning, no error" grep -q 'warning: .*manifest.json is not one valid JSON object' "$T/$name.err"
  else
    fail "inspect --json with manifest $name exited non-zero"; sed 's/^/    /' "$T/$name.err"
  fi
  "$DIMIMAGE" inspect "$T/$name.img" >"$T/$name.txt" 2>/dev/null || true
  check "human output says manifest $name is unreadable" grep -q 'Built by dimimage: unknown (.*unreadable' "$T/$name.txt"
done

# a root filesystem that cannot be read is a report's warning, not an error:
# the partitions are still shown, exit 0, and 'Built by dimimage' says
# unknown rather than no (docs/hardening.md)
damaged_root() { # NAME HOW...: a copy of $built damaged by HOW (a command run on the copy)
  local name=$1
  shift
  cp --sparse=always "$built" "$T/$name.img"
  "$@" "$T/$name.img"
}
no_inode_table() { debugfs -w -R "set_bg 0 inode_table 0" "$(rootfs "$1")" >/dev/null 2>&1; }
bad_sb_csum() { printf 'X' | dd of="$1" bs=1 seek=$(($(part_offset "$1" 2) + 1024 + 0x78)) conv=notrunc status=none; }
for how in no_inode_table bad_sb_csum; do
  damaged_root "$how" "$how"
  check "$how: e2fsck finds the root filesystem damaged" check_fails e2fsck -fn "$(rootfs "$T/$how.img")"
  rc=0
  "$DIMIMAGE" inspect "$T/$how.img" >"$T/$how.txt" 2>"$T/$how.err" || rc=$?
  check "$how: inspect exits 0" test "$rc" = 0
  check "$how: no error line" test "$(grep -c '^dimimage: error:' "$T/$how.err")" = 0
  check "$how: a warning says why" grep -q "^dimimage: warning: .*$how.img: " "$T/$how.err"
  check "$how: the partitions are still listed" grep -Eq '^2 +.*ext4 .*root$' "$T/$how.txt"
  check "$how: Built by dimimage is unknown, not no" grep -qx 'Built by dimimage: unknown (root filesystem not readable)' "$T/$how.txt"
  "$DIMIMAGE" inspect --json "$T/$how.img" >"$T/$how.json" 2>/dev/null
  check "$how: --json is valid, with no os_release and no manifest" python3 -c '
import json,sys; j=json.load(open(sys.argv[1]))
assert len(j["partitions"]) == 2 and j["os_release"] is None and j["manifest"] is None, j
assert j["root_filesystem"] == "unreadable", j' "$T/$how.json"
done
# A root superblock whose magic is gone: no partition reads as ext4, and
# whether dimimage built the image is unknown, not "no"
cp --sparse=always "$built" "$T/nomagic.img"
printf '\0\0' | dd of="$T/nomagic.img" bs=1 seek=$(( $(part_offset "$T/nomagic.img" 2) + 1024 + 56 )) conv=notrunc 2>/dev/null
rc=0
"$DIMIMAGE" inspect "$T/nomagic.img" >"$T/nomagic.txt" 2>"$T/nomagic.err" || rc=$?
[[ $rc == 0 ]] && grep -qx 'Built by dimimage: unknown (no ext4 root filesystem found)' "$T/nomagic.txt" \
  && grep -q '^dimimage: warning: .*nomagic.img: no partition reads as an ext4 root filesystem' "$T/nomagic.err" \
  && ok "no ext4 root found: a warning, and built by dimimage unknown" \
  || fail "no ext4 root found: exit $rc: $(cat "$T/nomagic.txt" "$T/nomagic.err")"
"$DIMIMAGE" inspect --json "$T/nomagic.img" 2>/dev/null | python3 -c '
import json,sys; j=json.load(sys.stdin); assert j["root_filesystem"] == "none" and j["manifest"] is None, j' \
  && ok "no ext4 root found: --json says root_filesystem none" || fail "no ext4 root found: --json"

# escape sequences from the image (an ext4 label, os-release's PRETTY_NAME)
# or an archive (a zip entry's name) never reach the terminal raw
cp --sparse=always "$built" "$T/esc.img"
debugfs -w -R "ssv volume_name $(printf 'r\033]0;pwn\007')" "$(rootfs "$T/esc.img")" >/dev/null 2>&1
printf 'PRETTY_NAME="Evil \033[2J\033]8;;http://x\033\\ OS \302\23331m"\nID=debian\n' >"$T/esc-os-release"
debugfs -w -R "rm /etc/os-release" "$(rootfs "$T/esc.img")" >/dev/null 2>&1
debugfs -w -R "write $(dbgq "$T/esc-os-release") /etc/os-release" "$(rootfs "$T/esc.img")" >/dev/null 2>&1
check "an ext4 label with an OSC sequence, written with debugfs" \
  test "$(blkid -p -o value -s LABEL --offset "$(part_offset "$T/esc.img" 2)" "$T/esc.img")" = "r"$'\033]0;pwn\007'
python3 -c "import zipfile; z = zipfile.ZipFile('$T/esc.zip', 'w'); z.writestr('a\x1b[2Jb.txt', 'x'); z.close()"
"$DIMIMAGE" inspect "$T/esc.img" >"$T/esc.txt" 2>&1 || true
"$DIMIMAGE" inspect "$T/esc.zip" >"$T/esc-zip.txt" 2>&1 || true
no_controls() { python3 -c '
import re,sys; b=open(sys.argv[1], "rb").read()
bad = re.findall(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", b)
sys.exit("control bytes: %r in %r" % (bad, b) if bad else 0)' "$1"; }
check "human inspect prints no control bytes from a label or PRETTY_NAME" no_controls "$T/esc.txt"
check "human inspect still shows them, made printable" grep -q '^OS: Evil ?\[2J?\]8;;http://x?\\ OS ??31m$' "$T/esc.txt"
check "a zip entry's name in an error prints no control bytes" no_controls "$T/esc-zip.txt"
check "the zip entry's name made printable" grep -q 'a?\[2Jb.txt' "$T/esc-zip.txt"

# a base whose name is not UTF-8 (Latin-1 bytes): the manifest written into
# the image and inspect's output stay valid JSON (U+FFFD for each bad byte,
# spelled as its UTF-8 bytes: bash's \u escapes need a UTF-8 locale, not LC_ALL=C)
# strict_json FILE EXPR: print the JSON file's value at EXPR (e.g. '["a"]'),
# failing unless the file is UTF-8 and JSON
strict_json() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1], "rb").read().decode("utf-8", "strict"))'"$2)" "$1"; }
latin1="$T/base-caf"$'\xe9\xff'".img"
cp --sparse=always "$small" "$latin1"
if "$DIMIMAGE" build --role app --base "$latin1" --hostname latin1 --set DIMDIM_API_IMAGE=x/api:1 \
     --set DIMDIM_WORKER_IMAGE=x/worker:1 -o "$T/latin1.img" >/dev/null 2>"$T/latin1.err"; then
  rcat "$T/latin1.img" /etc/dimimage/manifest.json >"$T/latin1-manifest.json"
  check "a base named in Latin-1: the built image's manifest is valid JSON" \
    test "$(strict_json "$T/latin1-manifest.json" '["base"]["name"]')" = "base-caf"$'\xef\xbf\xbd\xef\xbf\xbd'".img"
  "$DIMIMAGE" inspect --json "$T/latin1.img" >"$T/latin1-inspect.json" 2>/dev/null || true
  check "a base named in Latin-1: inspect --json embeds that manifest" \
    test "$(strict_json "$T/latin1-inspect.json" '["manifest"]["base"]["name"]')" = "base-caf"$'\xef\xbf\xbd\xef\xbf\xbd'".img"
  rm -f "$T/latin1.img"*
else
  fail "a build from a base named in Latin-1 failed"; sed 's/^/    /' "$T/latin1.err"
fi

# non-image input: one error line, non-zero exit
printf 'just some text\n' >"$T/notes.txt"
expect_error "inspect a text file" 'text file' "$DIMIMAGE" inspect "$T/notes.txt"
truncate -s 16M "$T/zero.img"
expect_error "inspect an all-zero image" 'empty \(all zero\)' "$DIMIMAGE" inspect "$T/zero.img"
# an ISO 9660 image, plain or hybrid (with an MBR), named as one
make_iso "$T/cd.iso" && make_iso "$T/hybrid.iso" hybrid || fail "make_iso"
echo "# ISO images made by $ISO_TOOL"
for f in cd.iso hybrid.iso; do
  expect_error "inspect an ISO 9660 image ($f)" \
    "^dimimage: error: $T/$f: is an ISO 9660 \(CD/DVD or installer\) image, not a Raspberry Pi OS disk image: the Raspberry Pi OS downloads are \.img\.xz" \
    "$DIMIMAGE" inspect "$T/$f"
done
expect_error "inspect a missing file" 'missing\.img' "$DIMIMAGE" inspect "$T/missing.img"
head -c $(($(stat -c %s "$T/base.img.xz") / 2)) "$T/base.img.xz" >"$T/trunc.img.xz"
rm -rf "$tmpdir" && mkdir -p "$tmpdir"
expect_error "inspect a truncated .xz" 'trunc\.img\.xz' env TMPDIR="$tmpdir" "$DIMIMAGE" inspect "$T/trunc.img.xz"
check "a failed decompression leaves no temporary file" test -z "$(ls -A "$tmpdir")"
# A decompressed IMAGE larger than `ulimit -f` (or the filesystem) allows in
# TMPDIR: what to do next is TMPDIR's, not -o's (inspect has no -o)
# shellcheck disable=SC2016 # the single-quoted script expands its own $1
expect_error "inspect: EFBIG in TMPDIR names TMPDIR, not -o" \
  "^dimimage: error: $tmpdir: cannot write: File too large \(.*set TMPDIR to a directory on another filesystem\)$" \
  bash -c 'ulimit -f "$1"; shift; exec "$@"' _ 10000 env TMPDIR="$tmpdir" "$DIMIMAGE" inspect "$T/base.img.xz"
expect_rc "inspect: EFBIG in TMPDIR" 73
check_fails "... no -o in its hint" grep -q -- ' -o ' "$T/.err"
check "... and no temporary file left" test -z "$(ls -A "$tmpdir")"
# what is neither a file nor a block device is refused at once, as build
# --base refuses it (a FIFO hung in open before; timeout makes a hang 124)
mkfifo "$T/fifo.img"
expect_error "inspect a FIFO" "fifo\.img: not a regular file or block device" timeout 10 "$DIMIMAGE" inspect "$T/fifo.img"
expect_rc "inspect a FIFO" 65
expect_error "build --base a FIFO" "fifo\.img: not a regular file or block device" timeout 10 "$DIMIMAGE" build --role app \
  --base "$T/fifo.img" -o "$T/fifo-out.img"
expect_rc "build --base a FIFO" 65
expect_error "inspect /dev/zero" "/dev/zero: not a regular file or block device" timeout 10 "$DIMIMAGE" inspect /dev/zero
expect_rc "inspect /dev/zero" 65
# An image that may not be read is a missing input (66), as build --base
# says of one, not an output that cannot be created (73).
mkdir -p "$T/perm"
cp --sparse=always "$small" "$T/perm/locked.img" && chmod 0000 "$T/perm/locked.img"
xz -T2 -0 -c "$small" >"$T/perm/locked.img.xz" && chmod 0000 "$T/perm/locked.img.xz"
if unprivileged "$T/perm"; then
  for f in locked.img locked.img.xz; do
    expect_error "inspect an unreadable $f" "$f: cannot open: Permission denied" "${UNPRIV[@]}" inspect "$T/perm/$f"
    expect_rc "inspect an unreadable $f" 66
  done
else
  ok "skipped: an unreadable image needs setpriv to drop root"
fi
rm -rf "$T/perm"
expect_error "inspect without an image is a usage error" "no image given" "$DIMIMAGE" inspect
expect_rc "inspect without an image" 64

# ---- the other commands' usage errors: one line naming what is wrong, exit 64 ----
usage_error() { # DESC PATTERN ARGS...
  local what=$1 pattern=$2
  shift 2
  expect_error "$what" "$pattern" "$DIMIMAGE" "$@"
  expect_rc "$what" 64
}
usage_error "inspect: an unknown option named" "inspect: unknown option '--bogus'" inspect --bogus
usage_error "inspect: an unknown option after the image named" "inspect: unknown option '--bogus'" inspect "$T/zero.img" --bogus
usage_error "flash: an unknown option named" "flash: unknown option '--bogus'" flash --bogus a b
# An option given a value it does not take is named as such, and a letter
# in a cluster as that letter: getopt's optopt, not the word before it
# (which was "inspect", "flash" or "-f" for --force=yes).
usage_error "build --force=yes" "build: option '--force' takes no value" build --force=yes --role app --base "$T/zero.img" -o "$T/x.img"
usage_error "build --no-cache=1" "build: option '--no-cache' takes no value" build --no-cache=1 --role app --base "$T/zero.img" -o "$T/x.img"
usage_error "inspect --json=yes" "inspect: option '--json' takes no value" inspect --json=yes "$T/zero.img"
usage_error "inspect IMAGE --json=yes" "inspect: option '--json' takes no value" inspect "$T/zero.img" --json=yes
usage_error "inspect -x.img" "inspect: unknown option '-x'; put \`--\` before a file name that starts with '-'" inspect -x.img
# a letter that is no option is unknown, even when a long option without a
# short form has it as its value (inspect's --json is 'j' inside)
usage_error "inspect -j.img: unknown, not --json given a value" "inspect: unknown option '-j'; put \`--\` before" inspect -j.img
usage_error "inspect --json -jq: the letter, not the option before it" "inspect: unknown option '-j'" inspect --json -jq x.img
usage_error "flash --yes=1" "flash: option '--yes' takes no value" flash --yes=1 a b
usage_error "flash --no-verify=1" "flash: option '--no-verify' takes no value" flash --no-verify=1 a b
usage_error "flash -n" "flash: unknown option '-n'" flash -n a b
usage_error "flash -yx" "flash: unknown option '-x'" flash -yx a b
usage_error "flash -b with no value" "flash: option '-b' needs a value" flash a b -b
usage_error "flash -yb with no value: the letter, not the cluster" "flash: option '-b' needs a value" flash a b -yb
usage_error "flash --bmap with no value" "flash: option '--bmap' needs a value" flash a b --bmap
usage_error "build --role with no value" "build: option '--role' needs a value" build --base "$T/zero.img" -o "$T/x.img" --role
# Every command says the same thing the same way: "CMD: unknown option
# 'WORD'" (no value shown), then where to look; the commands that take file
# names say how to give one that starts with '-'.
for cmd in build flash inspect cache profiles version; do
  hint=
  [[ $cmd == flash || $cmd == inspect ]] && hint="; put \`--\` before a file name that starts with '-'"
  usage_error "$cmd --bogus=s3cret: one wording" "^dimimage: error: $cmd: unknown option '--bogus'$hint \(see \`dimimage $cmd --help\`\)$" \
    "$cmd" --bogus=s3cret
  usage_error "$cmd -Z: one wording" "^dimimage: error: $cmd: unknown option '-Z'$hint \(see \`dimimage $cmd --help\`\)$" "$cmd" -Z
done
usage_error "an unknown top-level option" "^dimimage: error: unknown option '--bogus' \(see \`dimimage --help\`\)$" --bogus
usage_error "cache list -Z" "^dimimage: error: cache: unknown option '-Z'" cache list -Z
usage_error "cache list extra" "cache: list takes no arguments: extra" cache list extra
usage_error "cache nosuch" "cache: unknown subcommand 'nosuch': expected \`dimimage cache list\` or" cache nosuch
# flash --bmap takes one file, as build's file options do: named once, not
# empty, not standard input
: >"$T/one.bmap"
usage_error "flash --bmap=''" "flash: --bmap: empty file name" flash --bmap= "$T/zero.img" "$T/dev"
usage_error "flash --bmap -" "flash: --bmap: '-' is not read as standard input" flash --bmap - "$T/zero.img" "$T/dev"
usage_error "flash --bmap twice" "flash: --bmap given twice; give it once" flash -b "$T/one.bmap" --bmap "$T/one.bmap" "$T/zero.img" "$T/dev"
check_fails "... no device file made" test -e "$T/dev"
# After "--" every word is a file name: "inspect -- -x.img" reads "-x.img".
cp "$T/zero.img" "$T/-dash.img"
in_T() { (cd "$T" && "$@"); }
expect_error "inspect -- -dash.img reads the file" "error: -dash.img: image is empty" in_T "$DIMIMAGE" inspect -- -dash.img
expect_rc "inspect -- -dash.img: the file's error, not a usage error" 65
expect_error "inspect IMAGE -- --json: a second file name" "more than one image given: .*zero.img, --json" \
  "$DIMIMAGE" inspect "$T/zero.img" -- --json
usage_error "flash without a device" "need IMAGE and DEVICE" flash a
usage_error "cache without a command" "cache list.*cache clean" cache
usage_error "profiles takes no arguments" "profiles: takes no arguments: extra" profiles extra
usage_error "version takes no arguments" "takes no arguments: extra" version extra
usage_error "an unknown command" "unknown command 'bogus'" bogus
# --help among other words is help, as getopt finds it for build (GNU's way)
for words in "profiles --help extra" "version extra -h" "cache list -h extra" "cache nosuch --help"; do
  # shellcheck disable=SC2086 # the words are the arguments
  out=$("$DIMIMAGE" $words 2>&1) && [[ $out == Usage:* ]] && ok "$words prints help" || fail "$words: $out"
done
usage_error "inspect -" "'-' is not an image file" inspect -
usage_error "build --base -" "--base: '-' is not read as standard input" build --role app --base - -o "$T/x.img"
usage_error "build --env -" "--env: '-' is not read as standard input" build --role app --base "$T/zero.img" -o "$T/x.img" --env -
usage_error "build -o ''" "-o: empty file name" build --role app --base "$T/zero.img" -o ''
usage_error "build --role twice" "--role given twice; give it once" build --role app --role observability --base "$T/zero.img" -o "$T/x.img"
usage_error "build -o twice" "--output given twice" build --role app --base "$T/zero.img" -o "$T/x.img" -o "$T/y.img"
usage_error "build --set of one key twice" "--set DB_PASSWORD given twice; give it once" build --role app --base "$T/zero.img" \
  -o "$T/x.img" --set DB_PASSWORD=first-value --set DB_USER=u --set DB_PASSWORD=second-value
grep -q 'first-value\|second-value' "$T/.err" && fail "a twice-set value printed" || ok "a twice-set value not printed"
usage_error "build --grow twice" "--grow given twice; give it once" build --role app --grow 1G --grow 64M --base "$T/zero.img" -o "$T/x.img"
usage_error "build --compression-level twice" "--compression-level given twice" build --role app --compression-level 3 \
  --compression-level 9 --base "$T/zero.img" -o "$T/x.img.zst"
# an abbreviation several options share is named so, with those options,
# not as an unknown option (its value may be a secret: not shown)
usage_error "build: an ambiguous abbreviation" \
  "build: option '--wifi' is ambiguous: --wifi-ssid, --wifi-psk-file, --wifi-country, --wifi-hidden" \
  build --role app --wifi Home --base "$T/zero.img" -o "$T/x.img"
usage_error "build: an ambiguous abbreviation with its value" "option '--password' is ambiguous: --password-hash, --password-file" \
  build --role app --password=hunter2-secret --base "$T/zero.img" -o "$T/x.img"
grep -q hunter2 "$T/.err" && fail "an ambiguous option's value printed" || ok "an ambiguous option's value not printed"
usage_error "build --grow without a unit" "--grow: '512' is that many bytes; give a unit" build --role app --grow 512 --base "$T/zero.img" -o "$T/x.img"
usage_error "flash -" "IMAGE '-' is not a file or device" flash - "$T/dev"
usage_error "flash ''" "IMAGE '' is not a file or device" flash '' "$T/dev"
usage_error "flash to -" "DEVICE '-' is not a file or device" flash "$T/zero.img" -
# What a command prints is its result: a stdout that takes none of it
# (a full disk) is an error, as inspect's always was, not exit 0.
for args in "profiles" "--version" "cache list" "build --help"; do
  rc=0
  # shellcheck disable=SC2086 # the words are the arguments
  XDG_CACHE_HOME=$T/cache "$DIMIMAGE" $args >/dev/full 2>"$T/full.err" || rc=$?
  [[ $rc == 73 ]] && grep -q '^dimimage: error: stdout: cannot write: No space left on device$' "$T/full.err" \
    && ok "$args to a full stdout: one error, exit 73" || fail "$args to a full stdout: exit $rc: $(cat "$T/full.err")"
done
# COMMAND --help documents each command, as the top-level help says.
for args in "version --help" "cache list --help" "cache clean -h" "profiles --help" "flash --help" "inspect --help"; do
  # shellcheck disable=SC2086 # the words are the arguments
  if "$DIMIMAGE" $args >"$T/h.out" 2>"$T/h.err" && grep -q '^Usage: dimimage' "$T/h.out" && [[ ! -s $T/h.err ]]; then
    ok "$args prints its usage"
  else
    fail "$args: $(head -c 300 "$T/h.err")"
  fi
done
# "help COMMAND" is "COMMAND --help" (git's and systemctl's way), for every
# command the overview lists; "help" alone is the overview.
cmds=$("$DIMIMAGE" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }' | grep -vx help)
[[ $(wc -w <<<"$cmds") -ge 6 ]] && ok "the overview lists the commands: ${cmds//$'\n'/ }" || fail "commands listed: $cmds"
for cmd in $cmds; do
  "$DIMIMAGE" help "$cmd" >"$T/h1.out" 2>"$T/h1.err"
  rc=$?
  "$DIMIMAGE" "$cmd" --help >"$T/h2.out" 2>&1
  if ((rc == 0)) && [[ ! -s $T/h1.err ]] && grep -q "^Usage: dimimage $cmd" "$T/h1.out" && cmp -s "$T/h1.out" "$T/h2.out"; then
    ok "help $cmd prints what $cmd --help prints"
  else
    fail "help $cmd (exit $rc): $(head -c 300 "$T/h1.out" "$T/h1.err")"
  fi
done
"$DIMIMAGE" help >"$T/h1.out" 2>&1 && "$DIMIMAGE" --help >"$T/h2.out" 2>&1 && cmp -s "$T/h1.out" "$T/h2.out" \
  && ok "help alone is the overview" || fail "help alone: $(head -c 300 "$T/h1.out")"
usage_error "help of an unknown command" "^dimimage: error: help: unknown command 'nosuch' \(see \`dimimage --help\`\)$" help nosuch
check_fails "... and nothing on standard output" test -s "$T/.out"
usage_error "help of two commands" "help: takes one command, not also 'flash'" help build flash
# A DIMIMAGE_DATADIR with no profiles/ (a moved checkout) or an empty one:
# the error names the variable and the directory it looked in.
mkdir -p "$T/nodata/profiles"
for dd in "$T/missing-data" "$T/nodata"; do
  why='No such file or directory'
  [[ $dd == "$T/nodata" ]] && why='no \.yml file there'
  where="no profiles in $dd/profiles \(DIMIMAGE_DATADIR=$dd\): $why"
  expect_error "DIMIMAGE_DATADIR=${dd##*/}: profiles" "^dimimage: error: $where$" env DIMIMAGE_DATADIR="$dd" "$DIMIMAGE" profiles
  expect_rc "DIMIMAGE_DATADIR=${dd##*/}: profiles" 66
  expect_error "DIMIMAGE_DATADIR=${dd##*/}: build --role app" "build: unknown role 'app': $where$" \
    env DIMIMAGE_DATADIR="$dd" "$DIMIMAGE" build --role app --base "$img" -o "$T/dd.img"
  expect_rc "DIMIMAGE_DATADIR=${dd##*/}: build --role app" 66
  expect_error "DIMIMAGE_DATADIR=${dd##*/}: build without --role" "--role ROLE is required, but there are no roles: $where" \
    env DIMIMAGE_DATADIR="$dd" "$DIMIMAGE" build --base "$img" -o "$T/dd.img"
  expect_rc "DIMIMAGE_DATADIR=${dd##*/}: build without --role" 64
  check_fails "DIMIMAGE_DATADIR=${dd##*/}: no output" test -e "$T/dd.img"
done
long=$(printf 'x%.0s' {1..5000})
expect_error "a 5000-character file name" "cannot open" "$DIMIMAGE" inspect "$T/$long.img"
expect_rc "a 5000-character file name is a missing input, not an internal error" 66

summary
