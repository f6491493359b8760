#!/usr/bin/env bash
# The seed's walkthrough, end to end, against a real registry: build coffer
# and CNCF Distribution (pinned in tools/go.mod), start the registry on a
# free loopback port with its data in a temporary directory, create a
# repository, back up this source tree, list it, read LICENSE back by id
# prefix, restore and compare, check, then stop the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
work=$(mktemp -d)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "building coffer and the registry (the first registry build takes a few minutes)"
go build -o "$work/coffer" ./cmd/coffer
toolbin=${COFFER_TOOLBIN:-$work}
[ -x "$toolbin/registry" ] || go build -modfile=tools/go.mod -o "$toolbin/" github.com/distribution/distribution/v3/cmd/registry

. scripts/registry.sh
echo "CNCF Distribution registry on localhost:$port"

coffer() { echo "\$ coffer $*"; "$work/coffer" "$@"; }
export COFFER_PASSPHRASE=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export COFFER_CACHE_DIR="$work/cache"
store=oci://localhost:$port/helloworld

coffer at "$store" create
coffer -silent at "$store" backup
coffer at "$store" ls
id=$("$work/coffer" at "$store" ls | awk 'NR==1 {print substr($2, 1, 3)}')
coffer at "$store" cat "$id:LICENSE" | head -5
coffer at "$store" restore "$id" -to "$work/restored"
diff -r "$src" "$work/restored" >/dev/null && echo "restored tree is identical to $src"
coffer at "$store" check -read-data
coffer at "$store" info
