"""The controller's pure helpers: which region a child event belongs to; event coalescing."""

from __future__ import annotations

import asyncio
from typing import Any

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

    async def run(ref: index.Ref) -> None:
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

    async def run(ref: index.Ref) -> None:
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
