"""PostgreSQL (asyncpg): migrations applied at startup, and the queries the operations use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from checkout_services.common import db as common_db
from checkout_services.payments.state_machine import PaymentState

MIGRATION_LOCK = 0x70AE_3E17


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"timezone": "UTC"},
        connection_class=common_db.LeanConnection,  # no reset round trip per release
    )
    return pool


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply the SQL files in ``migrations/`` not applied yet, in name order, each once."""
    applied: list[str] = []
    files = sorted(
        (
            f
            for f in resources.files("checkout_services.payments.migrations").iterdir()
            if f.name.endswith(".sql")
        ),
        key=lambda f: f.name,
    )
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for f in files:
            if f.name in done:
                continue
            await conn.execute(f.read_text())
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", f.name)
            applied.append(f.name)
    return applied


@dataclass(frozen=True)
class Payment:
    checkout_id: str
    amount: int
    currency: str
    country: str
    payment_method: str
    state: PaymentState
    provider: str | None
    provider_type: str | None
    endpoint: str | None
    account: str | None
    psp_reference: str | None
    captured_amount: int
    refunded_amount: int
    decline_class: str | None
    decline_reason: str | None
    action: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    method_token: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Payment:
        return cls(
            checkout_id=row["checkout_id"],
            amount=row["amount"],
            currency=row["currency"],
            country=row["country"],
            payment_method=row["payment_method"],
            state=PaymentState(row["state"]),
            provider=row["provider"],
            provider_type=row["provider_type"],
            endpoint=row["endpoint"],
            account=row["account"],
            psp_reference=row["psp_reference"],
            captured_amount=row["captured_amount"],
            refunded_amount=row["refunded_amount"],
            decline_class=row["decline_class"],
            decline_reason=row["decline_reason"],
            action=json.loads(row["action"]) if row["action"] else None,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            method_token=json.loads(row["method_token"]) if row["method_token"] else None,
        )


@dataclass(frozen=True)
class Attempt:
    id: int
    checkout_id: str
    operation: str
    attempt_scope: str
    provider: str
    provider_type: str
    endpoint: str
    account: str
    psp_idempotency_key: str
    amount: int | None
    status: str
    failure_class: str | None
    psp_reference: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Attempt:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})


AttemptUpdate = tuple[int, str, str | None, str | None, str | None]
"""(attempt id, status, failure_class, psp_reference, detail)."""

