"""Operator HA on the real control plane: two replicas (each its own client, leader Lease and
engine) never both act; a replica killed between fencing and promotion leaves a lease that the
next one finishes, promoting exactly once (one writer, epoch + 1, one history record)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from checkout_operator.reconcile import leader as rleader
from stack import operator_support as sup

from .fleet_env import running_fleet
from .test_failover_stack import BASE, moved

pytestmark = pytest.mark.stack


async def test_two_replicas_never_both_act_and_the_survivor_takes_over(kube: Any) -> None:
    async with running_fleet(kube, BASE, start_engine=False) as fleet:
        engines, leaders = [], []
        for i in range(2):
            engine = fleet.new_engine()
            lead = rleader.Leader(
                engine.ctx.client, fleet.ns, identity=f"replica-{i}", duration=6, retry=0.5,
                skew=1.0,
            )  # fmt: skip
            engine.is_leader = lead.is_leader
            engines.append(engine)
            leaders.append(lead)
        try:
            for lead, engine in zip(leaders, engines, strict=True):
                lead.start()
                engine.start([fleet.ns])
            await fleet.wait_initial_leases()
            both = 0
            for _ in range(40):
                both += leaders[0].is_leader() and leaders[1].is_leader()
                await asyncio.sleep(0.05)
            assert both == 0
            acting = [i for i, e in enumerate(engines) if e.decisions]
            assert len(acting) == 1, [e.decisions for e in engines]
            first = acting[0]
            other = 1 - first

            fleet.regions["eu-a"].server.mode = "503"
            await sup.eventually(
                lambda: moved(fleet, {"NL": ("eu-b", 2), "FR": ("eu-b", 2)}),
                within=30,
                what="NL and FR moved once",
            )
            assert engines[other].decisions == 0
            assert sorted(m.market for m in engines[first].moves) == ["FR", "NL"]

            # The acting replica crashes (no hand-over): the other takes over after expiry.
            await engines[first].aclose()
            await leaders[first].aclose(release=False)
            await sup.eventually(
                lambda: _true(leaders[other].is_leader()), within=30, what="takeover"
            )
            fleet.regions["eu-a"].server.mode = "ok"
            await fleet.patch_failover("eu-a", {"returnHome": True})
            await sup.eventually(
                lambda: moved(fleet, {"NL": ("eu-a", 3)}), within=60, what="NL back home"
            )
            assert engines[other].decisions > 0
            assert {m.market for m in engines[other].moves} == {"FR", "NL"}
        finally:
            for lead, engine in zip(leaders, engines, strict=True):
                await engine.aclose()
                await lead.aclose()
                await engine.ctx.client.aclose()


async def test_killed_between_fencing_and_promotion_ends_with_one_writer(kube: Any) -> None:
    async with running_fleet(kube, BASE, start_engine=False) as fleet:
        first = fleet.new_engine()
        first.start([fleet.ns])
        await fleet.wait_initial_leases()
        # eu-a dies with its lease keeper: promotion must wait for its 6 s lease to expire.
        await fleet.kill("eu-a")

        async def fencing() -> bool:
            return (await fleet.lease_table())["NL"][2] == "Fencing"

        await sup.eventually(fencing, within=20, what="NL fenced")
        await first.aclose()  # the operator dies between fencing and promotion
        await first.ctx.client.aclose()
        table = await fleet.lease_table()
        assert table["NL"][:2] == ("eu-a", 1)

        second = fleet.new_engine()
        second.start([fleet.ns])
        try:
            await sup.eventually(
                lambda: moved(fleet, {"NL": ("eu-b", 2), "FR": ("eu-b", 2)}),
                within=30,
                what="the second replica finished the move",
            )
            await asyncio.sleep(2)
            table = await fleet.lease_table()
            assert table["NL"] == ("eu-b", 2, "Serving"), table
            assert [m.market for m in first.moves] == []
            assert sorted(m.market for m in second.moves) == ["FR", "NL"]
            assert {m.fenced_by for m in second.moves if m.market == "NL"} == {"expired"}
            history = (await fleet.body("eu-a"))["status"]["history"]
            assert sorted(h["markets"][0] for h in history) == ["FR", "NL"]
            keeper = fleet.regions["eu-b"].keeper
            assert keeper is not None
            await sup.eventually(lambda: _true(keeper.may_write("NL")), within=20, what="eu-b")
        finally:
            await second.aclose()
            await second.ctx.client.aclose()


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
