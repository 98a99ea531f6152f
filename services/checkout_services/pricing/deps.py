"""FastAPI dependencies (async: a sync dependency costs a threadpool hop per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from checkout_services.pricing.service import PricingService


async def get_service(request: Request) -> PricingService:
    service: PricingService = request.app.state.service
    return service


Service = Annotated[PricingService, Depends(get_service)]
