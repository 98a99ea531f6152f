"""The payment state machine: a transition table, and nothing is legal that is not in it."""

from __future__ import annotations

import enum
from typing import Final


class PaymentState(enum.StrEnum):
    PENDING = "pending"
    """Authorization started (or its outcome is not known yet)."""
    REQUIRES_ACTION = "requires_action"
    """Local method: waiting for the customer (redirect / QR / collect) and the webhook."""
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    FAILED = "failed"
    """No provider could take the payment (all unavailable); nothing was charged."""
    CAPTURE_PENDING = "capture_pending"
    """The provider accepted the capture for processing (Adyen ``received``): its webhook
    (CAPTURE / CAPTURE_FAILED) decides."""
    CAPTURE_FAILED = "capture_failed"
    """The provider's capture failed (CAPTURE_FAILED): nothing was taken; void or retry."""
    VOID_PENDING = "void_pending"
    """The provider accepted the cancel for processing: CANCELLATION decides."""
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"


S = PaymentState

TRANSITIONS: Final[frozenset[tuple[PaymentState, PaymentState]]] = frozenset(
    {
        (S.PENDING, S.REQUIRES_ACTION),
        (S.PENDING, S.AUTHORIZED),
        (S.PENDING, S.DECLINED),
        (S.PENDING, S.FAILED),
        (S.FAILED, S.PENDING),  # the client retries later; attempts already made are reused
        (S.REQUIRES_ACTION, S.AUTHORIZED),
        (S.REQUIRES_ACTION, S.DECLINED),
        (S.REQUIRES_ACTION, S.VOIDED),
        (S.AUTHORIZED, S.CAPTURED),
        (S.AUTHORIZED, S.VOIDED),
        (S.AUTHORIZED, S.CAPTURE_PENDING),
        (S.CAPTURE_PENDING, S.CAPTURED),
        (S.CAPTURE_PENDING, S.CAPTURE_FAILED),
        (S.CAPTURE_FAILED, S.CAPTURE_PENDING),  # captured again (new round, new key)
        (S.CAPTURE_FAILED, S.CAPTURED),
        (S.CAPTURE_FAILED, S.VOID_PENDING),
        (S.CAPTURE_FAILED, S.VOIDED),
        (S.AUTHORIZED, S.VOID_PENDING),
        (S.REQUIRES_ACTION, S.VOID_PENDING),
        (S.VOID_PENDING, S.VOIDED),
        (S.VOID_PENDING, S.AUTHORIZED),  # CANCELLATION with success=false
        (S.CAPTURED, S.PARTIALLY_REFUNDED),
        (S.CAPTURED, S.REFUNDED),
        (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
        (S.PARTIALLY_REFUNDED, S.REFUNDED),
        # a refund that failed after it succeeded (Stripe refund.updated -> failed, Adyen
        # REFUND_FAILED after REFUND): the money is back with the shopper's payment
        (S.REFUNDED, S.PARTIALLY_REFUNDED),
        (S.REFUNDED, S.CAPTURED),
        (S.PARTIALLY_REFUNDED, S.CAPTURED),
        # the shopper's details answered with a further action (Adyen IdentifyShopper ->
        # ChallengeShopper): still waiting, with the new action
        (S.REQUIRES_ACTION, S.REQUIRES_ACTION),
    }
)

TERMINAL: Final = frozenset({S.DECLINED, S.VOIDED})
"""No way out. REFUNDED is not: a provider may fail a refund after it succeeded."""


class IllegalTransition(Exception):
    """A transition that is not in :data:`TRANSITIONS`."""

    def __init__(self, current: PaymentState, target: PaymentState) -> None:
        super().__init__(f"payment is {current.value}: cannot move to {target.value}")
        self.current = current
        self.target = target


def can(current: PaymentState, target: PaymentState) -> bool:
    return (current, target) in TRANSITIONS


def check(current: PaymentState, target: PaymentState) -> PaymentState:
    """Return ``target`` if the move is legal, else raise :class:`IllegalTransition`."""
    if (current, target) not in TRANSITIONS:
        raise IllegalTransition(current, target)
    return target
