"""Hypothesis tests of the pure failover decision module (``checkout_operator.failover``).

A stateful machine drives a four-region fleet with arbitrary probe results (lies included),
regions dying and coming back, drains, the lease store going away and time passing. It keeps
its own model of the lease store (compare-and-swap semantics) and of each region's local view
of its write lease (what a region's write guard believes), and checks after every step:

* never two lease holders for one market in one epoch, and never two regions that may write
  one market at the same time;
* no move for probe failures before ``failureThreshold`` failed probes in a row;
* an Unknown (timeout) result never resets the failure count;
* no move within ``minDwellSeconds`` of the previous one (no flapping);
* residency: no market is ever promoted into a jurisdiction it does not allow;
* a promotion happens only after the old writer acknowledged fencing or its lease expired;
* a frozen operator (lease store unreachable) does nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from checkout_operator.api.residency import market_residency
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh

FT, ST = 3, 2
LEASE = 15.0
DWELL = 60.0
SOAK = 120.0
PERIOD = 2.0

JURISDICTIONS = {"eu-a": "EU", "eu-b": "EU", "us-a": "US", "in-a": "IN"}
# NL (home eu-a) may live in EU only: us-a is listed first as a target but is illegal.
# US (home us-a) may also live in EU. IN (home in-a) may live only in IN: no legal target.
HOME = {"NL": "eu-a", "US": "us-a", "IN": "in-a"}
ALLOWED_EXTRA = {"NL": (), "US": ("EU",), "IN": ()}
TARGETS = {"eu-a": ("us-a", "eu-b"), "eu-b": ("eu-a",), "us-a": ("eu-b", "eu-a"), "in-a": ()}
RULES = {m: market_residency(m, h, JURISDICTIONS[h], ALLOWED_EXTRA[m]) for m, h in HOME.items()}
THRESHOLDS = fh.Thresholds(FT, ST)


def region_info(name: str, health: fh.Health, **overrides: Any) -> fd.RegionInfo:
    markets = {m: RULES[m] for m, h in HOME.items() if h == name}
    base = fd.RegionInfo(
        name=name,
        jurisdiction=JURISDICTIONS[name],
        health=health,
        home_markets=markets,
        targets=TARGETS[name],
        failback="Automatic",
        soak_seconds=SOAK,
        min_dwell_seconds=DWELL,
    )
    return dataclasses.replace(base, **overrides)


@dataclasses.dataclass
class Local:
    """A region's own view of its lease on one market (what its write guard uses)."""

    epoch: int
    valid_until: float
    fenced: bool = False


class FailoverMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.now = 1_000.0
        self.health = {r: fh.Health() for r in JURISDICTIONS}
        self.alive = dict.fromkeys(JURISDICTIONS, True)
        self.drain = dict.fromkeys(JURISDICTIONS, False)
        self.store_up = True
        self.leases: dict[str, fd.Lease] = {}
        self.local: dict[tuple[str, str], Local] = {}
        self.holders: dict[tuple[str, int], set[str]] = {}
        self.moves: dict[str, list[float]] = {m: [] for m in HOME}
        self.fail_run = dict.fromkeys(JURISDICTIONS, 0)
        # Whether the region had FT failed probes in a row since it was last Healthy.
        self.reached = dict.fromkeys(JURISDICTIONS, False)
        self.last_health: dict[str, fh.Health] = dict(self.health)

    # -- the world --------------------------------------------------------------------------

    @rule(
        region=st.sampled_from(sorted(JURISDICTIONS)),
        outcome=st.sampled_from(["Success", "Failure", "Unknown"]),
    )
    def probe(self, region: str, outcome: fh.Outcome) -> None:
        before = self.health[region]
        result = fh.ProbeResult(outcome, "test", 0.01, self.now)
        after = fh.observe(before, result, THRESHOLDS)
        self.fail_run[region] = 0 if outcome == "Success" else self.fail_run[region] + 1
        # Unknown never resets the failure count; only a success does.
        if outcome != "Success":
            assert after.failures == before.failures + 1
        assert after.failures == self.fail_run[region]
        if self.fail_run[region] >= FT:
            self.reached[region] = True
        if after.state == "Healthy":
            self.reached[region] = False
        self.health[region] = after

    @rule(
        region=st.sampled_from(sorted(JURISDICTIONS)),
        outcome=st.sampled_from(["Success", "Failure", "Unknown"]),
        times=st.integers(1, 6),
    )
    def probe_run(self, region: str, outcome: fh.Outcome, times: int) -> None:
        for _ in range(times):
            self.probe(region, outcome)
            self.now += PERIOD

    @rule(region=st.sampled_from(sorted(JURISDICTIONS)))
    def toggle_alive(self, region: str) -> None:
        self.alive[region] = not self.alive[region]

    @rule(region=st.sampled_from(sorted(JURISDICTIONS)))
    def toggle_drain(self, region: str) -> None:
        self.drain[region] = not self.drain[region]

    @rule()
    def toggle_store(self) -> None:
        self.store_up = not self.store_up

    @rule(seconds=st.sampled_from([0.5, 2.0, 5.0, 16.0, 61.0, 130.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.renew_all()

    def renew_all(self) -> None:
        """Live regions renew their leases (when the store answers) or acknowledge fencing."""
        if not self.store_up:
            return
        for market, lease in list(self.leases.items()):
            holder = lease.holder
            if not self.alive[holder]:
                continue
            if lease.state == "Serving":
                self.leases[market] = dataclasses.replace(lease, renewed_at=self.now)
                self.local[(holder, market)] = Local(lease.epoch, self.now + lease.duration)
            else:
                # Stop writing first, then acknowledge.
                mine = self.local.get((holder, market))
                if mine is not None:
                    mine.fenced = True
                self.leases[market] = dataclasses.replace(lease, acked_epoch=lease.epoch)

    # -- the operator -----------------------------------------------------------------------

    def observation(self) -> fd.Observation:
        regions = {r: region_info(r, self.health[r], drain=self.drain[r]) for r in JURISDICTIONS}
        return fd.Observation(
            self.now, regions, {m: self.leases.get(m) for m in HOME}, self.store_up
        )

    @rule()
    def operator_step(self) -> None:
        obs = self.observation()
        decision = fd.decide(obs)
        if not self.store_up:
            assert decision.actions == ()
            assert decision.frozen
            return
        for action in decision.actions:
            self.apply(obs, action)

    def apply(self, obs: fd.Observation, action: fd.Action) -> None:
        if isinstance(action, fd.CreateLease):
            assert action.market not in self.leases
            self.leases[action.market] = fd.Lease(
                action.market, action.holder, action.epoch, self.now, LEASE
            )
            self.holders.setdefault((action.market, action.epoch), set()).add(action.holder)
            return
        lease = self.leases[action.market]
        assert lease.epoch == action.epoch - (1 if isinstance(action, fd.Promote) else 0)
        if isinstance(action, fd.Fence):
            assert lease.holder == action.holder
            if action.reason == "ProbeFailures" and lease.state == "Serving":
                # Never before the threshold, and never without a witness.
                assert self.reached[lease.holder], "moved before failureThreshold"
                assert any(
                    self.health[r].state == "Healthy" for r in JURISDICTIONS if r != lease.holder
                )
            if lease.state == "Serving":
                moved = self.moves[action.market]
                if moved:
                    assert self.now - moved[-1] >= DWELL, "moved again within the dwell"
            self.leases[action.market] = dataclasses.replace(
                lease, state="Fencing", fencing_to=action.to, fencing_reason=action.reason
            )
            return
        assert isinstance(action, fd.Promote)
        assert lease.state == "Fencing"
        assert lease.acknowledged or lease.expired(self.now), "promoted before fencing"
        target_j = JURISDICTIONS[action.to]
        assert RULES[action.market].allows(target_j), "residency broken"
        assert action.to != lease.holder
        self.leases[action.market] = fd.Lease(
            action.market, action.to, action.epoch, self.now, LEASE, moved_at=self.now
        )
        self.holders.setdefault((action.market, action.epoch), set()).add(action.to)
        self.moves[action.market].append(self.now)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def one_holder_per_epoch(self) -> None:
        for key, holders in getattr(self, "holders", {}).items():
            assert len(holders) == 1, f"{key}: {holders}"

    @invariant()
    def one_writer_at_a_time(self) -> None:
        if not hasattr(self, "local"):
            return
        for market in HOME:
            writers = [
                r
                for r in JURISDICTIONS
                if (v := self.local.get((r, market))) is not None
                and not v.fenced
                and self.now < v.valid_until
            ]
            assert len(writers) <= 1, f"{market}: {writers} may all write"

    @invariant()
    def epochs_monotonic(self) -> None:
        for market, lease in getattr(self, "leases", {}).items():
            assert lease.epoch == 1 + len(self.moves[market])

    @invariant()
    def no_flapping(self) -> None:
        for times in getattr(self, "moves", {}).values():
            for a, b in itertools.pairwise(times):
                assert b - a >= DWELL

    @invariant()
    def india_never_leaves(self) -> None:
        lease = getattr(self, "leases", {}).get("IN")
        if lease is not None:
            assert lease.holder == "in-a"


FailoverMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None
)
TestFailoverMachine = FailoverMachine.TestCase


# -- single-property tests -----------------------------------------------------------------


def _run(outcomes: list[fh.Outcome], ft: int = FT, st_: int = ST) -> list[fh.Health]:
    h = fh.Health()
    out = []
    for i, o in enumerate(outcomes):
        h = fh.observe(h, fh.ProbeResult(o, "x", 0.0, float(i)), fh.Thresholds(ft, st_))
        out.append(h)
    return out


@given(st.lists(st.sampled_from(["Success", "Failure", "Unknown"]), max_size=60))
def test_unknown_never_resets_and_state_follows_thresholds(outcomes: list[fh.Outcome]) -> None:
    run = 0
    for outcome, h in zip(outcomes, _run(outcomes), strict=True):
        run = 0 if outcome == "Success" else run + 1
        assert h.failures == run
        if run >= FT:
            assert h.state == "Unhealthy"


@given(
    st.integers(2, 6),
    st.integers(1, 40),
    st.sampled_from(["Failure", "Unknown"]),
)
def test_alternating_results_never_fail_a_region(ft: int, n: int, bad: fh.Outcome) -> None:
    """Success/failure alternating never reaches a threshold >= 2: nothing moves."""
    outcomes: list[fh.Outcome] = ["Success" if i % 2 == 0 else bad for i in range(2 * n)]
    healths = _run(outcomes, ft=ft)
    assert all(h.state != "Unhealthy" for h in healths)
    home = region_info("eu-a", healths[-1])
    others = {r: region_info(r, fh.Health("Healthy")) for r in ("eu-b", "us-a", "in-a")}
    lease = fd.Lease("NL", "eu-a", 1, float(len(outcomes)), LEASE)
    obs = fd.Observation(float(len(outcomes)), {"eu-a": home, **others}, {"NL": lease})
    assert [a for a in fd.decide(obs).actions if a.market == "NL"] == []


def _fleet(**health: fh.Health) -> dict[str, fd.RegionInfo]:
    return {
        r: region_info(r, health.get(r.replace("-", "_"), fh.Health("Healthy")))
        for r in JURISDICTIONS
    }


DOWN = fh.Health("Unhealthy", failures=FT)


def nl(decision: fd.Decision) -> list[fd.Action]:
    """The actions about market NL (the other markets have no lease in these examples)."""
    return [a for a in decision.actions if a.market == "NL"]


def test_residency_skips_an_illegal_first_target_and_says_why() -> None:
    lease = fd.Lease("NL", "eu-a", 4, 0.0, LEASE)
    decision = fd.decide(fd.Observation(10.0, _fleet(eu_a=DOWN), {"NL": lease}))
    fence = [a for a in decision.actions if a.market == "NL"]
    assert fence == [
        fd.Fence("NL", "eu-a", 4, "eu-b", "ProbeFailures", "operator", fence[0].evidence)
    ]
    plan = next(p for p in decision.markets if p.market == "NL")
    assert plan.checks[0].startswith("us-a: residency forbids (jurisdiction US")


def test_no_legal_target_keeps_the_market_down_and_says_so() -> None:
    lease = fd.Lease("IN", "in-a", 1, 0.0, LEASE)
    decision = fd.decide(fd.Observation(10.0, _fleet(in_a=DOWN), {"IN": lease}))
    plan = next(p for p in decision.markets if p.market == "IN")
    assert [a for a in decision.actions if a.market == "IN"] == []
    assert plan.state == "Down"
    assert plan.blockers == ("no failover targets configured",)


def test_no_witness_no_move() -> None:
    """Every region looks down: the operator is the one cut off; nothing moves."""
    fleet = {r: region_info(r, DOWN) for r in JURISDICTIONS}
    leases = {m: fd.Lease(m, h, 1, 0.0, LEASE) for m, h in HOME.items()}
    decision = fd.decide(fd.Observation(10.0, fleet, leases))
    assert decision.actions == ()
    assert all("witness" in " ".join(p.blockers) for p in decision.markets if p.market != "IN")


def test_lag_budget_blocks_unless_accept_data_loss() -> None:
    lease = fd.Lease("NL", "eu-a", 1, 0.0, LEASE)
    fleet = _fleet(eu_a=DOWN)
    fleet["eu-b"] = dataclasses.replace(fleet["eu-b"], lag_from={"eu-a": 500})
    decision = fd.decide(fd.Observation(10.0, fleet, {"NL": lease}))
    assert [a for a in decision.actions if a.market == "NL"] == []
    plan = next(p for p in decision.markets if p.market == "NL")
    assert "eu-b: residency ok, lag 500 > 100 messages (set acceptDataLoss to override)" in (
        plan.blockers
    )
    fleet["eu-a"] = dataclasses.replace(fleet["eu-a"], accept_data_loss=True)
    decision = fd.decide(fd.Observation(10.0, fleet, {"NL": lease}))
    assert [a.to for a in decision.actions if isinstance(a, fd.Fence)] == ["eu-b"]


def test_drain_waits_for_lag_zero_then_fences() -> None:
    lease = fd.Lease("NL", "eu-a", 1, 0.0, LEASE)
    fleet = _fleet()
    fleet["eu-a"] = dataclasses.replace(fleet["eu-a"], drain=True)
    fleet["eu-b"] = dataclasses.replace(fleet["eu-b"], lag_from={"eu-a": 3})
    assert nl(fd.decide(fd.Observation(10.0, fleet, {"NL": lease}))) == []
    fleet["eu-b"] = dataclasses.replace(fleet["eu-b"], lag_from={"eu-a": 0})
    (fence,) = nl(fd.decide(fd.Observation(10.0, fleet, {"NL": lease})))
    assert isinstance(fence, fd.Fence)
    assert (fence.to, fence.reason, fence.actor) == (
        "eu-b",
        "Drain",
        "spec: eu-a spec.failover.drain",
    )


def test_promotion_waits_for_ack_or_expiry() -> None:
    fencing = fd.Lease("NL", "eu-a", 2, 100.0, LEASE, "Fencing", "eu-b", "ProbeFailures")
    fleet = _fleet(eu_a=DOWN)
    assert nl(fd.decide(fd.Observation(100.0 + LEASE - 0.1, fleet, {"NL": fencing}))) == []
    (promote,) = nl(fd.decide(fd.Observation(100.0 + LEASE, fleet, {"NL": fencing})))
    assert isinstance(promote, fd.Promote)
    assert (promote.to, promote.epoch, promote.fenced_by) == ("eu-b", 3, "expired")
    acked = dataclasses.replace(fencing, acked_epoch=2)
    (promote,) = nl(fd.decide(fd.Observation(101.0, fleet, {"NL": acked})))
    assert isinstance(promote, fd.Promote)
    assert promote.fenced_by == "acknowledged"


def test_failback_manual_stays_automatic_after_soak() -> None:
    away = fd.Lease("NL", "eu-b", 2, 1000.0, LEASE, moved_at=0.0)
    home_health = fh.Health("Healthy", successes=5, since=900.0)
    fleet = _fleet()
    fleet["eu-a"] = dataclasses.replace(fleet["eu-a"], health=home_health, failback="Manual")
    assert nl(fd.decide(fd.Observation(5000.0, fleet, {"NL": away}))) == []
    fleet["eu-a"] = dataclasses.replace(fleet["eu-a"], failback="Automatic")
    assert nl(fd.decide(fd.Observation(900.0 + SOAK - 1, fleet, {"NL": away}))) == []
    (fence,) = nl(fd.decide(fd.Observation(900.0 + SOAK, fleet, {"NL": away})))
    assert isinstance(fence, fd.Fence)
    assert (fence.to, fence.reason) == ("eu-a", "Failback")
    fleet["eu-a"] = dataclasses.replace(fleet["eu-a"], failback="Manual", return_home=True)
    (fence,) = nl(fd.decide(fd.Observation(901.0, fleet, {"NL": away})))
    assert isinstance(fence, fd.Fence)
    assert fence.reason == "ReturnHome"


def test_frozen_when_the_lease_store_is_unreachable() -> None:
    lease = fd.Lease("NL", "eu-a", 1, 0.0, LEASE)
    decision = fd.decide(fd.Observation(10.0, _fleet(eu_a=DOWN), {"NL": lease}, False))
    assert decision.frozen
    assert decision.actions == ()


def test_dry_run_marks_actions() -> None:
    lease = fd.Lease("NL", "eu-a", 1, 0.0, LEASE)
    fleet = _fleet(eu_a=DOWN)
    fleet["eu-a"] = dataclasses.replace(fleet["eu-a"], dry_run=True)
    (fence,) = nl(fd.decide(fd.Observation(10.0, fleet, {"NL": lease})))
    assert isinstance(fence, fd.Fence)
    assert fence.dry_run
