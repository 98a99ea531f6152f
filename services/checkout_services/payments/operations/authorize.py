"""Authorize: route, try providers in order, never charge twice.

Every provider gets one attempt per checkout with a key derived from (checkout, "authorize",
provider). An answer that is not a PSP verdict (timeout, 5xx, dropped connection) is ambiguous:
the provider is asked what it holds for this checkout before anything else happens, and another
provider is tried only when the first is known not to have charged.
"""

from __future__ import annotations

import asyncio

from checkout_contract import payments as config
from checkout_services.payments import db, exceptions, keys, routing, schemas
from checkout_services.payments.adapters import base
from checkout_services.payments.service import PaymentsService, backoff
from checkout_services.payments.state_machine import PaymentState as S

CHARGED = ("authorized", "captured", "refunded")


def verdict_from_lookup(found: list[base.FoundPayment]) -> base.PSPResult | None:
    """What the provider's records say about this checkout (None = nothing charged)."""
    for p in found:
        if p.status in CHARGED:
            return base.PSPResult("approved", p.psp_reference, p.status)
    for p in found:
        if p.status == "pending":
            return base.PSPResult("pending", p.psp_reference, "pending")
    declined = [p for p in found if p.status == "declined"]
    if declined:
        return base.PSPResult(
            "declined", declined[0].psp_reference, "declined", "soft_decline", "declined"
        )
    return None


async def authorize(svc: PaymentsService, req: schemas.AuthorizeRequest) -> db.Payment:
    route = routing.match_route(
        svc.routing, country=req.country, currency=req.currency, method=req.payment_method
    )
    if route is None:
        raise exceptions.NoRoute(
            f"no PSP route serves country={req.country} currency={req.currency} "
            f"payment_method={req.payment_method}",
            field="country",
        )
    token = (
        base.PaymentMethodToken.from_json(req.payment_method_token.model_dump(exclude_none=True))
        if req.payment_method_token is not None
        else None
    )
    if not any(svc.takes(base.Target.of(p), req.payment_method, token) for p in route.providers):
        raise exceptions.PaymentMethodRequired(
            f"no provider of route {route.name} can take a {req.payment_method} payment with the "
            "payment_method_token sent (a card needs a Stripe PaymentMethod id or Adyen's "
            "paymentMethod, Adyen and a Stripe iDEAL a return_url)",
            field="payment_method_token",
        )
    owner = svc.new_owner()
    payment, created = await svc.repo.claim(
        checkout_id=req.checkout_id,
        amount=req.amount,
        currency=req.currency,
        country=req.country,
        method=req.payment_method,
        owner=owner,
        lease_seconds=svc.settings.lease_seconds,
        method_token=(
            req.payment_method_token.model_dump(exclude_none=True)
            if req.payment_method_token is not None
            else None
        ),
    )
    if payment is None:  # another request holds the lease
        current = await svc.get(req.checkout_id)
        check_same(current, req)
        if current.state not in (S.PENDING, S.FAILED):
            return current
        raise exceptions.OperationInProgress(
            f"checkout {req.checkout_id!r} is being authorized by another request; retry later"
        )
    async with svc.holding(req.checkout_id, owner):
        check_same(payment, req)
        if payment.state == S.FAILED:
            payment = await svc.move(payment, S.PENDING)
        if payment.state != S.PENDING:
            return payment
        return await run(svc, route, payment, created=created)


def check_same(payment: db.Payment, req: schemas.AuthorizeRequest) -> None:
    if (payment.amount, payment.currency, payment.country, payment.payment_method) != (
        req.amount,
        req.currency,
        req.country,
        req.payment_method,
    ):
        raise exceptions.CheckoutMismatch(
            f"checkout {req.checkout_id!r} was authorized for {payment.amount} {payment.currency}"
            f" ({payment.country}, {payment.payment_method})",
            field="amount",
        )


