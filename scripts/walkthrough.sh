#!/usr/bin/env bash
# The seed's walkthrough, end to end, on a local store in a temporary
# directory: build coffer, create a repository, back up this source tree,
# list it, read LICENSE back by id prefix, restore, verify, check.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/coffer" ./cmd/coffer
coffer() { echo "\$ coffer $*"; "$work/coffer" "$@"; }

export COFFER_PASSPHRASE=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export COFFER_CACHE_DIR="$work/cache"
store="$work/helloworld"

coffer at "$store" create
coffer -silent at "$store" backup
coffer at "$store" ls
id=$("$work/coffer" at "$store" ls | awk 'NR==1 {print substr($2, 1, 3)}')
coffer at "$store" cat "$id:LICENSE" | head -5
coffer at "$store" restore "$id" -to "$work/restored"
diff -r "$src" "$work/restored" >/dev/null && echo "restored tree is identical to $src"
coffer at "$store" check -read-data
coffer at "$store" info
