#!/usr/bin/env bash
# End to end on a real kind cluster, for machines WITH Docker (not run in CI here: the test
# machine has no container engine; tests/stack/test_chart.py covers the chart against a real
# control plane instead).
#
#   hack/kind-e2e.sh              # build image, create cluster, helm install, apply examples, wait Ready
#   KEEP=1 hack/kind-e2e.sh       # keep the cluster afterwards
#
# Needs: docker, kind, kubectl, helm on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-checkout-e2e}"
IMAGE="${IMAGE:-checkout-operator:e2e}"
NAMESPACE=checkout  # the examples' namespace
OPERATOR_NS="${OPERATOR_NS:-checkout-operator-system}"
TIMEOUT="${TIMEOUT:-300s}"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool not found on PATH" >&2; exit 2; }
done

cleanup() {
  if [[ -z "${KEEP:-}" ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

echo "== build $IMAGE"
docker build -t "$IMAGE" "$ROOT"

echo "== kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind load docker-image "$IMAGE" --name "$CLUSTER"
CTX="kind-$CLUSTER"

echo "== helm install"
helm upgrade --install checkout-operator "$ROOT/charts/checkout-operator" \
  --kube-context "$CTX" --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set image.pullPolicy=Never --wait --timeout "$TIMEOUT"

echo "== examples (with placeholder Secrets; the services will not find real backends)"
kubectl --context "$CTX" create namespace "$NAMESPACE" --dry-run=client -o yaml \
  | kubectl --context "$CTX" apply -f -
# The Secrets the examples reference: every secretRef name/key, filled with placeholders.
python3 - "$ROOT/examples" <<'PY' | kubectl --context "$CTX" -n "$NAMESPACE" apply -f -
import json, pathlib, sys, yaml
refs = {}
def walk(node):
    if isinstance(node, dict):
        ref = node.get("secretRef")
        if isinstance(ref, dict) and "name" in ref:
            refs.setdefault(ref["name"], set()).add(ref.get("key", "value"))
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        walk(doc)
items = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n},
          "stringData": {k: "placeholder" for k in sorted(keys)}} for n, keys in sorted(refs.items())]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
# Regions deployed into another cluster (spec.remoteCluster) cannot be Ready here: make them local.
for f in "$ROOT"/examples/regions/*.yaml; do
  python3 - "$f" <<'PY' | kubectl --context "$CTX" -n "$NAMESPACE" apply -f -
import json, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc:
        doc["spec"].pop("remoteCluster", None)
        print(json.dumps(doc))
PY
done
kubectl --context "$CTX" -n "$NAMESPACE" apply -f "$ROOT/examples/psproutes/"

echo "== wait for every CheckoutRegion Ready"
kubectl --context "$CTX" -n "$NAMESPACE" wait checkoutregion --all \
  --for=condition=Ready --timeout "$TIMEOUT"
kubectl --context "$CTX" -n "$NAMESPACE" get checkoutregions,psproutes
if kubectl --context "$CTX" -n "$OPERATOR_NS" logs deployment/checkout-operator | grep -Ei 'forbidden|\b403\b'; then
  echo "kind-e2e: the operator hit RBAC denials (above)" >&2
  exit 1
fi
echo "kind-e2e: OK"
