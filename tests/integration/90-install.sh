#!/usr/bin/env bash
# make install puts the binary, profiles, overlays, man page and completions
# in place, and the installed binary finds its profiles and overlays.
source "$(dirname "$0")/../lib.sh"
unset DIMIMAGE_DATADIR
dest=$T/stage
check "make install DESTDIR=... PREFIX=/usr" make -s -C "$TOP" install DESTDIR="$dest" PREFIX=/usr
for f in usr/bin/dimimage usr/share/dimimage/profiles/app.yml usr/share/dimimage/overlays/common/usr/local/lib/dimdim/firstboot \
         usr/share/man/man1/dimimage.1 usr/share/bash-completion/completions/dimimage \
         usr/share/zsh/vendor-completions/_dimimage usr/share/fish/vendor_completions.d/dimimage.fish; do
  [[ -e $dest/$f ]] && ok "installed $f" || fail "missing $f"
done
"$dest/usr/bin/dimimage" profiles > "$T/profiles.txt" 2>&1
grep -q '^observability' "$T/profiles.txt" && ok "installed binary lists its profiles" || { fail "profiles"; cat "$T/profiles.txt"; }
base=$(fixture bookworm --flavour bookworm)
check "installed binary builds an image" "$dest/usr/bin/dimimage" build --role observability --base "$base" -o "$T/out.img" \
  --quiet --set OPENOBSERVE_PASSWORD=Kx9-qu4ntum-obs-T0ken
[[ $(rstat "$T/out.img" /usr/local/lib/dimdim/firstboot) == "0755 0 0 regular" ]] && ok "overlay from the installed tree" || fail "overlay"
# Whatever the umask of the clone or of make install: every user may read them.
unreadable=$(find "$dest/usr/share/dimimage" ! -type l \( ! -perm -0444 -o -type d ! -perm -0111 -o -perm /0022 \) -printf '%m %P\n' | head -n 5)
[[ -d $dest/usr/share/dimimage/overlays && -z $unreadable ]] && ok "installed profiles and overlays: readable by all, writable by root alone" \
  || fail "installed modes: $unreadable"
