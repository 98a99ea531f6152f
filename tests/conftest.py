"""Shared pytest configuration."""

from __future__ import annotations

import pytest

# Real local stack fixtures (postgres, redis, kafka_clusters, temporal, kube, kube_factory,
# helm_bin, kubectl_bin): see hack/checkout_stack/pytest_plugin.py and README "Local stack".
pytest_plugins = ["checkout_stack.pytest_plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
