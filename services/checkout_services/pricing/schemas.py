"""Request and response bodies of the pricing API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from checkout_services.common import ids

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=ids.SKU)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Line(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=999)


class QuoteRequest(Strict):
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")
    lines: list[Line] = Field(min_length=1, max_length=100)
    promo_code: str | None = Field(default=None, min_length=1, max_length=64)
    shipping_option: str | None = Field(default=None, min_length=1, max_length=64)


class PricedLine(Strict):
    sku: str
    quantity: int
    unit_amount: int
    amount: int


class ShippingQuote(Strict):
    id: str
    name: str
    amount: int
    days: int


class TaxQuote(Strict):
    kind: Literal["VAT", "GST", "sales_tax"]
    rate_bp: int
    inclusive: bool
    amount: int


class Quote(Strict):
    """A time-boxed pricing snapshot: the amounts are fixed until ``expires_at``."""

    snapshot_id: str
    expires_at: datetime
    country: str
    currency: str
    lines: list[PricedLine]
    subtotal: int
    discount: int
    promo_applied: str | None
    shipping: ShippingQuote
    shipping_options: list[ShippingQuote]
    tax: TaxQuote
    total: int
    """What the customer pays, in minor units of ``currency``."""
    display_total: str