man -l "$dest/usr/share/man/man1/dimimage.1" >/dev/null 2>&1 && ok "man page renders" || fail "man page"
# without a warning from groff or man, and with an entry for each option
# every command has (-h/--help, --version, help COMMAND)
warn=$( { groff -ww -man -z "$dest/usr/share/man/man1/dimimage.1"; man --warnings -l "$dest/usr/share/man/man1/dimimage.1" >/dev/null; } 2>&1)
[[ -z $warn ]] && ok "man page: no warnings" || fail "man page warnings: $warn"
page=$(MANWIDTH=100 man -l "$dest/usr/share/man/man1/dimimage.1" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
for entry in '-h, --help' '--version, version' 'help [COMMAND]'; do
  grep -Fxq -- "       $entry" <<<"$page" && ok "man page: an entry for $entry" || fail "man page: no entry for $entry"
done

# The installed completion, driven as bash would: roles from the installed
# binary, every model the binary knows, nothing offered for a free value.
complete_words() { # WORDS...: prints COMPREPLY
  PATH=$dest/usr/bin:$PATH bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=(); _dimimage; printf "%s\n" "${COMPREPLY[@]}"' _ "$dest/usr/share/bash-completion/completions/dimimage" "$@"
}
[[ $(complete_words dimimage build --role app | sort | tr '\n' ' ') == "app app-standalone " ]] \
  && ok "completion: --role lists the installed roles" || fail "completion --role: $(complete_words dimimage build --role app)"
[[ $(complete_words dimimage build --role = obs) == observability ]] \
  && ok "completion: --role=VALUE" || fail "completion --role=: $(complete_words dimimage build --role = obs)"
models=$(complete_words dimimage build --model '' | sort | tr '\n' ' ')
known=$("$dest/usr/bin/dimimage" build --model nope --role app --base "$base" -o "$T/x.img" 2>&1 | sed -n 's/.*known models: //p')
missing=
for m in ${known//,/ }; do
  [[ $m == *..* ]] && continue # a range in the message (cm4-1gb..cm4-8gb)
  [[ " $models" == *" $m "* ]] || missing+=" $m"
done
[[ -n $known && -z $missing ]] && ok "completion: --model offers every model the binary knows" \
  || fail "completion --model lacks:$missing (known: $known)"
[[ -z $(complete_words dimimage build --hostname '') ]] && ok "completion: nothing offered for a free value" \
  || fail "completion offers something for --hostname"
# File names are offered as bash offers them (compopt -o filenames: quoted,
# a directory gets its '/'), else "my base.img" is two words and a directory
# ends the word.  compopt is a builtin only a live completion may call: here
# a function stands in for it, printing what it was asked.
complete_opts() { # WORDS...: prints compopt's arguments, then COMPREPLY
  PATH=$dest/usr/bin:$PATH bash -c 'source "$1"; shift; compopt() { echo "compopt $*"; }
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _dimimage; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$dest/usr/share/bash-completion/completions/dimimage" "$@"
}
mkdir -p "$T/files/a dir" && : >"$T/files/my base.img"
for words in "build --base" "build --env" "build -o" "inspect" "flash" "flash -b"; do
  # shellcheck disable=SC2086 # the words are the arguments
  got=$(cd "$T/files" && complete_opts dimimage $words my)
  [[ $got == $'compopt -o filenames\nmy base.img' ]] && ok "completion: $words completes file names as file names" \
    || fail "completion $words: $got"
done
# --ssh-key offers public keys (a private key there is refused), --fleet and
# --host YAML files, and directories to go on into: as zsh's and fish's do
mkdir -p "$T/keys/sub" && : >"$T/keys/id_ed25519" && : >"$T/keys/id_ed25519.pub" && : >"$T/keys/f.yml" && : >"$T/keys/f.txt"
got=$(cd "$T/keys" && complete_words dimimage build --ssh-key '' | sort | tr '\n' ' ')
[[ $got == "id_ed25519.pub sub " ]] && ok "completion: --ssh-key offers *.pub and directories, not the private key" \
  || fail "completion --ssh-key: $got"
got=$(cd "$T/keys" && complete_words dimimage build --fleet '' | sort | tr '\n' ' ')
[[ $got == "f.yml sub " ]] && ok "completion: --fleet offers *.yml and directories" || fail "completion --fleet: $got"
if [[ -f /usr/share/zoneinfo/Europe/Berlin ]]; then
  got=$(complete_opts dimimage build --timezone Europ)
  [[ $got == $'compopt -o nospace\nEurope/' ]] && ok "completion: --timezone Europ gives Europe/, no space" \
    || fail "completion --timezone Europ: $got"
  [[ $(complete_opts dimimage build --timezone Europe/Berli) == Europe/Berlin ]] && ok "completion: --timezone Europe/Berlin" \
    || fail "completion --timezone Europe/Berli: $(complete_opts dimimage build --timezone Europe/Berli)"
else
  ok "skipped: completion of --timezone (no /usr/share/zoneinfo/Europe/Berlin here)"
fi
# flash's DEVICE: the whole disks lsblk names (a stand-in here), beside files
mkdir -p "$T/lsblk-bin"
# (named where no file is, so only lsblk's names can match)
printf '#!/bin/sh\necho "%s/disk/sdz 29.7G Card Reader"\necho "%s/disk/nvme9n1 1.8T Some SSD"\n' "$T" "$T" >"$T/lsblk-bin/lsblk"
chmod +x "$T/lsblk-bin/lsblk"
got=$(cd "$T/files" && PATH=$T/lsblk-bin:$PATH complete_words dimimage flash "my base.img" "$T/disk/s")
[[ $got == "$T/disk/sdz" ]] && ok "completion: flash IMAGE DEVICE offers the disks" || fail "completion flash IMAGE $T/disk/s: $got"
got=$(cd "$T/files" && PATH=$T/lsblk-bin:$PATH complete_words dimimage flash -b x.bmap "$T/disk/s")
[[ -z $got ]] && ok "completion: flash's IMAGE is not offered disks (--bmap's value is no IMAGE)" \
  || fail "completion flash -b x.bmap $T/disk/s: $got"
[[ $(complete_words dimimage help '' | sort | tr '\n' ' ') == "build cache flash inspect profiles version " ]] \
  && ok "completion: help offers the commands" || fail "completion help: $(complete_words dimimage help '')"
[[ $(complete_words dimimage he) == help ]] && ok "completion: he gives help" || fail "completion he: $(complete_words dimimage he)"
[[ -z $(complete_words dimimage help build '') ]] && ok "completion: nothing after help COMMAND" \
  || fail "completion after help build: $(complete_words dimimage help build '')"
[[ -z $(complete_words dimimage cache list '') ]] && ok "completion: nothing after cache list" \
  || fail "completion after cache list: $(complete_words dimimage cache list '')"

# The installed zsh and fish completions, driven by the shells themselves
# (scripts/complete.sh: fish's complete -C, zsh's line editor on a pty):
# the same offers.  (scripts/lint.sh checks their options against --help.)
declare -A comp_file=([zsh]=usr/share/zsh/vendor-completions/_dimimage [fish]=usr/share/fish/vendor_completions.d/dimimage.fish)
shell_words() { # SHELL WORDS...: what SHELL's installed completion offers, sorted, on one line
  local sh=$1
  shift
  PATH=$dest/usr/bin:$PATH "$TOP/scripts/complete.sh" "$sh" "$dest/${comp_file[$sh]}" "$@" | LC_ALL=C sort | tr '\n' ' '
}
for sh in zsh fish; do
  got=$(shell_words "$sh" dimimage build --ro)
  [[ $got == "--role " ]] && ok "$sh completion: build --ro gives --role" || fail "$sh completion build --ro: $got"
  got=$(shell_words "$sh" dimimage build --role app)
  [[ $got == "app app-standalone " ]] && ok "$sh completion: --role lists the installed roles" || fail "$sh completion --role app: $got"
  got=$(mkdir -p "$T/empty" && cd "$T/empty" && shell_words "$sh" dimimage build --role '') # no .yml file among them
  [[ $got == "all app app-standalone observability " ]] && ok "$sh completion: --role '' lists every role" \
    || fail "$sh completion --role '': $got"
  got=$(shell_words "$sh" dimimage build --role=obs)
  [[ $got == *observability* ]] && ok "$sh completion: --role=VALUE" || fail "$sh completion --role=obs: $got"
  models=$(shell_words "$sh" dimimage build --model '')
  missing=
  for m in ${known//,/ }; do
    [[ $m == *..* ]] && continue
    [[ " $models" == *" $m "* ]] || missing+=" $m"
  done
  [[ -n $known && -z $missing ]] && ok "$sh completion: --model offers every model the binary knows" \
    || fail "$sh completion --model lacks:$missing (offers: $models)"
  [[ -z $(shell_words "$sh" dimimage build --hostname '') ]] && ok "$sh completion: nothing offered for a free value" \
    || fail "$sh completion offers something for --hostname: $(shell_words "$sh" dimimage build --hostname '')"
  got=$(shell_words "$sh" dimimage '')
  [[ $got == "build cache flash help inspect profiles version " ]] && ok "$sh completion: the commands" || fail "$sh completion of commands: $got"
  got=$(shell_words "$sh" dimimage cache '')
  [[ $got == "clean list " ]] && ok "$sh completion: cache list|clean" || fail "$sh completion after cache: $got"
  [[ -z $(shell_words "$sh" dimimage cache list '') ]] && ok "$sh completion: nothing after cache list" \
    || fail "$sh completion after cache list: $(shell_words "$sh" dimimage cache list '')"
  # a file name with a space is one match (zsh gives it quoted, as it inserts it)
  want="my base.img "
  [[ $sh == zsh ]] && want='my\ base.img '
  for words in "build --base" "build -o" "inspect" "flash" "flash -b"; do
    # shellcheck disable=SC2086 # the words are the arguments
    got=$(cd "$T/files" && shell_words "$sh" dimimage $words my)
    [[ $got == "$want" ]] && ok "$sh completion: $words completes file names" || fail "$sh completion $words my: $got"
  done
  # an option's value after '=' is offered once, as the option with it
  if [[ $sh == fish ]]; then
    mkdir -p "$T/onekey" && touch "$T/onekey/id.pub"
    got=$(cd "$T/onekey" && shell_words "$sh" dimimage build --ssh-key=)
    [[ $got == "--ssh-key=id.pub " ]] && ok "$sh completion: --ssh-key= offers each file once" \
      || fail "$sh completion --ssh-key=: $got"
  fi
  if [[ -f /usr/share/zoneinfo/Europe/Berlin ]]; then
    # zsh offers the path's last part (and completes the rest of the word)
    want=Europe/Berlin
    [[ $sh == zsh ]] && want=Berlin
    got=$(shell_words "$sh" dimimage build --timezone Europe/Berli)
    [[ $got == "$want " ]] && ok "$sh completion: --timezone Europe/Berlin" || fail "$sh completion --timezone Europe/Berli: $got"
  fi
done
summary
