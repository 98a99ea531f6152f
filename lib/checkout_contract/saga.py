"""What the payments service and the orders saga agree on to meet in Temporal: the saga's
workflow id and the signal that tells it a payment waiting for the shopper moved.

Payments sends the signal when a payment leaves ``requires_action`` (the shopper completed or
failed 3-D Secure, a redirect, a QR code or a UPI collect: by the provider's webhook, by
``/details``, or by its sweeper), so the saga waits on an event with a durable timer as its
bound instead of polling. The payload is :func:`payment_event`.

The same signal tells the saga the provider's decision on a capture it accepted for processing
(Adyen's ``received``, then CAPTURE / CAPTURE_FAILED by webhook): a move out of
``capture_pending`` to one of :data:`CAPTURE_OUTCOMES`.
"""

from __future__ import annotations

from typing import Any, Final

WORKFLOW_PREFIX: Final = "checkout-"
PAYMENT_CHANGED: Final = "payment_changed"
"""Signal name; payload ``{"state": <payment state>, "action": <provider action or None>}``."""
CAPTURE_OUTCOMES: Final = frozenset({"captured", "capture_failed"})
"""The states a payment leaves ``capture_pending`` for (the capture's outcome)."""


def workflow_id(checkout_id: str) -> str:
    """The checkout saga's Temporal workflow id."""
    return WORKFLOW_PREFIX + checkout_id


def payment_event(state: str, action: dict[str, Any] | None) -> dict[str, Any]:
    return {"state": state, "action": action}
