"""`checkout-operator plan`, the plan module and the status/history tables (offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover import decide as fd
from checkout_operator.failover import plan, report

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "checkout-operator"


def regions(drain: str = "", **status: dict[str, Any]) -> list[CheckoutRegion]:
    out = []
    for path in sorted((ROOT / "examples" / "regions").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CheckoutRegion":
                if doc["metadata"]["name"] == drain:
                    doc["spec"]["failover"]["drain"] = True
                if doc["metadata"]["name"] in status:
                    doc["status"] = status[doc["metadata"]["name"]]
                parsed = load.parse(doc)
                assert isinstance(parsed, CheckoutRegion)
                out.append(parsed)
    return out


LAG0 = {
    "replication": [{"peer": "eu-west-1", "lagMessages": 0, "observedAt": "2026-11-26T00:00:00Z"}]
}


def test_plan_of_a_region_failing_lists_the_steps_and_the_residency_checks() -> None:
    steps = plan.plan(regions(**{"eu-central-1": LAG0}), {}, failing="eu-west-1", now=100.0)
    by_market = {s.market: s for s in steps}
    assert sorted(by_market) == ["FR", "IE", "NL"]
    nl = by_market["NL"]
    assert (nl.writer, nl.target, nl.reason, nl.epoch) == ("eu-west-1", "eu-central-1",
                                                            "ProbeFailures", 1)  # fmt: skip
    assert nl.steps == (
        "fence eu-west-1 for NL at epoch 1: the lease goes Fencing, eu-west-1 stops taking new "
        "writes and acknowledges (or its 15 s lease expires)",
        "promote eu-central-1 at epoch 2 (compare-and-swap on the Lease)",
        "re-render checkout-fleet-routing in ap-south-1, eu-central-1, eu-west-1, us-east-1: "
        "NL -> eu-central-1",
    )
    assert nl.checks == ("eu-central-1: residency ok, healthy, lag 0",)


def test_plan_without_lag_figures_is_blocked_and_says_why() -> None:
    steps = plan.plan(regions(), {}, failing="eu-west-1", now=100.0)
    assert {s.target for s in steps} == {""}
    assert steps[0].blockers == (
        "eu-central-1: residency ok, lag from eu-west-1 unknown (acceptDataLoss?)",
    )


def test_plan_of_a_drain_waits_for_lag_zero_and_voids_in_flight() -> None:
    rs = regions(drain="eu-west-1", **{"eu-central-1": LAG0})
    steps = plan.plan(rs, {}, now=100.0)
    assert {s.reason for s in steps} == {"Drain"}
    assert "finishes or voids in-flight authorizations" in steps[0].steps[0]
    assert steps[0].steps[1] == (
        "wait for the replication lag of eu-west-1's data in eu-central-1 to be 0"
    )
    text = plan.describe(steps, "drain")
    assert "- market FR: eu-west-1 (epoch 1) -> eu-central-1 [Drain]" in text


def test_status_and_history_tables() -> None:
    record = {
        "time": "2026-11-26T00:01:02Z",
        "markets": ["NL"],
        "from": "eu-west-1",
        "to": "eu-central-1",
        "epoch": 2,
        "reason": "ProbeFailures",
        "evidence": ["eu-west-1: Unhealthy: 3 failed"],
        "actor": "operator",
    }
    status = {
        "markets": [{"market": "NL", "writer": "eu-central-1", "epoch": 2, "state": "Serving"}],
        "health": {"state": "Unhealthy"},
        "lastFailover": record,
        "history": [record],
    }
    rs = regions(**{"eu-west-1": status})
    table = report.status_table(rs).splitlines()
    assert table[0].split() == [
        "MARKET", "WRITER", "EPOCH", "STATE", "HOME", "HOME-HEALTH", "LAST-MOVE", "WHY",
    ]  # fmt: skip
    nl = next(line for line in table if line.startswith("NL "))
    assert nl.split()[:8] == [
        "NL", "eu-central-1", "2", "Serving", "eu-west-1", "Unhealthy",
        "2026-11-26T00:01:02Z", "eu-west-1->eu-central-1",
    ]  # fmt: skip
    assert nl.endswith("ProbeFailures (operator)")
    west = next(r for r in rs if r.spec.region == "eu-west-1")
    hist = report.history_table(west).splitlines()
    assert hist[1].split()[:7] == [
        "2026-11-26T00:01:02Z", "NL", "eu-west-1", "eu-central-1", "2", "ProbeFailures",
        "operator",
    ]  # fmt: skip


def test_cli_plan_errors_exit_2_without_a_traceback() -> None:
    done = subprocess.run(
        [str(EXE), "plan", "-f", str(ROOT / "examples" / "regions"), "--fail", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--fail: no region nope" in done.stderr
    assert "Traceback" not in done.stderr
    ok = subprocess.run(
        [str(EXE), "plan", "-f", str(ROOT / "examples" / "regions"), "--fail", "ap-south-1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "blocked: failover policy is Manual" in ok.stdout


def test_lease_conversion_keeps_the_fencing_fields() -> None:
    lease = fd.Lease("NL", "a", 3, 1.0, 15.0, "Fencing", "b", "Drain", 3, 0.5)
    assert lease.acknowledged
    assert not lease.expired(15.9)
    assert lease.expired(16.0)
