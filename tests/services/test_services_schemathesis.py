"""Property-based API tests from each service's OpenAPI document (schemathesis), against the
real servers: no 5xx, and every error is problem+json. Examples are bounded per operation.

Schemathesis' own pytest fixture loader does not run with this pytest version, so each
operation's hypothesis strategy is driven here directly."""

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


def services(env: ce.CheckoutEnv) -> dict[str, str]:
    return {
        "cart": env.extra[0].url,
        "pricing": env.pricing.url,
        "inventory": env.inventory.url,
        "orders": env.orders.url,
        "payments": env.payments.url,
    }


@pytest.mark.parametrize("service", ["cart", "pricing", "inventory", "orders", "payments"])
def test_openapi_properties(env: ce.CheckoutEnv, service: str) -> None:
    url = services(env)[service]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 3, [op.label for op in operations]
    ran: dict[str, int] = {}

    def runner(operation: Any) -> Any:
        @hypothesis.given(operation.as_strategy())
        @EXAMPLES
        def check(case: Any) -> None:
            ran[operation.label] = ran.get(operation.label, 0) + 1
            case.call_and_validate(base_url=url, checks=CHECKS)

        return check

    for operation in operations:
        runner(operation)()
    assert set(ran) == {op.label for op in operations}
    print(f"\n{service}: examples per operation {ran}")
