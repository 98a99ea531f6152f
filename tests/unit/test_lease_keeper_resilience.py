"""The services' lease keeper against a fake apiserver (tests/unit/kube_fake.py) that answers
garbage: ``LeaseKeeper.run`` logs, backs off and keeps trying, and holds the lease again with
the first good answer (it once died silently: writes stopped at lease expiry, for good)."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest
from kube_fake import LEASES, FakeApiserver, lease_list

from checkout_contract import lease as contract
from checkout_kube import config
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore


def good_lease(rv: str) -> dict[str, object]:
    obj = contract.build("f", "ns", "DE", "r1", 3, 10, time.time())
    obj["metadata"]["resourceVersion"] = rv
    return obj


async def test_run_survives_unreadable_answers_and_recovers() -> None:
    bad_time = copy.deepcopy(good_lease("7"))
    bad_time["spec"]["renewTime"] = "yesterday-ish"
    bad_epoch = copy.deepcopy(good_lease("8"))
    bad_epoch["spec"]["leaseTransitions"] = "three"
    server = FakeApiserver(
        lists=[
            (200, b"<html>a proxy's error page</html>"),
            lease_list("7", bad_time),
            lease_list("8", bad_epoch),
            lease_list("9", good_lease("9")),
        ],
        routes={("PATCH", f"{LEASES}/{contract.lease_name('f', 'DE')}"): (200, good_lease("10"))},
    )
    async with server:
        store = leasestore.LeaseStore.connect(config.Credentials(server=server.url), "ns")
        keeper = keeping.LeaseKeeper("r1", "f", store, interval=0.05, watch=False, skew=0.5)
        keeper.start()
        try:
            for _ in range(500):
                if keeper.may_write("DE"):
                    break
                await asyncio.sleep(0.02)
            assert keeper.errors >= 3  # every unreadable answer counted, none fatal
            assert keeper.renewals >= 1
            assert keeper.check("DE") == 3
        finally:
            await keeper.aclose()
            await store.aclose()
    assert [r.method for r in server.requests if r.method == "PATCH"]


async def test_an_unreadable_lease_is_a_store_error_naming_it() -> None:
    broken = good_lease("4")
    broken["spec"]["renewTime"] = "not a time"
    async with FakeApiserver(lists=[lease_list("4", broken)]) as server:
        store = leasestore.LeaseStore.connect(config.Credentials(server=server.url), "ns")
        try:
            with pytest.raises(leasestore.LeaseStoreError, match=contract.lease_name("f", "DE")):
                await store.list("f")
        finally:
            await store.aclose()
