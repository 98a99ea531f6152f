"""Authorize: route, try providers in order, never charge twice.

Every provider gets one attempt per checkout with a key derived from (checkout, "authorize",
provider). An answer that is not a PSP verdict (timeout, 5xx, dropped connection) is ambiguous:
the provider is asked what it holds for this checkout before anything else happens, and another
provider is tried only when the first is known not to have charged.

This module routes and orders the providers; one provider's attempt is :mod:`.attempt`, the
recovery of an answer without a verdict :mod:`.recovery`, what a verdict does to the payment
:mod:`.verdicts`.
"""

from __future__ import annotations

from checkout_contract import payments as config
from checkout_services.payments import db, exceptions, routing, schemas
from checkout_services.payments.adapters import base
from checkout_services.payments.operations.attempt import attempt_provider
from checkout_services.payments.operations.recovery import resolve_open_attempts
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S


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


async def last_declined(svc: PaymentsService, cid: str) -> db.Attempt | None:
    declined = [a for a in await svc.repo.attempts(cid, "authorize") if a.status == "declined"]
    return declined[-1] if declined else None
