"""Per-client and per-market token buckets, and the bot-like velocity counter, in Redis.

One Lua script does all of it atomically in one round trip: both buckets are refilled from the
elapsed time (Redis' own clock, so gateway replicas agree), a request takes one token from each
bucket only if both have one, and a per-client counter over a short fixed window flags bot-like
velocity. Buckets expire once they would be full again, so idle clients cost nothing.

Failed authentications have a bucket of their own per client address (:class:`AuthFailures`):
each failure takes a token, and an address with none left gets 429 before its token is even
looked at, so guessing tokens or keys costs the guesser time, not the gateway CPU.

Redis down: every check raises, and the app answers 503 + Retry-After (fail closed: no
request is admitted unmetered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import redis.asyncio as aioredis

from checkout_services.gateway.config import RateLimit

SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function bucket(key, rate, burst)
  if key == '' then return burst, 0 end
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil then
    tokens = burst
  else
    tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  end
  return tokens, 0
end
local crate, cburst = tonumber(ARGV[1]), tonumber(ARGV[2])
local mrate, mburst = tonumber(ARGV[3]), tonumber(ARGV[4])
local window, market = tonumber(ARGV[5]), ARGV[6]
local ctokens = bucket(KEYS[1], crate, cburst)
local mtokens = mburst
if market ~= '' then mtokens = bucket(KEYS[2], mrate, mburst) end
local velocity = redis.call('INCR', KEYS[3])
if velocity == 1 then redis.call('PEXPIRE', KEYS[3], window) end
if ctokens < 1 then
  return {0, 1, math.ceil((1 - ctokens) * 1000 / crate), velocity}
end
if mtokens < 1 then
  return {0, 2, math.ceil((1 - mtokens) * 1000 / mrate), velocity}
end
redis.call('HSET', KEYS[1], 'tokens', ctokens - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(cburst * 1000 / crate) + 1000)
if market ~= '' then
  redis.call('HSET', KEYS[2], 'tokens', mtokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(mburst * 1000 / mrate) + 1000)
end
return {1, 0, 0, velocity}
"""

PREFIX: Final = "gw:"

AUTH_FAILURE_SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, take = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
if tokens == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - tonumber(v[2])) * rate / 1000)
end
if tokens < 1 then return math.ceil((1 - tokens) * 1000 / rate) end
if take then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
end
return 0
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    scope: str
    """``client`` or ``market`` when refused, empty when allowed."""
    retry_after_s: int
    velocity: int
    """Requests of this client in the current velocity window (this one included)."""


class Limiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        client: RateLimit,
        market: RateLimit,
        bot_window_ms: int,
    ) -> None:
        self.redis = redis
        self.client = client
        self.market = market
        self.bot_window_ms = bot_window_ms
        self._script = redis.register_script(SCRIPT)

    async def take(self, client_id: str, market: str | None) -> Verdict:
        keys = [
            f"{PREFIX}c:{client_id}",
            f"{PREFIX}m:{market}" if market else f"{PREFIX}m:-",
            f"{PREFIX}v:{client_id}",
        ]
        args: list[str | int | float] = [
            self.client.rate,
            self.client.burst,
            self.market.rate,
            self.market.burst,
            self.bot_window_ms,
            market or "",
        ]
        allowed, scope, retry_ms, velocity = await self._script(keys=keys, args=args)
        return Verdict(
            allowed=bool(allowed),
            scope={0: "", 1: "client", 2: "market"}[int(scope)],
            retry_after_s=max(1, math.ceil(int(retry_ms) / 1000)) if not allowed else 0,
            velocity=int(velocity),
        )


class AuthFailures:
    """A token bucket of failed authentications per client address."""

    def __init__(self, redis: aioredis.Redis, limit: RateLimit) -> None:
        self.limit = limit
        self._script = redis.register_script(AUTH_FAILURE_SCRIPT)

    async def _run(self, address: str, take: bool) -> int:
        wait_ms = await self._script(
            keys=[f"{PREFIX}a:{address}"],
            args=[self.limit.rate, self.limit.burst, "1" if take else "0"],
        )
        return max(1, math.ceil(int(wait_ms) / 1000)) if int(wait_ms) else 0

    async def blocked(self, address: str) -> int:
        """Seconds to wait when ``address`` has no failure left, else 0 (takes nothing)."""
        return await self._run(address, take=False)

    async def failed(self, address: str) -> int:
        """Record one failure; seconds to wait when there was none left to take, else 0."""
        return await self._run(address, take=True)
