"""The ``PSPRoute`` custom resource: which payment providers serve which payments.

Rendered into the payments service's routing file (``checkout-psp-routing``) of each region it
applies to. Routes are evaluated in order (higher ``priority`` first, then the more specific
match, then name); the first route whose match accepts the payment is used.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, model_validator

from checkout_operator.api import meta
from checkout_operator.api.meta import (
    DNS_LABEL,
    SET,
    ApiModel,
    Country,
    RegionName,
    RuleViolation,
    SecretRef,
    SecureURL,
    cel_rules,
    rule,
)
from checkout_operator.api.status import PSPRouteStatus

KIND: Final = "PSPRoute"
PLURAL: Final = "psproutes"

FailureClass = Literal[
    "soft_decline", "hard_decline", "fraud", "timeout", "server_error", "network_error"
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", min_length=3, max_length=3)]
NEVER_RETRIED: Final = ("hard_decline", "fraud")
_NEVER_RETRIED_MESSAGE: Final = (
    "hard declines and fraud declines are never retried: action must be stop"
)


class PSPMatch(ApiModel):
    """Which payments the route accepts. An empty list accepts any value."""

    countries: tuple[Country, ...] = Field(default=(), max_length=250, json_schema_extra=SET)
    """Buyer countries, ISO 3166-1 alpha-2."""
    currencies: tuple[Currency, ...] = Field(default=(), max_length=64, json_schema_extra=SET)
    """Currencies, ISO 4217 (e.g. ``EUR``)."""
    payment_methods: tuple[str, ...] = Field(default=(), max_length=32, json_schema_extra=SET)
    """Payment methods, e.g. ``card``, ``ideal``, ``upi``, ``pix``."""

    @model_validator(mode="after")
    def _distinct(self) -> PSPMatch:
        meta.require_distinct(self.countries, ["countries"], "country")
        meta.require_distinct(self.currencies, ["currencies"], "currency")
        meta.require_distinct(self.payment_methods, ["paymentMethods"], "payment method")
        return self

    def specificity(self) -> int:
        """How many dimensions the match constrains (more specific routes go first)."""
        dimensions = (self.countries, self.currencies, self.payment_methods)
        return sum(1 for values in dimensions if values)


_API_MESSAGE: Final = "api is only for the payment-method types upi, ideal and pix"


class PSPProvider(ApiModel):
    """One payment service provider account at one regional endpoint."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            rule("!has(self.api) || self.type in ['upi', 'ideal', 'pix']", _API_MESSAGE, ".api")
        )
    }

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    """Unique within the route; names the provider in logs, metrics and payment records."""
    type: Literal["stripe", "adyen", "upi", "ideal", "pix"]
    """Provider API family."""
    endpoint: SecureURL
    """Regional API base URL (captures and refunds go back to the same one). It receives card
    data and the ``api-key``, so it must be ``https://`` without user information; plain
    ``http://`` only to a loopback host (127.0.0.0/8, ``::1``, ``localhost``: the local
    stack's PSP simulator and stripe-mock)."""
    account: str = Field(min_length=1, max_length=128)
    """Merchant account id at the provider (not a secret)."""
    credentials_secret_ref: SecretRef
    """Secret with keys ``api-key`` and ``webhook-secret``, mounted into the payments pods."""
    weight: int = Field(default=1, ge=0, le=1000)
    """Share of traffic under the weighted strategy."""
    timeout_ms: int = Field(default=2000, ge=1, le=60000)
    """Per-call timeout."""
    api: Literal["stripe", "adyen"] | None = None
    """For the payment-method types (upi, ideal, pix): the provider API that carries the
    method (Stripe PaymentIntents with ``payment_method_types``, Adyen's Checkout API with
    ``paymentMethod.type`` ``upi_collect`` / ``ideal`` / ``pix``); the provider then takes
    only that method. Without it, those types speak the PSP simulator's own dialect (demos and
    tests: no real provider has that API)."""

    @model_validator(mode="after")
    def _api_for_methods(self) -> PSPProvider:
        if self.api is not None and self.type not in ("upi", "ideal", "pix"):
            raise RuleViolation(["api"], _API_MESSAGE)
        return self


