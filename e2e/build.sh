#!/usr/bin/env bash
# e2e/build.sh builds, once, the control plane and KEDA that make e2e runs
# (etcd, kube-apiserver, the KEDA operator and metrics adapter,
# kube-controller-manager), from the Go modules pinned in e2e/build/go.mod,
# into a cache directory keyed by their versions, outside the source tree:
#   ${KEDASCALERS_E2E_CACHE:-~/.cache/kedascalers-e2e}/kube-<v>-etcd-<v>-keda-<v>/
# A binary already there is kept. Each build says when it starts, once a
# minute while it runs, and its wall time (on stderr). The directory is
# printed on stdout.
#   e2e/build.sh          build what is missing
#   e2e/build.sh --dir    print the directory only
# A cold build takes about 11 minutes on 2 cores (18 CPU-minutes) and
# several GB of build cache.
set -euo pipefail
# Progress to stderr, the directory alone to stdout: run.sh takes it with
# $(...), and the progress reaches the log as it comes.
exec 3>&1 1>&2
cd "$(dirname "$0")/build"
progress=$(cd ../../tools/devtools && pwd)/progress.sh
export GOWORK=off CGO_ENABLED=0

read -r kube etcd keda < <(go list -m -f '{{.Version}}' k8s.io/kubernetes go.etcd.io/etcd/server/v3 github.com/kedacore/keda/v2 | tr '\n' ' '; echo)
dir="${KEDASCALERS_E2E_CACHE:-$HOME/.cache/kedascalers-e2e}/kube-$kube-etcd-$etcd-keda-$keda"
if [[ "${1:-}" == "--dir" ]]; then echo "$dir" >&3; exit 0; fi
mkdir -p "$dir"

minor=${kube#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

# In the order the scenarios need them.
targets=(
  "etcd ./cmd/etcd"
  "kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver"
  "keda-operator github.com/kedacore/keda/v2/cmd/operator"
  "keda-adapter github.com/kedacore/keda/v2/cmd/adapter"
  "kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager"
)
for t in "${targets[@]}"; do
  read -r name pkg <<<"$t"
  if [[ -x "$dir/$name" ]]; then echo "e2e build: $name present"; continue; fi
  # A line when it starts, one a minute while it builds (kube-apiserver
  # takes minutes), and its result and time.
  "$progress" "e2e build: $name ($pkg)" . go build -trimpath -ldflags "$ldflags" -o "$dir/.$name.tmp" "$pkg"
  mv "$dir/.$name.tmp" "$dir/$name"
done
echo "$dir" >&3
