#!/usr/bin/env bash
# Build a bootable arm64 base image shaped like Raspberry Pi OS, for the QEMU
# end-to-end test (tests/e2e/run.sh):
#   MBR (disk id), p1 FAT32 "bootfs" at sector 8192 with config.txt, cmdline.txt,
#   kernel8.img and initramfs8; p2 ext4 "rootfs" with a real Debian systemd
#   userland made by mmdebstrap (qemu-user-static through binfmt_misc).
# The Debian kernel replaces the Pi's: it boots on `qemu-system-aarch64 -M virt`,
# a Pi kernel does not. Docker is NOT installed: a local apt repository inside
# the image offers stand-in docker.io/docker-compose packages (see
# scripts/e2e-docker-standin and docs/e2e.md) so first boot really installs them
# with apt-get, offline.
#
# Usage: make-bootable-fixture.sh -o OUT.img [--flavour bookworm|trixie]
#                                 [--disk-id HEX] [--rootfs-only]
# The slow part (mmdebstrap, ~10 min) is cached as a tarball under
# ${DIMIMAGE_E2E_CACHE:-~/.cache/dimimage-e2e}, keyed by the package list and the
# version of the rootfs recipe; assembling the image from it takes seconds.
# Needs root (mmdebstrap --mode=root, mkfs.ext4 -d keeping owners); CI is root.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
# Outside the work tree by default, so fresh clones (CI) on the same machine
# reuse it; entries are keyed by content, so sharing is safe.
if [[ -n ${DIMIMAGE_E2E_CACHE:-} ]]; then CACHE=$DIMIMAGE_E2E_CACHE
elif [[ ${XDG_CACHE_HOME:-} == /* ]]; then CACHE=$XDG_CACHE_HOME/dimimage-e2e
elif [[ ${HOME:-} == /* ]]; then CACHE=$HOME/.cache/dimimage-e2e
else
  echo "make-bootable-fixture: error: no cache directory: set DIMIMAGE_E2E_CACHE, XDG_CACHE_HOME or HOME" >&2
  exit 1
fi
MIRROR=${DIMIMAGE_E2E_MIRROR:-http://deb.debian.org/debian}
# Bump when the mmdebstrap recipe below changes in a way the package list does not show.
ROOTFS_RECIPE=5

out=""
flavour=bookworm
disk_id=""
rootfs_only=0

die() { echo "make-bootable-fixture: error: $*" >&2; exit 1; }
say() { echo "make-bootable-fixture: $*" >&2; }

while (($#)); do
  case $1 in
    -o) out=${2:?}; shift 2 ;;
    --flavour) flavour=${2:?}; shift 2 ;;
    --disk-id) disk_id=${2:?}; shift 2 ;;
    --rootfs-only) rootfs_only=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n $out || $rootfs_only == 1 ]] || die "missing -o OUT.img"
((EUID == 0)) || die "must run as root (mmdebstrap --mode=root, file owners in the rootfs)"

packages=(systemd-sysv udev kmod dbus network-manager openssh-server sudo iproute2
  netbase tzdata procps linux-image-arm64 initramfs-tools)
case $flavour in
  bookworm) [[ -n $disk_id ]] || disk_id=5e3da3da ;;
  # Trixie-based Raspberry Pi OS customises itself with cloud-init (NoCloud on the
  # boot partition); cloud-init is a Debian package, so the fixture has the real one.
  # e2fsprogs is Priority required in bookworm but not in trixie (so not in
  # minbase); Raspberry Pi OS has it, and cloud-init's resizefs needs resize2fs.
  trixie) [[ -n $disk_id ]] || disk_id=7a1c1e00; packages+=(cloud-init netplan.io e2fsprogs) ;;
  *) die "--flavour must be bookworm or trixie" ;;
esac
[[ $disk_id =~ ^[0-9a-fA-F]{8}$ ]] || die "--disk-id must be 8 hex digits"
disk_id=${disk_id,,}

key=$(printf '%s\n' "$flavour" "$MIRROR" "$ROOTFS_RECIPE" "${packages[@]}" | sha256sum | cut -c1-16)
tarball=$CACHE/rootfs-$flavour-$key.tar.zst

# --- qemu-user-static through binfmt_misc, so arm64 maintainer scripts run here
setup_binfmt() {
  # The e2e test makes both flavours at once: on a fresh machine both may
  # find it unmounted, and the second mount then fails ("already mounted").
  if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      [[ -e /proc/sys/fs/binfmt_misc/status ]] || die "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc"
  fi
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
  arch-test arm64 >/dev/null || die "cannot run arm64 binaries (qemu-user-static + binfmt_misc); install qemu-user-static binfmt-support arch-test"
}

# stamp: prefix each line with the seconds since the rootfs build started
stamp() {
  local t0=$SECONDS line
  while IFS= read -r line; do printf '[%4ds] %s\n' $((SECONDS - t0)) "$line"; done
}

# --- the slow part: a Debian arm64 systemd userland with the kernel
build_rootfs() {
  setup_binfmt
  local include
  include=$(IFS=,; echo "${packages[*]}")
  say "mmdebstrap $flavour arm64 (cached as $tarball; ~10 min under emulation)"
  # MODULES=list with only what the virt machine needs to find its root: the
  # default (MODULES=most) makes each initramfs generation take ~20 min under
  # qemu-user. It must be set before linux-image-arm64 is configured.
  # eatmydata turns dpkg's thousands of fsyncs into no-ops while the tree is
  # built (the tarball is written once at the end); mmdebstrap removes it again.
  local hooks=()
  [[ -d /usr/share/mmdebstrap/hooks/eatmydata ]] && hooks+=(--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata)
  # --verbose with a clock in front of each line: the log shows where the
  # minutes go (dpkg unpack/configure under qemu-user, initramfs, triggers).
  # INITRD=No: the kernel's postinst hook does not build an initramfs that the
  # initramfs-tools trigger would build again a minute later (~50 s each under
  # qemu-user); the customize hook builds the one that is kept, unless the
  # environment did not reach dpkg and the usual two already ran.
  # shellcheck disable=SC2016 # the hooks' $1 is expanded by mmdebstrap's shell
  INITRD=No nice -n 10 mmdebstrap --mode=root --variant=minbase --arch=arm64 --verbose "${hooks[@]}" \
    --include="$include" \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
    --essential-hook='printf "MODULES=list\nCOMPRESS=gzip\n" > "$1/etc/initramfs-tools/conf.d/e2e-virt.conf"' \
    --essential-hook='printf "virtio_pci\nvirtio_blk\next4\n" > "$1/usr/share/initramfs-tools/modules.d/e2e-virt"' \
    --customize-hook='ls "$1"/boot/initrd.img-* >/dev/null 2>&1 || chroot "$1" update-initramfs -c -k all' \
    "$flavour" "$tarball.tmp.tar.zst" "$MIRROR" 2>&1 | stamp >&2
  mv "$tarball.tmp.tar.zst" "$tarball"
  # Older recipes' tarballs of this flavour are dead weight now.
  find "$CACHE" -maxdepth 1 -name "rootfs-$flavour-*.tar.zst" ! -name "*.tmp.*" ! -path "$tarball" -delete
}

if [[ ! -f $tarball ]]; then
  mkdir -p "$CACHE"
  # One build per tarball: make check starts them early, in the background
  # (scripts/check.sh), and the e2e test asks for the same ones later; the
  # second to come waits for the first and takes what it made.
  exec {lock}>"$tarball.lock"
  if ! flock -n "$lock"; then
    say "waiting for the $flavour rootfs build under way ($tarball.lock)"
    flock "$lock"
  fi
  if [[ -f $tarball ]]; then say "using the rootfs just built, $tarball"; else build_rootfs; fi
  exec {lock}>&-
else
  say "using cached rootfs $tarball"
fi
((rootfs_only)) && exit 0

# --- assemble the image without mounting anything
work=$(mktemp -d "${TMPDIR:-/tmp}/bootable-fixture.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root boot=$work/boot
mkdir -p "$root" "$boot"
tar --numeric-owner --same-owner -xpf "$tarball" -C "$root"

kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n 1)
[[ -f $kernel && -f $initrd ]] || die "no kernel/initramfs in $tarball"
# The Pi firmware and QEMU's -kernel both want an uncompressed arm64 Image.
if [[ $(head -c 2 "$kernel" | od -An -tx1 | tr -d ' ') == 1f8b ]]; then
  gzip -dc "$kernel" > "$boot/kernel8.img"
else
  cp "$kernel" "$boot/kernel8.img"
fi
cp "$initrd" "$boot/initramfs8"

# The boot partition as Raspberry Pi OS lays it out (only what QEMU needs of it
# is real; config.txt is read by dimimage, not by QEMU).
cat > "$boot/config.txt" <<'EOF'
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
EOF
# Raspberry Pi OS's cmdline minus what only exists there (Bookworm's
# init=/usr/lib/raspberrypi-sys-mods/firstboot) and with QEMU's serial port.
# Trixie's trailing "resize" is kept: it is inert without rpi-resize.
cmdline="console=ttyAMA0,115200 root=PARTUUID=$disk_id-02 rootfstype=ext4 fsck.repair=yes rootwait"
[[ $flavour == trixie ]] && cmdline+=" resize"
printf '%s\n' "$cmdline" > "$boot/cmdline.txt"

# --- root filesystem: what Raspberry Pi OS has that a bare mmdebstrap does not
cat > "$root/etc/fstab" <<EOF
proc            /proc           proc    defaults          0       0
PARTUUID=$disk_id-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$disk_id-02  /               ext4    defaults,noatime  0       1
EOF
mkdir -p "$root/boot/firmware"
echo raspberrypi > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1		raspberrypi
EOF
# Raspberry Pi OS ships sshd disabled (pi-gen: `systemctl disable ssh` unless
# ENABLE_SSH); Debian's postinst enabled it. Undo that, as disable would.
rm -f "$root/etc/systemd/system/multi-user.target.wants/ssh.service" \
  "$root/etc/systemd/system/sshd.service" \
  "$root/etc/systemd/system/sockets.target.wants/ssh.socket"
# A persistent journal, so the test can read it offline after power-off.
mkdir -p "$root/var/log/journal"
# No Docker: a local apt repository whose docker.io/docker-compose packages
# carry the stand-in (scripts/e2e-docker-standin), for first boot to install.
"$TOP/scripts/e2e-docker-standin" --make-repo "$root/var/local/e2e-repo" "$flavour"
# No internet in tests: the only apt source is the local repository.
rm -f "$root/etc/apt/sources.list"
find "$root/etc/apt/sources.list.d" -mindepth 1 -delete 2>/dev/null || true
echo 'deb [trusted=yes] file:/var/local/e2e-repo ./' > "$root/etc/apt/sources.list.d/e2e-local.list"

if [[ $flavour == trixie ]]; then
  # Raspberry Pi OS (Trixie) configures cloud-init as pi-gen's stage2/04-cloud-init
  # does: NoCloud seeded from the boot partition mounted at /boot/firmware, host
  # keys left alone, and netplan handing every device to NetworkManager.
  mkdir -p "$root/etc/cloud/cloud.cfg.d" "$root/usr/lib/netplan"
  cat > "$root/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg" <<'EOF'
# cloud-init on Raspberry Pi OS: NoCloud, seeded from the boot partition

datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    seedfrom: file:///boot/firmware

ssh:
  emit_keys_to_console: false
no_ssh_fingerprints: true
ssh_deletekeys: false
ssh_genkeytypes: []
EOF
  # Like Raspberry Pi OS (canonical/cloud-init#6614), nothing here orders
  # cloud-init-local (DefaultDependencies=no) after the boot partition's mount:
  # the drop-in dimimage writes into trixie images does, and the e2e checks it.
  printf 'network:\n  version: 2\n  renderer: NetworkManager\n' > "$root/usr/lib/netplan/00-network-manager-all.yaml"
  chmod 0600 "$root/usr/lib/netplan/00-network-manager-all.yaml"
fi

# --- the disk: MBR, p1 FAT32 512 MiB at 8192, p2 ext4 sized to the tree
used_k=$(du -sk --apparent-size "$root" | cut -f1)
root_mib=$(((used_k * 13 / 10 / 1024) + 768))
boot_mib=512
boot_start=8192
root_start=$((boot_start + boot_mib * 2048))
total_sectors=$((root_start + root_mib * 2048))
rm -f "$out.tmp"
truncate -s $((total_sectors * 512)) "$out.tmp"
sfdisk --quiet --no-reread --no-tell-kernel "$out.tmp" <<EOF
label: dos
label-id: 0x$disk_id
unit: sectors

start=$boot_start, size=$((boot_mib * 2048)), type=c
start=$root_start, size=$((root_mib * 2048)), type=83
EOF
# (mkfs.fat warns that the file is larger than the partition and about the
# lowercase label Raspberry Pi OS uses: both expected.)
mkfs.vfat -F 32 -n bootfs -i "${disk_id^^}" --offset "$boot_start" "$out.tmp" $((boot_mib * 1024)) \
  >"$work/mkfs.vfat.out" 2>&1 || { cat "$work/mkfs.vfat.out" >&2; die "mkfs.vfat failed"; }
mcopy -o -i "$out.tmp@@$((boot_start * 512))" "$boot"/* ::
# Raspberry Pi OS's rootfs features (no orphan_file/metadata_csum_seed, which
# older kernels and e2fsprogs refuse).
mkfs.ext4 -q -F -L rootfs -O '^orphan_file,^metadata_csum_seed' \
  -E "offset=$((root_start * 512)),root_owner=0:0" -d "$root" \
  "$out.tmp" $((root_mib * 1024))k
mv "$out.tmp" "$out"
say "wrote $out ($flavour, disk id $disk_id, rootfs ${root_mib} MiB)"
