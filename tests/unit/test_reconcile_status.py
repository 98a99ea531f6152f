"""Status computation (pure): conditions, phase, health rollup, lastTransitionTime."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from checkout_operator.reconcile import status

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def dep(
    name: str,
    replicas: int = 2,
    available: int = 2,
    updated: int = 2,
    generation: int = 1,
    observed: int = 1,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "availableReplicas": available,
            "updatedReplicas": updated,
        },
    }


@pytest.mark.parametrize(
    ("obj", "ready", "message"),
    [
        (dep("a"), True, ""),
        (dep("a", available=1), False, "1/2 replicas available"),
        (dep("a", updated=1), False, "1/2 replicas updated"),
        (dep("a", generation=2, observed=1), False, "rollout not observed yet"),
        (dep("a", replicas=3, available=5, updated=3), True, ""),
    ],
)
def test_deployment_health(obj: dict[str, Any], ready: bool, message: str) -> None:
    assert status.child_health(obj) == status.ChildHealth("Deployment", "a", ready, True, message)


def test_deployment_without_status_is_not_ready() -> None:
    obj = {"kind": "Deployment", "metadata": {"name": "a", "generation": 1}, "spec": {}}
    assert status.child_health(obj) == status.ChildHealth(
        "Deployment", "a", False, True, "rollout not observed yet"
    )


def test_mirrormaker_health() -> None:
    mm2 = {
        "kind": "KafkaMirrorMaker2",
        "metadata": {"name": "m", "generation": 2},
        "status": {
            "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    assert status.child_health(mm2) == status.ChildHealth("KafkaMirrorMaker2", "m", True, True)
    mm2["status"]["conditions"] = [{"type": "Ready", "status": "False", "message": "no brokers"}]
    assert status.child_health(mm2) == status.ChildHealth(
        "KafkaMirrorMaker2", "m", False, True, "no brokers"
    )
    mm2["status"] = {"observedGeneration": 1}
    assert status.child_health(mm2).message == "not observed yet"


def test_other_kinds_are_ready_when_present_and_not_workloads() -> None:
    assert status.child_health({"kind": "ConfigMap", "metadata": {"name": "c"}}) == (
        status.ChildHealth("ConfigMap", "c", True, False)
    )


def cond(type_: str, st: str, reason: str, message: str, t: datetime.datetime, gen: int) -> dict:
    return {
        "type": type_,
        "status": st,
        "reason": reason,
        "message": message,
        "lastTransitionTime": status.rfc3339(t),
        "observedGeneration": gen,
    }


READY_CHILDREN = (
    status.ChildHealth("ConfigMap", "c", True, False),
    status.ChildHealth("Deployment", "a", True, True),
)


def test_all_ready_status_exact() -> None:
    out = status.compute(status.Outcome(3, desired=2, in_sync=2, children=READY_CHILDREN), None, T0)
    assert out == {
        "observedGeneration": 3,
        "phase": "Ready",
        "conditions": [
            cond("Ready", "True", "Reconciled", "2 objects applied, 1 workloads ready", T0, 3),
            cond("Progressing", "False", "ReconcileComplete", "", T0, 3),
            cond("Degraded", "False", "AsExpected", "", T0, 3),
        ],
        "children": {"desired": 2, "applied": 2, "ready": 1, "notReady": []},
    }


def test_not_ready_status_names_the_workloads() -> None:
    children = (
        status.ChildHealth("Deployment", "b", False, True, "0/2 replicas available"),
        status.ChildHealth("Deployment", "a", True, True),
        status.ChildHealth("Deployment", "c", False, True),
    )
    out = status.compute(status.Outcome(1, desired=3, in_sync=3, children=children), None, T0)
    msg = "2/3 workloads not ready: Deployment/b (0/2 replicas available), Deployment/c"
    assert out["phase"] == "Progressing"
    assert out["conditions"] == [
        cond("Ready", "False", "ChildrenNotReady", msg, T0, 1),
        cond("Progressing", "True", "RollingOut", msg, T0, 1),
        cond("Degraded", "False", "AsExpected", "", T0, 1),
    ]
    assert out["children"] == {
        "desired": 3,
        "applied": 3,
        "ready": 1,
        "notReady": ["Deployment/b", "Deployment/c"],
    }


def test_invalid_spec_status_exact() -> None:
    outcome = status.Outcome(
        4,
        error_reason="InvalidSpec",
        error_message="spec.failover.targets[0]: nope",
        permanent=True,
    )
    out = status.compute(outcome, None, T0)
    assert out == {
        "observedGeneration": 4,
        "phase": "Degraded",
        "conditions": [
            cond("Ready", "False", "InvalidSpec", "spec.failover.targets[0]: nope", T0, 4),
            cond("Progressing", "False", "InvalidSpec", "waiting for a spec change", T0, 4),
            cond("Degraded", "True", "InvalidSpec", "spec.failover.targets[0]: nope", T0, 4),
        ],
        "children": {"desired": 0, "applied": 0, "ready": 0, "notReady": []},
    }


def test_transient_error_is_progressing_retrying() -> None:
    outcome = status.Outcome(1, error_reason="ClusterUnreachable", error_message="timed out")
    out = status.compute(outcome, None, T0)
    assert out["conditions"][1] == cond(
        "Progressing", "True", "ClusterUnreachable", "retrying", T0, 1
    )


def test_last_transition_time_kept_while_status_unchanged() -> None:
    first = status.compute(status.Outcome(1, 2, 2, READY_CHILDREN), None, T0)
    # same status at a later time and generation: times kept, generation updated
    again = status.compute(status.Outcome(2, 2, 2, READY_CHILDREN), first, T1)
    assert [c["lastTransitionTime"] for c in again["conditions"]] == [status.rfc3339(T0)] * 3
    assert [c["observedGeneration"] for c in again["conditions"]] == [2, 2, 2]
    # Ready flips to False: its time moves, Degraded (still False) keeps its time
    not_ready = (status.ChildHealth("Deployment", "a", False, True),)
    flipped = status.compute(status.Outcome(2, 2, 2, not_ready), again, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times == {
        "Ready": status.rfc3339(T1),
        "Progressing": status.rfc3339(T1),
        "Degraded": status.rfc3339(T0),
    }


def test_foreign_conditions_are_kept() -> None:
    failover = cond("FailoverInProgress", "False", "Idle", "", T0, 1)
    previous = {"conditions": [failover]}
    out = status.compute(status.Outcome(1, 2, 2, READY_CHILDREN), previous, T1)
    assert out["conditions"][3:] == [failover]
    assert [c["type"] for c in out["conditions"]] == [
        "Ready",
        "Progressing",
        "Degraded",
        "FailoverInProgress",
    ]


def test_changed_compares_owned_keys_only() -> None:
    new = status.compute(status.Outcome(1, 2, 2, READY_CHILDREN), None, T0)
    assert status.changed(None, new)
    previous = {**new, "markets": [{"market": "DE"}], "health": {"state": "Healthy"}}
    assert not status.changed(previous, new)
    later = status.compute(status.Outcome(1, 2, 2, READY_CHILDREN), previous, T1)
    assert not status.changed(previous, later)
    assert status.changed(
        previous, status.compute(status.Outcome(2, 2, 2, READY_CHILDREN), previous, T1)
    )


def test_degraded_transition_only_once_per_message() -> None:
    bad = status.compute(
        status.Outcome(1, error_reason="InvalidSpec", error_message="m1"), None, T0
    )
    assert status.degraded_transition(None, bad)
    assert not status.degraded_transition(bad, bad)
    other = status.compute(
        status.Outcome(1, error_reason="InvalidSpec", error_message="m2"), bad, T1
    )
    assert status.degraded_transition(bad, other)
    good = status.compute(status.Outcome(2, 2, 2, READY_CHILDREN), other, T1)
    assert not status.degraded_transition(other, good)


def test_route_status_exact() -> None:
    out = status.route_status(2, None, ["eu-west-1", "us-east-1"], T0)
    assert out == {
        "observedGeneration": 2,
        "phase": "Ready",
        "conditions": [
            cond("Ready", "True", "Routed", "used by eu-west-1, us-east-1", T0, 2),
            cond("Degraded", "False", "AsExpected", "", T0, 2),
        ],
        "regions": ["eu-west-1", "us-east-1"],
    }
    bad = status.route_status(3, out, [], T1, error="spec.providers: required field is missing")
    assert bad["phase"] == "Degraded"
    assert bad["conditions"][1] == cond(
        "Degraded", "True", "InvalidSpec", "spec.providers: required field is missing", T1, 3
    )
