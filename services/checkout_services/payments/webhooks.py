"""Provider webhooks: verified with the provider's own scheme, idempotent (event ids kept),
out-of-order safe, and only ever applied to payments of the provider account they came for.

What each event does (events come from :mod:`webhook_schemes`):

- authorized / declined: a payment waiting for the shopper (requires_action) is settled.
- captured: the capture (requested, or an APM that captures on confirmation) is done.
- capture_failed while our capture request is unanswered (timed out, to be replayed): 503, so
  the provider delivers it again once the payment is capture_pending.
- captured / capture_failed out of capture_pending: the orders saga is signalled
  (:meth:`PaymentsService.move`); on capture_failed it compensates and sends
  PAYMENT_CAPTURE_FAILED to its DLQ. An outcome the saga stopped waiting for is undone
  (:mod:`release`: a late CAPTURE refunded, a late CAPTURE_FAILED voided).
- voided / void_failed: void_pending -> voided, or back to authorized.
- refunded / refund_failed: settle the refund they name (:mod:`refund_ledger`): the
  refunded amount grows, or the amount the open refund held is refundable again.

A provider has one webhook URL, while a checkout may have been paid in another region (resumed
there): an event this region cannot apply to a payment of its own - no such payment, a payment
at another provider or of another attempt (``ignored``), or one the event cannot move from its
state (``stale``; not when the payment is in the event's state already) - is marked
``"held": false`` and recorded as :data:`ELSEWHERE`, and the answer carries
:data:`UNHELD_HEADER` (still 2xx): the gateway passes the delivery on to the other regions'
payments, each of which applies what it holds (``gateway/webhooks.py``). A redelivery
of such an event is unheld again (so a delivery the gateway could not pass on, answered 503,
reaches the holder when the provider retries), and never applied twice here or there: the
event ids are kept in every region. A batch (Adyen) is unheld when any of its items is.
A capture or cancel outcome this region's copy did not ask for (:func:`asked_here`) is applied
here too (the copy's view is corrected) and still answered unheld: the region that asked
holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from checkout_contract import payments as config
from checkout_services.payments import db, exceptions, refund_ledger, release
from checkout_services.payments import state_machine as sm
from checkout_services.payments import webhook_schemes as ws
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S

SIGNATURE_HEADERS = {"stripe": "stripe-signature"}
UNHELD_HEADER = "x-checkout-webhook-unheld"

ASKED_BY: Final[Mapping[str, str]] = {
    "captured": "capture",
    "capture_failed": "capture",
    "voided": "void",
    "void_failed": "void",
}
"""The modification events and the operation (``psp_attempts.operation``) that asks for each:
a region holds such an event only if its copy of the payment made that request."""
"""On the answer to the gateway (an internal header: the gateway does not pass it to the
provider): the delivery names a payment this region does not hold (see the docstring)."""
ELSEWHERE = "elsewhere"
"""The recorded outcome of an event this region could not apply to a payment of its own."""
LOCAL_HEADER = "sim-signature"


def read_events(
    provider: config.Provider, secrets: list[str], headers: Mapping[str, str], body: bytes
) -> list[ws.Event]:
    if provider.type == "adyen":
        return ws.adyen_events(body, secrets)
    header = headers.get(SIGNATURE_HEADERS.get(provider.type, LOCAL_HEADER), "")
    ws.verify_timestamped(secrets, header, body)
    if provider.type == "stripe":
        return ws.stripe_events(body)
    return ws.local_events(body)


async def handle(
    svc: PaymentsService, provider_name: str, headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    creds = svc.credentials.get(provider_name)
    provider = svc.providers.get(provider_name)
    if creds is None or provider is None:
        raise exceptions.UnknownProvider(f"no provider named {provider_name!r}")
    events = read_events(provider, creds.webhook_secrets(), headers, body)
    outcomes = [await apply(svc, provider, event) for event in events]
    return outcomes[0] if len(outcomes) == 1 else {"outcome": "batch", "events": outcomes}


def unheld(outcome: Mapping[str, Any]) -> bool:
    """Whether :func:`handle`'s outcome names a payment another region may hold."""
    events = outcome.get("events") if outcome.get("outcome") == "batch" else [outcome]
    return any(e.get("held") is False for e in events or [])


