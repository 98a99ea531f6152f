"""Imperative requests judged by the failover plan (pure): checkout_operator.failover.requests."""

from __future__ import annotations

import dataclasses
import json

import pytest

from checkout_operator.api.residency import market_residency
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.failover import requests as freq

NOW = 10_000.0
HEALTHY = fh.Health(state="Healthy", since=0.0)
JUR = {"eu-a": "EU", "eu-b": "EU", "us-a": "US"}
HOME = {"NL": "eu-a", "FR": "eu-a", "DE": "eu-b", "US": "us-a"}
TARGETS = {"eu-a": ("eu-b",), "eu-b": ("eu-a",), "us-a": ("eu-b",)}


def info(name: str, **kw: object) -> fd.RegionInfo:
    base = fd.RegionInfo(
        name=name,
        jurisdiction=JUR[name],
        health=HEALTHY,
        home_markets={
            m: market_residency(m, h, JUR[h], ("EU",) if m == "US" else ())
            for m, h in HOME.items()
            if h == name
        },
        targets=TARGETS[name],
        min_dwell_seconds=300,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def obs(
    regions: dict[str, fd.RegionInfo] | None = None, moved_at: float | None = None, **writers: str
) -> fd.Observation:
    regions = regions or {n: info(n) for n in JUR}
    leases = {
        m: fd.Lease(m, writers.get(m, h), 1, NOW, 15.0, moved_at=moved_at) for m, h in HOME.items()
    }
    return fd.Observation(NOW, regions, leases)


def req(action: str, target: str = "") -> freq.Request:
    return freq.Request("r1", action, target, "test")


def test_a_switchover_to_a_legal_healthy_target_is_accepted_and_kept_in_overrides() -> None:
    v = freq.evaluate(obs(), "eu-a", req("switchover", "eu-b"), freq.Overrides())
    assert v.outcome == "Accepted", v.message
    assert v.message == "moving FR, NL from eu-a to eu-b"
    assert v.overrides == freq.Overrides(drain=True, target="eu-b", request_id="r1")
    # In force, the decision fences both markets towards eu-b.
    applied = freq.apply(info("eu-a"), TARGETS["eu-a"], v.overrides)
    fences = [
        a for a in fd.decide(freq.with_region(obs(), applied)).actions if isinstance(a, fd.Fence)
    ]
    assert {(f.market, f.to) for f in fences} == {("FR", "eu-b"), ("NL", "eu-b")}
    assert {f.actor for f in fences} == {"request r1"}


def test_residency_refuses_with_the_plans_reason() -> None:
    v = freq.evaluate(obs(), "eu-a", req("switchover", "us-a"), freq.Overrides())
    assert v.outcome == "Refused"
    assert "us-a: residency forbids (jurisdiction US" in v.message
    assert v.overrides == freq.Overrides()


def test_lag_over_budget_refuses() -> None:
    regions = {n: info(n) for n in JUR}
    regions["eu-b"] = info("eu-b", lag_from={"eu-a": 5})
    v = freq.evaluate(obs(regions), "eu-a", req("drain"), freq.Overrides())
    assert v.outcome == "Refused"
    assert "lag 5 > 0 messages" in v.message


def test_minimum_dwell_refuses() -> None:
    v = freq.evaluate(obs(moved_at=NOW - 10), "eu-a", req("switchover", "eu-b"), freq.Overrides())
    assert v.outcome == "Refused"
    assert "minimum dwell" in v.message


def test_unhealthy_target_refuses() -> None:
    regions = {n: info(n) for n in JUR}
    regions["eu-b"] = info("eu-b", health=fh.Health(state="Unhealthy"))
    v = freq.evaluate(obs(regions), "eu-a", req("switchover", "eu-b"), freq.Overrides())
    assert v.outcome == "Refused"
    assert "eu-b: residency ok, Unhealthy" in v.message


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (req("switchover"), "switchover needs a target region"),
        (req("switchover", "eu-a"), "cannot switch over to itself"),
        (req("switchover", "ap-x"), "ap-x is not a region of the fleet"),
        (req("reboot"), "unknown action 'reboot'"),
    ],
)
def test_bad_requests_are_refused(request_: freq.Request, why: str) -> None:
    v = freq.evaluate(obs(), "eu-a", request_, freq.Overrides())
    assert v.outcome == "Refused"
    assert why in v.message


def test_pause_and_resume_toggle_automatic_failover() -> None:
    paused = freq.evaluate(obs(), "eu-a", req("pause"), freq.Overrides()).overrides
    assert paused.automatic_failover_paused
    assert freq.apply(info("eu-a"), TARGETS["eu-a"], paused).policy == "Manual"
    resumed = freq.evaluate(obs(), "eu-a", req("resume"), paused).overrides
    assert not resumed.automatic_failover_paused


def test_return_home_clears_the_drain_and_settles_when_home() -> None:
    drained = freq.Overrides(drain=True, target="eu-b", request_id="r0")
    away = obs(NL="eu-b", FR="eu-b")
    v = freq.evaluate(away, "eu-a", req("return-home"), drained)
    assert v.outcome == "Accepted", v.message
    assert v.overrides == freq.Overrides(return_home=True, request_id="r1")
    assert freq.settle(away, "eu-a", v.overrides) == v.overrides
    assert not freq.settle(obs(), "eu-a", v.overrides).return_home


def test_return_home_refused_while_git_drains() -> None:
    regions = {n: info(n) for n in JUR}
    regions["eu-a"] = info("eu-a", drain=True)
    v = freq.evaluate(obs(regions, NL="eu-b"), "eu-a", req("return-home"), freq.Overrides())
    assert v.outcome == "Refused"
    assert "spec.failover.drain is true" in v.message


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "is not JSON"),
        ("[1]", "must be a JSON object"),
        (json.dumps({"action": "pause"}), ".id must be a string"),
        (json.dumps({"id": "x", "action": "drain", "target": 3}), "must be strings"),
    ],
)
def test_parse_names_the_bad_field(text: str, why: str) -> None:
    with pytest.raises(freq.BadRequest, match=why):
        freq.parse(text)


def test_parse_reads_a_request() -> None:
    got = freq.parse('{"id": "a1", "action": "switchover", "target": "eu-b", "requestedBy": "me"}')
    assert got == freq.Request("a1", "switchover", "eu-b", "me")
