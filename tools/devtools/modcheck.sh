#!/usr/bin/env bash
# modcheck.sh [--fix] DIR...: checks that each module builds, vets and is
# tidy on its own (GOWORK=off), the way an image or a release builds it.
# With --fix, writes the tidied go.mod and go.sum back instead (make tidy).
#
# Library modules (proto, libs/scalerkit) carry no replace directives: a
# consumer's own replace (or a published version) decides where siblings
# come from. To check a library alone, this script works on a scratch copy
# of its go.mod (-modfile) with the replaces a consumer would add, and
# never touches the committed files.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix=github.com/kedascalers/kedascalers
export GOWORK=off GOFLAGS=-mod=mod

fix=false
if [ "${1:-}" = --fix ]; then fix=true; shift; fi

status=0
for dir in "$@"; do
  mod="$root/$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp "$mod/go.mod" "$tmp/go.mod"
  [ -f "$mod/go.sum" ] && cp "$mod/go.sum" "$tmp/go.sum" || touch "$tmp/go.sum"
  added=()
  # Siblings required but not replaced get a scratch replace.
  for req in $(cd "$mod" && go mod edit -json "$tmp/go.mod" | awk -v p="\"$prefix/" 'index($0, p) && /"Path"/ {gsub(/[",]/, "", $2); print $2}' | sort -u); do
    if ! grep -q "^replace $req =>\|^\s*$req =>" "$tmp/go.mod"; then
      (cd "$mod" && go mod edit -modfile="$tmp/go.mod" -replace="$req=$root/${req#$prefix/}")
      added+=("$req")
    fi
  done
  (
    cd "$mod"
    go mod tidy -modfile="$tmp/go.mod"
    go build -modfile="$tmp/go.mod" ./...
    go vet -modfile="$tmp/go.mod" ./...
  ) || { echo "modcheck: $dir does not build or vet on its own (GOWORK=off)" >&2; status=1; continue; }
  for req in "${added[@]}"; do
    (cd "$mod" && go mod edit -modfile="$tmp/go.mod" -dropreplace="$req")
  done
  if $fix; then
    cp "$tmp/go.mod" "$mod/go.mod"
    cp "$tmp/go.sum" "$mod/go.sum"
  elif ! diff -u "$mod/go.mod" "$tmp/go.mod" >&2 || ! diff -u "$mod/go.sum" "$tmp/go.sum" >&2; then
    echo "modcheck: $dir is not tidy on its own: run 'make tidy'" >&2
    status=1
  fi
  rm -rf "$tmp"
  trap - EXIT
done
exit $status