PAYMENT_COLS = (
    "checkout_id, amount, currency, country, payment_method, state, provider, provider_type, "
    "endpoint, account, psp_reference, captured_amount, refunded_amount, decline_class, "
    "decline_reason, action, created_at, updated_at, method_token"
)
ATTEMPT_COLS = (
    "id, checkout_id, operation, attempt_scope, provider, provider_type, endpoint, account, "
    "psp_idempotency_key, amount, status, failure_class, psp_reference"
)


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, checkout_id: str) -> Payment | None:
        row = await self.pool.fetchrow(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE checkout_id = $1", checkout_id
        )
        return Payment.of(row) if row else None

    async def create_or_get(
        self, *, checkout_id: str, amount: int, currency: str, country: str, method: str
    ) -> Payment:
        row = await self.pool.fetchrow(
            f"""
            WITH ins AS (
              INSERT INTO payments (checkout_id, amount, currency, country, payment_method, state)
              VALUES ($1, $2, $3, $4, $5, 'pending')
              ON CONFLICT (checkout_id) DO NOTHING
              RETURNING {PAYMENT_COLS}
            )
            SELECT {PAYMENT_COLS} FROM ins
            UNION ALL
            SELECT {PAYMENT_COLS} FROM payments WHERE checkout_id = $1
            LIMIT 1
            """,
            checkout_id,
            amount,
            currency,
            country,
            method,
        )
        assert row is not None
        return Payment.of(row)

    async def acquire_lease(self, checkout_id: str, owner: str, seconds: float) -> bool:
        row = await self.pool.fetchrow(
            """
            UPDATE payments SET lease_owner = $2,
                   lease_until = now() + make_interval(secs => $3)
             WHERE checkout_id = $1 AND (lease_until IS NULL OR lease_until < now()
                                         OR lease_owner = $2)
            RETURNING checkout_id
            """,
            checkout_id,
            owner,
            seconds,
        )
        return row is not None

    async def release_lease(self, checkout_id: str, owner: str) -> None:
        await self.pool.execute(
            "UPDATE payments SET lease_owner = NULL, lease_until = NULL"
            " WHERE checkout_id = $1 AND lease_owner = $2",
            checkout_id,
            owner,
        )

    async def transition(
        self,
        checkout_id: str,
        expected: PaymentState,
        target: PaymentState,
        *,
        attempt: AttemptUpdate | None = None,
        release_owner: str | None = None,
        **fields: Any,
    ) -> Payment | None:
        """Compare-and-set the state (the caller checked legality); None if it moved meanwhile.

        With ``attempt``, the attempt's outcome is written in the same statement (one commit).
        """
        sets = ["state = $3", "updated_at = now()"]
        args: list[Any] = [checkout_id, expected.value, target.value]
        for name, value in fields.items():
            args.append(json.dumps(value) if name == "action" and value is not None else value)
            sets.append(f"{name} = ${len(args)}")
        if target == PaymentState.AUTHORIZED:
            sets.append("authorized_at = now()")
        if release_owner is not None:
            args.append(release_owner)
            n = len(args)
            sets.append(
                f"lease_owner = CASE WHEN lease_owner = ${n} THEN NULL ELSE lease_owner END"
            )
            sets.append(
                f"lease_until = CASE WHEN lease_owner = ${n} THEN NULL ELSE lease_until END"
            )
        prefix = ""
        if attempt is not None:
            n = len(args)
            args.extend(attempt)
            prefix = (
                f"WITH a AS (UPDATE psp_attempts SET status = ${n + 2},"
                f" failure_class = COALESCE(${n + 3}, failure_class),"
                f" psp_reference = COALESCE(${n + 4}, psp_reference), detail = ${n + 5},"
                f" updated_at = now() WHERE id = ${n + 1}) "
            )
        row = await self.pool.fetchrow(
            f"{prefix}UPDATE payments SET {', '.join(sets)} WHERE checkout_id = $1 AND state = $2"
            f" RETURNING {PAYMENT_COLS}",
            *args,
        )
        return Payment.of(row) if row else None

    async def claim(
        self,
        *,
        checkout_id: str,
        amount: int,
        currency: str,
        country: str,
        method: str,
        owner: str,
        lease_seconds: float,
        method_token: dict[str, Any] | None = None,
    ) -> tuple[Payment | None, bool]:
        """Create the payment or take its lease, in one statement.

        Returns (payment, created); (None, False) when another request holds the lease.
        """
        row = await self.pool.fetchrow(
            f"""
            INSERT INTO payments (checkout_id, amount, currency, country, payment_method, state,
                                  lease_owner, lease_until, method_token)
            VALUES ($1, $2, $3, $4, $5, 'pending', $6, now() + make_interval(secs => $7),
                    $8::jsonb)
            ON CONFLICT (checkout_id) DO UPDATE
               SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until
             WHERE payments.lease_until IS NULL OR payments.lease_until < now()
            RETURNING {PAYMENT_COLS}, (xmax = 0) AS created
            """,
            checkout_id,
            amount,
            currency,
            country,
            method,
            owner,
            lease_seconds,
            json.dumps(method_token) if method_token is not None else None,
        )
        if row is None:
            return None, False
        return Payment.of(row), bool(row["created"])

    async def attempts(self, checkout_id: str, operation: str | None = None) -> list[Attempt]:
        rows = await self.pool.fetch(
            f"SELECT {ATTEMPT_COLS} FROM psp_attempts WHERE checkout_id = $1"
            " AND ($2::text IS NULL OR operation = $2) ORDER BY id",
            checkout_id,
            operation,
        )
        return [Attempt.of(r) for r in rows]

    async def start_attempt(
        self,
        *,
        checkout_id: str,
        operation: str,
        scope: str,
        provider: str,
        provider_type: str,
        endpoint: str,
        account: str,
        key: str,
        amount: int | None,
    ) -> Attempt:
        row = await self.pool.fetchrow(
            f"""
            INSERT INTO psp_attempts (checkout_id, operation, attempt_scope, provider,
                provider_type, endpoint, account, psp_idempotency_key, amount, status)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'in_flight')
            ON CONFLICT (checkout_id, operation, attempt_scope)
            DO UPDATE SET status = CASE WHEN psp_attempts.status IN ('succeeded', 'declined')
                                        THEN psp_attempts.status ELSE 'in_flight' END,
                          updated_at = now()
            RETURNING {ATTEMPT_COLS}
            """,
            checkout_id,
            operation,
            scope,
            provider,
            provider_type,
            endpoint,
            account,
            key,
            amount,
        )
        assert row is not None
        return Attempt.of(row)

    async def finish_attempt(
        self,
        attempt_id: int,
        status: str,
        *,
        failure_class: str | None = None,
        psp_reference: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self.pool.execute(
            "UPDATE psp_attempts SET status = $2, failure_class = COALESCE($3, failure_class),"
            " psp_reference = COALESCE($4, psp_reference), detail = $5, updated_at = now()"
            " WHERE id = $1",
            attempt_id,
            status,
            failure_class,
            psp_reference,
            detail,
        )

    async def stale(
        self, states: tuple[PaymentState, ...], older_than_s: float, limit: int
    ) -> list[Payment]:
        rows = await self.pool.fetch(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE state = ANY($1::text[])"
            " AND updated_at < now() - make_interval(secs => $2)"
            " AND (lease_until IS NULL OR lease_until < now()) ORDER BY updated_at LIMIT $3",
            [s.value for s in states],
            older_than_s,
            limit,
        )
        return [Payment.of(r) for r in rows]

    async def stray_attempts(self, limit: int) -> list[Attempt]:
        """Authorize attempts that might have charged but are not the payment's authorization."""
        rows = await self.pool.fetch(
            f"""
            SELECT {", ".join("a." + c.strip() for c in ATTEMPT_COLS.split(","))}
              FROM psp_attempts a JOIN payments p USING (checkout_id)
             WHERE a.operation = 'authorize'
               AND a.status IN ('not_charged', 'unknown', 'in_flight', 'succeeded')
               AND (p.psp_reference IS DISTINCT FROM a.psp_reference OR a.psp_reference IS NULL)
               AND p.state NOT IN ('pending')
               AND (p.lease_until IS NULL OR p.lease_until < now())
             ORDER BY a.id LIMIT $1
            """,
            limit,
        )
        return [Attempt.of(r) for r in rows]

    async def record_webhook(self, provider: str, event_id: str, outcome: str) -> bool:
        """True the first time this event is seen."""
        row = await self.pool.fetchrow(
            "INSERT INTO webhook_events (provider, event_id, outcome) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            provider,
            event_id,
            outcome,
        )
        return row is not None

    async def note_webhook(self, provider: str, event_id: str, outcome: str) -> None:
        await self.pool.execute(
            "UPDATE webhook_events SET outcome = $3 WHERE provider = $1 AND event_id = $2",
            provider,
            event_id,
            outcome,
        )

    async def webhook_outcome(self, provider: str, event_id: str) -> str | None:
        outcome: str | None = await self.pool.fetchval(
            "SELECT outcome FROM webhook_events WHERE provider = $1 AND event_id = $2",
            provider,
            event_id,
        )
        return outcome

    async def forget_webhook(self, provider: str, event_id: str) -> None:
        await self.pool.execute(
            "DELETE FROM webhook_events WHERE provider = $1 AND event_id = $2", provider, event_id
        )

    async def find_by_reference(self, psp_reference: str) -> Payment | None:
        row = await self.pool.fetchrow(
            f"SELECT {PAYMENT_COLS} FROM payments WHERE psp_reference = $1", psp_reference
        )
        return Payment.of(row) if row else None
