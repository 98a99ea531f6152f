"""Deployment of one checkout service.

The pods mount the region config and the fleet routing (and, for payments, the PSP routing plus
one directory per provider credentials Secret; for pricing, the pricing config), get their
backing-service addresses from Secrets through env vars, and run under the restricted pod
security profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from checkout_contract import config as region_config
from checkout_contract import env, routing
from checkout_contract import payments as payments_config
from checkout_contract import pricing as pricing_config
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import gatewayconfig, hashing, labels, leaseaccess, pods, psp

SERVICES_COMMAND: Final = "checkout-services"
# The services listen on 127.0.0.1 unless told otherwise (right for a laptop, wrong in a pod):
# the kubelet probes, and the Services route to, the pod's IP.
LISTEN_ALL: Final = "0.0.0.0"  # noqa: S104 (a pod's own network namespace)
PRINCIPAL_KEY_COMPONENTS: Final = frozenset(
    {"gateway", "orders", "cart", "pricing", "inventory", "payments"}
)
"""The gateway signs the principal with ``CHECKOUT_GATEWAY_KEY`` (and the orders saga its own
calls); orders, cart, pricing, inventory and payments check it (every route but health,
metrics and the providers' webhooks)."""


def _config_volume(
    volume: str, configmap: str, mount_dir: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"name": volume, "configMap": {"name": configmap}},
        {"name": volume, "mountPath": mount_dir, "readOnly": True},
    )


def build(
    region: CheckoutRegion,
    namespace: str,
    component: str,
    config_hash: str,
    credential_secrets: Sequence[str] = (),
    lease_access: leaseaccess.Access | None = None,
) -> hashing.KubeObject:
    """``config_hash`` digests the ConfigMaps the pods read; ``credential_secrets`` (payments
    only) are the PSP credentials Secrets to mount, from :func:`psp.credential_secrets`;
    ``lease_access`` (from :func:`leaseaccess.for_region`) gives the components that keep or
    follow the market write leases their namespace and credential."""
    spec = region.spec
    service = spec.services.for_service(component)
    name = labels.child_name(component)
    deps = spec.dependencies
    mounts = [
        _config_volume(
            "region-config", region_config.CONFIGMAP_NAME, region_config.DEFAULT_MOUNT_DIR
        ),
        _config_volume("fleet-routing", routing.CONFIGMAP_NAME, routing.DEFAULT_MOUNT_DIR),
    ]
    pod_env = [
        pods.env_value(env.REGION, spec.region),
        pods.env_value(env.SERVICE, component),
        pods.env_value(
            env.REGION_CONFIG_FILE,
            f"{region_config.DEFAULT_MOUNT_DIR}/{region_config.CONFIG_KEY}",
        ),
        pods.env_value(env.FLEET_ROUTING_FILE, f"{routing.DEFAULT_MOUNT_DIR}/{routing.CONFIG_KEY}"),
        pods.env_from_secret(env.DATABASE_URL, deps.postgres),
        pods.env_from_secret(env.REDIS_URL, deps.redis),
        pods.env_from_secret(env.KAFKA_BOOTSTRAP_SERVERS, deps.kafka),
        pods.env_from_secret(env.TEMPORAL_ADDRESS, deps.temporal),
    ]
    if component in PRINCIPAL_KEY_COMPONENTS:
        pod_env.append(
            pods.env_from_secret(env.GATEWAY_KEY, spec.edge.gateway.principal_key_secret_ref)
        )
    tracing = spec.tracing
    if tracing.otlp_endpoint:
        pod_env += [
            pods.env_value(env.OTLP_ENDPOINT, tracing.otlp_endpoint),
            pods.env_value(env.TRACES_SAMPLER, "parentbased_traceidratio"),
            pods.env_value(env.TRACES_SAMPLER_ARG, f"{tracing.sample_percent / 100:g}"),
        ]
    if component == "payments":
        mounts.append(
            _config_volume(
                "psp-routing", payments_config.CONFIGMAP_NAME, payments_config.DEFAULT_MOUNT_DIR
            )
        )
        pod_env.append(
            pods.env_value(
                env.PSP_ROUTING_FILE,
                f"{payments_config.DEFAULT_MOUNT_DIR}/{payments_config.CONFIG_KEY}",
            )
        )
        for index, secret in enumerate(credential_secrets):
            mounts.append(
                (
                    {"name": f"psp-credentials-{index}", "secret": {"secretName": secret}},
                    {
                        "name": f"psp-credentials-{index}",
                        "mountPath": psp.credentials_dir(secret),
                        "readOnly": True,
                    },
                )
            )
    if component == "pricing":
        mounts.append(
            _config_volume(
                "pricing-config", pricing_config.CONFIGMAP_NAME, pricing_config.DEFAULT_MOUNT_DIR
            )
        )
        pod_env.append(
            pods.env_value(
                env.PRICING_CONFIG_FILE,
                f"{pricing_config.DEFAULT_MOUNT_DIR}/{pricing_config.CONFIG_KEY}",
            )
        )
    mounts.append(pods.tmp_volume())
    container: dict[str, Any] = {
        "name": component,
        "image": spec.services.image,
        "imagePullPolicy": spec.services.image_pull_policy,
        "command": [SERVICES_COMMAND],
        "args": [component, "--host", LISTEN_ALL],
        "ports": [
            # API, health and /metrics: the services listen on this one port
            {"name": "http", "containerPort": region_config.SERVICE_PORT, "protocol": "TCP"},
        ],
        "env": pod_env,
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
        "resources": service.resources.model_dump(by_alias=True, exclude_none=True),
        "securityContext": pods.container_security_context(),
        "volumeMounts": [mount for _, mount in mounts],
    }
    volumes = [volume for volume, _ in mounts]
    if component == gatewayconfig.COMPONENT:
        volumes += gatewayconfig.wire(region, container)
    # the lease store is the one API these pods call (with their token, in the management
    # cluster); every other pod gets no token
    api_token = False
    if lease_access is not None and component in leaseaccess.COMPONENTS:
        volumes += leaseaccess.wire(lease_access, container)
        api_token = lease_access.in_cluster
    deployment_spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": labels.selector(spec.region, component)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {
                "labels": labels.labels(spec.region, component),
                "annotations": {labels.CONFIG_HASH_ANNOTATION: config_hash},
            },
            "spec": {
                "serviceAccountName": name,
                "automountServiceAccountToken": api_token,
                "securityContext": pods.pod_security_context(),
                "terminationGracePeriodSeconds": 30,
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if not service.autoscaling.enabled:
        # With autoscaling on, the HPA owns .spec.replicas: leaving it out keeps server-side
        # apply from fighting the autoscaler.
        deployment_spec = {"replicas": service.replicas, **deployment_spec}
    return hashing.with_spec_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": labels.metadata(name, namespace, spec.region, component),
            "spec": deployment_spec,
        }
    )
