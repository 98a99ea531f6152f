"""Carts in Redis: one hash per cart (``_market``, ``_currency``, ``i:<sku>`` -> quantity) with
a TTL that every change renews. Item changes are Lua scripts: atomic, and never resurrect an
expired cart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis

from checkout_services.cart import exceptions, schemas
from checkout_services.common import ids

PREFIX: Final = "cart:"
MAX_ITEMS: Final = 100


def cart_key(cart_id: str, owner: str | None) -> str:
    """The Redis key of a cart: under its owner's tag (principal.tag), so a cart id is no bearer
    token: another principal's request for it finds nothing (404). ``None``: the check is off."""
    return PREFIX + (f"{owner}:{cart_id}" if owner else cart_id)


SET_ITEM: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local field = 'i:' .. ARGV[1]
local full = redis.call('HLEN', KEYS[1]) - 2 >= tonumber(ARGV[4])
if full and redis.call('HEXISTS', KEYS[1], field) == 0 then return -2 end
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], field, ARGV[2])
else
  redis.call('HDEL', KEYS[1], field)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass
class CartService:
    redis: aioredis.Redis
    ttl_seconds: int

    async def create(self, req: schemas.CreateCart, owner: str | None = None) -> schemas.CartView:
        cart_id = ids.new()
        key = cart_key(cart_id, owner)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"_market": req.market, "_currency": req.currency})
            pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
        return await self.get(cart_id, owner)

    async def get(self, cart_id: str, owner: str | None = None) -> schemas.CartView:
        key = cart_key(cart_id, owner)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.ttl(key)
            raw, ttl = await pipe.execute()
        if not raw:
            raise exceptions.CartNotFound(f"cart {cart_id} does not exist or expired")
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        items = sorted(
            (schemas.Item(sku=k[2:], quantity=int(v)) for k, v in fields.items() if k[:2] == "i:"),
            key=lambda i: i.sku,
        )
        return schemas.CartView(
            cart_id=cart_id,
            market=fields["_market"],
            currency=fields["_currency"],
            items=items,
            expires_in_seconds=max(int(ttl), 0),
        )

    async def set_item(
        self, cart_id: str, sku: str, quantity: int, owner: str | None = None
    ) -> schemas.CartView:
        key = cart_key(cart_id, owner)
        done = await self.redis.eval(
            SET_ITEM, 1, key, sku, str(quantity), str(self.ttl_seconds), str(MAX_ITEMS)
        )
        if done == -1:
            raise exceptions.CartNotFound(f"cart {cart_id} does not exist or expired")
        if done == -2:
            raise exceptions.CartFull(f"a cart holds at most {MAX_ITEMS} distinct items")
        return await self.get(cart_id, owner)

    async def delete(self, cart_id: str, owner: str | None = None) -> None:
        if not await self.redis.delete(cart_key(cart_id, owner)):
            raise exceptions.CartNotFound(f"cart {cart_id} does not exist or expired")
