"""Authorizations without a verdict (timeout, 5xx, dropped connection): never a search, never
another provider before the first is known not to have charged.

Providers whose dedup is the source of truth (Stripe, Adyen) are sent the same request again
with the same key (:func:`replay`); the local methods are looked up by merchant reference and
then asked again with the same key (:func:`confirm_not_charged`). An earlier run that died
mid-call is resolved the same way before anything else (:func:`resolve_open_attempts`)."""

from __future__ import annotations

import asyncio

from checkout_contract import payments as config
from checkout_services.payments import db, exceptions
from checkout_services.payments.adapters import base
from checkout_services.payments.operations.verdicts import settle, verdict_from_lookup
from checkout_services.payments.service import PaymentsService, backoff
from checkout_services.payments.state_machine import PaymentState as S


async def resolve_open_attempts(
    svc: PaymentsService, payment: db.Payment, attempts: list[db.Attempt]
) -> db.Payment:
    """An earlier run died (or timed out) mid-call: ask those providers before anything else."""
    for a in attempts:
        if a.status not in ("in_flight", "unknown"):
            continue
        target = svc.target_of(a.provider, a.provider_type, a.endpoint, a.account)
        adapter = svc.adapter(target)
        if adapter.recovers_by_replay:
            verdict = await replay(svc, a, adapter, payment, a.psp_idempotency_key, "timeout")
            if verdict is not None:
                settled = await settle(svc, payment, a, target, verdict)
                if settled is not None:
                    return settled
            continue
        found = await svc.lookup(target, payment.checkout_id)
        if found is None:
            raise exceptions.OutcomeUnknown(
                f"the outcome at provider {a.provider!r} is not known yet; retry later"
            )
        verdict = verdict_from_lookup(found)
        if verdict is None:
            await svc.repo.finish_attempt(
                a.id, "not_charged", failure_class=a.failure_class or "timeout"
            )
            continue
        settled = await settle(svc, payment, a, target, verdict)
        if settled is not None:
            return settled
    return payment


def token_of(payment: db.Payment) -> base.PaymentMethodToken | None:
    return base.PaymentMethodToken.from_json(payment.method_token)


async def send_again(adapter: base.PSPAdapter, payment: db.Payment, key: str) -> base.PSPResult:
    """The payment's authorization request, exactly as first sent (same key, same token)."""
    return await adapter.authorize(
        checkout_id=payment.checkout_id,
        amount=payment.amount,
        currency=payment.currency,
        method=payment.payment_method,
        key=key,
        token=token_of(payment),
    )


async def replay(
    svc: PaymentsService,
    attempt: db.Attempt,
    adapter: base.PSPAdapter,
    payment: db.Payment,
    key: str,
    failure: config.FailureClass,
) -> base.PSPResult | None:
    """Recovery after an ambiguous answer, for providers whose dedup is the source of truth
    (Stripe, Adyen): the same request with the same key, never a search. The provider answers
    with what it did (its saved answer), or 409/704 while the first request still runs.

    Returns the verdict; None only when the provider answered the replay with a refusal that is
    not a verdict (nothing was done under this key: the attempt is ``not_charged``). A replayed
    5xx is the saved 5xx of the first request (Stripe saves it once the endpoint started): it is
    NOT "not charged", the attempt stays ``unknown`` and no other provider is tried.
    """
    for n in range(svc.settings.lookup_attempts):
        await asyncio.sleep(backoff(n))
        try:
            result = await send_again(adapter, payment, key)
        except (base.PSPNotSent, base.PSPAmbiguous) as again:
            if isinstance(again, base.PSPAmbiguous) and again.failure_class == "server_error":
                break  # the saved (or a new) 5xx: still unknown, replaying now changes nothing
            continue
        except base.PSPInProgress:
            break
        except base.PSPRejected:
            break
        if result.outcome != "rejected":
            svc.metrics.lookups.labels(attempt.provider, "found").inc()
            return result
        svc.metrics.lookups.labels(attempt.provider, "nothing").inc()
        await svc.repo.finish_attempt(attempt.id, "not_charged", failure_class=failure)
        return None
    current = await svc.repo.get(payment.checkout_id)
    if current is not None and current.state == S.AUTHORIZED and current.psp_reference:
        # The provider's webhook settled it meanwhile (it names the payment it authorized).
        svc.metrics.lookups.labels(attempt.provider, "found").inc()
        return base.PSPResult("approved", current.psp_reference, "authorized")
    await svc.repo.finish_attempt(attempt.id, "unknown", failure_class=failure)
    svc.metrics.lookups.labels(attempt.provider, "failed").inc()
    raise exceptions.OutcomeUnknown(
        f"the outcome at provider {attempt.provider!r} is not known yet (the same request will "
        "be replayed with the same key); nothing else was tried; retry later"
    )


async def confirm_not_charged(
    svc: PaymentsService,
    attempt: db.Attempt,
    adapter: base.PSPAdapter,
    payment: db.Payment,
    key: str,
    failure: config.FailureClass,
) -> base.PSPResult | None:
    """The lookup found nothing; is that because nothing was charged, or because the first
    request is still being processed? Send it again with the same key: the provider's dedup
    answers with the stored result, or 409 while the first one still runs. Returns a verdict,
    or None once the provider is known not to hold a charge (then the attempt is
    ``not_charged``); raises OutcomeUnknown otherwise, and no other provider is tried."""
    try:
        result = await send_again(adapter, payment, key)
    except base.PSPNotSent:
        pass  # the lookup said nothing, and this request did not leave: nothing pending here
    except base.PSPAmbiguous as again:
        if again.failure_class != "server_error":  # a second timeout: still can't tell
            await svc.repo.finish_attempt(attempt.id, "unknown", failure_class=failure)
            raise exceptions.OutcomeUnknown(
                f"provider {attempt.provider!r} did not answer; nothing else was tried; retry later"
            ) from None
        # The provider answered (its stored or transient error): it runs nothing for this key.
    except base.PSPInProgress:
        await svc.repo.finish_attempt(attempt.id, "unknown", failure_class=failure)
        raise exceptions.OutcomeUnknown(
            f"provider {attempt.provider!r} is still processing this checkout; retry later"
        ) from None
    else:
        if result.outcome != "rejected":
            return result
    await svc.repo.finish_attempt(attempt.id, "not_charged", failure_class=failure)
    return None
