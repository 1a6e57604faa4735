#!/usr/bin/env bash
# make-fixture.sh: build a small Raspberry-Pi-OS-shaped disk image without root
# (MBR; p1 FAT32 "bootfs"; p2 ext4 "rootfs", last), deterministically, for tests.
# See docs/fixtures.md.  Every byte depends only on the options and
# SOURCE_DATE_EPOCH (default 1700000000).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: make-fixture.sh -o OUT [options]
  -o OUT                 output image (required)
  --flavour F            bookworm (p1 at 8192) | trixie (p1 at 16384); default bookworm
  --boot-size MiB        boot partition size (default 256)
  --root-size MiB        root partition size (default 320)
  --fat 16|32            boot FAT type (default 32)
  --cluster BYTES        FAT cluster size (default 2048 for FAT32, mkfs.fat's choice for FAT16)
  --fat-root-entries N   FAT12/16 root directory entries (mkfs.fat -r)
  --ext4-features LIST   passed to mkfs.ext4 -O (e.g. ^64bit,orphan_file)
  --inode-size N         ext4 inode size (default 256; 128 has no room for times past 2038)
  --ext4-size-fill MiB   add /var/cache/fill.bin of MiB (non-zero data) to the root fs
  --root-free-kib N      fill the root fs so about N KiB stay free
  --disk-id HEX          MBR disk id (default 2a7c1d5e)
  --table dos|gpt|none   partition table (default dos)
  --uppercase-83         CMDLINE.TXT / CONFIG.TXT stored as upper-case 8.3 names only
  --extra-root DIR       copy DIR's tree into the root fs
  --extra-boot DIR       copy DIR's tree into the boot fs
  --first-user NAME:SHELL  the image's first user (uid 1000, password "!", /home/NAME, subuid/subgid), as
                         pi-gen makes it: pi:/bin/bash (bookworm), pi:/usr/sbin/nologin
                         (trixie since 2026-04, pi-gen's adduser --disabled-login)
example: make-fixture.sh -o /tmp/base.img --flavour trixie --disk-id 0badcafe
EOF
}

die() { echo "make-fixture.sh: $*" >&2; exit 1; }

out="" flavour=bookworm boot_mib=256 root_mib=320 fat=32 cluster="" root_entries=""
features="" inode_size=256 fill_mib=0 free_kib="" disk_id=2a7c1d5e table=dos upper83=0 extra_root="" extra_boot="" first_user=""
while (($#)); do
  case $1 in
    -o) out=${2:?}; shift ;;
    --flavour|--flavor) flavour=${2:?}; shift ;;
    --boot-size) boot_mib=${2:?}; shift ;;
    --root-size) root_mib=${2:?}; shift ;;
    --fat) fat=${2:?}; shift ;;
    --cluster) cluster=${2:?}; shift ;;
    --fat-root-entries) root_entries=${2:?}; shift ;;
    --ext4-features) features=${2:?}; shift ;;
    --inode-size) inode_size=${2:?}; shift ;;
    --ext4-size-fill) fill_mib=${2:?}; shift ;;
    --root-free-kib) free_kib=${2:?}; shift ;;
    --disk-id) disk_id=${2:?}; shift ;;
    --table) table=${2:?}; shift ;;
    --uppercase-83) upper83=1 ;;
    --extra-root) extra_root=${2:?}; shift ;;
    --extra-boot) extra_boot=${2:?}; shift ;;
    --first-user) first_user=${2:?}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

[[ -n $out ]] || { usage >&2; die "-o OUT is required"; }
case $flavour in
  bookworm) boot_start=8192 ;;
  trixie) boot_start=16384 ;;
  *) die "--flavour must be bookworm or trixie" ;;
