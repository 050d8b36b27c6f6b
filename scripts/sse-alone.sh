#!/bin/sh
# sse-alone.sh copies sse/ alone into a new module that requires nothing,
# and vets and tests it there with the module proxy off: the package lifts
# into any net/http program with the standard library alone.
set -eu
GO=${GO:-go}
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -R "$root/sse" "$tmp/sse"
# The same module path, so that the copy's imports need no edit.
printf 'module gin-sse-progress\n\ngo 1.26.0\n' >"$tmp/go.mod"
cd "$tmp"
export GOPROXY=off GOFLAGS=-mod=mod GOWORK=off
$GO vet ./...
$GO test -count=1 ./...
echo "sse-alone: sse/ builds and passes its tests with the standard library alone"
