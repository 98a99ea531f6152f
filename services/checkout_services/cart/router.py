"""HTTP routes of the cart service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from checkout_services.cart import schemas
from checkout_services.cart.deps import Service
from checkout_services.common import errors, ids, principal

router = APIRouter(responses=errors.PROBLEM_RESPONSES, tags=["carts"])
CartPath = Annotated[str, Path(min_length=32, max_length=32, pattern=ids.MADE)]
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.SKU)]


class UnsupportedCurrency(errors.InvalidInput):
    service = "cart"


@router.post("/v1/carts", response_model=schemas.CartView, status_code=201, summary="New cart")
async def create_cart(
    body: schemas.CreateCart, svc: Service, caller: principal.CallerDep
) -> schemas.CartView:
    if not body.supported():
        raise UnsupportedCurrency(f"currency {body.currency} is not supported", field="currency")
    return await svc.create(body, caller.tag)


@router.get("/v1/carts/{cart_id}", response_model=schemas.CartView, summary="A cart")
async def get_cart(
    cart_id: CartPath, svc: Service, caller: principal.CallerDep
) -> schemas.CartView:
    return await svc.get(cart_id, caller.tag)


@router.put(
    "/v1/carts/{cart_id}/items/{sku}", response_model=schemas.CartView, summary="Set a quantity"
)
async def set_item(
    cart_id: CartPath,
    sku: SkuPath,
    body: schemas.SetQuantity,
    svc: Service,
    caller: principal.CallerDep,
) -> schemas.CartView:
    return await svc.set_item(cart_id, sku, body.quantity, caller.tag)


@router.delete(
    "/v1/carts/{cart_id}/items/{sku}", response_model=schemas.CartView, summary="Remove an item"
)
async def remove_item(
    cart_id: CartPath, sku: SkuPath, svc: Service, caller: principal.CallerDep
) -> schemas.CartView:
    return await svc.set_item(cart_id, sku, 0, caller.tag)


@router.delete("/v1/carts/{cart_id}", status_code=204, summary="Delete a cart")
async def delete_cart(cart_id: CartPath, svc: Service, caller: principal.CallerDep) -> Response:
    await svc.delete(cart_id, caller.tag)
    return Response(status_code=204)
