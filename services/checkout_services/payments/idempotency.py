"""Our own ``Idempotency-Key`` layer (Redis), exactly as the design says.

The record, keyed by the client's key, holds a hash of the request (method, path, body) and,
once done, the response. It lives at least as long as the longest PSP key window (7 days for
Adyen by default). Same key + different body -> 422; same key while the first is in flight ->
409. A 5xx is not stored: the key is freed, and the retry is safe because every PSP call below
carries a key derived from the checkout.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis

from checkout_services.payments import exceptions

PREFIX: Final = "payments:idem:"
DEFAULT_TTL_SECONDS: Final = 7 * 24 * 3600
MIN_TTL_SECONDS: Final = 24 * 3600

RELEASE_SCRIPT: Final = """
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then return redis.call('DEL', KEYS[1]) end
return 0
"""


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path} {canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    status: int
    body: Any


@dataclass(frozen=True)
class Claim:
    key: str
    fingerprint: str
    token: str


class IdempotencyStore:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        in_flight_seconds: int = 30,
    ) -> None:
        if ttl_seconds < MIN_TTL_SECONDS:
            raise ValueError(
                f"idempotency TTL {ttl_seconds}s is shorter than the PSP window (24 h)"
            )
        self.redis = redis
        self.ttl = ttl_seconds
        self.in_flight = in_flight_seconds

    async def begin(self, key: str, fp: str) -> Claim | Stored:
        """Claim the key (proceed), or get the stored response (replay), or raise 409/422."""
        rkey = PREFIX + key
        token = secrets.token_hex(8)
        record = json.dumps({"s": "in_flight", "h": fp, "t": token})
        for _ in range(3):
            if await self.redis.set(rkey, record, nx=True, ex=self.in_flight):
                return Claim(key, fp, token)
            raw = await self.redis.get(rkey)
            if raw is None:
                continue  # expired between SET and GET
            existing = json.loads(raw)
            if existing["h"] != fp:
                raise exceptions.IdempotencyKeyReused()
            if existing["s"] == "in_flight":
                raise exceptions.IdempotencyKeyInFlight()
            return Stored(existing["status"], existing["body"])
        raise exceptions.IdempotencyKeyInFlight()

    async def complete(self, claim: Claim, status: int, body: Any) -> None:
        record = json.dumps({"s": "done", "h": claim.fingerprint, "status": status, "body": body})
        await self.redis.set(PREFIX + claim.key, record, ex=self.ttl)

    async def release(self, claim: Claim) -> None:
        """Free the key (the request failed in a way worth retrying)."""
        await self.redis.eval(RELEASE_SCRIPT, 1, PREFIX + claim.key, claim.token)
