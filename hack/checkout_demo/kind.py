"""Every manifest `hack/demo-kind.sh` applies to its kind cluster, as structured objects.

``python -m checkout_demo.kind --image IMAGE --kubeconfig FILE`` prints them as one
``v1/List`` for ``kubectl apply -f -``: the region namespaces, each region's backing services
(PostgreSQL, Redis, Kafka, Temporal, the PSP simulator), the Secrets and ConfigMaps the fleet
references (addresses, PSP credentials, the gateways' principal key and JWKS, the remote and
lease kubeconfigs) and the demo fleet (hack/checkout_demo/fleet/) with the image and addresses
filled in. tests/unit/test_demo_kind_manifests.py validates all of it the way the operator
and the apiserver do (pydantic, the CRDs' schema and CEL, the fleet checks, the kubeconfig
allow-list, Kubernetes' own schemas), so the script cannot drift from the API again.

**The URL rule** (lib/checkout_contract/urls.py) takes plain ``http://`` only to loopback,
which in a pod is the pod itself: ``gatewayUrl`` and the PSP endpoints are ``https://``
in-cluster names here (:func:`gateway_url`, :data:`PSP_SIM_TLS`). Serving them needs a TLS
terminator in front of each gateway and of the simulator, with a certificate the operator
and the services trust; the demo provides neither (the API has no CA-bundle field yet), so
in kind the health probes and the payments to the simulator fail until you add one, and the
regions are applied with ``failover.policy: Manual`` so that failing probes move no market.
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from checkout_demo import auth, cluster

FLEET_NAMESPACE = cluster.NAMESPACE
BACKING = "backing"
"""One Deployment + Service per region namespace with the region's backing services."""
SIM_PORT = 8099
PSP_SIM_TLS = f"https://psp-sim.{cluster.region_namespace('us-east-1')}.svc.cluster.local"
"""Where the PSP endpoints point (an https name: see the module docstring)."""
BACKING_IMAGES = {
    "postgres": ("postgres:16", 5432),
    "redis": ("redis:7", 6379),
    "kafka": ("apache/kafka:4.1.0", 9092),
    "temporal": ("temporalio/temporal:latest", 7233),
}


def gateway_url(region: str) -> str:
    """A region's ``gatewayUrl`` in kind: its TLS entry (see the module docstring)."""
    return f"https://gateway.{cluster.region_namespace(region)}.svc.cluster.local"


def backing_host(region: str) -> str:
    return f"{BACKING}.{cluster.region_namespace(region)}.svc.cluster.local"


def namespace_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def backing_docs(namespace: str, image: str) -> list[dict[str, Any]]:
    """PostgreSQL, Redis, Kafka (KRaft), a Temporal dev server and the PSP simulator."""
    labels = {"app": BACKING}
    containers: list[dict[str, Any]] = [
        {"name": "postgres", "image": BACKING_IMAGES["postgres"][0]},
        {"name": "redis", "image": BACKING_IMAGES["redis"][0]},
        {"name": "kafka", "image": BACKING_IMAGES["kafka"][0]},
        {
            "name": "temporal",
            "image": BACKING_IMAGES["temporal"][0],
            "args": ["server", "start-dev", "--ip", "0.0.0.0"],  # noqa: S104 (a pod)
        },
        {
            "name": "psp-sim",
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["checkout-services"],
            "args": ["psp-sim", "--host", "0.0.0.0", "--port", str(SIM_PORT)],  # noqa: S104
        },
    ]
    containers[0]["env"] = [
        {"name": "POSTGRES_HOST_AUTH_METHOD", "value": "trust"},
        {"name": "POSTGRES_DB", "value": "checkout"},
    ]
    ports = [{"name": name, "port": port} for name, (_, port) in BACKING_IMAGES.items()]
    ports.append({"name": "sim", "port": SIM_PORT})
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": BACKING, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": BACKING, "namespace": namespace},
            "spec": {"selector": labels, "ports": ports},
        },
    ]


