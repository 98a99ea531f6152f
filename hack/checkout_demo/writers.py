"""Who writes each market, as the operator publishes it: CheckoutRegion ``status.markets``
where it does, else the routing ConfigMap it renders into each region (what the regions'
services follow); every change seen, and the waits of a GameDay on them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from checkout_demo import cluster
from checkout_demo.view import WriterEvent

ROUTING_CONFIGMAP = "checkout-fleet-routing"


class Published:
    """The writers, epochs, states and messages per market the demo last read, and the
    regions' routing as each of them showed it."""

    def __init__(self, names: Sequence[str], down: set[str]) -> None:
        self.names = list(names)
        self.down = down
        """The regions a scenario took down (the stack's set: their routing is not followed)."""
        self.writers: dict[str, str] = {}
        self.epochs: dict[str, int] = {}
        self.states: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.region_status: dict[str, dict[str, Any]] = {}
        self.routing_seen: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.routing_events: list[dict[str, Any]] = []
        self.source = "routing ConfigMap"
        self.events: list[WriterEvent] = []

    def serving_from(self, homes: dict[str, str]) -> bool:
        """Every region Healthy and every market Serving from ``homes[market]``, in the
        operator's status and in every running region's routing."""
        healthy = all(
            (self.region_status.get(n, {}).get("health") or {}).get("state") == "Healthy"
            for n in self.names
        )
        return (
            healthy
            and set(self.states) >= set(homes)
            and all(
                self.states[m] == "Serving"
                and self.writers.get(m) == home
                and self.routing_serving(m, home, self.epochs.get(m, 0))
                for m, home in homes.items()
            )
        )

    def read(self, api: cluster.Api, t: float) -> None:
        """Each market's writer: CheckoutRegion status.markets where the operator publishes it,
        else the rendered routing ConfigMap (the contract in design section 3); ``t``: the
        demo's clock, for the events."""
        found: dict[str, tuple[str, int, str]] = {}
        messages: dict[str, str] = {}
        source = ""
        regions = api.regions()
        self.region_status = {
            cr["spec"]["region"]: cr.get("status") or {} for cr in regions if "spec" in cr
        }
        for cr in regions:
            for m in (cr.get("status") or {}).get("markets") or ():
                found[m["market"]] = (
                    m["writer"],
                    int(m.get("epoch", 0)),
                    m.get("state", "Serving"),
                )
                messages[m["market"]] = str(m.get("message") or "")
                source = "CheckoutRegion status.markets"
        routing = None
        for name in self.names:
            data = api.configmap(cluster.region_namespace(name), ROUTING_CONFIGMAP)
            if data and "routing.json" in data:
                rendered = json.loads(data["routing.json"])
                self.record_routing(t, name, rendered)
                if routing is None or name not in self.down:
                    routing = rendered
        if routing is not None:
            for m in routing["markets"]:
                route = (m["writer"], int(m["epoch"]), m.get("state", "Serving"))
                current = found.get(m["market"])
                if current is None or route[1] > current[1]:
                    found[m["market"]] = route
                    source = source or "routing ConfigMap"
        for market, (writer, epoch, state) in found.items():
            message = messages.get(market, "") if state != "Serving" else ""
            if (
                self.writers.get(market), self.epochs.get(market), self.states.get(market),
                self.messages.get(market, ""),
            ) != (writer, epoch, state, message):  # fmt: skip
                self.events.append(WriterEvent(t, market, writer, epoch, state, source, message))
            self.writers[market] = writer
            self.epochs[market] = epoch
            self.states[market] = state
            self.messages[market] = message
        self.source = source or self.source

    def record_routing(self, t: float, region: str, rendered: dict[str, Any]) -> None:
        """What each region's services follow: the routing ConfigMap rendered into the region
        (the write guard and the gateway read it), apart from the operator's status."""
        for m in rendered.get("markets") or ():
            key = (region, m["market"])
            route = (m["writer"], int(m["epoch"]), m.get("state", "Serving"))
            if self.routing_seen.get(key) != route:
                self.routing_seen[key] = route
                self.routing_events.append(
                    {"t": round(t, 2), "region": region, "market": m["market"],
                     "writer": route[0], "epoch": route[1], "state": route[2]}
                )  # fmt: skip

    def routing_serving(self, market: str, writer: str, epoch: int) -> bool:
        """Whether every running region's routing ConfigMap shows ``writer`` Serving ``market``
        at ``epoch`` or later (what the services follow)."""
        running = [n for n in self.names if n not in self.down]
        return all(
            (r := self.routing_seen.get((n, market))) is not None
            and r[0] == writer
            and r[1] >= epoch
            and r[2] == "Serving"
            for n in running
        )

    async def wait_failover(
        self,
        region: str,
        before: dict[str, str],
        expected: bool,
        *,
        now: Callable[[], float],
        marks: dict[str, float],
        give_up_after: float,
    ) -> dict[str, Any]:
        """Wait for the operator to show a new writer for the region's markets (status.markets
        or the routing ConfigMap), up to ``give_up_after`` seconds after ``marks["fault"]`` on the
        ``now`` clock; sets ``marks["failover"]``. Never invents one: if nothing moves, it says
        so."""
        markets = sorted(m for m, w in before.items() if w == region)
        fault = marks["fault"]
        deadline = fault + give_up_after
        while now() < deadline:
            moved = {
                m: self.writers.get(m) for m in markets if self.writers.get(m) not in (None, region)
            }
            down = [m for m in markets if self.states.get(m) == "Down"]
            if markets and len(moved) + len(down) == len(markets) and moved:
                t = now()
                marks["failover"] = t
                return {
                    "happened": True,
                    "expected": expected,
                    "seconds": round(t - fault, 2),
                    "markets": markets,
                    "moved": moved,
                    "down": down,
                    "source": self.source,
                    "epochs": {m: self.epochs.get(m) for m in markets},
                }
            await asyncio.sleep(0.25)
        moved = {
            m: self.writers.get(m) for m in markets if self.writers.get(m) not in (None, region)
        }
        return {
            "happened": False,
            "expected": expected,
            "markets": markets,
            "moved": moved,
            "down": [m for m in markets if self.states.get(m) == "Down"],
            "waited_seconds": give_up_after,
            "operator_says": {m: self.messages.get(m, "") for m in markets},
            "replication": {
                n: st.get("replication") for n, st in self.region_status.items() if n != region
            },
            "message": (
                f"no failover happened: after {give_up_after:.0f} s the operator "
                f"still shows {', '.join(f'{m}={self.writers.get(m)}' for m in markets)} "
                f"(source: {self.source}); "
                + (
                    "this operator build publishes no failover (CheckoutRegion status.markets "
                    "is empty), so the markets stayed down"
                    if not any(e.source.startswith("CheckoutRegion") for e in self.events)
                    else "the operator did not move them: "
                    + "; ".join(
                        f"{m}: {self.messages.get(m) or self.states.get(m)}" for m in markets
                    )
                )
            ),
        }
