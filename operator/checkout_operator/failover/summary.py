"""One-word summaries of a region's status for printer columns and dashboards. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ORDER = ("AtHome", "FailedOver", "Moving", "Down")
"""Worst last: a region with a market Down is Down whatever its other markets do."""


def failover_state(region: str, markets: Sequence[Mapping[str, Any]]) -> str:
    """AtHome, FailedOver, Moving or Down (the worst over the home markets)."""
    worst = 0
    for m in markets:
        if m.get("state") == "Down":
            here = 3
        elif m.get("state") == "Fencing":
            here = 2
        elif m.get("writer") != region:
            here = 1
        else:
            here = 0
        worst = max(worst, here)
    return ORDER[worst]


def max_lag(replication: Sequence[Mapping[str, Any]]) -> int:
    return max((int(p.get("lagMessages") or 0) for p in replication), default=0)


def writers(markets: Sequence[Mapping[str, Any]]) -> str:
    """``FR=eu-b,NL=eu-b``: each home market and its writer."""
    return ",".join(f"{m.get('market')}={m.get('writer')}" for m in markets)
