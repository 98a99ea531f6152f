"""Exact output of the gateway settings ConfigMap, and its wiring into the gateway pods."""

from __future__ import annotations

import example_data as helpers
from render_expect import hashed

from checkout_operator.render import deployment, gatewayconfig

LABELS = {
    "app.kubernetes.io/name": "checkout-gateway",
    "app.kubernetes.io/instance": "checkout-gateway-eu-central-1",
    "app.kubernetes.io/component": "gateway",
    "app.kubernetes.io/part-of": "checkout",
    "app.kubernetes.io/managed-by": "checkout-operator",
    "checkout-operator.io/region": "eu-central-1",
}


def test_gateway_configmap_defaults_to_a_mounted_jwks() -> None:
    region = helpers.example_region("eu-central-1")
    assert gatewayconfig.configmap(region, "shop") == hashed(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "checkout-gateway", "namespace": "shop", "labels": LABELS},
            "data": {
                "GATEWAY_CLIENT_BURST": "40",
                "GATEWAY_CLIENT_RATE": "20",
                "GATEWAY_JWKS": "/etc/checkout/jwks/jwks.json",
                "GATEWAY_JWT_AUDIENCE": "checkout",
                "GATEWAY_JWT_ISSUER": "https://login.example.com/",
                "GATEWAY_MARKET_BURST": "1000",
                "GATEWAY_MARKET_RATE": "500",
                "GATEWAY_MAX_BODY_BYTES": "65536",
            },
        }
    )
    pod = deployment.build(region, "shop", "gateway", "h")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "checkout-gateway"}}]
    assert {"name": "jwks", "mountPath": "/etc/checkout/jwks", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "jwks", "configMap": {"name": "checkout-gateway-jwks"}} in pod["volumes"]


def test_gateway_configmap_with_a_jwks_url_and_claims() -> None:
    region = helpers.example_region("eu-west-1")
    data = gatewayconfig.configmap(region, "shop")["data"]
    assert data["GATEWAY_JWKS"] == "https://login.example.com/.well-known/jwks.json"
    assert data["GATEWAY_JWT_ISSUER"] == "https://login.example.com/"
    assert data["GATEWAY_JWT_AUDIENCE"] == "checkout"
    pod = deployment.build(region, "shop", "gateway", "h")["spec"]["template"]["spec"]
    assert all(v["name"] != "jwks" for v in pod["volumes"])


def test_other_services_get_no_gateway_settings() -> None:
    region = helpers.example_region("eu-west-1")
    (container,) = deployment.build(region, "shop", "cart", "h")["spec"]["template"]["spec"][
        "containers"
    ]
    assert "envFrom" not in container
