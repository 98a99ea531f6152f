"""Drop duplicate events by event id (consumers of replicated topics see events at least once).

MirrorMaker 2 and the transactional outbox both deliver at least once, and a consumer group moved
to another region re-reads the events after its last checkpoint. A consumer therefore applies an
event only through `Deduper.apply_once`, which claims the id before the handler runs and records
it as done after it succeeded:

* `MemoryWindow`: the last `capacity` ids in process memory (fast, lost on restart);
* `RedisSeenStore`: a durable ``seen`` set in Redis, one key per id with a TTL that must exceed
  the longest redelivery window (replication lag + checkpoint interval + retention of replays).

A claim is short-lived (``claim_ttl``): a consumer that crashes mid-handler leaves a claim that
expires, so the event is applied later rather than lost. A failed handler releases its claim.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

PENDING = b"pending"
DONE = b"done"

# Delete the key only when it still holds our pending claim (never a "done" mark).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class SeenStore(Protocol):
    async def claim(self, event_id: str) -> bool:
        """True when the id was neither done nor claimed, and is now claimed by the caller."""
        ...

    async def done(self, event_id: str) -> None:
        """Mark a claimed id as applied."""
        ...

    async def release(self, event_id: str) -> None:
        """Drop the caller's claim after a failed handler, so a redelivery applies it."""
        ...


@dataclass
class MemoryWindow:
    """The most recent ``capacity`` event ids of this process (oldest forgotten first)."""

    capacity: int = 100_000

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._ids: OrderedDict[str, bool] = OrderedDict()  # id -> done

    def __len__(self) -> int:
        return len(self._ids)

    async def claim(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = False
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    async def done(self, event_id: str) -> None:
        self._ids[event_id] = True
        self._ids.move_to_end(event_id)

    async def release(self, event_id: str) -> None:
        if self._ids.get(event_id) is False:
            del self._ids[event_id]


class RedisSeenStore:
    """A durable ``seen`` set: key ``<prefix>:<event id>`` = pending|done with a TTL."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        ttl_seconds: int = 7 * 24 * 3600,
        claim_ttl_seconds: int = 60,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must name the consumer (e.g. 'dedupe:orders-projection')")
        if ttl_seconds < 1 or claim_ttl_seconds < 1:
            raise ValueError("TTLs must be >= 1 s")
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._claim_ttl = claim_ttl_seconds
        self._release = client.register_script(_RELEASE)

    def key(self, event_id: str) -> str:
        return f"{self._prefix}:{event_id}"

    async def claim(self, event_id: str) -> bool:
        ok = await self._client.set(self.key(event_id), PENDING, nx=True, ex=self._claim_ttl)
        return bool(ok)

    async def done(self, event_id: str) -> None:
        await self._client.set(self.key(event_id), DONE, ex=self._ttl)

    async def release(self, event_id: str) -> None:
        await self._release(keys=[self.key(event_id)], args=[PENDING])


@dataclass
class Stats:
    applied: int = 0
    duplicates: int = 0


class Deduper:
    """Apply each event id at most once: a memory window in front of an optional durable store."""

    def __init__(self, durable: SeenStore | None = None, window: int = 100_000) -> None:
        self._window = MemoryWindow(window)
        self._durable = durable
        self.stats = Stats()

    async def apply_once(self, event_id: str, handler: Callable[[], Awaitable[None]]) -> bool:
        """Run ``handler`` unless ``event_id`` was already applied (or is being applied).

        Returns True when the handler ran. A handler that raises leaves the id unclaimed."""
        if not event_id:
            raise ValueError("an event without an id cannot be deduplicated")
        if not await self._window.claim(event_id):
            self.stats.duplicates += 1
            return False
        if self._durable is not None and not await self._durable.claim(event_id):
            await self._window.done(event_id)  # seen elsewhere: remember it here too
            self.stats.duplicates += 1
            return False
        try:
            await handler()
        except BaseException:
            await self._window.release(event_id)
            if self._durable is not None:
                await self._durable.release(event_id)
            raise
        await self._window.done(event_id)
        if self._durable is not None:
            await self._durable.done(event_id)
        self.stats.applied += 1
        return True
