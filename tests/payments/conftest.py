"""Fixtures: the PSP simulator and a payments instance (real processes), real PostgreSQL/Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import payments_harness as harness
import pytest

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Sim]:
    s = harness.start_sim(tmp_path_factory.mktemp("sim"))
    try:
        yield s
    finally:
        s.stop()


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
    webhook_urls = {
        n: f"http://127.0.0.1:{port}/v1/webhooks/{n}"
        for n in ("upi-in", "ideal-nl", "pix-br", "adyen-eu", "stripe-eu", "stripe-us")
    }
    # One Adyen merchant account (served at two regional endpoints) has one webhook endpoint.
    webhook_urls["adyen-us"] = webhook_urls["adyen-eu"]
    harness.register_accounts(sim, creds, webhook_urls)
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


@pytest.fixture(scope="module")
def env(
    sim: harness.Sim, postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    e = new_env(sim, postgres, redis, tmp_path_factory.mktemp("payments"), name="api")
    try:
        yield e
    finally:
        e.payments.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames or "env" in request.fixturenames:
        s: harness.Sim = request.getfixturevalue("sim")
        s.admin("DELETE", "faults")
