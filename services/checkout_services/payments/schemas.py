"""Request and response bodies (JSON, snake_case). Money: integer minor units + ISO 4217."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from checkout_services.common import ids

CheckoutId = Annotated[str, Field(min_length=1, max_length=128, pattern=ids.ID)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, upper case")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Amount = Annotated[int, Field(gt=0, le=10**12, description="minor units (cents)")]
Method = Literal["card", "upi", "ideal", "pix"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdyenPaymentMethod(Strict):
    """Adyen's ``paymentMethod`` as its Drop-in/Components hand it over: encrypted card fields
    (only Adyen can decrypt them), a stored payment method id, or an APM's own fields. Plain
    card numbers are refused (no such field)."""

    type: Annotated[str, Field(pattern=r"^[a-z_]{2,40}$")]
    encryptedCardNumber: str | None = Field(default=None, max_length=8192)
    encryptedExpiryMonth: str | None = Field(default=None, max_length=8192)
    encryptedExpiryYear: str | None = Field(default=None, max_length=8192)
    encryptedSecurityCode: str | None = Field(default=None, max_length=8192)
    holderName: str | None = Field(default=None, max_length=200)
    storedPaymentMethodId: str | None = Field(default=None, max_length=64)
    brand: str | None = Field(default=None, max_length=40)
    issuer: str | None = Field(default=None, max_length=40)
    """iDEAL: the shopper's bank."""
    virtualPaymentAddress: str | None = Field(default=None, max_length=100)
    """UPI collect: the shopper's VPA."""


class PaymentMethodToken(Strict):
    """From the provider's own client library in the shopper's browser; never card data."""

    stripe: str | None = Field(default=None, pattern=r"^pm_[A-Za-z0-9_]{1,200}$")
    """A Stripe PaymentMethod id."""
    adyen: AdyenPaymentMethod | None = None
    return_url: str | None = Field(default=None, max_length=1024, pattern=r"^https?://\S+$")
    """Where a redirect or a 3-D Secure challenge sends the shopper back."""


class AuthorizeRequest(Strict):
    checkout_id: CheckoutId
    amount: Amount
    currency: Currency
    country: Country
    payment_method: Method = "card"
    payment_method_token: PaymentMethodToken | None = None


class CaptureRequest(Strict):
    amount: Amount | None = None
    """Defaults to the authorized amount."""


class VoidRequest(Strict):
    reason: str | None = Field(default=None, max_length=200)


class RefundRequest(Strict):
    refund_id: Annotated[str, Field(min_length=1, max_length=64, pattern=ids.SKU)]
    amount: Amount


DetailName = Literal[
    "MD",
    "PaReq",
    "PaRes",
    "payload",
    "redirectResult",
    "returnUrlQueryString",
    "threeDSResult",
    "threeds2.challengeResult",
    "threeds2.fingerprint",
]
"""Adyen's PaymentCompletionDetails fields that a redirect or 3-D Secure flow returns."""


class DetailsRequest(Strict):
    """What the shopper's browser brought back from the action (Adyen: the ``details`` for
    /payments/details, e.g. ``redirectResult`` from the return URL). Stripe needs none: the
    PaymentIntent is read back."""

    details: dict[DetailName, Annotated[str, Field(min_length=1, max_length=20000)]] = Field(
        default_factory=dict
    )


class PaymentView(BaseModel):
    checkout_id: str
    state: str
    amount: int
    currency: str
    country: str
    payment_method: str
    provider: str | None
    psp_reference: str | None
    captured_amount: int
    refunded_amount: int
    decline_class: str | None
    decline_reason: str | None
    action: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class ReconcileReport(BaseModel):
    resolved_pending: int
    voided_abandoned: int
    voided_stray: int
    synced: int
    refunds_resent: int = 0
    """Refunds left without an answer, sent again with their key."""
    refunds_read_back: int = 0
    """Refunds pending at the provider settled by reading them back (Stripe's Refund GET)."""
    released_late: int = 0
    """Captures the checkout gave up on, undone once their outcome came (refunded / voided)."""
    errors: int


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None
