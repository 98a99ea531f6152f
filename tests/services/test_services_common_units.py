"""common/ pieces that need no stack: money rounding, the write guard, settings errors."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import services_harness as h

from checkout_services.common import money, settings, write_guard


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [
        (1999, 1900, 380),  # 379.81 -> 380
        (5248, 1000, 525),  # 524.8 -> 525
        (50, 1000, 5),  # 5.0
        (25, 1000, 3),  # 2.5 -> 3 (half-up, not half-even)
        (15, 1000, 2),  # 1.5 -> 2
        (0, 1900, 0),
    ],
)
def test_basis_points_round_half_up(amount: int, bp: int, expected: int) -> None:
    assert money.basis_points(amount, bp) == expected


def test_display_follows_the_currency_exponent() -> None:
    assert money.display(1999, "EUR") == "19.99 EUR"
    assert money.display(5, "USD") == "0.05 USD"
    assert money.display(-1999, "EUR") == "-19.99 EUR"
    assert money.display(1999, "JPY") == "1999 JPY"
    assert money.display(1234, "KWD") == "1.234 KWD"


def write_routing(path: Path, **states: str) -> None:
    path.write_text(json.dumps(h.fleet_routing(**states)))
    stamp = time.time() + len(states)
    os.utime(path, (stamp, stamp))


def test_write_guard(tmp_path: Path) -> None:
    routing = tmp_path / "routing.json"
    write_routing(routing)
    guard = write_guard.WriteGuard(h.REGION, routing)
    assert guard.check("DE").writer == h.REGION
    with pytest.raises(write_guard.NotWriter) as refused:
        guard.check("US")
    body = refused.value.problem("/x")
    assert body["status"] == 409
    assert body["writer"] == h.PEER
    assert h.PEER in body["detail"]
    with pytest.raises(write_guard.UnknownMarket):
        guard.check("ZZ")
    # the file changes (a ConfigMap update): the guard follows
    write_routing(routing, DE="Fencing")
    with pytest.raises(write_guard.MarketFencing) as fencing:
        guard.check("DE")
    assert fencing.value.status == 503
    assert fencing.value.retry_after
    write_routing(routing, DE="Down", FR="Fencing")
    with pytest.raises(write_guard.MarketDown):
        guard.check("DE")


def test_bad_config_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(settings.SettingsError, match="cannot read the region config"):
        settings.load_region_config(tmp_path / "nope.json")
    bad = tmp_path / "routing.json"
    bad.write_text('{"fleet": "x"}')
    with pytest.raises(settings.SettingsError, match="invalid fleet routing file"):
        settings.load_fleet_routing(bad)
