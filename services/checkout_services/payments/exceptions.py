"""Typed errors of the payments service; each becomes an RFC 9457 problem+json response."""

from __future__ import annotations

from typing import Any, ClassVar

TYPE_BASE = "https://checkout-operator.dev/problems/payments/"


class PaymentsError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    retry_after: ClassVar[int | None] = None

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class IdempotencyKeyReused(PaymentsError):
    status, slug, title = (
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused with another request",
    )

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was first used with a different request body or path",
            field="Idempotency-Key",
        )


class IdempotencyKeyInFlight(PaymentsError):
    status, slug, title = (
        409,
        "idempotency-key-in-flight",
        "Request with this Idempotency-Key in progress",
    )
    retry_after = 1

    def __init__(self) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still in progress; retry later",
            field="Idempotency-Key",
        )


class PaymentNotFound(PaymentsError):
    status, slug, title = 404, "payment-not-found", "Payment not found"


class CheckoutMismatch(PaymentsError):
    status, slug, title = 409, "checkout-mismatch", "Checkout already has a different payment"


class IllegalTransitionError(PaymentsError):
    status, slug, title = 409, "illegal-transition", "Operation not allowed in the payment's state"


class OperationInProgress(PaymentsError):
    status, slug, title = (
        409,
        "operation-in-progress",
        "Another operation on this checkout is running",
    )
    retry_after = 1


class NoRoute(PaymentsError):
    status, slug, title = 422, "no-route", "No payment provider serves this payment"


class InvalidAmount(PaymentsError):
    status, slug, title = 422, "invalid-amount", "Invalid amount"


class PaymentDeclined(PaymentsError):
    status, slug, title = 402, "declined", "Payment declined"


class OutcomeUnknown(PaymentsError):
    """The provider's answer is not known yet (and a lookup could not tell): retry later."""

    status, slug, title = 503, "outcome-unknown", "Payment outcome not known yet"
    retry_after = 2


class ProvidersUnavailable(PaymentsError):
    status, slug, title = 503, "providers-unavailable", "No payment provider is available"
    retry_after = 5


class ProviderRejected(PaymentsError):
    status, slug, title = 502, "provider-rejected", "The payment provider refused the request"


class WebhookSignatureInvalid(PaymentsError):
    status, slug, title = 401, "webhook-signature", "Webhook signature invalid"


class UnknownProvider(PaymentsError):
    status, slug, title = 404, "unknown-provider", "Unknown payment provider"


class PaymentNotReady(PaymentsError):
    status, slug, title = 503, "payment-not-ready", "Payment not ready for this event"
    retry_after = 1


class PaymentIncomplete(PaymentsError):
    status, slug, title = 409, "payment-incomplete", "Payment has no provider reference"


class NotReady(PaymentsError):
    status, slug, title = 503, "not-ready", "Not ready"
    retry_after = 1


class NotLeaseHolder(PaymentsError):
    status, slug, title = 409, "not-lease-holder", "This region holds no write lease for the market"
