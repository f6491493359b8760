#!/usr/bin/env bash
# Compares a first coffer backup into CNCF Distribution on loopback with
# `oras push` of the same bytes (the packs such a backup writes, as files)
# into the same registry: the registry's ingest rate is the limit here.
#
#   bench/oci-push.sh [MiB of random data, default 1024] [runs, default 3]
#
# Prints each run and the median of each tool; the ratio is
# coffer / oras. Needs about 3x the data size of free space in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
runs=${2:-3}
work=$(mktemp -d)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/coffer" ./cmd/coffer
toolbin=${COFFER_TOOLBIN:-$work}
[ -x "$toolbin/registry" ] && [ -x "$toolbin/oras" ] ||
  go build -modfile=tools/go.mod -o "$toolbin/" github.com/distribution/distribution/v3/cmd/registry oras.land/oras/cmd/oras

mkdir -p "$work/data"
for i in $(seq 0 $(( (mib + 127) / 128 - 1 ))); do
  head -c $(( 128 << 20 )) /dev/urandom > "$work/data/f$i"
done

. scripts/registry.sh

export COFFER_PASSPHRASE=bench COFFER_CACHE_DIR="$work/cache"
# The packs a first backup writes, as files, for oras to push.
"$work/coffer" -silent at "$work/local" create
"$work/coffer" -silent at "$work/local" backup "$work/data"
packs=$(find "$work/local/packs" -type f | sort)
packbytes=$(cat $packs | wc -c)
echo "data: $mib MiB random; packs: $(echo "$packs" | wc -l) files, $((packbytes >> 20)) MiB"

seconds() { local s; s=$(date +%s.%N); "$@" >/dev/null; awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'; }
declare -a ct ot
for r in $(seq "$runs"); do
  "$work/coffer" -silent at "oci://localhost:$port/coffer$r" create
  c=$(seconds "$work/coffer" -silent at "oci://localhost:$port/coffer$r" backup "$work/data")
  o=$(cd "$work/local/packs" && seconds "$toolbin/oras" push --plain-http "localhost:$port/oras$r:v1" $(find . -type f | sort | sed 's|^\./||'))
  echo "run $r: coffer backup ${c}s, oras push ${o}s"
  ct+=("$c"); ot+=("$o")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mc=$(median "${ct[@]}"); mo=$(median "${ot[@]}")
awk -v c="$mc" -v o="$mo" -v b="$packbytes" 'BEGIN {
  printf "median: coffer %.2fs (%.0f MB/s), oras push %.2fs (%.0f MB/s), ratio coffer/oras %.2f\n", c, b/c/1e6, o, b/o/1e6, c/o }'
