#!/usr/bin/env bash
# Secrets do not outlive their use in the heap: every block dimimage frees
# (or leaves behind as realloc moves it) is looked into for the secrets the
# build was given, by tests/tools/freed_secrets.c preloaded into the run.
# A block freed unwiped goes back to the heap for whatever asks next, and
# ends up in a core dump or swap. What a library frees of its own fails too
# where dimimage can keep the secret from it or hand it an allocator that
# wipes (libext2fs's file buffer, the xz and zstd encoders' windows); only
# zlib's, behind libarchive's gzip filter, which takes no allocator, is listed.
source "$(dirname "$0")/../lib.sh"

shim=${FREED_SECRETS_SO:-$TOP/build/tests/freed-secrets.so}
if [[ ! -f $shim ]]; then
  fail "no $shim (make build/tests/freed-secrets.so)"
  summary
  exit
fi
small=$(fixture small --boot-size 64 --cluster 512 --root-size 64) || exit 1
# a root filesystem small enough that its files, .env included, lie in the
# image's last 24 MiB: what the encoders' block buffers still hold at the end.
# For xz that is one of two 12 MiB blocks, and whether the last (8 MiB) one
# overwrote the .env depends on which thread took it: an xz encoder freeing
# unwiped is caught in most runs (3 of 4 here), zstd's in every one.
tiny=$(fixture tiny --boot-size 64 --cluster 512 --root-size 24) || exit 1
tbase=$(fixture trixie --flavour trixie) || exit 1
make_key

PG=Zq8WmXv3Lk9TnRb2Yh7Pc4Jd REDIS=Hx5Nq2Wm8Rt4Vb7Kz3Lp9Yc6 JWT=Ab3De5Gh7Jk9Mn2Pq4St6Vw8Yz1Bc3Df5Gh7Jk9
PW=Kt7Rw2Qz9Xv4Nm6Hb3Jp8Lc5 OO=Tg5Hn8Kq2Lp7Vz3Xc9Bm4Wd6 WIFI='correct horse battery staple 42'
# the Wi-Fi key as it goes into the image: PBKDF2 of the passphrase and SSID
PSK=$(python3 -c 'import hashlib,sys; print(hashlib.pbkdf2_hmac("sha1", sys.argv[1].encode(), b"Home", 4096, 32).hex())' "$WIFI")
printf '%s\n' "$PG" "$REDIS" "$JWT" "$PW" "$OO" "$WIFI" "$PSK" >"$T/secrets"
(umask 077
  printf 'POSTGRES_PASSWORD=%s\nREDIS_PASSWORD="%s"\nJWT_SECRET='"'"'%s'"'"'\n' "$PG" "$REDIS" "$JWT" >"$T/app.env"
  printf 'DIMDIM_API_IMAGE=a/api:1\nDIMDIM_WORKER_IMAGE=a/worker:1\n' >>"$T/app.env"
  printf '%s\n' "$PW" >"$T/pw"
  printf '%s\n' "$WIFI" >"$T/wifi")

# a library's free is the report's line and the backtrace's first frame;
# zlib's is the one dimimage cannot reach (no allocator through libarchive)
zlib='/libz[.]so'