async def apply(svc: PaymentsService, provider: config.Provider, event: ws.Event) -> dict[str, Any]:
    """:func:`apply_here`, and whether this region held what the event is about."""
    if event.account is not None and event.account != provider.account:
        return {"outcome": "ignored"}  # another merchant account: no region of ours holds it
    if not await svc.repo.record_webhook(provider.name, event.event_id, "received"):
        if await svc.repo.webhook_outcome(provider.name, event.event_id) == ELSEWHERE:
            return {"outcome": "duplicate", "held": False}
        return {"outcome": "duplicate"}
    outcome = await apply_here(svc, provider, event)
    # held False from apply_here: applied to a copy that did not ask (see asked_here)
    if outcome.get("held") is False or (
        outcome["outcome"] in ("ignored", "stale") and "held" not in outcome and event.kind
    ):
        await svc.repo.note_webhook(provider.name, event.event_id, ELSEWHERE)
        return {**outcome, "held": False}
    return outcome


def same_account(payment: db.Payment, provider: config.Provider) -> bool:
    """A provider's webhook moves only the payments made at that provider account (an
    account's regional endpoints share its webhooks)."""
    return (payment.provider_type, payment.account) == (provider.type, provider.account)


async def apply_here(
    svc: PaymentsService, provider: config.Provider, event: ws.Event
) -> dict[str, Any]:
    """The event applied to this region's payment (recorded by :func:`apply` already)."""
    payment = await svc.repo.get(event.reference) if event.reference else None
    if payment is None or event.kind is None:
        return {"outcome": "ignored"}
    if payment.state != S.PENDING and not same_account(payment, provider):
        return {"outcome": "ignored"}  # provider A's webhook never moves provider B's payment
    if payment.state == S.PENDING:
        settled = await settle_pending(svc, provider, payment, event)
        if settled is not None:
            return {"outcome": "applied", "state": settled.state.value}
        # Our own authorize call has not recorded the provider's answer yet: not applied, and
        # not remembered, so the provider's redelivery is processed once we know the payment.
        await svc.repo.forget_webhook(provider.name, event.event_id)
        raise exceptions.PaymentNotReady(
            f"checkout {event.reference!r} is still being authorized; deliver again later"
        )
    if payment.psp_reference is not None and payment.psp_reference != event.psp_reference:
        return {"outcome": "ignored"}  # about another attempt (e.g. a stray authorization)
    if event.kind in ("refunded", "refund_failed"):
        return await apply_refund(svc, payment, event)
    move = target_of(payment, event)
    if move is None:
        return {"outcome": "stale", "kind": event.kind}
    target, fields = move
    if payment.state == target:  # what the event says is this payment's state already
        return {"outcome": "stale", "kind": event.kind, "held": True}
    if not sm.can(payment.state, target):
        if event.kind == "capture_failed" and await capturing(svc, payment):
            # our capture request has not recorded the provider's answer yet (it timed out):
            # not applied, not remembered, so the redelivery finds it capture_pending
            await svc.repo.forget_webhook(provider.name, event.event_id)
            raise exceptions.PaymentNotReady(
                f"checkout {event.reference!r} is still being captured; deliver again later"
            )
        return {"outcome": "stale", "kind": event.kind}
    # A capture or cancel this region never asked for is about the copy of a checkout resumed
    # in another region (same Idempotency-Key, so the same pspReference there): this copy's
    # view is corrected, and the event is still answered unheld so the gateway passes it to
    # the region that asked (the chaos run: A took B's CAPTURE_FAILED for its own, and B's
    # copy stayed capture_pending with the authorization open at the provider)
    held = await asked_here(svc, payment, event)
    try:
        moved = await svc.move(payment, target, **fields)
    except exceptions.IllegalTransitionError:
        return {"outcome": "stale", "kind": event.kind}
    await release.settle_quietly(svc, moved)
    applied: dict[str, Any] = {"outcome": "applied", "state": target.value}
    return applied if held else {**applied, "held": False}


