"""HTTP routes of the inventory service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from checkout_services.common import errors, idempotency, ids, principal
from checkout_services.inventory import schemas
from checkout_services.inventory.deps import Idem, Service

# Every route: through the gateway (stock reads) or signed by another service of the region
# (the orders saga's reservations, stock administration): a request that is neither is 401.
router = APIRouter(responses=errors.PROBLEM_RESPONSES, dependencies=[Depends(principal.caller)])
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.SKU)]
CheckoutPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.ID)]


@router.put(
    "/v1/stock/{sku}", response_model=schemas.StockView, tags=["stock"], summary="Set stock"
)
async def set_stock(sku: SkuPath, body: schemas.StockLevel, svc: Service) -> schemas.StockView:
    return await svc.set_stock(sku, body.available)


@router.get("/v1/stock/{sku}", response_model=schemas.StockView, tags=["stock"], summary="Stock")
async def get_stock(sku: SkuPath, svc: Service) -> schemas.StockView:
    return await svc.get_stock(sku)


@router.get(
    "/v1/stock/{sku}/global",
    response_model=schemas.GlobalStockView,
    tags=["stock"],
    summary="The global availability of a SKU across regions, as this region sees it",
)
async def get_global_stock(sku: SkuPath, svc: Service) -> schemas.GlobalStockView:
    return await svc.global_stock(sku)


@router.post(
    "/v1/reservations",
    response_model=schemas.ReservationView,
    status_code=201,
    tags=["reservations"],
    summary="Reserve every line of a checkout (all or nothing), with a TTL",
)
async def reserve(
    body: schemas.ReserveRequest,
    request: Request,
    svc: Service,
    idem: Idem,
    idempotency_key: idempotency.IdemKey = None,
) -> Response:
    async def handler() -> tuple[int, object]:
        created, res = await svc.reserve(body)
        return (201 if created else 200), res.model_dump(mode="json")

    return await idempotency.run(
        idem, request, idempotency_key, body.model_dump(mode="json"), handler
    )


@router.get(
    "/v1/reservations/{checkout_id}",
    response_model=schemas.ReservationView,
    tags=["reservations"],
    summary="A checkout's reservation",
)
async def get_reservation(checkout_id: CheckoutPath, svc: Service) -> schemas.ReservationView:
    return await svc.get(checkout_id)


@router.post(
    "/v1/reservations/{checkout_id}/release",
    response_model=schemas.ReservationView,
    tags=["reservations"],
    summary="Release held stock (compensation; idempotent)",
)
async def release(checkout_id: CheckoutPath, svc: Service) -> schemas.ReservationView:
    return await svc.release(checkout_id)


@router.post(
    "/v1/reservations/{checkout_id}/commit",
    response_model=schemas.ReservationView,
    tags=["reservations"],
    summary="Mark held stock sold (the order is placed; idempotent)",
)
async def commit(checkout_id: CheckoutPath, svc: Service) -> schemas.ReservationView:
    return await svc.commit(checkout_id)


@router.post(
    "/v1/reservations/sweep",
    response_model=schemas.SweepReport,
    tags=["operations"],
    summary="One expiry sweep: release every expired held reservation exactly once",
)
async def sweep(svc: Service) -> schemas.SweepReport:
    return schemas.SweepReport(expired=await svc.sweep())
