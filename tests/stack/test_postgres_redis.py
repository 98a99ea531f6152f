"""PostgreSQL and Redis of the local stack do real work."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack


async def test_sql_round_trip_in_a_fresh_database(postgres: Postgres) -> None:
    dsn = postgres.create_database(f"smoke_{uuid.uuid4().hex[:8]}")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, amount_minor bigint NOT NULL,"
            " currency char(3) NOT NULL)"
        )
        await conn.execute("INSERT INTO orders VALUES ($1, $2, $3)", 1, 1999, "EUR")
        row = await conn.fetchrow("SELECT amount_minor, currency FROM orders WHERE id = 1")
        assert row is not None
        assert (row["amount_minor"], row["currency"]) == (1999, "EUR")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO orders VALUES ($1, $2, $3)", 1, 5, "USD")
    finally:
        await conn.close()


def test_create_database_rejects_bad_names(postgres: Postgres) -> None:
    with pytest.raises(ValueError, match="must match"):
        postgres.create_database('x"; DROP DATABASE postgres; --')


async def test_superuser_dsn_reaches_the_server(postgres: Postgres) -> None:
    conn = await asyncpg.connect(postgres.dsn)
    try:
        assert await conn.fetchval("SELECT current_setting('server_version_num')::int") >= 150000
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await conn.close()


async def test_redis_set_get(redis: Redis) -> None:
    client = aioredis.from_url(redis.url)
    try:
        key = f"smoke:{uuid.uuid4().hex}"
        assert await client.set(key, "42", nx=True)
        assert not await client.set(key, "43", nx=True)
        assert await client.get(key) == b"42"
        assert await client.incr(key) == 43
    finally:
        await client.aclose()
