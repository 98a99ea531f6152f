#!/usr/bin/env bash
# `make demo-kind`: the demo fleet (hack/checkout_demo/fleet/) deployed into kind, for machines WITH Docker.
#
# UNTESTED HERE: the project's machines have no container engine, so this script has never run
# in CI or on the developers' machines. `make demo` is the tested demo (local processes, kwok).
#
# What it does: builds the project image, creates a kind cluster, installs the operator's Helm
# chart with that image, runs per region (namespaces region-<name>) PostgreSQL, Redis, Kafka and a
# Temporal dev server from public images plus the PSP simulator from the project image, creates
# the Secrets the fleet references, applies hack/checkout_demo/fleet/ (images and addresses filled in) and
# waits for every CheckoutRegion to be Ready. The GameDay driver (load, faults, report) is the
# local `make demo`; here you can break a region by hand, e.g.
#   kubectl -n region-us-east-1 scale deployment --all --replicas=0
#
#   hack/demo-kind.sh            # KEEP=1 keeps the cluster afterwards
# Needs: docker, kind, kubectl, helm on PATH, and the project's .venv (`make setup`).
#
# The URL rule (docs/security.md) takes plain http only to loopback: the regions' gatewayUrl and
# the PSP endpoints are https in-cluster names, which need a TLS terminator (with a CA the
# operator and the services trust) in front of each gateway and of the PSP simulator. This
# script provides none, so health probes and payments to the simulator fail until you add one;
# the regions are applied with failover.policy Manual so that those probes move no market.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-checkout-demo}"
IMAGE="${IMAGE:-checkout-operator:demo}"
OPERATOR_NS=checkout-system
FLEET_NS=checkout-demo
TIMEOUT="${TIMEOUT:-600s}"
REGIONS=(us-east-1 eu-west-1 ap-south-1)

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "demo-kind: $tool not found on PATH" >&2; exit 2; }
done
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "demo-kind: $PY not found: run 'make setup' first" >&2; exit 2; }
cleanup() {
  if [[ -z "${KEEP:-}" ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

docker build -t "$IMAGE" "$ROOT"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind load docker-image "$IMAGE" --name "$CLUSTER"
CTX="kind-$CLUSTER"
k() { kubectl --context "$CTX" "$@"; }

for ns in "$FLEET_NS" "${REGIONS[@]/#/region-}"; do
  k create namespace "$ns" --dry-run=client -o yaml | k apply -f -
done
helm upgrade --install checkout-operator "$ROOT/charts/checkout-operator" \
  --kube-context "$CTX" --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=Never --set watch.allNamespaces=false \
  --set "watch.namespaces={$FLEET_NS}" --wait --timeout "$TIMEOUT"

# Everything else as structured objects from one module (hack/checkout_demo/kind.py: backing
# services, Secrets, the gateways' key and JWKS, the lease kubeconfig, the fleet with the image
# and addresses filled in); tests/unit/test_demo_kind_manifests.py validates the same objects
# with the operator's and the apiserver's own rules, so this script cannot drift from the API.
KUBECONFIG_FILE="${TMPDIR:-/tmp}/demo-kind.kubeconfig"
kind get kubeconfig --internal --name "$CLUSTER" > "$KUBECONFIG_FILE"
PYTHONPATH="$ROOT/hack" "$PY" -m checkout_demo.kind --image "$IMAGE" --kubeconfig "$KUBECONFIG_FILE" \
  | k apply -f -

k -n "$FLEET_NS" wait checkoutregion --all --for=condition=Ready --timeout "$TIMEOUT"
k -n "$FLEET_NS" get checkoutregions,psproutes
echo "demo-kind: the fleet is Ready in kind cluster $CLUSTER (KEEP=1 to keep it)"
