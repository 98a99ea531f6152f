"""Folding probe results into a region's health, with thresholds. Pure.

* Success: successes + 1, failures reset to 0.
* Failure (status code, refused, TLS): failures + 1, successes reset to 0.
* Unknown (timeout): counts as a failed probe (failures + 1) and resets the successes; it never
  resets the failure count.

A Healthy region turns Unhealthy after ``failure_threshold`` failed probes in a row; an
Unhealthy one turns Healthy after ``success_threshold`` successes in a row. A region never
probed is Unknown: it is neither failed over nor chosen as a target.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, Literal

Outcome = Literal["Success", "Failure", "Unknown"]
State = Literal["Healthy", "Unhealthy", "Unknown"]

EVIDENCE_KEPT: Final = 10


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one region."""

    outcome: Outcome
    reason: str
    """``200``, ``503``, ``refused``, ``tls``, ``timeout after 2.0 s``, ..."""
    latency: float
    """Seconds the probe took."""
    at: float
    """When it finished (seconds since the epoch, UTC)."""

    def describe(self) -> str:
        return f"{self.outcome}({self.reason}, {self.latency * 1000:.0f} ms)"


@dataclass(frozen=True, slots=True)
class Thresholds:
    failure_threshold: int
    success_threshold: int


@dataclass(frozen=True, slots=True)
class Health:
    """The operator's view of one region."""

    state: State = "Unknown"
    failures: int = 0
    successes: int = 0
    since: float = 0.0
    """When ``state`` last changed."""
    first_failure_at: float | None = None
    """When the current run of failed probes began (None while the last probe succeeded)."""
    evidence: tuple[ProbeResult, ...] = ()
    """The last probes, newest last."""

    def describe(self) -> str:
        last = ", ".join(r.describe() for r in self.evidence[-3:])
        return (
            f"{self.state}: {self.failures} failed and {self.successes} successful probes "
            f"in a row (last: {last or 'none'})"
        )


def observe(health: Health, result: ProbeResult, thresholds: Thresholds) -> Health:
    """The health after one more probe result."""
    evidence = (*health.evidence, result)[-EVIDENCE_KEPT:]
    if result.outcome == "Success":
        failures, successes, first = 0, health.successes + 1, None
    else:
        failures, successes = health.failures + 1, 0
        first = health.first_failure_at if health.first_failure_at is not None else result.at
    state: State = health.state
    if failures >= thresholds.failure_threshold:
        state = "Unhealthy"
    elif result.outcome == "Success" and (
        health.state != "Unhealthy" or successes >= thresholds.success_threshold
    ):
        # A region seen for the first time is trusted on one success; a failed one must
        # prove itself ``success_threshold`` times in a row.
        state = "Healthy"
    since = result.at if state != health.state else health.since
    return dataclasses.replace(
        health,
        state=state,
        failures=failures,
        successes=successes,
        since=since,
        first_failure_at=first,
        evidence=evidence,
    )


def healthy_for(health: Health, now: float) -> float:
    """Seconds the region has been Healthy (0 unless Healthy)."""
    return now - health.since if health.state == "Healthy" else 0.0
