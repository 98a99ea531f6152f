"""The sweeper: resolves payments a crash left pending, voids abandoned authorizations and any
stray authorization a failover left at another provider."""

from __future__ import annotations

import asyncio
import logging

from checkout_services.payments import db, exceptions, keys, refund_ledger, release, schemas
from checkout_services.payments.adapters import base
from checkout_services.payments.operations import modify, recovery, refund, void
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S

log = logging.getLogger("checkout_services.payments.reconcile")


async def reconcile(
    svc: PaymentsService, *, abandon_after_s: float, pending_after_s: float, limit: int = 5000
) -> schemas.ReconcileReport:
    report = {
        "resolved_pending": 0,
        "voided_abandoned": 0,
        "voided_stray": 0,
        "synced": 0,
        "refunds_resent": 0,
        "refunds_read_back": 0,
        "released_late": 0,
        "errors": 0,
    }
    # 1. Pending payments nobody is working on (the process died, the client went away).
    for payment in await svc.repo.stale((S.PENDING,), pending_after_s, limit):
        cid = payment.checkout_id
        try:
            async with svc.lease(cid):
                current = await svc.get(cid)
                if current.state != S.PENDING:
                    continue
                attempts = await svc.repo.attempts(cid, "authorize")
                settled = await recovery.resolve_open_attempts(svc, current, attempts)
                if settled.state == S.PENDING:
                    declined = [a for a in attempts if a.status == "declined"]
                    if declined:
                        await svc.move(
                            settled, S.DECLINED, decline_class=declined[-1].failure_class
                        )
                    else:
                        await svc.move(settled, S.FAILED)
                report["resolved_pending"] += 1
        except exceptions.OperationInProgress:
            continue
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: pending %s: %s", cid, exc.detail)
        except Exception as exc:  # one bad payment must not stop the pass
            report["errors"] += 1
            log.error("reconcile: pending %s: %s", cid, type(exc).__name__)
    # 2. Local-method payments whose webhook never reached this region: ask the provider.
    for payment in await svc.repo.stale((S.REQUIRES_ACTION,), pending_after_s, limit):
        try:
            if (
                payment.psp_reference is None
                or not svc.adapter(svc.payment_target(payment)).can_retrieve
            ):
                continue  # no GET at this provider: its webhook, or the timeout void, ends it
            found = await modify.retrieve(svc, svc.payment_target(payment), payment.psp_reference)
            goal = {"authorized": S.AUTHORIZED, "declined": S.DECLINED}.get(
                found.status if found else ""
            )
            if goal is not None:
                await svc.move(payment, goal)
                report["synced"] += 1
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: requires_action %s: %s", payment.checkout_id, exc.detail)
    # 3. Authorizations nobody captured in time (abandoned checkouts).
    stuck = (S.AUTHORIZED, S.REQUIRES_ACTION, S.CAPTURE_FAILED)
    for payment in await svc.repo.stale(stuck, abandon_after_s, limit):
        try:
            await void.void(svc, payment.checkout_id)
            report["voided_abandoned"] += 1
            svc.metrics.reconciled.labels("void_abandoned").inc()
        except exceptions.IllegalTransitionError:
            report["synced"] += 1  # captured (or voided) elsewhere, e.g. by another region
        except exceptions.OperationInProgress:
            continue
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: void %s: %s", payment.checkout_id, exc.detail)
        except Exception as exc:
            report["errors"] += 1
            log.error("reconcile: void %s: %s", payment.checkout_id, type(exc).__name__)
    # 4. Authorizations at providers other than the one the payment settled on.
    for attempt in await svc.repo.stray_attempts(limit):
        try:
            report["voided_stray"] += await void_strays(svc, attempt)
            await svc.repo.finish_attempt(attempt.id, "reconciled", detail=f"was {attempt.status}")
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: stray %s: %s", attempt.checkout_id, exc.detail)
        except Exception as exc:
            report["errors"] += 1
            log.error("reconcile: stray %s: %s", attempt.checkout_id, type(exc).__name__)
    # 5. Refunds sent without an answer that nobody retried: they hold their amount until the
    #    same request, same key, gets the provider's stored answer.
    for cid, refund_id, amount in await refund_ledger.unanswered(
        svc.repo.pool, pending_after_s, limit
    ):
        try:
            await refund.refund(svc, cid, schemas.RefundRequest(refund_id=refund_id, amount=amount))
            report["refunds_resent"] += 1
        except exceptions.OperationInProgress:
            continue
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: refund %s/%s: %s", cid, refund_id, exc.detail)
    # 6. Refunds the provider left pending whose webhook never came: read back where it can.
    for attempt_id, cid, reference in await refund_ledger.awaiting_verdict(
        svc.repo.pool, pending_after_s, limit
    ):
        try:
            report["refunds_read_back"] += await read_back_refund(svc, attempt_id, cid, reference)
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: pending refund %s/%s: %s", cid, reference, exc.detail)
        except base.PSPError as exc:
            report["errors"] += 1
            log.warning("reconcile: pending refund %s/%s: %s", cid, reference, exc)
    # 7. Captures the saga gave up on whose outcome came and could not be undone at once.
    for payment in await release.due(svc, limit):
        try:
            report["released_late"] += int(await release.settle(svc, payment) is not None)
        except exceptions.OperationInProgress:
            continue
        except exceptions.PaymentsError as exc:
            report["errors"] += 1
            log.warning("reconcile: release %s: %s", payment.checkout_id, exc.detail)
    return schemas.ReconcileReport(**report)


