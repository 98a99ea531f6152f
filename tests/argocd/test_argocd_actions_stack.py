"""Argo CD resource actions and `kubectl checkout` drive failover on the real stack.

On a three-region fleet (tests/failover/fleet_env.py: eu-a FR+NL, eu-b DE, us-a US; the
operator's reconcile controller and failover engine; real health servers and lease keepers):

* the ``switchover`` action, run in Argo CD's Lua engine on the live object and applied as Argo
  CD applies an action's result (a merge patch of what changed), moves DE to eu-a;
* a self-heal style re-apply of the Git manifests (server-side apply as Argo CD's controller,
  then a client-side ``kubectl apply``) neither undoes nor repeats it;
* an action refused by the plan (replication lag over the drain budget) says why in status;
* ``kubectl checkout`` (run through kubectl's plugin lookup): ``--dry-run`` prints the verdict,
  a residency refusal exits 3 with the reason, no ``--yes`` without a terminal exits 4,
  ``return-home`` and ``switchover --yes`` move markets, ``report`` collects the fleet.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkout_operator.failover import requests as freq
from checkout_operator.reconcile import region
from failover.fleet_env import Fleet, region_body, running_fleet
from stack import operator_support as sup

from . import engine, live

pytestmark = pytest.mark.stack

BASE = {"writeLeaseSeconds": 6, "minDwellSeconds": 0, "soakSeconds": 2, "failback": "Manual"}


def merge_patch(old: Any, new: Any) -> Any:
    """RFC 7386 merge patch from ``old`` to ``new`` (what Argo CD patches for an action)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() | new.keys():
        if key not in new:
            patch[key] = None
        elif key not in old:
            patch[key] = new[key]
        elif old[key] != new[key]:
            patch[key] = merge_patch(old[key], new[key])
    return patch


async def writers(fleet: Fleet) -> dict[str, tuple[str, int, str]]:
    return await fleet.lease_table()


async def _at(fleet: Fleet, want: dict[str, str]) -> bool:
    table = await fleet.lease_table()
    return all(table[m][0] == w and table[m][2] == "Serving" for m, w in want.items())


async def run_action(
    fleet: Fleet, tmp: Path, name: str, action: str, **params: str
) -> dict[str, Any]:
    """Run the action in Argo CD's engine on the live object and patch its result onto it."""
    body = await fleet.body(name)
    path = tmp / f"{name}-live.json"
    path.write_text(json.dumps(body))
    out = engine.action(action, path, **params)
    patch = merge_patch(body, out)
    assert list(patch) == ["metadata"], patch
    assert list(patch["metadata"]) == ["annotations"], patch
    fleet.kube.kubectl(
        "patch", "checkoutregion", name, "-n", fleet.ns, "--type", "merge", "-p", json.dumps(patch)
    )
    request: dict[str, Any] = json.loads(patch["metadata"]["annotations"][freq.ANNOTATION])
    return request


