"""A payments instance for a test: its PSP accounts in the simulator, its database and routing
config, and the process (real PostgreSQL/Redis). Imported by the tests as ``payments_env``: a
helper named ``conftest`` would clash with the other test folders' conftest modules when
several folders are collected together."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import payments_harness as harness

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis


@dataclass
class Env:
    sim: harness.Sim
    creds: harness.Credentials
    payments: harness.PaymentsProc
    database_url: str
    workdir: Path

    @property
    def url(self) -> str:
        return self.payments.url


def new_env(
    sim: harness.Sim,
    postgres: Postgres,
    redis: Redis,
    workdir: Path,
    *,
    name: str,
    redis_db: int = 1,
    extra_env: dict[str, str] | None = None,
    **routing_kw: object,
) -> Env:
    creds = harness.make_credentials(workdir / "creds")
    dsn = postgres.create_database(f"pay_{name}_{uuid.uuid4().hex[:8]}")
    port = harness.free_port()
    harness.register_accounts(sim, creds, harness.webhook_urls(f"http://127.0.0.1:{port}"))
    routing = harness.routing_config(sim, creds, **routing_kw)  # type: ignore[arg-type]
    proc = harness.payments_proc(
        workdir,
        name=name,
        database_url=dsn,
        redis_url=redis.url.rsplit("/", 1)[0] + f"/{redis_db}",
        routing=routing,
        port=port,
        extra_env=extra_env,
    )
    proc.start()
    return Env(sim, creds, proc, dsn, workdir)
