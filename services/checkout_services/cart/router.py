"""HTTP routes of the cart service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from checkout_services.cart import schemas
from checkout_services.cart.deps import Service
from checkout_services.common import errors, ids, principal

router = APIRouter(
    responses=errors.PROBLEM_RESPONSES, tags=["carts"], dependencies=[Depends(principal.caller)]
)
CartPath = Annotated[str, Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.SKU)]


class UnsupportedCurrency(errors.InvalidInput):
    service = "cart"


@router.post("/v1/carts", response_model=schemas.CartView, status_code=201, summary="New cart")
async def create_cart(body: schemas.CreateCart, svc: Service) -> schemas.CartView:
    if not body.supported():
        raise UnsupportedCurrency(f"currency {body.currency} is not supported", field="currency")
    return await svc.create(body)


@router.get("/v1/carts/{cart_id}", response_model=schemas.CartView, summary="A cart")
async def get_cart(cart_id: CartPath, svc: Service) -> schemas.CartView:
    return await svc.get(cart_id)


@router.put(
    "/v1/carts/{cart_id}/items/{sku}", response_model=schemas.CartView, summary="Set a quantity"
)
async def set_item(
    cart_id: CartPath, sku: SkuPath, body: schemas.SetQuantity, svc: Service
) -> schemas.CartView:
    return await svc.set_item(cart_id, sku, body.quantity)


@router.delete(
    "/v1/carts/{cart_id}/items/{sku}", response_model=schemas.CartView, summary="Remove an item"
)
async def remove_item(cart_id: CartPath, sku: SkuPath, svc: Service) -> schemas.CartView:
    return await svc.set_item(cart_id, sku, 0)


@router.delete("/v1/carts/{cart_id}", status_code=204, summary="Delete a cart")
async def delete_cart(cart_id: CartPath, svc: Service) -> Response:
    await svc.delete(cart_id)
    return Response(status_code=204)
