"""``Idempotency-Key`` on POSTs (Redis), shared by the checkout services.

The record holds a hash of (method, path, body) and, once done, the response. Keys are scoped
to the caller (:mod:`principal`): the Redis key carries the caller's tag, so a client can
neither read another client's stored response nor block its key. Same key +
different request -> 422; same key while the first is in flight -> 409 (+ Retry-After); done ->
the stored response again (header ``Idempotent-Replayed: true``). 5xx answers are not stored: the
key is freed and a retry runs again (every step below is idempotent by checkout id).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final

import redis.asyncio as aioredis
from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response

from checkout_services.common import errors

DEFAULT_TTL_SECONDS: Final = 24 * 3600

RELEASE_SCRIPT: Final = """
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then return redis.call('DEL', KEYS[1]) end
return 0
"""

IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Client idempotency key: same key + same body -> the stored response; "
        "same key + another body -> 422; while the first is running -> 409.",
    ),
]


class IdempotencyKeyReused(errors.ProblemError):
    status, slug, title = (
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused with another request",
    )

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was first used with a different request body or path",
            field="Idempotency-Key",
        )


class IdempotencyKeyInFlight(errors.ProblemError):
    status, slug, title = 409, "idempotency-key-in-flight", "Request with this key in progress"
    retry_after = 1

    def __init__(self) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still in progress; retry later",
            field="Idempotency-Key",
        )


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
    """The Redis records under ``prefix``. A service whose problems carry its own ``type``
    (``.../problems/<service>/...``) subclasses the two errors and sets them here."""

    reused_error: ClassVar[type[errors.ProblemError]] = IdempotencyKeyReused
    in_flight_error: ClassVar[type[errors.ProblemError]] = IdempotencyKeyInFlight

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        in_flight_seconds: int = 30,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.in_flight = in_flight_seconds

    async def begin(self, key: str, fp: str) -> Claim | Stored:
        rkey = self.prefix + key
        token = secrets.token_hex(8)
        record = json.dumps({"s": "in_flight", "h": fp, "t": token})
        for _ in range(3):
            if await self.redis.set(rkey, record, nx=True, ex=self.in_flight):
                return Claim(key, fp, token)
            raw = await self.redis.get(rkey)
            if raw is None:
                continue
            existing = json.loads(raw)
            if existing["h"] != fp:
                raise self.reused_error()
            if existing["s"] == "in_flight":
                raise self.in_flight_error()
            return Stored(existing["status"], existing["body"])
        raise self.in_flight_error()

    async def complete(self, claim: Claim, status: int, body: Any) -> None:
        record = json.dumps({"s": "done", "h": claim.fingerprint, "status": status, "body": body})
        await self.redis.set(self.prefix + claim.key, record, ex=self.ttl)

    async def release(self, claim: Claim) -> None:
        await self.redis.eval(RELEASE_SCRIPT, 1, self.prefix + claim.key, claim.token)


async def run(
    store: IdempotencyStore,
    request: Request,
    key: str | None,
    body: Any,
    handler: Callable[[], Awaitable[tuple[int, Any]]],
    scope: str | None = None,
) -> Response:
    """Run ``handler`` (-> status, JSON payload) under the client's key, if one was sent;
    ``scope`` (the caller's tag) namespaces the key."""
    if key is None:
        status, payload = await handler()
        return JSONResponse(payload, status_code=status)
    if scope is not None:
        key = f"{scope}:{key}"
    got = await store.begin(key, fingerprint(request.method, request.url.path, body))
    if isinstance(got, Stored):
        media = errors.PROBLEM if got.status >= 400 else "application/json"
        return JSONResponse(
            got.body,
            status_code=got.status,
            media_type=media,
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        status, payload = await handler()
    except errors.ProblemError as err:
        if err.status < 500 and err.status != 409:
            await store.complete(got, err.status, err.problem(request.url.path))
        else:
            await store.release(got)
        raise
    except BaseException:
        await store.release(got)
        raise
    await store.complete(got, status, payload)
    return JSONResponse(payload, status_code=status)
