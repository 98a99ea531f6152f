"""HTTP routes of the payments service (OpenAPI for all of them; errors are problem+json)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from checkout_services.common import errors, idempotency, principal
from checkout_services.payments import db, exceptions, reconcile, schemas, switchover, webhooks
from checkout_services.payments.adapters import base
from checkout_services.payments.deps import Service
from checkout_services.payments.operations import authorize, capture, details, refund, void

PROBLEM = errors.PROBLEM
NOT_STORED = frozenset({"operation-in-progress", "idempotency-key-in-flight"})
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Problem, "content": {PROBLEM: {}}}
    for code in (402, 404, 409, 422, 502, 503)
}
IdemKey = idempotency.IdemKey
MAX_AGE_SECONDS = 366 * 24 * 3600
AgeSeconds = Annotated[float | None, Query(ge=0, le=MAX_AGE_SECONDS)]
"""An age a sweep looks back (at most a year: a larger one overflowed the timestamp, a 500)."""

router = APIRouter()
"""Open routes: the providers' webhooks (authenticated by each provider's own signature, see
:mod:`webhook_schemes`), health and metrics."""
internal = APIRouter(dependencies=[Depends(principal.caller)])
"""Every payment operation: only for a request signed with the region's key
(:mod:`common.principal`), i.e. the orders saga (``internal/orders``) or an operator's tooling;
anything else is 401, so payments cannot be driven from outside the region's services."""


def view(p: db.Payment) -> dict[str, Any]:
    return schemas.PaymentView(
        checkout_id=p.checkout_id,
        state=p.state.value,
        amount=p.amount,
        currency=p.currency,
        country=p.country,
        payment_method=p.payment_method,
        provider=p.provider,
        psp_reference=p.psp_reference,
        captured_amount=p.captured_amount,
        refunded_amount=p.refunded_amount,
        decline_class=p.decline_class,
        decline_reason=p.decline_reason,
        action=p.action,
        created_at=p.created_at,
        updated_at=p.updated_at,
    ).model_dump(mode="json")


async def idempotent(
    svc: Service,
    request: Request,
    key: str | None,
    body: Any,
    run: Callable[[], Awaitable[db.Payment]],
) -> Response:
    """Run ``run`` under the client's Idempotency-Key (if any) and shape the response."""
    spent: list[float] = []
    token = base.PSP_TIME.set(spent)
    start = time.perf_counter()
    try:
        claim: idempotency.Claim | None = None
        if key is not None:
            got = await svc.idem.begin(
                key, idempotency.fingerprint(request.method, request.url.path, body)
            )
            if isinstance(got, idempotency.Stored):
                media = PROBLEM if got.status >= 400 else "application/json"
                return JSONResponse(
                    got.body,
                    status_code=got.status,
                    media_type=media,
                    headers={"Idempotent-Replayed": "true"},
                )
            claim = got
        try:
            payment = await run()
            status, payload, slug = 200, view(payment), ""
            if payment.state.value == "declined":
                exc: exceptions.PaymentsError = exceptions.PaymentDeclined(
                    f"declined ({payment.decline_class})",
                    checkout_id=payment.checkout_id,
                    decline_class=payment.decline_class,
                    payment=payload,
                )
                status, payload, slug = exc.status, exc.problem(request.url.path), exc.slug
        except exceptions.PaymentsError as err:
            if claim is not None:
                if err.status < 500 and err.slug not in NOT_STORED:
                    await svc.idem.complete(claim, err.status, err.problem(request.url.path))
                else:
                    await svc.idem.release(claim)
            raise
        except BaseException:
            if claim is not None:
                await svc.idem.release(claim)
            raise
        if claim is not None:
            await svc.idem.complete(claim, status, payload)
        total = time.perf_counter() - start
        psp = sum(spent)
        headers = {"Server-Timing": f"psp;dur={psp * 1000:.2f}, app;dur={(total - psp) * 1000:.2f}"}
        return JSONResponse(
            payload,
            status_code=status,
            headers=headers,
            media_type=PROBLEM if slug else "application/json",
        )
    finally:
        base.PSP_TIME.reset(token)


@internal.post(
    "/v1/payments/authorize",
    response_model=schemas.PaymentView,
    responses=ERRORS,
    summary="Authorize a checkout's payment (no capture)",
    tags=["payments"],
)
async def authorize_payment(
    body: schemas.AuthorizeRequest, request: Request, svc: Service, idempotency_key: IdemKey = None
) -> Response:
    moves: switchover.Switchover | None = getattr(request.app.state, "switchover", None)

    async def run() -> Response:
        return await idempotent(
            svc,
            request,
            idempotency_key,
            body.model_dump(mode="json"),
            lambda: authorize.authorize(svc, body),
        )

    if moves is None:
        return await run()
    moves.check(body.country)  # a new authorization needs the market's write lease
    with moves.authorizing.track(body.country):  # in flight: the fencing ack waits for it
        return await run()


