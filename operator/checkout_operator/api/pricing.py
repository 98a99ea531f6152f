"""``spec.pricing`` of a ``CheckoutRegion``: the region's catalog prices, tax rules, shipping
options, promotions and their feature flags.

The operator renders it into the ConfigMap ``checkout-pricing`` (the pricing service's
``PRICING_CONFIG_FILE``), serialized by the service's own model
:class:`checkout_contract.pricing.PricingConfig`. Keyed collections are lists of named
entries here (Kubernetes API conventions) and maps in the service's file. Money is integer
minor units of the currency (cents; yen have none).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from checkout_operator.api import meta
from checkout_operator.api.meta import ApiModel, Country
from checkout_operator.api.psproute import Currency

MAX_SKUS = 2000
"""A ConfigMap holds at most 1 MiB: a larger catalog belongs in a catalog service."""


def keyed(key: str) -> dict[str, Any]:
    """``json_schema_extra`` of a list of entries unique by ``key`` (the apiserver rejects a
    duplicate key at admission, in linear time, where a CEL rule would cost n^2)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]}


class Price(ApiModel):
    """An amount in one currency."""

    currency: Currency
    """ISO 4217 code, e.g. ``EUR``."""
    amount: int = Field(ge=0, le=10**12)
    """Integer minor units of the currency (1999 = 19.99 EUR)."""


def _distinct_currencies(prices: tuple[Price, ...], path: list[str | int]) -> None:
    meta.require_distinct([p.currency for p in prices], path, "currency")


class CatalogItem(ApiModel):
    """A SKU's unit price in each currency it is sold in."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[-._a-zA-Z0-9]+$")
    """Stock keeping unit, as inventory knows it."""
    prices: tuple[Price, ...] = Field(
        min_length=1, max_length=32, json_schema_extra=keyed("currency")
    )
    """Unit price per currency (taxes included where the country's rule is inclusive)."""

    @model_validator(mode="after")
    def _distinct(self) -> CatalogItem:
        _distinct_currencies(self.prices, ["prices"])
        return self


class TaxRule(ApiModel):
    """The tax of one country."""

    country: Country
    """ISO 3166-1 alpha-2 code."""
    kind: Literal["VAT", "GST", "sales_tax"]
    """VAT or GST (usually included in prices) or US-style sales tax (added on top)."""
    rate_bp: int = Field(ge=0, le=10_000)
    """Rate in basis points: 1900 = 19 %."""
    inclusive: bool = True
    """True: catalog prices include the tax; False: it is added on top."""


class ShippingOption(ApiModel):
    """One way to ship to a country."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[-._a-zA-Z0-9]+$")
    """Identifier the client picks (``shippingOption``)."""
    name: str = Field(min_length=1, max_length=128)
    """Display name."""
    prices: tuple[Price, ...] = Field(
        min_length=1, max_length=32, json_schema_extra=keyed("currency")
    )
    """Price per currency."""
    days: int = Field(ge=0, le=365)
    """Promised delivery time in days."""

    @model_validator(mode="after")
    def _distinct(self) -> ShippingOption:
        _distinct_currencies(self.prices, ["prices"])
        return self


class CountryShipping(ApiModel):
    """The shipping options of one country."""

    country: Country
    """ISO 3166-1 alpha-2 code."""
    options: tuple[ShippingOption, ...] = Field(
        min_length=1, max_length=16, json_schema_extra=keyed("id")
    )
    """Options offered, the first being the default."""

    @model_validator(mode="after")
    def _distinct(self) -> CountryShipping:
        meta.require_distinct([o.id for o in self.options], ["options"], "shipping option")
        return self


class Promotion(ApiModel):
    """A discount code, applied only while its feature flag is on."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[-_A-Za-z0-9]+$")
    """The code the client sends (``promotionCode``)."""
    flag: str = Field(min_length=1, max_length=128)
    """OpenFeature boolean flag (see ``flags``) that must be on for the promotion to apply."""
    percent_off_bp: int = Field(default=0, ge=0, le=10_000)
    """Percentage off the subtotal in basis points (1000 = 10 %)."""
    amount_off: tuple[Price, ...] = Field(
        default=(), max_length=32, json_schema_extra=keyed("currency")
    )
    """Fixed discount per currency."""
    min_subtotal: tuple[Price, ...] = Field(
        default=(), max_length=32, json_schema_extra=keyed("currency")
    )
    """Least subtotal per currency for the promotion to apply."""

    @model_validator(mode="after")
    def _distinct(self) -> Promotion:
        _distinct_currencies(self.amount_off, ["amountOff"])
        _distinct_currencies(self.min_subtotal, ["minSubtotal"])
        return self


class Flag(ApiModel):
    """A boolean feature flag served to the pricing service through OpenFeature."""

    name: str = Field(min_length=1, max_length=128)
    """Flag key, e.g. ``promo.welcome10``."""
    enabled: bool
    """Its value: a promotion whose flag is off does not apply (switchable at runtime)."""


class PricingSpec(ApiModel):
    """What the region's pricing service quotes. An edit reaches running pods without a
    restart: the service re-reads its file when the ConfigMap changes."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": meta.cel_rules(
            meta.rule(
                "self.promotions.all(p, self.flags.exists(f, f.name == p.flag))",
                "every promotion's flag must be listed in flags",
                ".promotions",
            )
        )
    }

    catalog: tuple[CatalogItem, ...] = Field(
        default=(), max_length=MAX_SKUS, json_schema_extra=keyed("sku")
    )
    """Unit prices of every SKU the region sells."""
    tax: tuple[TaxRule, ...] = Field(default=(), max_length=256, json_schema_extra=keyed("country"))
    """Tax rule per country (a quote for a country without one is refused)."""
    shipping: tuple[CountryShipping, ...] = Field(
        default=(), max_length=256, json_schema_extra=keyed("country")
    )
    """Shipping options per country."""
    promotions: tuple[Promotion, ...] = Field(
        default=(), max_length=128, json_schema_extra=keyed("code")
    )
    """Promotion codes."""
    flags: tuple[Flag, ...] = Field(default=(), max_length=256, json_schema_extra=keyed("name"))
    """Feature flags; flip one to switch a promotion on or off."""
    snapshot_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    """How long a quote (pricing snapshot) holds its price."""

    @model_validator(mode="after")
    def _distinct(self) -> PricingSpec:
        meta.require_distinct([i.sku for i in self.catalog], ["catalog"], "sku")
        meta.require_distinct([t.country for t in self.tax], ["tax"], "country")
        meta.require_distinct([s.country for s in self.shipping], ["shipping"], "country")
        meta.require_distinct([p.code for p in self.promotions], ["promotions"], "code")
        meta.require_distinct([f.name for f in self.flags], ["flags"], "flag")
        known = {f.name for f in self.flags}
        for index, promo in enumerate(self.promotions):
            if promo.flag not in known:
                raise meta.RuleViolation(
                    ["promotions", index, "flag"],
                    f"promotion {promo.code} names flag {promo.flag!r}, which is not in flags",
                )
        return self
