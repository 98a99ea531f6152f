"""PostgreSQL (asyncpg) pool and the ``migrate`` step: plain ordered SQL files.

Each package that owns tables keeps ``migrations/NNN_name.sql``; ``migrate`` applies the ones
not applied yet, in name order, each once, in one transaction under an advisory lock (so
several replicas starting together are safe). Applied files are recorded in
``schema_migrations`` as ``<package>/<file>``.
"""

from __future__ import annotations

from importlib import resources

import asyncpg  # type: ignore[import-untyped]

MIGRATION_LOCK = 0x0C0E_3E17
COMMON_MIGRATIONS = "checkout_services.common.migrations"


class LeanConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset query.

    By default every release sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` - one more round trip for every ``pool.fetchrow``. The services never hold
    session state (no session advisory locks, cursors, LISTEN or SET; migrations use
    transaction-scoped locks), so there is nothing to reset. An open transaction is still
    rolled back on release (asyncpg always does that).
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"timezone": "UTC"},
        connection_class=LeanConnection,
    )
    return pool


async def migrate(pool: asyncpg.Pool, *packages: str) -> list[str]:
    """Apply the pending migrations of ``packages`` (in the order given); return those applied."""
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for package in packages:
            files = sorted(
                (f for f in resources.files(package).iterdir() if f.name.endswith(".sql")),
                key=lambda f: f.name,
            )
            for f in files:
                version = f"{package}/{f.name}"
                if version in done:
                    continue
                await conn.execute(f.read_text())
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied.append(version)
    return applied
