#!/usr/bin/env bash
# Overlays and profiles: every shipped script passes shellcheck, every unit
# passes systemd-analyze verify (in a root where its ExecStart exists), the
# compose files parse and agree with the profiles, and the firstboot, stack
# and dimdim-status scripts behave per the firstboot contract when run
# against stand-in docker/apt-get/systemctl commands.
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$0")/../lib.sh"

OV=$TOP/overlays
PROF=$TOP/profiles

# ---- shellcheck -------------------------------------------------------------
mapfile -t scripts < <(find "$OV" -type f -print0 | xargs -0 grep -lE '^#!.*(ba)?sh' | sort)
if ((${#scripts[@]} >= 4)); then ok "found ${#scripts[@]} overlay scripts"; else fail "overlay scripts missing (${#scripts[@]})"; fi
for s in "${scripts[@]}"; do
  check "shellcheck ${s#"$TOP"/}" shellcheck -x "$s"
  mode=$(stat -c %a "$s")
  if [[ $mode == 755 ]]; then ok "mode 0755 ${s#"$TOP"/}"; else fail "mode of ${s#"$TOP"/} is $mode, want 755"; fi
done

# ---- systemd-analyze verify ------------------------------------------------
root=$T/root
mkdir -p "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
for d in "$OV"/*/; do cp -a "$d." "$root/"; done
mapfile -t units < <(cd "$root" && find etc/systemd/system -maxdepth 1 -type f \( -name '*.service' -o -name '*.timer' -o -name '*.path' \) | sort)
if ((${#units[@]} >= 2)); then ok "found ${#units[@]} units"; else fail "units missing"; fi
for u in "${units[@]}"; do
  out=$(systemd-analyze verify --root="$root" "/$u" 2>&1)
  rc=$?
  name=$(basename "$u")
  # verify only warns (rc 0) on unknown keys: any line about our unit fails.
  if ((rc == 0)) && ! grep -q "$name" <<<"$out"; then
    ok "systemd-analyze verify $name"
  else
    fail "systemd-analyze verify $name (rc=$rc)"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
  mode=$(stat -c %a "$OV/common/$u" 2>/dev/null || find "$OV" -path "*/$u" -exec stat -c %a {} \;)
  if [[ $mode == 644 ]]; then ok "mode 0644 $name"; else fail "mode of $name is $mode"; fi
done
check "contract: firstboot unit is Type=simple and never runs twice" \
  grep -qx 'ConditionPathExists=!/var/lib/dimdim/firstboot.done' "$OV/common/etc/systemd/system/dimdim-firstboot.service"
check "contract: stack unit needs firstboot.done" \
  grep -qx 'ConditionPathExists=/var/lib/dimdim/firstboot.done' "$OV/common/etc/systemd/system/dimdim-stack.service"
check_fails "stack unit does not Require docker.service" \
  grep -q '^Requires=.*docker' "$OV/common/etc/systemd/system/dimdim-stack.service"

# ---- compose files against the profiles --------------------------------------
# For each profile: its overlays exist, its compose files exist in them, parse
# as YAML without a version key, and every ${VAR:?} is a required key of the
# profile, every plain ${VAR} is declared; bind mounts and build contexts exist
# in the overlay tree (relative to the compose file, = --project-directory).
cat >"$T/compose_check.py" <<'PY'
import os, re, sys, yaml

top, profile_path = sys.argv[1], sys.argv[2]
prof = yaml.safe_load(open(profile_path))
errors = []
tree = {}  # image path -> host path, later overlays win
for ov in prof["overlays"]:
    d = os.path.join(top, "overlays", ov)
    if not os.path.isdir(d):
        errors.append(f"overlay {ov} missing")
        continue
    for dirpath, _, files in os.walk(d):
        for f in files:
            host = os.path.join(dirpath, f)
            tree["/" + os.path.relpath(host, d)] = host
dirs = {os.path.dirname(p) for p in tree}
for p in list(dirs):
    while p not in ("/", ""):
        dirs.add(p)
        p = os.path.dirname(p)

env = prof.get("environment") or {}
app = "/opt/dimdim-health"
ref = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
for rel in prof["compose"]:
    img = os.path.join(app, rel)
    if img not in tree:
        errors.append(f"{rel}: not in overlays {prof['overlays']}")
        continue
    text = open(tree[img]).read()
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or "services" not in doc:
        errors.append(f"{rel}: no services")
        continue
    if "version" in doc:
        errors.append(f"{rel}: obsolete 'version' key")
    if "changeme" in text:
        errors.append(f"{rel}: contains the weak default 'changeme'")
    for m in ref.finditer(text):
        name, op, _ = m.groups()
        spec = env.get(name)
        if op in (":?", "?"):
            if name not in env or not (spec or {}).get("required"):
                errors.append(f"{rel}: ${{{name}:?}} but {name} is not required in {profile_path}")
        elif op is None and name not in env:
            errors.append(f"{rel}: ${{{name}}} without default is not declared in {profile_path}")
    base = os.path.dirname(img)  # --project-directory
    for svc, s in (doc.get("services") or {}).items():
        for v in s.get("volumes") or []:
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith((".", "/")):
                p = os.path.normpath(os.path.join(base, src))
                if p not in tree and p not in dirs:
                    errors.append(f"{rel}: service {svc}: bind-mount source {p} missing from the overlays")
        b = s.get("build")
        if b:
            ctx = b if isinstance(b, str) else b.get("context", ".")
            p = os.path.normpath(os.path.join(base, ctx))
            if p not in dirs:
                errors.append(f"{rel}: service {svc}: build context {p} missing")
            df = None if isinstance(b, str) else b.get("dockerfile")
            if df and not df.startswith("deploy/Dockerfile."):
                errors.append(f"{rel}: service {svc}: unexpected dockerfile {df}")
            if "image" not in s:
                errors.append(f"{rel}: service {svc}: no image name to override with a prebuilt image")
        for k, val in (s.get("environment") or {}).items():
            if isinstance(val, str) and "OPENOBSERVE_URL" in val and not prof.get("log_shipping"):
                errors.append(f"{rel}: {svc} gets OPENOBSERVE_URL but log shipping is off")
ships = any("OPENOBSERVE_URL" in open(tree[os.path.join(app, r)]).read() for r in prof["compose"] if os.path.join(app, r) in tree)
if bool(prof.get("log_shipping")) != ships:
    errors.append(f"log_shipping={prof.get('log_shipping')} but OPENOBSERVE_URL in compose files: {ships}")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY
for p in "$PROF"/*.yml; do
  check "compose files of $(basename "$p") agree with it" python3 "$T/compose_check.py" "$TOP" "$p"
done
# The checker must be able to fail: a profile whose compose requires a key it
# does not declare as required.
sed -e '/^  OPENOBSERVE_PASSWORD:/,/^    description/{/required: true/d}' "$PROF/observability.yml" >"$T/obs-bad.yml"
check_fails "checker refuses an unrequired \${VAR:?}" python3 "$T/compose_check.py" "$TOP" "$T/obs-bad.yml"

if docker compose version >/dev/null 2>&1; then
  for p in app observability all app-standalone; do
    mapfile -t files < <(python3 -c 'import sys,yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["compose"]))' "$PROF/$p.yml")
    args=()
    for f in "${files[@]}"; do args+=(-f "$root/opt/dimdim-health/$f"); done
    printf 'DB_PASSWORD=x-test-x\nOPENOBSERVE_PASSWORD=x-test-x\nOPENOBSERVE_URL=http://o:5080\n' >"$T/c.env"
    check "docker compose config ($p)" docker compose --project-directory "$root/opt/dimdim-health/deploy" \
      --env-file "$T/c.env" "${args[@]}" config -q
  done
else
  ok "docker compose not available: YAML and variable checks only"
fi

# ---- firstboot / stack / dimdim-status with stand-ins ----------------------
bin=$T/bin
mkdir -p "$bin" "$T/fb/etc" "$T/fb/app/deploy" "$T/fb/state" "$T/fb/log"
calls=$T/calls.log
# The stand-ins find $T and the rest through variables set in their first
# lines (printf %q), not pasted into their quotes: a TMPDIR with a '"' in
# it would end the quote.
vars() { printf 'T=%q calls=%q bin=%q' "$T" "$calls" "$bin"; }
# docker is "installed" by apt-get install: it copies docker.real into bin.
cat >"$T/docker.real" <<EOF
#!/bin/bash
$(vars)
echo "docker \$*" >>"\$calls"
if [[ \$* == *" up -d "* ]]; then echo "buildkit \${DOCKER_BUILDKIT:-unset} \${COMPOSE_DOCKER_CLI_BUILD:-unset}" >>"\$calls"; fi
case "\$*" in
  version|info) [[ ! -e "\$T/daemon-down" ]] ;;
  "compose version") exit 0 ;;
  *" ps") [[ ! -e "\$T/daemon-down" ]] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; } ;;
  # the containers, as docker ps -a --format SERVICE|STATUS prints them
  "ps -a "*) [[ ! -e "\$T/daemon-down" ]] && cat "\$T/containers" ;;
  *" up -d "*)
    # compose-go's errors for a .env edited by hand quote it: the line
    # (current), the rest of the file (before 1.9), the value
    if [[ -e "\$T/env-typo" ]]; then
      pw=\$(sed -n 's/^DB_PASSWORD=//p' "\$T/fb/app/.env")
      printf 'failed to read %s: line 3: unexpected character "!" in variable name "DB_PASSWORD!=%s"\n' "\$T/fb/app/.env" "\$pw" >&2
      printf 'failed to read %s: Invalid template: "%s\${x"\n' "\$T/fb/app/.env" "\$pw" >&2
      printf 'failed to read %s: line 3: unexpected character "-" in variable name near "- X=1\\\\nDB_PASSWORD=%s"\n' "\$T/fb/app/.env" "\$pw" >&2
      printf 'unterminated quoted value %s\n' "\$pw" >&2
      exit 1
    fi
    # a slow build: quiet for far less than the idle limit at a time (a
    # loaded machine may hold a line back), longer than it in all
    if [[ -e "\$T/up-slow" ]]; then for i in 1 2 3 4 5 6 7 8; do echo "step \$i" >&2; /bin/sleep 0.5; done; fi
    # hanging (until stopped), or stalled once; the sleeps named under \$T,
    # so that pgrep finds one left running, and only this run's
    if [[ -e "\$T/up-hang" ]]; then : >"\$T/up-started"; (exec -a "\$T/up-hang" /bin/sleep 60); fi
    if [[ -e "\$T/up-stall-once" ]]; then rm -f "\$T/up-stall-once"; (exec -a "\$T/up-stall" /bin/sleep 30); fi
    n=\$(cat "\$T/up-failures" 2>/dev/null || echo 0)
    if ((n > 0)); then echo \$((n - 1)) >"\$T/up-failures"; echo "pull access denied" >&2; exit 1; fi
    exit 0 ;;
  *) exit 0 ;;
esac
EOF
chmod +x "$T/docker.real"
cat >"$bin/apt-get" <<EOF
#!/bin/bash
$(vars)
echo "apt-get \$*" >>"\$calls"
if [[ \$1 == update ]]; then
  n=\$(cat "\$T/update-failures" 2>/dev/null || echo 0)
  if ((n > 0)); then echo \$((n - 1)) >"\$T/update-failures"; echo "Temporary failure resolving" >&2; exit 100; fi
fi
# Trixie ($T/trixie): the docker command is in docker-cli, which docker.io
# only recommends, and --no-install-recommends leaves it out.
if [[ \$1 == install ]]; then
  if [[ -e "\$T/dpkg-other-broken" ]]; then echo "E: Sub-process /usr/bin/dpkg returned an error code (1)" >&2; exit 100; fi
  if [[ ! -e "\$T/trixie" || " \$* " == *" docker-cli "* ]]; then cp "\$T/docker.real" "\$bin/docker"; fi
  rm -f "\$T/dpkg-interrupted" "\$T/dpkg-needs-dep"
fi
exit 0
EOF
cat >"$bin/apt-cache" <<EOF
#!/bin/bash
$(vars)
echo "apt-cache \$*" >>"\$calls"
[[ \$1 == show && -e "\$T/trixie" && \$2 =~ ^docker-(cli|buildx)\$ ]] && exit 0
echo "E: No packages found" >&2
exit 100
EOF
# dpkg --audit reports a half-done install while $T/dpkg-interrupted exists;
# dpkg --configure -a finishes it, unless a dependency is missing
# ($T/dpkg-needs-dep: only apt-get -f install can bring it).
cat >"$bin/dpkg" <<EOF
#!/bin/bash
$(vars)
echo "dpkg \$*" >>"\$calls"
case \$1 in
  --audit)
    [[ -e "\$T/dpkg-interrupted" ]] && echo " docker-compose   (half configured)"
    [[ -e "\$T/dpkg-other-broken" ]] && echo " foo-dkms   (half configured)" ;;
  --configure)
    if [[ -e "\$T/dpkg-other-broken" ]]; then echo "foo-dkms: post-installation script returned error exit status 1" >&2; exit 1; fi
    if [[ -e "\$T/dpkg-needs-dep" ]]; then echo "dependency problems - leaving unconfigured" >&2; exit 1; fi
    rm -f "\$T/dpkg-interrupted" ;;
esac
exit 0
EOF
# systemctl is-active answers from $T/unit-state when it exists.
cat >"$bin/systemctl" <<EOF
#!/bin/bash
$(vars)
echo "systemctl \$*" >>"\$calls"
if [[ \$* == "start docker.service" ]]; then rm -f "\$T/daemon-down"; fi
if [[ \$1 == is-active && -e "\$T/unit-state" ]]; then
  s=\$(cat "\$T/unit-state"); echo "\$s"; [[ \$s == active ]]; exit
fi
exit 0
EOF
for c in usermod ssh-keygen sleep locale-gen; do
  # shellcheck disable=SC2016 # $* and $calls are the stand-in's, at its run
  printf '#!/bin/bash\n%s\necho "%s $*" >>"$calls"\n' "$(vars)" "$c" >"$bin/$c"
done
# A retry's wait stops firstboot (its caller) once $T/stop-at-sleep exists:
# a run stopped after its first failed attempt, however long that took.
# (This script's own waits are /bin/sleep's.)
cat >>"$bin/sleep" <<'EOF'
if [[ -e "$T/stop-at-sleep" ]]; then rm -f "$T/stop-at-sleep"; kill -TERM "$PPID"; fi
EOF
printf '#!/bin/bash\nexit 0\n' >"$bin/getent"
chmod +x "$bin"/*

cp "$OV/common/usr/local/lib/dimdim/stack" "$T/fb/stack"
cp "$OV/app/opt/dimdim-health/deploy/docker-compose.app.yml" "$OV/app/opt/dimdim-health/deploy/docker-compose.log-shipping.yml" "$T/fb/app/deploy/"
secret=S3cr3t-never-printed-$$
printf 'DB_PASSWORD=%s\n' "$secret" >"$T/fb/app/.env"
chmod 600 "$T/fb/app/.env"
cat >"$T/fb/etc/stack.conf" <<EOF
DIMDIM_ROLE=app
DIMDIM_COMPOSE_FILES=deploy/docker-compose.app.yml:deploy/docker-compose.log-shipping.yml
DIMDIM_PROJECT=dimdim-health
DIMDIM_SERVICES=api db redis worker
DIMDIM_USER=root
DIMDIM_LOCALE_GEN=1
EOF

# Only the stand-ins and the base system: a docker on the test host must not
# count as "installed".
export PATH="$bin:/usr/bin:/bin:/usr/sbin:/sbin"
if command -v docker >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
  fail "docker in /usr/bin on this host: the install path cannot be tested"
fi
# firstboot's temporary output files go where $T's trap removes them: one
# that timeout(1) kills (the stalled and .env-typo runs) leaves its own
# behind, which landed in the caller's /tmp.
export TMPDIR=$T
export DIMDIM_STACK_CONF=$T/fb/etc/stack.conf DIMDIM_STATE_DIR=$T/fb/state DIMDIM_LOG=$T/fb/log/firstboot.log
export DIMDIM_STACK=$T/fb/stack DIMDIM_LOCK=$T/fb/lock DIMDIM_APP_DIR=$T/fb/app DIMDIM_DOCKER_WAIT=2
status=$OV/common/usr/local/bin/dimdim-status
firstboot=$OV/common/usr/local/lib/dimdim/firstboot

# provision NAME WHAT: a first boot run to its end, its output in
# $T/NAME.out; ok WHAT when it completes.  60 s at most: a guard against a
# hang (a run takes 1-7 s on a loaded 2-CPU machine), not a deadline.
provision() {
  local rc=0
  timeout 60 "$firstboot" >"$T/$1.out" 2>&1 || rc=$?
  if [[ $rc == 0 ]]; then ok "$2"; else fail "$2: rc=$rc"; sed 's/^/    /' "$T/$1.out"; fi
}

rc=0
"$status" >"$T/st0" 2>&1 || rc=$?
if [[ $rc == 2 ]]; then ok "dimdim-status exits 2 before first boot"; else fail "dimdim-status before first boot: rc=$rc"; fi

echo 2 >"$T/update-failures"
echo 3 >"$T/up-failures"
rc=0
timeout 60 "$firstboot" >"$T/fb.out" 2>&1 || rc=$?
if [[ $rc == 0 ]]; then ok "firstboot finishes after retries"; else fail "firstboot rc=$rc"; sed 's/^/    /' "$T/fb.out"; fi
check "prints the completion line" grep -qx 'dimdim-firstboot: provisioning complete' "$T/fb.out"
check "prints step lines" grep -qx 'dimdim-firstboot: step 2/4: install Docker Engine and Compose' "$T/fb.out"
# Locales and host keys need no network: a Pi whose Docker install keeps
# failing must still have them.  The docker group exists only after the install.
lg=$(grep -n -m 1 '^locale-gen' "$calls" | cut -d: -f1)
upd=$(grep -n -m 1 '^apt-get update' "$calls" | cut -d: -f1)
um=$(grep -n -m 1 '^usermod' "$calls" | cut -d: -f1)
inst=$(grep -n -m 1 '^apt-get install' "$calls" | cut -d: -f1)
if [[ -n $lg && -n $upd ]] && ((lg < upd)); then ok "locale-gen runs before the Docker install"; else fail "order: locale-gen at ${lg:-none}, apt-get update at ${upd:-none}"; fi
if [[ -n $um && -n $inst ]] && ((um > inst)); then ok "usermod -aG docker runs after the Docker install"; else fail "order: usermod at ${um:-none}, apt-get install at ${inst:-none}"; fi
check "reports a failed attempt with its delay" \
  grep -qx 'dimdim-firstboot: attempt 1 failed: apt-get update failed (exit 100; network or clock not ready?); retrying in 5 s' "$T/fb.out"
check "compose failures are retried" grep -q 'attempt 3 failed: compose up failed' "$T/fb.out"
# Each up after the first starts from no containers or volumes: a first
# start cut short (a power cut in postgres's initdb) would leave them half
# made for good.  The first up is not preceded by a down.
seq_ud=$(sed -n 's/^docker compose .* \(up -d\|down --volumes\)\( .*\)\{0,1\}$/\1/p' "$calls" | tr '\n' ,)
[[ $seq_ud == "up -d,down --volumes,up -d,down --volumes,up -d,down --volumes,up -d," ]] \
  && ok "a retried compose up comes after down --volumes, the first one alone" || fail "up and down: $seq_ud"
check "... which the status log says" grep -q 'an earlier compose up did not finish first boot: removing' "$T/fb.out"
check "... the marker of a started up left in the state directory" test -f "$T/fb/state/stack.started"
want_sleeps=$'sleep 5\nsleep 10\nsleep 5\nsleep 10\nsleep 20'
got_sleeps=$(grep '^sleep' "$calls" | grep -v '^sleep 2$')
if [[ $got_sleeps == "$want_sleeps" ]]; then ok "backoff 5 s doubling"; else fail "backoff: $(tr '\n' ' ' <<<"$got_sleeps")"; fi
check "compose up runs with BuildKit (Compose v1 through the docker CLI too)" grep -qx 'buildkit 1 1' "$calls"
check_fails "compose up never runs without BuildKit" grep -q '^buildkit .*unset' "$calls"
check "installs docker.io and docker-compose (bookworm: nothing else)" \
  grep -q 'apt-get install -y -f --no-install-recommends .*docker.io docker-compose$' "$calls"
check "apt-get update fails when no mirror answers (Error-Mode=any)" grep -qx 'apt-get update -o APT::Update::Error-Mode=any' "$calls"
check "a conffile question cannot stop the install" grep -q 'apt-get install .*-o Dpkg::Options::=--force-confold' "$calls"
check_fails "no interrupted install: dpkg --configure not run" grep -q '^dpkg --configure' "$calls"
up_line=$(grep ' up -d' "$calls" | tail -n 1)
want="docker compose --project-name dimdim-health --project-directory $T/fb/app/deploy --env-file $T/fb/app/.env -f $T/fb/app/deploy/docker-compose.app.yml -f $T/fb/app/deploy/docker-compose.log-shipping.yml up -d --remove-orphans"
if [[ $up_line == "$want" ]]; then ok "compose up command line"; else fail "compose up: $up_line"; fi
check "adds the user to the docker group" grep -qx 'usermod -aG docker root' "$calls"
check "compiles locales when asked" grep -q '^locale-gen' "$calls"
check "shows why a command failed" grep -qx 'dimdim-firstboot:   | pull access denied' "$T/fb.out"
check "enables dimdim-stack.service" grep -qx 'systemctl enable dimdim-stack.service' "$calls"
check "starts dimdim-stack.service without blocking" grep -qx 'systemctl start --no-block dimdim-stack.service' "$calls"
check "writes firstboot.done" test -f "$T/fb/state/firstboot.done"
check "status says done" grep -qx 'STATE=done' "$T/fb/state/status"
check "log file has the progress" grep -q 'dimdim-firstboot: step 3/4' "$T/fb/log/firstboot.log"
check_fails "the secret appears in no output, log or status" grep -rqF "$secret" "$T/fb.out" "$T/fb/log" "$T/fb/state" "$calls"

printf '%s\n' 'db|Up 2 minutes (healthy)' 'redis|Up 2 minutes (healthy)' 'api|Up 2 minutes (health: starting)' \
  'worker|Up 2 minutes' >"$T/containers"
rc=0
"$status" >"$T/st1" 2>&1 || rc=$?
if [[ $rc == 0 ]]; then ok "dimdim-status exits 0 when provisioned"; else fail "dimdim-status rc=$rc"; cat "$T/st1"; fi
check "dimdim-status asks for the project's containers" \
  grep -qx "docker ps -a --filter label=com.docker.compose.project=dimdim-health --format {{.Label \"com.docker.compose.service\"}}|{{.Status}}" "$calls"
# The stack's unit stays active, and compose ps exits 0, whatever the
# containers do: one that crash-loops, is unhealthy or is gone is what says
# the stack is not up.  One removed by hand (docker rm, "NAME|-": no line)
# is in no list compose ps or docker ps shows: only stack.conf's
# DIMDIM_SERVICES knows it is missing.
cp "$T/containers" "$T/containers.up"
for c in 'worker|Restarting (1) 3 seconds ago=worker restarting (1) 3 seconds ago' \
  'api|Up 5 minutes (unhealthy)=api unhealthy' 'db|Exited (0) 1 minute ago=db exited (0) 1 minute ago' \
  'redis|Up 5 minutes (Paused)=redis paused' 'worker|-=worker has no container' \
  '=no containers'; do
  grep -v "^${c%%|*}|" "$T/containers.up" >"$T/containers" || true
  if [[ $c == =* ]]; then
    : >"$T/containers"
  elif [[ ${c%%=*} != *'|-' ]]; then
    printf '%s\n' "${c%%=*}" >>"$T/containers"
  fi
  rc=0
  "$status" >"$T/st1s" 2>&1 || rc=$?
  if [[ $rc == 3 ]] && grep -qF "stack:       not up: ${c#*=} (docker logs" "$T/st1s"; then
    ok "dimdim-status exits 3 and says so: ${c#*=}"
  else
    fail "dimdim-status, ${c#*=}: rc=$rc $(cat "$T/st1s")"
  fi
done
# an image built before stack.conf listed the services: nothing to miss
grep -v '^worker|' "$T/containers.up" >"$T/containers"
grep -v '^DIMDIM_SERVICES=' "$T/fb/etc/stack.conf" >"$T/old.conf"
rc=0
DIMDIM_STACK_CONF=$T/old.conf "$status" >"$T/st1o" 2>&1 || rc=$?
if [[ $rc == 0 ]]; then ok "dimdim-status without DIMDIM_SERVICES checks the containers there are"; else fail "dimdim-status, no DIMDIM_SERVICES: rc=$rc $(cat "$T/st1o")"; fi
cp "$T/containers.up" "$T/containers"
check "dimdim-status shows role and services" grep -q 'role:        app' "$T/st1"
check "dimdim-status lists the stack" grep -q 'services:' "$T/st1"
# An observability Pi whose CPU has no AES (a Pi 4): OpenObserve's standard
# image cannot run there, and while it does not answer the status says why.
# (Nothing answers on :5080 here: port 1 of the test host is not used.)
sed 's/^DIMDIM_ROLE=app$/DIMDIM_ROLE=observability/' "$T/fb/etc/stack.conf" >"$T/obs.conf"
cp -r "$T/fb/state" "$T/obs-state"
sed -i 's/^ROLE=.*/ROLE=observability/' "$T/obs-state/status"
printf 'processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' >"$T/cpuinfo-pi4"
printf 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n' >"$T/cpuinfo-pi5"
if command -v curl >/dev/null 2>&1; then
  DIMDIM_STACK_CONF=$T/obs.conf DIMDIM_STATE_DIR=$T/obs-state DIMDIM_CPUINFO=$T/cpuinfo-pi4 "$status" >"$T/st-aes" 2>&1 || true
  check "observability without AES: the status says the CPU has none" grep -q "this CPU has no AES instructions" "$T/st-aes"
  check "observability without AES: ... and names OPENOBSERVE_IMAGE" \
    grep -q "OPENOBSERVE_IMAGE in /opt/dimdim-health/.env names an '-arm64-pi' build" "$T/st-aes"
  DIMDIM_STACK_CONF=$T/obs.conf DIMDIM_STATE_DIR=$T/obs-state DIMDIM_CPUINFO=$T/cpuinfo-pi5 "$status" >"$T/st-aes5" 2>&1 || true
  check "observability with AES: no such hint" grep -q 'openobserve: not answering' "$T/st-aes5"
  check_fails "observability with AES: no AES hint" grep -q 'no AES' "$T/st-aes5"
fi
echo failed >"$T/unit-state"
rc=0
"$status" >"$T/st1b" 2>&1 || rc=$?
if [[ $rc == 3 ]]; then ok "dimdim-status exits 3 when provisioned but the stack unit failed"; else fail "dimdim-status, stack failed: rc=$rc"; cat "$T/st1b"; fi
check "dimdim-status says the stack unit failed" grep -q '^stack unit:  failed (systemctl status dimdim-stack' "$T/st1b"
rm -f "$T/unit-state"
# The unit (a oneshot) stays active while the daemon is down: the services
# that cannot be listed by one who may are what says so.
touch "$T/daemon-down"
rc=0
"$status" >"$T/st1c" 2>&1 || rc=$?
rm -f "$T/daemon-down"
if [[ $rc == 3 ]]; then ok "dimdim-status exits 3 when the services cannot be listed"; else fail "dimdim-status, daemon down: rc=$rc"; cat "$T/st1c"; fi
check "... and says so" grep -q '^stack:       its services cannot be listed' "$T/st1c"
check_fails "... without the sudo hint to one who may list them" grep -q 'sudo dimdim-status' "$T/st1c"
# Run by one who may not read .env (the Pi's user in the docker group, a
# monitoring script without sudo; nobody here): stack ps refuses, and the
# status says to use sudo, yet each container still counts.
if ((EUID == 0)) && command -v setpriv >/dev/null; then
  mkdir -p "$T/np" && cp "$status" "$T/np/dimdim-status"
  chmod o+x "$T" && chmod -R o+rX "$T/np" "$T/fb/etc" "$T/fb/state" "$T/fb/stack" "$bin" "$T/containers" \
    && chmod o+w "$calls"
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$T/np/dimdim-status" >"$T/st-np" 2>&1; }
  rc=0; as_nobody || rc=$?
  [[ $rc == 0 ]] && grep -q 'cannot list services as this user: sudo dimdim-status' "$T/st-np" \
    && ok "dimdim-status as a user who may not read .env: the sudo hint, exit 0 with every container up" \
    || fail "dimdim-status unprivileged, all up: rc=$rc $(cat "$T/st-np")"
  printf '%s\n' 'worker|Restarting (1) 3 seconds ago' >>"$T/containers"
  grep -v '^worker|Up' "$T/containers" >"$T/containers.np" && cat "$T/containers.np" >"$T/containers"
  rc=0; as_nobody || rc=$?
  [[ $rc == 3 ]] && grep -qF 'stack:       not up: worker restarting (1) 3 seconds ago' "$T/st-np" \
    && ok "... and exit 3 with a container crash-looping" || fail "dimdim-status unprivileged, crash loop: rc=$rc $(cat "$T/st-np")"
  cp "$T/containers.up" "$T/containers"
else
  echo "skip - dimdim-status as another user needs root and setpriv"
fi

# Second run: idempotent, nothing re-done.
: >"$calls"
rc=0
"$firstboot" >"$T/fb2.out" 2>&1 || rc=$?
if [[ $rc == 0 ]]; then ok "second run exits 0"; else fail "second run rc=$rc"; fi
check "second run does nothing" test ! -s "$calls"

# A reboot during the Docker install left dpkg half done: apt would refuse
# everything and the docker group would be missing, so dpkg finishes first.
rm -f "$T/fb/state/firstboot.done" "$bin/docker"
touch "$T/dpkg-interrupted"
provision fb4 "an interrupted install: provisioning completes"
check "an interrupted install is finished first" \
  grep -qx 'dimdim-firstboot: finishing an interrupted package installation (dpkg --configure -a)' "$T/fb4.out"
cfg=$(grep -n -m 1 '^dpkg --configure -a' "$calls" | cut -d: -f1)
inst=$(grep -n -m 1 '^apt-get install' "$calls" | cut -d: -f1)
if [[ -n $cfg && -n $inst ]] && ((cfg < inst)); then ok "dpkg --configure -a runs before apt-get install"; else fail "order: configure at ${cfg:-none}, install at ${inst:-none}"; fi
# A package left unpacked without its dependency: dpkg --configure -a cannot
# finish it, apt-get -f install does (it must not stop the retries).  The
# docker binary is there, its daemon not: starting it would not help.
rm -f "$T/fb/state/firstboot.done"
printf '#!/bin/bash\necho "docker $*" >>"%s"\n[[ $* == "compose version" ]]\n' "$calls" >"$bin/docker"
chmod +x "$bin/docker"
touch "$T/dpkg-interrupted" "$T/dpkg-needs-dep"
: >"$calls"
provision fb5 "a missing dependency: provisioning completes"
check "a missing dependency: apt-get install -f fixes it" grep -q '^apt-get install -y -f ' "$calls"
check_fails "a missing dependency: no failed attempt" grep -q 'attempt [0-9]* failed' "$T/fb5.out"

# Docker installed, its daemon stopped, and a package of no concern to it
# broken for good (dpkg --configure -a and apt-get install fail every time):
# starting docker.service is enough, and is tried.
rm -f "$T/fb/state/firstboot.done" "$T/dpkg-interrupted" "$T/dpkg-needs-dep"
cp "$T/docker.real" "$bin/docker"
touch "$T/daemon-down" "$T/dpkg-other-broken"
: >"$calls"
provision fb9 "another package broken: Docker is started, provisioning completes"
check "another package broken: docker.service started" grep -qx 'systemctl start docker.service' "$calls"
check_fails "another package broken: no failed attempt" grep -q 'attempt [0-9]* failed' "$T/fb9.out"
rm -f "$T/daemon-down" "$T/dpkg-other-broken"

# A compose up that says nothing for DIMDIM_UP_IDLE is stopped, with what
# it started (its session), and retried.
rm -f "$T/fb/state/firstboot.done"
touch "$T/up-stall-once"
: >"$calls"
DIMDIM_UP_IDLE=2 provision fb10 "a stalled compose up: provisioning completes"
check "a stalled compose up is named and retried" \
  grep -qx 'dimdim-firstboot: attempt 1 failed: compose up said nothing for 2 s, stopped (a stalled pull or build? see '"$T"'/fb/log/firstboot.log); retrying in 5 s' "$T/fb10.out"
check_fails "... and nothing of it is left running" pgrep -f -- "$T/"
rm -f "$T/up-stall-once"
# Silence, not time: an up that talks more often than the limit runs on,
# however long it takes in all (its lines come through the stack's redact).
rm -f "$T/fb/state/firstboot.done"
touch "$T/up-slow"
DIMDIM_UP_IDLE=3 provision fb12 "a slow compose up that keeps talking: provisioning completes"
rm -f "$T/up-slow"
check_fails "... without being stopped" grep -q 'said nothing' "$T/fb12.out"

# A .env edited by hand with a typo: compose's error quotes the file, and
# neither the console, the log nor the status shows the secret.
rm -f "$T/fb/state/firstboot.done"
touch "$T/env-typo" "$T/stop-at-sleep"
{ timeout -k 10 60 "$firstboot" >"$T/fb11.out" 2>&1; } 2>/dev/null  # not "Terminated"
rm -f "$T/env-typo"
# (cut at the first quote: in the file's path, when $T has one)
if [[ $T == *[\"\']* ]]; then cut="failed to read ${T%%[\"\']*}(rest not shown)"; else cut='unexpected character (rest not shown)'; fi
check "compose's error about .env is shown, cut" grep -qF -- "$cut" "$T/fb11.out"
check_fails "... without the secret (console, log, status)" grep -rqF "$secret" "$T/fb11.out" "$T/fb/log" "$T/fb/state"
# ... and dimdim-stack alone (dimdim-stack.service's journal) cuts them too,
# its own line after compose's
touch "$T/env-typo"
"$T/fb/stack" up >"$T/st-typo.out" 2>&1
rm -f "$T/env-typo"
check_fails "dimdim-stack: compose's error without the secret" grep -qF "$secret" "$T/st-typo.out"
[[ $(tail -n 1 "$T/st-typo.out") == "dimdim-stack: compose up failed"* ]] \
  && ok "dimdim-stack: its own line after compose's, not before" || fail "dimdim-stack's output: $(tr '\n' '|' <"$T/st-typo.out")"
[[ $(stat -c %a "$T/fb/log/firstboot.log") == 640 ]] && ok "the log is 0640" || fail "log mode $(stat -c %a "$T/fb/log/firstboot.log")"

# Trixie's split: docker-cli (the docker command) and docker-buildx named,
# where apt knows them; Bookworm's install above named neither.
rm -f "$T/fb/state/firstboot.done" "$T/dpkg-interrupted" "$T/dpkg-needs-dep" "$bin/docker"
touch "$T/trixie"
: >"$calls"
provision fb7 "trixie: provisioning completes"
check "trixie: installs docker-cli and docker-buildx too" \
  grep -q 'apt-get install -y -f --no-install-recommends .*docker.io docker-compose docker-cli docker-buildx$' "$calls"
check_fails "trixie: no failed attempt" grep -q 'attempt [0-9]* failed' "$T/fb7.out"
rm -f "$T/trixie"

# A locale that does not compile is reported once, not retried: it must not
# hold back Docker and the stack.
rm -f "$T/fb/state/firstboot.done" "$T/dpkg-interrupted" "$T/dpkg-needs-dep"
cp "$bin/locale-gen" "$T/locale-gen.ok"
# shellcheck disable=SC2016 # $* and $calls are the stand-in's, at its run
printf '#!/bin/bash
%s
echo "locale-gen $*" >>"$calls"
echo "xx_YY.UTF-8: no such locale" >&2
exit 1
' "$(vars)" >"$bin/locale-gen"
: >"$calls"
provision fb6 "a failing locale-gen: provisioning completes"
check "a failing locale-gen is reported" grep -q '^dimdim-firstboot: locale-gen failed (see .*); going on without that locale' "$T/fb6.out"
[[ $(grep -c '^locale-gen' "$calls") == 1 ]] && ok "a failing locale-gen runs once" || fail "locale-gen ran $(grep -c '^locale-gen' "$calls") times"
cp "$T/locale-gen.ok" "$bin/locale-gen"

# A run that cannot finish leaves state "retrying" and dimdim-status exits 1.
rm -f "$T/fb/state/firstboot.done"
echo 1000 >"$T/up-failures"
touch "$T/stop-at-sleep"
{ timeout -k 10 60 "$firstboot" >"$T/fb3.out" 2>&1; } 2>/dev/null
rc=0
"$status" >"$T/st2" 2>&1 || rc=$?
if [[ $rc == 1 ]]; then ok "dimdim-status exits 1 while retrying"; else fail "dimdim-status while retrying: rc=$rc"; fi
check "dimdim-status shows the last error" grep -q 'last error:  compose up failed' "$T/st2"

# An error of an earlier step is not shown beside a later one still running
# (step 2 failed once; step 3's compose up is slow, not failing).
rm -f "$T/fb/state/firstboot.done" "$T/up-failures" "$bin/docker"
echo 1 >"$T/update-failures"
touch "$T/up-hang"
# stopped once compose up has started (timeout passes the TERM on to
# firstboot and its group, as it does at its end)
timeout -k 10 60 "$firstboot" >"$T/fb8.out" 2>&1 &
pid=$!
for _ in $(seq 150); do [[ -e $T/up-started ]] && break; /bin/sleep 0.2; done
kill -TERM "$pid"
{ wait "$pid"; } 2>/dev/null
rm -f "$T/up-hang" "$T/up-started"
# Stopped mid-command (timeout's SIGTERM, as systemctl stop sends): compose,
# in a session of its own, is stopped with it, and its output file removed.
for _ in $(seq 50); do pgrep -f -- "$T/" >/dev/null || break; /bin/sleep 0.2; done
check_fails "firstboot stopped mid-command: the command's session is stopped too" pgrep -f -- "$T/"
left=$(find "$T" -maxdepth 1 -name 'dimdim-firstboot.*')
[[ -z $left ]] && ok "... and its output file is removed" || fail "firstboot stopped left $left"
check "a slow step 3 after a failed step 2: the status is step 3's" grep -q "^STEP=.*3/4: stack" "$T/fb/state/status"
check "... and shows no last error" grep -qx "LAST_ERROR=''" "$T/fb/state/status"

# Stopped twice (timeout(1) signals its child, then its group; CI caught the
# second one landing in the clean-up): the second stop must not cut it
# short.  This rm, the clean-up's, stops its caller again first and removes
# nothing if that killed it, as a second stop a moment earlier would have.
real_rm=$(command -v rm)
cat >"$bin/rm" <<EOF
#!/bin/bash
if [[ \$1 == -f && \$2 == -- && -e $(printf %q "$T/rm-stop") ]]; then
  $(printf %q "$real_rm") -f $(printf %q "$T/rm-stop")
  kill -TERM "\$PPID"
  /bin/sleep 0.5
  read -r _ _ state _ <"/proc/\$PPID/stat" 2>/dev/null || exit 0
  [[ \$state != Z ]] || exit 0
fi
exec $(printf %q "$real_rm") "\$@"
EOF
chmod +x "$bin/rm"
rm -f "$T/fb/state/firstboot.done"
touch "$T/up-hang"
timeout -k 10 60 "$firstboot" >"$T/fb14.out" 2>&1 &
pid=$!
for _ in $(seq 150); do [[ -e $T/up-started ]] && break; /bin/sleep 0.2; done
touch "$T/rm-stop"
kill -TERM "$pid"
rc=0
{ wait "$pid" || rc=$?; } 2>/dev/null
"$real_rm" -f "$bin/rm" "$T/up-hang" "$T/up-started"
check_fails "stopped twice: the clean-up was reached" test -e "$T/rm-stop"
[[ $rc == 143 ]] && ok "... and the stop taken as one (TERM)" || fail "stopped twice: rc=$rc"
left=$(find "$T" -maxdepth 1 -name 'dimdim-firstboot.*')
[[ -z $left ]] && ok "... and the output file is removed" || fail "stopped twice, left $left"
find "$T" -maxdepth 1 -name 'dimdim-firstboot*' -delete
# the hanging up, and this rm if it outlived its caller, which holds the lock
for _ in $(seq 50); do pgrep -f -- "$T/" >/dev/null || break; /bin/sleep 0.2; done

# Stopped while mktemp makes a command's output file (CI once caught it
# there): the file is removed all the same.  This mktemp stops its caller
# once, before making the file, so the stop is trapped only after it ran;
# or ($T/mktemp-kill) makes the file, then stops its caller and itself
# before saying its name, as systemctl stop, which signals every process
# of the unit, may.
real_mktemp=$(command -v mktemp)
cat >"$bin/mktemp" <<EOF
#!/bin/bash
if [[ \$1 != -u && -e $(printf %q "$T/mktemp-stop") ]]; then
  rm -f $(printf %q "$T/mktemp-stop")
  kill -TERM "\$PPID"
fi
if [[ \$1 != -u && -e $(printf %q "$T/mktemp-kill") ]]; then
  rm -f $(printf %q "$T/mktemp-kill")
  name=\$($(printf %q "$real_mktemp") "\$@") || exit
  kill -TERM "\$PPID" "\$\$"
  printf '%s\n' "\$name"
  exit 0
fi
exec $(printf %q "$real_mktemp") "\$@"
EOF
chmod +x "$bin/mktemp"
# stopped_run FLAG LABEL: first boot run afresh until the stand-in that
# FLAG ($T/FLAG) arms stops it, which must be taken as a stop
stopped_run() {
  local rc=0
  rm -f "$T/fb/state/firstboot.done"
  touch "$T/$1"
  { timeout -k 1 20 "$firstboot" >"$T/$1.out" 2>&1 || rc=$?; } 2>/dev/null  # not "Terminated"
  check_fails "$2: the stop was taken" test -e "$T/$1"
  [[ $rc == 143 ]] && ok "... as a stop (TERM)" || fail "$2: rc=$rc"
}
stopped_run mktemp-stop "stopped while mktemp ran"
left=$(find "$T" -maxdepth 1 -name 'dimdim-firstboot*')
[[ -z $left ]] && ok "... and the output file is removed" || fail "stopped while mktemp ran, left $left"
find "$T" -maxdepth 1 -name 'dimdim-firstboot*' -delete
stopped_run mktemp-kill "stopped with mktemp, after it made the file"
rm -f "$bin/mktemp"
left=$(find "$T" -maxdepth 1 -name 'dimdim-firstboot*')
[[ -z $left ]] && ok "... and the file mktemp made is removed" || fail "stopped with mktemp, left $left"

# Stopped while the status file is written: its temporary goes too.  This
# date, write_status's, stops its caller first.
real_date=$(command -v date)
cat >"$bin/date" <<EOF
#!/bin/bash
if [[ \$1 == +%s && -e $(printf %q "$T/date-stop") ]]; then
  rm -f $(printf %q "$T/date-stop")
  kill -TERM "\$PPID"
fi
exec $(printf %q "$real_date") "\$@"
EOF
chmod +x "$bin/date"
stopped_run date-stop "stopped while the status was written"
rm -f "$bin/date"
check_fails "... and status.tmp is removed" test -e "$T/fb/state/status.tmp"

# A stop between two commands signals no session: the command before is
# reaped, and its pid, its session's id, may be another process's by then.
# locale-gen leaves a process in its session to show it, which must live on
# when firstboot is stopped in the next command's mktemp, or in the redact
# of locale-gen's output.
real_sed=$(command -v sed)
cp "$bin/locale-gen" "$T/locale-gen.ok"
cat >"$bin/locale-gen" <<EOF
#!/bin/bash
$(vars)
echo "locale-gen \$*" >>"\$calls"
(exec -a "\$T/leftover" /bin/sleep 30) </dev/null >/dev/null 2>&1 &
echo \$! >"\$T/leftover.pid"
EOF
# stand_in CMD REAL WHEN: CMD stops its caller once, when WHEN holds (its
# arguments are firstboot's output file's, or redact's) after locale-gen ran
stand_in() {
  cat >"$bin/$1" <<EOF
#!/bin/bash
$(vars)
if [[ $3 && -e "\$T/stop-in-$1" && -e "\$T/leftover.pid" ]]; then
  rm -f "\$T/stop-in-$1"
  kill -TERM "\$PPID"
fi
exec $(printf %q "$2") "\$@"
EOF
}
# shellcheck disable=SC2016 # $1 is the stand-in's, at its run
stand_in mktemp "$real_mktemp" '$1 != -u'
# shellcheck disable=SC2016
stand_in sed "$real_sed" '$1 == -u'
chmod +x "$bin/locale-gen" "$bin/mktemp" "$bin/sed"
for c in mktemp sed; do
  rm -f "$T/fb/state/firstboot.done" "$T/leftover.pid"
  touch "$T/stop-in-$c"
  rc=0
  { timeout -k 1 20 "$firstboot" >"$T/fb13.out" 2>&1 || rc=$?; } 2>/dev/null
  check_fails "stopped in $c after a command: the stop was taken" test -e "$T/stop-in-$c"
  [[ $rc == 143 ]] && ok "... as a stop (TERM)" || fail "stopped in $c after a command: rc=$rc"
  /bin/sleep 0.3 # a process signalled is gone by then (a zombie, where nothing reaps it)
  lp=$(cat "$T/leftover.pid" 2>/dev/null || true)
  if [[ -n $lp && $(cut -d' ' -f3 "/proc/$lp/stat" 2>/dev/null) == [RSD] ]]; then
    ok "... and the command before's session is not signalled"
    kill "$lp"
  else
    fail "stopped in $c after a command: the command before's session was signalled"
  fi
done
rm -f "$bin/mktemp" "$bin/sed"
cp "$T/locale-gen.ok" "$bin/locale-gen"
left=$(find "$T" -maxdepth 1 -name 'dimdim-firstboot*')
[[ -z $left ]] && ok "... and no output file is left" || fail "stopped after a command, left $left"

# stack: refuses a missing .env; prints the up line.
rm -f "$T/up-failures"
check "stack up prints its files" bash -c "'$T/fb/stack' up | grep -qx 'dimdim-stack: up (deploy/docker-compose.app.yml deploy/docker-compose.log-shipping.yml)'"
mv "$T/fb/app/.env" "$T/fb/app/env.bak"
check_fails "stack refuses to run without .env" "$T/fb/stack" up
mv "$T/fb/app/env.bak" "$T/fb/app/.env"
rm -f "$bin/docker"
check_fails "stack fails cleanly without docker" "$T/fb/stack" ps

summary
