"""Failover on the real control plane, driven by real HTTP health servers.

Three regions (eu-a: FR, NL; eu-b: DE; us-a: US) with 1 s probes, failureThreshold 3,
successThreshold 2 and 3 s write leases. A test breaks eu-a's health endpoint one way (503,
connection refused with the region's lease keeper gone, a hang past the 1 s timeout, slow but
within it) and checks: the markets move exactly when expected, leases, status, routing
ConfigMaps of every region and Events agree and say why; failback follows the policy.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stack import operator_support as sup

from .fleet_env import Fleet, running_fleet

pytestmark = pytest.mark.stack

BASE = {"writeLeaseSeconds": 6, "minDwellSeconds": 0, "soakSeconds": 2}


async def moved(fleet: Fleet, markets: dict[str, tuple[str, int]]) -> bool:
    table = await fleet.lease_table()
    return all(table.get(m, ("", 0, ""))[:2] == want for m, want in markets.items()) and all(
        table[m][2] == "Serving" for m in markets
    )


async def routing_agrees(fleet: Fleet) -> bool:
    table = await fleet.lease_table()
    for name in fleet.regions:
        routing = await fleet.routing(name)
        if routing is None:
            return False
        for market, (holder, epoch, _) in table.items():
            route = routing.route_for(market)
            if route is None or (route.writer, route.epoch, route.state) != (
                holder,
                epoch,
                "Serving",
            ):
                return False
    return True


async def break_region(fleet: Fleet, how: str) -> None:
    a = fleet.regions["eu-a"]
    if how == "refused":
        await fleet.kill("eu-a")
    else:
        a.server.mode = how  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("how", "evidence", "fenced_by"),
    [
        ("503", "Failure(503", "acknowledged"),
        ("refused", "Failure(refused", "expired"),
        ("hang", "Unknown(timeout after 1 s", "acknowledged"),
    ],
)
async def test_a_failing_region_loses_its_markets_exactly_after_the_threshold(
    kube: Any, how: str, evidence: str, fenced_by: str
) -> None:
    async with running_fleet(kube, {**BASE, "failback": "Manual"}) as fleet:
        await sup.eventually(lambda: routing_agrees(fleet), within=60, what="routing at epoch 1")
        await break_region(fleet, how)
        # Two failed probes: below the threshold, nothing moves.
        a = ("eu-a", fleet.engine)
        await sup.eventually(
            lambda: _failures(fleet, "eu-a", 2), within=10, what="two failed probes"
        )
        assert (await fleet.lease_table())["NL"][:2] == ("eu-a", 1), a
        await sup.eventually(
            lambda: moved(fleet, {"NL": ("eu-b", 2), "FR": ("eu-b", 2)}),
            within=30,
            what="NL and FR moved to eu-b",
        )
        table = await fleet.lease_table()
        assert table["DE"] == ("eu-b", 1, "Serving")
        assert table["US"] == ("us-a", 1, "Serving")
        moves = [m for m in fleet.engine.moves if m.from_region == "eu-a"]
        assert sorted(m.market for m in moves) == ["FR", "NL"]
        assert {m.fenced_by for m in moves} == {fenced_by}
        assert {m.reason for m in moves} == {"ProbeFailures"}

        await sup.eventually(lambda: routing_agrees(fleet), within=60, what="routing agrees")

        async def both_recorded() -> dict[str, Any] | None:
            status: dict[str, Any] = (await fleet.body("eu-a"))["status"]
            return status if len(status.get("history") or ()) == 2 else None

        status = await sup.eventually(both_recorded, within=20, what="both moves recorded")
        markets = {m["market"]: m for m in status["markets"]}
        assert (markets["NL"]["writer"], markets["NL"]["epoch"]) == ("eu-b", 2)
        assert status["health"]["state"] == "Unhealthy"
        assert status["expectedFailoverSeconds"] == 1 * 3 + 6
        history = status["history"]
        assert {h["markets"][0] for h in history} == {"FR", "NL"}
        for record in history:
            assert (record["from"], record["to"], record["epoch"]) == ("eu-a", "eu-b", 2)
            assert record["reason"] == "ProbeFailures"
            assert record["actor"] == "operator"
            joined = " ".join(record["evidence"])
            assert evidence in joined, joined
            # Fenced only once the threshold was reached (later on a loaded machine).
            failed = re.search(r"Unhealthy: (\d+) failed", joined)
            assert failed is not None, joined
            assert int(failed.group(1)) >= 3, joined
            assert "witnesses healthy from the operator: eu-b, us-a" in joined
        assert status["lastFailover"] == history[0]
        events = await fleet.events("eu-a")
        reasons = [e["reason"] for e in events]
        assert reasons.count("FailedOver") == 2, reasons
        assert reasons.count("Fencing") == 2, reasons
        if fleet.regions["eu-a"].keeper is not None and how != "refused":
            assert not fleet.regions["eu-a"].keeper.may_write("NL")
        if how == "503":
            cli_tables(kube, fleet)
        keeper_b = fleet.regions["eu-b"].keeper
        assert keeper_b is not None
        await sup.eventually(
            lambda: _true(keeper_b.may_write("NL")), within=20, what="eu-b writes NL"
        )


def cli_tables(kube: Any, fleet: Fleet) -> None:
    """`checkout-operator status` / `history` (what `kubectl checkout` runs) on the cluster."""
    exe = Path(sys.executable).parent / "checkout-operator"
    common = ["--kubeconfig", str(kube.kubeconfig), "-n", fleet.ns]
    status = subprocess.run(
        [str(exe), "status", *common], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in status[1:]}
    assert rows["NL"][1:6] == ["eu-b", "2", "Serving", "eu-a", "Unhealthy"], status
    assert rows["DE"][1:4] == ["eu-b", "1", "Serving"], status
    nl = next(line for line in status if line.startswith("NL "))
    assert nl.endswith("ProbeFailures (operator)"), status
    history = subprocess.run(
        [str(exe), "history", "eu-a", *common], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert history[0].split()[:5] == ["TIME", "MARKETS", "FROM", "TO", "EPOCH"]
    assert sorted(line.split()[1] for line in history[1:]) == ["FR", "NL"]
    plan = subprocess.run(
        [str(exe), "plan", "--fail", "eu-b", *common], capture_output=True, text=True, check=True
    ).stdout
    # The live leases: NL is written by eu-b at epoch 2; if eu-b failed it would go home.
    assert "- market NL: eu-b (epoch 2) -> eu-a [ProbeFailures]" in plan, plan
    assert "- market DE: eu-b (epoch 1) -> eu-a [ProbeFailures]" in plan, plan
    missing = subprocess.run(
        [str(exe), "history", "nowhere", *common], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert f"no CheckoutRegion nowhere in namespace {fleet.ns}" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_a_slow_but_healthy_region_keeps_its_markets(kube: Any) -> None:
    probe = {"periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 3}
    async with running_fleet(kube, BASE, probe=probe) as fleet:
        a = fleet.regions["eu-a"]
        a.server.mode = "slow"
        a.server.slow_seconds = 1.0  # half the 2 s timeout
        hits = a.server.hits
        await sup.eventually(
            lambda: _true(a.server.hits >= hits + 6), within=40, what="six slow probes"
        )
        assert fleet.engine.moves == []
        table = await fleet.lease_table()
        assert table["NL"] == ("eu-a", 1, "Serving")
        health = fleet.engine.health[(fleet.ns, "eu-a")]
        assert health.state == "Healthy"
        assert health.failures == 0
        assert min(r.latency for r in health.evidence[-5:]) >= 1.0


@pytest.mark.parametrize("failback", ["Automatic", "Manual"])
async def test_failback_follows_the_policy(kube: Any, failback: str) -> None:
    async with running_fleet(kube, {**BASE, "failback": failback}) as fleet:
        a = fleet.regions["eu-a"]
        a.server.mode = "503"
        await sup.eventually(
            lambda: moved(fleet, {"NL": ("eu-b", 2)}), within=30, what="NL moved to eu-b"
        )
        a.server.mode = "ok"
        if failback == "Automatic":
            await sup.eventually(
                lambda: moved(fleet, {"NL": ("eu-a", 3), "FR": ("eu-a", 3)}),
                within=30,
                what="NL and FR back home",
            )
            back = [m for m in fleet.engine.moves if m.to == "eu-a"]
            assert {m.reason for m in back} == {"Failback"}
        else:
            # Healthy again for longer than successThreshold + soak: still away.
            await sup.eventually(
                lambda: _healthy_for(fleet, "eu-a", 2 + 3), within=20, what="eu-a healthy"
            )
            assert (await fleet.lease_table())["NL"][:2] == ("eu-b", 2)
            await fleet.patch_failover("eu-a", {"returnHome": True})
            await sup.eventually(
                lambda: moved(fleet, {"NL": ("eu-a", 3)}), within=30, what="NL back home"
            )
            back = [m for m in fleet.engine.moves if m.to == "eu-a"]
            assert {m.reason for m in back} == {"ReturnHome"}

            # The record follows the Lease (the engine writes every market's lease first).
            async def recorded() -> list[Any] | None:
                history = (await fleet.body("eu-a"))["status"]["history"]
                return history if history[0]["epoch"] == 3 else None

            history = await sup.eventually(recorded, within=20, what="return home recorded")
            assert history[0]["actor"] == "spec: eu-a spec.failover.returnHome"
        await sup.eventually(lambda: routing_agrees(fleet), within=60, what="routing agrees")


async def _failures(fleet: Fleet, name: str, n: int) -> bool:
    h = fleet.engine.health.get((fleet.ns, name))
    return h is not None and h.failures >= n


async def _healthy_for(fleet: Fleet, name: str, seconds: float) -> bool:
    h = fleet.engine.health.get((fleet.ns, name))
    return (
        h is not None
        and h.state == "Healthy"
        and bool(h.evidence)
        and h.evidence[-1].at - h.since >= seconds
    )


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value


async def test_a_drain_waits_for_lag_zero_and_in_flight_writes_then_flips(kube: Any) -> None:
    async with running_fleet(kube, {**BASE, "failback": "Manual"}) as fleet:
        a = fleet.regions["eu-a"]
        assert a.keeper is not None
        in_flight = {"NL": 1, "FR": 0}
        a.keeper.in_flight = lambda market: in_flight[market]
        # eu-b is 5 messages behind on eu-a's data (what the replication monitor records).
        await fleet.client.patch_status(
            sup_api(), "CheckoutRegion", "eu-b", fleet.ns, {"replication": [_lag("eu-a", 5)]}
        )
        await fleet.patch_failover("eu-a", {"drain": True})

        async def blocked_on_lag() -> bool:
            st = (await fleet.body("eu-a")).get("status") or {}
            msgs = [m.get("message", "") for m in st.get("markets") or ()]
            return any("lag 5 > 0 messages" in m for m in msgs)

        await sup.eventually(blocked_on_lag, within=20, what="drain blocked on lag")
        assert (await fleet.lease_table())["NL"] == ("eu-a", 1, "Serving")

        await fleet.client.patch_status(
            sup_api(), "CheckoutRegion", "eu-b", fleet.ns, {"replication": [_lag("eu-a", 0)]}
        )
        await sup.eventually(
            lambda: moved(fleet, {"FR": ("eu-b", 2)}), within=20, what="FR flipped"
        )
        # NL still has an authorization in flight: fenced (no new writes) but not flipped. (Its
        # fence may have lost a compare-and-swap race with a renewal and come a tick later.)

        async def nl_fencing() -> bool:
            return (await fleet.lease_table())["NL"] == ("eu-a", 1, "Fencing")

        await sup.eventually(nl_fencing, within=20, what="NL fenced")
        keeper = a.keeper
        await sup.eventually(
            lambda: _true(not keeper.may_write("NL")), within=10, what="eu-a stops writing NL"
        )
        # Longer than the 6 s lease: eu-a keeps renewing while its write is in flight.
        await asyncio.sleep(8)
        assert (await fleet.lease_table())["NL"] == ("eu-a", 1, "Fencing")
        in_flight["NL"] = 0
        await sup.eventually(
            lambda: moved(fleet, {"NL": ("eu-b", 2)}), within=20, what="NL flipped"
        )
        moves = {m.market: m for m in fleet.engine.moves}
        assert moves["NL"].reason == "Drain"
        assert moves["NL"].fenced_by == "acknowledged"

        async def recorded() -> list[Any] | None:
            history = (await fleet.body("eu-a"))["status"].get("history") or []
            return history if any(h["markets"] == ["NL"] for h in history) else None

        history = await sup.eventually(recorded, within=20, what="the drain recorded")
        assert {h["actor"] for h in history} == {"spec: eu-a spec.failover.drain"}
        await sup.eventually(lambda: routing_agrees(fleet), within=60, what="routing agrees")


def sup_api() -> str:
    return "checkout-operator.io/v1alpha1"


def _lag(peer: str, messages: int) -> dict[str, Any]:
    import datetime

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"peer": peer, "lagMessages": messages, "observedAt": now}
