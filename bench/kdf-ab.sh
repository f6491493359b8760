#!/usr/bin/env bash
# Compares two coffer binaries on a command's fixed cost, most of which
# is the key derivation (issue 16): `ls` of a small local repository,
# alternating the binaries within each round, sync before each run.
#
#   bench/kdf-ab.sh OLD NEW [rounds, default 10] [THP mode]
#
# THP mode (always, madvise or never; root only) runs every command with
# /sys/kernel/mm/transparent_hugepage/enabled set to it, and sets it back
# at the end. Prints one line per run (wall, user and system seconds,
# peak RSS in KiB), then each binary's medians.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '6p' "$0" >&2
  exit 2
fi
old=$(realpath "$1") new=$(realpath "$2") rounds=${3:-10} mode=${4:-}
thp=/sys/kernel/mm/transparent_hugepage/enabled
work=$(mktemp -d)
if [ -n "$mode" ]; then
  was=$(sed 's/.*\[\(.*\)\].*/\1/' "$thp")
  trap 'echo "$was" > "$thp"; rm -rf "$work"' EXIT
  echo "$mode" > "$thp"
else
  trap 'rm -rf "$work"' EXIT
fi
export COFFER_PASSPHRASE=kdf-ab-passphrase COFFER_CACHE_DIR=$work/cache
mkdir -p "$work/tree" && echo data > "$work/tree/file"
"$new" -silent at "$work/repo" create >/dev/null
"$new" -silent at "$work/repo" backup "$work/tree" >/dev/null

run() { # run NAME BIN: one ls, one line
  sync
  /usr/bin/time -f "$1 %e %U %S %M" "$2" -silent at "$work/repo" ls 2>&1 >/dev/null | tail -1
}
for ((r = 0; r < rounds; r++)); do
  if ((r % 2 == 0)); then run old "$old"; run new "$new"; else run new "$new"; run old "$old"; fi
done | tee "$work/runs"
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for name in old new; do
  grep "^$name " "$work/runs" > "$work/$name"
  printf '%s: wall %s s, user %s s, system %s s, peak RSS %s KiB (medians of %d)\n' "$name" \
    "$(cut -d' ' -f2 "$work/$name" | median)" "$(cut -d' ' -f3 "$work/$name" | median)" \
    "$(cut -d' ' -f4 "$work/$name" | median)" "$(cut -d' ' -f5 "$work/$name" | median)" "$rounds"
done
