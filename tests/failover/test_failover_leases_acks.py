"""Per-keeper fencing acknowledgement on a real kube-apiserver: several keepers of one region
(orders, inventory, payments pods) keep the same market Lease; ``fenced-ack`` comes only once
every keeper heard from within the lease duration (+ skew) recorded that it stopped at the
fenced epoch, a silent keeper stops blocking once its record is that old, and stale keeper
records are removed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator.reconcile import leases
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore, write_guard

from . import fleet_env

pytestmark = pytest.mark.stack

FLEET = "ka"
SKEW = 0.5


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    return kube_namespace


@pytest.fixture
def client(kube_api: kclient.KubeClient) -> kclient.KubeClient:
    return kube_api


def keeper(
    kube: Any, ns: str, service: str, *, acknowledge: bool, busy: Counter[str] | None = None
) -> keeping.LeaseKeeper:
    store = leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, ns)
    counts = busy if busy is not None else Counter()
    return keeping.LeaseKeeper(
        "eu-a",
        FLEET,
        store,
        skew=SKEW,
        interval=0.3,
        acknowledge=acknowledge,
        in_flight=lambda market: counts[market],
        service=service,
    )


async def close(*keepers: keeping.LeaseKeeper) -> None:
    for k in keepers:
        await k.aclose()
        await k.store.aclose()


async def nl(client: kclient.KubeClient, ns: str) -> contract.WriteLease:
    return (await leases.read(client, ns, FLEET))["NL"]


async def until(client: kclient.KubeClient, ns: str, within: float, what: str, ok: Any) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lease = await nl(client, ns)
        if ok(lease):
            return lease
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within} s waiting for {what}: {lease!r}")


async def fence(client: kclient.KubeClient, ns: str) -> contract.WriteLease:
    """Fence NL towards eu-b as the operator does: re-read and retry a lost compare-and-swap
    (the keepers renew the same Lease several times a second)."""
    for _ in range(20):
        try:
            return await leases.fence(client, await nl(client, ns), "eu-b", "Drain")
        except kerrors.Conflict:
            await asyncio.sleep(0.05)
    raise AssertionError("could not fence NL in 20 attempts")


def test_keeper_ids_are_valid_annotation_names_and_distinct() -> None:
    a = keeping.keeper_id("payments", "pod-" + "x" * 80, 4242)
    b = keeping.keeper_id("payments", "pod-" + "x" * 80, 4242)
    c = keeping.keeper_id("Orders_Svc", "web-7f9c/ABC", 17)
    assert a != b  # two keepers of one process stay apart
    for ident in (a, b, c):
        name = "keeper." + ident
        assert len(name) <= 63, name
        assert name[-1].isalnum(), name
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-"), name
    assert c.startswith("orders-svc.web-7f9c-abc.17.")


async def test_the_ack_waits_for_a_sibling_keepers_in_flight_writes(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    duration = 3
    await leases.create(client, namespace, FLEET, "NL", "eu-a", duration, time.time())
    busy: Counter[str] = Counter({"NL": 1})
    payments = keeper(kube, namespace, "payments", acknowledge=True)
    orders = keeper(kube, namespace, "orders", acknowledge=False, busy=busy)
    try:
        for k in (payments, orders):
            await k.step()
            k.start()
        serving = await until(
            client,
            namespace,
            5,
            "both keepers' records",
            lambda le: {payments.key, orders.key} <= set(le.keepers),
        )
        assert payments.check("NL") == orders.check("NL") == serving.epoch
        fenced = await fence(client, namespace)
        # Longer than duration + skew: orders keeps its record fresh while its write runs, so
        # payments (0 in flight) must not acknowledge for it.
        deadline = time.monotonic() + duration + SKEW + 1.5
        while time.monotonic() < deadline:
            now = await nl(client, namespace)
            assert now.acked_epoch != fenced.epoch, "acknowledged with a sibling's write in flight"
            await asyncio.sleep(0.2)
        mine = now.keepers[payments.key]
        theirs = now.keepers[orders.key]
        assert mine is not None
        assert mine.stopped == fenced.epoch
        assert theirs is not None
        assert theirs.stopped == 0
        assert payments.siblings_busy(now) == [orders.key]
        with pytest.raises(keeping.LeaseLost, match="fenced away"):
            orders.check("NL")
        busy["NL"] = 0  # the last write finished
        acked = await until(
            client, namespace, 5, "the fenced-ack", lambda le: le.acked_epoch == fenced.epoch
        )
        theirs = acked.keepers[orders.key]
        assert theirs is not None
        assert theirs.stopped == fenced.epoch
    finally:
        await close(payments, orders)


async def test_a_silent_sibling_blocks_the_ack_until_its_record_is_older_than_the_lease(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    duration = 3
    await leases.create(client, namespace, FLEET, "NL", "eu-a", duration, time.time())
    payments = keeper(kube, namespace, "payments", acknowledge=True)
    inventory = keeper(kube, namespace, "inventory", acknowledge=False)
    try:
        for k in (payments, inventory):
            await k.step()
            k.start()
        await until(
            client,
            namespace,
            5,
            "both keepers' records",
            lambda le: {payments.key, inventory.key} <= set(le.keepers),
        )
        # inventory goes silent (cut off, or its pod hangs) without saying it stopped
        await inventory.aclose()
        fenced = await fence(client, namespace)
        last = fenced.keepers[inventory.key]
        assert last is not None
        assert last.stopped == 0
        acked = await until(
            client,
            namespace,
            duration + SKEW + 5,
            "the fenced-ack",
            lambda le: le.acked_epoch == fenced.epoch,
        )
        mine = acked.keepers[payments.key]
        assert mine is not None
        assert mine.stopped == fenced.epoch
        # payments wrote the ack in the same patch as its record: not before the silent
        # sibling's record was older than duration + skew
        assert mine.renewed >= last.renewed + duration + SKEW, (mine, last)
        assert acked.keepers[inventory.key] == last  # nobody wrote for it
    finally:
        await close(payments, inventory)


async def test_stale_keeper_records_are_removed(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    duration = 2
    await leases.create(client, namespace, FLEET, "NL", "eu-a", duration, time.time())
    admin = leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, namespace)
    now = time.time()
    old = contract.KeeperRecord("", "eu-a", now - 11 * duration, 1).dump()
    recent = contract.KeeperRecord("", "eu-c", now - 3 * duration, 0).dump()
    lease = await nl(client, namespace)
    planted = {
        contract.KEEPER + "gone.pod-1.7.1": old,
        contract.KEEPER + "junk": "not json",
        contract.KEEPER + "recent.pod-2.9.1": recent,
    }
    meta = {"name": lease.raw["metadata"]["name"], "resourceVersion": lease.resource_version}
    await admin.replace({"metadata": {**meta, "annotations": planted}, "spec": {}})
    k = keeper(kube, namespace, "orders", acknowledge=False)
    try:
        await k.step()
        after = await nl(client, namespace)
        assert set(after.keepers) == {k.key, contract.KEEPER + "recent.pod-2.9.1"}
        assert k.check("NL") == after.epoch
    finally:
        await close(k)
        await admin.aclose()


async def test_sibling_keepers_racing_on_one_lease_all_keep_writing(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    await leases.create(client, namespace, FLEET, "NL", "eu-a", 4, time.time())
    keepers = [keeper(kube, namespace, f"svc{i}", acknowledge=i == 0) for i in range(4)]
    try:
        for _ in range(5):
            await asyncio.gather(*(k.step() for k in keepers))
            for k in keepers:
                assert k.may_write("NL"), "a keeper lost its lease to its siblings' patches"
        assert sum(k.conflicts for k in keepers) > 0  # they did race
        assert all(k.errors == 0 for k in keepers)
        lease = await nl(client, namespace)
        assert {k.key for k in keepers} <= set(lease.keepers)
    finally:
        await close(*keepers)


async def test_a_write_admitted_by_the_guard_holds_back_the_ack_until_it_ends(
    kube: Any, namespace: str, client: kclient.KubeClient, tmp_path: Path
) -> None:
    """orders / inventory count their writes through ``WriteGuard.writing`` (the keeper's
    in_flight): a write admitted before the fencing delays the region's ack until it ends."""
    routing = fleet_env.two_region_routing_file(tmp_path / "routing.json", FLEET, "eu-a", 1)
    await leases.create(client, namespace, FLEET, "NL", "eu-a", 3, time.time())
    guard = write_guard.WriteGuard("eu-a", routing)
    payments = keeper(kube, namespace, "payments", acknowledge=True)
    inventory = keeper(kube, namespace, "inventory", acknowledge=False)
    inventory.in_flight = guard.in_flight
    guard.keeper = inventory
    try:
        for k in (payments, inventory):
            await k.step()
            k.start()
        with guard.writing("NL") as route:
            assert route.writer == "eu-a"
            fenced = await fence(client, namespace)
            for _ in range(15):
                await asyncio.sleep(0.2)
                now = await nl(client, namespace)
                assert now.acked_epoch != fenced.epoch, "acknowledged during an admitted write"
            with pytest.raises(write_guard.NotLeaseHolder, match="fenced away"):
                guard.check("NL")
        acked = await until(
            client, namespace, 5, "the fenced-ack", lambda le: le.acked_epoch == fenced.epoch
        )
        theirs = acked.keepers[inventory.key]
        assert theirs is not None
        assert theirs.stopped == fenced.epoch
    finally:
        await close(payments, inventory)
