"""Printer columns: the failover at a glance, each column described from the API models."""

from __future__ import annotations

import pytest

from checkout_operator.api import crd
from checkout_operator.failover import summary


def test_every_column_is_described_and_the_failover_columns_exist() -> None:
    for info in crd.KINDS:
        for column in info.columns:
            assert column["description"].strip(), column
    region = {c["name"]: c for c in crd.KINDS[0].columns}
    # One string: a column shows only the first value of a list.
    assert region["Writers"]["jsonPath"] == ".status.writers"
    assert not any("[*]" in c["jsonPath"] for c in region.values())
    assert region["Failover"]["jsonPath"] == ".status.failoverState"
    assert region["Max Lag"]["type"] == "integer"
    assert region["Last Move"]["type"] == "date"
    # The descriptions come from the status models' docstrings where not overridden.
    assert region["Failover"]["description"].startswith("Where the home markets are")


def test_a_column_path_the_models_lack_is_an_error() -> None:
    from checkout_operator.api.checkoutregion import CheckoutRegion

    with pytest.raises(crd.SchemaError, match="no field 'nope'"):
        crd._described(CheckoutRegion, ".status.nope")


@pytest.mark.parametrize(
    ("markets", "state"),
    [
        ([], "AtHome"),
        ([{"writer": "eu-a", "state": "Serving"}], "AtHome"),
        ([{"writer": "eu-b", "state": "Serving"}], "FailedOver"),
        (
            [{"writer": "eu-b", "state": "Serving"}, {"writer": "eu-a", "state": "Fencing"}],
            "Moving",
        ),
        ([{"writer": "eu-a", "state": "Down"}, {"writer": "eu-a", "state": "Fencing"}], "Down"),
    ],
)
def test_failover_state_is_the_worst_over_the_home_markets(
    markets: list[dict[str, str]], state: str
) -> None:
    assert summary.failover_state("eu-a", markets) == state


def test_writers() -> None:
    markets = [{"market": "FR", "writer": "eu-b"}, {"market": "NL", "writer": "eu-a"}]
    assert summary.writers(markets) == "FR=eu-b,NL=eu-a"


def test_max_lag() -> None:
    assert summary.max_lag([]) == 0
    assert summary.max_lag([{"lagMessages": 3}, {"lagMessages": 40}, {}]) == 40
