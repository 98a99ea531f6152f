"""Request and response bodies of the inventory API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from checkout_services.common import ids

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=ids.SKU)]
CheckoutId = Annotated[str, Field(min_length=1, max_length=64, pattern=ids.ID)]
Market = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StockLevel(Strict):
    available: int = Field(ge=0, le=1_000_000_000)


class StockView(Strict):
    sku: str
    available: int


class GlobalStockView(Strict):
    """The region's global view of one SKU: what each region has available, as mirrored
    (read only; reservations stay local and authoritative)."""

    sku: str
    regions: dict[str, int]
    total: int


class Line(Strict):
    sku: Sku
    quantity: int = Field(ge=1, le=10_000)


class ReserveRequest(Strict):
    checkout_id: CheckoutId
    market: Market
    lines: list[Line] = Field(min_length=1, max_length=100)
    ttl_seconds: int = Field(default=900, ge=1, le=86_400)


class ReservationLine(Strict):
    token: str
    sku: str
    quantity: int
    state: Literal["held", "committed", "released", "expired"]
    expires_at: datetime


class ReservationView(Strict):
    checkout_id: str
    market: str
    lines: list[ReservationLine]


class SweepReport(Strict):
    expired: int
