"""The CheckoutRegion health testdata are objects the operator wrote on the real apiserver.

A three-region fleet (tests/failover/fleet_env.py) goes through the states an SRE cares about:
rolling out, ready, a spec change not yet observed, automatic failover paused, a refused
request, a market fencing towards a switchover target, switched over, replication lagging,
failed over after failing probes, a market down; plus a region never reconciled and one with
an invalid spec. Each state's object is run through Argo CD's Lua engine (hack/tools/argocd-lua)
and must give the intended health; and it must still have the shape of the committed testdata
file of that state (same health status, same status keys).

``CHECKOUT_WRITE_ARGOCD_FIXTURES=1`` rewrites argocd/.../CheckoutRegion/testdata/ and the
health_test.yaml from this run (review the diff). The lag figure of ``replication-lagging`` is
the one input not measured: the replication monitor runs with a lag measurement that returns
500 messages (the real Kafka measurement is tested in tests/replication); the condition and the
status write are the operator's.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkout_operator.failover import requests as freq
from checkout_operator.reconcile import index, region
from checkout_operator.reconcile import replication as rrep
from checkout_operator.replication import lag, offsets
from failover.fleet_env import FLEET, Fleet, running_fleet
from stack import operator_support as sup
from stack.test_edge_crds import install_crds as install_edge_crds

from . import engine, live

pytestmark = pytest.mark.stack

WRITE = os.environ.get("CHECKOUT_WRITE_ARGOCD_FIXTURES") == "1"
TESTDATA = engine.REGION_DIR / "testdata"
HEADER = (
    "# Written by the operator on the real apiserver; dumped by\n"
    "# tests/argocd/test_argocd_fixtures_stack.py (CHECKOUT_WRITE_ARGOCD_FIXTURES=1 rewrites).\n"
)
DERIVED = (
    "# Derived from ready.yaml with Ready=Unknown (the operator does not write Unknown today;\n"
    "# the script must not wait on it as Progressing forever).\n"
)
BASE = {"writeLeaseSeconds": 6, "minDwellSeconds": 0, "soakSeconds": 2, "failback": "Manual"}

# state -> (health status, a fragment of the message that says why)
EXPECTED: dict[str, tuple[str, str]] = {
    "no-status": ("Progressing", "Waiting for the operator to reconcile the region"),
    "invalid-spec": ("Degraded", "may not hold data of market"),
    "rolling-out": ("Progressing", "workloads not ready"),
    "ready": ("Healthy", "objects applied"),
    "ready-unknown": ("Unknown", "Ready is Unknown"),
    "stale-generation": ("Progressing", "Waiting for the operator to observe generation"),
    "paused": ("Healthy", "automatic failover paused by request"),
    "refused-request": ("Healthy", "objects applied"),
    "fencing": ("Progressing", "market DE moving from eu-b to eu-a"),
    "switched-over": ("Degraded", "market DE failed over to eu-a at epoch 2 (Drain at"),
    "replication-lagging": ("Degraded", "replication lagging: eu-a: 500 messages"),
    "failed-over": ("Degraded", "market NL failed over to eu-b at epoch 2 (ProbeFailures at"),
    "market-down": ("Degraded", "market DE is down"),
}


TRANSIENT = frozenset({"rolling-out"})
"""States read while the operator is still writing (the region right after its first reconcile,
before the failover engine adds ``markets``): their shape may be a part of the committed one,
never more."""


class Dumper:
    def __init__(self, fleet: Fleet, tmp: Path) -> None:
        self.fleet = fleet
        self.tmp = tmp
        self.namespaces = {fleet.ns: live.NAMESPACE}
        self.seen: dict[str, dict[str, str]] = {}

    async def dump(self, state: str, name: str, body: dict[str, Any] | None = None) -> None:
        live_body = body if body is not None else await self.fleet.body(name)
        obj = live.sanitized(live_body, self.namespaces)
        self.save(state, obj, HEADER)

    def save(self, state: str, obj: dict[str, Any], header: str) -> None:
        fresh = self.tmp / f"{state}.yaml"
        live.write_yaml(fresh, obj, header)
        got = engine.health(engine.REGION_DIR, fresh)
        want_status, fragment = EXPECTED[state]
        assert got["status"] == want_status, (state, got, json.dumps(obj.get("status"))[:3000])
        assert fragment in got["message"], (state, got)
        self.seen[state] = got
        committed = TESTDATA / f"{state}.yaml"
        if WRITE:
            committed.write_text(fresh.read_text())
        else:
            assert committed.exists(), f"{committed} missing: rerun with WRITE (module docstring)"
            old = yaml.safe_load(committed.read_text())
            assert engine.health(engine.REGION_DIR, committed)["status"] == want_status
            if state in TRANSIENT:  # caught mid-way: the operator may not have written it all
                assert _shape(obj) <= _shape(old), f"{state}: the operator's status changed shape"
            else:
                assert _shape(old) == _shape(obj), f"{state}: the operator's status changed shape"


def _shape(obj: dict[str, Any]) -> set[str]:
    """The status keys (and the keys of each market entry / condition type)."""
    st = obj.get("status") or {}
    keys = {f"status.{k}" for k in st}
    for m in st.get("markets") or ():
        keys |= {f"markets[].{k}" for k in m}
    keys |= {f"condition {c['type']}" for c in st.get("conditions") or ()}
    return keys


async def _ready(fleet: Fleet, name: str) -> bool:
    await fleet.ctl.reconcile(index.Ref(fleet.ns, name))
    st = (await fleet.body(name)).get("status") or {}
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or ()
    ) and bool(st.get("markets"))


async def _market(fleet: Fleet, name: str, market: str, state: str, writer: str) -> bool:
    st = (await fleet.body(name)).get("status") or {}
    return any(
        m["market"] == market and m["state"] == state and m["writer"] == writer
        for m in st.get("markets") or ()
    )


async def _out_of_fleet(fleet: Fleet, d: Dumper) -> None:
    """A region nobody reconciled yet, and one whose spec breaks residency (in a namespace the
    fleet's failover engine does not watch)."""
    ns = sup.unique("argo")
    d.namespaces[ns] = live.NAMESPACE
    fleet.kube.kubectl("create", "namespace", ns)
    secret = await fleet.client.get("v1", "Secret", "self-kubeconfig", fleet.ns)
    sup.apply_yaml(
        fleet.kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "self-kubeconfig", "namespace": ns},
            "data": secret["data"],
        },
    )
    try:
        api = f"/apis/{region.API_VERSION}/namespaces/{ns}/checkoutregions"
        bodies = {}
        for name, jur, market, targets in (
            ("eu-x", "EU", "NL", ["us-x"]),
            ("us-x", "US", "US", []),
        ):
            body = sup.example("eu-west-1")
            body["metadata"] = {"name": name, "namespace": ns}
            body["spec"].update(
                region=name,
                fleet=FLEET,
                jurisdiction=jur,
                homeMarkets=[{"country": market}],
                replication={},
                failover={"targets": targets},
            )
            bodies[name] = await fleet.client.request("POST", api, body=body)
        await d.dump("no-status", "eu-x", bodies["eu-x"])
        await fleet.ctl.reconcile(index.Ref(ns, "eu-x"))
        fresh = await fleet.client.get(region.API_VERSION, region.REGION_KIND, "eu-x", ns)
        await d.dump("invalid-spec", "eu-x", fresh)
    finally:
        sup.delete_namespace(fleet.kube, ns)


