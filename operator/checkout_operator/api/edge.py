"""How customers' traffic reaches a region: a Gateway API ``HTTPRoute`` to the region's checkout
gateway, and (opt-in) external-dns ``DNSEndpoint`` records that follow each market's writer."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from checkout_operator.api.meta import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    SET,
    ApiModel,
    SecretKeyRef,
    SecureURL,
)

HOSTNAME: Final = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""Gateway API ``Hostname``: RFC 1123, lower case, an optional leading ``*.`` label."""
Hostname = Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME)]
ADDRESS: Final = (
    r"^([0-9]{1,3}(\.[0-9]{1,3}){3}"
    r"|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+)$"
)
"""An IPv4 address or a DNS name (of a load balancer)."""


class ParentRef(ApiModel):
    """A Gateway (gateway.networking.k8s.io) the route attaches to."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Gateway."""
    namespace: str | None = Field(default=None, pattern=DNS_LABEL, max_length=63)
    """Namespace of the Gateway (default: the route's namespace; a Gateway in another
    namespace must allow routes from it)."""
    section_name: str | None = Field(default=None, pattern=DNS_SUBDOMAIN, max_length=253)
    """Listener of the Gateway to attach to (default: every listener that accepts it)."""


class HTTPRouteSpec(ApiModel):
    """Render a Gateway API ``HTTPRoute`` (gateway.networking.k8s.io/v1) that sends the
    region's public API (``/v1/``) to the checkout gateway Service."""

    parent_refs: tuple[ParentRef, ...] = Field(min_length=1, max_length=32)
    """The Gateways the route attaches to."""
    hostnames: tuple[Hostname, ...] = Field(default=(), max_length=16, json_schema_extra=SET)
    """Host names the route serves (RFC 1123, optionally ``*.``-prefixed); empty: every host
    of the parent listeners."""
    request_timeout: str = Field(default="30s", pattern=r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
    """Gateway API duration the whole request may take (e.g. ``30s``, ``1m``)."""


class DNSSpec(ApiModel):
    """Render external-dns ``DNSEndpoint`` records (externaldns.k8s.io/v1alpha1) for this
    region's home markets: ``write.<market>.<zone>`` points at the market's current writer
    region (it follows every failover and switchover), ``read.<market>.<zone>`` has one weighted
    record per region that serves the market's reads. external-dns must watch DNSEndpoints."""

    zone: str = Field(pattern=DNS_SUBDOMAIN, max_length=200)
    """DNS zone the records go into, e.g. ``checkout.example.com``."""
    address: str = Field(pattern=ADDRESS, max_length=253)
    """This region's public entry (its load balancer's IPv4 address: an ``A`` record, or host
    name: a ``CNAME``). Every region of the fleet that writes or reads a market with DNS should
    set it; a region without one is left out of the records."""
    ttl_seconds: int = Field(default=30, ge=1, le=86400)
    """TTL of the records: short, so clients follow a moved writer quickly."""
    read_weight: int = Field(default=100, ge=0, le=255)
    """Weight of this region in the weighted read records of the markets it serves."""
    weight_property: str = Field(default="aws/weight", min_length=1, max_length=253)
    """external-dns provider-specific property that carries the weight (``aws/weight`` for
    Route 53; see the provider's external-dns tutorial)."""


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the region's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)
    """Name of the ConfigMap."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key inside the ConfigMap."""


class GatewayAuth(ApiModel):
    """How the checkout gateway authenticates and limits requests. The signing keys are public
    (a JWKS): tokens are verified locally, no call to the issuer per request."""

    jwks_url: SecureURL | None = None
    """URL of the issuer's JWKS (fetched at start and on an unknown key id): ``https://``
    without user information (the gateway itself fetches only ``https://``, loopback ``http://``
    only in tests). When unset, the JWKS comes from ``jwksConfigMapRef``."""
    jwks_config_map_ref: ConfigMapKeyRef = ConfigMapKeyRef(
        name="checkout-gateway-jwks", key="jwks.json"
    )
    """ConfigMap key holding the JWKS (mounted; a rotated key is picked up without restart)."""
    issuer: str | None = Field(default=None, min_length=1, max_length=1024)
    """The ``iss`` claim every token must carry. Required (every region runs the gateway, and
    the gateway does not start without it, nor without ``audience``): a token the same issuer
    minted for another service is never a checkout token."""
    audience: str | None = Field(default=None, min_length=1, max_length=1024)
    """The ``aud`` claim every token must carry. Required, like ``issuer``."""
    client_rate_per_second: int = Field(default=20, ge=1, le=100000)
    """Token bucket of each client (the token's ``client_id``/``azp``/``sub``): refill rate."""
    client_burst: int = Field(default=40, ge=1, le=100000)
    """Token bucket of each client: size."""
    market_rate_per_second: int = Field(default=500, ge=1, le=1000000)
    """Token bucket of each market's writes: refill rate."""
    market_burst: int = Field(default=1000, ge=1, le=1000000)
    """Token bucket of each market's writes: size."""
    max_body_bytes: int = Field(default=65536, ge=1024, le=10485760)
    """Largest request body accepted (larger: 413)."""
    principal_key_secret_ref: SecretKeyRef = SecretKeyRef(name="checkout-gateway-key", key="key")
    """Secret key holding the key (at least 32 random bytes) the gateway signs the principal it
    passes to the services with (and the services sign their calls to each other with); cart,
    pricing, inventory, orders and payments check it and refuse requests that did not come
    through the gateway or another service of the region (``CHECKOUT_GATEWAY_KEY``). Create it
    per region
    namespace, e.g. ``kubectl create secret generic checkout-gateway-key
    --from-literal=key=$(openssl rand -hex 32)``."""


REQUIRED_CLAIMS: Final = ("issuer", "audience")
"""The :class:`GatewayAuth` fields every region must set (the gateway's start-up refuses
less); ``spec`` checks them, so the message names ``edge.gateway.<field>``."""


def required_claim_message(field: str) -> str:
    claim = "iss" if field == "issuer" else "aud"
    return (
        f"required: every region runs the gateway, and it does not start without the "
        f"{field} ({claim} claim) the tokens it accepts must carry"
    )


class EdgeSpec(ApiModel):
    """How customers' traffic reaches the region. The route and DNS records are rendered only
    when asked for."""

    gateway: GatewayAuth = GatewayAuth()
    """Authentication and limits of the region's checkout gateway (ConfigMap
    ``checkout-gateway``)."""

    http_route: HTTPRouteSpec | None = None
    """Render a Gateway API HTTPRoute to the region's checkout gateway."""
    dns: DNSSpec | None = None
    """Render external-dns DNSEndpoints for the region's home markets (opt-in)."""
