#!/usr/bin/env bash
# Compares two coffer binaries on backups of a tree of many small files
# (issue 16), alternating them within each round so that both see the
# same load: CPU time (user + system) is the figure to compare on a
# shared machine, wall time only on a quiet one.
#
#   bench/small-ab.sh OLD NEW TREE [rounds, default 3]
#
# TREE is a directory such as bench's many-small dataset (go -C bench run
# . -datasets many-small -keep -work DIR leaves it in DIR). Each round
# backs TREE up with each binary into a new local repository (first,
# -silent), then twice more (no change: -silent, and "plain", with
# standard error a pipe, which prints a progress line every 10 s and so
# wants progress totals), then appends 4 KiB of random bytes to 5% of
# TREE's files and backs it up with each binary from a copy of the
# repository as it was before (5% changed, -silent). TREE is changed:
# use a copy. Prints one line per backup; the repositories go in a
# temporary directory, removed at the end.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '7p' "$0" >&2
  exit 2
fi
old=$(realpath "$1") new=$(realpath "$2") tree=$(realpath "$3") rounds=${4:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export COFFER_PASSPHRASE=small-ab-passphrase XDG_CACHE_HOME=$work/cache

# measure NAME WHAT CMD...: runs CMD and prints its wall and CPU time.
measure() {
  local name=$1 what=$2
  shift 2
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null 2>&1
  read -r wall user sys <"$work/time"
  printf "round %d %-4s %-16s wall %7.2f s  cpu %6.2f s (user %s, sys %s)  load %s\n" \
    "$round" "$name" "$what" "$wall" "$(echo "$user + $sys" | bc)" "$user" "$sys" "$(cut -d' ' -f1 /proc/loadavg)"
}

for round in $(seq "$rounds"); do
  for name in old new; do
    bin=${!name}
    repo=$work/repo-$name
    rm -rf "$repo"
    "$bin" at "$repo" create >/dev/null
    measure $name first "$bin" -silent at "$repo" backup "$tree"
    echo "round $round $name stored $(du -sb "$repo" | cut -f1) bytes"
    measure $name no-change "$bin" -silent at "$repo" backup "$tree"
    measure $name no-change-plain sh -c "'$bin' at '$repo' backup '$tree' 2>&1 | cat"
  done
  # 5% of the files, a different twentieth each round.
  find "$tree" -type f | sort | awk -v k=$((round % 20)) 'NR % 20 == k' | while read -r f; do
    head -c 4096 /dev/urandom >>"$f"
  done
  for name in old new; do
    bin=${!name}
    rm -rf "$work/changed"
    cp -a "$work/repo-$name" "$work/changed"
    measure $name 5%-changed "$bin" -silent at "$work/changed" backup "$tree"
  done
done