async def _lagging(fleet: Fleet, d: Dumper) -> None:
    """us-a pulls from eu-a; the monitor measures 500 messages > maxLagOnFailover 100."""
    child = fleet.child_ns("us-a")
    for secret in ("eu-west-1-kafka", "eu-a-kafka"):
        sup.apply_yaml(
            fleet.kube,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "namespace": child},
                "stringData": {"bootstrap": "127.0.0.1:1"},
            },
        )
    peer = {"region": "eu-a", "bootstrapSecretRef": {"name": "eu-a-kafka", "key": "bootstrap"}}
    await fleet.client.merge_patch(
        region.API_VERSION,
        region.REGION_KIND,
        "us-a",
        fleet.ns,
        {"spec": {"replication": {"peers": [peer]}}},
    )
    await fleet.ctl.reconcile(index.Ref(fleet.ns, "us-a"))

    async def measure(own: str, peers: Any, patterns: Any) -> list[lag.PeerLag]:
        topic = offsets.TopicLag("eu-a", "checkout.orders", 500, 3.0)
        return [lag.PeerLag("eu-a", (topic,))]

    await rrep.observe(fleet.ctl.ctx, index.Ref(fleet.ns, "us-a"), measure)
    await d.dump("replication-lagging", "us-a")


async def test_the_health_testdata_are_what_the_operator_writes(kube: Any, tmp_path: Path) -> None:
    install_edge_crds(kube)  # the regions render HTTPRoutes and DNSEndpoints
    async with running_fleet(kube, BASE) as fleet:
        d = Dumper(fleet, tmp_path)
        await d.dump("rolling-out", "eu-a", fleet.first_bodies["eu-a"])
        for name in fleet.regions:
            await sup.eventually(lambda n=name: _ready(fleet, n), within=120, what=f"{name} ready")
        ready = await fleet.body("eu-a")
        await d.dump("ready", "eu-a", ready)
        unknown = live.sanitized(copy.deepcopy(ready), d.namespaces)
        for c in unknown["status"]["conditions"]:
            if c["type"] == "Ready":
                c.update(status="Unknown", reason="Unknown", message="no word from the operator")
        d.save("ready-unknown", unknown, DERIVED)

        await fleet.patch_failover("eu-a", {"soakSeconds": 3})
        await d.dump("stale-generation", "eu-a")
        await fleet.ctl.reconcile(index.Ref(fleet.ns, "eu-a"))

        rid = await live.request(fleet, "eu-a", "pause")
        assert (await live.outcome(fleet, "eu-a", rid))["outcome"] == "Accepted"
        await d.dump("paused", "eu-a")
        rid = await live.request(fleet, "eu-a", "resume")
        assert (await live.outcome(fleet, "eu-a", rid))["outcome"] == "Accepted"

        rid = await live.request(fleet, "eu-a", "switchover", "us-a")
        refused = await live.outcome(fleet, "eu-a", rid)
        assert refused["outcome"] == "Refused"
        assert "us-a: residency forbids" in refused["message"], refused
        await d.dump("refused-request", "eu-a")

        b = fleet.regions["eu-b"]
        assert b.keeper is not None
        busy = {"DE": 1}
        b.keeper.in_flight = lambda market: busy.get(market, 0)
        rid = await live.request(fleet, "eu-b", "switchover", "eu-a")
        assert (await live.outcome(fleet, "eu-b", rid))["outcome"] == "Accepted"
        await sup.eventually(
            lambda: _market(fleet, "eu-b", "DE", "Fencing", "eu-b"), within=30, what="DE fencing"
        )
        await d.dump("fencing", "eu-b")
        busy["DE"] = 0
        await sup.eventually(
            lambda: _market(fleet, "eu-b", "DE", "Serving", "eu-a"), within=30, what="DE on eu-a"
        )

        async def recorded() -> bool:
            last = ((await fleet.body("eu-b")).get("status") or {}).get("lastFailover") or {}
            return last.get("markets") == ["DE"]

        await sup.eventually(recorded, within=30, what="switchover recorded")
        await d.dump("switched-over", "eu-b")
        rid = await live.request(fleet, "eu-b", "return-home")
        assert (await live.outcome(fleet, "eu-b", rid))["outcome"] == "Accepted"
        await sup.eventually(
            lambda: _market(fleet, "eu-b", "DE", "Serving", "eu-b"), within=30, what="DE home"
        )

        await _lagging(fleet, d)

        fleet.regions["eu-a"].server.mode = "503"
        await sup.eventually(
            lambda: _market(fleet, "eu-a", "NL", "Serving", "eu-b"), within=60, what="NL moved"
        )

        async def failover_recorded() -> bool:
            st = (await fleet.body("eu-a")).get("status") or {}
            moved = {m for h in st.get("history") or () if h["to"] == "eu-b" for m in h["markets"]}
            return moved >= {"FR", "NL"} and st.get("health", {}).get("state") == "Unhealthy"

        await sup.eventually(failover_recorded, within=30, what="failover recorded")
        await d.dump("failed-over", "eu-a")

        fleet.regions["eu-b"].server.mode = "503"
        await sup.eventually(
            lambda: _market(fleet, "eu-b", "DE", "Down", "eu-b"), within=60, what="DE down"
        )
        await d.dump("market-down", "eu-b")
        await _out_of_fleet(fleet, d)
        await asyncio.sleep(0)

    assert set(d.seen) == set(EXPECTED)
    if WRITE:
        _write_health_test(d.seen)
        _write_action_testdata()
    committed = {p.stem for p in TESTDATA.glob("*.yaml")}
    assert committed == set(EXPECTED), "testdata holds a state this test does not produce"