esac
[[ $fat == 16 || $fat == 32 ]] || die "--fat must be 16 or 32"
[[ $table == dos || $table == gpt || $table == none ]] || die "--table must be dos, gpt or none"
disk_id=${disk_id#0x}
disk_id=${disk_id,,}
[[ $disk_id =~ ^[0-9a-f]{8}$ ]] || die "--disk-id must be 8 hex digits"
for n in "$boot_mib" "$root_mib" "$fill_mib" ${free_kib:+"$free_kib"} ${cluster:+"$cluster"} ${root_entries:+"$root_entries"}; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"
done
[[ -z $extra_root || -d $extra_root ]] || die "--extra-root: $extra_root is not a directory"
[[ -z $first_user || $first_user =~ ^[a-z][-a-z0-9_]*:/[^:]*$ ]] || die "--first-user: NAME:SHELL, e.g. pi:/bin/bash"
[[ -z $extra_boot || -d $extra_boot ]] || die "--extra-boot: $extra_boot is not a directory"
if [[ -z $cluster && $fat == 32 ]]; then cluster=2048; fi
if [[ -n $cluster ]]; then
  ((cluster >= 512 && (cluster & (cluster - 1)) == 0)) || die "--cluster must be a power of two >= 512"
fi

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH E2FSCK_TIME=$SOURCE_DATE_EPOCH
export MTOOLS_SKIP_CHECK=1 MTOOLS_NO_VFAT=0 TZ=UTC LC_ALL=C
umask 022
# sfdisk, mkfs.vfat, mkfs.ext4, debugfs, e2fsck are in /usr/sbin, which a
# user other than root does not have on PATH on Debian.
export PATH=$PATH:/usr/sbin:/sbin

boot_sectors=$((boot_mib * 2048))
root_start=$((boot_start + boot_sectors))
root_sectors=$((root_mib * 2048))
total_sectors=$((root_start + root_sectors))
# GPT keeps a backup header in the last 33 sectors: leave 1 MiB after p2.
[[ $table == gpt ]] && total_sectors=$((total_sectors + 2048))
boot_off=$((boot_start * 512))
root_off=$((root_start * 512))
partuuid_prefix=$disk_id
fs_uuid=5e1f0c3a-7d2b-4c11-9a8e-${disk_id}0000
vol_id=${disk_id:4:4}${disk_id:0:4}

work=$(mktemp -d "${TMPDIR:-/tmp}/make-fixture.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
boot=$work/boot
root=$work/root
mkdir -p "$boot" "$root"

# ---------------------------------------------------------------- boot tree
if [[ $flavour == bookworm ]]; then
  echo "console=serial0,115200 console=tty1 root=PARTUUID=$partuuid_prefix-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot" >"$boot/cmdline.txt"
else
  echo "console=serial0,115200 console=tty1 root=PARTUUID=$partuuid_prefix-02 rootfstype=ext4 fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles resize" >"$boot/cmdline.txt"
fi
cat >"$boot/config.txt" <<'EOF'
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

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
# This line should be removed if the legacy DWC2 controller is required
# (e.g. for USB device mode) or if USB support is not required.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
EOF
if [[ $flavour == bookworm ]]; then
  echo "Raspberry Pi reference 2024-11-19
Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, 891df1e21ed2b6099a2e6a13e26c91dea44b34d4, stage2" >"$boot/issue.txt"
else
  echo "Raspberry Pi reference 2025-11-24
Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, 4a1bd7a2b1c5d1b44b5e1f0b1b3a8a2d9e0c6f11, stage2" >"$boot/issue.txt"
fi
# Dummy binaries: distinct, non-zero, deterministic content.
blob() { # blob FILE KIB
  local name
  name=$(basename "$1")
  { yes "$name dimimage fixture" || true; } | head -c $(($2 * 1024)) >"$1"
}
blob "$boot/kernel8.img" 96
blob "$boot/kernel_2712.img" 96
blob "$boot/bootcode.bin" 8
blob "$boot/start4.elf" 64
blob "$boot/fixup4.dat" 4
blob "$boot/LICENCE.broadcom" 2
for d in bcm2710-rpi-3-b-plus bcm2710-rpi-zero-2-w bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4 bcm2712-rpi-5-b; do
  blob "$boot/$d.dtb" 4
done
mkdir -p "$boot/overlays"
for o in vc4-kms-v3d dwc2 disable-bt disable-wifi i2c-rtc w1-gpio; do
  blob "$boot/overlays/$o.dtbo" 2
done
blob "$boot/overlays/overlay_map.dtb" 2
echo "Raspberry Pi Device Tree overlays: see https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/overlays/README" >"$boot/overlays/README"
if [[ $flavour == trixie ]]; then
  blob "$boot/initramfs8" 32
  blob "$boot/initramfs_2712" 32
fi
if ((upper83)); then
  mv "$boot/cmdline.txt" "$boot/CMDLINE.TXT"
  mv "$boot/config.txt" "$boot/CONFIG.TXT"
fi
[[ -n $extra_boot ]] && cp -R "$extra_boot/." "$boot/"

# ---------------------------------------------------------------- root tree
mkdir -p "$root"/{boot/firmware,dev,etc,home,media,mnt,opt,proc,root,run,srv,sys,tmp} \
  "$root"/usr/{bin,sbin,lib,share/doc,share/zoneinfo/Etc,share/zoneinfo/Europe,share/zoneinfo/America} \
  "$root"/usr/lib/systemd/system "$root"/usr/lib/raspberrypi-sys-mods \
  "$root"/var/{lib,log,cache,tmp,lib/dpkg} \
  "$root"/etc/{systemd/system/multi-user.target.wants,ssh,NetworkManager/system-connections,apt,default,dpkg}
chmod 0700 "$root/root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0555 "$root/proc" "$root/sys"
# usrmerge, as in Debian 12/13
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"

if [[ $flavour == bookworm ]]; then
  cat >"$root/usr/lib/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
  echo "12.8" >"$root/etc/debian_version"
else
  cat >"$root/usr/lib/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.2
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
  echo "13.2" >"$root/etc/debian_version"
fi
# As in Debian: /etc/os-release is a relative symlink into /usr/lib.
ln -s ../usr/lib/os-release "$root/etc/os-release"
cp "$boot/issue.txt" "$root/etc/rpi-issue"

cat >"$root/etc/fstab" <<EOF
proc            /proc           proc    defaults          0       0
PARTUUID=$partuuid_prefix-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$partuuid_prefix-02  /               ext4    defaults,noatime  0       1
EOF
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
messagebus:x:100:107::/nonexistent:/usr/sbin/nologin
sshd:x:104:65534::/run/sshd:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
mail:x:8:
man:x:12:
dialout:x:20:
sudo:x:27:
audio:x:29:
www-data:x:33:
video:x:44:
plugdev:x:46:
staff:x:50:
shadow:x:42:
users:x:100:
input:x:105:
messagebus:x:107:
netdev:x:108:
gpio:x:997:
i2c:x:994:
spi:x:999:
systemd-network:x:998:
nogroup:x:65534:
EOF
awk -F: '{ printf "%s:*:19683:0:99999:7:::\n", $1 }' "$root/etc/passwd" >"$root/etc/shadow"
awk -F: '{ printf "%s:*::\n", $1 }' "$root/etc/group" >"$root/etc/gshadow"
if [[ -n $first_user ]]; then
  fu=${first_user%%:*}
  printf '%s:x:1000:1000:,,,:/home/%s:%s\n' "$fu" "$fu" "${first_user#*:}" >>"$root/etc/passwd"
  printf '%s:x:1000:\n' "$fu" >>"$root/etc/group"
  printf '%s:!:19683:0:99999:7:::\n' "$fu" >>"$root/etc/shadow"
  printf '%s:!::\n' "$fu" >>"$root/etc/gshadow"
  printf '%s:100000:65536\n' "$fu" | tee "$root/etc/subuid" >"$root/etc/subgid"
  mkdir -p "$root/home/$fu"
  chmod 0700 "$root/home/$fu"
fi
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
echo raspberrypi >"$root/etc/hostname"
# What a new user's home starts with (bash's skeleton files, as in Debian)
mkdir -p "$root/etc/skel"
printf '# ~/.bashrc: executed by bash(1) for non-login shells.\n' >"$root/etc/skel/.bashrc"
printf '# ~/.profile: executed by the command interpreter for login shells.\n' >"$root/etc/skel/.profile"
printf '# ~/.bash_logout: executed by bash(1) when login shell exits.\n' >"$root/etc/skel/.bash_logout"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1		raspberrypi
EOF
echo "Etc/UTC" >"$root/etc/timezone"
for z in Etc/UTC Europe/Berlin Europe/London America/New_York; do
  printf 'TZif2 dummy zone %s\n' "$z" >"$root/usr/share/zoneinfo/$z"
done
ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"

unit() { # unit NAME DESCRIPTION EXEC
  printf '[Unit]\nDescription=%s\n\n[Service]\nExecStart=%s\n\n[Install]\nWantedBy=multi-user.target\n' "$2" "$3" \
    >"$root/usr/lib/systemd/system/$1"
}
unit ssh.service "OpenBSD Secure Shell server" "/usr/sbin/sshd -D"
unit cron.service "Regular background program processing daemon" "/usr/sbin/cron -f"
unit NetworkManager.service "Network Manager" "/usr/sbin/NetworkManager --no-daemon"
unit rpi-eeprom-update.service "Check for Raspberry Pi EEPROM updates" "/usr/bin/rpi-eeprom-update -s -a"
unit systemd-timesyncd.service "Network Time Synchronization" "/usr/lib/systemd/systemd-timesyncd"
if [[ $flavour == trixie ]]; then
  unit rpi-resize.service "Resize root partition" "/usr/lib/raspberrypi-sys-mods/rpi-resize"
  unit cloud-init-main.service "Cloud-init: Single Process" "/usr/bin/cloud-init --all-stages"
  unit cloud-init-local.service "Cloud-init: Local Stage (pre-network)" "/usr/lib/cloud-init/cloud-init-local"
  mkdir -p "$root/etc/cloud/cloud.cfg.d"
  printf 'datasource_list: [ NoCloud, None ]\n' >"$root/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg"
else
  unit userconfig.service "User configuration dialog" "/usr/lib/userconf-pi/userconf-service"
  mkdir -p "$root/etc/ssh/sshd_config.d"
  # What pi-gen's `rename-user -f -s` leaves: no console login on tty1 and
  # an sshd banner about the missing user.
  unit getty@.service "Getty on %I" "-/sbin/agetty -o '-p -- \\u' --noclear - \$TERM"
  printf 'Banner /usr/share/userconf-pi/sshd_banner\n' >"$root/etc/ssh/sshd_config.d/rename_user.conf"
fi
for u in cron.service NetworkManager.service rpi-eeprom-update.service; do
  ln -s "/lib/systemd/system/$u" "$root/etc/systemd/system/multi-user.target.wants/$u"
done
ln -s /lib/systemd/system/ssh.service "$root/etc/systemd/system/sshd.service"
printf '#!/bin/sh\n# raspberrypi-sys-mods firstboot (fixture)\nexit 0\n' >"$root/usr/lib/raspberrypi-sys-mods/firstboot"
chmod 0755 "$root/usr/lib/raspberrypi-sys-mods/firstboot"
cat >"$root/etc/ssh/sshd_config" <<'EOF'
# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

Include /etc/ssh/sshd_config.d/*.conf

#PermitRootLogin prohibit-password
#PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	/usr/lib/openssh/sftp-server
EOF
mkdir -p "$root/etc/ssh/sshd_config.d"
# pi-gen without WPA_COUNTRY, as every download is made: NetworkManager
# keeps Wi-Fi off (stage2/02-net-tweaks).
mkdir -p "$root/var/lib/NetworkManager"
printf '[main]\nWirelessEnabled=false\n' >"$root/var/lib/NetworkManager/NetworkManager.state"
printf '[main]\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=false\n' >"$root/etc/NetworkManager/NetworkManager.conf"
printf 'deb http://deb.debian.org/debian %s main contrib non-free non-free-firmware\n' "$flavour" >"$root/etc/apt/sources.list"
printf 'LANG=en_GB.UTF-8\n' >"$root/etc/default/locale"
for b in bash sh ls cat sudo systemctl docker; do
  printf '#!/bin/sh\n# %s (fixture)\n' "$b" >"$root/usr/bin/$b"
  chmod 0755 "$root/usr/bin/$b"
done
touch "$root/var/lib/dpkg/status"
# A large directory, so the fs has an htree-indexed directory (after e2fsck -D).
for i in $(seq -w 1 600); do
  mkdir -p "$root/usr/share/doc/package-$i"
done
for i in $(seq -w 1 600 | head -n 40); do
  printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n' >"$root/usr/share/doc/package-$i/copyright"
done
if ((fill_mib > 0)); then
  { yes "dimimage fixture fill" || true; } | head -c $((fill_mib * 1048576)) >"$root/var/cache/fill.bin"
fi
[[ -n $extra_root ]] && cp -R "$extra_root/." "$root/"

# Fixed timestamps everywhere (mkfs.ext4 -d and mcopy -m take them from the sources).
find "$boot" "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ---------------------------------------------------------------- disk
truncate -s $((total_sectors * 512)) "$img"
fat_type=0c
[[ $fat == 16 ]] && fat_type=0e
case $table in
  dos)
    printf 'label: dos\nlabel-id: 0x%s\nunit: sectors\n\nstart=%d, size=%d, type=%s\nstart=%d, size=%d, type=83\n' \
      "$disk_id" "$boot_start" "$boot_sectors" "$fat_type" "$root_start" "$root_sectors" |
      sfdisk -q --no-reread --no-tell-kernel "$img" >/dev/null
    ;;
  gpt)
    g=${disk_id}-7d2b-4c11-9a8e
    printf 'label: gpt\nlabel-id: %s-000000000000\nunit: sectors\nfirst-lba: 2048\n\n' "$g" >"$work/sfdisk.in"
    printf 'start=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=%s-000000000001, name=bootfs\n' \
      "$boot_start" "$boot_sectors" "$g" >>"$work/sfdisk.in"
    printf 'start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=%s-000000000002, name=rootfs\n' \
      "$root_start" "$root_sectors" "$g" >>"$work/sfdisk.in"
    sfdisk -q --no-reread --no-tell-kernel "$img" <"$work/sfdisk.in" >/dev/null
    ;;
  none) ;;
esac

fat_args=(-n bootfs -F "$fat" -S 512 -i "$vol_id" -h "$boot_start" --mbr=n --offset "$boot_start")
[[ -n $cluster ]] && fat_args+=(-s $((cluster / 512)))
[[ -n $root_entries ]] && fat_args+=(-r "$root_entries")
mkfs.vfat --invariant "${fat_args[@]}" "$img" $((boot_sectors / 2)) >"$work/mkfs.vfat.out" 2>&1 ||
  { cat "$work/mkfs.vfat.out" >&2; die "mkfs.vfat failed"; }
# Sorted, so the directory order (and every byte) is stable.
(cd "$boot" && find . -mindepth 1 -type d | LC_ALL=C sort) | while read -r d; do
  mmd -i "$img@@$boot_off" "::${d#./}"
done
(cd "$boot" && find . -type f | LC_ALL=C sort) | while read -r f; do
  mcopy -m -o -i "$img@@$boot_off" "$boot/${f#./}" "::${f#./}"
done

ext4_opts=offset=$root_off,root_owner=0:0,hash_seed=6c0a8e5f-2b1d-4e7a-9c3f-${disk_id}0000
mkext4() {
  local args=(-q -F -t ext4 -T default -b 4096 -I "$inode_size" -L rootfs -U "$fs_uuid" -E "$ext4_opts" -d "$root")
  [[ -n $features ]] && args+=(-O "$features")
  mkfs.ext4 "${args[@]}" "$img" "$((root_sectors / 2))k"
}
mkext4
free_blocks() {
  tune2fs -l "$img?offset=$root_off" 2>/dev/null | awk -F: '/^Free blocks:/ { gsub(/ /, "", $2); print $2 }'
}
block_size() {
  tune2fs -l "$img?offset=$root_off" 2>/dev/null | awk -F: '/^Block size:/ { gsub(/ /, "", $2); print $2 }'
}
if [[ -n $free_kib ]]; then
  # Two passes: measure, then refill so about free_kib stay free.
  bs=$(block_size)
  for _ in 1 2; do
    have=$(($(free_blocks) * bs / 1024))
    extra=$((have - free_kib))
    ((extra > 0)) || break
    cur=0
    [[ -f $root/var/cache/fill.bin ]] && cur=$(($(stat -c %s "$root/var/cache/fill.bin") / 1024))
    # extent tree blocks: leave some slack for them
    want=$((cur + extra - extra / 512 - 8 * bs / 1024))
    ((want > cur)) || break
    { yes "dimimage fixture fill" || true; } | head -c $((want * 1024)) >"$root/var/cache/fill.bin"
    touch -d "@$SOURCE_DATE_EPOCH" "$root/var/cache/fill.bin" "$root/var/cache"
    mkext4
  done
fi

# mkfs.ext4 -d copies owners and ctime from the sources; ctime cannot be set
# with touch and, as non-root, the owners are ours: fix both with debugfs.
dbg=$work/debugfs.cmd
set_owner=0
[[ $(id -u) != 0 || $(id -g) != 0 ]] && set_owner=1
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort) | while read -r p; do
  printf 'sif "/%s" ctime @%s\n' "${p#./}" "$SOURCE_DATE_EPOCH"
  if ((set_owner)); then printf 'sif "/%s" uid 0\nsif "/%s" gid 0\n' "${p#./}" "${p#./}"; fi
done >"$dbg"
printf 'sif /etc/shadow gid 42\nsif /etc/gshadow gid 42\n' >>"$dbg"
debugfs -w -f "$dbg" "$img?offset=$root_off" >/dev/null 2>"$work/debugfs.err" ||
  { cat "$work/debugfs.err" >&2; die "debugfs failed"; }
# Index large directories (htree), then a full check must be clean.
e2fsck -fyD "$img?offset=$root_off" >/dev/null 2>&1 || true
e2fsck -fn "$img?offset=$root_off" >"$work/e2fsck.out" 2>&1 ||
  { cat "$work/e2fsck.out" >&2; die "e2fsck found problems in the new root fs"; }

tmp_out="$out.tmp.$$"
mv "$img" "$tmp_out"
mv "$tmp_out" "$out"
