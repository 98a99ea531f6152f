"""The failover engine writes a region's status only when it changes (CloudNativePG style).

On the real control plane with 1 s probes: eu-a's health endpoint fails (503), its markets move,
the moves are recorded; then, while eu-a keeps failing (a steady state: every probe fails the
same way), the apiserver's own request counter
(``apiserver_request_total{resource="checkoutregions",subresource="status",verb="PATCH"}``,
no-op patches included) and eu-a's resourceVersion must not move. Before the fix every probe
of a failing region was a PATCH (its ``consecutiveFailures`` and the probe latency in
``health.message`` changed each time): 22 PATCHes in 35 s for 4 regions.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from stack import operator_support as sup

from .fleet_env import Fleet, running_fleet
from .test_failover_stack import BASE, moved

pytestmark = pytest.mark.stack

STEADY_SECONDS = 10
STATUS_PATCHES = re.compile(
    r'^apiserver_request_total\{(?=[^}]*resource="checkoutregions")'
    r'(?=[^}]*subresource="status")(?=[^}]*verb="PATCH")[^}]*\} (\d+(?:\.\d+)?(?:e\+\d+)?)$',
    re.MULTILINE,
)


def status_patches(kube: Any) -> int:
    """Status PATCHes of CheckoutRegions the apiserver has served (any code), from /metrics."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    return sum(int(float(n)) for n in STATUS_PATCHES.findall(text))


async def recorded(fleet: Fleet) -> dict[str, Any] | None:
    status: dict[str, Any] = (await fleet.body("eu-a")).get("status") or {}
    return status if len(status.get("history") or ()) == 2 else None


async def test_a_steadily_failing_region_status_is_not_rewritten_on_every_probe(
    kube: Any,
) -> None:
    async with running_fleet(kube, {**BASE, "failback": "Manual"}) as fleet:
        await sup.eventually(
            lambda: moved(fleet, {m: (r, 1) for r, x in _homes(fleet) for m in x}),
            within=60,
            what="leases at epoch 1",
        )
        start = status_patches(kube)
        assert start > 0, "the counter does not see the operator's status writes"
        fleet.regions["eu-a"].server.mode = "503"
        await sup.eventually(
            lambda: moved(fleet, {"NL": ("eu-b", 2), "FR": ("eu-b", 2)}),
            within=30,
            what="NL and FR moved to eu-b",
        )
        await sup.eventually(lambda: recorded(fleet), within=20, what="both moves recorded")
        await asyncio.sleep(3)  # routing re-renders and reconciles of the move settle
        health = fleet.engine.health[(fleet.ns, "eu-a")]
        before_patches = status_patches(kube)
        before = await fleet.body("eu-a")
        probes_before = health.failures
        await asyncio.sleep(STEADY_SECONDS)
        after_patches = status_patches(kube)
        after = await fleet.body("eu-a")
        probes = fleet.engine.health[(fleet.ns, "eu-a")].failures - probes_before
        print(
            f"\nsteady failing state: {probes} failed probes of eu-a in {STEADY_SECONDS} s, "
            f"{after_patches - before_patches} CheckoutRegion status PATCHes (all regions), "
            f"eu-a resourceVersion {before['metadata']['resourceVersion']} -> "
            f"{after['metadata']['resourceVersion']}"
        )
        assert probes >= STEADY_SECONDS // 2, f"only {probes} probes: not a steady failing state"
        assert after_patches == before_patches
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        status = after["status"]
        assert status["health"]["state"] == "Unhealthy"
        assert status["health"]["message"] == "Failure(503)"
        # the count says "at least the threshold", not one more per probe
        assert status["health"]["consecutiveFailures"] == 3


def _homes(fleet: Fleet) -> list[tuple[str, tuple[str, ...]]]:
    return [(name, r.markets) for name, r in fleet.regions.items()]
