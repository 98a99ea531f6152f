"""Market write leases on a real kube-apiserver: compare-and-swap, renewal, fencing, and the
services' write guard refusing writes it holds no lease for (naming the writer)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_kube import errors as kerrors
from checkout_operator.reconcile import leases
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore, write_guard
from stack import operator_support as sup

from . import fleet_env

pytestmark = pytest.mark.stack

FLEET = "lt"


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    return kube_namespace


@pytest.fixture
def client(kube_api: kclient.KubeClient) -> kclient.KubeClient:
    return kube_api


def store(kube: Any, ns: str) -> leasestore.LeaseStore:
    return leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, ns)


def routing_file(tmp_path: Path, writer: str, epoch: int) -> Path:
    return fleet_env.two_region_routing_file(tmp_path / "routing.json", FLEET, writer, epoch)


async def test_compare_and_swap_lets_exactly_one_promotion_win(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    created = await leases.create(client, namespace, FLEET, "NL", "eu-a", 5, time.time())
    assert (created.holder, created.epoch, created.state) == ("eu-a", 1, "Serving")
    with pytest.raises(kerrors.Conflict):
        await leases.create(client, namespace, FLEET, "NL", "eu-b", 5, time.time())
    fenced = await leases.fence(client, created, "eu-b", "ProbeFailures")
    assert (fenced.state, fenced.fencing_to) == ("Fencing", "eu-b")
    # Two operators promote from the same read: one wins, the other gets a Conflict.
    results = await asyncio.gather(
        leases.promote(client, fenced, "eu-b", 2, 5, time.time()),
        leases.promote(client, fenced, "eu-c", 2, 5, time.time()),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, contract.WriteLease)]
    lost = [r for r in results if isinstance(r, kerrors.Conflict)]
    assert len(won) == 1
    assert len(lost) == 1
    # A stale write (the pre-fencing resourceVersion) is refused too.
    with pytest.raises(kerrors.Conflict):
        await leases.fence(client, created, "eu-c", "Drain")
    now = (await leases.read(client, namespace, FLEET))["NL"]
    assert now.epoch == 2
    assert now.holder == won[0].holder
    assert now.state == "Serving"
    assert now.moved_at is not None
    lease_obj = sup.get(kube, "lease", "-n", namespace, contract.lease_name(FLEET, "NL"))
    assert lease_obj["spec"]["leaseTransitions"] == 2
    assert lease_obj["spec"]["holderIdentity"] == won[0].holder


async def test_keeper_renews_acknowledges_fencing_and_the_guard_names_the_writer(
    kube: Any, namespace: str, client: kclient.KubeClient, tmp_path: Path
) -> None:
    first = await leases.create(client, namespace, FLEET, "NL", "eu-a", 4, time.time() - 1)
    a = keeping.LeaseKeeper("eu-a", FLEET, store(kube, namespace), skew=0.5)
    b = keeping.LeaseKeeper("eu-b", FLEET, store(kube, namespace), skew=0.5)
    try:
        await a.step()
        await b.step()
        renewed = (await leases.read(client, namespace, FLEET))["NL"]
        assert renewed.renewed_at > first.renewed_at
        assert a.may_write("NL")
        assert not b.may_write("NL")
        guard_a = write_guard.WriteGuard("eu-a", routing_file(tmp_path, "eu-a", 1), a)
        guard_b = write_guard.WriteGuard("eu-b", routing_file(tmp_path, "eu-a", 1), b)
        assert guard_a.check("NL").writer == "eu-a"
        with pytest.raises(write_guard.NotWriter, match="write-primary is eu-a"):
            guard_b.check("NL")

        # The operator fences eu-a: on its next pass it stops writing and acknowledges.
        fenced = await leases.fence(client, renewed, "eu-b", "Drain")
        await a.step()
        assert not a.may_write("NL")
        with pytest.raises(write_guard.NotLeaseHolder, match="fenced away from eu-a"):
            guard_a.check("NL")
        acked = (await leases.read(client, namespace, FLEET))["NL"]
        assert acked.acked_epoch == 1
        assert acked.resource_version != fenced.resource_version

        await leases.promote(client, acked, "eu-b", 2, 4, time.time())
        await a.step()
        await b.step()
        assert b.may_write("NL")
        assert not a.may_write("NL")
        # The routing file still says eu-a at epoch 1: eu-a's guard now refuses on the lease.
        with pytest.raises(write_guard.NotLeaseHolder) as err:
            guard_a.check("NL")
        assert err.value.extra["writer"] == "eu-b"
        assert "its writer is eu-b (epoch 2)" in str(err.value)
        guard_b2 = write_guard.WriteGuard("eu-b", routing_file(tmp_path, "eu-b", 2), b)
        assert guard_b2.check("NL").epoch == 2
    finally:
        await a.store.aclose()
        await b.store.aclose()


async def test_a_writer_that_cannot_renew_stops_before_its_lease_expires(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    await leases.create(client, namespace, FLEET, "NL", "eu-a", 2, time.time())
    live = store(kube, namespace)
    keeper = keeping.LeaseKeeper("eu-a", FLEET, live, skew=0.5)
    await keeper.step()
    renewed_at = time.monotonic()
    assert keeper.may_write("NL")
    # The lease store goes away (a closed port): renewals fail, writes stop in time.
    dead = leasestore.LeaseStore.connect(
        kconfig.Credentials(server=f"https://127.0.0.1:{sup.free_port()}"), namespace
    )
    keeper.store = dead
    try:
        while keeper.may_write("NL"):
            await keeper.step()
            await asyncio.sleep(0.05)
        stopped = time.monotonic() - renewed_at
        assert stopped < 2.0 - 0.4, f"still writing {stopped:.2f} s after the last renewal"
        assert keeper.errors > 0
        with pytest.raises(keeping.LeaseLost, match="could not renew"):
            keeper.check("NL")
    finally:
        await live.aclose()
        await dead.aclose()


async def test_a_watching_keeper_lists_only_every_fourth_pass_and_still_acks_a_fencing(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    """With its watch running, a keeper renews from what the watch and its own writes showed and
    LISTs only every ``list_every`` passes (an idle fleet's apiserver was mostly these lists);
    a fencing written between two lists still reaches it by the watch and is acknowledged."""
    await leases.create(client, namespace, FLEET, "BE", "eu-a", 6, time.time() - 1)
    keeper = keeping.LeaseKeeper(
        "eu-a", FLEET, store(kube, namespace), skew=0.5, interval=0.1, list_every=4
    )
    keeper.start()
    try:
        deadline = time.monotonic() + 10
        while keeper.renewals < 12:
            assert time.monotonic() < deadline, f"{keeper.renewals} renewals in 10 s"
            await asyncio.sleep(0.05)
        assert keeper.may_write("BE")
        passes = keeper._passes
        assert keeper.lists <= passes // 4 + 2, (keeper.lists, passes)
        assert keeper.lists >= 1

        current = (await leases.read(client, namespace, FLEET))["BE"]
        for _ in range(20):  # the keeper renews meanwhile: compare-and-swap until it lands
            try:
                await leases.fence(client, current, "eu-b", "Drain")
                break
            except kerrors.Conflict:
                current = (await leases.read(client, namespace, FLEET))["BE"]
        deadline = time.monotonic() + 5
        while (await leases.read(client, namespace, FLEET))["BE"].acked_epoch != 1:
            assert time.monotonic() < deadline, "the fencing was not acknowledged in 5 s"
            await asyncio.sleep(0.05)
        assert not keeper.may_write("BE")
    finally:
        await keeper.aclose()
        await keeper.store.aclose()
