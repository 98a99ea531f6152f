"""What can still be refunded: captured - refunded - the refunds still open at the provider.

A refund is *open* from the moment its attempt row exists until the provider's verdict:
``in_flight`` (being sent), ``pending`` (accepted for processing: Adyen's ``received`` awaiting
REFUND, a Stripe Refund ``pending``/``requires_action``) and ``unknown`` (no answer; the retry
with the same refund id replays the same key). Open refunds count against the refundable
amount, so refund requests can never together refund more than was captured. ``failed``
(REFUND_FAILED or REFUND success=false, a Stripe Refund ``failed``/``canceled``) and
``rejected`` give the amount back; ``failed`` after ``succeeded`` (Stripe documents a refund
that fails after succeeding; Adyen a REFUND_FAILED after REFUND) takes the refunded amount back
down too.

Every change runs in one transaction holding the payment's row lock (``SELECT ... FOR
UPDATE``): the reservation of a refund, and its settling by the synchronous answer or by the
webhook, whichever comes first (the second finds it settled and changes nothing).
"""

from __future__ import annotations

from typing import Final, Literal

import asyncpg  # type: ignore[import-untyped]

from checkout_services.payments import db, exceptions, keys
from checkout_services.payments import state_machine as sm
from checkout_services.payments.adapters import base
from checkout_services.payments.state_machine import PaymentState as S

OPEN: Final = ("in_flight", "pending", "unknown")
FINAL_FAILURES: Final = ("failed", "rejected")
Verdict = Literal["succeeded", "pending", "unknown", "failed", "rejected"]
REFUNDABLE_STATES: Final = (S.CAPTURED, S.PARTIALLY_REFUNDED)


async def _payment(conn: asyncpg.Connection, checkout_id: str) -> db.Payment:
    row = await conn.fetchrow(
        f"SELECT {db.PAYMENT_COLS} FROM payments WHERE checkout_id = $1 FOR UPDATE", checkout_id
    )
    if row is None:
        raise exceptions.PaymentNotFound(f"no payment for checkout {checkout_id!r}")
    return db.Payment.of(row)


async def open_amount(conn: asyncpg.Connection, checkout_id: str, but: str = "") -> int:
    """The refunds of this payment still open at the provider (``but``: one refund id left out)."""
    total = await conn.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM psp_attempts WHERE checkout_id = $1"
        " AND operation = 'refund' AND status = ANY($2::text[]) AND attempt_scope <> $3",
        checkout_id,
        list(OPEN),
        but,
    )
    return int(total)


async def reserve(
    pool: asyncpg.Pool,
    *,
    checkout_id: str,
    refund_id: str,
    amount: int,
    target: base.Target,
    key: str,
) -> db.Attempt | None:
    """Count this refund against the payment before it is sent; None when this refund id was
    accepted already (succeeded or pending: nothing to send). Raises 422 when it does not fit."""
    async with pool.acquire() as conn, conn.transaction():
        payment = await _payment(conn, checkout_id)
        row = await conn.fetchrow(
            f"SELECT {db.ATTEMPT_COLS} FROM psp_attempts WHERE checkout_id = $1"
            " AND operation = 'refund' AND attempt_scope = $2",
            checkout_id,
            refund_id,
        )
        earlier = db.Attempt.of(row) if row is not None else None
        if earlier is not None:
            if earlier.amount != amount:
                raise exceptions.CheckoutMismatch(
                    f"refund {refund_id!r} was for {earlier.amount}", field="amount"
                )
            if earlier.status in ("succeeded", "pending"):
                return None
            if earlier.status in FINAL_FAILURES:
                raise exceptions.RefundFailed(
                    f"refund {refund_id!r} failed at the provider; a new refund needs a new"
                    " refund_id"
                )
        if payment.state not in REFUNDABLE_STATES:
            raise exceptions.IllegalTransitionError(
                f"cannot refund a {payment.state.value} payment", state=payment.state.value
            )
        pending = await open_amount(conn, checkout_id, but=refund_id)
        refundable = payment.captured_amount - payment.refunded_amount - pending
        if amount > refundable:
            raise exceptions.InvalidAmount(
                f"amount {amount} exceeds the refundable {refundable} {payment.currency}"
                f" ({pending} in refunds still pending at the provider)",
                field="amount",
            )
        row = await conn.fetchrow(
            f"""
            INSERT INTO psp_attempts (checkout_id, operation, attempt_scope, provider,
                provider_type, endpoint, account, psp_idempotency_key, amount, status)
            VALUES ($1, 'refund', $2, $3, $4, $5, $6, $7, $8, 'in_flight')
            ON CONFLICT (checkout_id, operation, attempt_scope)
            DO UPDATE SET status = 'in_flight', updated_at = now()
            RETURNING {db.ATTEMPT_COLS}
            """,
            checkout_id,
            refund_id,
            target.provider,
            target.type,
            target.endpoint,
            target.account,
            key,
            amount,
        )
        return db.Attempt.of(row)


def _refund_state(captured: int, refunded: int) -> S:
    if refunded == 0:
        return S.CAPTURED
    return S.REFUNDED if refunded >= captured else S.PARTIALLY_REFUNDED


