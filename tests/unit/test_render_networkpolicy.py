"""Exact output of the NetworkPolicy builder, and that its ports are the ones the services
actually listen on (the rendered container port, the services' CLI default)."""

from __future__ import annotations

import copy
from typing import Any

import example_data as helpers
from render_expect import META, SELECTOR, hashed

from checkout_contract import config as region_config
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import deployment, networkpolicy, region, service
from checkout_services import cli

REGION_PODS = {
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/part-of": "checkout",
            "checkout-operator.io/region": "eu-west-1",
        }
    }
}


KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def test_networkpolicy_internal_service_admits_only_its_regions_pods_and_the_scrapers() -> None:
    got = networkpolicy.build(
        "eu-west-1",
        "shop",
        "cart",
        metrics_namespaces=["monitoring"],
        egress=networkpolicy.Egress(
            ports=(5432, 6379),
            known=(
                (networkpolicy.Destination(cidr="10.0.0.9/32"), 8443),
                (networkpolicy.Destination(namespace="observability"), 4318),
            ),
        ),
    )
    assert got == hashed(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": META,
            "spec": {
                "podSelector": {"matchLabels": SELECTOR},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {"from": [REGION_PODS], "ports": [{"protocol": "TCP", "port": 8080}]},
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 8080}],
                    },
                ],
                "egress": [
                    {
                        "to": [KUBE_DNS],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                    {"to": [REGION_PODS], "ports": [{"protocol": "TCP", "port": 8080}]},
                    {
                        "to": [{"ipBlock": {"cidr": "10.0.0.9/32"}}],
                        "ports": [{"protocol": "TCP", "port": 8443}],
                    },
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "observability"}
                                },
                                "podSelector": {},
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 4318}],
                    },
                    {
                        "ports": [
                            {"protocol": "TCP", "port": 5432},
                            {"protocol": "TCP", "port": 6379},
                        ]
                    },
                ],
            },
        }
    )


def test_networkpolicy_gateway_is_open_on_http() -> None:
    policy = networkpolicy.build("eu-west-1", "shop", "gateway", metrics_namespaces=["mon"])
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress=None: unrestricted


def _ports(rule: dict[str, Any]) -> set[int]:
    return {int(p["port"]) for p in rule["ports"]}


