"""Property-based API tests from each service's OpenAPI document (schemathesis), against the
real servers: no 5xx, and every error is problem+json. Examples are bounded per operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import checkout_env as ce
import hypothesis
import pytest
import schemathesis
import services_harness as h
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.failures import Failure

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

EXAMPLES = hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)


def errors_are_problems(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    if response.status_code >= 400:
        ctype = response.headers.get("content-type", [""])
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        if not ctype.startswith("application/problem+json"):
            raise Failure(
                operation=case.operation.label,
                title="Error is not problem+json",
                message=f"{response.status_code} with content-type {ctype!r}",
            )
    return None


CHECKS = [not_a_server_error, errors_are_problems]


@pytest.fixture(scope="module")
def env(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ce.CheckoutEnv]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    e = ce.start(
        workdir, postgres, redis, temporal, kafka_clusters.get(h.REGION).bootstrap, redis_db=6
    )
    cart = h.ServiceProc(
        "cart",
        workdir,
        {
            "REGION_CONFIG_FILE": str(workdir / "region.json"),
            "FLEET_ROUTING_FILE": str(workdir / "routing.json"),
            "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/6",
        },
    ).start()
    e.extra.append(cart)
    try:
        yield e
    finally:
        e.stop()


def load(url: str) -> Any:
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def cart_schema(env: ce.CheckoutEnv) -> Any:
    return load(env.extra[0].url)


@pytest.fixture(scope="module")
def pricing_schema(env: ce.CheckoutEnv) -> Any:
    return load(env.pricing.url)


@pytest.fixture(scope="module")
def inventory_schema(env: ce.CheckoutEnv) -> Any:
    return load(env.inventory.url)


@pytest.fixture(scope="module")
def orders_schema(env: ce.CheckoutEnv) -> Any:
    return load(env.orders.url)


cart_api = schemathesis.pytest.from_fixture("cart_schema")
pricing_api = schemathesis.pytest.from_fixture("pricing_schema")
inventory_api = schemathesis.pytest.from_fixture("inventory_schema")
orders_api = schemathesis.pytest.from_fixture("orders_schema")


@cart_api.parametrize()
@EXAMPLES
def test_cart_api(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@pricing_api.parametrize()
@EXAMPLES
def test_pricing_api(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@inventory_api.parametrize()
@EXAMPLES
def test_inventory_api(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@orders_api.parametrize()
@EXAMPLES
def test_orders_api(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
