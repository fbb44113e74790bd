#!/usr/bin/env bash
# e2e/run.sh runs the end-to-end scenarios (make e2e): it builds the control
# plane and KEDA once (e2e/build.sh, cached by version), finds the CRDs in
# their Go modules, compiles the scenarios, and runs them in a private
# network namespace (loopback only) as root, with our scalers from bin/
# (make build). Arguments go to the test binary: -test.run TestHPA, say.
# Each phase prints its time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
phase() { echo "e2e: $1 in $(( $(date +%s) - ${2} ))s"; }

for tool in unshare ip; do
  if ! command -v "$tool" >/dev/null; then
    echo "e2e: $tool is missing (apt-get install -y util-linux iproute2)" >&2
    exit 1
  fi
done
if [[ ! -x bin/redis-session || ! -x bin/postgres-query ]]; then
  echo "e2e: bin/redis-session and bin/postgres-query are missing: run make build (make e2e does)" >&2
  exit 1
fi

t=$(date +%s)
bin=$(nice -n 10 e2e/build.sh)
phase "control plane and KEDA binaries ready ($bin)" "$t"

# The CRDs come from the modules that define them, at the versions the
# repository pins: KEDA's (e2e/build/go.mod), cert-manager's
# (deploy/go.mod), and the Prometheus Operator's ServiceMonitor and PrometheusRule from the
# newest root module the Go proxy serves (its CRDs are not in the
# pkg/apis/monitoring module deploy requires).
t=$(date +%s)
moddir() { GOWORK=off GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
keda_v=$(cd e2e/build && GOWORK=off go list -m -f '{{.Version}}' github.com/kedacore/keda/v2)
cm_v=$(cd deploy && GOWORK=off go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager)
promop_v=v0.85.0
keda_dir=$(moddir "github.com/kedacore/keda/v2@$keda_v")
cm_dir=$(moddir "github.com/cert-manager/cert-manager@$cm_v")
promop_dir=$(moddir "github.com/prometheus-operator/prometheus-operator@$promop_v")
crds=$(ls "$keda_dir"/config/crd/bases/*.yaml "$cm_dir"/deploy/crds/*.yaml \
  "$promop_dir"/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  "$promop_dir"/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml | paste -sd:)
phase "CRDs found (KEDA $keda_v, cert-manager $cm_v, Prometheus Operator $promop_v)" "$t"

t=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd e2e && go test -count=1 ./cluster && go test -c -o "$tmp/e2e.test" .)
phase "harness tested, scenarios compiled" "$t"

# Scaler replicas behind one name, as a headless Service gives KEDA: the
# namespace's own hosts file (bound over /etc/hosts in a private mount
# namespace) maps replicas_host to several loopback addresses, which KEDA's
# gRPC client resolves with Go's resolver and balances round robin.
replicas_host=scalers.e2e.test
replicas_ips=127.0.0.2,127.0.0.3,127.0.0.4
{ cat /etc/hosts; for ip in ${replicas_ips//,/ }; do echo "$ip $replicas_host"; done; } >"$tmp/hosts"

t=$(date +%s)
ns=(unshare -n -m)
if [[ $(id -u) != 0 ]]; then ns=(unshare -rnm); fi
status=0
(
  cd e2e
  export KEDASCALERS_E2E_BIN="$bin" KEDASCALERS_E2E_SCALERS="$root/bin" KEDASCALERS_E2E_CRDS="$crds"
  export KEDASCALERS_E2E_REPLICAS="$replicas_host=$replicas_ips"
  "${ns[@]}" -- bash -c 'ip link set lo up && mount --bind "$0" /etc/hosts && exec "$1" "${@:2}"' \
    "$tmp/hosts" "$tmp/e2e.test" -test.v -test.count=1 -test.timeout=20m "$@"
) || status=$?
phase "scenarios run (private network namespace)" "$t"
phase "make ${E2E_NAME:-e2e}" "$start"
exit $status
