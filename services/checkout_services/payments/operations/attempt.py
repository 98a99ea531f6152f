"""One provider's authorization attempt: one PSP key per (checkout, provider), the call, and what
its answer (or its lack of one) means for the next step."""

from __future__ import annotations

import asyncio

from checkout_contract import payments as config
from checkout_services.payments import db, exceptions, keys, routing
from checkout_services.payments.adapters import base
from checkout_services.payments.operations.recovery import confirm_not_charged, replay, token_of
from checkout_services.payments.operations.verdicts import settle, verdict_from_lookup
from checkout_services.payments.service import PaymentsService, backoff


async def attempt_provider(
    svc: PaymentsService,
    route: config.Route,
    payment: db.Payment,
    provider: config.Provider,
    target: base.Target,
) -> db.Payment | str:
    """One provider's attempt. Returns the settled payment, or what to do next:
    ``"next"`` (try the next provider), ``"declined_next"``, ``"stop"``."""
    cid = payment.checkout_id
    adapter = svc.adapter(target)
    token = token_of(payment)
    if not svc.takes(target, payment.payment_method, token):
        return "next"  # the client has no payment method for this provider: not sent
    key = keys.psp_idempotency_key(cid, "authorize", provider.name)
    attempt = await svc.repo.start_attempt(
        checkout_id=cid,
        operation="authorize",
        scope=provider.name,
        provider=target.provider,
        provider_type=target.type,
        endpoint=target.endpoint,
        account=target.account,
        key=key,
        amount=payment.amount,
    )
    tries = 0
    while True:
        tries += 1
        result: base.PSPResult | None = None
        failure: config.FailureClass = "server_error"
        try:
            result = await adapter.authorize(
                checkout_id=cid,
                amount=payment.amount,
                currency=payment.currency,
                method=payment.payment_method,
                key=key,
                token=token,
            )
            svc.record_call(target, result.outcome != "rejected")
        except base.PSPNotSent:
            failure = "network_error"
            svc.call_failed(target, failure)
            await svc.repo.finish_attempt(attempt.id, "not_charged", failure_class=failure)
        except base.PSPInProgress:
            await svc.repo.finish_attempt(attempt.id, "unknown", failure_class="timeout")
            raise exceptions.OutcomeUnknown(
                f"provider {provider.name!r} is still processing this checkout; retry later"
            ) from None
        except base.PSPAmbiguous as exc:
            failure = exc.failure_class
            svc.call_failed(target, failure)
            if adapter.recovers_by_replay:
                result = await replay(svc, attempt, adapter, payment, key, failure)
                if result is None:
                    return "next"  # known not charged: the next provider may be tried
                settled = await settle(svc, payment, attempt, target, result)
                if settled is not None:
                    return settled
                if result.outcome == "rejected":
                    return "next"
                action, _ = routing.retry_action(route, result.decline_class or "soft_decline")
                return "stop" if action == "stop" else "declined_next"
            found = await svc.lookup(target, cid)
            if found is None:
                await svc.repo.finish_attempt(attempt.id, "unknown", failure_class=failure)
                raise exceptions.OutcomeUnknown(
                    f"provider {provider.name!r} did not answer and could not be asked; "
                    "nothing else was tried; retry later"
                ) from None
            result = verdict_from_lookup(found)
            if result is None:
                result = await confirm_not_charged(svc, attempt, adapter, payment, key, failure)
        except base.PSPRejected as exc:
            svc.record_call(target, False)
            await svc.repo.finish_attempt(
                attempt.id, "rejected", failure_class="server_error", detail=str(exc)
            )
            return "next"
        if result is not None:
            settled = await settle(svc, payment, attempt, target, result)
            if settled is not None:
                return settled
            if result.outcome == "rejected":
                return "next"
            action, _ = routing.retry_action(route, result.decline_class or "soft_decline")
            return "stop" if action == "stop" else "declined_next"
        action, max_attempts = routing.retry_action(route, failure)
        if action == "retry_same" and tries < max_attempts:
            await asyncio.sleep(backoff(tries))
            attempt = await svc.repo.start_attempt(
                checkout_id=cid,
                operation="authorize",
                scope=provider.name,
                provider=target.provider,
                provider_type=target.type,
                endpoint=target.endpoint,
                account=target.account,
                key=key,
                amount=payment.amount,
            )
            continue
        return "stop" if action == "stop" else "next"
