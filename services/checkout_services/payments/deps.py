"""FastAPI dependencies (async: a sync dependency costs a threadpool hop per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from checkout_services.payments.service import PaymentsService


async def get_service(request: Request) -> PaymentsService:
    service: PaymentsService = request.app.state.service
    return service


Service = Annotated[PaymentsService, Depends(get_service)]
