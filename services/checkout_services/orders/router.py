"""HTTP routes of the orders service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from checkout_services.common import errors, idempotency, ids, principal
from checkout_services.orders import schemas
from checkout_services.orders.deps import Idem, Service

router = APIRouter(responses={**errors.PROBLEM_RESPONSES, 402: errors.PROBLEM_RESPONSES[409]})
CheckoutPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.ID)]


@router.post(
    "/v1/checkouts",
    status_code=201,
    tags=["checkouts"],
    summary="Run a checkout; answers once the order is placed (capture goes on after)",
)
async def checkout(
    body: schemas.CheckoutRequest,
    request: Request,
    svc: Service,
    idem: Idem,
    caller: principal.CallerDep,
    idempotency_key: idempotency.IdemKey = None,
) -> Response:
    async def handler() -> tuple[int, Any]:
        return 201, await svc.checkout(body, owner=caller.tag)

    return await idempotency.run(
        idem, request, idempotency_key, body.model_dump(mode="json"), handler, scope=caller.tag
    )


@router.post(
    "/v1/checkouts/{checkout_id}/payment-details",
    response_model=schemas.PaymentView,
    tags=["checkouts"],
    summary="The shopper is back from 3-D Secure / a redirect: complete the payment's action",
)
async def payment_details(
    checkout_id: CheckoutPath,
    body: schemas.PaymentDetailsRequest,
    request: Request,
    svc: Service,
    idem: Idem,
    caller: principal.CallerDep,
    idempotency_key: idempotency.IdemKey = None,
) -> Response:
    async def handler() -> tuple[int, Any]:
        view = await svc.payment_details(checkout_id, body, owner=caller.tag)
        return 200, view.model_dump(mode="json")

    return await idempotency.run(
        idem, request, idempotency_key, body.model_dump(mode="json"), handler, scope=caller.tag
    )


@router.get(
    "/v1/orders/{checkout_id}",
    response_model=schemas.OrderView,
    tags=["orders"],
    summary="An order",
)
async def get_order(
    checkout_id: CheckoutPath, svc: Service, caller: principal.CallerDep
) -> schemas.OrderView:
    return await svc.get(checkout_id, owner=caller.tag)


@router.post(
    "/v1/orders/{checkout_id}/compensate",
    response_model=schemas.CompensationReport,
    tags=["operations"],
    summary="Run the compensations again (DLQ replay): void, release; idempotent",
)
async def compensate(
    checkout_id: CheckoutPath, svc: Service, caller: principal.CallerDep
) -> schemas.CompensationReport:
    """Not a client's route (the gateway has none to it): only a request signed with the
    region's key passes, i.e. the DLQ replay (``internal/dlq``); any other is 401."""
    del caller  # checked by the dependency; a compensation is not scoped to a client
    return await svc.compensate(checkout_id)
