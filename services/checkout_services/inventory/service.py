"""Reservations: tokens with a TTL, taken atomically against stock, released exactly once."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from prometheus_client import Counter

from checkout_contract import config
from checkout_services.common import outbox, write_guard
from checkout_services.inventory import exceptions, schemas

EVENT_NS = uuid.UUID("6f0b8a4e-2f53-4c1e-9a55-6b1c1d0e2a11")


def line_view(r: asyncpg.Record) -> schemas.ReservationLine:
    return schemas.ReservationLine(
        token=str(r["token"]),
        sku=r["sku"],
        quantity=r["quantity"],
        state=r["state"],
        expires_at=r["expires_at"],
    )


def view(checkout_id: str, rows: list[asyncpg.Record]) -> schemas.ReservationView:
    return schemas.ReservationView(
        checkout_id=checkout_id,
        market=rows[0]["market"],
        lines=[line_view(r) for r in sorted(rows, key=lambda r: r["sku"])],
    )


@dataclass
class InventoryService:
    pool: asyncpg.Pool
    region: config.RegionConfig
    guard: write_guard.WriteGuard
    expired_total: Counter

    async def set_stock(self, sku: str, available: int) -> schemas.StockView:
        async with self.pool.acquire() as conn, conn.transaction():
            # two first set_stocks of a new SKU would both see no row: serialize them, so each
            # delta is against the value it replaced
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('stock:' || $1))", sku)
            before = await conn.fetchval(
                "SELECT available FROM stock WHERE sku = $1 FOR UPDATE", sku
            )
            row = await conn.fetchrow(
                "INSERT INTO stock (sku, available) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE"
                " SET available = EXCLUDED.available, updated_at = now() RETURNING sku, available",
                sku,
                available,
            )
            await self._delta(conn, {sku: available - (before or 0)})
        return schemas.StockView(sku=row["sku"], available=row["available"])

    async def _delta(self, conn: Any, moves: dict[str, int]) -> None:
        """STOCK_DELTA (aggregate, mirrored to every region) in the caller's transaction, after
        its stock update (so a checkpoint's SHARE lock orders it: see ``checkpoint``)."""
        moves = {sku: d for sku, d in sorted(moves.items()) if d != 0}
        if not moves:
            return
        await outbox.enqueue(
            conn,
            topic=self.region.topics.stock_deltas,
            event_type="STOCK_DELTA",
            key=self.region.region,
            data={"region": self.region.region, "moves": moves},
        )

    async def checkpoint(self) -> uuid.UUID:
        """STOCK_CHECKPOINT: this region's true stock, at this point of its delta stream.

        ``LOCK stock IN SHARE MODE`` waits for every transaction that changed stock (and so
        wrote its delta) to commit, and holds new ones until this commits: every delta before
        the checkpoint in the stream is in the totals, none after it is."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE stock IN SHARE MODE")
            rows = await conn.fetch("SELECT sku, available FROM stock ORDER BY sku")
            return await outbox.enqueue(
                conn,
                topic=self.region.topics.stock_deltas,
                event_type="STOCK_CHECKPOINT",
                key=self.region.region,
                data={
                    "region": self.region.region,
                    "stock": {r["sku"]: r["available"] for r in rows},
                },
            )

    async def get_stock(self, sku: str) -> schemas.StockView:
        row = await self.pool.fetchrow("SELECT sku, available FROM stock WHERE sku = $1", sku)
        if row is None:
            raise exceptions.UnknownSku(f"unknown SKU {sku!r}", field="sku")
        return schemas.StockView(sku=row["sku"], available=row["available"])

    async def global_stock(self, sku: str) -> schemas.GlobalStockView:
        rows = await self.pool.fetch(
            "SELECT region, available FROM global_stock WHERE sku = $1 ORDER BY region", sku
        )
        if not rows:
            raise exceptions.UnknownSku(f"no region reported SKU {sku!r} yet", field="sku")
        regions = {r["region"]: int(r["available"]) for r in rows}
        return schemas.GlobalStockView(sku=sku, regions=regions, total=sum(regions.values()))

    async def _rows(self, conn: Any, checkout_id: str) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT * FROM reservations WHERE checkout_id = $1 ORDER BY sku", checkout_id
        )
        return rows

    async def _existing(self, conn: Any, checkout_id: str) -> list[asyncpg.Record]:
        """The checkout's reservation rows; 404 ``ReservationNotFound`` if it has none."""
        rows = await self._rows(conn, checkout_id)
        if not rows:
            raise exceptions.ReservationNotFound(f"no reservation for checkout {checkout_id}")
        return rows

    def _same(self, req: schemas.ReserveRequest, rows: list[asyncpg.Record]) -> None:
        wanted: dict[str, int] = defaultdict(int)
        for line in req.lines:
            wanted[line.sku] += line.quantity
        held = {r["sku"]: r["quantity"] for r in rows}
        if held != dict(wanted) or rows[0]["market"] != req.market:
            raise exceptions.ReservationMismatch(
                f"checkout {req.checkout_id} already reserved other lines",
                checkout_id=req.checkout_id,
            )
        if any(r["state"] in ("released", "expired") for r in rows):
            raise exceptions.ReservationEnded(
                f"the reservation of checkout {req.checkout_id} was released or expired",
                checkout_id=req.checkout_id,
            )

    async def reserve(self, req: schemas.ReserveRequest) -> tuple[bool, schemas.ReservationView]:
        # counted as in flight: a fenced keeper of this pod says "stopped" only after it ends
        with self.guard.writing(req.market):
            return await self._reserve(req)

    async def _reserve(self, req: schemas.ReserveRequest) -> tuple[bool, schemas.ReservationView]:
        """Reserve every line or none. Returns (created, view); a repeat returns the same."""
        self.guard.check(req.market)
        wanted: dict[str, int] = defaultdict(int)
        for line in req.lines:
            wanted[line.sku] += line.quantity
        existing = await self._rows(self.pool, req.checkout_id)
        if existing:
            self._same(req, existing)
            return False, view(req.checkout_id, existing)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for sku in sorted(wanted):
                    left = await conn.fetchval(
                        "UPDATE stock SET available = available - $2, updated_at = now()"
                        " WHERE sku = $1 AND available >= $2 RETURNING available",
                        sku,
                        wanted[sku],
                    )
                    if left is None:
                        if await conn.fetchval("SELECT 1 FROM stock WHERE sku = $1", sku) is None:
                            raise exceptions.UnknownSku(
                                f"unknown SKU {sku!r}", field="lines", sku=sku
                            )
                        raise exceptions.OutOfStock(
                            f"not enough stock of {sku} for {wanted[sku]}", sku=sku
                        )
                await self._delta(conn, {sku: -q for sku, q in wanted.items()})
                skus = sorted(wanted)
                rows = await conn.fetch(
                    "INSERT INTO reservations"
                    " (token, checkout_id, market, sku, quantity, state, expires_at)"
                    " SELECT t, $2, $3, s, q, 'held', now() + make_interval(secs => $4)"
                    " FROM unnest($1::uuid[], $5::text[], $6::int[]) AS x(t, s, q)"
                    " RETURNING *",
                    [uuid.uuid4() for _ in skus],
                    req.checkout_id,
                    req.market,
                    float(req.ttl_seconds),
                    skus,
                    [wanted[s] for s in skus],
                )
        except asyncpg.UniqueViolationError:
            # a concurrent request for the same checkout won: answer what it reserved
            existing = await self._rows(self.pool, req.checkout_id)
            self._same(req, existing)
            return False, view(req.checkout_id, existing)
        return True, view(req.checkout_id, list(rows))

    async def get(self, checkout_id: str) -> schemas.ReservationView:
        return view(checkout_id, await self._existing(self.pool, checkout_id))

    async def release(self, checkout_id: str) -> schemas.ReservationView:
        """Give held stock back (a compensation): idempotent, a second call changes nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._existing(conn, checkout_id)
            freed = await conn.fetch(
                "UPDATE reservations SET state = 'released', ended_at = now()"
                " WHERE checkout_id = $1 AND state = 'held' RETURNING sku, quantity",
                checkout_id,
            )
            await self._restock(conn, freed)
            rows = await self._rows(conn, checkout_id)
        return view(checkout_id, rows)

    async def commit(self, checkout_id: str) -> schemas.ReservationView:
        """The order is placed: the stock is sold (held -> committed); idempotent."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self._existing(conn, checkout_id)
            if any(r["state"] in ("released", "expired") for r in rows):
                raise exceptions.ReservationEnded(
                    f"the reservation of checkout {checkout_id} was released or expired",
                    checkout_id=checkout_id,
                )
            await conn.execute(
                "UPDATE reservations SET state = 'committed', ended_at = now()"
                " WHERE checkout_id = $1 AND state = 'held'",
                checkout_id,
            )
            rows = await self._rows(conn, checkout_id)
        return view(checkout_id, rows)

    async def _restock(self, conn: Any, freed: list[asyncpg.Record]) -> None:
        per_sku: dict[str, int] = defaultdict(int)
        for r in freed:
            per_sku[r["sku"]] += r["quantity"]
        for sku in sorted(per_sku):
            await conn.execute(
                "UPDATE stock SET available = available + $2, updated_at = now() WHERE sku = $1",
                sku,
                per_sku[sku],
            )
        await self._delta(conn, dict(per_sku))

    async def sweep(self, limit: int = 500) -> int:
        """Expire held reservations past their TTL, each exactly once: the row moves out of
        'held' in the same transaction that restocks and writes RESERVATION_EXPIRED to the
        outbox (SKIP LOCKED lets several sweepers run)."""
        async with self.pool.acquire() as conn, conn.transaction():
            expired = await conn.fetch(
                "UPDATE reservations SET state = 'expired', ended_at = now()"
                " WHERE state = 'held' AND token IN ("
                "  SELECT token FROM reservations WHERE state = 'held' AND expires_at < now()"
                "  ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
                " RETURNING token, checkout_id, market, sku, quantity, expires_at",
                limit,
            )
            await self._restock(conn, expired)
            for r in expired:
                await outbox.enqueue(
                    conn,
                    topic=self.region.topics.reservation_expired_dlq,
                    event_type="RESERVATION_EXPIRED",
                    key=r["checkout_id"],
                    event_id=uuid.uuid5(EVENT_NS, f"expired:{r['token']}"),
                    data={
                        "token": str(r["token"]),
                        "checkoutId": r["checkout_id"],
                        "market": r["market"],
                        "sku": r["sku"],
                        "quantity": r["quantity"],
                        "expiresAt": r["expires_at"].isoformat(),
                    },
                )
        if expired:
            self.expired_total.inc(len(expired))
        return len(expired)