class RetryRule(ApiModel):
    """What to do after a failure of one class."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            rule(
                "!(self.failure in ['hard_decline', 'fraud']) || self.action == 'stop'",
                _NEVER_RETRIED_MESSAGE,
                ".action",
            )
        )
    }

    failure: FailureClass
    """Failure class: soft_decline, hard_decline, fraud, timeout, server_error, network_error.
    (Not called ``on``: YAML 1.1 parsers read a bare ``on`` key as the boolean true.)"""
    action: Literal["next_provider", "retry_same", "stop"]
    """next_provider, retry_same or stop."""
    max_attempts: int = Field(default=1, ge=1, le=10)
    """Attempts of this action."""

    @model_validator(mode="after")
    def _never_retried(self) -> RetryRule:
        if self.failure in NEVER_RETRIED and self.action != "stop":
            raise RuleViolation(["action"], _NEVER_RETRIED_MESSAGE)
        return self


class CircuitBreaker(ApiModel):
    """Stop sending to a provider whose failure rate is too high, for a while."""

    failure_rate_percent: int = Field(default=50, ge=1, le=100)
    """Failure rate that opens the breaker."""
    minimum_requests: int = Field(default=20, ge=1)
    """Requests in the window before the rate counts."""
    window_seconds: int = Field(default=30, ge=1)
    """Sliding window length."""
    open_seconds: int = Field(default=15, ge=1)
    """How long the breaker stays open."""
    half_open_requests: int = Field(default=3, ge=1)
    """Trial requests when half-open."""


_SPEC_RULES = cel_rules(
    rule(
        "self.strategy != 'weighted' || self.providers.exists(p, p.weight > 0)",
        "the weighted strategy needs a provider weight > 0",
        ".providers",
    ),
    rule(
        "self.providers.all(p, self.providers.exists_one(q, q.name == p.name))",
        "provider names must be distinct",
        ".providers",
    ),
    rule(
        "self.retry.all(r, self.retry.exists_one(q, q.failure == r.failure))",
        "one retry rule per failure class",
        ".retry",
    ),
)


class PSPRouteSpec(ApiModel):
    """Desired routing of a set of payments."""

    model_config = ApiModel.model_config | {"json_schema_extra": _SPEC_RULES}

    match: PSPMatch = PSPMatch()
    """Which payments this route serves."""
    strategy: Literal["priority", "weighted"] = "priority"
    """priority: providers in order, falling over by the retry rules. weighted: split by weight."""
    providers: tuple[PSPProvider, ...] = Field(min_length=1, max_length=10)
    """Providers of the route."""
    retry: tuple[RetryRule, ...] = Field(default=(), max_length=6)
    """Retry rules by failure class."""
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    """Per-provider circuit breaker."""
    success_rate_ordering: bool = False
    """Reorder providers by their recent authorization rate (with exploration)."""
    regions: tuple[RegionName, ...] = Field(default=(), max_length=64, json_schema_extra=SET)
    """Regions that use the route; empty: every region of the namespace."""
    priority: int = Field(default=100, ge=0, le=1000000)
    """Order among overlapping routes: higher first."""

    @model_validator(mode="after")
    def _rules(self) -> PSPRouteSpec:
        if self.strategy == "weighted" and not any(p.weight > 0 for p in self.providers):
            raise RuleViolation(["providers"], "the weighted strategy needs a provider weight > 0")
        meta.require_distinct([p.name for p in self.providers], ["providers"], "provider name")
        meta.require_distinct([r.failure for r in self.retry], ["retry"], "retry rule for")
        meta.require_distinct(self.regions, ["regions"], "region")
        return self


class PSPRoute(ApiModel):
    """Payment service provider routing for a set of countries, currencies and methods."""

    api_version: Literal["checkout-operator.io/v1alpha1"] = meta.API_VERSION
    """``checkout-operator.io/v1alpha1``."""
    kind: Literal["PSPRoute"] = KIND
    """``PSPRoute``."""
    metadata: meta.ObjectMeta
    """Standard object metadata."""
    spec: PSPRouteSpec
    """Desired state."""
    status: PSPRouteStatus | None = None
    """Observed state, written by the operator."""
