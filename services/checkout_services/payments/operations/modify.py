"""The loop capture and void share: same provider, account and endpoint as the authorization.

Each round has its own key, ``(checkout, operation, "r<n>")``: a round ends only when the
provider is known not to have acted (the payment, retrieved, is still authorized), so a new
round never repeats something done. Another region counting rounds from 0 replays the same keys
in the same order and reaches the provider's stored answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from checkout_contract import payments as config
from checkout_services.payments import db, exceptions, keys
from checkout_services.payments.adapters import base
from checkout_services.payments.service import PaymentsService, backoff
from checkout_services.payments.state_machine import PaymentState as S

Call = Callable[[base.PSPAdapter, str, str], Awaitable[base.PSPResult]]
"""(adapter, psp_reference, key) -> result."""


async def retrieve(
    svc: PaymentsService, target: base.Target, psp_reference: str
) -> base.FoundPayment | None:
    adapter = svc.adapter(target)
    for attempt in range(svc.settings.lookup_attempts):
        try:
            return await adapter.retrieve(psp_reference=psp_reference)
        except base.PSPError as exc:
            svc.metrics.psp_errors.labels(target.provider, exc.failure_class).inc()
            await asyncio.sleep(backoff(attempt))
    raise exceptions.OutcomeUnknown(
        f"provider {target.provider!r} could not be asked about the payment; retry later"
    )


async def replay(
    svc: PaymentsService, adapter: base.PSPAdapter, call: Call, psp_reference: str, key: str
) -> base.PSPResult | None:
    """The same modification, same key, a few times: the provider's stored answer (Adyen keeps
    keys >= 31 days), or None while it cannot be had (704 in progress, no answer)."""
    for n in range(svc.settings.lookup_attempts):
        await asyncio.sleep(backoff(n))
        try:
            return await call(adapter, psp_reference, key)
        except base.PSPInProgress:
            return None
        except base.PSPError:
            continue
    return None


async def after_ambiguous(
    svc: PaymentsService,
    payment: db.Payment,
    attempt: db.Attempt,
    failure: config.FailureClass,
    operation: str,
    done: tuple[str, ...],
    goal: S,
    goal_fields: dict[str, Any],
) -> db.Payment | None:
    """A provider with a GET: its view of the payment says whether the modification happened
    (the payment, moved to ``goal``), did not (None: a new round may run), or cannot (raises)."""
    assert payment.psp_reference is not None
    found = await retrieve(svc, svc.payment_target(payment), payment.psp_reference)
    if found is None:
        raise exceptions.ProviderRejected(f"provider {attempt.provider!r} lost the payment")
    if found.status in done:
        await svc.repo.finish_attempt(attempt.id, "succeeded", psp_reference=payment.psp_reference)
        return await svc.move(payment, goal, **goal_fields)
    if found.status == "authorized" or (found.status == "pending" and goal == S.VOIDED):
        await svc.repo.finish_attempt(attempt.id, "not_charged", failure_class=failure)
        return None
    await svc.repo.finish_attempt(attempt.id, "rejected", failure_class=failure)
    synced = await sync(svc, payment, found)
    raise exceptions.IllegalTransitionError(
        f"cannot {operation}: the payment is {synced.state.value} at the provider",
        state=synced.state.value,
    )


async def sync(svc: PaymentsService, payment: db.Payment, found: base.FoundPayment) -> db.Payment:
    """Bring our state in line with what the provider holds (only legal moves)."""
    mapping = {"captured": S.CAPTURED, "voided": S.VOIDED, "refunded": S.CAPTURED}
    target_state = mapping.get(found.status)
    if target_state is None or target_state == payment.state:
        return payment
    fields: dict[str, Any] = {}
    if target_state == S.CAPTURED:
        fields["captured_amount"] = payment.amount
    svc.metrics.reconciled.labels(f"sync_{found.status}").inc()
    return await svc.move(payment, target_state, **fields)


async def modify(
    svc: PaymentsService,
    payment: db.Payment,
    *,
    operation: keys.Operation,
    done: tuple[str, ...],
    goal: S,
    call: Call,
    amount: int | None,
    goal_fields: dict[str, Any],
    waiting: S | None = None,
) -> db.Payment:
    """``waiting``: the state for a provider that accepted the request for processing and
    answers by webhook (Adyen's ``received``)."""
    if payment.psp_reference is None:
        raise exceptions.PaymentIncomplete(
            f"checkout {payment.checkout_id!r} has no provider reference yet"
        )
    target = svc.payment_target(payment)
    cid = payment.checkout_id
    earlier = await svc.repo.attempts(cid, operation)
    first_round = sum(1 for a in earlier if a.status == "not_charged")
    adapter = svc.adapter(target)
    for n in range(first_round, first_round + svc.settings.capture_attempts):
        scope = f"r{n}"
        key = keys.psp_idempotency_key(cid, operation, scope)
        attempt = await svc.repo.start_attempt(
            checkout_id=cid,
            operation=operation,
            scope=scope,
            provider=target.provider,
            provider_type=target.type,
            endpoint=target.endpoint,
            account=target.account,
            key=key,
            amount=amount,
        )
        try:
            result = await call(adapter, payment.psp_reference, key)
            svc.record_call(target, True)
        except base.PSPNotSent:
            svc.record_call(target, False)
            await svc.repo.finish_attempt(attempt.id, "not_charged", failure_class="network_error")
            await asyncio.sleep(backoff(n))
            continue
        except base.PSPInProgress:
            await svc.repo.finish_attempt(attempt.id, "unknown", failure_class="timeout")
            raise exceptions.OutcomeUnknown(
                f"{operation} is still running at the provider"
            ) from None
        except base.PSPAmbiguous as exc:
            svc.call_failed(target, exc.failure_class)
            if not adapter.can_retrieve:
                # No GET at this provider (Adyen): the same key again answers what it did.
                replayed = await replay(svc, adapter, call, payment.psp_reference, key)
                if replayed is None:
                    await svc.repo.finish_attempt(
                        attempt.id, "unknown", failure_class=exc.failure_class
                    )
                    raise exceptions.OutcomeUnknown(
                        f"{operation} outcome at {target.provider!r} unknown; the retry replays"
                        " the same key"
                    ) from None
                result = replayed
            else:
                settled = await after_ambiguous(
                    svc, payment, attempt, exc.failure_class, operation, done, goal, goal_fields
                )
                if settled is not None:
                    return settled
                await asyncio.sleep(backoff(n))
                continue
        if result.outcome == "approved":
            done_attempt = (attempt.id, "succeeded", None, payment.psp_reference, None)
            return await svc.move(payment, goal, attempt=done_attempt, **goal_fields)
        if result.outcome == "pending" and waiting is not None:
            accepted = (attempt.id, "pending", None, payment.psp_reference, result.reason)
            try:
                return await svc.move(payment, waiting, attempt=accepted)
            except exceptions.IllegalTransitionError:
                # The provider's webhook was faster than its answer and moved the payment on.
                await svc.repo.finish_attempt(
                    attempt.id, "pending", psp_reference=payment.psp_reference
                )
                return await svc.get(cid)
        await svc.repo.finish_attempt(attempt.id, "rejected", detail=result.reason)
        if not adapter.can_retrieve:
            raise exceptions.ProviderRejected(
                f"provider {target.provider!r} refused the {operation} ({result.reason})"
            )
        # The provider refused: its view of the payment decides.
        found = await retrieve(svc, target, payment.psp_reference)
        if found is not None and found.status in done:
            return await svc.move(payment, goal, **goal_fields)
        if found is not None:
            synced = await sync(svc, payment, found)
            raise exceptions.IllegalTransitionError(
                f"cannot {operation}: the payment is {synced.state.value} at the provider",
                state=synced.state.value,
            )
        raise exceptions.ProviderRejected(f"provider {target.provider!r} refused the {operation}")
    raise exceptions.OutcomeUnknown(f"{operation} did not go through after retries; retry later")
