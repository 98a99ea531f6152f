"""Exact output of the Deployment builder."""

from __future__ import annotations

from typing import Any

import example_data as helpers

from checkout_operator.render import deployment, hashing


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"checkout-{component}",
        "app.kubernetes.io/instance": f"checkout-{component}-eu-west-1",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "checkout",
        "app.kubernetes.io/managed-by": "checkout-operator",
        "checkout-operator.io/region": "eu-west-1",
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def test_payments_deployment_exact() -> None:
    region = helpers.example_region("eu-west-1")
    got = deployment.build(region, "shop", "payments", "cafe", ["psp-adyen-eu", "psp-ideal-nl"])
    expected = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout-payments",
            "namespace": "shop",
            "labels": _labels("payments"),
        },
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "checkout-payments",
                    "app.kubernetes.io/instance": "checkout-payments-eu-west-1",
                }
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": _labels("payments"),
                    "annotations": {"checkout-operator.io/config-hash": "cafe"},
                },
                "spec": {
                    "serviceAccountName": "checkout-payments",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "payments",
                            "image": "ghcr.io/example/checkout-services:0.1.0",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["checkout-services"],
                            "args": ["payments", "--host", "0.0.0.0"],
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            ],
                            "env": [
                                {"name": "CHECKOUT_REGION", "value": "eu-west-1"},
                                {"name": "CHECKOUT_SERVICE", "value": "payments"},
                                {
                                    "name": "REGION_CONFIG_FILE",
                                    "value": "/etc/checkout/region/region.json",
                                },
                                {
                                    "name": "FLEET_ROUTING_FILE",
                                    "value": "/etc/checkout/routing/routing.json",
                                },
                                _secret_env("DATABASE_URL", "eu-west-1-postgres", "url"),
                                _secret_env("REDIS_URL", "eu-west-1-redis", "url"),
                                _secret_env(
                                    "KAFKA_BOOTSTRAP_SERVERS", "eu-west-1-kafka", "bootstrap"
                                ),
                                _secret_env("TEMPORAL_ADDRESS", "eu-west-1-temporal", "address"),
                                # payments checks the region's signature on its operations
                                _secret_env("CHECKOUT_GATEWAY_KEY", "checkout-gateway-key", "key"),
                                {
                                    "name": "OTEL_EXPORTER_OTLP_ENDPOINT",
                                    "value": "https://otel-collector.observability:4318",
                                },
                                {
                                    "name": "OTEL_TRACES_SAMPLER",
                                    "value": "parentbased_traceidratio",
                                },
                                {"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.2"},
                                {
                                    "name": "PSP_ROUTING_FILE",
                                    "value": "/etc/checkout/psp-routing/routing.json",
                                },
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/health/ready", "port": "http"},
                                "periodSeconds": 5,
                                "timeoutSeconds": 2,
                                "failureThreshold": 3,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/health/live", "port": "http"},
                                "periodSeconds": 10,
                                "timeoutSeconds": 2,
                                "failureThreshold": 6,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": [
                                {
                                    "name": "region-config",
                                    "mountPath": "/etc/checkout/region",
                                    "readOnly": True,
                                },
                                {
                                    "name": "fleet-routing",
                                    "mountPath": "/etc/checkout/routing",
                                    "readOnly": True,
                                },
                                {
                                    "name": "psp-routing",
                                    "mountPath": "/etc/checkout/psp-routing",
                                    "readOnly": True,
                                },
                                {
                                    "name": "psp-credentials-0",
                                    "mountPath": "/etc/checkout/psp-credentials/psp-adyen-eu",
                                    "readOnly": True,
                                },
                                {
                                    "name": "psp-credentials-1",
                                    "mountPath": "/etc/checkout/psp-credentials/psp-ideal-nl",
                                    "readOnly": True,
                                },
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "region-config", "configMap": {"name": "checkout-region"}},
                        {"name": "fleet-routing", "configMap": {"name": "checkout-fleet-routing"}},
                        {"name": "psp-routing", "configMap": {"name": "checkout-psp-routing"}},
                        {"name": "psp-credentials-0", "secret": {"secretName": "psp-adyen-eu"}},
                        {"name": "psp-credentials-1", "secret": {"secretName": "psp-ideal-nl"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }
    assert got == hashing.with_spec_hash(expected)


def test_autoscaled_service_leaves_replicas_to_the_hpa() -> None:
    region = helpers.example_region("eu-west-1")
    got = deployment.build(region, "shop", "cart", "x")
    assert "replicas" not in got["spec"]
    container = got["spec"]["template"]["spec"]["containers"][0]
    assert [m["name"] for m in container["volumeMounts"]] == [
        "region-config",
        "fleet-routing",
        "tmp",
    ]
    assert "PSP_ROUTING_FILE" not in {e["name"] for e in container["env"]}


def test_fixed_size_service_sets_replicas() -> None:
    region = helpers.example_region("eu-central-1")
    got = deployment.build(region, "shop", "pricing", "x")
    assert got["spec"]["replicas"] == 3


def test_config_hash_changes_roll_the_pods_and_the_spec_hash() -> None:
    region = helpers.example_region("eu-west-1")
    a = deployment.build(region, "shop", "cart", "one")
    b = deployment.build(region, "shop", "cart", "two")
    assert a["metadata"]["annotations"] != b["metadata"]["annotations"]


def test_pricing_mounts_its_rendered_config() -> None:
    region = helpers.example_region("eu-west-1")
    got = deployment.build(region, "shop", "pricing", "x")
    pod = got["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["volumes"] == [
        {"name": "region-config", "configMap": {"name": "checkout-region"}},
        {"name": "fleet-routing", "configMap": {"name": "checkout-fleet-routing"}},
        {"name": "pricing-config", "configMap": {"name": "checkout-pricing"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    assert container["volumeMounts"] == [
        {"name": "region-config", "mountPath": "/etc/checkout/region", "readOnly": True},
        {"name": "fleet-routing", "mountPath": "/etc/checkout/routing", "readOnly": True},
        {"name": "pricing-config", "mountPath": "/etc/checkout/pricing", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PRICING_CONFIG_FILE"] == "/etc/checkout/pricing/pricing.json"
    # only pricing reads it
    cart = deployment.build(region, "shop", "cart", "x")["spec"]["template"]["spec"]
    assert "pricing-config" not in {v["name"] for v in cart["volumes"]}


def _otel_env(region_name: str, component: str) -> list[dict[str, Any]]:
    pod = deployment.build(helpers.example_region(region_name), "shop", component, "x")
    env = pod["spec"]["template"]["spec"]["containers"][0]["env"]
    return [e for e in env if e["name"].startswith("OTEL_")]


def test_tracing_env_only_when_the_region_sets_an_endpoint() -> None:
    for component in ("cart", "pricing", "payments", "orders"):
        assert _otel_env("eu-west-1", component) == [
            {
                "name": "OTEL_EXPORTER_OTLP_ENDPOINT",
                "value": "https://otel-collector.observability:4318",
            },
            {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
            {"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.2"},
        ], component
    assert _otel_env("ap-south-1", "cart") == []  # no spec.tracing: off
