#!/usr/bin/env bash
# changed-modules.sh BASE [HEAD]: prints, as a JSON array, the modules of
# go.work that CI checks for the changes from BASE to HEAD (as in
# git diff BASE...HEAD):
# - a module whose directory changed;
# - every module, when something they all share changed: proto/, libs/,
#   go.work, the Makefile, tools/devtools (the pinned linters and the
#   module check), the CI workflow or this script; or when BASE is not
#   known here (a new branch, a force push: the all-zero SHA);
# - deploy too, when a service, the Dockerfile, .dockerignore or the
#   release workflow changed: its tests build every service as its image
#   does and check the release workflow.
set -euo pipefail
base=${1:-}
head=${2:-HEAD}
cd "$(git rev-parse --show-toplevel)"

# The modules of go.work: "use ./x" lines and "use ( ... )" blocks.
mapfile -t modules < <(awk '
  /^use[ \t]*\(/ { block = 1; next }
  block && /^\)/ { block = 0; next }
  block && NF    { print $1 }
  /^use[ \t]+[^( \t]/ { print $2 }
' go.work | sed 's|^\./||')

all=false
files=()
if [[ -z $base || $base =~ ^0+$ ]] || ! git cat-file -e "$base^{commit}" 2>/dev/null; then
  all=true
else
  mapfile -t files < <(git diff --name-only "$base...$head")
  for f in "${files[@]}"; do
    case $f in
      proto/* | libs/* | go.work | go.work.sum | Makefile | tools/devtools/* | .github/workflows/ci.yml | .github/scripts/*)
        all=true ;;
    esac
  done
fi

selected=()
for m in "${modules[@]}"; do
  if $all; then
    selected+=("$m")
    continue
  fi
  for f in "${files[@]}"; do
    if [[ $f == "$m"/* ]] ||
      { [[ $m == deploy ]] && [[ $f == services/* || $f == Dockerfile || $f == .dockerignore || $f == .github/workflows/release.yml ]]; }; then
      selected+=("$m")
      break
    fi
  done
done

if [ ${#selected[@]} -eq 0 ]; then
  echo '[]'
else
  printf '%s\n' "${selected[@]}" | jq -R . | jq -cs .
fi
