#!/usr/bin/env bash
# Issue 7: examples/fleet.yml builds both Pis of the deployment guide, wired
# together; bad references and undersized models are refused.
source "$(dirname "$0")/../lib.sh"
make_key
export SOURCE_DATE_EPOCH=1764547200
base=$(fixture trixie --flavour trixie)
OOPW='Kx9-qu4ntum-obs-T0ken'
sed "s|\[id_ed25519.pub\]|[$T/key.pub]|" "$TOP/examples/fleet.yml" > "$T/fleet.yml"
chmod 644 "$T/fleet.yml" # every user may read it; it holds no secret
common=(--set OPENOBSERVE_PASSWORD="$OOPW" --set DIMDIM_API_IMAGE=example/api:1 --set DIMDIM_WORKER_IMAGE=example/worker:1)

check "example fleet builds" "$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$base" -o "$T/fleet" --quiet "${common[@]}"
app=$T/fleet/dimdim-app.img obs=$T/fleet/dimdim-obs.img
# "-o fleet/", as the README writes it: paths said as "fleet/NAME", not "fleet//NAME".
"$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$base" -o "$T/slash/" "${common[@]}" >"$T/slash.log" 2>&1
grep -q "^Wrote $T/slash/dimdim-app.img$" "$T/slash.log" && ! grep -q '//' "$T/slash.log" \
  && ok "-o DIR/: no '//' in what the fleet says" || fail "-o DIR/: $(grep -m2 "$T/slash" "$T/slash.log")"
check_fails "a fleet file every user may read, with no secret in it: no warning" grep -q 'holds secrets' "$T/slash.log"
rm -rf "$T/slash"
for img in "$app" "$obs"; do
  check "$(basename "$img"): fsck clean" fsck_image "$img"
  hosts=$(rcat "$img" /etc/hosts)
  grep -Eq '^192\.168\.1\.101[[:space:]]+dimdim-app$' <<<"$hosts" && grep -Eq '^192\.168\.1\.102[[:space:]]+dimdim-obs$' <<<"$hosts" \
    && ok "$(basename "$img"): /etc/hosts lists both hosts" || fail "$(basename "$img"): /etc/hosts: $hosts"
done
rcat "$app" /opt/dimdim-health/.env | grep -qx "OPENOBSERVE_URL=http://192.168.1.102:5080" \
  && ok "app .env: OPENOBSERVE_URL=http://192.168.1.102:5080" || fail "app OPENOBSERVE_URL: $(rcat "$app" /opt/dimdim-health/.env | grep OPENOBSERVE_URL)"
a=$(rcat "$app" /opt/dimdim-health/.env | grep '^OPENOBSERVE_PASSWORD=')
o=$(rcat "$obs" /opt/dimdim-health/.env | grep '^OPENOBSERVE_PASSWORD=')
[[ -n $a && $a == "$o" ]] && ok "app ships logs with the observability host's credentials" || fail "credentials differ"
[[ $(rcat "$app" /etc/hostname) == dimdim-app && $(rcat "$obs" /etc/hostname) == dimdim-obs ]] && ok "hostnames from the fleet" || fail "hostnames"
rcat "$app" /etc/NetworkManager/system-connections/dimdim-eth.nmconnection | grep -q '^address1=192.168.1.101/24,192.168.1.1$' \
  && ok "app static address from the fleet" || fail "app address"
[[ $(stat -c %a "$T/fleet/secrets.env") == 600 ]] && grep -q '^DB_PASSWORD=' "$T/fleet/secrets.env" \
  && ok "secrets.env 0600 with the generated DB_PASSWORD" || fail "secrets.env"
