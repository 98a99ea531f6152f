"""Operator HA with real processes: two ``checkout-operator run`` (the CLI, failover on) against
the real kube-apiserver; the acting one is SIGKILLed between fencing and promotion.

eu-a's lease keeper reports writes in flight, so it keeps renewing its fenced leases without
acknowledging: the market stays fenced, not promoted, for as long as the test wants. The
acting replica (the holder of the leader Lease ``checkout-operator-failover``, whose identity
carries its pid) is SIGKILLed in that state; then eu-a's in-flight writes finish and it
acknowledges. The other replica must take the leader Lease over and finish the move: one
writer per market, exactly one epoch bump (leaseTransitions 2, not 3), one history record and
one FailedOver Event per market.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from checkout_operator.reconcile import leader as rleader
from stack import operator_support as sup

from .fleet_env import Fleet, running_fleet
from .test_failover_stack import moved

pytestmark = pytest.mark.stack

SPEC = {"writeLeaseSeconds": 6, "minDwellSeconds": 0, "soakSeconds": 2}
MARKETS = ("FR", "NL")


async def leader_holder(fleet: Fleet) -> str:
    lease = await fleet.client.get_or_none(
        rleader.API_VERSION, "Lease", rleader.DEFAULT_NAME, fleet.ns
    )
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def pid_of(identity: str) -> int:
    """Leader identities are ``<host>-<pid>-<random>``."""
    return int(identity.rsplit("-", 2)[-2])


async def test_sigkill_of_the_acting_operator_between_fencing_and_promotion(
    kube: Any, tmp_path: Path
) -> None:
    async with running_fleet(kube, SPEC, start_engine=False) as fleet:
        busy = {m: 0 for m in MARKETS}
        keeper = fleet.regions["eu-a"].keeper
        assert keeper is not None
        keeper.in_flight = lambda market: busy.get(market, 0)
        with (
            sup.running_operator(kube.kubeconfig, fleet.ns, tmp_path / "op0.log") as op0,
            sup.running_operator(kube.kubeconfig, fleet.ns, tmp_path / "op1.log") as op1,
        ):
            ops = {op0.proc.pid: op0, op1.proc.pid: op1}
            op0.wait_live()
            op1.wait_live()
            await fleet.wait_initial_leases()
            holder = await leader_holder(fleet)
            acting = ops[pid_of(holder)]
            other = next(op for pid, op in ops.items() if op is not acting)

            for m in MARKETS:
                busy[m] = 1
            fleet.regions["eu-a"].server.mode = "503"

            async def fenced() -> bool:
                table = await fleet.lease_table()
                return all(table[m] == ("eu-a", 1, "Fencing") for m in MARKETS)

            await sup.eventually(fenced, within=30, what="FR and NL fenced by the acting replica")
            acting.kill()  # SIGKILL: no hand-over, the leader Lease must expire
            assert acting.proc.returncode == -9
            table = await fleet.lease_table()
            assert all(table[m] == ("eu-a", 1, "Fencing") for m in MARKETS), table
            for m in MARKETS:
                busy[m] = 0  # eu-a's writes finished: it acknowledges its fencing

            async def taken_over() -> str | None:
                now = await leader_holder(fleet)
                return now if now and now != holder else None

            survivor = await sup.eventually(taken_over, within=45, what="leader Lease taken over")
            assert pid_of(survivor) == other.proc.pid
            assert other.proc.poll() is None
            await sup.eventually(
                lambda: moved(fleet, {m: ("eu-b", 2) for m in MARKETS}),
                within=30,
                what="the survivor finished the move",
            )
            await asyncio.sleep(3)  # would a second promotion follow?

            table = await fleet.lease_table()
            assert {m: table[m] for m in MARKETS} == {m: ("eu-b", 2, "Serving") for m in MARKETS}
            b = fleet.regions["eu-b"].keeper
            assert b is not None
            for m in MARKETS:
                await sup.eventually(
                    lambda m=m: _true(b.may_write(m)), within=10, what=f"eu-b writes {m}"
                )
                assert not keeper.may_write(m)

            # The records follow the Leases (every market's lease is written first).
            async def recorded() -> list[Any] | None:
                history = (await fleet.body("eu-a"))["status"].get("history") or []
                return history if len(history) >= len(MARKETS) else None

            history = await sup.eventually(recorded, within=30, what="both moves recorded")
            await asyncio.sleep(1)
            history = (await fleet.body("eu-a"))["status"]["history"]
            assert sorted((h["markets"][0], h["epoch"], h["to"]) for h in history) == [
                ("FR", 2, "eu-b"),
                ("NL", 2, "eu-b"),
            ], history
            assert all(
                any("fencing acknowledged at epoch 1" in e for e in h["evidence"]) for h in history
            ), history

            async def announced() -> list[Any] | None:
                got = [e for e in await fleet.events("eu-a") if e["reason"] == "FailedOver"]
                return got if len(got) >= len(MARKETS) else None

            moves = await sup.eventually(announced, within=30, what="FailedOver Events")
            assert sorted(e["message"].split()[1] for e in moves) == sorted(MARKETS), moves
            survivor_log = other.log.read_text()
            assert "now leads failover" in survivor_log
            assert "moved eu-a -> eu-b" in survivor_log


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
