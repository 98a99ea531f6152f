"""Request and response bodies of the cart API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from checkout_services.common import ids, money

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=ids.SKU)]
Market = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCart(Strict):
    market: Market
    currency: Currency

    def supported(self) -> bool:
        return self.currency in money.SUPPORTED


class SetQuantity(Strict):
    quantity: int = Field(ge=1, le=999)


class Item(Strict):
    sku: str
    quantity: int


class CartView(Strict):
    cart_id: str
    market: str
    currency: str
    items: list[Item]
    expires_in_seconds: int