def _write_health_test(seen: dict[str, dict[str, str]]) -> None:
    tests = [
        {
            "healthStatus": {"status": seen[s]["status"], "message": seen[s]["message"]},
            "inputPath": f"testdata/{s}.yaml",
        }
        for s in EXPECTED
        if s in seen
    ]
    text = yaml.safe_dump({"tests": tests}, sort_keys=False, width=1000)
    (engine.REGION_DIR / "health_test.yaml").write_text(re.sub(r"\n+$", "\n", text))


ACTION_INPUTS = {"region": "ready", "region-paused": "paused", "region-away": "switched-over"}
# output file -> (input, action, target): the object Argo CD must patch onto the live one.
ACTION_OUTPUTS = {
    "region-switchover": ("region", "switchover", "eu-b"),
    "region-drain": ("region", "drain", ""),
    "region-pause": ("region", "pause", ""),
    "region-resume": ("region-paused", "resume", ""),
    "region-return-home": ("region-away", "return-home", ""),
}


def _write_action_testdata() -> None:
    """Inputs: copies of the dumped objects; outputs: the input plus the request annotation,
    written out here independently of the action Lua (at the harness clock ``engine.NOW``)."""
    out_dir = engine.ACTIONS_DIR / "testdata"
    for name, state in ACTION_INPUTS.items():
        (out_dir / f"{name}.yaml").write_text((TESTDATA / f"{state}.yaml").read_text())
    for name, (source, action, target) in ACTION_OUTPUTS.items():
        obj = yaml.safe_load((out_dir / f"{source}.yaml").read_text())
        rid = f"argocd-{obj['metadata'].get('resourceVersion', '0')}-{engine.NOW_UNIX}"
        fields = f'"id":"{rid}","action":"{action}"'
        if target:
            fields += f',"target":"{target}"'
        fields += ',"requestedBy":"argocd"'
        obj["metadata"].setdefault("annotations", {})[freq.ANNOTATION] = "{" + fields + "}"
        live.write_yaml(out_dir / f"{name}.yaml", obj, HEADER)