async def read_back_refund(svc: PaymentsService, attempt_id: int, cid: str, reference: str) -> int:
    """1 when the provider's current word on the refund settled it, else 0 (still pending, or
    a provider without a read for refunds)."""
    payment = await svc.get(cid)
    if payment.psp_reference is None:
        return 0
    adapter = svc.adapter(svc.payment_target(payment))
    result = await adapter.retrieve_refund(
        refund_reference=reference, psp_reference=payment.psp_reference
    )
    if result is None or result.outcome == "pending":
        return 0
    verdict: refund_ledger.Verdict = "succeeded" if result.outcome == "approved" else "failed"
    detail = None if verdict == "succeeded" else result.reason
    settled = await refund_ledger.settle(
        svc.repo.pool, attempt_id, verdict, modification=reference, detail=detail
    )
    if settled:
        svc.metrics.reconciled.labels("refund_read_back").inc()
    return int(settled)


async def void_strays(svc: PaymentsService, attempt: db.Attempt) -> int:
    payment = await svc.get(attempt.checkout_id)
    target = svc.target_of(
        attempt.provider, attempt.provider_type, attempt.endpoint, attempt.account
    )
    found = await stray_payments(svc, target, payment, attempt)
    voided = 0
    for p in found:
        if p.status != "authorized" or p.psp_reference == payment.psp_reference:
            continue
        key = keys.psp_idempotency_key(attempt.checkout_id, "void", f"stray:{p.psp_reference}")
        try:
            result = await svc.adapter(target).void(
                psp_reference=p.psp_reference, checkout_id=attempt.checkout_id, key=key
            )
        except base.PSPError as exc:
            raise exceptions.OutcomeUnknown(f"stray void at {attempt.provider!r}: {exc}") from None
        if result.outcome == "approved":
            voided += 1
            svc.metrics.reconciled.labels("void_stray").inc()
    return voided


async def stray_payments(
    svc: PaymentsService, target: base.Target, payment: db.Payment, attempt: db.Attempt
) -> list[base.FoundPayment]:
    """What the attempt left at the provider: for a provider without a lookup API (Stripe's
    search is eventually consistent, Adyen has none) the attempt's own request is replayed with
    its key, and the provider's saved answer names the payment."""
    adapter = svc.adapter(target)
    if not adapter.recovers_by_replay:
        found = await svc.lookup(target, attempt.checkout_id)
        if found is None:
            raise exceptions.OutcomeUnknown(f"provider {attempt.provider!r} could not be asked")
        return found
    reference = attempt.psp_reference
    if reference is None:
        result = await recovery.replay(
            svc, attempt, adapter, payment, attempt.psp_idempotency_key, "timeout"
        )
        if result is None or result.psp_reference is None or result.status != "authorized":
            return []
        reference = result.psp_reference
    return [base.FoundPayment(reference, "authorized", attempt.amount or 0, payment.currency)]


async def sweeper(svc: PaymentsService, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await reconcile(
                svc,
                abandon_after_s=svc.settings.abandon_after_seconds,
                pending_after_s=svc.settings.pending_resolve_after_seconds,
            )
        except Exception:
            log.exception("reconcile pass failed")
