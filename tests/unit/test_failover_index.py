"""The failover engine's region index (reconcile/failover/watching.py): what the watch keeps
so that a decision round reads memory instead of listing CheckoutRegions. A list replaces a
namespace, watch events update it; each body is parsed once; invalid or deleting regions are
left out of the members; only a region coming, going or changing its spec wakes the engine
(a status write does not)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from example_data import example_docs

import checkout_tasks as tasks
from checkout_operator.reconcile.failover import RegionIndex
from checkout_operator.reconcile.failover.deciding import lag_from
from checkout_operator.reconcile.failover.watching import WatchEndedEarly, Watcher, fleets


def body(name: str, namespace: str = "shop", generation: int = 1) -> dict[str, Any]:
    doc = copy.deepcopy(example_docs()[name])
    doc["metadata"].update(namespace=namespace, generation=generation, resourceVersion="1")
    return doc


def names(index: RegionIndex, namespace: str = "shop") -> list[str]:
    return [p.spec.region for _, p in index.members(namespace)]


def test_list_then_watch_events_keep_the_index() -> None:
    idx = RegionIndex()
    assert not idx.synced
    assert idx.replace([body("eu-west-1"), body("us-east-1")], None)
    assert idx.synced
    assert names(idx) == ["eu-west-1", "us-east-1"]
    assert idx.namespaces() == ["shop"]

    # a status write (same generation): the index keeps the new body, no wake-up
    with_status = body("eu-west-1")
    with_status["status"] = {"replication": [{"peer": "us-east-1", "lagMessages": 7,
                                              "observedAt": "2026-01-01T00:00:00Z"}]}  # fmt: skip
    assert not idx.apply("MODIFIED", with_status)
    member = next(m for m in idx.members("shop") if m[1].spec.region == "eu-west-1")
    assert lag_from(member[0]) == {"us-east-1": 7}

    # a spec change (new generation) wakes; so do a new region and a deletion
    changed = body("eu-west-1", generation=2)
    changed["spec"]["failover"]["dryRun"] = True
    assert idx.apply("MODIFIED", changed)
    member = next(m for m in idx.members("shop") if m[1].spec.region == "eu-west-1")
    assert member[1].spec.failover.dry_run
    assert idx.apply("ADDED", body("ap-south-1"))
    assert idx.apply("DELETED", body("us-east-1"))
    assert names(idx) == ["ap-south-1", "eu-west-1"]
    assert not idx.apply("BOOKMARK", body("us-east-1"))


def test_invalid_and_deleting_regions_are_not_members() -> None:
    idx = RegionIndex()
    bad = body("us-east-1")
    bad["spec"]["homeMarkets"] = "not a list"
    deleting = body("ap-south-1")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    idx.replace([body("eu-west-1"), bad, deleting], "shop")
    assert names(idx) == ["eu-west-1"]
    # fixing the spec makes it a member again, and that is worth a decision
    assert idx.apply("MODIFIED", body("us-east-1", generation=2))
    assert names(idx) == ["eu-west-1", "us-east-1"]


def test_a_namespace_list_replaces_only_that_namespace() -> None:
    idx = RegionIndex()
    idx.replace([body("eu-west-1", "a"), body("us-east-1", "b")], None)
    assert not idx.replace([body("eu-west-1", "a")], "a")  # nothing changed
    assert idx.replace([], "a")
    assert idx.namespaces() == ["b"]
    assert names(idx, "b") == ["us-east-1"]
    by_fleet = fleets(idx.members("b"))
    assert list(by_fleet) == [idx.members("b")[0][1].spec.fleet]


class FakeClient:
    """Lists and watches from a script: each watch yields its events, then ends."""

    def __init__(self, listed: list[list[dict[str, Any]]], watches: list[list[Any]]) -> None:
        self.listed = listed
        self.watches = watches
        self.lists = 0

    async def list(self, *args: Any, **kw: Any) -> list[dict[str, Any]]:
        self.lists += 1
        return self.listed.pop(0) if self.listed else []

    async def watch(self, *args: Any, **kw: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        events = self.watches.pop(0) if self.watches else []
        for event in events:
            yield event
        if not self.watches:
            await asyncio.Event().wait()  # the last watch stays open


async def test_the_watcher_lists_follows_and_relists_with_backoff_after_a_short_watch() -> None:
    wakes: list[int] = []
    client = FakeClient(
        listed=[[body("eu-west-1")], [body("eu-west-1"), body("us-east-1")]],
        watches=[[("ADDED", body("ap-south-1"))], []],
    )
    watcher = Watcher(client, "shop", lambda: wakes.append(1))  # type: ignore[arg-type]
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    handle = tasks.start("watch", watcher.watch_regions, sleep=sleep)
    try:
        for _ in range(200):
            if client.lists >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        # the first watch ended at once (an ERROR event does that): a failure, so the guard
        # backed off before listing again; the re-list replaced what the first watch added
        assert client.lists == 2
        assert len(pauses) == 1
        assert isinstance(handle.error, WatchEndedEarly)
        assert names(watcher.regions) == ["eu-west-1", "us-east-1"]
        assert len(wakes) >= 3  # first list, the ADDED region, the re-list's changes
    finally:
        await handle.stop()