async def settle(
    svc: PaymentsService,
    payment: db.Payment,
    attempt: db.Attempt,
    target: base.Target,
    result: base.PSPResult,
) -> db.Payment | None:
    """Apply an approved/pending verdict; None for a decline or a rejection (caller decides)."""
    where = {
        "provider": target.provider,
        "provider_type": target.type,
        "endpoint": target.endpoint,
        "account": target.account,
        "psp_reference": result.psp_reference,
    }
    if result.outcome == "approved":
        svc.metrics.auth.labels(target.provider, "approved", "").inc()
        svc.rates.record(target.provider, True)
        return await svc.move(
            payment,
            S.AUTHORIZED,
            attempt=(attempt.id, "succeeded", None, result.psp_reference, None),
            decline_class=None,
            decline_reason=None,
            **where,
        )
    if result.outcome == "pending":
        svc.metrics.auth.labels(target.provider, "pending", "").inc()
        return await svc.move(
            payment,
            S.REQUIRES_ACTION,
            attempt=(attempt.id, "pending", None, result.psp_reference, None),
            action=result.action,
            **where,
        )
    if result.outcome == "declined":
        await svc.repo.finish_attempt(
            attempt.id,
            "declined",
            failure_class=result.decline_class,
            psp_reference=result.psp_reference,
            detail=result.reason,
        )
        svc.metrics.auth.labels(target.provider, "declined", result.decline_class or "").inc()
        svc.rates.record(target.provider, False)
        return None
    await svc.repo.finish_attempt(
        attempt.id, "rejected", failure_class="server_error", detail=result.reason
    )
    svc.metrics.auth.labels(target.provider, "error", "").inc()
    return None


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


async def run(
    svc: PaymentsService, route: config.Route, payment: db.Payment, *, created: bool = False
) -> db.Payment:
    cid = payment.checkout_id
    attempts = [] if created else await svc.repo.attempts(cid, "authorize")
    tried: set[str] = set()
    stopped = False
    open_attempts = [a for a in attempts if a.status in ("in_flight", "unknown")]
    configured = {p.name: p for p in route.providers}
    for a in open_attempts:
        # An earlier run died or timed out mid-call. Send the same request again, with the
        # same key, to the same provider: its own dedup answers (the stored response, or 409
        # while that request is still running there) - a lookup alone could miss a charge
        # still being made.
        provider = configured.get(a.attempt_scope)
        if provider is None or (provider.type, provider.endpoint, provider.account) != (
            a.provider_type,
            a.endpoint,
            a.account,
        ):
            payment = await resolve_open_attempts(svc, payment, [a])  # routing changed
            if payment.state != S.PENDING:
                return payment
            continue
        tried.add(provider.name)
        outcome = await attempt_provider(svc, route, payment, provider, base.Target.of(provider))
        if isinstance(outcome, db.Payment):
            return outcome
        if outcome == "stop":
            stopped = True
            break
    if open_attempts:
        attempts = await svc.repo.attempts(cid, "authorize")
    prior = {a.attempt_scope: a for a in attempts}
    last_decline: db.Attempt | None = None
    for a in attempts:
        if a.status == "declined":
            last_decline = a
            if routing.retry_action(route, a.failure_class or "soft_decline")[0] == "stop":  # type: ignore[arg-type]
                return await svc.move(
                    payment, S.DECLINED, decline_class=a.failure_class, decline_reason=None
                )
    order = routing.order_providers(
        route,
        rng=routing.checkout_rng(cid, route.name, svc.settings.routing_seed),
        rates=svc.rates if route.success_rate_ordering else None,
    )
    for provider in [] if stopped else order:
        if provider.name in tried:
            continue
        earlier = prior.get(provider.name)
        if earlier is not None and earlier.status == "declined":
            continue  # this provider already said no; a replay would say it again
        target = base.Target.of(provider)
        if not svc.breaker_for(target).allow():
            continue
        outcome = await attempt_provider(svc, route, payment, provider, target)
        if isinstance(outcome, db.Payment):
            return outcome
        if outcome == "stop":
            break
        if outcome == "declined_next":
            last_decline = await last_declined(svc, cid)
    # Nobody approved.
    last_decline = await last_declined(svc, cid) or last_decline
    if last_decline is not None:
        return await svc.move(
            payment,
            S.DECLINED,
            decline_class=last_decline.failure_class,
            decline_reason=None,
        )
    await svc.move(payment, S.FAILED)
    raise exceptions.ProvidersUnavailable(
        "no payment provider could take the payment; nothing was charged, retry later"
    )


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


async def last_declined(svc: PaymentsService, cid: str) -> db.Attempt | None:
    declined = [a for a in await svc.repo.attempts(cid, "authorize") if a.status == "declined"]
    return declined[-1] if declined else None


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