[[ $(grep -c '^DB_PASSWORD=' "$T/fleet/secrets.env") == 1 ]] && ok "each generated secret once" || fail "secrets repeated"
# generated once, before the base is read, and taken over by the build
[[ $(sed -n 's/^DB_PASSWORD=//p' "$T/fleet/secrets.env" | tr -d "'") == \
   "$(rcat "$app" /opt/dimdim-health/.env | sed -n 's/^DB_PASSWORD=//p' | tr -d "'")" ]] \
  && ok "secrets.env holds the DB_PASSWORD the app's image has" || fail "secrets.env's DB_PASSWORD is not the image's"
rcat "$app" /etc/dimimage/manifest.json | grep -q '"origin": "derived"' && ok "manifest marks derived keys" || fail "manifest derived"
# manifest_env IMG KEY: KEY's entry in IMG's manifest, as sorted JSON
manifest_env() {
  rcat "$1" /etc/dimimage/manifest.json | python3 -c '
import json, sys
print(json.dumps({e["key"]: e for e in json.load(sys.stdin)["environment"]}[sys.argv[1]], sort_keys=True))' "$2"
}
got=$(manifest_env "$app" DIMDIM_API_IMAGE)
[[ $got == '{"key": "DIMDIM_API_IMAGE", "origin": "set"}' ]] \
  && ok "manifest: a --set value names no file" || fail "manifest: --set origin: $got"
# The last host built takes the shared base over (renamed, not copied): no
# hidden base or temporary is left, and each image has only its own edits.
left=$(find "$T/fleet" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')
[[ $left == "dimdim-app.img dimdim-app.img.bmap dimdim-app.img.sha256 dimdim-obs.img dimdim-obs.img.bmap dimdim-obs.img.sha256 secrets.env " ]] \
  && ok "fleet directory holds the images and nothing hidden" || fail "fleet directory: $left"
(cd "$T/fleet" && sha256sum -c --quiet dimdim-app.img.sha256 dimdim-obs.img.sha256) && ok "both images match their .sha256" || fail "fleet .sha256"
# Built again without --force: what is in DIR is refused before the base is
# read (a real base takes a build's time to read), and left as it was.
sums=$(cd "$T/fleet" && sha256sum -- *)
again() { "$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$base" -o "$T/fleet" "${common[@]}" >"$T/again.log" 2>&1; }
rc=0; again || rc=$?
[[ $rc == 73 ]] && grep -q "^dimimage: error: $T/fleet/dimdim-[a-z]*\.img: output exists; use --force to overwrite$" "$T/again.log" \
  && ok "built again without --force: an image there is refused (73)" || fail "again without --force: rc=$rc $(head -c 300 "$T/again.log")"
check_fails "... before the base is read" grep -q '^Reading\|^== ' "$T/again.log"
mkdir "$T/keep" && mv "$T/fleet"/*.img* "$T/keep/"
rc=0; again || rc=$?
[[ $rc == 73 ]] && grep -q "^dimimage: error: $T/fleet/secrets.env: exists; use --force to overwrite$" "$T/again.log" \
  && ok "... and the secrets.env of the fleet before, once its images are gone" || fail "again, secrets.env: rc=$rc $(head -c 300 "$T/again.log")"
check_fails "... before the base is read" grep -q '^Reading\|^== ' "$T/again.log"
mv "$T/keep"/* "$T/fleet/" && rmdir "$T/keep"
[[ $(cd "$T/fleet" && sha256sum -- *) == "$sums" ]] && ok "... and DIR left as it was" || fail "a refused fleet changed DIR"
# Given back as --env, DIR/secrets.env is refused before anything is
# read, not removed by a fleet that now generates nothing.
sums=$(cd "$T/fleet" && sha256sum -- *)
expect_error "--env DIR/secrets.env refused: the rebuild would remove it" \
  "fleet/secrets\.env: --env names the fleet's .*secrets\.env, which this build replaces or removes; move it elsewhere" \
  "$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$base" -o "$T/fleet" --force --env "$T/fleet/secrets.env" "${common[@]}"
check_fails "... before the base is read" grep -q '^Reading\|^== ' "$T/.out" "$T/.err"
[[ $(cd "$T/fleet" && sha256sum -- *) == "$sums" ]] && ok "... and DIR left as it was" || fail "a refused --env secrets.env changed DIR"
# Rebuilt with every secret given: the old secrets.env held the replaced
# images' secrets, so it goes.
gen=$(sed -n 's/^DB_PASSWORD=//p' "$T/fleet/secrets.env" | tr -d "'")
check "fleet rebuilt with --force and every secret given" "$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$base" \
  -o "$T/fleet" --quiet --force "${common[@]}" --set DB_PASSWORD="$gen"
[[ ! -e $T/fleet/secrets.env ]] && ok "the previous fleet's secrets.env removed" || fail "a stale secrets.env left"
[[ $(stat -c %i "$app") != $(stat -c %i "$obs") && $(stat -c %h "$app") == 1 && $(stat -c %h "$obs") == 1 ]] \
  && ok "two separate image files" || fail "images share an inode"

# The example as the docs run it: README.md's fleet commands, word for
# word but for the base and the path into the checkout, run with a
# generated key as ~/.ssh/id_ed25519.pub in a directory holding what they
# expect from the user (the password in obs.env, the application source as
# an archive).  docs/fleet.md shows the same commands.
doc_cmds() {
  awk '/^```sh/ { b = 1; s = ""; next } /^```/ { if (b && s ~ /--fleet/) printf "%s", s; b = 0; next }
       b && !/^#/ { s = s $0 "\n" }' "$1"
}
cmds=$(doc_cmds "$TOP/README.md")
[[ -n $cmds && $cmds == "$(doc_cmds "$TOP/docs/fleet.md")" ]] && ok "README.md and docs/fleet.md show the same fleet commands" \
  || fail "fleet commands differ: README.md: $cmds; docs/fleet.md: $(doc_cmds "$TOP/docs/fleet.md")"
# (as variables the commands expand: the paths may hold spaces)
# shellcheck disable=SC2016
cmds=${cmds//examples\/fleet.yml/'"$EX_FLEET"'}
# shellcheck disable=SC2016
cmds=${cmds//raspios-trixie-arm64-lite.img.xz/'"$EX_BASE"'}
# shellcheck disable=SC2016
cmds=${cmds//dimimage build/'"$DIMIMAGE"' build}
mkdir -p "$T/ex/src/deploy" "$T/ex/src/src" "$T/ex/home/.ssh"
cp "$T/key.pub" "$T/ex/home/.ssh/id_ed25519.pub"
echo 'FROM scratch' >"$T/ex/src/deploy/Dockerfile.api"
echo 'FROM scratch' >"$T/ex/src/deploy/Dockerfile.worker"
echo 'fn main() {}' >"$T/ex/src/src/main.rs"
tar -C "$T/ex" -czf "$T/ex/dimdim-health.tar.gz" --transform 's,^src,dimdim-health,' src
printf 'OPENOBSERVE_PASSWORD=%s\n' "$OOPW" >"$T/ex/obs.env"
run_example() { (cd "$T/ex" && HOME=$T/ex/home DIMIMAGE=$DIMIMAGE EX_FLEET=$TOP/examples/fleet.yml EX_BASE=$base bash -euc "$cmds"); }
check "the example fleet builds as documented" run_example
if [[ -f $T/ex/fleet/dimdim-app.img && -f $T/ex/fleet/dimdim-obs.img ]]; then
  ok "the example: both images"
  rcat "$T/ex/fleet/dimdim-app.img" /home/pi/.ssh/authorized_keys | grep -qF "$(cut -d' ' -f2 "$T/key.pub")" \
    && ok "the example: the key copied beside the fleet file authorized" || fail "the example: key not authorized"
else
  fail "the example: $(ls -A "$T/ex/fleet" 2>&1)"
fi
# The source from a pipe: read once for the fleet (each host's check and
# build read it again before, and found the pipe empty), and the app's
# image has it.  A pipe, not '<': /dev/stdin opened on a file reads it anew.
# shellcheck disable=SC2002
if cat "$T/ex/dimdim-health.tar.gz" | "$DIMIMAGE" build --fleet "$T/fleet.yml" --base "$base" -o "$T/ex/piped" \
    --quiet --set OPENOBSERVE_PASSWORD="$OOPW" --source /dev/stdin >"$T/ex/piped.log" 2>&1; then
  check "--source /dev/stdin in a fleet: the app's image has the source" \
    grep -qx 'FROM scratch' <(rcat "$T/ex/piped/dimdim-app.img" /opt/dimdim-health/deploy/Dockerfile.api)
else
  fail "a fleet with --source /dev/stdin: $(cat "$T/ex/piped.log")"
fi
rm -rf "$T/ex"

# credentials given only to the observability host reach the app
cat > "$T/wired.yml" <<YAML
user: pi
ssh_key_files: [$T/key.pub]
env: {DIMDIM_API_IMAGE: example/api:1, DIMDIM_WORKER_IMAGE: example/worker:1}
hosts:
  - {name: pi-app, role: app, address: 10.1.0.11}
  - {name: pi-obs, role: observability, address: 10.1.0.12, env: {OPENOBSERVE_PASSWORD: "$OOPW", OPENOBSERVE_EMAIL: ops@example.org}}
YAML
"$DIMIMAGE" build --fleet "$T/wired.yml" --base "$base" -o "$T/wired" --verbose >"$T/wired.log" 2>&1 \
  && ok "fleet with per-host credentials builds" || { fail "fleet with per-host credentials builds"; cat "$T/wired.log"; }
# The base is decoded into two files at once: the first host built (the
# observability host: app waits for its values) takes one over, the last
# host the other, and nothing is copied.
[[ $(grep -c 'took over the fleet.s decompressed base' "$T/wired.log") == 2 ]] \
  && grep -q 'pi-obs.img: took over' "$T/wired.log" && grep -q 'pi-app.img: took over' "$T/wired.log" \
  && ! grep -q 'copied the fleet' "$T/wired.log" \
  && ok "two hosts: each takes over a copy decoded beside the other, none is copied" \
  || fail "base take-over: $(grep -c 'took over' "$T/wired.log") taken over, $(grep -c 'copied the fleet' "$T/wired.log") copied"
# --verbose: each host's phases once (its build's), not again for the check
# before the base is read, which says its time in one line of its own
[[ $(grep -c 'debug: phase inputs:' "$T/wired.log") == 2 ]] \
  && [[ $(grep -c "debug: every host's inputs and plan checked:" "$T/wired.log") == 1 ]] \
  && ok "--verbose: each host's phase timings once, and the check's in one line" \
  || fail "--verbose: $(grep -c 'phase inputs' "$T/wired.log") 'phase inputs' lines, $(grep -c 'plan checked' "$T/wired.log") for the check"
# the fleet file's env: values name it in the manifest, --set ones do not
got=$(manifest_env "$T/wired/pi-app.img" DIMDIM_API_IMAGE)
[[ $got == '{"file": "wired.yml", "key": "DIMDIM_API_IMAGE", "origin": "set"}' ]] \
  && ok "manifest: a fleet file's env: value is origin set, file wired.yml" || fail "manifest: fleet env: origins: $got"
env_app=$(rcat "$T/wired/pi-app.img" /opt/dimdim-health/.env)
grep -qx "OPENOBSERVE_PASSWORD=$OOPW" <<<"$env_app" && grep -qx "OPENOBSERVE_EMAIL=ops@example.org" <<<"$env_app" \
  && grep -qx "OPENOBSERVE_URL=http://10.1.0.12:5080" <<<"$env_app" \
  && ok "app derives URL and credentials from the observability host" || fail "derived wiring: $(grep OPENOBSERVE <<<"$env_app" | cut -d= -f1 | tr '\n' ' ')"

# Shared values go only where they are used: the app's database password,
# from a fleet-wide env file, is not written into the OpenObserve Pi's image
# (nor the app's image names); a shared key no host uses is said once.
shpw=Sh4red-db-pass-$$-never-on-obs
printf 'DB_PASSWORD=%s\nCOMPOSE_PARALLEL_LIMIT=2\n' "$shpw" >"$T/common.env"
chmod 644 "$T/common.env" # every user may read it: said once, not per host
cat > "$T/shared.yml" <<YAML
user: pi
ssh_key_files: [$T/key.pub]
env: {DIMDIM_API_IMAGE: example/api:1, DIMDIM_WORKER_IMAGE: example/worker:1, NOT_A_STACK_VAR: x, OPENOBSERVE_PASWORD: y}
env_files: [common.env]
source: appsrc
hosts:
  - {name: pi-app, role: app, address: 10.1.0.11}
  - {name: pi-obs, role: observability, address: 10.1.0.12, env: {OPENOBSERVE_PASSWORD: "$OOPW", STRAY_OBS_VAR: y, OPENOBSERVE_IMAGE: ~}}
YAML
chmod 644 "$T/shared.yml" # every user may read it: said once, not per host
mkdir -p "$T/appsrc/deploy"
printf '[package]\nname = "marker-app-source"\n' >"$T/appsrc/Cargo.toml"
printf 'FROM scratch\n' | tee "$T/appsrc/deploy/Dockerfile.api" >"$T/appsrc/deploy/Dockerfile.worker"
if "$DIMIMAGE" build --fleet "$T/shared.yml" --base "$base" -o "$T/shared" >"$T/shared.log" 2>&1; then
  ok "fleet with shared env and env_files builds"
  check "shared env file: the app gets DB_PASSWORD" grep -qx "DB_PASSWORD=$shpw" <(rcat "$T/shared/pi-app.img" /opt/dimdim-health/.env)
  env_obs=$(rcat "$T/shared/pi-obs.img" /opt/dimdim-health/.env)
  grep -q '^OPENOBSERVE_PASSWORD=' <<<"$env_obs" && ok "observability .env read back" || fail "observability .env: unreadable"
  check_fails "shared env file: the observability host's .env has no DB_PASSWORD" grep -q '^DB_PASSWORD=' <<<"$env_obs"
  check_fails "shared env: the observability host's .env has no DIMDIM_API_IMAGE" grep -q '^DIMDIM_API_IMAGE=' <<<"$env_obs"
  check_fails "the app's password is nowhere in the observability image" grep -qaF "$shpw" "$T/shared/pi-obs.img"
  check "the fleet's source goes to the app" grep -q marker-app-source <(rcat "$T/shared/pi-app.img" /opt/dimdim-health/Cargo.toml)
  check_fails "... and not to the observability host, which builds nothing" \
    grep -q marker-app-source <(rcat "$T/shared/pi-obs.img" /opt/dimdim-health/Cargo.toml)
  check "a host's own unused key is still kept and warned" grep -q '^STRAY_OBS_VAR=' <<<"$env_obs"
  check "Compose's own settings from a shared file reach every host" grep -qx "COMPOSE_PARALLEL_LIMIT=2" <<<"$env_obs"
  check "KEY: ~ is YAML's null, an empty value" grep -qxE "OPENOBSERVE_IMAGE=('')?" <<<"$env_obs"
  check "... with its file and line" grep -q "shared.yml:8: .*STRAY_OBS_VAR is not used by role 'observability'" "$T/shared.log"
  [[ $(grep -c STRAY_OBS_VAR "$T/shared.log") == 1 ]] && ok "... said once" || fail "STRAY_OBS_VAR said $(grep -c STRAY_OBS_VAR "$T/shared.log") times"
  check "a shared key no host uses is warned about once, at its line" \
    grep -q "shared.yml:3: .*NOT_A_STACK_VAR is used by no host's role" "$T/shared.log"
  [[ $(grep -c NOT_A_STACK_VAR "$T/shared.log") == 1 ]] && ok "... and only once" || fail "NOT_A_STACK_VAR said $(grep -c NOT_A_STACK_VAR "$T/shared.log") times"
  check_fails "no warning for shared keys one host uses" grep -qE 'DB_PASSWORD|DIMDIM_API_IMAGE' "$T/shared.log"
  [[ $(grep -c 'common.env: holds secrets' "$T/shared.log") == 1 ]] &&
    grep -qxF "dimimage: warning: $T/common.env: holds secrets, yet every user may read it (mode 0644): chmod 600 $T/common.env" "$T/shared.log" \
    && ok "an env_files file every user may read: one warning for the fleet, with the chmod" \
    || fail "env_files 0644: $(grep 'holds secrets' "$T/shared.log")"
  # the fleet file itself gives pi-obs its OPENOBSERVE_PASSWORD
  [[ $(grep -c 'shared.yml: holds secrets' "$T/shared.log") == 1 ]] &&
    grep -qxF "dimimage: warning: $T/shared.yml: holds secrets, yet every user may read it (mode 0644): chmod 600 $T/shared.yml" "$T/shared.log" \
    && ok "a fleet file with a secret in its env: every user may read: one warning, with the chmod" \
    || fail "fleet file 0644 with a secret: $(grep 'holds secrets' "$T/shared.log")"
  [[ $(grep -c 'OPENOBSERVE_PASWORD' "$T/shared.log") == 1 ]] \
    && grep -q "shared.yml:3: OPENOBSERVE_PASWORD is used by no host's role; did you mean OPENOBSERVE_PASSWORD?" "$T/shared.log" \
    && ok "a shared typo: said once, with the name meant" || fail "shared typo: $(grep OPENOBSERVE_PASWORD "$T/shared.log")"
else
  fail "fleet with shared env and env_files builds"; sed 's/^/    /' "$T/shared.log"
fi
rm -rf "$T/shared"

# Secrets from a pipe (--env /dev/stdin, as build's usage error suggests):
# a pipe gives its text once, and every host (and the check before the
# base is read) must see it.  A fleet of one: the given DB_PASSWORD, not a
# generated one nobody was told of.
pipepw=Piped-db-pass-$$-given
cat > "$T/piped1.yml" <<YAML
hosts:
  - {name: solo, role: app-standalone, address: 10.1.0.21}
YAML
if printf 'DB_PASSWORD=%s\n' "$pipepw" | "$DIMIMAGE" build --fleet "$T/piped1.yml" --base "$base" -o "$T/piped1" --quiet \
    --set DIMDIM_API_IMAGE=example/api:1 --set DIMDIM_WORKER_IMAGE=example/worker:1 --env /dev/stdin >"$T/piped1.log" 2>&1; then
  check "a fleet of one: DB_PASSWORD from --env /dev/stdin is the image's" \
    grep -qx "DB_PASSWORD=$pipepw" <(rcat "$T/piped1/solo.img" /opt/dimdim-health/.env)
  [[ ! -e $T/piped1/secrets.env ]] && ok "... and nothing generated" || fail "a fleet of one generated a secret over a piped one"
else
  fail "a fleet of one with --env /dev/stdin: $(cat "$T/piped1.log")"
fi
# Two hosts, each needing a value of the one pipe.
cat > "$T/piped2.yml" <<YAML
hosts:
  - {name: pa, role: app-standalone, address: 10.1.0.21}
  - {name: po, role: observability, address: 10.1.0.22}
YAML
if printf 'DB_PASSWORD=%s\nOPENOBSERVE_PASSWORD=%s\n' "$pipepw" "$OOPW" | "$DIMIMAGE" build --fleet "$T/piped2.yml" \
    --base "$base" -o "$T/piped2" --quiet --set DIMDIM_API_IMAGE=example/api:1 --set DIMDIM_WORKER_IMAGE=example/worker:1 \
    --env /dev/stdin >"$T/piped2.log" 2>&1; then
  check "two hosts, one pipe: the app's DB_PASSWORD" grep -qx "DB_PASSWORD=$pipepw" <(rcat "$T/piped2/pa.img" /opt/dimdim-health/.env)
  check "... and the observability host's OPENOBSERVE_PASSWORD" \
    grep -qx "OPENOBSERVE_PASSWORD=$OOPW" <(rcat "$T/piped2/po.img" /opt/dimdim-health/.env)
else
  fail "two hosts with --env /dev/stdin: $(cat "$T/piped2.log")"
fi
# A password, a key and a Wi-Fi passphrase every host shares, from pipes:
# read once for the fleet, not once per host (the second read found the
# pipe empty).
want_psk=$(python3 -c 'import hashlib; print(hashlib.pbkdf2_hmac("sha1", b"piped wifi passphrase", b"Fleet Wifi", 4096, 32).hex())')
kf=/etc/NetworkManager/system-connections/dimdim-wifi.nmconnection
if printf '%s\n' "$pipepw" | "$DIMIMAGE" build --fleet "$T/piped2.yml" --base "$base" -o "$T/piped3" --quiet \
    --set DIMDIM_API_IMAGE=example/api:1 --set DIMDIM_WORKER_IMAGE=example/worker:1 --set OPENOBSERVE_PASSWORD="$OOPW" \
    --user pi --password-file /dev/stdin --ssh-key <(cat "$T/key.pub") \
    --wifi-ssid 'Fleet Wifi' --wifi-country GB --wifi-psk-file <(echo 'piped wifi passphrase') >"$T/piped3.log" 2>&1; then
  for h in pa po; do
    check "a piped --password-file, --ssh-key and --wifi-psk-file, both hosts: $h's password" \
      grep -q '^pi:[$]y[$]' <(rcat "$T/piped3/$h.img" /etc/shadow)
    check "... and $h's key" grep -qF "$(cut -d' ' -f2 "$T/key.pub")" <(bcat "$T/piped3/$h.img" /user-data)
    check "... and $h's Wi-Fi key" grep -qx "psk=$want_psk" <(rcat "$T/piped3/$h.img" "$kf")
  done
else
  fail "a fleet with --password-file /dev/stdin, --ssh-key <(...) and --wifi-psk-file <(...): $(cat "$T/piped3.log")"
fi
# ... and with each host's own SSID: its key derived from the one passphrase
# with that SSID.
cat > "$T/piped4.yml" <<YAML
hosts:
  - {name: pa, role: app-standalone, address: 10.1.0.21, wifi: {ssid: Upstairs}}
  - {name: po, role: observability, address: 10.1.0.22, wifi: {ssid: Downstairs}}
YAML
if "$DIMIMAGE" build --fleet "$T/piped4.yml" --base "$base" -o "$T/piped4" --quiet \
    --set DIMDIM_API_IMAGE=example/api:1 --set DIMDIM_WORKER_IMAGE=example/worker:1 --set OPENOBSERVE_PASSWORD="$OOPW" \
    --wifi-country GB --wifi-psk-file <(echo 'piped wifi passphrase') >"$T/piped4.log" 2>&1; then
  for hs in pa:Upstairs po:Downstairs; do
    want_psk=$(python3 -c 'import hashlib, sys; print(hashlib.pbkdf2_hmac("sha1", b"piped wifi passphrase", sys.argv[1].encode(), 4096, 32).hex())' "${hs#*:}")
    check "one piped passphrase, each host's SSID: ${hs%%:*}'s key is its SSID's" \
      grep -qx "psk=$want_psk" <(rcat "$T/piped4/${hs%%:*}.img" "$kf")
  done
else
  fail "a fleet with per-host SSIDs and --wifi-psk-file <(...): $(cat "$T/piped4.log")"
fi
rm -rf "$T/piped1" "$T/piped2" "$T/piped3" "$T/piped4"

# --dry-run: each host's payload printed; no base read, nothing written
"$DIMIMAGE" build --fleet "$T/fleet.yml" --dry-run --base "$base" -o "$T/dry" "${common[@]}" >"$T/dry.out" 2>"$T/dry.err" \
  && ok "fleet --dry-run succeeds" || { fail "fleet --dry-run"; cat "$T/dry.err"; }
[[ ! -e $T/dry ]] && ok "fleet --dry-run writes nothing, not even DIR" || fail "fleet --dry-run wrote: $(ls -A "$T/dry")"
[[ $(grep -c '^root file /etc/hostname ' "$T/dry.out") == 2 ]] && ok "fleet --dry-run prints both hosts' payloads" \
  || fail "fleet --dry-run payloads: $(grep -c '^root file /etc/hostname ' "$T/dry.out")"
grep -qE 'Reading|written|saved' "$T/dry.err" && fail "fleet --dry-run claims work: $(cat "$T/dry.err")" \
  || ok "fleet --dry-run reads no base and claims no writes"
# ... but it opens the base: a missing one is said, as a real run would
expect_error "fleet --dry-run of a missing base" "nope.img.xz: cannot open: No such file" \
  "$DIMIMAGE" build --fleet "$T/fleet.yml" --dry-run --base "$T/nope.img.xz" -o "$T/dry" "${common[@]}"
expect_error "--dry-run of a text file as base" "fleet.yml: this is not a disk image" \
  "$DIMIMAGE" build --role observability --hostname x --set "OPENOBSERVE_PASSWORD=$OOPW" --dry-run \
  --base "$T/fleet.yml" -o "$T/dry.img"
[[ ! -e $T/dry && ! -e $T/dry.img ]] && ok "refused dry runs wrote nothing" || fail "refused dry runs wrote something"

# fleet_refused NAME WHAT PATTERN YAML: the fleet file $T/NAME.yml holding YAML
# is refused with one error matching PATTERN.
fleet_refused() {
  printf '%s\n' "$4" >"$T/$1.yml"
  expect_error "$2" "$3" "$DIMIMAGE" build --fleet "$T/$1.yml" --base "$base" -o "$T/bad" "${common[@]}"
}
# a fleet whose app has no observability host to ship logs to
fleet_refused noobs "missing observability host named" "role 'observability'" \
"user: pi
ssh_key_files: [$T/key.pub]
hosts:
  - {name: lonely, role: app, address: 10.0.0.5}"
fleet_refused badrole "unknown role named with its line and the roles there are" "badrole\.yml:2: host x: unknown role 'databass'; available roles: .*observability" \
"hosts:
  - {name: x, role: databass, address: 10.0.0.5}"
expect_rc "an unknown role in a fleet file is bad input data" 65
fleet_refused small "role all refused on a Pi 3B+ with the reason" "pi3b\+.*cannot run role 'all'" \
"hosts:
  - {name: tiny, role: all, address: 10.0.0.5, model: pi3b+}"
cat > "$T/tight.yml" <<YAML
user: pi
ssh_key_files: [$T/key.pub]
hosts:
  - {name: snug, role: observability, address: 10.0.0.6, model: pi4-1gb}
YAML
"$DIMIMAGE" build --fleet "$T/tight.yml" --base "$base" -o "$T/tight" "${common[@]}" >"$T/tight.log" 2>&1
grep -q 'warning:.*tight fit' "$T/tight.log" && [[ -f $T/tight/snug.img ]] && ok "a tight fit is warned, still built" || { fail "tight fit"; cat "$T/tight.log"; }
fleet_refused dup "duplicate address refused" "same address" \
"hosts:
  - {name: a, role: observability, address: 10.0.0.5}
  - {name: b, role: observability, address: 10.0.0.5}"
fleet_refused dupcase "host names differing only in case refused" "dupcase\.yml:3: host name DimDim-Obs is used twice \(names ignore case\)" \
"hosts:
  - {name: dimdim-obs, role: observability, address: 10.0.0.5}
  - {name: DimDim-Obs, role: observability, address: 10.0.0.6}"
# An app wired to "the" observability host, with two of them: not a guess.
fleet_refused twoobs "an app with two observability hosts to choose from refused" "twoobs\.yml:4: host app \(role app\): OPENOBSERVE_URL needs the host with role 'observability', and the fleet has more than one \(obs-b" \
"hosts:
  - {name: app, role: app, address: 10.0.0.4}
  - {name: obs-a, role: observability, address: 10.0.0.5}
  - {name: obs-b, role: observability, address: 10.0.0.6}"
# Three hosts: each commit runs beside the next host's, two at a time; every
# image must still be whole, with its own hostname, and nothing hidden left.
cat > "$T/three.yml" <<YAML
format: img.zst
hosts:
  - {name: obs-1, role: observability, address: 10.0.0.7, model: pi5-8gb, env: {OPENOBSERVE_PASSWORD: $OOPW}}
  - {name: obs-2, role: observability, address: 10.0.0.8, model: CM4-4GB, env: {OPENOBSERVE_PASSWORD: $OOPW}}
  - {name: obs-3, role: observability, address: 10.0.0.9, env: {OPENOBSERVE_PASSWORD: $OOPW}}
YAML
check "fleet of three (img.zst) builds" "$DIMIMAGE" build --fleet "$T/three.yml" --base "$base" -o "$T/three" --verbose \
  --imager-json "$T/three.json"
cp "$T/.check.out" "$T/three.log"
grep -q 'obs-1.img.zst: took over' "$T/three.log" && grep -q 'obs-2.img.zst: copied the fleet' "$T/three.log" \
  && grep -q 'obs-3.img.zst: took over' "$T/three.log" \
  && ok "three hosts: the first and the last take a decoded copy over, the one between copies the base" \
  || fail "three hosts: $(grep -E 'took over|copied the fleet' "$T/three.log")"
raw_sums=()
for n in 1 2 3; do
  zstd -q -d -c "$T/three/obs-$n.img.zst" >"$T/three/obs-$n.img"
  raw_sums+=("$(sha256sum <"$T/three/obs-$n.img" | cut -c1-64)")
  check "obs-$n: fsck clean" fsck_image "$T/three/obs-$n.img"
  [[ $(rcat "$T/three/obs-$n.img" /etc/hostname) == "obs-$n" ]] && ok "obs-$n: its own hostname" || fail "obs-$n: hostname"
  rm -f "$T/three/obs-$n.img"
done
(cd "$T/three" && sha256sum -c --quiet obs-1.img.zst.sha256 obs-2.img.zst.sha256 obs-3.img.zst.sha256) \
  && ok "fleet of three: every image matches its .sha256" || fail "fleet of three: .sha256"
# --imager-json with a fleet: one os_list entry per host, in the file's order,
# offered to the host's model only (to the default three without one)
check "fleet of three: Imager list of every host" python3 - "$T/three.json" "$T/three" "${raw_sums[@]}" <<'PY'
import hashlib, json, os, pathlib, sys
entries = json.load(open(sys.argv[1]))["os_list"]
assert len(entries) == 3, len(entries)
for n, (e, raw) in enumerate(zip(entries, sys.argv[3:]), 1):
    img = os.path.realpath(os.path.join(sys.argv[2], "obs-%d.img.zst" % n))
    assert e["name"] == "obs-%d (observability)" % n, e["name"]
    url = pathlib.Path(img).as_uri()  # percent-encoded: a space is %20
    assert e["url"] == url, e["url"]
    assert e["bmap_url"] == url + ".bmap", e["bmap_url"]
    assert e["image_download_size"] == os.path.getsize(img)
    assert e["image_download_sha256"] == hashlib.sha256(open(img, "rb").read()).hexdigest()
    assert e["extract_sha256"] == raw, (e["extract_sha256"], raw)
    assert e["init_format"] == "none"
    assert e["devices"] == [["pi5-64bit"], ["pi4-64bit"], ["pi5-64bit", "pi4-64bit", "pi3-64bit"]][n - 1], e["devices"]
PY
left=$(find "$T/three" -mindepth 1 -name '.*' -printf '%f ')
[[ -z $left ]] && ok "fleet of three: nothing hidden left" || fail "fleet of three: left $left"
rm -rf "$T/three" "$T/three.json"

# Every host's settings are checked before the base is read: with a base
# that cannot be decoded, only a refused setting can be the error, and DIR
# is not created.  Each error names the fleet file and the host's line.
printf '\xfd7zXZ\x00\x00\x04not xz data at all' >"$T/undecodable.img.xz"
settings_refused() { # WHAT PATTERN YAML
  printf '%s\n' "$3" >"$T/set.yml"
  expect_error "$1 refused before the base is read" "$2" \
    "$DIMIMAGE" build --fleet "$T/set.yml" --base "$T/undecodable.img.xz" -o "$T/set" "${common[@]}"
  grep -q 'Reading' "$T/.err" && fail "$1: the base was read first" || ok "$1: the base not read"
  [[ ! -e $T/set ]] && ok "$1: no directory" || fail "$1: $T/set created"
}
settings_refused "a shared invalid user name, at its line" "set\.yml:1: host pi-b: invalid user name 'Pi'" \
"user: Pi
hosts:
  - {name: pi-a, role: observability, address: 10.0.0.5, user: pi}
  - {name: pi-b, role: observability, address: 10.0.0.6}"
settings_refused "a missing ssh_key_files entry" "set\.yml:4: ssh_key_files: cannot read .*/nokey\.pub: No such file" \
"user: pi
hosts:
  - {name: pi-a, role: observability, address: 10.0.0.5}
  - {name: pi-b, role: observability, address: 10.0.0.6, ssh_key_files: [nokey.pub]}"
settings_refused "a host's invalid time zone, at its line" "set\.yml:6: host pi-a: invalid time zone 'Mars Base'" \
"user: pi
hosts:
  - name: pi-a
    role: observability
    address: 10.0.0.5
    timezone: Mars Base"
settings_refused "network.prefix given as a netmask: the prefix it stands for named" \
  "set\.yml:2: network\.prefix is the prefix length, not the netmask: prefix: 22 \(255\.255\.252\.0 is /22\)" \
"network:
  prefix: 255.255.252.0
hosts:
  - {name: pi-a, role: observability, address: 10.0.0.5}"
settings_refused "a host's address with a prefix: the fleet's is network.prefix" \
  "set\.yml:2: host pi-a: address '10\.0\.0\.5/255\.255\.255\.0': give the address alone; the prefix length of every host's is network\.prefix" \
"hosts:
  - {name: pi-a, role: observability, address: 10.0.0.5/255.255.255.0}"
settings_refused "network.prefix 0, at its line" "set\.yml:2: network\.prefix must be 1 to 32" \
"network:
  prefix: 0
hosts:
  - {name: pi-a, role: observability, address: 10.0.0.5}"
settings_refused "a shared gateway outside a host's subnet, at network.gateway's line" \
  "set\.yml:3: host pi-a: gateway 192\.168\.9\.1 is outside the Pi's subnet" \
"network:
  prefix: 24
  gateway: 192.168.9.1
hosts:
  - {name: pi-a, role: observability, address: 10.0.0.5}"
settings_refused "a model too small for its role, at its line" "set\.yml:2: host tiny: a pi3b\+.*cannot run role 'all'" \
"hosts:
  - {name: tiny, role: all, address: 10.0.0.5, model: pi3b+}"

# --host FILE: every host's defaults, below the fleet file's settings
printf 'timezone: Europe/Berlin\nkeymap: de\n' >"$T/defaults.yml"
cat > "$T/hostfile.yml" <<YAML
user: pi
ssh_key_files: [$T/key.pub]
keymap: gb
network: {gateway: 10.0.0.1}
hosts:
  - {name: pi-h, role: observability, address: 10.0.0.5, env: {OPENOBSERVE_PASSWORD: $OOPW}}
YAML
check "fleet with --host FILE builds" "$DIMIMAGE" build --fleet "$T/hostfile.yml" --host "$T/defaults.yml" \
  --base "$base" -o "$T/hf" --quiet
[[ $(rcat "$T/hf/pi-h.img" /etc/timezone) == Europe/Berlin ]] && ok "--host file's time zone applied to the fleet's host" \
  || fail "--host file's time zone: $(rcat "$T/hf/pi-h.img" /etc/timezone)"
rcat "$T/hf/pi-h.img" /etc/default/keyboard | grep -qx 'XKBLAYOUT="gb"' && ok "the fleet file's keymap wins over the --host file's" \
  || fail "keymap: $(rcat "$T/hf/pi-h.img" /etc/default/keyboard | grep XKBLAYOUT)"
rm -rf "$T/hf"
printf 'model: pi9\n' >"$T/badmodel.yml"
expect_error "an unknown model in a --host file, at its line" "badmodel\.yml:1: unknown Pi model 'pi9'" \
  "$DIMIMAGE" build --role observability --host "$T/badmodel.yml" --base "$base" -o "$T/bm.img" --set OPENOBSERVE_PASSWORD="$OOPW"
printf 'timezone: Bad Zone\n' >"$T/badtz.yml"
expect_error "--host file's invalid time zone refused with --fleet, at its line" "badtz\.yml:1: host pi-h: invalid time zone 'Bad Zone'" \
  "$DIMIMAGE" build --fleet "$T/hostfile.yml" --host "$T/badtz.yml" --base "$T/undecodable.img.xz" -o "$T/hf"
printf 'timezone: UTC\ntimezon: UTC\n' >"$T/typo.yml"
expect_error "--host file's unknown key refused with --fleet, with its line" "typo\.yml:2.*timezon" \
  "$DIMIMAGE" build --fleet "$T/hostfile.yml" --host "$T/typo.yml" --base "$base" -o "$T/hf"
# A value typed KEY=VALUE where KEY: VALUE goes makes the secret part of a
# key: the error says where and what, never the key's text.
mark=Zx9-SECRETMARK-pw-$RANDOM
# shellcheck disable=SC2016 # a crypt hash's literal $ signs
printf 'user: pi\npassword_hash=$y$j9T$%s:\n' "$mark" >"$T/eqkey.yml"
expect_error "--host file's KEY=VALUE key: its line, not its text" \
  'eqkey\.yml:2: host: an unknown key, not shown since it does not read as one \(written KEY=VALUE rather than KEY: VALUE\?\)' \
  "$DIMIMAGE" build --role observability --host "$T/eqkey.yml" --base "$base" -o "$T/eq.img" --set OPENOBSERVE_PASSWORD="$OOPW"
check_fails "--host file's KEY=VALUE key: the secret not printed" grep -q SECRETMARK "$T/.err" "$T/.out"
sed "s|env: {OPENOBSERVE_PASSWORD: |env: {OPENOBSERVE_PASSWORD=$mark|" "$T/hostfile.yml" >"$T/eqenv.yml"
grep -q "PASSWORD=$mark" "$T/eqenv.yml" || fail "eqenv.yml: the sed did not apply"
expect_error "fleet env: KEY=VALUE as a key: its line, not its text" \
  'eqenv\.yml:[0-9]+: env: invalid variable name: its character 21 is punctuation' \
  "$DIMIMAGE" build --fleet "$T/eqenv.yml" --base "$base" -o "$T/hf"
check_fails "fleet env: KEY=VALUE as a key: the secret not printed" grep -qF -e SECRETMARK -e "$OOPW" "$T/.err" "$T/.out"
printf '# every Pi\nhostname: one-for-all\n' >"$T/perhost.yml"
expect_error "--host file's per-host hostname refused with --fleet, at its line" \
  "perhost\.yml:2: hostname is per host with --fleet .*fleet file" \
  "$DIMIMAGE" build --fleet "$T/hostfile.yml" --host "$T/perhost.yml" --base "$base" -o "$T/hf"
expect_rc "--host file's per-host hostname refused with --fleet" 64
[[ ! -e $T/hf ]] && ok "refused --host files: no directory" || fail "refused --host files: $T/hf created"

# A host whose inputs are refused (here a weak secret) is refused before
# the base is read, not after the hosts before it are built.
cat > "$T/weak.yml" <<YAML
hosts:
  - {name: first, role: observability, address: 10.0.0.5, env: {OPENOBSERVE_PASSWORD: $OOPW}}
  - {name: second, role: observability, address: 10.0.0.6, env: {OPENOBSERVE_PASSWORD: short}}
YAML
expect_error "second host's weak secret refused, naming its line" "weak\.yml:3: OPENOBSERVE_PASSWORD is shorter" \
  "$DIMIMAGE" build --fleet "$T/weak.yml" --base "$base" -o "$T/bad"
check_fails "... before the base is read" grep -q "^Reading " "$T/.err"
check_fails "... and before the first host is built" grep -q "^== first" "$T/.err"
[[ ! -e $T/bad ]] && ok "... and no directory made" || fail "a fleet refused before the base made $T/bad"
check "... in one error line" test "$(grep -c 'error:' "$T/.err")" -eq 1
# An error that names no host (a compose file's, every app host's) still
# says whose it is: that host's line comes before it, as in its build.
cat > "$T/nosrc.yml" <<YAML
hosts:
  - {name: app-a, role: app-standalone, address: 10.0.0.5, env: {DIMDIM_API_IMAGE: a/b:1, DIMDIM_WORKER_IMAGE: a/c:1}}
  - {name: app-b, role: app-standalone, address: 10.0.0.6}
YAML
expect_error "a host with no source nor images refused before the base is read" "service 'api': .* will not exist in the image" \
  "$DIMIMAGE" build --fleet "$T/nosrc.yml" --base "$base" -o "$T/bad"
[[ $(grep -v '^dimimage: warning:' "$T/.err" | grep -B1 '^dimimage: error:' | head -n 1) == "== app-b (app-standalone, 10.0.0.6)" ]] \
  && ok "... after the line of the host it is about" || fail "no host named before the error: $(cat "$T/.err")"
check_fails "... and of no other host" grep -q '^== app-a' "$T/.err"
[[ ! -e $T/bad ]] && ok "... and no directory made" || fail "a fleet refused before the base made $T/bad"

# The first host's commit runs on while the second fails (a time zone the
# base lacks, found once it is read): it is waited for, then undone.
cat > "$T/late.yml" <<YAML
hosts:
  - {name: first, role: observability, address: 10.0.0.5, env: {OPENOBSERVE_PASSWORD: $OOPW}}
  - {name: second, role: observability, address: 10.0.0.6, timezone: Mars/Olympus, env: {OPENOBSERVE_PASSWORD: $OOPW}}
YAML
expect_error "second host's time zone refused after the first host's edits, naming its line" "late\.yml:3: host second: /etc/localtime would point to .*Mars/Olympus" \
  "$DIMIMAGE" build --fleet "$T/late.yml" --base "$base" -o "$T/bad"
grep -q "Removed $T/bad/first.img: the fleet failed" "$T/.out" "$T/.err" \
  && ok "the first host's image, committed meanwhile, removed with a word" || fail "first image's removal not said"
[[ -z $(ls -A "$T/bad" 2>/dev/null) ]] && ok "no images left by refused fleets" || fail "leftovers: $(ls "$T/bad")"
[[ ! -e $T/bad ]] && ok "a failed fleet removes the directory it created" || fail "a failed fleet left $T/bad"
# ... but never one it did not create, nor what is in it
mkdir "$T/mine" && touch "$T/mine/keep.txt"
expect_error "failed fleet into an existing directory" "late\.yml:3: host second: /etc/localtime" \
  "$DIMIMAGE" build --fleet "$T/late.yml" --base "$base" -o "$T/mine"
[[ $(ls -A "$T/mine") == keep.txt ]] && ok "a failed fleet keeps a directory it did not create, and its files" \
  || fail "existing directory: $(ls -A "$T/mine" 2>&1)"
rm "$T/mine/keep.txt"
expect_error "failed fleet into an existing empty directory" "late\.yml:3: host second: /etc/localtime" \
  "$DIMIMAGE" build --fleet "$T/late.yml" --base "$base" -o "$T/mine"
[[ -d $T/mine ]] && ok "a failed fleet keeps an empty directory it did not create" || fail "existing empty directory removed"

# SIGINT as the first host's commit renames its last file (strace counts
# each thread's renames: a commit's third is OUT.sha256): the fleet is
# undone as a failed one is, not left with that host's image.
if strace -f -o /dev/null -e trace=rename true 2>/dev/null; then
  rc=0
  strace -f -o /dev/null -e trace=rename -e inject=rename:signal=SIGINT:when=3 \
    "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$base" -o "$T/int/" --quiet "${common[@]}" >/dev/null 2>"$T/int.err" || rc=$?
  ((rc == 130)) && ok "fleet interrupted after a host's commit: exit 130" || fail "fleet interrupted: exit $rc"
  # one line for the fleet, naming DIR as given (its trailing / dropped)
  n=$(grep -cxF "dimimage: interrupted: $T/int: fleet not written; none of its images kept" "$T/int.err")
  [[ $n == 1 && $(grep -c '^dimimage:' "$T/int.err") == 1 ]] && ok "fleet interrupted: one line says so" \
    || { fail "fleet interrupted: said $n times"; sed 's/^/    /' "$T/int.err"; }
  [[ -z $(ls -A "$T/int" 2>/dev/null) ]] && ok "fleet interrupted after a host's commit: no image left" \
    || fail "fleet interrupted after a host's commit: left $(ls -A "$T/int")"
  [[ ! -e $T/int ]] && ok "fleet interrupted after a host's commit: the directory it created removed" \
    || fail "fleet interrupted after a host's commit: $T/int left"
  mkdir -p "$T/int"
  strace -f -o /dev/null -e trace=rename -e inject=rename:signal=SIGINT:when=3 \
    "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$base" -o "$T/int" --quiet "${common[@]}" >/dev/null 2>&1
  [[ -d $T/int && -z $(ls -A "$T/int") ]] && ok "fleet interrupted: a directory it did not create stays" \
    || fail "fleet interrupted: existing directory $(ls -A "$T/int" 2>&1)"
else
  ok "skipped: interrupting a fleet at a chosen point needs strace"
fi

# Two fleets into one directory (--force, a CI job run twice): each file is
# whole either way, but secrets.env must be the fleet's whose images are
# there. Fleet A is held (strace delays its look at the app image just
# committed, before it writes secrets.env) while fleet B runs: B waits for
# A's directory lock, then replaces all of it.
if strace -f -o /dev/null -e trace=newfstatat true 2>/dev/null; then
  rm -rf "$T/two"
  mkdir "$T/two"
  held=newfstatat,lstat,stat,statx
  strace -f -o /dev/null -P "$T/two/dimdim-app.img" -e trace="$held" -e inject="$held":delay_exit=3000000 \
    "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$base" -o "$T/two" --force --quiet "${common[@]}" \
    >"$T/twoA.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do [[ -e $T/two/dimdim-app.img ]] && break; sleep 0.1; done
  "$DIMIMAGE" build --fleet "$T/fleet.yml" --no-cache --base "$base" -o "$T/two" --force "${common[@]}" >"$T/twoB.log" 2>&1 \
    || fail "second fleet into one directory: $(cat "$T/twoB.log")"
  wait "$pid" || fail "first fleet into one directory: $(cat "$T/twoA.log")"
  check "second fleet into one directory: waited for the first, saying so" grep -q "Waiting for another dimimage run writing into" "$T/twoB.log"
  a=$(rcat "$T/two/dimdim-app.img" /opt/dimdim-health/.env | grep '^DB_PASSWORD=' | tr -d "'")
  s=$(grep '^DB_PASSWORD=' "$T/two/secrets.env" | tr -d "'")
  [[ -n $a && $a == "$s" ]] && ok "two fleets into one directory: secrets.env is the app image's" \
    || fail "two fleets into one directory: secrets.env does not hold the app image's DB_PASSWORD"
  (cd "$T/two" && sha256sum -c --quiet dimdim-app.img.sha256 dimdim-obs.img.sha256) \
    && ok "two fleets into one directory: every image matches its .sha256" \
    || fail "two fleets into one directory: an image does not match its .sha256"
  rm -rf "$T/two"
else
  ok "skipped: holding a fleet at a chosen point needs strace"
fi

# --imager-json may name none of the fleet's inputs or outputs, checked
# before the base is read.
yml=$(cat "$T/three.yml")
cp "$base" "$T/base.img"
for j in "$T/three.yml" "$T/base.img" "$T/jf/obs-2.img.zst" "$T/jf/obs-3.img.zst.sha256" "$T/jf/secrets.env"; do
  expect_error "fleet --imager-json ${j##*/} refused" "--imager-json would overwrite .*${j##*/}" \
    "$DIMIMAGE" build --fleet "$T/three.yml" --base "$T/base.img" -o "$T/jf" --imager-json "$j" --force
done
[[ $(cat "$T/three.yml") == "$yml" ]] && cmp -s "$base" "$T/base.img" && ok "fleet --imager-json refusals: fleet file and base unchanged" \
  || fail "fleet --imager-json refusals: fleet file or base changed"
[[ -z $(ls -A "$T/jf" 2>/dev/null) ]] && ok "fleet --imager-json refusals: no images" || fail "fleet --imager-json refusals: left $(ls -A "$T/jf")"
expect_error "fleet --imager-json in a missing directory" "directory for --imager-json does not exist" \
  "$DIMIMAGE" build --fleet "$T/three.yml" --base "$base" -o "$T/jf" --imager-json "$T/nonexistent/x.json"
[[ -z $(ls -A "$T/jf" 2>/dev/null) ]] && ok "fleet --imager-json in a missing directory: no images" || fail "fleet --imager-json in a missing directory: left $(ls -A "$T/jf")"
rm -f "$T/base.img"
# A host's role naming a profile file: found beside the fleet file, as its
# other files are, not in the directory the build runs from (where a
# namesake would have been taken without a word).
mkdir -p "$T/rel/sub" "$T/rel/cwd"
sed 's/^name: app-standalone$/name: beside-fleet/' "$TOP/profiles/app-standalone.yml" >"$T/rel/sub/custom.yml"
sed 's/^name: app-standalone$/name: in-cwd/' "$TOP/profiles/app-standalone.yml" >"$T/rel/cwd/custom.yml"
cp "$T/key.pub" "$T/rel/sub/key.pub"
printf 'network: {prefix: 24, gateway: 192.168.1.1}\nuser: pi\nssh_key_files: [key.pub]\nhosts:\n  - name: app1\n    role: custom.yml\n    address: 192.168.1.101\n' \
  >"$T/rel/sub/fl.yml"
# shellcheck disable=SC2016 # expanded by the inner bash
check "a fleet's role: custom.yml, built from another directory" \
  bash -c 'cd "$1/rel/cwd" && "$2" build --fleet ../sub/fl.yml --base "$3" -o ../out --quiet \
    --set DIMDIM_API_IMAGE=a/b:1 --set DIMDIM_WORKER_IMAGE=a/c:1' _ "$T" "$DIMIMAGE" "$base"
[[ -f $T/rel/out/app1.img ]] && rcat "$T/rel/out/app1.img" /etc/dimimage/manifest.json | grep -q '"beside-fleet"' \
  && ok "... the profile beside the fleet file, not the directory's namesake" \
  || fail "role file: $(rcat "$T/rel/out/app1.img" /etc/dimimage/manifest.json 2>&1 | grep -E 'beside|in-cwd|profile' | head -3)"
rm -rf "$T/rel"
# Profiles whose fleet: templates each take a value of the other's
# environment: no host can go first, and the message names them.
mkdir -p "$T/cyc"
# shellcheck disable=SC2016 # the template is the profile's, not the shell's
sed 's/^    default: "admin@example.com"$/&\n    fleet: "${app.env.DB_PASSWORD}"/' "$TOP/profiles/observability.yml" >"$T/cyc/obs-cyc.yml"
cp "$T/key.pub" "$T/cyc/key.pub"
printf 'network: {prefix: 24, gateway: 192.168.1.1}\nuser: pi\nssh_key_files: [key.pub]\nhosts:\n  - name: app1\n    role: app\n    address: 192.168.1.101\n  - name: obs1\n    role: obs-cyc.yml\n    address: 192.168.1.102\n' \
  >"$T/cyc/fl.yml"
expect_error "a wiring cycle: the hosts in it named, with their lines" \
  "fl\.yml:5: the wiring of hosts app1 \(app, line 5\), obs1 \(observability, line 8\) is a cycle" \
  "$DIMIMAGE" build --fleet "$T/cyc/fl.yml" --base "$base" -o "$T/cyc/out" --set DB_PASSWORD=Tr0ub4dor-and-3-horses "${common[@]}"
[[ ! -e $T/cyc/out ]] && ok "a wiring cycle: nothing written" || fail "a wiring cycle: left $(ls -A "$T/cyc/out")"
rm -rf "$T/cyc"
# A value given for every host that is not what the fleet wires in (an old
# password in a shared .env, the guide's OPENOBSERVE_URL): the app could
# not ship its logs with it, so it is refused, naming where it was given and
# never the value; given in the app host's own env: it is meant, and kept.
mkdir -p "$T/wire"
cp "$T/key.pub" "$T/wire/key.pub"
printf 'OPENOBSERVE_PASSWORD=Shared-env-file-Pw-123\n' >"$T/wire/common.env"
chmod 600 "$T/wire/common.env"
printf 'network: {prefix: 24, gateway: 192.168.1.1}\nuser: pi\nssh_key_files: [key.pub]\nenv_files: [common.env]\nhosts:\n  - {name: app1, role: app, address: 192.168.1.101}\n  - {name: obs1, role: observability, address: 192.168.1.102, env: {OPENOBSERVE_PASSWORD: Obs-own-Pw-value-456}}\n' \
  >"$T/wire/shared.yml"
wire=(--set DB_PASSWORD=Tr0ub4dor-and-3-horses --set DIMDIM_API_IMAGE=a/b:1 --set DIMDIM_WORKER_IMAGE=a/c:1)
expect_error "a shared .env value against the fleet's wiring: refused where it was given" \
  "common\.env:1: OPENOBSERVE_PASSWORD, given here for every host, differs from what the fleet wires into role 'app' \(\\\$\{observability\.env\.OPENOBSERVE_PASSWORD\}\)" \
  "$DIMIMAGE" build --fleet "$T/wire/shared.yml" --base "$base" -o "$T/wire/out" "${wire[@]}"
grep -qF -e Shared-env-file -e Obs-own-Pw "$T/.err" && fail "... the values shown" || ok "... no value shown"
[[ ! -e $T/wire/out ]] && ok "... nothing written" || fail "... left $(ls -A "$T/wire/out")"
expect_error "the guide's OPENOBSERVE_URL by --set for a fleet whose observability Pi is elsewhere: refused" \
  "--set: OPENOBSERVE_URL, given here for every host, differs from what the fleet wires" \
  "$DIMIMAGE" build --fleet "$T/wire/shared.yml" --base "$base" -o "$T/wire/out" "${wire[@]}" \
  --env "$T/wire/common.env" --set OPENOBSERVE_URL=http://10.9.9.9:5080 --set OPENOBSERVE_PASSWORD=Obs-own-Pw-value-456
printf 'network: {prefix: 24, gateway: 192.168.1.1}\nuser: pi\nssh_key_files: [key.pub]\nhosts:\n  - {name: app1, role: app, address: 192.168.1.101, env: {OPENOBSERVE_URL: "http://10.9.9.9:5080"}}\n  - {name: obs1, role: observability, address: 192.168.1.102}\n' \
  >"$T/wire/own.yml"
"$DIMIMAGE" build --fleet "$T/wire/own.yml" --base "$base" -o "$T/wire/out" "${wire[@]}" \
  --set OPENOBSERVE_PASSWORD=Obs-own-Pw-value-456 >"$T/wire/own.log" 2>&1 \
  && rcat "$T/wire/out/app1.img" /opt/dimdim-health/.env | grep -qx 'OPENOBSERVE_URL=http://10.9.9.9:5080' \
  && grep -q "warning: .*own\.yml:5: OPENOBSERVE_URL given for this host is kept over what the fleet wires in" "$T/wire/own.log" \
  && ok "a host's own value over the wiring: kept, with a warning" || { fail "a host's own value over the wiring"; sed 's/^/    /' "$T/wire/own.log"; }
rm -rf "$T/wire"
# A --force fleet that fails, or is stopped, after some of its hosts were
# written leaves DIR as it was: the images, companions and secrets.env it
# replaced are kept (hard links) until it is done, and put back.
if strace -f -o /dev/null -e trace=unlink true 2>/dev/null; then
  mkdir -p "$T/kf"
  cp "$T/key.pub" "$T/kf/key.pub"
  printf 'network: {prefix: 24, gateway: 192.168.1.1}\nuser: pi\nssh_key_files: [key.pub]\nhosts:\n  - {name: h1, role: app, address: 192.168.1.101}\n  - {name: h2, role: observability, address: 192.168.1.102}\n' \
    >"$T/kf/fl.yml"
  kf=(--set DIMDIM_API_IMAGE=a/b:1 --set DIMDIM_WORKER_IMAGE=a/c:1 --set OPENOBSERVE_PASSWORD="$OOPW" --quiet)
  "$DIMIMAGE" build --fleet "$T/kf/fl.yml" --base "$base" -o "$T/kf/out" "${kf[@]}" 2>/dev/null || fail "kept fleet: first build"
  (cd "$T/kf/out" && sha256sum ./* >"$T/kf/old.sums")
  for how in error=EIO signal=SIGINT; do
    rc=0
    # h2 is built first: h1's commit, which starts by removing the old
    # h1.img.bmap, is the second host's
    strace -f -o /dev/null -P "$T/kf/out/h1.img.bmap" -e trace=unlink -e inject=unlink:"$how" \
      "$DIMIMAGE" build --fleet "$T/kf/fl.yml" --base "$base" -o "$T/kf/out" --force "${kf[@]}" 2>"$T/kf/err" || rc=$?
    left=$(find "$T/kf/out" -mindepth 1 -name '.*')
    [[ $rc != 0 && -z $left ]] && (cd "$T/kf/out" && sha256sum -c --quiet "$T/kf/old.sums" >/dev/null 2>&1) \
      && ok "a --force fleet ${how%%=*}ed at its second host's commit: DIR as it was (rc $rc)" \
      || { fail "a --force fleet ${how%%=*}ed at its second host's commit: rc $rc, left $left"; sed 's/^/    /' "$T/kf/err"; }
  done
  "$DIMIMAGE" build --fleet "$T/kf/fl.yml" --base "$base" -o "$T/kf/out" --force "${kf[@]}" 2>/dev/null \
    && ! (cd "$T/kf/out" && sha256sum -c --quiet "$T/kf/old.sums" >/dev/null 2>&1) && [[ -z $(find "$T/kf/out" -mindepth 1 -name '.*') ]] \
    && ok "a --force fleet that succeeds: replaced, nothing kept" || fail "a --force fleet that succeeds: $(ls -A "$T/kf/out")"
  # a host renamed: the old name's image is another fleet's now, said so
  sed 's/name: h1,/name: h3,/' "$T/kf/fl.yml" >"$T/kf/fl3.yml"
  "$DIMIMAGE" build --fleet "$T/kf/fl3.yml" --base "$base" -o "$T/kf/out" --force "${kf[@]}" 2>"$T/kf/err" \
    && grep -q "^dimimage: warning: .*/kf/out: holds 1 image no host of this fleet has (h1\.img)" "$T/kf/err" \
    && ok "a fleet into a DIR with another fleet's image: a warning names it" \
    || { fail "a fleet beside another fleet's image"; sed 's/^/    /' "$T/kf/err"; }
  # the base in DIR (or any image without the .sha256 a build leaves) is
  # not another fleet's
  cp --sparse=always "$base" "$T/kf/out/raspios.img"
  rm -f "$T/kf/out/h1.img"*
  "$DIMIMAGE" build --fleet "$T/kf/fl3.yml" --base "$T/kf/out/raspios.img" -o "$T/kf/out" --force "${kf[@]}" 2>"$T/kf/err" \
    && ! grep -q "no host of this fleet has" "$T/kf/err" && ok "a fleet beside its base in DIR: no warning of it" \
    || { fail "a fleet beside its base in DIR"; sed 's/^/    /' "$T/kf/err"; }
  # failed, it says Restored only of what it had replaced
  rc=0
  strace -f -o /dev/null -P "$T/kf/out/h3.img.bmap" -e trace=unlink -e inject=unlink:error=EIO \
    "$DIMIMAGE" build --fleet "$T/kf/fl3.yml" --base "$base" -o "$T/kf/out" --force "${kf[@]:0:6}" >"$T/kf/out.log" 2>&1 || rc=$?
  n=$(grep -c '^Restored' "$T/kf/out.log")
  [[ $rc != 0 ]] && ! grep -q 'Restored .*h3\.img' "$T/kf/out.log" \
    && ok "a failed --force fleet says Restored of what it replaced only ($n)" \
    || { fail "a failed --force fleet's Restored lines (rc $rc)"; grep Restored "$T/kf/out.log" | sed 's/^/    /'; }
  rm -rf "$T/kf"
fi

summary