async def plugin(
    fleet: Fleet, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubectl checkout ...` found by kubectl's plugin lookup on PATH (the venv's bin), in a
    thread: the operator's engine runs on this test's event loop and must keep deciding."""
    kubectl = str(fleet.kube.kubectl_bin)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    argv = [kubectl, "checkout", *args, "--kubeconfig", str(fleet.kube.kubeconfig)]
    return await asyncio.to_thread(
        subprocess.run,
        argv,
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


def git_manifest(fleet: Fleet, name: str) -> dict[str, Any]:
    """The region as Git holds it (what Argo CD syncs): spec only, no request annotation."""
    return region_body(fleet.ns, fleet.regions[name], fleet.child_ns(name), BASE, None)


async def test_actions_and_kubectl_checkout_move_markets_and_survive_self_heal(
    kube: Any, tmp_path: Path
) -> None:
    async with running_fleet(kube, BASE) as fleet:
        await sup.eventually(
            lambda: _at(fleet, {"FR": "eu-a", "NL": "eu-a", "DE": "eu-b"}), within=30
        )
        # -- the Argo CD action: switch DE over to eu-a -------------------------------------
        req = await run_action(fleet, tmp_path, "eu-b", "switchover", target="eu-a")
        assert req["action"] == "switchover"
        assert req["target"] == "eu-a"
        assert req["requestedBy"] == "argocd"
        rec = await live.outcome(fleet, "eu-b", req["id"])
        assert rec["outcome"] == "Accepted", rec
        assert rec["message"] == "moving DE from eu-b to eu-a"
        await sup.eventually(lambda: _at(fleet, {"DE": "eu-a"}), within=60, what="DE on eu-a")
        moved = (await fleet.lease_table())["DE"]
        assert moved[:2] == ("eu-a", 2)

        # -- self-heal: Argo CD re-applies Git (server-side), then a client-side apply ------
        async def recorded() -> list[Any] | None:
            history = (await fleet.body("eu-b"))["status"].get("history") or []
            return history if any(h["markets"] == ["DE"] for h in history) else None

        history_before = await sup.eventually(recorded, within=30, what="the move recorded")
        assert history_before[0]["actor"] == f"request {req['id']}"
        assert history_before[0]["reason"] == "Drain"
        manifest = git_manifest(fleet, "eu-b")
        kube.kubectl(
            "apply", "--server-side", "--field-manager=argocd-controller", "--force-conflicts",
            "-f", "-", input=json.dumps(manifest),
        )  # fmt: skip
        kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        await asyncio.sleep(3)  # several engine ticks
        after = await fleet.body("eu-b")
        assert after["metadata"]["annotations"][freq.ANNOTATION]  # left alone by both applies
        assert after["status"]["request"]["id"] == req["id"]
        assert after["status"]["request"]["time"] == rec["time"]  # not consumed again
        assert after["status"]["overrides"]["drain"] is True
        assert (await fleet.lease_table())["DE"] == moved  # neither undone nor repeated
        assert (after["status"].get("history") or []) == history_before

        # -- an action the plan refuses: eu-b lags 5 messages on eu-a's data ---------------
        await fleet.client.patch_status(
            region.API_VERSION, "CheckoutRegion", "eu-b", fleet.ns,
            {"replication": [_lag("eu-a", 5)]},
        )  # fmt: skip
        # eu-b is still drained by the first action: return it home first (CLI, --yes).
        done = await plugin(fleet, "return-home", "eu-b", "-n", fleet.ns, "--yes")
        assert done.returncode == 0, done.stderr
        assert "Accepted: moving DE back to eu-b" in done.stdout
        await sup.eventually(lambda: _at(fleet, {"DE": "eu-b"}), within=60, what="DE home")

        req = await run_action(fleet, tmp_path, "eu-a", "switchover", target="eu-b")
        rec = await live.outcome(fleet, "eu-a", req["id"])
        assert rec["outcome"] == "Refused"
        assert "eu-b: residency ok, lag 5 > 0 messages" in rec["message"], rec
        assert (await fleet.lease_table())["NL"][:2] == ("eu-a", 1)
        await fleet.client.patch_status(
            region.API_VERSION, "CheckoutRegion", "eu-b", fleet.ns,
            {"replication": [_lag("eu-a", 0)]},
        )  # fmt: skip

        # -- kubectl checkout --------------------------------------------------------------
        dry = await plugin(fleet, "switchover", "eu-a", "--to", "us-a", "-n", fleet.ns, "--dry-run",
                     "-o", "json")  # fmt: skip
        assert dry.returncode == 3, dry.stderr
        verdict = json.loads(dry.stdout)
        assert verdict["wouldBe"] == "Refused"
        assert "us-a: residency forbids" in verdict["message"]
        refused = await plugin(fleet, "switchover", "eu-a", "--to", "us-a", "-n", fleet.ns, "--yes")
        assert refused.returncode == 3, refused.stderr
        assert "Refused" in refused.stdout
        assert "residency forbids" in refused.stdout
        unconfirmed = await plugin(fleet, "pause", "eu-a", "-n", fleet.ns, stdin="")
        assert unconfirmed.returncode == 4
        assert "--yes" in unconfirmed.stderr
        missing = await plugin(fleet, "pause", "nowhere", "-A", "--yes")
        assert missing.returncode == 2
        assert "no CheckoutRegion nowhere" in missing.stderr
        assert "Traceback" not in missing.stderr

        went = await plugin(fleet, "switchover", "eu-a", "--to", "eu-b", "-n", fleet.ns, "--yes",
                      "-o", "yaml")  # fmt: skip
        assert went.returncode == 0, went.stderr
        record = yaml.safe_load(went.stdout)
        assert record["outcome"] == "Accepted"
        assert record["requestedBy"] == "kubectl-checkout"
        await sup.eventually(
            lambda: _at(fleet, {"FR": "eu-b", "NL": "eu-b"}), within=60, what="FR, NL on eu-b"
        )

        # The printer columns show it: writers, failover state, last move (and -o wide: paused).
        seen: list[str] = []

        async def columns() -> str | None:
            out = kube.kubectl("get", "checkoutregions", "-n", fleet.ns, "-o", "wide").stdout
            seen.append(out)
            row = next(line for line in out.splitlines() if line.startswith("eu-a "))
            return out if "FailedOver" in row and "FR=eu-b,NL=eu-b" in row else None

        try:
            table = await sup.eventually(columns, within=30, what="printer columns")
        except AssertionError as exc:
            raise AssertionError(seen[-1] if seen else "no table") from exc
        header = table.splitlines()[0]
        for name in ("WRITERS", "FAILOVER", "MAX LAG", "LAST MOVE", "PAUSED"):
            assert name in header, header

        report_dir = tmp_path / "report"
        rep = await plugin(fleet, "report", "-n", fleet.ns, "--dir", str(report_dir), "-o", "json")
        assert rep.returncode == 0, rep.stderr
        summary = json.loads(rep.stdout)
        assert {"checkoutregions.yaml", "events.yaml", "leases.yaml"} <= set(summary["files"])
        regions = list(yaml.safe_load_all((report_dir / "checkoutregions.yaml").read_text()))
        assert {r["metadata"]["name"] for r in regions} == {"eu-a", "eu-b", "us-a"}
        events = list(yaml.safe_load_all((report_dir / "events.yaml").read_text()))
        reasons = {e["reason"] for e in events}
        assert {"RequestAccepted", "RequestRefused"} <= reasons, reasons
        leases = list(yaml.safe_load_all((report_dir / "leases.yaml").read_text()))
        assert len(leases) >= 4
        # The operator runs in this test's process, not as a pod: the report says so.
        assert any("no operator pod" in p for p in summary["problems"])
        tarball = await plugin(
            fleet, "report", "-n", fleet.ns, "--tarball", str(tmp_path / "r.tgz")
        )
        assert tarball.returncode == 0, tarball.stderr
        assert (tmp_path / "r.tgz").stat().st_size > 0


def _lag(peer: str, messages: int) -> dict[str, Any]:
    import datetime

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"peer": peer, "lagMessages": messages, "observedAt": now}