def test_the_ports_opened_are_the_ones_the_services_listen_on() -> None:
    """The old policy opened a `metrics` port (9090) that nothing listened on: /metrics is
    served on the HTTP port. Every port the policy opens must be a port the pod declares, and
    that port must be the one the service binds by default."""
    me = helpers.example_region("eu-west-1")
    regions, routes = helpers.example_objects()
    objects = region.render_region(me, regions, routes)
    parser = cli.build_parser()
    for obj in (o for o in objects if o["kind"] == "NetworkPolicy"):
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        dep = deployment.build(me, "checkout", component, "cafe")
        declared = {
            p["containerPort"]: p["name"]
            for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        listens = parser.parse_args([component]).port
        assert set(declared) == {listens} == {region_config.SERVICE_PORT}
        for rule in obj["spec"]["ingress"]:
            assert _ports(rule) == {listens}, (component, rule)
    svc = service.build("eu-west-1", "checkout", "orders")
    assert [p["port"] for p in svc["spec"]["ports"]] == [region_config.SERVICE_PORT]


def _egress(objects: list[dict[str, Any]], component: str) -> set[int]:
    (policy,) = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert "Egress" in policy["spec"]["policyTypes"]
    return {int(p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}


def test_egress_is_restricted_to_what_each_service_needs() -> None:
    doc = helpers.example_docs()["eu-west-1"]
    me = CheckoutRegion.model_validate(doc)
    regions, routes = helpers.example_objects()
    objects = region.render_region(me, regions, routes)
    deps = {5432, 6379, 7233, 9092}
    assert me.spec.tracing.otlp_endpoint is not None
    deps.add(networkpolicy.url_port(me.spec.tracing.otlp_endpoint))  # the OTLP collector
    psp_ports = {networkpolicy.url_port(p.endpoint) for r in routes for p in r.spec.providers}
    assert _egress(objects, "cart") == {53, 8080} | deps
    assert _egress(objects, "pricing") == {53, 8080} | deps
    # lease keepers reach the apiserver (eu-west-1 is remote with a lease kubeconfig)
    assert _egress(objects, "orders") == {53, 8080, 443, 6443} | deps
    assert _egress(objects, "payments") >= {443, 6443} | psp_ports
    assert not _egress(objects, "cart") & {443, 6443}
    # the knob: Unrestricted renders no egress section at all
    loose = CheckoutRegion.model_validate(
        {**doc, "spec": {**doc["spec"], "networkPolicy": {"egress": "Unrestricted"}}}
    )
    for obj in region.render_region(loose, regions, routes):
        if obj["kind"] == "NetworkPolicy":
            assert obj["spec"]["policyTypes"] == ["Ingress"]
            assert "egress" not in obj["spec"]


def test_url_port() -> None:
    assert networkpolicy.url_port("https://psp.example") == 443
    assert networkpolicy.url_port("http://sim:8099/v1") == 8099
    assert networkpolicy.url_port("http://collector") == 80


def test_destinations_known_from_a_url() -> None:
    dest = networkpolicy.destination_of
    assert dest("https://otel.observability.svc:4318") == networkpolicy.Destination("observability")
    assert dest("http://checkout-gateway.region-a.svc.cluster.local:8080") == (
        networkpolicy.Destination("region-a")
    )
    assert dest("https://10.1.2.3:8443/v1") == networkpolicy.Destination(cidr="10.1.2.3/32")
    assert dest("https://[2001:db8::7]/v1") == networkpolicy.Destination(cidr="2001:db8::7/128")
    # a DNS name outside the cluster (or a two-label name that could be either): port only
    assert dest("https://api.stripe.com") is None
    assert dest("https://otel-collector.observability:4318") is None
    assert dest("https://svc.ns.svc.evil.example") == networkpolicy.Destination("ns")


def _policy(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (policy,) = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return policy


def test_egress_names_peers_where_the_destination_is_known() -> None:
    """DNS only to the cluster DNS pods; a peer region's gateway behind an in-cluster https
    Service (e.g. a TLS proxy) and an in-cluster collector only to their namespaces; what
    lives behind Secrets or external names by port alone."""
    docs = helpers.example_docs()
    doc = copy.deepcopy(docs["eu-west-1"])
    doc["spec"]["tracing"]["otlpEndpoint"] = "https://otel.observability.svc:4318"
    doc["spec"]["networkPolicy"] = {"dnsNamespace": "dns", "dnsPodLabels": ["app=coredns"]}
    peer = copy.deepcopy(docs["eu-central-1"])
    peer["spec"]["gatewayUrl"] = "https://gateway-tls.edge.svc:8443"  # an in-cluster TLS proxy
    del peer["spec"]["remoteCluster"]
    me, other = CheckoutRegion.model_validate(doc), CheckoutRegion.model_validate(peer)
    _, routes = helpers.example_objects()
    objects = region.render_region(me, [me, other], routes)
    for component in region_config.SERVICE_NAMES:
        rules = _policy(objects, component)["spec"]["egress"]
        assert rules[0]["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns"}},
                "podSelector": {"matchLabels": {"app": "coredns"}},
            }
        ]
        assert rules[1] == {"to": [REGION_PODS], "ports": [{"protocol": "TCP", "port": 8080}]}
        collector = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
            "podSelector": {},
        }
        assert {"to": [collector], "ports": [{"protocol": "TCP", "port": 4318}]} in rules
        open_ports = {p["port"] for r in rules if "to" not in r for p in r["ports"]}
        assert not open_ports & {4318, 53}, component
        assert {5432, 6379, 7233, 9092} <= open_ports
    gateway = _policy(objects, "gateway")["spec"]["egress"]
    peer_pods = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}},
        "podSelector": {},
    }
    assert {"to": [peer_pods], "ports": [{"protocol": "TCP", "port": 8443}]} in gateway
    cart = _policy(objects, "cart")["spec"]["egress"]
    assert not any(r.get("to") == [peer_pods] for r in cart)  # only the gateway forwards
