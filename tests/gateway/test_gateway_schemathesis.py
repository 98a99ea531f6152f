"""Schemathesis against the gateway's OpenAPI document, on the two-region fleet (every route
reaches real services, checkouts real sagas and the PSP simulator): no 5xx, every error is
problem+json. Schemathesis' pytest loader does not run with this pytest version, so each
operation's hypothesis strategy is driven directly (as in tests/services)."""

from __future__ import annotations

from typing import Any

import gateway_harness as gh
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.failures import Failure

pytestmark = pytest.mark.stack

EXAMPLES = hypothesis.settings(
    max_examples=20,
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


def steer(case: Any, n: int) -> None:
    """Every other generated body gets a known market and its currency, so that schemathesis
    also reaches the services' happy paths (random two-letter markets are unknown: 422)."""
    body = getattr(case, "body", None)
    if n % 2 or not isinstance(body, dict):
        return
    market = "US" if n % 4 else "DE"
    for key in ("market", "country"):
        if key in body:
            body[key] = market
    if "currency" in body:
        body["currency"] = "USD" if market == "US" else "EUR"


@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
def test_gateway_openapi_properties(fleet: gh.Fleet, authenticated: bool) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 100000)
    fleet.stock("mug", 100000)
    url = fleet.gateways[gh.EU]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    ran: dict[str, int] = {}
    statuses: dict[int, int] = {}
    headers = fleet.keys.auth("schemathesis") if authenticated else {}

    def runner(operation: Any) -> Any:
        @hypothesis.given(operation.as_strategy())
        @EXAMPLES
        def check(case: Any) -> None:
            ran[operation.label] = ran.get(operation.label, 0) + 1
            if authenticated:
                case.headers = {**(case.headers or {}), **headers}
            steer(case, ran[operation.label])
            response = case.call_and_validate(base_url=url, checks=CHECKS)
            if case.path.startswith("/v1/"):
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        return check

    for operation in operations:
        runner(operation)()
    assert set(ran) == {op.label for op in operations}
    if authenticated:
        # the token got through: the services behind the gateway answered (2xx / their 4xx)
        assert any(200 <= code < 300 for code in statuses), statuses
    else:
        assert set(statuses) <= {401, 404, 422}, statuses
    print(f"\ngateway ({'token' if authenticated else 'no token'}): {ran} statuses {statuses}")
