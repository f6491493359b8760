#!/usr/bin/env bash
# Measures `coffer mount` against the commands it stands in for (issue
# 14): `tar c` of a mounted snapshot against `coffer restore` of it, and
# a cold `ls -R` of a mounted snapshot against `coffer ls -r` (the cache
# directory dropped before each, so trees come from the packs).
#
#   bench/mount.sh [runs, default 5] [store: fs (default) or oci]
#
# With oci the repository is on CNCF Distribution on loopback (built
# from tools/go.mod into $COFFER_TOOLBIN, as bench/oci-push.sh does).
#
# The dataset is mixed, about 480 MiB: 12,000 source-like text files in
# 600 directories, 4 x 64 MiB of random data, 10 x 10 MiB of logs. Each
# run mounts afresh (nothing in the kernel's or coffer's caches); restores
# go to /dev/shm as bench/ does, and tar writes into a pipe (GNU tar reads
# nothing when its archive is /dev/null). Needs /dev/fuse and root (or
# fusermount3), and about 1.5 GiB in $TMPDIR and /dev/shm.
#
# With COUNT_GETS=1 and oci, the registry logs its requests and each run
# also says how many GETs of blobs (pack reads) restore and tar c sent.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
store=${2:-fs}
work=$(mktemp -d)
mnt=$work/mnt
mount_pid=
registry_pid=
cleanup() {
  if [ -n "$mount_pid" ]; then kill -INT "$mount_pid" 2>/dev/null || true; wait "$mount_pid" 2>/dev/null || true; fi
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work" /dev/shm/coffer-bench-restore
}
trap cleanup EXIT

go build -o "$work/coffer" ./cmd/coffer
c=$work/coffer
data=$work/data
mkdir -p "$data/data" "$data/logs" "$mnt"
awk -v root="$data/src" 'BEGIN {
  srand(14)
  for (w = 0; w < 2000; w++) { n = 2 + int(rand() * 9); s = ""; for (k = 0; k < n; k++) s = s substr("abcdefghijklmnopqrstuvwxyz_", 1 + int(rand() * 27), 1); words[w] = s }
  for (a = 0; a < 30; a++) for (b = 0; b < 20; b++) {
    dir = sprintf("%s/pkg%02d/sub%02d", root, a, b); system("mkdir -p " dir)
    for (f = 0; f < 20; f++) {
      file = sprintf("%s/f%02d.go", dir, f); lines = 10 + int(rand() * 291)
      for (l = 0; l < lines; l++) { n = 2 + int(rand() * 11); s = ""; for (k = 0; k < n; k++) s = s " " words[int(rand() * 2000)]; print s > file }
      close(file)
    }
  }
}'
for i in 0 1 2 3; do head -c $((64 << 20)) /dev/urandom > "$data/data/blob$i.bin"; done
for i in $(seq 0 9); do
  awk -v n=$((10 << 20)) -v seed="$i" 'BEGIN { srand(seed); while (size < n) { line = sprintf("2026-12-03T09:%02d:%02d.%03dZ INFO request id=%d took %dms path=/api/v%d/items/%d", int(rand()*60), int(rand()*60), int(rand()*1000), int(rand()*2^31), int(rand()*500), int(rand()*3), int(rand()*1e6)); print line; size += length(line) + 1 } }' > "$data/logs/app$i.log"
done
echo "data: $(find "$data" -type f | wc -l) files, $(du -sm "$data" | cut -f1) MiB"

export COFFER_PASSPHRASE=bench COFFER_CACHE_DIR=$work/cache
repo=$work/repo
if [ "$store" = oci ]; then
  toolbin=${COFFER_TOOLBIN:-$work}
  [ -x "$toolbin/registry" ] || go build -modfile=tools/go.mod -o "$toolbin/" github.com/distribution/distribution/v3/cmd/registry
  [ "${COUNT_GETS:-}" = 1 ] && registry_accesslog=1
  . scripts/registry.sh
  repo=oci://localhost:$port/mount
fi
"$c" -silent at "$repo" create
"$c" -silent at "$repo" backup "$data"

now() { date +%s.%N; }
gets() {
  if [ "${COUNT_GETS:-}" = 1 ] && [ "$store" = oci ]; then grep -c '"GET /v2/[^ ]*/blobs/' "$work/registry.log" || true; else echo 0; fi
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
mount_fresh() {
  "$c" -silent at "$repo" mount "$mnt" & mount_pid=$!
  while [ ! -e "$mnt/latest" ]; do sleep 0.01; done
}
unmount() { kill -INT "$mount_pid"; wait "$mount_pid"; mount_pid=; }
declare -a rs ts ls ms ws
for r in $(seq "$runs"); do
  rm -rf /dev/shm/coffer-bench-restore
  g0=$(gets); s=$(now); "$c" -silent at "$repo" restore latest -to /dev/shm/coffer-bench-restore; rt=$(since "$s"); g1=$(gets)
  rm -rf /dev/shm/coffer-bench-restore
  mount_fresh
  g2=$(gets); s=$(now); tar -C "$mnt/latest/" -cf - . | cat >/dev/null; tt=$(since "$s")
  unmount; g3=$(gets)
  rm -rf "$COFFER_CACHE_DIR"
  s=$(now); "$c" -silent at "$repo" ls -r latest >/dev/null; lt=$(since "$s")
  rm -rf "$COFFER_CACHE_DIR"
  s0=$(now); mount_fresh
  s=$(now); ls -R "$mnt/latest/" >/dev/null; mt=$(since "$s"); wt=$(since "$s0")
  unmount
  [ "${COUNT_GETS:-}" = 1 ] && echo "run $r: blob GETs: restore $((g1 - g0)), tar c $((g3 - g2))"
  echo "run $r: restore ${rt}s, tar c of the mount ${tt}s; cold: coffer ls -r ${lt}s, ls -R of the mount ${mt}s (${wt}s with mounting)"
  rs+=("$rt"); ts+=("$tt"); ls+=("$lt"); ms+=("$mt"); ws+=("$wt")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
awk -v r="$(median "${rs[@]}")" -v t="$(median "${ts[@]}")" -v l="$(median "${ls[@]}")" -v m="$(median "${ms[@]}")" -v w="$(median "${ws[@]}")" 'BEGIN {
  printf "median: restore %.2fs, tar c %.2fs: ratio %.2f (goal <= 1.5)\n", r, t, t/r
  printf "median: cold coffer ls -r %.2fs, ls -R %.2fs: ratio %.2f (goal <= 2); with mounting %.2fs: ratio %.2f\n", l, m, m/l, w, w/l }'
