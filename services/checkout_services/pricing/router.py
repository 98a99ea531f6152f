"""HTTP routes of the pricing service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from checkout_services.common import errors, ids, principal
from checkout_services.pricing import schemas
from checkout_services.pricing.deps import Service

router = APIRouter(responses=errors.PROBLEM_RESPONSES, tags=["pricing"])
SnapshotPath = Annotated[str, Path(min_length=32, max_length=32, pattern=ids.MADE)]


@router.post(
    "/v1/quotes",
    response_model=schemas.Quote,
    status_code=201,
    summary="Price a basket (lines, promotion, shipping, tax) and freeze it as a snapshot",
)
async def create_quote(
    body: schemas.QuoteRequest, svc: Service, caller: principal.CallerDep
) -> schemas.Quote:
    return await svc.quote(body, caller.tag)


@router.get(
    "/v1/quotes/{snapshot_id}",
    response_model=schemas.Quote,
    summary="A pricing snapshot, while it has not expired",
)
async def get_quote(
    snapshot_id: SnapshotPath, svc: Service, caller: principal.CallerDep
) -> schemas.Quote:
    return await svc.snapshot(snapshot_id, caller.tag)
