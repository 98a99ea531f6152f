"""The gateway's lease-backed view, decision by decision (a lease store on a closed port stands
in for an unreachable management cluster; the real apiserver is in test_gateway_leases.py)."""

from __future__ import annotations

import socket
import time

from checkout_contract import lease, routing
from checkout_kube import config as kconfig
from checkout_services.common import leasestore
from checkout_services.gateway import leases


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def route(state: routing.MarketState = "Serving") -> routing.MarketRoute:
    return routing.MarketRoute(
        market="DE", writer="eu-west-1", epoch=2, read_regions=("eu-west-1",), state=state
    )


def lease_obj(holder: str, state: str, renewed: float, duration: int = 10) -> lease.WriteLease:
    obj = lease.build("f", "ns", "DE", holder, 2, duration, renewed)
    obj["metadata"]["annotations"][lease.STATE] = state
    return lease.WriteLease.parse(obj)


async def test_holder_follows_the_lease_and_falls_back_to_the_routing() -> None:
    now = [1000.0]
    store = leasestore.LeaseStore.connect(
        kconfig.Credentials(server=f"http://127.0.0.1:{closed_port()}"), "ns"
    )
    view = leases.StoreLeases(store, "f", stale_after_s=5, clock=lambda: now[0], wall=time.time)
    try:
        # never listed (the store is unreachable): the routing table decides
        assert not await view.refresh()
        assert view.errors == 1
        assert await view.holder(route()) == "eu-west-1"
        assert await view.holder(route("Fencing")) is None

        view.listed_at = now[0]
        view.leases = {"DE": lease_obj("us-east-1", "Serving", time.time())}
        assert await view.holder(route()) == "us-east-1"  # the lease, not the routing
        view.leases = {"DE": lease_obj("us-east-1", "Fencing", time.time())}
        assert await view.holder(route()) is None
        view.leases = {"DE": lease_obj("us-east-1", "Serving", time.time() - 11)}
        assert await view.holder(route()) is None  # expired: its holder stopped writing
        view.leases = {}
        assert await view.holder(route()) == "eu-west-1"  # no Lease for the market

        # the view went stale (the management cluster is unreachable): routing again
        view.leases = {"DE": lease_obj("us-east-1", "Fencing", time.time())}
        now[0] += 6
        assert await view.holder(route()) == "eu-west-1"
    finally:
        await view.aclose()
