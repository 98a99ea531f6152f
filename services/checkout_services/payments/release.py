"""A capture the saga gave up on: its late outcome is undone here, once.

Adyen answers a capture with ``received``; CAPTURE or CAPTURE_FAILED comes later by webhook.
The checkout saga waits for that outcome (payments signals it, :mod:`saga_signal`) under a
durable timer; at the deadline it compensates and asks payments to void. A payment still
``capture_pending`` cannot be voided (the provider may be capturing it), so the void is
recorded as a *release request* instead (:func:`void.request_release`). When the outcome arrives:

- CAPTURE (the money was taken after the order was given up): refunded in full under the
  refund id :data:`REFUND_ID`, one PSP key for it whoever sends it, so a redelivered webhook,
  the sweeper and a second region never refund twice (:mod:`refund_ledger` holds the amount
  from the moment it is reserved);
- CAPTURE_FAILED (nothing was taken): the authorization is voided.

:func:`settle` runs right after the webhook's move; what it could not finish (the provider did
not answer, another operation held the lease) the sweeper runs again (:func:`due`).
``release_settled_at`` marks it done, so the sweeper stops asking.

Ordering: the request and the webhook's move are both updates of the payment's row guarded by
``state = 'capture_pending'``, so one of them waits for the other: either the request is
recorded before the move (and :func:`settle`, reading after the move, sees it) or the move came
first (the request finds no ``capture_pending`` payment, and the void answers the new state: a
``captured`` payment is the saga's to complete, not to undo).
"""

from __future__ import annotations

import logging
from typing import Final

from checkout_services.payments import db, exceptions, schemas
from checkout_services.payments.operations import refund, void
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S

log = logging.getLogger("checkout_services.payments.release")

REFUND_ID: Final = "late-capture"
"""The refund id (and so the PSP idempotency key scope) of a late capture's refund."""


async def requested(svc: PaymentsService, checkout_id: str) -> bool:
    """A release is asked for and not settled yet."""
    return bool(
        await svc.repo.pool.fetchval(
            "SELECT 1 FROM payments WHERE checkout_id = $1"
            " AND release_requested_at IS NOT NULL AND release_settled_at IS NULL",
            checkout_id,
        )
    )


async def settle(svc: PaymentsService, payment: db.Payment) -> str | None:
    """Undo the outcome of a capture the saga gave up on (no-op without a request). Returns
    what was done (``refunded`` / ``voided``), None when nothing was due or it must wait."""
    if payment.state not in (S.CAPTURED, S.CAPTURE_FAILED):
        return None
    if not await requested(svc, payment.checkout_id):
        return None
    cid = payment.checkout_id
    if payment.state == S.CAPTURED:
        req = schemas.RefundRequest(refund_id=REFUND_ID, amount=payment.captured_amount)
        await refund.refund(svc, cid, req)
        done = "refunded"
    else:
        await void.void(svc, cid)
        done = "voided"
    await svc.repo.pool.execute(
        "UPDATE payments SET release_settled_at = now() WHERE checkout_id = $1", cid
    )
    svc.metrics.reconciled.labels(f"release_{done}").inc()
    log.info("late capture outcome of %s released: %s", cid, done)
    return done


async def settle_quietly(svc: PaymentsService, payment: db.Payment) -> None:
    """:func:`settle` from the webhook: its failure is the sweeper's to retry, never the
    provider's (the outcome itself is recorded; a 5xx would only make it deliver again)."""
    try:
        await settle(svc, payment)
    except exceptions.PaymentsError as exc:
        log.warning("release of %s left to the sweeper: %s", payment.checkout_id, exc.detail)


async def due(svc: PaymentsService, limit: int) -> list[db.Payment]:
    """Payments whose release was asked for, whose outcome is known, not yet settled."""
    rows = await svc.repo.pool.fetch(
        f"SELECT {db.PAYMENT_COLS} FROM payments WHERE release_requested_at IS NOT NULL"
        " AND release_settled_at IS NULL AND state IN ('captured', 'capture_failed')"
        " ORDER BY release_requested_at LIMIT $1",
        limit,
    )
    return [db.Payment.of(r) for r in rows]
