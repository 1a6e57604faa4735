#!/bin/sh
# Runs INSIDE the QEMU guest (test-only; tests/e2e/run.sh writes it into the
# built image as /usr/local/lib/e2e/report with e2e-report.service).
# Waits (bounded) for first-boot provisioning, prints what the test asserts
# on to the console, every line prefixed "e2e-report: ", then exits so that
# SuccessAction=poweroff powers the guest off. Prints no secret: it never
# reads /opt/dimdim-health/.env.
set -u

WAIT=420        # seconds to wait for /var/lib/dimdim/firstboot.done
STACK_WAIT=180  # seconds to wait for dimdim-stack.service to settle
# shellcheck disable=SC1091
[ -r /etc/e2e/report.conf ] && . /etc/e2e/report.conf

say() { echo "e2e-report: $*"; }
# each output line of a command, prefixed with a tag
show() {
  tag=$1
  shift
  "$@" 2>&1 | sed "s|^|e2e-report: $tag: |"
}
state() { sed -n 's/^STATE=//p' /var/lib/dimdim/status 2>/dev/null; }

say "begin boot $(cat /proc/sys/kernel/random/boot_id) uptime $(cut -d' ' -f1 /proc/uptime)"
say "multi-user.target: $(systemctl is-active multi-user.target)"
say "system: $(systemctl is-system-running)"

start=$(cut -d. -f1 /proc/uptime)
reported_retry=0
while [ ! -e /var/lib/dimdim/firstboot.done ]; do
  now=$(cut -d. -f1 /proc/uptime)
  if [ $((now - start)) -ge "$WAIT" ]; then
    say "TIMEOUT waiting for /var/lib/dimdim/firstboot.done after $WAIT s (state $(state))"
    break
  fi
  # While first boot is retrying, show what the user would see.
  if [ "$reported_retry" = 0 ] && [ "$(state)" = retrying ]; then
    reported_retry=1
    say "while retrying: multi-user.target: $(systemctl is-active multi-user.target)"
    say "while retrying: firstboot unit: $(systemctl is-active dimdim-firstboot.service)"
    show "while retrying: dimdim-status" dimdim-status
    dimdim-status >/dev/null 2>&1
    say "while retrying: dimdim-status exit $?"
  fi
  sleep 1
done

# First boot starts dimdim-stack.service (a oneshot) as it finishes, and it
# runs at every later boot: let both settle.
i=0
while [ $i -lt 60 ] && systemctl -q is-active dimdim-firstboot.service; do
  sleep 1
  i=$((i + 1))
done
i=0
while [ $i -lt "$STACK_WAIT" ]; do
  s=$(systemctl is-active dimdim-stack.service)
  [ "$s" = activating ] || [ "$(systemctl show -p Job --value dimdim-stack.service)" != "" ] || break
  sleep 1
  i=$((i + 1))
done

if command -v cloud-init >/dev/null 2>&1; then
  timeout 300 cloud-init status --wait >/dev/null 2>&1
  show cloud-init cloud-init status --long
  # dimimage's drop-in orders the local stage after the seed's mount
  after=no
  systemctl show -p After --value cloud-init-local.service | tr ' ' '\n' | grep -qx boot-firmware.mount && after=yes
  mounted=$(systemctl show -p ActiveEnterTimestampMonotonic --value boot-firmware.mount)
  started=$(systemctl show -p InactiveExitTimestampMonotonic --value cloud-init-local.service)
  say "cloud-init-local: after boot-firmware.mount: $after; started ${started:-?} us, boot partition mounted ${mounted:-?} us"
fi

# boot is not held by the stack's `up`: multi-user.target does not wait for it
waits=no
systemctl show -p After --value multi-user.target | tr ' ' '\n' | grep -qx dimdim-stack.service && waits=yes
say "multi-user.target waits for dimdim-stack: $waits"
say "firstboot.done: $([ -e /var/lib/dimdim/firstboot.done ] && echo yes || echo no)"
show status-file cat /var/lib/dimdim/status
for u in dimdim-firstboot.service dimdim-stack.service docker.service ssh.service; do
  say "unit $u: enabled=$(systemctl is-enabled "$u" 2>/dev/null) active=$(systemctl is-active "$u") $(systemctl show -p ConditionResult -p Result "$u" | tr '\n' ' ')"
done
say "multi-user.target: $(systemctl is-active multi-user.target)"
say "system: $(systemctl is-system-running)"
show failed systemctl --failed --no-legend --plain
show ip ip -4 -o addr show
show route ip -4 route show default
# One line per active connection, as NetworkManager sees it.
nmcli -t -f UUID,FILENAME connection show --active 2>/dev/null | while IFS=: read -r c file; do
  say "nm: $(nmcli -t -f connection.type,connection.id,ipv4.method,ipv4.addresses,ipv4.gateway connection show "$c" | paste -sd' ') file=$file"
done
say "hostname: $(hostname)"
show hostnamectl hostnamectl
say "timezone: $(timedatectl show -p Timezone --value 2>/dev/null) localtime -> $(readlink /etc/localtime)"
getent passwd | awk -F: '$3 >= 1000 && $3 < 60000 {print $1}' | while read -r u; do
  say "user $u: $(id "$u") home $(getent passwd "$u" | cut -d: -f6)"
done
show dimdim-status dimdim-status
dimdim-status >/dev/null 2>&1
say "dimdim-status exit $?"
say "end"
