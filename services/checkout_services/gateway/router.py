"""The gateway's public API: every route authenticates, is rate-limited and is then served by
the local region's services (reads, carts, quotes) or by the market's writer (checkouts)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from checkout_services.common import ids
from checkout_services.gateway import auth, exceptions, schemas
from checkout_services.gateway import service as svc
from checkout_services.gateway.deps import IdemKey, get_gateway

router = APIRouter(
    responses=schemas.problems(400, 401, 404, 409, 413, 422, 429, 503),
)

CheckoutPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.ID)]
CartPath = Annotated[str, Path(min_length=32, max_length=32, pattern=ids.MADE)]
SnapshotPath = Annotated[str, Path(min_length=32, max_length=32, pattern=ids.MADE)]
SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ids.SKU)]

CHECKOUTS: Final = "/v1/checkouts"


async def _read(gw: svc.Gateway, request: Request, service: str, route: str) -> Response:
    principal = await gw.authenticate(request, route)
    admission = await gw.admit(request, route, principal, None)
    return await gw.local(request, admission, service, route)


async def _local_body(gw: svc.Gateway, request: Request, service: str, route: str) -> Response:
    principal = await gw.authenticate(request, route)
    raw = await request.body()
    try:
        svc.parse_object(raw)
    except exceptions.GatewayError as exc:
        raise svc.reject_body(gw, route, exc) from None
    admission = await gw.admit(request, route, principal, None)
    return await gw.local(request, admission, service, route, raw)


async def _write(gw: svc.Gateway, request: Request, route: str) -> Response:
    """A write for the body's ``market``, served by the orders service of its writer region."""
    principal = await gw.authenticate(request, route)
    raw = await request.body()
    try:
        market = svc.market_of(svc.parse_object(raw))
    except exceptions.GatewayError as exc:
        raise svc.reject_body(gw, route, exc) from None
    admission = await gw.admit(request, route, principal, market)
    return await gw.write(request, admission, "orders", route, market, raw)


@router.post(
    CHECKOUTS,
    status_code=201,
    tags=["checkouts"],
    summary="Run a checkout in the market's write-primary region (forwarded when elsewhere)",
    openapi_extra=schemas.json_body(schemas.CHECKOUT),
    response_model=schemas.Passthrough,
)
async def checkout(request: Request, idempotency_key: IdemKey = None) -> Response:
    gw = get_gateway(request)
    return await _write(gw, request, CHECKOUTS)


PAYMENT_DETAILS: Final = "/v1/checkouts/{checkout_id}/payment-details"


@router.post(
    PAYMENT_DETAILS,
    tags=["checkouts"],
    summary="The shopper is back from 3-D Secure / a redirect: complete the checkout's payment "
    "in the market's write-primary region (forwarded when elsewhere)",
    openapi_extra=schemas.json_body(schemas.PAYMENT_DETAILS),
    response_model=schemas.Passthrough,
)
async def payment_details(
    checkout_id: CheckoutPath, request: Request, idempotency_key: IdemKey = None
) -> Response:
    """Like a checkout: the client's token, its rate limits, the market's writer. The orders
    service there checks that this principal owns the checkout, hands the details to payments
    and the checkout's saga learns the outcome from payments (then captures or voids). A
    checkout the writer does not hold (the market moved while the shopper was at the issuer)
    is completed in the region that created it (:meth:`svc.Gateway.details`)."""
    gw = get_gateway(request)
    principal = await gw.authenticate(request, PAYMENT_DETAILS)
    raw = await request.body()
    try:
        market = svc.market_of(svc.parse_object(raw))
    except exceptions.GatewayError as exc:
        raise svc.reject_body(gw, PAYMENT_DETAILS, exc) from None
    admission = await gw.admit(request, PAYMENT_DETAILS, principal, market)
    return await gw.details(request, admission, PAYMENT_DETAILS, market, raw)


WEBHOOKS: Final = "/v1/webhooks/{provider}"
ProviderPath = Annotated[str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


@router.post(
    WEBHOOKS,
    tags=["webhooks"],
    summary="A payment provider's webhook, passed to this region's payments service",
    response_model=schemas.Passthrough,
)
async def provider_webhook(provider: ProviderPath, request: Request) -> Response:
    """Providers send no JWT: the payments service verifies their own signature (Stripe's
    ``Stripe-Signature``, Adyen's HMAC in the body) over the body passed here byte for byte.
    Rate-limited per provider name like any client."""
    gw = get_gateway(request)
    principal = auth.Principal(client_id=f"psp:{provider}", subject=provider)
    raw = await request.body()
    admission = await gw.admit(request, WEBHOOKS, principal, None)
    admission = dataclasses.replace(admission, webhook=True)
    return await gw.local(request, admission, "payments", WEBHOOKS, raw)


@router.get(
    "/v1/orders/{checkout_id}",
    tags=["orders"],
    summary="An order (served by this region)",
    response_model=schemas.Passthrough,
)
async def get_order(checkout_id: CheckoutPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _read(gw, request, "orders", "/v1/orders/{checkout_id}")


@router.post(
    "/v1/carts",
    status_code=201,
    tags=["carts"],
    summary="New cart",
    openapi_extra=schemas.json_body(schemas.CART),
    response_model=schemas.Passthrough,
)
async def create_cart(request: Request) -> Response:
    gw = get_gateway(request)
    return await _local_body(gw, request, "cart", "/v1/carts")


@router.get(
    "/v1/carts/{cart_id}", tags=["carts"], summary="A cart", response_model=schemas.Passthrough
)
async def get_cart(cart_id: CartPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _read(gw, request, "cart", "/v1/carts/{cart_id}")


@router.put(
    "/v1/carts/{cart_id}/items/{sku}",
    tags=["carts"],
    summary="Set an item's quantity",
    openapi_extra=schemas.json_body(schemas.QUANTITY),
    response_model=schemas.Passthrough,
)
async def set_item(cart_id: CartPath, sku: SkuPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _local_body(gw, request, "cart", "/v1/carts/{cart_id}/items/{sku}")


@router.delete(
    "/v1/carts/{cart_id}/items/{sku}",
    tags=["carts"],
    summary="Remove an item",
    response_model=schemas.Passthrough,
)
async def remove_item(cart_id: CartPath, sku: SkuPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _read(gw, request, "cart", "/v1/carts/{cart_id}/items/{sku}")


@router.delete("/v1/carts/{cart_id}", status_code=204, tags=["carts"], summary="Delete a cart")
async def delete_cart(cart_id: CartPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _read(gw, request, "cart", "/v1/carts/{cart_id}")


@router.post(
    "/v1/quotes",
    status_code=201,
    tags=["pricing"],
    summary="Price a basket and freeze it as a snapshot",
    openapi_extra=schemas.json_body(schemas.QUOTE),
    response_model=schemas.Passthrough,
)
async def create_quote(request: Request) -> Response:
    gw = get_gateway(request)
    return await _local_body(gw, request, "pricing", "/v1/quotes")


@router.get(
    "/v1/quotes/{snapshot_id}",
    tags=["pricing"],
    summary="A pricing snapshot",
    response_model=schemas.Passthrough,
)
async def get_quote(snapshot_id: SnapshotPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _read(gw, request, "pricing", "/v1/quotes/{snapshot_id}")


@router.get(
    "/v1/stock/{sku}", tags=["stock"], summary="Stock of a SKU", response_model=schemas.Passthrough
)
async def get_stock(sku: SkuPath, request: Request) -> Response:
    gw = get_gateway(request)
    return await _read(gw, request, "inventory", "/v1/stock/{sku}")
