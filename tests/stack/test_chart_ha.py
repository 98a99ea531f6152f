"""The chart's HA on the real apiserver: `helm install` with two replicas, kill the leader.

No kubelet runs containers here (kwok marks pods), so the two replicas run as local
`checkout-operator run` processes with exactly the args of the installed Deployment, as the
chart's ServiceAccount (a TokenRequest token: the chart's RBAC, the leader-election Role
included), each with its own POD_NAME like the Deployment's downward API gives it. Checked:
one leads and works, the standby writes nothing and is ready; after a SIGKILL of the leader the
standby holds the Lease within leaseDuration + retryPeriod (measured and printed), and then
fails a region over: its markets move.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from failover.fleet_env import Fleet, running_fleet
from failover.test_failover_stack import moved

from . import operator_support as sup
from .test_chart import (
    CHART,
    FORBIDDEN,
    Release,
    helm,
    service_account_kubeconfig,
    uninstall,
)

pytestmark = pytest.mark.stack

# (leaseDuration, retryPeriod): short ones to keep the test quick, and the chart's defaults
TIMINGS = [(6, 1), (15, 2)]
SPEC = {"writeLeaseSeconds": 6, "minDwellSeconds": 0, "soakSeconds": 2}
MARKETS = ("FR", "NL")
# Set by the test's own argv (ports, namespace, drift) rather than the Deployment's.
LOCAL = re.compile(r"--(metrics-port|health-port|namespace|drift-interval)=|--all-namespaces$")


def readyz(op: sup.Operator) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(op.ready_url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def writes(op: sup.Operator) -> float:
    """API writes this replica sent (``checkout_operator_api_writes_total``), its attempts on the
    leader Lease aside (a replica that loses the race to create it counts one)."""
    text = sup.http_get(op.metrics_url)
    return sum(
        float(m.group(2))
        for m in re.finditer(r"^checkout_operator_api_writes_total\{([^}]*)\} (\S+)$", text, re.M)
        if 'kind="Lease"' not in m.group(1)
    )


def leader_gauge(op: sup.Operator) -> float:
    found = re.search(
        r"^checkout_operator_leader\{[^}]*\} (\S+)$", sup.http_get(op.metrics_url), re.M
    )
    assert found, "checkout_operator_leader not exported"
    return float(found.group(1))


def holder(kube: Any, release: Release) -> str:
    done = kube.kubectl(
        "get", "lease", release.fullname, "-n", release.namespace,
        "-o", "jsonpath={.spec.holderIdentity}", check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


@pytest.mark.parametrize("timing", TIMINGS, ids=["short-lease", "chart-defaults"])
async def test_two_replicas_one_leads_and_the_standby_takes_over_a_sigkill(
    helm_bin: pathlib.Path, kube: Any, tmp_path: pathlib.Path, timing: tuple[int, int]
) -> None:
    async with running_fleet(kube, SPEC, start_engine=False) as fleet:
        name, op_ns = sup.unique("ha"), sup.unique("ha-op")
        helm(
            helm_bin, kube, "install", name, str(CHART), "--namespace", op_ns,
            "--create-namespace", "--set", "crds.create=false",  # the fleet installed them
            "--set", "watch.allNamespaces=false", "--set", f"watch.namespaces={{{fleet.ns}}}",
            *(
                ()
                if timing == (15, 2)  # the chart's defaults: set nothing
                else (
                    "--set", f"leaderElection.leaseDuration={timing[0]}",
                    "--set", f"leaderElection.retryPeriod={timing[1]}",
                )
            ),
        )  # fmt: skip
        release = Release(name, op_ns, fleet.ns, f"{name}-checkout-operator")
        try:
            await _scenario(kube, fleet, release, tmp_path, *timing)
        finally:
            uninstall(helm_bin, kube, name, op_ns)
            sup.delete_namespace(kube, op_ns)


async def _scenario(
    kube: Any,
    fleet: Fleet,
    release: Release,
    tmp_path: pathlib.Path,
    lease_duration: int,
    retry: int,
) -> None:
    dep = sup.get(kube, "-n", release.namespace, "deployment", release.fullname)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    pdb = sup.get(kube, "-n", release.namespace, "pdb", release.fullname)
    assert pdb["spec"]["minAvailable"] == 1
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--namespace={fleet.ns}" in args
    extra = [a for a in args[1:] if not LOCAL.match(a)]
    assert {
        "--leader-elect",
        f"--leader-election-id={release.fullname}",
        f"--leader-election-namespace={release.namespace}",
        f"--lease-duration={lease_duration}",
        f"--lease-retry={retry}",
    } <= set(extra), extra

    kubeconfig = tmp_path / "sa.kubeconfig"
    token = service_account_kubeconfig(kube, release, kubeconfig)
    pods = {"a": f"{release.fullname}-5d9c7-aaaaa", "b": f"{release.fullname}-5d9c7-bbbbb"}
    env = {k: {"POD_NAME": pod, "POD_NAMESPACE": release.namespace} for k, pod in pods.items()}
    with (
        sup.running_operator(
            kubeconfig, fleet.ns, tmp_path / "a.log", extra_args=extra, env=env["a"]
        ) as op_a,
        sup.running_operator(
            kubeconfig, fleet.ns, tmp_path / "b.log", extra_args=extra, env=env["b"]
        ) as op_b,
    ):
        ops = {"a": op_a, "b": op_b}
        for op in ops.values():
            op.wait_live()
        first = sup.wait_for(lambda: holder(kube, release), 60, "a leader", op_a.log)
        lead_key = next(k for k, pod in pods.items() if first.startswith(pod + "-"))
        leader, standby = ops[lead_key], ops["b" if lead_key == "a" else "a"]
        sup.wait_for(lambda: readyz(leader)[0] == 200, 60, "leader ready", leader.log)
        await fleet.wait_initial_leases()
        table = await fleet.lease_table()
        assert {m: table[m][:2] for m in MARKETS} == {m: ("eu-a", 1) for m in MARKETS}

        # The standby stands by: ready, not leading, no write of any kind, no kopf.
        # (a standby that lost the race to create the Lease names its holder on its next read)
        sup.wait_for(lambda: readyz(standby)[1]["holder"] == first, 10, "standby sees the holder")
        code, body = readyz(standby)
        assert (code, body["role"], body["holder"]) == (200, "standby", first), body
        assert readyz(leader)[1]["role"] == "leader"
        assert (leader_gauge(leader), leader_gauge(standby)) == (1.0, 0.0)
        assert writes(standby) == 0
        assert writes(leader) > 0
        assert "standing by for the leader Lease" in standby.log.read_text()
        assert "now leads" not in standby.log.read_text()

        killed_at = time.monotonic()
        leader.kill()  # SIGKILL: no hand-over, the Lease must expire
        assert leader.proc.returncode == -9

        def taken_over() -> str | None:
            now = holder(kube, release)
            return now if now.startswith(pods["b" if lead_key == "a" else "a"] + "-") else None

        survivor = sup.wait_for(taken_over, 3 * lease_duration, "take-over", standby.log)
        takeover = time.monotonic() - killed_at
        print(
            f"\nleader SIGKILLed; {survivor} leads {takeover:.2f} s later "
            f"(leaseDuration {lease_duration} s, retryPeriod {retry} s)"
        )
        # Expiry is counted from the dead leader's last renewal (at most RETRY s before the
        # kill); the standby sees it within one retry, plus its requests' time (up to ~1.4 s
        # seen on a loaded 2-core machine).
        assert takeover <= lease_duration + retry + 2.0, takeover
        sup.wait_for(lambda: readyz(standby)[1]["role"] == "leader", 30, "standby leads")
        assert leader_gauge(standby) == 1.0

        # The new leader fails eu-a over: its markets move to eu-b (epoch 2).
        fleet.regions["eu-a"].server.mode = "503"
        await sup.eventually(
            lambda: moved(fleet, {m: ("eu-b", 2) for m in MARKETS}),
            within=60,
            what="the new leader failed eu-a over",
        )
        assert standby.proc.poll() is None  # the only replica alive: it moved them
        sup.wait_for(
            lambda: "moved eu-a -> eu-b" in standby.log.read_text(), 30, "move logged", standby.log
        )
        text = standby.log.read_text()
        assert not [ln for ln in text.splitlines() if FORBIDDEN.search(ln)], text[-3000:]
        assert token not in text
