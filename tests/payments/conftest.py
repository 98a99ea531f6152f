"""Fixtures: the PSP simulator and a payments instance (real processes), real PostgreSQL/Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import payments_harness as harness
import pytest
from payments_env import Env, new_env

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Sim]:
    s = harness.start_sim(tmp_path_factory.mktemp("sim"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def env(
    sim: harness.Sim, postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    e = new_env(sim, postgres, redis, tmp_path_factory.mktemp("payments"), name="api")
    try:
        yield e
    finally:
        e.payments.stop()


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the module's payments instance."""
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames or "env" in request.fixturenames:
        s: harness.Sim = request.getfixturevalue("sim")
        s.admin("DELETE", "faults")
