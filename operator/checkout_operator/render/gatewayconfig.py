"""The checkout gateway's settings: ConfigMap ``checkout-gateway`` (env vars of the gateway
container), and the JWKS ConfigMap mounted into its pods."""

from __future__ import annotations

from typing import Any, Final

from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import configmaps, hashing

COMPONENT: Final = "gateway"
CONFIGMAP_NAME: Final = "checkout-gateway"
JWKS_MOUNT_DIR: Final = "/etc/checkout/jwks"
JWKS_VOLUME: Final = "jwks"


def settings(region: CheckoutRegion) -> dict[str, str]:
    """Env var -> value, as ``checkout-services gateway`` reads them."""
    auth = region.spec.edge.gateway
    jwks = auth.jwks_url or f"{JWKS_MOUNT_DIR}/{auth.jwks_config_map_ref.key}"
    data = {
        "GATEWAY_JWKS": jwks,
        "GATEWAY_CLIENT_RATE": str(auth.client_rate_per_second),
        "GATEWAY_CLIENT_BURST": str(auth.client_burst),
        "GATEWAY_MARKET_RATE": str(auth.market_rate_per_second),
        "GATEWAY_MARKET_BURST": str(auth.market_burst),
        "GATEWAY_MAX_BODY_BYTES": str(auth.max_body_bytes),
    }
    if auth.issuer:
        data["GATEWAY_JWT_ISSUER"] = auth.issuer
    if auth.audience:
        data["GATEWAY_JWT_AUDIENCE"] = auth.audience
    return dict(sorted(data.items()))


def configmap(region: CheckoutRegion, namespace: str) -> hashing.KubeObject:
    return configmaps.configmap(
        CONFIGMAP_NAME, namespace, region.spec.region, COMPONENT, settings(region)
    )


def wire(region: CheckoutRegion, container: dict[str, Any]) -> list[dict[str, Any]]:
    """Add the settings to the gateway ``container`` (envFrom, JWKS mount); return the volumes
    the pod needs for it."""
    container["envFrom"] = [{"configMapRef": {"name": CONFIGMAP_NAME}}]
    auth = region.spec.edge.gateway
    if auth.jwks_url:
        return []
    container["volumeMounts"].append(
        {"name": JWKS_VOLUME, "mountPath": JWKS_MOUNT_DIR, "readOnly": True}
    )
    return [{"name": JWKS_VOLUME, "configMap": {"name": auth.jwks_config_map_ref.name}}]
