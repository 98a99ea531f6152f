"""Failover reacts to events, not to timers, on the real control plane.

* A lease keeper whose renewal interval is a minute still acknowledges its fencing, starts
  writing a market promoted to it and stops writing a market handed away within seconds: it
  watches the fleet's Leases. The same keeper without the watch does not (the control that
  shows the watch is what reacts).
* A failover engine whose tick is a minute still fences after the threshold-th failed probe,
  promotes as soon as the old writer acknowledges (it watches the market Leases) and, when the
  old writer is gone, as soon as its lease expires (a timer at the expiry).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator.reconcile import desired, failover, leases, region
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore
from stack import operator_support as sup

from .fleet_env import running_fleet
from .test_failover_stack import moved

pytestmark = pytest.mark.stack

FLEET = "rx"
SLOW = 60.0  # a renewal interval / engine tick that would never fire during a test


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    return kube_namespace


def keeper(kube: Any, ns: str, name: str, *, watch: bool = True) -> keeping.LeaseKeeper:
    store = leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, ns)
    return keeping.LeaseKeeper(name, FLEET, store, skew=0.5, interval=SLOW, watch=watch)


async def until(check: Any, within: float) -> float | None:
    """Seconds until ``check()`` holds, or None after ``within``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


async def test_a_keeper_reacts_to_fencing_and_promotion_through_its_watch(
    kube: Any, namespace: str
) -> None:
    client = kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig))
    lease = await leases.create(client, namespace, FLEET, "NL", "eu-a", 30, time.time())
    a, b = keeper(kube, namespace, "eu-a"), keeper(kube, namespace, "eu-b")
    try:
        a.start()
        b.start()
        assert await until(lambda: a.may_write("NL"), 10) is not None
        await asyncio.sleep(0.5)  # both watches are open (their first events are the Lease)
        renewals = a.renewals
        await asyncio.sleep(1.0)
        assert a.renewals == renewals, "nothing to react to: the next renewal is a minute away"

        lease = (await leases.read(client, namespace, FLEET))["NL"]
        fenced = await leases.fence(client, lease, "eu-b", "Drain")
        assert await until(lambda: not a.may_write("NL"), 5) is not None

        async def acked() -> bool:
            return (await leases.read(client, namespace, FLEET))["NL"].acked_epoch == 1

        await sup.eventually(acked, within=5, what="eu-a acknowledges without renewing")
        current = (await leases.read(client, namespace, FLEET))["NL"]
        assert current.resource_version != fenced.resource_version
        await leases.promote(client, current, "eu-b", 2, 30, time.time())
        assert await until(lambda: b.may_write("NL"), 5) is not None
        assert b.held["NL"].epoch == 2
        assert not a.may_write("NL")
        assert a.wakeups >= 1
        assert b.wakeups >= 1
        with pytest.raises(keeping.LeaseLost, match="its writer is eu-b"):
            a.check("NL")

        # Renewals of another region's lease do not wake a keeper (no storm of passes).
        woken = a.wakeups
        for _ in range(3):
            await b.step()
        await asyncio.sleep(0.5)
        assert a.wakeups == woken
    finally:
        for k in (a, b):
            await k.aclose()
            await k.store.aclose()
        await client.aclose()


async def test_without_the_watch_a_keeper_waits_for_its_interval(kube: Any, namespace: str) -> None:
    client = kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig))
    await leases.create(client, namespace, FLEET, "NL", "eu-a", 30, time.time())
    a = keeper(kube, namespace, "eu-a", watch=False)
    try:
        a.start()
        assert await until(lambda: a.may_write("NL"), 10) is not None
        lease = (await leases.read(client, namespace, FLEET))["NL"]
        await leases.fence(client, lease, "eu-b", "Drain")
        assert await until(lambda: not a.may_write("NL"), 3) is None
        assert (await leases.read(client, namespace, FLEET))["NL"].acked_epoch == 0
    finally:
        await a.aclose()
        await a.store.aclose()
        await client.aclose()


@pytest.mark.parametrize(("how", "fenced_by"), [("503", "acknowledged"), ("refused", "expired")])
async def test_an_engine_with_a_minute_tick_still_moves_the_market(
    kube: Any, how: str, fenced_by: str
) -> None:
    spec = {"writeLeaseSeconds": 3, "minDwellSeconds": 0, "soakSeconds": 0}
    async with running_fleet(kube, spec, start_engine=False) as fleet:
        client = kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig))
        engine = failover.Engine(region.Context(client, desired.render), tick=SLOW)
        engine.start([fleet.ns])
        try:
            await fleet.wait_initial_leases()
            await asyncio.sleep(1.5)
            if how == "503":
                fleet.regions["eu-a"].server.mode = "503"
            else:
                await fleet.kill("eu-a")
            await sup.eventually(
                lambda: moved(fleet, {"NL": ("eu-b", 2), "FR": ("eu-b", 2)}),
                within=20,
                what="NL and FR moved without a tick",
            )
            nl = next(m for m in engine.moves if m.market == "NL")
            assert nl.fenced_by == fenced_by
            assert nl.first_failure_at is not None
            # Not before the threshold, nor (unreachable) before the old lease ran out.
            assert nl.promoted_at >= nl.first_failure_at + 2 * 1.0 - 0.05
            if fenced_by == "expired":
                assert nl.old_lease_expiry is not None
                assert nl.promoted_at >= nl.old_lease_expiry
        finally:
            await engine.aclose()
            await client.aclose()
