"""Request and response bodies of the orders API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from checkout_services.common import ids

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=ids.SKU)]
CheckoutId = Annotated[str, Field(min_length=1, max_length=64, pattern=ids.ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Line(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=999)


class Address(Strict):
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$")


class Customer(Strict):
    """Personal data (classification: personal): stored in the home region's ``customers``,
    replicated only where the market's residency allows, erasable (``privacy erase``)."""

    customer_id: CheckoutId
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    address: Address | None = None


class CheckoutRequest(Strict):
    checkout_id: CheckoutId
    market: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 (write-primary)")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    lines: list[Line] = Field(min_length=1, max_length=50)
    payment_method: Literal["card", "upi", "ideal", "pix"] = "card"
    payment_method_token: dict[str, Any] | None = Field(default=None, max_length=8)
    """What the provider's client library gave the shopper's browser (a Stripe PaymentMethod
    id, Adyen's paymentMethod object, the return URL): handed to payments as is, which
    validates it. Never card data."""
    promo_code: str | None = Field(default=None, min_length=1, max_length=64)
    shipping_option: str | None = Field(default=None, min_length=1, max_length=64)
    customer: Customer | None = None


class PaymentDetailsRequest(Strict):
    """The shopper is back from 3-D Secure or a redirect: what the browser brought back (Adyen:
    e.g. ``redirectResult`` from the return URL; Stripe: nothing, the payment is read back)."""

    market: str = Field(pattern=r"^[A-Z]{2}$", description="the checkout's market (routing)")
    details: dict[str, Annotated[str, Field(min_length=1, max_length=20000)]] = Field(
        default_factory=dict, max_length=8
    )


class PaymentView(Strict):
    """What the shopper's client needs next: the payment's state and the provider's next
    action, if any (a further challenge)."""

    checkout_id: str
    state: str
    action: dict[str, Any] | None = None


class OrderView(Strict):
    checkout_id: str
    market: str
    currency: str
    total: int
    snapshot_id: str
    lines: list[dict[str, Any]]
    state: Literal["placed", "fulfilment_requested", "capture_failed", "compensated"]
    customer_id: str | None = None
    """None for a guest checkout, or after the customer's erasure."""
    created_at: datetime
    updated_at: datetime


class CompensationReport(Strict):
    checkout_id: str
    payment: str
    """What the void found: voided, nothing-to-void, or the payment's state."""
    stock: str
    order_state: str | None