def address_secrets(namespace: str, regions: list[str]) -> list[dict[str, Any]]:
    """Every region's addresses in ``namespace`` (peers read each other's Kafka)."""
    docs = []
    for r in regions:
        host = backing_host(r)
        for name, key, value in (
            (f"{r}-postgres", "url", f"postgresql://postgres@{host}:5432/checkout"),
            (f"{r}-redis", "url", f"redis://{host}:6379/0"),
            (f"{r}-kafka", "bootstrap", f"{host}:9092"),
            (f"{r}-kafka-remote", "bootstrap", f"{host}:9092"),
            (f"{r}-temporal", "address", f"{host}:7233"),
        ):
            docs.append(cluster.secret_doc(namespace, name, {key: value}))
    return docs


def fleet_docs(image: str, fleet: cluster.Fleet) -> list[dict[str, Any]]:
    """The demo fleet with the image, the https gateway URLs and PSP endpoints, and failover
    held at Manual (the probes' https URLs need a TLS terminator: module docstring)."""
    regions = copy.deepcopy(fleet.regions)
    for doc in regions:
        spec = doc["spec"]
        spec["services"]["image"] = image
        spec["gatewayUrl"] = gateway_url(spec["region"])
        spec.setdefault("failover", {})["policy"] = "Manual"
    routes = copy.deepcopy(fleet.routes)
    for route in routes:
        for p in route["spec"]["providers"]:
            p["endpoint"] = p["endpoint"].replace(cluster.SIM_PLACEHOLDER, PSP_SIM_TLS)
    return [*regions, *routes]


def manifests(
    image: str, kubeconfig: str, jwks: str, fleet: cluster.Fleet | None = None
) -> list[dict[str, Any]]:
    """Everything demo-kind.sh applies after the operator's chart, in order. ``kubeconfig``:
    the cluster's own (``kind get kubeconfig --internal``: an https server and inline
    credentials), for the regions' children and the services' write Leases; ``jwks``: the
    public keys the gateways accept tokens of."""
    fleet = fleet or cluster.load_fleet()
    regions = fleet.names
    region_namespaces = [cluster.region_namespace(r) for r in regions]
    docs: list[dict[str, Any]] = [namespace_doc(ns) for ns in [FLEET_NAMESPACE, *region_namespaces]]
    for ns in region_namespaces:
        docs += backing_docs(ns, image)
    docs.append(
        cluster.secret_doc(FLEET_NAMESPACE, cluster.KUBECONFIG_SECRET, {"kubeconfig": kubeconfig})
    )
    for ns in [FLEET_NAMESPACE, *region_namespaces]:
        docs += address_secrets(ns, regions)
        for p in fleet.providers():
            data = {"api-key": f"sk_test_{p['name']}", "webhook-secret": f"whsec_{p['name']}"}
            docs.append(cluster.secret_doc(ns, p["credentialsSecretRef"]["name"], data))
    for ns in region_namespaces:
        # what every region's services need in their own namespace: the key the gateway signs
        # principals with (and the services their calls), the JWKS, the lease kubeconfig
        key = {"key": secrets.token_hex(32)}
        docs.append(cluster.secret_doc(ns, "checkout-gateway-key", key))
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": auth.JWKS_CONFIGMAP, "namespace": ns},
                "data": {auth.JWKS_KEY: jwks},
            }
        )
        docs.append(
            cluster.secret_doc(ns, cluster.LEASE_KUBECONFIG_SECRET, {"kubeconfig": kubeconfig})
        )
    return docs + fleet_docs(image, fleet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checkout_demo.kind", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--image", required=True, help="the project image loaded into kind")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="kind's internal one")
    args = parser.parse_args(argv)
    try:
        kubeconfig = args.kubeconfig.read_text()
    except OSError as exc:
        print(f"checkout_demo.kind: cannot read {args.kubeconfig}: {exc.strerror}", file=sys.stderr)
        return 2
    items = manifests(args.image, kubeconfig, auth.Issuer().jwks())
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
