"""The PSP routing file, rendered by the operator from PSPRoutes into ``checkout-psp-routing``.

Key ``routing.json``, mounted at the path in ``PSP_ROUTING_FILE``. Routes are listed in
evaluation order: the payments service takes the first route whose match accepts the payment.
Credentials are never in this file: each provider names the directory where its Secret is
mounted (``credentials_dir``), and the Deployment mounts it there.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from checkout_contract import urls
from checkout_contract.model import ConfigModel

CONFIGMAP_NAME: Final = "checkout-psp-routing"
CONFIG_KEY: Final = "routing.json"
DEFAULT_MOUNT_DIR: Final = "/etc/checkout/psp-routing"
CREDENTIALS_MOUNT_ROOT: Final = "/etc/checkout/psp-credentials"

ProviderType = Literal["stripe", "adyen", "upi", "ideal", "pix"]
MethodProviderType = Literal["upi", "ideal", "pix"]
"""Provider types that name a payment method, not a provider API: without ``api`` they speak
the PSP simulator's own dialect (no real API has that shape: demos and tests only)."""
WireApi = Literal["stripe", "adyen"]
Strategy = Literal["priority", "weighted"]
FailureClass = Literal[
    "soft_decline",  # e.g. insufficient funds, do-not-honor: another provider may approve
    "hard_decline",  # e.g. stolen card, invalid account: never retry anywhere
    "fraud",  # fraud/risk decline: never retry anywhere
    "timeout",  # ambiguous: look the payment up before trying anything else
    "server_error",  # provider 5xx
    "network_error",  # connection refused/reset before the request was sent
]
RetryAction = Literal["next_provider", "retry_same", "stop"]


def _endpoint(url: str) -> str:
    wrong = urls.problem(url)
    if wrong is not None:
        raise ValueError(f"endpoint {wrong}")
    return url


Endpoint = Annotated[str, AfterValidator(_endpoint)]
"""A PSP endpoint receives card data and the API key: the operator's URL rule, checked again
by the payments service when it loads the file (a hand-written or stale file too)."""


class Match(ConfigModel):
    """Empty tuple = any. Countries ISO 3166-1 alpha-2, currencies ISO 4217."""

    countries: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    payment_methods: tuple[str, ...] = ()


class Provider(ConfigModel):
    name: str
    """Unique within the route; with ``account`` and ``endpoint`` it identifies where a payment
    was authorized, so capture/void/refund go back to exactly there."""
    type: ProviderType
    endpoint: Endpoint
    """The provider's regional API base URL (https, or http to a loopback host only)."""
    account: str
    """Merchant account id at the provider (not a secret)."""
    credentials_dir: str
    """Directory where the provider's credentials Secret is mounted (files ``api-key``,
    ``webhook-secret``)."""
    weight: int = Field(default=1, ge=0)
    timeout_ms: int = Field(default=2000, ge=1)
    api: WireApi | None = None
    """For a payment-method type (``upi``, ``ideal``, ``pix``): the provider API that carries
    the method, with the method's own type there (Stripe ``payment_method_types``: ``upi``,
    ``ideal``, ``pix``; Adyen ``paymentMethod.type``: ``upi_collect`` / ``upi_qr`` /
    ``upi_intent``, ``ideal``, ``pix``); the provider then takes only that method. Not set on
    ``stripe`` / ``adyen`` providers."""

    @model_serializer(mode="wrap")
    def _without_unset_api(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``api`` is written only when set: the routing file (and its hash, which rolls the
        payments pods) of every route without it stays byte for byte what it was."""
        out: dict[str, Any] = handler(self)
        if self.api is None:
            out.pop("api", None)
        return out

    @model_validator(mode="after")
    def _api_only_for_methods(self) -> Provider:
        if self.api is not None and self.type in ("stripe", "adyen"):
            raise ValueError(f"api: only for the payment-method types, not for {self.type!r}")
        return self


class RetryRule(ConfigModel):
    on: FailureClass
    action: RetryAction
    max_attempts: int = Field(default=1, ge=1)


class CircuitBreaker(ConfigModel):
    failure_rate_percent: int = Field(default=50, ge=1, le=100)
    minimum_requests: int = Field(default=20, ge=1)
    window_seconds: int = Field(default=30, ge=1)
    open_seconds: int = Field(default=15, ge=1)
    half_open_requests: int = Field(default=3, ge=1)


class Route(ConfigModel):
    name: str
    """``<namespace>/<name>`` of the PSPRoute it came from."""
    match: Match
    strategy: Strategy
    providers: tuple[Provider, ...]
    retry: tuple[RetryRule, ...] = ()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    success_rate_ordering: bool = False
    """Reorder providers by recent authorization rate (with exploration)."""


class PaymentRoutingConfig(ConfigModel):
    region: str
    routes: tuple[Route, ...]
