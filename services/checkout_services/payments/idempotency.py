"""Our own ``Idempotency-Key`` layer: the common one (Redis), with the payments' rules.

The record, keyed by the client's key, holds a hash of the request (method, path, body) and,
once done, the response (:mod:`checkout_services.common.idempotency`). Here it lives at least as
long as the longest PSP key window (7 days for Adyen by default; refused below 24 h). Same key +
different body -> 422; same key while the first is in flight -> 409 (both with the payments'
problem ``type``). A 5xx is not stored: the key is freed, and the retry is safe because every PSP
call below carries a key derived from the checkout. Which answers are stored is
``router.idempotent``'s choice (business 4xx such as 402 and 409 ``illegal-transition`` are).
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

from checkout_services.common import idempotency
from checkout_services.payments import exceptions

PREFIX: Final = "payments:idem:"
DEFAULT_TTL_SECONDS: Final = 7 * 24 * 3600
MIN_TTL_SECONDS: Final = 24 * 3600


class IdempotencyStore(idempotency.IdempotencyStore):
    reused_error = exceptions.IdempotencyKeyReused
    in_flight_error = exceptions.IdempotencyKeyInFlight

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
        super().__init__(
            redis, prefix=PREFIX, ttl_seconds=ttl_seconds, in_flight_seconds=in_flight_seconds
        )