async def settle(
    pool: asyncpg.Pool,
    attempt_id: int,
    verdict: Verdict,
    *,
    modification: str | None = None,
    detail: str | None = None,
) -> bool:
    """Apply the provider's word on one refund; False when it changes nothing (already
    settled, or a verdict that may not follow the current one)."""
    async with pool.acquire() as conn, conn.transaction():
        checkout_id = await conn.fetchval(
            "SELECT checkout_id FROM psp_attempts WHERE id = $1", attempt_id
        )
        if checkout_id is None:
            return False
        payment = await _payment(conn, checkout_id)  # the row lock orders every settling
        row = await conn.fetchrow(
            f"SELECT {db.ATTEMPT_COLS} FROM psp_attempts WHERE id = $1", attempt_id
        )
        attempt = db.Attempt.of(row)
        was, amount = attempt.status, attempt.amount or 0
        refunded = payment.refunded_amount
        if verdict == "succeeded" and was in OPEN:
            refunded += amount
        elif verdict == "failed" and was == "succeeded":
            refunded -= amount  # the refund was reversed after it succeeded
        elif verdict in ("failed", "rejected") and was in OPEN:
            pass  # the reserved amount is free again
        elif verdict in ("pending", "unknown") and was in OPEN and was != "pending":
            pass
        else:
            return False
        if refunded > payment.captured_amount:
            return False  # more than was captured: never recorded (the CHECK would refuse it)
        if refunded != payment.refunded_amount:
            goal = _refund_state(payment.captured_amount, refunded)
            if goal != payment.state and not sm.can(payment.state, goal):
                return False
            await conn.execute(
                "UPDATE payments SET refunded_amount = $2, state = $3, updated_at = now()"
                " WHERE checkout_id = $1",
                checkout_id,
                refunded,
                goal.value,
            )
        await conn.execute(
            "UPDATE psp_attempts SET status = $2, psp_reference = COALESCE($3, psp_reference),"
            " detail = COALESCE($4, detail), updated_at = now() WHERE id = $1",
            attempt_id,
            verdict,
            modification,
            detail,
        )
        return True


async def attempt_for(
    pool: asyncpg.Pool, checkout_id: str, modification: str | None, amount: int | None
) -> int | None:
    """The refund attempt a provider's refund event is about: by the refund's own id, else
    (the webhook came before our call recorded the id) the oldest open refund of that amount
    whose id is not known yet."""
    if modification:
        found = await pool.fetchval(
            "SELECT id FROM psp_attempts WHERE checkout_id = $1 AND operation = 'refund'"
            " AND psp_reference = $2",
            checkout_id,
            modification,
        )
        if found is not None:
            return int(found)
    found = await pool.fetchval(
        "SELECT id FROM psp_attempts WHERE checkout_id = $1 AND operation = 'refund'"
        " AND status = ANY($2::text[]) AND psp_reference IS NULL AND amount = $3"
        " ORDER BY id LIMIT 1",
        checkout_id,
        list(OPEN),
        amount,
    )
    return int(found) if found is not None else None


async def record_foreign(
    pool: asyncpg.Pool, payment: db.Payment, modification: str, amount: int
) -> int | None:
    """A refund made at the provider, not through us (its dashboard): recorded as an open
    refund attempt of its own, so that it counts and its events are matched; None when it does
    not fit in what is left to refund (then it is not ours to record)."""
    scope = f"psp:{modification}"[:64]
    async with pool.acquire() as conn, conn.transaction():
        current = await _payment(conn, payment.checkout_id)
        left = current.captured_amount - current.refunded_amount
        if amount <= 0 or amount > left - await open_amount(conn, current.checkout_id, scope):
            return None
        row = await conn.fetchrow(
            """
            INSERT INTO psp_attempts (checkout_id, operation, attempt_scope, provider,
                provider_type, endpoint, account, psp_idempotency_key, amount, status,
                psp_reference)
            VALUES ($1, 'refund', $2, $3, $4, $5, $6, $7, $8, 'pending', $9)
            ON CONFLICT (checkout_id, operation, attempt_scope) DO UPDATE SET updated_at = now()
            RETURNING id
            """,
            current.checkout_id,
            scope,
            current.provider,
            current.provider_type,
            current.endpoint,
            current.account,
            keys.psp_idempotency_key(current.checkout_id, "refund", scope),
            amount,
            modification,
        )
        return int(row["id"])


async def unanswered(
    pool: asyncpg.Pool, older_than_s: float, limit: int
) -> list[tuple[str, str, int]]:
    """(checkout, refund id, amount) of refunds sent without an answer (``in_flight`` after a
    crash, ``unknown`` after a timeout) that nobody retried: the sweeper sends them again with
    the same key, so the provider's stored answer settles them."""
    rows = await pool.fetch(
        "SELECT a.checkout_id, a.attempt_scope, a.amount FROM psp_attempts a"
        " JOIN payments p USING (checkout_id)"
        " WHERE a.operation = 'refund' AND a.status IN ('in_flight', 'unknown')"
        " AND a.attempt_scope NOT LIKE 'psp:%' AND a.updated_at < now() - make_interval(secs => $1)"
        " AND (p.lease_until IS NULL OR p.lease_until < now()) ORDER BY a.id LIMIT $2",
        older_than_s,
        limit,
    )
    return [(r["checkout_id"], r["attempt_scope"], int(r["amount"])) for r in rows]


async def awaiting_verdict(
    pool: asyncpg.Pool, older_than_s: float, limit: int
) -> list[tuple[int, str, str]]:
    """(attempt id, checkout, the refund's id at the provider) of refunds the provider accepted
    as ``pending`` whose verdict has not arrived for ``older_than_s``: read back where the
    provider has a GET for a refund (a lost ``refund.updated`` must not hold the amount
    forever)."""
    rows = await pool.fetch(
        "SELECT id, checkout_id, psp_reference FROM psp_attempts"
        " WHERE operation = 'refund' AND status = 'pending' AND psp_reference IS NOT NULL"
        " AND updated_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2",
        older_than_s,
        limit,
    )
    return [(int(r["id"]), r["checkout_id"], r["psp_reference"]) for r in rows]
