#!/usr/bin/env bash
# complete.sh SHELL FILE WORD...: the words SHELL's completion FILE offers
# for the command line WORD... (the last word the one being completed, ''
# for a new one), one a line, as the shell itself computes them: bash calls
# _dimimage, fish runs `complete -C`, zsh completes in a real line editor on
# a pseudo-terminal (zpty).  dimimage is whatever PATH finds.  scripts/lint.sh
# and tests/integration/90-install.sh drive the completions with it.
set -u
if (($# < 3)); then
  echo "usage: complete.sh bash|zsh|fish FILE WORD..." >&2
  exit 64
fi
shell=$1 file=$2
shift 2
[[ -r $file ]] || { echo "complete.sh: cannot read $file" >&2; exit 66; }
# the line as typed: the words quoted as a shell would read them back (fish
# and zsh read bash's quoting the same), the last one unquoted when empty
line=$(printf '%q ' "${@:1:$#-1}")
[[ -z ${*: -1} ]] || line+=$(printf '%q' "${*: -1}")

case $shell in
  bash)
    # compopt is a builtin only a live completion may call: not here.
    # shellcheck disable=SC2016 # the child bash's
    bash -c 'source "$1"; shift; compopt() { :; }; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
      COMPREPLY=(); _dimimage; ((${#COMPREPLY[@]})) && printf "%s\n" "${COMPREPLY[@]}"' _ "$file" "$@"
    ;;
  fish)
    # Only FILE: no user configuration, and no other dimimage.fish that
    # fish would find on its own completion path.
    # shellcheck disable=SC2016 # fish's
    fish --no-config -c 'set -g fish_complete_path; source $argv[1]; complete -C $argv[2]' "$file" "$line" | cut -f1
    ;;
  zsh)
    # An interactive zsh on a pseudo-terminal, with FILE as its only
    # completion for dimimage: Tab on the line, and compadd (every match
    # goes through it) writes the matches to a file.  comppostfuncs marks
    # the end.  Nothing is run: the line is never entered.
    dir=$(mktemp -d "${TMPDIR:-/tmp}/dimimage-complete.XXXXXX") || exit 1
    trap 'rm -rf "$dir"' EXIT
    mkdir "$dir/fpath"
    cp "$file" "$dir/fpath/_dimimage"
    cat >"$dir/init.zsh" <<'EOF'
PS1= RPS1= PS2=
fpath=($DIR/fpath $fpath)
autoload -Uz compinit && compinit -u -D
# the completion of these words: compadd's matches, one a line
compadd() {
  if [[ ${(j: :)@} == *-[OAD]* ]]; then builtin compadd "$@"; return; fi
  local -a __m
  builtin compadd -O __m "$@"
  (( $#__m )) && print -rl -- $__m >>$DIR/matches
  builtin compadd "$@"
}
_dimimage_complete_done() { : >$DIR/done; }
comppostfuncs=(_dimimage_complete_done)
zstyle ':completion:*' insert-tab false
bindkey '^I' complete-word
: >$DIR/ready
EOF
    # shellcheck disable=SC2016 # zsh's
    DIR=$dir TERM=vt100 zsh -f -c '
      zmodload zsh/zpty || exit 1
      zpty z zsh -f -i || exit 1
      zpty -w z "source ${(q)DIR}/init.zsh"
      wait_for() { # FILE: drain the terminal until FILE exists (10 s at most)
        local junk i
        for i in {1..200}; do
          [[ -e $1 ]] && return 0
          while zpty -r -t z junk 2>/dev/null; do :; done
          sleep 0.05
        done
        return 1
      }
      wait_for $DIR/ready || { echo "complete.sh: zsh did not start" >&2; exit 1; }
      zpty -w -n z "$1"$'\''\t'\''
      wait_for $DIR/done || { echo "complete.sh: zsh did not complete" >&2; zpty -d z; exit 1; }
      zpty -d z' _ "$line" || exit 1
    [[ -e $dir/matches ]] && awk '!seen[$0]++' "$dir/matches"
    ;;
  *)
    echo "complete.sh: unknown shell $shell (bash, zsh or fish)" >&2
    exit 64
    ;;
esac
exit 0
