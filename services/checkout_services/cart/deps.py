"""FastAPI dependencies (async: a sync dependency costs a threadpool hop per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from checkout_services.cart.service import CartService


async def get_service(request: Request) -> CartService:
    service: CartService = request.app.state.service
    return service


Service = Annotated[CartService, Depends(get_service)]
