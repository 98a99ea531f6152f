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
# Needs: docker, kind, kubectl, helm, python3 with PyYAML on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-checkout-demo}"
IMAGE="${IMAGE:-checkout-operator:demo}"
OPERATOR_NS=checkout-system
FLEET_NS=checkout-demo
TIMEOUT="${TIMEOUT:-600s}"
REGIONS=(us-east-1 eu-west-1 ap-south-1)

for tool in docker kind kubectl helm python3; do
  command -v "$tool" >/dev/null || { echo "demo-kind: $tool not found on PATH" >&2; exit 2; }
done
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

# The fleet's regions deploy "remotely" into namespaces of this same cluster.
kind get kubeconfig --internal --name "$CLUSTER" > "${TMPDIR:-/tmp}/demo-kind.kubeconfig"
k -n "$FLEET_NS" create secret generic demo-kubeconfig \
  --from-file=kubeconfig="${TMPDIR:-/tmp}/demo-kind.kubeconfig" --dry-run=client -o yaml | k apply -f -

backing() {  # region namespace: PostgreSQL, Redis, Kafka (KRaft), Temporal dev server, PSP sim
  local ns=$1
  k -n "$ns" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: backing}
spec:
  selector: {matchLabels: {app: backing}}
  template:
    metadata: {labels: {app: backing}}
    spec:
      containers:
        - {name: postgres, image: "postgres:16", env: [{name: POSTGRES_HOST_AUTH_METHOD, value: trust}, {name: POSTGRES_DB, value: checkout}]}
        - {name: redis, image: "redis:7"}
        - {name: kafka, image: "apache/kafka:4.1.0"}
        - {name: temporal, image: "temporalio/temporal:latest", args: [server, start-dev, --ip, 0.0.0.0]}
        - {name: psp-sim, image: "$IMAGE", imagePullPolicy: Never, command: [checkout-services], args: [psp-sim, --host, 0.0.0.0, --port, "8099"]}
---
apiVersion: v1
kind: Service
metadata: {name: backing}
spec:
  selector: {app: backing}
  ports:
    - {name: pg, port: 5432}
    - {name: redis, port: 6379}
    - {name: kafka, port: 9092}
    - {name: temporal, port: 7233}
    - {name: sim, port: 8099}
YAML
}
for r in "${REGIONS[@]}"; do backing "region-$r"; done

# Secrets: every region's addresses in every region namespace (peers read each other's Kafka).
for ns in "$FLEET_NS" "${REGIONS[@]/#/region-}"; do
  for r in "${REGIONS[@]}"; do
    host="backing.region-$r.svc.cluster.local"
    k -n "$ns" create secret generic "$r-postgres" --from-literal=url="postgresql://postgres@$host:5432/checkout" --dry-run=client -o yaml | k apply -f -
    k -n "$ns" create secret generic "$r-redis" --from-literal=url="redis://$host:6379/0" --dry-run=client -o yaml | k apply -f -
    k -n "$ns" create secret generic "$r-kafka" --from-literal=bootstrap="$host:9092" --dry-run=client -o yaml | k apply -f -
    k -n "$ns" create secret generic "$r-kafka-remote" --from-literal=bootstrap="$host:9092" --dry-run=client -o yaml | k apply -f -
    k -n "$ns" create secret generic "$r-temporal" --from-literal=address="$host:7233" --dry-run=client -o yaml | k apply -f -
  done
  for p in stripe-us adyen-us adyen-eu stripe-eu pix-br upi-in; do
    k -n "$ns" create secret generic "psp-$p" --from-literal=api-key="sk_test_$p" \
      --from-literal=webhook-secret="whsec_$p" --dry-run=client -o yaml | k apply -f -
  done
done

# The fleet, with the image, gateway URLs and the simulator's address filled in.
python3 - "$ROOT/hack/checkout_demo/fleet" "$IMAGE" <<'PY' | k apply -f -
import json, pathlib, sys, yaml
root, image = pathlib.Path(sys.argv[1]), sys.argv[2]
items = []
for path in sorted(root.rglob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        if doc["kind"] == "CheckoutRegion":
            r = doc["spec"]["region"]
            doc["spec"]["services"]["image"] = image
            doc["spec"]["gatewayUrl"] = f"http://checkout-gateway.region-{r}.svc.cluster.local:8080"
        else:
            for p in doc["spec"]["providers"]:
                p["endpoint"] = p["endpoint"].replace(
                    "http://127.0.0.1:1/psp-sim", "http://backing.region-us-east-1.svc.cluster.local:8099")
        items.append(doc)
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY

k -n "$FLEET_NS" wait checkoutregion --all --for=condition=Ready --timeout "$TIMEOUT"
k -n "$FLEET_NS" get checkoutregions,psproutes
echo "demo-kind: the fleet is Ready in kind cluster $CLUSTER (KEEP=1 to keep it)"
