"""The controller's pure helpers: which region a child event belongs to; event coalescing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from checkout_operator.reconcile import controller, index

R = index.Ref


def child(owner: str | None = None, label: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "checkout-cart", "namespace": "checkout", "labels": {}}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x"},
            {
                "apiVersion": "checkout-operator.io/v1alpha1",
                "kind": "CheckoutRegion",
                "name": owner,
            },
        ]
    if label:
        meta["labels"]["checkout-operator.io/region"] = label
    return {"kind": "Deployment", "metadata": meta}


REGIONS = [
    {"metadata": {"name": "cr-a", "namespace": "checkout"}, "spec": {"region": "eu-west-1"}},
    {"metadata": {"name": "cr-b", "namespace": "other"}, "spec": {"region": "us-east-1"}},
]


def test_owner_reference_wins() -> None:
    assert controller.region_of_child(child(owner="cr-z", label="eu-west-1"), REGIONS) == R(
        "checkout", "cr-z"
    )


def test_region_label_matched_in_the_same_namespace() -> None:
    assert controller.region_of_child(child(label="eu-west-1"), REGIONS) == R("checkout", "cr-a")
    assert controller.region_of_child(child(label="us-east-1"), REGIONS) is None
    assert controller.region_of_child(child(), REGIONS) is None


def test_owner_of_another_group_is_ignored() -> None:
    body = child()
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "example.com/v1", "kind": "CheckoutRegion", "name": "cr-z"}
    ]
    assert controller.region_of_child(body, REGIONS) is None


async def test_debouncer_coalesces_a_burst_into_one_run_per_region() -> None:
    runs: list[index.Ref] = []

    async def run(ref: index.Ref, started: controller.Started) -> None:
        started()
        runs.append(ref)

    debouncer = controller.Debouncer(run, 0.05)
    assert debouncer.poke(R("a", "x"))
    assert not debouncer.poke(R("a", "x"))
    assert debouncer.poke(R("a", "y"))
    await debouncer.drain()
    assert sorted(runs) == [R("a", "x"), R("a", "y")]
    # after the run, a new poke schedules a new run
    assert debouncer.poke(R("a", "x"))
    await debouncer.drain()
    assert len(runs) == 3


async def test_debouncer_survives_a_failing_run() -> None:
    calls = 0

    async def run(ref: index.Ref, started: controller.Started) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    debouncer = controller.Debouncer(run, 0)
    debouncer.poke(R("a", "x"))
    await debouncer.drain()
    debouncer.poke(R("a", "x"))
    await debouncer.drain()
    assert calls == 2
    await debouncer.aclose()
    await asyncio.sleep(0)


async def test_debouncer_folds_pokes_into_a_run_still_waiting_for_its_turn() -> None:
    gate = asyncio.Event()
    runs: list[str] = []

    async def run(ref: index.Ref, started: controller.Started) -> None:
        await gate.wait()  # e.g. waiting for a free reconcile slot
        started()
        runs.append("started")
        await asyncio.sleep(0.01)

    debouncer = controller.Debouncer(run, 0)
    assert debouncer.poke(R("a", "x"))
    await asyncio.sleep(0.01)
    # the run waits: pokes join it instead of queueing a second reconcile
    assert not debouncer.poke(R("a", "x"))
    assert not debouncer.poke(R("a", "x"))
    gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert runs == ["started"]
    # once it has started reading, a change needs (and gets) another run
    assert debouncer.poke(R("a", "x"))
    await debouncer.drain()
    assert runs == ["started", "started"]
    assert not debouncer._pending


async def test_reconcile_slots_bound_concurrent_reconciles() -> None:
    from checkout_kube import client as kclient
    from checkout_kube import config as kconfig
    from checkout_operator.reconcile import region

    creds = kconfig.Credentials(server="https://127.0.0.1:1")
    async with kclient.KubeClient(creds) as kube:
        ctx = region.Context(kube, lambda *_: None, max_concurrent=2)  # type: ignore[arg-type,return-value]
        active = peak = 0

        async def work() -> None:
            nonlocal active, peak
            async with ctx.slot():
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1

        await asyncio.gather(*(work() for _ in range(7)))
        assert peak == 2
        with pytest.raises(ValueError, match="at least 1"):
            region.Context(kube, lambda *_: None, max_concurrent=0)  # type: ignore[arg-type,return-value]


async def test_slots_admit_spec_changes_before_background_reconciles() -> None:
    from checkout_operator.reconcile import region

    slots = region.Slots(1)
    order: list[str] = []

    async def job(name: str, priority: int) -> None:
        async with slots.hold(priority):
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.create_task(job("first", region.URGENT))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(job("progress-a", region.BACKGROUND)),
        asyncio.create_task(job("progress-b", region.BACKGROUND)),
        asyncio.create_task(job("new-region", region.URGENT)),
    ]
    await asyncio.gather(first, *waiting)
    assert order == ["first", "new-region", "progress-a", "progress-b"]
    assert (slots.in_use, slots.waiting) == (0, 0)


async def test_slots_a_cancelled_waiter_leaks_no_slot() -> None:
    from checkout_operator.reconcile import region

    slots = region.Slots(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.hold():
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0)
    assert (slots.in_use, slots.waiting) == (1, 1)
    waiter.cancel()
    await asyncio.sleep(0)
    assert slots.waiting == 0
    release.set()
    await held
    assert slots.in_use == 0
    async with slots.hold(region.BACKGROUND):
        assert slots.in_use == 1
