"""The durable dedupe store on a real Redis: shared between consumers, survives a restart."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from checkout_services.common.dedupe import Deduper, RedisSeenStore
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack


async def test_two_consumers_apply_each_event_once(redis: Redis) -> None:
    client = aioredis.from_url(redis.url)
    prefix = f"dedupe:test-{uuid.uuid4().hex[:8]}"
    applied: list[str] = []
    try:
        # two consumers (e.g. before and after a failover), each with its own memory window
        consumers = [Deduper(RedisSeenStore(client, prefix, ttl_seconds=60)) for _ in range(2)]
        ids = [f"evt-{i}" for i in range(500)]

        async def run(dedupe: Deduper, order: list[str]) -> None:
            for event_id in order:

                async def handler(event_id: str = event_id) -> None:
                    await asyncio.sleep(0)
                    applied.append(event_id)

                await dedupe.apply_once(event_id, handler)

        await asyncio.gather(run(consumers[0], ids), run(consumers[1], list(reversed(ids))))
        assert sorted(applied) == sorted(ids)
        assert sum(c.stats.duplicates for c in consumers) == len(ids)
        # a restarted consumer (empty memory) still drops them
        fresh = Deduper(RedisSeenStore(client, prefix, ttl_seconds=60))
        await run(fresh, ids[:50])
        assert fresh.stats.applied == 0
        assert fresh.stats.duplicates == 50
        assert await client.ttl(f"{prefix}:evt-0") > 0
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_failed_handler_releases_only_its_own_claim(redis: Redis) -> None:
    client = aioredis.from_url(redis.url)
    prefix = f"dedupe:test-{uuid.uuid4().hex[:8]}"
    store = RedisSeenStore(client, prefix, ttl_seconds=60, claim_ttl_seconds=5)
    try:

        async def boom() -> None:
            raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            await Deduper(store).apply_once("e1", boom)
        assert await client.exists(store.key("e1")) == 0

        async def ok() -> None:
            return None

        assert await Deduper(store).apply_once("e1", ok) is True
        await store.release("e1")  # a done mark is never released
        assert await client.get(store.key("e1")) == b"done"
    finally:
        await client.delete(store.key("e1"))
        await client.aclose()