# freed NAME ARGS...: dimimage ARGS under the shim (exit 0, or EXPECT_RC);
# no block of its own freed holding a secret
freed() {
  local what=$1 rc=0
  shift
  rm -f "$T/report"
  FREED_SECRETS_FILE=$T/secrets FREED_SECRETS_REPORT=$T/report LD_PRELOAD=$shim \
    "$DIMIMAGE" "$@" >"$T/out.log" 2>&1 || rc=$?
  if ((rc != ${EXPECT_RC:-0})); then
    fail "$what: exit $rc"; sed 's/^/    /' "$T/out.log" | tail -n 5
    return
  fi
  if grep -q '^program ' "$T/report" 2>/dev/null || grep '^library ' "$T/report" 2>/dev/null | grep -vq "$zlib"; then
    fail "$what: blocks holding a secret freed unwiped:"
    # each with the frames of its backtrace that are dimimage's, as functions
    awk -v zlib="$zlib" '/^(program|library) /{ show = $0 !~ zlib } show' "$T/report" | head -n 40 | while read -r line; do
      if [[ $line =~ \(\+(0x[0-9a-f]+)\) && $line == "$DIMIMAGE"* ]]; then
        echo "      $(addr2line -f -i -p -e "$DIMIMAGE" "$(printf '0x%x' $((BASH_REMATCH[1] - 1)))" 2>/dev/null | head -n 1)"
      elif [[ $line != /* ]]; then
        echo "    $line"
      fi
    done
  else
    ok "$what: no block freed holding a secret"
  fi
  local lib
  lib=$(grep "^library .*$zlib" "$T/report" 2>/dev/null | sed 's/ of a block.* from /: /' | sort | uniq -c | tr -s ' ' | paste -sd ';' -)
  [[ -n $lib ]] && echo "# $what: freed by zlib behind libarchive, which takes no allocator: $lib"
  return 0
}

# the shim itself finds a secret left in a freed block, or the checks below
# could pass for not looking
cat >"$T/leak.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
        char *p = malloc(64);
        strcpy(p, argv[1]);
        free(p);
        return 0;
}
EOF
if cc -o "$T/leak" "$T/leak.c" 2>"$T/cc.err"; then
  FREED_SECRETS_FILE=$T/secrets FREED_SECRETS_REPORT=$T/leak.report LD_PRELOAD=$shim "$T/leak" "x${PG}y"
  grep -q "^program free of a block holding secret 00 from $T/leak+" "$T/leak.report" 2>/dev/null \
    && ok "the shim reports a secret freed unwiped" || fail "the shim missed a secret freed unwiped: $(cat "$T/leak.report" 2>&1)"
else
  fail "cannot compile the shim's self-check: $(cat "$T/cc.err")"
fi

for base in "$small" "$tbase"; do
  flavour=bookworm; [[ $base == "$tbase" ]] && flavour=trixie
  freed "$flavour: build --role app (an .env, a password file, Wi-Fi)" build --role app --base "$base" \
    -o "$T/app.img" --no-cache --env "$T/app.env" --user pi --password-file "$T/pw" --ssh-key "$T/key.pub" \
    --ip 192.168.1.101/24 --gateway 192.168.1.1 --wifi-ssid Home --wifi-psk-file "$T/wifi" --wifi-country GB
  check "$flavour: the build under the shim is a sound image" fsck_image "$T/app.img"
  rcat "$T/app.img" /opt/dimdim-health/.env | grep -qx "POSTGRES_PASSWORD=$PG" \
    && ok "$flavour: the secret the check looks for is in the image" || fail "$flavour: no POSTGRES_PASSWORD=$PG in .env"
  rm -f "$T"/app.img*
done

# compressed outputs: the encoder's buffers hold the image, and so the .env
# (liblzma and libzstd freed them unwiped before they were given an allocator)
for ext in zst xz gz; do
  freed "build --role observability, the password --set, .img.$ext output" build --role observability \
    --base "$tiny" -o "$T/obs.img.$ext" --no-cache --set "OPENOBSERVE_PASSWORD=$OO"
  rm -f "$T"/obs.img*
done

# A fleet: env: values in the fleet file, read with libyaml
cat >"$T/fleet.yml" <<EOF
env: {DIMDIM_API_IMAGE: a/api:1, DIMDIM_WORKER_IMAGE: a/worker:1}
user: pi
ssh_key_files: [key.pub]
hosts:
  - {name: f-app, role: app, address: 10.1.0.11, env: {JWT_SECRET: $JWT, POSTGRES_PASSWORD: "$PG"}}
  - {name: f-obs, role: observability, address: 10.1.0.12, env: {OPENOBSERVE_PASSWORD: '$OO'}}
EOF
chmod 600 "$T/fleet.yml"
freed "a fleet of two, secrets in the fleet file" build --fleet "$T/fleet.yml" --base "$small" -o "$T/fleet" --no-cache
rm -rf "$T/fleet"

# refused: the secrets were read, and the run ends early
printf 'POSTGRES_PASSWORD=%s\nJWT_SECRET=%s\nnot an assignment %s\n' "$PG" "$JWT" "$REDIS" >"$T/bad.env"
chmod 600 "$T/bad.env"
EXPECT_RC=65 freed "a refused .env" build --role app --base "$small" -o "$T/bad.img" --env "$T/bad.env"
printf 'POSTGRES_PASSWORD=%s\nOPENOBSERVE_PASSWORD=password\n' "$PG" >"$T/weak.env"
chmod 600 "$T/weak.env"
EXPECT_RC=65 freed "a weak secret refused" build --role app --base "$small" -o "$T/bad.img" --env "$T/weak.env" \
  --set DIMDIM_API_IMAGE=a/b --set DIMDIM_WORKER_IMAGE=a/c

summary