@internal.post(
    "/v1/payments/{checkout_id}/details",
    response_model=schemas.PaymentView,
    responses=ERRORS,
    summary="Complete a shopper action (redirect, 3-D Secure) with what the shopper came back with",
    tags=["payments"],
)
async def payment_details(
    checkout_id: str,
    request: Request,
    svc: Service,
    body: schemas.DetailsRequest | None = None,
    idempotency_key: IdemKey = None,
) -> Response:
    """Adyen: ``details`` (e.g. ``redirectResult`` from the return URL) go to its
    /payments/details; Stripe: the PaymentIntent is read back. requires_action -> authorized,
    declined (402), or requires_action with the next action."""
    req = body or schemas.DetailsRequest()
    return await idempotent(
        svc,
        request,
        idempotency_key,
        req.model_dump(mode="json"),
        lambda: details.complete(svc, checkout_id, req),
    )


@internal.post(
    "/v1/payments/{checkout_id}/capture",
    response_model=schemas.PaymentView,
    responses=ERRORS,
    summary="Capture an authorized payment",
    tags=["payments"],
)
async def capture_payment(
    checkout_id: str,
    request: Request,
    svc: Service,
    body: schemas.CaptureRequest | None = None,
    idempotency_key: IdemKey = None,
) -> Response:
    req = body or schemas.CaptureRequest()
    return await idempotent(
        svc,
        request,
        idempotency_key,
        req.model_dump(mode="json"),
        lambda: capture.capture(svc, checkout_id, req),
    )


@internal.post(
    "/v1/payments/{checkout_id}/void",
    response_model=schemas.PaymentView,
    responses=ERRORS,
    summary="Void (cancel) an authorization",
    tags=["payments"],
)
async def void_payment(
    checkout_id: str,
    request: Request,
    svc: Service,
    body: schemas.VoidRequest | None = None,
    idempotency_key: IdemKey = None,
) -> Response:
    req = body or schemas.VoidRequest()
    return await idempotent(
        svc,
        request,
        idempotency_key,
        req.model_dump(mode="json"),
        lambda: void.void(svc, checkout_id),
    )


@internal.post(
    "/v1/payments/{checkout_id}/refunds",
    response_model=schemas.PaymentView,
    responses=ERRORS,
    summary="Refund all or part of a capture",
    tags=["payments"],
)
async def refund_payment(
    checkout_id: str,
    body: schemas.RefundRequest,
    request: Request,
    svc: Service,
    idempotency_key: IdemKey = None,
) -> Response:
    return await idempotent(
        svc,
        request,
        idempotency_key,
        body.model_dump(mode="json"),
        lambda: refund.refund(svc, checkout_id, body),
    )


@internal.get(
    "/v1/payments/{checkout_id}",
    response_model=schemas.PaymentView,
    responses=ERRORS,
    summary="A payment's state",
    tags=["payments"],
)
async def get_payment(checkout_id: str, svc: Service) -> dict[str, Any]:
    return view(await svc.get(checkout_id))


@internal.post(
    "/v1/payments/reconcile",
    response_model=schemas.ReconcileReport,
    summary="Resolve stuck payments, void abandoned and stray authorizations",
    tags=["operations"],
)
async def reconcile_payments(
    svc: Service,
    abandon_after_seconds: AgeSeconds = None,
    pending_after_seconds: AgeSeconds = None,
) -> schemas.ReconcileReport:
    return await reconcile.reconcile(
        svc,
        abandon_after_s=svc.settings.abandon_after_seconds
        if abandon_after_seconds is None
        else abandon_after_seconds,
        pending_after_s=svc.settings.pending_resolve_after_seconds
        if pending_after_seconds is None
        else pending_after_seconds,
    )


@router.post(
    "/v1/webhooks/{provider}",
    responses=ERRORS,
    summary="Provider webhook (HMAC-signed)",
    tags=["webhooks"],
)
async def provider_webhook(provider: str, request: Request, svc: Service) -> Response:
    """Stripe: ``Stripe-Signature``; Adyen: ``additionalData.hmacSignature`` in each item (the
    answer is ``[accepted]``, as Adyen expects); local methods: ``Sim-Signature``."""
    outcome = await webhooks.handle(svc, provider, request.headers, await request.body())
    held = {webhooks.UNHELD_HEADER: "1"} if webhooks.unheld(outcome) else None
    configured = svc.providers.get(provider)
    if configured is not None and configured.type == "adyen":
        return PlainTextResponse("[accepted]", headers=held)
    return JSONResponse(outcome, headers=held)


@router.get("/health/live", summary="Liveness", tags=["health"])
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: PostgreSQL and Redis answer",
    tags=["health"],
    responses={503: {"model": schemas.Problem}},
)
async def ready(svc: Service, request: Request) -> Response:
    checks: dict[str, str] = {}
    try:
        await svc.repo.pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = type(exc).__name__
    try:
        await svc.idem.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = type(exc).__name__
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    err = exceptions.NotReady(
        "not ready: " + ", ".join(f"{k}={v}" for k, v in checks.items() if v != "ok"),
        checks=checks,
    )
    return errors.problem_response(err, request.url.path)


@router.get("/metrics", summary="Prometheus metrics", tags=["health"], response_class=Response)
async def metrics(svc: Service) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