async def asked_here(svc: PaymentsService, payment: db.Payment, event: ws.Event) -> bool:
    """Whether this region's copy asked for what the event answers (:data:`ASKED_BY`). A
    provider captures some payment methods on its own (Pix, iDEAL: the APM is paid, the
    provider captures), so a capture of a non-card payment, or of one still waiting for the
    shopper, needs no request of ours."""
    asked = ASKED_BY.get(event.kind or "")
    if asked is None:
        return True
    if event.kind == "captured" and (
        payment.payment_method != "card" or payment.state == S.REQUIRES_ACTION
    ):
        return True
    return bool(await svc.repo.attempts(payment.checkout_id, asked))


async def settle_pending(
    svc: PaymentsService, provider: config.Provider, payment: db.Payment, event: ws.Event
) -> db.Payment | None:
    """An authorization whose answer we never got (timeout, a saved 5xx replayed) is settled by
    the provider's own word: the webhook names the payment it authorized, for this checkout,
    at the account our open attempt went to."""
    if event.kind != "authorized":
        return None
    open_attempts = [
        a
        for a in await svc.repo.attempts(payment.checkout_id, "authorize")
        if a.status in ("in_flight", "unknown")
        and (a.provider_type, a.account) == (provider.type, provider.account)
    ]
    if not open_attempts:
        return None
    a = open_attempts[-1]
    try:
        return await svc.move(
            payment,
            S.AUTHORIZED,
            attempt=(a.id, "succeeded", None, event.psp_reference, "settled by webhook"),
            provider=a.provider,
            provider_type=a.provider_type,
            endpoint=a.endpoint,
            account=a.account,
            psp_reference=event.psp_reference,
            decline_class=None,
            decline_reason=None,
        )
    except exceptions.IllegalTransitionError:
        return None


async def capturing(svc: PaymentsService, payment: db.Payment) -> bool:
    """An authorized payment whose capture request is in flight or its answer unknown."""
    if payment.state != S.AUTHORIZED:
        return False
    attempts = await svc.repo.attempts(payment.checkout_id, "capture")
    return any(a.status in ("in_flight", "unknown") for a in attempts)


def target_of(payment: db.Payment, event: ws.Event) -> tuple[S, dict[str, Any]] | None:
    """Where the event moves the payment from its current state (None: nowhere)."""
    state = payment.state
    kind = event.kind
    if kind == "authorized":
        return S.AUTHORIZED, {}
    if kind == "declined":
        return S.DECLINED, {"decline_class": "soft_decline"}
    if kind == "captured":
        if state == S.REQUIRES_ACTION:
            return S.AUTHORIZED, {}  # an APM captured on confirmation: authorized first
        return S.CAPTURED, {"captured_amount": event.amount or payment.amount}
    if kind == "capture_failed":
        return S.CAPTURE_FAILED, {}
    if kind == "voided":
        return S.VOIDED, {}
    if kind == "void_failed":
        return (S.AUTHORIZED, {}) if state == S.VOID_PENDING else None
    return None  # refunds: apply_refund


async def apply_refund(
    svc: PaymentsService, payment: db.Payment, event: ws.Event
) -> dict[str, Any]:
    """The refund the event names is settled; a refund we never asked for (made at the
    provider's dashboard) is recorded first, if it fits."""
    pool = svc.repo.pool
    attempt_id = await refund_ledger.attempt_for(
        pool, payment.checkout_id, event.modification, event.amount
    )
    if attempt_id is None and event.kind == "refunded" and event.modification and event.amount:
        attempt_id = await refund_ledger.record_foreign(
            pool, payment, event.modification, event.amount
        )
    if attempt_id is None:
        return {"outcome": "stale", "kind": event.kind}
    verdict: refund_ledger.Verdict = "succeeded" if event.kind == "refunded" else "failed"
    if not await refund_ledger.settle(pool, attempt_id, verdict, modification=event.modification):
        return {"outcome": "stale", "kind": event.kind}
    return {"outcome": "applied", "state": (await svc.get(payment.checkout_id)).state.value}
