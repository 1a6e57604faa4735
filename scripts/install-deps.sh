#!/usr/bin/env bash
# Install every build, test and runtime dependency of dimimage (Debian/Ubuntu).
# Idempotent: packages already present are left alone; apt-get is not called at all
# when nothing is missing, so a second run is fast and needs no network.
set -euo pipefail

packages=(
  # build
  build-essential pkg-config
  libarchive-dev libyaml-dev libparted-dev libblkid-dev libext2fs-dev
  liblzma-dev libzstd-dev libssl-dev libcrypt-dev
  # unit tests, sanitizers, fuzzing, lint
  # (libclang-rt-dev: the sanitizer and libFuzzer runtimes of the default
  # clang, whatever its version; Debian 13 has no libclang-rt-14-dev)
  libcmocka-dev clang libclang-rt-dev cppcheck clang-tidy valgrind
  # integration tests: the real tools that check our outputs
  dosfstools mtools fdisk e2fsprogs bmap-tools xz-utils zstd gzip zip unzip
  shellcheck systemd python3 python3-yaml util-linux time file man-db groff-base openssh-client
  python3-dotenv  # Compose v1's .env reader: 70-hostile.sh reads a bookworm image's .env with it
  xfsprogs  # a filesystem that shares extents (FICLONE), loop-mounted by 25-reflink.sh
  zsh fish  # the shells whose completions lint.sh and 90-install.sh drive (bash's: already here)
  strace  # fault injection (05-source, 30-outputs, 60-fleet, 71-faults): without it those checks only say skipped
)

if [[ ${1:-} == --e2e ]]; then
  packages+=(qemu-system-arm qemu-user-static binfmt-support mmdebstrap arch-test openssh-client)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if ((EUID != 0)); then sudo=(sudo); fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
