"""The pricing file (``PRICING_CONFIG_FILE``): catalog prices, tax rules, shipping options,
promotions and the feature flags that switch promotions on and off. Money in minor units.

The service re-reads it when it changes (a ConfigMap update), so a flag flip switches a
promotion off at runtime without a restart.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from checkout_contract.model import ConfigModel

CONFIGMAP_NAME: Final = "checkout-pricing"
"""The operator renders ``CheckoutRegion.spec.pricing`` into this ConfigMap (key ``CONFIG_KEY``),
mounted at ``DEFAULT_MOUNT_DIR`` in the pricing pods."""
CONFIG_KEY: Final = "pricing.json"
DEFAULT_MOUNT_DIR: Final = "/etc/checkout/pricing"


class TaxRule(ConfigModel):
    kind: Literal["VAT", "GST", "sales_tax"]
    rate_bp: int = Field(ge=0, le=10_000)
    """Basis points: 1900 = 19 %."""
    inclusive: bool = True
    """True: catalog prices include the tax (VAT/GST); False: added on top (US sales tax)."""


class ShippingOption(ConfigModel):
    id: str
    name: str
    amounts: dict[str, int]
    """Currency -> price in minor units."""
    days: int = Field(ge=0)


class Promotion(ConfigModel):
    code: str
    flag: str
    """OpenFeature boolean flag that must be on for the promotion to apply."""
    percent_off_bp: int = Field(default=0, ge=0, le=10_000)
    amount_off: dict[str, int] = Field(default_factory=dict)
    """Currency -> fixed discount in minor units."""
    min_subtotal: dict[str, int] = Field(default_factory=dict)


class PricingConfig(ConfigModel):
    catalog: dict[str, dict[str, int]]
    """SKU -> currency -> unit price in minor units."""
    tax: dict[str, TaxRule]
    """Country (ISO 3166-1 alpha-2) -> tax rule."""
    shipping: dict[str, tuple[ShippingOption, ...]]
    """Country -> shipping options (the first is the default)."""
    promotions: tuple[Promotion, ...] = ()
    flags: dict[str, bool] = Field(default_factory=dict)
    snapshot_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
