"""FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from checkout_services.gateway.service import Gateway


def get_gateway(request: Request) -> Gateway:
    """The app's gateway (called directly by the routes: no per-request dependency solving)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Passed on unchanged, also to the writer region's gateway: a retry through "
        "any region finds the same idempotency record.",
    ),
]
