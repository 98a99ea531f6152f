"""FastAPI dependencies (async: a sync dependency costs a threadpool hop per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from checkout_services.common import idempotency
from checkout_services.orders.service import OrdersService


async def get_service(request: Request) -> OrdersService:
    service: OrdersService = request.app.state.service
    return service


async def get_idem(request: Request) -> idempotency.IdempotencyStore:
    store: idempotency.IdempotencyStore = request.app.state.idem
    return store


Service = Annotated[OrdersService, Depends(get_service)]
Idem = Annotated[idempotency.IdempotencyStore, Depends(get_idem)]
