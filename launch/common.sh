# Shared helpers of the launch scripts (sourced, not run).
# `run CMD...` prints the command; it also runs it unless DRY_RUN=1.
DRY_RUN=${DRY_RUN:-0}

quote() {  # shell-quote an argument only where needed, for readable output
  if [[ "$1" =~ ^[A-Za-z0-9_./=:@%+,~-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

run() {
  printf '+'
  local arg
  for arg in "$@"; do printf ' '; quote "$arg"; done
  printf '\n'
  if [[ "$DRY_RUN" != 1 ]]; then
    "$@"
  fi
}

die() {
  echo "error: $*" >&2
  exit 2
}

require() {  # require NAME VALUE: VALUE must be non-empty
  [[ -n "$2" ]] || die "--$1 is required (see --help)"
}
